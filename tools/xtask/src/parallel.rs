//! Running test kernels side by side: each QEMU boot is one single-threaded process, so a
//! machine with N cores boots N test kernels at once. Suites are built one after another
//! (`cargo test --no-run`, which names the executables it made); the boots then run from a
//! shared queue on `jobs` workers, and each boot's output is printed whole, with its time, when
//! it ends, so outputs never interleave.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

/// One test kernel to boot, with the environment of its suite.
pub(crate) struct Boot {
    /// The suite it belongs to.
    pub(crate) suite: &'static str,
    /// The test executable (a kernel ELF).
    pub(crate) kernel: PathBuf,
    /// Extra environment (QEMU flags, firmware).
    pub(crate) env: &'static [(&'static str, &'static str)],
}

/// What one boot printed, and how it ended.
pub(crate) struct Booted {
    /// The boot.
    pub(crate) boot: Boot,
    /// Its output, stdout then stderr.
    pub(crate) output: String,
    /// Whether the runner exited with success.
    pub(crate) succeeded: bool,
    /// Wall time it took.
    pub(crate) took: Duration,
}

/// Builds `args` (a `cargo test` command line) without running it; returns the test
/// executables it made, or why not.
pub(crate) fn build(
    root: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<Vec<PathBuf>, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(args)
        .args(["--no-run", "--message-format=json-render-diagnostics"])
        .envs(env.iter().copied())
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| format!("cannot run cargo: {error}"))?;
    if !output.status.success() {
        return Err(format!("cargo {} failed to build", args.join(" ")));
    }
    Ok(String::from_utf8_lossy(&output.stdout).lines().filter_map(executable).collect())
}

/// The `"executable"` of a cargo JSON message for a test build (its `profile` says `"test":true`;
/// the plain kernel binary, built for the integration tests, names one too and is no test).
fn executable(message: &str) -> Option<PathBuf> {
    const KEY: &str = "\"executable\":\"";
    const PROFILE: &str = "\"profile\":{";
    let profile_start = message.find(PROFILE)? + PROFILE.len();
    let profile = &message[profile_start..profile_start + message[profile_start..].find('}')?];
    if !profile.contains("\"test\":true") {
        return None;
    }
    let start = message.find(KEY)? + KEY.len();
    let end = start + message[start..].find('"')?;
    Some(PathBuf::from(message[start..end].replace("\\\\", "\\")))
}

/// Boots every kernel in `boots` on `jobs` workers; `report` sees each as it ends (in the order
/// they end).
pub(crate) fn run(root: &Path, boots: Vec<Boot>, jobs: usize, mut report: impl FnMut(Booted)) {
    let queue = Mutex::new(boots.into_iter());
    let (done, finished) = mpsc::channel();
    thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            let (queue, done) = (&queue, done.clone());
            scope.spawn(move || {
                loop {
                    let next = queue.lock().map(|mut queue| queue.next()).ok().flatten();
                    let Some(boot) = next else { break };
                    let _ = done.send(boot_one(root, boot));
                }
            });
        }
        drop(done);
        for booted in finished {
            report(booted);
        }
    });
}

fn boot_one(root: &Path, boot: Boot) -> Booted {
    let started = Instant::now();
    let result = Command::new(root.join("tools/qemu-runner.sh"))
        .arg(&boot.kernel)
        .envs(boot.env.iter().copied())
        .current_dir(root)
        .stdin(Stdio::null())
        .output();
    let took = started.elapsed();
    match result {
        Ok(output) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            Booted { boot, output: text, succeeded: output.status.success(), took }
        }
        Err(error) => Booted {
            boot,
            output: format!("cannot run the runner: {error}"),
            succeeded: false,
            took,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_executable_of_test_builds_from_cargos_messages() {
        let test = r#"{"reason":"compiler-artifact","target":{"test":true},"profile":{"opt_level":"0","test":true},"executable":"/t/mm-1a2b"}"#;
        assert_eq!(executable(test), Some(PathBuf::from("/t/mm-1a2b")));
        let binary = r#"{"reason":"compiler-artifact","target":{"test":true},"profile":{"opt_level":"0","test":false},"executable":"/t/herald"}"#;
        assert_eq!(executable(binary), None, "the kernel binary is not a test");
        assert_eq!(
            executable(
                r#"{"reason":"compiler-artifact","profile":{"test":true},"executable":null}"#
            ),
            None
        );
        assert_eq!(executable(r#"{"reason":"build-finished","success":true}"#), None);
    }
}
