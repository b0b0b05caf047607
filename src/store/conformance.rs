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

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use tokio::sync::Barrier;

use super::*;
use crate::Error;
use crate::clock::{Clock, SystemClock};
use crate::security_log::{MAX_ENTRIES, MAX_TEXT_BYTES, RETENTION_SECS, SecurityEventKind};

/// How hard the race checks push: how many rounds of each race, and how many tasks
/// race in each round.
///
/// One round of every race makes about 800 store calls with 16 tasks (most of them
/// in the compare-and-set counter race, which grows with the square of `tasks`).
/// The default, 200 rounds of 16 tasks, takes a few seconds on [`MemoryStore`] in a
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
    check_race_setup(stores, "all");
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
    check_race_setup(stores, "accounts_all");
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
    check_race_setup(stores, "ephemeral_all");
    for store in stores {
        ephemeral_store(store).await;
    }
    ephemeral_races(stores, config).await;
}

/// Checks the behaviour of every [`AccountStore`] method, one call at a time:
/// accounts and user-name uniqueness, passwords (the compare-and-set on the epoch,
/// rehashes), turning 2FA on and off, authenticators (order, adding, the cap,
/// removing, resealing), backup codes and their `backup_codes_key_id`, and the
/// security log (order, limit, `max_entries`, `forget_before`, every field and kind).
///
/// # Panics
///
/// On the first contract the store breaks, and on any store error.
pub async fn account_store<A: AccountStore>(store: &A) {
    accounts_create_and_lookup(store).await;
    accounts_set_password(store).await;
    two_factor_lifecycle(store).await;
    two_factor_without_backup_codes(store).await;
    authenticators_order_remove_reseal(store).await;
    authenticator_secret_updates(store).await;
    authenticator_cap(store).await;
    backup_codes(store).await;
    security_log_order_and_bounds(store).await;
    security_log_fields(store).await;
}

/// Checks the behaviour of every [`EphemeralStore`] method, one call at a time:
/// pending logins (attempt counting, burning, expiry, take, delete), enrollments,
/// replay marks, throttles (and their `keep_until`), trusted devices and sessions
/// (every field, expiry, the account's list, re-authentication, deleting one, all,
/// or all but one), and `purge_expired` (expired records of every kind go, live ones
/// stay).
///
/// # Panics
///
/// On the first contract the store breaks, and on any store error.
pub async fn ephemeral_store<E: EphemeralStore>(store: &E) {
    pending_logins(store).await;
    pending_login_expiry(store).await;
    enrollments(store).await;
    ceremonies(store).await;
    replay_marks(store).await;
    throttles(store).await;
    throttle_expiry(store).await;
    devices(store).await;
    device_expiry(store).await;
    sessions(store).await;
    session_lists(store).await;
    session_expiry(store).await;
    purge(store).await;
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
    factor_step_read(store).await;
    factor_step_commit(store).await;
    factor_step_commit_refused(store).await;
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
    check_race_setup(stores, "unit_of_work_races");
    for round in 0..config.rounds {
        race_commit_same_step(stores, config.tasks, round).await;
        race_commit_same_login(stores, config.tasks, round).await;
        race_guesses_on_one_login(stores, config.tasks, round).await;
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
    check_race_setup(stores, "account_races");
    for round in 0..config.rounds {
        race_create_account(stores, config.tasks, round).await;
        race_enable_two_factor(stores, config.tasks, round).await;
        race_consume_same_code(stores, config.tasks, round).await;
        race_consume_distinct_codes(stores, config.tasks, round).await;
        race_remove_authenticators(stores, config.tasks, round).await;
        race_add_authenticators(stores, config.tasks, round).await;
        race_disable_vs_add(stores, config.tasks, round).await;
        race_replace_vs_consume(stores, config.tasks, round).await;
        race_password_vs_enable(stores, config.tasks, round).await;
        race_set_password(stores, config.tasks, round).await;
        race_password_change_vs_rehash(stores, config.tasks, round).await;
        race_authenticator_cap(stores, config.tasks, round).await;
        race_update_authenticator_secret(stores, config.tasks, round).await;
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
///   stays;
/// - `update_throttle` as a counter (read, compare-and-set, retry): no increment is
///   lost;
/// - `update_throttle` from the default state on a state past its `keep_until`:
///   exactly one `true`, whose state stays;
/// - `purge_expired` against the writes of a live login (sessions, devices) and
///   with a live pending login and throttle: no live record is deleted (every
///   eighth round, as a purge may walk the whole store);
/// - `create_device` for one account: no device is lost;
/// - `delete_sessions` keeping one session, from every task: only the kept session
///   is left, and the counts returned add up to the number deleted.
///
/// # Panics
///
/// As [`all`].
pub async fn ephemeral_races<E: EphemeralStore + Clone>(stores: &[E], config: RaceConfig) {
    check_race_setup(stores, "ephemeral_races");
    for round in 0..config.rounds {
        race_advance_same_step(stores, config.tasks, round).await;
        race_advance_mixed_steps(stores, config.tasks, round).await;
        race_advance_distinct_ids(stores, config.tasks, round).await;
        race_take_pending_login(stores, config.tasks, round).await;
        race_take_vs_attempt(stores, config.tasks, round).await;
        race_begin_login_attempt(stores, config.tasks, round).await;
        race_take_enrollment(stores, config.tasks, round).await;
        race_take_enrollment_vs_put(stores, config.tasks, round).await;
        race_take_ceremony(stores, config.tasks, round).await;
        race_update_throttle(stores, config.tasks, round).await;
        race_throttle_counter(stores, config.tasks, round).await;
        race_update_expired_throttle(stores, config.tasks, round).await;
        if round % 8 == 0 {
            race_purge_vs_live_login(stores, config.tasks, round).await;
        }
        race_create_devices(stores, config.tasks, round).await;
        race_delete_sessions(stores, config.tasks, round).await;
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// How long the suite's ephemeral records live, in seconds.
const TTL: u64 = 600;
/// The attempt limit the unit-of-work commits pass (high enough not to matter
/// unless a check says otherwise).
const MAX_ATTEMPTS: u32 = 5;

/// A cap on authenticators that the checks of something else never reach.
const ROOMY: u32 = 100;

fn now() -> u64 {
    SystemClock.now()
}

#[track_caller]
fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected store error: {e} ({e:?})"),
    }
}

#[track_caller]
fn non_empty<S>(stores: &[S], what: &str) {
    assert!(
        !stores.is_empty(),
        "conformance::{what}: needs at least one store handle"
    );
}

#[track_caller]
fn check_race_setup<S>(stores: &[S], what: &str) {
    non_empty(stores, what);
    let flavor = match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.runtime_flavor(),
        Err(_) => panic!("conformance::{what}: must run inside a tokio runtime"),
    };
    assert!(
        flavor == tokio::runtime::RuntimeFlavor::MultiThread,
        "conformance::{what}: races need a multi-threaded tokio runtime \
         (#[tokio::test(flavor = \"multi_thread\")]), got {flavor:?}"
    );
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes[..]);
    bytes
}

fn hash() -> KeyedHash {
    KeyedHash(random_bytes())
}

fn hashes(n: usize) -> Vec<KeyedHash> {
    (0..n).map(|_| hash()).collect()
}

fn hex_id() -> String {
    crate::token::random_hex_id()
}

fn user_id() -> UserId {
    UserId::new(hex_id())
}

fn authenticator_id() -> AuthenticatorId {
    AuthenticatorId::new(hex_id())
}

fn key_id() -> u32 {
    u32::from_be_bytes(random_bytes())
}

fn username() -> String {
    format!("conformance-{}", hex_id())
}

#[track_caller]
fn password_hash() -> PasswordHash {
    let phc = format!(
        "$argon2id$v=19$m=256,t=1,p=1${}${}",
        STANDARD_NO_PAD.encode(random_bytes::<16>()),
        STANDARD_NO_PAD.encode(random_bytes::<32>())
    );
    ok(
        PasswordHash::from_phc(&phc),
        "building a test password hash",
    )
}

#[track_caller]
fn sealed_secret() -> SealedSecret {
    // [version 1][key id][24-byte nonce][20-byte ciphertext][16-byte tag]: passes the
    // structural checks of `SealedSecret::from_bytes`; the store never opens it.
    let mut bytes = vec![1u8];
    bytes.extend_from_slice(&u32::from(random_bytes::<1>()[0]).to_be_bytes());
    bytes.extend_from_slice(&random_bytes::<60>());
    ok(
        SealedSecret::from_bytes(bytes),
        "building a test sealed secret",
    )
}

/// A sealed record (version 2) of `len` payload bytes, as the core keeps a WebAuthn
/// credential: much longer than a TOTP secret.
#[track_caller]
fn sealed_record(len: usize) -> SealedSecret {
    let mut bytes = vec![2u8];
    bytes.extend_from_slice(&u32::from(random_bytes::<1>()[0]).to_be_bytes());
    let mut rest = vec![0u8; 24 + len + 16];
    for chunk in rest.chunks_mut(32) {
        let r = random_bytes::<32>();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    bytes.extend_from_slice(&rest);
    ok(
        SealedSecret::from_bytes(bytes),
        "building a test sealed record",
    )
}

fn account_record(created_at: u64) -> AccountRecord {
    AccountRecord {
        id: user_id(),
        username: username(),
        password_hash: password_hash(),
        password_epoch: 3,
        two_factor_enabled: false,
        backup_codes_key_id: None,
        created_at,
    }
}

fn authenticator(user_id: &UserId, name: &str, created_at: u64) -> AuthenticatorRecord {
    AuthenticatorRecord {
        id: authenticator_id(),
        user_id: user_id.clone(),
        name: name.to_owned(),
        sealed_secret: sealed_secret(),
        created_at,
    }
}

/// Creates a fresh account, checking that it worked.
async fn new_account<A: AccountStore>(store: &A) -> AccountRecord {
    let account = account_record(now());
    ok(store.create_account(&account).await, "create_account");
    account
}

/// Creates a fresh account with 2FA on: one authenticator and `codes` backup codes.
async fn new_2fa_account<A: AccountStore>(
    store: &A,
    codes: usize,
) -> (AccountRecord, AuthenticatorRecord, Vec<KeyedHash>) {
    let account = new_account(store).await;
    let auth = authenticator(&account.id, "phone", now());
    let codes = hashes(codes);
    ok(
        store.enable_two_factor(&auth, &codes, key_id()).await,
        "enable_two_factor on a fresh account",
    );
    (account, auth, codes)
}

#[track_caller]
fn assert_same_account(got: &AccountRecord, want: &AccountRecord, what: &str) {
    assert!(
        got.id == want.id
            && got.username == want.username
            && got.password_hash.as_str() == want.password_hash.as_str()
            && got.password_epoch == want.password_epoch
            && got.two_factor_enabled == want.two_factor_enabled
            && got.backup_codes_key_id == want.backup_codes_key_id
            && got.created_at == want.created_at,
        "{what}: the account read back differs from the one written\n got: {got:?}\nwant: {want:?}"
    );
}

fn same_authenticator(a: &AuthenticatorRecord, b: &AuthenticatorRecord) -> bool {
    a.id == b.id
        && a.user_id == b.user_id
        && a.name == b.name
        && a.sealed_secret == b.sealed_secret
        && a.created_at == b.created_at
}

#[track_caller]
fn assert_same_authenticators(
    got: &[AuthenticatorRecord],
    want: &[&AuthenticatorRecord],
    what: &str,
) {
    assert!(
        got.len() == want.len() && got.iter().zip(want).all(|(g, w)| same_authenticator(g, w)),
        "{what}: the authenticators read back differ (order: oldest first)\n \
         got: {got:?}\nwant: {want:?}"
    );
}

async fn account_of<A: AccountStore>(store: &A, id: &UserId, what: &str) -> AccountRecord {
    match ok(store.account(id).await, what) {
        Some(a) => a,
        None => panic!("{what}: account({id:?}) returned None for an existing account"),
    }
}

/// Runs `op` in `tasks` spawned tasks, released together by a barrier, task `i` on
/// handle `i % stores.len()`; returns the results in task order.
async fn race<S, T, Fut>(stores: &[S], tasks: usize, mut op: impl FnMut(usize, S) -> Fut) -> Vec<T>
where
    S: Clone,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let work = op(i, stores[i % stores.len()].clone());
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                work.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks);
    for handle in handles {
        match handle.await {
            Ok(v) => out.push(v),
            Err(e) => match e.try_into_panic() {
                Ok(payload) => std::panic::resume_unwind(payload),
                Err(e) => panic!("conformance: a racing task did not finish: {e}"),
            },
        }
    }
    out
}

/// The handle to check results on after a round: a different one each round, so that
/// writes made through one handle are read through another.
fn checker<S>(stores: &[S], round: usize) -> &S {
    &stores[(round + 1) % stores.len()]
}

// ---------------------------------------------------------------------------------------
// AccountStore, one call at a time
// ---------------------------------------------------------------------------------------

async fn accounts_create_and_lookup<A: AccountStore>(store: &A) {
    let account = account_record(now());
    ok(store.create_account(&account).await, "create_account");

    let by_name = ok(
        store.account_by_username(&account.username).await,
        "account_by_username",
    );
    match by_name {
        Some(got) => assert_same_account(&got, &account, "account_by_username"),
        None => panic!("account_by_username: returned None for an account just created"),
    }
    let by_id = account_of(store, &account.id, "account").await;
    assert_same_account(&by_id, &account, "account");
    assert!(
        by_id.backup_codes_key_id.is_none(),
        "account: a new account's backup_codes_key_id must be None, got {:?}",
        by_id.backup_codes_key_id
    );

    assert!(
        ok(
            store.account_by_username(&username()).await,
            "account_by_username"
        )
        .is_none(),
        "account_by_username: returned an account for an unknown user name"
    );
    assert!(
        ok(store.account(&user_id()).await, "account").is_none(),
        "account: returned an account for an unknown id"
    );

    // Uniqueness: a second account with the same name fails and leaves nothing.
    let mut twin = account_record(now());
    twin.username = account.username.clone();
    match store.create_account(&twin).await {
        Err(Error::UsernameTaken) => {}
        other => panic!(
            "create_account: a second account with a taken user name must fail with \
             UsernameTaken, got {other:?}"
        ),
    }
    assert!(
        ok(store.account(&twin.id).await, "account").is_none(),
        "create_account: a creation that failed with UsernameTaken left an account behind"
    );
    let still = account_of(store, &account.id, "account").await;
    assert_same_account(
        &still,
        &account,
        "create_account: the failed creation of a taken name changed the existing account",
    );
    match ok(
        store.account_by_username(&account.username).await,
        "account_by_username",
    ) {
        Some(got) => assert!(
            got.id == account.id,
            "create_account: after UsernameTaken, the name points at {:?} instead of {:?}",
            got.id,
            account.id
        ),
        None => panic!("account_by_username: lost the account after a failed twin creation"),
    }

    // A fresh account has nothing of 2FA.
    assert!(
        ok(store.authenticators(&account.id).await, "authenticators").is_empty(),
        "authenticators: a fresh account has authenticators"
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        0,
        "backup_codes_remaining: a fresh account has backup codes"
    );
    assert!(
        ok(store.authenticators(&user_id()).await, "authenticators").is_empty(),
        "authenticators: an unknown account has authenticators"
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(&user_id()).await,
            "backup_codes_remaining"
        ),
        0,
        "backup_codes_remaining: an unknown account has backup codes"
    );
}

async fn accounts_set_password<A: AccountStore>(store: &A) {
    let account = new_account(store).await;
    let id = &account.id;
    let e = account.password_epoch;

    // A password change: the current epoch expected, the next one written.
    let hash = password_hash();
    assert!(
        ok(
            store.set_password(id, &hash, e, e + 1).await,
            "set_password"
        ),
        "set_password: returned false for an existing account whose epoch is expected_epoch"
    );
    let mut want = account.clone();
    want.password_hash = hash.clone();
    want.password_epoch = e + 1;
    let got = account_of(store, id, "account after set_password").await;
    assert_same_account(&got, &want, "set_password (read by id)");
    match ok(
        store.account_by_username(&account.username).await,
        "account_by_username",
    ) {
        Some(got) => assert_same_account(&got, &want, "set_password (read by user name)"),
        None => panic!("account_by_username: lost the account after set_password"),
    }

    // A stale expected epoch (the epoch moved on): refused, nothing written. Also an
    // expected epoch ahead of the account's: the compare is for equality.
    let stale = password_hash();
    for (expected, new, what) in [
        (e, e + 2, "a password change"),
        (e, e, "a rehash"),
        (e + 2, e + 3, "a password change expecting a newer epoch"),
    ] {
        assert!(
            !ok(
                store.set_password(id, &stale, expected, new).await,
                "set_password"
            ),
            "set_password: {what} with expected_epoch {expected} wrote although the account's \
             epoch is {}; with a stale (or any other) expected_epoch it must return false \
             (compare-and-set on the epoch)",
            e + 1
        );
        let got = account_of(store, id, "account after a refused set_password").await;
        assert_same_account(
            &got,
            &want,
            &format!("set_password: {what} with a wrong expected_epoch changed the account"),
        );
    }

    // A rehash: the epoch read is expected and written again.
    let rehash = password_hash();
    assert!(
        ok(
            store.set_password(id, &rehash, e + 1, e + 1).await,
            "set_password"
        ),
        "set_password: a rehash (expected_epoch == new_epoch == the account's epoch) returned \
         false"
    );
    want.password_hash = rehash;
    let got = account_of(store, id, "account after a rehash").await;
    assert_same_account(
        &got,
        &want,
        "set_password: a rehash must write the hash and keep the epoch",
    );

    let unknown = user_id();
    assert!(
        !ok(
            store.set_password(&unknown, &hash, 3, 4).await,
            "set_password"
        ),
        "set_password: returned true for an unknown account"
    );
    assert!(
        ok(store.account(&unknown).await, "account").is_none(),
        "set_password: on an unknown account it created one"
    );
}

