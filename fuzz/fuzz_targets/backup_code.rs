//! Backup-code normalization and verification on arbitrary input: never panics;
//! accepted input is exactly 15 alphabet characters (any case) once spaces and
//! hyphens are dropped; a code verifies against its own hash only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secondfactor::backup::{self, ALPHABET, CODE_LEN, MAX_INPUT_BYTES};
use secondfactor::secret::{KeyRing, SealingKey};

fuzz_target!(|typed: &str| {
    let kept: Vec<u8> = typed
        .bytes()
        .filter(|b| *b != b' ' && *b != b'-')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let well_formed = typed.len() <= MAX_INPUT_BYTES
        && kept.len() == CODE_LEN
        && kept.iter().all(|b| ALPHABET.contains(b));
    let normalized = backup::normalize(typed);
    assert_eq!(normalized.is_ok(), well_formed, "{typed:?}");
    let Ok(code) = normalized else {
        return;
    };
    let keys = KeyRing::new(1, SealingKey::from_bytes([3; 32]));
    let stored = backup::hash(&keys, &code);
    assert!(backup::verify(&keys, &code, &stored));
    // The canonical form hashes the same as the typed form.
    let canonical = backup::normalize(std::str::from_utf8(&kept).unwrap()).unwrap();
    assert!(backup::verify(&keys, &canonical, &stored));
    // Another key never accepts it.
    let other = KeyRing::new(2, SealingKey::from_bytes([4; 32]));
    assert!(!backup::verify(&other, &code, &stored));
});
