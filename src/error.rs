//! The crate's one error type and its stable machine codes.
//!
//! Every fallible operation in `secondfactor` returns [`Error`]. Each variant has a
//! stable, documented snake_case machine code ([`Error::code`]) that HTTP adapters
//! put in their JSON bodies, and a suggested HTTP status ([`Error::http_status`]) so
//! that two adapters never need their own mapping.
//!
//! | code | variant | HTTP | meaning |
//! | --- | --- | --- | --- |
//! | `invalid_input` | [`Error::InvalidInput`] | 400 | malformed input: wrong length, letters in a code, over-long password, bad base32, bad URI |
//! | `invalid_credentials` | [`Error::InvalidCredentials`] | 401 | unknown user or wrong password (indistinguishable on purpose) |
//! | `invalid_code` | [`Error::InvalidCode`] | 401 | a well-formed TOTP or backup code that is wrong |
//! | `code_already_used` | [`Error::CodeAlreadyUsed`] | 401 | a correct TOTP code whose time step was already accepted (replay) |
//! | `backup_code_used` | [`Error::BackupCodeUsed`] | 401 | a backup code of this account that was already spent (counted as a failed attempt) |
//! | `login_expired` | [`Error::LoginExpired`] | 401 | no, unknown, spent or expired pending login |
//! | `setup_expired` | [`Error::SetupExpired`] | 401 | no, unknown or expired pending enrollment |
//! | `unauthenticated` | [`Error::Unauthenticated`] | 401 | no, unknown, revoked or expired session |
//! | `too_many_attempts` | [`Error::TooManyAttempts`] | 429 | throttled; retry after the given time; [`Limiter`] says whether the account or this client is locked |
//! | `username_taken` | [`Error::UsernameTaken`] | 409 | registration with a login name already in use |
//! | `two_factor_already_enabled` | [`Error::TwoFactorAlreadyEnabled`] | 409 | enrollment while 2FA is on |
//! | `two_factor_not_enabled` | [`Error::TwoFactorNotEnabled`] | 409 | disable / regenerate while 2FA is off |
//! | `reauthentication_required` | [`Error::ReauthenticationRequired`] | 403 | a credential change from a session whose last authentication is not recent: re-authenticate first |
//! | `too_many_authenticators` | [`Error::TooManyAuthenticators`] | 409 | the account already has as many authenticators as the policy allows |
//! | `last_authenticator` | [`Error::LastAuthenticator`] | 409 | removing the account's last authenticator (turn 2FA off instead) |
//! | `not_found` | [`Error::NotFound`] | 404 | an authenticator, trusted device or account that does not exist |
//! | `sealed_secret_invalid` | [`Error::SealedSecretInvalid`] | 500 | a sealed secret failed to open: tampered, copied to another user, or truncated |
//! | `unknown_key` | [`Error::UnknownKey`] | 500 | a sealed blob names a key id that is not in the key ring |
//! | `invalid_config` | [`Error::InvalidConfig`] | 500 | a builder or policy was given values that cannot work (4-digit codes, zero period, …) |
//! | `busy` | [`Error::Busy`] | 503 | every password-hashing slot stayed taken for the service's wait (a burst of logins or registrations); retry after the given time |
//! | `unavailable` | [`Error::Unavailable`] | 503 | the store could not be reached or failed mid-operation; nothing was changed |
//! | `internal` | [`Error::Internal`] | 500 | a bug or an impossible state; details are logged, never returned |
//!
//! Error messages never contain a secret, a code, a password or a token.
//!
//! An adapter maps every error the same way:
//!
//! ```
//! use secondfactor::Error;
//! use std::time::Duration;
//!
//! fn body(e: &Error) -> (u16, String) {
//!     let extra = match e {
//!         Error::InvalidCode { remaining_attempts: Some(n) } => format!(r#","remaining_attempts":{n}"#),
//!         Error::TooManyAttempts { retry_after, limiter } => format!(
//!             r#","retry_after":{},"limiter":"{}""#,
//!             retry_after.as_secs(),
//!             limiter.code()
//!         ),
//!         _ => String::new(),
//!     };
//!     (e.http_status(), format!(r#"{{"error":"{}"{extra}}}"#, e.code()))
//! }
//!
//! let locked = Error::TooManyAttempts {
//!     retry_after: Duration::from_secs(60),
//!     limiter: secondfactor::error::Limiter::Account,
//! };
//! assert_eq!(
//!     body(&locked),
//!     (429, r#"{"error":"too_many_attempts","retry_after":60,"limiter":"account"}"#.to_owned())
//! );
//! ```

