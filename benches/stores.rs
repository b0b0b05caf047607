//! The whole second-factor step on the real stores.
//!
//! `stores_second_factor_totp/<store>/<n>_users`: [`Service::second_factor`] with a
//! valid TOTP code, measured exactly as `benches/flows.rs` measures it on
//! `MemoryStore`: only that call is timed; each timed call uses a fresh pending
//! login and a fresh time step (before each chunk of calls the manual clock moves
//! 30 s, and every call of the chunk goes to a different user spread over the whole
//! population); the pending logins are stored through the store the way
//! [`Service::login`] stores one (the keyed hash of a random 256-bit token), outside
//! the timed part, so that argon2 stays out of the loop; one real login → second
//! factor runs first to check that the path is the real one.
//!
//! - `sqlite/{1000,1000000}_users`: [`SqliteStore`] on a file in a temporary
//!   directory (WAL, `synchronous = NORMAL`, as `SqliteStore::connect` sets it).
//! - `postgres/100000_users`: [`PgStore`] in a schema of its own on `DATABASE_URL`,
//!   dropped afterwards.
//! - `postgres+redis/100000_users`: `Combined<PgStore, RedisStore>`: accounts in
//!   PostgreSQL, ephemeral state in Redis (`REDIS_URL`) under a random key prefix,
//!   deleted afterwards.
//!
//! When `DATABASE_URL` or `REDIS_URL` is unset, the benchmarks that need it print a
//! note and are skipped.
//!
//! The first few users of each population are made through the `AccountStore` trait
//! (`create_account` + `enable_two_factor`); the rest are bulk-inserted through the
//! store's pool in the same row format (multi-row prepared `INSERT`s in large
//! transactions for SQLite, `INSERT … SELECT FROM UNNEST(arrays)` for PostgreSQL),
//! and read back through the trait to check that they decode. One cheap password
//! hash is computed once and shared. Futures run on a current-thread tokio runtime.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test
//! REDIS_URL=redis://127.0.0.1:6379 cargo bench --bench stores --features
//! sqlite,postgres,redis`

use std::cell::OnceCell;
use std::hint::black_box;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use secondfactor::__private;
use secondfactor::clock::{Clock, ManualClock};
use secondfactor::password::{PasswordHash, PasswordHasher};
use secondfactor::secret::{KeyRing, SealingKey, Secret};
use secondfactor::store::{
    AccountRecord, AccountStore, AuthenticatorId, AuthenticatorRecord, Combined, PendingLogin,
    PgStore, RedisStore, SqliteStore, Store, UserId,
};
use secondfactor::totp::TotpKey;
use secondfactor::{LoginOutcome, LoginRequest, SecondFactor, Service};
use sqlx::{AssertSqlSafe, Connection as _};
use tokio::runtime::Runtime;

const PASSWORD: &str = "bench password";
/// Calls per chunk: every call of a chunk goes to a different user.
const CHUNK: usize = 1000;
/// Coprime with every population size used here, so `(base + k * STRIDE) % n`
/// visits `n` distinct users for `k < n`.
const STRIDE: usize = 7919;
/// Users made through the `AccountStore` trait before the bulk insert.
const VIA_TRAIT: usize = 16;
/// Rows per multi-row SQLite `INSERT` (4 parameters each: under SQLite's old
/// 999-parameter limit).
const SQLITE_ROWS: usize = 200;
/// Rows per SQLite transaction.
const SQLITE_TX_ROWS: usize = 100_000;
/// Rows per PostgreSQL `UNNEST` insert.
const PG_ROWS: usize = 10_000;

static RT: LazyLock<Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

/// The manual clock starts at the wall clock's current 30-second step, so that
/// Redis expiry TTLs are the ones a real service would set.
fn start_time() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now - now % 30
}

/// The timed call, kept out of line so that a profiler can single it out.
#[inline(never)]
async fn timed_second_factor<S: Store>(
    service: &Service<S>,
    token: &str,
    factor: SecondFactor<'_>,
) -> secondfactor::Result<secondfactor::Authenticated> {
    service
        .second_factor(black_box(token), black_box(factor))
        .await
}

