//! DTLS 1.0, 1.2 and 1.3 over UDP (RFC 6347, RFC 9147): the record layer with
//! epoch and sequence number, handshake messages reassembled from fragments
//! (message_seq, fragment offset and length, retransmissions), HelloVerifyRequest
//! cookies, and the hellos handed to the TLS hello analysis.

use super::tls::{Carrier, Hello, MAX_ALERTS, alert_name, hello_message};
use crate::record::{Alert, Dir, DtlsInfo, FlowRecord, Note, PerDir};
use crate::version::Version;

/// Largest hello reassembled; bigger ones are skipped with a note. The buffer is
/// allocated at the first fragment, so this and [`MAX_PARTIAL`] bound a flow's memory.
pub const MAX_MESSAGE_LEN: usize = 16 * 1024;
/// Handshake messages being reassembled at once per direction.
pub const MAX_PARTIAL: usize = 2;
/// Distinct fragment ranges remembered per message (more are a note, not memory).
pub const MAX_RANGES: usize = 64;

const CT_CHANGE_CIPHER_SPEC: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;
/// RFC 9146 record with a connection ID.
const CT_TLS12_CID: u8 = 25;

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_HELLO_VERIFY_REQUEST: u8 = 3;

const RECORD_HEADER_LEN: usize = 13;
const FRAGMENT_HEADER_LEN: usize = 12;

/// A DTLS record version: 1.0, 1.2 (also 1.3's legacy record version), and
/// OpenSSL's pre-standard `0x0100`.
fn record_version(v: u16) -> bool {
    matches!(v, 0xfeff | 0xfefd | 0xfefc | 0x0100)
}

/// Why bytes did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    Truncated,
    Invalid,
}

/// A DTLSPlaintext (or DTLS 1.2 ciphertext) record header and its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub content_type: u8,
    pub version: u16,
    pub epoch: u16,
    pub seq: u64,
    pub body: &'a [u8],
}

/// Parses the record at the start of `d`; returns it and the rest of the datagram.
pub fn record(d: &[u8]) -> Result<(Record<'_>, &[u8]), Bad> {
    let h: &[u8; RECORD_HEADER_LEN] = d
        .get(..RECORD_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(Bad::Truncated)?;
    let [content_type, v0, v1, e0, e1, s0, s1, s2, s3, s4, s5, l0, l1] = *h;
    let version = u16::from_be_bytes([v0, v1]);
    if !(CT_CHANGE_CIPHER_SPEC..=CT_TLS12_CID).contains(&content_type) || !record_version(version) {
        return Err(Bad::Invalid);
    }
    let epoch = u16::from_be_bytes([e0, e1]);
    let seq = u64::from_be_bytes([0, 0, s0, s1, s2, s3, s4, s5]);
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    let body = d
        .get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len)
        .ok_or(Bad::Truncated)?;
    let rest = d.get(RECORD_HEADER_LEN + len..).unwrap_or_default();
    Ok((
        Record {
            content_type,
            version,
            epoch,
            seq,
            body,
        },
        rest,
    ))
}

/// The length of a DTLS 1.3 unified-header (encrypted) record at the start of `d`
/// (RFC 9147 §4), assuming no connection ID was negotiated when the C bit is clear.
pub fn unified_record_len(d: &[u8]) -> Result<usize, Bad> {
    let first = *d.first().ok_or(Bad::Truncated)?;
    if first & 0xe0 != 0x20 || first & 0x10 != 0 {
        // Not a unified header, or one with a connection ID of unknown length.
        return Err(Bad::Invalid);
    }
    let seq_len = if first & 0x08 != 0 { 2 } else { 1 };
    if first & 0x04 == 0 {
        return Ok(d.len());
    }
    let at = 1 + seq_len;
    let l: [u8; 2] = d
        .get(at..at + 2)
        .and_then(|l| l.try_into().ok())
        .ok_or(Bad::Truncated)?;
    let len = at + 2 + usize::from(u16::from_be_bytes(l));
    if len > d.len() {
        return Err(Bad::Truncated);
    }
    Ok(len)
}

/// One handshake fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub msg_type: u8,
    pub length: usize,
    pub message_seq: u16,
    pub offset: usize,
    pub data: &'a [u8],
}

