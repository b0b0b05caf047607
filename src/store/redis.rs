//! The Redis store: the ephemeral half.
//!
//! [`RedisStore`] implements [`EphemeralStore`] only. Accounts, sealed secrets and
//! backup-code hashes are durable data and stay in SQL (or your own users table);
//! join the two halves with [`Combined`].

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Cmd, RedisError, Script, Value};

use super::*;
use crate::Error;

/// The default key prefix.
const DEFAULT_PREFIX: &str = "sf:";

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Slack added to a TTL computed from the wall clock.
const TTL_SLACK: u64 = 300;
/// The TTL of a record whose expiry is not in the wall clock's future.
const TTL_BEHIND: u64 = 86_400;
/// The longest TTL set (10 years); Redis rejects expiry times that overflow.
const TTL_MAX: u64 = 10 * 365 * 86_400;

/// Helpers shared by the scripts: `cmp` compares two 20-digit zero-padded decimals
/// exactly (as two 10-digit halves, each exact in a Lua double) and returns nil when
/// either is malformed; `extend` sets a TTL unless the key already has a longer one.
const LUA_PRELUDE: &str = include_str!("redis/lua_prelude.lua");

/// KEYS[1] pending login; ARGV[1] now (padded), ARGV[2] max attempts.
/// Returns nil, the four fields `u p a x` after counting the attempt, or 'corrupt'.
const BEGIN_ATTEMPT: &str = include_str!("redis/begin_attempt.lua");

/// The ephemeral read of the second-factor step
/// ([`EphemeralStore::read_factor_ephemeral`]) in one script.
///
/// KEYS: the pending logins, one per token, in order. ARGV[1] now (padded), ARGV[2]
/// max attempts, ARGV[3] and ARGV[4] the keys of the lockout and budget throttles
/// without the user id (the script appends the pending login's `u`).
///
/// Finds the first pending login that is alive with an attempt left (those met before
/// it that are expired or out of attempts are deleted, as `begin_attempt.lua` deletes
/// them) and reads its user's two throttles; only then writes: the deletes, and the
/// attempt counted. Returns false when none is found; else the 1-based index of its
/// key, its fields `u p a x` with the attempt counted and the two throttle states
/// `count:until` (`0:0` when missing or past keep_until); or 'corrupt', having written
/// nothing, for a record the decoder would reject (except a user id that is not UTF-8).
const READ_FACTOR: &str = include_str!("redis/read_factor.lua");

/// KEYS[1] pending login. Deletes it and returns its fields `u p a x`, or nil.
const TAKE_PENDING: &str = include_str!("redis/take_pending.lua");

/// KEYS[1] WebAuthn ceremony. Returns its fields and deletes it, or false.
const TAKE_CEREMONY: &str = include_str!("redis/take_ceremony.lua");

/// The second-factor commit ([`EphemeralStore::commit_factor_ephemeral`]) in one script.
///
/// KEYS: the pending login; the `nt` throttles; the `ns` replay marks; then for the
/// success outcome and then the failure outcome, the session and its user's set (if
/// it writes a session) and the device and its user's list (if it writes a device).
///
/// ARGV: now (padded), `nt`, `ns`; per throttle its expected `count:until`, its
/// counted value and TTL, its success value and TTL (a value as
/// [`UPDATE_THROTTLE`]'s, `''` deletes); per replay mark the step (padded) and TTL;
/// per outcome (success, failure): take the pending login (`0`/`1`), then `0`, or `1`
/// and the session's token hash, TTL and fields `i u p m c a x`, then `0`, or `1` and
/// the device's token hash, TTL and fields `i u l p c x`.
///
/// Returns 1 spent, 0 not spent, 2 a throttle conflict, 3 the pending login is gone
/// (for the last two nothing was written), or 'corrupt'.
const COMMIT_FACTOR: &str = include_str!("redis/commit_factor.lua");

/// KEYS[1] enrollment; ARGV[1] id, ARGV[2] now (padded). Returns 1 when taken.
const TAKE_ENROLLMENT: &str = include_str!("redis/take_enrollment.lua");

/// KEYS[1] replay mark; ARGV[1] step (padded), ARGV[2] TTL. Returns 1 when recorded.
const ADVANCE_STEP: &str = include_str!("redis/advance_step.lua");

/// KEYS[1] throttle; ARGV[1] expected `count:until`, ARGV[2] new value
/// `count:until:keep_until` ('' deletes), ARGV[3] TTL, ARGV[4] now (padded).
/// Returns 1 when replaced. A stored state past its keep_until is the zero state; a
/// value without keep_until (written by 0.2) is compared as it is.
const UPDATE_THROTTLE: &str = include_str!("redis/update_throttle.lua");

/// KEYS: keys under the prefix (a batch of `SCAN`); ARGV[1] now (padded), ARGV[2]
/// prefix. Deletes the pending logins, enrollments, devices, sessions and throttles
/// among them that are expired at `now` (and their entries in the per-user list or
/// set), prunes per-user lists and sets of entries whose record is gone, and returns
/// how many records it deleted. Records it cannot read are left alone.
const PURGE: &str = include_str!("redis/purge.lua");

/// KEYS[1] device, KEYS[2] user's device list; ARGV[1] token hash, ARGV[2] TTL,
/// ARGV[3..8] fields `i u l p c x`.
const CREATE_DEVICE: &str = include_str!("redis/create_device.lua");

/// KEYS[1] user's device list; ARGV[1] device key prefix. Returns the fields
/// `i u l p c x` of every device still present, flattened, in insertion order, and prunes
/// list entries whose device is gone.
const LIST_DEVICES: &str = include_str!("redis/list_devices.lua");

/// KEYS[1] user's device list; ARGV[1] device key prefix, ARGV[2] device id.
/// Returns 1 when the device was there.
const REVOKE_DEVICE: &str = include_str!("redis/revoke_device.lua");

/// KEYS[1] user's device list; ARGV[1] device key prefix. Returns how many devices
/// were deleted.
const REVOKE_ALL_DEVICES: &str = include_str!("redis/revoke_all_devices.lua");

/// KEYS[1] session, KEYS[2] user's session set; ARGV[1] token hash, ARGV[2] TTL,
/// ARGV[3..9] fields `i u p m c a x`. The set is written first: a set of the wrong
/// type fails the script before anything was written.
const CREATE_SESSION: &str = include_str!("redis/create_session.lua");

/// KEYS[1] session; ARGV[1] session set key prefix, ARGV[2] token hash. Deletes the
/// session and its entry in its user's set.
const DELETE_SESSION: &str = include_str!("redis/delete_session.lua");

/// KEYS[1] session; ARGV[1] at (padded), ARGV[2] at. Sets `a` of a session unexpired
/// at `at`, keeping its TTL. Returns 1 when set; 0 for a missing, expired or 0.1
/// session (no `i`, `m`, `a`).
const REAUTHENTICATE_SESSION: &str = include_str!("redis/reauthenticate_session.lua");

