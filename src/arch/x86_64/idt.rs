//! The interrupt descriptor table and the 256 entry stubs that feed every vector into one
//! trap path.
//!
//! Herald builds its own IDT instead of using `x86_64::structures::idt` because that table
//! cannot install handlers on the reserved exception vectors (15, 22–27, 31) and gives each
//! handler no vector number. Here every vector has a 16-byte stub that pushes a uniform
//! [`TrapFrame`](super::frame::TrapFrame) and calls `herald_trap_entry`, so one function sees
//! every interrupt, fault and (later) preemption point with all registers in hand.

use core::{arch::global_asm, mem::size_of};

use ::x86_64::{
    VirtAddr,
    instructions::{
        segmentation::{CS, Segment},
        tables::lidt,
    },
    structures::DescriptorTablePointer,
};
use conquer_once::spin::OnceCell;

use super::{
    gdt::IstSlot,
    vectors::{BARE_IRET_VECTOR, SYSCALL_VECTOR},
};

/// Number of IDT entries: every vector the CPU can deliver.
const VECTOR_COUNT: usize = 256;
/// Bytes between consecutive stubs (the `.balign` in the assembly below).
const STUB_STRIDE_BYTES: u64 = 16;

/// Gate type 0xE: 64-bit interrupt gate, which clears IF on entry (SDM Vol. 3A §6.14.1, Table 3-2).
const GATE_TYPE_INTERRUPT: u8 = 0x0e;
/// Present bit of a gate descriptor's attribute byte.
const GATE_PRESENT: u8 = 0x80;
/// Shift of the descriptor privilege level inside the attribute byte.
const GATE_DPL_SHIFT: u8 = 5;
/// Vector of #BP: its gate allows `int3` from ring 3 so user programs can use debuggers.
const BREAKPOINT_VECTOR: usize = 3;

// Vectors whose exceptions push an error code (SDM Vol. 3A Table 6-1): 8, 10–14, 17, 21, 29, 30.
// For the others the stub pushes a zero so that every frame has the same layout.
global_asm!(
    r#"
    .section .text.herald_traps, "ax"
    .balign 16
    .global herald_trap_stubs
herald_trap_stubs:
    .set vector, 0
    .rept 256
        .balign 16
        .if vector >= 32 || ((0x60227d00 >> vector) & 1) == 0
            pushq $0
        .endif
        pushq $vector
        jmp herald_trap_common
        .set vector, vector + 1
    .endr

    .global herald_bare_iret
herald_bare_iret:
    iretq

herald_trap_common:
    // Kernel code runs with the per-CPU block in GS; a trap from ring 3 swaps it in (the CS
    // the CPU pushed is 24 bytes up: vector, error code, rip, cs).
    testb $3, 24(%rsp)
    jz 7f
    swapgs
7:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    cld
    call herald_trap_entry

    // Also where a new task starts: its first switch "returns" here onto a prepared frame.
    .global herald_trap_return
herald_trap_return:
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    testb $3, 8(%rsp)
    jz 8f
    swapgs
8:
    iretq
"#,
    options(att_syntax)
);

unsafe extern "C" {
    /// First byte of the stub table; stub `n` starts `n * STUB_STRIDE_BYTES` later.
    static herald_trap_stubs: u8;
    /// A lone `iretq`, installed on the benchmark baseline vector.
    static herald_bare_iret: u8;
}

/// A 64-bit IDT gate descriptor (SDM Vol. 3A §6.14.1, Figure 6-8).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    segment_selector: u16,
    ist_index: u8,
    attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    fn interrupt(handler: u64, segment_selector: u16, ist_index: u8, dpl: u8) -> Self {
        Self {
            offset_low: handler as u16,
            segment_selector,
            ist_index,
            attributes: GATE_PRESENT | (dpl << GATE_DPL_SHIFT) | GATE_TYPE_INTERRUPT,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; VECTOR_COUNT]);

static IDT: OnceCell<Idt> = OnceCell::uninit();

/// Returns the IST slot a vector's handler runs on, if any.
pub(super) fn ist_slot(vector: usize) -> Option<IstSlot> {
    match vector {
        2 => Some(IstSlot::NonMaskable),
        8 => Some(IstSlot::DoubleFault),
        18 => Some(IstSlot::MachineCheck),
        _ => None,
    }
}

/// Builds the IDT (all 256 vectors present) and loads it. Must run after the GDT is loaded,
/// because the gates name the current code segment.
pub(super) fn init() {
    let code_segment = CS::get_reg().0;
    let stubs_base = &raw const herald_trap_stubs as u64;
    let idt = IDT.get_or_init(|| {
        let mut gates = [Gate::default(); VECTOR_COUNT];
        for (vector, gate) in gates.iter_mut().enumerate() {
            let handler = if vector == usize::from(BARE_IRET_VECTOR) {
                &raw const herald_bare_iret as u64
            } else {
                stubs_base + vector as u64 * STUB_STRIDE_BYTES
            };
            let ist_index = ist_slot(vector).map_or(0, IstSlot::gate_index);
            let user_callable =
                vector == BREAKPOINT_VECTOR || vector == usize::from(SYSCALL_VECTOR);
            let dpl = if user_callable { 3 } else { 0 };
            *gate = Gate::interrupt(handler, code_segment, ist_index, dpl);
        }
        Idt(gates)
    });
    load_table(idt);
}

/// Loads the table [`init`] built on this CPU (another processor starting; its GDT has the
/// same kernel code segment, and its IST slots are set up).
pub(super) fn load() {
    load_table(IDT.get().expect("idt::init ran on the boot CPU"));
}

fn load_table(idt: &'static Idt) {
    let pointer = DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: VirtAddr::new(idt as *const Idt as u64),
    };
    // SAFETY: the table lives in a static for the kernel's lifetime, every gate points at a stub
    // above with the kernel code segment, and the IST slots were set up by `gdt::init` or
    // `gdt::init_processor`.
    unsafe { lidt(&pointer) };
}
