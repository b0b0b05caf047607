//! Scaffolding shared by the store test files (`store_sqlite`, `store_postgres`,
//! `store_redis`, `store_faults`): server URLs from the environment, unique names, a
//! service over a store, the flows end to end, and the checks only the SQL stores
//! share (migrations from 0.1, value ranges, rows the crate cannot read, purging).
//!
//! Every contract of the store traits is checked by the public conformance suite
//! (`secondfactor::store::conformance`), which each store file runs; what is here is
//! what the suite cannot check through the traits.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use secondfactor::clock::ManualClock;
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, KeyedHash, SealingKey};
use secondfactor::store::*;
use secondfactor::totp::TotpKey;
use secondfactor::{LoginOutcome, LoginRequest, RecentAuth, SecondFactor, Service};

/// A test clock's start: 10 s into a 30 s period, far behind the wall clock.
pub const T0: u64 = 1_700_000_010;
/// The password of every account the flows register.
pub const PW: &str = "correct horse battery";

/// The server URL in environment variable `var`; `None` (with a note) when it is
/// unset, which fails under `CI=true` so that CI never skips a store.
pub fn env_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{var} must be set when CI=true"
            );
            eprintln!("note: {var} is not set; skipping this store test");
            None
        }
    }
}

/// A unique string: a prefix and 24 hex digits.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}{:016x}{:08x}",
        t as u64 ^ u64::from(std::process::id()),
        n
    )
}

/// A random token hash, as the core stores a token under.
pub fn token() -> KeyedHash {
    KeyedHash(rand::random())
}

/// One key ring for the whole test binary.
pub fn keys() -> KeyRing {
    static K: OnceLock<String> = OnceLock::new();
    let b64 = K.get_or_init(|| SealingKey::generate().to_base64().to_string());
    KeyRing::new(1, SealingKey::from_base64(b64).unwrap())
}

/// A service over `store` with the shared [`keys`], `clock` and a cheap password
/// hasher.
pub fn service_on<S: Store>(store: S, clock: &ManualClock) -> Service<S> {
    Service::builder(store, keys())
        .clock(clock.clone())
        .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
        .build()
        .unwrap()
}

/// A service over `store`, with a manual clock at [`T0`].
pub fn service<S: Store>(store: S) -> (Service<S>, ManualClock) {
    let clock = ManualClock::new(T0);
    (service_on(store, &clock), clock)
}

/// A recent-authentication proof from a fresh password-only login (2FA still off).
pub async fn proof_for<S: Store>(service: &Service<S>, name: &str) -> RecentAuth {
    let LoginOutcome::Authenticated(auth) =
        service.login(LoginRequest::new(name, PW)).await.unwrap()
    else {
        panic!("2FA is still off")
    };
    let session = service.issue_session(auth).await.unwrap();
    service.recent_auth(session.expose()).await.unwrap()
}

/// The pending-login token of a password login that needs a second factor.
pub async fn pending_token<S: Store>(service: &Service<S>, name: &str) -> String {
    match service.login(LoginRequest::new(name, PW)).await.unwrap() {
        LoginOutcome::SecondFactorRequired(t) => t.token.expose().to_owned(),
        _ => panic!("expected a second factor"),
    }
}

/// A user that [`enroll`] registered and turned 2FA on for.
pub struct Enrolled {
    pub name: String,
    pub user: UserId,
    pub phone: TotpKey,
    pub backup: Vec<String>,
}

/// Registers a fresh user and turns 2FA on with TOTP; the clock ends one period
/// after the confirmation.
pub async fn enroll<S: Store>(service: &Service<S>, clock: &ManualClock) -> Enrolled {
    enroll_with(service, clock, async |_: &UserId| {}).await
}

/// [`enroll`], calling `pending(user)` while the enrollment is set up but not yet
/// confirmed.
pub async fn enroll_with<S: Store>(
    service: &Service<S>,
    clock: &ManualClock,
    pending: impl AsyncFnOnce(&UserId),
) -> Enrolled {
    let name = unique("f");
    let user = service.register(&name, PW).await.unwrap();
    let proof = proof_for(service, &name).await;
    let setup = service.setup_two_factor(&proof).await.unwrap();
    pending(&user).await;
    let phone = TotpKey::new(service.totp_policy(), setup.secret().expose_bytes());
    let done = service
        .confirm_enrollment(&proof, &phone.generate(service.now()))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    let backup = done
        .backup_codes
        .unwrap()
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    Enrolled {
        name,
        user,
        phone,
        backup,
    }
}

