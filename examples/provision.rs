//! Make a TOTP secret and its QR code, or check a code against a secret.
//!
//! ```text
//! cargo run --example provision -- [--issuer I] [--account A] [--png PATH]
//! cargo run --example provision -- --secret BASE32 --verify CODE
//! ```
//!
//! The first form prints a new secret, its `otpauth://` URI alone on a line, and a QR
//! code for the terminal; with `--png` it also writes the QR code as a PNG. Scan it
//! with an authenticator app, then check a code with the second form, which exits 0
//! when the code is valid now (±1 step) and 1 when it is not.

use std::io::Write;
use std::process::ExitCode;

use secondfactor::clock::{Clock, SystemClock};
use secondfactor::provisioning::{OtpAuthUri, QrCode};
use secondfactor::secret::Secret;
use secondfactor::totp::{TotpKey, TotpPolicy};

const USAGE: &str = "usage:
  provision [--issuer ISSUER] [--account ACCOUNT] [--png PATH]
  provision --secret BASE32 --verify CODE";

#[derive(Default)]
struct Args {
    issuer: Option<String>,
    account: Option<String>,
    png: Option<String>,
    secret: Option<String>,
    verify: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--issuer" => &mut args.issuer,
            "--account" => &mut args.account,
            "--png" => &mut args.png,
            "--secret" => &mut args.secret,
            "--verify" => &mut args.verify,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        };
        *slot = Some(it.next().ok_or(format!("{flag} needs a value"))?);
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("error: {msg}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match (&args.secret, &args.verify) {
        (Some(secret), Some(code)) => verify(secret, code),
        (None, None) => provision(&args).map(|()| ExitCode::SUCCESS),
        _ => Err("--secret and --verify go together".to_owned()),
    };
    result.unwrap_or_else(|msg| {
        eprintln!("error: {msg}");
        ExitCode::from(2)
    })
}

fn provision(args: &Args) -> Result<(), String> {
    let issuer = args.issuer.as_deref().unwrap_or("secondfactor demo");
    let account = args.account.as_deref().unwrap_or("alice@example.com");
    let secret = Secret::generate();
    let b32 = secret.to_base32();
    let uri = OtpAuthUri::new(issuer, account, secret, TotpPolicy::default())
        .map_err(|e| e.to_string())?;
    let text = uri.to_uri();
    let qr = QrCode::new(&text).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| format!("writing to stdout: {e}");
    writeln!(out, "secret: {}", &*b32).map_err(io)?;
    writeln!(out, "{}", &*text).map_err(io)?;
    writeln!(out, "{}", qr.terminal()).map_err(io)?;
    if let Some(path) = &args.png {
        let png = qr.png().map_err(|e| e.to_string())?;
        std::fs::write(path, &png).map_err(|e| format!("writing {path}: {e}"))?;
        writeln!(out, "wrote {path} ({} bytes)", png.len()).map_err(io)?;
    }
    Ok(())
}

fn verify(secret: &str, code: &str) -> Result<ExitCode, String> {
    let policy = TotpPolicy::default();
    let secret = Secret::from_base32(secret).map_err(|e| e.to_string())?;
    let code = policy.normalize_code(code).map_err(|e| e.to_string())?;
    let key = TotpKey::new(&policy, secret.expose_bytes());
    match key.verify(&code, SystemClock.now()) {
        Some(step) => {
            println!("valid (time step {step})");
            Ok(ExitCode::SUCCESS)
        }
        None => {
            println!("not valid now");
            Ok(ExitCode::from(1))
        }
    }
}
