//! The flow table: connections keyed by their endpoints, client/server roles,
//! per-direction reassembly into the analyzer, and the ways a flow ends.

use crate::analyzer::{Analyzer, Options, Signal};
use crate::decode::Datagram;
use crate::decode::{DecodeStats, Segment};
use crate::reassembly::{Chunk, SeqNum, Stream, StreamLimits};
use crate::record::{Dir, EndReason, Endpoint, FlowRecord, Note, PerDir, Timestamp};
use crate::udp::{UdpKey, UdpLimits, UdpStats, UdpTable};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Caps and timeouts, in one place.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most flows held at once; past it the least recently active are evicted.
    pub max_flows: usize,
    /// A flow with no packet for this long (packet time) is ended.
    pub idle_timeout_secs: i64,
    /// Per-direction reassembly caps.
    pub stream: StreamLimits,
    /// A UDP conversation with no datagram for this long (packet time) is ended.
    pub udp_idle_timeout_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: 1_000_000,
            idle_timeout_secs: 300,
            stream: StreamLimits::default(),
            udp_idle_timeout_secs: UdpLimits::default().idle_timeout_secs,
        }
    }
}

/// Packet-level counters for the summary.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PacketStats {
    pub total: u64,
    pub bytes: u64,
    pub tcp: u64,
    pub udp: u64,
    /// IP packets that are neither TCP nor UDP, and non-IP frames.
    pub non_tcp: u64,
    pub ip_fragments: u64,
    pub undecodable: u64,
    /// Packets of link types not decoded, by LINKTYPE number.
    pub unsupported_link_types: BTreeMap<i32, u64>,
    /// TCP segments without payload or SYN that belong to no known flow.
    pub stray: u64,
    /// Packets left out by `--port`.
    pub filtered: u64,
    /// Packets of flows that `--shard` leaves to other shards (shown with `--shard` only).
    #[serde(skip_serializing_if = "is_zero")]
    pub other_shard: u64,
    /// The UDP conversations (shown as the summary's `udp`, not under `packets`).
    #[serde(skip)]
    pub udp_flows: UdpStats,
    /// Tunnels, fragments and undecodable packets by reason.
    #[serde(flatten)]
    pub decode: DecodeStats,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl PacketStats {
    /// Adds counters kept by another stage or shard.
    pub fn absorb(&mut self, o: &PacketStats) {
        // Destructured without `..`: a new counter must be added here too.
        let PacketStats {
            total,
            bytes,
            tcp,
            udp,
            non_tcp,
            ip_fragments,
            undecodable,
            unsupported_link_types,
            stray,
            filtered,
            other_shard,
            udp_flows,
            decode,
        } = o;
        self.total += total;
        self.bytes += bytes;
        self.tcp += tcp;
        self.udp += udp;
        self.non_tcp += non_tcp;
        self.ip_fragments += ip_fragments;
        self.undecodable += undecodable;
        for (lt, n) in unsupported_link_types {
            *self.unsupported_link_types.entry(*lt).or_default() += n;
        }
        self.stray += stray;
        self.filtered += filtered;
        self.other_shard += other_shard;
        self.udp_flows.absorb(udp_flows);
        self.decode.merge(decode);
    }
}

/// Canonical key: the two endpoints in sorted order, and the identity of the
/// tunnels the flow came through (0 for none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct FlowKey {
    a: (IpAddr, u16),
    b: (IpAddr, u16),
    tunnel: u64,
}

impl FlowKey {
    fn new(x: (IpAddr, u16), y: (IpAddr, u16), tunnel: u64) -> Self {
        if x <= y {
            FlowKey { a: x, b: y, tunnel }
        } else {
            FlowKey { a: y, b: x, tunnel }
        }
    }
}

#[derive(Debug)]
struct Flow {
    rec: FlowRecord,
    streams: PerDir<Stream>,
    analyzer: Analyzer,
    last_seen: Timestamp,
    fin: PerDir<bool>,
    client_isn: Option<u32>,
    /// ISNs seen per direction (a few), to notice a SYN that restarts the connection.
    isn: PerDir<Vec<u32>>,
    /// The ISN each direction's stream is based on.
    cur_isn: PerDir<Option<u32>>,
    /// The analyzer is done: only count packets.
    bypass: bool,
}

/// ISNs remembered per direction.
const MAX_ISNS: usize = 4;

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

