//! Memory that password hashing keeps.
//!
//! Every argon2 job allocates its memory cost (19 MiB by default) and frees it when
//! done. glibc's malloc raises its mmap threshold after the first such buffer is
//! freed, so later buffers come from the hashing thread's arena and stay resident
//! after `free`, about one buffer per thread that ever hashed. Measured on the
//! 120-registration burst (`tests/burst_memory.rs`), tokio's default blocking pool
//! (up to 512 threads) took the axum server to 570–670 MiB although at most
//! `max_concurrent_hashes` jobs ran at once.
//!
//! The servers cap the blocking pool at [`max_blocking_threads`]: as many threads as
//! hashes may run at once (`max_concurrent_hashes`, 2 × CPUs). That alone is not
//! enough: on 2 CPUs (4 blocking threads) each hashing thread's arena still held
//! about 58 MiB (three buffers' worth, fragmentation), and the burst peaked at
//! 366–518 MiB (axum 403–446 MiB, actix 366–518 MiB), over the 400 MiB bound. So
//! glibc's mmap threshold stays fixed as well ([`return_large_buffers`]): every
//! large buffer gets its own mapping, returned to the system when the job ends.
//! Replacing this `unsafe` call needs the library to reuse its argon2 buffers
//! (argon2's `hash_password_into_with_memory`), one per hashing slot.

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

/// Sends allocations of 4 MiB and more straight to `mmap`, for good (glibc only).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_buffers() {
    // glibc's <malloc.h>: `int mallopt(int param, int value)`, M_MMAP_THRESHOLD = -3.
    unsafe extern "C" {
        fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
    }
    const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
    // SAFETY: mallopt only changes the allocator's tuning; it takes plain integers and
    // may be called at any time, from any thread.
    let set = unsafe { mallopt(M_MMAP_THRESHOLD, 4 << 20) };
    if set != 1 {
        eprintln!("warning: mallopt(M_MMAP_THRESHOLD) failed: memory peaks may be higher");
    }
}

/// Other platforms: nothing to tune.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_buffers() {}
