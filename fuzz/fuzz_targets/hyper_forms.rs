//! Fuzz target `hyper_forms`: see `adapter_harness::hyper_forms`.
#![no_main]

#[path = "../adapter_harness.rs"]
mod adapter_harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| adapter_harness::hyper_forms(data));
