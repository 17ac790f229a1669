//! The two things about the running CPU that lock-free code needs: its index, and a way to mask
//! its interrupts for a few instructions. Arch code installs them at boot ([`install`]); before
//! that, and on the host, there is one CPU (index 0) and nothing to mask.

use conquer_once::spin::OnceCell;

/// Most CPUs the per-CPU tables hold.
pub const MAX_CPUS: usize = 8;

/// The running CPU's operations, provided by arch code.
#[derive(Clone, Copy)]
pub struct LocalCpu {
    /// Index of the running CPU, below [`MAX_CPUS`].
    pub index: fn() -> usize,
    /// Masks maskable interrupts on this CPU; returns whether they were enabled.
    pub mask_interrupts: fn() -> bool,
    /// Enables interrupts again if `were_enabled`.
    pub restore_interrupts: fn(were_enabled: bool),
}

static LOCAL: OnceCell<LocalCpu> = OnceCell::uninit();

/// Installs the running CPU's operations. Only the first call takes effect.
pub fn install(local: LocalCpu) {
    let _ = LOCAL.try_init_once(|| local);
}

/// Index of the running CPU (0 until arch installs [`LocalCpu`]). Only meaningful while the
/// caller cannot migrate: inside a dispatch, with interrupts masked, or on one CPU.
#[inline]
pub fn cpu_index() -> usize {
    LOCAL.get().map_or(0, |local| (local.index)() % MAX_CPUS)
}

/// Masks this CPU's interrupts; returns the state to give [`restore_interrupts`].
#[inline]
pub fn mask_interrupts() -> bool {
    LOCAL.get().is_some_and(|local| (local.mask_interrupts)())
}

/// Undoes [`mask_interrupts`].
#[inline]
pub fn restore_interrupts(were_enabled: bool) {
    if were_enabled && let Some(local) = LOCAL.get() {
        (local.restore_interrupts)(true);
    }
}
