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
//! assert_eq!(service.session(session.expose()).await?.username, "alice");
//! # Ok(()) }
//! ```
//!
//! ## What is where
//!
//! | module | for |
//! | --- | --- |
//! | [`flow`] | [`Service`]: register, login, second factor, re-authentication ([`RecentAuth`]), enrollment, disable, backup codes, password changes, sessions, trusted devices, the operator's reset |
//! | [`auth`] | [`AuthMethod`]: how a login or re-authentication was passed |
//! | [`security_log`] | the account's security log, as its owner reads it |
//! | [`store`] | the storage traits and their atomicity contract; [`store::MemoryStore`] |
//! | [`totp`] | TOTP policy and constant-time verification that returns the matched step |
//! | `webauthn` | security keys and passkeys: the relying party's configuration (feature `webauthn`) |
//! | [`secret`] | secrets, sealing at rest (XChaCha20-Poly1305, key ring), keyed hashes |
//! | [`provisioning`] | `otpauth://` URIs and QR codes (PNG, SVG, terminal) |
//! | [`backup`] | backup codes |
//! | [`password`] | argon2id password hashing |
//! | [`throttle`] | attempt limiting policy |
//! | [`events`] | the audit hook |
//! | [`clock`] | injected time |
//! | [`error`] | [`Error`] and its stable machine codes |
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

/// The README's Rust examples, compiled by `cargo test` so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use flow::{
    AuthMethod, Authenticated, LoginOutcome, LoginRequest, ReauthRequest, RecentAuth, SecondFactor,
    Service, ServiceBuilder,
};
pub use flow::{ImportOutcome, ImportedAccount, ImportedTotp, LegacyPassword};
