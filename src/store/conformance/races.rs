//! The races: every atomicity contract of both traits and of the unit of work, many
//! tasks released together by a barrier over several handles.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use super::fixtures::*;
use crate::Error;
use crate::store::*;

pub(super) async fn race_create_account<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let name = username();
    let t = now();
    let records: Vec<AccountRecord> = (0..tasks)
        .map(|_| {
            let mut a = account_record(t);
            a.username = name.clone();
            a
        })
        .collect();
    let results = race(stores, tasks, |i, s| {
        let record = records[i].clone();
        async move { s.create_account(&record).await }
    })
    .await;
    let winners = count(&results, |r| r.is_ok());
    assert_eq!(
        winners, 1,
        "create_account race (round {round}): {winners} of {tasks} concurrent creations of one \
         user name succeeded; exactly one must: {results:?}"
    );
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(Error::UsernameTaken)),
            "create_account race (round {round}): a loser must get UsernameTaken, got {r:?}"
        );
    }
    let Some(winner) = results.iter().position(|r| r.is_ok()) else {
        return;
    };
    let check = checker(stores, round);
    match ok(
        check.account_by_username(&name).await,
        "account_by_username",
    ) {
        Some(got) => assert_same_account(
            &got,
            &records[winner],
            "create_account race: the name must point at the winner",
        ),
        None => panic!("create_account race (round {round}): the winner's account is missing"),
    }
    for (i, record) in records.iter().enumerate() {
        if i != winner {
            assert!(
                ok(check.account(&record.id).await, "account").is_none(),
                "create_account race (round {round}): a loser's account exists"
            );
        }
    }
}

pub(super) async fn race_enable_two_factor<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let account = new_account(&stores[round % stores.len()]).await;
    let t = now();
    let auths: Vec<AuthenticatorRecord> = (0..tasks)
        .map(|i| authenticator(&account.id, &format!("phone {i}"), t))
        .collect();
    let codes: Vec<Vec<KeyedHash>> = (0..tasks).map(|_| hashes(2)).collect();
    let keys: Vec<u32> = (0..tasks).map(|_| key_id()).collect();
    let results = race(stores, tasks, |i, s| {
        let auth = auths[i].clone();
        let codes = codes[i].clone();
        let key = keys[i];
        async move { s.enable_two_factor(&auth, &codes, key).await }
    })
    .await;
    let winners = count(&results, |r| r.is_ok());
    assert_eq!(
        winners, 1,
        "enable_two_factor race (round {round}): {winners} of {tasks} concurrent enables \
         succeeded; exactly one must: {results:?}"
    );
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(Error::TwoFactorAlreadyEnabled)),
            "enable_two_factor race (round {round}): a loser must get TwoFactorAlreadyEnabled, \
             got {r:?}"
        );
    }
    let Some(w) = results.iter().position(|r| r.is_ok()) else {
        return;
    };
    let check = checker(stores, round);
    let got = account_of(check, &account.id, "account").await;
    assert!(
        got.two_factor_enabled,
        "enable_two_factor race (round {round}): the flag is off"
    );
    assert_eq!(
        got.backup_codes_key_id,
        Some(keys[w]),
        "enable_two_factor race (round {round}): backup_codes_key_id is not the winner's"
    );
    assert_same_authenticators(
        &ok(check.authenticators(&account.id).await, "authenticators"),
        &[&auths[w]],
        "enable_two_factor race: exactly the winner's authenticator",
    );
    assert_eq!(
        ok(
            check.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        2,
        "enable_two_factor race (round {round}): exactly the winner's backup codes"
    );
    let loser = (w + 1) % tasks;
    assert!(
        !ok(
            check
                .consume_backup_code(&account.id, &codes[loser][0])
                .await,
            "consume_backup_code"
        ),
        "enable_two_factor race (round {round}): a loser's backup code was stored"
    );
    assert!(
        ok(
            check.consume_backup_code(&account.id, &codes[w][0]).await,
            "consume_backup_code"
        ),
        "enable_two_factor race (round {round}): the winner's backup code is missing"
    );
}

pub(super) async fn race_consume_same_code<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let (account, _, codes) = new_2fa_account(&stores[round % stores.len()], 3).await;
    let code = codes[round % 3];
    let results = race(stores, tasks, |_, s| {
        let id = account.id.clone();
        async move { s.consume_backup_code(&id, &code).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "consume_backup_code race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "consume_backup_code race (round {round}): {winners} of {tasks} concurrent consumptions \
         of one backup code returned true; exactly one must"
    );
    assert_eq!(
        ok(
            checker(stores, round)
                .backup_codes_remaining(&account.id)
                .await,
            "backup_codes_remaining"
        ),
        2,
        "consume_backup_code race (round {round}): exactly one code must be gone"
    );
}

pub(super) async fn race_consume_distinct_codes<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let (account, _, codes) = new_2fa_account(&stores[round % stores.len()], tasks).await;
    let results = race(stores, tasks, |i, s| {
        let id = account.id.clone();
        let code = codes[i];
        async move { s.consume_backup_code(&id, &code).await }
    })
    .await;
    let spent = count(&results, |r| matches!(r, Ok(true)));
    assert_eq!(
        spent, tasks,
        "consume_backup_code race (round {round}): of {tasks} concurrent consumptions of \
         distinct codes of one account only {spent} returned true; all must: {results:?}"
    );
    assert_eq!(
        ok(
            checker(stores, round)
                .backup_codes_remaining(&account.id)
                .await,
            "backup_codes_remaining"
        ),
        0,
        "consume_backup_code race (round {round}): codes are left after every code was consumed \
         concurrently (a lost update)"
    );
}

pub(super) async fn race_remove_authenticators<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    // m authenticators, every one removed concurrently (by several tasks each):
    // exactly m - 1 removals win and one authenticator is left. m = 2 is the
    // contract's case of the last two.
    let m = (2 + round % 3).min(tasks);
    let store = &stores[round % stores.len()];
    let (account, first, _) = new_2fa_account(store, 1).await;
    let mut ids = vec![first.id.clone()];
    for j in 1..m {
        let extra = authenticator(&account.id, "extra", now() + j as u64);
        ok(
            store.add_authenticator(&extra, ROOMY).await,
            "add_authenticator",
        );
        ids.push(extra.id);
    }
    let results = race(stores, tasks, |i, s| {
        let user = account.id.clone();
        let id = ids[i % m].clone();
        async move { s.remove_authenticator(&user, &id).await }
    })
    .await;
    let results: Vec<RemoveOutcome> = results
        .into_iter()
        .map(|r| ok(r, "remove_authenticator race"))
        .collect();
    let removed = count(&results, |r| *r == RemoveOutcome::Removed);
    assert_eq!(
        removed,
        m - 1,
        "remove_authenticator race (round {round}): {removed} concurrent removals of an \
         account's {m} authenticators returned Removed; exactly {} must (one is always left): \
         {results:?}",
        m - 1
    );
    let left = ok(
        checker(stores, round).authenticators(&account.id).await,
        "authenticators",
    );
    assert_eq!(
        left.len(),
        1,
        "remove_authenticator race (round {round}): exactly one authenticator must remain, \
         found {left:?}"
    );
}

