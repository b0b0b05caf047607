//! The HTML pages: plain server-rendered forms, no JavaScript, every value escaped.

use secondfactor::Error;
use secondfactor::flow::TwoFactorStatus;
use serde::Deserialize;

use super::api::FactorBody;

/// Headers for every HTML page: no caching (pages show secrets and codes), no
/// framing, no referrer to other sites, and a content security policy that allows
/// only inline styles and `data:` images (the QR code).
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
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
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
        Error::TooManyAttempts { retry_after } => {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            format!("Too many attempts. Try again in {} seconds.", secs.max(1))
        }
        Error::InvalidCredentials => "Wrong username or password.".to_owned(),
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

/// A fixed notice shown after a redirect (`?notice=…`); unknown keys show nothing.
pub fn notice_text(key: &str) -> Option<&'static str> {
    Some(match key {
        "registered" => "Your account is ready. Log in.",
        "logged_out" => "You are logged out.",
        "disabled" => "Two-factor authentication is off.",
        "expired" => "The login expired. Start again with your password.",
        _ => return None,
    })
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5}\
label{display:block;margin:.75rem 0 .25rem}input[type=text],input[type=password]{width:100%;padding:.4rem;font-size:1rem;box-sizing:border-box}\
button{margin-top:.75rem;padding:.4rem 1rem;font-size:1rem}.error{color:#a00;border:1px solid #a00;padding:.5rem}\
.notice{color:#060;border:1px solid #060;padding:.5rem}code,.codes{font-family:ui-monospace,monospace;font-size:1.1rem}\
section{border-top:1px solid #ccc;margin-top:1.5rem}nav{margin-bottom:1rem}";

/// The page frame.
pub fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · secondfactor demo</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <nav><a href=\"/\">secondfactor demo</a></nav>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n",
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
         <label for=\"username\">Username (letters, digits and . _ @ -)</label>\n\
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
         <p><a href=\"/login\">Start again</a></p>",
        msgs = messages(None, error),
    );
    layout("Two-factor verification", &body)
}

/// `/account`.
pub fn account(status: &TwoFactorStatus, notice: Option<&str>, error: Option<&str>) -> String {
    let two_factor = if status.enabled {
        format!(
            "<p id=\"status\">Two-factor authentication is <strong>on</strong>. \
             Backup codes left: <strong id=\"backup-count\">{left}</strong>.</p>\n\
             <section><h2>New backup codes</h2>\n<p>The old set stops working.</p>\n\
             <form method=\"post\" action=\"/account/backup-codes\">\n\
             <label for=\"regen-code\">Current 6-digit code</label>\n\
             <input type=\"text\" id=\"regen-code\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" required maxlength=\"16\">\n\
             <button type=\"submit\">Make new backup codes</button>\n</form></section>\n\
             <section><h2>Turn off two-factor authentication</h2>\n\
             <form method=\"post\" action=\"/account/2fa/disable\">\n\
             <label for=\"disable-code\">Current 6-digit code</label>\n\
             <input type=\"text\" id=\"disable-code\" name=\"code\" autocomplete=\"one-time-code\" inputmode=\"numeric\" maxlength=\"16\">\n\
             <label for=\"disable-backup\">or a backup code</label>\n\
             <input type=\"text\" id=\"disable-backup\" name=\"backup_code\" autocomplete=\"one-time-code\" spellcheck=\"false\" maxlength=\"64\">\n\
             <button type=\"submit\">Turn off</button>\n</form></section>\n",
            left = status.backup_codes_remaining,
        )
    } else {
        "<p id=\"status\">Two-factor authentication is <strong>off</strong>.</p>\n\
         <form method=\"post\" action=\"/account/2fa/setup\">\n\
         <button type=\"submit\">Turn on two-factor authentication</button>\n</form>\n"
            .to_owned()
    };
    let body = format!(
        "{msgs}<p>Logged in as <strong id=\"username\">{user}</strong>.</p>\n{two_factor}\
         <section><form method=\"post\" action=\"/logout\">\n\
         <button type=\"submit\">Log out</button>\n</form></section>",
        msgs = messages(notice, error),
        user = escape(&status.username),
    );
    layout("Your account", &body)
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
        "{msgs}<ol>\n<li>Scan this QR code with your authenticator app:<br>\n\
         <img id=\"qr\" src=\"{qr}\" alt=\"QR code of your new two-factor secret\" width=\"240\" height=\"240\" style=\"image-rendering:pixelated\"></li>\n\
         <li>Or type this key into the app: <code id=\"secret\">{secret}</code>\n\
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
        uri = escape(view.uri),
        s = if minutes == 1 { "" } else { "s" },
    );
    layout("Set up two-factor authentication", &body)
}

/// The page that shows a new set of backup codes, once.
pub fn backup_codes(heading: &str, codes: &[&str]) -> String {
    let items: String = codes
        .iter()
        .map(|c| format!("<li>{}</li>", escape(c)))
        .collect();
    let body = format!(
        "<p><strong>Save these backup codes now.</strong> Each one works once, if you lose \
         your phone. They are not shown again.</p>\n<ol class=\"codes\" id=\"backup-codes\">{items}</ol>\n\
         <p><a href=\"/account\">Done</a></p>",
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

/// `?notice=…` after a redirect.
#[derive(Deserialize)]
pub struct NoticeQuery {
    /// A key for [`notice_text`].
    #[serde(default)]
    pub notice: Option<String>,
}
