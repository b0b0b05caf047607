//! Helpers shared by the SQL stores: integer conversions and error mapping.
//!
//! SQL integers are signed 64-bit, the store records use `u64`. Times (Unix seconds)
//! are clamped into `0..=i64::MAX`: a time past year 292 billion is "never" either
//! way. Other values (steps, epochs) are converted exactly, and a value that does not
//! fit is an [`Error::Internal`](crate::Error::Internal), never a panic.

use super::{
    AccountRecord, AuthenticatorId, AuthenticatorRecord, CeremonyRecord, DeviceId, DeviceRecord,
    PendingEnrollment, PendingLogin, SessionId, SessionRecord, ThrottleState, UserId,
};
use crate::auth::AuthMethod;
use crate::password::PasswordHash;
use crate::secret::{KeyedHash, SealedSecret};
use crate::security_log::{SecurityEvent, SecurityEventKind};
use crate::{Error, Result};

/// A Unix time for the database, clamped to `i64::MAX`.
pub(crate) fn time_to_db(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

/// An exact `u64` for the database (steps, epochs).
pub(crate) fn u64_to_db(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::Internal("value too large for the SQL store"))
}

/// A `u64` read back from the database; a negative value is a corrupt row.
pub(crate) fn u64_from_db(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::Internal("negative value in a SQL store row"))
}

/// A `u32` read back from the database.
pub(crate) fn u32_from_db(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Internal("counter out of range in a SQL store row"))
}

/// A count of rows as `u32`, saturating.
pub(crate) fn count_to_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Maps a driver error to [`Error::Unavailable`] for `context`.
pub(crate) fn unavailable(context: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::unavailable(context, e)
}

/// Whether a driver error is a unique-constraint violation.
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Maps a migration error to [`Error::Unavailable`].
pub(crate) fn migrate_error(e: sqlx::migrate::MigrateError) -> Error {
    Error::unavailable("migrate", e)
}

