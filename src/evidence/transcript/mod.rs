//! `--transcript`: one flow as tcpflow or Wireshark's "Follow TCP Stream" would
//! show it, knowing where TLS begins.
//!
//! In: the flow's record and its packets (a second reading of the inputs). Out:
//! text: a heading; each direction's cleartext in wire order, a line per protocol
//! line or message with the packet that completed it (`text` for text protocols,
//! `binary` for those whose messages are shown by name), credentials redacted as
//! the records redact them; then the handshake, the verdict and the findings
//! (`summary`). Every string from the wire is escaped.
//!
//! Memory is bounded whatever the flow carried: each direction is reassembled
//! with the flow engine's caps, a line keeps at most 4 KiB, and after
//! [`out::MAX_LINES`] lines the rest of the cleartext is only counted: a flow with
//! gigabytes of cleartext prints its first 400 lines and one line saying how many
//! more there were, how many bytes each way, and in which frames.

pub mod binary;
pub mod out;
pub mod summary;
pub mod text;

use crate::config::StreamLimits;
use crate::decode::path::Segment;
use crate::flow::reassembly::{Chunk, SeqNum, Stream};
use crate::record::{Dir, Encryption, FlowRecord, Note, PerDir, Transport};
use binary::Binary;
use out::{Fref, Out};
use std::net::IpAddr;
use text::{Marks, Text};

/// How a flow's cleartext is shown.
#[derive(Debug)]
enum Render {
    Text(Text),
    Binary(Binary),
}

impl Render {
    fn data(&mut self, dir: Dir, at: Fref, bytes: &[u8], out: &mut Out) {
        match self {
            Render::Text(t) => t.data(dir, at, bytes, out),
            Render::Binary(b) => b.data(dir, at, bytes, out),
        }
    }

    /// The end of the flow; `tls`: which directions reached their TLS.
    fn finish(&mut self, at: Fref, out: &mut Out, tls: PerDir<bool>) {
        match self {
            Render::Text(t) => t.finish(at, out),
            Render::Binary(b) => b.finish(at, out, tls),
        }
    }
}

/// One direction's bytes on their way to the renderer.
#[derive(Debug)]
struct Side {
    stream: Stream,
    /// Stream offset of the next byte.
    pos: u64,
    /// Where TLS begins in this direction (`None`: it never does).
    limit: Option<u64>,
    datagrams: u64,
}

/// The transcript of one flow, built as its packets come.
#[derive(Debug)]
pub struct Transcriber {
    rec: Box<FlowRecord>,
    input_name: String,
    client: (IpAddr, u16),
    side: PerDir<Side>,
    render: Render,
    out: Out,
    last: Fref,
}

impl Transcriber {
    /// The transcript of the flow `rec` (its frames numbered within `input_name`).
    pub fn new(rec: Box<FlowRecord>, input_name: String, show_users: bool) -> Self {
        let limits = tls_starts(&rec);
        let side = |limit| Side {
            stream: Stream::new(StreamLimits::default()),
            pos: 0,
            limit,
            datagrams: 0,
        };
        let app = rec.app_protocol.as_deref();
        let render = match binary::Proto::of(app) {
            Some(p) => Render::Binary(Binary::new(p, show_users)),
            None => {
                let kind = text::Kind::of(app).unwrap_or(text::Kind::Plain);
                Render::Text(Text::new(kind, show_users, marks(&rec)))
            }
        };
        Transcriber {
            client: (rec.client.ip, rec.client.port),
            side: PerDir {
                client: side(limits.client),
                server: side(limits.server),
            },
            render,
            out: Out::new(rec.input),
            last: Fref::default(),
            input_name,
            rec,
        }
    }

    fn dir_of(&self, src: (IpAddr, u16)) -> Dir {
        if src == self.client {
            Dir::Client
        } else {
            Dir::Server
        }
    }

    /// One TCP segment of the flow, packet `at`.
    pub fn segment(&mut self, seg: &Segment<'_>, at: Fref) {
        self.last = at;
        let dir = self.dir_of((seg.src, seg.sport));
        let Transcriber {
            side, render, out, ..
        } = self;
        if seg.flags.syn {
            side.get_mut(dir).stream.on_syn(SeqNum(seg.seq));
        }
        let data_seq = SeqNum(seg.seq).wrapping_add(u32::from(seg.flags.syn));
        if !seg.payload.is_empty() {
            let s = side.get_mut(dir);
            let (pos, limit) = (&mut s.pos, s.limit);
            s.stream.on_segment(data_seq, seg.payload, &mut |c| {
                deliver(render, out, dir, at, pos, limit, c);
            });
        }
        if seg.flags.ack {
            let other = dir.other();
            let s = side.get_mut(other);
            let (pos, limit) = (&mut s.pos, s.limit);
            s.stream.on_peer_ack(SeqNum(seg.ack), &mut |c| {
                deliver(render, out, other, at, pos, limit, c);
            });
        }
        if seg.flags.fin {
            let end = data_seq.wrapping_add(seg.payload.len() as u32);
            side.get_mut(dir).stream.on_fin(end);
        }
    }

