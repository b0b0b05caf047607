//! `Secret::from_base32` on arbitrary text: never panics, and a decoded secret
//! encodes back to text that decodes to the same secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secondfactor::secret::Secret;

fuzz_target!(|text: &str| {
    let Ok(secret) = Secret::from_base32(text) else {
        return;
    };
    let encoded = secret.to_base32();
    let again = Secret::from_base32(&encoded).expect("an encoded secret must decode");
    assert!(again == secret);
    assert_eq!(again.expose_bytes(), secret.expose_bytes());
    // Lowercase and spaced forms decode to the same secret.
    let spaced: String = encoded
        .to_lowercase()
        .chars()
        .flat_map(|c| [c, ' '])
        .collect();
    if spaced.len() <= 256 {
        assert!(Secret::from_base32(&spaced).expect("spaced form") == secret);
    }
});
