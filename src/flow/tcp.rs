//! The flow table: connections keyed by their endpoints, client/server roles,
//! per-direction reassembly into the analyzer, the ways a flow ends, and the memory
//! all of it may hold (`--memcap`).
//!
//! A flow that has carried no payload is a small fixed-size entry (key, roles, counters,
//! times, ISNs); its record, reassembly streams and analyzer are allocated at the first
//! payload byte (or the first acknowledgement of bytes never captured). Entries live in a
//! [`Table`] that never moves them and keeps them in recency order, so ending the least
//! recently active flow costs O(1).

use super::ending::{Emit, settle};
use super::key::{FlowKey, Joins};
use crate::analyzer::options::Options;
use crate::analyzer::tcp::{Analyzer, Signal};
use crate::assess::Policy;
use crate::config::Limits;
use crate::config::StreamLimits;
use crate::config::UdpLimits;
use crate::decode::path::FragNotes;
use crate::decode::path::{Datagram, DecodeNotes, Segment, TunnelPath};
use crate::flow::reassembly::{Chunk, SeqNum, Stream};
use crate::flow::store::{Budget, Slot, Table};
use crate::flow::udp::UdpTable;
use crate::keylog::KeyLog;
use crate::record::{Dir, EndReason, Endpoint, FlowRecord, Note, PerDir};
use crate::stats::{MemoryStats, PacketStats};
use crate::time::Timestamp;
use std::net::IpAddr;
use std::sync::Arc;

/// ISNs remembered per direction.
const MAX_ISNS: usize = 4;

/// The receive window assumed where one is needed: an RST within this many bytes of the
/// next sequence number its receiver expects ends the connection, and a reply through
/// another tunnel joins a flow when it acknowledges bytes within this distance of what
/// that flow's sender sent. The advertised window is not followed (its scale is unknown
/// without the handshake); 1 MiB covers the windows of ordinary connections.
pub const RCV_WINDOW: i64 = 1 << 20;

/// Sequence numbers further than this from the latest one a side sent are not taken as
/// its new latest (a stray or forged segment must not move what RSTs are judged by).
const SEQ_JUMP: i64 = 1 << 30;

/// An optional sequence number in five bytes with no alignment, so that the several a
/// flow keeps pack tightly (a plain `Option<u32>` takes eight).
#[derive(Clone, Copy, Default)]
#[repr(C, packed)]
struct OptSeq {
    set: bool,
    v: u32,
}

impl OptSeq {
    fn some(v: u32) -> Self {
        OptSeq { set: true, v }
    }

    fn get(self) -> Option<u32> {
        let v = self.v;
        self.set.then_some(v)
    }
}

impl std::fmt::Debug for OptSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// A timestamp in twelve bytes (a plain `Timestamp` is padded to sixteen).
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct PackedTs {
    secs: i64,
    nanos: u32,
}

impl From<Timestamp> for PackedTs {
    fn from(t: Timestamp) -> Self {
        PackedTs {
            secs: t.secs,
            nanos: t.nanos,
        }
    }
}

impl From<PackedTs> for Timestamp {
    fn from(t: PackedTs) -> Self {
        let (secs, nanos) = (t.secs, t.nanos);
        Timestamp { secs, nanos }
    }
}

impl std::fmt::Debug for PackedTs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Timestamp::from(*self).fmt(f)
    }
}

/// Notes learned before the record exists, as bits (one byte in the flow entry); added
/// to the record in the order of the constants.
#[derive(Clone, Copy, Debug, Default)]
struct EarlyNotes(u8);

impl EarlyNotes {
    const MIDSTREAM: u8 = 1;
    const ROLES_FROM_PORTS: u8 = 1 << 1;
    const TRUNCATED: u8 = 1 << 2;
    /// Reassembled IP fragments were seen (the three below say what they showed).
    const FRAGMENTS: u8 = 1 << 3;
    const FRAG_OVERLAP: u8 = 1 << 4;
    const FRAG_TINY: u8 = 1 << 5;
    const FRAG_HEADER: u8 = 1 << 6;
    /// An RST was ignored: its sequence number was not acceptable (RFC 5961 §3).
    const RST_IGNORED: u8 = 1 << 7;

    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        }
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    fn add(&mut self, truncated: bool, d: &DecodeNotes) {
        self.set(Self::TRUNCATED, truncated);
        if let Some(f) = d.fragments {
            self.set(Self::FRAGMENTS, true);
            self.set(Self::FRAG_OVERLAP, f.conflicting_overlap);
            self.set(Self::FRAG_TINY, f.tiny_first);
            self.set(Self::FRAG_HEADER, f.header_overlap);
        }
    }

    fn apply(self, rec: &mut FlowRecord) {
        if self.has(Self::MIDSTREAM) {
            rec.note(Note::Midstream);
        }
        if self.has(Self::ROLES_FROM_PORTS) {
            rec.note(Note::RolesFromPorts);
        }
        if self.has(Self::TRUNCATED) {
            rec.note(Note::Truncated);
        }
        if self.has(Self::RST_IGNORED) {
            rec.note(Note::RstIgnored);
        }
        let fragments = self.has(Self::FRAGMENTS).then_some(FragNotes {
            conflicting_overlap: self.has(Self::FRAG_OVERLAP),
            tiny_first: self.has(Self::FRAG_TINY),
            header_overlap: self.has(Self::FRAG_HEADER),
        });
        rec.note_decode(&DecodeNotes { fragments });
    }
}

/// A flow's roles in one byte: whether the client is the key's `a` endpoint, and
/// whether the TCP handshake fixed the roles (else ports or content chose them).
#[derive(Clone, Copy, Debug, Default)]
struct Roles(u8);

impl Roles {
    const CLIENT_IS_A: u8 = 1;
    const FIXED: u8 = 1 << 1;

    fn new(client_is_a: bool, fixed: bool) -> Self {
        Roles((u8::from(client_is_a) * Self::CLIENT_IS_A) | (u8::from(fixed) * Self::FIXED))
    }

    fn client_is_a(self) -> bool {
        self.0 & Self::CLIENT_IS_A != 0
    }

    fn fixed(self) -> bool {
        self.0 & Self::FIXED != 0
    }

    fn swap(&mut self) {
        self.0 ^= Self::CLIENT_IS_A;
    }
}

/// What a tunnelled flow keeps of its tunnels.
#[derive(Debug)]
struct TunnelInfo {
    /// The tunnels as the client sees them, until the record takes them.
    path: TunnelPath,
    /// The identity of the path's hop kinds: with the endpoints, the key the flow waits
    /// under for its other direction (see [`Joins`]).
    kinds: u64,
    /// The tunnel identity of the other direction, when it differed and joined the flow.
    joined: Option<u64>,
    /// Sequence number of the flow's first packet: a reply through another tunnel must
    /// acknowledge bytes from about there on to join it.
    first_seq: u32,
}

/// What few flows need, boxed so that the others pay one word: the tunnels the flow
/// came through, the ISNs of a side after its first, and the high halves of the
/// counters whose low halves the flow keeps inline (all zero until one passes 2^32).
#[derive(Debug, Default)]
struct Rare {
    tunnel: Option<TunnelInfo>,
    /// Per direction, the ISNs after the first (`isn_n - 1` of them).
    isns: PerDir<[u32; MAX_ISNS - 1]>,
    packets_hi: PerDir<u32>,
    /// Of `last - first`.
    last_hi: u32,
    /// Of the seconds from `start` to `end`.
    end_hi: u32,
}

/// Bytes the rare part of a flow costs when it has one.
const RARE_BYTES: usize = std::mem::size_of::<Rare>();

