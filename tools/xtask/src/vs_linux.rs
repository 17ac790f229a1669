//! `cargo xtask bench --vs-linux`: the same static musl binaries (`user/linux/linux-bench.c`,
//! the project's anchor, and `user/linux/unix-bench.c`, fork + execve and pipes) on Herald and
//! on Linux 6.1 (Debian's `linux-image-cloud-amd64`, each binary as `/init` of an initramfs,
//! one boot per binary), each in QEMU under `-icount shift=0`, so both columns are exact guest
//! instruction counts; then the two side by side with their ratio.

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
};

use crate::ICOUNT_ARGS;

/// The CPU model both kernels run on (QEMU's default, named so both sides surely match).
const CPU_MODEL: &str = "qemu64";
/// How long each side may take.
const TIMEOUT_SECS: &str = "300";
/// Rows that need Linux calls Herald may not serve yet (part 2), by the label's first words,
/// and those calls: when Herald's log says one was not served, the row is `n/a` (musl's
/// `posix_spawn` makes a `pipe2` before its `clone`).
const NEEDS: [(&str, &[&str]); 5] = [
    ("context switch", &["fork"]),
    ("spawn", &["pipe2", "clone"]),
    ("fork + execve", &["fork", "execve"]),
    ("fork", &["fork"]),
    ("pipe", &["pipe", "fork"]),
];
/// The benchmark programs (`user/linux/NAME.c`), each run on both kernels.
const PROGRAMS: [&str; 2] = ["linux-bench", "unix-bench"];

/// The Linux kernel to boot: `HERALD_LINUX_KERNEL`, else the newest Debian cloud kernel.
fn linux_kernel() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("HERALD_LINUX_KERNEL") {
        return Ok(PathBuf::from(path));
    }
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map_err(|e| format!("/boot: {e}"))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("vmlinuz-") && name.ends_with("cloud-amd64"))
        })
        .collect();
    kernels.sort();
    kernels.pop().ok_or_else(|| {
        "no /boot/vmlinuz-*cloud-amd64: apt-get install -y linux-image-cloud-amd64 cpio \
         (or set HERALD_LINUX_KERNEL)"
            .into()
    })
}

/// Builds benchmark `program` static with musl into `directory/init` and packs it as an
/// initramfs.
fn linux_initramfs(root: &Path, directory: &Path, program: &str) -> Result<PathBuf, String> {
    let compiler = std::env::var("HERALD_MUSL_GCC").unwrap_or_else(|_| "musl-gcc".into());
    let status = Command::new(&compiler)
        .args(["-static", "-O2", "-s", "-o"])
        .arg(directory.join("init"))
        .arg(root.join(format!("user/linux/{program}.c")))
        .status()
        .map_err(|e| format!("{compiler}: {e} (apt-get install -y musl-tools)"))?;
    if !status.success() {
        return Err(format!("{compiler} failed on {program}.c"));
    }
    let archive = directory.join("initramfs.cpio");
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(directory)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&archive).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cpio: {e} (apt-get install -y cpio)"))?;
    cpio.stdin.take().ok_or("no stdin")?.write_all(b"init\n").map_err(|e| e.to_string())?;
    if !cpio.wait().map_err(|e| e.to_string())?.success() {
        return Err("cpio failed".into());
    }
    Ok(archive)
}

