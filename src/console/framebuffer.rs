//! A text console on a linear framebuffer: glyph rendering, wrapping and scrolling.
//!
//! Pure logic over a byte slice, so it is tested on the host. Scrolling moves a quarter of the
//! screen at once ("jump scroll"): copying the whole framebuffer per line costs milliseconds
//! under QEMU's software CPU, and a burst of log lines would otherwise dominate boot time.
//! Even so one scroll moves megabytes (some 18 ms of guest time at 1280x720), so it is done in
//! steps of one text row ([`FramebufferConsole::write_some`]): the console's lock holder can
//! let interrupts in between steps instead of masking them for the whole copy.

use noto_sans_mono_bitmap::{FontWeight, RasterHeight, get_raster, get_raster_width};

pub use crate::vocab::{Geometry, PixelLayout};

const FONT_WEIGHT: FontWeight = FontWeight::Regular;
const FONT_HEIGHT: RasterHeight = RasterHeight::Size16;
/// Drawn for characters the font lacks.
const REPLACEMENT_CHARACTER: char = '\u{fffd}';
/// Spaces per tab stop.
const TAB_WIDTH_COLUMNS: usize = 8;

/// Why a framebuffer cannot host a console.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum GeometryError {
    /// The buffer is shorter than `stride × height × bytes per pixel`.
    BufferTooSmall,
    /// Fewer than one text cell fits, or the pixel size is not 1–4 bytes.
    Unusable,
}

/// Characters one step of [`FramebufferConsole::write_some`] draws at most: a glyph is some
/// thousands of instructions in a debug build, and a step runs under the console's lock.
const GLYPHS_PER_STEP: usize = 16;

/// A scrolling text console drawing into a framebuffer.
pub struct FramebufferConsole {
    buffer: &'static mut [u8],
    geometry: Geometry,
    cell_width_px: usize,
    cell_height_px: usize,
    columns: usize,
    rows: usize,
    column: usize,
    row: usize,
    /// Inside an escape sequence: `Some(parameter)` after `ESC [`.
    escape: Escape,
    /// A scroll under way: nothing is drawn until it is done.
    scroll: Option<Scroll>,
}

/// A scroll in progress: the text area moves up by `shift_bytes`, `moved_bytes` of it so far.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
struct Scroll {
    shift_bytes: usize,
    moved_bytes: usize,
}

/// The ANSI sequences the shell's line editor sends (ECMA-48 CSI `n D`, `n C`, `K`); any other
/// CSI sequence is read and ignored, never drawn.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Escape {
    None,
    Started,
    Csi { parameter: usize },
}

impl FramebufferConsole {
    /// Creates a console over `buffer` and clears it.
    pub fn new(buffer: &'static mut [u8], geometry: Geometry) -> Result<Self, GeometryError> {
        let bytes_per_line = geometry.stride_px.checked_mul(geometry.bytes_per_pixel);
        let needed = bytes_per_line.and_then(|bytes| bytes.checked_mul(geometry.height_px));
        match needed {
            Some(needed) if needed <= buffer.len() => {}
            _ => return Err(GeometryError::BufferTooSmall),
        }
        let cell_width_px = get_raster_width(FONT_WEIGHT, FONT_HEIGHT);
        let cell_height_px = FONT_HEIGHT.val();
        let columns = geometry.width_px / cell_width_px;
        let rows = geometry.height_px / cell_height_px;
        let pixel_size_ok = (1..=4).contains(&geometry.bytes_per_pixel);
        if columns == 0 || rows == 0 || geometry.stride_px < geometry.width_px || !pixel_size_ok {
            return Err(GeometryError::Unusable);
        }
        let mut console = Self {
            buffer,
            geometry,
            cell_width_px,
            cell_height_px,
            columns,
            rows,
            column: 0,
            row: 0,
            escape: Escape::None,
            scroll: None,
        };
        console.visible_bytes_mut().fill(0);
        Ok(console)
    }

    /// Returns the number of text columns and rows.
    pub fn size_cells(&self) -> (usize, usize) {
        (self.columns, self.rows)
    }

    /// Returns the cursor as (column, row).
    pub fn cursor(&self) -> (usize, usize) {
        (self.column, self.row)
    }

    /// Writes `text`, interpreting `\n`, `\r`, `\t` and backspace, scrolls included.
    pub fn write_str(&mut self, text: &str) {
        let mut rest = text;
        while !rest.is_empty() || self.is_scrolling() {
            rest = &rest[self.write_some(rest)..];
        }
    }

