//! The UDP flow table: conversations keyed by their endpoints, client/server roles
//! from the first handshake sender (then ports), an idle timeout driven by packet
//! time, a cap with eviction. QUIC and DTLS conversations become flow records;
//! other UDP is only counted, by server port.

use super::ending::{Emit, settle};
use super::key::{FlowKey, Joins};
use crate::analyzer::udp::{SNIFF_DATAGRAMS, UdpAnalyzer, service_port, sniff};
use crate::assess::Policy;
use crate::config::UdpLimits;
use crate::decode::path::Datagram;
use crate::decode::path::TunnelPath;
use crate::flow::store::{Budget, Slot, Table};
use crate::keylog::KeyLog;
use crate::record::{Dir, EndReason, Endpoint, FlowRecord, Note, PerDir, Transport};
use crate::stats::UdpStats;
use crate::time::Timestamp;
use std::net::IpAddr;
use std::sync::Arc;

/// A conversation's analysis, once it is taken for QUIC or DTLS: only then does
/// it get a flow record (a flood of other datagrams holds no more than [`Lite`]).
#[derive(Debug)]
enum Proto {
    /// Not yet known.
    Sniff,
    /// Taken for QUIC or DTLS, and analysed.
    Analyzing(Box<(FlowRecord, UdpAnalyzer)>),
    /// The handshake is understood: only datagrams and bytes are counted.
    Bypass(Box<FlowRecord>),
    /// Neither QUIC nor DTLS.
    Other,
}

/// Notes a conversation can gather before it has a record (in the order they came).
const EARLY_NOTES: usize = 6;

/// What every conversation holds: enough to count it, and to make its record.
#[derive(Debug)]
struct Lite {
    id: u64,
    /// Ordinals of the first and the latest datagram (see [`crate::record::Frames`]).
    first: u64,
    last: u64,
    start: Timestamp,
    last_seen: Timestamp,
    client: Endpoint,
    server: Endpoint,
    /// Oriented from the client.
    tunnel: TunnelPath,
    /// The tunnel identity of the other direction, when it differed and joined the
    /// conversation (0: none).
    joined: u64,
    packets: PerDir<u64>,
    bytes: PerDir<u64>,
    notes: [Option<Note>; EARLY_NOTES],
    /// Datagrams looked at while sniffing.
    seen: u32,
    /// Bytes charged to the budget beyond the table entry.
    charged: u32,
}

#[derive(Debug)]
struct UdpFlow {
    lite: Lite,
    proto: Proto,
}

/// The UDP conversations of a run, least recently active first, each charged to
/// the flow engine's memory budget.
#[derive(Debug)]
pub struct UdpTable {
    table: Table<FlowKey, UdpFlow>,
    limits: UdpLimits,
    now: Timestamp,
    /// Charged per conversation beyond its table entry (the output stage's numbering
    /// when several workers run).
    extra_bytes: usize,
    /// With several workers: ids of conversations ended without a record, so the
    /// output stage can forget their numbers.
    unlisted: Option<Vec<u64>>,
    /// The run's policy, for the findings of each conversation that ends.
    policy: Arc<Policy>,
    /// The run's key table, for QUIC handshakes.
    keys: Option<Arc<KeyLog>>,
    /// Tunnelled conversations waiting for their other direction, and directions that
    /// joined one.
    joins: Joins,
}

/// What a conversation costs in the table (slot and index share), analysis apart.
pub const UDP_FLOW_BYTES: usize = Table::<FlowKey, UdpFlow>::ENTRY_BYTES;

impl UdpTable {
    pub fn new(limits: UdpLimits) -> Self {
        UdpTable {
            table: Table::default(),
            limits,
            now: Timestamp::default(),
            extra_bytes: 0,
            unlisted: None,
            policy: Arc::default(),
            keys: None,
            joins: Joins::default(),
        }
    }

    /// The key table QUIC handshakes are decrypted with (taken by a conversation
    /// only once it holds a secret).
    pub fn set_keys(&mut self, keys: Arc<KeyLog>) {
        self.keys = Some(keys);
    }

