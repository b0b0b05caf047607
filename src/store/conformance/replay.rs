//! Replay marks: `advance_last_step` only moves forward, per authenticator.

use super::fixtures::*;
use crate::store::*;

pub(super) async fn replay_marks<E: EphemeralStore>(store: &E) {
    let keep = now() + TTL;
    let id = authenticator_id();
    let step = now() / 30;
    let steps = [
        (step, true, "the first step"),
        (step, false, "the same step again (a replay)"),
        (step - 1, false, "an older step"),
        (step + 1, true, "a newer step"),
        (step, false, "an older step after a newer one"),
        (step + 1, false, "the newest step again"),
        (step + 100, true, "a much newer step"),
        (step + 2, false, "a step between"),
    ];
    for (s, want, what) in steps {
        assert_eq!(
            ok(
                store.advance_last_step(&id, s, keep).await,
                "advance_last_step"
            ),
            want,
            "advance_last_step: {what}"
        );
    }

    // Marks are per authenticator.
    let other = authenticator_id();
    assert!(
        ok(
            store.advance_last_step(&other, step, keep).await,
            "advance_last_step"
        ),
        "advance_last_step: another authenticator's mark blocked this one"
    );

    // Step 0 on a fresh authenticator is recorded ("or none was").
    let zero = authenticator_id();
    assert!(
        ok(
            store.advance_last_step(&zero, 0, keep).await,
            "advance_last_step"
        ),
        "advance_last_step: step 0 on a fresh authenticator must be recorded"
    );
    assert!(
        !ok(
            store.advance_last_step(&zero, 0, keep).await,
            "advance_last_step"
        ),
        "advance_last_step: step 0 replayed"
    );

    // A mark holds until keep_until even when later calls pass a shorter one.
    let held = authenticator_id();
    assert!(ok(
        store.advance_last_step(&held, step, keep).await,
        "advance_last_step"
    ));
    assert!(
        !ok(
            store.advance_last_step(&held, step, now() + 5).await,
            "advance_last_step"
        ),
        "advance_last_step: a replay with a shorter keep_until was recorded"
    );
    assert!(
        !ok(
            store.advance_last_step(&held, step, now() + 5).await,
            "advance_last_step"
        ),
        "advance_last_step: the mark was lost before its keep_until"
    );
}
