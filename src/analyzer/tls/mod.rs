//! TLS analysis of one connection: record layer, handshake defragmentation,
//! ClientHello/ServerHello, alerts, SSLv2 — fed per direction, bounded memory.

pub mod certificate;
pub mod cipher;
pub mod decrypt;
pub mod fingerprint;
pub mod handshake13;
pub mod hello;
pub mod sslv2;
pub mod unseal;

use crate::keylog::KeyLog;
use crate::record::{Alert, ClientHelloInfo, Dir, FlowRecord, Note, PerDir, ServerHelloInfo};
use crate::version::Version;
use cipher::is_grease;
pub use fingerprint::Carrier;
pub use hello::{
    ParsedClientHello, ParsedServerHello, client_hello, client_hello_over, server_hello,
};
use std::sync::Arc;
use unseal::{Opened, Phase, Unseal};

/// Largest TLS record body accepted (2^14 plus the 2048 bytes RFC 5246 allows for expansion).
pub const MAX_RECORD_LEN: usize = 16384 + 2048;
/// Largest ClientHello/ServerHello collected for parsing; bigger ones are skipped with a note.
pub const MAX_HELLO_LEN: usize = 64 * 1024;
/// Alerts kept per flow; a peer sending endless warnings cannot grow the record.
pub const MAX_ALERTS: usize = 16;
/// Largest SSLv2 hello record collected.
pub const MAX_SSLV2_HELLO: usize = 32 * 1024;
/// Largest Certificate message collected (a chain of a dozen 4 KiB certificates
/// and then some); a bigger one is skipped with a note.
pub const MAX_CERTIFICATE_LEN: usize = 128 * 1024;
/// Largest ServerKeyExchange collected (an 8192-bit DH group and its signature fit easily).
pub const MAX_KEY_EXCHANGE_LEN: usize = 8 * 1024;
/// Records read past an established handshake while waiting for the first
/// application-data record (`frames.first_encrypted`); then the flow is bypassed.
pub const MAX_RECORDS_AFTER_HANDSHAKE: u32 = 8;

const CT_CHANGE_CIPHER_SPEC: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;
const CT_HEARTBEAT: u8 = 24;

/// Handshake message types.
pub const HS_CLIENT_HELLO: u8 = 1;
pub const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;
const HS_SERVER_KEY_EXCHANGE: u8 = 12;
const HS_SERVER_HELLO_DONE: u8 = 14;
const HS_CERTIFICATE_STATUS: u8 = 22;

/// How many bytes of a handshake message of this type are collected for parsing;
/// `None` for types only counted.
fn collect_cap(msg_type: u8) -> Option<usize> {
    match msg_type {
        HS_CLIENT_HELLO | HS_SERVER_HELLO => Some(MAX_HELLO_LEN),
        HS_CERTIFICATE => Some(MAX_CERTIFICATE_LEN),
        HS_SERVER_KEY_EXCHANGE => Some(MAX_KEY_EXCHANGE_LEN),
        _ => None,
    }
}

/// What the first bytes of a direction look like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    NeedMore,
    /// A TLS record header (any content type).
    Tls {
        handshake: bool,
        client_hello: bool,
    },
    /// An SSLv2 CLIENT-HELLO or SERVER-HELLO record.
    Sslv2 {
        client_hello: bool,
    },
    No,
}

/// Bytes of a server's first reply judged when deciding whether it is plaintext.
const PLAINTEXT_SAMPLE: usize = 64;

/// Whether `b` starts with a handshake record carrying a ServerHello: its sender is the
/// server (a HelloRetryRequest is a ServerHello too).
pub fn starts_with_server_hello(b: &[u8]) -> bool {
    matches!(
        record_start(b),
        Start::Tls {
            handshake: true,
            ..
        }
    ) && b.get(5) == Some(&HS_SERVER_HELLO)
}

