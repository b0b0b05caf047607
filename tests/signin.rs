//! One core call per user action: `sign_up`, `sign_in` and `sign_in_second_factor`
//! hand an adapter everything it sets as cookies, lifetimes included.

use std::sync::atomic::Ordering;

use secondfactor::flow::{SecondFactorOptions, SignIn};
use secondfactor::{AuthMethod, LoginRequest, SecondFactor};

mod harness;
use harness::*;

#[tokio::test]
async fn sign_up_logs_in_with_one_argon2_job_and_the_stored_name() {
    let h = harness();
    let before = h.blocking.0.load(Ordering::SeqCst);
    let done = h
        .service
        .sign_up(Some("192.0.2.1"), "New.User@Example.com", PW)
        .await
        .unwrap();
    assert_eq!(h.blocking.0.load(Ordering::SeqCst) - before, 1);
    assert_eq!(done.username, "new.user@example.com");
    assert_eq!(done.method, AuthMethod::Password);
    assert!(done.device.is_none());
    let session = h.service.session(done.session.expose()).await.unwrap();
    assert_eq!(session.username(), "new.user@example.com");
    assert_eq!(done.session_ttl, h.service.session_ttl());
    assert_eq!(done.device_ttl, h.service.device_ttl());
    // The known-browser token works for that account.
    for i in 0..10 {
        let _ = h
            .service
            .login(LoginRequest::new(
                "new.user@example.com",
                &format!("guess {i}"),
            ))
            .await;
    }
    assert!(
        h.service
            .login(
                LoginRequest::new("new.user@example.com", PW)
                    .known_browser(done.known_browser.expose())
            )
            .await
            .is_ok()
    );
    assert_eq!(
        code_of(
            &h.service
                .sign_up(None, "new.user@example.com", PW)
                .await
                .unwrap_err()
        ),
        "username_taken"
    );
}

#[tokio::test]
async fn sign_in_and_second_factor_hand_out_session_device_and_known_browser() {
    let h = harness();
    let (user, phone, _) = h.enrolled("owner").await;
    let SignIn::SecondFactorRequired(ticket) = h
        .service
        .sign_in(LoginRequest::new("owner", PW))
        .await
        .unwrap()
    else {
        panic!("2FA is on")
    };
    // A bad label is refused before the code is looked at.
    let code = phone.generate(h.now());
    let bad = SecondFactorOptions {
        remember_device: Some("\u{7}"),
        ..Default::default()
    };
    assert_eq!(
        code_of(
            &h.service
                .sign_in_second_factor(ticket.token.expose(), SecondFactor::Totp(&code), bad)
                .await
                .unwrap_err()
        ),
        "invalid_input"
    );
    let done = h
        .service
        .sign_in_second_factor(
            ticket.token.expose(),
            SecondFactor::Totp(&code),
            SecondFactorOptions {
                remember_device: Some("laptop"),
                client_key: Some("198.51.100.3"),
            },
        )
        .await
        .unwrap();
    assert_eq!(done.method, AuthMethod::Totp);
    let device = done.device.expect("the device is trusted");
    assert_eq!(h.service.trusted_devices(&user).await.unwrap().len(), 1);
    assert!(h.service.session(done.session.expose()).await.is_ok());
    // The device skips the second factor next time.
    let SignIn::LoggedIn(next) = h
        .service
        .sign_in(LoginRequest::new("owner", PW).device_token(device.expose()))
        .await
        .unwrap()
    else {
        panic!("the trusted device skips the second factor")
    };
    assert_eq!(next.method, AuthMethod::TrustedDevice);
    assert!(next.device.is_none());
}