/// The flows end to end on `store`: register, enroll, log in with TOTP and a backup
/// code, replay refused, sessions, devices.
pub async fn flows<S: Store>(store: S) {
    let (service, clock) = service(store);
    let Enrolled {
        name,
        user,
        phone,
        backup,
    } = enroll(&service, &clock).await;
    assert_eq!(
        service.register(&name, PW).await.unwrap_err().code(),
        "username_taken"
    );

    let token = pending_token(&service, &name).await;
    let code = phone.generate(service.now());
    let auth = service
        .second_factor(&token, SecondFactor::Totp(&code))
        .await
        .unwrap();
    assert_eq!(auth.user_id(), &user);
    // The pending login is spent.
    assert_eq!(
        service
            .second_factor(&token, SecondFactor::Totp(&code))
            .await
            .unwrap_err()
            .code(),
        "login_expired"
    );
    // Replay of the same code on a fresh login.
    let token = pending_token(&service, &name).await;
    assert_eq!(
        service
            .second_factor(&token, SecondFactor::Totp(&code))
            .await
            .unwrap_err()
            .code(),
        "code_already_used"
    );
    // A backup code works once; typed again it is said as spent.
    let auth = service
        .second_factor(&token, SecondFactor::BackupCode(&backup[0]))
        .await
        .unwrap();
    assert_eq!(
        service.status(&user).await.unwrap().backup_codes_remaining,
        9
    );
    let token = pending_token(&service, &name).await;
    assert_eq!(
        service
            .second_factor(&token, SecondFactor::BackupCode(&backup[0]))
            .await
            .unwrap_err()
            .code(),
        "backup_code_used"
    );
    // Sessions and devices.
    let device = service.trust_device(&auth, "laptop").await.unwrap();
    let session = service.issue_session(auth).await.unwrap();
    assert_eq!(
        service.session(session.expose()).await.unwrap().user_id(),
        &user
    );
    assert_eq!(service.trusted_devices(&user).await.unwrap().len(), 1);
    match service
        .login(LoginRequest::new(&name, PW).device_token(device.expose()))
        .await
        .unwrap()
    {
        LoginOutcome::Authenticated(a) => assert_eq!(a.user_id(), &user),
        _ => panic!("the trusted device should skip 2FA"),
    }
    // 12 hours later (by the service's clock, not the store's) the session is over.
    clock.advance(Duration::from_secs(12 * 3600));
    assert_eq!(
        service.session(session.expose()).await.unwrap_err().code(),
        "unauthenticated"
    );
    service.end_session(session.expose()).await.unwrap();
}

/// Runs one SQL statement on `pool` behind the store's back (with `?` or `$n`
/// placeholders, as the database wants), binding the arguments in order; panics
/// when it fails.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_macros)]
macro_rules! sql_exec {
    ($pool:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        sqlx::query($sql)$(.bind($bind))*.execute($pool).await.unwrap()
    };
}
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_imports)]
pub(crate) use sql_exec;

/// The values of one SQL query's single column, read behind the store's back.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_macros)]
macro_rules! sql_column {
    ($pool:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        sqlx::query_scalar($sql)$(.bind($bind))*.fetch_all($pool).await.unwrap()
    };
}
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_imports)]
pub(crate) use sql_column;

/// Makes `pool`'s database what secondfactor 0.1 left: its first migration
/// (`init_sql`), then an account (2FA off) and a session of it, with
/// `accounts_sql` and `sessions_sql` (the two INSERTs in the database's
/// placeholders). Returns the account's id and the session's token hash, for
/// [`upgraded`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_macros)]
macro_rules! fill_0_1 {
    ($pool:expr, $init_sql:expr, $accounts_sql:expr, $sessions_sql:expr) => {{
        migrator_0_1($init_sql).run($pool).await.unwrap();
        let acct = account(&unique("old"));
        let (id, name, hash) = (
            acct.id.as_str(),
            acct.username.as_str(),
            acct.password_hash.as_str(),
        );
        sql_exec!($pool, $accounts_sql, id, name, hash, T0 as i64);
        let token = token();
        let (at, until) = (T0 as i64, (T0 + 100) as i64);
        sql_exec!(
            $pool,
            $sessions_sql,
            token.as_bytes().as_slice(),
            id,
            at,
            until
        );
        (acct.id, token)
    }};
}
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_imports)]
pub(crate) use fill_0_1;