pub(super) async fn race_add_authenticators<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let (account, first, _) = new_2fa_account(&stores[round % stores.len()], 1).await;
    let t = now() + 1;
    let auths: Vec<AuthenticatorRecord> = (0..tasks)
        .map(|i| authenticator(&account.id, &format!("extra {i}"), t))
        .collect();
    // The cap is exactly reached: every add fits.
    let cap = tasks as u32 + 1;
    let results = race(stores, tasks, |i, s| {
        let auth = auths[i].clone();
        async move { s.add_authenticator(&auth, cap).await }
    })
    .await;
    for r in results {
        ok(
            r,
            "add_authenticator race (adds that reach max_authenticators exactly, none beyond)",
        );
    }
    let listed = ok(
        checker(stores, round).authenticators(&account.id).await,
        "authenticators",
    );
    assert_eq!(
        listed.len(),
        tasks + 1,
        "add_authenticator race (round {round}): {tasks} authenticators added concurrently to \
         one, {} listed (a lost update)",
        listed.len()
    );
    assert!(
        listed
            .first()
            .is_some_and(|a| same_authenticator(a, &first)),
        "add_authenticator race (round {round}): the oldest authenticator must come first"
    );
    for auth in &auths {
        assert!(
            listed.iter().any(|a| same_authenticator(a, auth)),
            "add_authenticator race (round {round}): an added authenticator is missing or changed"
        );
    }
}

pub(super) async fn race_disable_vs_add<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let (account, _, _) = new_2fa_account(&stores[round % stores.len()], 2).await;
    let t = now();
    let auths: Vec<AuthenticatorRecord> = (0..tasks)
        .map(|i| authenticator(&account.id, &format!("extra {i}"), t + 1))
        .collect();
    // The disabling task goes in the middle of the pack.
    let disabler = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let auth = auths[i].clone();
        async move {
            if i == disabler {
                s.disable_two_factor(&auth.user_id).await.map(Some)
            } else {
                s.add_authenticator(&auth, ROOMY).await.map(|()| None)
            }
        }
    })
    .await;
    for (i, r) in results.iter().enumerate() {
        if i == disabler {
            assert!(
                matches!(r, Ok(Some(true))),
                "disable_two_factor race (round {round}): must return Ok(true), got {r:?}"
            );
        } else {
            assert!(
                matches!(r, Ok(None) | Err(Error::TwoFactorNotEnabled)),
                "add_authenticator race (round {round}): must succeed or fail with \
                 TwoFactorNotEnabled, got {r:?}"
            );
        }
    }
    let check = checker(stores, round);
    assert!(
        !account_of(check, &account.id, "account")
            .await
            .two_factor_enabled,
        "disable_two_factor race (round {round}): 2FA is on"
    );
    let left = ok(check.authenticators(&account.id).await, "authenticators");
    assert!(
        left.is_empty(),
        "add_authenticator/disable_two_factor race (round {round}): an authenticator was added \
         to an account with 2FA off: {left:?}"
    );
    assert_eq!(
        ok(
            check.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        0,
        "disable_two_factor race (round {round}): backup codes are left"
    );
}

pub(super) async fn race_replace_vs_consume<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let (account, _, old) = new_2fa_account(&stores[round % stores.len()], tasks).await;
    let fresh = hashes(4);
    let key = key_id();
    let replacer = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let id = account.id.clone();
        let code = old[i];
        let fresh = fresh.clone();
        async move {
            if i == replacer {
                s.replace_backup_codes(&id, &fresh, key)
                    .await
                    .map(|()| true)
            } else {
                s.consume_backup_code(&id, &code).await
            }
        }
    })
    .await;
    for r in results {
        ok(r, "replace_backup_codes/consume_backup_code race");
    }
    let check = checker(stores, round);
    assert_eq!(
        ok(
            check.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        4,
        "replace_backup_codes race (round {round}): exactly the new set must remain after \
         concurrent consumption of old codes"
    );
    assert_eq!(
        account_of(check, &account.id, "account")
            .await
            .backup_codes_key_id,
        Some(key),
        "replace_backup_codes race (round {round}): backup_codes_key_id is not the new set's"
    );
    for code in &old {
        assert!(
            !ok(
                check.consume_backup_code(&account.id, code).await,
                "consume_backup_code"
            ),
            "replace_backup_codes race (round {round}): an old code can still be consumed"
        );
    }
    for code in &fresh {
        assert!(
            ok(
                check.consume_backup_code(&account.id, code).await,
                "consume_backup_code"
            ),
            "replace_backup_codes race (round {round}): a new code cannot be consumed"
        );
    }
}

pub(super) async fn race_password_vs_enable<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    // One task turns 2FA on while the others change the password from the same epoch:
    // the enable and exactly one change land, and neither undoes the other.
    let account = new_account(&stores[round % stores.len()]).await;
    let e = account.password_epoch;
    let auth = authenticator(&account.id, "phone", now());
    let codes = hashes(3);
    let key = key_id();
    let passwords: Vec<(PasswordHash, u64)> = (0..tasks)
        .map(|i| (password_hash(), e + 1 + i as u64))
        .collect();
    let enabler = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let auth = auth.clone();
        let codes = codes.clone();
        let (hash, epoch) = passwords[i].clone();
        async move {
            if i == enabler {
                s.enable_two_factor(&auth, &codes, key)
                    .await
                    .map(|()| false)
            } else {
                s.set_password(&auth.user_id, &hash, e, epoch).await
            }
        }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "set_password/enable_two_factor race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners,
        1,
        "set_password race (round {round}): {winners} of {} concurrent password changes from \
         one expected_epoch (racing enable_two_factor) returned true; exactly one must",
        tasks - 1
    );
    let check = checker(stores, round);
    let got = account_of(check, &account.id, "account").await;
    assert!(
        got.two_factor_enabled,
        "set_password/enable_two_factor race (round {round}): the enable was lost"
    );
    assert_eq!(
        got.backup_codes_key_id,
        Some(key),
        "set_password/enable_two_factor race (round {round}): backup_codes_key_id was lost"
    );
    if let Some(w) = results.iter().position(|r| *r) {
        let (hash, epoch) = &passwords[w];
        assert!(
            got.password_hash.as_str() == hash.as_str() && got.password_epoch == *epoch,
            "set_password race (round {round}): the stored password hash and epoch are not \
             the winning call's (epoch {}, the winner wrote {epoch})",
            got.password_epoch
        );
    }
    assert_same_authenticators(
        &ok(check.authenticators(&account.id).await, "authenticators"),
        &[&auth],
        "set_password/enable_two_factor race",
    );
    assert_eq!(
        ok(
            check.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        3,
        "set_password/enable_two_factor race (round {round}): backup codes lost"
    );
}

