//! Limits that hold for accounts in use and for attackers with many addresses
//! (invariant 9): each measurement of the limits issue, repeated as a test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secondfactor::clock::ManualClock;
use secondfactor::flow::{Blocking, Inline};
use secondfactor::password::PasswordHasher;
use secondfactor::secret::{KeyRing, SealingKey};
use secondfactor::security_log::SecurityEventKind;
use secondfactor::store::MemoryStore;
use secondfactor::throttle::client_key;
use secondfactor::{Error, LoginOutcome, LoginRequest, SecondFactor, Service};

mod harness;
use harness::*;

fn v4(i: u32) -> String {
    client_key(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)))
}

async fn known_token(h: &Harness, name: &str) -> String {
    let LoginOutcome::Authenticated(a) =
        h.service.login(LoginRequest::new(name, PW)).await.unwrap()
    else {
        panic!("password-only account expected")
    };
    h.service.remember_browser(&a).expose().to_owned()
}

// ---------------------------------------------------------------------------------
// Wrong passwords count per account, across every client address.

#[tokio::test]
async fn wrong_passwords_from_500_addresses_are_limited_per_account() {
    let h = harness();
    h.service.register("target", PW).await.unwrap();
    let mut throttled = 0;
    for i in 0..500 {
        match h
            .service
            .login(LoginRequest::new("target", &format!("guess {i}")).client_key(&v4(i)))
            .await
        {
            Err(Error::InvalidCredentials) => {}
            Err(Error::TooManyAttempts { .. }) => throttled += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(throttled, 490, "10 guesses, then refused");
    // The right password from a new browser is refused too while it lasts...
    assert_eq!(
        code_of(
            &h.service
                .login(LoginRequest::new("target", PW).client_key(&v4(9999)))
                .await
                .err()
                .unwrap()
        ),
        "too_many_attempts"
    );
    // ...and the lockout ends with its time (15 minutes for the 11th failure).
    h.advance(15 * 60);
    assert!(
        h.service
            .login(LoginRequest::new("target", PW).client_key(&v4(9999)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_known_browser_is_never_locked_out_by_an_attacker_guessing() {
    let h = harness();
    h.service.register("owner", PW).await.unwrap();
    let known = known_token(&h, "owner").await;
    for i in 0..100 {
        let _ = h
            .service
            .login(LoginRequest::new("owner", &format!("guess {i}")).client_key(&v4(i)))
            .await;
    }
    // The owner's browser logs in at once, and its own typo is not refused.
    let r = h
        .service
        .login(
            LoginRequest::new("owner", "owner's typo")
                .client_key("192.0.2.1")
                .known_browser(&known),
        )
        .await;
    assert_eq!(code_of(&r.err().unwrap()), "invalid_credentials");
    assert!(matches!(
        h.service
            .login(
                LoginRequest::new("owner", PW)
                    .client_key("192.0.2.1")
                    .known_browser(&known)
            )
            .await
            .unwrap(),
        LoginOutcome::Authenticated(_)
    ));
    // A token of another account, or a forged one, exempts nothing.
    h.service.register("other", PW).await.unwrap();
    let others = known_token(&h, "other").await;
    for token in [others.as_str(), "forged", ""] {
        assert_eq!(
            code_of(
                &h.service
                    .login(LoginRequest::new("owner", PW).known_browser(token))
                    .await
                    .err()
                    .unwrap()
            ),
            "too_many_attempts"
        );
    }
}

#[tokio::test]
async fn a_password_change_voids_known_browser_tokens() {
    let h = harness();
    let user = h.service.register("owner", PW).await.unwrap();
    let known = known_token(&h, "owner").await;
    h.change_password(&user, PW, "the new password")
        .await
        .unwrap();
    for i in 0..10 {
        let _ = h
            .service
            .login(LoginRequest::new("owner", &format!("guess {i}")))
            .await;
    }
    assert_eq!(
        code_of(
            &h.service
                .login(LoginRequest::new("owner", "the new password").known_browser(&known))
                .await
                .err()
                .unwrap()
        ),
        "too_many_attempts"
    );
}

#[tokio::test]
async fn an_unknown_username_is_limited_the_same_and_costs_the_same() {
    let h = harness();
    h.service.register("real", PW).await.unwrap();
    let run = |name: &'static str| {
        let h = &h;
        async move {
            let before = h.blocking.0.load(Ordering::SeqCst);
            let mut codes = Vec::new();
            for i in 0..12 {
                let r = h
                    .service
                    .login(LoginRequest::new(name, &format!("guess {i}")).client_key(&v4(i)))
                    .await;
                codes.push(code_of(&r.err().unwrap()));
            }
            (codes, h.blocking.0.load(Ordering::SeqCst) - before)
        }
    };
    let (real, real_jobs) = run("real").await;
    let (ghost, ghost_jobs) = run("ghost").await;
    assert_eq!(real, ghost);
    assert_eq!(real[9], "invalid_credentials");
    assert_eq!(real[10], "too_many_attempts");
    assert_eq!(real_jobs, ghost_jobs, "the same argon2 work");
    assert_eq!(real_jobs, 10, "no argon2 work once refused");
}

#[tokio::test]
async fn the_owner_sees_the_guesses_in_the_security_log() {
    let h = harness();
    let user = h.service.register("owner", PW).await.unwrap();
    for i in 0..11 {
        let _ = h
            .service
            .login(LoginRequest::new("owner", &format!("guess {i}")).client_key(&v4(i)))
            .await;
    }
    let log = h.service.security_log(&user).await.unwrap();
    let failed = log
        .iter()
        .filter(|e| e.kind == SecurityEventKind::LoginFailed)
        .count();
    assert_eq!(failed, 10);
    assert_eq!(log[0].kind, SecurityEventKind::LockedOut);
    assert_eq!(log[1].client.as_deref(), Some(v4(9).as_str()));
}

// ---------------------------------------------------------------------------------
// Client keys.

#[tokio::test]
async fn one_ipv6_slash_64_is_one_client() {
    let h = harness();
    let mut throttled = 0;
    for i in 0..500u32 {
        let ip = Ipv6Addr::new(0x2001, 0xdb8, 7, 9, (i >> 16) as u16, i as u16, 0x1234, 1);
        match h
            .service
            .login(
                LoginRequest::new(&format!("user{i}"), "some password")
                    .client_key(&client_key(IpAddr::V6(ip))),
            )
            .await
        {
            Err(Error::InvalidCredentials) => {}
            Err(Error::TooManyAttempts { .. }) => throttled += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(throttled, 480, "20 a minute for the whole /64");
    // The next /64 is another client.
    let next = Ipv6Addr::new(0x2001, 0xdb8, 7, 10, 0, 0, 0, 1);
    assert_eq!(
        code_of(
            &h.service
                .login(
                    LoginRequest::new("someone", "some password")
                        .client_key(&client_key(IpAddr::V6(next)))
                )
                .await
                .err()
                .unwrap()
        ),
        "invalid_credentials"
    );
}

#[tokio::test]
async fn registrations_count_on_the_client_limiter() {
    let h = harness();
    let mut refused = 0;
    for i in 0..30 {
        match h
            .service
            .register_from("203.0.113.5", &format!("new{i}"), PW)
            .await
        {
            Ok(_) => {}
            Err(Error::TooManyAttempts { .. }) => refused += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(refused, 10);
    // Bad input is refused before it counts.
    assert_eq!(
        code_of(
            &h.service
                .register_from("203.0.113.6", "x y", PW)
                .await
                .unwrap_err()
        ),
        "invalid_input"
    );
    h.service
        .register_from("203.0.113.6", "fine", PW)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------
// The second-factor budget: backup codes stay usable while TOTP is locked.

#[tokio::test]
async fn backup_codes_stay_usable_while_totp_is_locked() {
    let h = harness();
    let (user, phone, codes) = h.enrolled("owner").await;
    // An attacker with the password spends the TOTP budget and the short lockout.
    let mut token = h.pending("owner").await;
    let mut locked = false;
    for _ in 0..200 {
        let wrong = h.wrong_code(&phone);
        match h
            .service
            .second_factor(&token, SecondFactor::Totp(&wrong))
            .await
        {
            Err(Error::InvalidCode { .. }) => {}
            Err(Error::TooManyAttempts { retry_after, .. }) => {
                if retry_after > Duration::from_secs(24 * 3600) {
                    locked = true;
                    break;
                }
                h.advance(retry_after.as_secs());
            }
            Err(Error::LoginExpired) => token = h.pending("owner").await,
            other => panic!("{other:?}"),
        }
    }
    assert!(locked, "the budget must run out");
    // The owner's right TOTP code is refused now...
    h.advance(30);
    let t = h.pending("owner").await;
    assert_eq!(
        code_of(
            &h.service
                .second_factor(&t, SecondFactor::Totp(&phone.generate(h.now())))
                .await
                .unwrap_err()
        ),
        "too_many_attempts"
    );
    // ...but a backup code lets them in.
    let _auth = h
        .service
        .second_factor(&t, SecondFactor::BackupCode(&codes[0]))
        .await
        .unwrap();
    let log = h.service.security_log(&user).await.unwrap();
    assert!(
        log.iter()
            .filter(|e| e.kind == SecurityEventKind::SecondFactorFailed)
            .count()
            >= 10
    );
    assert!(log.iter().any(|e| e.kind == SecurityEventKind::LockedOut));
}

#[tokio::test]
async fn the_owners_successes_do_not_spend_the_budget() {
    let h = harness();
    let (_user, phone, _) = h.enrolled("owner").await;
    // 200 successful logins in a row: none is refused.
    for i in 0..200 {
        h.advance(30);
        let t = h.pending("owner").await;
        let _auth = h
            .service
            .second_factor(&t, SecondFactor::Totp(&phone.generate(h.now())))
            .await
            .unwrap_or_else(|e| panic!("login {i}: {e:?}"));
    }
}

// ---------------------------------------------------------------------------------
// Bounded work: a bounded number of argon2 jobs at once, `busy` past the wait.

/// Runs jobs inline after a yield, tracking how many run at once; its timer fires
/// at once.
#[derive(Clone, Default)]
struct Gauge {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl Blocking for Gauge {
    fn run(
        &self,
        job: Box<dyn FnOnce() + Send + 'static>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let g = self.clone();
        Box::pin(async move {
            let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
            g.max.fetch_max(n, Ordering::SeqCst);
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(2)).await;
            Inline.run(job).await;
            g.now.fetch_sub(1, Ordering::SeqCst);
        })
    }

    fn sleep(
        &self,
        duration: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

fn bounded_service(gauge: Gauge, slots: usize, wait: Duration) -> Service<MemoryStore> {
    Service::builder(MemoryStore::new(), KeyRing::new(1, SealingKey::generate()))
        .clock(ManualClock::new(T0))
        .password_hasher(PasswordHasher::new(256, 1, 1).unwrap())
        .blocking(gauge)
        .max_concurrent_hashes(slots)
        .hash_wait(wait)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_registrations_runs_a_bounded_number_of_hashes_at_once() {
    let gauge = Gauge::default();
    let service = bounded_service(gauge.clone(), 3, Duration::from_secs(30));
    let barrier = Arc::new(tokio::sync::Barrier::new(60));
    let mut tasks = Vec::new();
    for i in 0..60 {
        let (s, b) = (service.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            s.register(&format!("burst{i}"), PW).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let max = gauge.max.load(Ordering::SeqCst);
    assert!((1..=3).contains(&max), "{max} hashes ran at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_that_finds_no_slot_in_time_is_busy_not_queued_forever() {
    let gauge = Gauge::default();
    let service = bounded_service(gauge, 1, Duration::ZERO);
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (s, b) = (service.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            s.register(&format!("busy{i}"), PW).await
        }));
    }
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => {}
            Err(Error::Busy { retry_after }) => {
                assert!(retry_after >= Duration::from_secs(1));
                busy += 1;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(
        busy > 0,
        "with one slot and no wait, some of 20 must be busy"
    );
    assert_eq!(
        Error::Busy {
            retry_after: Duration::from_secs(1)
        }
        .http_status(),
        503
    );
}

#[tokio::test]
async fn the_right_password_never_starts_a_lockout() {
    let h = harness();
    h.service.register("owner", PW).await.unwrap();
    // Nine wrong passwords, then the right one: that success counted as the tenth
    // attempt before it was checked, and must not leave a lockout behind.
    for i in 0..9 {
        let _ = h
            .service
            .login(LoginRequest::new("owner", &format!("guess {i}")))
            .await;
    }
    for round in 0..3 {
        assert!(
            h.service
                .login(LoginRequest::new("owner", PW))
                .await
                .is_ok(),
            "right password {round}"
        );
    }
}

#[tokio::test]
async fn expired_limiter_state_is_purged() {
    let h = harness();
    for i in 0..50 {
        let _ = h
            .service
            .login(LoginRequest::new(&format!("ghost{i}"), "x").client_key(&v4(i)))
            .await;
    }
    assert_eq!(
        h.service.purge_expired().await.unwrap(),
        0,
        "nothing expired yet"
    );
    h.advance(24 * 3600);
    // 50 client windows and 50 login-name counters.
    assert!(h.service.purge_expired().await.unwrap() >= 100);
    assert_eq!(h.service.purge_expired().await.unwrap(), 0);
}
