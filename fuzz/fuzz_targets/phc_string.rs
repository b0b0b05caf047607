//! `PasswordHash::from_phc` on arbitrary text never panics; what it accepts can be
//! checked with `needs_rehash` (and a hasher with other settings always wants a
//! rehash of it unless the settings match).
#![no_main]

use libfuzzer_sys::fuzz_target;
use secondfactor::password::{PasswordHash, PasswordHasher};

fuzz_target!(|text: &str| {
    let Ok(hash) = PasswordHash::from_phc(text) else {
        return;
    };
    assert_eq!(hash.as_str(), text);
    let hasher = PasswordHasher::new(8, 1, 1).unwrap();
    let _ = hasher.needs_rehash(&hash);
    let _ = PasswordHasher::default().needs_rehash(&hash);
    // Accepted strings load again.
    assert!(PasswordHash::from_phc(hash.as_str()).is_ok());
});
