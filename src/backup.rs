//! Backup codes: single-use recovery codes for when the authenticator is lost.
//!
//! When two-factor authentication is enabled the user is shown
//! [`DEFAULT_COUNT`] codes, once. Each code can stand in for one TOTP code and is
//! then spent. The [`Service`](crate::Service) makes them when 2FA is turned on or
//! the codes are renewed, stores only their keyed hashes, and takes them back as
//! [`SecondFactor::BackupCode`](crate::SecondFactor::BackupCode) in whatever form the
//! user typed them (any case, spaces or hyphens anywhere). This module holds the
//! format ([`BackupCode`], [`ALPHABET`], [`CODE_LEN`]) and the generator.
//!
//! ```
//! use secondfactor::backup::{self, ALPHABET, CODE_LEN};
//!
//! let codes = backup::generate(backup::DEFAULT_COUNT);
//! // Shown to the user once, as `XXXXX-XXXXX-XXXXX`.
//! let shown = codes[3].expose();
//! assert_eq!(shown.len(), CODE_LEN + 2);
//! assert!(shown.bytes().filter(|b| *b != b'-').all(|b| ALPHABET.contains(&b)));
//! ```
//!
//! # Format and entropy
//!
//! A code is 15 characters in three groups of five, `XXXXX-XXXXX-XXXXX`, drawn
//! uniformly from a 27-character [`ALPHABET`]: the digits `2`–`9` and the upper-case
//! letters without `B I L O S U Z`. Left out, so that no two characters of a code
//! can be mistaken for one another on paper or in a poor font:
//!
//! * `0`/`O` and `1`/`I`/`L`: all of them;
//! * `2`/`Z`, `5`/`S`, `8`/`B`: the letter (digits are the easier read);
//! * `U`/`V`: `U`.
//!
//! A character outside the alphabet (an `O` typed for a `0`, say) is rejected as
//! malformed input (`invalid_input`) rather than silently guessed at.
//! Each code carries 15 × log2(27) ≈ 71.3 bits of entropy ([`ENTROPY_BITS`]).
//! Characters are drawn by rejection sampling (five random bits, retried while
//! ≥ 27), so every character is exactly equally likely: there is no modulo bias.
//!
//! # Why keyed hashes
//!
//! Codes are never stored in clear. What is stored is
//! HMAC-SHA-256 of the normalized code under a server-side key from the
//! [`KeyRing`] (a subkey of its own, so the value is useless for any other
//! purpose). That choice, rather than the alternatives:
//!
//! * **Lookup, not loop.** The hash is deterministic, so checking a typed code is
//!   one indexed lookup (`WHERE user = ? AND hash = ?`, then an atomic delete to
//!   consume it), whatever the number of codes a user has.
//!   A salted slow hash (Argon2 per code) cannot be looked up: the server would
//!   have to run up to ten slow verifications per attempt, which is slow for
//!   users and hands attackers a cheap way to burn server CPU.
//!   Slowness buys nothing here anyway: these are 71-bit random codes, not
//!   human-chosen passwords, and online guessing is throttled.
//! * **The key is what stops offline guessing.** A plain fast hash (SHA-256 of the
//!   code) would be deterministic too, but then a leaked table could be attacked
//!   offline. 71 bits is a lot for one code, but an unsalted table is attacked all
//!   at once: with a million users holding ten codes each (≈ 2²³ hashes) each guess
//!   is checked against every row, so finding *some* valid code takes about
//!   2⁷¹⁻²³ = 2⁴⁸ SHA-256 evaluations: hours on one GPU. At the 60-bit minimum it
//!   would be seconds. Under HMAC with an unknown 256-bit key no guess can be
//!   checked offline at all: a leaked database without the key reveals nothing.
//! * **Rotation.** After a key rotation, codes hashed under an older key still
//!   verify: a typed code is hashed under every key in the ring (the active key
//!   first), so a lookup tries at most one hash per key, and a comparison against a
//!   stored hash tries all of them in constant time.
//!
//! [`KeyRing`]: crate::secret::KeyRing

