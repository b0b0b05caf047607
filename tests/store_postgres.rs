//! `PgStore`: the conformance suite over two pools on one schema (as two processes
//! would be), the flows end to end, and what only PostgreSQL has: schemas, URLs,
//! migrations, its rows. Each test runs in its own schema.
//!
//! Needs `DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); without it
//! the tests print a note and pass, except under `CI=true`, where they fail.
#![cfg(feature = "postgres")]

mod support;

use secondfactor::store::*;
use support::*;

/// A fresh schema for one test; dropped by [`Schema::drop`].
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new() -> Option<Self> {
        let url = env_url("DATABASE_URL")?;
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
async fn the_step_read_writes_nothing() {
    let Some(db) = Schema::new() else { return };
    support::the_step_read_writes_nothing(&db.store().await).await;
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
    assert_migrated!(again.pool());
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
    let (acct, token) = fill_0_1!(
        &pool,
        include_str!("../migrations/postgres/0001_init.sql"),
        "INSERT INTO sf_accounts (id, username, password_hash, password_epoch, \
         two_factor_enabled, created_at) VALUES ($1, $2, $3, 0, FALSE, $4)",
        "INSERT INTO sf_sessions (token_hash, user_id, password_epoch, created_at, expires_at) \
         VALUES ($1, $2, 0, $3, $4)"
    );
    pool.close().await;

    let s = db.store().await;
    assert_migrated!(s.pool());
    upgraded(&s, &acct, &token).await;
    db.drop().await;
}

/// A stored kind or method the crate does not know is an internal error.
#[tokio::test]
async fn unknown_names_in_rows_are_internal_errors() {
    let Some(db) = Schema::new() else { return };
    let s = db.store().await;
    unknown_names_are_internal_errors!(
        &s,
        s.pool(),
        "INSERT INTO sf_security_log (user_id, at, kind) VALUES ($1, $2, 'bogus')",
        "UPDATE sf_sessions SET method = 'sms' WHERE user_id = $1"
    );
    db.drop().await;
}

#[tokio::test]
async fn bad_configuration_is_rejected_before_connecting() {
    let Some(url) = env_url("DATABASE_URL") else {
        return;
    };
    for bad in ["", "1abc", "a-b", "a\"; DROP TABLE x; --", &"x".repeat(64)] {
        let e = PgStore::connect_with_schema(&url, bad).await.unwrap_err();
        assert_eq!(e.code(), "invalid_config", "{bad:?}");
    }
    let e = PgStore::connect("not a url").await.unwrap_err();
    assert_eq!(e.code(), "invalid_config");
}

#[tokio::test]
async fn purge_expired_deletes_and_counts_only_expired_rows() {
    let Some(db) = Schema::new() else { return };
    purge_counts_every_expired_row(&db.store().await).await;
    db.drop().await;
}

#[tokio::test]
async fn bigint_columns_clamp_times_and_refuse_huge_steps() {
    let Some(db) = Schema::new() else { return };
    value_ranges(&db.store().await).await;
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