/// A 64-bit value kept as its low half inline and its high half in the flow's
/// [`Rare`] part, which the value makes only when the high half is not zero.
fn set_wide(
    lo: &mut u32,
    rare: &mut Option<Box<Rare>>,
    hi: impl FnOnce(&mut Rare) -> &mut u32,
    v: u64,
) {
    let (l, h) = (v as u32, (v >> 32) as u32);
    *lo = l;
    if h != 0 || rare.is_some() {
        *hi(rare.get_or_insert_with(Box::default)) = h;
    }
}

/// The value [`set_wide`] kept.
fn wide(lo: u32, hi: Option<u32>) -> u64 {
    u64::from(lo) | (u64::from(hi.unwrap_or(0)) << 32)
}

/// One connection while it has carried no payload: everything the record needs later,
/// in a fixed size (see `payload_less_flows_stay_small`). Fields are ordered and packed
/// so that the entry stays small: a flood holds millions of them.
#[derive(Debug)]
struct Flow {
    id: u64,
    /// The engine clock (which never goes back) at the latest packet, in seconds: idle
    /// timeouts and recency order agree even when packet times jump backwards.
    last_seen: i64,
    /// Ordinal of the first packet (the record's `frames.first`).
    first: u64,
    /// Everything that exists from the first payload byte on.
    state: Option<Box<Active>>,
    /// Tunnels, further ISNs, high halves of counters ([`Rare`]).
    rare: Option<Box<Rare>>,
    start: PackedTs,
    /// Time of the latest packet (the record's `end`): seconds after `start` (the low
    /// half; the high half in `rare`), and its nanoseconds.
    end_secs: u32,
    end_nanos: u32,
    /// Packets per direction (the low halves; the high halves in `rare`).
    packets: PerDir<u32>,
    /// Ordinal of the latest packet (the record's `frames.last`), after `first` (the
    /// low half; the high half in `rare`).
    last: u32,
    /// The first ISN seen per direction; `isn_n` counts those seen (the others are in
    /// `rare`), to notice a SYN that restarts the connection.
    isn: PerDir<u32>,
    isn_n: PerDir<u8>,
    /// The ISN each direction's stream is based on.
    cur_isn: PerDir<OptSeq>,
    client_isn: OptSeq,
    /// Per direction: the next sequence number that side will send, as far as the flow
    /// knows: after the latest byte (or SYN or FIN) it sent, or the latest acknowledgement
    /// the other side sent, whichever is later. What an RST is judged by (RFC 5961 §3);
    /// before the streams exist, a side's FIN is the sequence number before it.
    nxt: PerDir<OptSeq>,
    fin: PerDir<bool>,
    /// Which endpoint of the key is the client, and whether the TCP handshake said so.
    roles: Roles,
    /// The analyzer is done: only count packets.
    bypass: bool,
    early: EarlyNotes,
}

/// A flow's record, reassembly and analysis, allocated at its first payload byte.
#[derive(Debug)]
struct Active {
    rec: FlowRecord,
    streams: PerDir<Stream>,
    analyzer: Analyzer,
    /// Payload bytes per direction (a flow without payload has no `Active`).
    payload: PerDir<u64>,
    /// Bytes charged to the budget for this state (saturating).
    charged: u32,
}

impl Active {
    /// Heap and inline bytes this state holds (an estimate for the analyzer and record).
    fn bytes(&self) -> usize {
        std::mem::size_of::<Active>()
            + self.streams.client.heap_bytes()
            + self.streams.server.heap_bytes()
            + self.analyzer.heap_bytes()
            + self.rec.heap_bytes()
    }

    fn buffering(&self) -> bool {
        self.streams.client.buffered() > 0 || self.streams.server.buffered() > 0
    }
}

impl Flow {
    /// Counts one segment of `dir` and its notes, at packet time `ts` (`now`: the
    /// engine's clock, [`follow_packet_time`]). The flow's end moves forward
    /// only, and to a packet stamped more than `far` seconds after the flow's
    /// latest one only once the clock followed (a lone packet years off does
    /// not count). A packet held back ahead of the clock keeps its flow from
    /// the sweep that the next packet, if it confirms the jump, runs.
    fn count(&mut self, dir: Dir, seg: &Segment<'_>, at: Stamp, now: Timestamp, far: i64) {
        let ts = at.ts;
        let packets = self.packets_of(dir).wrapping_add(1);
        let (lo, rare) = (self.packets.get_mut(dir), &mut self.rare);
        set_wide(lo, rare, |r| r.packets_hi.get_mut(dir), packets);
        let end = self.end();
        if ts > end && (ts.secs.saturating_sub(end.secs) <= far || ts <= now) {
            self.set_end(ts);
        }
        let since = at.ordinal.wrapping_sub(self.first);
        set_wide(&mut self.last, &mut self.rare, |r| &mut r.last_hi, since);
        self.last_seen = now.secs.max(ts.secs);
        match self.state.as_mut() {
            Some(a) => {
                if seg.truncated {
                    a.rec.note(Note::Truncated);
                }
                a.rec.note_decode(&seg.notes);
            }
            None => self.early.add(seg.truncated, &seg.notes),
        }
    }

    fn packets_of(&self, dir: Dir) -> u64 {
        let hi = self.rare.as_ref().map(|r| *r.packets_hi.get(dir));
        wide(*self.packets.get(dir), hi)
    }

    fn packets(&self) -> PerDir<u64> {
        PerDir {
            client: self.packets_of(Dir::Client),
            server: self.packets_of(Dir::Server),
        }
    }

    /// Ordinal of the latest packet.
    fn last(&self) -> u64 {
        let since = wide(self.last, self.rare.as_ref().map(|r| r.last_hi));
        self.first.wrapping_add(since)
    }

    /// Time of the latest packet (never before `start`).
    fn end(&self) -> Timestamp {
        let secs = wide(self.end_secs, self.rare.as_ref().map(|r| r.end_hi));
        Timestamp {
            secs: self.start.secs.wrapping_add(secs as i64),
            nanos: self.end_nanos,
        }
    }

    fn set_end(&mut self, ts: Timestamp) {
        let secs = ts.secs.wrapping_sub(self.start.secs) as u64;
        set_wide(&mut self.end_secs, &mut self.rare, |r| &mut r.end_hi, secs);
        self.end_nanos = ts.nanos;
    }

    fn tunnel(&self) -> Option<&TunnelInfo> {
        self.rare.as_ref()?.tunnel.as_ref()
    }

    /// Payload bytes per direction so far.
    fn payload(&self) -> PerDir<u64> {
        self.state
            .as_ref()
            .map_or_else(PerDir::default, |a| a.payload)
    }

    /// Counts a segment's payload bytes, once the segment went through (a segment
    /// with payload made the flow active).
    fn count_payload(&mut self, dir: Dir, len: usize) {
        if let Some(a) = self.state.as_mut() {
            *a.payload.get_mut(dir) += len as u64;
        }
    }

    /// Whether `dir` sent a SYN with this ISN.
    fn knows_isn(&self, dir: Dir, isn: u32) -> bool {
        match *self.isn_n.get(dir) {
            0 => false,
            n => {
                let later = self
                    .rare
                    .as_ref()
                    .map_or(&[][..], |r| r.isns.get(dir).as_slice());
                *self.isn.get(dir) == isn
                    || later
                        .get(..usize::from(n - 1))
                        .is_some_and(|l| l.contains(&isn))
            }
        }
    }

