//! The flows end to end on the memory store: one test (at least) per invariant of the
//! design brief, each of which fails if its protection is removed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use secondfactor::events::Event;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::store::{AccountStore, MemoryStore};
use secondfactor::totp::TotpKey;
use secondfactor::{AuthMethod, Error, LoginOutcome, LoginRequest, SecondFactor, Service};

mod harness;
use harness::*;

// ---------------------------------------------------------------------------------
// Invariant 7: enrollment is two-step.

#[tokio::test]
async fn enrollment_is_two_step_and_confirm_marks_the_step_used() {
    let h = harness();
    let user = h.service.register("alice", PW).await.unwrap();
    let setup = h.start_setup(&user).await;
    assert!(setup.uri().starts_with("otpauth://totp/Test%20Co:alice?"));
    assert_eq!(setup.expires_in(), Duration::from_secs(600));
    // Setup alone does not enable 2FA: the password still logs in directly.
    assert!(!h.service.status(&user).await.unwrap().enabled);
    assert!(matches!(
        h.service
            .login(LoginRequest::new("alice", PW))
            .await
            .unwrap(),
        LoginOutcome::Authenticated(_)
    ));
    let phone = h.phone_of(&setup);
    // A wrong code does not enable it.
    let wrong = h.wrong_code(&phone);
    let err = h
        .service
        .confirm_enrollment(&h.proof(&user).await, &wrong)
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), "invalid_code");
    assert!(!h.service.status(&user).await.unwrap().enabled);
    // A valid code does, once, and yields 10 backup codes.
    let code = phone.generate(h.now());
    let done = h
        .service
        .confirm_enrollment(&h.proof(&user).await, &code)
        .await
        .unwrap();
    assert_eq!(done.backup_codes.as_ref().map(Vec::len), Some(10));
    let status = h.service.status(&user).await.unwrap();
    assert!(status.enabled);
    assert_eq!(status.backup_codes_remaining, 10);
    // The confirming code's step is used: the same code cannot log in.
    let token = h.pending("alice").await;
    let err = h.code(&token, &code).await.unwrap_err();
    assert_eq!(code_of(&err), "code_already_used");
    // A second setup is refused while 2FA is on.
    assert_eq!(
        code_of(
            &h.service
                .setup_two_factor(&h.proof(&user).await)
                .await
                .unwrap_err()
        ),
        "two_factor_already_enabled"
    );
}

#[tokio::test]
async fn setup_expires_and_a_new_setup_replaces_the_old() {
    let h = harness();
    let user = h.service.register("bob", PW).await.unwrap();
    let first = h.start_setup(&user).await;
    let second = h.start_setup(&user).await;
    let old = h.phone_of(&first);
    let new = h.phone_of(&second);
    let err = h
        .service
        .confirm_enrollment(&h.proof(&user).await, &old.generate(h.now()))
        .await
        .unwrap_err();
    assert_eq!(
        code_of(&err),
        "invalid_code",
        "the replaced secret must not confirm"
    );
    h.advance(601);
    let err = h
        .service
        .confirm_enrollment(&h.proof(&user).await, &new.generate(h.now()))
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), "setup_expired");
    assert!(!h.service.status(&user).await.unwrap().enabled);
}

#[tokio::test]
async fn the_pending_enrollment_can_be_shown_again_until_confirmed_or_expired() {
    let h = harness();
    let user = h.service.register("carol", PW).await.unwrap();
    assert!(
        h.service
            .pending_enrollment(&h.proof(&user).await)
            .await
            .unwrap()
            .is_none()
    );
    let setup = h.start_setup(&user).await;
    h.advance(100);
    let again = h
        .service
        .pending_enrollment(&h.proof(&user).await)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.secret(), setup.secret());
    assert_eq!(*again.uri(), *setup.uri());
    assert_eq!(again.expires_in(), Duration::from_secs(500));
    let phone = h.phone_of(&again);
    h.service
        .confirm_enrollment(&h.proof(&user).await, &phone.generate(h.now()))
        .await
        .unwrap();
    assert!(
        h.service
            .pending_enrollment(&h.proof(&user).await)
            .await
            .unwrap()
            .is_none()
    );

    let dave = h.service.register("dave", PW).await.unwrap();
    h.service
        .setup_two_factor(&h.proof(&dave).await)
        .await
        .unwrap();
    h.advance(601);
    assert!(
        h.service
            .pending_enrollment(&h.proof(&dave).await)
            .await
            .unwrap()
            .is_none()
    );
}

