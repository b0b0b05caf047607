//! Accounts, passwords, turning 2FA on and off, authenticators and backup codes,
//! one call at a time.

use super::fixtures::*;
use crate::Error;
use crate::secret::{KeyRing, SealingKey, Secret};
use crate::store::*;

pub(super) async fn accounts_create_and_lookup<A: AccountStore>(store: &A) {
    let account = account_record(now());
    ok(store.create_account(&account).await, "create_account");

    let by_name = ok(
        store.account_by_username(&account.username).await,
        "account_by_username",
    );
    match by_name {
        Some(got) => assert_same_account(&got, &account, "account_by_username"),
        None => panic!("account_by_username: returned None for an account just created"),
    }
    let by_id = account_of(store, &account.id, "account").await;
    assert_same_account(&by_id, &account, "account");
    assert!(
        by_id.backup_codes_key_id.is_none(),
        "account: a new account's backup_codes_key_id must be None, got {:?}",
        by_id.backup_codes_key_id
    );

    assert!(
        ok(
            store.account_by_username(&username()).await,
            "account_by_username"
        )
        .is_none(),
        "account_by_username: returned an account for an unknown user name"
    );
    assert!(
        ok(store.account(&user_id()).await, "account").is_none(),
        "account: returned an account for an unknown id"
    );

    // Uniqueness: a second account with the same name fails and leaves nothing.
    let mut twin = account_record(now());
    twin.username = account.username.clone();
    match store.create_account(&twin).await {
        Err(Error::UsernameTaken) => {}
        other => panic!(
            "create_account: a second account with a taken user name must fail with \
             UsernameTaken, got {other:?}"
        ),
    }
    assert!(
        ok(store.account(&twin.id).await, "account").is_none(),
        "create_account: a creation that failed with UsernameTaken left an account behind"
    );
    let still = account_of(store, &account.id, "account").await;
    assert_same_account(
        &still,
        &account,
        "create_account: the failed creation of a taken name changed the existing account",
    );
    match ok(
        store.account_by_username(&account.username).await,
        "account_by_username",
    ) {
        Some(got) => assert!(
            got.id == account.id,
            "create_account: after UsernameTaken, the name points at {:?} instead of {:?}",
            got.id,
            account.id
        ),
        None => panic!("account_by_username: lost the account after a failed twin creation"),
    }

    // A fresh account has nothing of 2FA.
    assert!(
        ok(store.authenticators(&account.id).await, "authenticators").is_empty(),
        "authenticators: a fresh account has authenticators"
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        0,
        "backup_codes_remaining: a fresh account has backup codes"
    );
    assert!(
        ok(store.authenticators(&user_id()).await, "authenticators").is_empty(),
        "authenticators: an unknown account has authenticators"
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(&user_id()).await,
            "backup_codes_remaining"
        ),
        0,
        "backup_codes_remaining: an unknown account has backup codes"
    );
}

pub(super) async fn accounts_set_password<A: AccountStore>(store: &A) {
    let account = new_account(store).await;
    let id = &account.id;
    let e = account.password_epoch;

    // A password change: the current epoch expected, the next one written.
    let hash = password_hash();
    assert!(
        ok(
            store.set_password(id, &hash, e, e + 1).await,
            "set_password"
        ),
        "set_password: returned false for an existing account whose epoch is expected_epoch"
    );
    let mut want = account.clone();
    want.password_hash = hash.clone();
    want.password_epoch = e + 1;
    let got = account_of(store, id, "account after set_password").await;
    assert_same_account(&got, &want, "set_password (read by id)");
    match ok(
        store.account_by_username(&account.username).await,
        "account_by_username",
    ) {
        Some(got) => assert_same_account(&got, &want, "set_password (read by user name)"),
        None => panic!("account_by_username: lost the account after set_password"),
    }

    // A stale expected epoch (the epoch moved on): refused, nothing written. Also an
    // expected epoch ahead of the account's: the compare is for equality.
    let stale = password_hash();
    for (expected, new, what) in [
        (e, e + 2, "a password change"),
        (e, e, "a rehash"),
        (e + 2, e + 3, "a password change expecting a newer epoch"),
    ] {
        assert!(
            !ok(
                store.set_password(id, &stale, expected, new).await,
                "set_password"
            ),
            "set_password: {what} with expected_epoch {expected} wrote although the account's \
             epoch is {}; with a stale (or any other) expected_epoch it must return false \
             (compare-and-set on the epoch)",
            e + 1
        );
        let got = account_of(store, id, "account after a refused set_password").await;
        assert_same_account(
            &got,
            &want,
            &format!("set_password: {what} with a wrong expected_epoch changed the account"),
        );
    }

    // A rehash: the epoch read is expected and written again.
    let rehash = password_hash();
    assert!(
        ok(
            store.set_password(id, &rehash, e + 1, e + 1).await,
            "set_password"
        ),
        "set_password: a rehash (expected_epoch == new_epoch == the account's epoch) returned \
         false"
    );
    want.password_hash = rehash;
    let got = account_of(store, id, "account after a rehash").await;
    assert_same_account(
        &got,
        &want,
        "set_password: a rehash must write the hash and keep the epoch",
    );

    let unknown = user_id();
    assert!(
        !ok(
            store.set_password(&unknown, &hash, 3, 4).await,
            "set_password"
        ),
        "set_password: returned true for an unknown account"
    );
    assert!(
        ok(store.account(&unknown).await, "account").is_none(),
        "set_password: on an unknown account it created one"
    );
}

