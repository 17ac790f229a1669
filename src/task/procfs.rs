//! `/proc`: the processes and the machine as Linux programs read them — `self` (a link to the
//! caller's own directory), `uptime`, `meminfo`, and per process `status`, `stat`, `cmdline`
//! and `exe`. Each file is rendered when it is read, from the process table of that moment (a
//! process that has gone reads as `ESRCH`). Served to the file system as a synthetic directory
//! (`fs::Provider`): the file system knows nodes, this file knows processes.
//!
//! What is not here yet: per-process `fd/`, `maps`, `environ`, and the system-wide files
//! beyond these two. Fields Herald does not keep (page-fault counts, start time, nice) read 0.

#![forbid(unsafe_code)]

use alloc::{format, string::String, sync::Arc, vec::Vec};
use core::fmt::Write;

use super::{
    Pid,
    scheduler::{self, BlockReason, Command, SCHEDULER, State},
};
use crate::{
    arch,
    events::SpaceId,
    fs::{self, Errno, Listing, Node, Provider, S_IFDIR, S_IFLNK, S_IFREG},
    mm::{self, space},
};

/// Inode numbers of `/proc`'s nodes: this bit, then the pid shifted by [`PID_SHIFT`], then the
/// entry's number — far above the tree's own, which count up from 2.
const INODE_BASE: u64 = 1 << 48;
const PID_SHIFT: u32 = 8;
/// Linux's `TASK_COMM_LEN` less the terminator: the longest name `stat` and `status` show.
const COMMAND_NAME_BYTES: usize = 15;
/// `USER_HZ`: the unit of `stat`'s times.
const USER_HZ: u64 = 100;

/// The entries of `/proc` itself, each with its number in the inode.
const SELF: (&str, u64) = ("self", 1);
const UPTIME: (&str, u64) = ("uptime", 2);
const MEMINFO: (&str, u64) = ("meminfo", 3);
/// The entries of a process's directory.
const STATUS: (&str, u64) = ("status", 1);
const STAT: (&str, u64) = ("stat", 2);
const CMDLINE: (&str, u64) = ("cmdline", 3);
const EXE: (&str, u64) = ("exe", 4);

fn inode(pid: Pid, entry: u64) -> u64 {
    INODE_BASE | u64::from(pid) << PID_SHIFT | entry
}

/// Mounts `/proc` (at boot, after the image's tree is in place).
pub(super) fn mount() {
    if let Err(errno) = fs::mount("proc", inode(0, 0), Arc::new(Root)) {
        log::warn!("/proc not mounted: {errno} (the boot image has a /proc of its own)");
    }
}

/// One process, as its files show it.
struct Snapshot {
    name: String,
    state: State,
    parent: Pid,
    group: Pid,
    session: Pid,
    cpu_ticks: u64,
    space: SpaceId,
    command: Arc<Command>,
}

fn snapshot(pid: Pid) -> Result<Snapshot, Errno> {
    let scheduler = SCHEDULER.lock();
    let task = scheduler.tasks.get(&pid).ok_or(Errno::ESRCH)?;
    Ok(Snapshot {
        name: task.name.chars().take(COMMAND_NAME_BYTES).collect(),
        state: task.state,
        parent: task.parent,
        group: task.group,
        session: task.session,
        cpu_ticks: task.cpu_ticks,
        space: task.space,
        command: task.command.clone(),
    })
}

/// Linux's one-letter state and its word (`status` shows both).
fn state_letter(state: State) -> (char, &'static str) {
    match state {
        State::Ready | State::Running => ('R', "running"),
        State::Blocked(BlockReason::Stopped) => ('T', "stopped"),
        State::Blocked(_) => ('S', "sleeping"),
        State::Zombie(_) => ('Z', "zombie"),
    }
}

fn reserved_bytes(space: SpaceId) -> u64 {
    space::usage(space).map_or(0, |usage| usage.reserved_bytes)
}

fn render_status(pid: Pid) -> Result<Vec<u8>, Errno> {
    let process = snapshot(pid)?;
    let (letter, word) = state_letter(process.state);
    let mut text = String::new();
    let _ = write!(
        text,
        "Name:\t{}\nState:\t{letter} ({word})\nTgid:\t{pid}\nPid:\t{pid}\nPPid:\t{}\n\
         TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nVmSize:\t{} kB\nThreads:\t1\n",
        process.name,
        process.parent,
        reserved_bytes(process.space) / 1024,
    );
    Ok(text.into_bytes())
}

/// The console's device number as `stat`'s `tty_nr` gives it: `/dev/console`, major 5,
/// minor 1 (`Documentation/admin-guide/devices.txt`). It is every process's terminal.
const CONSOLE_TTY_NR: u32 = 5 << 8 | 1;

