//! Fuzz target `token_request`: see `harness::token_request`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::token_request(data));