pub(super) async fn two_factor_lifecycle<A: AccountStore>(store: &A) {
    let t = now();

    // Missing account.
    let ghost = user_id();
    match store
        .enable_two_factor(&authenticator(&ghost, "phone", t), &hashes(2), key_id())
        .await
    {
        Err(Error::NotFound { .. }) => {}
        other => panic!("enable_two_factor: on a missing account must be NotFound, got {other:?}"),
    }
    assert!(
        ok(store.authenticators(&ghost).await, "authenticators").is_empty(),
        "enable_two_factor: a NotFound enable left an authenticator behind"
    );
    assert!(
        ok(store.account(&ghost).await, "account").is_none(),
        "enable_two_factor: a NotFound enable created an account"
    );

    let account = new_account(store).await;
    let id = &account.id;

    // add_authenticator needs 2FA on.
    match store
        .add_authenticator(&authenticator(id, "early", t), ROOMY)
        .await
    {
        Err(Error::TwoFactorNotEnabled) => {}
        other => panic!(
            "add_authenticator: with 2FA off must fail with TwoFactorNotEnabled, got {other:?}"
        ),
    }
    assert!(
        ok(store.authenticators(id).await, "authenticators").is_empty(),
        "add_authenticator: a refused add (2FA off) stored the authenticator"
    );

    // Enable.
    let first = authenticator(id, "Téléphone ☎ 📱", t);
    let codes = hashes(5);
    let key = key_id();
    ok(
        store.enable_two_factor(&first, &codes, key).await,
        "enable_two_factor",
    );
    let got = account_of(store, id, "account after enable_two_factor").await;
    assert!(
        got.two_factor_enabled,
        "enable_two_factor: the account's two_factor_enabled flag is still false"
    );
    assert_eq!(
        got.backup_codes_key_id,
        Some(key),
        "enable_two_factor: backup_codes_key_id must be the backup_key_id passed"
    );
    let mut want = account.clone();
    want.two_factor_enabled = true;
    want.backup_codes_key_id = Some(key);
    assert_same_account(
        &got,
        &want,
        "enable_two_factor (other fields must not change)",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first],
        "enable_two_factor",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        5,
        "enable_two_factor: backup_codes_remaining after enabling with 5 codes"
    );

    // A second enable changes nothing.
    let second = authenticator(id, "other phone", t + 1);
    let other_codes = hashes(3);
    match store
        .enable_two_factor(&second, &other_codes, key.wrapping_add(1))
        .await
    {
        Err(Error::TwoFactorAlreadyEnabled) => {}
        other => panic!(
            "enable_two_factor: a second enable must fail with TwoFactorAlreadyEnabled, \
             got {other:?}"
        ),
    }
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first],
        "enable_two_factor: a refused second enable changed the authenticators",
    );
    assert_same_account(
        &account_of(store, id, "account").await,
        &want,
        "enable_two_factor: a refused second enable changed the account (backup_codes_key_id?)",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        5,
        "enable_two_factor: a refused second enable changed the backup codes"
    );
    assert!(
        !ok(
            store.consume_backup_code(id, &other_codes[0]).await,
            "consume_backup_code"
        ),
        "enable_two_factor: a refused second enable stored its backup codes"
    );
    assert!(
        ok(
            store.consume_backup_code(id, &codes[0]).await,
            "consume_backup_code"
        ),
        "enable_two_factor: a refused second enable removed the first backup codes"
    );

    // Add while on.
    let added = authenticator(id, "tablet", t + 2);
    ok(
        store.add_authenticator(&added, ROOMY).await,
        "add_authenticator",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first, &added],
        "add_authenticator",
    );

    // Disable clears everything.
    assert!(
        ok(store.disable_two_factor(id).await, "disable_two_factor"),
        "disable_two_factor: returned false although 2FA was on"
    );
    let got = account_of(store, id, "account after disable_two_factor").await;
    assert!(
        got.backup_codes_key_id.is_none(),
        "disable_two_factor: backup_codes_key_id must be cleared (None), got {:?}",
        got.backup_codes_key_id
    );
    assert_same_account(
        &got,
        &account,
        "disable_two_factor (flag off, backup_codes_key_id cleared, other fields unchanged)",
    );
    assert!(
        ok(store.authenticators(id).await, "authenticators").is_empty(),
        "disable_two_factor: authenticators are left"
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        0,
        "disable_two_factor: backup codes are left"
    );
    assert!(
        !ok(
            store.consume_backup_code(id, &codes[1]).await,
            "consume_backup_code"
        ),
        "disable_two_factor: a backup code of the old set can still be consumed"
    );
    assert!(
        !ok(store.disable_two_factor(id).await, "disable_two_factor"),
        "disable_two_factor: returned true although 2FA was already off"
    );
    assert!(
        !ok(
            store.disable_two_factor(&user_id()).await,
            "disable_two_factor"
        ),
        "disable_two_factor: returned true for an unknown account"
    );
    match store
        .add_authenticator(&authenticator(id, "late", t + 3), ROOMY)
        .await
    {
        Err(Error::TwoFactorNotEnabled) => {}
        other => panic!(
            "add_authenticator: after disable_two_factor must fail with TwoFactorNotEnabled, \
             got {other:?}"
        ),
    }

    // Enable again: only the new authenticator and codes.
    let again = authenticator(id, "new phone", t + 4);
    let new_codes = hashes(2);
    let new_key = key.wrapping_add(2);
    ok(
        store.enable_two_factor(&again, &new_codes, new_key).await,
        "enable_two_factor after disable_two_factor",
    );
    assert_eq!(
        account_of(store, id, "account").await.backup_codes_key_id,
        Some(new_key),
        "enable_two_factor after disable_two_factor: backup_codes_key_id must be the new \
         backup_key_id"
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&again],
        "enable_two_factor after disable_two_factor",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        2,
        "enable_two_factor after disable_two_factor: backup_codes_remaining"
    );
}

