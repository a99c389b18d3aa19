//! The output stage's numbers of flows: for each flow numbered but not yet released,
//! its first-packet ordinal and its `id`.
//!
//! Flows are numbered in first-packet order, so ordinals and ids both only grow. The
//! pairs are kept in that order in chunks of at most [`CHUNK`] entries, each entry
//! its distance in ordinal and in id from the chunk's base: 8 bytes a flow, where a
//! hash map of the pairs takes 16 and its slack (and, while it grows, its old table
//! too). Appending is O(1); finding an ordinal is two binary searches (over the
//! chunks, then in one). A removed entry is marked in place; a chunk is compacted
//! when most of its entries are removed, dropped when all are, and merged with a
//! neighbour when the two hold few enough: so memory follows the flows still open,
//! not the flows ever numbered ([`NUMBERING_BYTES`](crate::flow::tcp::NUMBERING_BYTES)
//! is the bound).

use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// Entries a chunk holds at most.
pub(super) const CHUNK: usize = 512;

/// The id distance of a removed entry.
const GONE: u32 = u32::MAX;

/// The entry of `(ordinal, id)` in a chunk based at `base`, if the distances fit.
fn distance(base: (u64, u64), ordinal: u64, id: u64) -> Option<(u32, u32)> {
    let d = u32::try_from(ordinal.checked_sub(base.0)?).ok()?;
    let e = u32::try_from(id.checked_sub(base.1)?).ok()?;
    (e != GONE).then_some((d, e))
}

/// Numbered flows in ordinal order, each as its distance from `ordinal` and `id`.
struct Chunk {
    ordinal: u64,
    id: u64,
    /// `(ordinal - self.ordinal, id - self.id)`, ordinals ascending; the id
    /// distance is [`GONE`] once the entry is removed.
    at: Vec<(u32, u32)>,
    /// Entries not removed.
    live: usize,
}

impl Chunk {
    fn new(ordinal: u64, id: u64) -> Self {
        let mut at = Vec::with_capacity(CHUNK);
        at.push((0, 0));
        Chunk {
            ordinal,
            id,
            at,
            live: 1,
        }
    }

    /// The entry of `(ordinal, id)` in this chunk, if the distances fit.
    fn entry(&self, ordinal: u64, id: u64) -> Option<(u32, u32)> {
        distance((self.ordinal, self.id), ordinal, id)
    }

    /// Removes the entry of `ordinal`; its id.
    fn take(&mut self, ordinal: u64) -> Option<u64> {
        let d = u32::try_from(ordinal.checked_sub(self.ordinal)?).ok()?;
        let k = self.at.binary_search_by_key(&d, |e| e.0).ok()?;
        let e = self.at.get_mut(k)?;
        if e.1 == GONE {
            return None;
        }
        let id = self.id + u64::from(e.1);
        e.1 = GONE;
        self.live -= 1;
        Some(id)
    }

    fn compact(&mut self) {
        self.at.retain(|e| e.1 != GONE);
    }

    /// Moves the entries of `next` (the chunk after this one) here, when both hold
    /// at most half a chunk together and every distance fits.
    fn absorb(&mut self, next: &Chunk) -> bool {
        if self.live + next.live > CHUNK / 2 {
            return false;
        }
        let base = (self.ordinal, self.id);
        let shift = |e: &(u32, u32)| {
            let o = next.ordinal + u64::from(e.0);
            distance(base, o, next.id + u64::from(e.1))
        };
        let live = || next.at.iter().filter(|e| e.1 != GONE);
        if live().next_back().is_some_and(|e| shift(e).is_none()) {
            return false;
        }
        self.compact();
        let moved: Vec<(u32, u32)> = live().filter_map(shift).collect();
        self.at.extend(moved);
        self.live += next.live;
        true
    }
}

/// First-packet ordinal to `id`, for flows numbered and not yet released.
///
/// Invariant: every chunk holds a live entry and at least as many live entries as
/// removed ones; two neighbouring chunks hold more than half a chunk of live entries
/// together, unless the later one's entries are too far from the earlier one's base.
#[derive(Default)]
pub(super) struct Numbering {
    chunks: VecDeque<Chunk>,
    /// The highest ordinal numbered so far.
    last: Option<u64>,
    /// Pairs numbered after a higher ordinal (a run numbers in first-packet order:
    /// none), kept aside.
    odd: FxHashMap<u64, u64>,
}

impl Numbering {
    /// Numbers the flow that began at `ordinal` with `id`.
    pub(super) fn insert(&mut self, ordinal: u64, id: u64) {
        if self.last.is_some_and(|l| ordinal <= l) {
            self.odd.insert(ordinal, id);
            return;
        }
        self.last = Some(ordinal);
        if let Some(c) = self.chunks.back_mut()
            && c.at.len() < CHUNK
            && let Some(e) = c.entry(ordinal, id)
        {
            c.at.push(e);
            c.live += 1;
            return;
        }
        self.chunks.push_back(Chunk::new(ordinal, id));
    }

    /// Forgets the flow that began at `ordinal`; its `id`, if it was numbered.
    pub(super) fn remove(&mut self, ordinal: u64) -> Option<u64> {
        let i = self.chunks.partition_point(|c| c.ordinal <= ordinal);
        let found = i
            .checked_sub(1)
            .and_then(|i| Some((i, self.chunks.get_mut(i)?.take(ordinal)?)));
        match found {
            Some((i, id)) => {
                self.tidy(i);
                Some(id)
            }
            None if self.odd.is_empty() => None,
            None => self.odd.remove(&ordinal),
        }
    }

