//! `blob`: large payloads. Exports `wrpc-ring:examples/blob`.
//!
//! Byte `i` of every payload is `(i % 251) as u8` (251 is prime, so the
//! pattern does not line up with any power-of-two buffer or ring size and a
//! lost, repeated or reordered chunk shows up in a check).
//!
//! - `fetch(size)` returns the `size` bytes as one `list<u8>`;
//! - `fetch-chunks(size, chunk)` returns the same bytes split into
//!   `list<list<u8>>` chunks of `chunk` bytes (`0` means 65536);
//! - `put(data)` checks `data` against the pattern and returns the offset of
//!   the first byte that differs (its length if none does);
//! - `echo(data)` returns `data`.

wit_bindgen::generate!({
    path: "../wit",
    world: "blob-world",
});

use exports::wrpc_ring::examples::blob::Guest;

/// Default chunk size of `fetch-chunks` when the caller passes `0`.
const DEFAULT_CHUNK: u32 = 64 * 1024;

/// The pattern bytes at offsets `start..start + len`.
fn pattern(start: u64, len: usize) -> Vec<u8> {
    // Start at the right phase, then count up modulo 251 without a division
    // per byte.
    let mut b = (start % 251) as u8;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(b);
        b = if b == 250 { 0 } else { b + 1 };
    }
    out
}

struct Blob;

impl Guest for Blob {
    fn fetch(size: u32) -> Vec<u8> {
        pattern(0, size as usize)
    }

    fn fetch_chunks(size: u64, chunk: u32) -> Vec<Vec<u8>> {
        let chunk = u64::from(if chunk == 0 { DEFAULT_CHUNK } else { chunk });
        let mut chunks = Vec::with_capacity(size.div_ceil(chunk) as usize);
        let mut start = 0;
        while start < size {
            let len = chunk.min(size - start);
            chunks.push(pattern(start, len as usize));
            start += len;
        }
        chunks
    }

    fn put(data: Vec<u8>) -> u32 {
        let mut b = 0u8;
        for (i, &byte) in data.iter().enumerate() {
            if byte != b {
                return i as u32;
            }
            b = if b == 250 { 0 } else { b + 1 };
        }
        data.len() as u32
    }

    fn echo(data: Vec<u8>) -> Vec<u8> {
        data
    }
}

export!(Blob);
