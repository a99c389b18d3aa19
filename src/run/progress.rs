//! Progress on standard error while big capture files are read: bytes read, rate
//! and time left (a plain byte counter for standard input, whose size is unknown).
//! Shown only to a person watching: standard error a terminal, no `--quiet`, no
//! `CI` in the environment; never for small inputs or live capture.

use crate::capture::{CaptureError, Next, Packet, ReadOutcome, open_file, read_until};
use crate::config::Config;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, IsTerminal, Read, Write};

/// Inputs smaller than this in total (or standard input until this much was read)
/// finish too soon for a progress display to help.
pub const MIN_BYTES: u64 = 256 << 20;

/// Redraws per second at most: drawing must cost nothing next to reading.
const REFRESH_HZ: u8 = 4;

/// The progress display of one run; inert when not shown.
#[derive(Clone, Debug)]
pub struct Progress {
    /// `None` when no display is wanted at all.
    bar: Option<ProgressBar>,
    /// A hidden counter (standard input) to draw on standard error once
    /// [`MIN_BYTES`] have been read.
    reveal: bool,
}

/// Whether a person may be watching standard error.
pub fn wanted(quiet: bool, stderr_is_terminal: bool, ci: bool) -> bool {
    !quiet && stderr_is_terminal && !ci
}

impl Progress {
    /// No display.
    pub fn off() -> Self {
        Progress {
            bar: None,
            reveal: false,
        }
    }

    /// The display for reading `cfg`'s files, if it is wanted and they are big
    /// enough (standard input: a byte counter that appears after [`MIN_BYTES`]).
    pub fn for_files(cfg: &Config) -> Self {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
        if cfg.interface.is_some() || !wanted(cfg.quiet, io::stderr().is_terminal(), ci) {
            return Progress::off();
        }
        let stdin = cfg.inputs.iter().any(|i| i == "-");
        let total: u64 = cfg
            .inputs
            .iter()
            .filter(|i| *i != "-")
            .filter_map(|i| std::fs::metadata(i).ok())
            .map(|m| m.len())
            .sum();
        Progress::new(total, stdin, ProgressDrawTarget::stderr_with_hz(REFRESH_HZ))
    }

    /// A display of `total` file bytes (plus standard input when `stdin`) drawn to
    /// `target`.
    fn new(total: u64, stdin: bool, target: ProgressDrawTarget) -> Self {
        if stdin {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template("{binary_bytes} read ({binary_bytes_per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            // Drawn only once MIN_BYTES have been read (see `Counting::read`).
            return Progress {
                bar: Some(bar),
                reveal: !target.is_hidden(),
            };
        }
        if total < MIN_BYTES {
            return Progress::off();
        }
        let bar = ProgressBar::with_draw_target(Some(total), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta} left) [{wide_bar}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Progress {
            bar: Some(bar),
            reveal: false,
        }
    }

    /// Counts the bytes read from `input` into the display.
    pub fn reader<R: Read>(&self, input: R) -> Counting<R> {
        Counting {
            input,
            bar: self.bar.clone(),
            reveal: self.reveal,
        }
    }

    /// Standard output that does not tear the display: whole lines are written
    /// with the display taken down and redrawn after.
    pub fn writer<W: Write>(&self, out: W) -> Lines<W> {
        Lines {
            out,
            bar: self.bar.clone(),
            pending: Vec::new(),
        }
    }

    /// Reads the capture at `path` (`-`: standard input) as
    /// [`crate::capture::read_path`] does, until `f` says stop, counting the bytes
    /// of the file (compressed ones, for a compressed file) into the display.
    pub fn read_path(
        &self,
        path: &str,
        f: &mut dyn FnMut(&Packet<'_>) -> Next,
    ) -> Result<ReadOutcome, CaptureError> {
        if path == "-" {
            return read_until("-", self.reader(io::stdin()), f);
        }
        read_until(path, self.reader(open_file(path)?), f)
    }

    /// Runs `f` (which writes to the terminal) with the display taken down.
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.bar {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Takes the display down for good (before the summary or table is printed).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Whether a display exists (it may still be waiting to appear).
    pub fn is_on(&self) -> bool {
        self.bar.is_some()
    }
}

/// A reader that counts what passes through into the display.
pub struct Counting<R> {
    input: R,
    bar: Option<ProgressBar>,
    /// Draw the (hidden) counter on standard error once MIN_BYTES are read.
    reveal: bool,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.input.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
            if self.reveal && bar.position() >= MIN_BYTES {
                self.reveal = false;
                bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(REFRESH_HZ));
            }
        }
        Ok(n)
    }
}

/// A writer that hands only whole lines on, each batch with the display taken down.
pub struct Lines<W: Write> {
    out: W,
    bar: Option<ProgressBar>,
    /// The start of a line not yet ended.
    pending: Vec<u8>,
}

impl<W: Write> Lines<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => {
                let out = &mut self.out;
                bar.suspend(|| out.write_all(bytes).and_then(|()| out.flush()))
            }
            _ => self.out.write_all(bytes),
        }
    }
}

impl<W: Write> Write for Lines<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bar.is_none() {
            return self.out.write(buf);
        }
        match buf.iter().rposition(|b| *b == b'\n') {
            Some(end) => {
                let (lines, rest) = buf.split_at(end + 1);
                let mut batch = std::mem::take(&mut self.pending);
                batch.extend_from_slice(lines);
                self.put(&batch)?;
                self.pending.extend_from_slice(rest);
            }
            None => self.pending.extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            self.put(&batch)?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_only_to_a_person_watching() {
        assert!(wanted(false, true, false));
        assert!(!wanted(true, true, false), "--quiet");
        assert!(!wanted(false, false, false), "stderr is a pipe or file");
        assert!(!wanted(false, true, true), "CI");
    }

    #[test]
    fn small_inputs_get_no_display() {
        assert!(!Progress::new(MIN_BYTES - 1, false, ProgressDrawTarget::hidden()).is_on());
        assert!(Progress::new(MIN_BYTES, false, ProgressDrawTarget::hidden()).is_on());
    }

    #[test]
    fn reader_counts_every_byte_and_passes_them_unchanged() {
        let p = Progress::new(MIN_BYTES, false, ProgressDrawTarget::hidden());
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut got = Vec::new();
        p.reader(&data[..]).read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        assert_eq!(p.bar.as_ref().map(ProgressBar::position), Some(10_000));
    }

    #[test]
    fn writer_passes_everything_through_in_order() {
        for p in [
            Progress::off(),
            Progress::new(MIN_BYTES, false, ProgressDrawTarget::hidden()),
        ] {
            let mut w = p.writer(Vec::new());
            w.write_all(b"row 1\nrow").unwrap();
            w.write_all(b" 2\n").unwrap();
            w.write_all(b"tail").unwrap();
            w.flush().unwrap();
            assert_eq!(w.out, b"row 1\nrow 2\ntail");
        }
    }
}
