//! Argon2id password hashing and verification with the default parameters (the
//! argon2 crate's OWASP-level defaults). Few samples: each call takes tens of ms.
//!
//! Run: `cargo bench --bench password`

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use secondfactor::password::PasswordHasher;

fn password(c: &mut Criterion) {
    let hasher = PasswordHasher::default();
    let stored = hasher.hash("correct horse battery staple").unwrap();
    assert!(
        hasher
            .verify("correct horse battery staple", &stored)
            .unwrap()
    );

    let mut g = c.benchmark_group("password_argon2id_default");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("hash", |b| {
        b.iter(|| hasher.hash(black_box("correct horse battery staple")))
    });
    g.bench_function("verify", |b| {
        b.iter(|| hasher.verify(black_box("correct horse battery staple"), &stored))
    });
    g.finish();
}

criterion_group!(benches, password);
criterion_main!(benches);
