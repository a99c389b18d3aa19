//! Keyed per-flow storage that never moves its entries, ordered by recency, with a
//! memory budget: the building blocks of the flow tables (TCP flows, closed-connection
//! tombstones; any other transport's table can use the same).
//!
//! Entries live in a paged slab: a page is allocated once at its full size and never
//! grows, so growing the table allocates a new page and moves nothing. The key index is
//! a hash table of 4-byte slot numbers. Two intrusive doubly linked lists run through the
//! slots: *recency* (every entry, least recently touched first) and *marked* (entries
//! the owner flagged, in the order they were flagged). Every operation is O(1) (the
//! index amortised), so ending the least recently active entry never needs a sort.

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::hash::{BuildHasher, Hash};

/// Slots per slab page.
const PAGE: usize = 4096;

/// No slot.
const NIL: u32 = u32::MAX;

/// A slot number: stable for as long as its entry stays in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(u32);

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: u32,
    next: u32,
}

const UNLINKED: Link = Link {
    prev: NIL,
    next: NIL,
};

/// Not a slot either: the `prev` of a node's marked link while it is off the marked
/// list (a flag of its own would cost the node 8 bytes of padding).
const OFF_LIST: u32 = u32::MAX - 1;

const UNMARKED: Link = Link {
    prev: OFF_LIST,
    next: NIL,
};

#[derive(Debug)]
struct Node<K, V> {
    key: K,
    value: V,
    recency: Link,
    /// [`UNMARKED`] while off the marked list.
    marked: Link,
}

impl<K, V> Node<K, V> {
    fn on_marked(&self) -> bool {
        self.marked.prev != OFF_LIST
    }
}

#[derive(Debug)]
enum Cell<K, V> {
    Used(Node<K, V>),
    /// A free slot, chained to the next free one.
    Free(u32),
}

/// Both ends of an intrusive list.
#[derive(Clone, Copy, Debug)]
struct Ends {
    head: u32,
    tail: u32,
}

const EMPTY: Ends = Ends {
    head: NIL,
    tail: NIL,
};

/// Which of the two lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum List {
    Recency,
    Marked,
}

/// A map from `K` to `V` whose entries never move, with recency order and a marked list.
///
/// Invariant: every `Used` cell is in the index and on the recency list exactly once; it is
/// on the marked list exactly when its `on_marked()` says so; `Free` cells form one chain from
/// `free`; `len` counts `Used` cells.
#[derive(Debug)]
pub struct Table<K, V> {
    /// Slot numbers, each with the low half of its key's hash: growing the index
    /// rehashes from these alone, never reading a key back from the slab.
    index: HashTable<(u32, u32)>,
    pages: Vec<Vec<Cell<K, V>>>,
    free: u32,
    len: usize,
    recency: Ends,
    marked: Ends,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Table {
            index: HashTable::new(),
            pages: Vec::new(),
            free: NIL,
            len: 0,
            recency: EMPTY,
            marked: EMPTY,
        }
    }
}

/// The 32 bits of a key's hash the index keeps.
fn hash32<K: Hash>(k: &K) -> u32 {
    let h = FxBuildHasher.hash_one(k);
    (h ^ (h >> 32)) as u32
}

/// The index's hash of a key from its kept 32 bits (the table's control bytes take
/// the top 7 bits, its bucket the low ones).
fn spread(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(h)
}

fn split(i: u32) -> (usize, usize) {
    let i = i as usize;
    (i / PAGE, i % PAGE)
}

impl<K: Hash + Eq, V> Table<K, V> {
    /// Bytes one entry costs in the table: its slot and its share of the index (at the
    /// index's lowest load factor).
    pub const ENTRY_BYTES: usize = std::mem::size_of::<Cell<K, V>>() + 2 * 8 / 7 * 9;

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn cell(&self, i: u32) -> Option<&Cell<K, V>> {
        let (p, o) = split(i);
        self.pages.get(p)?.get(o)
    }

    fn cell_mut(&mut self, i: u32) -> Option<&mut Cell<K, V>> {
        let (p, o) = split(i);
        self.pages.get_mut(p)?.get_mut(o)
    }

