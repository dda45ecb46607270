//! `blob-proxy`: exports `wrpc-ring:examples/blob` and forwards every call to
//! the `blob` it imports, which the host links to the `blob` component. A
//! call to the proxy is a host → component call followed by a component →
//! component call carrying the same `list<u8>` payload (a result for `fetch`,
//! a parameter for `put`, both for `echo`).

wit_bindgen::generate!({
    path: "../wit",
    world: "blob-proxy-world",
});

use exports::wrpc_ring::examples::blob::Guest;
use wrpc_ring::examples::blob as upstream;

struct Proxy;

impl Guest for Proxy {
    fn fetch(size: u32) -> Vec<u8> {
        upstream::fetch(size)
    }

    fn fetch_chunks(size: u64, chunk: u32) -> Vec<Vec<u8>> {
        upstream::fetch_chunks(size, chunk)
    }

    fn put(data: Vec<u8>) -> u32 {
        upstream::put(&data)
    }

    fn echo(data: Vec<u8>) -> Vec<u8> {
        upstream::echo(&data)
    }
}

export!(Proxy);
