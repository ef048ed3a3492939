//! Fuzz target `id_token_hint`: see `harness::id_token_hint`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::id_token_hint(data));