use std::fmt;

use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use rand::{CryptoRng, TryCryptoRng};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::secret::{HashPurpose, KeyRing, KeyedHash};
use crate::{Error, Result};

/// How many codes to hand out when two-factor authentication is enabled.
pub const DEFAULT_COUNT: usize = 10;

/// The characters a code is made of (see the [module docs](self) for what is left
/// out and why).
pub const ALPHABET: &[u8; 27] = b"23456789ACDEFGHJKMNPQRTVWXY";

/// Characters per group.
pub const GROUP_LEN: usize = 5;

/// Groups per code.
pub const GROUPS: usize = 3;

/// Characters per code, not counting separators.
pub const CODE_LEN: usize = GROUP_LEN * GROUPS;

/// Entropy of one code in bits: `CODE_LEN × log2(ALPHABET.len())` ≈ 71.3.
pub const ENTROPY_BITS: f64 = 71.32;

/// The longest typed backup code the service will look at, in bytes.
pub const MAX_INPUT_BYTES: usize = 64;

const FIELD: &str = "backup_code";

/// One freshly generated backup code in display form (`XXXXX-XXXXX-XXXXX`).
///
/// It is shown to the user once and then dropped; only its keyed hash is kept. The
/// buffer is zeroized on drop, `Debug` is redacted, and there is deliberately no
/// `Display`: reading the code takes an explicit [`BackupCode::expose`].
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct BackupCode(String);

impl BackupCode {
    /// The code in display form, for showing to the user.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The canonical form of this code, ready for [`hash`].
    pub(crate) fn normalized(&self) -> NormalizedBackupCode {
        let mut out = NormalizedBackupCode([0; CODE_LEN]);
        for (slot, b) in out.0.iter_mut().zip(self.0.bytes().filter(|b| *b != b'-')) {
            *slot = b;
        }
        out
    }
}

impl fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupCode(<redacted>)")
    }
}

/// A backup code in canonical form: 15 upper-case alphabet characters, no
/// separators. Made by [`normalize`] (from user input) or
/// [`BackupCode::normalized`]. Zeroized on drop; `Debug` is redacted.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct NormalizedBackupCode([u8; CODE_LEN]);

impl fmt::Debug for NormalizedBackupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NormalizedBackupCode(<redacted>)")
    }
}

/// Generates `count` codes from the operating system's CSPRNG.
///
/// # Panics
///
/// Only if the operating system cannot provide random bytes; use
/// [`try_generate`] to get an [`Error::Internal`] instead.
pub fn generate(count: usize) -> Vec<BackupCode> {
    generate_with_rng(count, &mut UnwrapErr(SysRng))
}

/// Generates `count` codes from the operating system's CSPRNG; an RNG failure is
/// [`Error::Internal`].
pub fn try_generate(count: usize) -> Result<Vec<BackupCode>> {
    generate_inner(count, &mut SysRng)
        .map_err(|_| Error::Internal("the operating system's random generator failed"))
}

/// Generates `count` codes from the given cryptographically secure RNG.
pub fn generate_with_rng<R: CryptoRng + ?Sized>(count: usize, rng: &mut R) -> Vec<BackupCode> {
    match generate_inner(count, rng) {
        Ok(codes) => codes,
        Err(never) => match never {},
    }
}

fn generate_inner<R: TryCryptoRng + ?Sized>(
    count: usize,
    rng: &mut R,
) -> std::result::Result<Vec<BackupCode>, R::Error> {
    let mut codes = Vec::with_capacity(count);
    for _ in 0..count {
        codes.push(one_code(rng)?);
    }
    Ok(codes)
}

