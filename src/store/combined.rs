//! A store made of a durable half and an ephemeral half.

use std::future::Future;

use super::*;

/// Joins an [`AccountStore`] (durable: SQL, or your own users table) and an
/// [`EphemeralStore`] (short-lived state: Redis, memory) into one [`Store`].
///
/// Each half keeps its own atomicity guarantees; no operation spans both. The
/// second-factor read is the ephemeral half's
/// ([`EphemeralStore::read_factor_ephemeral`]: the attempt counted and the throttles
/// read) followed by the durable half's
/// ([`AccountStore::account_and_authenticators`]); the commit is the ephemeral half's
/// unit of work ([`EphemeralStore::commit_factor_ephemeral`]) followed by the
/// security-log entries in the durable half. With halves that override those methods
/// (the Redis and memory stores for the ephemeral half, the SQL and memory stores for
/// the durable one) a TOTP step is two round trips to each half (the durable half's
/// second one is the log entry).
#[derive(Clone, Debug)]
pub struct Combined<A, E> {
    accounts: A,
    ephemeral: E,
}

impl<A, E> Combined<A, E> {
    /// Joins `accounts` and `ephemeral`.
    pub fn new(accounts: A, ephemeral: E) -> Self {
        Combined {
            accounts,
            ephemeral,
        }
    }

    /// The durable half.
    pub fn accounts(&self) -> &A {
        &self.accounts
    }

    /// The ephemeral half.
    pub fn ephemeral(&self) -> &E {
        &self.ephemeral
    }
}

