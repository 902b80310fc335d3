//! Helpers shared by the tests that run the `trailhound` binary as a user would.

use std::process::{Command, Output};

/// Runs the binary under test with `args`.
pub fn trailhound(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trailhound"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
