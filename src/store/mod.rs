//! Storage traits and their atomicity contract.
//!
//! The flows in [`Service`](crate::Service) keep all of their state in a store. A store
//! is split in two traits so that durable data and short-lived state can live in
//! different places (accounts in SQL, pending logins in Redis, say):
//!
//! - [`AccountStore`]: accounts, authenticators (sealed TOTP secrets) and backup-code
//!   hashes — durable data.
//! - [`EphemeralStore`]: pending logins, pending enrollments, replay marks, throttles,
//!   trusted devices and sessions — state with an expiry.
//!
//! [`Store`] is both halves plus the unit-of-work operations of the hot paths (one
//! read and one commit for the second-factor step), which have provided
//! implementations: a type with both halves needs only `impl Store for MyStore {}`.
//! [`Combined`] glues two different stores together, and [`MemoryStore`] implements
//! both in memory. `SqliteStore` and `PgStore` (features `sqlite` and `postgres`)
//! are one `SqlStore`, written once over two `Dialect`s.
//!
//! # The atomicity contract
//!
//! The security of the flows rests on a handful of operations being **atomic**: when
//! several callers (tasks, processes, servers sharing one database) race on the same
//! key, exactly one of them wins. Each such method says so in its docs, under
//! "Atomicity". A store that cannot give that guarantee must not implement the trait.
//! The conformance suite (feature `conformance`) checks every contract, with real
//! races.
//!
//! Expiry: methods that take `now` treat a record whose `expires_at <= now` (a
//! throttle whose `keep_until <= now`) as absent. Stores may delete expired records
//! lazily, with native TTLs, or in [`EphemeralStore::purge_expired`].
//!
//! Errors: a store that cannot be reached, or that fails mid-operation, returns
//! [`Error::Unavailable`](crate::Error::Unavailable) (see
//! [`Error::unavailable`](crate::Error::unavailable)) and must leave no partial state
//! behind. The only other errors a store returns are the ones its methods document.
//!
//! # Bringing your own users table
//!
//! A service that already has a users table implements [`AccountStore`] over it: map
//! [`UserId`] to your primary key (as a string), keep the password hash and the
//! `password_epoch` in two columns, and add two small tables for authenticators and
//! backup-code hashes. The ephemeral half can come from [`MemoryStore`] (one
//! process) or a Redis or SQL store (several), joined with [`Combined`]:
//!
//! ```
//! use secondfactor::store::{Combined, MemoryStore};
//!
//! // In a real service the first half would be your own `AccountStore`.
//! let store = Combined::new(MemoryStore::new(), MemoryStore::new());
//! # let _ = store;
//! ```
//!
//! Every method returns `impl Future<Output = …> + Send`, so the traits work from
//! multi-threaded tokio handlers and from actix; implement them with `async fn`.

use std::future::Future;

use crate::Result;
use crate::auth::AuthMethod;
use crate::password::PasswordHash;
use crate::secret::{KeyedHash, SealedSecret};
use crate::security_log::SecurityEvent;

