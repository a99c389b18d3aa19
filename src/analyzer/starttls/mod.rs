//! STARTTLS: in come the reassembled bytes of a flow whose first bytes [`detect`]
//! picked a plaintext protocol for; out go the protocol's findings and the TLS
//! analysis of the rest of each direction, both in the flow's record.
//!
//! The [`Driver`] follows a plaintext protocol to its upgrade and hands the rest of
//! each direction to the TLS analyzer at exactly the right byte: it holds client
//! bytes sent after an upgrade request until the server answers, checks that the
//! first bytes after the handoff are TLS (flagging injected plaintext), and records
//! the stream offsets.
//!
//! Every protocol is one file with the same parts: `detect` (does this flow speak
//! it?), a state machine implementing [`Protocol`], and the events it reports
//! ([`Step`]); those types live in [`protocol`], which the protocol files import
//! (never this module). The files are listed once, in the registry below, which
//! gives [`Proto`], [`ALL`] and the detection order.

pub mod frame;
pub mod ftp;
pub mod http;
pub mod imap;
pub mod irc;
pub mod ldap;
pub mod lines;
pub mod mysql;
pub mod nntp;
pub mod pop3;
pub mod postgres;
pub mod protocol;
pub mod rdp;
pub mod sieve;
pub mod smtp;
pub mod socks;
pub mod tds;
pub mod telnet;
pub mod xmpp;

pub use protocol::{Cx, DetectFn, EVIDENCE, MAX_AUTH, MakeFn, Protocol, Step, Verdict};

use super::options::Options;
use super::tls::{self, Start, TlsAnalyzer};
use crate::record::{Dir, Encryption, FlowRecord, Note, PerDir, StartTls, escape_wire};
use protocol::make;

/// Client bytes held after an upgrade request while waiting for the server's answer.
pub const MAX_HELD: usize = 16 * 1024;
/// Non-TLS bytes searched through for the start of TLS after a handoff.
pub const MAX_JUNK: usize = 16 * 1024;

/// What a protocol state machine is assumed to hold on the heap: its boxed state and a
/// partial line or message per direction, well below the caps (`lines::MAX_LINE`).
const MACHINE_BYTES: usize = 1024;

/// One protocol of the registry (see `registry!` below).
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub proto: Proto,
    /// Short name, for listings (not the reported `app_protocol`, which the machine sets).
    pub name: &'static str,
    pub detect: DetectFn,
    pub make: MakeFn,
}

/// Declares [`Proto`] (one variant per row, in row order), [`ALL`] and
/// [`Proto::row`] from one list of rows `Variant => "name", module::Machine;`, where
/// `module::detect` is the detector and `Machine::default()` the initial state.
macro_rules! registry {
    ($($proto:ident => $name:literal, $module:ident::$machine:ident;)+) => {
        /// A protocol that can upgrade in place; the variants are in registry
        /// (detection) order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Proto {
            $($proto,)+
        }

        impl Proto {
            /// This protocol's row of the registry.
            pub const fn row(self) -> Row {
                match self {
                    $(Proto::$proto => Row {
                        proto: Proto::$proto,
                        name: $name,
                        detect: $module::detect,
                        make: make::<$module::$machine>,
                    },)+
                }
            }
        }

        /// Every protocol, in detection order.
        pub const ALL: &[Row] = &[$(Proto::$proto.row(),)+];
    };
}

// The registry, in detection order. More specific first: binary openings, then
// greetings that name their protocol, then FTP before SMTP (both greet with 220),
// and IRC last (its USER and PASS are also FTP and POP3 commands).
registry! {
    Postgres => "postgres", postgres::Postgres;
    Mysql => "mysql", mysql::Mysql;
    Ldap => "ldap", ldap::Ldap;
    Rdp => "rdp", rdp::Rdp;
    Tds => "tds", tds::Tds;
    Socks => "socks", socks::Socks;
    Telnet => "telnet", telnet::Telnet;
    Xmpp => "xmpp", xmpp::Xmpp;
    Http => "http", http::Http;
    Imap => "imap", imap::Imap;
    Pop3 => "pop3", pop3::Pop3;
    Sieve => "sieve", sieve::Sieve;
    Nntp => "nntp", nntp::Nntp;
    Ftp => "ftp", ftp::Ftp;
    Smtp => "smtp", smtp::Smtp;
    Irc => "irc", irc::Irc;
}

