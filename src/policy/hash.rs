//! The small non-cryptographic hash the per-request policy modules share: `balance` (Maglev
//! table and hashed keys), `route` (the host and path index) and `ratelimit` (bucket slots and
//! keys). Pure code, called on shard threads; wyhash-style folded multiplies over 8-byte words,
//! with a variant that lower-cases ASCII on the fly so case-insensitive keys need no copy.

/// Folded multiply: the two halves of the 128-bit product xor-ed, the mixing step of wyhash-style
/// hashes.
#[inline]
pub(crate) fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A fast non-cryptographic 64-bit hash of `bytes`, keyed by `seed` (keep the seed secret where
/// inputs are hostile).
#[inline]
pub(crate) fn hash_bytes(seed: u64, bytes: &[u8]) -> u64 {
    hash_words::<false>(seed, bytes)
}

/// [`hash_bytes`] of the ASCII-lower-cased bytes, without copying them.
pub(crate) fn hash_bytes_lower(seed: u64, bytes: &[u8]) -> u64 {
    hash_words::<true>(seed, bytes)
}

const K1: u64 = 0xe703_7ed1_a0b4_28db;
const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
const K3: u64 = 0x5899_65cc_7537_4cc3;

#[inline(always)]
fn hash_words<const LOWER: bool>(seed: u64, b: &[u8]) -> u64 {
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[at..at + 8]);
        let w = u64::from_le_bytes(w);
        if LOWER {
            lower8(w)
        } else {
            w
        }
    };
    let byte = |at: usize| {
        u64::from(if LOWER {
            b[at].to_ascii_lowercase()
        } else {
            b[at]
        })
    };
    let len = b.len();
    let s1 = seed ^ K1;
    let s2 = seed.rotate_left(32) ^ K2;
    let (x, y) = if len >= 16 {
        let mut h = s2;
        let mut at = 0;
        while at + 16 < len {
            h = fold_mul(word(at) ^ s1, word(at + 8) ^ h);
            at += 16;
        }
        (word(len - 16) ^ h, word(len - 8))
    } else if len >= 8 {
        (word(0), word(len - 8))
    } else if len >= 4 {
        let half = |at: usize| (0..4).fold(0, |acc, k| acc | byte(at + k) << (8 * k));
        (half(0), half(len - 4))
    } else if len > 0 {
        (byte(0) << 16 | byte(len / 2) << 8 | byte(len - 1), 0)
    } else {
        (0, 0)
    };
    fold_mul(fold_mul(x ^ s1, y ^ s2), K3 ^ len as u64)
}

/// ASCII-lower-cases eight bytes at once: adds 0x20 to each byte in `A..=Z`, leaves the rest.
#[inline(always)]
pub(crate) fn lower8(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let h = w & LOW7;
    let ge_a = h + 0x3f3f_3f3f_3f3f_3f3f; // high bit set where byte >= b'A'
    let gt_z = h + 0x2525_2525_2525_2525; // high bit set where byte > b'Z'
    let upper = ge_a & !gt_z & !w & HIGH;
    w | (upper >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_fold_case_and_differ() {
        let cases: [&[u8]; 6] = [
            b"",
            b"a",
            b"Host",
            b"Example.COM",
            b"API.example.com:80",
            &[0xC1; 40],
        ];
        for s in cases {
            let lower = s.to_ascii_lowercase();
            assert_eq!(hash_bytes_lower(1, s), hash_bytes(1, &lower), "{s:?}");
            assert_ne!(hash_bytes(1, s), hash_bytes(2, s), "{s:?}");
        }
        for w in [0u64, u64::MAX, 0x4041_5a5b_6061_7a7b, 0xc1c1_4141_c1c1_4141] {
            let want = u64::from_le_bytes(w.to_le_bytes().map(|b| b.to_ascii_lowercase()));
            assert_eq!(lower8(w), want, "{w:x}");
        }
        let mut seen = std::collections::HashSet::new();
        for k in 0..100_000u32 {
            assert!(seen.insert(hash_bytes(0, &k.to_le_bytes()[..3 + (k % 2) as usize])));
        }
    }
}