// ---------------------------------------------------------------------------------
// Invariant 1: only the core makes Authenticated; a pending login is not a session.

#[tokio::test]
async fn a_pending_login_token_is_not_a_session() {
    let h = harness();
    let (_user, _phone, _) = h.enrolled("carol").await;
    let token = h.pending("carol").await;
    assert_eq!(
        code_of(&h.service.session(&token).await.unwrap_err()),
        "unauthenticated"
    );
}

#[tokio::test]
async fn full_login_issues_a_session_that_logout_ends() {
    let h = harness();
    let (user, phone, _) = h.enrolled("dave").await;
    let token = h.pending("dave").await;
    let auth = h.totp(&token, &phone).await.unwrap();
    assert_eq!(auth.method(), AuthMethod::Totp);
    assert_eq!(auth.user_id(), &user);
    let session = h.service.issue_session(auth).await.unwrap();
    assert_eq!(
        h.service.session(session.expose()).await.unwrap().user_id(),
        &user
    );
    // The pending login was single use.
    let again = h
        .service
        .second_factor(&token, SecondFactor::Totp(&phone.generate(h.now() + 30)))
        .await
        .unwrap_err();
    assert_eq!(code_of(&again), "login_expired");
    h.service.end_session(session.expose()).await.unwrap();
    assert!(h.service.session(session.expose()).await.is_err());
}

// ---------------------------------------------------------------------------------
// Invariant 2: a code is accepted at most once.

#[tokio::test]
async fn a_totp_code_is_accepted_once_and_replay_is_audited() {
    let h = harness();
    let (user, phone, _) = h.enrolled("erin").await;
    let code = phone.generate(h.now());
    let t1 = h.pending("erin").await;
    let _ = h.code(&t1, &code).await.unwrap();
    let t2 = h.pending("erin").await;
    let err = h
        .service
        .second_factor(
            &t2,
            SecondFactor::Totp(&format!(" {} {} ", &code[..3], &code[3..])),
        )
        .await
        .unwrap_err();
    assert_eq!(code_of(&err), "code_already_used");
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::CodeReplayed { user_id, .. } if *user_id == user
    )));
    // The pending login survives a replayed code: the next code works on it.
    h.advance(30);
    let _ = h.totp(&t2, &phone).await.unwrap();
}

