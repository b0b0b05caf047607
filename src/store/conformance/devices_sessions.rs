//! Trusted devices and sessions: every field, expiry, an account's list,
//! re-authentication, deleting one, all, or all but one.

use super::fixtures::*;
use crate::store::*;

pub(super) async fn devices<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let other = user_id();
    // Created out of `created_at` order: the list is ordered by `created_at`.
    let d1 = device_record(&user, t - 10, t + TTL);
    let d0 = device_record(&user, t - 20, t + TTL);
    let d2 = device_record(&user, t, t + TTL);
    let dv = device_record(&other, t - 30, t + TTL);
    let (h1, h0, h2, hv) = (hash(), hash(), hash(), hash());
    for (h, d) in [(&h1, &d1), (&h0, &d0), (&h2, &d2), (&hv, &dv)] {
        ok(store.create_device(h, d).await, "create_device");
    }

    assert_eq!(
        ok(store.device(&h1, t).await, "device"),
        Some(d1.clone()),
        "device: by its token hash"
    );
    assert_eq!(
        ok(store.device(&hash(), t).await, "device"),
        None,
        "device: an unknown token hash"
    );
    assert_eq!(
        ok(store.devices(&user, t).await, "devices"),
        vec![d0.clone(), d1.clone(), d2.clone()],
        "devices: the account's devices, oldest created_at first"
    );
    assert_eq!(
        ok(store.devices(&other, t).await, "devices"),
        vec![dv.clone()],
        "devices: only the account's own"
    );
    assert!(
        ok(store.devices(&user_id(), t).await, "devices").is_empty(),
        "devices: an unknown account has devices"
    );

    // Revoke one.
    assert!(
        !ok(store.revoke_device(&other, &d1.id).await, "revoke_device"),
        "revoke_device: revoked another account's device"
    );
    assert_eq!(
        ok(store.device(&h1, t).await, "device"),
        Some(d1.clone()),
        "revoke_device: a refused revoke removed the device"
    );
    assert!(
        ok(store.revoke_device(&user, &d1.id).await, "revoke_device"),
        "revoke_device: returned false for an existing device"
    );
    assert_eq!(
        ok(store.device(&h1, t).await, "device"),
        None,
        "revoke_device: the revoked device is still found by its token"
    );
    assert_eq!(
        ok(store.devices(&user, t).await, "devices"),
        vec![d0.clone(), d2.clone()],
        "revoke_device: the revoked device is still listed"
    );
    assert!(
        !ok(store.revoke_device(&user, &d1.id).await, "revoke_device"),
        "revoke_device: revoked the same device twice"
    );
    assert!(
        !ok(
            store.revoke_device(&user, &DeviceId::new(hex_id())).await,
            "revoke_device"
        ),
        "revoke_device: returned true for an unknown device"
    );

    // Revoke all.
    assert_eq!(
        ok(store.revoke_all_devices(&user).await, "revoke_all_devices"),
        2,
        "revoke_all_devices: must return how many devices there were"
    );
    assert!(
        ok(store.devices(&user, t).await, "devices").is_empty(),
        "revoke_all_devices: devices are still listed"
    );
    for h in [&h0, &h2] {
        assert_eq!(
            ok(store.device(h, t).await, "device"),
            None,
            "revoke_all_devices: a revoked device is still found by its token"
        );
    }
    assert_eq!(
        ok(store.revoke_all_devices(&user).await, "revoke_all_devices"),
        0,
        "revoke_all_devices: a second call must find none"
    );
    assert_eq!(
        ok(
            store.revoke_all_devices(&user_id()).await,
            "revoke_all_devices"
        ),
        0,
        "revoke_all_devices: an unknown account"
    );
    assert_eq!(
        ok(store.device(&hv, t).await, "device"),
        Some(dv.clone()),
        "revoke_all_devices: revoked another account's device"
    );
    assert_eq!(
        ok(store.devices(&other, t).await, "devices"),
        vec![dv],
        "revoke_all_devices: changed another account's list"
    );
}

pub(super) async fn device_expiry<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let short = device_record(&user, t - 5, t + 100);
    let long = device_record(&user, t, t + TTL);
    let (hs, hl) = (hash(), hash());
    ok(store.create_device(&hs, &short).await, "create_device");
    ok(store.create_device(&hl, &long).await, "create_device");

    // Earlier `now` first.
    assert_eq!(
        ok(store.devices(&user, t + 99).await, "devices"),
        vec![short.clone(), long.clone()],
        "devices: one second before a device's expires_at"
    );
    assert_eq!(
        ok(store.device(&hs, t + 99).await, "device"),
        Some(short.clone()),
        "device: one second before its expires_at"
    );
    assert_eq!(
        ok(store.devices(&user, t + 100).await, "devices"),
        vec![long.clone()],
        "devices: a device at now == expires_at must not be listed"
    );
    assert_eq!(
        ok(store.device(&hs, t + 100).await, "device"),
        None,
        "device: a device at now == expires_at must be absent"
    );
    assert_eq!(
        ok(store.device(&hl, t + 100).await, "device"),
        Some(long),
        "device: an unexpired device next to an expired one"
    );
}

