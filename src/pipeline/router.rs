//! The reader's side of the threaded pipeline: decode to the flow key, route by
//! the symmetric hash, batch per worker, and broadcast the clock's sweeps.

use super::deliver::Notice;
use crate::assess::Policy;
use crate::capture::Packet;
use crate::config::Limits;
use crate::decode::Decoder;
use crate::flow::tcp::{Clock, Stamp};
use crate::pipeline::batch::Batch;
use crate::pipeline::batch::Item;
use crate::pipeline::shard::{Shard, route_hash, worker_of};
use crate::pipeline::stage::BATCH_BYTES;
use crate::pipeline::stage::BATCH_ITEMS;
use crate::pipeline::stage::LIVE_SYNC;
use crate::pipeline::stage::SYNC_PACKETS;
use crate::pipeline::stage::Stage;
use crate::pipeline::stage::admit;
use crate::pipeline::worker::Out;
use crate::record::EndReason;
use crate::stats::PacketStats;
use crate::time::Timestamp;
use crossbeam_channel::{Receiver, Sender};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How the threaded stage is laid out.
pub(super) struct Plan<'p> {
    pub(super) workers: usize,
    /// Caps of each worker's shard.
    pub(super) limits: Limits,
    pub(super) opts: crate::analyzer::options::Options,
    pub(super) ports: &'p [u16],
    pub(super) policy: Arc<Policy>,
    /// The run's key table, shared by the reader (pcapng secrets) and the workers.
    pub(super) keys: Arc<crate::keylog::KeyLog>,
    pub(super) shard: Option<Shard>,
    pub(super) end: EndReason,
    pub(super) live: bool,
    /// `--all`: flows without payload are listed too, so workers send their records.
    pub(super) all: bool,
    /// What the workers do to each listed record (see [`Prepare`](super::deliver::Prepare)).
    pub(super) prepare: Option<Arc<dyn super::deliver::Prepare>>,
}

/// The reader's side: decodes, runs the clock, and batches segments to the workers.
pub(super) struct Router<'s> {
    pub(super) queues: Vec<Sender<Batch>>,
    pub(super) pending: Vec<Batch>,
    pub(super) pool: Receiver<Batch>,
    pub(super) out: Sender<Out>,
    pub(super) clock: Clock,
    pub(super) decoder: Decoder,
    pub(super) stats: PacketStats,
    pub(super) shard: Option<Shard>,
    pub(super) live: bool,
    pub(super) stop: &'s AtomicBool,
    pub(super) ordinal: u64,
    /// Latest position handed out (see [`EndKey`]).
    pub(super) pos: u64,
    pub(super) next_sync: u64,
    pub(super) last_sync: Instant,
    pub(super) dropped: Vec<u64>,
}

impl<'s> Router<'s> {
    pub(super) fn new(
        queues: Vec<Sender<Batch>>,
        pool: Receiver<Batch>,
        out: Sender<Out>,
        plan: &Plan<'_>,
        stop: &'s AtomicBool,
    ) -> Self {
        let n = queues.len();
        Router {
            pending: (0..n).map(|_| Batch::default()).collect(),
            queues,
            pool,
            out,
            clock: Clock::new(&plan.limits),
            decoder: Decoder::default(),
            stats: PacketStats::default(),
            shard: plan.shard,
            live: plan.live,
            stop,
            ordinal: 0,
            pos: 0,
            next_sync: SYNC_PACKETS,
            last_sync: Instant::now(),
            dropped: vec![0; n],
        }
    }

    pub(super) fn sweep_all(&mut self, now: Timestamp) {
        for b in &mut self.pending {
            b.items.push(Item::Sweep { now, pos: self.pos });
        }
    }

