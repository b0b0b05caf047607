//! # secondfactor
//!
//! Password + TOTP two-factor login done right.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backup;
pub mod clock;
pub mod error;
pub mod events;
pub mod flow;
pub mod password;
pub mod provisioning;
pub mod secret;
pub mod store;
pub mod throttle;
mod token;
pub mod totp;

pub use error::{Error, Result};
pub use flow::{
    AuthMethod, Authenticated, LoginOutcome, LoginRequest, SecondFactor, Service, ServiceBuilder,
};