pub(super) async fn race_set_password<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let account = new_account(&stores[round % stores.len()]).await;
    let e = account.password_epoch;
    let passwords: Vec<PasswordHash> = (0..tasks).map(|_| password_hash()).collect();
    let results = race(stores, tasks, |i, s| {
        let id = account.id.clone();
        let hash = passwords[i].clone();
        async move { s.set_password(&id, &hash, e, e + 1).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "set_password race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "set_password race (round {round}): {winners} of {tasks} concurrent password changes \
         from the same expected_epoch returned true; exactly one must (a compare-and-set on the \
         epoch)"
    );
    let Some(w) = results.iter().position(|r| *r) else {
        return;
    };
    let got = account_of(checker(stores, round), &account.id, "account").await;
    assert!(
        got.password_hash.as_str() == passwords[w].as_str() && got.password_epoch == e + 1,
        "set_password race (round {round}): the stored password hash is not the winner's \
         (epoch {}, want {})",
        got.password_epoch,
        e + 1
    );
}

pub(super) async fn race_password_change_vs_rehash<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    // One task changes the password (epoch e to e + 1), the others are logins that read
    // the account before and rehash its password (epoch e to e).
    let account = new_account(&stores[round % stores.len()]).await;
    let e = account.password_epoch;
    let changed = password_hash();
    let rehashes: Vec<PasswordHash> = (0..tasks).map(|_| password_hash()).collect();
    let changer = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let id = account.id.clone();
        let (hash, new) = if i == changer {
            (changed.clone(), e + 1)
        } else {
            (rehashes[i].clone(), e)
        };
        async move { s.set_password(&id, &hash, e, new).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "set_password race (a change against rehashes)"))
        .collect();
    assert!(
        results[changer],
        "set_password race (round {round}): a password change (expected_epoch {e}, new_epoch \
         {}) racing rehashes returned false; a rehash keeps the epoch, so the change must be \
         written",
        e + 1
    );
    let got = account_of(checker(stores, round), &account.id, "account").await;
    assert!(
        got.password_epoch == e + 1 && got.password_hash.as_str() == changed.as_str(),
        "set_password race (round {round}): after a password change raced rehashes, the \
         account has epoch {} (want {}) and {} hash; a rehash of a login must never undo a \
         password change",
        got.password_epoch,
        e + 1,
        if got.password_hash.as_str() == changed.as_str() {
            "the new"
        } else {
            "an old"
        }
    );
}

pub(super) async fn race_authenticator_cap<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    // One authenticator, a cap of three: of any number of concurrent adds, two fit.
    const CAP: u32 = 3;
    let (account, first, _) = new_2fa_account(&stores[round % stores.len()], 1).await;
    let t = now() + 1;
    let auths: Vec<AuthenticatorRecord> = (0..tasks)
        .map(|i| authenticator(&account.id, &format!("extra {i}"), t))
        .collect();
    let results = race(stores, tasks, |i, s| {
        let auth = auths[i].clone();
        async move { s.add_authenticator(&auth, CAP).await }
    })
    .await;
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(Error::TooManyAuthenticators)),
            "add_authenticator race (round {round}): an add beyond max_authenticators must fail \
             with TooManyAuthenticators, got {r:?}"
        );
    }
    let added = count(&results, |r| r.is_ok());
    let want = (CAP as usize - 1).min(tasks);
    assert_eq!(
        added, want,
        "add_authenticator race (round {round}): {added} of {tasks} concurrent adds to an \
         account with 1 authenticator and max_authenticators = {CAP} succeeded; exactly {want} \
         must (N concurrent adds never pass the cap)"
    );
    let listed = ok(
        checker(stores, round).authenticators(&account.id).await,
        "authenticators",
    );
    let mut expected = vec![&first];
    expected.extend(
        results
            .iter()
            .zip(&auths)
            .filter(|(r, _)| r.is_ok())
            .map(|(_, a)| a),
    );
    assert!(
        listed.len() == expected.len()
            && expected
                .iter()
                .all(|w| listed.iter().any(|a| same_authenticator(a, w))),
        "add_authenticator race (round {round}): the account must have exactly the first \
         authenticator and the {want} that were added (max_authenticators = {CAP}), found \
         {listed:?}"
    );
}

pub(super) async fn race_advance_same_step<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let id = authenticator_id();
    let keep = now() + TTL;
    let step = now() / 30;
    // Odd rounds race an update of an existing mark, even rounds the first insert.
    if round % 2 == 1 {
        assert!(ok(
            stores[0].advance_last_step(&id, step - 1, keep).await,
            "advance_last_step"
        ));
    }
    let results = race(stores, tasks, |_, s| {
        let id = id.clone();
        async move { s.advance_last_step(&id, step, keep).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "advance_last_step race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners,
        1,
        "advance_last_step race (round {round}, {}): {winners} of {tasks} concurrent calls with \
         the same step returned true; exactly one must (a replayed TOTP code)",
        if round % 2 == 1 {
            "existing mark"
        } else {
            "fresh authenticator"
        }
    );
    assert!(
        !ok(
            checker(stores, round)
                .advance_last_step(&id, step, keep)
                .await,
            "advance_last_step"
        ),
        "advance_last_step race (round {round}): the step can be recorded again"
    );
}

pub(super) async fn race_advance_mixed_steps<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let id = authenticator_id();
    let keep = now() + TTL;
    let base = now() / 30;
    let top = base + tasks as u64 - 1;
    let results = race(stores, tasks, |i, s| {
        let id = id.clone();
        // Task order is not step order.
        let step = base + ((i * 7 + round) % tasks) as u64;
        async move { (step, s.advance_last_step(&id, step, keep).await) }
    })
    .await;
    let results: Vec<(u64, bool)> = results
        .into_iter()
        .map(|(step, r)| (step, ok(r, "advance_last_step race")))
        .collect();
    // Whatever the order, the greatest step is greater than every recorded one.
    let top_won = results.iter().any(|&(step, won)| step == top && won);
    assert!(
        top_won,
        "advance_last_step race (round {round}): the greatest step was refused; the recorded \
         step went back or a compare-and-set was lost: {results:?}"
    );
    let check = checker(stores, round);
    for step in [top, base] {
        assert!(
            !ok(
                check.advance_last_step(&id, step, keep).await,
                "advance_last_step"
            ),
            "advance_last_step race (round {round}): step {step} accepted after step {top} was \
             recorded (the mark went back)"
        );
    }
}

