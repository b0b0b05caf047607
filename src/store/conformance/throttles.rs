//! Throttles: the compare-and-set of `update_throttle` and their `keep_until`.

use super::fixtures::*;
use crate::store::*;

pub(super) async fn throttles<E: EphemeralStore>(store: &E) {
    let keep = now() + TTL;
    let key = throttle_key();
    let zero = ThrottleState::default();
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        zero,
        "throttle: an unknown key must read as the default (zero) state"
    );
    assert!(
        ok(
            store.update_throttle(&key, zero, zero, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: the default state over an unknown key (its state is the \
         default) returned false"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        zero,
        "update_throttle: writing the default state over an unknown key"
    );
    let s1 = ThrottleState {
        count: 1,
        until: now() + 60,
    };
    let s2 = ThrottleState {
        count: 2,
        until: now() + 120,
    };

    assert!(
        ok(
            store.update_throttle(&key, zero, s1, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: from the default state of an unknown key returned false"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        s1,
        "update_throttle: state read back"
    );
    assert!(
        !ok(
            store.update_throttle(&key, zero, s2, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: succeeded although the expected state was stale"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        s1,
        "update_throttle: a refused update changed the state"
    );
    assert!(
        !ok(
            store
                .update_throttle(&key, ThrottleState { count: 1, until: 0 }, s2, keep, now())
                .await,
            "update_throttle"
        ),
        "update_throttle: compared only the count, not `until`"
    );
    assert!(
        !ok(
            store
                .update_throttle(
                    &key,
                    ThrottleState {
                        count: 2,
                        until: s1.until
                    },
                    s2,
                    keep,
                    now()
                )
                .await,
            "update_throttle"
        ),
        "update_throttle: compared only `until`, not the count"
    );
    assert!(
        ok(
            store.update_throttle(&key, s1, s2, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: with the current state as expected returned false"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        s2,
        "update_throttle: state read back"
    );

    // Writing the default state resets; the reset key behaves as unknown.
    assert!(
        ok(
            store.update_throttle(&key, s2, zero, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: a reset to the default state returned false"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        zero,
        "update_throttle: after writing the default state"
    );
    assert!(
        ok(
            store.update_throttle(&key, zero, s1, keep, now()).await,
            "update_throttle"
        ),
        "update_throttle: after a reset, the default state must be the expected one"
    );

    // Keys are independent; values round-trip over the whole range of a count.
    let other = throttle_key();
    assert_eq!(
        ok(store.throttle(&other, now()).await, "throttle"),
        zero,
        "throttle: another key's state leaked"
    );
    let big = ThrottleState {
        count: u32::MAX,
        until: now() + 86_400,
    };
    assert!(ok(
        store.update_throttle(&other, zero, big, keep, now()).await,
        "update_throttle"
    ));
    assert_eq!(
        ok(store.throttle(&other, now()).await, "throttle"),
        big,
        "update_throttle: a count of u32::MAX did not round-trip"
    );
    assert_eq!(
        ok(store.throttle(&key, now()).await, "throttle"),
        s1,
        "update_throttle: changed another key"
    );
}

pub(super) async fn throttle_expiry<E: EphemeralStore>(store: &E) {
    let t = now();
    let zero = ThrottleState::default();
    let key = throttle_key();
    let s1 = ThrottleState {
        count: 4,
        until: t + 30,
    };
    let s2 = ThrottleState {
        count: 1,
        until: t + 90,
    };
    assert!(
        ok(
            store.update_throttle(&key, zero, s1, t + 60, t).await,
            "update_throttle"
        ),
        "update_throttle: from the default state of an unknown key returned false"
    );
    assert_eq!(
        ok(store.throttle(&key, t + 59).await, "throttle"),
        s1,
        "throttle: a state before its keep_until must read back"
    );
    assert_eq!(
        ok(store.throttle(&key, t + 60).await, "throttle"),
        zero,
        "throttle: a state at or past its keep_until must read as the default state"
    );
    assert!(
        !ok(
            store.update_throttle(&key, s1, s2, t + 600, t + 60).await,
            "update_throttle"
        ),
        "update_throttle: a state past its keep_until must not compare equal to itself"
    );
    assert!(
        ok(
            store
                .update_throttle(&key, zero, zero, t + 600, t + 60)
                .await,
            "update_throttle"
        ),
        "update_throttle: default to default on a state past its keep_until returned false"
    );
    assert!(
        ok(
            store.update_throttle(&key, zero, s2, t + 600, t + 60).await,
            "update_throttle"
        ),
        "update_throttle: from the default state on a state past its keep_until returned \
         false; an expired state must compare equal to the default state"
    );
    assert_eq!(
        ok(store.throttle(&key, t + 60).await, "throttle"),
        s2,
        "update_throttle: the state written over an expired one did not read back"
    );
    assert!(
        !ok(
            store.update_throttle(&key, zero, s1, t + 600, t + 60).await,
            "update_throttle"
        ),
        "update_throttle: from the default state succeeded twice on an expired state"
    );
    // A state written already past its keep_until is zero at once.
    let key = throttle_key();
    assert!(ok(
        store.update_throttle(&key, zero, s1, t, t).await,
        "update_throttle"
    ));
    assert_eq!(
        ok(store.throttle(&key, t).await, "throttle"),
        zero,
        "throttle: a state written with keep_until = now must read as the default state"
    );
}