    /// The policy the findings of ending conversations follow (default: the IANA TLS ports).
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.policy = policy;
    }

    /// Numbering for the threaded stage: each conversation is charged `extra_bytes`
    /// beyond its table entry and analysis, and the ids of conversations ended
    /// without a record are kept for [`UdpTable::take_unlisted`].
    pub fn set_numbered(&mut self, extra_bytes: usize) {
        self.extra_bytes = extra_bytes;
        self.unlisted = Some(Vec::new());
    }

    /// Ids of conversations ended without a record since the last call.
    pub fn take_unlisted(&mut self, into: &mut Vec<u64>) {
        if let Some(ids) = &mut self.unlisted {
            into.append(ids);
        }
    }

    fn entry_bytes(&self) -> usize {
        UDP_FLOW_BYTES + self.extra_bytes
    }

    /// Conversations held now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Ends the conversations idle at `now` (the flow engine's clock says when), in
    /// the order they began. Walks only the idle ones: the table is in recency order.
    pub fn sweep_at(
        &mut self,
        now: Timestamp,
        stats: &mut UdpStats,
        budget: &mut Budget,
        emit: &mut Emit<'_>,
    ) {
        if now > self.now {
            self.now = now;
        }
        let limit = self.now.secs - self.limits.idle_timeout_secs;
        let mut idle = Vec::new();
        let mut at = self.table.oldest();
        while let Some(s) = at
            && let Some(f) = self.table.get(s)
            && f.lite.last_seen.secs < limit
        {
            idle.push((f.lite.id, s));
            at = self.table.newer(s);
        }
        idle.sort_unstable();
        for (_, s) in idle {
            self.end(s, EndReason::IdleTimeout, stats, budget, emit);
        }
    }

    /// When the conversation least recently active was last seen.
    pub fn oldest_seen(&self) -> Option<Timestamp> {
        self.table
            .oldest()
            .and_then(|s| self.table.get(s))
            .map(|f| f.lite.last_seen)
    }

    /// Ends the least recently active conversation early; false when there is none.
    pub fn evict_oldest(
        &mut self,
        stats: &mut UdpStats,
        budget: &mut Budget,
        emit: &mut Emit<'_>,
    ) -> bool {
        let Some(s) = self.table.oldest() else {
            return false;
        };
        stats.evicted += 1;
        self.end(s, EndReason::Evicted, stats, budget, emit);
        true
    }

    /// One datagram at packet time `ts`, the run's packet `ordinal`; `new_id`
    /// numbers a new flow (the flow engine's numbering, shared with TCP). The caller
    /// runs the clock and brings the budget back under its cap afterwards.
    #[allow(clippy::too_many_arguments)]
    pub fn datagram(
        &mut self,
        dg: &Datagram<'_>,
        ts: Timestamp,
        ordinal: u64,
        new_id: &mut dyn FnMut() -> u64,
        stats: &mut UdpStats,
        budget: &mut Budget,
        emit: &mut Emit<'_>,
    ) {
        let src = (dg.src, dg.sport);
        let fine = FlowKey::new(src, (dg.dst, dg.dport), dg.tunnel.identity());
        let key = self.joins.resolve(fine);
        let idle_since = ts.secs.saturating_sub(self.limits.idle_timeout_secs);
        let mut slot = self.table.find(&key);
        if let Some(s) = slot
            && self
                .table
                .get(s)
                .is_some_and(|f| f.lite.last_seen.secs < idle_since)
        {
            // Idle past the timeout though no sweep has come by yet: a new conversation.
            self.end(s, EndReason::IdleTimeout, stats, budget, emit);
            slot = None;
        }
        if slot.is_none() && key.tunnel != 0 {
            slot = self.join(&key, dg, budget);
        }
        let s = match slot {
            Some(s) => {
                self.table.touch(s);
                s
            }
            None => {
                if self.table.len() >= self.limits.max_flows {
                    self.evict_oldest(stats, budget, emit);
                }
                let flow = new_flow(dg, ts, ordinal, new_id());
                let Some(s) = self.table.insert(key, flow) else {
                    return;
                };
                stats.flows += 1;
                budget.charge(self.entry_bytes());
                if key.tunnel != 0 {
                    let before = self.joins.bytes();
                    self.joins
                        .wait(key.with_tunnel(dg.tunnel.kinds_identity()), key.tunnel);
                    budget.recharge(before, self.joins.bytes());
                }
                s
            }
        };
        // The table's recency order stays the order of `last_seen` (what sweeps walk)
        // even when packet times go backwards: a conversation is last seen no
        // earlier than the latest time the table has seen.
        if ts > self.now {
            self.now = ts;
        }
        let seen = self.now;
        let Some(flow) = self.table.get_mut(s) else {
            return;
        };
        flow.on_datagram(dg, (ts, ordinal), seen, self.keys.as_ref());
        let charged = u32::try_from(flow.analysis_bytes()).unwrap_or(u32::MAX);
        budget.recharge(flow.lite.charged as usize, charged as usize);
        flow.lite.charged = charged;
        let dir = flow.lite.dir(src);
        if key.tunnel != 0 && flow.packets(dir) == 1 && flow.packets(dir.other()) > 0 {
            // Both sides heard from: no reply through another tunnel is waited for.
            let coarse = key.with_tunnel(flow.lite.tunnel.kinds_identity());
            let before = self.joins.bytes();
            self.joins.unwait(&coarse, key.tunnel);
            budget.recharge(before, self.joins.bytes());
        }
    }

    /// A tunnelled datagram whose key is unknown may be the other direction of a
    /// conversation whose datagrams came through another tunnel id or other outer
    /// addresses (see [`Joins`]): it joins the oldest conversation waiting under the same
    /// inner endpoints and hop kinds that has not heard from its sender.
    fn join(&mut self, key: &FlowKey, dg: &Datagram<'_>, budget: &mut Budget) -> Option<Slot> {
        let coarse = key.with_tunnel(dg.tunnel.kinds_identity());
        let src = (dg.src, dg.sport);
        let (s, own) = self.joins.waiting(&coarse).find_map(|k| {
            let s = self.table.find(&k)?;
            let f = self.table.get(s)?;
            (f.packets(f.lite.dir(src)) == 0).then_some((s, k))
        })?;
        let before = self.joins.bytes();
        self.joins.join(&coarse, own.tunnel, *key);
        budget.recharge(before, self.joins.bytes());
        let flow = self.table.get_mut(s)?;
        flow.lite.joined = key.tunnel;
        match flow.record_mut() {
            Some(rec) => rec.note(Note::TunnelAsymmetric),
            None => flow.lite.note(Note::TunnelAsymmetric),
        }
        Some(s)
    }

    /// Ends one conversation (idle, evicted, end of input, capture stopped): QUIC
    /// and DTLS are emitted, the rest counted.
    pub fn end(
        &mut self,
        s: Slot,
        reason: EndReason,
        stats: &mut UdpStats,
        budget: &mut Budget,
        emit: &mut Emit<'_>,
    ) {
        let Some((key, flow)) = self.table.remove(s) else {
            return;
        };
        budget.release(self.entry_bytes() + flow.lite.charged as usize);
        if key.tunnel != 0 {
            let coarse = key.with_tunnel(flow.lite.tunnel.kinds_identity());
            let joined = (flow.lite.joined != 0).then(|| key.with_tunnel(flow.lite.joined));
            let before = self.joins.bytes();
            self.joins.forget(&coarse, key.tunnel, joined);
            budget.recharge(before, self.joins.bytes());
        }
        let (port, id, last) = (flow.lite.server.port, flow.lite.id, flow.lite.last);
        let Some(mut rec) = flow.into_record() else {
            if let Some(ids) = &mut self.unlisted {
                ids.push(id);
            }
            stats.other += 1;
            *stats.other_by_port.entry(port).or_default() += 1;
            return;
        };
        match rec.encryption {
            crate::record::Encryption::Quic => stats.quic += 1,
            crate::record::Encryption::Dtls => stats.dtls += 1,
            _ => {
                stats.other += 1;
                *stats.other_by_port.entry(rec.server.port).or_default() += 1;
                return;
            }
        }
        rec.frames.last = last;
        rec.at = last;
        if rec.packets.client == 0 || rec.packets.server == 0 {
            rec.note(Note::OneSided);
        }
        // UDP has no FIN: a conversation the capture ended is incomplete.
        if reason.cuts_short() {
            rec.mark_incomplete();
        }
        settle(&mut rec, reason, &self.policy);
        emit(rec);
    }

    /// The ids and slots of open conversations, to end them in order with the TCP ones.
    pub fn open_flows(&self) -> Vec<(u64, Slot)> {
        self.table
            .slots()
            .filter_map(|s| Some((self.table.get(s)?.lite.id, s)))
            .collect()
    }

    /// Ends every open conversation, in the order they began.
    pub fn finish(
        &mut self,
        reason: EndReason,
        stats: &mut UdpStats,
        budget: &mut Budget,
        emit: &mut Emit<'_>,
    ) {
        let mut open = self.open_flows();
        open.sort_unstable_by_key(|(id, _)| *id);
        self.table.unindex();
        for (_, s) in open {
            self.end(s, reason, stats, budget, emit);
        }
    }
}