    /// Remembers an ISN `dir` sent, while there is room for one more.
    fn add_isn(&mut self, dir: Dir, isn: u32) {
        let n = *self.isn_n.get(dir);
        if n == 0 {
            *self.isn.get_mut(dir) = isn;
        } else if usize::from(n) < MAX_ISNS {
            let rare = self.rare.get_or_insert_with(Box::default);
            match rare.isns.get_mut(dir).get_mut(usize::from(n - 1)) {
                Some(slot) => *slot = isn,
                None => return,
            }
        } else {
            return;
        }
        *self.isn_n.get_mut(dir) = n + 1;
    }

    /// Follows the initial sequence numbers of `dir`: a SYN with another ISN before
    /// any data restarts that direction, and the first data names the real ISN among
    /// those retransmitted SYN-ACKs carried.
    fn track_isns(&mut self, dir: Dir, seg: &Segment<'_>, limits: StreamLimits) {
        if seg.flags.syn {
            let cur = self.cur_isn.get(dir).get();
            if let Some(a) = self.state.as_mut()
                && cur.is_some_and(|i| i != seg.seq)
                && a.streams.get(dir).delivered() == 0
            {
                *a.streams.get_mut(dir) = Stream::new(limits);
            }
            *self.cur_isn.get_mut(dir) = OptSeq::some(seg.seq);
            if !self.knows_isn(dir, seg.seq) {
                self.add_isn(dir, seg.seq);
            }
            if let Some(a) = self.state.as_mut() {
                a.streams.get_mut(dir).on_syn(SeqNum(seg.seq));
            }
            if dir == Dir::Client && !seg.flags.ack {
                self.client_isn = OptSeq::some(seg.seq);
            }
        }
        let undelivered = self
            .state
            .as_ref()
            .is_none_or(|a| a.streams.get(dir).delivered() == 0);
        if !seg.payload.is_empty() && !seg.flags.syn && undelivered {
            let wanted = seg.seq.wrapping_sub(1);
            let known = self.knows_isn(dir, wanted);
            if self.cur_isn.get(dir).get() != Some(wanted) && known {
                if let Some(a) = self.state.as_mut() {
                    let st = a.streams.get_mut(dir);
                    *st = Stream::new(limits);
                    st.on_syn(SeqNum(wanted));
                }
                *self.cur_isn.get_mut(dir) = OptSeq::some(wanted);
            }
        }
    }

    fn endpoints(&self, key: &FlowKey) -> (Endpoint, Endpoint) {
        let ep = |(ip, port): (IpAddr, u16)| Endpoint { ip, port };
        if self.roles.client_is_a() {
            (ep(key.a), ep(key.b))
        } else {
            (ep(key.b), ep(key.a))
        }
    }

    fn dir_of(&self, key: &FlowKey, src: (IpAddr, u16)) -> Dir {
        let client = if self.roles.client_is_a() {
            key.a
        } else {
            key.b
        };
        if client == src {
            Dir::Client
        } else {
            Dir::Server
        }
    }

    /// The flow's streams as they would be now: based on the latest ISN of each side
    /// and knowing any FIN seen so far.
    fn fresh_stream(&self, dir: Dir, limits: StreamLimits) -> Stream {
        let mut s = Stream::new(limits);
        if let Some(isn) = self.cur_isn.get(dir).get() {
            s.on_syn(SeqNum(isn));
        }
        if *self.fin.get(dir)
            && let Some(nxt) = self.nxt.get(dir).get()
        {
            s.on_fin(SeqNum(nxt.wrapping_sub(1)));
        }
        s
    }

    /// Creates the record, streams and analyzer (first payload byte, or the end).
    fn activate(
        &mut self,
        key: &FlowKey,
        limits: StreamLimits,
        opts: Options,
        keys: Option<&Arc<KeyLog>>,
    ) -> &mut Active {
        let (client, server) = self.endpoints(key);
        let streams = PerDir {
            client: self.fresh_stream(Dir::Client, limits),
            server: self.fresh_stream(Dir::Server, limits),
        };
        let roles_fixed = self.roles.fixed();
        let (id, start, early, first) =
            (self.id, Timestamp::from(self.start), self.early, self.first);
        let tunnel = self.rare.as_mut().and_then(|r| r.tunnel.as_mut());
        self.state.get_or_insert_with(|| {
            let mut rec = FlowRecord::new(id, start, client, server);
            rec.frames.first = first;
            if let Some(t) = tunnel {
                rec.tunnel = std::mem::take(&mut t.path);
                if t.joined.is_some() {
                    rec.note(Note::TunnelAsymmetric);
                }
            }
            early.apply(&mut rec);
            Box::new(Active {
                rec,
                streams,
                analyzer: Analyzer::new(roles_fixed, opts)
                    .with_keys(keys.filter(|k| k.has_any()).cloned()),
                payload: PerDir::default(),
                charged: 0,
            })
        })
    }

    /// Follows the next sequence number of each side: the end of what `dir` sent, and
    /// what it acknowledged of the other side. Only forward (and not by absurd jumps),
    /// except that a SYN with a new ISN starts its side afresh.
    fn track_seq(&mut self, dir: Dir, seg: &Segment<'_>) {
        let len = u32::try_from(seg.payload.len()).unwrap_or(u32::MAX);
        let control = u32::from(seg.flags.syn) + u32::from(seg.flags.fin);
        let end = seg.seq.wrapping_add(len).wrapping_add(control);
        let restart = seg.flags.syn && self.cur_isn.get(dir).get() != Some(seg.seq);
        let nxt = self.nxt.get_mut(dir);
        *nxt = OptSeq::some(match nxt.get() {
            Some(cur) if !restart => later(cur, end),
            _ => end,
        });
        if seg.flags.ack {
            let peer = self.nxt.get_mut(dir.other());
            *peer = OptSeq::some(peer.get().map_or(seg.ack, |cur| later(cur, seg.ack)));
        }
    }

    /// Whether an RST from `dir` resets the connection at its receiver (RFC 5961 §3): its
    /// sequence number is the next one the receiver expects or lies in the window after
    /// it. The flow knows that number from the sender's segments and the receiver's
    /// acknowledgements (a capture may miss some of either, and the receiver's
    /// acknowledgement lags what is in flight), so it accepts [`RCV_WINDOW`] on either
    /// side of it. A receiver that has acknowledged nothing (it sent only a SYN:
    /// SYN-SENT) takes an RST only when it acknowledges that SYN (RFC 793).
    fn rst_acceptable(&self, dir: Dir, seg: &Segment<'_>) -> bool {
        match self.nxt.get(dir).get() {
            Some(n) => (-RCV_WINDOW..RCV_WINDOW).contains(&SeqNum(seg.seq).diff(SeqNum(n))),
            None => match self.nxt.get(dir.other()).get() {
                Some(syn_end) => seg.flags.ack && seg.ack == syn_end,
                None => true,
            },
        }
    }

    /// Whether `ack`, from the side `dir` not heard from yet, acknowledges bytes of what
    /// the other side sent: from about its first packet to about its latest byte.
    fn acknowledged_by(&self, dir: Dir, ack: u32) -> bool {
        let (Some(t), Some(nxt)) = (self.tunnel(), self.nxt.get(dir.other()).get()) else {
            return false;
        };
        let ack = SeqNum(ack);
        ack.diff(SeqNum(t.first_seq)) >= -RCV_WINDOW && ack.diff(SeqNum(nxt)) <= RCV_WINDOW
    }

    /// An RST was ignored; the record will say so.
    fn note_rst_ignored(&mut self) {
        match self.state.as_mut() {
            Some(a) => a.rec.note(Note::RstIgnored),
            None => self.early.set(EarlyNotes::RST_IGNORED, true),
        }
    }

    /// The flow's own per-direction state follows a swap of the roles (the streams apart).
    fn swap_dirs(&mut self) {
        self.roles.swap();
        self.packets.swap();
        if let Some(r) = self.rare.as_mut() {
            r.packets_hi.swap();
        }
        if let Some(a) = self.state.as_mut() {
            a.payload.swap();
        }
        self.fin.swap();
        self.nxt.swap();
    }

