//! The flows: registration, the two-phase login, enrollment, and account security
//! settings, on one [`Service`] made by a validated [`ServiceBuilder`].
//!
//! Login is a ceremony in two steps:
//!
//! 1. [`Service::login`] checks the password. It returns
//!    [`LoginOutcome::Authenticated`] when the account has no second factor (or the
//!    request carries a valid trusted-device token), or
//!    [`LoginOutcome::SecondFactorRequired`] with an opaque [`LoginToken`] that the
//!    client keeps (a cookie) — a pending login is not a session.
//! 2. [`Service::second_factor`] takes that token and a TOTP or backup code and
//!    returns [`Authenticated`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> secondfactor::Result<()> {
//! use secondfactor::password::PasswordHasher;
//! use secondfactor::secret::{KeyRing, SealingKey};
//! use secondfactor::store::MemoryStore;
//! use secondfactor::{LoginOutcome, LoginRequest, Service};
//!
//! let service = Service::builder(MemoryStore::new(), KeyRing::new(1, SealingKey::generate()))
//!     .password_hasher(PasswordHasher::new(1024, 1, 1)?) // cheap, for the example only
//!     .build()?;
//! service.register("bob", "a long password").await?;
//! // Without 2FA the password step is the whole login.
//! let LoginOutcome::Authenticated(auth) =
//!     service.login(LoginRequest::new("bob", "a long password").client_key("192.0.2.7")).await?
//! else {
//!     unreachable!()
//! };
//! let session = service.issue_session(auth).await?;
//! service.end_session(session.expose()).await?;
//! # Ok(()) }
//! ```
//!
//! Only this module can make an [`Authenticated`], and only an [`Authenticated`] can
//! become a session ([`Service::issue_session`]) or a trusted device
//! ([`Service::trust_device`]):
//!
//! ```compile_fail
//! use secondfactor::{AuthMethod, Authenticated};
//! use secondfactor::store::UserId;
//! // The fields are private: outside the core there is no way to forge one.
//! let forged = Authenticated {
//!     user_id: UserId::new("victim"),
//!     username: "victim".to_owned(),
//!     method: AuthMethod::Totp,
//!     password_epoch: 0,
//! };
//! ```
//!
//! Enrollment is a ceremony too: [`Service::setup_two_factor`] returns a new secret
//! (with its `otpauth://` URI and QR) and stores it pending; 2FA is on only once
//! [`Service::confirm_enrollment`] receives a valid code from it, which also marks that
//! code's time step used and returns the backup codes, once.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::backup::BackupCode;
use crate::clock::{Clock, SystemClock};
use crate::events::{Event, EventSink, TracingEvents};
use crate::password::PasswordHasher;
use crate::secret::KeyRing;
use crate::store::{AccountRecord, Store, UserId};
use crate::throttle::ThrottlePolicy;
use crate::totp::TotpPolicy;
use crate::{Error, Result};

mod account;
mod enrollment;
mod factor;
mod import;
mod password;
mod prepared;
mod proof;
mod second_factor;
mod sessions;
mod signin;
#[cfg(feature = "webauthn")]
mod webauthn;

pub use account::ReauthRequest;
pub use enrollment::{
    AuthenticatorInfo, AuthenticatorKind, EnrollmentConfirmed, EnrollmentSetup, TwoFactorStatus,
};
pub use import::{ImportOutcome, ImportedAccount, ImportedTotp, LegacyPassword};
pub use password::{
    LoginOutcome, LoginRequest, MAX_USERNAME_CHARS, MIN_PASSWORD_BYTES, PendingLoginTicket,
};
pub use proof::{Authenticated, RecentAuth, Session};
pub use second_factor::SecondFactor;
pub use sessions::{KNOWN_BROWSER_TTL_SECS, SessionInfo, TrustedDevice};
pub use signin::{LoggedIn, SecondFactorOptions, SignIn};
#[cfg(feature = "webauthn")]
pub use webauthn::WebAuthnRegistered;

