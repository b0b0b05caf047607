//! The one factor check every ceremony shares: reservations on the throttles,
//! TOTP matching with replay marks, backup codes spent once, failures counted and
//! lockouts reported.

use super::second_factor::{Factor, SecondFactor};
use super::{AuthMethod, RecentAuth, Service};
use crate::backup::NormalizedBackupCode;
use crate::events::Event;
use crate::secret::KeyedHash;
use crate::store::{AuthenticatorId, AuthenticatorRecord, SessionId, Store, ThrottleState, UserId};
use crate::throttle::Reservation;
use crate::totp::{Code, TotpKey};
use crate::{Error, Result, backup, throttle};

/// How long a spent backup code is remembered (30 days), so that typing it again is
/// said as `backup_code_used` instead of `invalid_code`.
const SPENT_BACKUP_MEMORY: u64 = 30 * 24 * 3600;

/// The ephemeral-store key that marks a spent backup code of an account.
fn spent_backup_key(user_id: &UserId, h: &KeyedHash) -> String {
    format!("spent:{}:{}", user_id.as_str(), h.to_hex())
}

impl<S: Store> Service<S> {
    /// Counts one attempt on a lockout throttle (the second-factor schedule) before
    /// the secret is checked; refused while it is locked (the lockout itself was
    /// reported when it began, by [`Self::failure`]).
    pub(crate) async fn reserve(&self, key: &str, now: u64) -> Result<Reservation> {
        throttle::reserve_account_attempt(
            &self.inner.store,
            self.inner.throttle.second_factor_lockout(),
            key,
            now,
        )
        .await
    }

    /// Counts a second-factor attempt on the account before it is checked: a TOTP
    /// code on the short lockout and on the long-term budget (either refuses it while
    /// locked or spent); a backup code on neither (see the [throttle
    /// docs](crate::throttle)), so the owner keeps a way in while TOTP is locked.
    pub(crate) async fn reserve_factor(
        &self,
        user_id: &UserId,
        factor: &Factor,
        now: u64,
    ) -> Result<Option<Reservation>> {
        if let Factor::Backup(_) = factor {
            return Ok(None);
        }
        let store = &self.inner.store;
        let policy = &self.inner.throttle;
        let budget = throttle::budget_key(user_id);
        throttle::check_budget(store, policy, &budget, now).await?;
        let reservation = self.reserve(&throttle::account_key(user_id), now).await?;
        if let Err(e) = throttle::spend_budget(store, policy, &budget, now).await {
            if let Error::TooManyAttempts { retry_after, .. } = e {
                self.record(Event::LockedOut {
                    user_id: user_id.clone(),
                    retry_after,
                })
                .await;
            }
            return Err(e);
        }
        Ok(Some(reservation))
    }

    /// After a second factor passed: clears the short lockout and gives back the
    /// budget the attempt took (the failures before it stay spent). Best effort.
    pub(crate) async fn factor_succeeded(
        &self,
        user_id: &UserId,
        reservation: Option<Reservation>,
    ) {
        let Some(reservation) = reservation else {
            return;
        };
        self.forget_failures(&throttle::account_key(user_id), reservation)
            .await;
        let budget = throttle::budget_key(user_id);
        if let Err(e) =
            throttle::refund_budget(&self.inner.store, &self.inner.throttle, &budget, self.now())
                .await
        {
            tracing::warn!(error = %e, "second-factor budget could not be refunded");
        }
    }

    /// The error for a wrong code, with the attempts left, and its audit event.
    /// `pending_left` is `u32::MAX` where no pending login applies.
    pub(crate) async fn failure(
        &self,
        user_id: &UserId,
        reservation: Option<Reservation>,
        pending_left: u32,
    ) -> Error {
        let policy = &self.inner.throttle;
        let remaining = match reservation {
            Some(r) => policy
                .account_attempts_left(r.state.count)
                .min(pending_left),
            None => pending_left,
        };
        let known = (remaining != u32::MAX).then_some(remaining);
        self.record(Event::SecondFactorRejected {
            user_id: user_id.clone(),
            remaining_attempts: known.unwrap_or(u32::MAX),
        })
        .await;
        if let Some(r) = reservation {
            self.report_lockout(user_id, r).await;
        }
        Error::InvalidCode {
            remaining_attempts: known,
        }
    }

    /// Resets the throttle `key` after a success. Best effort: by now the factor or
    /// password was accepted (and possibly spent), so a failed reset only leaves the
    /// failures counted and must not turn the success into an error.
    pub(crate) async fn forget_failures(&self, key: &str, reservation: Reservation) {
        if let Err(e) =
            throttle::reset_account(&self.inner.store, key, reservation, self.now()).await
        {
            tracing::warn!(error = %e, throttle = key, "throttle could not be reset");
        }
    }

