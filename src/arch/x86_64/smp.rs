//! Starting the other processors (SDM Vol. 3A §9.4, "Multiple-Processor (MP) Initialization"):
//! INIT, then STARTUP twice, through the boot CPU's local APIC, to each processor the MADT
//! lists. Each wakes in real mode at a page below 1 MiB, where startup code copied there goes
//! straight to long mode (a temporary table: the kernel half plus the low 2 MiB mapped to
//! themselves) and jumps to [`processor_entry`] on its own kernel stack. There it loads the
//! kernel's table, its own GDT, TSS and IST stacks, the shared IDT, and its per-CPU block, says
//! it is online.
//!
//! Before any starts, the boot CPU enables its own local APIC and the I/O APIC takes the ISA
//! lines over from the 8259s (`controller.rs`), delivering them to the boot CPU. Then each
//! started CPU runs the scheduler's idle loop (the task layer's hook) with its local APIC timer
//! at 1 kHz, calibrated against the PIT on the boot CPU. Device interrupts, deferred bus work
//! and the shell stay on the boot CPU. An NMI on any CPU is counted and survived; a panic
//! stops every other CPU with one (`cpu_events.rs`).

use alloc::vec::Vec;
use core::{
    arch::global_asm,
    sync::atomic::{AtomicBool, AtomicU32, Ordering},
};

use super::{
    BootResources, IrqMutex, acpi, controller, cpu, cpu_events, fpu, gdt, idt, lapic, paging,
    percpu, pit, shootdown, syscall,
    vectors::{APIC_SPURIOUS_VECTOR, LOCAL_TIMER_VECTOR},
};
use crate::vocab::Frame;

/// Size of a page.
const PAGE_BYTES: u64 = 4096;
/// Wait after INIT before STARTUP (SDM Vol. 3A §9.4.4.1: 10 ms).
const AFTER_INIT_MS: u64 = 10;
/// Wait after each STARTUP (the SDM asks 200 µs; the timer counts milliseconds).
const AFTER_STARTUP_MS: u64 = 1;
/// How long a started processor may take to say it is online before it counts as failed.
const ONLINE_TIMEOUT_MS: u64 = 200;
use super::cpu_events::MAX_CPUS;
/// Window over which the local APIC timer is calibrated against the PIT.
const CALIBRATION_MS: u64 = 10;
/// Bytes of each started processor's kernel stack and of each of its IST stacks.
const PROCESSOR_STACK_BYTES: u64 = 64 * 1024;
const PROCESSOR_IST_STACK_BYTES: u64 = 32 * 1024;

// The startup code, assembled into read-only data and copied to the low page at run time.
// Every absolute address in it is patched in the copy: the GDT pointer's base and the far
// jump's target (the copy's own physical address plus an offset), the table root, the stack,
// the entry point and its argument.
global_asm!(
    r#"
    .section .rodata.herald_processor_start, "a"
    .global herald_start16
    .global herald_start_jump_target
    .global herald_start_long_mode
    .global herald_start_gdt
    .global herald_start_gdt_base
    .global herald_start_root
    .global herald_start_stack
    .global herald_start_argument
    .global herald_start_entry
    .global herald_start_end
    .code16
herald_start16:
    jmp 1f
    // The data sits at fixed offsets (the real-mode code addresses it by number; checked by
    // `prepare_start_code`).
    .org 8
herald_start_gdt:
    .quad 0
    .quad 0x00af9a000000ffff          // 64-bit code
    .quad 0x00cf92000000ffff          // data
    .org 32
herald_start_gdt_pointer:
    .word 23
herald_start_gdt_base:
    .long 0
    .org 40
herald_start_root:
    .quad 0
herald_start_stack:
    .quad 0
herald_start_argument:
    .quad 0
herald_start_entry:
    .quad 0
1:
    cli
    cld
    mov ax, cs
    mov ds, ax
    lgdt [32]
    mov eax, cr4
    or eax, 0x20                      // CR4.PAE
    mov cr4, eax
    mov eax, [40]
    mov cr3, eax
    mov ecx, 0xc0000080               // IA32_EFER
    rdmsr
    or eax, 0x900                     // LME | NXE
    wrmsr
    mov eax, cr0
    or eax, 0x80010001                // PG | WP | PE
    mov cr0, eax
    .byte 0x66, 0xea                  // jmp far ptr16:32, straight into the 64-bit segment
herald_start_jump_target:
    .long 0
    .word 8
    .code64
herald_start_long_mode:
    mov ax, 16
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov rsp, [rip + herald_start_stack]
    mov rdi, [rip + herald_start_argument]
    mov rax, [rip + herald_start_entry]
    jmp rax
herald_start_end:
    .text
    "#
);

