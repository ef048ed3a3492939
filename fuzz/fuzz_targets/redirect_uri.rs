//! Fuzz target `redirect_uri`: see `harness::redirect_uri`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::redirect_uri(data));