async fn two_factor_lifecycle<A: AccountStore>(store: &A) {
    let t = now();

    // Missing account.
    let ghost = user_id();
    match store
        .enable_two_factor(&authenticator(&ghost, "phone", t), &hashes(2), key_id())
        .await
    {
        Err(Error::NotFound { .. }) => {}
        other => panic!("enable_two_factor: on a missing account must be NotFound, got {other:?}"),
    }
    assert!(
        ok(store.authenticators(&ghost).await, "authenticators").is_empty(),
        "enable_two_factor: a NotFound enable left an authenticator behind"
    );
    assert!(
        ok(store.account(&ghost).await, "account").is_none(),
        "enable_two_factor: a NotFound enable created an account"
    );

    let account = new_account(store).await;
    let id = &account.id;

    // add_authenticator needs 2FA on.
    match store
        .add_authenticator(&authenticator(id, "early", t), ROOMY)
        .await
    {
        Err(Error::TwoFactorNotEnabled) => {}
        other => panic!(
            "add_authenticator: with 2FA off must fail with TwoFactorNotEnabled, got {other:?}"
        ),
    }
    assert!(
        ok(store.authenticators(id).await, "authenticators").is_empty(),
        "add_authenticator: a refused add (2FA off) stored the authenticator"
    );

    // Enable.
    let first = authenticator(id, "Téléphone ☎ 📱", t);
    let codes = hashes(5);
    let key = key_id();
    ok(
        store.enable_two_factor(&first, &codes, key).await,
        "enable_two_factor",
    );
    let got = account_of(store, id, "account after enable_two_factor").await;
    assert!(
        got.two_factor_enabled,
        "enable_two_factor: the account's two_factor_enabled flag is still false"
    );
    assert_eq!(
        got.backup_codes_key_id,
        Some(key),
        "enable_two_factor: backup_codes_key_id must be the backup_key_id passed"
    );
    let mut want = account.clone();
    want.two_factor_enabled = true;
    want.backup_codes_key_id = Some(key);
    assert_same_account(
        &got,
        &want,
        "enable_two_factor (other fields must not change)",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first],
        "enable_two_factor",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        5,
        "enable_two_factor: backup_codes_remaining after enabling with 5 codes"
    );

    // A second enable changes nothing.
    let second = authenticator(id, "other phone", t + 1);
    let other_codes = hashes(3);
    match store
        .enable_two_factor(&second, &other_codes, key.wrapping_add(1))
        .await
    {
        Err(Error::TwoFactorAlreadyEnabled) => {}
        other => panic!(
            "enable_two_factor: a second enable must fail with TwoFactorAlreadyEnabled, \
             got {other:?}"
        ),
    }
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first],
        "enable_two_factor: a refused second enable changed the authenticators",
    );
    assert_same_account(
        &account_of(store, id, "account").await,
        &want,
        "enable_two_factor: a refused second enable changed the account (backup_codes_key_id?)",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        5,
        "enable_two_factor: a refused second enable changed the backup codes"
    );
    assert!(
        !ok(
            store.consume_backup_code(id, &other_codes[0]).await,
            "consume_backup_code"
        ),
        "enable_two_factor: a refused second enable stored its backup codes"
    );
    assert!(
        ok(
            store.consume_backup_code(id, &codes[0]).await,
            "consume_backup_code"
        ),
        "enable_two_factor: a refused second enable removed the first backup codes"
    );

    // Add while on.
    let added = authenticator(id, "tablet", t + 2);
    ok(
        store.add_authenticator(&added, ROOMY).await,
        "add_authenticator",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first, &added],
        "add_authenticator",
    );

    // Disable clears everything.
    assert!(
        ok(store.disable_two_factor(id).await, "disable_two_factor"),
        "disable_two_factor: returned false although 2FA was on"
    );
    let got = account_of(store, id, "account after disable_two_factor").await;
    assert!(
        got.backup_codes_key_id.is_none(),
        "disable_two_factor: backup_codes_key_id must be cleared (None), got {:?}",
        got.backup_codes_key_id
    );
    assert_same_account(
        &got,
        &account,
        "disable_two_factor (flag off, backup_codes_key_id cleared, other fields unchanged)",
    );
    assert!(
        ok(store.authenticators(id).await, "authenticators").is_empty(),
        "disable_two_factor: authenticators are left"
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        0,
        "disable_two_factor: backup codes are left"
    );
    assert!(
        !ok(
            store.consume_backup_code(id, &codes[1]).await,
            "consume_backup_code"
        ),
        "disable_two_factor: a backup code of the old set can still be consumed"
    );
    assert!(
        !ok(store.disable_two_factor(id).await, "disable_two_factor"),
        "disable_two_factor: returned true although 2FA was already off"
    );
    assert!(
        !ok(
            store.disable_two_factor(&user_id()).await,
            "disable_two_factor"
        ),
        "disable_two_factor: returned true for an unknown account"
    );
    match store
        .add_authenticator(&authenticator(id, "late", t + 3), ROOMY)
        .await
    {
        Err(Error::TwoFactorNotEnabled) => {}
        other => panic!(
            "add_authenticator: after disable_two_factor must fail with TwoFactorNotEnabled, \
             got {other:?}"
        ),
    }

    // Enable again: only the new authenticator and codes.
    let again = authenticator(id, "new phone", t + 4);
    let new_codes = hashes(2);
    let new_key = key.wrapping_add(2);
    ok(
        store.enable_two_factor(&again, &new_codes, new_key).await,
        "enable_two_factor after disable_two_factor",
    );
    assert_eq!(
        account_of(store, id, "account").await.backup_codes_key_id,
        Some(new_key),
        "enable_two_factor after disable_two_factor: backup_codes_key_id must be the new \
         backup_key_id"
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&again],
        "enable_two_factor after disable_two_factor",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        2,
        "enable_two_factor after disable_two_factor: backup_codes_remaining"
    );
}

async fn two_factor_without_backup_codes<A: AccountStore>(store: &A) {
    // An empty set of backup codes is a valid set (and an empty SQL insert).
    let account = new_account(store).await;
    let auth = authenticator(&account.id, "phone", now());
    ok(
        store.enable_two_factor(&auth, &[], key_id()).await,
        "enable_two_factor with no backup codes",
    );
    assert!(
        account_of(store, &account.id, "account")
            .await
            .two_factor_enabled,
        "enable_two_factor with no backup codes: the flag is off"
    );
    assert_same_authenticators(
        &ok(store.authenticators(&account.id).await, "authenticators"),
        &[&auth],
        "enable_two_factor with no backup codes",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        0,
        "enable_two_factor with no backup codes: backup_codes_remaining"
    );
}

