//! The shell's line editor: turns input bytes into lines, with backspace, CR/LF handling and a
//! hard length limit. Pure logic; the shell echoes what it says to echo.

use alloc::string::String;

/// Longest line the shell accepts; a longer one is refused whole, never truncated or overflowed.
pub const MAX_LINE_LEN_BYTES: usize = 256;

/// What one input byte did.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Edit {
    /// Nothing visible (ignored control byte, or the LF of a CRLF).
    Nothing,
    /// Show this character.
    Echo(u8),
    /// Remove the last character shown.
    Erase,
    /// A complete line.
    Line(String),
    /// A line that was too long ended; it is discarded.
    TooLong,
}

/// The line being typed.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: String,
    overflowed: bool,
    after_carriage_return: bool,
}

impl LineEditor {
    /// An empty editor.
    pub const fn new() -> Self {
        Self { line: String::new(), overflowed: false, after_carriage_return: false }
    }

    /// Takes one input byte.
    pub fn feed(&mut self, byte: u8) -> Edit {
        let after_carriage_return = core::mem::replace(&mut self.after_carriage_return, false);
        match byte {
            b'\n' if after_carriage_return => Edit::Nothing,
            b'\r' | b'\n' => {
                self.after_carriage_return = byte == b'\r';
                let line = core::mem::take(&mut self.line);
                if core::mem::replace(&mut self.overflowed, false) {
                    Edit::TooLong
                } else {
                    Edit::Line(line)
                }
            }
            0x08 | 0x7f => {
                if !self.overflowed && self.line.pop().is_some() {
                    Edit::Erase
                } else {
                    Edit::Nothing
                }
            }
            b' '..=b'~' | b'\t' => {
                if self.overflowed || self.line.len() == MAX_LINE_LEN_BYTES {
                    self.overflowed = true;
                    self.line.clear();
                    Edit::Nothing
                } else {
                    let byte = if byte == b'\t' { b' ' } else { byte };
                    self.line.push(char::from(byte));
                    Edit::Echo(byte)
                }
            }
            // Other control bytes and non-ASCII input have no meaning to the shell.
            _ => Edit::Nothing,
        }
    }

    /// Discards the line being typed (Ctrl-C).
    pub fn clear(&mut self) {
        self.line.clear();
        self.overflowed = false;
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    fn feed_all(editor: &mut LineEditor, bytes: &[u8]) -> Vec<Edit> {
        bytes.iter().map(|&b| editor.feed(b)).filter(|e| *e != Edit::Nothing).collect()
    }

    #[test_case]
    fn lines_end_at_cr_lf_or_crlf_once() {
        let mut editor = LineEditor::new();
        let edits = feed_all(&mut editor, b"ps\r\nmem\nuptime\r");
        let lines: Vec<_> = edits
            .iter()
            .filter_map(|e| if let Edit::Line(l) = e { Some(l.as_str()) } else { None })
            .collect();
        assert_eq!(lines, ["ps", "mem", "uptime"]);
    }

    #[test_case]
    fn backspace_erases_and_garbage_is_ignored() {
        let mut editor = LineEditor::new();
        let edits = feed_all(&mut editor, b"pz\x7fs\x00\x1b\xff\xfe\n");
        assert_eq!(edits.last(), Some(&Edit::Line("ps".into())));
        assert!(edits.contains(&Edit::Erase));
    }

    #[test_case]
    fn an_over_long_line_is_refused_whole_and_the_next_one_works() {
        let mut editor = LineEditor::new();
        let long: Vec<u8> = core::iter::repeat_n(b'x', 10_000).chain(*b"\n").collect();
        let edits = feed_all(&mut editor, &long);
        assert_eq!(edits.last(), Some(&Edit::TooLong));
        assert_eq!(edits.len(), MAX_LINE_LEN_BYTES + 1, "echoes stop at the limit");
        assert_eq!(feed_all(&mut editor, b"ps\n").last(), Some(&Edit::Line("ps".into())));
    }
}
