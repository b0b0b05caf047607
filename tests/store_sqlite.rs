//! `SqliteStore`: the conformance suite over two pools on one database file (as two
//! processes would be) and on the in-memory database, the flows end to end, and
//! what only SQLite has: file and memory URLs, migrations, pragmas, its rows.
#![cfg(feature = "sqlite")]

mod support;

use secondfactor::store::*;
use support::*;

struct Db {
    _dir: tempfile::TempDir,
    url: String,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    Db { _dir: dir, url }
}

#[tokio::test]
async fn memory_urls_give_the_in_memory_store() {
    for url in ["sqlite::memory:", "sqlite://?mode=memory"] {
        let s = SqliteStore::connect(url).await.unwrap();
        let a = account(&unique("m"));
        s.create_account(&a).await.unwrap();
        assert!(s.account(&a.id).await.unwrap().is_some(), "{url}");
        #[cfg(feature = "conformance")]
        secondfactor::store::conformance::ephemeral_store(&s).await;
    }
}

#[tokio::test]
async fn the_step_read_writes_nothing() {
    let d = db();
    support::the_step_read_writes_nothing(&SqliteStore::connect(&d.url).await.unwrap()).await;
}

#[tokio::test]
async fn flows_end_to_end() {
    let d = db();
    flows(SqliteStore::connect(&d.url).await.unwrap()).await;
}

#[tokio::test]
async fn data_survives_reopening_and_migrate_is_idempotent() {
    let d = db();
    let s = SqliteStore::connect(&d.url).await.unwrap();
    let a = account("persistent");
    s.create_account(&a).await.unwrap();
    s.migrate().await.unwrap();
    s.pool().close().await;
    let again = SqliteStore::connect(&d.url).await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(
        again
            .account_by_username("persistent")
            .await
            .unwrap()
            .unwrap()
            .id,
        a.id
    );
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(again.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(again.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
}

#[tokio::test]
async fn the_migration_history_is_apart_from_the_applications_own() {
    let d = db();
    let s = SqliteStore::connect(&d.url).await.unwrap();
    assert_migrated!(s.pool());
    let theirs: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = '_sqlx_migrations'")
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!(theirs, 0);
}

/// A database made by 0.1 (migration 1 only) upgrades in place on `connect`.
#[tokio::test]
async fn a_0_1_database_upgrades_in_place() {
    use std::str::FromStr;
    let d = db();
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&d.url)
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let (acct, token) = fill_0_1!(
        &pool,
        include_str!("../migrations/sqlite/0001_init.sql"),
        "INSERT INTO sf_accounts (id, username, password_hash, password_epoch, \
         two_factor_enabled, created_at) VALUES (?, ?, ?, 0, 0, ?)",
        "INSERT INTO sf_sessions (token_hash, user_id, password_epoch, created_at, expires_at) \
         VALUES (?, ?, 0, ?, ?)"
    );
    pool.close().await;

    let s = SqliteStore::connect(&d.url).await.unwrap();
    assert_migrated!(s.pool());
    upgraded(&s, &acct, &token).await;
}

/// A stored kind or method the crate does not know is an internal error.
#[tokio::test]
async fn unknown_names_in_rows_are_internal_errors() {
    let d = db();
    let s = SqliteStore::connect(&d.url).await.unwrap();
    unknown_names_are_internal_errors!(
        &s,
        s.pool(),
        "INSERT INTO sf_security_log (user_id, at, kind) VALUES (?, ?, 'bogus')",
        "UPDATE sf_sessions SET method = 'sms' WHERE user_id = ?"
    );
}

#[tokio::test]
async fn bad_urls_are_config_errors() {
    let e = SqliteStore::connect("postgres://nope").await.unwrap_err();
    assert_eq!(e.code(), "invalid_config");
    // A directory that does not exist cannot hold the file: unavailable, no panic.
    let e = SqliteStore::connect("sqlite:///nonexistent-dir-for-sf/x/y.db")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unavailable");
}

#[tokio::test]
async fn purge_expired_deletes_and_counts_only_expired_rows() {
    let d = db();
    purge_counts_every_expired_row(&SqliteStore::connect(&d.url).await.unwrap()).await;
}

#[tokio::test]
async fn bigint_columns_clamp_times_and_refuse_huge_steps() {
    let d = db();
    value_ranges(&SqliteStore::connect(&d.url).await.unwrap()).await;
    value_ranges(&SqliteStore::memory().await.unwrap()).await;
}

/// The public conformance suite, over two pools on one database file.
#[cfg(feature = "conformance")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_store_conforms() {
    use secondfactor::store::conformance::{self, RaceConfig};
    let d = db();
    let handles = [
        SqliteStore::connect(&d.url).await.unwrap(),
        SqliteStore::connect(&d.url).await.unwrap(),
    ];
    let start = std::time::Instant::now();
    conformance::all(&handles, RaceConfig::default()).await;
    eprintln!(
        "SqliteStore x2 (two pools, one file): all checks in {:?}",
        start.elapsed()
    );
}

/// The conformance suite on the in-memory database (one connection).
#[cfg(feature = "conformance")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_sqlite_store_conforms() {
    use secondfactor::store::conformance::{self, RaceConfig};
    let s = SqliteStore::memory().await.unwrap();
    conformance::all(&[s.clone(), s], RaceConfig::default().with_rounds(50)).await;
}

/// `synchronous = FULL` on every connection: in WAL mode `NORMAL` lets a power cut
/// roll back a spent backup code or a replay mark.
#[tokio::test]
async fn connections_run_with_synchronous_full() {
    async fn synchronous(pool: &sqlx::SqlitePool) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(pool)
            .await
            .unwrap()
    }
    let db = db();
    let s = SqliteStore::connect(&db.url).await.unwrap();
    assert_eq!(synchronous(s.pool()).await, 2, "file store: 2 is FULL");
    let m = SqliteStore::memory().await.unwrap();
    assert_eq!(synchronous(m.pool()).await, 2, "in-memory store: 2 is FULL");
}