/// Builds the crate's migrator for one backend: our own history table, so that the
/// application's own sqlx migrations (`_sqlx_migrations`) are not disturbed.
pub(crate) fn migrator(
    migrations: &[(i64, &'static str, &'static str)],
) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    let list = migrations
        .iter()
        .map(|&(version, description, sql)| {
            sqlx::migrate::Migration::new(
                version,
                description.into(),
                sqlx::migrate::MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut m = sqlx::migrate::Migrator::with_migrations(list);
    m.dangerous_set_table_name("sf_schema_migrations");
    m
}

/// The columns of an [`AccountRow`], for `concat!` into a `SELECT`.
macro_rules! account_columns {
    () => {
        "id, username, password_hash, password_epoch, two_factor_enabled, created_at, \
         backup_codes_key_id"
    };
}
pub(crate) use account_columns;

/// An account row: id, username, password hash, epoch, 2FA flag, created at, backup
/// codes key id.
pub(crate) type AccountRow = (String, String, String, i64, bool, i64, Option<i64>);

pub(crate) fn account_from_row(r: AccountRow) -> Result<AccountRecord> {
    let (id, username, hash, epoch, enabled, created_at, key_id) = r;
    Ok(AccountRecord {
        id: UserId::new(id),
        username,
        password_hash: PasswordHash::from_phc(&hash)
            .map_err(|_| Error::Internal("corrupt password hash in a SQL store row"))?,
        password_epoch: u64_from_db(epoch)?,
        two_factor_enabled: enabled,
        backup_codes_key_id: key_id
            .map(|k| {
                u32::try_from(k).map_err(|_| {
                    Error::Internal("backup codes key id out of range in a SQL store row")
                })
            })
            .transpose()?,
        created_at: u64_from_db(created_at)?,
    })
}

/// An authenticator row: id, user id, name, sealed secret, created at.
pub(crate) type AuthenticatorRow = (String, String, String, Vec<u8>, i64);

pub(crate) fn authenticator_from_row(r: AuthenticatorRow) -> Result<AuthenticatorRecord> {
    let (id, user_id, name, sealed, created_at) = r;
    Ok(AuthenticatorRecord {
        id: AuthenticatorId::new(id),
        user_id: UserId::new(user_id),
        name,
        sealed_secret: SealedSecret::from_bytes(sealed)?,
        created_at: u64_from_db(created_at)?,
    })
}

/// A pending-login row: user id, epoch, attempts, expires at.
pub(crate) type PendingRow = (String, i64, i64, i64);

pub(crate) fn pending_from_row(r: PendingRow) -> Result<PendingLogin> {
    let (user_id, epoch, attempts, expires_at) = r;
    Ok(PendingLogin {
        user_id: UserId::new(user_id),
        password_epoch: u64_from_db(epoch)?,
        attempts: u32_from_db(attempts)?,
        expires_at: u64_from_db(expires_at)?,
    })
}

/// An enrollment row: id, name, sealed secret, adding, expires at.
pub(crate) type EnrollmentRow = (String, String, Vec<u8>, bool, i64);

pub(crate) fn enrollment_from_row(r: EnrollmentRow) -> Result<PendingEnrollment> {
    let (id, name, sealed, adding, expires_at) = r;
    Ok(PendingEnrollment {
        id,
        name,
        sealed_secret: SealedSecret::from_bytes(sealed)?,
        adding,
        expires_at: u64_from_db(expires_at)?,
    })
}

/// A WebAuthn ceremony row: user id, pending-login hash, sealed state, expires at.
pub(crate) type CeremonyRow = (String, Option<Vec<u8>>, Vec<u8>, i64);

pub(crate) fn ceremony_from_row(r: CeremonyRow) -> Result<CeremonyRecord> {
    let (user_id, login, state, expires_at) = r;
    let login = match login {
        Some(bytes) => Some(KeyedHash(<[u8; 32]>::try_from(bytes.as_slice()).map_err(
            |_| Error::Internal("stored pending-login hash is not 32 bytes"),
        )?)),
        None => None,
    };
    Ok(CeremonyRecord {
        user_id: UserId::new(user_id),
        login,
        state,
        expires_at: u64_from_db(expires_at)?,
    })
}

/// A device row: id, user id, label, epoch, created at, expires at.
pub(crate) type DeviceRow = (String, String, String, i64, i64, i64);

pub(crate) fn device_from_row(r: DeviceRow) -> Result<DeviceRecord> {
    let (id, user_id, label, epoch, created_at, expires_at) = r;
    Ok(DeviceRecord {
        id: DeviceId::new(id),
        user_id: UserId::new(user_id),
        label,
        password_epoch: u64_from_db(epoch)?,
        created_at: u64_from_db(created_at)?,
        expires_at: u64_from_db(expires_at)?,
    })
}

/// The columns of a [`SessionRow`], for `concat!` into a `SELECT` or `RETURNING`.
macro_rules! session_columns {
    () => {
        "id, user_id, password_epoch, method, created_at, authenticated_at, expires_at"
    };
}
pub(crate) use session_columns;

/// A session row: id, user id, epoch, method, created at, authenticated at, expires at.
pub(crate) type SessionRow = (String, String, i64, String, i64, i64, i64);

pub(crate) fn session_from_row(r: SessionRow) -> Result<SessionRecord> {
    let (id, user_id, epoch, method, created_at, authenticated_at, expires_at) = r;
    Ok(SessionRecord {
        id: SessionId::new(id),
        user_id: UserId::new(user_id),
        password_epoch: u64_from_db(epoch)?,
        method: method_from_db(&method)?,
        created_at: u64_from_db(created_at)?,
        authenticated_at: u64_from_db(authenticated_at)?,
        expires_at: u64_from_db(expires_at)?,
    })
}

fn method_from_db(name: &str) -> Result<AuthMethod> {
    AuthMethod::parse(name).ok_or(Error::Internal("unknown auth method in a SQL store row"))
}

/// A security-log row: at, kind, method, client, detail.
pub(crate) type SecurityEventRow = (i64, String, Option<String>, Option<String>, Option<String>);

pub(crate) fn security_event_from_row(r: SecurityEventRow) -> Result<SecurityEvent> {
    let (at, kind, method, client, detail) = r;
    Ok(SecurityEvent {
        at: u64_from_db(at)?,
        kind: SecurityEventKind::parse(&kind).ok_or(Error::Internal(
            "unknown security event kind in a SQL store row",
        ))?,
        method: method.as_deref().map(method_from_db).transpose()?,
        client,
        detail,
    })
}

/// A throttle row: count, until.
pub(crate) fn throttle_from_row(r: (i64, i64)) -> Result<ThrottleState> {
    Ok(ThrottleState {
        count: u32_from_db(r.0)?,
        until: u64_from_db(r.1)?,
    })
}
