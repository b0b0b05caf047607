//! The flows as a state machine: arbitrary sequences of operations on
//! `Service<MemoryStore>` with a manual clock, checked step by step against a
//! model of the accounts. The model, its input format and the invariants it checks
//! live in `tests/model/mod.rs`, shared with `tests/flows_model.rs` (which replays
//! the seeds of `corpus/flows/` and runs a proptest under `cargo test`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/model/mod.rs"]
mod model;

fuzz_target!(|data: &[u8]| {
    model::run(data);
});
