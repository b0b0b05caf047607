//! The SQL stores under faults: an unreachable server, a statement that fails in the
//! middle of a flow (injected with a trigger, so it is deterministic), and connections
//! killed under the pool. Every failure must surface as `unavailable`, never as a
//! panic, and leave no partial state: no backup code spent for a login that did not
//! complete, no half-enabled 2FA.
//!
//! The PostgreSQL tests need `DATABASE_URL` (skipped with a note when unset, except
//! under `CI=true`); the unreachable-server tests need no server.
#![cfg(any(feature = "sqlite", feature = "postgres"))]

mod support;

use std::time::Duration;

use secondfactor::store::AccountStore;
use secondfactor::totp::TotpKey;
use secondfactor::{LoginOutcome, LoginRequest, SecondFactor};
use support::*;

/// The flow-level fault scenarios, with `fail(table, op)` making every `op`
/// (`INSERT`, `UPDATE` or `DELETE`) on `table` fail until `heal()`.
macro_rules! fault_scenarios {
    ($store:expr, $fail:expr, $heal:expr) => {{
        let (service, clock) = service($store);
        let e = enroll(&service, &clock).await;

        // 1. The backup code's DELETE fails: `unavailable`, the code is not spent, and
        //    the pending login survives for a retry.
        let token = pending_token(&service, &e.name).await;
        $fail("sf_backup_codes", "DELETE").await;
        let err = service
            .second_factor(&token, SecondFactor::BackupCode(&e.backup[0]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unavailable");
        $heal().await;
        assert_eq!(
            service
                .status(&e.user)
                .await
                .unwrap()
                .backup_codes_remaining,
            10
        );
        let _auth = service
            .second_factor(&token, SecondFactor::BackupCode(&e.backup[0]))
            .await
            .unwrap();
        assert_eq!(
            service
                .status(&e.user)
                .await
                .unwrap()
                .backup_codes_remaining,
            9
        );

        // 2. The replay mark cannot be written: `unavailable`; the same code works
        //    once the store is back.
        let token = pending_token(&service, &e.name).await;
        let code = e.phone.generate(service.now());
        $fail("sf_authenticator_steps", "UPDATE").await;
        let err = service
            .second_factor(&token, SecondFactor::Totp(&code))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unavailable");
        $heal().await;
        let _auth = service
            .second_factor(&token, SecondFactor::Totp(&code))
            .await
            .unwrap();

        // 3. The sign-in's session cannot be written: the commit that would spend the
        //    code fails as a whole (`unavailable`), so the code is not spent, no device
        //    is trusted, and the same code signs in once the store is back.
        clock.advance(Duration::from_secs(30));
        let token = pending_token(&service, &e.name).await;
        let code = e.phone.generate(service.now());
        let options = secondfactor::flow::SecondFactorOptions {
            remember_device: Some("laptop"),
            client_key: None,
        };
        $fail("sf_sessions", "INSERT").await;
        let err = service
            .sign_in_second_factor(&token, SecondFactor::Totp(&code), options)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unavailable");
        $heal().await;
        assert!(service.trusted_devices(&e.user).await.unwrap().is_empty());
        let done = service
            .sign_in_second_factor(&token, SecondFactor::Totp(&code), options)
            .await
            .unwrap();
        assert!(done.device.is_some());
        assert_eq!(service.trusted_devices(&e.user).await.unwrap().len(), 1);

        // 4. Enabling 2FA fails half-way (the backup codes cannot be inserted): all or
        //    nothing, so 2FA stays off with no authenticator and no codes.
        let name = unique("g");
        let user = service.register(&name, PW).await.unwrap();
        let proof = proof_for(&service, &name).await;
        let setup = service.setup_two_factor(&proof).await.unwrap();
        let phone = TotpKey::new(service.totp_policy(), setup.secret().expose_bytes());
        $fail("sf_backup_codes", "INSERT").await;
        let err = service
            .confirm_enrollment(&proof, &phone.generate(service.now()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unavailable");
        $heal().await;
        let status = service.status(&user).await.unwrap();
        assert!(!status.enabled);
        assert_eq!(status.backup_codes_remaining, 0);
        assert!(status.authenticators.is_empty());
        // The password alone still logs in (2FA is off), and setup can start again.
        assert!(matches!(
            service.login(LoginRequest::new(&name, PW)).await.unwrap(),
            LoginOutcome::Authenticated(_)
        ));
        service.setup_two_factor(&proof).await.unwrap();
    }};
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use secondfactor::store::SqliteStore;
    use sqlx::sqlite::SqlitePoolOptions;

    #[tokio::test]
    async fn an_unopenable_database_is_unavailable_from_connect_and_flows() {
        let e = SqliteStore::connect("sqlite:///no-such-dir-for-sf/sub/x.db")
            .await
            .unwrap_err();
        assert_eq!(e.code(), "unavailable");
        let pool = SqlitePoolOptions::new()
            .acquire_timeout(Duration::from_millis(500))
            .connect_lazy("sqlite:///no-such-dir-for-sf/sub/x.db")
            .unwrap();
        let store = SqliteStore::from_pool(pool);
        assert_eq!(store.migrate().await.unwrap_err().code(), "unavailable");
        let (service, _) = service(store);
        let e = service
            .login(LoginRequest::new("alice", PW))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "unavailable");
        let e = service.register("alice", PW).await.unwrap_err();
        assert_eq!(e.code(), "unavailable");
    }

    #[tokio::test]
    async fn failures_mid_flow_leave_no_partial_state() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("f.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        let admin = SqliteStore::connect(&url).await.unwrap();
        let fail = |table: &'static str, op: &'static str| {
            let admin = admin.clone();
            async move {
                let sql = format!(
                    "CREATE TRIGGER sf_fault BEFORE {op} ON {table} \
                     BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(admin.pool())
                    .await
                    .unwrap();
            }
        };
        let heal = || {
            let admin = admin.clone();
            async move {
                sqlx::query("DROP TRIGGER sf_fault")
                    .execute(admin.pool())
                    .await
                    .unwrap();
            }
        };
        fault_scenarios!(store, fail, heal);
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::str::FromStr;

    use super::*;
    use secondfactor::store::PgStore;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

    async fn drop_schema(url: &str, schema: &str) {
        // A plain pool: `PgStore::connect` would migrate the default schema.
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(&pool)
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn a_closed_port_is_unavailable_from_connect_and_flows() {
        let options = PgConnectOptions::from_str("postgres://sf@127.0.0.1:1/x").unwrap();
        let started = std::time::Instant::now();
        let e = PgStore::connect_with(
            options.clone(),
            PgPoolOptions::new().acquire_timeout(Duration::from_millis(300)),
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "unavailable");
        let e = PgStore::connect_with(
            options.clone(),
            PgPoolOptions::new().acquire_timeout(Duration::from_millis(300)),
            Some("sf_schema"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), "unavailable");
        assert!(started.elapsed() < Duration::from_secs(10));

        let pool = PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(300))
            .connect_lazy_with(options);
        let store = PgStore::from_pool(pool);
        assert_eq!(store.migrate().await.unwrap_err().code(), "unavailable");
        let (service, _) = service(store);
        let e = service
            .login(LoginRequest::new("alice", PW))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "unavailable");
        let e = service.register("alice", PW).await.unwrap_err();
        assert_eq!(e.code(), "unavailable");
    }

    #[tokio::test]
    async fn failures_mid_flow_leave_no_partial_state() {
        let Some(url) = env_url("DATABASE_URL") else {
            return;
        };
        let schema = unique("sf_fault_");
        let store = PgStore::connect_with_schema(&url, &schema).await.unwrap();
        let admin = PgStore::connect_with_schema(&url, &schema).await.unwrap();
        sqlx::query(
            "CREATE FUNCTION sf_fault() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
        )
        .execute(admin.pool())
        .await
        .unwrap();
        let table_of_fault = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let fail = |table: &'static str, op: &'static str| {
            let (admin, slot) = (admin.clone(), table_of_fault.clone());
            async move {
                *slot.lock().unwrap() = table.to_owned();
                let sql = format!(
                    "CREATE TRIGGER sf_fault BEFORE {op} ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION sf_fault()"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(admin.pool())
                    .await
                    .unwrap();
            }
        };
        let heal = || {
            let (admin, slot) = (admin.clone(), table_of_fault.clone());
            async move {
                let table = slot.lock().unwrap().clone();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP TRIGGER sf_fault ON {table}"
                )))
                .execute(admin.pool())
                .await
                .unwrap();
            }
        };
        fault_scenarios!(store, fail, heal);
        drop_schema(&url, &schema).await;
    }

    /// The store's backends are terminated, first all of them between two steps of a
    /// login, then the one running the statement that spends the backup code. The
    /// interrupted operation fails with `unavailable` and changes nothing; the pool
    /// reconnects; the login completes with exactly one backup code spent.
    #[tokio::test]
    async fn killed_connections_are_unavailable_or_reconnect_without_partial_state() {
        let Some(url) = env_url("DATABASE_URL") else {
            return;
        };
        let schema = unique("sf_kill_");
        let app = unique("sf_kill_app_");
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .application_name(&app);
        let store = PgStore::connect_with(
            options,
            PgPoolOptions::new()
                .max_connections(2)
                .test_before_acquire(false),
            Some(&schema),
        )
        .await
        .unwrap();
        let admin = PgStore::connect_with_schema(&url, &schema).await.unwrap();
        let kill = || {
            let (admin, app) = (admin.clone(), app.clone());
            async move {
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1",
                )
                .bind(&app)
                .fetch_all(admin.pool())
                .await
                .unwrap();
                assert!(!killed.is_empty() && killed.iter().all(|k| *k));
            }
        };
        let (service, clock) = service(store);
        let e = enroll(&service, &clock).await;
        let remaining = || admin.backup_codes_remaining(&e.user);

        // Between two steps: the next operation fails cleanly or reconnects.
        let token = pending_token(&service, &e.name).await;
        kill().await;
        let mut failures = 0;
        let _auth = loop {
            match service
                .second_factor(&token, SecondFactor::BackupCode(&e.backup[0]))
                .await
            {
                Ok(auth) => break auth,
                Err(err) => {
                    assert_eq!(err.code(), "unavailable", "{err:?}");
                    assert_eq!(remaining().await.unwrap(), 10, "nothing spent");
                    failures += 1;
                    assert!(failures <= 2, "the pool did not reconnect");
                }
            }
        };
        assert_eq!(remaining().await.unwrap(), 9);

        // In the middle of the DELETE that spends the code: a trigger holds the
        // statement in pg_sleep until the backend is terminated.
        sqlx::query(
            "CREATE FUNCTION sf_stall() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(60); RETURN OLD; END $$",
        )
        .execute(admin.pool())
        .await
        .unwrap();
        sqlx::query(
            "CREATE TRIGGER sf_stall BEFORE DELETE ON sf_backup_codes \
             FOR EACH ROW EXECUTE FUNCTION sf_stall()",
        )
        .execute(admin.pool())
        .await
        .unwrap();
        let token = pending_token(&service, &e.name).await;
        let attempt = tokio::spawn({
            let (service, token, code) = (service.clone(), token.clone(), e.backup[1].clone());
            async move {
                service
                    .second_factor(&token, SecondFactor::BackupCode(&code))
                    .await
                    .map(|_| ())
            }
        });
        // Wait until the DELETE is stalled in the trigger, then kill its backend.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let stalled: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE application_name = $1 AND wait_event = 'PgSleep'",
            )
            .bind(&app)
            .fetch_one(admin.pool())
            .await
            .unwrap();
            if stalled > 0 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the DELETE never stalled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Kill exactly the backend running the DELETE.
        let killed: bool = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND wait_event = 'PgSleep'",
        )
        .bind(&app)
        .fetch_one(admin.pool())
        .await
        .unwrap();
        assert!(killed);
        let err = attempt.await.unwrap().unwrap_err();
        assert_eq!(err.code(), "unavailable", "{err:?}");
        sqlx::query("DROP TRIGGER sf_stall ON sf_backup_codes")
            .execute(admin.pool())
            .await
            .unwrap();
        assert_eq!(
            remaining().await.unwrap(),
            9,
            "the killed DELETE spent nothing"
        );
        // The pending login was put back; the same code completes the login now.
        let auth = service
            .second_factor(&token, SecondFactor::BackupCode(&e.backup[1]))
            .await
            .unwrap();
        assert_eq!(auth.user_id(), &e.user);
        assert_eq!(remaining().await.unwrap(), 8);
        drop_schema(&url, &schema).await;
    }
}
