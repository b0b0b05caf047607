//! `RedisStore` against a real Redis (REDIS_URL): the conformance suite over three
//! connections (as three processes would be), alone and as the ephemeral half of
//! `Combined<MemoryStore, RedisStore>`, the flows end to end on that, and what only
//! Redis has: keys, prefixes and TTLs, its encoding, corrupt data, and a server that
//! goes away.
//!
//! Each test uses its own random key prefix, so the tests run in parallel on one
//! database. Without REDIS_URL the tests print a note and pass, except under
//! CI=true, where they fail.
#![cfg(feature = "redis")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use secondfactor::auth::AuthMethod;
use secondfactor::clock::Clock;
use secondfactor::secret::{KeyRing, KeyedHash, SealingKey, Secret};
use secondfactor::store::{
    Combined, DeviceId, DeviceRecord, EphemeralStore, MemoryStore, PendingEnrollment, PendingLogin,
    RedisStore, SessionId, SessionRecord, ThrottleState, UserId, factor_throttle_keys,
};
use secondfactor::{Error, LoginRequest, SecondFactor};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Barrier;
use tokio::task::AbortHandle;

mod support;
use support::*;

/// A keep_until far past every `now` these tests pass.
const FAR: u64 = 4_000_000_000;

// ---------------------------------------------------------------------------------
// Fixture

fn redis_url() -> Option<String> {
    env_url("REDIS_URL")
}

fn fresh_prefix() -> String {
    format!("sftest:{:016x}:", rand::random::<u64>())
}

fn wall_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Fixture {
    url: String,
    prefix: String,
    store: RedisStore,
}

impl Fixture {
    async fn new() -> Option<Fixture> {
        let url = redis_url()?;
        let prefix = fresh_prefix();
        let store = RedisStore::with_prefix(&url, prefix.clone()).await.unwrap();
        assert_eq!(store.prefix(), prefix);
        Some(Fixture { url, prefix, store })
    }

    /// A second store (its own connection) on the same keys.
    async fn twin(&self) -> RedisStore {
        RedisStore::with_prefix(&self.url, self.prefix.clone())
            .await
            .unwrap()
    }

    /// A plain connection, to look at and tamper with the keys.
    async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    async fn ttl(&self, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(self.key(key))
            .query_async(&mut self.raw().await)
            .await
            .unwrap()
    }

    async fn exists(&self, key: &str) -> bool {
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.key(key))
            .query_async(&mut self.raw().await)
            .await
            .unwrap();
        n == 1
    }

    async fn set_raw(&self, args: &[&[u8]]) {
        let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
        for a in &args[1..] {
            cmd.arg(*a);
        }
        let _: redis::Value = cmd.query_async(&mut self.raw().await).await.unwrap();
    }

    /// The members of a set, sorted.
    async fn members(&self, key: &str) -> Vec<String> {
        let mut m: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.key(key))
            .query_async(&mut self.raw().await)
            .await
            .unwrap();
        m.sort();
        m
    }

    /// Deletes every key under the prefix (they would expire anyway).
    async fn cleanup(self) {
        delete_prefix(&self.url, &self.prefix).await;
    }
}

async fn delete_prefix(url: &str, prefix: &str) {
    let mut raw = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut raw)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut raw)
            .await
            .unwrap();
    }
}

macro_rules! fixture {
    () => {
        match Fixture::new().await {
            Some(f) => f,
            None => return,
        }
    };
}

fn tok(n: u64) -> KeyedHash {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    KeyedHash(b)
}

fn pending(user: &str, expires_at: u64) -> PendingLogin {
    PendingLogin {
        user_id: UserId::new(user),
        password_epoch: 3,
        attempts: 0,
        expires_at,
    }
}

fn enrollment(id: &str, expires_at: u64) -> PendingEnrollment {
    let keys = KeyRing::new(1, SealingKey::generate());
    PendingEnrollment {
        id: id.to_owned(),
        name: "phone ☎".to_owned(),
        sealed_secret: keys.seal("u1", &Secret::generate()).unwrap(),
        adding: true,
        expires_at,
    }
}

fn device(id: &str, user: &str, created_at: u64, expires_at: u64) -> DeviceRecord {
    DeviceRecord {
        id: DeviceId::new(id),
        user_id: UserId::new(user),
        label: format!("Firefox {id}"),
        password_epoch: 2,
        created_at,
        expires_at,
    }
}

fn session(id: &str, user: &str, created_at: u64, expires_at: u64) -> SessionRecord {
    SessionRecord {
        id: SessionId::new(id),
        user_id: UserId::new(user),
        password_epoch: 7,
        method: AuthMethod::Totp,
        created_at,
        authenticated_at: created_at,
        expires_at,
    }
}

fn is_internal(r: &Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(r, Err(e) if e.code() == "internal")
}

// ---------------------------------------------------------------------------------
// What only Redis has, one method family at a time (the contracts are the suite's)

