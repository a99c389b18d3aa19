//! A transcript's text as it is written: one line per protocol line or message,
//! with its packet and direction, and the caps that keep it (and its memory)
//! bounded whatever the flow carried.

use crate::record::Dir;
use std::fmt::Write;

/// Lines of cleartext shown per transcript; past them lines are only counted.
pub const MAX_LINES: usize = 400;
/// Characters of one line shown (after escaping); a longer line is cut with `...`.
pub const MAX_SHOWN: usize = 200;

/// A packet as its input numbers it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fref {
    pub input: usize,
    pub number: u64,
}

/// The cleartext part of a transcript, bounded by [`MAX_LINES`].
#[derive(Debug, Default)]
pub struct Out {
    pub text: String,
    /// The record's input: packets of other inputs say which they are in.
    pub input: usize,
    shown: usize,
    /// Lines past the cap: how many, their bytes per direction, their packets.
    hidden: usize,
    hidden_client: u64,
    hidden_server: u64,
    hidden_from: Option<Fref>,
    hidden_to: Fref,
}

impl Out {
    pub fn new(input: usize) -> Self {
        Out {
            input,
            ..Out::default()
        }
    }

    /// `frame` as this transcript writes it: the number, and the input when it
    /// is not the record's.
    pub fn frame(&self, f: Fref) -> String {
        if f.input == self.input {
            f.number.to_string()
        } else {
            format!("{}@{}", f.number, f.input)
        }
    }

    /// One line of `dir`'s cleartext (already escaped), completed in packet `at`
    /// and `bytes` long on the wire.
    pub fn line(&mut self, at: Fref, dir: Dir, text: &str, bytes: usize) {
        if self.shown >= MAX_LINES {
            self.hidden += 1;
            match dir {
                Dir::Client => self.hidden_client += bytes as u64,
                Dir::Server => self.hidden_server += bytes as u64,
            }
            self.hidden_from.get_or_insert(at);
            self.hidden_to = at;
            return;
        }
        self.shown += 1;
        let who = match dir {
            Dir::Client => 'C',
            Dir::Server => 'S',
        };
        let shown = cut(text, 2 * MAX_SHOWN);
        let _ = writeln!(self.text, "{:>9}  {who}  {shown}", self.frame(at));
    }

    /// A note without a direction (a hole in the capture, the end of cleartext).
    pub fn note(&mut self, at: Fref, text: &str) {
        if self.shown >= MAX_LINES {
            return;
        }
        let _ = writeln!(self.text, "{:>9}     {text}", self.frame(at));
    }

    /// The line that says what the cap left out, if it left anything out.
    pub fn close(&mut self) {
        if let Some(from) = self.hidden_from {
            let (c, s) = (self.hidden_client, self.hidden_server);
            let _ = writeln!(
                self.text,
                "          ... {} more lines not shown ({c} bytes from the client, {s} from the server; frames {} to {})",
                self.hidden,
                self.frame(from),
                self.frame(self.hidden_to)
            );
        }
    }

    pub fn lines(&self) -> usize {
        self.shown + self.hidden
    }
}

/// `s` cut to `max` characters, with `...` when it was longer. `s` is escaped
/// ASCII, so cutting at a byte is cutting at a character.
pub fn cut(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match s.get(..max) {
        Some(head) if s.len() > max => format!("{head}...").into(),
        _ => s.into(),
    }
}