/// Result of looking at the first bytes of a flow.
#[derive(Debug)]
pub enum Detect {
    Found { proto: Proto, swap: bool },
    NeedMore,
    No,
}

/// Picks the protocol from the first bytes of each direction, trying [`ALL`] in
/// order; the port is only a hint that breaks ties between protocols whose
/// greetings look alike.
pub fn detect(client: &[u8], server: &[u8], server_port: u16, at_end: bool) -> Detect {
    let mut maybe = false;
    for row in ALL {
        match (row.detect)(client, server, server_port) {
            Verdict::Yes { swap } => {
                return Detect::Found {
                    proto: row.proto,
                    swap,
                };
            }
            Verdict::Maybe => maybe = true,
            Verdict::No => {}
        }
    }
    // The same greeting seen from the other side: the roles are reversed.
    if !maybe {
        for row in ALL {
            if let Verdict::Yes { swap } = (row.detect)(server, client, server_port) {
                return Detect::Found {
                    proto: row.proto,
                    swap: !swap,
                };
            }
        }
    }
    if maybe && !at_end {
        Detect::NeedMore
    } else {
        Detect::No
    }
}

/// Runs of held bytes remembered with their packet; past this many the last run
/// grows (and takes the later packet).
const MAX_HELD_RUNS: usize = 64;

/// Client bytes held after an upgrade request, with the packet each run came in,
/// so that what they turn out to be is stamped with its own packet.
#[derive(Debug, Default)]
struct Held {
    bytes: Vec<u8>,
    /// (end offset in `bytes`, packet ordinal) of each run.
    runs: Vec<(usize, u64)>,
}

impl Held {
    fn push(&mut self, data: &[u8], at: u64) {
        self.bytes.extend_from_slice(data);
        let end = self.bytes.len();
        let full = self.runs.len() >= MAX_HELD_RUNS;
        match self.runs.last_mut() {
            Some(last) if last.1 == at || full => *last = (end, at),
            _ => self.runs.push((end, at)),
        }
    }

    /// The held bytes run by run, each with its packet.
    fn pieces(&self) -> impl Iterator<Item = (&[u8], u64)> {
        let mut start = 0;
        self.runs.iter().map(move |&(end, at)| {
            let piece = self.bytes.get(start..end).unwrap_or_default();
            start = end;
            (piece, at)
        })
    }
}

#[derive(Debug)]
enum Side {
    Plain,
    /// Client bytes after its request, kept until the server answers.
    Held(Held),
    /// Expecting TLS; bytes that are not (injected plaintext) are searched through.
    Gate {
        junk: Vec<u8>,
        /// The packet of the first byte in `junk`.
        since: u64,
    },
    Tls,
    /// Nothing more is analysed.
    Off,
}

/// A proxy tunnel that opened carrying something other than TLS
/// ([`Step::Tunnel`]): its bytes are those of a new connection, for the caller to
/// analyse; the driver follows them no further.
#[derive(Debug, Default)]
pub struct Tunnel {
    /// Stream offset where the tunnel begins in each direction.
    pub start: PerDir<u64>,
    /// The tunnel bytes the driver was given, in the order they came.
    pub first: Vec<(Dir, Vec<u8>)>,
}

/// Drives one protocol state machine and the TLS analyzer behind it.
#[derive(Debug)]
pub struct Driver {
    proto: Box<dyn Protocol>,
    side: PerDir<Side>,
    /// Stream offset of the next byte in each direction.
    pos: PerDir<u64>,
    /// Client offset right after its upgrade request.
    request_end: u64,
    tls: TlsAnalyzer,
    opts: Options,
    stopped: bool,
    refused: bool,
    /// A tunnel that opened, until the caller takes it.
    tunnel: Option<Box<Tunnel>>,
    /// Whether tunnels are handed over ([`Driver::take_tunnel`]) or, like any
    /// plaintext, end what is followed.
    follow_tunnels: bool,
}

