//! Pending logins (attempt counting, burning, expiry, take, delete), enrollments and
//! WebAuthn ceremonies.

use super::fixtures::*;
use crate::store::*;

pub(super) async fn pending_logins<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();

    // Unknown tokens.
    assert!(
        ok(
            store.begin_login_attempt(&hash(), 3, t).await,
            "begin_login_attempt"
        )
        .is_none(),
        "begin_login_attempt: returned a pending login for an unknown token"
    );
    assert!(
        ok(
            store.take_pending_login(&hash(), t).await,
            "take_pending_login"
        )
        .is_none(),
        "take_pending_login: returned a pending login for an unknown token"
    );
    ok(
        store.delete_pending_login(&hash()).await,
        "delete_pending_login of a missing token",
    );

    // Counting up to the limit, then burnt.
    let token = hash();
    let login = pending(&user, 0, t + TTL);
    ok(
        store.create_pending_login(&token, &login).await,
        "create_pending_login",
    );
    for n in 1..=3 {
        let got = ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt",
        );
        let want = pending(&user, n, t + TTL);
        assert_eq!(
            got,
            Some(want),
            "begin_login_attempt: attempt {n} of 3 must return the login with attempts = {n}"
        );
    }
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt: a 4th attempt with max_attempts = 3 must return None"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "begin_login_attempt: an attempt beyond max_attempts must delete (burn) the pending login"
    );

    // Created with attempts already made.
    let token = hash();
    ok(
        store
            .create_pending_login(&token, &pending(&user, 2, t + TTL))
            .await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt"
        ),
        Some(pending(&user, 3, t + TTL)),
        "begin_login_attempt: counting must start from the stored attempts"
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt: beyond max_attempts must return None"
    );

    // Created with no attempt left: the next attempt burns it.
    let token = hash();
    ok(
        store
            .create_pending_login(&token, &pending(&user, 3, t + TTL))
            .await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 3, t).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt: a login with attempts == max_attempts must return None"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "begin_login_attempt: an attempt beyond max_attempts must delete (burn) the pending login"
    );

    // Take after some attempts: single use, with the count.
    let token = hash();
    ok(
        store.create_pending_login(&token, &login).await,
        "create_pending_login",
    );
    ok(
        store.begin_login_attempt(&token, 5, t).await,
        "begin_login_attempt",
    );
    ok(
        store.begin_login_attempt(&token, 5, t).await,
        "begin_login_attempt",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        Some(pending(&user, 2, t + TTL)),
        "take_pending_login: must return the login with its attempts counted"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "take_pending_login: a pending login could be taken twice"
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&token, 5, t).await,
            "begin_login_attempt"
        ),
        None,
        "take_pending_login: the taken login still accepts attempts"
    );

    // Delete, and independence of tokens.
    let kept = hash();
    let deleted = hash();
    ok(
        store.create_pending_login(&kept, &login).await,
        "create_pending_login",
    );
    ok(
        store.create_pending_login(&deleted, &login).await,
        "create_pending_login",
    );
    ok(
        store.delete_pending_login(&deleted).await,
        "delete_pending_login",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&deleted, t).await,
            "take_pending_login"
        ),
        None,
        "delete_pending_login: the login is still there"
    );
    ok(
        store.delete_pending_login(&deleted).await,
        "delete_pending_login twice",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&kept, t).await,
            "take_pending_login"
        ),
        Some(login.clone()),
        "delete_pending_login: deleted another token's pending login"
    );
}

pub(super) async fn pending_login_expiry<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let expires = t + TTL;
    let login = pending(&user, 0, expires);

    // Before expiry everything works; at `expires_at` the login is absent. (Always
    // the earlier `now` first: a store may delete an expired record when it sees it.)
    let a = hash();
    ok(
        store.create_pending_login(&a, &login).await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&a, 3, expires - 1).await,
            "begin_login_attempt"
        ),
        Some(pending(&user, 1, expires)),
        "begin_login_attempt: a login one second before expires_at must count"
    );
    assert_eq!(
        ok(
            store.begin_login_attempt(&a, 3, expires).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt: a login at now == expires_at must be absent"
    );

    let b = hash();
    ok(
        store.create_pending_login(&b, &login).await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&b, expires).await,
            "take_pending_login"
        ),
        None,
        "take_pending_login: a login at now == expires_at must be absent"
    );
    let c = hash();
    ok(
        store.create_pending_login(&c, &login).await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&c, expires + 1000).await,
            "take_pending_login"
        ),
        None,
        "take_pending_login: a login past expires_at must be absent"
    );
    let d = hash();
    ok(
        store.create_pending_login(&d, &login).await,
        "create_pending_login",
    );
    assert_eq!(
        ok(
            store.take_pending_login(&d, expires - 1).await,
            "take_pending_login"
        ),
        Some(login),
        "take_pending_login: a login one second before expires_at must be there"
    );
}

