//! `PgStore`: every operation, the flows end to end, migrations, expiry, and real
//! races between two pools (as two processes would be), each test in its own schema.
//!
//! Needs `DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); without it
//! the tests print a note and pass, except under `CI=true`, where they fail.
#![cfg(feature = "postgres")]

#[path = "support/sql_suite.rs"]
mod suite;

use secondfactor::store::*;
use suite::*;

fn database_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "DATABASE_URL must be set in CI"
            );
            eprintln!("note: DATABASE_URL is not set; skipping the PostgreSQL store test");
            None
        }
    }
}

/// A fresh schema for one test; dropped by [`Schema::drop`].
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new() -> Option<Self> {
        let url = database_url()?;
        Some(Schema {
            url,
            name: unique("sf_test_"),
        })
    }

    async fn store(&self) -> PgStore {
        PgStore::connect_with_schema(&self.url, &self.name)
            .await
            .unwrap()
    }

    async fn drop(self) {
        // A plain pool: `PgStore::connect` would migrate the default schema.
        let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{}\" CASCADE",
            self.name
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn accounts_roundtrip() {
    let Some(db) = Schema::new() else { return };
    accounts(&db.store().await).await;
    db.drop().await;
}

#[tokio::test]
async fn ephemeral_roundtrip() {
    let Some(db) = Schema::new() else { return };
    ephemeral(&db.store().await).await;
    db.drop().await;
}

#[tokio::test]
async fn the_step_read_writes_nothing() {
    let Some(db) = Schema::new() else { return };
    suite::the_step_read_writes_nothing(&db.store().await).await;
    db.drop().await;
}

#[tokio::test]
async fn flows_end_to_end() {
    let Some(db) = Schema::new() else { return };
    flows(db.store().await).await;
    db.drop().await;
}

#[tokio::test]
async fn schemas_isolate_and_migrate_is_idempotent() {
    let Some(one) = Schema::new() else { return };
    let two = Schema::new().unwrap();
    let (a, b) = (one.store().await, two.store().await);
    let acct = account("isolated");
    a.create_account(&acct).await.unwrap();
    // The same name in another schema is another account.
    b.create_account(&account("isolated")).await.unwrap();
    assert!(b.account(&acct.id).await.unwrap().is_none());
    a.migrate().await.unwrap();
    let again = one.store().await;
    assert_eq!(
        again
            .account_by_username("isolated")
            .await
            .unwrap()
            .unwrap()
            .id,
        acct.id
    );
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM sf_schema_migrations")
        .fetch_all(again.pool())
        .await
        .unwrap();
    assert_eq!(versions, [1, 2, 3]);
    // Plain `connect` uses the search_path it is given (here through the URL).
    let sep = if one.url.contains('?') { '&' } else { '?' };
    let plain = PgStore::connect(&format!(
        "{}{sep}options=-c%20search_path%3D{}",
        one.url, one.name
    ))
    .await
    .unwrap();
    assert!(plain.account(&acct.id).await.unwrap().is_some());
    // from_pool + migrate works on a pool configured by hand.
    let store = PgStore::from_pool(again.pool().clone());
    store.migrate().await.unwrap();
    assert!(store.account(&acct.id).await.unwrap().is_some());
    one.drop().await;
    two.drop().await;
}

/// A schema made by 0.1 (migration 1 only) upgrades in place on `connect`.
#[tokio::test]
async fn a_0_1_schema_upgrades_in_place() {
    use std::str::FromStr;
    let Some(db) = Schema::new() else { return };
    let plain = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA \"{}\"",
        db.name
    )))
    .execute(&plain)
    .await
    .unwrap();
    plain.close().await;
    let options = sqlx::postgres::PgConnectOptions::from_str(&db.url)
        .unwrap()
        .options([("search_path", db.name.as_str())]);
    let pool = sqlx::PgPool::connect_with(options).await.unwrap();
    migrator_0_1(include_str!("../migrations/postgres/0001_init.sql"))
        .run(&pool)
        .await
        .unwrap();
    let acct = account(&unique("old"));
    sqlx::query(
        "INSERT INTO sf_accounts (id, username, password_hash, password_epoch, \
         two_factor_enabled, created_at) VALUES ($1, $2, $3, 0, FALSE, $4)",
    )
    .bind(acct.id.as_str())
    .bind(acct.username.as_str())
    .bind(acct.password_hash.as_str())
    .bind(T0 as i64)
    .execute(&pool)
    .await
    .unwrap();
    let token = hash(&unique("old-session"));
    sqlx::query(
        "INSERT INTO sf_sessions (token_hash, user_id, password_epoch, created_at, expires_at) \
         VALUES ($1, $2, 0, $3, $4)",
    )
    .bind(token.as_bytes().as_slice())
    .bind(acct.id.as_str())
    .bind(T0 as i64)
    .bind((T0 + 100) as i64)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let s = db.store().await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM sf_schema_migrations")
        .fetch_all(s.pool())
        .await
        .unwrap();
    assert_eq!(versions, [1, 2, 3]);
    upgraded(&s, &acct.id, &token).await;
    db.drop().await;
}

