//! Known-answer and behaviour tests of `secondfactor::totp` through its public API.

use secondfactor::Error;
use secondfactor::totp::{Algorithm, Code, TotpKey, TotpPolicy};

/// RFC 6238 Appendix B seeds: the ASCII digits "1234567890" repeated to 20 bytes
/// for SHA-1, 32 bytes for SHA-256 and 64 bytes for SHA-512 (the seeds of the
/// reference implementation in Appendix A).
const SEED_SHA1: &[u8] = b"12345678901234567890";
const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

fn policy(alg: Algorithm, digits: u32, period: u64, skew: u32) -> TotpPolicy {
    TotpPolicy::new(alg, digits, period, skew).unwrap()
}

fn normalize(p: &TotpPolicy, value: u32) -> Code {
    p.normalize_code(&format!("{value:0width$}", width = p.digits() as usize))
        .unwrap()
}

/// RFC 6238 Appendix B, "Test Vectors" table: 8-digit TOTP values, T0 = 0,
/// X = 30 s, for SHA1, SHA256 and SHA512 with the seeds above.
#[test]
fn rfc6238_appendix_b_test_vectors() {
    // (time, SHA1, SHA256, SHA512)
    const TABLE: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];
    let keys = [
        (Algorithm::Sha1, SEED_SHA1),
        (Algorithm::Sha256, SEED_SHA256),
        (Algorithm::Sha512, SEED_SHA512),
    ]
    .map(|(alg, seed)| TotpKey::new(&policy(alg, 8, 30, 1), seed));
    for (time, sha1, sha256, sha512) in TABLE {
        for (key, want) in keys.iter().zip([sha1, sha256, sha512]) {
            let alg = key.policy().algorithm();
            assert_eq!(key.generate(time), want, "{alg} at {time}");
            let step = key.policy().step_at(time);
            assert_eq!(key.code_at_step(step), want.parse::<u32>().unwrap());
            let code = key.policy().normalize_code(want).unwrap();
            assert_eq!(key.verify(&code, time), Some(step), "{alg} at {time}");
        }
    }
}

/// RFC 4226 Appendix D: HOTP values (6 digits, HMAC-SHA-1, secret
/// "12345678901234567890") for counters 0 to 9; the counter is the time step.
#[test]
fn rfc4226_appendix_d_hotp_values() {
    const HOTP: [u32; 10] = [
        755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
    ];
    let p = TotpPolicy::default();
    let key = TotpKey::new(&p, SEED_SHA1);
    for (counter, want) in HOTP.into_iter().enumerate() {
        assert_eq!(key.code_at_step(counter as u64), want, "counter {counter}");
        // Step `counter` is the time window [30 * counter, 30 * counter + 29].
        assert_eq!(key.generate(30 * counter as u64 + 29), format!("{want:06}"));
    }
}

/// The window is exactly `step - skew ..= step + skew`, at the first and the last
/// second of a period, for several skews.
#[test]
fn skew_window_edges() {
    let secret = b"window-edge-test-secret!";
    for skew in [0u32, 1, 2, 5] {
        for period in [30u64, 60] {
            let p = policy(Algorithm::Sha1, 6, period, skew);
            let key = TotpKey::new(&p, secret);
            let step = 55_555_555u64;
            let s = u64::from(skew);
            let outer = (step - s - 1)..=(step + s + 1);
            // Precondition for a meaningful test: no two steps around the window share a code.
            let codes: Vec<u32> = outer.clone().map(|k| key.code_at_step(k)).collect();
            let mut uniq = codes.clone();
            uniq.sort_unstable();
            uniq.dedup();
            assert_eq!(uniq.len(), codes.len(), "pick another secret");

            for t in [step * period, step * period + period - 1] {
                assert_eq!(p.step_at(t), step);
                for k in outer.clone() {
                    let c = normalize(&p, key.code_at_step(k));
                    let inside = k + s >= step && k <= step + s;
                    let want = inside.then_some(k);
                    assert_eq!(key.verify(&c, t), want, "skew {skew} step {k} t {t}");
                }
            }
            // One second before / after the period, the window has moved by one step:
            // its edges were outside, and the edge on the other side is out.
            let before = step * period - 1;
            let after = (step + 1) * period;
            let code_of = |k: u64| normalize(&p, key.code_at_step(k));
            assert_eq!(
                key.verify(&code_of(step - s - 1), before),
                Some(step - s - 1)
            );
            assert_eq!(key.verify(&code_of(step + s), before), None);
            assert_eq!(key.verify(&code_of(step - s), after), None);
            assert_eq!(
                key.verify(&code_of(step + s + 1), after),
                Some(step + s + 1)
            );
        }
    }
}

