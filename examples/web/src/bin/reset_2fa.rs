//! The operator's way back for a user who lost every second factor (phone and backup
//! codes): turns two-factor authentication off for one account of the example
//! servers' store, deletes its authenticators and backup codes, revokes its trusted
//! devices, ends its sessions, and records who did it and why in the account's
//! security log (`two_factor_reset`). The user then logs in with the password alone
//! and sets 2FA up again.
//!
//! ```text
//! cargo run -p secondfactor-example-web --bin reset_2fa -- \
//!     --username NAME --operator WHO --reason WHY
//! ```
//!
//! It opens `DATABASE_URL` (and `REDIS_URL`, `SF_MASTER_KEY`) exactly as the servers
//! do; run it in the servers' working directory or with their environment. Add
//! `postgres` / `redis` to the features for those stores.
//!
//! **This bypasses the second factor. Prove the person's identity first, out of
//! band and at least as strongly as the second factor did:** for example a video
//! call checked against an ID document, or a request from the account's verified
//! e-mail address followed by a waiting period (days) during which the owner is
//! notified on every channel you have and can object. A password, a username, or a
//! support ticket that anyone could write is not proof: whoever talks the operator
//! into this owns the account. There is deliberately no HTTP endpoint for it.

use std::process::ExitCode;

use secondfactor::Service;
use secondfactor::flow::Inline;
use secondfactor::store::Store;

use secondfactor_example_web::config::Config;
use secondfactor_example_web::setup::{BoxError, Server};

const USAGE: &str = "usage: reset_2fa --username NAME --operator WHO --reason WHY";

/// What to reset, from the command line.
struct Reset {
    username: String,
    operator: String,
    reason: String,
}

impl Reset {
    fn from_args(args: impl IntoIterator<Item = String>) -> Result<Reset, String> {
        let (mut username, mut operator, mut reason) = (None, None, None);
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg, None),
            };
            let slot = match flag.as_str() {
                "--username" => &mut username,
                "--operator" => &mut operator,
                "--reason" => &mut reason,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument {other:?} ({USAGE})")),
            };
            let value = inline
                .or_else(|| args.next())
                .ok_or(format!("{flag} needs a value ({USAGE})"))?;
            *slot = Some(value);
        }
        let need = |v: Option<String>, flag: &str| {
            v.filter(|v| !v.trim().is_empty())
                .ok_or(format!("{flag} is required ({USAGE})"))
        };
        Ok(Reset {
            username: need(username, "--username")?,
            operator: need(operator, "--operator")?,
            reason: need(reason, "--reason")?,
        })
    }
}

impl Server for Reset {
    // A one-shot tool: the servers purge.
    const PURGES: bool = false;

    async fn serve<S: Store>(self, service: Service<S>, _config: Config) -> Result<(), BoxError> {
        let name = self.username.trim().to_ascii_lowercase();
        let user = service
            .find_user(&name)
            .await?
            .ok_or(format!("no account named {name:?}"))?;
        let was_on = service.status(&user).await?.enabled;
        service
            .reset_two_factor(&user, &self.operator, &self.reason)
            .await?;
        println!(
            "reset two-factor authentication of {name:?} (it was {}): authenticators and \
             backup codes deleted, trusted devices revoked, sessions ended; the security log \
             records operator {:?} and reason {:?}. The user now logs in with the password alone.",
            if was_on { "on" } else { "already off" },
            self.operator.trim(),
            self.reason.trim(),
        );
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match Reset::from_args(std::env::args().skip(1)) {
        Ok(reset) => secondfactor_example_web::setup::run(Inline, reset).await,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
