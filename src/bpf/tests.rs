//! The verifier refuses each kind of malicious program for its own reason, and what it
//! accepts runs as written.
#![expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]

use alloc::vec::Vec;

use super::{Environment, Fault, Instruction, Refusal, Rule, run, verify};
use crate::{
    abi::bpf::{assemble::*, *},
    vocab::PortRange,
};

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R6: u8 = 6;
const R10: u8 = 10;

/// COM2's ports, as a driver that claimed them is granted.
const GRANT: [PortRange; 1] = [PortRange { base: 0x2f8, count: 8 }];

fn refused(code: &[Instruction]) -> Refusal {
    match verify(code, &GRANT) {
        Ok(_) => panic!("accepted: {code:?}"),
        Err(refusal) => refusal,
    }
}

#[test_case]
fn twelve_malicious_programs_are_refused_each_for_its_own_reason() {
    let cases: [(&str, Vec<Instruction>, Refusal); 14] = [
        (
            "a back edge",
            alloc::vec![mov(R0, 0), jump(-2), exit()],
            Refusal { index: 1, rule: Rule::BackEdge },
        ),
        (
            "an out-of-bounds load",
            alloc::vec![load(SIZE_DW, R0, R1, 16), exit()],
            Refusal { index: 0, rule: Rule::OutOfBounds },
        ),
        (
            "a misaligned access",
            alloc::vec![load(SIZE_W, R0, R1, 2), exit()],
            Refusal { index: 0, rule: Rule::Misaligned },
        ),
        (
            "a read of an uninitialised register",
            alloc::vec![mov_reg(R0, R3), exit()],
            Refusal { index: 0, rule: Rule::UninitializedRegister },
        ),
        (
            "an unknown helper",
            alloc::vec![call(99), exit()],
            Refusal { index: 0, rule: Rule::UnknownHelper },
        ),
        (
            "a port not granted (COM1's)",
            alloc::vec![mov(R1, 0x3f8), call(HELPER_PORT_IN), exit()],
            Refusal { index: 1, rule: Rule::PortNotGranted },
        ),
        (
            "too many instructions",
            core::iter::repeat_n(mov(R0, 0), MAX_INSTRUCTIONS).chain([exit()]).collect(),
            Refusal { index: MAX_INSTRUCTIONS, rule: Rule::TooManyInstructions },
        ),
        (
            "a write to the read-only event",
            alloc::vec![store_imm(SIZE_DW, R1, 0, 7), mov(R0, 0), exit()],
            Refusal { index: 0, rule: Rule::ReadOnlyContext },
        ),
        (
            "a division by a possibly-zero register",
            alloc::vec![load(SIZE_DW, R2, R1, 8), mov(R0, 100), alu_reg(ALU_DIV, R0, R2), exit()],
            Refusal { index: 2, rule: Rule::PossibleDivisionByZero },
        ),
        (
            "a jump out of the program",
            alloc::vec![mov(R0, 0), jump_if(JMP_JEQ, R0, 0, 5), exit()],
            Refusal { index: 1, rule: Rule::JumpOutOfProgram },
        ),
        (
            "a call with wrong argument types (the event's address queued)",
            alloc::vec![call(HELPER_QUEUE), mov(R0, 0), exit()],
            Refusal { index: 0, rule: Rule::WrongArgumentType },
        ),
        (
            "a store beyond the stack frame",
            alloc::vec![
                mov(R2, 1),
                store(SIZE_DW, R10, R2, -(STACK_BYTES as i16) - 8),
                mov(R0, 0),
                exit()
            ],
            Refusal { index: 1, rule: Rule::StackOutOfBounds },
        ),
        (
            "a port that is not a constant",
            alloc::vec![load(SIZE_DW, R1, R1, 0), call(HELPER_PORT_IN), exit()],
            Refusal { index: 1, rule: Rule::WrongArgumentType },
        ),
        (
            "a pointer returned as the answer",
            alloc::vec![mov_reg(R0, R10), exit()],
            Refusal { index: 1, rule: Rule::PointerLeak },
        ),
    ];
    for (what, code, expected) in cases {
        assert_eq!(refused(&code), expected, "{what}");
    }
}

