//! The console as a terminal for Linux programs: a line discipline over the bytes the shell
//! hands the foreground program, with termios settings (`TCGETS`/`TCSETS*`), a foreground
//! process group (`TIOCGPGRP`/`TIOCSPGRP`) and what POSIX's general terminal interface says of
//! them: in canonical mode lines are edited (erase, kill) and a read returns one line, `EOF`
//! (Ctrl-D) ends a line or, on an empty one, reads as the end of input; `ISIG` turns the
//! interrupt and quit keys into `SIGINT` and `SIGQUIT` for the foreground group; `ECHO` shows
//! what is typed. In non-canonical (raw) mode each byte is readable at once, `VMIN` 0 makes a
//! read that finds nothing return 0.
//!
//! One console, so one terminal: its settings go back to the defaults whenever Herald's shell
//! starts a Linux program in the foreground (a program that left it raw does not leave the next
//! one raw). Input is bounded ([`INPUT_CAPACITY_BYTES`]): the shell holds back what does not fit.
//! Lock order: the scheduler's lock, then this one; echo and signals happen after it is let go.

#![forbid(unsafe_code)]

use alloc::{collections::VecDeque, vec::Vec};

use super::signals::{self, Origin};
use crate::{
    arch::IrqMutex,
    task::{
        Pid,
        scheduler::{BlockReason, SCHEDULER},
    },
};

/// Bytes of the kernel's `struct termios` (`TCGETS`): four flag words, the line discipline,
/// 19 control characters.
pub(super) const TERMIOS_BYTES: usize = 36;
/// Input held for readers, typed but unread (the shell keeps the rest until there is room).
const INPUT_CAPACITY_BYTES: usize = 4096;
/// Longest line canonical mode edits (Linux's `N_TTY_BUF_SIZE`); past it bytes are dropped
/// and counted, as a terminal's are.
const MAX_LINE_BYTES: usize = 4095;
/// Where the control characters start in `struct termios`, and their indices
/// (`asm-generic/termbits.h`).
const C_CC: usize = 17;
const VINTR: usize = 0;
const VQUIT: usize = 1;
const VERASE: usize = 2;
const VKILL: usize = 3;
const VEOF: usize = 4;
const VTIME: usize = 5;
const VMIN: usize = 6;
const VSUSP: usize = 10;
/// `c_iflag`, `c_oflag`, `c_cflag`, `c_lflag` bits.
const ICRNL: u32 = 0o400;
const IGNCR: u32 = 0o200;
const INLCR: u32 = 0o100;
const OPOST: u32 = 0o1;
const ONLCR: u32 = 0o4;
const B38400: u32 = 0o17;
const CS8: u32 = 0o60;
const CREAD: u32 = 0o200;
const ISIG: u32 = 0o1;
const ICANON: u32 = 0o2;
const ECHO: u32 = 0o10;
const ECHOE: u32 = 0o20;
const ECHOK: u32 = 0o40;
const ECHONL: u32 = 0o100;
const NOFLSH: u32 = 0o200;
const ECHOCTL: u32 = 0o1000;
const ECHOKE: u32 = 0o4000;
const IEXTEN: u32 = 0o100_000;
/// In the readable queue: where a line was ended by `EOF` (a read stops there; on its own, it
/// reads as the end of input).
const END_OF_INPUT: u16 = 0x100;
/// Signals the keys send.
const SIGQUIT: u64 = 3;
const SIGTSTP: u64 = 20;

/// The terminal.
struct Tty {
    termios: [u8; TERMIOS_BYTES],
    /// The line being edited (canonical mode).
    line: Vec<u8>,
    /// What reads take: bytes, and [`END_OF_INPUT`] marks.
    ready: VecDeque<u16>,
    /// The foreground process group (0: none).
    foreground: Pid,
    /// Bytes dropped because a line was full.
    dropped: u64,
}

static TTY: IrqMutex<Tty> = IrqMutex::new(Tty {
    termios: [0; TERMIOS_BYTES],
    line: Vec::new(),
    ready: VecDeque::new(),
    foreground: 0,
    dropped: 0,
});

/// Linux's default settings for a terminal (`stty sane`): canonical, echoing, signals on;
/// carriage return read as newline, newline written as CR-LF; `^C ^\ DEL ^U ^D ^Z`.
fn default_termios() -> [u8; TERMIOS_BYTES] {
    let mut termios = [0u8; TERMIOS_BYTES];
    let flags = [
        ICRNL,
        OPOST | ONLCR,
        B38400 | CS8 | CREAD,
        ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
    ];
    for (index, flag) in flags.into_iter().enumerate() {
        termios[4 * index..4 * index + 4].copy_from_slice(&flag.to_le_bytes());
    }
    let keys = [(VINTR, 0x03), (VQUIT, 0x1c), (VERASE, 0x7f), (VKILL, 0x15), (VEOF, 0x04)];
    for (index, key) in keys {
        termios[C_CC + index] = key;
    }
    termios[C_CC + VSUSP] = 0x1a;
    termios[C_CC + VMIN] = 1;
    termios[C_CC + VTIME] = 0;
    termios
}