pub(super) async fn race_take_pending_login<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let token = hash();
    let login = pending(&user_id(), 1, t + TTL);
    ok(
        stores[round % stores.len()]
            .create_pending_login(&token, &login)
            .await,
        "create_pending_login",
    );
    let results = race(stores, tasks, |_, s| async move {
        s.take_pending_login(&token, t).await
    })
    .await;
    let results: Vec<Option<PendingLogin>> = results
        .into_iter()
        .map(|r| ok(r, "take_pending_login race"))
        .collect();
    let winners = count(&results, |r| r.is_some());
    assert_eq!(
        winners, 1,
        "take_pending_login race (round {round}): {winners} of {tasks} concurrent takes got the \
         pending login; exactly one must"
    );
    for r in results.into_iter().flatten() {
        assert_eq!(r, login, "take_pending_login race: the taken login differs");
    }
}

pub(super) async fn race_take_ceremony<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let key = hex_id();
    let c = ceremony_record(Some(hash()), t + TTL);
    ok(
        stores[round % stores.len()].put_ceremony(&key, &c).await,
        "put_ceremony",
    );
    let results = race(stores, tasks, |_, s| {
        let key = key.clone();
        async move { s.take_ceremony(&key, t).await }
    })
    .await;
    let results: Vec<Option<CeremonyRecord>> = results
        .into_iter()
        .map(|r| ok(r, "take_ceremony race"))
        .collect();
    let winners = count(&results, |r| r.is_some());
    assert_eq!(
        winners, 1,
        "take_ceremony race (round {round}): {winners} of {tasks} concurrent takes got the \
         ceremony; exactly one must (one WebAuthn assertion must not finish two logins)"
    );
    for r in results.into_iter().flatten() {
        assert_eq!(r, c, "take_ceremony race: the taken ceremony differs");
    }
}

pub(super) async fn race_update_authenticator_secret<A: AccountStore + Clone>(
    stores: &[A],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let first = &stores[round % stores.len()];
    let account = new_account(first).await;
    let id = account.id.clone();
    let mut key = authenticator(&id, "key", t);
    key.sealed_secret = sealed_record(600);
    ok(
        first.enable_two_factor(&key, &hashes(1), key_id()).await,
        "enable_two_factor",
    );
    let news: Vec<SealedSecret> = (0..tasks).map(|_| sealed_record(600)).collect();
    let results = race(stores, tasks, |i, s| {
        let (id, aid) = (id.clone(), key.id.clone());
        let (expected, new) = (key.sealed_secret.clone(), news[i].clone());
        async move {
            s.update_authenticator_secret(&id, &aid, &expected, &new)
                .await
        }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "update_authenticator_secret race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "update_authenticator_secret race (round {round}): {winners} of {tasks} concurrent \
         compare-and-sets from one expected secret returned true; exactly one must"
    );
    let winner = results.iter().position(|r| *r).unwrap_or_default();
    let stored = ok(
        checker(stores, round).authenticators(&id).await,
        "authenticators",
    );
    assert!(
        stored.len() == 1 && stored[0].sealed_secret == news[winner],
        "update_authenticator_secret race (round {round}): the stored secret is not the \
         winner's"
    );
}

pub(super) async fn race_advance_distinct_ids<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let keep = now() + TTL;
    let step = now() / 30;
    let ids: Vec<AuthenticatorId> = (0..tasks).map(|_| authenticator_id()).collect();
    let results = race(stores, tasks, |i, s| {
        let id = ids[i].clone();
        async move { s.advance_last_step(&id, step, keep).await }
    })
    .await;
    let recorded = count(&results, |r| matches!(r, Ok(true)));
    assert_eq!(
        recorded, tasks,
        "advance_last_step race (round {round}): the same step on {tasks} distinct \
         authenticators concurrently, only {recorded} recorded; marks are per authenticator: \
         {results:?}"
    );
}

pub(super) async fn race_take_vs_attempt<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    // Even tasks take, odd tasks count an attempt; max_attempts is never reached.
    const MAX: u32 = 1000;
    let t = now();
    let token = hash();
    let login = pending(&user_id(), 0, t + TTL);
    ok(
        stores[round % stores.len()]
            .create_pending_login(&token, &login)
            .await,
        "create_pending_login",
    );
    let results = race(stores, tasks, |i, s| async move {
        if i % 2 == 0 {
            s.take_pending_login(&token, t).await.map(|p| (true, p))
        } else {
            s.begin_login_attempt(&token, MAX, t)
                .await
                .map(|p| (false, p))
        }
    })
    .await;
    let mut taken = Vec::new();
    let mut counted = Vec::new();
    for r in results {
        match ok(r, "take_pending_login/begin_login_attempt race") {
            (true, Some(p)) => taken.push(p),
            (false, Some(p)) => counted.push(p.attempts),
            (_, None) => {}
        }
    }
    assert_eq!(
        taken.len(),
        1,
        "take_pending_login race (round {round}): {} concurrent takes (racing \
         begin_login_attempt) got the pending login; exactly one must",
        taken.len()
    );
    counted.sort_unstable();
    let want: Vec<u32> = (1..=counted.len() as u32).collect();
    assert_eq!(
        counted, want,
        "begin_login_attempt race (round {round}): concurrent attempts must get distinct, \
         consecutive counts"
    );
    if let Some(p) = taken.first() {
        assert_eq!(
            p.attempts as usize,
            counted.len(),
            "take_pending_login/begin_login_attempt race (round {round}): the taken login \
             counts {} attempts but {} attempts got Some; an attempt succeeded on a taken login \
             or was lost",
            p.attempts,
            counted.len()
        );
    }
    let check = checker(stores, round);
    assert_eq!(
        ok(
            check.begin_login_attempt(&token, MAX, t).await,
            "begin_login_attempt"
        ),
        None,
        "begin_login_attempt race (round {round}): a racing attempt brought a taken login back"
    );
    assert_eq!(
        ok(
            check.take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "take_pending_login race (round {round}): a pending login was taken, yet is there again"
    );
}

