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

/// Runs tlswatch as configured, writing to standard output.
pub fn run(cfg: &Config) -> Exit {
    if cfg.list_interfaces {
        return list_interfaces();
    }
    let live = cfg.interface.is_some();
    let stdout = io::stdout();
    let out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut sink: Box<dyn Sink> = match cfg.format {
        Format::Json => Box::new(Document::new(out, input_names(cfg))),
        Format::Ndjson => Box::new(Ndjson::new(out, live)),
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
            Box::new(Table::new(out, color, width, live))
        }
    };
    let report = if live {
        live_run(cfg, sink.as_mut())
    } else {
        process(cfg, sink.as_mut())
    };
    report.exit
}

#[cfg(feature = "live")]
fn list_interfaces() -> Exit {
    crate::live::list_interfaces()
}

#[cfg(not(feature = "live"))]
fn list_interfaces() -> Exit {
    eprintln!("error: {NO_LIVE}");
    Exit::Error
}

#[cfg(feature = "live")]
fn live_run(cfg: &Config, sink: &mut dyn Sink) -> Report {
    crate::live::run(cfg, sink)
}

/// How to get live capture in a build without it.
#[cfg(not(feature = "live"))]
const NO_LIVE: &str = "live capture needs a build with the `live` feature: \
    apt-get install libpcap-dev, then cargo install --path . --features live";

#[cfg(not(feature = "live"))]
fn live_run(cfg: &Config, sink: &mut dyn Sink) -> Report {
    let _ = sink;
    let iface = cfg.interface.as_deref().unwrap_or_default();
    eprintln!("error: {iface}: {NO_LIVE}");
    Report {
        exit: Exit::Error,
        summary: Summary::new(Vec::new()),
    }
}

/// How the inputs are named in reports.
pub fn input_names(cfg: &Config) -> Vec<String> {
    match &cfg.interface {
        Some(iface) => vec![format!("interface:{iface}")],
        None => cfg.inputs.clone(),
    }
}

/// What a run ends with.
pub struct Report {
    pub exit: Exit,
    pub summary: Summary,
}

/// Receives finished flows: counts them, applies `--fail-on`, writes them out.
pub struct Collector<'a> {
    cfg: &'a Config,
    pub summary: Summary,
    sink: &'a mut dyn Sink,
    hit_fail_on: bool,
    write_err: Option<io::Error>,
}

impl<'a> Collector<'a> {
    pub fn new(cfg: &'a Config, sink: &'a mut dyn Sink, inputs: Vec<String>) -> Self {
        Collector {
            cfg,
            summary: Summary::new(inputs),
            sink,
            hit_fail_on: false,
            write_err: None,
        }
    }

    pub fn emit(&mut self, rec: FlowRecord) {
        if self.write_err.is_some() {
            return;
        }
        if self.summary.count(&rec, self.cfg.all) {
            if rec
                .findings
                .iter()
                .any(|f| self.cfg.fail_on.iter().any(|c| c == f.code))
            {
                self.hit_fail_on = true;
            }
            if let Err(e) = self.sink.flow(&rec) {
                self.write_err = Some(e);
            }
        }
    }

    /// Output can no longer be written (e.g. the reader of a pipe went away).
    pub fn broken(&self) -> bool {
        self.write_err.is_some()
    }

    pub fn warn(&mut self, msg: String) {
        eprintln!("warning: {msg}");
        self.summary.warnings.push(msg);
    }

    pub fn error(&mut self, msg: String) {
        eprintln!("error: {msg}");
        self.summary.errors.push(msg);
    }

    /// Stops before anything was captured: no summary is written.
    pub fn abort(self) -> Report {
        Report {
            exit: Exit::Error,
            summary: self.summary,
        }
    }

