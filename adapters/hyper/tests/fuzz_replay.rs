//! Replays the kept inputs of the `hyper_forms` fuzz target on stable, through the very
//! function the target calls (`fuzz/adapter_harness.rs`), so CI checks them without a fuzzer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../../../fuzz/adapter_harness.rs"]
mod adapter_harness;

use std::path::Path;

#[test]
fn hyper_forms_corpus_and_regressions_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join("hyper_forms")) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let data = std::fs::read(entry.path()).unwrap();
            adapter_harness::hyper_forms(&data);
            count += 1;
        }
    }
    assert!(count >= 2, "the seeds are missing ({count} inputs)");
}
