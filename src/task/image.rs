//! Loading a program into an address space: its segments, its user stack, and what it is
//! handed at entry (a Herald program its argument string, a Linux program the psABI's stack of
//! argv, envp and the auxiliary vector). Used by a spawn (a new space) and by `execve` (a new
//! space for the running process).

use super::{elf, start_stack};
use crate::{
    arch::{context, cpu},
    events::{MemoryRequest, SpaceId},
    mm::{self, FRAME_SIZE_BYTES, space, user_copy},
};

/// Top of every process's user stack (a page below the end of user space, for the guard
/// logic's simplicity) and its size; a guard page lies below it.
const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
pub(super) const USER_STACK_SIZE_BYTES: u64 = 256 * 1024;
/// What `AT_CLKTCK` tells a Linux program (`USER_HZ`, the unit `times` reports in).
const LINUX_CLOCK_TICKS_PER_SECOND: u64 = 100;

/// Why a program could not be loaded.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum LoadError {
    /// Memory ran out.
    OutOfMemory,
    /// Arguments and environment do not fit the start stack's limit.
    ArgumentsTooLong,
}

/// What a program is handed at entry.
pub(super) enum Arguments<'a> {
    /// A Herald program: one argument string (`rdi`, `rsi`: its address and length).
    Herald(&'a str),
    /// A Linux program: its argument vector (the first its name) and environment.
    Linux { argv: &'a [&'a str], envp: &'a [&'a str] },
}

/// `AT_RANDOM`'s 16 bytes: time-stamp counter readings stirred with splitmix64. Unpredictable
/// enough to seed a libc's hash tables and stack canaries against accident, not against an
/// attacker who can read the counter — there is no entropy source yet.
fn start_random_bytes() -> [u8; 16] {
    let first = start_stack::stir(cpu::read_timestamp());
    let second = start_stack::stir(first ^ cpu::read_timestamp());
    let mut bytes = [0; 16];
    bytes[..8].copy_from_slice(&first.to_le_bytes());
    bytes[8..].copy_from_slice(&second.to_le_bytes());
    bytes
}

/// Maps and fills `plan`'s segments of `image` and the user stack in `space` (which has no
/// mappings yet), and returns where the program starts.
pub(super) fn load(
    space: SpaceId,
    plan: &elf::ImagePlan,
    image: &[u8],
    arguments: Arguments<'_>,
) -> Result<context::UserEntry, LoadError> {
    let out_of_memory = |_| LoadError::OutOfMemory;
    for segment in &plan.segments {
        // Through the bus like any other memory request, on the kernel's behalf.
        mm::request(
            0,
            MemoryRequest::Map {
                space,
                address: segment.pages.start,
                len_bytes: segment.pages.end - segment.pages.start,
                protection: segment.protection,
            },
        )
        .map_err(out_of_memory)?;
        user_copy::load(space, segment.load_address, &image[segment.file_bytes.clone()])
            .map_err(out_of_memory)?;
    }
    space::reserve_stack(space, USER_STACK_TOP, USER_STACK_SIZE_BYTES).map_err(out_of_memory)?;
    Ok(match arguments {
        Arguments::Herald(args) => {
            let args_address = (USER_STACK_TOP - args.len() as u64) / 16 * 16;
            user_copy::load(space, args_address, args.as_bytes()).map_err(out_of_memory)?;
            context::UserEntry {
                rip: plan.entry,
                // `_start` is entered like a called function: rsp + 8 is 16-byte aligned.
                rsp: args_address - 8,
                args: [args_address, args.len() as u64],
            }
        }
        Arguments::Linux { argv, envp } => {
            let aux = start_stack::Auxiliary {
                program_headers: plan.program_headers,
                program_header_bytes: u64::from(plan.program_header_bytes),
                program_header_count: u64::from(plan.program_header_count),
                entry: plan.entry,
                page_bytes: FRAME_SIZE_BYTES,
                hardware_capabilities: cpu::hardware_capabilities(),
                clock_ticks_per_second: LINUX_CLOCK_TICKS_PER_SECOND,
                random: start_random_bytes(),
            };
            let stack = start_stack::build(USER_STACK_TOP, argv, envp, &aux)
                .map_err(|_| LoadError::ArgumentsTooLong)?;
            user_copy::load(space, stack.stack_pointer, &stack.bytes).map_err(out_of_memory)?;
            // rsp at argc, 16-byte aligned; rdx 0 (no exit hook from a dynamic linker).
            context::UserEntry { rip: plan.entry, rsp: stack.stack_pointer, args: [0, 0] }
        }
    })
}