impl Driver {
    pub fn new(proto: Proto, opts: Options) -> Self {
        Driver {
            proto: (proto.row().make)(),
            side: PerDir {
                client: Side::Plain,
                server: Side::Plain,
            },
            pos: PerDir::default(),
            request_end: 0,
            tls: TlsAnalyzer::new(),
            opts,
            stopped: false,
            refused: false,
            tunnel: None,
            follow_tunnels: true,
        }
    }

    /// The key table for the TLS after the upgrade (see [`TlsAnalyzer::set_keys`]).
    pub fn set_keys(&mut self, keys: Option<std::sync::Arc<crate::keylog::KeyLog>>) {
        self.tls.set_keys(keys);
    }

    /// Whether a proxy tunnel's contents are handed over to be analysed (the
    /// default), or end what is followed (inside a tunnel already).
    pub fn follow_tunnels(&mut self, yes: bool) {
        self.follow_tunnels = yes;
    }

    /// The proxy tunnel that opened in plaintext, if one did since the last call.
    pub fn take_tunnel(&mut self) -> Option<Box<Tunnel>> {
        self.tunnel.take()
    }

    /// Heap bytes held (an estimate for the protocol machine: its line and message
    /// buffers are capped; see `MACHINE_BYTES`), for the flow table's memory cap.
    pub fn heap_bytes(&self) -> usize {
        let side = |s: &Side| match s {
            Side::Held(h) => h.bytes.capacity() + h.runs.capacity() * 16,
            Side::Gate { junk, .. } => junk.capacity(),
            Side::Plain | Side::Tls | Side::Off => 0,
        };
        let tunnel = self.tunnel.as_ref().map_or(0, |t| {
            std::mem::size_of::<Tunnel>() + t.first.iter().map(|(_, b)| b.capacity()).sum::<usize>()
        });
        MACHINE_BYTES
            + side(&self.side.client)
            + side(&self.side.server)
            + self.tls.heap_bytes()
            + tunnel
    }

    pub fn is_done(&self) -> bool {
        if self.tunnel.is_some() {
            return false;
        }
        let pending = |s: &Side| matches!(s, Side::Held(_) | Side::Gate { .. });
        let (c, s) = (&self.side.client, &self.side.server);
        if pending(c) || pending(s) {
            return false;
        }
        if matches!(c, Side::Tls) || matches!(s, Side::Tls) {
            return self.tls.is_done();
        }
        self.stopped || (matches!(c, Side::Off) && matches!(s, Side::Off))
    }

    pub fn on_data(&mut self, dir: Dir, mut data: &[u8], rec: &mut FlowRecord) {
        while !data.is_empty() {
            match self.side.get_mut(dir) {
                Side::Off => return,
                Side::Tls => {
                    self.tls.on_data(dir, data, rec);
                    *self.pos.get_mut(dir) += data.len() as u64;
                    return;
                }
                Side::Held(held) => {
                    let room = MAX_HELD.saturating_sub(held.bytes.len());
                    held.push(data.get(..room.min(data.len())).unwrap_or_default(), rec.at);
                    *self.pos.get_mut(dir) += data.len() as u64;
                    if data.len() > room {
                        // The server never answered and the client kept talking: stop following.
                        *self.side.get_mut(dir) = Side::Off;
                        self.stopped = true;
                    }
                    return;
                }
                Side::Gate { .. } => {
                    self.gate(dir, data, rec);
                    return;
                }
                Side::Plain => {
                    if self.stopped {
                        *self.pos.get_mut(dir) += data.len() as u64;
                        return;
                    }
                    let step = {
                        let mut cx = Cx {
                            rec,
                            opts: self.opts,
                            tls: &mut self.tls,
                        };
                        self.proto.on_data(dir, data, &mut cx)
                    };
                    let at = match step {
                        Step::Continue => data.len(),
                        Step::Stop => {
                            self.stopped = true;
                            data.len()
                        }
                        // Inside a tunnel already: a tunnel ends what is followed.
                        Step::Tunnel { .. } if !self.follow_tunnels => {
                            self.stopped = true;
                            data.len()
                        }
                        Step::Requested { at }
                        | Step::Accepted { at }
                        | Step::Refused { at }
                        | Step::Upgrade { at }
                        | Step::Tunnel { at } => at.min(data.len()),
                    };
                    *self.pos.get_mut(dir) += at as u64;
                    data = data.get(at..).unwrap_or_default();
                    self.event(dir, step, rec);
                    if let Some(t) = &mut self.tunnel {
                        // The rest belongs to the connection inside the tunnel.
                        if !data.is_empty() {
                            t.first.push((dir, data.to_vec()));
                        }
                        *self.pos.get_mut(dir) += data.len() as u64;
                        return;
                    }
                }
            }
        }
    }

