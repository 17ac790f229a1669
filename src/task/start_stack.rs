//! The stack a Linux program finds at its first instruction (System V x86-64 psABI §3.4.1,
//! "Initial Stack and Register State", Figure 3.9): from `rsp` up, `argc`, the `argv` pointers
//! and a null, the `envp` pointers and a null, the auxiliary vector's (type, value) pairs
//! ending with `AT_NULL`; above them the strings and `AT_RANDOM`'s 16 bytes. `rsp` is 16-byte
//! aligned. Pure layout: the caller copies the bytes into the new process's stack.

#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// Auxiliary vector types (Linux `include/uapi/linux/auxvec.h`; psABI §3.4.3).
pub mod auxv {
    /// End of the vector.
    pub const AT_NULL: u64 = 0;
    /// Program headers' address, size of one, and count.
    pub const AT_PHDR: u64 = 3;
    /// See [`AT_PHDR`].
    pub const AT_PHENT: u64 = 4;
    /// See [`AT_PHDR`].
    pub const AT_PHNUM: u64 = 5;
    /// Page size.
    pub const AT_PAGESZ: u64 = 6;
    /// The interpreter's base (0: none, a static program).
    pub const AT_BASE: u64 = 7;
    /// The program's entry point.
    pub const AT_ENTRY: u64 = 9;
    /// Real and effective user and group ids.
    pub const AT_UID: u64 = 11;
    /// See [`AT_UID`].
    pub const AT_EUID: u64 = 12;
    /// See [`AT_UID`].
    pub const AT_GID: u64 = 13;
    /// See [`AT_UID`].
    pub const AT_EGID: u64 = 14;
    /// CPU capabilities (CPUID 1's EDX on x86).
    pub const AT_HWCAP: u64 = 16;
    /// Clock ticks per second (`times`).
    pub const AT_CLKTCK: u64 = 17;
    /// Whether the program runs with more privilege than its invoker (0 here).
    pub const AT_SECURE: u64 = 23;
    /// Address of 16 random bytes (libc seeds stack protectors and hashes from them).
    pub const AT_RANDOM: u64 = 25;
    /// Address of the program's path.
    pub const AT_EXECFN: u64 = 31;
}

/// One step of splitmix64 (Steele, Lea, Flood 2014): turns a counter reading into 64 bits
/// that look random. What `AT_RANDOM` and `getrandom` are made of until there is an entropy
/// source: varied, not secret.
pub fn stir(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Most bytes of arguments and environment (strings and pointers) a program may be given,
/// Herald's `ARG_MAX`: beyond it `E2BIG`.
pub const MAX_ARGUMENT_BYTES: usize = 64 * 1024;
/// Alignment of `rsp` at entry (psABI §3.4.1).
const STACK_ALIGN_BYTES: u64 = 16;

/// What the auxiliary vector says about the program and the machine.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct Auxiliary {
    /// `AT_PHDR`, `AT_PHENT`, `AT_PHNUM` (left out when the address is unknown).
    pub program_headers: Option<u64>,
    /// See [`Self::program_headers`].
    pub program_header_bytes: u64,
    /// See [`Self::program_headers`].
    pub program_header_count: u64,
    /// `AT_ENTRY`.
    pub entry: u64,
    /// `AT_PAGESZ`.
    pub page_bytes: u64,
    /// `AT_HWCAP`.
    pub hardware_capabilities: u64,
    /// `AT_CLKTCK`.
    pub clock_ticks_per_second: u64,
    /// The 16 bytes `AT_RANDOM` points at.
    pub random: [u8; 16],
}

/// The laid-out stack: `bytes` go at `stack_pointer..top`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct StartStack {
    /// `rsp` at entry: the address of `argc`.
    pub stack_pointer: u64,
    /// The contents from `stack_pointer` up to the top.
    pub bytes: Vec<u8>,
}

/// Why no stack could be laid out.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum StartStackError {
    /// Arguments and environment together exceed [`MAX_ARGUMENT_BYTES`].
    TooBig,
}

