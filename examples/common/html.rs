//! The HTML pages: plain server-rendered forms, every value escaped. One small
//! stylesheet and one small script, both served by the app (`/static/…`): the
//! content security policy allows no inline style or script.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

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

/// Escapes text for HTML element content and double-quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

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
        Error::TooManyAttempts { retry_after } => format!(
            "Too many attempts: this account is locked for {d}. Try again in {d}.",
            d = duration_text(super::api::retry_secs(*retry_after))
        ),
        Error::CodeAlreadyUsed => "That code was already used. Wait for the next code in \
                                   your app (a new one comes every 30 seconds)."
            .to_owned(),
        Error::InvalidInput {
            field: "password", ..
        } => "The password must have at least 8 characters (and at most 1024).".to_owned(),
        Error::InvalidInput {
            field: "username", ..
        } => "The username must have 1 to 64 characters: letters, digits and . _ @ -.".to_owned(),
        Error::Busy { retry_after } => format!(
            "The server is busy right now. Please try again in {}.",
            duration_text(super::api::retry_secs(*retry_after))
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
        Error::TooManyAttempts { retry_after } => format!(
            "Too many attempts from this address: creating accounts is locked for {d}. \
             Try again in {d}.",
            d = duration_text(super::api::retry_secs(*retry_after))
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
        "logged_out" => "You are logged out.",
        "disabled" => "Two-factor authentication is off.",
        "expired" => "The login expired. Start again with your password.",
        "password_changed" => "Your password is changed. Every other session has ended.",
        "authenticator_added" => "The new authenticator is added.",
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

/// `/static/app.js`: copy, print and the reload guard of the backup-codes page.
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
  // A page shown once (new backup codes): a reload goes to this address instead of
  // posting the form again, so it shows no codes and no error.
  var once = document.querySelector('[data-reload-to]');
  if (once && window.history && history.replaceState) {
    history.replaceState(null, '', once.getAttribute('data-reload-to'));
  }
});
"#;

/// The page frame.
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · secondfactor demo</title>\n\
         <link rel=\"stylesheet\" href=\"/static/style.css\">\n\
         <script src=\"/static/app.js\" defer></script>\n</head>\n<body>\n<main>\n\
         <nav><a href=\"/\">secondfactor demo</a></nav>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

fn messages(notice: Option<&str>, error: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(n) = notice {
        out.push_str(&format!(
            "<p class=\"notice\" role=\"status\">{}</p>\n",
            escape(n)
        ));
    }
    if let Some(e) = error {
        out.push_str(&format!(
            "<p class=\"error\" role=\"alert\" id=\"error\">{}</p>\n",
            escape(e)
        ));
    }
    out
}

/// `/` for a visitor.
pub fn home() -> String {
    layout(
        "Welcome",
        "<p>A demonstration of password + TOTP two-factor login.</p>\n\
         <ul><li><a href=\"/register\">Create an account</a></li>\
         <li><a href=\"/login\">Log in</a></li></ul>",
    )
}

/// `/register`.
pub fn register(error: Option<&str>, username: &str) -> String {
    let body = format!(
        "{msgs}<form method=\"post\" action=\"/register\">\n\
         <label for=\"username\">Username (up to 64 characters: letters, digits and . _ @ -)</label>\n\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{user}\" autocomplete=\"username\" required maxlength=\"64\">\n\
         <label for=\"password\">Password (at least 8 characters)</label>\n\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"new-password\" required minlength=\"8\">\n\
         <button type=\"submit\">Create account</button>\n</form>\n\
         <p>Already registered? <a href=\"/login\">Log in</a>.</p>",
        msgs = messages(None, error),
        user = escape(username),
    );
    layout("Create an account", &body)
}

/// `/login`.
pub fn login(notice: Option<&str>, error: Option<&str>, username: &str) -> String {
    let body = format!(
        "{msgs}<form method=\"post\" action=\"/login\">\n\
         <label for=\"username\">Username</label>\n\
         <input type=\"text\" id=\"username\" name=\"username\" value=\"{user}\" autocomplete=\"username\" required>\n\
         <label for=\"password\">Password</label>\n\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\n\
         <button type=\"submit\">Log in</button>\n</form>\n\
         <p>No account yet? <a href=\"/register\">Create one</a>.</p>",
        msgs = messages(notice, error),
        user = escape(username),
    );
    layout("Log in", &body)
}