/// Decides whether `b` starts with a TLS or SSLv2 record. Used to find TLS on any
/// port, and to check the first bytes after a STARTTLS go-ahead.
pub fn record_start(b: &[u8]) -> Start {
    let Some(&b0) = b.first() else {
        return Start::NeedMore;
    };
    if (CT_CHANGE_CIPHER_SPEC..=CT_HEARTBEAT).contains(&b0) {
        match (b.get(1), b.get(2)) {
            (None, _) | (Some(3), None) => return Start::NeedMore,
            (Some(3), Some(&minor)) if minor <= 4 => {
                let (Some(&hi), Some(&lo)) = (b.get(3), b.get(4)) else {
                    return Start::NeedMore;
                };
                let len = usize::from(hi) << 8 | usize::from(lo);
                if len == 0 && b0 != CT_APPLICATION_DATA || len > MAX_RECORD_LEN {
                    return Start::No;
                }
                let handshake = b0 == CT_HANDSHAKE;
                return match b.get(5) {
                    None if handshake => Start::NeedMore,
                    first => Start::Tls {
                        handshake,
                        client_hello: handshake && first == Some(&HS_CLIENT_HELLO),
                    },
                };
            }
            _ => {}
        }
    }
    match sslv2::record_header(b) {
        sslv2::Outcome::NeedMore => Start::NeedMore,
        sslv2::Outcome::Invalid => Start::No,
        sslv2::Outcome::Done(h) => {
            let at = h.header_len;
            let (Some(&msg), Some(&v0), Some(&v1)) = (b.get(at), b.get(at + 1), b.get(at + 2))
            else {
                return Start::NeedMore;
            };
            let version = u16::from_be_bytes([v0, v1]);
            let plausible_version = version == 0x0002 || (0x0300..=0x0304).contains(&version);
            match msg {
                sslv2::MSG_CLIENT_HELLO if plausible_version && h.body_len >= 9 => {
                    Start::Sslv2 { client_hello: true }
                }
                sslv2::MSG_SERVER_HELLO if h.body_len >= 11 && h.header_len == 2 => Start::Sslv2 {
                    client_hello: false,
                },
                _ => Start::No,
            }
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Expecting a record header.
    #[default]
    Header,
    Tls {
        content_type: u8,
        remaining: usize,
    },
    Sslv2 {
        remaining: usize,
        /// Collect the body for parsing (hello and error messages).
        collect: bool,
    },
}

#[derive(Debug, Default)]
struct Handshake {
    hdr: [u8; 4],
    hdr_len: usize,
    remaining: usize,
    collecting: bool,
    buf: Vec<u8>,
}

#[derive(Debug, Default)]
struct Side {
    hdr: [u8; 5],
    hdr_len: usize,
    body: Body,
    hs: Handshake,
    alert: [u8; 2],
    alert_len: usize,
    /// Record version of the record that started the current handshake message.
    record_version: Option<Version>,
    /// This direction has moved past its plaintext handshake.
    encrypted: bool,
    records: u32,
    /// Parsing of this direction stopped (garbage or a hole in the handshake).
    dead: bool,
    sslv2_buf: Vec<u8>,
}

impl Side {
    /// Copies record-header bytes from `data` until the 5-byte header is full;
    /// returns how many it took.
    #[inline]
    fn fill_header(&mut self, data: &[u8]) -> usize {
        let want = 5 - self.hdr_len;
        let n = want.min(data.len());
        for (i, &b) in data.iter().take(n).enumerate() {
            if let Some(slot) = self.hdr.get_mut(self.hdr_len + i) {
                *slot = b;
            }
        }
        self.hdr_len += n;
        n
    }
}

/// Per-flow TLS state. Writes everything it learns into the flow record.
#[derive(Debug, Default)]
pub struct TlsAnalyzer {
    side: PerDir<Side>,
    server_hello: bool,
    /// The client spoke SSLv2 first: SSLv2-format records are expected.
    sslv2_client: bool,
    sslv2: bool,
    tls13: bool,
    done: bool,
    /// Key exchange of the selected suite (TLS 1.0-1.2).
    kx: Option<cipher::KeyExchange>,
    /// The server finished its part of a full handshake (ServerHelloDone).
    server_hello_done: bool,
    /// The server's first bytes were plaintext text, not a TLS record.
    server_plaintext: bool,
    /// The protocol its plaintext names, where the banner says.
    plaintext_protocol: Option<&'static str>,
    /// The run's key table, when it holds any secret.
    keys: Option<Arc<KeyLog>>,
    /// The random of the ClientHello the handshake goes on with (to look its keys up).
    client_random: Option<[u8; 32]>,
    /// Opening the protected TLS 1.3 handshake with the logged secrets.
    unseal: Option<Box<Unseal>>,
    /// Records read since the handshake was seen to be established.
    after_established: u32,
    /// Frames of messages read in the record under way, stamped again when it ends.
    restamp: Restamp,
}

/// The frames of handshake messages read in a record not yet complete. Wireshark
/// shows a message where the record that carries its end is complete, so the
/// frame a message is stamped with is the one that completes its record.
#[derive(Debug, Default)]
struct Restamp {
    client_hello: bool,
    server_hello: bool,
    certificate: bool,
}

impl Restamp {
    /// Remembers which message frames reading one message set.
    fn note(&mut self, before: &crate::record::Frames, after: &crate::record::Frames) {
        self.client_hello |= before.client_hello != after.client_hello;
        self.server_hello |= before.server_hello != after.server_hello;
        self.certificate |= before.certificate != after.certificate;
    }

    /// The record ended in packet `at`: the messages it completed are stamped with it.
    fn apply(&mut self, frames: &mut crate::record::Frames, at: u64) {
        let done = std::mem::take(self);
        for (set, slot) in [
            (done.client_hello, &mut frames.client_hello),
            (done.server_hello, &mut frames.server_hello),
            (done.certificate, &mut frames.certificate),
        ] {
            if set {
                *slot = at;
            }
        }
    }
}

impl TlsAnalyzer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The key table TLS 1.3 handshakes are looked up in; `None` (the default):
    /// no lookup, no cost.
    pub fn set_keys(&mut self, keys: Option<Arc<KeyLog>>) {
        self.keys = keys;
    }

    /// Nothing more to learn: the handshake is understood (or failed, or unreadable).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Heap bytes held by the message buffers (for the flow table's memory cap).
    pub fn heap_bytes(&self) -> usize {
        [&self.side.client, &self.side.server]
            .iter()
            .map(|s| s.hs.buf.capacity() + s.sslv2_buf.capacity())
            .sum::<usize>()
            + self
                .unseal
                .as_ref()
                .map_or(0, |u| std::mem::size_of::<Unseal>() + u.heap_bytes())
    }

    /// A ServerHello (TLS or SSLv2) was seen.
    /// The server answered in plaintext (and which protocol its banner names).
    pub fn server_plaintext(&self) -> Option<Option<&'static str>> {
        self.server_plaintext.then_some(self.plaintext_protocol)
    }

    pub fn saw_server_hello(&self) -> bool {
        self.server_hello
    }

    /// Bytes of one direction, in stream order.
    pub fn on_data(&mut self, dir: Dir, mut data: &[u8], rec: &mut FlowRecord) {
        rec.tls_mut();
        while !data.is_empty() && !self.done {
            let side = self.side.get_mut(dir);
            if side.dead {
                return;
            }
            match side.body {
                Body::Header => {
                    let used = self.header_bytes(dir, data, rec);
                    data = data.get(used..).unwrap_or_default();
                }
                Body::Tls {
                    content_type,
                    remaining,
                } => {
                    let n = remaining.min(data.len());
                    let (chunk, rest) = data.split_at(n);
                    data = rest;
                    let remaining = remaining - n;
                    side.body = Body::Tls {
                        content_type,
                        remaining,
                    };
                    let encrypted = side.encrypted;
                    match content_type {
                        CT_HANDSHAKE if !encrypted => self.handshake_bytes(dir, chunk, false, rec),
                        CT_APPLICATION_DATA => {
                            if let Some(u) = self.unseal.as_mut() {
                                u.push(dir, chunk);
                            }
                        }
                        CT_ALERT if !encrypted => {
                            for &b in chunk {
                                if let Some(slot) = side.alert.get_mut(side.alert_len) {
                                    *slot = b;
                                    side.alert_len += 1;
                                }
                            }
                        }
                        _ => {}
                    }
                    if remaining == 0 {
                        self.record_end(dir, content_type, rec);
                    }
                }
                Body::Sslv2 { remaining, collect } => {
                    let n = remaining.min(data.len());
                    let (chunk, rest) = data.split_at(n);
                    data = rest;
                    let remaining = remaining - n;
                    side.body = Body::Sslv2 { remaining, collect };
                    if collect {
                        side.sslv2_buf.extend_from_slice(chunk);
                    }
                    if remaining == 0 {
                        side.body = Body::Header;
                        side.records += 1;
                        if collect {
                            let buf = std::mem::take(&mut side.sslv2_buf);
                            self.sslv2_message(dir, &buf, rec);
                        }
                        self.check_done(rec);
                    }
                }
            }
        }
    }

    /// A hole of `len` bytes in one direction.
    pub fn on_gap(&mut self, dir: Dir, len: u64, rec: &mut FlowRecord) {
        let side = self.side.get_mut(dir);
        if side.dead || self.done {
            return;
        }
        if let Some(u) = self.unseal.as_mut()
            && u.phase(dir) == Phase::Reading
        {
            // The protected handshake cannot be read past a hole.
            u.stop(dir);
            rec.note(Note::HandshakeGap);
        }
        // A hole inside a record whose content is not needed leaves the record
        // layer in step: skip it.
        if let Body::Tls {
            content_type,
            remaining,
        } = side.body
        {
            let skippable = side.encrypted
                || content_type == CT_APPLICATION_DATA
                || content_type == CT_HEARTBEAT
                || (content_type == CT_HANDSHAKE
                    && !side.hs.collecting
                    && side.hs.hdr_len == 4
                    && (side.hs.remaining as u64) >= len);
            if skippable && (remaining as u64) >= len {
                let len = len as usize;
                side.body = Body::Tls {
                    content_type,
                    remaining: remaining - len,
                };
                if content_type == CT_HANDSHAKE && !side.encrypted {
                    side.hs.remaining -= len;
                    if side.hs.remaining == 0 {
                        side.hs.hdr_len = 0;
                    }
                }
                if remaining == len {
                    self.record_end(dir, content_type, rec);
                }
                return;
            }
        }
        side.dead = true;
        if !side.encrypted {
            rec.note(Note::HandshakeGap);
        }
        self.check_done(rec);
    }

    /// Reads record-header bytes; returns how many of `data` were used.
    fn header_bytes(&mut self, dir: Dir, data: &[u8], rec: &mut FlowRecord) -> usize {
        let side = self.side.get_mut(dir);
        let n = side.fill_header(data);
        let hdr = side.hdr;
        let have = side.hdr_len;
        let first = hdr[0];
        let is_tls =
            (CT_CHANGE_CIPHER_SPEC..=CT_HEARTBEAT).contains(&first) && (have < 2 || hdr[1] == 3);
        let sslv2_ok = self.sslv2_client || (dir == Dir::Client && side.records == 0);
        if !is_tls && sslv2_ok {
            let held = hdr.get(..have).unwrap_or_default();
            return self.sslv2_header(dir, held, n, data.len(), rec);
        }
        if have < 5 {
            return n;
        }
        let version = u16::from_be_bytes([hdr[1], hdr[2]]);
        let len = usize::from(u16::from_be_bytes([hdr[3], hdr[4]]));
        let first_server_bytes =
            !is_tls && dir == Dir::Server && side.records == 0 && !self.server_hello;
        if first_server_bytes && self.plaintext_reply(&hdr, data.get(n..).unwrap_or_default(), rec)
        {
            return data.len();
        }
        if !is_tls || hdr[1] != 3 || len > MAX_RECORD_LEN {
            self.parse_error(dir, rec);
            return data.len();
        }
        self.start_record(dir, first, Version(version), len, rec);
        n
    }

    /// A complete or partial SSLv2 record header (2 or 3 bytes, `held`), of which
    /// this call added the last `n` of its `data_len` bytes; returns how many of
    /// them were used (what was over-read is given back).
    fn sslv2_header(
        &mut self,
        dir: Dir,
        held: &[u8],
        n: usize,
        data_len: usize,
        rec: &mut FlowRecord,
    ) -> usize {
        let h = match sslv2::record_header(held) {
            sslv2::Outcome::NeedMore => return n,
            sslv2::Outcome::Invalid => {
                self.parse_error(dir, rec);
                return data_len;
            }
            sslv2::Outcome::Done(h) => h,
        };
        // Only this call's bytes can be given back: a header that was already
        // complete before them (bytes held while SSLv2 was not yet expected)
        // cannot be re-read, and the stream is garbage.
        let Some(unread) = held
            .len()
            .checked_sub(h.header_len)
            .and_then(|over| n.checked_sub(over))
        else {
            self.parse_error(dir, rec);
            return data_len;
        };
        let side = self.side.get_mut(dir);
        side.hdr_len = 0;
        let first_record = side.records == 0;
        let collect = (first_record || !self.server_hello) && h.body_len <= MAX_SSLV2_HELLO;
        side.sslv2_buf.clear();
        side.body = Body::Sslv2 {
            remaining: h.body_len,
            collect,
        };
        if dir == Dir::Client && first_record {
            self.sslv2_client = true;
        }
        unread
    }

    /// Judges a server's first bytes that are not a TLS record (`hdr`, then
    /// `rest`): a banner or an error line is plaintext, and the server side stops
    /// there (true); anything else (another encrypted protocol, garbage) is left
    /// to be a parse error (false).
    fn plaintext_reply(&mut self, hdr: &[u8; 5], rest: &[u8], rec: &mut FlowRecord) -> bool {
        let mut sample = hdr.to_vec();
        sample.extend(rest.iter().take(PLAINTEXT_SAMPLE - hdr.len()));
        if !super::text::looks_like_text(&sample) {
            return false;
        }
        self.side.server.dead = true;
        self.server_plaintext = true;
        self.plaintext_protocol = super::text::banner_protocol(&sample);
        rec.note(Note::ServerPlaintext);
        self.check_done(rec);
        true
    }

    /// Starts the body of a TLS record of `content_type` and `len` bytes, whose
    /// header is read.
    #[inline]
    fn start_record(
        &mut self,
        dir: Dir,
        content_type: u8,
        version: Version,
        len: usize,
        rec: &mut FlowRecord,
    ) {
        let side = self.side.get_mut(dir);
        side.hdr_len = 0;
        if content_type == CT_HANDSHAKE && side.hs.hdr_len == 0 {
            side.record_version = Some(version);
        }
        if content_type == CT_APPLICATION_DATA {
            side.encrypted = true;
            if let Some(u) = self.unseal.as_mut() {
                let [hi, lo] = version.0.to_be_bytes();
                let [l1, l0] = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
                u.begin(dir, [CT_APPLICATION_DATA, hi, lo, l1, l0]);
            }
        }
        if content_type == CT_ALERT {
            // A plaintext alert is exactly two bytes; a longer one is encrypted
            // (seen when a capture starts after the handshake) and is skipped.
            side.alert_len = if len == 2 { 0 } else { usize::MAX };
        }
        side.body = Body::Tls {
            content_type,
            remaining: len,
        };
        if len == 0 {
            self.record_end(dir, content_type, rec);
        }
    }

    fn record_end(&mut self, dir: Dir, content_type: u8, rec: &mut FlowRecord) {
        if content_type == CT_APPLICATION_DATA && self.unseal.is_some() {
            self.sealed_record_end(dir, rec);
        }
        // In TLS 1.3 a ChangeCipherSpec is only middlebox camouflage (and may follow
        // a HelloRetryRequest); before 1.3 it starts encryption.
        let ccs_encrypts = self.server_hello && !self.tls13;
        let side = self.side.get_mut(dir);
        side.body = Body::Header;
        side.records += 1;
        if content_type == CT_HANDSHAKE {
            self.restamp.apply(&mut rec.frames, rec.at);
        }
        match content_type {
            CT_CHANGE_CIPHER_SPEC if ccs_encrypts => {
                side.encrypted = true;
                // A server that changes cipher before finishing its hello part
                // resumed an earlier session (abbreviated handshake).
                if dir == Dir::Server && !self.server_hello_done {
                    rec.tls_mut().resumed = true;
                }
            }
            CT_APPLICATION_DATA => {
                crate::record::frames::first_at(&mut rec.frames.first_encrypted, rec.at)
            }
            CT_ALERT if !side.encrypted && side.alert_len == 2 => {
                let [level, desc] = side.alert;
                self.alert(dir, level, desc, rec);
            }
            _ => {}
        }
        self.check_done(rec);
    }

    /// An alert of `dir` (plaintext, or read from a decrypted handshake record).
    fn alert(&mut self, dir: Dir, level: u8, desc: u8, rec: &mut FlowRecord) {
        let at = rec.at;
        let alerts = &mut rec.tls_mut().alerts;
        if alerts.len() < MAX_ALERTS {
            alerts.push(Alert::new(dir, level, alert_name(desc), at));
        }
        if level == 2 {
            self.done = true;
        }
    }

    /// Handshake bytes of `dir`, in order; `sealed` when they were decrypted
    /// (a TLS 1.3 handshake read with its secrets).
    fn handshake_bytes(&mut self, dir: Dir, mut chunk: &[u8], sealed: bool, rec: &mut FlowRecord) {
        loop {
            let hs = &mut self.side.get_mut(dir).hs;
            if hs.hdr_len < 4 {
                if chunk.is_empty() {
                    return;
                }
                let n = (4 - hs.hdr_len).min(chunk.len());
                for (i, &b) in chunk.iter().take(n).enumerate() {
                    if let Some(slot) = hs.hdr.get_mut(hs.hdr_len + i) {
                        *slot = b;
                    }
                }
                hs.hdr_len += n;
                chunk = chunk.get(n..).unwrap_or_default();
                if hs.hdr_len < 4 {
                    return;
                }
                let msg_type = hs.hdr[0];
                let len = (usize::from(hs.hdr[1]) << 16)
                    | (usize::from(hs.hdr[2]) << 8)
                    | usize::from(hs.hdr[3]);
                hs.remaining = len;
                let cap = if sealed {
                    handshake13::collect_cap(msg_type, MAX_CERTIFICATE_LEN)
                } else {
                    collect_cap(msg_type)
                };
                hs.collecting = cap.is_some_and(|cap| len <= cap);
                hs.buf.clear();
                if cap.is_some() && !hs.collecting {
                    rec.note(Note::HandshakeTooLarge);
                }
            }
            let n = hs.remaining.min(chunk.len());
            if hs.collecting {
                hs.buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            }
            hs.remaining -= n;
            chunk = chunk.get(n..).unwrap_or_default();
            if hs.remaining > 0 {
                return;
            }
            hs.hdr_len = 0;
            let msg_type = hs.hdr[0];
            if hs.collecting {
                hs.collecting = false;
                let mut body = std::mem::take(&mut hs.buf);
                let before = rec.frames;
                if sealed {
                    self.sealed_message(dir, msg_type, &body, rec);
                } else {
                    self.message(dir, msg_type, &body, rec);
                }
                self.restamp.note(&before, &rec.frames);
                // Keep a small allocation for a possible second hello (after a
                // HelloRetryRequest); give a large one back.
                if body.capacity() <= MAX_HELLO_LEN {
                    body.clear();
                    self.side.get_mut(dir).hs.buf = body;
                }
            } else if (msg_type, dir) == (HS_SERVER_HELLO_DONE, Dir::Server) {
                self.server_hello_done = true;
            } else if (msg_type, dir) == (HS_CERTIFICATE_STATUS, Dir::Server) {
                rec.tls_mut().ocsp_stapled = true;
            }
            if chunk.is_empty() || self.done {
                return;
            }
        }
    }

    /// One complete, collected handshake message.
    fn message(&mut self, dir: Dir, msg_type: u8, body: &[u8], rec: &mut FlowRecord) {
        match (msg_type, dir) {
            (HS_CLIENT_HELLO | HS_SERVER_HELLO, _) => {
                let record_version = self.side.get(dir).record_version;
                let hello = hello_message(Carrier::Tcp, dir, msg_type, body, record_version, rec);
                if hello == Hello::ClientHello && self.keys.is_some() {
                    self.client_random = unseal::client_random(body);
                }
                if let Hello::ServerHello { version } = hello {
                    self.server_hello = true;
                    if version.is_tls13() {
                        // Everything after a TLS 1.3 ServerHello is encrypted.
                        self.tls13 = true;
                        self.side.server.encrypted = true;
                        self.unseal = self.unseal_for(rec);
                    }
                    self.kx = rec
                        .tls
                        .as_ref()
                        .and_then(|t| t.server_hello.as_ref())
                        .and_then(|sh| sh.cipher_id)
                        .and_then(cipher::suite)
                        .map(|s| s.kx);
                    if self.sslv2_client {
                        rec.note(Note::Sslv2ClientHello);
                    }
                }
            }
            (HS_CERTIFICATE, _) => {
                let (ders, cut) = hello::certificate_list(body);
                if cut {
                    rec.note(Note::CertificateListMalformed);
                }
                let chain = certificate::chain(&ders, rec);
                if dir == Dir::Server {
                    rec.frames.certificate = rec.at;
                }
                let tls = rec.tls_mut();
                match dir {
                    Dir::Server => tls.certificates = chain,
                    Dir::Client => tls.client_certificates = chain,
                }
            }
            (HS_SERVER_KEY_EXCHANGE, Dir::Server) => {
                if let Some(p) = self.kx.and_then(|kx| hello::server_key_exchange(body, kx)) {
                    let tls = rec.tls_mut();
                    tls.group = p.group.map(cipher::group_name).or(tls.group.take());
                    tls.dh_bits = p.dh_bits.or(tls.dh_bits);
                }
            }
            _ => {}
        }
    }

    /// Handshake decryption for this connection, when the key table holds its
    /// secrets: at its TLS 1.3 ServerHello, by its ClientHello random.
    fn unseal_for(&self, rec: &mut FlowRecord) -> Option<Box<Unseal>> {
        let secrets = self.keys.as_ref()?.lookup(self.client_random.as_ref()?)?;
        let tls = rec.tls.as_ref()?;
        let suite = tls.server_hello.as_ref()?.cipher_id?;
        let early = tls.client_hello.as_ref().is_some_and(|c| c.early_data);
        let u = Unseal::new(suite, &secrets, early)?;
        if u.unusable() {
            rec.note(Note::KeysMismatch);
        }
        Some(Box::new(u))
    }

    /// A protected record of `dir` ended: opens it if it belongs to the handshake.
    fn sealed_record_end(&mut self, dir: Dir, rec: &mut FlowRecord) {
        let Some(u) = self.unseal.as_mut() else {
            return;
        };
        match u.end(dir) {
            Opened::Plain(CT_HANDSHAKE, plain) => self.handshake_bytes(dir, &plain, true, rec),
            Opened::Plain(CT_ALERT, plain) => {
                if let &[level, desc] = plain.as_slice() {
                    self.alert(dir, level, desc, rec);
                }
            }
            Opened::Failed { first: true } => rec.note(Note::KeysMismatch),
            Opened::Nothing | Opened::Skipped | Opened::Plain(..) | Opened::Failed { .. } => {}
        }
    }

    /// One complete decrypted handshake message.
    fn sealed_message(&mut self, dir: Dir, msg_type: u8, body: &[u8], rec: &mut FlowRecord) {
        let step = handshake13::message(dir, msg_type, body, MAX_CERTIFICATE_LEN, rec);
        if step == handshake13::Step::Finished
            && let Some(u) = self.unseal.as_mut()
        {
            u.finish(dir);
        }
    }

    fn sslv2_message(&mut self, dir: Dir, body: &[u8], rec: &mut FlowRecord) {
        match (dir, body.first().copied()) {
            (Dir::Client, Some(sslv2::MSG_CLIENT_HELLO)) => match sslv2::client_hello(body) {
                Ok((_, ch)) => {
                    rec.frames.client_hello = rec.at;
                    rec.tls_mut().client_hello = Some(ClientHelloInfo {
                        record_version: Some(Version::SSLV2),
                        version: Version(ch.version),
                        supported_versions: Vec::new(),
                        sni: None,
                        alpn: Vec::new(),
                        cipher_suites: ch
                            .cipher_specs
                            .iter()
                            .filter(|&&k| !(k >> 16 == 0 && is_grease(k as u16)))
                            .map(|&k| cipher::sslv2_name(k))
                            .collect(),
                        sslv2_format: true,
                        ..ClientHelloInfo::default()
                    });
                }
                Err(_) => rec.note(Note::TlsParseError),
            },
            (Dir::Server, Some(sslv2::MSG_SERVER_HELLO)) => match sslv2::server_hello(body) {
                Ok((_, sh)) => {
                    self.server_hello = true;
                    self.sslv2 = true;
                    rec.frames.server_hello = rec.at;
                    let tls = rec.tls_mut();
                    tls.version = Some(Version(sh.version));
                    tls.server_hello = Some(ServerHelloInfo {
                        version: Version(sh.version),
                        selected_version: None,
                        cipher_suite: sh.cipher_specs.first().map(|&k| cipher::sslv2_name(k)),
                        ..ServerHelloInfo::default()
                    });
                }
                Err(_) => rec.note(Note::TlsParseError),
            },
            (_, Some(sslv2::MSG_ERROR)) => {
                if let Ok((_, code)) = sslv2::error(body)
                    && rec.tls_mut().alerts.len() < MAX_ALERTS
                {
                    let at = rec.at;
                    rec.tls_mut()
                        .alerts
                        .push(Alert::new(dir, 2, sslv2::error_name(code), at));
                    self.done = true;
                }
            }
            _ => {}
        }
    }

    fn parse_error(&mut self, dir: Dir, rec: &mut FlowRecord) {
        let side = self.side.get_mut(dir);
        side.dead = true;
        if !side.encrypted {
            rec.note(Note::TlsParseError);
        }
        self.check_done(rec);
    }

    fn check_done(&mut self, rec: &mut FlowRecord) {
        let (c, s) = (&self.side.client, &self.side.server);
        let established = if self.sslv2 {
            c.records >= 2 && s.records >= 2
        } else {
            self.server_hello && c.encrypted && s.encrypted
        };
        let reading = self.unseal.as_ref().is_some_and(|u| u.pending());
        if established {
            rec.tls_mut().established = true;
            // Read on to the first application-data record (where the transcript
            // says encryption begins), a few records at most, and on while the
            // protected handshake is still being opened with logged keys.
            self.after_established = self.after_established.saturating_add(1);
            let enough = self.sslv2
                || rec.frames.first_encrypted != 0
                || self.after_established > MAX_RECORDS_AFTER_HANDSHAKE
                || c.dead
                || s.dead;
            if enough && !reading {
                self.done = true;
            }
        } else if c.dead && s.dead {
            self.done = true;
        }
    }
}

