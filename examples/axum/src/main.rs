//! A complete password + TOTP login server on axum: the JSON API and the HTML pages of
//! the HTTP contract (`API.md`), as a thin adapter over [`secondfactor::Service`].
//!
//! ```text
//! cargo run --release -p secondfactor-example-axum
//! ```
//!
//! then open the URL it prints (`listening on http://127.0.0.1:3000`). Accounts go to
//! `secondfactor-demo.db` in the working directory. For several instances behind a
//! load balancer, give them all the same `DATABASE_URL=postgres://…` (and `REDIS_URL`, and `SF_MASTER_KEY`).
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
//! | `SF_INSECURE_FAST_HASH` | `1`: Argon2 at 8 KiB and 1 pass, for `scripts/load.sh` only (a stolen hash falls in seconds); refused unless `SF_ADDR` is a numeric loopback address | `0` |
//!
//! What this file does is parse requests, call the service, and turn its answers into
//! a status, a JSON body (or a page) and cookies. Everything that decides — codes,
//! replay, attempts, lockouts, expiry, sealing — is in the library. Argon2 runs on
//! tokio's blocking pool ([`TokioBlocking`]), never on the executor.

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
use axum::routing::MethodRouter;
use secondfactor::Service;
use secondfactor::flow::TokioBlocking;
use secondfactor::store::Store;

use secondfactor_example_web::api::{self, MAX_BODY_BYTES};
use secondfactor_example_web::app::{self, Headers, Method, Out, Route};
use secondfactor_example_web::config::{Config, Site};
use secondfactor_example_web::memory;
use secondfactor_example_web::setup::{BoxError, Server, announce, shutdown_signal};

/// tokio's runtime with its blocking pool (where argon2 runs) capped at
/// [`memory::max_blocking_threads`]: each thread that hashed keeps its buffer.
fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(memory::max_blocking_threads())
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(secondfactor_example_web::setup::run(TokioBlocking, Axum)),
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
        &Hs(&headers),
        peer,
        uri.path(),
        uri.query().unwrap_or_default(),
        body,
    );
    respond(app::handle(&app.service, &app.site, route, request).await)
}

/// Serves [`app::ROUTES`]; other methods get axum's `405` with `Allow`.
fn router<S: Store>(app: App<S>) -> Router {
    let site = app.site.clone();
    let mut router = Router::new();
    for resource in app::resources() {
        let mut methods = MethodRouter::new();
        for (method, route) in resource.methods {
            methods = match method {
                Method::Get => methods.get(to::<S>(route)),
                Method::Post => methods.post(to::<S>(route)),
                Method::Delete => methods.delete(to::<S>(route)),
            };
        }
        router = router.route(resource.path, methods);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(site, guard))
        .with_state(app)
}

// --- responses ---------------------------------------------------------------------

/// A request's headers, as the shared handlers read them.
struct Hs<'a>(&'a HeaderMap);

impl Headers for Hs<'_> {
    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .get_all(name)
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
    if let Some(refused) = app::refuse_origin(&site, Hs(headers).first("origin"), is_api(&req)) {
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
