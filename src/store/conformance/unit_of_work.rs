//! The unit of work: `read_factor_step` and `commit_factor_step`, one call at a time.

use super::fixtures::*;
use crate::store::*;

pub(super) async fn factor_step_read<S: Store>(store: &S) {
    let (account, auth, token, _) = step_fixture(store).await;
    let t = now();
    let other = hash();
    let Some(view) = ok(
        store.read_factor_step(&[other, token], 3, t).await,
        "read_factor_step",
    ) else {
        panic!("read_factor_step: the pending login must be found under the second hash");
    };
    assert!(
        view.token == token,
        "read_factor_step: the hash it was found under"
    );
    assert_eq!(
        view.pending.attempts, 1,
        "read_factor_step returns the pending login with this attempt counted"
    );
    assert_eq!(view.pending.user_id, account.id);
    let Some(got) = view.account.as_ref() else {
        panic!("read_factor_step: the account must be returned");
    };
    let Some(stored) = ok(store.account(&account.id).await, "account") else {
        panic!("read_factor_step: the account exists");
    };
    assert_same_account(got, &stored, "read_factor_step");
    assert_same_authenticators(&view.authenticators, &[&auth], "read_factor_step");
    assert_eq!(view.throttles[0].count, 1, "read_factor_step: the lockout");
    assert_eq!(view.throttles[1].count, 2, "read_factor_step: the budget");
    // Each step, a read and the commit of a wrong code, counts one attempt (in the
    // read or in the commit: the store's choice); the third uses the login up and
    // burns it.
    let parts = commit_parts(&account.id, &auth.id, 0);
    let mut view = view;
    for n in 1..=3 {
        if n > 1 {
            let Some(v) = ok(
                store.read_factor_step(&[token], 3, t).await,
                "read_factor_step",
            ) else {
                panic!("read_factor_step: attempt {n} of 3 must find the pending login");
            };
            view = v;
        }
        assert_eq!(
            view.pending.attempts, n,
            "read_factor_step: attempt {n} with the attempts before it counted"
        );
        let c = FactorCommit {
            max_attempts: 3,
            ..commit(&token, &account.id, &[], &[], &parts, n == 3)
        };
        assert_eq!(
            ok(store.commit_factor_step(&c).await, "commit_factor_step"),
            FactorCommitted::NotSpent,
            "commit_factor_step of a wrong code, attempt {n} of 3"
        );
    }
    assert!(
        ok(
            store.read_factor_step(&[token], 3, t).await,
            "read_factor_step"
        )
        .is_none(),
        "read_factor_step: a pending login past its attempts must be burnt"
    );
    assert!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        )
        .is_none(),
        "read_factor_step: the burnt pending login is gone"
    );
    assert!(
        ok(
            store.read_factor_step(&[hash()], 3, t).await,
            "read_factor_step"
        )
        .is_none(),
        "read_factor_step: an unknown token"
    );
}

