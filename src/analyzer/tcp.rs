//! The TCP dispatch: sniffs the first bytes of each direction, then hands the
//! stream to the TLS analyzer (direct TLS) or to a STARTTLS protocol driver.
//!
//! In: one flow's in-order bytes and gaps per direction. Out: the verdict in the
//! flow record, and a signal when content shows the roles are reversed.

use super::options::Options;
use super::starttls;
use super::text::{looks_encrypted, looks_like_text};
use super::tls::{self, Start, TlsAnalyzer};
use crate::record::frames::first_at;
use crate::record::{Dir, Encryption, FlowRecord, Note, PerDir};

/// Bytes of each direction kept while deciding what a flow speaks.
pub const SNIFF_MAX: usize = 8 * 1024;

/// What the analyzer asks of the flow after a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Continue,
    /// Content shows the endpoints' roles are the other way round.
    SwapRoles,
}

#[derive(Debug)]
enum State {
    Sniff(Box<Sniff>),
    Tls(Box<TlsAnalyzer>),
    StartTls(Box<starttls::Driver>),
    /// Decided: nothing more to learn from the bytes.
    Done,
}

#[derive(Debug, Default)]
struct Sniff {
    buf: PerDir<Vec<u8>>,
    /// Arrival order of the buffered bytes, to replay them interleaved as they came,
    /// with the packet that brought each run ([`FlowRecord::at`]).
    log: Vec<(Dir, usize, u64)>,
    gap: PerDir<bool>,
}

impl Sniff {
    /// A detector, or a TLS record header cut short, still waits for more bytes.
    fn waiting(&self, server_port: u16) -> bool {
        let tls_pending = |b: &[u8]| !b.is_empty() && tls::record_start(b) == Start::NeedMore;
        tls_pending(&self.buf.client)
            || tls_pending(&self.buf.server)
            || matches!(
                starttls::detect(&self.buf.client, &self.buf.server, server_port, false),
                starttls::Detect::NeedMore
            )
    }

    /// High-entropy bytes from the first one and no text either way: another
    /// encrypted protocol (see [`looks_encrypted`]), never plaintext.
    fn opaque(&self) -> bool {
        let sides = [&self.buf.client, &self.buf.server];
        sides.iter().any(|b| looks_encrypted(b))
            && !sides.iter().any(|b| !b.is_empty() && looks_like_text(b))
    }
}

/// One flow's analysis state.
#[derive(Debug)]
pub struct Analyzer {
    state: State,
    /// Roles come from the TCP handshake and must not be swapped by content.
    roles_fixed: bool,
    opts: Options,
}

impl Analyzer {
    pub fn new(roles_fixed: bool, opts: Options) -> Self {
        Analyzer {
            state: State::Sniff(Box::default()),
            roles_fixed,
            opts,
        }
    }

    pub fn is_done(&self) -> bool {
        match &self.state {
            State::Sniff(_) => false,
            State::Tls(t) => t.is_done(),
            State::StartTls(d) => d.is_done(),
            State::Done => true,
        }
    }

    /// Heap bytes held, for the flow table's memory cap.
    pub fn heap_bytes(&self) -> usize {
        match &self.state {
            State::Sniff(s) => {
                std::mem::size_of::<Sniff>()
                    + s.buf.client.capacity()
                    + s.buf.server.capacity()
                    + s.log.capacity() * std::mem::size_of::<(Dir, usize, u64)>()
            }
            State::Tls(t) => std::mem::size_of::<TlsAnalyzer>() + t.heap_bytes(),
            State::StartTls(d) => std::mem::size_of::<starttls::Driver>() + d.heap_bytes(),
            State::Done => 0,
        }
    }

    /// In-order bytes of one direction, brought by packet [`FlowRecord::at`].
    pub fn on_data(&mut self, dir: Dir, data: &[u8], rec: &mut FlowRecord) -> Signal {
        match &mut self.state {
            State::Sniff(s) => {
                let first = match dir {
                    Dir::Client => &mut rec.frames.first_client_payload,
                    Dir::Server => &mut rec.frames.first_server_payload,
                };
                first_at(first, rec.at);
                let room = SNIFF_MAX.saturating_sub(s.buf.get(dir).len());
                let take = room.min(data.len());
                s.buf
                    .get_mut(dir)
                    .extend_from_slice(data.get(..take).unwrap_or_default());
                if take > 0 {
                    s.log.push((dir, take, rec.at));
                }
                self.decide(rec, false)
            }
            State::Tls(t) => {
                t.on_data(dir, data, rec);
                Signal::Continue
            }
            State::StartTls(d) => {
                d.on_data(dir, data, rec);
                Signal::Continue
            }
            State::Done => Signal::Continue,
        }
    }

