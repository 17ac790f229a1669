//! Security policies: one policy, chosen at build time, sits in the security band of the
//! `syscall` and `memory` chains — ahead of the owners that do the work (the process calls,
//! mm) — and may deny a request, never grant one. mm and the scheduler contain no permission
//! checks at all; swapping the policy swaps the whole permission model.
//!
//! How checks combine: both chains use "first decision wins". The policy runs first; its
//! `Deny(errno)` ends the dispatch, no owner runs, and the caller gets the errno. If it lets
//! the request pass, the owner may still refuse it for its own reasons (a bad address, no such
//! process). A request is therefore served only if the policy *and* the owner accept it, and
//! a policy can never make an owner do something the owner would refuse. A system call that
//! becomes a memory request (map, share, …) is checked twice: as a call, then as a request.
//!
//! Select a policy with a cargo feature, exactly one of `policy-permissive`,
//! `policy-capability` (the default) and `policy-sandbox`:
//! `cargo run --no-default-features --features policy-sandbox`.
#![forbid(unsafe_code)]

#[cfg(target_os = "none")]
mod hooks;
pub mod manifest;

pub use self::manifest::{LinuxManifest, ManifestError, PathAccess, PathRules};
use crate::{
    events::{Errno, MemoryRequest},
    vocab::Pid,
};

/// The system calls a new process's program says it needs, in its own numbering.
#[derive(Clone, Copy, Debug)]
pub enum DeclaredCalls<'a> {
    /// A Herald program: its executable's `.herald_syscalls` section (bit `n`: call `n`), if
    /// it has one.
    Herald(Option<u64>),
    /// A Linux program: what its manifest (`NAME.syscalls` beside it) declares, if it has one.
    Linux(Option<&'a LinuxManifest>),
    /// A copy of its parent (`fork`): exactly the parent's calls.
    Inherited,
}

/// What a policy learns when a process is created.
#[derive(Clone, Copy, Debug)]
pub struct SpawnInfo<'a> {
    /// The creator (0: the kernel).
    pub parent: Pid,
    /// The new process.
    pub child: Pid,
    /// Its program's name.
    pub program: &'a str,
    /// The system calls its program declares it needs.
    pub declared: DeclaredCalls<'a>,
    /// Rights the parent asked to withhold from the child (the `spawn` call's fifth argument).
    pub withheld_rights: u64,
}

/// Answers the policy needs about processes; the kernel implements it over the process table.
pub trait Processes {
    /// Whether process `pid` exists and has not ended.
    fn exists(&self, pid: Pid) -> bool;
    /// The process owning address space `space`, if any.
    fn owner_of(&self, space: crate::events::SpaceId) -> Option<Pid>;
    /// The parent of process `pid` (0: the kernel), if it exists.
    fn parent_of(&self, _pid: Pid) -> Option<Pid> {
        None
    }
    /// The process group of process `pid` (its leader's pid), if it exists.
    fn group_of(&self, _pid: Pid) -> Option<Pid> {
        None
    }
}

