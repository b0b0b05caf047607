//! The backup-codes page's cookie: the codes a confirmation or a renewal just made,
//! carried from the `POST` that made them to `GET /backup-codes` (POST-redirect-GET),
//! so a reload shows the same codes and never posts the form again.
//!
//! The value is sealed with the server's key ring ([`KeyRing::seal_record`],
//! XChaCha20-Poly1305): the browser can neither read nor change it. Inside the seal
//! are the session it belongs to and when it expires; the session id is also the
//! seal's associated data, so a cookie copied into another session does not open
//! there, and an expired, tampered or foreign value opens as nothing. The cookie is
//! `HttpOnly; SameSite=Strict; Path=/backup-codes`, `Secure` under https (named
//! `__Secure-sf_codes` then: `__Host-` would need `Path=/`), and lives
//! [`CODES_TTL_SECS`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secondfactor::secret::{KeyRing, SealedSecret};
use secondfactor::store::SessionId;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::config::Site;

/// The cookie's name over plain http.
pub const CODES_COOKIE: &str = "sf_codes";
/// The page that shows the codes, and the only path the cookie is sent to.
pub const CODES_PATH: &str = "/backup-codes";
/// How long the codes can be shown again (10 minutes).
pub const CODES_TTL_SECS: u64 = 600;

/// Why a set of codes is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Occasion {
    /// Two-factor authentication was just turned on.
    TurnedOn,
    /// The user made a new set.
    Renewed,
}

impl Occasion {
    /// The page heading.
    pub fn heading(self) -> &'static str {
        match self {
            Occasion::TurnedOn => "Two-factor authentication is on",
            Occasion::Renewed => "New backup codes",
        }
    }
}

/// What the seal holds.
#[derive(Serialize, Deserialize)]
struct Payload {
    /// The session the codes were made in.
    sid: String,
    /// When the cookie stops opening (Unix seconds).
    exp: u64,
    occasion: Occasion,
    codes: Vec<String>,
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.codes.zeroize();
    }
}

/// Codes opened from a valid cookie.
pub struct Shown {
    /// Why they are shown.
    pub occasion: Occasion,
    /// The codes, in display form (wiped on drop).
    pub codes: Zeroizing<Vec<String>>,
}

/// The seal's associated data: the purpose and the session. A record sealed for a
/// user (a security key's credential) has a user id there and never opens as this.
fn context(session: &SessionId) -> String {
    format!("sf-example/backup-codes-cookie/v1\u{0}{}", session.as_str())
}

/// Seals `codes` for `session`, valid until `now + CODES_TTL_SECS`; the cookie value.
pub fn seal(
    keys: &KeyRing,
    session: &SessionId,
    occasion: Occasion,
    codes: &[&str],
    now: u64,
) -> Result<String, secondfactor::Error> {
    let payload = Payload {
        sid: session.as_str().to_owned(),
        exp: now.saturating_add(CODES_TTL_SECS),
        occasion,
        codes: codes.iter().map(|c| (*c).to_owned()).collect(),
    };
    let plain = Zeroizing::new(
        serde_json::to_vec(&payload)
            .map_err(|_| secondfactor::Error::Internal("backup codes could not be encoded"))?,
    );
    let sealed = keys.seal_record(&context(session), &plain)?;
    Ok(URL_SAFE_NO_PAD.encode(sealed.as_bytes()))
}

/// Opens a cookie value for `session` at `now`: `None` unless it was sealed by this
/// key ring for this session and has not expired.
pub fn open(keys: &KeyRing, session: &SessionId, value: &str, now: u64) -> Option<Shown> {
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    let sealed = SealedSecret::from_bytes(bytes).ok()?;
    let plain = keys.open_record(&context(session), &sealed).ok()?;
    let mut payload: Payload = serde_json::from_slice(&plain).ok()?;
    if payload.sid != session.as_str() || now >= payload.exp {
        return None;
    }
    Some(Shown {
        occasion: payload.occasion,
        codes: Zeroizing::new(std::mem::take(&mut payload.codes)),
    })
}

/// The cookie's name on `site`: `__Secure-sf_codes` under https, else `sf_codes`.
pub fn cookie_name(site: &Site) -> String {
    if site.secure {
        format!("__Secure-{CODES_COOKIE}")
    } else {
        CODES_COOKIE.to_owned()
    }
}

