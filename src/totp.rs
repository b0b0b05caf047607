//! Time-based one-time passwords (RFC 6238): the policy, code normalization and
//! constant-time verification that reports the matched time step.
//!
//! A [`TotpPolicy`] says how codes are made (algorithm, digits, period) and how much
//! clock drift is tolerated (skew, in steps). A [`TotpKey`] is one user's secret,
//! prepared once as HMAC key state; verifying a code clones that state for each
//! candidate step instead of setting up the key again.
//!
//! Verification always computes every step of the window, compares the codes in
//! constant time and reports the *newest* matching step. "Each step is accepted at
//! most once" (RFC 6238 §5.2) is the [`Service`](crate::Service)'s part: it accepts
//! a step only if it can advance the authenticator's last used step past it, with a
//! compare-and-set in the store, so a code is never accepted twice, even by two
//! servers at once.
//!
//! ```
//! use secondfactor::totp::{TotpKey, TotpPolicy};
//!
//! # fn main() -> secondfactor::Result<()> {
//! let policy = TotpPolicy::default(); // SHA-1, 6 digits, 30 s, ±1 step
//! let key = TotpKey::new(&policy, b"12345678901234567890");
//! let now = 1_700_000_000;
//!
//! // What the user typed (spaces are allowed anywhere).
//! let typed = key.generate(now);
//! let code = policy.normalize_code(&format!(" {} {} ", &typed[..3], &typed[3..]))?;
//!
//! assert_eq!(key.verify(&code, now), Some(policy.step_at(now)));
//! // Two periods later the code is outside the ±1 step window.
//! assert_eq!(key.verify(&code, now + 60), None);
//! # Ok(())
//! # }
//! ```
//!
//! Only the ASCII space is dropped from typed codes; tabs, hyphens, letters and
//! non-ASCII digits make the input `invalid_input`.

use std::fmt;
use std::str::FromStr;

use hmac::digest::Key;
use hmac::{EagerHash, Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Error, Result};

/// The longest typed code, in bytes, that [`TotpPolicy::normalize_code`] looks at.
/// Anything longer is rejected before any other work.
pub const MAX_CODE_INPUT_LEN: usize = 64;

/// The HMAC hash function of a TOTP policy (RFC 6238 §1.2).
///
/// SHA-1 is the default and the only one every authenticator app supports; some
/// apps silently fall back to SHA-1 when given another algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1 (the default).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in `otpauth://` URIs: `"SHA1"`, `"SHA256"` or `"SHA512"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses `SHA1`, `SHA256`, `SHA512`, case-insensitively, with or without a
    /// hyphen (`sha-256`). Anything else is `invalid_input` on field `algorithm`.
    fn from_str(s: &str) -> Result<Self> {
        const NAMES: [(&str, &str, Algorithm); 3] = [
            ("SHA1", "SHA-1", Algorithm::Sha1),
            ("SHA256", "SHA-256", Algorithm::Sha256),
            ("SHA512", "SHA-512", Algorithm::Sha512),
        ];
        NAMES
            .iter()
            .find(|(plain, hyphen, _)| {
                s.eq_ignore_ascii_case(plain) || s.eq_ignore_ascii_case(hyphen)
            })
            .map(|&(_, _, alg)| alg)
            .ok_or(Error::input("algorithm", "must be SHA1, SHA256 or SHA512"))
    }
}

/// How TOTP codes are made and checked: algorithm, number of digits, period and
/// tolerated clock skew.
///
/// The default is Google Authenticator compatible: SHA-1, 6 digits, 30 s period,
/// ±1 step of skew. Every constructor validates, so a policy that exists can work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TotpPolicy {
    algorithm: Algorithm,
    digits: u32,
    period: u64,
    skew: u32,
}

impl Default for TotpPolicy {
    fn default() -> Self {
        TotpPolicy {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
            skew: 1,
        }
    }
}

