//! TOTP secrets, and how they are sealed at rest.
//!
//! * [`Secret`] holds the shared key of one authenticator: 160 random bits by default,
//!   base32 in and out (the form authenticator apps show and accept), wiped from memory
//!   when dropped, redacted in `Debug` and `Display`, compared in constant time.
//! * [`KeyRing`] holds the server-side [`SealingKey`]s, each under a `u32` key id, one of
//!   them active. It **seals** a secret for one user into an opaque [`SealedSecret`]
//!   (XChaCha20-Poly1305 with a fresh random nonce, the user id bound in as associated
//!   data) before any store sees it, opens it again, and supports key rotation:
//!   [`KeyRing::needs_reseal`] and [`KeyRing::reseal`].
//! * The same ring computes **keyed hashes** (HMAC-SHA-256 under
//!   a per-purpose subkey) for backup codes and tokens that are stored only as hashes.
//!
//! ```
//! use secondfactor::secret::{KeyRing, SealedSecret, SealingKey, Secret};
//!
//! # fn main() -> secondfactor::Result<()> {
//! // Once, at start-up: the ring from configuration (here a fresh key).
//! let ring = KeyRing::new(1, SealingKey::generate());
//!
//! // Enrollment: a new secret, shown to the user as base32 and stored sealed.
//! let secret = Secret::generate();
//! let shown = secret.to_base32();
//! let row: Vec<u8> = ring.seal("user-42", &secret)?.into_bytes();
//!
//! // Later: read the row back and open it for the same user only.
//! let sealed = SealedSecret::from_bytes(row)?;
//! let opened = ring.open("user-42", &sealed)?;
//! assert_eq!(opened, Secret::from_base32(&shown)?);
//! assert!(ring.open("user-43", &sealed).is_err());
//! # Ok(())
//! # }
//! ```
//!
//! # Sealed format
//!
//! A [`SealedSecret`] is `[version = 1: u8][key id: u32 big-endian][nonce: 24 bytes]
//! [ciphertext][tag: 16 bytes]`. The associated data is the domain label
//! `"secondfactor/totp-secret/v1"`, then the 5 header bytes, then the user id's bytes,
//! so a blob copied into another user's row, or whose header is edited to name another
//! key, fails to open with [`Error::SealedSecretInvalid`].

use std::fmt;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use data_encoding::{BASE32_NOPAD, HEXLOWER, HEXLOWER_PERMISSIVE};
use hmac::{Hmac, Mac};
use rand::rngs::SysRng;
use rand::{CryptoRng, Rng, TryRng};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Longest base32 text [`Secret::from_base32`] looks at (spaces and padding included).
/// The longest secret (64 bytes) is 103 base32 characters, so this leaves ample room for
/// the spaces apps put between groups.
const MAX_BASE32_INPUT: usize = 256;

const RNG_FAILED: &str = "the operating system's random number generator failed";

// ---------------------------------------------------------------------------------------
// Secret
// ---------------------------------------------------------------------------------------

/// The shared secret of one TOTP authenticator.
///
/// Between [`Secret::MIN_BITS`] and [`Secret::MAX_BITS`] bits (whole bytes). The bytes are
/// zeroized when the value is dropped (also each clone's), `Debug` and `Display` print
/// `Secret(<redacted>)`, and `==` compares in constant time for equal lengths.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret {
    bytes: Vec<u8>,
}

impl Secret {
    /// The size of a [generated](Secret::generate) secret: 160 bits, as RFC 4226
    /// recommends and Google Authenticator expects.
    pub const DEFAULT_BITS: usize = 160;
    /// The smallest accepted secret: 128 bits (RFC 4226 section 4, requirement R6).
    pub const MIN_BITS: usize = 128;
    /// The largest accepted secret: 512 bits (one SHA-512 block).
    pub const MAX_BITS: usize = 512;
    /// The smallest secret accepted from an import ([`Secret::from_imported_base32`]):
    /// 80 bits, the key URI format's own example and what apps that store 16 base32
    /// characters have. Such a secret is [weak](Secret::is_weak).
    pub const IMPORT_MIN_BITS: usize = 80;

    const MIN_BYTES: usize = Self::MIN_BITS / 8;
    const MAX_BYTES: usize = Self::MAX_BITS / 8;

    /// A fresh 160-bit secret from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot provide random bytes (as `rand::rng()` would);
    /// use [`Secret::generate_bits`] to get an [`Error::Internal`] instead.
    pub fn generate() -> Secret {
        Self::random(
            Self::DEFAULT_BITS / 8,
            &mut rand::rand_core::UnwrapErr(SysRng),
        )
    }