    /// Content showed the roles the other way round: follow the analyzer's swap.
    fn swap_roles(&mut self) {
        self.swap_dirs();
        if let Some(a) = self.state.as_mut() {
            a.streams.swap();
        }
    }
}

/// Ports where a server usually listens, to guess roles when no SYN was seen.
fn is_service_port(p: u16) -> bool {
    p < 1024
        || matches!(
            p,
            1080 | 1433
                | 1521
                | 2525
                | 3128
                | 3306
                | 3389
                | 4190
                | 5222
                | 5269
                | 5432
                | 6379
                | 6667
                | 6697
                | 8008
                | 8080
                | 8443
                | 8888
                | 9200
                | 27017
        )
}

/// Bytes one open flow costs in the table before its first payload byte.
const FLOW_BYTES: usize = Table::<FlowKey, Flow>::ENTRY_BYTES;
/// With several workers, what an open flow also costs the output stage at most: its
/// first-packet ordinal and `id` as an 8-byte entry of a chunk of 512 (4 KiB, and a
/// 48-byte header kept in a list that may be twice as long as needed), where two
/// neighbouring chunks hold more than 256 open flows together (about 8 bytes a flow
/// when few of them have ended).
pub const NUMBERING_BYTES: usize = 36;
/// Bytes one tombstone costs.
const TOMBSTONE_BYTES: usize = Table::<FlowKey, i64>::ENTRY_BYTES;

/// Reassembles flows from packets and hands finished flow records on.
pub struct Engine {
    flows: Table<FlowKey, Flow>,
    /// Recently closed connections (for one idle timeout), with the second they closed:
    /// stragglers after FIN/RST are absorbed, not taken for new flows.
    closed: Table<FlowKey, i64>,
    budget: Budget,
    limits: Limits,
    opts: Options,
    ports: Vec<u16>,
    /// The run's policy, for the findings of each flow that ends.
    policy: Arc<Policy>,
    /// The run's key table (`--keylog`, pcapng secrets), for TLS 1.3 handshakes.
    keys: Option<Arc<KeyLog>>,
    next_id: u64,
    ids: IdScheme,
    /// What one open flow is charged beyond its reassembly and analyzer state.
    flow_bytes: usize,
    /// Flows that end without payload are counted here instead of getting a record
    /// (when nobody lists them: see [`Engine::count_payloadless`]).
    payloadless: Option<Payloadless>,
    /// Latest packet time seen (the clock that ends idle flows; never goes back,
    /// and a lone packet far ahead does not move it: [`follow_packet_time`]).
    now: Timestamp,
    /// The packet before was far ahead of `now` and held back.
    held: bool,
    clock: Clock,
    pub stats: PacketStats,
    /// Flows ended early, by `--max-flows` or by `--memcap`.
    pub evicted: u64,
    memory: MemoryStats,
    /// The UDP conversations (QUIC, DTLS, and others counted by port).
    udp: UdpTable,
    /// Tunnelled flows waiting for their other direction, and directions that joined one.
    joins: Joins,
}

/// Where a packet stands in the run: its capture time and its 1-based ordinal
/// counted across all inputs (the order in which the reader saw it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub ts: Timestamp,
    pub ordinal: u64,
}

/// Flows ended without payload and only counted.
#[derive(Debug, Default)]
struct Payloadless {
    count: u64,
    ids: Vec<u64>,
}

/// How a new flow gets its `id`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdScheme {
    /// 1, 2, 3... in the order flows began (one engine sees every flow).
    #[default]
    Sequential,
    /// The ordinal of the flow's first packet: a shard of several engines,
    /// whose records are renumbered in first-packet order downstream.
    FirstPacket,
}

/// The packet-time clock that decides when idle flows are swept.
///
/// Sweeps happen at fixed steps of packet time (a tenth of the idle timeout),
/// so whoever runs this clock over the same packet times sweeps at the same
/// packets: one engine, or a reader driving several shard engines.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    now: Timestamp,
    /// The packet before was far ahead of `now` and held back.
    held: bool,
    far: i64,
    next_sweep: i64,
    step: i64,
}

/// A jump ahead of the packet clock by more than this many seconds (or the
/// idle timeout, when longer) is believed only when the next packet makes it
/// too: a lone packet stamped years off is a capture artefact.
const SUSPECT_JUMP_SECS: i64 = 86_400;

/// How far ahead a lone packet may move the clock.
fn far_jump(limits: &Limits) -> i64 {
    limits.idle_timeout_secs.max(SUSPECT_JUMP_SECS)
}

/// Moves the packet clock `now` to `ts`: never backwards, and to a time more
/// than `far` seconds ahead only when the packet before (`held`) was far ahead
/// too. A lone packet stamped years off thus neither ends every open flow as
/// idle nor splits its own connection.
fn follow_packet_time(now: &mut Timestamp, held: &mut bool, ts: Timestamp, far: i64) {
    if ts <= *now {
        *held = false;
        return;
    }
    let jump = *now != Timestamp::default() && ts.secs.saturating_sub(now.secs) > far;
    if jump && !*held {
        *held = true;
        return;
    }
    *now = ts;
    *held = false;
}

impl Clock {
    pub fn new(limits: &Limits) -> Self {
        Clock {
            now: Timestamp::default(),
            held: false,
            far: far_jump(limits),
            next_sweep: i64::MIN,
            step: (limits.idle_timeout_secs.min(limits.udp_idle_timeout_secs) / 10).max(1),
        }
    }

    /// Moves the clock to `ts` (never backwards, a lone far jump held back:
    /// `follow_packet_time`); says when a sweep is due.
    pub fn advance(&mut self, ts: Timestamp) -> Option<Timestamp> {
        follow_packet_time(&mut self.now, &mut self.held, ts, self.far);
        if self.now.secs >= self.next_sweep {
            self.next_sweep = self.now.secs.saturating_add(self.step);
            return Some(self.now);
        }
        None
    }
}

impl Engine {
    pub fn new(limits: Limits, opts: Options, ports: Vec<u16>) -> Self {
        Engine {
            flows: Table::default(),
            closed: Table::default(),
            budget: Budget::new(limits.memcap),
            limits,
            opts,
            ports,
            policy: Arc::default(),
            keys: None,
            next_id: 1,
            ids: IdScheme::Sequential,
            flow_bytes: FLOW_BYTES,
            payloadless: None,
            now: Timestamp::default(),
            held: false,
            clock: Clock::new(&limits),
            stats: PacketStats::default(),
            evicted: 0,
            memory: MemoryStats::default(),
            udp: UdpTable::new(UdpLimits {
                max_flows: limits.max_flows,
                idle_timeout_secs: limits.udp_idle_timeout_secs,
            }),
            joins: Joins::default(),
        }
    }