    fn event(&mut self, dir: Dir, step: Step, rec: &mut FlowRecord) {
        let gate = || Side::Gate {
            junk: Vec::new(),
            since: 0,
        };
        match step {
            Step::Requested { .. } => {
                rec.starttls_mut().requested = true;
                rec.frames.starttls_command = rec.at;
                self.request_end = *self.pos.get(dir);
                *self.side.get_mut(dir) = Side::Held(Held::default());
            }
            Step::Accepted { .. } => {
                let st = rec.starttls_mut();
                st.requested = true;
                st.accepted = true;
                rec.frames.starttls_reply = rec.at;
                self.refused = false;
                *self.side.get_mut(dir) = gate();
                let other = dir.other();
                if let Side::Held(held) = std::mem::replace(self.side.get_mut(other), gate()) {
                    *self.pos.get_mut(other) = self.request_end;
                    self.release(other, &held, rec);
                }
            }
            Step::Upgrade { .. } => {
                let st = rec.starttls_mut();
                st.requested = true;
                st.accepted = true;
                rec.frames.starttls_command = rec.at;
                *self.side.get_mut(dir) = gate();
                *self.side.get_mut(dir.other()) = gate();
            }
            Step::Refused { .. } => {
                rec.starttls_mut().requested = true;
                rec.frames.starttls_reply = rec.at;
                self.refused = true;
                let other = dir.other();
                if let Side::Held(held) = std::mem::replace(self.side.get_mut(other), Side::Plain) {
                    *self.pos.get_mut(other) = self.request_end;
                    self.release(other, &held, rec);
                }
            }
            Step::Tunnel { .. } if self.follow_tunnels => self.open_tunnel(dir),
            Step::Continue | Step::Stop | Step::Tunnel { .. } => {}
        }
    }

    /// A tunnel opened at the current offset of `dir`: the other side's held
    /// bytes (sent before the proxy answered) are its first, from the end of the
    /// request on.
    fn open_tunnel(&mut self, dir: Dir) {
        let mut t = Box::<Tunnel>::default();
        *t.start.get_mut(dir) = *self.pos.get(dir);
        let other = dir.other();
        *t.start.get_mut(other) = match std::mem::replace(self.side.get_mut(other), Side::Off) {
            Side::Held(held) => {
                if !held.bytes.is_empty() {
                    t.first.push((other, held.bytes));
                }
                self.request_end
            }
            _ => *self.pos.get(other),
        };
        *self.side.get_mut(dir) = Side::Off;
        self.tunnel = Some(t);
    }

    /// Hands on held bytes now that the server answered, each run stamped with
    /// the packet it came in.
    fn release(&mut self, dir: Dir, held: &Held, rec: &mut FlowRecord) {
        let now = rec.at;
        for (piece, at) in held.pieces() {
            rec.at = at;
            self.on_data(dir, piece, rec);
        }
        rec.at = now;
    }

