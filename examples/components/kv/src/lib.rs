//! `kv`: a key-value store in the instance's memory. Exports
//! `wrpc-ring:examples/kv`.
//!
//! Every function has a signature the host calls on its typed fast path
//! (`string`, `list<u8>`, `u64`, `bool`, `option` and `result` of those). The
//! store lives as long as the instance: with a fresh instance per call every
//! call starts empty; with `instances = "reuse"` a value set by one call is
//! there for the next call on the same instance.

wit_bindgen::generate!({
    path: "../wit",
    world: "kv-world",
});

use std::cell::RefCell;
use std::collections::BTreeMap;

use exports::wrpc_ring::examples::kv::Guest;

thread_local! {
    /// The store; a wasm instance runs one call at a time on one thread.
    static STORE: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
}

struct Kv;

impl Guest for Kv {
    fn get(key: String) -> Option<Vec<u8>> {
        STORE.with_borrow(|store| store.get(&key).cloned())
    }

    fn set(key: String, value: Vec<u8>) -> Result<(), String> {
        if key.is_empty() {
            return Err("kv.set: the key is empty".to_string());
        }
        STORE.with_borrow_mut(|store| store.insert(key, value));
        Ok(())
    }

    fn delete(key: String) -> bool {
        STORE.with_borrow_mut(|store| store.remove(&key).is_some())
    }

    fn count() -> u64 {
        STORE.with_borrow(|store| store.len() as u64)
    }

    fn range(key: String, start: u64, end: u64) -> Result<Vec<u8>, String> {
        STORE.with_borrow(|store| {
            let value = store
                .get(&key)
                .ok_or_else(|| format!("kv.range: no key `{key}`"))?;
            let len = value.len() as u64;
            if start > end || end > len {
                return Err(format!(
                    "kv.range: {start}..{end} is outside the {len} bytes of `{key}`"
                ));
            }
            Ok(value[start as usize..end as usize].to_vec())
        })
    }
}

export!(Kv);
