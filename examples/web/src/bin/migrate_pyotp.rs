//! Moves the users of a Flask + pyotp app (or any app with the same shape) into
//! this crate's store, so that they log in with the same password and the same
//! authenticator app.
//!
//! ```text
//! DATABASE_URL=sqlite://secondfactor-demo.db \
//!   cargo run -p secondfactor-example-web --bin migrate_pyotp -- old-app.sqlite [--dry-run]
//! ```
//!
//! The source is an SQLite database; by default the tutorial's layout: table
//! `users` with `username`, `password` (Flask-Bcrypt), `secret_token` and
//! `is_two_factor_authentication_enabled`. Flags rename them:
//! `--table`, `--username-column`, `--password-column`, `--secret-column`,
//! `--enabled-column` (`--enabled-column ''`: 2FA is on whenever the secret is set),
//! `--password-kind bcrypt|clear|auto` (auto: bcrypt when it looks like one).
//!
//! The target is the example servers' `DATABASE_URL` (`sqlite://…` or
//! `postgres://…`) and their sealing key: `SF_MASTER_KEY`, else the development key
//! file beside the SQLite database (created if missing, as the servers do).
//!
//! It prints one line per user (imported, or skipped with the reason) and the
//! totals. Running it again imports nobody twice: already imported users are
//! skipped. `--dry-run` checks every row (names, hashes, secrets) without writing:
//! it only reads the target to tell who is already there, and does not open a
//! target SQLite file that does not exist. A fatal error prints one line and exits
//! with status 1.

use std::process::ExitCode;

use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{MemoryStore, Store};
use secondfactor::{Error, ImportedAccount, ImportedTotp, LegacyPassword, Service};
use secondfactor_example_web::config::Database;
use secondfactor_example_web::keyfile;
use sqlx::Row as _;

/// The development key file the example servers use.
const DEV_KEY_FILE: &str = "secondfactor-dev.key";

struct Options {
    source: String,
    table: String,
    username: String,
    password: String,
    secret: String,
    enabled: String,
    password_kind: String,
    dry_run: bool,
}

struct Row {
    username: String,
    password: String,
    secret: Option<String>,
    enabled: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        source: String::new(),
        table: "users".into(),
        username: "username".into(),
        password: "password".into(),
        secret: "secret_token".into(),
        enabled: "is_two_factor_authentication_enabled".into(),
        password_kind: "auto".into(),
        dry_run: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--dry-run" => o.dry_run = true,
            "--table" => o.table = value()?,
            "--username-column" => o.username = value()?,
            "--password-column" => o.password = value()?,
            "--secret-column" => o.secret = value()?,
            "--enabled-column" => o.enabled = value()?,
            "--password-kind" => o.password_kind = value()?,
            s if s.starts_with("--") => return Err(format!("unknown flag {s}")),
            s if o.source.is_empty() => o.source = s.to_owned(),
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    if o.source.is_empty() {
        return Err(
            "usage: migrate_pyotp SOURCE.sqlite [--dry-run] [--table T] [--username-column C] \
             [--password-column C] [--password-kind bcrypt|clear|auto] [--secret-column C] \
             [--enabled-column C|'']"
                .into(),
        );
    }
    if !["bcrypt", "clear", "auto"].contains(&o.password_kind.as_str()) {
        return Err("--password-kind must be bcrypt, clear or auto".into());
    }
    for name in [&o.table, &o.username, &o.password, &o.secret, &o.enabled] {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("{name:?} is not a plain table or column name"));
        }
    }
    Ok(o)
}

