//! Attempt limiting: second factors per account, passwords per account and per
//! client, registrations per client.
//!
//! **Second factors, per account.** Failed TOTP codes (at login, re-authentication,
//! disable or backup-code regeneration) are counted per account, not per pending
//! login, so an attacker who knows the password gains nothing by restarting the login.
//! Two limits apply, both counted *before* the code is checked, with a
//! compare-and-set in the store, so a burst of parallel guesses cannot slip past them:
//!
//! - a short lockout: the first [`free_failures`](ThrottlePolicyBuilder::free_failures)
//!   failures cost nothing; every failure after that locks TOTP for a time that
//!   doubles, from [`base_lockout`](ThrottlePolicyBuilder::base_lockout) up to
//!   [`max_lockout`](ThrottlePolicyBuilder::max_lockout). A success clears it, so the
//!   owner's typos never pile up;
//! - a long-term budget that successes do **not** refill: at most
//!   [`budget`](ThrottlePolicyBuilder::budget) failures at once, restored one at a
//!   time over the budget's period (a leaky bucket). The owner's own logins therefore
//!   never hand an attacker fresh guesses.
//!
//! With the defaults (5 free failures, 60 s doubling; a budget of 10 failures per 30
//! days) an attacker who knows the password gets at most 10 + 10 = 20 TOTP guesses in
//! any 30 days, however often the owner logs in; each guess has at most 3 in 10⁶
//! chances at ±1 step of skew, so under 10⁻⁴ in all (the `attacker_simulation` tests
//! play this out on a manual clock, with the owner logging in 0, 1 and 2 times a day).
//! A user who mistypes 5 times waits 0 s.
//!
//! Backup codes are not refused by either limit: the owner always has a way in while
//! TOTP is locked. A backup code has at least 60 bits of entropy, so guessing one is
//! hopeless even without a lockout; wrong ones still use up the pending login's
//! attempts and show in the security log.
//!
//! **Passwords, per account.** Wrong passwords count on the login name (known or not,
//! so an unknown name behaves the same) across every client address. Past
//! [`password_free_failures`](ThrottlePolicyBuilder::password_free_failures) within
//! [`password_window`](ThrottlePolicyBuilder::password_window) (default 10 in 15
//! minutes), password attempts for that name are refused for a time that starts at
//! the window and doubles, *except* from browsers that logged in to that account
//! before (a known-browser token, as in OWASP's "device cookies"): those keep only
//! their per-client limit, so an attacker guessing a password cannot lock the owner
//! out.
//!
//! **Per client.** Password attempts and registrations are limited per client key
//! (adapters pass [`client_key`] of the peer address: IPv6 by /64): at most
//! [`client_limit`](ThrottlePolicyBuilder::client_limit) per
//! [`client_window`](ThrottlePolicyBuilder::client_window). A successful login gives
//! its attempt back, so users behind one NAT are not limited by each other's logins.
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

use std::net::IpAddr;
use std::time::Duration;

use crate::error::Limiter;
use crate::store::{EphemeralStore, ThrottleState, UserId};
use crate::{Error, Result};

/// How long an account's second-factor failure count is remembered after its last
/// failure.
const FAILURE_MEMORY_SECS: u64 = 30 * 24 * 3600;
/// Compare-and-set retries before a contended throttle answers "try again".
pub(crate) const CAS_ROUNDS: usize = 16;

/// A lockout schedule: free failures, then a doubling wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lockout {
    free: u32,
    base: u64,
    max: u64,
    /// How long the count is remembered after the lockout of its last failure ends.
    memory: u64,
}

