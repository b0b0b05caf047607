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
//! tokio's blocking pool ([`TokioBlocking`]), never on the executor.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::header::{
    CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE, USER_AGENT,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use secondfactor::flow::{Session, TokioBlocking};
use secondfactor::store::Store;
use secondfactor::{Error, LoginOutcome, LoginRequest, Service};
use serde::de::DeserializeOwned;

use common::api::{self, DEVICE_COOKIE, MAX_BODY_BYTES, PENDING_COOKIE, Reply, SESSION_COOKIE};
use common::config::{Config, DEVICE_TTL, Site};
use common::html;
use common::setup::{BoxError, Server, announce};

#[tokio::main]
async fn main() -> ExitCode {
    common::setup::run(TokioBlocking, Axum).await
}

/// The axum adapter.
struct Axum;

impl Server for Axum {
    async fn serve<S: Store>(self, service: Service<S>, config: Config) -> Result<(), BoxError> {
        let listener = tokio::net::TcpListener::bind(&config.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
        let bound = listener.local_addr()?;
        let app = router(App {
            service,
            site: Arc::new(config.site(bound)),
        });
        announce(bound);
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

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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

fn router<S: Store>(app: App<S>) -> Router {
    let site = app.site.clone();
    Router::new()
        // JSON API
        .route("/api/register", post(api_register::<S>))
        .route("/api/login", post(api_login::<S>))
        .route("/api/login/second-factor", post(api_second_factor::<S>))
        .route("/api/me", get(api_me::<S>))
        .route("/api/2fa/setup", post(api_setup::<S>))
        .route("/api/2fa/setup/confirm", post(api_confirm::<S>))
        .route("/api/2fa/disable", post(api_disable::<S>))
        .route("/api/2fa/backup-codes", post(api_backup_codes::<S>))
        .route("/api/logout", post(api_logout::<S>))
        // HTML pages
        .route("/", get(page_home::<S>))
        .route("/register", get(page_register).post(form_register::<S>))
        .route("/login", get(page_login).post(form_login::<S>))
        .route("/login/verify", get(page_verify).post(form_verify::<S>))
        .route("/account", get(page_account::<S>))
        .route(
            "/account/2fa/setup",
            get(page_setup::<S>).post(form_setup::<S>),
        )
        .route("/account/2fa/setup/confirm", post(form_confirm::<S>))
        .route("/account/2fa/disable", post(form_disable::<S>))
        .route("/account/backup-codes", post(form_backup_codes::<S>))
        .route("/logout", post(form_logout::<S>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(site, guard))
        .with_state(app)
}

// --- responses ---------------------------------------------------------------------

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn with_cookies(mut response: Response, cookies: &[String]) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    response
}

fn json(code: u16, body: &serde_json::Value, cookies: &[String]) -> Response {
    let response = (
        status(code),
        [(CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    with_cookies(response, cookies)
}

fn page(code: u16, html: String, cookies: &[String]) -> Response {
    let mut response = (status(code), html).into_response();
    for (name, value) in html::HEADERS {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    with_cookies(response, cookies)
}

fn redirect(to: &str, cookies: &[String]) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, v);
    }
    with_cookies(response, cookies)
}

/// An error of the JSON API, already in the contract's shape.
struct ApiError(Reply);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(api::error(&e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json(self.0.status, &self.0.body, &[])
    }
}

type ApiResult = Result<Response, ApiError>;

// --- request parts -----------------------------------------------------------------

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

fn header(headers: &HeaderMap, name: HeaderName) -> Option<&[u8]> {
    headers.get(name).map(HeaderValue::as_bytes)
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    api::cookie(
        headers.get_all(COOKIE).iter().map(HeaderValue::as_bytes),
        name,
    )
}

/// The session named by the `sf_session` cookie (the library says whether it is live).
async fn session<S: Store>(app: &App<S>, headers: &HeaderMap) -> Result<Session, Error> {
    app.service
        .session(cookie(headers, SESSION_COOKIE).unwrap_or_default())
        .await
}

/// A JSON body: `Content-Type: application/json`, at most 64 KiB, the endpoint's
/// shape. Every rejection is a JSON error (`415`, `413`, `400`).
struct ApiJson<T>(T);

impl<T: DeserializeOwned, St: Send + Sync> FromRequest<St> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &St) -> Result<Self, Self::Rejection> {
        if !api::is_json(header(req.headers(), CONTENT_TYPE)) {
            return Err(ApiError(api::not_json()));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError(api::too_large()),
                _ => ApiError(api::unreadable_body()),
            })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError(api::bad_json(&e)))
    }
}

