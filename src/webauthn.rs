//! Security keys and passkeys as a second factor (WebAuthn), via `webauthn-rs`
//! (feature `webauthn`).
//!
//! A registered key is an authenticator of the account like a TOTP phone: named,
//! listed by [`Service::status`](crate::Service::status), removable, counted in
//! [`max_authenticators`](crate::ServiceBuilder::max_authenticators), added only with
//! a [`RecentAuth`](crate::RecentAuth), and the first one turns 2FA on and yields the
//! backup codes. The store keeps it as a *sealed record* (the `webauthn-rs`
//! credential with its signature counter, sealed like a TOTP secret, bound to the
//! account), so a database writer cannot swap in a key of their own.
//!
//! Both ceremonies keep their state on the server, in the ephemeral store, sealed,
//! single use (taken atomically) and with an expiry:
//!
//! - registration: [`Service::start_webauthn_registration`](crate::Service::start_webauthn_registration)
//!   → the browser's `navigator.credentials.create` →
//!   [`Service::finish_webauthn_registration`](crate::Service::finish_webauthn_registration),
//!   bound to the session that started it;
//! - login: after the password step,
//!   [`Service::start_webauthn_login`](crate::Service::start_webauthn_login) → the
//!   browser's `navigator.credentials.get` →
//!   [`Service::second_factor`](crate::Service::second_factor) with
//!   [`SecondFactor::WebAuthn`](crate::SecondFactor::WebAuthn), bound to the pending
//!   login; the assertion counts as an attempt like a code.
//!
//! The relying party comes from configuration: [`WebAuthnConfig::new`] takes the
//! service's public URL (`SF_PUBLIC_URL` in the examples); its host is the
//! relying-party id. `http://localhost` works (browsers treat it as a secure
//! context); an IP address is refused, as browsers refuse it as an RP id.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::{Host, Url};
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, SecurityKey, SecurityKeyAuthentication,
    SecurityKeyRegistration, Webauthn, WebauthnBuilder,
};

use crate::{Error, Result};

pub use webauthn_rs::prelude::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

/// Whether the key must verify its user (PIN, biometrics) at each use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserVerification {
    /// Asked for when the key can do it, not required: the password is the other
    /// factor. The default, and what `webauthn-rs` uses for security keys.
    #[default]
    Preferred,
    /// Required: the browser is asked for it, and a login assertion without the
    /// user-verified flag is refused.
    Required,
}

/// The relying party: who the keys are registered with.
#[derive(Clone, Debug)]
pub struct WebAuthnConfig {
    rp_id: String,
    origin: Url,
    rp_name: Option<String>,
    user_verification: UserVerification,
    ceremony_ttl: u64,
    allow_any_port: bool,
}

impl WebAuthnConfig {
    /// The relying party of a service served at `public_url`: its origin is the
    /// URL's, its id the URL's host (`https://login.example.com/app` → id
    /// `login.example.com`).
    ///
    /// # Errors
    ///
    /// `invalid_config` when the URL does not parse, is neither `https` nor
    /// `http://localhost` (browsers offer WebAuthn in secure contexts only), or its
    /// host is an IP address (not a valid relying-party id: use a domain name).
    pub fn new(public_url: &str) -> Result<Self> {
        let url = Url::parse(public_url)
            .map_err(|_| Error::InvalidConfig("webauthn: the public URL does not parse"))?;
        let rp_id = match url.host() {
            Some(Host::Domain(d)) => d.to_ascii_lowercase(),
            Some(Host::Ipv4(_) | Host::Ipv6(_)) => {
                return Err(Error::InvalidConfig(
                    "webauthn: an IP address is not a valid relying-party id; serve the \
                     service under a domain name (http://localhost works for development)",
                ));
            }
            None => return Err(Error::InvalidConfig("webauthn: the public URL has no host")),
        };
        let localhost = rp_id == "localhost" || rp_id.ends_with(".localhost");
        match url.scheme() {
            "https" => {}
            "http" if localhost => {}
            _ => {
                return Err(Error::InvalidConfig(
                    "webauthn: the public URL must be https (or http://localhost)",
                ));
            }
        }
        let origin = Url::parse(&url.origin().ascii_serialization())
            .map_err(|_| Error::InvalidConfig("webauthn: the public URL has no origin"))?;
        Ok(WebAuthnConfig {
            rp_id,
            origin,
            rp_name: None,
            user_verification: UserVerification::default(),
            ceremony_ttl: 300,
            allow_any_port: false,
        })
    }

    /// The name browsers show for the relying party (default: the service's
    /// issuer).
    pub fn rp_name(mut self, name: impl Into<String>) -> Self {
        self.rp_name = Some(name.into());
        self
    }

    /// The user-verification policy (default [`UserVerification::Preferred`]).
    pub fn user_verification(mut self, policy: UserVerification) -> Self {
        self.user_verification = policy;
        self
    }

    /// How long a started ceremony can be finished (default 5 minutes; 10 s to
    /// 10 minutes). A login ceremony never outlives its pending login.
    pub fn ceremony_ttl(mut self, ttl: Duration) -> Self {
        self.ceremony_ttl = ttl.as_secs();
        self
    }

