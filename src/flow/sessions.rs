//! Sessions and trusted devices: issuing, looking up, listing and ending them.

use super::password::check_label;
use super::proof::Session;
use super::{AuthMethod, Authenticated, RecentAuth, Service};
use crate::events::Event;
use crate::secret::KeyedHash;
use crate::store::{
    AccountRecord, DeviceId, DeviceRecord, SessionId, SessionRecord, Store, UserId,
};
use crate::token::{DeviceToken, KnownBrowserToken, SessionToken};
use crate::{Error, Result, token};

/// How long a known-browser token ([`Service::remember_browser`]) is honoured: one
/// year (the `sf_known` cookie's lifetime).
pub const KNOWN_BROWSER_TTL_SECS: u64 = 365 * 24 * 3600;

/// A trusted device, as listed by [`Service::trusted_devices`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TrustedDevice {
    /// Its id (for [`Service::revoke_device`]).
    pub id: DeviceId,
    /// The label given when it was trusted.
    pub label: String,
    /// When it was trusted (Unix seconds).
    pub created_at: u64,
    /// When the trust ends (Unix seconds).
    pub expires_at: u64,
    /// Whether it is the device that asked (see
    /// [`Service::trusted_devices_with_current`]).
    pub current: bool,
}

/// One session of an account, as listed by [`Service::sessions`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SessionInfo {
    /// Its id (for [`Service::end_session_by_id`]); not its token.
    pub id: SessionId,
    /// When it started (Unix seconds).
    pub created_at: u64,
    /// How its login was passed.
    pub method: AuthMethod,
    /// When it ends (Unix seconds).
    pub expires_at: u64,
    /// Whether it is the session that asked.
    pub current: bool,
}

