//! The output stage's ordered merge: records of every worker released in the order
//! one engine would have produced them, renumbered by first packet.

use crate::pipeline::numbering::Numbering;
use crate::pipeline::worker::BatchReport;
use crate::pipeline::worker::EndKey;
use crate::pipeline::worker::Finished;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// The output stage's bookkeeping: numbers flows in first-packet order and
/// releases records in the order one engine would have ended them.
pub(super) struct Merge {
    /// Each worker's watermark: everything up to this position is done.
    pub(super) upto: Vec<u64>,
    /// First-packet ordinals of begun flows not yet numbered.
    pub(super) started: BinaryHeap<Reverse<u64>>,
    /// First-packet ordinal to `id`, for flows numbered but not yet released.
    pub(super) ids: Numbering,
    pub(super) next_id: u64,
    /// Boxed: the map's nodes move entries on every insert and removal.
    pub(super) pending: BTreeMap<EndKey, Box<Finished>>,
    /// Flows ended silently (see [`BatchReport::silent`]) but not yet numbered:
    /// they take their `id` and nothing else.
    pub(super) silent: rustc_hash::FxHashSet<u64>,
    /// Silent ends not yet counted by the collector.
    pub(super) silent_ended: u64,
}

impl Merge {
    pub(super) fn new(workers: usize) -> Self {
        Merge {
            upto: vec![0; workers],
            started: BinaryHeap::new(),
            ids: Numbering::default(),
            next_id: 1,
            pending: BTreeMap::new(),
            silent: rustc_hash::FxHashSet::default(),
            silent_ended: 0,
        }
    }

    pub(super) fn add(&mut self, p: BatchReport) {
        if let Some(u) = self.upto.get_mut(p.worker) {
            *u = (*u).max(p.upto);
        }
        self.started.extend(p.started.into_iter().map(Reverse));
        self.pending.extend(p.ended);
        self.silent_ended += p.silent.len() as u64;
        for first in p.silent.into_iter().chain(p.unlisted) {
            if self.ids.remove(first).is_none() {
                self.silent.insert(first);
            }
        }
    }

    /// How many flows ended silently since the last call.
    pub(super) fn take_silent(&mut self) -> u64 {
        std::mem::take(&mut self.silent_ended)
    }

    /// Emits every record whose end position all workers have passed, with the
    /// worker that made it (which then frees it: see [`super::deliver::Deliver::emit_lent`]).
    pub(super) fn release(&mut self, emit: &mut dyn FnMut(Box<Finished>, usize)) {
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
            let (key, mut done) = entry.remove_entry();
            if let Some(id) = self.ids.remove(done.rec.id) {
                done.rec.id = id;
            }
            emit(done, key.3);
        }
    }

    pub(super) fn release_all(&mut self, emit: &mut dyn FnMut(Box<Finished>, usize)) {
        self.upto.iter_mut().for_each(|u| *u = u64::MAX);
        self.release(emit);
    }
}
