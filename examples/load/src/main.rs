//! A bounded HTTP load client for the example servers (`scripts/load.sh` runs it).
//!
//! ```text
//! secondfactor-example-load URL [USERS] [CONCURRENCY] [MAX_SECS]
//! ```
//!
//! It enrols `USERS` accounts through the JSON API (register, log in, set up TOTP,
//! confirm with a code computed from the secret the server showed), then measures,
//! at `CONCURRENCY` requests in flight:
//!
//! 1. the password step (`POST /api/login`), twice per user, keeping each pending login;
//! 2. the **second-factor step** (`POST /api/login/second-factor`), once per pending
//!    login: the figure to compare with other stacks' code step;
//! 3. the **full login**: password step then code step, once per user.
//!
//! Each phase stops at `MAX_SECS` (default 30) or when its work is done, and prints
//! successful requests per second with the p50 and p99 of their latency; failures
//! are counted by error code and never enter the figures.
//!
//! # Why so many users
//!
//! A code is accepted once per time step and authenticator (that is the point), and
//! the server accepts the steps `now - 1 ..= now + 1`, oldest first: an account can
//! pass at most three code steps per 30-second period, then one more per period.
//! The client therefore enrols the accounts, waits for a fresh period, and spends the
//! three steps of each account in order (two in phase 2, one in phase 3): the
//! throughput measured is `3 × USERS` steps at most, within one period.
//!
//! # Why many client addresses
//!
//! Registrations and password attempts count per client address (20 a minute by
//! default). User `i` sends from its own loopback address `127.1.x.y` (Linux routes
//! all of `127.0.0.0/8` to the loopback interface), so each address makes five
//! password-limited requests per run and no limit is ever reached or weakened. The
//! server must listen on a loopback address; nothing here talks to anything else.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use secondfactor::secret::Secret;
use secondfactor::totp::{TotpKey, TotpPolicy};
use serde_json::{Value, json};

/// The most users: one loopback address each, `127.1.0.1` to `127.1.255.254`.
const MAX_USERS: usize = 254 * 256;
/// The password every load account has.
const PASSWORD: &str = "load-test-password";

fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "error: {e}\nusage: secondfactor-example-load URL [USERS] [CONCURRENCY] [MAX_SECS]"
            );
            return ExitCode::from(2);
        }
    };
    // One thread: the client must not take the server's CPU on a small machine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => Err(format!("cannot start the tokio runtime: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line.
struct Args {
    url: Arc<str>,
    users: usize,
    concurrency: usize,
    max_secs: u64,
}

impl Args {
    fn parse(args: Vec<String>) -> Result<Args, String> {
        let number = |i: usize, default: u64| -> Result<u64, String> {
            match args.get(i) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("{v:?} is not a positive whole number")),
            }
        };
        let url = args.first().ok_or("no URL")?.trim_end_matches('/');
        let host = url
            .strip_prefix("http://")
            .ok_or("the URL must be http://IP:PORT")?;
        match host.parse::<std::net::SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => {}
            _ => {
                return Err(format!(
                    "{url:?}: only a numeric loopback address is driven"
                ));
            }
        }
        let users = usize::try_from(number(1, 1000)?).map_err(|e| e.to_string())?;
        if users > MAX_USERS {
            return Err(format!("at most {MAX_USERS} users"));
        }
        Ok(Args {
            url: url.into(),
            users,
            concurrency: usize::try_from(number(2, 8)?).map_err(|e| e.to_string())?,
            max_secs: number(3, 30)?,
        })
    }
}

/// The loopback address user `i` sends from.
fn client_ip(i: usize) -> IpAddr {
    let [_, _, hi, lo] = u32::try_from(i / 254 * 256 + i % 254 + 1)
        .unwrap_or(0)
        .to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(127, 1, hi, lo))
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// One load account: its own HTTP client (and so its own address and connection),
/// its phone, the last step it spent, and its pending logins.
struct User {
    name: String,
    http: reqwest::Client,
    phone: Option<TotpKey>,
    last_step: u64,
    pending: Vec<String>,
}

