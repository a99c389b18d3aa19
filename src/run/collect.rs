//! Where finished flows go: the sink chosen by the configuration, the summary,
//! `--fail-on`, and the exit status. Shared by file and live runs.

use crate::assess::FailOn;
use crate::capture::compressed::Compression;
use crate::capture::{CaptureError, ReadOutcome};
use crate::config::{ColorChoice, Config, Format};
use crate::evidence::chosen::Chosen;
use crate::evidence::transcript::Transcriber;
use crate::output::certificates::CertInventory;
use crate::output::json::{Document, Ndjson, flow_ahead};
use crate::output::select::Sorted;
use crate::output::servers::Inventory;
use crate::output::table::{self, Table};
use crate::output::tsv::{Columns, Tsv};
use crate::output::{Sink, Summary};
use crate::pipeline::deliver::{Deliver, Notice, Prepare, Prepared};
use crate::record::frames::community_id;
use crate::record::{Code, FlowRecord, FrameMap, Transport};
use crate::run::progress::Progress;
use crate::stats::PacketStats;
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

/// The sink the configuration asks for, writing to standard output (holding the
/// flows until the end for `--sort`).
pub fn make_sink(cfg: &Config, live: bool, progress: &Progress) -> Box<dyn Sink> {
    let stdout = io::stdout();
    let out = io::BufWriter::with_capacity(64 * 1024, progress.writer(stdout.lock()));
    if !cfg.transcript.is_empty() {
        // The transcripts, written after the second reading, replace the report.
        return Box::new(Quiet);
    }
    let sink: Box<dyn Sink> = match cfg.format {
        Format::Json => Box::new(Document::new(out, input_names(cfg))),
        Format::Ndjson => Box::new(Ndjson::new(out, live)),
        Format::Tsv => {
            let columns = cfg
                .fields
                .clone()
                .unwrap_or_else(|| Columns::defaults(cfg.servers.is_some()));
            Box::new(Tsv::new(out, columns, live))
        }
        Format::Table => {
            let tty = io::stdout().is_terminal();
            let color = match cfg.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                }
            };
            let table =
                Table::new(out, color, table::width(tty), live).with_users(cfg.opts.show_users);
            if cfg.servers.is_some() || cfg.certificates.is_some() {
                Box::new(table.without_flows())
            } else {
                Box::new(table)
            }
        }
    };
    match cfg.sort {
        Some(order) => Box::new(Sorted::new(sink, order)),
        None => sink,
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

/// Writes one line to standard error. A closed standard error loses the line but
/// never ends the run (the exit status must still be given).
pub fn say(line: &str) {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// The flows `--fail-on` matched, and on how many flows each code did.
#[derive(Debug, Default)]
pub struct Matched {
    pub flows: u64,
    /// Each matching code with the number of flows it matched on, in order of first match.
    pub codes: Vec<(Code, u64)>,
}

impl Matched {
    /// Counts the findings of `rec` that `fail_on` names (a flow counts once per code).
    fn add(&mut self, rec: &FlowRecord, fail_on: &FailOn) {
        let mut codes: Vec<Code> = Vec::new();
        for f in rec.findings.iter().filter(|f| fail_on.matches(f)) {
            if !codes.contains(&f.code) {
                codes.push(f.code);
            }
        }
        if codes.is_empty() {
            return;
        }
        self.flows += 1;
        for code in codes {
            match self.codes.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => self.codes.push((code, 1)),
            }
        }
    }

    /// The line standard error gets when anything matched: the codes, worst first,
    /// each with its severity and the flows it was found on.
    pub fn line(&self, exit: Exit) -> Option<String> {
        if self.flows == 0 {
            return None;
        }
        let mut codes = self.codes.clone();
        codes.sort_by_key(|(c, n)| (std::cmp::Reverse(c.severity()), std::cmp::Reverse(*n)));
        let list: Vec<String> = codes
            .iter()
            .map(|(c, n)| format!("{c} ({}) on {n} {}", c.severity().as_str(), flows(*n)))
            .collect();
        Some(format!(
            "fail-on: {} {} matched (exit status {}): {}",
            self.flows,
            flows(self.flows),
            exit as u8,
            list.join(", ")
        ))
    }
}

fn flows(n: u64) -> &'static str {
    if n == 1 { "flow" } else { "flows" }
}

