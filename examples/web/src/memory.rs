//! Threads that password hashing runs on.
//!
//! Argon2 takes its memory cost (19 MiB by default) per job. The library bounds how
//! many jobs run at once (`max_concurrent_hashes`, 2 × CPUs) and reuses one working
//! buffer per job running at once, so a burst's memory does not depend on how many
//! threads ever hashed or on what the allocator keeps (0.1.0 allocated and freed a
//! buffer per job: glibc kept about one per blocking thread, and tokio's default
//! pool of up to 512 threads took a 120-registration burst to 2.27 GB).
//!
//! The servers also cap the blocking pool at [`max_blocking_threads`], as many
//! threads as hashes may run at once: nothing else here needs more.

use std::num::NonZeroUsize;

/// The most blocking-pool threads a server runs: 2 × the CPUs this process may use,
/// the service's default `max_concurrent_hashes`.
pub fn max_blocking_threads() -> usize {
    2 * std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// The blocking threads each of `workers` runtimes may run so that all of them
/// together stay within [`max_blocking_threads`] (at least one each).
pub fn max_blocking_threads_per(workers: usize) -> usize {
    (max_blocking_threads() / workers.max(1)).max(1)
}