mod combined;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql_common;
#[cfg(feature = "sqlite")]
mod sqlite;
mod unit;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::RedisStore;
pub use combined::Combined;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use postgres::PgStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use sql::PgDialect;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sql::SqliteDialect;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "sqlite", feature = "postgres"))))]
pub use sql::{Dialect, SqlStore};
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub use sqlite::SqliteStore;
pub use unit::{
    FactorCommit, FactorCommitted, FactorEphemeralView, FactorStepView, OutcomeWrites, StepMark,
    ThrottleWrite, factor_throttle_keys,
};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(
            feature = "serde",
            derive(serde::Serialize, serde::Deserialize),
            serde(transparent)
        )]
        pub struct $name(String);

        impl $name {
            /// Wraps an id as stored.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id as a string, for storage.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// A fresh random id: 128 bits, lowercase hex.
            #[allow(dead_code)] // not every id type is made by the core
            pub(crate) fn random() -> Self {
                $name(crate::token::random_hex_id())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The id of an account: opaque, made by the core (128 random bits as hex) or
    /// by your own users table. It is the associated data of the account's sealed
    /// secrets, so it must never change for an account.
    UserId
);
string_id!(
    /// The id of one authenticator (a phone app) of an account.
    AuthenticatorId
);
string_id!(
    /// The id of one trusted device of an account (not its token).
    DeviceId
);
string_id!(
    /// The id of one session of an account, for lists (not its token: knowing it
    /// grants nothing).
    SessionId
);

/// An account as stored.
#[derive(Clone, Debug)]
pub struct AccountRecord {
    /// The account's id.
    pub id: UserId,
    /// The login name, already normalized by the core (lowercase). Unique.
    pub username: String,
    /// The argon2id PHC string.
    pub password_hash: PasswordHash,
    /// Bumped on every password change; pending logins, sessions and trusted devices
    /// made under an older epoch are void.
    pub password_epoch: u64,
    /// Whether two-factor authentication is on.
    pub two_factor_enabled: bool,
    /// The id of the key-ring key whose keyed hashes the account's current backup
    /// codes are (set by [`AccountStore::enable_two_factor`] and
    /// [`AccountStore::replace_backup_codes`], cleared by
    /// [`AccountStore::disable_two_factor`]); `None` without backup codes, or for
    /// codes made before 0.2 recorded it.
    pub backup_codes_key_id: Option<u32>,
    /// When the account was made (Unix seconds).
    pub created_at: u64,
}

/// One authenticator (TOTP secret) of an account.
#[derive(Clone, Debug)]
pub struct AuthenticatorRecord {
    /// The authenticator's id.
    pub id: AuthenticatorId,
    /// The account it belongs to.
    pub user_id: UserId,
    /// A name the user chose ("phone", "backup phone").
    pub name: String,
    /// The TOTP secret, sealed with the user id as associated data.
    pub sealed_secret: SealedSecret,
    /// When it was confirmed (Unix seconds).
    pub created_at: u64,
}

/// Outcome of [`AccountStore::remove_authenticator`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoveOutcome {
    /// The authenticator was removed.
    Removed,
    /// The user has no authenticator with that id.
    NotFound,
    /// It is the user's last authenticator; nothing was removed (disable 2FA instead).
    LastOne,
}

/// A pending login: the password was right, the second factor is still owed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingLogin {
    /// Who is logging in.
    pub user_id: UserId,
    /// The account's password epoch when the password was checked.
    pub password_epoch: u64,
    /// Second-factor attempts already made on this pending login.
    pub attempts: u32,
    /// Unix seconds after which the pending login is gone.
    pub expires_at: u64,
}

/// A pending enrollment: a secret shown to the user, not yet confirmed.
#[derive(Clone, Debug)]
pub struct PendingEnrollment {
    /// Identifies this setup, so that confirming an older setup cannot take a newer one.
    pub id: String,
    /// The name the authenticator will get.
    pub name: String,
    /// The new secret, sealed with the user id as associated data.
    pub sealed_secret: SealedSecret,
    /// `true` when it adds an authenticator to an account with 2FA on, `false`
    /// when it turns 2FA on.
    pub adding: bool,
    /// Unix seconds after which the enrollment is gone.
    pub expires_at: u64,
}

/// The server-side state of a WebAuthn ceremony (registration or authentication)
/// between its start and its finish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CeremonyRecord {
    /// Whose ceremony it is.
    pub user_id: UserId,
    /// For an authentication, the keyed hash of the pending login it belongs to;
    /// `None` for a registration.
    pub login: Option<KeyedHash>,
    /// The ceremony state, sealed by the core (opaque to the store).
    pub state: Vec<u8>,
    /// Unix seconds after which the ceremony is gone.
    pub expires_at: u64,
}

/// A counter with a time attached, used by the throttles.
///
/// For an account throttle `count` is the number of failures since the last success
/// and `until` the first second at which another attempt is allowed; for a client
/// limiter `count` is the number of attempts in the window ending at `until`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleState {
    /// The counter.
    pub count: u32,
    /// A Unix time whose meaning depends on the throttle (see above).
    pub until: u64,
}

/// A trusted device ("remember this device").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The device's id (not its token).
    pub id: DeviceId,
    /// The account that trusts it.
    pub user_id: UserId,
    /// A label for lists ("Firefox on Linux").
    pub label: String,
    /// The account's password epoch when trusted; a password change voids it.
    pub password_epoch: u64,
    /// When it was trusted (Unix seconds).
    pub created_at: u64,
    /// When the trust ends (Unix seconds).
    pub expires_at: u64,
}

