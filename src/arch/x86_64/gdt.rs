//! The GDT and TSS: flat kernel/user segments, the known-good stacks (IST) for faults that
//! must not run on a possibly broken stack, and the I/O permission bitmap ring 3 is checked
//! against (`io_ports.rs` fills it with the running process's ports).

use alloc::boxed::Box;
use core::ops::Range;

use ::x86_64::{
    VirtAddr,
    instructions::{
        segmentation::{CS, DS, ES, SS, Segment},
        tables::load_tss,
    },
    registers::segmentation::SegmentSelector,
    structures::{
        gdt::{Descriptor, GlobalDescriptorTable},
        tss::TaskStateSegment,
    },
};
use conquer_once::spin::OnceCell;

use crate::vocab::PortRange;

/// Size of each interrupt stack. Panic reporting runs on it, including formatting, so it is
/// generous.
const IST_STACK_SIZE_BYTES: usize = 32 * 1024;

/// An interrupt stack table slot. The IDT gate's 3-bit IST field holds `slot + 1`; 0 there means
/// "stay on the current stack" (SDM Vol. 3A §6.14.5).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[repr(u8)]
pub enum IstSlot {
    /// #DF: reached when the current stack is unusable, e.g. after a kernel stack overflow.
    DoubleFault = 0,
    /// NMI: can arrive at any instruction, including mid stack switch.
    NonMaskable = 1,
    /// #MC: the machine state is suspect, so is the stack.
    MachineCheck = 2,
}

pub(super) const IST_SLOT_COUNT: usize = 3;

impl IstSlot {
    /// Returns the value for an IDT gate's IST field.
    pub(super) const fn gate_index(self) -> u8 {
        self as u8 + 1
    }
}

const PAGE_SIZE_BYTES: usize = 4096;

/// An IST stack with a page below it that mm unmaps at boot, so an overflow faults instead of
/// running into the neighbouring stack.
#[repr(C, align(4096))]
struct IstStack {
    guard: [u8; PAGE_SIZE_BYTES],
    stack: [u8; IST_STACK_SIZE_BYTES],
}

/// The boot CPU's IST stacks (the others' come from mm). Only the CPU writes them (through the TSS pointers), so they are reached from
/// Rust solely as addresses.
static mut IST_STACKS: [IstStack; IST_SLOT_COUNT] =
    [const { IstStack { guard: [0; PAGE_SIZE_BYTES], stack: [0; IST_STACK_SIZE_BYTES] } };
        IST_SLOT_COUNT];

/// Every IST slot, with the name its guard page is reported under.
pub const IST_SLOTS: [(IstSlot, &str); IST_SLOT_COUNT] = [
    (IstSlot::DoubleFault, "double-fault IST"),
    (IstSlot::NonMaskable, "NMI IST"),
    (IstSlot::MachineCheck, "machine-check IST"),
];

/// Bytes of an I/O permission bitmap covering every port (one bit a port, 65 536 ports), plus
/// the byte of all ones the CPU requires after it (SDM Vol. 1 §19.5.2: an access may read two
/// bytes of the map).
pub(super) const IO_BITMAP_BYTES: usize = 65_536 / 8 + 1;

/// A TSS followed by its I/O permission bitmap, inside the segment's limit. A set bit refuses
/// its port to ring 3 (with IOPL 0, as Herald's RFLAGS always has: SDM Vol. 1 §19.5.2).
#[repr(C)]
pub(super) struct TssWithPorts {
    pub(super) tss: TaskStateSegment,
    pub(super) io_bitmap: [u8; IO_BITMAP_BYTES],
}

impl TssWithPorts {
    /// A TSS that refuses every port to ring 3.
    const fn new() -> Self {
        let mut tss = TaskStateSegment::new();
        tss.iomap_base = size_of::<TaskStateSegment>() as u16;
        Self { tss, io_bitmap: [0xff; IO_BITMAP_BYTES] }
    }

    /// Refuses (sets) or opens (clears) the bits of `range` in the I/O bitmap.
    pub(super) fn set_ports(&mut self, range: PortRange, refused: bool) {
        for port in u32::from(range.base)..range.end() {
            let Some(byte) = self.io_bitmap.get_mut((port / 8) as usize) else { return };
            let bit = 1 << (port % 8);
            if refused { *byte |= bit } else { *byte &= !bit }
        }
    }
}

/// Segment selectors. The order kernel code, kernel data, user data, user code is the one
/// `syscall`/`sysret` derive from STAR (SDM Vol. 2B, SYSRET).
#[derive(Debug)]
struct Selectors {
    kernel_code: SegmentSelector,
    kernel_data: SegmentSelector,
    tss: SegmentSelector,
}

struct Tables {
    gdt: GlobalDescriptorTable,
    selectors: Selectors,
}

