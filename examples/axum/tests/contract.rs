//! The HTTP contract suite, the browser walk, the migration and reset tools and the
//! memory burst, against this crate's server binary.

secondfactor_example_contract::contract_suite!(
    "axum",
    env!("CARGO_BIN_EXE_secondfactor-example-axum")
);
