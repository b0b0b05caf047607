//! The account after login: re-authentication (step-up), password changes, the
//! account's sessions, its security log, and the operator's reset.
//!
//! A session cookie can be stolen (malware, a phishing proxy that relays the login,
//! a shared computer). What a stolen session must not do is change how the account
//! is protected, so every such change takes a [`RecentAuth`]: proof that the
//! session's owner gave the password (and, with 2FA on, a factor the account already
//! had) within the last few minutes. The proof is made only here, from the
//! session's `authenticated_at`, which only a login or [`Service::reauthenticate`]
//! sets.

use zeroize::Zeroizing;

use super::login::{Factor, SecondFactor, check_new_password};
use super::{AuthMethod, RecentAuth, Service};
use crate::events::Event;
use crate::password::MAX_PASSWORD_BYTES;
use crate::security_log::{self, SecurityEvent};
use crate::store::{SessionId, Store, UserId};
use crate::throttle;
use crate::token::SessionToken;
use crate::{Error, Result};

/// How many times a password change retries after losing a compare-and-set to a
/// concurrent change (each retry checks the current password again).
const PASSWORD_CAS_ROUNDS: usize = 3;

/// What [`Service::reauthenticate`] checks: the password and, when 2FA is on, a
/// TOTP or backup code from a factor the account already has.
#[derive(Clone, Copy)]
pub struct ReauthRequest<'a> {
    /// The account's password.
    pub password: &'a str,
    /// A second factor; required when 2FA is on, ignored when it is off.
    pub factor: Option<SecondFactor<'a>>,
    /// A key for the per-client limiter (the peer address); `None` skips it.
    pub client_key: Option<&'a str>,
}

impl std::fmt::Debug for ReauthRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReauthRequest")
            .field("password", &"<redacted>")
            .field("factor", &self.factor)
            .field("client_key", &self.client_key)
            .finish()
    }
}

impl<'a> ReauthRequest<'a> {
    /// A request with the password only (enough while 2FA is off).
    pub fn new(password: &'a str) -> Self {
        ReauthRequest {
            password,
            factor: None,
            client_key: None,
        }
    }

    /// Adds the second factor.
    pub fn factor(mut self, factor: SecondFactor<'a>) -> Self {
        self.factor = Some(factor);
        self
    }

    /// Sets the per-client limiter key (the peer address).
    pub fn client_key(mut self, key: &'a str) -> Self {
        self.client_key = Some(key);
        self
    }
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

/// The counter of wrong passwords given to re-authenticate one session.
fn reauth_key(session: &SessionId) -> String {
    format!("reauth:{}", session.as_str())
}

impl<S: Store> Service<S> {
    /// Proof that the session named by `session_token` authenticated recently (its
    /// login or its last re-authentication is less than
    /// [`reauth_ttl`](super::ServiceBuilder::reauth_ttl) old). Every credential change
    /// takes one.
    ///
    /// Errors: `unauthenticated` (no live session), `reauthentication_required`
    /// (the window is closed: call [`reauthenticate`](Self::reauthenticate)),
    /// `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn recent_auth(&self, session_token: &str) -> Result<RecentAuth> {
        let (hash, session, _) = self.find_session(session_token).await?;
        let until = session
            .authenticated_at
            .saturating_add(self.inner.config.reauth_ttl);
        if until <= self.now() {
            return Err(Error::ReauthenticationRequired);
        }
        Ok(RecentAuth {
            user_id: session.user_id,
            session_id: session.id,
            until,
            session_hash: hash,
        })
    }

    /// Refuses a proof whose window has closed since it was made, or whose session
    /// has ended (logout, ended from another session, password change).
    pub(crate) async fn check_recent(&self, proof: &RecentAuth) -> Result<()> {
        let now = self.now();
        if proof.until <= now {
            return Err(Error::ReauthenticationRequired);
        }
        match self.live_session(&proof.session_hash).await? {
            Some((s, _)) if s.id == proof.session_id => Ok(()),
            _ => Err(Error::Unauthenticated),
        }
    }