    /// A fresh secret of `bits` bits from the operating system's random number generator.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless `bits` is a multiple of 8 within
    /// [`MIN_BITS`](Secret::MIN_BITS)`..=`[`MAX_BITS`](Secret::MAX_BITS);
    /// [`Error::Internal`] if the operating system's random number generator fails.
    pub fn generate_bits(bits: usize) -> Result<Secret> {
        let len = Self::check_bits(bits)?;
        let mut bytes = vec![0u8; len];
        SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|_| Error::Internal(RNG_FAILED))?;
        Ok(Secret { bytes })
    }

    /// A fresh secret of `bits` bits drawn from `rng` (tests and special platforms;
    /// prefer [`Secret::generate`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless `bits` is a multiple of 8 within
    /// [`MIN_BITS`](Secret::MIN_BITS)`..=`[`MAX_BITS`](Secret::MAX_BITS).
    pub fn generate_with_rng<R: CryptoRng + ?Sized>(bits: usize, rng: &mut R) -> Result<Secret> {
        let len = Self::check_bits(bits)?;
        Ok(Self::random(len, rng))
    }

    fn check_bits(bits: usize) -> Result<usize> {
        if !bits.is_multiple_of(8) || !(Self::MIN_BITS..=Self::MAX_BITS).contains(&bits) {
            return Err(Error::InvalidConfig(
                "secret size must be a multiple of 8 bits between 128 and 512",
            ));
        }
        Ok(bits / 8)
    }

    fn random<R: CryptoRng + ?Sized>(len: usize, rng: &mut R) -> Secret {
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        Secret { bytes }
    }

    /// A secret from raw bytes (16 to 64 of them).
    ///
    /// # Errors
    ///
    /// `invalid_input` on field `"secret"` if there are fewer than 16 or more than 64 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Secret> {
        if !(Self::MIN_BYTES..=Self::MAX_BYTES).contains(&bytes.len()) {
            return Err(Error::input(
                "secret",
                "must be 128 to 512 bits (16 to 64 bytes)",
            ));
        }
        Ok(Secret {
            bytes: bytes.to_vec(),
        })
    }

    /// A secret from RFC 4648 base32 text, as authenticator apps and `otpauth://` URIs
    /// carry it.
    ///
    /// Lowercase letters and ASCII spaces anywhere are accepted (apps display
    /// `"jbsw y3dp ehpk 3pxp"`), as is correct trailing `=` padding. Anything else is
    /// rejected: other characters, padding in the middle or of the wrong length,
    /// non-zero trailing bits, more than 256 characters of input, and secrets shorter
    /// than 128 or longer than 512 bits.
    ///
    /// ```
    /// use secondfactor::secret::Secret;
    /// let a = Secret::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")?;
    /// let b = Secret::from_base32("jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp")?;
    /// assert_eq!(a, b);
    /// assert!(Secret::from_base32("JBSWY3DP").is_err()); // only 40 bits
    /// # Ok::<(), secondfactor::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `invalid_input` on field `"secret"`.
    pub fn from_base32(s: &str) -> Result<Secret> {
        let bytes = decode_base32(s)?;
        Self::from_bytes(&bytes)
    }

    /// The secret as uppercase base32 without padding, for `otpauth://` URIs and for
    /// showing to the user. The returned string is wiped when dropped.
    pub fn to_base32(&self) -> Zeroizing<String> {
        encode_base32(&self.bytes)
    }

    /// The raw bytes, for computing codes. Do not log or copy them.
    pub fn expose_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The size of the secret in bits.
    pub fn bits(&self) -> usize {
        self.bytes.len() * 8
    }

    /// Whether the secret is shorter than [`MIN_BITS`](Secret::MIN_BITS): only an
    /// imported one can be. Invite its owner to enroll a new authenticator.
    pub fn is_weak(&self) -> bool {
        self.bits() < Self::MIN_BITS
    }

    /// A secret brought from another application: base32 as
    /// [`from_base32`](Secret::from_base32) reads it, but from
    /// [`IMPORT_MIN_BITS`](Secret::IMPORT_MIN_BITS) (80) bits up, and with non-zero
    /// trailing bits ignored, as Python's `base64.b32decode` (and so pyotp) does for
    /// a length that is not a whole number of bytes. Check
    /// [`is_weak`](Secret::is_weak).
    ///
    /// ```
    /// use secondfactor::secret::Secret;
    /// let s = Secret::from_imported_base32("JBSWY3DPEHPK3PXP")?; // 80 bits
    /// assert!(s.is_weak());
    /// assert!(Secret::from_base32("JBSWY3DPEHPK3PXP").is_err()); // not for new secrets
    /// # Ok::<(), secondfactor::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// `invalid_input` on field `"secret"`.
    pub fn from_imported_base32(s: &str) -> Result<Secret> {
        let bytes = decode_base32_with(s, false)?;
        Self::from_imported_bytes(&bytes)
    }

    /// Raw bytes of a secret brought from another application (10 to 64 bytes).
    fn from_imported_bytes(bytes: &[u8]) -> Result<Secret> {
        if !(Self::IMPORT_MIN_BITS / 8..=Self::MAX_BYTES).contains(&bytes.len()) {
            return Err(Error::input(
                "secret",
                "must be 80 to 512 bits (10 to 64 bytes)",
            ));
        }
        Ok(Secret {
            bytes: bytes.to_vec(),
        })
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl PartialEq for Secret {
    /// Constant time in the contents (lengths are not secret).
    fn eq(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl Eq for Secret {}

/// Decodes base32 after normalizing case, spaces and padding; no length rule.
fn decode_base32(s: &str) -> Result<Zeroizing<Vec<u8>>> {
    decode_base32_with(s, true)
}

/// [`decode_base32`], optionally ignoring non-zero trailing bits.
fn decode_base32_with(s: &str, strict_trailing_bits: bool) -> Result<Zeroizing<Vec<u8>>> {
    const BAD: &str = "must be base32 (letters A-Z and digits 2-7)";
    if s.len() > MAX_BASE32_INPUT {
        return Err(Error::input("secret", "too long"));
    }
    let mut clean = Zeroizing::new(Vec::with_capacity(s.len()));
    let mut padding = 0usize;
    for &b in s.as_bytes() {
        match b {
            b' ' => {}
            b'=' => padding += 1,
            b'A'..=b'Z' | b'2'..=b'7' | b'a'..=b'z' if padding == 0 => {
                clean.push(b.to_ascii_uppercase());
            }
            _ => return Err(Error::input("secret", BAD)),
        }
    }
    // Padding, when present, must complete the last 8-character group, as in RFC 4648.
    if padding > 0 && (padding > 6 || !(clean.len() + padding).is_multiple_of(8)) {
        return Err(Error::input("secret", "wrong base32 padding"));
    }
    let len = BASE32_NOPAD
        .decode_len(clean.len())
        .map_err(|_| Error::input("secret", "base32 has a wrong length"))?;
    let mut out = Zeroizing::new(vec![0u8; len]);
    let lenient;
    let encoding = if strict_trailing_bits {
        &BASE32_NOPAD
    } else {
        let mut spec = BASE32_NOPAD.specification();
        spec.check_trailing_bits = false;
        lenient = spec
            .encoding()
            .map_err(|_| Error::Internal("base32 specification"))?;
        &lenient
    };
    let n = encoding
        .decode_mut(&clean, &mut out)
        .map_err(|_| Error::input("secret", BAD))?;
    out.truncate(n);
    Ok(out)
}

/// Uppercase base32 without padding, into a buffer that is wiped on drop.
fn encode_base32(bytes: &[u8]) -> Zeroizing<String> {
    // Reserve the exact size up front so the buffer never reallocates (which would
    // leave an unwiped copy behind).
    let mut out = Zeroizing::new(String::with_capacity(BASE32_NOPAD.encode_len(bytes.len())));
    BASE32_NOPAD.encode_append(bytes, &mut out);
    out
}

// ---------------------------------------------------------------------------------------
// SealingKey
// ---------------------------------------------------------------------------------------

/// A 256-bit server-side key: it seals TOTP secrets and keys the hashes of backup codes
/// and tokens. Keep it out of the database (environment, secret manager, KMS).
///
/// Zeroized on drop; `Debug` prints `SealingKey(<redacted>)`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SealingKey {
    bytes: [u8; 32],
}

impl SealingKey {
    /// A fresh random key from the operating system's random number generator, e.g. to
    /// print once with [`SealingKey::to_base64`] and put into configuration.
    ///
    /// # Panics
    ///
    /// Only if the operating system cannot provide random bytes.
    pub fn generate() -> Self {
        let mut key = SealingKey { bytes: [0u8; 32] };
        rand::rand_core::UnwrapErr(SysRng).fill_bytes(&mut key.bytes);
        key
    }

    /// A key from its 32 bytes. The caller should wipe its own copy (e.g. with
    /// [`zeroize::Zeroize`]).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SealingKey { bytes }
    }

    /// A key from standard base64 (RFC 4648 section 4 alphabet, `+` and `/`), with or
    /// without `=` padding; surrounding ASCII whitespace (a trailing newline from a file
    /// or environment variable) is ignored.
    ///
    /// ```
    /// use secondfactor::secret::SealingKey;
    /// let key = SealingKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
    /// assert!(SealingKey::from_base64("AAECAwQ=").is_err()); // only 5 bytes
    /// # Ok::<(), secondfactor::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] (keys come from configuration) unless the text decodes
    /// to exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Self> {
        use base64::Engine as _;
        const BAD: &str = "sealing key must be exactly 32 bytes in standard base64";
        let s = s.trim_ascii();
        // 32 bytes are 43 characters unpadded, 44 padded.
        if s.len() > 44 {
            return Err(Error::InvalidConfig(BAD));
        }
        let mut buf = Zeroizing::new([0u8; 48]);
        let n = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
            .decode_slice(s, buf.as_mut_slice())
            .map_err(|_| Error::InvalidConfig(BAD))?;
        let Some(bytes) = buf.get(..n).and_then(|b| <&[u8; 32]>::try_from(b).ok()) else {
            return Err(Error::InvalidConfig(BAD));
        };
        Ok(SealingKey { bytes: *bytes })
    }

    /// The key as padded standard base64, for configuration. Wiped on drop.
    pub fn to_base64(&self) -> Zeroizing<String> {
        use base64::Engine as _;
        let mut out = Zeroizing::new(String::with_capacity(44));
        base64::engine::general_purpose::STANDARD.encode_string(self.bytes, &mut out);
        out
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------
// Keyed hashes
// ---------------------------------------------------------------------------------------

/// What a [keyed hash](KeyRing::keyed_hash) is for. Each purpose has its own subkey, so
/// a hash made for one purpose never matches a lookup for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum HashPurpose {
    /// One-time backup (recovery) codes.
    BackupCode,
    /// "Remember this device" tokens.
    DeviceToken,
    /// Session tokens.
    SessionToken,
    /// Pending-login tokens (between the password and the second factor).
    LoginToken,
    /// Known-browser tokens: the MAC that proves a browser logged in to an account
    /// before (it exempts that browser from the account-wide password limit).
    KnownBrowser,
}

impl HashPurpose {
    #[cfg(test)]
    const ALL: [HashPurpose; 5] = [
        HashPurpose::BackupCode,
        HashPurpose::DeviceToken,
        HashPurpose::SessionToken,
        HashPurpose::LoginToken,
        HashPurpose::KnownBrowser,
    ];

    /// The stable label mixed into this purpose's subkey derivation.
    pub(crate) fn label(self) -> &'static str {
        match self {
            HashPurpose::BackupCode => "backup-code",
            HashPurpose::DeviceToken => "device-token",
            HashPurpose::SessionToken => "session-token",
            HashPurpose::LoginToken => "login-token",
            HashPurpose::KnownBrowser => "known-browser",
        }
    }
}

/// An HMAC-SHA-256 keyed hash, as stored in place of a backup code or token.
///
/// `==` is constant time; `Debug` prints only the first 4 bytes in hex.
#[derive(Clone, Copy)]
pub struct KeyedHash(pub [u8; 32]);

impl KeyedHash {
    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex (64 characters), e.g. for a text column.
    pub fn to_hex(&self) -> String {
        HEXLOWER.encode(&self.0)
    }

    /// Parses 64 hex digits (either case).
    ///
    /// # Errors
    ///
    /// `invalid_input` on field `"keyed_hash"` unless the input is exactly 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self> {
        const BAD: &str = "must be 64 hex digits";
        if s.len() != 64 {
            return Err(Error::input("keyed_hash", BAD));
        }
        let mut out = [0u8; 32];
        HEXLOWER_PERMISSIVE
            .decode_mut(s.as_bytes(), &mut out)
            .map_err(|_| Error::input("keyed_hash", BAD))?;
        Ok(KeyedHash(out))
    }
}