fn be24(b: &[u8]) -> usize {
    b.iter()
        .take(3)
        .fold(0, |acc, &x| (acc << 8) | usize::from(x))
}

/// Parses the handshake fragment at the start of a record body.
pub fn fragment(b: &[u8]) -> Result<(Fragment<'_>, &[u8]), Bad> {
    let h: &[u8; FRAGMENT_HEADER_LEN] = b
        .get(..FRAGMENT_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(Bad::Truncated)?;
    let [msg_type, l0, l1, l2, q0, q1, o0, o1, o2, f0, f1, f2] = *h;
    let length = be24(&[l0, l1, l2]);
    let offset = be24(&[o0, o1, o2]);
    let frag_len = be24(&[f0, f1, f2]);
    if offset + frag_len > length {
        return Err(Bad::Invalid);
    }
    let data = b
        .get(FRAGMENT_HEADER_LEN..FRAGMENT_HEADER_LEN + frag_len)
        .ok_or(Bad::Truncated)?;
    Ok((
        Fragment {
            msg_type,
            length,
            message_seq: u16::from_be_bytes([q0, q1]),
            offset,
            data,
        },
        b.get(FRAGMENT_HEADER_LEN + frag_len..).unwrap_or_default(),
    ))
}

/// A DTLS ClientHello body in TLS's layout: the cookie field taken out.
pub fn client_hello_without_cookie(body: &[u8]) -> Option<Vec<u8>> {
    let sid_len = usize::from(*body.get(34)?);
    let cookie_at = 35 + sid_len;
    let cookie_len = usize::from(*body.get(cookie_at)?);
    let rest = body.get(cookie_at + 1 + cookie_len..)?;
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(body.get(..cookie_at)?);
    out.extend_from_slice(rest);
    Some(out)
}

/// A handshake message being put back together from fragments.
///
/// Invariant: `ranges` are sorted, disjoint, non-adjacent, within `0..buf.len()`.
#[derive(Debug)]
struct Partial {
    message_seq: u16,
    msg_type: u8,
    buf: Vec<u8>,
    ranges: Vec<(usize, usize)>,
}

impl Partial {
    fn add(&mut self, offset: usize, data: &[u8]) -> bool {
        let end = offset + data.len();
        if let Some(dst) = self.buf.get_mut(offset..end) {
            dst.copy_from_slice(data);
        }
        let mut start = offset;
        let mut stop = end;
        self.ranges.retain(|&(a, b)| {
            if b < start || a > stop {
                true
            } else {
                start = start.min(a);
                stop = stop.max(b);
                false
            }
        });
        let at = self.ranges.partition_point(|&(a, _)| a < start);
        self.ranges.insert(at, (start, stop));
        self.ranges.len() <= MAX_RANGES
    }

    fn complete(&self) -> bool {
        self.ranges.as_slice() == [(0, self.buf.len())] || self.buf.is_empty()
    }
}

#[derive(Debug, Default)]
struct Side {
    partial: Vec<Partial>,
    /// message_seq of hellos already read: retransmissions are ignored.
    read: Vec<u16>,
    /// This side sent records of epoch 1 and up (or DTLS 1.3 encrypted records).
    encrypted: bool,
    hello: bool,
}

/// Per-flow DTLS state. Writes what it learns into the flow record.
#[derive(Debug, Default)]
pub struct DtlsAnalyzer {
    side: PerDir<Side>,
    server_hello: bool,
    done: bool,
}

/// What the first record of a datagram says about its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
    Either,
}

/// Whether `d` starts with a DTLS record, and who could have sent it.
pub fn sniff(d: &[u8]) -> Option<Sender> {
    let (r, _) = record(d).ok()?;
    if r.content_type != CT_HANDSHAKE || r.epoch != 0 {
        return Some(Sender::Either);
    }
    Some(match fragment(r.body).ok()?.0.msg_type {
        HS_CLIENT_HELLO => Sender::Client,
        HS_SERVER_HELLO | HS_HELLO_VERIFY_REQUEST => Sender::Server,
        _ => Sender::Either,
    })
}

