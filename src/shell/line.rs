//! The shell's line editor: turns input bytes into lines, with a cursor, history, completion
//! and a hard length limit. Pure logic: it says what to print, the shell prints it.
//!
//! Keys (what a VT100-style terminal sends): Left/Right, Home/End (also Ctrl-A/Ctrl-E), Up/Down
//! through the history, Backspace and Delete, Ctrl-U (to the line's start), Ctrl-W (the word
//! before the cursor), Ctrl-K (to the end), Tab (completes the word at the cursor). Output uses
//! three ANSI sequences, which the framebuffer console understands too: cursor left `ESC [ n D`,
//! right `ESC [ n C`, erase to the end of the line `ESC [ K`.

use alloc::{collections::VecDeque, format, string::String, vec::Vec};

/// Longest line the shell accepts; a longer one is refused whole, never truncated or overflowed.
pub const MAX_LINE_LEN_BYTES: usize = 256;
/// Lines kept for Up/Down.
pub const HISTORY_LINES: usize = 32;
/// Longest escape sequence read; a longer one is dropped as garbage.
const MAX_ESCAPE_BYTES: usize = 8;

/// What one input byte did.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Edit {
    /// Nothing visible (ignored byte, the LF of a CRLF, part of an escape sequence).
    Nothing,
    /// Show this character (typed at the end of the line).
    Echo(u8),
    /// Remove the last character shown (Backspace at the end of the line).
    Erase,
    /// Print these bytes: the line redrawn after an edit inside it, or a cursor move.
    Show(String),
    /// Completion found several candidates: list them, then show the prompt and
    /// [`LineEditor::redraw`] again.
    Candidates(Vec<String>),
    /// A complete line.
    Line(String),
    /// A line that was too long ended; it is discarded.
    TooLong,
}

/// Where an escape sequence is.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
enum Escape {
    /// Not in one.
    #[default]
    None,
    /// After `ESC`.
    Started,
    /// After `ESC [`, with the bytes read since.
    Csi { parameter: u16, len: usize },
    /// After `ESC O` (some terminals' Home and End).
    Ss3,
}

/// The line being typed, and the lines typed before.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: Vec<u8>,
    cursor: usize,
    overflowed: bool,
    after_carriage_return: bool,
    escape: Escape,
    history: VecDeque<String>,
    /// The history line shown (0: the newest), while browsing.
    browsing: Option<usize>,
    /// The line being typed when browsing began.
    stashed: Vec<u8>,
}

impl LineEditor {
    /// An empty editor.
    pub const fn new() -> Self {
        Self {
            line: Vec::new(),
            cursor: 0,
            overflowed: false,
            after_carriage_return: false,
            escape: Escape::None,
            history: VecDeque::new(),
            browsing: None,
            stashed: Vec::new(),
        }
    }

    /// Takes one input byte. `complete` lists the words the word at the cursor could be, given
    /// the line before it (Tab); the editor keeps those that start with what is typed.
    pub fn feed(&mut self, byte: u8, complete: &dyn Fn(&str) -> Vec<String>) -> Edit {
        let after_carriage_return = core::mem::replace(&mut self.after_carriage_return, false);
        if self.escape != Escape::None {
            return self.escape_byte(byte);
        }
        match byte {
            b'\n' if after_carriage_return => Edit::Nothing,
            b'\r' | b'\n' => {
                self.after_carriage_return = byte == b'\r';
                self.finish_line()
            }
            0x1b => {
                self.escape = Escape::Started;
                Edit::Nothing
            }
            0x08 | 0x7f => self.backspace(),
            0x01 => self.move_to(0),
            0x05 => self.move_to(self.line.len()),
            0x02 => self.move_to(self.cursor.saturating_sub(1)),
            0x06 => self.move_to((self.cursor + 1).min(self.line.len())),
            0x0b => self.replace(self.cursor..self.line.len(), b""),
            0x15 => self.replace(0..self.cursor, b""),
            0x17 => {
                let start = self.word_start(true);
                self.replace(start..self.cursor, b"")
            }
            b'\t' => self.complete(complete),
            b' '..=b'~' => self.insert(byte),
            // Other control bytes and non-ASCII input have no meaning to the shell.
            _ => Edit::Nothing,
        }
    }

    /// Discards the line being typed (Ctrl-C).
    pub fn clear(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.overflowed = false;
        self.escape = Escape::None;
        self.browsing = None;
    }