async fn authenticators_order_remove_reseal<A: AccountStore>(store: &A) {
    let t = now();
    let account = new_account(store).await;
    let id = &account.id;
    let a1 = authenticator(id, "one", t);
    ok(
        store.enable_two_factor(&a1, &hashes(1), key_id()).await,
        "enable_two_factor",
    );
    // Added out of `created_at` order: the list is ordered by `created_at`.
    let a3 = authenticator(id, "three", t + 20);
    let a2 = authenticator(id, "two", t + 10);
    ok(
        store.add_authenticator(&a3, ROOMY).await,
        "add_authenticator",
    );
    ok(
        store.add_authenticator(&a2, ROOMY).await,
        "add_authenticator",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&a1, &a2, &a3],
        "authenticators (oldest created_at first)",
    );

    // Another account's view is separate.
    let (other, other_auth, _) = new_2fa_account(store, 1).await;
    assert_same_authenticators(
        &ok(store.authenticators(&other.id).await, "authenticators"),
        &[&other_auth],
        "authenticators (only the account's own)",
    );

    // Reseal.
    let resealed = sealed_secret();
    assert!(
        ok(
            store.reseal_authenticator(id, &a2.id, &resealed).await,
            "reseal_authenticator"
        ),
        "reseal_authenticator: returned false for an existing authenticator"
    );
    let mut a2_new = a2.clone();
    a2_new.sealed_secret = resealed.clone();
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&a1, &a2_new, &a3],
        "reseal_authenticator (only that secret changes)",
    );
    assert!(
        !ok(
            store
                .reseal_authenticator(id, &authenticator_id(), &resealed)
                .await,
            "reseal_authenticator"
        ),
        "reseal_authenticator: returned true for an unknown authenticator"
    );
    assert!(
        !ok(
            store
                .reseal_authenticator(&other.id, &a1.id, &resealed)
                .await,
            "reseal_authenticator"
        ),
        "reseal_authenticator: resealed another account's authenticator"
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&a1, &a2_new, &a3],
        "reseal_authenticator (refused calls must not change anything)",
    );

    // Remove.
    let outcome = ok(
        store.remove_authenticator(id, &authenticator_id()).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::NotFound,
        "remove_authenticator: an unknown authenticator id"
    );
    let outcome = ok(
        store.remove_authenticator(&other.id, &a1.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::NotFound,
        "remove_authenticator: another account's authenticator must be NotFound"
    );
    let outcome = ok(
        store.remove_authenticator(&user_id(), &a1.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::NotFound,
        "remove_authenticator: an unknown account"
    );
    let outcome = ok(
        store.remove_authenticator(id, &a1.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::Removed,
        "remove_authenticator: 1 of 3"
    );
    let outcome = ok(
        store.remove_authenticator(id, &a1.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::NotFound,
        "remove_authenticator: the same authenticator a second time"
    );
    let outcome = ok(
        store.remove_authenticator(id, &a3.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::Removed,
        "remove_authenticator: 2 of 3"
    );
    let outcome = ok(
        store.remove_authenticator(id, &a2.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::LastOne,
        "remove_authenticator: the last authenticator"
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&a2_new],
        "remove_authenticator (LastOne must leave it)",
    );
    assert_same_authenticators(
        &ok(store.authenticators(&other.id).await, "authenticators"),
        &[&other_auth],
        "remove_authenticator (another account is untouched)",
    );
    assert!(
        account_of(store, id, "account").await.two_factor_enabled,
        "remove_authenticator: turned 2FA off"
    );
}

async fn authenticator_secret_updates<A: AccountStore>(store: &A) {
    let t = now();
    let account = new_account(store).await;
    let id = &account.id;
    let totp = authenticator(id, "phone", t);
    ok(
        store.enable_two_factor(&totp, &hashes(1), key_id()).await,
        "enable_two_factor",
    );
    // A WebAuthn credential is an authenticator whose secret is a long sealed record.
    let mut key = authenticator(id, "key", t + 1);
    key.sealed_secret = sealed_record(3000);
    ok(
        store.add_authenticator(&key, ROOMY).await,
        "add_authenticator (sealed record)",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&totp, &key],
        "update_authenticator_secret: a 3 KB sealed record must round-trip",
    );
    let next = sealed_record(3000);
    let stale = sealed_record(3000);
    assert!(
        !ok(
            store
                .update_authenticator_secret(id, &key.id, &stale, &next)
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: returned true although the stored secret is not \
         the expected one"
    );
    assert!(
        !ok(
            store
                .update_authenticator_secret(id, &authenticator_id(), &key.sealed_secret, &next)
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: returned true for an unknown authenticator"
    );
    let other = new_account(store).await;
    assert!(
        !ok(
            store
                .update_authenticator_secret(&other.id, &key.id, &key.sealed_secret, &next)
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: returned true for another account's authenticator"
    );
    assert!(
        ok(
            store
                .update_authenticator_secret(id, &key.id, &key.sealed_secret, &next)
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: returned false with the stored secret as expected"
    );
    let mut updated = key.clone();
    updated.sealed_secret = next.clone();
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&totp, &updated],
        "update_authenticator_secret: the new secret must be stored, the other \
         authenticator untouched",
    );
    assert!(
        !ok(
            store
                .update_authenticator_secret(id, &key.id, &key.sealed_secret, &sealed_record(10))
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: the old secret must no longer match"
    );
}

async fn authenticator_cap<A: AccountStore>(store: &A) {
    const MAX: u32 = 3;
    let t = now();
    let (account, first, _) = new_2fa_account(store, 1).await;
    let id = &account.id;
    let a2 = authenticator(id, "two", t + 1);
    let a3 = authenticator(id, "three", t + 2);
    let a4 = authenticator(id, "four", t + 3);
    ok(
        store.add_authenticator(&a2, MAX).await,
        "add_authenticator: the 2nd authenticator with max_authenticators = 3",
    );
    ok(
        store.add_authenticator(&a3, MAX).await,
        "add_authenticator: the 3rd authenticator with max_authenticators = 3 (reaching the \
         cap is allowed)",
    );
    match store.add_authenticator(&a4, MAX).await {
        Err(Error::TooManyAuthenticators) => {}
        other => panic!(
            "add_authenticator: the 4th authenticator with max_authenticators = 3 must fail \
             with TooManyAuthenticators, got {other:?}"
        ),
    }
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first, &a2, &a3],
        "add_authenticator: an add refused by the cap changed the authenticators",
    );
    match store.add_authenticator(&a4, 1).await {
        Err(Error::TooManyAuthenticators) => {}
        other => panic!(
            "add_authenticator: an account with 3 authenticators and max_authenticators = 1 \
             must fail with TooManyAuthenticators, got {other:?}"
        ),
    }
    // The cap counts the account's authenticators now: after a removal there is room.
    assert_eq!(
        ok(
            store.remove_authenticator(id, &a2.id).await,
            "remove_authenticator"
        ),
        RemoveOutcome::Removed,
        "remove_authenticator: 1 of 3"
    );
    ok(
        store.add_authenticator(&a4, MAX).await,
        "add_authenticator: after a removal, below max_authenticators again",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first, &a3, &a4],
        "add_authenticator (up to the cap after a removal)",
    );
}

async fn backup_codes<A: AccountStore>(store: &A) {
    let (account, _, codes) = new_2fa_account(store, 8).await;
    let id = &account.id;
    let (other, _, other_codes) = new_2fa_account(store, 2).await;

    // Another account's code, and an unknown account.
    assert!(
        !ok(
            store.consume_backup_code(&other.id, &codes[0]).await,
            "consume_backup_code"
        ),
        "consume_backup_code: consumed another account's code"
    );
    assert!(
        !ok(
            store.consume_backup_code(&user_id(), &codes[0]).await,
            "consume_backup_code"
        ),
        "consume_backup_code: consumed a code for an unknown account"
    );
    assert!(
        !ok(
            store.consume_backup_code(id, &hash()).await,
            "consume_backup_code"
        ),
        "consume_backup_code: consumed a hash the account never had"
    );

    for (i, code) in codes.iter().enumerate().take(4) {
        assert!(
            ok(
                store.consume_backup_code(id, code).await,
                "consume_backup_code"
            ),
            "consume_backup_code: an unspent code returned false"
        );
        assert!(
            !ok(
                store.consume_backup_code(id, code).await,
                "consume_backup_code"
            ),
            "consume_backup_code: the same code was consumed twice"
        );
        let left = ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining",
        );
        assert_eq!(
            u64::from(left),
            (8 - i - 1) as u64,
            "backup_codes_remaining: after consuming {} of 8",
            i + 1
        );
    }
    assert_eq!(
        ok(
            store.backup_codes_remaining(&other.id).await,
            "backup_codes_remaining"
        ),
        2,
        "consume_backup_code: changed another account's codes"
    );

    // Replace: the old set is gone at once.
    let fresh = hashes(10);
    let other_key = account_of(store, &other.id, "account")
        .await
        .backup_codes_key_id;
    let key = key_id();
    ok(
        store.replace_backup_codes(id, &fresh, key).await,
        "replace_backup_codes",
    );
    let got = account_of(store, id, "account").await;
    assert_eq!(
        got.backup_codes_key_id,
        Some(key),
        "replace_backup_codes: backup_codes_key_id must be the key_id passed"
    );
    let mut want = account.clone();
    want.two_factor_enabled = true;
    want.backup_codes_key_id = Some(key);
    assert_same_account(
        &got,
        &want,
        "replace_backup_codes (other fields must not change)",
    );
    assert_eq!(
        account_of(store, &other.id, "account")
            .await
            .backup_codes_key_id,
        other_key,
        "replace_backup_codes: changed another account's backup_codes_key_id"
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        10,
        "replace_backup_codes: backup_codes_remaining after replacing with 10 codes"
    );
    for code in &codes[4..] {
        assert!(
            !ok(
                store.consume_backup_code(id, code).await,
                "consume_backup_code"
            ),
            "replace_backup_codes: a code of the old set can still be consumed"
        );
    }
    assert!(
        ok(
            store.consume_backup_code(id, &fresh[9]).await,
            "consume_backup_code"
        ),
        "replace_backup_codes: a code of the new set cannot be consumed"
    );
    ok(
        store.replace_backup_codes(id, &[], key_id()).await,
        "replace_backup_codes",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        0,
        "replace_backup_codes: with an empty set codes remain"
    );
    assert!(
        !ok(
            store.consume_backup_code(id, &fresh[0]).await,
            "consume_backup_code"
        ),
        "replace_backup_codes: with an empty set, an old code can still be consumed"
    );
    assert!(
        ok(
            store.consume_backup_code(&other.id, &other_codes[1]).await,
            "consume_backup_code"
        ),
        "replace_backup_codes: changed another account's codes"
    );
}

/// Appends `event` to the log of `user`, keeping the newest `max` entries and none
/// older than `forget_before`.
async fn append<A: AccountStore>(
    store: &A,
    user: &UserId,
    event: &SecurityEvent,
    max: u32,
    forget_before: u64,
) {
    ok(
        store
            .append_security_event(user, event, max, forget_before)
            .await,
        "append_security_event",
    );
}

async fn log_of<A: AccountStore>(store: &A, user: &UserId, limit: u32) -> Vec<SecurityEvent> {
    ok(store.security_log(user, limit).await, "security_log")
}

async fn security_log_order_and_bounds<A: AccountStore>(store: &A) {
    let t = now();
    let forget = t - RETENTION_SECS;
    let account = new_account(store).await;
    let id = &account.id;
    assert!(
        log_of(store, id, MAX_ENTRIES).await.is_empty(),
        "security_log: a new account has entries"
    );

    // Newest first, by `at`.
    let e1 = SecurityEvent::new(t - 30, SecurityEventKind::Login).with_detail("first");
    let e2 = SecurityEvent::new(t - 20, SecurityEventKind::LoginFailed).with_detail("second");
    let e3 = SecurityEvent::new(t - 10, SecurityEventKind::Login).with_detail("third");
    for e in [&e1, &e2, &e3] {
        append(store, id, e, MAX_ENTRIES, forget).await;
    }
    assert_eq!(
        log_of(store, id, MAX_ENTRIES).await,
        vec![e3.clone(), e2.clone(), e1.clone()],
        "security_log: the entries must come back newest first"
    );
    assert_eq!(
        log_of(store, id, 2).await,
        vec![e3.clone(), e2.clone()],
        "security_log: limit 2 must return the newest 2 entries"
    );
    assert!(
        log_of(store, id, 0).await.is_empty(),
        "security_log: limit 0 must return no entry"
    );

    // The same `at`: the newest appended first. Logs are per account.
    let other = new_account(store).await;
    let same: Vec<SecurityEvent> = ["a", "b", "c"]
        .iter()
        .map(|d| SecurityEvent::new(t, SecurityEventKind::CodeReplayed).with_detail(d))
        .collect();
    for e in &same {
        append(store, &other.id, e, MAX_ENTRIES, forget).await;
    }
    let want: Vec<SecurityEvent> = same.iter().rev().cloned().collect();
    assert_eq!(
        log_of(store, &other.id, MAX_ENTRIES).await,
        want,
        "security_log: entries with the same `at` must come newest appended first (and only \
         the account's own)"
    );
    assert_eq!(
        log_of(store, id, MAX_ENTRIES).await,
        vec![e3, e2, e1],
        "append_security_event: changed another account's log"
    );

    // Bounded: max + 5 appends keep the newest max.
    const MAX: u32 = 10;
    let bounded = new_account(store).await;
    let all: Vec<SecurityEvent> = (0..MAX + 5)
        .map(|i| {
            SecurityEvent::new(t - 100 + u64::from(i), SecurityEventKind::Login)
                .with_detail(&format!("entry {i}"))
        })
        .collect();
    for e in &all {
        append(store, &bounded.id, e, MAX, forget).await;
    }
    let want: Vec<SecurityEvent> = all.iter().rev().take(MAX as usize).cloned().collect();
    assert_eq!(
        log_of(store, &bounded.id, MAX_ENTRIES).await,
        want,
        "append_security_event: after {} appends with max_entries = {MAX}, exactly the newest \
         {MAX} entries must be kept",
        MAX + 5
    );

    // Entries older than `forget_before` are forgotten on the next append; an entry at
    // exactly `forget_before` is kept.
    let aging = new_account(store).await;
    let old = SecurityEvent::new(t - 100, SecurityEventKind::Login).with_detail("old");
    let edge = SecurityEvent::new(t - 60, SecurityEventKind::Login).with_detail("edge");
    let mid = SecurityEvent::new(t - 50, SecurityEventKind::Login).with_detail("mid");
    let last = SecurityEvent::new(t, SecurityEventKind::Login).with_detail("last");
    for e in [&old, &edge, &mid] {
        append(store, &aging.id, e, MAX_ENTRIES, forget).await;
    }
    append(store, &aging.id, &last, MAX_ENTRIES, t - 60).await;
    assert_eq!(
        log_of(store, &aging.id, MAX_ENTRIES).await,
        vec![last, mid, edge],
        "append_security_event: entries with at < forget_before must be forgotten on the next \
         append (and one with at == forget_before kept)"
    );

    // A missing account: not an error, nothing kept.
    let ghost = user_id();
    let e = SecurityEvent::new(t, SecurityEventKind::LoginFailed);
    match store
        .append_security_event(&ghost, &e, MAX_ENTRIES, forget)
        .await
    {
        Ok(()) => {}
        Err(err) => panic!(
            "append_security_event: for a missing account must return Ok (and keep nothing), \
             got {err:?}"
        ),
    }
    assert!(
        log_of(store, &ghost, MAX_ENTRIES).await.is_empty(),
        "append_security_event: kept an entry for a missing account"
    );
    assert!(
        ok(store.account(&ghost).await, "account").is_none(),
        "append_security_event: for a missing account it created one"
    );
}

async fn security_log_fields<A: AccountStore>(store: &A) {
    let t = now();
    let forget = t - RETENTION_SECS;

    // Method, client and detail round-trip, present or absent; text up to the bound,
    // with characters of several bytes.
    let account = new_account(store).await;
    let id = &account.id;
    let mut events = vec![
        SecurityEvent::new(t, SecurityEventKind::Login),
        SecurityEvent::new(t, SecurityEventKind::TwoFactorReset)
            .with_client(Some("2001:db8::1"))
            .with_detail("reset by «ops» — ticket #42 🔐"),
        SecurityEvent::new(t, SecurityEventKind::Reauthenticated)
            .with_client(Some(&"é".repeat(MAX_TEXT_BYTES / 2)))
            .with_detail(&"🔐".repeat(MAX_TEXT_BYTES / 4)),
    ];
    for method in METHODS {
        events.push(
            SecurityEvent::new(t, SecurityEventKind::Login)
                .with_method(method)
                .with_client(Some("203.0.113.9")),
        );
    }
    for e in &events {
        append(store, id, e, MAX_ENTRIES, forget).await;
    }
    let got = log_of(store, id, MAX_ENTRIES).await;
    let want: Vec<SecurityEvent> = events.iter().rev().cloned().collect();
    assert_eq!(
        got, want,
        "security_log: method, client and detail must round-trip (present or absent, up to \
         {MAX_TEXT_BYTES} bytes of text)"
    );

    // Every kind round-trips.
    let kinds = new_account(store).await;
    for kind in SecurityEventKind::ALL {
        append(
            store,
            &kinds.id,
            &SecurityEvent::new(t, *kind),
            MAX_ENTRIES,
            forget,
        )
        .await;
    }
    let got: Vec<SecurityEventKind> = log_of(store, &kinds.id, MAX_ENTRIES)
        .await
        .iter()
        .map(|e| e.kind)
        .collect();
    let want: Vec<SecurityEventKind> = SecurityEventKind::ALL.iter().rev().copied().collect();
    assert_eq!(
        got, want,
        "security_log: every SecurityEventKind must round-trip (newest appended first)"
    );
}

// ---------------------------------------------------------------------------------------
// EphemeralStore, one call at a time
// ---------------------------------------------------------------------------------------

fn pending(user_id: &UserId, attempts: u32, expires_at: u64) -> PendingLogin {
    PendingLogin {
        user_id: user_id.clone(),
        password_epoch: 7,
        attempts,
        expires_at,
    }
}

async fn pending_logins<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();

    // Unknown tokens.
    assert!(
        ok(
            store.begin_login_attempt(&hash(), 3, t).await,
            "begin_login_attempt"
        )
        .is_none(),
        "begin_login_attempt: returned a pending login for an unknown token"
    );
    assert!(
        ok(
            store.take_pending_login(&hash(), t).await,
            "take_pending_login"
        )
        .is_none(),
        "take_pending_login: returned a pending login for an unknown token"
    );
    ok(
        store.delete_pending_login(&hash()).await,
        "delete_pending_login of a missing token",
    );

    // Counting up to the limit, then burnt.
    let token = hash();
    let login = pending(&user, 0, t + TTL);
    ok(
        store.create_pending_login(&token, &login).await,
        "create_pending_login",
    );
    for n in 1..=3 {
        let got = ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt",
        );
        let want = pending(&user, n, t + TTL);
        assert_eq!(
            got,
            Some(want),
            "begin_login_attempt: attempt {n} of 3 must return the login with attempts = {n}"
        );
    }
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt: a 4th attempt with max_attempts = 3 must return None"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "begin_login_attempt: an attempt beyond max_attempts must delete (burn) the pending login"
    );

    // Created with attempts already made.
    let token = hash();
    ok(
        store
            .create_pending_login(&token, &pending(&user, 2, t + TTL))
            .await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt"
        ),
        Some(pending(&user, 3, t + TTL)),
        "begin_login_attempt: counting must start from the stored attempts"
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt: beyond max_attempts must return None"
    );

    // Created with no attempt left: the next attempt burns it.
    let token = hash();
    ok(
        store
            .create_pending_login(&token, &pending(&user, 3, t + TTL))
            .await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt: a login with attempts == max_attempts must return None"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "begin_login_attempt: an attempt beyond max_attempts must delete (burn) the pending login"
    );

    // Take after some attempts: single use, with the count.
    let token = hash();
    ok(
        store.create_pending_login(&token, &login).await,
        "create_pending_login",
    );
    ok(
        store.begin_login_attempt(&token, 5, t).await,
        "begin_login_attempt",
    );
    ok(
        store.begin_login_attempt(&token, 5, t).await,
        "begin_login_attempt",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        Some(pending(&user, 2, t + TTL)),
        "take_pending_login: must return the login with its attempts counted"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "take_pending_login: a pending login could be taken twice"
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 5, t).await,
            "begin_login_attempt"
        ),
        None,
        "take_pending_login: the taken login still accepts attempts"
    );

    // Delete, and independence of tokens.
    let kept = hash();
    let deleted = hash();
    ok(
        store.create_pending_login(&kept, &login).await,
        "create_pending_login",
    );
    ok(
        store.create_pending_login(&deleted, &login).await,
        "create_pending_login",
    );
    ok(
        store.delete_pending_login(&deleted).await,
        "delete_pending_login",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&deleted, t).await,
            "take_pending_login"
        ),
        None,
        "delete_pending_login: the login is still there"
    );
    ok(
        store.delete_pending_login(&deleted).await,
        "delete_pending_login twice",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&kept, t).await,
            "take_pending_login"
        ),
        Some(login.clone()),
        "delete_pending_login: deleted another token's pending login"
    );
}

async fn pending_login_expiry<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let expires = t + TTL;
    let login = pending(&user, 0, expires);

    // Before expiry everything works; at `expires_at` the login is absent. (Always
    // the earlier `now` first: a store may delete an expired record when it sees it.)
    let a = hash();
    ok(
        store.create_pending_login(&a, &login).await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&a, 3, expires - 1).await,
            "begin_login_attempt"
        ),
        Some(pending(&user, 1, expires)),
        "begin_login_attempt: a login one second before expires_at must count"
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&a, 3, expires).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt: a login at now == expires_at must be absent"
    );

    let b = hash();
    ok(
        store.create_pending_login(&b, &login).await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&b, expires).await,
            "take_pending_login"
        ),
        None,
        "take_pending_login: a login at now == expires_at must be absent"
    );
    let c = hash();
    ok(
        store.create_pending_login(&c, &login).await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&c, expires + 1000).await,
            "take_pending_login"
        ),
        None,
        "take_pending_login: a login past expires_at must be absent"
    );
    let d = hash();
    ok(
        store.create_pending_login(&d, &login).await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&d, expires - 1).await,
            "take_pending_login"
        ),
        Some(login),
        "take_pending_login: a login one second before expires_at must be there"
    );
}

fn enrollment_record(adding: bool, expires_at: u64) -> PendingEnrollment {
    PendingEnrollment {
        id: hex_id(),
        name: "phone".to_owned(),
        sealed_secret: sealed_secret(),
        adding,
        expires_at,
    }
}

#[track_caller]
fn assert_same_enrollment(got: Option<PendingEnrollment>, want: &PendingEnrollment, what: &str) {
    match got {
        Some(g) => assert!(
            g.id == want.id
                && g.name == want.name
                && g.sealed_secret == want.sealed_secret
                && g.adding == want.adding
                && g.expires_at == want.expires_at,
            "{what}: the enrollment read back differs\n got: {g:?}\nwant: {want:?}"
        ),
        None => panic!("{what}: the enrollment is missing"),
    }
}

fn ceremony_record(login: Option<KeyedHash>, expires_at: u64) -> CeremonyRecord {
    CeremonyRecord {
        user_id: user_id(),
        login,
        state: random_bytes::<32>().repeat(40),
        expires_at,
    }
}

async fn ceremonies<E: EphemeralStore>(store: &E) {
    let t = now();
    for login in [None, Some(hash())] {
        let key = hex_id();
        let c = ceremony_record(login, t + TTL);
        ok(store.put_ceremony(&key, &c).await, "put_ceremony");
        assert_eq!(
            ok(store.take_ceremony(&key, t).await, "take_ceremony"),
            Some(c.clone()),
            "take_ceremony: must return the ceremony as stored"
        );
        assert_eq!(
            ok(store.take_ceremony(&key, t).await, "take_ceremony"),
            None,
            "take_ceremony: a ceremony must be single use"
        );
    }
    // A later put replaces the earlier ceremony under the same key.
    let key = hex_id();
    let first = ceremony_record(None, t + TTL);
    let second = ceremony_record(Some(hash()), t + TTL);
    ok(store.put_ceremony(&key, &first).await, "put_ceremony");
    ok(store.put_ceremony(&key, &second).await, "put_ceremony");
    assert_eq!(
        ok(store.take_ceremony(&key, t).await, "take_ceremony"),
        Some(second),
        "take_ceremony: put_ceremony must replace the earlier ceremony"
    );
    // Expired: absent, also to a take at exactly `expires_at`.
    let key = hex_id();
    ok(
        store
            .put_ceremony(&key, &ceremony_record(None, t + 5))
            .await,
        "put_ceremony",
    );
    assert_eq!(
        ok(store.take_ceremony(&key, t + 5).await, "take_ceremony"),
        None,
        "take_ceremony: a ceremony with expires_at <= now must be absent"
    );
    assert_eq!(
        ok(store.take_ceremony(&hex_id(), t).await, "take_ceremony"),
        None,
        "take_ceremony: an unknown key must be absent"
    );
}

