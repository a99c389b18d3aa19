//! The second reading of the inputs, for `--write-flows` and `--transcript`:
//! after the first reading chose the flows, their packets are read again.

use crate::capture::{Packet, read_path};
use crate::config::Config;
use crate::evidence::chosen::Chosen;
use crate::evidence::replay::Replay;
use std::fs::File;
use std::io::{self, BufWriter, Write};

/// Opens the `--write-flows` capture before the first reading, so a path that
/// cannot be written fails the run at once.
pub fn open_capture(cfg: &Config) -> Result<Option<File>, String> {
    match &cfg.write_flows {
        Some(path) => File::create(path)
            .map(Some)
            .map_err(|e| format!("--write-flows {path}: {e}")),
        None => Ok(None),
    }
}

/// Reads the inputs again (`keep`: the filter the first reading applied) and
/// writes the chosen flows' packets to `capture` and their transcripts to
/// standard output; returns the packets written. Transcripts asked for by id
/// but not found in the first reading are named on standard error.
pub fn second_reading(
    cfg: &Config,
    chosen: Chosen,
    capture: Option<File>,
    keep: &mut dyn FnMut(&Packet<'_>) -> bool,
) -> Result<u64, String> {
    for id in &cfg.transcript.ids {
        if !chosen.found.contains(id) {
            eprintln!(
                "warning: --transcript {id}: no such flow was listed (a flow without payload is listed only with --all)"
            );
        }
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let capture: Option<Box<dyn Write>> =
        capture.map(|f| Box::new(BufWriter::with_capacity(1 << 16, f)) as Box<dyn Write>);
    let mut replay = Replay::new(chosen, capture, &mut out).map_err(|e| e.to_string())?;
    for (i, input) in cfg.inputs.iter().enumerate() {
        // An input that failed the first reading fails the same way: already reported.
        let _ = read_path(input, &mut |p| {
            if keep(p) {
                replay.packet(i, p);
            } else {
                replay.skip();
            }
        });
    }
    let written = replay.finish();
    let flushed = out.flush();
    let written = written.map_err(|e| format!("writing the flows out: {e}"))?;
    flushed.map_err(|e| format!("writing transcripts: {e}"))?;
    Ok(written)
}
