//! Shell sessions driven from outside the guest, as a user would: commands piped into COM1
//! (`printf '...' | cargo run`), or typed on the PS/2 keyboard through QEMU's QMP `send-key`.
//! Each session checks what the kernel printed and that it powered off with status 0.

use std::{
    io::{BufRead, BufReader, Read, Write},
    os::unix::net::UnixStream,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use crate::Tally;

/// How long one session may take before it counts as hung (the runner kills QEMU then).
const SESSION_TIMEOUT_SECS: u64 = 180;

/// How input reaches the shell.
enum Input {
    /// Piped into COM1 (QEMU's `-serial stdio`).
    Serial(Vec<u8>),
    /// Typed on the keyboard: QMP `send-key` qcodes, sent once the prompt is up; a word
    /// starting with `!` is a QMP command run at that point instead (`!inject-nmi`).
    Keys(&'static str),
    /// Piped into COM1 step by step, like an `expect` script: each step's bytes are sent once
    /// the output holds the step's marker the given number of times (Ctrl-C must reach the
    /// program it is meant for, not one that ran earlier).
    Steps(&'static [(&'static str, usize, &'static [u8])]),
}

struct Session {
    name: &'static str,
    input: Input,
    /// Text the output must contain, in this order.
    expect: &'static [&'static str],
    /// Text it must not contain.
    forbid: &'static [&'static str],
    /// Boot through UEFI firmware instead of BIOS.
    uefi: bool,
    /// QEMU options of its own (the machine it needs).
    qemu_args: &'static str,
    /// Builds the image with `HERALD_ROOTFS_ADD` naming a directory holding a program the
    /// session compiles there first (`/bin/dropped`, from [`DROPPED_PROGRAM_C`]), as a user
    /// would drop in a binary of their own.
    rootfs_add: bool,
    /// Files (path, contents) written into that directory too, with `rootfs_add`.
    files: &'static [(&'static str, &'static str)],
    /// Gives the machine a second serial port (COM2) reading these bytes from a file, and
    /// requires that COM2 sends exactly them back (a user-space driver echoing them).
    com2: Option<fn() -> Vec<u8>>,
    /// The same for the fourth serial port (COM4, on COM2's interrupt line; COM3 is given
    /// nothing), after COM2.
    com4: Option<fn() -> Vec<u8>>,
}

/// The program a user "drops in": a static musl C program that prints its argv.
const DROPPED_PROGRAM_C: &str = r#"#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) printf("dropped argv[%d] = [%s]\n", i, argv[i]);
    return 5;
}
"#;

/// QEMU options of the second round, which runs every BIOS session again on four CPUs.
const SMP_ROUND_QEMU_ARGS: &str = "-smp 4";
/// Sessions left out of the four-CPU round: the benchmark's tables take long and say nothing
/// new there (`cargo xtask bench` covers several CPUs).
const NOT_IN_SMP_ROUND: &[&str] = &[
    "bench_prints_the_kernel_and_user_tables",
    "without_acpi_the_boot_cpu_runs_alone_on_the_8259s",
];
/// Sessions only the four-CPU round runs.
const ONLY_IN_SMP_ROUND: &[&str] = &["cpus_lists_every_cpu_online_with_what_it_runs"];

fn bad_input() -> Vec<u8> {
    let mut input = Vec::new();
    // Garbage: every byte value except line ends and Ctrl-C, twice.
    for _ in 0..2 {
        input.extend((0u8..=255).filter(|b| !matches!(b, b'\n' | b'\r' | 0x03)));
    }
    input.push(b'\n');
    input.extend(std::iter::repeat_n(b'x', 10_000));
    input.push(b'\n');
    for line in [
        "bogus",
        "kill",
        "kill 0",
        "kill 99999",
        "kill -3",
        "chains nope",
        "chains a b",
        "trace maybe",
        "run",
        "run nosuch",
        "help extra",
        "ps",
        "uptime",
        "poweroff",
    ] {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    input
}

/// Bytes in the flood session: the alphabet over and over.
const FLOOD_BYTES: usize = 100_000;

fn flood() -> &'static [u8] {
    let bytes: Vec<u8> = (0..FLOOD_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
    Box::leak(bytes.into_boxed_slice())
}

/// Bytes the COM2 flood sends: 200 numbered lines of 50 bytes.
const COM2_FLOOD_BYTES: usize = 10_000;

fn com2_flood() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(COM2_FLOOD_BYTES);
    for line in 0..COM2_FLOOD_BYTES / 50 {
        let letters: String = (0..44).map(|i| char::from(b'a' + ((line + i) % 26) as u8)).collect();
        bytes.extend_from_slice(format!("{line:04} {letters}\n").as_bytes());
    }
    assert_eq!(bytes.len(), COM2_FLOOD_BYTES);
    bytes
}

/// What COM4 is flooded with beside COM2: the same shape in capitals, so a byte that went to
/// the wrong port shows.
fn com4_flood() -> Vec<u8> {
    com2_flood().to_ascii_uppercase()
}

