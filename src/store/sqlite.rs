//! The SQLite store (feature `sqlite`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::sql_common::*;
use super::*;
use crate::Error;

/// The migrations shipped with the crate, applied by [`SqliteStore::migrate`].
const MIGRATIONS: &[(i64, &str, &str)] = &[
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

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`Store`] in SQLite: accounts and ephemeral state in one database file,
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
/// [`EphemeralStore::purge_expired`], which calls it) now and then to delete them.
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
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Reads: any number of connections (WAL readers never block).
    reader: SqlitePool,
    /// Writes: one connection, so that this process's writers queue in the pool
    /// instead of spinning in SQLite's busy handler; other processes still wait on
    /// the database lock with the busy timeout.
    writer: SqlitePool,
}

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
    /// (see [Durability](Self#durability)), foreign keys and a 10-second busy timeout (keep the journal in WAL mode: the rollback journal
    /// makes readers wait for writers).
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
        let store = SqliteStore {
            reader: pool_options.connect_lazy_with(options),
            writer,
        };
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

    /// Wraps a pool you configured yourself. Call [`migrate`](Self::migrate) once
    /// before use. Use WAL mode, foreign keys and a busy timeout (as
    /// [`connect`](Self::connect) does), or concurrent writers will see
    /// `unavailable` errors, and `synchronous = FULL`, or a power cut can undo
    /// spent backup codes and replay marks.
    pub fn from_pool(pool: SqlitePool) -> Self {
        SqliteStore {
            reader: pool.clone(),
            writer: pool,
        }
    }

    /// The pool that writes (and migrates). With [`connect`](Self::connect) it has
    /// one connection; reads use a second pool.
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Applies the crate's migrations that have not been applied yet. The history
    /// is kept in the table `sf_schema_migrations`, apart from your application's
    /// own sqlx migrations. Idempotent.
    pub async fn migrate(&self) -> Result<()> {
        migrator(MIGRATIONS)
            .run(&self.writer)
            .await
            .map_err(migrate_error)
    }

    /// Deletes every ephemeral row (pending logins and enrollments, replay marks,
    /// throttles, trusted devices, sessions) that expired at or before `now`, and
    /// the security-log entries older than
    /// [`RETENTION_SECS`](crate::security_log::RETENTION_SECS) (as the log's own
    /// trimming does on the next append); returns how many rows were deleted.
    pub async fn purge_expired(&self, now: u64) -> Result<u64> {
        let forget = now.checked_sub(crate::security_log::RETENTION_SECS);
        let now = time_to_db(now);
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable("purge_expired"))?;
        let mut total = 0;
        if let Some(forget) = forget {
            total += sqlx::query("DELETE FROM sf_security_log WHERE at <= ?")
                .bind(time_to_db(forget))
                .execute(&mut *tx)
                .await
                .map_err(unavailable("purge_expired"))?
                .rows_affected();
        }
        for sql in [
            "DELETE FROM sf_pending_logins WHERE expires_at <= ?",
            "DELETE FROM sf_enrollments WHERE expires_at <= ?",
            "DELETE FROM sf_webauthn_ceremonies WHERE expires_at <= ?",
            "DELETE FROM sf_authenticator_steps WHERE keep_until <= ?",
            "DELETE FROM sf_throttles WHERE keep_until <= ?",
            "DELETE FROM sf_devices WHERE expires_at <= ?",
            "DELETE FROM sf_sessions WHERE expires_at <= ?",
        ] {
            total += sqlx::query(sql)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(unavailable("purge_expired"))?
                .rows_affected();
        }
        tx.commit().await.map_err(unavailable("purge_expired"))?;
        Ok(total)
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` takes the write lock at once,
    /// so the reads inside it see the state the writes apply to.
    async fn write_tx(
        &self,
        context: &'static str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable(context))
    }
}

impl AccountStore for SqliteStore {
    async fn create_account(&self, account: &AccountRecord) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO sf_accounts \
             (id, username, password_hash, password_epoch, two_factor_enabled, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING",
        )
        .bind(account.id.as_str())
        .bind(account.username.as_str())
        .bind(account.password_hash.as_str())
        .bind(u64_to_db(account.password_epoch)?)
        .bind(account.two_factor_enabled)
        .bind(time_to_db(account.created_at))
        .execute(&self.writer)
        .await;
        match r {
            Ok(r) if r.rows_affected() == 1 => Ok(()),
            Ok(_) => Err(Error::UsernameTaken),
            Err(e) if is_unique_violation(&e) => Err(Error::Internal("account id already exists")),
            Err(e) => Err(Error::unavailable("create_account", e)),
        }
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<AccountRecord>> {
        sqlx::query_as::<_, AccountRow>(concat!(
            "SELECT ",
            account_columns!(),
            " FROM sf_accounts WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable("account_by_username"))?
        .map(account_from_row)
        .transpose()
    }

    async fn account(&self, user_id: &UserId) -> Result<Option<AccountRecord>> {
        sqlx::query_as::<_, AccountRow>(concat!(
            "SELECT ",
            account_columns!(),
            " FROM sf_accounts WHERE id = ?"
        ))
        .bind(user_id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable("account"))?
        .map(account_from_row)
        .transpose()
    }

    async fn set_password(
        &self,
        user_id: &UserId,
        hash: &PasswordHash,
        expected_epoch: u64,
        new_epoch: u64,
    ) -> Result<bool> {
        // One statement: a compare-and-set on the epoch.
        let r = sqlx::query(
            "UPDATE sf_accounts SET password_hash = ?, password_epoch = ? \
             WHERE id = ? AND password_epoch = ?",
        )
        .bind(hash.as_str())
        .bind(u64_to_db(new_epoch)?)
        .bind(user_id.as_str())
        .bind(u64_to_db(expected_epoch)?)
        .execute(&self.writer)
        .await
        .map_err(unavailable("set_password"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn authenticators(&self, user_id: &UserId) -> Result<Vec<AuthenticatorRecord>> {
        sqlx::query_as::<_, AuthenticatorRow>(
            "SELECT id, user_id, name, sealed_secret, created_at FROM sf_authenticators \
             WHERE user_id = ? ORDER BY created_at, seq",
        )
        .bind(user_id.as_str())
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable("authenticators"))?
        .into_iter()
        .map(authenticator_from_row)
        .collect()
    }

    async fn enable_two_factor(
        &self,
        authenticator: &AuthenticatorRecord,
        backup_codes: &[KeyedHash],
        backup_key_id: u32,
    ) -> Result<()> {
        const CX: &str = "enable_two_factor";
        let user_id = authenticator.user_id.as_str();
        let mut tx = self.write_tx(CX).await?;
        let enabled: Option<bool> =
            sqlx::query_scalar("SELECT two_factor_enabled FROM sf_accounts WHERE id = ?")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable(CX))?;
        match enabled {
            None => return Err(Error::NotFound { what: "account" }),
            Some(true) => return Err(Error::TwoFactorAlreadyEnabled),
            Some(false) => {}
        }
        sqlx::query("DELETE FROM sf_authenticators WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable(CX))?;
        insert_authenticator(&mut tx, authenticator, CX).await?;
        replace_codes(&mut tx, user_id, backup_codes, CX).await?;
        sqlx::query(
            "UPDATE sf_accounts SET two_factor_enabled = 1, backup_codes_key_id = ? WHERE id = ?",
        )
        .bind(i64::from(backup_key_id))
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable(CX))?;
        tx.commit().await.map_err(unavailable(CX))
    }

    async fn add_authenticator(
        &self,
        authenticator: &AuthenticatorRecord,
        max_authenticators: u32,
    ) -> Result<()> {
        const CX: &str = "add_authenticator";
        // BEGIN IMMEDIATE: the count below and the insert are one step for every
        // connection and process, so concurrent adds cannot pass the cap together.
        let mut tx = self.write_tx(CX).await?;
        let enabled: Option<bool> =
            sqlx::query_scalar("SELECT two_factor_enabled FROM sf_accounts WHERE id = ?")
                .bind(authenticator.user_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable(CX))?;
        match enabled {
            None => return Err(Error::NotFound { what: "account" }),
            Some(false) => return Err(Error::TwoFactorNotEnabled),
            Some(true) => {}
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sf_authenticators WHERE user_id = ?")
                .bind(authenticator.user_id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable(CX))?;
        if count >= i64::from(max_authenticators) {
            return Err(Error::TooManyAuthenticators);
        }
        insert_authenticator(&mut tx, authenticator, CX).await?;
        tx.commit().await.map_err(unavailable(CX))
    }

    async fn remove_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
    ) -> Result<RemoveOutcome> {
        const CX: &str = "remove_authenticator";
        let mut tx = self.write_tx(CX).await?;
        let (found, total): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(id = ?), 0), COUNT(*) FROM sf_authenticators WHERE user_id = ?",
        )
        .bind(id.as_str())
        .bind(user_id.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable(CX))?;
        if found == 0 {
            return Ok(RemoveOutcome::NotFound);
        }
        if total <= 1 {
            return Ok(RemoveOutcome::LastOne);
        }
        sqlx::query("DELETE FROM sf_authenticators WHERE user_id = ? AND id = ?")
            .bind(user_id.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable(CX))?;
        tx.commit().await.map_err(unavailable(CX))?;
        Ok(RemoveOutcome::Removed)
    }

    async fn reseal_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        sealed_secret: &SealedSecret,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE sf_authenticators SET sealed_secret = ? WHERE user_id = ? AND id = ?",
        )
        .bind(sealed_secret.as_bytes())
        .bind(user_id.as_str())
        .bind(id.as_str())
        .execute(&self.writer)
        .await
        .map_err(unavailable("reseal_authenticator"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn update_authenticator_secret(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> Result<bool> {
        // One statement: the row is written only while it still holds `expected`.
        let r = sqlx::query(
            "UPDATE sf_authenticators SET sealed_secret = ? \
             WHERE user_id = ? AND id = ? AND sealed_secret = ?",
        )
        .bind(new.as_bytes())
        .bind(user_id.as_str())
        .bind(id.as_str())
        .bind(expected.as_bytes())
        .execute(&self.writer)
        .await
        .map_err(unavailable("update_authenticator_secret"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn disable_two_factor(&self, user_id: &UserId) -> Result<bool> {
        const CX: &str = "disable_two_factor";
        let mut tx = self.write_tx(CX).await?;
        let was: Option<bool> =
            sqlx::query_scalar("SELECT two_factor_enabled FROM sf_accounts WHERE id = ?")
                .bind(user_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable(CX))?;
        for sql in [
            "UPDATE sf_accounts SET two_factor_enabled = 0, backup_codes_key_id = NULL \
             WHERE id = ?",
            "DELETE FROM sf_authenticators WHERE user_id = ?",
            "DELETE FROM sf_backup_codes WHERE user_id = ?",
        ] {
            sqlx::query(sql)
                .bind(user_id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(unavailable(CX))?;
        }
        tx.commit().await.map_err(unavailable(CX))?;
        Ok(was.unwrap_or(false))
    }

    async fn replace_backup_codes(
        &self,
        user_id: &UserId,
        hashes: &[KeyedHash],
        key_id: u32,
    ) -> Result<()> {
        const CX: &str = "replace_backup_codes";
        let mut tx = self.write_tx(CX).await?;
        let r = sqlx::query("UPDATE sf_accounts SET backup_codes_key_id = ? WHERE id = ?")
            .bind(i64::from(key_id))
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(unavailable(CX))?;
        if r.rows_affected() == 0 {
            return Err(Error::NotFound { what: "account" });
        }
        replace_codes(&mut tx, user_id.as_str(), hashes, CX).await?;
        tx.commit().await.map_err(unavailable(CX))
    }

    async fn consume_backup_code(&self, user_id: &UserId, hash: &KeyedHash) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sf_backup_codes WHERE user_id = ? AND code_hash = ?")
            .bind(user_id.as_str())
            .bind(hash.as_bytes().as_slice())
            .execute(&self.writer)
            .await
            .map_err(unavailable("consume_backup_code"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn backup_codes_remaining(&self, user_id: &UserId) -> Result<u32> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sf_backup_codes WHERE user_id = ?")
            .bind(user_id.as_str())
            .fetch_one(&self.reader)
            .await
            .map_err(unavailable("backup_codes_remaining"))?;
        Ok(count_to_u32(u64::try_from(n).unwrap_or(0)))
    }

    async fn append_security_event(
        &self,
        user_id: &UserId,
        event: &SecurityEvent,
        max_entries: u32,
        forget_before: u64,
    ) -> Result<()> {
        // One write transaction: concurrent appends trim one after the other, so the
        // log never keeps more than `max_entries`.
        let mut tx = self.write_tx("append_security_event").await?;
        append_log(&mut tx, user_id, event, max_entries, forget_before).await?;
        tx.commit()
            .await
            .map_err(unavailable("append_security_event"))
    }

    async fn security_log(&self, user_id: &UserId, limit: u32) -> Result<Vec<SecurityEvent>> {
        sqlx::query_as::<_, SecurityEventRow>(
            "SELECT at, kind, method, client, detail FROM sf_security_log \
             WHERE user_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(user_id.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable("security_log"))?
        .into_iter()
        .map(security_event_from_row)
        .collect()
    }
}

/// Appends a security-log entry and trims the account's log, inside a write
/// transaction.
async fn append_log(
    conn: &mut sqlx::SqliteConnection,
    user_id: &UserId,
    event: &SecurityEvent,
    max_entries: u32,
    forget_before: u64,
) -> Result<()> {
    const CX: &str = "append_security_event";
    let r = sqlx::query(
        "INSERT INTO sf_security_log (user_id, at, kind, method, client, detail) \
             SELECT id, ?, ?, ?, ?, ? FROM sf_accounts WHERE id = ?",
    )
    .bind(time_to_db(event.at))
    .bind(event.kind.as_str())
    .bind(event.method.as_ref().map(|m| m.as_str()))
    .bind(event.client.as_deref())
    .bind(event.detail.as_deref())
    .bind(user_id.as_str())
    .execute(&mut *conn)
    .await
    .map_err(unavailable(CX))?;
    if r.rows_affected() == 0 {
        // No such account: nothing is kept.
        return Ok(());
    }
    // Beyond the newest `max_entries` (ids only grow), or older than the horizon.
    sqlx::query(
        "DELETE FROM sf_security_log WHERE user_id = ? AND (at < ? OR id <= \
             (SELECT id FROM sf_security_log WHERE user_id = ? \
              ORDER BY id DESC LIMIT 1 OFFSET ?))",
    )
    .bind(user_id.as_str())
    .bind(time_to_db(forget_before))
    .bind(user_id.as_str())
    .bind(i64::from(max_entries))
    .execute(&mut *conn)
    .await
    .map_err(unavailable(CX))?;
    Ok(())
}

async fn insert_authenticator(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    a: &AuthenticatorRecord,
    context: &'static str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sf_authenticators (id, user_id, name, sealed_secret, created_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(a.id.as_str())
    .bind(a.user_id.as_str())
    .bind(a.name.as_str())
    .bind(a.sealed_secret.as_bytes())
    .bind(time_to_db(a.created_at))
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::Internal("authenticator id already exists")
        } else {
            Error::unavailable(context, e)
        }
    })?;
    Ok(())
}

async fn replace_codes(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    user_id: &str,
    hashes: &[KeyedHash],
    context: &'static str,
) -> Result<()> {
    sqlx::query("DELETE FROM sf_backup_codes WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(unavailable(context))?;
    for h in hashes {
        sqlx::query(
            "INSERT INTO sf_backup_codes (user_id, code_hash) VALUES (?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(h.as_bytes().as_slice())
        .execute(&mut **tx)
        .await
        .map_err(unavailable(context))?;
    }
    Ok(())
}

/// The second-factor commit is one `BEGIN IMMEDIATE` transaction: one fsync.
impl Store for SqliteStore {
    async fn commit_factor_step(&self, c: &FactorCommit<'_>) -> Result<FactorCommitted> {
        const CX: &str = "commit_factor_step";
        let now = time_to_db(c.now);
        let mut tx = self.write_tx(CX).await?;
        for t in c.throttles {
            let row: Option<(i64, i64)> = sqlx::query_as(
                "SELECT count, until FROM sf_throttles WHERE key = ? AND keep_until > ?",
            )
            .bind(t.key)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable(CX))?;
            let current = row.map(throttle_from_row).transpose()?.unwrap_or_default();
            if current != t.expected {
                // Dropping the transaction rolls it back: nothing was written.
                return Ok(FactorCommitted::Conflict);
            }
        }
        let mut spent = false;
        if !c.spend.is_empty() {
            let live: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM sf_pending_logins WHERE token_hash = ? AND expires_at > ?",
            )
            .bind(c.token.as_bytes().as_slice())
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unavailable(CX))?;
            if live.is_none() {
                return Ok(FactorCommitted::Expired);
            }
            for m in c.spend {
                if advance_step(&mut *tx, &m.authenticator, m.step, m.keep_until).await? {
                    spent = true;
                    break;
                }
            }
        }
        let writes = if spent { &c.on_success } else { &c.on_failure };
        if spent || writes.take_pending {
            sqlx::query("DELETE FROM sf_pending_logins WHERE token_hash = ?")
                .bind(c.token.as_bytes().as_slice())
                .execute(&mut *tx)
                .await
                .map_err(unavailable(CX))?;
        }
        for t in c.throttles {
            let (state, keep) = if spent { t.on_success } else { t.counted };
            if state == t.expected {
                continue;
            }
            let q = if state == ThrottleState::default() {
                sqlx::query("DELETE FROM sf_throttles WHERE key = ?").bind(t.key)
            } else {
                sqlx::query(
                    "INSERT INTO sf_throttles (count, until, keep_until, key) \
                     VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET \
                     count = excluded.count, until = excluded.until, \
                     keep_until = excluded.keep_until",
                )
                .bind(i64::from(state.count))
                .bind(time_to_db(state.until))
                .bind(time_to_db(keep))
                .bind(t.key)
            };
            q.execute(&mut *tx).await.map_err(unavailable(CX))?;
        }
        if let Some((hash, device)) = writes.device {
            insert_device(&mut *tx, hash, device).await?;
        }
        if let Some((hash, session)) = writes.session {
            insert_session(&mut *tx, hash, session).await?;
        }
        for entry in writes.log {
            append_log(
                &mut tx,
                c.user_id,
                entry,
                c.log_max_entries,
                c.log_forget_before,
            )
            .await?;
        }
        tx.commit().await.map_err(unavailable(CX))?;
        Ok(if spent {
            FactorCommitted::Spent
        } else {
            FactorCommitted::NotSpent
        })
    }
}

impl EphemeralStore for SqliteStore {
    async fn create_pending_login(&self, token: &KeyedHash, login: &PendingLogin) -> Result<()> {
        sqlx::query(
            "INSERT INTO sf_pending_logins \
             (token_hash, user_id, password_epoch, attempts, expires_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (token_hash) DO UPDATE SET user_id = excluded.user_id, \
             password_epoch = excluded.password_epoch, attempts = excluded.attempts, \
             expires_at = excluded.expires_at",
        )
        .bind(token.as_bytes().as_slice())
        .bind(login.user_id.as_str())
        .bind(u64_to_db(login.password_epoch)?)
        .bind(i64::from(login.attempts))
        .bind(time_to_db(login.expires_at))
        .execute(&self.writer)
        .await
        .map_err(unavailable("create_pending_login"))?;
        Ok(())
    }

    async fn begin_login_attempt(
        &self,
        token: &KeyedHash,
        max_attempts: u32,
        now: u64,
    ) -> Result<Option<PendingLogin>> {
        const CX: &str = "begin_login_attempt";
        let now = time_to_db(now);
        let row = sqlx::query_as::<_, PendingRow>(
            "UPDATE sf_pending_logins SET attempts = attempts + 1 \
             WHERE token_hash = ? AND expires_at > ? AND attempts < ? \
             RETURNING user_id, password_epoch, attempts, expires_at",
        )
        .bind(token.as_bytes().as_slice())
        .bind(now)
        .bind(i64::from(max_attempts))
        .fetch_optional(&self.writer)
        .await
        .map_err(unavailable(CX))?;
        if let Some(row) = row {
            return pending_from_row(row).map(Some);
        }
        // Missing, expired or out of attempts: burn it (if it is there at all).
        sqlx::query(
            "DELETE FROM sf_pending_logins \
             WHERE token_hash = ? AND (expires_at <= ? OR attempts >= ?)",
        )
        .bind(token.as_bytes().as_slice())
        .bind(now)
        .bind(i64::from(max_attempts))
        .execute(&self.writer)
        .await
        .map_err(unavailable(CX))?;
        Ok(None)
    }

    async fn take_pending_login(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> Result<Option<PendingLogin>> {
        let row = sqlx::query_as::<_, PendingRow>(
            "DELETE FROM sf_pending_logins WHERE token_hash = ? \
             RETURNING user_id, password_epoch, attempts, expires_at",
        )
        .bind(token.as_bytes().as_slice())
        .fetch_optional(&self.writer)
        .await
        .map_err(unavailable("take_pending_login"))?;
        match row {
            Some(row) => Ok(Some(pending_from_row(row)?).filter(|p| p.expires_at > now)),
            None => Ok(None),
        }
    }

    async fn delete_pending_login(&self, token: &KeyedHash) -> Result<()> {
        sqlx::query("DELETE FROM sf_pending_logins WHERE token_hash = ?")
            .bind(token.as_bytes().as_slice())
            .execute(&self.writer)
            .await
            .map_err(unavailable("delete_pending_login"))?;
        Ok(())
    }

    async fn put_enrollment(&self, user_id: &UserId, enrollment: &PendingEnrollment) -> Result<()> {
        sqlx::query(
            "INSERT INTO sf_enrollments (user_id, id, name, sealed_secret, adding, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET id = excluded.id, name = excluded.name, \
             sealed_secret = excluded.sealed_secret, adding = excluded.adding, \
             expires_at = excluded.expires_at",
        )
        .bind(user_id.as_str())
        .bind(enrollment.id.as_str())
        .bind(enrollment.name.as_str())
        .bind(enrollment.sealed_secret.as_bytes())
        .bind(enrollment.adding)
        .bind(time_to_db(enrollment.expires_at))
        .execute(&self.writer)
        .await
        .map_err(unavailable("put_enrollment"))?;
        Ok(())
    }

    async fn enrollment(&self, user_id: &UserId, now: u64) -> Result<Option<PendingEnrollment>> {
        sqlx::query_as::<_, EnrollmentRow>(
            "SELECT id, name, sealed_secret, adding, expires_at FROM sf_enrollments \
             WHERE user_id = ? AND expires_at > ?",
        )
        .bind(user_id.as_str())
        .bind(time_to_db(now))
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable("enrollment"))?
        .map(enrollment_from_row)
        .transpose()
    }

    async fn take_enrollment(&self, user_id: &UserId, id: &str, now: u64) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM sf_enrollments WHERE user_id = ? AND id = ? AND expires_at > ?",
        )
        .bind(user_id.as_str())
        .bind(id)
        .bind(time_to_db(now))
        .execute(&self.writer)
        .await
        .map_err(unavailable("take_enrollment"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn put_ceremony(&self, key: &str, ceremony: &CeremonyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sf_webauthn_ceremonies \
             (ceremony_key, user_id, login_hash, state, expires_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (ceremony_key) DO UPDATE SET user_id = excluded.user_id, \
             login_hash = excluded.login_hash, state = excluded.state, \
             expires_at = excluded.expires_at",
        )
        .bind(key)
        .bind(ceremony.user_id.as_str())
        .bind(ceremony.login.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(ceremony.state.as_slice())
        .bind(time_to_db(ceremony.expires_at))
        .execute(&self.writer)
        .await
        .map_err(unavailable("put_ceremony"))?;
        Ok(())
    }

    async fn take_ceremony(&self, key: &str, now: u64) -> Result<Option<CeremonyRecord>> {
        // One statement: of concurrent takes, only the one whose DELETE removed the
        // row gets it back.
        let row = sqlx::query_as::<_, CeremonyRow>(
            "DELETE FROM sf_webauthn_ceremonies WHERE ceremony_key = ? \
             RETURNING user_id, login_hash, state, expires_at",
        )
        .bind(key)
        .fetch_optional(&self.writer)
        .await
        .map_err(unavailable("take_ceremony"))?;
        match row {
            Some(row) => Ok(Some(ceremony_from_row(row)?).filter(|c| c.expires_at > now)),
            None => Ok(None),
        }
    }

    async fn advance_last_step(
        &self,
        id: &AuthenticatorId,
        step: u64,
        keep_until: u64,
    ) -> Result<bool> {
        advance_step(&self.writer, id, step, keep_until).await
    }

    async fn throttle(&self, key: &str, now: u64) -> Result<ThrottleState> {
        // A state past its keep_until reads as zero; purge_expired deletes it.
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT count, until FROM sf_throttles WHERE key = ? AND keep_until > ?",
        )
        .bind(key)
        .bind(time_to_db(now))
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable("throttle"))?;
        row.map(throttle_from_row)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    async fn update_throttle(
        &self,
        key: &str,
        expected: ThrottleState,
        new: ThrottleState,
        keep_until: u64,
        now: u64,
    ) -> Result<bool> {
        const CX: &str = "update_throttle";
        let zero = ThrottleState::default();
        let now_db = time_to_db(now);
        // The zero state is never stored: a missing row, or a row past its
        // keep_until, is zero. Every write below is one statement whose condition
        // includes the row's keep_until, so the compare-and-set holds for expired
        // rows too.
        let q = match (expected == zero, new == zero) {
            (true, true) => {
                // Nothing to write; succeeds iff the state is zero right now.
                return Ok(self.throttle(key, now).await? == zero);
            }
            // Inserts, or replaces an expired row (the conflict update's WHERE).
            (true, false) => sqlx::query(
                "INSERT INTO sf_throttles (count, until, keep_until, key) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (key) DO UPDATE SET count = excluded.count, \
                 until = excluded.until, keep_until = excluded.keep_until \
                 WHERE sf_throttles.keep_until <= ?",
            )
            .bind(i64::from(new.count))
            .bind(time_to_db(new.until))
            .bind(time_to_db(keep_until))
            .bind(key)
            .bind(now_db),
            (false, true) => sqlx::query(
                "DELETE FROM sf_throttles \
                 WHERE key = ? AND count = ? AND until = ? AND keep_until > ?",
            )
            .bind(key)
            .bind(i64::from(expected.count))
            .bind(time_to_db(expected.until))
            .bind(now_db),
            (false, false) => sqlx::query(
                "UPDATE sf_throttles SET count = ?, until = ?, keep_until = ? \
                 WHERE key = ? AND count = ? AND until = ? AND keep_until > ?",
            )
            .bind(i64::from(new.count))
            .bind(time_to_db(new.until))
            .bind(time_to_db(keep_until))
            .bind(key)
            .bind(i64::from(expected.count))
            .bind(time_to_db(expected.until))
            .bind(now_db),
        };
        let r = q.execute(&self.writer).await.map_err(unavailable(CX))?;
        Ok(r.rows_affected() == 1)
    }

    async fn create_device(&self, token: &KeyedHash, device: &DeviceRecord) -> Result<()> {
        insert_device(&self.writer, token, device).await
    }

    async fn device(&self, token: &KeyedHash, now: u64) -> Result<Option<DeviceRecord>> {
        sqlx::query_as::<_, DeviceRow>(
            "SELECT id, user_id, label, password_epoch, created_at, expires_at FROM sf_devices \
             WHERE token_hash = ? AND expires_at > ?",
        )
        .bind(token.as_bytes().as_slice())
        .bind(time_to_db(now))
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable("device"))?
        .map(device_from_row)
        .transpose()
    }

    async fn devices(&self, user_id: &UserId, now: u64) -> Result<Vec<DeviceRecord>> {
        sqlx::query_as::<_, DeviceRow>(
            "SELECT id, user_id, label, password_epoch, created_at, expires_at FROM sf_devices \
             WHERE user_id = ? AND expires_at > ? ORDER BY created_at, seq",
        )
        .bind(user_id.as_str())
        .bind(time_to_db(now))
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable("devices"))?
        .into_iter()
        .map(device_from_row)
        .collect()
    }

    async fn revoke_device(&self, user_id: &UserId, id: &DeviceId) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sf_devices WHERE user_id = ? AND id = ?")
            .bind(user_id.as_str())
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(unavailable("revoke_device"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn revoke_all_devices(&self, user_id: &UserId) -> Result<u32> {
        let r = sqlx::query("DELETE FROM sf_devices WHERE user_id = ?")
            .bind(user_id.as_str())
            .execute(&self.writer)
            .await
            .map_err(unavailable("revoke_all_devices"))?;
        Ok(count_to_u32(r.rows_affected()))
    }

    async fn create_session(&self, token: &KeyedHash, session: &SessionRecord) -> Result<()> {
        insert_session(&self.writer, token, session).await
    }

    async fn session(&self, token: &KeyedHash, now: u64) -> Result<Option<SessionRecord>> {
        sqlx::query_as::<_, SessionRow>(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sf_sessions WHERE token_hash = ? AND expires_at > ?"
        ))
        .bind(token.as_bytes().as_slice())
        .bind(time_to_db(now))
        .fetch_optional(&self.reader)
        .await
        .map_err(unavailable("session"))?
        .map(session_from_row)
        .transpose()
    }

    async fn delete_session(&self, token: &KeyedHash) -> Result<()> {
        sqlx::query("DELETE FROM sf_sessions WHERE token_hash = ?")
            .bind(token.as_bytes().as_slice())
            .execute(&self.writer)
            .await
            .map_err(unavailable("delete_session"))?;
        Ok(())
    }

    async fn sessions(&self, user_id: &UserId, now: u64) -> Result<Vec<SessionRecord>> {
        sqlx::query_as::<_, SessionRow>(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sf_sessions WHERE user_id = ? AND expires_at > ? ORDER BY created_at, seq"
        ))
        .bind(user_id.as_str())
        .bind(time_to_db(now))
        .fetch_all(&self.reader)
        .await
        .map_err(unavailable("sessions"))?
        .into_iter()
        .map(session_from_row)
        .collect()
    }

    async fn reauthenticate_session(&self, token: &KeyedHash, at: u64) -> Result<bool> {
        let at = time_to_db(at);
        let r = sqlx::query(
            "UPDATE sf_sessions SET authenticated_at = ? WHERE token_hash = ? AND expires_at > ?",
        )
        .bind(at)
        .bind(token.as_bytes().as_slice())
        .bind(at)
        .execute(&self.writer)
        .await
        .map_err(unavailable("reauthenticate_session"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_session_by_id(&self, user_id: &UserId, id: &SessionId) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sf_sessions WHERE user_id = ? AND id = ?")
            .bind(user_id.as_str())
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .map_err(unavailable("delete_session_by_id"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_sessions(&self, user_id: &UserId, keep: Option<&SessionId>) -> Result<u32> {
        // One statement: every session of the account that exists when it runs.
        let r = match keep {
            Some(keep) => sqlx::query("DELETE FROM sf_sessions WHERE user_id = ? AND id <> ?")
                .bind(user_id.as_str())
                .bind(keep.as_str()),
            None => sqlx::query("DELETE FROM sf_sessions WHERE user_id = ?").bind(user_id.as_str()),
        }
        .execute(&self.writer)
        .await
        .map_err(unavailable("delete_sessions"))?;
        Ok(count_to_u32(r.rows_affected()))
    }

    /// [`SqliteStore::purge_expired`]: also counts the security-log rows it forgets.
    async fn purge_expired(&self, now: u64) -> Result<u64> {
        SqliteStore::purge_expired(self, now).await
    }
}

/// Raises an authenticator's replay mark to `step` if it is greater: one statement
/// that inserts the first mark, or raises the mark only if the new step is greater.
/// RETURNING yields a row only when a row was written.
async fn advance_step<'e>(
    ex: impl sqlx::SqliteExecutor<'e>,
    id: &AuthenticatorId,
    step: u64,
    keep_until: u64,
) -> Result<bool> {
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO sf_authenticator_steps (authenticator_id, last_step, keep_until) \
             VALUES (?, ?, ?) \
             ON CONFLICT (authenticator_id) DO UPDATE \
             SET last_step = excluded.last_step, keep_until = excluded.keep_until \
             WHERE sf_authenticator_steps.last_step < excluded.last_step \
             RETURNING last_step",
    )
    .bind(id.as_str())
    .bind(u64_to_db(step)?)
    .bind(time_to_db(keep_until))
    .fetch_optional(ex)
    .await
    .map_err(unavailable("advance_last_step"))?;
    Ok(row.is_some())
}

/// Stores a trusted device under the keyed hash of its token.
async fn insert_device<'e>(
    ex: impl sqlx::SqliteExecutor<'e>,
    token: &KeyedHash,
    device: &DeviceRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sf_devices \
             (token_hash, id, user_id, label, password_epoch, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (token_hash) DO UPDATE SET id = excluded.id, \
             user_id = excluded.user_id, label = excluded.label, \
             password_epoch = excluded.password_epoch, created_at = excluded.created_at, \
             expires_at = excluded.expires_at",
    )
    .bind(token.as_bytes().as_slice())
    .bind(device.id.as_str())
    .bind(device.user_id.as_str())
    .bind(device.label.as_str())
    .bind(u64_to_db(device.password_epoch)?)
    .bind(time_to_db(device.created_at))
    .bind(time_to_db(device.expires_at))
    .execute(ex)
    .await
    .map_err(unavailable("create_device"))?;
    Ok(())
}

/// Stores a session under the keyed hash of its token.
async fn insert_session<'e>(
    ex: impl sqlx::SqliteExecutor<'e>,
    token: &KeyedHash,
    session: &SessionRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sf_sessions \
             (token_hash, id, user_id, password_epoch, method, created_at, authenticated_at, \
             expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (token_hash) DO UPDATE SET id = excluded.id, \
             user_id = excluded.user_id, password_epoch = excluded.password_epoch, \
             method = excluded.method, created_at = excluded.created_at, \
             authenticated_at = excluded.authenticated_at, expires_at = excluded.expires_at",
    )
    .bind(token.as_bytes().as_slice())
    .bind(session.id.as_str())
    .bind(session.user_id.as_str())
    .bind(u64_to_db(session.password_epoch)?)
    .bind(session.method.as_str())
    .bind(time_to_db(session.created_at))
    .bind(time_to_db(session.authenticated_at))
    .bind(time_to_db(session.expires_at))
    .execute(ex)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            Error::Internal("session id already exists")
        } else {
            Error::unavailable("create_session", e)
        }
    })?;
    Ok(())
}