/// `/login/verify`: a TOTP code, or a backup code, and "remember this device".
pub fn verify(error: Option<&str>) -> String {
    let remember = "<label><input type=\"checkbox\" name=\"remember_device\" value=\"1\"> \
                    Remember this device for 30 days</label>\n";
    let body = format!(
        "{msgs}<p>Your password was right. Now enter the code from your authenticator app.</p>\n\
         <form method=\"post\" action=\"/login/verify\">\n\
         <label for=\"code\">6-digit code</label>\n\
         <input type=\"text\" id=\"code\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required autofocus maxlength=\"16\">\n\
         {remember}<button type=\"submit\">Verify</button>\n</form>\n\
         <section><p>Lost your phone? Use one of your backup codes.</p>\n\
         <form method=\"post\" action=\"/login/verify\">\n\
         <label for=\"backup_code\">Backup code</label>\n\
         <input type=\"text\" id=\"backup_code\" name=\"backup_code\" autocomplete=\"one-time-code\" autocapitalize=\"characters\" spellcheck=\"false\" required maxlength=\"64\">\n\
         {remember}<button type=\"submit\">Use backup code</button>\n</form></section>\n\
         {webauthn}<p><a href=\"/login\">Start again</a></p>",
        msgs = messages(None, error),
        webauthn = webauthn_verify_section(),
    );
    layout("Two-factor verification", &body)
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

const CONFIRM_BOX: &str = "<label><input type=\"checkbox\" name=\"confirm\" value=\"1\" required> Yes, I am sure</label>\n";

fn code_fields(prefix: &str, backup: bool) -> String {
    let mut out = format!(
        "<label for=\"{prefix}-code\">Current 6-digit code</label>\n\
         <input type=\"text\" id=\"{prefix}-code\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" maxlength=\"16\"{req}>\n",
        req = if backup { "" } else { " required" },
    );
    if backup {
        out.push_str(&format!(
            "<label for=\"{prefix}-backup\">or a backup code</label>\n\
             <input type=\"text\" id=\"{prefix}-backup\" name=\"backup_code\" autocomplete=\"one-time-code\" spellcheck=\"false\" maxlength=\"64\">\n"
        ));
    }
    out
}

fn authenticators_section(status: &TwoFactorStatus) -> String {
    let only_one = status.authenticators.len() <= 1;
    let items: String = status
        .authenticators
        .iter()
        .map(|a| {
            let unreadable = if a.readable {
                ""
            } else {
                " <strong>(cannot be read: remove it and add the phone again)</strong>"
            };
            let remove = if only_one {
                String::new()
            } else {
                format!(
                    "<details><summary>Remove</summary>\
                     <form method=\"post\" action=\"/account/authenticators/remove\">\
                     <input type=\"hidden\" name=\"id\" value=\"{id}\">{CONFIRM_BOX}\
                     <button type=\"submit\">Remove {name}</button></form></details>",
                    id = escape(a.id.as_str()),
                    name = escape(&a.name),
                )
            };
            format!(
                "<li class=\"authenticator\"><strong>{name}</strong>, added {at}{unreadable}{remove}</li>\n",
                name = escape(&a.name),
                at = escape(&utc(a.created_at)),
            )
        })
        .collect();
    format!(
        "<section><h2>Authenticators</h2>\n<ul id=\"authenticators\">\n{items}</ul>\n\
         <form method=\"post\" action=\"/account/authenticators\">\n\
         <label for=\"authenticator-name\">Add another authenticator (a second phone), named</label>\n\
         <input type=\"text\" id=\"authenticator-name\" name=\"name\" required maxlength=\"128\" placeholder=\"work phone\">\n\
         <button type=\"submit\">Add authenticator</button>\n</form></section>\n"
    )
}

fn sessions_section(view: &AccountView) -> String {
    let items: String = view
        .sessions
        .iter()
        .map(|s| {
            let (marker, button) = if s.current {
                (
                    " <strong class=\"current\">(this session)</strong>",
                    "Log out",
                )
            } else {
                ("", "End")
            };
            format!(
                "<li class=\"session\">Started {at} with {method}, ends {end}{marker}\
                 <form method=\"post\" action=\"/account/sessions/end\">\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\">\
                 <button type=\"submit\">{button}</button></form></li>\n",
                at = escape(&utc(s.created_at)),
                method = escape(method_text(s.method)),
                end = escape(&utc(s.expires_at)),
                id = escape(s.id.as_str()),
            )
        })
        .collect();
    format!(
        "<section><h2>Sessions</h2>\n<ul id=\"sessions\">\n{items}</ul>\n\
         <form method=\"post\" action=\"/account/sessions/revoke-others\">\n\
         <button type=\"submit\">End all other sessions</button>\n</form></section>\n"
    )
}

fn devices_section(view: &AccountView) -> String {
    let items: String = view
        .devices
        .iter()
        .map(|d| {
            let marker = if d.current {
                " <strong class=\"current\">(this browser)</strong>"
            } else {
                ""
            };
            format!(
                "<li class=\"device\">{label}, trusted since {at} until {end}{marker}\
                 <form method=\"post\" action=\"/account/devices/forget\">\
                 <input type=\"hidden\" name=\"id\" value=\"{id}\">\
                 <button type=\"submit\">Forget</button></form></li>\n",
                label = escape(&d.label),
                at = escape(&utc(d.created_at)),
                end = escape(&utc(d.expires_at)),
                id = escape(d.id.as_str()),
            )
        })
        .collect();
    let empty = if view.devices.is_empty() {
        "<p>No trusted devices: every login asks for a code.</p>\n"
    } else {
        ""
    };
    format!(
        "<section><h2>Trusted devices</h2>\n{empty}<ul id=\"devices\">\n{items}</ul></section>\n"
    )
}

fn password_section() -> &'static str {
    "<section><h2>Change password</h2>\n\
     <form method=\"post\" action=\"/account/password\">\n\
     <label for=\"current-password\">Current password</label>\n\
     <input type=\"password\" id=\"current-password\" name=\"current_password\" autocomplete=\"current-password\" required>\n\
     <label for=\"new-password\">New password (at least 8 characters)</label>\n\
     <input type=\"password\" id=\"new-password\" name=\"new_password\" autocomplete=\"new-password\" required minlength=\"8\">\n\
     <button type=\"submit\">Change password</button>\n</form>\n\
     <p>Every other session and every trusted device ends.</p></section>\n"
}

