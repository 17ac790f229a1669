#![no_std]
#![no_main]
herald::kernel_entry!(main);
fn main() -> ! {
    herald::arch::qemu::exit(herald::arch::qemu::ExitCode::Success)
}
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    herald::panic::report(info)
}
