//! The proofs the core hands out: [`Authenticated`] (a login completed),
//! [`RecentAuth`] (a session authenticated recently) and [`Session`] (a live
//! session). Only the core makes them.

use super::AuthMethod;
use crate::store::{SessionId, UserId};

/// Proof that a login completed. Only the core can make one (its fields are private
/// and it has no public constructor); issue a session from it with
/// [`Service::issue_session`](super::Service::issue_session).
#[derive(Debug)]
#[must_use = "an Authenticated is the only way to a session; issue one or drop it deliberately"]
pub struct Authenticated {
    pub(super) user_id: UserId,
    pub(super) username: String,
    pub(super) method: AuthMethod,
    pub(super) password_epoch: u64,
}

impl Authenticated {
    /// Who logged in.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// Their login name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// How the last step was passed.
    pub fn method(&self) -> AuthMethod {
        self.method
    }
}

/// Proof that a session's owner authenticated recently: at login, or with
/// [`Service::reauthenticate`](super::Service::reauthenticate), within the service's
/// [`reauth_ttl`](super::ServiceBuilder::reauth_ttl) (default 5 minutes).
///
/// Every change to how an account is protected (turning 2FA on or off, adding or
/// removing an authenticator, new backup codes, a new password) takes one, so a
/// stolen session cookie alone cannot take the account over. Only the core makes one
/// ([`Service::recent_auth`](super::Service::recent_auth)); its fields are private:
///
/// ```compile_fail
/// use secondfactor::RecentAuth;
/// use secondfactor::store::{SessionId, UserId};
/// let forged = RecentAuth {
///     user_id: UserId::new("victim"),
///     session_id: SessionId::new("s"),
///     until: u64::MAX,
///     session_hash: secondfactor::secret::KeyedHash([0; 32]),
/// };
/// ```
///
/// Get one per request and drop it: each credential change checks again that its
/// window is still open and that its session is still live (a proof outlives neither
/// a logout nor a session ended from elsewhere).
#[derive(Debug)]
pub struct RecentAuth {
    pub(super) user_id: UserId,
    pub(super) session_id: crate::store::SessionId,
    pub(super) until: u64,
    /// The keyed hash the session is stored under (not the token).
    pub(super) session_hash: crate::secret::KeyedHash,
}

impl RecentAuth {
    /// Whose session.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// Which session (it stays when a credential change ends the others).
    pub fn session_id(&self) -> &crate::store::SessionId {
        &self.session_id
    }

    /// When the window closes (Unix seconds).
    pub fn until(&self) -> u64 {
        self.until
    }
}

/// A live session, as looked up by [`Service::session`](super::Service::session): proof
/// that the session token presented was live at that moment. Only the core makes one
/// (its fields are private), so a handler that takes a `Session` cannot be handed
/// one that was never looked up:
///
/// ```compile_fail
/// use secondfactor::flow::Session;
/// use secondfactor::store::{SessionId, UserId};
/// use secondfactor::AuthMethod;
/// let forged = Session {
///     id: SessionId::new("s"),
///     user_id: UserId::new("victim"),
///     username: "victim".to_owned(),
///     method: AuthMethod::Totp,
///     created_at: 0,
///     reauthenticated_until: u64::MAX,
///     expires_at: u64::MAX,
/// };
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub(super) id: SessionId,
    pub(super) user_id: UserId,
    pub(super) username: String,
    pub(super) method: AuthMethod,
    pub(super) created_at: u64,
    pub(super) reauthenticated_until: u64,
    pub(super) expires_at: u64,
}

impl Session {
    /// The session's id (for lists; not its token).
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// Whose.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// Their login name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// How the login that made it was passed.
    pub fn method(&self) -> AuthMethod {
        self.method
    }

    /// When it started (Unix seconds).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// Until when it counts as recently authenticated (Unix seconds): its login or
    /// last re-authentication plus the service's re-authentication window. Credential
    /// changes need `now < reauthenticated_until`; in the past when none is open.
    pub fn reauthenticated_until(&self) -> u64 {
        self.reauthenticated_until
    }

    /// When the session ends (Unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}
