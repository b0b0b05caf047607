//! The password step: registration, the password half of a login (with its
//! limits per login name, per account and per client), trusted devices and known
//! browsers at login.

use std::time::Duration;

use zeroize::Zeroizing;

use super::sessions::KNOWN_BROWSER_TTL_SECS;
use super::{AuthMethod, Authenticated, Service};
use crate::events::Event;
use crate::password::MAX_PASSWORD_BYTES;
use crate::store::{AccountRecord, PendingLogin, Store, UserId};
use crate::throttle::Reservation;
use crate::token::{DeviceToken, KnownBrowserToken, LoginToken};
use crate::{Error, Result, throttle, token};

/// Shortest password accepted at registration and password change.
pub const MIN_PASSWORD_BYTES: usize = 8;
/// Longest login name, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
const MAX_LABEL_CHARS: usize = 128;

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
#[non_exhaustive]
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
}
