//! A complete password + TOTP login server on actix-web 4: the JSON API and the HTML
//! pages of the HTTP contract (`API.md`), as a thin adapter over
//! [`secondfactor::Service`]. It serves exactly what the axum example serves.
//!
//! ```text
//! cargo run --release --example actix --features demo
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
//! | `SF_MASTER_KEY` | base64 of 32 random bytes sealing TOTP secrets | a development key in `secondfactor-dev.key` beside the database |
//! | `SF_ISSUER` | issuer shown in authenticator apps | `secondfactor demo` |
//! | `SF_LOGIN_TTL_SECS` | lifetime of a pending login | `300` |
//! | `SF_SETUP_TTL_SECS` | lifetime of a pending enrollment | `600` |
//! | `SF_PUBLIC_URL` | the URL users reach: the only origin allowed in `Origin`, and `Secure` cookies when `https://` | `http://` + the listening address |
//! | `SF_TRUST_FORWARDED` | `1`: the password limiter keys on the **last** `X-Forwarded-For` address instead of the peer address. Set it only behind a reverse proxy that appends that header, or every client can pick its own key | `0` |
//!
//! What this file does is parse requests, call the service, and turn its answers into
//! a status, a JSON body (or a page) and cookies. Everything that decides — codes,
//! replay, attempts, lockouts, expiry, sealing — is in the library. Argon2 runs on
//! actix's blocking pool ([`web::block`]), never on an actix worker.

mod common;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::process::ExitCode;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::{InternalError, PayloadError, UrlencodedError};
use actix_web::http::StatusCode;
use actix_web::http::header::{
    ALLOW, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HeaderMap, HeaderName, HeaderValue, LOCATION,
    ORIGIN, SET_COOKIE, USER_AGENT,
};
use actix_web::middleware::{self, Next};
use actix_web::{
    FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError, guard, web,
};
use secondfactor::flow::{Blocking, Session};
use secondfactor::store::Store;
use secondfactor::{Error, LoginOutcome, LoginRequest, Service};
use serde::de::DeserializeOwned;

use common::api::{self, DEVICE_COOKIE, MAX_BODY_BYTES, PENDING_COOKIE, Reply, SESSION_COOKIE};
use common::config::{Config, DEVICE_TTL, Site};
use common::html;
use common::setup::{BoxError, Server, announce};

#[actix_web::main]
async fn main() -> ExitCode {
    common::setup::run(ActixBlocking, Actix).await
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
}

/// The actix adapter.
struct Actix;

impl Server for Actix {
    async fn serve<S: Store>(self, service: Service<S>, config: Config) -> Result<(), BoxError> {
        // Bind first, so the site knows the real address (SF_ADDR may name port 0).
        let listener = std::net::TcpListener::bind(&config.addr)
            .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
        let bound = listener.local_addr()?;
        let state = web::Data::new(AppState {
            service,
            site: config.site(bound),
        });
        let server = actix_web::HttpServer::new(move || app(state.clone()))
            // Our own signal future makes SIGTERM and Ctrl-C both a graceful stop
            // (actix's default stops at once on Ctrl-C).
            .disable_signals()
            .shutdown_signal(shutdown_signal())
            // Requests still running after a stop signal get this many seconds to finish.
            .shutdown_timeout(5)
            .listen(listener)?
            .run();
        announce(bound);
        server.await?;
        eprintln!("shut down cleanly");
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = actix_web::rt::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    eprintln!("shutting down");
}

/// The shared state: the service and the deployment settings.
struct AppState<S> {
    service: Service<S>,
    site: Site,
}

type State<S> = web::Data<AppState<S>>;

/// A resource whose other methods get the contract's `405` with an `Allow` header
/// naming `allow`.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| {
        method_not_allowed(req, allow)
    }))
}