use std::time::Duration;

/// A boxed source error from a dependency (a database driver, say), kept private so
/// that no dependency's error type becomes part of the public API.
type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The one error type of `secondfactor`.
///
/// Match on [`Error::code`] (a stable string) rather than on the variants when a
/// program needs to be robust against new variants: the enum is `#[non_exhaustive]`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Malformed input (`invalid_input`): the value is not of the right shape, so it
    /// was rejected before any secret was consulted. `field` names the input and
    /// `reason` says what is wrong, in words safe to show to a person.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The input that was rejected (`"code"`, `"password"`, `"secret"`, …).
        field: &'static str,
        /// What is wrong with it. Never contains the input itself.
        reason: &'static str,
    },

    /// Unknown login name or wrong password (`invalid_credentials`). The two cases are
    /// deliberately indistinguishable, in the error and in the time taken.
    #[error("invalid username or password")]
    InvalidCredentials,

    /// A well-formed code that is wrong (`invalid_code`).
    #[error("invalid code")]
    InvalidCode {
        /// Attempts left before the pending login is burnt or the account locks,
        /// whichever comes first; `None` where no attempt budget applies.
        remaining_attempts: Option<u32>,
    },

    /// A correct TOTP code whose time step was already accepted for this
    /// authenticator (`code_already_used`). A replayed code hints that the code was
    /// phished or shoulder-surfed; the flows also emit an audit event.
    #[error("this code was already used; wait for the next one")]
    CodeAlreadyUsed,

    /// A backup code of this account that was already spent (`backup_code_used`).
    /// Only someone who had the code can get this answer (a guess is `invalid_code`);
    /// the attempt counts as a failure exactly like [`Error::InvalidCode`].
    #[error("this backup code was already used; each backup code works once")]
    BackupCodeUsed {
        /// Attempts left, as in [`Error::InvalidCode`].
        remaining_attempts: Option<u32>,
    },

    /// The pending login is missing, unknown, spent, burnt or expired (`login_expired`).
    #[error("the login expired; start again with your password")]
    LoginExpired,

    /// The pending enrollment is missing, unknown or expired (`setup_expired`).
    #[error("the two-factor setup expired; start it again")]
    SetupExpired,

    /// No valid session (`unauthenticated`).
    #[error("not logged in")]
    Unauthenticated,

    /// Throttled (`too_many_attempts`): the account or client (`limiter`) is locked
    /// for `retry_after`, computed from the service's [`Clock`](crate::clock::Clock).
    #[error("too many attempts; retry in {} s", retry_after.as_secs())]
    TooManyAttempts {
        /// How long until the next attempt is allowed (rounded up to whole seconds).
        retry_after: Duration,
        /// Which limiter refused the attempt: the account's or this client's.
        limiter: Limiter,
    },

    /// The login name is already registered (`username_taken`).
    #[error("this username is taken")]
    UsernameTaken,

    /// Two-factor authentication is already on for this account (`two_factor_already_enabled`).
    #[error("two-factor authentication is already enabled")]
    TwoFactorAlreadyEnabled,

    /// Two-factor authentication is off for this account (`two_factor_not_enabled`).
    #[error("two-factor authentication is not enabled")]
    TwoFactorNotEnabled,

    /// A credential change needs a recent authentication (`reauthentication_required`):
    /// the session's login or last re-authentication is older than the service's
    /// re-authentication window. Call [`Service::reauthenticate`](crate::Service::reauthenticate).
    #[error("confirm it is you: re-enter your password (and a code) first")]
    ReauthenticationRequired,

    /// The account already has the most authenticators allowed (`too_many_authenticators`).
    #[error("this account has the most authenticators allowed; remove one first")]
    TooManyAuthenticators,

    /// The account's last authenticator cannot be removed (`last_authenticator`): turn
    /// two-factor authentication off instead.
    #[error("the last authenticator cannot be removed; turn two-factor authentication off instead")]
    LastAuthenticator,

    /// The named thing does not exist (`not_found`).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for (`"authenticator"`, `"trusted device"`, `"account"`).
        what: &'static str,
    },

    /// A sealed secret failed to open (`sealed_secret_invalid`): it was tampered with,
    /// truncated, or copied from another user's row.
    #[error("sealed secret could not be opened")]
    SealedSecretInvalid,

    /// A sealed blob names a key id the key ring does not hold (`unknown_key`).
    #[error("sealed with unknown key id {key_id}")]
    UnknownKey {
        /// The key id recorded in the sealed blob.
        key_id: u32,
    },

    /// A configuration value that cannot work (`invalid_config`); raised when a
    /// builder or policy is built, never at request time.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),

    /// The server is busy (`busy`): no password-hashing slot came free within the
    /// service's wait. Nothing was checked or changed; retry after `retry_after`.
    #[error("the server is busy; retry in {} s", retry_after.as_secs())]
    Busy {
        /// When to retry.
        retry_after: Duration,
    },

    /// The store could not be reached or failed mid-operation (`unavailable`).
    /// The operation had no effect.
    #[error("storage unavailable: {context}")]
    Unavailable {
        /// Which operation failed.
        context: &'static str,
        /// The driver's error, for logs. Not part of the stable API.
        #[source]
        source: Option<Source>,
    },

    /// An internal error (`internal`): a bug, a corrupt row, or an RNG failure.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Which limiter refused an attempt with [`Error::TooManyAttempts`].