/// What one hello message told the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hello {
    ClientHello,
    /// A ServerHello that negotiated `version`.
    ServerHello {
        version: Version,
    },
    HelloRetryRequest,
    /// Not a hello, or a hello from the wrong side: nothing recorded.
    Ignored,
    /// A hello that did not parse (noted on the record).
    Invalid,
}

/// The hello analysis for one complete handshake message, without a TLS record
/// layer: how TLS-over-TCP records, QUIC CRYPTO streams and reassembled DTLS
/// handshake bodies all reach it. `body` follows the 4-byte handshake header and
/// has TLS's layout (a DTLS ClientHello with its cookie field taken out);
/// `record_version` is that of the record that carried it, if any. Everything
/// learned (hello fields, fingerprints with `carrier`'s JA4 prefix, key
/// exchange, resumption, downgrade sentinel) goes into the record.
pub fn hello_message(
    carrier: Carrier,
    dir: Dir,
    msg_type: u8,
    body: &[u8],
    record_version: Option<Version>,
    rec: &mut FlowRecord,
) -> Hello {
    match (msg_type, dir) {
        (HS_CLIENT_HELLO, Dir::Client) => {
            let Some(ch) = client_hello_over(body, carrier) else {
                rec.note(Note::TlsParseError);
                return Hello::Invalid;
            };
            // The first ClientHello is the one reported and fingerprinted, as
            // FoxIO's JA4 and Wireshark's JA3 do: fingerprint databases are
            // keyed by it. Of a second one after a HelloRetryRequest only the
            // group it switched to is kept; one resent after a DTLS
            // HelloVerifyRequest or a QUIC Retry changes nothing that matters.
            let tls = rec.tls_mut();
            let retry = tls.hello_retry_request;
            match tls.client_hello.as_mut() {
                Some(first) => {
                    if let (true, Some(g)) = (retry, ch.key_share_group) {
                        first.retry_group = Some(cipher::group_name(g));
                    }
                }
                None => {
                    let mut info = ch.info;
                    info.record_version = record_version;
                    tls.client_hello = Some(info);
                    rec.frames.client_hello = rec.at;
                }
            }
            Hello::ClientHello
        }
        (HS_SERVER_HELLO, Dir::Server) => {
            let Some(sh) = server_hello(body) else {
                rec.note(Note::TlsParseError);
                return Hello::Invalid;
            };
            if sh.hrr {
                rec.tls_mut().hello_retry_request = true;
                rec.note(Note::HelloRetryRequest);
                return Hello::HelloRetryRequest;
            }
            let negotiated = sh.info.selected_version.unwrap_or(sh.info.version);
            let suite = sh.info.cipher_id.and_then(cipher::suite);
            rec.frames.server_hello = rec.at;
            let tls = rec.tls_mut();
            tls.version = Some(negotiated);
            tls.downgrade_sentinel = sh.downgrade_sentinel;
            if negotiated.is_tls13() {
                tls.resumed = sh.psk_accepted;
                tls.group = sh.key_share_group.map(cipher::group_name);
                tls.key_exchange =
                    Some(tls13_key_exchange(sh.key_share_group, sh.psk_accepted).into());
            } else {
                let offered = tls
                    .client_hello
                    .as_ref()
                    .map(|c| c.session_id.as_slice())
                    .unwrap_or_default();
                tls.key_exchange = suite.map(|s| s.kx.as_str().to_string());
                tls.resumed = !sh.session_id.is_empty() && sh.session_id == offered;
            }
            tls.server_hello = Some(sh.info);
            Hello::ServerHello {
                version: negotiated,
            }
        }
        _ => Hello::Ignored,
    }
}