pub(super) async fn race_begin_login_attempt<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    const MAX: u32 = 5;
    let t = now();
    // k attempts left, 0..=MAX, always fewer than the racing tasks.
    let k = (round % (tasks.min(MAX as usize + 1))) as u32;
    let token = hash();
    let user = user_id();
    ok(
        stores[round % stores.len()]
            .create_pending_login(&token, &pending(&user, MAX - k, t + TTL))
            .await,
        "create_pending_login",
    );
    let results = race(stores, tasks, |_, s| async move {
        s.begin_login_attempt(&token, MAX, t).await
    })
    .await;
    let got: Vec<PendingLogin> = results
        .into_iter()
        .filter_map(|r| ok(r, "begin_login_attempt race"))
        .collect();
    assert_eq!(
        got.len(),
        k as usize,
        "begin_login_attempt race (round {round}): {} of {tasks} concurrent attempts on a \
         pending login with {k} attempts left got Some; exactly {k} must",
        got.len()
    );
    let counts: BTreeSet<u32> = got.iter().map(|p| p.attempts).collect();
    let want: BTreeSet<u32> = (MAX - k + 1..=MAX).collect();
    assert_eq!(
        counts, want,
        "begin_login_attempt race (round {round}): the attempt counts must be distinct and \
         consecutive"
    );
    for p in &got {
        assert!(
            p.user_id == user && p.expires_at == t + TTL,
            "begin_login_attempt race: returned a different login: {p:?}"
        );
    }
    assert_eq!(
        ok(
            checker(stores, round).take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "begin_login_attempt race (round {round}): after attempts beyond max_attempts the \
         pending login must be burnt"
    );
}

pub(super) async fn race_take_enrollment<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let user = user_id();
    let enrollment = enrollment_record(round.is_multiple_of(2), t + TTL);
    ok(
        stores[round % stores.len()]
            .put_enrollment(&user, &enrollment)
            .await,
        "put_enrollment",
    );
    let results = race(stores, tasks, |_, s| {
        let user = user.clone();
        let id = enrollment.id.clone();
        async move { s.take_enrollment(&user, &id, t).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "take_enrollment race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "take_enrollment race (round {round}): {winners} of {tasks} concurrent takes returned \
         true; exactly one must"
    );
    assert!(
        ok(
            checker(stores, round).enrollment(&user, t).await,
            "enrollment"
        )
        .is_none(),
        "take_enrollment race (round {round}): the enrollment is still there"
    );
}

pub(super) async fn race_take_enrollment_vs_put<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    // The user restarts the setup while confirmations of the old one race: taking the
    // old setup must never delete the new one.
    let t = now();
    let user = user_id();
    let old = enrollment_record(false, t + TTL);
    let new = enrollment_record(false, t + TTL);
    ok(
        stores[round % stores.len()]
            .put_enrollment(&user, &old)
            .await,
        "put_enrollment",
    );
    let putter = round % tasks;
    let results = race(stores, tasks, |i, s| {
        let user = user.clone();
        let old_id = old.id.clone();
        let new = new.clone();
        async move {
            if i == putter {
                s.put_enrollment(&user, &new).await.map(|()| false)
            } else {
                s.take_enrollment(&user, &old_id, t).await
            }
        }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "take_enrollment/put_enrollment race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert!(
        winners <= 1,
        "take_enrollment race (round {round}): {winners} concurrent takes of one enrollment \
         returned true; at most one may"
    );
    assert_same_enrollment(
        ok(
            checker(stores, round).enrollment(&user, t).await,
            "enrollment",
        ),
        &new,
        &format!(
            "take_enrollment/put_enrollment race (round {round}): a take of the old setup \
             removed the new one"
        ),
    );
}

pub(super) async fn race_update_throttle<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let keep = now() + TTL;
    let key = throttle_key();
    // Odd rounds race from a stored state, even rounds from the default one.
    let expected = if round % 2 == 1 {
        let s = ThrottleState {
            count: 3,
            until: now() + 30,
        };
        assert!(ok(
            stores[0]
                .update_throttle(&key, ThrottleState::default(), s, keep, now())
                .await,
            "update_throttle"
        ));
        s
    } else {
        ThrottleState::default()
    };
    let until = now() + 60;
    let results = race(stores, tasks, |i, s| {
        let key = key.clone();
        let new = ThrottleState {
            count: 10 + i as u32,
            until,
        };
        async move { s.update_throttle(&key, expected, new, keep, now()).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "update_throttle race"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "update_throttle race (round {round}): {winners} of {tasks} concurrent compare-and-sets \
         from the same expected state returned true; exactly one must"
    );
    if let Some(w) = results.iter().position(|r| *r) {
        assert_eq!(
            ok(
                checker(stores, round).throttle(&key, now()).await,
                "throttle"
            ),
            ThrottleState {
                count: 10 + w as u32,
                until
            },
            "update_throttle race (round {round}): the stored state is not the winner's"
        );
        // Then a race to reset it (writing the default state deletes the key):
        // again exactly one.
        let current = ThrottleState {
            count: 10 + w as u32,
            until,
        };
        let results = race(stores, tasks, |_, s| {
            let key = key.clone();
            async move {
                s.update_throttle(&key, current, ThrottleState::default(), keep, now())
                    .await
            }
        })
        .await;
        let results: Vec<bool> = results
            .into_iter()
            .map(|r| ok(r, "update_throttle reset race"))
            .collect();
        let winners = count(&results, |r| *r);
        assert_eq!(
            winners, 1,
            "update_throttle race (round {round}): {winners} of {tasks} concurrent resets to \
             the default state from the same expected state returned true; exactly one must"
        );
        assert_eq!(
            ok(
                checker(stores, round).throttle(&key, now()).await,
                "throttle"
            ),
            ThrottleState::default(),
            "update_throttle race (round {round}): the reset did not stick"
        );
    }
}

pub(super) async fn race_throttle_counter<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let keep = now() + TTL;
    let key = throttle_key();
    let until = now() + 60;
    let results = race(stores, tasks, |_, s| {
        let key = key.clone();
        async move {
            // Every task adds one, retrying on a lost compare-and-set, as the flows do.
            for _ in 0..10_000 {
                let current = s.throttle(&key, now()).await?;
                let next = ThrottleState {
                    count: current.count + 1,
                    until,
                };
                if s.update_throttle(&key, current, next, keep, now()).await? {
                    return Ok(true);
                }
                tokio::task::yield_now().await;
            }
            Ok(false)
        }
    })
    .await;
    for r in results {
        assert!(
            ok(r, "throttle/update_throttle counter race"),
            "update_throttle counter race (round {round}): 10000 compare-and-sets in a row \
             failed; the store makes no progress"
        );
    }
    let got = ok(
        checker(stores, round).throttle(&key, now()).await,
        "throttle",
    );
    assert_eq!(
        got.count, tasks as u32,
        "update_throttle counter race (round {round}): {tasks} tasks each added one with \
         compare-and-set; increments were lost"
    );
}

pub(super) async fn race_update_expired_throttle<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let zero = ThrottleState::default();
    let key = throttle_key();
    let old = ThrottleState {
        count: 7,
        until: t + 30,
    };
    // Expired exactly at `t` (keep_until <= now).
    assert!(ok(
        stores[0].update_throttle(&key, zero, old, t, t - 1).await,
        "update_throttle"
    ));
    let until = t + 60;
    let results = race(stores, tasks, |i, s| {
        let key = key.clone();
        let new = ThrottleState {
            count: 100 + i as u32,
            until,
        };
        async move { s.update_throttle(&key, zero, new, t + TTL, t).await }
    })
    .await;
    let results: Vec<bool> = results
        .into_iter()
        .map(|r| ok(r, "update_throttle race on an expired state"))
        .collect();
    let winners = count(&results, |r| *r);
    assert_eq!(
        winners, 1,
        "update_throttle race on an expired state (round {round}): {winners} of {tasks} \
         concurrent compare-and-sets from the default state returned true; exactly one must"
    );
    if let Some(w) = results.iter().position(|r| *r) {
        assert_eq!(
            ok(checker(stores, round).throttle(&key, t).await, "throttle"),
            ThrottleState {
                count: 100 + w as u32,
                until
            },
            "update_throttle race on an expired state (round {round}): the stored state is \
             not the winner's"
        );
    }
}