impl TotpPolicy {
    /// Fewest digits a code may have (RFC 4226 §5.3 requires at least 6).
    pub const MIN_DIGITS: u32 = 6;
    /// Most digits a code may have.
    pub const MAX_DIGITS: u32 = 8;
    /// Longest period, in seconds (one hour).
    pub const MAX_PERIOD: u64 = 3600;
    /// Largest skew, in steps on each side of the current one.
    pub const MAX_SKEW: u32 = 10;

    /// A validated policy.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] unless `digits` is 6 to 8, `period` is 1 to 3600
    /// seconds and `skew` is 0 to 10 steps.
    pub fn new(algorithm: Algorithm, digits: u32, period: u64, skew: u32) -> Result<Self> {
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits) {
            return Err(Error::InvalidConfig("TOTP digits must be 6, 7 or 8"));
        }
        if !(1..=Self::MAX_PERIOD).contains(&period) {
            return Err(Error::InvalidConfig(
                "TOTP period must be 1 to 3600 seconds",
            ));
        }
        if skew > Self::MAX_SKEW {
            return Err(Error::InvalidConfig("TOTP skew must be at most 10 steps"));
        }
        Ok(TotpPolicy {
            algorithm,
            digits,
            period,
            skew,
        })
    }

    /// A builder starting from the defaults.
    pub fn builder() -> TotpPolicyBuilder {
        TotpPolicyBuilder::default()
    }

    /// The HMAC hash function.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The number of digits of a code.
    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// The length of a time step, in seconds.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// How many steps before and after the current one are also accepted.
    pub fn skew(&self) -> u32 {
        self.skew
    }

    /// The time step (RFC 6238 `T`, with `T0 = 0`) that contains `unix_secs`.
    pub fn step_at(&self, unix_secs: u64) -> u64 {
        // `period` is at least 1 by construction; `max` keeps this panic-free regardless.
        unix_secs / self.period.max(1)
    }

    /// Normalizes a code as typed by a person.
    ///
    /// ASCII spaces are dropped wherever they are (`" 123 456 "` is `123456`); what
    /// remains must be exactly [`digits`](Self::digits) ASCII digits. Leading zeros
    /// count as digits. Tabs, hyphens, letters and non-ASCII digits are rejected.
    /// Input longer than [`MAX_CODE_INPUT_LEN`] bytes is rejected before anything
    /// else is looked at.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] with field `"code"`.
    pub fn normalize_code(&self, input: &str) -> Result<Code> {
        if input.len() > MAX_CODE_INPUT_LEN {
            return Err(Error::input("code", "is too long"));
        }
        let mut value: u32 = 0;
        let mut count: u32 = 0;
        for &b in input.as_bytes() {
            if b == b' ' {
                continue;
            }
            if !b.is_ascii_digit() {
                value.zeroize();
                return Err(Error::input("code", "must contain only digits"));
            }
            count += 1;
            // At most 8 digits are accumulated, so `value` stays below 10^8.
            if count <= self.digits {
                value = value * 10 + u32::from(b - b'0');
            }
        }
        if count != self.digits {
            value.zeroize();
            return Err(Error::input("code", "has the wrong number of digits"));
        }
        Ok(Code {
            value,
            digits: self.digits,
        })
    }
}

/// Builds a [`TotpPolicy`], starting from the defaults; [`build`](Self::build) validates.
///
/// ```
/// use secondfactor::totp::{Algorithm, TotpPolicy};
/// let policy = TotpPolicy::builder().algorithm(Algorithm::Sha256).digits(8).build()?;
/// assert_eq!(policy.digits(), 8);
/// assert!(TotpPolicy::builder().digits(4).build().is_err());
/// # Ok::<(), secondfactor::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct TotpPolicyBuilder {
    algorithm: Algorithm,
    digits: u32,
    period: u64,
    skew: u32,
}

impl Default for TotpPolicyBuilder {
    fn default() -> Self {
        let d = TotpPolicy::default();
        TotpPolicyBuilder {
            algorithm: d.algorithm,
            digits: d.digits,
            period: d.period,
            skew: d.skew,
        }
    }
}

