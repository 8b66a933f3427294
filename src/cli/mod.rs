//! The `fleet-breaker` command line (feature `service`).

use std::process::ExitCode;

/// Runs the command line with the process's arguments.
#[must_use]
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
