//! The groups of a fold (`fold.rs`): each group's key, hash and flags in a vector, in order
//! of arrival, found by the hash of their key through an index whose lookups can be
//! *prefetched*.
//!
//! At a million groups nothing of a fold fits in cache, and each row costs several
//! dependent cache misses: the index, the group's key, its accumulators. A fold with many
//! groups therefore looks its rows up in a pipeline (`fold.rs`): it asks for the index entry
//! of a row some rows ahead of the one it folds ([`Groups::prefetch_index`]), then for the
//! group that entry most likely names ([`Groups::prefetch_group`]), so the misses of several
//! rows overlap instead of following each other. `hashbrown`, which the rest of the runtime
//! uses, does not say where a hash's entry lies, so this index is its own: open addressing
//! with linear probing, at most half full, of 8-byte entries that hold a tag of the hash
//! (its top 24 bits) and the group's number (its low 40 bits, plus one; 0 is empty). A probe
//! mostly stays in its first cache line, and a tag mismatch costs no visit to a key.

use crate::rules::Outcome;
use crate::value::Packed;

/// One group: its key, the key's hash (to grow the index without hashing every key again)
/// and its flags, together so that finding a group and marking it costs one cache miss. Its
/// accumulators live in the fold, so a group costs no allocation of its own.
pub(crate) struct GroupSlot {
    pub(crate) key: Packed,
    pub(crate) hash: u64,
    pub(crate) flags: GroupFlags,
}

#[derive(Clone, Copy)]
pub(crate) struct GroupFlags {
    pub(crate) failed: bool,
    /// What the group showed after its last change: `None` before its first, else whether it
    /// showed its failure (`Some(true)`) or the result of its shown accumulators.
    pub(crate) shown: Option<bool>,
    /// Whether the current tick brought the group rows.
    pub(crate) touched: bool,
    /// What `having` made of the group at its last change, when that decides its row
    /// (`Group::outcome_decides`; `shown` is not used then).
    pub(crate) outcome: Option<Outcome>,
}

impl GroupFlags {
    const NEW: GroupFlags = GroupFlags { failed: false, shown: None, touched: false, outcome: None };
}

const NUMBER: u64 = (1 << 40) - 1;
const TAG: u64 = !NUMBER;

/// The groups, and the index that finds them.
pub(crate) struct Groups {
    pub(crate) slots: Vec<GroupSlot>,
    /// While there are fewer than `large_from` groups, `hashbrown`'s table of group numbers,
    /// whose probes are the faster while everything is in cache.
    small: hashbrown::HashTable<u32>,
    /// From `large_from` groups on, the prefetchable index: a power of two long, at most half of
    /// it used (empty before).
    index: Vec<u64>,
    large_from: usize,
}

/// The groups from which a fold's groups take the prefetchable index (and the fold its
/// pipeline): beyond them they no longer fit in a core's caches.
pub(crate) const LARGE: usize = 1 << 15;

impl Default for Groups {
    fn default() -> Groups {
        Groups::new(LARGE)
    }
}

impl Groups {
    /// Groups that take the prefetchable index from `large` groups on.
    pub(crate) fn new(large: usize) -> Groups {
        Groups { slots: Vec::new(), small: hashbrown::HashTable::new(), index: Vec::new(), large_from: large }
    }

    /// Whether the groups are found through the prefetchable index, so a caller should
    /// prefetch ahead.
    pub(crate) fn large(&self) -> bool {
        !self.index.is_empty()
    }

    fn home(&self, hash: u64) -> usize {
        (hash as usize) & self.index.len().wrapping_sub(1)
    }

    /// Asks the processor to bring the index entry of `hash` into cache.
    pub(crate) fn prefetch_index(&self, hash: u64) {
        if !self.index.is_empty() {
            prefetch(self.index.as_ptr().wrapping_add(self.home(hash)));
        }
    }

    /// Asks the processor to bring into cache the group that `hash`'s index entry most
    /// likely names (the first whose tag matches), and returns its number for the caller
    /// to prefetch what else it keeps of it. Only a hint: [`Groups::find_or_insert`] decides.
    pub(crate) fn prefetch_group(&self, hash: u64) -> Option<usize> {
        let mask = self.index.len().wrapping_sub(1);
        let mut i = self.home(hash);
        loop {
            let e = *self.index.get(i)?;
            if e == 0 {
                return None;
            }
            if e & TAG == hash & TAG {
                let g = ((e & NUMBER) - 1) as usize;
                prefetch(self.slots.as_ptr().wrapping_add(g));
                return Some(g);
            }
            i = (i + 1) & mask;
        }
    }