/// A `GET` route that answers `HEAD` too (as axum's `get` does; actix sends no body
/// for `HEAD`).
fn get() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
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
    actix_web::App::new()
        .app_data(state)
        // Bodies read as bytes (the JSON API) stop at 64 KiB.
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        // Forms too, and their rejections become pages.
        .app_data(
            web::FormConfig::default()
                .limit(MAX_BODY_BYTES)
                .error_handler(form_rejection),
        )
        // JSON API
        .service(resource("/api/register", "POST").route(web::post().to(api_register::<S>)))
        .service(resource("/api/login", "POST").route(web::post().to(api_login::<S>)))
        .service(
            resource("/api/login/second-factor", "POST")
                .route(web::post().to(api_second_factor::<S>)),
        )
        .service(resource("/api/me", "GET,HEAD").route(get().to(api_me::<S>)))
        .service(resource("/api/2fa/setup", "POST").route(web::post().to(api_setup::<S>)))
        .service(resource("/api/2fa/setup/confirm", "POST").route(web::post().to(api_confirm::<S>)))
        .service(resource("/api/2fa/disable", "POST").route(web::post().to(api_disable::<S>)))
        .service(
            resource("/api/2fa/backup-codes", "POST").route(web::post().to(api_backup_codes::<S>)),
        )
        .service(resource("/api/logout", "POST").route(web::post().to(api_logout::<S>)))
        // HTML pages
        .service(resource("/", "GET,HEAD").route(get().to(page_home::<S>)))
        .service(
            resource("/register", "GET,HEAD,POST")
                .route(get().to(page_register))
                .route(web::post().to(form_register::<S>)),
        )
        .service(
            resource("/login", "GET,HEAD,POST")
                .route(get().to(page_login))
                .route(web::post().to(form_login::<S>)),
        )
        .service(
            resource("/login/verify", "GET,HEAD,POST")
                .route(get().to(page_verify))
                .route(web::post().to(form_verify::<S>)),
        )
        .service(resource("/account", "GET,HEAD").route(get().to(page_account::<S>)))
        .service(
            resource("/account/2fa/setup", "GET,HEAD,POST")
                .route(get().to(page_setup::<S>))
                .route(web::post().to(form_setup::<S>)),
        )
        .service(
            resource("/account/2fa/setup/confirm", "POST").route(web::post().to(form_confirm::<S>)),
        )
        .service(resource("/account/2fa/disable", "POST").route(web::post().to(form_disable::<S>)))
        .service(
            resource("/account/backup-codes", "POST").route(web::post().to(form_backup_codes::<S>)),
        )
        .service(resource("/logout", "POST").route(web::post().to(form_logout::<S>)))
        .default_service(web::to(not_found))
        .wrap(middleware::from_fn(guard::<S>))
}

// --- responses ---------------------------------------------------------------------

fn builder(code: u16, cookies: &[String]) -> HttpResponseBuilder {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    for c in cookies {
        response.append_header((SET_COOKIE, c.as_str()));
    }
    response
}

fn json(code: u16, body: &serde_json::Value, cookies: &[String]) -> HttpResponse {
    builder(code, cookies)
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body.to_string())
}

fn page(code: u16, html: String, cookies: &[String]) -> HttpResponse {
    let mut response = builder(code, cookies);
    for &header in html::HEADERS {
        response.insert_header(header);
    }
    response.body(html)
}

fn redirect(to: &str, cookies: &[String]) -> HttpResponse {
    builder(303, cookies).insert_header((LOCATION, to)).finish()
}

/// An error of the JSON API, already in the contract's shape.
#[derive(Debug)]
struct ApiError(Reply);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(api::error(&e))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.status, self.0.body)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        json(self.0.status, &self.0.body, &[])
    }
}

type ApiResult = Result<HttpResponse, ApiError>;

// --- request parts -----------------------------------------------------------------

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

fn header(headers: &HeaderMap, name: HeaderName) -> Option<&[u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    api::cookie(req.headers().get_all(COOKIE).map(|v| v.as_bytes()), name)
}

/// The peer's IP address (always known on TCP; the unspecified address otherwise).
fn peer_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

/// The session named by the `sf_session` cookie (the library says whether it is live).
async fn session<S: Store>(state: &AppState<S>, req: &HttpRequest) -> Result<Session, Error> {
    state
        .service
        .session(cookie(req, SESSION_COOKIE).unwrap_or_default())
        .await
}

