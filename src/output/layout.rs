//! Column layout shared by the flow and server tables: fitting a cell to its
//! column, breaking a list over lines, sharing a terminal's width between
//! columns, and putting a row's cells on one or more lines. Widths count
//! characters; colour codes are added around the text, never counted.

/// What a cell longer than its column becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fit {
    /// Shortened, ending in `~` (the whole value is in JSON and TSV).
    Cut,
    /// A comma-separated list broken over as many lines as it needs.
    Wrap,
    /// Never shortened: the row is pushed right instead.
    Whole,
}

/// One column's width and behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Col {
    pub width: usize,
    pub fit: Fit,
    /// Numbers are right-aligned.
    pub right: bool,
}

impl Col {
    pub const fn new(width: usize, fit: Fit) -> Self {
        Col {
            width,
            fit,
            right: false,
        }
    }

    pub const fn right(width: usize) -> Self {
        Col {
            width,
            fit: Fit::Whole,
            right: true,
        }
    }
}

/// A cell's text and its colour (an ANSI sequence, or empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub color: &'static str,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            color: "",
        }
    }

    pub fn colored(text: impl Into<String>, color: &'static str) -> Self {
        Cell {
            text: text.into(),
            color,
        }
    }
}

/// Characters in `s` (what a column width counts).
pub fn width(s: &str) -> usize {
    s.chars().count()
}

/// `s` shortened to `w` characters, its last one replaced by `~` when cut.
pub fn cut(s: &str, w: usize) -> String {
    if width(s) <= w {
        return s.to_string();
    }
    let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
    if w > 0 {
        t.push('~');
    }
    t
}

/// A comma-separated list broken into lines of at most `w` characters, breaking
/// only after a comma (an item longer than `w` is a line of its own).
pub fn wrap_list(s: &str, w: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let items: Vec<&str> = s.split(',').collect();
    let last = items.len().saturating_sub(1);
    for (i, item) in items.iter().enumerate() {
        let piece = if i < last {
            format!("{item},")
        } else {
            (*item).to_string()
        };
        // A leading space after a comma belongs to the next item; at a line start
        // it goes.
        let piece = if line.is_empty() {
            piece.trim_start().to_string()
        } else {
            piece
        };
        if !line.is_empty() && width(&line) + width(&piece) > w {
            lines.push(std::mem::take(&mut line).trim_end().to_string());
            line = piece.trim_start().to_string();
        } else {
            line.push_str(&piece);
        }
    }
    lines.push(line);
    lines
}

/// The lines a cell takes in its column (several only for [`Fit::Wrap`] when
/// the width is limited). A first piece too long for its column starts on the
/// next line, where it may begin left of the column.
fn cell_lines(cell: &str, col: Col, limited: bool) -> Vec<String> {
    match (col.fit, limited) {
        (Fit::Cut, true) => vec![cut(cell, col.width)],
        (Fit::Wrap, true) => {
            let mut lines = wrap_list(cell, col.width);
            if lines.first().is_some_and(|l| width(l) > col.width) {
                lines.insert(0, String::new());
            }
            lines
        }
        _ => vec![cell.to_string()],
    }
}