fn log_section(view: &AccountView) -> String {
    let rows: String = view
        .log
        .iter()
        .map(|e| {
            format!(
                "<tr class=\"event\" data-kind=\"{kind}\"><td>{at}</td><td>{what}</td><td>{method}</td><td>{client}</td></tr>\n",
                kind = escape(e.kind.as_str()),
                at = escape(&utc(e.at)),
                what = escape(kind_text(e.kind)),
                method = escape(e.method.map(method_text).unwrap_or_default()),
                client = escape(e.client.as_deref().unwrap_or_default()),
            )
        })
        .collect();
    format!(
        "<section><h2>Security log</h2>\n<div class=\"table-scroll\"><table id=\"security-log\">\n\
         <tr><th>When</th><th>What</th><th>How</th><th>From</th></tr>\n{rows}</table></div></section>\n"
    )
}

/// The invitation to replace each authenticator whose secret is weak (imported from
/// an older site with fewer than 128 bits).
fn weak_notice(status: &TwoFactorStatus) -> String {
    status
        .authenticators
        .iter()
        .filter(|a| a.weak)
        .map(|a| {
            format!(
                "<p class=\"warning weak-authenticator\" role=\"status\">Your authenticator \
                 <strong>{name}</strong> uses a short key carried over from the old site. \
                 Please set up your phone again: add a new authenticator below, check that its \
                 code works, then remove <strong>{name}</strong>.</p>\n",
                name = escape(&a.name),
            )
        })
        .collect()
}