    fn node(&self, i: u32) -> Option<&Node<K, V>> {
        match self.cell(i)? {
            Cell::Used(n) => Some(n),
            Cell::Free(_) => None,
        }
    }

    fn node_mut(&mut self, i: u32) -> Option<&mut Node<K, V>> {
        match self.cell_mut(i)? {
            Cell::Used(n) => Some(n),
            Cell::Free(_) => None,
        }
    }

    /// The slot holding `key`.
    pub fn find(&self, key: &K) -> Option<Slot> {
        let pages = &self.pages;
        let at = |i: u32| {
            let (p, o) = split(i);
            match pages.get(p).and_then(|pg| pg.get(o)) {
                Some(Cell::Used(n)) => Some(&n.key),
                _ => None,
            }
        };
        let h = hash32(key);
        self.index
            .find(spread(h), |&(i, ih)| ih == h && at(i) == Some(key))
            .map(|&(i, _)| Slot(i))
    }

    pub fn get(&self, s: Slot) -> Option<&V> {
        self.node(s.0).map(|n| &n.value)
    }

    pub fn get_mut(&mut self, s: Slot) -> Option<&mut V> {
        self.node_mut(s.0).map(|n| &mut n.value)
    }

    pub fn key(&self, s: Slot) -> Option<&K> {
        self.node(s.0).map(|n| &n.key)
    }

    /// Adds an entry for a key not in the table, as the most recently touched. Returns
    /// `None` only when the table already holds 2^32 - 2 entries.
    pub fn insert(&mut self, key: K, value: V) -> Option<Slot> {
        let h = hash32(&key);
        let node = Node {
            key,
            value,
            recency: UNLINKED,
            marked: UNMARKED,
        };
        let i = if self.free != NIL {
            let i = self.free;
            let cell = self.cell_mut(i)?;
            let Cell::Free(next) = *cell else {
                return None;
            };
            *cell = Cell::Used(node);
            self.free = next;
            i
        } else {
            if self.pages.last().is_none_or(|pg| pg.len() >= PAGE) {
                self.pages.push(Vec::with_capacity(PAGE));
            }
            let full = (self.pages.len() - 1) * PAGE;
            let page = self.pages.last_mut()?;
            let i = u32::try_from(full + page.len())
                .ok()
                .filter(|&i| i < OFF_LIST)?;
            page.push(Cell::Used(node));
            i
        };
        self.index
            .insert_unique(spread(h), (i, h), |&(_, jh)| spread(jh));
        self.len += 1;
        self.push_back(List::Recency, i);
        Some(Slot(i))
    }

    /// Takes an entry out of the table.
    pub fn remove(&mut self, s: Slot) -> Option<(K, V)> {
        let h = hash32(&self.node(s.0)?.key);
        if let Ok(e) = self.index.find_entry(spread(h), |&(i, _)| i == s.0) {
            e.remove();
        }
        self.unlink(List::Recency, s.0);
        self.unlink(List::Marked, s.0);
        let free = self.free;
        let cell = std::mem::replace(self.cell_mut(s.0)?, Cell::Free(free));
        self.free = s.0;
        self.len -= 1;
        match cell {
            Cell::Used(n) => Some((n.key, n.value)),
            Cell::Free(_) => None,
        }
    }

    /// Forgets every key, for when every entry is about to be removed: slots stay
    /// valid and removal skips the index (one probe into cold memory per entry
    /// saved), but `find` finds nothing any more.
    pub fn unindex(&mut self) {
        self.index = HashTable::new();
    }

    /// Makes the entry the most recently touched.
    pub fn touch(&mut self, s: Slot) {
        if self.recency.tail != s.0 && self.node(s.0).is_some() {
            self.unlink(List::Recency, s.0);
            self.push_back(List::Recency, s.0);
        }
    }

    /// The least recently touched entry.
    pub fn oldest(&self) -> Option<Slot> {
        (self.recency.head != NIL).then_some(Slot(self.recency.head))
    }

