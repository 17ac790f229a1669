//! A spin lock that also masks interrupts, for state shared with interrupt handlers.

use core::{
    mem::ManuallyDrop,
    ops::{Deref, DerefMut},
};

use spin::{Mutex, MutexGuard};

use super::cpu;

/// A mutex whose holder runs with interrupts disabled, so an interrupt handler on the same CPU
/// can never spin on a lock its own interrupted code holds.
pub struct IrqMutex<T> {
    inner: Mutex<T>,
}

/// Guard of an [`IrqMutex`]; restores the previous interrupt state when dropped.
pub struct IrqMutexGuard<'a, T> {
    // Dropped by hand so the lock is released before interrupts are re-enabled: an interrupt
    // arriving in between would otherwise spin forever on a lock its own CPU holds.
    guard: ManuallyDrop<MutexGuard<'a, T>>,
    interrupts_were_enabled: bool,
}

impl<T> IrqMutex<T> {
    /// Creates an unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self { inner: Mutex::new(value) }
    }

    /// Disables interrupts, then spins until the lock is free.
    pub fn lock(&self) -> IrqMutexGuard<'_, T> {
        let interrupts_were_enabled = cpu::interrupts_enabled();
        cpu::disable_interrupts();
        // Waiting with interrupts off, it still answers TLB shootdowns (`shootdown.rs`).
        let guard = loop {
            if let Some(guard) = self.inner.try_lock() {
                break guard;
            }
            super::shootdown::serve_pending();
            core::hint::spin_loop();
        };
        IrqMutexGuard { guard: ManuallyDrop::new(guard), interrupts_were_enabled }
    }

    /// Takes the lock if it is free right now; for paths (panic reporting) that must not wait.
    pub fn try_lock(&self) -> Option<IrqMutexGuard<'_, T>> {
        let interrupts_were_enabled = cpu::interrupts_enabled();
        cpu::disable_interrupts();
        match self.inner.try_lock() {
            Some(guard) => {
                Some(IrqMutexGuard { guard: ManuallyDrop::new(guard), interrupts_were_enabled })
            }
            None => {
                if interrupts_were_enabled {
                    cpu::enable_interrupts();
                }
                None
            }
        }
    }
}

impl<T> Deref for IrqMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for IrqMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for IrqMutexGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: `guard` is dropped exactly once, here, and never touched afterwards.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        if self.interrupts_were_enabled {
            cpu::enable_interrupts();
        }
    }
}
