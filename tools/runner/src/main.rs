//! Cargo runner for Herald: turns the kernel ELF that `cargo run`/`cargo test` hands over into a
//! BIOS or UEFI disk image and boots it in QEMU, mapping the kernel's verdict to an exit status.
//!
//! Environment:
//! - `HERALD_BOOT=uefi` boots through OVMF (`HERALD_OVMF` overrides the firmware path);
//!   `bios` (the default) through the bootloader's BIOS stages.
//! - `HERALD_QEMU_ARGS` is appended to QEMU's command line, split on whitespace.
//! - `HERALD_TEST_TIMEOUT_SECS` bounds each test kernel (default 300); a hang fails the test.
//!   Set explicitly, it bounds `cargo run` too (scripted shell sessions).

mod ramdisk;

use std::{
    env,
    ffi::OsString,
    io::{ErrorKind, IsTerminal},
    path::{Path, PathBuf},
    process::{Child, Command, ExitCode, Stdio},
    thread,
    time::{Duration, Instant},
};

/// `isa-debug-exit` turns a guest write of `v` into QEMU's exit status `(v << 1) | 1`; the
/// kernel writes 0x10 for success and 0x11 for failure (`src/arch/x86_64/qemu.rs`).
const QEMU_STATUS_KERNEL_SUCCESS: i32 = (0x10 << 1) | 1;
const QEMU_STATUS_KERNEL_FAILURE: i32 = (0x11 << 1) | 1;
/// The I/O port and size the kernel expects the exit device at.
const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";
/// Where Debian's `ovmf` package puts the combined UEFI firmware image.
const DEFAULT_OVMF_PATH: &str = "/usr/share/ovmf/OVMF.fd";
/// QEMU options particular test kernels need, by test name: `smp_report` needs several CPUs,
/// and `should_panic` panics with another CPU running (the panic stops it first);
/// the hostile-program tests bound scheduling latency in guest time, which only `-icount` keeps
/// independent of the host's load — `sleep=off` too, or an idle guest's clock follows the
/// host's, and a busy host makes a 1 ms sleep look long.
const TEST_QEMU_ARGS: &[(&str, &str)] = &[
    ("hostile", "-icount shift=0,align=off,sleep=off"),
    // COM2, whose ports the user-space driver tests claim.
    ("drivers", "-serial null"),
    ("smp_report", "-smp 3"),
    ("smp_stress", "-smp 4"),
    ("should_panic", "-smp 2"),
];
const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(300);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Our own exit statuses, beyond 0 (success) and 1 (the kernel reported failure).
const STATUS_SETUP_ERROR: u8 = 2;
const STATUS_TIMED_OUT: u8 = 3;
const STATUS_NO_VERDICT: u8 = 4;

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Firmware {
    Bios,
    Uefi,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("herald-runner: {message}");
            ExitCode::from(STATUS_SETUP_ERROR)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut args = env::args_os().skip(1);
    let kernel = PathBuf::from(args.next().ok_or("usage: herald-runner <kernel-elf> [args]")?);
    let extra: Vec<OsString> = args.collect();
    let is_test = is_test_executable(&kernel);
    if is_test && !extra.is_empty() {
        eprintln!("herald-runner: test filters are not supported in QEMU; running every test");
    }
    let firmware = match env::var("HERALD_BOOT").as_deref() {
        Err(_) | Ok("" | "bios") => Firmware::Bios,
        Ok("uefi") => Firmware::Uefi,
        Ok(other) => return Err(format!("HERALD_BOOT={other:?}: expected `bios` or `uefi`")),
    };
    let repository = repository_root();
    // Scratch files of this run only: the same kernel may boot in several runs at once
    // (`cargo xtask test` runs suites in parallel).
    let scratch = Scratch::for_kernel(&kernel);
    let ramdisk = ramdisk::build(&repository, &scratch.path("ramdisk"))?;
    let stripped = without_debug_info(&kernel, &scratch.path("boot.elf"));
    let image = build_image(&stripped, &ramdisk, firmware, &scratch)?;

    let mut qemu = Command::new("qemu-system-x86_64");
    if firmware == Firmware::Uefi {
        let ovmf = env::var("HERALD_OVMF").unwrap_or_else(|_| DEFAULT_OVMF_PATH.into());
        if !Path::new(&ovmf).exists() {
            return Err(format!(
                "UEFI firmware {ovmf} not found: `apt-get install -y ovmf` or set HERALD_OVMF"
            ));
        }
        qemu.arg("-bios").arg(ovmf);
    }
    qemu.arg("-drive").arg(format!("format=raw,file={}", image.display()));
    // COM1 on our stdin/stdout; a reset (e.g. triple fault) stops QEMU instead of looping. In
    // a terminal, COM1 shares stdio with QEMU's monitor: Ctrl-C then reaches Herald (it ends the
    // foreground program) and Ctrl-A X quits. Piped input stays raw, so every byte reaches COM1.
    let interactive = !is_test && std::io::stdin().is_terminal();
    let serial = if interactive { "mon:stdio" } else { "stdio" };
    qemu.args(["-serial", serial, "-no-reboot", "-device", DEBUG_EXIT_DEVICE]);
    let has_display = env::var_os("DISPLAY").is_some() || env::var_os("WAYLAND_DISPLAY").is_some();
    if is_test || !has_display {
        qemu.args(["-display", "none"]);
    }
    if is_test {
        qemu.args(split_qemu_args(test_qemu_args(&kernel)));
    }
    qemu.args(split_qemu_args(&env::var("HERALD_QEMU_ARGS").unwrap_or_default()));
    // A test must not take over the terminal (QEMU puts a tty into raw mode) or wait for input.
    if is_test {
        qemu.stdin(Stdio::null());
    }
    // Piped input waits for the shell: UEFI firmware reads COM1 while it boots and would eat
    // the bytes a script sent before the kernel was up.
    let hold_input = !is_test && !interactive;
    if hold_input {
        qemu.stdin(Stdio::piped()).stdout(Stdio::piped());
    }

    let mut child = qemu.spawn().map_err(|error| match error.kind() {
        ErrorKind::NotFound => {
            "qemu-system-x86_64 not found: `apt-get install -y qemu-system-x86` (see README)".into()
        }
        _ => format!("cannot start qemu-system-x86_64: {error}"),
    })?;
    let forwarding = hold_input.then(|| forward_until_ready(&mut child));
    // Tests always get a deadline; `cargo run` gets one only when asked (scripted sessions).
    let timeout = if is_test || env::var_os("HERALD_TEST_TIMEOUT_SECS").is_some() {
        Some(test_timeout()?)
    } else {
        None
    };
    let verdict = wait_for_verdict(child, timeout, is_test, &kernel);
    if let Some(output) = forwarding {
        // Everything QEMU printed reaches our stdout before we exit.
        let _ = output.join();
    }
    verdict
}