    /// One bounded step of writing: a scroll under way moves one text row further (and nothing
    /// is written), else `text` is written up to where a scroll begins, at most
    /// [`GLYPHS_PER_STEP`] characters. Returns the bytes of
    /// `text` written. Call again until `text` is done and [`is_scrolling`](Self::is_scrolling)
    /// is false.
    pub fn write_some(&mut self, text: &str) -> usize {
        if self.is_scrolling() {
            self.step_scroll();
            return 0;
        }
        for (drawn, (at, character)) in text.char_indices().enumerate() {
            if drawn == GLYPHS_PER_STEP {
                return at;
            }
            // A glyph past the last column wraps first, so a scroll that starts there is done
            // before the glyph is drawn.
            if self.escape == Escape::None && self.column >= self.columns && !character.is_control()
            {
                self.new_line();
            }
            if self.is_scrolling() {
                return at;
            }
            self.write_char(character);
        }
        text.len()
    }

    /// Whether a scroll is under way.
    pub fn is_scrolling(&self) -> bool {
        self.scroll.is_some()
    }

    fn write_char(&mut self, character: char) {
        match (self.escape, character) {
            (Escape::None, '\u{1b}') => {
                self.escape = Escape::Started;
                return;
            }
            (Escape::None, _) => {}
            (Escape::Started, '[') => {
                self.escape = Escape::Csi { parameter: 0 };
                return;
            }
            (Escape::Started, _) => {
                self.escape = Escape::None;
                return;
            }
            (Escape::Csi { parameter }, digit @ '0'..='9') => {
                let value = digit as usize - '0' as usize;
                let parameter =
                    parameter.saturating_mul(10).saturating_add(value).min(self.columns);
                self.escape = Escape::Csi { parameter };
                return;
            }
            // Other parameter and intermediate bytes (`;`, `?`, ...): still inside.
            (Escape::Csi { .. }, '\u{20}'..='\u{3f}') => return,
            (Escape::Csi { parameter }, final_byte) => {
                self.escape = Escape::None;
                self.control_sequence(final_byte, parameter.max(1));
                return;
            }
        }
        match character {
            '\n' => self.new_line(),
            '\r' => self.column = 0,
            '\t' => {
                let next_stop = (self.column / TAB_WIDTH_COLUMNS + 1) * TAB_WIDTH_COLUMNS;
                while self.column < next_stop.min(self.columns) {
                    self.draw_glyph(' ');
                }
            }
            '\u{8}' => {
                if self.column > 0 {
                    self.column -= 1;
                    self.clear_cell(self.column, self.row);
                }
            }
            c if c.is_control() => {}
            c => self.draw_glyph(c),
        }
    }

    fn control_sequence(&mut self, command: char, count: usize) {
        match command {
            'D' => self.column = self.column.saturating_sub(count),
            'C' => self.column = (self.column + count).min(self.columns.saturating_sub(1)),
            'K' => {
                for column in self.column..self.columns {
                    self.clear_cell(column, self.row);
                }
            }
            _ => {}
        }
    }

    fn draw_glyph(&mut self, character: char) {
        if self.column >= self.columns {
            self.new_line();
        }
        let raster = get_raster(character, FONT_WEIGHT, FONT_HEIGHT)
            .or_else(|| get_raster(REPLACEMENT_CHARACTER, FONT_WEIGHT, FONT_HEIGHT));
        let (x0, y0) = (self.column * self.cell_width_px, self.row * self.cell_height_px);
        match raster {
            // A mono raster covers its whole cell: each row is written once, no clearing first
            // (this runs under the console lock with interrupts masked, so every pixel counts).
            Some(raster)
                if raster.height() == self.cell_height_px
                    && raster.width() == self.cell_width_px =>
            {
                for (dy, line) in raster.raster().iter().enumerate() {
                    self.put_row(x0, y0 + dy, line);
                }
            }
            other => {
                self.clear_cell(self.column, self.row);
                for (dy, line) in other.iter().flat_map(|raster| raster.raster().iter()).enumerate()
                {
                    for (dx, &intensity) in line.iter().enumerate().take(self.cell_width_px) {
                        self.put_pixel(x0 + dx, y0 + dy, intensity);
                    }
                }
            }
        }
        self.column += 1;
    }

