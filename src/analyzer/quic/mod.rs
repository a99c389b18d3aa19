//! QUIC over UDP: long headers, Initial decryption, CRYPTO reassembly, and the
//! TLS 1.3 hellos they carry. Only Initial packets are ever decrypted; short-header
//! (1-RTT) packets are recognised by their first bit and counted.

pub mod crypto;
pub mod handshake;
pub mod initial;
pub mod packet;
pub mod params;

use super::tls::{Carrier, Hello, alert_name, hello_message};
use crate::record::{Alert, Dir, FlowRecord, Note, PerDir, QuicInfo, hex};
use crypto::{CryptoStream, Messages};
use initial::{Keys, Suite};
use packet::{Bad, Frame, Kind, Long, MAX_CID_LEN, long_header, type_bits};
use std::sync::Arc;

/// Initial packets per direction that may fail to decrypt before that direction is given up.
pub const MAX_DECRYPT_FAILURES: u32 = 8;
/// Decryption buffer kept between datagrams; a larger one (a jumbo datagram) is
/// released after use, so idle conversations hold little.
pub const MAX_SCRATCH_KEPT: usize = 2048;
/// Smallest UDP payload a client may carry an Initial packet in (RFC 9000 §14.1):
/// a shorter datagram with an Initial is not a client's.
pub const MIN_CLIENT_DATAGRAM: usize = 1200;
/// Bytes looked at to tell zero padding after the last packet of a datagram from
/// a short-header packet whose fixed bit is greased.
const PADDING_PROBE: usize = 32;
/// Shortest Destination Connection ID of a client's first Initial (RFC 9000 §7.2).
pub const MIN_CLIENT_CID: usize = 8;

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

/// Initial keys for one (version, connection ID) pair, each side's derived once,
/// when a packet of that side is first opened.
#[derive(Debug)]
struct Cached {
    version: u32,
    cid: Vec<u8>,
    keys: PerDir<Option<Box<Keys>>>,
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
    /// The client wrote in a version without known Initial keys, and the server
    /// has not answered in it: a Version Negotiation, and the client's Initial
    /// in a version both speak, may follow.
    awaiting_negotiation: bool,
    /// Whether the client's ClientHello advertised `grease_quic_bit` (RFC 9287);
    /// `None` until it is read.
    client_grease: Option<bool>,
    /// The run's key table, when it holds secrets; the ClientHello random to
    /// look this connection up by; its Handshake space once the keys are known.
    keylog: Option<Arc<crate::keylog::KeyLog>>,
    client_random: Option<[u8; 32]>,
    handshake: Option<Box<handshake::HandshakeSpace>>,
}

