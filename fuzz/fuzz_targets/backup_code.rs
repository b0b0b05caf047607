//! Backup-code normalization and verification on arbitrary input: never panics;
//! accepted input is exactly 15 alphabet characters (any case) once spaces and
//! hyphens are dropped; a code verifies against its own hash only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secondfactor::__private::{backup_code_hash, backup_code_matches};
use secondfactor::backup::{ALPHABET, CODE_LEN, MAX_INPUT_BYTES};
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
    let keys = KeyRing::new(1, SealingKey::from_bytes([3; 32]));
    let stored = backup_code_hash(&keys, typed);
    assert_eq!(stored.is_ok(), well_formed, "{typed:?}");
    let Ok(stored) = stored else {
        assert!(!backup_code_matches(&keys, typed, &keys_hash_of_nothing()));
        return;
    };
    assert!(backup_code_matches(&keys, typed, &stored));
    // The canonical form hashes the same as the typed form.
    let canonical = std::str::from_utf8(&kept).unwrap();
    assert!(backup_code_matches(&keys, canonical, &stored));
    // Another key never accepts it.
    let other = KeyRing::new(2, SealingKey::from_bytes([4; 32]));
    assert!(!backup_code_matches(&other, typed, &stored));
});

/// A stored hash no input can match by chance (all zero bytes).
fn keys_hash_of_nothing() -> secondfactor::secret::KeyedHash {
    secondfactor::secret::KeyedHash([0; 32])
}
