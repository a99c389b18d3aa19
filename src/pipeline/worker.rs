//! A worker: one shard of the flow table, fed batch by batch, reporting what it
//! finished and how far it got.

use super::deliver::{Notice, Prepare, Prepared};
use crate::flow::tcp::Engine;
use crate::pipeline::batch::Batch;
use crate::pipeline::batch::Item;
use crate::pipeline::stage::feed;
use crate::record::{EndReason, FlowRecord, Transport};
use crate::stats::{MemoryStats, PacketStats};
use crossbeam_channel::{Receiver, Sender};

/// Where a record ended: position (twice the packet ordinal; odd for a clock
/// tick between packets), phase (a sweep comes before the packet's own closes),
/// then a tie-break (the first-packet ordinal in sweeps, the order of closing at a packet).
pub(super) type EndKey = (u64, u8, u64, usize);

/// A sweep ends idle TCP flows, then idle UDP flows, each in `id` order.
pub(super) const PHASE_SWEEP: u8 = 0;
pub(super) const PHASE_SWEEP_UDP: u8 = 1;
/// A packet's own closes come after the sweep it called for.
pub(super) const PHASE_PACKET: u8 = 2;

pub(super) fn sweep_phase(rec: &FlowRecord) -> u8 {
    match rec.transport {
        Transport::Tcp => PHASE_SWEEP,
        Transport::Udp => PHASE_SWEEP_UDP,
    }
}

/// What a worker reports after a batch.
pub(super) struct BatchReport {
    pub(super) worker: usize,
    pub(super) upto: u64,
    /// First-packet ordinals of the flows begun in this batch, in order.
    pub(super) started: Vec<u64>,
    pub(super) ended: Vec<(EndKey, Box<Finished>)>,
    /// First-packet ordinals of flows ended without payload and not listed
    /// (without `--all`): only counted, so their records never travel.
    pub(super) silent: Vec<u64>,
    /// First-packet ordinals of flows ended without a record that are not counted
    /// as flows at all (UDP conversations neither QUIC nor DTLS).
    pub(super) unlisted: Vec<u64>,
}

pub(super) enum Out {
    BatchReport(BatchReport),
    Notice(Notice),
    ReaderDone {
        stats: PacketStats,
        dropped: Vec<u64>,
    },
    WorkerDone {
        stats: PacketStats,
        evicted: u64,
        memory: MemoryStats,
    },
}

/// A record on its way to the output stage, with what the worker prepared of
/// its output (see [`Prepare`]).
pub(super) struct Finished {
    pub(super) rec: FlowRecord,
    pub(super) prepared: Option<Prepared>,
}

/// Records the output stage is done with, going back to the worker that made
/// them to be freed there: freeing on the thread that allocated is what the
/// allocator does fastest, and a flood's records are many.
pub(super) type Freed = Vec<Box<Finished>>;

/// A worker's channels: its batches in, the emptied batches and its reports out,
/// and the records it made coming back to be freed.
pub(super) struct Channels<'c> {
    pub(super) batches: &'c Receiver<Batch>,
    pub(super) pool: &'c Sender<Batch>,
    pub(super) out: &'c Sender<Out>,
    pub(super) freed: &'c Receiver<Freed>,
    /// What this worker does to each listed record before sending it.
    pub(super) prepare: Option<&'c dyn Prepare>,
}

/// A worker: owns one shard of the flow table and runs it over its batches.
pub(super) fn work(w: usize, mut engine: Engine, ch: Channels<'_>, end: EndReason, all: bool) {
    let Channels {
        batches,
        pool,
        out,
        freed,
        prepare,
    } = ch;
    let mut tie = 0u64;
    for mut batch in batches.iter() {
        // Dropped here, where they were allocated.
        while freed.try_recv().is_ok() {}
        let mut p = BatchReport::new(w, batch.upto);
        let mut items = std::mem::take(&mut batch.items);
        for item in items.drain(..) {
            match item {
                Item::Sweep { now, pos } => engine.sweep_at(now, &mut |rec| {
                    let key = (pos, sweep_phase(&rec), rec.id, w);
                    p.end(key, rec, all, prepare);
                }),
                Item::Unit(q) => {
                    let tunnel = batch.take_tunnel(q.tunnel);
                    let payload = batch.payload(q.payload);
                    let before = engine.flows_started();
                    let pos = q.at.ordinal * 2;
                    feed(q.head, tunnel, payload, &mut engine, q.at, &mut |rec| {
                        tie += 1;
                        p.end((pos, PHASE_PACKET, tie, w), rec, all, prepare);
                    });
                    if engine.flows_started() > before {
                        p.started.push(q.at.ordinal);
                    }
                }
            }
        }
        engine.take_unlisted(&mut p.unlisted);
        engine.take_payloadless(&mut p.silent);
        batch.clear();
        batch.items = items;
        let _ = pool.try_send(batch);
        if out.send(Out::BatchReport(p)).is_err() {
            return;
        }
    }
    let mut p = BatchReport::new(w, u64::MAX);
    engine.finish(end, &mut |rec| {
        let key = (u64::MAX, PHASE_SWEEP, rec.id, w);
        p.end(key, rec, all, prepare);
    });
    engine.take_unlisted(&mut p.unlisted);
    engine.take_payloadless(&mut p.silent);
    let _ = out.send(Out::BatchReport(p));
    let _ = out.send(Out::WorkerDone {
        stats: engine.stats.clone(),
        evicted: engine.evicted,
        memory: engine.memory(),
    });
}

impl BatchReport {
    pub(super) fn new(worker: usize, upto: u64) -> Self {
        BatchReport {
            worker,
            upto,
            started: Vec::new(),
            ended: Vec::new(),
            silent: Vec::new(),
            unlisted: Vec::new(),
        }
    }

    /// A flow ended at `key`. Unless `all`, a flow without payload is only
    /// counted (by its first-packet ordinal): a flood of them must not pile up
    /// records waiting for the output stage.
    /// `prepare`: what the worker does to each listed record before sending it.
    pub(super) fn end(
        &mut self,
        key: EndKey,
        mut rec: FlowRecord,
        all: bool,
        prepare: Option<&dyn Prepare>,
    ) {
        if all || rec.has_payload() {
            let prepared = prepare.map(|p| p.prepare(&mut rec));
            self.ended.push((key, Box::new(Finished { rec, prepared })));
        } else {
            self.silent.push(rec.id);
        }
    }
}
