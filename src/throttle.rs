//! Attempt limiting: per account for second factors, per client key for passwords.
//!
//! **Per account.** Failed second factors (TOTP or backup codes, at login, disable or
//! backup-code regeneration) are counted per account, not per pending login, so an
//! attacker who knows the password gains nothing by restarting the login. The first
//! [`free_failures`](ThrottlePolicyBuilder::free_failures) failures cost nothing; every
//! failure after that locks the account's second factor for a time that doubles,
//! from [`base_lockout`](ThrottlePolicyBuilder::base_lockout) up to
//! [`max_lockout`](ThrottlePolicyBuilder::max_lockout). A success resets the count.
//!
//! An attempt is counted *before* the code is checked, with a compare-and-set in the
//! store, so a burst of parallel guesses cannot slip past the limit.
//!
//! With the defaults (5 free failures, 60 s doubling to at most 30 days), an attacker
//! who knows the password gets about 21 guesses in 30 days; each one has at most 3 in
//! 10⁶ chances at ±1 step of skew, so under 10⁻⁴ in all (the `attacker_simulation`
//! test plays this out on a manual clock). A user who mistypes 5 times waits 0 s.
//!
//! **Per client.** The password step is limited per client key (adapters pass the
//! peer address): at most [`client_limit`](ThrottlePolicyBuilder::client_limit)
//! attempts per [`client_window`](ThrottlePolicyBuilder::client_window).
//!
//! ```
//! use secondfactor::throttle::ThrottlePolicy;
//! use std::time::Duration;
//!
//! let policy = ThrottlePolicy::builder()
//!     .free_failures(5)
//!     .base_lockout(Duration::from_secs(60))
//!     .build()
//!     .unwrap();
//! assert_eq!(policy.lockout_after(5), Duration::ZERO);
//! assert_eq!(policy.lockout_after(6), Duration::from_secs(60));
//! assert_eq!(policy.lockout_after(7), Duration::from_secs(120));
//! ```

use std::time::Duration;

use crate::store::{EphemeralStore, ThrottleState};
use crate::{Error, Result};

/// How long an account's failure count is remembered after its last failure.
const FAILURE_MEMORY_SECS: u64 = 30 * 24 * 3600;
/// Compare-and-set retries before a contended throttle answers "try again".
const CAS_ROUNDS: usize = 16;

/// The throttling policy. Build it with [`ThrottlePolicy::builder`]; the default is
/// described in the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    free_failures: u32,
    base_lockout: u64,
    max_lockout: u64,
    attempts_per_login: u32,
    client_limit: u32,
    client_window: u64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            free_failures: 5,
            base_lockout: 60,
            max_lockout: 30 * 24 * 3600,
            attempts_per_login: 5,
            client_limit: 20,
            client_window: 60,
        }
    }
}

impl ThrottlePolicy {
    /// A builder starting from the defaults.
    pub fn builder() -> ThrottlePolicyBuilder {
        ThrottlePolicyBuilder {
            policy: ThrottlePolicy::default(),
        }
    }

    /// Second-factor failures allowed before any lockout.
    pub fn free_failures(&self) -> u32 {
        self.free_failures
    }

    /// Attempts allowed on one pending login before it is burnt.
    pub fn attempts_per_login(&self) -> u32 {
        self.attempts_per_login
    }

    /// Password attempts allowed per client key and window.
    pub fn client_limit(&self) -> u32 {
        self.client_limit
    }

    /// The client window.
    pub fn client_window(&self) -> Duration {
        Duration::from_secs(self.client_window)
    }

    /// How long the account is locked after its `failures`-th failure in a row.
    pub fn lockout_after(&self, failures: u32) -> Duration {
        Duration::from_secs(self.lockout_secs(failures))
    }

    fn lockout_secs(&self, failures: u32) -> u64 {
        if failures <= self.free_failures {
            return 0;
        }
        let doublings = failures - self.free_failures - 1;
        let factor = 1u64.checked_shl(doublings.min(63)).unwrap_or(u64::MAX);
        self.base_lockout
            .saturating_mul(factor)
            .min(self.max_lockout)
    }

    /// Attempts left before the account locks, after `failures` failures.
    pub(crate) fn account_attempts_left(&self, failures: u32) -> u32 {
        (self.free_failures + 1).saturating_sub(failures)
    }
}

/// Builds a validated [`ThrottlePolicy`].
#[derive(Clone, Debug)]
pub struct ThrottlePolicyBuilder {
    policy: ThrottlePolicy,
}

