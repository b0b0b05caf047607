//! Registration, the two-phase login, sessions, trusted devices, password changes.

use std::time::Duration;

use zeroize::Zeroizing;

use super::{AuthMethod, Authenticated, Service};
use crate::backup::{self, NormalizedBackupCode};
use crate::events::Event;
use crate::password::MAX_PASSWORD_BYTES;
use crate::secret::KeyedHash;
use crate::store::{
    AccountRecord, AuthenticatorId, AuthenticatorRecord, DeviceId, DeviceRecord, FactorCommit,
    FactorCommitted, FactorStepView, OutcomeWrites, PendingLogin, SessionId, SessionRecord,
    StepMark, Store, ThrottleState, ThrottleWrite, UserId, factor_throttle_keys,
};
use crate::throttle::{self, Reservation};
use crate::token::{self, DeviceToken, KnownBrowserToken, LoginToken, SessionToken};
use crate::totp::{Code, TotpKey};
use crate::{Error, Result};

/// How long a known-browser token ([`Service::remember_browser`]) is honoured: one
/// year (the `sf_known` cookie's lifetime).
pub const KNOWN_BROWSER_TTL_SECS: u64 = 365 * 24 * 3600;

/// Shortest password accepted at registration and password change.
pub const MIN_PASSWORD_BYTES: usize = 8;
/// Longest login name, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
const MAX_LABEL_CHARS: usize = 128;

/// How long a spent backup code is remembered (30 days), so that typing it again is
/// said as `backup_code_used` instead of `invalid_code`.
const SPENT_BACKUP_MEMORY: u64 = 30 * 24 * 3600;

/// The ephemeral-store key that marks a spent backup code of an account.
fn spent_backup_key(user_id: &UserId, h: &KeyedHash) -> String {
    format!("spent:{}:{}", user_id.as_str(), h.to_hex())
}

/// The password step's input.
#[derive(Clone, Copy)]
pub struct LoginRequest<'a> {
    /// The login name as typed (compared case-insensitively).
    pub username: &'a str,
    /// The password.
    pub password: &'a str,
    /// A key for the per-client limiter (the peer address); `None` skips it.
    pub client_key: Option<&'a str>,
    /// A trusted-device token from an earlier login, if the client has one.
    pub device_token: Option<&'a str>,
    /// A known-browser token from an earlier login to this account, if the client
    /// has one ([`Service::remember_browser`]): it exempts the request from the
    /// account-wide password limit (never from the second factor).
    pub known_browser: Option<&'a str>,
}

impl std::fmt::Debug for LoginRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("client_key", &self.client_key)
            .field("device_token", &self.device_token.map(|_| "<redacted>"))
            .field("known_browser", &self.known_browser.map(|_| "<redacted>"))
            .finish()
    }
}

impl<'a> LoginRequest<'a> {
    /// A request with a login name and a password only.
    pub fn new(username: &'a str, password: &'a str) -> Self {
        LoginRequest {
            username,
            password,
            client_key: None,
            device_token: None,
            known_browser: None,
        }
    }

    /// Sets the per-client limiter key (the peer address).
    pub fn client_key(mut self, key: &'a str) -> Self {
        self.client_key = Some(key);
        self
    }

    /// Sets the trusted-device token the client presented.
    pub fn device_token(mut self, token: &'a str) -> Self {
        self.device_token = Some(token);
        self
    }

    /// Sets the known-browser token the client presented.
    pub fn known_browser(mut self, token: &'a str) -> Self {
        self.known_browser = Some(token);
        self
    }
}

/// What the password step decided.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Logged in: the account has no second factor, or the device is trusted.
    Authenticated(Authenticated),
    /// The password was right; a second factor is owed within the ticket's lifetime.
    SecondFactorRequired(PendingLoginTicket),
}

/// A pending login, as handed to the client.
#[derive(Debug)]
pub struct PendingLoginTicket {
    /// The opaque token the client presents with its second factor.
    pub token: LoginToken,
    /// How long the pending login lives.
    pub expires_in: Duration,
    /// The methods the second-factor step accepts.
    pub methods: Vec<AuthMethod>,
}

/// A second factor as the user typed it.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum SecondFactor<'a> {
    /// A TOTP code (spaces allowed: `" 123 456 "`).
    Totp(&'a str),
    /// A backup code (any case, hyphens optional).
    BackupCode(&'a str),
    /// A security key's or passkey's assertion: the JSON of the browser's
    /// `PublicKeyCredential` (from `navigator.credentials.get` with the options of
    /// [`Service::start_webauthn_login`], binary fields base64url). It completes only
    /// the pending login whose ceremony it answers.
    #[cfg(feature = "webauthn")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
    WebAuthn(&'a str),
}

impl std::fmt::Debug for SecondFactor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecondFactor::Totp(_) => f.write_str("Totp(<redacted>)"),
            SecondFactor::BackupCode(_) => f.write_str("BackupCode(<redacted>)"),
            #[cfg(feature = "webauthn")]
            SecondFactor::WebAuthn(_) => f.write_str("WebAuthn(<redacted>)"),
        }
    }
}

/// What the unit-of-work TOTP step made: the proof, and the session and device
/// tokens when the sign-in asked for them.
pub(crate) struct StepDone {
    pub(crate) auth: Authenticated,
    pub(crate) session: Option<SessionToken>,
    pub(crate) device: Option<DeviceToken>,
}

