//! Fuzz target `client_assertion`: see `harness::client_assertion`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::client_assertion(data));
