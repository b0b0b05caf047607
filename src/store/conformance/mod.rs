//! The store conformance suite: one generic test suite every store must pass.
//!
//! The flows are only as safe as the store under them: a store that lets two
//! concurrent logins spend the same backup code, or forgets a replay mark, breaks
//! two-factor authentication no matter how careful the rest of the crate is. This
//! module checks every method and every "Atomicity" contract of [`AccountStore`] and
//! [`EphemeralStore`], with real races: many tasks on a multi-threaded tokio runtime,
//! released together by a barrier, spread over several handles of the same store.
//!
//! # How to use it
//!
//! Call the functions from a `#[tokio::test(flavor = "multi_thread")]` test. They
//! **panic** with a message naming the method and the broken contract when the store
//! gets something wrong (and when it returns an error it should not), like `assert!`.
//!
//! - [`all`]: everything, for a complete [`Store`].
//! - [`account_store`] / [`ephemeral_store`]: the behaviour of each method, one call
//!   at a time, on one handle.
//! - [`account_races`] / [`ephemeral_races`] / [`races`]: the atomicity contracts.
//! - [`accounts_all`] / [`ephemeral_all`]: both kinds of check for a store that
//!   implements only one of the traits (a Redis store of ephemeral state, say).
//!
//! The race functions take a slice of **handles to the same backing data**: for a
//! database store, give each handle its own connection pool, so that they stand in
//! for separate server instances; for an in-memory store, clones. Racing tasks are
//! spread over the handles round-robin. A single handle works too.
//!
//! Every check makes its own random ids, user names and token hashes, so the suite
//! can run against a shared database, in parallel with other tests, and again and
//! again without cleaning up. It leaves its records behind (the ephemeral ones
//! expire ten minutes later).
//!
//! Times: the suite passes the real current time (and times up to ten minutes
//! ahead) as `now`, `expires_at` and `keep_until`, so stores that map expiry onto
//! native TTLs behave normally; it never sleeps.
//!
//! ```
//! use secondfactor::store::MemoryStore;
//! use secondfactor::store::conformance::{self, RaceConfig};
//!
//! #[tokio::main] // in a test: #[tokio::test(flavor = "multi_thread")]
//! async fn main() {
//!     let store = MemoryStore::new();
//!     // Several handles on the same data stand in for several server instances.
//!     let handles = [store.clone(), store.clone(), store];
//!     conformance::all(&handles, RaceConfig::new(20, 8)).await;
//! }
//! ```
//!
//! A store of your own, racing over separate connection pools:
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn my_store_conforms() {
//!     let url = std::env::var("DATABASE_URL").unwrap();
//!     // One connection pool per handle: two "server instances" on one database.
//!     let handles = [
//!         MyStore::connect(&url).await.unwrap(),
//!         MyStore::connect(&url).await.unwrap(),
//!     ];
//!     // A networked store is slower than memory: fewer rounds still race hard.
//!     conformance::all(&handles, RaceConfig::default().with_rounds(50)).await;
//! }
//! ```

// This module is a test suite: reporting a broken contract by panicking is its job.
#![allow(clippy::panic)]

mod accounts;
mod devices_sessions;
mod fixtures;
mod pending;
mod purge;
mod races;
mod replay;
mod security_log;
mod throttles;
mod unit_of_work;

use super::{AccountStore, EphemeralStore, Store};

/// How hard the race checks push: how many rounds of each race, and how many tasks
/// race in each round.
///
/// One round of every race makes about 800 store calls with 16 tasks (most of them
/// in the compare-and-set counter race, which grows with the square of `tasks`).
/// The default, 200 rounds of 16 tasks, takes a few seconds on [`MemoryStore`](super::MemoryStore) in a
/// debug build. A store that talks to a server costs a round trip or more per call:
/// pass fewer rounds (20 to 50 still make ten thousand and more racing calls), and
/// keep 8 to 16 tasks so that the races stay crowded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaceConfig {
    rounds: usize,
    tasks: usize,
}

impl Default for RaceConfig {
    /// 200 rounds of 16 tasks.
    fn default() -> Self {
        RaceConfig {
            rounds: 200,
            tasks: 16,
        }
    }
}

impl RaceConfig {
    /// `rounds` rounds of each race, `tasks` racing tasks per round. Values below
    /// the minimum (1 round, 2 tasks) are raised to it.
    pub fn new(rounds: usize, tasks: usize) -> Self {
        RaceConfig {
            rounds: rounds.max(1),
            tasks: tasks.max(2),
        }
    }

