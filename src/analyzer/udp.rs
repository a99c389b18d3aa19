//! The UDP dispatch, beside the TCP one (`analyzer::tcp`): which protocol a
//! conversation speaks (QUIC or DTLS, from its first datagrams and ports), and the
//! analyzer that reads it.
//!
//! In: datagrams of one conversation, with their direction. Out: the verdict,
//! written into the conversation's flow record.

use crate::analyzer::dtls::{self, DtlsAnalyzer};
use crate::analyzer::quic::{self, QuicAnalyzer};
use crate::decode::path::Datagram;
use crate::record::{Dir, FlowRecord};

/// Datagrams of a conversation looked at before it is taken for neither QUIC nor DTLS.
pub const SNIFF_DATAGRAMS: u32 = 8;

/// UDP ports where QUIC usually runs: a long header there is QUIC whatever its version.
fn quic_port(p: u16) -> bool {
    matches!(p, 443 | 80 | 784 | 853 | 4433 | 8443 | 6121)
}

/// Ports where a UDP server usually listens, to guess roles without a handshake.
pub fn service_port(p: u16) -> bool {
    p < 1024
        || matches!(
            p,
            1194 | 1812
                | 1813
                | 3478
                | 4433
                | 4500
                | 4740
                | 5004
                | 5060
                | 5061
                | 5349
                | 5684
                | 6514
                | 8443
                | 10161
                | 10162
                | 51820
        )
}

/// Which protocol a conversation was taken for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Quic,
    Dtls,
}

/// Is this datagram QUIC or DTLS, and who sent it (when the content says)?
pub fn sniff(dg: &Datagram<'_>) -> Option<(Kind, Option<Dir>)> {
    // A long header of an unknown version counts as QUIC only towards (or from) a
    // QUIC port on the server's side: a DNS query from source port 8443 is not QUIC.
    let hint = quic_port(dg.dport) || (quic_port(dg.sport) && !service_port(dg.dport));
    if let Some(s) = quic::sniff(dg.payload, hint, dg.truncated) {
        let sender = match s {
            quic::Sender::Client => Some(Dir::Client),
            quic::Sender::Server => Some(Dir::Server),
            quic::Sender::Either => None,
        };
        return Some((Kind::Quic, sender));
    }
    let s = dtls::sniff(dg.payload)?;
    let sender = match s {
        dtls::Sender::Client => Some(Dir::Client),
        dtls::Sender::Server => Some(Dir::Server),
        dtls::Sender::Either => None,
    };
    Some((Kind::Dtls, sender))
}

/// The analyzer of a conversation taken for QUIC or DTLS.
#[derive(Debug)]
pub enum UdpAnalyzer {
    Quic(Box<QuicAnalyzer>),
    Dtls(Box<DtlsAnalyzer>),
}

impl UdpAnalyzer {
    pub fn new(kind: Kind) -> Self {
        match kind {
            Kind::Quic => UdpAnalyzer::Quic(Box::default()),
            Kind::Dtls => UdpAnalyzer::Dtls(Box::default()),
        }
    }

    /// Hands the run's key table to a QUIC analysis (DTLS takes none).
    pub fn with_keys(mut self, keys: Option<std::sync::Arc<crate::keylog::KeyLog>>) -> Self {
        if let UdpAnalyzer::Quic(q) = &mut self {
            q.set_keys(keys);
        }
        self
    }

    /// One datagram, sent by `dir` (its payload, and whether the capture's snap
    /// length cut it).
    pub fn on_datagram(&mut self, dir: Dir, dg: &Datagram<'_>, rec: &mut FlowRecord) {
        match self {
            UdpAnalyzer::Quic(q) => q.on_datagram_cut(dir, dg.payload, dg.truncated, rec),
            UdpAnalyzer::Dtls(d) => d.on_datagram(dir, dg.payload, rec),
        }
    }

    /// Nothing more to learn from the datagrams.
    pub fn is_done(&self) -> bool {
        match self {
            UdpAnalyzer::Quic(q) => q.is_done(),
            UdpAnalyzer::Dtls(d) => d.is_done(),
        }
    }

    /// The conversation ended (or the handshake is understood): settle the verdict.
    pub fn finish(&mut self, rec: &mut FlowRecord) {
        match self {
            UdpAnalyzer::Quic(q) => q.finish(rec),
            UdpAnalyzer::Dtls(d) => d.finish(rec),
        }
    }

    /// Bytes this analysis holds, with its record (the two boxed together), for the
    /// memory cap: the boxed analyzer it is (not the largest one) and what both
    /// hold on the heap.
    pub fn bytes_with(&self, rec: &FlowRecord) -> usize {
        let boxed = std::mem::size_of::<(FlowRecord, UdpAnalyzer)>() + rec.heap_bytes();
        match self {
            UdpAnalyzer::Quic(q) => boxed + std::mem::size_of::<QuicAnalyzer>() + q.heap_bytes(),
            UdpAnalyzer::Dtls(d) => boxed + std::mem::size_of::<DtlsAnalyzer>() + d.heap_bytes(),
        }
    }
}