impl TotpPolicyBuilder {
    /// Sets the HMAC hash function (default SHA-1).
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the number of digits, 6 to 8 (default 6).
    pub fn digits(mut self, digits: u32) -> Self {
        self.digits = digits;
        self
    }

    /// Sets the period in seconds, 1 to 3600 (default 30).
    pub fn period(mut self, period: u64) -> Self {
        self.period = period;
        self
    }

    /// Sets the skew in steps, 0 to 10 (default 1).
    pub fn skew(mut self, skew: u32) -> Self {
        self.skew = skew;
        self
    }

    /// Validates and builds the policy.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`], as for [`TotpPolicy::new`].
    pub fn build(self) -> Result<TotpPolicy> {
        TotpPolicy::new(self.algorithm, self.digits, self.period, self.skew)
    }
}

/// A normalized TOTP code, made by [`TotpPolicy::normalize_code`].
///
/// Its `Debug` output is redacted and it is zeroized on drop. A code is only ever
/// compared in constant time, by [`TotpKey::verify`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Code {
    value: u32,
    digits: u32,
}

impl Code {
    /// The number of digits the code was typed with.
    pub fn digits(&self) -> u32 {
        self.digits
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

/// The outcome of [`TotpKey::verify_after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verification {
    /// The code matches a step newer than the last used one; `step` is the newest
    /// such step. Record it as the last used step (with a compare-and-set).
    Accepted {
        /// The accepted time step.
        step: u64,
    },
    /// The code is correct but matches only steps at or before the last used one:
    /// a replay. `step` is the newest matching step.
    Replayed {
        /// The newest already-used step the code matches.
        step: u64,
    },
    /// The code matches no step in the window.
    Rejected,
}

/// The HMAC key state of one secret, per algorithm.
enum PreparedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

/// Reduction modulo `10^digits` without a division instruction, whose latency may
/// depend on its operands (Lemire, Kaser, Kurz: "Faster remainder by direct
/// computation", 2019). Exact for every `u32` numerator and divisor > 1.
#[derive(Clone, Copy)]
struct Modulus {
    divisor: u32,
    inverse: u64,
}

impl Modulus {
    fn new(divisor: u32) -> Self {
        let divisor = divisor.max(2);
        Modulus {
            divisor,
            inverse: (u64::MAX / u64::from(divisor)).wrapping_add(1),
        }
    }

    fn reduce(self, n: u32) -> u32 {
        let low = self.inverse.wrapping_mul(u64::from(n));
        // The product shifted right by 64 is below `divisor`, so it fits in u32.
        ((u128::from(low) * u128::from(self.divisor)) >> 64) as u32
    }
}

/// One user's TOTP secret, prepared as HMAC key state for a policy.
///
/// Build it once per verification request (or keep it while the secret is in
/// memory); each candidate step then costs one clone of the prepared state, an
/// 8-byte update, a finalization and the dynamic truncation of RFC 4226 §5.3.
/// The key state is zeroized on drop and `Debug` is redacted.
pub struct TotpKey {
    policy: TotpPolicy,
    mac: PreparedMac,
    modulus: Modulus,
}

impl fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpKey")
            .field("policy", &self.policy)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Prepares HMAC key state for `secret`, deriving the block-sized key of RFC 2104
/// §2 here (hash if longer than a block, then zero-pad) so that keying is infallible
/// and our copy of the derived key is wiped.
fn prepare<D>(secret: &[u8]) -> Hmac<D>
where
    D: EagerHash,
    Hmac<D>: KeyInit,
{
    let mut block = Key::<Hmac<D>>::default();
    if secret.len() > block.len() {
        let mut hashed = D::digest(secret);
        block
            .iter_mut()
            .zip(hashed.iter())
            .for_each(|(d, s)| *d = *s);
        hashed.as_mut_slice().zeroize();
    } else {
        block.iter_mut().zip(secret).for_each(|(d, s)| *d = *s);
    }
    let mac = <Hmac<D> as KeyInit>::new(&block);
    block.as_mut_slice().zeroize();
    mac
}

/// HMAC of the big-endian step counter, dynamically truncated to 31 bits
/// (RFC 4226 §5.3), before the reduction modulo `10^digits`.
fn truncated_hmac<D>(prepared: &Hmac<D>, step: u64) -> u32
where
    D: EagerHash,
    Hmac<D>: Mac + Clone,
{
    let mut mac = prepared.clone();
    mac.update(&step.to_be_bytes());
    let out = mac.finalize();
    dynamic_truncation(out.as_bytes())
}

/// RFC 4226 §5.3 `DT`: 31 bits at the offset named by the low nibble of the last byte.
fn dynamic_truncation(mac: &[u8]) -> u32 {
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    match mac.get(offset..offset + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]) & 0x7fff_ffff,
        // Unreachable: every supported MAC is at least 20 bytes long.
        _ => 0,
    }
}

