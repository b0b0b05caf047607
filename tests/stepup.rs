//! The account after login (invariant 8): each attack of the step-up issue, written
//! as the attacker would run it against the public API, must now fail.

use std::sync::Arc;
use std::time::Duration;

use secondfactor::clock::{Clock, ManualClock};
use secondfactor::events::Event;
use secondfactor::flow::{Blocking, Inline};
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::security_log::SecurityEventKind;
use secondfactor::store::{MemoryStore, SessionId, UserId};
use secondfactor::totp::TotpKey;
use secondfactor::{Error, LoginOutcome, LoginRequest, ReauthRequest, SecondFactor, Service};
use tokio::sync::Semaphore;

mod harness;
use harness::*;

fn kinds(log: &[secondfactor::security_log::SecurityEvent]) -> Vec<SecurityEventKind> {
    log.iter().map(|e| e.kind).collect()
}

// ---------------------------------------------------------------------------------
// A stolen session alone changes nothing.

#[tokio::test]
async fn a_stolen_session_cannot_get_a_proof_once_the_window_closed() {
    let h = harness();
    let (user, phone, _) = h.enrolled("owner").await;
    // The attacker's copy of the owner's session cookie, used an hour later.
    let stolen = h.login_2fa("owner", &phone).await;
    h.advance(3600);
    assert_eq!(
        code_of(&h.service.recent_auth(&stolen).await.unwrap_err()),
        "reauthentication_required"
    );
    // The session itself still works for reading.
    assert_eq!(h.service.session(&stolen).await.unwrap().user_id(), &user);
}

#[tokio::test]
async fn every_credential_change_refuses_a_proof_whose_window_closed() {
    let h = harness();
    let (user, phone, codes) = h.enrolled("owner").await;
    let (_, second) = h.start_adding(&user, "second").await;
    let proof = h.proof(&user).await;
    h.advance(3600); // the harness's window is an hour
    let first_id = h.service.status(&user).await.unwrap().authenticators[0]
        .id
        .clone();
    let code = phone.generate(h.now());
    let refusals = [
        h.service.add_authenticator(&proof, "thief").await.err(),
        h.service
            .confirm_enrollment(&proof, &second.generate(h.now()))
            .await
            .err(),
        h.service.pending_enrollment(&proof).await.err(),
        h.service
            .remove_authenticator(&proof, &first_id)
            .await
            .err(),
        h.service
            .disable_two_factor(&proof, SecondFactor::BackupCode(&codes[0]))
            .await
            .err(),
        h.service.regenerate_backup_codes(&proof, &code).await.err(),
        h.service
            .change_password(&proof, PW, "the thief's password")
            .await
            .err(),
    ];
    for (i, e) in refusals.iter().enumerate() {
        assert_eq!(
            e.as_ref().map(code_of),
            Some("reauthentication_required"),
            "change {i}"
        );
    }
    // Nothing changed and nothing was spent.
    let status = h.service.status(&user).await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.authenticators.len(), 1);
    assert_eq!(status.backup_codes_remaining, 10);
}

#[tokio::test]
async fn a_stolen_session_cannot_turn_2fa_on_for_an_account_without_it() {
    let h = harness();
    let user = h.service.register("plain", PW).await.unwrap();
    let session = h.session_of(&user).await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    h.advance(3601);
    assert_eq!(
        code_of(&h.service.setup_two_factor(&proof).await.unwrap_err()),
        "reauthentication_required"
    );
    assert_eq!(
        code_of(&h.service.recent_auth(&session).await.unwrap_err()),
        "reauthentication_required"
    );
    assert!(!h.service.status(&user).await.unwrap().enabled);
}

