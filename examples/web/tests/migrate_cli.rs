//! The `migrate_pyotp` tool as an operator runs it: on the pyotp fixture
//! database into a fresh SQLite `DATABASE_URL`, twice (imported, then skipped),
//! and with `--dry-run` (nothing written); then a migrated user logs in through the
//! library against that database, with the example servers' key file.

use std::path::Path;
use std::process::{Command, Output};

use secondfactor::clock::ManualClock;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{AccountStore, SqliteStore};
use secondfactor::{LoginOutcome, LoginRequest, SecondFactor, Service};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/pyotp/tutorial.sqlite"
);

fn migrate(database_url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_migrate_pyotp"))
        .arg(FIXTURE)
        .args(extra)
        .env("DATABASE_URL", database_url)
        .env_remove("SF_MASTER_KEY")
        .output()
        .expect("cargo runs")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test]
async fn migrate_twice_dry_run_then_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("target.db");
    let url = format!("sqlite://{}", db.display());

    // Dry run first: every row checked, nothing written (not even the file).
    let dry = stdout(&migrate(&url, &["--dry-run"]));
    assert!(dry.contains("would import alice (2FA on)"), "{dry}");
    assert!(
        dry.contains("skipped  frank smith: invalid username"),
        "{dry}"
    );
    assert!(
        dry.contains("total: 6 users, 5 would be imported, 1 skipped"),
        "{dry}"
    );
    assert!(!db.exists(), "a dry run must not create the target");

    let first = stdout(&migrate(&url, &[]));
    assert!(first.contains("imported alice (2FA on)"), "{first}");
    assert!(
        first.contains("imported carol.smith@example.com (2FA off)"),
        "{first}"
    );
    assert!(
        first.contains("total: 6 users, 5 imported, 1 skipped"),
        "{first}"
    );

    let second = stdout(&migrate(&url, &[]));
    assert!(
        second.contains("skipped  alice: already imported"),
        "{second}"
    );
    assert!(
        second.contains("total: 6 users, 0 imported, 6 skipped"),
        "{second}"
    );

    // A dry run against the migrated database writes nothing and sees them all.
    let dry = stdout(&migrate(&url, &["--dry-run"]));
    assert!(
        dry.contains("total: 6 users, 0 would be imported, 6 skipped"),
        "{dry}"
    );

    // A fatal error: one line, non-zero status.
    let bad = Command::new(env!("CARGO_BIN_EXE_migrate_pyotp"))
        .arg(dir.path().join("missing.sqlite"))
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // alice logs in against that database, as the example servers would open it
    // (the development key file beside the database), with her old password and a
    // code computed by pyotp.
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/pyotp/users.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let alice = &fx["tutorial"][0];
    let (t, code) = (
        alice["codes"][0][0].as_u64().unwrap(),
        alice["codes"][0][1].as_str().unwrap(),
    );
    let key = std::fs::read_to_string(key_file(dir.path())).unwrap();
    let store = SqliteStore::connect(&url).await.unwrap();
    let service = Service::builder(
        store.clone(),
        KeyRing::new(1, SealingKey::from_base64(&key).unwrap()),
    )
    .clock(ManualClock::new(t))
    .build()
    .unwrap();
    let password = alice["password"].as_str().unwrap();
    let LoginOutcome::SecondFactorRequired(ticket) = service
        .login(LoginRequest::new("alice", password))
        .await
        .unwrap()
    else {
        panic!("alice has 2FA on")
    };
    let auth = service
        .second_factor(ticket.token.expose(), SecondFactor::Totp(code))
        .await
        .unwrap();
    assert_eq!(auth.username(), "alice");
    let account = store.account_by_username("alice").await.unwrap().unwrap();
    assert!(account.password_hash.is_argon2id());
}

fn key_file(dir: &Path) -> std::path::PathBuf {
    dir.join("secondfactor-dev.key")
}

/// Like the servers, `migrate_pyotp` refuses a development key file that its group
/// or others may read, in one line, and writes nothing.
#[cfg(unix)]
#[test]
fn a_key_file_open_to_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("secondfactor-dev.key");
    std::fs::write(
        &key_file,
        format!("{}\n", &*SealingKey::generate().to_base64()),
    )
    .unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let db = dir.path().join("target.db");
    let url = format!("sqlite://{}", db.display());
    let in_dir = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_migrate_pyotp"))
            .current_dir(dir.path())
            .arg(FIXTURE)
            .env("DATABASE_URL", url)
            .env_remove("SF_MASTER_KEY")
            .output()
            .unwrap()
    };
    let out = in_dir(&url);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("open to group or others"), "{err}");
    assert!(!db.exists(), "nothing written");
    // Owner-only: accepted.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = stdout(&in_dir(&url));
    assert!(
        out.contains("total: 6 users, 5 imported, 1 skipped"),
        "{out}"
    );
}