/// Lays out the stack that ends at user address `top` (16-byte aligned) for a program run with
/// `args` (the first is its name, `AT_EXECFN`) and `env` (`NAME=value` strings).
pub fn build(
    top: u64,
    args: &[&str],
    env: &[&str],
    aux: &Auxiliary,
) -> Result<StartStack, StartStackError> {
    let strings_bytes: usize = args.iter().chain(env).map(|s| s.len() + 1).sum();
    let pointers_bytes = 8 * (args.len() + env.len() + 2);
    if strings_bytes + pointers_bytes > MAX_ARGUMENT_BYTES {
        return Err(StartStackError::TooBig);
    }
    // The area above the vectors, from its lowest address up: the random bytes, then every
    // string with its terminating zero.
    let mut area = Vec::with_capacity(16 + strings_bytes);
    area.extend_from_slice(&aux.random);
    let mut offsets = Vec::with_capacity(args.len() + env.len());
    for string in args.iter().chain(env) {
        offsets.push(area.len());
        area.extend_from_slice(string.as_bytes());
        area.push(0);
    }
    let area_start = (top - area.len() as u64) & !(STACK_ALIGN_BYTES - 1);
    let address_of = |offset: usize| area_start + offset as u64;
    let mut vector = Vec::new();
    let mut pair = |kind: u64, value: u64| vector.extend_from_slice(&[kind, value]);
    if let Some(headers) = aux.program_headers {
        pair(auxv::AT_PHDR, headers);
        pair(auxv::AT_PHENT, aux.program_header_bytes);
        pair(auxv::AT_PHNUM, aux.program_header_count);
    }
    pair(auxv::AT_PAGESZ, aux.page_bytes);
    pair(auxv::AT_BASE, 0);
    pair(auxv::AT_ENTRY, aux.entry);
    for id in [auxv::AT_UID, auxv::AT_EUID, auxv::AT_GID, auxv::AT_EGID] {
        pair(id, 0);
    }
    pair(auxv::AT_HWCAP, aux.hardware_capabilities);
    pair(auxv::AT_CLKTCK, aux.clock_ticks_per_second);
    pair(auxv::AT_SECURE, 0);
    pair(auxv::AT_RANDOM, address_of(0));
    if !args.is_empty() {
        pair(auxv::AT_EXECFN, address_of(offsets[0]));
    }
    pair(auxv::AT_NULL, 0);
    let mut words = Vec::with_capacity(2 + offsets.len() + 2 + vector.len());
    words.push(args.len() as u64);
    words.extend(offsets[..args.len()].iter().map(|&offset| address_of(offset)));
    words.push(0);
    words.extend(offsets[args.len()..].iter().map(|&offset| address_of(offset)));
    words.push(0);
    words.extend(vector);
    let stack_pointer = (area_start - 8 * words.len() as u64) & !(STACK_ALIGN_BYTES - 1);
    let mut bytes = Vec::with_capacity((top - stack_pointer) as usize);
    for word in words {
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    // Padding between the vectors and the area, then the area, then padding to the top.
    bytes.resize((area_start - stack_pointer) as usize, 0);
    bytes.extend_from_slice(&area);
    bytes.resize((top - stack_pointer) as usize, 0);
    Ok(StartStack { stack_pointer, bytes })
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::{string::String, vec::Vec};

    use super::*;

    const TOP: u64 = 0x7fff_0000_0000;

    fn word(stack: &StartStack, address: u64) -> u64 {
        let at = (address - stack.stack_pointer) as usize;
        u64::from_le_bytes(stack.bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    fn string(stack: &StartStack, address: u64) -> String {
        let at = (address - stack.stack_pointer) as usize;
        let end = stack.bytes[at..].iter().position(|&byte| byte == 0).expect("terminated");
        String::from_utf8(stack.bytes[at..at + end].to_vec()).expect("UTF-8")
    }

    /// Reads the stack back as a libc's start code would.
    fn parse(stack: &StartStack) -> (Vec<String>, Vec<String>, Vec<(u64, u64)>) {
        let mut at = stack.stack_pointer;
        let argc = word(stack, at);
        at += 8;
        let args = (0..argc).map(|i| string(stack, word(stack, at + 8 * i))).collect();
        at += 8 * argc;
        assert_eq!(word(stack, at), 0, "argv ends with a null");
        at += 8;
        let mut env = Vec::new();
        while word(stack, at) != 0 {
            env.push(string(stack, word(stack, at)));
            at += 8;
        }
        at += 8;
        let mut vector = Vec::new();
        loop {
            let (kind, value) = (word(stack, at), word(stack, at + 8));
            at += 16;
            if kind == auxv::AT_NULL {
                break;
            }
            vector.push((kind, value));
        }
        (args, env, vector)
    }

    fn aux() -> Auxiliary {
        Auxiliary {
            program_headers: Some(0x40_0040),
            program_header_bytes: 56,
            program_header_count: 9,
            entry: 0x40_1000,
            page_bytes: 4096,
            hardware_capabilities: 0x78bf_bbff,
            clock_ticks_per_second: 100,
            random: *b"0123456789abcdef",
        }
    }

    #[test_case]
    fn the_stack_holds_argc_argv_envp_and_auxv_as_the_psabi_lays_them_out() {
        let stack = build(TOP, &["/bin/hello", "a b", ""], &["HOME=/", "TERM=vt100"], &aux())
            .expect("fits");
        assert_eq!(stack.stack_pointer % 16, 0, "rsp is 16-byte aligned at entry");
        assert_eq!(stack.stack_pointer + stack.bytes.len() as u64, TOP);
        let (args, env, vector) = parse(&stack);
        assert_eq!(args, ["/bin/hello", "a b", ""]);
        assert_eq!(env, ["HOME=/", "TERM=vt100"]);
        let get = |kind| vector.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v);
        assert_eq!(get(auxv::AT_PHDR), Some(0x40_0040));
        assert_eq!(get(auxv::AT_PHENT), Some(56));
        assert_eq!(get(auxv::AT_PHNUM), Some(9));
        assert_eq!(get(auxv::AT_PAGESZ), Some(4096));
        assert_eq!(get(auxv::AT_ENTRY), Some(0x40_1000));
        assert_eq!(get(auxv::AT_SECURE), Some(0));
        assert_eq!(get(auxv::AT_UID), Some(0));
        assert_eq!(get(auxv::AT_CLKTCK), Some(100));
        let random = get(auxv::AT_RANDOM).expect("AT_RANDOM");
        let at = (random - stack.stack_pointer) as usize;
        assert_eq!(&stack.bytes[at..at + 16], b"0123456789abcdef");
        assert_eq!(string(&stack, get(auxv::AT_EXECFN).expect("AT_EXECFN")), "/bin/hello");
    }

    #[test_case]
    fn rsp_stays_aligned_whatever_the_strings_lengths() {
        for extra in 0..24 {
            let name = "x".repeat(extra);
            let env: Vec<&str> = (0..extra % 3).map(|_| "A=1").collect();
            let stack = build(TOP, &[&name], &env, &aux()).expect("fits");
            assert_eq!(stack.stack_pointer % 16, 0, "with {extra} extra bytes");
            assert_eq!(parse(&stack).0, [name]);
        }
    }

    #[test_case]
    fn too_many_argument_bytes_are_refused() {
        let big = "y".repeat(MAX_ARGUMENT_BYTES);
        assert_eq!(build(TOP, &[&big], &[], &aux()), Err(StartStackError::TooBig));
    }
}