/// The constant-time window scan behind [`TotpKey::verify_after`].
///
/// Computes `hotp` for all `2 * skew + 1` candidates, oldest first, including
/// candidates that fall below step 0 or above `u64::MAX` (their results are masked
/// out), compares each with the code in constant time and keeps the newest match
/// with conditional selects. The only branches are on public values (time, skew,
/// code length) and on the final outcome.
fn scan_window<F>(
    policy: &TotpPolicy,
    mut hotp: F,
    code: &Code,
    unix_secs: u64,
    last_used: Option<u64>,
) -> Verification
where
    F: FnMut(u64) -> u32,
{
    let step = policy.step_at(unix_secs);
    let skew = u64::from(policy.skew);
    let same_length = Choice::from(u8::from(code.digits == policy.digits));
    let (has_last, last) = match last_used {
        Some(s) => (Choice::from(1), s),
        None => (Choice::from(0), 0),
    };

    let (lowest, borrowed) = step.overflowing_sub(skew);
    let mut fresh_found = Choice::from(0);
    let mut fresh_step = 0u64;
    let mut any_found = Choice::from(0);
    let mut any_step = 0u64;
    for i in 0..=2 * skew {
        let (candidate, carried) = lowest.overflowing_add(i);
        // The true candidate `step - skew + i` lies in 0..=u64::MAX exactly when the
        // subtraction's borrow and the addition's carry cancel out (or neither happened).
        let in_range = Choice::from(u8::from(borrowed == carried));
        let matched = hotp(candidate).ct_eq(&code.value) & in_range & same_length;
        let fresh = matched & (!has_last | candidate.ct_gt(&last));
        fresh_step.conditional_assign(&candidate, fresh);
        fresh_found |= fresh;
        any_step.conditional_assign(&candidate, matched);
        any_found |= matched;
    }

    if bool::from(fresh_found) {
        Verification::Accepted { step: fresh_step }
    } else if bool::from(any_found) {
        Verification::Replayed { step: any_step }
    } else {
        Verification::Rejected
    }
}

impl TotpKey {
    /// Prepares the HMAC key state of `secret` (the raw secret bytes, not base32)
    /// for `policy`.
    pub fn new(policy: &TotpPolicy, secret: &[u8]) -> Self {
        let mac = match policy.algorithm {
            Algorithm::Sha1 => PreparedMac::Sha1(prepare::<Sha1>(secret)),
            Algorithm::Sha256 => PreparedMac::Sha256(prepare::<Sha256>(secret)),
            Algorithm::Sha512 => PreparedMac::Sha512(prepare::<Sha512>(secret)),
        };
        TotpKey {
            policy: *policy,
            mac,
            modulus: Modulus::new(10u32.pow(policy.digits)),
        }
    }

    /// The policy this key was prepared for.
    pub fn policy(&self) -> &TotpPolicy {
        &self.policy
    }

