//! The HTTP contract (`API.md`), driven black-box against the example servers.
//!
//! Each scenario starts the server binary that cargo built for the calling crate's
//! tests as a real process on a free port in a fresh working directory, and talks
//! to it over HTTP. The scenarios are generic
//! over the example's name; [`crate::contract_suite!`] instantiates them for one example.
//! TOTP codes are computed from the `secret` the setup returns, as a phone would.

use std::sync::Arc;
use std::time::Duration;

use crate::client::{Client, Enrolled, PW, Phone, Resp, Server, enrolled};
use base64::Engine as _;
use serde_json::json;

/// Instantiates every scenario as a `#[tokio::test]` for one example server: its
/// name (`"axum"`, `"actix"`) and its binary (`env!("CARGO_BIN_EXE_…")` in the
/// server crate's own tests, so that cargo builds it with the same features).
#[macro_export]
macro_rules! contract_suite {
    ($example:literal, $binary:expr) => {
        $crate::contract_suite!(@tests $example, $binary;
                register_login_me_logout,
                enrollment_qr_and_two_phase_login,
                a_code_is_accepted_once,
                concurrent_use_of_one_code_has_one_winner,
                backup_codes_are_single_use_and_can_be_replaced,
                lockout_is_not_reset_by_a_new_login,
                a_pending_login_and_a_pending_setup_expire,
                an_unknown_user_costs_as_much_as_a_wrong_password,
                disable_two_factor,
                remember_this_device,
                client_mistakes_are_never_5xx,
                cross_origin_requests_are_refused,
                secure_cookies_and_origin_follow_the_public_url,
                password_attempts_are_limited_per_client,
                html_pages_walk_through,
                dev_key_is_made_once_and_reused,
                sigterm_shuts_down_cleanly,
                browser_register_enable_and_log_in,
                security_key_walk,
                store_outage_is_503_and_recovers,
                a_restart_keeps_accounts_and_two_factor,
                two_instances_on_one_postgres_are_one_service,
                step_up_is_required_once_the_window_has_passed,
                authenticators_sessions_and_devices,
                password_change_and_security_log,
                known_browsers_pass_the_account_password_limit,
                forged_forwarded_lines_cannot_dodge_the_client_limit,
                ipv6_clients_of_one_64_share_a_limit,
                registrations_are_limited_per_client,
                successful_logins_do_not_use_up_the_client_limit,
                start_up_refusals_are_one_line,
                password_limits_are_in_characters,
                migrated_users_log_in,
                reset_2fa_lets_the_user_in_with_the_password_alone,
                a_burst_of_registrations_stays_under_400_mib,
                    );
    };
    (@tests $example:literal, $binary:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                $crate::client::register($example, $binary);
                $crate::http::$name($example).await
            }
        )*
    };
}

fn cookie_flags_ok(set_cookie: &str) {
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{flag} missing in {set_cookie}");
    }
}

/// `/api/me` without its time-dependent `reauthenticated_until` (checked to be a number).
fn me_fields(me: &Resp) -> serde_json::Value {
    let mut v = me.json.clone();
    let until = v
        .as_object_mut()
        .and_then(|o| o.remove("reauthenticated_until"));
    assert!(until.is_some_and(|u| u.is_u64()), "{}", me.text);
    v
}

fn assert_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.error(), code, "{}", r.text);
}

// ---------------------------------------------------------------------------------

pub async fn register_login_me_logout(example: &str) {
    let server = Server::start(example, &[]);
    let c = server.client();

    let r = c.register("Alice").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json, json!({ "username": "alice" }));
    // Registering logs in: the session and the known-browser mark, as a login sets them.
    let session = r
        .set_cookie("sf_session")
        .expect("sf_session set on register");
    cookie_flags_ok(&session);
    assert!(!session.contains("Max-Age"), "{session}");
    let known = r.set_cookie("sf_known").expect("sf_known set on register");
    assert!(known.contains("Max-Age=31536000"), "{known}");
    assert_eq!(c.me().await.status, 200);
    assert_eq!(c.post_empty("/api/logout").await.status, 204);
    assert_error(&c.register("alice").await, 409, "username_taken");
    assert_error(&c.register("no spaces").await, 400, "invalid_input");
    let r = c
        .post(
            "/api/register",
            json!({ "username": "bob", "password": "short" }),
        )
        .await;
    assert_error(&r, 400, "invalid_input");

    // Wrong password and unknown user look the same.
    let r = c
        .post(
            "/api/login",
            json!({ "username": "alice", "password": "wrong password" }),
        )
        .await;
    assert_error(&r, 401, "invalid_credentials");
    let unknown = c.login("nobody").await;
    assert_error(&unknown, 401, "invalid_credentials");
    assert_eq!(unknown.json["message"], r.json["message"]);
    assert_error(&c.me().await, 401, "unauthenticated");

    let r = c.login("ALICE").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({ "status": "authenticated" }));
    let session = r.set_cookie("sf_session").expect("sf_session set");
    cookie_flags_ok(&session);
    assert!(
        !session.contains("Secure"),
        "no Secure on plain http: {session}"
    );
    assert!(
        !session.contains("Max-Age"),
        "a browser-session cookie: {session}"
    );
    let token = r.cookie_value("sf_session").unwrap();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .expect("opaque base64url token");
    assert!(raw.len() >= 16, "at least 128 bits");

    let me = c.me().await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me_fields(&me),
        json!({ "username": "alice", "two_factor_enabled": false, "backup_codes_remaining": 0 })
    );

    let r = c.post_empty("/api/logout").await;
    assert_eq!(r.status, 204);
    assert!(r.set_cookie("sf_session").unwrap().contains("Max-Age=0"));
    assert_error(&c.me().await, 401, "unauthenticated");

    // The old token is dead server-side, not just forgotten by the client.
    let stale = server.client();
    let r = Client::send(
        stale
            .request(reqwest::Method::GET, "/api/me")
            .header("cookie", format!("sf_session={token}")),
    )
    .await;
    assert_error(&r, 401, "unauthenticated");
}

