//! A fast, non-keyed hasher for the crate's small hot tables.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` hashed with [`FxHasher`].
pub(crate) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// FxHash (rustc's hasher): a multiply and a rotate per word. Not collision-resistant:
/// only for tables whose keys no peer chooses, or whose size is bounded.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Whole words, then the tail zero-padded to one, as `chunks(8)` would give them:
        // without a variable-length copy (a `memcpy` call per key).
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            // `chunks_exact(8)` yields 8 bytes.
            let word: [u8; 8] = word.try_into().unwrap_or_default();
            self.add(u64::from_le_bytes(word));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let word = tail
                .iter()
                .rev()
                .fold(0, |word, &byte| (word << 8) | u64::from(byte));
            self.add(word);
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(n.into());
    }

    fn write_u32(&mut self, n: u32) {
        self.add(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `write` hashes each 8-byte chunk as a little-endian word, the last one
    /// zero-padded, for every length of tail.
    #[test]
    fn write_hashes_zero_padded_words() {
        let bytes: Vec<u8> = (1..=40).collect();
        for len in 0..=bytes.len() {
            let mut reference = FxHasher::default();
            for chunk in bytes[..len].chunks(8) {
                let mut word = [0; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                reference.add(u64::from_le_bytes(word));
            }
            let mut hasher = FxHasher::default();
            hasher.write(&bytes[..len]);
            assert_eq!(hasher.finish(), reference.finish(), "{len} bytes");
        }
    }
}
