//! The test harness for `#[test_case]` functions: in QEMU on the kernel target (results over
//! COM1, verdict through the exit device), and as an ordinary process on the host.
//!
//! Both print `name ... ok` per test and close with `N passed, M failed`, the line
//! `cargo xtask test` adds up.
#![forbid(unsafe_code)]

/// A test the harness can run and name.
pub trait Testable {
    /// Runs the test; a failure panics.
    fn run(&self);
    /// Returns the test's path, e.g. `herald::events::tests::fifo_among_equals`.
    fn name(&self) -> &'static str;
}

impl<T: Fn()> Testable for T {
    fn run(&self) {
        self();
    }

    fn name(&self) -> &'static str {
        core::any::type_name::<T>()
    }
}

#[cfg(target_os = "none")]
mod programs;

#[cfg(not(target_os = "none"))]
pub use self::host::run_tests;
#[cfg(target_os = "none")]
pub use self::kernel::{conclude_expected_panic, panic_handler, run_tests};
#[cfg(target_os = "none")]
pub use self::programs::{assert_recovered, frame_baseline, free_frames, run_program};

#[cfg(target_os = "none")]
mod kernel {
    use core::{
        fmt::{self, Write},
        panic::PanicInfo,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use super::Testable;
    use crate::{
        arch::qemu::{self, ExitCode},
        console, print, println,
    };

    /// Tests that completed, for the summary the panic handler prints.
    static PASSED: AtomicUsize = AtomicUsize::new(0);

    /// Runs every test in order, then exits QEMU with success. The first failure panics, and
    /// [`panic_handler`] reports it and exits with failure (the kernel cannot unwind).
    pub fn run_tests(tests: &[&dyn Testable]) {
        println!("running {} tests", tests.len());
        for test in tests {
            print!("{} ... ", test.name());
            test.run();
            println!("ok");
            PASSED.fetch_add(1, Ordering::Relaxed);
        }
        println!("{} passed, 0 failed", tests.len());
        qemu::exit(ExitCode::Success);
    }

    /// Reports the failing test's panic and exits QEMU with failure.
    pub fn panic_handler(info: &PanicInfo<'_>) -> ! {
        crate::arch::stop_other_processors();
        let passed = PASSED.load(Ordering::Relaxed);
        console::write_emergency(format_args!("FAILED\n{info}\n{passed} passed, 1 failed\n"));
        qemu::exit(ExitCode::Failure);
    }

    /// Capacity of the buffer a panic message is checked in; longer messages are cut.
    const PANIC_TEXT_CAPACITY_BYTES: usize = 2048;

    /// A fixed buffer to format a panic message into without touching the heap, whose lock
    /// the panicking code may hold.
    struct PanicText {
        bytes: [u8; PANIC_TEXT_CAPACITY_BYTES],
        len_bytes: usize,
    }

    impl Write for PanicText {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            let room = PANIC_TEXT_CAPACITY_BYTES - self.len_bytes;
            let take = text.len().min(room);
            self.bytes[self.len_bytes..self.len_bytes + take]
                .copy_from_slice(&text.as_bytes()[..take]);
            self.len_bytes += take;
            Ok(())
        }
    }

    /// Ends a test whose success is a panic (`harness = false` tests): passes if the panic
    /// message contains every fragment of `expected` and `extra_failure` is `None`.
    pub fn conclude_expected_panic(
        info: &PanicInfo<'_>,
        expected: &[&str],
        extra_failure: Option<&str>,
    ) -> ! {
        let mut text = PanicText { bytes: [0; PANIC_TEXT_CAPACITY_BYTES], len_bytes: 0 };
        let _ = write!(text, "{}", info.message());
        let message = core::str::from_utf8(&text.bytes[..text.len_bytes]).unwrap_or("");
        let missing = expected.iter().find(|fragment| !message.contains(**fragment));
        match (missing, extra_failure) {
            (None, None) => {
                console::write_emergency(format_args!("ok\n1 passed, 0 failed\n"));
                qemu::exit(ExitCode::Success)
            }
            (Some(fragment), _) => console::write_emergency(format_args!(
                "FAILED: panic message lacks {fragment:?}: {info}\n0 passed, 1 failed\n"
            )),
            (None, Some(reason)) => console::write_emergency(format_args!(
                "FAILED: {reason}: {info}\n0 passed, 1 failed\n"
            )),
        }
        qemu::exit(ExitCode::Failure)
    }
}

#[cfg(not(target_os = "none"))]
mod host {
    extern crate std;

    use std::{panic, print, println, process};

    use super::Testable;

    /// Runs every test, catching panics so one failure does not hide the others, and exits
    /// non-zero if any failed.
    pub fn run_tests(tests: &[&dyn Testable]) {
        println!("running {} tests on the host", tests.len());
        let mut failed = 0;
        for test in tests {
            print!("{} ... ", test.name());
            match panic::catch_unwind(panic::AssertUnwindSafe(|| test.run())) {
                Ok(()) => println!("ok"),
                Err(_) => {
                    failed += 1;
                    println!("FAILED");
                }
            }
        }
        println!("{} passed, {failed} failed", tests.len() - failed);
        process::exit(if failed == 0 { 0 } else { 1 });
    }
}

/// Declares a whole test kernel (`harness = false`) whose one test passes if `run` panics with
/// a message containing every fragment of `expect`:
///
/// ```ignore
/// herald::panic_test! {
///     name: "fault_report::invalid_opcode_is_named",
///     expect: ["#UD invalid opcode"],
///     run: || unsafe { core::arch::asm!("ud2") },
/// }
/// ```
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! panic_test {
    (name: $name:literal, expect: [$($fragment:literal),* $(,)?], run: $run:expr $(,)?) => {
        $crate::kernel_entry!(__herald_panic_test_main);

        fn __herald_panic_test_main() -> ! {
            $crate::println!("running 1 test");
            $crate::print!("{} ... ", $name);
            ($run)();
            $crate::println!("FAILED: no panic\n0 passed, 1 failed");
            $crate::arch::qemu::exit($crate::arch::qemu::ExitCode::Failure)
        }

        #[panic_handler]
        fn __herald_panic_test_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::testing::conclude_expected_panic(info, &[$($fragment),*], None)
        }
    };
}

/// Declares a test kernel's entry, main and panic handler (for `tests/*.rs` that use the
/// `#[test_case]` harness): boots, runs every test, reports, exits QEMU. The crate attributes
/// (`no_std`, `no_main`, `custom_test_frameworks`, `test_runner`,
/// `reexport_test_harness_main = "test_main"`) stay in the test file, since a macro cannot add
/// them.
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! test_kernel {
    () => {
        $crate::kernel_entry!(__herald_test_kernel_main);

        fn __herald_test_kernel_main() -> ! {
            test_main();
            $crate::arch::cpu::halt_forever()
        }

        #[panic_handler]
        fn __herald_test_kernel_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::testing::panic_handler(info)
        }
    };
}