impl PartialEq for KeyedHash {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for KeyedHash {}

impl std::hash::Hash for KeyedHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for KeyedHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, ..] = self.0;
        write!(f, "KeyedHash({a:02x}{b:02x}{c:02x}{d:02x}…)")
    }
}

/// An HMAC-SHA-256 state with `key` already absorbed (`key.len() <= 64`).
///
/// HMAC zero-pads keys shorter than the 64-byte block (RFC 2104 section 2), which is
/// what the padded block here is; unlike `new_from_slice` this has no error path.
fn prepared_hmac(key: &[u8]) -> HmacSha256 {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    for (dst, src) in block.iter_mut().zip(key) {
        *dst = *src;
    }
    let mac = <HmacSha256 as KeyInit>::new(&block);
    block.as_mut_slice().zeroize();
    mac
}

// ---------------------------------------------------------------------------------------
// SealedSecret
// ---------------------------------------------------------------------------------------

const VERSION: u8 = 1;
const HEADER_LEN: usize = 5;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const DOMAIN_LABEL: &[u8] = b"secondfactor/totp-secret/v1";
const SEALED_MIN_LEN: usize = HEADER_LEN + NONCE_LEN + Secret::IMPORT_MIN_BITS / 8 + TAG_LEN;
const SEALED_MAX_LEN: usize = HEADER_LEN + NONCE_LEN + Secret::MAX_BYTES + TAG_LEN;
/// The version byte of a sealed *record* (a WebAuthn credential, say) rather than a
/// TOTP secret: its own domain label, so neither ever opens as the other.
const VERSION_RECORD: u8 = 2;
const RECORD_DOMAIN_LABEL: &[u8] = b"secondfactor/sealed-record/v1";
/// The longest plaintext [`KeyRing::seal_record`] takes.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
const RECORD_MAX_LEN: usize = HEADER_LEN + NONCE_LEN + MAX_RECORD_BYTES + TAG_LEN;

/// A TOTP secret sealed by a [`KeyRing`] for one user: an opaque blob to store as is.
///
/// Layout: `[version = 1: u8][key id: u32 BE][nonce: 24 bytes][ciphertext][tag: 16 bytes]`
/// (55 to 109 bytes; below 61 only for an imported [weak](Secret::is_weak) secret).
/// `Debug` shows the key id and length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    key_id: u32,
    bytes: Vec<u8>,
}

