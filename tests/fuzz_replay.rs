//! Replays every kept fuzz input on stable, through the functions the fuzz targets call.
//!
//! `fuzz/corpus/<target>/*` (the RFC seeds plus a minimized corpus) and
//! `fuzz/regressions/<target>/*` (minimized inputs of every crash found, each fixed) are run
//! with `fuzz/harness.rs`, the very file the targets include, so CI checks them without
//! a fuzzer or nightly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

/// Targets over an adapter's own parsing, replayed by that adapter's tests
/// (`adapters/hyper/tests/fuzz_replay.rs` for `hyper_forms`).
const ADAPTER_TARGETS: [&str; 1] = ["hyper_forms"];

/// Files directly under `dir/<target>/`, sorted; none if the directory is missing.
fn inputs(dir: &Path, target: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind);
    let mut count = 0;
    for target in harness::TARGETS {
        for file in inputs(&root, target) {
            let data = std::fs::read(&file).unwrap();
            let ran = std::panic::catch_unwind(|| harness::run(target, &data));
            match ran {
                Ok(true) => count += 1,
                Ok(false) => panic!("no target {target}"),
                Err(_) => panic!("{} failed on {}", target, file.display()),
            }
        }
    }
    // Directories must be named after targets, or their inputs would never run.
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                harness::TARGETS.contains(&name.as_str())
                    || ADAPTER_TARGETS.contains(&name.as_str()),
                "fuzz/{kind}/{name} is not a target"
            );
        }
    }
    count
}

#[test]
fn corpus_replays() {
    let n = replay("corpus");
    eprintln!("replayed {n} corpus inputs");
    assert!(n >= harness::TARGETS.len(), "only {n} corpus inputs");
}

#[test]
fn regressions_replay() {
    let n = replay("regressions");
    eprintln!("replayed {n} regression inputs");
}

#[test]
fn every_target_has_a_binary_and_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for target in harness::TARGETS {
        let bin = root.join("fuzz_targets").join(format!("{target}.rs"));
        assert!(bin.is_file(), "{} is missing", bin.display());
        assert!(
            !inputs(&root.join("corpus"), target).is_empty(),
            "no seeds for {target}"
        );
    }
}

#[test]
fn empty_and_junk_inputs() {
    for target in harness::TARGETS {
        for data in [&b""[..], b"\n", b"\xff\xfe", b"&&&===", b"\n\n\n"] {
            assert!(harness::run(target, data));
        }
    }
}

/// The extension-grant seeds reach both sides of the target's checks: the grants' successes
/// (where the token's shape is checked) and their refusals.
#[test]
fn extension_grant_seeds_reach_successes_and_refusals() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/extension_grant");
    for (seed, status) in [
        ("seed-password", 200),
        ("seed-exchange", 200),
        ("seed-password-wrong", 400),
        ("seed-password-scope", 400),
        ("seed-exchange-openid", 400),
        ("seed-public-unregistered", 400),
        ("seed-undeclared", 400),
    ] {
        let data = std::fs::read(dir.join(seed)).unwrap();
        assert_eq!(harness::extension_grant_status(&data), status, "{seed}");
    }
}