    /// The entry touched after `s` (towards the most recent).
    pub fn newer(&self, s: Slot) -> Option<Slot> {
        let n = self.node(s.0)?.recency.next;
        (n != NIL).then_some(Slot(n))
    }

    /// Puts the entry on the marked list (at its end) or takes it off.
    pub fn set_marked(&mut self, s: Slot, on: bool) {
        let Some(node) = self.node(s.0) else {
            return;
        };
        match (node.on_marked(), on) {
            (false, true) => self.push_back(List::Marked, s.0),
            (true, false) => self.unlink(List::Marked, s.0),
            _ => {}
        }
    }

    /// The entry marked longest ago.
    pub fn first_marked(&self) -> Option<Slot> {
        (self.marked.head != NIL).then_some(Slot(self.marked.head))
    }

    /// Every slot in use, in slot order (not recency).
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.pages
            .iter()
            .flatten()
            .zip(0u32..)
            .filter(|(c, _)| matches!(c, Cell::Used(_)))
            .map(|(_, i)| Slot(i))
    }

    /// Every slot in use, in the order of a number each entry has (its `id`, say;
    /// equal numbers in slot order). Sorting takes 8 bytes an entry while the numbers
    /// lie within 2^31 of the first entry's, else 16.
    pub fn slots_by(&self, number: impl Fn(&V) -> u64) -> SlotsBy {
        let used = self.pages.iter().flatten().zip(0u32..);
        let entries = used.filter_map(|(c, i)| match c {
            Cell::Used(n) => Some((number(&n.value), i)),
            Cell::Free(_) => None,
        });
        let mut base = None;
        let mut near = Vec::with_capacity(self.len);
        for (k, i) in entries.clone() {
            let b = *base.get_or_insert(k.wrapping_sub(1 << 31));
            match u32::try_from(k.wrapping_sub(b)) {
                Ok(d) => near.push((u64::from(d) << 32) | u64::from(i)),
                Err(_) => {
                    drop(near);
                    let mut far: Vec<(u64, u32)> = entries.collect();
                    far.sort_unstable();
                    return SlotsBy::Far(far.into_iter());
                }
            }
        }
        near.sort_unstable();
        SlotsBy::Near(near.into_iter())
    }

    fn ends(&mut self, l: List) -> &mut Ends {
        match l {
            List::Recency => &mut self.recency,
            List::Marked => &mut self.marked,
        }
    }

    fn link_mut(&mut self, l: List, i: u32) -> Option<&mut Link> {
        let n = self.node_mut(i)?;
        match l {
            List::Recency => Some(&mut n.recency),
            List::Marked if n.on_marked() => Some(&mut n.marked),
            List::Marked => None,
        }
    }

    fn push_back(&mut self, l: List, i: u32) {
        let tail = self.ends(l).tail;
        let Some(n) = self.node_mut(i) else {
            return;
        };
        let link = Link {
            prev: tail,
            next: NIL,
        };
        match l {
            List::Recency => n.recency = link,
            List::Marked => n.marked = link,
        }
        if let Some(t) = self.link_mut(l, tail) {
            t.next = i;
        }
        let ends = self.ends(l);
        if ends.head == NIL {
            ends.head = i;
        }
        ends.tail = i;
    }

    fn unlink(&mut self, l: List, i: u32) {
        let Some(link) = self.link_mut(l, i).map(|k| *k) else {
            return;
        };
        match self.link_mut(l, link.prev) {
            Some(p) => p.next = link.next,
            None => self.ends(l).head = link.next,
        }
        match self.link_mut(l, link.next) {
            Some(n) => n.prev = link.prev,
            None => self.ends(l).tail = link.prev,
        }
        if let Some(n) = self.node_mut(i) {
            match l {
                List::Recency => n.recency = UNLINKED,
                List::Marked => n.marked = UNMARKED,
            }
        }
    }
}

/// Slots in order (see [`Table::slots_by`]).
#[derive(Debug)]
pub enum SlotsBy {
    /// Each the number's distance from a base (high half) and the slot (low half).
    Near(std::vec::IntoIter<u64>),
    /// Each the number and the slot.
    Far(std::vec::IntoIter<(u64, u32)>),
}