/// The `NAME: label value` lines of `output` for `kernel`, as label → value (a line may
/// start with the firmware's or kernel's own output: the last `NAME: ` starts the row).
fn rows(output: &str, kernel: &str) -> BTreeMap<String, f64> {
    let prefix = format!("{kernel}: ");
    output
        .lines()
        .filter_map(|line| line.rfind(&prefix).map(|at| &line[at + prefix.len()..]))
        .filter_map(|row| {
            let (label, value) = row.trim_end().rsplit_once(' ')?;
            Some((label.trim().to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Boots Linux once per program, each as its `/init`; their outputs one after the other.
fn run_linux(root: &Path) -> Result<String, String> {
    let mut output = String::new();
    for program in PROGRAMS {
        output.push_str(&run_linux_program(root, program)?);
    }
    Ok(output)
}

fn run_linux_program(root: &Path, program: &str) -> Result<String, String> {
    let kernel = linux_kernel()?;
    let directory =
        std::env::temp_dir().join(format!("herald-vs-linux-{}-{program}", std::process::id()));
    std::fs::create_dir_all(&directory).map_err(|e| e.to_string())?;
    let initramfs = linux_initramfs(root, &directory, program)?;
    let output = Command::new("timeout")
        .arg(TIMEOUT_SECS)
        .arg("qemu-system-x86_64")
        .args(ICOUNT_ARGS.split_whitespace())
        .args(["-cpu", CPU_MODEL, "-m", "256M", "-nographic", "-no-reboot", "-kernel"])
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initramfs)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
    let _ = std::fs::remove_dir_all(&directory);
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn run_herald(root: &Path) -> Result<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .args(["run", "--release", "--quiet"])
        .env("HERALD_QEMU_ARGS", format!("{ICOUNT_ARGS} -cpu {CPU_MODEL}"))
        .env("HERALD_TEST_TIMEOUT_SECS", TIMEOUT_SECS)
        .env_remove("HERALD_ROOTFS_ADD")
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cargo run: {e}"))?;
    // The shell reads COM1 as typed: the commands wait in the UART's buffer until it does.
    // `log warn` first: the farewell module's line per process (tens of thousands of
    // instructions on the framebuffer) would otherwise sit inside the fork and spawn rows.
    let mut commands = String::from("log warn\n");
    for program in PROGRAMS {
        commands.push_str(&format!("run {program}\n"));
    }
    commands.push_str("poweroff\n");
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(commands.as_bytes())
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!("Herald's run failed: {}", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs both and prints the table; fails if either side printed no rows.
pub(crate) fn compare(root: &Path) -> ExitCode {
    let programs = PROGRAMS.join(", ");
    eprintln!("==> {programs} on Herald (cargo run --release, {ICOUNT_ARGS} -cpu {CPU_MODEL})");
    let herald_output = match run_herald(root) {
        Ok(output) => output,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("==> {programs} on Linux (each the /init of an initramfs, the same QEMU flags)");
    let linux_output = match run_linux(root) {
        Ok(output) => output,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let (herald, linux) = (rows(&herald_output, "herald"), rows(&linux_output, "linux"));
    if herald.is_empty() || linux.is_empty() {
        eprintln!("error: no rows from {}", if herald.is_empty() { "Herald" } else { "Linux" });
        eprintln!("{}", if herald.is_empty() { herald_output } else { linux_output });
        return ExitCode::FAILURE;
    }
    let unserved = |call: &str| herald_output.contains(&format!("({call}) is not served"));
    println!("guest instructions per operation (-icount shift=0: one TSC tick per instruction)");
    println!("{:<40} {:>12} {:>12} {:>14}", "operation", "Herald", "Linux", "Herald/Linux");
    for (label, linux_value) in &linux {
        let missing = NEEDS
            .iter()
            .filter(|(row, _)| label.starts_with(row))
            .flat_map(|(_, calls)| calls.iter())
            .find(|call| unserved(call));
        let herald_value = herald.get(label).copied().filter(|_| missing.is_none());
        match herald_value {
            Some(value) => println!(
                "{label:<40} {value:>12.0} {linux_value:>12.0} {:>13.2}x",
                value / linux_value
            ),
            None => {
                let why = missing.map_or_else(String::new, |call| format!("  (needs {call})"));
                println!("{label:<40} {:>12} {linux_value:>12.0} {:>14}{why}", "n/a", "")
            }
        }
    }
    ExitCode::SUCCESS
}
