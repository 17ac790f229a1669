//! The shell's session: console input routing, the prompt, and the foreground program.

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::{
    commands,
    line::{self, Edit, LineEditor},
};
use crate::{
    arch::IrqMutex,
    events::{BUS, Event, EventKind, OverflowPolicy, Priority},
    print, println,
    task::{self, Pid},
};

/// The prompt.
const PROMPT: &str = "herald> ";
/// Ctrl-C.
const INTERRUPT: u8 = 0x03;
/// Input kept before the shell starts; beyond it bytes are counted as dropped.
const PENDING_CAPACITY_BYTES: usize = 4096;

struct Shell {
    editor: LineEditor,
    /// Input that arrived before [`start`].
    pending: VecDeque<u8>,
}

static SHELL: IrqMutex<Shell> =
    IrqMutex::new(Shell { editor: LineEditor::new(), pending: VecDeque::new() });
static STARTED: AtomicBool = AtomicBool::new(false);
/// The program running in the foreground (0: none).
static FOREGROUND: AtomicU32 = AtomicU32::new(0);
/// Input bytes dropped because nobody could take them yet.
static DROPPED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Input bytes the shell had to drop (only before it started, with more than 4 KiB waiting).
pub fn dropped_bytes() -> u64 {
    DROPPED_BYTES.load(Ordering::Relaxed)
}

/// Prints the greeting and prompt, then handles whatever input arrived during boot.
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
    let pending: VecDeque<u8> = core::mem::take(&mut SHELL.lock().pending);
    for byte in pending {
        feed(byte);
    }
}

fn on_process_exited(event: &Event) {
    let Event::ProcessExited { pid, .. } = *event else { return };
    if pid != 0 && FOREGROUND.compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire).is_ok()
    {
        // Already a zombie when announced, so this returns at once.
        let code = task::wait(pid).unwrap_or(-1);
        println!("[pid {pid} exited with code {code}]");
        print!("{PROMPT}");
        // Input the program did not read belongs to the shell again (type-ahead, scripts).
        for byte in task::take_input() {
            feed(byte);
        }
    }
}

/// Takes one byte of console input (from the serial or keyboard driver).
pub fn feed(byte: u8) {
    if !STARTED.load(Ordering::Acquire) {
        let mut shell = SHELL.lock();
        if shell.pending.len() < PENDING_CAPACITY_BYTES {
            shell.pending.push_back(byte);
        } else {
            DROPPED_BYTES.fetch_add(1, Ordering::Relaxed);
        }
        return;
    }
    let foreground = FOREGROUND.load(Ordering::Acquire);
    if foreground != 0 {
        to_program(foreground, byte);
        return;
    }
    if byte == INTERRUPT {
        SHELL.lock().editor.clear();
        print!("^C\n{PROMPT}");
        return;
    }
    let edit = SHELL.lock().editor.feed(byte);
    match edit {
        Edit::Nothing => {}
        Edit::Echo(byte) => print!("{}", char::from(byte)),
        Edit::Erase => print!("\u{8} \u{8}"),
        Edit::TooLong => {
            println!();
            println!("error: line longer than {} characters; ignored", line::MAX_LINE_LEN_BYTES);
            print!("{PROMPT}");
        }
        Edit::Line(line) => {
            println!();
            // The lock is not held here: commands run with interrupts on, for as long as they take.
            if let Some(pid) = commands::run(&line) {
                FOREGROUND.store(pid, Ordering::Release);
                // It may have ended already, before it was foreground.
                if !task::is_alive(pid) {
                    on_process_exited(&Event::ProcessExited { pid, code: 0 });
                }
            } else {
                print!("{PROMPT}");
            }
        }
    }
}

/// Input for the foreground program: Ctrl-C ends it; everything else waits for its `read`
/// (which echoes it) and returns to the shell if the program ends without reading it.
fn to_program(pid: Pid, byte: u8) {
    if byte == INTERRUPT {
        println!("^C");
        let _ = task::kill_from_kernel(pid);
        return;
    }
    task::push_input(&[byte]);
}