/// A form body; rejections become a page with the same (4xx) status.
struct HtmlForm<T>(T);

impl<T: DeserializeOwned + Send, St: Send + Sync> FromRequest<St> for HtmlForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &St) -> Result<Self, Self::Rejection> {
        Form::<T>::from_request(req, state)
            .await
            .map(|Form(t)| HtmlForm(t))
            .map_err(|rejection| {
                let code = rejection.status().as_u16();
                let code = if (400..500).contains(&code) {
                    code
                } else {
                    400
                };
                page(
                    code,
                    html::message("Bad request", &rejection.body_text()),
                    &[],
                )
            })
    }
}

/// Refuses cross-origin requests (`403`) and declared bodies over 64 KiB (`413`)
/// before any handler runs; bodies without a length are cut at 64 KiB by
/// `DefaultBodyLimit` while they are read.
async fn guard(State(site): State<Arc<Site>>, req: Request, next: Next) -> Response {
    let is_api = req.uri().path().starts_with("/api/");
    if !api::origin_allowed(&site, header(req.headers(), ORIGIN)) {
        return if is_api {
            ApiError(api::forbidden_origin()).into_response()
        } else {
            page(
                403,
                html::message("Forbidden", "Cross-site form posts are refused."),
                &[],
            )
        };
    }
    let declared = header(req.headers(), CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return if is_api {
            ApiError(api::too_large()).into_response()
        } else {
            page(
                413,
                html::message("Too large", "The form is larger than 64 KiB."),
                &[],
            )
        };
    }
    next.run(req).await
}

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        ApiError(api::not_found()).into_response()
    } else {
        page(
            404,
            html::message("Not found", "There is no such page."),
            &[],
        )
    }
}

