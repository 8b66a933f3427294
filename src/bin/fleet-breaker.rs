//! The `fleet-breaker` command: serve, demo, status, watch, reset, force.
//! Everything is in [`fleet_breaker::cli`]; see `fleet-breaker --help`.

fn main() -> std::process::ExitCode {
    fleet_breaker::cli::main()
}
