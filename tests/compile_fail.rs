//! Compile-fail tests: the typestate machines reject out-of-order transitions, skipped
//! checks, reused states and forged states at compile time. Each case in
//! `tests/compile_fail/` has its expected compiler output next to it (`.stderr`).

#[test]
fn typestates_reject_misuse() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