impl Lite {
    fn dir(&self, src: (IpAddr, u16)) -> Dir {
        if self.client.ip == src.0 && self.client.port == src.1 {
            Dir::Client
        } else {
            Dir::Server
        }
    }

    fn note(&mut self, n: Note) {
        if self.notes.contains(&Some(n)) {
            return;
        }
        if let Some(free) = self.notes.iter_mut().find(|x| x.is_none()) {
            *free = Some(n);
        }
    }

    fn note_decode(&mut self, d: &crate::decode::path::DecodeNotes) {
        for n in crate::record::decode_notes(d) {
            self.note(n);
        }
    }

    /// The record of the conversation so far.
    fn record(&self) -> FlowRecord {
        let mut rec = FlowRecord::new(self.id, self.start, self.client, self.server);
        rec.transport = Transport::Udp;
        rec.frames.first = self.first;
        rec.end = self.last_seen;
        rec.tunnel = self.tunnel.clone();
        rec.packets = self.packets;
        rec.bytes = self.bytes;
        for n in self.notes.iter().flatten() {
            rec.note(*n);
        }
        rec
    }
}

impl UdpFlow {
    /// Datagrams seen from `dir` so far.
    fn packets(&self, dir: Dir) -> u64 {
        match &self.proto {
            Proto::Analyzing(b) => *b.0.packets.get(dir),
            Proto::Bypass(r) => *r.packets.get(dir),
            Proto::Sniff | Proto::Other => *self.lite.packets.get(dir),
        }
    }

