//! A pipe's buffer: bytes one end writes and the other reads, in order, up to a fixed
//! capacity, with the number of open read and write ends (a read with no writer left is the
//! end of the data; a write with no reader left is `EPIPE`). Blocking is the caller's: this
//! only says whether it would have to wait, and counts changes so a caller that found it must
//! wait can tell whether anything changed since ([`Pipe::changes`]).
//!
//! The bytes live in page-sized chunks, allocated as the pipe first fills and kept as it
//! drains, as Linux's pipe buffers are pages. Keeping them all costs nothing the pipe could
//! not hold anyway — it owns at most [`MAX_CHUNKS`], full or not — and a pipe in steady use
//! then never goes back to the heap (a zeroed page per 4 KiB moved was a fifth of a pipe's
//! throughput). A reader or writer moves bytes straight between
//! a chunk and its own buffer (`read_with`, `write_with`: the caller's copy to or from a
//! process's memory), so a byte is copied once each way and nothing is zeroed on the way.

#![forbid(unsafe_code)]

use alloc::{boxed::Box, collections::VecDeque, vec, vec::Vec};

use crate::sync::IrqSpinLock;

/// Bytes a pipe holds before a writer waits (Linux's default pipe size).
pub const PIPE_CAPACITY_BYTES: usize = 64 * 1024;
/// Writes of at most this many bytes are never split by another writer's (`PIPE_BUF`).
pub const PIPE_ATOMIC_BYTES: usize = 4096;
/// Bytes of one chunk of a pipe's buffer (a page).
const CHUNK_BYTES: usize = 4096;
/// Most chunks a pipe ever owns, in use or spare: a full pipe's data starting mid-chunk.
const MAX_CHUNKS: usize = PIPE_CAPACITY_BYTES / CHUNK_BYTES + 1;

/// What a read or write could do now.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PipeIo {
    /// Moved this many bytes (0 for a read: every writer has closed, the end of the data).
    Done(usize),
    /// Nothing can move until the other end acts; the pipe's [`Pipe::changes`] count was this
    /// when it was found so.
    WouldWait(u64),
    /// A write with no reader left.
    Broken,
}

#[derive(Default)]
struct State {
    /// The chunks holding `len` bytes from `head` in the first one on; possibly one more,
    /// empty, at the end.
    chunks: VecDeque<Box<[u8]>>,
    head: usize,
    len: usize,
    spare: Vec<Box<[u8]>>,
    readers: usize,
    writers: usize,
    /// Bumped by every change a waiting end cares about: bytes in or out, an end closed.
    changes: u64,
}