    /// The line and the cursor move that put it on screen after a fresh prompt.
    pub fn redraw(&self) -> String {
        let mut shown = String::from_utf8_lossy(&self.line).into_owned();
        let back = self.line.len() - self.cursor;
        if back > 0 {
            shown.push_str(&format!("\x1b[{back}D"));
        }
        shown
    }

    fn escape_byte(&mut self, byte: u8) -> Edit {
        match self.escape {
            Escape::Started => {
                self.escape = match byte {
                    b'[' => Escape::Csi { parameter: 0, len: 0 },
                    b'O' => Escape::Ss3,
                    _ => Escape::None,
                };
                Edit::Nothing
            }
            Escape::Ss3 => {
                self.escape = Escape::None;
                match byte {
                    b'H' => self.move_to(0),
                    b'F' => self.move_to(self.line.len()),
                    _ => Edit::Nothing,
                }
            }
            Escape::Csi { parameter, len } => match byte {
                b'0'..=b'9' | b';' if len < MAX_ESCAPE_BYTES => {
                    let parameter = if byte == b';' {
                        parameter
                    } else {
                        parameter.saturating_mul(10).saturating_add(u16::from(byte - b'0'))
                    };
                    self.escape = Escape::Csi { parameter, len: len + 1 };
                    Edit::Nothing
                }
                0x40..=0x7e => {
                    self.escape = Escape::None;
                    self.csi(byte, parameter)
                }
                // Too long or malformed: garbage, dropped.
                _ => {
                    self.escape = Escape::None;
                    Edit::Nothing
                }
            },
            Escape::None => Edit::Nothing,
        }
    }

    fn csi(&mut self, command: u8, parameter: u16) -> Edit {
        match (command, parameter) {
            (b'A', _) => self.history_step(true),
            (b'B', _) => self.history_step(false),
            (b'C', _) => self.move_to((self.cursor + 1).min(self.line.len())),
            (b'D', _) => self.move_to(self.cursor.saturating_sub(1)),
            (b'H', _) | (b'~', 1 | 7) => self.move_to(0),
            (b'F', _) | (b'~', 4 | 8) => self.move_to(self.line.len()),
            (b'~', 3) if self.cursor < self.line.len() => {
                self.replace(self.cursor..self.cursor + 1, b"")
            }
            _ => Edit::Nothing,
        }
    }

