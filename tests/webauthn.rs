//! Security keys and passkeys (WebAuthn) through the same flows, with the
//! webauthn-rs project's software authenticator (`SoftPasskey`) standing in for the
//! browser and the key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secondfactor::clock::{Clock, ManualClock};
use secondfactor::events::Event;
use secondfactor::flow::AuthenticatorKind;
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{AccountStore, MemoryStore, Store, UserId};
use secondfactor::throttle::ThrottlePolicy;
use secondfactor::totp::TotpKey;
use secondfactor::webauthn::{
    CreationChallengeResponse, RequestChallengeResponse, UserVerification, WebAuthnConfig,
};
use secondfactor::{
    AuthMethod, Error, LoginOutcome, LoginRequest, ReauthRequest, SecondFactor, Service,
};
use url::Url;
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

const T0: u64 = 1_700_000_010;
const PW: &str = "correct horse battery";
const ORIGIN: &str = "https://login.example.com";

struct H<S: Store> {
    service: Service<S>,
    /// A clone of the service's store (clones share their state), for white-box checks.
    store: S,
    clock: ManualClock,
    keys: KeyRing,
    events: Arc<Mutex<Vec<Event>>>,
}

fn ring() -> KeyRing {
    KeyRing::new(1, SealingKey::from_bytes([7; 32]))
}

fn build<S: Store + Clone>(store: S, policy: UserVerification) -> H<S> {
    build_with(store, policy, ThrottlePolicy::default())
}

fn build_with<S: Store + Clone>(
    store: S,
    policy: UserVerification,
    throttle: ThrottlePolicy,
) -> H<S> {
    let clock = ManualClock::new(T0);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let service = Service::builder(store.clone(), ring())
        .clock(clock.clone())
        .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
        .events(move |e: &Event| sink.lock().unwrap().push(e.clone()))
        .issuer("Test Co")
        .throttle_policy(throttle)
        .webauthn(
            WebAuthnConfig::new(ORIGIN)
                .unwrap()
                .user_verification(policy),
        )
        .build()
        .unwrap();
    H {
        service,
        store,
        clock,
        keys: ring(),
        events,
    }
}

fn h() -> H<MemoryStore> {
    build(MemoryStore::new(), UserVerification::Preferred)
}

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

fn code_of(e: &Error) -> &'static str {
    e.code()
}

/// The browser's `navigator.credentials.create`, as JSON.
fn create(key: &mut SoftPasskey, options: CreationChallengeResponse) -> String {
    let credential = key.do_registration(origin(), options).unwrap();
    serde_json::to_string(&credential).unwrap()
}

/// The browser's `navigator.credentials.get`, as JSON.
fn get(key: &mut SoftPasskey, options: RequestChallengeResponse) -> String {
    let credential = key.do_authentication(origin(), options).unwrap();
    serde_json::to_string(&credential).unwrap()
}

impl<S: Store> H<S> {
    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Registers `name` and logs in with the password: the session token.
    async fn account(&self, name: &str) -> (UserId, String) {
        let user = self.service.register(name, PW).await.unwrap();
        let session = self.session(name).await;
        (user, session)
    }

    async fn session(&self, name: &str) -> String {
        let LoginOutcome::Authenticated(auth) = self
            .service
            .login(LoginRequest::new(name, PW))
            .await
            .unwrap()
        else {
            panic!("2FA is off")
        };
        self.service
            .issue_session(auth)
            .await
            .unwrap()
            .expose()
            .to_owned()
    }

    /// Registers a new soft key on the account of `session`; returns it and the
    /// backup codes when it turned 2FA on.
    async fn add_key(&self, session: &str, name: &str) -> (SoftPasskey, Option<usize>) {
        let mut key = SoftPasskey::new(true);
        let proof = self.service.recent_auth(session).await.unwrap();
        let options = self
            .service
            .start_webauthn_registration(&proof, name)
            .await
            .unwrap();
        let json = create(&mut key, options);
        let done = self
            .service
            .finish_webauthn_registration(&proof, &json)
            .await
            .unwrap();
        assert_eq!(done.name, name);
        (key, done.backup_codes.map(|c| c.len()))
    }