/// KEYS[1] user's session set; ARGV[1] session key prefix, ARGV[2] user id, ARGV[3]
/// now (padded). Returns the fields `i u p m c a x` of the user's sessions unexpired at
/// `now`, flattened, in no order. Deletes the expired ones and prunes set entries
/// whose session is gone or belongs to someone else; a hash without `u` is returned
/// as it is, for the caller to reject.
const LIST_SESSIONS: &str = include_str!("redis/list_sessions.lua");

/// KEYS[1] user's session set; ARGV[1] session key prefix, ARGV[2] user id, ARGV[3]
/// session id. Returns 1 when the session was there.
const DELETE_SESSION_BY_ID: &str = include_str!("redis/delete_session_by_id.lua");

/// KEYS[1] user's session set; ARGV[1] session key prefix, ARGV[2] user id, ARGV[3]
/// `1` to keep the session with id ARGV[4], `0` to keep none. Returns how many
/// sessions were deleted.
const DELETE_SESSIONS: &str = include_str!("redis/delete_sessions.lua");

/// The scripts, compiled (hashed) once per process.
struct Scripts {
    begin_attempt: Script,
    take_pending: Script,
    take_enrollment: Script,
    advance_step: Script,
    update_throttle: Script,
    create_device: Script,
    list_devices: Script,
    revoke_device: Script,
    revoke_all_devices: Script,
    create_session: Script,
    delete_session: Script,
    reauthenticate_session: Script,
    list_sessions: Script,
    delete_session_by_id: Script,
    delete_sessions: Script,
    purge: Script,
    take_ceremony: Script,
    commit_factor: Script,
    read_factor: Script,
}

impl Scripts {
    fn all(&self) -> [&Script; 19] {
        [
            &self.begin_attempt,
            &self.take_pending,
            &self.take_enrollment,
            &self.advance_step,
            &self.update_throttle,
            &self.create_device,
            &self.list_devices,
            &self.revoke_device,
            &self.revoke_all_devices,
            &self.create_session,
            &self.delete_session,
            &self.reauthenticate_session,
            &self.list_sessions,
            &self.delete_session_by_id,
            &self.delete_sessions,
            &self.purge,
            &self.take_ceremony,
            &self.commit_factor,
            &self.read_factor,
        ]
    }
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| {
    let s = |body: &str| Script::new(&format!("{LUA_PRELUDE}{body}"));
    Scripts {
        begin_attempt: s(BEGIN_ATTEMPT),
        take_pending: s(TAKE_PENDING),
        take_enrollment: s(TAKE_ENROLLMENT),
        advance_step: s(ADVANCE_STEP),
        update_throttle: s(UPDATE_THROTTLE),
        create_device: s(CREATE_DEVICE),
        list_devices: s(LIST_DEVICES),
        revoke_device: s(REVOKE_DEVICE),
        revoke_all_devices: s(REVOKE_ALL_DEVICES),
        create_session: s(CREATE_SESSION),
        delete_session: s(DELETE_SESSION),
        reauthenticate_session: s(REAUTHENTICATE_SESSION),
        list_sessions: s(LIST_SESSIONS),
        delete_session_by_id: s(DELETE_SESSION_BY_ID),
        delete_sessions: s(DELETE_SESSIONS),
        purge: s(PURGE),
        take_ceremony: s(TAKE_CEREMONY),
        commit_factor: s(COMMIT_FACTOR),
        read_factor: s(READ_FACTOR),
    }
});