/// Reassembles flows from packets and hands finished flow records on.
pub struct Engine {
    table: FxHashMap<FlowKey, Flow>,
    /// Recently closed connections (for one idle timeout): stragglers after FIN/RST
    /// are absorbed, not taken for new flows.
    closed: FxHashMap<FlowKey, Timestamp>,
    limits: Limits,
    opts: Options,
    ports: Vec<u16>,
    next_id: u64,
    ids: IdScheme,
    /// Latest packet time seen (the clock that ends idle flows).
    now: Timestamp,
    clock: Clock,
    pub stats: PacketStats,
    pub evicted: u64,
    /// The UDP conversations (QUIC, DTLS, and others counted by port).
    udp: UdpTable,
}

/// Receives each flow record as its flow ends.
pub type Emit<'a> = dyn FnMut(FlowRecord) + 'a;

/// Where a packet stands in the run: its capture time and its 1-based ordinal
/// counted across all inputs (the order in which the reader saw it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub ts: Timestamp,
    pub ordinal: u64,
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
    next_sweep: i64,
    step: i64,
}

impl Clock {
    pub fn new(limits: &Limits) -> Self {
        Clock {
            now: Timestamp::default(),
            next_sweep: i64::MIN,
            step: (limits.idle_timeout_secs.min(limits.udp_idle_timeout_secs) / 10).max(1),
        }
    }