impl SealedSecret {
    /// Wraps a blob read back from storage, after structural checks only (version and
    /// length); whether it opens is up to [`KeyRing::open`].
    ///
    /// # Errors
    ///
    /// [`Error::SealedSecretInvalid`] for an unknown version or a length outside
    /// 55..=109 bytes (truncated or padded); a sealed record (version 2,
    /// [`KeyRing::seal_record`]) may be up to 16 KiB longer.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let len_ok = match bytes.first() {
            Some(&VERSION) => (SEALED_MIN_LEN..=SEALED_MAX_LEN).contains(&bytes.len()),
            Some(&VERSION_RECORD) => {
                (HEADER_LEN + NONCE_LEN + TAG_LEN..=RECORD_MAX_LEN).contains(&bytes.len())
            }
            _ => false,
        };
        if !len_ok {
            return Err(Error::SealedSecretInvalid);
        }
        match bytes.as_slice() {
            [VERSION | VERSION_RECORD, k0, k1, k2, k3, ..] => {
                let key_id = u32::from_be_bytes([*k0, *k1, *k2, *k3]);
                Ok(SealedSecret { key_id, bytes })
            }
            _ => Err(Error::SealedSecretInvalid),
        }
    }

    /// The blob, to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The blob, to store.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The id of the key it was sealed under.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Whether it is a sealed record ([`KeyRing::seal_record`], a WebAuthn
    /// credential) rather than a TOTP secret.
    pub fn is_record(&self) -> bool {
        self.bytes.first() == Some(&VERSION_RECORD)
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// KeyRing
// ---------------------------------------------------------------------------------------

/// One key of the ring, with everything derived from it prepared once.
#[derive(Clone)]
struct KeyEntry {
    id: u32,
    /// XChaCha20-Poly1305 keyed with the sealing key (wiped on drop).
    cipher: XChaCha20Poly1305,
    /// One prepared HMAC state per [`HashPurpose`], keyed with that purpose's subkey.
    hashers: PurposeHashers,
}

/// The prepared per-purpose HMAC states of one key (wiped on drop). One named field per
/// purpose, selected by an exhaustive `match`, so a new purpose cannot be added without
/// its own subkey.
#[derive(Clone)]
struct PurposeHashers {
    backup_code: HmacSha256,
    device_token: HmacSha256,
    session_token: HmacSha256,
    login_token: HmacSha256,
    known_browser: HmacSha256,
}

impl PurposeHashers {
    fn new(master_key: &[u8; 32]) -> Self {
        let master = prepared_hmac(master_key);
        let derive = |purpose: HashPurpose| {
            let subkey: Zeroizing<[u8; 32]> = Zeroizing::new(
                master
                    .clone()
                    .chain_update(b"secondfactor/v1/keyed-hash/")
                    .chain_update(purpose.label().as_bytes())
                    .finalize()
                    .into_bytes()
                    .into(),
            );
            prepared_hmac(subkey.as_slice())
        };
        PurposeHashers {
            backup_code: derive(HashPurpose::BackupCode),
            device_token: derive(HashPurpose::DeviceToken),
            session_token: derive(HashPurpose::SessionToken),
            login_token: derive(HashPurpose::LoginToken),
            known_browser: derive(HashPurpose::KnownBrowser),
        }
    }

    fn get(&self, purpose: HashPurpose) -> &HmacSha256 {
        match purpose {
            HashPurpose::BackupCode => &self.backup_code,
            HashPurpose::DeviceToken => &self.device_token,
            HashPurpose::SessionToken => &self.session_token,
            HashPurpose::LoginToken => &self.login_token,
            HashPurpose::KnownBrowser => &self.known_browser,
        }
    }
}

impl KeyEntry {
    fn new(id: u32, key: SealingKey) -> Self {
        let cipher = <XChaCha20Poly1305 as KeyInit>::new((&key.bytes).into());
        KeyEntry {
            id,
            cipher,
            hashers: PurposeHashers::new(&key.bytes),
        }
    }

    fn hash(&self, purpose: HashPurpose, data: &[u8]) -> KeyedHash {
        let mac = self.hashers.get(purpose).clone().chain_update(data);
        KeyedHash(mac.finalize().into_bytes().into())
    }
}

/// The server's sealing keys, by `u32` key id, one of them active.
///
/// New secrets are sealed and new hashes made under the active key; blobs sealed under
/// any key in the ring still open.
///
/// # Rotation, truthfully
///
/// 1. Add the new key with [`with_key`](KeyRing::with_key) on every instance, deploy,
///    then make it active with [`set_active`](KeyRing::set_active) (or build the ring
///    with it active).
/// 2. TOTP secrets move by themselves: every successful second factor reseals the
///    account's authenticators under the active key
///    ([`needs_reseal`](KeyRing::needs_reseal) / [`reseal`](KeyRing::reseal)).
/// 3. Backup codes cannot move: the server never kept them, only their keyed hashes,
///    so they keep working only while the key that made them is in the ring. The
///    account status says when a set was made under another key
///    (`TwoFactorStatus::backup_codes_need_regeneration`): ask those users to make new
///    codes. Tokens (sessions, pending logins, trusted devices, known browsers) made
///    under the old key end when it leaves the ring; their users log in again.
/// 4. Drop the old key only once no account needs it. If you drop it early, an
///    authenticator still sealed under it is skipped and reported
///    (`Event::AuthenticatorUnreadable`, `AuthenticatorInfo::readable == false`), never
///    an error for the whole account: the user logs in with another authenticator or a
///    backup code made under a key still in the ring, and sets the phone up again.
///
/// # Keyed hashes
///
/// Backup codes and tokens are stored only as [`KeyedHash`]es: HMAC-SHA-256 under a
/// subkey derived per key and per purpose,
/// `subkey = HMAC-SHA-256(key, "secondfactor/v1/keyed-hash/" + purpose label)`, then
/// `hash = HMAC-SHA-256(subkey, data)`. Because the hash is keyed, a leaked table of
/// hashes cannot be brute-forced offline without the server key (backup codes have
/// only ~60 bits, a plain hash would not protect them); because it is deterministic
/// (no per-row salt), a lookup is a single indexed query. The subkey states are
/// prepared when a key is added, so hashing costs two SHA-256 compressions or so.
/// After rotation, the core looks a value up under every key in the ring.
///
/// `Debug` lists the key ids only. All key material is wiped when the ring is dropped.
#[derive(Clone)]
pub struct KeyRing {
    active: KeyEntry,
    others: Vec<KeyEntry>,
}

impl KeyRing {
    /// A ring holding one key, which is active.
    pub fn new(active_id: u32, key: SealingKey) -> Self {
        KeyRing {
            active: KeyEntry::new(active_id, key),
            others: Vec::new(),
        }
    }

    /// Adds another key (an older one still needed to open existing rows, or a newer one
    /// to activate later). The active key does not change.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the ring already has a key with this id.
    pub fn with_key(mut self, id: u32, key: SealingKey) -> Result<Self> {
        if self.contains(id) {
            return Err(Error::InvalidConfig("duplicate key id in key ring"));
        }
        self.others.push(KeyEntry::new(id, key));
        Ok(self)
    }

    /// Makes the key with this id the active one.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKey`] if the ring has no such key.
    pub fn set_active(&mut self, id: u32) -> Result<()> {
        if self.active.id == id {
            return Ok(());
        }
        match self.others.iter_mut().find(|e| e.id == id) {
            Some(entry) => {
                std::mem::swap(&mut self.active, entry);
                Ok(())
            }
            None => Err(Error::UnknownKey { key_id: id }),
        }
    }

    /// The id of the active key.
    pub fn active_id(&self) -> u32 {
        self.active.id
    }

    /// Whether the ring holds a key with this id.
    pub fn contains(&self, id: u32) -> bool {
        self.entry(id).is_some()
    }

    /// The ids of all keys, active first.
    pub fn key_ids(&self) -> Vec<u32> {
        self.entries().map(|e| e.id).collect()
    }

    fn entries(&self) -> impl Iterator<Item = &KeyEntry> {
        std::iter::once(&self.active).chain(self.others.iter())
    }

    fn entry(&self, id: u32) -> Option<&KeyEntry> {
        self.entries().find(|e| e.id == id)
    }

    /// Seals `secret` for `user_id` under the active key, with a fresh random nonce.
    ///
    /// # Errors
    ///
    /// [`Error::Internal`] if the operating system's random number generator fails.
    pub fn seal(&self, user_id: &str, secret: &Secret) -> Result<SealedSecret> {
        let mut nonce = [0u8; NONCE_LEN];
        SysRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| Error::Internal(RNG_FAILED))?;
        self.seal_with_nonce(user_id, secret, nonce)
    }

    fn seal_with_nonce(
        &self,
        user_id: &str,
        secret: &Secret,
        nonce: [u8; NONCE_LEN],
    ) -> Result<SealedSecret> {
        let entry = &self.active;
        let header = header(entry.id);
        let pt_len = secret.bytes.len();
        let mut blob = Vec::with_capacity(HEADER_LEN + NONCE_LEN + pt_len + TAG_LEN);
        blob.extend_from_slice(&header);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&secret.bytes);
        let body = blob.get_mut(HEADER_LEN + NONCE_LEN..).unwrap_or_default();
        match entry.cipher.encrypt_inout_detached(
            &XNonce::from(nonce),
            &aad(&header, user_id),
            body.into(),
        ) {
            Ok(tag) => {
                blob.extend_from_slice(&tag);
                SealedSecret::from_bytes(blob)
            }
            Err(_) => {
                blob.zeroize();
                Err(Error::Internal("sealing failed"))
            }
        }
    }

    /// Opens a secret sealed for `user_id` under any key of the ring.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKey`] if the blob names a key id the ring does not hold;
    /// [`Error::SealedSecretInvalid`] if it does not authenticate: tampered, sealed for
    /// another user, or its header edited.
    pub fn open(&self, user_id: &str, sealed: &SealedSecret) -> Result<Secret> {
        if sealed.is_record() {
            return Err(Error::SealedSecretInvalid);
        }
        let entry = self.entry(sealed.key_id).ok_or(Error::UnknownKey {
            key_id: sealed.key_id,
        })?;
        let (header, rest) = sealed
            .bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(Error::SealedSecretInvalid)?;
        let (nonce, rest) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(Error::SealedSecretInvalid)?;
        let (ciphertext, tag) = rest
            .split_last_chunk::<TAG_LEN>()
            .ok_or(Error::SealedSecretInvalid)?;
        // Decrypt on the stack (wiped on drop): the only heap copy is the Secret's own.
        let mut buffer = Zeroizing::new([0u8; Secret::MAX_BYTES]);
        let plain = buffer
            .get_mut(..ciphertext.len())
            .ok_or(Error::SealedSecretInvalid)?;
        plain.copy_from_slice(ciphertext);
        entry
            .cipher
            .decrypt_inout_detached(
                &XNonce::from(*nonce),
                &aad(header, user_id),
                (&mut *plain).into(),
                &Tag::from(*tag),
            )
            .map_err(|_| Error::SealedSecretInvalid)?;
        // Imported secrets may be shorter than new ones (see Secret::is_weak).
        Secret::from_imported_bytes(plain).map_err(|_| Error::SealedSecretInvalid)
    }

    /// Opens `sealed` and seals the secret again under the active key (key rotation).
    /// A sealed record ([`seal_record`](Self::seal_record)) stays a record.
    ///
    /// # Errors
    ///
    /// As [`KeyRing::open`] and [`KeyRing::seal`].
    pub fn reseal(&self, user_id: &str, sealed: &SealedSecret) -> Result<SealedSecret> {
        if sealed.is_record() {
            let record = self.open_record(user_id, sealed)?;
            return self.seal_record(user_id, &record);
        }
        let secret = self.open(user_id, sealed)?;
        self.seal(user_id, &secret)
    }

    /// Seals a record of up to [`MAX_RECORD_BYTES`] (a serialized WebAuthn
    /// credential or ceremony state) for `user_id` under the active key. It has its
    /// own version byte and domain label: [`open`](Self::open) refuses it and
    /// [`open_record`](Self::open_record) refuses a TOTP secret.
    ///
    /// # Errors
    ///
    /// `invalid_input` on field `"record"` when it is too long; [`Error::Internal`]
    /// if the random number generator fails.
    pub fn seal_record(&self, user_id: &str, record: &[u8]) -> Result<SealedSecret> {
        if record.len() > MAX_RECORD_BYTES {
            return Err(Error::input("record", "is too long to seal"));
        }
        let mut nonce = [0u8; NONCE_LEN];
        SysRng
            .try_fill_bytes(&mut nonce)
            .map_err(|_| Error::Internal(RNG_FAILED))?;
        let entry = &self.active;
        let header = record_header(entry.id);
        let mut blob = Vec::with_capacity(HEADER_LEN + NONCE_LEN + record.len() + TAG_LEN);
        blob.extend_from_slice(&header);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(record);
        let body = blob.get_mut(HEADER_LEN + NONCE_LEN..).unwrap_or_default();
        match entry.cipher.encrypt_inout_detached(
            &XNonce::from(nonce),
            &record_aad(&header, user_id),
            body.into(),
        ) {
            Ok(tag) => {
                blob.extend_from_slice(&tag);
                SealedSecret::from_bytes(blob)
            }
            Err(_) => {
                blob.zeroize();
                Err(Error::Internal("sealing failed"))
            }
        }
    }

    /// Opens a record sealed by [`seal_record`](Self::seal_record) for `user_id`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); a TOTP secret is [`Error::SealedSecretInvalid`].
    pub fn open_record(&self, user_id: &str, sealed: &SealedSecret) -> Result<Zeroizing<Vec<u8>>> {
        if !sealed.is_record() {
            return Err(Error::SealedSecretInvalid);
        }
        let entry = self.entry(sealed.key_id).ok_or(Error::UnknownKey {
            key_id: sealed.key_id,
        })?;
        let (header, rest) = sealed
            .bytes
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(Error::SealedSecretInvalid)?;
        let (nonce, rest) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(Error::SealedSecretInvalid)?;
        let (ciphertext, tag) = rest
            .split_last_chunk::<TAG_LEN>()
            .ok_or(Error::SealedSecretInvalid)?;
        let mut plain = Zeroizing::new(ciphertext.to_vec());
        entry
            .cipher
            .decrypt_inout_detached(
                &XNonce::from(*nonce),
                &record_aad(header, user_id),
                plain.as_mut_slice().into(),
                &Tag::from(*tag),
            )
            .map_err(|_| Error::SealedSecretInvalid)?;
        Ok(plain)
    }

    /// Whether `sealed` was sealed under another key than the active one.
    pub fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        sealed.key_id != self.active.id
    }

    /// The keyed hash of `data` for `purpose` under the active key (to store).
    pub(crate) fn keyed_hash(&self, purpose: HashPurpose, data: &[u8]) -> KeyedHash {
        self.active.hash(purpose, data)
    }

    /// The keyed hashes of `data` for `purpose` under every key, the active key's first
    /// (to look up values stored before a rotation).
    pub(crate) fn keyed_hashes(&self, purpose: HashPurpose, data: &[u8]) -> Vec<KeyedHash> {
        self.entries().map(|e| e.hash(purpose, data)).collect()
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("active_id", &self.active.id)
            .field("key_ids", &self.key_ids())
            .finish()
    }
}

