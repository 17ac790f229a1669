//! mm on the bus: the owner of page faults and memory requests. It does the work or refuses a
//! malformed request; whether the requester *may* ask is decided by the security band before
//! mm is called at all.

#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use super::{physical, space, stack};
use crate::{
    arch::paging,
    events::{
        Access, BUS, Errno, Event, EventKind, MemoryRequest, Outcome, Priority, Reply, SpaceId,
        Verdict,
    },
};

/// Vector of #DF (SDM Vol. 3A §6.15).
const DOUBLE_FAULT_VECTOR: u8 = 8;

static DEMAND_ZERO_FAULTS: AtomicU64 = AtomicU64::new(0);
static GUARD_HITS: AtomicU64 = AtomicU64::new(0);
static INVALID_FAULTS: AtomicU64 = AtomicU64::new(0);
static OUT_OF_MEMORY_FAULTS: AtomicU64 = AtomicU64::new(0);

/// What mm's fault handler has seen since boot.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FaultCounters {
    /// Faults resolved by mapping a zero-filled page.
    pub demand_zero: u64,
    /// Guard pages hit.
    pub guard_hits: u64,
    /// Faults mm could not resolve (left to the process owner or the kernel's panic).
    pub invalid: u64,
    /// Frames released that were free or unmanaged (double frees, caught).
    pub bad_releases: u64,
    /// Faults on reserved pages that found no frame left for processes (the toucher is ended).
    pub out_of_memory: u64,
}

/// Returns the fault counters.
pub fn fault_counters() -> FaultCounters {
    FaultCounters {
        demand_zero: DEMAND_ZERO_FAULTS.load(Ordering::Relaxed),
        guard_hits: GUARD_HITS.load(Ordering::Relaxed),
        invalid: INVALID_FAULTS.load(Ordering::Relaxed),
        bad_releases: physical::bad_release_count(),
        out_of_memory: OUT_OF_MEMORY_FAULTS.load(Ordering::Relaxed),
    }
}

pub(super) fn subscribe() {
    BUS.subscribe(EventKind::PageFault, "mm", Priority::OWNER, on_page_fault)
        .expect("mm subscribes at boot")
        .keep_forever();
    BUS.subscribe(EventKind::Exception, "mm-stack-guard", Priority::OWNER, on_double_fault)
        .expect("mm subscribes at boot")
        .keep_forever();
    BUS.subscribe(EventKind::Memory, "mm", Priority::OWNER, on_memory_request)
        .expect("mm subscribes at boot")
        .keep_forever();
}

fn access_name(access: Access) -> &'static str {
    match access {
        Access::Read => "read",
        Access::Write => "write",
        Access::Execute => "instruction fetch",
    }
}

fn on_page_fault(event: &Event, reply: &mut Reply) -> Verdict {
    let Event::PageFault { address, access, present, from_user, rip } = *event else {
        return Verdict::Continue;
    };
    if paging::is_kernel_address(address) {
        if !from_user && let Some(stack) = stack::guard_owner(address) {
            GUARD_HITS.fetch_add(1, Ordering::Relaxed);
            panic!(
                "kernel stack overflow: {} of guard page {address:#x} below the {stack} stack \
                 at rip {rip:#x}",
                access_name(access)
            );
        }
        INVALID_FAULTS.fetch_add(1, Ordering::Relaxed);
        return Verdict::Continue;
    }
    let resolution = space::resolve_fault(address, access, present, from_user);
    if resolution == space::FaultResolution::Resolved {
        DEMAND_ZERO_FAULTS.fetch_add(1, Ordering::Relaxed);
        return Verdict::Handled;
    }
    if resolution == space::FaultResolution::Guard {
        GUARD_HITS.fetch_add(1, Ordering::Relaxed);
    } else if resolution == space::FaultResolution::OutOfMemory {
        OUT_OF_MEMORY_FAULTS.fetch_add(1, Ordering::Relaxed);
        reply.out_of_memory = true;
    } else {
        INVALID_FAULTS.fetch_add(1, Ordering::Relaxed);
    }
    if from_user || resolution == space::FaultResolution::Guard {
        log::warn!(
            "{} of {address:#x} at rip {rip:#x} in {}: {}",
            access_name(access),
            space::current(),
            match resolution {
                space::FaultResolution::Guard => "stack guard page hit (stack overflow)",
                space::FaultResolution::Forbidden => "access not allowed by the mapping",
                space::FaultResolution::OutOfMemory => "out of memory",
                _ => "nothing mapped there",
            }
        );
    }
    Verdict::Continue
}

/// A kernel stack overflow cannot be reported by #PF (pushing its frame faults again); the CPU
/// raises #DF on its own stack. CR2 still names the guard page.
fn on_double_fault(event: &Event, _reply: &mut Reply) -> Verdict {
    if let Event::Exception { vector: DOUBLE_FAULT_VECTOR, rip, .. } = *event {
        let address = paging::last_fault_address();
        if let Some(stack) = stack::guard_owner(address) {
            GUARD_HITS.fetch_add(1, Ordering::Relaxed);
            panic!(
                "kernel stack overflow: guard page {address:#x} below the {stack} stack hit \
                 (double fault at rip {rip:#x})"
            );
        }
    }
    Verdict::Continue
}

fn serve(request: MemoryRequest) -> Result<u64, Errno> {
    let kernel_involved = request.target() == SpaceId::KERNEL
        || matches!(request, MemoryRequest::Share { from: SpaceId::KERNEL, .. });
    if kernel_involved {
        return Err(Errno::EINVAL);
    }
    match request {
        MemoryRequest::Map { space, address, len_bytes, protection } => {
            space::map(space, address, len_bytes, protection)
        }
        MemoryRequest::Unmap { space, address, len_bytes } => {
            space::unmap(space, address, len_bytes)
        }
        MemoryRequest::Protect { space, address, len_bytes, protection } => {
            space::protect(space, address, len_bytes, protection)
        }
        MemoryRequest::Share { from, from_address, len_bytes, into, into_address, protection } => {
            space::share(from, from_address, len_bytes, into, into_address, protection)
        }
    }
}

fn on_memory_request(event: &Event, reply: &mut Reply) -> Verdict {
    let Event::Memory { request, .. } = *event else { return Verdict::Continue };
    match serve(request) {
        Ok(value) => {
            reply.value = value;
            Verdict::Handled
        }
        Err(errno) => Verdict::Deny(errno),
    }
}

/// Asks for a change to an address space on behalf of `pid` (0: the kernel), through the bus,
/// so the security band sees it first. Returns the request's value (an address for map and
/// share) or why it was refused.
pub fn request(pid: u32, request: MemoryRequest) -> Result<u64, Errno> {
    let mut reply = Reply::new();
    match BUS.dispatch(&Event::Memory { pid, request }, &mut reply) {
        Outcome::Handled => Ok(reply.value),
        Outcome::Denied(errno) => Err(errno),
        Outcome::Unhandled => Err(Errno::ENOSYS),
    }
}