    /// A hole of `len` bytes in one direction.
    pub fn on_gap(&mut self, dir: Dir, len: u64, rec: &mut FlowRecord) -> Signal {
        rec.note(Note::Gap);
        match &mut self.state {
            State::Sniff(s) => {
                *s.gap.get_mut(dir) = true;
                self.decide(rec, false)
            }
            State::Tls(t) => {
                t.on_gap(dir, len, rec);
                Signal::Continue
            }
            State::StartTls(d) => {
                d.on_gap(dir, len, rec);
                Signal::Continue
            }
            State::Done => Signal::Continue,
        }
    }

    /// The flow ended: settle the verdict.
    pub fn finish(&mut self, rec: &mut FlowRecord) {
        if let State::Sniff(s) = &self.state {
            if rec.incomplete && s.waiting(rec.server.port) {
                // The record closed while a detector (or a TLS record header) waited
                // for bytes that were never seen: nothing to say yet.
                rec.encryption = Encryption::Unknown;
                return;
            }
            self.decide(rec, true);
        }
        match &mut self.state {
            State::Sniff(s) => {
                // Still undecided at the end: too little was seen.
                let both = !s.buf.client.is_empty() && !s.buf.server.is_empty();
                let one = s.buf.client.is_empty() != s.buf.server.is_empty();
                let text = |b: &[u8]| !b.is_empty() && looks_like_text(b);
                rec.encryption = if both && s.opaque() {
                    rec.note(Note::HighEntropy);
                    Encryption::Unknown
                } else if both {
                    Encryption::Plaintext
                } else if one && (text(&s.buf.client) || text(&s.buf.server)) {
                    rec.note(Note::OneSided);
                    Encryption::Plaintext
                } else {
                    Encryption::Unknown
                };
            }
            State::Tls(t) => {
                rec.encryption = Encryption::Tls;
                let no_hello = rec.tls.as_ref().is_none_or(|t| t.server_hello.is_none());
                if let (Some(Some(spoken)), true) = (t.server_plaintext(), no_hello) {
                    // The client tried TLS; the server spoke its own protocol in plaintext.
                    rec.app_protocol = Some(spoken.to_string());
                }
                // PostgreSQL 17 direct TLS (sslnegotiation=direct) names itself by ALPN.
                let pg = rec
                    .tls
                    .as_ref()
                    .and_then(|t| t.client_hello.as_ref())
                    .is_some_and(|ch| ch.alpn.iter().any(|a| a == "postgresql"));
                if pg {
                    rec.app_protocol = Some("postgresql".to_string());
                }
                let tls = rec.tls_mut();
                if tls.client_hello.is_none() && tls.server_hello.is_none() && !t.saw_server_hello()
                {
                    rec.note(Note::TlsMidstream);
                }
            }
            State::StartTls(d) => d.finish(rec),
            State::Done => {}
        }
    }

