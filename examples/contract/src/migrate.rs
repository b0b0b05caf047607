//! Migrated users log in over HTTP: the `migrate_pyotp` example moves the pyotp
//! fixture databases (`tests/fixtures/pyotp` of the library) into a fresh SQLite `DATABASE_URL`
//! sealed with a fresh `SF_MASTER_KEY`; then each example server (axum, actix) runs
//! on that database and key, and migrated users log in with their old password and a
//! code computed now from their fixture secret. The user with a 16-character
//! (80-bit) secret sees the invitation to set up their phone again.
use std::path::Path;
use std::process::{Command, Output};

use crate::client::{Client, Server, example_binary};
use secondfactor::secret::{SealingKey, Secret};
use secondfactor::totp::{TotpKey, TotpPolicy};
use serde_json::{Value, json};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyotp");

fn fixture_users() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/users.json")).unwrap())
        .unwrap()
}

/// Runs `migrate_pyotp` on fixture `source` into `database_url`.
fn migrate(dir: &Path, env: &[(&str, &str)], source: &str, flags: &[&str]) -> Output {
    let mut cmd = Command::new(example_binary("migrate_pyotp"));
    cmd.current_dir(dir)
        .arg(format!("{FIXTURES}/{source}"))
        .args(flags)
        .env_remove("DATABASE_URL")
        .env_remove("SF_MASTER_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("migrate_pyotp runs")
}

fn stdout_ok(out: &Output) -> String {
    assert!(out.status.success(), "migrate_pyotp failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the account's first authenticator is weak, by the JSON list, and the
/// account page (which invites weak ones to re-enroll).
async fn weak(c: &Client) -> (bool, String) {
    let list = c.get("/api/2fa/authenticators").await;
    assert_eq!(list.status, 200, "{}", list.text);
    let weak = list.json["authenticators"][0]["weak"]
        .as_bool()
        .unwrap_or_else(|| panic!("no weak flag: {}", list.text));
    let page = c.get("/account").await;
    assert_eq!(page.status, 200, "{}", page.text);
    (weak, page.text)
}

/// The code an authenticator app with the fixture's `secret` shows now.
fn code_now(secret: &str) -> String {
    let secret = Secret::from_imported_base32(secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    TotpKey::new(&TotpPolicy::default(), secret.expose_bytes()).generate(now)
}

/// Logs `username` in over the JSON API with the old password and a code from the
/// fixture secret now.
async fn log_in(c: &Client, username: &str, password: &str, secret: &str) {
    let r = c
        .post(
            "/api/login",
            json!({ "username": username, "password": password }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "second_factor_required", "{}", r.text);
    let r = c
        .post(
            "/api/login/second-factor",
            json!({ "code": code_now(secret) }),
        )
        .await;
    assert_eq!(r.status, 200, "{username}: {}", r.text);
    assert_eq!(r.json["status"], "authenticated");
}

/// Migrates both fixtures, then logs their users in on `example`.
pub async fn migrated_users_log_in(example: &str) {
    let fx = fixture_users();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("target.db").display());
    let key = SealingKey::generate().to_base64();
    let env = [("DATABASE_URL", url.as_str()), ("SF_MASTER_KEY", &*key)];

    let out = stdout_ok(&migrate(dir.path(), &env, "tutorial.sqlite", &[]));
    assert!(out.contains("imported alice (2FA on)"), "{out}");
    let out = stdout_ok(&migrate(
        dir.path(),
        &env,
        "simple.sqlite",
        &[
            "--table",
            "accounts",
            "--secret-column",
            "totp_secret",
            "--enabled-column",
            "",
        ],
    ));
    assert!(
        out.contains("imported grace (2FA on, weak secret: invite to re-enroll)"),
        "{out}"
    );
    // No development key file: the key came from SF_MASTER_KEY.
    assert!(!dir.path().join("secondfactor-dev.key").exists());

    let server = Server::start_in(example, dir.path(), &env);

    // alice: bcrypt password from Flask-Bcrypt, a 32-character secret.
    let alice = &fx["tutorial"][0];
    let c = server.client();
    log_in(
        &c,
        "alice",
        alice["password"].as_str().unwrap(),
        alice["secret"].as_str().unwrap(),
    )
    .await;
    let me = c.me().await;
    assert_eq!(me.json["username"], "alice", "{}", me.text);
    assert_eq!(me.json["two_factor_enabled"], true);
    let (is_weak, page) = weak(&c).await;
    assert!(!is_weak);
    assert!(!page.contains("weak-authenticator"), "{page}");

    // grace: clear password, a 16-character (80-bit) secret.
    let grace = &fx["simple"][0];
    let secret = grace["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 16);
    let c = server.client();
    log_in(&c, "grace", grace["password"].as_str().unwrap(), secret).await;
    let list = c.get("/api/2fa/authenticators").await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(
        list.json["authenticators"][0]["weak"], true,
        "{}",
        list.text
    );
    let page = c.get("/account").await;
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("class=\"warning weak-authenticator\""),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("set up your phone again"),
        "{}",
        page.text
    );
}
