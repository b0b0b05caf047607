//! Importing accounts made by a Flask + pyotp app (fixtures from
//! `scripts/make_pyotp_fixtures.py`): the old password and codes computed by pyotp
//! (and by `oathtool`, when installed) log in, the hash becomes argon2id, replay
//! protection holds from the first login, weak secrets are reported.

use std::process::Command;

use proptest::prelude::*;
use secondfactor::clock::ManualClock;
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{AccountStore, MemoryStore};
use secondfactor::{
    ImportedAccount, ImportedTotp, LegacyPassword, LoginOutcome, LoginRequest, SecondFactor,
    Service,
};
use serde_json::Value;

fn fixtures() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pyotp/users.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn service(clock: &ManualClock) -> (Service<MemoryStore>, MemoryStore) {
    let store = MemoryStore::new();
    let service = Service::builder(store.clone(), KeyRing::new(1, SealingKey::generate()))
        .clock(clock.clone())
        .password_hasher(PasswordHasher::new(1024, 1, 1).unwrap())
        .build()
        .unwrap();
    (service, store)
}

fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_@".contains(&b))
}

/// Logs in with the password, then `code`; returns the error code on failure.
async fn login(
    service: &Service<MemoryStore>,
    username: &str,
    password: &str,
    code: &str,
) -> Result<(), &'static str> {
    match service
        .login(LoginRequest::new(username, password))
        .await
        .map_err(|e| e.code())?
    {
        LoginOutcome::Authenticated(_) => Ok(()),
        LoginOutcome::SecondFactorRequired(ticket) => service
            .second_factor(ticket.token.expose(), SecondFactor::Totp(code))
            .await
            .map(|_| ())
            .map_err(|e| e.code()),
        _ => unreachable!("the password step has two outcomes today"),
    }
}

