//! What the example servers share, whatever their web framework: configuration from
//! the environment, store selection and service construction, the JSON bodies and
//! cookies of the HTTP contract, and the HTML pages.
//!
//! Nothing here decides about codes, attempts, expiry or replay: that is the
//! library's job. This crate only turns configuration into a `Service` and the
//! service's answers into bytes. An adapter (`examples/axum`, `examples/actix`) is
//! routing, extraction and conversion around [`app::handle`].
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod codes;
pub mod config;
pub mod html;
pub mod keyfile;
pub mod memory;
pub mod setup;
#[cfg(feature = "webauthn")]
pub mod webauthn;
