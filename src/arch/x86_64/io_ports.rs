//! Ring 3's I/O ports: which ports the running process may touch, as bits of the CPU's I/O
//! permission bitmap (`gdt::TssWithPorts`), switched with the process (`percpu::set_user_ports`),
//! and the ISA devices the kernel leaves to user-space drivers, found by probing at boot.
//!
//! A port outside the grant raises #GP in the process (SDM Vol. 1 §19.5.2), which ends it like
//! any other fault (`abi::PORT_FAULT_EXIT_CODE`).

use spin::Once;

use super::port;
use crate::vocab::{DeviceInfo, PortGrant, PortRange};

/// Opens exactly `ports` to the process about to run on this CPU in ring 3 (or that runs now).
/// Cheap when nothing changes (every process without ports, switching to another one).
#[inline]
pub fn set_user_ports(ports: &PortGrant) {
    super::cpu::without_interrupts(|| {
        // SAFETY: interrupts are off for the whole update.
        unsafe { super::percpu::set_user_ports(ports) }
    });
}

/// Reads `port` for a verified handler of a driver granted `grant` (`None`, and no access, for
/// a port outside it: the verifier's proof checked once more).
pub fn read_granted_port(grant: &[PortRange], port: u16) -> Option<u8> {
    // SAFETY: the port belongs to a device the kernel left to this driver, which may read it
    // from ring 3 anyway; the handler acts for it.
    is_granted(grant, port).then(|| unsafe { port::read_u8(port) })
}

fn is_granted(grant: &[PortRange], port: u16) -> bool {
    grant.iter().any(|range| range.covers(PortRange { base: port, count: 1 }))
}

/// Writes `port` for a verified handler (see [`read_granted_port`]); `false` if not granted.
pub fn write_granted_port(grant: &[PortRange], port: u16, value: u8) -> bool {
    let granted = is_granted(grant, port);
    if granted {
        // SAFETY: as in `read_granted_port`.
        unsafe { port::write_u8(port, value) };
    }
    granted
}

/// The ISA serial ports a process may drive, by the PC convention's bases and lines (COM1 is
/// the kernel's console; COM3 shares its line 4, so it stays the kernel's too).
const UART_CANDIDATES: [(&str, u16, u8); 2] = [("com2", 0x2f8, 3), ("com4", 0x2e8, 3)];
/// A 16550 has eight registers (PC16550D datasheet §8).
const UART_PORT_COUNT: u16 = 8;
/// The scratch register, offset 7: it holds whatever is written, on a 16450 and later (§8.10);
/// nothing answers that way where no UART is.
const UART_SCRATCH_OFFSET: u16 = 7;
/// Values written and read back by the probe.
const SCRATCH_PROBES: [u8; 2] = [0x5a, 0xa5];

static DEVICES: Once<[Option<DeviceInfo>; UART_CANDIDATES.len()]> = Once::new();

/// The devices present that user-space drivers may claim, probed at the first ask.
pub fn devices() -> impl Iterator<Item = DeviceInfo> {
    let found = DEVICES.call_once(|| {
        UART_CANDIDATES.map(|(name, base, line)| {
            uart_present(base).then_some(DeviceInfo {
                name,
                line,
                ports: PortRange { base, count: UART_PORT_COUNT },
            })
        })
    });
    found.iter().flatten().copied()
}

fn uart_present(base: u16) -> bool {
    let scratch = base + UART_SCRATCH_OFFSET;
    SCRATCH_PROBES.iter().all(|&value| {
        // SAFETY: the scratch register has no effect on the UART; where no device decodes the
        // port, the write goes nowhere and the read returns all ones.
        unsafe {
            port::write_u8(scratch, value);
            port::read_u8(scratch) == value
        }
    })
}
