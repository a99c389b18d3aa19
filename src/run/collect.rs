//! Where finished flows go: the sink chosen by the configuration, the summary,
//! `--fail-on`, and the exit status. Shared by file and live runs.

use crate::capture::{CaptureError, ReadOutcome};
use crate::config::{ColorChoice, Config, Format};
use crate::evidence::chosen::Chosen;
use crate::evidence::transcript::Transcriber;
use crate::output::json::{Document, Ndjson};
use crate::output::servers::Inventory;
use crate::output::table::Table;
use crate::output::{Sink, Summary};
use crate::pipeline::deliver::{Deliver, Notice};
use crate::record::frames::community_id;
use crate::record::{FlowRecord, FrameMap, Transport};
use crate::run::progress::Progress;
use crate::stats::PacketStats;
use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};

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

/// The sink the configuration asks for, writing to standard output.
pub fn make_sink(cfg: &Config, live: bool, progress: &Progress) -> Box<dyn Sink> {
    let stdout = io::stdout();
    let out = io::BufWriter::with_capacity(64 * 1024, progress.writer(stdout.lock()));
    if !cfg.transcript.is_empty() {
        // The transcripts, written after the second reading, replace the report.
        return Box::new(Quiet);
    }
    match cfg.format {
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
            let table = Table::new(out, color, width, live);
            if cfg.servers.is_some() {
                Box::new(table.without_flows())
            } else {
                Box::new(table)
            }
        }
    }
}

/// The sink of a run whose output is its transcripts: nothing is printed.
struct Quiet;

impl Sink for Quiet {
    fn flow(&mut self, _: &FlowRecord) -> io::Result<()> {
        Ok(())
    }
    fn servers(&mut self, _: &[crate::output::servers::ServerRecord]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: &crate::output::Summary) -> io::Result<()> {
        Ok(())
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
    /// `--servers`: the inventory, fed every listed flow.
    servers: Option<Inventory>,
    /// Where each input begins among the packet ordinals, as the reader records it.
    frames: SharedFrameMap,
    /// The flows chosen for `--write-flows` and `--transcript`.
    chosen: Chosen,
}

/// The reader records each input's start here; the output stage reads it to put
/// packet numbers on records (see [`FrameMap`]).
pub type SharedFrameMap = Arc<Mutex<FrameMap>>;

impl Deliver for Collector<'_> {
    fn emit(&mut self, rec: FlowRecord) {
        Collector::emit(self, rec);
    }
    fn count_silent(&mut self, n: u64) {
        Collector::count_silent(self, n);
    }
    fn notice(&mut self, n: Notice) {
        Collector::notice(self, n);
    }
    fn broken(&self) -> bool {
        Collector::broken(self)
    }
}

impl<'a> Collector<'a> {
    pub fn new(cfg: &'a Config, sink: &'a mut dyn Sink, inputs: Vec<String>) -> Self {
        Collector {
            cfg,
            summary: Summary::new(inputs),
            sink,
            hit_fail_on: false,
            write_err: None,
            servers: cfg.servers.map(Inventory::new),
            frames: SharedFrameMap::default(),
            chosen: Chosen::default(),
        }
    }

    /// The flows chosen for a second reading of the inputs.
    pub fn take_chosen(&mut self) -> Chosen {
        std::mem::take(&mut self.chosen)
    }

    /// The map the reader of this run records the inputs' starts in.
    pub fn frame_map(&self) -> SharedFrameMap {
        Arc::clone(&self.frames)
    }

    pub fn emit(&mut self, mut rec: FlowRecord) {
        if self.write_err.is_some() {
            return;
        }
        let span = (rec.frames.first, rec.frames.last);
        self.place(&mut rec);
        if !self.summary.count(&rec, self.cfg.all) {
            return;
        }
        let selected = self.cfg.select.as_ref().is_none_or(|s| s.matches(&rec));
        self.choose(&rec, span, selected);
        if !selected {
            return;
        }
        if rec.findings.iter().any(|f| self.cfg.fail_on.matches(f)) {
            self.hit_fail_on = true;
        }
        if let Some(inv) = &mut self.servers {
            inv.add(&rec);
        }
        if let Err(e) = self.sink.flow(&rec) {
            self.write_err = Some(e);
        }
    }

