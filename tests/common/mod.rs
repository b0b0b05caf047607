//! Black-box helpers for the HTTP contract suite: build an example server once, run it
//! as a real process on a free port in its own working directory, and talk to it with
//! reqwest.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderMap, SET_COOKIE};
use secondfactor::secret::Secret;
use secondfactor::totp::{TotpKey, TotpPolicy};
use serde_json::{Value, json};

pub const PW: &str = "correct horse battery";

/// The crate features this test binary was built with, passed on to the example
/// build so that both use the same build of the library.
fn features() -> Vec<&'static str> {
    let mut f = Vec::new();
    if cfg!(feature = "qr-png") {
        f.push("qr-png");
    }
    if cfg!(feature = "conformance") {
        f.push("conformance");
    }
    if cfg!(feature = "tokio") {
        f.push("tokio");
    }
    if cfg!(feature = "redis") {
        f.push("redis");
    }
    if cfg!(feature = "sqlite") {
        f.push("sqlite");
    }
    if cfg!(feature = "postgres") {
        f.push("postgres");
    }
    if cfg!(feature = "webauthn") {
        f.push("webauthn");
    }
    f
}

/// Builds `examples/<name>` (once per test binary) and returns the executable.
pub fn example_binary(name: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    // This test runs from <target>/<profile>/deps/.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--example",
            name,
            "--message-format=json-render-diagnostics",
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .args(["--no-default-features", "--features", &features().join(",")])
        .stderr(Stdio::inherit());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("cargo runs");
    assert!(out.status.success(), "cargo build --example {name} failed");
    let path = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .next_back()
        .unwrap_or_else(|| panic!("no executable for example {name}"));
    built.insert(name.to_owned(), path.clone());
    path
}