/// A request's outcome: `Err` names the failure (`"401 invalid_code"`).
type Outcome = Result<(), String>;

/// An answer: status, JSON body, and the cookies it set (name, value).
struct Answer {
    status: StatusCode,
    json: Value,
    cookies: Vec<(String, String)>,
}

impl Answer {
    fn failure(&self) -> String {
        let code = self.json["error"].as_str().unwrap_or("?");
        format!("{} {code}", self.status.as_u16())
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn expect(self, status: StatusCode) -> Result<Answer, String> {
        if self.status == status {
            Ok(self)
        } else {
            Err(self.failure())
        }
    }
}

impl User {
    fn new(i: usize, run: u64) -> Result<User, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .local_address(client_ip(i))
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(User {
            name: format!("load{run}-{i}"),
            http,
            phone: None,
            last_step: 0,
            pending: Vec::new(),
        })
    }

    async fn post(
        &self,
        url: &str,
        path: &str,
        cookie: Option<(&str, &str)>,
        body: Value,
    ) -> Result<Answer, String> {
        let mut req = self
            .http
            .post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some((name, value)) = cookie {
            req = req.header("cookie", format!("{name}={value}"));
        }
        let res = req.send().await.map_err(|e| format!("transport: {e}"))?;
        let status = res.status();
        let cookies = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next()?.split_once('='))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let bytes = res.bytes().await.map_err(|e| format!("transport: {e}"))?;
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            json,
            cookies,
        })
    }

    async fn login(&self, url: &str) -> Result<Answer, String> {
        let body = json!({ "username": self.name, "password": PASSWORD });
        self.post(url, "/api/login", None, body).await
    }

    /// The oldest step this account has not spent that the server surely still
    /// accepts: in `now - 1 ..= now + 1`, but not `now - 1` in the last second of a
    /// period (the request could arrive in the next one). `None` when all are spent.
    fn next_step(&self, now: Duration) -> Option<u64> {
        let policy = TotpPolicy::default();
        let step = policy.step_at(now.as_secs());
        let into = now.as_secs() % policy.period();
        let oldest = if into + 1 >= policy.period() {
            step
        } else {
            step - 1
        };
        let s = oldest.max(self.last_step + 1);
        (s <= step + 1).then_some(s)
    }

    /// A code for the next unspent step, with the step.
    fn code(&self) -> Result<(String, u64), String> {
        let phone = self.phone.as_ref().ok_or("not enrolled")?;
        let step = self.next_step(unix_now()).ok_or("no unspent step")?;
        let policy = phone.policy();
        let code = phone.code_at_step(step);
        Ok((format!("{code:0w$}", w = policy.digits() as usize), step))
    }

    /// Registers, logs in, sets up TOTP and confirms it.
    async fn enrol(&mut self, url: &str) -> Outcome {
        let body = json!({ "username": self.name, "password": PASSWORD });
        self.post(url, "/api/register", None, body)
            .await?
            .expect(StatusCode::CREATED)?;
        let login = self.login(url).await?.expect(StatusCode::OK)?;
        let session = login.cookie("sf_session").ok_or("no session")?.to_owned();
        let cookie = Some(("sf_session", session.as_str()));
        let setup = self
            .post(url, "/api/2fa/setup", cookie, json!({}))
            .await?
            .expect(StatusCode::OK)?;
        let secret = setup.json["secret"].as_str().ok_or("no secret")?;
        let secret = Secret::from_base32(secret).map_err(|e| format!("secret: {e}"))?;
        self.phone = Some(TotpKey::new(&TotpPolicy::default(), secret.expose_bytes()));
        let (code, step) = self.code()?;
        self.post(
            url,
            "/api/2fa/setup/confirm",
            cookie,
            json!({ "code": code }),
        )
        .await?
        .expect(StatusCode::OK)?;
        self.last_step = step;
        Ok(())
    }

    /// The password step, keeping the pending login.
    async fn password_step(&mut self, url: &str) -> Outcome {
        let a = self.login(url).await?.expect(StatusCode::OK)?;
        if a.json["status"] != "second_factor_required" {
            return Err(format!("status {}", a.json["status"]));
        }
        let pending = a.cookie("sf_pending").ok_or("no sf_pending")?;
        self.pending.push(pending.to_owned());
        Ok(())
    }

    /// The code step on the oldest pending login.
    async fn code_step(&mut self, url: &str) -> Outcome {
        if self.pending.is_empty() {
            return Err("no pending login".to_owned());
        }
        let pending = self.pending.remove(0);
        let (code, step) = self.code()?;
        let a = self
            .post(
                url,
                "/api/login/second-factor",
                Some(("sf_pending", &pending)),
                json!({ "code": code }),
            )
            .await?
            .expect(StatusCode::OK)?;
        if a.json["status"] != "authenticated" || a.cookie("sf_session").is_none() {
            return Err(format!("status {}", a.json["status"]));
        }
        self.last_step = step;
        Ok(())
    }
}