fn sessions() -> Vec<Session> {
    let flood_steps: &'static [(&'static str, usize, &'static [u8])] = Box::leak(Box::new([
        ("herald> ", 1, b"run keylog 100000\n".as_slice()),
        ("started: keylog]", 1, flood()),
        ("exited with code", 1, b"uptime\npoweroff\n".as_slice()),
    ]));
    let com2_steps: &'static [(&'static str, usize, &'static [u8])] =
        &[("herald> ", 1, b"run com2echo 10000\n"), ("exited with code", 1, b"irqs\npoweroff\n")];
    let top_half_steps: &'static [(&'static str, usize, &'static [u8])] = &[
        ("herald> ", 1, b"run com2echo top-half 10000\n"),
        ("exited with code", 1, b"irqs\npoweroff\n"),
    ];
    let lagging_steps: &'static [(&'static str, usize, &'static [u8])] = &[
        ("herald> ", 1, b"run com2echo top-half lagging 10000\n"),
        ("exited with code", 1, b"poweroff\n"),
    ];
    let shared_steps: &'static [(&'static str, usize, &'static [u8])] =
        &[("herald> ", 1, b"run irqshare 10000\n"), ("exited with code", 1, b"irqs\npoweroff\n")];
    vec![
        Session {
            // Both ports flooded at once: each driver's top half answers for its UART only,
            // and both are asked about every interrupt, so neither port's byte is left behind.
            name: "two_drivers_share_irq_3_each_top_half_answering_for_its_own_uart",
            input: Input::Steps(shared_steps),
            expect: &[
                "irqshare: com2echo done",
                "irqshare: com4echo done",
                "exited with code 0]",
                "herald> irqs",
                "powering off",
            ],
            forbid: &["panicked", "error:", "refused", "top half stopped", "cannot"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: Some(com2_flood),
            com4: Some(com4_flood),
        },
        Session {
            // The ring-full path: the top half leaves the byte in the UART and holds the line,
            // the driver's acknowledgement runs it again. An acknowledgement racing the hold
            // on another CPU once lost the byte and stalled the line for good.
            name: "a_lagging_com2_driver_whose_ring_fills_loses_no_byte",
            input: Input::Steps(lagging_steps),
            expect: &[
                "com2echo: driving COM2 with a verified top half",
                "com2echo: 10000 bytes received, 200 lines echoed",
                "com2echo: its ring filled",
                "exited with code 0]",
                "powering off",
            ],
            forbid: &["panicked", "error:", "refused", "top half stopped", "filled 0 times"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: Some(com2_flood),
            com4: None,
        },
        Session {
            name: "a_verified_top_half_wakes_the_com2_driver_once_per_line_not_per_byte",
            input: Input::Steps(top_half_steps),
            expect: &[
                "com2echo: driving COM2 with a verified top half",
                "com2echo: 10000 bytes received, 200 lines echoed",
                "exited with code 0]",
                "herald> irqs",
                "powering off",
            ],
            forbid: &["panicked", "error:", "refused", "top half stopped"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: Some(com2_flood),
            com4: None,
        },
        Session {
            name: "a_user_space_driver_echoes_a_10000_byte_com2_flood_in_order",
            input: Input::Steps(com2_steps),
            expect: &[
                "com2echo: driving COM2",
                "com2echo: 10000 bytes received, 200 lines echoed",
                "exited with code 0]",
                "herald> irqs",
                "powering off",
            ],
            forbid: &["panicked", "error:"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: Some(com2_flood),
            com4: None,
        },
        Session {
            name: "a_100000_byte_flood_arrives_in_order_and_the_shell_stays_responsive",
            input: Input::Steps(flood_steps),
            expect: &[
                "keylog: 100000 bytes received, 0 out of place",
                "exited with code 0]",
                "herald> uptime",
                "up ",
                "powering off",
            ],
            forbid: &["panicked", "error:"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "piped_commands_run_in_order_and_poweroff_exits_0",
            input: Input::Serial(b"events\nps\npoweroff\n".to_vec()),
            expect: &[
                "herald> events",
                "timer",
                "herald> ps",
                "pid",
                "herald> poweroff",
                "powering off",
            ],
            forbid: &["error:", "panicked"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "up_arrow_recalls_tab_completes_and_the_cursor_edits_inside_a_line",
            // Up runs `uptime` again; Tab completes `hel` to `help`; `pz`, Left, `s`, Delete
            // makes `ps`.
            input: Input::Serial(b"uptime\n\x1b[A\nhel\t\npz\x1b[Ds\x1b[3~\npoweroff\n".to_vec()),
            expect: &[
                "herald> uptime",
                "up ",
                "herald> uptime",
                "up ",
                "herald> help",
                "this list",
                // The raw stream: `pz`, back one, `sz` redrawn, erase, back, erase (a
                // terminal shows `ps`); then `ps`'s table.
                "herald> pz\x1b[1Dsz\x1b[K\x1b[1D\x1b[K",
                "pid parent",
                "powering off",
            ],
            forbid: &["error:", "panicked", "[A"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "piped_commands_reach_the_shell_through_uefi_firmware_too",
            // The runner holds piped input until the shell is up: OVMF reads COM1 while it
            // boots and used to swallow these bytes.
            input: Input::Serial(b"events\npoweroff\n".to_vec()),
            expect: &["herald> events", "timer", "herald> poweroff", "powering off"],
            forbid: &["error:", "panicked"],
            uefi: true,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "bad_input_gets_one_line_errors_and_the_shell_survives",
            input: Input::Serial(bad_input()),
            expect: &[
                "error: unknown command",
                "error: line longer than 256 characters; ignored",
                "error: unknown command `bogus`",
                "error: usage: kill <pid>",
                "error: `0` is not a process id",
                "error: cannot kill pid 99999: ESRCH",
                "error: `-3` is not a process id",
                "error: no event kind `nope`",
                "error: usage: chains [kind]",
                "error: usage: trace on|off",
                "programs in /bin (run NAME [ARGS]):",
                "hello-musl",
                "Linux calls",
                "error: cannot run `nosuch`: no such program",
                "error: `help` takes no arguments",
                "herald> uptime",
                "up ",
                "powering off",
            ],
            // The editor echoes at most 256 characters of the over-long line.
            forbid: &[
                "panicked",
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            ],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "every_command_answers",
            input: Input::Steps(&[
                ("herald> ", 1, b"help\nevents\nchains syscall\nqueues\nrun hello a b\n"),
                ("exited with code 7]", 1, b"ps\nrun sleeper 60000\n"),
                ("started: sleeper]", 1, b"\x03"),
                ("exited with code 137]", 1, b"run spin 99999999\n"),
                ("started: spin]", 1, b"\x03"),
                ("exited with code 137]", 2, b"mem\npolicy\nmodules\ntrace on\nrun hello\n"),
                ("exited with code 7]", 2, b"trace off\nkill 99\nuptime\npoweroff\n"),
            ]),
            expect: &[
                "poweroff",
                "timer",
                "process-calls",
                "heartbeat",
                "hello from user space",
                "[pid 1 exited with code 7]",
                "[pid 2 started: sleeper]",
                "[pid 2 exited with code 137]",
                "[pid 3 started: spin]",
                "[pid 3 exited with code 137]",
                "frames:",
                "policy: ",
                "farewell",
                "processes seen off",
                "tracing system calls",
                "[trace] pid 4 write(",
                "tracing off",
                "error: cannot kill pid 99: ESRCH",
                "up ",
                "powering off",
            ],
            forbid: &["panicked"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "bench_prints_the_kernel_and_user_tables",
            // Then `modules`: the log is back at its level once the benchmark has ended.
            input: Input::Serial(b"bench\nrun hello\npoweroff\n".to_vec()),
            expect: &[
                "calibration",
                "not under -icount: the figures below are time-stamp counter cycles",
                "bus dispatch",
                "demand-zero",
                "null syscall",
                "context switch",
                "exited with code 0]",
                "farewell, pid",
                "powering off",
            ],
            // No log line inside the tables: the benchmark spawns processes the farewell
            // module would announce.
            forbid: &["panicked", "error:", "INFO  modules: farewell, pid 2 "],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "the_keyboard_drives_the_shell",
            // Up recalls `uptime`; Left, then Delete of the `e`, then `e` again, runs it once more.
            input: Input::Keys("u p t i m e ret up ret up left delete e ret p o w e r o f f ret"),
            expect: &[
                "herald> uptime",
                "up ",
                "herald> uptime",
                "up ",
                "herald> uptime",
                "up ",
                "herald> poweroff",
                "powering off",
            ],
            // Keys typed while the shell prints wait queued, masked, and are not "late" (the
            // acknowledgement clock starts at delivery): no warning may interleave the echo.
            forbid: &["error:", "panicked", "WARN"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "without_acpi_the_boot_cpu_runs_alone_on_the_8259s",
            input: Input::Serial(b"cpus\nrun hello\nuptime\npoweroff\n".to_vec()),
            expect: &[
                "no ACPI processor table; running on the boot CPU",
                "herald> cpus",
                "ISA lines on the 8259 PIC",
                "hello from user space",
                "up ",
                "powering off",
            ],
            forbid: &["error:", "panicked"],
            uefi: false,
            qemu_args: "-machine acpi=off",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "cpus_lists_every_cpu_online_with_what_it_runs",
            input: Input::Serial(b"cpus\npoweroff\n".to_vec()),
            expect: &[
                "herald> cpus",
                "    0       0  online",
                "    1       1  online",
                "    2       2  online",
                "    3       3  online",
                "ISA lines on the I/O APIC",
                "powering off",
            ],
            forbid: &["error:", "panicked", "offline"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            name: "an_nmi_from_qemus_monitor_is_counted_and_survived",
            input: Input::Keys("c p u s ret !inject-nmi c p u s ret p o w e r o f f ret"),
            expect: &[
                "herald> cpus",
                "herald> cpus",
                "NMIs taken: 1 in all, 0 sent by the watchdog",
                "herald> poweroff",
                "powering off",
            ],
            // Keys typed while the shell prints wait queued, masked, and are not "late" (the
            // acknowledgement clock starts at delivery): no warning may interleave the echo.
            forbid: &["error:", "panicked", "WARN"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            // Busybox's ash on the console as its terminal: its prompt and line editing (raw
            // mode, its own echo), a pipeline, Ctrl-C to the foreground job and back at the
            // prompt with 130, Ctrl-D ending the shell and giving Herald's shell back.
            name: "busybox_sh_is_an_interactive_shell_with_job_interrupts_and_ctrl_d",
            input: Input::Steps(&[
                ("herald> ", 1, b"run busybox sh\n"),
                ("/ # ", 1, b"seq 1 1000 | sort -rn | head -3\r"),
                // `go` on a line of its own is the job running, not the line's echo, and the
                // job prints it once it holds the terminal: Ctrl-C must find it in the
                // foreground, not the shell (a plain `echo go; sleep 100` prints `go` before
                // the shell has handed the terminal to `sleep`).
                ("/ # ", 2, b"(echo go; sleep 100)\r"),
                ("\ngo\n", 1, b"\x03"),
                ("/ # ", 3, b"echo status $?\r"),
                ("/ # ", 4, b"\x04"),
                ("herald> ", 2, b"poweroff\n"),
            ]),
            expect: &[
                "built-in shell (ash)",
                "1000",
                "999",
                "998",
                "^C",
                "status 130",
                "[pid 1 exited with code 0]",
                "powering off",
            ],
            forbid: &["panicked", "not served"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            // Job control in busybox's ash, step for step what the same binary does on Linux
            // 6.x in a pty (recorded with Python's `pty`): Ctrl-Z stops the foreground job
            // (SIGTSTP to its group; the key echoes as `^Z` with no newline, as n_tty's), `jobs`
            // lists it, `bg` continues it in the background, a background `cat` reading the
            // terminal is stopped by SIGTTIN (`wait` returns 128 + 21), `kill -9` ends it
            // stopped (jobs.c checks what the parent sees of that), `fg` brings the first job back and Ctrl-C ends it. The job says whether
            // its group is the terminal's foreground one (`/proc/self/stat`'s pgrp and tpgid),
            // so each key is typed only once the job it is for holds the terminal.
            name: "busybox_sh_stops_continues_and_foregrounds_jobs",
            input: Input::Steps(&[
                ("herald> ", 1, b"run busybox sh\n"),
                (
                    "/ # ",
                    1,
                    b"(while :; do set -- $(cat /proc/self/stat); [ $5 = $8 ] && echo front || \
                      echo back; sleep 1; done)\r",
                ),
                ("front\n", 1, b"\x1a"),
                ("/ # ", 2, b"jobs\r"),
                ("/ # ", 3, b"bg\r"),
                ("back\n", 1, b"cat &\r"),
                ("/ # ", 5, b"wait %2; echo waited $?\r"),
                ("/ # ", 6, b"jobs\r"),
                ("/ # ", 7, b"kill -9 %2\r"),
                ("/ # ", 8, b"fg %1\r"),
                ("front\n", 2, b"\x03"),
                ("/ # ", 9, b"echo status $? jobs $(jobs | wc -l)\r"),
                ("/ # ", 10, b"\x04"),
                ("herald> ", 2, b"poweroff\n"),
            ]),
            expect: &[
                "front\n^Z[1]+  Stopped                    (while :; do set -- $(...); \
                 [ ${5} = ${8} ] && echo front || echo back; sleep 1; done)",
                "jobs\n[1]+  Stopped                    (while :;",
                "bg\n[1] (while :;",
                "back\n",
                "waited 149\n[2]+  Stopped (tty input)        cat",
                "jobs\n[2]+  Stopped (tty input)        cat\n[1]-  Running                    \
                 (while :;",
                "fg %1\n(while :;",
                // (When ash reports `[2]+  Killed  cat` depends on timing, on Linux too.)
                "front\n^C",
                "status 130 jobs 0",
                "[pid 1 exited with code 0]",
                "powering off",
            ],
            forbid: &["panicked", "not served", "error:"],
            uefi: false,
            qemu_args: "",
            rootfs_add: false,
            files: &[],
            com2: None,
            com4: None,
        },
        Session {
            // `/etc/herald/autorun` boots straight into busybox's shell as the first process.
            name: "an_autorun_file_boots_straight_into_busybox_sh",
            input: Input::Steps(&[
                ("/ # ", 1, b"echo first pid $$\r"),
                // busybox's `ps` reads /proc/PID/stat and cmdline.
                ("/ # ", 2, b"ps\r"),
                ("/ # ", 3, b"\x04"),
                ("herald> ", 2, b"poweroff\n"),
            ]),
            expect: &[
                "herald> run busybox sh",
                "[pid 1 started: busybox]",
                "first pid 1",
                "PID   USER     COMMAND",
                "    1 0        busybox sh",
                // A forked applet: its name ({ps}, `prctl`) beside its command line.
                "    2 0        {ps} busybox sh",
                "[pid 1 exited with code 0]",
                "powering off",
            ],
            forbid: &["panicked", "error:"],
            uefi: false,
            qemu_args: "",
            rootfs_add: true,
            files: &[("etc/herald/autorun", "run busybox sh\n")],
            com2: None,
            com4: None,
        },
        Session {
            name: "a_dropped_in_linux_binary_runs_with_shell_quoted_arguments",
            // Each line once the last program has ended: a Linux program's terminal echoes what
            // is typed ahead, as any terminal does, among the program's own output.
            input: Input::Steps(&[
                ("herald> ", 1, b"run\n"),
                ("herald> ", 2, b"run dropped 'two words' \"say \\\"hi\\\"\" plain\n"),
                ("herald> ", 3, b"run /bin/hello-musl x\n"),
                ("herald> ", 4, b"run rust-std 'two words' x\n"),
                ("herald> ", 5, b"poweroff\n"),
            ]),
            expect: &[
                "programs in /bin (run NAME [ARGS]):",
                "dropped ",
                "dropped argv[0] = [dropped]",
                "dropped argv[1] = [two words]",
                "dropped argv[2] = [say \"hi\"]",
                "dropped argv[3] = [plain]",
                "exited with code 5]",
                "argv[0] \"/bin/hello-musl\", argv[1] \"x\"",
                "rust-std: all 8 passed",
                "powering off",
            ],
            forbid: &["panicked", "error:"],
            uefi: false,
            qemu_args: "",
            rootfs_add: true,
            files: &[],
            com2: None,
            com4: None,
        },
    ]
}

fn contains_in_order(output: &str, expected: &[&str]) -> Result<(), String> {
    let mut rest = output;
    for fragment in expected {
        match rest.find(fragment) {
            Some(at) => rest = &rest[at + fragment.len()..],
            None => return Err(format!("missing (in order): {fragment:?}")),
        }
    }
    Ok(())
}

/// Sends `keys` (space-separated QMP qcodes) through the QMP socket at `socket`.
fn type_keys(socket: &Path, keys: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let stream = loop {
        match UnixStream::connect(socket) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
            Err(error) => return Err(format!("QMP socket: {error}")),
        }
    };
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let mut line = String::new();
    let mut command = |json: String| -> Result<(), String> {
        writer.write_all(json.as_bytes()).map_err(|e| e.to_string())?;
        // Skip the greeting and events until the command's answer.
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            if line.contains("\"return\"") {
                return Ok(());
            }
            if line.contains("\"error\"") || line.is_empty() {
                return Err(format!("QMP: {line}"));
            }
        }
    };
    command("{\"execute\":\"qmp_capabilities\"}\n".into())?;
    for key in keys.split_whitespace() {
        if let Some(execute) = key.strip_prefix('!') {
            command(format!("{{\"execute\":\"{execute}\"}}\n"))?;
            thread::sleep(Duration::from_millis(200));
            continue;
        }
        command(format!(
            "{{\"execute\":\"send-key\",\"arguments\":{{\"keys\":[{{\"type\":\"qcode\",\"data\":\"{key}\"}}],\"hold-time\":20}}}}\n"
        ))?;
        // One key at a time, as typed: the 8042 holds only a few scancodes.
        thread::sleep(Duration::from_millis(40));
    }
    Ok(())
}

/// `cargo run` with piped COM1, killed by the runner after `timeout_secs`.
fn start_kernel(
    root: &Path,
    qemu_args: &str,
    timeout_secs: u64,
    uefi: bool,
    rootfs_add: Option<&Path>,
) -> Result<std::process::Child, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    match rootfs_add {
        Some(directory) => command.env("HERALD_ROOTFS_ADD", directory),
        None => command.env_remove("HERALD_ROOTFS_ADD"),
    };
    command
        .args(["run", "--quiet"])
        .env("HERALD_BOOT", if uefi { "uefi" } else { "bios" })
        .env("HERALD_QEMU_ARGS", qemu_args)
        .env("HERALD_TEST_TIMEOUT_SECS", timeout_secs.to_string())
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|error| format!("cannot run cargo: {error}"))
}

/// A fresh directory holding `bin/dropped`, [`DROPPED_PROGRAM_C`] built static with musl.
fn dropped_program_tree(
    session: &str,
    files: &[(&str, &str)],
) -> Result<std::path::PathBuf, String> {
    let directory = std::env::temp_dir().join(format!("herald-{}-{session}", std::process::id()));
    let bin = directory.join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let source = directory.join("dropped.c");
    std::fs::write(&source, DROPPED_PROGRAM_C).map_err(|e| e.to_string())?;
    let compiler = std::env::var("HERALD_MUSL_GCC").unwrap_or_else(|_| "musl-gcc".into());
    let status = Command::new(&compiler)
        .args(["-static", "-O2", "-o"])
        .arg(bin.join("dropped"))
        .arg(&source)
        .status()
        .map_err(|e| format!("{compiler}: {e} (apt install musl-tools)"))?;
    if !status.success() {
        return Err(format!("{compiler} failed on the dropped-in program"));
    }
    // Only `bin/` goes in the image: the source stays out of it.
    std::fs::remove_file(&source).map_err(|e| e.to_string())?;
    for (path, contents) in files {
        let file = directory.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&file, contents).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(directory)
}

/// Everything `child` prints, collected by a thread as it arrives (carriage returns dropped).
fn collect_output(
    child: &mut std::process::Child,
) -> Result<(Arc<Mutex<String>>, thread::JoinHandle<()>), String> {
    let output = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let sink = output.clone();
    let reader = thread::spawn(move || {
        let mut buffer = [0; 4096];
        while let Ok(read) = stdout.read(&mut buffer) {
            if read == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buffer[..read]).replace('\r', "");
            sink.lock().map(|mut output| output.push_str(&text)).ok();
        }
    });
    Ok((output, reader))
}

/// How much of a failed session's output its report shows (its end: where it went wrong).
const OUTPUT_TAIL_CHARS: usize = 3000;

/// The last [`OUTPUT_TAIL_CHARS`] characters of `output`.
fn output_tail(output: &str) -> String {
    let skip = output.chars().count().saturating_sub(OUTPUT_TAIL_CHARS);
    output.chars().skip(skip).collect()
}

/// A scratch directory, removed however the session ends.
struct RemovedOnDrop(std::path::PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_session(root: &Path, session: &Session, extra_qemu_args: &str) -> Result<(), String> {
    let socket = std::env::temp_dir().join(format!(
        "herald-qmp-{}-{}-{}.sock",
        std::process::id(),
        session.name,
        extra_qemu_args.len()
    ));
    let _ = std::fs::remove_file(&socket);
    let mut qemu_args = std::env::var("HERALD_QEMU_ARGS").unwrap_or_default();
    for extra in [extra_qemu_args, session.qemu_args] {
        qemu_args.push(' ');
        qemu_args.push_str(extra);
    }
    if matches!(session.input, Input::Keys(_)) {
        qemu_args.push_str(&format!(" -qmp unix:{},server=on,wait=off", socket.display()));
    }
    // COM2 and COM4 are each a pair of FIFOs (QEMU's `pipe` backend: BASE.in, BASE.out): the
    // flood goes in as fast as the UART takes it, what the port sends comes out. QEMU numbers
    // its serial ports in order, so COM4 comes after a COM3 given nothing.
    let mut ports = Vec::new();
    for (port, flood) in [("com2", session.com2), ("com4", session.com4)] {
        let Some(flood) = flood else { continue };
        let directory = std::env::temp_dir().join(format!(
            "herald-{port}-{}-{}-{}",
            std::process::id(),
            session.name,
            extra_qemu_args.len()
        ));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).map_err(|e| format!("{}: {e}", directory.display()))?;
        for end in ["port.in", "port.out"] {
            let made = Command::new("mkfifo").arg(directory.join(end)).status();
            if !made.is_ok_and(|status| status.success()) {
                return Err(format!("mkfifo {end} in {} failed", directory.display()));
            }
        }
        if port == "com4" {
            qemu_args.push_str(" -serial null");
        }
        qemu_args.push_str(&format!(
            " -chardev pipe,id={port},path={} -serial chardev:{port}",
            directory.join("port").display()
        ));
        ports.push((port, directory, flood()));
    }
    let _remove_port_fifos: Vec<RemovedOnDrop> =
        ports.iter().map(|(_, directory, _)| RemovedOnDrop(directory.clone())).collect();
    let added = if session.rootfs_add {
        let name = format!("{}-{}", session.name, extra_qemu_args.len());
        Some(dropped_program_tree(&name, session.files)?)
    } else {
        None
    };
    let mut child =
        start_kernel(root, &qemu_args, SESSION_TIMEOUT_SECS, session.uefi, added.as_deref())?;
    let (output, reader) = collect_output(&mut child)?;
    let port_threads: Vec<_> = ports
        .iter()
        .map(|(_, directory, sent)| {
            let (input, output) = (directory.join("port.in"), directory.join("port.out"));
            let sent = sent.clone();
            // Opened read-write, a FIFO never blocks the opener: the bytes wait in it for QEMU.
            // The end is kept open until QEMU has gone (a FIFO no one holds open drops its
            // bytes).
            let writer = thread::spawn(move || {
                let fifo = std::fs::OpenOptions::new().read(true).write(true).open(&input);
                fifo.and_then(|mut fifo| fifo.write_all(&sent).map(|()| fifo))
            });
            let reader = thread::spawn(move || {
                let mut got = Vec::new();
                let _ =
                    std::fs::File::open(&output).and_then(|mut fifo| fifo.read_to_end(&mut got));
                got
            });
            (writer, reader)
        })
        .collect();
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let wait_for = |marker: &str, count: usize| -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(SESSION_TIMEOUT_SECS);
        while output.lock().map(|o| o.matches(marker).count()).unwrap_or(0) < count {
            if Instant::now() > deadline {
                return Err(format!("never saw {marker:?} {count} time(s)"));
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    };
    let tail_of = |output: &Mutex<String>| -> String {
        let output = output.lock().map(|o| o.clone()).unwrap_or_default();
        format!("\n--- output (last {OUTPUT_TAIL_CHARS} characters) ---\n{}", output_tail(&output))
    };
    let mut typed = Ok(());
    match &session.input {
        Input::Steps(steps) => {
            for (marker, count, bytes) in *steps {
                if let Err(reason) = wait_for(marker, *count) {
                    // What the kernel said so far shows where it went wrong.
                    let _ = child.kill();
                    let _ = child.wait();
                    if let Some(directory) = &added {
                        let _ = std::fs::remove_dir_all(directory);
                    }
                    return Err(format!("{reason}{}", tail_of(&output)));
                }
                stdin.write_all(bytes).map_err(|e| format!("writing to COM1: {e}"))?;
                stdin.flush().map_err(|e| e.to_string())?;
            }
            drop(stdin);
        }
        Input::Serial(bytes) => {
            stdin.write_all(bytes).map_err(|e| format!("writing to COM1: {e}"))?;
            drop(stdin);
        }
        Input::Keys(keys) => {
            wait_for("herald> ", 1)?;
            // The last key powers the machine off, which may close the QMP socket before its
            // answer arrives: a QMP error counts only if the session's output is wrong too.
            typed = type_keys(&socket, keys);
            drop(stdin);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let _ = reader.join();
    let _ = std::fs::remove_file(&socket);
    if let Some(directory) = &added {
        let _ = std::fs::remove_dir_all(directory);
    }
    let shared = output;
    let output = shared.lock().map(|o| o.clone()).unwrap_or_default();
    let echoed =
        ports.iter().zip(port_threads).map(|((port, directory, sent), (writer, reader))| {
            // QEMU has gone: a reader still waiting for it to open the FIFO is let go.
            let _ =
                std::fs::OpenOptions::new().read(true).write(true).open(directory.join("port.out"));
            let _ = writer.join();
            let got = reader.join().unwrap_or_default();
            match sent.iter().zip(&got).position(|(a, b)| a != b) {
                None if got.len() == sent.len() => Ok(()),
                None => Err(format!("{port} sent back {} bytes of {}", got.len(), sent.len())),
                Some(at) => Err(format!("{port} sent back byte {at} wrong: {:?}", got[at] as char)),
            }
        });
    let echoed: Result<Vec<()>, String> = echoed.collect();
    let verdict = if !status.success() {
        Err(format!("exit status {status}"))
    } else if let Err(reason) = echoed {
        Err(reason)
    } else if let Some(bad) = session.forbid.iter().find(|f| output.contains(**f)) {
        Err(format!("output contains {:?}", &bad[..bad.len().min(60)]))
    } else {
        contains_in_order(&output, session.expect)
    };
    let verdict = verdict.map_err(|reason| match typed {
        Err(qmp) => format!("{reason} (and {qmp})"),
        Ok(()) => reason,
    });
    drop(output);
    verdict.map_err(|reason| format!("{reason}{}", tail_of(&shared)))
}

/// Runs every session; prints `name ... ok|FAILED` lines and returns the tally.
/// Runs every session (and the gdb check) whose name contains `only` (all of them: `""`).
pub(crate) fn run_all(root: &Path, only: &str) -> Tally {
    // Sessions boot a kernel each: run them side by side, as `cargo xtask test` runs test
    // kernels, and report them in their order. (Each QMP session has its own socket; only one uses gdb's port.)
    let jobs = crate::test_jobs();
    let smp_round = sessions()
        .into_iter()
        .filter(|session| !session.uefi && !NOT_IN_SMP_ROUND.contains(&session.name))
        .map(|session| (session, SMP_ROUND_QEMU_ARGS));
    let sessions: Vec<(Session, &str)> = sessions()
        .into_iter()
        .filter(|session| !ONLY_IN_SMP_ROUND.contains(&session.name))
        .map(|session| (session, ""))
        .chain(smp_round)
        .filter(|(session, _)| session.name.contains(only))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<(), String>>>> =
        Mutex::new((0..=sessions.len()).map(|_| None).collect());
    thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let result = match sessions.get(index) {
                        Some((session, extra)) => run_session(root, session, extra),
                        None if index == sessions.len() && only.is_empty() => {
                            gdb_stops_at_init(root)
                        }
                        None => break,
                    };
                    if let Ok(mut results) = results.lock() {
                        results[index] = Some(result);
                    }
                }
            });
        }
    });
    let names = sessions
        .iter()
        .map(|(session, extra)| {
            if extra.is_empty() {
                session.name.to_string()
            } else {
                format!("{} ({extra})", session.name)
            }
        })
        .chain(only.is_empty().then(|| "the_gdb_command_stops_at_the_kernels_init".to_string()));
    let results = results.into_inner().unwrap_or_default();
    let mut tally = Tally::default();
    for (name, result) in names.zip(results) {
        match result.unwrap_or_else(|| Err("never ran".into())) {
            Ok(()) => {
                println!("shell::{name} ... ok");
                tally.passed += 1;
            }
            Err(reason) => {
                println!("shell::{name} ... FAILED: {reason}");
                tally.failed += 1;
            }
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    tally
}

/// `cargo xtask gdb --batch`: the README's debugging command must stop at `herald::init`, with
/// symbols (a source line) rather than a bare address.
fn gdb_stops_at_init(root: &Path) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(me)
        .args(["gdb", "--batch"])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `cargo xtask gdb`: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.contains("Breakpoint 1, herald::init") && text.contains("src/lib.rs") {
        Ok(())
    } else {
        let tail: String =
            text.chars().rev().take(1500).collect::<Vec<_>>().into_iter().rev().collect();
        Err(format!("gdb did not stop at herald::init:\n{tail}"))
    }
}

/// Commands the soak rotates through, each with text only its answer prints.
const SOAK_COMMANDS: [(&str, &str); 7] = [
    ("uptime", "up "),
    ("events", "page-fault"),
    ("queues", "console input waiting for the shell"),
    ("ps", "pid"),
    ("mem", "frames:"),
    ("chains timer", "scheduler"),
    ("run hello", "exited with code 7]"),
];
/// Seconds between two commands of the soak.
const SOAK_COMMAND_INTERVAL_SECS: u64 = 3;
/// Every this many commands, a burst of serial input.
const SOAK_BURST_EVERY: usize = 10;
/// Unknown-command lines in one burst.
const SOAK_BURST_LINES: usize = 20;
/// How long a command may take to answer during the soak.
const SOAK_ANSWER_TIMEOUT_SECS: u64 = 30;

/// `cargo xtask shell --soak MINUTES`: `cargo run` with every module on (the heartbeat ticks
/// on every timer interrupt), a command every few seconds and bursts of serial input; every
/// command must be answered, every burst line refused with its error, and the kernel must power
/// off cleanly at the end.
pub(crate) fn soak(root: &Path, minutes: u64) -> Result<String, String> {
    let budget = Duration::from_secs(minutes * 60);
    let qemu_args = std::env::var("HERALD_QEMU_ARGS").unwrap_or_default();
    let mut child =
        start_kernel(root, &qemu_args, minutes * 60 + SESSION_TIMEOUT_SECS, false, None)?;
    let (output, reader) = collect_output(&mut child)?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let length = || output.lock().map(|o| o.len()).unwrap_or(0);
    let count_since = |from: usize, marker: &str| {
        output
            .lock()
            .map(|o| o.get(from..).map_or(0, |rest| rest.matches(marker).count()))
            .unwrap_or(0)
    };
    let wait_for = |from: usize, marker: &str, count: usize| -> Result<Duration, String> {
        let started = Instant::now();
        while count_since(from, marker) < count {
            if started.elapsed() > Duration::from_secs(SOAK_ANSWER_TIMEOUT_SECS) {
                return Err(format!("no {marker:?} within {SOAK_ANSWER_TIMEOUT_SECS} s"));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(started.elapsed())
    };
    let mut send = |bytes: &[u8]| -> Result<(), String> {
        stdin.write_all(bytes).and_then(|()| stdin.flush()).map_err(|e| format!("COM1: {e}"))
    };
    wait_for(0, "herald> ", 1)?;
    let started = Instant::now();
    let (mut answered, mut bursts, mut slowest) = (0usize, 0usize, Duration::ZERO);
    let mut result = Ok(());
    while started.elapsed() < budget {
        let (command, marker) = SOAK_COMMANDS[answered % SOAK_COMMANDS.len()];
        let from = length();
        if let Err(error) = send(format!("{command}\n").as_bytes())
            .and_then(|()| wait_for(from, marker, 1).map(|took| slowest = slowest.max(took)))
        {
            result = Err(format!("command {answered} `{command}`: {error}"));
            break;
        }
        answered += 1;
        if answered % SOAK_BURST_EVERY == 0 {
            let from = length();
            let mut burst = Vec::new();
            for line in 0..SOAK_BURST_LINES {
                burst.extend(format!("soakjunk{line}\n").bytes());
            }
            burst.extend(std::iter::repeat_n(b'y', 4000));
            burst.push(b'\n');
            let refused = send(&burst).and_then(|()| {
                wait_for(from, "error: unknown command", SOAK_BURST_LINES)?;
                wait_for(from, "error: line longer than 256 characters", 1)
            });
            if let Err(error) = refused {
                result = Err(format!("burst {bursts}: {error}"));
                break;
            }
            bursts += 1;
        }
        thread::sleep(Duration::from_secs(SOAK_COMMAND_INTERVAL_SECS));
    }
    let _ = send(b"poweroff\n");
    drop(send);
    drop(stdin);
    let status = child.wait().map_err(|e| e.to_string())?;
    let _ = reader.join();
    let output = output.lock().map(|o| o.clone()).unwrap_or_default();
    let summary = format!(
        "{answered} commands answered (slowest {} ms), {bursts} bursts of {} lines refused, {:.0} s",
        slowest.as_millis(),
        SOAK_BURST_LINES + 1,
        started.elapsed().as_secs_f64()
    );
    let tail = || output_tail(&output);
    result
        .map_err(|reason| format!("{reason} after {summary}\n--- output tail ---\n{}", tail()))?;
    if output.contains("panicked") {
        return Err(format!("the kernel panicked after {summary}\n{}", tail()));
    }
    if !status.success() || !output.contains("powering off") {
        return Err(format!("no clean power-off ({status}) after {summary}\n{}", tail()));
    }
    Ok(summary)
}