    /// One UDP datagram of the flow (QUIC, DTLS: counted; the handshake is the record's).
    pub fn datagram(&mut self, src: (IpAddr, u16), at: Fref) {
        self.last = at;
        let dir = self.dir_of(src);
        self.side.get_mut(dir).datagrams += 1;
    }

    /// The whole transcript.
    pub fn finish(mut self) -> String {
        let at = self.last;
        {
            let Transcriber {
                side, render, out, ..
            } = &mut self;
            for dir in [Dir::Client, Dir::Server] {
                let s = side.get_mut(dir);
                let (pos, limit) = (&mut s.pos, s.limit);
                s.stream
                    .flush(&mut |c| deliver(render, out, dir, at, pos, limit, c));
            }
            let tls = PerDir {
                client: side.client.limit.is_some_and(|l| side.client.pos > l),
                server: side.server.limit.is_some_and(|l| side.server.pos > l),
            };
            render.finish(at, out, tls);
            out.close();
        }
        let mut s = summary::heading(&self.rec, &self.input_name, &self.out);
        if self.rec.transport == Transport::Udp {
            s.push_str(&format!(
                "  {} datagrams from the client, {} from the server; no cleartext phase\n",
                self.side.client.datagrams, self.side.server.datagrams
            ));
        } else if self.out.lines() == 0 {
            s.push_str("cleartext: none (TLS from the first byte)\n");
        } else {
            s.push_str("cleartext:\n");
            s.push_str(&self.out.text);
        }
        s.push_str(&summary::handshake_and_verdict(&self.rec, &self.out));
        s
    }
}

/// One chunk of a direction's stream: the part before TLS begins is shown.
fn deliver(
    render: &mut Render,
    out: &mut Out,
    dir: Dir,
    at: Fref,
    pos: &mut u64,
    limit: Option<u64>,
    c: Chunk<'_>,
) {
    let start = *pos;
    let end = limit.unwrap_or(u64::MAX);
    match c {
        Chunk::Data(b) => {
            let len = b.len() as u64;
            *pos += len;
            if start < end {
                let n = (end - start).min(len) as usize;
                render.data(dir, at, b.get(..n).unwrap_or_default(), out);
            }
            if end > 0 && start <= end && end < start + len {
                out.note(at, &format!("{}: TLS begins here", who(dir)));
            }
        }
        Chunk::Gap(n) => {
            *pos += n;
            if start < end {
                out.note(
                    at,
                    &format!("[{n} bytes of the {}'s stream were not captured]", who(dir)),
                );
            }
        }
    }
}

fn who(dir: Dir) -> &'static str {
    match dir {
        Dir::Client => "client",
        Dir::Server => "server",
    }
}

/// Where TLS begins in each direction, from the record: at once for direct TLS,
/// QUIC and DTLS (except a server that answered in plaintext), at the STARTTLS
/// offsets for an upgrade, never for the rest.
fn tls_starts(rec: &FlowRecord) -> PerDir<Option<u64>> {
    match rec.encryption {
        Encryption::Quic | Encryption::Dtls => PerDir {
            client: Some(0),
            server: Some(0),
        },
        Encryption::Tls => PerDir {
            client: Some(0),
            server: (!rec.has_note(Note::ServerPlaintext)).then_some(0),
        },
        _ => {
            let st = rec.starttls.as_ref();
            PerDir {
                client: st.and_then(|s| s.client_offset),
                server: st.and_then(|s| s.server_offset),
            }
        }
    }
}

/// The upgrade request and reply the record saw, to mark plaintext injected after them.
fn marks(rec: &FlowRecord) -> Marks {
    let st = rec.starttls.as_ref();
    Marks {
        command: st.and_then(|s| s.command.clone()),
        reply: st.and_then(|s| s.reply.clone()),
        injection: st.is_some_and(|s| s.injection.is_some()),
        response_injection: st.is_some_and(|s| s.response_injection.is_some()),
    }
}
