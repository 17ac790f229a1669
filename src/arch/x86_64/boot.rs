//! Glue to `bootloader_api`: the loader configuration, the entry point and the conversion of
//! what the loader hands over into Herald's own types.

use core::ops::Range;

use bootloader_api::{
    BootInfo, BootloaderConfig,
    config::Mapping,
    info::{FrameBuffer, MemoryRegion, MemoryRegionKind, PixelFormat},
};

use crate::vocab::{Geometry, PixelLayout};

/// Kernel stack size requested from the loader. Test kernels format panics and run deep
/// recursion tests on it, so it is larger than the loader's 80 KiB default.
const KERNEL_STACK_SIZE_BYTES: u64 = 256 * 1024;

/// Size of a page.
const PAGE_BYTES: u64 = 4096;
/// The low region kept for starting the other processors: the startup code's page, then the
/// three of its temporary page table (`smp.rs`).
pub(super) const PROCESSOR_START_REGION_BYTES: u64 = 4 * PAGE_BYTES;
/// A STARTUP IPI's vector is a page number below 1 MiB (SDM Vol. 3A §9.4.4.1).
const PROCESSOR_START_MEMORY_LIMIT: u64 = 0x10_0000;

/// What every Herald kernel asks of the bootloader.
pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    // All physical memory mapped at one offset: how mm reaches page tables and frames.
    config.mappings.physical_memory = Some(Mapping::Dynamic);
    config.kernel_stack_size = KERNEL_STACK_SIZE_BYTES;
    // Everything the loader places goes to the kernel half, below Herald's own regions, so the
    // lower half is free for user programs.
    config.mappings.dynamic_range_start = Some(super::paging::LOADER_DYNAMIC_RANGE.start);
    config.mappings.dynamic_range_end = Some(super::paging::LOADER_DYNAMIC_RANGE.end);
    config
};

/// What the loader handed over, in Herald's terms.
pub struct BootResources {
    /// The linear framebuffer, if the firmware set up a graphics mode.
    pub framebuffer: Option<(&'static mut [u8], Geometry)>,
    /// Virtual address at which all physical memory is mapped.
    pub physical_memory_offset: Option<u64>,
    /// The firmware's memory map, as the loader amended it.
    memory_regions: &'static [MemoryRegion],
    /// The boot ramdisk (user programs), if the runner supplied one.
    pub ramdisk: Option<&'static [u8]>,
    /// Physical address of the ACPI RSDP, if the firmware has one.
    pub rsdp: Option<u64>,
    /// Frames below 1 MiB kept from the allocator for starting the other CPUs (real-mode code
    /// and its page tables): `None` if the firmware left no such memory usable.
    pub(super) processor_start_frames: Option<u64>,
}

impl BootResources {
    /// Physical address ranges free for the kernel to use (the loader's own allocations, the
    /// kernel image and firmware areas are excluded).
    pub fn usable_memory(&self) -> impl Iterator<Item = Range<u64>> + Clone + use<> {
        let kept = self
            .processor_start_frames
            .map_or(0..0, |start| start..start + PROCESSOR_START_REGION_BYTES);
        usable_regions(self.memory_regions).flat_map(move |range| {
            [range.start..range.end.min(kept.start), range.start.max(kept.end)..range.end]
                .into_iter()
                .filter(|piece| piece.start < piece.end)
        })
    }
}

fn usable_regions(regions: &'static [MemoryRegion]) -> impl Iterator<Item = Range<u64>> + Clone {
    regions
        .iter()
        .filter(|region| region.kind == MemoryRegionKind::Usable)
        .map(|region| region.start..region.end)
}

/// The first page-aligned run of [`START_REGION_BYTES`](PROCESSOR_START_REGION_BYTES) of
/// usable memory below 1 MiB (a startup IPI names a page there; SDM Vol. 3A §9.4.4.1), page 0
/// excluded.
fn processor_start_frames(regions: &'static [MemoryRegion]) -> Option<u64> {
    let page = PAGE_BYTES;
    usable_regions(regions).find_map(|range| {
        let start = range.start.max(page).next_multiple_of(page);
        let end = start + PROCESSOR_START_REGION_BYTES;
        (end <= range.end.min(PROCESSOR_START_MEMORY_LIMIT)).then_some(start)
    })
}

fn geometry(framebuffer: &FrameBuffer) -> Option<Geometry> {
    let info = framebuffer.info();
    let layout = match info.pixel_format {
        PixelFormat::Rgb => PixelLayout::Rgb,
        PixelFormat::Bgr => PixelLayout::Bgr,
        PixelFormat::U8 => PixelLayout::Gray,
        _ => return None,
    };
    Some(Geometry {
        width_px: info.width,
        height_px: info.height,
        stride_px: info.stride,
        bytes_per_pixel: info.bytes_per_pixel,
        layout,
    })
}

/// Converts the loader's hand-over, runs [`crate::init`] and then `main`.
pub fn start(boot_info: &'static mut BootInfo, main: fn() -> !) -> ! {
    let framebuffer = boot_info.framebuffer.take().and_then(|framebuffer| {
        let geometry = geometry(&framebuffer)?;
        Some((framebuffer.into_buffer(), geometry))
    });
    let physical_memory_offset = boot_info.physical_memory_offset.into_option();
    if let Some(offset) = physical_memory_offset {
        super::paging::init(offset);
    }
    let memory_regions: &'static [MemoryRegion] = &boot_info.memory_regions;
    let ramdisk = boot_info.ramdisk_addr.into_option().map(|address| {
        // SAFETY: the loader mapped the ramdisk's `ramdisk_len` bytes at `address`, read-only
        // data that nothing else writes, for the kernel's lifetime.
        unsafe { core::slice::from_raw_parts(address as *const u8, boot_info.ramdisk_len as usize) }
    });
    let rsdp = boot_info.rsdp_addr.into_option();
    let processor_start_frames = processor_start_frames(memory_regions);
    let resources = BootResources {
        framebuffer,
        physical_memory_offset,
        memory_regions,
        ramdisk,
        rsdp,
        processor_start_frames,
    };
    crate::init(resources);
    main()
}

/// Declares `$main: fn() -> !` as a Herald kernel's main function: the loader enters the
/// kernel, [`crate::init`] brings it up, then `$main` runs. Used by `src/main.rs` and by every
/// test kernel in `tests/`.
#[macro_export]
macro_rules! kernel_entry {
    ($main:path) => {
        $crate::arch::bootloader_api::entry_point!(
            __herald_loader_entry,
            config = &$crate::arch::BOOTLOADER_CONFIG
        );
        fn __herald_loader_entry(
            boot_info: &'static mut $crate::arch::bootloader_api::BootInfo,
        ) -> ! {
            $crate::arch::start(boot_info, $main)
        }
    };
}