/// What the kernel prints once its shell reads COM1: held input is sent after it.
const SHELL_READY_MARKER: &[u8] = b"Herald shell:";

/// Copies QEMU's output to ours, and our stdin to QEMU once the output has shown
/// [`SHELL_READY_MARKER`]. Returns the output thread (it ends when QEMU closes its stdout).
fn forward_until_ready(child: &mut Child) -> thread::JoinHandle<()> {
    use std::{
        io::{Read, Write},
        sync::{Arc, Condvar, Mutex},
    };

    let ready = Arc::new((Mutex::new(false), Condvar::new()));
    let mut qemu_output = child.stdout.take().expect("piped stdout");
    let qemu_input = child.stdin.take().expect("piped stdin");
    let seen = ready.clone();
    let output = thread::spawn(move || {
        let mut stdout = std::io::stdout();
        let mut buffer = [0u8; 4096];
        let mut recent: Vec<u8> = Vec::new();
        while let Ok(count) = qemu_output.read(&mut buffer) {
            if count == 0 {
                break;
            }
            let _ = stdout.write_all(&buffer[..count]);
            let _ = stdout.flush();
            recent.extend_from_slice(&buffer[..count]);
            if recent.windows(SHELL_READY_MARKER.len()).any(|w| w == SHELL_READY_MARKER) {
                let (flag, signal) = &*seen;
                *flag.lock().expect("ready flag") = true;
                signal.notify_all();
                recent.clear();
            } else if recent.len() > SHELL_READY_MARKER.len() {
                recent.drain(..recent.len() - SHELL_READY_MARKER.len());
            }
        }
        // No shell will come: release the input thread.
        let (flag, signal) = &*seen;
        *flag.lock().expect("ready flag") = true;
        signal.notify_all();
    });
    thread::spawn(move || {
        let (flag, signal) = &*ready;
        let mut shown = flag.lock().expect("ready flag");
        while !*shown {
            shown = signal.wait(shown).expect("ready flag");
        }
        drop(shown);
        let mut qemu_input = qemu_input;
        let _ = std::io::copy(&mut std::io::stdin(), &mut qemu_input);
    });
    output
}