/// What one phase measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Enrol,
    PasswordStep,
    CodeStep,
    FullLogin,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Enrol => "enrolment (4 requests)",
            Phase::PasswordStep => "password step",
            Phase::CodeStep => "second-factor step",
            Phase::FullLogin => "full login (2 requests)",
        }
    }

    async fn once(self, user: &mut User, url: &str) -> Outcome {
        match self {
            Phase::Enrol => user.enrol(url).await,
            Phase::PasswordStep => user.password_step(url).await,
            Phase::CodeStep => user.code_step(url).await,
            Phase::FullLogin => {
                user.password_step(url).await?;
                user.code_step(url).await
            }
        }
    }
}

/// Successes with their latencies, and failures by name.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failures: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (k, n) in other.failures {
            *self.failures.entry(k).or_default() += n;
        }
    }

    fn percentile(sorted: &[Duration], p: usize) -> Duration {
        match sorted.len() {
            0 => Duration::ZERO,
            n => sorted[(n * p / 100).min(n - 1)],
        }
    }

    fn report(mut self, phase: Phase, elapsed: Duration) {
        self.latencies.sort_unstable();
        let ok = self.latencies.len();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:<26} {ok:>7} ok in {:>6.2} s = {:>8.1}/s   p50 {:>6.2} ms   p99 {:>6.2} ms",
            phase.name(),
            elapsed.as_secs_f64(),
            ok as f64 / elapsed.as_secs_f64().max(1e-9),
            ms(Self::percentile(&self.latencies, 50)),
            ms(Self::percentile(&self.latencies, 99)),
        );
        for (what, n) in &self.failures {
            println!("{:<26} {n:>7} failed: {what}", "");
        }
    }
}

/// Runs `phase` `rounds` times per user, at most until `deadline`. Each of the
/// `workers` owns its users, so one account's requests never overlap (its steps
/// must arrive in order).
async fn phase(
    phase: Phase,
    url: &Arc<str>,
    workers: Vec<Vec<User>>,
    rounds: usize,
    limit: Duration,
) -> Vec<Vec<User>> {
    let start = Instant::now();
    let deadline = start + limit;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut users| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                'rounds: for _ in 0..rounds {
                    for user in users.iter_mut() {
                        if Instant::now() >= deadline {
                            *tally
                                .failures
                                .entry("not started: time limit".to_owned())
                                .or_default() += 1;
                            break 'rounds;
                        }
                        let t = Instant::now();
                        match phase.once(user, &url).await {
                            Ok(()) => tally.latencies.push(t.elapsed()),
                            Err(e) => *tally.failures.entry(e).or_default() += 1,
                        }
                    }
                }
                (users, tally)
            })
        })
        .collect();
    let mut total = Tally::default();
    let mut back = Vec::new();
    for task in tasks {
        match task.await {
            Ok((users, tally)) => {
                back.push(users);
                total.merge(tally);
            }
            Err(e) => eprintln!("error: a worker failed: {e}"),
        }
    }
    total.report(phase, start.elapsed());
    back
}

