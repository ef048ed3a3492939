//! Runs `examples/sync_driver.rs` (the smallest synchronous driver, over `HashMap`s) as a
//! test, so the example the README points framework authors to keeps working.
#[path = "../examples/sync_driver.rs"]
mod example;

#[test]
fn the_synchronous_example_driver_runs_a_whole_code_flow() -> Result<(), String> {
    example::main().map_err(|e| format!("the example failed: {e}"))
}
