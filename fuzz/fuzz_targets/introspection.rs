//! Fuzz target `introspection`: see `harness::introspection`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::introspection(data));