/// A permission model. Implementations keep their own state (behind their own locks) and are
/// consulted by the hooks in the security band. Every method must be quick: it runs on every
/// system call.
pub trait Policy: Sync {
    /// The name printed at boot and by the shell's `policy`.
    fn name(&self) -> &'static str;
    /// One line on what the policy enforces.
    fn summary(&self) -> &'static str;
    /// A process was created.
    fn on_spawn(&self, spawn: &SpawnInfo<'_>);
    /// Process `pid` replaced its program with `program` (`execve`), which declares
    /// `declared`. A process keeps what it was allowed unless the policy narrows it here:
    /// running another program must never be a way to more.
    fn on_exec(&self, _pid: Pid, _program: &str, _declared: DeclaredCalls<'_>) {}
    /// A process ended; forget it.
    fn on_exit(&self, pid: Pid);
    /// Processes the policy keeps something for (each one spawned and not yet ended, if the
    /// kernel keeps its side of the bargain: a leak check for tests).
    fn tracked_processes(&self) -> usize;
    /// May `pid` make system call `number` with `args`? Only called for defined numbers.
    fn check_syscall(
        &self,
        pid: Pid,
        number: u64,
        args: &[u64; 6],
        processes: &dyn Processes,
    ) -> Result<(), Errno>;
    /// May Linux program `pid` make Linux system call `number` with `args`? (Of the calls
    /// Herald serves only the signal-sending ones act on other processes.)
    fn check_linux_syscall(
        &self,
        pid: Pid,
        number: u64,
        args: &[u64; 6],
        processes: &dyn Processes,
    ) -> Result<(), Errno>;
    /// Whether [`check_path`](Self::check_path) may refuse anything to `pid` (when not, the
    /// kernel skips working out the paths its file calls reach).
    fn confines_paths(&self, _pid: Pid) -> bool {
        false
    }
    /// May `pid` do `access` to the file at `path` — absolute, normalized, links followed, as
    /// the call will reach it? Called only if [`confines_paths`](Self::confines_paths) is true.
    fn check_path(&self, _pid: Pid, _path: &str, _access: PathAccess) -> Result<(), Errno> {
        Ok(())
    }
    /// May `pid` have `request` carried out?
    fn check_memory(
        &self,
        pid: Pid,
        request: &MemoryRequest,
        processes: &dyn Processes,
    ) -> Result<(), Errno>;
}

/// Declares the policies: for each, its cargo feature, its file (module) and how to build it.
/// It generates the module declarations, [`ACTIVE`] (the one selected; the first listed if
/// several are, so the check below is the only message) and the check that exactly one is.
macro_rules! policies {
    ($($feature:literal => $module:ident::$policy:ident = $build:expr;)*) => {
        $(#[cfg(any(test, feature = $feature))] pub mod $module;)*

        #[cfg(not(any($(feature = $feature),*)))]
        compile_error!(concat!(
            "no security policy selected: build with `--features` and one of:",
            $(" ", $feature),*
        ));

        /// Policy features selected; exactly one must be.
        const SELECTED_POLICIES: usize = 0 $(+ cfg!(feature = $feature) as usize)*;
        const _: () = assert!(
            SELECTED_POLICIES <= 1,
            concat!(
                "more than one security policy selected: pass `--no-default-features` and one of:",
                $(" ", $feature),*
            )
        );

        policies!(@active [] $($feature => $module::$policy = $build;)*);
    };
    (@active [$($taken:literal)*] $feature:literal => $module:ident::$policy:ident = $build:expr;
        $($rest:tt)*) => {
        /// The policy compiled into this kernel.
        #[cfg(all(feature = $feature, not(any($(feature = $taken),*))))]
        pub static ACTIVE: $module::$policy = $build;
        policies!(@active [$($taken)* $feature] $($rest)*);
    };
    (@active [$($taken:literal)*]) => {};
}

// Add a policy: write `src/security/<name>.rs` (a type implementing `Policy`), add its line
// here and its feature to Cargo.toml's `[features]`.
policies! {
    "policy-capability" => capability::Capability = capability::Capability::new();
    "policy-permissive" => permissive::Permissive = permissive::Permissive;
    "policy-sandbox" => sandbox::Sandbox = sandbox::Sandbox::new();
}

#[cfg(target_os = "none")]
pub use self::hooks::{
    Denial, check_path, denial_count, init, on_exec, on_exit, on_spawn, recent_denials,
    tracked_processes,
};

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::Processes;
    use crate::{events::SpaceId, vocab::Pid};

    /// A process table for policy tests: pid `n` owns space `n`.
    pub(super) struct Table(Vec<Pid>);

    impl Table {
        pub(super) fn with(pids: &[Pid]) -> Self {
            Self(pids.to_vec())
        }
    }

    impl Processes for Table {
        fn exists(&self, pid: Pid) -> bool {
            self.0.contains(&pid)
        }

        fn owner_of(&self, space: SpaceId) -> Option<Pid> {
            self.0.contains(&space.0).then_some(space.0)
        }
    }
}
