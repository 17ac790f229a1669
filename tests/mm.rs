//! Memory management observed from outside: frame counts, heap growth and reuse, address-space
//! lifecycles that leak nothing, demand paging, sharing, protection and W^X.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(herald::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]
#![expect(missing_docs, reason = "`#[test_case]` functions are named for what they check")]

extern crate alloc;

use alloc::{boxed::Box, vec, vec::Vec};
use core::{
    arch::asm,
    sync::atomic::{AtomicU64, Ordering},
};

use herald::{
    arch::{IrqMutex, paging},
    events::{
        Access, BUS, Errno, Event, EventKind, MemoryRequest, Priority, Protection, SpaceId, Verdict,
    },
    mm::{self, FRAME_SIZE_BYTES, FrameError, space},
};

herald::test_kernel!();

const PAGE: u64 = FRAME_SIZE_BYTES;
/// A user-half address programs are not linked at.
const USER_ADDRESS: u64 = 0x0000_0040_0000_0000;

fn map(space: SpaceId, address: u64, pages: u64, protection: Protection) -> Result<u64, Errno> {
    mm::request(0, MemoryRequest::Map { space, address, len_bytes: pages * PAGE, protection })
}

/// Runs `f` with `space` active (and, under SMAP, kernel access to its pages allowed), then
/// returns to the kernel space.
fn inside<R>(space: SpaceId, f: impl FnOnce() -> R) -> R {
    space::switch_to(space).expect("switch");
    let result = herald::arch::cpu::with_user_access(f);
    space::switch_to(SpaceId::KERNEL).expect("switch back");
    result
}

#[test_case]
fn frames_are_counted_and_a_double_free_is_caught() {
    let before = mm::frame_stats();
    assert!(before.total > 1000 && before.free <= before.total);
    let frames: Vec<_> = (0..100).map(|_| mm::allocate_frame().expect("a frame")).collect();
    assert_eq!(mm::frame_stats().free, before.free - 100);
    for &frame in &frames {
        assert_eq!(mm::release_frame(frame), Ok(true));
    }
    assert_eq!(mm::frame_stats(), before);
    assert_eq!(mm::release_frame(frames[0]), Err(FrameError::AlreadyFree(frames[0])));
    assert_eq!(mm::frame_stats(), before, "a refused double free changes nothing");
}

#[test_case]
fn allocated_frames_are_zeroed() {
    let frame = mm::allocate_frame().expect("a frame");
    let bytes = paging::phys_to_virt(frame.start());
    // SAFETY: the frame is ours until released, reached through the physical-memory window.
    unsafe {
        assert!(core::slice::from_raw_parts(bytes, PAGE as usize).iter().all(|&b| b == 0));
        bytes.write_bytes(0xa5, PAGE as usize);
    }
    mm::release_frame(frame).expect("release");
    let again = mm::allocate_frame().expect("a frame");
    // SAFETY: as above.
    let first = unsafe { *paging::phys_to_virt(again.start()) };
    assert_eq!(first, 0, "a reused frame comes back zeroed");
    mm::release_frame(again).expect("release");
}

#[test_case]
fn heap_grows_past_its_arena_and_reuses_freed_memory() {
    // Long-lived small blocks, churned small blocks, and large blocks beyond the 2 MiB arena.
    let mut long_lived: Vec<Box<[u8]>> = Vec::new();
    for i in 0..2000 {
        long_lived.push(vec![i as u8; 16 + i % 200].into_boxed_slice());
        let churn = vec![0u8; 32 + i % 500];
        assert!(churn.iter().all(|&b| b == 0));
    }
    let large: Vec<Vec<u64>> = (0..3).map(|i| vec![i; 1024 * 1024]).collect(); // 3 x 8 MiB
    for (i, block) in large.iter().enumerate() {
        assert!(block.iter().all(|&v| v == i as u64));
    }
    let grown = mm::heap::stats().grown_bytes;
    assert!(grown >= 24 * 1024 * 1024, "heap grew only {grown} bytes");
    drop(large);
    let free_after_first_round = mm::frame_stats().free;
    let again: Vec<Vec<u64>> = (0..3).map(|i| vec![i; 1024 * 1024]).collect();
    assert_eq!(mm::heap::stats().grown_bytes, grown, "freed memory is reused, not regrown");
    assert_eq!(mm::frame_stats().free, free_after_first_round);
    drop(again);
    for (i, block) in long_lived.iter().enumerate() {
        assert!(block.iter().all(|&b| b == i as u8), "long-lived block {i} corrupted");
    }
}

