//! Request handling, framework-neutral: every endpoint of the JSON API and every
//! page, from a [`Request`] (what the adapter read off the wire) to an [`Out`] (the
//! status, headers and body it writes back).
//!
//! An adapter only routes a method and path to a [`Route`], builds the [`Request`]
//! and writes the [`Out`]. What the library decides stays in the library: this module
//! parses bodies, calls the service and maps its answers.

use std::net::IpAddr;

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use secondfactor::backup::BackupCode;
use secondfactor::flow::{EnrollmentSetup, Session};
use secondfactor::store::{AuthenticatorId, DeviceId, SessionId, Store};
use secondfactor::{Error, LoginRequest, ReauthRequest, RecentAuth, SecondFactor, Service};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use secondfactor::flow::{LoggedIn, SecondFactorOptions, SignIn};

use super::api::{self, DEVICE_COOKIE, KNOWN_COOKIE, PENDING_COOKIE, Reply, SESSION_COOKIE};
use super::codes::{self, CODES_PATH, CODES_TTL_SECS, Occasion};
use super::config::Site;
use super::html;

/// Every endpoint and page, for the adapters' routing tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/register`
    ApiRegister,
    /// `POST /api/login`
    ApiLogin,
    /// `POST /api/login/second-factor`
    ApiSecondFactor,
    /// `GET /api/me`
    ApiMe,
    /// `POST /api/2fa/setup` †
    ApiSetup,
    /// `POST /api/2fa/setup/confirm` †
    ApiConfirm,
    /// `POST /api/2fa/disable` †
    ApiDisable,
    /// `POST /api/2fa/backup-codes` †
    ApiBackupCodes,
    /// `POST /api/logout`
    ApiLogout,
    /// `POST /api/reauth`
    ApiReauth,
    /// `POST /api/password` †
    ApiPassword,
    /// `GET /api/2fa/authenticators`
    ApiAuthenticators,
    /// `POST /api/2fa/authenticators` †
    ApiAddAuthenticator,
    /// `POST /api/2fa/authenticators/confirm` †
    ApiConfirmAuthenticator,
    /// `DELETE /api/2fa/authenticators/{id}` †
    ApiRemoveAuthenticator,
    /// `GET /api/sessions`
    ApiSessions,
    /// `DELETE /api/sessions/{id}`
    ApiEndSession,
    /// `POST /api/sessions/revoke-others`
    ApiEndOtherSessions,
    /// `GET /api/devices`
    ApiDevices,
    /// `DELETE /api/devices/{id}`
    ApiRevokeDevice,
    /// `GET /api/security-log`
    ApiSecurityLog,
    /// `POST /api/2fa/webauthn/register/start` † (feature `webauthn`)
    ApiWebAuthnRegisterStart,
    /// `POST /api/2fa/webauthn/register/finish` † (feature `webauthn`)
    ApiWebAuthnRegisterFinish,
    /// `POST /api/login/webauthn/start` (feature `webauthn`)
    ApiWebAuthnLoginStart,
    /// `POST /api/reauth/webauthn/start` (feature `webauthn`)
    ApiWebAuthnConfirmStart,
    /// `GET /static/webauthn.js` (feature `webauthn`)
    WebAuthnScript,
    /// `GET /static/style.css`
    Style,
    /// `GET /static/app.js`
    Script,
    /// `GET /`
    Home,
    /// `GET /register`
    Register,
    /// `POST /register`
    RegisterForm,
    /// `GET /login`
    Login,
    /// `POST /login`
    LoginForm,
    /// `GET /login/verify`
    Verify,
    /// `POST /login/verify`
    VerifyForm,
    /// `GET /account`
    Account,
    /// `GET /account/2fa/setup` †
    Setup,
    /// `POST /account/2fa/setup` †
    SetupForm,
    /// `POST /account/2fa/setup/confirm` †
    ConfirmForm,
    /// `POST /account/2fa/disable` †
    DisableForm,
    /// `POST /account/backup-codes` †
    BackupCodesForm,
    /// `GET /backup-codes`: the codes just made, from their sealed cookie
    BackupCodes,
    /// `POST /backup-codes`: "I have saved them" (clears the cookie)
    SavedCodesForm,
    /// `POST /logout`
    LogoutForm,
    /// `GET /reauth`
    Reauth,
    /// `POST /reauth`
    ReauthForm,
    /// `POST /account/password` †
    PasswordForm,
    /// `POST /account/authenticators` †
    AddAuthenticatorForm,
    /// `POST /account/authenticators/remove` †
    RemoveAuthenticatorForm,
    /// `POST /account/sessions/end`
    EndSessionForm,
    /// `POST /account/sessions/revoke-others`
    EndOtherSessionsForm,
    /// `POST /account/devices/forget`
    ForgetDeviceForm,
}

/// The HTTP methods of [`ROUTES`]. A `Get` route answers `HEAD` too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET` (and `HEAD`)
    Get,
    /// `POST`
    Post,
    /// `DELETE`
    Delete,
}

