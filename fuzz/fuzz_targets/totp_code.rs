//! TOTP code normalization and verification on arbitrary input: never panics, and
//! a code is accepted exactly when it is `digits` ASCII digits once ASCII spaces
//! are dropped (and the input is at most `MAX_CODE_INPUT_LEN` bytes).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use secondfactor::totp::{Algorithm, MAX_CODE_INPUT_LEN, TotpKey, TotpPolicy, Verification};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    typed: &'a str,
    algorithm: u8,
    digits: u8,
    period: u16,
    skew: u8,
    secret: &'a [u8],
    now: u64,
    last_used: Option<u64>,
}

fuzz_target!(|input: Input<'_>| {
    let algorithm =
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][usize::from(input.algorithm % 3)];
    let Ok(policy) = TotpPolicy::new(
        algorithm,
        u32::from(input.digits),
        u64::from(input.period),
        u32::from(input.skew),
    ) else {
        return;
    };
    let kept: Vec<u8> = input.typed.bytes().filter(|b| *b != b' ').collect();
    let well_formed = input.typed.len() <= MAX_CODE_INPUT_LEN
        && kept.len() == policy.digits() as usize
        && kept.iter().all(u8::is_ascii_digit);
    let normalized = policy.normalize_code(input.typed);
    assert_eq!(normalized.is_ok(), well_formed, "{:?}", input.typed);
    let Ok(code) = normalized else {
        return;
    };

    let key = TotpKey::new(&policy, input.secret);
    let step = key.verify(&code, input.now);
    match key.verify_after(&code, input.now, input.last_used) {
        Verification::Accepted { step: s } => {
            assert!(input.last_used.is_none_or(|last| s > last));
            assert!(step.is_some_and(|newest| s <= newest));
        }
        Verification::Replayed { step: s } => {
            assert!(input.last_used.is_some_and(|last| s <= last));
        }
        Verification::Rejected => assert_eq!(step, None),
    }
    if let Some(s) = step {
        // The reported step's code is the typed one.
        let typed: String = String::from_utf8(kept).unwrap();
        let width = policy.digits() as usize;
        assert_eq!(format!("{:0width$}", key.code_at_step(s)), typed);
    }
});