    fn finish_line(&mut self) -> Edit {
        let line = core::mem::take(&mut self.line);
        self.cursor = 0;
        self.browsing = None;
        if core::mem::replace(&mut self.overflowed, false) {
            return Edit::TooLong;
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        let worth_keeping = !line.trim().is_empty() && self.history.front() != Some(&line);
        if worth_keeping {
            if self.history.len() == HISTORY_LINES {
                self.history.pop_back();
            }
            self.history.push_front(line.clone());
        }
        Edit::Line(line)
    }

    fn insert(&mut self, byte: u8) -> Edit {
        if self.overflowed || self.line.len() == MAX_LINE_LEN_BYTES {
            self.overflowed = true;
            self.line.clear();
            self.cursor = 0;
            return Edit::Nothing;
        }
        if self.cursor == self.line.len() {
            self.line.push(byte);
            self.cursor += 1;
            return Edit::Echo(byte);
        }
        self.replace(self.cursor..self.cursor, &[byte])
    }

    fn backspace(&mut self) -> Edit {
        if self.overflowed || self.cursor == 0 {
            return Edit::Nothing;
        }
        if self.cursor == self.line.len() {
            self.line.pop();
            self.cursor -= 1;
            return Edit::Erase;
        }
        self.replace(self.cursor - 1..self.cursor, b"")
    }

    /// Replaces `range` of the line with `with` (the cursor ends after it) and returns the
    /// redraw: back to the range's start, the rest of the line, erase what is left of the old
    /// one, back to the cursor.
    fn replace(&mut self, range: core::ops::Range<usize>, with: &[u8]) -> Edit {
        if self.overflowed || (range.is_empty() && with.is_empty()) {
            return Edit::Nothing;
        }
        if self.line.len() - range.len() + with.len() > MAX_LINE_LEN_BYTES {
            return Edit::Nothing;
        }
        let mut shown = String::new();
        if self.cursor > range.start {
            shown.push_str(&format!("\x1b[{}D", self.cursor - range.start));
        } else if range.start > self.cursor {
            shown.push_str(&format!("\x1b[{}C", range.start - self.cursor));
        }
        self.line.splice(range.clone(), with.iter().copied());
        self.cursor = range.start + with.len();
        shown.push_str(&String::from_utf8_lossy(&self.line[range.start..]));
        shown.push_str("\x1b[K");
        let back = self.line.len() - self.cursor;
        if back > 0 {
            shown.push_str(&format!("\x1b[{back}D"));
        }
        Edit::Show(shown)
    }

    fn move_to(&mut self, position: usize) -> Edit {
        let from = core::mem::replace(&mut self.cursor, position);
        match position.cmp(&from) {
            core::cmp::Ordering::Less => Edit::Show(format!("\x1b[{}D", from - position)),
            core::cmp::Ordering::Greater => Edit::Show(format!("\x1b[{}C", position - from)),
            core::cmp::Ordering::Equal => Edit::Nothing,
        }
    }

    /// Where the word before the cursor starts (`skip_spaces`: spaces right before the cursor
    /// belong to it, as Ctrl-W wants).
    fn word_start(&self, skip_spaces: bool) -> usize {
        let before = &self.line[..self.cursor];
        let mut start = before.len();
        if skip_spaces {
            while start > 0 && before[start - 1] == b' ' {
                start -= 1;
            }
        }
        while start > 0 && before[start - 1] != b' ' {
            start -= 1;
        }
        start
    }

    fn history_step(&mut self, older: bool) -> Edit {
        let next = match (self.browsing, older) {
            (None, true) if !self.history.is_empty() => Some(0),
            (Some(at), true) if at + 1 < self.history.len() => Some(at + 1),
            (Some(at), true) => Some(at),
            (Some(0), false) => None,
            (Some(at), false) => Some(at - 1),
            (None, _) => return Edit::Nothing,
        };
        if self.browsing.is_none() {
            self.stashed.clone_from(&self.line);
        }
        let shown = match next {
            Some(at) => self.history[at].as_bytes().to_vec(),
            None => core::mem::take(&mut self.stashed),
        };
        self.browsing = next;
        self.overflowed = false;
        let end = self.line.len();
        self.replace(0..end, &shown)
    }

    fn complete(&mut self, complete: &dyn Fn(&str) -> Vec<String>) -> Edit {
        if self.overflowed {
            return Edit::Nothing;
        }
        let start = self.word_start(false);
        let typed = String::from_utf8_lossy(&self.line[start..self.cursor]).into_owned();
        let before = String::from_utf8_lossy(&self.line[..start]).into_owned();
        let mut candidates: Vec<String> =
            complete(&before).into_iter().filter(|word| word.starts_with(&typed)).collect();
        candidates.sort();
        candidates.dedup();
        match candidates.as_slice() {
            [] => Edit::Nothing,
            [only] => {
                let mut rest = only.as_bytes()[typed.len()..].to_vec();
                rest.push(b' ');
                self.insert_all(&rest)
            }
            [first, ..] => {
                let common = candidates.iter().fold(first.len(), |common, word| {
                    first.bytes().zip(word.bytes()).take(common).take_while(|(a, b)| a == b).count()
                });
                if common > typed.len() {
                    let rest = first.as_bytes()[typed.len()..common].to_vec();
                    self.insert_all(&rest)
                } else {
                    Edit::Candidates(candidates)
                }
            }
        }
    }

    fn insert_all(&mut self, bytes: &[u8]) -> Edit {
        if self.cursor == self.line.len() && self.line.len() + bytes.len() <= MAX_LINE_LEN_BYTES {
            self.line.extend_from_slice(bytes);
            self.cursor = self.line.len();
            return Edit::Show(String::from_utf8_lossy(bytes).into_owned());
        }
        self.replace(self.cursor..self.cursor, bytes)
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::{vec, vec::Vec};

    use super::*;

    fn nothing_to_complete(_: &str) -> Vec<String> {
        Vec::new()
    }

    fn feed_all(editor: &mut LineEditor, bytes: &[u8]) -> Vec<Edit> {
        bytes
            .iter()
            .map(|&b| editor.feed(b, &nothing_to_complete))
            .filter(|e| *e != Edit::Nothing)
            .collect()
    }

    fn lines(edits: &[Edit]) -> Vec<&str> {
        edits
            .iter()
            .filter_map(|e| if let Edit::Line(l) = e { Some(l.as_str()) } else { None })
            .collect()
    }

    #[test_case]
    fn lines_end_at_cr_lf_or_crlf_once() {
        let mut editor = LineEditor::new();
        let edits = feed_all(&mut editor, b"ps\r\nmem\nuptime\r");
        assert_eq!(lines(&edits), ["ps", "mem", "uptime"]);
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

    #[test_case]
    fn up_and_down_walk_the_history_and_come_back_to_the_typed_line() {
        let mut editor = LineEditor::new();
        feed_all(&mut editor, b"events\rps\rps\r");
        feed_all(&mut editor, b"me");
        // Up: the newest ("ps", kept once), then "events"; Down twice: back to "me".
        assert_eq!(lines(&feed_all(&mut editor, b"\x1b[A\r")), ["ps"]);
        assert_eq!(lines(&feed_all(&mut editor, b"\x1b[A\x1b[A\r")), ["events"]);
        let edits = feed_all(&mut editor, b"me\x1b[A\x1b[B\r");
        assert_eq!(lines(&edits), ["me"]);
        assert!(edits.iter().any(|e| matches!(e, Edit::Show(s) if s.contains("events"))));
        // The oldest stays put at the top; an empty history does nothing.
        assert_eq!(lines(&feed_all(&mut LineEditor::new(), b"\x1b[Aok\r")), ["ok"]);
    }

    #[test_case]
    fn the_cursor_moves_and_edits_inside_the_line() {
        let mut editor = LineEditor::new();
        // Left twice, insert; Home, insert; End, insert; Delete at Home.
        let edits = feed_all(&mut editor, b"pss\x1b[D\x1b[Dx\x1b[Hy\x1b[Fz\x01\x1b[3~\r");
        assert_eq!(lines(&edits), ["pxssz"]);
        let redraw = edits.iter().find_map(|e| if let Edit::Show(s) = e { Some(s) } else { None });
        assert_eq!(redraw.map(String::as_str), Some("\x1b[1D"), "the first Left is a cursor move");
        assert_eq!(
            lines(&feed_all(&mut editor, b"ab\x1b[Dc\x7f\r")),
            ["ab"],
            "backspace in the middle"
        );
        assert_eq!(lines(&feed_all(&mut editor, b"run spin 10\x05\x02\x02\x0b\r")), ["run spin "]);
    }

    #[test_case]
    fn ctrl_u_and_ctrl_w_delete_before_the_cursor() {
        let mut editor = LineEditor::new();
        assert_eq!(lines(&feed_all(&mut editor, b"run spin  \x17\r")), ["run "]);
        assert_eq!(lines(&feed_all(&mut editor, b"kill 3\x1b[D\x15ok\r")), ["ok3"]);
    }

    #[test_case]
    fn tab_completes_one_candidate_lists_several_and_extends_a_common_prefix() {
        let complete = |before: &str| -> Vec<String> {
            if before.is_empty() {
                vec![
                    "chains".into(),
                    "cpus".into(),
                    "ps".into(),
                    "policy".into(),
                    "poweroff".into(),
                ]
            } else {
                vec!["hello".into(), "hostile".into()]
            }
        };
        let mut editor = LineEditor::new();
        let mut feed = |bytes: &[u8]| -> Vec<Edit> {
            bytes
                .iter()
                .map(|&b| editor.feed(b, &complete))
                .filter(|e| *e != Edit::Nothing)
                .collect()
        };
        assert_eq!(feed(b"ch\t"), [Edit::Echo(b'c'), Edit::Echo(b'h'), Edit::Show("ains ".into())]);
        assert_eq!(lines(&feed(b"\r")), ["chains "]);
        let listed = Edit::Candidates(vec!["policy".into(), "poweroff".into()]);
        assert_eq!(feed(b"po\t").last(), Some(&listed));
        feed(b"\x15");
        assert_eq!(
            feed(b"run h\t").last(),
            Some(&Edit::Candidates(vec!["hello".into(), "hostile".into()]))
        );
        assert_eq!(feed(b"e\t").last(), Some(&Edit::Show("llo ".into())));
        assert_eq!(lines(&feed(b"\r")), ["run hello "]);
        assert!(feed(b"zz\t").iter().all(|e| matches!(e, Edit::Echo(_))), "no candidate: nothing");
    }
}
