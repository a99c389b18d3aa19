//! The stage between decode and the flow tables.
//!
//! In: packets from a reader (through [`stage::Stage`]). Out: finished flow records,
//! in one order whatever the thread count, to a [`deliver::Deliver`].
//!
//! With one thread (`inline`), decode, the clock and one flow engine run in the
//! reader's thread. With several (`router`, `batch`, `worker`, `merge`),
//! the reader decodes each packet down to its flow key, hashes the key
//! symmetrically and hands the segment, in batches over bounded queues, to the
//! worker owning that flow's shard of the flow table; one output stage merges
//! what the workers finish back into the order one engine would have produced.
//! Whatever of a record's output does not depend on that order (its evidence,
//! its JSON but for the id) the worker that finished it prepares, as the
//! receiving end asks ([`deliver::Prepare`]), so the one output stage does little
//! per record.
//!
//! How the answers stay the same for any number of workers:
//! - **Clock**: the reader runs the one [`Clock`](crate::flow::tcp::Clock) over every packet's time and
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

mod batch;
pub mod deliver;
pub mod inline;
mod merge;
mod numbering;
mod router;
pub mod shard;
pub mod stage;
mod worker;

use crate::config::Config;
use crate::config::Limits;
use crate::config::MAX_THREADS;
use crate::flow::tcp::{Engine, IdScheme};
use crate::pipeline::batch::Batch;
use crate::pipeline::inline::Inline;
use crate::pipeline::inline::InlineStage;
use crate::pipeline::merge::Merge;
use crate::pipeline::router::Plan;
use crate::pipeline::router::Router;
use crate::pipeline::stage::QUEUE_BATCHES;
use crate::pipeline::stage::Stage;
use crate::pipeline::stage::Totals;
use crate::pipeline::worker::Out;
use crate::pipeline::worker::{Channels, Freed, work};
use crate::record::EndReason;
use crossbeam_channel::{Receiver, Sender, bounded};
use deliver::Deliver;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
        engine.set_keys(Arc::clone(&cfg.keys));
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
        keys: Arc::clone(&cfg.keys),
        shard: cfg.shard,
        end,
        live,
        all: cfg.all,
        prepare: col.preparer(),
    };
    let (t, mut totals) = threaded(&plan, col, read);
    // The cap as given, not the sum of the workers' shares (which rounds down).
    totals.memory.memcap = cfg.limits.memcap as u64;
    (t, totals)
}

/// The output stage, on the calling thread: what the reader and the workers
/// report, merged into the run's order and delivered, until all of them are done.
fn output_stage(
    out_rx: &Receiver<Out>,
    workers: usize,
    col: &mut dyn Deliver,
    returns: &mut [(Sender<Freed>, Freed)],
    stop: &AtomicBool,
) -> Totals {
    let mut merge = Merge::new(workers);
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
        merge.release(&mut |mut done, w| {
            col.emit_lent(&mut done.rec, done.prepared.as_ref());
            if let Some((_, freed)) = returns.get_mut(w) {
                freed.push(done);
            }
        });
        give_back(returns);
        if col.broken() {
            stop.store(true, Ordering::Relaxed);
        }
    }
    merge.release_all(&mut |mut done, _| col.emit_lent(&mut done.rec, done.prepared.as_ref()));
    totals
}

/// Sends each worker the records it made that were written, to be freed on its
/// thread; what a full channel cannot take is freed here.
fn give_back(returns: &mut [(Sender<Freed>, Freed)]) {
    for (tx, freed) in returns {
        if !freed.is_empty() {
            let _ = tx.try_send(std::mem::take(freed));
        }
    }
}

/// Caps of one worker's shard, so the totals over all workers hold.
pub fn per_worker(limits: Limits, workers: usize) -> Limits {
    Limits {
        max_flows: (limits.max_flows / workers.max(1)).max(1),
        memcap: (limits.memcap / workers.max(1)).max(crate::config::MIN_MEMCAP),
        ..limits
    }
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
        let mut returns = Vec::with_capacity(plan.workers);
        for w in 0..plan.workers {
            let (tx, rx) = bounded::<Batch>(QUEUE_BATCHES);
            queues.push(tx);
            let (freed_tx, freed_rx) = bounded::<Freed>(QUEUE_BATCHES);
            returns.push((freed_tx, Freed::new()));
            let mut engine = Engine::new(plan.limits, plan.opts, plan.ports.to_vec());
            engine.set_ids(IdScheme::FirstPacket);
            engine.set_policy(Arc::clone(&plan.policy));
            engine.set_keys(Arc::clone(&plan.keys));
            if !plan.all {
                engine.count_payloadless();
            }
            let (out, pool, end, all) = (out_tx.clone(), pool_tx.clone(), plan.end, plan.all);
            let prepare = plan.prepare.clone();
            workers.push(s.spawn(move || {
                let ch = Channels {
                    batches: &rx,
                    pool: &pool,
                    out: &out,
                    freed: &freed_rx,
                    prepare: prepare.as_deref(),
                };
                work(w, engine, ch, end, all);
            }));
        }
        drop(pool_tx);
        let reader_out = out_tx;
        let mut router = Router::new(queues, pool_rx, reader_out, plan, &stop);
        let reader = s.spawn(move || {
            let t = read(&mut router);
            router.finish();
            t
        });
        let totals = output_stage(&out_rx, plan.workers, col, &mut returns, &stop);
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