/// All key material in the ring (cipher keys and HMAC states) zeroizes on drop, through
/// the `zeroize` features of `chacha20poly1305` and `sha2`.
impl ZeroizeOnDrop for KeyRing {}

// Compile-time guard for the claim above: fails to build if either feature goes away.
const _: () = {
    fn wipes_on_drop<T: ZeroizeOnDrop>() {}
    #[allow(dead_code)]
    fn key_ring_fields_wipe_on_drop() {
        wipes_on_drop::<XChaCha20Poly1305>();
        // `Hmac<Sha256>` has no `ZeroizeOnDrop` marker of its own, but both of its parts,
        // the two SHA-256 cores (inner and outer key state) and the block buffer, wipe
        // themselves on drop.
        wipes_on_drop::<<Sha256 as hmac::EagerHash>::Core>();
        wipes_on_drop::<hmac::digest::block_api::Buffer<hmac::block_api::HmacCore<Sha256>>>();
        wipes_on_drop::<SealingKey>();
    }
};

fn header(key_id: u32) -> [u8; HEADER_LEN] {
    let [a, b, c, d] = key_id.to_be_bytes();
    [VERSION, a, b, c, d]
}

fn record_header(key_id: u32) -> [u8; HEADER_LEN] {
    let [a, b, c, d] = key_id.to_be_bytes();
    [VERSION_RECORD, a, b, c, d]
}

/// Associated data of a sealed record: its own domain label, header, user id.
fn record_aad(header: &[u8; HEADER_LEN], user_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(RECORD_DOMAIN_LABEL.len() + HEADER_LEN + user_id.len());
    aad.extend_from_slice(RECORD_DOMAIN_LABEL);
    aad.extend_from_slice(header);
    aad.extend_from_slice(user_id.as_bytes());
    aad
}

