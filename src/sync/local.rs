//! The two things about the running CPU that lock-free code needs: a way to mask its interrupts
//! for a few instructions, and its index. Arch code installs the first at boot ([`install`]) and
//! the second once other CPUs run ([`install_cpu_index`]); before that, and on the host, there
//! is one CPU (index 0) and, on the host, nothing to mask.

#![forbid(unsafe_code)]

/// Most CPUs the per-CPU tables hold.
pub const MAX_CPUS: usize = 8;

/// The running CPU's operations, provided by arch code.
#[derive(Clone, Copy)]
pub struct LocalCpu {
    /// Masks maskable interrupts on this CPU; returns whether they were enabled.
    pub mask_interrupts: fn() -> bool,
    /// Enables interrupts again if `were_enabled`.
    pub restore_interrupts: fn(were_enabled: bool),
    /// Called in every spin-wait: answers requests other CPUs make of this one (TLB shootdowns)
    /// that its masked interrupts hold back.
    pub while_waiting: fn(),
}

/// `spin::Once` rather than a `OnceCell`: its `get` is one load and a compare, on every lock
/// and every dispatch.
static LOCAL: spin::Once<LocalCpu> = spin::Once::new();
static CPU_INDEX: spin::Once<fn() -> usize> = spin::Once::new();

/// Installs the running CPU's operations. Only the first call takes effect.
pub fn install(local: LocalCpu) {
    LOCAL.call_once(|| local);
}

/// Installs how to find the running CPU's index (below [`MAX_CPUS`]), once more than one CPU
/// runs. Only the first call takes effect.
pub fn install_cpu_index(index: fn() -> usize) {
    CPU_INDEX.call_once(|| index);
}

/// Index of the running CPU (0 while only one runs). Only meaningful while the caller cannot
/// migrate: inside a dispatch, with interrupts masked, or on one CPU.
#[inline]
pub fn cpu_index() -> usize {
    CPU_INDEX.get().map_or(0, |index| index() % MAX_CPUS)
}

/// Masks this CPU's interrupts; returns the state to give [`restore_interrupts`].
#[inline]
pub fn mask_interrupts() -> bool {
    LOCAL.get().is_some_and(|local| (local.mask_interrupts)())
}

/// Answers what other CPUs ask of this one while it spins (see [`LocalCpu::while_waiting`]).
#[inline]
pub fn while_waiting() {
    if let Some(local) = LOCAL.get() {
        (local.while_waiting)();
    }
}

/// Undoes [`mask_interrupts`].
#[inline]
pub fn restore_interrupts(were_enabled: bool) {
    if were_enabled && let Some(local) = LOCAL.get() {
        (local.restore_interrupts)(true);
    }
}