async fn enrollments<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let expires = t + TTL;
    assert!(
        ok(store.enrollment(&user, t).await, "enrollment").is_none(),
        "enrollment: a user without one has one"
    );
    assert!(
        !ok(
            store.take_enrollment(&user, "nope", t).await,
            "take_enrollment"
        ),
        "take_enrollment: returned true with no enrollment"
    );

    let first = enrollment_record(false, expires);
    ok(store.put_enrollment(&user, &first).await, "put_enrollment");
    assert_same_enrollment(
        ok(store.enrollment(&user, t).await, "enrollment"),
        &first,
        "put_enrollment",
    );

    // Put replaces.
    let second = enrollment_record(true, expires + 5);
    ok(store.put_enrollment(&user, &second).await, "put_enrollment");
    assert_same_enrollment(
        ok(store.enrollment(&user, t).await, "enrollment"),
        &second,
        "put_enrollment (a second put must replace the first)",
    );
    assert!(
        !ok(
            store.take_enrollment(&user, &first.id, t).await,
            "take_enrollment"
        ),
        "take_enrollment: took the replaced enrollment's id"
    );
    assert_same_enrollment(
        ok(store.enrollment(&user, t).await, "enrollment"),
        &second,
        "take_enrollment (a take with the wrong id must leave it)",
    );

    // Another user's.
    let other = user_id();
    assert!(
        ok(store.enrollment(&other, t).await, "enrollment").is_none(),
        "enrollment: returned another user's enrollment"
    );
    assert!(
        !ok(
            store.take_enrollment(&other, &second.id, t).await,
            "take_enrollment"
        ),
        "take_enrollment: took another user's enrollment"
    );

    // Take: once.
    assert!(
        ok(
            store.take_enrollment(&user, &second.id, t).await,
            "take_enrollment"
        ),
        "take_enrollment: returned false for the current, unexpired enrollment"
    );
    assert!(
        ok(store.enrollment(&user, t).await, "enrollment").is_none(),
        "take_enrollment: the enrollment is still there"
    );
    assert!(
        !ok(
            store.take_enrollment(&user, &second.id, t).await,
            "take_enrollment"
        ),
        "take_enrollment: the same enrollment was taken twice"
    );

    // Expiry (earlier `now` first).
    let user = user_id();
    let e = enrollment_record(false, expires);
    ok(store.put_enrollment(&user, &e).await, "put_enrollment");
    assert_same_enrollment(
        ok(store.enrollment(&user, expires - 1).await, "enrollment"),
        &e,
        "enrollment (one second before expires_at)",
    );
    assert!(
        ok(store.enrollment(&user, expires).await, "enrollment").is_none(),
        "enrollment: returned an enrollment at now == expires_at"
    );
    assert!(
        !ok(
            store.take_enrollment(&user, &e.id, expires).await,
            "take_enrollment"
        ),
        "take_enrollment: took an enrollment at now == expires_at"
    );
    let user = user_id();
    ok(store.put_enrollment(&user, &e).await, "put_enrollment");
    assert!(
        ok(
            store.take_enrollment(&user, &e.id, expires - 1).await,
            "take_enrollment"
        ),
        "take_enrollment: refused an enrollment one second before expires_at"
    );
}

async fn replay_marks<E: EphemeralStore>(store: &E) {
    let keep = now() + TTL;
    let id = authenticator_id();
    let step = now() / 30;
    let steps = [
        (step, true, "the first step"),
        (step, false, "the same step again (a replay)"),
        (step - 1, false, "an older step"),
        (step + 1, true, "a newer step"),
        (step, false, "an older step after a newer one"),
        (step + 1, false, "the newest step again"),
        (step + 100, true, "a much newer step"),
        (step + 2, false, "a step between"),
    ];
    for (s, want, what) in steps {
        assert_eq!(
            ok(
                store.advance_last_step(&id, s, keep).await,
                "advance_last_step"
            ),
            want,
            "advance_last_step: {what}"
        );
    }

    // Marks are per authenticator.
    let other = authenticator_id();
    assert!(
        ok(
            store.advance_last_step(&other, step, keep).await,
            "advance_last_step"
        ),
        "advance_last_step: another authenticator's mark blocked this one"
    );

    // Step 0 on a fresh authenticator is recorded ("or none was").
    let zero = authenticator_id();
    assert!(
        ok(
            store.advance_last_step(&zero, 0, keep).await,
            "advance_last_step"
        ),
        "advance_last_step: step 0 on a fresh authenticator must be recorded"
    );
    assert!(
        !ok(
            store.advance_last_step(&zero, 0, keep).await,
            "advance_last_step"
        ),
        "advance_last_step: step 0 replayed"
    );

    // A mark holds until keep_until even when later calls pass a shorter one.
    let held = authenticator_id();
    assert!(ok(
        store.advance_last_step(&held, step, keep).await,
        "advance_last_step"
    ));
    assert!(
        !ok(
            store.advance_last_step(&held, step, now() + 5).await,
            "advance_last_step"
        ),
        "advance_last_step: a replay with a shorter keep_until was recorded"
    );
    assert!(
        !ok(
            store.advance_last_step(&held, step, now() + 5).await,
            "advance_last_step"
        ),
        "advance_last_step: the mark was lost before its keep_until"
    );
}

fn throttle_key() -> String {
    // Keys in the flows look like this: a kind, then a user id, name or address.
    format!("conformance:login:user@example.com {}", hex_id())
}

