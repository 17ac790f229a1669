//! Project commands, run as `cargo xtask <command>` from anywhere in the repository.
//!
//! `bench` boots the benchmark kernel, optimised, under `-icount` and prints its table.
//! `shell` drives scripted shell sessions; `shell --soak MINUTES` keeps one running that long.
//! `test` runs every test suite and exits non-zero if any test fails, any suite fails to build,
//! or any test kernel hangs (the runner kills it and reports a failure).

mod boundaries;
mod parallel;
mod sessions;
mod vs_linux;

use std::{
    env,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

const USAGE: &str = "usage: cargo xtask test | cargo xtask bench [--vs-linux] | cargo xtask shell [--soak \
                     MINUTES | --only NAME-PART] | cargo xtask gdb [--batch]";
/// Where the loader places the position-independent kernel: the start of the kernel half, the
/// lowest address of the range `src/arch/x86_64/paging.rs` gives it. gdb needs the symbols
/// moved there.
const KERNEL_LOAD_ADDRESS: u64 = 0xffff_8000_0000_0000;
/// QEMU flags that make the guest TSC count guest instructions exactly.
const ICOUNT_ARGS: &str = "-icount shift=0,align=off";

/// One `cargo test` invocation and what it is for.
struct Suite {
    name: &'static str,
    args: &'static [&'static str],
    /// Extra environment for the run (e.g. QEMU flags).
    env: &'static [(&'static str, &'static str)],
}

/// The security policies, the default first; see `src/security/`.
const POLICIES: [&str; 3] = ["capability", "permissive", "sandbox"];

/// Test kernels whose outcome depends on the security policy: run again under the others.
const POLICY_TESTS_PERMISSIVE: &[&str] = &[
    "test",
    "--no-default-features",
    "--features",
    "policy-permissive",
    "--test",
    "process",
    "--test",
    "security",
];
const POLICY_TESTS_SANDBOX: &[&str] = &[
    "test",
    "--no-default-features",
    "--features",
    "policy-sandbox",
    "--test",
    "process",
    "--test",
    "security",
];

/// Test kernels run again on another CPU model and through UEFI firmware.
const MACHINE_TESTS: &[&str] =
    &["test", "--test", "mm", "--test", "basic_boot", "--test", "process", "--test", "security"];

/// Test kernels that exercise memory management, run again at the smallest and a large memory
/// size: frame bookkeeping, heap growth and the physical-memory window depend on it.
const MEMORY_SIZE_TESTS: &[&str] =
    &["test", "--test", "mm", "--test", "basic_boot", "--test", "stack_overflow"];

/// The main kernels, run again with processes on four CPUs.
const SMP_TESTS: &[&str] = &[
    "test", "--test", "events", "--test", "mm", "--test", "process", "--test", "security",
    "--test", "pressure", "--test", "modules",
];

const SUITES: &[Suite] = &[
    // `build.target` is the kernel target, so this boots every test kernel in QEMU.
    Suite { name: "kernel tests in QEMU", args: &["test", "--no-fail-fast"], env: &[] },
    Suite {
        name: "user programs under policy-permissive",
        args: POLICY_TESTS_PERMISSIVE,
        env: &[],
    },
    Suite { name: "user programs under policy-sandbox", args: POLICY_TESTS_SANDBOX, env: &[] },
    Suite {
        name: "on -cpu max (SMEP and SMAP on)",
        args: MACHINE_TESTS,
        env: &[("HERALD_QEMU_ARGS", "-cpu max")],
    },
    Suite { name: "booted through UEFI", args: MACHINE_TESTS, env: &[("HERALD_BOOT", "uefi")] },
    Suite {
        name: "on four CPUs (-smp 4)",
        args: SMP_TESTS,
        env: &[("HERALD_QEMU_ARGS", "-smp 4")],
    },
    Suite {
        name: "memory tests with 64 MiB of RAM",
        args: MEMORY_SIZE_TESTS,
        env: &[("HERALD_QEMU_ARGS", "-m 64M")],
    },
    Suite {
        name: "hostile programs with 64 MiB of RAM",
        args: &["test", "--test", "hostile"],
        env: &[("HERALD_QEMU_ARGS", "-m 64M")],
    },
    Suite {
        name: "memory tests with 4 GiB of RAM",
        args: MEMORY_SIZE_TESTS,
        env: &[("HERALD_QEMU_ARGS", "-m 4G")],
    },
    Suite {
        name: "kernel logic on the host",
        args: &["test", "--lib", "--target", "host-tuple"],
        env: &[],
    },
    Suite {
        name: "host tools",
        args: &[
            "test",
            "--manifest-path",
            "tools/Cargo.toml",
            "--workspace",
            "--target",
            "host-tuple",
        ],
        env: &[],
    },
];