fn user_id(i: usize) -> UserId {
    UserId::new(format!("{i:032x}"))
}

fn username(i: usize) -> String {
    format!("user{i}")
}

fn authenticator_id(i: usize) -> AuthenticatorId {
    AuthenticatorId::new(format!("{i:x}-phone"))
}

/// A distinct 160-bit secret per user.
fn secret_bytes(i: usize) -> [u8; 20] {
    let mut s = [0x5a; 20];
    s[..8].copy_from_slice(&(i as u64).to_be_bytes());
    s
}

/// What every bulk loader gets: the shared hash, the keys and the creation time.
struct Population<'a> {
    hash: &'a PasswordHash,
    keys: &'a KeyRing,
    created_at: u64,
}

impl Population<'_> {
    fn sealed(&self, i: usize) -> Vec<u8> {
        let secret = Secret::from_bytes(&secret_bytes(i)).unwrap();
        self.keys
            .seal(user_id(i).as_str(), &secret)
            .unwrap()
            .into_bytes()
    }

    /// User `i` through the `AccountStore` trait, as enrollment leaves it.
    async fn via_trait<A: AccountStore>(&self, store: &A, i: usize) {
        let id = user_id(i);
        let account = AccountRecord {
            id: id.clone(),
            username: username(i),
            password_hash: self.hash.clone(),
            password_epoch: 0,
            two_factor_enabled: false,
            backup_codes_key_id: None,
            created_at: self.created_at,
        };
        store.create_account(&account).await.unwrap();
        let secret = Secret::from_bytes(&secret_bytes(i)).unwrap();
        let authenticator = AuthenticatorRecord {
            id: authenticator_id(i),
            user_id: id.clone(),
            name: "phone".to_owned(),
            sealed_secret: self.keys.seal(id.as_str(), &secret).unwrap(),
            created_at: self.created_at,
        };
        store
            .enable_two_factor(&authenticator, &[], 1)
            .await
            .unwrap();
    }

    /// Checks that bulk-inserted user `i` reads back through the trait like a user
    /// made through it.
    async fn check<A: AccountStore>(&self, store: &A, i: usize) {
        let account = store.account(&user_id(i)).await.unwrap().unwrap();
        assert_eq!(account.username, username(i));
        assert!(account.two_factor_enabled);
        assert_eq!(account.password_hash.as_str(), self.hash.as_str());
        let auths = store.authenticators(&user_id(i)).await.unwrap();
        assert_eq!(auths.len(), 1);
        assert_eq!(auths[0].id, authenticator_id(i));
        let secret = self.keys.open(user_id(i).as_str(), &auths[0].sealed_secret);
        assert_eq!(secret.unwrap().expose_bytes(), secret_bytes(i));
    }

    /// Users `from..to` into SQLite: multi-row prepared `INSERT`s, `SQLITE_TX_ROWS`
    /// rows per transaction, on the store's writer connection.
    async fn sqlite_bulk(&self, store: &SqliteStore, from: usize, to: usize) {
        fn multi_row(head: &str, row: &str, n: usize) -> String {
            let mut sql = String::from(head);
            for k in 0..n {
                if k > 0 {
                    sql.push(',');
                }
                sql.push_str(row);
            }
            sql
        }
        const ACCOUNTS: &str = "INSERT INTO sf_accounts (id, username, password_hash, \
                                password_epoch, two_factor_enabled, created_at) VALUES ";
        const ACCOUNT_ROW: &str = "(?, ?, ?, 0, 1, ?)";
        const AUTHS: &str =
            "INSERT INTO sf_authenticators (id, user_id, name, sealed_secret, created_at) VALUES ";
        const AUTH_ROW: &str = "(?, ?, 'phone', ?, ?)";
        let created_at = i64::try_from(self.created_at).unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let mut i = from;
        while i < to {
            let tx_end = (i + SQLITE_TX_ROWS).min(to);
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
            while i < tx_end {
                let n = SQLITE_ROWS.min(tx_end - i);
                let ids: Vec<String> = (i..i + n).map(|j| user_id(j).as_str().to_owned()).collect();
                let names: Vec<String> = (i..i + n).map(username).collect();
                let auth_ids: Vec<String> = (i..i + n)
                    .map(|j| authenticator_id(j).as_str().to_owned())
                    .collect();
                let sealed: Vec<Vec<u8>> = (i..i + n).map(|j| self.sealed(j)).collect();
                // Same text for every full batch: prepared once, then reused.
                let mut q = sqlx::query(AssertSqlSafe(multi_row(ACCOUNTS, ACCOUNT_ROW, n)));
                for k in 0..n {
                    q = q
                        .bind(ids[k].as_str())
                        .bind(names[k].as_str())
                        .bind(self.hash.as_str())
                        .bind(created_at);
                }
                q.execute(&mut *tx).await.unwrap();
                let mut q = sqlx::query(AssertSqlSafe(multi_row(AUTHS, AUTH_ROW, n)));
                for k in 0..n {
                    q = q
                        .bind(auth_ids[k].as_str())
                        .bind(ids[k].as_str())
                        .bind(sealed[k].as_slice())
                        .bind(created_at);
                }
                q.execute(&mut *tx).await.unwrap();
                i += n;
            }
            tx.commit().await.unwrap();
        }
    }

    /// Users `from..to` into PostgreSQL: `INSERT … SELECT FROM UNNEST(arrays)` of
    /// `PG_ROWS` rows, one transaction, then `ANALYZE`.
    async fn pg_bulk(&self, store: &PgStore, from: usize, to: usize) {
        let created_at = i64::try_from(self.created_at).unwrap();
        let mut tx = store.pool().begin().await.unwrap();
        let mut i = from;
        while i < to {
            let n = PG_ROWS.min(to - i);
            let ids: Vec<String> = (i..i + n).map(|j| user_id(j).as_str().to_owned()).collect();
            let names: Vec<String> = (i..i + n).map(username).collect();
            let auth_ids: Vec<String> = (i..i + n)
                .map(|j| authenticator_id(j).as_str().to_owned())
                .collect();
            let sealed: Vec<Vec<u8>> = (i..i + n).map(|j| self.sealed(j)).collect();
            sqlx::query(
                "INSERT INTO sf_accounts (id, username, password_hash, password_epoch, \
                 two_factor_enabled, created_at) \
                 SELECT id, username, $3, 0, TRUE, $4 FROM UNNEST($1::text[], $2::text[]) \
                 AS t (id, username)",
            )
            .bind(&ids)
            .bind(&names)
            .bind(self.hash.as_str())
            .bind(created_at)
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO sf_authenticators (id, user_id, name, sealed_secret, created_at) \
                 SELECT id, user_id, 'phone', sealed, $4 \
                 FROM UNNEST($1::text[], $2::text[], $3::bytea[]) AS t (id, user_id, sealed)",
            )
            .bind(&auth_ids)
            .bind(&ids)
            .bind(&sealed)
            .bind(created_at)
            .execute(&mut *tx)
            .await
            .unwrap();
            i += n;
        }
        tx.commit().await.unwrap();
        sqlx::query("ANALYZE sf_accounts, sf_authenticators")
            .execute(store.pool())
            .await
            .unwrap();
    }
}

