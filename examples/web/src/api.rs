//! The JSON API's bodies, error shape and cookies, framework-neutral.
//!
//! Every error is `{"error": "<code>", "message": "<text>"}` plus `remaining_attempts`
//! for `invalid_code` and `backup_code_used`, `retry_after` (whole seconds, also sent as a `Retry-After`
//! header) for `too_many_attempts` and `busy`, and `limiter` (`"account"`: the account
//! is locked for everyone; `"client"`: this address sent too many) for
//! `too_many_attempts`. The
//! code and the status come from the library ([`Error::code`],
//! [`Error::http_status`]); framework-level rejections get codes of their own here.

use std::net::IpAddr;

use base64::Engine as _;
use cookie::{Cookie, SameSite};
use secondfactor::backup::BackupCode;
use secondfactor::flow::{
    EnrollmentSetup, PendingLoginTicket, Session, SessionInfo, TrustedDevice, TwoFactorStatus,
};
use secondfactor::security_log::SecurityEvent;
use secondfactor::{Error, SecondFactor};
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::Site;

/// The largest request body accepted (64 KiB); larger ones get `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The session cookie (named with [`Site::cookie_name`]).
pub const SESSION_COOKIE: &str = "sf_session";
/// The pending-login cookie (between the password and the second factor).
pub const PENDING_COOKIE: &str = "sf_pending";
/// The trusted-device cookie.
pub const DEVICE_COOKIE: &str = "sf_device";
/// The known-browser cookie: this browser logged in to the account before, so the
/// account-wide password limit does not apply to it (it never skips a factor).
pub const KNOWN_COOKIE: &str = "sf_known";

/// A status and a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

/// The error body for a library error. Server-side failures are logged to stderr
/// (with their source chain, which never holds a secret) before they are answered.
pub fn error(e: &Error) -> Reply {
    let status = e.http_status();
    // `busy` is load, not a failure: the client is told to come back.
    if status >= 500 && !matches!(e, Error::Busy { .. }) {
        log_server_error(e);
    }
    // The core's error body: code, message, attempts left, retry time, limiter.
    let body = serde_json::to_value(e.body()).unwrap_or_else(|_| json!({ "error": e.code() }));
    Reply { status, body }
}

impl From<Error> for Reply {
    fn from(e: Error) -> Self {
        error(&e)
    }
}

fn log_server_error(e: &Error) {
    let mut line = format!("error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        line.push_str(&format!(": {s}"));
        source = s.source();
    }
    eprintln!("{line}");
}

/// An error body for a rejection that happens before the library is called.
pub fn rejection(status: u16, code: &str, message: &str) -> Reply {
    Reply {
        status,
        body: json!({ "error": code, "message": message }),
    }
}

/// `400 invalid_input` for a body that is not the JSON this endpoint takes. The
/// message names the position, never the content (which may hold a password).
pub fn bad_json(e: &serde_json::Error) -> Reply {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io | Category::Syntax => "the body is not valid JSON",
        Category::Eof => "the body ends before the JSON does",
        Category::Data => "the JSON does not have the expected fields and types",
    };
    rejection(
        400,
        "invalid_input",
        &format!("{what} (line {}, column {})", e.line(), e.column()),
    )
}

/// `415 unsupported_media_type`: the JSON API takes `Content-Type: application/json` only.
pub fn not_json() -> Reply {
    rejection(
        415,
        "unsupported_media_type",
        "send the body as JSON with Content-Type: application/json",
    )
}

/// `413 payload_too_large`.
pub fn too_large() -> Reply {
    rejection(413, "payload_too_large", "the body is larger than 64 KiB")
}

/// `403 forbidden_origin`.
pub fn forbidden_origin() -> Reply {
    rejection(
        403,
        "forbidden_origin",
        "cross-origin requests are not allowed",
    )
}

/// `404 not_found` for an unknown path.
pub fn not_found() -> Reply {
    rejection(404, "not_found", "no such endpoint")
}

