//! A store wrapper that counts every store call by name: round trips per user action.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use secondfactor::Result;
use secondfactor::password::PasswordHash;
use secondfactor::secret::{KeyedHash, SealedSecret};
use secondfactor::security_log::SecurityEvent;
use secondfactor::store::*;

/// Wraps a store; every call of either half and of the unit-of-work operations is
/// one round trip, counted under its method name.
#[derive(Clone)]
pub struct Counting<S> {
    pub inner: S,
    calls: Arc<Mutex<Vec<&'static str>>>,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> Self {
        Counting {
            inner,
            calls: Arc::default(),
        }
    }

    fn hit(&self, name: &'static str) {
        self.calls.lock().unwrap().push(name);
    }

    /// Forgets the calls counted so far.
    pub fn reset(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// The calls since the last reset, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    /// The calls since the last reset, counted by name.
    pub fn by_name(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in self.calls() {
            *m.entry(c).or_default() += 1;
        }
        m
    }
}

impl<S: Store> Store for Counting<S> {
    fn read_factor_step(
        &self,
        tokens: &[KeyedHash],
        max_attempts: u32,
        now: u64,
    ) -> impl Future<Output = Result<Option<FactorStepView>>> + Send {
        self.hit("read_factor_step");
        self.inner.read_factor_step(tokens, max_attempts, now)
    }

    fn commit_factor_step(
        &self,
        commit: &FactorCommit<'_>,
    ) -> impl Future<Output = Result<FactorCommitted>> + Send {
        self.hit("commit_factor_step");
        self.inner.commit_factor_step(commit)
    }
}