/// The routing table both adapters serve: path (`{id}` marks a segment, the syntax
/// of axum 0.8 and actix-web 4), method, and what answers. A new endpoint is one
/// more row here and one more arm in [`handle`]; no adapter changes.
pub const ROUTES: &[(&str, Method, Route)] = {
    use Method::{Delete, Get, Post};
    use Route::*;
    &[
        // JSON API
        ("/api/register", Post, ApiRegister),
        ("/api/login", Post, ApiLogin),
        ("/api/login/second-factor", Post, ApiSecondFactor),
        ("/api/me", Get, ApiMe),
        ("/api/2fa/setup", Post, ApiSetup),
        ("/api/2fa/setup/confirm", Post, ApiConfirm),
        ("/api/2fa/disable", Post, ApiDisable),
        ("/api/2fa/backup-codes", Post, ApiBackupCodes),
        ("/api/logout", Post, ApiLogout),
        ("/api/reauth", Post, ApiReauth),
        ("/api/password", Post, ApiPassword),
        ("/api/2fa/authenticators", Get, ApiAuthenticators),
        ("/api/2fa/authenticators", Post, ApiAddAuthenticator),
        (
            "/api/2fa/authenticators/confirm",
            Post,
            ApiConfirmAuthenticator,
        ),
        (
            "/api/2fa/authenticators/{id}",
            Delete,
            ApiRemoveAuthenticator,
        ),
        ("/api/sessions", Get, ApiSessions),
        ("/api/sessions/revoke-others", Post, ApiEndOtherSessions),
        ("/api/sessions/{id}", Delete, ApiEndSession),
        ("/api/devices", Get, ApiDevices),
        ("/api/devices/{id}", Delete, ApiRevokeDevice),
        ("/api/security-log", Get, ApiSecurityLog),
        (
            "/api/2fa/webauthn/register/start",
            Post,
            ApiWebAuthnRegisterStart,
        ),
        (
            "/api/2fa/webauthn/register/finish",
            Post,
            ApiWebAuthnRegisterFinish,
        ),
        ("/api/login/webauthn/start", Post, ApiWebAuthnLoginStart),
        ("/api/reauth/webauthn/start", Post, ApiWebAuthnConfirmStart),
        // HTML pages
        ("/static/style.css", Get, Style),
        ("/static/app.js", Get, Script),
        ("/static/webauthn.js", Get, WebAuthnScript),
        ("/", Get, Home),
        ("/register", Get, Register),
        ("/register", Post, RegisterForm),
        ("/login", Get, Login),
        ("/login", Post, LoginForm),
        ("/login/verify", Get, Verify),
        ("/login/verify", Post, VerifyForm),
        ("/account", Get, Account),
        ("/account/2fa/setup", Get, Setup),
        ("/account/2fa/setup", Post, SetupForm),
        ("/account/2fa/setup/confirm", Post, ConfirmForm),
        ("/account/2fa/disable", Post, DisableForm),
        ("/account/backup-codes", Post, BackupCodesForm),
        ("/backup-codes", Get, BackupCodes),
        ("/backup-codes", Post, SavedCodesForm),
        ("/account/password", Post, PasswordForm),
        ("/account/authenticators", Post, AddAuthenticatorForm),
        (
            "/account/authenticators/remove",
            Post,
            RemoveAuthenticatorForm,
        ),
        ("/account/sessions/end", Post, EndSessionForm),
        (
            "/account/sessions/revoke-others",
            Post,
            EndOtherSessionsForm,
        ),
        ("/account/devices/forget", Post, ForgetDeviceForm),
        ("/reauth", Get, Reauth),
        ("/reauth", Post, ReauthForm),
        ("/logout", Post, LogoutForm),
    ]
};

/// One path of [`ROUTES`] with everything it answers.
pub struct Resource {
    /// The path pattern.
    pub path: &'static str,
    /// Its methods and what answers each, in table order.
    pub methods: Vec<(Method, Route)>,
    /// The `Allow` header of its `405` answer (`GET,HEAD,POST`).
    pub allow: String,
}

/// [`ROUTES`] grouped by path, in table order.
pub fn resources() -> Vec<Resource> {
    let mut out: Vec<Resource> = Vec::new();
    for &(path, method, route) in ROUTES {
        let i = match out.iter().position(|r| r.path == path) {
            Some(i) => i,
            None => {
                out.push(Resource {
                    path,
                    methods: Vec::new(),
                    allow: String::new(),
                });
                out.len() - 1
            }
        };
        out[i].methods.push((method, route));
    }
    for r in &mut out {
        let names: Vec<&str> = r
            .methods
            .iter()
            .flat_map(|(m, _)| match m {
                Method::Get => &["GET", "HEAD"][..],
                Method::Post => &["POST"][..],
                Method::Delete => &["DELETE"][..],
            })
            .copied()
            .collect();
        r.allow = names.join(",");
    }
    out
}

/// The request headers an adapter can read (names are lowercase).
pub trait Headers {
    /// Every value of header `name`, in order.
    fn all(&self, name: &str) -> Vec<&[u8]>;

    /// The first value of header `name`.
    fn first(&self, name: &str) -> Option<&[u8]> {
        self.all(name).into_iter().next()
    }
}

/// What a handler needs to know about a request.
pub struct Request {
    path: String,
    query: String,
    session: Option<String>,
    pending: Option<String>,
    device: Option<String>,
    known: Option<String>,
    codes: Option<String>,
    client: String,
    device_label: String,
    content_type: Option<Vec<u8>>,
    body: Result<Vec<u8>, Reply>,
}

impl Request {
    /// Reads the parts a handler uses. `body` is the body as the framework read it, or
    /// the JSON error for a body it could not read (too large, broken); it is looked
    /// at only by handlers that take one, after their session checks.
    pub fn new(
        site: &Site,
        headers: &impl Headers,
        peer: IpAddr,
        path: &str,
        query: &str,
        body: Result<Vec<u8>, Reply>,
    ) -> Request {
        let cookies = headers.all("cookie");
        let cookie =
            |name| api::cookie(cookies.iter().copied(), &site.cookie_name(name)).map(str::to_owned);
        Request {
            path: path.to_owned(),
            query: query.to_owned(),
            session: cookie(SESSION_COOKIE),
            pending: cookie(PENDING_COOKIE),
            device: cookie(DEVICE_COOKIE),
            known: cookie(KNOWN_COOKIE),
            codes: api::cookie(cookies.iter().copied(), &codes::cookie_name(site))
                .map(str::to_owned),
            // Every X-Forwarded-For line, in order: the proxy appends to the last.
            client: api::client_key(site, peer, &headers.all("x-forwarded-for")),
            device_label: api::device_label(headers.first("user-agent")),
            content_type: headers.first("content-type").map(<[u8]>::to_vec),
            body,
        }
    }

    fn session_token(&self) -> &str {
        self.session.as_deref().unwrap_or_default()
    }

