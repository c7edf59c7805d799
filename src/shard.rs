//! A hash table split into shards, each behind its own lock: no lock is global, and the caller
//! hashes a key once and passes the hash to every call.

use std::hash::{BuildHasher, Hash};

use hashbrown::hash_table::{Entry, HashTable};
use parking_lot::RwLock;

/// Shards per table: enough that two cores rarely meet on one lock, few enough to stay small.
const SHARDS: usize = 64;

/// Entries know their hash, so growing a shard rehashes nothing.
pub(crate) struct Slot<T> {
    pub(crate) hash: u64,
    pub(crate) value: T,
}

pub(crate) struct ShardedTable<T> {
    hasher: foldhash::fast::RandomState,
    shards: Box<[RwLock<HashTable<Slot<T>>>]>,
}

impl<T> std::fmt::Debug for ShardedTable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedTable")
            .field("len", &self.len())
            .finish()
    }
}

impl<T> Default for ShardedTable<T> {
    fn default() -> Self {
        Self {
            hasher: foldhash::fast::RandomState::default(),
            shards: (0..SHARDS).map(|_| RwLock::new(HashTable::new())).collect(),
        }
    }
}

impl<T> ShardedTable<T> {
    /// The hash of `key`, with this table's random seed.
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn shard(&self, hash: u64) -> &RwLock<HashTable<Slot<T>>> {
        // The table uses the hash's low bits for buckets and its top 7 for tags: take others.
        &self.shards[((hash >> 32) as usize) % SHARDS]
    }

    /// Runs `f` on the entry that `eq` picks, under its shard's read lock.
    #[inline]
    pub(crate) fn read<R>(
        &self,
        hash: u64,
        eq: impl Fn(&T) -> bool,
        f: impl FnOnce(Option<&T>) -> R,
    ) -> R {
        let shard = self.shard(hash).read();
        f(shard
            .find(hash, |s| s.hash == hash && eq(&s.value))
            .map(|s| &s.value))
    }

    /// Inserts or replaces the entry that `eq` picks; returns the one replaced.
    pub(crate) fn insert(&self, hash: u64, eq: impl Fn(&T) -> bool, value: T) -> Option<T> {
        let mut shard = self.shard(hash).write();
        match shard.entry(hash, |s| s.hash == hash && eq(&s.value), |s| s.hash) {
            Entry::Occupied(mut o) => Some(std::mem::replace(&mut o.get_mut().value, value)),
            Entry::Vacant(v) => {
                v.insert(Slot { hash, value });
                None
            }
        }
    }

    /// Removes the entry that `eq` picks.
    pub(crate) fn remove(&self, hash: u64, eq: impl Fn(&T) -> bool) -> Option<T> {
        let mut shard = self.shard(hash).write();
        match shard.find_entry(hash, |s| s.hash == hash && eq(&s.value)) {
            Ok(o) => Some(o.remove().0.value),
            Err(_) => None,
        }
    }

    /// Keeps only the entries for which `keep` is true, one shard at a time; returns how many
    /// were removed.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&mut T) -> bool) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            let before = shard.len();
            shard.retain(|s| keep(&mut s.value));
            removed += before - shard.len();
            if shard.capacity() > 64 && shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit(|s| s.hash);
            }
        }
        removed
    }

    /// How many entries there are.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_read_remove_retain() {
        let t: ShardedTable<(String, u32)> = ShardedTable::default();
        for i in 0..1000u32 {
            let k = format!("k{i}");
            let h = t.hash(k.as_str());
            assert!(t.insert(h, |e| e.0 == k, (k.clone(), i)).is_none());
        }
        assert_eq!(t.len(), 1000);
        let h = t.hash("k7");
        assert_eq!(t.read(h, |e| e.0 == "k7", |e| e.map(|e| e.1)), Some(7));
        assert_eq!(
            t.insert(h, |e| e.0 == "k7", ("k7".into(), 70)).map(|e| e.1),
            Some(7)
        );
        assert_eq!(t.remove(h, |e| e.0 == "k7").map(|e| e.1), Some(70));
        assert!(!t.read(h, |e| e.0 == "k7", |e| e.is_some()));
        let h = t.hash("new");
        assert!(t.insert(h, |e| e.0 == "new", ("new".into(), 5)).is_none());
        assert_eq!(t.read(h, |e| e.0 == "new", |e| e.map(|e| e.1)), Some(5));
        assert_eq!(t.retain(|e| e.1 % 2 == 0), 500);
        assert_eq!(t.len(), 500);
    }
}