pub(super) async fn ceremonies<E: EphemeralStore>(store: &E) {
    let t = now();
    for login in [None, Some(hash())] {
        let key = hex_id();
        let c = ceremony_record(login, t + TTL);
        ok(store.put_ceremony(&key, &c).await, "put_ceremony");
        assert_eq!(
            ok(store.take_ceremony(&key, t).await, "take_ceremony"),
            Some(c.clone()),
            "take_ceremony: must return the ceremony as stored"
        );
        assert_eq!(
            ok(store.take_ceremony(&key, t).await, "take_ceremony"),
            None,
            "take_ceremony: a ceremony must be single use"
        );
    }
    // A later put replaces the earlier ceremony under the same key.
    let key = hex_id();
    let first = ceremony_record(None, t + TTL);
    let second = ceremony_record(Some(hash()), t + TTL);
    ok(store.put_ceremony(&key, &first).await, "put_ceremony");
    ok(store.put_ceremony(&key, &second).await, "put_ceremony");
    assert_eq!(
        ok(store.take_ceremony(&key, t).await, "take_ceremony"),
        Some(second),
        "take_ceremony: put_ceremony must replace the earlier ceremony"
    );
    // Expired: absent, also to a take at exactly `expires_at`.
    let key = hex_id();
    ok(
        store
            .put_ceremony(&key, &ceremony_record(None, t + 5))
            .await,
        "put_ceremony",
    );
    assert_eq!(
        ok(store.take_ceremony(&key, t + 5).await, "take_ceremony"),
        None,
        "take_ceremony: a ceremony with expires_at <= now must be absent"
    );
    assert_eq!(
        ok(store.take_ceremony(&hex_id(), t).await, "take_ceremony"),
        None,
        "take_ceremony: an unknown key must be absent"
    );
}

pub(super) async fn enrollments<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let expires = t + TTL;
    assert!(
        ok(store.enrollment(&user, t).await, "enrollment").is_none(),
        "enrollment: a user without one has one"
    );
    assert!(
        !ok(
            store.take_enrollment(&user, "nope", t).await,
            "take_enrollment"
        ),
        "take_enrollment: returned true with no enrollment"
    );

    let first = enrollment_record(false, expires);
    ok(store.put_enrollment(&user, &first).await, "put_enrollment");
    assert_same_enrollment(
        ok(store.enrollment(&user, t).await, "enrollment"),
        &first,
        "put_enrollment",
    );

    // Put replaces.
    let second = enrollment_record(true, expires + 5);
    ok(store.put_enrollment(&user, &second).await, "put_enrollment");
    assert_same_enrollment(
        ok(store.enrollment(&user, t).await, "enrollment"),
        &second,
        "put_enrollment (a second put must replace the first)",
    );
    assert!(
        !ok(
            store.take_enrollment(&user, &first.id, t).await,
            "take_enrollment"
        ),
        "take_enrollment: took the replaced enrollment's id"
    );
    assert_same_enrollment(
        ok(store.enrollment(&user, t).await, "enrollment"),
        &second,
        "take_enrollment (a take with the wrong id must leave it)",
    );

    // Another user's.
    let other = user_id();
    assert!(
        ok(store.enrollment(&other, t).await, "enrollment").is_none(),
        "enrollment: returned another user's enrollment"
    );
    assert!(
        !ok(
            store.take_enrollment(&other, &second.id, t).await,
            "take_enrollment"
        ),
        "take_enrollment: took another user's enrollment"
    );

    // Take: once.
    assert!(
        ok(
            store.take_enrollment(&user, &second.id, t).await,
            "take_enrollment"
        ),
        "take_enrollment: returned false for the current, unexpired enrollment"
    );
    assert!(
        ok(store.enrollment(&user, t).await, "enrollment").is_none(),
        "take_enrollment: the enrollment is still there"
    );
    assert!(
        !ok(
            store.take_enrollment(&user, &second.id, t).await,
            "take_enrollment"
        ),
        "take_enrollment: the same enrollment was taken twice"
    );

    // Expiry (earlier `now` first).
    let user = user_id();
    let e = enrollment_record(false, expires);
    ok(store.put_enrollment(&user, &e).await, "put_enrollment");
    assert_same_enrollment(
        ok(store.enrollment(&user, expires - 1).await, "enrollment"),
        &e,
        "enrollment (one second before expires_at)",
    );
    assert!(
        ok(store.enrollment(&user, expires).await, "enrollment").is_none(),
        "enrollment: returned an enrollment at now == expires_at"
    );
    assert!(
        !ok(
            store.take_enrollment(&user, &e.id, expires).await,
            "take_enrollment"
        ),
        "take_enrollment: took an enrollment at now == expires_at"
    );
    let user = user_id();
    ok(store.put_enrollment(&user, &e).await, "put_enrollment");
    assert!(
        ok(
            store.take_enrollment(&user, &e.id, expires - 1).await,
            "take_enrollment"
        ),
        "take_enrollment: refused an enrollment one second before expires_at"
    );
}