    /// Keeps what a second reading needs of a listed flow chosen for
    /// `--write-flows` or `--transcript` (`span`: its first and last packet ordinals).
    fn choose(&mut self, rec: &FlowRecord, span: (u64, u64), selected: bool) {
        let write = self.cfg.write_flows.is_some() && selected;
        let transcript = self.cfg.transcript.wants(rec, selected).then(|| {
            let input = self.cfg.inputs.get(rec.input).cloned().unwrap_or_default();
            Transcriber::new(Box::new(rec.clone()), input, self.cfg.opts.show_users)
        });
        if transcript.is_some() {
            self.chosen.found.push(rec.id);
        }
        self.chosen.add(rec, span, write, transcript);
    }

    /// Puts the contract's evidence on a finished record: packet numbers within
    /// their input for its frames, and its Community ID.
    fn place(&self, rec: &mut FlowRecord) {
        if let Ok(map) = self.frames.lock() {
            rec.locate_frames(&map);
        }
        let proto = match rec.transport {
            Transport::Tcp => 6,
            Transport::Udp => 17,
        };
        let (c, s) = (&rec.client, &rec.server);
        rec.community_id = Some(community_id(
            self.cfg.community_id_seed,
            proto,
            (c.ip, c.port),
            (s.ip, s.port),
        ));
    }

    /// `n` flows ended without payload and are not listed (no `--all`): only counted.
    pub fn count_silent(&mut self, n: u64) {
        self.summary.flows.total += n;
        self.summary.flows.without_payload += n;
    }

    /// Output can no longer be written (e.g. the reader of a pipe went away).
    pub fn broken(&self) -> bool {
        self.write_err.is_some()
    }

    pub fn notice(&mut self, n: Notice) {
        match n {
            Notice::Warn(msg) => self.warn(msg),
            Notice::Error(msg) => self.error(msg),
        }
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
    pub fn finish(mut self, packets: PacketStats, evicted: u64, failed: bool) -> Report {
        self.summary.flows.evicted = evicted + packets.udp_flows.evicted;
        self.summary.udp = packets.udp_flows.clone();
        self.summary.packets = packets;
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
        let written = match self.servers.take() {
            Some(inv) => {
                let (list, counts) = inv.finish();
                summary.servers = Some(counts);
                self.sink.servers(&list)
            }
            None => Ok(()),
        };
        if let Err(e) = written.and_then(|()| self.sink.finish(&summary))
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

/// What reading `input` leaves to report: skipped link types (counts before and
/// after the input), a cut-off end, undescribed interfaces, or the error that stopped it.
pub fn input_notices(
    input: &str,
    result: &Result<ReadOutcome, CaptureError>,
    links_before: &BTreeMap<i32, u64>,
    links_after: &BTreeMap<i32, u64>,
) -> Vec<Notice> {
    let mut out = Vec::new();
    for (lt, n) in links_after {
        let was = links_before.get(lt).copied().unwrap_or(0);
        if *n > was {
            out.push(Notice::Warn(format!(
                "{input}: {} packets of unsupported link type {lt} skipped",
                n - was
            )));
        }
    }
    match result {
        Ok(outcome) => {
            if let Some(n) = outcome.truncated_at_packet {
                out.push(Notice::Warn(format!(
                    "{input}: capture cut off in the middle of packet {n}; everything before it was read"
                )));
            }
            if outcome.bad_interface > 0 {
                out.push(Notice::Warn(format!(
                    "{input}: {} packets refer to an undescribed interface and were skipped",
                    outcome.bad_interface
                )));
            }
        }
        Err(e) => out.push(Notice::Error(e.to_string())),
    }
    out
}
