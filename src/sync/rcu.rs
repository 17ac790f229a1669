//! Read-copy-update: values published through one atomic pointer, read with no lock and no
//! reference count, and freed only after a grace period.
//!
//! Each CPU has a reader record on a cache line of its own: a nesting depth and a count of
//! read sections left. [`RcuArray::read`] adds one to the depth (then a full fence, so the
//! pointer load cannot pass it), loads the pointer, runs the caller's closure and subtracts one.
//! The add and the subtract are single atomic instructions, so a section interrupted on its own
//! CPU by another section (an interrupt that dispatches) is simply nested: the counts stay
//! balanced.
//!
//! A writer swaps in the new value and stamps the old one with every CPU's state at that
//! moment. The grace period is over once every CPU that was inside a section then has been
//! seen outside (depth 0) or has left a section since (its count moved): every later section
//! loaded the new pointer. [`Retired::try_reclaim`] frees the old value only then.
//!
//! A writer cannot wait for its own CPU while it is inside a section itself (a handler that
//! drops a subscription, an interrupt that landed in a dispatch): the section it is in would
//! have to end first. It keeps the retired value and reclaims it later.

use alloc::{boxed::Box, sync::Arc};
use core::{marker::PhantomData, ptr};

use super::{
    atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence, spin_loop},
    local::MAX_CPUS,
};

/// One CPU's read-side state. Only its own CPU writes it.
#[repr(align(64))]
struct Reader {
    nesting: AtomicUsize,
    exits: AtomicU64,
}

/// `N` RCU-published values sharing one set of per-CPU readers (the bus: one per event kind).
pub struct RcuArray<T, const N: usize> {
    readers: [Reader; MAX_CPUS],
    cells: [AtomicPtr<T>; N],
    /// Shared like an `Arc<T>`: readers on every CPU see `&T`, any CPU may free it.
    _values: PhantomData<Arc<T>>,
}

/// What each CPU was doing when a value was retired.
#[derive(Clone, Copy, Debug)]
struct GraceStamp {
    /// `None`: outside any section then. `Some(exits)`: inside, having left `exits` sections.
    cpus: [Option<u64>; MAX_CPUS],
}

/// A value taken out of publication, freed only once no reader can still hold it.
pub struct Retired<T> {
    value: Option<Box<T>>,
    stamp: GraceStamp,
    /// Address of the array it left: only that array's readers are covered by the stamp, so
    /// any other array is refused (never frees).
    array: usize,
    /// Seen past its grace period once: it stays past it (a CPU seen outside its old
    /// sections can only start new ones, which load the new pointer), even if a later look
    /// finds the CPU inside a new section with the same exit count.
    elapsed: bool,
}

