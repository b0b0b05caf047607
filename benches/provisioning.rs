//! Provisioning: the `otpauth://` URI and its QR code as PNG and SVG.
//!
//! The QR benches include encoding (the qrcode crate) and rendering. The PNG of a
//! typical URI must stay under 2 KiB; its size is checked and printed before timing.
//!
//! Run: `cargo bench --bench provisioning`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use secondfactor::provisioning::{OtpAuthUri, QrCode};
use secondfactor::secret::Secret;
use secondfactor::totp::TotpPolicy;

fn typical_uri() -> String {
    let secret = Secret::from_bytes(&[0xa5; 20]).unwrap();
    let uri = OtpAuthUri::new(
        "Example Corp",
        "alice@example.com",
        secret,
        TotpPolicy::default(),
    )
    .unwrap();
    uri.to_uri().to_string()
}

fn qr(c: &mut Criterion) {
    let uri = typical_uri();
    let png = QrCode::new(&uri).unwrap().png().unwrap();
    eprintln!(
        "typical URI: {} bytes; QR PNG: {} bytes (target < 2048)",
        uri.len(),
        png.len()
    );
    assert!(png.len() < 2048, "QR PNG is {} bytes", png.len());

    let mut g = c.benchmark_group("qr");
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("encode", |b| b.iter(|| QrCode::new(black_box(&uri))));
    g.bench_function("encode+png", |b| {
        b.iter(|| QrCode::new(black_box(&uri)).unwrap().png())
    });
    g.bench_function("encode+svg", |b| {
        b.iter(|| QrCode::new(black_box(&uri)).unwrap().svg())
    });
    g.finish();

    let mut g = c.benchmark_group("otpauth_uri");
    g.measurement_time(Duration::from_secs(3));
    let parsed = OtpAuthUri::parse(&uri).unwrap();
    g.bench_function("to_uri", |b| b.iter(|| black_box(&parsed).to_uri()));
    g.bench_function("parse", |b| b.iter(|| OtpAuthUri::parse(black_box(&uri))));
    g.finish();
}

criterion_group!(benches, qr);
criterion_main!(benches);
