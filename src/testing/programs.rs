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

/// The frame baseline for a leak check, taken after one program has run: the first process of
/// a boot builds the kernel-stack region's page tables, which stay for every later one.
///
/// # Panics
/// If `hello` does not run: the test fails.
pub fn frame_baseline() -> usize {
    assert_eq!(run_program("hello", "").0, 7);
    free_frames()
}

/// After `what`: the next program still runs, the frames are all back to `free_before`, and no
/// address space is left.
///
/// # Panics
/// If any of that is not so: the test fails.
pub fn assert_recovered(free_before: usize, what: &str) {
    assert_eq!(run_program("hello", "").0, 7, "hello after {what}");
    assert_eq!(free_frames(), free_before, "frames leaked by {what}");
    assert_eq!(mm::space::count(), 0, "address spaces left by {what}");
}