    /// The first bytes after a handoff: TLS, or plaintext that does not belong there.
    fn gate(&mut self, dir: Dir, data: &[u8], rec: &mut FlowRecord) {
        let Side::Gate { junk, since } = self.side.get_mut(dir) else {
            return;
        };
        if junk.is_empty() {
            *since = rec.at;
        }
        let since = *since;
        let start_pos = *self.pos.get(dir) - junk.len() as u64;
        junk.extend_from_slice(data);
        *self.pos.get_mut(dir) += data.len() as u64;
        let mut i = 0;
        let found = loop {
            let Some(rest) = junk.get(i..) else {
                break None;
            };
            if rest.is_empty() {
                break None;
            }
            match tls::record_start(rest) {
                // Right at the handoff any record counts (an alert, say); past
                // injected bytes only a handshake record marks the start of TLS.
                Start::Tls { handshake, .. } if handshake || i == 0 => break Some(i),
                Start::Sslv2 { .. } if i == 0 || rest.first().is_some_and(|b| b & 0x80 != 0) => {
                    break Some(i);
                }
                Start::NeedMore => break None,
                _ => i += 1,
            }
        };
        let Some(i) = found else {
            if junk.len() > MAX_JUNK {
                let evidence = escape_wire(junk, EVIDENCE);
                record_injection(rec, dir, evidence, since);
                *self.side.get_mut(dir) = Side::Off;
            }
            return;
        };
        let junk = std::mem::take(junk);
        if i > 0 {
            let evidence = escape_wire(junk.get(..i).unwrap_or_default(), EVIDENCE);
            record_injection(rec, dir, evidence, since);
            rec.note(Note::StarttlsAfterJunk);
        }
        let offset = start_pos + i as u64;
        let st = rec.starttls_mut();
        match dir {
            Dir::Client => st.client_offset = Some(offset),
            Dir::Server => st.server_offset = Some(offset),
        }
        *self.side.get_mut(dir) = Side::Tls;
        self.tls
            .on_data(dir, junk.get(i..).unwrap_or_default(), rec);
    }

    pub fn on_gap(&mut self, dir: Dir, len: u64, rec: &mut FlowRecord) {
        *self.pos.get_mut(dir) += len;
        match self.side.get_mut(dir) {
            Side::Tls => self.tls.on_gap(dir, len, rec),
            Side::Plain if !self.stopped => {
                let step = {
                    let mut cx = Cx {
                        rec,
                        opts: self.opts,
                        tls: &mut self.tls,
                    };
                    self.proto.on_gap(dir, &mut cx)
                };
                if step == Step::Stop {
                    self.stopped = true;
                }
            }
            Side::Gate { .. } | Side::Held(_) => *self.side.get_mut(dir) = Side::Off,
            _ => {}
        }
    }

    /// End of flow: the verdict. A record closed before the connection was
    /// ([`FlowRecord::incomplete`]) says how far the dialogue got: an accepted
    /// upgrade is `starttls` until the packets show it failed, and a dialogue
    /// that could still have upgraded is not yet `plaintext`.
    pub fn finish(&mut self, rec: &mut FlowRecord) {
        let st = rec.starttls.clone().unwrap_or_default();
        let tls_seen = rec
            .tls
            .as_ref()
            .is_some_and(|t| t.server_hello.is_some() || t.client_hello.is_some());
        let tls_ok = rec
            .tls
            .as_ref()
            .is_some_and(|t| t.server_hello.is_some() && !t.fatal_alert());
        rec.encryption = if st.accepted {
            if tls_ok || !self.upgrade_failed(rec, &st) {
                Encryption::Starttls
            } else {
                Encryption::StarttlsFailed
            }
        } else if st.requested && self.refused {
            Encryption::StarttlsRefused
        } else if st.requested {
            // Asked, and no answer was captured.
            if tls_seen {
                Encryption::Starttls
            } else {
                Encryption::Unknown
            }
        } else if rec.bytes.client > 0 && rec.bytes.server > 0 && self.stays_plain(rec) {
            Encryption::Plaintext
        } else {
            Encryption::Unknown
        };
        if let Some(e) = self.proto.encryption() {
            rec.encryption = e;
        }
        if rec.encryption != Encryption::Starttls
            && rec.encryption != Encryption::StarttlsFailed
            && !tls_seen
        {
            rec.tls = None;
        }
    }