async fn method_not_allowed(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        ApiError(api::method_not_allowed()).into_response()
    } else {
        page(
            405,
            html::message("Method not allowed", "This page does not take that method."),
            &[],
        )
    }
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
    app: &App<S>,
    peer: SocketAddr,
    headers: &HeaderMap,
    username: &str,
    password: &str,
) -> Result<Step, Error> {
    let client = api::client_key(&app.site, peer.ip(), header(headers, X_FORWARDED_FOR));
    let mut request = LoginRequest::new(username, password).client_key(&client);
    if let Some(device) = cookie(headers, DEVICE_COOKIE) {
        request = request.device_token(device);
    }
    Ok(match app.service.login(request).await? {
        LoginOutcome::Authenticated(auth) => {
            let token = app.service.issue_session(auth).await?;
            Step {
                cookies: vec![
                    api::set_cookie(&app.site, SESSION_COOKIE, token.expose(), None),
                    api::clear_cookie(&app.site, PENDING_COOKIE),
                ],
                body: api::authenticated(),
                authenticated: true,
            }
        }
        LoginOutcome::SecondFactorRequired(ticket) => Step {
            cookies: vec![api::set_cookie(
                &app.site,
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
    app: &App<S>,
    headers: &HeaderMap,
    body: &api::FactorBody,
) -> Result<Step, Error> {
    let factor = body.factor()?;
    let pending = cookie(headers, PENDING_COOKIE).unwrap_or_default();
    let auth = app.service.second_factor(pending, factor).await?;
    let mut cookies = vec![api::clear_cookie(&app.site, PENDING_COOKIE)];
    if body.remember_device {
        let label = api::device_label(header(headers, USER_AGENT));
        // The code is spent by now: failing to remember the device must not fail
        // the login.
        match app.service.trust_device(&auth, &label).await {
            Ok(token) => cookies.push(api::set_cookie(
                &app.site,
                DEVICE_COOKIE,
                token.expose(),
                Some(DEVICE_TTL.as_secs()),
            )),
            Err(e) => eprintln!("warning: device not remembered: {e}"),
        }
    }
    let token = app.service.issue_session(auth).await?;
    cookies.push(api::set_cookie(
        &app.site,
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
    State(app): State<App<S>>,
    ApiJson(body): ApiJson<api::Credentials>,
) -> ApiResult {
    let user = app.service.register(&body.username, &body.password).await?;
    let status = app.service.status(&user).await?;
    Ok(json(
        201,
        &serde_json::json!({ "username": status.username }),
        &[],
    ))
}

async fn api_login<S: Store>(
    State(app): State<App<S>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<api::Credentials>,
) -> ApiResult {
    let step = login_step(&app, peer, &headers, &body.username, &body.password).await?;
    Ok(json(200, &step.body, &step.cookies))
}

async fn api_second_factor<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<api::FactorBody>,
) -> ApiResult {
    let step = second_factor_step(&app, &headers, &body).await?;
    Ok(json(200, &step.body, &step.cookies))
}

async fn api_me<S: Store>(State(app): State<App<S>>, headers: HeaderMap) -> ApiResult {
    let session = session(&app, &headers).await?;
    let status = app.service.status(&session.user_id).await?;
    Ok(json(200, &api::me(&status), &[]))
}

async fn api_setup<S: Store>(State(app): State<App<S>>, headers: HeaderMap) -> ApiResult {
    let session = session(&app, &headers).await?;
    let setup = app.service.setup_two_factor(&session.user_id).await?;
    Ok(json(200, &api::setup(&setup)?, &[]))
}

async fn api_confirm<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<api::CodeBody>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let confirmed = app
        .service
        .confirm_enrollment(&session.user_id, &body.code)
        .await?;
    let codes = confirmed.backup_codes.unwrap_or_default();
    Ok(json(200, &api::backup_codes(&codes), &[]))
}

async fn api_disable<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<api::FactorBody>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    app.service
        .disable_two_factor(&session.user_id, body.factor()?)
        .await?;
    Ok(json(
        200,
        &serde_json::json!({ "two_factor_enabled": false }),
        &[],
    ))
}

async fn api_backup_codes<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<api::CodeBody>,
) -> ApiResult {
    let session = session(&app, &headers).await?;
    let codes = app
        .service
        .regenerate_backup_codes(&session.user_id, &body.code)
        .await?;
    Ok(json(200, &api::backup_codes(&codes), &[]))
}

async fn api_logout<S: Store>(State(app): State<App<S>>, headers: HeaderMap) -> ApiResult {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        app.service.end_session(token).await?;
    }
    let cookies = [api::clear_cookie(&app.site, SESSION_COOKIE)];
    Ok(with_cookies(
        StatusCode::NO_CONTENT.into_response(),
        &cookies,
    ))
}

// --- HTML pages --------------------------------------------------------------------

fn notice(query: &html::NoticeQuery) -> Option<&'static str> {
    query.notice.as_deref().and_then(html::notice_text)
}

async fn page_home<S: Store>(State(app): State<App<S>>, headers: HeaderMap) -> Response {
    match session(&app, &headers).await {
        Ok(_) => redirect("/account", &[]),
        Err(_) => page(200, html::home(), &[]),
    }
}

async fn page_register() -> Response {
    page(200, html::register(None, ""), &[])
}

async fn form_register<S: Store>(
    State(app): State<App<S>>,
    HtmlForm(form): HtmlForm<html::CredentialsForm>,
) -> Response {
    match app.service.register(&form.username, &form.password).await {
        Ok(_) => redirect("/login?notice=registered", &[]),
        Err(e) => page(
            e.http_status(),
            html::register(Some(&html::error_text(&e)), &form.username),
            &[],
        ),
    }
}

async fn page_login(Query(query): Query<html::NoticeQuery>) -> Response {
    page(200, html::login(notice(&query), None, ""), &[])
}

async fn form_login<S: Store>(
    State(app): State<App<S>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    HtmlForm(form): HtmlForm<html::CredentialsForm>,
) -> Response {
    match login_step(&app, peer, &headers, &form.username, &form.password).await {
        Ok(step) if step.authenticated => redirect("/account", &step.cookies),
        Ok(step) => redirect("/login/verify", &step.cookies),
        Err(e) => page(
            e.http_status(),
            html::login(None, Some(&html::error_text(&e)), &form.username),
            &[],
        ),
    }
}

async fn page_verify(headers: HeaderMap) -> Response {
    if cookie(&headers, PENDING_COOKIE).is_none() {
        return redirect("/login", &[]);
    }
    page(200, html::verify(None), &[])
}

async fn form_verify<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    HtmlForm(form): HtmlForm<html::FactorForm>,
) -> Response {
    match second_factor_step(&app, &headers, &form.into_body()).await {
        Ok(step) => redirect("/account", &step.cookies),
        Err(Error::LoginExpired) => redirect(
            "/login?notice=expired",
            &[api::clear_cookie(&app.site, PENDING_COOKIE)],
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
    app: &App<S>,
    session: &Session,
    code: u16,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    match app.service.status(&session.user_id).await {
        Ok(status) => page(code, html::account(&status, notice, error), &[]),
        Err(e) => error_page(&e),
    }
}

fn error_page(e: &Error) -> Response {
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

async fn page_account<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    Query(query): Query<html::NoticeQuery>,
) -> Response {
    match session(&app, &headers).await {
        Ok(s) => account_page(&app, &s, 200, notice(&query), None).await,
        Err(e) => error_page(&e),
    }
}

async fn form_setup<S: Store>(State(app): State<App<S>>, headers: HeaderMap) -> Response {
    let session = match session(&app, &headers).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    match app.service.setup_two_factor(&session.user_id).await {
        Ok(_) => redirect("/account/2fa/setup", &[]),
        Err(e) => {
            account_page(
                &app,
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
    app: &App<S>,
    session: &Session,
    code: u16,
    error: Option<&str>,
) -> Response {
    let pending = match app.service.pending_enrollment(&session.user_id).await {
        Ok(Some(setup)) => setup,
        Ok(None) => match app.service.setup_two_factor(&session.user_id).await {
            Ok(setup) => setup,
            Err(e) => {
                let text = html::error_text(&e);
                return account_page(app, session, e.http_status(), None, Some(&text)).await;
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

async fn page_setup<S: Store>(State(app): State<App<S>>, headers: HeaderMap) -> Response {
    match session(&app, &headers).await {
        Ok(s) => setup_page(&app, &s, 200, None).await,
        Err(e) => error_page(&e),
    }
}

async fn form_confirm<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    HtmlForm(form): HtmlForm<html::CodeForm>,
) -> Response {
    let session = match session(&app, &headers).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    match app
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
            setup_page(&app, &session, e.http_status(), Some(&html::error_text(&e))).await
        }
        Err(e) => {
            let text = html::error_text(&e);
            account_page(&app, &session, e.http_status(), None, Some(&text)).await
        }
    }
}

async fn form_disable<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    HtmlForm(form): HtmlForm<html::FactorForm>,
) -> Response {
    let session = match session(&app, &headers).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    let body = form.into_body();
    let result = match body.factor() {
        Ok(factor) => {
            app.service
                .disable_two_factor(&session.user_id, factor)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => redirect("/account?notice=disabled", &[]),
        Err(e) => {
            let text = html::error_text(&e);
            account_page(&app, &session, e.http_status(), None, Some(&text)).await
        }
    }
}

async fn form_backup_codes<S: Store>(
    State(app): State<App<S>>,
    headers: HeaderMap,
    HtmlForm(form): HtmlForm<html::CodeForm>,
) -> Response {
    let session = match session(&app, &headers).await {
        Ok(s) => s,
        Err(e) => return error_page(&e),
    };
    match app
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
            account_page(&app, &session, e.http_status(), None, Some(&text)).await
        }
    }
}

async fn form_logout<S: Store>(State(app): State<App<S>>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = app.service.end_session(token).await
    {
        return error_page(&e);
    }
    redirect(
        "/login?notice=logged_out",
        &[api::clear_cookie(&app.site, SESSION_COOKIE)],
    )
}