impl Iterator for SlotsBy {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        match self {
            SlotsBy::Near(v) => v.next().map(|x| Slot(x as u32)),
            SlotsBy::Far(v) => v.next().map(|(_, i)| Slot(i)),
        }
    }
}

/// A memory budget: bytes spent against a cap, with the high-water mark.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    cap: usize,
    used: usize,
    peak: usize,
}

impl Budget {
    pub fn new(cap: usize) -> Self {
        Budget {
            cap,
            used: 0,
            peak: 0,
        }
    }

    pub fn charge(&mut self, n: usize) {
        self.used = self.used.saturating_add(n);
        self.peak = self.peak.max(self.used);
    }

    pub fn release(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }

    /// Moves a charge from `old` to `new` bytes.
    pub fn recharge(&mut self, old: usize, new: usize) {
        if new >= old {
            self.charge(new - old);
        } else {
            self.release(old - new);
        }
    }

    pub fn over(&self) -> bool {
        self.used > self.cap
    }

    pub fn used(&self) -> usize {
        self.used
    }

    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn cap(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, VecDeque};

    fn recency<V>(t: &Table<u64, V>) -> Vec<u64> {
        let mut out = Vec::new();
        let mut s = t.oldest();
        while let Some(x) = s {
            out.push(*t.key(x).unwrap());
            s = t.newer(x);
        }
        out
    }

    #[test]
    fn unindexed_entries_are_still_removed_by_slot() {
        let mut t: Table<u64, u64> = Table::default();
        let slots: Vec<Slot> = (0..10_000).map(|k| t.insert(k, k * 2).unwrap()).collect();
        t.unindex();
        assert_eq!(t.find(&5), None);
        for (k, s) in slots.into_iter().enumerate().rev() {
            assert_eq!(t.remove(s), Some((k as u64, k as u64 * 2)));
        }
        assert!(t.is_empty());
        assert_eq!(t.oldest(), None);
    }

    #[test]
    fn insert_find_remove() {
        let mut t: Table<u64, String> = Table::default();
        let a = t.insert(1, "a".into()).unwrap();
        let b = t.insert(2, "b".into()).unwrap();
        assert_eq!(t.find(&1), Some(a));
        assert_eq!(t.find(&2), Some(b));
        assert_eq!(t.find(&3), None);
        assert_eq!(t.get(b).map(String::as_str), Some("b"));
        assert_eq!(t.remove(a), Some((1, "a".to_string())));
        assert_eq!(t.find(&1), None);
        assert_eq!(t.get(a), None);
        assert_eq!(t.remove(a), None);
        assert_eq!(t.len(), 1);
        // The freed slot is reused.
        assert_eq!(t.insert(3, "c".into()), Some(a));
    }

    #[test]
    fn recency_order_follows_touches() {
        let mut t: Table<u64, ()> = Table::default();
        let s: Vec<Slot> = (0..5).map(|k| t.insert(k, ()).unwrap()).collect();
        assert_eq!(recency(&t), [0, 1, 2, 3, 4]);
        t.touch(s[0]);
        t.touch(s[2]);
        t.touch(s[2]);
        assert_eq!(recency(&t), [1, 3, 4, 0, 2]);
        t.remove(s[4]);
        t.remove(s[1]);
        assert_eq!(recency(&t), [3, 0, 2]);
        assert_eq!(t.oldest(), Some(s[3]));
    }

    #[test]
    fn marked_list_keeps_marking_order() {
        let mut t: Table<u64, ()> = Table::default();
        let s: Vec<Slot> = (0..4).map(|k| t.insert(k, ()).unwrap()).collect();
        assert_eq!(t.first_marked(), None);
        t.set_marked(s[2], true);
        t.set_marked(s[0], true);
        t.set_marked(s[2], true);
        assert_eq!(t.first_marked(), Some(s[2]));
        t.set_marked(s[2], false);
        assert_eq!(t.first_marked(), Some(s[0]));
        t.remove(s[0]);
        assert_eq!(t.first_marked(), None);
    }