impl<S: Store> Service<S> {
    /// Turns an [`Authenticated`] into a session and returns its token (for a cookie).
    ///
    /// Errors: `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn issue_session(&self, auth: Authenticated) -> Result<SessionToken> {
        self.new_session(auth.user_id, auth.password_epoch, auth.method)
            .await
    }

    /// A known-browser token for the browser that just completed this login (set it
    /// as a long-lived cookie, [`KNOWN_BROWSER_TTL_SECS`]): later password steps from
    /// it for this account are exempt from the account-wide password limit, so an
    /// attacker guessing the password cannot lock this browser out. It never skips a
    /// factor; a password change voids it. Pure computation: nothing is stored.
    pub fn remember_browser(&self, auth: &Authenticated) -> KnownBrowserToken {
        KnownBrowserToken::issue(
            &self.inner.keys,
            auth.user_id.as_str(),
            auth.password_epoch,
            self.now(),
        )
    }

    /// Stores a fresh session, recently authenticated as of now.
    pub(crate) async fn new_session(
        &self,
        user_id: UserId,
        password_epoch: u64,
        method: AuthMethod,
    ) -> Result<SessionToken> {
        let (token, hash, record) = self.session_record(user_id, password_epoch, method)?;
        self.inner.store.create_session(&hash, &record).await?;
        Ok(token)
    }

    /// A fresh session token, its keyed hash and its record, recently authenticated
    /// as of now.
    pub(crate) fn session_record(
        &self,
        user_id: UserId,
        password_epoch: u64,
        method: AuthMethod,
    ) -> Result<(SessionToken, KeyedHash, SessionRecord)> {
        let now = self.now();
        let token = SessionToken::generate();
        let hash = token::storage_hash(&self.inner.keys, SessionToken::purpose(), token.expose())
            .ok_or(Error::Internal("fresh session token did not decode"))?;
        let record = SessionRecord {
            id: SessionId::random(),
            user_id,
            password_epoch,
            method,
            created_at: now,
            authenticated_at: now,
            expires_at: now.saturating_add(self.inner.config.session_ttl),
        };
        Ok((token, hash, record))
    }

    /// A fresh trusted-device token, its keyed hash and its record (the label is
    /// checked here).
    pub(crate) fn device_record(
        &self,
        user_id: UserId,
        password_epoch: u64,
        label: &str,
        now: u64,
    ) -> Result<(DeviceToken, KeyedHash, DeviceRecord)> {
        let label = check_label(label)?;
        let token = DeviceToken::generate();
        let hash = token::storage_hash(&self.inner.keys, DeviceToken::purpose(), token.expose())
            .ok_or(Error::Internal("fresh device token did not decode"))?;
        let record = DeviceRecord {
            id: DeviceId::random(),
            user_id,
            label,
            password_epoch,
            created_at: now,
            expires_at: now.saturating_add(self.inner.config.device_ttl),
        };
        Ok((token, hash, record))
    }

    /// Looks a session up by its token. Sessions end at their expiry and when the
    /// password changes.
    ///
    /// Errors: `unauthenticated`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn session(&self, session_token: &str) -> Result<Session> {
        let (_, s, a) = self.find_session(session_token).await?;
        Ok(Session {
            id: s.id,
            user_id: a.id,
            username: a.username,
            method: s.method,
            created_at: s.created_at,
            reauthenticated_until: s
                .authenticated_at
                .saturating_add(self.inner.config.reauth_ttl),
            expires_at: s.expires_at,
        })
    }

    /// The live session named by `session_token`, with the keyed hash it is stored
    /// under and its account.
    pub(crate) async fn find_session(
        &self,
        session_token: &str,
    ) -> Result<(KeyedHash, SessionRecord, AccountRecord)> {
        let hashes = token::lookup_hashes(&self.inner.keys, SessionToken::purpose(), session_token)
            .ok_or(Error::Unauthenticated)?;
        for h in hashes {
            if let Some((s, a)) = self.live_session(&h).await? {
                return Ok((h, s, a));
            }
        }
        Err(Error::Unauthenticated)
    }

    /// The session stored under `hash` with its account, if it is live: unexpired and
    /// of the account's current password epoch (one of an older epoch is deleted).
    pub(crate) async fn live_session(
        &self,
        hash: &KeyedHash,
    ) -> Result<Option<(SessionRecord, AccountRecord)>> {
        let store = &self.inner.store;
        let Some(s) = store.session(hash, self.now()).await? else {
            return Ok(None);
        };
        match store.account(&s.user_id).await? {
            Some(a) if a.password_epoch == s.password_epoch => Ok(Some((s, a))),
            _ => {
                store.delete_session(hash).await?;
                Ok(None)
            }
        }
    }

    /// Ends a session (logout). Ending an unknown session is not an error.
    ///
    /// Errors: `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn end_session(&self, session_token: &str) -> Result<()> {
        if let Some(hashes) =
            token::lookup_hashes(&self.inner.keys, SessionToken::purpose(), session_token)
        {
            for h in &hashes {
                self.inner.store.delete_session(h).await?;
            }
        }
        Ok(())
    }

    /// The account's sessions, the asking one marked `current`.
    ///
    /// Errors: `unauthenticated`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn sessions(&self, session_token: &str) -> Result<Vec<SessionInfo>> {
        let (_, current, account) = self.find_session(session_token).await?;
        let sessions = self.inner.store.sessions(&account.id, self.now()).await?;
        Ok(sessions
            .into_iter()
            .filter(|s| s.password_epoch == account.password_epoch)
            .map(|s| SessionInfo {
                current: s.id == current.id,
                id: s.id,
                created_at: s.created_at,
                method: s.method,
                expires_at: s.expires_at,
            })
            .collect())
    }

    /// Ends one session of the account of `session_token` (ending the asking session
    /// itself is a logout).
    ///
    /// Errors: `unauthenticated`, `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn end_session_by_id(&self, session_token: &str, id: &SessionId) -> Result<()> {
        let (_, current, account) = self.find_session(session_token).await?;
        if !self
            .inner
            .store
            .delete_session_by_id(&account.id, id)
            .await?
        {
            return Err(Error::NotFound { what: "session" });
        }
        if *id != current.id {
            self.sessions_ended(&account.id, 1).await;
        }
        Ok(())
    }

    /// Ends every session of the account except the asking one; returns how many.
    ///
    /// Errors: `unauthenticated`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn end_other_sessions(&self, session_token: &str) -> Result<u32> {
        let (_, current, account) = self.find_session(session_token).await?;
        let ended = self
            .inner
            .store
            .delete_sessions(&account.id, Some(&current.id))
            .await?;
        self.sessions_ended(&account.id, ended).await;
        Ok(ended)
    }

    /// Before a change to the account's factors takes effect: revokes every trusted
    /// device and ends every session but the one making the change. Done first, so
    /// that a store failure leaves the change undone rather than the others alive
    /// (and never swallows the backup codes the change would show).
    pub(crate) async fn end_others(&self, proof: &RecentAuth) -> Result<()> {
        self.revoke_all_devices(&proof.user_id).await?;
        let ended = self
            .inner
            .store
            .delete_sessions(&proof.user_id, Some(&proof.session_id))
            .await?;
        self.sessions_ended(&proof.user_id, ended).await;
        Ok(())
    }

    pub(super) async fn sessions_ended(&self, user_id: &UserId, count: u32) {
        if count > 0 {
            self.record(Event::SessionsRevoked {
                user_id: user_id.clone(),
                count,
            })
            .await;
        }
    }

    /// Trusts the device that just completed a second factor: later password steps
    /// with the returned token skip the second factor until it expires, is revoked,
    /// 2FA is disabled or the password changes.
    ///
    /// Errors: `invalid_input` (a login that passed no second factor, or a bad
    /// label), `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn trust_device(&self, auth: &Authenticated, label: &str) -> Result<DeviceToken> {
        if !auth.method.is_second_factor() {
            return Err(Error::input(
                "remember_device",
                "only a login that passed a second factor can trust its device",
            ));
        }
        let (token, hash, record) =
            self.device_record(auth.user_id.clone(), auth.password_epoch, label, self.now())?;
        self.inner.store.create_device(&hash, &record).await?;
        self.emit(Event::DeviceTrusted {
            user_id: record.user_id,
            device_id: record.id,
        });
        Ok(token)
    }

    /// The account's trusted devices (none marked `current`).
    ///
    /// Errors: `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn trusted_devices(&self, user_id: &UserId) -> Result<Vec<TrustedDevice>> {
        self.trusted_devices_with_current(user_id, None).await
    }

    /// The account's trusted devices, the one whose token the client presented (its
    /// device cookie) marked `current`.
    ///
    /// Errors: `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn trusted_devices_with_current(
        &self,
        user_id: &UserId,
        device_token: Option<&str>,
    ) -> Result<Vec<TrustedDevice>> {
        let now = self.now();
        let store = &self.inner.store;
        let mut current = None;
        if let Some(hashes) = device_token
            .and_then(|t| token::lookup_hashes(&self.inner.keys, DeviceToken::purpose(), t))
        {
            for h in &hashes {
                if let Some(d) = store.device(h, now).await? {
                    current = Some(d.id);
                    break;
                }
            }
        }
        let devices = store.devices(user_id, now).await?;
        Ok(devices
            .into_iter()
            .map(|d| TrustedDevice {
                current: current.as_ref() == Some(&d.id),
                id: d.id,
                label: d.label,
                created_at: d.created_at,
                expires_at: d.expires_at,
            })
            .collect())
    }

    /// Revokes one trusted device.
    ///
    /// Errors: `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_device(&self, user_id: &UserId, device_id: &DeviceId) -> Result<()> {
        if !self.inner.store.revoke_device(user_id, device_id).await? {
            return Err(Error::NotFound {
                what: "trusted device",
            });
        }
        self.record(Event::DevicesRevoked {
            user_id: user_id.clone(),
            device_id: Some(device_id.clone()),
            count: 1,
        })
        .await;
        Ok(())
    }

    pub(crate) async fn revoke_all_devices(&self, user_id: &UserId) -> Result<()> {
        let count = self.inner.store.revoke_all_devices(user_id).await?;
        if count > 0 {
            self.record(Event::DevicesRevoked {
                user_id: user_id.clone(),
                device_id: None,
                count,
            })
            .await;
        }
        Ok(())
    }
}