pub(super) async fn sessions<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let mut session = session_record(&user, t - 60, t + TTL);
    // Distinct from `created_at`, so that swapped columns show.
    session.authenticated_at = t - 30;
    session.method = AuthMethod::BackupCode;
    let token = hash();
    ok(
        store.create_session(&token, &session).await,
        "create_session",
    );
    assert_eq!(
        ok(store.session(&token, t).await, "session"),
        Some(session.clone()),
        "session: by its token hash (every field, id, method and authenticated_at included, \
         must round-trip)"
    );
    assert_eq!(
        ok(store.session(&hash(), t).await, "session"),
        None,
        "session: an unknown token hash"
    );

    // Every method round-trips.
    for method in METHODS {
        let mut s = session_record(&user_id(), t, t + TTL);
        s.method = method;
        let h = hash();
        ok(store.create_session(&h, &s).await, "create_session");
        assert_eq!(
            ok(store.session(&h, t).await, "session"),
            Some(s),
            "session: a session with method {method:?} did not round-trip"
        );
    }

    // Delete, and independence of tokens.
    let gone = hash();
    let mut gone_session = session.clone();
    gone_session.id = SessionId::new(hex_id());
    ok(
        store.create_session(&gone, &gone_session).await,
        "create_session",
    );
    ok(store.delete_session(&gone).await, "delete_session");
    assert_eq!(
        ok(store.session(&gone, t).await, "session"),
        None,
        "delete_session: the session is still there"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![session.clone()],
        "delete_session: the deleted session is still listed by sessions(user)"
    );
    ok(
        store.delete_session(&gone).await,
        "delete_session of a missing session",
    );
    assert_eq!(
        ok(store.session(&token, t).await, "session"),
        Some(session.clone()),
        "delete_session: deleted another token's session"
    );

    // Expiry (earlier `now` first).
    let expires = session.expires_at;
    assert_eq!(
        ok(store.session(&token, expires - 1).await, "session"),
        Some(session.clone()),
        "session: one second before expires_at"
    );
    assert_eq!(
        ok(store.session(&token, expires).await, "session"),
        None,
        "session: a session at now == expires_at must be absent"
    );
}

