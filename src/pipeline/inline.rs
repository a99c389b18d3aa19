//! One thread: decode, the clock and one flow engine run in the reader's thread.

use super::deliver::{Deliver, Notice};
use crate::capture::Packet;
use crate::decode::Decoder;
use crate::flow::ending::Emit;
use crate::flow::tcp::{Engine, Stamp};
use crate::pipeline::shard::Shard;
use crate::pipeline::stage::Stage;
use crate::pipeline::stage::Unit;
use crate::pipeline::stage::admit;
use crate::record::EndReason;
use crate::stats::{MemoryStats, PacketStats};
use crate::time::Timestamp;

/// The single-threaded path: decode, the clock and one flow engine, all in the
/// caller's thread.
pub struct Inline {
    pub(super) decoder: Decoder,
    pub(super) engine: Engine,
    /// What decode counted (the engine counts the rest).
    pub(super) stats: PacketStats,
    pub(super) shard: Option<Shard>,
    /// Packets seen so far, filtered ones included.
    pub(super) ordinal: u64,
}

impl Inline {
    pub fn new(engine: Engine, shard: Option<Shard>) -> Self {
        Inline {
            decoder: Decoder::default(),
            engine,
            stats: PacketStats::default(),
            shard,
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
        let at = Stamp {
            ts: pkt.ts,
            ordinal: self.ordinal,
        };
        let decoded = self.decoder.decode(pkt);
        match admit(&mut self.stats, pkt, &decoded, self.shard) {
            Some(Unit::Tcp(seg)) => self.engine.segment(seg, at, emit),
            Some(Unit::Udp(d)) => self.engine.datagram(d, at, emit),
            None => {}
        }
    }

    /// The clock moved on without a packet (live capture).
    pub fn tick(&mut self, now: Timestamp, emit: &mut Emit<'_>) {
        self.decoder.tick(now);
        self.engine.tick(now, emit);
    }

    /// Counters so far, decode's and the engine's together.
    pub fn stats(&self) -> PacketStats {
        let mut s = self.stats.clone();
        s.absorb(&self.engine.stats);
        s.decode.merge(&self.decoder.stats());
        s
    }

    /// What the memory cap did so far.
    pub fn memory(&self) -> MemoryStats {
        self.engine.memory()
    }

    /// Flows ended without payload and only counted since the last call (see
    /// [`Engine::count_payloadless`]).
    pub fn take_payloadless(&mut self) -> u64 {
        self.engine.take_payloadless(&mut Vec::new())
    }

    /// Every open flow ends; returns the counters and the number of flows evicted.
    pub fn finish(&mut self, reason: EndReason, emit: &mut Emit<'_>) -> (PacketStats, u64) {
        self.engine.finish(reason, emit);
        (self.stats(), self.engine.evicted)
    }
}

pub(super) struct InlineStage<'c> {
    pub(super) inline: Inline,
    pub(super) col: &'c mut dyn Deliver,
}

impl Stage for InlineStage<'_> {
    fn packet(&mut self, pkt: &Packet<'_>) {
        let col = &mut *self.col;
        self.inline.packet(pkt, &mut |rec| col.emit(rec));
    }

    fn skip(&mut self) {
        self.inline.skip();
    }

    fn tick(&mut self, now: Timestamp) {
        let col = &mut *self.col;
        self.inline.tick(now, &mut |rec| col.emit(rec));
    }

    fn notice(&mut self, n: Notice) {
        self.col.notice(n);
    }

    fn stopped(&self) -> bool {
        self.col.broken()
    }

    fn decode_stats(&self) -> &PacketStats {
        &self.inline.stats
    }

    fn ordinal(&self) -> u64 {
        self.inline.ordinal
    }
}
