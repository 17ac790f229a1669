//! A pipe's buffer: bytes one end writes and the other reads, in order, up to a fixed
//! capacity, with the number of open read and write ends (a read with no writer left is the
//! end of the data; a write with no reader left is `EPIPE`). Blocking is the caller's: this
//! only says whether it would have to wait.

#![forbid(unsafe_code)]

use alloc::collections::VecDeque;

use crate::sync::IrqSpinLock;

/// Bytes a pipe holds before a writer waits (Linux's default pipe size).
pub const PIPE_CAPACITY_BYTES: usize = 64 * 1024;
/// Writes of at most this many bytes are never split by another writer's (`PIPE_BUF`).
pub const PIPE_ATOMIC_BYTES: usize = 4096;

/// What a read or write could do now.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PipeIo {
    /// Moved this many bytes (0 for a read: every writer has closed, the end of the data).
    Done(usize),
    /// Nothing can move until the other end acts.
    WouldWait,
    /// A write with no reader left.
    Broken,
}

#[derive(Default)]
struct State {
    bytes: VecDeque<u8>,
    readers: usize,
    writers: usize,
}

/// A pipe.
pub struct Pipe {
    state: IrqSpinLock<State>,
}

impl Default for Pipe {
    fn default() -> Self {
        Self { state: IrqSpinLock::new(State::default()) }
    }
}

impl core::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = self.state.lock();
        write!(
            f,
            "pipe ({} bytes, {} readers, {} writers)",
            state.bytes.len(),
            state.readers,
            state.writers
        )
    }
}

impl Pipe {
    /// Counts a new open end (`read`: a read end).
    pub fn open_end(&self, read: bool) {
        let mut state = self.state.lock();
        if read { state.readers += 1 } else { state.writers += 1 }
    }

    /// Counts an end closed.
    pub fn close_end(&self, read: bool) {
        let mut state = self.state.lock();
        if read { state.readers -= 1 } else { state.writers -= 1 }
    }

    /// Takes up to `out.len()` bytes.
    pub fn read(&self, out: &mut [u8]) -> PipeIo {
        let mut state = self.state.lock();
        if state.bytes.is_empty() {
            return if state.writers == 0 { PipeIo::Done(0) } else { PipeIo::WouldWait };
        }
        let count = out.len().min(state.bytes.len());
        // Two slice copies (the ring's two halves), not a byte at a time.
        let (front, back) = state.bytes.as_slices();
        let from_front = count.min(front.len());
        out[..from_front].copy_from_slice(&front[..from_front]);
        out[from_front..count].copy_from_slice(&back[..count - from_front]);
        state.bytes.drain(..count);
        PipeIo::Done(count)
    }

    /// Adds as many of `bytes` as fit; a write of up to [`PIPE_ATOMIC_BYTES`] goes in whole
    /// or waits.
    pub fn write(&self, bytes: &[u8]) -> PipeIo {
        let mut state = self.state.lock();
        if state.readers == 0 {
            return PipeIo::Broken;
        }
        let room = PIPE_CAPACITY_BYTES - state.bytes.len();
        if room == 0 || (bytes.len() <= PIPE_ATOMIC_BYTES && room < bytes.len()) {
            return PipeIo::WouldWait;
        }
        let count = room.min(bytes.len());
        state.bytes.extend(&bytes[..count]);
        PipeIo::Done(count)
    }

    /// Whether a read would not wait (data, or no writer), and a write would not.
    pub fn ready(&self) -> (bool, bool) {
        let state = self.state.lock();
        let readable = !state.bytes.is_empty() || state.writers == 0;
        let writable = state.readers == 0 || state.bytes.len() < PIPE_CAPACITY_BYTES;
        (readable, writable)
    }

    /// Bytes waiting.
    pub fn len_bytes(&self) -> usize {
        self.state.lock().bytes.len()
    }

    /// Bytes a write could add now.
    pub fn room_bytes(&self) -> usize {
        PIPE_CAPACITY_BYTES - self.state.lock().bytes.len()
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::vec;

    use super::*;

    #[test_case]
    fn bytes_come_out_in_order_and_the_ends_decide_eof_and_broken() {
        let pipe = Pipe::default();
        pipe.open_end(true);
        pipe.open_end(false);
        let mut out = [0u8; 8];
        assert_eq!(pipe.read(&mut out), PipeIo::WouldWait);
        assert_eq!(pipe.write(b"abc"), PipeIo::Done(3));
        assert_eq!(pipe.read(&mut out[..2]), PipeIo::Done(2));
        assert_eq!(&out[..2], b"ab");
        pipe.close_end(false);
        assert_eq!(pipe.read(&mut out), PipeIo::Done(1), "what was written is still read");
        assert_eq!(pipe.read(&mut out), PipeIo::Done(0), "then the end");
        pipe.close_end(true);
        assert_eq!(pipe.write(b"x"), PipeIo::Broken);
    }

    #[test_case]
    fn a_full_pipe_waits_and_small_writes_are_never_split() {
        let pipe = Pipe::default();
        pipe.open_end(true);
        pipe.open_end(false);
        let big = vec![1u8; PIPE_CAPACITY_BYTES - 10];
        assert_eq!(pipe.write(&big), PipeIo::Done(big.len()));
        assert_eq!(pipe.write(&[2; 20]), PipeIo::WouldWait, "20 bytes do not fit whole in 10");
        assert_eq!(
            pipe.write(&vec![3; PIPE_ATOMIC_BYTES + 1]),
            PipeIo::Done(10),
            "a big write is split"
        );
        assert_eq!(pipe.write(&[4]), PipeIo::WouldWait);
        assert_eq!(pipe.ready(), (true, false));
    }
}