/// `/account`.
pub fn account(view: &AccountView, notice: Option<&str>, error: Option<&str>) -> String {
    let status = &view.status;
    let two_factor = if status.enabled {
        let regenerate = if status.backup_codes_need_regeneration {
            "<p class=\"notice\">Your backup codes were made with an old key: make new ones.</p>\n"
        } else {
            ""
        };
        format!(
            "<p id=\"status\">Two-factor authentication is <strong>on</strong>. \
             Backup codes left: <strong id=\"backup-count\">{left}</strong>.</p>\n\
             {weak}{auths}\
             <section><h2>New backup codes</h2>\n{regenerate}<p>The old set stops working.</p>\n\
             <form method=\"post\" action=\"/account/backup-codes\">\n{regen_code}\
             <button type=\"submit\">Make new backup codes</button>\n</form></section>\n\
             <section><h2>Turn off two-factor authentication</h2>\n\
             <form method=\"post\" action=\"/account/2fa/disable\">\n{disable_code}{CONFIRM_BOX}\
             <button type=\"submit\">Turn off</button>\n</form></section>\n",
            left = status.backup_codes_remaining,
            weak = weak_notice(status),
            auths = authenticators_section(status),
            regen_code = code_fields("regen", false),
            disable_code = code_fields("disable", true),
        )
    } else {
        "<p id=\"status\">Two-factor authentication is <strong>off</strong>.</p>\n\
         <form method=\"post\" action=\"/account/2fa/setup\">\n\
         <button type=\"submit\">Turn on two-factor authentication</button>\n</form>\n"
            .to_owned()
    };
    let body = format!(
        "{msgs}<p>Logged in as <strong id=\"username\">{user}</strong>.</p>\n\
         <p class=\"explain\" id=\"two-factor-explained\">Two-factor authentication asks for a \
         6-digit code from an app on your phone after your password, so a stolen password alone \
         does not open your account.</p>\n{two_factor}\
         {webauthn}{password}{sessions}{devices}{log}\
         <section><form method=\"post\" action=\"/logout\">\n\
         <button type=\"submit\">Log out</button>\n</form></section>",
        msgs = messages(notice, error),
        user = escape(&status.username),
        webauthn = webauthn_account_section(),
        password = password_section(),
        sessions = sessions_section(view),
        devices = devices_section(view),
        log = log_section(view),
    );
    layout("Your account", &body)
}

/// The security-key sections (feature `webauthn`; empty without it).
#[cfg(feature = "webauthn")]
fn webauthn_account_section() -> &'static str {
    super::webauthn::account_section()
}
#[cfg(not(feature = "webauthn"))]
fn webauthn_account_section() -> &'static str {
    ""
}
#[cfg(feature = "webauthn")]
fn webauthn_verify_section() -> &'static str {
    super::webauthn::verify_section()
}
#[cfg(not(feature = "webauthn"))]
fn webauthn_verify_section() -> &'static str {
    ""
}