#[tokio::test]
async fn an_older_step_is_refused_after_a_newer_one() {
    let h = harness();
    let (_user, phone, _) = h.enrolled("fay").await;
    let newer = phone.generate(h.now() + 30); // the next step, inside the +1 skew
    let older = phone.generate(h.now());
    let t = h.pending("fay").await;
    let _ = h.code(&t, &newer).await.unwrap();
    let t = h.pending("fay").await;
    let err = h.code(&t, &older).await.unwrap_err();
    assert_eq!(code_of(&err), "code_already_used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_use_of_one_code_has_exactly_one_winner() {
    for round in 0..100 {
        let h = harness();
        let (_user, phone, _) = h.enrolled("gus").await;
        let code = phone.generate(h.now());
        let mut attempts = Vec::new();
        for _ in 0..8 {
            attempts.push((h.pending("gus").await, code.clone()));
        }
        let mut wins = 0;
        for r in h.race(attempts, false).await {
            match r {
                Ok(_) => wins += 1,
                // Losers see the replay, or the account lock once the racers
                // outnumber the free attempts.
                Err(e) => assert!(
                    matches!(e.code(), "code_already_used" | "too_many_attempts"),
                    "round {round}: {e:?}"
                ),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_use_of_one_backup_code_has_exactly_one_winner() {
    for round in 0..100 {
        let h = harness();
        let (user, _phone, codes) = h.enrolled("hal").await;
        let mut attempts = Vec::new();
        for _ in 0..8 {
            attempts.push((h.pending("hal").await, codes[0].clone()));
        }
        let mut wins = 0;
        for r in h.race(attempts, true).await {
            match r {
                Ok(a) => {
                    assert_eq!(a.method(), AuthMethod::BackupCode);
                    wins += 1
                }
                // A loser reads the code as spent once the winner marked it.
                Err(e) => assert!(
                    matches!(
                        e.code(),
                        "invalid_code" | "backup_code_used" | "too_many_attempts"
                    ),
                    "round {round}: {e:?}"
                ),
            }
        }
        assert_eq!(wins, 1, "round {round}");
        assert_eq!(
            h.service
                .status(&user)
                .await
                .unwrap()
                .backup_codes_remaining,
            9
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_pending_login_completes_at_most_once_under_a_race() {
    for round in 0..100 {
        let h = harness();
        let (_user, _phone, codes) = h.enrolled("ian").await;
        let token = h.pending("ian").await;
        // Each racer brings a different, valid backup code.
        let attempts = (0..4).map(|i| (token.clone(), codes[i].clone())).collect();
        let wins = h
            .race(attempts, true)
            .await
            .iter()
            .filter(|r| r.is_ok())
            .count();
        assert_eq!(wins, 1, "round {round}");
    }
}

#[tokio::test]
async fn backup_codes_are_single_use_case_and_hyphen_insensitive() {
    let h = harness();
    let (user, _phone, codes) = h.enrolled("jan").await;
    let messy = codes[3].replace('-', " ").to_lowercase();
    let t = h.pending("jan").await;
    let _ = h.backup(&t, &messy).await.unwrap();
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::BackupCodeUsed { user_id, remaining: 9 } if *user_id == user
    )));
    let t = h.pending("jan").await;
    let err = h.backup(&t, &codes[3]).await.unwrap_err();
    // Said as spent, and counted like any wrong code (one attempt of five gone).
    assert_eq!(code_of(&err), "backup_code_used");
    assert!(matches!(
        err,
        Error::BackupCodeUsed {
            remaining_attempts: Some(4)
        }
    ));
    assert!(h.events().iter().any(|e| matches!(
        e,
        Event::SecondFactorRejected { user_id, remaining_attempts: 4 } if *user_id == user
    )));
    // A code that never was one stays `invalid_code`.
    let err = h.backup(&t, "AAAAA-AAAAA-AAAAA").await.unwrap_err();
    assert_eq!(code_of(&err), "invalid_code");
}

#[tokio::test]
async fn a_pending_login_is_burnt_after_its_attempts_and_void_after_a_password_change() {
    let h = harness();
    let (user, phone, _) = h.enrolled("kim").await;
    let t = h.pending("kim").await;
    let wrong = h.wrong_code(&phone);
    let mut left = Vec::new();
    for _ in 0..5 {
        match h.code(&t, &wrong).await {
            Err(Error::InvalidCode { remaining_attempts }) => {
                left.push(remaining_attempts.unwrap())
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(left, vec![4, 3, 2, 1, 0]);
    // Burnt: even the right code no longer completes it.
    let err = h.totp(&t, &phone).await.unwrap_err();
    assert_eq!(code_of(&err), "login_expired");

    // A password change voids pending logins made before it.
    let t = h.pending("kim").await;
    h.change_password(&user, PW, "a whole new password")
        .await
        .unwrap();
    let err = h.totp(&t, &phone).await.unwrap_err();
    assert_eq!(code_of(&err), "login_expired");
}

#[tokio::test]
async fn a_pending_login_expires() {
    let h = harness();
    let (_user, phone, _) = h.enrolled("lea").await;
    let t = h.pending("lea").await;
    h.advance(301);
    let err = h.totp(&t, &phone).await.unwrap_err();
    assert_eq!(code_of(&err), "login_expired");
    for garbage in ["", "x", "not a token at all", &"A".repeat(5000)] {
        let err = h.code(garbage, "123456").await.unwrap_err();
        assert_eq!(code_of(&err), "login_expired");
    }
}

// ---------------------------------------------------------------------------------
// Invariant 3: failures count per account; lockout doubles; typos cost nothing.

#[tokio::test]
async fn restarting_the_password_step_gives_no_fresh_attempts() {
    let h = harness();
    let (user, phone, _) = h.enrolled("max").await;
    let wrong = h.wrong_code(&phone);
    // Six failures spread over six pending logins (one each).
    for i in 0..6 {
        let t = h.pending("max").await;
        let err = h.code(&t, &wrong).await.unwrap_err();
        assert_eq!(code_of(&err), "invalid_code", "failure {i}");
    }
    // A brand-new pending login is locked all the same.
    let t = h.pending("max").await;
    match h.totp(&t, &phone).await {
        Err(Error::TooManyAttempts {
            retry_after,
            limiter,
        }) => {
            assert_eq!(retry_after.as_secs(), 60);
            assert_eq!(limiter, secondfactor::error::Limiter::Account);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, Event::LockedOut { user_id, .. } if *user_id == user))
    );
    // After the lockout the right code works and resets the count.
    h.advance(60);
    let _ = h.totp(&t, &phone).await.unwrap();
    let t = h.pending("max").await;
    match h.code(&t, &wrong).await {
        Err(Error::InvalidCode { remaining_attempts }) => assert_eq!(remaining_attempts, Some(4)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_user_with_five_typos_waits_zero_seconds() {
    let h = harness();
    let (_user, phone, _) = h.enrolled("ned").await;
    let wrong = h.wrong_code(&phone);
    let t = h.pending("ned").await;
    for _ in 0..4 {
        let _ = h.code(&t, &wrong).await.unwrap_err();
    }
    // Fifth typo on a fresh pending login (the user gave up on the first one).
    let t = h.pending("ned").await;
    let _ = h.code(&t, &wrong).await.unwrap_err();
    // The right code now, without any wait.
    let _ = h
        .totp(&t, &phone)
        .await
        .expect("a user with 5 typos must not wait");
}

/// The best attacker knows the password and guesses as fast as the policy allows for
/// 30 days, restarting the login whenever useful. Each guess is a code that is wrong
/// now (so the account stays locked on the real schedule); each would have had a
/// 3 in 10^6 chance had it been random, since ±1 skew accepts 3 codes. The success
/// probability over all guesses must stay under 1e-4.
#[tokio::test]
async fn attacker_simulation_30_days_success_probability_below_1e_4() {
    simulate_attacker(0).await;
}

#[tokio::test]
async fn attacker_simulation_holds_while_the_owner_logs_in_daily() {
    simulate_attacker(1).await;
}

#[tokio::test]
async fn attacker_simulation_holds_while_the_owner_logs_in_twice_a_day() {
    simulate_attacker(2).await;
}

/// A greedy attacker who knows the password guesses TOTP codes for 30 days, waiting
/// out every lockout, while the owner logs in `owner_per_day` times a day with the
/// right code (each success clears the short lockout). Asserts the attacker's success
/// probability stays at or under 1e-4.
async fn simulate_attacker(owner_per_day: u64) {
    let h = harness();
    let (_user, phone, _) = h.enrolled("victim").await;
    let start = h.now();
    let end = start + 30 * 24 * 3600;
    let owner_every = (24 * 3600u64).checked_div(owner_per_day);
    let mut next_owner = owner_every.map_or(u64::MAX, |e| start + e);
    let (mut guesses, mut owner_ok, mut owner_refused) = (0u64, 0u32, 0u32);
    let mut token = h.pending("victim").await;
    while h.now() < end {
        if h.now() >= next_owner {
            // Skip to a fresh 30 s step so the owner's code is unused.
            h.advance(30);
            let t = h.pending("victim").await;
            match h.totp(&t, &phone).await {
                Ok(_) => owner_ok += 1,
                Err(Error::TooManyAttempts { .. }) => owner_refused += 1,
                other => panic!("owner: {other:?}"),
            }
            next_owner += owner_every.unwrap_or(u64::MAX);
            continue;
        }
        let wrong = h.wrong_code(&phone);
        match h.code(&token, &wrong).await {
            Err(Error::InvalidCode { .. }) => guesses += 1,
            Err(Error::TooManyAttempts { retry_after, .. }) => {
                let wait = retry_after.as_secs().max(1);
                h.advance(wait.min(next_owner.saturating_sub(h.now())).max(1));
            }
            Err(Error::LoginExpired) => token = h.pending("victim").await,
            other => panic!("unexpected {other:?}"),
        }
    }
    let p_fail_each = 1.0 - 3.0 / 1e6;
    let p_success = 1.0 - f64::powi(p_fail_each, guesses as i32);
    println!(
        "owner logs in {owner_per_day}/day ({owner_ok} ok, {owner_refused} refused while \
         locked): attacker {guesses} guesses in 30 days, success probability {p_success:e}"
    );
    assert!(
        p_success <= 1e-4,
        "{guesses} guesses in 30 days: success probability {p_success:e}"
    );
    assert!(guesses >= 6, "the free attempts must be usable");
}

// ---------------------------------------------------------------------------------
// Invariant 4: secrets never leave in clear.

#[tokio::test]
async fn the_store_sees_only_sealed_secrets_and_hashed_backup_codes() {
    let h = harness();
    let user = h.service.register("olga", PW).await.unwrap();
    let setup = h.start_setup(&user).await;
    let secret_bytes = setup.secret().expose_bytes().to_vec();
    let b32 = setup.secret().to_base32().to_string();
    let phone = TotpKey::new(h.service.totp_policy(), &secret_bytes);
    let done = h
        .service
        .confirm_enrollment(&h.proof(&user).await, &phone.generate(h.now()))
        .await
        .unwrap();
    let auths = h.store.authenticators(&user).await.unwrap();
    assert_eq!(auths.len(), 1);
    let sealed = auths[0].sealed_secret.as_bytes();
    assert!(
        !sealed
            .windows(secret_bytes.len())
            .any(|w| w == secret_bytes)
    );
    // Debug output of everything the flows hand out is redacted.
    let dbg = format!("{setup:?} {done:?} {:?}", auths[0]);
    assert!(!dbg.contains(&b32), "{dbg}");
    for c in done.backup_codes.as_ref().unwrap() {
        assert!(!dbg.contains(c.expose()));
    }
    for e in h.events() {
        let s = format!("{e:?}");
        assert!(!s.contains(&b32));
    }
}

// ---------------------------------------------------------------------------------
// Invariant 5: an unknown user costs the same password work.

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same_and_cost_the_same() {
    let h = harness();
    h.service.register("pat", PW).await.unwrap();
    let before = h.blocking.0.load(Ordering::SeqCst);
    let unknown = h
        .service
        .login(LoginRequest::new("nobody", PW))
        .await
        .unwrap_err();
    let mid = h.blocking.0.load(Ordering::SeqCst);
    let wrong = h
        .service
        .login(LoginRequest::new("pat", "wrong password"))
        .await
        .unwrap_err();
    let after = h.blocking.0.load(Ordering::SeqCst);
    assert_eq!(unknown.code(), "invalid_credentials");
    assert_eq!(wrong.code(), "invalid_credentials");
    assert_eq!(unknown.to_string(), wrong.to_string());
    assert_eq!(mid - before, 1, "an unknown user must cost one argon2 run");
    assert_eq!(after - mid, 1);
}

// ---------------------------------------------------------------------------------
// Invariant 6: bad input is an error value, bounded before work, never a panic.

#[tokio::test]
async fn bad_input_is_invalid_input_and_counts_no_attempt() {
    let h = harness();
    let (_user, phone, _) = h.enrolled("quin").await;
    let t = h.pending("quin").await;
    for bad in [
        "12345",
        "1234567",
        "12a456",
        "١٢٣٤٥٦",
        "",
        "123\t456",
        &"1".repeat(10_000),
    ] {
        let err = h
            .service
            .second_factor(&t, SecondFactor::Totp(bad))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{bad:?}");
    }
    for bad in ["O0O0O-11111-IIIII", "short", &"A".repeat(200)] {
        let err = h
            .service
            .second_factor(&t, SecondFactor::BackupCode(bad))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{bad:?}");
    }
    // None of those counted: all 5 attempts are still there.
    let wrong = h.wrong_code(&phone);
    match h.code(&t, &wrong).await {
        Err(Error::InvalidCode { remaining_attempts }) => assert_eq!(remaining_attempts, Some(4)),
        other => panic!("{other:?}"),
    }
    let long = "x".repeat(1025);
    let before = h.blocking.0.load(Ordering::SeqCst);
    let err = h
        .service
        .login(LoginRequest::new("quin", &long))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert_eq!(h.blocking.0.load(Ordering::SeqCst), before, "no hashing");
    for (u, p) in [
        ("", PW),
        ("a b", PW),
        (&"a".repeat(65) as &str, PW),
        ("ok", "short"),
    ] {
        let err = h.service.register(u, p).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{u:?}");
    }
    assert_eq!(
        h.service.register("QUIN", PW).await.unwrap_err().code(),
        "username_taken"
    );
}

// ---------------------------------------------------------------------------------
// Authenticators, disable, regenerate, trusted devices, password change.

#[tokio::test]
async fn a_second_authenticator_has_its_own_last_step() {
    let h = harness();
    let (user, phone, _) = h.enrolled("rae").await;
    let (_, phone2) = h.start_adding(&user, "backup phone").await;
    let done = h.confirm(&user, &phone2).await.unwrap();
    assert!(done.backup_codes.is_none());
    let status = h.service.status(&user).await.unwrap();
    assert_eq!(status.authenticators.len(), 2);
    assert_eq!(status.authenticators[1].name, "backup phone");
    // The first phone's code for this step is still fresh: the steps are per authenticator.
    let _ = h.login_with("rae", &phone).await;
    h.advance(30);
    let t = h.pending("rae").await;
    let _ = h
        .service
        .second_factor(&t, SecondFactor::Totp(&phone2.generate(h.now())))
        .await
        .unwrap();
    // Remove the first; the last one cannot be removed.
    let first = status.authenticators[0].id.clone();
    h.service
        .remove_authenticator(&h.proof(&user).await, &first)
        .await
        .unwrap();
    let last = status.authenticators[1].id.clone();
    assert_eq!(
        h.service
            .remove_authenticator(&h.proof(&user).await, &last)
            .await
            .unwrap_err()
            .code(),
        "last_authenticator"
    );
    h.advance(30);
    let t = h.pending("rae").await;
    let err = h.totp(&t, &phone).await.unwrap_err();
    assert_eq!(
        err.code(),
        "invalid_code",
        "a removed authenticator's codes are refused"
    );
}

#[tokio::test]
async fn disable_and_regenerate_need_a_valid_factor() {
    let h = harness();
    let (user, phone, codes) = h.enrolled("sam").await;
    let wrong = h.wrong_code(&phone);
    assert_eq!(
        h.service
            .regenerate_backup_codes(&h.proof(&user).await, &wrong)
            .await
            .unwrap_err()
            .code(),
        "invalid_code"
    );
    let fresh = h
        .service
        .regenerate_backup_codes(&h.proof(&user).await, &phone.generate(h.now()))
        .await
        .unwrap();
    assert_eq!(fresh.len(), 10);
    // The old set stops working.
    let err = h
        .service
        .disable_two_factor(&h.proof(&user).await, SecondFactor::BackupCode(&codes[0]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_code");
    h.service
        .disable_two_factor(
            &h.proof(&user).await,
            SecondFactor::BackupCode(fresh[0].expose()),
        )
        .await
        .unwrap();
    let status = h.service.status(&user).await.unwrap();
    assert!(!status.enabled);
    assert_eq!(status.backup_codes_remaining, 0);
    assert_eq!(
        h.service
            .disable_two_factor(&h.proof(&user).await, SecondFactor::Totp("123456"))
            .await
            .unwrap_err()
            .code(),
        "two_factor_not_enabled"
    );
}

#[tokio::test]
async fn disable_is_throttled_per_account() {
    let h = harness();
    let (user, phone, _) = h.enrolled("tia").await;
    let wrong = h.wrong_code(&phone);
    for _ in 0..6 {
        assert_eq!(
            h.service
                .disable_two_factor(&h.proof(&user).await, SecondFactor::Totp(&wrong))
                .await
                .unwrap_err()
                .code(),
            "invalid_code"
        );
    }
    assert_eq!(
        h.service
            .disable_two_factor(
                &h.proof(&user).await,
                SecondFactor::Totp(&phone.generate(h.now()))
            )
            .await
            .unwrap_err()
            .code(),
        "too_many_attempts"
    );
    assert!(h.service.status(&user).await.unwrap().enabled);
}

#[tokio::test]
async fn trusted_devices_skip_the_second_factor_until_revoked() {
    let h = harness();
    let (user, phone, _) = h.enrolled("uma").await;
    let (_, device) = h.login_trusting("uma", &phone, "Firefox").await;
    let login = |d: String| {
        let s = h.service.clone();
        async move { s.login(LoginRequest::new("uma", PW).device_token(&d)).await }
    };
    match login(device.expose().to_owned()).await.unwrap() {
        LoginOutcome::Authenticated(a) => assert_eq!(a.method(), AuthMethod::TrustedDevice),
        other => panic!("{other:?}"),
    }
    // A device token does not stand in for the password.
    assert!(
        h.service
            .login(LoginRequest::new("uma", "wrong password").device_token(device.expose()))
            .await
            .is_err()
    );
    // A device trusted by one user does nothing for another.
    let (_other, _, _) = h.enrolled("vic").await;
    let r = h
        .service
        .login(LoginRequest::new("vic", PW).device_token(device.expose()))
        .await
        .unwrap();
    assert!(matches!(r, LoginOutcome::SecondFactorRequired(_)));
    // Listing and revoking one by one.
    let devices = h.service.trusted_devices(&user).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].label, "Firefox");
    h.service
        .revoke_device(&user, &devices[0].id)
        .await
        .unwrap();
    assert!(matches!(
        login(device.expose().to_owned()).await.unwrap(),
        LoginOutcome::SecondFactorRequired(_)
    ));
    // A password-only login cannot trust a device.
    let plain = h.service.register("wes", PW).await.unwrap();
    let _ = plain;
    let LoginOutcome::Authenticated(a) =
        h.service.login(LoginRequest::new("wes", PW)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        h.service.trust_device(&a, "x").await.unwrap_err().code(),
        "invalid_input"
    );
}

#[tokio::test]
async fn devices_are_revoked_on_disable_and_on_password_change_and_expire() {
    let h = harness();
    let (user, phone, codes) = h.enrolled("xia").await;
    let trust = |h: &Harness| {
        let s = h.service.clone();
        let code = phone.generate(h.now());
        async move {
            let LoginOutcome::SecondFactorRequired(t) =
                s.login(LoginRequest::new("xia", PW)).await.unwrap()
            else {
                panic!()
            };
            let a = s
                .second_factor(t.token.expose(), SecondFactor::Totp(&code))
                .await
                .unwrap();
            s.trust_device(&a, "phone").await.unwrap()
        }
    };
    let d1 = trust(&h).await;
    let session = {
        h.advance(30);
        let t = h.pending("xia").await;
        let a = h.backup(&t, &codes[0]).await.unwrap();
        h.service.issue_session(a).await.unwrap()
    };
    h.change_password(&user, PW, "another good password")
        .await
        .unwrap();
    assert!(h.service.trusted_devices(&user).await.unwrap().is_empty());
    let r = h
        .service
        .login(LoginRequest::new("xia", "another good password").device_token(d1.expose()))
        .await
        .unwrap();
    assert!(matches!(r, LoginOutcome::SecondFactorRequired(_)));
    // The old session ended with the password change; the new one works.
    assert!(h.service.session(session.expose()).await.is_err());
    // The session that made the change got a fresh one in place of its own.
    let fresh = h.session_of(&user).await;
    assert!(h.service.session(&fresh).await.is_ok());
    assert_eq!(
        h.change_password(&user, "wrong password", "yet another password")
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
    let _ = h.service.end_session(&fresh).await;
    let _ = user;
    let _ = h.events();
}

#[tokio::test]
async fn password_only_accounts_log_in_directly_and_rate_limit_per_client() {
    let h = harness();
    h.service.register("yan", PW).await.unwrap();
    // Successful logins give their attempt back: users behind one NAT are not
    // limited by each other's logins.
    for _ in 0..25 {
        match h
            .service
            .login(LoginRequest::new("yan", PW).client_key("10.0.0.1"))
            .await
        {
            Ok(LoginOutcome::Authenticated(a)) => assert_eq!(a.method(), AuthMethod::Password),
            other => panic!("{other:?}"),
        }
    }
    // Wrong passwords (here for many different names) count on the client.
    let mut limited = None;
    for i in 0..25 {
        match h
            .service
            .login(LoginRequest::new(&format!("nobody{i}"), PW).client_key("10.0.0.1"))
            .await
        {
            Err(Error::InvalidCredentials) => {}
            Err(Error::TooManyAttempts { retry_after, .. }) => {
                limited = Some((i, retry_after));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let (i, retry) = limited.expect("the client limiter must trip");
    assert_eq!(i, 20);
    assert!(retry.as_secs() <= 60);
    // Another client is not affected.
    assert!(
        h.service
            .login(LoginRequest::new("yan", PW).client_key("10.0.0.2"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn builder_validates_configuration() {
    let keys = || KeyRing::new(1, SealingKey::generate());
    for b in [
        Service::builder(MemoryStore::new(), keys()).issuer(""),
        Service::builder(MemoryStore::new(), keys()).issuer("a:b"),
        Service::builder(MemoryStore::new(), keys()).login_ttl(Duration::ZERO),
        Service::builder(MemoryStore::new(), keys()).backup_code_count(0),
    ] {
        assert_eq!(b.build().unwrap_err().code(), "invalid_config");
    }
}

#[tokio::test]
async fn sessions_expire_on_the_clock() {
    let h = harness();
    h.service.register("zed", PW).await.unwrap();
    let LoginOutcome::Authenticated(a) =
        h.service.login(LoginRequest::new("zed", PW)).await.unwrap()
    else {
        panic!()
    };
    let s = h.service.issue_session(a).await.unwrap();
    h.advance(12 * 3600 - 1);
    assert!(h.service.session(s.expose()).await.is_ok());
    h.advance(1);
    assert_eq!(
        h.service.session(s.expose()).await.unwrap_err().code(),
        "unauthenticated"
    );
}

#[tokio::test]
async fn wrong_current_passwords_are_throttled_on_password_change() {
    let h = harness();
    let user = h.service.register("pia", PW).await.unwrap();
    for i in 0..6 {
        let err = h
            .change_password(&user, "not the password", "a new password")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_credentials", "guess {i}");
    }
    // Even the right password waits now: guessing from a stolen session is slowed down.
    match h.change_password(&user, PW, "a new password").await {
        Err(Error::TooManyAttempts { retry_after, .. }) => assert_eq!(retry_after.as_secs(), 60),
        other => panic!("{other:?}"),
    }
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, Event::LockedOut { user_id, .. } if *user_id == user))
    );
    h.advance(60);
    h.change_password(&user, PW, "a new password")
        .await
        .unwrap();
    // The second-factor counter is a different one: the login is not locked.
    assert!(matches!(
        h.service
            .login(LoginRequest::new("pia", "a new password"))
            .await
            .unwrap(),
        LoginOutcome::Authenticated(_)
    ));
}

/// An operator tool finds an account by its login name as registration stored it
/// (any case, surrounding case folded), and a name registration would refuse finds
/// nothing instead of an error.
#[tokio::test]
async fn find_user_takes_the_login_name_as_registration_stores_it() {
    let h = harness();
    let user = h.service.register("Alice.Smith", PW).await.unwrap();
    for name in ["alice.smith", "ALICE.SMITH", "Alice.Smith"] {
        assert_eq!(
            h.service.find_user(name).await.unwrap(),
            Some(user.clone()),
            "{name}"
        );
    }
    for name in [
        "bob",
        "",
        "alice smith",
        "alice.smith\u{0}",
        &"a".repeat(65),
    ] {
        assert_eq!(h.service.find_user(name).await.unwrap(), None, "{name:?}");
    }
}