#[tokio::test]
async fn tutorial_users_log_in_with_old_password_and_pyotp_codes() {
    let fx = fixtures();
    for (i, user) in fx["tutorial"].as_array().unwrap().iter().enumerate() {
        let name = user["username"].as_str().unwrap();
        let password = user["password"].as_str().unwrap();
        let on = user["two_factor_enabled"].as_bool().unwrap();
        let secret = user["secret"].as_str().unwrap();
        // Alternate the two ways of passing the secret.
        let uri = user["uri_without_issuer"].as_str().unwrap();
        let totp = if i % 2 == 0 {
            ImportedTotp::Base32(secret)
        } else {
            ImportedTotp::Uri(uri)
        };
        let codes = user["codes"].as_array().unwrap();
        let (t0, code0) = (codes[0][0].as_u64().unwrap(), codes[0][1].as_str().unwrap());
        let clock = ManualClock::new(t0);
        let (service, store) = service(&clock);
        let imported = service
            .import_account(ImportedAccount {
                username: name,
                password: LegacyPassword::Bcrypt(user["password_hash"].as_str().unwrap()),
                totp: Some(totp),
                two_factor_enabled: on,
            })
            .await;
        if !is_valid_username(name) {
            let e = imported.unwrap_err();
            assert_eq!(e.code(), "invalid_input", "{name}");
            assert!(e.to_string().contains("username"), "{e}");
            continue;
        }
        let outcome = imported.unwrap();
        assert!(outcome.legacy_password);
        assert!(!outcome.weak_secret, "pyotp.random_base32() is 160 bits");
        assert_eq!(outcome.authenticator_id.is_some(), on);
        let stored = store.account(&outcome.user_id).await.unwrap().unwrap();
        assert!(stored.password_hash.is_bcrypt());

        // Wrong password: refused, hash untouched.
        assert_eq!(
            login(&service, name, "wrong password", code0).await,
            Err("invalid_credentials")
        );
        // The old password and pyotp's code.
        login(&service, name, password, code0).await.unwrap();
        let stored = store.account(&outcome.user_id).await.unwrap().unwrap();
        assert!(
            stored.password_hash.is_argon2id(),
            "{name}: rehashed on login"
        );
        assert_eq!(stored.password_epoch, 0);
        if on {
            // The same code again: a replay, from the very first login on.
            assert_eq!(
                login(&service, name, password, code0).await,
                Err("code_already_used"),
                "{name}"
            );
            // Later codes computed by pyotp work too.
            for pair in &codes[1..] {
                clock.set(pair[0].as_u64().unwrap());
                login(&service, name, password, pair[1].as_str().unwrap())
                    .await
                    .unwrap();
            }
            assert!(
                service
                    .weak_authenticators(&outcome.user_id)
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        // Login names are case-insensitive, as for registered accounts.
        if name != name.to_ascii_lowercase() {
            assert!(store.account_by_username(name).await.unwrap().is_none());
        }
    }
}

#[tokio::test]
async fn the_fixtures_have_a_flask_bcrypt_cost_12_hash() {
    // alice's, which the login test above verifies.
    let fx = fixtures();
    let alice = &fx["tutorial"][0];
    assert!(
        alice["password_hash"]
            .as_str()
            .unwrap()
            .starts_with("$2b$12$")
    );
}

#[tokio::test]
async fn simple_variant_clear_passwords_and_weak_secrets() {
    let fx = fixtures();
    for user in fx["simple"].as_array().unwrap() {
        let name = user["username"].as_str().unwrap();
        let password = user["password"].as_str().unwrap();
        let secret = user["secret"].as_str();
        let clock = ManualClock::new(1_700_000_000);
        let (service, store) = service(&clock);
        let outcome = service
            .import_account(ImportedAccount {
                username: name,
                password: LegacyPassword::Clear(password),
                totp: secret.map(ImportedTotp::Base32),
                two_factor_enabled: secret.is_some(),
            })
            .await
            .unwrap();
        assert!(!outcome.legacy_password);
        let stored = store.account(&outcome.user_id).await.unwrap().unwrap();
        assert!(
            stored.password_hash.is_argon2id(),
            "clear passwords are hashed"
        );
        assert!(!stored.password_hash.as_str().contains(password));
        let Some(secret) = secret else {
            login(&service, name, password, "").await.unwrap();
            continue;
        };
        assert_eq!(secret.len(), 16);
        assert!(outcome.weak_secret);
        assert_eq!(
            service.weak_authenticators(&outcome.user_id).await.unwrap(),
            vec![outcome.authenticator_id.clone().unwrap()]
        );
        // The security log says so.
        let log = store.security_log(&outcome.user_id, 10).await.unwrap();
        assert!(
            log.iter().any(|e| format!("{e:?}").contains("weak secret")),
            "{log:?}"
        );
        // Weak, but it works: codes computed by pyotp.
        for pair in user["codes"].as_array().unwrap() {
            clock.set(pair[0].as_u64().unwrap());
            login(&service, name, password, pair[1].as_str().unwrap())
                .await
                .unwrap();
        }
        // The provisioning URI pyotp writes with an issuer imports the same way.
        let (again, _) = self::service(&clock);
        let o = again
            .import_account(ImportedAccount {
                username: name,
                password: LegacyPassword::Clear(password),
                totp: Some(ImportedTotp::Uri(user["uri_with_issuer"].as_str().unwrap())),
                two_factor_enabled: true,
            })
            .await
            .unwrap();
        assert!(o.weak_secret);
    }
}

#[tokio::test]
async fn duplicates_and_bad_input_are_reported() {
    let fx = fixtures();
    let bob = &fx["tutorial"][1];
    let clock = ManualClock::new(1_700_000_000);
    let (service, _) = service(&clock);
    let account = ImportedAccount {
        username: "bob",
        password: LegacyPassword::Bcrypt(bob["password_hash"].as_str().unwrap()),
        totp: Some(ImportedTotp::Base32(bob["secret"].as_str().unwrap())),
        two_factor_enabled: true,
    };
    service.import_account(account).await.unwrap();
    let again = service.import_account(account).await.unwrap_err();
    assert_eq!(again.code(), "username_taken");
    let field = |r: secondfactor::Result<_>| match r {
        Err(secondfactor::Error::InvalidInput { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let base = ImportedAccount {
        username: "zed",
        ..account
    };
    assert_eq!(
        field(
            service
                .import_account(ImportedAccount {
                    username: "zed smith",
                    ..base
                })
                .await
        ),
        "username"
    );
    assert_eq!(
        field(
            service
                .import_account(ImportedAccount {
                    password: LegacyPassword::Bcrypt("$2x$04$notreally"),
                    ..base
                })
                .await
        ),
        "password_hash"
    );
    assert_eq!(
        field(
            service
                .import_account(ImportedAccount {
                    totp: Some(ImportedTotp::Base32("JBSWY3DP")),
                    ..base
                })
                .await
        ),
        "totp"
    );
    assert_eq!(
        field(
            service
                .import_account(ImportedAccount { totp: None, ..base })
                .await
        ),
        "totp"
    );
    assert_eq!(
        field(
            service
                .import_account(ImportedAccount {
                    totp: Some(ImportedTotp::Uri(
                        "otpauth://totp/x?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&digits=8"
                    )),
                    ..base
                })
                .await
        ),
        "totp"
    );
}

#[tokio::test]
async fn bcrypt_password_over_72_bytes_is_refused_not_truncated() {
    let fx = fixtures();
    let dave = fx["tutorial"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "dave_72")
        .unwrap();
    let password = dave["password"].as_str().unwrap();
    assert_eq!(password.len(), 72);
    let clock = ManualClock::new(1_700_000_000);
    let (service, store) = service(&clock);
    let o = service
        .import_account(ImportedAccount {
            username: "dave_72",
            password: LegacyPassword::Bcrypt(dave["password_hash"].as_str().unwrap()),
            totp: None,
            two_factor_enabled: false,
        })
        .await
        .unwrap();
    // bcrypt alone would accept these: it reads 72 bytes.
    for longer in [format!("{password}d"), format!("{password}anything")] {
        assert_eq!(
            login(&service, "dave_72", &longer, "").await,
            Err("invalid_credentials")
        );
    }
    assert!(
        store
            .account(&o.user_id)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .is_bcrypt()
    );
    login(&service, "dave_72", password, "").await.unwrap();
}

/// Codes from `oathtool` (OATH Toolkit) for the imported secrets. Skipped with a
/// note when it is not installed, except with `CI=true`.
#[tokio::test]
async fn oathtool_codes_log_in() {
    if Command::new("oathtool").arg("--version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("oathtool is required in CI (apt-get install oathtool)");
        }
        eprintln!("note: oathtool not installed; skipping the oathtool cross-check");
        return;
    }
    let fx = fixtures();
    let users = fx["tutorial"]
        .as_array()
        .unwrap()
        .iter()
        .chain(fx["simple"].as_array().unwrap());
    for user in users {
        let (Some(secret), true) = (
            user["secret"].as_str(),
            user["two_factor_enabled"].as_bool().unwrap(),
        ) else {
            continue;
        };
        let name = user["username"].as_str().unwrap();
        if !is_valid_username(name) {
            continue;
        }
        let t = 1_750_000_000u64;
        // `-b` reads the key as base32; `--now` takes a date, "@SECONDS" is Unix time.
        let out = Command::new("oathtool")
            .args(["--totp", "-b", secret, &format!("--now=@{t}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let code = String::from_utf8(out.stdout).unwrap();
        let clock = ManualClock::new(t);
        let (service, _) = service(&clock);
        let password = user["password"].as_str().unwrap();
        service
            .import_account(ImportedAccount {
                username: name,
                password: LegacyPassword::Clear(password),
                totp: Some(ImportedTotp::Base32(secret)),
                two_factor_enabled: true,
            })
            .await
            .unwrap();
        login(&service, name, password, code.trim()).await.unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Import → login → rehash never leaves a legacy hash behind after a success,
    /// whatever the password and whatever wrong attempts come first.
    #[test]
    fn a_successful_login_never_leaves_a_legacy_hash(
        password in "[ -~]{1,72}",
        wrong in prop::collection::vec("[ -~]{0,80}", 0..3),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let hash = bcrypt_hash(&password);
            let clock = ManualClock::new(1_700_000_000);
            let (service, store) = service(&clock);
            let o = service
                .import_account(ImportedAccount {
                    username: "p",
                    password: LegacyPassword::Bcrypt(&hash),
                    totp: None,
                    two_factor_enabled: false,
                })
                .await
                .unwrap();
            let mut succeeded = false;
            for w in &wrong {
                let ok = login(&service, "p", w, "").await.is_ok();
                succeeded |= ok;
                let after = store.account(&o.user_id).await.unwrap().unwrap().password_hash;
                // Only the right password may succeed, and after a success the
                // hash is argon2id; before one it is still the bcrypt hash.
                prop_assert_eq!(ok, w == &password);
                prop_assert_eq!(after.is_argon2id(), succeeded);
                prop_assert_eq!(after.is_bcrypt(), !succeeded);
            }
            login(&service, "p", &password, "").await.unwrap();
            let after = store.account(&o.user_id).await.unwrap().unwrap().password_hash;
            prop_assert!(after.is_argon2id() && !after.is_bcrypt());
            // And it stays so: the new hash verifies the same password.
            login(&service, "p", &password, "").await.unwrap();
            Ok(())
        })?;
    }
}

/// bcrypt, cost 4, through the `bcrypt` crate (the algorithm the unit tests check
/// against Python's hashes).
fn bcrypt_hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}