/// Offsets the real-mode code uses by number (the `.org`s above).
const GDT_POINTER_OFFSET: usize = 32;
const ROOT_OFFSET: usize = 40;

unsafe extern "C" {
    static herald_start16: u8;
    static herald_start_jump_target: u8;
    static herald_start_long_mode: u8;
    static herald_start_gdt: u8;
    static herald_start_gdt_base: u8;
    static herald_start_root: u8;
    static herald_start_stack: u8;
    static herald_start_argument: u8;
    static herald_start_entry: u8;
    static herald_start_end: u8;
}

/// Where `symbol` lies in the startup code.
fn offset_of(symbol: *const u8) -> usize {
    symbol as usize - &raw const herald_start16 as usize
}

/// What a starting processor is handed (leaked: read after the boot CPU has moved on).
struct ProcessorStart {
    kernel_root: Frame,
    tables: gdt::ProcessorTables,
    /// Its per-CPU block (a `*mut PerCpu`), made by the boot CPU like the tables.
    per_cpu: usize,
    online: AtomicBool,
}

/// One processor, as `cpus` shows it.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct CpuInfo {
    /// Its number: 0 for the boot CPU, then in the order they started.
    pub index: usize,
    /// Its local APIC id.
    pub apic_id: u32,
    /// It answered and is running.
    pub online: bool,
    /// Timer ticks it has taken (the PIT's on the boot CPU, its local APIC's elsewhere).
    pub ticks: u64,
    /// Interrupts it has taken (exceptions, NMIs and system calls not included).
    pub interrupts: u64,
    /// NMIs it has taken (each counted and survived).
    pub nmis: u64,
    /// Spurious interrupts its local APIC reported.
    pub spurious: u64,
    /// Reschedule IPIs it took (another CPU had work for it).
    pub reschedules: u64,
    /// TLB flushes it made for other CPUs' shootdowns.
    pub flushes: u64,
    /// Shootdowns it asked of other CPUs.
    pub shootdowns: u64,
    /// Share of its time online spent halted with nothing to run, in percent.
    pub idle_percent: u64,
}

impl CpuInfo {
    fn listed(index: usize, apic_id: u32) -> Self {
        Self {
            index,
            apic_id,
            online: false,
            ticks: 0,
            interrupts: 0,
            nmis: 0,
            spurious: 0,
            reschedules: 0,
            flushes: 0,
            shootdowns: 0,
            idle_percent: 0,
        }
    }
}

/// Local APIC timer counts per millisecond (divide-by-16), measured once on the boot CPU.
static TIMER_COUNTS_PER_MS: AtomicU32 = AtomicU32::new(0);

/// The listed processors.
static CPUS: IrqMutex<Vec<CpuInfo>> = IrqMutex::new(Vec::new());

/// Every processor the firmware lists, started or not, with its counters as they are now.
pub fn cpus() -> Vec<CpuInfo> {
    let mut cpus = CPUS.lock().clone();
    if cpus.is_empty() {
        cpus.push(CpuInfo { online: true, ..CpuInfo::listed(0, 0) });
    }
    for info in &mut cpus {
        let Some(counts) = cpu_events::counts(info.index) else { continue };
        info.ticks = if info.index == 0 { pit::ticks() } else { counts.ticks };
        info.interrupts = counts.interrupts;
        info.nmis = counts.nmis;
        info.spurious = counts.spurious;
        info.reschedules = counts.reschedules;
        (info.shootdowns, info.flushes) = shootdown::counts(info.index);
        info.idle_percent = counts.idle_percent;
    }
    cpus
}

/// Sends an NMI to processor `index` (tests check it is counted and survived).
pub fn send_nmi_to(index: usize) -> Result<(), &'static str> {
    let apic_id =
        CPUS.lock().iter().find(|cpu| cpu.index == index && cpu.online).map(|cpu| cpu.apic_id);
    lapic::send_nmi(apic_id.ok_or("no such CPU online")?).map_err(|_| "the NMI was not accepted")
}

fn wait_ms(duration_ms: u64) {
    // The timer runs (interrupts are on by now); one more tick covers a partial first one.
    let until_ms = pit::milliseconds() + duration_ms + 1;
    while pit::milliseconds() < until_ms {
        core::hint::spin_loop();
    }
}

