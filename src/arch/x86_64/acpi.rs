//! The firmware's ACPI tables, read with the `acpi` crate through the physical-memory window:
//! which processors the MADT lists, where their local APICs are, and the I/O APIC that carries
//! the ISA lines with the overrides of their wiring (ACPI 6.5 §5.2.12).

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::{
    AcpiHandler, AcpiTables, InterruptModel, PhysicalMapping, PlatformInfo,
    platform::{
        ProcessorState,
        interrupt::{Polarity, TriggerMode},
    },
};

use super::paging;

/// Reads ACPI tables where the loader's window maps all physical memory: nothing to map or
/// unmap.
#[derive(Clone, Copy, Debug)]
struct PhysicalWindow;

impl AcpiHandler for PhysicalWindow {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virtual_address = paging::phys_to_virt(physical_address as u64).cast::<T>();
        let virtual_address = NonNull::new(virtual_address).expect("the window is never at 0");
        // SAFETY: the window maps every physical address, readable, for the kernel's lifetime;
        // the crate asks only for ranges its tables describe (this function's contract).
        unsafe { PhysicalMapping::new(physical_address, virtual_address, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Number of ISA interrupt lines (the two 8259As' inputs).
pub const ISA_LINE_COUNT: usize = 16;

/// How one ISA line reaches the I/O APIC (ACPI 6.5 §5.2.12.5: an override changes it; ISA's
/// own default is the same input number, active high, edge triggered).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct IsaWiring {
    /// The global system interrupt (I/O APIC input, counted across I/O APICs) it drives.
    pub global_interrupt: u32,
    /// Asserted low (an override's, or ISA's own active high).
    pub active_low: bool,
    /// Level triggered (an override's, or ISA's own edge).
    pub level_triggered: bool,
}

/// The I/O APIC whose inputs include the ISA lines.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct IoApicInfo {
    /// Physical address of its two registers.
    pub address: u64,
    /// The global system interrupt of its input 0.
    pub first_global_interrupt: u32,
}

/// What the MADT says about processors and interrupt controllers.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Madt {
    /// Usable: the boot processor and those waiting to be started.
    pub usable: usize,
    /// Listed but disabled by the firmware.
    pub disabled: usize,
    /// The boot processor's local APIC id.
    pub boot_apic_id: u32,
    /// The local APIC ids of the usable processors other than the boot one, in MADT order.
    pub application_apic_ids: Vec<u32>,
    /// Physical address of the local APICs' registers (`None`: no APIC interrupt model).
    pub local_apic_address: Option<u64>,
    /// The I/O APIC serving global interrupt 0 (the ISA lines), if there is one.
    pub io_apic: Option<IoApicInfo>,
    /// Each ISA line's wiring, overrides applied.
    pub isa_wiring: [IsaWiring; ISA_LINE_COUNT],
}

/// ISA's own wiring: line `n` drives input `n`, active high, edge triggered.
fn isa_defaults() -> [IsaWiring; ISA_LINE_COUNT] {
    core::array::from_fn(|line| IsaWiring { global_interrupt: line as u32, ..IsaWiring::default() })
}

/// Reads the MADT behind the RSDP at physical `rsdp`. `None` if the tables are missing or
/// malformed (the error is logged); the kernel then knows only the boot CPU.
pub fn madt(rsdp: u64) -> Option<Madt> {
    // SAFETY: the loader found the RSDP at this physical address; the window maps it.
    let tables = match unsafe { AcpiTables::from_rsdp(PhysicalWindow, rsdp as usize) } {
        Ok(tables) => tables,
        Err(error) => {
            log::warn!("acpi: tables refused: {error:?}");
            return None;
        }
    };
    let info = match PlatformInfo::new(&tables) {
        Ok(info) => info,
        Err(error) => {
            log::warn!("acpi: no processor information: {error:?}");
            return None;
        }
    };
    let mut local_apic_address = None;
    let mut io_apic = None;
    let mut isa_wiring = isa_defaults();
    if let InterruptModel::Apic(apic) = &info.interrupt_model {
        local_apic_address = Some(apic.local_apic_address);
        io_apic = apic.io_apics.iter().find(|io| io.global_system_interrupt_base == 0).map(|io| {
            IoApicInfo {
                address: u64::from(io.address),
                first_global_interrupt: io.global_system_interrupt_base,
            }
        });
        for change in apic.interrupt_source_overrides.iter() {
            let Some(wiring) = isa_wiring.get_mut(usize::from(change.isa_source)) else {
                continue;
            };
            *wiring = IsaWiring {
                global_interrupt: change.global_system_interrupt,
                active_low: change.polarity == Polarity::ActiveLow,
                level_triggered: change.trigger_mode == TriggerMode::Level,
            };
        }
    }
    let processors = info.processor_info?;
    let mut found = Madt {
        usable: 1,
        disabled: 0,
        boot_apic_id: processors.boot_processor.local_apic_id,
        application_apic_ids: Vec::new(),
        local_apic_address,
        io_apic,
        isa_wiring,
    };
    for processor in processors.application_processors.iter() {
        if processor.state == ProcessorState::Disabled {
            found.disabled += 1;
        } else {
            found.usable += 1;
            found.application_apic_ids.push(processor.local_apic_id);
        }
    }
    Some(found)
}