pub(super) async fn race_purge_vs_live_login<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let user = user_id();
    let login = hash();
    let s0 = &stores[0];
    ok(
        s0.create_pending_login(&login, &pending(&user, 0, t + TTL))
            .await,
        "create_pending_login",
    );
    // Something for the purges to do.
    ok(
        s0.create_pending_login(&hash(), &pending(&user, 0, t))
            .await,
        "create_pending_login",
    );
    ok(
        s0.create_session(&hash(), &session_record(&user, t - 10, t))
            .await,
        "create_session",
    );
    let key = throttle_key();
    let live = ThrottleState {
        count: 2,
        until: t + 30,
    };
    assert!(ok(
        s0.update_throttle(&key, ThrottleState::default(), live, t + TTL, t)
            .await,
        "update_throttle"
    ));
    // Two tasks purge; the others write a live login's records meanwhile.
    let made: Vec<(KeyedHash, KeyedHash)> = (0..tasks).map(|_| (hash(), hash())).collect();
    let results = race(stores, tasks, |i, s| {
        let user = user.clone();
        let (session, device) = made[i];
        async move {
            if i < 2 {
                s.purge_expired(t).await.map(|_| ())
            } else {
                s.create_session(&session, &session_record(&user, t, t + TTL))
                    .await?;
                s.create_device(&device, &device_record(&user, t, t + TTL))
                    .await
            }
        }
    })
    .await;
    for r in results {
        ok(r, "purge_expired race");
    }
    let c = checker(stores, round);
    let writers = tasks.saturating_sub(2);
    for (session, device) in made.iter().skip(2) {
        assert!(
            ok(c.session(session, t).await, "session").is_some(),
            "purge_expired race (round {round}): a live session written during the purge \
             is gone"
        );
        assert!(
            ok(c.device(device, t).await, "device").is_some(),
            "purge_expired race (round {round}): a live device written during the purge is \
             gone"
        );
    }
    assert_eq!(
        ok(c.sessions(&user, t).await, "sessions").len(),
        writers,
        "purge_expired race (round {round}): the account's session list lost live sessions"
    );
    assert_eq!(
        ok(c.devices(&user, t).await, "devices").len(),
        writers,
        "purge_expired race (round {round}): the account's device list lost live devices"
    );
    assert_eq!(
        ok(c.throttle(&key, t).await, "throttle"),
        live,
        "purge_expired race (round {round}): a live throttle was purged"
    );
    assert!(
        ok(c.take_pending_login(&login, t).await, "take_pending_login").is_some(),
        "purge_expired race (round {round}): a live pending login was purged"
    );
}

pub(super) async fn race_create_devices<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let user = user_id();
    let devices: Vec<(KeyedHash, DeviceRecord)> = (0..tasks)
        .map(|_| (hash(), device_record(&user, t, t + TTL)))
        .collect();
    let results = race(stores, tasks, |i, s| {
        let (token, device) = devices[i].clone();
        async move { s.create_device(&token, &device).await }
    })
    .await;
    for r in results {
        ok(r, "create_device race");
    }
    let check = checker(stores, round);
    let listed = ok(check.devices(&user, t).await, "devices");
    assert_eq!(
        listed.len(),
        tasks,
        "create_device race (round {round}): {tasks} devices created concurrently for one \
         account, {} listed (a lost update)",
        listed.len()
    );
    for (token, device) in &devices {
        assert_eq!(
            ok(check.device(token, t).await, "device").as_ref(),
            Some(device),
            "create_device race (round {round}): a device is not found by its token"
        );
    }
    assert_eq!(
        ok(check.revoke_all_devices(&user).await, "revoke_all_devices") as usize,
        tasks,
        "create_device race (round {round}): revoke_all_devices must count every device"
    );
}

pub(super) async fn race_delete_sessions<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    // k sessions, then "log out everywhere else" from several handles at once.
    let k = tasks.max(2);
    let t = now();
    let user = user_id();
    let sessions: Vec<(KeyedHash, SessionRecord)> = (0..k)
        .map(|i| (hash(), session_record(&user, t - (k - i) as u64, t + TTL)))
        .collect();
    let store = &stores[round % stores.len()];
    for (token, session) in &sessions {
        ok(store.create_session(token, session).await, "create_session");
    }
    let keep = round % k;
    let keep_id = sessions[keep].1.id.clone();
    let results = race(stores, tasks, |_, s| {
        let user = user.clone();
        let keep_id = keep_id.clone();
        async move { s.delete_sessions(&user, Some(&keep_id)).await }
    })
    .await;
    let counts: Vec<u32> = results
        .into_iter()
        .map(|r| ok(r, "delete_sessions race"))
        .collect();
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    assert_eq!(
        total,
        k as u64 - 1,
        "delete_sessions race (round {round}): {tasks} concurrent calls deleting {} of {k} \
         sessions returned counts adding up to {total}; each deleted session must be counted \
         once: {counts:?}",
        k - 1
    );
    let check = checker(stores, round);
    assert_eq!(
        ok(check.sessions(&user, t).await, "sessions"),
        vec![sessions[keep].1.clone()],
        "delete_sessions race (round {round}): exactly the kept session must be left"
    );
    for (i, (token, session)) in sessions.iter().enumerate() {
        let want = (i == keep).then(|| session.clone());
        assert_eq!(
            ok(check.session(token, t).await, "session"),
            want,
            "delete_sessions race (round {round}): {}",
            if i == keep {
                "the kept session is not found by its token"
            } else {
                "a deleted session is still found by its token"
            }
        );
    }
}