/// A second factor after normalization.
pub(crate) enum Factor {
    Totp(Code),
    Backup(NormalizedBackupCode),
    #[cfg(feature = "webauthn")]
    WebAuthn(Box<crate::webauthn::PublicKeyCredential>),
}

/// A live session, as looked up by [`Service::session`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The session's id (for lists; not its token).
    pub id: SessionId,
    /// Whose.
    pub user_id: UserId,
    /// Their login name.
    pub username: String,
    /// How the login that made it was passed.
    pub method: AuthMethod,
    /// When it started (Unix seconds).
    pub created_at: u64,
    /// Until when it counts as recently authenticated (Unix seconds): its login or
    /// last re-authentication plus the service's re-authentication window. Credential
    /// changes need `now < reauthenticated_until`; in the past when none is open.
    pub reauthenticated_until: u64,
    /// When the session ends (Unix seconds).
    pub expires_at: u64,
}

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

/// Checks and normalizes a login name: 1–64 characters of `[A-Za-z0-9._@-]`, lowercased.
pub(crate) fn normalize_username(username: &str) -> Result<String> {
    let ok_len = !username.is_empty() && username.len() <= MAX_USERNAME_CHARS;
    let ok_chars = username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if !ok_len {
        return Err(Error::input("username", "must be 1 to 64 characters"));
    }
    if !ok_chars {
        return Err(Error::input(
            "username",
            "may contain only letters, digits and . _ @ -",
        ));
    }
    Ok(username.to_ascii_lowercase())
}

pub(crate) fn check_new_password(password: &str) -> Result<()> {
    if password.len() < MIN_PASSWORD_BYTES {
        return Err(Error::input("password", "must be at least 8 bytes"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::input("password", "must be at most 1024 bytes"));
    }
    Ok(())
}

pub(crate) fn check_label(label: &str) -> Result<String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
        return Err(Error::input("label", "must be 1 to 128 characters"));
    }
    if label.chars().any(char::is_control) {
        return Err(Error::input("label", "must not contain control characters"));
    }
    Ok(label.to_owned())
}

pub(crate) fn check_name(name: &str) -> Result<String> {
    check_label(name).map_err(|_| {
        Error::input(
            "name",
            "must be 1 to 128 characters without control characters",
        )
    })
}

