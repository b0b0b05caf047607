//! A complete password + TOTP login server on actix-web 4: the JSON API and the HTML
//! pages of the HTTP contract (`API.md`), as a thin adapter over
//! [`secondfactor::Service`]. It serves exactly what the axum example serves.
//!
//! ```text
//! cargo run --release -p secondfactor-example-actix
//! ```
//!
//! then open the URL it prints (`listening on http://127.0.0.1:3000`).
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
//! actix's blocking pool ([`web::block`]), never on an actix worker, and waits at most
//! `hash_wait` (5 s) for a hashing slot before answering `503 busy`.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, HeaderMap, HeaderValue};
use actix_web::middleware::{self, Next};
use actix_web::{HttpRequest, HttpResponse, guard, web};
use secondfactor::Service;
use secondfactor::flow::Blocking;
use secondfactor::store::Store;

use secondfactor_example_web::api::{self, MAX_BODY_BYTES};
use secondfactor_example_web::app::{self, Headers, Method, Out, Route};
use secondfactor_example_web::config::{Config, Site};
use secondfactor_example_web::memory;
use secondfactor_example_web::setup::{BoxError, Server, announce, shutdown_signal};

/// The actix system on a tokio runtime whose blocking pool is capped; the workers'
/// runtimes are capped in [`Actix::serve`]. Each thread that hashed keeps its
/// argon2 buffer (see [`memory`]).
fn main() -> ExitCode {
    actix_web::rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(memory::max_blocking_threads())
            .enable_all()
            .build()
            .expect("the actix system's tokio runtime starts")
    })
    .block_on(secondfactor_example_web::setup::run(ActixBlocking, Actix))
}

/// Runs argon2 on actix's blocking thread pool (`web::block`, which is tokio's
/// `spawn_blocking` under actix-rt), so a password check never stalls a worker.
#[derive(Clone, Copy, Debug)]
struct ActixBlocking;

impl Blocking for ActixBlocking {
    fn run(
        &self,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            // A panic in the job surfaces as a BlockingError; the service then finds
            // no result and reports Error::Internal.
            let _ = web::block(job).await;
        })
    }

    /// actix-web runs on tokio: its timer bounds the wait for a hashing slot
    /// (`hash_wait`), after which the request gets `503 busy`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(actix_web::rt::time::sleep(duration))
    }
}

/// The actix adapter.
struct Actix;

impl Server for Actix {
    async fn serve<S: Store>(self, service: Service<S>, config: Config) -> Result<(), BoxError> {
        // Bind first, so the site knows the real address (SF_ADDR may name port 0).
        let listener = std::net::TcpListener::bind(&config.addr)
            .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
        let bound = listener.local_addr()?;
        let site = config.site(bound);
        let state = web::Data::new(AppState {
            service,
            site: site.clone(),
        });
        // Every worker has its own runtime and blocking pool, where `web::block` runs
        // argon2: together they get the cap axum's single pool has.
        let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let server = actix_web::HttpServer::new(move || app(state.clone()))
            .workers(workers)
            .worker_max_blocking_threads(memory::max_blocking_threads_per(workers))
            // Our own signal future makes SIGTERM and Ctrl-C both a graceful stop
            // (actix's default stops at once on Ctrl-C).
            .disable_signals()
            .shutdown_signal(shutdown_signal())
            // Requests still running after a stop signal get this many seconds to finish.
            .shutdown_timeout(5)
            .listen(listener)?
            .run();
        announce(bound, &site);
        server.await?;
        eprintln!("shut down cleanly");
        Ok(())
    }
}

/// The shared state: the service and the deployment settings.
struct AppState<S> {
    service: Service<S>,
    site: Site,
}

type State<S> = web::Data<AppState<S>>;

/// A resource whose other methods get the contract's `405` with an `Allow` header
/// naming `allow`.
fn resource(path: &str, allow: String) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| {
        method_not_allowed(req, allow.clone())
    }))
}

/// A `GET` route that answers `HEAD` too (as axum's `get` does; actix sends no body
/// for `HEAD`).
fn get() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// `method` routed to [`app::handle`] as `route`.
fn to<S: Store>(method: actix_web::Route, route: Route) -> actix_web::Route {
    method.to(
        move |state: State<S>, req: HttpRequest, body: Result<web::Bytes, actix_web::Error>| {
            dispatch(state, route, req, body)
        },
    )
}

async fn dispatch<S: Store>(
    state: State<S>,
    route: Route,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let body = body
        .map(|b| b.to_vec())
        .map_err(|e| match e.as_error::<PayloadError>() {
            Some(PayloadError::Overflow) => api::too_large(),
            _ => api::unreadable_body(),
        });
    // The peer's IP address is always known on TCP.
    let peer = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let request = app::Request::new(
        &state.site,
        &Hs(req.headers()),
        peer,
        req.path(),
        req.query_string(),
        body,
    );
    respond(app::handle(&state.service, &state.site, route, request).await)
}

fn app<S: Store>(
    state: State<S>,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let mut served = actix_web::App::new()
        .app_data(state)
        // Bodies read as bytes stop at 64 KiB.
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .default_service(web::to(not_found));
    for r in app::resources() {
        let mut methods = resource(r.path, r.allow);
        for (method, route) in r.methods {
            let method = match method {
                Method::Get => get(),
                Method::Post => web::post(),
                Method::Delete => web::delete(),
            };
            methods = methods.route(to::<S>(method, route));
        }
        served = served.service(methods);
    }
    served.wrap(middleware::from_fn(guard::<S>))
}

// --- responses ---------------------------------------------------------------------

/// A request's headers, as the shared handlers read them.
struct Hs<'a>(&'a HeaderMap);

impl Headers for Hs<'_> {
    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.0.get_all(name).map(HeaderValue::as_bytes).collect()
    }
}

/// Writes a shared handler's answer.
fn respond(out: Out) -> HttpResponse {
    let status = StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for (name, value) in &out.headers {
        if *name == "set-cookie" {
            response.append_header((*name, value.as_str()));
        } else {
            response.insert_header((*name, value.as_str()));
        }
    }
    if out.body.is_empty() {
        response.finish()
    } else {
        response.body(out.body)
    }
}

/// Refuses cross-origin requests (`403`) and declared bodies over 64 KiB (`413`)
/// before any handler runs; bodies without a length are cut at 64 KiB by
/// `PayloadConfig` while they are read.
async fn guard<S: Store>(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_api = req.path().starts_with("/api/");
    let headers = Hs(req.headers());
    let origin = req
        .app_data::<State<S>>()
        .and_then(|state| app::refuse_origin(&state.site, headers.first("origin"), is_api));
    let declared = headers
        .first("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let refused = if origin.is_some() {
        origin
    } else if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        Some(Out::too_large(is_api))
    } else {
        None
    };
    match refused {
        Some(out) => Ok(req.into_response(respond(out)).map_into_right_body()),
        None => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
    }
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    respond(Out::not_found(req.path().starts_with("/api/")))
}

async fn method_not_allowed(req: HttpRequest, allow: String) -> HttpResponse {
    let mut response = respond(Out::method_not_allowed(req.path().starts_with("/api/")));
    if let Ok(allow) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(ALLOW, allow);
    }
    response
}