/// A stored kind or method the crate does not know is an internal error, not a
/// panic or a silent skip.
#[tokio::test]
async fn unknown_names_in_rows_are_internal_errors() {
    let Some(db) = Schema::new() else { return };
    let s = db.store().await;
    let acct = account(&unique("odd"));
    s.create_account(&acct).await.unwrap();
    sqlx::query("INSERT INTO sf_security_log (user_id, at, kind) VALUES ($1, $2, 'bogus')")
        .bind(acct.id.as_str())
        .bind(T0 as i64)
        .execute(s.pool())
        .await
        .unwrap();
    let e = s.security_log(&acct.id, 10).await.unwrap_err();
    assert_eq!(e.code(), "internal", "{e:?}");
    let token = hash(&unique("odd-session"));
    s.create_session(&token, &session(&acct.id, T0, T0 + 100))
        .await
        .unwrap();
    sqlx::query("UPDATE sf_sessions SET method = 'sms' WHERE user_id = $1")
        .bind(acct.id.as_str())
        .execute(s.pool())
        .await
        .unwrap();
    let e = s.session(&token, T0).await.unwrap_err();
    assert_eq!(e.code(), "internal", "{e:?}");
    db.drop().await;
}

#[tokio::test]
async fn bad_configuration_is_rejected_before_connecting() {
    let Some(url) = database_url() else { return };
    for bad in ["", "1abc", "a-b", "a\"; DROP TABLE x; --", &"x".repeat(64)] {
        let e = PgStore::connect_with_schema(&url, bad).await.unwrap_err();
        assert_eq!(e.code(), "invalid_config", "{bad:?}");
    }
    let e = PgStore::connect("not a url").await.unwrap_err();
    assert_eq!(e.code(), "invalid_config");
}

#[tokio::test]
async fn purge_expired_deletes_only_expired_rows() {
    let Some(db) = Schema::new() else { return };
    let s = db.store().await;
    let user = UserId::new("purge-user");
    let (live, dead) = (hash("live"), hash("dead"));
    let p = |expires_at| PendingLogin {
        user_id: user.clone(),
        password_epoch: 0,
        attempts: 0,
        expires_at,
    };
    s.create_pending_login(&live, &p(T0 + 100)).await.unwrap();
    s.create_pending_login(&dead, &p(T0)).await.unwrap();
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
    let zero = ThrottleState::default();
    let one = ThrottleState {
        count: 1,
        until: T0,
    };
    s.update_throttle("gone", zero, one, T0, T0 - 1)
        .await
        .unwrap();
    s.update_throttle("kept", zero, one, T0 + 1, T0 - 1)
        .await
        .unwrap();
    // Security-log entries older than the retention go too.
    let acct = account(&unique("logged"));
    s.create_account(&acct).await.unwrap();
    let horizon = T0 - secondfactor::security_log::RETENTION_SECS;
    for at in [horizon, horizon + 1] {
        let e = secondfactor::security_log::SecurityEvent::new(
            at,
            secondfactor::security_log::SecurityEventKind::Login,
        );
        s.append_security_event(&acct.id, &e, 10, 0).await.unwrap();
    }
    assert_eq!(s.purge_expired(T0).await.unwrap(), 4);
    assert_eq!(s.purge_expired(T0).await.unwrap(), 0);
    assert!(s.take_pending_login(&live, T0).await.unwrap().is_some());
    assert_eq!(s.devices(&user, 0).await.unwrap().len(), 1);
    assert_eq!(s.throttle("gone", T0 - 1).await.unwrap(), zero);
    assert_eq!(s.throttle("kept", T0 - 1).await.unwrap(), one);
    let log = s.security_log(&acct.id, 10).await.unwrap();
    assert_eq!(log.iter().map(|e| e.at).collect::<Vec<_>>(), [horizon + 1]);
    db.drop().await;
}

#[tokio::test]
async fn stepup_operations() {
    let Some(db) = Schema::new() else { return };
    stepup(&db.store().await).await;
    db.drop().await;
}

/// Two pools on one schema: 50 rounds of 8 concurrent adds against a cap of 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_authenticator_cap_holds_across_two_pools() {
    let Some(db) = Schema::new() else { return };
    let (a, b) = (db.store().await, db.store().await);
    authenticator_cap_race(a, b, 50, 8, 3).await;
    db.drop().await;
}

/// Two pools on one schema, 16 tasks per round on a multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn races_across_two_pools_have_one_winner() {
    let Some(db) = Schema::new() else { return };
    let (a, b) = (db.store().await, db.store().await);
    races(a, b, 120).await;
    db.drop().await;
}

/// The public conformance suite, over two pools on one schema.
#[cfg(feature = "conformance")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_store_conforms() {
    use secondfactor::store::conformance::{self, RaceConfig};
    let Some(db) = Schema::new() else { return };
    let handles = [db.store().await, db.store().await];
    let start = std::time::Instant::now();
    // Every write waits for a WAL flush on the server: 50 rounds of 16 tasks keep the
    // test near half a minute (the default 200 rounds pass too, in about two minutes).
    conformance::all(&handles, RaceConfig::default().with_rounds(50)).await;
    eprintln!(
        "PgStore x2 (two pools, one schema): all checks in {:?}",
        start.elapsed()
    );
    db.drop().await;
}