    /// The same with `rounds` rounds (at least 1).
    pub fn with_rounds(self, rounds: usize) -> Self {
        RaceConfig::new(rounds, self.tasks)
    }

    /// The same with `tasks` racing tasks per round (at least 2).
    pub fn with_tasks(self, tasks: usize) -> Self {
        RaceConfig::new(self.rounds, tasks)
    }

    /// Rounds of each race.
    pub fn rounds(&self) -> usize {
        self.rounds
    }

    /// Racing tasks per round.
    pub fn tasks(&self) -> usize {
        self.tasks
    }
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

/// Runs every check on a complete store: [`account_store`] and [`ephemeral_store`]
/// on each handle, then [`races`] over all of them.
///
/// # Panics
///
/// On the first contract the store breaks, on any store error, when `stores` is
/// empty, and when not called on a multi-threaded tokio runtime.
pub async fn all<S: Store + Clone>(stores: &[S], config: RaceConfig) {
    fixtures::check_race_setup(stores, "all");
    for store in stores {
        account_store(store).await;
        ephemeral_store(store).await;
        unit_of_work(store).await;
    }
    races(stores, config).await;
}

/// Runs every check of the [`AccountStore`] half: [`account_store`] on each handle,
/// then [`account_races`].
///
/// # Panics
///
/// As [`all`].
pub async fn accounts_all<A: AccountStore + Clone>(stores: &[A], config: RaceConfig) {
    fixtures::check_race_setup(stores, "accounts_all");
    for store in stores {
        account_store(store).await;
    }
    account_races(stores, config).await;
}

/// Runs every check of the [`EphemeralStore`] half: [`ephemeral_store`] on each
/// handle, then [`ephemeral_races`].
///
/// # Panics
///
/// As [`all`].
pub async fn ephemeral_all<E: EphemeralStore + Clone>(stores: &[E], config: RaceConfig) {
    fixtures::check_race_setup(stores, "ephemeral_all");
    for store in stores {
        ephemeral_store(store).await;
    }
    ephemeral_races(stores, config).await;
}

/// Checks the behaviour of every [`AccountStore`] method, one call at a time:
/// accounts and user-name uniqueness, passwords (the compare-and-set on the epoch,
/// rehashes), turning 2FA on and off, authenticators (order, adding, the cap,
/// removing, resealing), backup codes and their `backup_codes_key_id`, and the
/// security log (order, limit, `max_entries`, `forget_before`, every field and kind),
/// and `account_and_authenticators` (the account with its authenticators in one read).
///
/// # Panics
///
/// On the first contract the store breaks, and on any store error.
pub async fn account_store<A: AccountStore>(store: &A) {
    accounts::accounts_create_and_lookup(store).await;
    accounts::accounts_set_password(store).await;
    accounts::two_factor_lifecycle(store).await;
    accounts::two_factor_without_backup_codes(store).await;
    accounts::authenticators_order_remove_reseal(store).await;
    accounts::authenticator_secret_updates(store).await;
    accounts::authenticator_cap(store).await;
    accounts::backup_codes(store).await;
    security_log::security_log_order_and_bounds(store).await;
    security_log::security_log_fields(store).await;
    accounts::account_and_authenticators(store).await;
}

/// Checks the behaviour of every [`EphemeralStore`] method, one call at a time:
/// pending logins (attempt counting, burning, expiry, take, delete), enrollments,
/// replay marks, throttles (and their `keep_until`), trusted devices and sessions
/// (every field, expiry, the account's list, re-authentication, deleting one, all,
/// or all but one), `purge_expired` (expired records of every kind go, live ones
/// stay), and `read_factor_ephemeral` (the attempt counted on the first live pending
/// login among the tokens, dead ones met on the way burnt, its user's throttles).
///
/// # Panics
///
/// On the first contract the store breaks, and on any store error.
pub async fn ephemeral_store<E: EphemeralStore>(store: &E) {
    pending::pending_logins(store).await;
    pending::pending_login_expiry(store).await;
    pending::enrollments(store).await;
    pending::ceremonies(store).await;
    replay::replay_marks(store).await;
    throttles::throttles(store).await;
    throttles::throttle_expiry(store).await;
    devices_sessions::devices(store).await;
    devices_sessions::device_expiry(store).await;
    devices_sessions::sessions(store).await;
    devices_sessions::session_lists(store).await;
    devices_sessions::session_expiry(store).await;
    purge::purge(store).await;
    pending::factor_ephemeral_read(store).await;
}

/// Races every atomicity contract of both halves; see [`account_races`] and
/// [`ephemeral_races`].
///
/// # Panics
///
/// As [`all`].
pub async fn races<S: Store + Clone>(stores: &[S], config: RaceConfig) {
    account_races(stores, config).await;
    ephemeral_races(stores, config).await;
    unit_of_work_races(stores, config).await;
}

/// Checks the unit-of-work operations of [`Store`], one call at a time:
/// [`read_factor_step`](Store::read_factor_step) (the pending login with the attempt
/// counted, the account, its authenticators and throttles returned; a read and a
/// commit count one attempt; a burnt or missing login `None`) and
/// [`commit_factor_step`](Store::commit_factor_step) (a spent step with its session,
/// device, throttles and log entry; a replay and a wrong code counted; a throttle
/// that moved or a pending login that is gone spend nothing).
///
/// # Panics
///
/// On the first contract the store breaks, and on any store error.
pub async fn unit_of_work<S: Store>(store: &S) {
    unit_of_work::factor_step_read(store).await;
    unit_of_work::factor_step_commit(store).await;
    unit_of_work::factor_step_commit_refused(store).await;
}

/// Races [`commit_factor_step`](Store::commit_factor_step), `config.rounds()` rounds,
/// `config.tasks()` tasks per round spread over `stores`:
///
/// - commits spending the same step of one authenticator, each on its own pending
///   login with its own throttles: exactly one `Spent`, the others `NotSpent`;
/// - commits on one pending login from the same throttle states, each with its own
///   fresh authenticator step: exactly one `Spent`, the pending login is gone, and
///   exactly one session is written;
/// - wrong guesses on one pending login with three attempts, each a
///   [`read_factor_step`](Store::read_factor_step) and a commit: exactly three are
///   counted and answered (`NotSpent`), the others find the login gone (a read
///   `None` or a commit `Expired`), and the login is burnt.
///
/// # Panics
///
/// As [`all`].
pub async fn unit_of_work_races<S: Store + Clone>(stores: &[S], config: RaceConfig) {
    fixtures::check_race_setup(stores, "unit_of_work_races");
    for round in 0..config.rounds {
        races::race_commit_same_step(stores, config.tasks, round).await;
        races::race_commit_same_login(stores, config.tasks, round).await;
        races::race_guesses_on_one_login(stores, config.tasks, round).await;
    }
}

/// Races the atomicity contracts of [`AccountStore`], `config.rounds()` rounds each,
/// `config.tasks()` tasks per round spread over `stores`:
///
/// - `create_account` with one user name: exactly one succeeds, the rest get
///   `UsernameTaken`, and the losers leave no account behind;
/// - `enable_two_factor` on one account: exactly one succeeds, and the account ends
///   up with exactly the winner's authenticator and backup codes;
/// - `consume_backup_code` with one hash: exactly one `true`;
/// - `consume_backup_code` with distinct hashes of one account: all `true`, none
///   left (no lost updates);
/// - `remove_authenticator` of all of an account's two to four authenticators:
///   all but one `Removed`, one authenticator left;
/// - `add_authenticator` of distinct authenticators to one account: none is lost;
/// - `disable_two_factor` against `add_authenticator`: 2FA ends up off with no
///   authenticator;
/// - `replace_backup_codes` against consuming old codes: exactly the new set is
///   left;
/// - `set_password` against `enable_two_factor`: neither update is lost, exactly one
///   of the password changes from one epoch wins, and the password hash and epoch
///   are the winner's;
/// - `set_password` with one expected epoch: exactly one `true`, whose hash stays;
/// - a password change (epoch `e` to `e + 1`) against rehashes (`e` to `e`): the
///   change is written and stays (a login can never undo a password change);
/// - `add_authenticator` with a cap of three to an account with one: exactly two
///   succeed, the rest get `TooManyAuthenticators`, three are left;
/// - `update_authenticator_secret` with one expected secret and distinct new ones
///   (one WebAuthn assertion finishing several logins): exactly one `true`, whose
///   secret stays.
///
/// # Panics
///
/// As [`all`].
pub async fn account_races<A: AccountStore + Clone>(stores: &[A], config: RaceConfig) {
    fixtures::check_race_setup(stores, "account_races");
    for round in 0..config.rounds {
        races::race_create_account(stores, config.tasks, round).await;
        races::race_enable_two_factor(stores, config.tasks, round).await;
        races::race_consume_same_code(stores, config.tasks, round).await;
        races::race_consume_distinct_codes(stores, config.tasks, round).await;
        races::race_remove_authenticators(stores, config.tasks, round).await;
        races::race_add_authenticators(stores, config.tasks, round).await;
        races::race_disable_vs_add(stores, config.tasks, round).await;
        races::race_replace_vs_consume(stores, config.tasks, round).await;
        races::race_password_vs_enable(stores, config.tasks, round).await;
        races::race_set_password(stores, config.tasks, round).await;
        races::race_password_change_vs_rehash(stores, config.tasks, round).await;
        races::race_authenticator_cap(stores, config.tasks, round).await;
        races::race_update_authenticator_secret(stores, config.tasks, round).await;
    }
}

/// Races the atomicity contracts of [`EphemeralStore`], `config.rounds()` rounds
/// each, `config.tasks()` tasks per round spread over `stores`:
///
/// - `advance_last_step` with one step, on a fresh authenticator and on one with an
///   older mark: exactly one `true`;
/// - `advance_last_step` with different steps: the greatest always wins and the
///   mark never goes back;
/// - `advance_last_step` on distinct authenticators: all `true` (marks are per
///   authenticator);
/// - `take_pending_login`: exactly one `Some`;
/// - `take_pending_login` against `begin_login_attempt`: exactly one take gets the
///   login, counting exactly the attempts that got `Some`, and no attempt brings a
///   taken login back;
/// - `begin_login_attempt` with `k` attempts left: exactly `k` `Some`, with distinct
///   counts, and the pending login is burnt;
/// - `take_enrollment`: exactly one `true`;
/// - `take_enrollment` of an old setup against `put_enrollment` of a new one: the
///   new one is never taken;
/// - `take_ceremony` (a WebAuthn ceremony's state): exactly one `Some`;
/// - `update_throttle` with one expected state: exactly one `true`, whose state
///   stays; then resets to the default state from it: exactly one `true`;
/// - `update_throttle` as a counter (read, compare-and-set, retry): no increment is
///   lost;
/// - `update_throttle` from the default state on a state past its `keep_until`:
///   exactly one `true`, whose state stays;
/// - `purge_expired` against the writes of a live login (sessions, devices) and
///   with a live pending login and throttle: no live record is deleted (every
///   eighth round, as a purge may walk the whole store);
/// - `create_device` for one account: no device is lost;
/// - `delete_sessions` keeping one session, from every task: only the kept session
///   is left, and the counts returned add up to the number deleted;
/// - `delete_sessions` keeping one session against `create_session` for the same
///   account: a session created before the delete started is gone, one created
///   after it returned is there, and every session is counted as deleted or left;
/// - `delete_session` against `reauthenticate_session`: the session stays deleted
///   (a re-authentication never brings it back);
/// - `read_factor_ephemeral` on one pending login with `max_attempts` `m` (fewer
///   than the tasks): exactly `m` count an attempt, with distinct counts, and the
///   login is burnt.
///
/// # Panics
///
/// As [`all`].
pub async fn ephemeral_races<E: EphemeralStore + Clone>(stores: &[E], config: RaceConfig) {
    fixtures::check_race_setup(stores, "ephemeral_races");
    for round in 0..config.rounds {
        races::race_advance_same_step(stores, config.tasks, round).await;
        races::race_advance_mixed_steps(stores, config.tasks, round).await;
        races::race_advance_distinct_ids(stores, config.tasks, round).await;
        races::race_take_pending_login(stores, config.tasks, round).await;
        races::race_take_vs_attempt(stores, config.tasks, round).await;
        races::race_begin_login_attempt(stores, config.tasks, round).await;
        races::race_take_enrollment(stores, config.tasks, round).await;
        races::race_take_enrollment_vs_put(stores, config.tasks, round).await;
        races::race_take_ceremony(stores, config.tasks, round).await;
        races::race_update_throttle(stores, config.tasks, round).await;
        races::race_throttle_counter(stores, config.tasks, round).await;
        races::race_update_expired_throttle(stores, config.tasks, round).await;
        if round % 8 == 0 {
            races::race_purge_vs_live_login(stores, config.tasks, round).await;
        }
        races::race_create_devices(stores, config.tasks, round).await;
        races::race_delete_sessions(stores, config.tasks, round).await;
        races::race_delete_sessions_vs_create(stores, config.tasks, round).await;
        races::race_reauthenticate_vs_delete(stores, config.tasks, round).await;
        races::race_read_factor_ephemeral(stores, config.tasks, round).await;
    }
}