/// `1 packet`, `2 packets`.
fn packets(n: u64) -> String {
    if n == 1 {
        "1 packet".to_string()
    } else {
        format!("{n} packets")
    }
}

/// Receives finished flows: counts them, applies `--fail-on`, writes them out.
///
/// The exit status never depends on what became of standard output: once it
/// is closed (`| head`), flows are still counted and matched, only not written,
/// and reading files goes on until the status can no longer change.
pub struct Collector<'a> {
    cfg: &'a Config,
    pub summary: Summary,
    sink: &'a mut dyn Sink,
    matched: Matched,
    write_err: Option<io::Error>,
    /// `--servers`: the inventory, fed every listed flow.
    servers: Option<Inventory>,
    /// A live capture: a closed output ends it.
    live: bool,
    /// `--certificates`: the certificate inventory, fed every listed flow.
    certificates: Option<CertInventory>,
    /// Where each input begins among the packet ordinals, as the reader records it.
    frames: SharedFrameMap,
    /// The flows chosen for `--write-flows` and `--transcript`.
    chosen: Chosen,
}

/// Puts the contract's evidence on a finished record: packet numbers within
/// their input for its frames (`frames`: where each input begins), and its
/// Community ID.
fn place(frames: &SharedFrameMap, seed: u16, rec: &mut FlowRecord) {
    if let Ok(map) = frames.lock() {
        rec.locate_frames(&map);
    }
    let proto = match rec.transport {
        Transport::Tcp => 6,
        Transport::Udp => 17,
    };
    let (c, s) = (&rec.client, &rec.server);
    rec.community_id = Some(community_id(seed, proto, (c.ip, c.port), (s.ip, s.port)));
}

/// What the workers of a threaded run do for the collector (see
/// [`Deliver::preparer`]): [`place`], and the JSON a JSON sink will write.
struct Placer {
    frames: SharedFrameMap,
    seed: u16,
    json: bool,
}

impl Prepare for Placer {
    fn prepare(&self, rec: &mut FlowRecord) -> Prepared {
        place(&self.frames, self.seed, rec);
        let mut out = Vec::new();
        let mut after_id = 0;
        if self.json {
            out.reserve(1024);
            after_id = flow_ahead(rec, &mut out).unwrap_or(0);
        }
        Prepared { out, after_id }
    }
}

/// The reader records each input's start here; the output stage reads it to put
/// packet numbers on records (see [`FrameMap`]).
pub type SharedFrameMap = Arc<Mutex<FrameMap>>;