pub async fn enrollment_qr_and_two_phase_login(example: &str) {
    let server = Server::start(example, &[]);
    let c = server.client();
    assert_eq!(c.register("carol").await.status, 201);
    assert_eq!(c.post_empty("/api/logout").await.status, 204);
    assert_error(
        &c.post_empty("/api/2fa/setup").await,
        401,
        "unauthenticated",
    );
    c.login("carol").await;

    let setup = c.post_empty("/api/2fa/setup").await;
    assert_eq!(setup.status, 200, "{}", setup.text);
    let secret = setup.json["secret"].as_str().unwrap();
    let uri = setup.json["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    assert!(
        uri.contains("issuer=secondfactor%20demo") || uri.contains("issuer=secondfactor+demo"),
        "{uri}"
    );
    assert_eq!(setup.json["expires_in"], 600);
    // The QR code decodes to exactly the URI.
    let png = base64::engine::general_purpose::STANDARD
        .decode(setup.json["qr_png_base64"].as_str().unwrap())
        .unwrap();
    let img = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .unwrap()
        .to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    assert_eq!(grids[0].decode().unwrap().1, uri);

    // Not on until confirmed; a wrong code does not confirm.
    assert_eq!(c.me().await.json["two_factor_enabled"], false);
    let phone = Phone::new(secret);
    let step = Phone::step_now();
    let wrong = wrong_code(&phone, step);
    let r = c
        .post("/api/2fa/setup/confirm", json!({ "code": wrong }))
        .await;
    assert_error(&r, 401, "invalid_code");
    let r = c
        .post(
            "/api/2fa/setup/confirm",
            json!({ "code": phone.code_at_step(step) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let codes = r.json["backup_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        me_fields(&c.me().await),
        json!({ "username": "carol", "two_factor_enabled": true, "backup_codes_remaining": 10 })
    );
    assert_error(
        &c.post_empty("/api/2fa/setup").await,
        409,
        "two_factor_already_enabled",
    );
    let r = c
        .post(
            "/api/2fa/setup/confirm",
            json!({ "code": phone.code_at_step(step) }),
        )
        .await;
    assert!(r.status == 401 || r.status == 409, "{}", r.text);

    // Two-phase login.
    assert_eq!(c.post_empty("/api/logout").await.status, 204);
    let r = c.login("carol").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json,
        json!({ "status": "second_factor_required", "methods": ["totp", "backup_code"], "expires_in": 300 })
    );
    assert!(
        r.set_cookie("sf_session").is_none(),
        "no session before the second factor"
    );
    let pending = r.set_cookie("sf_pending").unwrap();
    cookie_flags_ok(&pending);
    assert!(pending.contains("Max-Age=300"), "{pending}");
    assert_error(&c.me().await, 401, "unauthenticated");

    // Spaces are fine; the setup's own code (its step is used) is not.
    let r = c.code(&phone.code_at_step(step)).await;
    assert_error(&r, 401, "code_already_used");
    let next = phone.code_at_step(step + 1);
    let spaced = format!(" {} {} ", &next[..3], &next[3..]);
    let r = c.code(&spaced).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({ "status": "authenticated" }));
    cookie_flags_ok(&r.set_cookie("sf_session").unwrap());
    assert!(r.set_cookie("sf_pending").unwrap().contains("Max-Age=0"));
    assert_eq!(c.me().await.json["username"], "carol");

    // Without a pending login, the second factor is refused.
    let other = server.client();
    assert_error(&other.code(&next).await, 401, "login_expired");
}

/// A code that is not the phone's at `step` (nor at the steps around it).
fn wrong_code(phone: &Phone, step: u64) -> String {
    let near: Vec<String> = (step.saturating_sub(2)..=step + 2)
        .map(|s| phone.code_at_step(s))
        .collect();
    (0..)
        .map(|i: u32| format!("{:06}", (i * 7919 + 13) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

pub async fn a_code_is_accepted_once(example: &str) {
    let server = Server::start(example, &[]);
    let user = enrolled(server.client(), "dave").await;
    let code = user.phone.code_at_step(user.confirm_step + 1);

    let first = server.client();
    first.login("dave").await;
    assert_eq!(first.code(&code).await.status, 200);

    // The same code on a second pending login is a replay.
    let second = server.client();
    assert_eq!(
        second.login("dave").await.json["status"],
        "second_factor_required"
    );
    let r = second.code(&code).await;
    assert_error(&r, 401, "code_already_used");
    assert_error(&second.me().await, 401, "unauthenticated");
    // The pending login survives a replay: a backup code still completes it.
    let r = Client::send(
        second
            .request(reqwest::Method::POST, "/api/login/second-factor")
            .json(&json!({ "backup_code": user.backup_codes[0] })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

pub async fn concurrent_use_of_one_code_has_one_winner(example: &str) {
    const CLIENTS: usize = 16;
    const ROUNDS: usize = 4;
    let server = Server::start(example, &[("SF_TRUST_FORWARDED", "1")]);
    for round in 0..ROUNDS {
        // A fresh account each round: the losers' attempts count on the account.
        let name = format!("racer{round}");
        let owner = server.client().via(&format!("10.{round}.0.1"));
        let user = enrolled(owner, &name).await;
        let code = user.phone.code_at_step(user.confirm_step + 1);
        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            let c = server.client().via(&format!("10.{round}.1.{i}"));
            let r = c.login(&name).await;
            assert_eq!(r.json["status"], "second_factor_required", "{}", r.text);
            clients.push(c);
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|c| {
                let barrier = barrier.clone();
                let code = code.clone();
                tokio::spawn(async move {
                    let rb = c
                        .request(reqwest::Method::POST, "/api/login/second-factor")
                        .json(&json!({ "code": code }));
                    barrier.wait().await;
                    Client::send(rb).await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            let r = t.await.unwrap();
            match r.status {
                200 => winners += 1,
                401 => assert_eq!(r.error(), "code_already_used", "{}", r.text),
                429 => assert_eq!(r.error(), "too_many_attempts", "{}", r.text),
                _ => panic!("unexpected {}: {}", r.status, r.text),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one winner");
    }
}

pub async fn backup_codes_are_single_use_and_can_be_replaced(example: &str) {
    let server = Server::start(example, &[]);
    let user = enrolled(server.client(), "erin").await;
    let code = user.backup_codes[3].clone();
    let backup = |c: &Client, code: &str| {
        let rb = c
            .request(reqwest::Method::POST, "/api/login/second-factor")
            .json(&json!({ "backup_code": code }));
        Client::send(rb)
    };

    let c = server.client();
    c.login("erin").await;
    // Any case, without hyphens.
    let typed = code.replace('-', "").to_lowercase();
    let r = backup(&c, &typed).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(c.me().await.json["backup_codes_remaining"], 9);

    let c2 = server.client();
    c2.login("erin").await;
    // A spent code is said as such (only someone who had it can see this), and
    // counts as a failed attempt all the same.
    let r = backup(&c2, &code).await;
    assert_error(&r, 401, "backup_code_used");
    assert_eq!(r.json["remaining_attempts"], 4, "{}", r.text);
    // A code that never was one is plain `invalid_code`.
    let r = backup(&c2, "AAAAA-AAAAA-AAAAA").await;
    assert_error(&r, 401, "invalid_code");
    assert_eq!(r.json["remaining_attempts"], 3, "{}", r.text);

    // A new set replaces the old one.
    let r = user
        .client
        .post(
            "/api/2fa/backup-codes",
            json!({ "code": user.phone.code_at_step(user.confirm_step + 1) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh: Vec<String> = r.json["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert_eq!(user.client.me().await.json["backup_codes_remaining"], 10);
    let r = backup(&c2, &user.backup_codes[5]).await;
    assert_error(&r, 401, "invalid_code");
    let r = backup(&c2, &fresh[0]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Regenerating needs a valid code.
    let r = user
        .client
        .post("/api/2fa/backup-codes", json!({ "code": "000000x" }))
        .await;
    assert_error(&r, 400, "invalid_input");
}

pub async fn lockout_is_not_reset_by_a_new_login(example: &str) {
    let server = Server::start(example, &[]);
    let user = enrolled(server.client(), "frank").await;
    let wrong = wrong_code(&user.phone, user.confirm_step + 1);

    let c = server.client();
    c.login("frank").await;
    let mut left = Vec::new();
    for _ in 0..5 {
        let r = c.code(&wrong).await;
        assert_error(&r, 401, "invalid_code");
        left.push(r.json["remaining_attempts"].as_u64().unwrap());
    }
    assert_eq!(left, [4, 3, 2, 1, 0]);
    // That pending login is burnt.
    assert_error(&c.code(&wrong).await, 401, "login_expired");

    // A new login gives no fresh attempts: the account locks.
    c.login("frank").await;
    let r = c.code(&wrong).await;
    assert_error(&r, 401, "invalid_code");
    assert_eq!(r.json["remaining_attempts"], 0);
    let right = user.phone.code_at_step(user.confirm_step + 1);
    let r = c.code(&right).await;
    assert_error(&r, 429, "too_many_attempts");
    let retry = r.json["retry_after"].as_u64().unwrap();
    assert!((1..=60).contains(&retry), "retry_after {retry}");
    assert_eq!(r.json["limiter"], "account", "{}", r.text);
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some(retry.to_string().as_str())
    );

    let again = server.client();
    assert_eq!(
        again.login("frank").await.json["status"],
        "second_factor_required"
    );
    assert_error(&again.code(&right).await, 429, "too_many_attempts");
    // A session's account actions are locked too.
    let r = user
        .client
        .post("/api/2fa/disable", json!({ "code": right }))
        .await;
    assert_error(&r, 429, "too_many_attempts");
}

pub async fn a_pending_login_and_a_pending_setup_expire(example: &str) {
    let server = Server::start(
        example,
        &[("SF_LOGIN_TTL_SECS", "2"), ("SF_SETUP_TTL_SECS", "2")],
    );
    let user = enrolled(server.client(), "gina").await;
    let c = server.client();
    let r = c.login("gina").await;
    assert_eq!(r.json["expires_in"], 2);
    assert!(r.set_cookie("sf_pending").unwrap().contains("Max-Age=2"));
    let token = r.cookie_value("sf_pending").unwrap();

    let other = server.client();
    assert_eq!(other.register("gabe").await.status, 201);
    other.login("gabe").await;
    let setup = other.post_empty("/api/2fa/setup").await;
    assert_eq!(setup.json["expires_in"], 2);
    let phone = Phone::new(setup.json["secret"].as_str().unwrap());
    // Gina (2FA on) starts adding a second authenticator from the account page.
    let r = user
        .client
        .form("/account/authenticators", &[("name", "tablet")])
        .await;
    assert_eq!(r.location(), Some("/account/2fa/setup"), "{}", r.text);
    let page = user.client.get("/account/2fa/setup").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains(r#"name="adding""#),
        "the add form says so: {}",
        page.text
    );

    tokio::time::sleep(Duration::from_millis(3100)).await;
    // The expired addition is said as such on the account page, not as the
    // backup-codes notice of a first setup.
    let r = user
        .client
        .form(
            "/account/2fa/setup/confirm",
            &[("code", "123456"), ("adding", "1")],
        )
        .await;
    assert_eq!(
        r.location(),
        Some("/account?notice=add_expired"),
        "{} {}",
        r.status,
        r.text
    );
    let account = user.client.get("/account?notice=add_expired").await;
    assert!(
        account
            .text
            .contains("Adding the authenticator took too long"),
        "{}",
        account.text
    );
    assert!(!account.text.contains("backup codes were shown once"));
    // Present the cookie by hand: the server must refuse it, whatever the jar does.
    let bare = server.client();
    let r = Client::send(
        bare.request(reqwest::Method::POST, "/api/login/second-factor")
            .header("cookie", format!("sf_pending={token}"))
            .json(&json!({ "code": user.phone.code_at_step(user.confirm_step + 1) })),
    )
    .await;
    assert_error(&r, 401, "login_expired");
    let r = other
        .post(
            "/api/2fa/setup/confirm",
            json!({ "code": phone.code_at_step(Phone::step_now()) }),
        )
        .await;
    assert_error(&r, 401, "setup_expired");
    assert_eq!(other.me().await.json["two_factor_enabled"], false);
}

pub async fn disable_two_factor(example: &str) {
    let server = Server::start(example, &[]);
    let user = enrolled(server.client(), "hank").await;
    let c = &user.client;
    let wrong = wrong_code(&user.phone, user.confirm_step + 1);
    assert_error(
        &c.post("/api/2fa/disable", json!({ "code": wrong })).await,
        401,
        "invalid_code",
    );
    let r = c
        .post(
            "/api/2fa/disable",
            json!({ "code": "1", "backup_code": "x" }),
        )
        .await;
    assert_error(&r, 400, "invalid_input");
    let r = c
        .post(
            "/api/2fa/disable",
            json!({ "backup_code": user.backup_codes[0] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({ "two_factor_enabled": false }));
    assert_eq!(
        me_fields(&c.me().await),
        json!({ "username": "hank", "two_factor_enabled": false, "backup_codes_remaining": 0 })
    );
    let again = server.client();
    assert_eq!(again.login("hank").await.json["status"], "authenticated");
    let code = user.phone.code_at_step(user.confirm_step + 1);
    assert_error(
        &c.post("/api/2fa/disable", json!({ "code": code })).await,
        409,
        "two_factor_not_enabled",
    );
    assert_error(
        &c.post("/api/2fa/backup-codes", json!({ "code": code }))
            .await,
        409,
        "two_factor_not_enabled",
    );
}

pub async fn remember_this_device(example: &str) {
    let server = Server::start(example, &[]);
    let user = enrolled(server.client(), "iris").await;
    let c = server.client();
    let r = c.login("iris").await;
    assert_eq!(r.json["status"], "second_factor_required", "{}", r.text);
    assert!(
        r.set_cookie("sf_known").is_none(),
        "a password alone does not complete the login"
    );
    let r = c
        .post(
            "/api/login/second-factor",
            json!({ "code": user.phone.code_at_step(user.confirm_step + 1), "remember_device": true }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_known_cookie(&r);
    let device = r.set_cookie("sf_device").expect("sf_device set");
    cookie_flags_ok(&device);
    assert!(
        device.contains(&format!("Max-Age={}", 30 * 24 * 3600)),
        "{device}"
    );
    assert_eq!(c.post_empty("/api/logout").await.status, 204);

    // This browser skips the second factor; another one does not.
    let r = c.login("iris").await;
    assert_eq!(r.json, json!({ "status": "authenticated" }), "{}", r.text);
    assert_known_cookie(&r);
    assert_eq!(c.me().await.json["username"], "iris");
    let other = server.client();
    assert_eq!(
        other.login("iris").await.json["status"],
        "second_factor_required"
    );
    // The device token is for iris only.
    assert_eq!(other.register("jack").await.status, 201);
    let r = Client::send(
        server
            .client()
            .request(reqwest::Method::POST, "/api/login")
            .header("cookie", format!("sf_device={}", device_value(&device)))
            .json(&json!({ "username": "jack", "password": PW })),
    )
    .await;
    assert_eq!(r.json["status"], "authenticated"); // jack has no 2FA at all
    let r = c
        .post(
            "/api/login",
            json!({ "username": "iris", "password": "wrong password" }),
        )
        .await;
    assert_error(&r, 401, "invalid_credentials");
}

/// A completed login sets `sf_known` for a year.
fn assert_known_cookie(r: &Resp) {
    let known = r
        .set_cookie("sf_known")
        .unwrap_or_else(|| panic!("no sf_known after a completed login: {:?}", r.headers));
    cookie_flags_ok(&known);
    assert!(known.contains("Max-Age=31536000"), "{known}");
    assert!(device_value(&known).len() >= 22, "{known}");
}

fn device_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned()
}

pub async fn client_mistakes_are_never_5xx(example: &str) {
    let server = Server::start(example, &[]);
    let user: Enrolled = enrolled(server.client(), "kim").await;
    let anon = server.client();
    let pending = server.client();
    pending.login("kim").await;

    let big = vec![b' '; 70 * 1024];
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let json_ct = Some("application/json");
    // (client, path, content type, body, expected status, expected code)
    type Case<'a> = (&'a Client, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            &anon,
            "/api/register",
            Some("text/plain"),
            br#"{"username":"x","password":"12345678"}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            &anon,
            "/api/register",
            None,
            br#"{"username":"x","password":"12345678"}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            &anon,
            "/api/register",
            Some("application/x-www-form-urlencoded"),
            b"username=x&password=12345678".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            b"{not json".to_vec(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            b"".to_vec(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            b"null".to_vec(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            b"[1,2,3]".to_vec(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            br#"{"username":42,"password":"12345678"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            br#"{"username":"x"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            deep.clone().into_bytes(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            big.clone(),
            413,
            "payload_too_large",
        ),
        (
            &anon,
            "/api/login",
            json_ct,
            big.clone(),
            413,
            "payload_too_large",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            "{\"username\":\"ålice\",\"password\":\"12345678\"}"
                .as_bytes()
                .to_vec(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            "{\"username\":\"a\\u0000b\",\"password\":\"12345678\"}"
                .as_bytes()
                .to_vec(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            format!(
                "{{\"username\":\"{}\",\"password\":\"12345678\"}}",
                "a".repeat(65)
            )
            .into_bytes(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/register",
            json_ct,
            format!(
                "{{\"username\":\"long\",\"password\":\"{}\"}}",
                "p".repeat(1025)
            )
            .into_bytes(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/login",
            json_ct,
            format!(
                "{{\"username\":\"kim\",\"password\":\"{}\"}}",
                "p".repeat(5000)
            )
            .into_bytes(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/login",
            json_ct,
            "{\"username\":\"😀\",\"password\":\"пароль пароль\"}"
                .as_bytes()
                .to_vec(),
            401,
            "invalid_credentials",
        ),
        (
            &anon,
            "/api/login",
            json_ct,
            b"\xff\xfe\x00".to_vec(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            br#"{"code":"12a456"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            br#"{"code":"12345"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            br#"{"code":"1234567"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            "{\"code\":\"١٢٣٤٥٦\"}".as_bytes().to_vec(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            "{\"code\":\"１２３４５６\"}".as_bytes().to_vec(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            br#"{"code":123456}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            br#"{}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            br#"{"backup_code":"not-a-code-at-all-!!"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            format!("{{\"backup_code\":\"{}\"}}", "A".repeat(10_000)).into_bytes(),
            400,
            "invalid_input",
        ),
        (
            &pending,
            "/api/login/second-factor",
            json_ct,
            br#"{"code":"123456","remember_device":"yes"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &user.client,
            "/api/2fa/setup/confirm",
            json_ct,
            br#"{"code":"abcdef"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &user.client,
            "/api/2fa/backup-codes",
            json_ct,
            br#"{"code":""}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &user.client,
            "/api/2fa/disable",
            json_ct,
            br#"{"code":"12 34 5x"}"#.to_vec(),
            400,
            "invalid_input",
        ),
        (
            &anon,
            "/api/2fa/setup/confirm",
            json_ct,
            br#"{"code":"123456"}"#.to_vec(),
            401,
            "unauthenticated",
        ),
        (
            &anon,
            "/api/nope",
            json_ct,
            b"{}".to_vec(),
            404,
            "not_found",
        ),
    ];
    for (client, path, ct, body, status, code) in cases {
        let r = client.post_raw(path, ct, body).await;
        assert!(r.status < 500, "{path} {ct:?}: {} {}", r.status, r.text);
        assert_eq!(
            (r.status, r.error()),
            (status, code),
            "{path} {ct:?}: {}",
            r.text
        );
    }
    // Other methods and odd requests.
    let r = anon.get("/api/login").await;
    assert!(
        r.status == 405 && r.error() == "method_not_allowed",
        "{}",
        r.text
    );
    let r = Client::send(
        anon.request(reqwest::Method::POST, "/api/login/second-factor")
            .header("cookie", format!("sf_pending={}", "x".repeat(5000)))
            .json(&json!({ "code": "123456" })),
    )
    .await;
    assert_error(&r, 401, "login_expired");
    let r = Client::send(
        anon.request(reqwest::Method::GET, "/api/me")
            .header("cookie", "sf_session=%%%; sf_session=\"\"; other=1"),
    )
    .await;
    assert_error(&r, 401, "unauthenticated");
    // The pending login took no damage from the malformed codes.
    let r = pending
        .code(&user.phone.code_at_step(user.confirm_step + 1))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

pub async fn cross_origin_requests_are_refused(example: &str) {
    let server = Server::start(example, &[]);
    let c = server.client();
    let with_origin = |origin: &str, path: &str| {
        c.request(reqwest::Method::POST, path)
            .header("origin", origin)
            .json(&json!({ "username": "lee", "password": PW }))
    };
    for evil in [
        "https://evil.example",
        "null",
        "http://127.0.0.1:1",
        "http://localhost",
    ] {
        let r = Client::send(with_origin(evil, "/api/register")).await;
        assert_error(&r, 403, "forbidden_origin");
        let r = Client::send(with_origin(evil, "/api/login")).await;
        assert_error(&r, 403, "forbidden_origin");
    }
    let r = Client::send(with_origin(server.origin(), "/api/register")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // On a loopback address without SF_PUBLIC_URL, a person may type localhost,
    // 127.0.0.1 or [::1]: each on the server's port is this site.
    let port = server.origin().rsplit(':').next().unwrap();
    for (i, ours) in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1:{port}"),
        format!("http://[::1]:{port}"),
    ]
    .iter()
    .enumerate()
    {
        let r = Client::send(
            c.request(reqwest::Method::POST, "/api/register")
                .header("origin", ours)
                .json(&json!({ "username": format!("lee{i}"), "password": PW })),
        )
        .await;
        assert_eq!(r.status, 201, "{ours}: {}", r.text);
    }
    assert!(
        server
            .stderr()
            .contains(&format!("open http://localhost:{port}/")),
        "{}",
        server.stderr()
    );
    // The refusal page says which origin was expected (escaped).
    let r = Client::send(
        c.request(reqwest::Method::POST, "/login")
            .header("origin", "https://evil.example/<b>")
            .header("content-type", "application/x-www-form-urlencoded"),
    )
    .await;
    assert_html(&r, 403);
    assert!(
        r.text
            .contains(&format!("this site expects http://localhost:{port}")),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("&lt;b&gt;") && !r.text.contains("<b>"),
        "{}",
        r.text
    );
    let r = c.login("lee").await; // no Origin at all
    assert_eq!(r.status, 200);
    // A cross-site HTML form post is refused too, before it does anything.
    let r = Client::send(
        c.request(reqwest::Method::POST, "/logout")
            .header("origin", "https://evil.example")
            .header("content-type", "application/x-www-form-urlencoded"),
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(c.me().await.status, 200, "still logged in");
}

pub async fn secure_cookies_and_origin_follow_the_public_url(example: &str) {
    let server = Server::start(example, &[("SF_PUBLIC_URL", "https://demo.example/app")]);
    let c = server.client();
    assert_eq!(c.register("mona").await.status, 201);
    let r = Client::send(
        c.request(reqwest::Method::POST, "/api/login")
            .header("origin", "https://demo.example")
            .json(&json!({ "username": "mona", "password": PW })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.set_cookie("sf_session").is_none(), "{:?}", r.headers);
    // https: every name carries __Host- (Secure, Path=/, no Domain).
    for name in ["__Host-sf_session", "__Host-sf_known"] {
        let cookie = r
            .set_cookie(name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", r.headers));
        cookie_flags_ok(&cookie);
        assert!(cookie.contains("Secure"), "{cookie}");
        assert!(!cookie.to_ascii_lowercase().contains("domain"), "{cookie}");
    }
    // The prefixed cookie is the one read back; the bare name is not.
    let session = r.cookie_value("__Host-sf_session").unwrap();
    let plain = reqwest::Client::new();
    let me = |cookie: String| {
        Client::send(
            plain
                .get(server.url("/api/me"))
                .header("cookie", cookie)
                .header("origin", "https://demo.example"),
        )
    };
    assert_eq!(me(format!("__Host-sf_session={session}")).await.status, 200);
    assert_error(
        &me(format!("sf_session={session}")).await,
        401,
        "unauthenticated",
    );
    let r = Client::send(
        c.request(reqwest::Method::POST, "/api/login")
            .header("origin", server.origin())
            .json(&json!({ "username": "mona", "password": PW })),
    )
    .await;
    assert_error(&r, 403, "forbidden_origin");
}

pub async fn password_attempts_are_limited_per_client(example: &str) {
    let server = Server::start(example, &[]);
    let c = server.client();
    let wrong = json!({ "username": "nobody", "password": "wrong password" });
    let mut limited = None;
    for i in 0..40 {
        // X-Forwarded-For is not trusted by default: it cannot dodge the limit.
        let r = Client::send(
            c.request(reqwest::Method::POST, "/api/login")
                .header("x-forwarded-for", format!("10.9.9.{i}"))
                .json(&wrong),
        )
        .await;
        if r.status == 429 {
            limited = Some((i, r));
            break;
        }
        assert_error(&r, 401, "invalid_credentials");
    }
    let (i, r) = limited.expect("the per-client limit applies");
    assert!(i >= 5, "limited after only {i} attempts");
    assert_error(&r, 429, "too_many_attempts");
    let retry = r.json["retry_after"].as_u64().unwrap();
    assert!((1..=3600).contains(&retry), "retry_after {retry}");
    // One login name from one address: the name's own limit is reached first.
    assert_eq!(r.json["limiter"], "account", "{}", r.text);
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some(retry.to_string().as_str())
    );

    // Trusted only when configured.
    let proxied = Server::start(example, &[("SF_TRUST_FORWARDED", "1")]);
    let p = proxied.client();
    for i in 0..30 {
        // A name of its own each time: the per-account limit is not what this tests.
        let wrong = json!({ "username": format!("nobody{i}"), "password": "wrong password" });
        let r = Client::send(
            p.request(reqwest::Method::POST, "/api/login")
                .header("x-forwarded-for", format!("203.0.113.7, 10.9.9.{i}"))
                .json(&wrong),
        )
        .await;
        assert_error(&r, 401, "invalid_credentials");
    }
}

/// Wrong passwords for one account from 10 addresses lock that account for browsers
/// that never logged in to it; the owner's browser (with `sf_known`) still gets in.
pub async fn known_browsers_pass_the_account_password_limit(example: &str) {
    let server = Server::start(example, &[]);
    let owner = server.client_from("127.0.2.1");
    assert_eq!(owner.register("olga").await.status, 201);
    let r = owner.login("olga").await;
    assert_eq!(r.json["status"], "authenticated", "{}", r.text);
    assert_known_cookie(&r);
    assert_eq!(owner.post_empty("/api/logout").await.status, 204);

    let wrong = json!({ "username": "olga", "password": "wrong password" });
    for i in 1..=10 {
        let attacker = server.client_from(&format!("127.0.3.{i}"));
        let r = attacker.post("/api/login", wrong.clone()).await;
        assert_error(&r, 401, "invalid_credentials");
    }
    let r = server
        .client_from("127.0.3.11")
        .post("/api/login", wrong.clone())
        .await;
    assert_error(&r, 429, "too_many_attempts");
    let retry = r.json["retry_after"].as_u64().unwrap_or_default();
    assert!((1..=24 * 3600).contains(&retry), "{}", r.text);
    // Even the right password, from a browser that never logged in to olga.
    let stranger = server.client_from("127.0.3.12");
    assert_error(&stranger.login("olga").await, 429, "too_many_attempts");

    // The owner's browser keeps only its per-client limit.
    let r = owner.login("olga").await;
    assert_eq!(r.json["status"], "authenticated", "{}", r.text);
    assert_eq!(owner.me().await.json["username"], "olga");
    // The browser page says the same in words.
    let r = server
        .client_from("127.0.3.13")
        .form("/login", &[("username", "olga"), ("password", PW)])
        .await;
    assert_html(&r, 429);
    assert!(r.text.contains("This account is locked for"), "{}", r.text);
}

/// Behind a trusted proxy, only the right-most `X-Forwarded-For` entry (the proxy's,
/// on the last line) names the client: entries a client writes itself, on a line of
/// its own, change nothing.
pub async fn forged_forwarded_lines_cannot_dodge_the_client_limit(example: &str) {
    let server = Server::start(example, &[("SF_TRUST_FORWARDED", "1")]);
    let c = server.client();
    // A wrong password for `name`, with these X-Forwarded-For lines in this order.
    let attempt = |name: String, lines: Vec<String>| {
        let mut rb = c.request(reqwest::Method::POST, "/api/login");
        for line in lines {
            rb = rb.header("x-forwarded-for", line);
        }
        Client::send(rb.json(&json!({ "username": name, "password": "wrong password" })))
    };
    let mut statuses = Vec::new();
    for i in 0..25 {
        // A different name each time: only the per-client limit can apply.
        let forged = format!("10.{i}.0.1, 192.0.2.{i}");
        let r = attempt(format!("nobody{i}"), vec![forged, "198.51.100.7".into()]).await;
        if r.status == 429 {
            assert_error(&r, 429, "too_many_attempts");
            assert!(r.json["retry_after"].as_u64().unwrap_or_default() >= 1);
        } else {
            assert_error(&r, 401, "invalid_credentials");
        }
        statuses.push(r.status);
    }
    assert!(statuses[..20].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another client behind the same proxy is not limited.
    let r = attempt("nobody".into(), vec!["198.51.100.8".into()]).await;
    assert_error(&r, 401, "invalid_credentials");
    // A right-most entry that is not an address counts on the proxy's own address.
    let r = attempt("nobody".into(), vec!["198.51.100.9, unknown".into()]).await;
    assert_error(&r, 401, "invalid_credentials");
}

/// An IPv6 client is its /64: addresses of one /64 share the per-client limit.
pub async fn ipv6_clients_of_one_64_share_a_limit(example: &str) {
    let server = Server::start(example, &[("SF_TRUST_FORWARDED", "1")]);
    // A wrong password from `ip`, for a name of its own (only the client limit applies).
    let attempt = |i: usize, ip: &str| {
        let c = server.client().via(ip);
        let body = json!({ "username": format!("nobody{i}"), "password": "wrong password" });
        async move { c.post("/api/login", body).await.status }
    };
    for i in 0..20 {
        let ip = ["2001:db8:7:1::a", "2001:db8:7:1:ffff:1:2:3"][i % 2];
        assert_eq!(attempt(i, ip).await, 401);
    }
    let body = json!({ "username": "nobody20", "password": "wrong password" });
    let r = server
        .client()
        .via("2001:db8:7:1::b")
        .post("/api/login", body)
        .await;
    assert_error(&r, 429, "too_many_attempts");
    assert_eq!(r.json["limiter"], "client", "same /64: {}", r.text);
    assert!(r.headers.get("retry-after").is_some(), "{:?}", r.headers);
    // The login page says it is this network, not the account.
    let r = server
        .client()
        .via("2001:db8:7:1::c")
        .form(
            "/login",
            &[("username", "nobody21"), ("password", "wrong password")],
        )
        .await;
    assert_html(&r, 429);
    assert!(
        r.text.contains("Too many attempts from your network"),
        "{}",
        r.text
    );
    assert_eq!(attempt(21, "2001:db8:7:2::a").await, 401, "the next /64");
}

pub async fn registrations_are_limited_per_client(example: &str) {
    let server = Server::start(example, &[]);
    let c = server.client_from("127.0.4.1");
    for i in 0..20 {
        assert_eq!(c.register(&format!("reg{i}")).await.status, 201);
    }
    let r = c.register("reg20").await;
    assert_error(&r, 429, "too_many_attempts");
    assert!(
        r.json["retry_after"].as_u64().unwrap_or_default() >= 1,
        "{}",
        r.text
    );
    assert_eq!(r.json["limiter"], "client", "{}", r.text);
    // The page says so in words.
    let r = c
        .form("/register", &[("username", "reg21"), ("password", PW)])
        .await;
    assert_html(&r, 429);
    assert!(r.text.contains("Too many attempts"), "{}", r.text);
    // Another address is another client.
    assert_eq!(
        server
            .client_from("127.0.4.2")
            .register("reg20")
            .await
            .status,
        201
    );
}

pub async fn successful_logins_do_not_use_up_the_client_limit(example: &str) {
    let server = Server::start(example, &[]);
    let c = server.client_from("127.0.5.1");
    assert_eq!(c.register("nat.user").await.status, 201);
    for i in 0..25 {
        let r = c.login("nat.user").await;
        assert_eq!(r.status, 200, "login {i}: {}", r.text);
        assert_eq!(r.json["status"], "authenticated", "{}", r.text);
    }
}

/// A `postgres://` database without `SF_MASTER_KEY`, or a development key file that
/// group or others can read, stop the start with one line (the operator tool too).
/// Users migrated from a pyotp app log in (see [`crate::migrate`]).
pub async fn migrated_users_log_in(example: &str) {
    crate::migrate::migrated_users_log_in(example).await
}

/// 120 concurrent registrations leave the server under 400 MiB resident (see
/// [`crate::burst`]; Linux only, as it reads `/proc`).
#[cfg(target_os = "linux")]
pub async fn a_burst_of_registrations_stays_under_400_mib(example: &str) {
    crate::burst::burst(example).await
}

#[cfg(not(target_os = "linux"))]
pub async fn a_burst_of_registrations_stays_under_400_mib(_example: &str) {}

/// The pages state the password limits in characters (8 to 256), and the server
/// checks exactly that, whatever the bytes: 8 two-byte letters pass, 7 three-byte
/// ones (21 bytes) do not, 256 two-byte letters (512 bytes) pass, 257 letters do not.
pub async fn password_limits_are_in_characters(example: &str) {
    let server = Server::start(example, &[]);
    let c = server.client();
    let page = c.get("/register").await;
    assert!(page.text.contains("8 to 256 characters"), "{}", page.text);
    assert!(page.text.contains("maxlength=\"256\""), "{}", page.text);
    let cases = [
        ("eight", "ä".repeat(8), 201),
        ("seven", "日".repeat(7), 400),
        ("long", "é".repeat(256), 201),
        ("toolong", "a".repeat(257), 400),
    ];
    for (name, password, status) in &cases {
        let r = c
            .post(
                "/api/register",
                json!({ "username": name, "password": password }),
            )
            .await;
        assert_eq!(r.status, *status, "{name}: {}", r.text);
        if *status == 400 {
            assert_eq!(r.error(), "invalid_input", "{}", r.text);
        }
    }
    let r = c
        .form(
            "/register",
            &[("username", "seven2"), ("password", &"日".repeat(7))],
        )
        .await;
    assert!(
        r.text
            .contains("The password must have 8 to 256 characters."),
        "{}",
        r.text
    );
    // Changing the password follows the same rule.
    let r = c
        .post(
            "/api/password",
            json!({ "current_password": "é".repeat(256), "new_password": "日".repeat(7) }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error(), "invalid_input", "{}", r.text);
}

pub async fn start_up_refusals_are_one_line(example: &str) {
    let dir = crate::client::work_dir(&format!("{example}-refusals"));
    let postgres = "postgres://postgres@127.0.0.1:1/none";
    let (status, stderr) = Server::start_failing(example, &dir, &[("DATABASE_URL", postgres)]);
    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SF_MASTER_KEY"), "{stderr}");
    assert!(!dir.join("secondfactor-dev.key").exists());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = dir.join("secondfactor-dev.key");
        std::fs::write(&key, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (status, stderr) = Server::start_failing(example, &dir, &[]);
        assert!(!status.success());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("secondfactor-dev.key"), "{stderr}");
        assert!(stderr.contains("chmod 600"), "{stderr}");
        let out = reset_2fa(
            &dir,
            &["--username", "a", "--operator", "b", "--reason", "c"],
        );
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("secondfactor-dev.key"), "{err}");
        // Owner-only, it is used.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        drop(Server::start_in(example, &dir, &[]));
    }
}

/// The median time of a login, over `n` tries from distinct (forwarded) addresses.
async fn median_login_time(server: &Server, username: &str, n: usize, tag: u8) -> Duration {
    let mut times = Vec::new();
    for i in 0..n {
        let c = server.client().via(&format!("10.77.{tag}.{i}"));
        let body = json!({ "username": username, "password": "wrong password" });
        let start = std::time::Instant::now();
        let r = c.post("/api/login", body).await;
        times.push(start.elapsed());
        assert_error(&r, 401, "invalid_credentials");
    }
    times.sort();
    times[n / 2]
}

pub async fn an_unknown_user_costs_as_much_as_a_wrong_password(example: &str) {
    let server = Server::start(example, &[("SF_TRUST_FORWARDED", "1")]);
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for round in 0..3 {
        // Names of their own each round: 10 wrong passwords lock a name.
        let user = format!("ursula{round}");
        assert_eq!(server.client().register(&user).await.status, 201);
        known.push(median_login_time(&server, &user, 5, round).await);
        let ghost = format!("nobody-at-all{round}");
        unknown.push(median_login_time(&server, &ghost, 5, 100 + round).await);
    }
    let known = known.iter().sum::<Duration>();
    let unknown = unknown.iter().sum::<Duration>();
    // Both run argon2; without the dummy verification an unknown name would answer
    // in well under a tenth of the time.
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.4..2.5).contains(&ratio),
        "unknown {unknown:?} vs wrong password {known:?}"
    );
}

// --- HTML --------------------------------------------------------------------------

/// The backup-codes cookie's flags: sealed, only for its page, not for scripts or
/// other sites, ten minutes.
fn assert_codes_cookie(r: &Resp) {
    let c = r.set_cookie("sf_codes").expect("the backup-codes cookie");
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/backup-codes",
        "Max-Age=600",
    ] {
        assert!(c.contains(flag), "{flag} missing: {c}");
    }
    // A plain-http test server: no Secure (an https one adds it, see the unit test).
    assert!(!c.contains("Secure"), "{c}");
}

/// `value` with one character changed (the seal no longer opens).
fn flip_one_char(value: &str) -> String {
    let mut chars: Vec<char> = value.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// A `GET` with exactly the `Cookie` header given (no jar): a cookie replayed or
/// altered by hand.
async fn get_with_cookies(server: &Server, path: &str, cookies: &str) -> Resp {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Client::send(
        http.get(format!("{}{path}", server.base))
            .header("cookie", cookies),
    )
    .await
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in page:\n{text}"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    &text[from..from + len]
}

fn assert_html(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "{}", r.text);
    let ct = r.headers.get("content-type").unwrap().to_str().unwrap();
    assert!(ct.starts_with("text/html"), "{ct}");
    // The doctype is case-insensitive (maud writes `<!DOCTYPE html>`).
    assert!(
        r.text
            .get(..15)
            .is_some_and(|d| d.eq_ignore_ascii_case("<!doctype html>")),
        "{}",
        r.text
    );
}

pub async fn html_pages_walk_through(example: &str) {
    let server = Server::start(example, &[]);
    let b = server.client();

    let r = b.get("/").await;
    assert_html(&r, 200);
    assert!(r.text.contains("href=\"/register\"") && r.text.contains("href=\"/login\""));
    assert_html(&b.get("/register").await, 200);

    // Errors in words, input escaped.
    let r = b
        .form(
            "/register",
            &[("username", "<script>alert(1)</script>"), ("password", PW)],
        )
        .await;
    assert_html(&r, 400);
    assert!(!r.text.contains("<script>alert"), "unescaped input");
    assert!(r.text.contains("&lt;script&gt;"));
    assert!(r.text.contains("class=\"error\""));

    let r = b
        .form("/register", &[("username", "nora"), ("password", PW)])
        .await;
    assert_eq!(r.status, 303, "{}", r.text);
    // Registered and logged in: straight to the account page.
    assert_eq!(r.location(), Some("/account"));
    assert!(r.set_cookie("sf_session").is_some());
    assert!(r.set_cookie("sf_known").is_some());
    let r = b.get("/account").await;
    assert_html(&r, 200);
    assert!(r.text.contains("<strong id=\"username\">nora</strong>"));
    let r = b.form("/logout", &[]).await;
    assert_eq!(r.status, 303, "{}", r.text);

    let r = b
        .form(
            "/login",
            &[("username", "nora"), ("password", "wrong password")],
        )
        .await;
    assert_html(&r, 401);
    assert!(r.text.contains("Wrong username or password"));
    let r = b
        .form("/login", &[("username", "nora"), ("password", PW)])
        .await;
    assert_eq!((r.status, r.location()), (303, Some("/account")));
    let nora_session = r.cookie_value("sf_session").unwrap();
    let r = b.get("/account").await;
    assert_html(&r, 200);
    assert!(r.text.contains("<strong id=\"username\">nora</strong>"));
    assert!(r.text.contains("is <strong>off</strong>"));

    // Enable: the setup page shows the QR code and the secret; a reload shows the same.
    let r = b.form("/account/2fa/setup", &[]).await;
    assert_eq!((r.status, r.location()), (303, Some("/account/2fa/setup")));
    let page = b.get("/account/2fa/setup").await;
    assert_html(&page, 200);
    assert!(
        page.text
            .contains("<img id=\"qr\" class=\"qr\" src=\"data:image/png;base64,")
    );
    let secret = between(&page.text, "<code id=\"secret\">", "</code>").replace(' ', "");
    // A copy button for the key (shown by the script), and which app to use.
    assert!(
        page.text
            .contains(&format!("id=\"copy-secret\" data-copy=\"{secret}\"")),
        "{}",
        page.text
    );
    assert!(page.text.contains("id=\"which-app\""));
    // No inline style or script: the CSP allows only the app's own files.
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("style-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(!page.text.contains(" style=") && !page.text.contains("<style"));
    assert!(
        page.text
            .contains("<script src=\"/static/app.js\" defer></script>")
    );
    assert_eq!(page.text.matches("<script").count(), 1);
    for (path, ct) in [
        ("/static/style.css", "text/css"),
        ("/static/app.js", "text/javascript"),
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        let got = r.headers["content-type"].to_str().unwrap();
        assert!(got.starts_with(ct), "{path}: {got}");
        assert!(!r.text.is_empty());
    }
    let again = b.get("/account/2fa/setup").await;
    assert_eq!(
        between(&again.text, "<code id=\"secret\">", "</code>").replace(' ', ""),
        secret
    );
    assert!(page.text.contains("autocomplete=\"one-time-code\""));
    assert!(page.text.contains("inputmode=\"numeric\""));
    let qr_b64 = between(&page.text, "src=\"data:image/png;base64,", "\"");
    let png = base64::engine::general_purpose::STANDARD
        .decode(qr_b64)
        .unwrap();
    let mut prepared =
        rqrr::PreparedImage::prepare(image::load_from_memory(&png).unwrap().to_luma8());
    let uri = prepared.detect_grids()[0].decode().unwrap().1;
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");

    let phone = Phone::new(&secret);
    let step = Phone::step_now();
    let r = b
        .form(
            "/account/2fa/setup/confirm",
            &[("code", &wrong_code(&phone, step))],
        )
        .await;
    assert_html(&r, 401);
    assert!(r.text.contains("That code is not right"));
    assert_eq!(
        between(&r.text, "<code id=\"secret\">", "</code>").replace(' ', ""),
        secret
    );
    let r = b
        .form(
            "/account/2fa/setup/confirm",
            &[("code", &phone.code_at_step(step))],
        )
        .await;
    // POST-redirect-GET: the codes travel to GET /backup-codes in a sealed cookie
    // that only that page receives.
    assert_eq!((r.status, r.location()), (303, Some("/backup-codes")));
    assert_codes_cookie(&r);
    let sealed = r.cookie_value("sf_codes").unwrap();
    let r = b.get("/backup-codes").await;
    assert_html(&r, 200);
    assert!(r.text.contains("Two-factor authentication is on"));
    let codes = between(&r.text, "<ol class=\"codes\" id=\"backup-codes\">", "</ol>");
    for code in codes.split("<li>").skip(1) {
        let code = code.trim_end_matches("</li>");
        assert!(!sealed.contains(code), "a code readable in the cookie");
    }
    assert_eq!(codes.matches("<li>").count(), 10);
    assert_eq!(r.headers.get("cache-control").unwrap(), "no-store");
    let first_backup = between(codes, "<li>", "</li>").to_owned();
    // Copy, download as a text file, print, and an "I have saved them" step.
    assert!(r.text.contains("id=\"copy-codes\" data-copy=\""));
    let download = between(&r.text, "download=\"backup-codes.txt\" href=\"", "\"");
    let text = percent_encoding::percent_decode_str(
        download
            .strip_prefix("data:text/plain;charset=utf-8,")
            .unwrap(),
    )
    .decode_utf8()
    .unwrap()
    .into_owned();
    assert!(text.contains(&first_backup), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains('-')).count(),
        10,
        "{text}"
    );
    assert!(r.text.contains("id=\"print-codes\" data-print"));
    assert!(r.text.contains("I have saved these codes"));
    assert!(
        r.text
            .contains("<form method=\"post\" action=\"/backup-codes\" id=\"saved-codes\">")
    );
    // A reload shows the same codes.
    let reload = b.get("/backup-codes").await;
    assert_html(&reload, 200);
    assert_eq!(
        between(
            &reload.text,
            "<ol class=\"codes\" id=\"backup-codes\">",
            "</ol>"
        ),
        codes
    );
    // The cookie replayed in another account's session, or altered in this one,
    // shows no codes: the account page says they were shown already.
    let mallory = server.client();
    let r = mallory.register("mallory").await;
    let mallory_session = r.cookie_value("sf_session").unwrap();
    let tampered = flip_one_char(&sealed);
    for (session, value, what) in [
        (&mallory_session, &sealed, "another session"),
        (&nora_session, &tampered, "tampered"),
    ] {
        let r = get_with_cookies(
            &server,
            "/backup-codes",
            &format!("sf_session={session}; sf_codes={value}"),
        )
        .await;
        assert_eq!(
            (r.status, r.location()),
            (303, Some("/account?notice=codes_shown")),
            "{what}: {}",
            r.text
        );
        assert!(!r.text.contains(&first_backup), "{what}");
        let cleared = r.set_cookie("sf_codes").expect(what);
        assert!(cleared.contains("Max-Age=0"), "{what}: {cleared}");
    }
    // Without a session: the login page, never the codes.
    let r = get_with_cookies(&server, "/backup-codes", &format!("sf_codes={sealed}")).await;
    assert_eq!((r.status, r.location()), (303, Some("/login")));
    // The confirmation form posted again (the back button): no codes, no error.
    let again = b
        .form(
            "/account/2fa/setup/confirm",
            &[("code", &phone.code_at_step(step))],
        )
        .await;
    assert_eq!(
        (again.status, again.location()),
        (303, Some("/account?notice=codes_shown"))
    );
    // "I have saved them": the cookie is cleared, and the page no longer shows them.
    let r = b.form("/backup-codes", &[("saved", "1")]).await;
    assert_eq!(
        (r.status, r.location()),
        (303, Some("/account?notice=codes_saved"))
    );
    let cleared = r.set_cookie("sf_codes").unwrap();
    assert!(cleared.contains("Max-Age=0") && cleared.contains("Path=/backup-codes"));
    let r = b.get("/backup-codes").await;
    assert_eq!(
        (r.status, r.location()),
        (303, Some("/account?notice=codes_shown"))
    );
    let r = b.get("/account?notice=codes_shown").await;
    assert!(r.text.contains("shown once"), "{}", r.text);
    let r = b.get("/account?notice=codes_saved").await;
    assert!(r.text.contains("id=\"two-factor-explained\""));
    assert!(r.text.contains("is <strong>on</strong>"), "{}", r.text);
    assert!(r.text.contains("<strong id=\"backup-count\">10</strong>"));

    // Log out, then the two-step login with the attempts left in words.
    let r = b.form("/logout", &[]).await;
    assert_eq!(
        (r.status, r.location()),
        (303, Some("/login?notice=logged_out"))
    );
    let r = b.get("/account").await;
    assert_eq!((r.status, r.location()), (303, Some("/login")));
    let r = b
        .form("/login", &[("username", "nora"), ("password", PW)])
        .await;
    assert_eq!((r.status, r.location()), (303, Some("/login/verify")));
    let r = b.get("/login/verify").await;
    assert_html(&r, 200);
    assert!(
        r.text
            .contains("autocomplete=\"one-time-code\" inputmode=\"numeric\"")
    );
    assert!(r.text.contains("name=\"remember_device\""));
    let r = b
        .form("/login/verify", &[("code", &wrong_code(&phone, step + 1))])
        .await;
    assert_html(&r, 401);
    assert!(r.text.contains("4 attempts left"), "{}", r.text);
    let r = b.form("/login/verify", &[("code", "12x456")]).await;
    assert_html(&r, 400);
    let r = b
        .form(
            "/login/verify",
            &[("backup_code", &first_backup), ("remember_device", "1")],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (303, Some("/account")),
        "{}",
        r.text
    );
    assert!(r.set_cookie("sf_device").is_some());
    let r = b.get("/account").await;
    assert!(r.text.contains("<strong id=\"backup-count\">9</strong>"));

    // New backup codes (on their page, safe to reload); the old set stops working.
    let r = b
        .form(
            "/account/backup-codes",
            &[("code", &phone.code_at_step(step + 1))],
        )
        .await;
    assert_eq!((r.status, r.location()), (303, Some("/backup-codes")));
    assert_codes_cookie(&r);
    let r = b.get("/backup-codes").await;
    assert_html(&r, 200);
    assert!(r.text.contains("New backup codes"));
    let fresh = between(&r.text, "<ol class=\"codes\" id=\"backup-codes\">", "</ol>");
    assert_eq!(fresh.matches("<li>").count(), 10);
    let newest = between(fresh, "<li>", "</li>").to_owned();
    // The same TOTP code again is a replay, said in words.
    let r = b
        .form(
            "/account/2fa/disable",
            &[("code", &phone.code_at_step(step + 1)), ("confirm", "1")],
        )
        .await;
    assert_html(&r, 401);
    assert!(r.text.contains("already used"), "{}", r.text);
    let r = b
        .form(
            "/account/2fa/disable",
            &[("backup_code", &first_backup), ("confirm", "1")],
        )
        .await;
    assert_html(&r, 401);
    let r = b
        .form(
            "/account/2fa/disable",
            &[("backup_code", &newest), ("confirm", "1")],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (303, Some("/account?notice=disabled")),
        "{}",
        r.text
    );
    let r = b.get("/account?notice=disabled").await;
    assert!(r.text.contains("Two-factor authentication is off."));
    assert!(r.text.contains("is <strong>off</strong>"));
}

// --- step-up, authenticators, sessions, devices, security log ----------------------

fn no_store(r: &Resp) {
    assert_eq!(
        r.headers.get("cache-control").map(|v| v.to_str().unwrap()),
        Some("no-store"),
        "{} {}",
        r.status,
        r.text
    );
}

async fn delete(c: &Client, path: &str) -> Resp {
    Client::send(c.request(reqwest::Method::DELETE, path)).await
}

/// Logs `username` in on a fresh client with the password and a backup code.
async fn login_with_backup(
    server: &Server,
    username: &str,
    password: &str,
    code: &str,
    remember: bool,
) -> Client {
    let c = server.client();
    let r = c
        .post(
            "/api/login",
            json!({ "username": username, "password": password }),
        )
        .await;
    assert_eq!(r.json["status"], "second_factor_required", "{}", r.text);
    let r = c
        .post(
            "/api/login/second-factor",
            json!({ "backup_code": code, "remember_device": remember }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    c
}

pub async fn step_up_is_required_once_the_window_has_passed(example: &str) {
    let server = Server::start(example, &[("SF_REAUTH_TTL_SECS", "10")]);
    let user = enrolled(server.client(), "stepper").await;
    let a = &user.client;
    let me = a.me().await;
    no_store(&me);
    let until = me.json["reauthenticated_until"].as_u64().unwrap();
    assert!(until >= crate::client::now(), "{}", me.text);
    // Wait for the window to close.
    tokio::time::sleep(Duration::from_secs(
        until.saturating_sub(crate::client::now()) + 1,
    ))
    .await;
    let me = a.me().await;
    assert!(me.json["reauthenticated_until"].as_u64().unwrap() <= crate::client::now());

    // Every † endpoint answers 403 before it looks at its body or its id.
    let json_ct = Some("application/json");
    let cases: Vec<(&str, Option<&str>, &[u8])> = vec![
        ("/api/2fa/setup", None, b""),
        ("/api/2fa/setup/confirm", json_ct, b"{not json"),
        ("/api/2fa/disable", Some("text/plain"), b"code=1"),
        ("/api/2fa/backup-codes", json_ct, b"{}"),
        ("/api/password", json_ct, br#"{"x":1}"#),
        ("/api/2fa/authenticators", json_ct, b"[1]"),
        ("/api/2fa/authenticators/confirm", json_ct, b"null"),
    ];
    for (path, ct, body) in cases {
        let r = a.post_raw(path, ct, body.to_vec()).await;
        assert_error(&r, 403, "reauthentication_required");
        no_store(&r);
    }
    let r = delete(a, "/api/2fa/authenticators/no-such-id").await;
    assert_error(&r, 403, "reauthentication_required");
    // The pages send the person to /reauth, and back.
    let r = a.get("/account/2fa/setup").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.location(), Some("/reauth?next=%2Faccount%2F2fa%2Fsetup"));
    let r = a.form("/account/authenticators", &[("name", "x")]).await;
    assert_eq!(r.location(), Some("/reauth?next=%2Faccount"));
    // Without a session: 401 first.
    let anon = server.client();
    assert_error(
        &anon.post_empty("/api/2fa/setup").await,
        401,
        "unauthenticated",
    );
    assert_error(
        &anon.post("/api/reauth", json!({ "password": PW })).await,
        401,
        "unauthenticated",
    );

    // Re-authentication: the password first, then a code from a factor the account has.
    let r = a
        .post(
            "/api/reauth",
            json!({ "password": "wrong password", "code": "000000" }),
        )
        .await;
    assert_error(&r, 401, "invalid_credentials");
    no_store(&r);
    let r = a.post("/api/reauth", json!({ "password": PW })).await;
    assert_error(&r, 400, "invalid_input");
    let step = Phone::step_now();
    let r = a
        .post(
            "/api/reauth",
            json!({ "password": PW, "code": wrong_code(&user.phone, step) }),
        )
        .await;
    assert_error(&r, 401, "invalid_code");
    assert!(r.json["remaining_attempts"].is_u64(), "{}", r.text);
    let r = a
        .post(
            "/api/reauth",
            json!({ "password": PW, "backup_code": user.backup_codes[0] }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    no_store(&r);
    let until = r.json["reauthenticated_until"].as_u64().unwrap();
    assert!(until > crate::client::now());
    assert_eq!(a.me().await.json["reauthenticated_until"], until);
    // The same backup code again: spent, and said as such (counted like a wrong
    // code); the window stays as it was.
    let r = a
        .post(
            "/api/reauth",
            json!({ "password": PW, "backup_code": user.backup_codes[0] }),
        )
        .await;
    assert_error(&r, 401, "backup_code_used");
    no_store(&r);
    assert_eq!(a.me().await.json["reauthenticated_until"], until);
    // The security-key confirmation needs a session, 2FA on, and a key on the
    // account (the walk with a virtual key checks the challenge it lists).
    let start = "/api/reauth/webauthn/start";
    assert_error(&anon.post_empty(start).await, 401, "unauthenticated");
    let r = a.post_empty(start).await;
    assert_error(&r, 404, "not_found");
    no_store(&r);
    let plain = server.client();
    assert_eq!(plain.register("plain.step").await.status, 201);
    assert_error(
        &plain.post_empty(start).await,
        409,
        "two_factor_not_enabled",
    );
    // Now the same requests reach their body checks.
    let r = a
        .post_raw("/api/2fa/setup/confirm", json_ct, b"{not json".to_vec())
        .await;
    assert_error(&r, 400, "invalid_input");
    let r = delete(a, "/api/2fa/authenticators/no-such-id").await;
    assert_error(&r, 404, "not_found");
    // The page that asked shows again (2FA is on and nothing is being added).
    let r = a.get("/account").await;
    assert_eq!(r.status, 200, "{}", r.text);
    // /reauth returns only to a path on this site.
    for (next, kept) in [
        ("/account/2fa/setup", "/account/2fa/setup"),
        ("//evil.example/x", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
        ("\"><script>", "/account"),
    ] {
        let r = a
            .get(&format!("/reauth?next={}", crate::client::enc(next)))
            .await;
        assert_html(&r, 200);
        assert!(
            r.text.contains(&format!("name=\"next\" value=\"{kept}\"")),
            "{next}: {}",
            r.text
        );
    }
}

pub async fn authenticators_sessions_and_devices(example: &str) {
    let server = Server::start(example, &[]);
    let user = enrolled(server.client(), "multi").await;
    let a = &user.client;
    let b = login_with_backup(&server, "multi", PW, &user.backup_codes[0], true).await;
    // Sessions: two, this one marked, ids that are not cookie values.
    let r = a.get("/api/sessions").await;
    assert_eq!(r.status, 200, "{}", r.text);
    no_store(&r);
    let sessions = r.json["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{}", r.text);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    for s in &sessions {
        assert!(s["id"].is_string() && s["created_at"].is_u64(), "{s}");
        assert!(s["method"].is_string(), "{s}");
        assert!(!r.text.contains(&format!("\"{}\"", "sf_session")));
    }
    // Devices: b is remembered and sees itself as current.
    let r = b.get("/api/devices").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let devices = r.json["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 1, "{}", r.text);
    assert_eq!(devices[0]["current"], true);
    assert!(devices[0]["expires_at"].as_u64().unwrap() > crate::client::now());
    let r = a.get("/api/devices").await;
    assert_eq!(r.json["devices"][0]["current"], false, "{}", r.text);

    // Authenticators: the first is named "authenticator"; add a second phone.
    let r = a.get("/api/2fa/authenticators").await;
    assert_eq!(r.status, 200, "{}", r.text);
    no_store(&r);
    let list = r.json["authenticators"].as_array().unwrap().clone();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["name"], "authenticator");
    let first_id = list[0]["id"].as_str().unwrap().to_owned();
    let r = a
        .post("/api/2fa/authenticators", json!({ "name": "work phone" }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["otpauth_uri"].as_str().unwrap().contains("multi"));
    // The id the authenticator will have once confirmed.
    let announced_id = r.json["id"]
        .as_str()
        .expect("\"id\" in the setup")
        .to_owned();
    let second = Phone::new(r.json["secret"].as_str().unwrap());
    let step = Phone::step_now();
    let r = a
        .post(
            "/api/2fa/authenticators/confirm",
            json!({ "code": wrong_code(&second, step) }),
        )
        .await;
    assert_error(&r, 401, "invalid_code");
    let r = a
        .post(
            "/api/2fa/authenticators/confirm",
            json!({ "code": second.code_at_step(step) }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["name"], "work phone");
    let second_id = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(second_id, announced_id);
    // A factor change ends the other session and every trusted device.
    assert_error(&b.me().await, 401, "unauthenticated");
    assert_eq!(a.me().await.status, 200);
    let r = a.get("/api/devices").await;
    assert_eq!(r.json["devices"].as_array().unwrap().len(), 0, "{}", r.text);
    let r = a.get("/api/sessions").await;
    assert_eq!(
        r.json["sessions"].as_array().unwrap().len(),
        1,
        "{}",
        r.text
    );
    let r = a.get("/api/2fa/authenticators").await;
    assert_eq!(r.json["authenticators"].as_array().unwrap().len(), 2);

    // Remove: unknown 404, the first 204, the last one 409.
    assert_error(
        &delete(a, "/api/2fa/authenticators/nope").await,
        404,
        "not_found",
    );
    let r = delete(a, &format!("/api/2fa/authenticators/{first_id}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    no_store(&r);
    let r = delete(a, &format!("/api/2fa/authenticators/{second_id}")).await;
    assert_error(&r, 409, "last_authenticator");
    // The first setup goes through /api/2fa/setup.
    let r = a
        .post("/api/2fa/authenticators", json!({ "name": "x" }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Sessions: end one by id, end all others, end this one (a logout).
    let c = login_with_backup(&server, "multi", PW, &user.backup_codes[1], true).await;
    let d = login_with_backup(&server, "multi", PW, &user.backup_codes[2], false).await;
    let r = c.get("/api/sessions").await;
    let sessions = r.json["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3, "{}", r.text);
    let d_id = d.get("/api/sessions").await.json["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_error(&delete(&c, "/api/sessions/nope").await, 404, "not_found");
    let r = delete(&c, &format!("/api/sessions/{d_id}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(&d.me().await, 401, "unauthenticated");
    let r = c.post_empty("/api/sessions/revoke-others").await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(&a.me().await, 401, "unauthenticated");
    assert_error(
        &a.post_empty("/api/sessions/revoke-others").await,
        401,
        "unauthenticated",
    );

    // Devices: forget one (c's own), then it is gone.
    let r = c.get("/api/devices").await;
    let devices = r.json["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 1, "{}", r.text);
    let dev_id = devices[0]["id"].as_str().unwrap();
    let r = delete(&c, &format!("/api/devices/{dev_id}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(
        &delete(&c, &format!("/api/devices/{dev_id}")).await,
        404,
        "not_found",
    );
    assert!(
        c.get("/api/devices").await.json["devices"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let c_id = c.get("/api/sessions").await.json["sessions"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = delete(&c, &format!("/api/sessions/{c_id}")).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.set_cookie("sf_session").unwrap().contains("Max-Age=0"));
    assert_error(&c.me().await, 401, "unauthenticated");
    for path in [
        "/api/sessions",
        "/api/devices",
        "/api/security-log",
        "/api/2fa/authenticators",
    ] {
        assert_error(&c.get(path).await, 401, "unauthenticated");
    }
}

pub async fn password_change_and_security_log(example: &str) {
    let server = Server::start(example, &[]);
    let user = enrolled(server.client(), "pwchange").await;
    let a = &user.client;
    let b = login_with_backup(&server, "pwchange", PW, &user.backup_codes[0], true).await;
    // A wrong password and a wrong code, for the log.
    let c = server.client();
    let r = c
        .post(
            "/api/login",
            json!({ "username": "pwchange", "password": "not the password" }),
        )
        .await;
    assert_error(&r, 401, "invalid_credentials");

    let r = a
        .post(
            "/api/password",
            json!({ "current_password": "wrong one", "new_password": "a new password" }),
        )
        .await;
    assert_error(&r, 401, "invalid_credentials");
    let r = a
        .post(
            "/api/password",
            json!({ "current_password": PW, "new_password": "short" }),
        )
        .await;
    assert_error(&r, 400, "invalid_input");
    let old_cookie = a.get("/api/sessions").await;
    assert_eq!(old_cookie.status, 200);
    let r = a
        .post(
            "/api/password",
            json!({ "current_password": PW, "new_password": "a new password" }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    no_store(&r);
    let fresh = r.cookie_value("sf_session").expect("a new session cookie");
    cookie_flags_ok(&r.set_cookie("sf_session").unwrap());
    // This session goes on (with its new cookie); the other one and its device end.
    assert_eq!(a.me().await.status, 200);
    assert_error(&b.me().await, 401, "unauthenticated");
    let r = a.get("/api/sessions").await;
    let sessions = r.json["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 1, "{}", r.text);
    assert_eq!(sessions[0]["current"], true);
    assert_ne!(
        sessions[0]["id"].as_str().unwrap(),
        fresh,
        "an id is not the cookie"
    );
    assert!(
        a.get("/api/devices").await.json["devices"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let r = b.login("pwchange").await;
    assert_error(&r, 401, "invalid_credentials");
    login_with_backup(
        &server,
        "pwchange",
        "a new password",
        &user.backup_codes[1],
        false,
    )
    .await;

    // The security log: newest first, the expected kinds, no secrets.
    let r = a.get("/api/security-log").await;
    assert_eq!(r.status, 200, "{}", r.text);
    no_store(&r);
    let events = r.json["events"].as_array().unwrap().clone();
    let ats: Vec<u64> = events.iter().map(|e| e["at"].as_u64().unwrap()).collect();
    assert!(
        ats.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {ats:?}"
    );
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in [
        "login",
        "login_failed",
        "two_factor_enabled",
        "backup_code_used",
        "password_changed",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing in {kinds:?}");
    }
    assert_eq!(kinds[0], "login", "{kinds:?}");
    let login = events.iter().find(|e| e["kind"] == "login").unwrap();
    assert!(login["method"].is_string(), "{login}");
    let failed = events.iter().find(|e| e["kind"] == "login_failed").unwrap();
    assert_eq!(failed["client"], "127.0.0.1", "{failed}");
    for e in &events {
        if e.get("method").is_some() {
            assert!(e["method"].is_string(), "{e}");
        }
    }
    for secret in [PW, "a new password", &user.backup_codes[0], &fresh] {
        assert!(!r.text.contains(secret), "the log shows a secret");
    }
    let pos = |k: &str| kinds.iter().position(|x| *x == k).unwrap();
    assert!(
        pos("password_changed") < pos("two_factor_enabled"),
        "{kinds:?}"
    );
}

// --- process -----------------------------------------------------------------------

pub async fn dev_key_is_made_once_and_reused(example: &str) {
    let dir = crate::client::work_dir(&format!("{example}-key"));
    let key_file = dir.join("secondfactor-dev.key");
    let first = Server::start_in(example, &dir, &[]);
    assert!(first.stderr().contains("WARNING"), "a loud warning");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(key.trim().len(), 44, "base64 of 32 bytes");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner-only key file");
    }
    drop(first);
    let second = Server::start_in(example, &dir, &[]);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key, "reused");
    drop(second);

    // An explicit key needs no file; a bad one stops the start with a message.
    let other = crate::client::work_dir(&format!("{example}-key2"));
    let explicit = Server::start_in(
        example,
        &other,
        &[(
            "SF_MASTER_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )],
    );
    assert!(!other.join("secondfactor-dev.key").exists());
    assert!(!explicit.stderr().contains("WARNING"));
    drop(explicit);
    let (status, stderr) = Server::start_failing(example, &other, &[("SF_MASTER_KEY", "c2hvcnQ=")]);
    assert!(!status.success());
    assert!(stderr.contains("SF_MASTER_KEY"), "{stderr}");
    let (status, stderr) = Server::start_failing(example, &other, &[("SF_LOGIN_TTL_SECS", "soon")]);
    assert!(!status.success());
    assert!(stderr.contains("SF_LOGIN_TTL_SECS"), "{stderr}");
}

#[cfg(unix)]
pub async fn sigterm_shuts_down_cleanly(example: &str) {
    let mut server = Server::start(example, &[]);
    let c = server.client();
    assert_eq!(c.register("olga").await.status, 201);
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        server.stderr()
    );
    let gone = c.http.get(server.url("/")).send().await;
    assert!(gone.is_err(), "no longer listening");
}

#[cfg(not(unix))]
pub async fn sigterm_shuts_down_cleanly(_example: &str) {}

// --- persistence and several instances ------------------------------------------

/// The default store is the SQLite file in the working directory: accounts, 2FA and
/// the replay marks survive a restart (with the development key reused).
pub async fn a_restart_keeps_accounts_and_two_factor(example: &str) {
    let dir = crate::client::work_dir(&format!("{example}-restart"));
    let mut first = Server::start_in(example, &dir, &[]);
    assert!(
        dir.join("secondfactor-demo.db").exists(),
        "{}",
        first.stderr()
    );
    let user = enrolled(first.client(), "rita").await;
    let next = user.phone.code_at_step(user.confirm_step + 1);
    let c = first.client();
    c.login("rita").await;
    assert_eq!(c.code(&next).await.status, 200);
    assert!(first.terminate().success());
    drop(first);

    let second = Server::start_in(example, &dir, &[]);
    let c = second.client();
    let r = c.login("rita").await;
    assert_eq!(r.json["status"], "second_factor_required", "{}", r.text);
    // The code accepted before the restart stays spent.
    assert_error(&c.code(&next).await, 401, "code_already_used");
    let r = Client::send(
        c.request(reqwest::Method::POST, "/api/login/second-factor")
            .json(&json!({ "backup_code": user.backup_codes[9] })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        me_fields(&c.me().await),
        json!({ "username": "rita", "two_factor_enabled": true, "backup_codes_remaining": 9 })
    );
}

/// Two instances on one PostgreSQL database (and one master key) are one service: a
/// code or backup code accepted by one is refused by the other, also when both are
/// sent at the same moment.
pub async fn two_instances_on_one_postgres_are_one_service(example: &str) {
    let Some(url) = crate::client::postgres_url("two_instances_on_one_postgres_are_one_service")
    else {
        return;
    };
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    // The password limiter's state is shared in the database too (and with other
    // runs): every client gets its own forwarded address.
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("SF_MASTER_KEY", key),
        ("SF_TRUST_FORWARDED", "1"),
    ];
    let net = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 250;
    let next_ip = std::sync::atomic::AtomicU32::new(0);
    let client = |server: &Server| {
        let n = next_ip.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        server.client().via(&format!(
            "10.{}.{net}.{}",
            100 + std::process::id() % 150,
            n + 1
        ))
    };
    let a = Server::start(example, &env);
    let b = Server::start(example, &env);
    let name = crate::client::unique("pg");
    let user = enrolled(client(&a), &name).await;

    // Sequential: accepted on A, refused on B.
    let code = user.phone.code_at_step(user.confirm_step + 1);
    let on_a = client(&a);
    let on_b = client(&b);
    on_a.login(&name).await;
    assert_eq!(
        on_b.login(&name).await.json["status"],
        "second_factor_required"
    );
    assert_eq!(on_a.code(&code).await.status, 200);
    assert_error(&on_b.code(&code).await, 401, "code_already_used");
    // B's session is good on A.
    let backup = user.backup_codes[0].clone();
    let r = Client::send(
        on_b.request(reqwest::Method::POST, "/api/login/second-factor")
            .json(&json!({ "backup_code": backup })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let session = r.cookie_value("sf_session").unwrap();
    let r = Client::send(
        a.client()
            .request(reqwest::Method::GET, "/api/me")
            .header("cookie", format!("sf_session={session}")),
    )
    .await;
    assert_eq!(r.json["backup_codes_remaining"], 9, "{}", r.text);
    // The backup code B accepted is refused by A, which knows it was spent.
    let again = client(&a);
    again.login(&name).await;
    let r = Client::send(
        again
            .request(reqwest::Method::POST, "/api/login/second-factor")
            .json(&json!({ "backup_code": backup })),
    )
    .await;
    assert_error(&r, 401, "backup_code_used");

    // Concurrent: one backup code, 8 pending logins on each instance, one winner.
    let contested = user.backup_codes[1].clone();
    let mut clients = Vec::new();
    for i in 0..16 {
        let server = if i % 2 == 0 { &a } else { &b };
        let c = client(server);
        let r = c.login(&name).await;
        assert_eq!(r.json["status"], "second_factor_required", "{}", r.text);
        clients.push(c);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|c| {
            let barrier = barrier.clone();
            let contested = contested.clone();
            tokio::spawn(async move {
                let rb = c
                    .request(reqwest::Method::POST, "/api/login/second-factor")
                    .json(&json!({ "backup_code": contested }));
                barrier.wait().await;
                Client::send(rb).await
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => winners += 1,
            // A loser checked before or after the winner's spent mark was written.
            401 => assert!(
                matches!(r.error(), "invalid_code" | "backup_code_used"),
                "{}",
                r.text
            ),
            429 => assert_eq!(r.error(), "too_many_attempts", "{}", r.text),
            _ => panic!("unexpected {}: {}", r.status, r.text),
        }
    }
    assert_eq!(winners, 1, "exactly one instance accepts the backup code");
}

// --- store outage ------------------------------------------------------------------

/// With Redis holding the ephemeral state behind a proxy we can cut: while it is
/// down, requests get `503 {"error":"unavailable"}` (never a crash, never a 500);
/// once it is back, the same session works again.
pub async fn store_outage_is_503_and_recovers(example: &str) {
    let Some(redis) = crate::client::redis_url("store_outage_is_503_and_recovers") else {
        return;
    };
    let (_, target) = crate::client::redirect_url(&redis, "127.0.0.1:1");
    let mut proxy = crate::client::TcpProxy::start(&target).await;
    let (via_proxy, _) = crate::client::redirect_url(&redis, &format!("127.0.0.1:{}", proxy.port));
    let server = Server::start(example, &[("REDIS_URL", &via_proxy)]);
    assert!(server.stderr().contains("Redis"), "{}", server.stderr());
    let c = server.client();
    assert_eq!(c.register("quinn").await.status, 201);
    assert_eq!(c.login("quinn").await.json["status"], "authenticated");
    assert_eq!(c.me().await.status, 200);

    proxy.cut().await;
    assert_error(&c.me().await, 503, "unavailable");
    assert_error(&c.login("quinn").await, 503, "unavailable");
    let r = c.get("/account").await;
    assert_html(&r, 503);
    assert!(r.text.contains("unavailable"), "{}", r.text);

    proxy.restore().await;
    let start = std::time::Instant::now();
    loop {
        let r = c.me().await;
        if r.status == 200 {
            assert_eq!(r.json["username"], "quinn");
            break;
        }
        assert_error(&r, 503, "unavailable");
        assert!(start.elapsed() < Duration::from_secs(20), "no recovery");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// --- a real browser ----------------------------------------------------------------

/// A chromedriver process on a free port, ended on drop.
struct ChromeDriver {
    child: std::process::Child,
    url: String,
}

impl ChromeDriver {
    /// Starts `/usr/bin/chromedriver`, or returns `None` (with a note) when it is not
    /// installed (`apt-get install chromium chromium-driver`). With `CI=true` a missing
    /// driver fails the test.
    fn start() -> Option<ChromeDriver> {
        let driver = std::path::Path::new("/usr/bin/chromedriver");
        if !driver.exists() || !std::path::Path::new("/usr/bin/chromium").exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but chromium / chromium-driver are not installed"
            );
            eprintln!("note: skipping the browser test: install chromium and chromium-driver");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(ChromeDriver { child, url })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Browser {
    client: fantoccini::Client,
    base: String,
    shots: std::path::PathBuf,
    n: u32,
}

impl Browser {
    /// A headless Chromium session on `base`, with its screenshots in a fresh
    /// `screenshots/{shots}` under the test directory, and — `with_key` — a
    /// WebDriver virtual authenticator.
    async fn open(driver: &ChromeDriver, base: String, shots: &str, with_key: bool) -> Browser {
        let mut caps = fantoccini::wd::Capabilities::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=900,1300"],
            }),
        );
        let client = fantoccini::ClientBuilder::new(
            hyper_util::client::legacy::connect::HttpConnector::new(),
        )
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("chromedriver session");
        if with_key {
            client
                .issue_cmd(AddVirtualAuthenticator)
                .await
                .expect("a virtual authenticator");
        }
        let shots = crate::client::tmp_dir().join("screenshots").join(shots);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            base,
            shots,
            n: 0,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn fill(&self, id: &str, text: &str) {
        let input = self.client.find(fantoccini::Locator::Id(id)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Waits until the browser shows `path` (path and query).
    async fn wait_for(&self, path: &str) {
        let start = std::time::Instant::now();
        loop {
            let url = self.client.current_url().await.unwrap();
            let here = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            if here == path {
                return;
            }
            if start.elapsed() > Duration::from_secs(15) {
                let page = self.client.source().await.unwrap_or_default();
                panic!("at {here}, waiting for {path}; the page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn screenshot(&mut self, name: &str) {
        self.n += 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{:02}-{name}.png", self.n)), png).unwrap();
    }

    /// With `SF_SCREENSHOTS=1` (axum's walk only), saves this page at desktop
    /// (1280×900) and phone (375×812) size as `docs/screenshots/{name}-{size}.png`
    /// for the README.
    async fn docs_screenshot(&self, example: &str, name: &str) {
        if example != "axum" || std::env::var_os("SF_SCREENSHOTS").is_none_or(|v| v != "1") {
            return;
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let (_, _, width, height) = self.client.get_window_rect().await.unwrap();
        for (size, w, h) in [("desktop", 1280, 900), ("phone", 375, 812)] {
            // The window, less the browser's own frame: the page gets w × h.
            self.client.set_window_size(w, h).await.unwrap();
            let inner = self
                .client
                .execute("return [window.innerWidth, window.innerHeight];", vec![])
                .await
                .unwrap();
            let frame = |i: usize, want: u32| {
                want + want.saturating_sub(inner[i].as_u64().unwrap_or(u64::from(want)) as u32)
            };
            self.client
                .set_window_size(frame(0, w), frame(1, h))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(dir.join(format!("{name}-{size}.png")), png).unwrap();
        }
        self.client
            .set_window_size(width as u32, height as u32)
            .await
            .unwrap();
    }
}

pub async fn browser_register_enable_and_log_in(example: &str) {
    let Some(driver) = ChromeDriver::start() else {
        return;
    };
    // A short re-authentication window, so that the walk can outlive it.
    let server = Server::start(example, &[("SF_REAUTH_TTL_SECS", "10")]);
    let mut b = Browser::open(&driver, server.base.clone(), example, false).await;

    b.goto("/register").await;
    b.fill("username", "petra").await;
    b.fill("password", PW).await;
    b.screenshot("register").await;
    b.click("form button[type=submit]").await;
    // Registering logs in.
    b.wait_for("/account").await;
    assert!(b.text("#status").await.contains("off"));
    b.screenshot("account-off").await;

    // Turn 2FA on, reading the secret off the page as a person would.
    b.click("form[action='/account/2fa/setup'] button").await;
    b.wait_for("/account/2fa/setup").await;
    b.screenshot("setup").await;
    b.docs_screenshot(example, "setup").await;
    let qr = b.client.find(fantoccini::Locator::Id("qr")).await.unwrap();
    assert!(
        qr.attr("src")
            .await
            .unwrap()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    let secret = b.text("#secret").await.replace(' ', "");
    let phone = Phone::new(&secret);
    let step = Phone::step_now();
    b.fill("code", &phone.code_at_step(step)).await;
    b.click("form[action='/account/2fa/setup/confirm'] button")
        .await;
    // POST-redirect-GET: the codes have their own page.
    b.wait_for("/backup-codes").await;
    let codes = b.text("#backup-codes").await;
    assert_eq!(codes.lines().count(), 10, "{codes}");
    let backup = codes.lines().next().unwrap().to_owned();
    b.screenshot("backup-codes").await;
    b.docs_screenshot(example, "backup-codes").await;
    // A reload shows the same codes (no form posted again, no error).
    b.client.refresh().await.unwrap();
    b.wait_for("/backup-codes").await;
    assert_eq!(b.text("#backup-codes").await, codes);
    // "I have saved them", then the page again: no codes, the account page says why.
    b.click("#saved-codes input[name=saved]").await;
    b.click("#saved-codes button").await;
    b.wait_for("/account?notice=codes_saved").await;
    b.goto("/backup-codes").await;
    b.wait_for("/account?notice=codes_shown").await;
    let page = b.client.source().await.unwrap();
    assert!(!page.contains("id=\"backup-codes\""), "{page}");
    assert!(!page.contains(&backup), "{page}");
    assert!(!page.contains("class=\"error\""), "{page}");
    assert!(page.contains("shown once"), "{page}");

    b.goto("/account").await;
    b.click("form[action='/logout'] button").await;
    b.wait_for("/login?notice=logged_out").await;

    b.fill("username", "petra").await;
    b.fill("password", PW).await;
    b.click("form button[type=submit]").await;
    b.wait_for("/login/verify").await;
    b.screenshot("verify").await;
    b.fill("code", &phone.code_at_step(step + 1)).await;
    b.click("form:first-of-type input[name=remember_device]")
        .await;
    b.click("form:first-of-type button").await;
    b.wait_for("/account").await;
    let logged_in = std::time::Instant::now();
    let status = b.text("#status").await;
    assert!(status.contains("on"), "{status}");
    assert_eq!(b.text("#username").await, "petra");
    b.screenshot("account-on").await;
    b.docs_screenshot(example, "account").await;

    // The account page lists this session, this browser and the security log.
    let sessions = b.text("#sessions").await;
    assert!(sessions.contains("(this session)"), "{sessions}");
    let devices = b.text("#devices").await;
    assert!(devices.contains("(this browser)"), "{devices}");
    let log = b.text("#security-log").await;
    for words in [
        "Logged in",
        "Two-factor authentication turned on",
        "127.0.0.1",
    ] {
        assert!(log.contains(words), "{words:?} not in {log}");
    }

    // Once the window has passed, a credential change goes through /reauth and back.
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(logged_in.elapsed())).await;
    b.fill("authenticator-name", "tablet").await;
    b.click("form[action='/account/authenticators'] button")
        .await;
    b.wait_for("/reauth?next=%2Faccount").await;
    b.screenshot("reauth").await;
    b.fill("password", "not the password").await;
    b.click("form[action='/reauth'] button").await;
    b.wait_for("/reauth").await;
    assert!(b.text("#error").await.contains("password is not right"));
    b.fill("password", PW).await;
    b.fill("backup_code", &backup).await;
    b.click("form[action='/reauth'] button").await;
    b.wait_for("/account").await;
    b.fill("authenticator-name", "tablet").await;
    b.click("form[action='/account/authenticators'] button")
        .await;
    b.wait_for("/account/2fa/setup").await;
    assert_eq!(b.text("h1").await, "Add an authenticator");
    b.screenshot("add-authenticator").await;
    b.goto("/account").await;
    let log = b.text("#security-log").await;
    assert!(log.contains("Confirmed it was you"), "{log}");
    assert!(log.contains("Backup code used"), "{log}");
    b.screenshot("account-lists").await;
    b.client.close().await.unwrap();
}

// --- the operator's reset tool -----------------------------------------------------

/// Runs `examples/reset_2fa` in `dir` (the servers' working directory) with `args`.
fn reset_2fa(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(crate::client::example_binary("reset_2fa"))
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("SF_MASTER_KEY")
        .args(args)
        .output()
        .unwrap()
}

#[cfg(not(unix))]
pub async fn reset_2fa_lets_the_user_in_with_the_password_alone(_example: &str) {}

/// The operator's `reset_2fa` tool on the servers' store (run with `example`'s server).
#[cfg(unix)]
pub async fn reset_2fa_lets_the_user_in_with_the_password_alone(example: &str) {
    let dir = crate::client::work_dir("reset-2fa");
    let mut server = Server::start_in(example, &dir, &[]);
    let user = enrolled(server.client(), "lost.phone").await;
    assert_eq!(user.client.me().await.json["two_factor_enabled"], true);
    assert!(server.terminate().success());

    // Mistakes: one clear line, a non-zero exit, nothing changed.
    let out = reset_2fa(&dir, &["--username", "lost.phone", "--operator", "ann"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{err}"
    );
    assert!(err.contains("--reason is required"), "{err}");
    let out = reset_2fa(
        &dir,
        &["--username", "nobody", "--operator", "ann", "--reason", "x"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error: no account named \"nobody\""), "{err}");

    let out = reset_2fa(
        &dir,
        &[
            "--username",
            "Lost.Phone",
            "--operator",
            "ann (support)",
            "--reason=ticket 42, ID checked on a video call",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("reset two-factor authentication of \"lost.phone\""),
        "{stdout}"
    );

    let server = Server::start_in(example, &dir, &[]);
    let c = server.client();
    let r = c.login("lost.phone").await;
    assert_eq!(r.json["status"], "authenticated", "{}", r.text);
    assert_eq!(c.me().await.json["two_factor_enabled"], false);
    // The old session ended; the log says who reset it.
    let sessions = c.get("/api/sessions").await;
    assert_eq!(
        sessions.json["sessions"].as_array().unwrap().len(),
        1,
        "{}",
        sessions.text
    );
    let log = c.get("/api/security-log").await;
    let reset = log.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "two_factor_reset")
        .cloned()
        .unwrap_or_else(|| panic!("no two_factor_reset in {}", log.text));
    assert!(reset["at"].is_u64(), "{reset}");
}

// --- a security key in a real browser (feature `webauthn`) -------------------------

/// The walk with a WebDriver virtual authenticator (W3C WebAuthn Level 2, §11
/// "WebDriver Extension"): on `http://localhost`, register a key from the account
/// page (it turns 2FA on and shows the backup codes), log out, log in with the
/// password and the key, then turn 2FA off with a backup code, which removes it.
/// `POST /session/{id}/webauthn/authenticator`: a CTAP2 platform authenticator
/// that verifies its user.
#[derive(Debug)]
struct AddVirtualAuthenticator;

impl fantoccini::wd::WebDriverCompatibleCommand for AddVirtualAuthenticator {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/webauthn/authenticator",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (reqwest::Method, Option<String>) {
        let body = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
        });
        (reqwest::Method::POST, Some(body.to_string()))
    }
}

/// The security-key walk (see the comment above the virtual authenticator).
pub async fn security_key_walk(example: &str) {
    let Some(driver) = ChromeDriver::start() else {
        return;
    };
    // A short re-authentication window, so that the walk can outlive it and confirm
    // with the key on the re-authentication page.
    let server = Server::start(example, &[("SF_REAUTH_TTL_SECS", "10")]);
    // WebAuthn needs a domain: the relying party is localhost (an IP address is
    // not a valid relying-party id).
    let base = server.base.replace("127.0.0.1", "localhost");
    let shots = format!("{example}-webauthn");
    let mut b = Browser::open(&driver, base, &shots, true).await;

    b.goto("/register").await;
    b.fill("username", "keyholder").await;
    b.fill("password", PW).await;
    b.click("form button[type=submit]").await;
    b.wait_for("/account").await;
    assert!(b.text("#status").await.contains("off"));

    // The first key turns 2FA on and shows the backup codes once.
    b.fill("webauthn-name", "laptop key").await;
    b.click("#webauthn-register").await;
    let start = std::time::Instant::now();
    let codes = loop {
        let codes = b
            .client
            .find_all(fantoccini::Locator::Css("#backup-codes li"))
            .await
            .unwrap();
        if !codes.is_empty() {
            break codes;
        }
        if start.elapsed() > Duration::from_secs(15) {
            let page = b.client.source().await.unwrap_or_default();
            panic!("no backup codes after adding the key; the page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(codes.len(), 10);
    let backup = codes[0].text().await.unwrap();
    b.screenshot("key-added").await;
    b.click("#webauthn-continue").await;
    b.wait_for("/account?notice=key_added").await;
    assert!(b.text("#status").await.contains("on"));
    let page = b.client.source().await.unwrap();
    assert!(page.contains("laptop key"), "{page}");

    // Log out, then in with the password and the key.
    b.click("form[action='/logout'] button").await;
    b.wait_for("/login?notice=logged_out").await;
    b.fill("username", "keyholder").await;
    b.fill("password", PW).await;
    b.click("form button[type=submit]").await;
    b.wait_for("/login/verify").await;
    b.screenshot("verify-with-key").await;
    b.click("#webauthn-login").await;
    b.wait_for("/account").await;
    let logged_in = std::time::Instant::now();
    assert_eq!(b.text("#username").await, "keyholder");
    let log = b.text("#security-log").await;
    assert!(log.contains("Logged in"), "{log}");
    b.screenshot("logged-in-with-key").await;
    // The confirmation ceremony this session can start lists this account's key.
    let options = b
        .client
        .execute_async(
            "var done = arguments[arguments.length - 1];
             fetch('/api/reauth/webauthn/start', { method: 'POST' })
               .then(function (r) { return r.json().then(function (j) { done([r.status, j]); }); })
               .catch(function (e) { done([0, String(e)]); });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(options[0], 200, "{options}");
    let allowed = options[1]["publicKey"]["allowCredentials"]
        .as_array()
        .unwrap_or_else(|| panic!("no allowCredentials: {options}"));
    assert_eq!(allowed.len(), 1, "{options}");
    assert!(
        options[1]["publicKey"]["challenge"].is_string(),
        "{options}"
    );

    // Once the window has passed, turning 2FA off goes through /reauth, confirmed
    // with the password and the key (the page's button: POST
    // /api/reauth/webauthn/start, the key's answer, then POST /api/reauth).
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(logged_in.elapsed())).await;
    let disable = async |b: &Browser| {
        b.fill("disable-backup", &backup).await;
        b.click("form[action='/account/2fa/disable'] input[name=confirm]")
            .await;
        b.click("form[action='/account/2fa/disable'] button").await;
    };
    disable(&b).await;
    b.wait_for("/reauth?next=%2Faccount").await;
    // Without the password the button says so and sends nothing.
    b.click("#webauthn-reauth").await;
    let said = b.text("#webauthn-error").await;
    assert!(said.contains("password"), "{said}");
    b.fill("password", PW).await;
    b.screenshot("reauth-with-key").await;
    b.click("#webauthn-reauth").await;
    b.wait_for("/account").await;
    let confirmed = b.text("#security-log tr[data-kind=reauthenticated]").await;
    assert!(confirmed.contains("security key"), "{confirmed}");

    // The window is open again: turning 2FA off (with a backup code) goes through,
    // and removes the account's key.
    disable(&b).await;
    b.wait_for("/account?notice=disabled").await;
    assert!(b.text("#status").await.contains("off"));
    let page = b.client.source().await.unwrap();
    assert!(!page.contains("laptop key"), "{page}");
    b.client.close().await.unwrap();
}
