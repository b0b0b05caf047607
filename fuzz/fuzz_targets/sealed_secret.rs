//! Opening sealed secrets from arbitrary bytes fails cleanly: `SealedSecret::from_bytes`
//! and `KeyRing::open` never panic, and a genuine blob with any byte changed (or
//! opened for another user) never opens.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use secondfactor::secret::{KeyRing, SealedSecret, SealingKey, Secret};

#[derive(Arbitrary, Debug)]
struct Input {
    raw: Vec<u8>,
    flips: Vec<(u8, u8)>,
    other_user: bool,
}

fuzz_target!(|input: Input| {
    let keys = KeyRing::new(1, SealingKey::from_bytes([1; 32]))
        .with_key(7, SealingKey::from_bytes([7; 32]))
        .unwrap();
    if let Ok(sealed) = SealedSecret::from_bytes(input.raw) {
        // Without the key, forging one is infeasible: it must not open.
        assert!(keys.open("alice", &sealed).is_err());
    }

    let secret = Secret::from_bytes(&[0x42; 20]).unwrap();
    let genuine = keys.seal("alice", &secret).unwrap();
    let mut bytes = genuine.as_bytes().to_vec();
    for (at, xor) in input.flips {
        let i = usize::from(at) % bytes.len();
        bytes[i] ^= xor;
    }
    let changed = bytes != genuine.as_bytes();
    let user = if input.other_user { "bob" } else { "alice" };
    let Ok(blob) = SealedSecret::from_bytes(bytes) else {
        return;
    };
    match keys.open(user, &blob) {
        Ok(opened) => {
            assert!(!changed && !input.other_user, "a tampered blob opened");
            assert!(opened == secret);
        }
        Err(_) => assert!(changed || input.other_user, "a genuine blob did not open"),
    }
});