///
/// ```
/// use secondfactor::error::Limiter;
/// assert_eq!(Limiter::Account.code(), "account");
/// assert_eq!(Limiter::Client.code(), "client");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limiter {
    /// The account (or the login name) is locked, whoever tries: too many wrong
    /// codes or passwords for it (`"account"`).
    Account,
    /// This client (its IP address, or its IPv6 /64) sent too many attempts,
    /// whatever the account (`"client"`).
    Client,
}

impl Limiter {
    /// The stable machine code: `"account"` or `"client"`.
    pub fn code(self) -> &'static str {
        match self {
            Limiter::Account => "account",
            Limiter::Client => "client",
        }
    }

    /// The same as [`code`](Self::code) (the name every enum of the crate has).
    pub fn as_str(&self) -> &'static str {
        self.code()
    }

    /// The limiter named by [`code`](Self::code); `None` for any other string.
    pub fn parse(name: &str) -> Option<Limiter> {
        match name {
            "account" => Some(Limiter::Account),
            "client" => Some(Limiter::Client),
            _ => None,
        }
    }
}

impl Error {
    /// The stable machine code of this error, as listed in the [module docs](self).
    ///
    /// ```
    /// use secondfactor::Error;
    /// assert_eq!(Error::CodeAlreadyUsed.code(), "code_already_used");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidInput { .. } => "invalid_input",
            Error::InvalidCredentials => "invalid_credentials",
            Error::InvalidCode { .. } => "invalid_code",
            Error::CodeAlreadyUsed => "code_already_used",
            Error::BackupCodeUsed { .. } => "backup_code_used",
            Error::LoginExpired => "login_expired",
            Error::SetupExpired => "setup_expired",
            Error::Unauthenticated => "unauthenticated",
            Error::TooManyAttempts { .. } => "too_many_attempts",
            Error::UsernameTaken => "username_taken",
            Error::TwoFactorAlreadyEnabled => "two_factor_already_enabled",
            Error::TwoFactorNotEnabled => "two_factor_not_enabled",
            Error::ReauthenticationRequired => "reauthentication_required",
            Error::TooManyAuthenticators => "too_many_authenticators",
            Error::LastAuthenticator => "last_authenticator",
            Error::NotFound { .. } => "not_found",
            Error::SealedSecretInvalid => "sealed_secret_invalid",
            Error::UnknownKey { .. } => "unknown_key",
            Error::InvalidConfig(_) => "invalid_config",
            Error::Busy { .. } => "busy",
            Error::Unavailable { .. } => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// The HTTP status an adapter should answer with, as listed in the [module docs](self).
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidInput { .. } => 400,
            Error::InvalidCredentials
            | Error::InvalidCode { .. }
            | Error::CodeAlreadyUsed
            | Error::BackupCodeUsed { .. }
            | Error::LoginExpired
            | Error::SetupExpired
            | Error::Unauthenticated => 401,
            Error::ReauthenticationRequired => 403,
            Error::NotFound { .. } => 404,
            Error::UsernameTaken
            | Error::TwoFactorAlreadyEnabled
            | Error::TwoFactorNotEnabled
            | Error::TooManyAuthenticators
            | Error::LastAuthenticator => 409,
            Error::TooManyAttempts { .. } => 429,
            Error::Busy { .. } | Error::Unavailable { .. } => 503,
            Error::SealedSecretInvalid
            | Error::UnknownKey { .. }
            | Error::InvalidConfig(_)
            | Error::Internal(_) => 500,
        }
    }

    /// The body an adapter answers with: [`code`](Self::code), the message and the
    /// figures of the variant (see [`ErrorBody`]).
    ///
    /// ```
    /// use secondfactor::Error;
    /// use std::time::Duration;
    ///
    /// let body = Error::Busy { retry_after: Duration::from_millis(1500) }.body();
    /// assert_eq!((body.error.as_str(), body.retry_after), ("busy", Some(2)));
    /// ```
    pub fn body(&self) -> ErrorBody {
        let (remaining_attempts, limiter) = match self {
            Error::InvalidCode { remaining_attempts }
            | Error::BackupCodeUsed { remaining_attempts } => (*remaining_attempts, None),
            Error::TooManyAttempts { limiter, .. } => (None, Some(*limiter)),
            _ => (None, None),
        };
        ErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
            remaining_attempts,
            retry_after: self.retry_after_secs(),
            limiter,
        }
    }

    /// How long to wait before retrying (`too_many_attempts`, `busy`), in whole
    /// seconds rounded up and at least 1, so that a client which waits this long is
    /// let in (the `Retry-After` header's value); `None` for every other error.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::TooManyAttempts { retry_after, .. } | Error::Busy { retry_after } => {
                Some((retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1))
            }
            _ => None,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub(crate) fn input(field: &'static str, reason: &'static str) -> Self {
        Error::InvalidInput { field, reason }
    }

    /// Wraps a store driver's error as [`Error::Unavailable`].
    ///
    /// Store implementations call this when the backend cannot be reached or fails
    /// mid-operation.
    pub fn unavailable<E>(context: &'static str, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Unavailable {
            context,
            source: Some(Box::new(source)),
        }
    }
}

