//! Host names interned as small integers, and sets of them as bitsets.
//!
//! A 100,000-host fleet is resolved, intersected and filtered many times while compiling;
//! integers and bitsets keep that to a few milliseconds and make order explicit: a host's id
//! is its rank of first appearance.

use std::hash::BuildHasher;

/// A host, as its rank of first appearance in the config (then the targets).
pub type HostId = u32;

/// Every host name seen, in order of first appearance: the names one after another in one
/// string, and an index of ids hashed by name. A million hosts take 40-odd MB this way, where
/// a `String` per name, and another as the index's key, took over a hundred and one allocation
/// each.
#[derive(Debug, Default, Clone)]
pub struct HostTable {
    text: String,
    /// Where each name ends in `text`.
    ends: Vec<usize>,
    /// Each id with 32 bits of its name's hash: growing the index, and telling names apart
    /// in it, need no look at the names, and an entry is 8 bytes (a million hosts' index is
    /// 16 MB, not 32).
    index: hashbrown::HashTable<(HostId, u32)>,
    /// Seeded per process: host names come from inventories, and a fixed hash could be
    /// steered into collisions.
    hasher: foldhash::fast::RandomState,
    /// The id after the last one [`HostTable::intern`] gave.
    next: HostId,
}

/// The index's hash of a name: 32 bits of foldhash's, spread over 64 again by a multiply
/// (odd, so no two differ in the result), for hashbrown takes a bucket from the low bits and
/// a tag from the top ones.
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

fn name_at<'a>(text: &'a str, ends: &[usize], id: HostId) -> &'a str {
    let id = id as usize;
    let start = if id == 0 { 0 } else { ends[id - 1] };
    &text[start..ends[id]]
}

impl HostTable {
    /// The id of `name`, adding it when it is new.
    pub fn intern(&mut self, name: &str) -> HostId {
        let HostTable {
            text,
            ends,
            index,
            hasher,
            next,
        } = self;
        // Names often come again in the order they were first seen (a tag of ranges listing
        // hosts of earlier tags): the name after the last one is tried before the index.
        if (*next as usize) < ends.len() && name_at(text, ends, *next) == name {
            *next += 1;
            return *next - 1;
        }
        let hash = hasher.hash_one(name) as u32;
        let id = match index.entry(
            spread(hash),
            |&(id, h)| h == hash && name_at(text, ends, id) == name,
            |&(_, h)| spread(h),
        ) {
            hashbrown::hash_table::Entry::Occupied(entry) => entry.get().0,
            hashbrown::hash_table::Entry::Vacant(entry) => {
                let id = HostId::try_from(ends.len()).expect("fewer than 2^32 hosts");
                text.push_str(name);
                ends.push(text.len());
                entry.insert((id, hash));
                id
            }
        };
        *next = id + 1;
        id
    }

    /// Makes room for `more` new names of about `length` bytes each.
    pub fn reserve(&mut self, more: usize, length: usize) {
        self.text.reserve(more.saturating_mul(length));
        self.ends.reserve(more);
        self.index.reserve(more, |&(_, h)| spread(h));
    }

    pub fn get(&self, name: &str) -> Option<HostId> {
        let hash = self.hasher.hash_one(name) as u32;
        self.index
            .find(spread(hash), |&(id, h)| h == hash && self.name(id) == name)
            .map(|&(id, _)| id)
    }

    pub fn name(&self, id: HostId) -> &str {
        name_at(&self.text, &self.ends, id)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn ids(&self) -> std::ops::Range<HostId> {
        0..self.ends.len() as HostId
    }
}

/// A set of hosts: a bitset over host ids, or the sorted ids of a set small next to the
/// fleet. A config of 100,000 one-host tags keeps one set per tag: as bitsets over 100,000
/// hosts they took 1.3 GB, as sorted ids they take a few megabytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSet {
    Dense(Vec<u64>),
    Sparse(Vec<HostId>),
}

impl Default for HostSet {
    fn default() -> Self {
        HostSet::Dense(Vec::new())
    }
}

impl HostSet {
    pub fn with_capacity(hosts: usize) -> HostSet {
        HostSet::Dense(vec![0; hosts.div_ceil(64)])
    }

