//! Fuzz target `extension_grant`: see `harness::extension_grant`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::extension_grant(data));
