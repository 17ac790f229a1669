//! The firmware's ACPI tables, read with the `acpi` crate through the physical-memory window:
//! which processors the MADT lists and where their local APICs are (ACPI 6.5 §5.2.12).

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::{
    AcpiHandler, AcpiTables, InterruptModel, PhysicalMapping, PlatformInfo,
    platform::ProcessorState,
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

/// The processors the firmware reports.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Processors {
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
}

/// Reads the MADT behind the RSDP at physical `rsdp`. `None` if the tables are missing or
/// malformed (the error is logged); the kernel then knows only the boot CPU.
pub fn processors(rsdp: u64) -> Option<Processors> {
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
    let local_apic_address = match &info.interrupt_model {
        InterruptModel::Apic(apic) => Some(apic.local_apic_address),
        _ => None,
    };
    let processors = info.processor_info?;
    let mut found = Processors {
        usable: 1,
        disabled: 0,
        boot_apic_id: processors.boot_processor.local_apic_id,
        application_apic_ids: Vec::new(),
        local_apic_address,
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