#[tokio::test]
async fn password_guesses_from_a_stolen_session_end_it_and_never_lock_the_owner() {
    let h = harness();
    let (user, phone, _) = h.enrolled("owner").await;
    let stolen = h.login_2fa("owner", &phone).await;
    h.advance(3600);
    let mut ended = false;
    for i in 0..100 {
        let r = h
            .service
            .reauthenticate(
                &stolen,
                ReauthRequest::new(&format!("guess {i}")).factor(SecondFactor::Totp("123456")),
            )
            .await;
        match r.unwrap_err().code() {
            "invalid_credentials" => assert!(!ended),
            "unauthenticated" => ended = true,
            other => panic!("guess {i}: {other}"),
        }
    }
    assert!(ended, "the stolen session must end after the free failures");
    // Codes were never looked at: the owner's password + code works at once.
    h.advance(30);
    let _ = h.login_with("owner", &phone).await;
    let log = h.service.security_log(&user).await.unwrap();
    assert!(kinds(&log).contains(&SecurityEventKind::SessionRevoked));
    assert!(!kinds(&log).contains(&SecurityEventKind::LockedOut));
}

#[tokio::test]
async fn password_and_session_without_a_factor_cannot_add_a_factor() {
    let h = harness();
    let (user, phone, _) = h.enrolled("owner").await;
    let stolen = h.login_2fa("owner", &phone).await;
    h.advance(3600);
    // The attacker knows the password too (phished), but has no factor.
    let no_code = h
        .service
        .reauthenticate(&stolen, ReauthRequest::new(PW))
        .await
        .unwrap_err();
    assert_eq!(code_of(&no_code), "invalid_input");
    let wrong = h.wrong_code(&phone);
    let bad = h
        .service
        .reauthenticate(
            &stolen,
            ReauthRequest::new(PW).factor(SecondFactor::Totp(&wrong)),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        bad,
        Error::InvalidCode {
            remaining_attempts: Some(_)
        }
    ));
    assert_eq!(
        code_of(&h.service.recent_auth(&stolen).await.unwrap_err()),
        "reauthentication_required"
    );
    assert_eq!(
        h.service.status(&user).await.unwrap().authenticators.len(),
        1
    );
}

#[tokio::test]
async fn reauthentication_with_password_and_code_opens_the_window() {
    let h = harness();
    let (user, phone, codes) = h.enrolled("owner").await;
    let session = h.login_2fa("owner", &phone).await;
    h.advance(3600);
    h.advance(30);
    let until = h
        .service
        .reauthenticate(
            &session,
            ReauthRequest::new(PW)
                .factor(SecondFactor::Totp(&phone.generate(h.now())))
                .client_key("192.0.2.1"),
        )
        .await
        .unwrap();
    assert_eq!(until, h.now() + 3600);
    assert_eq!(
        h.service
            .session(&session)
            .await
            .unwrap()
            .reauthenticated_until(),
        until
    );
    let proof = h.service.recent_auth(&session).await.unwrap();
    assert_eq!(proof.until(), until);
    // A backup code works too, and is spent.
    h.advance(3601);
    h.service
        .reauthenticate(
            &session,
            ReauthRequest::new(PW).factor(SecondFactor::BackupCode(&codes[0])),
        )
        .await
        .unwrap();
    assert_eq!(
        h.service
            .status(&user)
            .await
            .unwrap()
            .backup_codes_remaining,
        9
    );
    let log = h.service.security_log(&user).await.unwrap();
    assert_eq!(log[0].kind, SecurityEventKind::Reauthenticated);
    assert_eq!(log[0].method.map(|m| m.as_str()), Some("backup_code"));
    let with_client = log
        .iter()
        .find(|e| e.kind == SecurityEventKind::Reauthenticated && e.client.is_some())
        .unwrap();
    assert_eq!(with_client.client.as_deref(), Some("192.0.2.1"));
}

// ---------------------------------------------------------------------------------
// A factor change ends the other sessions and revokes trusted devices.

