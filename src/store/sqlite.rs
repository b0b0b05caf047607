//! The SQLite store (feature `sqlite`): [`SqlStore`] in the SQLite dialect, and
//! its constructors.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::sql::{Dialect, SqlStore, SqliteDialect};
use super::sql_common::unavailable;
use crate::{Error, Result};

impl Dialect for SqliteDialect {
    type Db = sqlx::Sqlite;
    // Takes the write lock up front, so the reads inside a write transaction see the
    // state its writes apply to, for every connection and process.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    // Inside `BEGIN IMMEDIATE` nothing else writes: a plain read is a lock.
    const LOCK_ACCOUNT: &'static str = "SELECT two_factor_enabled FROM sf_accounts WHERE id = $1";
    const LOCK_ACCOUNT_LOG: &'static str = "SELECT 1 FROM sf_accounts WHERE id = $1";
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)] = &[
        (
            1,
            "init",
            include_str!("../../migrations/sqlite/0001_init.sql"),
        ),
        (
            2,
            "stepup",
            include_str!("../../migrations/sqlite/0002_stepup.sql"),
        ),
        (
            3,
            "webauthn",
            include_str!("../../migrations/sqlite/0003_webauthn.sql"),
        ),
    ];
}

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`](super::Store) in SQLite: accounts and ephemeral state in one database file,
/// shared safely by every task and every process that opens the file.
///
/// Every atomic operation of the [store contract](super) is either one SQL
/// statement (`UPDATE … WHERE … RETURNING`, `DELETE … RETURNING`,
/// `INSERT … ON CONFLICT`) or a `BEGIN IMMEDIATE` transaction, which takes SQLite's
/// write lock up front; so races between connections, pools and processes have
/// exactly one winner. The database runs in WAL mode with a busy timeout, so readers
/// never block and writers queue instead of failing.
///
/// # Durability
///
/// Connections run with `synchronous = FULL`. In WAL mode, `NORMAL` syncs the log
/// only at checkpoints, so a power cut (not a crash of the process) can roll back the
/// last commits — among them a spent backup code or a TOTP replay mark, which would
/// make a used code valid again. With `FULL`, every commit is synced to the log
/// before it returns, so a write the store reported is durable; the cost is one
/// `fsync` per write transaction.
///
/// Cloning is cheap and shares the connection pool. Expired ephemeral rows are
/// treated as absent; call [`purge_expired`](SqliteStore::purge_expired) (or
/// [`EphemeralStore::purge_expired`](super::EphemeralStore::purge_expired), which
/// calls it) now and then to delete them.
///
/// ```
/// # async fn demo() -> secondfactor::Result<()> {
/// use secondfactor::store::SqliteStore;
///
/// let store = SqliteStore::connect("sqlite://secondfactor.db").await?;
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
pub type SqliteStore = SqlStore<SqliteDialect>;

impl SqliteStore {
    /// Opens (creating it if missing) the database at `url` (`sqlite://path/to/file.db`
    /// or `sqlite:path`), sets WAL journal mode, a busy timeout and foreign keys, and
    /// applies the crate's migrations. `sqlite::memory:` gives [`memory`](Self::memory).
    ///
    /// Errors: [`Error::InvalidConfig`] for a malformed URL, `unavailable` when the
    /// file cannot be opened or migrated.
    pub async fn connect(url: &str) -> Result<Self> {
        if !url.starts_with("sqlite:") {
            return Err(Error::InvalidConfig("a SQLite URL starts with sqlite:"));
        }
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Self::memory().await;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| Error::InvalidConfig("invalid SQLite URL"))?;
        Self::connect_with(options, SqlitePoolOptions::new()).await
    }

    /// Like [`connect`](Self::connect), with your own connection and pool options
    /// (for a file: use [`memory`](Self::memory) for an in-memory database).
    /// The store still turns on `create_if_missing`, WAL mode, `synchronous = FULL`
    /// (see [Durability](SqliteStore#durability)), foreign keys and a 10-second busy
    /// timeout (keep the journal in WAL mode: the rollback journal makes readers wait
    /// for writers).
    pub async fn connect_with(
        options: SqliteConnectOptions,
        pool_options: SqlitePoolOptions,
    ) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = pool_options
            .clone()
            .max_connections(1)
            .min_connections(0)
            .connect_with(options.clone())
            .await
            .map_err(unavailable("connect"))?;
        let store = SqliteStore::with_pools(pool_options.connect_lazy_with(options), writer);
        store.migrate().await?;
        Ok(store)
    }

    /// A private in-memory database, for tests and examples. It lives as long as the
    /// store (and its clones); every clone sees the same data. Its one connection
    /// serializes all operations.
    pub async fn memory() -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        // An in-memory database belongs to its connection: keep exactly one, forever.
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await
            .map_err(unavailable("connect"))?;
        let store = SqliteStore::from_pool(pool);
        store.migrate().await?;
        Ok(store)
    }
}
