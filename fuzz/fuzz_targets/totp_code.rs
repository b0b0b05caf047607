//! TOTP code normalization and verification on arbitrary input: never panics; a
//! code is accepted exactly when it is `digits` ASCII digits once ASCII spaces are
//! dropped (and the input is at most `MAX_CODE_INPUT_LEN` bytes); verification
//! reports the newest step of the window whose code is the typed one, and nothing
//! when no step of the window has it (checked against a step-by-step scan).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use secondfactor::totp::{Algorithm, MAX_CODE_INPUT_LEN, TotpKey, TotpPolicy};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    typed: &'a str,
    algorithm: u8,
    digits: u8,
    period: u16,
    skew: u8,
    secret: &'a [u8],
    now: u64,
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
    let typed: String = String::from_utf8(kept).unwrap();
    let width = policy.digits() as usize;
    let code_at = |s: u64| format!("{:0width$}", key.code_at_step(s));
    let now = policy.step_at(input.now);
    let skew = u64::from(policy.skew());
    // The window, clamped to the u64 steps that exist.
    let (low, high) = (now.saturating_sub(skew), now.saturating_add(skew));
    match step {
        Some(s) => {
            // The reported step is in the window, carries the typed code, and is the
            // newest step of the window that does.
            assert!(low <= s && s <= high, "step {s} outside {low}..={high}");
            assert_eq!(code_at(s), typed);
            if s < high {
                for newer in s + 1..=high {
                    assert_ne!(code_at(newer), typed, "a newer step {newer} matches too");
                }
            }
        }
        // No step of the window carries the code.
        None => {
            for s in low..=high {
                assert_ne!(code_at(s), typed, "step {s} matches but was not reported");
            }
        }
    }
});
