//! Configuration from the environment (the table in the HTTP contract).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secondfactor::secret::{KeyRing, SealingKey};

/// Where accounts and ephemeral state live, from `DATABASE_URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Database {
    /// `memory:` — nothing survives a restart; for tests and quick looks.
    Memory,
    /// `sqlite://PATH` — the embedded default.
    Sqlite {
        /// The URL as given.
        url: String,
        /// The database file.
        path: PathBuf,
    },
    /// `postgres://…` or `postgresql://…` — several instances share it.
    Postgres(String),
}

impl Database {
    /// Parses a `DATABASE_URL`.
    pub fn parse(url: &str) -> Result<Database, String> {
        if url == "memory:" || url == "memory://" {
            return Ok(Database::Memory);
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("DATABASE_URL: sqlite:// needs a file path".to_owned());
            }
            return Ok(Database::Sqlite {
                url: url.to_owned(),
                path: PathBuf::from(path),
            });
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Database::Postgres(url.to_owned()));
        }
        Err("DATABASE_URL must start with sqlite://, postgres:// or be memory:".to_owned())
    }

    /// The directory the development key file goes to: beside an SQLite database,
    /// else the working directory.
    pub fn key_dir(&self) -> PathBuf {
        match self {
            Database::Sqlite { path, .. } => match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            },
            Database::Memory | Database::Postgres(_) => PathBuf::from("."),
        }
    }
}

/// The server's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `SF_ADDR`, as given (an IP address and port, or a host name and port).
    pub addr: String,
    /// `DATABASE_URL`.
    pub database: Database,
    /// `REDIS_URL`.
    pub redis_url: Option<String>,
    /// `SF_MASTER_KEY` (base64); `None` means the development key file.
    pub master_key: Option<String>,
    /// `SF_ISSUER`.
    pub issuer: String,
    /// `SF_LOGIN_TTL_SECS`.
    pub login_ttl: Duration,
    /// `SF_SETUP_TTL_SECS`.
    pub setup_ttl: Duration,
    /// `SF_REAUTH_TTL_SECS`: how long a login or a re-authentication counts as recent.
    pub reauth_ttl: Duration,
    /// `SF_PUBLIC_URL`; `None` means `http://` + the listening address.
    pub public_url: Option<String>,
    /// `SF_TRUST_FORWARDED`: take the client address for the password limiter from
    /// the last `X-Forwarded-For` entry (set only behind a proxy that writes it).
    pub trust_forwarded: bool,
    /// The server's key ring (from `SF_MASTER_KEY` or the development key file, set
    /// by [`setup::run`](super::setup::run) once it is read): it seals the
    /// backup-codes page's cookie ([`codes`](super::codes)). `None` (a configuration
    /// built by hand) gives each [`Site`] a random key of its own.
    pub keys: Option<KeyRing>,
    /// `SF_INSECURE_FAST_HASH=1`: hash passwords with Argon2's smallest parameters, for
    /// load tests only ([`insecure_fast_hash`]); only ever `true` with a numeric
    /// loopback `SF_ADDR`.
    pub insecure_fast_hash: bool,
}

/// Reads `SF_INSECURE_FAST_HASH` against `SF_ADDR`: `1` turns on Argon2's smallest
/// parameters (8 KiB, 1 pass: a stolen hash falls to a laptop in seconds), which only
/// a load test on this machine may want. It is refused unless `addr` is a numeric
/// loopback address (`127.x.y.z:PORT` or `[::1]:PORT`), so that no server reachable
/// from another machine can run with it, whatever else the environment says.
pub fn insecure_fast_hash(addr: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("0") => Ok(false),
        Some("1") => match addr.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Ok(true),
            _ => Err(format!(
                "SF_INSECURE_FAST_HASH=1 is for load tests on this machine only: SF_ADDR must \
                 be a numeric loopback address such as 127.0.0.1:3000, not {addr:?}"
            )),
        },
        Some(other) => Err(format!(
            "SF_INSECURE_FAST_HASH must be 0 or 1, not {other:?}"
        )),
    }
}

fn var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

fn secs(name: &str, default: u64) -> Result<Duration, String> {
    match var(name)? {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{name} must be a whole number of seconds, not {v:?}")),
    }
}