    #[test]
    fn entries_never_move_when_the_table_grows() {
        let mut t: Table<u64, [u8; 32]> = Table::default();
        let first = t.insert(0, [7; 32]).unwrap();
        let at = std::ptr::from_ref(t.get(first).unwrap());
        for k in 1..3 * PAGE as u64 {
            t.insert(k, [0; 32]);
        }
        assert!(std::ptr::eq(at, t.get(first).unwrap()));
        assert_eq!(t.slots().count(), 3 * PAGE);
    }

    /// Random operations against a model: a map plus a recency queue.
    #[test]
    fn matches_a_model() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut t: Table<u64, u64> = Table::default();
        let mut model: BTreeMap<u64, u64> = BTreeMap::new();
        let mut order: VecDeque<u64> = VecDeque::new();
        let mut marked: VecDeque<u64> = VecDeque::new();
        for step in 0..20_000u64 {
            let k = rnd() % 300;
            match rnd() % 5 {
                0 | 1 => {
                    if let Some(s) = t.find(&k) {
                        t.touch(s);
                        order.retain(|&x| x != k);
                        order.push_back(k);
                    } else {
                        t.insert(k, step);
                        model.insert(k, step);
                        order.push_back(k);
                    }
                }
                2 => {
                    if let Some(s) = t.find(&k) {
                        assert_eq!(t.remove(s), Some((k, model[&k])));
                        model.remove(&k);
                        order.retain(|&x| x != k);
                        marked.retain(|&x| x != k);
                    }
                }
                3 => {
                    if let Some(s) = t.find(&k) {
                        let on = rnd() % 2 == 0;
                        t.set_marked(s, on);
                        if on && !marked.contains(&k) {
                            marked.push_back(k);
                        } else if !on {
                            marked.retain(|&x| x != k);
                        }
                    }
                }
                _ => {
                    if let Some(s) = t.oldest() {
                        let k = *t.key(s).unwrap();
                        assert_eq!(order.pop_front(), Some(k));
                        t.remove(s);
                        model.remove(&k);
                        marked.retain(|&x| x != k);
                    }
                }
            }
            assert_eq!(t.len(), model.len());
            assert_eq!(
                t.first_marked().map(|s| *t.key(s).unwrap()),
                marked.front().copied()
            );
        }
        assert_eq!(recency(&t), Vec::from(order));
    }

    /// Slots come in the order of the entries' numbers, ties in slot order, whether
    /// the numbers lie close together or far apart.
    #[test]
    fn slots_by_number() {
        for spread in [1u64, 1 << 20, 1 << 31, 1 << 40, u64::MAX / 8] {
            let mut t: Table<u64, u64> = Table::default();
            let mut want = Vec::new();
            for k in 0..2000u64 {
                // Numbers out of insertion order, and each twice.
                let n = (k * 7919 % 1000).wrapping_mul(spread);
                want.push((n, t.insert(k, n).unwrap()));
            }
            // A freed slot is reused: slot order is not insertion order.
            let (n, s) = want.remove(3);
            assert_eq!(t.remove(s), Some((3, n)));
            want.push((5, t.insert(5000, 5).unwrap()));
            want.sort();
            let got: Vec<Slot> = t.slots_by(|&n| n).collect();
            let want: Vec<Slot> = want.into_iter().map(|(_, s)| s).collect();
            assert_eq!(got, want, "spread {spread}");
            assert_eq!(
                matches!(t.slots_by(|&n| n), SlotsBy::Near(_)),
                spread < 1 << 22,
                "spread {spread}"
            );
        }
    }

    #[test]
    fn budget_tracks_use_and_peak() {
        let mut b = Budget::new(100);
        b.charge(60);
        b.charge(50);
        assert!(b.over());
        b.recharge(50, 10);
        assert_eq!(b.used(), 70);
        assert!(!b.over());
        b.release(100);
        assert_eq!((b.used(), b.peak(), b.cap()), (0, 110, 100));
    }
}