impl DtlsAnalyzer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes this analyzer holds on the heap (for memory accounting): the
    /// messages being reassembled (their slots, buffers and ranges) and the
    /// sequence numbers of those read.
    pub fn heap_bytes(&self) -> usize {
        let side = |s: &Side| {
            s.partial
                .iter()
                .map(|p| p.buf.capacity() + 16 * p.ranges.capacity())
                .sum::<usize>()
                + s.partial.capacity() * std::mem::size_of::<Partial>()
                + 2 * s.read.capacity()
        };
        side(&self.side.client) + side(&self.side.server)
    }

    /// Nothing more to learn: the handshake is understood, or failed.
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn info(rec: &mut FlowRecord) -> &mut DtlsInfo {
        rec.dtls.get_or_insert_with(DtlsInfo::default)
    }

    /// One UDP datagram's payload from `dir`.
    pub fn on_datagram(&mut self, dir: Dir, d: &[u8], rec: &mut FlowRecord) {
        rec.tls_mut();
        Self::info(rec);
        // STUN, RTP and others share WebRTC's 5-tuple (RFC 7983): only 20..=63 is DTLS.
        if !matches!(d.first(), Some(20..=63)) {
            return;
        }
        let mut rest = d;
        while !rest.is_empty() && !self.done {
            if rest.first().is_some_and(|b| b & 0xe0 == 0x20) {
                match unified_record_len(rest) {
                    Ok(n) => {
                        self.encrypted(dir, rec);
                        rest = rest.get(n..).unwrap_or_default();
                        continue;
                    }
                    Err(_) => {
                        self.encrypted(dir, rec);
                        return;
                    }
                }
            }
            let (r, next) = match record(rest) {
                Ok(x) => x,
                Err(_) => {
                    rec.note(Note::DtlsParseError);
                    return;
                }
            };
            rest = next;
            let info = Self::info(rec);
            info.max_epoch = info.max_epoch.max(r.epoch);
            if r.epoch > 0
                || r.content_type == CT_APPLICATION_DATA
                || r.content_type == CT_TLS12_CID
            {
                self.encrypted(dir, rec);
                continue;
            }
            match r.content_type {
                CT_HANDSHAKE => self.handshake(dir, r, rec),
                CT_ALERT => {
                    if let [level, desc] = r.body {
                        let at = rec.at;
                        let tls = rec.tls_mut();
                        if tls.alerts.len() < MAX_ALERTS {
                            tls.alerts
                                .push(Alert::new(dir, *level, alert_name(*desc), at));
                        }
                        if *level == 2 {
                            self.done = true;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn encrypted(&mut self, dir: Dir, rec: &mut FlowRecord) {
        self.side.get_mut(dir).encrypted = true;
        crate::record::frames::first_at(&mut rec.frames.first_encrypted, rec.at);
        if self.server_hello && self.side.client.encrypted && self.side.server.encrypted {
            rec.tls_mut().established = true;
            self.done = true;
        }
    }

    fn handshake(&mut self, dir: Dir, r: Record<'_>, rec: &mut FlowRecord) {
        let mut body = r.body;
        while !body.is_empty() {
            let (f, next) = match fragment(body) {
                Ok(x) => x,
                Err(_) => {
                    rec.note(Note::DtlsParseError);
                    return;
                }
            };
            body = next;
            let wanted = matches!(
                f.msg_type,
                HS_CLIENT_HELLO | HS_SERVER_HELLO | HS_HELLO_VERIFY_REQUEST
            );
            let side = self.side.get_mut(dir);
            if !wanted || side.read.contains(&f.message_seq) {
                continue;
            }
            if f.length > MAX_MESSAGE_LEN {
                rec.note(Note::DtlsFragmentCap);
                continue;
            }
            let at = match side.partial.iter().position(|p| {
                p.message_seq == f.message_seq
                    && p.msg_type == f.msg_type
                    && p.buf.len() == f.length
            }) {
                Some(i) => i,
                None => {
                    if side.partial.len() >= MAX_PARTIAL {
                        rec.note(Note::DtlsFragmentCap);
                        side.partial.remove(0);
                    }
                    side.partial.push(Partial {
                        message_seq: f.message_seq,
                        msg_type: f.msg_type,
                        buf: vec![0; f.length],
                        ranges: Vec::new(),
                    });
                    side.partial.len() - 1
                }
            };
            let Some(p) = side.partial.get_mut(at) else {
                continue;
            };
            if !p.add(f.offset, f.data) {
                rec.note(Note::DtlsFragmentCap);
                side.partial.remove(at);
                continue;
            }
            if !p.complete() {
                continue;
            }
            let p = side.partial.remove(at);
            if side.read.len() < 16 {
                side.read.push(p.message_seq);
            }
            self.message(dir, p.msg_type, &p.buf, r.version, rec);
        }
    }

    fn message(&mut self, dir: Dir, msg_type: u8, body: &[u8], record: u16, rec: &mut FlowRecord) {
        let record_version = Some(Version(record));
        let hello = match (msg_type, dir) {
            (HS_HELLO_VERIFY_REQUEST, Dir::Server) => {
                Self::info(rec).hello_verify_request = true;
                return;
            }
            (HS_CLIENT_HELLO, _) => match client_hello_without_cookie(body) {
                Some(b) => hello_message(Carrier::Dtls, dir, msg_type, &b, record_version, rec),
                None => {
                    rec.note(Note::TlsParseError);
                    Hello::Invalid
                }
            },
            _ => hello_message(Carrier::Dtls, dir, msg_type, body, record_version, rec),
        };
        match hello {
            Hello::ClientHello => self.side.client.hello = true,
            Hello::ServerHello { version } => {
                self.side.server.hello = true;
                self.server_hello = true;
                if version == Version::DTLS13 {
                    // Everything after a DTLS 1.3 ServerHello is encrypted.
                    self.side.server.encrypted = true;
                }
            }
            _ => {}
        }
    }

    /// The flow ended: settle what the record says.
    pub fn finish(&mut self, rec: &mut FlowRecord) {
        rec.encryption = crate::record::Encryption::Dtls;
        rec.app_protocol = Some("dtls".to_string());
        Self::info(rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Code;
    use crate::record::Endpoint;
    use crate::time::Timestamp;

    fn rec() -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port,
        };
        FlowRecord::new(1, Timestamp::default(), ep(40000), ep(4433))
    }

    fn rec_hdr(ct: u8, version: u16, epoch: u16, seq: u64, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ct];
        r.extend(version.to_be_bytes());
        r.extend(epoch.to_be_bytes());
        r.extend(&seq.to_be_bytes()[2..]);
        r.extend((body.len() as u16).to_be_bytes());
        r.extend(body);
        r
    }

    fn frag(msg_type: u8, msg: &[u8], seq: u16, off: usize, len: usize) -> Vec<u8> {
        let mut f = vec![msg_type];
        f.extend(&(msg.len() as u32).to_be_bytes()[1..]);
        f.extend(seq.to_be_bytes());
        f.extend(&(off as u32).to_be_bytes()[1..]);
        f.extend(&(len as u32).to_be_bytes()[1..]);
        f.extend(&msg[off..off + len]);
        f
    }

    /// A DTLS 1.2 ClientHello body with a cookie, SNI `dtls.example`, and padding.
    fn client_hello(cookie: &[u8]) -> Vec<u8> {
        let mut b = vec![0xfe, 0xfd];
        b.extend([7u8; 32]);
        b.push(0);
        b.push(cookie.len() as u8);
        b.extend(cookie);
        b.extend([0x00, 0x02, 0xc0, 0x2b, 0x01, 0x00]);
        let sni = b"dtls.example";
        let mut ext = vec![0x00, 0x00];
        ext.extend(((sni.len() + 5) as u16).to_be_bytes());
        ext.extend(((sni.len() + 3) as u16).to_be_bytes());
        ext.push(0);
        ext.extend((sni.len() as u16).to_be_bytes());
        ext.extend(sni);
        ext.extend([0x00, 0x15, 0x01, 0x00]);
        ext.extend([0u8; 256]);
        b.extend((ext.len() as u16).to_be_bytes());
        b.extend(ext);
        b
    }

    fn server_hello(version: u16) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend([9u8; 32]);
        b.push(0);
        b.extend([0xc0, 0x2b, 0x00]);
        b
    }

    /// A DTLS 1.2 exchange with a HelloVerifyRequest; the second ClientHello
    /// travels in `pieces` fragments, the last datagram carries two records.
    fn transcript(pieces: usize) -> Vec<(Dir, Vec<u8>)> {
        let mut t = Vec::new();
        let ch1 = client_hello(&[]);
        t.push((
            Dir::Client,
            rec_hdr(22, 0xfeff, 0, 0, &frag(1, &ch1, 0, 0, ch1.len())),
        ));
        let hvr = [0xfe, 0xff, 4, 1, 2, 3, 4];
        t.push((
            Dir::Server,
            rec_hdr(22, 0xfeff, 0, 0, &frag(3, &hvr, 0, 0, hvr.len())),
        ));
        let ch2 = client_hello(&[1, 2, 3, 4]);
        let step = ch2.len().div_ceil(pieces);
        let mut off = 0;
        let mut seq = 1;
        while off < ch2.len() {
            let len = step.min(ch2.len() - off);
            t.push((
                Dir::Client,
                rec_hdr(22, 0xfefd, 0, seq, &frag(1, &ch2, 1, off, len)),
            ));
            off += len;
            seq += 1;
        }
        let sh = server_hello(0xfefd);
        let mut flight = rec_hdr(22, 0xfefd, 0, 1, &frag(2, &sh, 1, 0, sh.len()));
        flight.extend(rec_hdr(20, 0xfefd, 0, 2, &[1]));
        flight.extend(rec_hdr(22, 0xfefd, 1, 0, &[0xaa; 40]));
        t.push((Dir::Server, flight));
        t.push((Dir::Client, rec_hdr(22, 0xfefd, 1, 0, &[0xbb; 40])));
        t
    }

    fn run(t: &[(Dir, Vec<u8>)]) -> FlowRecord {
        let mut r = rec();
        let mut a = DtlsAnalyzer::new();
        for (dir, d) in t {
            a.on_datagram(*dir, d, &mut r);
        }
        a.finish(&mut r);
        r
    }

    #[test]
    fn hello_verify_request_then_dtls12() {
        let r = run(&transcript(1));
        let tls = r.tls.clone().unwrap();
        assert_eq!(tls.version, Some(Version::DTLS12));
        assert!(tls.established);
        let ch = tls.client_hello.unwrap();
        assert_eq!(ch.sni.as_deref(), Some("dtls.example"));
        assert_eq!(ch.version, Version::DTLS12);
        // The first ClientHello (in a DTLS 1.0 record) is the one reported.
        assert_eq!(ch.record_version, Some(Version::DTLS10));
        assert_eq!(ch.retry_group, None);
        let dtls = r.dtls.unwrap();
        assert!(dtls.hello_verify_request);
        assert_eq!(dtls.max_epoch, 1);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
    }

    /// Split invariance: any number of fragments, in any order, retransmitted.
    #[test]
    fn fragment_reassembly_is_split_invariant() {
        let want = serde_json::to_value(run(&transcript(1))).unwrap();
        for pieces in 2..40 {
            let t = transcript(pieces);
            assert_eq!(serde_json::to_value(run(&t)).unwrap(), want, "{pieces}");
            // Reverse the ClientHello fragments and send each twice.
            let mut r: Vec<_> = t[..2].to_vec();
            let frags: Vec<_> = t[2..t.len() - 2].to_vec();
            for f in frags.iter().rev() {
                r.push(f.clone());
                r.push(f.clone());
            }
            r.extend(t[t.len() - 2..].iter().cloned());
            assert_eq!(serde_json::to_value(run(&r)).unwrap(), want, "{pieces} rev");
        }
    }

    #[test]
    fn dtls10_and_sniffing() {
        let ch = client_hello(&[]);
        let d = rec_hdr(22, 0xfeff, 0, 0, &frag(1, &ch, 0, 0, ch.len()));
        assert_eq!(sniff(&d), Some(Sender::Client));
        let sh = server_hello(0xfeff);
        let s = rec_hdr(22, 0xfeff, 0, 0, &frag(2, &sh, 0, 0, sh.len()));
        assert_eq!(sniff(&s), Some(Sender::Server));
        assert_eq!(sniff(b"\x16\x03\x01\x00\x05hello"), None);
        assert_eq!(sniff(&d[..20]), None);
        let r = run(&[(Dir::Client, d), (Dir::Server, s)]);
        assert_eq!(r.tls.unwrap().version, Some(Version::DTLS10));
        assert_eq!(r.encryption, crate::record::Encryption::Dtls);
    }

    #[test]
    fn dtls13_selected_by_supported_versions_then_unified_headers() {
        let ch = client_hello(&[]);
        let mut sh = vec![0xfe, 0xfd];
        sh.extend([9u8; 32]);
        sh.push(0);
        sh.extend([
            0x13, 0x01, 0x00, 0x00, 0x06, 0x00, 0x2b, 0x00, 0x02, 0xfe, 0xfc,
        ]);
        // Unified header: 001 C=0 S=1 L=1 epoch bits 2, 16-bit sequence, length.
        let encrypted = |n: u8| {
            let mut r = vec![0x2e, 0, n, 0, 20];
            r.extend([0xee; 20]);
            r
        };
        let mut server = rec_hdr(22, 0xfefd, 0, 0, &frag(2, &sh, 0, 0, sh.len()));
        server.extend(encrypted(0));
        let r = run(&[
            (
                Dir::Client,
                rec_hdr(22, 0xfefd, 0, 0, &frag(1, &ch, 0, 0, ch.len())),
            ),
            (Dir::Server, server),
            (Dir::Client, encrypted(1)),
        ]);
        let tls = r.tls.clone().unwrap();
        assert_eq!(tls.version, Some(Version::DTLS13));
        assert!(tls.established);
        assert_eq!(
            crate::assess::assess(&r, &Default::default())
                .iter()
                .map(|f| f.code)
                .collect::<Vec<_>>(),
            vec![Code::Tls13]
        );
    }

    #[test]
    fn parsers_need_more_and_invalid() {
        assert_eq!(record(&[22, 0xfe, 0xfd]), Err(Bad::Truncated));
        assert_eq!(
            record(&[22, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(Bad::Invalid)
        );
        let mut r = rec_hdr(22, 0xfefd, 0, 0, &[1, 2, 3]);
        r.truncate(15);
        assert_eq!(record(&r), Err(Bad::Truncated));
        // A fragment claiming to run past its message.
        let f = [1, 0, 0, 4, 0, 0, 0, 0, 3, 0, 0, 2, 9, 9];
        assert_eq!(fragment(&f).map(|x| x.0.offset), Err(Bad::Invalid));
        assert_eq!(fragment(&f[..5]), Err(Bad::Truncated));
        assert_eq!(unified_record_len(&[0x2c, 1, 2, 0, 3, 9, 9, 9]), Ok(8));
        assert_eq!(
            unified_record_len(&[0x2c, 1, 2, 0, 9, 9]),
            Err(Bad::Truncated)
        );
        assert_eq!(unified_record_len(&[0x3c, 1]), Err(Bad::Invalid));
    }

    #[test]
    fn garbage_and_caps_never_panic_and_stay_bounded() {
        let mut r = rec();
        let mut a = DtlsAnalyzer::new();
        // Many distinct huge-message fragments: at most MAX_PARTIAL held.
        for seq in 0..100u16 {
            let mut f = vec![1, 0, 0x10, 0x00, 0, 0];
            f[4..6].copy_from_slice(&seq.to_be_bytes());
            f.extend([0, 0, 0, 0, 0, 1, 0xab]);
            a.on_datagram(Dir::Client, &rec_hdr(22, 0xfefd, 0, 0, &f), &mut r);
        }
        assert!(a.side.client.partial.len() <= MAX_PARTIAL);
        assert!(r.has_note(Note::DtlsFragmentCap));
        let mut r = rec();
        let huge = [1, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0xab];
        a.on_datagram(Dir::Client, &rec_hdr(22, 0xfefd, 0, 0, &huge), &mut r);
        assert!(r.has_note(Note::DtlsFragmentCap));
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + 22) as u8).collect();
            a.on_datagram(Dir::Server, &junk, &mut r);
        }
    }
}