/// An [`EphemeralStore`] in Redis: pending logins and enrollments, replay marks,
/// throttles, trusted devices and sessions, each with a TTL.
///
/// It is not an [`AccountStore`]: join it with one (SQL, or your own users table)
/// through [`Combined`]. Cloning is cheap and shares the connection.
///
/// # Key layout
///
/// Every key starts with the store's prefix (`"sf:"` unless
/// [`with_prefix`](RedisStore::with_prefix) says otherwise). Tokens appear only as the
/// hex of their keyed hash.
///
/// | key | type | fields / value |
/// | --- | --- | --- |
/// | `{p}pl:{token hash}` | hash | pending login: `u` user id, `p` password epoch, `a` attempts, `x` expires at |
/// | `{p}en:{user id}` | hash | pending enrollment: `i` id, `n` name, `s` sealed secret (bytes), `d` adding (`0`/`1`), `x` expires at |
/// | `{p}st:{authenticator id}` | string | last accepted TOTP step |
/// | `{p}th:{throttle key}` | string | `{count}:{until}:{keep_until}`; a missing key, or one past its `keep_until`, is the zero state (0.2 wrote `{count}:{until}`, read as never past `keep_until`) |
/// | `{p}dv:{token hash}` | hash | trusted device: `i` id, `u` user id, `l` label, `p` epoch, `c` created at, `x` expires at |
/// | `{p}du:{user id}` | list | the user's device token hashes, in insertion order (listed by `created_at`) |
/// | `{p}se:{token hash}` | hash | session: `i` id, `u` user id, `p` epoch, `m` method ([`AuthMethod::as_str`]), `c` created at, `a` authenticated at, `x` expires at |
/// | `{p}su:{user id}` | set | the user's session token hashes (listed by `created_at`) |
///
/// Times and steps that a script compares (`x`, the step) are written as 20-digit
/// zero-padded decimals, so that the Lua scripts compare them exactly over the whole
/// `u64` range (Lua numbers are doubles) without depending on the server's locale.
/// Every value read back is checked strictly; a value this store did not write
/// (a corrupt or foreign key) is [`Error::Internal`], never a panic.
///
/// # Atomicity
///
/// Each operation is one Redis command, one `MULTI`/`EXEC` block or one Lua script
/// (run with `EVALSHA`; the scripts are loaded when connecting and again whenever
/// the server lost them), and Redis runs each of those atomically:
/// the compare-and-sets ([`advance_last_step`](EphemeralStore::advance_last_step),
/// [`update_throttle`](EphemeralStore::update_throttle)), the attempt counters
/// ([`begin_login_attempt`](EphemeralStore::begin_login_attempt), and
/// [`read_factor_ephemeral`](EphemeralStore::read_factor_ephemeral), which also reads
/// the user's throttles in the same script) and the takes
/// ([`take_pending_login`](EphemeralStore::take_pending_login),
/// [`take_enrollment`](EphemeralStore::take_enrollment)) hold against any number of
/// processes sharing the server.
///
/// Sessions and their per-user set are written, deleted and listed together by one
/// script each, so [`delete_sessions`](EphemeralStore::delete_sessions) deletes every
/// session whose [`create_session`](EphemeralStore::create_session) returned before
/// it started, and [`reauthenticate_session`](EphemeralStore::reauthenticate_session)
/// never recreates a deleted session nor changes a session's TTL. The scripts that
/// walk a user's set drop entries whose session is gone, and
/// [`sessions`](EphemeralStore::sessions) also deletes the sessions expired at the
/// `now` it is given.
///
/// The device and session scripts touch the per-user list or set and the records in
/// one script (and the second-factor read finds the throttles from the pending
/// login's user id), so all keys of one prefix must live on one server: this store is for a
/// single Redis (or a primary with replicas), not Redis Cluster.
///
/// # Sessions written by 0.1
///
/// A session written by 0.1 has no id, method or authentication time and is in no
/// per-user set, so it could be neither listed nor ended by
/// [`delete_sessions`](EphemeralStore::delete_sessions). This version treats it as
/// absent: its owner logs in again once after the upgrade.
///
/// # Expiry: the caller's clock decides, TTLs only collect garbage
///
/// The flows pass their own `now` (from their [`Clock`](crate::clock::Clock), which
/// may be a `ManualClock` decades away from the real time in tests). Whether a record
/// is alive is therefore decided only by comparing the `expires_at` stored in it with
/// that `now` — inside the script for the operations that write, in the decoder for
/// the reads. Redis TTLs are never relied on for correctness.
///
/// Every key still gets a TTL so that Redis forgets dead records by itself. The write
/// methods are not given `now`, so the TTL is computed against the wall clock of this
/// process:
///
/// - when `expires_at` (or `keep_until`) is in the wall clock's future, the TTL is the
///   time left plus 5 minutes of slack (capped at 10 years). With the
///   [`SystemClock`](crate::clock::SystemClock) this is the record's real lifetime.
/// - when it is not — the caller's clock runs behind the wall clock (a test clock), or
///   the record is already dead — the TTL is one day, long enough for any test run
///   and short enough not to pile up.
///
/// TTLs are only ever extended by the scripts that share a key (a replay mark keeps
/// the later of its expiries; a user's device list and session set live as long as
/// their longest-lived device or session). The one case where a TTL can drop a live record is a caller clock that
/// runs behind the wall clock by less than the record's lifetime and more than the
/// 5-minute slack: keep production clocks close to the real time.
///
/// # Connections and failures
///
/// The store talks through one multiplexed connection managed by a `redis`
/// `ConnectionManager`, which reconnects after the server went away; cloning the store shares it. Connecting times out after 2
/// seconds and each command after 5; a command that cannot be sent or answered is
/// [`Error::Unavailable`]. Every write is a single script or `MULTI` block, so a
/// failure never leaves half a record behind; as with any lost reply, a command whose
/// answer timed out may still have run (a replay mark set, an attempt counted), which
/// errs on the safe side. The store spawns its connection task on the tokio runtime
/// it was created in, so create it inside the runtime that will use it.
///
/// # Example
///
/// ```no_run
/// use secondfactor::store::{Combined, MemoryStore, RedisStore};
///
/// # async fn demo() -> secondfactor::Result<()> {
/// let ephemeral = RedisStore::connect("redis://127.0.0.1:6379").await?;
/// // In a real service the first half would be a durable AccountStore.
/// let store = Combined::new(MemoryStore::new(), ephemeral);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: Arc<str>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis server at `url`
    /// (`redis://[user:password@]host[:port][/db]` or `redis+unix:///path`; TLS is
    /// not compiled in) with the key prefix `"sf:"`, and loads the scripts.
    ///
    /// Must be called from within a tokio runtime, which then runs the connection.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a malformed URL or outside a tokio runtime;
    /// [`Error::Unavailable`] when the server cannot be reached within 2 seconds or
    /// refuses to load the scripts.
    pub async fn connect(url: &str) -> Result<RedisStore> {
        Self::with_prefix(url, DEFAULT_PREFIX).await
    }

    /// Like [`connect`](Self::connect), with every key under `prefix` instead of
    /// `"sf:"`: several services (or test runs) can share one Redis database.
    ///
    /// # Errors
    ///
    /// As for [`connect`](Self::connect).
    pub async fn with_prefix(url: &str, prefix: impl Into<String>) -> Result<RedisStore> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::InvalidConfig("RedisStore needs a tokio runtime"));
        }
        let client =
            ::redis::Client::open(url).map_err(|_| Error::InvalidConfig("malformed Redis URL"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| Error::unavailable("redis connect", e))?;
        for script in SCRIPTS.all() {
            script
                .load_async(&mut conn)
                .await
                .map_err(|e| Error::unavailable("redis script load", e))?;
        }
        Ok(RedisStore {
            conn,
            prefix: prefix.into().into(),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn token_key(&self, kind: &str, token: &KeyedHash) -> String {
        self.key(kind, &token.to_hex())
    }

    async fn query(&self, op: &'static str, cmd: &Cmd) -> Result<Value> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(fail(op))
    }

    async fn run(
        &self,
        op: &'static str,
        script: &Script,
        keys: &[impl AsRef<str>],
        args: &[impl AsRef<[u8]>],
    ) -> Result<Value> {
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(k.as_ref());
        }
        for a in args {
            inv.arg(a.as_ref());
        }
        let mut conn = self.conn.clone();
        inv.invoke_async(&mut conn).await.map_err(fail(op))
    }

    /// The keys (the device, its user's list) and arguments (token hash, TTL,
    /// fields `i u l p c x`) of a device write, for `put_device` in the scripts.
    fn device_write(&self, token: &KeyedHash, d: &DeviceRecord) -> ([String; 2], Vec<Vec<u8>>) {
        let hex = token.to_hex();
        let keys = [self.key("dv", &hex), self.key("du", d.user_id.as_str())];
        let args = vec![
            hex.into_bytes(),
            gc_ttl(d.expires_at).to_string().into_bytes(),
            d.id.as_str().as_bytes().to_vec(),
            d.user_id.as_str().as_bytes().to_vec(),
            d.label.as_bytes().to_vec(),
            d.password_epoch.to_string().into_bytes(),
            d.created_at.to_string().into_bytes(),
            pad(d.expires_at).into_bytes(),
        ];
        (keys, args)
    }

    /// The keys (the session, its user's set) and arguments (token hash, TTL, fields
    /// `i u p m c a x`) of a session write, for `put_session` in the scripts.
    fn session_write(&self, token: &KeyedHash, s: &SessionRecord) -> ([String; 2], Vec<Vec<u8>>) {
        let hex = token.to_hex();
        let keys = [self.key("se", &hex), self.key("su", s.user_id.as_str())];
        let args = vec![
            hex.into_bytes(),
            gc_ttl(s.expires_at).to_string().into_bytes(),
            s.id.as_str().as_bytes().to_vec(),
            s.user_id.as_str().as_bytes().to_vec(),
            s.password_epoch.to_string().into_bytes(),
            s.method.as_str().as_bytes().to_vec(),
            s.created_at.to_string().into_bytes(),
            s.authenticated_at.to_string().into_bytes(),
            pad(s.expires_at).into_bytes(),
        ];
        (keys, args)
    }

    /// Writes a hash record atomically: replaces whatever the key held, sets the TTL.
    async fn put_hash(
        &self,
        op: &'static str,
        key: &str,
        fields: &[(&str, &[u8])],
        ttl: u64,
    ) -> Result<()> {
        let mut pipe = ::redis::pipe();
        pipe.atomic().del(key).ignore();
        pipe.cmd("HSET").arg(key);
        for (name, value) in fields {
            pipe.arg(*name).arg(*value);
        }
        pipe.ignore().expire(key, ttl_arg(ttl)).ignore();
        let mut conn = self.conn.clone();
        pipe.exec_async(&mut conn).await.map_err(fail(op))
    }

    async fn hmget(&self, op: &'static str, key: &str, fields: &[&str]) -> Result<Value> {
        let mut cmd = ::redis::cmd("HMGET");
        cmd.arg(key).arg(fields);
        self.query(op, &cmd).await
    }

    async fn del(&self, op: &'static str, key: &str) -> Result<()> {
        let mut cmd = ::redis::cmd("DEL");
        cmd.arg(key);
        self.query(op, &cmd).await.map(drop)
    }
}

/// Maps a driver error: a key of the wrong type is corrupt data; everything else
/// (connection refused, dropped, timed out, server busy or read-only) means the store
/// is unavailable.
fn fail(op: &'static str) -> impl FnOnce(RedisError) -> Error {
    move |e| {
        if e.code() == Some("WRONGTYPE") {
            tracing::error!(op, "redis key holds a value of the wrong type");
            Error::Internal("corrupt record in redis")
        } else {
            Error::unavailable(op, e)
        }
    }
}

fn corrupt() -> Error {
    tracing::error!("corrupt record in redis");
    Error::Internal("corrupt record in redis")
}

/// Seconds since the Unix epoch by this process's wall clock (0 before 1970).
fn wall_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The garbage-collection TTL of a record that is dead after `until` by the caller's
/// clock; see "Expiry" in the module docs.
fn gc_ttl(until: u64) -> u64 {
    let wall = wall_now();
    if until > wall {
        (until - wall).saturating_add(TTL_SLACK).min(TTL_MAX)
    } else {
        TTL_BEHIND
    }
}

fn ttl_arg(ttl: u64) -> i64 {
    i64::try_from(ttl).unwrap_or(i64::MAX)
}

/// A time or step as the scripts compare it: 20 digits, zero-padded.
fn pad(n: u64) -> String {
    format!("{n:020}")
}

/// A throttle state as the compare-and-set script compares it: `count:until`.
fn encode_throttle(s: ThrottleState) -> String {
    format!("{}:{}", s.count, s.until)
}

/// A throttle state as stored: `count:until:keep_until` (padded).
fn encode_stored_throttle(s: ThrottleState, keep_until: u64) -> String {
    format!("{}:{}", encode_throttle(s), pad(keep_until))
}

/// A throttle write as the scripts take it: the stored value (`''` for the zero
/// state, which deletes the key) and its TTL.
fn throttle_write(state: ThrottleState, keep_until: u64) -> (String, String) {
    let value = if state == ThrottleState::default() {
        String::new()
    } else {
        encode_stored_throttle(state, keep_until)
    };
    (value, gc_ttl(keep_until).to_string())
}

/// A stored throttle as [`EphemeralStore::throttle`] returns it at `now`: zero when
/// past its `keep_until`. A value without `keep_until` (written by 0.2) never is.
fn decode_throttle(raw: &[u8], now: u64) -> Result<ThrottleState> {
    let text = std::str::from_utf8(raw).map_err(|_| corrupt())?;
    let text = match text.rsplit_once(':') {
        Some((state, keep)) if state.contains(':') => {
            let keep_until: u64 = parse_digits(keep.as_bytes())?;
            if pad(keep_until) != keep {
                return Err(corrupt());
            }
            if keep_until <= now {
                return Ok(ThrottleState::default());
            }
            state
        }
        _ => text,
    };
    let (count, until) = text.split_once(':').ok_or_else(corrupt)?;
    let state = ThrottleState {
        count: parse_digits(count.as_bytes())?,
        until: parse_digits(until.as_bytes())?,
    };
    // Only the canonical form compares equal in the compare-and-set script.
    if encode_throttle(state) != text {
        return Err(corrupt());
    }
    Ok(state)
}

/// Parses an unsigned decimal of ASCII digits only (no sign, no spaces).
fn parse_digits<T: std::str::FromStr>(raw: &[u8]) -> Result<T> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return Err(corrupt());
    }
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(corrupt)
}

