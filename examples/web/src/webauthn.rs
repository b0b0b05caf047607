//! Security keys and passkeys (feature `webauthn`) in the example servers: the
//! relying party from `SF_PUBLIC_URL`, the JSON endpoints' bodies and answers, the
//! page sections and the static script that runs `navigator.credentials`.
//!
//! Like the rest of `common`, nothing here decides: the ceremonies, their state,
//! the counters and the throttles are the library's.

use maud::{Markup, html};
use secondfactor::flow::WebAuthnRegistered;
use secondfactor::store::Store;
use secondfactor::webauthn::WebAuthnConfig;
use secondfactor::{Error, RecentAuth, Service};
use serde_json::{Value, json};

/// `/static/webauthn.js`.
pub const SCRIPT: &str = include_str!("webauthn.js");

/// The relying party: `SF_PUBLIC_URL`'s host, or `localhost` on any port when it is
/// not set (the servers' default address). `None`, with a note, when the URL's host
/// cannot be a relying party (an IP address): the servers then run without keys.
pub fn relying_party(public_url: Option<&str>) -> Option<WebAuthnConfig> {
    let config = match public_url {
        Some(url) => WebAuthnConfig::new(url),
        None => WebAuthnConfig::new("http://localhost").map(|c| c.allow_any_port(true)),
    };
    match config {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("note: security keys are off: {e}");
            None
        }
    }
}

/// `POST /api/2fa/webauthn/register/start` †: `{"name"}` → `{"publicKey": …}`.
pub async fn register_start<S: Store>(
    service: &Service<S>,
    proof: &RecentAuth,
    name: &str,
) -> Result<Value, Error> {
    let options = service.start_webauthn_registration(proof, name).await?;
    serde_json::to_value(options).map_err(|_| Error::Internal("options did not serialize"))
}

/// `POST /api/2fa/webauthn/register/finish` †: the credential JSON → `{"id","name"}`
/// (+ `"backup_codes"`).
pub async fn register_finish<S: Store>(
    service: &Service<S>,
    proof: &RecentAuth,
    body: &[u8],
) -> Result<Value, Error> {
    let text = std::str::from_utf8(body).map_err(|_| Error::InvalidInput {
        field: "webauthn",
        reason: "is not UTF-8",
    })?;
    let done: WebAuthnRegistered = service.finish_webauthn_registration(proof, text).await?;
    let mut answer = json!({ "id": done.authenticator_id.as_str(), "name": done.name });
    if let Some(codes) = done.backup_codes {
        let codes: Vec<String> = codes.iter().map(|c| c.expose().to_string()).collect();
        answer["backup_codes"] = json!(codes);
    }
    Ok(answer)
}

/// `POST /api/login/webauthn/start` (needs `sf_pending`) → `{"publicKey": …}`.
pub async fn login_start<S: Store>(service: &Service<S>, pending: &str) -> Result<Value, Error> {
    let options = service.start_webauthn_login(pending).await?;
    serde_json::to_value(options).map_err(|_| Error::Internal("options did not serialize"))
}

/// The account page's section: add a key (the first one turns 2FA on).
pub fn account_section() -> Markup {
    html! {
        section id="webauthn" {
            h2 { "Security keys and passkeys" }
            p {
                "A security key or passkey can stand in for the code: the browser asks the key, \
                 and a phishing site cannot reuse its answer."
            }
            label for="webauthn-name" { "Name" }
            input type="text" id="webauthn-name" value="security key" maxlength="128";
            button type="button" id="webauthn-register" hidden { "Add a security key" }
            p role="alert" id="webauthn-error" hidden {}
            script src="/static/webauthn.js" defer {}
        }
    }
}

/// The verification page's section: use a key instead of a code.
pub fn verify_section() -> Markup {
    html! {
        section id="webauthn" {
            p { "Have a security key or passkey on this account?" }
            button type="button" id="webauthn-login" hidden { "Use your security key" }
            p role="alert" id="webauthn-error" hidden {}
            script src="/static/webauthn.js" defer {}
        }
    }
}

/// The re-authentication page's section: confirm with the password and a key
/// instead of a code (the library's confirmation ceremony, bound to this session).
pub fn reauth_section() -> Markup {
    html! {
        section id="webauthn" {
            p { "Or confirm with your password and your security key or passkey." }
            button type="button" id="webauthn-reauth" hidden { "Use your security key" }
            p role="alert" id="webauthn-error" hidden {}
            script src="/static/webauthn.js" defer {}
        }
    }
}

/// `POST /api/reauth/webauthn/start` (needs `sf_session`) → `{"publicKey": …}`: the
/// ceremony whose answer confirms `/api/reauth` or `/api/2fa/disable`.
pub async fn confirm_start<S: Store>(
    service: &Service<S>,
    session_token: &str,
) -> Result<Value, Error> {
    let options = service.start_webauthn_confirmation(session_token).await?;
    serde_json::to_value(options).map_err(|_| Error::Internal("options did not serialize"))
}