/// A fresh, empty working directory for one server.
pub fn work_dir(label: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("http_contract")
        .join(format!("{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running example server.
pub struct Server {
    pub example: String,
    pub base: String,
    pub dir: PathBuf,
    child: Child,
    stderr_path: PathBuf,
}

impl Server {
    /// Starts `example` in a fresh directory with `SF_ADDR=127.0.0.1:0` and `env`.
    pub fn start(example: &str, env: &[(&str, &str)]) -> Server {
        Server::start_in(example, &work_dir(example), env)
    }

    /// Starts `example` in `dir` (which may hold an earlier run's database and key).
    pub fn start_in(example: &str, dir: &Path, env: &[(&str, &str)]) -> Server {
        let (mut server, line) = Server::spawn(example, dir, env);
        let Some(line) = line else {
            let status = server.child.wait().ok();
            panic!(
                "{example} printed no `listening on` line (exit {status:?}); stderr:\n{}",
                server.stderr()
            )
        };
        let base = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_owned();
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        server.base = base;
        server
    }

    /// Starts `example` and waits for it to exit without listening (a start-up error).
    pub fn start_failing(example: &str, dir: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
        let (mut server, line) = Server::spawn(example, dir, env);
        assert!(
            line.is_none(),
            "{example} started although it should not: {line:?}"
        );
        let status = server.wait_exit(Duration::from_secs(20));
        (status, server.stderr())
    }

    fn spawn(example: &str, dir: &Path, env: &[(&str, &str)]) -> (Server, Option<String>) {
        let bin = example_binary(example);
        let stderr_path = dir.join(format!(
            "stderr-{}.log",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("SF_MASTER_KEY")
            .env_remove("SF_PUBLIC_URL")
            .env_remove("SF_TRUST_FORWARDED")
            .env_remove("SF_LOGIN_TTL_SECS")
            .env_remove("SF_SETUP_TTL_SECS")
            .env_remove("SF_REAUTH_TTL_SECS")
            .env("SF_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).ok();
        let server = Server {
            example: example.to_owned(),
            base: String::new(),
            dir: dir.to_path_buf(),
            child,
            stderr_path,
        };
        (server, line)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The origin browsers send for pages of this server.
    pub fn origin(&self) -> &str {
        &self.base
    }

    /// A client with its own cookie jar (a browser, say).
    pub fn client(&self) -> Client {
        Client::new(self)
    }

    /// A client whose connections come from `ip` (an address of 127.0.0.0/8: every
    /// one of them is local on Linux), so the server sees it as another peer.
    pub fn client_from(&self, ip: &str) -> Client {
        Client::bound(self, Some(ip.parse().expect("an IP address")))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
        self.wait_exit(Duration::from_secs(20))
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < limit, "server did not exit in {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- stderr of {} at {} ---\n{}",
                self.example,
                self.base,
                self.stderr()
            );
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    /// The `Set-Cookie` header for cookie `name`, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }

    /// The value set for cookie `name`.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        let c = self.set_cookie(name)?;
        let first = c.split(';').next()?;
        Some(first.split_once('=')?.1.to_owned())
    }

    /// The error code of a JSON error body, after checking the body's shape.
    pub fn error(&self) -> &str {
        assert_error_shape(self);
        self.json["error"].as_str().unwrap()
    }

    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }
}

/// Every error is `{"error": "<code>", "message": "<text>"}` (plus extra fields), JSON.
pub fn assert_error_shape(r: &Resp) {
    let ct = r
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "{} content type {ct:?}: {}",
        r.status,
        r.text
    );
    assert!(r.json["error"].is_string(), "no error code: {}", r.text);
    assert!(r.json["message"].is_string(), "no message: {}", r.text);
    assert!(!r.json["message"].as_str().unwrap().is_empty());
}

/// One browser-like client: its own cookie jar, no automatic redirects.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    /// `X-Forwarded-For` to send (servers started with `SF_TRUST_FORWARDED=1`).
    pub forwarded_for: Option<String>,
}

impl Client {
    pub fn new(server: &Server) -> Client {
        Client::bound(server, None)
    }

    /// A client whose connections come from `local` (else the default address).
    pub fn bound(server: &Server, local: Option<std::net::IpAddr>) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .local_address(local)
                .build()
                .unwrap(),
            base: server.base.clone(),
            forwarded_for: None,
        }
    }

    /// The same cookie jar, seen from another client address (`X-Forwarded-For`).
    pub fn via(mut self, ip: &str) -> Client {
        self.forwarded_for = Some(ip.to_owned());
        self
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(ip) = &self.forwarded_for {
            rb = rb.header("x-forwarded-for", ip);
        }
        rb
    }

    pub async fn send(rb: reqwest::RequestBuilder) -> Resp {
        let r = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("request reaches the server: {e:?}"));
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        Client::send(self.request(reqwest::Method::POST, path).json(&body)).await
    }

    pub async fn post_empty(&self, path: &str) -> Resp {
        Client::send(self.request(reqwest::Method::POST, path)).await
    }

    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Resp {
        // A server refuses an oversized body (413) without reading it and then closes
        // the connection; a pooled client could reuse that closing connection for the
        // next request and fail with IncompleteMessage. Such requests go on a
        // connection of their own.
        let oversized = body.len() > 64 * 1024;
        let mut rb = self.request(reqwest::Method::POST, path).body(body);
        if oversized {
            rb = rb.header(reqwest::header::CONNECTION, "close");
        }
        if let Some(ct) = content_type {
            rb = rb.header(CONTENT_TYPE, ct);
        }
        Client::send(rb).await
    }

    /// Posts an HTML form.
    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.post_raw(
            path,
            Some("application/x-www-form-urlencoded"),
            body.into_bytes(),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        Client::send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn register(&self, username: &str) -> Resp {
        self.post(
            "/api/register",
            json!({ "username": username, "password": PW }),
        )
        .await
    }

    pub async fn login(&self, username: &str) -> Resp {
        self.post(
            "/api/login",
            json!({ "username": username, "password": PW }),
        )
        .await
    }

    pub async fn code(&self, code: &str) -> Resp {
        self.post("/api/login/second-factor", json!({ "code": code }))
            .await
    }

    pub async fn me(&self) -> Resp {
        self.get("/api/me").await
    }
}

/// Percent-encodes a form value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The user's phone: computes codes from the base32 secret shown at setup.
pub struct Phone {
    key: TotpKey,
}

impl Phone {
    pub fn new(secret_base32: &str) -> Phone {
        let secret = Secret::from_base32(secret_base32).unwrap();
        Phone {
            key: TotpKey::new(&TotpPolicy::default(), secret.expose_bytes()),
        }
    }

    pub fn step_now() -> u64 {
        TotpPolicy::default().step_at(now())
    }

    pub fn code_at_step(&self, step: u64) -> String {
        self.key.generate(step * TotpPolicy::default().period())
    }
}

/// An account with 2FA on, logged in on `client`.
pub struct Enrolled {
    pub client: Client,
    pub username: String,
    pub phone: Phone,
    pub backup_codes: Vec<String>,
    /// The time step whose code confirmed the setup (used, so refused from now on).
    pub confirm_step: u64,
}

/// Registers `username`, logs in, sets up and confirms 2FA.
pub async fn enrolled(client: Client, username: &str) -> Enrolled {
    assert_eq!(client.register(username).await.status, 201);
    let r = client.login(username).await;
    assert_eq!(r.json["status"], "authenticated", "{}", r.text);
    let setup = client.post_empty("/api/2fa/setup").await;
    assert_eq!(setup.status, 200, "{}", setup.text);
    let phone = Phone::new(setup.json["secret"].as_str().unwrap());
    let step = Phone::step_now();
    let r = client
        .post(
            "/api/2fa/setup/confirm",
            json!({ "code": phone.code_at_step(step) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let backup_codes = r.json["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Enrolled {
        client,
        username: username.to_owned(),
        phone,
        backup_codes,
        confirm_step: step,
    }
}

/// `REDIS_URL`, or `None` (with a note) to skip; with `CI=true` a missing variable fails.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but REDIS_URL is not set ({test})"
            );
            eprintln!("note: skipping {test}: set REDIS_URL to run it");
            None
        }
    }
}

