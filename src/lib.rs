//! # secondfactor
//!
//! Password + TOTP two-factor login for Rust web services, done right: codes that
//! cannot be replayed, attempt limits that survive a restarted login, TOTP secrets
//! sealed at rest, backup codes that can be spent once, and QR codes every
//! authenticator app reads. One framework-agnostic [`Service`] holds every decision;
//! your handlers only translate HTTP.
//!
//! ## Quick start
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> secondfactor::Result<()> {
//! use secondfactor::clock::{Clock, ManualClock};
//! use secondfactor::password::PasswordHasher;
//! use secondfactor::secret::{KeyRing, SealingKey};
//! use secondfactor::store::MemoryStore;
//! use secondfactor::totp::TotpKey;
//! use secondfactor::{LoginOutcome, LoginRequest, SecondFactor, Service};
//!
//! // One service per process. In production: a real store, SystemClock (the
//! // default), and a SealingKey loaded from your secret configuration.
//! let clock = ManualClock::new(1_700_000_000);
//! let service = Service::builder(MemoryStore::new(), KeyRing::new(1, SealingKey::generate()))
//!     .issuer("Example")
//!     .clock(clock.clone())
//!     .password_hasher(PasswordHasher::new(1024, 1, 1)?) // cheap, for the example only
//!     .build()?;
//!
//! // Registration, then a first login: 2FA is off, the password is the whole login.
//! service.register("alice", "correct horse battery").await?;
//! let LoginOutcome::Authenticated(auth) =
//!     service.login(LoginRequest::new("alice", "correct horse battery")).await?
//! else {
//!     unreachable!("2FA is off")
//! };
//! let session = service.issue_session(auth).await?; // the session cookie's value
//!
//! // Turning 2FA on changes how the account is protected: it takes proof that the
//! // session authenticated recently (a login or `reauthenticate`, 5 minutes by default).
//! let proof = service.recent_auth(session.expose()).await?;
//! let setup = service.setup_two_factor(&proof).await?;
//! let _png = setup.qr()?.png()?; // or .svg(), .terminal(), .png_data_uri()
//! let phone = TotpKey::new(service.totp_policy(), setup.secret().expose_bytes());
//! let confirmed = service.confirm_enrollment(&proof, &phone.generate(clock.now())).await?;
//! let backup_codes = confirmed.backup_codes.expect("first enrollment"); // show once
//! assert_eq!(backup_codes.len(), 10);
//!
//! // The two-phase login.
//! clock.advance(std::time::Duration::from_secs(30));
//! let LoginOutcome::SecondFactorRequired(ticket) =
//!     service.login(LoginRequest::new("alice", "correct horse battery")).await?
//! else {
//!     unreachable!("2FA is on")
//! };
//! // ticket.token goes to the client (a cookie); the code comes back with it.
//! let code = phone.generate(clock.now());
//! let auth = service.second_factor(ticket.token.expose(), SecondFactor::Totp(&code)).await?;
//! let session = service.issue_session(auth).await?;
//! assert_eq!(service.session(session.expose()).await?.username(), "alice");
//! # Ok(()) }
//! ```
//!
//! ## What is where
//!
//! A service needs the crate root ([`Service`], its builder, the request and outcome
//! types, [`Error`]), one store from [`store`], and a [`secret::KeyRing`]. The rest
//! is there to configure, render or extend those.
//!
//! | module | for | you use it to |
//! | --- | --- | --- |
//! | crate root | [`Service`], [`ServiceBuilder`], [`LoginRequest`], [`LoginOutcome`], [`SecondFactor`], [`ReauthRequest`], the proofs [`Authenticated`] and [`RecentAuth`], [`Error`] | run every ceremony |
//! | [`flow`] | everything [`Service`] takes and returns: [`flow::SignIn`] / [`flow::LoggedIn`] (one call per user action), [`flow::Session`], [`flow::EnrollmentSetup`], [`flow::TwoFactorStatus`], [`flow::SessionInfo`], [`flow::TrustedDevice`], the tokens, [`flow::Blocking`] | name the types of your handlers |
//! | [`store`] | the storage traits ([`store::AccountStore`], [`store::EphemeralStore`], [`store::Store`]) and their atomicity contract; [`store::MemoryStore`], `SqliteStore`, `PgStore`, `RedisStore`, [`store::Combined`]; the records; `store::conformance` (feature `conformance`) | pick a store, or write one and prove it |
//! | [`secret`] | [`secret::SealingKey`], [`secret::KeyRing`] (sealing at rest with XChaCha20-Poly1305, key rotation), [`secret::Secret`] | load your keys, rotate them |
//! | [`totp`] | [`totp::TotpPolicy`] (algorithm, digits, period, skew) and [`totp::TotpKey`] | set the policy; play the phone in tests |
//! | [`provisioning`] | `otpauth://` URIs and QR codes (PNG, SVG, terminal) | show the enrollment |
//! | [`password`] | [`password::PasswordHasher`] (argon2id parameters) | tune hashing |
//! | [`throttle`] | [`throttle::ThrottlePolicy`]: the limits and lockouts | tune the limits |
//! | [`backup`] | the backup-code format and generator | show codes |
//! | `webauthn` | security keys and passkeys: the relying party's configuration (feature `webauthn`) | turn keys on |
//! | [`events`] | [`events::Event`] and [`events::EventSink`]: the audit hook | feed your logs and alerts |
//! | [`security_log`] | the account's security log, as its owner reads it | show the account page |
//! | [`auth`] | [`AuthMethod`]: how a login or re-authentication was passed | read a proof |
//! | [`clock`] | [`clock::Clock`], [`clock::ManualClock`] for tests | inject time |
//! | [`error`] | [`Error`], its stable machine codes, [`error::ErrorBody`] | answer clients |
//!
//! ## Words
//!
//! One name for each thing, in the API and the docs:
//!
//! - **login**: the ceremony from the password to a session; the **password step**
//!   ([`Service::login`]) leaves a **pending login** that the **second-factor step**
//!   ([`Service::second_factor`]) completes. [`Service::sign_in`] and
//!   [`Service::sign_in_second_factor`] are the same steps with the session issued.
//! - **second factor** / **authenticator**: what proves possession — a TOTP app or a
//!   security key (an authenticator), or a **backup code** (a second factor, not an
//!   authenticator).
//! - **enrollment**: adding an authenticator. It is started (**setup**:
//!   [`Service::setup_two_factor`] for the first, [`Service::add_authenticator`] for
//!   more), stays **pending** for a while, and is **confirmed** with a first code
//!   ([`Service::confirm_enrollment`]). The error `setup_expired` means the pending
//!   enrollment expired.
//! - **session**: what a completed login becomes ([`Service::issue_session`]);
//!   **recent authentication** (step-up): a session whose owner proved themselves
//!   again within [`ServiceBuilder::reauth_ttl`], the [`RecentAuth`] every
//!   credential change takes.
//! - **trusted device** ("remember this device": skips the second factor) versus
//!   **known browser** (only exempts a browser from the account-wide password limit).
//!
//! ## Feature flags
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `qr-png` | yes | [`provisioning::QrCode::png`] and `png_data_uri` |
//! | `tokio` | no | `flow::TokioBlocking`: argon2 on tokio's blocking pool |
//! | `sqlite` | no | `store::SqliteStore`: the embedded default store |
//! | `postgres` | no | `store::PgStore`: one database shared by several instances |
//! | `redis` | no | `store::RedisStore`: short-lived state in Redis (pair it with an `AccountStore` through [`store::Combined`]) |
//! | `conformance` | no | the public store conformance suite |
//! | `webauthn` | no | [`webauthn`]: security keys and passkeys as a second factor (needs OpenSSL headers) |
//! | `serde` | no | `Serialize`/`Deserialize` on what crosses a wire or a log: ids, [`flow::TwoFactorStatus`], the listings ([`flow::AuthenticatorInfo`], [`flow::SessionInfo`], [`flow::TrustedDevice`]), [`security_log::SecurityEvent`], [`error::ErrorBody`] and the names in them; `Serialize` on [`events::Event`]. Never on a secret, token, proof or store record (checked at compile time) |
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
pub mod backup;
pub mod clock;
pub mod error;
pub mod events;
pub mod flow;
pub mod password;
pub mod provisioning;
pub mod secret;
pub mod security_log;
#[cfg(feature = "serde")]
mod serde_support;
pub mod store;
pub mod throttle;
mod token;
pub mod totp;
#[cfg(feature = "webauthn")]
#[cfg_attr(docsrs, doc(cfg(feature = "webauthn")))]
pub mod webauthn;

pub use error::{Error, Result};

/// Not part of the API: no documentation, no semver promise. The crate's own benches
/// and fuzz targets reach a few core-only steps through it (keyed hashes of backup
/// codes and login tokens, to seed a store the way the core would); services must
/// not use it.
#[doc(hidden)]
pub mod __private {
    use crate::secret::{HashPurpose, KeyRing, KeyedHash};

    /// What the core stores for a typed backup code (the active key's hash).
    pub fn backup_code_hash(keys: &KeyRing, typed: &str) -> crate::Result<KeyedHash> {
        Ok(crate::backup::hash(keys, &crate::backup::normalize(typed)?))
    }

    /// The hashes the core looks a typed backup code up by (every key, active first).
    pub fn backup_code_lookup_hashes(keys: &KeyRing, typed: &str) -> crate::Result<Vec<KeyedHash>> {
        Ok(crate::backup::hash_candidates(
            keys,
            &crate::backup::normalize(typed)?,
        ))
    }

    /// Whether a typed backup code matches a stored hash under any key (constant time
    /// over the keys); `false` for malformed input.
    pub fn backup_code_matches(keys: &KeyRing, typed: &str, stored: &KeyedHash) -> bool {
        crate::backup::normalize(typed).is_ok_and(|c| crate::backup::verify(keys, &c, stored))
    }

    /// What the core stores a pending login under, for the token's raw bytes.
    pub fn login_token_hash(keys: &KeyRing, raw: &[u8]) -> KeyedHash {
        keys.keyed_hash(HashPurpose::LoginToken, raw)
    }
}

/// The README's Rust examples, compiled by `cargo test` so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use flow::{
    AuthMethod, Authenticated, LoginOutcome, LoginRequest, ReauthRequest, RecentAuth, SecondFactor,
    Service, ServiceBuilder,
};
pub use flow::{ImportOutcome, ImportedAccount, ImportedTotp, LegacyPassword};