impl Tty {
    fn flag(&self, word: usize) -> u32 {
        u32::from_le_bytes(self.termios[4 * word..4 * word + 4].try_into().expect("4 bytes"))
    }

    fn iflag(&self) -> u32 {
        self.flag(0)
    }

    fn lflag(&self) -> u32 {
        self.flag(3)
    }

    fn key(&self, index: usize) -> Option<u8> {
        // A control character of 0 (`_POSIX_VDISABLE`) is switched off.
        Some(self.termios[C_CC + index]).filter(|&key| key != 0)
    }

    fn canonical(&self) -> bool {
        self.lflag() & ICANON != 0
    }

    fn held_bytes(&self) -> usize {
        self.ready.len() + self.line.len()
    }

    /// Whether a read would take something now.
    fn readable(&self) -> bool {
        if self.canonical() {
            self.ready.iter().any(|&item| item == u16::from(b'\n') || item == END_OF_INPUT)
        } else {
            !self.ready.is_empty() || self.termios[C_CC + VMIN] == 0
        }
    }

    /// Takes what one read of up to `max_bytes` returns: a canonical read stops after a line.
    fn take(&mut self, max_bytes: usize) -> Vec<u8> {
        let mut taken = Vec::new();
        while taken.len() < max_bytes {
            let Some(item) = self.ready.pop_front() else { break };
            if item == END_OF_INPUT {
                if self.canonical() {
                    break;
                }
                continue;
            }
            taken.push(item as u8);
            if self.canonical() && item == u16::from(b'\n') {
                break;
            }
        }
        taken
    }
}

/// What one typed byte did, for the caller to carry out once the terminal's lock is let go.
#[derive(Default)]
struct Effects {
    echo: Vec<u8>,
    signal: Option<(u64, Pid)>,
}

/// Takes one byte typed at the console for the foreground program. `false` (taking nothing) if
/// the input is full: the caller keeps it until a read makes room.
pub(in crate::task) fn push(byte: u8) -> bool {
    let mut effects = Effects::default();
    {
        let mut tty = TTY.lock();
        if tty.held_bytes() >= INPUT_CAPACITY_BYTES {
            return false;
        }
        interpret(&mut tty, byte, &mut effects);
    }
    if !effects.echo.is_empty() {
        super::console::show(&effects.echo);
    }
    if let Some((signal, group)) = effects.signal
        && group != 0
    {
        signals::send_group(group, signal, Origin::KERNEL);
    }
    super::console::note_poll_event();
    SCHEDULER.lock().wake_matching(|reason| {
        matches!(reason, BlockReason::Input { .. } | BlockReason::Poll { .. })
    });
    true
}

fn interpret(tty: &mut Tty, byte: u8, effects: &mut Effects) {
    let (iflag, lflag) = (tty.iflag(), tty.lflag());
    let echo = lflag & ECHO != 0;
    if lflag & ISIG != 0 {
        let signal = match Some(byte) {
            key if key == tty.key(VINTR) => Some(signals::SIGINT),
            key if key == tty.key(VQUIT) => Some(SIGQUIT),
            key if key == tty.key(VSUSP) => Some(SIGTSTP),
            _ => None,
        };
        if let Some(signal) = signal {
            if lflag & NOFLSH == 0 {
                tty.line.clear();
                tty.ready.clear();
            }
            // Shown as typed (`^C` under `ECHOCTL`), no newline: as Linux's n_tty does.
            if echo {
                echo_byte(byte, lflag, &mut effects.echo);
            }
            effects.signal = Some((signal, tty.foreground));
            return;
        }
    }
    let byte = match byte {
        b'\r' if iflag & IGNCR != 0 => return,
        b'\r' if iflag & ICRNL != 0 => b'\n',
        b'\n' if iflag & INLCR != 0 => b'\r',
        byte => byte,
    };
    if !tty.canonical() {
        tty.ready.push_back(u16::from(byte));
        if echo {
            echo_byte(byte, lflag, &mut effects.echo);
        }
        return;
    }
    if Some(byte) == tty.key(VERASE) || byte == 0x08 {
        if tty.line.pop().is_some() && echo && lflag & ECHOE != 0 {
            effects.echo.extend_from_slice(b"\x08 \x08");
        }
    } else if Some(byte) == tty.key(VKILL) {
        if echo && lflag & (ECHOK | ECHOKE) != 0 {
            for _ in 0..tty.line.len() {
                effects.echo.extend_from_slice(b"\x08 \x08");
            }
        }
        tty.line.clear();
    } else if Some(byte) == tty.key(VEOF) {
        let line = core::mem::take(&mut tty.line);
        tty.ready.extend(line.into_iter().map(u16::from));
        tty.ready.push_back(END_OF_INPUT);
    } else if byte == b'\n' {
        let line = core::mem::take(&mut tty.line);
        tty.ready.extend(line.into_iter().map(u16::from));
        tty.ready.push_back(u16::from(b'\n'));
        if echo || lflag & ECHONL != 0 {
            effects.echo.push(b'\n');
        }
    } else if tty.line.len() < MAX_LINE_BYTES {
        tty.line.push(byte);
        if echo {
            echo_byte(byte, lflag, &mut effects.echo);
        }
    } else {
        tty.dropped += 1;
    }
}