async fn throttles<E: EphemeralStore>(store: &E) {
    let keep = now() + TTL;
    let key = throttle_key();
    let zero = ThrottleState::default();
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        zero,
        "throttle: an unknown key must read as the default (zero) state"
    );
    let s1 = ThrottleState {
        count: 1,
        until: now() + 60,
    };
    let s2 = ThrottleState {
        count: 2,
        until: now() + 120,
    };

    assert!(
        ok(
            store.update_throttle(&key, zero, s1, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: from the default state of an unknown key returned false"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        s1,
        "update_throttle: state read back"
    );
    assert!(
        !ok(
            store.update_throttle(&key, zero, s2, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: succeeded although the expected state was stale"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        s1,
        "update_throttle: a refused update changed the state"
    );
    assert!(
        !ok(
            store
                .update_throttle(&key, ThrottleState { count: 1, until: 0 }, s2, keep, now())
                .await,
            "update_throttle"
        ),
        "update_throttle: compared only the count, not `until`"
    );
    assert!(
        ok(
            store.update_throttle(&key, s1, s2, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: with the current state as expected returned false"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        s2,
        "update_throttle: state read back"
    );

    // Writing the default state resets; the reset key behaves as unknown.
    assert!(
        ok(
            store.update_throttle(&key, s2, zero, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: a reset to the default state returned false"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        zero,
        "update_throttle: after writing the default state"
    );
    assert!(
        ok(
            store.update_throttle(&key, zero, s1, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: after a reset, the default state must be the expected one"
    );

    // Keys are independent; values round-trip over the whole range of a count.
    let other = throttle_key();
    assert_eq!(
        ok(store.throttle(&other, now()).await, "throttle"),
        zero,
        "throttle: another key's state leaked"
    );
    let big = ThrottleState {
        count: u32::MAX,
        until: now() + 86_400,
    };
    assert!(ok(
        store.update_throttle(&other, zero, big, keep, now()).await,
        "update_throttle"
    ));
    assert_eq!(
        ok(store.throttle(&other, now()).await, "throttle"),
        big,
        "update_throttle: a count of u32::MAX did not round-trip"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        s1,
        "update_throttle: changed another key"
    );
}

async fn throttle_expiry<E: EphemeralStore>(store: &E) {
    let t = now();
    let zero = ThrottleState::default();
    let key = throttle_key();
    let s1 = ThrottleState {
        count: 4,
        until: t + 30,
    };
    let s2 = ThrottleState {
        count: 1,
        until: t + 90,
    };
    assert!(
        ok(
            store.update_throttle(&key, zero, s1, t + 60, t).await,
            "update_throttle"
        ),
        "update_throttle: from the default state of an unknown key returned false"
    );
    assert_eq!(
        ok(store.throttle(&key, t + 59).await, "throttle"),
        s1,
        "throttle: a state before its keep_until must read back"
    );
    assert_eq!(
        ok(store.throttle(&key, t + 60).await, "throttle"),
        zero,
        "throttle: a state at or past its keep_until must read as the default state"
    );
    assert!(
        !ok(
            store.update_throttle(&key, s1, s2, t + 600, t + 60).await,
            "update_throttle"
        ),
        "update_throttle: a state past its keep_until must not compare equal to itself"
    );
    assert!(
        ok(
            store
                .update_throttle(&key, zero, zero, t + 600, t + 60)
                .await,
            "update_throttle"
        ),
        "update_throttle: default to default on a state past its keep_until returned false"
    );
    assert!(
        ok(
            store.update_throttle(&key, zero, s2, t + 600, t + 60).await,
            "update_throttle"
        ),
        "update_throttle: from the default state on a state past its keep_until returned \
         false; an expired state must compare equal to the default state"
    );
    assert_eq!(
        ok(store.throttle(&key, t + 60).await, "throttle"),
        s2,
        "update_throttle: the state written over an expired one did not read back"
    );
    assert!(
        !ok(
            store.update_throttle(&key, zero, s1, t + 600, t + 60).await,
            "update_throttle"
        ),
        "update_throttle: from the default state succeeded twice on an expired state"
    );
    // A state written already past its keep_until is zero at once.
    let key = throttle_key();
    assert!(ok(
        store.update_throttle(&key, zero, s1, t, t).await,
        "update_throttle"
    ));
    assert_eq!(
        ok(store.throttle(&key, t).await, "throttle"),
        zero,
        "throttle: a state written with keep_until = now must read as the default state"
    );
}

fn device_record(user_id: &UserId, created_at: u64, expires_at: u64) -> DeviceRecord {
    DeviceRecord {
        id: DeviceId::new(hex_id()),
        user_id: user_id.clone(),
        label: "Firefox on Linux — Zürich 🦊".to_owned(),
        password_epoch: 5,
        created_at,
        expires_at,
    }
}

async fn devices<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let other = user_id();
    // Created out of `created_at` order: the list is ordered by `created_at`.
    let d1 = device_record(&user, t - 10, t + TTL);
    let d0 = device_record(&user, t - 20, t + TTL);
    let d2 = device_record(&user, t, t + TTL);
    let dv = device_record(&other, t - 30, t + TTL);
    let (h1, h0, h2, hv) = (hash(), hash(), hash(), hash());
    for (h, d) in [(&h1, &d1), (&h0, &d0), (&h2, &d2), (&hv, &dv)] {
        ok(store.create_device(h, d).await, "create_device");
    }

    assert_eq!(
        ok(store.device(&h1, t).await, "device"),
        Some(d1.clone()),
        "device: by its token hash"
    );
    assert_eq!(
        ok(store.device(&hash(), t).await, "device"),
        None,
        "device: an unknown token hash"
    );
    assert_eq!(
        ok(store.devices(&user, t).await, "devices"),
        vec![d0.clone(), d1.clone(), d2.clone()],
        "devices: the account's devices, oldest created_at first"
    );
    assert_eq!(
        ok(store.devices(&other, t).await, "devices"),
        vec![dv.clone()],
        "devices: only the account's own"
    );
    assert!(
        ok(store.devices(&user_id(), t).await, "devices").is_empty(),
        "devices: an unknown account has devices"
    );

    // Revoke one.
    assert!(
        !ok(store.revoke_device(&other, &d1.id).await, "revoke_device"),
        "revoke_device: revoked another account's device"
    );
    assert_eq!(
        ok(store.device(&h1, t).await, "device"),
        Some(d1.clone()),
        "revoke_device: a refused revoke removed the device"
    );
    assert!(
        ok(store.revoke_device(&user, &d1.id).await, "revoke_device"),
        "revoke_device: returned false for an existing device"
    );
    assert_eq!(
        ok(store.device(&h1, t).await, "device"),
        None,
        "revoke_device: the revoked device is still found by its token"
    );
    assert_eq!(
        ok(store.devices(&user, t).await, "devices"),
        vec![d0.clone(), d2.clone()],
        "revoke_device: the revoked device is still listed"
    );
    assert!(
        !ok(store.revoke_device(&user, &d1.id).await, "revoke_device"),
        "revoke_device: revoked the same device twice"
    );
    assert!(
        !ok(
            store.revoke_device(&user, &DeviceId::new(hex_id())).await,
            "revoke_device"
        ),
        "revoke_device: returned true for an unknown device"
    );

    // Revoke all.
    assert_eq!(
        ok(store.revoke_all_devices(&user).await, "revoke_all_devices"),
        2,
        "revoke_all_devices: must return how many devices there were"
    );
    assert!(
        ok(store.devices(&user, t).await, "devices").is_empty(),
        "revoke_all_devices: devices are still listed"
    );
    for h in [&h0, &h2] {
        assert_eq!(
            ok(store.device(h, t).await, "device"),
            None,
            "revoke_all_devices: a revoked device is still found by its token"
        );
    }
    assert_eq!(
        ok(store.revoke_all_devices(&user).await, "revoke_all_devices"),
        0,
        "revoke_all_devices: a second call must find none"
    );
    assert_eq!(
        ok(
            store.revoke_all_devices(&user_id()).await,
            "revoke_all_devices"
        ),
        0,
        "revoke_all_devices: an unknown account"
    );
    assert_eq!(
        ok(store.device(&hv, t).await, "device"),
        Some(dv.clone()),
        "revoke_all_devices: revoked another account's device"
    );
    assert_eq!(
        ok(store.devices(&other, t).await, "devices"),
        vec![dv],
        "revoke_all_devices: changed another account's list"
    );
}

async fn device_expiry<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let short = device_record(&user, t - 5, t + 100);
    let long = device_record(&user, t, t + TTL);
    let (hs, hl) = (hash(), hash());
    ok(store.create_device(&hs, &short).await, "create_device");
    ok(store.create_device(&hl, &long).await, "create_device");

    // Earlier `now` first.
    assert_eq!(
        ok(store.devices(&user, t + 99).await, "devices"),
        vec![short.clone(), long.clone()],
        "devices: one second before a device's expires_at"
    );
    assert_eq!(
        ok(store.device(&hs, t + 99).await, "device"),
        Some(short.clone()),
        "device: one second before its expires_at"
    );
    assert_eq!(
        ok(store.devices(&user, t + 100).await, "devices"),
        vec![long.clone()],
        "devices: a device at now == expires_at must not be listed"
    );
    assert_eq!(
        ok(store.device(&hs, t + 100).await, "device"),
        None,
        "device: a device at now == expires_at must be absent"
    );
    assert_eq!(
        ok(store.device(&hl, t + 100).await, "device"),
        Some(long),
        "device: an unexpired device next to an expired one"
    );
}

fn session_record(user_id: &UserId, created_at: u64, expires_at: u64) -> SessionRecord {
    SessionRecord {
        id: SessionId::new(hex_id()),
        user_id: user_id.clone(),
        password_epoch: 9,
        method: AuthMethod::Totp,
        created_at,
        authenticated_at: created_at,
        expires_at,
    }
}

/// Every [`AuthMethod`] (it is non-exhaustive: a new one is added here).
const METHODS: [AuthMethod; 4] = [
    AuthMethod::Password,
    AuthMethod::Totp,
    AuthMethod::BackupCode,
    AuthMethod::TrustedDevice,
];

async fn sessions<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let mut session = session_record(&user, t - 60, t + TTL);
    // Distinct from `created_at`, so that swapped columns show.
    session.authenticated_at = t - 30;
    session.method = AuthMethod::BackupCode;
    let token = hash();
    ok(
        store.create_session(&token, &session).await,
        "create_session",
    );
    assert_eq!(
        ok(store.session(&token, t).await, "session"),
        Some(session.clone()),
        "session: by its token hash (every field, id, method and authenticated_at included, \
         must round-trip)"
    );
    assert_eq!(
        ok(store.session(&hash(), t).await, "session"),
        None,
        "session: an unknown token hash"
    );

    // Every method round-trips.
    for method in METHODS {
        let mut s = session_record(&user_id(), t, t + TTL);
        s.method = method;
        let h = hash();
        ok(store.create_session(&h, &s).await, "create_session");
        assert_eq!(
            ok(store.session(&h, t).await, "session"),
            Some(s),
            "session: a session with method {method:?} did not round-trip"
        );
    }

    // Delete, and independence of tokens.
    let gone = hash();
    let mut gone_session = session.clone();
    gone_session.id = SessionId::new(hex_id());
    ok(
        store.create_session(&gone, &gone_session).await,
        "create_session",
    );
    ok(store.delete_session(&gone).await, "delete_session");
    assert_eq!(
        ok(store.session(&gone, t).await, "session"),
        None,
        "delete_session: the session is still there"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![session.clone()],
        "delete_session: the deleted session is still listed by sessions(user)"
    );
    ok(
        store.delete_session(&gone).await,
        "delete_session of a missing session",
    );
    assert_eq!(
        ok(store.session(&token, t).await, "session"),
        Some(session.clone()),
        "delete_session: deleted another token's session"
    );

    // Expiry (earlier `now` first).
    let expires = session.expires_at;
    assert_eq!(
        ok(store.session(&token, expires - 1).await, "session"),
        Some(session.clone()),
        "session: one second before expires_at"
    );
    assert_eq!(
        ok(store.session(&token, expires).await, "session"),
        None,
        "session: a session at now == expires_at must be absent"
    );
}

async fn session_lists<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let other = user_id();
    // Created out of `created_at` order: the list is ordered by `created_at`.
    let s1 = session_record(&user, t - 20, t + TTL);
    let s0 = session_record(&user, t - 30, t + TTL);
    let s2 = session_record(&user, t - 10, t + TTL);
    let sv = session_record(&other, t - 40, t + TTL);
    let (h1, h0, h2, hv) = (hash(), hash(), hash(), hash());
    for (h, s) in [(&h1, &s1), (&h0, &s0), (&h2, &s2), (&hv, &sv)] {
        ok(store.create_session(h, s).await, "create_session");
    }
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![s0.clone(), s1.clone(), s2.clone()],
        "sessions: the account's sessions, oldest created_at first"
    );
    assert_eq!(
        ok(store.sessions(&other, t).await, "sessions"),
        vec![sv.clone()],
        "sessions: only the account's own"
    );
    assert!(
        ok(store.sessions(&user_id(), t).await, "sessions").is_empty(),
        "sessions: an unknown account has sessions"
    );

    // Re-authentication.
    let mut s1_new = s1.clone();
    s1_new.authenticated_at = t + 5;
    assert!(
        ok(
            store.reauthenticate_session(&h1, t + 5).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: returned false for an existing, unexpired session"
    );
    assert_eq!(
        ok(store.session(&h1, t).await, "session"),
        Some(s1_new.clone()),
        "reauthenticate_session: must set authenticated_at and nothing else"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![s0.clone(), s1_new.clone(), s2.clone()],
        "reauthenticate_session: must change only that session (as listed by sessions)"
    );
    let unknown = hash();
    assert!(
        !ok(
            store.reauthenticate_session(&unknown, t).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: returned true for an unknown token"
    );
    assert_eq!(
        ok(store.session(&unknown, t).await, "session"),
        None,
        "reauthenticate_session: of an unknown token created a session"
    );

    // Delete one by id.
    assert!(
        !ok(
            store.delete_session_by_id(&other, &s1.id).await,
            "delete_session_by_id"
        ),
        "delete_session_by_id: deleted another account's session"
    );
    assert_eq!(
        ok(store.session(&h1, t).await, "session"),
        Some(s1_new.clone()),
        "delete_session_by_id: a refused delete (another account) removed the session"
    );
    assert!(
        ok(
            store.delete_session_by_id(&user, &s1.id).await,
            "delete_session_by_id"
        ),
        "delete_session_by_id: returned false for an existing session"
    );
    assert_eq!(
        ok(store.session(&h1, t).await, "session"),
        None,
        "delete_session_by_id: the session is still found by its token"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![s0.clone(), s2.clone()],
        "delete_session_by_id: must delete that session only"
    );
    assert!(
        !ok(
            store.delete_session_by_id(&user, &s1.id).await,
            "delete_session_by_id"
        ),
        "delete_session_by_id: returned true for a session already deleted"
    );
    assert!(
        !ok(
            store
                .delete_session_by_id(&user, &SessionId::new(hex_id()))
                .await,
            "delete_session_by_id"
        ),
        "delete_session_by_id: returned true for an unknown id"
    );
    assert!(
        !ok(
            store.reauthenticate_session(&h1, t).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: returned true for a deleted session"
    );

    // Delete all but one.
    let s3 = session_record(&user, t - 5, t + TTL);
    let s4 = session_record(&user, t, t + TTL);
    let (h3, h4) = (hash(), hash());
    ok(store.create_session(&h3, &s3).await, "create_session");
    ok(store.create_session(&h4, &s4).await, "create_session");
    assert_eq!(
        ok(
            store.delete_sessions(&user, Some(&s3.id)).await,
            "delete_sessions"
        ),
        3,
        "delete_sessions: with 4 sessions and one kept, must return 3 (how many it deleted)"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![s3.clone()],
        "delete_sessions: exactly the kept session must be left"
    );
    for h in [&h0, &h2, &h4] {
        assert_eq!(
            ok(store.session(h, t).await, "session"),
            None,
            "delete_sessions: a deleted session is still found by its token"
        );
    }
    assert_eq!(
        ok(store.session(&h3, t).await, "session"),
        Some(s3.clone()),
        "delete_sessions: the kept session is not found by its token"
    );
    assert_eq!(
        ok(
            store.delete_sessions(&user, Some(&s3.id)).await,
            "delete_sessions"
        ),
        0,
        "delete_sessions: a second call keeping the same session must delete none"
    );

    // Delete all.
    assert_eq!(
        ok(store.delete_sessions(&user, None).await, "delete_sessions"),
        1,
        "delete_sessions: with keep = None must delete every session (1 left)"
    );
    assert!(
        ok(store.sessions(&user, t).await, "sessions").is_empty(),
        "delete_sessions: with keep = None sessions are still listed"
    );
    assert_eq!(
        ok(store.session(&h3, t).await, "session"),
        None,
        "delete_sessions: with keep = None a session is still found by its token"
    );
    assert_eq!(
        ok(
            store.delete_sessions(&user_id(), None).await,
            "delete_sessions"
        ),
        0,
        "delete_sessions: an unknown account"
    );

    // The other account was never touched; a keep id it does not have keeps nothing.
    assert_eq!(
        ok(store.sessions(&other, t).await, "sessions"),
        vec![sv.clone()],
        "delete_sessions/delete_session_by_id: changed another account's sessions"
    );
    assert_eq!(
        ok(store.session(&hv, t).await, "session"),
        Some(sv),
        "delete_sessions/delete_session_by_id: deleted another account's session"
    );
    assert_eq!(
        ok(
            store
                .delete_sessions(&other, Some(&SessionId::new(hex_id())))
                .await,
            "delete_sessions"
        ),
        1,
        "delete_sessions: a keep id the account does not have must keep nothing"
    );
    assert!(
        ok(store.sessions(&other, t).await, "sessions").is_empty(),
        "delete_sessions: a keep id the account does not have must keep nothing"
    );
}

async fn session_expiry<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let short = session_record(&user, t - 5, t + 100);
    let long = session_record(&user, t, t + TTL);
    let (hs, hl) = (hash(), hash());
    ok(store.create_session(&hs, &short).await, "create_session");
    ok(store.create_session(&hl, &long).await, "create_session");

    // Earlier `now` (or `at`) first.
    assert_eq!(
        ok(store.sessions(&user, t + 99).await, "sessions"),
        vec![short.clone(), long.clone()],
        "sessions: one second before a session's expires_at"
    );
    let mut reauthed = short.clone();
    reauthed.authenticated_at = t + 99;
    assert!(
        ok(
            store.reauthenticate_session(&hs, t + 99).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: refused a session one second before its expires_at"
    );
    assert_eq!(
        ok(store.session(&hs, t + 99).await, "session"),
        Some(reauthed),
        "reauthenticate_session: must set authenticated_at (one second before expires_at)"
    );
    assert_eq!(
        ok(store.sessions(&user, t + 100).await, "sessions"),
        vec![long.clone()],
        "sessions: a session at now == expires_at must not be listed"
    );
    assert!(
        !ok(
            store.reauthenticate_session(&hs, t + 100).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: returned true for a session at at == expires_at (expired)"
    );
    assert_eq!(
        ok(store.session(&hs, t + 100).await, "session"),
        None,
        "reauthenticate_session: brought an expired session back"
    );
    assert_eq!(
        ok(store.session(&hl, t + 100).await, "session"),
        Some(long),
        "session: an unexpired session next to an expired one"
    );
}

// ---------------------------------------------------------------------------------------
// AccountStore races
// ---------------------------------------------------------------------------------------

async fn purge<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let zero = ThrottleState::default();
    // One expired and one live record of each kind.
    let (dead_login, live_login) = (hash(), hash());
    ok(
        store
            .create_pending_login(&dead_login, &pending(&user, 0, t))
            .await,
        "create_pending_login",
    );
    ok(
        store
            .create_pending_login(&live_login, &pending(&user, 0, t + TTL))
            .await,
        "create_pending_login",
    );
    let (dead_user, live_user) = (user_id(), user.clone());
    let dead_enrollment = enrollment_record(false, t);
    let live_enrollment = enrollment_record(false, t + TTL);
    ok(
        store.put_enrollment(&dead_user, &dead_enrollment).await,
        "put_enrollment",
    );
    ok(
        store.put_enrollment(&live_user, &live_enrollment).await,
        "put_enrollment",
    );
    let (dead_mark, live_mark) = (authenticator_id(), authenticator_id());
    ok(
        store.advance_last_step(&dead_mark, 10, t).await,
        "advance_last_step",
    );
    ok(
        store.advance_last_step(&live_mark, 10, t + TTL).await,
        "advance_last_step",
    );
    let (dead_key, live_key) = (throttle_key(), throttle_key());
    let state = ThrottleState {
        count: 3,
        until: t + 30,
    };
    ok(
        store
            .update_throttle(&dead_key, zero, state, t, t - 1)
            .await,
        "update_throttle",
    );
    ok(
        store
            .update_throttle(&live_key, zero, state, t + TTL, t - 1)
            .await,
        "update_throttle",
    );
    let (dead_device, live_device) = (hash(), hash());
    let live_device_record = device_record(&user, t - 20, t + TTL);
    ok(
        store
            .create_device(&dead_device, &device_record(&user, t - 30, t))
            .await,
        "create_device",
    );
    ok(
        store.create_device(&live_device, &live_device_record).await,
        "create_device",
    );
    let (dead_session, live_session) = (hash(), hash());
    let live_session_record = session_record(&user, t - 20, t + TTL);
    ok(
        store
            .create_session(&dead_session, &session_record(&user, t - 30, t))
            .await,
        "create_session",
    );
    ok(
        store
            .create_session(&live_session, &live_session_record)
            .await,
        "create_session",
    );

    let purged = ok(store.purge_expired(t).await, "purge_expired");
    // Replay marks may be left to a native TTL (they carry no expiry of their own in
    // every store), so five: pending login, enrollment, throttle, device, session.
    assert!(
        purged >= 5,
        "purge_expired: returned {purged}, but the check made five expired records it \
         must delete (a pending login, an enrollment, a throttle, a device, a session)"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&dead_login, t - 1).await,
            "take_pending_login"
        ),
        None,
        "purge_expired: an expired pending login is still there"
    );
    assert_eq!(
        ok(store.enrollment(&dead_user, t - 1).await, "enrollment").map(|e| e.id),
        None,
        "purge_expired: an expired enrollment is still there"
    );
    assert_eq!(
        ok(store.throttle(&dead_key, t - 1).await, "throttle"),
        zero,
        "purge_expired: a throttle past its keep_until is still there"
    );
    assert_eq!(
        ok(store.device(&dead_device, t - 1).await, "device"),
        None,
        "purge_expired: an expired device is still there"
    );
    assert_eq!(
        ok(store.session(&dead_session, t - 1).await, "session"),
        None,
        "purge_expired: an expired session is still there"
    );
    // The live ones stay, whole.
    assert_same_enrollment(
        ok(store.enrollment(&live_user, t).await, "enrollment"),
        &live_enrollment,
        "purge_expired: a live enrollment",
    );
    assert!(
        !ok(
            store.advance_last_step(&live_mark, 10, t + TTL).await,
            "advance_last_step"
        ),
        "purge_expired: a replay mark before its keep_until was forgotten"
    );
    assert_eq!(
        ok(store.throttle(&live_key, t).await, "throttle"),
        state,
        "purge_expired: a throttle before its keep_until was purged"
    );
    assert_eq!(
        ok(store.devices(&user, t).await, "devices"),
        vec![live_device_record],
        "purge_expired: the account's live devices"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![live_session_record],
        "purge_expired: the account's live sessions"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&live_login, t).await,
            "take_pending_login"
        ),
        Some(pending(&user, 0, t + TTL)),
        "purge_expired: a live pending login"
    );
}

fn count<T>(results: &[T], pred: impl Fn(&T) -> bool) -> usize {
    results.iter().filter(|r| pred(r)).count()
}

async fn race_create_account<A: AccountStore + Clone>(stores: &[A], tasks: usize, round: usize) {
    let name = username();
    let t = now();
    let records: Vec<AccountRecord> = (0..tasks)
        .map(|_| {
            let mut a = account_record(t);
            a.username = name.clone();
            a
        })
        .collect();
    let results = race(stores, tasks, |i, s| {
        let record = records[i].clone();
        async move { s.create_account(&record).await }
    })
    .await;
    let winners = count(&results, |r| r.is_ok());
    assert_eq!(
        winners, 1,
        "create_account race (round {round}): {winners} of {tasks} concurrent creations of one \
         user name succeeded; exactly one must: {results:?}"
    );
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(Error::UsernameTaken)),
            "create_account race (round {round}): a loser must get UsernameTaken, got {r:?}"
        );
    }
    let Some(winner) = results.iter().position(|r| r.is_ok()) else {
        return;
    };
    let check = checker(stores, round);
    match ok(
        check.account_by_username(&name).await,
        "account_by_username",
    ) {
        Some(got) => assert_same_account(
            &got,
            &records[winner],
            "create_account race: the name must point at the winner",
        ),
        None => panic!("create_account race (round {round}): the winner's account is missing"),
    }
    for (i, record) in records.iter().enumerate() {
        if i != winner {
            assert!(
                ok(check.account(&record.id).await, "account").is_none(),
                "create_account race (round {round}): a loser's account exists"
            );
        }
    }
}

async fn race_enable_two_factor<A: AccountStore + Clone>(stores: &[A], tasks: usize, round: usize) {
    let account = new_account(&stores[round % stores.len()]).await;
    let t = now();
    let auths: Vec<AuthenticatorRecord> = (0..tasks)
        .map(|i| authenticator(&account.id, &format!("phone {i}"), t))
        .collect();
    let codes: Vec<Vec<KeyedHash>> = (0..tasks).map(|_| hashes(2)).collect();
    let keys: Vec<u32> = (0..tasks).map(|_| key_id()).collect();
    let results = race(stores, tasks, |i, s| {
        let auth = auths[i].clone();
        let codes = codes[i].clone();
        let key = keys[i];
        async move { s.enable_two_factor(&auth, &codes, key).await }
    })
    .await;
    let winners = count(&results, |r| r.is_ok());
    assert_eq!(
        winners, 1,
        "enable_two_factor race (round {round}): {winners} of {tasks} concurrent enables \
         succeeded; exactly one must: {results:?}"
    );
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(Error::TwoFactorAlreadyEnabled)),
            "enable_two_factor race (round {round}): a loser must get TwoFactorAlreadyEnabled, \
             got {r:?}"
        );
    }
    let Some(w) = results.iter().position(|r| r.is_ok()) else {
        return;
    };
    let check = checker(stores, round);
    let got = account_of(check, &account.id, "account").await;
    assert!(
        got.two_factor_enabled,
        "enable_two_factor race (round {round}): the flag is off"
    );
    assert_eq!(
        got.backup_codes_key_id,
        Some(keys[w]),
        "enable_two_factor race (round {round}): backup_codes_key_id is not the winner's"
    );
    assert_same_authenticators(
        &ok(check.authenticators(&account.id).await, "authenticators"),
        &[&auths[w]],
        "enable_two_factor race: exactly the winner's authenticator",
    );
    assert_eq!(
        ok(
            check.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        2,
        "enable_two_factor race (round {round}): exactly the winner's backup codes"
    );
    let loser = (w + 1) % tasks;
    assert!(
        !ok(
            check
                .consume_backup_code(&account.id, &codes[loser][0])
                .await,
            "consume_backup_code"
        ),
        "enable_two_factor race (round {round}): a loser's backup code was stored"
    );
    assert!(
        ok(
            check.consume_backup_code(&account.id, &codes[w][0]).await,
            "consume_backup_code"
        ),
        "enable_two_factor race (round {round}): the winner's backup code is missing"
    );
}

