//! Runs a verified program in the interrupt: registers and a 64-byte stack on the interrupted
//! stack, no allocation, no lock. Every access is still checked and every instruction counted
//! against a budget; a program that breaks either is stopped with a [`Fault`] (its loader
//! unloads and counts it) — the second line of defence behind the verifier.

use super::{Instruction, Verified};
use crate::abi::bpf::{
    ALU_ADD, ALU_AND, ALU_ARSH, ALU_DIV, ALU_LSH, ALU_MOD, ALU_MOV, ALU_MUL, ALU_NEG, ALU_OR,
    ALU_RSH, ALU_SUB, ALU_XOR, CLASS_ALU, CLASS_ALU64, CLASS_JMP, CLASS_LDX, CLASS_ST, CLASS_STX,
    CONTEXT_BYTES, HELPER_ACKNOWLEDGE, HELPER_PORT_IN, HELPER_PORT_OUT, HELPER_QUEUE,
    HELPER_RING_SPACE, HELPER_SEQ, HELPER_WAKE, JMP_CALL, JMP_EXIT, JMP_JA, JMP_JEQ, JMP_JGE,
    JMP_JGT, JMP_JLE, JMP_JLT, JMP_JNE, JMP_JSET, SIZE_B, SIZE_DW, SIZE_H, SIZE_W, SOURCE_REGISTER,
    STACK_BYTES,
};

/// Where the context appears to the program (a tag, not a kernel address: pointers never
/// leave the interpreter's own numbering).
const CONTEXT_BASE: u64 = 0x1000;
/// Where the stack's lowest byte appears; `r10` starts at its top.
const STACK_BASE: u64 = 0x2000;

/// What a handler may do to the world, provided by its loader.
pub trait Environment {
    /// Reads a port (the verifier proved it granted; the loader checks again).
    fn port_in(&mut self, port: u16) -> u8;
    /// Writes a port.
    fn port_out(&mut self, port: u16, value: u8);
    /// Queues a record for the driver; `false` if its ring is full.
    fn queue(&mut self, value: u64) -> bool;
    /// Wakes the driver's `irq_wait`.
    fn wake(&mut self);
    /// The handler served the device: the line need not wait for the driver.
    fn acknowledge(&mut self);
    /// The line's sequence number.
    fn seq(&self) -> u64;
    /// Records the driver's ring still takes.
    fn ring_space(&self) -> u64;
}

/// Why a run was stopped: each one a verifier bug, or a budget set too low.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Fault {
    /// More instructions ran than the budget allows.
    Budget,
    /// An access outside the context and the stack, at this instruction.
    Memory(usize),
    /// A division by zero, at this instruction.
    Division(usize),
    /// An instruction the interpreter cannot run, at this index.
    Instruction(usize),
}

/// The result of ALU operation `op` on `a` and `b`, 64-bit wide or 32-bit (zero-extended);
/// `None` for a division or remainder by zero. Shifts take their count modulo the width. The
/// verifier folds constants with the same function, so what it proves is what runs.
pub(super) fn alu(op: u8, a: u64, b: u64, wide: bool) -> Option<u64> {
    if wide {
        Some(match op {
            ALU_ADD => a.wrapping_add(b),
            ALU_SUB => a.wrapping_sub(b),
            ALU_MUL => a.wrapping_mul(b),
            ALU_DIV => a.checked_div(b)?,
            ALU_OR => a | b,
            ALU_AND => a & b,
            ALU_LSH => a << (b & 63),
            ALU_RSH => a >> (b & 63),
            ALU_NEG => a.wrapping_neg(),
            ALU_MOD => a.checked_rem(b)?,
            ALU_XOR => a ^ b,
            ALU_MOV => b,
            ALU_ARSH => ((a as i64) >> (b & 63)) as u64,
            _ => return None,
        })
    } else {
        let (a, b) = (a as u32, b as u32);
        Some(u64::from(match op {
            ALU_ADD => a.wrapping_add(b),
            ALU_SUB => a.wrapping_sub(b),
            ALU_MUL => a.wrapping_mul(b),
            ALU_DIV => a.checked_div(b)?,
            ALU_OR => a | b,
            ALU_AND => a & b,
            ALU_LSH => a << (b & 31),
            ALU_RSH => a >> (b & 31),
            ALU_NEG => a.wrapping_neg(),
            ALU_MOD => a.checked_rem(b)?,
            ALU_XOR => a ^ b,
            ALU_MOV => b,
            ALU_ARSH => ((a as i32) >> (b & 31)) as u32,
            _ => return None,
        }))
    }
}

/// Access size in bytes of a load or store opcode.
pub(super) const fn access_bytes(opcode: u8) -> i64 {
    match opcode & 0x18 {
        SIZE_W => 4,
        SIZE_H => 2,
        SIZE_B => 1,
        _ => 8,
    }
}

/// Whether a jump `op` is taken for `a` against `b`.
pub(super) fn taken(op: u8, a: u64, b: u64) -> Option<bool> {
    Some(match op {
        JMP_JA => true,
        JMP_JEQ => a == b,
        JMP_JGT => a > b,
        JMP_JGE => a >= b,
        JMP_JSET => a & b != 0,
        JMP_JNE => a != b,
        JMP_JLT => a < b,
        JMP_JLE => a <= b,
        _ => return None,
    })
}

struct Memory {
    context: [u8; CONTEXT_BYTES as usize],
    stack: [u8; STACK_BYTES as usize],
}