/// Reports the processors the firmware lists and starts the others. `new_stack(len_bytes)`
/// gives the top of a fresh, guarded kernel stack that is never freed (mm's). Runs once, on the
/// boot CPU, with interrupts on.
pub fn start_processors(boot: &BootResources, new_stack: &mut dyn FnMut(u64) -> Option<u64>) {
    let Some(found) = boot.rsdp.and_then(acpi::madt) else {
        log::info!("cpus: no ACPI processor table; running on the boot CPU");
        super::set_processors_found(1);
        return;
    };
    super::set_processors_found(found.usable);
    if found.disabled > 0 {
        log::info!("cpus: {} more listed but disabled by the firmware", found.disabled);
    }
    CPUS.lock().push(CpuInfo { online: true, ..CpuInfo::listed(0, found.boot_apic_id) });
    let apic = match found.local_apic_address.map(|address| paging::phys_to_virt(address) as u64) {
        None => Err("no local APIC"),
        Some(registers) if !paging::is_mapped(registers) => {
            Err("the local APIC's registers are outside the loader's memory window")
        }
        Some(registers) => {
            lapic::init(registers);
            Ok(())
        }
    };
    if apic.is_ok() {
        let boot_apic_id = lapic::id();
        lapic::enable(APIC_SPURIOUS_VECTOR);
        cpu_events::record_processor(boot_apic_id, 0);
        cpu_events::mark_online(0, boot_apic_id);
        match controller::take_over(&found, boot_apic_id) {
            Ok(()) => log::info!("interrupts: the I/O APIC carries the ISA lines, to cpu 0"),
            Err(why) => log::warn!("interrupts: the 8259 PICs keep the ISA lines: {why}"),
        }
    }
    if found.application_apic_ids.is_empty() {
        log::info!("cpus: 1 (APIC id {})", found.boot_apic_id);
        return;
    }
    let refuse = |why: &str| {
        log::warn!("cpus: {} listed; {why}: running on the boot CPU only", found.usable);
        let mut cpus = CPUS.lock();
        for (position, &apic_id) in found.application_apic_ids.iter().enumerate() {
            cpus.push(CpuInfo::listed(position + 1, apic_id));
        }
    };
    let Some(region) = boot.processor_start_frames else {
        return refuse("no usable memory below 1 MiB for the startup code");
    };
    if let Err(why) = apic {
        return refuse(why);
    }
    prepare_start_code(region);
    // From now on lock-free code (the bus's read sections) tells CPUs apart.
    crate::sync::local::install_cpu_index(percpu::cpu_index);
    TIMER_COUNTS_PER_MS.store(lapic::calibrate_timer(CALIBRATION_MS, wait_ms), Ordering::Relaxed);
    let mut online = 1;
    for (position, &apic_id) in found.application_apic_ids.iter().enumerate() {
        let index = position + 1;
        if index >= MAX_CPUS {
            log::warn!("cpu {index} (APIC id {apic_id}) left waiting: Herald starts {MAX_CPUS}");
            CPUS.lock().push(CpuInfo::listed(index, apic_id));
            continue;
        }
        cpu_events::record_processor(apic_id, index);
        let started = start_one(region, index, apic_id, new_stack);
        match started {
            Ok(()) => {
                online += 1;
                cpu_events::mark_online(index, apic_id);
                log::info!("cpu {index} (APIC id {apic_id}) online");
            }
            Err(why) => log::error!("cpu {index} (APIC id {apic_id}) did not start: {why}"),
        }
        CPUS.lock().push(CpuInfo { online: started.is_ok(), ..CpuInfo::listed(index, apic_id) });
    }
    log::info!(
        "cpus: {online} of {} online; processes run on all, device interrupts and deferred \
         work on cpu 0",
        found.usable
    );
}

