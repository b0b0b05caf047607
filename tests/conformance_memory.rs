//! The conformance suite on the in-memory store: alone, as several handles of one
//! store, and as both halves of a `Combined` store.
#![cfg(feature = "conformance")]

use std::time::Instant;

use secondfactor::store::conformance::{self, RaceConfig};
use secondfactor::store::{Combined, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    let store = MemoryStore::new();
    // Four handles on one store stand in for four server instances.
    let handles = [store.clone(), store.clone(), store.clone(), store];
    let start = Instant::now();
    conformance::all(&handles, RaceConfig::default()).await;
    eprintln!("MemoryStore x4: all checks in {:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_memory_store_conforms() {
    conformance::all(&[MemoryStore::new()], RaceConfig::default().with_rounds(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn combined_memory_stores_conform() {
    let accounts = MemoryStore::new();
    let ephemeral = MemoryStore::new();
    let handles: Vec<_> = (0..3)
        .map(|_| Combined::new(accounts.clone(), ephemeral.clone()))
        .collect();
    let start = Instant::now();
    conformance::all(&handles, RaceConfig::default()).await;
    eprintln!(
        "Combined<MemoryStore, MemoryStore> x3: all checks in {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn halves_conform_alone() {
    let store = MemoryStore::new();
    let handles = [store.clone(), store];
    let config = RaceConfig::new(50, 8);
    conformance::accounts_all(&handles, config).await;
    conformance::ephemeral_all(&handles, config).await;
}

#[test]
#[should_panic(expected = "multi-threaded tokio runtime")]
fn races_refuse_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(conformance::races(
        &[MemoryStore::new()],
        RaceConfig::new(1, 2),
    ));
}

// ---------------------------------------------------------------------------------------
// The suite catches broken stores
// ---------------------------------------------------------------------------------------

/// An ephemeral store with one deliberate check-then-act bug: it reads, yields to
/// the scheduler, then writes, as a store does that runs a read and a write as two
/// statements without a transaction or a compare-and-set. Used one call at a time it
/// is correct, so only the races can catch it.
mod flawed {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use secondfactor::Result;
    use secondfactor::secret::KeyedHash;
    use secondfactor::store::{
        AuthenticatorId, CeremonyRecord, DeviceId, DeviceRecord, EphemeralStore, MemoryStore,
        PendingEnrollment, PendingLogin, SessionId, SessionRecord, ThrottleState, UserId,
    };

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Flaw {
        /// None: every method is atomic.
        None,
        /// `advance_last_step` compares, then writes.
        Replay,
        /// `update_throttle` compares, then writes.
        Throttle,
        /// `take_pending_login` reads, then deletes.
        Take,
        /// `begin_login_attempt` reads, then writes the incremented copy back.
        Attempt,
        /// `take_enrollment` compares the id, then deletes whatever is there.
        Enrollment,
        /// `delete_sessions` lists the sessions, then deletes them one by one and
        /// counts every one it listed.
        DeleteSessions,
        /// `take_ceremony` reads the WebAuthn ceremony, then deletes it.
        Ceremony,
        /// `update_throttle` compares, then writes, when it resets a throttle to the
        /// default state (a delete, as a Redis `GET`, compare, `DEL` without a
        /// script); other writes are a compare-and-set.
        ThrottleReset,
        /// `delete_sessions` deletes the sessions it listed one by one, counting
        /// each, then deletes the account's others (created since it listed them)
        /// without counting them, as a Redis store does that deletes the listed keys
        /// and then the whole per-account index.
        DeleteSessionsSweep,
        /// `reauthenticate_session` reads the session, then writes the whole record
        /// back with the new time, whether or not it is still there.
        Reauthenticate,
    }

    #[derive(Default)]
    struct State {
        steps: HashMap<AuthenticatorId, u64>,
        /// The state and its keep_until.
        throttles: HashMap<String, (ThrottleState, u64)>,
        pending: HashMap<[u8; 32], PendingLogin>,
        enrollments: HashMap<UserId, PendingEnrollment>,
        ceremonies: HashMap<String, CeremonyRecord>,
    }

    #[derive(Clone)]
    pub struct Flawed {
        flaw: Flaw,
        state: Arc<Mutex<State>>,
        // Devices and sessions (`delete_sessions` may be flawed on top).
        inner: MemoryStore,
    }

    impl Flawed {
        pub fn new(flaw: Flaw) -> Self {
            Flawed {
                flaw,
                state: Arc::default(),
                inner: MemoryStore::new(),
            }
        }

        fn state(&self) -> std::sync::MutexGuard<'_, State> {
            self.state.lock().unwrap()
        }

        /// The gap between the read and the write, when this method is the flawed one.
        async fn gap(&self, flaw: Flaw) {
            if self.flaw == flaw {
                tokio::task::yield_now().await;
            }
        }
    }

    impl EphemeralStore for Flawed {
        async fn put_ceremony(&self, key: &str, ceremony: &CeremonyRecord) -> Result<()> {
            self.state()
                .ceremonies
                .insert(key.to_owned(), ceremony.clone());
            Ok(())
        }

        async fn take_ceremony(&self, key: &str, now: u64) -> Result<Option<CeremonyRecord>> {
            if self.flaw == Flaw::Ceremony {
                let read = self.state().ceremonies.get(key).cloned();
                self.gap(Flaw::Ceremony).await;
                self.state().ceremonies.remove(key);
                return Ok(read.filter(|c| c.expires_at > now));
            }
            let taken = self.state().ceremonies.remove(key);
            Ok(taken.filter(|c| c.expires_at > now))
        }

        async fn create_pending_login(
            &self,
            token: &KeyedHash,
            login: &PendingLogin,
        ) -> Result<()> {
            self.state().pending.insert(token.0, login.clone());
            Ok(())
        }

        async fn begin_login_attempt(
            &self,
            token: &KeyedHash,
            max_attempts: u32,
            now: u64,
        ) -> Result<Option<PendingLogin>> {
            let read = self.state().pending.get(&token.0).cloned();
            let Some(mut p) = read else {
                return Ok(None);
            };
            if p.expires_at <= now || p.attempts >= max_attempts {
                self.state().pending.remove(&token.0);
                return Ok(None);
            }
            p.attempts += 1;
            self.gap(Flaw::Attempt).await;
            let mut state = self.state();
            if self.flaw == Flaw::Attempt {
                state.pending.insert(token.0, p.clone());
                return Ok(Some(p));
            }
            // The correct version: increment what is there now, under the lock.
            match state.pending.get_mut(&token.0) {
                Some(q) if q.attempts < max_attempts => {
                    q.attempts += 1;
                    Ok(Some(q.clone()))
                }
                Some(_) => {
                    state.pending.remove(&token.0);
                    Ok(None)
                }
                None => Ok(None),
            }
        }

        async fn take_pending_login(
            &self,
            token: &KeyedHash,
            now: u64,
        ) -> Result<Option<PendingLogin>> {
            if self.flaw == Flaw::Take {
                let read = self.state().pending.get(&token.0).cloned();
                self.gap(Flaw::Take).await;
                self.state().pending.remove(&token.0);
                return Ok(read.filter(|p| p.expires_at > now));
            }
            Ok(self
                .state()
                .pending
                .remove(&token.0)
                .filter(|p| p.expires_at > now))
        }

        async fn delete_pending_login(&self, token: &KeyedHash) -> Result<()> {
            self.state().pending.remove(&token.0);
            Ok(())
        }

        async fn put_enrollment(
            &self,
            user_id: &UserId,
            enrollment: &PendingEnrollment,
        ) -> Result<()> {
            self.state()
                .enrollments
                .insert(user_id.clone(), enrollment.clone());
            Ok(())
        }

        async fn enrollment(
            &self,
            user_id: &UserId,
            now: u64,
        ) -> Result<Option<PendingEnrollment>> {
            Ok(self
                .state()
                .enrollments
                .get(user_id)
                .filter(|e| e.expires_at > now)
                .cloned())
        }

        async fn take_enrollment(&self, user_id: &UserId, id: &str, now: u64) -> Result<bool> {
            let matches =
                |e: Option<&PendingEnrollment>| e.is_some_and(|e| e.id == id && e.expires_at > now);
            if self.flaw == Flaw::Enrollment {
                if !matches(self.state().enrollments.get(user_id)) {
                    return Ok(false);
                }
                self.gap(Flaw::Enrollment).await;
                self.state().enrollments.remove(user_id);
                return Ok(true);
            }
            let mut state = self.state();
            if matches(state.enrollments.get(user_id)) {
                state.enrollments.remove(user_id);
                return Ok(true);
            }
            Ok(false)
        }

        async fn advance_last_step(
            &self,
            id: &AuthenticatorId,
            step: u64,
            _keep_until: u64,
        ) -> Result<bool> {
            let last = self.state().steps.get(id).copied();
            if last.is_some_and(|last| last >= step) {
                return Ok(false);
            }
            self.gap(Flaw::Replay).await;
            let mut state = self.state();
            if self.flaw == Flaw::Replay {
                state.steps.insert(id.clone(), step);
                return Ok(true);
            }
            match state.steps.get(id) {
                Some(&last) if last >= step => Ok(false),
                _ => {
                    state.steps.insert(id.clone(), step);
                    Ok(true)
                }
            }
        }

        async fn throttle(&self, key: &str, now: u64) -> Result<ThrottleState> {
            Ok(self
                .state()
                .throttles
                .get(key)
                .filter(|(_, keep)| *keep > now)
                .map(|(s, _)| *s)
                .unwrap_or_default())
        }

        async fn update_throttle(
            &self,
            key: &str,
            expected: ThrottleState,
            new: ThrottleState,
            keep_until: u64,
            now: u64,
        ) -> Result<bool> {
            let current = |s: &State| {
                s.throttles
                    .get(key)
                    .filter(|(_, keep)| *keep > now)
                    .map(|(s, _)| *s)
                    .unwrap_or_default()
            };
            let reset = new == ThrottleState::default();
            let flaw = if reset && self.flaw == Flaw::ThrottleReset {
                Flaw::ThrottleReset
            } else {
                Flaw::Throttle
            };
            if self.flaw == flaw {
                if current(&self.state()) != expected {
                    return Ok(false);
                }
                self.gap(flaw).await;
                self.state()
                    .throttles
                    .insert(key.to_owned(), (new, keep_until));
                return Ok(true);
            }
            let mut state = self.state();
            if current(&state) != expected {
                return Ok(false);
            }
            state.throttles.insert(key.to_owned(), (new, keep_until));
            Ok(true)
        }

        async fn create_device(&self, token: &KeyedHash, device: &DeviceRecord) -> Result<()> {
            self.inner.create_device(token, device).await
        }

        async fn device(&self, token: &KeyedHash, now: u64) -> Result<Option<DeviceRecord>> {
            self.inner.device(token, now).await
        }

        async fn devices(&self, user_id: &UserId, now: u64) -> Result<Vec<DeviceRecord>> {
            self.inner.devices(user_id, now).await
        }

        async fn revoke_device(&self, user_id: &UserId, id: &DeviceId) -> Result<bool> {
            self.inner.revoke_device(user_id, id).await
        }

        async fn revoke_all_devices(&self, user_id: &UserId) -> Result<u32> {
            self.inner.revoke_all_devices(user_id).await
        }

        async fn create_session(&self, token: &KeyedHash, session: &SessionRecord) -> Result<()> {
            self.inner.create_session(token, session).await
        }

        async fn session(&self, token: &KeyedHash, now: u64) -> Result<Option<SessionRecord>> {
            self.inner.session(token, now).await
        }

        async fn delete_session(&self, token: &KeyedHash) -> Result<()> {
            self.inner.delete_session(token).await
        }

        async fn sessions(&self, user_id: &UserId, now: u64) -> Result<Vec<SessionRecord>> {
            self.inner.sessions(user_id, now).await
        }

        async fn reauthenticate_session(&self, token: &KeyedHash, at: u64) -> Result<bool> {
            if self.flaw == Flaw::Reauthenticate {
                let Some(mut session) = self.inner.session(token, at).await? else {
                    return Ok(false);
                };
                self.gap(Flaw::Reauthenticate).await;
                // The write: the whole record, in place of whatever is there (or not).
                session.authenticated_at = at;
                self.inner.delete_session(token).await?;
                self.inner.create_session(token, &session).await?;
                return Ok(true);
            }
            self.inner.reauthenticate_session(token, at).await
        }

        async fn delete_session_by_id(&self, user_id: &UserId, id: &SessionId) -> Result<bool> {
            self.inner.delete_session_by_id(user_id, id).await
        }

        async fn delete_sessions(&self, user_id: &UserId, keep: Option<&SessionId>) -> Result<u32> {
            if self.flaw == Flaw::DeleteSessions {
                // Lists, then deletes one by one, counting what it listed.
                let listed = self.inner.sessions(user_id, 0).await?;
                let mut deleted = 0;
                for s in listed.iter().filter(|s| Some(&s.id) != keep) {
                    self.gap(Flaw::DeleteSessions).await;
                    self.inner.delete_session_by_id(user_id, &s.id).await?;
                    deleted += 1;
                }
                return Ok(deleted);
            }
            if self.flaw == Flaw::DeleteSessionsSweep {
                let listed = self.inner.sessions(user_id, 0).await?;
                let mut deleted = 0;
                for s in listed.iter().filter(|s| Some(&s.id) != keep) {
                    self.gap(Flaw::DeleteSessionsSweep).await;
                    if self.inner.delete_session_by_id(user_id, &s.id).await? {
                        deleted += 1;
                    }
                }
                // The sweep: what was created since the listing goes too, uncounted.
                for s in self.inner.sessions(user_id, 0).await? {
                    if Some(&s.id) != keep && !listed.iter().any(|l| l.id == s.id) {
                        self.inner.delete_session_by_id(user_id, &s.id).await?;
                    }
                }
                return Ok(deleted);
            }
            self.inner.delete_sessions(user_id, keep).await
        }

        async fn purge_expired(&self, now: u64) -> Result<u64> {
            let mut purged = 0;
            {
                let mut state = self.state();
                let before = state.pending.len() + state.enrollments.len() + state.throttles.len();
                state.pending.retain(|_, p| p.expires_at > now);
                state.enrollments.retain(|_, e| e.expires_at > now);
                state.throttles.retain(|_, (_, keep)| *keep > now);
                let after = state.pending.len() + state.enrollments.len() + state.throttles.len();
                purged += (before - after) as u64;
            }
            Ok(purged + self.inner.purge_expired(now).await?)
        }
    }
}

/// Runs the ephemeral suite on a store with `flaw` and returns the panic message.
fn caught(flaw: flawed::Flaw) -> String {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let store = flawed::Flawed::new(flaw);
    let handles = [store.clone(), store];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(conformance::ephemeral_all(
            &handles,
            RaceConfig::new(100, 16),
        ))
    }));
    let payload = match outcome {
        Ok(()) => panic!("the suite passed a store with the flaw {flaw:?}"),
        Err(payload) => payload,
    };
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Asserts that the ephemeral suite fails a store with `flaw`, with a message
/// holding every one of `parts`.
fn assert_caught(flaw: flawed::Flaw, parts: &[&str]) {
    let msg = caught(flaw);
    assert!(
        parts.iter().all(|part| msg.contains(part)),
        "{flaw:?} was caught, but not by the check expected ({parts:?}): {msg}"
    );
}

#[test]
fn the_wrapper_without_a_flaw_passes() {
    // So the failures below come from the flaws alone.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let store = flawed::Flawed::new(flawed::Flaw::None);
    let handles = [store.clone(), store];
    rt.block_on(conformance::ephemeral_all(
        &handles,
        RaceConfig::new(100, 16),
    ));
}

#[test]
fn races_catch_a_non_atomic_replay_mark() {
    let msg = caught(flawed::Flaw::Replay);
    assert!(msg.contains("advance_last_step race (round"), "{msg}");
}

#[test]
fn races_catch_a_non_atomic_throttle_update() {
    let msg = caught(flawed::Flaw::Throttle);
    assert!(
        msg.contains("update_throttle") && msg.contains("race (round"),
        "{msg}"
    );
}

#[test]
fn races_catch_a_non_atomic_take() {
    let msg = caught(flawed::Flaw::Take);
    assert!(
        msg.contains("take_pending_login") && msg.contains("race (round"),
        "{msg}"
    );
}

#[test]
fn races_catch_a_lost_attempt_count() {
    let msg = caught(flawed::Flaw::Attempt);
    assert!(
        msg.contains("begin_login_attempt") && msg.contains("race (round"),
        "{msg}"
    );
}

#[test]
fn races_catch_a_non_atomic_enrollment_take() {
    let msg = caught(flawed::Flaw::Enrollment);
    assert!(
        msg.contains("take_enrollment") && msg.contains("race (round"),
        "{msg}"
    );
}

#[test]
fn races_catch_a_non_atomic_delete_sessions() {
    let msg = caught(flawed::Flaw::DeleteSessions);
    assert!(msg.contains("delete_sessions race (round"), "{msg}");
}

#[test]
fn races_catch_a_non_atomic_throttle_reset() {
    // The compare-and-sets that write a state are atomic and pass the first round;
    // only the second round, resetting to the default state, catches this one.
    assert_caught(
        flawed::Flaw::ThrottleReset,
        &[
            "update_throttle race (round",
            "concurrent resets to the default state",
        ],
    );
}

#[test]
fn races_catch_a_delete_sessions_that_sweeps_new_sessions_uncounted() {
    // Concurrent deletes alone count right (the `delete_sessions` race passes); a
    // session created while the delete runs is deleted but not counted.
    assert_caught(
        flawed::Flaw::DeleteSessionsSweep,
        &[
            "delete_sessions against create_session (round",
            "every session must be one or the other",
        ],
    );
}

#[test]
fn races_catch_a_reauthentication_that_resurrects_a_deleted_session() {
    assert_caught(
        flawed::Flaw::Reauthenticate,
        &[
            "delete_session against reauthenticate_session (round",
            "brought the deleted session back",
        ],
    );
}

// ---------------------------------------------------------------------------------------
// ... and broken account stores
// ---------------------------------------------------------------------------------------

/// An account store: [`MemoryStore`] with one deliberate bug in `set_password` or
/// `add_authenticator`. The "ignores" flaws break the contract one call at a time;
/// the "check, then write" flaws read, yield to the scheduler, then write, so only
/// the races can catch them.
mod flawed_accounts {
    use secondfactor::Error;
    use secondfactor::Result;
    use secondfactor::password::PasswordHash;
    use secondfactor::secret::{KeyedHash, SealedSecret};
    use secondfactor::security_log::SecurityEvent;
    use secondfactor::store::{
        AccountRecord, AccountStore, AuthenticatorId, AuthenticatorRecord, MemoryStore,
        RemoveOutcome, UserId,
    };

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Flaw {
        /// None: every method keeps the contract.
        None,
        /// `set_password` writes whatever the account's epoch (no compare-and-set).
        PasswordIgnoresEpoch,
        /// `set_password` compares the epoch, then writes (a read and an UPDATE
        /// without `WHERE epoch = ?`).
        PasswordCheckThenWrite,
        /// `set_password` compares, then writes, for a rehash (`expected_epoch ==
        /// new_epoch`) only; a password change is a compare-and-set.
        RehashCheckThenWrite,
        /// `add_authenticator` ignores `max_authenticators`.
        CapIgnored,
        /// `add_authenticator` counts the authenticators, then inserts.
        CapCheckThenAdd,
        /// `update_authenticator_secret` compares the stored secret, then writes.
        SecretCheckThenWrite,
    }

    #[derive(Clone)]
    pub struct FlawedAccounts {
        flaw: Flaw,
        inner: MemoryStore,
    }

    impl FlawedAccounts {
        pub fn new(flaw: Flaw) -> Self {
            FlawedAccounts {
                flaw,
                inner: MemoryStore::new(),
            }
        }

        /// Writes the hash and epoch whatever the account's epoch is now.
        async fn force_password(
            &self,
            user_id: &UserId,
            hash: &PasswordHash,
            new_epoch: u64,
        ) -> Result<bool> {
            loop {
                let Some(a) = self.inner.account(user_id).await? else {
                    return Ok(false);
                };
                if self
                    .inner
                    .set_password(user_id, hash, a.password_epoch, new_epoch)
                    .await?
                {
                    return Ok(true);
                }
            }
        }
    }

    impl AccountStore for FlawedAccounts {
        async fn create_account(&self, account: &AccountRecord) -> Result<()> {
            self.inner.create_account(account).await
        }

        async fn account_by_username(&self, username: &str) -> Result<Option<AccountRecord>> {
            self.inner.account_by_username(username).await
        }

        async fn account(&self, user_id: &UserId) -> Result<Option<AccountRecord>> {
            self.inner.account(user_id).await
        }

        async fn set_password(
            &self,
            user_id: &UserId,
            hash: &PasswordHash,
            expected_epoch: u64,
            new_epoch: u64,
        ) -> Result<bool> {
            let check_then_write = self.flaw == Flaw::PasswordCheckThenWrite
                || (self.flaw == Flaw::RehashCheckThenWrite && expected_epoch == new_epoch);
            if self.flaw == Flaw::PasswordIgnoresEpoch {
                return self.force_password(user_id, hash, new_epoch).await;
            }
            if check_then_write {
                let read = self.inner.account(user_id).await?;
                if read.is_none_or(|a| a.password_epoch != expected_epoch) {
                    return Ok(false);
                }
                tokio::task::yield_now().await;
                return self.force_password(user_id, hash, new_epoch).await;
            }
            self.inner
                .set_password(user_id, hash, expected_epoch, new_epoch)
                .await
        }

        async fn authenticators(&self, user_id: &UserId) -> Result<Vec<AuthenticatorRecord>> {
            self.inner.authenticators(user_id).await
        }

        async fn enable_two_factor(
            &self,
            authenticator: &AuthenticatorRecord,
            backup_codes: &[KeyedHash],
            backup_key_id: u32,
        ) -> Result<()> {
            self.inner
                .enable_two_factor(authenticator, backup_codes, backup_key_id)
                .await
        }

        async fn add_authenticator(
            &self,
            authenticator: &AuthenticatorRecord,
            max_authenticators: u32,
        ) -> Result<()> {
            match self.flaw {
                Flaw::CapIgnored => self.inner.add_authenticator(authenticator, u32::MAX).await,
                Flaw::CapCheckThenAdd => {
                    let n = self
                        .inner
                        .authenticators(&authenticator.user_id)
                        .await?
                        .len();
                    if n >= max_authenticators as usize {
                        return Err(Error::TooManyAuthenticators);
                    }
                    tokio::task::yield_now().await;
                    self.inner.add_authenticator(authenticator, u32::MAX).await
                }
                _ => {
                    self.inner
                        .add_authenticator(authenticator, max_authenticators)
                        .await
                }
            }
        }

        async fn remove_authenticator(
            &self,
            user_id: &UserId,
            id: &AuthenticatorId,
        ) -> Result<RemoveOutcome> {
            self.inner.remove_authenticator(user_id, id).await
        }

        async fn reseal_authenticator(
            &self,
            user_id: &UserId,
            id: &AuthenticatorId,
            sealed_secret: &SealedSecret,
        ) -> Result<bool> {
            self.inner
                .reseal_authenticator(user_id, id, sealed_secret)
                .await
        }

        async fn update_authenticator_secret(
            &self,
            user_id: &UserId,
            id: &AuthenticatorId,
            expected: &SealedSecret,
            new: &SealedSecret,
        ) -> Result<bool> {
            if self.flaw == Flaw::SecretCheckThenWrite {
                let current = self.inner.authenticators(user_id).await?;
                if !current
                    .iter()
                    .any(|a| &a.id == id && &a.sealed_secret == expected)
                {
                    return Ok(false);
                }
                tokio::task::yield_now().await;
                return self.inner.reseal_authenticator(user_id, id, new).await;
            }
            self.inner
                .update_authenticator_secret(user_id, id, expected, new)
                .await
        }

        async fn disable_two_factor(&self, user_id: &UserId) -> Result<bool> {
            self.inner.disable_two_factor(user_id).await
        }

        async fn replace_backup_codes(
            &self,
            user_id: &UserId,
            hashes: &[KeyedHash],
            key_id: u32,
        ) -> Result<()> {
            self.inner
                .replace_backup_codes(user_id, hashes, key_id)
                .await
        }

        async fn consume_backup_code(&self, user_id: &UserId, hash: &KeyedHash) -> Result<bool> {
            self.inner.consume_backup_code(user_id, hash).await
        }

        async fn backup_codes_remaining(&self, user_id: &UserId) -> Result<u32> {
            self.inner.backup_codes_remaining(user_id).await
        }

        async fn append_security_event(
            &self,
            user_id: &UserId,
            event: &SecurityEvent,
            max_entries: u32,
            forget_before: u64,
        ) -> Result<()> {
            self.inner
                .append_security_event(user_id, event, max_entries, forget_before)
                .await
        }

        async fn security_log(&self, user_id: &UserId, limit: u32) -> Result<Vec<SecurityEvent>> {
            self.inner.security_log(user_id, limit).await
        }
    }
}

/// Runs the account suite on a store with `flaw`; `None` when it passed, else the
/// panic message.
fn run_accounts(flaw: flawed_accounts::Flaw) -> Option<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let store = flawed_accounts::FlawedAccounts::new(flaw);
    let handles = [store.clone(), store];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(conformance::accounts_all(
            &handles,
            RaceConfig::new(100, 16),
        ))
    }));
    let payload = outcome.err()?;
    Some(
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

fn caught_accounts(flaw: flawed_accounts::Flaw) -> String {
    match run_accounts(flaw) {
        Some(msg) => msg,
        None => panic!("the suite passed an account store with the flaw {flaw:?}"),
    }
}

#[test]
fn the_account_wrapper_without_a_flaw_passes() {
    // So the failures below come from the flaws alone.
    if let Some(msg) = run_accounts(flawed_accounts::Flaw::None) {
        panic!("the account wrapper without a flaw failed: {msg}");
    }
}

#[test]
fn checks_catch_a_password_write_that_ignores_the_epoch() {
    let msg = caught_accounts(flawed_accounts::Flaw::PasswordIgnoresEpoch);
    assert!(
        msg.starts_with("set_password: ") && msg.contains("stale"),
        "{msg}"
    );
}

#[test]
fn races_catch_a_non_atomic_password_compare_and_set() {
    let msg = caught_accounts(flawed_accounts::Flaw::PasswordCheckThenWrite);
    assert!(msg.contains("set_password race (round"), "{msg}");
}

#[test]
fn checks_catch_an_ignored_authenticator_cap() {
    let msg = caught_accounts(flawed_accounts::Flaw::CapIgnored);
    assert!(
        msg.starts_with("add_authenticator: ") && msg.contains("TooManyAuthenticators"),
        "{msg}"
    );
}

#[test]
fn races_catch_a_non_atomic_authenticator_cap() {
    let msg = caught_accounts(flawed_accounts::Flaw::CapCheckThenAdd);
    assert!(
        msg.contains("add_authenticator race (round") && msg.contains("max_authenticators"),
        "{msg}"
    );
}

#[test]
fn races_catch_a_rehash_that_undoes_a_password_change() {
    let msg = caught_accounts(flawed_accounts::Flaw::RehashCheckThenWrite);
    assert!(
        msg.contains("set_password race (round") && msg.contains("never undo a password change"),
        "{msg}"
    );
}

#[test]
fn races_catch_a_non_atomic_ceremony_take() {
    let msg = caught(flawed::Flaw::Ceremony);
    assert!(
        msg.contains("take_ceremony") && msg.contains("race (round"),
        "{msg}"
    );
}

#[test]
fn races_catch_a_non_atomic_authenticator_secret_update() {
    let msg = caught_accounts(flawed_accounts::Flaw::SecretCheckThenWrite);
    assert!(
        msg.contains("update_authenticator_secret race (round"),
        "{msg}"
    );
}