pub use crate::token::{DeviceToken, KnownBrowserToken, LoginToken, SessionToken};

pub use crate::auth::AuthMethod;

/// Runs blocking work (argon2 hashing) off the async executor.
///
/// The default, [`Inline`], runs it in place, which is right for tests and CLIs. A
/// server passes a runner for its runtime: `TokioBlocking` (feature `tokio`) or, on
/// actix, one built on `actix_web::web::block`.
pub trait Blocking: Send + Sync + 'static {
    /// Runs `job` to completion on a thread where blocking is allowed.
    fn run(
        &self,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;

    /// Completes after `duration`: the timer with which the service stops waiting for
    /// a free password-hashing slot ([`ServiceBuilder::hash_wait`]) and answers
    /// [`Error::Busy`]. The default never completes, so without a timer a request
    /// waits for a slot as long as it takes; [`TokioBlocking`] (feature `tokio`) uses
    /// tokio's timer.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let _ = duration;
        Box::pin(std::future::pending())
    }
}

/// Runs blocking work in place, on the calling task.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl Blocking for Inline {
    fn run(
        &self,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        job();
        Box::pin(std::future::ready(()))
    }
}

/// Runs blocking work on tokio's blocking pool (`spawn_blocking`).
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioBlocking;

#[cfg(feature = "tokio")]
impl Blocking for TokioBlocking {
    fn run(
        &self,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            // A panic inside argon2 would surface as a JoinError; the caller then
            // finds no result and reports Error::Internal.
            let _ = tokio::task::spawn_blocking(job).await;
        })
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// How many prepared TOTP keys a service keeps (about 0.5 KiB each).
const PREPARED_KEYS: usize = 8192;

/// Twice the number of CPUs (2 when it cannot be told).
fn default_hash_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().saturating_mul(2))
}

/// Tunable lifetimes and counts. Every field has a default; see [`ServiceBuilder`].
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) issuer: String,
    pub(crate) login_ttl: u64,
    pub(crate) enrollment_ttl: u64,
    pub(crate) session_ttl: u64,
    pub(crate) device_ttl: u64,
    pub(crate) backup_code_count: usize,
    pub(crate) max_authenticators: u32,
    pub(crate) reauth_ttl: u64,
    pub(crate) max_concurrent_hashes: usize,
    pub(crate) hash_wait: Duration,
}

pub(crate) struct Inner<S> {
    pub(crate) store: S,
    pub(crate) keys: KeyRing,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) totp: TotpPolicy,
    pub(crate) throttle: ThrottlePolicy,
    pub(crate) hasher: PasswordHasher,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) blocking: Arc<dyn Blocking>,
    pub(crate) config: Config,
    /// One permit per password hash allowed to run at once.
    pub(crate) hash_slots: async_lock::Semaphore,
    /// The WebAuthn relying party, when configured.
    #[cfg(feature = "webauthn")]
    pub(crate) webauthn: Option<crate::webauthn::RelyingParty>,
    /// Prepared TOTP keys of recently used secrets.
    pub(crate) prepared: prepared::PreparedKeys,
}

