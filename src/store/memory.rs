//! The in-memory store.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, MutexGuard};

use super::*;

const SHARDS: usize = 64;

/// A map split into independently locked shards, so that tasks working on different
/// keys rarely wait for each other. Every operation locks exactly one shard, and no
/// lock is held across an `.await`.
struct Sharded<K, V> {
    hasher: RandomState,
    shards: Box<[Mutex<HashMap<K, V>>]>,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn new() -> Self {
        Sharded {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Locks the shard of `key`. Takes any borrowed form of the key (`&str` for a
    /// `String` key) whose hash equals the key's, so lookups need no owned key.
    fn lock<Q>(&self, key: &Q) -> MutexGuard<'_, HashMap<K, V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + ?Sized,
    {
        // A poisoned shard only means another thread panicked while holding it; the
        // map itself is always left consistent by the operations below.
        self.lock_shard(self.shard_of(key))
    }

    /// The index of the shard of `key`.
    fn shard_of<Q>(&self, key: &Q) -> usize
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + ?Sized,
    {
        (self.hasher.hash_one(key) as usize) % self.shards.len()
    }

    /// Locks shard `i` (from [`shard_of`](Self::shard_of)).
    fn lock_shard(&self, i: usize) -> MutexGuard<'_, HashMap<K, V>> {
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Like [`retain_all`](Self::retain_all), with the key; `keep` may lock other maps
    /// (never this one).
    fn retain_all_keyed(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|k, v| keep(k, v));
        }
    }

    fn retain_all(&self, mut keep: impl FnMut(&mut V) -> bool) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, v| keep(v));
        }
    }
}

#[derive(Default)]
struct UserData {
    account: Option<AccountRecord>,
    authenticators: Vec<AuthenticatorRecord>,
    backup_codes: Vec<[u8; 32]>,
    devices: Vec<([u8; 32], DeviceRecord)>,
    sessions: Vec<([u8; 32], SessionRecord)>,
    /// Newest at the front.
    security_log: VecDeque<SecurityEvent>,
}

struct Inner {
    usernames: Sharded<String, UserId>,
    users: Sharded<UserId, UserData>,
    pending: Sharded<[u8; 32], PendingLogin>,
    enrollments: Sharded<UserId, PendingEnrollment>,
    steps: Sharded<AuthenticatorId, (u64, u64)>,
    throttles: Sharded<String, (ThrottleState, u64)>,
    device_index: Sharded<[u8; 32], UserId>,
    session_index: Sharded<[u8; 32], UserId>,
    ceremonies: Sharded<String, CeremonyRecord>,
}

