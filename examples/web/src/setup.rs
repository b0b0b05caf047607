//! From the environment to a running server: the master key, the store chosen by
//! `DATABASE_URL` / `REDIS_URL`, the `Service`, and the adapter's `serve`.
//!
//! The service is generic over its store, so the adapter's `serve` is generic too and
//! [`run`] calls it once per kind of store. Adding a store is one arm in [`run`].

use std::error::Error as StdError;
use std::future::Future;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use secondfactor::Service;
use secondfactor::events::Event;
use secondfactor::flow::Blocking;
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{MemoryStore, Store};

use super::config::{Config, Database};

/// A boxed error for start-up and serving failures.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Name of the development key file, beside the database.
pub const DEV_KEY_FILE: &str = "secondfactor-dev.key";

/// A web framework adapter: serves a ready service until SIGTERM or Ctrl-C.
///
/// It binds `config.addr`, prints the line from [`announce`] once it accepts
/// connections, and returns after a clean shutdown.
pub trait Server {
    /// Whether expired state is purged while this runs ([`PURGE_EVERY`], and once at
    /// start); a one-shot tool says no.
    const PURGES: bool = true;

    /// Serves `service` with the settings in `config`.
    fn serve<S: Store>(
        self,
        service: Service<S>,
        config: Config,
    ) -> impl Future<Output = Result<(), BoxError>>;
}

/// How often expired pending logins, throttles, replay marks, sessions and trusted
/// devices are deleted from the store (also once at start).
pub const PURGE_EVERY: Duration = Duration::from_secs(10 * 60);

/// Prints the one line the contract promises on stdout, and flushes it; then, on
/// stderr, the URL to open in a browser (`http://localhost:PORT` on a loopback
/// address).
pub fn announce(addr: std::net::SocketAddr, site: &super::config::Site) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on http://{addr}");
    let _ = out.flush();
    eprintln!("open {}/ in a browser", site.origin);
}

/// Resolves on SIGTERM or Ctrl-C (both frameworks run on tokio).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    eprintln!("shutting down");
}

/// Reads the configuration, opens the store, builds the service with `blocking`
/// running argon2, and hands it to `server`. Start-up errors are printed to stderr.
pub async fn run(blocking: impl Blocking + Clone, server: impl Server) -> ExitCode {
    match try_run(blocking, server).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

async fn try_run(blocking: impl Blocking + Clone, server: impl Server) -> Result<(), BoxError> {
    let mut config = Config::from_env()?;
    let keys = KeyRing::new(1, master_key(&config)?);
    config.keys = Some(keys.clone());
    match config.database.clone() {
        Database::Memory => {
            eprintln!("note: DATABASE_URL=memory: keeps no account across restarts");
            with_ephemeral(MemoryStore::new(), keys, config, blocking, server).await
        }
        Database::Sqlite { url, path } => {
            let store = secondfactor::store::SqliteStore::connect(&url)
                .await
                .map_err(|e| format!("DATABASE_URL ({}): {e}", path.display()))?;
            eprintln!("note: accounts are in SQLite at {}", path.display());
            with_ephemeral(store, keys, config, blocking, server).await
        }
        #[cfg(feature = "postgres")]
        Database::Postgres(url) => {
            let store = secondfactor::store::PgStore::connect(&url)
                .await
                .map_err(|e| format!("DATABASE_URL (PostgreSQL): {e}"))?;
            eprintln!("note: accounts are in PostgreSQL");
            with_ephemeral(store, keys, config, blocking, server).await
        }
        #[cfg(not(feature = "postgres"))]
        Database::Postgres(_) => {
            Err("DATABASE_URL is postgres://, but this build has no PostgreSQL store (feature `postgres` of secondfactor-example-web)".into())
        }
    }
}

/// Serves with `accounts` for everything, or — with `REDIS_URL` — for accounts only,
/// and Redis for pending logins, throttles, replay marks, devices and sessions.
async fn with_ephemeral<A: Store>(
    accounts: A,
    keys: KeyRing,
    config: Config,
    blocking: impl Blocking + Clone,
    server: impl Server,
) -> Result<(), BoxError> {
    match config.redis_url.clone() {
        None => {
            let service = build(accounts, keys, &config, blocking)?;
            serve(server, service, config).await
        }
        #[cfg(feature = "redis")]
        Some(url) => {
            let redis = secondfactor::store::RedisStore::connect(&url)
                .await
                .map_err(|e| format!("REDIS_URL: {e}"))?;
            eprintln!("note: pending logins, throttles, replay marks and sessions are in Redis");
            let store = secondfactor::store::Combined::new(accounts, redis);
            let service = build(store, keys, &config, blocking)?;
            serve(server, service, config).await
        }
        #[cfg(not(feature = "redis"))]
        Some(_) => {
            Err("REDIS_URL is set, but this build has no Redis store (feature `redis` of secondfactor-example-web)".into())
        }
    }
}

/// Runs `server`, purging expired state in the background while it serves.
async fn serve<S: Store, T: Server>(
    server: T,
    service: Service<S>,
    config: Config,
) -> Result<(), BoxError> {
    let purge = T::PURGES.then(|| tokio::spawn(purge_expired(service.clone())));
    let result = server.serve(service, config).await;
    if let Some(task) = purge {
        task.abort();
    }
    result
}

/// Deletes expired state now and every [`PURGE_EVERY`], so that a store under a
/// flood of one-off clients and names does not grow without bound.
async fn purge_expired<S: Store>(service: Service<S>) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match service.purge_expired().await {
            Ok(0) => {}
            Ok(n) => eprintln!("note: purged {n} expired records"),
            Err(e) => eprintln!("warning: purging expired state failed: {e}"),
        }
    }
}