#[tokio::test]
async fn every_factor_change_ends_other_sessions_and_revokes_devices() {
    let h = harness();
    let (user, phone, _) = h.enrolled("owner").await;
    let owner = h.session_of(&user).await;
    // Another browser that trusted its device, and a third session.
    h.advance(30);
    let (auth, _) = h.login_trusting("owner", &phone, "laptop").await;
    let other = h.service.issue_session(auth).await.unwrap();
    assert_eq!(h.service.sessions(&owner).await.unwrap().len(), 2);

    let (_, tablet) = h.start_adding(&user, "tablet").await;
    // Starting a setup changes nothing yet.
    assert!(h.service.session(other.expose()).await.is_ok());
    h.confirm(&user, &tablet).await.unwrap();
    assert_eq!(
        code_of(&h.service.session(other.expose()).await.unwrap_err()),
        "unauthenticated"
    );
    assert!(h.service.trusted_devices(&user).await.unwrap().is_empty());
    let listed = h.service.sessions(&owner).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].current);
    let log = kinds(&h.service.security_log(&user).await.unwrap());
    assert_eq!(
        &log[..3],
        &[
            // Newest first: the others were ended before the factor was added.
            SecurityEventKind::AuthenticatorAdded,
            SecurityEventKind::SessionRevoked,
            SecurityEventKind::DeviceRevoked,
        ]
    );

    // Each other change does the same: removal, new backup codes, disable.
    let s = h.login_2fa("owner", &phone).await;
    let tablet_id = h.service.status(&user).await.unwrap().authenticators[1]
        .id
        .clone();
    h.service
        .remove_authenticator(&h.proof(&user).await, &tablet_id)
        .await
        .unwrap();
    assert!(h.service.session(&s).await.is_err(), "remove");
    let s = h.login_2fa("owner", &phone).await;
    h.advance(30);
    h.service
        .regenerate_backup_codes(&h.proof(&user).await, &phone.generate(h.now()))
        .await
        .unwrap();
    assert!(h.service.session(&s).await.is_err(), "regenerate");
    let s = h.login_2fa("owner", &phone).await;
    h.advance(30);
    h.service
        .disable_two_factor(
            &h.proof(&user).await,
            SecondFactor::Totp(&phone.generate(h.now())),
        )
        .await
        .unwrap();
    assert!(h.service.session(&s).await.is_err(), "disable");
    // The owner's session survived all of it.
    assert!(h.service.session(&owner).await.is_ok());
}

#[tokio::test]
async fn a_password_change_ends_every_other_session_and_keeps_the_callers() {
    let h = harness();
    let user = h.service.register("owner", PW).await.unwrap();
    let owner = h.session_of(&user).await;
    let LoginOutcome::Authenticated(a) = h
        .service
        .login(LoginRequest::new("owner", PW))
        .await
        .unwrap()
    else {
        panic!()
    };
    let other = h.service.issue_session(a).await.unwrap();
    let fresh = h
        .service
        .change_password(&h.proof(&user).await, PW, "a brand new password")
        .await
        .unwrap();
    assert!(h.service.session(other.expose()).await.is_err());
    assert!(
        h.service.session(&owner).await.is_err(),
        "the old token is void"
    );
    let listed = h.service.sessions(fresh.expose()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].current);
    // The fresh session counts as recently authenticated.
    h.service.recent_auth(fresh.expose()).await.unwrap();
    let log = kinds(&h.service.security_log(&user).await.unwrap());
    assert!(log.contains(&SecurityEventKind::PasswordChanged));
}

// ---------------------------------------------------------------------------------
// Sessions: list, end one, end the others.