async fn race_consume_same_code<A: AccountStore + Clone>(stores: &[A], tasks: usize, round: usize) {
    let (account, _, codes) = new_2fa_account(&stores[round % stores.len()], 3).await;
    let code = codes[round % 3];
    let results = race(stores, tasks, |_, s| {
        let id = account.id.clone();
        async move { s.consume_backup_code(&id, &code).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "consume_backup_code race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "consume_backup_code race (round {round}): {winners} of {tasks} concurrent consumptions \
         of one backup code returned true; exactly one must"
    );
    assert_eq!(
        ok(
            checker(stores, round)
                .backup_codes_remaining(&account.id)
                .await,
            "backup_codes_remaining"
        ),
        2,
        "consume_backup_code race (round {round}): exactly one code must be gone"
    );
}

async fn race_consume_distinct_codes<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let (account, _, codes) = new_2fa_account(&stores[round % stores.len()], tasks).await;
    let results = race(stores, tasks, |i, s| {
        let id = account.id.clone();
        let code = codes[i];
        async move { s.consume_backup_code(&id, &code).await }
    })
    .await;
    let spent = count(&results, |r| matches!(r, Ok(true)));
    assert_eq!(
        spent, tasks,
        "consume_backup_code race (round {round}): of {tasks} concurrent consumptions of \
         distinct codes of one account only {spent} returned true; all must: {results:?}"
    );
    assert_eq!(
        ok(
            checker(stores, round)
                .backup_codes_remaining(&account.id)
                .await,
            "backup_codes_remaining"
        ),
        0,
        "consume_backup_code race (round {round}): codes are left after every code was consumed \
         concurrently (a lost update)"
    );
}

async fn race_remove_authenticators<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    // m authenticators, every one removed concurrently (by several tasks each):
    // exactly m - 1 removals win and one authenticator is left. m = 2 is the
    // contract's case of the last two.
    let m = (2 + round % 3).min(tasks);
    let store = &stores[round % stores.len()];
    let (account, first, _) = new_2fa_account(store, 1).await;
    let mut ids = vec![first.id.clone()];
    for j in 1..m {
        let extra = authenticator(&account.id, "extra", now() + j as u64);
        ok(
            store.add_authenticator(&extra, ROOMY).await,
            "add_authenticator",
        );
        ids.push(extra.id);
    }
    let results = race(stores, tasks, |i, s| {
        let user = account.id.clone();
        let id = ids[i % m].clone();
        async move { s.remove_authenticator(&user, &id).await }
    })
    .await;
    let results: Vec<RemoveOutcome> = results
        .into_iter()
        .map(|r| ok(r, "remove_authenticator race"))
        .collect();
    let removed = count(&results, |r| *r == RemoveOutcome::Removed);
    assert_eq!(
        removed,
        m - 1,
        "remove_authenticator race (round {round}): {removed} concurrent removals of an \
         account's {m} authenticators returned Removed; exactly {} must (one is always left): \
         {results:?}",
        m - 1
    );
    let left = ok(
        checker(stores, round).authenticators(&account.id).await,
        "authenticators",
    );
    assert_eq!(
        left.len(),
        1,
        "remove_authenticator race (round {round}): exactly one authenticator must remain, \
         found {left:?}"
    );
}

async fn race_add_authenticators<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let (account, first, _) = new_2fa_account(&stores[round % stores.len()], 1).await;
    let t = now() + 1;
    let auths: Vec<AuthenticatorRecord> = (0..tasks)
        .map(|i| authenticator(&account.id, &format!("extra {i}"), t))
        .collect();
    // The cap is exactly reached: every add fits.
    let cap = tasks as u32 + 1;
    let results = race(stores, tasks, |i, s| {
        let auth = auths[i].clone();
        async move { s.add_authenticator(&auth, cap).await }
    })
    .await;
    for r in results {
        ok(
            r,
            "add_authenticator race (adds that reach max_authenticators exactly, none beyond)",
        );
    }
    let listed = ok(
        checker(stores, round).authenticators(&account.id).await,
        "authenticators",
    );
    assert_eq!(
        listed.len(),
        tasks + 1,
        "add_authenticator race (round {round}): {tasks} authenticators added concurrently to \
         one, {} listed (a lost update)",
        listed.len()
    );
    assert!(
        listed
            .first()
            .is_some_and(|a| same_authenticator(a, &first)),
        "add_authenticator race (round {round}): the oldest authenticator must come first"
    );
    for auth in &auths {
        assert!(
            listed.iter().any(|a| same_authenticator(a, auth)),
            "add_authenticator race (round {round}): an added authenticator is missing or changed"
        );
    }
}

async fn race_disable_vs_add<A: AccountStore + Clone>(stores: &[A], tasks: usize, round: usize) {
    let (account, _, _) = new_2fa_account(&stores[round % stores.len()], 2).await;
    let t = now();
    let auths: Vec<AuthenticatorRecord> = (0..tasks)
        .map(|i| authenticator(&account.id, &format!("extra {i}"), t + 1))
        .collect();
    // The disabling task goes in the middle of the pack.
    let disabler = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let auth = auths[i].clone();
        async move {
            if i == disabler {
                s.disable_two_factor(&auth.user_id).await.map(Some)
            } else {
                s.add_authenticator(&auth, ROOMY).await.map(|()| None)
            }
        }
    })
    .await;
    for (i, r) in results.iter().enumerate() {
        if i == disabler {
            assert!(
                matches!(r, Ok(Some(true))),
                "disable_two_factor race (round {round}): must return Ok(true), got {r:?}"
            );
        } else {
            assert!(
                matches!(r, Ok(None) | Err(Error::TwoFactorNotEnabled)),
                "add_authenticator race (round {round}): must succeed or fail with \
                 TwoFactorNotEnabled, got {r:?}"
            );
        }
    }
    let check = checker(stores, round);
    assert!(
        !account_of(check, &account.id, "account")
            .await
            .two_factor_enabled,
        "disable_two_factor race (round {round}): 2FA is on"
    );
    let left = ok(check.authenticators(&account.id).await, "authenticators");
    assert!(
        left.is_empty(),
        "add_authenticator/disable_two_factor race (round {round}): an authenticator was added \
         to an account with 2FA off: {left:?}"
    );
    assert_eq!(
        ok(
            check.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        0,
        "disable_two_factor race (round {round}): backup codes are left"
    );
}

async fn race_replace_vs_consume<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let (account, _, old) = new_2fa_account(&stores[round % stores.len()], tasks).await;
    let fresh = hashes(4);
    let key = key_id();
    let replacer = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let id = account.id.clone();
        let code = old[i];
        let fresh = fresh.clone();
        async move {
            if i == replacer {
                s.replace_backup_codes(&id, &fresh, key)
                    .await
                    .map(|()| true)
            } else {
                s.consume_backup_code(&id, &code).await
            }
        }
    })
    .await;
    for r in results {
        ok(r, "replace_backup_codes/consume_backup_code race");
    }
    let check = checker(stores, round);
    assert_eq!(
        ok(
            check.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        4,
        "replace_backup_codes race (round {round}): exactly the new set must remain after \
         concurrent consumption of old codes"
    );
    assert_eq!(
        account_of(check, &account.id, "account")
            .await
            .backup_codes_key_id,
        Some(key),
        "replace_backup_codes race (round {round}): backup_codes_key_id is not the new set's"
    );
    for code in &old {
        assert!(
            !ok(
                check.consume_backup_code(&account.id, code).await,
                "consume_backup_code"
            ),
            "replace_backup_codes race (round {round}): an old code can still be consumed"
        );
    }
    for code in &fresh {
        assert!(
            ok(
                check.consume_backup_code(&account.id, code).await,
                "consume_backup_code"
            ),
            "replace_backup_codes race (round {round}): a new code cannot be consumed"
        );
    }
}

async fn race_password_vs_enable<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    // One task turns 2FA on while the others change the password from the same epoch:
    // the enable and exactly one change land, and neither undoes the other.
    let account = new_account(&stores[round % stores.len()]).await;
    let e = account.password_epoch;
    let auth = authenticator(&account.id, "phone", now());
    let codes = hashes(3);
    let key = key_id();
    let passwords: Vec<(PasswordHash, u64)> = (0..tasks)
        .map(|i| (password_hash(), e + 1 + i as u64))
        .collect();
    let enabler = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let auth = auth.clone();
        let codes = codes.clone();
        let (hash, epoch) = passwords[i].clone();
        async move {
            if i == enabler {
                s.enable_two_factor(&auth, &codes, key)
                    .await
                    .map(|()| false)
            } else {
                s.set_password(&auth.user_id, &hash, e, epoch).await
            }
        }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "set_password/enable_two_factor race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners,
        1,
        "set_password race (round {round}): {winners} of {} concurrent password changes from \
         one expected_epoch (racing enable_two_factor) returned true; exactly one must",
        tasks - 1
    );
    let check = checker(stores, round);
    let got = account_of(check, &account.id, "account").await;
    assert!(
        got.two_factor_enabled,
        "set_password/enable_two_factor race (round {round}): the enable was lost"
    );
    assert_eq!(
        got.backup_codes_key_id,
        Some(key),
        "set_password/enable_two_factor race (round {round}): backup_codes_key_id was lost"
    );
    if let Some(w) = results.iter().position(|r| *r) {
        let (hash, epoch) = &passwords[w];
        assert!(
            got.password_hash.as_str() == hash.as_str() && got.password_epoch == *epoch,
            "set_password race (round {round}): the stored password hash and epoch are not \
             the winning call's (epoch {}, the winner wrote {epoch})",
            got.password_epoch
        );
    }
    assert_same_authenticators(
        &ok(check.authenticators(&account.id).await, "authenticators"),
        &[&auth],
        "set_password/enable_two_factor race",
    );
    assert_eq!(
        ok(
            check.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        3,
        "set_password/enable_two_factor race (round {round}): backup codes lost"
    );
}

async fn race_set_password<A: AccountStore + Clone>(stores: &[A], tasks: usize, round: usize) {
    let account = new_account(&stores[round % stores.len()]).await;
    let e = account.password_epoch;
    let passwords: Vec<PasswordHash> = (0..tasks).map(|_| password_hash()).collect();
    let results = race(stores, tasks, |i, s| {
        let id = account.id.clone();
        let hash = passwords[i].clone();
        async move { s.set_password(&id, &hash, e, e + 1).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "set_password race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "set_password race (round {round}): {winners} of {tasks} concurrent password changes \
         from the same expected_epoch returned true; exactly one must (a compare-and-set on the \
         epoch)"
    );
    let Some(w) = results.iter().position(|r| *r) else {
        return;
    };
    let got = account_of(checker(stores, round), &account.id, "account").await;
    assert!(
        got.password_hash.as_str() == passwords[w].as_str() && got.password_epoch == e + 1,
        "set_password race (round {round}): the stored password hash is not the winner's \
         (epoch {}, want {})",
        got.password_epoch,
        e + 1
    );
}

async fn race_password_change_vs_rehash<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    // One task changes the password (epoch e to e + 1), the others are logins that read
    // the account before and rehash its password (epoch e to e).
    let account = new_account(&stores[round % stores.len()]).await;
    let e = account.password_epoch;
    let changed = password_hash();
    let rehashes: Vec<PasswordHash> = (0..tasks).map(|_| password_hash()).collect();
    let changer = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let id = account.id.clone();
        let (hash, new) = if i == changer {
            (changed.clone(), e + 1)
        } else {
            (rehashes[i].clone(), e)
        };
        async move { s.set_password(&id, &hash, e, new).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "set_password race (a change against rehashes)"))
        .collect();
    assert!(
        results[changer],
        "set_password race (round {round}): a password change (expected_epoch {e}, new_epoch \
         {}) racing rehashes returned false; a rehash keeps the epoch, so the change must be \
         written",
        e + 1
    );
    let got = account_of(checker(stores, round), &account.id, "account").await;
    assert!(
        got.password_epoch == e + 1 && got.password_hash.as_str() == changed.as_str(),
        "set_password race (round {round}): after a password change raced rehashes, the \
         account has epoch {} (want {}) and {} hash; a rehash of a login must never undo a \
         password change",
        got.password_epoch,
        e + 1,
        if got.password_hash.as_str() == changed.as_str() {
            "the new"
        } else {
            "an old"
        }
    );
}

async fn race_authenticator_cap<A: AccountStore + Clone>(stores: &[A], tasks: usize, round: usize) {
    // One authenticator, a cap of three: of any number of concurrent adds, two fit.
    const CAP: u32 = 3;
    let (account, first, _) = new_2fa_account(&stores[round % stores.len()], 1).await;
    let t = now() + 1;
    let auths: Vec<AuthenticatorRecord> = (0..tasks)
        .map(|i| authenticator(&account.id, &format!("extra {i}"), t))
        .collect();
    let results = race(stores, tasks, |i, s| {
        let auth = auths[i].clone();
        async move { s.add_authenticator(&auth, CAP).await }
    })
    .await;
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(Error::TooManyAuthenticators)),
            "add_authenticator race (round {round}): an add beyond max_authenticators must fail \
             with TooManyAuthenticators, got {r:?}"
        );
    }
    let added = count(&results, |r| r.is_ok());
    let want = (CAP as usize - 1).min(tasks);
    assert_eq!(
        added, want,
        "add_authenticator race (round {round}): {added} of {tasks} concurrent adds to an \
         account with 1 authenticator and max_authenticators = {CAP} succeeded; exactly {want} \
         must (N concurrent adds never pass the cap)"
    );
    let listed = ok(
        checker(stores, round).authenticators(&account.id).await,
        "authenticators",
    );
    let mut expected = vec![&first];
    expected.extend(
        results
            .iter()
            .zip(&auths)
            .filter(|(r, _)| r.is_ok())
            .map(|(_, a)| a),
    );
    assert!(
        listed.len() == expected.len()
            && expected
                .iter()
                .all(|w| listed.iter().any(|a| same_authenticator(a, w))),
        "add_authenticator race (round {round}): the account must have exactly the first \
         authenticator and the {want} that were added (max_authenticators = {CAP}), found \
         {listed:?}"
    );
}

// ---------------------------------------------------------------------------------------
// EphemeralStore races
// ---------------------------------------------------------------------------------------

async fn race_advance_same_step<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let id = authenticator_id();
    let keep = now() + TTL;
    let step = now() / 30;
    // Odd rounds race an update of an existing mark, even rounds the first insert.
    if round % 2 == 1 {
        assert!(ok(
            stores[0].advance_last_step(&id, step - 1, keep).await,
            "advance_last_step"
        ));
    }
    let results = race(stores, tasks, |_, s| {
        let id = id.clone();
        async move { s.advance_last_step(&id, step, keep).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "advance_last_step race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners,
        1,
        "advance_last_step race (round {round}, {}): {winners} of {tasks} concurrent calls with \
         the same step returned true; exactly one must (a replayed TOTP code)",
        if round % 2 == 1 {
            "existing mark"
        } else {
            "fresh authenticator"
        }
    );
    assert!(
        !ok(
            checker(stores, round)
                .advance_last_step(&id, step, keep)
                .await,
            "advance_last_step"
        ),
        "advance_last_step race (round {round}): the step can be recorded again"
    );
}

async fn race_advance_mixed_steps<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let id = authenticator_id();
    let keep = now() + TTL;
    let base = now() / 30;
    let top = base + tasks as u64 - 1;
    let results = race(stores, tasks, |i, s| {
        let id = id.clone();
        // Task order is not step order.
        let step = base + ((i * 7 + round) % tasks) as u64;
        async move { (step, s.advance_last_step(&id, step, keep).await) }
    })
    .await;
    let results: Vec<(u64, bool)> = results
        .into_iter()
        .map(|(step, r)| (step, ok(r, "advance_last_step race")))
        .collect();
    // Whatever the order, the greatest step is greater than every recorded one.
    let top_won = results.iter().any(|&(step, won)| step == top && won);
    assert!(
        top_won,
        "advance_last_step race (round {round}): the greatest step was refused; the recorded \
         step went back or a compare-and-set was lost: {results:?}"
    );
    let check = checker(stores, round);
    for step in [top, base] {
        assert!(
            !ok(
                check.advance_last_step(&id, step, keep).await,
                "advance_last_step"
            ),
            "advance_last_step race (round {round}): step {step} accepted after step {top} was \
             recorded (the mark went back)"
        );
    }
}

async fn race_take_pending_login<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let token = hash();
    let login = pending(&user_id(), 1, t + TTL);
    ok(
        stores[round % stores.len()]
            .create_pending_login(&token, &login)
            .await,
        "create_pending_login",
    );
    let results = race(stores, tasks, |_, s| async move {
        s.take_pending_login(&token, t).await
    })
    .await;
    let results: Vec<Option<PendingLogin>> = results
        .into_iter()
        .map(|r| ok(r, "take_pending_login race"))
        .collect();
    let winners = count(&results, |r| r.is_some());
    assert_eq!(
        winners, 1,
        "take_pending_login race (round {round}): {winners} of {tasks} concurrent takes got the \
         pending login; exactly one must"
    );
    for r in results.into_iter().flatten() {
        assert_eq!(r, login, "take_pending_login race: the taken login differs");
    }
}

async fn race_take_ceremony<E: EphemeralStore + Clone>(stores: &[E], tasks: usize, round: usize) {
    let t = now();
    let key = hex_id();
    let c = ceremony_record(Some(hash()), t + TTL);
    ok(
        stores[round % stores.len()].put_ceremony(&key, &c).await,
        "put_ceremony",
    );
    let results = race(stores, tasks, |_, s| {
        let key = key.clone();
        async move { s.take_ceremony(&key, t).await }
    })
    .await;
    let results: Vec<Option<CeremonyRecord>> = results
        .into_iter()
        .map(|r| ok(r, "take_ceremony race"))
        .collect();
    let winners = count(&results, |r| r.is_some());
    assert_eq!(
        winners, 1,
        "take_ceremony race (round {round}): {winners} of {tasks} concurrent takes got the \
         ceremony; exactly one must (one WebAuthn assertion must not finish two logins)"
    );
    for r in results.into_iter().flatten() {
        assert_eq!(r, c, "take_ceremony race: the taken ceremony differs");
    }
}