/// Builds the service from the configuration.
pub fn build<S: Store>(
    store: S,
    keys: KeyRing,
    config: &Config,
    blocking: impl Blocking,
) -> Result<Service<S>, secondfactor::Error> {
    let builder = Service::builder(store, keys);
    #[cfg(feature = "webauthn")]
    let builder = match super::webauthn::relying_party(config.public_url.as_deref()) {
        Some(rp) => builder.webauthn(rp),
        None => builder,
    };
    let builder = if config.insecure_fast_hash {
        eprintln!(
            "\n\
             ************************************************************************\n\
             WARNING: SF_INSECURE_FAST_HASH=1: passwords are hashed with Argon2's\n\
             smallest parameters (8 KiB, 1 pass). A stolen hash falls in seconds.\n\
             This is for load tests on this machine only (SF_ADDR is loopback);\n\
             never keep a database made this way.\n\
             ************************************************************************\n"
        );
        builder.password_hasher(PasswordHasher::new(8, 1, 1)?)
    } else {
        builder
    };
    builder
        .issuer(config.issuer.clone())
        .login_ttl(config.login_ttl)
        .enrollment_ttl(config.setup_ttl)
        .reauth_ttl(config.reauth_ttl)
        .blocking(blocking)
        // Audit events (never secrets) to stderr, where a demo's operator looks.
        .events(|e: &Event| eprintln!("event: {e:?}"))
        .build()
}

/// `SF_MASTER_KEY`, or the development key file beside the database (made once).
fn master_key(config: &Config) -> Result<SealingKey, BoxError> {
    if let Some(b64) = &config.master_key {
        return Ok(SealingKey::from_base64(b64).map_err(|e| {
            format!("SF_MASTER_KEY: {e} (make one with `openssl rand -base64 32`)")
        })?);
    }
    if let Database::Postgres(_) = config.database {
        return Err(
            "SF_MASTER_KEY is not set: a postgres:// DATABASE_URL needs it, because \
                    instances with different keys cannot open each other's secrets (make one \
                    with `openssl rand -base64 32`)"
                .into(),
        );
    }
    let path = config.database.key_dir().join(DEV_KEY_FILE);
    let key = dev_key(&path)?;
    eprintln!(
        "\n\
         ************************************************************************\n\
         WARNING: SF_MASTER_KEY is not set. TOTP secrets are sealed with the\n\
         development key in {}.\n\
         Anyone who can read that file can open them. For anything but a demo,\n\
         set SF_MASTER_KEY to base64 of 32 random bytes (openssl rand -base64 32)\n\
         and keep it out of the database.\n\
         ************************************************************************\n",
        path.display()
    );
    Ok(key)
}

/// Reads the key file, or creates it with a fresh key (owner-only permissions).
fn dev_key(path: &Path) -> Result<SealingKey, BoxError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let key = SealingKey::generate();
            file.write_all(key.to_base64().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            super::keyfile::owner_only(path)?;
            // Another instance may have just created it: give it a moment to write.
            for _ in 0..20 {
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(path)?);
                if !text.trim().is_empty() {
                    return Ok(SealingKey::from_base64(&text)
                        .map_err(|e| format!("{}: {e}", path.display()))?);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(format!("{} is empty", path.display()).into())
        }
        Err(e) => Err(format!("cannot create {}: {e}", path.display()).into()),
    }
}