/// The spelling of a QUIC version in the record: `1`, `2`, else hex.
pub fn version_name(v: u32) -> String {
    match v {
        initial::V1 => "1".to_string(),
        initial::V2 => "2".to_string(),
        _ => format!("0x{v:08x}"),
    }
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

/// The long-header type codes of a version, for [`long_header`].
fn types(suite: Option<Suite>) -> Option<(u8, u8)> {
    suite.map(|s| (s.initial_type, s.retry_type))
}

/// Whether `d` starts with a QUIC long-header packet, and who could have sent it.
/// `port_hint` (a UDP port QUIC usually runs on) accepts any version and any
/// packet type; elsewhere only what cannot be chance counts: a client Initial
/// that opens with its own keys, or a version that only QUIC uses. A cleared
/// fixed bit (RFC 9287 greasing) is accepted under the same conditions. `cut`:
/// the capture's snap length cut the datagram short.
pub fn sniff(d: &[u8], port_hint: bool, cut: bool) -> Option<Sender> {
    let first = *d.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    let version = u32::from_be_bytes(d.get(1..5)?.try_into().ok()?);
    if !plausible_version(version) && !port_hint {
        return None;
    }
    let suite = Suite::of(version);
    let l = match long_header(d, types(suite), true) {
        Ok(l) => l,
        Err(Bad::Truncated) if cut => return cut_sender(d, suite, port_hint),
        Err(_) => return None,
    };
    let sender = match (l.kind, suite) {
        (Kind::VersionNegotiation { .. } | Kind::Retry { .. }, _) => Sender::Server,
        (
            Kind::Protected {
                type_bits,
                pn_offset,
                token,
            },
            Some(s),
        ) if type_bits == s.initial_type => {
            let keys = Keys::initial(&s, l.dcid, true)?;
            let pkt = d.get(..l.len)?;
            let mut scratch = Vec::new();
            match packet::open(&keys, pkt, pn_offset, None, &mut scratch) {
                Some((pn, frames)) => {
                    let opened = initial::Opened {
                        packet: pkt.to_vec(),
                        pn,
                        plain: scratch,
                        frames,
                    };
                    initial::remember(version, l.dcid, keys, opened);
                    return Some(Sender::Client);
                }
                None => initial_sender(token, d.len(), cut),
            }
        }
        (Kind::Opaque, _) if version != 0 => return Some(Sender::Either),
        _ => Sender::Either,
    };
    port_hint.then_some(sender)
}

/// Who sent an Initial that does not open with the client's keys. That alone does
/// not make it the server's (a client Initial protected otherwise, or cut short,
/// does not open either): a token marks a client, a datagram under 1200 bytes a
/// server, and otherwise the ports decide.
fn initial_sender(token: &[u8], datagram_len: usize, cut: bool) -> Sender {
    if !token.is_empty() {
        // A server's Initial carries an empty token (RFC 9000 §17.2.2).
        Sender::Client
    } else if datagram_len < MIN_CLIENT_DATAGRAM && !cut {
        // A client pads every datagram that carries an Initial (RFC 9000 §14.1).
        Sender::Server
    } else {
        Sender::Either
    }
}

/// Who sent a long-header packet that the snap length cut before its end, so
/// that it cannot be opened. Away from QUIC ports only an Initial of a known
/// version whose Destination Connection ID is as long as a client's first one
/// must be (8 to 20 bytes, RFC 9000 §7.2) counts. An Initial whose token is
/// still there is a client's; anything else is left to the ports.
fn cut_sender(d: &[u8], suite: Option<Suite>, port_hint: bool) -> Option<Sender> {
    let (l, rest) = packet::invariant_header(d).ok()?;
    let initial = suite.is_some_and(|s| type_bits(l.first) == s.initial_type);
    let client_like = initial && (MIN_CLIENT_CID..=MAX_CID_LEN).contains(&l.dcid.len());
    if !(port_hint || client_like) {
        return None;
    }
    let token = packet::varint(rest).is_ok_and(|(n, _)| n > 0);
    Some(if initial && token {
        Sender::Client
    } else {
        Sender::Either
    })
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
                && self.side.server.one_rtt
                && !self.handshake.as_ref().is_some_and(|h| h.pending()))
    }

    /// The key table this connection's Handshake packets are opened with.
    pub fn set_keys(&mut self, keys: Option<Arc<crate::keylog::KeyLog>>) {
        self.keylog = keys;
    }

    /// One UDP datagram's payload from `dir`.
    pub fn on_datagram(&mut self, dir: Dir, d: &[u8], rec: &mut FlowRecord) {
        self.on_datagram_cut(dir, d, false, rec);
    }

    /// One UDP datagram's payload from `dir`; `cut`: the capture's snap length cut
    /// it short, so its last packet may end early (that is no malformation).
    pub fn on_datagram_cut(&mut self, dir: Dir, d: &[u8], cut: bool, rec: &mut FlowRecord) {
        let mut rest = d;
        while let Some(&first) = rest.first() {
            if first == 0 {
                // Zero bytes after the datagram's packets are padding, not a short
                // header (whose fixed bit is set, RFC 9000 §17.3; RFC 9287 lets it
                // be greased, but then not on every byte).
                return;
            }
            if first & 0x80 == 0 {
                if first & 0x40 == 0 && rest.iter().take(PADDING_PROBE).all(|&b| b == 0) {
                    // Zeros after the last packet pad the datagram: not a packet
                    // (a greased short header has a protected packet number and
                    // ciphertext where these are zeros).
                    return;
                }
                // A short header runs to the end of the datagram (its fixed bit
                // may be greased too).
                self.side.get_mut(dir).one_rtt = true;
                crate::record::frames::first_at(&mut rec.frames.first_encrypted, rec.at);
                if self.side.client.one_rtt && self.side.server.one_rtt {
                    rec.tls_mut().established = true;
                }
                if dir == Dir::Server && self.awaiting_negotiation {
                    // The server speaks the client's unknown version: no negotiation.
                    self.opaque = true;
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
            let l = match long_header(rest, types(suite), self.greased(dir)) {
                Ok(l) => l,
                Err(Bad::Truncated) if cut => {
                    self.cut_packet(dir, rest, suite, rec);
                    return;
                }
                Err(Bad::Truncated | Bad::Invalid) => {
                    rec.note(Note::QuicMalformed);
                    return;
                }
            };
            let pkt = rest.get(..l.len).unwrap_or(rest);
            rest = rest.get(l.len..).unwrap_or_default();
            if !self.handshake_packet(dir, &l, pkt, suite, rec) {
                self.packet(dir, &l, pkt, suite, rec);
            }
            self.hello_keys(l.version, rec);
            if self.scratch.capacity() > MAX_SCRATCH_KEPT {
                self.scratch = Vec::new();
            }
            if self.closed {
                return;
            }
        }
    }

    /// Bytes this analyzer holds on the heap (for memory accounting; the cached
    /// Initial keys are held inline).
    pub fn heap_bytes(&self) -> usize {
        let side = |s: &Side| s.crypto.heap_bytes() + s.messages.heap_bytes();
        self.scratch.capacity()
            + self.key_cid.as_ref().map_or(0, Vec::capacity)
            + self.keys.as_ref().map_or(0, |c| {
                let boxed = |k: &Option<Box<Keys>>| k.as_ref().map_or(0, |_| size_of::<Keys>());
                c.cid.capacity() + boxed(&c.keys.client) + boxed(&c.keys.server)
            })
            + side(&self.side.client)
            + side(&self.side.server)
            + self.handshake.as_ref().map_or(0, |h| {
                std::mem::size_of::<handshake::HandshakeSpace>() + h.heap_bytes()
            })
    }

    fn info(rec: &mut FlowRecord) -> &mut QuicInfo {
        rec.quic.get_or_insert_with(QuicInfo::default)
    }

    /// Whether packets from `dir` may have their fixed bit cleared: their receiver
    /// advertised `grease_quic_bit` (RFC 9287 §3). The server's transport
    /// parameters travel encrypted, so the client's packets are always allowed it;
    /// the server's are unless the client's ClientHello, once read, did not
    /// advertise it.
    fn greased(&self, dir: Dir) -> bool {
        dir == Dir::Client || self.client_grease != Some(false)
    }

    /// A packet the capture's snap length cut short: its header still names the
    /// version and the connection IDs, and a client Initial's Destination
    /// Connection ID is what both sides' Initial keys derive from, so the
    /// server's Initials can still be read.
    fn cut_packet(&mut self, dir: Dir, pkt: &[u8], suite: Option<Suite>, rec: &mut FlowRecord) {
        let Ok((l, _)) = packet::invariant_header(pkt) else {
            return;
        };
        let info = Self::info(rec);
        if info.version.is_empty() {
            info.version = version_name(l.version);
        }
        let initial = suite.is_some_and(|s| type_bits(l.first) == s.initial_type);
        if dir == Dir::Client && initial && self.key_cid.is_none() && l.dcid.len() <= MAX_CID_LEN {
            self.key_cid = Some(l.dcid.to_vec());
            info.dcid = hex(l.dcid);
            info.scid = hex(l.scid);
        }
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
                if rec.quic.as_ref().is_some_and(|q| q.retry) {
                    // A client accepts one Retry and ignores the rest (RFC 9000 §17.2.5.2).
                    return;
                }
                let odcid = self.key_cid.as_deref().unwrap_or_default();
                if initial::retry_tag_ok(l.version, odcid, pkt) == Some(false)
                    && self.key_cid.is_some()
                {
                    // Not from the server the client spoke to (or damaged): it
                    // must not change the keys.
                    rec.note(Note::QuicRetryInvalid);
                    return;
                }
                // The client starts over with the server's new connection ID, and
                // the Initial keys with it (RFC 9001 §5.2).
                Self::info(rec).retry = true;
                self.key_cid = Some(l.scid.to_vec());
                let client = &mut self.side.client;
                client.crypto = CryptoStream::default();
                client.messages = Messages::default();
                client.hello = false;
            }
            (Kind::Opaque, _, _) => self.opaque_packet(dir, l, rec),
            (Kind::Protected { type_bits, .. }, _, Some(s)) if type_bits == s.initial_type => {
                // The client started over in a known version after offering an
                // unknown one: that handshake is the one to read.
                let switched = dir == Dir::Client && std::mem::take(&mut self.awaiting_negotiation);
                if switched {
                    rec.notes.retain(|n| *n != Note::QuicUnknownVersion);
                }
                let info = Self::info(rec);
                if switched {
                    info.dcid.clear();
                }
                // The version the server answers in is the one in use.
                if info.version.is_empty() || dir == Dir::Server || switched {
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

    /// A packet of a version whose Initial keys are unknown.
    fn opaque_packet(&mut self, dir: Dir, l: &Long<'_>, rec: &mut FlowRecord) {
        let info = Self::info(rec);
        if info.version.is_empty() {
            info.version = version_name(l.version);
        }
        if dir == Dir::Client && info.dcid.is_empty() {
            info.dcid = hex(l.dcid);
            info.scid = hex(l.scid);
        }
        rec.note(Note::QuicUnknownVersion);
        if dir == Dir::Client && self.key_cid.is_none() {
            // The server may answer with Version Negotiation, and the client
            // start over in a version both speak.
            self.awaiting_negotiation = true;
        } else {
            self.opaque = true;
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
        let Some((pn, range)) = self.open_initial(dir, l, pkt, pn_offset, suite, rec) else {
            rec.note(Note::QuicDecryptFailed);
            self.side.get_mut(dir).decrypt_failures += 1;
            return;
        };
        let QuicAnalyzer {
            side,
            scratch,
            client_grease,
            ..
        } = self;
        let side = side.get_mut(dir);
        side.largest_pn = Some(side.largest_pn.map_or(pn, |p| p.max(pn)));
        let plain = scratch.get(range).unwrap_or_default();
        let mut closed = None;
        let mut capped = false;
        let mut hellos = Vec::new();
        let mut grease = None;
        let Side {
            crypto, messages, ..
        } = side;
        let parsed = packet::frames(plain, &mut |f| match f {
            Frame::Crypto { offset, data } => {
                capped |= crypto
                    .insert(offset, data, &mut |b| {
                        messages.feed(b, &mut |(t, body)| {
                            if dir == Dir::Client && t == 1 {
                                let random = handshake::client_random(body);
                                grease = Some((params::grease_quic_bit(body), random));
                            }
                            hellos.push(hello_message(Carrier::Quic, dir, t, body, None, rec));
                        })
                    })
                    .capped;
            }
            Frame::Close { error, .. } => closed = Some(error),
        });
        if let Some((g, random)) = grease {
            (*client_grease, self.client_random) = (Some(g), random);
        }
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
                let at = rec.at;
                let tls = rec.tls_mut();
                if tls.alerts.len() < super::tls::MAX_ALERTS {
                    tls.alerts
                        .push(Alert::new(dir, 2, alert_name(desc as u8), at));
                }
            }
        }
    }

    /// Once a TLS 1.3 ServerHello was read (a packet of `version` carried it):
    /// looks the connection up in the key table, once, and opens its Handshake
    /// space when the table holds its secrets.
    fn hello_keys(&mut self, version: u32, rec: &mut FlowRecord) {
        let Some(keylog) = self.keylog.as_ref() else {
            return;
        };
        let Some(tls) = rec
            .tls
            .as_ref()
            .filter(|t| t.version.is_some_and(|v| v.is_tls13()))
        else {
            return;
        };
        let suite = tls.server_hello.as_ref().and_then(|s| s.cipher_id);
        let found = self.client_random.and_then(|r| keylog.lookup(&r));
        // Looked up once: the table is not asked again for this connection.
        self.keylog = None;
        self.handshake = found
            .zip(suite)
            .and_then(|(secrets, s)| handshake::HandshakeSpace::new(s, &secrets, version))
            .map(Box::new);
    }

    /// A Handshake packet, when this connection's Handshake space is open: read
    /// there (true); anything else is left to [`QuicAnalyzer::packet`].
    fn handshake_packet(
        &mut self,
        dir: Dir,
        l: &Long<'_>,
        pkt: &[u8],
        suite: Option<Suite>,
        rec: &mut FlowRecord,
    ) -> bool {
        let (Some(h), Some(s)) = (self.handshake.as_mut(), suite) else {
            return false;
        };
        match l.kind {
            Kind::Protected {
                type_bits,
                pn_offset,
                ..
            } if type_bits == s.handshake_type => {
                h.packet(dir, pkt, pn_offset, rec);
                true
            }
            _ => false,
        }
    }

    /// Opens an Initial packet with the keys of the connection ID they derive
    /// from. Until a client Initial has opened, no connection ID is known: the
    /// client's packet is tried with its own Destination Connection ID (which is
    /// not the one after the server has answered), and that ID is kept once it
    /// opens. A server Initial before that cannot be opened.
    fn open_initial(
        &mut self,
        dir: Dir,
        l: &Long<'_>,
        pkt: &[u8],
        pn_offset: usize,
        suite: &Suite,
        rec: &mut FlowRecord,
    ) -> Option<(u64, std::ops::Range<usize>)> {
        let cid = match (&self.key_cid, dir) {
            (Some(cid), _) => cid.clone(),
            (None, Dir::Client) => l.dcid.to_vec(),
            (None, Dir::Server) => return None,
        };
        let mut opened = self.open(dir, l.version, &cid, suite, pkt, pn_offset);
        let mut adopt = opened.is_some() && self.key_cid.is_none();
        if opened.is_none() && dir == Dir::Client && l.dcid != cid.as_slice() {
            // The first Initial or a Retry was not captured: the packet's own
            // connection ID may be the one its keys derive from.
            opened = self.open(dir, l.version, l.dcid, suite, pkt, pn_offset);
            adopt = opened.is_some();
        }
        if adopt {
            self.key_cid = Some(l.dcid.to_vec());
            let info = Self::info(rec);
            if info.dcid.is_empty() {
                info.dcid = hex(l.dcid);
                info.scid = hex(l.scid);
            }
        }
        opened
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
                keys: PerDir::default(),
            });
        }
        let largest = self.side.get(dir).largest_pn;
        let slot = self.keys.as_mut()?.keys.get_mut(dir);
        if slot.is_none() {
            let client = dir == Dir::Client;
            let sniffed = if client {
                initial::recall(version, cid)
            } else {
                None
            };
            if let Some((keys, opened)) = sniffed {
                *slot = Some(keys);
                // The packet the sniff opened, as the first of its direction: as opened.
                if largest.is_none() && opened.packet == pkt {
                    self.scratch = opened.plain;
                    return Some((opened.pn, opened.frames));
                }
            }
            if slot.is_none() {
                *slot = Some(Keys::initial(suite, cid, client)?);
            }
        }
        let keys = slot.as_ref()?;
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
        if self.handshake.as_ref().is_some_and(|h| h.mismatch()) {
            rec.note(Note::KeysMismatch);
        }
        rec.encryption = crate::record::Encryption::Quic;
        rec.quic.get_or_insert_with(QuicInfo::default);
    }
}