    /// The password step: the pending-login token and the methods offered.
    async fn pending(&self, name: &str) -> (String, Vec<AuthMethod>) {
        match self
            .service
            .login(LoginRequest::new(name, PW))
            .await
            .unwrap()
        {
            LoginOutcome::SecondFactorRequired(t) => (t.token.expose().to_owned(), t.methods),
            _ => panic!("2FA is on"),
        }
    }

    /// A session made by logging in with the password and `key`.
    async fn session_with_key(&self, name: &str, key: &mut SoftPasskey) -> String {
        let (_, result) = self.key_login(name, key).await;
        self.service
            .issue_session(result.unwrap())
            .await
            .unwrap()
            .expose()
            .to_owned()
    }

    /// A full key login: the assertion JSON is returned with the result.
    async fn key_login(
        &self,
        name: &str,
        key: &mut SoftPasskey,
    ) -> (String, secondfactor::Result<secondfactor::Authenticated>) {
        let (token, _) = self.pending(name).await;
        let options = self.service.start_webauthn_login(&token).await.unwrap();
        let json = get(key, options);
        let result = self
            .service
            .second_factor(&token, SecondFactor::WebAuthn(&json))
            .await;
        (json, result)
    }
}

// ---------------------------------------------------------------------------------
// Registration: an authenticator kind next to TOTP.

#[tokio::test]
async fn the_first_key_turns_two_factor_on_with_backup_codes_and_the_next_one_is_added() {
    let h = h();
    let (user, session) = h.account("alice").await;
    let (_, codes) = h.add_key(&session, "blue key").await;
    assert_eq!(codes, Some(10), "the first key yields the backup codes");
    let (_, codes) = h.add_key(&session, "spare key").await;
    assert_eq!(codes, None, "an added key yields none");
    let status = h.service.status(&user).await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.backup_codes_remaining, 10);
    let listed: Vec<_> = status
        .authenticators
        .iter()
        .map(|a| (a.name.as_str(), a.kind, a.readable))
        .collect();
    assert_eq!(
        listed,
        [
            ("blue key", AuthenticatorKind::WebAuthn, true),
            ("spare key", AuthenticatorKind::WebAuthn, true)
        ]
    );
    let events = h.events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::TwoFactorEnabled { .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::AuthenticatorAdded { .. }))
    );
}

#[tokio::test]
async fn adding_a_key_ends_the_other_sessions() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let other = h.session("alice").await;
    h.add_key(&session, "key").await;
    assert_eq!(
        code_of(&h.service.session(&other).await.unwrap_err()),
        "unauthenticated"
    );
    assert!(h.service.session(&session).await.is_ok());
}

#[tokio::test]
async fn registration_needs_a_recent_authentication() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    h.advance(3600);
    for e in [
        h.service
            .start_webauthn_registration(&proof, "key")
            .await
            .unwrap_err(),
        h.service
            .finish_webauthn_registration(&proof, "{}")
            .await
            .unwrap_err(),
    ] {
        assert_eq!(code_of(&e), "reauthentication_required");
    }
    assert_eq!(
        code_of(&h.service.recent_auth(&session).await.unwrap_err()),
        "reauthentication_required"
    );
}

#[tokio::test]
async fn keys_count_toward_the_cap_of_five() {
    let h = h();
    let (_, session) = h.account("alice").await;
    for i in 0..5 {
        h.add_key(&session, &format!("key {i}")).await;
    }
    let proof = h.service.recent_auth(&session).await.unwrap();
    let e = h
        .service
        .start_webauthn_registration(&proof, "sixth")
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "too_many_authenticators");
}