/// `405 method_not_allowed`.
pub fn method_not_allowed() -> Reply {
    rejection(
        405,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// `400 invalid_input` for a body the framework could not read (a broken upload).
pub fn unreadable_body() -> Reply {
    rejection(400, "invalid_input", "the request body could not be read")
}

/// Whether a `Content-Type` header value is JSON (`application/json`, any parameters).
pub fn is_json(content_type: Option<&[u8]>) -> bool {
    let Some(value) = content_type.and_then(|v| std::str::from_utf8(v).ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Whether a request with this `Origin` header may proceed: no header (not a
/// browser, or a same-origin GET), or exactly the site's origin.
pub fn origin_allowed(site: &Site, origin: Option<&[u8]>) -> bool {
    match origin {
        None => true,
        // An origin is `scheme://host[:port]` and nothing more; compare as origins
        // (`url` lowercases the host and drops a default port).
        Some(value) => std::str::from_utf8(value)
            .ok()
            .and_then(|v| url::Url::parse(v).ok().map(|u| (v, u.origin())))
            .filter(|(v, origin)| origin.ascii_serialization().eq_ignore_ascii_case(v))
            .is_some_and(|(_, origin)| {
                std::iter::once(&site.origin)
                    .chain(&site.also_allowed)
                    .any(|allowed| url::Url::parse(allowed).is_ok_and(|a| a.origin() == origin))
            }),
    }
}

/// The key of the per-client limiter ([`secondfactor::throttle::client_key`]: an
/// IPv6 address by its /64) of the client's address: the peer's, or — only when
/// `SF_TRUST_FORWARDED` is set — the right-most entry of `X-Forwarded-For`, every
/// header line joined in order (the one the trusted proxy appended; earlier entries
/// are the client's say-so). A right-most entry that is not an IP address falls back
/// to the peer.
pub fn client_key(site: &Site, peer: IpAddr, forwarded_for: &[&[u8]]) -> String {
    secondfactor::throttle::client_key(client_ip(site, peer, forwarded_for))
}

fn client_ip(site: &Site, peer: IpAddr, forwarded_for: &[&[u8]]) -> IpAddr {
    if !site.trust_forwarded || forwarded_for.is_empty() {
        return peer;
    }
    let joined = forwarded_for.join(&b","[..]);
    String::from_utf8_lossy(&joined)
        .rsplit(',')
        .next()
        .and_then(|last| last.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer)
}

// --- passwords ---------------------------------------------------------------------

/// The fewest characters a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The most characters a new password may have: 256 characters are at most 1024
/// bytes of UTF-8, the library's [`secondfactor::password::MAX_PASSWORD_BYTES`], and
/// 8 characters are at least its 8 bytes, so a password the pages accept is one the
/// library accepts, and the limits people read are in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Checks a new password (registration, password change) against the limits the
/// pages state in characters, before the library's own check in bytes.
pub fn new_password_length(password: &str) -> Result<(), Error> {
    let n = password.chars().count();
    if (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n) {
        Ok(())
    } else {
        Err(Error::InvalidInput {
            field: "password",
            reason: "must have 8 to 256 characters",
        })
    }
}

// --- cookies -----------------------------------------------------------------------

/// A `Set-Cookie` value for cookie `name` (prefixed per [`Site::cookie_name`]):
/// `HttpOnly; SameSite=Strict; Path=/`, no `Domain`, `Secure` per `SF_PUBLIC_URL`,
/// `Max-Age` when given (else a browser-session cookie).
pub fn set_cookie(site: &Site, name: &str, value: &str, max_age: Option<u64>) -> String {
    scoped_cookie(site.cookie_name(name), value, "/", site.secure, max_age)
}

/// A `Set-Cookie` value named exactly `name`, sent only to `path` and below:
/// `HttpOnly; SameSite=Strict`, no `Domain`, `Secure` when asked, `Max-Age` when given.
pub fn scoped_cookie(
    name: String,
    value: &str,
    path: &'static str,
    secure: bool,
    max_age: Option<u64>,
) -> String {
    let mut c = Cookie::build((name, value.to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path(path)
        .secure(secure);
    if let Some(secs) = max_age {
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        c = c.max_age(cookie::time::Duration::seconds(secs));
    }
    c.build().to_string()
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie(site: &Site, name: &str) -> String {
    set_cookie(site, name, "", Some(0))
}

/// The value of cookie `name` in the request's `Cookie` headers (quotes trimmed;
/// `None` when absent or empty). Malformed pairs are skipped.
pub fn cookie<'a>(headers: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a str> {
    headers
        .into_iter()
        .filter_map(|h| std::str::from_utf8(h).ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .and_then(|c| c.value_raw())
        .map(|v| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

// --- request bodies ----------------------------------------------------------------

/// `{"username","password"}`.
#[derive(Deserialize)]
pub struct Credentials {
    /// The login name.
    pub username: String,
    /// The password.
    pub password: String,
}

/// `{"code"}` or `{"backup_code"}`, optional `"remember_device"`.
#[derive(Deserialize, Default)]
pub struct FactorBody {
    /// A TOTP code.
    #[serde(default)]
    pub code: Option<String>,
    /// A backup code.
    #[serde(default)]
    pub backup_code: Option<String>,
    /// Trust this device for 30 days.
    #[serde(default)]
    pub remember_device: bool,
    /// A security key's assertion (the browser's credential JSON), as text.
    #[serde(default, deserialize_with = "json_text")]
    pub webauthn: Option<String>,
}

/// Keeps a JSON value (the browser's credential object) as its text, for the
/// library to parse.
fn json_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = <Option<serde_json::Value> as serde::Deserialize>::deserialize(d)?;
    Ok(value.map(|v| v.to_string()))
}

impl FactorBody {
    /// The one factor sent; `invalid_input` unless exactly one of the two is present.
    pub fn factor(&self) -> Result<SecondFactor<'_>, Error> {
        sent_factor(&self.webauthn, &self.code, &self.backup_code)?.ok_or(Error::InvalidInput {
            field: "code",
            reason: "send a code or a backup_code",
        })
    }
}

/// The factor among a security key's answer (feature `webauthn`; ignored without
/// it), a `code` and a `backup_code`, if any; `invalid_input` for more than one.
fn sent_factor<'a>(
    webauthn: &'a Option<String>,
    code: &'a Option<String>,
    backup_code: &'a Option<String>,
) -> Result<Option<SecondFactor<'a>>, Error> {
    #[cfg(feature = "webauthn")]
    if let Some(json) = webauthn {
        if code.is_some() || backup_code.is_some() {
            return Err(Error::InvalidInput {
                field: "code",
                reason: "send one of code, backup_code and webauthn",
            });
        }
        return Ok(Some(SecondFactor::WebAuthn(json)));
    }
    #[cfg(not(feature = "webauthn"))]
    let _ = webauthn;
    optional_factor(code, backup_code)
}

/// The factor among a `code` and a `backup_code`, if any; `invalid_input` for both.
pub fn optional_factor<'a>(
    code: &'a Option<String>,
    backup_code: &'a Option<String>,
) -> Result<Option<SecondFactor<'a>>, Error> {
    fn present(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.trim().is_empty())
    }
    match (present(code), present(backup_code)) {
        (Some(code), None) => Ok(Some(SecondFactor::Totp(code))),
        (None, Some(code)) => Ok(Some(SecondFactor::BackupCode(code))),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(Error::InvalidInput {
            field: "code",
            reason: "send either a code or a backup_code, not both",
        }),
    }
}

/// `POST /api/reauth`: `{"password"}`, plus `"code"` or `"backup_code"` when 2FA is on.
#[derive(Deserialize, Default)]
pub struct ReauthBody {
    /// The password.
    #[serde(default)]
    pub password: String,
    /// A TOTP code.
    #[serde(default)]
    pub code: Option<String>,
    /// A backup code.
    #[serde(default)]
    pub backup_code: Option<String>,
    /// Where a page goes back to (forms only; a same-site path).
    #[serde(default)]
    pub next: Option<String>,
    /// A security key's answer to `/api/reauth/webauthn/start`, as text.
    #[serde(default, deserialize_with = "json_text")]
    pub webauthn: Option<String>,
}

impl ReauthBody {
    /// The factor sent, if any (the library says whether one is needed).
    pub fn factor(&self) -> Result<Option<SecondFactor<'_>>, Error> {
        sent_factor(&self.webauthn, &self.code, &self.backup_code)
    }
}

/// `POST /api/password`: `{"current_password","new_password"}`.
#[derive(Deserialize)]
pub struct PasswordBody {
    /// The password now.
    #[serde(default)]
    pub current_password: String,
    /// The new one.
    #[serde(default)]
    pub new_password: String,
}

/// `POST /api/2fa/authenticators`: `{"name"}`.
#[derive(Deserialize)]
pub struct NameBody {
    /// The new authenticator's name.
    #[serde(default)]
    pub name: String,
}

/// `{"code"}`.
#[derive(Deserialize)]
pub struct CodeBody {
    /// A TOTP code.
    pub code: String,
}

// --- response bodies ---------------------------------------------------------------

/// `{"status":"authenticated"}`.
pub fn authenticated() -> Value {
    json!({ "status": "authenticated" })
}

/// `{"status":"second_factor_required","methods":[…],"expires_in":N}`.
pub fn second_factor_required(ticket: &PendingLoginTicket) -> Value {
    let methods: Vec<&str> = ticket.methods.iter().map(|m| m.as_str()).collect();
    json!({
        "status": "second_factor_required",
        "methods": methods,
        "expires_in": ticket.expires_in.as_secs(),
    })
}

/// `GET /api/me`.
pub fn me(status: &TwoFactorStatus, session: &Session) -> Value {
    json!({
        "username": status.username,
        "two_factor_enabled": status.enabled,
        "backup_codes_remaining": status.backup_codes_remaining,
        "reauthenticated_until": session.reauthenticated_until(),
    })
}

/// `GET /api/2fa/authenticators`.
pub fn authenticators(status: &TwoFactorStatus) -> Value {
    let list: Vec<Value> = status
        .authenticators
        .iter()
        .map(|a| {
            json!({
                "id": a.id.as_str(),
                "name": a.name,
                "created_at": a.created_at,
                "readable": a.readable,
                // Imported from an older site with fewer than 128 bits: set it up again.
                "weak": a.weak,
            })
        })
        .collect();
    json!({ "authenticators": list })
}

/// `GET /api/sessions`.
pub fn sessions(sessions: &[SessionInfo]) -> Value {
    let list: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id.as_str(),
                "created_at": s.created_at,
                "expires_at": s.expires_at,
                "method": s.method.as_str(),
                "current": s.current,
            })
        })
        .collect();
    json!({ "sessions": list })
}