    /// The HOTP value (RFC 4226 §5.3) for counter `step`: the code of that time
    /// step, as an integer below `10^digits`.
    pub fn code_at_step(&self, step: u64) -> u32 {
        let raw = match &self.mac {
            PreparedMac::Sha1(m) => truncated_hmac(m, step),
            PreparedMac::Sha256(m) => truncated_hmac(m, step),
            PreparedMac::Sha512(m) => truncated_hmac(m, step),
        };
        self.modulus.reduce(raw)
    }

    /// The code for the time `unix_secs`, zero-padded to the policy's digits.
    ///
    /// Meant for tests and examples (the user's phone); servers verify with
    /// [`verify`](Self::verify), through the [`Service`](crate::Service).
    pub fn generate(&self, unix_secs: u64) -> String {
        let code = self.code_at_step(self.policy.step_at(unix_secs));
        format!("{code:0width$}", width = self.policy.digits as usize)
    }

    /// The newest step in `step_at(unix_secs) ± skew` whose code equals `code`, if any.
    ///
    /// Runs in constant time over the whole window and does not allocate. Does not
    /// know about replays: the [`Service`](crate::Service) accepts the step only if it
    /// can advance the authenticator's last used step past it (a compare-and-set in
    /// the store).
    pub fn verify(&self, code: &Code, unix_secs: u64) -> Option<u64> {
        match self.verify_after(code, unix_secs, None) {
            Verification::Accepted { step } => Some(step),
            Verification::Replayed { .. } | Verification::Rejected => None,
        }
    }

