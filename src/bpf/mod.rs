//! Verified interrupt handlers: eBPF programs a user-space driver loads for its line, checked
//! once by [`verify`] and then run by [`run`] inside the interrupt, where a fault or a hang
//! would take the kernel down. The verifier proves, for every path, what the interpreter would
//! otherwise have to check on each instruction — yet the interpreter still checks (bounds,
//! an instruction budget): a verifier bug costs a counted, unloaded handler, not the kernel.
//!
//! The rules, each refusal naming the instruction and the rule it broke ([`Rule`]): forward
//! jumps only (so every path ends, in at most as many steps as there are instructions), at
//! most `abi::bpf::MAX_INSTRUCTIONS`, every jump inside the program, no register read before
//! it is written on every path to it, loads only from the read-only context or written stack
//! bytes, aligned and within bounds, stores only to the stack's `STACK_BYTES`, no division by
//! a register not proven non-zero, only the listed helpers with arguments of their types, and
//! port I/O only to constant ports the driver was granted.
#![forbid(unsafe_code)]

mod interpreter;
#[cfg(test)]
mod tests;
mod verifier;

use core::fmt;

pub use self::{
    interpreter::{Environment, Fault, run},
    verifier::verify,
};
pub use crate::abi::bpf::Instruction;

/// A rule a refused program broke; its number is its index in `abi::bpf::REFUSAL_RULES`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[repr(u8)]
pub enum Rule {
    /// No instructions at all.
    Empty,
    /// More than `abi::bpf::MAX_INSTRUCTIONS`.
    TooManyInstructions,
    /// An opcode Herald does not take.
    UnknownOpcode,
    /// A register number above 10.
    NoSuchRegister,
    /// A jump backwards or to itself: a loop, which might never end.
    BackEdge,
    /// A jump past the last instruction.
    JumpOutOfProgram,
    /// The last instruction is not an exit: a path would run off the end.
    FallsOffTheEnd,
    /// A register read before every path to it wrote it.
    UninitializedRegister,
    /// A write to `r10`, the frame pointer.
    FramePointerWritten,
    /// Arithmetic on a pointer other than adding or subtracting a constant.
    PointerArithmetic,
    /// A pointer compared, stored or handed to a helper as a number (it would leak the
    /// kernel's addresses).
    PointerLeak,
    /// A load or store through something that is not a pointer.
    NotAPointer,
    /// A load outside the context or the stack.
    OutOfBounds,
    /// A load or store not aligned to its size.
    Misaligned,
    /// A store into the read-only context (the event).
    ReadOnlyContext,
    /// A store outside the stack frame's `STACK_BYTES`.
    StackOutOfBounds,
    /// A load of stack bytes not written on every path before it.
    UninitializedStack,
    /// A division or remainder by zero, or by a register not proven non-zero.
    PossibleDivisionByZero,
    /// A call of a helper that does not exist.
    UnknownHelper,
    /// A helper's argument of the wrong type (a pointer where a number is due, a port that is
    /// not a constant).
    WrongArgumentType,
    /// Port I/O to a port the driver was not granted.
    PortNotGranted,
    /// A register holding different kinds of value on the paths that meet at an instruction.
    ConflictingPaths,
}

impl Rule {
    /// What the rule says, for the refusal's message (user space reads the same table).
    pub const fn describe(self) -> &'static str {
        crate::abi::bpf::REFUSAL_RULES[self as usize]
    }
}

/// Why a program was refused.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Refusal {
    /// The instruction's index.
    pub index: usize,
    /// The rule it broke.
    pub rule: Rule,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instruction {}: {}", self.index, self.rule.describe())
    }
}

/// A program the verifier accepted, for the ports it was checked against.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Verified {
    instructions: alloc::vec::Vec<Instruction>,
}

impl Verified {
    /// Its instructions.
    pub fn instructions(&self) -> &[Instruction] {
        &self.instructions
    }
}
