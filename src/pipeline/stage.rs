//! What one decoded packet becomes on its way to a flow engine ([`Unit`]), the
//! [`Stage`] a reader hands packets to, the batching parameters, and the run's totals.

use super::deliver::Notice;
use crate::capture::{Buffer, Packet};
use crate::decode::path::{Datagram, Decoded, Flags, Segment, TunnelPath};
use crate::flow::ending::Emit;
use crate::flow::tcp::{Engine, Stamp};
use crate::pipeline::batch::Batch;
use crate::pipeline::batch::Head;
use crate::pipeline::batch::Queued;
use crate::pipeline::shard::{Shard, flow_hash};
use crate::stats::{MemoryStats, PacketStats};
use crate::time::Timestamp;
use std::time::Duration;

/// Segments in a batch before it goes to its worker. A batch wakes its worker
/// and its report wakes the output stage: 1,024 segments a batch took the
/// threaded bench from 8,800 context switches to 1,700 and 7% less CPU than 256.
pub const BATCH_ITEMS: usize = 1024;
/// Payload bytes a batch holds (in shared read buffers or copied) before it goes
/// to its worker: what queued batches keep alive stays near
/// `BATCH_BYTES * QUEUE_BATCHES` per worker whatever the packet size.
pub const BATCH_BYTES: usize = 512 * 1024;
/// Batches queued per worker. File reading waits when a queue is full (back-pressure);
/// live capture drops the batch and counts it.
pub const QUEUE_BATCHES: usize = 8;
/// Every this many packets each worker gets its batch, full or not, so no
/// worker's watermark lags far and the output stage holds few records.
pub const SYNC_PACKETS: u64 = 8192;
/// Live capture: partial batches go out at least this often, so flows show promptly.
pub(super) const LIVE_SYNC: Duration = Duration::from_millis(50);

/// What goes on to a flow table: one table per transport. Borrowed from the
/// decoded packet, which stays where decode wrote it (a segment is a few
/// hundred bytes, and every packet has one).
#[derive(Clone, Copy, Debug)]
pub enum Unit<'u, 'a> {
    Tcp(&'u Segment<'a>),
    Udp(&'u Datagram<'a>),
}

/// Counts what a decoded packet was; a TCP segment or UDP datagram of this
/// shard goes on to the flow engine. Either may borrow the decoder's
/// reassembled datagram.
pub fn admit<'u, 'a>(
    stats: &mut PacketStats,
    pkt: &Packet<'_>,
    decoded: &'u Decoded<'a>,
    shard: Option<Shard>,
) -> Option<Unit<'u, 'a>> {
    if !matches!(decoded, Decoded::UnsupportedLink) {
        stats.decoded += 1;
    }
    if let Some(shard) = shard {
        let ours = match decoded {
            Decoded::Tcp(s) => shard.holds(flow_hash(6, (s.src, s.sport), (s.dst, s.dport))),
            Decoded::Udp(d) => shard.holds(flow_hash(17, (d.src, d.sport), (d.dst, d.dport))),
            _ => shard.counts_flowless(),
        };
        if !ours {
            stats.other_shard += 1;
            return None;
        }
    }
    stats.total += 1;
    stats.bytes += u64::from(pkt.orig_len);
    match decoded {
        Decoded::Tcp(seg) => {
            stats.tcp += 1;
            return Some(Unit::Tcp(seg));
        }
        Decoded::Udp(d) => {
            stats.udp += 1;
            return Some(Unit::Udp(d));
        }
        Decoded::NotTcp => stats.non_tcp += 1,
        Decoded::Fragment => stats.ip_fragments += 1,
        Decoded::Malformed => stats.undecodable += 1,
        Decoded::UnsupportedLink => {
            *stats
                .unsupported_link_types
                .entry(pkt.linktype)
                .or_default() += 1;
        }
    }
    None
}

impl Unit<'_, '_> {
    /// The endpoints of the flow key.
    pub(super) fn ends(&self) -> ((std::net::IpAddr, u16), (std::net::IpAddr, u16)) {
        match self {
            Unit::Tcp(s) => ((s.src, s.sport), (s.dst, s.dport)),
            Unit::Udp(d) => ((d.src, d.sport), (d.dst, d.dport)),
        }
    }

    /// The header fields for a batch; the payload and any tunnel path stay
    /// with the batch (see [`Batch::hold`]), so a queued item is small.
    pub(super) fn queue(self, at: Stamp, batch: &mut Batch, chunk: Option<&Buffer>) -> Queued {
        let (head, payload, tunnel) = match self {
            Unit::Tcp(s) => (
                Head {
                    src: s.src,
                    dst: s.dst,
                    sport: s.sport,
                    dport: s.dport,
                    seq: s.seq,
                    ack: s.ack,
                    flags: s.flags,
                    udp: false,
                    truncated: s.truncated,
                    notes: s.notes,
                },
                s.payload,
                &s.tunnel,
            ),
            Unit::Udp(d) => (
                Head {
                    src: d.src,
                    dst: d.dst,
                    sport: d.sport,
                    dport: d.dport,
                    seq: 0,
                    ack: 0,
                    flags: Flags::default(),
                    udp: true,
                    truncated: d.truncated,
                    notes: d.notes,
                },
                d.payload,
                &d.tunnel,
            ),
        };
        Queued {
            at,
            head,
            tunnel: batch.hold_tunnel(tunnel),
            payload: batch.hold(payload, chunk),
        }
    }
}

/// Into the engine: a queued item with its payload and tunnel path put back.
pub(super) fn feed(
    h: Head,
    tunnel: TunnelPath,
    payload: &[u8],
    engine: &mut Engine,
    at: Stamp,
    emit: &mut Emit<'_>,
) {
    if h.udp {
        let d = Datagram {
            src: h.src,
            dst: h.dst,
            sport: h.sport,
            dport: h.dport,
            payload,
            truncated: h.truncated,
            tunnel,
            notes: h.notes,
        };
        engine.datagram(&d, at, emit);
    } else {
        let s = Segment {
            src: h.src,
            dst: h.dst,
            sport: h.sport,
            dport: h.dport,
            seq: h.seq,
            ack: h.ack,
            flags: h.flags,
            payload,
            truncated: h.truncated,
            tunnel,
            notes: h.notes,
        };
        engine.segment(&s, at, emit);
    }
}

/// Where the reader hands packets: one engine inline, or the router to the workers.
pub trait Stage {
    /// A captured packet that passed the filter.
    fn packet(&mut self, pkt: &Packet<'_>);
    /// A packet the filter left out: counted, and it keeps its place in the order.
    fn skip(&mut self);
    /// The wall clock moved on without a packet (live capture).
    fn tick(&mut self, now: Timestamp);
    /// Something to tell the user about an input.
    fn notice(&mut self, n: Notice);
    /// Output can no longer be written: reading may stop.
    fn stopped(&self) -> bool;
    /// Counters of the packets decoded so far (the flow engines' not included).
    fn decode_stats(&self) -> &PacketStats;
    /// Packets handed over so far (`packet` and `skip` calls): the ordinal the
    /// next packet will follow.
    fn ordinal(&self) -> u64;
}

/// What the flow stage counted over a run.
#[derive(Debug, Default)]
pub struct Totals {
    pub stats: PacketStats,
    pub evicted: u64,
    /// What the memory caps did (summed over the workers).
    pub memory: MemoryStats,
    /// Live capture: packets dropped per worker because its queue was full.
    pub dropped_by_worker: Vec<u64>,
}
