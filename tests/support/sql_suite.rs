//! Checks shared by the SQLite and PostgreSQL store tests: every operation's
//! semantics, the flows end to end, and real races over two separate pools.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use secondfactor::auth::AuthMethod;
use secondfactor::clock::ManualClock;
use secondfactor::password::{PasswordHash, PasswordHasher};
use secondfactor::secret::{KeyRing, KeyedHash, SealedSecret, SealingKey, Secret};
use secondfactor::security_log::{SecurityEvent, SecurityEventKind};
use secondfactor::store::*;
use secondfactor::totp::TotpKey;
use secondfactor::{Error, LoginOutcome, LoginRequest, SecondFactor, Service};
use tokio::sync::Barrier;

pub const T0: u64 = 1_700_000_010;
pub const PW: &str = "correct horse battery";
/// The authenticator cap the plain checks pass (high enough not to matter).
pub const MAX: u32 = 10;
/// The key id the checks record for backup codes.
pub const KEY: u32 = 1;

pub fn pw_hash() -> PasswordHash {
    static H: OnceLock<PasswordHash> = OnceLock::new();
    H.get_or_init(|| PasswordHasher::new(256, 1, 1).unwrap().hash(PW).unwrap())
        .clone()
}

pub fn keys() -> KeyRing {
    static K: OnceLock<String> = OnceLock::new();
    let b64 = K.get_or_init(|| SealingKey::generate().to_base64().to_string());
    KeyRing::new(1, SealingKey::from_base64(b64).unwrap())
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

pub fn hash(tag: &str) -> KeyedHash {
    secondfactor::__private::login_token_hash(&keys(), tag.as_bytes())
}

pub fn sealed(user: &UserId) -> SealedSecret {
    keys().seal(user.as_str(), &Secret::generate()).unwrap()
}

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

pub fn authenticator(user: &UserId, name: &str, created_at: u64) -> AuthenticatorRecord {
    AuthenticatorRecord {
        id: AuthenticatorId::new(unique("a")),
        user_id: user.clone(),
        name: name.to_owned(),
        sealed_secret: sealed(user),
        created_at,
    }
}

pub fn codes(n: usize) -> Vec<KeyedHash> {
    (0..n).map(|_| hash(&unique("code"))).collect()
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
    let event = SecurityEvent::new(T0, SecurityEventKind::Login).with_method(AuthMethod::Password);
    s.append_security_event(acct, &event, 10, 0).await.unwrap();
    assert_eq!(s.security_log(acct, 10).await.unwrap(), vec![event]);
    assert!(s.set_password(acct, &pw_hash(), 0, 1).await.unwrap());
}

/// Accounts, authenticators and backup codes.
pub async fn accounts<S: Store>(s: &S) {
    let name = unique("alice");
    let a = account(&name);
    s.create_account(&a).await.unwrap();
    let mut dup = account(&name);
    dup.id = UserId::new(unique("u"));
    assert!(matches!(
        s.create_account(&dup).await,
        Err(Error::UsernameTaken)
    ));
    let got = s.account_by_username(&name).await.unwrap().unwrap();
    assert_eq!(got.id, a.id);
    assert_eq!(got.password_hash.as_str(), a.password_hash.as_str());
    assert_eq!((got.password_epoch, got.created_at), (0, T0));
    assert!(!got.two_factor_enabled);
    assert!(s.account(&dup.id).await.unwrap().is_none());
    assert!(
        s.account_by_username("nobody-at-all")
            .await
            .unwrap()
            .is_none()
    );

    assert_eq!(got.backup_codes_key_id, None);

    assert!(s.set_password(&a.id, &pw_hash(), 0, 3).await.unwrap());
    assert_eq!(s.account(&a.id).await.unwrap().unwrap().password_epoch, 3);
    assert!(!s.set_password(&dup.id, &pw_hash(), 0, 3).await.unwrap());

    // 2FA on: first authenticator and the codes, all at once.
    let first = authenticator(&a.id, "phone", T0);
    let set = codes(10);
    assert!(matches!(
        s.add_authenticator(&authenticator(&a.id, "x", T0), MAX)
            .await,
        Err(Error::TwoFactorNotEnabled)
    ));
    assert!(matches!(
        s.enable_two_factor(&authenticator(&dup.id, "x", T0), &set, KEY)
            .await,
        Err(Error::NotFound { .. })
    ));
    s.enable_two_factor(&first, &set, KEY).await.unwrap();
    assert!(matches!(
        s.enable_two_factor(&authenticator(&a.id, "again", T0), &codes(10), 7)
            .await,
        Err(Error::TwoFactorAlreadyEnabled)
    ));
    let got = s.account(&a.id).await.unwrap().unwrap();
    assert!(got.two_factor_enabled);
    assert_eq!(
        got.backup_codes_key_id,
        Some(KEY),
        "the losing enable wrote nothing"
    );
    assert_eq!(s.backup_codes_remaining(&a.id).await.unwrap(), 10);

    // Oldest first, even with equal timestamps.
    let second = authenticator(&a.id, "tablet", T0);
    let third = authenticator(&a.id, "old", T0 - 5);
    s.add_authenticator(&second, MAX).await.unwrap();
    s.add_authenticator(&third, 3).await.unwrap();
    // The cap: three is as many as three allows.
    assert!(matches!(
        s.add_authenticator(&authenticator(&a.id, "fourth", T0), 3)
            .await,
        Err(Error::TooManyAuthenticators)
    ));
    let names: Vec<String> = s
        .authenticators(&a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(names, ["old", "phone", "tablet"]);
    let stored = &s.authenticators(&a.id).await.unwrap()[1];
    assert_eq!(stored.sealed_secret, first.sealed_secret);
    assert_eq!(stored.user_id, a.id);
    keys().open(a.id.as_str(), &stored.sealed_secret).unwrap();

    // Reseal.
    let resealed = sealed(&a.id);
    assert!(
        s.reseal_authenticator(&a.id, &first.id, &resealed)
            .await
            .unwrap()
    );
    assert!(
        !s.reseal_authenticator(&dup.id, &first.id, &resealed)
            .await
            .unwrap()
    );
    let stored = s.authenticators(&a.id).await.unwrap();
    assert_eq!(stored[1].sealed_secret, resealed);

    // Remove: not found, removed, last one.
    let unknown = AuthenticatorId::new("nope");
    assert_eq!(
        s.remove_authenticator(&a.id, &unknown).await.unwrap(),
        RemoveOutcome::NotFound
    );
    assert_eq!(
        s.remove_authenticator(&dup.id, &first.id).await.unwrap(),
        RemoveOutcome::NotFound
    );
    assert_eq!(
        s.remove_authenticator(&a.id, &third.id).await.unwrap(),
        RemoveOutcome::Removed
    );
    assert_eq!(
        s.remove_authenticator(&a.id, &first.id).await.unwrap(),
        RemoveOutcome::Removed
    );
    assert_eq!(
        s.remove_authenticator(&a.id, &second.id).await.unwrap(),
        RemoveOutcome::LastOne
    );
    assert_eq!(s.authenticators(&a.id).await.unwrap().len(), 1);

    // Backup codes: consume once, replace voids the old set.
    assert!(s.consume_backup_code(&a.id, &set[0]).await.unwrap());
    assert!(!s.consume_backup_code(&a.id, &set[0]).await.unwrap());
    assert!(!s.consume_backup_code(&dup.id, &set[1]).await.unwrap());
    assert_eq!(s.backup_codes_remaining(&a.id).await.unwrap(), 9);
    let fresh = codes(10);
    s.replace_backup_codes(&a.id, &fresh, u32::MAX)
        .await
        .unwrap();
    assert_eq!(
        s.account(&a.id).await.unwrap().unwrap().backup_codes_key_id,
        Some(u32::MAX)
    );
    assert!(!s.consume_backup_code(&a.id, &set[1]).await.unwrap());
    assert!(s.consume_backup_code(&a.id, &fresh[9]).await.unwrap());
    assert_eq!(s.backup_codes_remaining(&a.id).await.unwrap(), 9);
    assert!(matches!(
        s.replace_backup_codes(&dup.id, &fresh, KEY).await,
        Err(Error::NotFound { .. })
    ));

    // 2FA off clears everything; a second disable reports it was off.
    assert!(s.disable_two_factor(&a.id).await.unwrap());
    assert!(!s.disable_two_factor(&a.id).await.unwrap());
    assert!(!s.disable_two_factor(&dup.id).await.unwrap());
    assert!(s.authenticators(&a.id).await.unwrap().is_empty());
    assert_eq!(s.backup_codes_remaining(&a.id).await.unwrap(), 0);
    let got = s.account(&a.id).await.unwrap().unwrap();
    assert!(!got.two_factor_enabled);
    assert_eq!(got.backup_codes_key_id, None);
    // And it can be turned on again.
    s.enable_two_factor(&authenticator(&a.id, "new", T0), &codes(3), 2)
        .await
        .unwrap();
    assert_eq!(s.backup_codes_remaining(&a.id).await.unwrap(), 3);
    assert_eq!(
        s.account(&a.id).await.unwrap().unwrap().backup_codes_key_id,
        Some(2)
    );
}

/// Pending logins, enrollments, replay marks, throttles, devices, sessions.
pub async fn ephemeral<S: Store>(s: &S) {
    let user = UserId::new(unique("u"));
    // Pending logins.
    let t = hash(&unique("login"));
    let p = PendingLogin {
        user_id: user.clone(),
        password_epoch: 4,
        attempts: 0,
        expires_at: T0 + 300,
    };
    s.create_pending_login(&t, &p).await.unwrap();
    for n in 1..=3 {
        let got = s.begin_login_attempt(&t, 3, T0).await.unwrap().unwrap();
        assert_eq!(
            (got.attempts, got.password_epoch, &got.user_id),
            (n, 4, &user)
        );
    }
    assert!(s.begin_login_attempt(&t, 3, T0).await.unwrap().is_none());
    // Burnt: gone even for a larger budget.
    assert!(s.begin_login_attempt(&t, 10, T0).await.unwrap().is_none());
    assert!(s.take_pending_login(&t, T0).await.unwrap().is_none());

    s.create_pending_login(&t, &p).await.unwrap();
    assert!(
        s.begin_login_attempt(&t, 3, T0 + 300)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert!(
        s.take_pending_login(&t, T0).await.unwrap().is_none(),
        "burnt when expired"
    );
    s.create_pending_login(&t, &p).await.unwrap();
    assert!(s.take_pending_login(&t, T0 + 300).await.unwrap().is_none());
    assert!(
        s.take_pending_login(&t, T0).await.unwrap().is_none(),
        "a take deletes"
    );
    s.create_pending_login(&t, &p).await.unwrap();
    assert_eq!(s.take_pending_login(&t, T0).await.unwrap(), Some(p.clone()));
    assert!(s.take_pending_login(&t, T0).await.unwrap().is_none());
    s.create_pending_login(&t, &p).await.unwrap();
    s.delete_pending_login(&t).await.unwrap();
    s.delete_pending_login(&t).await.unwrap();
    assert!(s.take_pending_login(&t, T0).await.unwrap().is_none());

    // Enrollments.
    let e = PendingEnrollment {
        id: unique("e"),
        name: "phone".into(),
        sealed_secret: sealed(&user),
        adding: true,
        expires_at: T0 + 600,
    };
    s.put_enrollment(&user, &e).await.unwrap();
    let got = s.enrollment(&user, T0).await.unwrap().unwrap();
    assert_eq!(
        (got.id.as_str(), got.adding, got.expires_at),
        (e.id.as_str(), true, T0 + 600)
    );
    assert_eq!(got.sealed_secret, e.sealed_secret);
    assert!(s.enrollment(&user, T0 + 600).await.unwrap().is_none());
    let newer = PendingEnrollment {
        id: unique("e"),
        adding: false,
        ..e.clone()
    };
    s.put_enrollment(&user, &newer).await.unwrap();
    assert!(
        !s.take_enrollment(&user, &e.id, T0).await.unwrap(),
        "the old id cannot take the new"
    );
    assert!(
        !s.take_enrollment(&user, &newer.id, T0 + 600).await.unwrap(),
        "expired"
    );
    assert!(s.take_enrollment(&user, &newer.id, T0).await.unwrap());
    assert!(!s.take_enrollment(&user, &newer.id, T0).await.unwrap());
    assert!(s.enrollment(&user, T0).await.unwrap().is_none());

    // Replay marks.
    let a = AuthenticatorId::new(unique("a"));
    assert!(s.advance_last_step(&a, 100, T0 + 90).await.unwrap());
    assert!(!s.advance_last_step(&a, 100, T0 + 90).await.unwrap());
    assert!(!s.advance_last_step(&a, 99, T0 + 90).await.unwrap());
    assert!(s.advance_last_step(&a, 102, T0 + 150).await.unwrap());
    assert!(!s.advance_last_step(&a, 101, T0 + 150).await.unwrap());
    let other = AuthenticatorId::new(unique("a"));
    assert!(s.advance_last_step(&other, 1, T0).await.unwrap());
    assert!(
        s.advance_last_step(&other, u64::try_from(i64::MAX).unwrap(), u64::MAX)
            .await
            .unwrap()
    );
    assert!(matches!(
        s.advance_last_step(&other, u64::MAX, u64::MAX).await,
        Err(Error::Internal(_))
    ));

    // Throttles: compare-and-set, the zero state is "absent".
    let key = unique("throttle:");
    let zero = ThrottleState::default();
    let one = ThrottleState {
        count: 1,
        until: T0 + 60,
    };
    let two = ThrottleState {
        count: 2,
        until: u64::MAX,
    };
    assert_eq!(s.throttle(&key, T0).await.unwrap(), zero);
    assert!(s.update_throttle(&key, zero, zero, T0, T0).await.unwrap());
    assert!(!s.update_throttle(&key, one, two, T0, T0).await.unwrap());
    assert!(
        s.update_throttle(&key, zero, one, T0 + 600, T0)
            .await
            .unwrap()
    );
    assert!(
        !s.update_throttle(&key, zero, one, T0 + 600, T0)
            .await
            .unwrap()
    );
    assert!(
        !s.update_throttle(&key, zero, zero, T0 + 600, T0)
            .await
            .unwrap()
    );
    assert_eq!(s.throttle(&key, T0).await.unwrap(), one);
    assert!(
        s.update_throttle(&key, one, two, T0 + 600, T0)
            .await
            .unwrap()
    );
    let stored = s.throttle(&key, T0).await.unwrap();
    assert_eq!(stored.count, 2);
    assert!(
        stored.until >= i64::MAX as u64,
        "a far time is clamped, not wrapped"
    );
    assert!(s.update_throttle(&key, stored, zero, T0, T0).await.unwrap());
    assert_eq!(s.throttle(&key, T0).await.unwrap(), zero);
    let big = ThrottleState {
        count: u32::MAX,
        until: T0,
    };
    assert!(
        s.update_throttle(&key, zero, big, T0 + 600, T0)
            .await
            .unwrap()
    );
    assert_eq!(s.throttle(&key, T0).await.unwrap(), big);

    // Trusted devices.
    let dev = |label: &str, created_at: u64, expires_at: u64| DeviceRecord {
        id: DeviceId::new(unique("d")),
        user_id: user.clone(),
        label: label.to_owned(),
        password_epoch: 2,
        created_at,
        expires_at,
    };
    let (h1, h2, h3) = (
        hash(&unique("dv")),
        hash(&unique("dv")),
        hash(&unique("dv")),
    );
    let d1 = dev("laptop", T0, T0 + 1000);
    let d2 = dev("old", T0 - 10, T0 + 5);
    let d3 = dev("phone", T0, T0 + 1000);
    s.create_device(&h1, &d1).await.unwrap();
    s.create_device(&h2, &d2).await.unwrap();
    s.create_device(&h3, &d3).await.unwrap();
    assert_eq!(s.device(&h1, T0).await.unwrap(), Some(d1.clone()));
    assert!(s.device(&h2, T0 + 5).await.unwrap().is_none(), "expired");
    assert!(
        s.device(&hash("no such device"), T0)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.devices(&user, T0).await.unwrap(),
        vec![d2.clone(), d1.clone(), d3.clone()]
    );
    assert_eq!(
        s.devices(&user, T0 + 5).await.unwrap(),
        vec![d1.clone(), d3.clone()]
    );
    assert!(s.revoke_device(&user, &d1.id).await.unwrap());
    assert!(!s.revoke_device(&user, &d1.id).await.unwrap());
    assert!(
        !s.revoke_device(&UserId::new("other"), &d3.id)
            .await
            .unwrap()
    );
    assert!(s.device(&h1, T0).await.unwrap().is_none());
    assert_eq!(s.revoke_all_devices(&user).await.unwrap(), 2);
    assert_eq!(s.revoke_all_devices(&user).await.unwrap(), 0);
    assert!(s.devices(&user, T0).await.unwrap().is_empty());

    // Sessions.
    let st = hash(&unique("s"));
    let sess = SessionRecord {
        password_epoch: 1,
        method: AuthMethod::BackupCode,
        authenticated_at: T0 + 3,
        ..session(&user, T0, T0 + 10)
    };
    s.create_session(&st, &sess).await.unwrap();
    assert_eq!(s.session(&st, T0 + 9).await.unwrap(), Some(sess.clone()));
    assert!(s.session(&st, T0 + 10).await.unwrap().is_none());
    s.delete_session(&st).await.unwrap();
    s.delete_session(&st).await.unwrap();
    assert!(s.session(&st, T0).await.unwrap().is_none());
}

/// The step-up operations: the password compare-and-set, the security log, and
/// sessions listed, re-authenticated and ended by account.
pub async fn stepup<S: Store>(s: &S) {
    // Password CAS: a stale expected epoch writes nothing.
    let a = account(&unique("dave"));
    s.create_account(&a).await.unwrap();
    let other = PasswordHasher::new(256, 1, 1)
        .unwrap()
        .hash("another password")
        .unwrap();
    assert!(s.set_password(&a.id, &pw_hash(), 0, 1).await.unwrap());
    assert!(
        !s.set_password(&a.id, &other, 0, 1).await.unwrap(),
        "a stale epoch"
    );
    assert!(
        !s.set_password(&a.id, &other, 0, 0).await.unwrap(),
        "a stale rehash"
    );
    assert!(
        !s.set_password(&a.id, &other, 2, 3).await.unwrap(),
        "a future epoch"
    );
    let got = s.account(&a.id).await.unwrap().unwrap();
    assert_eq!(got.password_epoch, 1);
    assert_eq!(got.password_hash.as_str(), pw_hash().as_str());
    // A rehash keeps the epoch it read.
    assert!(s.set_password(&a.id, &other, 1, 1).await.unwrap());
    let got = s.account(&a.id).await.unwrap().unwrap();
    assert_eq!(got.password_epoch, 1);
    assert_eq!(got.password_hash.as_str(), other.as_str());

    // Security log: newest first, bounded, forgetting old entries, per account.
    let ghost = UserId::new(unique("u"));
    let ev = |at, kind| SecurityEvent::new(at, kind);
    s.append_security_event(&ghost, &ev(T0, SecurityEventKind::Login), 10, 0)
        .await
        .unwrap();
    assert!(s.security_log(&ghost, 10).await.unwrap().is_empty());
    let b = account(&unique("erin"));
    s.create_account(&b).await.unwrap();
    s.append_security_event(&b.id, &ev(T0, SecurityEventKind::Login), 10, 0)
        .await
        .unwrap();
    let full = ev(T0 + 1, SecurityEventKind::Login)
        .with_method(AuthMethod::Totp)
        .with_client(Some("203.0.113.9"))
        .with_detail("by the helpdesk: lost phone");
    let kinds = [
        SecurityEventKind::LoginFailed,
        SecurityEventKind::TwoFactorEnabled,
        SecurityEventKind::PasswordChanged,
        SecurityEventKind::SessionRevoked,
    ];
    s.append_security_event(&a.id, &full, 3, 0).await.unwrap();
    // Equal times: the order of appending decides.
    for kind in kinds {
        s.append_security_event(&a.id, &ev(T0 + 2, kind), 3, 0)
            .await
            .unwrap();
    }
    let log = s.security_log(&a.id, 10).await.unwrap();
    assert_eq!(
        log,
        vec![
            ev(T0 + 2, SecurityEventKind::SessionRevoked),
            ev(T0 + 2, SecurityEventKind::PasswordChanged),
            ev(T0 + 2, SecurityEventKind::TwoFactorEnabled),
        ],
        "the newest three"
    );
    assert_eq!(s.security_log(&a.id, 2).await.unwrap(), log[..2].to_vec());
    assert!(s.security_log(&a.id, 0).await.unwrap().is_empty());
    // Every field round-trips.
    s.append_security_event(&a.id, &full, 3, 0).await.unwrap();
    assert_eq!(s.security_log(&a.id, 1).await.unwrap(), vec![full.clone()]);
    assert_eq!(s.security_log(&a.id, 10).await.unwrap().len(), 3);
    // The horizon: older entries go, whatever the bound.
    s.append_security_event(
        &a.id,
        &ev(T0 + 5, SecurityEventKind::Reauthenticated),
        100,
        T0 + 2,
    )
    .await
    .unwrap();
    let log = s.security_log(&a.id, 10).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.kind).collect::<Vec<_>>(),
        [
            SecurityEventKind::Reauthenticated,
            SecurityEventKind::SessionRevoked,
            SecurityEventKind::PasswordChanged,
        ],
        "the entry at T0 + 1 is past the horizon"
    );
    // The other account's log was not touched.
    assert_eq!(
        s.security_log(&b.id, 10).await.unwrap(),
        vec![ev(T0, SecurityEventKind::Login)]
    );
    // A bound of zero keeps nothing.
    s.append_security_event(&a.id, &ev(T0 + 6, SecurityEventKind::Login), 0, 0)
        .await
        .unwrap();
    assert!(s.security_log(&a.id, 10).await.unwrap().is_empty());

    // Sessions by account.
    let user = UserId::new(unique("u"));
    let stranger = UserId::new(unique("u"));
    let tokens: Vec<KeyedHash> = (0..5).map(|_| hash(&unique("st"))).collect();
    let s1 = session(&user, T0, T0 + 100);
    let s2 = SessionRecord {
        method: AuthMethod::Totp,
        ..session(&user, T0 - 5, T0 + 100)
    };
    let s3 = SessionRecord {
        method: AuthMethod::TrustedDevice,
        ..session(&user, T0, T0 + 50)
    };
    let gone = session(&user, T0 - 50, T0);
    let theirs = session(&stranger, T0, T0 + 100);
    for (t, rec) in tokens.iter().zip([&s1, &s2, &s3, &gone, &theirs]) {
        s.create_session(t, rec).await.unwrap();
    }
    let listed = s.sessions(&user, T0).await.unwrap();
    assert_eq!(listed.len(), 3, "the expired one is not listed");
    assert_eq!(listed[0], s2, "oldest first");
    let mut rest = listed[1..].to_vec();
    rest.sort_by(|x, y| x.id.as_str().cmp(y.id.as_str()));
    let mut want = vec![s1.clone(), s3.clone()];
    want.sort_by(|x, y| x.id.as_str().cmp(y.id.as_str()));
    assert_eq!(rest, want);
    assert_eq!(
        s.sessions(&user, T0 + 50).await.unwrap(),
        vec![s2.clone(), s1.clone()]
    );
    assert!(
        s.sessions(&UserId::new("nobody"), T0)
            .await
            .unwrap()
            .is_empty()
    );
    // Re-authentication: only an unexpired session.
    assert!(s.reauthenticate_session(&tokens[0], T0 + 20).await.unwrap());
    let got = s.session(&tokens[0], T0 + 20).await.unwrap().unwrap();
    assert_eq!(got.authenticated_at, T0 + 20);
    assert_eq!((got.created_at, &got.id), (T0, &s1.id));
    assert!(!s.reauthenticate_session(&tokens[2], T0 + 50).await.unwrap());
    assert!(!s.reauthenticate_session(&tokens[3], T0).await.unwrap());
    assert!(
        !s.reauthenticate_session(&hash("no such session"), T0)
            .await
            .unwrap()
    );
    // Ending one by id: only the owner's.
    assert!(!s.delete_session_by_id(&stranger, &s2.id).await.unwrap());
    assert!(s.delete_session_by_id(&user, &s2.id).await.unwrap());
    assert!(!s.delete_session_by_id(&user, &s2.id).await.unwrap());
    assert!(s.session(&tokens[1], T0).await.unwrap().is_none());
    // Ending all but one: s3 and the expired one go, s1 stays.
    assert_eq!(s.delete_sessions(&user, Some(&s1.id)).await.unwrap(), 2);
    let left = s.sessions(&user, 0).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, s1.id);
    assert!(s.session(&tokens[2], T0).await.unwrap().is_none());
    // Keeping an id the account does not have ends them all; so does `None`.
    assert_eq!(s.delete_sessions(&user, Some(&theirs.id)).await.unwrap(), 1);
    assert!(s.sessions(&user, 0).await.unwrap().is_empty());
    s.create_session(&tokens[0], &s1).await.unwrap();
    assert_eq!(s.delete_sessions(&user, None).await.unwrap(), 1);
    assert_eq!(s.delete_sessions(&user, None).await.unwrap(), 0);
    // The stranger's session survived all of it.
    assert_eq!(s.sessions(&stranger, T0).await.unwrap(), vec![theirs]);
}