#[tokio::test]
async fn a_registration_ceremony_is_single_use_expires_and_belongs_to_its_session() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    let mut key = SoftPasskey::new(true);

    // Single use: the same credential cannot finish twice.
    let json = create(
        &mut key,
        h.service
            .start_webauthn_registration(&proof, "key")
            .await
            .unwrap(),
    );
    h.service
        .finish_webauthn_registration(&proof, &json)
        .await
        .unwrap();
    let e = h
        .service
        .finish_webauthn_registration(&proof, &json)
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "setup_expired");

    // Expiry: past the ceremony's lifetime the state is gone.
    let proof = h.service.recent_auth(&session).await.unwrap();
    let mut other = SoftPasskey::new(true);
    let json = create(
        &mut other,
        h.service
            .start_webauthn_registration(&proof, "late")
            .await
            .unwrap(),
    );
    h.advance(301);
    let proof = h.service.recent_auth(&session).await.unwrap_or(proof);
    let e = h
        .service
        .finish_webauthn_registration(&proof, &json)
        .await
        .unwrap_err();
    assert!(
        ["setup_expired", "reauthentication_required"].contains(&code_of(&e)),
        "{e}"
    );

    // Another session of the same account cannot finish this session's ceremony.
    h.service.register("carol", PW).await.unwrap();
    let s1 = h.session("carol").await;
    let s2 = h.session("carol").await;
    let p1 = h.service.recent_auth(&s1).await.unwrap();
    let p2 = h.service.recent_auth(&s2).await.unwrap();
    let mut third = SoftPasskey::new(true);
    let json = create(
        &mut third,
        h.service
            .start_webauthn_registration(&p1, "third")
            .await
            .unwrap(),
    );
    let e = h
        .service
        .finish_webauthn_registration(&p2, &json)
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "setup_expired");
}

#[tokio::test]
async fn a_credential_for_another_ceremony_is_refused() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    let mut key = SoftPasskey::new(true);
    // Answers the first start's challenge; the second start replaced it.
    let stale = create(
        &mut key,
        h.service
            .start_webauthn_registration(&proof, "key")
            .await
            .unwrap(),
    );
    h.service
        .start_webauthn_registration(&proof, "key")
        .await
        .unwrap();
    let e = h
        .service
        .finish_webauthn_registration(&proof, &stale)
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
    assert!(
        !h.service
            .status(&proof_user(&h, &session).await)
            .await
            .unwrap()
            .enabled
    );
}

async fn proof_user<S: Store>(h: &H<S>, session: &str) -> UserId {
    h.service.session(session).await.unwrap().user_id().clone()
}

#[tokio::test]
async fn garbage_is_invalid_input_and_leaves_the_ceremony() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    let options = h
        .service
        .start_webauthn_registration(&proof, "key")
        .await
        .unwrap();
    for junk in ["", "{}", "null", "[1,2]", &"x".repeat(70_000)] {
        let e = h
            .service
            .finish_webauthn_registration(&proof, junk)
            .await
            .unwrap_err();
        assert_eq!(code_of(&e), "invalid_input", "{junk:.20}");
    }
    // The ceremony was not burnt by unparseable input.
    let mut key = SoftPasskey::new(true);
    let json = create(&mut key, options);
    h.service
        .finish_webauthn_registration(&proof, &json)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------
// Login.

#[tokio::test]
async fn a_key_logs_in_and_methods_list_it() {
    let h = h();
    let (user, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    let (_, methods) = h.pending("alice").await;
    assert_eq!(methods, [AuthMethod::WebAuthn, AuthMethod::BackupCode]);
    let (_, result) = h.key_login("alice", &mut key).await;
    let auth = result.unwrap();
    assert_eq!(auth.method(), AuthMethod::WebAuthn);
    assert_eq!(auth.user_id(), &user);
    let token = h.service.issue_session(auth).await.unwrap();
    assert_eq!(
        h.service.session(token.expose()).await.unwrap().method(),
        AuthMethod::WebAuthn
    );
}

#[tokio::test]
async fn methods_list_totp_and_webauthn_when_the_account_has_both() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    let setup = h.service.setup_two_factor(&proof).await.unwrap();
    let phone = TotpKey::new(h.service.totp_policy(), setup.secret().expose_bytes());
    h.service
        .confirm_enrollment(&proof, &phone.generate(h.now()))
        .await
        .unwrap();
    let (mut key, codes) = h.add_key(&session, "key").await;
    assert_eq!(codes, None);
    let (_, methods) = h.pending("alice").await;
    assert_eq!(
        methods,
        [
            AuthMethod::Totp,
            AuthMethod::WebAuthn,
            AuthMethod::BackupCode
        ]
    );
    // The key's sealed record is never taken for a TOTP secret, and the phone still
    // works.
    let _ = h.key_login("alice", &mut key).await.1.unwrap();
    h.advance(30);
    let (token, _) = h.pending("alice").await;
    let _ = h
        .service
        .second_factor(&token, SecondFactor::Totp(&phone.generate(h.now())))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    let (json, result) = h.key_login("alice", &mut key).await;
    let _ = result.unwrap();
    // The same assertion against the same pending login is gone, and against a new
    // pending login (even after a fresh start) does not answer its challenge.
    let (token, _) = h.pending("alice").await;
    let e = h
        .service
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
    h.service.start_webauthn_login(&token).await.unwrap();
    let e = h
        .service
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
}

