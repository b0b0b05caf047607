//! Unit-of-work operations: the second-factor step in one read and one commit.
//!
//! A TOTP step used to be seven to nine store round trips (count the attempt, read
//! the account, read and compare-and-set two throttles, read the authenticators,
//! take the pending login, advance the replay mark, reset the throttle, write the
//! device and the session, append to the security log). [`Store::read_factor_step`]
//! and [`Store::commit_factor_step`] make it two: the read counts the attempt on the
//! pending login and returns everything the core needs to decide, and the commit
//! writes the decision, all or nothing, conditional on the throttles still being as
//! read (a snapshot compare-and-set: a result is only ever revealed for an attempt
//! that was counted against the state it was checked under).
//!
//! The provided implementations compose the fine-grained operations, in the order
//! and with the guarantees the core had before (so every store keeps working); the
//! memory and SQL stores override them with one critical section or one transaction,
//! and [`Combined`] reads through its halves'
//! [`EphemeralStore::read_factor_ephemeral`] and
//! [`AccountStore::account_and_authenticators`] and commits through its ephemeral
//! half's [`EphemeralStore::commit_factor_ephemeral`] (one script each in Redis).

use super::*;

/// The keys of an account's two second-factor throttles, as the core names them:
/// the short lockout and the long-term budget (see [`throttle`](crate::throttle)).
pub fn factor_throttle_keys(user_id: &UserId) -> [String; 2] {
    [
        crate::throttle::account_key(user_id),
        crate::throttle::budget_key(user_id),
    ]
}

/// The prefixes of an account's two second-factor throttle keys
/// ([`factor_throttle_keys`]): the key of an account is the prefix followed by its
/// id, so a store can find the throttles of a pending login's user in the same read
/// (a SQL join on `prefix || user_id`, a Redis script appending the id).
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
pub(crate) fn factor_throttle_key_prefixes() -> &'static [String; 2] {
    static PREFIXES: std::sync::LazyLock<[String; 2]> =
        std::sync::LazyLock::new(|| factor_throttle_keys(&UserId::new("")));
    &PREFIXES
}

/// What the second-factor step reads: [`Store::read_factor_step`].
#[derive(Clone, Debug)]
pub struct FactorStepView {
    /// The keyed hash the pending login was found under.
    pub token: KeyedHash,
    /// The pending login, with this attempt counted.
    pub pending: PendingLogin,
    /// Its account, `None` when it no longer exists.
    pub account: Option<AccountRecord>,
    /// The account's authenticators, oldest first (empty without an account).
    pub authenticators: Vec<AuthenticatorRecord>,
    /// The account's throttles at the time of the read, in the order of
    /// [`factor_throttle_keys`]: the short lockout, then the budget.
    pub throttles: [ThrottleState; 2],
}

/// What the ephemeral half of the second-factor step reads:
/// [`EphemeralStore::read_factor_ephemeral`].
#[derive(Clone, Debug)]
pub struct FactorEphemeralView {
    /// The keyed hash the pending login was found under.
    pub token: KeyedHash,
    /// The pending login, with this attempt counted.
    pub pending: PendingLogin,
    /// The throttles of the pending login's user at the time of the read, in the
    /// order of [`factor_throttle_keys`]: the short lockout, then the budget.
    pub throttles: [ThrottleState; 2],
}

/// One throttle the commit writes, compare-and-set against the state the step read.
#[derive(Clone, Copy, Debug)]
pub struct ThrottleWrite<'a> {
    /// The throttle's key.
    pub key: &'a str,
    /// The state the step read (and decided under).
    pub expected: ThrottleState,
    /// The state with this attempt counted, written unless the factor is spent, kept
    /// until the `u64` (Unix seconds).
    pub counted: (ThrottleState, u64),
    /// The state written instead when the factor is spent, kept until the `u64`.
    pub on_success: (ThrottleState, u64),
}

/// A TOTP time step of one authenticator that the code matched.
#[derive(Clone, Debug)]
pub struct StepMark {
    /// The authenticator.
    pub authenticator: AuthenticatorId,
    /// The matching time step.
    pub step: u64,
    /// How long the replay mark must be kept (Unix seconds).
    pub keep_until: u64,
}

/// The writes of one outcome of the commit.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutcomeWrites<'a> {
    /// Delete the pending login (always done when the factor is spent; on a failure,
    /// when its attempts are used up).
    pub take_pending: bool,
    /// A session to store under the keyed hash of its token.
    pub session: Option<(&'a KeyedHash, &'a SessionRecord)>,
    /// A trusted device to store under the keyed hash of its token.
    pub device: Option<(&'a KeyedHash, &'a DeviceRecord)>,
    /// Security-log entries to append, in order.
    pub log: &'a [SecurityEvent],
}

