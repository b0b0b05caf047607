//! The audit hook: what happened, to whom — never a secret.
//!
//! Every flow reports what it did to an [`EventSink`]. The default sink,
//! [`TracingEvents`], writes each event as a `tracing` event (warnings for replays
//! and lockouts). Plug your own to feed an audit log or alerting:
//!
//! ```
//! use secondfactor::events::{Event, EventSink};
//!
//! struct Audit;
//! impl EventSink for Audit {
//!     fn record(&self, event: &Event) {
//!         if let Event::CodeReplayed { user_id, .. } = event {
//!             eprintln!("possible phishing: replayed code for {user_id}");
//!         }
//!     }
//! }
//! ```
//!
//! Events carry ids, counts and reasons; no event holds a password, code, secret or
//! token.

use std::time::Duration;

use crate::auth::AuthMethod;
use crate::security_log::{SecurityEvent, SecurityEventKind};
use crate::store::{AuthenticatorId, DeviceId, UserId};

/// Something a flow did.
///
/// With the feature `serde` it serializes (for a log) as an object tagged with its
/// snake_case name, durations in whole seconds:
/// `{"event": "locked_out", "user_id": "…", "retry_after": 900}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(tag = "event", rename_all = "snake_case")
)]
#[non_exhaustive]
pub enum Event {
    /// An account was registered.
    Registered {
        /// The new account.
        user_id: UserId,
    },
    /// A login completed.
    LoginSucceeded {
        /// Who logged in.
        user_id: UserId,
        /// How the last step was passed.
        method: AuthMethod,
    },
    /// A password step failed. `user_id` is `None` for an unknown login name.
    PasswordRejected {
        /// The account, when the login name exists.
        user_id: Option<UserId>,
    },
    /// A second factor (at login, disable or regeneration) was wrong.
    SecondFactorRejected {
        /// Whose.
        user_id: UserId,
        /// Attempts left before the pending login burns or the account locks.
        remaining_attempts: u32,
    },
    /// A correct TOTP code was presented again: a sign that it was phished or seen.
    CodeReplayed {
        /// Whose.
        user_id: UserId,
        /// Which authenticator's code.
        authenticator_id: AuthenticatorId,
    },
    /// The account's second factor is locked after too many failures.
    LockedOut {
        /// Whose.
        user_id: UserId,
        /// How long.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_support::duration_secs")
        )]
        retry_after: Duration,
    },
    /// Password attempts for a login name were refused: it had too many wrong
    /// passwords (from browsers that never logged in to it).
    PasswordLimited {
        /// The account, when the login name exists.
        user_id: Option<UserId>,
        /// How long the refusal lasts.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_support::duration_secs")
        )]
        retry_after: Duration,
    },
    /// A client key hit the password-step limit.
    ClientThrottled {
        /// The key the adapter passed (a peer address, say).
        client_key: String,
    },
    /// A setup (new secret) was started.
    EnrollmentStarted {
        /// Whose.
        user_id: UserId,
    },
    /// Two-factor authentication was turned on.
    TwoFactorEnabled {
        /// Whose.
        user_id: UserId,
        /// The first authenticator.
        authenticator_id: AuthenticatorId,
    },
    /// Another authenticator was added.
    AuthenticatorAdded {
        /// Whose.
        user_id: UserId,
        /// Which.
        authenticator_id: AuthenticatorId,
    },
    /// An authenticator was removed.
    AuthenticatorRemoved {
        /// Whose.
        user_id: UserId,
        /// Which.
        authenticator_id: AuthenticatorId,
    },
    /// Two-factor authentication was turned off.
    TwoFactorDisabled {
        /// Whose.
        user_id: UserId,
    },
    /// A backup code was spent.
    BackupCodeUsed {
        /// Whose.
        user_id: UserId,
        /// Unspent codes left.
        remaining: u32,
    },
    /// A new set of backup codes replaced the old one.
    BackupCodesRegenerated {
        /// Whose.
        user_id: UserId,
    },
    /// A device was trusted.
    DeviceTrusted {
        /// Whose.
        user_id: UserId,
        /// Which.
        device_id: DeviceId,
    },
    /// Trusted devices were revoked (`device_id` is `None` when all were).
    DevicesRevoked {
        /// Whose.
        user_id: UserId,
        /// The one revoked, or `None` for all.
        device_id: Option<DeviceId>,
        /// How many.
        count: u32,
    },
    /// The password was changed.
    PasswordChanged {
        /// Whose.
        user_id: UserId,
    },
    /// A session proved again who its owner is (step-up).
    Reauthenticated {
        /// Whose.
        user_id: UserId,
        /// How: the password alone (2FA off), or with a TOTP or backup code.
        method: AuthMethod,
    },
    /// Sessions of the account were ended from another session, by a credential
    /// change, or by an operator.
    SessionsRevoked {
        /// Whose.
        user_id: UserId,
        /// How many.
        count: u32,
    },
    /// An operator reset the account's second factors
    /// ([`Service::reset_two_factor`](crate::Service::reset_two_factor)).
    TwoFactorReset {
        /// Whose.
        user_id: UserId,
        /// Who did it, as the operator's tool named them.
        operator: String,
        /// Why, as recorded by the operator.
        reason: String,
    },
    /// An authenticator's secret could not be opened (its key left the key ring, or
    /// the blob is damaged) and was skipped; the account can still use its other
    /// authenticators and its backup codes.
    AuthenticatorUnreadable {
        /// Whose.
        user_id: UserId,
        /// Which.
        authenticator_id: AuthenticatorId,
    },
}