    /// Emits [`Event::LockedOut`] when the failure counted by `reservation` starts a
    /// lockout.
    pub(crate) async fn report_lockout(&self, user_id: &UserId, reservation: Reservation) {
        let lockout = self.inner.throttle.lockout_after(reservation.state.count);
        if !lockout.is_zero() {
            self.record(Event::LockedOut {
                user_id: user_id.clone(),
                retry_after: lockout,
            })
            .await;
        }
    }

    /// Checks a second factor of an account that has 2FA on, counting the attempt on
    /// the account's throttle first and spending the code: the one factor check of
    /// re-authentication, disable and backup-code regeneration.
    pub(crate) async fn check_factor(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        factor: Factor,
        now: u64,
    ) -> Result<AuthMethod> {
        #[cfg(not(feature = "webauthn"))]
        let _ = session_id;
        let reservation = self.reserve_factor(user_id, &factor, now).await?;
        let method = match &factor {
            Factor::Totp(code) => {
                let auths = self.inner.store.authenticators(user_id).await?;
                let matches = self.match_totp(user_id, &auths, code, now)?;
                if !matches.is_empty() && !self.spend_totp(user_id, &matches, now).await? {
                    return Err(Error::CodeAlreadyUsed);
                }
                (!matches.is_empty()).then_some(AuthMethod::Totp)
            }
            Factor::Backup(code) => self
                .spend_backup_code(user_id, code)
                .await?
                .then_some(AuthMethod::BackupCode),
            // An assertion answers this session's confirmation ceremony only.
            #[cfg(feature = "webauthn")]
            Factor::WebAuthn(credential) => self
                .verify_confirmation(user_id, session_id, credential, now)
                .await?
                .then_some(AuthMethod::WebAuthn),
        };
        match method {
            Some(method) => {
                self.factor_succeeded(user_id, reservation).await;
                Ok(method)
            }
            None => {
                let failure = self.failure(user_id, reservation, u32::MAX).await;
                Err(self.said_as_spent(user_id, &factor, failure).await)
            }
        }
    }

    /// Checks the factor for disable and regeneration: 2FA must be on; the attempt
    /// counts on the account's throttle and the code is spent.
    pub(super) async fn verify_for_action(
        &self,
        proof: &RecentAuth,
        factor: SecondFactor<'_>,
    ) -> Result<()> {
        self.check_recent(proof).await?;
        let factor = self.normalize_factor(factor)?;
        let account = self.account_record(&proof.user_id).await?;
        if !account.two_factor_enabled {
            return Err(Error::TwoFactorNotEnabled);
        }
        self.check_factor(&account.id, &proof.session_id, factor, self.now())
            .await?;
        Ok(())
    }