/// What only Redis has: `pl:` keys that a burn or an expired attempt deletes, and
/// expiry by the caller's clock far behind the wall clock (Redis keeps such a key a
/// day). Counting, burning, taking, deleting and expiry by `now` are the suite's
/// `pending_logins` and `pending_login_expiry`.
#[tokio::test]
async fn pending_logins_expire_by_the_callers_clock_and_burnt_ones_leave_no_key() {
    let fx = fixture!();
    let s = &fx.store;
    // A test clock far behind the wall clock: expiry must follow `now`, not Redis.
    s.create_pending_login(&tok(1), &pending("alice", 1_000))
        .await
        .unwrap();
    assert!(
        s.begin_login_attempt(&tok(1), 1, 999)
            .await
            .unwrap()
            .is_some()
    );
    // The next attempt burns it: the key is gone.
    assert!(
        s.begin_login_attempt(&tok(1), 1, 999)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!fx.exists(&format!("pl:{}", tok(1).to_hex())).await);

    // Expired at `now == expires_at`, and deleted by the attempt.
    s.create_pending_login(&tok(2), &pending("bob", 1_000))
        .await
        .unwrap();
    assert!(
        s.begin_login_attempt(&tok(2), 5, 1_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!fx.exists(&format!("pl:{}", tok(2).to_hex())).await);

    // Taken by the caller's clock: before expires_at, not at it.
    s.create_pending_login(&tok(3), &pending("carol", 1_000))
        .await
        .unwrap();
    assert!(s.take_pending_login(&tok(3), 10).await.unwrap().is_some());
    s.create_pending_login(&tok(4), &pending("dan", 1_000))
        .await
        .unwrap();
    assert!(
        s.take_pending_login(&tok(4), 1_000)
            .await
            .unwrap()
            .is_none()
    );
    fx.cleanup().await;
}

#[tokio::test]
async fn ttls_follow_the_wall_clock_or_keep_a_day() {
    let fx = fixture!();
    let s = &fx.store;
    let wall = wall_now();
    // Expiry in the wall clock's future: the time left plus 5 minutes.
    s.create_pending_login(&tok(1), &pending("a", wall + 600))
        .await
        .unwrap();
    let ttl = fx.ttl(&format!("pl:{}", tok(1).to_hex())).await;
    assert!((890..=900).contains(&ttl), "{ttl}");
    // A test clock behind the wall clock: a day, never "already expired".
    s.create_pending_login(&tok(2), &pending("b", 1_700_000_300))
        .await
        .unwrap();
    let ttl = fx.ttl(&format!("pl:{}", tok(2).to_hex())).await;
    assert!((86_390..=86_400).contains(&ttl), "{ttl}");
    // Far future: capped, and Redis accepts it.
    s.create_session(&tok(3), &session("s3", "a", 0, u64::MAX))
        .await
        .unwrap();
    let ttl = fx.ttl(&format!("se:{}", tok(3).to_hex())).await;
    assert!(ttl > 300 * 86_400 * 9, "{ttl}");
    assert!(s.session(&tok(3), u64::MAX - 1).await.unwrap().is_some());
    assert!(s.session(&tok(3), u64::MAX).await.unwrap().is_none());
    fx.cleanup().await;
}

#[tokio::test]
async fn replay_marks_only_advance_exactly_over_the_whole_u64_range() {
    let fx = fixture!();
    let s = &fx.store;
    let a = secondfactor::store::AuthenticatorId::new("auth-1");
    assert!(s.advance_last_step(&a, 100, 0).await.unwrap());
    assert!(!s.advance_last_step(&a, 100, 0).await.unwrap());
    assert!(!s.advance_last_step(&a, 99, 0).await.unwrap());
    assert!(s.advance_last_step(&a, 101, 0).await.unwrap());
    // Values a Lua double cannot tell apart.
    let big = 1u64 << 53;
    assert!(s.advance_last_step(&a, big, 0).await.unwrap());
    assert!(s.advance_last_step(&a, big + 1, 0).await.unwrap());
    assert!(!s.advance_last_step(&a, big + 1, 0).await.unwrap());
    assert!(s.advance_last_step(&a, u64::MAX - 1, 0).await.unwrap());
    assert!(s.advance_last_step(&a, u64::MAX, 0).await.unwrap());
    assert!(!s.advance_last_step(&a, u64::MAX, 0).await.unwrap());
    assert!(!s.advance_last_step(&a, 0, 0).await.unwrap());

    // The mark keeps the later of its expiries, refused calls included.
    let b = secondfactor::store::AuthenticatorId::new("auth-2");
    let wall = wall_now();
    assert!(s.advance_last_step(&b, 5, wall + 10_000).await.unwrap());
    assert!(s.advance_last_step(&b, 6, wall + 100).await.unwrap());
    let ttl = fx.ttl("st:auth-2").await;
    assert!(ttl > 10_000, "{ttl}");
    assert!(!s.advance_last_step(&b, 6, wall + 50_000).await.unwrap());
    let ttl = fx.ttl("st:auth-2").await;
    assert!(ttl > 50_000, "{ttl}");
    fx.cleanup().await;
}

/// What only Redis has: the `th:` key that the zero state deletes, and the encoding
/// of the largest values. The compare-and-set on both fields, resets and separate
/// keys are the suite's `throttles`.
#[tokio::test]
async fn throttles_encode_the_largest_values_and_the_zero_state_deletes_the_key() {
    let fx = fixture!();
    let s = &fx.store;
    let zero = ThrottleState::default();
    let big = ThrottleState {
        count: u32::MAX,
        until: u64::MAX,
    };
    assert!(
        s.update_throttle("acct:alice", zero, big, FAR, 10)
            .await
            .unwrap()
    );
    assert_eq!(s.throttle("acct:alice", 10).await.unwrap(), big);
    assert!(fx.exists("th:acct:alice").await);
    // Writing the zero state deletes the key.
    assert!(
        s.update_throttle("acct:alice", big, zero, FAR, 10)
            .await
            .unwrap()
    );
    assert!(!fx.exists("th:acct:alice").await);
    fx.cleanup().await;
}

/// What only Redis has: the account's list (`du:`), pruned of devices whose keys
/// Redis dropped, living as long as its longest-lived device and deleted with the
/// last one; and expiry by the caller's clock far behind the wall clock. Order,
/// revoking one or all, expiry by `now` and other accounts are the suite's
/// `devices` and `device_expiry`.
#[tokio::test]
async fn the_device_list_is_pruned_outlives_its_devices_and_goes_with_them() {
    let fx = fixture!();
    let s = &fx.store;
    let alice = UserId::new("alice");
    s.create_device(&tok(1), &device("d1", "alice", 100, 5_000))
        .await
        .unwrap();
    s.create_device(&tok(2), &device("d2", "alice", 200, 1_000))
        .await
        .unwrap();
    s.create_device(&tok(3), &device("d3", "alice", 300, 5_000))
        .await
        .unwrap();
    let ids = |v: Vec<DeviceRecord>| v.into_iter().map(|d| d.id).collect::<Vec<_>>();
    // Expired by the caller's clock, not by Redis.
    assert!(s.device(&tok(2), 999).await.unwrap().is_some());
    assert!(s.device(&tok(2), 1_000).await.unwrap().is_none());
    // A device whose key Redis dropped is pruned from the list.
    let _: i64 = redis::cmd("DEL")
        .arg(fx.key(&format!("dv:{}", tok(1).to_hex())))
        .query_async(&mut fx.raw().await)
        .await
        .unwrap();
    assert_eq!(
        ids(s.devices(&alice, 999).await.unwrap()),
        [DeviceId::new("d2"), DeviceId::new("d3")]
    );
    let mut list: Vec<String> = redis::cmd("LRANGE")
        .arg(fx.key("du:alice"))
        .arg(0)
        .arg(-1)
        .query_async(&mut fx.raw().await)
        .await
        .unwrap();
    list.sort();
    assert_eq!(list, [tok(2).to_hex(), tok(3).to_hex()]);
    // The list lives as long as its longest-lived device.
    s.create_device(&tok(5), &device("d5", "alice", 400, wall_now() + 40_000))
        .await
        .unwrap();
    assert!(fx.ttl("du:alice").await > 40_000);
    // Revoking all deletes the list.
    s.revoke_all_devices(&alice).await.unwrap();
    assert!(!fx.exists("du:alice").await);
    fx.cleanup().await;
}

/// What only Redis has: the session's key (`se:`) and its entry in the account's
/// set (`su:`), both gone with the session; and expiry by the caller's clock far
/// behind the wall clock. Every field and method round-tripping, unknown tokens,
/// deleting and expiry by `now` are the suite's `sessions`.
#[tokio::test]
async fn sessions_expire_by_the_callers_clock_and_leave_no_key_or_set_entry() {
    let fx = fixture!();
    let s = &fx.store;
    let mut rec = session("s1", "alice", 1_000, 2_000);
    rec.method = AuthMethod::TrustedDevice;
    rec.authenticated_at = 1_200;
    s.create_session(&tok(1), &rec).await.unwrap();
    assert_eq!(s.session(&tok(1), 1_999).await.unwrap(), Some(rec));
    assert!(s.session(&tok(1), 2_000).await.unwrap().is_none());
    assert_eq!(fx.members("su:alice").await, [tok(1).to_hex()]);
    s.delete_session(&tok(1)).await.unwrap();
    assert!(!fx.exists(&format!("se:{}", tok(1).to_hex())).await);
    assert!(!fx.exists("su:alice").await);
    fx.cleanup().await;
}

fn ids(v: &[SessionRecord]) -> Vec<&str> {
    v.iter().map(|s| s.id.as_str()).collect()
}

/// What only Redis has: the account's set (`su:`), cleaned of expired sessions (and
/// their keys), pruned of sessions whose keys Redis dropped or that a token written
/// again moved to another account, and living as long as its longest-lived session.
/// Order, other accounts and expiry by `now` are the suite's `session_lists` and
/// `session_expiry`.
#[tokio::test]
async fn the_session_set_is_cleaned_pruned_and_outlives_its_sessions() {
    let fx = fixture!();
    let s = &fx.store;
    let alice = UserId::new("alice");
    s.create_session(&tok(1), &session("s1", "alice", 300, 5_000))
        .await
        .unwrap();
    s.create_session(&tok(2), &session("s2", "alice", 100, 1_000))
        .await
        .unwrap();
    s.create_session(&tok(3), &session("s3", "alice", 200, 5_000))
        .await
        .unwrap();
    s.create_session(&tok(5), &session("s0", "alice", 10, 5_000))
        .await
        .unwrap();
    // Expired at `now == expires_at` by the caller's clock: cleaned out of Redis.
    assert_eq!(
        ids(&s.sessions(&alice, 1_000).await.unwrap()),
        ["s0", "s3", "s1"]
    );
    assert!(!fx.exists(&format!("se:{}", tok(2).to_hex())).await);
    assert!(!fx.members("su:alice").await.contains(&tok(2).to_hex()));
    // A session whose key Redis dropped is pruned from the set.
    let _: i64 = redis::cmd("DEL")
        .arg(fx.key(&format!("se:{}", tok(3).to_hex())))
        .query_async(&mut fx.raw().await)
        .await
        .unwrap();
    assert_eq!(ids(&s.sessions(&alice, 999).await.unwrap()), ["s0", "s1"]);
    let mut want = vec![tok(1).to_hex(), tok(5).to_hex()];
    want.sort();
    assert_eq!(fx.members("su:alice").await, want);
    // A token written again for another account leaves alice's list, and her
    // deletes leave it alone.
    s.create_session(&tok(5), &session("s5", "bob", 60, 5_000))
        .await
        .unwrap();
    assert_eq!(ids(&s.sessions(&alice, 999).await.unwrap()), ["s1"]);
    assert_eq!(s.delete_sessions(&alice, None).await.unwrap(), 1);
    assert_eq!(
        ids(&s.sessions(&UserId::new("bob"), 999).await.unwrap()),
        ["s5"]
    );
    // The set lives as long as its longest-lived session.
    s.create_session(&tok(6), &session("s6", "alice", 400, wall_now() + 40_000))
        .await
        .unwrap();
    s.create_session(&tok(7), &session("s7", "alice", 500, wall_now() + 100))
        .await
        .unwrap();
    assert!(fx.ttl("su:alice").await > 40_000);
    fx.cleanup().await;
}

/// What only Redis has: a re-authentication keeps the key's TTL, and one of a
/// deleted session writes no key (not even a partial hash). Setting the time and
/// nothing else, and refusing expired, deleted and unknown sessions, are the
/// suite's `session_lists` and `session_expiry`.
#[tokio::test]
async fn reauthenticate_session_keeps_the_ttl_and_writes_no_key_for_a_deleted_session() {
    let fx = fixture!();
    let s = &fx.store;
    let key = format!("se:{}", tok(1).to_hex());
    let rec = session("s1", "alice", 1_000, wall_now() + 40_000);
    s.create_session(&tok(1), &rec).await.unwrap();
    let ttl = fx.ttl(&key).await;
    assert!(s.reauthenticate_session(&tok(1), 1_500).await.unwrap());
    let after = fx.ttl(&key).await;
    assert!(after <= ttl && after > ttl - 5, "{ttl} then {after}");
    // Deleted: not recreated.
    s.delete_session(&tok(1)).await.unwrap();
    assert!(!s.reauthenticate_session(&tok(1), 1_700).await.unwrap());
    assert!(!fx.exists(&key).await);
    // Deleted by id: the same.
    s.create_session(&tok(2), &session("s2", "alice", 1_000, 2_000))
        .await
        .unwrap();
    assert!(
        s.delete_session_by_id(&UserId::new("alice"), &SessionId::new("s2"))
            .await
            .unwrap()
    );
    assert!(!s.reauthenticate_session(&tok(2), 1_700).await.unwrap());
    assert!(!fx.exists(&format!("se:{}", tok(2).to_hex())).await);
    fx.cleanup().await;
}

#[tokio::test]
async fn sessions_written_by_0_1_read_as_absent() {
    let fx = fixture!();
    let s = &fx.store;
    let key = fx.key(&format!("se:{}", tok(1).to_hex()));
    // 0.1's encoding: `u p c x` only, in no per-user set.
    fx.set_raw(&[
        b"HSET",
        key.as_bytes(),
        b"u",
        b"alice",
        b"p",
        b"0",
        b"c",
        b"10",
        b"x",
        b"00000000000000002000",
    ])
    .await;
    assert!(s.session(&tok(1), 100).await.unwrap().is_none());
    assert!(!s.reauthenticate_session(&tok(1), 100).await.unwrap());
    let a: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("a")
        .query_async(&mut fx.raw().await)
        .await
        .unwrap();
    assert_eq!(a, None);
    s.delete_session(&tok(1)).await.unwrap();
    assert!(!fx.exists(&format!("se:{}", tok(1).to_hex())).await);
    fx.cleanup().await;
}

/// What only Redis has: deleting sessions leaves the account's set (`su:`) holding
/// exactly the sessions left, and deletes it with the last one; ids are looked up in
/// the account's own set (another account's session with the same id stays); `keep:
/// None` counts every session in the set, expired ones included. Deleting by id,
/// all but one, or all, and leaving other accounts alone are the suite's
/// `session_lists`.
#[tokio::test]
async fn deleting_sessions_keeps_the_set_exact_and_ids_per_account() {
    let fx = fixture!();
    let s = &fx.store;
    let alice = UserId::new("alice");
    let bob = UserId::new("bob");
    for (n, (id, user)) in [
        ("s1", "alice"),
        ("s2", "alice"),
        ("s3", "alice"),
        ("s4", "alice"),
        ("s1", "bob"),
    ]
    .into_iter()
    .enumerate()
    {
        s.create_session(&tok(n as u64 + 1), &session(id, user, n as u64, 5_000))
            .await
            .unwrap();
    }
    assert!(
        s.delete_session_by_id(&alice, &SessionId::new("s2"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.delete_sessions(&alice, Some(&SessionId::new("s3")))
            .await
            .unwrap(),
        2
    );
    assert_eq!(fx.members("su:alice").await, [tok(3).to_hex()]);
    assert_eq!(s.delete_sessions(&alice, None).await.unwrap(), 1);
    assert!(!fx.exists("su:alice").await);
    // Bob's session with the same id as one of alice's is untouched.
    assert_eq!(ids(&s.sessions(&bob, 10).await.unwrap()), ["s1"]);
    assert!(s.session(&tok(5), 10).await.unwrap().is_some());
    // `keep: None` deletes every one, expired ones included in the count.
    s.create_session(&tok(6), &session("s6", "bob", 9, 20))
        .await
        .unwrap();
    assert_eq!(s.delete_sessions(&bob, None).await.unwrap(), 2);
    assert!(s.sessions(&bob, 10).await.unwrap().is_empty());
    assert!(s.session(&tok(5), 10).await.unwrap().is_none());
    fx.cleanup().await;
}

#[tokio::test]
async fn corrupt_sessions_and_session_sets_are_internal_and_half_writes_never_happen() {
    let fx = fixture!();
    let s = &fx.store;
    let alice = UserId::new("alice");
    s.create_session(&tok(1), &session("s1", "alice", 1, 1_000))
        .await
        .unwrap();
    let se = fx.key(&format!("se:{}", tok(1).to_hex()));
    // A method this version does not know.
    fx.set_raw(&[b"HSET", se.as_bytes(), b"m", b"sms"]).await;
    assert!(is_internal(&s.session(&tok(1), 10).await));
    assert!(is_internal(&s.sessions(&alice, 10).await));
    fx.set_raw(&[b"HSET", se.as_bytes(), b"m", b"totp", b"a", b"-1"])
        .await;
    assert!(is_internal(&s.session(&tok(1), 10).await));
    fx.set_raw(&[b"HSET", se.as_bytes(), b"a", b"5", b"x", b"soon"])
        .await;
    assert!(is_internal(&s.reauthenticate_session(&tok(1), 10).await));
    // A hash that lost its id.
    fx.set_raw(&[b"HDEL", se.as_bytes(), b"i"]).await;
    assert!(is_internal(&s.session(&tok(1), 10).await));
    // A per-user set of the wrong type: creating a session writes nothing.
    fx.set_raw(&[b"SET", fx.key("su:bob").as_bytes(), b"x"])
        .await;
    assert!(is_internal(
        &s.create_session(&tok(2), &session("s2", "bob", 1, 1_000))
            .await
    ));
    assert!(!fx.exists(&format!("se:{}", tok(2).to_hex())).await);
    let bob = UserId::new("bob");
    assert!(is_internal(&s.sessions(&bob, 10).await));
    assert!(is_internal(&s.delete_sessions(&bob, None).await));
    assert!(is_internal(
        &s.delete_session_by_id(&bob, &SessionId::new("s2")).await
    ));
    // Deleting a session key of the wrong type still deletes it.
    let se3 = fx.key(&format!("se:{}", tok(3).to_hex()));
    fx.set_raw(&[b"SET", se3.as_bytes(), b"junk"]).await;
    s.delete_session(&tok(3)).await.unwrap();
    assert!(!fx.exists(&format!("se:{}", tok(3).to_hex())).await);
    fx.cleanup().await;
}

#[tokio::test]
async fn prefixes_isolate_stores_on_one_database() {
    let fx = fixture!();
    let other = RedisStore::with_prefix(&fx.url, fresh_prefix())
        .await
        .unwrap();
    fx.store
        .create_pending_login(&tok(1), &pending("a", 1_000))
        .await
        .unwrap();
    assert!(
        other
            .take_pending_login(&tok(1), 10)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        fx.store
            .take_pending_login(&tok(1), 10)
            .await
            .unwrap()
            .is_some()
    );
    fx.cleanup().await;
}

/// The second-factor read (`read_factor.lua`) checks every record it reads before it
/// writes anything: a corrupt login after one it would burn, or a corrupt throttle of
/// the login it would count, leave both untouched.
#[tokio::test]
async fn the_factor_read_checks_everything_before_it_writes() {
    let fx = fixture!();
    let s = &fx.store;
    let pl = |n| format!("pl:{}", tok(n).to_hex());
    let attempts = async |n| -> String {
        redis::cmd("HGET")
            .arg(fx.key(&pl(n)))
            .arg("a")
            .query_async(&mut fx.raw().await)
            .await
            .unwrap()
    };
    // tok(1) expired (it would be burnt), tok(2) corrupt.
    s.create_pending_login(&tok(1), &pending("u", 5))
        .await
        .unwrap();
    s.create_pending_login(&tok(2), &pending("u", 1_000))
        .await
        .unwrap();
    fx.set_raw(&[b"HSET", fx.key(&pl(2)).as_bytes(), b"x", b"tomorrow"])
        .await;
    let r = s.read_factor_ephemeral(&[tok(1), tok(2)], 5, 10).await;
    assert!(is_internal(&r), "{r:?}");
    assert!(fx.exists(&pl(1)).await, "the expired login was deleted");

    // tok(3) live, its user's lockout throttle not canonical, then its budget past u64.
    s.create_pending_login(&tok(3), &pending("v", 1_000))
        .await
        .unwrap();
    let [lockout, budget] = factor_throttle_keys(&UserId::new("v"));
    for (key, bad) in [
        (&lockout, &b"07:5"[..]),
        (&budget, b"1:5:99999999999999999999"),
    ] {
        fx.set_raw(&[b"SET", fx.key(&format!("th:{key}")).as_bytes(), bad])
            .await;
        assert!(is_internal(&s.throttle(key, 10).await));
        let r = s.read_factor_ephemeral(&[tok(1), tok(3)], 5, 10).await;
        assert!(is_internal(&r), "{bad:?}: {r:?}");
        assert_eq!(attempts(3).await, "0", "{bad:?}: an attempt was counted");
        assert!(
            fx.exists(&pl(1)).await,
            "{bad:?}: the expired login was deleted"
        );
        fx.set_raw(&[b"DEL", fx.key(&format!("th:{key}")).as_bytes()])
            .await;
    }

    // Sound again: tok(1) burnt on the way, tok(3) counted, the throttles read.
    let state = ThrottleState {
        count: 3,
        until: 40,
    };
    assert!(
        s.update_throttle(&budget, ThrottleState::default(), state, 2_000, 10)
            .await
            .unwrap()
    );
    let view = s
        .read_factor_ephemeral(&[tok(1), tok(3)], 5, 10)
        .await
        .unwrap()
        .expect("the live login");
    assert_eq!(view.token, tok(3));
    assert_eq!(view.pending.attempts, 1);
    assert_eq!(view.throttles, [ThrottleState::default(), state]);
    assert_eq!(attempts(3).await, "1");
    assert!(!fx.exists(&pl(1)).await, "the expired login must be burnt");
    fx.cleanup().await;
}

#[tokio::test]
async fn corrupt_or_foreign_data_is_internal_never_a_panic() {
    let fx = fixture!();
    let s = &fx.store;
    let pl = |n| fx.key(&format!("pl:{}", tok(n).to_hex()));
    // A key of the wrong type.
    fx.set_raw(&[b"SET", pl(1).as_bytes(), b"junk"]).await;
    assert!(is_internal(&s.begin_login_attempt(&tok(1), 5, 10).await));
    assert!(is_internal(&s.take_pending_login(&tok(1), 10).await));
    // Garbage fields.
    for (field, value) in [
        (&b"x"[..], &b"tomorrow"[..]),
        (b"a", b"-1"),
        (b"a", b"99999999999"),
        (b"p", b"1e3"),
        (b"u", b"\xff\xfe"),
    ] {
        s.create_pending_login(&tok(2), &pending("a", 1_000))
            .await
            .unwrap();
        fx.set_raw(&[b"HSET", pl(2).as_bytes(), field, value]).await;
        let r = s.begin_login_attempt(&tok(2), 5, 10).await;
        assert!(is_internal(&r), "{field:?}: {r:?}");
        assert!(is_internal(&s.take_pending_login(&tok(2), 10).await));
    }
    // A hash missing a field.
    fx.set_raw(&[b"HSET", pl(3).as_bytes(), b"u", b"a"]).await;
    assert!(is_internal(&s.begin_login_attempt(&tok(3), 5, 10).await));
    // Replay marks, throttles, enrollments, sessions, devices.
    fx.set_raw(&[b"SET", fx.key("st:a1").as_bytes(), b"12"])
        .await;
    let a1 = secondfactor::store::AuthenticatorId::new("a1");
    assert!(is_internal(&s.advance_last_step(&a1, 13, 0).await));
    fx.set_raw(&[b"SET", fx.key("th:k").as_bytes(), b"07:5"])
        .await;
    assert!(is_internal(&s.throttle("k", 10).await));
    fx.set_raw(&[b"HSET", fx.key("th:h").as_bytes(), b"a", b"1"])
        .await;
    assert!(is_internal(&s.throttle("h", 10).await));
    assert!(is_internal(
        &s.update_throttle(
            "h",
            ThrottleState::default(),
            ThrottleState::default(),
            FAR,
            10
        )
        .await
    ));
    let user = UserId::new("u1");
    s.put_enrollment(&user, &enrollment("e", 1_000))
        .await
        .unwrap();
    fx.set_raw(&[b"HSET", fx.key("en:u1").as_bytes(), b"s", b"short"])
        .await;
    assert!(is_internal(&s.enrollment(&user, 10).await));
    fx.set_raw(&[b"HSET", fx.key("en:u1").as_bytes(), b"x", b"soon"])
        .await;
    assert!(is_internal(&s.take_enrollment(&user, "e", 10).await));
    let se = fx.key(&format!("se:{}", tok(4).to_hex()));
    fx.set_raw(&[
        b"HSET",
        se.as_bytes(),
        b"u",
        b"a",
        b"p",
        b"x",
        b"c",
        b"1",
        b"x",
        b"2",
    ])
    .await;
    assert!(is_internal(&s.session(&tok(4), 1).await));
    s.create_device(&tok(5), &device("d", "u1", 1, 1_000))
        .await
        .unwrap();
    let dv = fx.key(&format!("dv:{}", tok(5).to_hex()));
    fx.set_raw(&[b"HSET", dv.as_bytes(), b"c", b""]).await;
    assert!(is_internal(&s.device(&tok(5), 10).await));
    assert!(is_internal(&s.devices(&user, 10).await));
    fx.set_raw(&[b"SET", fx.key("du:u2").as_bytes(), b"x"])
        .await;
    assert!(is_internal(&s.devices(&UserId::new("u2"), 10).await));
    assert!(is_internal(&s.revoke_all_devices(&UserId::new("u2")).await));
    fx.cleanup().await;
}

// ---------------------------------------------------------------------------------
// The per-user session index under races (the races themselves are the suite's)

const RACERS: u64 = 16;

/// Runs `f(store, i)` for `i` in `0..RACERS` at once, released by a barrier, task
/// `i` on `stores[i % 2]`, and waits for all of them.
async fn race<F, Fut>(stores: &[RedisStore; 2], f: F)
where
    F: Fn(RedisStore, u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(RACERS as usize));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let work = f(stores[(i % 2) as usize].clone(), i);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// `delete_sessions` keeping one session against `create_session` for the same
/// account, over two connections: afterwards the account's set (`su:`) holds
/// exactly the sessions that are left. (That every session created before the
/// delete is gone and every one after it is there is the suite's
/// `delete_sessions` against `create_session` race.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_index_holds_exactly_the_survivors_of_a_delete_sessions_race() {
    let fx = fixture!();
    let stores = [fx.store.clone(), fx.twin().await];
    let mut raw = fx.raw().await;
    for round in 0..100 {
        let user = UserId::new(format!("u{round}"));
        let base = round * 1_000;
        for n in 0..20 {
            stores[(n % 2) as usize]
                .create_session(
                    &tok(base + n),
                    &session(&format!("pre{n}"), user.as_str(), n, 5_000),
                )
                .await
                .unwrap();
        }
        race(&stores, |s, i| {
            let user = user.clone();
            async move {
                if i == 0 {
                    s.delete_sessions(&user, Some(&SessionId::new("pre0")))
                        .await
                        .unwrap();
                } else {
                    for j in 0..4 {
                        let t = base + 100 + i * 10 + j;
                        let rec = session(&format!("c{t}"), user.as_str(), 100 + t, 5_000);
                        s.create_session(&tok(t), &rec).await.unwrap();
                    }
                }
            }
        })
        .await;
        let survivors = stores[1].sessions(&user, 10).await.unwrap();
        let members: i64 = redis::cmd("SCARD")
            .arg(fx.key(&format!("su:{user}")))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(members as usize, survivors.len(), "round {round}");
    }
    fx.cleanup().await;
}

/// `delete_session` against `reauthenticate_session` of one session, half the tasks
/// each, over two connections: afterwards the session has no key (not even a
/// partial hash) and the account's set (`su:`) holds no deleted session. (That the
/// store's methods find the session gone is the suite's `delete_session` against
/// `reauthenticate_session` race.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_key_and_no_index_entry_of_a_deleted_session_survive_a_reauthenticate_race() {
    let fx = fixture!();
    let stores = [fx.store.clone(), fx.twin().await];
    for round in 0..100 {
        let user = format!("u{round}");
        stores[0]
            .create_session(&tok(round), &session("s", &user, 1, 5_000))
            .await
            .unwrap();
        race(&stores, |s, i| async move {
            if i % 2 == 0 {
                s.delete_session(&tok(round)).await.unwrap();
            } else {
                s.reauthenticate_session(&tok(round), 10 + i).await.unwrap();
            }
        })
        .await;
        assert!(
            !fx.exists(&format!("se:{}", tok(round).to_hex())).await,
            "round {round}: a re-authentication wrote the deleted session's key back"
        );
        assert!(
            fx.members(&format!("su:{user}")).await.is_empty(),
            "round {round}: the account's set still holds the deleted session"
        );
    }
    fx.cleanup().await;
}

// ---------------------------------------------------------------------------------
// Faults

#[tokio::test]
async fn a_closed_port_is_unavailable_quickly() {
    let started = Instant::now();
    let err = RedisStore::connect("redis://127.0.0.1:1")
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(err.code(), "unavailable", "{err:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    eprintln!("connect to a closed port failed in {took:?}");
    let err = RedisStore::connect("not a url").await.unwrap_err();
    assert_eq!(err.code(), "invalid_config");
}

#[test]
fn connecting_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let err = futures_lite_block_on(RedisStore::connect("redis://127.0.0.1:6379")).unwrap_err();
    assert_eq!(err.code(), "invalid_config");
}

/// A minimal executor, so that the future above runs outside any tokio runtime.
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// A TCP proxy in front of Redis that the test can cut: stopping it closes the
/// listener and every connection through it.
struct Proxy {
    addr: SocketAddr,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    async fn start(listen: SocketAddr, upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let conns = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let pump = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(pump.abort_handle());
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
        Proxy { addr, tasks }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    async fn stop(self) {
        let handles: Vec<_> = self.tasks.lock().unwrap().drain(..).collect();
        for h in &handles {
            h.abort();
        }
        // Let the aborted tasks drop their sockets.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Redis server's socket address, from REDIS_URL (`redis://host:port[/db]`).
async fn upstream(url: &str) -> SocketAddr {
    let rest = url.strip_prefix("redis://").unwrap();
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split('/').next().unwrap();
    tokio::net::lookup_host(host).await.unwrap().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_redis_went_away_is_unavailable_then_recovers() {
    let Some(url) = redis_url() else { return };
    if url.contains('@') {
        eprintln!("note: REDIS_URL has credentials; the proxy test needs a plain URL");
        return;
    }
    let up = upstream(&url).await;
    let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), up).await;
    let addr = proxy.addr;
    let prefix = fresh_prefix();
    let store = RedisStore::with_prefix(&proxy.url(), prefix.clone())
        .await
        .unwrap();
    store
        .create_session(&tok(1), &session("s1", "a", 0, 1_000))
        .await
        .unwrap();
    proxy.stop().await;
    // Every kind of operation fails as `unavailable`, quickly, with no panic.
    let started = Instant::now();
    let err = store.session(&tok(1), 10).await.unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err:?}");
    let err = store
        .advance_last_step(&secondfactor::store::AuthenticatorId::new("a"), 1, 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err:?}");
    let err = store.throttle("k", 10).await.unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err:?}");
    let took = started.elapsed();
    eprintln!("three operations against a vanished Redis failed in {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Redis is back (the proxy listens again on the same port): the store reconnects.
    let proxy = Proxy::start(addr, up).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.session(&tok(1), 10).await {
            Ok(s) => {
                assert!(s.is_some());
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), "unavailable");
                assert!(Instant::now() < deadline, "did not reconnect: {e:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    store.delete_session(&tok(1)).await.unwrap();
    proxy.stop().await;
    delete_prefix(&url, &prefix).await;
}

// ---------------------------------------------------------------------------------
// The flows end to end on Combined<MemoryStore, RedisStore>

#[tokio::test]
async fn flows_end_to_end_on_memory_and_redis() {
    let fx = fixture!();
    flows(Combined::new(MemoryStore::new(), fx.store.clone())).await;
    fx.cleanup().await;
}

/// The enrollment and the replay mark live in Redis: a second process with its own
/// connection (sharing the accounts and the keys) refuses a code the first accepted.
#[tokio::test]
async fn a_replay_is_refused_by_another_process_on_the_same_redis() {
    let fx = fixture!();
    let accounts = MemoryStore::new();
    let (service, clock) = service(Combined::new(accounts.clone(), fx.store.clone()));
    let Enrolled { name, phone, .. } = enroll_with(&service, &clock, async |user: &UserId| {
        assert!(fx.exists(&format!("en:{user}")).await)
    })
    .await;
    let code = phone.generate(clock.now());
    let token = pending_token(&service, &name).await;
    let _auth = service
        .second_factor(&token, SecondFactor::Totp(&code))
        .await
        .unwrap();
    let other = service_on(Combined::new(accounts, fx.twin().await), &clock);
    let token = pending_token(&other, &name).await;
    let err = other
        .second_factor(&token, SecondFactor::Totp(&code))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "code_already_used");
    fx.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_on_a_vanished_redis_are_unavailable() {
    let Some(url) = redis_url() else { return };
    if url.contains('@') {
        eprintln!("note: REDIS_URL has credentials; the proxy test needs a plain URL");
        return;
    }
    let proxy = Proxy::start("127.0.0.1:0".parse().unwrap(), upstream(&url).await).await;
    let prefix = fresh_prefix();
    let store = RedisStore::with_prefix(&proxy.url(), prefix.clone())
        .await
        .unwrap();
    let (service, clock) = service(Combined::new(MemoryStore::new(), store));
    let e = enroll(&service, &clock).await;
    let token = pending_token(&service, &e.name).await;
    proxy.stop().await;
    let err = service
        .second_factor(&token, SecondFactor::Totp(&e.phone.generate(clock.now())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err:?}");
    assert_eq!(err.http_status(), 503);
    let err = service
        .login(LoginRequest::new(&e.name, PW))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unavailable", "{err:?}");
    delete_prefix(&url, &prefix).await;
}

// ---------------------------------------------------------------------------------
// The public conformance suite

#[cfg(feature = "conformance")]
mod conformance_suite {
    use super::*;
    use secondfactor::store::conformance::{self, RaceConfig};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn redis_store_passes_the_ephemeral_suite_and_races() {
        let fx = fixture!();
        // Two more connections on the same keys: three "server instances".
        let handles = [fx.store.clone(), fx.twin().await, fx.twin().await];
        let start = Instant::now();
        conformance::ephemeral_all(&handles, RaceConfig::default()).await;
        eprintln!(
            "RedisStore x3: ephemeral checks and races in {:?}",
            start.elapsed()
        );
        fx.cleanup().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn combined_memory_and_redis_pass_the_whole_suite() {
        let fx = fixture!();
        let accounts = MemoryStore::new();
        let mut handles = Vec::new();
        for _ in 0..3 {
            handles.push(Combined::new(accounts.clone(), fx.twin().await));
        }
        let start = Instant::now();
        conformance::all(&handles, RaceConfig::default()).await;
        eprintln!(
            "Combined<MemoryStore, RedisStore> x3: all checks in {:?}",
            start.elapsed()
        );
        fx.cleanup().await;
    }
}
