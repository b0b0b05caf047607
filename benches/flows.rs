//! The whole second-factor step on the in-memory store, and backup-code spending.
//!
//! `second_factor_totp/{1000,1000000}_users`: [`Service::second_factor`] with a valid
//! TOTP code: pending-login lookup and attempt count, account lookup, throttle
//! reservation, authenticators, unsealing (XChaCha20-Poly1305), key preparation,
//! verification, taking the pending login, the replay compare-and-set and the
//! throttle reset. Only that call is timed. Each timed call uses a fresh pending
//! login and a fresh time step: before each chunk of calls the manual clock moves
//! 30 s and every call of the chunk goes to a different user (spread over the whole
//! population). The pending logins are put in the store the way
//! [`Service::login`] does after the password check (the keyed hash of a random
//! 256-bit token), so that argon2 stays out of the loop; one real
//! login → second factor runs first to check that the path is the real one.
//!
//! The populations are made through the `AccountStore` trait directly, with one
//! cheap password hash computed once and shared.
//!
//! `backup_code/verify_and_consume`: normalize a typed code, compute its keyed hash
//! and consume it from a set of 10 in the store. `second_factor_backup/1000_users`:
//! the same inside the whole second-factor step.
//!
//! Run: `cargo bench --bench flows`

use std::cell::OnceCell;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use secondfactor::__private;
use secondfactor::backup;
use secondfactor::clock::{Clock, ManualClock};
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, KeyedHash, SealingKey, Secret};
use secondfactor::store::{
    AccountRecord, AccountStore, AuthenticatorId, AuthenticatorRecord, EphemeralStore, MemoryStore,
    PendingLogin, UserId,
};
use secondfactor::totp::TotpKey;
use secondfactor::{LoginOutcome, LoginRequest, SecondFactor, Service};

const START: u64 = 1_700_000_000;
const PASSWORD: &str = "bench password";
/// Calls per chunk: every call of a chunk goes to a different user.
const CHUNK: usize = 1000;
/// Coprime with every population size used here, so `(base + k * STRIDE) % n`
/// visits `n` distinct users for `k < n`.
const STRIDE: usize = 7919;

/// Drives a future that never waits (every `MemoryStore` operation and the `Inline`
/// blocking runner complete at once) to completion, without a runtime.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// The timed call, kept out of line so that a profiler can single it out:
/// `valgrind --tool=callgrind --toggle-collect='*timed_second_factor*' <bench binary>
/// --bench --profile-time 2 second_factor_totp/1000_users`.
#[inline(never)]
fn timed_second_factor(
    service: &Service<MemoryStore>,
    token: &str,
    factor: SecondFactor<'_>,
) -> secondfactor::Result<secondfactor::Authenticated> {
    block_on(service.second_factor(black_box(token), black_box(factor)))
}

fn user_id(i: usize) -> UserId {
    UserId::new(format!("{i:032x}"))
}

fn username(i: usize) -> String {
    format!("user{i}")
}

/// A distinct 160-bit secret per user.
fn secret_bytes(i: usize) -> [u8; 20] {
    let mut s = [0x5a; 20];
    s[..8].copy_from_slice(&(i as u64).to_be_bytes());
    s
}

struct World {
    service: Service<MemoryStore>,
    store: MemoryStore,
    keys: KeyRing,
    clock: ManualClock,
    users: usize,
}

fn world(users: usize) -> World {
    let started = Instant::now();
    let store = MemoryStore::new();
    let keys = KeyRing::new(1, SealingKey::from_bytes([7; 32]));
    let clock = ManualClock::new(START);
    let hasher = PasswordHasher::new(256, 1, 1).unwrap();
    let service = Service::builder(store.clone(), keys.clone())
        .clock(clock.clone())
        .password_hasher(hasher.clone())
        .build()
        .unwrap();
    // One cheap hash, computed once, shared by every account.
    let hash = hasher.hash(PASSWORD).unwrap();
    block_on(async {
        for i in 0..users {
            let id = user_id(i);
            let account = AccountRecord {
                id: id.clone(),
                username: username(i),
                password_hash: hash.clone(),
                password_epoch: 0,
                two_factor_enabled: false,
                backup_codes_key_id: None,
                created_at: START,
            };
            store.create_account(&account).await.unwrap();
            let secret = Secret::from_bytes(&secret_bytes(i)).unwrap();
            let authenticator = AuthenticatorRecord {
                id: AuthenticatorId::new(format!("{i:x}-phone")),
                user_id: id.clone(),
                name: "phone".to_owned(),
                sealed_secret: keys.seal(id.as_str(), &secret).unwrap(),
                created_at: START,
            };
            store
                .enable_two_factor(&authenticator, &[], 1)
                .await
                .unwrap();
        }
    });
    eprintln!("{users} users set up in {:.1?}", started.elapsed());
    World {
        service,
        store,
        keys,
        clock,
        users,
    }
}

