//! Shared input formats of the fuzz targets: a two-sided stream transcript, and a
//! helper that checks a finished record can be assessed and serialised.

use tlswatch::record::{Dir, Endpoint, FlowRecord};
use tlswatch::time::Timestamp;

/// One event of a transcript.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Data(Dir, &'a [u8]),
    Gap(Dir, u64),
}

/// Reads a transcript: a sequence of `[h, l, bytes...]` where bit 0 of `h` is the
/// direction (0 = client), bit 1 marks a gap of `len` bytes (no bytes follow), and
/// `len = (h >> 2) << 8 | l` (up to 16383). A short last chunk takes what is left.
/// `seed_corpus.py` writes this format from the recorded fixtures.
pub fn transcript(mut b: &[u8]) -> Vec<Event<'_>> {
    let mut out = Vec::new();
    while let [h, l, rest @ ..] = b {
        let dir = if h & 1 == 0 { Dir::Client } else { Dir::Server };
        let len = (usize::from(h >> 2) << 8) | usize::from(*l);
        if h & 2 != 0 {
            out.push(Event::Gap(dir, len.max(1) as u64));
            b = rest;
            continue;
        }
        let n = len.min(rest.len());
        let (data, tail) = rest.split_at(n);
        if !data.is_empty() {
            out.push(Event::Data(dir, data));
        }
        b = tail;
    }
    out
}

/// A fresh record between two fixed endpoints (server port `port`).
pub fn record(port: u16) -> FlowRecord {
    let ep = |ip: [u8; 4], port| Endpoint {
        ip: std::net::IpAddr::from(ip),
        port,
    };
    FlowRecord::new(
        1,
        Timestamp::default(),
        ep([10, 0, 0, 1], 40000),
        ep([10, 0, 0, 2], port),
    )
}

/// What every finished record must survive: assessment and JSON output.
pub fn settle(rec: &mut FlowRecord) {
    rec.findings = tlswatch::assess::assess(rec, &Default::default());
    let json = serde_json::to_string(&*rec).unwrap_or_default();
    assert!(!json.is_empty(), "record did not serialise");
}