#[test_case]
fn more_ways_to_break_the_rules_are_refused_too() {
    let cases: [(Vec<Instruction>, Rule); 10] = [
        (alloc::vec![], Rule::Empty),
        (alloc::vec![mov(R0, 0)], Rule::FallsOffTheEnd),
        (alloc::vec![mov(R0, 0), jump(-1), exit()], Rule::BackEdge),
        (alloc::vec![mov(R10, 0), exit()], Rule::FramePointerWritten),
        (alloc::vec![alu_imm(ALU_MUL, R1, 2), mov(R0, 0), exit()], Rule::PointerArithmetic),
        (alloc::vec![load(SIZE_DW, R0, R10, -8), exit()], Rule::UninitializedStack),
        (alloc::vec![mov(R2, 5), load(SIZE_B, R0, R2, 0), exit()], Rule::NotAPointer),
        (alloc::vec![mov(R0, 1), alu_imm(ALU_MOD, R0, 0), exit()], Rule::PossibleDivisionByZero),
        (alloc::vec![Instruction::new(0x18, 0, 0, 0, 0), exit()], Rule::UnknownOpcode),
        // r2 a number on one path, the stack's address on the other.
        (
            alloc::vec![
                mov(R0, 0),
                jump_if(JMP_JEQ, R0, 0, 2),
                mov(R2, 1),
                jump(1),
                mov_reg(R2, R10),
                mov_reg(R0, R2),
                exit(),
            ],
            Rule::ConflictingPaths,
        ),
    ];
    for (code, rule) in cases {
        assert_eq!(refused(&code).rule, rule, "{code:?}");
    }
}

/// A fake UART with two bytes waiting.
#[derive(Default)]
struct FakeDevice {
    waiting: Vec<u8>,
    queued: Vec<u64>,
    woken: usize,
    acknowledged: usize,
    ports_read: Vec<u16>,
}

impl Environment for FakeDevice {
    fn port_in(&mut self, port: u16) -> u8 {
        self.ports_read.push(port);
        match port {
            // Line status: data ready while bytes wait.
            0x2fd => u8::from(!self.waiting.is_empty()),
            0x2f8 => self.waiting.pop().unwrap_or(0),
            _ => 0xff,
        }
    }
    fn port_out(&mut self, _port: u16, _value: u8) {}
    fn queue(&mut self, value: u64) -> bool {
        self.queued.push(value);
        true
    }
    fn wake(&mut self) {
        self.woken += 1;
    }
    fn acknowledge(&mut self) {
        self.acknowledged += 1;
    }
    fn seq(&self) -> u64 {
        41
    }
    fn ring_space(&self) -> u64 {
        64 - self.queued.len() as u64
    }
}

/// The UART top half: if a byte waits, read it, queue it, wake the driver on a newline,
/// acknowledge; answer "mine" iff there was a byte.
fn uart_top_half() -> Vec<Instruction> {
    alloc::vec![
        mov(R1, 0x2fd),
        call(HELPER_PORT_IN),
        jump_if(JMP_JSET, R0, 1, 2),
        mov(R0, NOT_MINE as i32),
        exit(),
        mov(R1, 0x2f8),
        call(HELPER_PORT_IN),
        store(SIZE_DW, R10, R0, -8),
        mov_reg(R1, R0),
        call(HELPER_QUEUE),
        load(SIZE_DW, R2, R10, -8),
        jump_if(JMP_JNE, R2, i32::from(b'\n'), 1),
        call(HELPER_WAKE),
        call(HELPER_ACKNOWLEDGE),
        mov(R0, MINE as i32),
        exit(),
    ]
}

#[test_case]
fn an_accepted_program_runs_as_written() {
    let program = verify(&uart_top_half(), &GRANT).expect("the UART top half is safe");
    let mut device = FakeDevice { waiting: alloc::vec![b'\n', b'x'], ..FakeDevice::default() };
    assert_eq!(run(&program, 3, 1, MAX_INSTRUCTIONS, &mut device), Ok(MINE));
    assert_eq!(run(&program, 3, 2, MAX_INSTRUCTIONS, &mut device), Ok(MINE));
    assert_eq!(run(&program, 3, 3, MAX_INSTRUCTIONS, &mut device), Ok(NOT_MINE));
    assert_eq!(device.queued, [u64::from(b'x'), u64::from(b'\n')]);
    assert_eq!((device.woken, device.acknowledged), (1, 2), "woken once, for the newline");
    assert!(
        device.ports_read.iter().all(|port| GRANT[0].covers(PortRange { base: *port, count: 1 }))
    );
    // The context and the sequence helper agree with what the loader passed (r6 survives the
    // call; r1-r5 do not).
    let echo =
        [load(SIZE_DW, R6, R1, CONTEXT_SEQ), call(HELPER_SEQ), alu_reg(ALU_ADD, R0, R6), exit()];
    let program = verify(&echo, &[]).expect("reads of the context are safe");
    assert_eq!(run(&program, 3, 1, MAX_INSTRUCTIONS, &mut device), Ok(42));
}

#[test_case]
fn a_helper_clobbers_r1_to_r5() {
    let code = [load(SIZE_DW, R2, R1, CONTEXT_SEQ), call(HELPER_SEQ), mov_reg(R0, R2), exit()];
    assert_eq!(refused(&code), Refusal { index: 2, rule: Rule::UninitializedRegister });
}

#[test_case]
fn the_run_time_budget_stops_a_program_that_outlives_it() {
    let program = verify(&uart_top_half(), &GRANT).expect("safe");
    let mut device = FakeDevice { waiting: alloc::vec![b'x'], ..FakeDevice::default() };
    assert_eq!(run(&program, 3, 1, 4, &mut device), Err(Fault::Budget));
}