/// `GET /api/devices`.
pub fn devices(devices: &[TrustedDevice]) -> Value {
    let list: Vec<Value> = devices
        .iter()
        .map(|d| {
            json!({
                "id": d.id.as_str(),
                "label": d.label,
                "created_at": d.created_at,
                "expires_at": d.expires_at,
                "current": d.current,
            })
        })
        .collect();
    json!({ "devices": list })
}

/// `GET /api/security-log`: absent fields are left out.
pub fn security_log(events: &[SecurityEvent]) -> Value {
    let list: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut v = json!({ "at": e.at, "kind": e.kind.as_str() });
            if let Some(m) = e.method {
                v["method"] = json!(m.as_str());
            }
            if let Some(c) = &e.client {
                v["client"] = json!(c);
            }
            if let Some(d) = &e.detail {
                v["detail"] = json!(d);
            }
            v
        })
        .collect();
    json!({ "events": list })
}

/// `POST /api/2fa/setup`: the secret, its URI and its QR code as base64 PNG.
pub fn setup(setup: &EnrollmentSetup) -> Result<Value, Error> {
    let png = setup.qr()?.png()?;
    Ok(json!({
        "secret": setup.secret().to_base32().as_str(),
        "otpauth_uri": setup.uri().as_str(),
        "qr_png_base64": base64::engine::general_purpose::STANDARD.encode(png),
        "expires_in": setup.expires_in().as_secs(),
    }))
}

