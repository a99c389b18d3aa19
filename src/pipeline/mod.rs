//! The stage between decode and the flow tables. With one thread, decode, the
//! clock and one flow engine run inline in the reader's thread. With several,
//! the reader decodes each packet down to its flow key, hashes the key
//! symmetrically and hands the segment, in batches over bounded queues, to the
//! worker owning that flow's shard of the flow table; one output stage merges
//! what the workers finish back into the order one engine would have produced.
//!
//! How the answers stay the same for any number of workers:
//! - **Clock**: the reader runs the one [`Clock`] over every packet's time and
//!   sends each sweep it calls for to every worker, in place in the packet order,
//!   so every shard sweeps at the same packets a single engine would.
//! - **Ids**: a worker numbers a flow by the ordinal of its first packet and
//!   reports each start; the output stage renumbers 1, 2, 3... in first-packet order.
//! - **Order**: every finished record carries the position at which it ended
//!   (the packet ordinal; sweeps before that packet's own closes). A worker
//!   reports after each batch how far it has got (its watermark); the output stage
//!   releases a record once every worker has passed its position, in position order.
//!
//! Flow caps apply per worker (`--max-flows` divided by the worker count), so
//! which flows get evicted when the table is full can differ from one thread.

pub mod deliver;
pub mod shard;

