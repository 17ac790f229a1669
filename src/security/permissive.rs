//! `policy-permissive`: allows everything. The baseline the other policies are measured
//! against, and the simplest example of a policy.

use super::{Policy, Processes, SpawnInfo};
use crate::{
    events::{Errno, MemoryRequest},
    vocab::Pid,
};

/// Allows every request.
#[derive(Debug)]
pub struct Permissive;

impl Policy for Permissive {
    fn name(&self) -> &'static str {
        "permissive"
    }

    fn summary(&self) -> &'static str {
        "allows every request"
    }

    fn on_spawn(&self, _spawn: &SpawnInfo<'_>) {}

    fn on_exit(&self, _pid: Pid) {}

    fn tracked_processes(&self) -> usize {
        0
    }

    fn check_linux_syscall(
        &self,
        _pid: Pid,
        _number: u64,
        _: &[u64; 6],
        _: &dyn Processes,
    ) -> Result<(), Errno> {
        Ok(())
    }

    #[inline]
    fn check_syscall(&self, _: Pid, _: u64, _: &[u64; 6], _: &dyn Processes) -> Result<(), Errno> {
        Ok(())
    }

    fn check_memory(&self, _: Pid, _: &MemoryRequest, _: &dyn Processes) -> Result<(), Errno> {
        Ok(())
    }
}
