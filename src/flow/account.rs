//! Account changes: recent authentication (step-up), password changes, removing
//! authenticators, turning 2FA off, new backup codes, the security log and the
//! operator's reset.

use zeroize::Zeroizing;

use super::password::{check_new_password, normalize_username};
use super::second_factor::SecondFactor;
use super::{AuthMethod, RecentAuth, Service};
use crate::backup::BackupCode;
use crate::events::Event;
use crate::password::MAX_PASSWORD_BYTES;
use crate::security_log::SecurityEvent;
use crate::store::{AuthenticatorId, RemoveOutcome, SessionId, Store, UserId};
use crate::token::SessionToken;
use crate::{Error, Result, security_log, throttle};

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
            let account = self.account_record(user_id).await?;
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

    /// The account registered under `username` (compared as registration stores it,
    /// lowercased), for operator tools such as a support desk's
    /// [`reset_two_factor`](Self::reset_two_factor). A name that registration would
    /// refuse is `Ok(None)`. Not for login pages: the password step never says
    /// whether an account exists.
    ///
    /// Errors: `unavailable`.
    pub async fn find_user(&self, username: &str) -> Result<Option<UserId>> {
        let Ok(name) = normalize_username(username) else {
            return Ok(None);
        };
        Ok(self
            .inner
            .store
            .account_by_username(&name)
            .await?
            .map(|a| a.id))
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
        self.account_record(user_id).await?;
        let store = &self.inner.store;
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

    /// Removes one authenticator, with a recent authentication. The last one cannot
    /// be removed: turn 2FA off instead. Revokes the account's trusted devices and
    /// ends its other sessions.
    ///
    /// Errors: `reauthentication_required`, `not_found`, `last_authenticator`,
    /// `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn remove_authenticator(
        &self,
        proof: &RecentAuth,
        id: &AuthenticatorId,
    ) -> Result<()> {
        self.check_recent(proof).await?;
        let user_id = &proof.user_id;
        // Refuse the plain mistakes before ending anything; the store's removal below
        // is what decides under a race.
        let auths = self.inner.store.authenticators(user_id).await?;
        if !auths.iter().any(|a| &a.id == id) {
            return Err(Error::NotFound {
                what: "authenticator",
            });
        }
        if auths.len() == 1 {
            return Err(Error::LastAuthenticator);
        }
        self.end_others(proof).await?;
        match self.inner.store.remove_authenticator(user_id, id).await? {
            RemoveOutcome::Removed => {
                self.record(Event::AuthenticatorRemoved {
                    user_id: user_id.clone(),
                    authenticator_id: id.clone(),
                })
                .await;
                Ok(())
            }
            RemoveOutcome::NotFound => Err(Error::NotFound {
                what: "authenticator",
            }),
            RemoveOutcome::LastOne => Err(Error::LastAuthenticator),
        }
    }

    /// Turns 2FA off, with a recent authentication and a valid TOTP or backup code:
    /// removes the authenticators and backup codes, revokes every trusted device and
    /// ends the account's other sessions.
    ///
    /// Errors: `reauthentication_required`, `invalid_input`, `invalid_code`,
    /// `backup_code_used` (a spent backup code of this account, counted like
    /// `invalid_code`), `code_already_used`, `two_factor_not_enabled`,
    /// `too_many_attempts`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn disable_two_factor(
        &self,
        proof: &RecentAuth,
        factor: SecondFactor<'_>,
    ) -> Result<()> {
        self.verify_for_action(proof, factor).await?;
        self.end_others(proof).await?;
        self.inner.store.disable_two_factor(&proof.user_id).await?;
        self.record(Event::TwoFactorDisabled {
            user_id: proof.user_id.clone(),
        })
        .await;
        Ok(())
    }

    /// Replaces the backup codes with a new set, with a recent authentication and a
    /// valid TOTP code; the old set stops working. Show the new codes once. Revokes
    /// the account's trusted devices and ends its other sessions.
    ///
    /// Errors: `reauthentication_required`, `invalid_input`, `invalid_code`,
    /// `code_already_used`, `two_factor_not_enabled`, `too_many_attempts`,
    /// `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn regenerate_backup_codes(
        &self,
        proof: &RecentAuth,
        totp_code: &str,
    ) -> Result<Vec<BackupCode>> {
        self.regenerate_confirmed(proof, SecondFactor::Totp(totp_code))
            .await
    }

    /// [`regenerate_backup_codes`](Self::regenerate_backup_codes) confirmed with a
    /// security key instead of a TOTP code (feature `webauthn`): `assertion_json` is
    /// the browser's answer to
    /// [`start_webauthn_confirmation`](Self::start_webauthn_confirmation) in the
    /// proof's session. An account whose only factors are keys renews its codes this
    /// way.
    ///
    /// Errors: as [`regenerate_backup_codes`](Self::regenerate_backup_codes).
    #[cfg(feature = "webauthn")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
    #[tracing::instrument(skip_all)]
    pub async fn regenerate_backup_codes_with_key(
        &self,
        proof: &RecentAuth,
        assertion_json: &str,
    ) -> Result<Vec<BackupCode>> {
        self.regenerate_confirmed(proof, SecondFactor::WebAuthn(assertion_json))
            .await
    }

    async fn regenerate_confirmed(
        &self,
        proof: &RecentAuth,
        factor: SecondFactor<'_>,
    ) -> Result<Vec<BackupCode>> {
        self.verify_for_action(proof, factor).await?;
        let codes = self.new_backup_codes()?;
        let hashes = self.hash_backup_codes(&codes);
        self.end_others(proof).await?;
        self.inner
            .store
            .replace_backup_codes(&proof.user_id, &hashes, self.inner.keys.active_id())
            .await?;
        self.record(Event::BackupCodesRegenerated {
            user_id: proof.user_id.clone(),
        })
        .await;
        Ok(codes)
    }
}