/// Associated data: domain label, header (version, key id), user id.
fn aad(header: &[u8; HEADER_LEN], user_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(DOMAIN_LABEL.len() + HEADER_LEN + user_id.len());
    aad.extend_from_slice(DOMAIN_LABEL);
    aad.extend_from_slice(header);
    aad.extend_from_slice(user_id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// RFC 6238 appendix B's SHA-1 test secret, ASCII "12345678901234567890".
    const RFC6238_SECRET: &[u8] = b"12345678901234567890";
    const RFC6238_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn key(byte: u8) -> SealingKey {
        SealingKey::from_bytes([byte; 32])
    }

    fn secret() -> Secret {
        Secret::from_bytes(RFC6238_SECRET).unwrap()
    }

    fn is_input_error(r: Result<Secret>) -> bool {
        matches!(
            r,
            Err(Error::InvalidInput {
                field: "secret",
                ..
            })
        )
    }

    fn hex(bytes: &[u8]) -> String {
        HEXLOWER.encode(bytes)
    }

    // --- base32 ------------------------------------------------------------------------

    /// RFC 4648 section 10 ("Test Vectors"), base32 part:
    ///
    /// ```text
    /// BASE32("") = ""
    /// BASE32("f") = "MY======"
    /// BASE32("fo") = "MZXQ===="
    /// BASE32("foo") = "MZXW6==="
    /// BASE32("foob") = "MZXW6YQ="
    /// BASE32("fooba") = "MZXW6YTB"
    /// BASE32("foobar") = "MZXW6YTBOI======"
    /// ```
    ///
    /// These are shorter than any accepted secret, so they exercise the codec below the
    /// length rule: padded and unpadded decoding, and unpadded encoding.
    #[test]
    fn base32_rfc4648_section10_vectors() {
        let vectors: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "MY======"),
            (b"fo", "MZXQ===="),
            (b"foo", "MZXW6==="),
            (b"foob", "MZXW6YQ="),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI======"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(
                decode_base32(encoded).unwrap().as_slice(),
                plain,
                "{encoded}"
            );
            let unpadded = encoded.trim_end_matches('=');
            assert_eq!(decode_base32(unpadded).unwrap().as_slice(), plain);
            assert_eq!(
                decode_base32(&unpadded.to_lowercase()).unwrap().as_slice(),
                plain
            );
            assert_eq!(encode_base32(plain).as_str(), unpadded);
        }
    }

    /// RFC 6238 appendix B secret "12345678901234567890" in base32, as used by every
    /// TOTP implementation's test suite.
    #[test]
    fn base32_of_rfc6238_secret() {
        let s = Secret::from_base32(RFC6238_BASE32).unwrap();
        assert_eq!(s.expose_bytes(), RFC6238_SECRET);
        assert_eq!(s.to_base32().as_str(), RFC6238_BASE32);
        assert_eq!(s.bits(), 160);
    }

    #[test]
    fn base32_accepts_lowercase_spaces_and_padding() {
        let want = secret();
        for text in [
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "  GEZDGNBVGY3TQOJQ GEZDGNBVGY3TQOJQ  ",
            "G E Z D G N B V G Y 3 T Q O J Q G E Z D G N B V G Y 3 T Q O J Q",
        ] {
            assert_eq!(Secret::from_base32(text).unwrap(), want, "{text:?}");
        }
        // 17 bytes: 28 characters, padded to 32.
        let s17 = Secret::from_bytes(&[0xA5; 17]).unwrap();
        let text = s17.to_base32();
        assert_eq!(text.len(), 28);
        let padded = format!("{}====", text.as_str());
        assert_eq!(Secret::from_base32(&padded).unwrap(), s17);
        assert_eq!(Secret::from_base32(&format!("{padded} ")).unwrap(), s17);
        assert_eq!(Secret::from_base32(text.as_str()).unwrap(), s17);
    }

    #[test]
    fn base32_rejects_bad_characters_and_padding() {
        let good = RFC6238_BASE32;
        for bad in [
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1", // '1' is not base32
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ0",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ8",
            "GEZDGNBV-GY3TQOJQ-GEZDGNBV-GY3TQOJQ",    // hyphens
            "GEZDGNBV\tGY3TQOJQGEZDGNBVGY3TQOJQ",     // tab
            "GEZDGNBV\nGY3TQOJQGEZDGNBVGY3TQOJQ",     // newline
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\u{a0}", // non-ASCII space
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJÉ",
            "GEZDGNBVGY3TQOJQ=GEZDGNBVGY3TQOJQ", // padding in the middle
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ========", // padding not needed
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZ=====", // wrong padding amount
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQG", // 33 chars: impossible length
        ] {
            assert!(is_input_error(Secret::from_base32(bad)), "{bad:?}");
        }
        // Non-zero trailing bits: 17 bytes are 28 characters with 4 spare bits; a
        // non-canonical last character must be rejected, not silently truncated.
        let text = Secret::from_bytes(&[0; 17]).unwrap().to_base32();
        assert!(text.ends_with('A'));
        let non_canonical = format!("{}B", &text[..27]);
        assert!(is_input_error(Secret::from_base32(&non_canonical)));
        assert!(Secret::from_base32(good).is_ok());
    }

    #[test]
    fn imported_secrets_go_down_to_80_bits_are_weak_and_seal() {
        let s = Secret::from_imported_base32("jbsw y3dp ehpk 3pxp").unwrap();
        assert_eq!(s.bits(), 80);
        assert!(s.is_weak());
        assert!(!Secret::generate().is_weak());
        let strong = Secret::from_imported_base32("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        assert!(!strong.is_weak());
        // 72 bits and 520 bits are still refused.
        assert!(is_input_error(Secret::from_imported_base32(
            &encode_base32(&[7; 9])
        )));
        assert!(is_input_error(Secret::from_imported_base32(
            &encode_base32(&[7; 65])
        )));
        // Non-zero trailing bits are ignored, as Python's b32decode does: 26
        // characters carry 130 bits, the last 2 of which are dropped.
        let odd = "JBSWY3DPEHPK3PXPJBSWY3DPEH";
        assert!(Secret::from_base32(odd).is_err());
        let lenient = Secret::from_imported_base32(odd).unwrap();
        assert_eq!(lenient.bits(), 128);
        // A weak secret seals and opens like any other.
        let ring = KeyRing::new(1, SealingKey::generate());
        let sealed = ring.seal("u1", &s).unwrap();
        assert_eq!(ring.open("u1", &sealed).unwrap(), s);
    }

    #[test]
    fn base32_rejects_short_long_and_overlong_input() {
        assert!(is_input_error(Secret::from_base32("")));
        assert!(is_input_error(Secret::from_base32("    ")));
        assert!(is_input_error(Secret::from_base32("JBSWY3DPEHPK3PXP"))); // 80 bits
        // 15 bytes = 120 bits: one byte short.
        let short = encode_base32(&[7; 15]);
        assert!(is_input_error(Secret::from_base32(&short)));
        // 65 bytes: one byte too many.
        let long = encode_base32(&[7; 65]);
        assert!(is_input_error(Secret::from_base32(&long)));
        // 64 bytes with spaces every 4 characters still fit the input bound.
        let max = encode_base32(&[7; 64]);
        let spaced: String = max
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            Secret::from_base32(&spaced).unwrap().expose_bytes(),
            [7; 64]
        );
        // Input longer than the bound is rejected before decoding, even if it is only
        // spaces around a valid secret.
        let padded = format!("{}{}", " ".repeat(MAX_BASE32_INPUT), RFC6238_BASE32);
        assert!(is_input_error(Secret::from_base32(&padded)));
        let within = format!(
            "{}{}",
            " ".repeat(MAX_BASE32_INPUT - RFC6238_BASE32.len()),
            RFC6238_BASE32
        );
        assert_eq!(Secret::from_base32(&within).unwrap(), secret());
    }

    proptest! {
        #[test]
        fn base32_round_trip(bytes in proptest::collection::vec(any::<u8>(), 16..=64)) {
            let s = Secret::from_bytes(&bytes).unwrap();
            let text = s.to_base32();
            prop_assert!(text.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
            prop_assert_eq!(Secret::from_base32(&text).unwrap().expose_bytes().to_vec(), bytes.clone());
            // As an app would display it: lowercase in groups of four.
            let shown: Vec<String> = text
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8(c.to_ascii_lowercase()).unwrap())
                .collect();
            prop_assert_eq!(
                Secret::from_base32(&shown.join(" ")).unwrap().expose_bytes().to_vec(),
                bytes
            );
        }

        #[test]
        fn base32_never_panics(s in "\\PC{0,300}") {
            let _ = Secret::from_base32(&s);
        }

        #[test]
        fn base32_alphabet_soup_never_panics(s in "[A-Za-z2-7= ]{0,120}") {
            if let Ok(secret) = Secret::from_base32(&s) {
                prop_assert!((16..=64).contains(&secret.expose_bytes().len()));
            }
        }

        #[test]
        fn sealed_from_arbitrary_bytes_never_opens(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let ring = KeyRing::new(1, key(1));
            if let Ok(sealed) = SealedSecret::from_bytes(bytes) {
                prop_assert!(ring.open("u", &sealed).is_err());
            }
        }
    }

    // --- Secret ------------------------------------------------------------------------

    #[test]
    fn from_bytes_length_rule() {
        for len in [0, 1, 15, 65, 100] {
            assert!(is_input_error(Secret::from_bytes(&vec![1; len])), "{len}");
        }
        for len in [16, 20, 32, 64] {
            assert_eq!(Secret::from_bytes(&vec![1; len]).unwrap().bits(), len * 8);
        }
    }

    #[test]
    fn generated_secrets_have_the_right_length_and_differ() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_eq!(a.expose_bytes().len(), Secret::DEFAULT_BITS / 8);
        assert_eq!(a.bits(), 160);
        assert_ne!(a, b);
        assert_ne!(a.expose_bytes(), [0; 20]);
        for bits in [128, 136, 160, 256, 512] {
            let s = Secret::generate_bits(bits).unwrap();
            assert_eq!(s.expose_bytes().len(), bits / 8);
            assert_ne!(s, Secret::generate_bits(bits).unwrap());
        }
        let many: std::collections::HashSet<Vec<u8>> = (0..100)
            .map(|_| Secret::generate().expose_bytes().to_vec())
            .collect();
        assert_eq!(many.len(), 100);
    }

    #[test]
    fn generate_bits_rejects_bad_sizes() {
        let mut rng = StdRng::seed_from_u64(1);
        for bits in [0, 8, 120, 127, 129, 161, 520, 1024, usize::MAX] {
            assert!(
                matches!(Secret::generate_bits(bits), Err(Error::InvalidConfig(_))),
                "{bits}"
            );
            assert!(matches!(
                Secret::generate_with_rng(bits, &mut rng),
                Err(Error::InvalidConfig(_))
            ));
        }
    }

    #[test]
    fn generate_with_rng_uses_the_given_rng() {
        let a = Secret::generate_with_rng(160, &mut StdRng::seed_from_u64(7)).unwrap();
        let b = Secret::generate_with_rng(160, &mut StdRng::seed_from_u64(7)).unwrap();
        let c = Secret::generate_with_rng(160, &mut StdRng::seed_from_u64(8)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.expose_bytes().len(), 20);
        // Works through a trait object as well (`?Sized`).
        let mut boxed: Box<dyn rand::CryptoRng> = Box::new(StdRng::seed_from_u64(7));
        assert_eq!(Secret::generate_with_rng(160, boxed.as_mut()).unwrap(), a);
    }

    #[test]
    fn secret_equality() {
        let a = Secret::from_bytes(&[1; 20]).unwrap();
        assert_eq!(a, a.clone());
        let mut other = [1; 20];
        other[19] = 2;
        assert_ne!(a, Secret::from_bytes(&other).unwrap());
        assert_ne!(a, Secret::from_bytes(&[1; 21]).unwrap());
    }

    // --- redaction ---------------------------------------------------------------------

    #[test]
    fn secret_debug_and_display_are_redacted() {
        let s = secret();
        let b32 = s.to_base32();
        for shown in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{s}"),
            format!("{:?}", Some(s.clone())),
        ] {
            assert!(shown.contains("Secret(<redacted>)"), "{shown}");
            assert!(!shown.contains(b32.as_str()));
            assert!(!shown.contains(&b32[..8]));
            assert!(!shown.contains("1234567890"));
            assert!(!shown.contains("49, 50, 51")); // the bytes as a Debug list
            assert!(!shown.contains(&hex(RFC6238_SECRET)[..8]));
        }
    }

    #[test]
    fn sealing_key_and_ring_debug_are_redacted() {
        let bytes: [u8; 32] = std::array::from_fn(|i| 0xC0 + i as u8);
        let k = SealingKey::from_bytes(bytes);
        let b64 = k.to_base64();
        let list = format!("{bytes:?}");
        let dbg = format!("{k:?} {k:#?}");
        assert!(dbg.contains("SealingKey(<redacted>)"));
        assert!(!dbg.contains(b64.as_str()) && !dbg.contains(&b64[..8]));
        assert!(!dbg.contains(&list[..12]) && !dbg.contains(&hex(&bytes)[..8]));

        let ring = KeyRing::new(7, k)
            .with_key(3, SealingKey::from_bytes(bytes))
            .unwrap();
        let dbg = format!("{ring:?} {ring:#?}");
        assert!(dbg.contains("active_id: 7"), "{dbg}");
        assert!(dbg.contains("[7, 3]"), "{dbg}");
        assert!(!dbg.contains(b64.as_str()) && !dbg.contains(&b64[..8]));
        assert!(!dbg.contains("192") && !dbg.contains(&hex(&bytes)[..8]));
        assert!(!dbg.contains("Hmac") && !dbg.contains("ChaCha"));
    }

    #[test]
    fn keyed_hash_debug_shows_only_a_prefix() {
        let h = KeyedHash(std::array::from_fn(|i| i as u8 * 7));
        let full = h.to_hex();
        let dbg = format!("{h:?}");
        assert_eq!(dbg, format!("KeyedHash({}…)", &full[..8]));
        assert!(!dbg.contains(&full[8..16]));
    }

    #[test]
    fn sealed_secret_debug_shows_no_bytes() {
        let ring = KeyRing::new(9, key(1));
        let sealed = ring.seal("u", &secret()).unwrap();
        let dbg = format!("{sealed:?}");
        assert_eq!(dbg, "SealedSecret { key_id: 9, len: 65 }");
    }

    #[test]
    fn error_messages_do_not_echo_input() {
        let e = Secret::from_base32("GEZDGNBVGY3TQOJQ!EZDGNBVGY3TQOJQ").unwrap_err();
        assert!(!e.to_string().contains("GEZDGNBV"), "{e}");
        let e = SealingKey::from_base64("c2VjcmV0LWtleS1tYXRlcmlhbA==").unwrap_err();
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
    }

    // --- zeroize -----------------------------------------------------------------------

    fn wipes_on_drop<T: ZeroizeOnDrop>() {}

    #[test]
    fn secret_types_zeroize_on_drop() {
        wipes_on_drop::<Secret>();
        wipes_on_drop::<SealingKey>();
        wipes_on_drop::<KeyRing>();
        wipes_on_drop::<Zeroizing<String>>();
        // The pieces the ring keeps (see the compile-time guard next to `KeyRing`).
        wipes_on_drop::<XChaCha20Poly1305>();
        wipes_on_drop::<<Sha256 as hmac::EagerHash>::Core>();
    }

    #[test]
    fn zeroize_empties_the_buffers() {
        let mut s = Secret::generate();
        assert_eq!(s.expose_bytes().len(), 20);
        s.zeroize();
        assert!(s.expose_bytes().is_empty());

        let mut k = key(0xAB);
        k.zeroize();
        assert_eq!(k.bytes, [0; 32]);

        // A fixed-size buffer (as used for decoding sealing keys) is overwritten in place.
        let mut buf = Zeroizing::new([0xFFu8; 48]);
        buf.zeroize();
        assert_eq!(*buf, [0; 48]);
    }

    // --- SealingKey --------------------------------------------------------------------

    #[test]
    fn sealing_key_base64() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
        let padded = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
        let k = SealingKey::from_base64(padded).unwrap();
        assert_eq!(k.bytes, bytes);
        assert_eq!(k.to_base64().as_str(), padded);
        assert_eq!(SealingKey::from_base64(&padded[..43]).unwrap().bytes, bytes);
        assert_eq!(
            SealingKey::from_base64(&format!("{padded}\n"))
                .unwrap()
                .bytes,
            bytes
        );
        let generated = SealingKey::generate();
        assert_eq!(
            SealingKey::from_base64(&generated.to_base64())
                .unwrap()
                .bytes,
            generated.bytes
        );
        assert_ne!(generated.bytes, SealingKey::generate().bytes);
    }

    #[test]
    fn sealing_key_base64_rejects_wrong_sizes_and_garbage() {
        use base64::Engine as _;
        let std = base64::engine::general_purpose::STANDARD;
        for bad in [
            String::new(),
            std.encode([1u8; 31]),
            std.encode([1u8; 33]),
            std.encode([1u8; 64]),
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8*".to_string(),
            // URL-safe alphabet is not standard base64.
            base64::engine::general_purpose::URL_SAFE.encode([0xFBu8; 32]),
            // Non-zero trailing bits.
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9".to_string(),
            "x".repeat(10_000),
        ] {
            assert!(
                matches!(SealingKey::from_base64(&bad), Err(Error::InvalidConfig(_))),
                "{bad:?}"
            );
        }
    }

    // --- sealing -----------------------------------------------------------------------

    #[test]
    fn seal_open_round_trip() {
        let ring = KeyRing::new(1, key(1));
        for len in [16, 20, 32, 64] {
            let s = Secret::from_bytes(&vec![0x5A; len]).unwrap();
            let sealed = ring.seal("user-1", &s).unwrap();
            assert_eq!(sealed.as_bytes().len(), 5 + 24 + len + 16);
            assert_eq!(sealed.as_bytes()[0], 1);
            assert_eq!(&sealed.as_bytes()[1..5], &[0, 0, 0, 1]);
            assert_eq!(sealed.key_id(), 1);
            // The plaintext does not appear in the blob.
            assert!(!sealed.as_bytes().windows(8).any(|w| w == [0x5A; 8]));
            let stored = SealedSecret::from_bytes(sealed.clone().into_bytes()).unwrap();
            assert_eq!(stored, sealed);
            assert_eq!(ring.open("user-1", &stored).unwrap(), s);
        }
        // A fresh nonce each time: sealing twice gives different blobs.
        let a = ring.seal("user-1", &secret()).unwrap();
        let b = ring.seal("user-1", &secret()).unwrap();
        assert_ne!(a.as_bytes()[5..29], b.as_bytes()[5..29]);
        assert_ne!(a, b);
    }

    /// Pins the exact construction: XChaCha20-Poly1305 under the sealing key with
    /// associated data = "secondfactor/totp-secret/v1" || header || user id. Computed
    /// independently here with the `aead` API, so dropping any part of the associated
    /// data (or changing the layout) fails this test.
    #[test]
    fn sealed_format_and_associated_data() {
        use chacha20poly1305::aead::{Aead, Payload};
        let ring = KeyRing::new(0x0102_0304, key(9));
        let nonce: [u8; 24] = std::array::from_fn(|i| 100 + i as u8);
        let sealed = ring.seal_with_nonce("alice", &secret(), nonce).unwrap();

        let cipher = XChaCha20Poly1305::new(&[9u8; 32].into());
        let mut aad = b"secondfactor/totp-secret/v1".to_vec();
        aad.extend_from_slice(&[1, 1, 2, 3, 4]);
        aad.extend_from_slice(b"alice");
        let ct = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: RFC6238_SECRET,
                    aad: &aad,
                },
            )
            .unwrap();
        let mut want = vec![1, 1, 2, 3, 4];
        want.extend_from_slice(&nonce);
        want.extend_from_slice(&ct);
        assert_eq!(sealed.as_bytes(), want);
        assert_eq!(sealed.key_id(), 0x0102_0304);
    }

    #[test]
    fn every_flipped_byte_fails_to_open() {
        let ring = KeyRing::new(1, key(1)).with_key(2, key(2)).unwrap();
        let sealed = ring.seal("user-1", &secret()).unwrap();
        let blob = sealed.as_bytes();
        for i in 0..blob.len() {
            for mask in [0x01u8, 0x80, 0xFF] {
                let mut bad = blob.to_vec();
                bad[i] ^= mask;
                let result = SealedSecret::from_bytes(bad).and_then(|s| ring.open("user-1", &s));
                assert!(
                    matches!(
                        result,
                        Err(Error::SealedSecretInvalid | Error::UnknownKey { .. })
                    ),
                    "byte {i} mask {mask:#x}: {result:?}"
                );
            }
        }
        assert_eq!(ring.open("user-1", &sealed).unwrap(), secret());
    }

    #[test]
    fn wrong_user_fails() {
        let ring = KeyRing::new(1, key(1));
        let sealed = ring.seal("user-1", &secret()).unwrap();
        for other in ["user-2", "user-", "user-11", "", "USER-1"] {
            assert!(matches!(
                ring.open(other, &sealed),
                Err(Error::SealedSecretInvalid)
            ));
        }
        assert!(ring.open("user-1", &sealed).is_ok());
    }

    #[test]
    fn unknown_key_id() {
        let a = KeyRing::new(1, key(1));
        let b = KeyRing::new(2, key(1)); // same material, other id
        let sealed = a.seal("u", &secret()).unwrap();
        assert!(matches!(
            b.open("u", &sealed),
            Err(Error::UnknownKey { key_id: 1 })
        ));
    }

    /// Two ids holding the *same* key bytes: only the header in the associated data
    /// stops a blob relabelled from id 1 to id 2 from opening.
    #[test]
    fn edited_key_id_in_header_fails() {
        let ring = KeyRing::new(1, key(5)).with_key(2, key(5)).unwrap();
        let sealed = ring.seal("u", &secret()).unwrap();
        let mut bad = sealed.into_bytes();
        bad[1..5].copy_from_slice(&2u32.to_be_bytes());
        let bad = SealedSecret::from_bytes(bad).unwrap();
        assert_eq!(bad.key_id(), 2);
        assert!(matches!(
            ring.open("u", &bad),
            Err(Error::SealedSecretInvalid)
        ));
    }

    #[test]
    fn truncated_or_malformed_blobs_fail() {
        let ring = KeyRing::new(1, key(1));
        let s32 = Secret::from_bytes(&[3; 32]).unwrap();
        let blob = ring.seal("u", &s32).unwrap().into_bytes();
        for len in 0..blob.len() {
            let result =
                SealedSecret::from_bytes(blob[..len].to_vec()).and_then(|s| ring.open("u", &s));
            assert!(
                matches!(result, Err(Error::SealedSecretInvalid)),
                "len {len}: {result:?}"
            );
        }
        // Dropping bytes from the front (so the header shifts) fails too.
        for cut in 1..blob.len() {
            let result =
                SealedSecret::from_bytes(blob[cut..].to_vec()).and_then(|s| ring.open("u", &s));
            assert!(result.is_err(), "cut {cut}");
        }
        // Extra bytes appended.
        let mut long = blob.clone();
        long.push(0);
        let result = SealedSecret::from_bytes(long).and_then(|s| ring.open("u", &s));
        assert!(matches!(result, Err(Error::SealedSecretInvalid)));
        // Over-long and wrong version are structural errors.
        assert!(matches!(
            SealedSecret::from_bytes(vec![1; 110]),
            Err(Error::SealedSecretInvalid)
        ));
        let mut v3 = blob.clone();
        v3[0] = 3;
        assert!(matches!(
            SealedSecret::from_bytes(v3),
            Err(Error::SealedSecretInvalid)
        ));
        // Version 2 is a sealed record: structurally fine, but never a TOTP secret.
        let mut v2 = blob.clone();
        v2[0] = 2;
        let v2 = SealedSecret::from_bytes(v2).unwrap();
        assert!(v2.is_record());
        assert!(matches!(
            ring.open("u", &v2),
            Err(Error::SealedSecretInvalid)
        ));
        assert!(matches!(
            ring.open_record("u", &v2),
            Err(Error::SealedSecretInvalid)
        ));
        assert!(
            ring.open("u", &SealedSecret::from_bytes(blob).unwrap())
                .is_ok()
        );
    }

    #[test]
    fn records_round_trip_and_never_open_as_totp_secrets() {
        let ring = KeyRing::new(1, key(1));
        let record = vec![7u8; 3000];
        let sealed = ring.seal_record("u", &record).unwrap();
        assert!(sealed.is_record());
        assert_eq!(
            ring.open_record("u", &sealed).unwrap().as_slice(),
            &record[..]
        );
        // Bound to the user, and never a TOTP secret.
        assert!(matches!(
            ring.open_record("v", &sealed),
            Err(Error::SealedSecretInvalid)
        ));
        assert!(matches!(
            ring.open("u", &sealed),
            Err(Error::SealedSecretInvalid)
        ));
        // A TOTP secret never opens as a record.
        let totp = ring
            .seal("u", &Secret::from_bytes(&[3; 32]).unwrap())
            .unwrap();
        assert!(!totp.is_record());
        assert!(matches!(
            ring.open_record("u", &totp),
            Err(Error::SealedSecretInvalid)
        ));
        // Tampering is detected; rotation keeps a record a record.
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = SealedSecret::from_bytes(bytes).unwrap();
        assert!(ring.open_record("u", &tampered).is_err());
        let rotated = KeyRing::new(2, key(2)).with_key(1, key(1)).unwrap();
        let resealed = rotated.reseal("u", &sealed).unwrap();
        assert!(resealed.is_record());
        assert_eq!(resealed.key_id(), 2);
        assert_eq!(
            rotated.open_record("u", &resealed).unwrap().as_slice(),
            &record[..]
        );
        // Too long to seal.
        assert!(
            ring.seal_record("u", &vec![0; MAX_RECORD_BYTES + 1])
                .is_err()
        );
    }

    #[test]
    fn rotation() {
        let old_only = KeyRing::new(1, key(1));
        let mut ring = KeyRing::new(1, key(1)).with_key(2, key(2)).unwrap();
        assert_eq!(ring.active_id(), 1);
        let sealed = ring.seal("u", &secret()).unwrap();
        assert_eq!(sealed.key_id(), 1);
        assert!(!ring.needs_reseal(&sealed));

        ring.set_active(2).unwrap();
        assert_eq!(ring.active_id(), 2);
        assert_eq!(ring.key_ids(), [2, 1]);
        assert_eq!(ring.open("u", &sealed).unwrap(), secret());
        assert!(ring.needs_reseal(&sealed));

        let resealed = ring.reseal("u", &sealed).unwrap();
        assert_eq!(resealed.key_id(), 2);
        assert!(!ring.needs_reseal(&resealed));
        assert_eq!(ring.open("u", &resealed).unwrap(), secret());
        // Resealing keeps the user binding.
        assert!(ring.open("v", &resealed).is_err());
        assert!(ring.reseal("v", &sealed).is_err());
        // The old ring, without the new key, cannot open it.
        assert!(matches!(
            old_only.open("u", &resealed),
            Err(Error::UnknownKey { key_id: 2 })
        ));
        // A new ring with only the new key opens new blobs but not old ones.
        let new_only = KeyRing::new(2, key(2));
        assert_eq!(new_only.open("u", &resealed).unwrap(), secret());
        assert!(matches!(
            new_only.open("u", &sealed),
            Err(Error::UnknownKey { key_id: 1 })
        ));
    }

    #[test]
    fn ring_configuration_errors() {
        let ring = KeyRing::new(1, key(1)).with_key(2, key(2)).unwrap();
        assert!(matches!(
            ring.clone().with_key(1, key(3)),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            ring.clone().with_key(2, key(3)),
            Err(Error::InvalidConfig(_))
        ));
        let mut ring = ring;
        assert!(matches!(
            ring.set_active(3),
            Err(Error::UnknownKey { key_id: 3 })
        ));
        assert_eq!(ring.active_id(), 1);
        ring.set_active(1).unwrap();
        assert_eq!(ring.active_id(), 1);
        assert!(ring.contains(2) && !ring.contains(3));
    }

    // --- keyed hashes ------------------------------------------------------------------

    /// Pins the documented derivation, recomputed with `hmac`'s own `new_from_slice`:
    /// subkey = HMAC-SHA-256(key, "secondfactor/v1/keyed-hash/" + label),
    /// hash = HMAC-SHA-256(subkey, data).
    #[test]
    fn keyed_hash_construction() {
        fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
            let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap();
            for p in parts {
                m.update(p);
            }
            m.finalize().into_bytes().into()
        }
        let ring = KeyRing::new(1, key(0x42));
        for purpose in HashPurpose::ALL {
            let sub = hmac(
                &[0x42; 32],
                &[b"secondfactor/v1/keyed-hash/", purpose.label().as_bytes()],
            );
            let want = hmac(&sub, &[b"ABCD-EFGH-JKMN"]);
            assert_eq!(
                ring.keyed_hash(purpose, b"ABCD-EFGH-JKMN").0,
                want,
                "{purpose:?}"
            );
        }
    }

    #[test]
    fn keyed_hashes_differ_across_purposes_keys_and_data() {
        let ring = KeyRing::new(1, key(1));
        let other = KeyRing::new(1, key(2));
        let mut seen = std::collections::HashSet::new();
        for purpose in HashPurpose::ALL {
            let h = ring.keyed_hash(purpose, b"data");
            assert_eq!(h, ring.keyed_hash(purpose, b"data"));
            assert_ne!(h, other.keyed_hash(purpose, b"data"));
            assert_ne!(h, ring.keyed_hash(purpose, b"datb"));
            assert!(seen.insert(h.to_hex()));
        }
        assert_eq!(seen.len(), HashPurpose::ALL.len());
        let labels: std::collections::HashSet<_> =
            HashPurpose::ALL.iter().map(|p| p.label()).collect();
        assert_eq!(labels.len(), HashPurpose::ALL.len());
    }

    #[test]
    fn keyed_hashes_list_the_active_key_first() {
        let mut ring = KeyRing::new(1, key(1))
            .with_key(2, key(2))
            .unwrap()
            .with_key(3, key(3))
            .unwrap();
        let p = HashPurpose::DeviceToken;
        let stored_under_1 = ring.keyed_hash(p, b"token");
        let all = ring.keyed_hashes(p, b"token");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], stored_under_1);

        ring.set_active(3).unwrap();
        let all = ring.keyed_hashes(p, b"token");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], ring.keyed_hash(p, b"token"));
        assert_eq!(all[0], KeyRing::new(3, key(3)).keyed_hash(p, b"token"));
        assert_ne!(all[0], stored_under_1);
        // A value stored before the rotation is still found.
        assert!(all.contains(&stored_under_1));
        assert!(all.contains(&KeyRing::new(2, key(2)).keyed_hash(p, b"token")));
    }

    #[test]
    fn keyed_hash_hex_and_equality() {
        let ring = KeyRing::new(1, key(1));
        let h = ring.keyed_hash(HashPurpose::SessionToken, b"x");
        let text = h.to_hex();
        assert_eq!(text.len(), 64);
        assert_eq!(KeyedHash::from_hex(&text).unwrap(), h);
        assert_eq!(KeyedHash::from_hex(&text.to_uppercase()).unwrap(), h);
        assert_eq!(h.as_bytes(), &h.0);
        for bad in [
            String::new(),
            text[..62].to_string(),
            format!("{text}00"),
            format!("{}zz", &text[..62]),
            format!("{}é", &text[..62]),
        ] {
            assert!(matches!(
                KeyedHash::from_hex(&bad),
                Err(Error::InvalidInput {
                    field: "keyed_hash",
                    ..
                })
            ));
        }
        let mut other = h;
        other.0[31] ^= 1;
        assert_ne!(h, other);
        other.0[31] ^= 1;
        assert_eq!(h, other);
    }
}