/// The fields of a record as a script or `HMGET` returned them.
struct Fields(Vec<Vec<u8>>);

impl Fields {
    /// `None` for a missing record (nil, or every field nil); exactly `n` present
    /// fields otherwise; anything else is corrupt.
    fn decode(value: Value, n: usize) -> Result<Option<Fields>> {
        let items = match value {
            Value::Nil | Value::Boolean(false) => return Ok(None),
            Value::Array(items) => items,
            _ => return Err(corrupt()),
        };
        if items.len() != n {
            return Err(corrupt());
        }
        if items.iter().all(|v| matches!(v, Value::Nil)) {
            return Ok(None);
        }
        let fields = items
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => Ok(b),
                _ => Err(corrupt()),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Fields(fields)))
    }

    fn bytes(&self, i: usize) -> Result<&[u8]> {
        self.0.get(i).map(Vec::as_slice).ok_or_else(corrupt)
    }

    fn string(&self, i: usize) -> Result<String> {
        String::from_utf8(self.bytes(i)?.to_vec()).map_err(|_| corrupt())
    }

    fn num<T: std::str::FromStr>(&self, i: usize) -> Result<T> {
        parse_digits(self.bytes(i)?)
    }

    fn flag(&self, i: usize) -> Result<bool> {
        match self.bytes(i)? {
            b"1" => Ok(true),
            b"0" => Ok(false),
            _ => Err(corrupt()),
        }
    }
}

const PENDING_FIELDS: [&str; 4] = ["u", "p", "a", "x"];

fn decode_pending(f: &Fields) -> Result<PendingLogin> {
    Ok(PendingLogin {
        user_id: UserId::new(f.string(0)?),
        password_epoch: f.num(1)?,
        attempts: f.num(2)?,
        expires_at: f.num(3)?,
    })
}

const ENROLLMENT_FIELDS: [&str; 5] = ["i", "n", "s", "d", "x"];