impl State {
    /// Keeps a drained chunk for the next writes. A chunk is allocated only when no spare is
    /// left, so the pipe's chunks and spares together never exceed [`MAX_CHUNKS`].
    fn recycle(&mut self, chunk: Box<[u8]>) {
        debug_assert!(self.chunks.len() + self.spare.len() < MAX_CHUNKS);
        self.spare.push(chunk);
    }
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
            state.len, state.readers, state.writers
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
        if read {
            state.readers -= 1;
        } else {
            state.writers -= 1;
        }
        state.changes += 1;
    }

    /// Takes up to `max_bytes`, handing them to `drain` a piece at a time in order (each piece
    /// within one chunk). A piece `drain` refuses stays in the pipe: its error is the answer if
    /// nothing was taken before it, else what was taken is.
    pub fn read_with<E>(
        &self,
        max_bytes: usize,
        mut drain: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<PipeIo, E> {
        let mut state = self.state.lock();
        if state.len == 0 {
            return Ok(if state.writers == 0 {
                PipeIo::Done(0)
            } else {
                PipeIo::WouldWait(state.changes)
            });
        }
        let count = max_bytes.min(state.len);
        let mut done = 0;
        while done < count {
            let head = state.head;
            let piece = (CHUNK_BYTES - head).min(count - done);
            if let Err(error) = drain(&state.chunks[0][head..head + piece]) {
                if done == 0 {
                    return Err(error);
                }
                break;
            }
            state.head += piece;
            state.len -= piece;
            done += piece;
            if state.head == CHUNK_BYTES {
                state.head = 0;
                if let Some(chunk) = state.chunks.pop_front() {
                    state.recycle(chunk);
                }
            }
        }
        state.changes += 1;
        Ok(PipeIo::Done(done))
    }

    /// Adds up to `len_bytes` (all or none if at most [`PIPE_ATOMIC_BYTES`]), as many as fit,
    /// letting `fill` write them a piece at a time into the pipe (each piece within one chunk;
    /// its first argument is how many bytes came before it). A piece `fill` refuses is not
    /// added: its error is the answer if nothing was added before it, else what was added is.
    pub fn write_with<E>(
        &self,
        len_bytes: usize,
        mut fill: impl FnMut(usize, &mut [u8]) -> Result<(), E>,
    ) -> Result<PipeIo, E> {
        let mut state = self.state.lock();
        if state.readers == 0 {
            return Ok(PipeIo::Broken);
        }
        let room = PIPE_CAPACITY_BYTES - state.len;
        if room == 0 || (len_bytes <= PIPE_ATOMIC_BYTES && room < len_bytes) {
            return Ok(PipeIo::WouldWait(state.changes));
        }
        let count = room.min(len_bytes);
        let mut done = 0;
        while done < count {
            let tail = state.head + state.len;
            let (index, offset) = (tail / CHUNK_BYTES, tail % CHUNK_BYTES);
            if index == state.chunks.len() {
                let chunk =
                    state.spare.pop().unwrap_or_else(|| vec![0u8; CHUNK_BYTES].into_boxed_slice());
                state.chunks.push_back(chunk);
            }
            let piece = (CHUNK_BYTES - offset).min(count - done);
            if let Err(error) = fill(done, &mut state.chunks[index][offset..offset + piece]) {
                if done == 0 {
                    return Err(error);
                }
                break;
            }
            state.len += piece;
            done += piece;
        }
        state.changes += 1;
        Ok(PipeIo::Done(done))
    }

    /// How many changes the pipe has seen (see [`PipeIo::WouldWait`]).
    pub fn changes(&self) -> u64 {
        self.state.lock().changes
    }

    /// Whether a read would not wait (data, or no writer), and a write would not.
    pub fn ready(&self) -> (bool, bool) {
        let state = self.state.lock();
        let readable = state.len > 0 || state.writers == 0;
        let writable = state.readers == 0 || state.len < PIPE_CAPACITY_BYTES;
        (readable, writable)
    }

    /// Bytes waiting.
    pub fn len_bytes(&self) -> usize {
        self.state.lock().len
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    fn write(pipe: &Pipe, bytes: &[u8]) -> PipeIo {
        let copied: Result<_, ()> = pipe.write_with(bytes.len(), |at, piece| {
            piece.copy_from_slice(&bytes[at..at + piece.len()]);
            Ok(())
        });
        copied.expect("the copy cannot fail")
    }

    fn read(pipe: &Pipe, max_bytes: usize) -> (PipeIo, Vec<u8>) {
        let mut out = Vec::new();
        let taken: Result<_, ()> = pipe.read_with(max_bytes, |piece| {
            out.extend_from_slice(piece);
            Ok(())
        });
        (taken.expect("the copy cannot fail"), out)
    }

    #[test_case]
    fn bytes_come_out_in_order_and_the_ends_decide_eof_and_broken() {
        let pipe = Pipe::default();
        pipe.open_end(true);
        pipe.open_end(false);
        assert!(matches!(read(&pipe, 8).0, PipeIo::WouldWait(_)));
        assert_eq!(write(&pipe, b"abc"), PipeIo::Done(3));
        assert_eq!(read(&pipe, 2), (PipeIo::Done(2), b"ab".to_vec()));
        pipe.close_end(false);
        assert_eq!(read(&pipe, 8), (PipeIo::Done(1), b"c".to_vec()), "what was written stays");
        assert_eq!(read(&pipe, 8).0, PipeIo::Done(0), "then the end");
        pipe.close_end(true);
        assert_eq!(write(&pipe, b"x"), PipeIo::Broken);
    }

    #[test_case]
    fn a_pipe_filled_and_drained_again_and_again_reuses_its_chunks() {
        let pipe = Pipe::default();
        pipe.open_end(true);
        pipe.open_end(false);
        let data = vec![5u8; PIPE_CAPACITY_BYTES];
        let owned = |pipe: &Pipe| {
            let state = pipe.state.lock();
            state.chunks.len() + state.spare.len()
        };
        // Misaligned fills, so the data starts mid-chunk and needs the extra one.
        assert_eq!(write(&pipe, &data[..100]), PipeIo::Done(100));
        assert_eq!(read(&pipe, 100).0, PipeIo::Done(100));
        let mut most = 0;
        for _ in 0..8 {
            assert_eq!(write(&pipe, &data), PipeIo::Done(data.len()));
            most = most.max(owned(&pipe));
            assert_eq!(read(&pipe, data.len()).0, PipeIo::Done(data.len()));
            assert_eq!(owned(&pipe), most, "drained chunks are kept, none allocated again");
        }
        assert!(most <= MAX_CHUNKS, "{most} chunks");
    }

    #[test_case]
    fn a_full_pipe_waits_and_small_writes_are_never_split() {
        let pipe = Pipe::default();
        pipe.open_end(true);
        pipe.open_end(false);
        let big = vec![1u8; PIPE_CAPACITY_BYTES - 10];
        assert_eq!(write(&pipe, &big), PipeIo::Done(big.len()));
        assert!(matches!(write(&pipe, &[2; 20]), PipeIo::WouldWait(_)), "20 do not fit in 10");
        let split = write(&pipe, &vec![3; PIPE_ATOMIC_BYTES + 1]);
        assert_eq!(split, PipeIo::Done(10), "a big write is split");
        assert!(matches!(write(&pipe, &[4]), PipeIo::WouldWait(_)));
        assert_eq!(pipe.ready(), (true, false));
    }

    #[test_case]
    fn bytes_cross_chunks_in_order_and_a_refused_piece_stays() {
        let pipe = Pipe::default();
        pipe.open_end(true);
        pipe.open_end(false);
        // Odd sizes, so reads and writes straddle chunk boundaries everywhere.
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let mut written = 0;
        let mut taken = Vec::new();
        while taken.len() < data.len() {
            if written < data.len() {
                let end = (written + 7_777).min(data.len());
                if let PipeIo::Done(count) = write(&pipe, &data[written..end]) {
                    written += count;
                }
            }
            let (_, out) = read(&pipe, 5_003);
            taken.extend_from_slice(&out);
        }
        assert!(taken == data, "every byte, in order");
        // A drain that refuses its second piece: the first is taken, the rest stays.
        assert_eq!(write(&pipe, &[9; 6000]), PipeIo::Done(6000));
        let mut pieces = 0;
        let refused: Result<PipeIo, ()> = pipe.read_with(6000, |_| {
            pieces += 1;
            if pieces == 1 { Ok(()) } else { Err(()) }
        });
        let first = refused.expect("the first piece was taken");
        assert!(matches!(first, PipeIo::Done(count) if count < 6000), "{first:?}");
        let PipeIo::Done(first) = first else { return };
        assert_eq!(pipe.len_bytes(), 6000 - first, "the refused bytes are still there");
        // A fill that refuses at once: an error, nothing added.
        let none: Result<PipeIo, ()> = pipe.write_with(10, |_, _| Err(()));
        assert_eq!(none, Err(()));
        assert_eq!(pipe.len_bytes(), 6000 - first);
    }
}
