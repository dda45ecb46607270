//! `blob-stream`: the `stream<u8>` variant of `blob`. Exports
//! `wrpc-ring:examples-async/blob-stream` (WIT in `wit/` beside this crate).
//!
//! `fetch-stream(size)` is a component-model *async* export: it creates a
//! stream, returns its readable end at once, and keeps writing the pattern
//! (byte `i` is `(i % 251) as u8`, as in `blob`) in 64 KiB chunks from a task
//! spawned with `wit_bindgen::spawn_local` until `size` bytes are written or
//! the reader drops its end.
//!
//! Experimental: this needs a host with component-model async enabled and a
//! runtime that can lift a `stream<u8>` result. wrpc-runtime-wasmtime 0.31
//! cannot (see ../README.md).

wit_bindgen::generate!({
    path: "wit",
    world: "blob-stream-world",
});

use exports::wrpc_ring::examples_async::blob_stream::Guest;
use wit_bindgen::StreamReader;

/// Bytes written to the stream per write.
const CHUNK: u64 = 64 * 1024;

/// The pattern bytes at offsets `start..start + len`.
fn pattern(start: u64, len: usize) -> Vec<u8> {
    let mut b = (start % 251) as u8;
    let mut out = Vec::with_capacity(len);
    for _ in 0..len {
        out.push(b);
        b = if b == 250 { 0 } else { b + 1 };
    }
    out
}

struct BlobStream;

impl Guest for BlobStream {
    async fn fetch_stream(size: u64) -> StreamReader<u8> {
        let (mut tx, rx) = wit_stream::new();
        wit_bindgen::spawn_local(async move {
            let mut start = 0;
            while start < size {
                let len = CHUNK.min(size - start);
                // `write_all` gives back what it could not write: non-empty
                // only if the reader dropped its end.
                if !tx.write_all(pattern(start, len as usize)).await.is_empty() {
                    return;
                }
                start += len;
            }
            // Dropping `tx` closes the stream: the reader sees its end.
        });
        rx
    }
}

export!(BlobStream);
