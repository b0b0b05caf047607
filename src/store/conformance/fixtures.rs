//! The suite's shared fixtures: random ids and records, the race harness, and the
//! unit-of-work parts that both the plain checks and the races build on.

use std::future::Future;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use tokio::sync::Barrier;

use crate::clock::{Clock, SystemClock};
use crate::store::*;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// How long the suite's ephemeral records live, in seconds.
pub(super) const TTL: u64 = 600;
/// The attempt limit the unit-of-work commits pass (high enough not to matter
/// unless a check says otherwise).
pub(super) const MAX_ATTEMPTS: u32 = 5;

/// A cap on authenticators that the checks of something else never reach.
pub(super) const ROOMY: u32 = 100;

pub(super) fn now() -> u64 {
    SystemClock.now()
}

#[track_caller]
pub(super) fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected store error: {e} ({e:?})"),
    }
}

#[track_caller]
pub(super) fn non_empty<S>(stores: &[S], what: &str) {
    assert!(
        !stores.is_empty(),
        "conformance::{what}: needs at least one store handle"
    );
}

#[track_caller]
pub(super) fn check_race_setup<S>(stores: &[S], what: &str) {
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

pub(super) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::fill(&mut bytes[..]);
    bytes
}

pub(super) fn hash() -> KeyedHash {
    KeyedHash(random_bytes())
}

pub(super) fn hashes(n: usize) -> Vec<KeyedHash> {
    (0..n).map(|_| hash()).collect()
}

pub(super) fn hex_id() -> String {
    crate::token::random_hex_id()
}

pub(super) fn user_id() -> UserId {
    UserId::new(hex_id())
}

pub(super) fn authenticator_id() -> AuthenticatorId {
    AuthenticatorId::new(hex_id())
}

pub(super) fn key_id() -> u32 {
    u32::from_be_bytes(random_bytes())
}

pub(super) fn username() -> String {
    format!("conformance-{}", hex_id())
}

#[track_caller]
pub(super) fn password_hash() -> PasswordHash {
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
pub(super) fn sealed_secret() -> SealedSecret {
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
pub(super) fn sealed_record(len: usize) -> SealedSecret {
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

pub(super) fn account_record(created_at: u64) -> AccountRecord {
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

pub(super) fn authenticator(user_id: &UserId, name: &str, created_at: u64) -> AuthenticatorRecord {
    AuthenticatorRecord {
        id: authenticator_id(),
        user_id: user_id.clone(),
        name: name.to_owned(),
        sealed_secret: sealed_secret(),
        created_at,
    }
}

/// Creates a fresh account, checking that it worked.
pub(super) async fn new_account<A: AccountStore>(store: &A) -> AccountRecord {
    let account = account_record(now());
    ok(store.create_account(&account).await, "create_account");
    account
}

/// Creates a fresh account with 2FA on: one authenticator and `codes` backup codes.
pub(super) async fn new_2fa_account<A: AccountStore>(
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
pub(super) fn assert_same_account(got: &AccountRecord, want: &AccountRecord, what: &str) {
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

pub(super) fn same_authenticator(a: &AuthenticatorRecord, b: &AuthenticatorRecord) -> bool {
    a.id == b.id
        && a.user_id == b.user_id
        && a.name == b.name
        && a.sealed_secret == b.sealed_secret
        && a.created_at == b.created_at
}

#[track_caller]
pub(super) fn assert_same_authenticators(
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

pub(super) async fn account_of<A: AccountStore>(
    store: &A,
    id: &UserId,
    what: &str,
) -> AccountRecord {
    match ok(store.account(id).await, what) {
        Some(a) => a,
        None => panic!("{what}: account({id:?}) returned None for an existing account"),
    }
}

/// Runs `op` in `tasks` spawned tasks, released together by a barrier, task `i` on
/// handle `i % stores.len()`; returns the results in task order.
pub(super) async fn race<S, T, Fut>(
    stores: &[S],
    tasks: usize,
    mut op: impl FnMut(usize, S) -> Fut,
) -> Vec<T>
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
pub(super) fn checker<S>(stores: &[S], round: usize) -> &S {
    &stores[(round + 1) % stores.len()]
}

pub(super) fn pending(user_id: &UserId, attempts: u32, expires_at: u64) -> PendingLogin {
    PendingLogin {
        user_id: user_id.clone(),
        password_epoch: 7,
        attempts,
        expires_at,
    }
}

pub(super) fn enrollment_record(adding: bool, expires_at: u64) -> PendingEnrollment {
    PendingEnrollment {
        id: hex_id(),
        name: "phone".to_owned(),
        sealed_secret: sealed_secret(),
        adding,
        expires_at,
    }
}

#[track_caller]
pub(super) fn assert_same_enrollment(
    got: Option<PendingEnrollment>,
    want: &PendingEnrollment,
    what: &str,
) {
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

pub(super) fn ceremony_record(login: Option<KeyedHash>, expires_at: u64) -> CeremonyRecord {
    CeremonyRecord {
        user_id: user_id(),
        login,
        state: random_bytes::<32>().repeat(40),
        expires_at,
    }
}

pub(super) fn throttle_key() -> String {
    // Keys in the flows look like this: a kind, then a user id, name or address.
    format!("conformance:login:user@example.com {}", hex_id())
}

pub(super) fn device_record(user_id: &UserId, created_at: u64, expires_at: u64) -> DeviceRecord {
    DeviceRecord {
        id: DeviceId::new(hex_id()),
        user_id: user_id.clone(),
        label: "Firefox on Linux — Zürich 🦊".to_owned(),
        password_epoch: 5,
        created_at,
        expires_at,
    }
}

pub(super) fn session_record(user_id: &UserId, created_at: u64, expires_at: u64) -> SessionRecord {
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
pub(super) const METHODS: [AuthMethod; 4] = [
    AuthMethod::Password,
    AuthMethod::Totp,
    AuthMethod::BackupCode,
    AuthMethod::TrustedDevice,
];

pub(super) fn count<T>(results: &[T], pred: impl Fn(&T) -> bool) -> usize {
    results.iter().filter(|r| pred(r)).count()
}

/// A fresh 2FA account with a pending login (one attempt made of `max`), and its
/// two throttles set to a known non-zero state.
pub(super) async fn step_fixture<S: Store>(
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

pub(super) fn counted(expected: ThrottleState, t: u64) -> ThrottleState {
    ThrottleState {
        count: expected.count + 1,
        until: t + 60,
    }
}

/// The writes of a commit for a step of `auth`.
pub(super) struct CommitParts {
    pub(super) marks: Vec<StepMark>,
    pub(super) session_hash: KeyedHash,
    pub(super) session: SessionRecord,
    pub(super) device_hash: KeyedHash,
    pub(super) device: DeviceRecord,
    pub(super) log: Vec<SecurityEvent>,
}

pub(super) fn commit_parts(user: &UserId, auth: &AuthenticatorId, step: u64) -> CommitParts {
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

pub(super) fn throttle_writes(
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

pub(super) fn commit<'a>(
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

pub(super) async fn read_throttles<S: Store>(store: &S, keys: &[String; 2]) -> [ThrottleState; 2] {
    let t = now();
    [
        ok(store.throttle(&keys[0], t).await, "throttle"),
        ok(store.throttle(&keys[1], t).await, "throttle"),
    ]
}

pub(super) async fn log_of<A: AccountStore>(
    store: &A,
    user: &UserId,
    limit: u32,
) -> Vec<SecurityEvent> {
    ok(store.security_log(user, limit).await, "security_log")
}