#[tokio::test]
async fn a_login_ceremony_is_single_use_and_expires() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;

    // The ceremony is taken by the first finish, even a failed one: the right
    // assertion after it finds nothing.
    let (token, _) = h.pending("alice").await;
    let options = h.service.start_webauthn_login(&token).await.unwrap();
    let json = get(&mut key, options);
    let mut tampered: serde_json::Value = serde_json::from_str(&json).unwrap();
    tampered["response"]["signature"] = serde_json::Value::String("AAAA".into());
    let e = h
        .service
        .second_factor(&token, SecondFactor::WebAuthn(&tampered.to_string()))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
    let e = h
        .service
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");

    // Expired ceremony.
    let (token, _) = h.pending("alice").await;
    let options = h.service.start_webauthn_login(&token).await.unwrap();
    let json = get(&mut key, options);
    h.advance(400); // past the ceremony (and the pending login)
    let e = h
        .service
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert!(
        ["invalid_code", "login_expired"].contains(&code_of(&e)),
        "{e}"
    );
}

#[tokio::test]
async fn a_ceremony_expires_before_its_pending_login() {
    let h = build(MemoryStore::new(), UserVerification::Preferred);
    let (_, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    // Pending logins live 300 s by default, ceremonies 300 s too; build one with a
    // short ceremony to see the ceremony's own expiry.
    let short = Service::builder(h.store.clone(), ring())
        .clock(h.clock.clone())
        .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
        .webauthn(
            WebAuthnConfig::new(ORIGIN)
                .unwrap()
                .ceremony_ttl(Duration::from_secs(60)),
        )
        .build()
        .unwrap();
    let LoginOutcome::SecondFactorRequired(t) =
        short.login(LoginRequest::new("alice", PW)).await.unwrap()
    else {
        panic!()
    };
    let token = t.token.expose().to_owned();
    let json = get(&mut key, short.start_webauthn_login(&token).await.unwrap());
    h.advance(61);
    let e = short
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(
        code_of(&e),
        "invalid_code",
        "the ceremony expired, the login did not"
    );
    // The pending login itself is still there: a new ceremony completes it.
    let json = get(&mut key, short.start_webauthn_login(&token).await.unwrap());
    let _ = short
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_assertion_for_another_pending_login_or_user_is_refused() {
    let h = h();
    let (_, s_alice) = h.account("alice").await;
    let (_, s_bob) = h.account("bob").await;
    let (mut alice_key, _) = h.add_key(&s_alice, "key").await;
    let (mut bob_key, _) = h.add_key(&s_bob, "key").await;

    // Two pending logins of alice: the assertion answering the first's ceremony
    // cannot complete the second.
    let (first, _) = h.pending("alice").await;
    let (second, _) = h.pending("alice").await;
    let json = get(
        &mut alice_key,
        h.service.start_webauthn_login(&first).await.unwrap(),
    );
    h.service.start_webauthn_login(&second).await.unwrap();
    let e = h
        .service
        .second_factor(&second, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");

    // Bob's key cannot answer alice's ceremony, nor alice's bob's pending login.
    let (alice_login, _) = h.pending("alice").await;
    let options = h.service.start_webauthn_login(&alice_login).await.unwrap();
    assert!(
        bob_key.do_authentication(origin(), options).is_err(),
        "the options list alice's keys only"
    );
    let (bob_login, _) = h.pending("bob").await;
    let bob_json = get(
        &mut bob_key,
        h.service.start_webauthn_login(&bob_login).await.unwrap(),
    );
    let e = h
        .service
        .second_factor(&alice_login, SecondFactor::WebAuthn(&bob_json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
    // The wrong-user attempt did not touch bob's ceremony: his login completes.
    let _ = h
        .service
        .second_factor(&bob_login, SecondFactor::WebAuthn(&bob_json))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_counter_that_does_not_move_forward_is_refused() {
    let h = h();
    let (user, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    let _ = h.key_login("alice", &mut key).await.1.unwrap();
    // A clone of the key elsewhere has run ahead: the stored counter is far past
    // what this key will send next.
    let store = &h.store;
    let record = store
        .authenticators(&user)
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.sealed_secret.is_record())
        .unwrap();
    let plain = h
        .keys
        .open_record(user.as_str(), &record.sealed_secret)
        .unwrap();
    let mut stored: serde_json::Value = serde_json::from_slice(&plain).unwrap();
    assert!(
        stored["counter"].as_u64().unwrap() >= 1,
        "the counter was recorded"
    );
    stored["counter"] = 1_000.into();
    let resealed = h
        .keys
        .seal_record(user.as_str(), stored.to_string().as_bytes())
        .unwrap();
    assert!(
        store
            .update_authenticator_secret(&user, &record.id, &record.sealed_secret, &resealed)
            .await
            .unwrap()
    );
    let (_, result) = h.key_login("alice", &mut key).await;
    assert_eq!(code_of(&result.unwrap_err()), "invalid_code");
    assert!(
        h.events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::CodeReplayed { .. })),
        "the regression is reported"
    );
}

#[tokio::test]
async fn the_counter_is_stored_after_each_login() {
    let h = h();
    let (user, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    let mut last = 0;
    for _ in 0..3 {
        let _ = h.key_login("alice", &mut key).await.1.unwrap();
        let record = h.store.authenticators(&user).await.unwrap().remove(0);
        let plain = h
            .keys
            .open_record(user.as_str(), &record.sealed_secret)
            .unwrap();
        let stored: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        let counter = stored["counter"].as_u64().unwrap();
        assert!(counter > last, "{counter} > {last}");
        last = counter;
    }
}

#[tokio::test]
async fn failed_assertions_count_on_the_pending_login_and_the_account() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    let (token, _) = h.pending("alice").await;
    let options = h.service.start_webauthn_login(&token).await.unwrap();
    let json = get(&mut key, options);
    let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
    bad["response"]["signature"] = serde_json::Value::String("AAAA".into());
    let bad = bad.to_string();
    let mut remaining = Vec::new();
    let mut last = None;
    for _ in 0..10 {
        match h
            .service
            .second_factor(&token, SecondFactor::WebAuthn(&bad))
            .await
        {
            Err(Error::InvalidCode { remaining_attempts }) => remaining.push(remaining_attempts),
            Err(e) => {
                last = Some(code_of(&e));
                break;
            }
            Ok(_) => panic!("a bad assertion logged in"),
        }
    }
    assert!(
        remaining.windows(2).all(|w| w[0] > w[1]),
        "each failure counts: {remaining:?}"
    );
    assert!(
        matches!(last, Some("login_expired" | "too_many_attempts")),
        "the pending login burns or the account locks: {last:?} after {remaining:?}"
    );
    assert!(
        h.events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::SecondFactorRejected { .. }))
    );
}

#[tokio::test]
async fn required_user_verification_refuses_an_assertion_without_it() {
    let store = MemoryStore::new();
    let strict = build(store.clone(), UserVerification::Required);
    let (_, session) = strict.account("alice").await;
    let proof = strict.service.recent_auth(&session).await.unwrap();
    let options = strict
        .service
        .start_webauthn_registration(&proof, "key")
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&options).unwrap()["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    let mut verifying = SoftPasskey::new(true);
    let json = create(&mut verifying, options);
    strict
        .service
        .finish_webauthn_registration(&proof, &json)
        .await
        .unwrap();
    let (token, _) = strict.pending("alice").await;
    let request = strict.service.start_webauthn_login(&token).await.unwrap();
    assert_eq!(
        serde_json::to_value(&request).unwrap()["publicKey"]["userVerification"],
        "required"
    );

    // A key that does not verify its user (SoftPasskey with falsify_uv = false sets
    // no UV flag), registered while the policy was "preferred". The ceremony is
    // started by the lenient service, so the browser is not asked for UV; the strict
    // service refuses the assertion on its own check.
    let lenient = build(store, UserVerification::Preferred);
    let (_, session) = lenient.account("dave").await;
    let mut lazy = SoftPasskey::new(false);
    let proof = lenient.service.recent_auth(&session).await.unwrap();
    let json = create(
        &mut lazy,
        lenient
            .service
            .start_webauthn_registration(&proof, "key")
            .await
            .unwrap(),
    );
    lenient
        .service
        .finish_webauthn_registration(&proof, &json)
        .await
        .unwrap();
    let (token, _) = lenient.pending("dave").await;
    let json = get(
        &mut lazy,
        lenient.service.start_webauthn_login(&token).await.unwrap(),
    );
    let e = strict
        .service
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
    // The same kind of assertion passes where UV is only preferred.
    let (token, _) = lenient.pending("dave").await;
    let json = get(
        &mut lazy,
        lenient.service.start_webauthn_login(&token).await.unwrap(),
    );
    let _ = lenient
        .service
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_removed_key_no_longer_logs_in() {
    let h = h();
    let (user, session) = h.account("alice").await;
    let (mut first, _) = h.add_key(&session, "first").await;
    h.add_key(&session, "second").await;
    let (token, _) = h.pending("alice").await;
    let options = h.service.start_webauthn_login(&token).await.unwrap();
    let json = get(&mut first, options);
    let proof = h.service.recent_auth(&session).await.unwrap();
    let id = h.service.status(&user).await.unwrap().authenticators[0]
        .id
        .clone();
    h.service.remove_authenticator(&proof, &id).await.unwrap();
    let e = h
        .service
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
}

#[tokio::test]
async fn a_key_steps_up_and_confirms_disable_without_spending_backup_codes() {
    let h = h();
    let (user, session) = h.account("alice").await;
    let (mut key, codes) = h.add_key(&session, "key").await;
    assert_eq!(codes, Some(10));
    // The window of the login closes: the key-only user steps up with the key.
    h.advance(3600);
    assert_eq!(
        code_of(&h.service.recent_auth(&session).await.unwrap_err()),
        "reauthentication_required"
    );
    let options = h
        .service
        .start_webauthn_confirmation(&session)
        .await
        .unwrap();
    let json = get(&mut key, options);
    h.service
        .reauthenticate(
            &session,
            ReauthRequest::new(PW).factor(SecondFactor::WebAuthn(&json)),
        )
        .await
        .unwrap();
    let proof = h.service.recent_auth(&session).await.unwrap();
    // The same answer cannot confirm a second action: its ceremony is spent.
    let e = h
        .service
        .disable_two_factor(&proof, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
    let options = h
        .service
        .start_webauthn_confirmation(&session)
        .await
        .unwrap();
    let json = get(&mut key, options);
    h.service
        .disable_two_factor(&proof, SecondFactor::WebAuthn(&json))
        .await
        .unwrap();
    let status = h.service.status(&user).await.unwrap();
    assert!(!status.enabled);
}

#[tokio::test]
async fn a_key_renews_the_backup_codes_once_per_confirmation() {
    let h = h();
    let (user, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    let options = h
        .service
        .start_webauthn_confirmation(&session)
        .await
        .unwrap();
    let json = get(&mut key, options);
    let codes = h
        .service
        .regenerate_backup_codes_with_key(&proof, &json)
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        h.service
            .status(&user)
            .await
            .unwrap()
            .backup_codes_remaining,
        10
    );
    let e = h
        .service
        .regenerate_backup_codes_with_key(&proof, &json)
        .await
        .unwrap_err();
    assert_eq!(
        code_of(&e),
        "invalid_code",
        "the confirmation is single use"
    );
}

#[tokio::test]
async fn a_login_answer_or_another_sessions_cannot_confirm_an_action() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    let other = h.session_with_key("alice", &mut key).await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    // This session starts a confirmation, then another session starts its own:
    // the other's answer is not for this one.
    let _ = h
        .service
        .start_webauthn_confirmation(&session)
        .await
        .unwrap();
    let options = h.service.start_webauthn_confirmation(&other).await.unwrap();
    let other_answer = get(&mut key, options);
    let e = h
        .service
        .disable_two_factor(&proof, SecondFactor::WebAuthn(&other_answer))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
    // This session starts a confirmation, then a login starts its ceremony: the
    // login's answer is not for this one.
    let _ = h
        .service
        .start_webauthn_confirmation(&session)
        .await
        .unwrap();
    let (token, _) = h.pending("alice").await;
    let options = h.service.start_webauthn_login(&token).await.unwrap();
    let login_answer = get(&mut key, options);
    let e = h
        .service
        .disable_two_factor(&proof, SecondFactor::WebAuthn(&login_answer))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
    assert!(
        h.service
            .status(&proof_user(&h, &session).await)
            .await
            .unwrap()
            .enabled
    );
    // Garbage is an input error; a confirmation needs a session.
    let e = h
        .service
        .disable_two_factor(&proof, SecondFactor::WebAuthn("{}"))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_input");
    let e = h
        .service
        .start_webauthn_confirmation("not a session")
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "unauthenticated");
    let e = h
        .service
        .start_webauthn_login("not a token")
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "login_expired");
}

#[tokio::test]
async fn wrong_answers_to_confirmations_lock_the_account_second_factor() {
    let h = h();
    let (_, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    let mut refused = Vec::new();
    for _ in 0..12 {
        let options = h
            .service
            .start_webauthn_confirmation(&session)
            .await
            .unwrap();
        let json = get(&mut key, options);
        let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
        bad["response"]["signature"] = serde_json::Value::String("AAAA".into());
        let e = h
            .service
            .disable_two_factor(&proof, SecondFactor::WebAuthn(&bad.to_string()))
            .await
            .unwrap_err();
        refused.push(code_of(&e));
        if code_of(&e) == "too_many_attempts" {
            break;
        }
    }
    assert_eq!(
        refused.last(),
        Some(&"too_many_attempts"),
        "forged answers lock the account's second factor: {refused:?}"
    );
    assert!(
        refused[..refused.len() - 1]
            .iter()
            .all(|c| *c == "invalid_code")
    );
    // Locked: even the key's right answer is refused now.
    let options = h
        .service
        .start_webauthn_confirmation(&session)
        .await
        .unwrap();
    let json = get(&mut key, options);
    let e = h
        .service
        .disable_two_factor(&proof, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "too_many_attempts");
}

#[tokio::test]
async fn without_a_relying_party_the_ceremonies_are_a_configuration_error() {
    let service = Service::builder(MemoryStore::new(), ring())
        .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
        .build()
        .unwrap();
    let e = service.start_webauthn_login("x").await.unwrap_err();
    assert_eq!(code_of(&e), "invalid_config");
}

// ---------------------------------------------------------------------------------
// Races: one assertion, many logins.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_assertion_completes_at_most_one_login_under_a_race() {
    // Lenient throttles: the losers' failures must not lock the account between
    // rounds.
    let throttle = ThrottlePolicy::builder()
        .free_failures(100)
        .budget(1_000, Duration::from_secs(86_400))
        .build()
        .unwrap();
    let h = Arc::new(build_with(
        MemoryStore::new(),
        UserVerification::Preferred,
        throttle,
    ));
    let (_, session) = h.account("alice").await;
    let (mut key, _) = h.add_key(&session, "key").await;
    // Four attempts are left on each pending login after the start, and a failure
    // on the last one burns the login: three racers, so that the attempt limit never
    // decides and exactly one must win.
    for round in 0..50 {
        let (token, _) = h.pending("alice").await;
        let options = h.service.start_webauthn_login(&token).await.unwrap();
        let json = Arc::new(get(&mut key, options));
        let token = Arc::new(token);
        let barrier = Arc::new(tokio::sync::Barrier::new(3));
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let (h, json, token, barrier) =
                    (h.clone(), json.clone(), token.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    h.service
                        .second_factor(&token, SecondFactor::WebAuthn(&json))
                        .await
                        .is_ok()
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            wins += usize::from(t.await.unwrap());
        }
        assert_eq!(wins, 1, "round {round}: {wins} logins from one assertion");
    }
}

// ---------------------------------------------------------------------------------
// Persistence: keys and ceremonies survive in the SQL stores.

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_keys_and_ceremonies() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sf.db").display());
    let store = secondfactor::store::SqliteStore::connect(&url)
        .await
        .unwrap();
    let h = build(store, UserVerification::Preferred);
    let (_, session) = h.account("alice").await;
    let (mut key, codes) = h.add_key(&session, "key").await;
    assert_eq!(codes, Some(10));
    let _ = h.key_login("alice", &mut key).await.1.unwrap();
    let (json, _) = h.key_login("alice", &mut key).await;
    let (token, _) = h.pending("alice").await;
    let e = h
        .service
        .second_factor(&token, SecondFactor::WebAuthn(&json))
        .await
        .unwrap_err();
    assert_eq!(code_of(&e), "invalid_code");
    h.service.purge_expired().await.unwrap();
}
