//! Injected time.
//!
//! Nothing in `secondfactor` reads the system time directly: every flow asks its
//! [`Clock`]. Production code uses [`SystemClock`]; tests of this crate, and of
//! downstream stores and adapters, use [`ManualClock`] to move time forward without
//! sleeping.
//!
//! ```
//! use secondfactor::clock::{Clock, ManualClock};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new(1_700_000_000);
//! clock.advance(Duration::from_secs(30));
//! assert_eq!(clock.now(), 1_700_000_030);
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current time, in whole seconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Seconds since 1970-01-01T00:00:00Z.
    fn now(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> u64 {
        // A clock set before 1970 is treated as the epoch rather than a panic.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to. Cloning shares the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    secs: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `unix_secs`.
    pub fn new(unix_secs: u64) -> Self {
        ManualClock {
            secs: Arc::new(AtomicU64::new(unix_secs)),
        }
    }

    /// Sets the time to `unix_secs`.
    pub fn set(&self, unix_secs: u64) {
        self.secs.store(unix_secs, Ordering::SeqCst);
    }

    /// Moves the time forward by `by` (whole seconds; sub-second parts are dropped).
    pub fn advance(&self, by: Duration) {
        self.secs.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.secs.load(Ordering::SeqCst)
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> u64 {
        (**self).now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let c = ManualClock::new(100);
        let c2 = c.clone();
        assert_eq!(c.now(), 100);
        c.advance(Duration::from_millis(61_500));
        assert_eq!(c2.now(), 161);
        c2.set(5);
        assert_eq!(c.now(), 5);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now() > 1_577_836_800);
    }
}
