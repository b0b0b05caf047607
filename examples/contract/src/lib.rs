//! The HTTP contract of the example servers (`API.md`), driven black-box: each
//! server crate's tests start its own binary as a real process on a free port and
//! talk to it over HTTP (reqwest) and through headless Chromium (fantoccini and
//! chromedriver). [`contract_suite!`] instantiates every scenario for one server.
//!
//! Scenarios that need PostgreSQL (`DATABASE_URL=postgres://…`), Redis
//! (`REDIS_URL`) or Chromium skip with a note when those are missing, and fail
//! instead under `CI=true`.
#![forbid(unsafe_code)]

#[cfg(target_os = "linux")]
pub mod burst;
pub mod client;
pub mod http;
pub mod migrate;