/// Renders cells into lines at the given columns. `limited` says whether the
/// widths are a terminal's (cut and wrap) or minimums (piped: nothing is cut, a
/// longer cell pushes the rest of its line right). A wrapped cell's further lines
/// start in its column; one longer than the column ends at `right_edge` if it
/// would pass it. The first line starts at the current position; the others
/// are indented by `indent` spaces. Colours wrap the text only.
pub fn render(
    cells: &[Cell],
    cols: &[Col],
    limited: bool,
    indent: usize,
    right_edge: Option<usize>,
    paint: &dyn Fn(&str, &'static str) -> String,
) -> Vec<String> {
    let parts: Vec<Vec<String>> = cells
        .iter()
        .zip(cols)
        .map(|(cell, col)| cell_lines(&cell.text, *col, limited))
        .collect();
    let height = parts.iter().map(Vec::len).max().unwrap_or(1);
    let mut out = Vec::with_capacity(height);
    for n in 0..height {
        let mut line = if n == 0 {
            String::new()
        } else {
            " ".repeat(indent)
        };
        // Where the column begins, had every cell before it fit.
        let mut at = indent;
        for (i, ((part, col), cell)) in parts.iter().zip(cols).zip(cells).enumerate() {
            let text = part.get(n).map_or("", String::as_str);
            if n == 0 {
                let last = i + 1 == cells.len();
                let gap = col.width.saturating_sub(width(text));
                if col.right {
                    line.push_str(&" ".repeat(gap));
                }
                line.push_str(&paint(text, cell.color));
                if !last {
                    if !col.right {
                        line.push_str(&" ".repeat(gap));
                    }
                    line.push(' ');
                }
            } else if !text.is_empty() {
                let start = match right_edge {
                    Some(edge) => at.min(edge.saturating_sub(width(text))),
                    None => at,
                };
                line.push_str(&" ".repeat(start.saturating_sub(width(&line))));
                line.push_str(&paint(text, cell.color));
            }
            at += col.width + 1;
        }
        out.push(line.trim_end().to_string());
    }
    out
}

/// A column that may take more room than its minimum.
#[derive(Clone, Copy, Debug)]
pub struct Flex {
    pub min: usize,
    /// At most this wide (`usize::MAX`: takes whatever is left).
    pub max: usize,
    /// Its share of the room beyond the minimums.
    pub weight: usize,
}

/// Shares `room` characters between flexible columns: each gets its minimum, then
/// the rest by weight up to its maximum; what is left goes to the last column.
pub fn share(room: usize, flex: &[Flex]) -> Vec<usize> {
    let mut w: Vec<usize> = flex.iter().map(|f| f.min).collect();
    let mins: usize = w.iter().sum();
    let extra = room.saturating_sub(mins);
    let weights: usize = flex.iter().map(|f| f.weight).sum::<usize>().max(1);
    for (x, f) in w.iter_mut().zip(flex) {
        *x = (*x + extra * f.weight / weights).min(f.max.max(f.min));
    }
    let used: usize = w.iter().sum();
    if let Some(x) = w.last_mut() {
        *x += room.saturating_sub(used);
    }
    w
}

/// Narrows the widest columns first, one character at a time, never below
/// their minimums, until the widths and the spaces between them fit `room`
/// (or nothing can narrow further).
pub fn shrink(widths: &mut [usize], mins: &[usize], room: usize) {
    let seps = widths.len().saturating_sub(1);
    loop {
        let used: usize = widths.iter().sum::<usize>() + seps;
        if used <= room {
            return;
        }
        let widest = widths
            .iter_mut()
            .zip(mins)
            .filter(|(w, m)| **w > **m)
            .max_by_key(|(w, _)| **w);
        match widest {
            Some((w, _)) => *w -= 1,
            None => return,
        }
    }
}

/// `7/12`: flow 7, whose first packet is frame 12 of the first input (`7/12@1`
/// in input 1), as tshark numbers packets.
pub fn id_frame(id: u64, input: usize, frame: u64) -> String {
    if input == 0 {
        format!("{id}/{frame}")
    } else {
        format!("{id}/{frame}@{input}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str, _: &'static str) -> String {
        s.to_string()
    }

    #[test]
    fn cut_marks_what_it_shortens() {
        assert_eq!(cut("abcdef", 4), "abc~");
        assert_eq!(cut("ab", 4), "ab");
        assert_eq!(cut("ab", 0), "");
    }

    #[test]
    fn lists_break_after_commas_only() {
        assert_eq!(wrap_list("A,B,C", 10), ["A,B,C"]);
        assert_eq!(
            wrap_list("SSLV3,CERT_NAME_MISMATCH,CERT_SELF_SIGNED", 20),
            ["SSLV3,", "CERT_NAME_MISMATCH,", "CERT_SELF_SIGNED"]
        );
        assert_eq!(wrap_list("a 1, b 2, c 3", 9), ["a 1, b 2,", "c 3"]);
        assert_eq!(
            wrap_list("STARTTLS_RESPONSE_INJECTION", 10),
            ["STARTTLS_RESPONSE_INJECTION"]
        );
        assert_eq!(wrap_list("", 10), [""]);
    }

    #[test]
    fn rows_pad_cut_and_wrap_at_their_columns() {
        let cols = [Col::new(4, Fit::Cut), Col::right(3), Col::new(8, Fit::Wrap)];
        let cells = [
            Cell::plain("abcdef"),
            Cell::plain("7"),
            Cell::plain("AAAA,BBBB,CC"),
        ];
        let lines = render(&cells, &cols, true, 2, None, &plain);
        assert_eq!(lines, ["abc~   7 AAAA,", "           BBBB,CC"]);
        // Piped: nothing cut, nothing wrapped.
        let lines = render(&cells, &cols, false, 2, None, &plain);
        assert_eq!(lines, ["abcdef   7 AAAA,BBBB,CC"]);
    }

    #[test]
    fn a_first_piece_too_long_for_its_column_starts_below() {
        let cols = [Col::new(10, Fit::Cut), Col::new(8, Fit::Wrap)];
        let cells = [Cell::plain("x"), Cell::plain("STARTTLS_STRIPPED,A")];
        let lines = render(&cells, &cols, true, 0, Some(20), &plain);
        assert_eq!(lines, ["x", "  STARTTLS_STRIPPED,", "           A"]);
    }

    #[test]
    fn a_wrapped_piece_too_long_for_its_column_ends_at_the_edge() {
        let cols = [Col::new(10, Fit::Cut), Col::new(8, Fit::Wrap)];
        let cells = [Cell::plain("x"), Cell::plain("A,STARTTLS_STRIPPED")];
        let lines = render(&cells, &cols, true, 0, Some(22), &plain);
        assert_eq!(lines, ["x          A,", "     STARTTLS_STRIPPED"]);
        assert!(lines.iter().all(|l| width(l) <= 22));
    }

    #[test]
    fn the_widest_column_narrows_first() {
        let mut w = [30, 10, 20];
        shrink(&mut w, &[8, 8, 8], 50);
        assert_eq!(w, [19, 10, 19]);
        let mut w = [10, 10];
        shrink(&mut w, &[10, 9], 5);
        assert_eq!(w, [10, 9]);
    }

    #[test]
    fn room_is_shared_by_weight_and_the_rest_goes_last() {
        let flex = [
            Flex {
                min: 6,
                max: 20,
                weight: 1,
            },
            Flex {
                min: 16,
                max: usize::MAX,
                weight: 1,
            },
        ];
        assert_eq!(share(22, &flex), [6, 16]);
        assert_eq!(share(10, &flex), [6, 16]);
        assert_eq!(share(32, &flex), [11, 21]);
        assert_eq!(share(100, &flex), [20, 80]);
    }
}