impl ThrottlePolicyBuilder {
    /// Failures allowed before the first lockout (default 5; 1–100).
    pub fn free_failures(mut self, n: u32) -> Self {
        self.policy.free_failures = n;
        self
    }

    /// The first lockout (default 60 s; at least 1 s); each further failure doubles it.
    pub fn base_lockout(mut self, d: Duration) -> Self {
        self.policy.base_lockout = d.as_secs();
        self
    }

    /// The longest lockout (default 30 days; at least the base).
    pub fn max_lockout(mut self, d: Duration) -> Self {
        self.policy.max_lockout = d.as_secs();
        self
    }

    /// Attempts on one pending login before it is burnt (default 5; 1–100).
    pub fn attempts_per_login(mut self, n: u32) -> Self {
        self.policy.attempts_per_login = n;
        self
    }

    /// Password attempts per client key and window (default 20; at least 1).
    pub fn client_limit(mut self, n: u32) -> Self {
        self.policy.client_limit = n;
        self
    }

    /// The client window (default 60 s; at least 1 s).
    pub fn client_window(mut self, d: Duration) -> Self {
        self.policy.client_window = d.as_secs();
        self
    }

    /// Validates and returns the policy.
    pub fn build(self) -> Result<ThrottlePolicy> {
        let p = self.policy;
        if !(1..=100).contains(&p.free_failures) {
            return Err(Error::InvalidConfig("free_failures must be 1 to 100"));
        }
        if p.base_lockout == 0 {
            return Err(Error::InvalidConfig("base_lockout must be at least 1 s"));
        }
        if p.max_lockout < p.base_lockout {
            return Err(Error::InvalidConfig(
                "max_lockout must be at least base_lockout",
            ));
        }
        if !(1..=100).contains(&p.attempts_per_login) {
            return Err(Error::InvalidConfig("attempts_per_login must be 1 to 100"));
        }
        if p.client_limit == 0 || p.client_window == 0 {
            return Err(Error::InvalidConfig(
                "client_limit and client_window must be positive",
            ));
        }
        Ok(p)
    }
}

/// A reserved second-factor attempt on an account.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reservation {
    /// The throttle state written by the reservation.
    pub(crate) state: ThrottleState,
}

pub(crate) fn account_key(user_id: &crate::store::UserId) -> String {
    format!("acct:{}", user_id.as_str())
}

/// The counter of wrong current passwords given to a password change.
pub(crate) fn password_change_key(user_id: &crate::store::UserId) -> String {
    format!("pwchange:{}", user_id.as_str())
}

fn client_key(client: &str) -> String {
    format!("client:{client}")
}

fn retry_after(until: u64, now: u64) -> Error {
    Error::TooManyAttempts {
        retry_after: Duration::from_secs(until.saturating_sub(now).max(1)),
    }
}

/// Counts one second-factor attempt on the account before the code is checked, or
/// refuses it with [`Error::TooManyAttempts`] while the account is locked.
pub(crate) async fn reserve_account_attempt<S: EphemeralStore>(
    store: &S,
    policy: &ThrottlePolicy,
    key: &str,
    now: u64,
) -> Result<Reservation> {
    for _ in 0..CAS_ROUNDS {
        let current = store.throttle(key).await?;
        if current.until > now {
            return Err(retry_after(current.until, now));
        }
        let count = current.count.saturating_add(1);
        let new = ThrottleState {
            count,
            until: now.saturating_add(policy.lockout_secs(count)),
        };
        let keep_until = new.until.saturating_add(FAILURE_MEMORY_SECS);
        if store.update_throttle(key, current, new, keep_until).await? {
            return Ok(Reservation { state: new });
        }
    }
    Err(retry_after(now + 1, now))
}

/// Forgets the account's failures after a success.
pub(crate) async fn reset_account<S: EphemeralStore>(
    store: &S,
    key: &str,
    reservation: Reservation,
) -> Result<()> {
    let mut expected = reservation.state;
    for _ in 0..CAS_ROUNDS {
        if store
            .update_throttle(key, expected, ThrottleState::default(), 0)
            .await?
        {
            return Ok(());
        }
        // Another attempt was counted meanwhile; reset whatever is there now.
        expected = store.throttle(key).await?;
        if expected == ThrottleState::default() {
            return Ok(());
        }
    }
    Ok(())
}

