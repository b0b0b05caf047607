//! The security log: order, limit, `max_entries`, `forget_before`, every field and
//! kind.

use super::fixtures::*;
use crate::security_log::{MAX_ENTRIES, MAX_TEXT_BYTES, RETENTION_SECS, SecurityEventKind};
use crate::store::*;

/// Appends `event` to the log of `user`, keeping the newest `max` entries and none
/// older than `forget_before`.
pub(super) async fn append<A: AccountStore>(
    store: &A,
    user: &UserId,
    event: &SecurityEvent,
    max: u32,
    forget_before: u64,
) {
    ok(
        store
            .append_security_event(user, event, max, forget_before)
            .await,
        "append_security_event",
    );
}

pub(super) async fn security_log_order_and_bounds<A: AccountStore>(store: &A) {
    let t = now();
    let forget = t - RETENTION_SECS;
    let account = new_account(store).await;
    let id = &account.id;
    assert!(
        log_of(store, id, MAX_ENTRIES).await.is_empty(),
        "security_log: a new account has entries"
    );

    // Newest first, by `at`.
    let e1 = SecurityEvent::new(t - 30, SecurityEventKind::Login).with_detail("first");
    let e2 = SecurityEvent::new(t - 20, SecurityEventKind::LoginFailed).with_detail("second");
    let e3 = SecurityEvent::new(t - 10, SecurityEventKind::Login).with_detail("third");
    for e in [&e1, &e2, &e3] {
        append(store, id, e, MAX_ENTRIES, forget).await;
    }
    assert_eq!(
        log_of(store, id, MAX_ENTRIES).await,
        vec![e3.clone(), e2.clone(), e1.clone()],
        "security_log: the entries must come back newest first"
    );
    assert_eq!(
        log_of(store, id, 2).await,
        vec![e3.clone(), e2.clone()],
        "security_log: limit 2 must return the newest 2 entries"
    );
    assert!(
        log_of(store, id, 0).await.is_empty(),
        "security_log: limit 0 must return no entry"
    );

    // The same `at`: the newest appended first. Logs are per account.
    let other = new_account(store).await;
    let same: Vec<SecurityEvent> = ["a", "b", "c"]
        .iter()
        .map(|d| SecurityEvent::new(t, SecurityEventKind::CodeReplayed).with_detail(d))
        .collect();
    for e in &same {
        append(store, &other.id, e, MAX_ENTRIES, forget).await;
    }
    let want: Vec<SecurityEvent> = same.iter().rev().cloned().collect();
    assert_eq!(
        log_of(store, &other.id, MAX_ENTRIES).await,
        want,
        "security_log: entries with the same `at` must come newest appended first (and only \
         the account's own)"
    );
    assert_eq!(
        log_of(store, id, MAX_ENTRIES).await,
        vec![e3, e2, e1],
        "append_security_event: changed another account's log"
    );

    // Bounded: max + 5 appends keep the newest max.
    const MAX: u32 = 10;
    let bounded = new_account(store).await;
    let all: Vec<SecurityEvent> = (0..MAX + 5)
        .map(|i| {
            SecurityEvent::new(t - 100 + u64::from(i), SecurityEventKind::Login)
                .with_detail(&format!("entry {i}"))
        })
        .collect();
    for e in &all {
        append(store, &bounded.id, e, MAX, forget).await;
    }
    let want: Vec<SecurityEvent> = all.iter().rev().take(MAX as usize).cloned().collect();
    assert_eq!(
        log_of(store, &bounded.id, MAX_ENTRIES).await,
        want,
        "append_security_event: after {} appends with max_entries = {MAX}, exactly the newest \
         {MAX} entries must be kept",
        MAX + 5
    );

    // Entries older than `forget_before` are forgotten on the next append; an entry at
    // exactly `forget_before` is kept.
    let aging = new_account(store).await;
    let old = SecurityEvent::new(t - 100, SecurityEventKind::Login).with_detail("old");
    let edge = SecurityEvent::new(t - 60, SecurityEventKind::Login).with_detail("edge");
    let mid = SecurityEvent::new(t - 50, SecurityEventKind::Login).with_detail("mid");
    let last = SecurityEvent::new(t, SecurityEventKind::Login).with_detail("last");
    for e in [&old, &edge, &mid] {
        append(store, &aging.id, e, MAX_ENTRIES, forget).await;
    }
    append(store, &aging.id, &last, MAX_ENTRIES, t - 60).await;
    assert_eq!(
        log_of(store, &aging.id, MAX_ENTRIES).await,
        vec![last, mid, edge],
        "append_security_event: entries with at < forget_before must be forgotten on the next \
         append (and one with at == forget_before kept)"
    );

    // A missing account: not an error, nothing kept.
    let ghost = user_id();
    let e = SecurityEvent::new(t, SecurityEventKind::LoginFailed);
    match store
        .append_security_event(&ghost, &e, MAX_ENTRIES, forget)
        .await
    {
        Ok(()) => {}
        Err(err) => panic!(
            "append_security_event: for a missing account must return Ok (and keep nothing), \
             got {err:?}"
        ),
    }
    assert!(
        log_of(store, &ghost, MAX_ENTRIES).await.is_empty(),
        "append_security_event: kept an entry for a missing account"
    );
    assert!(
        ok(store.account(&ghost).await, "account").is_none(),
        "append_security_event: for a missing account it created one"
    );
}

pub(super) async fn security_log_fields<A: AccountStore>(store: &A) {
    let t = now();
    let forget = t - RETENTION_SECS;

    // Method, client and detail round-trip, present or absent; text up to the bound,
    // with characters of several bytes.
    let account = new_account(store).await;
    let id = &account.id;
    let mut events = vec![
        SecurityEvent::new(t, SecurityEventKind::Login),
        SecurityEvent::new(t, SecurityEventKind::TwoFactorReset)
            .with_client(Some("2001:db8::1"))
            .with_detail("reset by «ops» — ticket #42 🔐"),
        SecurityEvent::new(t, SecurityEventKind::Reauthenticated)
            .with_client(Some(&"é".repeat(MAX_TEXT_BYTES / 2)))
            .with_detail(&"🔐".repeat(MAX_TEXT_BYTES / 4)),
    ];
    for method in METHODS {
        events.push(
            SecurityEvent::new(t, SecurityEventKind::Login)
                .with_method(method)
                .with_client(Some("203.0.113.9")),
        );
    }
    for e in &events {
        append(store, id, e, MAX_ENTRIES, forget).await;
    }
    let got = log_of(store, id, MAX_ENTRIES).await;
    let want: Vec<SecurityEvent> = events.iter().rev().cloned().collect();
    assert_eq!(
        got, want,
        "security_log: method, client and detail must round-trip (present or absent, up to \
         {MAX_TEXT_BYTES} bytes of text)"
    );

    // Every kind round-trips.
    let kinds = new_account(store).await;
    for kind in SecurityEventKind::ALL {
        append(
            store,
            &kinds.id,
            &SecurityEvent::new(t, *kind),
            MAX_ENTRIES,
            forget,
        )
        .await;
    }
    let got: Vec<SecurityEventKind> = log_of(store, &kinds.id, MAX_ENTRIES)
        .await
        .iter()
        .map(|e| e.kind)
        .collect();
    let want: Vec<SecurityEventKind> = SecurityEventKind::ALL.iter().rev().copied().collect();
    assert_eq!(
        got, want,
        "security_log: every SecurityEventKind must round-trip (newest appended first)"
    );
}