/// The checkout being built: the nearest directory above the runner's `CARGO_MANIFEST_DIR`
/// that holds `user/`. `cargo run` (in `qemu-runner.sh`) sets that variable at run time; the
/// path compiled in is only the fallback, so a copy of the checkout never builds into the
/// original's directories.
fn repository_root() -> PathBuf {
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("user/Cargo.toml").exists())
        .map_or_else(|| manifest_dir.join("../.."), Path::to_path_buf)
}

/// The files one run makes next to the kernel, named by the runner's process id and removed
/// when the run ends.
struct Scratch {
    kernel: PathBuf,
    made: std::cell::RefCell<Vec<PathBuf>>,
}

impl Scratch {
    fn for_kernel(kernel: &Path) -> Self {
        Self { kernel: kernel.to_path_buf(), made: std::cell::RefCell::new(Vec::new()) }
    }

    /// `<kernel>.<pid>.<what>`, removed when the run ends.
    fn path(&self, what: &str) -> PathBuf {
        let path = self.kernel.with_extension(format!("{}.{what}", std::process::id()));
        self.made.borrow_mut().push(path.clone());
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for path in self.made.borrow().iter() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Returns a copy of `kernel` without debug sections, made with the toolchain's `llvm-objcopy`
/// (rust-toolchain.toml installs `llvm-tools`), at `stripped`, or `kernel` itself if that
/// fails. The loader reads the whole ELF through BIOS disk calls, so a debug kernel's DWARF
/// costs seconds per boot; the original ELF keeps it for gdb and backtraces.
fn without_debug_info(kernel: &Path, stripped: &Path) -> PathBuf {
    let stripped = stripped.to_path_buf();
    let objcopy = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| {
            let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            // llvm-tools installs into the host target's directory, whatever its name.
            std::fs::read_dir(Path::new(&sysroot).join("lib/rustlib"))
                .ok()?
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin/llvm-objcopy"))
                .find(|path| path.exists())
        });
    let ran = objcopy.is_some_and(|objcopy| {
        Command::new(objcopy)
            .arg("--strip-debug")
            .arg(kernel)
            .arg(&stripped)
            .status()
            .is_ok_and(|status| status.success())
    });
    if ran { stripped } else { kernel.to_path_buf() }
}

/// Builds the boot image among this run's scratch files, so parallel runs of one kernel never collide.
fn build_image(
    kernel: &Path,
    ramdisk: &Path,
    firmware: Firmware,
    scratch: &Scratch,
) -> Result<PathBuf, String> {
    let mut config = bootloader::BootConfig::default();
    // Only Herald's own output on the consoles: tests parse it.
    config.serial_logging = false;
    config.frame_buffer_logging = false;
    let result = match firmware {
        Firmware::Bios => {
            let image = scratch.path("bios.img");
            bootloader::BiosBoot::new(kernel)
                .set_ramdisk(ramdisk)
                .set_boot_config(&config)
                .create_disk_image(&image)
                .map(|()| image)
        }
        Firmware::Uefi => {
            let image = scratch.path("uefi.img");
            bootloader::UefiBoot::new(kernel)
                .set_ramdisk(ramdisk)
                .set_boot_config(&config)
                .create_disk_image(&image)
                .map(|()| image)
        }
    };
    result.map_err(|error| format!("cannot build a disk image for {}: {error:#}", kernel.display()))
}

/// The extra QEMU options of test kernel `kernel` (cargo names it `<test>-<hash>`).
fn test_qemu_args(kernel: &Path) -> &'static str {
    let file = kernel.file_stem().and_then(|stem| stem.to_str()).unwrap_or("");
    let test = file.rsplit_once('-').map_or(file, |(test, _hash)| test);
    TEST_QEMU_ARGS.iter().find(|(name, _)| *name == test).map_or("", |(_, args)| args)
}

