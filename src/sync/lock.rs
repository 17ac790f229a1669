//! A spin lock held with this CPU's interrupts masked (Linux's `spin_lock_irqsave`).
//!
//! Reentrancy: an interrupt cannot land on the holder's CPU, so code in interrupt context never
//! finds the lock held by the code it interrupted; it can only wait for another CPU, which holds
//! it with its own interrupts masked for a bounded critical section. NMIs are not masked: NMI
//! context must never take one of these locks (the bus guarantees it; see `events`).

#![forbid(unsafe_code)]

use core::ops::{Deref, DerefMut};

use super::local;

#[cfg(not(loom))]
type Inner<T> = spin::Mutex<T>;
#[cfg(not(loom))]
type InnerGuard<'a, T> = spin::MutexGuard<'a, T>;
#[cfg(loom)]
type Inner<T> = loom::sync::Mutex<T>;
#[cfg(loom)]
type InnerGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// A spin lock whose critical sections run with local interrupts masked.
pub struct IrqSpinLock<T> {
    inner: Inner<T>,
}

/// Access to an [`IrqSpinLock`]'s value; unlocks, then restores interrupts, when dropped.
pub struct IrqSpinLockGuard<'a, T> {
    // Declared first: dropped (unlocked) before `_interrupts` re-enables interrupts.
    guard: InnerGuard<'a, T>,
    _interrupts: MaskedInterrupts,
}

/// Restores the interrupt state it was created from.
struct MaskedInterrupts {
    were_enabled: bool,
}

impl Drop for MaskedInterrupts {
    fn drop(&mut self) {
        local::restore_interrupts(self.were_enabled);
    }
}

impl<T> IrqSpinLock<T> {
    /// A new unlocked lock.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self { inner: spin::Mutex::new(value) }
    }

    /// A new unlocked lock.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self { inner: loom::sync::Mutex::new(value) }
    }

    /// Masks local interrupts and takes the lock, waiting only for another CPU.
    #[inline]
    pub fn lock(&self) -> IrqSpinLockGuard<'_, T> {
        let interrupts = MaskedInterrupts { were_enabled: local::mask_interrupts() };
        // Waiting with interrupts masked, it still answers what another CPU needs of this one
        // meanwhile (a TLB shootdown), or two CPUs could wait on each other for good.
        #[cfg(not(loom))]
        let guard = loop {
            if let Some(guard) = self.inner.try_lock() {
                break guard;
            }
            local::while_waiting();
            core::hint::spin_loop();
        };
        #[cfg(loom)]
        let guard = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        IrqSpinLockGuard { guard, _interrupts: interrupts }
    }
}

impl<T> Deref for IrqSpinLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqSpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