pub(super) async fn factor_step_commit<S: Store>(store: &S) {
    let (account, auth, token, keys) = step_fixture(store).await;
    let t = now();
    let read = read_throttles(store, &keys).await;
    let step = t / 30;
    let parts = commit_parts(&account.id, &auth.id, step);
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &parts.marks, &writes, &parts, false);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::Spent,
        "commit_factor_step with a fresh step"
    );
    assert!(
        !ok(
            store.advance_last_step(&auth.id, step, t + TTL).await,
            "advance_last_step"
        ),
        "commit_factor_step: the spent step's replay mark must be recorded"
    );
    assert!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        )
        .is_none(),
        "commit_factor_step: a spent step takes the pending login"
    );
    assert_eq!(
        read_throttles(store, &keys).await,
        [ThrottleState::default(), read[1]],
        "commit_factor_step: a spent step writes the throttles' success states"
    );
    assert_eq!(
        ok(store.session(&parts.session_hash, t).await, "session"),
        Some(parts.session.clone()),
        "commit_factor_step: the session"
    );
    assert_eq!(
        ok(store.device(&parts.device_hash, t).await, "device"),
        Some(parts.device.clone()),
        "commit_factor_step: the trusted device"
    );
    let log = log_of(store, &account.id, 10).await;
    assert_eq!(log.len(), 1, "commit_factor_step: the security-log entry");

    // A replay on a new pending login: counted, nothing spent, the login kept.
    let token = hash();
    ok(
        store
            .create_pending_login(&token, &pending(&account.id, 1, t + TTL))
            .await,
        "create_pending_login",
    );
    let read = read_throttles(store, &keys).await;
    let parts = commit_parts(&account.id, &auth.id, step);
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &parts.marks, &writes, &parts, false);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::NotSpent,
        "commit_factor_step with a step already used (a replay)"
    );
    assert_eq!(
        read_throttles(store, &keys).await,
        [counted(read[0], t), counted(read[1], t)],
        "commit_factor_step: a replay is counted on the throttles"
    );
    assert!(
        ok(store.session(&parts.session_hash, t).await, "session").is_none(),
        "commit_factor_step: a replay writes no session"
    );
    assert_eq!(
        log_of(store, &account.id, 10).await.len(),
        2,
        "the failure's log entry"
    );

    // A wrong code (nothing to spend) that uses the login up: counted, login burnt.
    let read = read_throttles(store, &keys).await;
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &[], &writes, &parts, true);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::NotSpent,
        "commit_factor_step of a wrong code"
    );
    assert_eq!(
        read_throttles(store, &keys).await,
        [counted(read[0], t), counted(read[1], t)],
        "commit_factor_step: a wrong code is counted on the throttles"
    );
    assert!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        )
        .is_none(),
        "commit_factor_step: a failure with take_pending burns the pending login"
    );
}

pub(super) async fn factor_step_commit_refused<S: Store>(store: &S) {
    // A throttle that moved since the read: nothing is written.
    let (account, auth, token, keys) = step_fixture(store).await;
    let t = now();
    let read = read_throttles(store, &keys).await;
    let moved = counted(read[0], t);
    assert!(ok(
        store
            .update_throttle(&keys[0], read[0], moved, t + TTL, t)
            .await,
        "update_throttle"
    ));
    let step = t / 30;
    let parts = commit_parts(&account.id, &auth.id, step);
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &parts.marks, &writes, &parts, false);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::Conflict,
        "commit_factor_step after a throttle moved"
    );
    assert_eq!(
        read_throttles(store, &keys).await,
        [moved, read[1]],
        "commit_factor_step: a conflict writes no throttle"
    );
    assert!(
        ok(
            store.advance_last_step(&auth.id, step, t + TTL).await,
            "advance_last_step"
        ),
        "commit_factor_step: a conflict must not spend the step"
    );
    assert!(
        ok(store.session(&parts.session_hash, t).await, "session").is_none(),
        "commit_factor_step: a conflict writes no session"
    );
    assert!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        )
        .is_some(),
        "commit_factor_step: a conflict keeps the pending login"
    );

    // The pending login is gone (taken just above): nothing is spent.
    let read = read_throttles(store, &keys).await;
    let parts = commit_parts(&account.id, &auth.id, step + 1);
    let writes = throttle_writes(&keys, read, t);
    let c = commit(&token, &account.id, &parts.marks, &writes, &parts, false);
    assert_eq!(
        ok(store.commit_factor_step(&c).await, "commit_factor_step"),
        FactorCommitted::Expired,
        "commit_factor_step without its pending login"
    );
    assert!(
        ok(
            store.advance_last_step(&auth.id, step + 1, t + TTL).await,
            "advance_last_step"
        ),
        "commit_factor_step: without its pending login the step must not be spent"
    );
    assert!(
        ok(store.session(&parts.session_hash, t).await, "session").is_none(),
        "commit_factor_step: without its pending login no session is written"
    );
}