impl Memory {
    /// The bytes at program address `address`, `len` long, if all inside one area.
    fn bytes(&mut self, address: u64, len: i64, writable: bool) -> Option<&mut [u8]> {
        let len = len as u64;
        let (area, base): (&mut [u8], u64) = if (CONTEXT_BASE..STACK_BASE).contains(&address) {
            if writable {
                return None;
            }
            (&mut self.context, CONTEXT_BASE)
        } else {
            (&mut self.stack, STACK_BASE)
        };
        let start = usize::try_from(address.checked_sub(base)?).ok()?;
        area.get_mut(start..start.checked_add(len as usize)?)
    }
}

/// Runs `program` on the event `(line, seq)` with at most `budget` instructions; returns its
/// answer (`r0`).
pub fn run(
    program: &Verified,
    line: u64,
    seq: u64,
    budget: usize,
    environment: &mut impl Environment,
) -> Result<u64, Fault> {
    let code = program.instructions();
    let mut memory =
        Memory { context: [0; CONTEXT_BYTES as usize], stack: [0; STACK_BYTES as usize] };
    memory.context[..8].copy_from_slice(&line.to_le_bytes());
    memory.context[8..].copy_from_slice(&seq.to_le_bytes());
    let mut registers = [0u64; 11];
    registers[1] = CONTEXT_BASE;
    registers[10] = STACK_BASE + STACK_BYTES as u64;
    let mut pc = 0;
    for _ in 0..budget {
        let Some(&instruction) = code.get(pc) else { return Err(Fault::Instruction(pc)) };
        let Instruction { opcode, offset, immediate, .. } = instruction;
        let (dst, src) = (usize::from(instruction.dst()), usize::from(instruction.src()));
        let bad = Fault::Instruction(pc);
        let class = opcode & 0x07;
        let operand = |registers: &[u64; 11]| {
            if opcode & SOURCE_REGISTER != 0 {
                registers.get(src).copied()
            } else {
                Some(i64::from(immediate) as u64)
            }
        };
        pc += 1;
        match class {
            CLASS_ALU64 | CLASS_ALU => {
                let b = operand(&registers).ok_or(bad)?;
                let a = *registers.get(dst).ok_or(bad)?;
                let op = opcode & 0xf0;
                let value = alu(op, a, b, class == CLASS_ALU64).ok_or(
                    if matches!(op, ALU_DIV | ALU_MOD) { Fault::Division(pc - 1) } else { bad },
                )?;
                *registers.get_mut(dst).filter(|_| dst != 10).ok_or(bad)? = value;
            }
            CLASS_LDX => {
                let len = access_bytes(opcode);
                let base = *registers.get(src).ok_or(bad)?;
                let address = base.wrapping_add(i64::from(offset) as u64);
                let bytes = memory.bytes(address, len, false).ok_or(Fault::Memory(pc - 1))?;
                let mut word = [0u8; 8];
                word[..bytes.len()].copy_from_slice(bytes);
                *registers.get_mut(dst).filter(|_| dst != 10).ok_or(bad)? =
                    u64::from_le_bytes(word);
            }
            CLASS_ST | CLASS_STX => {
                let len = access_bytes(opcode);
                let value = if class == CLASS_STX {
                    *registers.get(src).ok_or(bad)?
                } else {
                    i64::from(immediate) as u64
                };
                let base = *registers.get(dst).ok_or(bad)?;
                let address = base.wrapping_add(i64::from(offset) as u64);
                let bytes = memory.bytes(address, len, true).ok_or(Fault::Memory(pc - 1))?;
                let length = bytes.len();
                bytes.copy_from_slice(&value.to_le_bytes()[..length]);
            }
            CLASS_JMP => match opcode & 0xf0 {
                JMP_EXIT => return Ok(registers[0]),
                JMP_CALL => {
                    registers[0] = call(immediate, &registers, environment).ok_or(bad)?;
                }
                op => {
                    let b = operand(&registers).ok_or(bad)?;
                    let a = *registers.get(dst).ok_or(bad)?;
                    if taken(op, a, b).ok_or(bad)? {
                        pc = pc.checked_add_signed(isize::from(offset)).ok_or(bad)?;
                    }
                }
            },
            _ => return Err(bad),
        }
    }
    Err(Fault::Budget)
}

fn call(helper: i32, registers: &[u64; 11], environment: &mut impl Environment) -> Option<u64> {
    let port = || u16::try_from(registers[1]).ok();
    Some(match helper {
        HELPER_PORT_IN => u64::from(environment.port_in(port()?)),
        HELPER_PORT_OUT => {
            environment.port_out(port()?, registers[2] as u8);
            0
        }
        HELPER_QUEUE => u64::from(!environment.queue(registers[1])),
        HELPER_WAKE => {
            environment.wake();
            0
        }
        HELPER_ACKNOWLEDGE => {
            environment.acknowledge();
            0
        }
        HELPER_SEQ => environment.seq(),
        HELPER_RING_SPACE => environment.ring_space(),
        _ => return None,
    })
}

/// The jump opcodes the interpreter knows, for the verifier.
pub(super) const fn is_known_jump(op: u8) -> bool {
    matches!(op, JMP_JA | JMP_JEQ | JMP_JGT | JMP_JGE | JMP_JSET | JMP_JNE | JMP_JLT | JMP_JLE)
}

/// Whether `size` bits of a load or store opcode are one of the four sizes.
pub(super) const fn is_memory_size(size: u8) -> bool {
    matches!(size, SIZE_W | SIZE_H | SIZE_B | SIZE_DW)
}