    /// The set of `ids`, among `capacity` hosts: sorted ids when they take less room than
    /// the bitset would (4 bytes an id against 1 bit a host).
    pub fn of(ids: &[HostId], capacity: usize) -> HostSet {
        if ids.len().saturating_mul(32) < capacity {
            let mut sorted = ids.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            return HostSet::Sparse(sorted);
        }
        let mut set = HostSet::with_capacity(capacity);
        for &id in ids {
            set.insert(id);
        }
        set
    }

    /// Adds `id`; true when it was not there yet.
    pub fn insert(&mut self, id: HostId) -> bool {
        match self {
            HostSet::Dense(words) => {
                let (word, bit) = (id as usize / 64, id % 64);
                if word >= words.len() {
                    words.resize(word + 1, 0);
                }
                let was = words[word] & (1 << bit) != 0;
                words[word] |= 1 << bit;
                !was
            }
            HostSet::Sparse(ids) => match ids.binary_search(&id) {
                Ok(_) => false,
                Err(at) => {
                    ids.insert(at, id);
                    true
                }
            },
        }
    }

    pub fn contains(&self, id: HostId) -> bool {
        match self {
            HostSet::Dense(words) => words
                .get(id as usize / 64)
                .is_some_and(|w| w & (1 << (id % 64)) != 0),
            HostSet::Sparse(ids) => ids.binary_search(&id).is_ok(),
        }
    }
}

/// Keeps the first occurrence of each id, in order.
pub fn dedup_in_order(ids: impl IntoIterator<Item = HostId>, capacity: usize) -> Vec<HostId> {
    let mut seen = HostSet::with_capacity(capacity);
    ids.into_iter().filter(|&id| seen.insert(id)).collect()
}

/// [`dedup_in_order`] of a list already made: one that rises all the way has no repeat, and
/// is kept as it is without a set (a tag of ranges, and a tag of such tags, mostly does).
pub fn dedup_list_in_order(ids: Vec<HostId>, capacity: usize) -> Vec<HostId> {
    if ids.windows(2).all(|pair| pair[0] < pair[1]) {
        return ids;
    }
    dedup_in_order(ids, capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_their_rank_of_first_appearance_and_keep_it() {
        let mut table = HostTable::default();
        table.reserve(2, 4);
        let names: Vec<String> = (0..10_000).map(|i| format!("h{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(table.intern(name), i as HostId);
        }
        // Again, and after growing well past what was reserved: the same ids.
        for (i, name) in names.iter().enumerate().rev() {
            assert_eq!(table.intern(name), i as HostId);
            assert_eq!(table.get(name), Some(i as HostId));
            assert_eq!(table.name(i as HostId), name);
        }
        assert_eq!(table.len(), names.len());
        assert_eq!(table.get("h10000"), None);
        assert_eq!(table.get(""), None);
        assert_eq!(table.intern(""), 10_000);
        assert_eq!(table.name(10_000), "");
        assert_eq!(table.name(9_999), "h9999");
    }

    proptest::proptest! {
        /// Whatever the order (runs of names seen before, in order or not, and new ones), a
        /// name's id is its rank of first appearance, as a list searched from the start says.
        #[test]
        fn an_id_is_the_rank_of_first_appearance(starts in proptest::collection::vec(0usize..40, 0..300)) {
            let pool: Vec<String> = (0..42).map(|i| format!("h{i}")).collect();
            let mut table = HostTable::default();
            let mut seen: Vec<&str> = Vec::new();
            for start in starts {
                for name in &pool[start..start + 3] {
                    let rank = match seen.iter().position(|s| s == name) {
                        Some(rank) => rank,
                        None => {
                            seen.push(name);
                            seen.len() - 1
                        }
                    };
                    proptest::prop_assert_eq!(table.intern(name), rank as HostId);
                }
            }
            proptest::prop_assert_eq!(table.len(), seen.len());
            for (rank, name) in seen.iter().enumerate() {
                proptest::prop_assert_eq!(table.name(rank as HostId), *name);
                proptest::prop_assert_eq!(table.get(name), Some(rank as HostId));
            }
        }
    }
}
