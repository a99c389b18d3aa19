//! One run: inputs through the flow engine into a sink; exit status.

use crate::capture::{CaptureError, read_capture};
use crate::cli::{ColorChoice, Config, Format};
use crate::flow::Engine;
use crate::output::json::{Document, Ndjson};
use crate::output::table::Table;
use crate::output::{Sink, Summary};
use crate::record::{EndReason, FlowRecord};
use std::io::{self, IsTerminal, Write};

/// Process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything read; no `--fail-on` finding.
    Ok = 0,
    /// A flow carried a finding named by `--fail-on`.
    Findings = 1,
    /// An input could not be read (or a usage error).
    Error = 2,
}

/// Runs tlswatch over the configured inputs, writing to standard output.
pub fn run(cfg: &Config) -> Exit {
    if let Some(iface) = &cfg.interface {
        eprintln!(
            "error: {iface}: live capture needs a build with the `live` feature: \
             install libpcap-dev, then `cargo install --path . --features live`"
        );
        return Exit::Error;
    }
    let stdout = io::stdout();
    let out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut sink: Box<dyn Sink> = match cfg.format {
        Format::Json => Box::new(Document::new(out)),
        Format::Ndjson => Box::new(Ndjson::new(out, false)),
        Format::Table => {
            let tty = io::stdout().is_terminal();
            let color = match cfg.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                }
            };
            let width = if tty {
                terminal_size::terminal_size()
                    .map(|(w, _)| usize::from(w.0))
                    .or(Some(120))
            } else {
                None
            };
            Box::new(Table::new(out, color, width))
        }
    };
    let report = process(cfg, sink.as_mut());
    report.exit
}

/// What [`process`] ends with.
pub struct Report {
    pub exit: Exit,
    pub summary: Summary,
}

/// Reads every input into one flow table and writes results to `sink`. Public so
/// tests can run the whole pipeline without a process.
pub fn process(cfg: &Config, sink: &mut dyn Sink) -> Report {
    let mut summary = Summary::new(cfg.inputs.clone());
    let mut engine = Engine::new(cfg.limits, cfg.opts, cfg.ports.clone());
    let mut failed = false;
    let mut hit_fail_on = false;
    let mut write_err: Option<io::Error> = None;
    let broken = std::cell::Cell::new(false);
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    {
        let mut emit = |rec: FlowRecord| {
            if write_err.is_some() {
                return;
            }
            if summary.count(&rec, cfg.all) {
                if rec
                    .findings
                    .iter()
                    .any(|f| cfg.fail_on.iter().any(|c| c == f.code))
                {
                    hit_fail_on = true;
                }
                if let Err(e) = sink.flow(&rec) {
                    write_err = Some(e);
                    broken.set(true);
                }
            }
        };
        for input in &cfg.inputs {
            let before = engine.stats.unsupported_link_types.clone();
            let result = if input == "-" {
                read_capture("-", io::stdin(), &mut |p| engine.packet(p, &mut emit))
            } else {
                match std::fs::File::open(input) {
                    Ok(f) => read_capture(input, f, &mut |p| engine.packet(p, &mut emit)),
                    Err(e) => Err(CaptureError::Io {
                        file: input.clone(),
                        source: e,
                    }),
                }
            };
            for (lt, n) in &engine.stats.unsupported_link_types {
                let was = before.get(lt).copied().unwrap_or(0);
                if *n > was {
                    let msg = format!(
                        "{input}: {} packets of unsupported link type {lt} skipped",
                        n - was
                    );
                    eprintln!("warning: {msg}");
                    warnings.push(msg);
                }
            }
            match result {
                Ok(outcome) => {
                    if let Some(n) = outcome.truncated_at_packet {
                        let msg = format!(
                            "{input}: capture cut off in the middle of packet {n}; everything before it was read"
                        );
                        eprintln!("warning: {msg}");
                        warnings.push(msg);
                    }
                    if outcome.bad_interface > 0 {
                        let msg = format!(
                            "{input}: {} packets refer to an undescribed interface and were skipped",
                            outcome.bad_interface
                        );
                        eprintln!("warning: {msg}");
                        warnings.push(msg);
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    errors.push(e.to_string());
                    failed = true;
                }
            }
            if broken.get() {
                break;
            }
        }
        engine.finish(EndReason::EndOfInput, &mut emit);
    }
    summary.warnings = warnings;
    summary.errors = errors;
    summary.packets = engine.stats.clone();
    summary.flows.evicted = engine.evicted;
    if let Some(e) = write_err {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Report {
                exit: Exit::Ok,
                summary,
            };
        }
        eprintln!("error: writing output: {e}");
        return Report {
            exit: Exit::Error,
            summary,
        };
    }
    if let Err(e) = sink.finish(&summary)
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        eprintln!("error: writing output: {e}");
        return Report {
            exit: Exit::Error,
            summary,
        };
    }
    let _ = io::stderr().flush();
    let exit = if failed {
        Exit::Error
    } else if hit_fail_on {
        Exit::Findings
    } else {
        Exit::Ok
    };
    Report { exit, summary }
}
