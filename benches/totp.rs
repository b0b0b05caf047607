//! TOTP verification at ±1 step of skew, side by side:
//!
//! - `floor`: the least work any correct verifier must do, written here: HMAC-SHA-1
//!   key state prepared once, then for each of the three steps a clone of that
//!   state, an 8-byte counter update, finalization, dynamic truncation and a
//!   constant-time integer compare (`subtle`).
//! - `secondfactor`: [`TotpKey::verify`] on a prepared key (the code already
//!   normalized, as the flows hold it).
//! - `totp-rs`: totp-rs 6's own `check` on the same secret, time and code string.
//!
//! Each runs with a valid code (the current step's) and a wrong one. The floor and
//! `secondfactor` do the same work either way (constant time); totp-rs stops at the
//! first matching step. `secondfactor` should stay within 1.1x the floor.
//!
//! Run: `cargo bench --bench totp`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, KeyInit, Mac};
use secondfactor::totp::{Code, TotpKey, TotpPolicy};
use sha1::Sha1;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

/// RFC 6238 test seed (20 bytes, the default 160-bit secret size).
const SECRET: &[u8] = b"12345678901234567890";
const NOW: u64 = 1_700_000_000;

/// The floor: a bare ±1-skew HMAC-SHA-1 verifier with the key state prepared once.
///
/// This and the two wrappers below are kept out of line so that a profiler can single
/// them out: `valgrind --tool=callgrind --toggle-collect='*floor_verify*' <bench
/// binary> --bench --profile-time 2 totp_verify_skew1/floor/valid`.
#[inline(never)]
fn floor_verify(prepared: &Hmac<Sha1>, code: u32, unix_secs: u64) -> Option<u64> {
    let step = unix_secs / 30;
    let mut found = Choice::from(0);
    let mut found_step = 0u64;
    for candidate in step - 1..=step + 1 {
        let mut mac = prepared.clone();
        mac.update(&candidate.to_be_bytes());
        let out = mac.finalize().into_bytes();
        let offset = usize::from(out[19] & 0x0f);
        let truncated = u32::from_be_bytes([
            out[offset],
            out[offset + 1],
            out[offset + 2],
            out[offset + 3],
        ]) & 0x7fff_ffff;
        let matched = (truncated % 1_000_000).ct_eq(&code);
        found_step.conditional_assign(&candidate, matched);
        found |= matched;
    }
    bool::from(found).then_some(found_step)
}

#[inline(never)]
fn secondfactor_verify(key: &TotpKey, code: &Code, unix_secs: u64) -> Option<u64> {
    key.verify(code, unix_secs)
}

#[inline(never)]
fn totp_rs_check(oracle: &totp_rs::Totp, code: &str, unix_secs: u64) -> Option<u64> {
    oracle.check(code, unix_secs)
}

fn verify(c: &mut Criterion) {
    let policy = TotpPolicy::default();
    let key = TotpKey::new(&policy, SECRET);
    let valid = key.generate(NOW);
    let wrong = format!("{:06}", (valid.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert!(
        key.verify(&policy.normalize_code(&wrong).unwrap(), NOW)
            .is_none()
    );

    let floor_key = <Hmac<Sha1> as KeyInit>::new_from_slice(SECRET).unwrap();
    let oracle = totp_rs::Builder::new()
        .with_secret(SECRET.to_vec())
        .build()
        .unwrap();

    // All three agree on both inputs before anything is timed.
    let step = policy.step_at(NOW);
    for (code, want) in [(&valid, Some(step)), (&wrong, None)] {
        let n: u32 = code.parse().unwrap();
        assert_eq!(floor_verify(&floor_key, n, NOW), want);
        assert_eq!(key.verify(&policy.normalize_code(code).unwrap(), NOW), want);
        assert_eq!(oracle.check(code, NOW), want);
    }

    let mut g = c.benchmark_group("totp_verify_skew1");
    g.measurement_time(Duration::from_secs(4));
    for (label, code) in [("valid", &valid), ("wrong", &wrong)] {
        let n: u32 = code.parse().unwrap();
        let normalized = policy.normalize_code(code).unwrap();
        g.bench_function(format!("floor/{label}"), |b| {
            b.iter(|| floor_verify(black_box(&floor_key), black_box(n), black_box(NOW)))
        });
        g.bench_function(format!("secondfactor/{label}"), |b| {
            b.iter(|| secondfactor_verify(black_box(&key), black_box(&normalized), black_box(NOW)))
        });
        g.bench_function(format!("totp-rs/{label}"), |b| {
            b.iter(|| totp_rs_check(black_box(&oracle), black_box(code), black_box(NOW)))
        });
    }
    g.finish();

    // The other costs around a verification, for reference.
    let mut g = c.benchmark_group("totp_parts");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("normalize_code", |b| {
        b.iter(|| policy.normalize_code(black_box(" 123 456 ")))
    });
    g.bench_function("TotpKey::new", |b| {
        b.iter(|| TotpKey::new(black_box(&policy), black_box(SECRET)))
    });
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