impl Deliver for Collector<'_> {
    fn emit_lent(&mut self, rec: &mut FlowRecord, prepared: Option<&Prepared>) {
        Collector::emit(self, rec, prepared);
    }
    /// Workers place the evidence and, for a JSON sink, write the JSON of
    /// every record; not when a second reading needs the records' packet
    /// ordinals (`--write-flows`, `--transcript`).
    fn preparer(&self) -> Option<Arc<dyn Prepare>> {
        if self.cfg.write_flows.is_some() || !self.cfg.transcript.is_empty() {
            return None;
        }
        Some(Arc::new(Placer {
            frames: Arc::clone(&self.frames),
            seed: self.cfg.community_id_seed,
            json: self.sink.takes_written() && self.cfg.select.is_none(),
        }))
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
            summary: Summary::new(inputs).selecting(cfg.select.is_some()),
            sink,
            matched: Matched::default(),
            write_err: None,
            servers: cfg.servers.map(Inventory::new),
            live: cfg.interface.is_some(),
            certificates: cfg.certificates.map(CertInventory::new),
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

    /// A finished record; `prepared` when a worker already placed its evidence
    /// (and maybe wrote its JSON: see [`Deliver::preparer`]).
    pub fn emit(&mut self, rec: &mut FlowRecord, prepared: Option<&Prepared>) {
        let span = (rec.frames.first, rec.frames.last);
        if prepared.is_none() {
            place(&self.frames, self.cfg.community_id_seed, rec);
        }
        let rec = &*rec;
        if !self.summary.count(rec, self.cfg.all) {
            return;
        }
        self.matched.add(rec, &self.cfg.fail_on);
        // `--select` decides what is listed, written out and transcribed; the
        // gate and the summary saw it all.
        let selected = self.cfg.select.as_ref().is_none_or(|s| s.matches(rec));
        self.choose(rec, span, selected);
        if !selected {
            return;
        }
        if self.cfg.select.is_some() {
            *self.summary.flows.selected.get_or_insert(0) += 1;
        }
        if self.write_err.is_some() {
            return;
        }
        if let Some(inv) = &mut self.servers {
            inv.add(rec);
        }
        if let Some(inv) = &mut self.certificates {
            inv.add(rec);
        }
        let written = match prepared {
            Some(p) if !p.out.is_empty() => self.sink.flow_written(rec, &p.out, p.after_id),
            _ => self.sink.flow(rec),
        };
        if let Err(e) = written {
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

    /// `n` flows ended without payload and are not listed (no `--all`): only counted.
    pub fn count_silent(&mut self, n: u64) {
        self.summary.flows.total += n;
        self.summary.flows.without_payload += n;
    }

    /// Whether reading may stop: nothing still to come can change what is
    /// reported or the exit status. A live capture stops when its output is gone;
    /// files are read on after a closed pipe unless an error already fixed the
    /// status at 2.
    pub fn broken(&self) -> bool {
        match &self.write_err {
            None => false,
            Some(_) if self.live => true,
            Some(e) => e.kind() != io::ErrorKind::BrokenPipe || !self.summary.errors.is_empty(),
        }
    }

    pub fn notice(&mut self, n: Notice) {
        match n {
            Notice::Warn(msg) => self.warn(msg),
            Notice::Error(msg) => self.error(msg),
        }
    }

    /// Loads the `--keylog` files into the run's key table, warning once per file
    /// about lines it could not use; an unreadable file is an error.
    pub fn load_keys(&mut self, cfg: &Config) -> Result<(), String> {
        for path in &cfg.keylog {
            let stats = cfg.keys.load_file(path)?;
            if let Some(w) = stats.warning(path) {
                self.warn(w);
            }
        }
        Ok(())
    }

    pub fn warn(&mut self, msg: String) {
        say(&format!("warning: {msg}"));
        self.summary.warnings.push(msg);
    }

    pub fn error(&mut self, msg: String) {
        say(&format!("error: {msg}"));
        self.summary.errors.push(msg);
    }

    /// Stops before anything was captured: no summary is written.
    pub fn abort(self) -> Report {
        Report {
            exit: Exit::Error,
            summary: self.summary,
        }
    }

    /// Writes the rest (servers, summary) unless the output is gone, and settles
    /// the exit status: 2 for any error (reading, writing other than a closed
    /// pipe, or `failed`), else 1 when `--fail-on` matched, else 0.
    pub fn finish(mut self, packets: PacketStats, evicted: u64, failed: bool) -> Report {
        self.summary.flows.evicted = evicted + packets.udp_flows.evicted;
        self.summary.udp = packets.udp_flows.clone();
        self.summary.packets = packets;
        let written = match self.write_err.take() {
            Some(e) => Err(e),
            None => self.write_rest(),
        };
        let mut summary = self.summary;
        if let Err(e) = written
            && e.kind() != io::ErrorKind::BrokenPipe
        {
            say(&format!("error: writing output: {e}"));
            summary.errors.push(format!("writing output: {e}"));
        }
        let exit = if failed || !summary.errors.is_empty() {
            Exit::Error
        } else if self.matched.flows > 0 {
            Exit::Findings
        } else {
            Exit::Ok
        };
        if let Some(line) = self.matched.line(exit) {
            say(&line);
        }
        let _ = io::stderr().flush();
        Report { exit, summary }
    }

    /// The server inventory (`--servers`) and the summary.
    fn write_rest(&mut self) -> io::Result<()> {
        if let Some(inv) = self.servers.take() {
            let (list, counts) = inv.finish();
            self.summary.servers = Some(counts);
            self.sink.servers(&list)?;
        }
        if let Some(inv) = self.certificates.take() {
            let (list, counts) = inv.finish();
            self.summary.certificates = Some(counts);
            self.sink.certificates(&list)?;
        }
        self.sink.finish(&self.summary)
    }
}

/// What reading `input` leaves to report: an input without packets, or without a
/// packet of a link type tlswatch decodes (errors), one whose every packet is
/// malformed, skipped link types (counts before and after the input), a cut-off
/// end, undescribed interfaces, or the error that stopped it.
/// `passed` is the number of packets that passed the filter into the flow stage.
pub fn input_notices(
    input: &str,
    result: &Result<ReadOutcome, CaptureError>,
    before: &PacketStats,
    after: &PacketStats,
    passed: u64,
) -> Vec<Notice> {
    let skipped = |out: &mut Vec<Notice>| {
        for msg in skipped_links(before, after) {
            out.push(Notice::Warn(format!("{input}: {msg} skipped")));
        }
    };
    let mut out = Vec::new();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => {
            skipped(&mut out);
            out.push(Notice::Error(e.to_string()));
            return out;
        }
    };
    let decoded = after.decoded.saturating_sub(before.decoded);
    if outcome.packets == 0 {
        let inside = outcome
            .compression
            .map(Compression::suffix)
            .unwrap_or_default();
        out.push(Notice::Error(format!(
            "{input}: no packets: the capture{inside} has a file header and nothing after it"
        )));
    } else if passed > 0 && decoded == 0 {
        let links: Vec<String> = skipped_links(before, after).collect();
        let why = if links.is_empty() {
            String::new()
        } else {
            format!(" ({})", links.join(", "))
        };
        out.push(Notice::Error(format!(
            "{input}: no packet could be decoded{why}; tlswatch decodes {}",
            crate::decode::linktype::SUPPORTED
        )));
    } else {
        skipped(&mut out);
        let bad = after.undecodable.saturating_sub(before.undecodable);
        if bad > 0 && bad == passed {
            out.push(Notice::Warn(format!(
                "{input}: every packet is malformed ({}): nothing in it was analysed",
                packets(bad)
            )));
        }
    }
    out.extend(cut_off(input, outcome).map(Notice::Warn));
    if outcome.bad_interface > 0 {
        out.push(Notice::Warn(format!(
            "{input}: {} packets refer to an undescribed interface and were skipped",
            outcome.bad_interface
        )));
    }
    out
}

/// Packets of link types not decoded, by type: what changed from `before` to `after`.
fn skipped_links<'s>(
    before: &'s PacketStats,
    after: &'s PacketStats,
) -> impl Iterator<Item = String> + 's {
    after
        .unsupported_link_types
        .iter()
        .filter_map(move |(lt, n)| {
            let was = before.unsupported_link_types.get(lt).copied().unwrap_or(0);
            (*n > was).then(|| format!("{} of unsupported link type {lt}", packets(n - was)))
        })
}

/// The end of a capture cut off: in the middle of a packet, or in the middle
/// of its compressed stream.
fn cut_off(input: &str, outcome: &ReadOutcome) -> Option<String> {
    let packet = outcome
        .truncated_at_packet
        .map(|n| format!(" in the middle of packet {n}"));
    match (&outcome.stream_cut, packet) {
        (Some(how), packet) => Some(format!(
            "{input}: {how}{}; everything before it was read",
            packet.unwrap_or_default()
        )),
        (None, Some(packet)) => Some(format!(
            "{input}: capture cut off{packet}; everything before it was read"
        )),
        (None, None) => None,
    }
}