/// Counts one password attempt for a client key, or refuses it.
pub(crate) async fn hit_client<S: EphemeralStore>(
    store: &S,
    policy: &ThrottlePolicy,
    client: &str,
    now: u64,
) -> Result<()> {
    let key = client_key(client);
    for _ in 0..CAS_ROUNDS {
        let current = store.throttle(&key).await?;
        let new = if current.until <= now {
            ThrottleState {
                count: 1,
                until: now.saturating_add(policy.client_window),
            }
        } else if current.count >= policy.client_limit {
            return Err(retry_after(current.until, now));
        } else {
            ThrottleState {
                count: current.count + 1,
                until: current.until,
            }
        };
        if store.update_throttle(&key, current, new, new.until).await? {
            return Ok(());
        }
    }
    Err(retry_after(now + 1, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn lockout_doubles_after_free_failures_and_caps() {
        let p = ThrottlePolicy::default();
        for n in 0..=5 {
            assert_eq!(p.lockout_after(n), Duration::ZERO, "failure {n}");
        }
        assert_eq!(p.lockout_after(6).as_secs(), 60);
        assert_eq!(p.lockout_after(7).as_secs(), 120);
        assert_eq!(p.lockout_after(10).as_secs(), 960);
        assert_eq!(p.lockout_after(200).as_secs(), 30 * 24 * 3600);
        assert_eq!(p.lockout_after(u32::MAX).as_secs(), 30 * 24 * 3600);
    }

    #[test]
    fn builder_rejects_unworkable_values() {
        assert!(ThrottlePolicy::builder().free_failures(0).build().is_err());
        assert!(
            ThrottlePolicy::builder()
                .base_lockout(Duration::ZERO)
                .build()
                .is_err()
        );
        assert!(
            ThrottlePolicy::builder()
                .base_lockout(Duration::from_secs(100))
                .max_lockout(Duration::from_secs(10))
                .build()
                .is_err()
        );
        assert!(
            ThrottlePolicy::builder()
                .attempts_per_login(0)
                .build()
                .is_err()
        );
        assert!(ThrottlePolicy::builder().client_limit(0).build().is_err());
        assert_eq!(
            ThrottlePolicy::builder().build().unwrap(),
            ThrottlePolicy::default()
        );
    }

    #[tokio::test]
    async fn account_reservations_lock_after_free_failures() {
        let store = MemoryStore::new();
        let p = ThrottlePolicy::default();
        let now = 1000;
        for i in 1..=6 {
            let r = reserve_account_attempt(&store, &p, "acct:a", now)
                .await
                .unwrap();
            assert_eq!(r.state.count, i);
        }
        let err = reserve_account_attempt(&store, &p, "acct:a", now)
            .await
            .unwrap_err();
        match err {
            Error::TooManyAttempts { retry_after } => assert_eq!(retry_after.as_secs(), 60),
            e => panic!("{e:?}"),
        }
        // After the lockout the 7th attempt goes through and doubles the next wait.
        let r = reserve_account_attempt(&store, &p, "acct:a", now + 60)
            .await
            .unwrap();
        assert_eq!(r.state.until, now + 60 + 120);
        reset_account(&store, "acct:a", r).await.unwrap();
        assert_eq!(
            store.throttle("acct:a").await.unwrap(),
            ThrottleState::default()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reservations_never_exceed_the_free_allowance() {
        // 50 tasks race for attempts at the same instant: only free+1 may pass.
        for _round in 0..50 {
            let store = MemoryStore::new();
            let p = ThrottlePolicy::default();
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(50));
            let mut tasks = Vec::new();
            for _ in 0..50 {
                let store = store.clone();
                let p = p.clone();
                let barrier = barrier.clone();
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    reserve_account_attempt(&store, &p, "acct:x", 10)
                        .await
                        .is_ok()
                }));
            }
            let mut ok = 0;
            for t in tasks {
                ok += usize::from(t.await.unwrap());
            }
            assert!((1..=6).contains(&ok), "{ok} attempts passed");
        }
    }

    #[tokio::test]
    async fn client_limiter_uses_a_fixed_window() {
        let store = MemoryStore::new();
        let p = ThrottlePolicy::builder().client_limit(3).build().unwrap();
        for _ in 0..3 {
            hit_client(&store, &p, "1.2.3.4", 100).await.unwrap();
        }
        assert!(matches!(
            hit_client(&store, &p, "1.2.3.4", 120).await,
            Err(Error::TooManyAttempts { retry_after }) if retry_after.as_secs() == 40
        ));
        hit_client(&store, &p, "5.6.7.8", 120).await.unwrap();
        hit_client(&store, &p, "1.2.3.4", 160).await.unwrap();
    }
}
