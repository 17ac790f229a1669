//! The verifier: one pass over the program in order. Jumps only go forward, so every
//! instruction's predecessors come before it and a single pass sees every path: each
//! instruction's state (what every register holds, which stack bytes are written) is the join
//! of the states flowing into it, and the program is accepted if every instruction is safe in
//! its state. Linear in the program's length, whatever its branches.

use alloc::vec::Vec;

use super::{
    Instruction, Refusal, Rule, Verified,
    interpreter::{access_bytes, alu, is_known_jump, is_memory_size},
};
use crate::{
    abi::bpf::{
        ALU_ADD, ALU_ARSH, ALU_DIV, ALU_MOD, ALU_MOV, ALU_NEG, ALU_SUB, CLASS_ALU, CLASS_ALU64,
        CLASS_JMP, CLASS_LDX, CLASS_ST, CLASS_STX, CONTEXT_BYTES, HELPER_ACKNOWLEDGE,
        HELPER_PORT_IN, HELPER_PORT_OUT, HELPER_QUEUE, HELPER_RING_SPACE, HELPER_SEQ, HELPER_WAKE,
        JMP_CALL, JMP_EXIT, JMP_JA, MAX_INSTRUCTIONS, MODE_MEM, SOURCE_REGISTER, STACK_BYTES,
    },
    vocab::PortRange,
};

/// What a register holds, as far as every path to an instruction agrees.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Value {
    /// Not written on some path.
    Uninit,
    /// A number, and its value if every path gives the same constant.
    Scalar(Option<u64>),
    /// The context's address plus this offset.
    Context(i64),
    /// The frame pointer (`r10`, the stack's top) plus this offset.
    Stack(i64),
    /// A pointer on one path, something else on another.
    Conflict,
}

