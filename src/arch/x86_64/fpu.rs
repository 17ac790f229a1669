//! The user's floating-point and SIMD registers (x87, SSE, and AVX where the CPU has it):
//! enabled on every CPU, and saved and restored per task at each switch between tasks — with
//! XSAVE/XRSTOR where the CPU has them (the AVX upper halves of the `ymm` registers are part of
//! the state only then: without CR4.OSXSAVE a program cannot use AVX at all), else with
//! FXSAVE/FXRSTOR.
//!
//! The kernel is built without SSE (`x86_64-unknown-none` is a soft-float target), so it never
//! touches these registers itself: they hold the running task's values for as long as it runs,
//! through its system calls and interrupts, and only a switch has to move them. Eager saving
//! (every switch) rather than lazy (`#NM` on first use) keeps a task's state from ever being
//! left on a CPU it no longer runs on — on several CPUs a lazily kept state would have to be
//! fetched from another CPU.
//!
//! Reentrancy: `save` and `restore` run inside the scheduler's switch, with interrupts off, and
//! nothing in interrupt context — NMIs included — touches these registers, so no interrupt can
//! change them between a save and the restore; another CPU only ever handles other tasks' areas
//! (a task runs on one CPU at a time).
//!
//! SDM Vol. 1 §10.5.1 (the FXSAVE area), Vol. 1 §13 (XSAVE: §13.4 the area's layout, §13.8
//! XRSTOR's init of components whose XSTATE_BV bit is clear), Vol. 3A §2.5 and §13.1 (CR0.MP/EM/
//! TS, CR4.OSFXSR/OSXMMEXCPT/OSXSAVE).

use alloc::boxed::Box;
use core::{
    arch::{asm, x86_64::__cpuid_count},
    sync::atomic::{AtomicU64, Ordering},
};

use ::x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// Size of the FXSAVE area (the legacy region of an XSAVE area).
const FXSAVE_AREA_BYTES: usize = 512;
/// Room for one task's state: the legacy region, the XSAVE header (64 bytes) and the AVX
/// component (256 bytes at offset 576) fit; components past AVX are not enabled.
const STATE_AREA_BYTES: usize = 1024;
/// Offset of the XSAVE header's XSTATE_BV (which components the area holds): the header
/// follows the legacy region.
const XSTATE_BV_OFFSET: usize = FXSAVE_AREA_BYTES;
/// XCR0 / XSTATE_BV component bits (SDM Vol. 1 §13.1).
const X87: u64 = 1 << 0;
const SSE: u64 = 1 << 1;
const AVX: u64 = 1 << 2;
/// CPUID.1:ECX bit 26: XSAVE/XRSTOR/XSETBV and XCR0 exist.
const CPUID_XSAVE: u32 = 1 << 26;
/// The components XSAVE saves (XCR0), once the boot CPU has decided; 0: FXSAVE is used.
static XSAVE_COMPONENTS: AtomicU64 = AtomicU64::new(0);
/// The boot CPU's decision, made once.
static CHOICE: spin::Once<u64> = spin::Once::new();
/// Offsets in the area of the x87 control word and of MXCSR (SDM Vol. 1 Table 10-2).
const CONTROL_WORD_OFFSET: usize = 0;
const MXCSR_OFFSET: usize = 24;
/// What FNINIT leaves in the x87 control word: every exception masked, 64-bit precision,
/// round to nearest (SDM Vol. 1 §8.1.5).
const INITIAL_CONTROL_WORD: u16 = 0x037f;
/// MXCSR after reset: every SIMD exception masked, round to nearest (SDM Vol. 1 §10.2.3).
const INITIAL_MXCSR: u32 = 0x1f80;

/// One task's saved x87/SSE(/AVX) registers, in XSAVE's standard format (whose first 512
/// bytes are FXSAVE's).
#[repr(C, align(64))]
pub struct FpuState([u8; STATE_AREA_BYTES]);

impl FpuState {
    /// The registers a new task starts with: all zero, exceptions masked, as after FNINIT and
    /// a reset MXCSR (what the x86-64 psABI promises a process at entry); the AVX upper halves
    /// are absent from XSTATE_BV, so XRSTOR clears them.
    pub fn initial() -> Box<Self> {
        let mut state = Box::new(Self([0; STATE_AREA_BYTES]));
        state.0[CONTROL_WORD_OFFSET..CONTROL_WORD_OFFSET + 2]
            .copy_from_slice(&INITIAL_CONTROL_WORD.to_le_bytes());
        state.0[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&INITIAL_MXCSR.to_le_bytes());
        state.0[XSTATE_BV_OFFSET..XSTATE_BV_OFFSET + 8].copy_from_slice(&(X87 | SSE).to_le_bytes());
        state
    }

