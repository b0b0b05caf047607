//! A complete password + TOTP login server on axum: the JSON API and the HTML pages of
//! the HTTP contract (`API.md`), as a thin adapter over [`secondfactor::Service`].
//!
//! ```text
//! cargo run --release --example axum --features demo
//! ```
//!
//! then open the URL it prints (`listening on http://127.0.0.1:3000`). Accounts go to
//! `secondfactor-demo.db` in the working directory. For several instances behind a
//! load balancer, build with `--features tokio,sqlite,postgres,redis` and give them
//! all the same `DATABASE_URL=postgres://…` (and `REDIS_URL`, and `SF_MASTER_KEY`).
//!
//! Configuration, all optional, from the environment:
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `SF_ADDR` | listen address (`127.0.0.1:0` picks a free port; the line on stdout names it) | `127.0.0.1:3000` |
//! | `DATABASE_URL` | `sqlite://PATH`, `postgres://…`, or `memory:` | `sqlite://secondfactor-demo.db` |
//! | `REDIS_URL` | keep pending logins, throttles and replay marks in Redis | unset |
//! | `SF_MASTER_KEY` | base64 of 32 random bytes sealing TOTP secrets; required with `postgres://` | a development key in `secondfactor-dev.key` beside the database (owner-only, else refused) |
//! | `SF_ISSUER` | issuer shown in authenticator apps | `secondfactor demo` |
//! | `SF_LOGIN_TTL_SECS` | lifetime of a pending login | `300` |
//! | `SF_SETUP_TTL_SECS` | lifetime of a pending enrollment | `600` |
//! | `SF_REAUTH_TTL_SECS` | how long a login or a re-authentication counts as recent (credential changes need one) | `300` |
//! | `SF_PUBLIC_URL` | the URL users reach: the only origin allowed in `Origin`, and `Secure` `__Host-` cookies when `https://` | `http://` + the listening address |
//! | `SF_TRUST_FORWARDED` | `1`: the per-client limits key on the **right-most** `X-Forwarded-For` entry (all its lines joined in order) instead of the peer address. Set it only behind a reverse proxy that appends that header, or every client can pick its own key | `0` |
//!
//! What this file does is parse requests, call the service, and turn its answers into
//! a status, a JSON body (or a page) and cookies. Everything that decides — codes,
//! replay, attempts, lockouts, expiry, sealing — is in the library. Argon2 runs on
//! tokio's blocking pool ([`TokioBlocking`]), never on the executor.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use secondfactor::Service;
use secondfactor::flow::TokioBlocking;
use secondfactor::store::Store;

use common::api::{self, MAX_BODY_BYTES};
use common::app::{self, Headers, Out, Route};
use common::config::{Config, Site};
use common::memory;
use common::setup::{BoxError, Server, announce, shutdown_signal};

/// tokio's runtime with its blocking pool (where argon2 runs) capped at
/// [`memory::max_blocking_threads`]: each thread that hashed keeps its buffer.
fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(memory::max_blocking_threads())
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(common::setup::run(TokioBlocking, Axum)),
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The axum adapter.
struct Axum;

impl Server for Axum {
    async fn serve<S: Store>(self, service: Service<S>, config: Config) -> Result<(), BoxError> {
        let listener = tokio::net::TcpListener::bind(&config.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
        let bound = listener.local_addr()?;
        let site = Arc::new(config.site(bound));
        let app_site = site.clone();
        let app = router(App { service, site });
        announce(bound, &app_site);
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await?;
        eprintln!("shut down cleanly");
        Ok(())
    }
}

/// The shared state: the service and the deployment settings.
struct App<S> {
    service: Service<S>,
    site: Arc<Site>,
}

impl<S> Clone for App<S> {
    fn clone(&self) -> Self {
        App {
            service: self.service.clone(),
            site: self.site.clone(),
        }
    }
}

type Handled = Pin<Box<dyn Future<Output = Response> + Send>>;

/// The handler for `route`: reads the request and hands it to [`app::handle`].
fn to<S: Store>(route: Route) -> impl Fn(State<App<S>>, Request) -> Handled + Clone + Send + Sync {
    move |State(app): State<App<S>>, req: Request| Box::pin(dispatch(app, route, req))
}

async fn dispatch<S: Store>(app: App<S>, route: Route, req: Request) -> Response {
    let headers = req.headers().clone();
    let uri = req.uri().clone();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip());
    let body = Bytes::from_request(req, &())
        .await
        .map(|b| b.to_vec())
        .map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => api::too_large(),
            _ => api::unreadable_body(),
        });
    let request = app::Request::new(
        &app.site,
        &headers,
        peer,
        uri.path(),
        uri.query().unwrap_or_default(),
        body,
    );
    respond(app::handle(&app.service, &app.site, route, request).await)
}