/// `tasks` concurrent `add_authenticator` calls per round, alternating between two
/// pools, against a cap of `cap` on an account that has one: exactly `cap - 1` win,
/// the rest get `TooManyAuthenticators`, and the account never has more than `cap`.
pub async fn authenticator_cap_race<S: Store + Clone>(
    a: S,
    b: S,
    rounds: usize,
    tasks: usize,
    cap: u32,
) {
    let stores = [a.clone(), b];
    for round in 0..rounds {
        let acct = account(&unique("capped"));
        a.create_account(&acct).await.unwrap();
        a.enable_two_factor(&authenticator(&acct.id, "first", T0), &codes(1), KEY)
            .await
            .unwrap();
        let user = acct.id.clone();
        let w = race(&stores, tasks, 1, move |s, _| {
            let user = user.clone();
            async move {
                match s
                    .add_authenticator(&authenticator(&user, "more", T0), cap)
                    .await
                {
                    Ok(()) => true,
                    Err(Error::TooManyAuthenticators) => false,
                    Err(e) => panic!("{e:?}"),
                }
            }
        })
        .await;
        let n = a.authenticators(&acct.id).await.unwrap().len();
        assert!(n <= cap as usize, "round {round}: {n} authenticators");
        assert_eq!(w, [cap as usize - 1], "round {round}: add winners");
        assert_eq!(n, cap as usize, "round {round}");
    }
}

