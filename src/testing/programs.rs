//! Helpers for test kernels that run user programs: run one to its end with its output captured,
//! and the frame count a leak check compares before and after.

use alloc::string::String;

use crate::{console, mm, task};

/// Free frames plus the frames the heap and the kernel-stack region keep for reuse once taken
/// (tables, and dropped stacks' pages): the count that must come back to its baseline after a
/// process ends.
pub fn free_frames() -> usize {
    mm::frame_stats().free
        + mm::heap::stats().frames_held()
        + mm::stack::table_frames()
        + mm::stack::kept_frames()
}

/// Runs ramdisk program `name` with `args` to its end, as a child of the kernel; returns its exit
/// code and what the console showed meanwhile.
///
/// # Panics
/// If the program cannot be started or waited for: the test fails.
pub fn run_program(name: &str, args: &str) -> (i32, String) {
    console::start_capture();
    let pid = task::spawn(name, args, 0).expect("spawn");
    let code = task::wait(pid).expect("wait");
    (code, console::take_capture())
}