fn create_touch_destroy() {
    let id = space::create().expect("space");
    let address = map(id, USER_ADDRESS, 3, Protection::READ_WRITE).expect("map");
    inside(id, || {
        for page in 0..3 {
            // SAFETY: the page lies in a read-write region of the active space; the write is
            // backed on demand.
            unsafe { ((address + page * PAGE) as *mut u64).write_volatile(page) };
        }
    });
    space::destroy(id).expect("destroy");
}

#[test_case]
fn a_thousand_address_spaces_leak_no_frame() {
    // Warm up: the registry's heap nodes are allocated once and reused.
    for _ in 0..10 {
        create_touch_destroy();
    }
    let before = mm::frame_stats();
    let faults_before = mm::fault_counters().demand_zero;
    for _ in 0..1000 {
        create_touch_destroy();
    }
    assert_eq!(mm::frame_stats(), before, "frames leaked");
    assert_eq!(mm::fault_counters().demand_zero - faults_before, 3000);
    assert_eq!(space::count(), 0);
}

#[test_case]
fn demand_zero_pages_are_backed_on_first_touch_only() {
    let free_before_space = mm::frame_stats().free;
    let id = space::create().expect("space");
    let address = map(id, 0, 16, Protection::READ_WRITE).expect("map anywhere");
    assert!(paging::USER_SPACE.contains(&address));
    assert!(space::translate(id, address).is_none(), "nothing is backed before the touch");
    let free_before = mm::frame_stats().free;
    let faults_before = mm::fault_counters().demand_zero;
    let sum = inside(id, || {
        let words = address as *mut u64;
        // SAFETY: 16 mapped read-write pages; reads and writes within them.
        unsafe {
            let mut sum = 0;
            for page in 0..16 {
                sum += words.add(page * 512).read_volatile();
            }
            words.add(5 * 512).write_volatile(0xfeed);
            sum + words.add(5 * 512).read_volatile()
        }
    });
    assert_eq!(sum, 0xfeed, "fresh pages read as zero and keep what is written");
    assert_eq!(mm::fault_counters().demand_zero - faults_before, 16);
    // One frame per page, plus the three tables that reach the first user page.
    assert_eq!(free_before - mm::frame_stats().free, 16 + 3);
    let mapping = space::translate(id, address).expect("backed now");
    assert_eq!((mapping.protection, mapping.user), (Protection::READ_WRITE, true));
    mm::request(0, MemoryRequest::Unmap { space: id, address, len_bytes: 16 * PAGE })
        .expect("unmap");
    assert!(space::translate(id, address).is_none());
    assert_eq!(free_before - mm::frame_stats().free, 3, "page frames are back; tables stay");
    space::destroy(id).expect("destroy");
    assert_eq!(mm::frame_stats().free, free_before_space, "tables and root are back too");
}

#[test_case]
fn malformed_requests_are_refused_with_an_errno() {
    let id = space::create().expect("space");
    let rw = Protection::READ_WRITE;
    let cases = [
        (
            MemoryRequest::Map {
                space: id,
                address: USER_ADDRESS + 1,
                len_bytes: PAGE,
                protection: rw,
            },
            Errno::EINVAL,
        ),
        (
            MemoryRequest::Map { space: id, address: USER_ADDRESS, len_bytes: 0, protection: rw },
            Errno::EINVAL,
        ),
        (
            MemoryRequest::Map {
                space: id,
                address: 0xffff_8000_0000_0000,
                len_bytes: PAGE,
                protection: rw,
            },
            Errno::EINVAL,
        ),
        (
            MemoryRequest::Map {
                space: id,
                address: paging::USER_SPACE.end - PAGE,
                len_bytes: 2 * PAGE,
                protection: rw,
            },
            Errno::EINVAL,
        ),
        (
            MemoryRequest::Map {
                space: id,
                address: PAGE,
                len_bytes: u64::MAX - PAGE + 1,
                protection: rw,
            },
            Errno::EINVAL,
        ),
        (
            MemoryRequest::Map {
                space: id,
                address: USER_ADDRESS,
                len_bytes: PAGE,
                protection: Protection { read: true, write: true, execute: true },
            },
            Errno::EINVAL,
        ),
        (
            MemoryRequest::Map {
                space: SpaceId(9999),
                address: USER_ADDRESS,
                len_bytes: PAGE,
                protection: rw,
            },
            Errno::ESRCH,
        ),
        (
            MemoryRequest::Map {
                space: SpaceId::KERNEL,
                address: USER_ADDRESS,
                len_bytes: PAGE,
                protection: rw,
            },
            Errno::EINVAL,
        ),
        (
            MemoryRequest::Protect {
                space: id,
                address: USER_ADDRESS,
                len_bytes: PAGE,
                protection: rw,
            },
            Errno::ENOMEM,
        ),
        (
            MemoryRequest::Share {
                from: id,
                from_address: USER_ADDRESS,
                len_bytes: PAGE,
                into: id,
                into_address: 0,
                protection: rw,
            },
            Errno::EFAULT,
        ),
    ];
    for (request, errno) in cases {
        assert_eq!(mm::request(0, request), Err(errno), "{request:?}");
    }
    map(id, USER_ADDRESS, 2, rw).expect("map");
    assert_eq!(map(id, USER_ADDRESS + PAGE, 1, rw), Err(Errno::EEXIST), "overlap");
    space::destroy(id).expect("destroy");
    assert_eq!(space::destroy(id), Err(Errno::ESRCH));
}