impl World {
    /// A pending login for user `i`, stored as `Service::login` stores one; returns
    /// the token the client would present.
    fn pending_login(&self, i: usize) -> String {
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        let hash = __private::login_token_hash(&self.keys, &raw);
        let pending = PendingLogin {
            user_id: user_id(i),
            password_epoch: 0,
            attempts: 0,
            expires_at: self.clock.now() + 300,
        };
        block_on(self.store.create_pending_login(&hash, &pending)).unwrap();
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn code(&self, i: usize) -> String {
        TotpKey::new(self.service.totp_policy(), &secret_bytes(i)).generate(self.clock.now())
    }

    /// The real path once: password step, then second factor.
    fn check_real_login(&self) {
        self.clock.advance(Duration::from_secs(30));
        let i = self.users / 2;
        let outcome = block_on(
            self.service
                .login(LoginRequest::new(&username(i), PASSWORD)),
        )
        .unwrap();
        let LoginOutcome::SecondFactorRequired(ticket) = outcome else {
            panic!("2FA is on, a second factor must be required");
        };
        let auth = block_on(
            self.service
                .second_factor(ticket.token.expose(), SecondFactor::Totp(&self.code(i))),
        )
        .unwrap();
        assert_eq!(auth.username(), username(i));
        // And a synthetic pending login takes the same path.
        self.clock.advance(Duration::from_secs(30));
        let token = self.pending_login(i);
        let auth = block_on(
            self.service
                .second_factor(&token, SecondFactor::Totp(&self.code(i))),
        )
        .unwrap();
        assert_eq!(auth.username(), username(i));
    }

    /// Times `iters` TOTP second factors, each on a fresh pending login and step.
    fn time_totp(&self, iters: u64) -> Duration {
        let policy = *self.service.totp_policy();
        let mut total = Duration::ZERO;
        let mut left = iters as usize;
        let mut base = 0usize;
        while left > 0 {
            let m = left.min(CHUNK).min(self.users);
            self.clock.advance(Duration::from_secs(30));
            let now = self.clock.now();
            let step = policy.step_at(now);
            let calls: Vec<(String, String)> = (0..self.users)
                .map(|k| (base + k * STRIDE) % self.users)
                .filter(|&i| {
                    // A user whose previous step's code equals this step's had this
                    // step marked used by the previous chunk (verification reports
                    // the newest matching step): correctly a replay now. Skip them.
                    let key = TotpKey::new(&policy, &secret_bytes(i));
                    key.code_at_step(step) != key.code_at_step(step - 1)
                })
                .take(m)
                .map(|i| (self.pending_login(i), self.code(i)))
                .collect();
            let mut ok = 0usize;
            let started = Instant::now();
            for (token, code) in &calls {
                let r = timed_second_factor(&self.service, token, SecondFactor::Totp(code));
                ok += usize::from(r.is_ok());
                drop(black_box(r));
            }
            total += started.elapsed();
            assert_eq!(ok, calls.len(), "every second factor must succeed");
            base = base.wrapping_add(m * 31 + 17);
            left -= calls.len();
        }
        total
    }

    /// Gives user `i` a fresh set of 10 backup codes (9 random stand-ins) and returns
    /// the one real code, as the user would type it.
    fn fresh_backup_code(&self, i: usize) -> String {
        let code = backup::try_generate(1).unwrap().pop().unwrap();
        let mut hashes = vec![__private::backup_code_hash(&self.keys, code.expose()).unwrap()];
        for _ in 0..9 {
            let mut h = [0u8; 32];
            rand::fill(&mut h);
            hashes.push(KeyedHash(h));
        }
        hashes.rotate_left(i % 10);
        block_on(self.store.replace_backup_codes(&user_id(i), &hashes, 1)).unwrap();
        code.expose().to_lowercase()
    }

    /// Times `iters` backup-code spends (normalize, keyed hash, consume), each on a
    /// fresh code.
    fn time_backup_consume(&self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters as usize;
        while left > 0 {
            let m = left.min(CHUNK).min(self.users);
            let calls: Vec<(UserId, String)> = (0..m)
                .map(|i| (user_id(i), self.fresh_backup_code(i)))
                .collect();
            let mut ok = 0usize;
            let started = Instant::now();
            for (user, typed) in &calls {
                for h in __private::backup_code_lookup_hashes(&self.keys, black_box(typed)).unwrap()
                {
                    if block_on(self.store.consume_backup_code(user, &h)).unwrap() {
                        ok += 1;
                        break;
                    }
                }
            }
            total += started.elapsed();
            assert_eq!(ok, m, "every backup code must be consumed");
            left -= m;
        }
        total
    }

    /// Times `iters` backup-code second factors, each on a fresh pending login and code.
    fn time_backup_second_factor(&self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters as usize;
        while left > 0 {
            let m = left.min(CHUNK).min(self.users);
            self.clock.advance(Duration::from_secs(30));
            let calls: Vec<(String, String)> = (0..m)
                .map(|i| (self.pending_login(i), self.fresh_backup_code(i)))
                .collect();
            let mut ok = 0usize;
            let started = Instant::now();
            for (token, code) in &calls {
                let r = timed_second_factor(&self.service, token, SecondFactor::BackupCode(code));
                ok += usize::from(r.is_ok());
                drop(black_box(r));
            }
            total += started.elapsed();
            assert_eq!(ok, m, "every backup code must be accepted");
            left -= m;
        }
        total
    }
}

fn second_factor(c: &mut Criterion) {
    let mut g = c.benchmark_group("second_factor_totp");
    g.measurement_time(Duration::from_secs(5));
    for users in [1_000, 1_000_000] {
        // Built only when the benchmark is selected (the 1e6 world takes seconds).
        let w = OnceCell::new();
        g.bench_function(format!("{users}_users"), |b| {
            let w = w.get_or_init(|| {
                let w = world(users);
                w.check_real_login();
                w
            });
            b.iter_custom(|iters| w.time_totp(iters))
        });
    }
    g.finish();
}

/// The pieces of the second-factor step one by one, to see where its time goes.
fn second_factor_parts(c: &mut Criterion) {
    let keys = KeyRing::new(1, SealingKey::from_bytes([7; 32]));
    let policy = secondfactor::totp::TotpPolicy::default();
    let secret = Secret::from_bytes(&secret_bytes(42)).unwrap();
    let user = user_id(42);
    let sealed = keys.seal(user.as_str(), &secret).unwrap();
    let raw = [9u8; 32];
    let key = TotpKey::new(&policy, secret.expose_bytes());
    let code = policy.normalize_code(&key.generate(START)).unwrap();

    let mut g = c.benchmark_group("second_factor_parts");
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("token_keyed_hash", |b| {
        b.iter(|| __private::login_token_hash(&keys, black_box(&raw)))
    });
    g.bench_function("unseal_secret", |b| {
        b.iter(|| keys.open(black_box(user.as_str()), black_box(&sealed)))
    });
    g.bench_function("prepare_totp_key", |b| {
        b.iter(|| TotpKey::new(&policy, black_box(secret.expose_bytes())))
    });
    g.bench_function("verify_code", |b| {
        b.iter(|| black_box(&key).verify(black_box(&code), black_box(START)))
    });
    g.finish();
}

fn backup_codes(c: &mut Criterion) {
    let w = OnceCell::new();
    let mut g = c.benchmark_group("backup_code");
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("verify_and_consume", |b| {
        let w = w.get_or_init(|| world(1_000));
        b.iter_custom(|iters| w.time_backup_consume(iters))
    });
    g.finish();
    let mut g = c.benchmark_group("second_factor_backup");
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("1000_users", |b| {
        let w = w.get_or_init(|| world(1_000));
        b.iter_custom(|iters| w.time_backup_second_factor(iters))
    });
    g.finish();
}

criterion_group!(benches, second_factor, second_factor_parts, backup_codes);
criterion_main!(benches);
