//! Raw byte keys to series, for the fast parsers' lookup of each row's series, laid out so that a batch of
//! rows can have their keys brought into the CPU caches together before any is compared.
//!
//! Why: on a large month the keys (about 300 bytes each for a Usage API record: subscription, meter and the
//! raw `instanceData`) do not fit the core's caches, and rows come in random order, so each lookup waits on
//! memory twice (the table's slot, then the key's bytes). A row-by-row lookup waits for each in turn; here a
//! caller hashes a batch first ([`KeyIndex::hash`]), then touches every candidate key ([`KeyIndex::touch_all`]) (loads
//! that do not depend on one another, so the CPU overlaps their waits), and only then compares
//! ([`KeyIndex::get`]), from the cache. Touching changes nothing: it only reads.
//!
//! The table holds 12 bytes a key (where the key starts in one byte arena, its length, and its series), so it
//! stays in the caches; the keys sit one after another in the arena. Memory is bounded: past [`MAX_KEYS`] keys or
//! [`MAX_ARENA_BYTES`] bytes the index is cleared and refilled (a key found again is simply added again).

use std::hash::{BuildHasher, Hasher};

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::rating::SeriesId;

/// The parts of a key (their boundaries count: `("ab", "c")` differs from `("a", "bc")`).
pub(crate) type Key<'k> = [&'k [u8]; 3];

/// Keys remembered, at most.
pub(crate) const MAX_KEYS: usize = 1 << 20;
/// Bytes of keys remembered, at most.
pub(crate) const MAX_ARENA_BYTES: usize = 64 << 20;
/// Each key in the arena starts with its parts' lengths, as `u32`s.
const HEADER: usize = 12;
const LINE: usize = 64;

/// Where a key sits in the arena (its length counts the header), and its series.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: u32,
    length: u32,
    series: SeriesId,
}

/// The bytes of each part that go into a key's hash (all of them, or their ends: see [`KeyIndex::hashing_ends`]).
#[derive(Debug, Clone, Copy, Default)]
struct Hashed {
    /// For each part, how many of its last bytes are hashed (`usize::MAX`: all).
    ends: [usize; 3],
}

/// See the module documentation.
pub(crate) struct KeyIndex {
    table: HashTable<Entry>,
    arena: Vec<u8>,
    hasher: DefaultHashBuilder,
    selection: Hashed,
}

impl Default for KeyIndex {
    fn default() -> Self {
        Self::hashing_ends([usize::MAX; 3])
    }
}

fn hash_key(hasher: &DefaultHashBuilder, selection: Hashed, key: Key<'_>) -> u64 {
    let mut state = hasher.build_hasher();
    for (part, end) in key.into_iter().zip(selection.ends) {
        state.write(&part[part.len().saturating_sub(end)..]);
        state.write_usize(part.len());
    }
    state.finish()
}

fn length_at(arena: &[u8], at: usize) -> usize {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&arena[at..at + 4]);
    u32::from_le_bytes(bytes) as usize
}

/// The key stored at `offset`.
fn key_at(arena: &[u8], offset: u32) -> Key<'_> {
    let start = offset as usize;
    let lengths = [length_at(arena, start), length_at(arena, start + 4), length_at(arena, start + 8)];
    let mut at = start + HEADER;
    lengths.map(|length| {
        let part = &arena[at..at + length];
        at += length;
        part
    })
}

impl KeyIndex {
    /// An index that hashes only the last `ends[i]` bytes of part `i` (and every part's length): for keys
    /// whose parts differ at their ends, such as resource ids, whose start repeats the subscription. Equality
    /// still compares every byte.
    pub fn hashing_ends(ends: [usize; 3]) -> Self {
        Self {
            table: HashTable::new(),
            arena: Vec::new(),
            hasher: DefaultHashBuilder::default(),
            selection: Hashed { ends },
        }
    }

    /// The hash of `key`, to pass to the other methods.
    pub fn hash(&self, key: Key<'_>) -> u64 {
        hash_key(&self.hasher, self.selection, key)
    }