async fn race_update_authenticator_secret<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let first = &stores[round % stores.len()];
    let account = new_account(first).await;
    let id = account.id.clone();
    let mut key = authenticator(&id, "key", t);
    key.sealed_secret = sealed_record(600);
    ok(
        first.enable_two_factor(&key, &hashes(1), key_id()).await,
        "enable_two_factor",
    );
    let news: Vec<SealedSecret> = (0..tasks).map(|_| sealed_record(600)).collect();
    let results = race(stores, tasks, |i, s| {
        let (id, aid) = (id.clone(), key.id.clone());
        let (expected, new) = (key.sealed_secret.clone(), news[i].clone());
        async move {
            s.update_authenticator_secret(&id, &aid, &expected, &new)
                .await
        }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "update_authenticator_secret race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "update_authenticator_secret race (round {round}): {winners} of {tasks} concurrent \
         compare-and-sets from one expected secret returned true; exactly one must"
    );
    let winner = results.iter().position(|r| *r).unwrap_or_default();
    let stored = ok(
        checker(stores, round).authenticators(&id).await,
        "authenticators",
    );
    assert!(
        stored.len() == 1 && stored[0].sealed_secret == news[winner],
        "update_authenticator_secret race (round {round}): the stored secret is not the \
         winner's"
    );
}

async fn race_advance_distinct_ids<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let keep = now() + TTL;
    let step = now() / 30;
    let ids: Vec<AuthenticatorId> = (0..tasks).map(|_| authenticator_id()).collect();
    let results = race(stores, tasks, |i, s| {
        let id = ids[i].clone();
        async move { s.advance_last_step(&id, step, keep).await }
    })
    .await;
    let recorded = count(&results, |r| matches!(r, Ok(true)));
    assert_eq!(
        recorded, tasks,
        "advance_last_step race (round {round}): the same step on {tasks} distinct \
         authenticators concurrently, only {recorded} recorded; marks are per authenticator: \
         {results:?}"
    );
}

async fn race_take_vs_attempt<E: EphemeralStore + Clone>(stores: &[E], tasks: usize, round: usize) {
    // Even tasks take, odd tasks count an attempt; max_attempts is never reached.
    const MAX: u32 = 1000;
    let t = now();
    let token = hash();
    let login = pending(&user_id(), 0, t + TTL);
    ok(
        stores[round % stores.len()]
            .create_pending_login(&token, &login)
            .await,
        "create_pending_login",
    );
    let results = race(stores, tasks, |i, s| async move {
        if i % 2 == 0 {
            s.take_pending_login(&token, t).await.map(|p| (true, p))
        } else {
            s.begin_login_attempt(&token, MAX, t)
                .await
                .map(|p| (false, p))
        }
    })
    .await;
    let mut taken = Vec::new();
    let mut counted = Vec::new();
    for r in results {
        match ok(r, "take_pending_login/begin_login_attempt race") {
            (true, Some(p)) => taken.push(p),
            (false, Some(p)) => counted.push(p.attempts),
            (_, None) => {}
        }
    }
    assert_eq!(
        taken.len(),
        1,
        "take_pending_login race (round {round}): {} concurrent takes (racing \
         begin_login_attempt) got the pending login; exactly one must",
        taken.len()
    );
    counted.sort_unstable();
    let want: Vec<u32> = (1..=counted.len() as u32).collect();
    assert_eq!(
        counted, want,
        "begin_login_attempt race (round {round}): concurrent attempts must get distinct, \
         consecutive counts"
    );
    if let Some(p) = taken.first() {
        assert_eq!(
            p.attempts as usize,
            counted.len(),
            "take_pending_login/begin_login_attempt race (round {round}): the taken login \
             counts {} attempts but {} attempts got Some; an attempt succeeded on a taken login \
             or was lost",
            p.attempts,
            counted.len()
        );
    }
    let check = checker(stores, round);
    assert_eq!(
        ok(
            check.begin_login_attempt(&token, MAX, t).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt race (round {round}): a racing attempt brought a taken login back"
    );
    assert_eq!(
        ok(
            check.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "take_pending_login race (round {round}): a pending login was taken, yet is there again"
    );
}

async fn race_begin_login_attempt<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    const MAX: u32 = 5;
    let t = now();
    // k attempts left, 0..=MAX, always fewer than the racing tasks.
    let k = (round % (tasks.min(MAX as usize + 1))) as u32;
    let token = hash();
    let user = user_id();
    ok(
        stores[round % stores.len()]
            .create_pending_login(&token, &pending(&user, MAX - k, t + TTL))
            .await,
        "create_pending_login",
    );
    let results = race(stores, tasks, |_, s| async move {
        s.begin_login_attempt(&token, MAX, t).await
    })
    .await;
    let got: Vec<PendingLogin> = results
        .into_iter()
        .filter_map(|r| ok(r, "begin_login_attempt race"))
        .collect();
    assert_eq!(
        got.len(),
        k as usize,
        "begin_login_attempt race (round {round}): {} of {tasks} concurrent attempts on a \
         pending login with {k} attempts left got Some; exactly {k} must",
        got.len()
    );
    let counts: BTreeSet<u32> = got.iter().map(|p| p.attempts).collect();
    let want: BTreeSet<u32> = (MAX - k + 1..=MAX).collect();
    assert_eq!(
        counts, want,
        "begin_login_attempt race (round {round}): the attempt counts must be distinct and \
         consecutive"
    );
    for p in &got {
        assert!(
            p.user_id == user && p.expires_at == t + TTL,
            "begin_login_attempt race: returned a different login: {p:?}"
        );
    }
    assert_eq!(
        ok(
            checker(stores, round).take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "begin_login_attempt race (round {round}): after attempts beyond max_attempts the \
         pending login must be burnt"
    );
}

async fn race_take_enrollment<E: EphemeralStore + Clone>(stores: &[E], tasks: usize, round: usize) {
    let t = now();
    let user = user_id();
    let enrollment = enrollment_record(round.is_multiple_of(2), t + TTL);
    ok(
        stores[round % stores.len()]
            .put_enrollment(&user, &enrollment)
            .await,
        "put_enrollment",
    );
    let results = race(stores, tasks, |_, s| {
        let user = user.clone();
        let id = enrollment.id.clone();
        async move { s.take_enrollment(&user, &id, t).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "take_enrollment race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "take_enrollment race (round {round}): {winners} of {tasks} concurrent takes returned \
         true; exactly one must"
    );
    assert!(
        ok(
            checker(stores, round).enrollment(&user, t).await,
            "enrollment"
        )
        .is_none(),
        "take_enrollment race (round {round}): the enrollment is still there"
    );
}

async fn race_take_enrollment_vs_put<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    // The user restarts the setup while confirmations of the old one race: taking the
    // old setup must never delete the new one.
    let t = now();
    let user = user_id();
    let old = enrollment_record(false, t + TTL);
    let new = enrollment_record(false, t + TTL);
    ok(
        stores[round % stores.len()]
            .put_enrollment(&user, &old)
            .await,
        "put_enrollment",
    );
    let putter = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let user = user.clone();
        let old_id = old.id.clone();
        let new = new.clone();
        async move {
            if i == putter {
                s.put_enrollment(&user, &new).await.map(|()| false)
            } else {
                s.take_enrollment(&user, &old_id, t).await
            }
        }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "take_enrollment/put_enrollment race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert!(
        winners <= 1,
        "take_enrollment race (round {round}): {winners} concurrent takes of one enrollment \
         returned true; at most one may"
    );
    assert_same_enrollment(
        ok(
            checker(stores, round).enrollment(&user, t).await,
            "enrollment",
        ),
        &new,
        &format!(
            "take_enrollment/put_enrollment race (round {round}): a take of the old setup \
             removed the new one"
        ),
    );
}

async fn race_update_throttle<E: EphemeralStore + Clone>(stores: &[E], tasks: usize, round: usize) {
    let keep = now() + TTL;
    let key = throttle_key();
    // Odd rounds race from a stored state, even rounds from the default one.
    let expected = if round % 2 == 1 {
        let s = ThrottleState {
            count: 3,
            until: now() + 30,
        };
        assert!(ok(
            stores[0]
                .update_throttle(&key, ThrottleState::default(), s, keep, now())
                .await,
            "update_throttle"
        ));
        s
    } else {
        ThrottleState::default()
    };
    let until = now() + 60;
    let results = race(stores, tasks, |i, s| {
        let key = key.clone();
        let new = ThrottleState {
            count: 10 + i as u32,
            until,
        };
        async move { s.update_throttle(&key, expected, new, keep, now()).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "update_throttle race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "update_throttle race (round {round}): {winners} of {tasks} concurrent compare-and-sets \
         from the same expected state returned true; exactly one must"
    );
    if let Some(w) = results.iter().position(|r| *r) {
        assert_eq!(
            ok(
                checker(stores, round).throttle(&key, now()).await,
                "throttle"
            ),
            ThrottleState {
                count: 10 + w as u32,
                until
            },
            "update_throttle race (round {round}): the stored state is not the winner's"
        );
    }
}

async fn race_throttle_counter<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let keep = now() + TTL;
    let key = throttle_key();
    let until = now() + 60;
    let results = race(stores, tasks, |_, s| {
        let key = key.clone();
        async move {
            // Every task adds one, retrying on a lost compare-and-set, as the flows do.
            for _ in 0..10_000 {
                let current = s.throttle(&key, now()).await?;
                let next = ThrottleState {
                    count: current.count + 1,
                    until,
                };
                if s.update_throttle(&key, current, next, keep, now()).await? {
                    return Ok(true);
                }
                tokio::task::yield_now().await;
            }
            Ok(false)
        }
    })
    .await;
    for r in results {
        assert!(
            ok(r, "throttle/update_throttle counter race"),
            "update_throttle counter race (round {round}): 10000 compare-and-sets in a row \
             failed; the store makes no progress"
        );
    }
    let got = ok(
        checker(stores, round).throttle(&key, now()).await,
        "throttle",
    );
    assert_eq!(
        got.count, tasks as u32,
        "update_throttle counter race (round {round}): {tasks} tasks each added one with \
         compare-and-set; increments were lost"
    );
}

async fn race_update_expired_throttle<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let zero = ThrottleState::default();
    let key = throttle_key();
    let old = ThrottleState {
        count: 7,
        until: t + 30,
    };
    // Expired exactly at `t` (keep_until <= now).
    assert!(ok(
        stores[0].update_throttle(&key, zero, old, t, t - 1).await,
        "update_throttle"
    ));
    let until = t + 60;
    let results = race(stores, tasks, |i, s| {
        let key = key.clone();
        let new = ThrottleState {
            count: 100 + i as u32,
            until,
        };
        async move { s.update_throttle(&key, zero, new, t + TTL, t).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "update_throttle race on an expired state"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "update_throttle race on an expired state (round {round}): {winners} of {tasks} \
         concurrent compare-and-sets from the default state returned true; exactly one must"
    );
    if let Some(w) = results.iter().position(|r| *r) {
        assert_eq!(
            ok(checker(stores, round).throttle(&key, t).await, "throttle"),
            ThrottleState {
                count: 100 + w as u32,
                until
            },
            "update_throttle race on an expired state (round {round}): the stored state is \
             not the winner's"
        );
    }
}

async fn race_purge_vs_live_login<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let user = user_id();
    let login = hash();
    let s0 = &stores[0];
    ok(
        s0.create_pending_login(&login, &pending(&user, 0, t + TTL))
            .await,
        "create_pending_login",
    );
    // Something for the purges to do.
    ok(
        s0.create_pending_login(&hash(), &pending(&user, 0, t))
            .await,
        "create_pending_login",
    );
    ok(
        s0.create_session(&hash(), &session_record(&user, t - 10, t))
            .await,
        "create_session",
    );
    let key = throttle_key();
    let live = ThrottleState {
        count: 2,
        until: t + 30,
    };
    assert!(ok(
        s0.update_throttle(&key, ThrottleState::default(), live, t + TTL, t)
            .await,
        "update_throttle"
    ));
    // Two tasks purge; the others write a live login's records meanwhile.
    let made: Vec<(KeyedHash, KeyedHash)> = (0..tasks).map(|_| (hash(), hash())).collect();
    let results = race(stores, tasks, |i, s| {
        let user = user.clone();
        let (session, device) = made[i];
        async move {
            if i < 2 {
                s.purge_expired(t).await.map(|_| ())
            } else {
                s.create_session(&session, &session_record(&user, t, t + TTL))
                    .await?;
                s.create_device(&device, &device_record(&user, t, t + TTL))
                    .await
            }
        }
    })
    .await;
    for r in results {
        ok(r, "purge_expired race");
    }
    let c = checker(stores, round);
    let writers = tasks.saturating_sub(2);
    for (session, device) in made.iter().skip(2) {
        assert!(
            ok(c.session(session, t).await, "session").is_some(),
            "purge_expired race (round {round}): a live session written during the purge \
             is gone"
        );
        assert!(
            ok(c.device(device, t).await, "device").is_some(),
            "purge_expired race (round {round}): a live device written during the purge is \
             gone"
        );
    }
    assert_eq!(
        ok(c.sessions(&user, t).await, "sessions").len(),
        writers,
        "purge_expired race (round {round}): the account's session list lost live sessions"
    );
    assert_eq!(
        ok(c.devices(&user, t).await, "devices").len(),
        writers,
        "purge_expired race (round {round}): the account's device list lost live devices"
    );
    assert_eq!(
        ok(c.throttle(&key, t).await, "throttle"),
        live,
        "purge_expired race (round {round}): a live throttle was purged"
    );
    assert!(
        ok(c.take_pending_login(&login, t).await, "take_pending_login").is_some(),
        "purge_expired race (round {round}): a live pending login was purged"
    );
}

async fn race_create_devices<E: EphemeralStore + Clone>(stores: &[E], tasks: usize, round: usize) {
    let t = now();
    let user = user_id();
    let devices: Vec<(KeyedHash, DeviceRecord)> = (0..tasks)
        .map(|_| (hash(), device_record(&user, t, t + TTL)))
        .collect();
    let results = race(stores, tasks, |i, s| {
        let (token, device) = devices[i].clone();
        async move { s.create_device(&token, &device).await }
    })
    .await;
    for r in results {
        ok(r, "create_device race");
    }
    let check = checker(stores, round);
    let listed = ok(check.devices(&user, t).await, "devices");
    assert_eq!(
        listed.len(),
        tasks,
        "create_device race (round {round}): {tasks} devices created concurrently for one \
         account, {} listed (a lost update)",
        listed.len()
    );
    for (token, device) in &devices {
        assert_eq!(
            ok(check.device(token, t).await, "device").as_ref(),
            Some(device),
            "create_device race (round {round}): a device is not found by its token"
        );
    }
    assert_eq!(
        ok(check.revoke_all_devices(&user).await, "revoke_all_devices") as usize,
        tasks,
        "create_device race (round {round}): revoke_all_devices must count every device"
    );
}

async fn race_delete_sessions<E: EphemeralStore + Clone>(stores: &[E], tasks: usize, round: usize) {
    // k sessions, then "log out everywhere else" from several handles at once.
    let k = tasks.max(2);
    let t = now();
    let user = user_id();
    let sessions: Vec<(KeyedHash, SessionRecord)> = (0..k)
        .map(|i| (hash(), session_record(&user, t - (k - i) as u64, t + TTL)))
        .collect();
    let store = &stores[round % stores.len()];
    for (token, session) in &sessions {
        ok(store.create_session(token, session).await, "create_session");
    }
    let keep = round % k;
    let keep_id = sessions[keep].1.id.clone();
    let results = race(stores, tasks, |_, s| {
        let user = user.clone();
        let keep_id = keep_id.clone();
        async move { s.delete_sessions(&user, Some(&keep_id)).await }
    })
    .await;
    let counts: Vec<u32> = results
        .into_iter()
        .map(|r| ok(r, "delete_sessions race"))
        .collect();
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    assert_eq!(
        total,
        k as u64 - 1,
        "delete_sessions race (round {round}): {tasks} concurrent calls deleting {} of {k} \
         sessions returned counts adding up to {total}; each deleted session must be counted \
         once: {counts:?}",
        k - 1
    );
    let check = checker(stores, round);
    assert_eq!(
        ok(check.sessions(&user, t).await, "sessions"),
        vec![sessions[keep].1.clone()],
        "delete_sessions race (round {round}): exactly the kept session must be left"
    );
    for (i, (token, session)) in sessions.iter().enumerate() {
        let want = (i == keep).then(|| session.clone());
        assert_eq!(
            ok(check.session(token, t).await, "session"),
            want,
            "delete_sessions race (round {round}): {}",
            if i == keep {
                "the kept session is not found by its token"
            } else {
                "a deleted session is still found by its token"
            }
        );
    }
}

// ---------------------------------------------------------------------------------------
// Unit of work
// ---------------------------------------------------------------------------------------

/// A fresh 2FA account with a pending login (one attempt made of `max`), and its
/// two throttles set to a known non-zero state.
async fn step_fixture<S: Store>(
    store: &S,
) -> (AccountRecord, AuthenticatorRecord, KeyedHash, [String; 2]) {
    let (account, auth, _) = new_2fa_account(store, 2).await;
    let token = hash();
    ok(
        store
            .create_pending_login(&token, &pending(&account.id, 0, now() + TTL))
            .await,
        "create_pending_login",
    );
    let keys = factor_throttle_keys(&account.id);
    let t = now();
    for (i, key) in keys.iter().enumerate() {
        let state = ThrottleState {
            count: 1 + i as u32,
            until: t - 1,
        };
        assert!(
            ok(
                store
                    .update_throttle(key, ThrottleState::default(), state, t + TTL, t)
                    .await,
                "update_throttle"
            ),
            "update_throttle from the zero state"
        );
    }
    (account, auth, token, keys)
}

fn counted(expected: ThrottleState, t: u64) -> ThrottleState {
    ThrottleState {
        count: expected.count + 1,
        until: t + 60,
    }
}

async fn factor_step_read<S: Store>(store: &S) {
    let (account, auth, token, _) = step_fixture(store).await;
    let t = now();
    let other = hash();
    let Some(view) = ok(
        store.read_factor_step(&[other, token], 3, t).await,
        "read_factor_step",
    ) else {
        panic!("read_factor_step: the pending login must be found under the second hash");
    };
    assert!(
        view.token == token,
        "read_factor_step: the hash it was found under"
    );
    assert_eq!(
        view.pending.attempts, 1,
        "read_factor_step returns the pending login with this attempt counted"
    );
    assert_eq!(view.pending.user_id, account.id);
    let Some(got) = view.account.as_ref() else {
        panic!("read_factor_step: the account must be returned");
    };
    let Some(stored) = ok(store.account(&account.id).await, "account") else {
        panic!("read_factor_step: the account exists");
    };
    assert_same_account(got, &stored, "read_factor_step");
    assert_same_authenticators(&view.authenticators, &[&auth], "read_factor_step");
    assert_eq!(view.throttles[0].count, 1, "read_factor_step: the lockout");
    assert_eq!(view.throttles[1].count, 2, "read_factor_step: the budget");
    // Each step, a read and the commit of a wrong code, counts one attempt (in the
    // read or in the commit: the store's choice); the third uses the login up and
    // burns it.
    let parts = commit_parts(&account.id, &auth.id, 0);
    let mut view = view;
    for n in 1..=3 {
        if n > 1 {
            let Some(v) = ok(
                store.read_factor_step(&[token], 3, t).await,
                "read_factor_step",
            ) else {
                panic!("read_factor_step: attempt {n} of 3 must find the pending login");
            };
            view = v;
        }
        assert_eq!(
            view.pending.attempts, n,
            "read_factor_step: attempt {n} with the attempts before it counted"
        );
        let c = FactorCommit {
            max_attempts: 3,
            ..commit(&token, &account.id, &[], &[], &parts, n == 3)
        };
        assert_eq!(
            ok(store.commit_factor_step(&c).await, "commit_factor_step"),
            FactorCommitted::NotSpent,
            "commit_factor_step of a wrong code, attempt {n} of 3"
        );
    }
    assert!(
        ok(
            store.read_factor_step(&[token], 3, t).await,
            "read_factor_step"
        )
        .is_none(),
        "read_factor_step: a pending login past its attempts must be burnt"
    );
    assert!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        )
        .is_none(),
        "read_factor_step: the burnt pending login is gone"
    );
    assert!(
        ok(
            store.read_factor_step(&[hash()], 3, t).await,
            "read_factor_step"
        )
        .is_none(),
        "read_factor_step: an unknown token"
    );
}

/// The writes of a commit for a step of `auth`.
struct CommitParts {
    marks: Vec<StepMark>,
    session_hash: KeyedHash,
    session: SessionRecord,
    device_hash: KeyedHash,
    device: DeviceRecord,
    log: Vec<SecurityEvent>,
}

fn commit_parts(user: &UserId, auth: &AuthenticatorId, step: u64) -> CommitParts {
    let t = now();
    CommitParts {
        marks: vec![StepMark {
            authenticator: auth.clone(),
            step,
            keep_until: t + TTL,
        }],
        session_hash: hash(),
        session: session_record(user, t, t + TTL),
        device_hash: hash(),
        device: device_record(user, t, t + TTL),
        log: vec![SecurityEvent::new(
            t,
            crate::security_log::SecurityEventKind::Login,
        )],
    }
}

fn throttle_writes(
    keys: &[String; 2],
    expected: [ThrottleState; 2],
    t: u64,
) -> [ThrottleWrite<'_>; 2] {
    [
        ThrottleWrite {
            key: &keys[0],
            expected: expected[0],
            counted: (counted(expected[0], t), t + TTL),
            on_success: (ThrottleState::default(), 0),
        },
        ThrottleWrite {
            key: &keys[1],
            expected: expected[1],
            counted: (counted(expected[1], t), t + TTL),
            on_success: (expected[1], t + TTL),
        },
    ]
}

fn commit<'a>(
    token: &'a KeyedHash,
    user: &'a UserId,
    spend: &'a [StepMark],
    throttles: &'a [ThrottleWrite<'a>],
    parts: &'a CommitParts,
    take_on_failure: bool,
) -> FactorCommit<'a> {
    FactorCommit {
        token,
        max_attempts: MAX_ATTEMPTS,
        user_id: user,
        spend,
        throttles,
        on_success: OutcomeWrites {
            take_pending: true,
            session: Some((&parts.session_hash, &parts.session)),
            device: Some((&parts.device_hash, &parts.device)),
            log: &parts.log,
        },
        on_failure: OutcomeWrites {
            take_pending: take_on_failure,
            log: &parts.log,
            ..OutcomeWrites::default()
        },
        log_max_entries: 100,
        log_forget_before: 0,
        now: now(),
    }
}

