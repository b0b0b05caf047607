//! Bounded work under a burst: 120 concurrent registrations against each example
//! server (axum and actix) leave the server's peak resident memory (`VmHWM`) under
//! 400 MiB. Each registration hashes a password with argon2 (19 MiB each); without
//! the bound on concurrent hashes, 0.1.0 peaked at 2.27 GB on this burst, and
//! without the cap on blocking threads the axum server peaked at 570–670 MiB.
//!
//! ```text
//! cargo test --release -p secondfactor-example-axum --test contract burst -- --nocapture
//! ```
use crate::client::{Client, Server};

const BURST: usize = 120;
const LIMIT_KIB: u64 = 400 * 1024;

/// `VmHWM` (peak resident set size) of process `pid`, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

/// Runs the burst against `example` and checks its peak resident memory.
pub async fn burst(example: &str) {
    let server = Server::start(example, &[]);
    let before = vm_hwm_kib(server.pid());
    // Each from its own address in 127.0.0.0/8, so the per-client registration limit
    // (20 a minute) is not what holds the burst back.
    let clients: Vec<Client> = (0..BURST)
        .map(|i| server.client_from(&format!("127.0.{}.{}", 100 + i / 100, 1 + i % 100)))
        .collect();
    let start = std::time::Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, c)| tokio::spawn(async move { c.register(&format!("burst{i}")).await }))
        .collect();
    let (mut created, mut busy) = (0, 0);
    for task in tasks {
        let r = task.await.unwrap();
        match r.status {
            201 => created += 1,
            503 => {
                assert_eq!(r.error(), "busy", "{}", r.text);
                assert!(r.json["retry_after"].as_u64().unwrap_or_default() >= 1);
                busy += 1;
            }
            other => panic!("registration answered {other}: {}", r.text),
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(created + busy, BURST);
    let peak = vm_hwm_kib(server.pid());
    println!(
        "{example}: burst of {BURST} registrations: {created} × 201, {busy} × 503 busy in {elapsed:.1?}; \
         server VmHWM {:.1} MiB (before the burst {:.1} MiB)",
        peak as f64 / 1024.0,
        before as f64 / 1024.0
    );
    assert!(
        peak < LIMIT_KIB,
        "{example}: peak resident memory {peak} KiB is over {LIMIT_KIB} KiB"
    );
}
