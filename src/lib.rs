//! Herald: a monolithic x86_64 kernel built around an in-kernel priority event bus.
//!
//! This crate is the whole kernel; `src/main.rs` only names the entry point. [`init`] is the
//! boot order. On the host (`cargo xtask test`) only the architecture-free modules are built,
//! so their logic is tested as an ordinary program.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(all(test, target_os = "none"), no_main)]
#![feature(custom_test_frameworks)]
#![test_runner(crate::testing::run_tests)]
#![cfg_attr(target_os = "none", reexport_test_harness_main = "test_main")]

extern crate alloc;

pub mod abi;
#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod bench;
pub mod bpf;
pub mod console;
#[cfg(target_os = "none")]
mod drivers;
pub mod events;
pub mod fs;
#[cfg(target_os = "none")]
pub mod logger;
pub mod mm;
#[cfg(target_os = "none")]
pub mod modules;
#[cfg(target_os = "none")]
pub mod panic;
pub mod security;
pub mod shell;
pub mod sync;
pub mod task;
pub mod testing;
pub mod vocab;

/// Herald's version, from `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Brings the kernel up, in dependency order: the CPU tables first (so any fault is reported,
/// never a triple fault), then the early heap, consoles and logging, memory management (which
/// subscribes to faults on the bus), and interrupts last.
#[cfg(target_os = "none")]
pub fn init(mut boot: arch::BootResources) {
    use console::framebuffer::FramebufferConsole;

    arch::init_cpu();
    mm::heap::init();
    let framebuffer = boot.framebuffer.take().and_then(|(buffer, geometry)| {
        FramebufferConsole::new(buffer, geometry).ok().map(|console| (console, geometry))
    });
    let geometry = framebuffer.as_ref().map(|(_, geometry)| *geometry);
    console::init(framebuffer.map(|(console, _)| console));
    logger::init();
    println!("Herald {VERSION} - an x86_64 kernel built around a priority event bus");
    if let Some(g) = geometry {
        log::info!("framebuffer console {}x{} px, {:?}", g.width_px, g.height_px, g.layout);
    } else {
        log::info!("no usable framebuffer; console on COM1 only");
    }
    mm::init(&boot);
    arch::init_protection();
    task::init(boot.ramdisk);
    security::init(&task::PROCESS_FACTS);
    modules::init(drivers::DRIVERS);
    arch::init_interrupts();
    log::info!("interrupts on: PIC at vectors 32-47, timer at {} Hz", arch::TICK_HZ);
    // Stacks for the other processors come from mm, guarded, and are never freed.
    arch::start_processors(&boot, &mut |len_bytes| {
        let stack = mm::KernelStack::new(len_bytes).ok()?;
        let top = stack.top();
        core::mem::forget(stack);
        Some(top)
    });
    BOOT_COMPLETE_TIMESTAMP
        .store(arch::cpu::read_timestamp(), core::sync::atomic::Ordering::Relaxed);
}

/// The time stamp when [`init`] finished: under `-icount` the guest instructions executed from
/// power-on (firmware, loader, kernel initialisation) to a kernel ready for work.
#[cfg(target_os = "none")]
static BOOT_COMPLETE_TIMESTAMP: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(0);

/// See [`BOOT_COMPLETE_TIMESTAMP`].
#[cfg(target_os = "none")]
pub fn boot_complete_timestamp() -> u64 {
    BOOT_COMPLETE_TIMESTAMP.load(core::sync::atomic::Ordering::Relaxed)
}

/// The kernel's idle task: runs deferred event handlers while any are waiting, then ready
/// processes, then the shell's typed commands, and halts until the next interrupt when there
/// is nothing to do. Interrupts are off
/// between the check and the `hlt`, so a wake-up cannot be missed.
#[cfg(target_os = "none")]
pub fn idle() -> ! {
    loop {
        task::idle_step();
        shell::run_pending();
    }
}

#[cfg(all(test, target_os = "none"))]
kernel_entry!(test_kernel_main);

#[cfg(all(test, target_os = "none"))]
fn test_kernel_main() -> ! {
    test_main();
    arch::cpu::halt_forever()
}

#[cfg(all(test, target_os = "none"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    testing::panic_handler(info)
}
