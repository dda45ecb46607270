//! `greeter`: the small-call example. Exports `wrpc-ring:examples/greeter`.
//!
//! `greet("world")` returns `"Hello, world!"`.

wit_bindgen::generate!({
    path: "../wit",
    world: "greeter-world",
});

use exports::wrpc_ring::examples::greeter::Guest;

struct Greeter;

impl Guest for Greeter {
    fn greet(name: String) -> String {
        format!("Hello, {name}!")
    }
}

export!(Greeter);