fn test_timeout() -> Result<Duration, String> {
    match env::var("HERALD_TEST_TIMEOUT_SECS") {
        Err(_) => Ok(DEFAULT_TEST_TIMEOUT),
        Ok(text) => text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("HERALD_TEST_TIMEOUT_SECS={text:?} is not a number of seconds")),
    }
}

fn wait_for_verdict(
    mut child: Child,
    timeout: Option<Duration>,
    is_test: bool,
    kernel: &Path,
) -> Result<ExitCode, String> {
    let started = Instant::now();
    let status = loop {
        if let Some(status) =
            child.try_wait().map_err(|error| format!("waiting for QEMU: {error}"))?
        {
            break status;
        }
        if timeout.is_some_and(|timeout| started.elapsed() > timeout) {
            // Already exiting if this fails; either way it is gone after `wait`.
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "herald-runner: {} hung: killed after {} s (HERALD_TEST_TIMEOUT_SECS)",
                kernel.display(),
                started.elapsed().as_secs()
            );
            return Ok(ExitCode::from(STATUS_TIMED_OUT));
        }
        thread::sleep(POLL_INTERVAL);
    };
    Ok(verdict(status.code(), is_test))
}

/// Maps QEMU's exit status to ours.
fn verdict(qemu_status: Option<i32>, is_test: bool) -> ExitCode {
    match qemu_status {
        Some(QEMU_STATUS_KERNEL_SUCCESS) => ExitCode::SUCCESS,
        Some(QEMU_STATUS_KERNEL_FAILURE) => ExitCode::FAILURE,
        // Window closed, Ctrl-C, or a CPU reset: fine for an interactive run, never for a test.
        Some(0) if !is_test => ExitCode::SUCCESS,
        other => {
            eprintln!(
                "herald-runner: QEMU stopped without a verdict from the kernel (status {other:?}): \
                 a CPU reset such as a triple fault, or QEMU was killed"
            );
            ExitCode::from(STATUS_NO_VERDICT)
        }
    }
}

/// Test executables keep cargo's `-<16 hex digits>` suffix; the binary `cargo run` starts does
/// not. (bootimage's "parent directory is `deps`" check no longer holds: cargo's new build-dir
/// layout puts test executables under `build/<package>/<hash>/out/`.)
fn is_test_executable(path: &Path) -> bool {
    let stem = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default();
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        hash.len() == 16 && hash.bytes().all(|byte| byte.is_ascii_hexdigit())
    })
}

fn split_qemu_args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_executables_are_recognised_by_their_hash_suffix() {
        assert!(is_test_executable(Path::new("out/basic_boot-0123456789abcdef")));
        assert!(is_test_executable(Path::new("deps/herald-fedcba9876543210")));
        assert!(!is_test_executable(Path::new("debug/herald")));
        assert!(!is_test_executable(Path::new("debug/stack-overflow")));
        assert!(!is_test_executable(Path::new("debug/herald-0123456789abcdeg")));
    }

    #[test]
    fn kernel_verdicts_map_to_exit_statuses() {
        assert_eq!(verdict(Some(33), true), ExitCode::SUCCESS);
        assert_eq!(verdict(Some(35), true), ExitCode::FAILURE);
        assert_eq!(verdict(Some(0), false), ExitCode::SUCCESS);
        assert_eq!(verdict(Some(0), true), ExitCode::from(STATUS_NO_VERDICT));
        assert_eq!(verdict(None, false), ExitCode::from(STATUS_NO_VERDICT));
    }

    #[test]
    fn qemu_args_split_on_any_whitespace() {
        assert_eq!(split_qemu_args("  -m 64M\t-smp 2 "), ["-m", "64M", "-smp", "2"]);
        assert!(split_qemu_args("").is_empty());
    }
}