    /// Moves the clock to `ts` (never backwards); says when a sweep is due.
    pub fn advance(&mut self, ts: Timestamp) -> Option<Timestamp> {
        if ts > self.now {
            self.now = ts;
        }
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
            table: FxHashMap::default(),
            closed: FxHashMap::default(),
            limits,
            opts,
            ports,
            next_id: 1,
            ids: IdScheme::Sequential,
            now: Timestamp::default(),
            clock: Clock::new(&limits),
            stats: PacketStats::default(),
            evicted: 0,
            udp: UdpTable::new(UdpLimits {
                max_flows: limits.max_flows,
                idle_timeout_secs: limits.udp_idle_timeout_secs,
            }),
        }
    }

    /// Chooses how new flows are numbered (before the first packet).
    pub fn set_ids(&mut self, ids: IdScheme) {
        self.ids = ids;
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
        self.udp.sweep_at(now, &mut self.stats.udp_flows, emit);
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
        udp.datagram(d, at.ts, &mut new_id, &mut stats.udp_flows, emit);
    }

    /// One decoded TCP segment. The caller runs the clock first ([`Engine::tick`]).
    pub fn segment(&mut self, seg: &Segment<'_>, at: Stamp, emit: &mut Emit<'_>) {
        let ts = at.ts;
        if !self.ports.is_empty() && !self.ports.iter().any(|&p| p == seg.sport || p == seg.dport) {
            self.stats.filtered += 1;
            return;
        }
        let src = (seg.src, seg.sport);
        let dst = (seg.dst, seg.dport);
        let key = FlowKey::new(src, dst, seg.tunnel.identity());
        let new_syn = seg.flags.syn && !seg.flags.ack;
        if let Some(flow) = self.table.get(&key) {
            // A fresh SYN from the client on a known 5-tuple is a new connection.
            let is_client = flow.rec.client.ip == seg.src && flow.rec.client.port == seg.sport;
            if new_syn
                && (flow.client_isn.is_some_and(|isn| isn != seg.seq)
                    || flow.fin.client
                    || flow.fin.server
                    || !is_client)
            {
                let reason = if flow.fin.client || flow.fin.server {
                    EndReason::Fin
                } else {
                    EndReason::PortReuse
                };
                self.close(key, reason, emit);
            }
        }
        if !self.table.contains_key(&key) {
            if self.closed.contains_key(&key) {
                if !new_syn {
                    self.stats.stray += 1;
                    return;
                }
                self.closed.remove(&key);
            }
            if !seg.flags.syn && seg.payload.is_empty() {
                self.stats.stray += 1;
                return;
            }
            if self.table.len() >= self.limits.max_flows {
                self.evict(emit);
            }
            let flow = self.new_flow(seg, at);
            self.table.insert(key, flow);
        }
        let Some(flow) = self.table.get_mut(&key) else {
            return;
        };
        let mut dir = if flow.rec.client.ip == seg.src && flow.rec.client.port == seg.sport {
            Dir::Client
        } else {
            Dir::Server
        };
        *flow.rec.packets.get_mut(dir) += 1;
        *flow.rec.bytes.get_mut(dir) += seg.payload.len() as u64;
        flow.rec.end = ts;
        flow.last_seen = ts;
        if seg.truncated {
            flow.rec.note(Note::Truncated);
        }
        flow.rec.note_decode(&seg.notes);
        let syn_len = u32::from(seg.flags.syn);
        let data_seq = SeqNum(seg.seq).wrapping_add(syn_len);
        if !flow.bypass {
            if seg.flags.syn {
                // A SYN with another ISN before any data restarts that direction.
                let isns = flow.isn.get_mut(dir);
                let cur = flow.cur_isn.get_mut(dir);
                if cur.is_some_and(|i| i != seg.seq) && flow.streams.get(dir).delivered() == 0 {
                    *flow.streams.get_mut(dir) = Stream::new(self.limits.stream);
                }
                *cur = Some(seg.seq);
                if !isns.contains(&seg.seq) && isns.len() < MAX_ISNS {
                    isns.push(seg.seq);
                }
                flow.streams.get_mut(dir).on_syn(SeqNum(seg.seq));
                if dir == Dir::Client && !seg.flags.ack {
                    flow.client_isn = Some(seg.seq);
                }
            }
            // Retransmitted SYN-ACKs may carry several ISNs; the first data names the real one.
            if !seg.payload.is_empty() && !seg.flags.syn && flow.streams.get(dir).delivered() == 0 {
                let isns = flow.isn.get(dir);
                let wanted = seg.seq.wrapping_sub(1);
                if *flow.cur_isn.get(dir) != Some(wanted) && isns.contains(&wanted) {
                    *flow.streams.get_mut(dir) = Stream::new(self.limits.stream);
                    flow.streams.get_mut(dir).on_syn(SeqNum(wanted));
                    *flow.cur_isn.get_mut(dir) = Some(wanted);
                }
            }
            let Flow {
                streams,
                analyzer,
                rec,
                ..
            } = flow;
            let mut swapped = false;
            if !seg.payload.is_empty() {
                let mut d = dir;
                streams
                    .get_mut(dir)
                    .on_segment(data_seq, seg.payload, &mut |c| {
                        if feed(analyzer, rec, d, c) == Signal::SwapRoles {
                            d = d.other();
                            swapped = true;
                        }
                    });
            }
            if swapped {
                streams.swap();
                flow.fin.swap();
                dir = dir.other();
                swapped = false;
            }
            if seg.flags.ack {
                let Flow {
                    streams,
                    analyzer,
                    rec,
                    ..
                } = flow;
                let mut d = dir.other();
                streams
                    .get_mut(dir.other())
                    .on_peer_ack(SeqNum(seg.ack), &mut |c| {
                        if feed(analyzer, rec, d, c) == Signal::SwapRoles {
                            d = d.other();
                            swapped = true;
                        }
                    });
                if swapped {
                    streams.swap();
                    flow.fin.swap();
                    dir = dir.other();
                }
            }
            if seg.flags.fin {
                flow.streams
                    .get_mut(dir)
                    .on_fin(data_seq.wrapping_add(seg.payload.len() as u32));
            }
            if flow.analyzer.is_done() {
                flow.bypass = true;
                flow.streams.client.bypass();
                flow.streams.server.bypass();
            }
        }
        if seg.flags.fin {
            *flow.fin.get_mut(dir) = true;
        }
        let both_fin = flow.fin.client && flow.fin.server;
        if seg.flags.rst || both_fin {
            self.close(
                key,
                if seg.flags.rst {
                    EndReason::Rst
                } else {
                    EndReason::Fin
                },
                emit,
            );
            if self.closed.len() >= self.limits.max_flows {
                self.closed.clear();
            }
            self.closed.insert(key, ts);
        }
    }

    fn new_flow(&mut self, seg: &Segment<'_>, at: Stamp) -> Flow {
        let ts = at.ts;
        let src = Endpoint {
            ip: seg.src,
            port: seg.sport,
        };
        let dst = Endpoint {
            ip: seg.dst,
            port: seg.dport,
        };
        let mut notes = Vec::new();
        let (client, server, roles_fixed) = if seg.flags.syn && !seg.flags.ack {
            (src, dst, true)
        } else if seg.flags.syn {
            (dst, src, true)
        } else {
            notes.push(Note::Midstream);
            let src_service = is_service_port(seg.sport);
            let dst_service = is_service_port(seg.dport);
            let src_is_server = match (src_service, dst_service) {
                (true, false) => true,
                (false, true) => false,
                _ => seg.sport < seg.dport,
            };
            notes.push(Note::RolesFromPorts);
            if src_is_server {
                (dst, src, false)
            } else {
                (src, dst, false)
            }
        };
        let id = match self.ids {
            IdScheme::Sequential => self.next_id,
            IdScheme::FirstPacket => at.ordinal,
        };
        self.next_id += 1;
        let mut rec = FlowRecord::new(id, ts, client, server);
        rec.tunnel = if client == src {
            seg.tunnel.clone()
        } else {
            seg.tunnel.reversed()
        };
        for n in notes {
            rec.note(n);
        }
        Flow {
            rec,
            streams: PerDir {
                client: Stream::new(self.limits.stream),
                server: Stream::new(self.limits.stream),
            },
            analyzer: Analyzer::new(roles_fixed, self.opts),
            last_seen: ts,
            fin: PerDir::default(),
            client_isn: None,
            isn: PerDir::default(),
            cur_isn: PerDir::default(),
            bypass: false,
        }
    }

    fn close(&mut self, key: FlowKey, reason: EndReason, emit: &mut Emit<'_>) {
        let Some(mut flow) = self.table.remove(&key) else {
            return;
        };
        if !flow.bypass {
            for dir in [Dir::Client, Dir::Server] {
                let Flow {
                    streams,
                    analyzer,
                    rec,
                    ..
                } = &mut flow;
                let mut d = dir;
                let mut swapped = false;
                streams.get_mut(dir).flush(&mut |c| {
                    if feed(analyzer, rec, d, c) == Signal::SwapRoles {
                        d = d.other();
                        swapped = true;
                    }
                });
                if swapped {
                    streams.swap();
                }
            }
        }
        let Flow {
            mut rec,
            mut analyzer,
            streams,
            ..
        } = flow;
        for s in [&streams.client, &streams.server] {
            let n = s.notes();
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
        if rec.packets.client == 0 || rec.packets.server == 0 {
            rec.note(Note::OneSided);
        }
        analyzer.finish(&mut rec);
        rec.end_reason = reason;
        match reason {
            EndReason::Evicted => rec.note(Note::Evicted),
            EndReason::CaptureStopped => rec.note(Note::CaptureStopped),
            _ => {}
        }
        rec.findings = crate::assess::assess(&rec);
        emit(rec);
    }

    /// Ends flows idle longer than the timeout.
    fn sweep(&mut self, emit: &mut Emit<'_>) {
        let limit = self.now.secs - self.limits.idle_timeout_secs;
        let mut idle: Vec<(u64, FlowKey)> = self
            .table
            .iter()
            .filter(|(_, f)| f.last_seen.secs < limit)
            .map(|(k, f)| (f.rec.id, *k))
            .collect();
        idle.sort_unstable_by_key(|(id, _)| *id);
        for (_, k) in idle {
            self.close(k, EndReason::IdleTimeout, emit);
        }
        let linger = self.now.secs - self.limits.idle_timeout_secs;
        self.closed.retain(|_, t| t.secs >= linger);
    }

    /// The table is full: end the least recently active sixty-fourth of it.
    fn evict(&mut self, emit: &mut Emit<'_>) {
        let mut by_age: Vec<(Timestamp, u64, FlowKey)> = self
            .table
            .iter()
            .map(|(k, f)| (f.last_seen, f.rec.id, *k))
            .collect();
        let n = (by_age.len() / 64).max(1);
        if n < by_age.len() {
            by_age.select_nth_unstable(n);
        }
        let mut victims: Vec<_> = by_age.into_iter().take(n).collect();
        victims.sort_unstable();
        for (_, _, k) in victims {
            self.evicted += 1;
            self.close(k, EndReason::Evicted, emit);
        }
    }

    /// End of input (or capture stopped): every open flow ends, in the order they began.
    pub fn finish(&mut self, reason: EndReason, emit: &mut Emit<'_>) {
        // TCP and UDP flows end together, in the order they began.
        let mut open: Vec<(u64, Result<FlowKey, UdpKey>)> = self
            .table
            .iter()
            .map(|(k, f)| (f.rec.id, Ok(*k)))
            .chain(
                self.udp
                    .open_flows()
                    .into_iter()
                    .map(|(id, k)| (id, Err(k))),
            )
            .collect();
        open.sort_unstable_by_key(|(id, _)| *id);
        for (_, k) in open {
            match k {
                Ok(k) => self.close(k, reason, emit),
                Err(k) => self.udp.end(k, reason, &mut self.stats.udp_flows, emit),
            }
        }
    }
}

fn feed(analyzer: &mut Analyzer, rec: &mut FlowRecord, dir: Dir, c: Chunk<'_>) -> Signal {
    match c {
        Chunk::Data(b) => analyzer.on_data(dir, b, rec),
        Chunk::Gap(n) => analyzer.on_gap(dir, n, rec),
    }
}
