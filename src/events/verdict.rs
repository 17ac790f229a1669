//! What handlers answer and what a dispatch decides.

use super::Errno;

/// A handler's answer.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Verdict {
    /// Not mine, or nothing to object to: let the chain go on.
    Continue,
    /// Done: the request is served or the notification claimed (see [`Composition`](super::Composition)).
    Handled,
    /// Refuse the request with this errno.
    Deny(Errno),
}

/// The decision a dispatch reached, which the event's source applies.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Outcome {
    /// No handler claimed the event: the source applies its documented default.
    Unhandled,
    /// An owner handled it.
    Handled,
    /// A handler denied it.
    Denied(Errno),
}

/// What handlers tell the event's source beyond the verdict; created by the source, filled in
/// by handlers, read back after [`Bus::dispatch`](super::Bus::dispatch).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Reply {
    /// Result of a handled request (a syscall's return value).
    pub value: u64,
    /// Where to resume after a handled fault, if not at the faulting instruction.
    pub resume_at: Option<u64>,
    /// Keep the interrupt line masked until a deferred handler acknowledges it.
    pub keep_line_masked: bool,
    /// The producer overran a queue whose policy is `KillProducer`: the source stops it (a
    /// process is ended with `abi::FLOODED_EXIT_CODE`, a device line is disabled).
    pub kill_producer: bool,
    /// A queue whose policy is `Backpressure` was full and refused the event: the source makes
    /// the producer wait and offers it again (a process blocks; a device line stays masked).
    pub would_block: bool,
    /// The fault's owner found no memory to resolve it: the process that touched the page is
    /// ended with `abi::OUT_OF_MEMORY_EXIT_CODE` rather than as a crash.
    pub out_of_memory: bool,
    /// The request cannot complete yet: the requester has been blocked, and the source issues
    /// the same request again once it is woken (a restartable system call).
    pub restart: bool,
    /// The decision so far; observers read it to see how the event ended.
    pub outcome: Outcome,
}

impl Reply {
    /// An empty reply for a fresh dispatch.
    pub const fn new() -> Self {
        Self {
            value: 0,
            resume_at: None,
            keep_line_masked: false,
            kill_producer: false,
            out_of_memory: false,
            would_block: false,
            restart: false,
            outcome: Outcome::Unhandled,
        }
    }
}

impl Default for Reply {
    fn default() -> Self {
        Self::new()
    }
}