    /// Writes one row of grey levels starting at pixel `(x0, y)`.
    fn put_row(&mut self, x0: usize, y: usize, intensities: &[u8]) {
        let bytes_per_pixel = self.geometry.bytes_per_pixel;
        let start = (y * self.geometry.stride_px + x0) * bytes_per_pixel;
        let row = &mut self.buffer[start..start + intensities.len() * bytes_per_pixel];
        // Grey: one channel, or the same value in each colour channel whatever their order.
        let channels =
            if self.geometry.layout == PixelLayout::Gray { 1 } else { bytes_per_pixel.min(3) };
        for (pixel, &intensity) in row.chunks_exact_mut(bytes_per_pixel).zip(intensities) {
            pixel[..channels].fill(intensity);
        }
    }

    fn new_line(&mut self) {
        self.column = 0;
        if self.row + 1 < self.rows {
            self.row += 1;
        } else {
            let jump_rows = (self.rows / 4).max(1);
            let shift_bytes = jump_rows * self.bytes_per_text_row();
            self.scroll = Some(Scroll { shift_bytes, moved_bytes: 0 });
            self.row = self.rows - jump_rows;
        }
    }

    fn bytes_per_text_row(&self) -> usize {
        self.geometry.stride_px * self.geometry.bytes_per_pixel * self.cell_height_px
    }

    fn visible_bytes_mut(&mut self) -> &mut [u8] {
        let len = self.geometry.stride_px * self.geometry.bytes_per_pixel * self.geometry.height_px;
        &mut self.buffer[..len]
    }

    /// Moves one more text row of a scroll under way, or clears the rows it freed.
    fn step_scroll(&mut self) {
        let Some(scroll) = self.scroll else { return };
        let row_bytes = self.bytes_per_text_row();
        let text_area = self.rows * row_bytes;
        let kept_bytes = text_area - scroll.shift_bytes;
        if scroll.moved_bytes < kept_bytes {
            let len = row_bytes.min(kept_bytes - scroll.moved_bytes);
            let from = scroll.shift_bytes + scroll.moved_bytes;
            self.buffer.copy_within(from..from + len, scroll.moved_bytes);
            self.scroll = Some(Scroll { moved_bytes: scroll.moved_bytes + len, ..scroll });
        } else {
            self.buffer[kept_bytes..text_area].fill(0);
            self.scroll = None;
        }
    }

    fn clear_cell(&mut self, column: usize, row: usize) {
        let (x0, y0) = (column * self.cell_width_px, row * self.cell_height_px);
        for y in y0..y0 + self.cell_height_px {
            for x in x0..x0 + self.cell_width_px {
                self.put_pixel(x, y, 0);
            }
        }
    }

    fn put_pixel(&mut self, x: usize, y: usize, intensity: u8) {
        let bytes_per_pixel = self.geometry.bytes_per_pixel;
        let offset = (y * self.geometry.stride_px + x) * bytes_per_pixel;
        let pixel = &mut self.buffer[offset..offset + bytes_per_pixel];
        match self.geometry.layout {
            PixelLayout::Gray => pixel[0] = intensity,
            // Grey text: the same value in each colour channel, whatever their order.
            PixelLayout::Rgb | PixelLayout::Bgr => {
                for channel in pixel.iter_mut().take(3) {
                    *channel = intensity;
                }
            }
        }
    }

    /// Returns whether any pixel of the cell at (`column`, `row`) is lit; for tests and for
    /// checking what the screen shows without a display.
    pub fn cell_is_lit(&self, column: usize, row: usize) -> bool {
        let bytes_per_pixel = self.geometry.bytes_per_pixel;
        let (x0, y0) = (column * self.cell_width_px, row * self.cell_height_px);
        (y0..y0 + self.cell_height_px).any(|y| {
            let start = (y * self.geometry.stride_px + x0) * bytes_per_pixel;
            self.buffer[start..start + self.cell_width_px * bytes_per_pixel].iter().any(|&b| b != 0)
        })
    }
}

#[cfg(test)]
#[expect(unreachable_pub, reason = "`#[test_case]` makes test functions `pub`")]
mod tests {
    use alloc::{boxed::Box, vec};

    use super::*;

    fn console(width_px: usize, height_px: usize) -> FramebufferConsole {
        let geometry = Geometry {
            width_px,
            height_px,
            stride_px: width_px + 3,
            bytes_per_pixel: 4,
            layout: PixelLayout::Bgr,
        };
        let buffer = Box::leak(vec![0u8; (width_px + 3) * height_px * 4].into_boxed_slice());
        FramebufferConsole::new(buffer, geometry).expect("valid geometry")
    }

    /// Number of lit cells at the start of `row`, i.e. the length of the line drawn there.
    fn lit_prefix(console: &FramebufferConsole, row: usize) -> usize {
        (0..console.size_cells().0).take_while(|&column| console.cell_is_lit(column, row)).count()
    }