/// The two-factor login service: every flow, over one store. Cheap to clone (an
/// `Arc` inside); share one per process.
///
/// Make it with [`Service::builder`]. A complete login without any web framework:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> secondfactor::Result<()> {
/// use secondfactor::{LoginOutcome, LoginRequest, SecondFactor, Service};
/// use secondfactor::clock::{Clock, ManualClock};
/// use secondfactor::password::PasswordHasher;
/// use secondfactor::secret::{KeyRing, SealingKey};
/// use secondfactor::store::MemoryStore;
/// use secondfactor::totp::TotpKey;
///
/// let clock = ManualClock::new(1_700_000_000);
/// let service = Service::builder(MemoryStore::new(), KeyRing::new(1, SealingKey::generate()))
///     .clock(clock.clone())
///     .password_hasher(PasswordHasher::new(1024, 1, 1)?) // cheap, for the example only
///     .build()?;
///
/// // Register, log in with the password alone, and turn on 2FA with the proof
/// // that the fresh session authenticated recently.
/// service.register("alice", "correct horse battery").await?;
/// let LoginOutcome::Authenticated(first) =
///     service.login(LoginRequest::new("alice", "correct horse battery")).await? else { unreachable!() };
/// let session = service.issue_session(first).await?;
/// let proof = service.recent_auth(session.expose()).await?;
/// let setup = service.setup_two_factor(&proof).await?;
/// let phone = TotpKey::new(service.totp_policy(), setup.secret().expose_bytes());
/// let confirmed = service
///     .confirm_enrollment(&proof, &phone.generate(clock.now()))
///     .await?;
/// assert_eq!(confirmed.backup_codes.map(|c| c.len()), Some(10));
///
/// // Later: the two-phase login.
/// clock.advance(std::time::Duration::from_secs(30));
/// let ticket = match service.login(LoginRequest::new("alice", "correct horse battery")).await? {
///     LoginOutcome::SecondFactorRequired(ticket) => ticket,
///     _ => unreachable!("2FA is on"),
/// };
/// let code = phone.generate(clock.now());
/// let auth = service
///     .second_factor(ticket.token.expose(), SecondFactor::Totp(&code))
///     .await?;
/// let session = service.issue_session(auth).await?;
/// assert_eq!(service.session(session.expose()).await?.username(), "alice");
///
/// // The same code again is refused as a replay.
/// let LoginOutcome::SecondFactorRequired(again) =
///     service.login(LoginRequest::new("alice", "correct horse battery")).await? else { unreachable!() };
/// let replay = service.second_factor(again.token.expose(), SecondFactor::Totp(&code)).await;
/// assert_eq!(replay.unwrap_err().code(), "code_already_used");
/// # Ok(()) }
/// ```
pub struct Service<S> {
    pub(crate) inner: Arc<Inner<S>>,
}