async fn run(args: Args) -> Result<(), String> {
    let run = unix_now().as_millis() as u64 % 1_000_000_000;
    let mut workers: Vec<Vec<User>> = (0..args.concurrency.min(args.users))
        .map(|_| Vec::new())
        .collect();
    let n = workers.len();
    for i in 0..args.users {
        workers[i % n].push(User::new(i, run)?);
    }
    let limit = Duration::from_secs(args.max_secs);
    println!(
        "{} users, concurrency {}, at most {} s per phase, against {}",
        args.users, n, args.max_secs, args.url
    );
    let mut workers = phase(Phase::Enrol, &args.url, workers, 1, limit).await;
    // Accounts whose enrolment failed or never started take no further part.
    for users in &mut workers {
        users.retain(|u| u.phone.is_some());
    }
    // Wait for a period in which every account has its three steps unspent.
    let period = TotpPolicy::default().period();
    let spent = workers
        .iter()
        .flatten()
        .map(|u| u.last_step)
        .max()
        .unwrap_or(0);
    let now = unix_now();
    let fresh = Duration::from_secs((spent + 2) * period) + Duration::from_millis(100);
    if fresh > now {
        let wait = fresh - now;
        println!(
            "waiting {:.1} s for a TOTP period with three unspent steps per account",
            wait.as_secs_f64()
        );
        tokio::time::sleep(wait).await;
    }
    let workers = phase(Phase::PasswordStep, &args.url, workers, 2, limit).await;
    let workers = phase(Phase::CodeStep, &args.url, workers, 2, limit).await;
    phase(Phase::FullLogin, &args.url, workers, 1, limit).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_has_its_own_loopback_address() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..MAX_USERS {
            let ip = client_ip(i);
            assert!(ip.is_loopback(), "{ip}");
            let IpAddr::V4(v4) = ip else { unreachable!() };
            let [a, b, _, lo] = v4.octets();
            assert_eq!((a, b), (127, 1));
            assert!((1..=254).contains(&lo), "{ip}");
            assert!(seen.insert(ip), "{ip} twice");
        }
    }

    #[test]
    fn only_loopback_servers_are_driven() {
        let parse = |url: &str| Args::parse(vec![url.to_owned()]);
        assert!(parse("http://127.0.0.1:3000").is_ok());
        assert!(parse("http://[::1]:3000/").is_ok());
        for bad in [
            "http://10.0.0.1:3000",
            "http://localhost:3000",
            "https://127.0.0.1:3000",
            "127.0.0.1:3000",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let args = Args::parse(vec!["http://127.0.0.1:1".into(), "30".into(), "4".into()]).unwrap();
        assert_eq!((args.users, args.concurrency, args.max_secs), (30, 4, 30));
        assert!(Args::parse(vec!["http://127.0.0.1:1".into(), "0".into()]).is_err());
    }

    #[test]
    fn steps_are_spent_oldest_first_and_at_most_three() {
        let mut u = User::new(0, 0).unwrap();
        let step = 56_666_666;
        let at = |secs_into: u64| Duration::from_secs(step * 30 + secs_into);
        assert_eq!(u.next_step(at(0)), Some(step - 1));
        assert_eq!(u.next_step(at(28)), Some(step - 1));
        // In the last second of a period, `now - 1` may be gone when the code arrives.
        assert_eq!(u.next_step(at(29)), Some(step));
        u.last_step = step - 1;
        assert_eq!(u.next_step(at(5)), Some(step));
        u.last_step = step;
        assert_eq!(u.next_step(at(5)), Some(step + 1));
        u.last_step = step + 1;
        assert_eq!(u.next_step(at(5)), None);
        // The next period frees one more.
        assert_eq!(u.next_step(at(30)), Some(step + 2));
    }
}
