//! A bounded cache of prepared TOTP keys, keyed by the sealed blob.
//!
//! Opening a sealed secret (XChaCha20-Poly1305) and preparing its HMAC key state cost
//! more than checking a code. The sealing key is in memory anyway, so the prepared
//! key of a recently used secret is kept: keyed by the exact sealed bytes (a reseal or
//! a new secret is a different blob, a removed authenticator is never looked up
//! again) and bound to the account it was opened for (the account id is the sealing's
//! associated data, so a blob copied to another account misses and is opened, and
//! refused, as before). The key state is zeroized when its entry is evicted or the
//! service dropped ([`TotpKey`] wipes itself on drop).

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use crate::store::UserId;
use crate::totp::TotpKey;

const SHARDS: usize = 16;

struct Entry {
    user_id: UserId,
    key: Arc<TotpKey>,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Box<[u8]>, Entry>,
    /// Insertion order, for eviction (first in, first out).
    order: VecDeque<Box<[u8]>>,
}

/// Prepared TOTP keys of recently used secrets, at most `capacity` of them.
pub(crate) struct PreparedKeys {
    hasher: RandomState,
    per_shard: usize,
    shards: Box<[Mutex<Shard>]>,
}

impl PreparedKeys {
    /// A cache of at most about `capacity` keys (0 turns it off).
    pub(crate) fn new(capacity: usize) -> Self {
        PreparedKeys {
            hasher: RandomState::new(),
            per_shard: capacity.div_ceil(SHARDS),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, sealed: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(sealed) as usize) % self.shards.len();
        // A poisoned shard only means a panic elsewhere; the map stays consistent.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The prepared key of `sealed`, if it was opened for `user_id` recently.
    pub(crate) fn get(&self, user_id: &UserId, sealed: &[u8]) -> Option<Arc<TotpKey>> {
        if self.per_shard == 0 {
            return None;
        }
        let shard = self.shard(sealed);
        shard
            .map
            .get(sealed)
            .filter(|e| e.user_id == *user_id)
            .map(|e| Arc::clone(&e.key))
    }

    /// Keeps the prepared key of `sealed`, opened for `user_id`, evicting the oldest
    /// entry of its shard when full.
    pub(crate) fn insert(&self, user_id: &UserId, sealed: &[u8], key: Arc<TotpKey>) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(sealed);
        let entry = Entry {
            user_id: user_id.clone(),
            key,
        };
        if let Some(old) = shard.map.get_mut(sealed) {
            *old = entry;
            return;
        }
        while shard.map.len() >= self.per_shard {
            let Some(oldest) = shard.order.pop_front() else {
                break;
            };
            shard.map.remove(&oldest);
        }
        let blob: Box<[u8]> = sealed.into();
        shard.order.push_back(blob.clone());
        shard.map.insert(blob, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::totp::TotpPolicy;

    fn key() -> Arc<TotpKey> {
        Arc::new(TotpKey::new(&TotpPolicy::default(), &[7u8; 20]))
    }

    #[test]
    fn hits_only_for_the_account_it_was_opened_for() {
        let cache = PreparedKeys::new(64);
        let (alice, bob) = (UserId::new("alice"), UserId::new("bob"));
        cache.insert(&alice, b"blob", key());
        assert!(cache.get(&alice, b"blob").is_some());
        assert!(cache.get(&bob, b"blob").is_none());
        assert!(cache.get(&alice, b"other").is_none());
    }

    #[test]
    fn stays_bounded_and_evicts_the_oldest() {
        let cache = PreparedKeys::new(SHARDS * 2);
        let user = UserId::new("u");
        for i in 0..1000u32 {
            cache.insert(&user, &i.to_be_bytes(), key());
        }
        let kept: usize = cache
            .shards
            .iter()
            .map(|s| s.lock().unwrap().map.len())
            .sum();
        assert!(kept <= SHARDS * 2, "{kept} entries kept");
        assert!(cache.get(&user, &999u32.to_be_bytes()).is_some());
        assert!(cache.get(&user, &0u32.to_be_bytes()).is_none());
    }

    #[test]
    fn a_zero_capacity_keeps_nothing() {
        let cache = PreparedKeys::new(0);
        let user = UserId::new("u");
        cache.insert(&user, b"blob", key());
        assert!(cache.get(&user, b"blob").is_none());
    }
}
