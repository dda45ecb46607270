//! `pipeline-c`: the leaf of the A → B → C pipeline.
//!
//! Exports `wrpc-ring:examples/stage` and imports nothing: `run(input)` returns
//! `c(input)`.

wit_bindgen::generate!({
    path: "../wit",
    world: "pipeline-leaf",
});

use exports::wrpc_ring::examples::stage::Guest;

struct Stage;

impl Guest for Stage {
    fn run(input: String) -> String {
        format!("c({input})")
    }
}

export!(Stage);