    /// Looks at the sniffed bytes and picks an analyzer when it can.
    fn decide(&mut self, rec: &mut FlowRecord, at_end: bool) -> Signal {
        let State::Sniff(s) = &mut self.state else {
            return Signal::Continue;
        };
        let mut signal = Signal::Continue;
        // Direct TLS, from either side.
        for dir in [Dir::Client, Dir::Server] {
            match tls::record_start(s.buf.get(dir)) {
                Start::Tls { client_hello, .. } | Start::Sslv2 { client_hello } => {
                    if client_hello && dir == Dir::Server && !self.roles_fixed {
                        signal = Signal::SwapRoles;
                    }
                    self.start_tls(signal, rec);
                    return signal;
                }
                Start::NeedMore | Start::No => {}
            }
        }
        match starttls::detect(&s.buf.client, &s.buf.server, rec.server.port, at_end) {
            starttls::Detect::Found { proto, swap } => {
                if swap && !self.roles_fixed {
                    signal = Signal::SwapRoles;
                }
                self.start_protocol(proto, signal, rec);
                return signal;
            }
            // A detector may wait for more bytes, but never past the sniff cap.
            starttls::Detect::NeedMore
                if !at_end && s.buf.client.len() < SNIFF_MAX && s.buf.server.len() < SNIFF_MAX =>
            {
                return Signal::Continue;
            }
            _ => {}
        }
        let s_client = s.buf.client.len();
        let s_server = s.buf.server.len();
        let tls_pending =
            |b: &[u8]| matches!(tls::record_start(b), Start::NeedMore) && !b.is_empty();
        let undecided = tls_pending(&s.buf.client) || tls_pending(&s.buf.server);
        let full = s_client >= SNIFF_MAX || s_server >= SNIFF_MAX;
        if (s_client > 0 && s_server > 0 && !undecided) || full {
            if let Some(p) = plain_protocol(&s.buf.client, &s.buf.server) {
                rec.app_protocol = Some(p.to_string());
            }
            rec.encryption = if rec.app_protocol.as_deref() == Some("ssh") {
                Encryption::Ssh
            } else if s.opaque() {
                // Encrypted by something other than TLS: not plaintext.
                rec.note(Note::HighEntropy);
                Encryption::Unknown
            } else {
                Encryption::Plaintext
            };
            self.state = State::Done;
        }
        signal
    }

    /// The sniffed bytes in arrival order, each run with its packet.
    fn replay(s: &Sniff, swap: bool) -> Vec<(Dir, &[u8], u64)> {
        let mut pos = PerDir::<usize>::default();
        let mut out = Vec::with_capacity(s.log.len());
        for &(dir, len, at) in &s.log {
            let p = pos.get_mut(dir);
            if let Some(bytes) = s.buf.get(dir).get(*p..*p + len) {
                out.push((if swap { dir.other() } else { dir }, bytes, at));
            }
            *p += len;
        }
        out
    }

    fn start_tls(&mut self, signal: Signal, rec: &mut FlowRecord) {
        let State::Sniff(s) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        let swap = signal == Signal::SwapRoles;
        if swap {
            rec.swap_roles();
            rec.note(Note::RolesFromContent);
        }
        if rec.app_protocol.is_none() {
            rec.app_protocol = Some("tls".to_string());
        }
        let mut t = Box::new(TlsAnalyzer::new());
        let now = rec.at;
        for (dir, bytes, at) in Self::replay(&s, swap) {
            rec.at = at;
            t.on_data(dir, bytes, rec);
        }
        rec.at = now;
        for dir in [Dir::Client, Dir::Server] {
            let d = if swap { dir.other() } else { dir };
            if *s.gap.get(dir) {
                t.on_gap(d, 1, rec);
            }
        }
        self.state = State::Tls(t);
    }

    fn start_protocol(&mut self, proto: starttls::Proto, signal: Signal, rec: &mut FlowRecord) {
        let State::Sniff(s) = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        let swap = signal == Signal::SwapRoles;
        if swap {
            rec.swap_roles();
            rec.note(Note::RolesFromContent);
        }
        let mut d = Box::new(starttls::Driver::new(proto, self.opts));
        let now = rec.at;
        for (dir, bytes, at) in Self::replay(&s, swap) {
            rec.at = at;
            d.on_data(dir, bytes, rec);
        }
        rec.at = now;
        for dir in [Dir::Client, Dir::Server] {
            let d2 = if swap { dir.other() } else { dir };
            if *s.gap.get(dir) {
                d.on_gap(d2, 1, rec);
            }
        }
        self.state = State::StartTls(d);
    }
}

