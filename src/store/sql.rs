//! The SQL stores, written once: [`SqlStore`] over a [`Dialect`].
//!
//! [`SqliteStore`](super::SqliteStore) and [`PgStore`](super::PgStore) are
//! `SqlStore<SqliteDialect>` and `SqlStore<PgDialect>`. Both run the same statements:
//! parameters are numbered (`$1`, which SQLite accepts too), upserts are
//! `INSERT … ON CONFLICT … DO UPDATE`, takes are `DELETE … RETURNING`, booleans are
//! `TRUE`/`FALSE`. What differs is small and lives in the [`Dialect`]: the driver,
//! the statement that opens a write transaction (`BEGIN IMMEDIATE` takes SQLite's
//! write lock up front; PostgreSQL locks rows instead), the statements that lock an
//! account's row (`FOR UPDATE` on PostgreSQL, nothing more needed inside SQLite's
//! write transaction), and the migrations, which stay one directory per dialect.
//!
//! The trait impls are generated for each dialect by one macro (`sql_store!`)
//! rather than written generically over `sqlx::Database`: generic sqlx code needs
//! a higher-ranked executor bound (`for<'c> &'c mut Connection: Executor<'c>`) and
//! an `Encode`/`Decode`/`Type` bound per Rust type, which Rust does not imply from
//! a helper trait, so every impl block would repeat them. The macro is expanded
//! with concrete driver types, so the code inside reads as plain sqlx and the
//! compiler checks each dialect's instance as ordinary code. What does not touch
//! the driver (the struct, its pools, `migrate`, the write transaction) is generic.
//!
//! # The second-factor step
//!
//! [`read_factor_step`](super::Store::read_factor_step) is one `SELECT` (the
//! pending login joined with its account, the account's two second-factor throttles
//! and its authenticators) that writes nothing;
//! [`commit_factor_step`](super::Store::commit_factor_step) counts the attempt with
//! a guarded statement (`attempts = attempts + 1 … WHERE attempts < max`, or the
//! `DELETE` that takes the login, with the same condition) inside its one write
//! transaction. A successful step costs one write transaction: one `fsync` on
//! SQLite, one WAL flush on PostgreSQL.

use std::fmt;
use std::marker::PhantomData;

use sqlx::{Database, Pool};

use super::sql_common::{migrate_error, migrator, unavailable};
use super::unit::factor_throttle_key_prefixes as throttle_key_prefixes;
use crate::Result;

mod sealed {
    pub trait Sealed {}
}

/// A SQL dialect a [`SqlStore`] speaks: [`SqliteDialect`] or [`PgDialect`]. Sealed:
/// the statements of the store are only checked against these two.
pub trait Dialect: sealed::Sealed + Send + Sync + 'static {
    /// The sqlx driver.
    type Db: Database<Connection: sqlx::migrate::Migrate>;
    /// The statement that opens a write transaction.
    const BEGIN_WRITE: &'static str;
    /// Inside a write transaction, selects the 2FA flag of the account with id `$1`
    /// and keeps its row from changing until the commit.
    const LOCK_ACCOUNT: &'static str;
    /// Inside a write transaction, selects a row for the account with id `$1` and
    /// serializes appends to its security log, without blocking the foreign-key
    /// checks of inserts that refer to the account.
    const LOCK_ACCOUNT_LOG: &'static str;
    /// The crate's migrations for this dialect: version, description, SQL.
    const MIGRATIONS: &'static [(i64, &'static str, &'static str)];
}

/// SQLite (feature `sqlite`): see [`SqliteStore`](super::SqliteStore).
#[cfg(feature = "sqlite")]
#[derive(Clone, Copy, Debug)]
pub enum SqliteDialect {}

/// PostgreSQL (feature `postgres`): see [`PgStore`](super::PgStore).
#[cfg(feature = "postgres")]
#[derive(Clone, Copy, Debug)]
pub enum PgDialect {}

#[cfg(feature = "sqlite")]
impl sealed::Sealed for SqliteDialect {}
#[cfg(feature = "postgres")]
impl sealed::Sealed for PgDialect {}