/// `POST /api/2fa/authenticators`: as [`setup`], plus the `"id"` the authenticator
/// will have once confirmed.
pub fn added_authenticator(setup: &EnrollmentSetup) -> Result<Value, Error> {
    let mut body = self::setup(setup)?;
    body["id"] = json!(setup.authenticator_id().as_str());
    Ok(body)
}

/// `{"backup_codes":[…]}`.
pub fn backup_codes(codes: &[BackupCode]) -> Value {
    let codes: Vec<&str> = codes.iter().map(|c| c.expose()).collect();
    json!({ "backup_codes": codes })
}

/// A label for a remembered device, from its `User-Agent` (shortened, printable).
pub fn device_label(user_agent: Option<&[u8]>) -> String {
    let label: String = user_agent
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    let label = label.trim();
    if label.is_empty() {
        "browser".to_owned()
    } else {
        label.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, origin_of};

    fn loopback_site() -> Site {
        let config = Config {
            addr: "127.0.0.1:0".to_owned(),
            database: crate::config::Database::Memory,
            redis_url: None,
            master_key: None,
            issuer: "test".to_owned(),
            login_ttl: std::time::Duration::from_secs(300),
            setup_ttl: std::time::Duration::from_secs(600),
            reauth_ttl: std::time::Duration::from_secs(300),
            public_url: None,
            trust_forwarded: false,
            insecure_fast_hash: false,
            keys: None,
        };
        config.site("127.0.0.1:3000".parse().unwrap())
    }

    #[test]
    fn loopback_origins_are_accepted_and_others_refused() {
        let site = loopback_site();
        assert_eq!(site.origin, "http://localhost:3000");
        for ok in [
            "http://localhost:3000",
            "http://LOCALHOST:3000",
            "http://127.0.0.1:3000",
            "http://[::1]:3000",
        ] {
            assert!(origin_allowed(&site, Some(ok.as_bytes())), "{ok}");
        }
        for bad in [
            "http://localhost:3001",
            "https://localhost:3000",
            "http://localhost:3000/path",
            "http://evil.example",
            "null",
            "",
        ] {
            assert!(!origin_allowed(&site, Some(bad.as_bytes())), "{bad}");
        }
        assert!(
            origin_allowed(&site, None),
            "no Origin: same-origin navigation"
        );
    }

    #[test]
    fn origins_are_normalized_like_browsers_send_them() {
        assert_eq!(
            origin_of("HTTPS://Demo.Example:443/app?x#y").as_deref(),
            Some("https://demo.example")
        );
        assert_eq!(
            origin_of("http://demo.example:8080").as_deref(),
            Some("http://demo.example:8080")
        );
        assert_eq!(origin_of("ftp://demo.example"), None);
        assert_eq!(origin_of("https://user@demo.example"), None);
        assert_eq!(origin_of("demo.example"), None);
    }

    #[test]
    fn cookies_are_read_from_every_header_line() {
        let headers: [&[u8]; 2] = [b"a=1; sf_session=\"abc\"", b"broken; sf_device=xyz"];
        assert_eq!(cookie(headers, "sf_session"), Some("abc"));
        assert_eq!(cookie(headers, "sf_device"), Some("xyz"));
        assert_eq!(cookie(headers, "missing"), None);
        let empty: [&[u8]; 1] = [b"sf_session="];
        assert_eq!(cookie(empty, "sf_session"), None);
    }

    #[test]
    fn set_cookie_carries_the_flags_and_secure_on_https() {
        let mut site = loopback_site();
        let c = set_cookie(&site, "sf_session", "v", Some(60));
        for part in [
            "sf_session=v",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
        ] {
            assert!(c.contains(part), "{part} in {c}");
        }
        assert!(!c.contains("Secure"), "{c}");
        site.secure = true;
        let c = clear_cookie(&site, "sf_session");
        assert!(c.starts_with("__Host-sf_session=;"), "{c}");
        assert!(c.contains("Secure") && c.contains("Max-Age=0"), "{c}");
    }
}
