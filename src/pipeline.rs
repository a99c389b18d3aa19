//! The stage between decode and the flow table: turns a captured packet into
//! what the flow engine takes (a segment and its stamp), counting the rest.

use crate::capture::Packet;
use crate::decode::{Decoded, Segment, decode};
use crate::flow::{Emit, Engine, MemoryStats, PacketStats, Stamp};
use crate::record::{EndReason, Timestamp};

/// Decodes one packet down to its flow key and counts what it was; a TCP
/// segment goes on to the flow engine.
pub fn dissect<'a>(stats: &mut PacketStats, pkt: &Packet<'a>) -> Option<Segment<'a>> {
    stats.total += 1;
    stats.bytes += u64::from(pkt.orig_len);
    match decode(pkt.linktype, pkt.data) {
        Decoded::Tcp(seg) => {
            stats.tcp += 1;
            return Some(seg);
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

/// The single-threaded path: decode, the clock and one flow engine, all in the
/// caller's thread.
pub struct Inline {
    engine: Engine,
    /// What decode counted (the engine counts the rest).
    stats: PacketStats,
    /// Packets seen so far, filtered ones included.
    ordinal: u64,
}

impl Inline {
    pub fn new(engine: Engine) -> Self {
        Inline {
            engine,
            stats: PacketStats::default(),
            ordinal: 0,
        }
    }

    /// A packet a filter left out: it is counted and keeps its place in the order.
    pub fn skip(&mut self) {
        self.ordinal += 1;
        self.stats.filtered += 1;
    }

    /// One captured packet, through decode and the clock into the engine.
    pub fn packet(&mut self, pkt: &Packet<'_>, emit: &mut Emit<'_>) {
        self.ordinal += 1;
        self.engine.tick(pkt.ts, emit);
        if let Some(seg) = dissect(&mut self.stats, pkt) {
            let at = Stamp {
                ts: pkt.ts,
                ordinal: self.ordinal,
            };
            self.engine.segment(&seg, at, emit);
        }
    }

    /// The clock moved on without a packet (live capture).
    pub fn tick(&mut self, now: Timestamp, emit: &mut Emit<'_>) {
        self.engine.tick(now, emit);
    }

    /// Counters so far, decode's and the engine's together.
    pub fn stats(&self) -> PacketStats {
        let mut s = self.stats.clone();
        s.absorb(&self.engine.stats);
        s
    }

    /// What the memory cap did so far.
    pub fn memory(&self) -> MemoryStats {
        self.engine.memory()
    }

    /// Every open flow ends; returns the counters and the number of flows evicted.
    pub fn finish(mut self, reason: EndReason, emit: &mut Emit<'_>) -> (PacketStats, u64) {
        self.engine.finish(reason, emit);
        (self.stats(), self.engine.evicted)
    }
}
