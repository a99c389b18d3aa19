//! QUIC over UDP: long headers, Initial decryption, CRYPTO reassembly, and the
//! TLS 1.3 hellos they carry. Only Initial packets are ever decrypted; short-header
//! (1-RTT) packets are recognised by their first bit and counted.

pub mod crypto;
pub mod initial;
pub mod packet;

use super::tls::{Carrier, Hello, alert_name, hello_message};
use crate::record::{Alert, Dir, FlowRecord, Note, PerDir, QuicInfo};
use crypto::{CryptoStream, Messages};
use initial::{InitialKeys, Suite};
use packet::{Bad, Frame, Kind, Long, long_header};

/// Initial packets per direction that may fail to decrypt before that direction is given up.
pub const MAX_DECRYPT_FAILURES: u32 = 8;

#[derive(Debug, Default)]
struct Side {
    crypto: CryptoStream,
    messages: Messages,
    largest_pn: Option<u64>,
    /// This side's hello was read: its Initial packets are no longer decrypted.
    hello: bool,
    decrypt_failures: u32,
    /// Short-header (1-RTT) packets seen.
    one_rtt: bool,
}

/// Initial keys for one (version, connection ID) pair, derived once.
#[derive(Debug)]
struct Cached {
    version: u32,
    cid: Vec<u8>,
    keys: InitialKeys,
}

/// Per-flow QUIC state. Writes what it learns into the flow record.
#[derive(Debug, Default)]
pub struct QuicAnalyzer {
    /// The connection ID the Initial keys derive from: the client's first
    /// Destination Connection ID, or the Source Connection ID of a Retry.
    key_cid: Option<Vec<u8>>,
    keys: Option<Cached>,
    side: PerDir<Side>,
    scratch: Vec<u8>,
    closed: bool,
    opaque: bool,
}

