//! Which vector means what: the layout of the IDT every other file of arch agrees on.

/// First vector the remapped PICs use (SDM reserves 0–31 for exceptions).
pub(super) const PIC_VECTOR_BASE: u8 = 32;
/// Number of legacy PIC lines (two cascaded 8259As).
pub(super) const PIC_LINE_COUNT: u8 = 16;
/// Software interrupt vector kernel tests use to raise a syscall event without ring 3 (Linux's
/// old number); also the `vector` recorded in frames built by the `syscall` entry stub.
pub const SYSCALL_VECTOR: u8 = 0x80;
/// Software interrupt vector that raises the software IRQ line (tests, benchmarks).
pub const SOFTWARE_IRQ_VECTOR: u8 = 0xf0;
/// Vector whose gate is a bare `iretq`: the interrupt-path benchmark's baseline.
pub const BARE_IRET_VECTOR: u8 = 0xf1;
/// Vector of each local APIC's timer (SDM Vol. 3A §11.5.4).
pub(super) const LOCAL_TIMER_VECTOR: u8 = 0xe0;
/// Vector the local APICs report spurious interrupts on; its low four bits must be set on older
/// CPUs (SDM Vol. 3A §11.9), so 0xff. Counted, never acknowledged.
pub(super) const APIC_SPURIOUS_VECTOR: u8 = 0xff;
/// Vector of the non-maskable interrupt (SDM Vol. 3A Table 6-1).
pub(super) const NMI_VECTOR: u8 = 2;
/// First vector of the ISA lines once the I/O APIC carries them: apart from the PICs' 32–47, so
/// a spurious 8259 interrupt (which a masked PIC can still send) is never taken for a line's.
pub(super) const IOAPIC_VECTOR_BASE: u8 = 0x30;
/// Inter-processor interrupts, above every device vector (the APIC's priority is the vector's
/// upper four bits; SDM Vol. 3A §11.8.3): "look at the ready queue", "flush your TLB".
pub(super) const RESCHEDULE_VECTOR: u8 = 0xe1;
pub(super) const TLB_FLUSH_VECTOR: u8 = 0xe2;
/// "Answer me": the IPI round trip the benchmarks time.
pub(super) const PING_VECTOR: u8 = 0xe3;