    /// Hands worker `w` its pending batch. Files wait for room in the queue;
    /// live capture drops the batch's segments when the queue is full.
    pub(super) fn send(&mut self, w: usize) {
        let (Some(queue), Some(pending)) = (self.queues.get(w), self.pending.get_mut(w)) else {
            return;
        };
        if self.live && queue.is_full() {
            let before = pending.items.len();
            pending.items.retain(|i| matches!(i, Item::Sweep { .. }));
            pending.bytes.clear();
            pending.chunks.clear();
            pending.tunnels.clear();
            pending.held = 0;
            if let Some(d) = self.dropped.get_mut(w) {
                *d += (before - pending.items.len()) as u64;
            }
            return;
        }
        let fresh = self.pool.try_recv().unwrap_or_default();
        let mut batch = std::mem::replace(pending, fresh);
        batch.upto = self.pos;
        if queue.send(batch).is_err() {
            // The worker is gone (it can only have panicked): stop feeding anyone.
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Every worker gets its batch, so all watermarks move up to here.
    pub(super) fn sync(&mut self) {
        for w in 0..self.queues.len() {
            self.send(w);
        }
        self.next_sync = self.ordinal + SYNC_PACKETS;
        if self.live {
            self.last_sync = Instant::now();
        }
    }

    pub(super) fn finish(mut self) {
        self.sync();
        let Router {
            queues,
            out,
            mut stats,
            decoder,
            dropped,
            ..
        } = self;
        drop(queues);
        stats.decode.merge(&decoder.stats());
        let _ = out.send(Out::ReaderDone { stats, dropped });
    }
}

impl Stage for Router<'_> {
    fn packet(&mut self, pkt: &Packet<'_>) {
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        self.ordinal += 1;
        self.pos = self.ordinal * 2;
        if let Some(now) = self.clock.advance(pkt.ts) {
            self.sweep_all(now);
        }
        let decoded = self.decoder.decode(pkt);
        if let Some(unit) = admit(&mut self.stats, pkt, &decoded, self.shard) {
            let (a, z) = unit.ends();
            let w = worker_of(route_hash(a, z), self.queues.len());
            if let Some(b) = self.pending.get_mut(w) {
                let at = Stamp {
                    ts: pkt.ts,
                    ordinal: self.ordinal,
                };
                let q = unit.queue(at, b, pkt.chunk);
                b.items.push(Item::Unit(q));
                if b.items.len() >= BATCH_ITEMS || b.held >= BATCH_BYTES {
                    self.send(w);
                }
            }
        }
        if self.ordinal >= self.next_sync
            || (self.live
                && self.ordinal.is_multiple_of(64)
                && self.last_sync.elapsed() >= LIVE_SYNC)
        {
            self.sync();
        }
    }

    fn skip(&mut self) {
        self.ordinal += 1;
        self.pos = self.ordinal * 2;
        self.stats.filtered += 1;
    }

    fn tick(&mut self, now: Timestamp) {
        self.pos = self.ordinal * 2 + 1;
        self.decoder.tick(now);
        if let Some(now) = self.clock.advance(now) {
            self.sweep_all(now);
        }
        self.sync();
    }

    fn notice(&mut self, n: Notice) {
        let _ = self.out.send(Out::Notice(n));
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn decode_stats(&self) -> &PacketStats {
        &self.stats
    }

    fn ordinal(&self) -> u64 {
        self.ordinal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::linktype;
    use crate::flow::tcp::Engine;
    use crate::pipeline::inline::Inline;
    use crate::pipeline::stage::QUEUE_BATCHES;
    use crate::record::FlowRecord;
    use crossbeam_channel::bounded;
    use std::time::Duration;

    /// A raw IPv4 TCP segment from 10.0.0.2:`sport` to 10.0.0.1:443 with `payload`.
    fn segment(sport: u16, payload: &[u8]) -> Vec<u8> {
        let total = (40 + payload.len()) as u16;
        let mut f = vec![0x45, 0];
        f.extend(total.to_be_bytes());
        f.extend([0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
        f.extend(sport.to_be_bytes());
        f.extend(443u16.to_be_bytes());
        f.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend(payload);
        f
    }

    /// The plan of a run with one worker and default limits.
    fn one_worker(live: bool) -> Plan<'static> {
        Plan {
            workers: 1,
            limits: Limits::default(),
            opts: crate::analyzer::options::Options::default(),
            ports: &[],
            policy: Arc::default(),
            keys: Arc::default(),
            shard: None,
            end: EndReason::EndOfInput,
            live,
            all: false,
            prepare: None,
        }
    }

    /// A fragment waiting for the rest of its datagram is dropped when the live
    /// clock passes its timeout, without another packet arriving.
    #[test]
    fn an_idle_tick_times_fragments_out() {
        // 20 + 12 bytes: a non-last fragment carries a multiple of 8.
        let mut frag = segment(40000, b"first half!!");
        // More fragments follow (MF), offset 0.
        frag[6] = 0x20;
        let pkt = |ts: Timestamp| Packet {
            number: 1,
            ts,
            linktype: linktype::RAW,
            data: &frag,
            orig_len: frag.len() as u32,
            chunk: None,
        };
        let limits = Limits::default();
        let mut inline = Inline::new(
            Engine::new(
                limits,
                crate::analyzer::options::Options::default(),
                Vec::new(),
            ),
            None,
        );
        let mut emit = |_rec: FlowRecord| {};
        let at = |secs| Timestamp { secs, nanos: 0 };
        inline.packet(&pkt(at(100)), &mut emit);
        assert_eq!(inline.decoder.fragments_held().0, 1);
        inline.tick(at(110), &mut emit);
        assert_eq!(inline.decoder.fragments_held().0, 1, "not yet timed out");
        inline.tick(at(200), &mut emit);
        assert_eq!(inline.decoder.fragments_held(), (0, 0));
        assert_eq!(inline.stats().decode.fragments.timed_out, 1);

        // The threaded reader decodes, so it holds fragments and ticks the same way.
        let (tx, _rx) = bounded::<Batch>(QUEUE_BATCHES);
        let (_pool_tx, pool_rx) = bounded::<Batch>(4);
        let (out_tx, _out_rx) = bounded::<Out>(4);
        let stop = AtomicBool::new(false);
        let plan = one_worker(true);
        let mut router = Router::new(vec![tx], pool_rx, out_tx, &plan, &stop);
        router.packet(&pkt(at(100)));
        assert_eq!(router.decoder.fragments_held().0, 1);
        router.tick(at(110));
        assert_eq!(router.decoder.fragments_held().0, 1, "not yet timed out");
        router.tick(at(200));
        assert_eq!(router.decoder.fragments_held(), (0, 0));
    }

    /// Live capture with a worker that takes nothing: once its queue is full the
    /// reader drops that worker's batches and counts every segment in them, never
    /// blocks, and keeps the sweeps. File reading with a worker that is slow to
    /// start waits for it and drops nothing.
    #[test]
    fn a_full_queue_drops_and_counts_in_live_capture_only() {
        for live in [true, false] {
            let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
            let (_pool_tx, pool_rx) = bounded::<Batch>(4);
            let (out_tx, _out_rx) = bounded::<Out>(4);
            let stop = AtomicBool::new(false);
            let plan = one_worker(live);
            let slow = (!live).then(|| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    rx.iter()
                        .flat_map(|b| b.items)
                        .filter(|i| matches!(i, Item::Unit(_)))
                        .count()
                })
            });
            let mut router = Router::new(vec![tx], pool_rx, out_tx, &plan, &stop);
            let frame = segment(40000, b"hello");
            // Enough full batches to fill the queue, and 3 more.
            let n = (QUEUE_BATCHES + 3) * BATCH_ITEMS;
            for i in 0..n {
                router.packet(&Packet {
                    number: i as u64 + 1,
                    ts: Timestamp { secs: 1, nanos: 0 },
                    linktype: linktype::RAW,
                    data: &frame,
                    orig_len: frame.len() as u32,
                    chunk: None,
                });
            }
            let dropped = router.dropped.clone();
            match slow {
                None => {
                    let units = |b: &Batch| {
                        b.items
                            .iter()
                            .filter(|i| matches!(i, Item::Unit(_)))
                            .count()
                    };
                    let queued: Vec<Batch> = rx.try_iter().collect();
                    assert_eq!(queued.len(), QUEUE_BATCHES, "the queue is full");
                    let held = queued.iter().map(units).sum::<usize>() + units(&router.pending[0]);
                    // Every segment is queued, still pending, or dropped and counted;
                    // the drops are the 3 batches beyond the queue (less what waits).
                    assert_eq!(dropped, vec![(n - held) as u64]);
                    assert!(n - held >= 2 * BATCH_ITEMS, "{dropped:?}");
                }
                Some(consumer) => {
                    let pending = router.pending[0]
                        .items
                        .iter()
                        .filter(|i| matches!(i, Item::Unit(_)))
                        .count();
                    drop(router);
                    drop(rx);
                    assert_eq!(dropped, vec![0]);
                    assert_eq!(consumer.join().unwrap() + pending, n);
                }
            }
        }
    }
}
