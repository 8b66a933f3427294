//! A test run alone, in a child process of its own test binary: for what
//! belongs to the process (an environment variable, `tracing`'s cache of
//! who listens at each call site), which the other tests of the binary,
//! running beside it on other threads, would share.

/// Runs the ignored test `name` (its path in the binary, `module::test`)
/// in a child process, its command first given to `configure` (to set its
/// environment); asserts that it passed, and returns its standard output.
///
/// # Panics
///
/// When the child cannot be run, or its test did not pass (both outputs
/// are quoted).
pub async fn run_alone(name: &str, configure: impl FnOnce(&mut tokio::process::Command)) -> String {
    let exe = std::env::current_exe().expect("the test binary");
    let mut command = tokio::process::Command::new(exe);
    command.args([name, "--exact", "--ignored", "--nocapture"]);
    configure(&mut command);
    let output = command.output().await.expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child test {name} failed:\n{stdout}\n{stderr}"
    );
    stdout
}