impl<S> Clone for Service<S> {
    fn clone(&self) -> Self {
        Service {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("issuer", &self.inner.config.issuer)
            .field("totp", &self.inner.totp)
            .field("throttle", &self.inner.throttle)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Service`]; every setting is validated by [`build`](ServiceBuilder::build).
///
/// | setting | default |
/// | --- | --- |
/// | [`clock`](Self::clock) | [`SystemClock`] |
/// | [`totp_policy`](Self::totp_policy) | SHA-1, 6 digits, 30 s, ±1 step |
/// | [`throttle_policy`](Self::throttle_policy) | 5 free failures, then 60 s doubling; 5 attempts per pending login; 20 password attempts per client per minute |
/// | [`password_hasher`](Self::password_hasher) | argon2id with the argon2 crate's defaults |
/// | [`events`](Self::events) | [`TracingEvents`] |
/// | [`blocking`](Self::blocking) | [`Inline`] |
/// | [`issuer`](Self::issuer) | `"secondfactor"` |
/// | [`login_ttl`](Self::login_ttl) | 5 minutes |
/// | [`enrollment_ttl`](Self::enrollment_ttl) | 10 minutes |
/// | [`session_ttl`](Self::session_ttl) | 12 hours |
/// | [`device_ttl`](Self::device_ttl) | 30 days |
/// | [`backup_code_count`](Self::backup_code_count) | 10 |
/// | [`reauth_ttl`](Self::reauth_ttl) | 5 minutes |
/// | [`max_authenticators`](Self::max_authenticators) | 5 |
/// | [`max_concurrent_hashes`](Self::max_concurrent_hashes) | 2 × CPUs |
/// | [`hash_wait`](Self::hash_wait) | 5 s |
pub struct ServiceBuilder<S> {
    store: S,
    keys: KeyRing,
    clock: Arc<dyn Clock>,
    totp: TotpPolicy,
    throttle: ThrottlePolicy,
    hasher: PasswordHasher,
    events: Arc<dyn EventSink>,
    blocking: Arc<dyn Blocking>,
    config: Config,
    #[cfg(feature = "webauthn")]
    webauthn: Option<crate::webauthn::WebAuthnConfig>,
}

impl<S: Store> Service<S> {
    /// Starts building a service over `store`, sealing secrets and hashing tokens
    /// with `keys`.
    pub fn builder(store: S, keys: KeyRing) -> ServiceBuilder<S> {
        ServiceBuilder {
            store,
            keys,
            clock: Arc::new(SystemClock),
            totp: TotpPolicy::default(),
            throttle: ThrottlePolicy::default(),
            hasher: PasswordHasher::default(),
            events: Arc::new(TracingEvents),
            blocking: Arc::new(Inline),
            config: Config {
                issuer: "secondfactor".to_owned(),
                login_ttl: 300,
                enrollment_ttl: 600,
                session_ttl: 12 * 3600,
                device_ttl: 30 * 24 * 3600,
                backup_code_count: crate::backup::DEFAULT_COUNT,
                max_authenticators: 5,
                reauth_ttl: 300,
                max_concurrent_hashes: default_hash_slots(),
                hash_wait: Duration::from_secs(5),
            },
            #[cfg(feature = "webauthn")]
            webauthn: None,
        }
    }

    /// The TOTP policy codes are checked against.
    pub fn totp_policy(&self) -> &TotpPolicy {
        &self.inner.totp
    }

    /// The throttling policy.
    pub fn throttle_policy(&self) -> &ThrottlePolicy {
        &self.inner.throttle
    }

    /// How long a pending login lives (the `sf_pending` cookie's lifetime).
    pub fn login_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.config.login_ttl)
    }

    /// How long a session lives.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.config.session_ttl)
    }

    /// How long a trusted device skips the second factor (the `sf_device` cookie's
    /// lifetime).
    pub fn device_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.config.device_ttl)
    }

    /// How long a login or re-authentication counts as recent.
    pub fn reauth_ttl(&self) -> Duration {
        Duration::from_secs(self.inner.config.reauth_ttl)
    }

    /// Deletes every expired record of the store's short-lived state (pending logins
    /// and enrollments, replay marks, throttles, trusted devices, sessions) and returns
    /// how many. Call it now and then (every few minutes) from a long-running
    /// service, so that state left by clients that never come back (one throttle per
    /// client address ever seen, say) does not pile up.
    ///
    /// Errors: `unavailable`.
    pub async fn purge_expired(&self) -> Result<u64> {
        self.inner.store.purge_expired(self.now()).await
    }

    /// The current time, from the service's clock.
    pub fn now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// Sends `event` to the event sink and, when it concerns an account, appends it
    /// to that account's security log. The log write is best effort: by the time an
    /// event is recorded its change is made, and a log that cannot be written must not
    /// turn it into an error (it is reported through `tracing`).
    pub(crate) async fn record(&self, event: Event) {
        self.record_from(event, None).await
    }

    /// [`record`](Self::record), with the client key the request came from.
    pub(crate) async fn record_from(&self, event: Event, client: Option<&str>) {
        self.inner.events.record(&event);
        if let Some((user_id, entry)) = event.security_entry(self.now()) {
            let entry = entry.with_client(client);
            let forget_before = entry.at.saturating_sub(crate::security_log::RETENTION_SECS);
            if let Err(e) = self
                .inner
                .store
                .append_security_event(
                    user_id,
                    &entry,
                    crate::security_log::MAX_ENTRIES,
                    forget_before,
                )
                .await
            {
                tracing::warn!(error = %e, kind = entry.kind.as_str(), "security log entry could not be written");
            }
        }
    }

    /// Sends `event` to the event sink only (no security-log entry).
    pub(crate) fn emit(&self, event: Event) {
        self.inner.events.record(&event);
    }

    /// Runs password-hashing work `f` through the configured [`Blocking`] runner and
    /// returns its result, once one of the service's hashing slots is free: at most
    /// [`max_concurrent_hashes`](ServiceBuilder::max_concurrent_hashes) run at once,
    /// so memory stays bounded under a burst (argon2 takes its memory cost per job).
    /// A request that finds no free slot within
    /// [`hash_wait`](ServiceBuilder::hash_wait) gets [`Error::Busy`].
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let _slot = self.hash_slot().await?;
        let slot = Arc::new(Mutex::new(None));
        let out = slot.clone();
        self.inner
            .blocking
            .run(Box::new(move || {
                let value = f();
                *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
            }))
            .await;
        let value = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        value.ok_or(Error::Internal("blocking job did not complete"))
    }

    async fn hash_slot(&self) -> Result<async_lock::SemaphoreGuard<'_>> {
        let slots = &self.inner.hash_slots;
        if let Some(guard) = slots.try_acquire() {
            return Ok(guard);
        }
        let wait = self.inner.config.hash_wait;
        let mut acquire = std::pin::pin!(slots.acquire());
        let mut timer = self.inner.blocking.sleep(wait);
        let guard = std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(guard) = acquire.as_mut().poll(cx) {
                return std::task::Poll::Ready(Some(guard));
            }
            if timer.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(None);
            }
            std::task::Poll::Pending
        })
        .await;
        guard.ok_or(Error::Busy {
            retry_after: Duration::from_secs(1),
        })
    }

    /// The account record of `user_id`; `not_found` when there is none.
    pub(crate) async fn account_record(&self, user_id: &UserId) -> Result<AccountRecord> {
        self.inner
            .store
            .account(user_id)
            .await?
            .ok_or(Error::NotFound { what: "account" })
    }

    pub(crate) fn new_backup_codes(&self) -> Result<Vec<BackupCode>> {
        crate::backup::try_generate(self.inner.config.backup_code_count)
    }
}

impl<S: Store> ServiceBuilder<S> {
    /// The clock (default [`SystemClock`]); tests pass a [`ManualClock`](crate::clock::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The TOTP policy.
    pub fn totp_policy(mut self, policy: TotpPolicy) -> Self {
        self.totp = policy;
        self
    }

    /// The throttling policy.
    pub fn throttle_policy(mut self, policy: ThrottlePolicy) -> Self {
        self.throttle = policy;
        self
    }

    /// The password hasher (argon2id parameters).
    pub fn password_hasher(mut self, hasher: PasswordHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Where audit events go.
    pub fn events(mut self, sink: impl EventSink) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// How blocking work (argon2) runs.
    pub fn blocking(mut self, runner: impl Blocking) -> Self {
        self.blocking = Arc::new(runner);
        self
    }

    /// The issuer shown in authenticator apps (1–64 bytes, no `:`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuer = issuer.into();
        self
    }

    /// Lifetime of a pending login (1 s – 1 hour).
    pub fn login_ttl(mut self, ttl: Duration) -> Self {
        self.config.login_ttl = ttl.as_secs();
        self
    }

    /// Lifetime of a pending enrollment (1 s – 1 day).
    pub fn enrollment_ttl(mut self, ttl: Duration) -> Self {
        self.config.enrollment_ttl = ttl.as_secs();
        self
    }

    /// Lifetime of a session (at least 1 s).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.config.session_ttl = ttl.as_secs();
        self
    }

    /// How long a trusted device skips the second factor (at least 1 s).
    pub fn device_ttl(mut self, ttl: Duration) -> Self {
        self.config.device_ttl = ttl.as_secs();
        self
    }

    /// How many backup codes a set has (1–100).
    pub fn backup_code_count(mut self, count: usize) -> Self {
        self.config.backup_code_count = count;
        self
    }

    /// How long a login or a re-authentication counts as recent for credential
    /// changes (10 s – 1 hour).
    pub fn reauth_ttl(mut self, ttl: Duration) -> Self {
        self.config.reauth_ttl = ttl.as_secs();
        self
    }

    /// How many password hashes (argon2 jobs) may run at once (1–1024; default twice
    /// the number of CPUs). Each takes the hasher's memory cost while it runs, so this
    /// bounds the memory a burst of logins or registrations can take.
    pub fn max_concurrent_hashes(mut self, n: usize) -> Self {
        self.config.max_concurrent_hashes = n;
        self
    }

    /// How long a request waits for a free hashing slot before it is answered
    /// [`Error::Busy`] (default 5 s; 0 – 1 minute). Needs a [`Blocking`] runner with
    /// a timer ([`Blocking::sleep`]).
    pub fn hash_wait(mut self, wait: Duration) -> Self {
        self.config.hash_wait = wait;
        self
    }

    /// How many authenticators an account may have (1–20).
    pub fn max_authenticators(mut self, max: u32) -> Self {
        self.config.max_authenticators = max;
        self
    }

    /// Turns on security keys and passkeys (WebAuthn) with this relying party
    /// (feature `webauthn`).
    #[cfg(feature = "webauthn")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
    pub fn webauthn(mut self, config: crate::webauthn::WebAuthnConfig) -> Self {
        self.webauthn = Some(config);
        self
    }

    /// Validates the settings and makes the service.
    pub fn build(self) -> Result<Service<S>> {
        let c = &self.config;
        if c.issuer.is_empty() || c.issuer.len() > 64 || c.issuer.contains(':') {
            return Err(Error::InvalidConfig(
                "issuer must be 1 to 64 bytes without ':'",
            ));
        }
        if c.issuer.chars().any(char::is_control) {
            return Err(Error::InvalidConfig(
                "issuer must not contain control characters",
            ));
        }
        if !(1..=3600).contains(&c.login_ttl) {
            return Err(Error::InvalidConfig("login_ttl must be 1 s to 1 hour"));
        }
        if !(1..=86_400).contains(&c.enrollment_ttl) {
            return Err(Error::InvalidConfig("enrollment_ttl must be 1 s to 1 day"));
        }
        if c.session_ttl == 0 || c.device_ttl == 0 {
            return Err(Error::InvalidConfig(
                "session_ttl and device_ttl must be positive",
            ));
        }
        if !(1..=100).contains(&c.backup_code_count) {
            return Err(Error::InvalidConfig("backup_code_count must be 1 to 100"));
        }
        if !(10..=3600).contains(&c.reauth_ttl) {
            return Err(Error::InvalidConfig("reauth_ttl must be 10 s to 1 hour"));
        }
        if !(1..=20).contains(&c.max_authenticators) {
            return Err(Error::InvalidConfig("max_authenticators must be 1 to 20"));
        }
        if !(1..=1024).contains(&c.max_concurrent_hashes) {
            return Err(Error::InvalidConfig(
                "max_concurrent_hashes must be 1 to 1024",
            ));
        }
        if c.hash_wait > Duration::from_secs(60) {
            return Err(Error::InvalidConfig("hash_wait must be at most 1 minute"));
        }
        #[cfg(feature = "webauthn")]
        let webauthn = match &self.webauthn {
            Some(config) => Some(crate::webauthn::RelyingParty::new(config, &c.issuer)?),
            None => None,
        };
        Ok(Service {
            inner: Arc::new(Inner {
                #[cfg(feature = "webauthn")]
                webauthn,
                store: self.store,
                keys: self.keys,
                clock: self.clock,
                totp: self.totp,
                throttle: self.throttle,
                hasher: self.hasher,
                events: self.events,
                blocking: self.blocking,
                hash_slots: async_lock::Semaphore::new(self.config.max_concurrent_hashes),
                prepared: prepared::PreparedKeys::new(PREPARED_KEYS),
                config: self.config,
            }),
        })
    }
}
