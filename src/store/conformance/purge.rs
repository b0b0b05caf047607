//! `purge_expired`: expired records of every kind go, live ones stay.

use super::fixtures::*;
use crate::store::*;

pub(super) async fn purge<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let zero = ThrottleState::default();
    // One expired and one live record of each kind.
    let (dead_login, live_login) = (hash(), hash());
    ok(
        store
            .create_pending_login(&dead_login, &pending(&user, 0, t))
            .await,
        "create_pending_login",
    );
    ok(
        store
            .create_pending_login(&live_login, &pending(&user, 0, t + TTL))
            .await,
        "create_pending_login",
    );
    let (dead_user, live_user) = (user_id(), user.clone());
    let dead_enrollment = enrollment_record(false, t);
    let live_enrollment = enrollment_record(false, t + TTL);
    ok(
        store.put_enrollment(&dead_user, &dead_enrollment).await,
        "put_enrollment",
    );
    ok(
        store.put_enrollment(&live_user, &live_enrollment).await,
        "put_enrollment",
    );
    let (dead_mark, live_mark) = (authenticator_id(), authenticator_id());
    ok(
        store.advance_last_step(&dead_mark, 10, t).await,
        "advance_last_step",
    );
    ok(
        store.advance_last_step(&live_mark, 10, t + TTL).await,
        "advance_last_step",
    );
    let (dead_key, live_key) = (throttle_key(), throttle_key());
    let state = ThrottleState {
        count: 3,
        until: t + 30,
    };
    ok(
        store
            .update_throttle(&dead_key, zero, state, t, t - 1)
            .await,
        "update_throttle",
    );
    ok(
        store
            .update_throttle(&live_key, zero, state, t + TTL, t - 1)
            .await,
        "update_throttle",
    );
    let (dead_device, live_device) = (hash(), hash());
    let live_device_record = device_record(&user, t - 20, t + TTL);
    ok(
        store
            .create_device(&dead_device, &device_record(&user, t - 30, t))
            .await,
        "create_device",
    );
    ok(
        store.create_device(&live_device, &live_device_record).await,
        "create_device",
    );
    let (dead_session, live_session) = (hash(), hash());
    let live_session_record = session_record(&user, t - 20, t + TTL);
    ok(
        store
            .create_session(&dead_session, &session_record(&user, t - 30, t))
            .await,
        "create_session",
    );
    ok(
        store
            .create_session(&live_session, &live_session_record)
            .await,
        "create_session",
    );

    let purged = ok(store.purge_expired(t).await, "purge_expired");
    // Replay marks may be left to a native TTL (they carry no expiry of their own in
    // every store), so five: pending login, enrollment, throttle, device, session.
    assert!(
        purged >= 5,
        "purge_expired: returned {purged}, but the check made five expired records it \
         must delete (a pending login, an enrollment, a throttle, a device, a session)"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&dead_login, t - 1).await,
            "take_pending_login"
        ),
        None,
        "purge_expired: an expired pending login is still there"
    );
    assert_eq!(
        ok(store.enrollment(&dead_user, t - 1).await, "enrollment").map(|e| e.id),
        None,
        "purge_expired: an expired enrollment is still there"
    );
    assert_eq!(
        ok(store.throttle(&dead_key, t - 1).await, "throttle"),
        zero,
        "purge_expired: a throttle past its keep_until is still there"
    );
    assert_eq!(
        ok(store.device(&dead_device, t - 1).await, "device"),
        None,
        "purge_expired: an expired device is still there"
    );
    assert_eq!(
        ok(store.session(&dead_session, t - 1).await, "session"),
        None,
        "purge_expired: an expired session is still there"
    );
    // The live ones stay, whole.
    assert_same_enrollment(
        ok(store.enrollment(&live_user, t).await, "enrollment"),
        &live_enrollment,
        "purge_expired: a live enrollment",
    );
    assert!(
        !ok(
            store.advance_last_step(&live_mark, 10, t + TTL).await,
            "advance_last_step"
        ),
        "purge_expired: a replay mark before its keep_until was forgotten"
    );
    assert_eq!(
        ok(store.throttle(&live_key, t).await, "throttle"),
        state,
        "purge_expired: a throttle before its keep_until was purged"
    );
    assert_eq!(
        ok(store.devices(&user, t).await, "devices"),
        vec![live_device_record],
        "purge_expired: the account's live devices"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![live_session_record],
        "purge_expired: the account's live sessions"
    );
    assert_eq!(
        ok(
            store.take_pending_login(&live_login, t).await,
            "take_pending_login"
        ),
        Some(pending(&user, 0, t + TTL)),
        "purge_expired: a live pending login"
    );
}