fn one_code<R: TryCryptoRng + ?Sized>(rng: &mut R) -> std::result::Result<BackupCode, R::Error> {
    let mut chars = [0u8; CODE_LEN];
    let mut filled = 0;
    let mut random = [0u8; 32];
    while filled < CODE_LEN {
        if let Err(e) = rng.try_fill_bytes(&mut random) {
            random.zeroize();
            chars.zeroize();
            return Err(e);
        }
        for b in random {
            // Five uniform bits give 0..32; keeping only values below 27 leaves
            // every alphabet index exactly equally likely.
            let idx = usize::from(b & 0x1f);
            if filled < CODE_LEN
                && let Some(c) = ALPHABET.get(idx)
            {
                chars[filled] = *c;
                filled += 1;
            }
        }
    }
    random.zeroize();
    let mut display = String::with_capacity(CODE_LEN + GROUPS - 1);
    for (i, c) in chars.iter().enumerate() {
        if i > 0 && i % GROUP_LEN == 0 {
            display.push('-');
        }
        display.push(char::from(*c));
    }
    chars.zeroize();
    Ok(BackupCode(display))
}

/// Turns what a person typed into a canonical code.
///
/// Case does not matter, and ASCII spaces and hyphens are ignored wherever they
/// are. Input longer than [`MAX_INPUT_BYTES`] is rejected before it is looked at.
///
/// # Errors
///
/// [`Error::InvalidInput`] (field `backup_code`) for input that is too long, has a
/// character outside the [`ALPHABET`] (such as `O` or `0`, or any non-ASCII), or
/// does not have exactly [`CODE_LEN`] characters.
pub(crate) fn normalize(input: &str) -> Result<NormalizedBackupCode> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(Error::input(FIELD, "too long"));
    }
    let mut out = NormalizedBackupCode([0; CODE_LEN]);
    let mut n = 0;
    for b in input.bytes() {
        if b == b' ' || b == b'-' {
            continue;
        }
        let up = b.to_ascii_uppercase();
        if !ALPHABET.contains(&up) {
            return Err(Error::input(
                FIELD,
                "contains a character that backup codes do not use",
            ));
        }
        match out.0.get_mut(n) {
            Some(slot) => *slot = up,
            None => return Err(Error::input(FIELD, "must have 15 characters")),
        }
        n += 1;
    }
    if n != CODE_LEN {
        return Err(Error::input(FIELD, "must have 15 characters"));
    }
    Ok(out)
}

/// The keyed hash of `code` under the ring's active key: the value to store.
pub(crate) fn hash(keys: &KeyRing, code: &NormalizedBackupCode) -> KeyedHash {
    keys.keyed_hash(HashPurpose::BackupCode, &code.0)
}

/// The keyed hash of `code` under every key in the ring, active key first: the
/// values to look up, so that codes stored before a key rotation still match.
pub(crate) fn hash_candidates(keys: &KeyRing, code: &NormalizedBackupCode) -> Vec<KeyedHash> {
    keys.keyed_hashes(HashPurpose::BackupCode, &code.0)
}