    /// Verifies `code` at `unix_secs`, given the last step accepted for this secret.
    ///
    /// [`Verification::Accepted`] carries the newest matching step greater than
    /// `last_used` (so a fresh code that happens to equal an already used one is not
    /// refused); [`Verification::Replayed`] means the code matches only steps at or
    /// before `last_used`; [`Verification::Rejected`] means no step matches (a code
    /// normalized under a policy with another number of digits never matches).
    ///
    /// Every candidate step of the window is computed and compared, in constant
    /// time, without heap allocation.
    pub(crate) fn verify_after(
        &self,
        code: &Code,
        unix_secs: u64,
        last_used: Option<u64>,
    ) -> Verification {
        let modulus = self.modulus;
        match &self.mac {
            PreparedMac::Sha1(m) => scan_window(
                &self.policy,
                |s| modulus.reduce(truncated_hmac(m, s)),
                code,
                unix_secs,
                last_used,
            ),
            PreparedMac::Sha256(m) => scan_window(
                &self.policy,
                |s| modulus.reduce(truncated_hmac(m, s)),
                code,
                unix_secs,
                last_used,
            ),
            PreparedMac::Sha512(m) => scan_window(
                &self.policy,
                |s| modulus.reduce(truncated_hmac(m, s)),
                code,
                unix_secs,
                last_used,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 4226 Appendix D seed.
    const SEED20: &[u8] = b"12345678901234567890";

    fn default_key() -> TotpKey {
        TotpKey::new(&TotpPolicy::default(), SEED20)
    }

    fn code(policy: &TotpPolicy, value: u32) -> Code {
        Code {
            value,
            digits: policy.digits,
        }
    }

    /// RFC 4226 §5.4: the worked example of dynamic truncation.
    #[test]
    fn dynamic_truncation_rfc4226_section_5_4() {
        let hmac_result = [
            0x1f, 0x86, 0x98, 0x69, 0x0e, 0x02, 0xca, 0x16, 0x61, 0x85, 0x50, 0xef, 0x7f, 0x19,
            0xda, 0x8e, 0x94, 0x5b, 0x55, 0x5a,
        ];
        assert_eq!(dynamic_truncation(&hmac_result), 0x50ef7f19);
        assert_eq!(Modulus::new(1_000_000).reduce(0x50ef7f19), 872921);
    }

    /// RFC 4226 Appendix D: the truncated 31-bit values ("Decimal") for counters 0..=9.
    #[test]
    fn truncated_values_rfc4226_appendix_d() {
        let expected: [u32; 10] = [
            1284755224, 1094287082, 137359152, 1726969429, 1640338314, 868254676, 1918287922,
            82162583, 673399871, 645520489,
        ];
        let key = default_key();
        let PreparedMac::Sha1(mac) = &key.mac else {
            panic!("default policy must be SHA-1")
        };
        for (counter, want) in expected.into_iter().enumerate() {
            assert_eq!(
                truncated_hmac(mac, counter as u64),
                want,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn modulus_edges() {
        for digits in 6..=8 {
            let d = 10u32.pow(digits);
            let m = Modulus::new(d);
            for n in [
                0,
                1,
                d - 1,
                d,
                d + 1,
                2 * d - 1,
                0x7fff_ffff,
                u32::MAX - 1,
                u32::MAX,
            ] {
                assert_eq!(m.reduce(n), n % d, "{n} mod {d}");
            }
        }
    }

    proptest! {
        #[test]
        fn modulus_matches_remainder(n in any::<u32>(), digits in 6u32..=8) {
            let d = 10u32.pow(digits);
            prop_assert_eq!(Modulus::new(d).reduce(n), n % d);
        }
    }

    /// The window scan computes every candidate, even when the first one matches or
    /// when candidates fall outside 0..=u64::MAX: no early exit, no skipping.
    #[test]
    fn scan_computes_every_candidate() {
        for skew in 0..=TotpPolicy::MAX_SKEW {
            let policy = TotpPolicy::new(Algorithm::Sha1, 6, 30, skew).unwrap();
            let c = code(&policy, 42);
            for (t, last) in [
                (1_000_000, None),
                (1_000_000, Some(u64::MAX)),
                (0, None),
                (45, Some(0)),
                (u64::MAX, None),
            ] {
                // Matching everywhere, nowhere, and only at the oldest candidate.
                let oldest = policy.step_at(t).wrapping_sub(u64::from(skew));
                let hotps: [&dyn Fn(u64) -> u32; 3] =
                    [&|_| 42, &|_| 7, &|s| if s == oldest { 42 } else { 7 }];
                for hotp in hotps {
                    let mut calls = 0u32;
                    let mut seen = Vec::new();
                    scan_window(
                        &policy,
                        |s| {
                            calls += 1;
                            seen.push(s);
                            hotp(s)
                        },
                        &c,
                        t,
                        last,
                    );
                    assert_eq!(calls, 2 * skew + 1, "skew {skew}, t {t}");
                    let step = policy.step_at(t);
                    let want: Vec<u64> = (0..=2 * u64::from(skew))
                        .map(|i| step.wrapping_sub(u64::from(skew)).wrapping_add(i))
                        .collect();
                    assert_eq!(seen, want);
                }
            }
        }
    }

    /// When every candidate matches, the newest one in range wins.
    #[test]
    fn scan_reports_newest_match() {
        let policy = TotpPolicy::new(Algorithm::Sha1, 6, 30, 3).unwrap();
        let c = code(&policy, 42);
        let t = 30 * 1000;
        assert_eq!(
            scan_window(&policy, |_| 42, &c, t, None),
            Verification::Accepted { step: 1003 }
        );
        assert_eq!(
            scan_window(&policy, |_| 42, &c, t, Some(1001)),
            Verification::Accepted { step: 1003 }
        );
        assert_eq!(
            scan_window(&policy, |_| 42, &c, t, Some(1003)),
            Verification::Replayed { step: 1003 }
        );
        assert_eq!(
            scan_window(
                &policy,
                |s| if s <= 999 { 42 } else { 0 },
                &c,
                t,
                Some(1000)
            ),
            Verification::Replayed { step: 999 }
        );
        // Near step 0, wrapped candidates (u64::MAX - 2 ..= u64::MAX) never count.
        assert_eq!(
            scan_window(&policy, |s| if s > 10 { 42 } else { 0 }, &c, 0, None),
            Verification::Rejected
        );
        assert_eq!(
            scan_window(&policy, |_| 42, &c, 0, None),
            Verification::Accepted { step: 3 }
        );
        // Near u64::MAX (period 1), wrapped candidates 0..=2 never count.
        let p1 = TotpPolicy::new(Algorithm::Sha1, 6, 1, 3).unwrap();
        assert_eq!(
            scan_window(&p1, |s| if s < 10 { 42 } else { 0 }, &c, u64::MAX, None),
            Verification::Rejected
        );
        assert_eq!(
            scan_window(&p1, |_| 42, &c, u64::MAX, None),
            Verification::Accepted { step: u64::MAX }
        );
    }

    /// A code normalized under a policy with other digits never matches, even when
    /// its integer value does.
    #[test]
    fn code_with_other_length_never_matches() {
        let policy = TotpPolicy::builder().digits(8).build().unwrap();
        let key = TotpKey::new(&policy, SEED20);
        let t = 1_700_000_000;
        let value = key.code_at_step(policy.step_at(t));
        let right = Code { value, digits: 8 };
        let wrong = Code { value, digits: 7 };
        assert_eq!(key.verify(&right, t), Some(policy.step_at(t)));
        assert_eq!(key.verify(&wrong, t), None);
    }

    #[test]
    fn normalized_value_keeps_leading_zeros_meaning() {
        let p = TotpPolicy::default();
        assert_eq!(p.normalize_code("012345").unwrap().value, 12345);
        assert_eq!(p.normalize_code(" 123 456 ").unwrap().value, 123456);
        assert_eq!(p.normalize_code("000000").unwrap().value, 0);
        let p8 = TotpPolicy::builder().digits(8).build().unwrap();
        let c = p8.normalize_code("9999 9999").unwrap();
        assert_eq!((c.value, c.digits()), (99_999_999, 8));
    }

    /// Secret-bearing types wipe themselves. `Hmac<D>` holds two hash cores (the
    /// ipad- and opad-keyed states) and a block buffer; with the `zeroize` features of
    /// hmac/sha1/sha2 enabled in Cargo.toml each of them wipes itself on drop. This
    /// stops compiling if those features are dropped.
    #[test]
    fn key_state_and_code_are_zeroize_on_drop() {
        use hmac::block_api::HmacCore;
        use hmac::digest::block_api::Buffer;
        fn zeroize_on_drop<T: ZeroizeOnDrop>() {}
        zeroize_on_drop::<<Sha1 as EagerHash>::Core>();
        zeroize_on_drop::<<Sha256 as EagerHash>::Core>();
        zeroize_on_drop::<<Sha512 as EagerHash>::Core>();
        zeroize_on_drop::<Buffer<HmacCore<Sha1>>>();
        zeroize_on_drop::<Buffer<HmacCore<Sha256>>>();
        zeroize_on_drop::<Buffer<HmacCore<Sha512>>>();
        zeroize_on_drop::<hmac::digest::CtOutput<Hmac<Sha1>>>();
        zeroize_on_drop::<Code>();
    }
}

/// The replay rule of [`TotpKey::verify_after`] (crate-private: the service applies
/// it through the store's compare-and-set of the last used step), with the RFC 6238
/// seed; moved here from the public-API tests when `verify_after` left the API.
#[cfg(test)]
mod replay_tests {
    use super::*;

    const SEED_SHA1: &[u8] = b"12345678901234567890";

    fn normalize(p: &TotpPolicy, value: u32) -> Code {
        p.normalize_code(&format!("{value:0width$}", width = p.digits() as usize))
            .unwrap()
    }

    /// RFC 6238 §5.2: a step is accepted once. `last_used` turns later matches of the
    /// same or an older step into `Replayed`.
    #[test]
    fn replay_is_reported() {
        let p = TotpPolicy::default();
        let key = TotpKey::new(&p, SEED_SHA1);
        let t = 1_700_000_000;
        let s = p.step_at(t);
        let current = normalize(&p, key.code_at_step(s));
        let previous = normalize(&p, key.code_at_step(s - 1));

        assert_eq!(
            key.verify_after(&current, t, None),
            Verification::Accepted { step: s }
        );
        assert_eq!(
            key.verify_after(&current, t, Some(s - 1)),
            Verification::Accepted { step: s }
        );
        assert_eq!(
            key.verify_after(&current, t, Some(s)),
            Verification::Replayed { step: s }
        );
        assert_eq!(
            key.verify_after(&current, t, Some(s + 1)),
            Verification::Replayed { step: s }
        );
        assert_eq!(
            key.verify_after(&previous, t, Some(s)),
            Verification::Replayed { step: s - 1 }
        );
        assert_eq!(
            key.verify_after(&previous, t, Some(s - 2)),
            Verification::Accepted { step: s - 1 }
        );

        let wrong = normalize(&p, (key.code_at_step(s) + 1) % 1_000_000);
        for last in [None, Some(0), Some(s), Some(u64::MAX)] {
            assert_eq!(key.verify_after(&wrong, t, last), Verification::Rejected);
        }
        // `verify` knows nothing of replays.
        assert_eq!(key.verify(&current, t), Some(s));
    }

    /// With secret "12345678901234567890" (SHA-1, 6 digits), steps 57766335 and
    /// 57766336 share the code 251166, and steps 57017782 and 57017784 share 882938
    /// (found by exhaustive search; asserted below). The newest matching step is
    /// reported, and a fresh step is not refused because an older step with the same
    /// code was used.
    #[test]
    fn colliding_codes_take_the_newest_unused_step() {
        let p = TotpPolicy::default();
        let key = TotpKey::new(&p, SEED_SHA1);

        let (a, b) = (57_766_335u64, 57_766_336u64);
        assert_eq!(key.code_at_step(a), 251166);
        assert_eq!(key.code_at_step(b), 251166);
        assert_ne!(key.code_at_step(a - 1), 251166);
        assert_ne!(key.code_at_step(b + 1), 251166);
        let c = p.normalize_code("251 166").unwrap();
        for t in [a * 30, a * 30 + 29, b * 30, b * 30 + 29] {
            assert_eq!(key.verify(&c, t), Some(b), "t {t}");
            assert_eq!(
                key.verify_after(&c, t, Some(a)),
                Verification::Accepted { step: b }
            );
            assert_eq!(
                key.verify_after(&c, t, Some(b)),
                Verification::Replayed { step: b }
            );
            assert_eq!(
                key.verify_after(&c, t, Some(a - 1)),
                Verification::Accepted { step: b }
            );
        }
        // One period later only b is in the window.
        assert_eq!(key.verify(&c, (b + 1) * 30), Some(b));
        // One period earlier only a is in the window.
        assert_eq!(key.verify(&c, (a - 1) * 30), Some(a));
        assert_eq!(
            key.verify_after(&c, (a - 1) * 30, Some(a)),
            Verification::Replayed { step: a }
        );

        let (x, y) = (57_017_782u64, 57_017_784u64);
        assert_eq!(key.code_at_step(x), 882938);
        assert_eq!(key.code_at_step(y), 882938);
        assert_ne!(key.code_at_step(x + 1), 882938);
        let c = p.normalize_code("882938").unwrap();
        let t = (x + 1) * 30 + 10;
        assert_eq!(key.verify(&c, t), Some(y));
        assert_eq!(
            key.verify_after(&c, t, Some(x)),
            Verification::Accepted { step: y }
        );
        assert_eq!(
            key.verify_after(&c, t, Some(x + 1)),
            Verification::Accepted { step: y }
        );
        assert_eq!(
            key.verify_after(&c, t, Some(y)),
            Verification::Replayed { step: y }
        );
    }
}
