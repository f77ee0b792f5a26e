//! Host names interned as small integers, and sets of them as bitsets.
//!
//! A 100,000-host fleet is resolved, intersected and filtered many times while compiling;
//! integers and bitsets keep that to a few milliseconds and make order explicit: a host's id
//! is its rank of first appearance.

use std::collections::HashMap;

/// A host, as its rank of first appearance in the config (then the targets).
pub type HostId = u32;

/// Every host name seen, in order of first appearance.
#[derive(Debug, Default, Clone)]
pub struct HostTable {
    names: Vec<String>,
    index: HashMap<String, HostId>,
}

impl HostTable {
    /// The id of `name`, adding it when it is new (only then is anything allocated).
    pub fn intern(&mut self, name: &str) -> HostId {
        if let Some(&id) = self.index.get(name) {
            return id;
        }
        let id = HostId::try_from(self.names.len()).expect("fewer than 2^32 hosts");
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), id);
        id
    }

    pub fn get(&self, name: &str) -> Option<HostId> {
        self.index.get(name).copied()
    }

    pub fn name(&self, id: HostId) -> &str {
        &self.names[id as usize]
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn ids(&self) -> std::ops::Range<HostId> {
        0..self.names.len() as HostId
    }
}

/// A set of hosts as a bitset over host ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSet {
    words: Vec<u64>,
}

impl HostSet {
    pub fn with_capacity(hosts: usize) -> HostSet {
        HostSet {
            words: vec![0; hosts.div_ceil(64)],
        }
    }

    pub fn of(ids: &[HostId], capacity: usize) -> HostSet {
        let mut set = HostSet::with_capacity(capacity);
        for &id in ids {
            set.insert(id);
        }
        set
    }

    /// Adds `id`; true when it was not there yet.
    pub fn insert(&mut self, id: HostId) -> bool {
        let (word, bit) = (id as usize / 64, id % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let was = self.words[word] & (1 << bit) != 0;
        self.words[word] |= 1 << bit;
        !was
    }

    pub fn contains(&self, id: HostId) -> bool {
        self.words
            .get(id as usize / 64)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }
}

/// Keeps the first occurrence of each id, in order.
pub fn dedup_in_order(ids: impl IntoIterator<Item = HostId>, capacity: usize) -> Vec<HostId> {
    let mut seen = HostSet::with_capacity(capacity);
    ids.into_iter().filter(|&id| seen.insert(id)).collect()
}
