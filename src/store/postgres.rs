//! The PostgreSQL store (feature `postgres`): [`SqlStore`] in the PostgreSQL
//! dialect, and its constructors.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

use super::sql::{Dialect, PgDialect, SqlStore};
use super::sql_common::{is_unique_violation, unavailable};
use crate::{Error, Result};

impl Dialect for PgDialect {
    type Db = sqlx::Postgres;
    // READ COMMITTED: single statements re-check their WHERE against the newest row
    // version after waiting for a concurrent writer; the locks below do the rest.
    const BEGIN_WRITE: &'static str = "BEGIN";
    const LOCK_ACCOUNT: &'static str =
        "SELECT two_factor_enabled FROM sf_accounts WHERE id = $1 FOR UPDATE";
    // NO KEY UPDATE does not block the foreign-key checks of authenticator inserts.
    const LOCK_ACCOUNT_LOG: &'static str =
        "SELECT 1 FROM sf_accounts WHERE id = $1 FOR NO KEY UPDATE";
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)] = &[
        (
            1,
            "init",
            include_str!("../../migrations/postgres/0001_init.sql"),
        ),
        (
            2,
            "stepup",
            include_str!("../../migrations/postgres/0002_stepup.sql"),
        ),
        (
            3,
            "webauthn",
            include_str!("../../migrations/postgres/0003_webauthn.sql"),
        ),
    ];
}

/// How long [`PgStore::connect`] waits for a connection before `unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`Store`](super::Store) in PostgreSQL: accounts and ephemeral state shared by every instance
/// of a service behind a load balancer.
///
/// Every atomic operation of the [store contract](super) is one SQL statement
/// (`UPDATE … WHERE … RETURNING`, `DELETE … WHERE`, `INSERT … ON CONFLICT … DO
/// UPDATE … WHERE`), which PostgreSQL re-checks against the newest row version after
/// waiting for a concurrent writer, or a transaction that first locks the account's
/// row (`SELECT … FOR UPDATE`) when several statements must act as one
/// (enabling and disabling 2FA, adding and removing authenticators, replacing backup
/// codes, appending to the security log). So races between connections, pools and
/// processes have exactly one winner, at the default `READ COMMITTED` isolation level.
///
/// Cloning is cheap and shares the connection pool. Expired ephemeral rows are
/// treated as absent; call [`purge_expired`](PgStore::purge_expired) (or
/// [`EphemeralStore::purge_expired`](super::EphemeralStore::purge_expired), which
/// calls it) now and then to delete them.
///
/// ```no_run
/// # async fn demo() -> secondfactor::Result<()> {
/// use secondfactor::store::PgStore;
///
/// let store = PgStore::connect("postgres://app@localhost/app").await?;
/// // Or keep the tables in their own schema:
/// let store = PgStore::connect_with_schema("postgres://app@localhost/app", "auth").await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
pub type PgStore = SqlStore<PgDialect>;

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host/database`) with a pool of up
    /// to 10 connections that gives up after 5 seconds, and applies the crate's
    /// migrations. The tables go to the first schema of the role's `search_path`
    /// (usually `public`).
    ///
    /// Errors: [`Error::InvalidConfig`] for a malformed URL, `unavailable` when the
    /// server cannot be reached or the migrations fail.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(parse_url(url)?, default_pool_options(), None).await
    }

    /// Like [`connect`](Self::connect), with every table in the schema `schema`,
    /// which is created if missing; every connection of the pool gets
    /// `search_path = schema`. Use it to keep the store apart from your own tables,
    /// or to give each test its own schema.
    ///
    /// Errors: also [`Error::InvalidConfig`] when `schema` is not a plain SQL
    /// identifier (ASCII letters, digits and `_`, not starting with a digit, at
    /// most 63 bytes).
    pub async fn connect_with_schema(url: &str, schema: &str) -> Result<Self> {
        Self::connect_with(parse_url(url)?, default_pool_options(), Some(schema)).await
    }

    /// Connects with your own connection options (TLS, timeouts, application name)
    /// and pool options, optionally in `schema` (see
    /// [`connect_with_schema`](Self::connect_with_schema)), and applies the crate's
    /// migrations.
    pub async fn connect_with(
        options: PgConnectOptions,
        pool_options: PgPoolOptions,
        schema: Option<&str>,
    ) -> Result<Self> {
        let options = match schema {
            Some(schema) => {
                check_schema_name(schema)?;
                create_schema(&options, schema).await?;
                options.options([("search_path", schema)])
            }
            None => options,
        };
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(unavailable("connect"))?;
        let store = PgStore::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }
}

fn parse_url(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|_| Error::InvalidConfig("invalid PostgreSQL URL"))
}

fn default_pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

fn check_schema_name(schema: &str) -> Result<()> {
    let mut chars = schema.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && rest_ok && schema.len() <= 63 {
        Ok(())
    } else {
        Err(Error::InvalidConfig(
            "schema name must be a plain SQL identifier",
        ))
    }
}

/// Creates `schema` over a one-off connection unless it exists (so that a role
/// without `CREATE` on the database can use a schema made for it). The name was
/// checked by [`check_schema_name`], so quoting it is enough.
async fn create_schema(options: &PgConnectOptions, schema: &str) -> Result<()> {
    let mut conn = sqlx::PgConnection::connect_with(options)
        .await
        .map_err(unavailable("connect"))?;
    let r = async {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await?;
        }
        Ok::<(), sqlx::Error>(())
    }
    .await;
    let _ = conn.close().await;
    match r {
        Ok(()) => Ok(()),
        // Two processes creating the same schema at once: the other one won.
        Err(e) if is_unique_violation(&e) => Ok(()),
        Err(e) => Err(Error::unavailable("create_schema", e)),
    }
}