impl<T, const N: usize> Default for RcuArray<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> RcuArray<T, N> {
    /// Every cell empty, no reader inside.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            readers: [const { Reader { nesting: AtomicUsize::new(0), exits: AtomicU64::new(0) } };
                MAX_CPUS],
            cells: [const { AtomicPtr::new(ptr::null_mut()) }; N],
            _values: PhantomData,
        }
    }

    /// Every cell empty, no reader inside.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            readers: core::array::from_fn(|_| Reader {
                nesting: AtomicUsize::new(0),
                exits: AtomicU64::new(0),
            }),
            cells: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            _values: PhantomData,
        }
    }

    /// Runs `f` on cell `index`'s current value (`None` if empty) inside a read section of
    /// `cpu`. Any `cpu` value is sound (two CPUs sharing a record only delay grace periods);
    /// the right one keeps other CPUs' records untouched.
    #[inline]
    pub fn read<R>(&self, cpu: usize, index: usize, f: impl FnOnce(Option<&T>) -> R) -> R {
        let reader = &self.readers[cpu % MAX_CPUS];
        reader.nesting.fetch_add(1, Ordering::SeqCst);
        // Store-buffering with the writer (it swaps the pointer, fences, reads the depth): one
        // of the two must see the other. The locked add is already a full barrier on x86, but
        // the fence is what the language's memory model (and loom, which found the race
        // without it) needs; it costs one instruction.
        fence(Ordering::SeqCst);
        let pointer = self.cells[index].load(Ordering::SeqCst);
        // SAFETY: a non-null pointer in a cell came from `Box::into_raw` in `replace`; the box
        // is freed only by `Retired::try_reclaim` after a grace period, which cannot end while this
        // CPU's depth (raised above, before the load) stays above zero. The reference does not
        // outlive `f`, which runs before the depth is lowered.
        let value = unsafe { pointer.as_ref() };
        let result = f(value);
        // AcqRel: when two CPUs share a record, the one leaving last carries the other's
        // accesses too into the exit count a writer acquires. (A closure that panics leaves the
        // section open; the kernel aborts on panic, so a guard would only cost code.)
        if reader.nesting.fetch_sub(1, Ordering::AcqRel) == 1 {
            reader.exits.fetch_add(1, Ordering::Release);
        }
        result
    }

    /// How many read sections `cpu` is inside now (nested ones counted).
    #[inline]
    pub fn depth(&self, cpu: usize) -> usize {
        self.readers[cpu % MAX_CPUS].nesting.load(Ordering::Acquire)
    }

    /// Whether `cpu` is inside a read section now.
    #[inline]
    pub fn is_reading(&self, cpu: usize) -> bool {
        self.readers[cpu % MAX_CPUS].nesting.load(Ordering::Acquire) > 0
    }

    /// Publishes `value` in cell `index` and returns the value it replaces, retired. Writers of
    /// one cell must be serialised by the caller (a lock); readers never wait for them.
    pub fn replace(&self, index: usize, value: Option<Box<T>>) -> Option<Retired<T>> {
        let new = value.map_or(ptr::null_mut(), Box::into_raw);
        let old = self.cells[index].swap(new, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let stamp = self.stamp();
        // SAFETY: `old` came from `Box::into_raw` in an earlier `replace` and has just left the
        // cell, so this is its only owner; readers that loaded it before the swap are covered
        // by the stamp, which `try_reclaim` checks before the box is dropped.
        let value = (!old.is_null()).then(|| unsafe { Box::from_raw(old) });
        let array = ptr::from_ref(self).addr();
        value.map(|value| Retired { value: Some(value), stamp, array, elapsed: false })
    }

    /// Waits until every CPU has left the read sections it was in when called (Linux's
    /// `synchronize_rcu`): afterwards nothing retired before the call is still being read.
    /// Refused (`false`) when `cpu` is inside a read section itself, which could not end while
    /// its CPU waits here.
    pub fn synchronize(&self, cpu: usize) -> bool {
        if self.is_reading(cpu) {
            return false;
        }
        fence(Ordering::SeqCst);
        let stamp = self.stamp();
        while !self.has_elapsed(&stamp) {
            crate::sync::local::while_waiting();
            spin_loop();
        }
        true
    }

    fn stamp(&self) -> GraceStamp {
        let mut cpus = [None; MAX_CPUS];
        for (slot, reader) in cpus.iter_mut().zip(&self.readers) {
            let exits = reader.exits.load(Ordering::SeqCst);
            if reader.nesting.load(Ordering::SeqCst) > 0 {
                *slot = Some(exits);
            }
        }
        GraceStamp { cpus }
    }

    fn has_elapsed(&self, stamp: &GraceStamp) -> bool {
        stamp.cpus.iter().zip(&self.readers).all(|(then, reader)| match then {
            None => true,
            Some(exits) => {
                reader.nesting.load(Ordering::Acquire) == 0
                    || reader.exits.load(Ordering::Acquire) != *exits
            }
        })
    }
}

impl<T> Retired<T> {
    /// Frees the value if its grace period is over; returns whether it is gone (a value
    /// already freed counts as gone). `array` must be the one it was retired from; any other
    /// is refused.
    pub fn try_reclaim<const N: usize>(&mut self, array: &RcuArray<T, N>) -> bool {
        if self.has_elapsed(array) {
            drop(self.value.take());
        }
        self.value.is_none()
    }

    /// The value, still readable (it is freed only by [`try_reclaim`](Self::try_reclaim)).
    pub fn get(&self) -> Option<&T> {
        self.value.as_deref()
    }

    /// Whether the grace period is over (the value could be freed now). Once true, stays true.
    pub fn has_elapsed<const N: usize>(&mut self, array: &RcuArray<T, N>) -> bool {
        if !self.elapsed && ptr::from_ref(array).addr() == self.array {
            self.elapsed = array.has_elapsed(&self.stamp);
        }
        self.elapsed
    }
}

impl<T> Drop for Retired<T> {
    fn drop(&mut self) {
        // Dropped before its grace period was seen to end: a reader may still hold it, so it is
        // leaked rather than freed. Holders reclaim instead of dropping.
        if let Some(value) = self.value.take() {
            core::mem::forget(value);
        }
    }
}

impl<T, const N: usize> Drop for RcuArray<T, N> {
    fn drop(&mut self) {
        for cell in &mut self.cells {
            let pointer = cell.swap(ptr::null_mut(), Ordering::SeqCst);
            if !pointer.is_null() {
                // SAFETY: `&mut self`: no reader is inside a section of this array, and the
                // pointer came from `Box::into_raw` in `replace`.
                drop(unsafe { Box::from_raw(pointer) });
            }
        }
    }
}
