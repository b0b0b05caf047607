//! The account's security log: what happened to an account, for its owner to read.
//!
//! Every store keeps the log ([`AccountStore::append_security_event`]); the flows
//! write to it, and [`Service::security_log`](crate::Service::security_log) reads it,
//! newest first. The log is bounded: at most [`MAX_ENTRIES`] entries per account, none
//! older than [`RETENTION_SECS`].
//!
//! Where the [`EventSink`](crate::events::EventSink) is the operator's hook (alerts,
//! mail, push), the security log is the owner's view: "a new authenticator was added
//! yesterday from 203.0.113.9" is how a user notices a takeover. No entry carries a
//! secret, a code, a password or a token.
//!
//! [`AccountStore::append_security_event`]: crate::store::AccountStore::append_security_event

use crate::auth::AuthMethod;

/// How many entries an account's log keeps (the newest).
pub const MAX_ENTRIES: u32 = 100;
/// How long an entry is kept: 90 days.
pub const RETENTION_SECS: u64 = 90 * 24 * 3600;
/// The longest `client` or `detail` text an entry keeps, in bytes (longer text is cut
/// at a character boundary).
pub const MAX_TEXT_BYTES: usize = 200;

macro_rules! kinds {
    ($($(#[$meta:meta])* $variant:ident => $name:literal,)*) => {
        /// What an entry of the security log records.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum SecurityEventKind {
            $($(#[$meta])* $variant,)*
        }

        impl SecurityEventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [SecurityEventKind] = &[$(SecurityEventKind::$variant,)*];

            /// The stable snake_case name (as in the HTTP contract's `kind`).
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(SecurityEventKind::$variant => $name,)*
                }
            }

            /// The kind named by [`as_str`](Self::as_str); `None` for any other string.
            pub fn parse(name: &str) -> Option<SecurityEventKind> {
                match name {
                    $($name => Some(SecurityEventKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    /// A login completed (`method` says how).
    Login => "login",
    /// A wrong password was given for the account.
    LoginFailed => "login_failed",
    /// A wrong second factor was given (at login or re-authentication).
    SecondFactorFailed => "second_factor_failed",
    /// A correct TOTP code was presented again: a sign that it was phished or seen.
    CodeReplayed => "code_replayed",
    /// The account's second factor is locked after too many failures.
    LockedOut => "locked_out",
    /// The owner re-authenticated a session (step-up).
    Reauthenticated => "reauthenticated",
    /// Two-factor authentication was turned on.
    TwoFactorEnabled => "two_factor_enabled",
    /// Two-factor authentication was turned off.
    TwoFactorDisabled => "two_factor_disabled",
    /// An authenticator was added.
    AuthenticatorAdded => "authenticator_added",
    /// An authenticator was removed.
    AuthenticatorRemoved => "authenticator_removed",
    /// A new set of backup codes replaced the old one.
    BackupCodesRegenerated => "backup_codes_regenerated",
    /// A backup code was spent.
    BackupCodeUsed => "backup_code_used",
    /// The password was changed.
    PasswordChanged => "password_changed",
    /// A session was ended from another one (or all others were).
    SessionRevoked => "session_revoked",
    /// Trusted devices were revoked.
    DeviceRevoked => "device_revoked",
    /// An operator reset the account's second factors.
    TwoFactorReset => "two_factor_reset",
}

/// One entry of an account's security log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SecurityEvent {
    /// When (Unix seconds).
    pub at: u64,
    /// What happened.
    pub kind: SecurityEventKind,
    /// How the login or re-authentication was passed, where that applies.
    pub method: Option<AuthMethod>,
    /// The client key the adapter passed (a peer address), where known.
    pub client: Option<String>,
    /// A short free text where a kind needs one (who reset the account, and why).
    /// Never a secret.
    pub detail: Option<String>,
}

impl SecurityEvent {
    /// An entry of `kind` at `at`, with no method, client or detail.
    pub fn new(at: u64, kind: SecurityEventKind) -> Self {
        SecurityEvent {
            at,
            kind,
            method: None,
            client: None,
            detail: None,
        }
    }

    /// Sets the method.
    pub fn with_method(mut self, method: AuthMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Sets the client (cut to [`MAX_TEXT_BYTES`]).
    pub fn with_client(mut self, client: Option<&str>) -> Self {
        self.client = client.map(bounded);
        self
    }

    /// Sets the detail (cut to [`MAX_TEXT_BYTES`]).
    pub fn with_detail(mut self, detail: &str) -> Self {
        self.detail = Some(bounded(detail));
        self
    }
}

/// `text` cut to at most [`MAX_TEXT_BYTES`] bytes at a character boundary, with
/// control characters replaced, so a log line can never be used to forge another.
pub(crate) fn bounded(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_TEXT_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in SecurityEventKind::ALL {
            assert_eq!(SecurityEventKind::parse(k.as_str()), Some(*k));
            assert!(seen.insert(k.as_str()));
        }
        assert_eq!(SecurityEventKind::parse("nope"), None);
    }

    #[test]
    fn text_is_bounded_and_has_no_control_characters() {
        let long = "é".repeat(300);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_TEXT_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(bounded("a\nb\u{0}c"), "a b c");
    }
}
