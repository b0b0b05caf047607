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
    fn hex_ids_are_128_bit() {
        let id = random_hex_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| HEX.contains(&b)));
        assert_ne!(id, random_hex_id());
    }
}