/// Asserts that the crate's migration history in `pool`'s database holds every
/// migration of this version.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_macros)]
macro_rules! assert_migrated {
    ($pool:expr) => {{
        let versions: Vec<i64> = sql_column!($pool, "SELECT version FROM sf_schema_migrations");
        assert_eq!(versions, [1, 2, 3]);
    }};
}
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_imports)]
pub(crate) use assert_migrated;

/// A stored kind or method the crate does not know is an internal error, not a
/// panic or a silent skip: `log_sql` writes a security-log entry of kind `bogus`
/// for a user (bound first) at a time (second), `sessions_sql` sets the method of
/// the user's sessions to `sms`.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_macros)]
macro_rules! unknown_names_are_internal_errors {
    ($store:expr, $pool:expr, $log_sql:expr, $sessions_sql:expr) => {{
        let s = $store;
        let acct = account(&unique("odd"));
        s.create_account(&acct).await.unwrap();
        let token = token();
        let record = session(&acct.id, T0, T0 + 100);
        s.create_session(&token, &record).await.unwrap();
        sql_exec!($pool, $log_sql, acct.id.as_str(), T0 as i64);
        sql_exec!($pool, $sessions_sql, acct.id.as_str());
        let e = s.security_log(&acct.id, 10).await.unwrap_err();
        assert_eq!(e.code(), "internal", "{e:?}");
        let e = s.session(&token, T0).await.unwrap_err();
        assert_eq!(e.code(), "internal", "{e:?}");
    }};
}
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_imports)]
pub(crate) use unknown_names_are_internal_errors;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[allow(unused_imports)] // Not every file that includes this module uses them.
pub use sql::*;

