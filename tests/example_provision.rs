//! The `provision` example as a user runs it: a new secret and URI, a readable PNG,
//! and `--verify` exit codes.

use std::process::Command;

use secondfactor::clock::{Clock, SystemClock};
use secondfactor::provisioning::OtpAuthUri;
use secondfactor::totp::TotpKey;

fn provision(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO"))
        .args(["run", "-q", "--example", "provision", "--"])
        .args(args)
        .output()
        .expect("cargo runs")
}

#[test]
fn provision_prints_a_secret_its_uri_and_a_png_that_decodes() {
    let dir = std::env::temp_dir().join(format!("sf-provision-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png_path = dir.join("qr.png");
    let out = provision(&[
        "--issuer",
        "ACME Co",
        "--account",
        "bob@example.com",
        "--png",
        png_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let uri_line = stdout
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .expect("a line with the URI alone");
    let uri = OtpAuthUri::parse(uri_line).unwrap();
    assert_eq!(uri.issuer(), "ACME Co");
    assert_eq!(uri.account(), "bob@example.com");
    let secret_line = stdout.lines().find(|l| l.starts_with("secret: ")).unwrap();
    assert_eq!(&secret_line[8..], &*uri.secret().to_base32());

    let img = image::open(&png_path).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, uri_line);

    // --verify: a current code passes (exit 0), a wrong one fails (exit 1).
    let key = TotpKey::new(uri.policy(), uri.secret().expose_bytes());
    let b32 = uri.secret().to_base32();
    let now = SystemClock.now();
    let good = key.generate(now);
    let out = provision(&["--secret", &b32, "--verify", &good]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let valid: Vec<String> = [now - 30, now, now + 30, now + 60]
        .iter()
        .map(|t| key.generate(*t))
        .collect();
    let bad = (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap();
    let out = provision(&["--secret", &b32, "--verify", &bad]);
    assert_eq!(out.status.code(), Some(1));
    // Malformed input is a usage error, not a crash.
    let out = provision(&["--secret", "not base32!", "--verify", "123456"]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).ok();
}
