//! The TOTP verification path does not touch the heap.
//!
//! A counting global allocator (this test binary only) counts allocations made by
//! the current thread while `verify` / `verify_after` run.
//!
//! `unsafe` appears here only because `GlobalAlloc` is an unsafe trait; the library
//! itself is `#![forbid(unsafe_code)]`. The impl forwards to the system allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use secondfactor::totp::{Algorithm, TotpKey, TotpPolicy};

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every method forwards unchanged to `System`, which upholds the contract;
// the counter is a const-initialized thread-local without destructor, so touching
// it never allocates or recurses.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}

#[test]
fn verification_does_not_allocate() {
    // The counter works: formatting a code allocates.
    let p = TotpPolicy::default();
    let key = TotpKey::new(&p, b"12345678901234567890");
    let (n, _) = allocations_during(|| key.generate(59));
    assert!(n > 0, "the counting allocator is not counting");

    for alg in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        for skew in [0, 1, 10] {
            let p = TotpPolicy::new(alg, 8, 30, skew).unwrap();
            let (n, key) = allocations_during(|| TotpKey::new(&p, &[7u8; 200]));
            assert_eq!(n, 0, "TotpKey::new allocated");
            let t = 1_700_000_000;
            let right = p.normalize_code(&key.generate(t)).unwrap();
            let wrong = p.normalize_code("0000 0000").unwrap();
            let (n, outcome) = allocations_during(|| {
                (
                    key.verify(&right, t),
                    key.verify(&wrong, t),
                    key.verify(&right, t + 30 * (2 * u64::from(skew) + 2)),
                    p.normalize_code(" 1234 5678 ").is_ok(),
                )
            });
            assert_eq!(n, 0, "{alg} skew {skew}: verification allocated");
            assert_eq!(outcome.0, Some(p.step_at(t)));
            assert_eq!(outcome.2, None, "the code is out of the window");
            assert!(outcome.3);
        }
    }
}