    /// An accepted upgrade without a completed handshake failed: the connection
    /// ended there, or the packets show the failure (a fatal alert, a plaintext
    /// answer to the ClientHello, no TLS within the plaintext searched through).
    fn upgrade_failed(&self, rec: &FlowRecord, st: &StartTls) -> bool {
        // The gate gave up on a direction after searching its plaintext for TLS.
        let gave_up =
            |d: Dir, junk: &Option<String>| junk.is_some() && matches!(self.side.get(d), Side::Off);
        !rec.incomplete
            || rec.tls.as_ref().is_some_and(|t| t.fatal_alert())
            || rec.has_note(Note::ServerPlaintext)
            || gave_up(Dir::Client, &st.injection)
            || gave_up(Dir::Server, &st.response_injection)
    }

    /// A dialogue that was not upgraded stays plaintext: the connection ended, or
    /// it went past the point of upgrading (the protocol says so, or stopped
    /// following it: a mail transaction, a login accepted). Credentials sent in
    /// the clear are not such a point: a SOCKS or proxy login precedes the
    /// tunnel's TLS.
    fn stays_plain(&self, rec: &FlowRecord) -> bool {
        !rec.incomplete || self.stopped || self.proto.past_upgrade()
    }
}

/// Plaintext found where TLS should begin, first seen in packet `at`.
fn record_injection(rec: &mut FlowRecord, dir: Dir, evidence: String, at: u64) {
    let st = rec.starttls_mut();
    match dir {
        Dir::Client => {
            st.injection = Some(evidence);
            rec.frames.injection = at;
        }
        Dir::Server => {
            st.response_injection = Some(evidence);
            rec.frames.response_injection = at;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::Endpoint;
    use crate::time::Timestamp;

    /// A minimal valid ClientHello record (TLS 1.2, one suite).
    pub fn client_hello() -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([0x11; 32]);
        body.extend([0x00, 0x00, 0x02, 0xc0, 0x2f, 0x01, 0x00]);
        hs_record(1, &body)
    }

    /// A minimal valid ServerHello record selecting TLS 1.2 and suite 0xc02f.
    pub fn server_hello() -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([0x22; 32]);
        body.extend([0x00, 0xc0, 0x2f, 0x00]);
        hs_record(2, &body)
    }

    fn hs_record(msg: u8, body: &[u8]) -> Vec<u8> {
        let mut hs = vec![msg, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend(body);
        let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
        rec.extend(hs);
        rec
    }

    fn new_rec() -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([127, 0, 0, 1]),
            port,
        };
        FlowRecord::new(1, Timestamp::default(), ep(40000), ep(25))
    }

    /// Feeds a transcript through a fresh driver, each message split at `split`
    /// (or whole when `None`), and returns the finished record.
    pub fn run(proto: Proto, transcript: &[(Dir, Vec<u8>)], split: Option<usize>) -> FlowRecord {
        let mut rec = new_rec();
        let mut d = Driver::new(proto, Options::default());
        for (dir, bytes) in transcript {
            *rec.bytes.get_mut(*dir) += bytes.len() as u64;
            match split {
                Some(at) if at < bytes.len() => {
                    let (a, b) = bytes.split_at(at);
                    d.on_data(*dir, a, &mut rec);
                    d.on_data(*dir, b, &mut rec);
                }
                _ => d.on_data(*dir, bytes, &mut rec),
            }
        }
        d.finish(&mut rec);
        rec
    }

    #[test]
    fn registry_rows_in_detection_order_one_per_proto() {
        let names: Vec<_> = ALL.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "postgres", "mysql", "ldap", "rdp", "tds", "socks", "telnet", "xmpp", "http",
                "imap", "pop3", "sieve", "nntp", "ftp", "smtp", "irc"
            ]
        );
        for (i, row) in ALL.iter().enumerate() {
            assert_eq!(row.proto as usize, i, "{}", row.name);
            assert_eq!(row.proto.row().name, row.name);
        }
    }

    #[test]
    fn detect_takes_the_first_row_that_says_yes() {
        // Each flow is claimed by two detectors; the earlier row wins.
        let cases: [(&[u8], &[u8], Proto, Proto); 2] = [
            (b"USER bob\r\n", b"220 Welcome\r\n", Proto::Ftp, Proto::Smtp),
            (b"EHLO x\r\n", b"* OK ready\r\n", Proto::Imap, Proto::Smtp),
        ];
        for (client, server, first, second) in cases {
            let yes =
                |p: Proto| (p.row().detect)(client, server, 25) == Verdict::Yes { swap: false };
            assert!(yes(first) && yes(second), "{first:?} {second:?}");
            let at = |p: Proto| ALL.iter().position(|r| r.proto == p);
            assert!(at(first) < at(second));
            let found = detect(client, server, 25, false);
            assert!(
                matches!(found, Detect::Found { proto, swap: false } if proto == first),
                "{found:?}"
            );
        }
    }

    /// Runs a transcript through a driver for a record closed before the
    /// connection was (end of input, no FIN seen).
    fn run_cut(proto: Proto, transcript: &[(Dir, Vec<u8>)]) -> FlowRecord {
        let mut rec = new_rec();
        rec.mark_incomplete();
        let mut d = Driver::new(proto, Options::default());
        for (dir, bytes) in transcript {
            *rec.bytes.get_mut(*dir) += bytes.len() as u64;
            d.on_data(*dir, bytes, &mut rec);
        }
        d.finish(&mut rec);
        rec
    }

    fn smtp_until(n: usize) -> Vec<(Dir, Vec<u8>)> {
        let t = [
            (Dir::Server, b"220 mx ESMTP\r\n".to_vec()),
            (Dir::Client, b"EHLO c\r\n".to_vec()),
            (Dir::Server, b"250-mx\r\n250 STARTTLS\r\n".to_vec()),
            (Dir::Client, b"STARTTLS\r\n".to_vec()),
            (Dir::Server, b"220 go ahead\r\n".to_vec()),
            (Dir::Client, client_hello()),
        ];
        t.into_iter().take(n).collect()
    }

    /// Cut short, an accepted upgrade is `starttls` (how far it got), the same
    /// transcript ended by the connection is `starttls-failed`.
    #[test]
    fn an_accepted_upgrade_cut_short_is_starttls_not_failed() {
        for n in [5, 6] {
            let cut = run_cut(Proto::Smtp, &smtp_until(n));
            assert_eq!(cut.encryption, Encryption::Starttls, "{n} messages");
            assert_eq!(
                run(Proto::Smtp, &smtp_until(n), None).encryption,
                Encryption::StarttlsFailed
            );
        }
        let cut = run_cut(Proto::Smtp, &smtp_until(6));
        assert!(
            cut.tls
                .is_some_and(|t| t.client_hello.is_some() && !t.established)
        );
    }

    /// Cut short, a fatal alert answering the ClientHello still fails the upgrade.
    #[test]
    fn a_fatal_alert_fails_an_upgrade_cut_short() {
        let mut t = smtp_until(6);
        t.push((Dir::Server, vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]));
        let cut = run_cut(Proto::Smtp, &t);
        assert_eq!(cut.encryption, Encryption::StarttlsFailed);
    }

    /// Plaintext after the go-ahead and no TLS within the cap searched through:
    /// the upgrade failed, cut short or not.
    #[test]
    fn no_tls_after_the_go_ahead_fails_an_upgrade_cut_short() {
        let mut t = smtp_until(5);
        t.push((Dir::Client, vec![b'x'; MAX_JUNK + 1]));
        let cut = run_cut(Proto::Smtp, &t);
        assert_eq!(cut.encryption, Encryption::StarttlsFailed);
        assert!(cut.starttls.is_some_and(|s| s.injection.is_some()));
    }

    /// Cut before the client asked, the dialogue could still upgrade: `unknown`,
    /// not `plaintext`; ended by the connection there, it is `plaintext`.
    #[test]
    fn a_dialogue_cut_before_the_upgrade_is_not_yet_plaintext() {
        let cut = run_cut(Proto::Smtp, &smtp_until(3));
        assert_eq!(cut.encryption, Encryption::Unknown);
        assert!(cut.starttls.is_some_and(|s| s.offered));
        assert_eq!(
            run(Proto::Smtp, &smtp_until(3), None).encryption,
            Encryption::Plaintext
        );
        // Past the point of upgrading (the mail transaction's DATA): plaintext.
        let mut t = smtp_until(3);
        t.push((
            Dir::Client,
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec(),
        ));
        assert_eq!(run_cut(Proto::Smtp, &t).encryption, Encryption::Plaintext);
    }

    /// A PostgreSQL StartupMessage without an SSLRequest before it: no upgrade can
    /// follow, so a cut after it is already plaintext.
    #[test]
    fn a_startup_message_in_the_clear_is_plaintext_even_cut_short() {
        let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
        startup.extend(b"user\0bob\0\0");
        let len = startup.len() as u8;
        startup[3] = len;
        // AuthenticationCleartextPassword.
        let ask = vec![b'R', 0, 0, 0, 8, 0, 0, 0, 3];
        let t = [(Dir::Client, startup), (Dir::Server, ask)];
        assert_eq!(
            run_cut(Proto::Postgres, &t).encryption,
            Encryption::Plaintext
        );
    }

    /// Runs a transcript through a driver that reports user names (`--show-users`).
    pub fn with_users(proto: Proto, transcript: &[(Dir, Vec<u8>)]) -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([127, 0, 0, 1]),
            port,
        };
        let mut rec = FlowRecord::new(1, Timestamp::default(), ep(40000), ep(1));
        let opts = Options { show_users: true };
        let mut d = Driver::new(proto, opts);
        for (dir, bytes) in transcript {
            *rec.bytes.get_mut(*dir) += bytes.len() as u64;
            d.on_data(*dir, bytes, &mut rec);
        }
        d.finish(&mut rec);
        rec
    }

    /// An accepted upgrade: checks the common facts and that the TLS offsets are
    /// where the transcript's first TLS record of each side begins (the sum of the
    /// plaintext messages before it), independently of how the driver counts.
    pub fn assert_accepted(
        proto: Proto,
        t: &[(Dir, Vec<u8>)],
        command: &str,
        reply: &str,
        app: &str,
    ) -> FlowRecord {
        let rec = run_split_invariant(proto, t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && st.requested && st.accepted, "{st:?}");
        assert_eq!(st.command.as_deref(), Some(command));
        assert_eq!(st.reply.as_deref(), Some(reply));
        let plaintext_before_tls = |dir: Dir| -> u64 {
            t.iter()
                .filter(|(d, _)| *d == dir)
                .take_while(|(_, b)| b.first() != Some(&0x16))
                .map(|(_, b)| b.len() as u64)
                .sum()
        };
        assert_eq!(st.client_offset, Some(plaintext_before_tls(Dir::Client)));
        assert_eq!(st.server_offset, Some(plaintext_before_tls(Dir::Server)));
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some(app));
        rec
    }

    /// Split invariance: the transcript whole, and split at every byte offset of
    /// every message, must give the same record.
    pub fn run_split_invariant(proto: Proto, transcript: &[(Dir, Vec<u8>)]) -> FlowRecord {
        let whole = run(proto, transcript, None);
        let longest = transcript.iter().map(|(_, b)| b.len()).max().unwrap_or(0);
        let want = serde_json::to_value(&whole).ok();
        for at in 1..longest {
            let got = serde_json::to_value(run(proto, transcript, Some(at))).ok();
            assert_eq!(got, want, "split at {at}");
        }
        whole
    }
}
