//! The TCP dispatch: sniffs the first bytes of each direction, then hands the
//! stream to the TLS analyzer (direct TLS) or to a STARTTLS protocol driver.
//! When a proxy tunnel (HTTP CONNECT, SOCKS) opens carrying something other
//! than TLS, what travels in it is analysed as a connection of its own, by a
//! second dispatch of this kind (one level deep).
//!
//! In: one flow's in-order bytes and gaps per direction. Out: the verdict in the
//! flow record, and a signal when content shows the roles are reversed.

use super::options::Options;
use super::starttls;
use super::text::{looks_encrypted, looks_like_text};
use super::tls::{self, Start, TlsAnalyzer};
use crate::keylog::KeyLog;
use crate::record::frames::first_at;
use crate::record::{Dir, Encryption, FlowRecord, Note, PerDir};
use std::sync::Arc;

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
    /// Inside an open proxy tunnel.
    Tunnel(Box<Inner>),
    /// Decided: nothing more to learn from the bytes.
    Done,
}

/// The connection inside a proxy tunnel, and where the tunnel begins.
#[derive(Debug)]
struct Inner {
    analyzer: Analyzer,
    /// Stream offset where the tunnel begins in each direction.
    start: PerDir<u64>,
    /// The proxy protocol's name, for a tunnel whose contents go unnamed.
    proxy_app: Option<String>,
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

    /// The roles are the other way round: each side's bytes go to the other.
    fn swap(&mut self) {
        self.buf.swap();
        self.gap.swap();
        for (dir, _, _) in &mut self.log {
            *dir = dir.other();
        }
    }
}

/// An ONC RPC call over TCP (RFC 5531): a record mark (§11) whose fragment
/// holds at least a call header, then xid, msg_type CALL (0), rpcvers 2 (§9),
/// program, version, procedure, and credentials no longer than 400 bytes
/// (§8.2). Only a client sends one.
fn onc_rpc_call(b: &[u8]) -> bool {
    let word = |i: usize| {
        b.get(i..i + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_be_bytes)
    };
    let (Some(mark), Some(msg_type), Some(rpcvers), Some(cred_len)) =
        (word(0), word(8), word(12), word(32))
    else {
        return false;
    };
    (mark & 0x7fff_ffff) >= 40 && msg_type == 0 && rpcvers == 2 && cred_len <= 400
}

/// One flow's analysis state.
#[derive(Debug)]
pub struct Analyzer {
    state: State,
    /// Roles come from the TCP handshake and must not be swapped by content.
    roles_fixed: bool,
    opts: Options,
    /// The run's key table, when it holds secrets (TLS 1.3 handshakes are then decrypted).
    keys: Option<Arc<KeyLog>>,
    /// Proxy tunnels are analysed (not inside one already).
    tunnels: bool,
}

impl Analyzer {
    pub fn new(roles_fixed: bool, opts: Options) -> Self {
        Analyzer {
            state: State::Sniff(Box::default()),
            roles_fixed,
            opts,
            keys: None,
            tunnels: true,
        }
    }

    /// The analysis of a proxy tunnel's contents: the roles are the connection's,
    /// and a tunnel inside it is not followed further.
    fn inside_tunnel(opts: Options) -> Self {
        Analyzer {
            state: State::Sniff(Box::default()),
            roles_fixed: true,
            opts,
            tunnels: false,
            keys: None,
        }
    }

    /// Hands the run's key table to the TLS this flow may carry.
    pub fn with_keys(mut self, keys: Option<Arc<KeyLog>>) -> Self {
        self.keys = keys;
        self
    }