/// A JSON body: `Content-Type: application/json`, at most 64 KiB (`PayloadConfig`),
/// the endpoint's shape. Every rejection is a JSON error (`415`, `413`, `400`).
struct ApiJson<T>(T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if !api::is_json(header(req.headers(), CONTENT_TYPE)) {
            return Box::pin(std::future::ready(Err(ApiError(api::not_json()))));
        }
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes
                .await
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => ApiError(api::too_large()),
                    _ => ApiError(api::unreadable_body()),
                })?;
            serde_json::from_slice(&bytes)
                .map(ApiJson)
                .map_err(|e| ApiError(api::bad_json(&e)))
        })
    }
}

/// `FormConfig`'s error handler: a form the framework could not read becomes a page
/// with a 4xx status (the statuses axum gives the same rejections).
fn form_rejection(err: UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    let code = match &err {
        UrlencodedError::Parse(_) => 422,
        other => other.status_code().as_u16(),
    };
    let code = if (400..500).contains(&code) {
        code
    } else {
        400
    };
    let text = err.to_string();
    let response = page(code, html::message("Bad request", &text), &[]);
    InternalError::from_response(err, response).into()
}

/// Refuses cross-origin requests (`403`) and declared bodies over 64 KiB (`413`)
/// before any handler runs; bodies without a length are cut at 64 KiB by
/// `PayloadConfig` / `FormConfig` while they are read.
async fn guard<S: Store>(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_api = req.path().starts_with("/api/");
    let allowed = match req.app_data::<State<S>>() {
        Some(state) => api::origin_allowed(&state.site, header(req.headers(), ORIGIN)),
        None => false,
    };
    if !allowed {
        let response = if is_api {
            ApiError(api::forbidden_origin()).error_response()
        } else {
            page(
                403,
                html::message("Forbidden", "Cross-site form posts are refused."),
                &[],
            )
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    let declared = header(req.headers(), CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        let response = if is_api {
            ApiError(api::too_large()).error_response()
        } else {
            page(
                413,
                html::message("Too large", "The form is larger than 64 KiB."),
                &[],
            )
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/") {
        ApiError(api::not_found()).error_response()
    } else {
        page(
            404,
            html::message("Not found", "There is no such page."),
            &[],
        )
    }
}

async fn method_not_allowed(req: HttpRequest, allow: &'static str) -> HttpResponse {
    let mut response = if req.path().starts_with("/api/") {
        ApiError(api::method_not_allowed()).error_response()
    } else {
        page(
            405,
            html::message("Method not allowed", "This page does not take that method."),
            &[],
        )
    };
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

// --- the flows, shared by the JSON API and the forms --------------------------------

/// What a completed step answers with: cookies to set and the JSON body.
struct Step {
    cookies: Vec<String>,
    body: serde_json::Value,
    authenticated: bool,
}

/// The password step: a session, or a pending login owing a second factor.
async fn login_step<S: Store>(
    state: &AppState<S>,
    req: &HttpRequest,
    username: &str,
    password: &str,
) -> Result<Step, Error> {
    let client = api::client_key(
        &state.site,
        peer_ip(req),
        header(req.headers(), X_FORWARDED_FOR),
    );
    let mut request = LoginRequest::new(username, password).client_key(&client);
    if let Some(device) = cookie(req, DEVICE_COOKIE) {
        request = request.device_token(device);
    }
    Ok(match state.service.login(request).await? {
        LoginOutcome::Authenticated(auth) => {
            let token = state.service.issue_session(auth).await?;
            Step {
                cookies: vec![
                    api::set_cookie(&state.site, SESSION_COOKIE, token.expose(), None),
                    api::clear_cookie(&state.site, PENDING_COOKIE),
                ],
                body: api::authenticated(),
                authenticated: true,
            }
        }
        LoginOutcome::SecondFactorRequired(ticket) => Step {
            cookies: vec![api::set_cookie(
                &state.site,
                PENDING_COOKIE,
                ticket.token.expose(),
                Some(ticket.expires_in.as_secs()),
            )],
            body: api::second_factor_required(&ticket),
            authenticated: false,
        },
    })
}

/// The second-factor step: completes the pending login named by `sf_pending`.
async fn second_factor_step<S: Store>(
    state: &AppState<S>,
    req: &HttpRequest,
    body: &api::FactorBody,
) -> Result<Step, Error> {
    let factor = body.factor()?;
    let pending = cookie(req, PENDING_COOKIE).unwrap_or_default();
    let auth = state.service.second_factor(pending, factor).await?;
    let mut cookies = vec![api::clear_cookie(&state.site, PENDING_COOKIE)];
    if body.remember_device {
        let label = api::device_label(header(req.headers(), USER_AGENT));
        // The code is spent by now: failing to remember the device must not fail
        // the login.
        match state.service.trust_device(&auth, &label).await {
            Ok(token) => cookies.push(api::set_cookie(
                &state.site,
                DEVICE_COOKIE,
                token.expose(),
                Some(DEVICE_TTL.as_secs()),
            )),
            Err(e) => eprintln!("warning: device not remembered: {e}"),
        }
    }
    let token = state.service.issue_session(auth).await?;
    cookies.push(api::set_cookie(
        &state.site,
        SESSION_COOKIE,
        token.expose(),
        None,
    ));
    Ok(Step {
        cookies,
        body: api::authenticated(),
        authenticated: true,
    })
}

// --- JSON API ----------------------------------------------------------------------

async fn api_register<S: Store>(
    state: State<S>,
    ApiJson(body): ApiJson<api::Credentials>,
) -> ApiResult {
    let user = state
        .service
        .register(&body.username, &body.password)
        .await?;
    let status = state.service.status(&user).await?;
    Ok(json(
        201,
        &serde_json::json!({ "username": status.username }),
        &[],
    ))
}

async fn api_login<S: Store>(
    state: State<S>,
    req: HttpRequest,
    ApiJson(body): ApiJson<api::Credentials>,
) -> ApiResult {
    let step = login_step(&state, &req, &body.username, &body.password).await?;
    Ok(json(200, &step.body, &step.cookies))
}

async fn api_second_factor<S: Store>(
    state: State<S>,
    req: HttpRequest,
    ApiJson(body): ApiJson<api::FactorBody>,
) -> ApiResult {
    let step = second_factor_step(&state, &req, &body).await?;
    Ok(json(200, &step.body, &step.cookies))
}

async fn api_me<S: Store>(state: State<S>, req: HttpRequest) -> ApiResult {
    let session = session(&state, &req).await?;
    let status = state.service.status(&session.user_id).await?;
    Ok(json(200, &api::me(&status), &[]))
}

async fn api_setup<S: Store>(state: State<S>, req: HttpRequest) -> ApiResult {
    let session = session(&state, &req).await?;
    let setup = state.service.setup_two_factor(&session.user_id).await?;
    Ok(json(200, &api::setup(&setup)?, &[]))
}

async fn api_confirm<S: Store>(
    state: State<S>,
    req: HttpRequest,
    ApiJson(body): ApiJson<api::CodeBody>,
) -> ApiResult {
    let session = session(&state, &req).await?;
    let confirmed = state
        .service
        .confirm_enrollment(&session.user_id, &body.code)
        .await?;
    let codes = confirmed.backup_codes.unwrap_or_default();
    Ok(json(200, &api::backup_codes(&codes), &[]))
}

async fn api_disable<S: Store>(
    state: State<S>,
    req: HttpRequest,
    ApiJson(body): ApiJson<api::FactorBody>,
) -> ApiResult {
    let session = session(&state, &req).await?;
    state
        .service
        .disable_two_factor(&session.user_id, body.factor()?)
        .await?;
    Ok(json(
        200,
        &serde_json::json!({ "two_factor_enabled": false }),
        &[],
    ))
}

async fn api_backup_codes<S: Store>(
    state: State<S>,
    req: HttpRequest,
    ApiJson(body): ApiJson<api::CodeBody>,
) -> ApiResult {
    let session = session(&state, &req).await?;
    let codes = state
        .service
        .regenerate_backup_codes(&session.user_id, &body.code)
        .await?;
    Ok(json(200, &api::backup_codes(&codes), &[]))
}

async fn api_logout<S: Store>(state: State<S>, req: HttpRequest) -> ApiResult {
    if let Some(token) = cookie(&req, SESSION_COOKIE) {
        state.service.end_session(token).await?;
    }
    let cookies = [api::clear_cookie(&state.site, SESSION_COOKIE)];
    Ok(builder(204, &cookies).finish())
}

// --- HTML pages --------------------------------------------------------------------

/// The fixed notice named by `?notice=…`, if any (a malformed query shows none).
fn notice(req: &HttpRequest) -> Option<&'static str> {
    web::Query::<html::NoticeQuery>::from_query(req.query_string())
        .ok()?
        .into_inner()
        .notice
        .as_deref()
        .and_then(html::notice_text)
}

async fn page_home<S: Store>(state: State<S>, req: HttpRequest) -> HttpResponse {
    match session(&state, &req).await {
        Ok(_) => redirect("/account", &[]),
        Err(_) => page(200, html::home(), &[]),
    }
}

async fn page_register() -> HttpResponse {
    page(200, html::register(None, ""), &[])
}

async fn form_register<S: Store>(
    state: State<S>,
    form: web::Form<html::CredentialsForm>,
) -> HttpResponse {
    match state.service.register(&form.username, &form.password).await {
        Ok(_) => redirect("/login?notice=registered", &[]),
        Err(e) => page(
            e.http_status(),
            html::register(Some(&html::error_text(&e)), &form.username),
            &[],
        ),
    }
}

async fn page_login(req: HttpRequest) -> HttpResponse {
    page(200, html::login(notice(&req), None, ""), &[])
}

async fn form_login<S: Store>(
    state: State<S>,
    req: HttpRequest,
    form: web::Form<html::CredentialsForm>,
) -> HttpResponse {
    match login_step(&state, &req, &form.username, &form.password).await {
        Ok(step) if step.authenticated => redirect("/account", &step.cookies),
        Ok(step) => redirect("/login/verify", &step.cookies),
        Err(e) => page(
            e.http_status(),
            html::login(None, Some(&html::error_text(&e)), &form.username),
            &[],
        ),
    }
}

async fn page_verify(req: HttpRequest) -> HttpResponse {
    if cookie(&req, PENDING_COOKIE).is_none() {
        return redirect("/login", &[]);
    }
    page(200, html::verify(None), &[])
}

async fn form_verify<S: Store>(
    state: State<S>,
    req: HttpRequest,
    form: web::Form<html::FactorForm>,
) -> HttpResponse {
    match second_factor_step(&state, &req, &form.into_inner().into_body()).await {
        Ok(step) => redirect("/account", &step.cookies),
        Err(Error::LoginExpired) => redirect(
            "/login?notice=expired",
            &[api::clear_cookie(&state.site, PENDING_COOKIE)],
        ),
        Err(e) => page(
            e.http_status(),
            html::verify(Some(&html::error_text(&e))),
            &[],
        ),
    }
}

/// The account page, with a notice or an error, at `code`.
async fn account_page<S: Store>(
    state: &AppState<S>,
    session: &Session,
    code: u16,
    notice: Option<&str>,
    error: Option<&str>,
) -> HttpResponse {
    match state.service.status(&session.user_id).await {
        Ok(status) => page(code, html::account(&status, notice, error), &[]),
        Err(e) => error_page(&e),
    }
}

fn error_page(e: &Error) -> HttpResponse {
    if matches!(e, Error::Unauthenticated) {
        return redirect("/login", &[]);
    }
    api::error(e); // logs server-side failures
    page(
        e.http_status(),
        html::message("Error", &html::error_text(e)),
        &[],
    )
}

async fn page_account<S: Store>(state: State<S>, req: HttpRequest) -> HttpResponse {
    match session(&state, &req).await {
        Ok(s) => account_page(&state, &s, 200, notice(&req), None).await,
        Err(e) => error_page(&e),
    }
}

async fn form_setup<S: Store>(state: State<S>, req: HttpRequest) -> HttpResponse {
    let session = match session(&state, &req).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    match state.service.setup_two_factor(&session.user_id).await {
        Ok(_) => redirect("/account/2fa/setup", &[]),
        Err(e) => {
            account_page(
                &state,
                &session,
                e.http_status(),
                None,
                Some(&html::error_text(&e)),
            )
            .await
        }
    }
}

/// The setup page for the pending enrollment (one is started if there is none).
async fn setup_page<S: Store>(
    state: &AppState<S>,
    session: &Session,
    code: u16,
    error: Option<&str>,
) -> HttpResponse {
    let pending = match state.service.pending_enrollment(&session.user_id).await {
        Ok(Some(setup)) => setup,
        Ok(None) => match state.service.setup_two_factor(&session.user_id).await {
            Ok(setup) => setup,
            Err(e) => {
                let text = html::error_text(&e);
                return account_page(state, session, e.http_status(), None, Some(&text)).await;
            }
        },
        Err(e) => return error_page(&e),
    };
    let qr = match pending.qr().and_then(|qr| qr.png_data_uri()) {
        Ok(qr) => qr,
        Err(e) => return error_page(&e),
    };
    let secret = pending.secret().to_base32();
    let uri = pending.uri();
    let view = html::SetupView {
        secret: &secret,
        uri: &uri,
        qr_data_uri: &qr,
        expires_in: pending.expires_in().as_secs(),
    };
    page(code, html::setup(&view, error), &[])
}

async fn page_setup<S: Store>(state: State<S>, req: HttpRequest) -> HttpResponse {
    match session(&state, &req).await {
        Ok(s) => setup_page(&state, &s, 200, None).await,
        Err(e) => error_page(&e),
    }
}

async fn form_confirm<S: Store>(
    state: State<S>,
    req: HttpRequest,
    form: web::Form<html::CodeForm>,
) -> HttpResponse {
    let session = match session(&state, &req).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    match state
        .service
        .confirm_enrollment(&session.user_id, &form.code)
        .await
    {
        Ok(confirmed) => {
            let codes = confirmed.backup_codes.unwrap_or_default();
            let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
            page(
                200,
                html::backup_codes("Two-factor authentication is on", &codes),
                &[],
            )
        }
        Err(e @ (Error::InvalidInput { .. } | Error::InvalidCode { .. })) => {
            setup_page(
                &state,
                &session,
                e.http_status(),
                Some(&html::error_text(&e)),
            )
            .await
        }
        Err(e) => {
            let text = html::error_text(&e);
            account_page(&state, &session, e.http_status(), None, Some(&text)).await
        }
    }
}

async fn form_disable<S: Store>(
    state: State<S>,
    req: HttpRequest,
    form: web::Form<html::FactorForm>,
) -> HttpResponse {
    let session = match session(&state, &req).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    let body = form.into_inner().into_body();
    let result = match body.factor() {
        Ok(factor) => {
            state
                .service
                .disable_two_factor(&session.user_id, factor)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => redirect("/account?notice=disabled", &[]),
        Err(e) => {
            let text = html::error_text(&e);
            account_page(&state, &session, e.http_status(), None, Some(&text)).await
        }
    }
}

async fn form_backup_codes<S: Store>(
    state: State<S>,
    req: HttpRequest,
    form: web::Form<html::CodeForm>,
) -> HttpResponse {
    let session = match session(&state, &req).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    match state
        .service
        .regenerate_backup_codes(&session.user_id, &form.code)
        .await
    {
        Ok(codes) => {
            let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
            page(200, html::backup_codes("New backup codes", &codes), &[])
        }
        Err(e) => {
            let text = html::error_text(&e);
            account_page(&state, &session, e.http_status(), None, Some(&text)).await
        }
    }
}

async fn form_logout<S: Store>(state: State<S>, req: HttpRequest) -> HttpResponse {
    if let Some(token) = cookie(&req, SESSION_COOKIE)
        && let Err(e) = state.service.end_session(token).await
    {
        return error_page(&e);
    }
    redirect(
        "/login?notice=logged_out",
        &[api::clear_cookie(&state.site, SESSION_COOKIE)],
    )
}