impl<A: AccountStore, E: Send + Sync + 'static> AccountStore for Combined<A, E> {
    fn create_account(&self, account: &AccountRecord) -> impl Future<Output = Result<()>> + Send {
        self.accounts.create_account(account)
    }
    fn account_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<AccountRecord>>> + Send {
        self.accounts.account_by_username(username)
    }
    fn account(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Option<AccountRecord>>> + Send {
        self.accounts.account(user_id)
    }
    fn set_password(
        &self,
        user_id: &UserId,
        hash: &PasswordHash,
        expected_epoch: u64,
        new_epoch: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.accounts
            .set_password(user_id, hash, expected_epoch, new_epoch)
    }
    fn authenticators(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<AuthenticatorRecord>>> + Send {
        self.accounts.authenticators(user_id)
    }
    fn enable_two_factor(
        &self,
        authenticator: &AuthenticatorRecord,
        backup_codes: &[KeyedHash],
        backup_key_id: u32,
    ) -> impl Future<Output = Result<()>> + Send {
        self.accounts
            .enable_two_factor(authenticator, backup_codes, backup_key_id)
    }
    fn add_authenticator(
        &self,
        authenticator: &AuthenticatorRecord,
        max_authenticators: u32,
    ) -> impl Future<Output = Result<()>> + Send {
        self.accounts
            .add_authenticator(authenticator, max_authenticators)
    }
    fn remove_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
    ) -> impl Future<Output = Result<RemoveOutcome>> + Send {
        self.accounts.remove_authenticator(user_id, id)
    }
    fn reseal_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        sealed_secret: &SealedSecret,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.accounts
            .reseal_authenticator(user_id, id, sealed_secret)
    }
    fn update_authenticator_secret(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.accounts
            .update_authenticator_secret(user_id, id, expected, new)
    }
    fn disable_two_factor(&self, user_id: &UserId) -> impl Future<Output = Result<bool>> + Send {
        self.accounts.disable_two_factor(user_id)
    }
    fn replace_backup_codes(
        &self,
        user_id: &UserId,
        hashes: &[KeyedHash],
        key_id: u32,
    ) -> impl Future<Output = Result<()>> + Send {
        self.accounts.replace_backup_codes(user_id, hashes, key_id)
    }
    fn consume_backup_code(
        &self,
        user_id: &UserId,
        hash: &KeyedHash,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.accounts.consume_backup_code(user_id, hash)
    }
    fn backup_codes_remaining(&self, user_id: &UserId) -> impl Future<Output = Result<u32>> + Send {
        self.accounts.backup_codes_remaining(user_id)
    }
    fn append_security_event(
        &self,
        user_id: &UserId,
        event: &SecurityEvent,
        max_entries: u32,
        forget_before: u64,
    ) -> impl Future<Output = Result<()>> + Send {
        self.accounts
            .append_security_event(user_id, event, max_entries, forget_before)
    }
    fn security_log(
        &self,
        user_id: &UserId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<SecurityEvent>>> + Send {
        self.accounts.security_log(user_id, limit)
    }
    fn account_and_authenticators(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Option<(AccountRecord, Vec<AuthenticatorRecord>)>>> + Send
    {
        self.accounts.account_and_authenticators(user_id)
    }
}

/// The second-factor read is the ephemeral half's
/// ([`read_factor_ephemeral`](EphemeralStore::read_factor_ephemeral): one script in
/// Redis, one critical section in memory), then the durable half's
/// ([`account_and_authenticators`](AccountStore::account_and_authenticators): one
/// `SELECT` in SQL). The commit is the ephemeral half's
/// ([`commit_factor_ephemeral`](EphemeralStore::commit_factor_ephemeral): one script
/// in Redis, one critical section in memory), then the security-log entries in the
/// durable half (best effort, as in every store: the step is decided by then).
impl<A: AccountStore, E: EphemeralStore> Store for Combined<A, E> {
    async fn read_factor_step(
        &self,
        tokens: &[KeyedHash],
        max_attempts: u32,
        now: u64,
    ) -> Result<Option<FactorStepView>> {
        unit::read_factor_step_split(&self.accounts, &self.ephemeral, tokens, max_attempts, now)
            .await
    }

    async fn commit_factor_step(&self, commit: &FactorCommit<'_>) -> Result<FactorCommitted> {
        let committed = self.ephemeral.commit_factor_ephemeral(commit).await?;
        unit::append_outcome_log(&self.accounts, commit, committed).await;
        Ok(committed)
    }
}

impl<A: Send + Sync + 'static, E: EphemeralStore> EphemeralStore for Combined<A, E> {
    fn put_ceremony(
        &self,
        key: &str,
        ceremony: &CeremonyRecord,
    ) -> impl Future<Output = Result<()>> + Send {
        self.ephemeral.put_ceremony(key, ceremony)
    }
    fn take_ceremony(
        &self,
        key: &str,
        now: u64,
    ) -> impl Future<Output = Result<Option<CeremonyRecord>>> + Send {
        self.ephemeral.take_ceremony(key, now)
    }
    fn create_pending_login(
        &self,
        token: &KeyedHash,
        login: &PendingLogin,
    ) -> impl Future<Output = Result<()>> + Send {
        self.ephemeral.create_pending_login(token, login)
    }
    fn begin_login_attempt(
        &self,
        token: &KeyedHash,
        max_attempts: u32,
        now: u64,
    ) -> impl Future<Output = Result<Option<PendingLogin>>> + Send {
        self.ephemeral.begin_login_attempt(token, max_attempts, now)
    }
    fn take_pending_login(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> impl Future<Output = Result<Option<PendingLogin>>> + Send {
        self.ephemeral.take_pending_login(token, now)
    }
    fn delete_pending_login(&self, token: &KeyedHash) -> impl Future<Output = Result<()>> + Send {
        self.ephemeral.delete_pending_login(token)
    }
    fn put_enrollment(
        &self,
        user_id: &UserId,
        enrollment: &PendingEnrollment,
    ) -> impl Future<Output = Result<()>> + Send {
        self.ephemeral.put_enrollment(user_id, enrollment)
    }
    fn enrollment(
        &self,
        user_id: &UserId,
        now: u64,
    ) -> impl Future<Output = Result<Option<PendingEnrollment>>> + Send {
        self.ephemeral.enrollment(user_id, now)
    }
    fn take_enrollment(
        &self,
        user_id: &UserId,
        id: &str,
        now: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.ephemeral.take_enrollment(user_id, id, now)
    }
    fn advance_last_step(
        &self,
        id: &AuthenticatorId,
        step: u64,
        keep_until: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.ephemeral.advance_last_step(id, step, keep_until)
    }
    fn throttle(&self, key: &str, now: u64) -> impl Future<Output = Result<ThrottleState>> + Send {
        self.ephemeral.throttle(key, now)
    }
    fn update_throttle(
        &self,
        key: &str,
        expected: ThrottleState,
        new: ThrottleState,
        keep_until: u64,
        now: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.ephemeral
            .update_throttle(key, expected, new, keep_until, now)
    }
    fn create_device(
        &self,
        token: &KeyedHash,
        device: &DeviceRecord,
    ) -> impl Future<Output = Result<()>> + Send {
        self.ephemeral.create_device(token, device)
    }
    fn device(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> impl Future<Output = Result<Option<DeviceRecord>>> + Send {
        self.ephemeral.device(token, now)
    }
    fn devices(
        &self,
        user_id: &UserId,
        now: u64,
    ) -> impl Future<Output = Result<Vec<DeviceRecord>>> + Send {
        self.ephemeral.devices(user_id, now)
    }
    fn revoke_device(
        &self,
        user_id: &UserId,
        id: &DeviceId,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.ephemeral.revoke_device(user_id, id)
    }
    fn revoke_all_devices(&self, user_id: &UserId) -> impl Future<Output = Result<u32>> + Send {
        self.ephemeral.revoke_all_devices(user_id)
    }
    fn create_session(
        &self,
        token: &KeyedHash,
        session: &SessionRecord,
    ) -> impl Future<Output = Result<()>> + Send {
        self.ephemeral.create_session(token, session)
    }
    fn session(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> impl Future<Output = Result<Option<SessionRecord>>> + Send {
        self.ephemeral.session(token, now)
    }
    fn delete_session(&self, token: &KeyedHash) -> impl Future<Output = Result<()>> + Send {
        self.ephemeral.delete_session(token)
    }
    fn sessions(
        &self,
        user_id: &UserId,
        now: u64,
    ) -> impl Future<Output = Result<Vec<SessionRecord>>> + Send {
        self.ephemeral.sessions(user_id, now)
    }
    fn reauthenticate_session(
        &self,
        token: &KeyedHash,
        at: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.ephemeral.reauthenticate_session(token, at)
    }
    fn delete_session_by_id(
        &self,
        user_id: &UserId,
        id: &SessionId,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.ephemeral.delete_session_by_id(user_id, id)
    }
    fn delete_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
    ) -> impl Future<Output = Result<u32>> + Send {
        self.ephemeral.delete_sessions(user_id, keep)
    }
    fn read_factor_ephemeral(
        &self,
        tokens: &[KeyedHash],
        max_attempts: u32,
        now: u64,
    ) -> impl Future<Output = Result<Option<FactorEphemeralView>>> + Send {
        self.ephemeral
            .read_factor_ephemeral(tokens, max_attempts, now)
    }
    fn commit_factor_ephemeral(
        &self,
        commit: &FactorCommit<'_>,
    ) -> impl Future<Output = Result<FactorCommitted>> + Send {
        self.ephemeral.commit_factor_ephemeral(commit)
    }
    /// Purges the ephemeral half only. The durable half keeps no expiring records
    /// (its security log is trimmed on append; the SQL stores' inherent
    /// `purge_expired` also drops old entries).
    fn purge_expired(&self, now: u64) -> impl Future<Output = Result<u64>> + Send {
        self.ephemeral.purge_expired(now)
    }
}