    /// Stores this CPU's registers here (the task leaving the CPU).
    pub fn save(&mut self) {
        let components = XSAVE_COMPONENTS.load(Ordering::Relaxed);
        let area = self.0.as_mut_ptr();
        if components == 0 {
            // SAFETY: the area is writable, 64-byte aligned and longer than FXSAVE's 512
            // bytes; the instruction exists on every x86_64 CPU and OSFXSR is set (`enable`).
            unsafe { asm!("fxsave64 [{}]", in(reg) area, options(nostack)) };
        } else {
            // SAFETY: XSAVE exists and CR4.OSXSAVE is set on every CPU once `components` is
            // non-zero (`enable` sets both before any task runs); the area is 64-byte aligned
            // and large enough for `components` (checked against CPUID when chosen).
            unsafe {
                asm!(
                    "xsave64 [{}]",
                    in(reg) area,
                    in("eax") components as u32,
                    in("edx") (components >> 32) as u32,
                    options(nostack),
                );
            }
        }
    }

    /// Loads this CPU's registers from here (the task about to run).
    pub fn restore(&self) {
        let components = XSAVE_COMPONENTS.load(Ordering::Relaxed);
        let area = self.0.as_ptr();
        if components == 0 {
            // SAFETY: as in `save`; the area holds a state FXSAVE wrote or `initial` built, so
            // no reserved MXCSR bit is set (which would fault).
            unsafe { asm!("fxrstor64 [{}]", in(reg) area, options(nostack, readonly)) };
        } else {
            // SAFETY: as in `save`; the area holds what XSAVE wrote or `initial` built: a
            // standard-format header (XCOMP_BV 0, no reserved bit), a valid MXCSR.
            unsafe {
                asm!(
                    "xrstor64 [{}]",
                    in(reg) area,
                    in("eax") components as u32,
                    in("edx") (components >> 32) as u32,
                    options(nostack, readonly),
                );
            }
        }
    }
}

/// Offset of the XSAVE header's XCOMP_BV, and the end of the header (SDM Vol. 1 §13.4.2): a
/// standard-format area has XCOMP_BV and the header's reserved bytes zero.
const XCOMP_BV_OFFSET: usize = XSTATE_BV_OFFSET + 8;
const XSAVE_HEADER_END: usize = FXSAVE_AREA_BYTES + 64;
/// Where the AVX component ends in the standard format (offset 576, 256 bytes).
const AVX_AREA_END: usize = XSAVE_HEADER_END + 256;
/// Offset of MXCSR_MASK in the FXSAVE area; its value when the CPU stores 0 (SDM Vol. 1
/// §11.6.6).
const MXCSR_MASK_OFFSET: usize = 28;
const DEFAULT_MXCSR_MASK: u32 = 0xffbf;
/// The MXCSR bits this CPU accepts (a set reserved bit makes FXRSTOR/XRSTOR fault).
static MXCSR_MASK: AtomicU64 = AtomicU64::new(DEFAULT_MXCSR_MASK as u64);

impl FpuState {
    /// How many bytes of the area hold state with the components in use: what a copy into
    /// user memory (a signal frame) carries.
    pub fn image_bytes() -> usize {
        match XSAVE_COMPONENTS.load(Ordering::Relaxed) {
            0 => FXSAVE_AREA_BYTES,
            components if components & AVX != 0 => AVX_AREA_END,
            _ => XSAVE_HEADER_END,
        }
    }

    /// The first [`image_bytes`](Self::image_bytes) of the area, in the standard format.
    pub fn image(&self) -> &[u8] {
        &self.0[..Self::image_bytes()]
    }

    /// A state made from `image` (what [`image`](Self::image) gave, perhaps changed since by a
    /// program), made safe to restore: MXCSR's reserved bits cleared, and an XSAVE header that
    /// names only components in use, in the standard format. Whatever a program wrote, loading
    /// the result cannot fault.
    pub fn from_image(image: &[u8]) -> Box<Self> {
        let mut state = Self::initial();
        let len = image.len().min(Self::image_bytes());
        state.0[..len].copy_from_slice(&image[..len]);
        let mask = MXCSR_MASK.load(Ordering::Relaxed) as u32;
        let mxcsr = u32::from_le_bytes(
            state.0[MXCSR_OFFSET..MXCSR_OFFSET + 4].try_into().unwrap_or_default(),
        );
        state.0[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&(mxcsr & mask).to_le_bytes());
        let components = XSAVE_COMPONENTS.load(Ordering::Relaxed);
        if components != 0 {
            let field = XSTATE_BV_OFFSET..XSTATE_BV_OFFSET + 8;
            let present = u64::from_le_bytes(state.0[field.clone()].try_into().unwrap_or_default());
            state.0[field].copy_from_slice(&(present & components).to_le_bytes());
            state.0[XCOMP_BV_OFFSET..XSAVE_HEADER_END].fill(0);
        }
        state
    }
}