/// A [`Store`](super::Store) in a SQL database: accounts and ephemeral state in one
/// place. Use it through its two names, [`SqliteStore`](super::SqliteStore) and
/// [`PgStore`](super::PgStore), whose docs say how each dialect keeps the
/// [atomicity contract](super).
///
/// Cloning is cheap and shares the connection pools.
pub struct SqlStore<D: Dialect> {
    /// Reads.
    reader: Pool<D::Db>,
    /// Writes and migrations (the same pool as `reader` unless a dialect splits them).
    writer: Pool<D::Db>,
    dialect: PhantomData<D>,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        SqlStore {
            reader: self.reader.clone(),
            writer: self.writer.clone(),
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("dialect", &<D::Db as Database>::NAME)
            .field("reader", &self.reader)
            .field("writer", &self.writer)
            .finish()
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A store over two pools on one database: `reader` for reads, `writer` for
    /// writes.
    pub(crate) fn with_pools(reader: Pool<D::Db>, writer: Pool<D::Db>) -> Self {
        SqlStore {
            reader,
            writer,
            dialect: PhantomData,
        }
    }

    /// Wraps a pool you configured yourself (reads and writes share it). Call
    /// [`migrate`](Self::migrate) once before use. For SQLite, use WAL mode, foreign
    /// keys and a busy timeout (as [`SqliteStore::connect`](super::SqliteStore::connect)
    /// does), or concurrent writers will see `unavailable` errors, and
    /// `synchronous = FULL`, or a power cut can undo spent backup codes and replay
    /// marks.
    pub fn from_pool(pool: Pool<D::Db>) -> Self {
        Self::with_pools(pool.clone(), pool)
    }

    /// The pool that writes (and migrates). For a SQLite store made by
    /// [`connect`](super::SqliteStore::connect) it has one connection and reads use
    /// a second pool; otherwise it is the store's only pool.
    pub fn pool(&self) -> &Pool<D::Db> {
        &self.writer
    }

    /// Applies the crate's migrations that have not been applied yet (on
    /// PostgreSQL under an advisory lock, so that instances starting together do
    /// not collide). The history is kept in the table `sf_schema_migrations`, apart
    /// from your application's own sqlx migrations. Idempotent.
    pub async fn migrate(&self) -> Result<()> {
        migrator(D::MIGRATIONS)
            .run(&self.writer)
            .await
            .map_err(migrate_error)
    }

    /// Opens a write transaction ([`Dialect::BEGIN_WRITE`]) on the writer pool.
    async fn write_tx(&self, context: &'static str) -> Result<sqlx::Transaction<'static, D::Db>> {
        self.writer
            .begin_with(D::BEGIN_WRITE)
            .await
            .map_err(unavailable(context))
    }
}

/// The read of the second-factor step: the pending login stored under `$1` that is
/// alive at `$2` and has an attempt left of `$3`, joined with its account, the
/// account's throttles (keys `$4 || user_id` and `$5 || user_id`, alive at `$2`) and
/// its authenticators, one row per authenticator, oldest first.
const STEP_READ: &str = "SELECT p.user_id, p.password_epoch, p.attempts, p.expires_at, \
     a.username, a.password_hash, a.password_epoch, a.two_factor_enabled, a.created_at, \
     a.backup_codes_key_id, l.count, l.until, b.count, b.until, \
     au.id, au.name, au.sealed_secret, au.created_at \
     FROM sf_pending_logins p \
     LEFT JOIN sf_accounts a ON a.id = p.user_id \
     LEFT JOIN sf_throttles l ON l.key = CAST($4 AS TEXT) || p.user_id AND l.keep_until > $2 \
     LEFT JOIN sf_throttles b ON b.key = CAST($5 AS TEXT) || p.user_id AND b.keep_until > $2 \
     LEFT JOIN sf_authenticators au ON au.user_id = a.id \
     WHERE p.token_hash = $1 AND p.expires_at > $2 AND p.attempts < $3 \
     ORDER BY au.created_at, au.seq";

/// An account (`$1`) with its authenticators, one row per authenticator (one row
/// with NULLs without any), oldest first; no row without the account.
const ACCOUNT_AND_AUTHENTICATORS: &str = "SELECT a.id, a.username, a.password_hash, \
     a.password_epoch, a.two_factor_enabled, a.created_at, a.backup_codes_key_id, \
     au.id, au.name, au.sealed_secret, au.created_at \
     FROM sf_accounts a LEFT JOIN sf_authenticators au ON au.user_id = a.id \
     WHERE a.id = $1 ORDER BY au.created_at, au.seq";

/// A row of [`ACCOUNT_AND_AUTHENTICATORS`]: an account row, then an authenticator's
/// id, name, sealed secret and created at (all `NULL` without an authenticator).
type AccountAuthenticatorRow = (
    String,
    String,
    String,
    i64,
    bool,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<i64>,
);

/// `INSERT`s `n` backup-code hashes (`$2` to `$n+1`) for the account `$1`.
fn insert_codes_sql(n: usize) -> String {
    let rows: Vec<String> = (0..n).map(|i| format!("($1, ${})", i + 2)).collect();
    format!(
        "INSERT INTO sf_backup_codes (user_id, code_hash) VALUES {} ON CONFLICT DO NOTHING",
        rows.join(", ")
    )
}

/// Generates the store for one dialect, in a module of its own: `$module` names it,
/// `$dialect` is the [`Dialect`].
macro_rules! sql_store {
    ($module:ident, $dialect:ty) => {
        mod $module {
            use sqlx::{AssertSqlSafe, Row as _};

            use super::super::sql_common::*;
            use super::super::*;
            use super::{
                ACCOUNT_AND_AUTHENTICATORS, AccountAuthenticatorRow, Dialect, STEP_READ, SqlStore,
                insert_codes_sql, throttle_key_prefixes,
            };
            use crate::Error;

            type D = $dialect;
            type Db = <$dialect as Dialect>::Db;
            type Tx = sqlx::Transaction<'static, Db>;
            type Sql = SqlStore<$dialect>;

            impl Sql {
                /// Deletes every ephemeral row (pending logins and enrollments,
                /// WebAuthn ceremonies, replay marks, throttles, trusted devices,
                /// sessions) that expired at or before `now`, and the security-log
                /// entries older than
                /// [`RETENTION_SECS`](crate::security_log::RETENTION_SECS) (as the
                /// log's own trimming does on the next append), in one write
                /// transaction; returns how many rows were deleted.
                pub async fn purge_expired(&self, now: u64) -> Result<u64> {
                    const CX: &str = "purge_expired";
                    let forget = now.checked_sub(crate::security_log::RETENTION_SECS);
                    let now = time_to_db(now);
                    let mut tx = self.write_tx(CX).await?;
                    let mut total = 0;
                    if let Some(forget) = forget {
                        total += sqlx::query("DELETE FROM sf_security_log WHERE at <= $1")
                            .bind(time_to_db(forget))
                            .execute(&mut *tx)
                            .await
                            .map_err(unavailable(CX))?
                            .rows_affected();
                    }
                    for sql in [
                        "DELETE FROM sf_pending_logins WHERE expires_at <= $1",
                        "DELETE FROM sf_enrollments WHERE expires_at <= $1",
                        "DELETE FROM sf_webauthn_ceremonies WHERE expires_at <= $1",
                        "DELETE FROM sf_authenticator_steps WHERE keep_until <= $1",
                        "DELETE FROM sf_throttles WHERE keep_until <= $1",
                        "DELETE FROM sf_devices WHERE expires_at <= $1",
                        "DELETE FROM sf_sessions WHERE expires_at <= $1",
                    ] {
                        total += sqlx::query(sql)
                            .bind(now)
                            .execute(&mut *tx)
                            .await
                            .map_err(unavailable(CX))?
                            .rows_affected();
                    }
                    tx.commit().await.map_err(unavailable(CX))?;
                    Ok(total)
                }
            }

            /// Locks the account's row for the rest of the transaction and returns
            /// its 2FA flag, `None` when there is no such account. Every
            /// multi-statement change of an account's authenticators or backup
            /// codes starts here, so they run one at a time per account.
            async fn lock_account(
                tx: &mut Tx,
                user_id: &str,
                context: &'static str,
            ) -> Result<Option<bool>> {
                sqlx::query_scalar(<D as Dialect>::LOCK_ACCOUNT)
                    .bind(user_id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(unavailable(context))
            }

            async fn insert_authenticator(
                tx: &mut Tx,
                a: &AuthenticatorRecord,
                context: &'static str,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO sf_authenticators (id, user_id, name, sealed_secret, \
                     created_at) VALUES ($1, $2, $3, $4, $5)",
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

            /// Replaces the account's backup-code hashes: one `DELETE`, one
            /// multi-row `INSERT`.
            async fn replace_codes(
                tx: &mut Tx,
                user_id: &str,
                hashes: &[KeyedHash],
                context: &'static str,
            ) -> Result<()> {
                sqlx::query("DELETE FROM sf_backup_codes WHERE user_id = $1")
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await
                    .map_err(unavailable(context))?;
                if hashes.is_empty() {
                    return Ok(());
                }
                let mut q = sqlx::query(AssertSqlSafe(insert_codes_sql(hashes.len())))
                    .bind(user_id);
                for h in hashes {
                    q = q.bind(h.as_bytes().as_slice());
                }
                q.execute(&mut **tx).await.map_err(unavailable(context))?;
                Ok(())
            }

            /// Appends a security-log entry and trims the account's log, inside a
            /// write transaction.
            async fn append_log(
                tx: &mut Tx,
                user_id: &UserId,
                event: &SecurityEvent,
                max_entries: u32,
                forget_before: u64,
            ) -> Result<()> {
                const CX: &str = "append_security_event";
                // Appends to one account's log run one at a time, so the trim below
                // keeps exactly the newest `max_entries` and ids grow in commit
                // order.
                let exists = sqlx::query(<D as Dialect>::LOCK_ACCOUNT_LOG)
                    .bind(user_id.as_str())
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(unavailable(CX))?;
                if exists.is_none() {
                    // No such account: nothing is kept.
                    return Ok(());
                }
                sqlx::query(
                    "INSERT INTO sf_security_log (user_id, at, kind, method, client, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user_id.as_str())
                .bind(time_to_db(event.at))
                .bind(event.kind.as_str())
                .bind(event.method.as_ref().map(|m| m.as_str()))
                .bind(event.client.as_deref())
                .bind(event.detail.as_deref())
                .execute(&mut **tx)
                .await
                .map_err(unavailable(CX))?;
                // Beyond the newest `max_entries` (ids only grow), or older than the
                // horizon.
                sqlx::query(
                    "DELETE FROM sf_security_log WHERE user_id = $1 AND (at < $2 OR id <= \
                     (SELECT id FROM sf_security_log WHERE user_id = $1 \
                      ORDER BY id DESC LIMIT 1 OFFSET $3))",
                )
                .bind(user_id.as_str())
                .bind(time_to_db(forget_before))
                .bind(i64::from(max_entries))
                .execute(&mut **tx)
                .await
                .map_err(unavailable(CX))?;
                Ok(())
            }

            /// Raises an authenticator's replay mark to `step` if it is greater: one
            /// statement that inserts the first mark, or raises the mark only if the
            /// new step is greater (a concurrent writer of the row makes this one
            /// wait and re-check against the new row, so equal steps have one
            /// winner). RETURNING yields a row only when a row was written.
            async fn advance_step<'e>(
                ex: impl sqlx::Executor<'e, Database = Db>,
                id: &AuthenticatorId,
                step: u64,
                keep_until: u64,
            ) -> Result<bool> {
                let row: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO sf_authenticator_steps (authenticator_id, last_step, \
                     keep_until) VALUES ($1, $2, $3) \
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
                ex: impl sqlx::Executor<'e, Database = Db>,
                token: &KeyedHash,
                device: &DeviceRecord,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO sf_devices \
                     (token_hash, id, user_id, label, password_epoch, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (token_hash) DO UPDATE SET id = excluded.id, \
                     user_id = excluded.user_id, label = excluded.label, \
                     password_epoch = excluded.password_epoch, \
                     created_at = excluded.created_at, expires_at = excluded.expires_at",
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
                ex: impl sqlx::Executor<'e, Database = Db>,
                token: &KeyedHash,
                session: &SessionRecord,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO sf_sessions \
                     (token_hash, id, user_id, password_epoch, method, created_at, \
                     authenticated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (token_hash) DO UPDATE SET id = excluded.id, \
                     user_id = excluded.user_id, password_epoch = excluded.password_epoch, \
                     method = excluded.method, created_at = excluded.created_at, \
                     authenticated_at = excluded.authenticated_at, \
                     expires_at = excluded.expires_at",
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

            /// The compare-and-set of a throttle, one statement. The zero state is
            /// never stored: a missing row, or a row past its keep_until, is zero.
            /// Every write below is one statement whose condition includes the row's
            /// keep_until, so the compare-and-set holds for expired rows too (a
            /// concurrent writer of the row makes this one wait and re-check).
            async fn cas_throttle<'e>(
                ex: impl sqlx::Executor<'e, Database = Db>,
                key: &str,
                expected: ThrottleState,
                new: ThrottleState,
                keep_until: u64,
                now: u64,
            ) -> Result<bool> {
                const CX: &str = "update_throttle";
                let zero = ThrottleState::default();
                let now_db = time_to_db(now);
                let q = match (expected == zero, new == zero) {
                    // Nothing to write; succeeds iff the state is zero right now.
                    (true, true) => {
                        let row = sqlx::query(
                            "SELECT count FROM sf_throttles WHERE key = $1 AND keep_until > $2",
                        )
                        .bind(key)
                        .bind(now_db)
                        .fetch_optional(ex)
                        .await
                        .map_err(unavailable(CX))?;
                        return Ok(row.is_none());
                    }
                    // Inserts, or replaces an expired row (the conflict update's WHERE).
                    (true, false) => sqlx::query(
                        "INSERT INTO sf_throttles (count, until, keep_until, key) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE \
                         SET count = excluded.count, until = excluded.until, \
                         keep_until = excluded.keep_until WHERE sf_throttles.keep_until <= $5",
                    )
                    .bind(i64::from(new.count))
                    .bind(time_to_db(new.until))
                    .bind(time_to_db(keep_until))
                    .bind(key)
                    .bind(now_db),
                    (false, true) => sqlx::query(
                        "DELETE FROM sf_throttles \
                         WHERE key = $1 AND count = $2 AND until = $3 AND keep_until > $4",
                    )
                    .bind(key)
                    .bind(i64::from(expected.count))
                    .bind(time_to_db(expected.until))
                    .bind(now_db),
                    (false, false) => sqlx::query(
                        "UPDATE sf_throttles SET count = $1, until = $2, keep_until = $3 \
                         WHERE key = $4 AND count = $5 AND until = $6 AND keep_until > $7",
                    )
                    .bind(i64::from(new.count))
                    .bind(time_to_db(new.until))
                    .bind(time_to_db(keep_until))
                    .bind(key)
                    .bind(i64::from(expected.count))
                    .bind(time_to_db(expected.until))
                    .bind(now_db),
                };
                let r = q.execute(ex).await.map_err(unavailable(CX))?;
                Ok(r.rows_affected() == 1)
            }

            /// Column `i` of a row of [`STEP_READ`].
            fn column<T>(row: &<Db as sqlx::Database>::Row, i: usize) -> Result<T>
            where
                T: for<'r> sqlx::Decode<'r, Db> + sqlx::Type<Db>,
            {
                row.try_get(i).map_err(unavailable("read_factor_step"))
            }

            /// The view of the step from the rows of [`STEP_READ`]; `None` without
            /// rows.
            fn step_view(
                token: KeyedHash,
                rows: &[<Db as sqlx::Database>::Row],
            ) -> Result<Option<FactorStepView>> {
                let Some(first) = rows.first() else {
                    return Ok(None);
                };
                let user_id: String = column(first, 0)?;
                let attempts: i64 = column(first, 2)?;
                let pending = pending_from_row((
                    user_id.clone(),
                    column(first, 1)?,
                    // The attempt this step makes, which the commit counts.
                    attempts.saturating_add(1),
                    column(first, 3)?,
                ))?;
                let username: Option<String> = column(first, 4)?;
                let account = match username {
                    Some(username) => Some(account_from_row((
                        user_id.clone(),
                        username,
                        column(first, 5)?,
                        column(first, 6)?,
                        column(first, 7)?,
                        column(first, 8)?,
                        column(first, 9)?,
                    ))?),
                    None => None,
                };
                let mut throttles = [ThrottleState::default(); 2];
                for (state, at) in throttles.iter_mut().zip([10, 12]) {
                    let count: Option<i64> = column(first, at)?;
                    let until: Option<i64> = column(first, at + 1)?;
                    if let Some(row) = count.zip(until) {
                        *state = throttle_from_row(row)?;
                    }
                }
                let mut authenticators = Vec::new();
                for row in rows {
                    let id: Option<String> = column(row, 14)?;
                    if let Some(id) = id {
                        authenticators.push(authenticator_from_row((
                            id,
                            user_id.clone(),
                            column(row, 15)?,
                            column(row, 16)?,
                            column(row, 17)?,
                        ))?);
                    }
                }
                Ok(Some(FactorStepView {
                    token,
                    pending,
                    account,
                    authenticators,
                    throttles,
                }))
            }

            impl AccountStore for Sql {
                async fn create_account(&self, account: &AccountRecord) -> Result<()> {
                    let r = sqlx::query(
                        "INSERT INTO sf_accounts \
                         (id, username, password_hash, password_epoch, two_factor_enabled, \
                         created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (username) DO NOTHING",
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
                        Err(e) if is_unique_violation(&e) => {
                            Err(Error::Internal("account id already exists"))
                        }
                        Err(e) => Err(Error::unavailable("create_account", e)),
                    }
                }

                async fn account_by_username(
                    &self,
                    username: &str,
                ) -> Result<Option<AccountRecord>> {
                    sqlx::query_as::<_, AccountRow>(concat!(
                        "SELECT ",
                        account_columns!(),
                        " FROM sf_accounts WHERE username = $1"
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
                        " FROM sf_accounts WHERE id = $1"
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
                        "UPDATE sf_accounts SET password_hash = $1, password_epoch = $2 \
                         WHERE id = $3 AND password_epoch = $4",
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

                async fn authenticators(
                    &self,
                    user_id: &UserId,
                ) -> Result<Vec<AuthenticatorRecord>> {
                    sqlx::query_as::<_, AuthenticatorRow>(
                        "SELECT id, user_id, name, sealed_secret, created_at \
                         FROM sf_authenticators WHERE user_id = $1 ORDER BY created_at, seq",
                    )
                    .bind(user_id.as_str())
                    .fetch_all(&self.reader)
                    .await
                    .map_err(unavailable("authenticators"))?
                    .into_iter()
                    .map(authenticator_from_row)
                    .collect()
                }

                /// One `SELECT`: the account joined with its authenticators.
                async fn account_and_authenticators(
                    &self,
                    user_id: &UserId,
                ) -> Result<Option<(AccountRecord, Vec<AuthenticatorRecord>)>> {
                    let rows = sqlx::query_as::<_, AccountAuthenticatorRow>(
                        ACCOUNT_AND_AUTHENTICATORS,
                    )
                    .bind(user_id.as_str())
                    .fetch_all(&self.reader)
                    .await
                    .map_err(unavailable("account_and_authenticators"))?;
                    let mut account = None;
                    let mut authenticators = Vec::new();
                    for row in rows {
                        let (id, username, hash, epoch, enabled, created_at, key_id) =
                            (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
                        if account.is_none() {
                            account = Some(account_from_row((
                                id.clone(),
                                username,
                                hash,
                                epoch,
                                enabled,
                                created_at,
                                key_id,
                            ))?);
                        }
                        if let (Some(auth_id), Some(name), Some(sealed), Some(auth_created)) =
                            (row.7, row.8, row.9, row.10)
                        {
                            authenticators.push(authenticator_from_row((
                                auth_id,
                                id,
                                name,
                                sealed,
                                auth_created,
                            ))?);
                        }
                    }
                    Ok(account.map(|a| (a, authenticators)))
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
                    match lock_account(&mut tx, user_id, CX).await? {
                        None => return Err(Error::NotFound { what: "account" }),
                        Some(true) => return Err(Error::TwoFactorAlreadyEnabled),
                        Some(false) => {}
                    }
                    sqlx::query("DELETE FROM sf_authenticators WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable(CX))?;
                    insert_authenticator(&mut tx, authenticator, CX).await?;
                    replace_codes(&mut tx, user_id, backup_codes, CX).await?;
                    sqlx::query(
                        "UPDATE sf_accounts SET two_factor_enabled = TRUE, \
                         backup_codes_key_id = $1 WHERE id = $2",
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
                    let mut tx = self.write_tx(CX).await?;
                    // The account's lock makes the count below and the insert one
                    // step: concurrent adds (from any pool or process) count one
                    // after the other.
                    match lock_account(&mut tx, authenticator.user_id.as_str(), CX).await? {
                        None => return Err(Error::NotFound { what: "account" }),
                        Some(false) => return Err(Error::TwoFactorNotEnabled),
                        Some(true) => {}
                    }
                    let count: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM sf_authenticators WHERE user_id = $1",
                    )
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
                    if lock_account(&mut tx, user_id.as_str(), CX).await?.is_none() {
                        return Ok(RemoveOutcome::NotFound);
                    }
                    let (found, total): (i64, i64) = sqlx::query_as(
                        "SELECT COUNT(*) FILTER (WHERE id = $1), COUNT(*) \
                         FROM sf_authenticators WHERE user_id = $2",
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
                    sqlx::query("DELETE FROM sf_authenticators WHERE user_id = $1 AND id = $2")
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
                        "UPDATE sf_authenticators SET sealed_secret = $1 \
                         WHERE user_id = $2 AND id = $3",
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
                    // One statement: the row is written only while it still holds
                    // `expected`.
                    let r = sqlx::query(
                        "UPDATE sf_authenticators SET sealed_secret = $1 \
                         WHERE user_id = $2 AND id = $3 AND sealed_secret = $4",
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
                    let Some(was) = lock_account(&mut tx, user_id.as_str(), CX).await? else {
                        return Ok(false);
                    };
                    for sql in [
                        "UPDATE sf_accounts SET two_factor_enabled = FALSE, \
                         backup_codes_key_id = NULL WHERE id = $1",
                        "DELETE FROM sf_authenticators WHERE user_id = $1",
                        "DELETE FROM sf_backup_codes WHERE user_id = $1",
                    ] {
                        sqlx::query(sql)
                            .bind(user_id.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(unavailable(CX))?;
                    }
                    tx.commit().await.map_err(unavailable(CX))?;
                    Ok(was)
                }

                async fn replace_backup_codes(
                    &self,
                    user_id: &UserId,
                    hashes: &[KeyedHash],
                    key_id: u32,
                ) -> Result<()> {
                    const CX: &str = "replace_backup_codes";
                    let mut tx = self.write_tx(CX).await?;
                    if lock_account(&mut tx, user_id.as_str(), CX).await?.is_none() {
                        return Err(Error::NotFound { what: "account" });
                    }
                    replace_codes(&mut tx, user_id.as_str(), hashes, CX).await?;
                    sqlx::query("UPDATE sf_accounts SET backup_codes_key_id = $1 WHERE id = $2")
                        .bind(i64::from(key_id))
                        .bind(user_id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable(CX))?;
                    tx.commit().await.map_err(unavailable(CX))
                }

                async fn consume_backup_code(
                    &self,
                    user_id: &UserId,
                    hash: &KeyedHash,
                ) -> Result<bool> {
                    let r = sqlx::query(
                        "DELETE FROM sf_backup_codes WHERE user_id = $1 AND code_hash = $2",
                    )
                    .bind(user_id.as_str())
                    .bind(hash.as_bytes().as_slice())
                    .execute(&self.writer)
                    .await
                    .map_err(unavailable("consume_backup_code"))?;
                    Ok(r.rows_affected() == 1)
                }

                async fn backup_codes_remaining(&self, user_id: &UserId) -> Result<u32> {
                    let n: i64 =
                        sqlx::query_scalar("SELECT COUNT(*) FROM sf_backup_codes WHERE user_id = $1")
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
                    const CX: &str = "append_security_event";
                    let mut tx = self.write_tx(CX).await?;
                    append_log(&mut tx, user_id, event, max_entries, forget_before).await?;
                    tx.commit().await.map_err(unavailable(CX))
                }

                async fn security_log(
                    &self,
                    user_id: &UserId,
                    limit: u32,
                ) -> Result<Vec<SecurityEvent>> {
                    sqlx::query_as::<_, SecurityEventRow>(
                        "SELECT at, kind, method, client, detail FROM sf_security_log \
                         WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
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

            impl EphemeralStore for Sql {
                async fn create_pending_login(
                    &self,
                    token: &KeyedHash,
                    login: &PendingLogin,
                ) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO sf_pending_logins \
                         (token_hash, user_id, password_epoch, attempts, expires_at) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (token_hash) DO UPDATE SET user_id = excluded.user_id, \
                         password_epoch = excluded.password_epoch, \
                         attempts = excluded.attempts, expires_at = excluded.expires_at",
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
                         WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3 \
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
                    // Missing, expired or out of attempts: burn it (if it is there).
                    sqlx::query(
                        "DELETE FROM sf_pending_logins \
                         WHERE token_hash = $1 AND (expires_at <= $2 OR attempts >= $3)",
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
                    // One statement: of concurrent takes, only the one whose DELETE
                    // removed the row gets it back.
                    let row = sqlx::query_as::<_, PendingRow>(
                        "DELETE FROM sf_pending_logins WHERE token_hash = $1 \
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
                    sqlx::query("DELETE FROM sf_pending_logins WHERE token_hash = $1")
                        .bind(token.as_bytes().as_slice())
                        .execute(&self.writer)
                        .await
                        .map_err(unavailable("delete_pending_login"))?;
                    Ok(())
                }

                async fn put_enrollment(
                    &self,
                    user_id: &UserId,
                    enrollment: &PendingEnrollment,
                ) -> Result<()> {
                    sqlx::query(
                        "INSERT INTO sf_enrollments \
                         (user_id, id, name, sealed_secret, adding, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (user_id) DO UPDATE SET id = excluded.id, \
                         name = excluded.name, sealed_secret = excluded.sealed_secret, \
                         adding = excluded.adding, expires_at = excluded.expires_at",
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

                async fn enrollment(
                    &self,
                    user_id: &UserId,
                    now: u64,
                ) -> Result<Option<PendingEnrollment>> {
                    sqlx::query_as::<_, EnrollmentRow>(
                        "SELECT id, name, sealed_secret, adding, expires_at FROM sf_enrollments \
                         WHERE user_id = $1 AND expires_at > $2",
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
                        "DELETE FROM sf_enrollments \
                         WHERE user_id = $1 AND id = $2 AND expires_at > $3",
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
                         (ceremony_key, user_id, login_hash, state, expires_at) \
                         VALUES ($1, $2, $3, $4, $5) \
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

                async fn take_ceremony(
                    &self,
                    key: &str,
                    now: u64,
                ) -> Result<Option<CeremonyRecord>> {
                    // One statement: of concurrent takes, only the one whose DELETE
                    // removed the row gets it back.
                    let row = sqlx::query_as::<_, CeremonyRow>(
                        "DELETE FROM sf_webauthn_ceremonies WHERE ceremony_key = $1 \
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
                    // A state past its keep_until reads as zero; purge_expired
                    // deletes it.
                    let row: Option<(i64, i64)> = sqlx::query_as(
                        "SELECT count, until FROM sf_throttles WHERE key = $1 AND keep_until > $2",
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
                    cas_throttle(&self.writer, key, expected, new, keep_until, now).await
                }

                async fn create_device(&self, token: &KeyedHash, device: &DeviceRecord) -> Result<()> {
                    insert_device(&self.writer, token, device).await
                }

                async fn device(&self, token: &KeyedHash, now: u64) -> Result<Option<DeviceRecord>> {
                    sqlx::query_as::<_, DeviceRow>(
                        "SELECT id, user_id, label, password_epoch, created_at, expires_at \
                         FROM sf_devices WHERE token_hash = $1 AND expires_at > $2",
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
                        "SELECT id, user_id, label, password_epoch, created_at, expires_at \
                         FROM sf_devices WHERE user_id = $1 AND expires_at > $2 \
                         ORDER BY created_at, seq",
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
                    let r = sqlx::query("DELETE FROM sf_devices WHERE user_id = $1 AND id = $2")
                        .bind(user_id.as_str())
                        .bind(id.as_str())
                        .execute(&self.writer)
                        .await
                        .map_err(unavailable("revoke_device"))?;
                    Ok(r.rows_affected() > 0)
                }

                async fn revoke_all_devices(&self, user_id: &UserId) -> Result<u32> {
                    let r = sqlx::query("DELETE FROM sf_devices WHERE user_id = $1")
                        .bind(user_id.as_str())
                        .execute(&self.writer)
                        .await
                        .map_err(unavailable("revoke_all_devices"))?;
                    Ok(count_to_u32(r.rows_affected()))
                }

                async fn create_session(
                    &self,
                    token: &KeyedHash,
                    session: &SessionRecord,
                ) -> Result<()> {
                    insert_session(&self.writer, token, session).await
                }

                async fn session(&self, token: &KeyedHash, now: u64) -> Result<Option<SessionRecord>> {
                    sqlx::query_as::<_, SessionRow>(concat!(
                        "SELECT ",
                        session_columns!(),
                        " FROM sf_sessions WHERE token_hash = $1 AND expires_at > $2"
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
                    sqlx::query("DELETE FROM sf_sessions WHERE token_hash = $1")
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
                        " FROM sf_sessions WHERE user_id = $1 AND expires_at > $2 \
                         ORDER BY created_at, seq"
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
                    let r = sqlx::query(
                        "UPDATE sf_sessions SET authenticated_at = $1 \
                         WHERE token_hash = $2 AND expires_at > $1",
                    )
                    .bind(time_to_db(at))
                    .bind(token.as_bytes().as_slice())
                    .execute(&self.writer)
                    .await
                    .map_err(unavailable("reauthenticate_session"))?;
                    Ok(r.rows_affected() > 0)
                }

                async fn delete_session_by_id(&self, user_id: &UserId, id: &SessionId) -> Result<bool> {
                    let r = sqlx::query("DELETE FROM sf_sessions WHERE user_id = $1 AND id = $2")
                        .bind(user_id.as_str())
                        .bind(id.as_str())
                        .execute(&self.writer)
                        .await
                        .map_err(unavailable("delete_session_by_id"))?;
                    Ok(r.rows_affected() > 0)
                }

                async fn delete_sessions(
                    &self,
                    user_id: &UserId,
                    keep: Option<&SessionId>,
                ) -> Result<u32> {
                    // One statement: every session of the account that exists when
                    // it runs.
                    let r = match keep {
                        Some(keep) => {
                            sqlx::query("DELETE FROM sf_sessions WHERE user_id = $1 AND id <> $2")
                                .bind(user_id.as_str())
                                .bind(keep.as_str())
                        }
                        None => sqlx::query("DELETE FROM sf_sessions WHERE user_id = $1")
                            .bind(user_id.as_str()),
                    }
                    .execute(&self.writer)
                    .await
                    .map_err(unavailable("delete_sessions"))?;
                    Ok(count_to_u32(r.rows_affected()))
                }

                /// The inherent `purge_expired`: also counts the security-log rows
                /// it forgets.
                async fn purge_expired(&self, now: u64) -> Result<u64> {
                    Sql::purge_expired(self, now).await
                }
            }

            /// The second-factor step: one `SELECT` that writes nothing, and one
            /// write transaction that counts the attempt and writes the decision.
            impl Store for Sql {
                async fn read_factor_step(
                    &self,
                    tokens: &[KeyedHash],
                    max_attempts: u32,
                    now: u64,
                ) -> Result<Option<FactorStepView>> {
                    const CX: &str = "read_factor_step";
                    let [lockout, budget] = throttle_key_prefixes();
                    for token in tokens {
                        let rows = sqlx::query(STEP_READ)
                            .bind(token.as_bytes().as_slice())
                            .bind(time_to_db(now))
                            .bind(i64::from(max_attempts))
                            .bind(lockout.as_str())
                            .bind(budget.as_str())
                            .fetch_all(&self.reader)
                            .await
                            .map_err(unavailable(CX))?;
                        if let Some(view) = step_view(*token, &rows)? {
                            return Ok(Some(view));
                        }
                    }
                    Ok(None)
                }

                async fn commit_factor_step(
                    &self,
                    c: &FactorCommit<'_>,
                ) -> Result<FactorCommitted> {
                    const CX: &str = "commit_factor_step";
                    let token = c.token.as_bytes().as_slice();
                    let max = i64::from(c.max_attempts);
                    // Every early return below drops the transaction, which rolls it
                    // back: nothing is written.
                    let mut tx = self.write_tx(CX).await?;
                    let mut spent = false;
                    for m in c.spend {
                        if advance_step(&mut *tx, &m.authenticator, m.step, m.keep_until).await? {
                            spent = true;
                            break;
                        }
                    }
                    let writes = if spent { &c.on_success } else { &c.on_failure };
                    // The attempt on the pending login, counted here (the read wrote
                    // nothing) and only while one is left: of N concurrent commits on
                    // a login with k attempts left, at most k go on. A login that is
                    // taken (the code spent) or burnt goes in the same statement.
                    let take = spent || writes.take_pending;
                    let attempts: Option<i64> = sqlx::query_scalar(if take {
                        "DELETE FROM sf_pending_logins \
                         WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3 \
                         RETURNING attempts + 1"
                    } else {
                        "UPDATE sf_pending_logins SET attempts = attempts + 1 \
                         WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3 \
                         RETURNING attempts"
                    })
                    .bind(token)
                    .bind(time_to_db(c.now))
                    .bind(max)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(unavailable(CX))?;
                    let Some(attempts) = attempts else {
                        return Ok(FactorCommitted::Expired);
                    };
                    if !take && attempts >= max {
                        // Its last attempt failed: burnt.
                        sqlx::query("DELETE FROM sf_pending_logins WHERE token_hash = $1")
                            .bind(token)
                            .execute(&mut *tx)
                            .await
                            .map_err(unavailable(CX))?;
                    }
                    // Each throttle a compare-and-set against the state the step read,
                    // straight to the outcome's state; the rows stay locked until the
                    // commit.
                    for t in c.throttles {
                        let (state, keep) = if spent { t.on_success } else { t.counted };
                        if !cas_throttle(&mut *tx, t.key, t.expected, state, keep, c.now).await? {
                            return Ok(FactorCommitted::Conflict);
                        }
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
        }
    };
}

#[cfg(feature = "sqlite")]
sql_store!(sqlite_store, SqliteDialect);
#[cfg(feature = "postgres")]
sql_store!(pg_store, PgDialect);
