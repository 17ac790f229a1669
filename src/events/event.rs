//! The events themselves: what happened, as small `Copy` values with typed payloads.

use core::fmt;

use super::{Errno, MemoryRequest};

/// Which system-call numbering a call uses: Herald's own (`abi.rs`) or Linux's (x86-64
/// `unistd_64.h`), as the calling program's executable says.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum SyscallAbi {
    /// Herald's programs (their executables carry `abi::ABI_SECTION`).
    #[default]
    Herald,
    /// Unmodified static Linux programs.
    Linux,
}

/// What a faulting access tried to do.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Access {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Execute,
}

/// Identifies a bounded queue in [`Event::Lost`] and in queue statistics.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct QueueId(pub u16);

/// Something that happened, turned into data by the code that noticed it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Event {
    /// A CPU exception other than a page fault.
    Exception {
        /// Exception vector, 0–31.
        vector: u8,
        /// The CPU's error code, 0 for vectors without one.
        error_code: u64,
        /// Address of the faulting (or, for traps, the next) instruction.
        rip: u64,
        /// Whether ring-3 code was running.
        from_user: bool,
    },
    /// A page fault.
    PageFault {
        /// The address that was accessed.
        address: u64,
        /// What the access tried to do.
        access: Access,
        /// Whether the page was mapped (a protection violation) rather than absent.
        present: bool,
        /// Whether ring-3 code made the access.
        from_user: bool,
        /// Address of the faulting instruction.
        rip: u64,
    },
    /// A device interrupt line fired.
    Irq {
        /// Interrupt line (0–15 on the PICs; see `irq` for software lines).
        line: u8,
        /// Per-line sequence number, starting at 1: a consumer that last saw `n` and now sees
        /// `m` knows `m - n - 1` interrupts reached it only in coalesced form.
        seq: u64,
    },
    /// The periodic timer ticked.
    Timer {
        /// Ticks since boot, including this one.
        tick: u64,
    },
    /// A system call.
    Syscall {
        /// Call number.
        number: u64,
        /// Up to six arguments, in ABI order.
        args: [u64; 6],
        /// Calling process (0: the kernel itself).
        pid: u32,
        /// Which numbering `number` uses.
        abi: SyscallAbi,
    },
    /// A request to change an address space, from a syscall or from kernel code.
    Memory {
        /// The requesting process (0: the kernel).
        pid: u32,
        /// What is asked.
        request: MemoryRequest,
    },
    /// A process ended.
    ProcessExited {
        /// The process.
        pid: u32,
        /// Its exit code.
        code: i32,
    },
    /// A bounded queue had to discard events; delivered in-band before the next one.
    Lost {
        /// The queue that overflowed.
        queue: QueueId,
        /// How many events were discarded since the last delivery.
        count: u64,
    },
    /// A process raised an event of its own (`raise`): user-level publish/subscribe.
    User {
        /// The raising process.
        pid: u32,
        /// Its count of raised events, starting at 1. An event a full queue refused with
        /// `Backpressure` is offered again with the same number once the producer has waited.
        seq: u64,
        /// The value it raised.
        value: u64,
        /// This is that second (or later) offer: every queue but a backpressure one took or
        /// dropped the event the first time and skips it; a backpressure queue takes it unless
        /// it took this `seq` from this producer already.
        retry: bool,
    },
    /// A security policy denied an event.
    PolicyDenied {
        /// The process whose request was denied (0: the kernel).
        pid: u32,
        /// Kind of the denied event.
        kind: EventKind,
        /// The errno it was denied with.
        errno: Errno,
    },
}

/// How the verdicts of a chain's handlers combine.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Composition {
    /// Requests (syscalls, faults): the first `Deny` ends the decision (as Linux LSM), and the
    /// first owner that returns `Handled` ends it too; later security and owner handlers are
    /// skipped. Observers still see the event and its outcome.
    FirstDecision,
    /// Notifications (IRQs, ticks, exits): every handler runs. An owner returning `Handled`
    /// marks the event claimed (an IRQ nobody claims counts as unhandled); `Deny` is ignored,
    /// because there is no request to refuse.
    Broadcast,
}

macro_rules! event_kinds {
    ($($kind:ident => $name:literal, $composition:ident;)*) => {
        /// The discriminant of [`Event`]: what handlers subscribe to.
        #[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
        #[repr(u8)]
        pub enum EventKind {
            $(
                #[doc = concat!("[`Event::", stringify!($kind), "`]")]
                $kind,
            )*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: [Self; Self::COUNT] = [$(Self::$kind),*];
            /// Number of kinds.
            pub const COUNT: usize = [$(Self::$kind),*].len();

            /// Returns the kind's name as shell commands print and accept it.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$kind => $name,)*
                }
            }

            /// Returns how the kind's chain combines verdicts.
            pub const fn composition(self) -> Composition {
                match self {
                    $(Self::$kind => Composition::$composition,)*
                }
            }
        }
    };
}

event_kinds! {
    Exception => "exception", FirstDecision;
    PageFault => "page-fault", FirstDecision;
    Irq => "irq", Broadcast;
    Timer => "timer", Broadcast;
    Syscall => "syscall", FirstDecision;
    Memory => "memory", FirstDecision;
    ProcessExited => "process-exited", Broadcast;
    Lost => "lost", Broadcast;
    User => "user", Broadcast;
    PolicyDenied => "policy-denied", Broadcast;
}

impl EventKind {
    /// Returns the position of this kind in [`EventKind::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Parses a kind's [`name`](Self::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Event {
    /// Returns the event's kind.
    pub const fn kind(&self) -> EventKind {
        match self {
            Self::Exception { .. } => EventKind::Exception,
            Self::PageFault { .. } => EventKind::PageFault,
            Self::Irq { .. } => EventKind::Irq,
            Self::Timer { .. } => EventKind::Timer,
            Self::Syscall { .. } => EventKind::Syscall,
            Self::Memory { .. } => EventKind::Memory,
            Self::ProcessExited { .. } => EventKind::ProcessExited,
            Self::Lost { .. } => EventKind::Lost,
            Self::User { .. } => EventKind::User,
            Self::PolicyDenied { .. } => EventKind::PolicyDenied,
        }
    }
}
