//! Helpers shared by the tests that run the `trailhound` binary as a user would.

use std::process::{Command, Output};

/// Runs the binary under test with `args`. Statistical detections learn in memory unless a
/// test names a `--state`: tests run in parallel and must not share the user's state file.
pub fn trailhound(args: &[&str]) -> Output {
    trailhound_with(args, &[])
}

/// Runs the binary under test with `args` and extra environment variables (an empty value
/// unsets the variable).
pub fn trailhound_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trailhound"));
    command.args(args).env("TRAILHOUND_STATE", ":memory:");
    for (name, value) in env {
        if value.is_empty() {
            command.env_remove(name);
        } else {
            command.env(name, value);
        }
    }
    command.output().expect("the binary runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