/// How a typed byte is shown: as itself, or a control character as `^X` (`ECHOCTL`).
fn echo_byte(byte: u8, lflag: u32, echo: &mut Vec<u8>) {
    if byte < 0x20 && byte != b'\n' && byte != b'\t' && lflag & ECHOCTL != 0 {
        echo.extend_from_slice(&[b'^', byte + b'@']);
    } else {
        echo.push(byte);
    }
}

/// For a read of up to `max_bytes`: what it takes now, or, with nothing readable, `None` after
/// blocking the caller until input comes (the call starts again then).
pub(super) fn take_or_block(max_bytes: usize) -> Option<Vec<u8>> {
    let mut scheduler = SCHEDULER.lock();
    let mut tty = TTY.lock();
    if !tty.readable() {
        scheduler.block_current(BlockReason::Input { until_ms: u64::MAX });
        return None;
    }
    Some(tty.take(max_bytes))
}

/// Whether a read would take something now.
pub(super) fn readable() -> bool {
    TTY.lock().readable()
}

/// The settings (`TCGETS`).
pub(super) fn termios() -> [u8; TERMIOS_BYTES] {
    TTY.lock().termios
}

/// New settings (`TCSETS`; `flush`: `TCSETSF`, typed input is dropped first). Leaving
/// canonical mode makes the line being edited readable as it is.
pub(super) fn set_termios(termios: [u8; TERMIOS_BYTES], flush: bool) {
    let mut tty = TTY.lock();
    if flush {
        tty.line.clear();
        tty.ready.clear();
    }
    tty.termios = termios;
    if !tty.canonical() && !tty.line.is_empty() {
        let line = core::mem::take(&mut tty.line);
        tty.ready.extend(line.into_iter().map(u16::from));
    }
    drop(tty);
    super::console::note_poll_event();
    SCHEDULER.lock().wake_matching(|reason| {
        matches!(reason, BlockReason::Input { .. } | BlockReason::Poll { .. })
    });
}

/// Drops typed, unread input (`TCFLSH` of the input queue).
pub(super) fn flush_input() {
    let mut tty = TTY.lock();
    tty.line.clear();
    tty.ready.clear();
}

/// Bytes a read could take (`FIONREAD`).
pub(super) fn waiting_bytes() -> usize {
    TTY.lock().ready.iter().filter(|&&item| item != END_OF_INPUT).count()
}

/// The foreground process group (`TIOCGPGRP`; `/proc/PID/stat`'s `tpgid`).
pub(in crate::task) fn foreground() -> Pid {
    TTY.lock().foreground
}

/// Makes `group` the foreground process group (`TIOCSPGRP`).
pub(super) fn set_foreground(group: Pid) {
    TTY.lock().foreground = group;
}

/// Herald's shell starts Linux program `pid` in the foreground: its group is the foreground
/// one, the settings are the defaults, nothing typed before is waiting.
pub(in crate::task) fn start_foreground(pid: Pid) {
    let mut tty = TTY.lock();
    tty.termios = default_termios();
    tty.foreground = pid;
    tty.line.clear();
    tty.ready.clear();
}

/// What was typed and never read, for Herald's shell to take back; the terminal has no
/// foreground group until the next program.
pub(in crate::task) fn take_unread() -> Vec<u8> {
    let mut tty = TTY.lock();
    tty.foreground = 0;
    let mut unread: Vec<u8> =
        tty.ready.drain(..).filter(|&item| item != END_OF_INPUT).map(|item| item as u8).collect();
    unread.append(&mut tty.line);
    unread
}
