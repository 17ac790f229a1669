//! The shell's session: routing console input (to the foreground program or the line editor),
//! the prompt, and running commands.
//!
//! Drivers only append bytes to the console input from their bottom halves; the idle task
//! processes them ([`run_pending`]) — echo, editing, commands that may take seconds — outside
//! any deferred handler's watchdog budget. Nothing is dropped: the shell stops handing bytes to
//! a program whose input queue is full, and leaves them in the console input.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use super::{
    commands,
    line::{self, Edit, LineEditor},
};
use crate::{
    arch::IrqMutex,
    console::input,
    events::{BUS, Event, EventKind, OverflowPolicy, Priority},
    print, println,
    task::{self, Pid},
};

/// The prompt.
const PROMPT: &str = "herald> ";
/// Ctrl-C.
const INTERRUPT: u8 = 0x03;
static EDITOR: IrqMutex<LineEditor> = IrqMutex::new(LineEditor::new());
static STARTED: AtomicBool = AtomicBool::new(false);
/// The program running in the foreground (0: none).
static FOREGROUND: AtomicU32 = AtomicU32::new(0);
/// The foreground program is a Linux one, whose terminal handles the interrupt key.
static TERMINAL: AtomicBool = AtomicBool::new(false);

/// Prints the greeting and prompt; from now on the idle task runs the shell.
pub fn start() {
    BUS.subscribe_deferred(
        EventKind::ProcessExited,
        "shell",
        Priority::OBSERVER,
        16,
        OverflowPolicy::DropOldest,
        on_process_exited,
    )
    .expect("the shell subscribes at start")
    .keep_forever();
    println!("Herald shell: type `help` for the commands.");
    print!("{PROMPT}");
    STARTED.store(true, Ordering::Release);
    autorun();
}

/// The boot image's file whose first line the shell runs as if typed once it is up: the way
/// to boot straight into a program (`run busybox sh`), as the first process.
const AUTORUN_PATH: &str = "/etc/herald/autorun";

fn autorun() {
    let Some(text) = task::image_file(AUTORUN_PATH) else { return };
    let line = text.split(|&byte| byte == b'\n').next().unwrap_or_default();
    let Ok(line) = core::str::from_utf8(line) else {
        println!("error: {AUTORUN_PATH} is not UTF-8; ignored");
        print!("{PROMPT}");
        return;
    };
    println!("{line}");
    match commands::run(line.trim()) {
        Some(pid) => start_foreground(pid),
        None => print!("{PROMPT}"),
    }
}

/// Ended foreground programs not reaped yet: the exit is announced while its CPU may still be
/// leaving the task, and a deferred handler must not wait (it would switch tasks under the
/// watchdog). The idle task reaps them ([`run_pending`]).
static UNREAPED: IrqMutex<Vec<u32>> = IrqMutex::new(Vec::new());

/// A foreground program ended: reap it, report, and give the shell the input it left unread.
fn on_process_exited(event: &Event) {
    let Event::ProcessExited { pid, code } = *event else { return };
    if pid != 0 && FOREGROUND.compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire).is_ok()
    {
        if task::try_reap(pid).is_none() {
            UNREAPED.lock().push(pid);
        }
        commands::foreground_ended(pid);
        println!("[pid {pid} {}]", task::describe_end(code));
        print!("{PROMPT}");
        input::give_back(&task::take_input());
    }
}

/// Processes waiting console input: runs the typed commands, feeds the foreground program.
/// Called by the idle task; returns when the input is used up or a program must read first.
pub fn run_pending() {
    if !STARTED.load(Ordering::Acquire) {
        return;
    }
    let unreaped = core::mem::take(&mut *UNREAPED.lock());
    let still: Vec<u32> =
        unreaped.into_iter().filter(|&pid| task::try_reap(pid).is_none()).collect();
    UNREAPED.lock().extend(still);
    while let Some(byte) = input::peek() {
        let foreground = FOREGROUND.load(Ordering::Acquire);
        if foreground != 0 {
            // A Linux program's terminal turns the key into SIGINT itself (or, raw, hands it
            // over as a byte).
            if byte == INTERRUPT && !TERMINAL.load(Ordering::Acquire) {
                println!("^C");
                let _ = task::kill(foreground);
            } else if !task::push_input(&[byte]) {
                // The program's queue is full: leave the byte until it reads.
                break;
            }
            input::take();
            continue;
        }
        input::take();
        edit(byte);
    }
    // Room again: let drivers take what their devices held back.
    input::room_made();
}

fn edit(byte: u8) {
    if byte == INTERRUPT {
        EDITOR.lock().clear();
        print!("^C\n{PROMPT}");
        return;
    }
    let edit = EDITOR.lock().feed(byte, &commands::completions);
    match edit {
        Edit::Nothing => {}
        Edit::Echo(byte) => print!("{}", char::from(byte)),
        Edit::Erase => print!("\u{8} \u{8}"),
        Edit::Show(text) => print!("{text}"),
        Edit::Candidates(words) => {
            println!();
            println!("{}", words.join("  "));
            print!("{PROMPT}{}", EDITOR.lock().redraw());
        }
        Edit::TooLong => {
            println!();
            println!("error: line longer than {} characters; ignored", line::MAX_LINE_LEN_BYTES);
            print!("{PROMPT}");
        }
        Edit::Line(line) => {
            println!();
            // No lock is held: commands run with interrupts on, for as long as they take.
            match commands::run(&line) {
                Some(pid) => start_foreground(pid),
                None => print!("{PROMPT}"),
            }
        }
    }
}

fn start_foreground(pid: Pid) {
    TERMINAL.store(task::start_foreground(pid), Ordering::Release);
    FOREGROUND.store(pid, Ordering::Release);
    // It may have ended already, before it was foreground.
    if !task::is_alive(pid) {
        on_process_exited(&Event::ProcessExited { pid, code: 0 });
    }
}