pub(super) async fn race_commit_same_step<S: Store + Clone>(
    stores: &[S],
    tasks: usize,
    round: usize,
) {
    let (account, auth, _) = new_2fa_account(&stores[0], 0).await;
    let step = now() / 30;
    let user = account.id.clone();
    let results = race(stores, tasks, |_, s| {
        let (user, auth) = (user.clone(), auth.id.clone());
        async move {
            let token = hash();
            let t = now();
            s.create_pending_login(&token, &pending(&user, 1, t + TTL))
                .await?;
            let keys = [throttle_key(), throttle_key()];
            let parts = commit_parts(&user, &auth, step);
            let zero = ThrottleState::default();
            let writes = throttle_writes(&keys, [zero, zero], t);
            let c = commit(&token, &user, &parts.marks, &writes, &parts, false);
            s.commit_factor_step(&c).await
        }
    })
    .await;
    let results: Vec<FactorCommitted> = results
        .into_iter()
        .map(|r| ok(r, "commit_factor_step race"))
        .collect();
    let spent = count(&results, |r| *r == FactorCommitted::Spent);
    assert_eq!(
        spent, 1,
        "commit_factor_step race (round {round}): {spent} of {tasks} commits spending the same \
         step were Spent; exactly one must be (a replayed TOTP code): {results:?}"
    );
    assert_eq!(
        count(&results, |r| *r == FactorCommitted::NotSpent),
        tasks - 1,
        "commit_factor_step race (round {round}): the others are replays: {results:?}"
    );
}

pub(super) async fn race_commit_same_login<S: Store + Clone>(
    stores: &[S],
    tasks: usize,
    round: usize,
) {
    let (account, _, token, keys) = step_fixture(&stores[0]).await;
    let read = read_throttles(&stores[0], &keys).await;
    let user = account.id.clone();
    let keys = Arc::new(keys);
    let results = race(stores, tasks, |_, s| {
        let (user, keys) = (user.clone(), Arc::clone(&keys));
        async move {
            let t = now();
            let parts = commit_parts(&user, &authenticator_id(), t / 30);
            let writes = throttle_writes(&keys, read, t);
            let c = commit(&token, &user, &parts.marks, &writes, &parts, false);
            let r = s.commit_factor_step(&c).await?;
            let session = s.session(&parts.session_hash, t).await?;
            Ok::<_, crate::Error>((r, session.is_some()))
        }
    })
    .await;
    let results: Vec<(FactorCommitted, bool)> = results
        .into_iter()
        .map(|r| ok(r, "commit_factor_step race"))
        .collect();
    let spent = count(&results, |r| r.0 == FactorCommitted::Spent);
    assert_eq!(
        spent, 1,
        "commit_factor_step race (round {round}): {spent} of {tasks} commits on one pending \
         login were Spent; exactly one must be (one login, one session): {results:?}"
    );
    assert_eq!(
        count(&results, |r| r.1),
        1,
        "commit_factor_step race (round {round}): exactly the winner's session exists"
    );
    assert!(
        results.iter().all(|r| r.0 != FactorCommitted::NotSpent),
        "commit_factor_step race (round {round}): a loser must write nothing: {results:?}"
    );
    assert!(
        ok(
            checker(stores, round)
                .take_pending_login(&token, now())
                .await,
            "take_pending_login"
        )
        .is_none(),
        "commit_factor_step race (round {round}): the pending login is taken"
    );
}

/// Wrong guesses racing on one pending login: however the store counts the attempt
/// (in the read or in the commit), no more guesses are answered than the login has
/// attempts.
pub(super) async fn race_guesses_on_one_login<S: Store + Clone>(
    stores: &[S],
    tasks: usize,
    round: usize,
) {
    const MAX: u32 = 3;
    let (account, _, _) = new_2fa_account(&stores[0], 0).await;
    let token = hash();
    ok(
        stores[0]
            .create_pending_login(&token, &pending(&account.id, 0, now() + TTL))
            .await,
        "create_pending_login",
    );
    let user = account.id.clone();
    let results = race(stores, tasks, |_, s| {
        let user = user.clone();
        async move {
            let t = now();
            let Some(view) = s.read_factor_step(&[token], MAX, t).await? else {
                return Ok::<_, crate::Error>(None);
            };
            let parts = commit_parts(&user, &authenticator_id(), t / 30);
            let last = view.pending.attempts >= MAX;
            let c = FactorCommit {
                max_attempts: MAX,
                ..commit(&token, &user, &[], &[], &parts, last)
            };
            s.commit_factor_step(&c).await.map(Some)
        }
    })
    .await;
    let results: Vec<Option<FactorCommitted>> = results
        .into_iter()
        .map(|r| ok(r, "read_factor_step and commit_factor_step race"))
        .collect();
    let answered = count(&results, |r| *r == Some(FactorCommitted::NotSpent));
    let max = tasks.min(MAX as usize);
    assert_eq!(
        answered, max,
        "guesses on one pending login (round {round}): {answered} of {tasks} wrong guesses \
         on a login with {MAX} attempts were counted and answered; exactly {max} must be \
         (an attacker must not get more guesses by sending them at once): {results:?}"
    );
    assert!(
        results.iter().all(|r| matches!(
            r,
            None | Some(FactorCommitted::NotSpent | FactorCommitted::Expired)
        )),
        "guesses on one pending login (round {round}): the others find it gone: {results:?}"
    );
    if tasks >= MAX as usize {
        let s = checker(stores, round);
        assert!(
            ok(
                s.read_factor_step(&[token], MAX, now()).await,
                "read_factor_step"
            )
            .is_none(),
            "guesses on one pending login (round {round}): the login is burnt"
        );
        assert!(
            ok(
                s.take_pending_login(&token, now()).await,
                "take_pending_login"
            )
            .is_none(),
            "guesses on one pending login (round {round}): the burnt login is gone"
        );
    }
}
/// `delete_session` against `reauthenticate_session` of the same session, half the
/// tasks each: the session ends up gone, and no re-authentication brings it back
/// (not even as a partial record).
pub(super) async fn race_reauthenticate_vs_delete<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let user = user_id();
    let token = hash();
    let record = session_record(&user, t - 10, t + TTL);
    ok(
        stores[round % stores.len()]
            .create_session(&token, &record)
            .await,
        "create_session",
    );
    let results = race(stores, tasks.max(2), |i, s| async move {
        if i % 2 == 0 {
            s.delete_session(&token).await.map(|()| false)
        } else {
            s.reauthenticate_session(&token, t + i as u64).await
        }
    })
    .await;
    for r in results {
        ok(r, "delete_session / reauthenticate_session race");
    }
    let check = checker(stores, round);
    assert_eq!(
        ok(check.session(&token, t).await, "session"),
        None,
        "delete_session against reauthenticate_session (round {round}): a re-authentication \
         brought the deleted session back"
    );
    assert!(
        ok(check.sessions(&user, t).await, "sessions").is_empty(),
        "delete_session against reauthenticate_session (round {round}): the deleted session \
         is still listed"
    );
    assert!(
        !ok(
            check.reauthenticate_session(&token, t + 1).await,
            "reauthenticate_session"
        ),
        "delete_session against reauthenticate_session (round {round}): a deleted session \
         was re-authenticated"
    );
}