/// An in-memory [`Store`]: for tests, examples, and single-process services that
/// can lose their state on restart.
///
/// Cloning is cheap and shares the data. Data is kept in 64 independently locked
/// shards per table, so concurrent logins of different users do not queue on one
/// lock. Expired records are treated as absent (and some are dropped when touched);
/// call [`purge_expired`](EphemeralStore::purge_expired) now and then to bound memory
/// in a long-running process.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                usernames: Sharded::new(),
                users: Sharded::new(),
                pending: Sharded::new(),
                enrollments: Sharded::new(),
                steps: Sharded::new(),
                throttles: Sharded::new(),
                device_index: Sharded::new(),
                session_index: Sharded::new(),
                ceremonies: Sharded::new(),
            }),
        }
    }

    /// Drops every record that expired at or before `now`; returns how many it
    /// dropped (records, not index entries).
    fn purge(&self, now: u64) -> u64 {
        let i = &self.inner;
        let mut n = 0u64;
        let mut gone = |keep: bool| {
            if !keep {
                n += 1;
            }
            keep
        };
        i.pending.retain_all(|p| gone(p.expires_at > now));
        i.enrollments.retain_all(|e| gone(e.expires_at > now));
        i.ceremonies.retain_all(|c| gone(c.expires_at > now));
        i.steps.retain_all(|(_, keep)| gone(*keep > now));
        i.throttles.retain_all(|(_, keep)| gone(*keep > now));
        i.users.retain_all(|u| {
            u.devices.retain(|(_, d)| gone(d.expires_at > now));
            u.sessions.retain(|(_, s)| gone(s.expires_at > now));
            u.security_log
                .retain(|e| e.at.saturating_add(crate::security_log::RETENTION_SECS) > now);
            true
        });
        // Index entries whose device or session is gone point nowhere; drop them.
        self.prune_index::<DeviceRecord>();
        self.prune_index::<SessionRecord>();
        n
    }

    fn prune_index<R: TokenRecord>(&self) {
        let i = &self.inner;
        R::index(i).retain_all_keyed(|hash, user_id| {
            let mut users = i.users.lock(user_id);
            users
                .get_mut(user_id)
                .is_some_and(|u| R::list(u).iter().any(|(h, _)| h == hash))
        });
    }

    /// Stores `record` under `token` in its account's list (oldest first by
    /// `created_at`; equal times keep insertion order) and in the token index.
    fn add_token<R: TokenRecord>(&self, token: &KeyedHash, record: &R) {
        let user_id = record.user_id();
        {
            let mut users = self.inner.users.lock(user_id);
            let list = R::list(users.entry(user_id.clone()).or_default());
            let pos = list.partition_point(|(_, r)| r.created_at() <= record.created_at());
            list.insert(pos, (token.0, record.clone()));
        }
        R::index(&self.inner)
            .lock(&token.0)
            .insert(token.0, user_id.clone());
    }

    /// Runs `f` on the unexpired record stored under `token`, if any.
    fn with_token<R: TokenRecord, T>(
        &self,
        token: &KeyedHash,
        now: u64,
        f: impl FnOnce(&mut R) -> T,
    ) -> Option<T> {
        let user_id = R::index(&self.inner)
            .lock(&token.0)
            .get(&token.0)
            .cloned()?;
        let mut users = self.inner.users.lock(&user_id);
        let user = users.get_mut(&user_id)?;
        R::list(user)
            .iter_mut()
            .find(|(h, r)| KeyedHash(*h) == *token && r.expires_at() > now)
            .map(|(_, r)| f(r))
    }

    /// The account's unexpired records of one kind, oldest first.
    fn live_tokens<R: TokenRecord>(&self, user_id: &UserId, now: u64) -> Vec<R> {
        let mut users = self.inner.users.lock(user_id);
        users
            .get_mut(user_id)
            .map(|u| {
                R::list(u)
                    .iter()
                    .filter(|(_, r)| r.expires_at() > now)
                    .map(|(_, r)| r.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Removes the account's records for which `gone` holds (list and index);
    /// returns how many.
    fn remove_tokens<R: TokenRecord>(&self, user_id: &UserId, gone: impl Fn(&R) -> bool) -> u32 {
        let removed: Vec<[u8; 32]> = {
            let mut users = self.inner.users.lock(user_id);
            match users.get_mut(user_id) {
                Some(u) => {
                    let (out, kept) = std::mem::take(R::list(u))
                        .into_iter()
                        .partition(|(_, r)| gone(r));
                    *R::list(u) = kept;
                    out.into_iter().map(|(h, _)| h).collect()
                }
                None => Vec::new(),
            }
        };
        for hash in &removed {
            R::index(&self.inner).lock(hash).remove(hash);
        }
        u32::try_from(removed.len()).unwrap_or(u32::MAX)
    }
}

/// A record stored under a token's keyed hash in its account's list, with an index
/// from the hash to the account: trusted devices and sessions.
trait TokenRecord: Clone {
    type Id: PartialEq;
    fn id(&self) -> &Self::Id;
    fn user_id(&self) -> &UserId;
    fn created_at(&self) -> u64;
    fn expires_at(&self) -> u64;
    fn list(user: &mut UserData) -> &mut Vec<([u8; 32], Self)>;
    fn index(inner: &Inner) -> &Sharded<[u8; 32], UserId>;
}

macro_rules! token_record {
    ($record:ty, $id:ty, $list:ident, $index:ident) => {
        impl TokenRecord for $record {
            type Id = $id;
            fn id(&self) -> &$id {
                &self.id
            }
            fn user_id(&self) -> &UserId {
                &self.user_id
            }
            fn created_at(&self) -> u64 {
                self.created_at
            }
            fn expires_at(&self) -> u64 {
                self.expires_at
            }
            fn list(user: &mut UserData) -> &mut Vec<([u8; 32], Self)> {
                &mut user.$list
            }
            fn index(inner: &Inner) -> &Sharded<[u8; 32], UserId> {
                &inner.$index
            }
        }
    };
}

token_record!(DeviceRecord, DeviceId, devices, device_index);
token_record!(SessionRecord, SessionId, sessions, session_index);

impl AccountStore for MemoryStore {
    async fn create_account(&self, account: &AccountRecord) -> Result<()> {
        {
            let mut names = self.inner.usernames.lock(&account.username);
            if names.contains_key(&account.username) {
                return Err(crate::Error::UsernameTaken);
            }
            names.insert(account.username.clone(), account.id.clone());
        }
        let mut users = self.inner.users.lock(&account.id);
        users.entry(account.id.clone()).or_default().account = Some(account.clone());
        Ok(())
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<AccountRecord>> {
        let id = self.inner.usernames.lock(username).get(username).cloned();
        match id {
            Some(id) => self.account(&id).await,
            None => Ok(None),
        }
    }

    async fn account(&self, user_id: &UserId) -> Result<Option<AccountRecord>> {
        Ok(self
            .inner
            .users
            .lock(user_id)
            .get(user_id)
            .and_then(|u| u.account.clone()))
    }

    async fn set_password(
        &self,
        user_id: &UserId,
        hash: &PasswordHash,
        expected_epoch: u64,
        new_epoch: u64,
    ) -> Result<bool> {
        let mut users = self.inner.users.lock(user_id);
        match users.get_mut(user_id).and_then(|u| u.account.as_mut()) {
            Some(a) if a.password_epoch == expected_epoch => {
                a.password_hash = hash.clone();
                a.password_epoch = new_epoch;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn authenticators(&self, user_id: &UserId) -> Result<Vec<AuthenticatorRecord>> {
        Ok(self
            .inner
            .users
            .lock(user_id)
            .get(user_id)
            .map(|u| u.authenticators.clone())
            .unwrap_or_default())
    }

    /// One lock: the account and its authenticators as one snapshot.
    async fn account_and_authenticators(
        &self,
        user_id: &UserId,
    ) -> Result<Option<(AccountRecord, Vec<AuthenticatorRecord>)>> {
        Ok(self
            .inner
            .users
            .lock(user_id)
            .get(user_id)
            .and_then(|u| Some((u.account.clone()?, u.authenticators.clone()))))
    }

    async fn enable_two_factor(
        &self,
        authenticator: &AuthenticatorRecord,
        backup_codes: &[KeyedHash],
        backup_key_id: u32,
    ) -> Result<()> {
        let user_id = &authenticator.user_id;
        let mut users = self.inner.users.lock(user_id);
        let user = users
            .get_mut(user_id)
            .filter(|u| u.account.is_some())
            .ok_or(crate::Error::NotFound { what: "account" })?;
        let account = user
            .account
            .as_mut()
            .ok_or(crate::Error::NotFound { what: "account" })?;
        if account.two_factor_enabled {
            return Err(crate::Error::TwoFactorAlreadyEnabled);
        }
        account.two_factor_enabled = true;
        account.backup_codes_key_id = Some(backup_key_id);
        user.authenticators = vec![authenticator.clone()];
        user.backup_codes = backup_codes.iter().map(|h| h.0).collect();
        Ok(())
    }

    async fn add_authenticator(
        &self,
        authenticator: &AuthenticatorRecord,
        max_authenticators: u32,
    ) -> Result<()> {
        let user_id = &authenticator.user_id;
        let mut users = self.inner.users.lock(user_id);
        let user = users
            .get_mut(user_id)
            .ok_or(crate::Error::NotFound { what: "account" })?;
        if !user.account.as_ref().is_some_and(|a| a.two_factor_enabled) {
            return Err(crate::Error::TwoFactorNotEnabled);
        }
        if user.authenticators.len() >= max_authenticators as usize {
            return Err(crate::Error::TooManyAuthenticators);
        }
        // Oldest first by `created_at`; equal times keep insertion order.
        let pos = user
            .authenticators
            .partition_point(|a| a.created_at <= authenticator.created_at);
        user.authenticators.insert(pos, authenticator.clone());
        Ok(())
    }

    async fn remove_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
    ) -> Result<RemoveOutcome> {
        let mut users = self.inner.users.lock(user_id);
        let Some(user) = users.get_mut(user_id) else {
            return Ok(RemoveOutcome::NotFound);
        };
        let Some(pos) = user.authenticators.iter().position(|a| &a.id == id) else {
            return Ok(RemoveOutcome::NotFound);
        };
        if user.authenticators.len() == 1 {
            return Ok(RemoveOutcome::LastOne);
        }
        user.authenticators.remove(pos);
        Ok(RemoveOutcome::Removed)
    }

    async fn reseal_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        sealed_secret: &SealedSecret,
    ) -> Result<bool> {
        let mut users = self.inner.users.lock(user_id);
        let found = users
            .get_mut(user_id)
            .and_then(|u| u.authenticators.iter_mut().find(|a| &a.id == id));
        match found {
            Some(a) => {
                a.sealed_secret = sealed_secret.clone();
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn update_authenticator_secret(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool> {
        let mut users = self.inner.users.lock(user_id);
        let found = users
            .get_mut(user_id)
            .and_then(|u| u.authenticators.iter_mut().find(|a| &a.id == id));
        match found {
            Some(a) if &a.sealed_secret == expected => {
                a.sealed_secret = new.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn disable_two_factor(&self, user_id: &UserId) -> Result<bool> {
        let mut users = self.inner.users.lock(user_id);
        let Some(user) = users.get_mut(user_id) else {
            return Ok(false);
        };
        let was = user.account.as_ref().is_some_and(|a| a.two_factor_enabled);
        if let Some(a) = user.account.as_mut() {
            a.two_factor_enabled = false;
            a.backup_codes_key_id = None;
        }
        user.authenticators.clear();
        user.backup_codes.clear();
        Ok(was)
    }

    async fn replace_backup_codes(
        &self,
        user_id: &UserId,
        hashes: &[KeyedHash],
        key_id: u32,
    ) -> Result<()> {
        let mut users = self.inner.users.lock(user_id);
        let user = users
            .get_mut(user_id)
            .ok_or(crate::Error::NotFound { what: "account" })?;
        user.backup_codes = hashes.iter().map(|h| h.0).collect();
        if let Some(a) = user.account.as_mut() {
            a.backup_codes_key_id = Some(key_id);
        }
        Ok(())
    }

    async fn consume_backup_code(&self, user_id: &UserId, hash: &KeyedHash) -> Result<bool> {
        let mut users = self.inner.users.lock(user_id);
        let Some(user) = users.get_mut(user_id) else {
            return Ok(false);
        };
        // The hashes are keyed, so the position of a match reveals nothing useful;
        // the comparison is still constant time per entry.
        let pos = user
            .backup_codes
            .iter()
            .position(|h| KeyedHash(*h) == *hash);
        match pos {
            Some(i) => {
                user.backup_codes.swap_remove(i);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn backup_codes_remaining(&self, user_id: &UserId) -> Result<u32> {
        Ok(self
            .inner
            .users
            .lock(user_id)
            .get(user_id)
            .map(|u| u32::try_from(u.backup_codes.len()).unwrap_or(u32::MAX))
            .unwrap_or(0))
    }

    async fn append_security_event(
        &self,
        user_id: &UserId,
        event: &SecurityEvent,
        max_entries: u32,
        forget_before: u64,
    ) -> Result<()> {
        let mut users = self.inner.users.lock(user_id);
        let Some(user) = users.get_mut(user_id).filter(|u| u.account.is_some()) else {
            return Ok(());
        };
        let log = &mut user.security_log;
        log.push_front(event.clone());
        log.truncate(max_entries as usize);
        log.retain(|e| e.at >= forget_before);
        Ok(())
    }

    async fn security_log(&self, user_id: &UserId, limit: u32) -> Result<Vec<SecurityEvent>> {
        Ok(self
            .inner
            .users
            .lock(user_id)
            .get(user_id)
            .map(|u| {
                u.security_log
                    .iter()
                    .take(limit as usize)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl EphemeralStore for MemoryStore {
    async fn create_pending_login(&self, token: &KeyedHash, login: &PendingLogin) -> Result<()> {
        self.inner
            .pending
            .lock(&token.0)
            .insert(token.0, login.clone());
        Ok(())
    }

    async fn begin_login_attempt(
        &self,
        token: &KeyedHash,
        max_attempts: u32,
        now: u64,
    ) -> Result<Option<PendingLogin>> {
        let mut map = self.inner.pending.lock(&token.0);
        let Some(p) = map.get_mut(&token.0) else {
            return Ok(None);
        };
        if p.expires_at <= now || p.attempts >= max_attempts {
            map.remove(&token.0);
            return Ok(None);
        }
        p.attempts += 1;
        Ok(Some(p.clone()))
    }

    async fn take_pending_login(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> Result<Option<PendingLogin>> {
        let taken = self.inner.pending.lock(&token.0).remove(&token.0);
        Ok(taken.filter(|p| p.expires_at > now))
    }

    async fn delete_pending_login(&self, token: &KeyedHash) -> Result<()> {
        self.inner.pending.lock(&token.0).remove(&token.0);
        Ok(())
    }

    async fn put_enrollment(&self, user_id: &UserId, enrollment: &PendingEnrollment) -> Result<()> {
        self.inner
            .enrollments
            .lock(user_id)
            .insert(user_id.clone(), enrollment.clone());
        Ok(())
    }

    async fn enrollment(&self, user_id: &UserId, now: u64) -> Result<Option<PendingEnrollment>> {
        Ok(self
            .inner
            .enrollments
            .lock(user_id)
            .get(user_id)
            .filter(|e| e.expires_at > now)
            .cloned())
    }

    async fn take_enrollment(&self, user_id: &UserId, id: &str, now: u64) -> Result<bool> {
        let mut map = self.inner.enrollments.lock(user_id);
        match map.get(user_id) {
            Some(e) if e.id == id && e.expires_at > now => {
                map.remove(user_id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn put_ceremony(&self, key: &str, ceremony: &CeremonyRecord) -> Result<()> {
        self.inner
            .ceremonies
            .lock(key)
            .insert(key.to_owned(), ceremony.clone());
        Ok(())
    }

    async fn take_ceremony(&self, key: &str, now: u64) -> Result<Option<CeremonyRecord>> {
        Ok(self
            .inner
            .ceremonies
            .lock(key)
            .remove(key)
            .filter(|c| c.expires_at > now))
    }

    async fn advance_last_step(
        &self,
        id: &AuthenticatorId,
        step: u64,
        keep_until: u64,
    ) -> Result<bool> {
        let mut map = self.inner.steps.lock(id);
        match map.get_mut(id) {
            Some((last, keep)) if *last >= step => {
                *keep = (*keep).max(keep_until);
                Ok(false)
            }
            Some(entry) => {
                *entry = (step, keep_until);
                Ok(true)
            }
            None => {
                map.insert(id.clone(), (step, keep_until));
                Ok(true)
            }
        }
    }

    async fn throttle(&self, key: &str, now: u64) -> Result<ThrottleState> {
        let mut map = self.inner.throttles.lock(key);
        match map.get(key) {
            Some((s, keep)) if *keep > now => Ok(*s),
            Some(_) => {
                map.remove(key);
                Ok(ThrottleState::default())
            }
            None => Ok(ThrottleState::default()),
        }
    }

    async fn update_throttle(
        &self,
        key: &str,
        expected: ThrottleState,
        new: ThrottleState,
        keep_until: u64,
        now: u64,
    ) -> Result<bool> {
        let mut map = self.inner.throttles.lock(key);
        // A state past its `keep_until` is the default state.
        let current = map
            .get(key)
            .filter(|(_, keep)| *keep > now)
            .map(|(s, _)| *s)
            .unwrap_or_default();
        if current != expected {
            return Ok(false);
        }
        if new == ThrottleState::default() {
            map.remove(key);
        } else if let Some(entry) = map.get_mut(key) {
            *entry = (new, keep_until);
        } else {
            // Only a new key needs an owned copy.
            map.insert(key.to_owned(), (new, keep_until));
        }
        Ok(true)
    }

    async fn create_device(&self, token: &KeyedHash, device: &DeviceRecord) -> Result<()> {
        self.add_token(token, device);
        Ok(())
    }

    async fn device(&self, token: &KeyedHash, now: u64) -> Result<Option<DeviceRecord>> {
        Ok(self.with_token(token, now, |d: &mut DeviceRecord| d.clone()))
    }

    async fn devices(&self, user_id: &UserId, now: u64) -> Result<Vec<DeviceRecord>> {
        Ok(self.live_tokens(user_id, now))
    }

    async fn revoke_device(&self, user_id: &UserId, id: &DeviceId) -> Result<bool> {
        Ok(self.remove_tokens(user_id, |d: &DeviceRecord| d.id() == id) > 0)
    }

    async fn revoke_all_devices(&self, user_id: &UserId) -> Result<u32> {
        Ok(self.remove_tokens(user_id, |_: &DeviceRecord| true))
    }

    async fn create_session(&self, token: &KeyedHash, session: &SessionRecord) -> Result<()> {
        self.add_token(token, session);
        Ok(())
    }

    async fn session(&self, token: &KeyedHash, now: u64) -> Result<Option<SessionRecord>> {
        Ok(self.with_token(token, now, |s: &mut SessionRecord| s.clone()))
    }

    async fn delete_session(&self, token: &KeyedHash) -> Result<()> {
        let Some(user_id) = self.inner.session_index.lock(&token.0).remove(&token.0) else {
            return Ok(());
        };
        let mut users = self.inner.users.lock(&user_id);
        if let Some(u) = users.get_mut(&user_id) {
            u.sessions.retain(|(h, _)| KeyedHash(*h) != *token);
        }
        Ok(())
    }

    async fn sessions(&self, user_id: &UserId, now: u64) -> Result<Vec<SessionRecord>> {
        Ok(self.live_tokens(user_id, now))
    }

    async fn reauthenticate_session(&self, token: &KeyedHash, at: u64) -> Result<bool> {
        Ok(self
            .with_token(token, at, |s: &mut SessionRecord| s.authenticated_at = at)
            .is_some())
    }

    async fn delete_session_by_id(&self, user_id: &UserId, id: &SessionId) -> Result<bool> {
        Ok(self.remove_tokens(user_id, |s: &SessionRecord| s.id() == id) > 0)
    }

    async fn delete_sessions(&self, user_id: &UserId, keep: Option<&SessionId>) -> Result<u32> {
        Ok(self.remove_tokens(user_id, |s: &SessionRecord| Some(s.id()) != keep))
    }

    async fn purge_expired(&self, now: u64) -> Result<u64> {
        Ok(self.purge(now))
    }

    async fn read_factor_ephemeral(
        &self,
        tokens: &[KeyedHash],
        max_attempts: u32,
        now: u64,
    ) -> Result<Option<FactorEphemeralView>> {
        self.read_ephemeral(tokens, max_attempts, now)
    }

    async fn commit_factor_ephemeral(&self, c: &FactorCommit<'_>) -> Result<FactorCommitted> {
        self.commit_ephemeral(c)
    }
}

/// The throttle shards of a unit of work, locked in ascending order: the order in
/// which every operation that holds more than one of them (with the pending-login
/// shard after them) takes them, so two such operations cannot deadlock.
struct ThrottleLocks<'a> {
    throttles: &'a Sharded<String, (ThrottleState, u64)>,
    guards: Vec<(usize, MutexGuard<'a, ThrottleShard>)>,
}

/// One shard of the throttles: each key's state and its `keep_until`.
type ThrottleShard = HashMap<String, (ThrottleState, u64)>;

impl<'a> ThrottleLocks<'a> {
    fn lock<'k>(
        throttles: &'a Sharded<String, (ThrottleState, u64)>,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Self {
        let mut shards: Vec<usize> = keys.into_iter().map(|k| throttles.shard_of(k)).collect();
        shards.sort_unstable();
        shards.dedup();
        let guards = shards
            .into_iter()
            .map(|n| (n, throttles.lock_shard(n)))
            .collect();
        ThrottleLocks { throttles, guards }
    }

    /// The locked shard of `key`; `None` when it was not among the keys locked.
    fn shard(&mut self, key: &str) -> Option<&mut ThrottleShard> {
        let n = self.throttles.shard_of(key);
        self.guards
            .iter_mut()
            .find(|(m, _)| *m == n)
            .map(|(_, map)| &mut **map)
    }

    /// The state of `key` at `now` (the default state past its `keep_until`).
    fn state(&mut self, key: &str, now: u64) -> Result<ThrottleState> {
        let map = self
            .shard(key)
            .ok_or(crate::Error::Internal("throttle shard not locked"))?;
        Ok(map
            .get(key)
            .filter(|(_, keep)| *keep > now)
            .map(|(s, _)| *s)
            .unwrap_or_default())
    }
}

/// Writes a throttle state into its (locked) shard: the default state deletes the key.
fn put_throttle(
    map: &mut HashMap<String, (ThrottleState, u64)>,
    key: &str,
    new: ThrottleState,
    keep_until: u64,
) {
    if new == ThrottleState::default() {
        map.remove(key);
    } else if let Some(entry) = map.get_mut(key) {
        *entry = (new, keep_until);
    } else {
        map.insert(key.to_owned(), (new, keep_until));
    }
}

/// The second-factor commit comes from its ephemeral half
/// (`MemoryStore::commit_ephemeral`) and the security-log append, which cannot fail.
impl Store for MemoryStore {}

impl MemoryStore {
    /// The ephemeral read of the second-factor step, one critical section for the
    /// login it counts: the shards of its user's two throttles (ascending), then its
    /// own, locked in the order the commit takes them. The user is read first under
    /// the pending login's lock alone, and checked again under all of them.
    fn read_ephemeral(
        &self,
        tokens: &[KeyedHash],
        max_attempts: u32,
        now: u64,
    ) -> Result<Option<FactorEphemeralView>> {
        let i = &self.inner;
        for token in tokens {
            loop {
                let peek = i
                    .pending
                    .lock(&token.0)
                    .get(&token.0)
                    .map(|p| p.user_id.clone());
                let Some(user_id) = peek else {
                    break;
                };
                let keys = factor_throttle_keys(&user_id);
                let mut locks = ThrottleLocks::lock(&i.throttles, keys.iter().map(String::as_str));
                let mut map = i.pending.lock(&token.0);
                let Some(p) = map.get_mut(&token.0) else {
                    break;
                };
                if p.user_id != user_id {
                    // Replaced meanwhile by another user's login: lock its throttles.
                    continue;
                }
                if p.expires_at <= now || p.attempts >= max_attempts {
                    map.remove(&token.0);
                    break;
                }
                p.attempts += 1;
                let pending = p.clone();
                drop(map);
                let [lockout, budget] = &keys;
                return Ok(Some(FactorEphemeralView {
                    token: *token,
                    pending,
                    throttles: [locks.state(lockout, now)?, locks.state(budget, now)?],
                }));
            }
        }
        Ok(None)
    }

    /// The ephemeral half of the second-factor commit in one critical section: the
    /// shards of the throttles (in ascending order), then of the pending login, then
    /// of each replay mark in turn are locked and held until every conditional write
    /// is made; no other operation holds more than one of these locks at once, so the
    /// order cannot deadlock. The unconditional writes (session, device) follow; they
    /// cannot fail.
    fn commit_ephemeral(&self, c: &FactorCommit<'_>) -> Result<FactorCommitted> {
        let i = &self.inner;
        let mut locks = ThrottleLocks::lock(&i.throttles, c.throttles.iter().map(|t| t.key));
        for t in c.throttles {
            if locks.state(t.key, c.now)? != t.expected {
                return Ok(FactorCommitted::Conflict);
            }
        }
        let mut pending = i.pending.lock(&c.token.0);
        let spent = if c.spend.is_empty() {
            false
        } else {
            if pending
                .get(&c.token.0)
                .is_none_or(|p| p.expires_at <= c.now)
            {
                return Ok(FactorCommitted::Expired);
            }
            let mut spent = false;
            for m in c.spend {
                let mut steps = i.steps.lock(&m.authenticator);
                match steps.get_mut(&m.authenticator) {
                    Some((last, keep)) if *last >= m.step => {
                        *keep = (*keep).max(m.keep_until);
                    }
                    Some(entry) => {
                        *entry = (m.step, m.keep_until);
                        spent = true;
                    }
                    None => {
                        steps.insert(m.authenticator.clone(), (m.step, m.keep_until));
                        spent = true;
                    }
                }
                if spent {
                    break;
                }
            }
            spent
        };
        let writes = if spent { &c.on_success } else { &c.on_failure };
        if spent || writes.take_pending {
            pending.remove(&c.token.0);
        }
        drop(pending);
        for t in c.throttles {
            if let Some(map) = locks.shard(t.key) {
                let (state, keep) = if spent { t.on_success } else { t.counted };
                put_throttle(map, t.key, state, keep);
            }
        }
        drop(locks);
        if let Some((hash, device)) = writes.device {
            self.add_token(hash, device);
        }
        if let Some((hash, session)) = writes.session {
            self.add_token(hash, session);
        }
        Ok(if spent {
            FactorCommitted::Spent
        } else {
            FactorCommitted::NotSpent
        })
    }
}