    /// Accept assertions from the origin's host on any port (default: only the
    /// URL's port). For development on `http://localhost` with a port chosen at
    /// start.
    pub fn allow_any_port(mut self, allow: bool) -> Self {
        self.allow_any_port = allow;
        self
    }

    /// The relying-party id (the public URL's host).
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// The origin assertions must come from.
    pub fn origin(&self) -> &Url {
        &self.origin
    }

    /// The user-verification policy.
    pub fn policy(&self) -> UserVerification {
        self.user_verification
    }
}

/// The configured relying party, ready for ceremonies.
pub(crate) struct RelyingParty {
    pub(crate) webauthn: Webauthn,
    pub(crate) policy: UserVerification,
    pub(crate) ceremony_ttl: u64,
}

impl std::fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelyingParty")
            .field("policy", &self.policy)
            .field("ceremony_ttl", &self.ceremony_ttl)
            .finish_non_exhaustive()
    }
}

impl RelyingParty {
    pub(crate) fn new(config: &WebAuthnConfig, issuer: &str) -> Result<Self> {
        if !(10..=600).contains(&config.ceremony_ttl) {
            return Err(Error::InvalidConfig(
                "webauthn: ceremony_ttl must be 10 s to 10 minutes",
            ));
        }
        let name = config.rp_name.as_deref().unwrap_or(issuer);
        let webauthn = WebauthnBuilder::new(&config.rp_id, &config.origin)
            .map_err(|_| {
                Error::InvalidConfig("webauthn: the relying-party id does not match the origin")
            })?
            .rp_name(name)
            .allow_any_port(config.allow_any_port)
            .build()
            .map_err(|_| Error::InvalidConfig("webauthn: the relying party was refused"))?;
        Ok(RelyingParty {
            webauthn,
            policy: config.user_verification,
            ceremony_ttl: config.ceremony_ttl,
        })
    }
}

/// A registered key as sealed in the store: the `webauthn-rs` credential and the
/// last signature counter accepted from it.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredKey {
    pub(crate) counter: u32,
    pub(crate) key: SecurityKey,
}

impl StoredKey {
    pub(crate) fn cred_id(&self) -> &CredentialID {
        self.key.cred_id()
    }

    /// Applies a verified assertion: `Err(())` when its counter does not move past
    /// the stored one (a cloned key or a replay), else whether anything changed.
    pub(crate) fn apply(&mut self, result: &AuthenticationResult) -> std::result::Result<bool, ()> {
        let counter = result.counter();
        if (counter > 0 || self.counter > 0) && counter <= self.counter {
            return Err(());
        }
        let changed =
            self.key.update_credential(result).unwrap_or(false) || counter != self.counter;
        self.counter = self.counter.max(counter);
        Ok(changed)
    }
}

/// The sealed state of a registration ceremony.
#[derive(Serialize, Deserialize)]
pub(crate) struct RegistrationState {
    pub(crate) name: String,
    pub(crate) state: SecurityKeyRegistration,
}

/// The sealed state of a login ceremony.
#[derive(Serialize, Deserialize)]
pub(crate) struct LoginState {
    pub(crate) state: SecurityKeyAuthentication,
}

/// The longest credential JSON accepted from a client (a registration carries an
/// attestation object; 64 KiB is far above any real one).
pub const MAX_CREDENTIAL_JSON: usize = 64 * 1024;

/// Parses the browser's credential JSON (as `navigator.credentials.create` /
/// `get` made it, with base64url binary fields).
pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T> {
    if json.len() > MAX_CREDENTIAL_JSON {
        return Err(Error::input("webauthn", "the credential is too long"));
    }
    serde_json::from_str(json).map_err(|_| Error::input("webauthn", "is not a WebAuthn credential"))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|_| Error::Internal("webauthn state did not serialize"))
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|_| Error::SealedSecretInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_party_comes_from_the_public_url() {
        let c = WebAuthnConfig::new("https://Login.Example.com:8443/app/").unwrap();
        assert_eq!(c.rp_id(), "login.example.com");
        assert_eq!(c.origin().as_str(), "https://login.example.com:8443/");
        let local = WebAuthnConfig::new("http://localhost:3000").unwrap();
        assert_eq!(local.rp_id(), "localhost");
        assert!(RelyingParty::new(&local, "Example").is_ok());
    }

    #[test]
    fn ip_addresses_and_plain_http_are_refused() {
        for url in [
            "http://127.0.0.1:3000",
            "https://192.0.2.7",
            "https://[::1]:8443",
        ] {
            let e = WebAuthnConfig::new(url).unwrap_err();
            assert!(e.to_string().contains("IP address"), "{url}: {e}");
        }
        let e = WebAuthnConfig::new("http://example.com").unwrap_err();
        assert!(e.to_string().contains("https"), "{e}");
        assert!(WebAuthnConfig::new("not a url").is_err());
    }

    #[test]
    fn ceremony_ttl_is_bounded() {
        let c = WebAuthnConfig::new("https://example.com")
            .unwrap()
            .ceremony_ttl(Duration::from_secs(5));
        assert!(RelyingParty::new(&c, "x").is_err());
    }
}