    /// Every authenticator of the account whose code `code` is at `now`, with the
    /// newest matching step, newest first. Nothing is spent.
    ///
    /// An authenticator whose secret cannot be opened (its key left the key ring, or
    /// the blob is damaged) is skipped and reported
    /// ([`Event::AuthenticatorUnreadable`]): the account's other authenticators and
    /// its backup codes keep working, and the status says which one to replace.
    pub(crate) fn match_totp(
        &self,
        user_id: &UserId,
        auths: &[AuthenticatorRecord],
        code: &Code,
        now: u64,
    ) -> Result<Vec<(AuthenticatorId, u64)>> {
        let mut matches = Vec::new();
        // Security keys (sealed records) have no codes.
        for a in auths.iter().filter(|a| !a.sealed_secret.is_record()) {
            let sealed = a.sealed_secret.as_bytes();
            if let Some(key) = self.inner.prepared.get(user_id, sealed) {
                if let Some(step) = key.verify(code, now) {
                    matches.push((a.id.clone(), step));
                }
                continue;
            }
            let secret = match self.inner.keys.open(user_id.as_str(), &a.sealed_secret) {
                Ok(secret) => secret,
                Err(e @ (Error::UnknownKey { .. } | Error::SealedSecretInvalid)) => {
                    tracing::warn!(error = %e, authenticator = %a.id, "authenticator skipped");
                    self.emit(Event::AuthenticatorUnreadable {
                        user_id: user_id.clone(),
                        authenticator_id: a.id.clone(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let key = std::sync::Arc::new(TotpKey::new(&self.inner.totp, secret.expose_bytes()));
            if let Some(step) = key.verify(code, now) {
                matches.push((a.id.clone(), step));
            }
            self.inner.prepared.insert(user_id, sealed, key);
        }
        matches.sort_by_key(|m| std::cmp::Reverse(m.1));
        Ok(matches)
    }

    /// Marks the first matching step that is still fresh as used. `Ok(false)` means
    /// every match was a replay (an audit event is emitted).
    pub(crate) async fn spend_totp(
        &self,
        user_id: &UserId,
        matches: &[(AuthenticatorId, u64)],
        now: u64,
    ) -> Result<bool> {
        for (id, step) in matches {
            if self
                .inner
                .store
                .advance_last_step(id, *step, self.replay_keep_until(*step, now))
                .await?
            {
                return Ok(true);
            }
        }
        if let Some((id, _)) = matches.first() {
            self.record(Event::CodeReplayed {
                user_id: user_id.clone(),
                authenticator_id: id.clone(),
            })
            .await;
        }
        Ok(false)
    }

    /// When a replay mark for `step` can be forgotten: once no code of that step can
    /// verify any more, plus one period of margin.
    pub(crate) fn replay_keep_until(&self, step: u64, now: u64) -> u64 {
        let p = &self.inner.totp;
        let last_valid = step
            .saturating_add(u64::from(p.skew()) + 2)
            .saturating_mul(p.period());
        last_valid.max(now.saturating_add(p.period()))
    }

    /// Consumes a backup code; emits the audit event with the codes left.
    pub(crate) async fn spend_backup_code(
        &self,
        user_id: &UserId,
        code: &NormalizedBackupCode,
    ) -> Result<bool> {
        let store = &self.inner.store;
        for h in backup::hash_candidates(&self.inner.keys, code) {
            if store.consume_backup_code(user_id, &h).await? {
                // The code is spent: from here on nothing may fail the login. The
                // count is for the audit event only.
                self.remember_spent_backup_code(user_id, &h).await;
                match store.backup_codes_remaining(user_id).await {
                    Ok(remaining) => {
                        self.record(Event::BackupCodeUsed {
                            user_id: user_id.clone(),
                            remaining,
                        })
                        .await
                    }
                    Err(e) => tracing::warn!(error = %e, "backup codes left could not be counted"),
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Remembers a spent backup code's keyed hash for [`SPENT_BACKUP_MEMORY`] seconds
    /// (in the ephemeral store, as a throttle entry), so that typing it again is
    /// `backup_code_used`. Best effort: the code is spent either way.
    async fn remember_spent_backup_code(&self, user_id: &UserId, h: &KeyedHash) {
        let now = self.now();
        let key = spent_backup_key(user_id, h);
        let mark = ThrottleState {
            count: 1,
            until: now.saturating_add(SPENT_BACKUP_MEMORY),
        };
        let store = &self.inner.store;
        let written = match store.throttle(&key, now).await {
            Ok(current) => {
                store
                    .update_throttle(&key, current, mark, mark.until, now)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "spent backup code could not be remembered");
        }
    }

    /// A failed factor's error, with `invalid_code` said as `backup_code_used` (the
    /// same count of attempts left) when the factor is a backup code of this account
    /// that was spent before: the one rule of login, re-authentication and disable.
    pub(crate) async fn said_as_spent(
        &self,
        user_id: &UserId,
        factor: &Factor,
        failure: Error,
    ) -> Error {
        match (failure, factor) {
            (Error::InvalidCode { remaining_attempts }, Factor::Backup(code))
                if self.backup_code_was_spent(user_id, code).await =>
            {
                Error::BackupCodeUsed { remaining_attempts }
            }
            (e, _) => e,
        }
    }

    /// Whether `code` is a backup code of this account that was spent (within
    /// [`SPENT_BACKUP_MEMORY`]). A store failure reads as "no": the answer is then
    /// the plain `invalid_code`.
    async fn backup_code_was_spent(&self, user_id: &UserId, code: &NormalizedBackupCode) -> bool {
        let now = self.now();
        for h in backup::hash_candidates(&self.inner.keys, code) {
            match self
                .inner
                .store
                .throttle(&spent_backup_key(user_id, &h), now)
                .await
            {
                Ok(state) if state.count > 0 => return true,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "spent backup codes could not be read");
                    return false;
                }
            }
        }
        false
    }

    /// Re-seals the account's secrets under the active key if any uses an older one.
    /// Best effort; runs after a successful second factor. `known` is the list of
    /// authenticators the caller already read, if any (a stale list is harmless: a
    /// removed authenticator is not resealed, one resealed meanwhile is resealed again
    /// with the same secret); without one, it is read from the store.
    pub(crate) async fn reseal_if_needed(
        &self,
        user_id: &UserId,
        known: Option<Vec<AuthenticatorRecord>>,
    ) {
        let keys = &self.inner.keys;
        let auths = match known {
            Some(auths) => auths,
            None => match self.inner.store.authenticators(user_id).await {
                Ok(auths) => auths,
                Err(_) => return,
            },
        };
        for a in auths.iter().filter(|a| keys.needs_reseal(&a.sealed_secret)) {
            let result = match keys.reseal(user_id.as_str(), &a.sealed_secret) {
                Ok(sealed) => self
                    .inner
                    .store
                    .reseal_authenticator(user_id, &a.id, &sealed)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "re-sealing under the active key failed");
            }
        }
    }
}