/// The components each task's saved state holds beyond FXSAVE's, for the boot log and tests:
/// `"x87, SSE, AVX (XSAVE)"`, `"x87, SSE (XSAVE)"` or `"x87, SSE (FXSAVE)"`.
pub fn saved_components() -> &'static str {
    match XSAVE_COMPONENTS.load(Ordering::Relaxed) {
        0 => "x87, SSE (FXSAVE)",
        components if components & AVX != 0 => "x87, SSE, AVX (XSAVE)",
        _ => "x87, SSE (XSAVE)",
    }
}

/// Reads which MXCSR bits this CPU accepts (FXSAVE stores the mask; 0 means the default).
fn record_mxcsr_mask() {
    let mut probe = FpuState([0; STATE_AREA_BYTES]);
    // SAFETY: as in `FpuState::save`: the area is writable, aligned and large enough, and
    // OSFXSR is set (just above).
    unsafe { asm!("fxsave64 [{}]", in(reg) probe.0.as_mut_ptr(), options(nostack)) };
    let field = &mut probe.0[MXCSR_MASK_OFFSET..MXCSR_MASK_OFFSET + 4];
    let mask = u32::from_le_bytes((&*field).try_into().unwrap_or_default());
    let mask = if mask == 0 { DEFAULT_MXCSR_MASK } else { mask };
    MXCSR_MASK.store(u64::from(mask), Ordering::Relaxed);
}

/// Chooses what XSAVE saves (on the boot CPU, before any other CPU or task runs): x87, SSE and
/// AVX where the CPU supports them and their area fits [`STATE_AREA_BYTES`]; 0 without XSAVE.
fn choose_components() -> u64 {
    let features = __cpuid_count(1, 0);
    if features.ecx & CPUID_XSAVE == 0 {
        return 0;
    }
    // Leaf 0xD (present with XSAVE), sub-leaf 0: the supported XCR0 bits (EAX: the low half).
    let supported = u64::from(__cpuid_count(0xd, 0).eax);
    let wanted = supported & (X87 | SSE | AVX);
    // Sub-leaf 2 is the AVX component: its size and offset in the standard format.
    let avx = __cpuid_count(0xd, 2);
    let avx_end = (avx.ebx + avx.eax) as usize;
    if wanted & AVX != 0 && avx_end > STATE_AREA_BYTES { wanted & !AVX } else { wanted }
}

/// Lets ring 3 use x87 and SSE on this CPU: no emulation, no task-switched trap, FXSAVE and
/// SIMD exceptions enabled. Runs once per CPU at bring-up.
pub(super) fn enable() {
    // SAFETY: these bits only change how x87/SSE instructions behave (SDM Vol. 3A §2.5); the
    // kernel itself executes none, and every task's state is saved and restored from now on.
    unsafe {
        Cr0::update(|flags| {
            flags.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            // NE: an unmasked x87 exception is #MF in the program that caused it, not the
            // legacy FERR# line to the interrupt controller (SDM Vol. 3A §2.5).
            flags.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        });
        Cr4::update(|flags| {
            flags.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        });
        // A clean state on this CPU until the first task brings its own.
        asm!("fninit", options(nomem, nostack));
    }
    record_mxcsr_mask();
    // The boot CPU (the first here) decides once; the others, started after it, follow its
    // choice, so every CPU saves the same components into every task's area.
    let components = *CHOICE.call_once(choose_components);
    XSAVE_COMPONENTS.store(components, Ordering::Relaxed);
    if components != 0 {
        // SAFETY: the CPU has XSAVE (`choose_components` saw it; the other CPUs are the same
        // model); OSXSAVE makes XSETBV and XCR0 usable, and `components` holds only supported
        // bits with x87 and SSE set, as XSETBV requires (SDM Vol. 1 §13.3).
        unsafe {
            Cr4::update(|flags| flags.insert(Cr4Flags::OSXSAVE));
            asm!(
                "xsetbv",
                in("ecx") 0,
                in("eax") components as u32,
                in("edx") (components >> 32) as u32,
                options(nomem, nostack),
            );
        }
    }
}