pub(super) async fn session_lists<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let other = user_id();
    // Created out of `created_at` order: the list is ordered by `created_at`.
    let s1 = session_record(&user, t - 20, t + TTL);
    let s0 = session_record(&user, t - 30, t + TTL);
    let s2 = session_record(&user, t - 10, t + TTL);
    let sv = session_record(&other, t - 40, t + TTL);
    let (h1, h0, h2, hv) = (hash(), hash(), hash(), hash());
    for (h, s) in [(&h1, &s1), (&h0, &s0), (&h2, &s2), (&hv, &sv)] {
        ok(store.create_session(h, s).await, "create_session");
    }
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![s0.clone(), s1.clone(), s2.clone()],
        "sessions: the account's sessions, oldest created_at first"
    );
    assert_eq!(
        ok(store.sessions(&other, t).await, "sessions"),
        vec![sv.clone()],
        "sessions: only the account's own"
    );
    assert!(
        ok(store.sessions(&user_id(), t).await, "sessions").is_empty(),
        "sessions: an unknown account has sessions"
    );

    // Re-authentication.
    let mut s1_new = s1.clone();
    s1_new.authenticated_at = t + 5;
    assert!(
        ok(
            store.reauthenticate_session(&h1, t + 5).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: returned false for an existing, unexpired session"
    );
    assert_eq!(
        ok(store.session(&h1, t).await, "session"),
        Some(s1_new.clone()),
        "reauthenticate_session: must set authenticated_at and nothing else"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![s0.clone(), s1_new.clone(), s2.clone()],
        "reauthenticate_session: must change only that session (as listed by sessions)"
    );
    let unknown = hash();
    assert!(
        !ok(
            store.reauthenticate_session(&unknown, t).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: returned true for an unknown token"
    );
    assert_eq!(
        ok(store.session(&unknown, t).await, "session"),
        None,
        "reauthenticate_session: of an unknown token created a session"
    );

    // Delete one by id.
    assert!(
        !ok(
            store.delete_session_by_id(&other, &s1.id).await,
            "delete_session_by_id"
        ),
        "delete_session_by_id: deleted another account's session"
    );
    assert_eq!(
        ok(store.session(&h1, t).await, "session"),
        Some(s1_new.clone()),
        "delete_session_by_id: a refused delete (another account) removed the session"
    );
    assert!(
        ok(
            store.delete_session_by_id(&user, &s1.id).await,
            "delete_session_by_id"
        ),
        "delete_session_by_id: returned false for an existing session"
    );
    assert_eq!(
        ok(store.session(&h1, t).await, "session"),
        None,
        "delete_session_by_id: the session is still found by its token"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![s0.clone(), s2.clone()],
        "delete_session_by_id: must delete that session only"
    );
    assert!(
        !ok(
            store.delete_session_by_id(&user, &s1.id).await,
            "delete_session_by_id"
        ),
        "delete_session_by_id: returned true for a session already deleted"
    );
    assert!(
        !ok(
            store
                .delete_session_by_id(&user, &SessionId::new(hex_id()))
                .await,
            "delete_session_by_id"
        ),
        "delete_session_by_id: returned true for an unknown id"
    );
    assert!(
        !ok(
            store.reauthenticate_session(&h1, t).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: returned true for a deleted session"
    );

    // Delete all but one.
    let s3 = session_record(&user, t - 5, t + TTL);
    let s4 = session_record(&user, t, t + TTL);
    let (h3, h4) = (hash(), hash());
    ok(store.create_session(&h3, &s3).await, "create_session");
    ok(store.create_session(&h4, &s4).await, "create_session");
    assert_eq!(
        ok(
            store.delete_sessions(&user, Some(&s3.id)).await,
            "delete_sessions"
        ),
        3,
        "delete_sessions: with 4 sessions and one kept, must return 3 (how many it deleted)"
    );
    assert_eq!(
        ok(store.sessions(&user, t).await, "sessions"),
        vec![s3.clone()],
        "delete_sessions: exactly the kept session must be left"
    );
    for h in [&h0, &h2, &h4] {
        assert_eq!(
            ok(store.session(h, t).await, "session"),
            None,
            "delete_sessions: a deleted session is still found by its token"
        );
    }
    assert_eq!(
        ok(store.session(&h3, t).await, "session"),
        Some(s3.clone()),
        "delete_sessions: the kept session is not found by its token"
    );
    assert_eq!(
        ok(
            store.delete_sessions(&user, Some(&s3.id)).await,
            "delete_sessions"
        ),
        0,
        "delete_sessions: a second call keeping the same session must delete none"
    );

    // Delete all.
    assert_eq!(
        ok(store.delete_sessions(&user, None).await, "delete_sessions"),
        1,
        "delete_sessions: with keep = None must delete every session (1 left)"
    );
    assert!(
        ok(store.sessions(&user, t).await, "sessions").is_empty(),
        "delete_sessions: with keep = None sessions are still listed"
    );
    assert_eq!(
        ok(store.session(&h3, t).await, "session"),
        None,
        "delete_sessions: with keep = None a session is still found by its token"
    );
    assert_eq!(
        ok(
            store.delete_sessions(&user_id(), None).await,
            "delete_sessions"
        ),
        0,
        "delete_sessions: an unknown account"
    );

    // The other account was never touched; a keep id it does not have keeps nothing.
    assert_eq!(
        ok(store.sessions(&other, t).await, "sessions"),
        vec![sv.clone()],
        "delete_sessions/delete_session_by_id: changed another account's sessions"
    );
    assert_eq!(
        ok(store.session(&hv, t).await, "session"),
        Some(sv),
        "delete_sessions/delete_session_by_id: deleted another account's session"
    );
    assert_eq!(
        ok(
            store
                .delete_sessions(&other, Some(&SessionId::new(hex_id())))
                .await,
            "delete_sessions"
        ),
        1,
        "delete_sessions: a keep id the account does not have must keep nothing"
    );
    assert!(
        ok(store.sessions(&other, t).await, "sessions").is_empty(),
        "delete_sessions: a keep id the account does not have must keep nothing"
    );
}

pub(super) async fn session_expiry<E: EphemeralStore>(store: &E) {
    let t = now();
    let user = user_id();
    let short = session_record(&user, t - 5, t + 100);
    let long = session_record(&user, t, t + TTL);
    let (hs, hl) = (hash(), hash());
    ok(store.create_session(&hs, &short).await, "create_session");
    ok(store.create_session(&hl, &long).await, "create_session");

    // Earlier `now` (or `at`) first.
    assert_eq!(
        ok(store.sessions(&user, t + 99).await, "sessions"),
        vec![short.clone(), long.clone()],
        "sessions: one second before a session's expires_at"
    );
    let mut reauthed = short.clone();
    reauthed.authenticated_at = t + 99;
    assert!(
        ok(
            store.reauthenticate_session(&hs, t + 99).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: refused a session one second before its expires_at"
    );
    assert_eq!(
        ok(store.session(&hs, t + 99).await, "session"),
        Some(reauthed),
        "reauthenticate_session: must set authenticated_at (one second before expires_at)"
    );
    assert_eq!(
        ok(store.sessions(&user, t + 100).await, "sessions"),
        vec![long.clone()],
        "sessions: a session at now == expires_at must not be listed"
    );
    assert!(
        !ok(
            store.reauthenticate_session(&hs, t + 100).await,
            "reauthenticate_session"
        ),
        "reauthenticate_session: returned true for a session at at == expires_at (expired)"
    );
    assert_eq!(
        ok(store.session(&hs, t + 100).await, "session"),
        None,
        "reauthenticate_session: brought an expired session back"
    );
    assert_eq!(
        ok(store.session(&hl, t + 100).await, "session"),
        Some(long),
        "session: an unexpired session next to an expired one"
    );
}