fn decode_enrollment(f: &Fields) -> Result<PendingEnrollment> {
    Ok(PendingEnrollment {
        id: f.string(0)?,
        name: f.string(1)?,
        sealed_secret: SealedSecret::from_bytes(f.bytes(2)?.to_vec()).map_err(|_| corrupt())?,
        adding: f.flag(3)?,
        expires_at: f.num(4)?,
    })
}

const CEREMONY_FIELDS: usize = 4;

fn decode_ceremony(f: &Fields) -> Result<CeremonyRecord> {
    let login = match f.bytes(1)? {
        [] => None,
        bytes => Some(KeyedHash(
            <[u8; 32]>::try_from(bytes).map_err(|_| corrupt())?,
        )),
    };
    Ok(CeremonyRecord {
        user_id: UserId::new(f.string(0)?),
        login,
        state: f.bytes(2)?.to_vec(),
        expires_at: f.num(3)?,
    })
}

const DEVICE_FIELDS: [&str; 6] = ["i", "u", "l", "p", "c", "x"];

fn decode_device(f: &Fields) -> Result<DeviceRecord> {
    Ok(DeviceRecord {
        id: DeviceId::new(f.string(0)?),
        user_id: UserId::new(f.string(1)?),
        label: f.string(2)?,
        password_epoch: f.num(3)?,
        created_at: f.num(4)?,
        expires_at: f.num(5)?,
    })
}

const SESSION_FIELDS: [&str; 7] = ["i", "u", "p", "m", "c", "a", "x"];

fn decode_session(f: &Fields) -> Result<SessionRecord> {
    let method = AuthMethod::parse(&f.string(3)?).ok_or_else(|| {
        tracing::error!("unknown authentication method in a redis session");
        Error::Internal("unknown authentication method in a redis session")
    })?;
    Ok(SessionRecord {
        id: SessionId::new(f.string(0)?),
        user_id: UserId::new(f.string(1)?),
        password_epoch: f.num(2)?,
        method,
        created_at: f.num(4)?,
        authenticated_at: f.num(5)?,
        expires_at: f.num(6)?,
    })
}

/// Whether an `HMGET` of [`SESSION_FIELDS`] found a session written by 0.1: `u p c x`
/// only, without the id, method and authentication time that this version needs.
/// Such a record with a malformed field is corrupt, as it was for 0.1.
fn is_v01_session(value: &Value) -> Result<bool> {
    let Value::Array(items) = value else {
        return Ok(false);
    };
    if items.len() != SESSION_FIELDS.len() {
        return Ok(false);
    }
    let mut v01 = Vec::with_capacity(4);
    for (v, name) in items.iter().zip(SESSION_FIELDS) {
        match (name, v) {
            ("i" | "m" | "a", Value::Nil) => {}
            ("u" | "p" | "c" | "x", Value::BulkString(b)) => v01.push(b.clone()),
            _ => return Ok(false),
        }
    }
    let f = Fields(v01);
    f.string(0)?;
    f.num::<u64>(1)?;
    f.num::<u64>(2)?;
    f.num::<u64>(3)?;
    Ok(true)
}

/// A script's answer of `n` fields per record, flattened: one [`Fields`] per record.
fn records(value: Value, n: usize) -> Result<Vec<Fields>> {
    let Value::Array(items) = value else {
        return Err(corrupt());
    };
    if n == 0 || items.len() % n != 0 {
        return Err(corrupt());
    }
    let mut out = Vec::with_capacity(items.len() / n);
    let mut items = items.into_iter();
    loop {
        let record: Vec<Value> = items.by_ref().take(n).collect();
        if record.is_empty() {
            break;
        }
        out.push(Fields::decode(Value::Array(record), n)?.ok_or_else(corrupt)?);
    }
    Ok(out)
}

/// A script's integer answer: 0 or 1 (or a count); `'corrupt'` or anything else is
/// corrupt data.
fn int(value: Value) -> Result<i64> {
    match value {
        Value::Int(n) => Ok(n),
        _ => Err(corrupt()),
    }
}

fn flag(value: Value) -> Result<bool> {
    match int(value)? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(corrupt()),
    }
}

impl EphemeralStore for RedisStore {
    async fn create_pending_login(&self, token: &KeyedHash, login: &PendingLogin) -> Result<()> {
        let key = self.token_key("pl", token);
        let epoch = login.password_epoch.to_string();
        let attempts = login.attempts.to_string();
        let expires = pad(login.expires_at);
        let fields: [(&str, &[u8]); 4] = [
            ("u", login.user_id.as_str().as_bytes()),
            ("p", epoch.as_bytes()),
            ("a", attempts.as_bytes()),
            ("x", expires.as_bytes()),
        ];
        self.put_hash(
            "redis create_pending_login",
            &key,
            &fields,
            gc_ttl(login.expires_at),
        )
        .await
    }

    async fn begin_login_attempt(
        &self,
        token: &KeyedHash,
        max_attempts: u32,
        now: u64,
    ) -> Result<Option<PendingLogin>> {
        let key = self.token_key("pl", token);
        let now = pad(now);
        let max = max_attempts.to_string();
        let value = self
            .run(
                "redis begin_login_attempt",
                &SCRIPTS.begin_attempt,
                &[&key],
                &[now.as_bytes(), max.as_bytes()],
            )
            .await?;
        match Fields::decode(value, PENDING_FIELDS.len())? {
            Some(f) => decode_pending(&f).map(Some),
            None => Ok(None),
        }
    }