    /// Re-authenticates a session (step-up): checks the password and, when 2FA is on,
    /// a TOTP or backup code (or, feature `webauthn`, a security key's answer to
    /// [`start_webauthn_confirmation`](Self::start_webauthn_confirmation)), in that order, then opens the session's
    /// re-authentication window. Returns when it closes (Unix seconds).
    ///
    /// Counts like a login. A wrong password counts on the per-client limiter and
    /// on the session: after the throttle policy's free failures the session itself
    /// is ended, so a stolen session cannot be used to guess the password (and the
    /// owner's login is never locked by it). The code is looked at only after a
    /// right password; a wrong code counts on the account's second-factor throttle,
    /// as at login. A backup code used here is spent.
    ///
    /// Errors: `unauthenticated`, `invalid_credentials`, `invalid_input` (a
    /// malformed code, or none while 2FA is on), `invalid_code` (with the attempts
    /// left), `backup_code_used` (a backup code of this account spent before, counted
    /// like `invalid_code`), `code_already_used`, `too_many_attempts`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn reauthenticate(
        &self,
        session_token: &str,
        request: ReauthRequest<'_>,
    ) -> Result<u64> {
        let now = self.now();
        let (hash, session, account) = self.find_session(session_token).await?;
        let factor = request
            .factor
            .map(|f| self.normalize_factor(f))
            .transpose()?;
        if request.password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::input("password", "must be at most 1024 bytes"));
        }
        if let Some(client) = request.client_key {
            self.hit_client(client, now).await?;
        }
        let key = reauth_key(&session.id);
        let reservation = self.reserve(&key, now).await?;
        let password = Zeroizing::new(request.password.to_owned());
        let stored = account.password_hash.clone();
        let hasher = self.inner.hasher.clone();
        let valid = self
            .blocking(move || hasher.verify(&password, &stored))
            .await??;
        if !valid {
            self.record_from(
                Event::PasswordRejected {
                    user_id: Some(account.id.clone()),
                },
                request.client_key,
            )
            .await;
            if reservation.state.count > self.inner.throttle.free_failures() {
                // Whoever holds this session does not know the password: end it.
                self.inner.store.delete_session(&hash).await?;
                self.record(Event::SessionsRevoked {
                    user_id: account.id.clone(),
                    count: 1,
                })
                .await;
            }
            return Err(Error::InvalidCredentials);
        }
        self.forget_failures(&key, reservation).await;
        let method = if account.two_factor_enabled {
            let factor = factor.ok_or(Error::input(
                "code",
                "a code from your authenticator app or a backup code is required",
            ))?;
            self.check_factor(&account.id, &session.id, factor, now)
                .await?
        } else {
            AuthMethod::Password
        };
        if !self.inner.store.reauthenticate_session(&hash, now).await? {
            return Err(Error::Unauthenticated);
        }
        self.record_from(
            Event::Reauthenticated {
                user_id: account.id.clone(),
                method,
            },
            request.client_key,
        )
        .await;
        Ok(now.saturating_add(self.inner.config.reauth_ttl))
    }

    /// Checks a second factor of an account that has 2FA on, counting the attempt on
    /// the account's throttle first and spending the code: the one factor check of
    /// re-authentication, disable and backup-code regeneration.
    pub(crate) async fn check_factor(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        factor: Factor,
        now: u64,
    ) -> Result<AuthMethod> {
        #[cfg(not(feature = "webauthn"))]
        let _ = session_id;
        let reservation = self.reserve_factor(user_id, &factor, now).await?;
        let method = match &factor {
            Factor::Totp(code) => {
                let auths = self.inner.store.authenticators(user_id).await?;
                let matches = self.match_totp(user_id, &auths, code, now)?;
                if !matches.is_empty() && !self.spend_totp(user_id, &matches, now).await? {
                    return Err(Error::CodeAlreadyUsed);
                }
                (!matches.is_empty()).then_some(AuthMethod::Totp)
            }
            Factor::Backup(code) => self
                .spend_backup_code(user_id, code)
                .await?
                .then_some(AuthMethod::BackupCode),
            // An assertion answers this session's confirmation ceremony only.
            #[cfg(feature = "webauthn")]
            Factor::WebAuthn(credential) => self
                .verify_confirmation(user_id, session_id, credential, now)
                .await?
                .then_some(AuthMethod::WebAuthn),
        };
        match method {
            Some(method) => {
                self.factor_succeeded(user_id, reservation).await;
                Ok(method)
            }
            None => {
                let failure = self.failure(user_id, reservation, u32::MAX).await;
                Err(self.said_as_spent(user_id, &factor, failure).await)
            }
        }
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

    async fn sessions_ended(&self, user_id: &UserId, count: u32) {
        if count > 0 {
            self.record(Event::SessionsRevoked {
                user_id: user_id.clone(),
                count,
            })
            .await;
        }
    }

    /// Changes the password after checking the current one, with a recent
    /// authentication. Every session, pending login and trusted device of the account
    /// ends; the caller gets a fresh session in place of its own (set the returned
    /// token as the new session cookie).
    ///
    /// The write is a compare-and-set on the password epoch that was read, so a
    /// concurrent login's rehash cannot write the old password back, and of two
    /// concurrent changes one wins and the other checks its "current" password again
    /// (which then fails). Wrong current passwords are throttled per account (5 free,
    /// then a doubling lockout).
    ///
    /// Errors: `reauthentication_required`, `invalid_input` (new password not
    /// 8–1024 bytes), `invalid_credentials` (current password wrong),
    /// `too_many_attempts`, `not_found`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn change_password(
        &self,
        proof: &RecentAuth,
        current: &str,
        new: &str,
    ) -> Result<SessionToken> {
        self.check_recent(proof).await?;
        check_new_password(new)?;
        if current.len() > MAX_PASSWORD_BYTES {
            return Err(Error::InvalidCredentials);
        }
        let user_id = &proof.user_id;
        let store = &self.inner.store;
        let key = throttle::password_change_key(user_id);
        let reservation = self.reserve(&key, self.now()).await?;
        for _ in 0..PASSWORD_CAS_ROUNDS {
            let account = store
                .account(user_id)
                .await?
                .ok_or(Error::NotFound { what: "account" })?;
            let hasher = self.inner.hasher.clone();
            let stored = account.password_hash.clone();
            let current = Zeroizing::new(current.to_owned());
            let new = Zeroizing::new(new.to_owned());
            let new_hash = self
                .blocking(move || -> Result<Option<_>> {
                    if !hasher.verify(&current, &stored)? {
                        return Ok(None);
                    }
                    hasher.hash(&new).map(Some)
                })
                .await??;
            let Some(new_hash) = new_hash else {
                self.record(Event::PasswordRejected {
                    user_id: Some(account.id.clone()),
                })
                .await;
                self.report_lockout(&account.id, reservation).await;
                return Err(Error::InvalidCredentials);
            };
            let epoch = account.password_epoch.saturating_add(1);
            if !store
                .set_password(user_id, &new_hash, account.password_epoch, epoch)
                .await?
            {
                // Another password change won; check "current" against its result.
                continue;
            }
            self.forget_failures(&key, reservation).await;
            self.record(Event::PasswordChanged {
                user_id: user_id.clone(),
            })
            .await;
            self.revoke_all_devices(user_id).await?;
            // Every session carries the old epoch and is void already; delete them
            // so that they leave the lists, and give the caller a new one.
            let ended = store.delete_sessions(user_id, None).await?;
            self.sessions_ended(user_id, ended.saturating_sub(1)).await;
            return self
                .new_session(user_id.clone(), epoch, AuthMethod::Password)
                .await;
        }
        Err(Error::Unavailable {
            context: "password change lost to concurrent changes",
            source: None,
        })
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

    /// The account's security log, newest first: at most
    /// [`security_log::MAX_ENTRIES`] entries, none older than
    /// [`security_log::RETENTION_SECS`].
    ///
    /// Errors: `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn security_log(&self, user_id: &UserId) -> Result<Vec<SecurityEvent>> {
        let since = self.now().saturating_sub(security_log::RETENTION_SECS);
        let mut log = self
            .inner
            .store
            .security_log(user_id, security_log::MAX_ENTRIES)
            .await?;
        log.retain(|e| e.at >= since);
        Ok(log)
    }

    /// An operator's way back for a user who lost every factor: turns 2FA off,
    /// deletes the authenticators and backup codes, revokes every trusted device and
    /// ends every session, and records `operator` and `reason` in the security log
    /// and as an [`Event::TwoFactorReset`]. The user then logs in with the password
    /// alone and sets 2FA up again.
    ///
    /// **This bypasses the second factor.** Call it only after proving the person's
    /// identity out of band, as strongly as the second factor did (a video call
    /// against an ID document, a signed letter, a support ticket from a verified
    /// address plus a waiting period in which the account's owner is notified); never
    /// from an endpoint a user can reach.
    ///
    /// Errors: `invalid_input` (`operator` or `reason` empty), `not_found`,
    /// `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn reset_two_factor(
        &self,
        user_id: &UserId,
        operator: &str,
        reason: &str,
    ) -> Result<()> {
        let operator = security_log::bounded(operator.trim());
        let reason = security_log::bounded(reason.trim());
        if operator.is_empty() || reason.is_empty() {
            return Err(Error::input(
                "reset",
                "an operator and a reason are required",
            ));
        }
        let store = &self.inner.store;
        if store.account(user_id).await?.is_none() {
            return Err(Error::NotFound { what: "account" });
        }
        store.disable_two_factor(user_id).await?;
        self.record(Event::TwoFactorReset {
            user_id: user_id.clone(),
            operator,
            reason,
        })
        .await;
        self.revoke_all_devices(user_id).await?;
        let ended = store.delete_sessions(user_id, None).await?;
        self.sessions_ended(user_id, ended).await;
        Ok(())
    }
}