    /// The policy findings follow (`--tls-port`); the default knows the IANA TLS ports.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.udp.set_policy(Arc::clone(&policy));
        self.policy = policy;
    }

    /// The key table TLS 1.3 and QUIC handshakes are decrypted with. Flows take
    /// it only once it holds a secret: with none, they carry nothing.
    pub fn set_keys(&mut self, keys: Arc<KeyLog>) {
        self.udp.set_keys(Arc::clone(&keys));
        self.keys = Some(keys);
    }

    /// What the memory cap did so far.
    pub fn memory(&self) -> MemoryStats {
        MemoryStats {
            memcap: self.budget.cap() as u64,
            peak: self.budget.peak() as u64,
            ..self.memory.clone()
        }
    }

    /// Bytes currently accounted against the memory cap.
    pub fn memory_used(&self) -> usize {
        self.budget.used()
    }

    /// Flows currently open.
    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    /// Chooses how new flows are numbered (before the first packet).
    pub fn set_ids(&mut self, ids: IdScheme) {
        self.ids = ids;
        self.flow_bytes = match ids {
            IdScheme::Sequential => FLOW_BYTES,
            IdScheme::FirstPacket => {
                self.udp.set_numbered(NUMBERING_BYTES);
                FLOW_BYTES + NUMBERING_BYTES
            }
        };
    }

    /// With [`IdScheme::FirstPacket`]: ids of flows ended without a record (UDP
    /// conversations only counted) since the last call.
    pub fn take_unlisted(&mut self, into: &mut Vec<u64>) {
        self.udp.take_unlisted(into);
    }

    /// Flows that end without ever carrying payload get no record: they are only
    /// counted (see [`Engine::take_payloadless`]). For a consumer that would not list
    /// them anyway; a flood of SYNs then never builds a record.
    pub fn count_payloadless(&mut self) {
        self.payloadless = Some(Payloadless::default());
    }

    /// Flows ended without payload (and so without a record) since the last call,
    /// with their ids when flows are numbered by first packet.
    pub fn take_payloadless(&mut self, ids: &mut Vec<u64>) -> u64 {
        match &mut self.payloadless {
            Some(p) => {
                ids.append(&mut p.ids);
                std::mem::take(&mut p.count)
            }
            None => 0,
        }
    }

    /// Flows begun so far.
    pub fn flows_started(&self) -> u64 {
        self.next_id - 1
    }

    /// The clock moved on (a packet, or live capture's wall clock): flows may time out.
    pub fn tick(&mut self, now: Timestamp, emit: &mut Emit<'_>) {
        if let Some(now) = self.clock.advance(now) {
            self.sweep_at(now, emit);
        }
    }

    /// Ends the flows idle at `now`, when a [`Clock`] driven elsewhere says a sweep is due.
    pub fn sweep_at(&mut self, now: Timestamp, emit: &mut Emit<'_>) {
        if now > self.now {
            self.now = now;
        }
        self.sweep(emit);
        self.udp
            .sweep_at(now, &mut self.stats.udp_flows, &mut self.budget, emit);
    }

    /// One decoded UDP datagram. The caller runs the clock first ([`Engine::tick`]).
    pub fn datagram(&mut self, d: &Datagram<'_>, at: Stamp, emit: &mut Emit<'_>) {
        if !self.ports.is_empty() && !self.ports.iter().any(|&p| p == d.sport || p == d.dport) {
            self.stats.filtered += 1;
            return;
        }
        let Engine {
            udp,
            stats,
            ids,
            next_id,
            budget,
            ..
        } = self;
        let mut new_id = || {
            let id = match ids {
                IdScheme::Sequential => *next_id,
                IdScheme::FirstPacket => at.ordinal,
            };
            *next_id += 1;
            id
        };
        udp.datagram(
            d,
            at.ts,
            at.ordinal,
            &mut new_id,
            &mut stats.udp_flows,
            budget,
            emit,
        );
        self.relieve(emit);
    }

    /// One decoded TCP segment. The caller runs the clock first ([`Engine::tick`]).
    pub fn segment(&mut self, seg: &Segment<'_>, at: Stamp, emit: &mut Emit<'_>) {
        let ts = at.ts;
        let far = far_jump(&self.limits);
        follow_packet_time(&mut self.now, &mut self.held, ts, far);
        if !self.ports.is_empty() && !self.ports.iter().any(|&p| p == seg.sport || p == seg.dport) {
            self.stats.filtered += 1;
            return;
        }
        let src = (seg.src, seg.sport);
        let fine = FlowKey::new(src, (seg.dst, seg.dport), seg.tunnel.identity());
        let key = self.joins.resolve(fine);
        let Some(s) = self.flow_for(&key, seg, at, emit) else {
            return;
        };
        // A segment that joined a flow through another tunnel takes that flow's key.
        let key = self.flows.key(s).copied().unwrap_or(key);
        self.flows.touch(s);
        let (limits, opts, now) = (self.limits.stream, self.opts, self.now);
        let Some(flow) = self.flows.get_mut(s) else {
            return;
        };
        let mut dir = flow.dir_of(&key, src);
        if seg.flags.rst && !flow.rst_acceptable(dir, seg) {
            // Not part of the connection as its receiver sees it: not counted either.
            flow.note_rst_ignored();
            self.relieve(emit);
            return;
        }
        let had_rare = flow.rare.is_some();
        flow.count(dir, seg, at, now, far);
        flow.track_seq(dir, seg);
        if flow.packets_of(dir) == 1
            && flow.packets_of(dir.other()) > 0
            && let Some(t) = flow.tunnel()
        {
            // Both sides heard from: the flow no longer waits for a reply through another tunnel.
            let before = self.joins.bytes();
            self.joins.unwait(&key.with_tunnel(t.kinds), key.tunnel);
            self.budget.recharge(before, self.joins.bytes());
        }
        let was_bypassed = flow.bypass;
        if !flow.bypass {
            flow.track_isns(dir, seg, limits);
            dir = Self::advance(flow, &key, dir, seg, limits, opts, self.keys.as_ref());
        }
        if seg.flags.fin {
            *flow.fin.get_mut(dir) = true;
        }
        flow.count_payload(dir, seg.payload.len());
        if !had_rare && flow.rare.is_some() {
            self.budget.charge(RARE_BYTES);
        }
        // A bypassed flow's state no longer changes: it was charged when bypassed.
        if !was_bypassed {
            self.recharge(s);
        }
        let Some(flow) = self.flows.get(s) else {
            return;
        };
        let both_fin = flow.fin.client && flow.fin.server;
        if seg.flags.rst || both_fin {
            let reason = if seg.flags.rst {
                EndReason::Rst
            } else {
                EndReason::Fin
            };
            let joined = flow.tunnel().and_then(|t| t.joined);
            self.close(s, reason, emit);
            let at = self.now.secs;
            self.bury(key, at);
            if let Some(t) = joined {
                self.bury(key.with_tunnel(t), at);
            }
        }
        self.relieve(emit);
    }

    /// The flow a segment belongs to: the open one, unless a fresh SYN on its 5-tuple
    /// starts a new connection; a new one for a SYN or data; `None` for a stray (a
    /// straggler of a closed connection, or a bare segment of no known flow).
    fn flow_for(
        &mut self,
        key: &FlowKey,
        seg: &Segment<'_>,
        at: Stamp,
        emit: &mut Emit<'_>,
    ) -> Option<Slot> {
        let new_syn = seg.flags.syn && !seg.flags.ack;
        if let Some(s) = self.flows.find(key) {
            let flow = self.flows.get(s)?;
            // A fresh SYN from the client on a known 5-tuple is a new connection.
            let is_client = flow.dir_of(key, (seg.src, seg.sport)) == Dir::Client;
            let any_fin = flow.fin.client || flow.fin.server;
            let other_isn = flow.client_isn.get().is_some_and(|isn| isn != seg.seq);
            if !(new_syn && (other_isn || any_fin || !is_client)) {
                return Some(s);
            }
            let reason = if any_fin {
                EndReason::Fin
            } else {
                EndReason::PortReuse
            };
            self.close(s, reason, emit);
        } else if key.tunnel != 0
            && let Some(s) = self.join(key, seg)
        {
            return Some(s);
        }
        if let Some(t) = self.closed.find(key) {
            if !new_syn {
                self.stats.stray += 1;
                return None;
            }
            self.closed.remove(t);
            self.budget.release(TOMBSTONE_BYTES);
        }
        if !seg.flags.syn && seg.payload.is_empty() {
            self.stats.stray += 1;
            return None;
        }
        if self.flows.len() >= self.limits.max_flows {
            self.evict_oldest(emit);
        }
        let flow = self.new_flow(key, seg, at);
        let kinds = flow.tunnel().map(|t| t.kinds);
        let rare = if flow.rare.is_some() { RARE_BYTES } else { 0 };
        let s = self.flows.insert(*key, flow)?;
        self.budget.charge(self.flow_bytes + rare);
        if let Some(kinds) = kinds {
            let before = self.joins.bytes();
            self.joins.wait(key.with_tunnel(kinds), key.tunnel);
            self.budget.recharge(before, self.joins.bytes());
        }
        Some(s)
    }

    /// A tunnelled segment whose key is unknown may be the other direction of a flow
    /// whose packets came through another tunnel id or other outer addresses (see
    /// [`Joins`]). It joins the oldest flow waiting under the same inner endpoints and hop
    /// kinds that has not heard from its sender, when it acknowledges bytes that flow's
    /// sender sent; another tenant's connection on the same 4-tuple acknowledges other
    /// sequence numbers, and a segment without ACK joins nothing.
    fn join(&mut self, key: &FlowKey, seg: &Segment<'_>) -> Option<Slot> {
        if !seg.flags.ack {
            return None;
        }
        let coarse = key.with_tunnel(seg.tunnel.kinds_identity());
        let src = (seg.src, seg.sport);
        let (s, own) = self.joins.waiting(&coarse).find_map(|k| {
            let s = self.flows.find(&k)?;
            let f = self.flows.get(s)?;
            let dir = f.dir_of(&k, src);
            (f.packets_of(dir) == 0 && f.acknowledged_by(dir, seg.ack)).then_some((s, k))
        })?;
        let before = self.joins.bytes();
        self.joins.join(&coarse, own.tunnel, *key);
        self.budget.recharge(before, self.joins.bytes());
        let flow = self.flows.get_mut(s)?;
        if let Some(t) = flow.rare.as_mut().and_then(|r| r.tunnel.as_mut()) {
            t.joined = Some(key.tunnel);
        }
        if let Some(a) = flow.state.as_mut() {
            a.rec.note(Note::TunnelAsymmetric);
        }
        Some(s)
    }

    /// Brings the first payload byte (or an ack of bytes never captured) to full
    /// state, and hands the segment to an active flow's streams; a FIN before that
    /// is only remembered. Returns the segment's direction (delivery may learn the
    /// roles from content).
    fn advance(
        flow: &mut Flow,
        key: &FlowKey,
        dir: Dir,
        seg: &Segment<'_>,
        limits: StreamLimits,
        opts: Options,
        keys: Option<&Arc<KeyLog>>,
    ) -> Dir {
        let data_seq = SeqNum(seg.seq).wrapping_add(u32::from(seg.flags.syn));
        if flow.state.is_none()
            && (!seg.payload.is_empty()
                || (seg.flags.ack && acks_missed_bytes(flow, dir.other(), seg.ack, limits)))
        {
            flow.activate(key, limits, opts, keys);
        }
        if flow.state.is_some() {
            return Self::deliver(flow, dir, seg, data_seq);
        }
        dir
    }

    /// Charges the budget what an active flow holds now, and marks it while it
    /// buffers out-of-order data (the first to shed it when memory runs short).
    fn recharge(&mut self, s: Slot) {
        let Some(flow) = self.flows.get_mut(s) else {
            return;
        };
        let Some(a) = flow.state.as_mut() else {
            return;
        };
        let bytes = clamp32(a.bytes());
        let buffering = a.buffering();
        self.budget.recharge(a.charged as usize, bytes as usize);
        a.charged = bytes;
        self.flows.set_marked(s, buffering);
    }

    /// Hands one segment's data, acknowledgement and FIN to an active flow's streams and
    /// analyzer. Returns the segment's direction after any role swap.
    fn deliver(flow: &mut Flow, mut dir: Dir, seg: &Segment<'_>, data_seq: SeqNum) -> Dir {
        let last = flow.last();
        let Some(a) = flow.state.as_mut() else {
            return dir;
        };
        let Active {
            streams,
            analyzer,
            rec,
            ..
        } = &mut **a;
        rec.at = last;
        let mut swaps = 0u32;
        if !seg.payload.is_empty() {
            let mut d = dir;
            streams
                .get_mut(dir)
                .on_segment(data_seq, seg.payload, &mut |c| {
                    if feed(analyzer, rec, d, c) == Signal::SwapRoles {
                        d = d.other();
                        swaps += 1;
                    }
                });
        }
        if swaps % 2 == 1 {
            streams.swap();
            dir = dir.other();
        }
        let mut swaps_ack = 0u32;
        if seg.flags.ack {
            let mut d = dir.other();
            streams
                .get_mut(dir.other())
                .on_peer_ack(SeqNum(seg.ack), &mut |c| {
                    if feed(analyzer, rec, d, c) == Signal::SwapRoles {
                        d = d.other();
                        swaps_ack += 1;
                    }
                });
        }
        if swaps_ack % 2 == 1 {
            streams.swap();
            dir = dir.other();
        }
        if seg.flags.fin {
            streams
                .get_mut(dir)
                .on_fin(data_seq.wrapping_add(seg.payload.len() as u32));
        }
        let done = analyzer.is_done();
        // The streams were swapped above; the flow's own per-direction state follows.
        for _ in 0..(swaps + swaps_ack) % 2 {
            flow.swap_dirs();
        }
        if done {
            flow.bypass = true;
            if let Some(a) = flow.state.as_mut() {
                a.streams.client.bypass();
                a.streams.server.bypass();
            }
        }
        dir
    }

    fn new_flow(&mut self, key: &FlowKey, seg: &Segment<'_>, at: Stamp) -> Flow {
        let ts = at.ts;
        let src = (seg.src, seg.sport);
        let mut early = EarlyNotes::default();
        let (src_is_client, roles_fixed) = if seg.flags.syn && !seg.flags.ack {
            (true, true)
        } else if seg.flags.syn {
            (false, true)
        } else {
            early.set(EarlyNotes::MIDSTREAM, true);
            early.set(EarlyNotes::ROLES_FROM_PORTS, true);
            let src_service = is_service_port(seg.sport);
            let dst_service = is_service_port(seg.dport);
            let src_is_server = match (src_service, dst_service) {
                (true, false) => true,
                (false, true) => false,
                _ => seg.sport < seg.dport,
            };
            (!src_is_server, false)
        };
        let id = match self.ids {
            IdScheme::Sequential => self.next_id,
            IdScheme::FirstPacket => at.ordinal,
        };
        self.next_id += 1;
        Flow {
            id,
            last_seen: self.now.secs.max(ts.secs),
            first: at.ordinal,
            state: None,
            rare: (!seg.tunnel.is_empty()).then(|| {
                let tunnel = TunnelInfo {
                    path: if src_is_client {
                        seg.tunnel.clone()
                    } else {
                        seg.tunnel.reversed()
                    },
                    kinds: seg.tunnel.kinds_identity(),
                    joined: None,
                    first_seq: seg.seq,
                };
                Box::new(Rare {
                    tunnel: Some(tunnel),
                    ..Rare::default()
                })
            }),
            start: ts.into(),
            end_secs: 0,
            end_nanos: ts.nanos,
            packets: PerDir::default(),
            last: 0,
            isn: PerDir::default(),
            isn_n: PerDir::default(),
            cur_isn: PerDir::default(),
            client_isn: OptSeq::default(),
            nxt: PerDir::default(),
            fin: PerDir::default(),
            roles: Roles::new((key.a == src) == src_is_client, roles_fixed),
            bypass: false,
            early,
        }
    }

    /// Gives back what a closed flow held: its budget, and its place among the
    /// flows waiting for a reply through another tunnel.
    fn release(&mut self, key: &FlowKey, flow: &Flow) {
        let charged = flow.state.as_ref().map_or(0, |a| a.charged as usize);
        let rare = if flow.rare.is_some() { RARE_BYTES } else { 0 };
        self.budget
            .release(self.flow_bytes.saturating_add(charged).saturating_add(rare));
        if let Some(t) = flow.tunnel() {
            let before = self.joins.bytes();
            let joined = t.joined.map(|j| key.with_tunnel(j));
            self.joins
                .forget(&key.with_tunnel(t.kinds), key.tunnel, joined);
            self.budget.recharge(before, self.joins.bytes());
        }
    }

    fn close(&mut self, s: Slot, reason: EndReason, emit: &mut Emit<'_>) {
        let Some((key, mut flow)) = self.flows.remove(s) else {
            return;
        };
        self.release(&key, &flow);
        if let Some(p) = &mut self.payloadless
            && flow.payload() == PerDir::default()
        {
            p.count += 1;
            if self.ids == IdScheme::FirstPacket {
                p.ids.push(flow.id);
            }
            return;
        }
        // A flow without payload gets its record only now; it lives until `emit` returns.
        flow.activate(&key, self.limits.stream, self.opts, self.keys.as_ref());
        let Some(active) = flow.state.take() else {
            return;
        };
        let Active {
            mut rec,
            mut analyzer,
            mut streams,
            mut payload,
            ..
        } = *active;
        rec.frames.last = flow.last();
        rec.at = rec.frames.last;
        if !flow.bypass {
            for dir in [Dir::Client, Dir::Server] {
                let mut d = dir;
                let mut swapped = false;
                streams.get_mut(dir).flush(&mut |c| {
                    if feed(&mut analyzer, &mut rec, d, c) == Signal::SwapRoles {
                        d = d.other();
                        swapped = true;
                    }
                });
                if swapped {
                    streams.swap();
                    payload.swap();
                    flow.swap_roles();
                }
            }
        }
        stream_notes(&streams, &mut rec);
        rec.packets = flow.packets();
        rec.bytes = payload;
        rec.end = flow.end();
        if rec.packets.client == 0 || rec.packets.server == 0 {
            rec.note(Note::OneSided);
        }
        // A FIN from either side ends the dialogue: only a connection still open
        // when the record closes is incomplete. The analyzer's verdict depends on it.
        if reason.cuts_short() && !flow.fin.client && !flow.fin.server {
            rec.mark_incomplete();
        }
        analyzer.finish(&mut rec);
        settle(&mut rec, reason, &self.policy);
        emit(rec);
    }

    /// Remembers a closed connection for one idle timeout.
    fn bury(&mut self, key: FlowKey, at: i64) {
        if let Some(t) = self.closed.find(&key) {
            if let Some(v) = self.closed.get_mut(t) {
                *v = at;
            }
            self.closed.touch(t);
            return;
        }
        if self.closed.len() >= self.limits.max_flows
            && let Some(old) = self.closed.oldest()
        {
            self.closed.remove(old);
            self.budget.release(TOMBSTONE_BYTES);
        }
        if self.closed.insert(key, at).is_some() {
            self.budget.charge(TOMBSTONE_BYTES);
        }
    }

    /// Ends flows idle longer than the timeout (in the order they began) and forgets
    /// tombstones as old.
    fn sweep(&mut self, emit: &mut Emit<'_>) {
        let limit = self.now.secs - self.limits.idle_timeout_secs;
        let mut idle: Vec<(u64, Slot)> = Vec::new();
        let mut at = self.flows.oldest();
        while let Some(s) = at
            && let Some(f) = self.flows.get(s)
            && f.last_seen < limit
        {
            idle.push((f.id, s));
            at = self.flows.newer(s);
        }
        idle.sort_unstable();
        for (_, s) in idle {
            self.close(s, EndReason::IdleTimeout, emit);
        }
        while let Some(t) = self.closed.oldest()
            && self.closed.get(t).is_some_and(|&at| at < limit)
        {
            self.closed.remove(t);
            self.budget.release(TOMBSTONE_BYTES);
        }
    }

    /// Ends the least recently active flow early, TCP or UDP.
    fn evict_least_recent(&mut self, emit: &mut Emit<'_>) -> bool {
        let tcp = self
            .flows
            .oldest()
            .and_then(|s| self.flows.get(s))
            .map(|f| f.last_seen);
        let udp_first = match (tcp, self.udp.oldest_seen()) {
            (Some(t), Some(u)) => u.secs < t,
            (None, Some(_)) => true,
            _ => false,
        };
        if udp_first {
            self.udp
                .evict_oldest(&mut self.stats.udp_flows, &mut self.budget, emit)
        } else {
            self.evict_oldest(emit)
        }
    }

    /// Ends the least recently active TCP flow early.
    fn evict_oldest(&mut self, emit: &mut Emit<'_>) -> bool {
        let Some(s) = self.flows.oldest() else {
            return false;
        };
        self.evicted += 1;
        self.close(s, EndReason::Evicted, emit);
        true
    }

    /// Brings memory back under the cap: stop out-of-order buffering for the flow that
    /// started buffering first, else drop the oldest tombstone, else evict the least
    /// recently active flow; as often as needed. Each step frees what it accounted, so
    /// the cost per step is O(1) plus the freed flow's own buffers.
    fn relieve(&mut self, emit: &mut Emit<'_>) {
        while self.budget.over() {
            if let Some(s) = self.flows.first_marked() {
                self.flows.set_marked(s, false);
                self.stop_buffering(s);
                self.memory.buffering_stopped += 1;
            } else if let Some(t) = self.closed.oldest() {
                self.closed.remove(t);
                self.budget.release(TOMBSTONE_BYTES);
                self.memory.tombstones_dropped += 1;
            } else if self.evict_least_recent(emit) {
                self.memory.evicted += 1;
            } else {
                break;
            }
        }
    }

    /// The flow's held out-of-order bytes are handed on now, holes as gaps, and neither
    /// direction buffers again.
    fn stop_buffering(&mut self, s: Slot) {
        let Some(flow) = self.flows.get_mut(s) else {
            return;
        };
        let last = flow.last();
        let Some(a) = flow.state.as_mut() else {
            return;
        };
        let mut swaps = 0u32;
        for dir in [Dir::Client, Dir::Server] {
            let Active {
                streams,
                analyzer,
                rec,
                ..
            } = &mut **a;
            rec.at = last;
            let mut d = dir;
            let mut swapped = false;
            streams.get_mut(dir).stop_buffering(&mut |c| {
                if feed(analyzer, rec, d, c) == Signal::SwapRoles {
                    d = d.other();
                    swapped = true;
                }
            });
            if swapped {
                streams.swap();
                swaps += 1;
            }
        }
        let done = a.analyzer.is_done();
        if swaps % 2 == 1 {
            // The streams were swapped already; the rest of the flow follows.
            flow.swap_dirs();
        }
        if done && !flow.bypass {
            flow.bypass = true;
            if let Some(a) = flow.state.as_mut() {
                a.streams.client.bypass();
                a.streams.server.bypass();
            }
        }
        if let Some(a) = flow.state.as_mut() {
            let bytes = clamp32(a.bytes());
            self.budget.recharge(a.charged as usize, bytes as usize);
            a.charged = bytes;
        }
    }

    /// End of input (or capture stopped): every open flow ends, in the order they began.
    pub fn finish(&mut self, reason: EndReason, emit: &mut Emit<'_>) {
        // TCP and UDP flows end together, in the order they began.
        let mut tcp = self.flows.slots_by(|f| f.id).peekable();
        let mut udp = self.udp.open_flows();
        udp.sort_unstable_by_key(|(id, _)| *id);
        let mut udp = udp.into_iter().peekable();
        // Every flow ends now: no packet will look one up again.
        self.flows.unindex();
        loop {
            let tcp_id = tcp.peek().map(|&s| self.flows.get(s).map(|f| f.id));
            let tcp_first = match (tcp_id, udp.peek()) {
                (Some(id), Some(&(uid, _))) => id.is_none_or(|id| id < uid),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if tcp_first {
                if let Some(s) = tcp.next() {
                    self.close(s, reason, emit);
                }
            } else if let Some((_, k)) = udp.next() {
                self.udp
                    .end(k, reason, &mut self.stats.udp_flows, &mut self.budget, emit);
            }
        }
    }
}

