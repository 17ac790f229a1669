//! Why the bus refused a subscription.

use core::fmt;

/// Why a subscription was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum BusError {
    /// The chain already holds its maximum number of subscribers.
    ChainFull,
    /// The bus already has its maximum number of deferred queues.
    TooManyQueues,
    /// Requests (exceptions, page faults, system calls, memory) cannot be deferred: their source
    /// waits for the decision.
    DeferredRequest,
    /// There is no such interrupt line.
    NoSuchLine,
    /// `Backpressure` and `KillProducer` need a producer that can wait or be stopped: a
    /// device line (masked, disabled), or a raising process (ended; it waits only on a
    /// process's own subscription). The timer, exits and the bus's own announcements have
    /// none, so those policies would only refuse.
    NoProducerToStop,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ChainFull => "chain is full",
            Self::TooManyQueues => "too many deferred queues",
            Self::DeferredRequest => "requests cannot be handled deferred",
            Self::NoSuchLine => "no such interrupt line",
            Self::NoProducerToStop => "this kind's producer cannot wait or be stopped",
        })
    }
}