use crate::assess::Policy;
use crate::capture::{Buffer, Packet};
use crate::config::Config;
use crate::config::Limits;
use crate::config::MAX_THREADS;
use crate::decode::Decoder;
use crate::decode::path::{Datagram, DecodeNotes, Decoded, Flags, Segment, TunnelPath};
use crate::flow::ending::Emit;
use crate::flow::tcp::{Clock, Engine, IdScheme, Stamp};
use crate::pipeline::shard::{Shard, flow_hash, route_hash, worker_of};
use crate::record::{EndReason, FlowRecord, Transport};
use crate::stats::{MemoryStats, PacketStats};
use crate::time::Timestamp;
use crossbeam_channel::{Receiver, Sender, bounded};
use deliver::{Deliver, Notice};
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Segments in a batch before it goes to its worker.
pub const BATCH_ITEMS: usize = 256;
/// Payload bytes in a batch before it goes to its worker.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Batches queued per worker. File reading waits when a queue is full (back-pressure);
/// live capture drops the batch and counts it.
pub const QUEUE_BATCHES: usize = 16;
/// Every this many packets each worker gets its batch, full or not, so no
/// worker's watermark lags far and the output stage holds few records.
pub const SYNC_PACKETS: u64 = 8192;
/// Live capture: partial batches go out at least this often, so flows show promptly.
const LIVE_SYNC: Duration = Duration::from_millis(50);

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
    fn ends(&self) -> ((std::net::IpAddr, u16), (std::net::IpAddr, u16)) {
        match self {
            Unit::Tcp(s) => ((s.src, s.sport), (s.dst, s.dport)),
            Unit::Udp(d) => ((d.src, d.sport), (d.dst, d.dport)),
        }
    }

    /// The header fields for a batch; the payload and any tunnel path stay
    /// with the batch (see [`Batch::hold`]), so a queued item is small.
    fn queue(self, at: Stamp, batch: &mut Batch, chunk: Option<&Buffer>) -> Queued {
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
fn feed(
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

/// Runs `read` (the reading loop of files or of an interface) into the flow
/// stage `cfg` asks for, finished records into `col`; ends open flows with `end`.
/// `ports` is the engine's own port filter; `live` drops on full queues.
pub fn drive<T: Send>(
    cfg: &Config,
    col: &mut dyn Deliver,
    ports: &[u16],
    end: EndReason,
    live: bool,
    read: impl FnOnce(&mut dyn Stage) -> T + Send,
) -> (T, Totals) {
    let workers = cfg.threads.clamp(1, MAX_THREADS);
    if workers == 1 {
        let mut engine = Engine::new(cfg.limits, cfg.opts, ports.to_vec());
        engine.set_policy(Arc::new(cfg.policy.clone()));
        if !cfg.all {
            engine.count_payloadless();
        }
        let mut stage = InlineStage {
            inline: Inline::new(engine, cfg.shard),
            col,
        };
        let t = read(&mut stage);
        let InlineStage { mut inline, col } = stage;
        let memory = inline.memory();
        let (stats, evicted) = inline.finish(end, &mut |rec| col.emit(rec));
        col.count_silent(inline.take_payloadless());
        let totals = Totals {
            stats,
            evicted,
            memory,
            dropped_by_worker: Vec::new(),
        };
        return (t, totals);
    }
    let plan = Plan {
        workers,
        limits: per_worker(cfg.limits, workers),
        opts: cfg.opts,
        ports,
        policy: Arc::new(cfg.policy.clone()),
        shard: cfg.shard,
        end,
        live,
        all: cfg.all,
    };
    let (t, mut totals) = threaded(&plan, col, read);
    // The cap as given, not the sum of the workers' shares (which rounds down).
    totals.memory.memcap = cfg.limits.memcap as u64;
    (t, totals)
}

/// Caps of one worker's shard, so the totals over all workers hold.
pub fn per_worker(limits: Limits, workers: usize) -> Limits {
    Limits {
        max_flows: (limits.max_flows / workers.max(1)).max(1),
        memcap: (limits.memcap / workers.max(1)).max(crate::config::MIN_MEMCAP),
        ..limits
    }
}

/// The single-threaded path: decode, the clock and one flow engine, all in the
/// caller's thread.
pub struct Inline {
    decoder: Decoder,
    engine: Engine,
    /// What decode counted (the engine counts the rest).
    stats: PacketStats,
    shard: Option<Shard>,
    /// Packets seen so far, filtered ones included.
    ordinal: u64,
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

struct InlineStage<'c> {
    inline: Inline,
    col: &'c mut dyn Deliver,
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
}

/// How the threaded stage is laid out.
struct Plan<'p> {
    workers: usize,
    /// Caps of each worker's shard.
    limits: Limits,
    opts: crate::analyzer::options::Options,
    ports: &'p [u16],
    policy: Arc<Policy>,
    shard: Option<Shard>,
    end: EndReason,
    live: bool,
    /// `--all`: flows without payload are listed too, so workers send their records.
    all: bool,
}

/// A segment or datagram waiting in a batch: its header fields, with its
/// payload and tunnel path held by the batch. About half the size of a
/// [`Segment`]: the reader writes, and a worker on another core reads, one
/// per packet.
struct Queued {
    at: Stamp,
    head: Head,
    /// Index in [`Batch::tunnels`], or [`NO_TUNNEL`].
    tunnel: u32,
    payload: Held,
}

/// The fields of a [`Segment`] or [`Datagram`] other than payload and tunnel path.
#[derive(Clone, Copy)]
struct Head {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: Flags,
    udp: bool,
    truncated: bool,
    notes: DecodeNotes,
}

// One per packet crosses between cores: keep it within 96 bytes.
const _: () = assert!(std::mem::size_of::<Item>() <= 96);

const NO_TUNNEL: u32 = u32::MAX;
/// [`Held::chunk`] of a payload copied into [`Batch::bytes`].
const COPIED: u32 = u32::MAX;

/// Where the payload of a queued segment lies: bytes `start..end` of one of
/// the batch's shared read buffers (not copied), or of its byte buffer
/// (live capture, reassembled fragments) when `chunk` is [`COPIED`].
#[derive(Clone, Copy)]
struct Held {
    chunk: u32,
    start: u32,
    end: u32,
}

impl Held {
    const EMPTY: Held = Held {
        chunk: COPIED,
        start: 0,
        end: 0,
    };

    fn new(chunk: usize, range: Range<usize>) -> Option<Held> {
        Some(Held {
            chunk: u32::try_from(chunk).ok()?,
            start: u32::try_from(range.start).ok()?,
            end: u32::try_from(range.end).ok()?,
        })
    }

    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Where `part` lies in `chunk`, if it does.
fn within(chunk: &Buffer, part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(chunk.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= chunk.len()).then_some(start..end)
}

enum Item {
    Unit(Queued),
    /// The clock calls for a sweep at this position.
    Sweep {
        now: Timestamp,
        pos: u64,
    },
}

/// Packets for one worker: the read buffers their payloads lie in, and one buffer
/// for payloads that had to be copied, reused from batch to batch.
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    chunks: Vec<Buffer>,
    bytes: Vec<u8>,
    /// Tunnel paths of the items that came through one.
    tunnels: Vec<TunnelPath>,
    /// Every item up to this position, for this worker, is in this batch or an earlier one.
    upto: u64,
}

impl Batch {
    /// Keeps `payload` for the worker: by reference to the read buffer it lies
    /// in when there is one, else as a copy.
    fn hold(&mut self, payload: &[u8], chunk: Option<&Buffer>) -> Held {
        if payload.is_empty() {
            return Held::EMPTY;
        }
        if let Some(chunk) = chunk
            && let Some(range) = within(chunk, payload)
        {
            let same = self.chunks.last().is_some_and(|c| Buffer::ptr_eq(c, chunk));
            if !same {
                self.chunks.push(Buffer::clone(chunk));
            }
            if let Some(held) = Held::new(self.chunks.len() - 1, range) {
                return held;
            }
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        Held::new(COPIED as usize, start..self.bytes.len()).unwrap_or(Held::EMPTY)
    }

    fn hold_tunnel(&mut self, tunnel: &TunnelPath) -> u32 {
        if tunnel.is_empty() {
            return NO_TUNNEL;
        }
        self.tunnels.push(tunnel.clone());
        u32::try_from(self.tunnels.len() - 1).unwrap_or(NO_TUNNEL)
    }

    fn take_tunnel(&mut self, i: u32) -> TunnelPath {
        if i == NO_TUNNEL {
            return TunnelPath::default();
        }
        self.tunnels
            .get_mut(i as usize)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn payload(&self, p: Held) -> &[u8] {
        if p.chunk == COPIED {
            return self.bytes.get(p.range()).unwrap_or_default();
        }
        self.chunks
            .get(p.chunk as usize)
            .and_then(|c| c.get(p.range()))
            .unwrap_or_default()
    }

    /// Empty, its buffers kept for the next batch.
    fn clear(&mut self) {
        self.items.clear();
        self.chunks.clear();
        self.bytes.clear();
        self.tunnels.clear();
    }
}

/// Where a record ended: position (twice the packet ordinal; odd for a clock
/// tick between packets), phase (a sweep comes before the packet's own closes),
/// then a tie-break (the first-packet ordinal in sweeps, the order of closing at a packet).
type EndKey = (u64, u8, u64, usize);

/// A sweep ends idle TCP flows, then idle UDP flows, each in `id` order.
const PHASE_SWEEP: u8 = 0;
const PHASE_SWEEP_UDP: u8 = 1;
/// A packet's own closes come after the sweep it called for.
const PHASE_PACKET: u8 = 2;

fn sweep_phase(rec: &FlowRecord) -> u8 {
    match rec.transport {
        Transport::Tcp => PHASE_SWEEP,
        Transport::Udp => PHASE_SWEEP_UDP,
    }
}

/// What a worker reports after a batch.
struct BatchReport {
    worker: usize,
    upto: u64,
    /// First-packet ordinals of the flows begun in this batch, in order.
    started: Vec<u64>,
    ended: Vec<(EndKey, Box<FlowRecord>)>,
    /// First-packet ordinals of flows ended without payload and not listed
    /// (without `--all`): only counted, so their records never travel.
    silent: Vec<u64>,
    /// First-packet ordinals of flows ended without a record that are not counted
    /// as flows at all (UDP conversations neither QUIC nor DTLS).
    unlisted: Vec<u64>,
}

enum Out {
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

fn threaded<T: Send>(
    plan: &Plan<'_>,
    col: &mut dyn Deliver,
    read: impl FnOnce(&mut dyn Stage) -> T + Send,
) -> (T, Totals) {
    let stop = AtomicBool::new(false);
    let (out_tx, out_rx) = bounded::<Out>(4 * plan.workers + 4);
    let (pool_tx, pool_rx) = bounded::<Batch>(plan.workers * (QUEUE_BATCHES + 2));
    std::thread::scope(|s| {
        let mut queues = Vec::with_capacity(plan.workers);
        let mut workers = Vec::with_capacity(plan.workers);
        for w in 0..plan.workers {
            let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
            queues.push(tx);
            let mut engine = Engine::new(plan.limits, plan.opts, plan.ports.to_vec());
            engine.set_ids(IdScheme::FirstPacket);
            engine.set_policy(Arc::clone(&plan.policy));
            if !plan.all {
                engine.count_payloadless();
            }
            let (out, pool, end, all) = (out_tx.clone(), pool_tx.clone(), plan.end, plan.all);
            workers.push(s.spawn(move || work(w, engine, &rx, &pool, &out, end, all)));
        }
        drop(pool_tx);
        let reader_out = out_tx;
        let mut router = Router::new(queues, pool_rx, reader_out, plan, &stop);
        let reader = s.spawn(move || {
            let t = read(&mut router);
            router.finish();
            t
        });
        let mut merge = Merge::new(plan.workers);
        let mut totals = Totals::default();
        for msg in out_rx.iter() {
            match msg {
                Out::BatchReport(p) => merge.add(p),
                Out::Notice(n) => col.notice(n),
                Out::ReaderDone { stats, dropped } => {
                    totals.stats.absorb(&stats);
                    totals.dropped_by_worker = dropped;
                }
                Out::WorkerDone {
                    stats,
                    evicted,
                    memory,
                } => {
                    totals.stats.absorb(&stats);
                    totals.evicted += evicted;
                    totals.memory.absorb(&memory);
                }
            }
            col.count_silent(merge.take_silent());
            merge.release(&mut |rec| col.emit(rec));
            if col.broken() {
                stop.store(true, Ordering::Relaxed);
            }
        }
        merge.release_all(&mut |rec| col.emit(rec));
        let t = match reader.join() {
            Ok(t) => t,
            Err(e) => std::panic::resume_unwind(e),
        };
        // Joined one by one, not left to the scope: the scope's own wait ends
        // when a thread's closure returns, before its thread-locals (the
        // certificate cache) are freed.
        for h in workers {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
        (t, totals)
    })
}

/// The reader's side: decodes, runs the clock, and batches segments to the workers.
struct Router<'s> {
    queues: Vec<Sender<Batch>>,
    pending: Vec<Batch>,
    pool: Receiver<Batch>,
    out: Sender<Out>,
    clock: Clock,
    decoder: Decoder,
    stats: PacketStats,
    shard: Option<Shard>,
    live: bool,
    stop: &'s AtomicBool,
    ordinal: u64,
    /// Latest position handed out (see [`EndKey`]).
    pos: u64,
    next_sync: u64,
    last_sync: Instant,
    dropped: Vec<u64>,
}

impl<'s> Router<'s> {
    fn new(
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

    fn sweep_all(&mut self, now: Timestamp) {
        for b in &mut self.pending {
            b.items.push(Item::Sweep { now, pos: self.pos });
        }
    }

    /// Hands worker `w` its pending batch. Files wait for room in the queue;
    /// live capture drops the batch's segments when the queue is full.
    fn send(&mut self, w: usize) {
        let (Some(queue), Some(pending)) = (self.queues.get(w), self.pending.get_mut(w)) else {
            return;
        };
        if self.live && queue.is_full() {
            let before = pending.items.len();
            pending.items.retain(|i| matches!(i, Item::Sweep { .. }));
            pending.bytes.clear();
            pending.chunks.clear();
            pending.tunnels.clear();
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
    fn sync(&mut self) {
        for w in 0..self.queues.len() {
            self.send(w);
        }
        self.next_sync = self.ordinal + SYNC_PACKETS;
        if self.live {
            self.last_sync = Instant::now();
        }
    }

    fn finish(mut self) {
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
                if b.items.len() >= BATCH_ITEMS || b.bytes.len() >= BATCH_BYTES {
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
}

/// A worker: owns one shard of the flow table and runs it over its batches.
fn work(
    w: usize,
    mut engine: Engine,
    batches: &Receiver<Batch>,
    pool: &Sender<Batch>,
    out: &Sender<Out>,
    end: EndReason,
    all: bool,
) {
    let mut tie = 0u64;
    for mut batch in batches.iter() {
        let mut p = BatchReport::new(w, batch.upto);
        let mut items = std::mem::take(&mut batch.items);
        for item in items.drain(..) {
            match item {
                Item::Sweep { now, pos } => engine.sweep_at(now, &mut |rec| {
                    let key = (pos, sweep_phase(&rec), rec.id, w);
                    p.end(key, rec, all);
                }),
                Item::Unit(q) => {
                    let tunnel = batch.take_tunnel(q.tunnel);
                    let payload = batch.payload(q.payload);
                    let before = engine.flows_started();
                    let pos = q.at.ordinal * 2;
                    feed(q.head, tunnel, payload, &mut engine, q.at, &mut |rec| {
                        tie += 1;
                        p.end((pos, PHASE_PACKET, tie, w), rec, all);
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
        p.end(key, rec, all);
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
    fn new(worker: usize, upto: u64) -> Self {
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
    fn end(&mut self, key: EndKey, rec: FlowRecord, all: bool) {
        if all || rec.has_payload() {
            self.ended.push((key, Box::new(rec)));
        } else {
            self.silent.push(rec.id);
        }
    }
}

/// The output stage's bookkeeping: numbers flows in first-packet order and
/// releases records in the order one engine would have ended them.
struct Merge {
    /// Each worker's watermark: everything up to this position is done.
    upto: Vec<u64>,
    /// First-packet ordinals of begun flows not yet numbered.
    started: BinaryHeap<Reverse<u64>>,
    /// First-packet ordinal to `id`, for flows numbered but not yet released.
    ids: FxHashMap<u64, u64>,
    next_id: u64,
    /// Boxed: the map's nodes move entries on every insert and removal.
    pending: BTreeMap<EndKey, Box<FlowRecord>>,
    /// Flows ended silently (see [`BatchReport::silent`]) but not yet numbered:
    /// they take their `id` and nothing else.
    silent: rustc_hash::FxHashSet<u64>,
    /// Silent ends not yet counted by the collector.
    silent_ended: u64,
}

impl Merge {
    fn new(workers: usize) -> Self {
        Merge {
            upto: vec![0; workers],
            started: BinaryHeap::new(),
            ids: FxHashMap::default(),
            next_id: 1,
            pending: BTreeMap::new(),
            silent: rustc_hash::FxHashSet::default(),
            silent_ended: 0,
        }
    }

    fn add(&mut self, p: BatchReport) {
        if let Some(u) = self.upto.get_mut(p.worker) {
            *u = (*u).max(p.upto);
        }
        self.started.extend(p.started.into_iter().map(Reverse));
        self.pending.extend(p.ended);
        self.silent_ended += p.silent.len() as u64;
        for first in p.silent.into_iter().chain(p.unlisted) {
            if self.ids.remove(&first).is_none() {
                self.silent.insert(first);
            }
        }
    }

    /// How many flows ended silently since the last call.
    fn take_silent(&mut self) -> u64 {
        std::mem::take(&mut self.silent_ended)
    }

    /// Emits every record whose end position all workers have passed.
    fn release(&mut self, emit: &mut Emit<'_>) {
        let low = self.upto.iter().copied().min().unwrap_or(u64::MAX);
        while let Some(&Reverse(first)) = self.started.peek() {
            if first.saturating_mul(2) > low {
                break;
            }
            self.started.pop();
            if !self.silent.remove(&first) {
                self.ids.insert(first, self.next_id);
            }
            self.next_id += 1;
        }
        while let Some(entry) = self.pending.first_entry() {
            if entry.key().0 > low {
                break;
            }
            let mut rec = entry.remove();
            if let Some(id) = self.ids.remove(&rec.id) {
                rec.id = id;
            }
            emit(*rec);
        }
    }

    fn release_all(&mut self, emit: &mut Emit<'_>) {
        self.upto.iter_mut().for_each(|u| *u = u64::MAX);
        self.release(emit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::linktype;

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
            shard: None,
            end: EndReason::EndOfInput,
            live,
            all: false,
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
                    rx.iter().map(|b| b.items.len()).sum::<usize>()
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
                    assert_eq!(dropped, vec![(3 * BATCH_ITEMS) as u64]);
                    let queued: usize = rx.try_iter().map(|b| b.items.len()).sum();
                    assert_eq!(queued, QUEUE_BATCHES * BATCH_ITEMS);
                }
                Some(consumer) => {
                    drop(router);
                    drop(rx);
                    assert_eq!(dropped, vec![0]);
                    assert_eq!(consumer.join().unwrap(), n);
                }
            }
        }
    }
}
