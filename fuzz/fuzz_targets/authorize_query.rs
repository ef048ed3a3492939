//! Fuzz target `authorize_query`: see `harness::authorize_query`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::authorize_query(data));