    /// Writes the summary and settles the exit status.
    pub fn finish(mut self, engine: &Engine, failed: bool) -> Report {
        self.summary.packets = engine.stats.clone();
        self.summary.flows.evicted = engine.evicted;
        self.summary.memory = engine.memory();
        let mut summary = self.summary;
        if let Some(e) = self.write_err {
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
        if let Err(e) = self.sink.finish(&summary)
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            eprintln!("error: writing output: {e}");
            summary.errors.push(e.to_string());
            return Report {
                exit: Exit::Error,
                summary,
            };
        }
        let _ = io::stderr().flush();
        let exit = if failed {
            Exit::Error
        } else if self.hit_fail_on {
            Exit::Findings
        } else {
            Exit::Ok
        };
        Report { exit, summary }
    }
}

/// Reads every input into one flow table and writes results to `sink`.
pub fn process(cfg: &Config, sink: &mut dyn Sink) -> Report {
    let mut col = Collector::new(cfg, sink, cfg.inputs.clone());
    let mut engine = Engine::new(cfg.limits, cfg.opts, cfg.ports.clone());
    let mut filter = match file_filter(cfg) {
        Ok(f) => f,
        Err(msg) => {
            col.error(msg);
            return col.abort();
        }
    };
    let mut failed = false;
    for input in &cfg.inputs {
        let before = engine.stats.unsupported_link_types.clone();
        let mut on_packet = |p: &crate::capture::Packet<'_>| {
            if filter.as_mut().is_none_or(|f| f.matches(p)) {
                engine.packet(p, &mut |rec| col.emit(rec));
            } else {
                engine.stats.filtered += 1;
            }
        };
        let result = if input == "-" {
            read_capture("-", io::stdin(), &mut on_packet)
        } else {
            match std::fs::File::open(input) {
                Ok(f) => read_capture(input, f, &mut on_packet),
                Err(e) => Err(CaptureError::Io {
                    file: input.clone(),
                    source: e,
                }),
            }
        };
        for (lt, n) in &engine.stats.unsupported_link_types {
            let was = before.get(lt).copied().unwrap_or(0);
            if *n > was {
                col.warn(format!(
                    "{input}: {} packets of unsupported link type {lt} skipped",
                    n - was
                ));
            }
        }
        match result {
            Ok(outcome) => {
                if let Some(n) = outcome.truncated_at_packet {
                    col.warn(format!(
                        "{input}: capture cut off in the middle of packet {n}; everything before it was read"
                    ));
                }
                if outcome.bad_interface > 0 {
                    col.warn(format!(
                        "{input}: {} packets refer to an undescribed interface and were skipped",
                        outcome.bad_interface
                    ));
                }
            }
            Err(e) => {
                col.error(e.to_string());
                failed = true;
            }
        }
        if col.broken() {
            break;
        }
    }
    engine.finish(EndReason::EndOfInput, &mut |rec| col.emit(rec));
    col.finish(&engine, failed)
}

#[cfg(feature = "live")]
fn file_filter(cfg: &Config) -> Result<Option<crate::live::FileFilter>, String> {
    if cfg.filter_expr.is_empty() {
        // `--port` alone is applied by the flow engine; no BPF needed for files.
        return Ok(None);
    }
    let f = crate::live::FileFilter::new(cfg.bpf.clone());
    f.check()?;
    Ok(Some(f))
}

/// Stand-in for a BPF filter in builds without libpcap.
#[cfg(not(feature = "live"))]
pub struct NoFilter;

#[cfg(not(feature = "live"))]
impl NoFilter {
    fn matches(&mut self, _p: &crate::capture::Packet<'_>) -> bool {
        true
    }
}

#[cfg(not(feature = "live"))]
fn file_filter(cfg: &Config) -> Result<Option<NoFilter>, String> {
    if !cfg.filter_expr.is_empty() {
        return Err(format!(
            "a filter expression needs a build with the `live` feature (libpcap compiles it): {}",
            cfg.filter_expr
        ));
    }
    Ok(None)
}