    fn record_mut(&mut self) -> Option<&mut FlowRecord> {
        match &mut self.proto {
            Proto::Analyzing(b) => Some(&mut b.0),
            Proto::Bypass(r) => Some(r),
            Proto::Sniff | Proto::Other => None,
        }
    }

    /// Bytes the conversation holds beyond the table entry: its tunnel path's
    /// hops after the first, and its record and analysis.
    fn analysis_bytes(&self) -> usize {
        self.lite.tunnel.heap_bytes()
            + match &self.proto {
                Proto::Analyzing(b) => b.1.bytes_with(&b.0),
                Proto::Bypass(r) => std::mem::size_of::<FlowRecord>() + r.heap_bytes(),
                Proto::Sniff | Proto::Other => 0,
            }
    }

    /// One datagram at packet time `ts`, packet `ordinal`; `seen` is the table's
    /// clock (`ts` or later).
    fn on_datagram(
        &mut self,
        dg: &Datagram<'_>,
        (ts, ordinal): (Timestamp, u64),
        seen: Timestamp,
        keys: Option<&Arc<KeyLog>>,
    ) {
        let src = (dg.src, dg.sport);
        let lite = &mut self.lite;
        lite.last_seen = seen;
        lite.last = ordinal;
        let mut dir = lite.dir(src);
        match self.record_mut() {
            Some(rec) => {
                rec.end = ts;
                *rec.packets.get_mut(dir) += 1;
                *rec.bytes.get_mut(dir) += dg.payload.len() as u64;
                if dg.truncated {
                    rec.note(Note::UdpTruncated);
                }
                rec.note_decode(&dg.notes);
            }
            None => {
                let lite = &mut self.lite;
                *lite.packets.get_mut(dir) += 1;
                *lite.bytes.get_mut(dir) += dg.payload.len() as u64;
                if dg.truncated {
                    lite.note(Note::UdpTruncated);
                }
                lite.note_decode(&dg.notes);
            }
        }
        if let Proto::Sniff = self.proto {
            self.lite.seen += 1;
            match sniff(dg) {
                Some((kind, sender)) => {
                    let mut rec = self.lite.record();
                    if let Some(role) = sender {
                        if role != dir {
                            rec.swap_roles();
                            rec.note(Note::RolesFromContent);
                            dir = role;
                        }
                        rec.notes.retain(|n| *n != Note::RolesFromPorts);
                    }
                    self.lite.client = rec.client;
                    self.lite.server = rec.server;
                    let keys = keys.filter(|k| k.has_any()).cloned();
                    let analyzer = UdpAnalyzer::new(kind).with_keys(keys);
                    self.proto = Proto::Analyzing(Box::new((rec, analyzer)));
                }
                None if self.lite.seen >= SNIFF_DATAGRAMS => self.proto = Proto::Other,
                None => {}
            }
        }
        let done = match &mut self.proto {
            Proto::Analyzing(b) => {
                let (rec, a) = &mut **b;
                rec.at = ordinal;
                a.on_datagram(dir, dg, rec);
                a.is_done()
            }
            Proto::Sniff | Proto::Bypass(_) | Proto::Other => false,
        };
        if done {
            let proto = std::mem::replace(&mut self.proto, Proto::Other);
            self.proto = match proto {
                Proto::Analyzing(b) => {
                    let (mut rec, mut a) = *b;
                    a.finish(&mut rec);
                    Proto::Bypass(Box::new(rec))
                }
                other => other,
            };
        }
    }