    /// The last path segment (the `{id}` of `/api/sessions/{id}`), percent-decoded.
    fn path_id(&self) -> String {
        let last = self.path.rsplit('/').next().unwrap_or_default();
        percent_decode_str(last).decode_utf8_lossy().into_owned()
    }

    fn query_param(&self, name: &str) -> Option<String> {
        form_pairs(self.query.as_bytes())
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A response: status, headers (`set-cookie` may repeat) and body.
#[derive(Debug)]
pub struct Out {
    /// The HTTP status.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(&'static str, String)>,
    /// The body (empty for `204` and redirects).
    pub body: String,
}

impl Out {
    fn with_cookies(mut self, cookies: &[String]) -> Out {
        for c in cookies {
            self.headers.push(("set-cookie", c.clone()));
        }
        self
    }

    /// A JSON answer of the API (`Cache-Control: no-store`, like every `/api/` one).
    pub fn json(status: u16, body: &Value, cookies: &[String]) -> Out {
        Out {
            status,
            headers: vec![
                ("content-type", "application/json".to_owned()),
                ("cache-control", "no-store".to_owned()),
            ],
            body: body.to_string(),
        }
        .with_cookies(cookies)
    }

    /// A JSON error.
    pub fn api_error(reply: &Reply) -> Out {
        let mut out = Out::json(reply.status, &reply.body, &[]);
        if let Some(secs) = reply.body["retry_after"].as_u64() {
            out.headers.push(("retry-after", secs.to_string()));
        }
        out
    }

    /// `204` from the API.
    pub fn no_content(cookies: &[String]) -> Out {
        Out {
            status: 204,
            headers: vec![("cache-control", "no-store".to_owned())],
            body: String::new(),
        }
        .with_cookies(cookies)
    }

    /// An HTML page with the page headers ([`html::HEADERS`]).
    pub fn page(status: u16, body: String, cookies: &[String]) -> Out {
        Out {
            status,
            headers: html::HEADERS
                .iter()
                .map(|(n, v)| (*n, (*v).to_owned()))
                .collect(),
            body,
        }
        .with_cookies(cookies)
    }

    /// `303 See Other` to `to`.
    pub fn redirect(to: &str, cookies: &[String]) -> Out {
        Out {
            status: 303,
            headers: vec![("location", to.to_owned())],
            body: String::new(),
        }
        .with_cookies(cookies)
    }

    /// A rejection before any handler: a JSON error under `/api/`, else a page.
    pub fn rejected(is_api: bool, reply: &Reply, title: &str, text: &str) -> Out {
        if is_api {
            Out::api_error(reply)
        } else {
            Out::page(reply.status, html::message(title, text), &[])
        }
    }

    /// `403`: a cross-origin request; the page names the origin this site expects.
    pub fn forbidden_origin(site: &Site, origin: Option<&[u8]>, is_api: bool) -> Out {
        let sent = String::from_utf8_lossy(origin.unwrap_or_default());
        Out::rejected(
            is_api,
            &api::forbidden_origin(),
            "Wrong address",
            &format!(
                "This form was sent from {sent}, but this site expects {expected}. \
                 Open {expected}/ and try again (set SF_PUBLIC_URL if the site is reached \
                 at another address).",
                expected = site.origin,
            ),
        )
    }

    /// A file of the pages (stylesheet, script), cacheable for an hour.
    pub fn asset(content_type: &str, body: &str) -> Out {
        Out {
            status: 200,
            headers: vec![
                ("content-type", content_type.to_owned()),
                ("cache-control", "public, max-age=3600".to_owned()),
                ("x-content-type-options", "nosniff".to_owned()),
            ],
            body: body.to_owned(),
        }
    }

    /// `413`: a declared body over 64 KiB.
    pub fn too_large(is_api: bool) -> Out {
        Out::rejected(
            is_api,
            &api::too_large(),
            "Too large",
            "The form is larger than 64 KiB.",
        )
    }

    /// `404`: an unknown path.
    pub fn not_found(is_api: bool) -> Out {
        Out::rejected(
            is_api,
            &api::not_found(),
            "Not found",
            "There is no such page.",
        )
    }

    /// `405`: a known path, another method.
    pub fn method_not_allowed(is_api: bool) -> Out {
        Out::rejected(
            is_api,
            &api::method_not_allowed(),
            "Method not allowed",
            "This page does not take that method.",
        )
    }
}

/// The `403` answer to a request whose `Origin` header names another site, or
/// `None` when the origin is allowed (or absent).
pub fn refuse_origin(site: &Site, origin: Option<&[u8]>, is_api: bool) -> Option<Out> {
    (!api::origin_allowed(site, origin)).then(|| Out::forbidden_origin(site, origin, is_api))
}

/// Decodes `application/x-www-form-urlencoded` pairs (also a query string).
fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        percent_decode_str(&s).decode_utf8_lossy().into_owned()
    };
    String::from_utf8_lossy(bytes)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// `/reauth?next=…` for a page that asked for a recent authentication.
fn reauth_url(next: &str) -> String {
    format!(
        "/reauth?next={}",
        utf8_percent_encode(html::safe_next(next), NON_ALPHANUMERIC)
    )
}

/// Handles one request.
pub async fn handle<S: Store>(
    service: &Service<S>,
    site: &Site,
    route: Route,
    req: Request,
) -> Out {
    let cx = Cx { service, site, req };
    if route_is_api(route) {
        match cx.api(route).await {
            Ok(out) => out,
            Err(reply) => Out::api_error(&reply),
        }
    } else {
        cx.page(route).await
    }
}

fn route_is_api(route: Route) -> bool {
    use Route::*;
    matches!(
        route,
        ApiRegister
            | ApiLogin
            | ApiSecondFactor
            | ApiMe
            | ApiSetup
            | ApiConfirm
            | ApiDisable
            | ApiBackupCodes
            | ApiLogout
            | ApiReauth
            | ApiPassword
            | ApiAuthenticators
            | ApiAddAuthenticator
            | ApiConfirmAuthenticator
            | ApiRemoveAuthenticator
            | ApiSessions
            | ApiEndSession
            | ApiEndOtherSessions
            | ApiDevices
            | ApiRevokeDevice
            | ApiSecurityLog
            | ApiWebAuthnRegisterStart
            | ApiWebAuthnRegisterFinish
            | ApiWebAuthnLoginStart
            | ApiWebAuthnConfirmStart
    )
}

struct Cx<'a, S> {
    service: &'a Service<S>,
    site: &'a Site,
    req: Request,
}

