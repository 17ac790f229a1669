//! The register frame every entry stub saves, in the order `herald_trap_common` pushes it.

/// Register state saved by the entry stub, lowest address first. The last five fields are the
/// frame the CPU pushed itself (SDM Vol. 3A §6.14.2, Figure 6-9).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct TrapFrame {
    /// Saved by the entry path; see the struct docs.
    pub r15: u64,
    /// Saved by the entry path; see the struct docs.
    pub r14: u64,
    /// Saved by the entry path; see the struct docs.
    pub r13: u64,
    /// Saved by the entry path; see the struct docs.
    pub r12: u64,
    /// Saved by the entry path; see the struct docs.
    pub r11: u64,
    /// Saved by the entry path; see the struct docs.
    pub r10: u64,
    /// Saved by the entry path; see the struct docs.
    pub r9: u64,
    /// Saved by the entry path; see the struct docs.
    pub r8: u64,
    /// Saved by the entry path; see the struct docs.
    pub rbp: u64,
    /// Saved by the entry path; see the struct docs.
    pub rdi: u64,
    /// Saved by the entry path; see the struct docs.
    pub rsi: u64,
    /// Saved by the entry path; see the struct docs.
    pub rdx: u64,
    /// Saved by the entry path; see the struct docs.
    pub rcx: u64,
    /// Saved by the entry path; see the struct docs.
    pub rbx: u64,
    /// Saved by the entry path; see the struct docs.
    pub rax: u64,
    /// The vector the stub was entered through.
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors that push none.
    pub error_code: u64,
    /// Instruction pointer to resume at.
    pub rip: u64,
    /// Code segment at the time of the trap; its low two bits are the privilege level.
    pub cs: u64,
    /// Saved by the entry path; see the struct docs.
    pub rflags: u64,
    /// Stack pointer at the time of the trap.
    pub rsp: u64,
    /// Saved by the entry path; see the struct docs.
    pub ss: u64,
}

impl TrapFrame {
    /// Returns whether the trap interrupted ring-3 code.
    pub fn from_user(&self) -> bool {
        self.cs & 0b11 == 0b11
    }
}