async fn read_source(o: &Options) -> Result<Vec<Row>, String> {
    let url = format!("sqlite://{}?mode=ro", o.source);
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .map_err(|e| format!("source {}: {e}", o.source))?;
    let enabled = if o.enabled.is_empty() {
        "NULL".to_owned()
    } else {
        format!("\"{}\"", o.enabled)
    };
    let sql = format!(
        "SELECT \"{}\", \"{}\", \"{}\", {enabled} FROM \"{}\" ORDER BY rowid",
        o.username, o.password, o.secret, o.table
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("source {}: {e}", o.source))?;
    rows.iter()
        .map(|r| {
            let secret: Option<String> = r.try_get(2).map_err(|e| e.to_string())?;
            let secret = secret.filter(|s| !s.trim().is_empty());
            let enabled = if o.enabled.is_empty() {
                secret.is_some()
            } else {
                r.try_get::<Option<i64>, _>(3)
                    .map_err(|e| e.to_string())?
                    .is_some_and(|v| v != 0)
            };
            Ok(Row {
                username: r.try_get(0).map_err(|e| e.to_string())?,
                password: r.try_get(1).map_err(|e| e.to_string())?,
                secret,
                enabled,
            })
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("source {}: {e}", o.source))
}

fn master_key(database: &Database, dry_run: bool) -> Result<SealingKey, String> {
    if let Ok(b64) = std::env::var("SF_MASTER_KEY")
        && !b64.trim().is_empty()
    {
        return SealingKey::from_base64(&b64).map_err(|e| format!("SF_MASTER_KEY: {e}"));
    }
    let path = database.key_dir().join(DEV_KEY_FILE);
    if path.exists() {
        // The servers' rule: a key file open to group or others is refused.
        keyfile::owner_only(&path)?;
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => SealingKey::from_base64(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(_) if dry_run => Ok(SealingKey::generate()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SealingKey::generate();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            std::io::Write::write_all(&mut file, format!("{}\n", &*key.to_base64()).as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            eprintln!(
                "note: SF_MASTER_KEY is not set; secrets are sealed with the development key in {}",
                path.display()
            );
            Ok(key)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn password_of<'a>(o: &Options, row: &'a Row) -> LegacyPassword<'a> {
    let looks_bcrypt = row.password.starts_with("$2");
    match o.password_kind.as_str() {
        "bcrypt" => LegacyPassword::Bcrypt(&row.password),
        "clear" => LegacyPassword::Clear(&row.password),
        _ if looks_bcrypt => LegacyPassword::Bcrypt(&row.password),
        _ => LegacyPassword::Clear(&row.password),
    }
}

/// Imports (or, on a dry run, checks) every row; returns (imported, skipped).
async fn migrate<S: Store>(
    o: &Options,
    rows: &[Row],
    target: Option<&S>,
    service: &Service<impl Store>,
) -> Result<(u32, u32), String> {
    let (mut imported, mut skipped) = (0, 0);
    let verb = if o.dry_run {
        "would import"
    } else {
        "imported"
    };
    for row in rows {
        let name = &row.username;
        if o.dry_run
            && let Some(target) = target
        {
            let taken = target
                .account_by_username(&name.to_ascii_lowercase())
                .await
                .map_err(|e| format!("target: {e}"))?;
            if taken.is_some() {
                println!("skipped  {name}: already imported");
                skipped += 1;
                continue;
            }
        }
        let account = ImportedAccount {
            username: name,
            password: password_of(o, row),
            totp: row.secret.as_deref().map(ImportedTotp::Base32),
            two_factor_enabled: row.enabled,
        };
        match service.import_account(account).await {
            Ok(out) => {
                imported += 1;
                let twofa = match (&out.authenticator_id, out.weak_secret) {
                    (None, _) => "2FA off",
                    (Some(_), false) => "2FA on",
                    (Some(_), true) => "2FA on, weak secret: invite to re-enroll",
                };
                let resumed = if out.resumed {
                    ", completed an earlier run"
                } else {
                    ""
                };
                println!("{verb} {name} ({twofa}{resumed})");
            }
            Err(Error::UsernameTaken) => {
                skipped += 1;
                println!("skipped  {name}: already imported (username taken)");
            }
            Err(e @ Error::InvalidInput { .. }) => {
                skipped += 1;
                println!("skipped  {name}: {e}");
            }
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    Ok((imported, skipped))
}

async fn run_with<S: Store>(
    o: &Options,
    rows: &[Row],
    store: S,
    keys: KeyRing,
) -> Result<(u32, u32), String> {
    if o.dry_run {
        // Check every row against a throwaway store; read the target only.
        let scratch = Service::builder(MemoryStore::new(), keys)
            .build()
            .map_err(|e| e.to_string())?;
        migrate(o, rows, Some(&store), &scratch).await
    } else {
        let service = Service::builder(store, keys)
            .build()
            .map_err(|e| e.to_string())?;
        migrate::<S>(o, rows, None, &service).await
    }
}

async fn run() -> Result<(), String> {
    let o = parse_args()?;
    let rows = read_source(&o).await?;
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://secondfactor-demo.db".to_owned());
    let database = Database::parse(&url)?;
    let keys = KeyRing::new(1, master_key(&database, o.dry_run)?);
    let (imported, skipped) = match &database {
        Database::Memory => return Err("DATABASE_URL=memory: would keep nobody".into()),
        Database::Sqlite { path, .. } if o.dry_run && !path.exists() => {
            run_with(&o, &rows, MemoryStore::new(), keys).await?
        }
        Database::Sqlite { url, path } => {
            let store = secondfactor::store::SqliteStore::connect(url)
                .await
                .map_err(|e| format!("DATABASE_URL ({}): {e}", path.display()))?;
            run_with(&o, &rows, store, keys).await?
        }
        #[cfg(feature = "postgres")]
        Database::Postgres(url) => {
            let store = secondfactor::store::PgStore::connect(url)
                .await
                .map_err(|e| format!("DATABASE_URL (PostgreSQL): {e}"))?;
            run_with(&o, &rows, store, keys).await?
        }
        #[cfg(not(feature = "postgres"))]
        Database::Postgres(_) => {
            return Err("DATABASE_URL is postgres://, but this build has no PostgreSQL store (feature `postgres` of secondfactor-example-web)".into());
        }
    };
    let what = if o.dry_run {
        "would be imported"
    } else {
        "imported"
    };
    println!(
        "total: {} users, {imported} {what}, {skipped} skipped",
        rows.len()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrate_pyotp: {e}");
            ExitCode::FAILURE
        }
    }
}