/// Whether `code` hashes to `stored` under any key in the ring.
///
/// Every key is tried and every comparison is constant time, so the time taken
/// does not depend on which key (if any) matched or where the hashes differ.
pub(crate) fn verify(keys: &KeyRing, code: &NormalizedBackupCode, stored: &KeyedHash) -> bool {
    hash_candidates(keys, code)
        .iter()
        .fold(Choice::from(0), |acc, h| acc | h.0.ct_eq(&stored.0))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SealingKey;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::HashSet;

    fn ring(byte: u8) -> KeyRing {
        KeyRing::new(1, SealingKey::from_bytes([byte; 32]))
    }

    fn assert_invalid(input: &str) {
        match normalize(input) {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "backup_code", "{input:?}"),
            other => panic!("{input:?} should be invalid, got {other:?}"),
        }
    }

    #[test]
    fn alphabet_has_no_ambiguous_characters_and_no_duplicates() {
        for c in b"0O1ILBSZU" {
            assert!(!ALPHABET.contains(c), "{}", char::from(*c));
        }
        let set: HashSet<_> = ALPHABET.iter().collect();
        assert_eq!(set.len(), ALPHABET.len());
        assert!(
            ALPHABET
                .iter()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }

    #[test]
    fn format_is_three_groups_of_five_from_the_alphabet() {
        for code in generate(100) {
            let s = code.expose();
            assert_eq!(s.len(), 17);
            let groups: Vec<&str> = s.split('-').collect();
            assert_eq!(groups.len(), GROUPS);
            for g in groups {
                assert_eq!(g.len(), GROUP_LEN);
                assert!(g.bytes().all(|b| ALPHABET.contains(&b)), "{s}");
            }
        }
        assert_eq!(generate(DEFAULT_COUNT).len(), 10);
        assert_eq!(try_generate(3).unwrap().len(), 3);
        assert!(generate(0).is_empty());
    }

    #[test]
    fn entropy_is_at_least_60_bits() {
        let bits = CODE_LEN as f64 * (ALPHABET.len() as f64).log2();
        assert!(bits >= 60.0, "{bits}");
        assert!((bits - ENTROPY_BITS).abs() < 0.01, "{bits}");
    }

    #[test]
    fn ten_thousand_codes_are_distinct_and_use_every_character() {
        let codes = generate(10_000);
        let distinct: HashSet<&str> = codes.iter().map(|c| c.expose()).collect();
        assert_eq!(distinct.len(), 10_000);
        let mut counts = [0usize; 256];
        for c in &codes {
            for b in c.normalized().0 {
                counts[usize::from(b)] += 1;
            }
        }
        for c in ALPHABET {
            assert!(
                counts[usize::from(*c)] > 0,
                "{} never drawn",
                char::from(*c)
            );
        }
        // Uniformity: chi-squared over the 27 characters (26 degrees of freedom,
        // mean 26; P(> 70) < 1e-5). A sampler with modulo bias (`byte % 27`, which
        // draws the first 13 characters 10/9 as often as the rest) scores ≈ 400.
        let expected = (codes.len() * CODE_LEN) as f64 / ALPHABET.len() as f64;
        let chi2: f64 = ALPHABET
            .iter()
            .map(|c| {
                let d = counts[usize::from(*c)] as f64 - expected;
                d * d / expected
            })
            .sum();
        assert!(chi2 < 70.0, "chi-squared {chi2}");
    }

    #[test]
    fn seeded_rng_is_deterministic_and_differs_by_seed() {
        let a = generate_with_rng(3, &mut StdRng::seed_from_u64(1));
        let b = generate_with_rng(3, &mut StdRng::seed_from_u64(1));
        let c = generate_with_rng(3, &mut StdRng::seed_from_u64(2));
        for i in 0..3 {
            assert_eq!(a[i].expose(), b[i].expose());
            assert_ne!(a[i].expose(), c[i].expose());
        }
    }

    #[test]
    fn normalization_accepts_case_spaces_and_hyphens_anywhere() {
        let code = &generate_with_rng(1, &mut StdRng::seed_from_u64(7))[0];
        let keys = ring(1);
        let stored = hash(&keys, &code.normalized());
        let s = code.expose();
        let bare: String = s.chars().filter(|c| *c != '-').collect();
        let spaced_oddly: String = bare
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = match i % 4 {
                    0 => "",
                    1 => " ",
                    2 => "-",
                    _ => " - ",
                };
                sep.chars().chain(std::iter::once(c))
            })
            .collect();
        for typed in [
            s.to_string(),
            s.to_lowercase(),
            bare.clone(),
            bare.to_lowercase(),
            s.replace('-', " "),
            format!("  {s}  "),
            format!("-{}-", bare),
            spaced_oddly,
        ] {
            let n = normalize(&typed).unwrap();
            assert_eq!(n.0, code.normalized().0, "{typed:?}");
            assert!(verify(&keys, &n, &stored), "{typed:?}");
        }
    }

    #[test]
    fn malformed_input_is_invalid_input() {
        let good = "23456-789AC-DEFGH";
        assert!(normalize(good).is_ok());
        // Ambiguous characters that are not in the alphabet.
        for bad in ["O", "0", "1", "I", "L", "S", "Z", "B", "U"] {
            assert_invalid(&good.replacen('2', bad, 1));
        }
        // Wrong length.
        assert_invalid("");
        assert_invalid("   ---   ");
        assert_invalid("23456-789AC-DEFG");
        assert_invalid("23456-789AC-DEFGHJ");
        // Non-ASCII and other separators.
        assert_invalid("23456-789AC-DEFGÄ");
        assert_invalid("２3456-789AC-DEFGH");
        assert_invalid("23456_789AC_DEFGH");
        assert_invalid("23456\t789AC\tDEFGH");
        // Over-long input is rejected even if it is only separators.
        let long = format!("{good}{}", " ".repeat(MAX_INPUT_BYTES));
        assert!(long.len() > MAX_INPUT_BYTES);
        match normalize(&long) {
            Err(Error::InvalidInput { reason, .. }) => assert_eq!(reason, "too long"),
            other => panic!("{other:?}"),
        }
        let at_limit = format!("{good}{}", " ".repeat(MAX_INPUT_BYTES - good.len()));
        assert!(normalize(&at_limit).is_ok());
        assert_eq!(
            normalize("nope").map(|_| ()).unwrap_err().code(),
            "invalid_input"
        );
    }

    #[test]
    fn wrong_code_does_not_verify() {
        let keys = ring(1);
        let codes = generate(2);
        let stored = hash(&keys, &codes[0].normalized());
        assert!(verify(&keys, &codes[0].normalized(), &stored));
        assert!(!verify(&keys, &codes[1].normalized(), &stored));
        // One character off.
        let mut near = codes[0].normalized();
        near.0[14] = if near.0[14] == b'2' { b'3' } else { b'2' };
        assert!(!verify(&keys, &near, &stored));
    }

    #[test]
    fn hash_under_one_key_does_not_verify_under_another_ring() {
        let code = normalize("23456-789AC-DEFGH").unwrap();
        let stored = hash(&ring(1), &code);
        assert!(verify(&ring(1), &code, &stored));
        assert!(!verify(&ring(2), &code, &stored));
        assert!(!hash_candidates(&ring(2), &code).contains(&stored));
        assert_ne!(hash(&ring(1), &code), hash(&ring(2), &code));
    }

    #[test]
    fn codes_hashed_before_rotation_still_verify() {
        let code = normalize("23456-789AC-DEFGH").unwrap();
        let old = ring(1);
        let stored = hash(&old, &code);

        let mut rotated = ring(1)
            .with_key(2, SealingKey::from_bytes([2; 32]))
            .unwrap();
        rotated.set_active(2).unwrap();
        // New hashes use the new key...
        assert_ne!(hash(&rotated, &code), stored);
        // ...but the old one is among the candidates, after the active key's.
        let candidates = hash_candidates(&rotated, &code);
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[0], hash(&rotated, &code));
        assert_eq!(candidates[1], stored);
        assert!(verify(&rotated, &code, &stored));
        assert!(verify(&rotated, &code, &hash(&rotated, &code)));
        // A ring that has dropped the old key no longer accepts it.
        let new_only = KeyRing::new(2, SealingKey::from_bytes([2; 32]));
        assert!(!verify(&new_only, &code, &stored));
    }

    #[test]
    fn debug_is_redacted() {
        let code = &generate(1)[0];
        let bare: String = code.expose().chars().filter(|c| *c != '-').collect();
        for dbg in [format!("{code:?}"), format!("{:?}", code.normalized())] {
            assert!(dbg.contains("redacted"), "{dbg}");
            assert!(!dbg.contains(code.expose()), "{dbg}");
            assert!(!dbg.contains(&bare), "{dbg}");
            for group in code.expose().split('-') {
                assert!(!dbg.contains(group), "{dbg}");
            }
        }
    }
}