/// TLS 1.3 key exchange from the ServerHello: the key_share group's kind, and
/// `psk` when a pre-shared key was accepted (RFC 8446 §4.2.9).
fn tls13_key_exchange(group: Option<u16>, psk: bool) -> &'static str {
    let kind = group.map(|g| match g {
        g if cipher::is_ffdhe(g) => "dhe",
        0x0200..=0x0202 => "mlkem",
        0x11eb..=0x11ed | 0x6399 | 0x639a => "ecdhe_mlkem",
        _ => "ecdhe",
    });
    match (psk, kind) {
        (false, Some(k)) => k,
        (false, None) => "unknown",
        (true, None) => "psk",
        (true, Some("dhe")) => "psk_dhe",
        (true, Some("mlkem")) => "psk_mlkem",
        (true, Some("ecdhe_mlkem")) => "psk_ecdhe_mlkem",
        (true, Some(_)) => "psk_ecdhe",
    }
}

/// Alert description names (RFC 8446 §6, RFC 5246 §7.2).
pub fn alert_name(d: u8) -> String {
    let s = match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        121 => "ech_required",
        n => return format!("alert_{n}"),
    };
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::hello::HRR_RANDOM;
    use super::*;
    use crate::record::Endpoint;
    use crate::time::Timestamp;

    fn rec() -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port,
        };
        FlowRecord::new(1, Timestamp::default(), ep(40000), ep(443))
    }

    fn hs_record(version: u16, msg: u8, body: &[u8]) -> Vec<u8> {
        let mut hs = vec![msg, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend(body);
        let mut r = vec![CT_HANDSHAKE];
        r.extend(version.to_be_bytes());
        r.extend((hs.len() as u16).to_be_bytes());
        r.extend(hs);
        r
    }

    /// ClientHello with SNI, ALPN, supported_versions (with GREASE) and a GREASE suite.
    fn client_hello_body() -> Vec<u8> {
        let mut b = vec![0x03, 0x03];
        b.extend([1u8; 32]);
        b.push(0);
        b.extend([0x00, 0x06, 0x2a, 0x2a, 0x13, 0x01, 0xc0, 0x2f, 0x01, 0x00]);
        let mut ext = Vec::new();
        let sni = b"tls.example";
        ext.extend([0x00, 0x00]);
        ext.extend(((sni.len() + 5) as u16).to_be_bytes());
        ext.extend(((sni.len() + 3) as u16).to_be_bytes());
        ext.push(0);
        ext.extend((sni.len() as u16).to_be_bytes());
        ext.extend(sni);
        ext.extend([0x00, 0x10, 0x00, 0x0e, 0x00, 0x0c, 0x02, b'h', b'2', 0x08]);
        ext.extend(b"http/1.1");
        ext.extend([
            0x00, 0x2b, 0x00, 0x07, 0x06, 0x5a, 0x5a, 0x03, 0x04, 0x03, 0x03,
        ]);
        b.extend((ext.len() as u16).to_be_bytes());
        b.extend(ext);
        b
    }

    /// `client_hello_body` with `extra` (whole extensions) appended.
    fn client_hello_with(extra: &[u8]) -> Vec<u8> {
        let mut b = client_hello_body();
        let at = 2 + 32 + 1 + 2 + 6 + 2;
        let ext_len = usize::from(u16::from_be_bytes([b[at], b[at + 1]])) + extra.len();
        b[at..at + 2].copy_from_slice(&(ext_len as u16).to_be_bytes());
        b.extend(extra);
        b
    }

    /// A `key_share` extension with one empty-keyed entry per group.
    fn key_share(groups: &[u16]) -> Vec<u8> {
        let mut shares = Vec::new();
        for g in groups {
            shares.extend(g.to_be_bytes());
            shares.extend([0, 1, 0x42]);
        }
        let mut e = vec![0x00, 0x33];
        e.extend(((shares.len() + 2) as u16).to_be_bytes());
        e.extend((shares.len() as u16).to_be_bytes());
        e.extend(shares);
        e
    }

    fn server_hello_body(random: [u8; 32], selected: Option<u16>) -> Vec<u8> {
        let mut b = vec![0x03, 0x03];
        b.extend(random);
        b.push(0);
        b.extend([0x13, 0x01, 0x00]);
        if let Some(v) = selected {
            b.extend([0x00, 0x06, 0x00, 0x2b, 0x00, 0x02]);
            b.extend(v.to_be_bytes());
        }
        b
    }

    /// A TLS 1.3 handshake with a HelloRetryRequest, CCS camouflage and encrypted records.
    fn transcript() -> Vec<(Dir, Vec<u8>)> {
        // The first hello offers an X25519 share (after a GREASE one) and
        // early data; the second, as RFC 8446 §4.1.2 asks, a P-256 share, the
        // cookie and no early data.
        let mut first = key_share(&[0x0a0a, 0x001d]);
        first.extend([0x00, 0x2a, 0x00, 0x00]);
        let ch = hs_record(0x0301, HS_CLIENT_HELLO, &client_hello_with(&first));
        let mut second = key_share(&[0x0017]);
        second.extend([0x00, 0x2c, 0x00, 0x03, 0x00, 0x01, 0x07]);
        let hrr = hs_record(
            0x0303,
            HS_SERVER_HELLO,
            &server_hello_body(HRR_RANDOM, Some(0x0304)),
        );
        let sh = hs_record(
            0x0303,
            HS_SERVER_HELLO,
            &server_hello_body([5; 32], Some(0x0304)),
        );
        let ccs = vec![CT_CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1];
        let app = vec![CT_APPLICATION_DATA, 3, 3, 0, 4, 9, 9, 9, 9];
        let mut server1 = hrr;
        server1.extend(&ccs);
        let mut server2 = sh;
        server2.extend(&app);
        let mut client2 = ccs.clone();
        client2.extend(hs_record(
            0x0303,
            HS_CLIENT_HELLO,
            &client_hello_with(&second),
        ));
        let mut client3 = app.clone();
        client3.extend(&app);
        vec![
            (Dir::Client, ch),
            (Dir::Server, server1),
            (Dir::Client, client2),
            (Dir::Server, server2),
            (Dir::Client, client3),
        ]
    }

    fn run(t: &[(Dir, Vec<u8>)], split: Option<usize>) -> FlowRecord {
        let mut r = rec();
        let mut a = TlsAnalyzer::new();
        for (dir, bytes) in t {
            match split {
                Some(at) if at < bytes.len() => {
                    let (x, y) = bytes.split_at(at);
                    a.on_data(*dir, x, &mut r);
                    a.on_data(*dir, y, &mut r);
                }
                _ => a.on_data(*dir, bytes, &mut r),
            }
        }
        r
    }

    #[test]
    fn hello_retry_request_then_tls13_is_split_invariant() {
        let t = transcript();
        let whole = run(&t, None);
        let tls = whole.tls.clone().unwrap_or_default();
        assert_eq!(tls.version, Some(Version::TLS13));
        assert!(tls.hello_retry_request);
        assert!(tls.established);
        let ch = tls.client_hello.clone().unwrap_or_default();
        assert_eq!(ch.sni.as_deref(), Some("tls.example"));
        assert_eq!(ch.alpn, vec!["h2".to_string(), "http/1.1".to_string()]);
        assert_eq!(ch.supported_versions, vec![Version::TLS13, Version::TLS12]);
        assert_eq!(
            ch.cipher_suites,
            vec![
                "TLS_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        // The first ClientHello (record version 1.0) is the one reported and
        // fingerprinted; the second gives the group it switched to.
        assert_eq!(ch.record_version, Some(Version::TLS10));
        assert!(ch.early_data);
        assert_eq!(
            ch.ja3_full.as_deref(),
            Some("771,4865-49199,0-16-43-51-42,,")
        );
        assert_eq!(
            ch.ja4_r.as_deref(),
            Some("t13d0205h2_1301,c02f_002a,002b,0033")
        );
        assert_eq!(ch.retry_group.as_deref(), Some("secp256r1"));
        assert_eq!(tls.key_exchange.as_deref(), Some("unknown"));
        let want = serde_json::to_value(&whole).ok();
        let longest = t.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        for at in 1..longest {
            assert_eq!(
                serde_json::to_value(run(&t, Some(at))).ok(),
                want,
                "split at {at}"
            );
        }
        // Byte by byte too.
        let mut r = rec();
        let mut a = TlsAnalyzer::new();
        for (dir, bytes) in &t {
            for b in bytes {
                a.on_data(*dir, std::slice::from_ref(b), &mut r);
            }
        }
        assert_eq!(serde_json::to_value(&r).ok(), want);
    }

    #[test]
    fn record_start_need_more_invalid_done() {
        assert_eq!(record_start(&[]), Start::NeedMore);
        assert_eq!(record_start(&[0x16]), Start::NeedMore);
        assert_eq!(record_start(&[0x16, 0x03, 0x01, 0x00]), Start::NeedMore);
        assert_eq!(
            record_start(&[0x16, 0x03, 0x01, 0x00, 0x10]),
            Start::NeedMore
        );
        assert_eq!(
            record_start(&[0x16, 0x03, 0x01, 0x00, 0x10, 0x01]),
            Start::Tls {
                handshake: true,
                client_hello: true
            }
        );
        assert_eq!(
            record_start(&[0x17, 0x03, 0x03, 0x00, 0x10]),
            Start::Tls {
                handshake: false,
                client_hello: false
            }
        );
        assert_eq!(
            record_start(&[0x16, 0x03, 0x01, 0xff, 0xff, 0x01]),
            Start::No
        );
        assert_eq!(record_start(b"EHLO x\r\n"), Start::No);
        assert_eq!(record_start(b"GET / HTTP/1.1\r\n"), Start::No);
        let mut v2 = vec![0x80, 0x2e, 0x01, 0x00, 0x02];
        v2.extend([0u8; 0x2b]);
        assert_eq!(record_start(&v2), Start::Sslv2 { client_hello: true });
    }

    /// Found by fuzzing (`tls` target): server bytes held as a possible TLS header before
    /// the client's SSLv2 hello made SSLv2 expected, then completed as an SSLv2 header by
    /// one more byte, gave back more bytes than that call had taken (an underflow).
    #[test]
    fn sslv2_header_completed_from_bytes_held_earlier_is_a_parse_error() {
        let mut r = rec();
        let mut t = TlsAnalyzer::new();
        t.on_data(Dir::Server, &[0x80, 0x05, 0x00], &mut r);
        t.on_data(
            Dir::Client,
            &crate::analyzer::tls::sslv2::tests::client_hello_bytes(),
            &mut r,
        );
        t.on_data(Dir::Server, &[0x00], &mut r);
        t.on_data(Dir::Server, &[0x04; 16], &mut r);
        assert!(r.has_note(Note::TlsParseError), "{:?}", r.notes);
    }

    #[test]
    fn hello_parsers_done_and_invalid() {
        assert!(client_hello(&client_hello_body()).is_some());
        assert!(client_hello(&client_hello_body()[..20]).is_none());
        let sh = server_hello(&server_hello_body([5; 32], None)).map(|s| (s.info.version, s.hrr));
        assert_eq!(sh, Some((Version::TLS12, false)));
        let hrr = server_hello(&server_hello_body(HRR_RANDOM, Some(0x0304)))
            .map(|s| (s.info.selected_version, s.hrr));
        assert_eq!(hrr, Some((Some(Version::TLS13), true)));
        assert!(server_hello(&[3, 3, 0]).is_none());
        // Draft 18: no session id, no compression.
        let mut d = vec![0x7f, 0x12];
        d.extend([1; 32]);
        d.extend([0x13, 0x01, 0x00, 0x00]);
        assert_eq!(
            server_hello(&d).map(|s| s.info.version),
            Some(Version(0x7f12))
        );
    }

    #[test]
    fn fatal_alert_ends_the_handshake() {
        let mut r = rec();
        let mut a = TlsAnalyzer::new();
        a.on_data(
            Dir::Client,
            &hs_record(0x0301, HS_CLIENT_HELLO, &client_hello_body()),
            &mut r,
        );
        a.on_data(Dir::Server, &[CT_ALERT, 3, 3, 0, 2, 2, 70], &mut r);
        assert!(a.is_done());
        let tls = r.tls.unwrap_or_default();
        assert_eq!(tls.version, None);
        assert_eq!(
            tls.alerts.first().map(|x| x.description.as_str()),
            Some("protocol_version")
        );
    }

    #[test]
    fn endless_warning_alerts_are_capped() {
        let mut r = rec();
        let mut a = TlsAnalyzer::new();
        a.on_data(
            Dir::Client,
            &hs_record(0x0301, HS_CLIENT_HELLO, &client_hello_body()),
            &mut r,
        );
        for _ in 0..1000 {
            a.on_data(Dir::Server, &[CT_ALERT, 3, 3, 0, 2, 1, 112], &mut r);
        }
        let tls = r.tls.unwrap_or_default();
        assert_eq!(tls.alerts.len(), MAX_ALERTS);
        assert_eq!(tls.alerts[0].description, "unrecognized_name");
    }

    #[test]
    fn garbage_is_a_parse_error_not_a_panic() {
        let mut r = rec();
        let mut a = TlsAnalyzer::new();
        a.on_data(
            Dir::Client,
            &[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0xff, 0xff, 0xff, 0xff],
            &mut r,
        );
        a.on_data(Dir::Client, &[0x99; 64], &mut r);
        assert!(r.has_note(Note::TlsParseError));
    }

    #[test]
    fn a_plaintext_answer_to_a_client_hello_is_judged_by_its_bytes() {
        let ch = hs_record(0x0301, HS_CLIENT_HELLO, &client_hello_body());
        // Split after three bytes: the judgement must not depend on segmentation.
        for split in [None, Some(3)] {
            let banner = b"220 mx.example.net ESMTP ready\r\n".to_vec();
            let r = run(&[(Dir::Client, ch.clone()), (Dir::Server, banner)], split);
            assert!(r.has_note(Note::ServerPlaintext), "{:?}", r.notes);
            assert!(!r.has_note(Note::TlsParseError), "{:?}", r.notes);
        }
        // High-entropy bytes (another encrypted protocol) are not plaintext.
        let noise: Vec<u8> = (0..64u32).map(|i| (i * 151 + 89) as u8 | 0x80).collect();
        let r = run(&[(Dir::Client, ch), (Dir::Server, noise)], None);
        assert!(!r.has_note(Note::ServerPlaintext), "{:?}", r.notes);
        assert!(r.has_note(Note::TlsParseError), "{:?}", r.notes);
    }
}