    pub fn is_done(&self) -> bool {
        match &self.state {
            State::Sniff(_) => false,
            State::Tls(t) => t.is_done(),
            State::StartTls(d) => d.is_done(),
            State::Tunnel(t) => t.analyzer.is_done(),
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
            State::Tunnel(t) => std::mem::size_of::<Inner>() + t.analyzer.heap_bytes(),
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
                self.enter_tunnel(rec);
                Signal::Continue
            }
            State::Tunnel(t) => {
                t.analyzer.on_data(dir, data, rec);
                Signal::Continue
            }
            State::Done => Signal::Continue,
        }
    }

    /// Once the driver reports a proxy tunnel that opened in plaintext, the
    /// tunnel's bytes go to an analysis of their own. The proxy's dialogue is
    /// over: the record keeps its hop (`proxy`) and its credentials, and the
    /// inner connection names `app_protocol` and fills `starttls`.
    fn enter_tunnel(&mut self, rec: &mut FlowRecord) {
        let State::StartTls(d) = &mut self.state else {
            return;
        };
        let Some(tunnel) = d.take_tunnel() else {
            return;
        };
        rec.starttls = None;
        let mut inner = Box::new(Inner {
            analyzer: Analyzer::inside_tunnel(self.opts).with_keys(self.keys.clone()),
            start: tunnel.start,
            proxy_app: rec.app_protocol.take(),
        });
        for (dir, bytes) in &tunnel.first {
            inner.analyzer.on_data(*dir, bytes, rec);
        }
        self.state = State::Tunnel(inner);
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
            State::Tunnel(t) => {
                t.analyzer.on_gap(dir, len, rec);
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
            State::Tunnel(t) => t.finish(rec),
            State::Done => {}
        }
    }

    /// Looks at the sniffed bytes and picks an analyzer when it can.
    fn decide(&mut self, rec: &mut FlowRecord, at_end: bool) -> Signal {
        let State::Sniff(s) = &mut self.state else {
            return Signal::Continue;
        };
        // An ONC RPC call comes from the client (NFS from a reserved port such
        // as 993 to 2049): roles that came from ports give way to it. The
        // bytes are decided on at the next call, in their new places.
        if !self.roles_fixed && onc_rpc_call(&s.buf.server) && !onc_rpc_call(&s.buf.client) {
            s.swap();
            rec.swap_roles();
            rec.note(Note::RolesFromContent);
            return Signal::SwapRoles;
        }
        let mut signal = Signal::Continue;
        // Direct TLS, from either side.
        for dir in [Dir::Client, Dir::Server] {
            match tls::record_start(s.buf.get(dir)) {
                Start::Tls { client_hello, .. } | Start::Sslv2 { client_hello } => {
                    // The sender of a ClientHello is the client, of a ServerHello the server.
                    let reversed = (client_hello && dir == Dir::Server)
                        || (dir == Dir::Client && tls::starts_with_server_hello(s.buf.get(dir)));
                    if reversed && !self.roles_fixed {
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
        t.set_keys(self.keys.take());
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
        d.set_keys(self.keys.clone());
        d.follow_tunnels(self.tunnels);
        self.state = State::StartTls(d);
        // Through `on_data`: a tunnel may open part-way through what was sniffed.
        let now = rec.at;
        for (dir, bytes, at) in Self::replay(&s, swap) {
            rec.at = at;
            self.on_data(dir, bytes, rec);
        }
        rec.at = now;
        for dir in [Dir::Client, Dir::Server] {
            let d2 = if swap { dir.other() } else { dir };
            if *s.gap.get(dir) {
                self.on_gap(d2, 1, rec);
            }
        }
    }
}

impl Inner {
    /// The verdict is the inner connection's, with its offsets counted from the
    /// start of the whole connection. A tunnel whose contents go unnamed keeps
    /// the proxy's name, and is plaintext: the proxy's dialogue was.
    fn finish(&mut self, rec: &mut FlowRecord) {
        self.analyzer.finish(rec);
        if let Some(st) = &mut rec.starttls {
            st.client_offset = st.client_offset.map(|o| o + self.start.client);
            st.server_offset = st.server_offset.map(|o| o + self.start.server);
        }
        if rec.app_protocol.is_none() {
            rec.app_protocol = self.proxy_app.take();
        }
        if rec.encryption == Encryption::Unknown {
            rec.encryption = Encryption::Plaintext;
        }
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

    /// Feeds a transcript to a fresh analyzer (roles from a SYN), each message
    /// split at `split` when it is longer, and returns the finished record.
    fn run(transcript: &[(Dir, Vec<u8>)], split: Option<usize>) -> FlowRecord {
        let mut r = rec();
        let mut a = Analyzer::new(true, Options::default());
        for (dir, bytes) in transcript {
            *r.bytes.get_mut(*dir) += bytes.len() as u64;
            match split {
                Some(at) if at < bytes.len() => {
                    a.on_data(*dir, &bytes[..at], &mut r);
                    a.on_data(*dir, &bytes[at..], &mut r);
                }
                _ => {
                    a.on_data(*dir, bytes, &mut r);
                }
            }
        }
        a.finish(&mut r);
        r
    }

    /// The same record whole and split at every offset.
    fn run_split_invariant(transcript: &[(Dir, Vec<u8>)]) -> FlowRecord {
        let whole = run(transcript, None);
        let want = serde_json::to_value(&whole).unwrap();
        let longest = transcript.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        for at in 1..longest {
            let got = serde_json::to_value(run(transcript, Some(at))).unwrap();
            assert_eq!(got, want, "split at {at}");
        }
        whole
    }

    const CONNECT: &[u8] = b"CONNECT mx.example:25 HTTP/1.1\r\nHost: mx.example:25\r\n\r\n";
    const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

    /// SMTP with STARTTLS, as it travels inside a tunnel (the server speaks first).
    fn smtp_starttls() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Server, b"220 mx.example ESMTP\r\n".to_vec()),
            (Dir::Client, b"EHLO c.example\r\n".to_vec()),
            (Dir::Server, b"250-mx.example\r\n250 STARTTLS\r\n".to_vec()),
            (Dir::Client, b"STARTTLS\r\n".to_vec()),
            (Dir::Server, b"220 go ahead\r\n".to_vec()),
            (Dir::Client, starttls::tests::client_hello()),
            (Dir::Server, starttls::tests::server_hello()),
        ]
    }

    fn proxy(r: &FlowRecord) -> (&str, &str, bool) {
        let p = r.proxy.as_ref().expect("a proxy hop");
        (p.kind, p.target.as_str(), p.established)
    }

    #[test]
    fn smtp_inside_a_connect_tunnel_is_smtp_with_its_starttls() {
        let inner = smtp_starttls();
        let mut t = vec![(Dir::Client, CONNECT.to_vec())];
        // The proxy's answer and the SMTP banner in one segment.
        let mut first = ESTABLISHED.to_vec();
        first.extend(&inner[0].1);
        t.push((Dir::Server, first));
        t.extend(inner[1..].iter().cloned());
        let r = run_split_invariant(&t);
        assert_eq!(r.app_protocol.as_deref(), Some("smtp"));
        assert_eq!(r.encryption, Encryption::Starttls);
        assert_eq!(proxy(&r), ("http-connect", "mx.example:25", true));
        let st = r.starttls.clone().unwrap();
        assert_eq!(st.command.as_deref(), Some("STARTTLS"));
        assert!(st.offered && st.accepted);
        // Offsets are of the whole connection, the proxy's dialogue included.
        let before = |dir: Dir| -> u64 {
            t.iter()
                .filter(|(d, _)| *d == dir)
                .take_while(|(_, b)| b.first() != Some(&0x16))
                .map(|(_, b)| b.len() as u64)
                .sum()
        };
        assert_eq!(st.client_offset, Some(before(Dir::Client)));
        assert_eq!(st.server_offset, Some(before(Dir::Server)));
        assert_eq!(r.tls.unwrap().version, Some(crate::version::Version::TLS12));
    }

    #[test]
    fn smtp_inside_socks5_is_smtp() {
        let mut t = vec![
            (Dir::Client, vec![5, 1, 0]),
            (Dir::Server, vec![5, 0]),
            (Dir::Client, vec![5, 1, 0, 1, 192, 0, 2, 25, 0, 25]),
            (Dir::Server, vec![5, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
        ];
        t.extend(smtp_starttls());
        let r = run_split_invariant(&t);
        assert_eq!(r.app_protocol.as_deref(), Some("smtp"));
        assert_eq!(r.encryption, Encryption::Starttls);
        assert_eq!(proxy(&r), ("socks5", "192.0.2.25:25", true));
        assert_eq!(r.starttls.unwrap().client_offset, Some(3 + 10 + 16 + 10));
    }

    #[test]
    fn tunnel_bytes_sent_before_the_answer_are_the_inner_connections() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut early = CONNECT.to_vec();
        early.extend(get);
        let mut answer = ESTABLISHED.to_vec();
        answer.extend(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let r = run_split_invariant(&[(Dir::Client, early), (Dir::Server, answer)]);
        assert_eq!(r.app_protocol.as_deref(), Some("http"));
        assert_eq!(r.encryption, Encryption::Plaintext);
        assert_eq!(proxy(&r), ("http-connect", "mx.example:25", true));
        assert!(r.starttls.is_none());
        // SOCKS5 the same way: the request and the inner request in one segment.
        let mut request = vec![5, 1, 0, 1, 192, 0, 2, 80, 0, 80];
        request.extend(get);
        let r = run_split_invariant(&[
            (Dir::Client, vec![5, 1, 0]),
            (Dir::Server, vec![5, 0]),
            (Dir::Client, request),
            (Dir::Server, vec![5, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
            (Dir::Server, b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
        ]);
        assert_eq!(r.app_protocol.as_deref(), Some("http"));
        assert_eq!(proxy(&r), ("socks5", "192.0.2.80:80", true));
    }

    #[test]
    fn tls_inside_a_tunnel_and_refusals_keep_their_verdicts() {
        let r = run_split_invariant(&[
            (Dir::Client, CONNECT.to_vec()),
            (Dir::Server, ESTABLISHED.to_vec()),
            (Dir::Client, starttls::tests::client_hello()),
            (Dir::Server, starttls::tests::server_hello()),
        ]);
        assert_eq!(r.app_protocol.as_deref(), Some("http-connect"));
        assert_eq!(r.encryption, Encryption::Starttls);
        assert_eq!(proxy(&r), ("http-connect", "mx.example:25", true));
        assert_eq!(
            r.starttls.unwrap().client_offset,
            Some(CONNECT.len() as u64)
        );
        let r = run_split_invariant(&[
            (Dir::Client, CONNECT.to_vec()),
            (
                Dir::Server,
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ),
        ]);
        assert_eq!(r.encryption, Encryption::StarttlsRefused);
        assert_eq!(proxy(&r), ("http-connect", "mx.example:25", false));
    }

    #[test]
    fn a_tunnel_inside_a_tunnel_is_not_followed() {
        let second = b"CONNECT inner.example:25 HTTP/1.1\r\n\r\n".to_vec();
        let r = run_split_invariant(&[
            (Dir::Client, CONNECT.to_vec()),
            (Dir::Server, ESTABLISHED.to_vec()),
            (Dir::Client, second),
            (Dir::Server, ESTABLISHED.to_vec()),
            (Dir::Server, b"220 mx.example ESMTP\r\n".to_vec()),
            (Dir::Client, b"EHLO c.example\r\n".to_vec()),
        ]);
        assert_eq!(r.app_protocol.as_deref(), Some("http-connect"));
        assert_eq!(r.encryption, Encryption::Plaintext);
        // The hop that opened first is the one recorded.
        assert_eq!(proxy(&r), ("http-connect", "mx.example:25", true));
    }
}
