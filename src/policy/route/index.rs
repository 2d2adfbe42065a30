//! The router's static index (`Index`: byte strings → ascending route ids, open addressing, one
//! flat allocation per part) and the word-at-a-time byte comparisons routing uses. Built at
//! config load, read on a shard thread without allocating.

use std::collections::HashMap;

use crate::policy::hash::{hash_bytes, hash_bytes_lower, lower8};
/// `a == b` for the short strings of paths, eight bytes at a time and inline, where a call to
/// `memcmp` would cost more than the comparison.
#[inline(always)]
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    same_words::<false>(a, b)
}

/// `a.eq_ignore_ascii_case(b)`, eight bytes at a time.
#[inline(always)]
pub(super) fn same_bytes_nocase(a: &[u8], b: &[u8]) -> bool {
    same_words::<true>(a, b)
}

#[inline(always)]
fn same_words<const FOLD: bool>(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let fold = |w: u64| if FOLD { lower8(w) } else { w };
    if n < 8 {
        // Up to seven bytes in one word: the first and last four, or bytes 0, n/2 and n - 1.
        let word = |s: &[u8]| match n {
            0 => 0,
            1..=3 => u64::from(s[0]) | u64::from(s[n / 2]) << 8 | u64::from(s[n - 1]) << 16,
            _ => {
                let (mut lo, mut hi) = ([0u8; 4], [0u8; 4]);
                lo.copy_from_slice(&s[..4]);
                hi.copy_from_slice(&s[n - 4..]);
                u64::from(u32::from_le_bytes(lo)) | u64::from(u32::from_le_bytes(hi)) << 32
            }
        };
        return fold(word(a)) == fold(word(b));
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        fold(u64::from_le_bytes(w))
    };
    let mut at = 0;
    while at + 8 < n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    word(a, n - 8) == word(b, n - 8) // the last eight, overlapping those already compared
}

/// A static open-addressing table from byte strings to ascending route ids, laid out flat so a
/// lookup touches one slot, then the key and the ids side by side.
#[derive(Debug)]
pub(super) struct Index {
    /// Power-of-two many slots, at most half of them used.
    slots: Box<[Slot]>,
    /// Every key, end to end.
    keys: Box<[u8]>,
    /// Every key's route ids, end to end.
    ids: Box<[u32]>,
    /// Keys compare ASCII case-insensitively (hosts).
    fold_case: bool,
}

/// One key: its hash, and where its bytes and its ids sit. No ids = a free slot.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    hash: u64,
    key_at: u32,
    key_len: u32,
    ids_at: u32,
    ids_len: u32,
}

const INDEX_SEED: u64 = 0x726f_7574_6573_2121;

impl Index {
    pub(super) fn new(keyed: &[(&[u8], u32)], fold_case: bool) -> Index {
        let mut grouped: Vec<(&[u8], Vec<u32>)> = Vec::new();
        let mut seen: HashMap<&[u8], usize> = HashMap::new();
        for &(key, id) in keyed {
            let n = *seen.entry(key).or_insert_with(|| {
                grouped.push((key, Vec::new()));
                grouped.len() - 1
            });
            grouped[n].1.push(id);
        }
        // Offsets are u32: keys beyond 4 GiB of key bytes (no real config) are left out.
        let mut total = 0usize;
        grouped.retain(|(key, _)| {
            total = total.saturating_add(key.len());
            total <= u32::MAX as usize
        });
        let size = (grouped.len() * 2).next_power_of_two();
        let mut index = Index {
            slots: vec![Slot::default(); size].into(),
            keys: grouped
                .iter()
                .flat_map(|(k, _)| k.iter().copied())
                .collect(),
            ids: grouped
                .iter()
                .flat_map(|(_, ids)| ids.iter().copied())
                .collect(),
            fold_case,
        };
        let (mut key_at, mut ids_at) = (0, 0);
        for (key, ids) in &grouped {
            let hash = index.hash(key);
            let mut s = hash as usize & (size - 1);
            while index.slots[s].ids_len != 0 {
                s = (s + 1) & (size - 1);
            }
            index.slots[s] = Slot {
                hash,
                key_at: key_at as u32,
                key_len: key.len() as u32,
                ids_at: ids_at as u32,
                ids_len: ids.len() as u32,
            };
            key_at += key.len();
            ids_at += ids.len();
        }
        index
    }

    #[inline(always)]
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        match self.fold_case {
            true => hash_bytes_lower(INDEX_SEED, key),
            false => hash_bytes(INDEX_SEED, key),
        }
    }

    /// Route ids stored under `key`, ascending; empty when none.
    #[inline(always)]
    pub(super) fn get(&self, key: &[u8]) -> &[u32] {
        if self.ids.is_empty() {
            return &[];
        }
        let mask = self.slots.len() - 1;
        let h = self.hash(key);
        let mut s = h as usize & mask;
        loop {
            let slot = self.slots[s];
            if slot.ids_len == 0 {
                return &[];
            }
            if slot.hash == h {
                let at = slot.key_at as usize;
                let stored = &self.keys[at..at + slot.key_len as usize];
                let same = match self.fold_case {
                    true => same_bytes_nocase(stored, key),
                    false => same_bytes(stored, key),
                };
                if same {
                    let at = slot.ids_at as usize;
                    return &self.ids[at..at + slot.ids_len as usize];
                }
            }
            s = (s + 1) & mask;
        }
    }
}