/// `proc(5)`'s `stat` line: 52 fields, those Herald does not keep as 0.
fn render_stat(pid: Pid) -> Result<Vec<u8>, Errno> {
    let process = snapshot(pid)?;
    let (letter, _) = state_letter(process.state);
    let user_ticks = process.cpu_ticks * USER_HZ / u64::from(arch::TICK_HZ);
    let vsize = reserved_bytes(process.space);
    // The terminal's foreground group (`ps` marks its members with `+`); -1: none.
    let foreground = match super::linux::tty::foreground() {
        0 => -1,
        group => i64::from(group),
    };
    let mut text = format!(
        "{pid} ({}) {letter} {} {} {} {CONSOLE_TTY_NR} {foreground} 0 0 0 0 0 {user_ticks} 0 0 0 \
         20 0 1 0 0 {vsize} {}",
        process.name,
        process.parent,
        process.group,
        process.session,
        vsize / mm::FRAME_SIZE_BYTES,
    );
    // rsslim (25) to exit_code (52): 28 fields Herald has nothing for.
    for _ in 25..=52 {
        text.push_str(" 0");
    }
    text.push('\n');
    Ok(text.into_bytes())
}

fn render_uptime() -> Result<Vec<u8>, Errno> {
    let uptime_ms = arch::milliseconds();
    let idle_ms = scheduler::idle_ticks() * 1000 / u64::from(arch::TICK_HZ);
    let centi = |ms: u64| format!("{}.{:02}", ms / 1000, ms % 1000 / 10);
    Ok(format!("{} {}\n", centi(uptime_ms), centi(idle_ms)).into_bytes())
}

fn render_meminfo() -> Result<Vec<u8>, Errno> {
    let frames = mm::frame_stats();
    let kib = |frames: usize| frames as u64 * mm::FRAME_SIZE_BYTES / 1024;
    let (files_bytes, _) = fs::usage();
    let mut text = String::new();
    let _ = write!(
        text,
        "MemTotal:       {:8} kB\nMemFree:        {:8} kB\nMemAvailable:   {:8} kB\n\
         Buffers:        {:8} kB\nCached:         {:8} kB\nShmem:          {:8} kB\n",
        kib(frames.total),
        kib(frames.free),
        kib(frames.free),
        0,
        files_bytes / 1024,
        files_bytes / 1024,
    );
    Ok(text.into_bytes())
}

fn generated(pid: Pid, entry: u64, render: fn(Pid) -> Result<Vec<u8>, Errno>) -> Arc<Node> {
    fs::generated_file(inode(pid, entry), Arc::new(move || render(pid)))
}

/// `/proc` itself.
struct Root;

impl Provider for Root {
    fn lookup(&self, directory: &Arc<Node>, name: &str) -> Option<Arc<Node>> {
        match name {
            _ if name == SELF.0 => {
                let (caller, _) = scheduler::current_caller();
                // The kernel has no directory here.
                (caller != 0).then(|| fs::synthetic_link(inode(0, SELF.1), format!("{caller}")))
            }
            _ if name == UPTIME.0 => Some(generated(0, UPTIME.1, |_| render_uptime())),
            _ if name == MEMINFO.0 => Some(generated(0, MEMINFO.1, |_| render_meminfo())),
            _ => {
                let pid: Pid = name.parse().ok().filter(|_| !name.starts_with(['+', '0']))?;
                snapshot(pid).ok()?;
                let process = Arc::new(ProcessDirectory(pid));
                Some(fs::synthetic_directory(inode(pid, 0), directory, name, process))
            }
        }
    }

    fn list(&self) -> Vec<Listing> {
        let entry = |(name, number): (&str, u64), kind| Listing {
            name: String::from(name),
            inode: inode(0, number),
            kind,
        };
        let mut listing =
            Vec::from([entry(SELF, S_IFLNK), entry(UPTIME, S_IFREG), entry(MEMINFO, S_IFREG)]);
        let pids: Vec<Pid> = SCHEDULER.lock().tasks.keys().copied().collect();
        listing.extend(pids.into_iter().map(|pid| Listing {
            name: format!("{pid}"),
            inode: inode(pid, 0),
            kind: S_IFDIR,
        }));
        listing
    }
}

/// `/proc/PID`.
struct ProcessDirectory(Pid);

impl Provider for ProcessDirectory {
    fn lookup(&self, _directory: &Arc<Node>, name: &str) -> Option<Arc<Node>> {
        let pid = self.0;
        match name {
            _ if name == STATUS.0 => Some(generated(pid, STATUS.1, render_status)),
            _ if name == STAT.0 => Some(generated(pid, STAT.1, render_stat)),
            _ if name == CMDLINE.0 => {
                Some(generated(pid, CMDLINE.1, |pid| Ok(snapshot(pid)?.command.line.clone())))
            }
            _ if name == EXE.0 => {
                let exe = snapshot(pid).ok()?.command.exe.clone();
                Some(fs::synthetic_link(inode(pid, EXE.1), exe))
            }
            _ => None,
        }
    }

    fn list(&self) -> Vec<Listing> {
        [(STATUS, S_IFREG), (STAT, S_IFREG), (CMDLINE, S_IFREG), (EXE, S_IFLNK)]
            .into_iter()
            .map(|((name, number), kind)| Listing {
                name: String::from(name),
                inode: inode(self.0, number),
                kind,
            })
            .collect()
    }
}
