//! `execve`: a Linux program replaces itself with another program file — an ELF executable,
//! or a script whose first line names its interpreter (`#!`). The argument vector and
//! environment are read from the caller; descriptors marked close-on-exec are closed, caught
//! signals go back to their default action (ignored ones stay ignored, the mask stays).
//!
//! Limits: argv and envp together at most `start_stack::MAX_ARGUMENT_BYTES` (`E2BIG`), a
//! script's `#!` line at most [`INTERPRETER_LINE_BYTES`], scripts naming scripts at most
//! [`MAX_INTERPRETER_DEPTH`] deep (`ELOOP`).

#![forbid(unsafe_code)]

use alloc::{format, string::String, vec::Vec};

use super::{files, u64_at, with_state};
use crate::{
    events::{Errno, SpaceId},
    fs,
    mm::user_copy,
    security::{self, PathAccess},
    task::{
        process::{self, Exec},
        scheduler,
        start_stack::MAX_ARGUMENT_BYTES,
    },
};

/// Longest `#!` line read, as Linux's `BINPRM_BUF_SIZE`.
const INTERPRETER_LINE_BYTES: usize = 256;
/// Scripts whose interpreter is a script, at most (Linux allows 4 such rewrites too).
const MAX_INTERPRETER_DEPTH: usize = 4;
/// `execveat` flags.
const AT_EMPTY_PATH: u64 = 0x1000;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
/// `st_mode`'s file-type bits (`S_IFMT`) and its three execute bits.
const FILE_TYPE_BITS: u32 = 0o170_000;
const ANY_EXECUTE_BITS: u32 = 0o111;
/// What a sandbox manifest beside a program is called: its path with this added.
const MANIFEST_SUFFIX: &str = ".syscalls";

/// `execve(path, argv, envp)`, and `execveat(dirfd, path, argv, envp, flags)`. On success the
/// call does not return to the old program: the value is what the new one's `rax` starts as.
pub(super) fn execveat(
    dirfd: u64,
    path: u64,
    argv: u64,
    envp: u64,
    flags: u64,
    space: SpaceId,
) -> Result<u64, Errno> {
    if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = files::path_argument(path, space)?;
    let mut budget = MAX_ARGUMENT_BYTES;
    let mut argv = read_strings(argv, &mut budget, space)?;
    let envp = read_strings(envp, &mut budget, space)?;
    let by_descriptor = path.is_empty() && flags & AT_EMPTY_PATH != 0;
    let mut node = if by_descriptor {
        // A descriptor has no path to check: a process confined to paths runs only what
        // its rules name (unless they name everything).
        let (pid, _) = scheduler::current_caller();
        security::check_path(pid, PathAccess::Execute, || Ok(format!("descriptor {dirfd}")))?;
        files::file(dirfd)?.node.clone()
    } else {
        let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
        files::located(dirfd, &path, follow, PathAccess::Execute)?.node()?
    };
    let mut file_path = if by_descriptor { fs::path_of(&node) } else { path };
    let mut depth = 0;
    loop {
        check_executable(&node)?;
        let contents = fs::contents(&node)?;
        let Some((interpreter, argument)) = interpreter_line(contents.bytes())? else {
            // The manifest beside the file itself, links followed: busybox's applets are links
            // to one program with one manifest.
            return run(&file_path, &final_target(&file_path)?, contents.bytes(), &argv, &envp);
        };
        depth += 1;
        if depth > MAX_INTERPRETER_DEPTH {
            return Err(Errno::ELOOP);
        }
        // As Linux: the interpreter, its one optional argument, the script's path, then the
        // script's arguments after its name.
        let rest = if argv.is_empty() { Vec::new() } else { argv.split_off(1) };
        argv = [interpreter.clone()].into_iter().chain(argument).chain([file_path]).collect();
        argv.extend(rest);
        if argv.iter().map(|word| word.len() + 1 + 8).sum::<usize>() > MAX_ARGUMENT_BYTES {
            return Err(Errno::E2BIG);
        }
        node = files::located(super::AT_FDCWD, &interpreter, true, PathAccess::Execute)?.node()?;
        file_path = interpreter;
    }
}

