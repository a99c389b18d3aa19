//! Sinks: where finished flow records and the summary go (table, JSON, NDJSON).

pub mod json;
pub mod servers;
pub mod table;

use crate::flow::{MemoryStats, PacketStats};
use crate::record::{Encryption, FlowRecord, Timestamp};
use crate::udp::UdpStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io;

/// Receives flows as they end, then (with `--servers`) the server inventory, then
/// the summary once.
pub trait Sink {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()>;
    fn servers(&mut self, list: &[servers::ServerRecord]) -> io::Result<()>;
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
            *self.by_finding.entry(f.code).or_default() += 1;
        }
        true
    }
}

/// The version a flow is counted under in `by_version` and a server's `versions`:
/// TLS-protected flows only, `unknown` without a ServerHello.
pub fn version_key(rec: &FlowRecord) -> Option<String> {
    negotiated_version(rec).map(|v| v.map_or_else(|| "unknown".to_string(), |v| v.to_string()))
}

/// The negotiated version of a TLS-protected flow (`Some(None)` without a
/// ServerHello); `None` for flows TLS did not protect.
pub fn negotiated_version(rec: &FlowRecord) -> Option<Option<crate::version::Version>> {
    let tls_used = matches!(
        rec.encryption,
        Encryption::Tls
            | Encryption::Starttls
            | Encryption::StarttlsFailed
            | Encryption::Quic
            | Encryption::Dtls
    );
    tls_used.then(|| rec.tls.as_ref().and_then(|t| t.version))
}

/// RFC 3339 UTC time with microseconds (nanoseconds when the capture has them).
pub fn rfc3339(ts: Timestamp) -> String {
    let mut buf = [0; RFC3339_MAX];
    if let Some(text) = rfc3339_in(ts, &mut buf) {
        return text.to_string();
    }
    let days = ts.secs.div_euclid(86_400);
    let rem = ts.secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    if ts.nanos.is_multiple_of(1000) {
        format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z",
            ts.nanos / 1000
        )
    } else {
        format!(
            "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:09}Z",
            ts.nanos
        )
    }
}

/// Longest text [`rfc3339_in`] writes: `YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ`.
pub const RFC3339_MAX: usize = 30;

/// [`rfc3339`] written into `buf` without allocating, for years 0 to 9999
/// (`None` for any other: [`rfc3339`] writes those). Every record carries two
/// of these.
pub fn rfc3339_in(ts: Timestamp, buf: &mut [u8; RFC3339_MAX]) -> Option<&str> {
    let days = ts.secs.div_euclid(86_400);
    let rem = ts.secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) || ts.nanos >= 1_000_000_000 {
        return None;
    }
    let (frac, width) = if ts.nanos.is_multiple_of(1000) {
        (ts.nanos / 1000, 6)
    } else {
        (ts.nanos, 9)
    };
    let fields: [(u64, usize, u8); 7] = [
        (y as u64, 4, b'-'),
        (u64::from(m), 2, b'-'),
        (u64::from(d), 2, b'T'),
        ((rem / 3600) as u64, 2, b':'),
        ((rem % 3600 / 60) as u64, 2, b':'),
        ((rem % 60) as u64, 2, b'.'),
        (u64::from(frac), width, b'Z'),
    ];
    let mut at = 0;
    for (value, width, sep) in fields {
        let mut v = value;
        for slot in buf.get_mut(at..at + width)?.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        *buf.get_mut(at + width)? = sep;
        at += width + 1;
    }
    std::str::from_utf8(buf.get(..at)?).ok()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        let t = |secs, nanos| rfc3339(Timestamp { secs, nanos });
        assert_eq!(t(0, 0), "1970-01-01T00:00:00.000000Z");
        // 2026-11-27T10:00:01.123456Z, checked with `date -u -d @1795773601`
        assert_eq!(t(1_795_773_601, 123_456_000), "2026-11-27T10:00:01.123456Z");
        assert_eq!(t(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(t(-1, 0), "1969-12-31T23:59:59.000000Z");
        // Outside years 0 to 9999, the formatted path: the sign and all digits.
        assert_eq!(t(-62_167_219_201, 0), "-001-12-31T23:59:59.000000Z");
        assert_eq!(t(253_402_300_800, 5_000), "10000-01-01T00:00:00.000005Z");
    }

    /// The written path and the formatted one agree wherever both apply.
    #[test]
    fn rfc3339_in_matches_format() {
        let mut buf = [0; RFC3339_MAX];
        for secs in [
            0,
            1,
            59,
            86_399,
            951_782_400,
            1_795_773_601,
            253_402_300_799,
        ] {
            for nanos in [0, 1, 999, 1000, 123_456_000, 999_999_999] {
                let ts = Timestamp { secs, nanos };
                let days = secs.div_euclid(86_400);
                let rem = secs.rem_euclid(86_400);
                let (y, m, d) = civil_from_days(days);
                let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
                let want = if nanos % 1000 == 0 {
                    format!(
                        "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{:06}Z",
                        nanos / 1000
                    )
                } else {
                    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{nanos:09}Z")
                };
                assert_eq!(
                    rfc3339_in(ts, &mut buf),
                    Some(want.as_str()),
                    "{secs} {nanos}"
                );
            }
        }
    }
}