/// Candidates below step 0 are masked: at t = 0 the code of step `u64::MAX`
/// (what `0 - 1` wraps to) is refused. Likewise above `u64::MAX`.
#[test]
fn window_does_not_wrap_around() {
    let p = policy(Algorithm::Sha1, 6, 30, 1);
    let key = TotpKey::new(&p, SEED_SHA1);
    let wrapped = key.code_at_step(u64::MAX);
    assert_ne!(wrapped, key.code_at_step(0));
    assert_ne!(wrapped, key.code_at_step(1));
    for t in [0, 29] {
        assert_eq!(key.verify(&normalize(&p, wrapped), t), None);
        assert_eq!(key.verify(&normalize(&p, key.code_at_step(0)), t), Some(0));
        assert_eq!(key.verify(&normalize(&p, key.code_at_step(1)), t), Some(1));
    }

    let p1 = policy(Algorithm::Sha1, 6, 1, 1);
    let key = TotpKey::new(&p1, SEED_SHA1);
    let wrapped = key.code_at_step(0);
    assert_ne!(wrapped, key.code_at_step(u64::MAX));
    assert_ne!(wrapped, key.code_at_step(u64::MAX - 1));
    assert_eq!(key.verify(&normalize(&p1, wrapped), u64::MAX), None);
    let prev = normalize(&p1, key.code_at_step(u64::MAX - 1));
    assert_eq!(key.verify(&prev, u64::MAX), Some(u64::MAX - 1));
}

fn input_reason(r: Result<Code, Error>) -> &'static str {
    match r {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "code");
            reason
        }
        other => panic!("expected invalid_input, got {other:?}"),
    }
}

/// Only ASCII spaces are dropped; everything else that is not an ASCII digit is
/// `invalid_input`, as is the wrong number of digits and input over 64 bytes.
#[test]
fn code_normalization() {
    let p = TotpPolicy::default();
    let key = TotpKey::new(&p, SEED_SHA1);
    let t = 59; // step 1: code 287082 (RFC 4226 Appendix D)
    for ok in [
        "287082",
        " 287 082 ",
        "287 082",
        "  2 8 7 0 8 2",
        "287082   ",
    ] {
        let c = p.normalize_code(ok).unwrap();
        assert_eq!(key.verify(&c, t), Some(1), "{ok:?}");
    }

    for bad in [
        "28708a",
        "287-082",
        "287\t082",
        "\t287082",
        "287082\n",
        "287_082",
        "+287082",
        "٢٨٧٠٨٢",       // Arabic-Indic digits
        "２８７０８２", // full-width digits
        "287082\u{a0}", // no-break space
        "287 082\u{2009}",
    ] {
        assert_eq!(
            input_reason(p.normalize_code(bad)),
            "must contain only digits",
            "{bad:?}"
        );
    }
    for bad in ["", "      ", "28708", "2870820", "2 8 7 0 8", "0287082"] {
        assert_eq!(
            input_reason(p.normalize_code(bad)),
            "has the wrong number of digits",
            "{bad:?}"
        );
    }

    // The length bound applies to the raw input, before spaces are dropped.
    let at_limit = format!("{}287082", " ".repeat(58));
    assert_eq!(at_limit.len(), 64);
    assert!(p.normalize_code(&at_limit).is_ok());
    let over = format!("{}287082", " ".repeat(59));
    assert_eq!(input_reason(p.normalize_code(&over)), "is too long");
    assert_eq!(
        input_reason(p.normalize_code(&"9".repeat(10_000))),
        "is too long"
    );

    let err = p.normalize_code("12a456").unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(!err.to_string().contains("12a456"));

    let p8 = policy(Algorithm::Sha1, 8, 30, 1);
    assert!(p8.normalize_code("1234 5678").is_ok());
    assert!(p8.normalize_code("123456").is_err());
}

