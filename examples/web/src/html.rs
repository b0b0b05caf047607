//! The HTML pages: plain server-rendered forms in maud templates, which escape
//! every value at compile-time-checked insertion points (no hand-called escaping). One small
//! stylesheet and one small script, both served by the app (`/static/…`): the
//! content security policy allows no inline style or script.

use maud::{DOCTYPE, Markup, html};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use secondfactor::error::Limiter;
use secondfactor::flow::{SessionInfo, TrustedDevice, TwoFactorStatus};
use secondfactor::security_log::{SecurityEvent, SecurityEventKind};
use secondfactor::{AuthMethod, Error};
use serde::Deserialize;

use super::api::FactorBody;

/// Headers for every HTML page: no caching (pages show secrets and codes), no
/// framing, no referrer to other sites, and a content security policy that allows
/// only this site's stylesheet and script, and `data:` images (the QR code).
///
/// The referrer policy is `same-origin`, not `no-referrer`: under `no-referrer`
/// browsers send `Origin: null` with form posts, which the origin check refuses.
pub const HEADERS: &[(&str, &str)] = &[
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    (
        "content-security-policy",
        "default-src 'none'; img-src data:; style-src 'self'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
];

/// A library error in words for a person, with the attempts left or the wait.
pub fn error_text(e: &Error) -> String {
    match e {
        Error::InvalidCode {
            remaining_attempts: Some(0),
        } => "That code is not right, and no attempts are left.".to_owned(),
        Error::InvalidCode {
            remaining_attempts: Some(1),
        } => "That code is not right. 1 attempt left.".to_owned(),
        Error::InvalidCode {
            remaining_attempts: Some(n),
        } => format!("That code is not right. {n} attempts left."),
        Error::InvalidCode { .. } => "That code is not right.".to_owned(),
        Error::BackupCodeUsed { remaining_attempts } => {
            let left = match remaining_attempts {
                Some(0) => " No attempts are left.".to_owned(),
                Some(1) => " 1 attempt left.".to_owned(),
                Some(n) => format!(" {n} attempts left."),
                None => String::new(),
            };
            format!(
                "That backup code was already used: each backup code works once. \
                 Use another one, or a code from your app.{left}"
            )
        }
        Error::TooManyAttempts {
            limiter: Limiter::Client,
            ..
        } => format!(
            "Too many attempts from your network; try again in {}.",
            duration_text(e.retry_after_secs().unwrap_or(1))
        ),
        Error::TooManyAttempts { .. } => format!(
            "This account is locked for {d} after too many wrong codes or passwords. \
             Try again in {d}.",
            d = duration_text(e.retry_after_secs().unwrap_or(1))
        ),
        Error::CodeAlreadyUsed => "That code was already used. Wait for the next code in \
                                   your app (a new one comes every 30 seconds)."
            .to_owned(),
        Error::InvalidInput {
            field: "password", ..
        } => "The password must have 8 to 256 characters.".to_owned(),
        Error::InvalidInput {
            field: "username", ..
        } => "The username must have 1 to 64 characters: letters, digits and . _ @ -.".to_owned(),
        Error::Busy { .. } => format!(
            "The server is busy right now. Please try again in {}.",
            duration_text(e.retry_after_secs().unwrap_or(1))
        ),
        Error::InvalidCredentials => "Wrong username or password.".to_owned(),
        Error::ReauthenticationRequired => {
            "Confirm it is you: enter your password again.".to_owned()
        }
        Error::TooManyAuthenticators => {
            "You have as many authenticators as allowed. Remove one first.".to_owned()
        }
        Error::LastAuthenticator => {
            "This is your only authenticator. Turn two-factor authentication off instead."
                .to_owned()
        }
        Error::Unavailable { .. } => {
            "The service is unavailable right now. Please try again shortly.".to_owned()
        }
        e if e.http_status() >= 500 => "Something went wrong on our side.".to_owned(),
        e => {
            let text = e.to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
                None => text,
            }
        }
    }
}