/// Runs `image` (the file at `path`, which is `real_path` with links resolved) in place of the
/// caller's program.
fn run(
    path: &str,
    real_path: &str,
    image: &[u8],
    argv: &[String],
    envp: &[String],
) -> Result<u64, Errno> {
    let manifest = manifest_of(real_path)?;
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let envp: Vec<&str> = envp.iter().map(String::as_str).collect();
    let name = path.rsplit('/').next().filter(|name| !name.is_empty()).unwrap_or(path);
    process::exec_current(&Exec {
        name,
        path: real_path,
        image,
        argv: &argv,
        envp: &envp,
        manifest: manifest.as_ref(),
    })?;
    // The old program is gone: what its calls set up for this one is what survives an exec.
    let closed = with_state(|state| {
        state.signals.reset_for_exec();
        state.console = super::console::ConsoleState::default();
        state.files.take_close_on_exec()
    });
    // Closed outside the scheduler's lock: the last end of a pipe wakes the other.
    drop(closed);
    Ok(0)
}

/// `path` with its last component's symbolic links followed (as far as the resolution limit):
/// where the file itself is, for the manifest beside it.
fn final_target(path: &str) -> Result<String, Errno> {
    let cwd = files::start_directory(super::AT_FDCWD)?;
    let mut path = String::from(path);
    for _ in 0..fs::MAX_SYMLINK_DEPTH {
        let Ok(target) = fs::read_link(&cwd, &path) else { break };
        path = match path.rsplit_once('/') {
            Some((directory, _)) if !target.starts_with('/') => format!("{directory}/{target}"),
            _ => target,
        };
    }
    Ok(path)
}

/// Whether `node` may be run: a regular file with an execute bit.
fn check_executable(node: &fs::Node) -> Result<(), Errno> {
    let stat = node.stat();
    if stat.mode & FILE_TYPE_BITS != fs::S_IFREG || stat.mode & ANY_EXECUTE_BITS == 0 {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// A script's interpreter and its optional argument, if `bytes` starts with `#!`.
fn interpreter_line(bytes: &[u8]) -> Result<Option<(String, Option<String>)>, Errno> {
    let head = &bytes[..bytes.len().min(INTERPRETER_LINE_BYTES)];
    let Some(rest) = head.strip_prefix(b"#!") else { return Ok(None) };
    let line = match rest.iter().position(|&byte| byte == b'\n') {
        Some(end) => &rest[..end],
        None if bytes.len() <= INTERPRETER_LINE_BYTES => rest,
        // Linux would cut the line short; a `#!` line this long is a mistake, said so.
        None => return Err(Errno::ENOEXEC),
    };
    let line = core::str::from_utf8(line).map_err(|_| Errno::ENOEXEC)?.trim();
    let (interpreter, argument) = match line.split_once([' ', '\t']) {
        Some((interpreter, argument)) => (interpreter, Some(argument.trim())),
        None => (line, None),
    };
    if interpreter.is_empty() {
        return Err(Errno::ENOEXEC);
    }
    let argument = argument.filter(|argument| !argument.is_empty()).map(String::from);
    Ok(Some((String::from(interpreter), argument)))
}

/// The sandbox manifest beside the program at `path`, if there is one (read from the file
/// system, so a manifest dropped in with the program counts).
fn manifest_of(path: &str) -> Result<Option<security::LinuxManifest>, Errno> {
    let cwd = files::start_directory(super::AT_FDCWD)?;
    let Ok(node) = fs::resolve(&cwd, &format!("{path}{MANIFEST_SUFFIX}"), true) else {
        return Ok(None);
    };
    let contents = fs::contents(&node)?;
    process::parse_manifest(contents.bytes()).map(Some).map_err(|error| error.errno())
}

/// Reads a null-terminated vector of string pointers at `vector` (0: none), each string and
/// pointer charged to `budget`.
fn read_strings(vector: u64, budget: &mut usize, space: SpaceId) -> Result<Vec<String>, Errno> {
    let mut strings = Vec::new();
    if vector == 0 {
        return Ok(strings);
    }
    for index in 0.. {
        let mut pointer = [0u8; 8];
        let at = vector.checked_add(8 * index).ok_or(Errno::EFAULT)?;
        user_copy::copy_from_user(space, at, &mut pointer)?;
        let address = u64_at(&pointer, 0);
        if address == 0 {
            break;
        }
        *budget = budget.checked_sub(8).ok_or(Errno::E2BIG)?;
        let string = user_copy::copy_string_from_user(space, address, *budget)
            .map_err(|errno| if errno == Errno::ENAMETOOLONG { Errno::E2BIG } else { errno })?;
        *budget = budget.checked_sub(string.len() + 1).ok_or(Errno::E2BIG)?;
        strings.push(string);
    }
    Ok(strings)
}