/// What [`Store::commit_factor_step`] writes.
#[derive(Clone, Copy, Debug)]
pub struct FactorCommit<'a> {
    /// The keyed hash of the pending login ([`FactorStepView::token`]).
    pub token: &'a KeyedHash,
    /// The pending login's attempt limit, as passed to the read: a store whose
    /// read does not count the attempt counts it here, only while one is left.
    pub max_attempts: u32,
    /// The account.
    pub user_id: &'a UserId,
    /// The matching steps, newest first: the first whose replay mark advances
    /// ([`EphemeralStore::advance_last_step`]) spends the code. Empty for a wrong
    /// code, which spends nothing.
    pub spend: &'a [StepMark],
    /// The throttles, all compare-and-set against what the step read.
    pub throttles: &'a [ThrottleWrite<'a>],
    /// Written when the code is spent.
    pub on_success: OutcomeWrites<'a>,
    /// Written when it is not (a wrong code or a replay).
    pub on_failure: OutcomeWrites<'a>,
    /// The security log keeps the newest `log_max_entries` entries of the account…
    pub log_max_entries: u32,
    /// …and forgets those with `at < log_forget_before`.
    pub log_forget_before: u64,
    /// The time of the step.
    pub now: u64,
}

/// The outcome of [`Store::commit_factor_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorCommitted {
    /// The code was spent and the success writes were made.
    Spent,
    /// Nothing was spent (a wrong code, or every matching step was already used);
    /// the failure writes were made.
    NotSpent,
    /// A throttle is no longer in the state the step read: nothing was written.
    Conflict,
    /// A code was to be spent but the pending login is gone (taken by a concurrent
    /// step, or expired): nothing was written.
    Expired,
}

/// The provided [`Store::read_factor_step`]: the ephemeral half's read
/// ([`EphemeralStore::read_factor_ephemeral`]), then the durable half's
/// ([`AccountStore::account_and_authenticators`]). [`Combined`] reads through the
/// same function, with its two halves.
pub(crate) async fn read_factor_step<S: AccountStore + EphemeralStore + ?Sized>(
    store: &S,
    tokens: &[KeyedHash],
    max_attempts: u32,
    now: u64,
) -> Result<Option<FactorStepView>> {
    read_factor_step_split(store, store, tokens, max_attempts, now).await
}

/// The second-factor read from two halves: the attempt counted and the throttles read
/// in `ephemeral`, then the account and its authenticators read in `accounts`.
pub(crate) async fn read_factor_step_split<A, E>(
    accounts: &A,
    ephemeral: &E,
    tokens: &[KeyedHash],
    max_attempts: u32,
    now: u64,
) -> Result<Option<FactorStepView>>
where
    A: AccountStore + ?Sized,
    E: EphemeralStore + ?Sized,
{
    let Some(FactorEphemeralView {
        token,
        pending,
        throttles,
    }) = ephemeral
        .read_factor_ephemeral(tokens, max_attempts, now)
        .await?
    else {
        return Ok(None);
    };
    let (account, authenticators) = match accounts
        .account_and_authenticators(&pending.user_id)
        .await?
    {
        Some((account, authenticators)) => (Some(account), authenticators),
        None => (None, Vec::new()),
    };
    Ok(Some(FactorStepView {
        token,
        pending,
        account,
        authenticators,
        throttles,
    }))
}

/// The provided [`EphemeralStore::read_factor_ephemeral`]: the fine-grained
/// operations in turn ([`EphemeralStore::begin_login_attempt`] on each token until
/// one counts, then [`EphemeralStore::throttle`] twice).
pub(crate) async fn read_factor_ephemeral<E: EphemeralStore + ?Sized>(
    store: &E,
    tokens: &[KeyedHash],
    max_attempts: u32,
    now: u64,
) -> Result<Option<FactorEphemeralView>> {
    let mut found = None;
    for h in tokens {
        if let Some(p) = store.begin_login_attempt(h, max_attempts, now).await? {
            found = Some((*h, p));
            break;
        }
    }
    let Some((token, pending)) = found else {
        return Ok(None);
    };
    let [lockout, budget] = factor_throttle_keys(&pending.user_id);
    let throttles = [
        store.throttle(&lockout, now).await?,
        store.throttle(&budget, now).await?,
    ];
    Ok(Some(FactorEphemeralView {
        token,
        pending,
        throttles,
    }))
}

