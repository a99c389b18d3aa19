//! Sinks: where finished flow records and the summary go (table, JSON, NDJSON).

pub mod certificates;
pub mod json;
pub mod servers;
pub mod table;

use crate::record::{FlowRecord, version_key};
use crate::stats::UdpStats;
use crate::stats::{MemoryStats, PacketStats};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;

/// Receives flows as they end, then (with `--servers`) the server inventory, then
/// the summary once.
pub trait Sink {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()>;
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
