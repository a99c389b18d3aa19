//! Sinks: where finished flow records and the summary go (table, JSON, NDJSON,
//! TSV), and what decides which flows they show and in which order.
//!
//! In: records in output order, the servers inventory and the [`Summary`]. Out:
//! bytes on standard output. Nothing here judges a flow.

pub mod certificates;
pub mod json;
pub mod jsonw;
pub mod layout;
pub mod select;
pub mod server_table;
pub mod servers;
pub mod style;
pub mod table;
pub mod tsv;

use crate::record::{FlowRecord, version_key};
use crate::stats::UdpStats;
use crate::stats::{MemoryStats, PacketStats};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

/// Receives flows as they end, then (with `--servers`) the server inventory, then
/// the summary once.
pub trait Sink {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()>;
    /// Whether [`Sink::flow_written`] takes a flow written ahead by
    /// [`json::flow_ahead`] (what it writes of a flow is that JSON).
    fn takes_written(&self) -> bool {
        false
    }
    /// A flow whose JSON [`json::flow_ahead`] wrote into `out` with another id:
    /// written with `rec.id` and `out` from `after_id` on.
    fn flow_written(&mut self, rec: &FlowRecord, _out: &[u8], _after_id: usize) -> io::Result<()> {
        self.flow(rec)
    }
    fn servers(&mut self, list: &[servers::ServerRecord]) -> io::Result<()>;
    /// With `--certificates`: the certificate inventory, after the servers.
    fn certificates(&mut self, _list: &[certificates::CertificateRecord]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, summary: &Summary) -> io::Result<()>;
}

/// Flow counts for the summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlowCounts {
    pub total: u64,
    /// Flows shown (those that carried payload, or all with `--all`).
    pub listed: u64,
    /// Flows that carried no payload either way (scans, bare handshakes).
    pub without_payload: u64,
    /// Flows ended early (`evicted`): by `--max-flows` or by `--memcap`.
    pub evicted: u64,
    /// Listed flows that `--select` kept (absent without `--select`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<u64>,
}

/// libpcap's own counters for a live capture.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CaptureStats {
    pub received: u64,
    pub dropped_by_kernel: u64,
    pub dropped_by_interface: u64,
    /// Packets tlswatch itself dropped because a worker's queue was full (`--threads` > 1).
    pub dropped_by_tlswatch: u64,
    /// The same, per worker thread.
    pub dropped_by_worker: Vec<u64>,
}

/// Everything the run observed, beside the flows themselves.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub tool: String,
    pub inputs: Vec<String>,
    pub flows: FlowCounts,
    /// Flows with payload, by `encryption`.
    pub by_encryption: BTreeMap<&'static str, u64>,
    /// TLS flows with payload, by negotiated version (`unknown` without a ServerHello).
    pub by_version: BTreeMap<String, u64>,
    /// Flows with payload carrying each finding code.
    pub by_finding: BTreeMap<&'static str, u64>,
    pub packets: PacketStats,
    /// The memory cap and what it had to do.
    pub memory: MemoryStats,
    /// The server inventory's counters (`--servers` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<servers::ServerCounts>,
    /// The certificate inventory's counters (`--certificates` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificates: Option<certificates::CertificateCounts>,
    /// UDP conversations: QUIC and DTLS ones are listed as flows; the others only counted here.
    pub udp: UdpStats,
    /// libpcap's counters (live capture only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureStats>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl Summary {
    pub fn new(inputs: Vec<String>) -> Self {
        Summary {
            kind: "summary",
            tool: format!("tlswatch {}", env!("CARGO_PKG_VERSION")),
            inputs,
            ..Summary::default()
        }
    }

    /// Counts the flows `--select` keeps (`on`: a selection was given).
    pub fn selecting(mut self, on: bool) -> Self {
        self.flows.selected = on.then_some(0);
        self
    }

    /// The summary's closing lines: how many warnings and errors the run had, each
    /// kind with its first message (the messages themselves went to standard
    /// error as they came, and may have scrolled away). None when there were none.
    pub fn notice_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (kind, list) in [("warning", &self.warnings), ("error", &self.errors)] {
            if let Some(first) = list.first() {
                let plural = if list.len() == 1 { "" } else { "s" };
                let which = if list.len() == 1 { "" } else { ", the first" };
                out.push(format!("{} {kind}{plural}{which}: {first}", list.len()));
            }
        }
        out
    }

    /// Counts one finished flow; returns whether it is listed.
    pub fn count(&mut self, rec: &FlowRecord, all: bool) -> bool {
        self.flows.total += 1;
        if !rec.has_payload() {
            self.flows.without_payload += 1;
            if !all {
                return false;
            }
        }
        self.flows.listed += 1;
        *self
            .by_encryption
            .entry(rec.encryption.as_str())
            .or_default() += 1;
        if let Some(v) = version_key(rec) {
            *self.by_version.entry(v).or_default() += 1;
        }
        for f in &rec.findings {
            *self.by_finding.entry(f.code.as_str()).or_default() += 1;
        }
        true
    }
}

/// Whether `c` is invisible text that can reorder or hide what is around it:
/// bidirectional controls, zero-width characters, the byte order mark, line and
/// paragraph separators, the soft hyphen.
fn is_hiding(c: char) -> bool {
    matches!(
        c,
        '\u{ad}'
            | '\u{61c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// Makes a value safe for a terminal line or a TSV cell: control characters (C0,
/// DEL and C1, so tab and newline too) become `\xNN`, invisible characters that
/// reorder or hide text become `\u{NNNN}`. Strings from the wire are already
/// escaped when recorded; this is the last line of defence for every table and
/// TSV cell, and leaves the usual text untouched (no copy).
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() || is_hiding(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else if is_hiding(c) {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An endpoint as the tables and TSV write it: `ip:port`, `[ip]:port` for IPv6.
pub fn endpoint(ip: std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_controls_and_hidden_characters_visible() {
        assert_eq!(escape("mail.example.com"), "mail.example.com");
        assert!(matches!(escape("caf\u{e9}"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb\u{9b}c\n\t"), "a\\x1b[2Jb\\x9bc\\x0a\\x09");
        assert_eq!(escape("\u{202e}gpj.exe"), "\\u{202e}gpj.exe");
        assert_eq!(escape("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        assert_eq!(escape("\x7f"), "\\x7f");
        // Already escaped wire text is left as it is.
        assert_eq!(escape("\\x1b[31m"), "\\x1b[31m");
    }
}