#[tokio::test]
async fn sessions_can_be_listed_and_ended_by_id() {
    let h = harness();
    let user = h.service.register("owner", PW).await.unwrap();
    let me = h.session_of(&user).await;
    let mut others = Vec::new();
    for _ in 0..3 {
        h.advance(1);
        let LoginOutcome::Authenticated(a) = h
            .service
            .login(LoginRequest::new("owner", PW))
            .await
            .unwrap()
        else {
            panic!()
        };
        others.push(h.service.issue_session(a).await.unwrap());
    }
    let listed = h.service.sessions(&me).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed[0].current, "oldest first: the harness's own");
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at)
    );
    for s in &listed {
        assert!(!me.contains(s.id.as_str()), "an id is not the token");
    }
    h.service
        .end_session_by_id(&me, &listed[1].id)
        .await
        .unwrap();
    assert!(h.service.session(others[0].expose()).await.is_err());
    assert_eq!(
        code_of(
            &h.service
                .end_session_by_id(&me, &SessionId::new("no such session"))
                .await
                .unwrap_err()
        ),
        "not_found"
    );
    // Another account's session id is not found either.
    let eve = h.service.register("eve", PW).await.unwrap();
    let eve_session = h.session_of(&eve).await;
    assert_eq!(
        code_of(
            &h.service
                .end_session_by_id(&eve_session, &listed[2].id)
                .await
                .unwrap_err()
        ),
        "not_found"
    );
    assert_eq!(h.service.end_other_sessions(&me).await.unwrap(), 2);
    assert_eq!(h.service.sessions(&me).await.unwrap().len(), 1);
    assert!(h.service.session(&eve_session).await.is_ok());
    // Ending the current session by id is a logout.
    let current = h.service.sessions(&me).await.unwrap()[0].id.clone();
    h.service.end_session_by_id(&me, &current).await.unwrap();
    assert!(h.service.session(&me).await.is_err());
}

// ---------------------------------------------------------------------------------
// Password writes are compare-and-set: a parked login cannot undo a password change.

/// Runs each blocking job, then parks the caller until the test releases it.
#[derive(Clone)]
struct Parking {
    parked: Arc<Semaphore>,
    release: Arc<Semaphore>,
}

