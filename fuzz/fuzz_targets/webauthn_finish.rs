//! The JSON inputs of the WebAuthn finish steps: whatever a client sends as the
//! browser's credential, `finish_webauthn_registration` and the login's
//! `second_factor(SecondFactor::WebAuthn(..))` answer with an error, never a panic,
//! and never accept it (no input forges a key's signature for a live ceremony).
//!
//! Each run starts real ceremonies first (a registration for an account without
//! 2FA, a login for an account with a software key), so the input reaches the
//! parsing and the verification of `webauthn-rs` with a live server-side state.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use secondfactor::clock::ManualClock;
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::MemoryStore;
use secondfactor::webauthn::WebAuthnConfig;
use secondfactor::{LoginOutcome, LoginRequest, SecondFactor, Service};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const ORIGIN: &str = "https://login.example.com";
const PW: &str = "correct horse battery";

/// Polls a future that never waits (the memory store answers at once).
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

struct Setup {
    service: Service<MemoryStore>,
    clock: ManualClock,
}

fn session(service: &Service<MemoryStore>, name: &str) -> String {
    let LoginOutcome::Authenticated(auth) =
        run(service.login(LoginRequest::new(name, PW))).expect("password login")
    else {
        panic!("{name} has 2FA off")
    };
    run(service.issue_session(auth))
        .expect("session")
        .expose()
        .to_owned()
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let clock = ManualClock::new(1_700_000_000);
        let service = Service::builder(MemoryStore::new(), KeyRing::new(1, SealingKey::generate()))
            .clock(clock.clone())
            .password_hasher(PasswordHasher::new(256, 1, 1).expect("hasher"))
            .webauthn(WebAuthnConfig::new(ORIGIN).expect("relying party"))
            .build()
            .expect("service");
        run(service.register("alice", PW)).expect("register alice");
        run(service.register("bob", PW)).expect("register bob");
        // alice gets a key (2FA on); bob stays without 2FA for registrations.
        let s = session(&service, "alice");
        let proof = run(service.recent_auth(&s)).expect("proof");
        let options = run(service.start_webauthn_registration(&proof, "key")).expect("start");
        let origin = url::Url::parse(ORIGIN).expect("origin");
        let credential = SoftPasskey::new(true)
            .do_registration(origin, options)
            .expect("soft key registers");
        let json = serde_json::to_string(&credential).expect("json");
        run(service.finish_webauthn_registration(&proof, &json)).expect("finish");
        Setup { service, clock }
    })
}

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Setup { service, clock } = setup();
    // Past every lockout, budget and session of earlier runs.
    clock.advance(Duration::from_secs(40 * 24 * 3600));
    // Keeps the store's size flat across runs (old sessions, pending logins and
    // ceremonies are all expired by now).
    run(service.purge_expired()).expect("purge");

    let s = session(service, "bob");
    let proof = run(service.recent_auth(&s)).expect("proof");
    run(service.start_webauthn_registration(&proof, "key")).expect("registration starts");
    assert!(
        run(service.finish_webauthn_registration(&proof, &input)).is_err(),
        "a fuzzed credential registered a key"
    );

    let LoginOutcome::SecondFactorRequired(ticket) =
        run(service.login(LoginRequest::new("alice", PW))).expect("password step")
    else {
        panic!("alice has 2FA on")
    };
    let token = ticket.token.expose().to_owned();
    run(service.start_webauthn_login(&token)).expect("login ceremony starts");
    assert!(
        run(service.second_factor(&token, SecondFactor::WebAuthn(&input))).is_err(),
        "a fuzzed assertion logged in"
    );
});