pub(super) async fn two_factor_without_backup_codes<A: AccountStore>(store: &A) {
    // An empty set of backup codes is a valid set (and an empty SQL insert).
    let account = new_account(store).await;
    let auth = authenticator(&account.id, "phone", now());
    ok(
        store.enable_two_factor(&auth, &[], key_id()).await,
        "enable_two_factor with no backup codes",
    );
    assert!(
        account_of(store, &account.id, "account")
            .await
            .two_factor_enabled,
        "enable_two_factor with no backup codes: the flag is off"
    );
    assert_same_authenticators(
        &ok(store.authenticators(&account.id).await, "authenticators"),
        &[&auth],
        "enable_two_factor with no backup codes",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(&account.id).await,
            "backup_codes_remaining"
        ),
        0,
        "enable_two_factor with no backup codes: backup_codes_remaining"
    );
}

/// Asserts that the authenticator `got`, read back from the store, holds a sealed
/// secret that still opens with `keys` to `secret`: the store keeps it byte for byte.
#[track_caller]
fn assert_opens(keys: &KeyRing, got: Option<&AuthenticatorRecord>, secret: &Secret, what: &str) {
    let opened = got.map(|a| keys.open(a.user_id.as_str(), &a.sealed_secret));
    assert!(
        matches!(&opened, Some(Ok(s)) if s == secret),
        "{what}: the stored sealed secret no longer opens with the key ring to the secret \
         that was sealed: {opened:?}"
    );
}