/// The `Set-Cookie` value carrying `value` (empty and `Max-Age=0` clears it).
pub fn set_cookie(site: &Site, value: &str, max_age: u64) -> String {
    super::api::scoped_cookie(
        cookie_name(site),
        value,
        CODES_PATH,
        site.secure,
        Some(max_age),
    )
}

/// The `Set-Cookie` value that deletes the cookie.
pub fn clear_cookie(site: &Site) -> String {
    set_cookie(site, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cookie::{Cookie, SameSite};
    use secondfactor::secret::SealingKey;

    const CODES: [&str; 2] = ["ABCDE-FGHJK-LMNPQ", "RSTUV-WXYZ2-34567"];
    const NOW: u64 = 1_800_000_000;

    fn keys() -> KeyRing {
        KeyRing::new(1, SealingKey::from_bytes([7; 32]))
    }

    fn sealed_for(session: &str) -> String {
        seal(
            &keys(),
            &SessionId::new(session),
            Occasion::Renewed,
            &CODES,
            NOW,
        )
        .unwrap()
    }

    #[test]
    fn the_same_session_reads_the_codes_until_they_expire() {
        let value = sealed_for("session-a");
        let a = SessionId::new("session-a");
        let shown = open(&keys(), &a, &value, NOW).unwrap();
        assert_eq!(shown.occasion, Occasion::Renewed);
        assert_eq!(shown.codes.as_slice(), CODES);
        // Read again (a reload): the same codes.
        assert!(open(&keys(), &a, &value, NOW + CODES_TTL_SECS - 1).is_some());
        // Expired: nothing, however the cookie was kept.
        assert!(open(&keys(), &a, &value, NOW + CODES_TTL_SECS).is_none());
        assert!(open(&keys(), &a, &value, u64::MAX).is_none());
    }

    #[test]
    fn a_cookie_replayed_in_another_session_opens_as_nothing() {
        let value = sealed_for("session-a");
        assert!(open(&keys(), &SessionId::new("session-b"), &value, NOW).is_none());
    }

    #[test]
    fn a_tampered_or_foreign_cookie_opens_as_nothing() {
        let a = SessionId::new("session-a");
        let value = sealed_for("session-a");
        let mut bytes = URL_SAFE_NO_PAD.decode(&value).unwrap();
        for i in [0, 5, 30, bytes.len() / 2, bytes.len() - 1] {
            bytes[i] ^= 1;
            let flipped = URL_SAFE_NO_PAD.encode(&bytes);
            assert!(open(&keys(), &a, &flipped, NOW).is_none(), "byte {i}");
            bytes[i] ^= 1;
        }
        // Sealed under another server key.
        let other = KeyRing::new(1, SealingKey::from_bytes([8; 32]));
        assert!(open(&other, &a, &value, NOW).is_none());
        // A record sealed for some user under the same key (not this purpose).
        let record = keys().seal_record("session-a", br#"{"codes":[]}"#).unwrap();
        let record = URL_SAFE_NO_PAD.encode(record.as_bytes());
        assert!(open(&keys(), &a, &record, NOW).is_none());
        // Garbage.
        for junk in ["", "x", "not base64 !", "AAAA"] {
            assert!(open(&keys(), &a, junk, NOW).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn the_codes_are_not_readable_in_the_cookie() {
        let value = sealed_for("session-a");
        let bytes = URL_SAFE_NO_PAD.decode(&value).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for code in CODES {
            assert!(!text.contains(code) && !value.contains(code));
        }
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_the_page() {
        let mut site = Site {
            origin: "http://localhost:3000".to_owned(),
            also_allowed: Vec::new(),
            secure: false,
            trust_forwarded: false,
            keys: keys(),
        };
        let c = Cookie::parse(set_cookie(&site, "v", CODES_TTL_SECS)).unwrap();
        assert_eq!(c.name(), "sf_codes");
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.same_site(), Some(SameSite::Strict));
        assert_eq!(c.path(), Some("/backup-codes"));
        assert_eq!(c.max_age(), Some(cookie::time::Duration::seconds(600)));
        assert_ne!(c.secure(), Some(true));
        site.secure = true;
        let c = Cookie::parse(set_cookie(&site, "v", CODES_TTL_SECS)).unwrap();
        assert_eq!(c.name(), "__Secure-sf_codes");
        assert_eq!(c.secure(), Some(true));
        let cleared = Cookie::parse(clear_cookie(&site)).unwrap();
        assert_eq!(cleared.max_age(), Some(cookie::time::Duration::ZERO));
        assert_eq!(cleared.path(), Some("/backup-codes"));
    }
}