/// What an adapter answers for an error: the stable code, the message, and the figures
/// a client may act on. [`Error::body`] makes it; with the feature `serde` it is the
/// JSON of the HTTP contract:
/// `{"error": "too_many_attempts", "message": "…", "retry_after": 60, "limiter": "account"}`
/// (absent figures are left out).
///
/// It carries no secret: the message is the error's `Display`, which never holds a
/// password, a code, a token or a source error's text.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ErrorBody {
    /// [`Error::code`].
    pub error: String,
    /// The error's `Display` text, for a person.
    pub message: String,
    /// Attempts left on the pending login (`invalid_code`, `backup_code_used`), when known.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub remaining_attempts: Option<u32>,
    /// Whole seconds to wait before retrying (`too_many_attempts`, `busy`), rounded up
    /// and at least 1, so that a client which waits this long is let in.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub retry_after: Option<u64>,
    /// Which limiter refused (`too_many_attempts`).
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub limiter: Option<Limiter>,
}

/// Shorthand for `Result<T, secondfactor::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_snake_case_and_unique() {
        let all = [
            Error::input("code", "x"),
            Error::InvalidCredentials,
            Error::InvalidCode {
                remaining_attempts: Some(2),
            },
            Error::CodeAlreadyUsed,
            Error::BackupCodeUsed {
                remaining_attempts: Some(1),
            },
            Error::LoginExpired,
            Error::SetupExpired,
            Error::Unauthenticated,
            Error::TooManyAttempts {
                retry_after: Duration::from_secs(3),
                limiter: Limiter::Client,
            },
            Error::UsernameTaken,
            Error::TwoFactorAlreadyEnabled,
            Error::TwoFactorNotEnabled,
            Error::ReauthenticationRequired,
            Error::TooManyAuthenticators,
            Error::LastAuthenticator,
            Error::NotFound { what: "device" },
            Error::SealedSecretInvalid,
            Error::UnknownKey { key_id: 7 },
            Error::InvalidConfig("x"),
            Error::Busy {
                retry_after: Duration::from_secs(1),
            },
            Error::Unavailable {
                context: "x",
                source: None,
            },
            Error::Internal("x"),
        ];
        let mut seen = std::collections::HashSet::new();
        for e in &all {
            let c = e.code();
            assert!(
                c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{c}"
            );
            assert!(seen.insert(c), "duplicate code {c}");
            assert!((400..600).contains(&e.http_status()));
        }
        assert_eq!(seen.len(), all.len());
        assert_eq!(Error::input("code", "x").http_status(), 400);
        assert_eq!(
            Error::InvalidCode {
                remaining_attempts: None
            }
            .code(),
            "invalid_code"
        );
    }

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