    /// The number of the group with `key` (whose hash is `hash`), and whether it is new: a
    /// new group is added with cleared flags.
    pub(crate) fn find_or_insert(&mut self, key: Packed, hash: u64) -> (usize, bool) {
        if self.index.is_empty() {
            if let (true, Ok(next)) = (self.slots.len() < self.large_from, u32::try_from(self.slots.len())) {
                let slots = &mut self.slots;
                let same = |j: &u32| slots.get(*j as usize).is_some_and(|g| g.key == key);
                let rehash = |j: &u32| slots.get(*j as usize).map_or(0, |g| g.hash);
                return match self.small.entry(hash, same, rehash) {
                    hashbrown::hash_table::Entry::Occupied(e) => (*e.get() as usize, false),
                    hashbrown::hash_table::Entry::Vacant(e) => {
                        e.insert(next);
                        slots.push(GroupSlot { key, hash, flags: GroupFlags::NEW });
                        (next as usize, true)
                    }
                };
            }
            self.small = hashbrown::HashTable::new();
        }
        if (self.slots.len() + 1) * 2 > self.index.len() {
            self.grow();
        }
        let mask = self.index.len() - 1;
        let mut i = self.home(hash);
        // The index is at most half full, so the probe ends at an empty entry.
        loop {
            let e = self.index.get(i).copied().unwrap_or(0);
            if e == 0 {
                let g = self.slots.len();
                if let Some(e) = self.index.get_mut(i) {
                    *e = (hash & TAG) | (g as u64 + 1);
                }
                self.slots.push(GroupSlot { key, hash, flags: GroupFlags::NEW });
                return (g, true);
            }
            if e & TAG == hash & TAG {
                let g = ((e & NUMBER) - 1) as usize;
                if self.slots.get(g).is_some_and(|s| s.key == key) {
                    return (g, false);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Doubles the index (to at least twice the groups) and enters every group again by its
    /// hash.
    fn grow(&mut self) {
        let len = (self.index.len() * 2).max(16).max((self.slots.len() * 2).next_power_of_two());
        self.index = vec![0; len];
        let mask = len - 1;
        for (g, slot) in self.slots.iter().enumerate() {
            let mut i = (slot.hash as usize) & mask;
            while let Some(e) = self.index.get_mut(i) {
                if *e == 0 {
                    *e = (slot.hash & TAG) | (g as u64 + 1);
                    break;
                }
                i = (i + 1) & mask;
            }
        }
    }
}

/// Asks the processor to bring the cache line at `p` into its caches; a hint that never
/// faults, whatever `p` is. Elsewhere than on x86-64, it does nothing.
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs the `sse` target feature, which every x86-64 processor
    // has (it is in the baseline target). A prefetch reads nothing and never faults, so any
    // address is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the kernel to back the whole 2 MB pages within `words` with huge pages, before
/// they are first touched: a large table read at random (`colfold.rs`) then costs a
/// translation miss and a page fault per 2 MB, not per 4 kB. Only a hint (the kernel may
/// decline, as with transparent huge pages off); on other systems nothing.
pub(crate) fn advise_huge(words: &[u64]) {
    const HUGE: usize = 2 << 20;
    let start = words.as_ptr() as usize;
    let (from, to) = (start.next_multiple_of(HUGE), (start + std::mem::size_of_val(words)) & !(HUGE - 1));
    #[cfg(target_os = "linux")]
    if to > from {
        // SAFETY: `madvise` with `MADV_HUGEPAGE` on whole pages that `words` owns changes
        // neither their contents nor whether they are mapped, only how the kernel backs them.
        unsafe {
            libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (from, to);
}

#[cfg(test)]
mod tests {
    use super::Groups;
    use crate::value::Packed;

    /// Against a map, with hashes chosen to collide (same home, same tag, or both), across
    /// the change of index and several growths of the prefetchable one.
    #[test]
    fn finds_every_group_again_and_adds_each_key_once() {
        // The prefetchable index from 100 groups on.
        let mut groups = Groups::new(100);
        let mut oracle = std::collections::HashMap::new();
        for round in 0..3u64 {
            for k in 0..5000u64 {
                // Few distinct homes and tags, so probes run long and tags collide.
                let hash = ((k % 7) << 40) | (k % 13);
                let key = Packed::Four([k, 0, 0, 0]);
                let (g, new) = groups.find_or_insert(key, hash);
                let expected = *oracle.entry(k).or_insert(g);
                assert_eq!(g, expected, "key {k} round {round}");
                assert_eq!(new, round == 0, "key {k} round {round}");
                if groups.large() {
                    let hinted = groups.prefetch_group(hash).and_then(|h| groups.slots.get(h)).map(|s| s.hash);
                    assert_eq!(hinted.map(|h| h >> 40), Some(hash >> 40));
                }
            }
        }
        assert_eq!(groups.slots.len(), 5000);
        assert!(groups.index.len() >= 10_000 && groups.index.len().is_power_of_two());
    }
}
