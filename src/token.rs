//! Opaque random tokens handed to clients: pending logins, sessions, trusted devices.
//!
//! A token is 256 random bits, written as unpadded base64url (43 characters). The
//! server stores only its keyed hash ([`KeyRing::keyed_hash`]), so a leaked table of
//! sessions or devices cannot be replayed.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::secret::{HashPurpose, KeyRing, KeyedHash};

const TOKEN_BYTES: usize = 32;
/// Longest string accepted as a token before any work (43 characters are expected).
const MAX_TOKEN_LEN: usize = 64;

/// 128 random bits as lowercase hex: ids of accounts, authenticators and devices.
pub(crate) fn random_hex_id() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    let mut s = String::with_capacity(32);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

macro_rules! token_type {
    ($(#[$meta:meta])* $name:ident, $purpose:expr) => {
        $(#[$meta])*
        ///
        /// The value is a secret: `Debug` is redacted and the buffer is zeroized on
        /// drop. Read it with [`expose`](Self::expose) only to hand it to the client.
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Zeroizing<String>);

        impl $name {
            pub(crate) fn generate() -> Self {
                let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
                rand::fill(&mut bytes[..]);
                $name(Zeroizing::new(URL_SAFE_NO_PAD.encode(&bytes[..])))
            }

            /// The token as the client should keep it (a cookie value, say).
            pub fn expose(&self) -> &str {
                &self.0
            }

            pub(crate) fn purpose() -> HashPurpose {
                $purpose
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

token_type!(
    /// The token of a pending login, between the password step and the second factor.
    LoginToken,
    HashPurpose::LoginToken
);
token_type!(
    /// The token of a logged-in session.
    SessionToken,
    HashPurpose::SessionToken
);
token_type!(
    /// The token of a trusted device ("remember this device").
    DeviceToken,
    HashPurpose::DeviceToken
);

/// Marks a browser that logged in to one account before (`sf_known`): it exempts that
/// browser from the account-wide password limit, so that an attacker guessing the
/// password cannot lock the owner out (OWASP's "device cookies"). It never skips a
/// factor.
///
/// The token is a nonce, its issue time and a MAC (keyed hash) over them, the account
/// id and the account's password epoch: it carries no user data, needs no storage,
/// and stops working when the password changes, after
/// [`KNOWN_BROWSER_TTL_SECS`](crate::flow::KNOWN_BROWSER_TTL_SECS), or when its key
/// leaves the key ring.
///
/// The value is a secret: `Debug` is redacted and the buffer is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct KnownBrowserToken(Zeroizing<String>);

const KNOWN_NONCE: usize = 16;
const KNOWN_LEN: usize = KNOWN_NONCE + 8 + 32;

impl KnownBrowserToken {
    /// The token as the client should keep it (a cookie value).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn issue(keys: &KeyRing, user_id: &str, epoch: u64, now: u64) -> Self {
        let mut raw = Zeroizing::new([0u8; KNOWN_LEN]);
        rand::fill(&mut raw[..KNOWN_NONCE]);
        raw[KNOWN_NONCE..KNOWN_NONCE + 8].copy_from_slice(&now.to_be_bytes());
        let mac = keys.keyed_hash(
            HashPurpose::KnownBrowser,
            &known_data(user_id, epoch, &raw[..KNOWN_NONCE + 8]),
        );
        raw[KNOWN_NONCE + 8..].copy_from_slice(mac.as_bytes());
        KnownBrowserToken(Zeroizing::new(URL_SAFE_NO_PAD.encode(&raw[..])))
    }

    /// Whether `presented` is a token issued for this account and epoch, at most
    /// `max_age` seconds ago (and not in the future). Constant time in the MAC.
    pub(crate) fn verify(
        keys: &KeyRing,
        presented: &str,
        user_id: &str,
        epoch: u64,
        now: u64,
        max_age: u64,
    ) -> bool {
        if presented.len() > 2 * KNOWN_LEN {
            return false;
        }
        let Ok(decoded) = URL_SAFE_NO_PAD.decode(presented.trim()) else {
            return false;
        };
        let decoded = Zeroizing::new(decoded);
        if decoded.len() != KNOWN_LEN {
            return false;
        }
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&decoded[KNOWN_NONCE..KNOWN_NONCE + 8]);
        let issued = u64::from_be_bytes(issued);
        if issued > now || now - issued > max_age {
            return false;
        }
        let mut mac = [0u8; 32];
        mac.copy_from_slice(&decoded[KNOWN_NONCE + 8..]);
        let mac = KeyedHash(mac);
        let data = known_data(user_id, epoch, &decoded[..KNOWN_NONCE + 8]);
        keys.keyed_hashes(HashPurpose::KnownBrowser, &data)
            .iter()
            .fold(false, |found, h| found | (*h == mac))
    }
}

fn known_data(user_id: &str, epoch: u64, nonce_and_time: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(user_id.len() + 1 + 8 + nonce_and_time.len());
    data.extend_from_slice(user_id.as_bytes());
    data.push(0);
    data.extend_from_slice(&epoch.to_be_bytes());
    data.extend_from_slice(nonce_and_time);
    data
}

impl std::fmt::Debug for KnownBrowserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KnownBrowserToken(<redacted>)")
    }
}

/// The keyed hashes under which a token presented by a client may be stored: one per
/// key of the ring, active key first. `None` when the string cannot be a token.
pub(crate) fn lookup_hashes(
    keys: &KeyRing,
    purpose: HashPurpose,
    presented: &str,
) -> Option<Vec<KeyedHash>> {
    let raw = decode(presented)?;
    Some(keys.keyed_hashes(purpose, &raw[..]))
}

/// The keyed hash under which a new token is stored (active key).
pub(crate) fn storage_hash(keys: &KeyRing, purpose: HashPurpose, token: &str) -> Option<KeyedHash> {
    let raw = decode(token)?;
    Some(keys.keyed_hash(purpose, &raw[..]))
}

fn decode(presented: &str) -> Option<Zeroizing<[u8; TOKEN_BYTES]>> {
    if presented.len() > MAX_TOKEN_LEN {
        return None;
    }
    let decoded = Zeroizing::new(URL_SAFE_NO_PAD.decode(presented.trim()).ok()?);
    let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
    if decoded.len() != TOKEN_BYTES {
        return None;
    }
    raw.copy_from_slice(&decoded);
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SealingKey;

    #[test]
    fn tokens_are_256_bit_distinct_and_redacted() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        let dbg = format!("{a:?}");
        assert!(!dbg.contains(a.expose()));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn malformed_tokens_have_no_hash() {
        let keys = KeyRing::new(1, SealingKey::generate());
        for bad in ["", "abc", "!!!!", &"A".repeat(65), &"A".repeat(44)] {
            assert!(lookup_hashes(&keys, HashPurpose::SessionToken, bad).is_none());
        }
        let t = LoginToken::generate();
        let stored = storage_hash(&keys, LoginToken::purpose(), t.expose()).unwrap();
        let looked = lookup_hashes(&keys, LoginToken::purpose(), t.expose()).unwrap();
        assert_eq!(looked[0], stored);
        // A different purpose never finds it.
        let other = lookup_hashes(&keys, HashPurpose::SessionToken, t.expose()).unwrap();
        assert_ne!(other[0], stored);
    }

    #[test]
    fn known_browser_tokens_are_bound_to_account_epoch_key_and_age() {
        let keys = KeyRing::new(1, SealingKey::from_bytes([3; 32]));
        let t = KnownBrowserToken::issue(&keys, "u1", 4, 1000);
        let ok = |k: &KeyRing, tok: &str, u: &str, e: u64, now: u64| {
            KnownBrowserToken::verify(k, tok, u, e, now, 365 * 86_400)
        };
        assert!(ok(&keys, t.expose(), "u1", 4, 1000));
        assert!(ok(&keys, t.expose(), "u1", 4, 1000 + 365 * 86_400));
        assert!(
            !ok(&keys, t.expose(), "u1", 4, 1001 + 365 * 86_400),
            "too old"
        );
        assert!(!ok(&keys, t.expose(), "u1", 4, 999), "from the future");
        assert!(!ok(&keys, t.expose(), "u2", 4, 1000), "another account");
        assert!(
            !ok(&keys, t.expose(), "u1", 5, 1000),
            "after a password change"
        );
        let other = KeyRing::new(1, SealingKey::from_bytes([4; 32]));
        assert!(!ok(&other, t.expose(), "u1", 4, 1000), "another key");
        // A rotated ring that still holds the key accepts it.
        let rotated = KeyRing::new(2, SealingKey::from_bytes([4; 32]))
            .with_key(1, SealingKey::from_bytes([3; 32]))
            .unwrap();
        assert!(ok(&rotated, t.expose(), "u1", 4, 1000));
        // Tampering with the time or the nonce breaks the MAC.
        let mut raw = URL_SAFE_NO_PAD.decode(t.expose()).unwrap();
        raw[20] ^= 1;
        assert!(!ok(&keys, &URL_SAFE_NO_PAD.encode(&raw), "u1", 4, 1000));
        for junk in ["", "!!", &"A".repeat(500)] {
            assert!(!ok(&keys, junk, "u1", 4, 1000));
        }
        assert_eq!(format!("{t:?}"), "KnownBrowserToken(<redacted>)");
        assert_ne!(
            KnownBrowserToken::issue(&keys, "u1", 4, 1000),
            KnownBrowserToken::issue(&keys, "u1", 4, 1000)
        );
    }

    #[test]
    fn hex_ids_are_128_bit() {
        let id = random_hex_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| HEX.contains(&b)));
        assert_ne!(id, random_hex_id());
    }
}