/// One task of [`race_delete_sessions_vs_create`]: the deleter's call and count, or
/// the sessions a creator made, each with when its call started and returned.
#[derive(Default)]
struct SessionRaceTask {
    deleted: Option<(Instant, Instant, u32)>,
    created: Vec<(SessionId, Instant, Instant)>,
}

/// `delete_sessions` keeping one session, against tasks creating sessions of the
/// same account: a session created before the delete started is gone, one created
/// after it returned is there, and every session is either counted as deleted or
/// still listed.
pub(super) async fn race_delete_sessions_vs_create<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    const BEFORE: usize = 8;
    const EACH: usize = 3;
    let t = now();
    let user = user_id();
    let before: Vec<(KeyedHash, SessionRecord)> = (0..BEFORE)
        .map(|i| (hash(), session_record(&user, t - 100 + i as u64, t + TTL)))
        .collect();
    for (i, (token, record)) in before.iter().enumerate() {
        ok(
            stores[i % stores.len()].create_session(token, record).await,
            "create_session",
        );
    }
    let kept = before[0].1.id.clone();
    let got = race(stores, tasks.max(2), |i, s| {
        let (user, kept) = (user.clone(), kept.clone());
        async move {
            let mut task = SessionRaceTask::default();
            if i == 0 {
                let started = Instant::now();
                let n = ok(
                    s.delete_sessions(&user, Some(&kept)).await,
                    "delete_sessions",
                );
                task.deleted = Some((started, Instant::now(), n));
            } else {
                for j in 0..EACH {
                    let record = session_record(&user, t + (i * EACH + j) as u64, t + TTL);
                    let started = Instant::now();
                    ok(s.create_session(&hash(), &record).await, "create_session");
                    task.created.push((record.id, started, Instant::now()));
                }
            }
            task
        }
    })
    .await;
    let Some((del_start, del_end, deleted)) = got[0].deleted else {
        panic!("delete_sessions against create_session (round {round}): the deleter did not run")
    };
    let survivors: BTreeSet<String> =
        ok(checker(stores, round).sessions(&user, t).await, "sessions")
            .into_iter()
            .map(|s| s.id.as_str().to_owned())
            .collect();
    assert!(
        survivors.contains(kept.as_str()),
        "delete_sessions against create_session (round {round}): the kept session was deleted"
    );
    for (_, record) in &before[1..] {
        assert!(
            !survivors.contains(record.id.as_str()),
            "delete_sessions against create_session (round {round}): a session created \
             before the race survived"
        );
    }
    let created: Vec<_> = got.iter().flat_map(|task| task.created.iter()).collect();
    for (id, started, returned) in &created {
        if *returned < del_start {
            assert!(
                !survivors.contains(id.as_str()),
                "delete_sessions against create_session (round {round}): a session created \
                 before the delete started survived it"
            );
        }
        if *started > del_end {
            assert!(
                survivors.contains(id.as_str()),
                "delete_sessions against create_session (round {round}): a session created \
                 after the delete returned is gone"
            );
        }
    }
    assert_eq!(
        deleted as usize + survivors.len(),
        BEFORE + created.len(),
        "delete_sessions against create_session (round {round}): {deleted} counted as \
         deleted and {} left of {} sessions; every session must be one or the other",
        survivors.len(),
        BEFORE + created.len()
    );
}

/// `read_factor_ephemeral` from every task on one pending login with `max` attempts
/// (fewer than the tasks): exactly `max` count one, with distinct counts, each with
/// the user's throttles, and the login is burnt.
pub(super) async fn race_read_factor_ephemeral<E: EphemeralStore + Clone>(
    stores: &[E],
    tasks: usize,
    round: usize,
) {
    let t = now();
    let max = 1 + (round % (tasks - 1).min(5)) as u32;
    let (token, user) = (hash(), user_id());
    let lockout = ThrottleState {
        count: 1,
        until: t + 30,
    };
    let [lockout_key, _] = factor_throttle_keys(&user);
    let first = &stores[round % stores.len()];
    ok(
        first
            .update_throttle(&lockout_key, ThrottleState::default(), lockout, t + TTL, t)
            .await,
        "update_throttle",
    );
    ok(
        first
            .create_pending_login(&token, &pending(&user, 0, t + TTL))
            .await,
        "create_pending_login",
    );
    let results = race(stores, tasks, |_, s| async move {
        s.read_factor_ephemeral(&[hash(), token], max, t).await
    })
    .await;
    let got: Vec<FactorEphemeralView> = results
        .into_iter()
        .filter_map(|r| ok(r, "read_factor_ephemeral race"))
        .collect();
    assert_eq!(
        got.len(),
        max as usize,
        "read_factor_ephemeral race (round {round}): {} of {tasks} concurrent reads on a \
         pending login with max_attempts = {max} counted an attempt; exactly {max} must \
         (each counted as begin_login_attempt counts one)",
        got.len()
    );
    let counts: BTreeSet<u32> = got.iter().map(|v| v.pending.attempts).collect();
    assert_eq!(
        counts,
        (1..=max).collect::<BTreeSet<u32>>(),
        "read_factor_ephemeral race (round {round}): the attempt counts must be distinct \
         and consecutive"
    );
    for v in &got {
        assert!(
            v.token == token
                && v.pending.user_id == user
                && v.throttles == [lockout, ThrottleState::default()],
            "read_factor_ephemeral race (round {round}): returned a different login or \
             throttles: {v:?}"
        );
    }
    assert_eq!(
        ok(
            checker(stores, round).take_pending_login(&token, t).await,
            "take_pending_login"
        ),
        None,
        "read_factor_ephemeral race (round {round}): after reads beyond max_attempts the \
         pending login must be burnt"
    );
}
