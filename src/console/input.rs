//! Console input: the bounded buffer that device drivers fill from their bottom halves and the
//! shell drains. Nothing is dropped: a driver reads its device only while the buffer has room
//! (the device and QEMU hold the rest), and once the shell has made room it asks every
//! registered source to read what it held back — an edge-triggered line raises no new
//! interrupt for data that was already waiting.

use alloc::collections::VecDeque;

use crate::arch::IrqMutex;

/// Bytes waiting for the shell; sources hold back beyond this.
const CAPACITY_BYTES: usize = 64 * 1024;
/// Most input sources (drivers) that can register a drain.
const MAX_SOURCES: usize = 4;

static BYTES: IrqMutex<VecDeque<u8>> = IrqMutex::new(VecDeque::new());
/// A source's drain: reads what its device held back, while there is room.
type Drain = fn();

static SOURCES: IrqMutex<[Option<Drain>; MAX_SOURCES]> = IrqMutex::new([None; MAX_SOURCES]);

/// Bytes waiting for the shell.
pub fn waiting_bytes() -> usize {
    BYTES.lock().len()
}

/// Whether the buffer can take another byte. Sources read their device only while it can.
pub fn has_room() -> bool {
    BYTES.lock().len() < CAPACITY_BYTES
}

/// Appends one byte (from a driver's bottom half). Returns `false`, taking nothing, if the
/// buffer is full; the source keeps the byte in its device.
pub fn feed(byte: u8) -> bool {
    let mut bytes = BYTES.lock();
    if bytes.len() >= CAPACITY_BYTES {
        return false;
    }
    bytes.push_back(byte);
    true
}

/// The next byte, left in place.
pub fn peek() -> Option<u8> {
    BYTES.lock().front().copied()
}

/// Takes the next byte.
pub fn take() -> Option<u8> {
    BYTES.lock().pop_front()
}

/// Puts `bytes` back at the front, in order (input a program left unread).
pub fn give_back(bytes: &[u8]) {
    let mut waiting = BYTES.lock();
    for &byte in bytes.iter().rev() {
        waiting.push_front(byte);
    }
}

/// Registers `drain`, which reads a source's held-back bytes with [`feed`] while there is room.
/// Returns `false` if [`MAX_SOURCES`] are registered already.
pub fn register_source(drain: Drain) -> bool {
    let mut sources = SOURCES.lock();
    let Some(slot) = sources.iter_mut().find(|slot| slot.is_none()) else { return false };
    *slot = Some(drain);
    true
}

/// The reader made room: every source reads what it held back.
pub fn room_made() {
    let sources = *SOURCES.lock();
    for drain in sources.into_iter().flatten() {
        drain();
    }
}