    async fn take_pending_login(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> Result<Option<PendingLogin>> {
        let key = self.token_key("pl", token);
        let value = self
            .run(
                "redis take_pending_login",
                &SCRIPTS.take_pending,
                &[&key],
                &[] as &[&[u8]],
            )
            .await?;
        match Fields::decode(value, PENDING_FIELDS.len())? {
            Some(f) => Ok(Some(decode_pending(&f)?).filter(|p| p.expires_at > now)),
            None => Ok(None),
        }
    }

    async fn delete_pending_login(&self, token: &KeyedHash) -> Result<()> {
        self.del("redis delete_pending_login", &self.token_key("pl", token))
            .await
    }

    async fn put_enrollment(&self, user_id: &UserId, enrollment: &PendingEnrollment) -> Result<()> {
        let key = self.key("en", user_id.as_str());
        let expires = pad(enrollment.expires_at);
        let fields: [(&str, &[u8]); 5] = [
            ("i", enrollment.id.as_bytes()),
            ("n", enrollment.name.as_bytes()),
            ("s", enrollment.sealed_secret.as_bytes()),
            ("d", if enrollment.adding { b"1" } else { b"0" }),
            ("x", expires.as_bytes()),
        ];
        self.put_hash(
            "redis put_enrollment",
            &key,
            &fields,
            gc_ttl(enrollment.expires_at),
        )
        .await
    }

    async fn enrollment(&self, user_id: &UserId, now: u64) -> Result<Option<PendingEnrollment>> {
        let key = self.key("en", user_id.as_str());
        let value = self
            .hmget("redis enrollment", &key, &ENROLLMENT_FIELDS)
            .await?;
        match Fields::decode(value, ENROLLMENT_FIELDS.len())? {
            Some(f) => Ok(Some(decode_enrollment(&f)?).filter(|e| e.expires_at > now)),
            None => Ok(None),
        }
    }

    async fn take_enrollment(&self, user_id: &UserId, id: &str, now: u64) -> Result<bool> {
        let key = self.key("en", user_id.as_str());
        let now = pad(now);
        let value = self
            .run(
                "redis take_enrollment",
                &SCRIPTS.take_enrollment,
                &[&key],
                &[id.as_bytes(), now.as_bytes()],
            )
            .await?;
        flag(value)
    }

    async fn put_ceremony(&self, key: &str, ceremony: &CeremonyRecord) -> Result<()> {
        let key = self.key("wa", key);
        let expires = pad(ceremony.expires_at);
        let login: &[u8] = ceremony.login.as_ref().map_or(&[], |h| h.as_bytes());
        let fields: [(&str, &[u8]); 4] = [
            ("u", ceremony.user_id.as_str().as_bytes()),
            ("l", login),
            ("s", &ceremony.state),
            ("x", expires.as_bytes()),
        ];
        self.put_hash(
            "redis put_ceremony",
            &key,
            &fields,
            gc_ttl(ceremony.expires_at),
        )
        .await
    }

    async fn take_ceremony(&self, key: &str, now: u64) -> Result<Option<CeremonyRecord>> {
        let key = self.key("wa", key);
        let value = self
            .run(
                "redis take_ceremony",
                &SCRIPTS.take_ceremony,
                &[&key],
                &[] as &[&[u8]],
            )
            .await?;
        match Fields::decode(value, CEREMONY_FIELDS)? {
            Some(f) => Ok(Some(decode_ceremony(&f)?).filter(|c| c.expires_at > now)),
            None => Ok(None),
        }
    }

    async fn advance_last_step(
        &self,
        id: &AuthenticatorId,
        step: u64,
        keep_until: u64,
    ) -> Result<bool> {
        let key = self.key("st", id.as_str());
        let step = pad(step);
        let ttl = gc_ttl(keep_until).to_string();
        let value = self
            .run(
                "redis advance_last_step",
                &SCRIPTS.advance_step,
                &[&key],
                &[step.as_bytes(), ttl.as_bytes()],
            )
            .await?;
        flag(value)
    }

    async fn throttle(&self, key: &str, now: u64) -> Result<ThrottleState> {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(self.key("th", key));
        match self.query("redis throttle", &cmd).await? {
            Value::Nil => Ok(ThrottleState::default()),
            Value::BulkString(raw) => decode_throttle(&raw, now),
            _ => Err(corrupt()),
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
        let key = self.key("th", key);
        let expected = encode_throttle(expected);
        let (new, ttl) = throttle_write(new, keep_until);
        let now = pad(now);
        let value = self
            .run(
                "redis update_throttle",
                &SCRIPTS.update_throttle,
                &[&key],
                &[
                    expected.as_bytes(),
                    new.as_bytes(),
                    ttl.as_bytes(),
                    now.as_bytes(),
                ],
            )
            .await?;
        flag(value)
    }

    async fn create_device(&self, token: &KeyedHash, device: &DeviceRecord) -> Result<()> {
        let (keys, args) = self.device_write(token, device);
        let value = self
            .run("redis create_device", &SCRIPTS.create_device, &keys, &args)
            .await?;
        flag(value).map(drop)
    }

    async fn device(&self, token: &KeyedHash, now: u64) -> Result<Option<DeviceRecord>> {
        let key = self.token_key("dv", token);
        let value = self.hmget("redis device", &key, &DEVICE_FIELDS).await?;
        match Fields::decode(value, DEVICE_FIELDS.len())? {
            Some(f) => Ok(Some(decode_device(&f)?).filter(|d| d.expires_at > now)),
            None => Ok(None),
        }
    }

    async fn devices(&self, user_id: &UserId, now: u64) -> Result<Vec<DeviceRecord>> {
        let list = self.key("du", user_id.as_str());
        let prefix = self.key("dv", "");
        let value = self
            .run(
                "redis devices",
                &SCRIPTS.list_devices,
                &[&list],
                &[prefix.as_bytes()],
            )
            .await?;
        let mut out = Vec::new();
        for f in records(value, DEVICE_FIELDS.len())? {
            let device = decode_device(&f)?;
            if device.expires_at > now {
                out.push(device);
            }
        }
        // The list is in insertion order; oldest first means by `created_at`. The
        // sort is stable, so equal times keep insertion order.
        out.sort_by_key(|d| d.created_at);
        Ok(out)
    }

    async fn revoke_device(&self, user_id: &UserId, id: &DeviceId) -> Result<bool> {
        let list = self.key("du", user_id.as_str());
        let prefix = self.key("dv", "");
        let value = self
            .run(
                "redis revoke_device",
                &SCRIPTS.revoke_device,
                &[&list],
                &[prefix.as_bytes(), id.as_str().as_bytes()],
            )
            .await?;
        flag(value)
    }

    async fn revoke_all_devices(&self, user_id: &UserId) -> Result<u32> {
        let list = self.key("du", user_id.as_str());
        let prefix = self.key("dv", "");
        let value = self
            .run(
                "redis revoke_all_devices",
                &SCRIPTS.revoke_all_devices,
                &[&list],
                &[prefix.as_bytes()],
            )
            .await?;
        let n = int(value)?;
        u32::try_from(n).map_err(|_| corrupt())
    }

    async fn create_session(&self, token: &KeyedHash, session: &SessionRecord) -> Result<()> {
        let (keys, args) = self.session_write(token, session);
        let value = self
            .run(
                "redis create_session",
                &SCRIPTS.create_session,
                &keys,
                &args,
            )
            .await?;
        flag(value).map(drop)
    }

    async fn session(&self, token: &KeyedHash, now: u64) -> Result<Option<SessionRecord>> {
        let key = self.token_key("se", token);
        let value = self.hmget("redis session", &key, &SESSION_FIELDS).await?;
        if is_v01_session(&value)? {
            return Ok(None);
        }
        match Fields::decode(value, SESSION_FIELDS.len())? {
            Some(f) => Ok(Some(decode_session(&f)?).filter(|s| s.expires_at > now)),
            None => Ok(None),
        }
    }

    async fn delete_session(&self, token: &KeyedHash) -> Result<()> {
        let hex = token.to_hex();
        let key = self.key("se", &hex);
        let index_prefix = self.key("su", "");
        let value = self
            .run(
                "redis delete_session",
                &SCRIPTS.delete_session,
                &[&key],
                &[index_prefix.as_bytes(), hex.as_bytes()],
            )
            .await?;
        flag(value).map(drop)
    }

    async fn sessions(&self, user_id: &UserId, now: u64) -> Result<Vec<SessionRecord>> {
        let index = self.key("su", user_id.as_str());
        let prefix = self.key("se", "");
        let padded_now = pad(now);
        let value = self
            .run(
                "redis sessions",
                &SCRIPTS.list_sessions,
                &[&index],
                &[
                    prefix.as_bytes(),
                    user_id.as_str().as_bytes(),
                    padded_now.as_bytes(),
                ],
            )
            .await?;
        let mut out = Vec::new();
        for f in records(value, SESSION_FIELDS.len())? {
            let session = decode_session(&f)?;
            if session.expires_at > now {
                out.push(session);
            }
        }
        // A set has no order; oldest first means by `created_at`.
        out.sort_by_key(|s| s.created_at);
        Ok(out)
    }

    async fn reauthenticate_session(&self, token: &KeyedHash, at: u64) -> Result<bool> {
        let key = self.token_key("se", token);
        let padded = pad(at);
        let at = at.to_string();
        let value = self
            .run(
                "redis reauthenticate_session",
                &SCRIPTS.reauthenticate_session,
                &[&key],
                &[padded.as_bytes(), at.as_bytes()],
            )
            .await?;
        flag(value)
    }

    async fn delete_session_by_id(&self, user_id: &UserId, id: &SessionId) -> Result<bool> {
        let index = self.key("su", user_id.as_str());
        let prefix = self.key("se", "");
        let value = self
            .run(
                "redis delete_session_by_id",
                &SCRIPTS.delete_session_by_id,
                &[&index],
                &[
                    prefix.as_bytes(),
                    user_id.as_str().as_bytes(),
                    id.as_str().as_bytes(),
                ],
            )
            .await?;
        flag(value)
    }

    async fn delete_sessions(&self, user_id: &UserId, keep: Option<&SessionId>) -> Result<u32> {
        let index = self.key("su", user_id.as_str());
        let prefix = self.key("se", "");
        let (keeping, kept): (&[u8], &[u8]) = match keep {
            Some(id) => (b"1", id.as_str().as_bytes()),
            None => (b"0", b""),
        };
        let value = self
            .run(
                "redis delete_sessions",
                &SCRIPTS.delete_sessions,
                &[&index],
                &[
                    prefix.as_bytes(),
                    user_id.as_str().as_bytes(),
                    keeping,
                    kept,
                ],
            )
            .await?;
        let n = int(value)?;
        u32::try_from(n).map_err(|_| corrupt())
    }

    /// One script (`read_factor.lua`): the pending logins looked at in turn, the
    /// throttles of the first live one's user read, then the attempt counted (and the
    /// dead logins met on the way deleted), all in one `EVALSHA`.
    async fn read_factor_ephemeral(
        &self,
        tokens: &[KeyedHash],
        max_attempts: u32,
        now: u64,
    ) -> Result<Option<FactorEphemeralView>> {
        let keys: Vec<String> = tokens.iter().map(|t| self.token_key("pl", t)).collect();
        let [lockout, budget] = unit::factor_throttle_key_prefixes();
        let args = [
            pad(now),
            max_attempts.to_string(),
            self.key("th", lockout),
            self.key("th", budget),
        ];
        let value = self
            .run(
                "redis read_factor_ephemeral",
                &SCRIPTS.read_factor,
                &keys,
                &args,
            )
            .await?;
        let Some(Fields(mut fields)) = Fields::decode(value, 1 + PENDING_FIELDS.len() + 2)? else {
            return Ok(None);
        };
        let states = fields.split_off(1 + PENDING_FIELDS.len());
        let index: usize = parse_digits(&fields.remove(0))?;
        let token = *index
            .checked_sub(1)
            .and_then(|i| tokens.get(i))
            .ok_or_else(corrupt)?;
        let pending = decode_pending(&Fields(fields))?;
        let [lockout, budget] = [&states[0], &states[1]].map(|raw| decode_throttle(raw, now));
        Ok(Some(FactorEphemeralView {
            token,
            pending,
            throttles: [lockout?, budget?],
        }))
    }

    /// One script (`commit_factor.lua`): every throttle compared, the pending login
    /// checked, the replay marks advanced, then the outcome's writes, all in one
    /// `EVALSHA` that Redis runs atomically.
    async fn commit_factor_ephemeral(&self, c: &FactorCommit<'_>) -> Result<FactorCommitted> {
        let mut keys: Vec<String> = Vec::with_capacity(1 + c.throttles.len() + c.spend.len() + 4);
        let mut args: Vec<Vec<u8>> =
            Vec::with_capacity(3 + 5 * c.throttles.len() + 2 * c.spend.len() + 24);
        keys.push(self.token_key("pl", c.token));
        args.push(pad(c.now).into_bytes());
        args.push(c.throttles.len().to_string().into_bytes());
        args.push(c.spend.len().to_string().into_bytes());
        for t in c.throttles {
            keys.push(self.key("th", t.key));
            let (counted, counted_ttl) = throttle_write(t.counted.0, t.counted.1);
            let (success, success_ttl) = throttle_write(t.on_success.0, t.on_success.1);
            args.extend([
                encode_throttle(t.expected).into_bytes(),
                counted.into_bytes(),
                counted_ttl.into_bytes(),
                success.into_bytes(),
                success_ttl.into_bytes(),
            ]);
        }
        for m in c.spend {
            keys.push(self.key("st", m.authenticator.as_str()));
            args.push(pad(m.step).into_bytes());
            args.push(gc_ttl(m.keep_until).to_string().into_bytes());
        }
        for w in [&c.on_success, &c.on_failure] {
            args.push(if w.take_pending { b"1" } else { b"0" }.to_vec());
            let session = w.session.map(|(h, s)| self.session_write(h, s));
            let device = w.device.map(|(h, d)| self.device_write(h, d));
            for write in [session, device] {
                match write {
                    Some((k, a)) => {
                        keys.extend(k);
                        args.push(b"1".to_vec());
                        args.extend(a);
                    }
                    None => args.push(b"0".to_vec()),
                }
            }
        }
        let value = self
            .run(
                "redis commit_factor_step",
                &SCRIPTS.commit_factor,
                &keys,
                &args,
            )
            .await?;
        match int(value)? {
            1 => Ok(FactorCommitted::Spent),
            0 => Ok(FactorCommitted::NotSpent),
            2 => Ok(FactorCommitted::Conflict),
            3 => Ok(FactorCommitted::Expired),
            _ => Err(corrupt()),
        }
    }

    /// Walks the keys under the prefix with `SCAN` (so it costs a pass over the
    /// database: call it rarely, say hourly) and deletes, a batch per script, the
    /// pending logins, enrollments, devices, sessions and throttles expired at `now`
    /// by the caller's clock, with their entries in the per-user lists and sets, and
    /// prunes list and set entries whose record a TTL already removed. Replay marks
    /// keep no expiry of their own and are left to their TTL. Returns how many
    /// records it deleted. Keys of another store whose prefix starts with this one's
    /// are seen too, and are left alone unless they look like this store's records.
    async fn purge_expired(&self, now: u64) -> Result<u64> {
        const OP: &str = "redis purge_expired";
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let now = pad(now);
        let mut cursor = String::from("0");
        let mut total = 0u64;
        loop {
            let mut cmd = ::redis::cmd("SCAN");
            cmd.arg(&cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            let mut conn = self.conn.clone();
            let (next, keys): (String, Vec<Vec<u8>>) =
                cmd.query_async(&mut conn).await.map_err(fail(OP))?;
            if !keys.is_empty() {
                let mut inv = SCRIPTS.purge.prepare_invoke();
                for k in &keys {
                    inv.key(k.as_slice());
                }
                inv.arg(now.as_bytes()).arg(self.prefix.as_bytes());
                let n = int(inv.invoke_async(&mut conn).await.map_err(fail(OP))?)?;
                total = total.saturating_add(u64::try_from(n).map_err(|_| corrupt())?);
            }
            if next == "0" {
                return Ok(total);
            }
            cursor = next;
        }
    }
}

/// How many keys one `SCAN` step of [`purge_expired`](EphemeralStore::purge_expired)
/// asks for.
const SCAN_BATCH: usize = 500;

/// `text` as a `SCAN MATCH` pattern that matches only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_numbers_sort_like_numbers() {
        let mut xs = [0, 1, 9, 10, u64::MAX, u64::MAX - 1, 1 << 53, (1 << 53) + 1];
        let mut padded: Vec<String> = xs.iter().map(|&x| pad(x)).collect();
        xs.sort_unstable();
        padded.sort();
        assert!(padded.iter().all(|p| p.len() == 20));
        let back: Vec<u64> = padded.iter().map(|p| p.parse().unwrap()).collect();
        assert_eq!(back, xs);
    }

    #[test]
    fn throttle_encoding_is_canonical_and_strict() {
        let s = ThrottleState {
            count: 7,
            until: 1_700_000_000,
        };
        assert_eq!(
            decode_throttle(encode_throttle(s).as_bytes(), 0).unwrap(),
            s
        );
        let stored = encode_stored_throttle(s, 100);
        assert_eq!(decode_throttle(stored.as_bytes(), 99).unwrap(), s);
        assert_eq!(
            decode_throttle(stored.as_bytes(), 100).unwrap(),
            ThrottleState::default()
        );
        assert!(matches!(
            decode_throttle(b"7:1:100", 0),
            Err(Error::Internal(_))
        ));
        for bad in [
            &b"07:1"[..],
            b"7:+1",
            b"7",
            b"7:1:2",
            b"",
            b":",
            b"4294967296:0",
            b"1:18446744073709551616",
            b"\xff:1",
            b" 7:1",
        ] {
            assert!(
                matches!(decode_throttle(bad, 0), Err(Error::Internal(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fields_decode_rejects_garbage_without_panicking() {
        assert!(Fields::decode(Value::Nil, 4).unwrap().is_none());
        assert!(
            Fields::decode(Value::Array(vec![Value::Nil; 4]), 4)
                .unwrap()
                .is_none()
        );
        for v in [
            Value::Int(3),
            Value::BulkString(b"corrupt".to_vec()),
            Value::Array(vec![Value::Nil; 3]),
            Value::Array(vec![
                Value::BulkString(b"u".to_vec()),
                Value::Nil,
                Value::Nil,
                Value::Nil,
            ]),
            Value::Array(vec![Value::Int(1); 4]),
        ] {
            assert!(matches!(Fields::decode(v, 4), Err(Error::Internal(_))));
        }
        let f = Fields(vec![
            b"user".to_vec(),
            b"-1".to_vec(),
            b"2".to_vec(),
            b"x".to_vec(),
        ]);
        assert!(decode_pending(&f).is_err());
        let f = Fields(vec![b"\xff".to_vec(), b"1".to_vec(), b"2".to_vec()]);
        assert!(f.string(0).is_err());
        assert!(f.num::<u32>(3).is_err());
    }

    #[test]
    fn sessions_decode_strictly_and_0_1_sessions_are_recognised() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let row = |m: &str| {
            Fields(
                ["s1", "alice", "3", m, "10", "20", "30"]
                    .iter()
                    .map(|f| f.as_bytes().to_vec())
                    .collect(),
            )
        };
        let s = decode_session(&row("backup_code")).unwrap();
        assert_eq!(s.id, SessionId::new("s1"));
        assert_eq!(s.method, AuthMethod::BackupCode);
        assert_eq!(
            (
                s.password_epoch,
                s.created_at,
                s.authenticated_at,
                s.expires_at
            ),
            (3, 10, 20, 30)
        );
        for bad in ["sms", "", "TOTP"] {
            assert!(matches!(decode_session(&row(bad)), Err(Error::Internal(_))));
        }
        let v01 = Value::Array(vec![
            Value::Nil,
            bulk("alice"),
            bulk("3"),
            Value::Nil,
            bulk("10"),
            Value::Nil,
            bulk("30"),
        ]);
        assert!(is_v01_session(&v01).unwrap());
        assert!(!is_v01_session(&Value::Nil).unwrap());
        assert!(!is_v01_session(&Value::Array(vec![Value::Nil; 7])).unwrap());
        let mut partial = vec![bulk("s1"); 7];
        partial[3] = Value::Nil;
        assert!(!is_v01_session(&Value::Array(partial)).unwrap());
        let Value::Array(mut bad) = v01 else {
            unreachable!()
        };
        bad[2] = bulk("x");
        assert!(matches!(
            is_v01_session(&Value::Array(bad)),
            Err(Error::Internal(_))
        ));
        assert!(records(Value::Array(vec![bulk("x"); 8]), 7).is_err());
        assert!(records(Value::Array(vec![Value::Nil; 7]), 7).is_err());
        assert_eq!(records(Value::Array(vec![]), 7).unwrap().len(), 0);
    }

    #[test]
    fn gc_ttl_covers_the_record_or_a_day() {
        let wall = wall_now();
        assert_eq!(gc_ttl(0), TTL_BEHIND);
        assert_eq!(gc_ttl(1_700_000_000), TTL_BEHIND);
        let t = gc_ttl(wall + 600);
        assert!((600 + TTL_SLACK - 2..=600 + TTL_SLACK).contains(&t), "{t}");
        assert_eq!(gc_ttl(u64::MAX), TTL_MAX);
    }
}