#[cfg(test)]
mod tests {
    use super::initial::{InitialKeys, V1, V2};
    use super::*;
    use crate::record::{Encryption, Endpoint};
    use crate::time::Timestamp;
    use crate::version::Version;

    fn rec() -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port,
        };
        FlowRecord::new(1, Timestamp::default(), ep(40000), ep(443))
    }

    const DCID: &[u8] = &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
    const SCID: &[u8] = &[0xc1, 0xc2, 0xc3, 0xc4];
    const SERVER_CID: &[u8] = &[0x5e, 0x5e];

    fn hs(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![t, 0, (body.len() >> 8) as u8, body.len() as u8];
        m.extend(body);
        m
    }

    /// A ClientHello offering TLS 1.3, SNI `quic.example`, ALPN h3, padded to ~600 bytes.
    fn client_hello() -> Vec<u8> {
        client_hello_with(&[])
    }

    /// `grease_quic_bit` (0x2ab2, empty) as the only transport parameter.
    const GREASE_PARAMS: &[u8] = &[0x00, 0x39, 0x00, 0x05, 0x80, 0x00, 0x2a, 0xb2, 0x00];

    /// The same ClientHello with `extra` (whole extensions) before its padding.
    fn client_hello_with(extra: &[u8]) -> Vec<u8> {
        let mut b = vec![0x03, 0x03];
        b.extend([1u8; 32]);
        b.push(0);
        b.extend([0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
        let sni = b"quic.example";
        let mut ext = vec![0x00, 0x00];
        ext.extend(((sni.len() + 5) as u16).to_be_bytes());
        ext.extend(((sni.len() + 3) as u16).to_be_bytes());
        ext.push(0);
        ext.extend((sni.len() as u16).to_be_bytes());
        ext.extend(sni);
        ext.extend([0x00, 0x10, 0x00, 0x05, 0x00, 0x03, 0x02, b'h', b'3']);
        ext.extend([0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]);
        ext.extend(extra);
        ext.extend([0x00, 0x15, 0x02, 0x00]);
        ext.extend([0u8; 512]);
        b.extend((ext.len() as u16).to_be_bytes());
        b.extend(ext);
        hs(1, &b)
    }

    fn server_hello() -> Vec<u8> {
        let mut b = vec![0x03, 0x03];
        b.extend([2u8; 32]);
        b.push(0);
        b.extend([
            0x13, 0x01, 0x00, 0x00, 0x06, 0x00, 0x2b, 0x00, 0x02, 0x03, 0x04,
        ]);
        hs(2, &b)
    }

    fn crypto_frame(offset: usize, data: &[u8]) -> Vec<u8> {
        let mut f = vec![0x06, 0x80 | (offset >> 24) as u8, (offset >> 16) as u8];
        f.extend([(offset >> 8) as u8, offset as u8]);
        f.extend([0x40 | (data.len() >> 8) as u8, data.len() as u8]);
        f.extend(data);
        f
    }

    /// A protected Initial packet of `version` from `dir` carrying `frames`.
    fn initial(version: u32, dir: Dir, key_cid: &[u8], pn: u64, frames: &[u8]) -> Vec<u8> {
        let dcid = match dir {
            Dir::Client => key_cid,
            Dir::Server => SCID,
        };
        let p = Initial {
            dcid,
            ..Initial::default()
        };
        p.build(version, dir, key_cid, pn, frames)
    }

    /// How an Initial is built beyond its keys: the Destination Connection ID in
    /// its header, a token, a cleared (greased) fixed bit.
    #[derive(Default)]
    struct Initial<'a> {
        dcid: &'a [u8],
        token: &'a [u8],
        greased: bool,
    }

    impl Initial<'_> {
        fn build(&self, version: u32, dir: Dir, key_cid: &[u8], pn: u64, frames: &[u8]) -> Vec<u8> {
            let suite = Suite::of(version).unwrap();
            let keys = InitialKeys::new(&suite, key_cid).unwrap();
            let (scid, k) = match dir {
                Dir::Client => (SCID, &keys.client),
                Dir::Server => (SERVER_CID, &keys.server),
            };
            let mut plain = frames.to_vec();
            // Header protection samples 16 bytes 4 past the packet number.
            plain.resize(plain.len().max(24), 0);
            let fixed = if self.greased { 0 } else { 0x40 };
            let mut h = vec![0x80 | fixed | (suite.initial_type << 4) | 0x01];
            h.extend(version.to_be_bytes());
            h.push(self.dcid.len() as u8);
            h.extend(self.dcid);
            h.push(scid.len() as u8);
            h.extend(scid);
            h.push(self.token.len() as u8);
            h.extend(self.token);
            finish_packet(h, k, pn, &plain)
        }
    }

    fn finish_packet(mut h: Vec<u8>, k: &initial::Keys, pn: u64, plain: &[u8]) -> Vec<u8> {
        let len = 2 + plain.len() + 16;
        h.extend([0x40 | (len >> 8) as u8, len as u8]);
        h.extend([(pn >> 8) as u8, pn as u8]);
        k.protect(pn, &h, 2, plain)
    }

    fn run(datagrams: &[(Dir, Vec<u8>)]) -> FlowRecord {
        let mut r = rec();
        let mut q = QuicAnalyzer::new();
        for (dir, d) in datagrams {
            q.on_datagram(*dir, d, &mut r);
        }
        q.finish(&mut r);
        r
    }

    fn server_flight(version: u32, key_cid: &[u8]) -> (Dir, Vec<u8>) {
        let mut d = initial(
            version,
            Dir::Server,
            key_cid,
            0,
            &crypto_frame(0, &server_hello()),
        );
        d.push(0x40); // a short-header packet coalesced after it
        d.extend([9; 30]);
        (Dir::Server, d)
    }

    #[test]
    fn v1_and_v2_handshakes_are_read() {
        for (v, name) in [(V1, "1"), (V2, "2")] {
            let ch = initial(v, Dir::Client, DCID, 0, &crypto_frame(0, &client_hello()));
            let r = run(&[
                (Dir::Client, ch),
                server_flight(v, DCID),
                (Dir::Client, vec![0x41; 40]),
            ]);
            assert_eq!(r.encryption, Encryption::Quic);
            assert_eq!(r.app_protocol.as_deref(), Some("http3"));
            let tls = r.tls.clone().unwrap();
            assert_eq!(tls.version, Some(Version::TLS13));
            assert!(tls.established);
            assert_eq!(
                tls.client_hello.unwrap().sni.as_deref(),
                Some("quic.example")
            );
            let q = r.quic.clone().unwrap();
            assert_eq!(
                (q.version.as_str(), q.dcid.as_str(), q.scid.as_str()),
                (name, "8394c8f03e515708", "c1c2c3c4")
            );
            assert!(r.notes.is_empty(), "{:?}", r.notes);
        }
    }

    /// Split invariance: the ClientHello's CRYPTO data cut at any offset into two
    /// Initial packets, sent in two datagrams either way round, or coalesced in one.
    #[test]
    fn crypto_split_over_initials_is_split_invariant() {
        let ch = client_hello();
        let whole = run(&[
            (
                Dir::Client,
                initial(V1, Dir::Client, DCID, 0, &crypto_frame(0, &ch)),
            ),
            server_flight(V1, DCID),
        ]);
        let want = serde_json::to_value(&whole).unwrap();
        assert!(whole.tls.as_ref().unwrap().client_hello.is_some());
        for at in (1..ch.len()).step_by(7) {
            let a = initial(V1, Dir::Client, DCID, 0, &crypto_frame(0, &ch[..at]));
            let b = initial(V1, Dir::Client, DCID, 1, &crypto_frame(at, &ch[at..]));
            let server = server_flight(V1, DCID);
            let in_order = run(&[
                (Dir::Client, a.clone()),
                (Dir::Client, b.clone()),
                server.clone(),
            ]);
            assert_eq!(serde_json::to_value(&in_order).unwrap(), want, "split {at}");
            let reversed = run(&[
                (Dir::Client, b.clone()),
                (Dir::Client, a.clone()),
                server.clone(),
            ]);
            assert_eq!(
                serde_json::to_value(&reversed).unwrap(),
                want,
                "reversed {at}"
            );
            let mut both = a;
            both.extend(b);
            let coalesced = run(&[(Dir::Client, both), server]);
            assert_eq!(
                serde_json::to_value(&coalesced).unwrap(),
                want,
                "coalesced {at}"
            );
        }
    }

    #[test]
    fn retry_changes_the_keys() {
        let ch = crypto_frame(0, &client_hello());
        let mut retry = vec![0xf0];
        retry.extend(V1.to_be_bytes());
        retry.push(SCID.len() as u8);
        retry.extend(SCID);
        let new_cid = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22];
        retry.push(new_cid.len() as u8);
        retry.extend(new_cid);
        retry.extend(b"token");
        let mut forged = retry.clone();
        forged.extend([0; 16]);
        retry.extend(initial::retry_tag(V1, DCID, &retry));
        let r = run(&[
            (Dir::Client, initial(V1, Dir::Client, DCID, 0, &ch)),
            (Dir::Server, forged),
            (Dir::Server, retry),
            (Dir::Client, initial(V1, Dir::Client, &new_cid, 1, &ch)),
            server_flight(V1, &new_cid),
        ]);
        let q = r.quic.clone().unwrap();
        assert!(q.retry);
        assert_eq!(q.dcid, "8394c8f03e515708");
        assert_eq!(r.tls.unwrap().version, Some(Version::TLS13));
        // The forged Retry (a bad integrity tag) was noted and changed nothing.
        assert_eq!(r.notes, vec![Note::QuicRetryInvalid]);
    }

    #[test]
    fn version_negotiation_and_unknown_versions_are_kept() {
        let mut vn = vec![0x80, 0, 0, 0, 0, 4];
        vn.extend(SCID);
        vn.push(8);
        vn.extend(DCID);
        vn.extend([0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf]);
        let mut odd = vec![0xc0, 0x51, 0x30, 0x35, 0x30, 8];
        odd.extend(DCID);
        odd.push(0);
        odd.extend([7; 1200]);
        let r = run(&[(Dir::Client, odd), (Dir::Server, vn)]);
        let q = r.quic.clone().unwrap();
        assert_eq!(q.version, "0x51303530");
        assert_eq!(q.offered_versions, vec!["1", "2"]);
        assert!(r.has_note(Note::QuicUnknownVersion));
        assert!(r.tls.is_none());
    }

    #[test]
    fn bad_input_is_noted_not_fatal() {
        let ch = crypto_frame(0, &client_hello());
        let good = initial(V1, Dir::Client, DCID, 0, &ch);
        // Lengths past the datagram.
        let r = run(&[(Dir::Client, good[..good.len() - 1].to_vec())]);
        assert!(r.has_note(Note::QuicMalformed));
        // A flipped tag byte: does not decrypt; eight failures and the side is given up.
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        let mut q = QuicAnalyzer::new();
        let mut r = rec();
        for _ in 0..20 {
            q.on_datagram(Dir::Client, &bad, &mut r);
        }
        assert!(r.has_note(Note::QuicDecryptFailed));
        assert_eq!(q.side.client.decrypt_failures, MAX_DECRYPT_FAILURES);
        // CRYPTO data far ahead of the stream.
        let far = initial(V1, Dir::Client, DCID, 0, &crypto_frame(1 << 29, b"zz"));
        let r = run(&[(Dir::Client, far)]);
        assert!(r.has_note(Note::QuicCryptoCap));
        // A STREAM frame inside an Initial.
        let stream = initial(V1, Dir::Client, DCID, 0, &[0x08, 0x00, 0x01, 0x41]);
        let r = run(&[(Dir::Client, stream)]);
        assert!(r.has_note(Note::QuicMalformed));
        // A hole: only the second half of the ClientHello arrives.
        let hello = client_hello();
        let half = initial(V1, Dir::Client, DCID, 1, &crypto_frame(100, &hello[100..]));
        let r = run(&[(Dir::Client, half)]);
        assert!(r.tls.as_ref().is_none_or(|t| t.client_hello.is_none()));
        // A server Initial with no client Initial before it.
        let r = run(&[server_flight(V1, DCID)]);
        assert!(r.has_note(Note::QuicDecryptFailed));
    }

    #[test]
    fn a_crypto_error_close_is_the_tls_alert() {
        let ch = crypto_frame(0, &client_hello());
        // CONNECTION_CLOSE 0x1c, error 0x128 (TLS alert 40), frame type 6, no reason.
        let close = [0x1c, 0x41, 0x28, 0x06, 0x00];
        let r = run(&[
            (Dir::Client, initial(V1, Dir::Client, DCID, 0, &ch)),
            (Dir::Server, initial(V1, Dir::Server, DCID, 0, &close)),
        ]);
        let tls = r.tls.unwrap();
        assert_eq!(tls.alerts.len(), 1);
        assert_eq!(tls.alerts[0].description, "handshake_failure");
        assert_eq!(tls.alerts[0].level, "fatal");
    }

    /// The client Initial a sniff opened reaches the flow's analyzer opened (it
    /// is not decrypted again): given another Initial's plaintext under this
    /// packet, the analyzer reads that one. Under another packet, or none, it
    /// decrypts what it gets.
    #[test]
    fn a_sniffed_initial_is_decrypted_once() {
        let a = initial(V1, Dir::Client, DCID, 0, &crypto_frame(0, &client_hello()));
        let hello_b = client_hello_with(GREASE_PARAMS);
        let b = initial(V1, Dir::Client, DCID, 0, &crypto_frame(0, &hello_b));
        let (rec_a, rec_b) = (
            run(&[(Dir::Client, a.clone())]),
            run(&[(Dir::Client, b.clone())]),
        );
        assert_ne!(format!("{rec_a:?}"), format!("{rec_b:?}"));
        let sniffed = |d: &[u8]| {
            assert_eq!(sniff(d, false, false), Some(Sender::Client));
            initial::recall(V1, DCID).unwrap()
        };
        let (keys_a, opened_a) = sniffed(&a);
        let (_, opened_b) = sniffed(&b);
        assert!(initial::recall(V1, DCID).is_none(), "taken");
        let swapped = initial::Opened {
            packet: opened_a.packet.clone(),
            ..opened_b
        };
        initial::remember(V1, DCID, keys_a, swapped);
        assert_eq!(
            format!("{:?}", run(&[(Dir::Client, a.clone())])),
            format!("{rec_b:?}")
        );
        assert!(initial::recall(V1, DCID).is_none(), "the analyzer took it");
        // Handed over for another packet: the keys serve, the packet is decrypted.
        let (keys_b, opened_b) = sniffed(&b);
        initial::remember(V1, DCID, keys_b, opened_b);
        assert_eq!(
            format!("{:?}", run(&[(Dir::Client, a)])),
            format!("{rec_a:?}")
        );
    }

    #[test]
    fn sniffing_names_the_sender() {
        let ch = initial(V1, Dir::Client, DCID, 0, &crypto_frame(0, &client_hello()));
        assert_eq!(sniff(&ch, false, false), Some(Sender::Client));
        let (_, sh) = server_flight(V1, DCID);
        assert_eq!(sniff(&sh, false, false), None);
        assert_eq!(sniff(&[0x40, 1, 2, 3], true, false), None);
        // A server Initial is recognisable as such only on a QUIC port.
        assert_eq!(sniff(&sh, true, false), Some(Sender::Server));
        // An unknown version is QUIC only on a QUIC port.
        let odd = [0xc0, 0x12, 0x34, 0x56, 0x78, 0, 0, 1, 2];
        assert_eq!(sniff(&odd, false, false), None);
        assert_eq!(sniff(&odd, true, false), Some(Sender::Either));
        // Google QUIC is QUIC anywhere.
        let gquic = [0xc0, 0x51, 0x30, 0x35, 0x30, 0, 0, 1, 2];
        assert_eq!(sniff(&gquic, false, false), Some(Sender::Either));
    }

    #[test]
    fn greased_fixed_bits_are_read_once_advertised() {
        let hello = crypto_frame(0, &client_hello_with(GREASE_PARAMS));
        // The client may clear the bit too (it may remember the server's parameters).
        let greased = Initial {
            dcid: DCID,
            greased: true,
            ..Initial::default()
        };
        let ch = greased.build(V1, Dir::Client, DCID, 0, &hello);
        let sh = Initial {
            dcid: SCID,
            greased: true,
            ..Initial::default()
        };
        let mut flight = sh.build(V1, Dir::Server, DCID, 0, &crypto_frame(0, &server_hello()));
        flight.extend([0x01; 30]); // a greased short header coalesced after it
        let r = run(&[
            (Dir::Client, ch),
            (Dir::Server, flight.clone()),
            (Dir::Client, vec![0x3f; 40]),
        ]);
        let tls = r.tls.clone().unwrap();
        assert_eq!(tls.version, Some(Version::TLS13));
        assert!(tls.established);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        // Without the parameter in the ClientHello, the server may not clear it.
        let plain = initial(V1, Dir::Client, DCID, 0, &crypto_frame(0, &client_hello()));
        let r = run(&[(Dir::Client, plain), (Dir::Server, flight)]);
        assert!(r.has_note(Note::QuicMalformed));
        assert_eq!(r.tls.unwrap().version, None);
    }

    #[test]
    fn zero_padding_after_the_packets_is_not_a_short_header() {
        let mut ch = initial(V1, Dir::Client, DCID, 0, &crypto_frame(0, &client_hello()));
        ch.resize(MIN_CLIENT_DATAGRAM, 0);
        let mut flight = server_flight(V1, DCID).1;
        flight.truncate(flight.len() - 31); // the server's Initial alone
        flight.resize(MIN_CLIENT_DATAGRAM, 0);
        let r = run(&[(Dir::Client, ch), (Dir::Server, flight)]);
        let tls = r.tls.unwrap();
        assert_eq!(tls.version, Some(Version::TLS13));
        assert!(!tls.established, "padding taken for 1-RTT packets");
    }

    #[test]
    fn after_version_negotiation_the_new_initial_is_followed() {
        // The client's first Initial is in 0x1a2a3a4a (reserved to force negotiation).
        let mut odd = vec![0xc0, 0x1a, 0x2a, 0x3a, 0x4a, 8];
        odd.extend(DCID);
        odd.push(SCID.len() as u8);
        odd.extend(SCID);
        odd.extend([7; 1200]);
        let mut vn = vec![0x80, 0, 0, 0, 0, SCID.len() as u8];
        vn.extend(SCID);
        vn.push(8);
        vn.extend(DCID);
        vn.extend([0, 0, 0, 1]);
        let new_cid = [0x11; 8];
        let ch = initial(
            V1,
            Dir::Client,
            &new_cid,
            0,
            &crypto_frame(0, &client_hello()),
        );
        let mut q = QuicAnalyzer::new();
        let mut r = rec();
        q.on_datagram(Dir::Client, &odd, &mut r);
        q.on_datagram(Dir::Server, &vn, &mut r);
        assert!(!q.is_done(), "stopped at the unknown version");
        for (dir, d) in [
            (Dir::Client, ch),
            server_flight(V1, &new_cid),
            (Dir::Client, vec![0x41; 40]),
        ] {
            q.on_datagram(dir, &d, &mut r);
        }
        q.finish(&mut r);
        let quic = r.quic.clone().unwrap();
        assert_eq!(quic.version, "1");
        assert_eq!(quic.dcid, hex(&new_cid));
        assert_eq!(quic.offered_versions, vec!["1"]);
        assert_eq!(r.tls.unwrap().version, Some(Version::TLS13));
        assert_eq!(r.notes, vec![Note::QuicVersionNegotiation]);
        // A server that answers in the client's version: nothing to negotiate.
        let mut q = QuicAnalyzer::new();
        let mut r = rec();
        q.on_datagram(Dir::Client, &odd, &mut r);
        q.on_datagram(Dir::Server, &odd, &mut r);
        assert!(q.is_done());
        let mut q = QuicAnalyzer::new();
        q.on_datagram(Dir::Client, &odd, &mut r);
        q.on_datagram(Dir::Server, &[0x41; 30], &mut r);
        assert!(q.is_done());
    }

    #[test]
    fn a_client_initial_cut_by_the_snap_length_still_gives_the_keys() {
        let ch = initial(V1, Dir::Client, DCID, 0, &crypto_frame(0, &client_hello()));
        let cut = &ch[..120];
        let mut q = QuicAnalyzer::new();
        let mut r = rec();
        q.on_datagram_cut(Dir::Client, cut, true, &mut r);
        q.on_datagram(Dir::Server, &server_flight(V1, DCID).1, &mut r);
        q.finish(&mut r);
        let tls = r.tls.clone().unwrap();
        assert_eq!(tls.version, Some(Version::TLS13));
        assert!(tls.client_hello.is_none());
        assert_eq!(r.quic.unwrap().dcid, "8394c8f03e515708");
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        // The same bytes not cut by the capture are malformed.
        assert!(run(&[(Dir::Client, cut.to_vec())]).has_note(Note::QuicMalformed));
        // Cut inside the connection IDs: nothing to learn, nothing breaks.
        let mut q = QuicAnalyzer::new();
        let mut r = rec();
        q.on_datagram_cut(Dir::Client, &ch[..9], true, &mut r);
        q.on_datagram(Dir::Server, &server_flight(V1, DCID).1, &mut r);
        assert!(r.has_note(Note::QuicDecryptFailed));
    }

    #[test]
    fn an_initial_that_does_not_open_is_not_thereby_the_servers() {
        // The client's Initial after the server answered: its DCID is the server's
        // connection ID, its keys still the first ones; padded to 1200 bytes.
        let later = Initial {
            dcid: SERVER_CID,
            ..Initial::default()
        };
        let mut d = later.build(V1, Dir::Client, DCID, 1, &[0x02, 0, 0, 0, 0]);
        d.resize(MIN_CLIENT_DATAGRAM, 0);
        assert_eq!(sniff(&d, true, false), Some(Sender::Either));
        assert_eq!(sniff(&d, false, false), None);
        // A token marks a client.
        let token = Initial {
            dcid: SERVER_CID,
            token: b"tok",
            ..Initial::default()
        };
        let d = token.build(V1, Dir::Client, DCID, 1, &[0x02, 0, 0, 0, 0]);
        assert_eq!(sniff(&d, true, false), Some(Sender::Client));
        // A greased client Initial opens, and is the client's anywhere.
        let greased = Initial {
            dcid: DCID,
            greased: true,
            ..Initial::default()
        };
        let d = greased.build(V1, Dir::Client, DCID, 0, &crypto_frame(0, &client_hello()));
        assert_eq!(sniff(&d, false, false), Some(Sender::Client));
        // Cut by the snap length: QUIC when its DCID is a client's first one.
        let ch = initial(V1, Dir::Client, DCID, 0, &crypto_frame(0, &client_hello()));
        assert_eq!(sniff(&ch[..120], false, true), Some(Sender::Either));
        assert_eq!(sniff(&ch[..120], false, false), None);
        let short_cid = initial(
            V1,
            Dir::Client,
            &DCID[..4],
            0,
            &crypto_frame(0, &client_hello()),
        );
        assert_eq!(sniff(&short_cid[..120], false, true), None);
        assert_eq!(sniff(&short_cid[..120], true, true), Some(Sender::Either));
    }
}
