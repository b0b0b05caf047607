//! The PostgreSQL store (feature `postgres`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection};

use super::sql_common::*;
use super::*;
use crate::Error;

/// The migrations shipped with the crate, applied by [`PgStore::migrate`].
const MIGRATIONS: &[(i64, &str, &str)] = &[
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

/// How long [`PgStore::connect`] waits for a connection before `unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

type PgTx = sqlx::Transaction<'static, sqlx::Postgres>;

/// A [`Store`] in PostgreSQL: accounts and ephemeral state shared by every instance
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
/// [`EphemeralStore::purge_expired`], which calls it) now and then to delete them.
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
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

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
        let store = PgStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    /// Wraps a pool you configured yourself. Call [`migrate`](Self::migrate) once
    /// before use.
    pub fn from_pool(pool: PgPool) -> Self {
        PgStore { pool }
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Applies the crate's migrations that have not been applied yet, under an
    /// advisory lock so that instances starting together do not collide. The
    /// history is kept in the table `sf_schema_migrations`, apart from your
    /// application's own sqlx migrations. Idempotent.
    pub async fn migrate(&self) -> Result<()> {
        migrator(MIGRATIONS)
            .run(&self.pool)
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
        let mut total = 0;
        if let Some(forget) = forget {
            total += sqlx::query("DELETE FROM sf_security_log WHERE at <= $1")
                .bind(time_to_db(forget))
                .execute(&self.pool)
                .await
                .map_err(unavailable("purge_expired"))?
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
                .execute(&self.pool)
                .await
                .map_err(unavailable("purge_expired"))?
                .rows_affected();
        }
        Ok(total)
    }

    async fn tx(&self, context: &'static str) -> Result<PgTx> {
        self.pool.begin().await.map_err(unavailable(context))
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

/// Locks the account's row for the rest of the transaction and returns its 2FA
/// flag, `None` when there is no such account. Every multi-statement change of an
/// account's authenticators or backup codes starts here, so they run one at a time
/// per account.
async fn lock_account(tx: &mut PgTx, user_id: &str, context: &'static str) -> Result<Option<bool>> {
    sqlx::query_scalar("SELECT two_factor_enabled FROM sf_accounts WHERE id = $1 FOR UPDATE")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(unavailable(context))
}

async fn insert_authenticator(
    tx: &mut PgTx,
    a: &AuthenticatorRecord,
    context: &'static str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sf_authenticators (id, user_id, name, sealed_secret, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
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
    tx: &mut PgTx,
    user_id: &str,
    hashes: &[KeyedHash],
    context: &'static str,
) -> Result<()> {
    sqlx::query("DELETE FROM sf_backup_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(unavailable(context))?;
    let codes: Vec<[u8; 32]> = hashes.iter().map(|h| h.0).collect();
    sqlx::query(
        "INSERT INTO sf_backup_codes (user_id, code_hash) \
         SELECT $1, h FROM UNNEST($2::bytea[]) AS h ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(codes)
    .execute(&mut **tx)
    .await
    .map_err(unavailable(context))?;
    Ok(())
}

impl AccountStore for PgStore {
    async fn create_account(&self, account: &AccountRecord) -> Result<()> {
        let r = sqlx::query(
            "INSERT INTO sf_accounts \
             (id, username, password_hash, password_epoch, two_factor_enabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (username) DO NOTHING",
        )
        .bind(account.id.as_str())
        .bind(account.username.as_str())
        .bind(account.password_hash.as_str())
        .bind(u64_to_db(account.password_epoch)?)
        .bind(account.two_factor_enabled)
        .bind(time_to_db(account.created_at))
        .execute(&self.pool)
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
            " FROM sf_accounts WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
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
        .fetch_optional(&self.pool)
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
        // One statement: a compare-and-set on the epoch. A concurrent writer of the
        // row makes this one wait and re-check the epoch against the new row version.
        let r = sqlx::query(
            "UPDATE sf_accounts SET password_hash = $1, password_epoch = $2 \
             WHERE id = $3 AND password_epoch = $4",
        )
        .bind(hash.as_str())
        .bind(u64_to_db(new_epoch)?)
        .bind(user_id.as_str())
        .bind(u64_to_db(expected_epoch)?)
        .execute(&self.pool)
        .await
        .map_err(unavailable("set_password"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn authenticators(&self, user_id: &UserId) -> Result<Vec<AuthenticatorRecord>> {
        sqlx::query_as::<_, AuthenticatorRow>(
            "SELECT id, user_id, name, sealed_secret, created_at FROM sf_authenticators \
             WHERE user_id = $1 ORDER BY created_at, seq",
        )
        .bind(user_id.as_str())
        .fetch_all(&self.pool)
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
        let mut tx = self.tx(CX).await?;
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
            "UPDATE sf_accounts SET two_factor_enabled = TRUE, backup_codes_key_id = $1 \
             WHERE id = $2",
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
        let mut tx = self.tx(CX).await?;
        // The account's row lock makes the count below and the insert one step:
        // concurrent adds (from any pool or process) count one after the other.
        match lock_account(&mut tx, authenticator.user_id.as_str(), CX).await? {
            None => return Err(Error::NotFound { what: "account" }),
            Some(false) => return Err(Error::TwoFactorNotEnabled),
            Some(true) => {}
        }
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sf_authenticators WHERE user_id = $1")
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
        let mut tx = self.tx(CX).await?;
        if lock_account(&mut tx, user_id.as_str(), CX).await?.is_none() {
            return Ok(RemoveOutcome::NotFound);
        }
        let (found, total): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE id = $1), COUNT(*) FROM sf_authenticators \
             WHERE user_id = $2",
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
            "UPDATE sf_authenticators SET sealed_secret = $1 WHERE user_id = $2 AND id = $3",
        )
        .bind(sealed_secret.as_bytes())
        .bind(user_id.as_str())
        .bind(id.as_str())
        .execute(&self.pool)
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
            "UPDATE sf_authenticators SET sealed_secret = $1 \
             WHERE user_id = $2 AND id = $3 AND sealed_secret = $4",
        )
        .bind(new.as_bytes())
        .bind(user_id.as_str())
        .bind(id.as_str())
        .bind(expected.as_bytes())
        .execute(&self.pool)
        .await
        .map_err(unavailable("update_authenticator_secret"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn disable_two_factor(&self, user_id: &UserId) -> Result<bool> {
        const CX: &str = "disable_two_factor";
        let mut tx = self.tx(CX).await?;
        let Some(was) = lock_account(&mut tx, user_id.as_str(), CX).await? else {
            return Ok(false);
        };
        for sql in [
            "UPDATE sf_accounts SET two_factor_enabled = FALSE, backup_codes_key_id = NULL \
             WHERE id = $1",
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
        let mut tx = self.tx(CX).await?;
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

    async fn consume_backup_code(&self, user_id: &UserId, hash: &KeyedHash) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sf_backup_codes WHERE user_id = $1 AND code_hash = $2")
            .bind(user_id.as_str())
            .bind(hash.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(unavailable("consume_backup_code"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn backup_codes_remaining(&self, user_id: &UserId) -> Result<u32> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sf_backup_codes WHERE user_id = $1")
            .bind(user_id.as_str())
            .fetch_one(&self.pool)
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
        let mut tx = self.tx(CX).await?;
        append_log(&mut tx, user_id, event, max_entries, forget_before).await?;
        tx.commit().await.map_err(unavailable(CX))
    }

    async fn security_log(&self, user_id: &UserId, limit: u32) -> Result<Vec<SecurityEvent>> {
        sqlx::query_as::<_, SecurityEventRow>(
            "SELECT at, kind, method, client, detail FROM sf_security_log \
             WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable("security_log"))?
        .into_iter()
        .map(security_event_from_row)
        .collect()
    }
}

/// The second-factor commit is one transaction: one WAL flush.
impl Store for PgStore {
    async fn commit_factor_step(&self, c: &FactorCommit<'_>) -> Result<FactorCommitted> {
        const CX: &str = "commit_factor_step";
        let now = time_to_db(c.now);
        let mut tx = self.tx(CX).await?;
        // Count the attempt first, each throttle a compare-and-set against the state
        // the step read (a concurrent writer of the same row makes this one wait and
        // re-check); the rows stay locked until the commit.
        for t in c.throttles {
            let (state, keep) = t.counted;
            if !cas_throttle(&mut *tx, t.key, t.expected, state, keep, c.now).await? {
                // Dropping the transaction rolls it back: nothing was written.
                return Ok(FactorCommitted::Conflict);
            }
        }
        let mut spent = false;
        if !c.spend.is_empty() {
            let live: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM sf_pending_logins \
                 WHERE token_hash = $1 AND expires_at > $2 FOR UPDATE",
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
            sqlx::query("DELETE FROM sf_pending_logins WHERE token_hash = $1")
                .bind(c.token.as_bytes().as_slice())
                .execute(&mut *tx)
                .await
                .map_err(unavailable(CX))?;
        }
        if spent {
            // The rows are ours until the commit: plain writes.
            for t in c.throttles {
                let (state, keep) = t.on_success;
                if state == t.counted.0 {
                    continue;
                }
                let q = if state == ThrottleState::default() {
                    sqlx::query("DELETE FROM sf_throttles WHERE key = $1").bind(t.key)
                } else {
                    sqlx::query(
                        "UPDATE sf_throttles SET count = $1, until = $2, keep_until = $3 \
                         WHERE key = $4",
                    )
                    .bind(i64::from(state.count))
                    .bind(time_to_db(state.until))
                    .bind(time_to_db(keep))
                    .bind(t.key)
                };
                q.execute(&mut *tx).await.map_err(unavailable(CX))?;
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

impl EphemeralStore for PgStore {
    async fn create_pending_login(&self, token: &KeyedHash, login: &PendingLogin) -> Result<()> {
        sqlx::query(
            "INSERT INTO sf_pending_logins \
             (token_hash, user_id, password_epoch, attempts, expires_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (token_hash) DO UPDATE SET user_id = EXCLUDED.user_id, \
             password_epoch = EXCLUDED.password_epoch, attempts = EXCLUDED.attempts, \
             expires_at = EXCLUDED.expires_at",
        )
        .bind(token.as_bytes().as_slice())
        .bind(login.user_id.as_str())
        .bind(u64_to_db(login.password_epoch)?)
        .bind(i64::from(login.attempts))
        .bind(time_to_db(login.expires_at))
        .execute(&self.pool)
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
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable(CX))?;
        if let Some(row) = row {
            return pending_from_row(row).map(Some);
        }
        // Missing, expired or out of attempts: burn it (if it is there at all).
        sqlx::query(
            "DELETE FROM sf_pending_logins \
             WHERE token_hash = $1 AND (expires_at <= $2 OR attempts >= $3)",
        )
        .bind(token.as_bytes().as_slice())
        .bind(now)
        .bind(i64::from(max_attempts))
        .execute(&self.pool)
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
            "DELETE FROM sf_pending_logins WHERE token_hash = $1 \
             RETURNING user_id, password_epoch, attempts, expires_at",
        )
        .bind(token.as_bytes().as_slice())
        .fetch_optional(&self.pool)
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
            .execute(&self.pool)
            .await
            .map_err(unavailable("delete_pending_login"))?;
        Ok(())
    }

    async fn put_enrollment(&self, user_id: &UserId, enrollment: &PendingEnrollment) -> Result<()> {
        sqlx::query(
            "INSERT INTO sf_enrollments (user_id, id, name, sealed_secret, adding, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (user_id) DO UPDATE SET id = EXCLUDED.id, name = EXCLUDED.name, \
             sealed_secret = EXCLUDED.sealed_secret, adding = EXCLUDED.adding, \
             expires_at = EXCLUDED.expires_at",
        )
        .bind(user_id.as_str())
        .bind(enrollment.id.as_str())
        .bind(enrollment.name.as_str())
        .bind(enrollment.sealed_secret.as_bytes())
        .bind(enrollment.adding)
        .bind(time_to_db(enrollment.expires_at))
        .execute(&self.pool)
        .await
        .map_err(unavailable("put_enrollment"))?;
        Ok(())
    }

    async fn enrollment(&self, user_id: &UserId, now: u64) -> Result<Option<PendingEnrollment>> {
        sqlx::query_as::<_, EnrollmentRow>(
            "SELECT id, name, sealed_secret, adding, expires_at FROM sf_enrollments \
             WHERE user_id = $1 AND expires_at > $2",
        )
        .bind(user_id.as_str())
        .bind(time_to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("enrollment"))?
        .map(enrollment_from_row)
        .transpose()
    }

    async fn take_enrollment(&self, user_id: &UserId, id: &str, now: u64) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM sf_enrollments WHERE user_id = $1 AND id = $2 AND expires_at > $3",
        )
        .bind(user_id.as_str())
        .bind(id)
        .bind(time_to_db(now))
        .execute(&self.pool)
        .await
        .map_err(unavailable("take_enrollment"))?;
        Ok(r.rows_affected() == 1)
    }

    async fn put_ceremony(&self, key: &str, ceremony: &CeremonyRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO sf_webauthn_ceremonies \
             (ceremony_key, user_id, login_hash, state, expires_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (ceremony_key) DO UPDATE SET user_id = EXCLUDED.user_id, \
             login_hash = EXCLUDED.login_hash, state = EXCLUDED.state, \
             expires_at = EXCLUDED.expires_at",
        )
        .bind(key)
        .bind(ceremony.user_id.as_str())
        .bind(ceremony.login.as_ref().map(|h| h.as_bytes().to_vec()))
        .bind(ceremony.state.as_slice())
        .bind(time_to_db(ceremony.expires_at))
        .execute(&self.pool)
        .await
        .map_err(unavailable("put_ceremony"))?;
        Ok(())
    }

    async fn take_ceremony(&self, key: &str, now: u64) -> Result<Option<CeremonyRecord>> {
        // One statement: of concurrent takes, only the one whose DELETE removed the
        // row gets it back.
        let row = sqlx::query_as::<_, CeremonyRow>(
            "DELETE FROM sf_webauthn_ceremonies WHERE ceremony_key = $1 \
             RETURNING user_id, login_hash, state, expires_at",
        )
        .bind(key)
        .fetch_optional(&self.pool)
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
        advance_step(&self.pool, id, step, keep_until).await
    }

    async fn throttle(&self, key: &str, now: u64) -> Result<ThrottleState> {
        // A state past its keep_until reads as zero; purge_expired deletes it.
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT count, until FROM sf_throttles WHERE key = $1 AND keep_until > $2",
        )
        .bind(key)
        .bind(time_to_db(now))
        .fetch_optional(&self.pool)
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
        let zero = ThrottleState::default();
        if expected == zero && new == zero {
            // Nothing to write; succeeds iff the state is zero right now.
            return Ok(self.throttle(key, now).await? == zero);
        }
        cas_throttle(&self.pool, key, expected, new, keep_until, now).await
    }

    async fn create_device(&self, token: &KeyedHash, device: &DeviceRecord) -> Result<()> {
        insert_device(&self.pool, token, device).await
    }

    async fn device(&self, token: &KeyedHash, now: u64) -> Result<Option<DeviceRecord>> {
        sqlx::query_as::<_, DeviceRow>(
            "SELECT id, user_id, label, password_epoch, created_at, expires_at FROM sf_devices \
             WHERE token_hash = $1 AND expires_at > $2",
        )
        .bind(token.as_bytes().as_slice())
        .bind(time_to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("device"))?
        .map(device_from_row)
        .transpose()
    }

    async fn devices(&self, user_id: &UserId, now: u64) -> Result<Vec<DeviceRecord>> {
        sqlx::query_as::<_, DeviceRow>(
            "SELECT id, user_id, label, password_epoch, created_at, expires_at FROM sf_devices \
             WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at, seq",
        )
        .bind(user_id.as_str())
        .bind(time_to_db(now))
        .fetch_all(&self.pool)
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
            .execute(&self.pool)
            .await
            .map_err(unavailable("revoke_device"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn revoke_all_devices(&self, user_id: &UserId) -> Result<u32> {
        let r = sqlx::query("DELETE FROM sf_devices WHERE user_id = $1")
            .bind(user_id.as_str())
            .execute(&self.pool)
            .await
            .map_err(unavailable("revoke_all_devices"))?;
        Ok(count_to_u32(r.rows_affected()))
    }

    async fn create_session(&self, token: &KeyedHash, session: &SessionRecord) -> Result<()> {
        insert_session(&self.pool, token, session).await
    }

    async fn session(&self, token: &KeyedHash, now: u64) -> Result<Option<SessionRecord>> {
        sqlx::query_as::<_, SessionRow>(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sf_sessions WHERE token_hash = $1 AND expires_at > $2"
        ))
        .bind(token.as_bytes().as_slice())
        .bind(time_to_db(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable("session"))?
        .map(session_from_row)
        .transpose()
    }

    async fn delete_session(&self, token: &KeyedHash) -> Result<()> {
        sqlx::query("DELETE FROM sf_sessions WHERE token_hash = $1")
            .bind(token.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(unavailable("delete_session"))?;
        Ok(())
    }

    async fn sessions(&self, user_id: &UserId, now: u64) -> Result<Vec<SessionRecord>> {
        sqlx::query_as::<_, SessionRow>(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sf_sessions WHERE user_id = $1 AND expires_at > $2 ORDER BY created_at, seq"
        ))
        .bind(user_id.as_str())
        .bind(time_to_db(now))
        .fetch_all(&self.pool)
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
        .execute(&self.pool)
        .await
        .map_err(unavailable("reauthenticate_session"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_session_by_id(&self, user_id: &UserId, id: &SessionId) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sf_sessions WHERE user_id = $1 AND id = $2")
            .bind(user_id.as_str())
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(unavailable("delete_session_by_id"))?;
        Ok(r.rows_affected() > 0)
    }

    async fn delete_sessions(&self, user_id: &UserId, keep: Option<&SessionId>) -> Result<u32> {
        // One statement: every session of the account committed when it starts.
        let r = match keep {
            Some(keep) => sqlx::query("DELETE FROM sf_sessions WHERE user_id = $1 AND id <> $2")
                .bind(user_id.as_str())
                .bind(keep.as_str()),
            None => {
                sqlx::query("DELETE FROM sf_sessions WHERE user_id = $1").bind(user_id.as_str())
            }
        }
        .execute(&self.pool)
        .await
        .map_err(unavailable("delete_sessions"))?;
        Ok(count_to_u32(r.rows_affected()))
    }

    /// [`PgStore::purge_expired`]: also counts the security-log rows it forgets.
    async fn purge_expired(&self, now: u64) -> Result<u64> {
        PgStore::purge_expired(self, now).await
    }
}

/// Appends a security-log entry and trims the account's log, inside a transaction.
async fn append_log(
    tx: &mut PgTx,
    user_id: &UserId,
    event: &SecurityEvent,
    max_entries: u32,
    forget_before: u64,
) -> Result<()> {
    const CX: &str = "append_security_event";
    // Appends to one account's log run one at a time (so the trim below keeps
    // exactly the newest `max_entries` and ids grow in commit order). NO KEY
    // UPDATE does not block the foreign-key checks of authenticator inserts.
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM sf_accounts WHERE id = $1 FOR NO KEY UPDATE")
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
    // Beyond the newest `max_entries`, or older than the horizon.
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

/// Raises an authenticator's replay mark to `step` if it is greater.
async fn advance_step<'e>(
    ex: impl sqlx::PgExecutor<'e>,
    id: &AuthenticatorId,
    step: u64,
    keep_until: u64,
) -> Result<bool> {
    // One statement: inserts the first mark, or raises the mark only if the new
    // step is greater. A concurrent writer of the same row makes this one wait and
    // re-check the WHERE against the new row, so equal steps have one winner.
    // RETURNING yields a row only when a row was written.
    let row: Option<i64> = sqlx::query_scalar(
        "INSERT INTO sf_authenticator_steps (authenticator_id, last_step, keep_until) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (authenticator_id) DO UPDATE \
             SET last_step = EXCLUDED.last_step, keep_until = EXCLUDED.keep_until \
             WHERE sf_authenticator_steps.last_step < EXCLUDED.last_step \
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
    ex: impl sqlx::PgExecutor<'e>,
    token: &KeyedHash,
    device: &DeviceRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sf_devices \
             (token_hash, id, user_id, label, password_epoch, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (token_hash) DO UPDATE SET id = EXCLUDED.id, \
             user_id = EXCLUDED.user_id, label = EXCLUDED.label, \
             password_epoch = EXCLUDED.password_epoch, created_at = EXCLUDED.created_at, \
             expires_at = EXCLUDED.expires_at",
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
    ex: impl sqlx::PgExecutor<'e>,
    token: &KeyedHash,
    session: &SessionRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sf_sessions \
             (token_hash, id, user_id, password_epoch, method, created_at, authenticated_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (token_hash) DO UPDATE SET id = EXCLUDED.id, \
             user_id = EXCLUDED.user_id, password_epoch = EXCLUDED.password_epoch, \
             method = EXCLUDED.method, created_at = EXCLUDED.created_at, \
             authenticated_at = EXCLUDED.authenticated_at, expires_at = EXCLUDED.expires_at",
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

/// The compare-and-set of a throttle, one statement (not from the zero state to the
/// zero state). The zero state is never stored: a missing row, or a row past its
/// keep_until, is zero. Every write below is one statement whose condition includes
/// the row's keep_until, so the compare-and-set holds for expired rows too.
async fn cas_throttle<'e>(
    ex: impl sqlx::PgExecutor<'e>,
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
        (true, true) => return Err(Error::Internal("throttle CAS from zero to zero")),
        // Inserts, or replaces an expired row (the conflict update's WHERE).
        (true, false) => sqlx::query(
            "INSERT INTO sf_throttles (count, until, keep_until, key) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO UPDATE \
                 SET count = EXCLUDED.count, until = EXCLUDED.until, \
                 keep_until = EXCLUDED.keep_until WHERE sf_throttles.keep_until <= $5",
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