/// The flows end to end: register, enroll, log in with TOTP and a backup code,
/// replay refused, sessions, devices.
pub async fn flows<S: Store>(store: S) {
    let clock = ManualClock::new(T0);
    let service = Service::builder(store, keys())
        .clock(clock.clone())
        .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
        .build()
        .unwrap();
    let name = unique("carol");
    let user = service.register(&name, PW).await.unwrap();
    assert_eq!(
        service.register(&name, PW).await.unwrap_err().code(),
        "username_taken"
    );
    let LoginOutcome::Authenticated(first) =
        service.login(LoginRequest::new(&name, PW)).await.unwrap()
    else {
        panic!("2FA is still off")
    };
    let session = service.issue_session(first).await.unwrap();
    let proof = service.recent_auth(session.expose()).await.unwrap();
    let setup = service.setup_two_factor(&proof).await.unwrap();
    let phone = TotpKey::new(service.totp_policy(), setup.secret().expose_bytes());
    let done = service
        .confirm_enrollment(&proof, &phone.generate(T0))
        .await
        .unwrap();
    let backup: Vec<String> = done
        .backup_codes
        .unwrap()
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    clock.advance(Duration::from_secs(30));
    let now = T0 + 30;

    let token = pending(&service, &name).await;
    let code = phone.generate(now);
    let auth = service
        .second_factor(&token, SecondFactor::Totp(&code))
        .await
        .unwrap();
    assert_eq!(auth.user_id(), &user);
    // Replay of the same code on a fresh login.
    let token = pending(&service, &name).await;
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
    let token = pending(&service, &name).await;
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
    service.end_session(session.expose()).await.unwrap();
    assert_eq!(
        service.session(session.expose()).await.unwrap_err().code(),
        "unauthenticated"
    );
}