impl Value {
    fn join(self, other: Self) -> Self {
        match (self, other) {
            (a, b) if a == b => a,
            (Self::Uninit, _) | (_, Self::Uninit) => Self::Uninit,
            (Self::Scalar(_), Self::Scalar(_)) => Self::Scalar(None),
            _ => Self::Conflict,
        }
    }
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
struct State {
    registers: [Value; 11],
    /// Bit `n`: stack byte `r10 - STACK_BYTES + n` was written.
    stack_written: u64,
}

impl State {
    fn join(self, other: Self) -> Self {
        let mut registers = self.registers;
        for (register, theirs) in registers.iter_mut().zip(other.registers) {
            *register = register.join(theirs);
        }
        Self { registers, stack_written: self.stack_written & other.stack_written }
    }
}

/// Checks `code` against every rule, for a driver granted `ports`.
pub fn verify(code: &[Instruction], ports: &[PortRange]) -> Result<Verified, Refusal> {
    if code.is_empty() {
        return Err(Refusal { index: 0, rule: Rule::Empty });
    }
    if code.len() > MAX_INSTRUCTIONS {
        return Err(Refusal { index: MAX_INSTRUCTIONS, rule: Rule::TooManyInstructions });
    }
    let mut entry = State { registers: [Value::Uninit; 11], stack_written: 0 };
    entry.registers[1] = Value::Context(0);
    entry.registers[10] = Value::Stack(0);
    let mut states: Vec<Option<State>> = alloc::vec![None; code.len()];
    states[0] = Some(entry);
    for index in 0..code.len() {
        // Unreachable instructions are never run; nothing to check.
        let Some(state) = states[index] else { continue };
        let refuse = |rule| Refusal { index, rule };
        let mut next = |target: usize, state: State| -> Result<(), Refusal> {
            let slot = states.get_mut(target).ok_or(refuse(Rule::FallsOffTheEnd))?;
            *slot = Some(slot.map_or(state, |seen| seen.join(state)));
            Ok(())
        };
        match step(code[index], index, code.len(), state, ports).map_err(refuse)? {
            Flow::Next(state) => next(index + 1, state)?,
            Flow::Jump(target, state) => next(target, state)?,
            Flow::Branch(target, state) => {
                next(index + 1, state)?;
                next(target, state)?;
            }
            Flow::Exit => {}
        }
    }
    Ok(Verified { instructions: code.to_vec() })
}

/// Where an instruction goes on.
enum Flow {
    Next(State),
    Jump(usize, State),
    Branch(usize, State),
    Exit,
}

fn read(state: &State, register: u8) -> Result<Value, Rule> {
    match state.registers.get(usize::from(register)).ok_or(Rule::NoSuchRegister)? {
        Value::Uninit => Err(Rule::UninitializedRegister),
        Value::Conflict => Err(Rule::ConflictingPaths),
        &value => Ok(value),
    }
}

fn read_scalar(state: &State, register: u8) -> Result<Option<u64>, Rule> {
    match read(state, register)? {
        Value::Scalar(value) => Ok(value),
        _ => Err(Rule::PointerLeak),
    }
}

fn write(state: &mut State, register: u8, value: Value) -> Result<(), Rule> {
    match register {
        10 => Err(Rule::FramePointerWritten),
        0..=9 => {
            state.registers[usize::from(register)] = value;
            Ok(())
        }
        _ => Err(Rule::NoSuchRegister),
    }
}

/// The stack bytes `offset..offset + len` (from `r10`) as a bit mask, if inside the frame.
fn stack_bits(offset: i64, len: i64) -> Option<u64> {
    (offset >= -STACK_BYTES && offset + len <= 0).then(|| {
        let low = (offset + STACK_BYTES) as u32;
        (u64::MAX >> (64 - len as u32)) << low
    })
}

fn step(
    instruction: Instruction,
    index: usize,
    len: usize,
    mut state: State,
    ports: &[PortRange],
) -> Result<Flow, Rule> {
    let Instruction { opcode, offset, immediate, .. } = instruction;
    let (dst, src) = (instruction.dst(), instruction.src());
    let from_register = opcode & SOURCE_REGISTER != 0;
    let class = opcode & 0x07;
    match class {
        CLASS_ALU64 | CLASS_ALU => {
            let wide = class == CLASS_ALU64;
            let op = opcode & 0xf0;
            if op > ALU_ARSH || (op == ALU_NEG && from_register) {
                return Err(Rule::UnknownOpcode);
            }
            let operand = if op == ALU_NEG {
                Value::Scalar(Some(0))
            } else if from_register {
                read(&state, src)?
            } else {
                Value::Scalar(Some(i64::from(immediate) as u64))
            };
            let result = if op == ALU_MOV {
                match operand {
                    Value::Scalar(value) => {
                        Value::Scalar(value.map(|v| if wide { v } else { v & 0xffff_ffff }))
                    }
                    pointer if wide => pointer,
                    _ => return Err(Rule::PointerLeak),
                }
            } else {
                let target = read(&state, dst)?;
                match (target, operand) {
                    (Value::Scalar(a), Value::Scalar(b)) => {
                        if matches!(op, ALU_DIV | ALU_MOD) && !matches!(b, Some(1..)) {
                            return Err(Rule::PossibleDivisionByZero);
                        }
                        Value::Scalar(a.zip(b).and_then(|(a, b)| alu(op, a, b, wide)))
                    }
                    (Value::Context(at), Value::Scalar(Some(by))) if wide => {
                        Value::Context(move_pointer(op, at, by)?)
                    }
                    (Value::Stack(at), Value::Scalar(Some(by))) if wide => {
                        Value::Stack(move_pointer(op, at, by)?)
                    }
                    _ => return Err(Rule::PointerArithmetic),
                }
            };
            write(&mut state, dst, result)?;
            Ok(Flow::Next(state))
        }
        CLASS_LDX => {
            if opcode & 0xe0 != MODE_MEM || !is_memory_size(opcode & 0x18) {
                return Err(Rule::UnknownOpcode);
            }
            let bytes = access_bytes(opcode);
            match read(&state, src)? {
                Value::Context(at) => {
                    let at = at + i64::from(offset);
                    if at < 0 || at + bytes > CONTEXT_BYTES {
                        return Err(Rule::OutOfBounds);
                    }
                    if at % bytes != 0 {
                        return Err(Rule::Misaligned);
                    }
                }
                Value::Stack(at) => {
                    let at = at + i64::from(offset);
                    let bits = stack_bits(at, bytes).ok_or(Rule::OutOfBounds)?;
                    if at % bytes != 0 {
                        return Err(Rule::Misaligned);
                    }
                    if state.stack_written & bits != bits {
                        return Err(Rule::UninitializedStack);
                    }
                }
                _ => return Err(Rule::NotAPointer),
            }
            write(&mut state, dst, Value::Scalar(None))?;
            Ok(Flow::Next(state))
        }
        CLASS_ST | CLASS_STX => {
            if opcode & 0xe0 != MODE_MEM || !is_memory_size(opcode & 0x18) {
                return Err(Rule::UnknownOpcode);
            }
            if class == CLASS_STX {
                read_scalar(&state, src)?;
            }
            let bytes = access_bytes(opcode);
            match read(&state, dst)? {
                Value::Context(_) => return Err(Rule::ReadOnlyContext),
                Value::Stack(at) => {
                    let at = at + i64::from(offset);
                    let bits = stack_bits(at, bytes).ok_or(Rule::StackOutOfBounds)?;
                    if at % bytes != 0 {
                        return Err(Rule::Misaligned);
                    }
                    state.stack_written |= bits;
                }
                _ => return Err(Rule::NotAPointer),
            }
            Ok(Flow::Next(state))
        }
        CLASS_JMP => {
            let op = opcode & 0xf0;
            match op {
                JMP_EXIT if !from_register => {
                    read_scalar(&state, 0)?;
                    Ok(Flow::Exit)
                }
                JMP_CALL if !from_register => {
                    call(immediate, &state, ports)?;
                    state.registers[0] = Value::Scalar(None);
                    for clobbered in &mut state.registers[1..=5] {
                        *clobbered = Value::Uninit;
                    }
                    Ok(Flow::Next(state))
                }
                _ if is_known_jump(op) && !(op == JMP_JA && from_register) => {
                    let target = jump_target(index, offset, len)?;
                    if op == JMP_JA {
                        return Ok(Flow::Jump(target, state));
                    }
                    read_scalar(&state, dst)?;
                    if from_register {
                        read_scalar(&state, src)?;
                    }
                    Ok(Flow::Branch(target, state))
                }
                _ => Err(Rule::UnknownOpcode),
            }
        }
        _ => Err(Rule::UnknownOpcode),
    }
}

/// A pointer moved by a constant: only adding and subtracting.
fn move_pointer(op: u8, at: i64, by: u64) -> Result<i64, Rule> {
    let by = by as i64;
    match op {
        ALU_ADD => at.checked_add(by).ok_or(Rule::PointerArithmetic),
        ALU_SUB => at.checked_sub(by).ok_or(Rule::PointerArithmetic),
        _ => Err(Rule::PointerArithmetic),
    }
}

fn jump_target(index: usize, offset: i16, len: usize) -> Result<usize, Rule> {
    if offset < 0 {
        return Err(Rule::BackEdge);
    }
    let target = index + 1 + offset as usize;
    if target >= len { Err(Rule::JumpOutOfProgram) } else { Ok(target) }
}

/// Checks a helper call's arguments.
fn call(helper: i32, state: &State, ports: &[PortRange]) -> Result<(), Rule> {
    let number = |register| match read(state, register)? {
        Value::Scalar(value) => Ok(value),
        _ => Err(Rule::WrongArgumentType),
    };
    let granted_port = || -> Result<(), Rule> {
        let port = number(1)?.ok_or(Rule::WrongArgumentType)?;
        let port = u16::try_from(port).map_err(|_| Rule::PortNotGranted)?;
        let asked = PortRange { base: port, count: 1 };
        if ports.iter().any(|range| range.covers(asked)) {
            Ok(())
        } else {
            Err(Rule::PortNotGranted)
        }
    };
    match helper {
        HELPER_PORT_IN => granted_port(),
        HELPER_PORT_OUT => {
            granted_port()?;
            number(2).map(drop)
        }
        HELPER_QUEUE => number(1).map(drop),
        HELPER_WAKE | HELPER_ACKNOWLEDGE | HELPER_SEQ | HELPER_RING_SPACE => Ok(()),
        _ => Err(Rule::UnknownHelper),
    }
}
