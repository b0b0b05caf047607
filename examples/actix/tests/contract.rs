//! The HTTP contract suite, the browser walk, the migration tool and the reset tool
//! against this crate's server binary.

const SERVER: &str = env!("CARGO_BIN_EXE_secondfactor-example-actix");

secondfactor_example_contract::contract_suite!("actix", SERVER);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrated_users_log_in() {
    secondfactor_example_contract::client::register("actix", SERVER);
    secondfactor_example_contract::migrate::migrated_users_log_in("actix").await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_2fa_lets_the_user_in_with_the_password_alone() {
    secondfactor_example_contract::client::register("actix", SERVER);
    secondfactor_example_contract::http::reset_2fa_lets_the_user_in_with_the_password_alone(
        "actix",
    )
    .await;
}

/// 120 concurrent registrations leave the server under 400 MiB resident.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_registrations_stays_under_400_mib() {
    secondfactor_example_contract::client::register("actix", SERVER);
    secondfactor_example_contract::burst::burst("actix").await;
}