#[test]
fn policy_validation() {
    let d = TotpPolicy::default();
    assert_eq!(
        (d.algorithm(), d.digits(), d.period(), d.skew()),
        (Algorithm::Sha1, 6, 30, 1)
    );
    assert_eq!(TotpPolicy::builder().build().unwrap(), d);

    for (digits, period, skew) in [
        (4, 30, 1),
        (5, 30, 1),
        (9, 30, 1),
        (6, 0, 1),
        (6, 3601, 1),
        (6, 30, 11),
    ] {
        for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
            let e = TotpPolicy::new(alg, digits, period, skew).unwrap_err();
            assert!(
                matches!(e, Error::InvalidConfig(_)),
                "{digits} {period} {skew}: {e:?}"
            );
            assert_eq!(e.code(), "invalid_config");
        }
        let e = TotpPolicy::builder()
            .digits(digits)
            .period(period)
            .skew(skew)
            .build()
            .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)));
    }
    for (digits, period, skew) in [(6, 1, 0), (8, 3600, 10), (7, 60, 2)] {
        let p = TotpPolicy::builder()
            .algorithm(Algorithm::Sha512)
            .digits(digits)
            .period(period)
            .skew(skew)
            .build()
            .unwrap();
        assert_eq!(
            (p.algorithm(), p.digits(), p.period(), p.skew()),
            (Algorithm::Sha512, digits, period, skew)
        );
        assert_eq!(
            p,
            TotpPolicy::new(Algorithm::Sha512, digits, period, skew).unwrap()
        );
    }
    let p = policy(Algorithm::Sha1, 6, 45, 1);
    assert_eq!(p.step_at(0), 0);
    assert_eq!(p.step_at(44), 0);
    assert_eq!(p.step_at(45), 1);
    assert_eq!(p.step_at(u64::MAX), u64::MAX / 45);
}

#[test]
fn algorithm_names() {
    assert_eq!(Algorithm::default(), Algorithm::Sha1);
    for (alg, name) in [
        (Algorithm::Sha1, "SHA1"),
        (Algorithm::Sha256, "SHA256"),
        (Algorithm::Sha512, "SHA512"),
    ] {
        assert_eq!(alg.as_str(), name);
        assert_eq!(alg.to_string(), name);
        assert_eq!(name.parse::<Algorithm>().unwrap(), alg);
        assert_eq!(name.to_lowercase().parse::<Algorithm>().unwrap(), alg);
        let hyphen = name.replacen("SHA", "sha-", 1);
        assert_eq!(hyphen.parse::<Algorithm>().unwrap(), alg);
    }
    assert_eq!("Sha-256".parse::<Algorithm>().unwrap(), Algorithm::Sha256);
    for bad in [
        "", "MD5", "SHA", "SHA 1", " SHA1", "SHA1 ", "SHA3-256", "SHA224", "sha--1",
    ] {
        match bad.parse::<Algorithm>() {
            Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "algorithm"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn debug_is_redacted() {
    let p = TotpPolicy::default();
    let code = p.normalize_code("287082").unwrap();
    let dbg = format!("{code:?}");
    assert!(!dbg.contains("287082") && !dbg.contains("287"), "{dbg}");
    assert!(dbg.contains("redacted"));

    let secret = b"SUPERSECRETSUPERSECRET";
    let key = TotpKey::new(&p, secret);
    let dbg = format!("{key:?} {key:#?}");
    assert!(dbg.contains("redacted"), "{dbg}");
    assert!(!dbg.contains("SUPERSECRET"), "{dbg}");
    assert!(!dbg.contains("83, 85, 80"), "{dbg}"); // the secret as a byte list
}