impl Event {
    /// The security-log entry this event makes for its account, if any: what the
    /// owner sees in [`Service::security_log`](crate::Service::security_log).
    pub(crate) fn security_entry(&self, at: u64) -> Option<(&UserId, SecurityEvent)> {
        use SecurityEventKind as K;
        let entry = |kind| SecurityEvent::new(at, kind);
        Some(match self {
            Event::LoginSucceeded { user_id, method } => {
                (user_id, entry(K::Login).with_method(*method))
            }
            Event::PasswordRejected {
                user_id: Some(user_id),
            } => (user_id, entry(K::LoginFailed)),
            Event::SecondFactorRejected { user_id, .. } => (user_id, entry(K::SecondFactorFailed)),
            Event::CodeReplayed { user_id, .. } => (user_id, entry(K::CodeReplayed)),
            Event::LockedOut { user_id, .. } => (user_id, entry(K::LockedOut)),
            Event::Reauthenticated { user_id, method } => {
                (user_id, entry(K::Reauthenticated).with_method(*method))
            }
            Event::TwoFactorEnabled { user_id, .. } => (user_id, entry(K::TwoFactorEnabled)),
            Event::TwoFactorDisabled { user_id } => (user_id, entry(K::TwoFactorDisabled)),
            Event::AuthenticatorAdded { user_id, .. } => (user_id, entry(K::AuthenticatorAdded)),
            Event::AuthenticatorRemoved { user_id, .. } => {
                (user_id, entry(K::AuthenticatorRemoved))
            }
            Event::BackupCodesRegenerated { user_id } => {
                (user_id, entry(K::BackupCodesRegenerated))
            }
            Event::BackupCodeUsed { user_id, .. } => (user_id, entry(K::BackupCodeUsed)),
            Event::PasswordChanged { user_id } => (user_id, entry(K::PasswordChanged)),
            Event::SessionsRevoked { user_id, .. } => (user_id, entry(K::SessionRevoked)),
            Event::DevicesRevoked { user_id, .. } => (user_id, entry(K::DeviceRevoked)),
            Event::TwoFactorReset {
                user_id,
                operator,
                reason,
            } => (
                user_id,
                entry(K::TwoFactorReset).with_detail(&format!("by {operator}: {reason}")),
            ),
            Event::Registered { .. }
            | Event::PasswordRejected { user_id: None }
            | Event::ClientThrottled { .. }
            | Event::PasswordLimited { .. }
            | Event::EnrollmentStarted { .. }
            | Event::DeviceTrusted { .. }
            | Event::AuthenticatorUnreadable { .. } => return None,
        })
    }
}

/// Receives [`Event`]s. Must be cheap and must not block: it runs inside the flows.
pub trait EventSink: Send + Sync + 'static {
    /// Records one event.
    fn record(&self, event: &Event);
}

impl<F> EventSink for F
where
    F: Fn(&Event) + Send + Sync + 'static,
{
    fn record(&self, event: &Event) {
        self(event)
    }
}

/// Writes events to `tracing` (target `secondfactor::audit`): warnings for replays,
/// lockouts and throttled clients, info for the rest. The default sink.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingEvents;

impl EventSink for TracingEvents {
    fn record(&self, event: &Event) {
        match event {
            Event::CodeReplayed { .. }
            | Event::LockedOut { .. }
            | Event::ClientThrottled { .. }
            | Event::PasswordLimited { .. }
            | Event::AuthenticatorUnreadable { .. }
            | Event::TwoFactorReset { .. } => {
                tracing::warn!(target: "secondfactor::audit", ?event)
            }
            _ => tracing::info!(target: "secondfactor::audit", ?event),
        }
    }
}