/// Copies the startup code to `region` and builds the temporary table after it.
fn prepare_start_code(region: u64) {
    let code = &raw const herald_start16;
    let len = offset_of(&raw const herald_start_end);
    let target = paging::phys_to_virt(region);
    let patch_u32 = |symbol: *const u8, value: u64| {
        let value = u32::try_from(value).expect("the startup page is below 1 MiB");
        // SAFETY: the field lies inside the copy, in the kept low region.
        unsafe { target.add(offset_of(symbol)).cast::<u32>().write_unaligned(value) };
    };
    assert_eq!(offset_of(&raw const herald_start_gdt_base), GDT_POINTER_OFFSET + 2);
    assert_eq!(offset_of(&raw const herald_start_root), ROOT_OFFSET);
    assert!(len as u64 <= PAGE_BYTES, "the startup code fits its page");
    // SAFETY: the region was kept from the allocator at boot for this code alone (four pages),
    // is mapped by the window, and the code fits its first page (checked above).
    unsafe {
        core::ptr::copy_nonoverlapping(code, target, len);
        paging::build_start_root(
            region + PAGE_BYTES,
            region + 2 * PAGE_BYTES,
            region + 3 * PAGE_BYTES,
        );
    }
    patch_u32(
        &raw const herald_start_jump_target,
        region + offset_of(&raw const herald_start_long_mode) as u64,
    );
    patch_u32(
        &raw const herald_start_gdt_base,
        region + offset_of(&raw const herald_start_gdt) as u64,
    );
    write_field(region, &raw const herald_start_root, region + PAGE_BYTES);
    write_field(region, &raw const herald_start_entry, processor_entry as *const () as u64);
}

fn write_field(region: u64, symbol: *const u8, value: u64) {
    // SAFETY: the field lies inside the copy of the startup code in the kept region, 8-byte
    // aligned there as in the original (the region is page aligned).
    unsafe {
        paging::phys_to_virt(region).add(offset_of(symbol)).cast::<u64>().write_volatile(value);
    }
}

/// Starts processor `index` (local APIC id `apic_id`) and waits until it is online.
fn start_one(
    region: u64,
    index: usize,
    apic_id: u32,
    new_stack: &mut dyn FnMut(u64) -> Option<u64>,
) -> Result<(), &'static str> {
    let mut ist_tops = [0; gdt::IST_SLOT_COUNT];
    for top in &mut ist_tops {
        *top = new_stack(PROCESSOR_IST_STACK_BYTES).ok_or("no memory for its stacks")?;
    }
    let stack_top = new_stack(PROCESSOR_STACK_BYTES).ok_or("no memory for its stack")?;
    // Everything the processor needs from the heap is made here: until its GS names its block,
    // waiting for the heap's lock (which answers shootdowns, asking GS for this CPU's number)
    // would read a block that is not there.
    let tables = gdt::build_processor(ist_tops);
    let per_cpu = percpu::new_cpu(index, tables.tss()) as usize;
    let start: &'static ProcessorStart =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(ProcessorStart {
            kernel_root: paging::active_root(),
            tables,
            per_cpu,
            online: AtomicBool::new(false),
        }));
    // Entered by a jump, as if called: the return address slot below a 16-byte aligned top.
    write_field(region, &raw const herald_start_stack, stack_top - 8);
    write_field(region, &raw const herald_start_argument, start as *const ProcessorStart as u64);
    let page = u8::try_from(region / PAGE_BYTES).expect("the startup page is below 1 MiB");
    lapic::send_init(apic_id).map_err(|_| "INIT was not accepted")?;
    wait_ms(AFTER_INIT_MS);
    for _ in 0..2 {
        lapic::send_startup(apic_id, page).map_err(|_| "STARTUP was not accepted")?;
        wait_ms(AFTER_STARTUP_MS);
        if start.online.load(Ordering::Acquire) {
            return Ok(());
        }
    }
    let until_ms = pit::milliseconds() + ONLINE_TIMEOUT_MS;
    while pit::milliseconds() < until_ms {
        if start.online.load(Ordering::Acquire) {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err("it never said it was online")
}

/// Where a started processor enters the kernel, on its own stack, with interrupts off and the
/// temporary table loaded.
extern "C" fn processor_entry(start: &'static ProcessorStart) -> ! {
    // GS first: nothing before it may take a lock (a lock's wait asks GS for this CPU).
    syscall::init(start.per_cpu as *mut percpu::PerCpu);
    start.tables.load();
    idt::load();
    fpu::enable();
    // SAFETY: the kernel's root has the same kernel half as the temporary table, so the code
    // and the stack stay mapped; the low identity map is not needed any more. Loaded once GS
    // names this CPU, which `activate` records as the root's user (the shootdown's list).
    unsafe { paging::activate(start.kernel_root) };
    let _ = cpu::enable_supervisor_protection();
    lapic::enable(APIC_SPURIOUS_VECTOR);
    lapic::start_periodic_timer(LOCAL_TIMER_VECTOR, TIMER_COUNTS_PER_MS.load(Ordering::Relaxed));
    start.online.store(true, Ordering::Release);
    loop {
        super::traps::processor_idle_step();
    }
}