type ApiResult = Result<Out, Reply>;

/// What a completed login step answers with.
struct Step {
    cookies: Vec<String>,
    body: Value,
    authenticated: bool,
}

impl<S: Store> Cx<'_, S> {
    // --- request parts ---------------------------------------------------------------

    async fn session(&self) -> Result<Session, Error> {
        self.service.session(self.req.session_token()).await
    }

    async fn recent(&self) -> Result<RecentAuth, Error> {
        self.service.recent_auth(self.req.session_token()).await
    }

    /// The JSON body: `Content-Type: application/json`, the endpoint's shape.
    fn json<T: DeserializeOwned>(&self) -> Result<T, Reply> {
        if !api::is_json(self.req.content_type.as_deref()) {
            return Err(api::not_json());
        }
        let bytes = self.req.body.as_ref().map_err(Clone::clone)?;
        serde_json::from_slice(bytes).map_err(|e| api::bad_json(&e))
    }

    /// The form body; a page with a 4xx status when it is not one.
    fn form<T: DeserializeOwned>(&self) -> Result<T, Out> {
        let is_form = self
            .req
            .content_type
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        let bad =
            |status: u16, text: &str| Out::page(status, html::message("Bad request", text), &[]);
        if !is_form {
            return Err(bad(
                415,
                "Send the form as application/x-www-form-urlencoded.",
            ));
        }
        let bytes = self
            .req
            .body
            .as_ref()
            .map_err(|r| bad(r.status, "The form could not be read."))?;
        let map: serde_json::Map<String, Value> = form_pairs(bytes)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        serde_json::from_value(Value::Object(map))
            .map_err(|_| bad(422, "The form does not have the expected fields."))
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> String {
        api::set_cookie(self.site, name, value, max_age)
    }

    fn clear(&self, name: &str) -> String {
        api::clear_cookie(self.site, name)
    }

    // --- the login steps, shared by the API and the forms ---------------------------

    async fn login_step(&self, username: &str, password: &str) -> Result<Step, Error> {
        let mut request = LoginRequest::new(username, password).client_key(&self.req.client);
        if let Some(device) = self.req.device.as_deref() {
            request = request.device_token(device);
        }
        if let Some(known) = self.req.known.as_deref() {
            request = request.known_browser(known);
        }
        Ok(match self.service.sign_in(request).await? {
            SignIn::LoggedIn(done) => self.logged_in(&done, vec![self.clear(PENDING_COOKIE)]),
            SignIn::SecondFactorRequired(ticket) => Step {
                cookies: vec![self.cookie(
                    PENDING_COOKIE,
                    ticket.token.expose(),
                    Some(ticket.expires_in.as_secs()),
                )],
                body: api::second_factor_required(&ticket),
                authenticated: false,
            },
            _ => {
                return Err(Error::Internal(
                    "an outcome of sign_in this example does not know",
                ));
            }
        })
    }

    async fn second_factor_step(&self, body: &api::FactorBody) -> Result<Step, Error> {
        let factor = body.factor()?;
        let pending = self.req.pending.as_deref().unwrap_or_default();
        let options = SecondFactorOptions {
            remember_device: body
                .remember_device
                .then_some(self.req.device_label.as_str()),
            client_key: Some(&self.req.client),
        };
        let done = self
            .service
            .sign_in_second_factor(pending, factor, options)
            .await?;
        Ok(self.logged_in(&done, vec![self.clear(PENDING_COOKIE)]))
    }

    /// A completed login's cookies: the session, the known-browser mark that exempts
    /// this browser from the account-wide password limit next time, and the trusted
    /// device when there is one, with the lifetimes the service gave.
    fn logged_in(&self, done: &LoggedIn, mut cookies: Vec<String>) -> Step {
        cookies.push(self.cookie(SESSION_COOKIE, done.session.expose(), None));
        cookies.push(self.cookie(
            KNOWN_COOKIE,
            done.known_browser.expose(),
            Some(done.known_browser_ttl.as_secs()),
        ));
        if let Some(device) = &done.device {
            cookies.push(self.cookie(
                DEVICE_COOKIE,
                device.expose(),
                Some(done.device_ttl.as_secs()),
            ));
        }
        Step {
            cookies,
            body: api::authenticated(),
            authenticated: true,
        }
    }

    async fn reauthenticate(&self, body: &api::ReauthBody) -> Result<u64, Error> {
        let mut request = ReauthRequest::new(&body.password).client_key(&self.req.client);
        if let Some(factor) = body.factor()? {
            request = request.factor(factor);
        }
        self.service
            .reauthenticate(self.req.session_token(), request)
            .await
    }

    /// The new authenticator's id and name after a confirmation.
    async fn confirmed_name(&self, proof: &RecentAuth, id: &AuthenticatorId) -> String {
        match self.service.status(proof.user_id()).await {
            Ok(status) => status
                .authenticators
                .into_iter()
                .find(|a| a.id == *id)
                .map(|a| a.name)
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    // --- JSON API --------------------------------------------------------------------

    async fn api(&self, route: Route) -> ApiResult {
        let service = self.service;
        match route {
            Route::ApiRegister => {
                let body: api::Credentials = self.json()?;
                api::new_password_length(&body.password)?;
                let done = service
                    .sign_up(Some(&self.req.client), &body.username, &body.password)
                    .await?;
                let step = self.logged_in(&done, Vec::new());
                Ok(Out::json(
                    201,
                    &json!({ "username": done.username }),
                    &step.cookies,
                ))
            }
            Route::ApiLogin => {
                let body: api::Credentials = self.json()?;
                let step = self.login_step(&body.username, &body.password).await?;
                Ok(Out::json(200, &step.body, &step.cookies))
            }
            #[cfg(feature = "webauthn")]
            Route::ApiWebAuthnRegisterStart => {
                let proof = self.recent().await?;
                let body: api::NameBody = self.json()?;
                let options = super::webauthn::register_start(service, &proof, &body.name).await?;
                Ok(Out::json(200, &options, &[]))
            }
            #[cfg(feature = "webauthn")]
            Route::ApiWebAuthnRegisterFinish => {
                let proof = self.recent().await?;
                let _: Value = self.json()?;
                let body = self.req.body.as_ref().map_err(Clone::clone)?;
                let done = super::webauthn::register_finish(service, &proof, body).await?;
                Ok(Out::json(200, &done, &[]))
            }
            #[cfg(feature = "webauthn")]
            Route::ApiWebAuthnConfirmStart => {
                let options =
                    super::webauthn::confirm_start(service, self.req.session_token()).await?;
                Ok(Out::json(200, &options, &[]))
            }
            #[cfg(feature = "webauthn")]
            Route::ApiWebAuthnLoginStart => {
                let pending = self.req.pending.as_deref().unwrap_or_default();
                let options = super::webauthn::login_start(service, pending).await?;
                Ok(Out::json(200, &options, &[]))
            }
            Route::ApiSecondFactor => {
                let body: api::FactorBody = self.json()?;
                let step = self.second_factor_step(&body).await?;
                Ok(Out::json(200, &step.body, &step.cookies))
            }
            Route::ApiMe => {
                let session = self.session().await?;
                let status = service.status(session.user_id()).await?;
                Ok(Out::json(200, &api::me(&status, &session), &[]))
            }
            Route::ApiSetup => {
                let proof = self.recent().await?;
                let setup = service.resume_or_setup_two_factor(&proof).await?;
                Ok(Out::json(200, &api::setup(&setup)?, &[]))
            }
            Route::ApiConfirm => {
                let proof = self.recent().await?;
                let body: api::CodeBody = self.json()?;
                let confirmed = service.confirm_enrollment(&proof, &body.code).await?;
                let codes = confirmed.backup_codes.unwrap_or_default();
                Ok(Out::json(200, &api::backup_codes(&codes), &[]))
            }
            Route::ApiDisable => {
                let proof = self.recent().await?;
                let body: api::FactorBody = self.json()?;
                service.disable_two_factor(&proof, body.factor()?).await?;
                Ok(Out::json(200, &json!({ "two_factor_enabled": false }), &[]))
            }
            Route::ApiBackupCodes => {
                let proof = self.recent().await?;
                let body: api::CodeBody = self.json()?;
                let codes = service.regenerate_backup_codes(&proof, &body.code).await?;
                Ok(Out::json(200, &api::backup_codes(&codes), &[]))
            }
            Route::ApiLogout => {
                if let Some(token) = self.req.session.as_deref() {
                    service.end_session(token).await?;
                }
                Ok(Out::no_content(&[self.clear(SESSION_COOKIE)]))
            }
            Route::ApiReauth => {
                let body: api::ReauthBody = self.json()?;
                let until = self.reauthenticate(&body).await?;
                Ok(Out::json(
                    200,
                    &json!({ "reauthenticated_until": until }),
                    &[],
                ))
            }
            Route::ApiPassword => {
                let proof = self.recent().await?;
                let body: api::PasswordBody = self.json()?;
                api::new_password_length(&body.new_password)?;
                let token = service
                    .change_password(&proof, &body.current_password, &body.new_password)
                    .await?;
                Ok(Out::no_content(&[self.cookie(
                    SESSION_COOKIE,
                    token.expose(),
                    None,
                )]))
            }
            Route::ApiAuthenticators => {
                let session = self.session().await?;
                let status = service.status(session.user_id()).await?;
                Ok(Out::json(200, &api::authenticators(&status), &[]))
            }
            Route::ApiAddAuthenticator => {
                let proof = self.recent().await?;
                let body: api::NameBody = self.json()?;
                let setup = service.add_authenticator(&proof, &body.name).await?;
                Ok(Out::json(200, &api::added_authenticator(&setup)?, &[]))
            }
            Route::ApiConfirmAuthenticator => {
                let proof = self.recent().await?;
                let body: api::CodeBody = self.json()?;
                let confirmed = service.confirm_enrollment(&proof, &body.code).await?;
                let id = confirmed.authenticator_id;
                let name = self.confirmed_name(&proof, &id).await;
                Ok(Out::json(
                    200,
                    &json!({ "id": id.as_str(), "name": name }),
                    &[],
                ))
            }
            Route::ApiRemoveAuthenticator => {
                let proof = self.recent().await?;
                let id = AuthenticatorId::new(self.req.path_id());
                service.remove_authenticator(&proof, &id).await?;
                Ok(Out::no_content(&[]))
            }
            Route::ApiSessions => {
                let sessions = service.sessions(self.req.session_token()).await?;
                Ok(Out::json(200, &api::sessions(&sessions), &[]))
            }
            Route::ApiEndSession => {
                let current = self.session().await?;
                let id = SessionId::new(self.req.path_id());
                service
                    .end_session_by_id(self.req.session_token(), &id)
                    .await?;
                let cookies = if id == *current.id() {
                    vec![self.clear(SESSION_COOKIE)]
                } else {
                    Vec::new()
                };
                Ok(Out::no_content(&cookies))
            }
            Route::ApiEndOtherSessions => {
                service.end_other_sessions(self.req.session_token()).await?;
                Ok(Out::no_content(&[]))
            }
            Route::ApiDevices => {
                let session = self.session().await?;
                let devices = service
                    .trusted_devices_with_current(session.user_id(), self.req.device.as_deref())
                    .await?;
                Ok(Out::json(200, &api::devices(&devices), &[]))
            }
            Route::ApiRevokeDevice => {
                let session = self.session().await?;
                let id = DeviceId::new(self.req.path_id());
                service.revoke_device(session.user_id(), &id).await?;
                Ok(Out::no_content(&[]))
            }
            Route::ApiSecurityLog => {
                let session = self.session().await?;
                let log = service.security_log(session.user_id()).await?;
                Ok(Out::json(200, &api::security_log(&log), &[]))
            }
            _ => Err(api::not_found()),
        }
    }

    // --- HTML pages ------------------------------------------------------------------

    async fn page(&self, route: Route) -> Out {
        let result = match route {
            Route::Style => Ok(Out::asset("text/css; charset=utf-8", html::STYLESHEET)),
            Route::Script => Ok(Out::asset("text/javascript; charset=utf-8", html::SCRIPT)),
            #[cfg(feature = "webauthn")]
            Route::WebAuthnScript => Ok(Out::asset(
                "text/javascript; charset=utf-8",
                super::webauthn::SCRIPT,
            )),
            Route::Home => Ok(match self.session().await {
                Ok(_) => Out::redirect("/account", &[]),
                Err(_) => Out::page(200, html::home(), &[]),
            }),
            Route::Register => Ok(Out::page(200, html::register(None, ""), &[])),
            Route::RegisterForm => self.register_form().await,
            Route::Login => Ok(Out::page(200, html::login(self.notice(), None, ""), &[])),
            Route::LoginForm => self.login_form().await,
            Route::Verify => Ok(match self.req.pending {
                None => Out::redirect("/login", &[]),
                Some(_) => Out::page(200, html::verify(None), &[]),
            }),
            Route::VerifyForm => self.verify_form().await,
            Route::Account => {
                let session = self.session().await;
                match session {
                    Ok(s) => Ok(self.account(&s, 200, self.notice(), None).await),
                    Err(e) => Err(e),
                }
            }
            Route::Setup => self.setup_page(200, None, "/account").await,
            Route::SetupForm => self.setup_form().await,
            Route::ConfirmForm => self.confirm_form().await,
            Route::DisableForm => self.disable_form().await,
            Route::BackupCodesForm => self.backup_codes_form().await,
            Route::BackupCodes => self.codes_page().await,
            // "I have saved them": the codes are not shown again.
            Route::SavedCodesForm => Ok(Out::redirect(
                "/account?notice=codes_saved",
                &[codes::clear_cookie(self.site)],
            )),
            Route::LogoutForm => self.logout_form().await,
            Route::Reauth => self.reauth_page().await,
            Route::ReauthForm => self.reauth_form().await,
            Route::PasswordForm => self.password_form().await,
            Route::AddAuthenticatorForm => self.add_authenticator_form().await,
            Route::RemoveAuthenticatorForm => self.remove_authenticator_form().await,
            Route::EndSessionForm => self.end_session_form().await,
            Route::EndOtherSessionsForm => self.end_other_sessions_form().await,
            Route::ForgetDeviceForm => self.forget_device_form().await,
            _ => Ok(Out::not_found(false)),
        };
        result.unwrap_or_else(|e| self.error_page(&e, "/account"))
    }

    fn notice(&self) -> Option<&'static str> {
        self.req
            .query_param("notice")
            .as_deref()
            .and_then(html::notice_text)
    }

    /// A page for an error outside a form: the login for no session, the
    /// re-authentication (then back to `next`) for a closed window, else in words.
    fn error_page(&self, e: &Error, next: &str) -> Out {
        match e {
            Error::Unauthenticated => Out::redirect("/login", &[]),
            Error::ReauthenticationRequired => Out::redirect(&reauth_url(next), &[]),
            e => {
                api::error(e); // logs server-side failures
                Out::page(
                    e.http_status(),
                    html::message("Error", &html::error_text(e)),
                    &[],
                )
            }
        }
    }

    /// The account page, with a notice or an error, at `code`.
    async fn account(
        &self,
        session: &Session,
        code: u16,
        notice: Option<&str>,
        error: Option<&str>,
    ) -> Out {
        let view = async {
            let user = session.user_id();
            Ok::<_, Error>(html::AccountView {
                status: self.service.status(user).await?,
                sessions: self.service.sessions(self.req.session_token()).await?,
                devices: self
                    .service
                    .trusted_devices_with_current(user, self.req.device.as_deref())
                    .await?,
                log: self.service.security_log(user).await?,
                now: self.service.now(),
            })
        };
        match view.await {
            Ok(view) => Out::page(code, html::account(&view, notice, error), &[]),
            Err(e) => self.error_page(&e, "/account"),
        }
    }

    /// The account page with `e` in words, or the login / re-authentication page.
    async fn account_error(&self, e: &Error) -> Out {
        match e {
            Error::Unauthenticated | Error::ReauthenticationRequired => {
                self.error_page(e, "/account")
            }
            e => match self.session().await {
                Ok(s) => {
                    let text = html::error_text(e);
                    self.account(&s, e.http_status(), None, Some(&text)).await
                }
                Err(other) => self.error_page(&other, "/account"),
            },
        }
    }

    async fn register_form(&self) -> Result<Out, Error> {
        let form: html::CredentialsForm = match self.form() {
            Ok(f) => f,
            Err(out) => return Ok(out),
        };
        Ok(
            match async {
                api::new_password_length(&form.password)?;
                self.service
                    .sign_up(Some(&self.req.client), &form.username, &form.password)
                    .await
            }
            .await
            {
                Ok(done) => Out::redirect("/account", &self.logged_in(&done, Vec::new()).cookies),
                Err(e) => Out::page(
                    e.http_status(),
                    html::register(Some(&html::register_error_text(&e)), &form.username),
                    &[],
                ),
            },
        )
    }

    async fn login_form(&self) -> Result<Out, Error> {
        let form: html::CredentialsForm = match self.form() {
            Ok(f) => f,
            Err(out) => return Ok(out),
        };
        Ok(
            match self.login_step(&form.username, &form.password).await {
                Ok(step) if step.authenticated => Out::redirect("/account", &step.cookies),
                Ok(step) => Out::redirect("/login/verify", &step.cookies),
                Err(e) => Out::page(
                    e.http_status(),
                    html::login(None, Some(&html::error_text(&e)), &form.username),
                    &[],
                ),
            },
        )
    }

    async fn verify_form(&self) -> Result<Out, Error> {
        let form: html::FactorForm = match self.form() {
            Ok(f) => f,
            Err(out) => return Ok(out),
        };
        Ok(match self.second_factor_step(&form.into_body()).await {
            Ok(step) => Out::redirect("/account", &step.cookies),
            Err(Error::LoginExpired) => {
                Out::redirect("/login?notice=expired", &[self.clear(PENDING_COOKIE)])
            }
            Err(e) => Out::page(
                e.http_status(),
                html::verify(Some(&html::error_text(&e))),
                &[],
            ),
        })
    }

    /// The pending enrollment to show: the one being added when 2FA is on (none: the
    /// page has nothing to show), else the first setup (resumed, or a new one).
    async fn setup_view(
        &self,
        proof: &RecentAuth,
    ) -> Result<Option<(EnrollmentSetup, bool)>, Error> {
        match self.service.resume_or_setup_two_factor(proof).await {
            Ok(setup) => Ok(Some((setup, false))),
            Err(Error::TwoFactorAlreadyEnabled) => Ok(self
                .service
                .pending_enrollment(proof)
                .await?
                .map(|p| (p, true))),
            Err(e) => Err(e),
        }
    }

    /// The setup page (first authenticator, or one being added); with nothing to set
    /// up, a redirect to `done`.
    async fn setup_page(&self, code: u16, error: Option<&str>, done: &str) -> Result<Out, Error> {
        let proof = match self.recent().await {
            Ok(p) => p,
            Err(e) => return Ok(self.error_page(&e, "/account/2fa/setup")),
        };
        let (pending, adding) = match self.setup_view(&proof).await {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Out::redirect(done, &[])),
            Err(e) => return Ok(self.account_error(&e).await),
        };
        let qr = pending.qr().and_then(|qr| qr.png_data_uri())?;
        let secret = pending.secret().to_base32();
        let uri = pending.uri();
        let view = html::SetupView {
            secret: &secret,
            uri: &uri,
            qr_data_uri: &qr,
            expires_in: pending.expires_in().as_secs(),
            adding,
        };
        Ok(Out::page(code, html::setup(&view, error), &[]))
    }

    async fn setup_form(&self) -> Result<Out, Error> {
        let proof = match self.recent().await {
            Ok(p) => p,
            Err(e) => return Ok(self.error_page(&e, "/account/2fa/setup")),
        };
        Ok(
            match self.service.resume_or_setup_two_factor(&proof).await {
                Ok(_) => Out::redirect("/account/2fa/setup", &[]),
                Err(e) => self.account_error(&e).await,
            },
        )
    }

    async fn confirm_form(&self) -> Result<Out, Error> {
        let proof = match self.recent().await {
            Ok(p) => p,
            Err(e) => return Ok(self.error_page(&e, "/account/2fa/setup")),
        };
        let form: html::CodeForm = match self.form() {
            Ok(f) => f,
            Err(out) => return Ok(out),
        };
        Ok(
            match self.service.confirm_enrollment(&proof, &form.code).await {
                Ok(confirmed) => match confirmed.backup_codes {
                    Some(codes) => self.show_codes(&proof, Occasion::TurnedOn, &codes)?,
                    None => Out::redirect("/account?notice=authenticator_added", &[]),
                },
                // An added authenticator's setup expired: 2FA stays on, so back to
                // the account page, which says so.
                Err(Error::SetupExpired) if form.adding.is_some() => {
                    Out::redirect("/account?notice=add_expired", &[])
                }
                // No pending setup: it expired (the page shows a new one), or this
                // form was posted again (the back button, after 2FA was turned on: the
                // account page says the codes were shown once).
                Err(
                    e @ (Error::InvalidInput { .. }
                    | Error::InvalidCode { .. }
                    | Error::SetupExpired),
                ) => {
                    self.setup_page(
                        e.http_status(),
                        Some(&html::error_text(&e)),
                        "/account?notice=codes_shown",
                    )
                    .await?
                }
                Err(e) => self.account_error(&e).await,
            },
        )
    }

    /// Runs a credential change from the account page: the recent authentication
    /// first (else to `/reauth`, back to the account), then the form.
    async fn account_change<F, Fut>(&self, change: F) -> Result<Out, Error>
    where
        F: FnOnce(RecentAuth, html::AccountForm) -> Fut,
        Fut: std::future::Future<Output = Result<Out, Error>>,
    {
        let proof = match self.recent().await {
            Ok(p) => p,
            Err(e) => return Ok(self.error_page(&e, "/account")),
        };
        let form: html::AccountForm = match self.form() {
            Ok(f) => f,
            Err(out) => return Ok(out),
        };
        Ok(match change(proof, form).await {
            Ok(out) => out,
            Err(e) => self.account_error(&e).await,
        })
    }

    async fn disable_form(&self) -> Result<Out, Error> {
        self.account_change(|proof, form| async move {
            form.confirmed()?;
            let factor = form.factor()?;
            self.service.disable_two_factor(&proof, factor).await?;
            Ok(Out::redirect("/account?notice=disabled", &[]))
        })
        .await
    }

    async fn backup_codes_form(&self) -> Result<Out, Error> {
        self.account_change(|proof, form| async move {
            let codes = self
                .service
                .regenerate_backup_codes(&proof, form.code.as_deref().unwrap_or_default())
                .await?;
            self.show_codes(&proof, Occasion::Renewed, &codes)
        })
        .await
    }

    /// `303` to the backup-codes page, with the new codes sealed in its cookie for
    /// this session (POST-redirect-GET: a reload shows them again, never re-posts).
    fn show_codes(
        &self,
        proof: &RecentAuth,
        occasion: Occasion,
        new: &[BackupCode],
    ) -> Result<Out, Error> {
        let new: Vec<&str> = new.iter().map(BackupCode::expose).collect();
        let now = self.service.now();
        let value = codes::seal(&self.site.keys, proof.session_id(), occasion, &new, now)?;
        let cookie = codes::set_cookie(self.site, &value, CODES_TTL_SECS);
        Ok(Out::redirect(CODES_PATH, &[cookie]))
    }

    /// `GET /backup-codes`: the codes in this session's cookie, as often as it is
    /// reloaded until saved or expired; without one (shown and saved already, expired,
    /// another session's, altered), the account page saying how to make new ones.
    async fn codes_page(&self) -> Result<Out, Error> {
        let session = self.session().await?;
        let now = self.service.now();
        let shown = self
            .req
            .codes
            .as_deref()
            .and_then(|value| codes::open(&self.site.keys, session.id(), value, now));
        Ok(match shown {
            Some(shown) => {
                let list: Vec<&str> = shown.codes.iter().map(String::as_str).collect();
                let page = html::backup_codes(shown.occasion.heading(), &list);
                Out::page(200, page, &[])
            }
            None => {
                let clear: Vec<String> = self
                    .req
                    .codes
                    .as_ref()
                    .map(|_| codes::clear_cookie(self.site))
                    .into_iter()
                    .collect();
                Out::redirect("/account?notice=codes_shown", &clear)
            }
        })
    }

    async fn password_form(&self) -> Result<Out, Error> {
        self.account_change(|proof, form| async move {
            api::new_password_length(&form.new_password)?;
            let token = self
                .service
                .change_password(&proof, &form.current_password, &form.new_password)
                .await?;
            let cookie = self.cookie(SESSION_COOKIE, token.expose(), None);
            Ok(Out::redirect("/account?notice=password_changed", &[cookie]))
        })
        .await
    }

    async fn add_authenticator_form(&self) -> Result<Out, Error> {
        self.account_change(|proof, form| async move {
            self.service.add_authenticator(&proof, &form.name).await?;
            Ok(Out::redirect("/account/2fa/setup", &[]))
        })
        .await
    }

    async fn remove_authenticator_form(&self) -> Result<Out, Error> {
        self.account_change(|proof, form| async move {
            form.confirmed()?;
            let id = AuthenticatorId::new(form.id.as_str());
            self.service.remove_authenticator(&proof, &id).await?;
            Ok(Out::redirect("/account?notice=authenticator_removed", &[]))
        })
        .await
    }

    async fn end_session_form(&self) -> Result<Out, Error> {
        let form: html::AccountForm = match self.form() {
            Ok(f) => f,
            Err(out) => return Ok(out),
        };
        let current = self.session().await?;
        let id = SessionId::new(form.id.as_str());
        if let Err(e) = self
            .service
            .end_session_by_id(self.req.session_token(), &id)
            .await
        {
            return Ok(self.account_error(&e).await);
        }
        Ok(if id == *current.id() {
            Out::redirect("/login?notice=logged_out", &[self.clear(SESSION_COOKIE)])
        } else {
            Out::redirect("/account?notice=session_ended", &[])
        })
    }

    async fn end_other_sessions_form(&self) -> Result<Out, Error> {
        if let Err(e) = self
            .service
            .end_other_sessions(self.req.session_token())
            .await
        {
            return Ok(self.account_error(&e).await);
        }
        Ok(Out::redirect("/account?notice=sessions_ended", &[]))
    }

    async fn forget_device_form(&self) -> Result<Out, Error> {
        let form: html::AccountForm = match self.form() {
            Ok(f) => f,
            Err(out) => return Ok(out),
        };
        let session = self.session().await?;
        let id = DeviceId::new(form.id.as_str());
        Ok(
            match self.service.revoke_device(session.user_id(), &id).await {
                Ok(()) => Out::redirect("/account?notice=device_forgotten", &[]),
                Err(e) => self.account_error(&e).await,
            },
        )
    }

    async fn logout_form(&self) -> Result<Out, Error> {
        if let Some(token) = self.req.session.as_deref() {
            self.service.end_session(token).await?;
        }
        Ok(Out::redirect(
            "/login?notice=logged_out",
            &[self.clear(SESSION_COOKIE)],
        ))
    }

    async fn reauth_view(&self, next: &str, code: u16, error: Option<&str>) -> Result<Out, Error> {
        let session = self.session().await?;
        let status = self.service.status(session.user_id()).await?;
        Ok(Out::page(
            code,
            html::reauth(html::safe_next(next), status.enabled, error),
            &[],
        ))
    }

    async fn reauth_page(&self) -> Result<Out, Error> {
        let next = self.req.query_param("next").unwrap_or_default();
        self.reauth_view(&next, 200, None).await
    }

    async fn reauth_form(&self) -> Result<Out, Error> {
        let form: api::ReauthBody = match self.form() {
            Ok(f) => f,
            Err(out) => return Ok(out),
        };
        let next = form.next.clone().unwrap_or_default();
        match self.reauthenticate(&form).await {
            Ok(_) => Ok(Out::redirect(html::safe_next(&next), &[])),
            Err(Error::Unauthenticated) => Ok(Out::redirect("/login", &[])),
            Err(e) => {
                let text = match &e {
                    Error::InvalidCredentials => "That password is not right.".to_owned(),
                    e => html::error_text(e),
                };
                self.reauth_view(&next, e.http_status(), Some(&text)).await
            }
        }
    }
}

impl html::AccountForm {
    /// The factor of a form with `code` and `backup_code` fields.
    fn factor(&self) -> Result<SecondFactor<'_>, Error> {
        api::optional_factor(&self.code, &self.backup_code)?.ok_or(Error::InvalidInput {
            field: "code",
            reason: "enter a code or a backup code",
        })
    }

    /// `invalid_input` unless the confirmation box is ticked.
    fn confirmed(&self) -> Result<(), Error> {
        if self.confirm.is_some() {
            Ok(())
        } else {
            Err(Error::InvalidInput {
                field: "confirm",
                reason: "tick the box to confirm",
            })
        }
    }
}