/// `DATABASE_URL` if it is `postgres://`, or `None` (with a note) to skip; with
/// `CI=true` a missing variable fails.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but DATABASE_URL is not a postgres:// URL ({test})"
            );
            eprintln!("note: skipping {test}: set DATABASE_URL=postgres://… to run it");
            None
        }
    }
}

/// A name no earlier run used (shared databases keep their rows).
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// A TCP proxy that can be cut (every connection dropped, the port closed) and
/// restored on the same port: a store outage on demand.
pub struct TcpProxy {
    pub port: u16,
    target: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TcpProxy {
    pub async fn start(target: &str) -> TcpProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = TcpProxy {
            port,
            target: target.to_owned(),
            task: None,
        };
        proxy.task = Some(tokio::spawn(Self::run(listener, proxy.target.clone())));
        proxy
    }

    async fn run(listener: tokio::net::TcpListener, target: String) {
        // Dropping this set (when the task is aborted) aborts every connection.
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    }

    /// Drops every connection and closes the port.
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens on the same port again.
    pub async fn restore(&mut self) {
        let start = Instant::now();
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(start.elapsed() < Duration::from_secs(10), "rebind: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.task = Some(tokio::spawn(Self::run(listener, self.target.clone())));
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `url` with its `host:port` replaced (credentials and path kept).
pub fn redirect_url(url: &str, host_port: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (creds, target) = match authority.rsplit_once('@') {
        Some((c, t)) => (format!("{c}@"), t.to_owned()),
        None => (String::new(), authority.to_owned()),
    };
    let target = if target.contains(':') {
        target
    } else {
        format!("{target}:6379")
    };
    (format!("{scheme}://{creds}{host_port}{path}"), target)
}