fn router<S: Store>(app: App<S>) -> Router {
    use Route::*;
    let site = app.site.clone();
    Router::new()
        // JSON API
        .route("/api/register", post(to::<S>(ApiRegister)))
        .route("/api/login", post(to::<S>(ApiLogin)))
        .route("/api/login/second-factor", post(to::<S>(ApiSecondFactor)))
        .route("/api/me", get(to::<S>(ApiMe)))
        .route("/api/2fa/setup", post(to::<S>(ApiSetup)))
        .route("/api/2fa/setup/confirm", post(to::<S>(ApiConfirm)))
        .route("/api/2fa/disable", post(to::<S>(ApiDisable)))
        .route("/api/2fa/backup-codes", post(to::<S>(ApiBackupCodes)))
        .route("/api/logout", post(to::<S>(ApiLogout)))
        .route("/api/reauth", post(to::<S>(ApiReauth)))
        .route("/api/password", post(to::<S>(ApiPassword)))
        .route(
            "/api/2fa/authenticators",
            get(to::<S>(ApiAuthenticators)).post(to::<S>(ApiAddAuthenticator)),
        )
        .route(
            "/api/2fa/authenticators/confirm",
            post(to::<S>(ApiConfirmAuthenticator)),
        )
        .route(
            "/api/2fa/authenticators/{id}",
            delete(to::<S>(ApiRemoveAuthenticator)),
        )
        .route("/api/sessions", get(to::<S>(ApiSessions)))
        .route("/api/sessions/{id}", delete(to::<S>(ApiEndSession)))
        .route(
            "/api/sessions/revoke-others",
            post(to::<S>(ApiEndOtherSessions)),
        )
        .route("/api/devices", get(to::<S>(ApiDevices)))
        .route("/api/devices/{id}", delete(to::<S>(ApiRevokeDevice)))
        .route("/api/security-log", get(to::<S>(ApiSecurityLog)))
        .route(
            "/api/2fa/webauthn/register/start",
            post(to::<S>(ApiWebAuthnRegisterStart)),
        )
        .route(
            "/api/2fa/webauthn/register/finish",
            post(to::<S>(ApiWebAuthnRegisterFinish)),
        )
        .route(
            "/api/login/webauthn/start",
            post(to::<S>(ApiWebAuthnLoginStart)),
        )
        .route("/static/webauthn.js", get(to::<S>(WebAuthnScript)))
        // HTML pages
        .route("/static/style.css", get(to::<S>(Style)))
        .route("/static/app.js", get(to::<S>(Script)))
        .route("/", get(to::<S>(Home)))
        .route(
            "/register",
            get(to::<S>(Register)).post(to::<S>(RegisterForm)),
        )
        .route("/login", get(to::<S>(Login)).post(to::<S>(LoginForm)))
        .route(
            "/login/verify",
            get(to::<S>(Verify)).post(to::<S>(VerifyForm)),
        )
        .route("/account", get(to::<S>(Account)))
        .route(
            "/account/2fa/setup",
            get(to::<S>(Setup)).post(to::<S>(SetupForm)),
        )
        .route("/account/2fa/setup/confirm", post(to::<S>(ConfirmForm)))
        .route("/account/2fa/disable", post(to::<S>(DisableForm)))
        .route("/account/backup-codes", post(to::<S>(BackupCodesForm)))
        .route("/account/password", post(to::<S>(PasswordForm)))
        .route(
            "/account/authenticators",
            post(to::<S>(AddAuthenticatorForm)),
        )
        .route(
            "/account/authenticators/remove",
            post(to::<S>(RemoveAuthenticatorForm)),
        )
        .route("/account/sessions/end", post(to::<S>(EndSessionForm)))
        .route(
            "/account/sessions/revoke-others",
            post(to::<S>(EndOtherSessionsForm)),
        )
        .route("/account/devices/forget", post(to::<S>(ForgetDeviceForm)))
        .route("/reauth", get(to::<S>(Reauth)).post(to::<S>(ReauthForm)))
        .route("/logout", post(to::<S>(LogoutForm)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(site, guard))
        .with_state(app)
}

// --- responses ---------------------------------------------------------------------

impl Headers for HeaderMap {
    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    }
}

/// Writes a shared handler's answer.
fn respond(out: Out) -> Response {
    let status = StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if out.body.is_empty() {
        status.into_response()
    } else {
        (status, out.body).into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in out.headers {
        let (name, Ok(value)) = (HeaderName::from_static(name), HeaderValue::from_str(&value))
        else {
            continue;
        };
        if name == axum::http::header::SET_COOKIE {
            headers.append(name, value);
        } else {
            headers.insert(name, value);
        }
    }
    response
}

fn is_api(req: &Request) -> bool {
    req.uri().path().starts_with("/api/")
}

/// Refuses cross-origin requests (`403`) and declared bodies over 64 KiB (`413`)
/// before any handler runs; bodies without a length are cut at 64 KiB by
/// `DefaultBodyLimit` while they are read.
async fn guard(State(site): State<Arc<Site>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    if let Some(refused) = app::refuse_origin(&site, headers.first("origin"), is_api(&req)) {
        return respond(refused);
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return respond(Out::too_large(is_api(&req)));
    }
    next.run(req).await
}

async fn not_found(req: Request) -> Response {
    respond(Out::not_found(is_api(&req)))
}

async fn method_not_allowed(req: Request) -> Response {
    respond(Out::method_not_allowed(is_api(&req)))
}
