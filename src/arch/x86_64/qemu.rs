//! Leaving QEMU: the `isa-debug-exit` device for test verdicts, ACPI S5 for a plain power-off.

use super::{cpu, port};

/// I/O port of the `isa-debug-exit` device that `tools/runner` attaches
/// (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
const ISA_DEBUG_EXIT_PORT: u16 = 0xf4;
/// QEMU's PIIX4 ACPI PM1a control block (`hw/acpi/piix4.c`); used when `isa-debug-exit` is absent.
const PIIX4_PM1A_CONTROL_PORT: u16 = 0x604;
/// PM1a control value that enters sleep state S5 (SLP_TYP = 0 for QEMU's S5, SLP_EN = bit 13).
const PM1A_SLEEP_ENABLE_S5: u16 = 0x2000;

/// Verdict reported to the host. `isa-debug-exit` turns a write of `v` into the QEMU exit status
/// `(v << 1) | 1`, which `tools/runner` maps back: 33 → success, 35 → failure.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[repr(u32)]
pub enum ExitCode {
    /// The kernel finished normally (tests passed, or `poweroff`).
    Success = 0x10,
    /// A panic or failed test.
    Failure = 0x11,
}

/// Ends the QEMU session with `code`; if no exit device is present, powers off through ACPI.
pub fn exit(code: ExitCode) -> ! {
    cpu::disable_interrupts();
    // SAFETY: port 0xf4 is the debug-exit device the runner attaches; writing it stops the VM.
    // Without the device the write is ignored by the chipset and we fall through.
    unsafe { port::write_u32(ISA_DEBUG_EXIT_PORT, code as u32) };
    // SAFETY: on QEMU's i440FX/PIIX4 machine this requests ACPI S5 (power off); the kernel is
    // stopping anyway, so no device state needs to survive.
    unsafe { port::write_u16(PIIX4_PM1A_CONTROL_PORT, PM1A_SLEEP_ENABLE_S5) };
    loop {
        cpu::halt();
    }
}

/// Powers the machine off cleanly; under the runner QEMU exits with status 0.
pub fn power_off() -> ! {
    exit(ExitCode::Success)
}