/// Passed and failed counts read from a suite's output.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
struct Tally {
    passed: u64,
    failed: u64,
    /// Test binaries that announced themselves but never printed a summary (hang or crash).
    unfinished: u64,
}

impl Tally {
    /// Reads one output line. Herald's harness prints `running N tests` and `N passed, M failed`;
    /// libtest prints `running N tests` and `test result: ok. N passed; M failed; ...`.
    fn observe(&mut self, line: &str) {
        let line = line.trim_end_matches('\r').trim();
        if line.starts_with("running ")
            && (line.ends_with(" tests")
                || line.ends_with(" test")
                || line.ends_with(" tests on the host"))
        {
            self.unfinished += 1;
            return;
        }
        let summary = line
            .strip_prefix("test result: ")
            .map_or(line, |rest| rest.split_once(". ").map_or(rest, |(_, counts)| counts));
        let mut words = summary.split([' ', ',', ';']).filter(|word| !word.is_empty());
        let (Some(passed), Some("passed"), Some(failed), Some("failed")) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return;
        };
        if let (Ok(passed), Ok(failed)) = (passed.parse::<u64>(), failed.parse::<u64>()) {
            self.passed += passed;
            self.failed += failed;
            self.unfinished = self.unfinished.saturating_sub(1);
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["test"] => test(),
        ["bench"] => bench(),
        ["bench", "--vs-linux"] => vs_linux::compare(&repository_root()),
        ["gdb"] => gdb(&repository_root(), false),
        ["gdb", "--batch"] => gdb(&repository_root(), true),
        ["shell"] => {
            let tally = sessions::run_all(&repository_root(), "");
            if tally.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        ["shell", "--only", name] => {
            let tally = sessions::run_all(&repository_root(), name);
            if tally.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        ["shell", "--soak", minutes] => match minutes.parse::<u64>() {
            Ok(minutes) if minutes > 0 => match sessions::soak(&repository_root(), minutes) {
                Ok(summary) => {
                    println!("soak passed: {summary}");
                    ExitCode::SUCCESS
                }
                Err(reason) => {
                    println!("soak FAILED: {reason}");
                    ExitCode::FAILURE
                }
            },
            _ => {
                eprintln!("--soak takes a whole number of minutes above 0\n{USAGE}");
                ExitCode::from(2)
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Boots the kernel paused under QEMU's gdb stub and starts gdb with the kernel's symbols at the
/// address the loader put it, stopped at `herald::init` by a hardware breakpoint (a software
/// one would be written before the loader has placed the kernel). The kernel's serial output
/// goes to `target/gdb-serial.log`. `--batch` stops there, prints where, and exits (the test).
fn gdb(root: &Path, batch: bool) -> ExitCode {
    let built = Command::new("cargo").arg("build").current_dir(root).status();
    if !built.is_ok_and(|status| status.success()) {
        eprintln!("xtask gdb: the kernel did not build");
        return ExitCode::FAILURE;
    }
    let kernel = root.join("target/x86_64-unknown-none/debug/herald");
    let log_path = root.join("target/gdb-serial.log");
    let Ok(log) = std::fs::File::create(&log_path) else {
        eprintln!("xtask gdb: cannot create {}", log_path.display());
        return ExitCode::FAILURE;
    };
    let extra = env::var("HERALD_QEMU_ARGS").unwrap_or_default();
    let qemu = Command::new("cargo")
        .arg("run")
        .current_dir(root)
        .env("HERALD_QEMU_ARGS", format!("-s -S {extra}"))
        .stdin(Stdio::null())
        .stdout(log)
        .spawn();
    let Ok(mut qemu) = qemu else {
        eprintln!("xtask gdb: cannot start the kernel");
        return ExitCode::FAILURE;
    };
    println!("xtask gdb: serial output goes to {} (tail -f it)", log_path.display());
    let symbols = format!("symbol-file -o {KERNEL_LOAD_ADDRESS:#x} {}", kernel.display());
    let mut gdb = Command::new("gdb");
    gdb.args(["-q", "-ex", "set confirm off", "-ex", &symbols]);
    // QEMU opens its gdb port once the runner has built the disk image.
    gdb.args(["-ex", "set tcp connect-timeout 120", "-ex", "target remote :1234"]);
    gdb.args(["-ex", "hbreak herald::init", "-ex", "continue"]);
    if batch {
        gdb.args(["-batch", "-ex", "info symbol $pc", "-ex", "kill"]);
    }
    let status = gdb.status();
    let _ = qemu.kill();
    let _ = qemu.wait();
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("xtask gdb: cannot run gdb ({error}): `apt-get install -y gdb`");
            ExitCode::FAILURE
        }
    }
}

/// Boots the optimised benchmark kernel under `-icount` once per security policy; each boot
/// prints its table (the default policy's first, then the others for comparison).
fn bench() -> ExitCode {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let extra = env::var("HERALD_QEMU_ARGS").unwrap_or_default();
    let mut all_succeeded = true;
    for policy in POLICIES {
        eprintln!("\n==> benchmarks under policy-{policy}");
        let status = Command::new(&cargo)
            .args(["test", "--release", "--test", "bench", "--no-default-features", "--features"])
            .arg(format!("policy-{policy}"))
            .env("HERALD_QEMU_ARGS", format!("{ICOUNT_ARGS} {extra}"))
            .current_dir(repository_root())
            .status();
        all_succeeded &= status.is_ok_and(|status| status.success());
    }
    // Several CPUs: per-CPU costs exactly (-icount), then what needs the CPUs to really run at
    // once — IPIs, shootdowns, processes in parallel — in time-stamp cycles, without it.
    for (what, icount) in [("exact", ICOUNT_ARGS), ("in cycles", "")] {
        eprintln!("\n==> benchmarks on four CPUs, {what}");
        let status = Command::new(&cargo)
            .args(["test", "--release", "--test", "bench"])
            .env("HERALD_QEMU_ARGS", format!("{icount} -smp 4 {extra}"))
            .current_dir(repository_root())
            .status();
        all_succeeded &= status.is_ok_and(|status| status.success());
    }
    if all_succeeded { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The checkout this run belongs to. `cargo run` sets `CARGO_MANIFEST_DIR` (tools/xtask) at run
/// time; the path compiled in is only the fallback, so a copy of the checkout never works on
/// the original.
fn repository_root() -> PathBuf {
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    // tools/xtask → repository root.
    manifest_dir.ancestors().nth(2).map_or_else(|| ".".into(), Path::to_path_buf)
}

/// Test kernels known to take longest, booted first so the parallel boots end together.
const SLOW_FIRST: [&str; 6] =
    ["smp_stress", "bus_stress", "hostile", "pressure", "process", "bench"];

fn is_host_suite(suite: &Suite) -> bool {
    suite.args.contains(&"host-tuple")
}

/// Workers for parallel boots: `HERALD_TEST_JOBS`, else one per CPU.
pub(crate) fn test_jobs() -> usize {
    env::var("HERALD_TEST_JOBS")
        .ok()
        .and_then(|jobs| jobs.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn test() -> ExitCode {
    let root = repository_root();
    let started = Instant::now();
    let mut total = Tally::default();
    let mut failed_suites: Vec<&str> = Vec::new();
    let mut boots = Vec::new();
    for suite in SUITES.iter().filter(|suite| !is_host_suite(suite)) {
        let env: String =
            suite.env.iter().map(|(key, value)| format!("{key}=\"{value}\" ")).collect();
        let phase = Instant::now();
        eprintln!("\n==> building: {} ({env}cargo {} --no-run)", suite.name, suite.args.join(" "));
        match parallel::build(&root, suite.args, suite.env) {
            Ok(kernels) => {
                eprintln!(
                    "    {} test kernels in {:.1} s",
                    kernels.len(),
                    phase.elapsed().as_secs_f64()
                );
                boots.extend(kernels.into_iter().map(|kernel| parallel::Boot {
                    suite: suite.name,
                    kernel,
                    env: suite.env,
                }));
            }
            Err(reason) => {
                eprintln!("    {reason}");
                failed_suites.push(suite.name);
            }
        }
    }
    let slowness = |boot: &parallel::Boot| {
        let name = boot.kernel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        SLOW_FIRST.iter().position(|slow| name.starts_with(slow)).unwrap_or(SLOW_FIRST.len())
    };
    boots.sort_by_key(slowness);
    let jobs = test_jobs();
    let phase = Instant::now();
    eprintln!("\n==> booting {} test kernels, {jobs} at a time", boots.len());
    parallel::run(&root, boots, jobs, |booted| {
        let name = booted.boot.kernel.file_name().map(|n| n.to_string_lossy().into_owned());
        eprintln!(
            "\n==> {}: {} ({:.1} s)",
            booted.boot.suite,
            name.unwrap_or_default(),
            booted.took.as_secs_f64()
        );
        let mut tally = Tally::default();
        let mut out = std::io::stdout().lock();
        for line in booted.output.lines() {
            let _ = writeln!(out, "{}", line.trim_end_matches('\r'));
            tally.observe(line);
        }
        total.passed += tally.passed;
        total.failed += tally.failed + tally.unfinished;
        let failed = !booted.succeeded || tally.failed > 0 || tally.unfinished > 0;
        if failed && !failed_suites.contains(&booted.boot.suite) {
            failed_suites.push(booted.boot.suite);
        }
    });
    eprintln!("\n==> boots done in {:.0} s", phase.elapsed().as_secs_f64());
    for suite in SUITES.iter().filter(|suite| is_host_suite(suite)) {
        let env: String =
            suite.env.iter().map(|(key, value)| format!("{key}=\"{value}\" ")).collect();
        let phase = Instant::now();
        eprintln!("\n==> {} ({env}cargo {})", suite.name, suite.args.join(" "));
        let (succeeded, tally) = run_suite(&root, suite);
        eprintln!("    {:.1} s", phase.elapsed().as_secs_f64());
        total.passed += tally.passed;
        total.failed += tally.failed + tally.unfinished;
        if !succeeded || tally.failed > 0 || tally.unfinished > 0 || tally.passed == 0 {
            failed_suites.push(suite.name);
        }
    }
    let phase = Instant::now();
    eprintln!("\n==> shell sessions over COM1 and the keyboard (cargo run, scripted)");
    let tally = sessions::run_all(&root, "");
    eprintln!("    {:.0} s", phase.elapsed().as_secs_f64());
    total.passed += tally.passed;
    total.failed += tally.failed;
    if tally.failed > 0 {
        failed_suites.push("shell sessions");
    }
    eprintln!("\n==> finished in {:.0} s", started.elapsed().as_secs_f64());
    for name in &failed_suites {
        eprintln!("FAILED suite: {name}");
    }
    println!("total: {} passed, {} failed", total.passed, total.failed);
    if failed_suites.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Runs one suite, echoing its output while counting results.
fn run_suite(root: &Path, suite: &Suite) -> (bool, Tally) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = match Command::new(cargo)
        .args(suite.args)
        .envs(suite.env.iter().copied())
        .current_dir(root)
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            eprintln!("cannot run cargo: {error}");
            return (false, Tally::default());
        }
    };
    let mut tally = Tally::default();
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            // Kernel output is text, but a corrupted byte must not abort the count.
            let text = String::from_utf8_lossy(&line);
            let _ = writeln!(out, "{}", text.trim_end_matches('\r'));
            tally.observe(&text);
        }
    }
    let succeeded = child.wait().is_ok_and(|status| status.success());
    (succeeded, tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(lines: &[&str]) -> Tally {
        let mut tally = Tally::default();
        for line in lines {
            tally.observe(line);
        }
        tally
    }

    #[test]
    fn counts_herald_and_libtest_summaries() {
        let counted = tally(&[
            "running 3 tests",
            "3 passed, 0 failed\r",
            "running 2 tests",
            "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
        ]);
        assert_eq!(counted, Tally { passed: 4, failed: 1, unfinished: 0 });
    }

    #[test]
    fn a_binary_without_a_summary_is_unfinished() {
        let counted =
            tally(&["running 4 tests", "herald::a ... ok", "running 1 test", "1 passed, 0 failed"]);
        assert_eq!(counted, Tally { passed: 1, failed: 0, unfinished: 1 });
    }

    #[test]
    fn ordinary_output_is_ignored() {
        let counted = tally(&["[    0.001] INFO  herald: 3 passed the gate", "passed, failed"]);
        assert_eq!(counted, Tally::default());
    }
}
