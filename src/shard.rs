//! A hash table split into shards, each behind its own lock: no lock is global, and the caller
//! hashes a key once and passes the hash to every call.
//!
//! Entries keep no hash beside them: a table slot is the entry alone, and growing a shard hashes
//! each entry's key again ([`Keyed`]). Hashes are 32 bits, widened to the 64 the tables take
//! ([`widen`]), so that another table can point to an entry with 4 bytes.

use std::hash::{BuildHasher, Hash, Hasher};

use hashbrown::hash_table::{Entry, HashTable};
use parking_lot::RwLock;

/// Shards per table: enough that two cores rarely meet on one lock, few enough to stay small.
const SHARDS: usize = 64;

/// What a table entry is found by.
pub(crate) trait Keyed {
    /// The bytes the entry is hashed by.
    fn key(&self) -> &[u8];
}

/// Bytes hashed as they are, without the length prefix a slice's `Hash` adds (foldhash's `write`
/// mixes the length in).
struct Bytes<'a>(&'a [u8]);

impl Hash for Bytes<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.0);
    }
}

/// A 32-bit hash spread over the 64 bits a table takes: its low bits pick the bucket, its top 7
/// the tag, and bits 32 and up the shard.
#[inline]
pub(crate) fn widen(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The low half of foldhash's hash of `key`.
#[inline]
fn hash32(hasher: &foldhash::fast::RandomState, key: &[u8]) -> u32 {
    hasher.hash_one(Bytes(key)) as u32
}

pub(crate) struct ShardedTable<T> {
    hasher: foldhash::fast::RandomState,
    shards: Box<[RwLock<HashTable<T>>]>,
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
    /// How many entries there are.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }
}

impl<T: Keyed> ShardedTable<T> {
    /// The 32-bit hash of `key`, with this table's random seed; [`widen`] it for the table.
    #[inline]
    pub(crate) fn hash32(&self, key: &[u8]) -> u32 {
        hash32(&self.hasher, key)
    }

    /// The hash of `key` as the table takes it: `widen(self.hash32(key))`.
    #[inline]
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        widen(self.hash32(key))
    }

    #[inline]
    fn shard(&self, hash: u64) -> &RwLock<HashTable<T>> {
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
        f(shard.find(hash, eq))
    }

    /// Runs `f` on the entry that `eq` picks, under its shard's write lock.
    pub(crate) fn update<R>(
        &self,
        hash: u64,
        eq: impl Fn(&T) -> bool,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        let mut shard = self.shard(hash).write();
        shard.find_mut(hash, eq).map(f)
    }

    /// Inserts or replaces the entry that `eq` picks; returns the one replaced.
    pub(crate) fn insert(&self, hash: u64, eq: impl Fn(&T) -> bool, value: T) -> Option<T> {
        let mut shard = self.shard(hash).write();
        let hasher = &self.hasher;
        match shard.entry(hash, eq, |e| widen(hash32(hasher, e.key()))) {
            Entry::Occupied(mut o) => Some(std::mem::replace(o.get_mut(), value)),
            Entry::Vacant(v) => {
                v.insert(value);
                None
            }
        }
    }

    /// Removes the entry that `eq` picks.
    pub(crate) fn remove(&self, hash: u64, eq: impl Fn(&T) -> bool) -> Option<T> {
        let mut shard = self.shard(hash).write();
        match shard.find_entry(hash, eq) {
            Ok(o) => Some(o.remove().0),
            Err(_) => None,
        }
    }

    /// Calls `f` on every entry, one shard at a time under its read lock.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&T)) {
        for shard in self.shards.iter() {
            shard.read().iter().for_each(&mut f);
        }
    }

    /// Calls `f` on every entry, one shard at a time under its write lock.
    pub(crate) fn for_each_mut(&self, mut f: impl FnMut(&mut T)) {
        for shard in self.shards.iter() {
            shard.write().iter_mut().for_each(&mut f);
        }
    }

    /// Keeps only the entries for which `keep` is true, one shard at a time; returns how many
    /// were removed.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&mut T) -> bool) -> usize {
        let mut removed = 0;
        let hasher = &self.hasher;
        for shard in self.shards.iter() {
            let mut shard = shard.write();
            let before = shard.len();
            shard.retain(&mut keep);
            removed += before - shard.len();
            if shard.capacity() > 64 && shard.len() < shard.capacity() / 4 {
                shard.shrink_to_fit(|e| widen(hash32(hasher, e.key())));
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Keyed for (String, u32) {
        fn key(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }

    #[test]
    fn insert_read_remove_retain() {
        let t: ShardedTable<(String, u32)> = ShardedTable::default();
        for i in 0..1000u32 {
            let k = format!("k{i}");
            let h = t.hash(k.as_bytes());
            assert!(t.insert(h, |e| e.0 == k, (k.clone(), i)).is_none());
        }
        assert_eq!(t.len(), 1000);
        // Grown several times, every entry is still found by its hash.
        for i in 0..1000u32 {
            let k = format!("k{i}");
            let h = t.hash(k.as_bytes());
            assert_eq!(t.read(h, |e| e.0 == k, |e| e.map(|e| e.1)), Some(i));
        }
        let h = t.hash(b"k7");
        assert_eq!(t.read(h, |e| e.0 == "k7", |e| e.map(|e| e.1)), Some(7));
        assert_eq!(
            t.insert(h, |e| e.0 == "k7", ("k7".into(), 70)).map(|e| e.1),
            Some(7)
        );
        assert_eq!(t.update(h, |e| e.0 == "k7", |e| e.1 += 1), Some(()));
        assert_eq!(t.remove(h, |e| e.0 == "k7").map(|e| e.1), Some(71));
        assert!(!t.read(h, |e| e.0 == "k7", |e| e.is_some()));
        assert_eq!(t.update(h, |e| e.0 == "k7", |e| e.1), None);
        let h = t.hash(b"new");
        assert!(t.insert(h, |e| e.0 == "new", ("new".into(), 5)).is_none());
        assert_eq!(t.read(h, |e| e.0 == "new", |e| e.map(|e| e.1)), Some(5));
        assert_eq!(t.retain(|e| e.1 % 2 == 0), 500);
        assert_eq!(t.len(), 500);
        let mut sum = 0;
        t.for_each(|e| sum += u64::from(e.1));
        t.for_each_mut(|e| e.1 += 1);
        let mut after = 0;
        t.for_each(|e| after += u64::from(e.1));
        assert_eq!(after, sum + 500);
    }

    #[test]
    fn widened_hashes_spread_over_shards_and_buckets() {
        let t: ShardedTable<(String, u32)> = ShardedTable::default();
        let mut shards = [0u32; SHARDS];
        let mut low = [0u32; 64];
        for i in 0..64_000u32 {
            let h = t.hash(format!("v{i}").as_bytes());
            shards[((h >> 32) as usize) % SHARDS] += 1;
            low[(h & 63) as usize] += 1;
        }
        // About 1,000 each; a widening that kept bits together would leave some empty.
        assert!(
            shards.iter().all(|&n| (700..1300).contains(&n)),
            "{shards:?}"
        );
        assert!(low.iter().all(|&n| (700..1300).contains(&n)), "{low:?}");
    }
}