/// A logged-in session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// The session's id, for lists (not its token).
    pub id: SessionId,
    /// Whose session.
    pub user_id: UserId,
    /// The account's password epoch at login; a password change ends the session.
    pub password_epoch: u64,
    /// How the login that made it was passed.
    pub method: AuthMethod,
    /// When it started (Unix seconds).
    pub created_at: u64,
    /// When the owner last proved who they are in it: the login, or the latest
    /// re-authentication (Unix seconds). Credential changes need this to be recent.
    pub authenticated_at: u64,
    /// When it ends (Unix seconds).
    pub expires_at: u64,
}

/// Durable account data: accounts, authenticators, backup-code hashes.
pub trait AccountStore: Send + Sync + 'static {
    /// Creates an account.
    ///
    /// Atomicity: of two creations with the same `username`, exactly one succeeds;
    /// the other returns [`Error::UsernameTaken`](crate::Error::UsernameTaken).
    fn create_account(&self, account: &AccountRecord) -> impl Future<Output = Result<()>> + Send;

    /// Looks an account up by its (normalized) login name.
    fn account_by_username(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<AccountRecord>>> + Send;

    /// Looks an account up by id.
    fn account(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Option<AccountRecord>>> + Send;

    /// Replaces the password hash and sets the password epoch to `new_epoch`, if and
    /// only if the account's epoch is still `expected_epoch`. Returns whether it
    /// wrote; `false` when the account does not exist or its epoch moved on.
    ///
    /// The core uses it two ways: a rehash on login writes the same epoch it read
    /// (`expected_epoch == new_epoch`), a password change writes the next one. So a
    /// login that read the account before a concurrent password change can never
    /// write the old password back.
    ///
    /// Atomicity: a compare-and-set on the epoch. Of N concurrent calls with the same
    /// `expected_epoch` and a `new_epoch` greater than it, exactly one returns `true`.
    fn set_password(
        &self,
        user_id: &UserId,
        hash: &PasswordHash,
        expected_epoch: u64,
        new_epoch: u64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The account's authenticators, oldest first (by `created_at`; ties in any order).
    fn authenticators(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Vec<AuthenticatorRecord>>> + Send;

    /// Turns two-factor authentication on: stores the first authenticator, replaces
    /// the backup-code hashes with `backup_codes` (keyed hashes made with key-ring key
    /// `backup_key_id`, recorded as the account's `backup_codes_key_id`) and sets the
    /// enabled flag.
    ///
    /// Atomicity: all or nothing; when 2FA is already on (a concurrent confirm won),
    /// nothing changes and [`Error::TwoFactorAlreadyEnabled`](crate::Error::TwoFactorAlreadyEnabled)
    /// is returned. A missing account is [`Error::NotFound`](crate::Error::NotFound).
    fn enable_two_factor(
        &self,
        authenticator: &AuthenticatorRecord,
        backup_codes: &[KeyedHash],
        backup_key_id: u32,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Adds another authenticator to an account that has 2FA on and fewer than
    /// `max_authenticators` of them.
    ///
    /// Atomicity: fails with [`Error::TwoFactorNotEnabled`](crate::Error::TwoFactorNotEnabled)
    /// when 2FA is off at the moment of the write (a concurrent disable won), and with
    /// [`Error::TooManyAuthenticators`](crate::Error::TooManyAuthenticators) when the
    /// account already has `max_authenticators`: N concurrent adds never take an
    /// account past the cap.
    fn add_authenticator(
        &self,
        authenticator: &AuthenticatorRecord,
        max_authenticators: u32,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes one authenticator unless it is the account's last one.
    ///
    /// Atomicity: two concurrent removals of an account's last two authenticators
    /// leave one.
    fn remove_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
    ) -> impl Future<Output = Result<RemoveOutcome>> + Send;

    /// Replaces the sealed secret of an authenticator (key rotation). Returns `false`
    /// when it does not exist.
    fn reseal_authenticator(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        sealed_secret: &SealedSecret,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Replaces the sealed secret of an authenticator with `new` if and only if it is
    /// still `expected` (byte for byte); returns whether it did. `false` also when the
    /// authenticator does not exist. The core keeps a WebAuthn credential (with its
    /// signature counter and backup flags) as a sealed record and updates it with
    /// this after each assertion.
    ///
    /// Atomicity: a compare-and-set. Of N concurrent calls with the same `expected`,
    /// exactly one returns `true`.
    fn update_authenticator_secret(
        &self,
        user_id: &UserId,
        id: &AuthenticatorId,
        expected: &SealedSecret,
        new: &SealedSecret,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Turns two-factor authentication off: removes every authenticator and backup
    /// code, clears the flag and `backup_codes_key_id`. Returns whether it was on.
    ///
    /// Atomicity: all or nothing.
    fn disable_two_factor(&self, user_id: &UserId) -> impl Future<Output = Result<bool>> + Send;

    /// Replaces the account's backup-code hashes with a new set, made with key-ring
    /// key `key_id` (recorded as the account's `backup_codes_key_id`).
    ///
    /// Atomicity: after it returns, no code of the old set can be consumed.
    fn replace_backup_codes(
        &self,
        user_id: &UserId,
        hashes: &[KeyedHash],
        key_id: u32,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Consumes one backup code by its keyed hash: returns `true` and deletes it when
    /// the account has it, `false` otherwise.
    ///
    /// Atomicity: of any number of concurrent calls with the same hash, exactly one
    /// returns `true`.
    fn consume_backup_code(
        &self,
        user_id: &UserId,
        hash: &KeyedHash,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// How many unspent backup codes the account has.
    fn backup_codes_remaining(&self, user_id: &UserId) -> impl Future<Output = Result<u32>> + Send;

    /// Appends an entry to the account's security log, then forgets the account's
    /// entries beyond the newest `max_entries` and those with `at < forget_before`.
    /// Appending for an account that does not exist is not an error (nothing is
    /// kept). `client` and `detail` are at most 200 bytes (the core bounds them).
    fn append_security_event(
        &self,
        user_id: &UserId,
        event: &SecurityEvent,
        max_entries: u32,
        forget_before: u64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The account's security log, newest first (entries with the same `at` newest
    /// appended first), at most `limit` entries.
    fn security_log(
        &self,
        user_id: &UserId,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<SecurityEvent>>> + Send;

    /// The account with id `user_id` and its authenticators (oldest first, as
    /// [`authenticators`](Self::authenticators) returns them); `None` when there is no
    /// such account. The durable half's read of [`Store::read_factor_step`].
    ///
    /// The provided implementation is [`account`](Self::account), then
    /// [`authenticators`](Self::authenticators): two round trips, each a read of its
    /// own. The SQL stores override it with one `SELECT`, the memory store with one
    /// lock, so that [`Combined`] reads its durable half in one round trip.
    fn account_and_authenticators(
        &self,
        user_id: &UserId,
    ) -> impl Future<Output = Result<Option<(AccountRecord, Vec<AuthenticatorRecord>)>>> + Send
    {
        unit::account_and_authenticators(self, user_id)
    }
}

/// Short-lived state: pending logins and enrollments, replay marks, throttles,
/// trusted devices and sessions. Tokens are stored only as keyed hashes.
pub trait EphemeralStore: Send + Sync + 'static {
    /// Stores a new pending login under the keyed hash of its token.
    fn create_pending_login(
        &self,
        token: &KeyedHash,
        login: &PendingLogin,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Counts one second-factor attempt on a pending login and returns it with the
    /// count included; `None` when it is missing or expired. When the count would
    /// exceed `max_attempts`, the pending login is deleted (burnt) and `None` is
    /// returned.
    ///
    /// Atomicity: of N concurrent calls on a pending login with `k` attempts left,
    /// exactly `k` get `Some`, each with a distinct count.
    fn begin_login_attempt(
        &self,
        token: &KeyedHash,
        max_attempts: u32,
        now: u64,
    ) -> impl Future<Output = Result<Option<PendingLogin>>> + Send;

    /// Takes a pending login: deletes it and returns it, `None` when missing or expired.
    ///
    /// Atomicity: of any number of concurrent takes, exactly one gets `Some`.
    fn take_pending_login(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> impl Future<Output = Result<Option<PendingLogin>>> + Send;

    /// Deletes a pending login (burns it). Deleting a missing one is not an error.
    fn delete_pending_login(&self, token: &KeyedHash) -> impl Future<Output = Result<()>> + Send;

    /// Stores the user's pending enrollment, replacing any earlier one.
    fn put_enrollment(
        &self,
        user_id: &UserId,
        enrollment: &PendingEnrollment,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The user's pending enrollment, `None` when missing or expired.
    fn enrollment(
        &self,
        user_id: &UserId,
        now: u64,
    ) -> impl Future<Output = Result<Option<PendingEnrollment>>> + Send;

    /// Deletes the user's pending enrollment if its id is `id` and it has not
    /// expired; returns whether it did.
    ///
    /// Atomicity: of any number of concurrent takes, at most one returns `true`.
    fn take_enrollment(
        &self,
        user_id: &UserId,
        id: &str,
        now: u64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Stores a WebAuthn ceremony's state under `key`, replacing any earlier one
    /// with that key.
    fn put_ceremony(
        &self,
        key: &str,
        ceremony: &CeremonyRecord,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Takes a WebAuthn ceremony: deletes it and returns it; `None` when missing or
    /// expired.
    ///
    /// Atomicity: of any number of concurrent takes, at most one gets `Some`.
    fn take_ceremony(
        &self,
        key: &str,
        now: u64,
    ) -> impl Future<Output = Result<Option<CeremonyRecord>>> + Send;

    /// Records that TOTP time step `step` of an authenticator was accepted, if and
    /// only if it is greater than the last step recorded (or none was). Returns
    /// whether it was recorded. The mark may be forgotten after `keep_until` (Unix
    /// seconds): by then no code of that step or earlier can verify.
    ///
    /// Atomicity: a compare-and-set. Of N concurrent calls with the same step, exactly
    /// one returns `true`; the recorded step never decreases.
    fn advance_last_step(
        &self,
        id: &AuthenticatorId,
        step: u64,
        keep_until: u64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The state of a throttle at `now`: the default (zero) state when the key is
    /// unknown or its state is past the `keep_until` it was written with
    /// (`keep_until <= now`). The store may delete such a state lazily.
    fn throttle(&self, key: &str, now: u64) -> impl Future<Output = Result<ThrottleState>> + Send;

    /// Replaces a throttle's state with `new`, kept until `keep_until` (Unix
    /// seconds), if its state at `now` still equals `expected`; returns whether it
    /// did. The state at `now` is what [`throttle`](Self::throttle) returns at `now`:
    /// a state past its `keep_until` equals the default state, so an update from the
    /// default state replaces it. Writing the default state deletes the key.
    ///
    /// Atomicity: a compare-and-set. Of N concurrent calls with the same `expected`
    /// and `now`, exactly one returns `true` — also when `expected` is the default
    /// state and the stored state is past its `keep_until`.
    fn update_throttle(
        &self,
        key: &str,
        expected: ThrottleState,
        new: ThrottleState,
        keep_until: u64,
        now: u64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Stores a trusted device under the keyed hash of its token.
    fn create_device(
        &self,
        token: &KeyedHash,
        device: &DeviceRecord,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Finds a trusted device by the keyed hash of its token; `None` when missing,
    /// revoked or expired.
    fn device(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> impl Future<Output = Result<Option<DeviceRecord>>> + Send;

    /// The account's unexpired trusted devices, oldest first (by `created_at`; ties in
    /// any order).
    fn devices(
        &self,
        user_id: &UserId,
        now: u64,
    ) -> impl Future<Output = Result<Vec<DeviceRecord>>> + Send;

    /// Revokes one trusted device; returns whether it existed.
    fn revoke_device(
        &self,
        user_id: &UserId,
        id: &DeviceId,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Revokes every trusted device of the account; returns how many there were.
    fn revoke_all_devices(&self, user_id: &UserId) -> impl Future<Output = Result<u32>> + Send;

    /// Stores a session under the keyed hash of its token.
    fn create_session(
        &self,
        token: &KeyedHash,
        session: &SessionRecord,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Finds a session; `None` when missing or expired.
    fn session(
        &self,
        token: &KeyedHash,
        now: u64,
    ) -> impl Future<Output = Result<Option<SessionRecord>>> + Send;

    /// Deletes a session. Deleting a missing one is not an error.
    fn delete_session(&self, token: &KeyedHash) -> impl Future<Output = Result<()>> + Send;

    /// The account's unexpired sessions, oldest first (by `created_at`; ties in any
    /// order).
    fn sessions(
        &self,
        user_id: &UserId,
        now: u64,
    ) -> impl Future<Output = Result<Vec<SessionRecord>>> + Send;

    /// Sets `authenticated_at` of the session with this token (a re-authentication);
    /// returns whether the session exists and is unexpired at `at`.
    fn reauthenticate_session(
        &self,
        token: &KeyedHash,
        at: u64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Deletes the account's session with this id; returns whether it existed.
    fn delete_session_by_id(
        &self,
        user_id: &UserId,
        id: &SessionId,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Deletes every session of the account except the one with id `keep` (all of
    /// them when `keep` is `None`); returns how many it deleted.
    ///
    /// Atomicity: a session created before the call started is gone when it returns
    /// (unless it is `keep`).
    fn delete_sessions(
        &self,
        user_id: &UserId,
        keep: Option<&SessionId>,
    ) -> impl Future<Output = Result<u32>> + Send;

    /// Deletes every record of this half that is expired at `now`: pending logins,
    /// enrollments, WebAuthn ceremonies, trusted devices and sessions with
    /// `expires_at <= now`, replay
    /// marks and throttles with `keep_until <= now`. Returns how many records it
    /// deleted (what counts as one record is the store's own: a store may also count
    /// index entries or other rows it drops, and a store whose records expire by
    /// themselves may return 0). Call it now and then to bound the store's size.
    ///
    /// Atomicity: each record is deleted only if it is expired at the moment of the
    /// delete: a purge racing with the writes of a live login never deletes a record
    /// that is alive at `now`.
    fn purge_expired(&self, now: u64) -> impl Future<Output = Result<u64>> + Send;

    /// The ephemeral half's read of [`Store::read_factor_step`]: counts one attempt on
    /// the pending login stored under the first of `tokens` that has a live one with
    /// an attempt left, exactly as [`begin_login_attempt`](Self::begin_login_attempt)
    /// would, token after token (so a login met on the way that is expired or out of
    /// attempts is burnt), and returns it, with the attempt counted, along with the
    /// two second-factor throttles of its user ([`factor_throttle_keys`]) at `now`.
    /// `None` when no token has such a pending login.
    ///
    /// Atomicity: the attempt is counted as by
    /// [`begin_login_attempt`](Self::begin_login_attempt): of N concurrent calls on a
    /// pending login with `k` attempts left, exactly `k` get `Some`, each with a
    /// distinct count. The throttles are a read (the commit compares them again). The
    /// provided implementation is made of the fine-grained operations
    /// ([`begin_login_attempt`](Self::begin_login_attempt), then
    /// [`throttle`](Self::throttle) twice); the memory store overrides it with one
    /// critical section, the Redis store with one script, so that [`Combined`] reads
    /// its ephemeral half in one round trip.
    fn read_factor_ephemeral(
        &self,
        tokens: &[KeyedHash],
        max_attempts: u32,
        now: u64,
    ) -> impl Future<Output = Result<Option<FactorEphemeralView>>> + Send {
        unit::read_factor_ephemeral(self, tokens, max_attempts, now)
    }

    /// The ephemeral writes of [`Store::commit_factor_step`]: everything it does but
    /// append the security-log entries, which are the durable half's (through
    /// [`Combined`], the other store's). Same checks, writes and outcomes.
    ///
    /// Atomicity: as [`Store::commit_factor_step`]'s. The provided implementation is
    /// made of the fine-grained operations; the memory store overrides it with one
    /// critical section, the Redis store with one script, so that
    /// [`Combined`] commits its ephemeral half as one unit.
    fn commit_factor_ephemeral(
        &self,
        commit: &FactorCommit<'_>,
    ) -> impl Future<Output = Result<FactorCommitted>> + Send {
        unit::commit_factor_ephemeral(self, commit)
    }
}

/// A complete store: both halves, and the unit-of-work operations of the hot paths.
///
/// The unit-of-work operations have provided implementations made of the
/// fine-grained ones (as many round trips as before, each atomic on its own), so a
/// store made of the two halves only needs `impl Store for MyStore {}`. A store that
/// can do better overrides them: the memory store with one critical section, the SQL
/// stores with one `SELECT` and one transaction.
///
/// # Who counts the attempt
///
/// Every second-factor step counts one attempt on its pending login, exactly once:
/// either the read counts it (the provided implementation, with
/// [`read_factor_ephemeral`](EphemeralStore::read_factor_ephemeral), which counts as
/// [`begin_login_attempt`](EphemeralStore::begin_login_attempt) does) and the commit
/// does not, or — in a store that overrides both — the read writes nothing and the commit
/// counts it, only while the login has an attempt left. A store chooses one of the
/// two for both operations; it must not override one of them in a way that breaks
/// the other's half of the bargain.
pub trait Store: AccountStore + EphemeralStore {
    /// The read of the second-factor step: finds the pending login stored under the
    /// first of `tokens` that has a live one with an attempt left (fewer than
    /// `max_attempts` made), and returns it with this attempt counted in
    /// `attempts`, with its account, the account's authenticators and its two
    /// second-factor throttles ([`factor_throttle_keys`]) at `now`. `None` when no
    /// token has such a pending login.
    ///
    /// The provided implementation counts the attempt here, exactly as
    /// [`begin_login_attempt`](EphemeralStore::begin_login_attempt) (burning the
    /// login past `max_attempts`): it is the ephemeral half's
    /// [`read_factor_ephemeral`](EphemeralStore::read_factor_ephemeral) (the attempt
    /// and the throttles), then the durable half's
    /// [`account_and_authenticators`](AccountStore::account_and_authenticators) — two
    /// round trips where both are overridden, as through [`Combined`] with a Redis or
    /// memory ephemeral half and a SQL or memory durable one. A store that overrides
    /// it may instead write nothing here (the SQL stores: one `SELECT`) and count the
    /// attempt in [`commit_factor_step`](Self::commit_factor_step); see [Who counts
    /// the attempt](Store#who-counts-the-attempt).
    ///
    /// Atomicity: a counting read is as
    /// [`begin_login_attempt`](EphemeralStore::begin_login_attempt); otherwise a
    /// read. Either way the commit checks the throttles again.
    fn read_factor_step(
        &self,
        tokens: &[KeyedHash],
        max_attempts: u32,
        now: u64,
    ) -> impl Future<Output = Result<Option<FactorStepView>>> + Send {
        unit::read_factor_step(self, tokens, max_attempts, now)
    }

    /// The commit of the second-factor step.
    ///
    /// When every throttle is still in its `expected` state (else
    /// [`FactorCommitted::Conflict`], nothing written) and, if there are steps to
    /// spend, the pending login is still there (else [`FactorCommitted::Expired`],
    /// nothing written): advances the replay mark of the first step of `spend` that
    /// is newer than its authenticator's last one; if one advanced, takes the
    /// pending login, writes every throttle's `on_success` state and the success
    /// writes ([`FactorCommitted::Spent`]); otherwise writes every throttle's
    /// `counted` state and the failure writes ([`FactorCommitted::NotSpent`]).
    ///
    /// A store whose read writes nothing counts the attempt here: when the pending
    /// login is gone, expired or out of attempts (`max_attempts` made), the commit
    /// is [`FactorCommitted::Expired`] and writes nothing, whatever it was to spend
    /// (so no answer is given for an uncounted guess); otherwise it counts one
    /// attempt and, when that was the last one and nothing was spent, burns the
    /// login (as if the failure writes said `take_pending`).
    ///
    /// Atomicity: in a store that overrides it, all or nothing, as one unit against
    /// every other operation: of two commits with the same step (or on the same
    /// pending login, or from the same throttle states) exactly one is `Spent`; of
    /// N commits on a pending login with `k` attempts left, at most `k` count one
    /// (in a store that counts here); when it fails with an error nothing is written
    /// (no code spent, no throttle moved, no attempt counted).
    /// The provided implementation gives the guarantees of the fine-grained
    /// operations it is made of: the throttles are counted first, the pending login
    /// is taken before the code is spent and put back when it cannot be, so an error
    /// never leaves a code spent without its login, nor an attempt uncounted in an
    /// attacker's favour.
    fn commit_factor_step(
        &self,
        commit: &FactorCommit<'_>,
    ) -> impl Future<Output = Result<FactorCommitted>> + Send {
        unit::commit_factor_step(self, commit)
    }
}