/// Names a few plaintext protocols with no upgrade to follow, for the report.
fn plain_protocol(client: &[u8], server: &[u8]) -> Option<&'static str> {
    if starttls::http::METHODS
        .iter()
        .any(|m| client.starts_with(m))
        || server.starts_with(b"HTTP/1.")
    {
        return Some("http");
    }
    if client.starts_with(b"SSH-") || server.starts_with(b"SSH-") {
        return Some("ssh");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Endpoint;
    use crate::time::Timestamp;

    fn rec() -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port,
        };
        FlowRecord::new(1, Timestamp::default(), ep(40000), ep(9999))
    }

    #[test]
    fn sniffing_stops_at_its_cap_even_when_a_detector_keeps_waiting() {
        let mut r = rec();
        let mut a = Analyzer::new(true, Options::default());
        // A bare "220" banner could be SMTP or FTP: detectors answer "maybe".
        a.on_data(Dir::Server, b"220 hello\r\n", &mut r);
        assert!(!a.is_done());
        for _ in 0..3 * SNIFF_MAX {
            a.on_data(Dir::Server, b"x", &mut r);
        }
        assert!(a.is_done(), "still sniffing after {} bytes", 3 * SNIFF_MAX);
        assert_eq!(r.encryption, Encryption::Plaintext);
    }

    /// Cut short while a detector waits for more (a bare `220` banner and a
    /// client line too short to tell): nothing to say yet. The same bytes with the
    /// connection closed are plaintext.
    #[test]
    fn a_record_cut_while_a_detector_waits_is_unknown() {
        let feed = |incomplete: bool| {
            let mut r = rec();
            if incomplete {
                r.mark_incomplete();
            }
            let mut a = Analyzer::new(true, Options::default());
            a.on_data(Dir::Server, b"220 hello\r\n", &mut r);
            a.on_data(Dir::Client, b"HE", &mut r);
            a.finish(&mut r);
            r.encryption
        };
        assert_eq!(feed(true), Encryption::Unknown);
        assert_eq!(feed(false), Encryption::Plaintext);
    }

    /// High-entropy bytes from the first one, text neither way: another
    /// encrypted protocol, `unknown` with the note `high_entropy`, never plaintext.
    #[test]
    fn high_entropy_both_ways_is_not_plaintext() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 32) as u8
                })
                .collect()
        };
        let mut r = rec();
        let mut a = Analyzer::new(true, Options::default());
        a.on_data(Dir::Client, &random(120), &mut r);
        a.on_data(Dir::Server, &random(90), &mut r);
        assert!(a.is_done());
        a.finish(&mut r);
        assert_eq!(r.encryption, Encryption::Unknown);
        assert!(r.has_note(Note::HighEntropy));
        // Binary framing with text in it stays plaintext.
        let mut r = rec();
        let mut a = Analyzer::new(true, Options::default());
        a.on_data(
            Dir::Client,
            b"\x00\x00\x00\x2c\x00\x00\x00\x01hello world\x00\x00\x00",
            &mut r,
        );
        a.on_data(Dir::Server, b"\x00\x00\x00\x08\x00\x00\x00\x00", &mut r);
        a.finish(&mut r);
        assert_eq!(r.encryption, Encryption::Plaintext);
        assert!(!r.has_note(Note::HighEntropy));
    }

    #[test]
    fn direct_tls_with_postgresql_alpn_is_named() {
        // PostgreSQL 17 `sslnegotiation=direct`: a ClientHello first, ALPN "postgresql".
        let mut body = vec![0x03, 0x03];
        body.extend([0x11; 32]);
        body.extend([0x00, 0x00, 0x02, 0xc0, 0x2f, 0x01, 0x00]);
        let alpn = b"\x00\x0b\x0apostgresql";
        body.extend(((alpn.len() + 4) as u16).to_be_bytes());
        body.extend([0x00, 0x10]);
        body.extend((alpn.len() as u16).to_be_bytes());
        body.extend(alpn);
        let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend(body);
        let mut ch = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
        ch.extend(hs);
        let ep = |port| crate::record::Endpoint {
            ip: std::net::IpAddr::from([127, 0, 0, 1]),
            port,
        };
        let mut rec = crate::record::FlowRecord::new(
            1,
            crate::time::Timestamp::default(),
            ep(40000),
            ep(15432),
        );
        let mut a = Analyzer::new(true, Options::default());
        a.on_data(Dir::Client, &ch, &mut rec);
        a.on_data(Dir::Server, &starttls::tests::server_hello(), &mut rec);
        a.finish(&mut rec);
        assert_eq!(rec.encryption, Encryption::Tls);
        assert_eq!(rec.app_protocol.as_deref(), Some("postgresql"));
        let offered = rec.tls.and_then(|t| t.client_hello).map(|c| c.alpn);
        assert_eq!(offered, Some(vec!["postgresql".to_string()]));
    }
}