/// Faults that mm refuses are caught here and resumed at `RESUME_AT`, so a test can observe a
/// refused access without the kernel panicking.
static RESUME_AT: AtomicU64 = AtomicU64::new(0);
static CAUGHT: IrqMutex<Vec<Event>> = IrqMutex::new(Vec::new());

fn catch_refused_faults() -> herald::events::Subscription {
    CAUGHT.lock().clear();
    BUS.subscribe(EventKind::PageFault, "test-catcher", Priority::owner(0), |event, reply| {
        CAUGHT.lock().push(*event);
        reply.resume_at = Some(RESUME_AT.load(Ordering::Relaxed));
        Verdict::Handled
    })
    .expect("subscribe")
}

/// Writes `value` to `address`; returns the rip of the store (resumes after it if it faults).
fn store(address: u64, value: u64) -> u64 {
    let rip: u64;
    // SAFETY: a caught fault resumes at label 2; otherwise a plain store to memory the caller
    // expects to be mapped or to fault.
    unsafe {
        asm!(
            "lea {resume}, [rip + 2f]",
            "mov [{slot}], {resume}",
            "lea {rip}, [rip + 3f]",
            "3: mov qword ptr [{address}], {value}",
            "2:",
            resume = out(reg) _,
            rip = out(reg) rip,
            slot = in(reg) RESUME_AT.as_ptr(),
            address = in(reg) address,
            value = in(reg) value,
        );
    }
    rip
}

#[test_case]
fn protect_makes_resident_pages_read_only() {
    let id = space::create().expect("space");
    let address = map(id, USER_ADDRESS, 2, Protection::READ_WRITE).expect("map");
    let _catcher = catch_refused_faults();
    inside(id, || store(address, 1));
    mm::request(
        0,
        MemoryRequest::Protect {
            space: id,
            address,
            len_bytes: 2 * PAGE,
            protection: Protection::READ,
        },
    )
    .expect("protect");
    let rip = inside(id, || store(address, 2));
    // SAFETY: the page is mapped readable in the active space.
    let value = inside(id, || unsafe { (address as *const u64).read_volatile() });
    assert_eq!(value, 1, "the refused store changed nothing");
    assert_eq!(
        *CAUGHT.lock(),
        [Event::PageFault { address, access: Access::Write, present: true, from_user: false, rip }]
    );
    // The untouched second page is read-only too, from its first touch.
    inside(id, || store(address + PAGE, 3));
    assert_eq!(CAUGHT.lock().len(), 2);
    space::destroy(id).expect("destroy");
}

#[test_case]
fn shared_memory_is_seen_by_both_spaces_and_freed_by_the_last() {
    let free_before = mm::frame_stats().free;
    let a = space::create().expect("space a");
    let b = space::create().expect("space b");
    let in_a = map(a, USER_ADDRESS, 2, Protection::READ_WRITE).expect("map");
    inside(a, || store(in_a, 0x5151));
    let in_b = mm::request(
        0,
        MemoryRequest::Share {
            from: a,
            from_address: in_a,
            len_bytes: 2 * PAGE,
            into: b,
            into_address: 0,
            protection: Protection::READ_WRITE,
        },
    )
    .expect("share");
    // SAFETY: the shared page is mapped readable in the active space.
    assert_eq!(inside(b, || unsafe { (in_b as *const u64).read_volatile() }), 0x5151);
    inside(b, || store(in_b + PAGE, 0x6262));
    // SAFETY: as above, in space a.
    assert_eq!(inside(a, || unsafe { ((in_a + PAGE) as *const u64).read_volatile() }), 0x6262);
    let frame = space::translate(a, in_a).expect("backed").frame;
    assert_eq!(space::translate(b, in_b).map(|m| m.frame), Some(frame));
    // Asking for more rights than the source has is refused.
    mm::request(
        0,
        MemoryRequest::Protect {
            space: a,
            address: in_a,
            len_bytes: PAGE,
            protection: Protection::READ,
        },
    )
    .expect("protect");
    let escalate = MemoryRequest::Share {
        from: a,
        from_address: in_a,
        len_bytes: PAGE,
        into: b,
        into_address: 0,
        protection: Protection::READ_WRITE,
    };
    assert_eq!(mm::request(0, escalate), Err(Errno::EACCES));
    space::destroy(a).expect("destroy a");
    // SAFETY: b still maps the frames; they must survive a's destruction.
    assert_eq!(inside(b, || unsafe { (in_b as *const u64).read_volatile() }), 0x5151);
    space::destroy(b).expect("destroy b");
    assert_eq!(mm::frame_stats().free, free_before);
}

