//! Memory that password hashing gives back.
//!
//! Every argon2 job allocates its memory cost (19 MiB by default) and frees it when
//! done. glibc's malloc raises its mmap threshold after the first such buffer is
//! freed, so later buffers come from per-thread arenas and stay resident after
//! `free`: measured on the 120-registration burst (`tests/burst_memory.rs`), the
//! axum server's peak resident memory was 570–670 MiB although at most
//! `max_concurrent_hashes` jobs ran at once. A fixed threshold keeps every large
//! buffer in its own mapping, returned to the system when the job ends (the same
//! burst then peaks near 100 MiB). Other allocators are left alone.

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