/// The boot CPU's TSS. Mutable because `rsp0` changes with every switch to a task that can
/// enter ring 3 (through `percpu::set_kernel_stack`); the CPU reads it only when an interrupt
/// arrives from ring 3.
static mut TSS: TssWithPorts = TssWithPorts::new();
static TABLES: OnceCell<Tables> = OnceCell::uninit();

/// Selector of the user data segment (index 3, RPL 3).
pub const USER_DATA_SELECTOR: u16 = (3 << 3) | 3;
/// Selector of the user code segment (index 4, RPL 3).
pub const USER_CODE_SELECTOR: u16 = (4 << 3) | 3;

/// Returns the address range of the IST stack in `slot`.
pub fn ist_stack_range(slot: IstSlot) -> Range<u64> {
    // SAFETY: only the address of the static is taken; no reference to its contents is formed.
    let base = unsafe { &raw const IST_STACKS[slot as usize].stack } as u64;
    base..base + IST_STACK_SIZE_BYTES as u64
}

/// Returns the address of the guard page below the IST stack in `slot`.
pub fn ist_guard_page(slot: IstSlot) -> u64 {
    ist_stack_range(slot).start - PAGE_SIZE_BYTES as u64
}

/// Builds and loads the boot CPU's GDT and TSS and reloads every segment register. Runs once,
/// first thing at boot: every later fault relies on the IST stacks set up here. Returns the TSS.
pub(super) fn init() -> *mut TssWithPorts {
    let pointer = &raw mut TSS;
    // SAFETY: runs once at boot with interrupts off, before the TSS is loaded; afterwards only
    // `percpu::set_kernel_stack` and `io_ports` write it, through the pointer returned.
    let tss: &'static TssWithPorts = unsafe {
        let tss = &mut *pointer;
        for slot in [IstSlot::DoubleFault, IstSlot::NonMaskable, IstSlot::MachineCheck] {
            // The CPU pushes downwards from the top of the stack.
            tss.tss.interrupt_stack_table[slot as usize] = VirtAddr::new(ist_stack_range(slot).end);
        }
        tss
    };
    load(TABLES.get_or_init(|| build(tss)));
    pointer
}

/// Another processor's GDT and TSS, built by the boot CPU (so the new one allocates nothing
/// before its per-CPU block is in place) and loaded by that processor.
pub(super) struct ProcessorTables {
    tables: &'static Tables,
    tss: *mut TssWithPorts,
}

// SAFETY: handed from the boot CPU to the processor it starts, which alone uses it from then on.
unsafe impl Send for ProcessorTables {}
// SAFETY: as above: shared only for the hand-over, read by one CPU at a time.
unsafe impl Sync for ProcessorTables {}

/// Builds a GDT and TSS for another processor, whose IST stacks (by slot) end at `ist_tops`;
/// neither is ever freed.
pub(super) fn build_processor(ist_tops: [u64; IST_SLOT_COUNT]) -> ProcessorTables {
    let mut tss = Box::new(TssWithPorts::new());
    for (slot, top) in ist_tops.into_iter().enumerate() {
        tss.tss.interrupt_stack_table[slot] = VirtAddr::new(top);
    }
    let pointer = Box::into_raw(tss);
    // SAFETY: the TSS is never freed; later writes go through `pointer` with interrupts off on
    // its own processor, and the shared reference here is used only to build the descriptor.
    let tables = Box::leak(Box::new(build(unsafe { &*pointer })));
    ProcessorTables { tables, tss: pointer }
}

impl ProcessorTables {
    /// Its TSS, for the processor's per-CPU block.
    pub(super) fn tss(&self) -> *mut TssWithPorts {
        self.tss
    }

    /// Loads them on the processor they were built for.
    pub(super) fn load(&self) {
        load(self.tables);
    }
}

fn build(tss: &'static TssWithPorts) -> Tables {
    let mut gdt = GlobalDescriptorTable::new();
    let kernel_code = gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = gdt.append(Descriptor::kernel_data_segment());
    let user_data = gdt.append(Descriptor::user_data_segment());
    let user_code = gdt.append(Descriptor::user_code_segment());
    // `syscall`/`sysret` and the user entry frames rely on these exact values.
    assert_eq!((user_data.0, user_code.0), (USER_DATA_SELECTOR, USER_CODE_SELECTOR));
    let tss = gdt.append(
        Descriptor::tss_segment_with_iomap(&tss.tss, &tss.io_bitmap)
            .expect("the bitmap follows the TSS and ends in all ones"),
    );
    Tables { gdt, selectors: Selectors { kernel_code, kernel_data, tss } }
}

fn load(tables: &'static Tables) {
    tables.gdt.load();
    let selectors = &tables.selectors;
    // SAFETY: the selectors index descriptors of the GDT just loaded, which lives for the rest
    // of the kernel's life; code and data segments are flat 64-bit ones.
    unsafe {
        CS::set_reg(selectors.kernel_code);
        SS::set_reg(selectors.kernel_data);
        DS::set_reg(selectors.kernel_data);
        ES::set_reg(selectors.kernel_data);
        load_tss(selectors.tss);
    }
}