    /// Restores the invariant after a removal from chunk `i`.
    fn tidy(&mut self, i: usize) {
        let Some(c) = self.chunks.get_mut(i) else {
            return;
        };
        if c.live == 0 {
            self.chunks.remove(i);
            if let Some(j) = i.checked_sub(1) {
                self.merge(j);
            }
            return;
        }
        if 2 * c.live < c.at.len() {
            c.compact();
        }
        if !i.checked_sub(1).is_some_and(|j| self.merge(j)) {
            self.merge(i);
        }
    }

    /// Merges chunk `j + 1` into chunk `j` when they hold few enough entries.
    fn merge(&mut self, j: usize) -> bool {
        let Some(next) = self.chunks.get(j + 1) else {
            return false;
        };
        let Some(c) = self.chunks.get(j) else {
            return false;
        };
        if c.live + next.live > CHUNK / 2 {
            return false;
        }
        let Some(next) = self.chunks.remove(j + 1) else {
            return false;
        };
        let merged = self.chunks.get_mut(j).is_some_and(|c| c.absorb(&next));
        if !merged {
            self.chunks.insert(j + 1, next);
        }
        merged
    }

    /// Flows numbered and not released.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.live).sum::<usize>() + self.odd.len()
    }

    /// Bytes held on the heap.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
            + self
                .chunks
                .iter()
                .map(|c| c.at.capacity() * std::mem::size_of::<(u32, u32)>())
                .sum::<usize>()
            + self.odd.capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::tcp::NUMBERING_BYTES;
    use std::collections::BTreeMap;

    fn rng(mut x: u64) -> impl FnMut() -> u64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    /// What the chunks hold is what a map would, whatever the order of removals.
    #[test]
    fn matches_a_map() {
        for seed in 1..20u64 {
            let mut rnd = rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut n = Numbering::default();
            let mut model = BTreeMap::new();
            let (mut ordinal, mut id) = (0u64, 0u64);
            for _ in 0..20_000 {
                if !rnd().is_multiple_of(3) {
                    // Ordinals grow by 1 to a few; sometimes by more than a chunk spans.
                    ordinal += match rnd() % 100 {
                        0 => 1 << 32,
                        r => 1 + r % 4,
                    };
                    id += 1 + rnd() % 2;
                    n.insert(ordinal, id);
                    model.insert(ordinal, id);
                } else if !model.is_empty() {
                    // Mostly the oldest, as floods end, else any.
                    let k = if rnd().is_multiple_of(2) {
                        *model.keys().next().unwrap()
                    } else {
                        let skip = rnd() as usize % model.len();
                        *model.keys().nth(skip).unwrap()
                    };
                    assert_eq!(n.remove(k), model.remove(&k));
                    assert_eq!(n.remove(k), None);
                }
                assert_eq!(n.remove(ordinal + 1), None);
            }
            assert_eq!(n.len(), model.len());
            for (k, v) in model {
                assert_eq!(n.remove(k), Some(v));
            }
            assert!(n.chunks.is_empty());
        }
    }

    /// A pair out of order (no run makes one) is still found.
    #[test]
    fn out_of_order_pairs_are_kept_aside() {
        let mut n = Numbering::default();
        n.insert(10, 1);
        n.insert(5, 2);
        n.insert(10, 3);
        n.insert(11, 4);
        assert_eq!(n.remove(5), Some(2));
        assert_eq!(n.remove(11), Some(4));
        assert_eq!(n.remove(10), Some(1));
        assert_eq!(n.remove(10), Some(3));
        assert_eq!(n.len(), 0);
    }

    /// A flood: every packet begins a flow, and all of them are open at once.
    #[test]
    fn open_flows_cost_eight_bytes_and_a_little() {
        let mut n = Numbering::default();
        for i in 1..=1_000_000u64 {
            n.insert(i, i);
        }
        let per_flow = n.heap_bytes() as f64 / 1e6;
        assert!(per_flow < 8.5, "{per_flow} bytes a flow");
    }

    /// Memory follows the flows still numbered, not the flows ever numbered, and stays
    /// within what the memory cap charges each flow: here the first `keep` flows of
    /// every chunk's worth stay open for good, and each of the others ends when the
    /// `lag`-th flow after it begins.
    #[test]
    fn memory_follows_open_flows() {
        let quarter = CHUNK as u64 / 4;
        let patterns = [
            (1, 0),
            (2, 300),
            (quarter, 5),
            (quarter + 1, 0),
            (quarter + 1, 4 * CHUNK),
            (2 * quarter + 1, 17),
        ];
        for (keep, lag) in patterns {
            let mut n = Numbering::default();
            let (mut open, mut most) = (0usize, 0usize);
            let mut ending = VecDeque::new();
            for i in 1..=300_000u64 {
                n.insert(i, i + 7);
                open += 1;
                if i % CHUNK as u64 >= keep {
                    ending.push_back(i);
                }
                most = most.max(open);
                while ending.len() > lag {
                    let k = ending.pop_front().unwrap();
                    assert_eq!(n.remove(k), Some(k + 7));
                    open -= 1;
                }
                assert!(
                    n.heap_bytes() <= NUMBERING_BYTES * most + 2 * CHUNK * 8,
                    "keep {keep}, lag {lag}: {} bytes for {open} flows",
                    n.heap_bytes()
                );
            }
            assert_eq!(n.len(), open);
        }
    }
}
