//! The conformance suite on the in-memory store: alone, as several handles of one
//! store, and as both halves of a `Combined` store.
#![cfg(feature = "conformance")]

use std::time::Instant;

use secondfactor::store::conformance::{self, RaceConfig};
use secondfactor::store::{Combined, MemoryStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    let store = MemoryStore::new();
    // Four handles on one store stand in for four server instances.
    let handles = [store.clone(), store.clone(), store.clone(), store];
    let start = Instant::now();
    conformance::all(&handles, RaceConfig::default()).await;
    eprintln!("MemoryStore x4: all checks in {:?}", start.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_memory_store_conforms() {
    conformance::all(&[MemoryStore::new()], RaceConfig::default().with_rounds(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn combined_memory_stores_conform() {
    let accounts = MemoryStore::new();
    let ephemeral = MemoryStore::new();
    let handles: Vec<_> = (0..3)
        .map(|_| Combined::new(accounts.clone(), ephemeral.clone()))
        .collect();
    let start = Instant::now();
    conformance::all(&handles, RaceConfig::default()).await;
    eprintln!(
        "Combined<MemoryStore, MemoryStore> x3: all checks in {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn halves_conform_alone() {
    let store = MemoryStore::new();
    let handles = [store.clone(), store];
    let config = RaceConfig::new(50, 8);
    conformance::accounts_all(&handles, config).await;
    conformance::ephemeral_all(&handles, config).await;
}

#[test]
#[should_panic(expected = "multi-threaded tokio runtime")]
fn races_refuse_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(conformance::races(
        &[MemoryStore::new()],
        RaceConfig::new(1, 2),
    ));
}
