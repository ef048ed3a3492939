//! Fuzz target `authorize_form`: see `harness::authorize_form`.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::authorize_form(data));
