//! `pipeline-a`: a middle stage of the A → B → C pipeline.
//!
//! Exports `wrpc-ring:examples/stage` and imports the same interface; the host
//! links the import to the next stage (A's to B, B's to C). `run(input)`
//! returns `a(<next stage's run(input)>)`, so calling A with `x` gives
//! `a(b(c(x)))`.

wit_bindgen::generate!({
    path: "../wit",
    world: "pipeline-stage",
});

use exports::wrpc_ring::examples::stage::Guest;
use wrpc_ring::examples::stage as next;

struct Stage;

impl Guest for Stage {
    fn run(input: String) -> String {
        format!("a({})", next::run(&input))
    }
}

export!(Stage);