/// `read_factor_ephemeral`: the attempt counted on the first live pending login
/// among the tokens (exactly as `begin_login_attempt` counts it, dead logins met on
/// the way burnt), returned with its user's two second-factor throttles.
pub(super) async fn factor_ephemeral_read<E: EphemeralStore>(store: &E) {
    const WHAT: &str = "read_factor_ephemeral";
    let t = now();
    let user = user_id();
    let keys = factor_throttle_keys(&user);
    let read = async |tokens: &[KeyedHash], max: u32, at: u64| {
        ok(store.read_factor_ephemeral(tokens, max, at).await, WHAT)
    };

    assert!(
        read(&[], 3, t).await.is_none(),
        "{WHAT}: returned a pending login for no token"
    );
    assert!(
        read(&[hash(), hash()], 3, t).await.is_none(),
        "{WHAT}: returned a pending login for unknown tokens"
    );

    // Throttles: the lockout with a state, the budget with one that expires at t + 5.
    let lockout = ThrottleState {
        count: 2,
        until: t + 60,
    };
    let budget = ThrottleState { count: 4, until: t };
    for (key, state, keep) in [(&keys[0], lockout, t + TTL), (&keys[1], budget, t + 5)] {
        assert!(
            ok(
                store
                    .update_throttle(key, ThrottleState::default(), state, keep, t)
                    .await,
                "update_throttle"
            ),
            "update_throttle: a fresh throttle must take its first state"
        );
    }

    // An expired login and one out of attempts before the live one: both burnt.
    let (expired, used_up, live) = (hash(), hash(), hash());
    for (token, login) in [
        (&expired, pending(&user, 0, t)),
        (&used_up, pending(&user, 3, t + TTL)),
        (&live, pending(&user, 1, t + TTL)),
    ] {
        ok(
            store.create_pending_login(token, &login).await,
            "create_pending_login",
        );
    }
    let tokens = [hash(), expired, used_up, live];
    let Some(view) = read(&tokens, 3, t).await else {
        panic!("{WHAT}: the live pending login under the fourth token must be found");
    };
    assert_eq!(view.token, live, "{WHAT}: the hash it was found under");
    assert_eq!(
        view.pending,
        pending(&user, 2, t + TTL),
        "{WHAT}: the pending login must be returned with this attempt counted"
    );
    assert_eq!(
        view.throttles,
        [lockout, budget],
        "{WHAT}: the user's throttles, lockout then budget, as `throttle` reads them"
    );
    for (token, which) in [(&expired, "an expired"), (&used_up, "a used-up")] {
        assert_eq!(
            ok(
                store.take_pending_login(token, t).await,
                "take_pending_login"
            ),
            None,
            "{WHAT}: {which} pending login met before the live one must be burnt"
        );
    }

    // Later: the budget is past its keep_until (the zero state); the last attempt.
    let Some(view) = read(&[live], 3, t + 5).await else {
        panic!("{WHAT}: the pending login has an attempt left");
    };
    assert_eq!(
        view.pending.attempts, 3,
        "{WHAT}: the count must go on from the stored attempts"
    );
    assert_eq!(
        view.throttles,
        [lockout, ThrottleState::default()],
        "{WHAT}: a throttle past its keep_until must read as the default state"
    );
    // Out of attempts: None, and burnt.
    assert!(
        read(&[live], 3, t + 5).await.is_none(),
        "{WHAT}: a pending login with max_attempts made must not be returned"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&live, t).await,
            "take_pending_login"
        ),
        None,
        "{WHAT}: an attempt beyond max_attempts must burn the pending login"
    );

    // A user without throttles reads the default states.
    let other = user_id();
    let token = hash();
    ok(
        store
            .create_pending_login(&token, &pending(&other, 0, t + TTL))
            .await,
        "create_pending_login",
    );
    let Some(view) = read(&[token], 3, t).await else {
        panic!("{WHAT}: a fresh pending login must be found");
    };
    assert_eq!(
        (view.pending.attempts, view.throttles),
        (1, [ThrottleState::default(); 2]),
        "{WHAT}: the first attempt, and a user without throttles reads the default states"
    );
}