#[test_case]
fn kernel_half_has_no_writable_executable_page_and_no_user_half() {
    let audit = paging::audit_active();
    assert_eq!(
        audit.writable_executable_bytes, 0,
        "W^X broken at {:?}",
        audit.first_writable_executable
    );
    assert_eq!(audit.user_half_bytes, 0, "the loader's lower-half mappings are gone");
    assert!(audit.kernel_executable_bytes > 0, "the kernel's code is executable");
}

#[test_case]
fn executing_heap_data_faults_with_no_execute() {
    let code = Box::new([0xc3u8; 16]); // `ret`, never to be run
    let target = code.as_ptr() as u64;
    let _catcher = catch_refused_faults();
    // SAFETY: the jump faults on fetch (the heap is NX) and the catcher resumes at label 2; no
    // instruction at `target` runs.
    unsafe {
        asm!(
            "lea {resume}, [rip + 2f]",
            "mov [{slot}], {resume}",
            "jmp {target}",
            "2:",
            resume = out(reg) _,
            slot = in(reg) RESUME_AT.as_ptr(),
            target = in(reg) target,
        );
    }
    assert_eq!(
        *CAUGHT.lock(),
        [Event::PageFault {
            address: target,
            access: Access::Execute,
            present: true,
            from_user: false,
            rip: target
        }]
    );
}

#[test_case]
fn kernel_stacks_return_their_frames() {
    let before = mm::frame_stats();
    {
        let stacks: Vec<_> =
            (0..8).map(|_| mm::KernelStack::new(32 * 1024).expect("stack")).collect();
        for stack in &stacks {
            // SAFETY: the stack's top word is mapped and owned by `stack`.
            unsafe { ((stack.top() - 8) as *mut u64).write_volatile(7) };
        }
        assert!(mm::frame_stats().free <= before.free - 8 * 8);
    }
    // Slot tables stay once made; the stacks' own frames are kept mapped for the next stacks
    // of their size (another CPU may still cache their translations), and counted.
    let after = mm::frame_stats();
    let kept = mm::stack::kept_frames();
    assert!(kept >= 8 * 8, "dropped stacks keep their frames: {kept}");
    let missing = before.free - after.free - 8 * 8;
    assert!(missing <= 2, "{missing} frames neither free nor kept");
    // The next stack of that size reuses a kept one: no frame taken.
    let again = mm::KernelStack::new(32 * 1024).expect("stack");
    assert_eq!(mm::frame_stats().free, after.free);
    assert_eq!(mm::stack::kept_frames(), kept - 8);
    drop(again);
    assert_eq!(mm::frame_stats(), after);
    assert_eq!(mm::stack::kept_frames(), kept);
}

#[test_case]
fn with_smap_on_the_kernel_cannot_touch_user_pages_by_accident() {
    if !herald::arch::cpu::smap_enabled() {
        herald::println!(
            "(SMAP not available on this CPU: run with HERALD_QEMU_ARGS=\"-cpu max\")"
        );
        return;
    }
    let id = space::create().expect("space");
    let address = map(id, USER_ADDRESS, 1, Protection::READ_WRITE).expect("map");
    inside(id, || store(address, 1)); // allowed: `inside` opens user access
    let _catcher = catch_refused_faults();
    space::switch_to(id).expect("switch");
    let rip = store(address, 2); // no `with_user_access`: SMAP refuses it
    space::switch_to(SpaceId::KERNEL).expect("switch back");
    assert_eq!(
        *CAUGHT.lock(),
        [Event::PageFault { address, access: Access::Write, present: true, from_user: false, rip }]
    );
    space::destroy(id).expect("destroy");
}