    /// Read one byte of every cache line of the keys most likely stored under `hashes`, so they are in the CPU
    /// caches when compared. Changes nothing.
    pub fn touch_all(&self, hashes: impl IntoIterator<Item = u64>) {
        // The entry tells the key's length: every line is asked for at once, none waits for the header. The
        // folded bytes go to `black_box`, so the reads stay.
        let folded = hashes.into_iter().fold(0u8, |folded, hash| {
            self.table.find(hash, |_| true).map_or(folded, |entry| {
                let start = entry.offset as usize;
                self.arena[start..start + entry.length as usize]
                    .iter()
                    .step_by(LINE)
                    .fold(folded, |folded, &byte| folded ^ byte)
            })
        });
        std::hint::black_box(folded);
    }

    /// The series of `key` (whose hash is `hash`), if remembered.
    pub fn get(&self, hash: u64, key: Key<'_>) -> Option<SeriesId> {
        self.table.find(hash, |entry| key_at(&self.arena, entry.offset) == key).map(|entry| entry.series)
    }

    /// Remember the series of `key` (not remembered yet; `hash` is its hash). A key too large for the arena
    /// is not remembered.
    pub fn insert(&mut self, hash: u64, key: Key<'_>, series: SeriesId) {
        let length = key.iter().map(|part| part.len()).sum::<usize>();
        if HEADER + length > MAX_ARENA_BYTES {
            return;
        }
        if self.table.len() >= MAX_KEYS || self.arena.len() + HEADER + length > MAX_ARENA_BYTES {
            self.table.clear();
            self.arena.clear();
        }
        // The arena stays under MAX_ARENA_BYTES, and so do offsets and lengths: they fit u32.
        let offset = u32::try_from(self.arena.len()).unwrap_or(u32::MAX);
        for part in key {
            self.arena.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_le_bytes());
        }
        for part in key {
            self.arena.extend_from_slice(part);
        }
        let length = u32::try_from(HEADER + length).unwrap_or(u32::MAX);
        let Self { table, arena, hasher, selection } = self;
        table.insert_unique(hash, Entry { offset, length, series }, |entry| {
            hash_key(hasher, *selection, key_at(arena, entry.offset))
        });
    }

    /// Keys remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    type OwnedKey = (Vec<u8>, Vec<u8>, Vec<u8>);

    fn series(index: u32) -> SeriesId {
        SeriesId::from_index(index)
    }

    proptest! {
        /// The index answers like a map of owned keys: part boundaries count, and touching changes nothing.
        #[test]
        fn answers_like_a_map(
            keys in proptest::collection::vec(
                (proptest::collection::vec(0u8..3, 0..4), proptest::collection::vec(0u8..3, 0..4), proptest::collection::vec(any::<u8>(), 0..200)),
                1..60,
            ),
            ends_only: bool,
        ) {
            let mut index = if ends_only { KeyIndex::hashing_ends([1, usize::MAX, 2]) } else { KeyIndex::default() };
            let mut oracle: HashMap<OwnedKey, SeriesId> = HashMap::new();
            for (number, (a, b, c)) in keys.iter().enumerate() {
                let key: Key<'_> = [a, b, c];
                let hash = index.hash(key);
                index.touch_all([hash]);
                prop_assert_eq!(index.get(hash, key), oracle.get(&(a.clone(), b.clone(), c.clone())).copied());
                if index.get(hash, key).is_none() {
                    let value = series(u32::try_from(number).unwrap());
                    index.insert(hash, key, value);
                    oracle.insert((a.clone(), b.clone(), c.clone()), value);
                }
            }
            prop_assert_eq!(index.len(), oracle.len());
            for ((a, b, c), value) in &oracle {
                let key: Key<'_> = [a, b, c];
                prop_assert_eq!(index.get(index.hash(key), key), Some(*value));
            }
        }
    }

    #[test]
    fn a_full_arena_is_cleared_and_refilled() {
        let mut index = KeyIndex::default();
        let big = vec![7u8; MAX_ARENA_BYTES / 4];
        for number in 0..4u8 {
            let tag = [number];
            let key: Key<'_> = [&tag, b"", &big];
            index.insert(index.hash(key), key, series(u32::from(number)));
        }
        // The fourth key did not fit with three others: the index started over with it.
        assert_eq!(index.len(), 1);
        let key: Key<'_> = [&[3], b"", &big];
        assert_eq!(index.get(index.hash(key), key), Some(series(3)));
        let too_big = vec![0u8; MAX_ARENA_BYTES];
        let key: Key<'_> = [b"x", b"", &too_big];
        index.insert(index.hash(key), key, series(9));
        assert_eq!(index.get(index.hash(key), key), None);
        assert_eq!(index.len(), 1);
    }
}