/// What only the SQL stores share: their schema, their value ranges, their rows.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql {
    use secondfactor::auth::AuthMethod;
    use secondfactor::password::PasswordHash;
    use secondfactor::secret::{KeyedHash, Secret};
    use secondfactor::security_log::{RETENTION_SECS, SecurityEvent, SecurityEventKind};
    use secondfactor::store::*;
    use std::sync::OnceLock;

    use super::*;

    /// The key id the checks record for backup codes.
    pub const KEY: u32 = 1;

    /// The hash of [`PW`], made once.
    pub fn pw_hash() -> PasswordHash {
        static H: OnceLock<PasswordHash> = OnceLock::new();
        H.get_or_init(|| PasswordHasher::new(256, 1, 1).unwrap().hash(PW).unwrap())
            .clone()
    }

    /// An account named `name`, 2FA off, created at [`T0`].
    pub fn account(name: &str) -> AccountRecord {
        AccountRecord {
            id: UserId::new(unique("u")),
            username: name.to_owned(),
            password_hash: pw_hash(),
            password_epoch: 0,
            two_factor_enabled: false,
            backup_codes_key_id: None,
            created_at: T0,
        }
    }

    /// A session of `user`, by password, authenticated when it was made.
    pub fn session(user: &UserId, created_at: u64, expires_at: u64) -> SessionRecord {
        SessionRecord {
            id: SessionId::new(unique("s")),
            user_id: user.clone(),
            password_epoch: 0,
            method: AuthMethod::Password,
            created_at,
            authenticated_at: created_at,
            expires_at,
        }
    }

    /// An authenticator of `user` with a freshly sealed secret.
    pub fn authenticator(user: &UserId, name: &str) -> AuthenticatorRecord {
        AuthenticatorRecord {
            id: AuthenticatorId::new(unique("a")),
            user_id: user.clone(),
            name: name.to_owned(),
            sealed_secret: keys().seal(user.as_str(), &Secret::generate()).unwrap(),
            created_at: T0,
        }
    }

    /// A migrator that applies only the crate's first migration (`sql`), with the
    /// crate's history table: a database as secondfactor 0.1 left it.
    pub fn migrator_0_1(sql: &'static str) -> sqlx::migrate::Migrator {
        use sqlx::SqlSafeStr;
        let first = sqlx::migrate::Migration::new(
            1,
            "init".into(),
            sqlx::migrate::MigrationType::Simple,
            sql.into_sql_str(),
            false,
        );
        let mut m = sqlx::migrate::Migrator::with_migrations(vec![first]);
        m.dangerous_set_table_name("sf_schema_migrations");
        m
    }

    /// After upgrading a 0.1 database that held `acct` (2FA off) and a session of it
    /// under `token`: the account reads back, the old session is gone, and the new
    /// operations work.
    pub async fn upgraded<S: Store>(s: &S, acct: &UserId, token: &KeyedHash) {
        let got = s.account(acct).await.unwrap().unwrap();
        assert_eq!(got.backup_codes_key_id, None);
        assert_eq!(got.password_hash.as_str(), pw_hash().as_str());
        assert!(
            s.session(token, T0).await.unwrap().is_none(),
            "0.1 sessions are ended"
        );
        assert!(s.sessions(acct, 0).await.unwrap().is_empty());
        let fresh = session(acct, T0, T0 + 100);
        s.create_session(token, &fresh).await.unwrap();
        assert_eq!(s.sessions(acct, T0).await.unwrap(), vec![fresh]);
        let event =
            SecurityEvent::new(T0, SecurityEventKind::Login).with_method(AuthMethod::Password);
        s.append_security_event(acct, &event, 10, 0).await.unwrap();
        assert_eq!(s.security_log(acct, 10).await.unwrap(), vec![event]);
        assert!(s.set_password(acct, &pw_hash(), 0, 1).await.unwrap());
    }

    /// The SQL columns are `BIGINT`: a replay step past `i64::MAX` is an internal
    /// error (no TOTP step gets there), while times past it are clamped, not wrapped.
    pub async fn value_ranges<S: Store>(s: &S) {
        let a = AuthenticatorId::new(unique("a"));
        assert!(s.advance_last_step(&a, 1, T0).await.unwrap());
        assert!(
            s.advance_last_step(&a, u64::try_from(i64::MAX).unwrap(), u64::MAX)
                .await
                .unwrap()
        );
        assert!(matches!(
            s.advance_last_step(&a, u64::MAX, u64::MAX).await,
            Err(secondfactor::Error::Internal(_))
        ));
        let key = unique("throttle:");
        let far = ThrottleState {
            count: 2,
            until: u64::MAX,
        };
        assert!(
            s.update_throttle(&key, ThrottleState::default(), far, T0 + 600, T0)
                .await
                .unwrap()
        );
        let stored = s.throttle(&key, T0).await.unwrap();
        assert_eq!(stored.count, 2);
        assert!(
            stored.until >= i64::MAX as u64,
            "a far time is clamped, not wrapped"
        );
    }

    /// `purge_expired` on an SQL store deletes exactly the expired rows of every
    /// kind, replay marks and security-log entries past the retention included, and
    /// counts each row it deleted.
    pub async fn purge_counts_every_expired_row<S: Store>(s: &S) {
        let user = UserId::new(unique("purge-user"));
        let (live, dead) = (token(), token());
        let p = |expires_at| PendingLogin {
            user_id: user.clone(),
            password_epoch: 0,
            attempts: 0,
            expires_at,
        };
        s.create_pending_login(&live, &p(T0 + 100)).await.unwrap();
        s.create_pending_login(&dead, &p(T0)).await.unwrap();
        let sess = |expires_at| session(&user, T0 - 10, expires_at);
        s.create_session(&live, &sess(T0 + 100)).await.unwrap();
        s.create_session(&dead, &sess(T0)).await.unwrap();
        let device = |expires_at| DeviceRecord {
            id: DeviceId::new(unique("d")),
            user_id: user.clone(),
            label: "x".into(),
            password_epoch: 0,
            created_at: T0 - 10,
            expires_at,
        };
        s.create_device(&live, &device(T0 + 100)).await.unwrap();
        s.create_device(&dead, &device(T0)).await.unwrap();
        let (old, new) = (
            AuthenticatorId::new(unique("old")),
            AuthenticatorId::new(unique("new")),
        );
        s.advance_last_step(&old, 5, T0).await.unwrap();
        s.advance_last_step(&new, 5, T0 + 1).await.unwrap();
        let zero = ThrottleState::default();
        let one = ThrottleState {
            count: 1,
            until: T0,
        };
        let (gone, kept) = (unique("gone"), unique("kept"));
        s.update_throttle(&gone, zero, one, T0, T0 - 1)
            .await
            .unwrap();
        s.update_throttle(&kept, zero, one, T0 + 1, T0 - 1)
            .await
            .unwrap();
        // Security-log entries older than the retention go too.
        let acct = account(&unique("logged"));
        s.create_account(&acct).await.unwrap();
        let horizon = T0 - RETENTION_SECS;
        for at in [horizon, horizon + 1] {
            let e = SecurityEvent::new(at, SecurityEventKind::Login);
            s.append_security_event(&acct.id, &e, 10, 0).await.unwrap();
        }
        // The store is shared with other tests: count what this one made, at least.
        let purged = s.purge_expired(T0).await.unwrap();
        assert!(purged >= 6, "{purged}");
        assert!(s.take_pending_login(&live, T0).await.unwrap().is_some());
        assert!(s.take_pending_login(&dead, T0 - 1).await.unwrap().is_none());
        assert!(s.session(&live, T0).await.unwrap().is_some());
        assert!(s.session(&dead, T0 - 1).await.unwrap().is_none());
        assert_eq!(s.devices(&user, 0).await.unwrap().len(), 1);
        assert_eq!(s.throttle(&gone, T0 - 1).await.unwrap(), zero);
        assert_eq!(s.throttle(&kept, T0 - 1).await.unwrap(), one);
        let log = s.security_log(&acct.id, 10).await.unwrap();
        assert_eq!(log.iter().map(|e| e.at).collect::<Vec<_>>(), [horizon + 1]);
        // The purged mark is forgotten, the kept one still refuses its step.
        assert!(s.advance_last_step(&old, 5, T0).await.unwrap());
        assert!(!s.advance_last_step(&new, 5, T0 + 1).await.unwrap());
    }

    /// The SQL stores' `read_factor_step` is one `SELECT`: it writes nothing, not
    /// even the attempt (their `commit_factor_step` counts it, guarded by
    /// `max_attempts`). Reads, however many, leave the pending login's attempts, the
    /// throttles and the security log as they were; a login out of attempts is
    /// refused, not burnt by a read; one commit then counts exactly one attempt.
    pub async fn the_step_read_writes_nothing<S: Store>(s: &S) {
        let a = account(&unique("reader"));
        s.create_account(&a).await.unwrap();
        let codes = [token(), token()];
        s.enable_two_factor(&authenticator(&a.id, "phone"), &codes, KEY)
            .await
            .unwrap();
        let [lockout, budget] = factor_throttle_keys(&a.id);
        let state = ThrottleState {
            count: 2,
            until: T0 - 1,
        };
        assert!(
            s.update_throttle(&lockout, ThrottleState::default(), state, T0 + 600, T0)
                .await
                .unwrap()
        );
        let pending = |attempts| PendingLogin {
            user_id: a.id.clone(),
            password_epoch: 0,
            attempts,
            expires_at: T0 + 300,
        };
        let live = token();
        s.create_pending_login(&live, &pending(1)).await.unwrap();
        let used_up = token();
        s.create_pending_login(&used_up, &pending(3)).await.unwrap();
        for _ in 0..5 {
            let view = s
                .read_factor_step(&[used_up, live], 3, T0)
                .await
                .unwrap()
                .expect("the live login is found under the second hash");
            assert!(view.token == live);
            assert_eq!(
                view.pending.attempts, 2,
                "the view counts this attempt, the row does not"
            );
            assert_eq!(view.throttles, [state, ThrottleState::default()]);
            assert_eq!(view.authenticators.len(), 1);
        }
        assert!(
            s.read_factor_step(&[used_up], 3, T0)
                .await
                .unwrap()
                .is_none(),
            "a login out of attempts is refused"
        );
        assert_eq!(s.throttle(&lockout, T0).await.unwrap(), state);
        assert_eq!(
            s.throttle(&budget, T0).await.unwrap(),
            ThrottleState::default()
        );
        assert!(s.security_log(&a.id, 10).await.unwrap().is_empty());
        assert_eq!(
            s.take_pending_login(&used_up, T0)
                .await
                .unwrap()
                .unwrap()
                .attempts,
            3,
            "the read burnt nothing"
        );

        // One commit of a wrong code counts one attempt.
        let commit = FactorCommit {
            token: &live,
            max_attempts: 3,
            user_id: &a.id,
            spend: &[],
            throttles: &[],
            on_success: OutcomeWrites::default(),
            on_failure: OutcomeWrites::default(),
            log_max_entries: 10,
            log_forget_before: 0,
            now: T0,
        };
        assert_eq!(
            s.commit_factor_step(&commit).await.unwrap(),
            FactorCommitted::NotSpent
        );
        assert_eq!(
            s.take_pending_login(&live, T0)
                .await
                .unwrap()
                .unwrap()
                .attempts,
            2,
            "the read counted nothing, the commit one attempt"
        );
    }
}