impl<S: AccountStore> AccountStore for Counting<S> {
    fn create_account(&self, account: &AccountRecord) -> impl Future<Output = Result<()>> + Send {
        self.hit("create_account");
        self.inner.create_account(account)
    }
    fn account_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<AccountRecord>>> + Send {
        self.hit("account_by_username");
        self.inner.account_by_username(username)
    }
    fn account(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Option<AccountRecord>>> + Send {
        self.hit("account");
        self.inner.account(user_id)
    }
    fn set_password(
        &self,
        user_id: &UserId,
        hash: &PasswordHash,
        expected_epoch: u64,
        new_epoch: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("set_password");
        self.inner
            .set_password(user_id, hash, expected_epoch, new_epoch)
    }
    fn authenticators(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<AuthenticatorRecord>>> + Send {
        self.hit("authenticators");
        self.inner.authenticators(user_id)
    }
    fn enable_two_factor(
        &self,
        authenticator: &AuthenticatorRecord,
        backup_codes: &[KeyedHash],
        backup_key_id: u32,
    ) -> impl Future<Output = Result<()>> + Send {
        self.hit("enable_two_factor");
        self.inner
            .enable_two_factor(authenticator, backup_codes, backup_key_id)
    }
    fn add_authenticator(
        &self,
        authenticator: &AuthenticatorRecord,
        max_authenticators: u32,
    ) -> impl Future<Output = Result<()>> + Send {
        self.hit("add_authenticator");
        self.inner
            .add_authenticator(authenticator, max_authenticators)
    }
    fn remove_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
    ) -> impl Future<Output = Result<RemoveOutcome>> + Send {
        self.hit("remove_authenticator");
        self.inner.remove_authenticator(user_id, id)
    }
    fn reseal_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        sealed_secret: &SealedSecret,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("reseal_authenticator");
        self.inner.reseal_authenticator(user_id, id, sealed_secret)
    }
    fn update_authenticator_secret(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("update_authenticator_secret");
        self.inner
            .update_authenticator_secret(user_id, id, expected, new)
    }
    fn disable_two_factor(&self, user_id: &UserId) -> impl Future<Output = Result<bool>> + Send {
        self.hit("disable_two_factor");
        self.inner.disable_two_factor(user_id)
    }
    fn replace_backup_codes(
        &self,
        user_id: &UserId,
        hashes: &[KeyedHash],
        key_id: u32,
    ) -> impl Future<Output = Result<()>> + Send {
        self.hit("replace_backup_codes");
        self.inner.replace_backup_codes(user_id, hashes, key_id)
    }
    fn consume_backup_code(
        &self,
        user_id: &UserId,
        hash: &KeyedHash,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("consume_backup_code");
        self.inner.consume_backup_code(user_id, hash)
    }
    fn backup_codes_remaining(&self, user_id: &UserId) -> impl Future<Output = Result<u32>> + Send {
        self.hit("backup_codes_remaining");
        self.inner.backup_codes_remaining(user_id)
    }
    fn append_security_event(
        &self,
        user_id: &UserId,
        event: &SecurityEvent,
        max_entries: u32,
        forget_before: u64,
    ) -> impl Future<Output = Result<()>> + Send {
        self.hit("append_security_event");
        self.inner
            .append_security_event(user_id, event, max_entries, forget_before)
    }
    fn security_log(
        &self,
        user_id: &UserId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<SecurityEvent>>> + Send {
        self.hit("security_log");
        self.inner.security_log(user_id, limit)
    }
    fn account_and_authenticators(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Option<(AccountRecord, Vec<AuthenticatorRecord>)>>> + Send
    {
        self.hit("account_and_authenticators");
        self.inner.account_and_authenticators(user_id)
    }
}

impl<S: EphemeralStore> EphemeralStore for Counting<S> {
    fn create_pending_login(
        &self,
        token: &KeyedHash,
        login: &PendingLogin,
    ) -> impl Future<Output = Result<()>> + Send {
        self.hit("create_pending_login");
        self.inner.create_pending_login(token, login)
    }
    fn begin_login_attempt(
        &self,
        token: &KeyedHash,
        max_attempts: u32,
        now: u64,
    ) -> impl Future<Output = Result<Option<PendingLogin>>> + Send {
        self.hit("begin_login_attempt");
        self.inner.begin_login_attempt(token, max_attempts, now)
    }
    fn take_pending_login(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> impl Future<Output = Result<Option<PendingLogin>>> + Send {
        self.hit("take_pending_login");
        self.inner.take_pending_login(token, now)
    }
    fn delete_pending_login(&self, token: &KeyedHash) -> impl Future<Output = Result<()>> + Send {
        self.hit("delete_pending_login");
        self.inner.delete_pending_login(token)
    }
    fn put_enrollment(
        &self,
        user_id: &UserId,
        enrollment: &PendingEnrollment,
    ) -> impl Future<Output = Result<()>> + Send {
        self.hit("put_enrollment");
        self.inner.put_enrollment(user_id, enrollment)
    }
    fn enrollment(
        &self,
        user_id: &UserId,
        now: u64,
    ) -> impl Future<Output = Result<Option<PendingEnrollment>>> + Send {
        self.hit("enrollment");
        self.inner.enrollment(user_id, now)
    }
    fn take_enrollment(
        &self,
        user_id: &UserId,
        id: &str,
        now: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("take_enrollment");
        self.inner.take_enrollment(user_id, id, now)
    }
    fn put_ceremony(
        &self,
        key: &str,
        ceremony: &CeremonyRecord,
    ) -> impl Future<Output = Result<()>> + Send {
        self.hit("put_ceremony");
        self.inner.put_ceremony(key, ceremony)
    }
    fn take_ceremony(
        &self,
        key: &str,
        now: u64,
    ) -> impl Future<Output = Result<Option<CeremonyRecord>>> + Send {
        self.hit("take_ceremony");
        self.inner.take_ceremony(key, now)
    }
    fn advance_last_step(
        &self,
        id: &AuthenticatorId,
        step: u64,
        keep_until: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("advance_last_step");
        self.inner.advance_last_step(id, step, keep_until)
    }
    fn throttle(&self, key: &str, now: u64) -> impl Future<Output = Result<ThrottleState>> + Send {
        self.hit("throttle");
        self.inner.throttle(key, now)
    }
    fn update_throttle(
        &self,
        key: &str,
        expected: ThrottleState,
        new: ThrottleState,
        keep_until: u64,
        now: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("update_throttle");
        self.inner
            .update_throttle(key, expected, new, keep_until, now)
    }
    fn create_device(
        &self,
        token: &KeyedHash,
        device: &DeviceRecord,
    ) -> impl Future<Output = Result<()>> + Send {
        self.hit("create_device");
        self.inner.create_device(token, device)
    }
    fn device(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> impl Future<Output = Result<Option<DeviceRecord>>> + Send {
        self.hit("device");
        self.inner.device(token, now)
    }
    fn devices(
        &self,
        user_id: &UserId,
        now: u64,
    ) -> impl Future<Output = Result<Vec<DeviceRecord>>> + Send {
        self.hit("devices");
        self.inner.devices(user_id, now)
    }
    fn revoke_device(
        &self,
        user_id: &UserId,
        id: &DeviceId,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("revoke_device");
        self.inner.revoke_device(user_id, id)
    }
    fn revoke_all_devices(&self, user_id: &UserId) -> impl Future<Output = Result<u32>> + Send {
        self.hit("revoke_all_devices");
        self.inner.revoke_all_devices(user_id)
    }
    fn create_session(
        &self,
        token: &KeyedHash,
        session: &SessionRecord,
    ) -> impl Future<Output = Result<()>> + Send {
        self.hit("create_session");
        self.inner.create_session(token, session)
    }
    fn session(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> impl Future<Output = Result<Option<SessionRecord>>> + Send {
        self.hit("session");
        self.inner.session(token, now)
    }
    fn delete_session(&self, token: &KeyedHash) -> impl Future<Output = Result<()>> + Send {
        self.hit("delete_session");
        self.inner.delete_session(token)
    }
    fn sessions(
        &self,
        user_id: &UserId,
        now: u64,
    ) -> impl Future<Output = Result<Vec<SessionRecord>>> + Send {
        self.hit("sessions");
        self.inner.sessions(user_id, now)
    }
    fn reauthenticate_session(
        &self,
        token: &KeyedHash,
        at: u64,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("reauthenticate_session");
        self.inner.reauthenticate_session(token, at)
    }
    fn delete_session_by_id(
        &self,
        user_id: &UserId,
        id: &SessionId,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.hit("delete_session_by_id");
        self.inner.delete_session_by_id(user_id, id)
    }
    fn delete_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
    ) -> impl Future<Output = Result<u32>> + Send {
        self.hit("delete_sessions");
        self.inner.delete_sessions(user_id, keep)
    }
    fn purge_expired(&self, now: u64) -> impl Future<Output = Result<u64>> + Send {
        self.hit("purge_expired");
        self.inner.purge_expired(now)
    }
    fn read_factor_ephemeral(
        &self,
        tokens: &[KeyedHash],
        max_attempts: u32,
        now: u64,
    ) -> impl Future<Output = Result<Option<FactorEphemeralView>>> + Send {
        self.hit("read_factor_ephemeral");
        self.inner.read_factor_ephemeral(tokens, max_attempts, now)
    }
    fn commit_factor_ephemeral(
        &self,
        commit: &FactorCommit<'_>,
    ) -> impl Future<Output = Result<FactorCommitted>> + Send {
        self.hit("commit_factor_ephemeral");
        self.inner.commit_factor_ephemeral(commit)
    }
}
