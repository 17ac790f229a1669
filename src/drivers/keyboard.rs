//! PS/2 keyboard: on IRQ 1 the bottom half reads scancodes and decodes them with the
//! `pc-keyboard` crate (scancode set 1, as the 8042 translates for us; US layout) into
//! characters for the console input.

use alloc::{format, string::String};
use core::sync::atomic::{AtomicU64, Ordering};

use pc_keyboard::{DecodedKey, HandleControl, KeyCode, Keyboard, ScancodeSet1, layouts::Us104Key};

use crate::{
    arch::{IrqMutex, ps2},
    console::input,
    events::OverflowPolicy,
    modules::{Module, ModuleError, Registrar},
};

/// The decoder state (shift, caps lock, multi-byte scancodes) and counters.
pub(super) struct KeyboardDriver {
    decoder: IrqMutex<Option<Keyboard<Us104Key, ScancodeSet1>>>,
    scancodes: AtomicU64,
    characters: AtomicU64,
}

pub(super) static DRIVER: KeyboardDriver = KeyboardDriver {
    decoder: IrqMutex::new(None),
    scancodes: AtomicU64::new(0),
    characters: AtomicU64::new(0),
};

const QUEUE_CAPACITY: usize = 2;

impl KeyboardDriver {
    /// Decodes scancodes into the console buffer while it has room.
    pub(super) fn drain(&self) {
        let mut decoder = self.decoder.lock();
        let decoder = decoder.get_or_insert_with(|| {
            Keyboard::new(ScancodeSet1::new(), Us104Key, HandleControl::MapLettersToUnicode)
        });
        while input::has_room() {
            let Some(scancode) = ps2::read_scancode() else { break };
            self.scancodes.fetch_add(1, Ordering::Relaxed);
            let Ok(Some(event)) = decoder.add_byte(scancode) else { continue };
            match decoder.process_keyevent(event) {
                // pc-keyboard gives the Delete key as DEL, which terminals send for Backspace
                // (Backspace itself decodes to BS): send what a terminal's Delete sends.
                Some(DecodedKey::Unicode('\u{7f}')) => {
                    for &byte in terminal_sequence(KeyCode::Delete) {
                        input::feed(byte);
                    }
                }
                Some(DecodedKey::Unicode(character)) => {
                    let mut utf8 = [0; 4];
                    for &byte in character.encode_utf8(&mut utf8).as_bytes() {
                        self.characters.fetch_add(1, Ordering::Relaxed);
                        input::feed(byte);
                    }
                }
                // Keys without a character reach the shell as a terminal sends them.
                Some(DecodedKey::RawKey(key)) => {
                    for &byte in terminal_sequence(key) {
                        input::feed(byte);
                    }
                }
                None => {}
            }
        }
    }
}

/// What a VT100-style terminal sends for `key` (ECMA-48 cursor keys, the VT220 editing keys),
/// or nothing.
fn terminal_sequence(key: KeyCode) -> &'static [u8] {
    match key {
        KeyCode::ArrowUp => b"\x1b[A",
        KeyCode::ArrowDown => b"\x1b[B",
        KeyCode::ArrowRight => b"\x1b[C",
        KeyCode::ArrowLeft => b"\x1b[D",
        KeyCode::Home => b"\x1b[H",
        KeyCode::End => b"\x1b[F",
        KeyCode::Delete => b"\x1b[3~",
        _ => b"",
    }
}

impl Module for KeyboardDriver {
    fn name(&self) -> &'static str {
        "ps2-keyboard"
    }

    fn description(&self) -> &'static str {
        "PS/2 keyboard (IRQ 1), decoded by pc-keyboard, into the console input"
    }

    fn init(&'static self, registrar: &mut Registrar) -> Result<(), ModuleError> {
        input::register_source(|| DRIVER.drain());
        registrar.subscribe_irq_line(
            ps2::KEYBOARD_IRQ_LINE,
            QUEUE_CAPACITY,
            OverflowPolicy::Coalesce,
            |_| self.drain(),
        )?;
        // A key pressed during boot left a byte whose interrupt is long gone.
        self.drain();
        Ok(())
    }

    fn stats(&self) -> Option<String> {
        Some(format!(
            "{} scancodes, {} characters",
            self.scancodes.load(Ordering::Relaxed),
            self.characters.load(Ordering::Relaxed)
        ))
    }
}