    #[test_case]
    fn rejects_a_buffer_smaller_than_its_geometry() {
        let geometry = Geometry {
            width_px: 64,
            height_px: 64,
            stride_px: 64,
            bytes_per_pixel: 4,
            layout: PixelLayout::Rgb,
        };
        let buffer = Box::leak(vec![0u8; 64 * 64 * 4 - 1].into_boxed_slice());
        assert_eq!(
            FramebufferConsole::new(buffer, geometry).err(),
            Some(GeometryError::BufferTooSmall)
        );
    }

    #[test_case]
    fn long_lines_wrap_to_the_next_row() {
        let mut console = console(80, 160);
        let (columns, _) = console.size_cells();
        for _ in 0..columns + 2 {
            console.write_str("x");
        }
        assert_eq!(console.cursor(), (2, 1));
        assert_eq!(lit_prefix(&console, 0), columns);
        assert_eq!(lit_prefix(&console, 1), 2);
    }

    #[test_case]
    fn scrolling_moves_lines_up_by_a_quarter_screen() {
        let mut console = console(200, 16 * 8);
        let (_, rows) = console.size_cells();
        assert_eq!(rows, 8);
        // Line k is k+1 characters long, so each row's content identifies the line.
        for k in 0..rows {
            for _ in 0..=k {
                console.write_str("#");
            }
            console.write_str("\n");
        }
        // The eighth newline scrolled by rows / 4 = 2: row 0 now shows line 2.
        assert_eq!(console.cursor(), (0, rows - 2));
        assert_eq!(lit_prefix(&console, 0), 3);
        assert_eq!(lit_prefix(&console, rows - 3), rows);
        assert_eq!(lit_prefix(&console, rows - 2), 0);
        assert_eq!(lit_prefix(&console, rows - 1), 0);
    }

    #[test_case]
    fn a_scroll_is_done_a_row_at_a_time_and_nothing_is_drawn_meanwhile() {
        let mut console = console(200, 16 * 8);
        let (_, rows) = console.size_cells();
        for _ in 0..rows - 1 {
            console.write_str("#\n");
        }
        // The last row's newline starts a scroll and stops the write there.
        assert_eq!(console.write_some("#\nabc"), 2);
        assert!(console.is_scrolling());
        let mut steps = 0;
        while console.is_scrolling() {
            assert_eq!(console.write_some("abc"), 0, "nothing is drawn while scrolling");
            steps += 1;
        }
        // Six rows kept, moved one at a time, then one step clears the two freed rows.
        assert_eq!(steps, rows - 2 + 1);
        assert_eq!(console.write_some("abc"), 3);
        assert_eq!(lit_prefix(&console, rows - 2), 3);
    }

    #[test_case]
    fn a_glyph_that_wraps_into_a_scroll_is_drawn_after_it() {
        let mut console = console(80, 16 * 8);
        let (columns, rows) = console.size_cells();
        for _ in 0..rows - 1 {
            console.write_str("\n");
        }
        for _ in 0..columns {
            console.write_str("#");
        }
        // The last row is full: the next glyph wraps, which scrolls by two rows first.
        console.write_str("Z");
        assert_eq!(console.cursor(), (1, rows - 2));
        assert_eq!(lit_prefix(&console, rows - 3), columns, "the full row moved up");
        assert_eq!(lit_prefix(&console, rows - 2), 1, "the wrapped glyph is on its new row");
    }

    #[test_case]
    fn the_line_editors_cursor_sequences_move_and_erase_without_drawing() {
        let mut console = console(80, 32);
        console.write_str("abcd\u{1b}[2D");
        assert_eq!(console.cursor(), (2, 0));
        console.write_str("\u{1b}[K");
        assert!(
            console.cell_is_lit(1, 0) && !console.cell_is_lit(2, 0) && !console.cell_is_lit(3, 0)
        );
        console.write_str("\u{1b}[1C\u{1b}[?25l\u{1b}[1;5D");
        assert_eq!(console.cursor(), (0, 0), "one right, then five left stops at the edge");
        assert!(!console.cell_is_lit(4, 0), "no sequence drew a glyph");
    }

    #[test_case]
    fn backspace_erases_the_previous_cell() {
        let mut console = console(80, 32);
        console.write_str("ab\u{8}");
        assert_eq!(console.cursor(), (1, 0));
        assert!(console.cell_is_lit(0, 0));
        assert!(!console.cell_is_lit(1, 0));
    }
}
