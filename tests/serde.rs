//! The `serde` feature: what a service sends to its clients or writes to its logs
//! serializes to the HTTP contract's shapes, round-trips, and carries no secret.
#![cfg(feature = "serde")]

use std::time::Duration;

use secondfactor::error::{ErrorBody, Limiter};
use secondfactor::events::Event;
use secondfactor::flow::{AuthenticatorKind, TwoFactorStatus};
use secondfactor::security_log::{SecurityEvent, SecurityEventKind};
use secondfactor::store::{SessionId, UserId};
use secondfactor::{AuthMethod, Error};
use serde_json::{Value, json};

mod harness;
use harness::*;

#[test]
fn error_bodies_are_the_http_contracts() {
    let locked = Error::TooManyAttempts {
        retry_after: Duration::from_millis(59_001),
        limiter: Limiter::Account,
    };
    let v = serde_json::to_value(locked.body()).unwrap();
    assert_eq!(v["error"], "too_many_attempts");
    assert_eq!(
        v["retry_after"], 60,
        "rounded up: a client that waits this long is let in"
    );
    assert_eq!(v["limiter"], "account");
    assert!(v.get("remaining_attempts").is_none(), "{v}");

    let wrong = Error::InvalidCode {
        remaining_attempts: Some(2),
    };
    assert_eq!(
        serde_json::to_value(wrong.body()).unwrap(),
        json!({"error": "invalid_code", "message": "invalid code", "remaining_attempts": 2})
    );
    let busy = serde_json::to_value(
        Error::Busy {
            retry_after: Duration::ZERO,
        }
        .body(),
    )
    .unwrap();
    assert_eq!(
        (busy["error"].clone(), busy["retry_after"].clone()),
        (json!("busy"), json!(1))
    );

    // A client reads the body back.
    let back: ErrorBody = serde_json::from_value(v).unwrap();
    assert_eq!(back, locked.body());
}

#[test]
fn a_store_failure_body_names_no_source() {
    let e = Error::unavailable(
        "read account",
        std::io::Error::other("password=hunter2 at db"),
    );
    let text = serde_json::to_string(&e.body()).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(e.body().error, "unavailable");
}

#[test]
fn names_serialize_as_their_stable_strings_and_unknown_names_are_refused() {
    for m in [
        AuthMethod::Password,
        AuthMethod::Totp,
        AuthMethod::BackupCode,
        AuthMethod::TrustedDevice,
        AuthMethod::WebAuthn,
    ] {
        let v = serde_json::to_value(m).unwrap();
        assert_eq!(v, json!(m.as_str()));
        assert_eq!(serde_json::from_value::<AuthMethod>(v).unwrap(), m);
    }
    for k in SecurityEventKind::ALL {
        let v = serde_json::to_value(k).unwrap();
        assert_eq!(v, json!(k.as_str()));
        assert_eq!(serde_json::from_value::<SecurityEventKind>(v).unwrap(), *k);
    }
    assert_eq!(
        serde_json::to_value(AuthenticatorKind::WebAuthn).unwrap(),
        json!("webauthn")
    );
    assert!(serde_json::from_value::<AuthMethod>(json!("web_authn")).is_err());
    assert!(serde_json::from_value::<Limiter>(json!("everyone")).is_err());
    assert!(serde_json::from_value::<SecurityEventKind>(json!(3)).is_err());
}

#[test]
fn ids_are_plain_strings() {
    let id = UserId::new("0a1b");
    assert_eq!(serde_json::to_value(&id).unwrap(), json!("0a1b"));
    assert_eq!(serde_json::from_value::<UserId>(json!("0a1b")).unwrap(), id);
    assert!(serde_json::from_value::<SessionId>(json!({"id": "x"})).is_err());
}

#[test]
fn events_are_tagged_with_durations_in_seconds() {
    let e = Event::LockedOut {
        user_id: UserId::new("u1"),
        retry_after: Duration::from_secs(900),
    };
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        json!({"event": "locked_out", "user_id": "u1", "retry_after": 900})
    );
    let login = Event::LoginSucceeded {
        user_id: UserId::new("u1"),
        method: AuthMethod::BackupCode,
    };
    assert_eq!(
        serde_json::to_value(&login).unwrap(),
        json!({"event": "login_succeeded", "user_id": "u1", "method": "backup_code"})
    );
}

/// Walks a JSON value and collects every string in it.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

#[tokio::test]
async fn an_accounts_status_listings_and_log_serialize_without_a_secret() {
    let h = harness();
    let (user, phone, codes) = h.enrolled("alice").await;
    let (auth, device) = h.login_trusting("alice", &phone, "Firefox").await;
    let session = h.service.issue_session(auth).await.unwrap();

    let status = h.service.status(&user).await.unwrap();
    let sessions = h.service.sessions(session.expose()).await.unwrap();
    let devices = h.service.trusted_devices(&user).await.unwrap();
    let log = h.service.security_log(&user).await.unwrap();
    let all = json!({
        "status": status,
        "sessions": sessions,
        "devices": devices,
        "log": log,
    });

    // The shapes a client reads.
    assert_eq!(all["status"]["username"], "alice");
    assert_eq!(all["status"]["enabled"], true);
    assert_eq!(all["status"]["authenticators"][0]["kind"], "totp");
    assert_eq!(all["devices"][0]["label"], "Firefox");
    assert!(
        all["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["current"] == true)
    );
    assert!(
        all["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "login" && e["method"] == "totp"),
        "{}",
        all["log"]
    );

    // No secret anywhere: not the session or device token, not a backup code, not the
    // TOTP key's current code, not the password.
    let mut texts = Vec::new();
    strings(&all, &mut texts);
    let secrets: Vec<String> = [
        session.expose().to_owned(),
        device.expose().to_owned(),
        phone.generate(h.now()),
        PW.to_owned(),
    ]
    .into_iter()
    .chain(codes)
    .collect();
    for s in &secrets {
        assert!(!texts.iter().any(|t| t.contains(s.as_str())), "{s} leaked");
    }

    // Round trips, for a client that reads them back.
    let back: TwoFactorStatus = serde_json::from_value(all["status"].clone()).unwrap();
    assert_eq!(back, status);
    let back: Vec<SecurityEvent> = serde_json::from_value(all["log"].clone()).unwrap();
    assert_eq!(back, log);
}