async fn read_throttles<S: Store>(store: &S, keys: &[String; 2]) -> [ThrottleState; 2] {
    let t = now();
    [
        ok(store.throttle(&keys[0], t).await, "throttle"),
        ok(store.throttle(&keys[1], t).await, "throttle"),
    ]
}

async fn factor_step_commit<S: Store>(store: &S) {
    let (account, auth, token, keys) = step_fixture(store).await;
    let t = now();
    let read = read_throttles(store, &keys).await;
    let step = t / 30;
    let parts = commit_parts(&account.id, &auth.id, step);
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &parts.marks, &writes, &parts, false);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::Spent,
        "commit_factor_step with a fresh step"
    );
    assert!(
        !ok(
            store.advance_last_step(&auth.id, step, t + TTL).await,
            "advance_last_step"
        ),
        "commit_factor_step: the spent step's replay mark must be recorded"
    );
    assert!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        )
        .is_none(),
        "commit_factor_step: a spent step takes the pending login"
    );
    assert_eq!(
        read_throttles(store, &keys).await,
        [ThrottleState::default(), read[1]],
        "commit_factor_step: a spent step writes the throttles' success states"
    );
    assert_eq!(
        ok(store.session(&parts.session_hash, t).await, "session"),
        Some(parts.session.clone()),
        "commit_factor_step: the session"
    );
    assert_eq!(
        ok(store.device(&parts.device_hash, t).await, "device"),
        Some(parts.device.clone()),
        "commit_factor_step: the trusted device"
    );
    let log = log_of(store, &account.id, 10).await;
    assert_eq!(log.len(), 1, "commit_factor_step: the security-log entry");

    // A replay on a new pending login: counted, nothing spent, the login kept.
    let token = hash();
    ok(
        store
            .create_pending_login(&token, &pending(&account.id, 1, t + TTL))
            .await,
        "create_pending_login",
    );
    let read = read_throttles(store, &keys).await;
    let parts = commit_parts(&account.id, &auth.id, step);
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &parts.marks, &writes, &parts, false);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::NotSpent,
        "commit_factor_step with a step already used (a replay)"
    );
    assert_eq!(
        read_throttles(store, &keys).await,
        [counted(read[0], t), counted(read[1], t)],
        "commit_factor_step: a replay is counted on the throttles"
    );
    assert!(
        ok(store.session(&parts.session_hash, t).await, "session").is_none(),
        "commit_factor_step: a replay writes no session"
    );
    assert_eq!(
        log_of(store, &account.id, 10).await.len(),
        2,
        "the failure's log entry"
    );

    // A wrong code (nothing to spend) that uses the login up: counted, login burnt.
    let read = read_throttles(store, &keys).await;
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &[], &writes, &parts, true);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::NotSpent,
        "commit_factor_step of a wrong code"
    );
    assert_eq!(
        read_throttles(store, &keys).await,
        [counted(read[0], t), counted(read[1], t)],
        "commit_factor_step: a wrong code is counted on the throttles"
    );
    assert!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        )
        .is_none(),
        "commit_factor_step: a failure with take_pending burns the pending login"
    );
}

async fn factor_step_commit_refused<S: Store>(store: &S) {
    // A throttle that moved since the read: nothing is written.
    let (account, auth, token, keys) = step_fixture(store).await;
    let t = now();
    let read = read_throttles(store, &keys).await;
    let moved = counted(read[0], t);
    assert!(ok(
        store
            .update_throttle(&keys[0], read[0], moved, t + TTL, t)
            .await,
        "update_throttle"
    ));
    let step = t / 30;
    let parts = commit_parts(&account.id, &auth.id, step);
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &parts.marks, &writes, &parts, false);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::Conflict,
        "commit_factor_step after a throttle moved"
    );
    assert_eq!(
        read_throttles(store, &keys).await,
        [moved, read[1]],
        "commit_factor_step: a conflict writes no throttle"
    );
    assert!(
        ok(
            store.advance_last_step(&auth.id, step, t + TTL).await,
            "advance_last_step"
        ),
        "commit_factor_step: a conflict must not spend the step"
    );
    assert!(
        ok(store.session(&parts.session_hash, t).await, "session").is_none(),
        "commit_factor_step: a conflict writes no session"
    );
    assert!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        )
        .is_some(),
        "commit_factor_step: a conflict keeps the pending login"
    );

    // The pending login is gone (taken just above): nothing is spent.
    let read = read_throttles(store, &keys).await;
    let parts = commit_parts(&account.id, &auth.id, step + 1);
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &parts.marks, &writes, &parts, false);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::Expired,
        "commit_factor_step without its pending login"
    );
    assert!(
        ok(
            store.advance_last_step(&auth.id, step + 1, t + TTL).await,
            "advance_last_step"
        ),
        "commit_factor_step: without its pending login the step must not be spent"
    );
    assert!(
        ok(store.session(&parts.session_hash, t).await, "session").is_none(),
        "commit_factor_step: without its pending login no session is written"
    );
}

async fn race_commit_same_step<S: Store + Clone>(stores: &[S], tasks: usize, round: usize) {
    let (account, auth, _) = new_2fa_account(&stores[0], 0).await;
    let step = now() / 30;
    let user = account.id.clone();
    let results = race(stores, tasks, |_, s| {
        let (user, auth) = (user.clone(), auth.id.clone());
        async move {
            let token = hash();
            let t = now();
            s.create_pending_login(&token, &pending(&user, 1, t + TTL))
                .await?;
            let keys = [throttle_key(), throttle_key()];
            let parts = commit_parts(&user, &auth, step);
            let zero = ThrottleState::default();
            let writes = throttle_writes(&keys, [zero, zero], t);
            let c = commit(&token, &user, &parts.marks, &writes, &parts, false);
            s.commit_factor_step(&c).await
        }
    })
    .await;
    let results: Vec<FactorCommitted> = results
        .into_iter()
        .map(|r| ok(r, "commit_factor_step race"))
        .collect();
    let spent = count(&results, |r| *r == FactorCommitted::Spent);
    assert_eq!(
        spent, 1,
        "commit_factor_step race (round {round}): {spent} of {tasks} commits spending the same \
         step were Spent; exactly one must be (a replayed TOTP code): {results:?}"
    );
    assert_eq!(
        count(&results, |r| *r == FactorCommitted::NotSpent),
        tasks - 1,
        "commit_factor_step race (round {round}): the others are replays: {results:?}"
    );
}

async fn race_commit_same_login<S: Store + Clone>(stores: &[S], tasks: usize, round: usize) {
    let (account, _, token, keys) = step_fixture(&stores[0]).await;
    let read = read_throttles(&stores[0], &keys).await;
    let user = account.id.clone();
    let keys = Arc::new(keys);
    let results = race(stores, tasks, |_, s| {
        let (user, keys) = (user.clone(), Arc::clone(&keys));
        async move {
            let t = now();
            let parts = commit_parts(&user, &authenticator_id(), t / 30);
            let writes = throttle_writes(&keys, read, t);
            let c = commit(&token, &user, &parts.marks, &writes, &parts, false);
            let r = s.commit_factor_step(&c).await?;
            let session = s.session(&parts.session_hash, t).await?;
            Ok::<_, crate::Error>((r, session.is_some()))
        }
    })
    .await;
    let results: Vec<(FactorCommitted, bool)> = results
        .into_iter()
        .map(|r| ok(r, "commit_factor_step race"))
        .collect();
    let spent = count(&results, |r| r.0 == FactorCommitted::Spent);
    assert_eq!(
        spent, 1,
        "commit_factor_step race (round {round}): {spent} of {tasks} commits on one pending \
         login were Spent; exactly one must be (one login, one session): {results:?}"
    );
    assert_eq!(
        count(&results, |r| r.1),
        1,
        "commit_factor_step race (round {round}): exactly the winner's session exists"
    );
    assert!(
        results.iter().all(|r| r.0 != FactorCommitted::NotSpent),
        "commit_factor_step race (round {round}): a loser must write nothing: {results:?}"
    );
    assert!(
        ok(
            checker(stores, round)
                .take_pending_login(&token, now())
                .await,
            "take_pending_login"
        )
        .is_none(),
        "commit_factor_step race (round {round}): the pending login is taken"
    );
}

/// Wrong guesses racing on one pending login: however the store counts the attempt
/// (in the read or in the commit), no more guesses are answered than the login has
/// attempts.
async fn race_guesses_on_one_login<S: Store + Clone>(stores: &[S], tasks: usize, round: usize) {
    const MAX: u32 = 3;
    let (account, _, _) = new_2fa_account(&stores[0], 0).await;
    let token = hash();
    ok(
        stores[0]
            .create_pending_login(&token, &pending(&account.id, 0, now() + TTL))
            .await,
        "create_pending_login",
    );
    let user = account.id.clone();
    let results = race(stores, tasks, |_, s| {
        let user = user.clone();
        async move {
            let t = now();
            let Some(view) = s.read_factor_step(&[token], MAX, t).await? else {
                return Ok::<_, crate::Error>(None);
            };
            let parts = commit_parts(&user, &authenticator_id(), t / 30);
            let last = view.pending.attempts >= MAX;
            let c = FactorCommit {
                max_attempts: MAX,
                ..commit(&token, &user, &[], &[], &parts, last)
            };
            s.commit_factor_step(&c).await.map(Some)
        }
    })
    .await;
    let results: Vec<Option<FactorCommitted>> = results
        .into_iter()
        .map(|r| ok(r, "read_factor_step and commit_factor_step race"))
        .collect();
    let answered = count(&results, |r| *r == Some(FactorCommitted::NotSpent));
    let max = tasks.min(MAX as usize);
    assert_eq!(
        answered, max,
        "guesses on one pending login (round {round}): {answered} of {tasks} wrong guesses \
         on a login with {MAX} attempts were counted and answered; exactly {max} must be \
         (an attacker must not get more guesses by sending them at once): {results:?}"
    );
    assert!(
        results.iter().all(|r| matches!(
            r,
            None | Some(FactorCommitted::NotSpent | FactorCommitted::Expired)
        )),
        "guesses on one pending login (round {round}): the others find it gone: {results:?}"
    );
    if tasks >= MAX as usize {
        let s = checker(stores, round);
        assert!(
            ok(
                s.read_factor_step(&[token], MAX, now()).await,
                "read_factor_step"
            )
            .is_none(),
            "guesses on one pending login (round {round}): the login is burnt"
        );
        assert!(
            ok(
                s.take_pending_login(&token, now()).await,
                "take_pending_login"
            )
            .is_none(),
            "guesses on one pending login (round {round}): the burnt login is gone"
        );
    }
}