/// The registration page's error: its limit counts attempts from this address,
/// not one account's.
pub fn register_error_text(e: &Error) -> String {
    match e {
        Error::TooManyAttempts { .. } => format!(
            "Too many attempts from this address: creating accounts is locked for {d}. \
             Try again in {d}.",
            d = duration_text(e.retry_after_secs().unwrap_or(1))
        ),
        e => error_text(e),
    }
}

/// `secs` in words: seconds below two minutes, else minutes (rounded up) or hours.
pub fn duration_text(secs: u64) -> String {
    match secs {
        1 => "1 second".to_owned(),
        s if s < 120 => format!("{s} seconds"),
        s if s < 2 * 3600 => format!("{} minutes", s.div_ceil(60)),
        s => format!("{} hours", s.div_ceil(3600)),
    }
}

/// A fixed notice shown after a redirect (`?notice=…`); unknown keys show nothing.
pub fn notice_text(key: &str) -> Option<&'static str> {
    Some(match key {
        "registered" => "Your account is ready. Log in.",
        "codes_shown" => {
            "Your backup codes were shown once and are not shown again. \
                          If you did not save them, make new ones below."
        }
        "codes_saved" => "Your backup codes are saved. Each one works once.",
        "logged_out" => "You are logged out.",
        "disabled" => "Two-factor authentication is off.",
        "expired" => "The login expired. Start again with your password.",
        "password_changed" => "Your password is changed. Every other session has ended.",
        "authenticator_added" => "The new authenticator is added.",
        "add_expired" => {
            "Adding the authenticator took too long and its setup expired; nothing was \
             added. Add it again below."
        }
        "authenticator_removed" => "The authenticator is removed.",
        "key_added" => "The security key is added.",
        "session_ended" => "The session has ended.",
        "sessions_ended" => "Every other session has ended.",
        "device_forgotten" => "The device is forgotten: it needs a code at the next login.",
        _ => return None,
    })
}

/// `next` if it is a path on this site (starts with one `/`, no backslash, no
/// control character), else `/account`: a redirect never leaves the site.
pub fn safe_next(next: &str) -> &str {
    let same_site = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if same_site { next } else { "/account" }
}

/// A security-log kind in words.
pub fn kind_text(kind: SecurityEventKind) -> &'static str {
    match kind {
        SecurityEventKind::Login => "Logged in",
        SecurityEventKind::LoginFailed => "Wrong password",
        SecurityEventKind::SecondFactorFailed => "Wrong code",
        SecurityEventKind::CodeReplayed => "A used code was sent again",
        SecurityEventKind::LockedOut => "Locked after too many wrong codes",
        SecurityEventKind::Reauthenticated => "Confirmed it was you",
        SecurityEventKind::TwoFactorEnabled => "Two-factor authentication turned on",
        SecurityEventKind::TwoFactorDisabled => "Two-factor authentication turned off",
        SecurityEventKind::AuthenticatorAdded => "Authenticator added",
        SecurityEventKind::AuthenticatorRemoved => "Authenticator removed",
        SecurityEventKind::BackupCodesRegenerated => "New backup codes made",
        SecurityEventKind::BackupCodeUsed => "Backup code used",
        SecurityEventKind::PasswordChanged => "Password changed",
        SecurityEventKind::SessionRevoked => "Session ended",
        SecurityEventKind::DeviceRevoked => "Trusted device forgotten",
        SecurityEventKind::TwoFactorReset => "Two-factor authentication reset by support",
        _ => "Other",
    }
}