/// The provided [`AccountStore::account_and_authenticators`]: the account, then (if
/// there is one) its authenticators.
pub(crate) async fn account_and_authenticators<A: AccountStore + ?Sized>(
    store: &A,
    user_id: &UserId,
) -> Result<Option<(AccountRecord, Vec<AuthenticatorRecord>)>> {
    let Some(account) = store.account(user_id).await? else {
        return Ok(None);
    };
    let authenticators = store.authenticators(&account.id).await?;
    Ok(Some((account, authenticators)))
}

/// The provided [`Store::commit_factor_step`]: the ephemeral writes
/// ([`EphemeralStore::commit_factor_ephemeral`], one unit in a store that overrides
/// it), then the security-log entries of the outcome.
pub(crate) async fn commit_factor_step<S: AccountStore + EphemeralStore + ?Sized>(
    store: &S,
    c: &FactorCommit<'_>,
) -> Result<FactorCommitted> {
    let committed = store.commit_factor_ephemeral(c).await?;
    append_outcome_log(store, c, committed).await;
    Ok(committed)
}

/// Appends the security-log entries of `committed`'s outcome (none for a conflict or
/// an expired login), best effort: the step is decided and written, and a log entry
/// that cannot be written is no reason to refuse it.
pub(crate) async fn append_outcome_log<A: AccountStore + ?Sized>(
    accounts: &A,
    c: &FactorCommit<'_>,
    committed: FactorCommitted,
) {
    let log = match committed {
        FactorCommitted::Spent => c.on_success.log,
        FactorCommitted::NotSpent => c.on_failure.log,
        FactorCommitted::Conflict | FactorCommitted::Expired => return,
    };
    for entry in log {
        if let Err(e) = accounts
            .append_security_event(c.user_id, entry, c.log_max_entries, c.log_forget_before)
            .await
        {
            tracing::warn!(error = %e, "security log entry could not be written");
        }
    }
}

/// The provided [`EphemeralStore::commit_factor_ephemeral`]: the fine-grained
/// operations in the order the core used before, each atomic on its own. The
/// throttles are counted first; a spent code then has its throttles set to their
/// success states (best effort: a failure there leaves the attempt counted, never in
/// an attacker's favour); the pending login is taken before the code is spent and
/// put back when it cannot be.
pub(crate) async fn commit_factor_ephemeral<S: EphemeralStore + ?Sized>(
    store: &S,
    c: &FactorCommit<'_>,
) -> Result<FactorCommitted> {
    for t in c.throttles {
        let (state, keep) = t.counted;
        // A conflict on a later throttle leaves the earlier ones counted: against
        // the caller, who reads again and retries.
        if !store
            .update_throttle(t.key, t.expected, state, keep, c.now)
            .await?
        {
            return Ok(FactorCommitted::Conflict);
        }
    }
    let mut spent = false;
    if !c.spend.is_empty() {
        let Some(taken) = store.take_pending_login(c.token, c.now).await? else {
            return Ok(FactorCommitted::Expired);
        };
        let mut result = Ok(false);
        for m in c.spend {
            match store
                .advance_last_step(&m.authenticator, m.step, m.keep_until)
                .await
            {
                Ok(true) => {
                    result = Ok(true);
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        match result {
            Ok(true) => spent = true,
            Ok(false) if c.on_failure.take_pending => {}
            other => {
                // Put the pending login back (best effort: a failure here leaves the
                // user to start again, never with a spent code).
                if let Err(e) = store.create_pending_login(c.token, &taken).await {
                    tracing::warn!(error = %e, "pending login could not be restored");
                }
                other?;
            }
        }
    } else if c.on_failure.take_pending {
        store.delete_pending_login(c.token).await?;
    }
    let writes = if spent {
        for t in c.throttles {
            let (state, keep) = t.on_success;
            if state != t.counted.0
                && let Err(e) = store
                    .update_throttle(t.key, t.counted.0, state, keep, c.now)
                    .await
            {
                tracing::warn!(error = %e, throttle = t.key, "throttle could not be reset");
            }
        }
        &c.on_success
    } else {
        &c.on_failure
    };
    if let Some((hash, device)) = writes.device {
        store.create_device(hash, device).await?;
    }
    if let Some((hash, session)) = writes.session {
        store.create_session(hash, session).await?;
    }
    Ok(if spent {
        FactorCommitted::Spent
    } else {
        FactorCommitted::NotSpent
    })
}

#[cfg(all(test, any(feature = "sqlite", feature = "postgres", feature = "redis")))]
mod tests {
    use super::*;

    #[test]
    fn throttle_keys_are_a_prefix_and_the_user_id() {
        let id = UserId::new("0123abcd");
        let keys = factor_throttle_keys(&id);
        for (key, prefix) in keys.iter().zip(factor_throttle_key_prefixes()) {
            assert_eq!(*key, format!("{prefix}{}", id.as_str()));
        }
    }
}
