//! One call per user action for the login ceremony: what an adapter needs to answer
//! a password step or a second-factor step, cookies and their lifetimes included.
//!
//! [`Service::login`], [`Service::second_factor`], [`Service::issue_session`],
//! [`Service::trust_device`] and [`Service::remember_browser`] are the pieces; an
//! adapter that calls them itself decides the order (trust the device, then issue the
//! session, and a failed trust must not fail the login) and the cookie lifetimes.
//! [`Service::sign_in`] and [`Service::sign_in_second_factor`] make those decisions
//! here, once, so that a handler only parses and maps.

use std::time::Duration;

use super::{AuthMethod, Authenticated, Service};
use super::{KNOWN_BROWSER_TTL_SECS, LoginOutcome, LoginRequest, PendingLoginTicket, SecondFactor};
use crate::Result;
use crate::store::Store;
use crate::token::{DeviceToken, KnownBrowserToken, SessionToken};

/// A completed login, as the client gets it: the session and the tokens to keep (as
/// cookies), each with its lifetime.
#[derive(Debug)]
#[non_exhaustive]
pub struct LoggedIn {
    /// The login name, as stored (lowercase).
    pub username: String,
    /// How the login's last step was passed.
    pub method: AuthMethod,
    /// The session token (the session cookie).
    pub session: SessionToken,
    /// How long the session lives.
    pub session_ttl: Duration,
    /// The known-browser token (a long-lived cookie): it exempts this browser from
    /// the account-wide password limit.
    pub known_browser: KnownBrowserToken,
    /// How long the known-browser token is honoured.
    pub known_browser_ttl: Duration,
    /// The trusted-device token, when the user asked to remember this device and it
    /// could be stored.
    pub device: Option<DeviceToken>,
    /// How long a trusted device skips the second factor.
    pub device_ttl: Duration,
}

/// What the password step decided, ready for the client.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignIn {
    /// Logged in (no second factor, or a trusted device).
    LoggedIn(LoggedIn),
    /// The password was right; a second factor is owed.
    SecondFactorRequired(PendingLoginTicket),
}

/// The second-factor step's input besides the code.
#[derive(Clone, Copy, Debug, Default)]
pub struct SecondFactorOptions<'a> {
    /// Remember this device (skip the second factor on it for the device lifetime),
    /// with a label for the device list ("Firefox on Linux").
    pub remember_device: Option<&'a str>,
    /// The client key (peer address), recorded with the login.
    pub client_key: Option<&'a str>,
}

impl<S: Store> Service<S> {
    /// The password step, finished for the client: like [`login`](Self::login), but
    /// a completed login comes back as a [`LoggedIn`] (session and known-browser
    /// token issued).
    ///
    /// Errors: as [`login`](Self::login).
    #[tracing::instrument(skip_all)]
    pub async fn sign_in(&self, request: LoginRequest<'_>) -> Result<SignIn> {
        match self.login(request).await? {
            LoginOutcome::Authenticated(auth) => {
                Ok(SignIn::LoggedIn(self.logged_in(auth, None).await?))
            }
            LoginOutcome::SecondFactorRequired(ticket) => Ok(SignIn::SecondFactorRequired(ticket)),
        }
    }

    /// The second-factor step, finished for the client: like
    /// [`second_factor_from`](Self::second_factor_from), then the device is trusted
    /// when asked (a failure to store it is logged and leaves `device` empty: the
    /// login itself has succeeded and the code is spent), and the session and
    /// known-browser token are issued.
    ///
    /// Errors: as [`second_factor`](Self::second_factor); `invalid_input` for a bad
    /// device label (checked before the code).
    #[tracing::instrument(skip_all)]
    pub async fn sign_in_second_factor(
        &self,
        login_token: &str,
        factor: SecondFactor<'_>,
        options: SecondFactorOptions<'_>,
    ) -> Result<LoggedIn> {
        if let Some(label) = options.remember_device {
            super::password::check_label(label)?;
        }
        if let SecondFactor::Totp(code) = factor {
            // One read and one commit: the session and the device are written with
            // the code's replay mark, all or nothing.
            let code = self.totp_policy().normalize_code(code)?;
            let done = self
                .totp_step(
                    login_token,
                    &code,
                    options.client_key,
                    Some(options.remember_device),
                )
                .await?;
            let session = done
                .session
                .ok_or(crate::Error::Internal("the sign-in step made no session"))?;
            return Ok(self.logged_in_with(done.auth, session, done.device));
        }
        let auth = self
            .second_factor_from(login_token, factor, options.client_key)
            .await?;
        self.logged_in(auth, options.remember_device).await
    }

    /// Registration, finished for the client: registers the account (counting the
    /// attempt on the per-client limiter first when `client_key` is given) and logs
    /// it in, without a second argon2 job. The [`LoggedIn`] carries the login name as
    /// stored (lowercase).
    ///
    /// Errors: as [`register_from`](Self::register_from).
    #[tracing::instrument(skip_all)]
    pub async fn sign_up(
        &self,
        client_key: Option<&str>,
        username: &str,
        password: &str,
    ) -> Result<LoggedIn> {
        super::password::normalize_username(username)?;
        super::password::check_new_password(password)?;
        if let Some(client) = client_key {
            self.hit_client(client, self.now()).await?;
        }
        let account = self.create_account(username, password).await?;
        let auth = self
            .authenticated(&account, AuthMethod::Password, client_key)
            .await;
        self.logged_in(auth, None).await
    }

    async fn logged_in(&self, auth: Authenticated, remember: Option<&str>) -> Result<LoggedIn> {
        let device = match remember {
            Some(label) => match self.trust_device(&auth, label).await {
                Ok(token) => Some(token),
                Err(e) => {
                    tracing::warn!(error = %e, "the device could not be trusted; the login stands");
                    None
                }
            },
            None => None,
        };
        let session = self
            .new_session(auth.user_id.clone(), auth.password_epoch, auth.method)
            .await?;
        Ok(self.logged_in_with(auth, session, device))
    }

    fn logged_in_with(
        &self,
        auth: Authenticated,
        session: SessionToken,
        device: Option<DeviceToken>,
    ) -> LoggedIn {
        let known_browser = self.remember_browser(&auth);
        let username = auth.username().to_owned();
        let method = auth.method();
        LoggedIn {
            username,
            method,
            session,
            session_ttl: self.session_ttl(),
            known_browser,
            known_browser_ttl: Duration::from_secs(KNOWN_BROWSER_TTL_SECS),
            device,
            device_ttl: self.device_ttl(),
        }
    }
}
