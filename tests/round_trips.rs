//! Round trips per user action, counted with a wrapper around the store: a
//! successful TOTP step is one read and one commit, the session and the trusted
//! device included.

use std::time::Duration;

use secondfactor::clock::{Clock, ManualClock};
use secondfactor::flow::{SecondFactorOptions, SignIn};
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{Combined, MemoryStore, Store};
use secondfactor::totp::TotpKey;
use secondfactor::{LoginOutcome, LoginRequest, SecondFactor, Service};

#[path = "support/counting.rs"]
mod counting;
use counting::Counting;

const PW: &str = "correct horse battery";

struct Setup {
    service: Service<Counting<MemoryStore>>,
    /// A clone of the service's store (clones share the counters).
    store: Counting<MemoryStore>,
    clock: ManualClock,
    phone: TotpKey,
}

async fn enrolled() -> Setup {
    let store = Counting::new(MemoryStore::new());
    let (service, clock, phone) = enrol(store.clone()).await;
    Setup {
        store,
        service,
        clock,
        phone,
    }
}

/// A service on `store` with one account, "owner", whose 2FA is on; the clock is a
/// step past the enrolment's.
async fn enrol<S: Store>(store: S) -> (Service<S>, ManualClock, TotpKey) {
    let clock = ManualClock::new(1_700_000_000);
    let service = Service::builder(store, KeyRing::new(1, SealingKey::generate()))
        .clock(clock.clone())
        .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
        .build()
        .unwrap();
    service.register("owner", PW).await.unwrap();
    let LoginOutcome::Authenticated(auth) =
        service.login(LoginRequest::new("owner", PW)).await.unwrap()
    else {
        panic!("2FA is off")
    };
    let session = service.issue_session(auth).await.unwrap();
    let proof = service.recent_auth(session.expose()).await.unwrap();
    let setup = service.setup_two_factor(&proof).await.unwrap();
    let phone = TotpKey::new(service.totp_policy(), setup.secret().expose_bytes());
    service
        .confirm_enrollment(&proof, &phone.generate(clock.now()))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));
    (service, clock, phone)
}

async fn pending(s: &Setup) -> String {
    pending_on(&s.service).await
}

async fn pending_on<S: Store>(service: &Service<S>) -> String {
    match service
        .sign_in(LoginRequest::new("owner", PW))
        .await
        .unwrap()
    {
        SignIn::SecondFactorRequired(t) => t.token.expose().to_owned(),
        SignIn::LoggedIn(_) => panic!("2FA is on"),
        _ => panic!("unexpected outcome"),
    }
}

#[tokio::test]
async fn a_successful_totp_sign_in_step_is_one_read_and_one_commit() {
    let s = enrolled().await;
    let token = pending(&s).await;
    let code = s.phone.generate(s.clock.now());
    s.store.reset();
    let done = s
        .service
        .sign_in_second_factor(
            &token,
            SecondFactor::Totp(&code),
            SecondFactorOptions {
                remember_device: Some("Firefox on Linux"),
                client_key: Some("192.0.2.1"),
            },
        )
        .await
        .unwrap();
    assert_eq!(s.store.calls(), ["read_factor_step", "commit_factor_step"]);
    // What the commit wrote is all there: the session, the device, the log entry.
    assert!(done.device.is_some());
    assert_eq!(
        s.service
            .session(done.session.expose())
            .await
            .unwrap()
            .username(),
        "owner"
    );
}

#[tokio::test]
async fn a_successful_second_factor_call_is_two_round_trips() {
    let s = enrolled().await;
    let token = pending(&s).await;
    let code = s.phone.generate(s.clock.now());
    s.store.reset();
    let _auth = s
        .service
        .second_factor(&token, SecondFactor::Totp(&code))
        .await
        .unwrap();
    assert_eq!(s.store.calls().len(), 2);
}

#[tokio::test]
async fn a_wrong_code_and_a_replay_are_two_round_trips_too() {
    let s = enrolled().await;
    let now = s.clock.now();
    let code = s.phone.generate(now);
    let window = [now - 30, now, now + 30].map(|t| s.phone.generate(t));
    let wrong = ["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !window.iter().any(|w| w == c))
        .unwrap();
    let token = pending(&s).await;
    s.store.reset();
    assert!(
        s.service
            .second_factor(&token, SecondFactor::Totp(wrong))
            .await
            .is_err()
    );
    assert_eq!(s.store.calls().len(), 2);
    let _auth = s
        .service
        .second_factor(&token, SecondFactor::Totp(&code))
        .await
        .unwrap();
    let token = pending(&s).await;
    s.store.reset();
    let replay = s
        .service
        .second_factor(&token, SecondFactor::Totp(&code))
        .await
        .unwrap_err();
    assert_eq!(replay.code(), "code_already_used");
    assert_eq!(s.store.calls().len(), 2);
}

#[tokio::test]
async fn the_password_step_is_bounded() {
    let s = enrolled().await;
    s.store.reset();
    let _ = pending(&s).await;
    // Client limiter off: the account lookup, the password throttle's read and
    // compare-and-set, its undo, and the pending login.
    let calls = s.store.calls();
    assert!(calls.len() <= 6, "{calls:?}");
}

/// Through `Combined`, the ephemeral half commits the step in one call (one script in
/// Redis, one critical section in memory), not the fine-grained operations.
#[tokio::test]
async fn through_combined_the_ephemeral_half_commits_in_one_call() {
    let ephemeral = Counting::new(MemoryStore::new());
    let (service, clock, phone) = enrol(Combined::new(MemoryStore::new(), ephemeral.clone())).await;
    let token = pending_on(&service).await;
    ephemeral.reset();
    let done = service
        .sign_in_second_factor(
            &token,
            SecondFactor::Totp(&phone.generate(clock.now())),
            SecondFactorOptions {
                remember_device: Some("Firefox on Linux"),
                client_key: None,
            },
        )
        .await
        .unwrap();
    let calls = ephemeral.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| **c == "commit_factor_ephemeral")
            .count(),
        1,
        "{calls:?}"
    );
    for fine in [
        "update_throttle",
        "take_pending_login",
        "advance_last_step",
        "create_session",
        "create_device",
    ] {
        assert!(!calls.contains(&fine), "{fine} in {calls:?}");
    }
    assert!(service.session(done.session.expose()).await.is_ok());
}

/// Through `Combined`, the read is one call per half too: the ephemeral half counts
/// the attempt and reads the throttles in one call, the durable half reads the account
/// with its authenticators in one; with the commit, a TOTP sign-in is two round trips
/// to the ephemeral half and one read (plus the security-log entry) on the durable one.
#[tokio::test]
async fn through_combined_a_totp_sign_in_reads_each_half_once() {
    let accounts = Counting::new(MemoryStore::new());
    let ephemeral = Counting::new(MemoryStore::new());
    let (service, clock, phone) = enrol(Combined::new(accounts.clone(), ephemeral.clone())).await;
    let token = pending_on(&service).await;
    accounts.reset();
    ephemeral.reset();
    let done = service
        .sign_in_second_factor(
            &token,
            SecondFactor::Totp(&phone.generate(clock.now())),
            SecondFactorOptions {
                remember_device: Some("Firefox on Linux"),
                client_key: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        ephemeral.calls(),
        ["read_factor_ephemeral", "commit_factor_ephemeral"]
    );
    assert_eq!(
        accounts.calls(),
        ["account_and_authenticators", "append_security_event"]
    );
    assert!(service.session(done.session.expose()).await.is_ok());
}