pub(super) async fn authenticators_order_remove_reseal<A: AccountStore>(store: &A) {
    let t = now();
    let account = new_account(store).await;
    let id = &account.id;
    // Really sealed, so that the secrets read back can be opened.
    let keys = KeyRing::new(key_id(), SealingKey::generate());
    let secret = Secret::generate();
    let mut a1 = authenticator(id, "one", t);
    a1.sealed_secret = ok(keys.seal(id.as_str(), &secret), "sealing a test secret");
    ok(
        store.enable_two_factor(&a1, &hashes(1), key_id()).await,
        "enable_two_factor",
    );
    // Added out of `created_at` order: the list is ordered by `created_at`.
    let a3 = authenticator(id, "three", t + 20);
    let a2 = authenticator(id, "two", t + 10);
    ok(
        store.add_authenticator(&a3, ROOMY).await,
        "add_authenticator",
    );
    ok(
        store.add_authenticator(&a2, ROOMY).await,
        "add_authenticator",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&a1, &a2, &a3],
        "authenticators (oldest created_at first)",
    );
    assert_opens(
        &keys,
        ok(store.authenticators(id).await, "authenticators").first(),
        &secret,
        "enable_two_factor then authenticators",
    );

    // Another account's view is separate.
    let (other, other_auth, _) = new_2fa_account(store, 1).await;
    assert_same_authenticators(
        &ok(store.authenticators(&other.id).await, "authenticators"),
        &[&other_auth],
        "authenticators (only the account's own)",
    );

    // Reseal (as a key rotation does: the same secret under another key).
    let rotated = KeyRing::new(key_id(), SealingKey::generate());
    let resealed = ok(rotated.seal(id.as_str(), &secret), "sealing a test secret");
    assert!(
        ok(
            store.reseal_authenticator(id, &a2.id, &resealed).await,
            "reseal_authenticator"
        ),
        "reseal_authenticator: returned false for an existing authenticator"
    );
    let mut a2_new = a2.clone();
    a2_new.sealed_secret = resealed.clone();
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&a1, &a2_new, &a3],
        "reseal_authenticator (only that secret changes)",
    );
    assert_opens(
        &rotated,
        ok(store.authenticators(id).await, "authenticators").get(1),
        &secret,
        "reseal_authenticator then authenticators",
    );
    assert!(
        !ok(
            store
                .reseal_authenticator(id, &authenticator_id(), &resealed)
                .await,
            "reseal_authenticator"
        ),
        "reseal_authenticator: returned true for an unknown authenticator"
    );
    assert!(
        !ok(
            store
                .reseal_authenticator(&other.id, &a1.id, &resealed)
                .await,
            "reseal_authenticator"
        ),
        "reseal_authenticator: resealed another account's authenticator"
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&a1, &a2_new, &a3],
        "reseal_authenticator (refused calls must not change anything)",
    );

    // Remove.
    let outcome = ok(
        store.remove_authenticator(id, &authenticator_id()).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::NotFound,
        "remove_authenticator: an unknown authenticator id"
    );
    let outcome = ok(
        store.remove_authenticator(&other.id, &a1.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::NotFound,
        "remove_authenticator: another account's authenticator must be NotFound"
    );
    let outcome = ok(
        store.remove_authenticator(&user_id(), &a1.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::NotFound,
        "remove_authenticator: an unknown account"
    );
    let outcome = ok(
        store.remove_authenticator(id, &a1.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::Removed,
        "remove_authenticator: 1 of 3"
    );
    let outcome = ok(
        store.remove_authenticator(id, &a1.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::NotFound,
        "remove_authenticator: the same authenticator a second time"
    );
    let outcome = ok(
        store.remove_authenticator(id, &a3.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::Removed,
        "remove_authenticator: 2 of 3"
    );
    let outcome = ok(
        store.remove_authenticator(id, &a2.id).await,
        "remove_authenticator",
    );
    assert_eq!(
        outcome,
        RemoveOutcome::LastOne,
        "remove_authenticator: the last authenticator"
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&a2_new],
        "remove_authenticator (LastOne must leave it)",
    );
    assert_same_authenticators(
        &ok(store.authenticators(&other.id).await, "authenticators"),
        &[&other_auth],
        "remove_authenticator (another account is untouched)",
    );
    assert!(
        account_of(store, id, "account").await.two_factor_enabled,
        "remove_authenticator: turned 2FA off"
    );
}

pub(super) async fn authenticator_secret_updates<A: AccountStore>(store: &A) {
    let t = now();
    let account = new_account(store).await;
    let id = &account.id;
    let totp = authenticator(id, "phone", t);
    ok(
        store.enable_two_factor(&totp, &hashes(1), key_id()).await,
        "enable_two_factor",
    );
    // A WebAuthn credential is an authenticator whose secret is a long sealed record.
    let mut key = authenticator(id, "key", t + 1);
    key.sealed_secret = sealed_record(3000);
    ok(
        store.add_authenticator(&key, ROOMY).await,
        "add_authenticator (sealed record)",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&totp, &key],
        "update_authenticator_secret: a 3 KB sealed record must round-trip",
    );
    let next = sealed_record(3000);
    let stale = sealed_record(3000);
    assert!(
        !ok(
            store
                .update_authenticator_secret(id, &key.id, &stale, &next)
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: returned true although the stored secret is not \
         the expected one"
    );
    assert!(
        !ok(
            store
                .update_authenticator_secret(id, &authenticator_id(), &key.sealed_secret, &next)
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: returned true for an unknown authenticator"
    );
    let other = new_account(store).await;
    assert!(
        !ok(
            store
                .update_authenticator_secret(&other.id, &key.id, &key.sealed_secret, &next)
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: returned true for another account's authenticator"
    );
    assert!(
        ok(
            store
                .update_authenticator_secret(id, &key.id, &key.sealed_secret, &next)
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: returned false with the stored secret as expected"
    );
    let mut updated = key.clone();
    updated.sealed_secret = next.clone();
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&totp, &updated],
        "update_authenticator_secret: the new secret must be stored, the other \
         authenticator untouched",
    );
    assert!(
        !ok(
            store
                .update_authenticator_secret(id, &key.id, &key.sealed_secret, &sealed_record(10))
                .await,
            "update_authenticator_secret",
        ),
        "update_authenticator_secret: the old secret must no longer match"
    );
}

pub(super) async fn authenticator_cap<A: AccountStore>(store: &A) {
    const MAX: u32 = 3;
    let t = now();
    let (account, first, _) = new_2fa_account(store, 1).await;
    let id = &account.id;
    let a2 = authenticator(id, "two", t + 1);
    let a3 = authenticator(id, "three", t + 2);
    let a4 = authenticator(id, "four", t + 3);
    ok(
        store.add_authenticator(&a2, MAX).await,
        "add_authenticator: the 2nd authenticator with max_authenticators = 3",
    );
    ok(
        store.add_authenticator(&a3, MAX).await,
        "add_authenticator: the 3rd authenticator with max_authenticators = 3 (reaching the \
         cap is allowed)",
    );
    match store.add_authenticator(&a4, MAX).await {
        Err(Error::TooManyAuthenticators) => {}
        other => panic!(
            "add_authenticator: the 4th authenticator with max_authenticators = 3 must fail \
             with TooManyAuthenticators, got {other:?}"
        ),
    }
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first, &a2, &a3],
        "add_authenticator: an add refused by the cap changed the authenticators",
    );
    match store.add_authenticator(&a4, 1).await {
        Err(Error::TooManyAuthenticators) => {}
        other => panic!(
            "add_authenticator: an account with 3 authenticators and max_authenticators = 1 \
             must fail with TooManyAuthenticators, got {other:?}"
        ),
    }
    // The cap counts the account's authenticators now: after a removal there is room.
    assert_eq!(
        ok(
            store.remove_authenticator(id, &a2.id).await,
            "remove_authenticator"
        ),
        RemoveOutcome::Removed,
        "remove_authenticator: 1 of 3"
    );
    ok(
        store.add_authenticator(&a4, MAX).await,
        "add_authenticator: after a removal, below max_authenticators again",
    );
    assert_same_authenticators(
        &ok(store.authenticators(id).await, "authenticators"),
        &[&first, &a3, &a4],
        "add_authenticator (up to the cap after a removal)",
    );
}

pub(super) async fn backup_codes<A: AccountStore>(store: &A) {
    let (account, _, codes) = new_2fa_account(store, 8).await;
    let id = &account.id;
    let (other, _, other_codes) = new_2fa_account(store, 2).await;

    // Another account's code, and an unknown account.
    assert!(
        !ok(
            store.consume_backup_code(&other.id, &codes[0]).await,
            "consume_backup_code"
        ),
        "consume_backup_code: consumed another account's code"
    );
    assert!(
        !ok(
            store.consume_backup_code(&user_id(), &codes[0]).await,
            "consume_backup_code"
        ),
        "consume_backup_code: consumed a code for an unknown account"
    );
    assert!(
        !ok(
            store.consume_backup_code(id, &hash()).await,
            "consume_backup_code"
        ),
        "consume_backup_code: consumed a hash the account never had"
    );

    for (i, code) in codes.iter().enumerate().take(4) {
        assert!(
            ok(
                store.consume_backup_code(id, code).await,
                "consume_backup_code"
            ),
            "consume_backup_code: an unspent code returned false"
        );
        assert!(
            !ok(
                store.consume_backup_code(id, code).await,
                "consume_backup_code"
            ),
            "consume_backup_code: the same code was consumed twice"
        );
        let left = ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining",
        );
        assert_eq!(
            u64::from(left),
            (8 - i - 1) as u64,
            "backup_codes_remaining: after consuming {} of 8",
            i + 1
        );
    }
    assert_eq!(
        ok(
            store.backup_codes_remaining(&other.id).await,
            "backup_codes_remaining"
        ),
        2,
        "consume_backup_code: changed another account's codes"
    );

    // Replace: the old set is gone at once.
    let fresh = hashes(10);
    let other_key = account_of(store, &other.id, "account")
        .await
        .backup_codes_key_id;
    let key = key_id();
    ok(
        store.replace_backup_codes(id, &fresh, key).await,
        "replace_backup_codes",
    );
    let got = account_of(store, id, "account").await;
    assert_eq!(
        got.backup_codes_key_id,
        Some(key),
        "replace_backup_codes: backup_codes_key_id must be the key_id passed"
    );
    let mut want = account.clone();
    want.two_factor_enabled = true;
    want.backup_codes_key_id = Some(key);
    assert_same_account(
        &got,
        &want,
        "replace_backup_codes (other fields must not change)",
    );
    assert_eq!(
        account_of(store, &other.id, "account")
            .await
            .backup_codes_key_id,
        other_key,
        "replace_backup_codes: changed another account's backup_codes_key_id"
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        10,
        "replace_backup_codes: backup_codes_remaining after replacing with 10 codes"
    );
    for code in &codes[4..] {
        assert!(
            !ok(
                store.consume_backup_code(id, code).await,
                "consume_backup_code"
            ),
            "replace_backup_codes: a code of the old set can still be consumed"
        );
    }
    assert!(
        ok(
            store.consume_backup_code(id, &fresh[9]).await,
            "consume_backup_code"
        ),
        "replace_backup_codes: a code of the new set cannot be consumed"
    );
    ok(
        store.replace_backup_codes(id, &[], key_id()).await,
        "replace_backup_codes",
    );
    assert_eq!(
        ok(
            store.backup_codes_remaining(id).await,
            "backup_codes_remaining"
        ),
        0,
        "replace_backup_codes: with an empty set codes remain"
    );
    assert!(
        !ok(
            store.consume_backup_code(id, &fresh[0]).await,
            "consume_backup_code"
        ),
        "replace_backup_codes: with an empty set, an old code can still be consumed"
    );
    assert!(
        ok(
            store.consume_backup_code(&other.id, &other_codes[1]).await,
            "consume_backup_code"
        ),
        "replace_backup_codes: changed another account's codes"
    );
}

/// `account_and_authenticators`: the account with its authenticators (oldest first,
/// as `authenticators` returns them), an empty list without 2FA, `None` for an
/// unknown id.
pub(super) async fn account_and_authenticators<A: AccountStore>(store: &A) {
    const WHAT: &str = "account_and_authenticators";
    assert!(
        ok(store.account_and_authenticators(&user_id()).await, WHAT).is_none(),
        "{WHAT}: returned an account for an unknown id"
    );

    let plain = new_account(store).await;
    match ok(store.account_and_authenticators(&plain.id).await, WHAT) {
        Some((got, auths)) => {
            assert_same_account(&got, &plain, WHAT);
            assert!(
                auths.is_empty(),
                "{WHAT}: an account without 2FA has no authenticators, got {auths:?}"
            );
        }
        None => panic!("{WHAT}: returned None for an existing account"),
    }

    let (account, first, _) = new_2fa_account(store, 0).await;
    // Added later with an earlier `created_at`: the order is by `created_at`.
    let second = authenticator(&account.id, "backup phone", first.created_at - 10);
    ok(
        store.add_authenticator(&second, ROOMY).await,
        "add_authenticator",
    );
    let Some((got, auths)) = ok(store.account_and_authenticators(&account.id).await, WHAT) else {
        panic!("{WHAT}: returned None for an existing account");
    };
    let want = account_of(store, &account.id, "account").await;
    assert_same_account(&got, &want, WHAT);
    assert!(
        got.two_factor_enabled,
        "{WHAT}: the account must be returned as it is now (2FA on)"
    );
    assert_same_authenticators(&auths, &[&second, &first], WHAT);
}