impl Blocking for Parking {
    fn run(
        &self,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let this = self.clone();
        Box::pin(async move {
            job();
            this.parked.add_permits(1);
            this.release.acquire().await.unwrap().forget();
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_parked_before_its_rehash_cannot_undo_a_password_change() {
    for round in 0..20 {
        let store = MemoryStore::new();
        let keys = KeyRing::new(1, SealingKey::from_bytes([7; 32]));
        let clock = ManualClock::new(T0);
        let old_params = || PasswordHasher::new(256, 1, 1).unwrap();
        // The instance that serves the change, on today's parameters.
        let a = Service::builder(store.clone(), keys.clone())
            .clock(clock.clone())
            .password_hasher(old_params())
            .blocking(Inline)
            .build()
            .unwrap();
        // Another instance after the operator raised the argon2 parameters: its
        // logins rehash, and this one's are parked between argon2 and the write.
        let parking = Parking {
            parked: Arc::new(Semaphore::new(0)),
            release: Arc::new(Semaphore::new(0)),
        };
        let b = Service::builder(store.clone(), keys.clone())
            .clock(clock.clone())
            .password_hasher(PasswordHasher::new(512, 1, 1).unwrap())
            .blocking(parking.clone())
            .build()
            .unwrap();
        let user = a.register("victim", PW).await.unwrap();
        let LoginOutcome::Authenticated(auth) =
            a.login(LoginRequest::new("victim", PW)).await.unwrap()
        else {
            panic!()
        };
        let session = a.issue_session(auth).await.unwrap();

        let login = tokio::spawn({
            let b = b.clone();
            async move { b.login(LoginRequest::new("victim", PW)).await.map(|_| ()) }
        });
        parking.parked.acquire().await.unwrap().forget();
        let proof = a.recent_auth(session.expose()).await.unwrap();
        let fresh = a
            .change_password(&proof, PW, "the new password")
            .await
            .unwrap();
        parking.release.add_permits(1);
        login.await.unwrap().unwrap();

        // The change stands: the new password works, the old one does not, and
        // the session the change handed out is still valid.
        assert!(
            a.login(LoginRequest::new("victim", "the new password"))
                .await
                .is_ok(),
            "round {round}: the new password must work"
        );
        assert_eq!(
            code_of(
                &a.login(LoginRequest::new("victim", PW))
                    .await
                    .err()
                    .unwrap()
            ),
            "invalid_credentials",
            "round {round}: the old password came back"
        );
        assert_eq!(a.session(fresh.expose()).await.unwrap().user_id(), &user);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_password_changes_one_wins_and_the_other_is_refused() {
    for round in 0..30 {
        let h = harness();
        let user = h.service.register("owner", PW).await.unwrap();
        let proof = Arc::new(h.proof(&user).await);
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for new in ["first new password", "second new password"] {
            let (s, p, b) = (h.service.clone(), proof.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                b.wait().await;
                s.change_password(&p, PW, new).await.map(|_| new)
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(new) => won.push(new),
                // The loser either checked its "current" password against the
                // winner's result, or found its session ended by the winner.
                Err(e) => assert!(
                    ["invalid_credentials", "unauthenticated"].contains(&code_of(&e)),
                    "round {round}: {e:?}"
                ),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        assert!(
            h.service
                .login(LoginRequest::new("owner", won[0]))
                .await
                .is_ok()
        );
    }
}

// ---------------------------------------------------------------------------------
// The authenticator cap.

#[tokio::test]
async fn an_account_has_at_most_five_authenticators() {
    let h = harness();
    let (user, _, _) = h.enrolled("owner").await;
    for i in 2..=5 {
        let (_, k) = h.start_adding(&user, &format!("phone {i}")).await;
        h.confirm(&user, &k).await.unwrap();
    }
    assert_eq!(
        h.service.status(&user).await.unwrap().authenticators.len(),
        5
    );
    assert_eq!(
        code_of(
            &h.service
                .add_authenticator(&h.proof(&user).await, "sixth")
                .await
                .unwrap_err()
        ),
        "too_many_authenticators"
    );
}

// ---------------------------------------------------------------------------------
// Key rotation keeps its promises.

/// Registers `name` on `service`, logs it in with the password and starts a 2FA
/// setup: the user, the session, its proof and the setup.
async fn enroll_on(
    service: &Service<MemoryStore>,
    name: &str,
) -> (
    UserId,
    secondfactor::flow::SessionToken,
    secondfactor::RecentAuth,
    secondfactor::flow::EnrollmentSetup,
) {
    let user = service.register(name, PW).await.unwrap();
    let LoginOutcome::Authenticated(a) = service.login(LoginRequest::new(name, PW)).await.unwrap()
    else {
        panic!("2FA is off")
    };
    let session = service.issue_session(a).await.unwrap();
    let proof = service.recent_auth(session.expose()).await.unwrap();
    let setup = service.setup_two_factor(&proof).await.unwrap();
    (user, session, proof, setup)
}

#[tokio::test]
async fn rotation_keeps_backup_codes_working_and_says_when_to_regenerate() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let k1 = SealingKey::from_bytes([1; 32]);
    let k2 = SealingKey::from_bytes([2; 32]);
    let service = |keys: KeyRing| {
        Service::builder(store.clone(), keys)
            .clock(clock.clone())
            .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
            .build()
            .unwrap()
    };
    let before = service(KeyRing::new(1, k1.clone()));
    let (user, _session, proof, setup) = enroll_on(&before, "owner").await;
    let phone = TotpKey::new(before.totp_policy(), setup.secret().expose_bytes());
    let codes = before
        .confirm_enrollment(&proof, &phone.generate(clock.now()))
        .await
        .unwrap()
        .backup_codes
        .unwrap();
    assert!(
        !before
            .status(&user)
            .await
            .unwrap()
            .backup_codes_need_regeneration
    );

    // Step 1 of rotation: key 2 active, key 1 still in the ring.
    let during = service(KeyRing::new(2, k2.clone()).with_key(1, k1).unwrap());
    let status = during.status(&user).await.unwrap();
    assert!(status.backup_codes_need_regeneration);
    assert!(status.authenticators.iter().all(|a| a.readable));
    let t = pending_on(&during, "owner").await;
    let _ = during
        .second_factor(&t, SecondFactor::BackupCode(codes[0].expose()))
        .await
        .expect("codes made under the old key keep working while it is in the ring");

    // That login resealed the authenticator under key 2; the codes cannot be
    // re-hashed (the server never kept them), so the status keeps asking for new ones.
    let after = service(KeyRing::new(2, k2));
    let status = after.status(&user).await.unwrap();
    assert!(status.authenticators.iter().all(|a| a.readable));
    assert!(status.backup_codes_need_regeneration);
    // Regenerating under the active key clears it.
    clock.advance(Duration::from_secs(30));
    let t = pending_on(&after, "owner").await;
    let auth = after
        .second_factor(&t, SecondFactor::Totp(&phone.generate(clock.now())))
        .await
        .unwrap();
    let session = after.issue_session(auth).await.unwrap();
    clock.advance(Duration::from_secs(30));
    let proof = after.recent_auth(session.expose()).await.unwrap();
    let fresh = after
        .regenerate_backup_codes(&proof, &phone.generate(clock.now()))
        .await
        .unwrap();
    assert!(
        !after
            .status(&user)
            .await
            .unwrap()
            .backup_codes_need_regeneration
    );
    let t = pending_on(&after, "owner").await;
    let _ = after
        .second_factor(&t, SecondFactor::BackupCode(fresh[0].expose()))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unreadable_authenticator_is_skipped_and_reported_not_a_500() {
    let store = MemoryStore::new();
    let clock = ManualClock::new(T0);
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let service = |keys: KeyRing| {
        let sink = events.clone();
        Service::builder(store.clone(), keys)
            .clock(clock.clone())
            .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
            .events(move |e: &Event| sink.lock().unwrap().push(e.clone()))
            .build()
            .unwrap()
    };
    let k1 = SealingKey::from_bytes([1; 32]);
    let k2 = SealingKey::from_bytes([2; 32]);
    let old = service(KeyRing::new(1, k1.clone()));
    let (user, session, proof, setup) = enroll_on(&old, "owner").await;
    let phone = TotpKey::new(old.totp_policy(), setup.secret().expose_bytes());
    old.confirm_enrollment(&proof, &phone.generate(clock.now()))
        .await
        .unwrap();
    // Add a second phone under key 2 while both keys are in the ring; then key 1
    // leaves the ring before the first phone was ever resealed.
    let both = service(KeyRing::new(2, k2.clone()).with_key(1, k1).unwrap());
    let proof = both.recent_auth(session.expose()).await.unwrap();
    let setup = both.add_authenticator(&proof, "new phone").await.unwrap();
    let phone2 = TotpKey::new(both.totp_policy(), setup.secret().expose_bytes());
    both.confirm_enrollment(&proof, &phone2.generate(clock.now()))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(30));

    let new = service(KeyRing::new(2, k2));
    let t = pending_on(&new, "owner").await;
    // A code from the unreadable phone is a wrong code, not an internal error.
    let err = new
        .second_factor(&t, SecondFactor::Totp(&phone.generate(clock.now())))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), "invalid_code");
    // The readable phone works.
    let _ = new
        .second_factor(&t, SecondFactor::Totp(&phone2.generate(clock.now())))
        .await
        .unwrap();
    let status = new.status(&user).await.unwrap();
    assert_eq!(
        status
            .authenticators
            .iter()
            .map(|a| a.readable)
            .collect::<Vec<_>>(),
        vec![false, true]
    );
    assert!(events.lock().unwrap().iter().any(|e| matches!(
        e,
        Event::AuthenticatorUnreadable { user_id, .. } if *user_id == user
    )));
}

// ---------------------------------------------------------------------------------
// The operator's reset, and the security log.

#[tokio::test]
async fn an_operator_reset_turns_2fa_off_ends_everything_and_is_logged() {
    let h = harness();
    let (user, phone, _) = h.enrolled("owner").await;
    let thief = h.login_2fa("owner", &phone).await;
    assert_eq!(
        code_of(
            &h.service
                .reset_two_factor(&user, " ", "lost phone")
                .await
                .unwrap_err()
        ),
        "invalid_input"
    );
    h.service
        .reset_two_factor(
            &user,
            "support:jo",
            "lost phone; ID checked on video call #4411",
        )
        .await
        .unwrap();
    assert!(!h.service.status(&user).await.unwrap().enabled);
    assert!(h.service.session(&thief).await.is_err());
    assert!(matches!(
        h.service
            .login(LoginRequest::new("owner", PW))
            .await
            .unwrap(),
        LoginOutcome::Authenticated(_)
    ));
    let log = h.service.security_log(&user).await.unwrap();
    let reset = log
        .iter()
        .find(|e| e.kind == SecurityEventKind::TwoFactorReset)
        .unwrap();
    assert_eq!(
        reset.detail.as_deref(),
        Some("by support:jo: lost phone; ID checked on video call #4411")
    );
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, Event::TwoFactorReset { .. }))
    );
    assert_eq!(
        code_of(
            &h.service
                .reset_two_factor(&UserId::new("nobody"), "support", "x")
                .await
                .unwrap_err()
        ),
        "not_found"
    );
}

#[tokio::test]
async fn the_security_log_records_the_account_story_newest_first_without_secrets() {
    let h = harness();
    let (user, phone, codes) = h.enrolled("owner").await;
    let _ = h
        .service
        .login(LoginRequest::new("owner", "wrong password").client_key("198.51.100.4"))
        .await;
    let t = h.pending("owner").await;
    let wrong = h.wrong_code(&phone);
    let _ = h.code(&t, &wrong).await;
    let _ = h.backup(&t, &codes[1]).await.unwrap();
    let log = h.service.security_log(&user).await.unwrap();
    assert_eq!(
        kinds(&log)[..5],
        [
            SecurityEventKind::Login,
            SecurityEventKind::BackupCodeUsed,
            SecurityEventKind::SecondFactorFailed,
            SecurityEventKind::LoginFailed,
            SecurityEventKind::TwoFactorEnabled,
        ]
    );
    assert_eq!(log[3].client.as_deref(), Some("198.51.100.4"));
    let text = format!("{log:?}");
    for secret in [PW, "wrong password", codes[1].as_str()] {
        assert!(!text.contains(secret), "the log leaks {secret}");
    }
    // Bounded: never more than 100 entries (wrong passwords from the owner's own
    // browser, which the account-wide password limit lets through).
    h.advance(30);
    let auth = h.login_with("owner", &phone).await;
    let known = h.service.remember_browser(&auth);
    for _ in 0..120 {
        let _ = h
            .service
            .login(LoginRequest::new("owner", "nope").known_browser(known.expose()))
            .await;
    }
    assert_eq!(h.service.security_log(&user).await.unwrap().len(), 100);
    // And entries older than 90 days are gone.
    h.advance(91 * 24 * 3600);
    assert!(h.service.security_log(&user).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_proof_dies_with_its_session() {
    let h = harness();
    let user = h.service.register("owner", PW).await.unwrap();
    let session = h.session_of(&user).await;
    let proof = h.service.recent_auth(&session).await.unwrap();
    h.service.end_session(&session).await.unwrap();
    assert_eq!(
        code_of(&h.service.setup_two_factor(&proof).await.unwrap_err()),
        "unauthenticated"
    );
    assert!(!h.service.status(&user).await.unwrap().enabled);
}

#[tokio::test]
async fn a_setup_announces_the_id_and_name_its_authenticator_gets() {
    let h = harness();
    let (user, _, _) = h.enrolled("owner").await;
    let (setup, key) = h.start_adding(&user, "tablet").await;
    assert_eq!(setup.name(), "tablet");
    let done = h.confirm(&user, &key).await.unwrap();
    assert_eq!(&done.authenticator_id, setup.authenticator_id());
    let listed = h.service.status(&user).await.unwrap().authenticators;
    assert_eq!(&listed[1].id, setup.authenticator_id());
}

#[tokio::test]
async fn a_login_by_code_records_its_client() {
    let h = harness();
    let (user, phone, _) = h.enrolled("owner").await;
    h.advance(30);
    let t = h.pending("owner").await;
    let _auth = h
        .service
        .second_factor_from(
            &t,
            SecondFactor::Totp(&phone.generate(h.now())),
            Some("198.51.100.77"),
        )
        .await
        .unwrap();
    let log = h.service.security_log(&user).await.unwrap();
    assert_eq!(log[0].kind, SecurityEventKind::Login);
    assert_eq!(log[0].client.as_deref(), Some("198.51.100.77"));
}

// ---------------------------------------------------------------------------------
// A spent backup code is said as such on step-up too, and counts like a wrong code.

#[tokio::test]
async fn a_spent_backup_code_is_backup_code_used_on_reauthentication_and_disable() {
    let h = harness();
    let (user, phone, codes) = h.enrolled("owner").await;
    let session = h.login_2fa("owner", &phone).await;
    let rejections = |h: &Harness| {
        h.events()
            .iter()
            .filter(|e| matches!(e, Event::SecondFactorRejected { .. }))
            .count()
    };
    let reauth = async |factor: SecondFactor<'_>| {
        let request = ReauthRequest::new(PW).factor(factor);
        h.service.reauthenticate(&session, request).await
    };
    // Spent once, at a re-authentication.
    h.advance(3601);
    reauth(SecondFactor::BackupCode(&codes[0])).await.unwrap();
    // A code this account never had: invalid_code, one rejection counted.
    h.advance(3601);
    let never_issued = secondfactor::backup::generate(1);
    let before = rejections(&h);
    let wrong = reauth(SecondFactor::BackupCode(never_issued[0].expose()))
        .await
        .unwrap_err();
    assert!(matches!(wrong, Error::InvalidCode { .. }), "{wrong:?}");
    assert_eq!(rejections(&h), before + 1);
    // The spent code typed again: said as spent, with the same attempts left as
    // invalid_code, and counted exactly like it.
    let again = reauth(SecondFactor::BackupCode(&codes[0]))
        .await
        .unwrap_err();
    let Error::InvalidCode { remaining_attempts } = wrong else {
        unreachable!()
    };
    assert!(
        matches!(again, Error::BackupCodeUsed { remaining_attempts: r } if r == remaining_attempts),
        "expected backup_code_used, got {again:?}"
    );
    assert_eq!(rejections(&h), before + 2);
    // The window stayed closed.
    assert_eq!(
        code_of(&h.service.recent_auth(&session).await.unwrap_err()),
        "reauthentication_required"
    );
    // Disable with the spent code: the same answer; 2FA stays on, nothing spent.
    h.advance(30);
    reauth(SecondFactor::Totp(&phone.generate(h.now())))
        .await
        .unwrap();
    let proof = h.service.recent_auth(&session).await.unwrap();
    let disabled = h
        .service
        .disable_two_factor(&proof, SecondFactor::BackupCode(&codes[0]))
        .await
        .unwrap_err();
    assert_eq!(code_of(&disabled), "backup_code_used");
    assert_eq!(rejections(&h), before + 3);
    let status = h.service.status(&user).await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.backup_codes_remaining, 9);
}