impl<S: Store> Service<S> {
    /// Registers an account with a password (argon2id). The login name must be 1–64
    /// characters of `[A-Za-z0-9._@-]` and is stored lowercased; the password must be
    /// 8–1024 bytes.
    ///
    /// Errors: `invalid_input`, `username_taken`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn register(&self, username: &str, password: &str) -> Result<UserId> {
        Ok(self.create_account(username, password).await?.id)
    }

    /// Registers an account and returns its record (the login name as stored).
    pub(crate) async fn create_account(
        &self,
        username: &str,
        password: &str,
    ) -> Result<AccountRecord> {
        let username = normalize_username(username)?;
        check_new_password(password)?;
        let hash = {
            let hasher = self.inner.hasher.clone();
            let pw = Zeroizing::new(password.to_owned());
            self.blocking(move || hasher.hash(&pw)).await??
        };
        let account = AccountRecord {
            id: UserId::random(),
            username,
            password_hash: hash,
            password_epoch: 0,
            two_factor_enabled: false,
            backup_codes_key_id: None,
            created_at: self.now(),
        };
        self.inner.store.create_account(&account).await?;
        self.emit(Event::Registered {
            user_id: account.id.clone(),
        });
        Ok(account)
    }

    /// Registers like [`register`](Self::register), counting the attempt on the
    /// per-client limiter first (pass the peer's [`client_key`](crate::throttle::client_key)):
    /// a burst of registrations from one client is refused with `too_many_attempts`.
    ///
    /// Errors: as [`register`](Self::register), plus `too_many_attempts`.
    #[tracing::instrument(skip_all)]
    pub async fn register_from(
        &self,
        client_key: &str,
        username: &str,
        password: &str,
    ) -> Result<UserId> {
        normalize_username(username)?;
        check_new_password(password)?;
        self.hit_client(client_key, self.now()).await?;
        self.register(username, password).await
    }

    /// The password step.
    ///
    /// Returns [`LoginOutcome::Authenticated`] when the account has no second factor
    /// or `request.device_token` names a device this account trusts, and
    /// [`LoginOutcome::SecondFactorRequired`] otherwise. An unknown login name and a
    /// wrong password give the same error after the same argon2 work.
    ///
    /// Errors: `invalid_credentials`, `invalid_input` (password over 1024 bytes,
    /// refused before any hashing), `too_many_attempts` (per-client limit),
    /// `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, request: LoginRequest<'_>) -> Result<LoginOutcome> {
        let now = self.now();
        if request.password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::input("password", "must be at most 1024 bytes"));
        }
        if let Some(client) = request.client_key {
            self.hit_client(client, now).await?;
        }
        let name = normalize_username(request.username).ok();
        let account = match &name {
            Some(name) => self.inner.store.account_by_username(name).await?,
            None => None,
        };
        // Wrong passwords count on the login name, known or not, from every client,
        // except from a browser that logged in to this account before.
        let known = self.known_browser(account.as_ref(), request.known_browser, now);
        let password_key = throttle::password_key(name.as_deref().unwrap_or("<invalid>"));
        let reservation = if known {
            None
        } else {
            Some(
                self.reserve_password(&password_key, account.as_ref(), now)
                    .await?,
            )
        };
        let password = Zeroizing::new(request.password.to_owned());
        let hasher = self.inner.hasher.clone();
        let Some(account) = account else {
            self.blocking(move || hasher.dummy_verify(&password))
                .await?;
            self.emit(Event::PasswordRejected { user_id: None });
            return Err(Error::InvalidCredentials);
        };
        let stored = account.password_hash.clone();
        let (valid, rehash) = self
            .blocking(move || -> Result<(bool, Option<_>)> {
                let valid = hasher.verify(&password, &stored)?;
                let rehash = if valid && hasher.needs_rehash(&stored) {
                    Some(hasher.hash(&password)?)
                } else {
                    None
                };
                Ok((valid, rehash))
            })
            .await??;
        if !valid {
            self.record_from(
                Event::PasswordRejected {
                    user_id: Some(account.id.clone()),
                },
                request.client_key,
            )
            .await;
            if let Some(r) = reservation {
                let lockout = self.inner.throttle.password_lockout_after(r.state.count);
                if !lockout.is_zero() {
                    self.record(Event::LockedOut {
                        user_id: account.id.clone(),
                        retry_after: lockout,
                    })
                    .await;
                }
            }
            return Err(Error::InvalidCredentials);
        }
        // The right password gives its attempts back: neither the login name's
        // count nor the client's budget is spent by the owner's own logins.
        self.password_accepted(
            reservation.map(|r| (password_key.as_str(), r)),
            request.client_key,
            now,
        )
        .await;
        if let Some(new_hash) = rehash {
            // Best effort: a failed upgrade must not fail the login. It is a
            // compare-and-set on the epoch read above, so a password change that
            // happened meanwhile wins and this write is dropped.
            if let Err(e) = self
                .inner
                .store
                .set_password(
                    &account.id,
                    &new_hash,
                    account.password_epoch,
                    account.password_epoch,
                )
                .await
            {
                tracing::warn!(error = %e, "password rehash could not be stored");
            }
        }

        if !account.two_factor_enabled {
            return Ok(LoginOutcome::Authenticated(
                self.authenticated(&account, AuthMethod::Password, request.client_key)
                    .await,
            ));
        }
        if let Some(device) = request.device_token
            && self.device_trusted(&account, device, now).await?
        {
            return Ok(LoginOutcome::Authenticated(
                self.authenticated(&account, AuthMethod::TrustedDevice, request.client_key)
                    .await,
            ));
        }

        let token = LoginToken::generate();
        let hash = token::storage_hash(&self.inner.keys, LoginToken::purpose(), token.expose())
            .ok_or(Error::Internal("fresh login token did not decode"))?;
        let ttl = self.inner.config.login_ttl;
        let pending = PendingLogin {
            user_id: account.id.clone(),
            password_epoch: account.password_epoch,
            attempts: 0,
            expires_at: now.saturating_add(ttl),
        };
        self.inner
            .store
            .create_pending_login(&hash, &pending)
            .await?;
        Ok(LoginOutcome::SecondFactorRequired(PendingLoginTicket {
            token,
            expires_in: Duration::from_secs(ttl),
            methods: self.second_factor_methods(&account.id).await?,
        }))
    }

    /// What the second-factor step accepts for this account: TOTP (when it has a
    /// phone), WebAuthn (when it has a key and the service has a relying party), and
    /// backup codes.
    #[cfg(feature = "webauthn")]
    async fn second_factor_methods(&self, user_id: &UserId) -> Result<Vec<AuthMethod>> {
        let auths = self.inner.store.authenticators(user_id).await?;
        let has_key = auths.iter().any(|a| a.sealed_secret.is_record());
        let has_totp = auths.iter().any(|a| !a.sealed_secret.is_record());
        let mut methods = Vec::with_capacity(3);
        if has_totp || !has_key {
            methods.push(AuthMethod::Totp);
        }
        if has_key && self.inner.webauthn.is_some() {
            methods.push(AuthMethod::WebAuthn);
        }
        methods.push(AuthMethod::BackupCode);
        Ok(methods)
    }

    #[cfg(not(feature = "webauthn"))]
    async fn second_factor_methods(&self, _user_id: &UserId) -> Result<Vec<AuthMethod>> {
        Ok(vec![AuthMethod::Totp, AuthMethod::BackupCode])
    }

    /// Whether `presented` is a known-browser token of `account` (the same MAC work is
    /// done for an unknown account).
    fn known_browser(
        &self,
        account: Option<&AccountRecord>,
        presented: Option<&str>,
        now: u64,
    ) -> bool {
        let Some(presented) = presented else {
            return false;
        };
        let (id, epoch) = account.map_or(("", 0), |a| (a.id.as_str(), a.password_epoch));
        let ok = KnownBrowserToken::verify(
            &self.inner.keys,
            presented,
            id,
            epoch,
            now,
            KNOWN_BROWSER_TTL_SECS,
        );
        ok && account.is_some()
    }

    /// Counts a password attempt on the login name before the password is checked,
    /// or refuses it while the name is locked for unknown browsers.
    async fn reserve_password(
        &self,
        key: &str,
        account: Option<&AccountRecord>,
        now: u64,
    ) -> Result<Reservation> {
        let lockout = self.inner.throttle.password_lockout();
        let result = throttle::reserve_account_attempt(&self.inner.store, lockout, key, now).await;
        if let Err(Error::TooManyAttempts { retry_after, .. }) = &result {
            self.emit(Event::PasswordLimited {
                user_id: account.map(|a| a.id.clone()),
                retry_after: *retry_after,
            });
        }
        result
    }

    /// Gives back the attempts a right password counted: on the login name (when it
    /// was counted) and on the client. Best effort.
    async fn password_accepted(
        &self,
        password: Option<(&str, Reservation)>,
        client: Option<&str>,
        now: u64,
    ) {
        let store = &self.inner.store;
        if let Some((key, reservation)) = password {
            let keep = now.saturating_add(self.inner.throttle.password_lockout_memory());
            if let Err(e) = throttle::undo(store, key, reservation, keep, now).await {
                tracing::warn!(error = %e, "password attempt could not be given back");
            }
        }
        if let Some(client) = client
            && let Err(e) = throttle::refund_client(store, client, now).await
        {
            tracing::warn!(error = %e, "client attempt could not be given back");
        }
    }

    /// Counts one password attempt on the per-client limiter, or refuses it.
    pub(crate) async fn hit_client(&self, client: &str, now: u64) -> Result<()> {
        let result =
            throttle::hit_client(&self.inner.store, &self.inner.throttle, client, now).await;
        if let Err(Error::TooManyAttempts { .. }) = result {
            self.emit(Event::ClientThrottled {
                client_key: client.to_owned(),
            });
        }
        result
    }

    async fn device_trusted(
        &self,
        account: &AccountRecord,
        presented: &str,
        now: u64,
    ) -> Result<bool> {
        let Some(hashes) =
            token::lookup_hashes(&self.inner.keys, DeviceToken::purpose(), presented)
        else {
            return Ok(false);
        };
        for h in &hashes {
            if let Some(d) = self.inner.store.device(h, now).await? {
                return Ok(d.user_id == account.id && d.password_epoch == account.password_epoch);
            }
        }
        Ok(false)
    }

    pub(crate) async fn authenticated(
        &self,
        account: &AccountRecord,
        method: AuthMethod,
        client: Option<&str>,
    ) -> Authenticated {
        self.record_from(
            Event::LoginSucceeded {
                user_id: account.id.clone(),
                method,
            },
            client,
        )
        .await;
        Authenticated {
            user_id: account.id.clone(),
            username: account.username.clone(),
            method,
            password_epoch: account.password_epoch,
        }
    }

    pub(crate) fn normalize_factor(&self, factor: SecondFactor<'_>) -> Result<Factor> {
        Ok(match factor {
            SecondFactor::Totp(code) => Factor::Totp(self.inner.totp.normalize_code(code)?),
            SecondFactor::BackupCode(code) => Factor::Backup(backup::normalize(code)?),
            #[cfg(feature = "webauthn")]
            SecondFactor::WebAuthn(json) => {
                Factor::WebAuthn(Box::new(crate::webauthn::parse_json(json)?))
            }
        })
    }

    /// The second-factor step: completes the pending login named by `login_token`.
    ///
    /// Each attempt is counted on the pending login (burnt after its last attempt)
    /// and on the account (locked with doubling backoff after the free failures)
    /// *before* the code is checked. A TOTP code is accepted only if its time step is
    /// newer than the authenticator's last accepted step, by an atomic
    /// compare-and-set in the store; a backup code is consumed atomically. The
    /// pending login is single use and void once the password changes.
    ///
    /// Errors: `invalid_input` (malformed code; no attempt is counted),
    /// `invalid_code` (with the attempts left), `code_already_used`,
    /// `login_expired`, `too_many_attempts`, `unavailable`.
    #[tracing::instrument(skip_all)]
    pub async fn second_factor(
        &self,
        login_token: &str,
        factor: SecondFactor<'_>,
    ) -> Result<Authenticated> {
        self.second_factor_from(login_token, factor, None).await
    }

    /// [`second_factor`](Self::second_factor), recording `client_key` (the peer
    /// address) with the login in the account's security log.
    ///
    /// Errors: as [`second_factor`](Self::second_factor).
    #[tracing::instrument(skip_all)]
    pub async fn second_factor_from(
        &self,
        login_token: &str,
        factor: SecondFactor<'_>,
        client_key: Option<&str>,
    ) -> Result<Authenticated> {
        let factor = match self.normalize_factor(factor)? {
            Factor::Totp(code) => {
                return Ok(self
                    .totp_step(login_token, &code, client_key, None)
                    .await?
                    .auth);
            }
            other => other,
        };
        let now = self.now();
        let store = &self.inner.store;
        let Some(hashes) =
            token::lookup_hashes(&self.inner.keys, LoginToken::purpose(), login_token)
        else {
            return Err(Error::LoginExpired);
        };
        let max = self.inner.throttle.attempts_per_login();
        let mut found = None;
        for h in hashes {
            if let Some(p) = store.begin_login_attempt(&h, max, now).await? {
                found = Some((h, p));
                break;
            }
        }
        let (hash, pending) = found.ok_or(Error::LoginExpired)?;
        let account = match store.account(&pending.user_id).await? {
            Some(a) if a.password_epoch == pending.password_epoch && a.two_factor_enabled => a,
            _ => {
                store.delete_pending_login(&hash).await?;
                return Err(Error::LoginExpired);
            }
        };
        let reservation = self.reserve_factor(&account.id, &factor, now).await?;

        let pending_left = max.saturating_sub(pending.attempts);
        let method = match &factor {
            // Routed to `totp_step` above.
            Factor::Totp(_) => return Err(Error::Internal("TOTP step took the backup path")),
            #[cfg(feature = "webauthn")]
            Factor::WebAuthn(credential) => {
                if self
                    .verify_assertion(&account.id, &hash, credential, now)
                    .await?
                {
                    self.take_pending(&hash, now).await?;
                    Some(AuthMethod::WebAuthn)
                } else {
                    None
                }
            }
            Factor::Backup(code) => {
                let taken = self.take_pending(&hash, now).await?;
                match self.spend_backup_code(&account.id, code).await {
                    Ok(true) => Some(AuthMethod::BackupCode),
                    Ok(false) => {
                        self.restore_pending(&hash, &taken, pending_left).await;
                        None
                    }
                    Err(e) => {
                        self.restore_pending(&hash, &taken, pending_left).await;
                        return Err(e);
                    }
                }
            }
        };
        match method {
            Some(method) => {
                self.factor_succeeded(&account.id, reservation).await;
                self.reseal_if_needed(&account.id, None).await;
                Ok(self.authenticated(&account, method, client_key).await)
            }
            None => {
                if pending_left == 0 {
                    store.delete_pending_login(&hash).await?;
                }
                let failure = self.failure(&account.id, reservation, pending_left).await;
                Err(self.said_as_spent(&account.id, &factor, failure).await)
            }
        }
    }

    /// The TOTP second-factor step in one read and one commit
    /// ([`Store::read_factor_step`], [`Store::commit_factor_step`]).
    ///
    /// The decisions are today's: the pending login's attempt is counted by the read
    /// (or, in a store whose read writes nothing, by the commit, which then refuses a
    /// login out of attempts);
    /// the budget and the lockout refuse before the code is checked; the commit counts
    /// the attempt on both throttles (or, when the code is spent, clears the lockout
    /// and leaves the budget as it was: spent and refunded) against the states the
    /// code was checked under, so a result is only revealed for a counted attempt. A
    /// throttle that moved meanwhile makes the commit write nothing; the throttles are
    /// read again and the step decided again. `finish` (the sign-in) adds the session
    /// and, with a label, the trusted device to the commit.
    pub(crate) async fn totp_step(
        &self,
        login_token: &str,
        code: &Code,
        client_key: Option<&str>,
        finish: Option<Option<&str>>,
    ) -> Result<StepDone> {
        let now = self.now();
        let store = &self.inner.store;
        let policy = &self.inner.throttle;
        let hashes = token::lookup_hashes(&self.inner.keys, LoginToken::purpose(), login_token)
            .ok_or(Error::LoginExpired)?;
        let max = policy.attempts_per_login();
        let FactorStepView {
            token: hash,
            pending,
            account,
            authenticators,
            throttles,
        } = store
            .read_factor_step(&hashes, max, now)
            .await?
            .ok_or(Error::LoginExpired)?;
        let account = match account {
            Some(a) if a.password_epoch == pending.password_epoch && a.two_factor_enabled => a,
            _ => {
                store.delete_pending_login(&hash).await?;
                return Err(Error::LoginExpired);
            }
        };
        let user_id = &account.id;
        let pending_left = max.saturating_sub(pending.attempts);
        let [lockout_key, budget_key] = factor_throttle_keys(user_id);

        // What a success writes besides the throttles, made once.
        let method = AuthMethod::Totp;
        let session = match finish {
            Some(_) => {
                Some(self.session_record(user_id.clone(), account.password_epoch, method)?)
            }
            None => None,
        };
        let device = match finish.flatten() {
            Some(label) => {
                Some(self.device_record(user_id.clone(), account.password_epoch, label, now)?)
            }
            None => None,
        };
        let succeeded = Event::LoginSucceeded {
            user_id: user_id.clone(),
            method,
        };
        let success_log: Vec<_> = succeeded
            .security_entry(now)
            .map(|(_, e)| e.with_client(client_key))
            .into_iter()
            .collect();

        let mut states = throttles;
        let mut marks: Option<Vec<StepMark>> = None;
        for _ in 0..throttle::CAS_ROUNDS {
            let [lockout, budget] = states;
            let budget_counted = throttle::budget_after(policy, budget, now)?;
            let (lockout_counted, lockout_keep) =
                throttle::lockout_after(policy.second_factor_lockout(), lockout, now)?;
            let marks = match &mut marks {
                Some(m) => &*m,
                None => {
                    let matches = self.match_totp(user_id, &authenticators, code, now)?;
                    marks.insert(
                        matches
                            .into_iter()
                            .map(|(authenticator, step)| StepMark {
                                authenticator,
                                step,
                                keep_until: self.replay_keep_until(step, now),
                            })
                            .collect(),
                    )
                }
            };
            let writes = [
                ThrottleWrite {
                    key: &lockout_key,
                    expected: lockout,
                    counted: (lockout_counted, lockout_keep),
                    on_success: (ThrottleState::default(), 0),
                },
                ThrottleWrite {
                    key: &budget_key,
                    expected: budget,
                    counted: (budget_counted, budget_counted.until),
                    on_success: (budget, budget.until),
                },
            ];
            let failure_events = match marks.first() {
                Some(m) => vec![Event::CodeReplayed {
                    user_id: user_id.clone(),
                    authenticator_id: m.authenticator.clone(),
                }],
                None => self.failure_events(user_id, lockout_counted, pending_left),
            };
            let failure_log: Vec<_> = failure_events
                .iter()
                .filter_map(|e| e.security_entry(now).map(|(_, e)| e))
                .collect();
            let commit = FactorCommit {
                token: &hash,
                max_attempts: max,
                user_id,
                spend: marks,
                throttles: &writes,
                on_success: OutcomeWrites {
                    take_pending: true,
                    session: session.as_ref().map(|(_, h, r)| (h, r)),
                    device: device.as_ref().map(|(_, h, r)| (h, r)),
                    log: &success_log,
                },
                on_failure: OutcomeWrites {
                    take_pending: pending_left == 0,
                    log: &failure_log,
                    ..OutcomeWrites::default()
                },
                log_max_entries: crate::security_log::MAX_ENTRIES,
                log_forget_before: now.saturating_sub(crate::security_log::RETENTION_SECS),
                now,
            };
            match store.commit_factor_step(&commit).await? {
                FactorCommitted::Spent => {
                    self.reseal_if_needed(user_id, Some(authenticators)).await;
                    self.emit(succeeded);
                    let device = device.map(|(token, _, record)| {
                        self.emit(Event::DeviceTrusted {
                            user_id: record.user_id,
                            device_id: record.id,
                        });
                        token
                    });
                    return Ok(StepDone {
                        auth: Authenticated {
                            user_id: account.id.clone(),
                            username: account.username.clone(),
                            method,
                            password_epoch: account.password_epoch,
                        },
                        session: session.map(|(token, _, _)| token),
                        device,
                    });
                }
                FactorCommitted::NotSpent => {
                    for e in &failure_events {
                        self.emit(e.clone());
                    }
                    if marks.is_empty() {
                        let remaining = policy
                            .account_attempts_left(lockout_counted.count)
                            .min(pending_left);
                        return Err(Error::InvalidCode {
                            remaining_attempts: (remaining != u32::MAX).then_some(remaining),
                        });
                    }
                    return Err(Error::CodeAlreadyUsed);
                }
                FactorCommitted::Expired => return Err(Error::LoginExpired),
                FactorCommitted::Conflict => {
                    states = [
                        store.throttle(&lockout_key, now).await?,
                        store.throttle(&budget_key, now).await?,
                    ];
                }
            }
        }
        Err(throttle::retry_after(now.saturating_add(1), now))
    }

    /// The audit events of a wrong TOTP code, as [`Self::failure`] records them.
    fn failure_events(
        &self,
        user_id: &UserId,
        counted: ThrottleState,
        pending_left: u32,
    ) -> Vec<Event> {
        let policy = &self.inner.throttle;
        let remaining = policy
            .account_attempts_left(counted.count)
            .min(pending_left);
        let mut events = vec![Event::SecondFactorRejected {
            user_id: user_id.clone(),
            remaining_attempts: remaining,
        }];
        let lockout = policy.lockout_after(counted.count);
        if !lockout.is_zero() {
            events.push(Event::LockedOut {
                user_id: user_id.clone(),
                retry_after: lockout,
            });
        }
        events
    }

    /// Counts one attempt on a lockout throttle (the second-factor schedule) before
    /// the secret is checked; refused while it is locked (the lockout itself was
    /// reported when it began, by [`Self::failure`]).
    pub(crate) async fn reserve(&self, key: &str, now: u64) -> Result<Reservation> {
        throttle::reserve_account_attempt(
            &self.inner.store,
            self.inner.throttle.second_factor_lockout(),
            key,
            now,
        )
        .await
    }

    /// Counts a second-factor attempt on the account before it is checked: a TOTP
    /// code on the short lockout and on the long-term budget (either refuses it while
    /// locked or spent); a backup code on neither (see the [throttle
    /// docs](crate::throttle)), so the owner keeps a way in while TOTP is locked.
    pub(crate) async fn reserve_factor(
        &self,
        user_id: &UserId,
        factor: &Factor,
        now: u64,
    ) -> Result<Option<Reservation>> {
        if let Factor::Backup(_) = factor {
            return Ok(None);
        }
        let store = &self.inner.store;
        let policy = &self.inner.throttle;
        let budget = throttle::budget_key(user_id);
        throttle::check_budget(store, policy, &budget, now).await?;
        let reservation = self.reserve(&throttle::account_key(user_id), now).await?;
        if let Err(e) = throttle::spend_budget(store, policy, &budget, now).await {
            if let Error::TooManyAttempts { retry_after, .. } = e {
                self.record(Event::LockedOut {
                    user_id: user_id.clone(),
                    retry_after,
                })
                .await;
            }
            return Err(e);
        }
        Ok(Some(reservation))
    }

    /// After a second factor passed: clears the short lockout and gives back the
    /// budget the attempt took (the failures before it stay spent). Best effort.
    pub(crate) async fn factor_succeeded(
        &self,
        user_id: &UserId,
        reservation: Option<Reservation>,
    ) {
        let Some(reservation) = reservation else {
            return;
        };
        self.forget_failures(&throttle::account_key(user_id), reservation)
            .await;
        let budget = throttle::budget_key(user_id);
        if let Err(e) =
            throttle::refund_budget(&self.inner.store, &self.inner.throttle, &budget, self.now())
                .await
        {
            tracing::warn!(error = %e, "second-factor budget could not be refunded");
        }
    }

    /// The error for a wrong code, with the attempts left, and its audit event.
    /// `pending_left` is `u32::MAX` where no pending login applies.
    pub(crate) async fn failure(
        &self,
        user_id: &UserId,
        reservation: Option<Reservation>,
        pending_left: u32,
    ) -> Error {
        let policy = &self.inner.throttle;
        let remaining = match reservation {
            Some(r) => policy
                .account_attempts_left(r.state.count)
                .min(pending_left),
            None => pending_left,
        };
        let known = (remaining != u32::MAX).then_some(remaining);
        self.record(Event::SecondFactorRejected {
            user_id: user_id.clone(),
            remaining_attempts: known.unwrap_or(u32::MAX),
        })
        .await;
        if let Some(r) = reservation {
            self.report_lockout(user_id, r).await;
        }
        Error::InvalidCode {
            remaining_attempts: known,
        }
    }

    /// Resets the throttle `key` after a success. Best effort: by now the factor or
    /// password was accepted (and possibly spent), so a failed reset only leaves the
    /// failures counted and must not turn the success into an error.
    pub(crate) async fn forget_failures(&self, key: &str, reservation: Reservation) {
        if let Err(e) =
            throttle::reset_account(&self.inner.store, key, reservation, self.now()).await
        {
            tracing::warn!(error = %e, throttle = key, "throttle could not be reset");
        }
    }

    /// Emits [`Event::LockedOut`] when the failure counted by `reservation` starts a
    /// lockout.
    pub(crate) async fn report_lockout(&self, user_id: &UserId, reservation: Reservation) {
        let lockout = self.inner.throttle.lockout_after(reservation.state.count);
        if !lockout.is_zero() {
            self.record(Event::LockedOut {
                user_id: user_id.clone(),
                retry_after: lockout,
            })
            .await;
        }
    }

    async fn take_pending(&self, hash: &KeyedHash, now: u64) -> Result<PendingLogin> {
        self.inner
            .store
            .take_pending_login(hash, now)
            .await?
            .ok_or(Error::LoginExpired)
    }

    /// Puts a taken pending login back after a code that could not be spent, unless
    /// its attempts are used up. Best effort: a store failure here leaves the user to
    /// start the login again, never with a spent code.
    async fn restore_pending(&self, hash: &KeyedHash, pending: &PendingLogin, pending_left: u32) {
        if pending_left == 0 {
            return;
        }
        if let Err(e) = self.inner.store.create_pending_login(hash, pending).await {
            tracing::warn!(error = %e, "pending login could not be restored");
        }
    }

    /// Every authenticator of the account whose code `code` is at `now`, with the
    /// newest matching step, newest first. Nothing is spent.
    ///
    /// An authenticator whose secret cannot be opened (its key left the key ring, or
    /// the blob is damaged) is skipped and reported
    /// ([`Event::AuthenticatorUnreadable`]): the account's other authenticators and
    /// its backup codes keep working, and the status says which one to replace.
    pub(crate) fn match_totp(
        &self,
        user_id: &UserId,
        auths: &[AuthenticatorRecord],
        code: &Code,
        now: u64,
    ) -> Result<Vec<(AuthenticatorId, u64)>> {
        let mut matches = Vec::new();
        // Security keys (sealed records) have no codes.
        for a in auths.iter().filter(|a| !a.sealed_secret.is_record()) {
            let sealed = a.sealed_secret.as_bytes();
            if let Some(key) = self.inner.prepared.get(user_id, sealed) {
                if let Some(step) = key.verify(code, now) {
                    matches.push((a.id.clone(), step));
                }
                continue;
            }
            let secret = match self.inner.keys.open(user_id.as_str(), &a.sealed_secret) {
                Ok(secret) => secret,
                Err(e @ (Error::UnknownKey { .. } | Error::SealedSecretInvalid)) => {
                    tracing::warn!(error = %e, authenticator = %a.id, "authenticator skipped");
                    self.emit(Event::AuthenticatorUnreadable {
                        user_id: user_id.clone(),
                        authenticator_id: a.id.clone(),
                    });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let key = std::sync::Arc::new(TotpKey::new(&self.inner.totp, secret.expose_bytes()));
            if let Some(step) = key.verify(code, now) {
                matches.push((a.id.clone(), step));
            }
            self.inner.prepared.insert(user_id, sealed, key);
        }
        matches.sort_by_key(|m| std::cmp::Reverse(m.1));
        Ok(matches)
    }

    /// Marks the first matching step that is still fresh as used. `Ok(false)` means
    /// every match was a replay (an audit event is emitted).
    pub(crate) async fn spend_totp(
        &self,
        user_id: &UserId,
        matches: &[(AuthenticatorId, u64)],
        now: u64,
    ) -> Result<bool> {
        for (id, step) in matches {
            if self
                .inner
                .store
                .advance_last_step(id, *step, self.replay_keep_until(*step, now))
                .await?
            {
                return Ok(true);
            }
        }
        if let Some((id, _)) = matches.first() {
            self.record(Event::CodeReplayed {
                user_id: user_id.clone(),
                authenticator_id: id.clone(),
            })
            .await;
        }
        Ok(false)
    }

    /// When a replay mark for `step` can be forgotten: once no code of that step can
    /// verify any more, plus one period of margin.
    pub(crate) fn replay_keep_until(&self, step: u64, now: u64) -> u64 {
        let p = &self.inner.totp;
        let last_valid = step
            .saturating_add(u64::from(p.skew()) + 2)
            .saturating_mul(p.period());
        last_valid.max(now.saturating_add(p.period()))
    }

    /// Consumes a backup code; emits the audit event with the codes left.
    pub(crate) async fn spend_backup_code(
        &self,
        user_id: &UserId,
        code: &NormalizedBackupCode,
    ) -> Result<bool> {
        let store = &self.inner.store;
        for h in backup::hash_candidates(&self.inner.keys, code) {
            if store.consume_backup_code(user_id, &h).await? {
                // The code is spent: from here on nothing may fail the login. The
                // count is for the audit event only.
                self.remember_spent_backup_code(user_id, &h).await;
                match store.backup_codes_remaining(user_id).await {
                    Ok(remaining) => {
                        self.record(Event::BackupCodeUsed {
                            user_id: user_id.clone(),
                            remaining,
                        })
                        .await
                    }
                    Err(e) => tracing::warn!(error = %e, "backup codes left could not be counted"),
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Remembers a spent backup code's keyed hash for [`SPENT_BACKUP_MEMORY`] seconds
    /// (in the ephemeral store, as a throttle entry), so that typing it again is
    /// `backup_code_used`. Best effort: the code is spent either way.
    async fn remember_spent_backup_code(&self, user_id: &UserId, h: &KeyedHash) {
        let now = self.now();
        let key = spent_backup_key(user_id, h);
        let mark = ThrottleState {
            count: 1,
            until: now.saturating_add(SPENT_BACKUP_MEMORY),
        };
        let store = &self.inner.store;
        let written = match store.throttle(&key, now).await {
            Ok(current) => {
                store
                    .update_throttle(&key, current, mark, mark.until, now)
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(error = %e, "spent backup code could not be remembered");
        }
    }

    /// A failed factor's error, with `invalid_code` said as `backup_code_used` (the
    /// same count of attempts left) when the factor is a backup code of this account
    /// that was spent before: the one rule of login, re-authentication and disable.
    pub(crate) async fn said_as_spent(
        &self,
        user_id: &UserId,
        factor: &Factor,
        failure: Error,
    ) -> Error {
        match (failure, factor) {
            (Error::InvalidCode { remaining_attempts }, Factor::Backup(code))
                if self.backup_code_was_spent(user_id, code).await =>
            {
                Error::BackupCodeUsed { remaining_attempts }
            }
            (e, _) => e,
        }
    }

    /// Whether `code` is a backup code of this account that was spent (within
    /// [`SPENT_BACKUP_MEMORY`]). A store failure reads as "no": the answer is then
    /// the plain `invalid_code`.
    async fn backup_code_was_spent(&self, user_id: &UserId, code: &NormalizedBackupCode) -> bool {
        let now = self.now();
        for h in backup::hash_candidates(&self.inner.keys, code) {
            match self
                .inner
                .store
                .throttle(&spent_backup_key(user_id, &h), now)
                .await
            {
                Ok(state) if state.count > 0 => return true,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "spent backup codes could not be read");
                    return false;
                }
            }
        }
        false
    }

    /// Re-seals the account's secrets under the active key if any uses an older one.
    /// Best effort; runs after a successful second factor. `known` is the list of
    /// authenticators the caller already read, if any (a stale list is harmless: a
    /// removed authenticator is not resealed, one resealed meanwhile is resealed again
    /// with the same secret); without one, it is read from the store.
    pub(crate) async fn reseal_if_needed(
        &self,
        user_id: &UserId,
        known: Option<Vec<AuthenticatorRecord>>,
    ) {
        let keys = &self.inner.keys;
        let auths = match known {
            Some(auths) => auths,
            None => match self.inner.store.authenticators(user_id).await {
                Ok(auths) => auths,
                Err(_) => return,
            },
        };
        for a in auths.iter().filter(|a| keys.needs_reseal(&a.sealed_secret)) {
            let result = match keys.reseal(user_id.as_str(), &a.sealed_secret) {
                Ok(sealed) => self
                    .inner
                    .store
                    .reseal_authenticator(user_id, &a.id, &sealed)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "re-sealing under the active key failed");
            }
        }
    }

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