    /// The record, with the analyzer's verdict: `None` for a conversation never
    /// taken for QUIC or DTLS.
    fn into_record(self) -> Option<FlowRecord> {
        match self.proto {
            Proto::Analyzing(mut b) => {
                // Finished in its box: the analyzer (QUIC state is kilobytes) is not moved.
                let (rec, a) = &mut *b;
                a.finish(rec);
                let (rec, _) = *b;
                Some(rec)
            }
            Proto::Bypass(r) => Some(*r),
            Proto::Sniff | Proto::Other => None,
        }
    }
}

fn new_flow(dg: &Datagram<'_>, ts: Timestamp, ordinal: u64, id: u64) -> UdpFlow {
    let src = Endpoint {
        ip: dg.src,
        port: dg.sport,
    };
    let dst = Endpoint {
        ip: dg.dst,
        port: dg.dport,
    };
    // Provisional roles from ports; the first handshake packet may correct them.
    let (client, server) = match (service_port(dg.sport), service_port(dg.dport)) {
        (true, false) => (dst, src),
        _ => (src, dst),
    };
    let tunnel = if client == src {
        dg.tunnel.clone()
    } else {
        dg.tunnel.reversed()
    };
    let mut notes = [None; EARLY_NOTES];
    notes[0] = Some(Note::RolesFromPorts);
    UdpFlow {
        lite: Lite {
            id,
            first: ordinal,
            last: ordinal,
            start: ts,
            last_seen: ts,
            client,
            server,
            tunnel,
            joined: 0,
            packets: PerDir::default(),
            bytes: PerDir::default(),
            notes,
            seen: 0,
            charged: 0,
        },
        proto: Proto::Sniff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Encryption;
    use crate::stats::PortCount;

    fn ep(last: u8, port: u16) -> (IpAddr, u16) {
        (IpAddr::from([10, 0, 0, last]), port)
    }

    fn ts(secs: i64) -> Timestamp {
        Timestamp { secs, nanos: 0 }
    }

    /// A DTLS record carrying one unfragmented handshake message of type `t`.
    fn dtls_handshake(t: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![
            t,
            0,
            0,
            body.len() as u8,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            body.len() as u8,
        ];
        f.extend(body);
        let mut r = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
        r.extend((f.len() as u16).to_be_bytes());
        r.extend(f);
        r
    }

    /// (time, source, destination, payload)
    type Dg = (i64, (IpAddr, u16), (IpAddr, u16), Vec<u8>);

    fn run(table: &mut UdpTable, dgs: &[Dg]) -> (Vec<FlowRecord>, UdpStats) {
        let mut out = Vec::new();
        let mut id = 0;
        let mut stats = UdpStats::default();
        let mut budget = Budget::new(usize::MAX);
        for (t, src, dst, payload) in dgs {
            let dg = Datagram {
                src: src.0,
                dst: dst.0,
                sport: src.1,
                dport: dst.1,
                payload,
                truncated: false,
                tunnel: Default::default(),
                notes: Default::default(),
            };
            table.sweep_at(ts(*t), &mut stats, &mut budget, &mut |r| out.push(r));
            let mut new_id = || {
                id += 1;
                id
            };
            table.datagram(
                &dg,
                ts(*t),
                0,
                &mut new_id,
                &mut stats,
                &mut budget,
                &mut |r| out.push(r),
            );
        }
        table.finish(EndReason::EndOfInput, &mut stats, &mut budget, &mut |r| {
            out.push(r)
        });
        assert_eq!(budget.used(), 0, "everything charged was released");
        (out, stats)
    }

    #[test]
    fn the_handshake_sender_is_the_client_whatever_the_ports() {
        // A HelloVerifyRequest seen first, from the high port: that side is the server.
        let hvr = dtls_handshake(3, &[0xfe, 0xff, 1, 7]);
        let mut t = UdpTable::new(UdpLimits::default());
        let (out, _) = run(&mut t, &[(0, ep(2, 40000), ep(1, 443), hvr)]);
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!((r.client.port, r.server.port), (443, 40000));
        assert_eq!(r.transport, Transport::Udp);
        assert_eq!(r.encryption, Encryption::Dtls);
        assert!(r.has_note(Note::RolesFromContent));
        assert!(r.dtls.as_ref().is_some_and(|d| d.hello_verify_request));
    }

    #[test]
    fn other_udp_is_counted_by_server_port_not_listed() {
        let mut t = UdpTable::new(UdpLimits::default());
        let mut dgs = Vec::new();
        for i in 0..5u16 {
            dgs.push((0, ep(2, 50000 + i), ep(1, 53), b"\x12\x34\x01\x00".to_vec()));
        }
        dgs.push((0, ep(2, 50100), ep(1, 123), vec![0x23; 48]));
        let (out, s) = run(&mut t, &dgs);
        assert!(out.is_empty());
        assert_eq!((s.flows, s.other, s.quic, s.dtls), (6, 6, 0, 0));
        let mut twice = s.clone();
        twice.absorb(&s);
        assert_eq!(twice.other_by_port.get(&53), Some(&10));
        assert_eq!(
            serde_json::to_value(&s).unwrap()["other_by_server_port"][0],
            serde_json::json!({"port": 53, "flows": 5})
        );
        assert_eq!(
            s.top_ports(),
            vec![
                PortCount { port: 53, flows: 5 },
                PortCount {
                    port: 123,
                    flows: 1
                }
            ]
        );
    }

    #[test]
    fn idle_timeout_ends_a_conversation_and_a_new_one_begins() {
        let ch = dtls_handshake(1, &[0xfe, 0xfd]);
        let limits = UdpLimits {
            idle_timeout_secs: 120,
            ..UdpLimits::default()
        };
        let mut t = UdpTable::new(limits);
        let (out, _) = run(
            &mut t,
            &[
                (0, ep(2, 40000), ep(1, 4433), ch.clone()),
                (100, ep(2, 40000), ep(1, 4433), ch.clone()),
                (300, ep(2, 40000), ep(1, 4433), ch),
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].end_reason, EndReason::IdleTimeout);
        assert_eq!(out[0].packets.client, 2);
        assert_eq!(out[1].end_reason, EndReason::EndOfInput);
        assert_eq!((out[0].id, out[1].id), (1, 2));
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_active() {
        let ch = dtls_handshake(1, &[0xfe, 0xfd]);
        let mut t = UdpTable::new(UdpLimits {
            max_flows: 4,
            idle_timeout_secs: 1000,
        });
        let dgs: Vec<_> = (0..10u16)
            .map(|i| (i64::from(i), ep(2, 40000 + i), ep(1, 4433), ch.clone()))
            .collect();
        let (out, stats) = run(&mut t, &dgs);
        assert_eq!(out.len(), 10);
        let evicted: Vec<_> = out
            .iter()
            .filter(|r| r.end_reason == EndReason::Evicted)
            .map(|r| r.client.port)
            .collect();
        assert_eq!(evicted, vec![40000, 40001, 40002, 40003, 40004, 40005]);
        assert!(
            out.iter()
                .all(|r| r.end_reason != EndReason::Evicted || r.has_note(Note::Evicted))
        );
        assert_eq!(stats.evicted, 6);
        assert!(t.is_empty());
    }

    /// A datagram whose time goes backwards keeps the conversation last seen at
    /// the latest time the table knows, so recency order and idle time agree: it
    /// is not ended as idle when it speaks again.
    #[test]
    fn time_going_backwards_does_not_end_a_conversation() {
        let mut t = UdpTable::new(UdpLimits::default());
        let dgs: Vec<Dg> = vec![
            (1000, ep(2, 40000), ep(1, 53), vec![1; 20]),
            (1200, ep(3, 40000), ep(1, 53), vec![1; 20]),
            (0, ep(4, 40000), ep(1, 53), vec![1; 20]),
            (1250, ep(4, 40000), ep(1, 53), vec![1; 20]),
        ];
        let (_, stats) = run(&mut t, &dgs);
        assert_eq!(stats.flows, 3, "{stats:?}");
        assert_eq!(stats.other, 3);
    }

    #[test]
    fn half_handshakes_hold_bounded_state_and_finished_ones_none() {
        let ch = dtls_handshake(1, &[0xfe, 0xfd]);
        let mut t = UdpTable::new(UdpLimits::default());
        let mut stats = UdpStats::default();
        let mut budget = Budget::new(usize::MAX);
        let mut id = 0;
        for i in 0..1000u16 {
            // The first fragment of a 4 KiB ClientHello that never completes.
            let mut f = vec![1, 0, 0x10, 0x00, 0, 0, 0, 0, 0, 0, 0, 8];
            f.extend([0xab; 8]);
            let mut r = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0];
            r.extend((f.len() as u16).to_be_bytes());
            r.extend(f);
            let dg = Datagram {
                src: IpAddr::from([10, 0, 0, 2]),
                dst: IpAddr::from([10, 0, 0, 1]),
                sport: 40000 + i,
                dport: 4433,
                payload: if i % 2 == 0 { &r } else { &ch },
                truncated: false,
                tunnel: Default::default(),
                notes: Default::default(),
            };
            let mut new_id = || {
                id += 1;
                id
            };
            t.datagram(
                &dg,
                ts(0),
                0,
                &mut new_id,
                &mut stats,
                &mut budget,
                &mut |_| {},
            );
        }
        // Everything charged: table entry, record and analyzer. A ClientHello
        // fragment announcing 4 KiB must not reserve the 4 KiB.
        let per_flow = budget.used() / t.len();
        assert!(
            per_flow < 6144,
            "{per_flow} bytes per half-open conversation"
        );
    }

    #[test]
    fn garbage_on_quic_and_dtls_ports_never_panics() {
        let mut t = UdpTable::new(UdpLimits::default());
        let mut dgs = Vec::new();
        let mut seed = 7u32;
        for n in 0..400usize {
            let mut p = Vec::with_capacity(n % 1300);
            for _ in 0..n % 1300 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                p.push((seed >> 16) as u8);
            }
            if let Some(b) = p.first_mut() {
                // Long headers and DTLS content types, to reach the parsers.
                *b = if n % 2 == 0 { 0xc0 | *b } else { 22 };
            }
            if p.len() > 4 && n % 4 == 0 {
                p[1..5].copy_from_slice(&[0, 0, 0, 1]);
            }
            let port = if n % 2 == 0 { 443 } else { 4433 };
            dgs.push((0, ep(2, 40000 + (n % 7) as u16), ep(1, port), p));
        }
        let (out, _) = run(&mut t, &dgs);
        assert!(out.len() <= 14);
    }
}