struct World<S: Store> {
    service: Service<S>,
    store: S,
    keys: KeyRing,
    clock: ManualClock,
    users: usize,
}

/// Builds a service over `store` and populates it: `VIA_TRAIT` users through the
/// trait, the rest with `bulk(population, accounts_half, from, to)`.
fn world<S, A, F>(store: S, accounts: impl FnOnce(&S) -> &A, users: usize, bulk: F) -> World<S>
where
    S: Store + Clone,
    A: AccountStore,
    F: AsyncFnOnce(&Population<'_>, &A, usize, usize),
{
    let started = Instant::now();
    let start = start_time();
    let keys = KeyRing::new(1, SealingKey::from_bytes([7; 32]));
    let clock = ManualClock::new(start);
    let hasher = PasswordHasher::new(256, 1, 1).unwrap();
    let service = Service::builder(store.clone(), keys.clone())
        .clock(clock.clone())
        .password_hasher(hasher.clone())
        .build()
        .unwrap();
    // One cheap hash, computed once, shared by every account.
    let hash = hasher.hash(PASSWORD).unwrap();
    let population = Population {
        hash: &hash,
        keys: &keys,
        created_at: start,
    };
    let a = accounts(&store);
    RT.block_on(async {
        let via_trait = VIA_TRAIT.min(users);
        for i in 0..via_trait {
            population.via_trait(a, i).await;
        }
        bulk(&population, a, via_trait, users).await;
        population.check(a, users - 1).await;
        population.check(a, users / 2).await;
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

impl<S: Store> World<S> {
    /// A pending login for user `i`, stored as `Service::login` stores one; returns
    /// the token the client would present.
    async fn pending_login(&self, i: usize) -> String {
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        let hash = __private::login_token_hash(&self.keys, &raw);
        let pending = PendingLogin {
            user_id: user_id(i),
            password_epoch: 0,
            attempts: 0,
            expires_at: self.clock.now() + 300,
        };
        self.store
            .create_pending_login(&hash, &pending)
            .await
            .unwrap();
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn code(&self, i: usize) -> String {
        TotpKey::new(self.service.totp_policy(), &secret_bytes(i)).generate(self.clock.now())
    }

    /// The real path once: password step, then second factor; and once the
    /// synthetic pending login, for a bulk-inserted user.
    fn check_real_login(&self) {
        RT.block_on(async {
            self.clock.advance(Duration::from_secs(30));
            let i = self.users / 2;
            let outcome = self
                .service
                .login(LoginRequest::new(&username(i), PASSWORD))
                .await
                .unwrap();
            let LoginOutcome::SecondFactorRequired(ticket) = outcome else {
                panic!("2FA is on, a second factor must be required");
            };
            let auth = self
                .service
                .second_factor(ticket.token.expose(), SecondFactor::Totp(&self.code(i)))
                .await
                .unwrap();
            assert_eq!(auth.username(), username(i));
            self.clock.advance(Duration::from_secs(30));
            let i = self.users - 1;
            let token = self.pending_login(i).await;
            let auth = self
                .service
                .second_factor(&token, SecondFactor::Totp(&self.code(i)))
                .await
                .unwrap();
            assert_eq!(auth.username(), username(i));
        });
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
            let users: Vec<usize> = (0..self.users)
                .map(|k| (base + k * STRIDE) % self.users)
                .filter(|&i| {
                    // A user whose previous step's code equals this step's had this
                    // step marked used by the previous chunk: correctly a replay now.
                    let key = TotpKey::new(&policy, &secret_bytes(i));
                    key.code_at_step(step) != key.code_at_step(step - 1)
                })
                .take(m)
                .collect();
            let (elapsed, ok) = RT.block_on(async {
                let mut calls = Vec::with_capacity(users.len());
                for &i in &users {
                    calls.push((self.pending_login(i).await, self.code(i)));
                }
                let mut ok = 0usize;
                let started = Instant::now();
                for (token, code) in &calls {
                    let r =
                        timed_second_factor(&self.service, token, SecondFactor::Totp(code)).await;
                    ok += usize::from(r.is_ok());
                    drop(black_box(r));
                }
                (started.elapsed(), ok)
            });
            total += elapsed;
            assert_eq!(ok, users.len(), "every second factor must succeed");
            base = base.wrapping_add(m * 31 + 17);
            left -= users.len();
        }
        total
    }
}

/// Registers `<name>/<users>_users`, building the world on first use.
fn bench_world<S: Store>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    users: usize,
    cell: &OnceCell<World<S>>,
    make: impl Fn() -> World<S>,
) {
    g.bench_function(format!("{name}/{users}_users"), |b| {
        let w = cell.get_or_init(|| {
            let w = make();
            w.check_real_login();
            w
        });
        b.iter_custom(|iters| w.time_totp(iters))
    });
}

fn group(c: &mut Criterion) -> BenchmarkGroup<'_, WallTime> {
    let mut g = c.benchmark_group("stores_second_factor_totp");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    g
}

fn sqlite(c: &mut Criterion) {
    let mut g = group(c);
    for users in [1_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let cell = OnceCell::new();
        bench_world(&mut g, "sqlite", users, &cell, || {
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            let store = RT.block_on(SqliteStore::connect(&url)).unwrap();
            world(
                store,
                |s| s,
                users,
                async |p, s, from, to| p.sqlite_bulk(s, from, to).await,
            )
        });
        // The pools close with the world, before the directory goes.
        drop(cell);
    }
    g.finish();
}

fn random_suffix() -> String {
    let mut raw = [0u8; 6];
    rand::fill(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// A PostgreSQL store in a fresh schema; the schema name is returned for the drop.
async fn pg_store(url: &str) -> (PgStore, String) {
    let schema = format!("sf_bench_{}", random_suffix());
    let store = PgStore::connect_with_schema(url, &schema).await.unwrap();
    (store, schema)
}

async fn drop_schema(store: &PgStore, schema: &str) {
    sqlx::query(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;
}

/// Deletes every Redis key under `prefix`.
async fn delete_prefix(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cursor: u64 = 0;
    let mut deleted = 0usize;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(10_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            deleted += keys.len();
            let () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    eprintln!("deleted {deleted} Redis keys under {prefix}");
}

fn env(name: &str, bench: &str) -> Option<String> {
    let v = std::env::var(name).ok().filter(|v| !v.is_empty());
    if v.is_none() {
        eprintln!("{name} is not set: skipping the {bench} benchmark");
    }
    v
}

fn postgres(c: &mut Criterion) {
    let Some(url) = env("DATABASE_URL", "postgres") else {
        return;
    };
    let users = 100_000;
    let mut g = group(c);
    let cell = OnceCell::new();
    let schema = OnceCell::new();
    bench_world(&mut g, "postgres", users, &cell, || {
        let (store, name) = RT.block_on(pg_store(&url));
        schema.set(name).unwrap();
        world(
            store,
            |s| s,
            users,
            async |p, s, from, to| p.pg_bulk(s, from, to).await,
        )
    });
    g.finish();
    if let (Some(w), Some(schema)) = (cell.get(), schema.get()) {
        RT.block_on(drop_schema(&w.store, schema));
    }
}

fn postgres_redis(c: &mut Criterion) {
    let (Some(url), Some(redis_url)) = (
        env("DATABASE_URL", "postgres+redis"),
        env("REDIS_URL", "postgres+redis"),
    ) else {
        return;
    };
    let users = 100_000;
    let prefix = format!("sfbench:{}:", random_suffix());
    let mut g = group(c);
    let cell = OnceCell::new();
    let schema = OnceCell::new();
    bench_world(&mut g, "postgres+redis", users, &cell, || {
        let (pg, name) = RT.block_on(pg_store(&url));
        schema.set(name).unwrap();
        let redis = RT
            .block_on(RedisStore::with_prefix(&redis_url, prefix.clone()))
            .unwrap();
        world(
            Combined::new(pg, redis),
            |s| s.accounts(),
            users,
            async |p, s, from, to| p.pg_bulk(s, from, to).await,
        )
    });
    g.finish();
    if let (Some(w), Some(schema)) = (cell.get(), schema.get()) {
        RT.block_on(async {
            drop_schema(w.store.accounts(), schema).await;
            delete_prefix(&redis_url, &prefix).await;
        });
    }
}

criterion_group!(benches, sqlite, postgres, postgres_redis);
criterion_main!(benches);