impl Lockout {
    fn secs(&self, failures: u32) -> u64 {
        if failures <= self.free {
            return 0;
        }
        let doublings = failures - self.free - 1;
        let factor = 1u64.checked_shl(doublings.min(63)).unwrap_or(u64::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// The throttling policy. Build it with [`ThrottlePolicy::builder`]; the default is
/// described in the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrottlePolicy {
    second_factor: Lockout,
    budget_failures: u32,
    budget_period: u64,
    password: Lockout,
    attempts_per_login: u32,
    client_limit: u32,
    client_window: u64,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            second_factor: Lockout {
                free: 5,
                base: 60,
                max: 30 * 24 * 3600,
                memory: FAILURE_MEMORY_SECS,
            },
            budget_failures: 10,
            budget_period: 30 * 24 * 3600,
            // The 10th wrong password starts the lockout (`free` counts the failures
            // that start none).
            password: Lockout {
                free: 9,
                base: 15 * 60,
                max: 24 * 3600,
                memory: 15 * 60,
            },
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
        self.second_factor.free
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

    /// The long-term second-factor budget: how many failures at once, and the period
    /// over which as many are restored.
    pub fn budget(&self) -> (u32, Duration) {
        (
            self.budget_failures,
            Duration::from_secs(self.budget_period),
        )
    }

    /// Wrong passwords per login name answered within the password window; the
    /// last of them starts the refusals (to unknown browsers).
    pub fn password_free_failures(&self) -> u32 {
        self.password.free + 1
    }

    /// How long the account's TOTP is locked after its `failures`-th failure in a row.
    pub fn lockout_after(&self, failures: u32) -> Duration {
        Duration::from_secs(self.second_factor.secs(failures))
    }

    /// How long password attempts for a login name are refused (to unknown browsers)
    /// after its `failures`-th wrong password in a row: zero before the
    /// [`password_free_failures`](Self::password_free_failures)-th.
    pub fn password_lockout_after(&self, failures: u32) -> Duration {
        Duration::from_secs(self.password.secs(failures))
    }

    pub(crate) fn second_factor_lockout(&self) -> &Lockout {
        &self.second_factor
    }

    pub(crate) fn password_lockout(&self) -> &Lockout {
        &self.password
    }

    /// How long a login name's wrong-password count is remembered.
    pub(crate) fn password_lockout_memory(&self) -> u64 {
        self.password.memory
    }

    /// Attempts left before the account locks, after `failures` failures.
    pub(crate) fn account_attempts_left(&self, failures: u32) -> u32 {
        (self.second_factor.free + 1).saturating_sub(failures)
    }

    /// Seconds between two restored budget failures.
    fn budget_interval(&self) -> u64 {
        (self.budget_period / u64::from(self.budget_failures)).max(1)
    }
}

/// Builds a validated [`ThrottlePolicy`].
#[derive(Clone, Debug)]
pub struct ThrottlePolicyBuilder {
    policy: ThrottlePolicy,
}

impl ThrottlePolicyBuilder {
    /// Second-factor failures allowed before the first lockout (default 5; 1–100).
    pub fn free_failures(mut self, n: u32) -> Self {
        self.policy.second_factor.free = n;
        self
    }

    /// The first second-factor lockout (default 60 s; at least 1 s); each further
    /// failure doubles it.
    pub fn base_lockout(mut self, d: Duration) -> Self {
        self.policy.second_factor.base = d.as_secs();
        self
    }

    /// The longest second-factor lockout (default 30 days; at least the base).
    pub fn max_lockout(mut self, d: Duration) -> Self {
        self.policy.second_factor.max = d.as_secs();
        self
    }

    /// The long-term second-factor budget (default 10 failures per 30 days): at most
    /// `failures` at once, one restored every `period / failures`; successes restore
    /// none. `failures` 1–1000, `period` 1 hour – 1 year.
    pub fn budget(mut self, failures: u32, period: Duration) -> Self {
        self.policy.budget_failures = failures;
        self.policy.budget_period = period.as_secs();
        self
    }

    /// Wrong passwords per login name answered within the password window (default
    /// 10; 1–1000): the `n`-th starts a lockout of one window, and each wrong password
    /// after a lockout doubles it.
    pub fn password_free_failures(mut self, n: u32) -> Self {
        self.policy.password.free = n.wrapping_sub(1);
        self
    }

    /// The password window (default 15 minutes; 1 s – 1 day): it is also the first
    /// password lockout, which doubles with each further wrong password.
    pub fn password_window(mut self, d: Duration) -> Self {
        self.policy.password.base = d.as_secs();
        self.policy.password.memory = d.as_secs();
        self
    }

    /// The longest password lockout (default 1 day; at least the window).
    pub fn password_max_lockout(mut self, d: Duration) -> Self {
        self.policy.password.max = d.as_secs();
        self
    }

    /// Attempts on one pending login before it is burnt (default 5; 1–100).
    pub fn attempts_per_login(mut self, n: u32) -> Self {
        self.policy.attempts_per_login = n;
        self
    }

    /// Password attempts and registrations per client key and window (default 20;
    /// at least 1).
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
        let f = &p.second_factor;
        if !(1..=100).contains(&f.free) {
            return Err(Error::InvalidConfig("free_failures must be 1 to 100"));
        }
        if f.base == 0 {
            return Err(Error::InvalidConfig("base_lockout must be at least 1 s"));
        }
        if f.max < f.base {
            return Err(Error::InvalidConfig(
                "max_lockout must be at least base_lockout",
            ));
        }
        if !(1..=1000).contains(&p.budget_failures)
            || !(3600..=366 * 24 * 3600).contains(&p.budget_period)
        {
            return Err(Error::InvalidConfig(
                "budget must be 1 to 1000 failures per 1 hour to 1 year",
            ));
        }
        let pw = &p.password;
        if !(0..1000).contains(&pw.free) {
            return Err(Error::InvalidConfig(
                "password_free_failures must be 1 to 1000",
            ));
        }
        if !(1..=86_400).contains(&pw.base) {
            return Err(Error::InvalidConfig("password_window must be 1 s to 1 day"));
        }
        if pw.max < pw.base {
            return Err(Error::InvalidConfig(
                "password_max_lockout must be at least password_window",
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

/// The limiter key of a client address: an IPv4 address as is, an IPv6 address by its
/// /64 prefix (one customer's network, since a single host can use the whole /64), an
/// IPv4-mapped IPv6 address as the IPv4 address.
///
/// ```
/// use secondfactor::throttle::client_key;
/// let a = client_key("2001:db8:1:2:aaaa::1".parse().unwrap());
/// let b = client_key("2001:db8:1:2:bbbb::9".parse().unwrap());
/// assert_eq!(a, b);
/// assert_eq!(a, "2001:db8:1:2::/64");
/// assert_eq!(client_key("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
/// ```
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{prefix}/64")
            }
        },
    }
}

/// A reserved attempt on an account throttle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reservation {
    /// The throttle state written by the reservation.
    pub(crate) state: ThrottleState,
    /// The state it replaced.
    pub(crate) previous: ThrottleState,
}

/// The short second-factor lockout of an account.
pub(crate) fn account_key(user_id: &UserId) -> String {
    format!("acct:{}", user_id.as_str())
}

/// The long-term second-factor budget of an account.
pub(crate) fn budget_key(user_id: &UserId) -> String {
    format!("budget:{}", user_id.as_str())
}

/// The wrong-password counter of a (normalized or not) login name.
pub(crate) fn password_key(username: &str) -> String {
    format!("pw:{username}")
}

/// The counter of wrong current passwords given to a password change.
pub(crate) fn password_change_key(user_id: &UserId) -> String {
    format!("pwchange:{}", user_id.as_str())
}

fn client_limiter_key(client: &str) -> String {
    format!("client:{client}")
}

pub(crate) fn retry_after(until: u64, now: u64) -> Error {
    refused(until, now, Limiter::Account)
}

/// [`Error::TooManyAttempts`] from `limiter`, locked until `until` (seconds of the
/// service's clock), at least 1 s.
fn refused(until: u64, now: u64, limiter: Limiter) -> Error {
    Error::TooManyAttempts {
        retry_after: Duration::from_secs(until.saturating_sub(now).max(1)),
        limiter,
    }
}

/// The state of a lockout throttle with one more attempt counted, and how long to
/// keep it; [`Error::TooManyAttempts`] while it is locked.
pub(crate) fn lockout_after(
    lockout: &Lockout,
    current: ThrottleState,
    now: u64,
) -> Result<(ThrottleState, u64)> {
    if current.until > now {
        return Err(retry_after(current.until, now));
    }
    let count = current.count.saturating_add(1);
    let new = ThrottleState {
        count,
        until: now.saturating_add(lockout.secs(count)),
    };
    Ok((new, new.until.saturating_add(lockout.memory)))
}

/// Counts one attempt on a lockout throttle before the secret is checked, or refuses
/// it with [`Error::TooManyAttempts`] while it is locked.
pub(crate) async fn reserve_account_attempt<S: EphemeralStore>(
    store: &S,
    lockout: &Lockout,
    key: &str,
    now: u64,
) -> Result<Reservation> {
    for _ in 0..CAS_ROUNDS {
        let current = store.throttle(key, now).await?;
        let (new, keep_until) = lockout_after(lockout, current, now)?;
        if store
            .update_throttle(key, current, new, keep_until, now)
            .await?
        {
            return Ok(Reservation {
                state: new,
                previous: current,
            });
        }
    }
    Err(retry_after(now + 1, now))
}

/// Undoes a reservation whose attempt turned out to be a success: the throttle goes
/// back to the state before it, so an attempt that would have started a lockout
/// does not leave one running. When other attempts were counted meanwhile, only this
/// one's count is given back ([`refund`]).
pub(crate) async fn undo<S: EphemeralStore>(
    store: &S,
    key: &str,
    reservation: Reservation,
    keep_until: u64,
    now: u64,
) -> Result<()> {
    let keep = keep_until.max(reservation.previous.until);
    if store
        .update_throttle(key, reservation.state, reservation.previous, keep, now)
        .await?
    {
        return Ok(());
    }
    refund(store, key, keep_until, now).await
}

/// Forgets the account's failures after a success.
pub(crate) async fn reset_account<S: EphemeralStore>(
    store: &S,
    key: &str,
    reservation: Reservation,
    now: u64,
) -> Result<()> {
    let mut expected = reservation.state;
    for _ in 0..CAS_ROUNDS {
        if store
            .update_throttle(key, expected, ThrottleState::default(), 0, now)
            .await?
        {
            return Ok(());
        }
        // Another attempt was counted meanwhile; reset whatever is there now.
        expected = store.throttle(key, now).await?;
        if expected == ThrottleState::default() {
            return Ok(());
        }
    }
    Ok(())
}

/// Gives back one attempt counted by a reservation that turned out to be a success:
/// the count drops by one, a lockout already running is left alone.
pub(crate) async fn refund<S: EphemeralStore>(
    store: &S,
    key: &str,
    keep_until: u64,
    now: u64,
) -> Result<()> {
    for _ in 0..CAS_ROUNDS {
        let current = store.throttle(key, now).await?;
        if current.count == 0 {
            return Ok(());
        }
        let new = ThrottleState {
            count: current.count - 1,
            until: current.until,
        };
        let keep = keep_until.max(current.until);
        if store.update_throttle(key, current, new, keep, now).await? {
            return Ok(());
        }
    }
    Ok(())
}

/// Refuses a second-factor attempt while the account's long-term budget is spent.
pub(crate) async fn check_budget<S: EphemeralStore>(
    store: &S,
    policy: &ThrottlePolicy,
    key: &str,
    now: u64,
) -> Result<()> {
    let current = store.throttle(key, now).await?;
    budget_after(policy, current, now).map(|_| ())
}

/// The budget state after one more failure, or the refusal while it is spent. The
/// state's `until` is the bucket's "theoretical arrival time": every failure pushes it
/// one interval further; it may run at most `budget_failures` intervals ahead of now.
pub(crate) fn budget_after(
    policy: &ThrottlePolicy,
    current: ThrottleState,
    now: u64,
) -> Result<ThrottleState> {
    let interval = policy.budget_interval();
    let capacity = interval.saturating_mul(u64::from(policy.budget_failures));
    let next = current.until.max(now).saturating_add(interval);
    if next.saturating_sub(now) > capacity {
        return Err(retry_after(next.saturating_sub(capacity), now));
    }
    Ok(ThrottleState {
        count: current.count.saturating_add(1),
        until: next,
    })
}

/// Spends one failure of the account's long-term budget (before the code is
/// checked), or refuses the attempt while the budget is spent.
pub(crate) async fn spend_budget<S: EphemeralStore>(
    store: &S,
    policy: &ThrottlePolicy,
    key: &str,
    now: u64,
) -> Result<()> {
    for _ in 0..CAS_ROUNDS {
        let current = store.throttle(key, now).await?;
        let new = budget_after(policy, current, now)?;
        if store
            .update_throttle(key, current, new, new.until, now)
            .await?
        {
            return Ok(());
        }
    }
    Err(retry_after(now + 1, now))
}

/// Gives back the budget spent on an attempt that turned out to be a success.
pub(crate) async fn refund_budget<S: EphemeralStore>(
    store: &S,
    policy: &ThrottlePolicy,
    key: &str,
    now: u64,
) -> Result<()> {
    let interval = policy.budget_interval();
    for _ in 0..CAS_ROUNDS {
        let current = store.throttle(key, now).await?;
        if current.count == 0 {
            return Ok(());
        }
        let new = ThrottleState {
            count: current.count - 1,
            until: current.until.saturating_sub(interval),
        };
        if store
            .update_throttle(key, current, new, new.until, now)
            .await?
        {
            return Ok(());
        }
    }
    Ok(())
}

/// Counts one attempt for a client key, or refuses it.
pub(crate) async fn hit_client<S: EphemeralStore>(
    store: &S,
    policy: &ThrottlePolicy,
    client: &str,
    now: u64,
) -> Result<()> {
    let key = client_limiter_key(client);
    for _ in 0..CAS_ROUNDS {
        let current = store.throttle(&key, now).await?;
        let new = if current.until <= now {
            ThrottleState {
                count: 1,
                until: now.saturating_add(policy.client_window),
            }
        } else if current.count >= policy.client_limit {
            return Err(refused(current.until, now, Limiter::Client));
        } else {
            ThrottleState {
                count: current.count + 1,
                until: current.until,
            }
        };
        if store
            .update_throttle(&key, current, new, new.until, now)
            .await?
        {
            return Ok(());
        }
    }
    Err(refused(now + 1, now, Limiter::Client))
}

/// Gives a client its attempt back after a successful login.
pub(crate) async fn refund_client<S: EphemeralStore>(
    store: &S,
    client: &str,
    now: u64,
) -> Result<()> {
    let key = client_limiter_key(client);
    let current = store.throttle(&key, now).await?;
    if current.until <= now {
        return Ok(());
    }
    refund(store, &key, current.until, now).await
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
            let r = reserve_account_attempt(&store, p.second_factor_lockout(), "acct:a", now)
                .await
                .unwrap();
            assert_eq!(r.state.count, i);
        }
        let err = reserve_account_attempt(&store, p.second_factor_lockout(), "acct:a", now)
            .await
            .unwrap_err();
        match err {
            Error::TooManyAttempts {
                retry_after,
                limiter,
            } => {
                assert_eq!(retry_after.as_secs(), 60);
                assert_eq!(limiter, Limiter::Account);
            }
            e => panic!("{e:?}"),
        }
        // After the lockout the 7th attempt goes through and doubles the next wait.
        let r = reserve_account_attempt(&store, p.second_factor_lockout(), "acct:a", now + 60)
            .await
            .unwrap();
        assert_eq!(r.state.until, now + 60 + 120);
        reset_account(&store, "acct:a", r, now + 60).await.unwrap();
        assert_eq!(
            store.throttle("acct:a", now + 60).await.unwrap(),
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
                    reserve_account_attempt(&store, p.second_factor_lockout(), "acct:x", 10)
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
            Err(Error::TooManyAttempts { retry_after, limiter: Limiter::Client })
                if retry_after.as_secs() == 40
        ));
        hit_client(&store, &p, "5.6.7.8", 120).await.unwrap();
        hit_client(&store, &p, "1.2.3.4", 160).await.unwrap();
    }
}