/// An authentication method in words.
pub fn method_text(method: AuthMethod) -> &'static str {
    match method {
        AuthMethod::Password => "password",
        AuthMethod::Totp => "authenticator code",
        AuthMethod::BackupCode => "backup code",
        AuthMethod::TrustedDevice => "trusted device",
        AuthMethod::WebAuthn => "security key",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// `/static/style.css`: readable from a 375 px phone to a desktop, no inline style
/// anywhere (the CSP allows only this file).
pub const STYLESHEET: &str = "\
:root{color-scheme:light;--fg:#1b1b1f;--muted:#555;--line:#d6d6de;--accent:#1f5fbf;--bad:#a11;--good:#176b2c;--warn:#8a5a00}
*{box-sizing:border-box}
body{font:16px/1.55 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:#f6f7f9;margin:0}
main{max-width:38rem;margin:0 auto;padding:1rem 1rem 3rem;background:#fff;min-height:100vh}
@media (min-width:40rem){main{margin:1.5rem auto;min-height:0;border:1px solid var(--line);border-radius:.75rem;padding:1.5rem 2rem 2.5rem}}
nav{font-weight:600;margin-bottom:.5rem}nav a{color:var(--fg);text-decoration:none}
h1{font-size:1.5rem;line-height:1.25;margin:.5rem 0 1rem}h2{font-size:1.15rem;margin:1.25rem 0 .5rem}
a{color:var(--accent)}
label{display:block;margin:.75rem 0 .25rem;font-weight:500}
label:has(input[type=checkbox]){font-weight:400;display:flex;gap:.5rem;align-items:flex-start}
input[type=text],input[type=password]{width:100%;padding:.6rem .7rem;font-size:1rem;border:1px solid #9a9aa8;border-radius:.4rem}
input:focus,button:focus,a:focus{outline:3px solid #9cc0ff;outline-offset:1px}
button,.button{display:inline-block;margin:.75rem .5rem 0 0;padding:.55rem 1.1rem;font:inherit;line-height:1.3;border:1px solid var(--accent);border-radius:.4rem;background:var(--accent);color:#fff;cursor:pointer;text-decoration:none}
button.secondary,.button.secondary{background:#fff;color:var(--accent)}
.error{color:var(--bad);background:#fdf0f0;border:1px solid var(--bad);border-radius:.4rem;padding:.6rem .8rem}
.notice{color:var(--good);background:#eef8f0;border:1px solid var(--good);border-radius:.4rem;padding:.6rem .8rem}
.warning{color:var(--warn);background:#fff7e6;border:1px solid var(--warn);border-radius:.4rem;padding:.6rem .8rem}
.hint,.explain{color:var(--muted)}
code,.codes{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
#secret{display:inline-block;font-size:1.15rem;letter-spacing:.05em;word-break:break-all;background:#f1f2f6;padding:.2rem .4rem;border-radius:.3rem}
img.qr{display:block;image-rendering:pixelated;width:240px;max-width:100%;height:auto;margin:.5rem 0}
ol.steps>li{margin-bottom:1rem}
.codes{columns:2;column-gap:2rem;font-size:1.15rem;padding-left:2.25rem}.codes li{margin:.2rem 0;white-space:nowrap}
@media (max-width:32rem){.codes{columns:1}}
section{border-top:1px solid var(--line);margin-top:1.5rem}
details{margin:.25rem 0}summary{cursor:pointer;color:var(--accent)}
table{border-collapse:collapse;width:100%;font-size:.9rem}td,th{text-align:left;padding:.3rem .4rem;border-bottom:1px solid #eee;vertical-align:top}
.table-scroll{overflow-x:auto}
ul{padding-left:1.25rem}ul li form{display:inline}ul li button{margin:.25rem 0 0 .5rem;padding:.2rem .6rem;font-size:.9rem}
[hidden]{display:none!important}
@media print{body{background:#fff}nav,button,.button,form,.no-print,.hint{display:none!important}main{border:0;margin:0;padding:0}}
";

/// `/static/app.js`: the copy and print buttons.
/// Small, no inline script (the CSP allows only this file); the pages work without
/// it, its buttons stay hidden then.
pub const SCRIPT: &str = r#"'use strict';
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('[data-copy]').forEach(function (button) {
    if (!navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener('click', function () {
      var label = button.textContent;
      navigator.clipboard.writeText(button.getAttribute('data-copy')).then(function () {
        button.textContent = 'Copied';
        setTimeout(function () { button.textContent = label; }, 2000);
      }, function () { button.textContent = 'Copy failed: select the text instead'; });
    });
  });
  document.querySelectorAll('[data-print]').forEach(function (button) {
    button.hidden = false;
    button.addEventListener('click', function () { window.print(); });
  });
});
"#;

/// The page frame.
pub fn layout(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · secondfactor demo" }
                link rel="stylesheet" href="/static/style.css";
                script src="/static/app.js" defer {}
            }
            body {
                main {
                    nav { a href="/" { "secondfactor demo" } }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

fn messages(notice: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        @if let Some(n) = notice {
            p class="notice" role="status" { (n) }
        }
        @if let Some(e) = error {
            p class="error" role="alert" id="error" { (e) }
        }
    }
}

/// `/` for a visitor.
pub fn home() -> String {
    layout(
        "Welcome",
        html! {
            p { "A demonstration of password + TOTP two-factor login." }
            ul {
                li { a href="/register" { "Create an account" } }
                li { a href="/login" { "Log in" } }
            }
        },
    )
}

/// `/register`.
pub fn register(error: Option<&str>, username: &str) -> String {
    layout(
        "Create an account",
        html! {
            (messages(None, error))
            form method="post" action="/register" {
                label for="username" { "Username (up to 64 characters: letters, digits and . _ @ -)" }
                input type="text" id="username" name="username" value=(username) autocomplete="username" required maxlength="64";
                label for="password" { "Password (8 to 256 characters)" }
                input type="password" id="password" name="password" autocomplete="new-password" required minlength="8" maxlength="256";
                button type="submit" { "Create account" }
            }
            p { "Already registered? " a href="/login" { "Log in" } "." }
        },
    )
}

/// `/login`.
pub fn login(notice: Option<&str>, error: Option<&str>, username: &str) -> String {
    layout(
        "Log in",
        html! {
            (messages(notice, error))
            form method="post" action="/login" {
                label for="username" { "Username" }
                input type="text" id="username" name="username" value=(username) autocomplete="username" required;
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
            p { "No account yet? " a href="/register" { "Create one" } "." }
        },
    )
}

/// "Remember this device" on the verification forms.
fn remember_box() -> Markup {
    html! {
        label { input type="checkbox" name="remember_device" value="1"; " Remember this device for 30 days" }
    }
}

/// `/login/verify`: a TOTP code, or a backup code, and "remember this device".
pub fn verify(error: Option<&str>) -> String {
    layout(
        "Two-factor verification",
        html! {
            (messages(None, error))
            p { "Your password was right. Now enter the code from your authenticator app." }
            form method="post" action="/login/verify" {
                label for="code" { "6-digit code" }
                input type="text" id="code" name="code" autocomplete="one-time-code" inputmode="numeric" required autofocus maxlength="16";
                (remember_box())
                button type="submit" { "Verify" }
            }
            section {
                p { "Lost your phone? Use one of your backup codes." }
                form method="post" action="/login/verify" {
                    label for="backup_code" { "Backup code" }
                    input type="text" id="backup_code" name="backup_code" autocomplete="one-time-code" autocapitalize="characters" spellcheck="false" required maxlength="64";
                    (remember_box())
                    button type="submit" { "Use backup code" }
                }
            }
            (webauthn_verify_section())
            p { a href="/login" { "Start again" } }
        },
    )
}

/// What the account page shows.
pub struct AccountView {
    /// The two-factor status and authenticators.
    pub status: TwoFactorStatus,
    /// The account's sessions.
    pub sessions: Vec<SessionInfo>,
    /// Its trusted devices.
    pub devices: Vec<TrustedDevice>,
    /// Its security log, newest first.
    pub log: Vec<SecurityEvent>,
    /// The time now (Unix seconds).
    pub now: u64,
}

/// The "are you sure" box of destructive forms.
fn confirm_box() -> Markup {
    html! {
        label { input type="checkbox" name="confirm" value="1" required; " Yes, I am sure" }
    }
}

fn code_fields(prefix: &str, backup: bool) -> Markup {
    html! {
        label for={ (prefix) "-code" } { "Current 6-digit code" }
        input type="text" id={ (prefix) "-code" } name="code" autocomplete="one-time-code" inputmode="numeric" maxlength="16" required[!backup];
        @if backup {
            label for={ (prefix) "-backup" } { "or a backup code" }
            input type="text" id={ (prefix) "-backup" } name="backup_code" autocomplete="one-time-code" spellcheck="false" maxlength="64";
        }
    }
}

fn authenticators_section(status: &TwoFactorStatus) -> Markup {
    let only_one = status.authenticators.len() <= 1;
    html! {
        section {
            h2 { "Authenticators" }
            ul id="authenticators" {
                @for a in &status.authenticators {
                    li class="authenticator" {
                        strong { (a.name) } ", added " (utc(a.created_at))
                        @if !a.readable {
                            " " strong { "(cannot be read: remove it and add the phone again)" }
                        }
                        @if !only_one {
                            details {
                                summary { "Remove" }
                                form method="post" action="/account/authenticators/remove" {
                                    input type="hidden" name="id" value=(a.id.as_str());
                                    (confirm_box())
                                    button type="submit" { "Remove " (a.name) }
                                }
                            }
                        }
                    }
                }
            }
            form method="post" action="/account/authenticators" {
                label for="authenticator-name" { "Add another authenticator (a second phone), named" }
                input type="text" id="authenticator-name" name="name" required maxlength="128" placeholder="work phone";
                button type="submit" { "Add authenticator" }
            }
        }
    }
}

fn sessions_section(view: &AccountView) -> Markup {
    html! {
        section {
            h2 { "Sessions" }
            ul id="sessions" {
                @for s in &view.sessions {
                    li class="session" {
                        "Started " (utc(s.created_at)) " with " (method_text(s.method)) ", ends " (utc(s.expires_at))
                        @if s.current {
                            " " strong class="current" { "(this session)" }
                        }
                        form method="post" action="/account/sessions/end" {
                            input type="hidden" name="id" value=(s.id.as_str());
                            button type="submit" { @if s.current { "Log out" } @else { "End" } }
                        }
                    }
                }
            }
            form method="post" action="/account/sessions/revoke-others" {
                button type="submit" { "End all other sessions" }
            }
        }
    }
}

fn devices_section(view: &AccountView) -> Markup {
    html! {
        section {
            h2 { "Trusted devices" }
            @if view.devices.is_empty() {
                p { "No trusted devices: every login asks for a code." }
            }
            ul id="devices" {
                @for d in &view.devices {
                    li class="device" {
                        (d.label) ", trusted since " (utc(d.created_at)) " until " (utc(d.expires_at))
                        @if d.current {
                            " " strong class="current" { "(this browser)" }
                        }
                        form method="post" action="/account/devices/forget" {
                            input type="hidden" name="id" value=(d.id.as_str());
                            button type="submit" { "Forget" }
                        }
                    }
                }
            }
        }
    }
}

/// The security-key sections (feature `webauthn`; empty without it).
#[cfg(feature = "webauthn")]
fn webauthn_account_section() -> Markup {
    super::webauthn::account_section()
}
#[cfg(not(feature = "webauthn"))]
fn webauthn_account_section() -> Markup {
    html! {}
}
#[cfg(feature = "webauthn")]
fn webauthn_reauth_section() -> Markup {
    super::webauthn::reauth_section()
}
#[cfg(not(feature = "webauthn"))]
fn webauthn_reauth_section() -> Markup {
    html! {}
}
#[cfg(feature = "webauthn")]
fn webauthn_verify_section() -> Markup {
    super::webauthn::verify_section()
}
#[cfg(not(feature = "webauthn"))]
fn webauthn_verify_section() -> Markup {
    html! {}
}

fn password_section() -> Markup {
    html! {
        section {
            h2 { "Change password" }
            form method="post" action="/account/password" {
                label for="current-password" { "Current password" }
                input type="password" id="current-password" name="current_password" autocomplete="current-password" required;
                label for="new-password" { "New password (8 to 256 characters)" }
                input type="password" id="new-password" name="new_password" autocomplete="new-password" required minlength="8" maxlength="256";
                button type="submit" { "Change password" }
            }
            p { "Every other session and every trusted device ends." }
        }
    }
}

fn log_section(view: &AccountView) -> Markup {
    html! {
        section {
            h2 { "Security log" }
            div class="table-scroll" {
                table id="security-log" {
                    tr { th { "When" } th { "What" } th { "How" } th { "From" } }
                    @for e in &view.log {
                        tr class="event" data-kind=(e.kind.as_str()) {
                            td { (utc(e.at)) }
                            td { (kind_text(e.kind)) }
                            td { (e.method.map(method_text).unwrap_or_default()) }
                            td { (e.client.as_deref().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

/// The invitation to replace each authenticator whose secret is weak (imported from
/// an older site with fewer than 128 bits).
fn weak_notice(status: &TwoFactorStatus) -> Markup {
    html! {
        @for a in status.authenticators.iter().filter(|a| a.weak) {
            p class="warning weak-authenticator" role="status" {
                "Your authenticator " strong { (a.name) }
                " uses a short key carried over from the old site. Please set up your phone \
                 again: add a new authenticator below, check that its code works, then remove "
                strong { (a.name) } "."
            }
        }
    }
}

/// `/account`.
pub fn account(view: &AccountView, notice: Option<&str>, error: Option<&str>) -> String {
    let status = &view.status;
    layout(
        "Your account",
        html! {
            (messages(notice, error))
            p { "Logged in as " strong id="username" { (status.username) } "." }
            p class="explain" id="two-factor-explained" {
                "Two-factor authentication asks for a 6-digit code from an app on your phone \
                 after your password, so a stolen password alone does not open your account."
            }
            @if status.enabled {
                p id="status" {
                    "Two-factor authentication is " strong { "on" } ". Backup codes left: "
                    strong id="backup-count" { (status.backup_codes_remaining) } "."
                }
                (weak_notice(status))
                (authenticators_section(status))
                section {
                    h2 { "New backup codes" }
                    @if status.backup_codes_need_regeneration {
                        p class="notice" { "Your backup codes were made with an old key: make new ones." }
                    }
                    p { "The old set stops working." }
                    form method="post" action="/account/backup-codes" {
                        (code_fields("regen", false))
                        button type="submit" { "Make new backup codes" }
                    }
                }
                section {
                    h2 { "Turn off two-factor authentication" }
                    form method="post" action="/account/2fa/disable" {
                        (code_fields("disable", true))
                        (confirm_box())
                        button type="submit" { "Turn off" }
                    }
                }
            } @else {
                p id="status" { "Two-factor authentication is " strong { "off" } "." }
                form method="post" action="/account/2fa/setup" {
                    button type="submit" { "Turn on two-factor authentication" }
                }
            }
            (webauthn_account_section())
            (password_section())
            (sessions_section(view))
            (devices_section(view))
            (log_section(view))
            section {
                form method="post" action="/logout" {
                    button type="submit" { "Log out" }
                }
            }
        },
    )
}

/// `/reauth`: the password and, with 2FA on, a code or a backup code.
pub fn reauth(next: &str, two_factor: bool, error: Option<&str>) -> String {
    layout(
        "Confirm it is you",
        html! {
            (messages(None, error))
            p { "Changing how your account is protected needs a fresh confirmation." }
            form method="post" action="/reauth" {
                input type="hidden" name="next" value=(next);
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required autofocus;
                @if two_factor {
                    label for="code" { "6-digit code" }
                    input type="text" id="code" name="code" autocomplete="one-time-code" inputmode="numeric" maxlength="16";
                    label for="backup_code" { "or a backup code" }
                    input type="text" id="backup_code" name="backup_code" autocomplete="one-time-code" spellcheck="false" maxlength="64";
                }
                button type="submit" { "Confirm" }
            }
            @if two_factor {
                (webauthn_reauth_section())
            }
            p { a href="/account" { "Cancel" } }
        },
    )
}

/// What the setup page shows.
pub struct SetupView<'a> {
    /// The secret in base32, for manual entry.
    pub secret: &'a str,
    /// The `otpauth://` URI.
    pub uri: &'a str,
    /// The QR code as a `data:image/png;base64,…` URI.
    pub qr_data_uri: &'a str,
    /// Seconds left to confirm.
    pub expires_in: u64,
    /// Whether this adds an authenticator to an account with 2FA on.
    pub adding: bool,
}

/// `/account/2fa/setup`.
pub fn setup(view: &SetupView<'_>, error: Option<&str>) -> String {
    // Groups of four are easier to type; authenticator apps ignore the spaces.
    let grouped: Vec<String> = view
        .secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let minutes = view.expires_in.div_ceil(60);
    let title = if view.adding {
        "Add an authenticator"
    } else {
        "Set up two-factor authentication"
    };
    layout(
        title,
        html! {
            (messages(None, error))
            p class="hint" id="which-app" {
                "Which app? Any authenticator app that shows 6-digit codes works: Google \
                 Authenticator, Microsoft Authenticator, 2FAS, Aegis (Android), or the one in \
                 your password manager (1Password, Bitwarden, iCloud Keychain)."
            }
            ol class="steps" {
                li {
                    "Scan this QR code with your authenticator app: "
                    img id="qr" class="qr" src=(view.qr_data_uri) alt="QR code of your new two-factor secret" width="240" height="240";
                }
                li {
                    "Or type this key into the app: " code id="secret" { (grouped.join(" ")) } " "
                    button type="button" class="secondary" id="copy-secret" data-copy=(view.secret) hidden { "Copy key" }
                    " (" a href=(view.uri) { "open in an app on this device" } ")"
                }
                li {
                    "Enter the 6-digit code the app shows:"
                    form method="post" action="/account/2fa/setup/confirm" {
                        label for="code" { "6-digit code" }
                        input type="text" id="code" name="code" autocomplete="one-time-code" inputmode="numeric" required autofocus maxlength="16";
                        @if view.adding {
                            // Tells an expired addition from a reloaded first setup.
                            input type="hidden" name="adding" value="1";
                            button type="submit" { "Add" }
                        } @else {
                            button type="submit" { "Turn on" }
                        }
                    }
                }
            }
            p {
                "This setup expires in about " (minutes) " minute" @if minutes != 1 { "s" }
                ". Nothing changes until you confirm."
            }
            p { a href="/account" { "Cancel" } }
        },
    )
}

/// The page that shows a new set of backup codes (`GET /backup-codes`, safe to
/// reload): copy, download as a text file, print, then "I have saved them", a `POST`
/// that forgets them and goes to the account page.
pub fn backup_codes(heading: &str, codes: &[&str]) -> String {
    let text = format!(
        "secondfactor demo backup codes\nEach code works once. Keep them somewhere safe.\n\n{}\n",
        codes.join("\n")
    );
    let download = utf8_percent_encode(&text, NON_ALPHANUMERIC).to_string();
    layout(
        heading,
        html! {
            div id="codes-once" {
                p {
                    strong { "Save these backup codes now." }
                    " If you lose your phone, each one lets you log in once. Once you say they are saved (or in 10 minutes), they are not shown again."
                }
                ol class="codes" id="backup-codes" {
                    @for c in codes { li { (c) } }
                }
                p class="no-print" {
                    button type="button" class="secondary" id="copy-codes" data-copy=(codes.join("\n")) hidden { "Copy" }
                    a class="button secondary" id="download-codes" download="backup-codes.txt" href={ "data:text/plain;charset=utf-8," (download) } { "Download as .txt" }
                    button type="button" class="secondary" id="print-codes" data-print hidden { "Print" }
                }
                form method="post" action="/backup-codes" id="saved-codes" {
                    label {
                        input type="checkbox" name="saved" value="1" required;
                        " I have saved these codes somewhere safe (a password manager, or on paper)"
                    }
                    button type="submit" { "Continue to my account" }
                }
            }
        },
    )
}

/// A page for an error outside any form (forbidden origin, not found, …).
pub fn message(title: &str, text: &str) -> String {
    layout(
        title,
        html! {
            p class="error" role="alert" { (text) }
            p { a href="/" { "Home" } }
        },
    )
}

// --- form bodies -------------------------------------------------------------------

/// The register and login forms.
#[derive(Deserialize)]
pub struct CredentialsForm {
    /// The login name.
    #[serde(default)]
    pub username: String,
    /// The password.
    #[serde(default)]
    pub password: String,
}

/// The second-factor and disable forms.
#[derive(Deserialize)]
pub struct FactorForm {
    /// A TOTP code.
    #[serde(default)]
    pub code: Option<String>,
    /// A backup code.
    #[serde(default)]
    pub backup_code: Option<String>,
    /// The "remember this device" box (present when ticked).
    #[serde(default)]
    pub remember_device: Option<String>,
}

impl FactorForm {
    /// The same input as the JSON API's body.
    pub fn into_body(self) -> FactorBody {
        FactorBody {
            code: self.code,
            backup_code: self.backup_code,
            remember_device: self.remember_device.is_some(),
            webauthn: None,
        }
    }
}

/// The confirm and new-backup-codes forms.
#[derive(Deserialize)]
pub struct CodeForm {
    /// A TOTP code.
    #[serde(default)]
    pub code: String,
    /// Present when the form adds a second authenticator (not the first setup).
    #[serde(default)]
    pub adding: Option<String>,
}

/// The account page's forms (each uses some of the fields).
#[derive(Deserialize, Default)]
pub struct AccountForm {
    /// The id of a session, device or authenticator.
    #[serde(default)]
    pub id: String,
    /// A new authenticator's name.
    #[serde(default)]
    pub name: String,
    /// The confirmation box (present when ticked).
    #[serde(default)]
    pub confirm: Option<String>,
    /// A TOTP code.
    #[serde(default)]
    pub code: Option<String>,
    /// A backup code.
    #[serde(default)]
    pub backup_code: Option<String>,
    /// The password now.
    #[serde(default)]
    pub current_password: String,
    /// The new password.
    #[serde(default)]
    pub new_password: String,
}

/// `?notice=…` after a redirect.
#[derive(Deserialize)]
pub struct NoticeQuery {
    /// A key for [`notice_text`].
    #[serde(default)]
    pub notice: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lockouts_say_who_is_locked_and_for_how_long() {
        let account = Error::TooManyAttempts {
            retry_after: Duration::from_secs(15 * 60),
            limiter: Limiter::Account,
        };
        assert_eq!(
            error_text(&account),
            "This account is locked for 15 minutes after too many wrong codes or passwords. \
             Try again in 15 minutes."
        );
        let client = Error::TooManyAttempts {
            retry_after: Duration::from_secs(60),
            limiter: Limiter::Client,
        };
        assert_eq!(
            error_text(&client),
            "Too many attempts from your network; try again in 60 seconds."
        );
    }

    #[test]
    fn a_spent_backup_code_is_said_as_such() {
        let e = Error::BackupCodeUsed {
            remaining_attempts: Some(4),
        };
        assert_eq!(
            error_text(&e),
            "That backup code was already used: each backup code works once. \
             Use another one, or a code from your app. 4 attempts left."
        );
    }
}