/// `b` if it lies after `a` and not absurdly far, else `a`.
fn later(a: u32, b: u32) -> u32 {
    let d = SeqNum(b).diff(SeqNum(a));
    if d > 0 && d <= SEQ_JUMP { b } else { a }
}

/// Whether an acknowledgement from the other side covers bytes of `dir` that were
/// never captured (so the stream would hand on a gap): decided on the stream the flow
/// would have now, without keeping it.
fn acks_missed_bytes(flow: &Flow, dir: Dir, ack: u32, limits: StreamLimits) -> bool {
    let mut s = flow.fresh_stream(dir, limits);
    let mut any = false;
    s.on_peer_ack(SeqNum(ack), &mut |_| any = true);
    any
}

fn clamp32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn feed(analyzer: &mut Analyzer, rec: &mut FlowRecord, dir: Dir, c: Chunk<'_>) -> Signal {
    match c {
        Chunk::Data(b) => analyzer.on_data(dir, b, rec),
        Chunk::Gap(n) => analyzer.on_gap(dir, n, rec),
    }
}

/// What reassembly saw of both streams, as notes on the record.
fn stream_notes(streams: &PerDir<Stream>, rec: &mut FlowRecord) {
    for st in [&streams.client, &streams.server] {
        let n = st.notes();
        if n.conflicting_overlap {
            rec.note(Note::ConflictingOverlap);
        }
        if n.buffer_cap_hit {
            rec.note(Note::ReassemblyCap);
        }
        if n.out_of_window {
            rec.note(Note::OutOfWindow);
        }
        if n.gap {
            rec.note(Note::Gap);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decode::path::Flags;

    /// A flood holds millions of these: keep the table entry of a flow without payload
    /// (slot with key, links and flow, plus its share of the index) small: under 200
    /// bytes (it took 250 while the flow kept every counter at full width, its
    /// payload bytes and four ISNs a side inline).
    #[test]
    fn payload_less_flow_entry_is_small() {
        const { assert!(FLOW_BYTES <= 200) };
        const { assert!(std::mem::size_of::<Flow>() <= 112) };
    }

    const SERVER: [u8; 4] = [192, 0, 2, 1];

    fn seg(from_client: bool, seq: u32, flags: Flags) -> Segment<'static> {
        let (c, s) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from(SERVER));
        let (src, dst, sport, dport) = if from_client {
            (c, s, 40_000, 443)
        } else {
            (s, c, 443, 40_000)
        };
        Segment {
            src,
            dst,
            sport,
            dport,
            seq,
            ack: 0,
            flags,
            payload: b"",
            truncated: false,
            tunnel: TunnelPath::default(),
            notes: DecodeNotes::default(),
        }
    }

    const SYN: Flags = Flags {
        syn: true,
        ack: false,
        fin: false,
        rst: false,
    };

    fn stamp(secs: i64, ordinal: u64) -> Stamp {
        Stamp {
            ts: Timestamp { secs, nanos: 7 },
            ordinal,
        }
    }

    fn only_flow(e: &mut Engine) -> &mut Flow {
        let s = e.flows.oldest().unwrap();
        e.flows.get_mut(s).unwrap()
    }

    fn finish(mut e: Engine) -> FlowRecord {
        let mut recs = Vec::new();
        e.finish(EndReason::EndOfInput, &mut |r| recs.push(r));
        assert_eq!(e.memory_used(), 0, "everything charged was released");
        assert_eq!(recs.len(), 1);
        recs.pop().unwrap()
    }

    /// Counters kept as a low half in the flow stay exact past 2^32: packets, the
    /// latest packet's ordinal, and the seconds from the first packet to the latest.
    #[test]
    fn counters_past_two_to_the_32() {
        let mut e = Engine::new(Limits::default(), Options::default(), Vec::new());
        let mut none = |_| panic!("no flow ends early");
        e.segment(&seg(true, 9, SYN), stamp(100, 1), &mut none);
        assert!(only_flow(&mut e).rare.is_none());
        assert_eq!(e.memory_used(), FLOW_BYTES);
        // As if 2^32 - 1 SYNs had come.
        only_flow(&mut e).packets.client = u32::MAX;
        let (far, last) = (100 + (3 << 32), 1 + (5 << 32));
        // The first packet that far ahead is held back; the second moves the clock.
        e.segment(&seg(true, 9, SYN), stamp(far, last - 1), &mut none);
        e.segment(&seg(true, 9, SYN), stamp(far, last), &mut none);
        assert!(only_flow(&mut e).rare.is_some());
        assert_eq!(e.memory_used(), FLOW_BYTES + RARE_BYTES);
        let rec = finish(e);
        assert_eq!(rec.packets.client, (1 << 32) + 1);
        assert_eq!(rec.packets.server, 0);
        assert_eq!((rec.frames.first, rec.frames.last), (1, last));
        assert_eq!(
            rec.start,
            Timestamp {
                secs: 100,
                nanos: 7
            }
        );
        assert_eq!(
            rec.end,
            Timestamp {
                secs: far,
                nanos: 7
            }
        );
    }

    /// The first ISN of a side is kept in the flow, up to three more in its rare part.
    #[test]
    fn later_isns_spill_into_the_rare_part() {
        let mut e = Engine::new(Limits::default(), Options::default(), Vec::new());
        let mut none = |_| panic!("no flow ends early");
        let syn_ack = Flags { ack: true, ..SYN };
        e.segment(&seg(true, 1000, SYN), stamp(1, 1), &mut none);
        e.segment(&seg(false, 5000, syn_ack), stamp(1, 2), &mut none);
        assert!(only_flow(&mut e).rare.is_none());
        for (i, isn) in [6000, 5000, 7000, 8000, 9000].into_iter().enumerate() {
            e.segment(&seg(false, isn, syn_ack), stamp(1, 3 + i as u64), &mut none);
        }
        let f = only_flow(&mut e);
        assert!(f.rare.is_some());
        assert_eq!(*f.isn_n.get(Dir::Server), 4);
        for isn in [5000, 6000, 7000, 8000] {
            assert!(f.knows_isn(Dir::Server, isn));
        }
        // Past the fourth, an ISN is not remembered.
        assert!(!f.knows_isn(Dir::Server, 9000));
        assert!(f.knows_isn(Dir::Client, 1000));
        assert!(!f.knows_isn(Dir::Client, 5000));
        assert_eq!(f.cur_isn.get(Dir::Server).get(), Some(9000));
        assert_eq!(e.memory_used(), FLOW_BYTES + RARE_BYTES);
        let rec = finish(e);
        assert_eq!((rec.packets.client, rec.packets.server), (1, 6));
    }
}
