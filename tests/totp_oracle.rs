//! Agreement with totp-rs 6, the reference oracle, over random secrets, times,
//! algorithms, digit counts, periods and skews.

use proptest::prelude::*;
use secondfactor::totp::{Algorithm, TotpKey, TotpPolicy};

fn oracle(p: &TotpPolicy, secret: &[u8]) -> totp_rs::Totp {
    let alg = match p.algorithm() {
        Algorithm::Sha1 => totp_rs::Algorithm::SHA1,
        Algorithm::Sha256 => totp_rs::Algorithm::SHA256,
        Algorithm::Sha512 => totp_rs::Algorithm::SHA512,
    };
    totp_rs::Builder::new()
        .with_algorithm(alg)
        .with_digits(p.digits() as u8)
        .with_skew(p.skew() as u16)
        .with_step_duration(p.period())
        .with_secret(secret.to_vec())
        // Short secrets are allowed here on purpose: the HMAC must agree for any key.
        .build_noncompliant()
}

fn any_policy() -> impl Strategy<Value = TotpPolicy> {
    (
        prop_oneof![
            Just(Algorithm::Sha1),
            Just(Algorithm::Sha256),
            Just(Algorithm::Sha512)
        ],
        6u32..=8,
        prop_oneof![Just(30u64), Just(60), Just(1), Just(3600), 1u64..=3600],
        prop_oneof![Just(1u32), 0u32..=10],
    )
        .prop_map(|(a, d, p, s)| TotpPolicy::new(a, d, p, s).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Codes agree with totp-rs for every algorithm, length and period, for secrets
    /// shorter and longer than the hash block (64 bytes; 128 for SHA-512).
    #[test]
    fn generate_agrees_with_totp_rs(
        policy in any_policy(),
        secret in proptest::collection::vec(any::<u8>(), 1..=200),
        time in 0u64..=40_000_000_000,
    ) {
        let key = TotpKey::new(&policy, &secret);
        let totp = oracle(&policy, &secret);
        prop_assert_eq!(key.generate(time), totp.generate(time).to_string());
        let step = policy.step_at(time);
        prop_assert_eq!(key.code_at_step(step + 1), totp.generate((step + 1) * policy.period()).to_string().parse::<u32>().unwrap());
    }

    /// Verification agrees with totp-rs `check` for codes from steps around and
    /// inside the window. totp-rs returns the oldest matching step, we the newest:
    /// both must accept the same codes, ours must be at least theirs, and no newer
    /// step of the window may carry the same code.
    #[test]
    fn verify_agrees_with_totp_rs(
        policy in any_policy(),
        secret in proptest::collection::vec(any::<u8>(), 10..=64),
        time in 100_000u64..=10_000_000_000,
        offset in -12i64..=12,
    ) {
        let key = TotpKey::new(&policy, &secret);
        let totp = oracle(&policy, &secret);
        let period = policy.period();
        let step = policy.step_at(time);
        let code_step = step.checked_add_signed(offset).unwrap();
        let typed = totp.generate(code_step * period).to_string();
        let code = policy.normalize_code(&typed).unwrap();

        let theirs = totp.check(&typed, time);
        let ours = key.verify(&code, time);
        prop_assert_eq!(ours.is_some(), theirs.is_some(), "offset {}", offset);
        if let (Some(o), Some(t)) = (ours, theirs) {
            prop_assert!(o >= t);
            let skew = u64::from(policy.skew());
            prop_assert!(o <= step + skew && o + skew >= step);
            prop_assert_eq!(&totp.generate(o * period).to_string(), &typed);
            for newer in (o + 1)..=(step + skew) {
                prop_assert_ne!(&totp.generate(newer * period).to_string(), &typed);
            }
        }
    }
}
