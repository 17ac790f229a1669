//! The CMOS real-time clock, read once at boot: what wall-clock time is (`CLOCK_REALTIME`),
//! kept afterwards as that reading plus the timer's milliseconds since.
//!
//! Registers per the MC146818 data sheet as PCs keep it (OSDev wiki, "CMOS"): an index written
//! to port 0x70 selects a byte read at port 0x71.

use core::sync::atomic::{AtomicU64, Ordering};

use super::{pit, port};

/// Selects a CMOS register (bit 7 would also disable NMIs: kept clear, the watchdog uses them).
const INDEX_PORT: u16 = 0x70;
/// Reads the selected register.
const DATA_PORT: u16 = 0x71;
const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const DAY_OF_MONTH: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
/// The century, where the firmware keeps it (ACPI FADT `CENTURY` names 0x32 on PCs and QEMU).
const CENTURY: u8 = 0x32;
/// Status A: bit 7 is set while the clock updates its registers (reads may tear).
const STATUS_A: u8 = 0x0a;
const UPDATE_IN_PROGRESS: u8 = 1 << 7;
/// Status B: bit 1 24-hour mode, bit 2 binary (else BCD) values.
const STATUS_B: u8 = 0x0b;
const HOURS_24: u8 = 1 << 1;
const BINARY: u8 = 1 << 2;
/// In 12-hour mode, the hour's top bit means PM.
const PM: u8 = 1 << 7;

/// Unix time in milliseconds at the kernel clock's zero (boot); 0 until read.
static BOOT_UNIX_MS: AtomicU64 = AtomicU64::new(0);

/// Reads the clock; called once on the boot CPU before any other reader exists.
pub(super) fn init() {
    match read_unix_seconds() {
        Some(seconds) => {
            let boot_ms = (seconds * 1000).saturating_sub(pit::milliseconds());
            BOOT_UNIX_MS.store(boot_ms, Ordering::Relaxed);
            log::info!("rtc: wall clock {seconds} s since 1970");
        }
        None => log::warn!("rtc: the clock's reading makes no sense; wall time starts at 1970"),
    }
}

/// Milliseconds since 1970-01-01 UTC (the RTC's reading at boot, to the second, plus time
/// since; the RTC is assumed to keep UTC, as QEMU's does by default).
pub fn unix_time_milliseconds() -> u64 {
    BOOT_UNIX_MS.load(Ordering::Relaxed) + pit::milliseconds()
}

fn register(index: u8) -> u8 {
    // SAFETY: the CMOS index and data ports are the RTC's, only this file touches them, and it
    // runs once on one CPU at boot; selecting a register and reading it changes no state.
    unsafe {
        port::write_u8(INDEX_PORT, index);
        port::read_u8(DATA_PORT)
    }
}

/// Date and time fields in the order read, raw (as the clock encodes them).
type Fields = [u8; 7];

fn read_fields() -> Fields {
    // The update flag goes up about 244 µs before an update and stays for under 2 ms.
    while register(STATUS_A) & UPDATE_IN_PROGRESS != 0 {
        core::hint::spin_loop();
    }
    [SECONDS, MINUTES, HOURS, DAY_OF_MONTH, MONTH, YEAR, CENTURY].map(register)
}

fn read_unix_seconds() -> Option<u64> {
    // Two equal readings in a row were not torn by an update between them.
    let mut fields = read_fields();
    loop {
        let again = read_fields();
        if again == fields {
            break;
        }
        fields = again;
    }
    let format = register(STATUS_B);
    let decode = |value: u8| {
        if format & BINARY != 0 { value } else { (value & 0x0f) + (value >> 4) * 10 }
    };
    let [seconds, minutes, raw_hours, day, month, year, century] = fields;
    let mut hours = decode(raw_hours & !PM);
    if format & HOURS_24 == 0 {
        hours %= 12;
        if raw_hours & PM != 0 {
            hours += 12;
        }
    }
    let century = match decode(century) {
        19..=99 => u64::from(decode(century)),
        // No century register: a two-digit year is this century's.
        _ => 20,
    };
    let year = century * 100 + u64::from(decode(year));
    let (month, day) = (u64::from(decode(month)), u64::from(decode(day)));
    let (seconds, minutes, hours) =
        (u64::from(decode(seconds)), u64::from(decode(minutes)), u64::from(hours));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hours > 23
        || minutes > 59
        || seconds > 60
        || year < 1970
    {
        return None;
    }
    Some(days_since_1970(year, month, day) * 86_400 + hours * 3600 + minutes * 60 + seconds)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`, for years from 1970 on).
const fn days_since_1970(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use super::days_since_1970;

    #[test_case]
    fn civil_dates_count_days_from_the_epoch() {
        assert_eq!(days_since_1970(1970, 1, 1), 0);
        assert_eq!(days_since_1970(2000, 3, 1), 11_017);
        // 2024 is a leap year: 29 February exists and 1 March follows it.
        assert_eq!(days_since_1970(2024, 3, 1) - days_since_1970(2024, 2, 28), 2);
        assert_eq!(days_since_1970(2026, 12, 1), 20_788);
    }
}
