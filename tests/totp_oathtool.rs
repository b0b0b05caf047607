//! Interoperability with `oathtool` (OATH Toolkit, Debian package `oathtool`), an
//! independent C implementation of RFC 6238.
//!
//! When `oathtool` is not installed the test prints a note and passes, except when
//! the environment variable `CI` is `true`: CI installs it, so there a missing
//! `oathtool` is a failure.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use secondfactor::totp::{Algorithm, TotpKey, TotpPolicy};

/// SplitMix64: a small deterministic generator, so a failure can be replayed from
/// the printed seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `unix_secs` as `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian; Howard Hinnant's
/// civil-from-days algorithm).
fn utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn utc_formatting() {
    assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(utc(59), "1970-01-01 00:00:59 UTC");
    assert_eq!(utc(1_234_567_890), "2009-02-13 23:31:30 UTC");
    assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(utc(2_000_000_000), "2033-05-18 03:33:20 UTC");
    assert_eq!(utc(4_102_444_799), "2099-12-31 23:59:59 UTC");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn oathtool_available() -> bool {
    Command::new("oathtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `oathtool --totp=ALG --digits=D --time-step-size=Ps --now='DATE' HEXKEY [CODE]`.
fn oathtool(p: &TotpPolicy, unix_secs: u64, secret: &[u8], code: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new("oathtool");
    cmd.arg(format!("--totp={}", p.algorithm().as_str()))
        .arg(format!("--digits={}", p.digits()))
        .arg(format!("--time-step-size={}s", p.period()))
        .arg(format!("--now={}", utc(unix_secs)))
        .arg("--window=0")
        .arg(hex(secret));
    if let Some(c) = code {
        cmd.arg(c);
    }
    let out = cmd.output().expect("run oathtool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

#[test]
fn agrees_with_oathtool() {
    if !oathtool_available() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("oathtool is required in CI (apt-get install oathtool)");
        }
        eprintln!("NOTE: oathtool not installed; skipping the oathtool interop test");
        return;
    }

    // RFC 6238 Appendix B, SHA-256 at 1234567890: 91819424, through oathtool.
    let p = TotpPolicy::new(Algorithm::Sha256, 8, 30, 1).unwrap();
    let (ok, out) = oathtool(&p, 1_234_567_890, b"12345678901234567890123456789012", None);
    assert!(ok);
    assert_eq!(out, "91819424");

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("oathtool interop seed: {seed}");
    let mut rng = SplitMix(seed);
    let algorithms = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
    let periods = [30u64, 60, 45];

    for case in 0..36u64 {
        // Cover every algorithm × digits combination at least once per algorithm.
        let alg = algorithms[(case % 3) as usize];
        let digits = 6 + ((case / 3) % 3) as u32;
        let period = periods[rng.below(3) as usize];
        let p = TotpPolicy::builder()
            .algorithm(alg)
            .digits(digits)
            .period(period)
            .build()
            .unwrap();
        let secret: Vec<u8> = (0..10 + rng.below(55)).map(|_| rng.next() as u8).collect();
        let step = rng.below(4_102_444_800 / period);
        // First second, last second and somewhere inside the period.
        let t = step * period
            + match case % 3 {
                0 => 0,
                1 => period - 1,
                _ => rng.below(period),
            };
        let ctx = format!(
            "seed {seed} case {case}: {alg} {digits} digits {period}s at {} key {}",
            utc(t),
            hex(&secret)
        );

        let key = TotpKey::new(&p, &secret);
        let ours = key.generate(t);
        let (ok, theirs) = oathtool(&p, t, &secret, None);
        assert!(ok, "{ctx}");
        assert_eq!(ours, theirs, "{ctx}");

        // oathtool's code verifies here, at the current step (or, if it collides with
        // the next step's code, at that newer step).
        let code = p.normalize_code(&theirs).unwrap();
        let s = key.verify(&code, t);
        assert!(
            s == Some(step)
                || (s == Some(step + 1) && key.code_at_step(step + 1) == key.code_at_step(step)),
            "{ctx}: {s:?}"
        );

        // oathtool accepts our code (validation mode, window 0), and rejects a wrong one.
        let (ok, _) = oathtool(&p, t, &secret, Some(&ours));
        assert!(ok, "{ctx}: oathtool refused our code {ours}");
        let wrong = format!(
            "{:0width$}",
            (key.code_at_step(step) + 1) % 10u32.pow(digits),
            width = digits as usize
        );
        let (ok, _) = oathtool(&p, t, &secret, Some(&wrong));
        assert!(!ok, "{ctx}: oathtool accepted a wrong code");
    }
}