/// `/reauth`: the password and, with 2FA on, a code or a backup code.
pub fn reauth(next: &str, two_factor: bool, error: Option<&str>) -> String {
    let factor = if two_factor {
        "<label for=\"code\">6-digit code</label>\n\
         <input type=\"text\" id=\"code\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" maxlength=\"16\">\n\
         <label for=\"backup_code\">or a backup code</label>\n\
         <input type=\"text\" id=\"backup_code\" name=\"backup_code\" autocomplete=\"one-time-code\" spellcheck=\"false\" maxlength=\"64\">\n"
    } else {
        ""
    };
    let body = format!(
        "{msgs}<p>Changing how your account is protected needs a fresh confirmation.</p>\n\
         <form method=\"post\" action=\"/reauth\">\n\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\n\
         <label for=\"password\">Password</label>\n\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus>\n\
         {factor}<button type=\"submit\">Confirm</button>\n</form>\n\
         <p><a href=\"/account\">Cancel</a></p>",
        msgs = messages(None, error),
        next = escape(next),
    );
    layout("Confirm it is you", &body)
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
    let body = format!(
        "{msgs}<p class=\"hint\" id=\"which-app\">Which app? Any authenticator app that shows \
         6-digit codes works: Google Authenticator, Microsoft Authenticator, 2FAS, Aegis (Android), \
         or the one in your password manager (1Password, Bitwarden, iCloud Keychain).</p>\n\
         <ol class=\"steps\">\n<li>Scan this QR code with your authenticator app:\n\
         <img id=\"qr\" class=\"qr\" src=\"{qr}\" alt=\"QR code of your new two-factor secret\" width=\"240\" height=\"240\"></li>\n\
         <li>Or type this key into the app: <code id=\"secret\">{secret}</code>\n\
         <button type=\"button\" class=\"secondary\" id=\"copy-secret\" data-copy=\"{raw}\" hidden>Copy key</button>\n\
         (<a href=\"{uri}\">open in an app on this device</a>)</li>\n\
         <li>Enter the 6-digit code the app shows:\n\
         <form method=\"post\" action=\"/account/2fa/setup/confirm\">\n\
         <label for=\"code\">6-digit code</label>\n\
         <input type=\"text\" id=\"code\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required autofocus maxlength=\"16\">\n\
         <button type=\"submit\">Turn on</button>\n</form></li>\n</ol>\n\
         <p>This setup expires in about {minutes} minute{s}. Nothing changes until you confirm.</p>\n\
         <p><a href=\"/account\">Cancel</a></p>",
        msgs = messages(None, error),
        qr = escape(view.qr_data_uri),
        secret = escape(&grouped.join(" ")),
        raw = escape(view.secret),
        uri = escape(view.uri),
        s = if minutes == 1 { "" } else { "s" },
    );
    let title = if view.adding {
        "Add an authenticator"
    } else {
        "Set up two-factor authentication"
    };
    layout(title, &body)
}

/// The page that shows a new set of backup codes, once: copy, download as a text
/// file, print, then "I have saved them". With the script, a reload lands on the
/// account page (no codes, no error) instead of posting the form again.
pub fn backup_codes(heading: &str, codes: &[&str]) -> String {
    let items: String = codes
        .iter()
        .map(|c| format!("<li>{}</li>", escape(c)))
        .collect();
    let text = format!(
        "secondfactor demo backup codes\nEach code works once. Keep them somewhere safe.\n\n{}\n",
        codes.join("\n")
    );
    let body = format!(
        "<div id=\"codes-once\" data-reload-to=\"/account?notice=codes_shown\">\n\
         <p><strong>Save these backup codes now.</strong> If you lose your phone, each one lets \
         you log in once. They are not shown again.</p>\n\
         <ol class=\"codes\" id=\"backup-codes\">{items}</ol>\n\
         <p class=\"no-print\">\
         <button type=\"button\" class=\"secondary\" id=\"copy-codes\" data-copy=\"{copy}\" hidden>Copy</button>\
         <a class=\"button secondary\" id=\"download-codes\" download=\"backup-codes.txt\" href=\"data:text/plain;charset=utf-8,{download}\">Download as .txt</a>\
         <button type=\"button\" class=\"secondary\" id=\"print-codes\" data-print hidden>Print</button></p>\n\
         <form method=\"get\" action=\"/account\" id=\"saved-codes\">\n\
         <label><input type=\"checkbox\" name=\"saved\" value=\"1\" required> \
         I have saved these codes somewhere safe (a password manager, or on paper)</label>\n\
         <button type=\"submit\">Continue to my account</button>\n</form>\n</div>",
        copy = escape(&codes.join("\n")),
        download = utf8_percent_encode(&text, NON_ALPHANUMERIC),
    );
    layout(heading, &body)
}

/// A page for an error outside any form (forbidden origin, not found, …).
pub fn message(title: &str, text: &str) -> String {
    layout(
        title,
        &format!(
            "<p class=\"error\" role=\"alert\">{}</p>\n<p><a href=\"/\">Home</a></p>",
            escape(text)
        ),
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
