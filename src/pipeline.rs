//! The stage between decode and the flow table: turns a captured packet into
//! what the flow engine takes (a segment and its stamp), counting the rest.

use crate::capture::Packet;
use crate::decode::{Datagram, Decoded, Decoder, Segment};
use crate::flow::{Emit, Engine, MemoryStats, PacketStats, Stamp};
use crate::record::{EndReason, Timestamp};

/// What goes on to a flow table: one table per transport.
#[derive(Clone, Debug)]
pub enum Unit<'a> {
    Tcp(Segment<'a>),
    Udp(Datagram<'a>),
}

/// Decodes one packet down to its flow key and counts what it was; a TCP
/// segment or UDP datagram goes on to the flow engine. Either may borrow the
/// decoder's reassembled datagram.
pub fn dissect<'a>(
    decoder: &'a mut Decoder,
    stats: &mut PacketStats,
    pkt: &Packet<'a>,
) -> Option<Unit<'a>> {
    stats.total += 1;
    stats.bytes += u64::from(pkt.orig_len);
    match decoder.decode(pkt) {
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

/// The single-threaded path: decode, the clock and one flow engine, all in the
/// caller's thread.
pub struct Inline {
    decoder: Decoder,
    engine: Engine,
    /// What decode counted (the engine counts the rest).
    stats: PacketStats,
    /// Packets seen so far, filtered ones included.
    ordinal: u64,
}

impl Inline {
    pub fn new(engine: Engine) -> Self {
        Inline {
            decoder: Decoder::default(),
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
        let at = Stamp {
            ts: pkt.ts,
            ordinal: self.ordinal,
        };
        match dissect(&mut self.decoder, &mut self.stats, pkt) {
            Some(Unit::Tcp(seg)) => self.engine.segment(&seg, at, emit),
            Some(Unit::Udp(d)) => self.engine.datagram(&d, at, emit),
            None => {}
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
        s.decode.merge(&self.decoder.stats());
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