/// The spelling of a QUIC version in the record: `1`, `2`, else hex.
pub fn version_name(v: u32) -> String {
    match v {
        initial::V1 => "1".to_string(),
        initial::V2 => "2".to_string(),
        _ => format!("0x{v:08x}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Versions worth calling QUIC without a port hint: v1, v2, IETF drafts, Google's
/// `Q0xx`/`T0xx`, and the reserved `0x?a?a?a?a` pattern used to force negotiation.
pub fn plausible_version(v: u32) -> bool {
    Suite::of(v).is_some()
        || v == 0
        || v >> 8 == 0x00ff_0000
        || matches!(v >> 24, 0x51 | 0x54) && (v >> 16) & 0xff == 0x30
        || v & 0x0f0f_0f0f == 0x0a0a_0a0a
}

/// What the first packet of a datagram says about its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A client Initial: it opens with keys from its own Destination Connection ID.
    Client,
    /// Version Negotiation, Retry, or an Initial that does not open as the client's.
    Server,
    /// QUIC, but nothing says which side.
    Either,
}

/// Whether `d` starts with a QUIC long-header packet, and who could have sent it.
/// `port_hint` accepts any version (a UDP port QUIC usually runs on).
pub fn sniff(d: &[u8], port_hint: bool) -> Option<Sender> {
    let first = *d.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let version = u32::from_be_bytes(d.get(1..5)?.try_into().ok()?);
    if !plausible_version(version) && !port_hint {
        return None;
    }
    let suite = Suite::of(version);
    let l = long_header(d, suite.map(|s| (s.initial_type, s.retry_type))).ok()?;
    match (l.kind, suite) {
        (Kind::VersionNegotiation { .. } | Kind::Retry { .. }, _) => Some(Sender::Server),
        (Kind::Protected { type_bits, .. }, Some(s)) if type_bits == s.initial_type => {
            let Kind::Protected { pn_offset, .. } = l.kind else {
                return Some(Sender::Either);
            };
            let keys = InitialKeys::new(&s, l.dcid)?;
            let pkt = d.get(..l.len)?;
            let mut scratch = Vec::new();
            Some(
                match packet::open(&keys.client, pkt, pn_offset, None, &mut scratch) {
                    Some(_) => Sender::Client,
                    None => Sender::Server,
                },
            )
        }
        _ => Some(Sender::Either),
    }
}

impl QuicAnalyzer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Nothing more to learn: both hellos read and both sides past the handshake,
    /// the connection closed, or a version whose packets cannot be read.
    pub fn is_done(&self) -> bool {
        self.closed
            || self.opaque
            || (self.side.client.hello
                && self.side.server.hello
                && self.side.client.one_rtt
                && self.side.server.one_rtt)
    }

    /// One UDP datagram's payload from `dir`.
    pub fn on_datagram(&mut self, dir: Dir, d: &[u8], rec: &mut FlowRecord) {
        let mut rest = d;
        while let Some(&first) = rest.first() {
            if first & 0x80 == 0 {
                // A short header runs to the end of the datagram.
                self.side.get_mut(dir).one_rtt = true;
                if self.side.client.one_rtt && self.side.server.one_rtt {
                    rec.tls_mut().established = true;
                }
                return;
            }
            let version = match rest.get(1..5).and_then(|v| v.try_into().ok()) {
                Some(v) => u32::from_be_bytes(v),
                None => {
                    rec.note(Note::QuicMalformed);
                    return;
                }
            };
            let suite = Suite::of(version);
            let l = match long_header(rest, suite.map(|s| (s.initial_type, s.retry_type))) {
                Ok(l) => l,
                Err(Bad::Truncated | Bad::Invalid) => {
                    rec.note(Note::QuicMalformed);
                    return;
                }
            };
            let pkt = rest.get(..l.len).unwrap_or(rest);
            rest = rest.get(l.len..).unwrap_or_default();
            self.packet(dir, &l, pkt, suite, rec);
            if self.closed {
                return;
            }
        }
    }

    fn info(rec: &mut FlowRecord) -> &mut QuicInfo {
        rec.quic.get_or_insert_with(QuicInfo::default)
    }

    fn packet(
        &mut self,
        dir: Dir,
        l: &Long<'_>,
        pkt: &[u8],
        suite: Option<Suite>,
        rec: &mut FlowRecord,
    ) {
        match (l.kind, dir, suite) {
            (Kind::VersionNegotiation { versions }, Dir::Server, _) => {
                rec.note(Note::QuicVersionNegotiation);
                let info = Self::info(rec);
                info.offered_versions = versions
                    .chunks_exact(4)
                    .take(16)
                    .filter_map(|v| Some(version_name(u32::from_be_bytes(v.try_into().ok()?))))
                    .collect();
            }
            (Kind::Retry { .. }, Dir::Server, _) => {
                // The client starts over with the server's new connection ID, and
                // the Initial keys with it (RFC 9001 §5.2).
                Self::info(rec).retry = true;
                self.key_cid = Some(l.scid.to_vec());
                let client = &mut self.side.client;
                client.crypto = CryptoStream::default();
                client.messages = Messages::default();
                client.hello = false;
            }
            (Kind::Opaque, _, _) => {
                let info = Self::info(rec);
                if info.version.is_empty() {
                    info.version = version_name(l.version);
                }
                if dir == Dir::Client && info.dcid.is_empty() {
                    info.dcid = hex(l.dcid);
                    info.scid = hex(l.scid);
                }
                rec.note(Note::QuicUnknownVersion);
                self.opaque = true;
            }
            (Kind::Protected { type_bits, .. }, _, Some(s)) if type_bits == s.initial_type => {
                let info = Self::info(rec);
                if dir == Dir::Client && self.key_cid.is_none() {
                    self.key_cid = Some(l.dcid.to_vec());
                    info.dcid = hex(l.dcid);
                    info.scid = hex(l.scid);
                }
                // The version the server answers in is the one in use.
                if info.version.is_empty() || dir == Dir::Server {
                    info.version = version_name(l.version);
                }
                self.initial(dir, l, pkt, &s, rec);
            }
            (Kind::Protected { .. }, _, _) => {
                let info = Self::info(rec);
                if info.version.is_empty() {
                    info.version = version_name(l.version);
                }
            }
            // Version Negotiation or Retry from a client.
            _ => rec.note(Note::QuicMalformed),
        }
    }

    fn initial(&mut self, dir: Dir, l: &Long<'_>, pkt: &[u8], suite: &Suite, rec: &mut FlowRecord) {
        let Kind::Protected { pn_offset, .. } = l.kind else {
            return;
        };
        let side = self.side.get(dir);
        if side.hello || side.decrypt_failures >= MAX_DECRYPT_FAILURES {
            return;
        }
        let Some(cid) = self.key_cid.clone() else {
            // A server Initial before any client Initial: its keys are unknowable.
            rec.note(Note::QuicDecryptFailed);
            self.side.get_mut(dir).decrypt_failures += 1;
            return;
        };
        let mut opened = self.open(dir, l.version, &cid, suite, pkt, pn_offset);
        if opened.is_none() && dir == Dir::Client && l.dcid != cid.as_slice() {
            // The first Initial or a Retry was not captured: the packet's own
            // connection ID may be the one its keys derive from.
            opened = self.open(dir, l.version, l.dcid, suite, pkt, pn_offset);
            if opened.is_some() {
                self.key_cid = Some(l.dcid.to_vec());
            }
        }
        let Some((pn, range)) = opened else {
            rec.note(Note::QuicDecryptFailed);
            self.side.get_mut(dir).decrypt_failures += 1;
            return;
        };
        let QuicAnalyzer { side, scratch, .. } = self;
        let side = side.get_mut(dir);
        side.largest_pn = Some(side.largest_pn.map_or(pn, |p| p.max(pn)));
        let plain = scratch.get(range).unwrap_or_default();
        let mut closed = None;
        let mut capped = false;
        let mut hellos = Vec::new();
        let Side {
            crypto, messages, ..
        } = side;
        let parsed = packet::frames(plain, &mut |f| match f {
            Frame::Crypto { offset, data } => {
                capped |= crypto
                    .insert(offset, data, &mut |b| {
                        messages.feed(b, &mut |(t, body)| {
                            hellos.push(hello_message(Carrier::Quic, dir, t, body, None, rec));
                        })
                    })
                    .capped;
            }
            Frame::Close { error, .. } => closed = Some(error),
        });
        if parsed.is_err() {
            rec.note(Note::QuicMalformed);
        }
        if capped {
            rec.note(Note::QuicCryptoCap);
        }
        if messages.too_large {
            rec.note(Note::HandshakeTooLarge);
        }
        if hellos
            .iter()
            .any(|h| matches!(h, Hello::ClientHello | Hello::ServerHello { .. }))
        {
            side.hello = true;
        }
        if let Some(error) = closed {
            self.closed = true;
            // CONNECTION_CLOSE with a crypto error carries a TLS alert (RFC 9001 §4.8).
            if let Some(desc) = error.checked_sub(0x100).filter(|d| *d < 0x100) {
                let tls = rec.tls_mut();
                if tls.alerts.len() < super::tls::MAX_ALERTS {
                    tls.alerts.push(Alert {
                        from: dir,
                        level: "fatal".to_string(),
                        description: alert_name(desc as u8),
                    });
                }
            }
        }
    }

    fn open(
        &mut self,
        dir: Dir,
        version: u32,
        cid: &[u8],
        suite: &Suite,
        pkt: &[u8],
        pn_offset: usize,
    ) -> Option<(u64, std::ops::Range<usize>)> {
        let fresh = !matches!(&self.keys, Some(c) if c.version == version && c.cid == cid);
        if fresh {
            self.keys = Some(Cached {
                version,
                cid: cid.to_vec(),
                keys: InitialKeys::new(suite, cid)?,
            });
        }
        let cached = self.keys.as_ref()?;
        let keys = match dir {
            Dir::Client => &cached.keys.client,
            Dir::Server => &cached.keys.server,
        };
        let largest = self.side.get(dir).largest_pn;
        packet::open(keys, pkt, pn_offset, largest, &mut self.scratch)
    }

    /// The flow ended: settle what the record says.
    pub fn finish(&mut self, rec: &mut FlowRecord) {
        let h3 = rec
            .tls
            .as_ref()
            .and_then(|t| t.client_hello.as_ref())
            .and_then(|c| c.alpn.first())
            .is_some_and(|a| a.starts_with("h3"));
        rec.app_protocol = Some(if h3 { "http3" } else { "quic" }.to_string());
        rec.encryption = crate::record::Encryption::Quic;
        rec.quic.get_or_insert_with(QuicInfo::default);
    }
}