async fn pending<S: Store>(service: &Service<S>, name: &str) -> String {
    match service.login(LoginRequest::new(name, PW)).await.unwrap() {
        LoginOutcome::SecondFactorRequired(t) => t.token.expose().to_owned(),
        _ => panic!("expected a second factor"),
    }
}

/// Runs `rounds` rounds of `tasks` concurrent calls of `op(store, round)`, the tasks
/// alternating between the stores; returns the number of winners of each round.
async fn race<S, F, Fut>(stores: &[S], tasks: usize, rounds: usize, op: F) -> Vec<usize>
where
    S: Store + Clone,
    F: Fn(S, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let op = Arc::new(op);
    let mut winners = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let barrier = Arc::new(Barrier::new(tasks));
        let handles: Vec<_> = (0..tasks)
            .map(|i| {
                let store = stores[i % stores.len()].clone();
                let barrier = barrier.clone();
                let op = op.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    op(store, round).await
                })
            })
            .collect();
        let mut n = 0;
        for h in handles {
            if h.await.unwrap() {
                n += 1;
            }
        }
        winners.push(n);
    }
    winners
}

/// Races on the atomic operations over two pools to one database: exactly one
/// winner per round.
pub async fn races<S: Store + Clone>(a: S, b: S, rounds: usize) {
    let stores = [a.clone(), b.clone()];
    const TASKS: usize = 16;

    // advance_last_step: the same step, 16 callers.
    let id = AuthenticatorId::new(unique("race"));
    let w = race(&stores, TASKS, rounds, move |s, round| {
        let id = id.clone();
        async move {
            s.advance_last_step(&id, 1000 + round as u64, T0 + 90)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(
        w.iter().all(|&n| n == 1),
        "advance_last_step winners: {w:?}"
    );

    // consume_backup_code: one code, 16 callers.
    let acct = account(&unique("racer"));
    a.create_account(&acct).await.unwrap();
    let set = Arc::new(codes(rounds));
    a.enable_two_factor(&authenticator(&acct.id, "phone", T0), &set, KEY)
        .await
        .unwrap();
    let user = acct.id.clone();
    let set2 = set.clone();
    let w = race(&stores, TASKS, rounds, move |s, round| {
        let user = user.clone();
        let set = set2.clone();
        async move { s.consume_backup_code(&user, &set[round]).await.unwrap() }
    })
    .await;
    assert!(
        w.iter().all(|&n| n == 1),
        "consume_backup_code winners: {w:?}"
    );
    assert_eq!(b.backup_codes_remaining(&acct.id).await.unwrap(), 0);

    // take_pending_login: one pending login, 16 takers.
    let tokens: Arc<Vec<KeyedHash>> = Arc::new((0..rounds).map(|_| hash(&unique("p"))).collect());
    for t in tokens.iter() {
        let p = PendingLogin {
            user_id: acct.id.clone(),
            password_epoch: 0,
            attempts: 0,
            expires_at: T0 + 300,
        };
        a.create_pending_login(t, &p).await.unwrap();
    }
    let t2 = tokens.clone();
    let w = race(&stores, TASKS, rounds, move |s, round| {
        let tokens = t2.clone();
        async move {
            s.take_pending_login(&tokens[round], T0)
                .await
                .unwrap()
                .is_some()
        }
    })
    .await;
    assert!(
        w.iter().all(|&n| n == 1),
        "take_pending_login winners: {w:?}"
    );

    // begin_login_attempt: 3 attempts left, 16 callers: exactly 3 get one, with
    // distinct counts.
    let t = hash(&unique("p"));
    let p = PendingLogin {
        user_id: acct.id.clone(),
        password_epoch: 0,
        attempts: 0,
        expires_at: T0 + 300,
    };
    a.create_pending_login(&t, &p).await.unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let w = race(&stores, TASKS, 1, move |s, _| {
        let seen = seen2.clone();
        async move {
            match s.begin_login_attempt(&t, 3, T0).await.unwrap() {
                Some(p) => {
                    seen.lock().unwrap().push(p.attempts);
                    true
                }
                None => false,
            }
        }
    })
    .await;
    assert_eq!(w, [3]);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, [1, 2, 3]);

    // update_throttle: the same expected state, 16 callers.
    let key = unique("race:");
    let w = race(&stores, TASKS, rounds.min(50), move |s, round| {
        let key = key.clone();
        async move {
            let expected = if round == 0 {
                ThrottleState::default()
            } else {
                ThrottleState {
                    count: round as u32,
                    until: T0,
                }
            };
            let new = ThrottleState {
                count: round as u32 + 1,
                until: T0,
            };
            s.update_throttle(&key, expected, new, T0 + 600, T0)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(w.iter().all(|&n| n == 1), "update_throttle winners: {w:?}");

    // take_enrollment: one enrollment, 16 takers.
    let user = UserId::new(unique("u"));
    for round in 0..rounds.min(50) {
        let id = format!("e{round}");
        let e = PendingEnrollment {
            id: id.clone(),
            name: "phone".into(),
            sealed_secret: sealed(&user),
            adding: false,
            expires_at: T0 + 600,
        };
        a.put_enrollment(&user, &e).await.unwrap();
        let user = user.clone();
        let w = race(&stores, TASKS, 1, move |s, _| {
            let (user, id) = (user.clone(), id.clone());
            async move { s.take_enrollment(&user, &id, T0).await.unwrap() }
        })
        .await;
        assert_eq!(w, [1], "take_enrollment winners");
    }

    // remove_authenticator: two removals of the last two authenticators leave one.
    for _ in 0..rounds.min(50) {
        let acct = account(&unique("remover"));
        a.create_account(&acct).await.unwrap();
        let x = authenticator(&acct.id, "x", T0);
        let y = authenticator(&acct.id, "y", T0);
        a.enable_two_factor(&x, &codes(1), KEY).await.unwrap();
        a.add_authenticator(&y, MAX).await.unwrap();
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let (a, u, id) = (a.clone(), acct.id.clone(), x.id.clone());
                async move { a.remove_authenticator(&u, &id).await.unwrap() }
            }),
            tokio::spawn({
                let (b, u, id) = (b.clone(), acct.id.clone(), y.id.clone());
                async move { b.remove_authenticator(&u, &id).await.unwrap() }
            })
        );
        let mut outcomes = [ra.unwrap(), rb.unwrap()];
        outcomes.sort_by_key(|o| *o == RemoveOutcome::LastOne);
        assert_eq!(outcomes, [RemoveOutcome::Removed, RemoveOutcome::LastOne]);
        assert_eq!(a.authenticators(&acct.id).await.unwrap().len(), 1);
    }

    // enable_two_factor: 16 concurrent confirms, one wins.
    for _ in 0..rounds.min(30) {
        let acct = account(&unique("enabler"));
        a.create_account(&acct).await.unwrap();
        let user = acct.id.clone();
        let w = race(&stores, 8, 1, move |s, _| {
            let user = user.clone();
            async move {
                match s
                    .enable_two_factor(&authenticator(&user, "p", T0), &codes(10), KEY)
                    .await
                {
                    Ok(()) => true,
                    Err(Error::TwoFactorAlreadyEnabled) => false,
                    Err(e) => panic!("{e:?}"),
                }
            }
        })
        .await;
        assert_eq!(w, [1]);
        assert_eq!(a.authenticators(&acct.id).await.unwrap().len(), 1);
        assert_eq!(a.backup_codes_remaining(&acct.id).await.unwrap(), 10);
    }

    // add_authenticator vs disable_two_factor: never an authenticator left with 2FA off.
    for _ in 0..rounds.min(50) {
        let acct = account(&unique("toggler"));
        a.create_account(&acct).await.unwrap();
        a.enable_two_factor(&authenticator(&acct.id, "p", T0), &codes(2), KEY)
            .await
            .unwrap();
        let (add, dis) = tokio::join!(
            tokio::spawn({
                let (a, rec) = (a.clone(), authenticator(&acct.id, "q", T0));
                async move { a.add_authenticator(&rec, MAX).await }
            }),
            tokio::spawn({
                let (b, u) = (b.clone(), acct.id.clone());
                async move { b.disable_two_factor(&u).await.unwrap() }
            })
        );
        assert!(dis.unwrap());
        match add.unwrap() {
            Ok(()) | Err(Error::TwoFactorNotEnabled) => {}
            Err(e) => panic!("{e:?}"),
        }
        let acc = a.account(&acct.id).await.unwrap().unwrap();
        assert!(!acc.two_factor_enabled);
        assert!(a.authenticators(&acct.id).await.unwrap().is_empty());
    }

    // set_password: 16 password changes from the same epoch, one wins.
    let acct = account(&unique("changer"));
    a.create_account(&acct).await.unwrap();
    let user = acct.id.clone();
    let w = race(&stores, TASKS, rounds.min(50), move |s, round| {
        let user = user.clone();
        async move {
            let epoch = round as u64;
            s.set_password(&user, &pw_hash(), epoch, epoch + 1)
                .await
                .unwrap()
        }
    })
    .await;
    assert!(w.iter().all(|&n| n == 1), "set_password winners: {w:?}");
    assert_eq!(
        a.account(&acct.id).await.unwrap().unwrap().password_epoch,
        rounds.min(50) as u64
    );

    // create_account: 16 registrations of one name, one wins.
    let prefix = unique("same-name-");
    let w = race(&stores, TASKS, rounds.min(30), move |s, round| {
        let acct = account(&format!("{prefix}-{round}"));
        async move {
            match s.create_account(&acct).await {
                Ok(()) => true,
                Err(Error::UsernameTaken) => false,
                Err(e) => panic!("{e:?}"),
            }
        }
    })
    .await;
    assert!(w.iter().all(|&n| n == 1), "create_account winners: {w:?}");
}

/// The SQL stores' `read_factor_step` is one `SELECT`: it writes nothing, not even
/// the attempt (their `commit_factor_step` counts it, guarded by `max_attempts`).
/// Reads, however many, leave the pending login's attempts, the throttles and the
/// security log as they were; a login out of attempts is refused, not burnt by a
/// read; one commit then counts exactly one attempt.
pub async fn the_step_read_writes_nothing<S: Store>(s: &S) {
    let a = account(&unique("reader"));
    s.create_account(&a).await.unwrap();
    s.enable_two_factor(&authenticator(&a.id, "phone", T0), &codes(2), KEY)
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
    let token = hash(&unique("live"));
    s.create_pending_login(&token, &pending(1)).await.unwrap();
    let used_up = hash(&unique("used-up"));
    s.create_pending_login(&used_up, &pending(3)).await.unwrap();
    for _ in 0..5 {
        let view = s
            .read_factor_step(&[used_up, token], 3, T0)
            .await
            .unwrap()
            .expect("the live login is found under the second hash");
        assert!(view.token == token);
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
        token: &token,
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
        s.take_pending_login(&token, T0)
            .await
            .unwrap()
            .unwrap()
            .attempts,
        2,
        "the read counted nothing, the commit one attempt"
    );
}