impl Config {
    /// Reads the environment.
    pub fn from_env() -> Result<Config, String> {
        let database_url =
            var("DATABASE_URL")?.unwrap_or_else(|| "sqlite://secondfactor-demo.db".to_owned());
        let public_url = var("SF_PUBLIC_URL")?;
        if let Some(url) = &public_url
            && origin_of(url).is_none()
        {
            return Err(format!(
                "SF_PUBLIC_URL must be an http:// or https:// URL, not {url:?}"
            ));
        }
        let trust_forwarded = match var("SF_TRUST_FORWARDED")?.as_deref() {
            None | Some("0") | Some("false") | Some("no") => false,
            Some("1") | Some("true") | Some("yes") => true,
            Some(other) => return Err(format!("SF_TRUST_FORWARDED must be 0 or 1, not {other:?}")),
        };
        let addr = var("SF_ADDR")?.unwrap_or_else(|| "127.0.0.1:3000".to_owned());
        let insecure_fast_hash =
            insecure_fast_hash(&addr, var("SF_INSECURE_FAST_HASH")?.as_deref())?;
        Ok(Config {
            addr,
            database: Database::parse(&database_url)?,
            redis_url: var("REDIS_URL")?,
            master_key: var("SF_MASTER_KEY")?,
            issuer: var("SF_ISSUER")?.unwrap_or_else(|| "secondfactor demo".to_owned()),
            login_ttl: secs("SF_LOGIN_TTL_SECS", 300)?,
            setup_ttl: secs("SF_SETUP_TTL_SECS", 600)?,
            reauth_ttl: secs("SF_REAUTH_TTL_SECS", 300)?,
            public_url,
            trust_forwarded,
            keys: None,
            insecure_fast_hash,
        })
    }

    /// The per-request settings, once the server knows the address it listens on.
    ///
    /// Without `SF_PUBLIC_URL`, a loopback address is reached as `localhost`, and
    /// `127.0.0.1` and `[::1]` on the same port are accepted origins too: a person
    /// on this machine may type any of them.
    pub fn site(&self, bound: SocketAddr) -> Site {
        let loopback = || {
            let port = bound.port();
            [
                format!("http://127.0.0.1:{port}"),
                format!("http://[::1]:{port}"),
            ]
        };
        let (public, also) = match &self.public_url {
            Some(url) => (url.clone(), Vec::new()),
            None if bound.ip().is_loopback() && self.addr.parse::<SocketAddr>().is_ok() => (
                format!("http://localhost:{}", bound.port()),
                loopback().to_vec(),
            ),
            // A numeric SF_ADDR (maybe with port 0) is replaced by the real address.
            None if self.addr.parse::<SocketAddr>().is_ok() => {
                (format!("http://{bound}"), Vec::new())
            }
            None => (format!("http://{}", self.addr), Vec::new()),
        };
        let origin = origin_of(&public).unwrap_or_else(|| format!("http://{bound}"));
        Site {
            secure: origin.starts_with("https://"),
            origin,
            also_allowed: also,
            trust_forwarded: self.trust_forwarded,
            keys: self
                .keys
                .clone()
                .unwrap_or_else(|| KeyRing::new(1, SealingKey::generate())),
        }
    }
}

/// What request handling needs to know about the deployment.
#[derive(Clone, Debug)]
pub struct Site {
    /// The origin users reach (`scheme://host[:port]`), allowed in an `Origin` header.
    pub origin: String,
    /// Other origins allowed in `Origin`: the loopback addresses on the same port
    /// when `origin` is the default `http://localhost:PORT`.
    pub also_allowed: Vec<String>,
    /// Whether cookies carry `Secure` and the `__Host-` name prefix.
    pub secure: bool,
    /// Whether `X-Forwarded-For` names the client.
    pub trust_forwarded: bool,
    /// Seals the backup-codes page's cookie ([`codes`](super::codes)).
    pub keys: KeyRing,
}

impl Site {
    /// The name cookie `base` goes by: `__Host-` + `base` on an `https://` site (the
    /// browser then takes it only with `Secure`, `Path=/` and no `Domain`, so a
    /// sibling subdomain cannot plant or shadow it), else `base`.
    pub fn cookie_name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }
}

/// `scheme://host[:port]` of an http(s) URL, lowercased, default port dropped — the
/// form browsers send in `Origin`.
pub fn origin_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let plain = ["http", "https"].contains(&url.scheme())
        && url.username().is_empty()
        && url.password().is_none()
        && url.host().is_some();
    plain.then(|| url.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::insecure_fast_hash;

    #[test]
    fn insecure_fast_hash_is_refused_off_loopback() {
        for addr in ["127.0.0.1:3000", "127.1.2.3:0", "[::1]:8080"] {
            assert_eq!(insecure_fast_hash(addr, Some("1")), Ok(true), "{addr}");
            assert_eq!(insecure_fast_hash(addr, Some("0")), Ok(false), "{addr}");
            assert_eq!(insecure_fast_hash(addr, None), Ok(false), "{addr}");
        }
        // Any address another machine may reach, and every host name (which may
        // resolve anywhere, `localhost` included), is refused.
        for addr in [
            "0.0.0.0:3000",
            "[::]:3000",
            "192.168.1.10:3000",
            "10.0.0.1:80",
            "localhost:3000",
            "example.com:3000",
            "127.0.0.1",
        ] {
            let refused = insecure_fast_hash(addr, Some("1"));
            assert!(
                refused.as_ref().is_err_and(|e| e.contains("loopback")),
                "{addr}: {refused:?}"
            );
            // Off, it is no business of this check.
            assert_eq!(insecure_fast_hash(addr, None), Ok(false));
        }
        for bad in ["yes", "true", "2", ""] {
            assert!(
                insecure_fast_hash("127.0.0.1:3000", Some(bad)).is_err(),
                "{bad}"
            );
        }
    }
}
