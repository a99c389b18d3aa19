//! TCP stream reassembly: sequence-number arithmetic and turning one direction's segments into an
//! ordered byte stream with explicit gaps.

use crate::config::StreamLimits;
use std::collections::BTreeMap;

/// How far from the delivery point a sequence number may be before it is treated as garbage.
/// Kept well below the 2^31 serial-number horizon so that wrap-around can never alias into it.
const WINDOW: i64 = 1 << 30;

/// Delivered bytes kept per direction to catch retransmissions that disagree with what was
/// delivered: a conflict this far behind the delivery point (or less) is noted; older bytes
/// are trimmed unchecked.
pub const HISTORY: usize = 4096;

/// First allocation of the history (it grows by doubling up to [`HISTORY`]), so that a short
/// exchange does not hold the whole history.
const HISTORY_MIN: usize = 512;

/// Bytes one buffered run costs beside its bytes (its share of a B-tree node), counted both
/// in the heap estimate and against the out-of-order budget (`max_buffered`).
pub const RUN_OVERHEAD: usize = 64;

/// Serial-number arithmetic on TCP sequence numbers (RFC 1982). The only place u32 sequence math
/// happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// `self + n` in sequence space.
    #[must_use]
    pub fn wrapping_add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }

    /// `self` advanced by a (possibly > 4 GiB) stream offset.
    #[must_use]
    pub fn advance(self, n: u64) -> SeqNum {
        // Only the low 32 bits matter: sequence space is mod 2^32.
        let low = u32::try_from(n & u64::from(u32::MAX)).unwrap_or_default();
        self.wrapping_add(low)
    }

    /// Signed serial distance `self - other`, in `(-2^31, 2^31]`.
    #[must_use]
    pub fn diff(self, other: SeqNum) -> i64 {
        let d = i64::from(self.0.wrapping_sub(other.0));
        if d <= 1 << 31 { d } else { d - (1 << 32) }
    }
}

/// What the stream hands to its consumer, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Stream bytes; never empty.
    Data(&'a [u8]),
    /// This many stream bytes were never captured (or were given up on); never zero.
    Gap(u64),
}

/// Anomalies the stream noticed (become notes on the flow).
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamNotes {
    /// Two copies of the same stream bytes disagreed; the first one was kept.
    pub conflicting_overlap: bool,
    /// A buffering cap forced a hole to be declared a gap early.
    pub buffer_cap_hit: bool,
    /// At least one `Chunk::Gap` was delivered.
    pub gap: bool,
    /// A segment or FIN was absurdly far from the delivery point and was ignored.
    pub out_of_window: bool,
}

/// One buffered run of contiguous out-of-order bytes, held at the end of its vector with
/// room in front: a piece that arrives just before the run (data sent backwards) is
/// prepended in place, and the room doubles when it runs out, so prepending costs O(1)
/// per byte amortised, as appending does.
#[derive(Debug, Clone, Default)]
struct Run {
    buf: Vec<u8>,
    /// Where the run's bytes start in `buf`.
    head: usize,
}

impl Run {
    fn new(piece: &[u8]) -> Run {
        Run {
            buf: piece.to_vec(),
            head: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        self.buf.get(self.head..).unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.head)
    }

    fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn append(&mut self, piece: &[u8]) {
        self.buf.extend_from_slice(piece);
    }

    fn prepend(&mut self, piece: &[u8]) {
        let n = piece.len();
        if n <= self.head {
            let at = self.head - n;
            if let Some(dst) = self.buf.get_mut(at..self.head) {
                dst.copy_from_slice(piece);
                self.head = at;
            }
            return;
        }
        let len = self.len();
        // Room in front as large as the run will be: the next prepends of the same
        // size fit without moving it again.
        let room = len.saturating_add(n).max(16);
        let mut buf = Vec::with_capacity(room.saturating_add(n).saturating_add(len));
        buf.resize(room, 0);
        buf.extend_from_slice(piece);
        buf.extend_from_slice(self.bytes());
        *self = Run { buf, head: room };
    }
}

/// The last delivered bytes of a stream (up to [`HISTORY`]), to compare retransmissions
/// with. A ring once full; `valid` counts the bytes delivered since the last gap (a gap has
/// no bytes to compare against).
///
/// Invariant: `valid <= buf.len() <= HISTORY`; while `buf` is not full `pos` is 0; the byte
/// `k` positions behind the delivery point (`1 <= k <= valid`) is at
/// `buf[(pos + buf.len() - k) % buf.len()]`.
#[derive(Debug, Clone, Default)]
struct History {
    buf: Vec<u8>,
    pos: usize,
    valid: usize,
}

impl History {
    fn push(&mut self, bytes: &[u8]) {
        let mut b = bytes
            .get(bytes.len().saturating_sub(HISTORY)..)
            .unwrap_or_default();
        let n = b.len();
        if self.buf.len() < HISTORY {
            let take = (HISTORY - self.buf.len()).min(b.len());
            let want = self.buf.len() + take;
            if want > self.buf.capacity() {
                let cap = want
                    .max(self.buf.capacity().saturating_mul(2))
                    .clamp(HISTORY_MIN, HISTORY);
                self.buf.reserve_exact(cap - self.buf.len());
            }
            let (now, rest) = b.split_at(take);
            self.buf.extend_from_slice(now);
            b = rest;
        }
        while !b.is_empty() {
            let Some(dst) = self.buf.get_mut(self.pos..) else {
                break;
            };
            let k = dst.len().min(b.len());
            let (now, rest) = b.split_at(k);
            if let Some(d) = dst.get_mut(..k) {
                d.copy_from_slice(now);
            }
            b = rest;
            self.pos = (self.pos + k) % self.buf.len().max(1);
        }
        self.valid = (self.valid + n).min(self.buf.len());
    }

    /// Whether `old`, whose first byte lies `back` bytes behind the delivery point, agrees
    /// with what was delivered there (as far as it is still kept).
    fn agrees(&self, back: u64, old: &[u8]) -> bool {
        let valid = len64(self.valid);
        // Bytes older than the history cannot be checked; skip them.
        let skip = back.saturating_sub(valid);
        let cmp = old.get(idx(skip)..).unwrap_or_default();
        if cmp.is_empty() {
            return true;
        }
        let len = self.buf.len();
        let from = idx(back - skip);
        let start = (self.pos + len - from) % len;
        let first = self.buf.get(start..).unwrap_or_default();
        let k = first.len().min(cmp.len());
        let (a, b) = cmp.split_at(k);
        first.get(..k) == Some(a) && self.buf.get(..b.len()) == Some(b)
    }

    fn forget(&mut self) {
        self.valid = 0;
    }
}

/// One direction of a TCP connection.
///
/// Invariant, between calls:
/// - `next` is the stream offset of the first byte not yet handed on; it never decreases.
/// - every key of `ooo` is `> next`; runs are non-empty and never overlap, touch or share a
///   start (adjacent pieces are merged into one run); `buffered` is the sum of their lengths,
///   and `buffered + RUN_OVERHEAD * ooo.len() <= limits.max_buffered` (so both the bytes and
///   the number of runs are bounded by construction); `heap` is the sum of their capacities
///   plus `RUN_OVERHEAD` each, plus the history's capacity.
/// - `history` holds the data at offsets `next - history.valid .. next`.
/// - `base` is `None` until the stream starts; afterwards stream offset `o` is sequence number
///   `base.advance(o)`. Offsets are u64 so streams longer than 4 GiB work; sequence numbers are
///   unwrapped relative to the delivery point, never to `base`.
#[derive(Debug, Clone)]
pub struct Stream {
    limits: StreamLimits,
    base: Option<SeqNum>,
    next: u64,
    ooo: BTreeMap<u64, Run>,
    buffered: usize,
    /// Heap held: run capacities plus `RUN_OVERHEAD` per run, and the history's capacity.
    heap: usize,
    history: History,
    fin: Option<u64>,
    notes: StreamNotes,
    bypassed: bool,
    bypassed_bytes: u64,
}

fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Saturates so that an impossible distance yields an out-of-range index (`get` → `None`)
/// instead of a wrong one.
fn idx(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// What buffering a piece of data would change, worked out before anything is stored.
#[derive(Debug, Default)]
struct Plan {
    /// Bytes not buffered yet.
    need: usize,
    /// Runs after storing them (new runs, minus runs joined into one).
    runs: usize,
    /// Some overlapping bytes differ from those buffered.
    conflict: bool,
}

impl Stream {
    /// A stream that has seen nothing yet.
    #[must_use]
    pub fn new(limits: StreamLimits) -> Self {
        Stream {
            limits,
            base: None,
            next: 0,
            ooo: BTreeMap::new(),
            buffered: 0,
            heap: 0,
            history: History::default(),
            fin: None,
            notes: StreamNotes::default(),
            bypassed: false,
            bypassed_bytes: 0,
        }
    }

    /// A SYN (or SYN-ACK) carrying ISN `isn`: stream offset 0 is isn+1. A SYN's own payload (TCP
    /// Fast Open) is passed by the caller as a separate `on_segment(isn+1, payload)` call.
    ///
    /// Ignored once the stream has started: a retransmitted SYN must not move the origin, and a
    /// SYN seen after data (capture reordering) cannot un-deliver what was already handed on.
    pub fn on_syn(&mut self, isn: SeqNum) {
        if self.base.is_none() {
            self.base = Some(isn.wrapping_add(1));
        }
    }

    /// A segment with payload starting at `seq`. If no SYN was seen and this is the first
    /// non-empty segment, the stream starts at `seq` (mid-stream pickup).
    ///
    /// In-order data with nothing buffered is handed to `sink` as a borrowed slice of `payload`
    /// without copying or allocating. Data before the delivery point is trimmed (first data
    /// wins); out-of-order data is copied into the buffer until the hole fills. When the caps
    /// would be exceeded, the oldest hole becomes a `Gap` and whatever became in-order is
    /// delivered (note `buffer_cap_hit`). Overlaps keep the first copy and note
    /// `conflicting_overlap` if bytes differ, checking all buffered data and the last
    /// [`HISTORY`] delivered bytes. Segments more than 1 GiB ahead or behind are ignored
    /// (`out_of_window`).
    pub fn on_segment(&mut self, seq: SeqNum, payload: &[u8], sink: &mut dyn FnMut(Chunk<'_>)) {
        if payload.is_empty() {
            return;
        }
        if self.bypassed {
            self.bypassed_bytes = self.bypassed_bytes.saturating_add(len64(payload.len()));
            return;
        }
        let base = *self.base.get_or_insert(seq);
        let rel = seq.diff(base.advance(self.next));
        if !(-WINDOW..=WINDOW).contains(&rel) {
            self.notes.out_of_window = true;
            return;
        }
        let (payload, off) = if rel < 0 {
            (self.trim_delivered(rel.unsigned_abs(), payload), self.next)
        } else {
            (payload, self.next.saturating_add(rel.unsigned_abs()))
        };
        self.ingest(off, payload, sink);
    }

    /// FIN at `fin_seq` (the FIN's own sequence number: the FIN segment's seq plus its payload
    /// length). Recorded once (a retransmitted or contradictory later FIN does not move it);
    /// once all data up to it is delivered the stream is finished.
    pub fn on_fin(&mut self, fin_seq: SeqNum) {
        if self.bypassed {
            // Data is no longer tracked, so the FIN itself is all that matters.
            self.fin.get_or_insert(self.next);
            return;
        }
        let base = *self.base.get_or_insert(fin_seq);
        let rel = fin_seq.diff(base.advance(self.next));
        if !(-WINDOW..=WINDOW).contains(&rel) {
            self.notes.out_of_window = true;
            return;
        }
        if let Some(at) = self.next.checked_add_signed(rel) {
            self.fin.get_or_insert(at);
        }
    }

    /// The peer acknowledged everything before `ack`. Bytes between the delivery point and `ack`
    /// were sent but never captured: deliver them as gaps, interleaved with any buffered data
    /// that becomes in-order, until the delivery point reaches `ack` (clamped to the FIN, whose
    /// acknowledgement covers a sequence number that carries no byte). Acks for streams that
    /// have not started, acks at or behind the delivery point, and acks more than 1 GiB ahead
    /// are ignored.
    pub fn on_peer_ack(&mut self, ack: SeqNum, sink: &mut dyn FnMut(Chunk<'_>)) {
        if self.bypassed {
            return;
        }
        let Some(base) = self.base else {
            return;
        };
        let rel = ack.diff(base.advance(self.next));
        if rel <= 0 || rel > WINDOW {
            return;
        }
        let mut target = self.next.saturating_add(rel.unsigned_abs());
        if let Some(fin) = self.fin {
            target = target.min(fin.max(self.next));
        }
        while self.next < target {
            let stop = self.first_buffered().map_or(target, |s| s.min(target));
            self.deliver_gap(stop.saturating_sub(self.next), sink);
            self.drain(&[], sink);
        }
    }

    /// End of flow: deliver all buffered data in order, with `Gap` chunks for the holes before
    /// and between them. Nothing is invented past the last buffered byte, even if a FIN lies
    /// beyond it.
    pub fn flush(&mut self, sink: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(first) = self.first_buffered() {
            self.deliver_gap(first.saturating_sub(self.next), sink);
            self.drain(&[], sink);
        }
    }

    /// Stop reassembling (the analyzer no longer needs data): drop buffers; later segments are
    /// only counted (see [`Stream::bypassed_bytes`]), acks are ignored, and a later FIN finishes
    /// the stream immediately.
    pub fn bypass(&mut self) {
        self.bypassed = true;
        self.ooo = BTreeMap::new();
        self.buffered = 0;
        self.heap = 0;
        self.history = History::default();
    }

    /// Memory pressure: hand on everything buffered now (holes as gaps, note
    /// `buffer_cap_hit`) and never buffer out-of-order data again; from now on a segment
    /// beyond a hole turns the hole into a gap at once, as the per-direction cap does.
    pub fn stop_buffering(&mut self, sink: &mut dyn FnMut(Chunk<'_>)) {
        self.limits.max_buffered = 0;
        if !self.ooo.is_empty() {
            self.notes.buffer_cap_hit = true;
            self.flush(sink);
        }
        self.ooo = BTreeMap::new();
        self.heap = self.history.buf.capacity();
    }

    /// Heap bytes this stream holds (buffered runs with their capacity and overhead, and the
    /// history of delivered bytes).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.heap
    }

    /// Bytes (data + gaps) handed on so far = stream offset of the next byte.
    #[must_use]
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Out-of-order bytes currently held.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Out-of-order runs currently held (adjacent pieces share one; at most
    /// `max_buffered / (RUN_OVERHEAD + 1)`).
    #[must_use]
    pub fn buffered_segments(&self) -> usize {
        self.ooo.len()
    }

    /// Payload bytes seen after [`Stream::bypass`] (retransmissions included).
    #[must_use]
    pub fn bypassed_bytes(&self) -> u64 {
        self.bypassed_bytes
    }

    /// Anomalies noticed so far.
    #[must_use]
    pub fn notes(&self) -> StreamNotes {
        self.notes
    }

    /// FIN seen and all data before it delivered (or the stream was bypassed).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.fin.is_some_and(|f| self.bypassed || self.next >= f)
    }

    fn first_buffered(&self) -> Option<u64> {
        self.ooo.first_key_value().map(|(&start, _)| start)
    }

    /// `data` starts `back` bytes before the delivery point. Compares the part still in the
    /// history and returns what lies at or after the delivery point.
    fn trim_delivered<'p>(&mut self, back: u64, data: &'p [u8]) -> &'p [u8] {
        let (old, new) = data.split_at(idx(back).min(data.len()));
        if !self.history.agrees(back, old) {
            self.notes.conflicting_overlap = true;
        }
        new
    }

    /// Takes data starting at stream offset `off >= next`.
    fn ingest(&mut self, mut off: u64, mut data: &[u8], sink: &mut dyn FnMut(Chunk<'_>)) {
        while !data.is_empty() {
            if off < self.next {
                // A cap-forced skip just delivered buffered data over part of `data`.
                data = self.trim_delivered(self.next - off, data);
                off = self.next;
            } else if off == self.next {
                data = self.deliver_in_order(data, sink);
                off = self.next;
            } else if self.try_buffer(off, data) {
                return;
            } else {
                self.notes.buffer_cap_hit = true;
                let target = self.first_buffered().map_or(off, |s| s.min(off));
                self.deliver_gap(target.saturating_sub(self.next), sink);
                self.drain(&[], sink);
            }
        }
    }

    /// Delivers `data` (which starts at `next`) straight from the caller's buffer up to the first
    /// buffered run, then drains buffered runs. Returns the undelivered remainder, which then
    /// starts at `next` again.
    fn deliver_in_order<'p>(
        &mut self,
        data: &'p [u8],
        sink: &mut dyn FnMut(Chunk<'_>),
    ) -> &'p [u8] {
        let n = match self.first_buffered() {
            Some(start) => idx(start.saturating_sub(self.next)).min(data.len()),
            None => data.len(),
        };
        let (now, rest) = data.split_at(n);
        self.deliver_data(now, sink);
        self.drain(rest, sink)
    }

    /// Delivers every buffered run that now starts at (or before) `next`. `rest` is new data
    /// starting at `next`; where it overlaps a buffered run the buffered copy arrived first and
    /// wins. Returns the part of `rest` beyond what was delivered.
    fn drain<'p>(&mut self, mut rest: &'p [u8], sink: &mut dyn FnMut(Chunk<'_>)) -> &'p [u8] {
        while let Some(entry) = self.ooo.first_entry()
            && *entry.key() <= self.next
        {
            let start = *entry.key();
            let run = entry.remove();
            self.buffered = self.buffered.saturating_sub(run.len());
            self.heap = self
                .heap
                .saturating_sub(run.capacity().saturating_add(RUN_OVERHEAD));
            let fresh = run
                .bytes()
                .get(idx(self.next - start)..)
                .unwrap_or_default();
            let overlap = fresh.len().min(rest.len());
            if fresh.get(..overlap) != rest.get(..overlap) {
                self.notes.conflicting_overlap = true;
            }
            rest = rest.get(overlap..).unwrap_or_default();
            self.deliver_data(fresh, sink);
        }
        rest
    }

    /// Copies the parts of `data` (at `off > next`) not already buffered, merged with the
    /// runs they touch, unless that would break the cap, in which case nothing is stored and
    /// `false` is returned.
    fn try_buffer(&mut self, off: u64, data: &[u8]) -> bool {
        let plan = self.plan(off, data);
        if plan.conflict {
            self.notes.conflicting_overlap = true;
        }
        let cost = plan
            .runs
            .saturating_mul(RUN_OVERHEAD)
            .saturating_add(self.buffered)
            .saturating_add(plan.need);
        if cost > self.limits.max_buffered {
            return false;
        }
        let end = off.saturating_add(len64(data.len()));
        let mut cursor = off;
        while cursor < end {
            if let Some((&start, run)) = self.ooo.range(..=cursor).next_back() {
                let run_end = start.saturating_add(len64(run.len()));
                if run_end > cursor {
                    cursor = run_end;
                    continue;
                }
            }
            let hi = self
                .ooo
                .range(cursor..)
                .next()
                .map_or(end, |(&s, _)| s.min(end));
            let piece = data
                .get(idx(cursor - off)..idx(hi - off))
                .unwrap_or_default();
            self.store(cursor, piece);
            cursor = hi;
        }
        true
    }

    /// What storing `data` at `off` would need: the bytes not buffered yet, the runs there
    /// would be, and whether the bytes it shares with buffered runs agree.
    fn plan(&self, off: u64, data: &[u8]) -> Plan {
        let end = off.saturating_add(len64(data.len()));
        let mut plan = Plan {
            runs: self.ooo.len(),
            ..Plan::default()
        };
        let mut cursor = off;
        // Whether a run ends exactly at `cursor` (a hole starting there extends it).
        let mut joined = self.run_ends_at(off);
        let from = self
            .ooo
            .range(..off)
            .next_back()
            .map_or(off, |(&start, _)| start);
        for (&start, run) in self.ooo.range(from..end) {
            let run_end = start.saturating_add(len64(run.len()));
            if run_end <= cursor {
                continue;
            }
            if start > cursor {
                // A hole between two runs (or `off` and a run): the run after it absorbs it.
                plan.need = plan.need.saturating_add(idx(start - cursor));
                if joined {
                    plan.runs = plan.runs.saturating_sub(1);
                }
            }
            let lo = start.max(cursor);
            let hi = run_end.min(end);
            let theirs = run.bytes().get(idx(lo - start)..idx(hi - start));
            let ours = data.get(idx(lo - off)..idx(hi - off));
            plan.conflict |= theirs != ours;
            cursor = run_end;
            joined = true;
        }
        if cursor < end {
            plan.need = plan.need.saturating_add(idx(end - cursor));
            match (joined, self.ooo.contains_key(&end)) {
                (false, false) => plan.runs = plan.runs.saturating_add(1),
                (true, true) => plan.runs = plan.runs.saturating_sub(1),
                _ => {}
            }
        }
        plan
    }

    /// Buffers `piece` at `lo`, a hole: it extends the run ending at `lo`, the run starting
    /// where it ends, or both (joining them, the shorter copied into the longer), or starts a
    /// run of its own.
    fn store(&mut self, lo: u64, piece: &[u8]) {
        if piece.is_empty() {
            return;
        }
        let hi = lo.saturating_add(len64(piece.len()));
        let left = self
            .ooo
            .range(..lo)
            .next_back()
            .filter(|&(&s, r)| s.saturating_add(len64(r.len())) == lo)
            .map(|(&s, _)| s);
        let left = left.and_then(|s| Some((s, self.ooo.remove(&s)?)));
        let right = self.ooo.remove(&hi);
        let (at, run, before) = match (left, right) {
            (Some((s, mut l)), Some(mut r)) => {
                // Two runs become one: one overhead less.
                let before = l
                    .capacity()
                    .saturating_add(r.capacity())
                    .saturating_add(RUN_OVERHEAD);
                if l.len() >= r.len() {
                    l.append(piece);
                    l.append(r.bytes());
                    (s, l, before)
                } else {
                    r.prepend(piece);
                    r.prepend(l.bytes());
                    (s, r, before)
                }
            }
            (Some((s, mut l)), None) => {
                let before = l.capacity();
                l.append(piece);
                (s, l, before)
            }
            (None, Some(mut r)) => {
                let before = r.capacity();
                r.prepend(piece);
                (lo, r, before)
            }
            (None, None) => {
                self.heap = self.heap.saturating_add(RUN_OVERHEAD);
                (lo, Run::new(piece), 0)
            }
        };
        self.heap = self
            .heap
            .saturating_sub(before)
            .saturating_add(run.capacity());
        self.ooo.insert(at, run);
        self.buffered = self.buffered.saturating_add(piece.len());
    }

    fn run_ends_at(&self, at: u64) -> bool {
        self.ooo
            .range(..at)
            .next_back()
            .is_some_and(|(&start, run)| start.saturating_add(len64(run.len())) == at)
    }

    fn deliver_data(&mut self, bytes: &[u8], sink: &mut dyn FnMut(Chunk<'_>)) {
        if bytes.is_empty() {
            return;
        }
        sink(Chunk::Data(bytes));
        self.next = self.next.saturating_add(len64(bytes.len()));
        let before = self.history.buf.capacity();
        self.history.push(bytes);
        self.heap = self
            .heap
            .saturating_add(self.history.buf.capacity().saturating_sub(before));
    }

    fn deliver_gap(&mut self, n: u64, sink: &mut dyn FnMut(Chunk<'_>)) {
        if n == 0 {
            return;
        }
        sink(Chunk::Gap(n));
        self.next = self.next.saturating_add(n);
        self.history.forget();
        self.notes.gap = true;
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum C {
        D(Vec<u8>),
        G(u64),
    }

    fn d(b: &[u8]) -> C {
        C::D(b.to_vec())
    }

    fn g(n: u64) -> C {
        C::G(n)
    }

    fn own(c: Chunk<'_>) -> C {
        match c {
            Chunk::Data(b) => {
                assert!(!b.is_empty(), "empty Data chunk");
                C::D(b.to_vec())
            }
            Chunk::Gap(n) => {
                assert!(n > 0, "zero Gap chunk");
                C::G(n)
            }
        }
    }

    /// Offset 0 is sequence number 1000.
    const ISN: u32 = 999;

    fn started() -> Stream {
        started_with(StreamLimits::default())
    }

    fn started_with(limits: StreamLimits) -> Stream {
        let mut s = Stream::new(limits);
        s.on_syn(SeqNum(ISN));
        s
    }

    fn seg(s: &mut Stream, seq: u32, data: &[u8]) -> Vec<C> {
        let mut out = Vec::new();
        s.on_segment(SeqNum(seq), data, &mut |c| out.push(own(c)));
        out
    }

    fn ack(s: &mut Stream, seq: u32) -> Vec<C> {
        let mut out = Vec::new();
        s.on_peer_ack(SeqNum(seq), &mut |c| out.push(own(c)));
        out
    }

    fn flush(s: &mut Stream) -> Vec<C> {
        let mut out = Vec::new();
        s.flush(&mut |c| out.push(own(c)));
        out
    }

    fn no_notes() -> StreamNotes {
        StreamNotes::default()
    }

    #[test]
    fn seqnum_diff_and_wrap() {
        assert_eq!(SeqNum(10).diff(SeqNum(3)), 7);
        assert_eq!(SeqNum(3).diff(SeqNum(10)), -7);
        assert_eq!(SeqNum(5).diff(SeqNum(0xFFFF_FFFB)), 10);
        assert_eq!(SeqNum(0xFFFF_FFFB).diff(SeqNum(5)), -10);
        assert_eq!(SeqNum(0x8000_0000).diff(SeqNum(0)), 1 << 31);
        assert_eq!(SeqNum(0).diff(SeqNum(0x8000_0000)), 1 << 31);
        assert_eq!(SeqNum(0x8000_0001).diff(SeqNum(0)), -((1 << 31) - 1));
        assert_eq!(SeqNum(0xFFFF_FFFF).wrapping_add(2), SeqNum(1));
        assert_eq!(SeqNum(7).advance(5 << 32), SeqNum(7));
        assert_eq!(SeqNum(0xFFFF_FFFF).advance((1 << 32) + 3), SeqNum(2));
    }

    #[test]
    fn limits_default_values() {
        let l = StreamLimits::default();
        assert_eq!(l.max_buffered, 256 * 1024);
    }

    #[test]
    fn in_order() {
        let mut s = started();
        assert_eq!(seg(&mut s, 1000, b"hello"), vec![d(b"hello")]);
        assert_eq!(seg(&mut s, 1005, b" world"), vec![d(b" world")]);
        assert_eq!(s.delivered(), 11);
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.notes(), no_notes());
        assert!(!s.is_finished());
    }

    #[test]
    fn zero_copy_in_order() {
        let mut s = started();
        let payload = b"abcdef".to_vec();
        let mut seen = Vec::new();
        s.on_segment(SeqNum(1000), &payload, &mut |c| {
            if let Chunk::Data(b) = c {
                seen.push((b.as_ptr(), b.len()));
            }
        });
        assert_eq!(seen, vec![(payload.as_ptr(), payload.len())]);
    }

    #[test]
    fn zero_copy_of_new_suffix_and_of_hole_filler() {
        let mut s = started();
        seg(&mut s, 1000, b"abc");
        // Retransmission straddling the delivery point: the fresh suffix is still borrowed.
        let p1 = b"bcdef".to_vec();
        let mut seen = Vec::new();
        s.on_segment(SeqNum(1001), &p1, &mut |c| {
            if let Chunk::Data(b) = c {
                seen.push((b.as_ptr(), b.len()));
            }
        });
        assert_eq!(seen, vec![(p1[2..].as_ptr(), 3)]);
        // A segment filling a hole is borrowed too; only the buffered run after it was copied.
        seg(&mut s, 1009, b"jk");
        let p2 = b"ghi".to_vec();
        let mut seen = Vec::new();
        s.on_segment(SeqNum(1006), &p2, &mut |c| {
            if let Chunk::Data(b) = c {
                seen.push((b.as_ptr(), b.to_vec()));
            }
        });
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (p2.as_ptr(), b"ghi".to_vec()));
        assert_eq!(seen[1].1, b"jk".to_vec());
    }

    #[test]
    fn simple_out_of_order_pair() {
        let mut s = started();
        assert_eq!(seg(&mut s, 1003, b"def"), vec![]);
        assert_eq!(s.buffered(), 3);
        assert_eq!(s.delivered(), 0);
        assert_eq!(seg(&mut s, 1000, b"abc"), vec![d(b"abc"), d(b"def")]);
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.buffered_segments(), 0);
        assert_eq!(s.delivered(), 6);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn retransmission_of_delivered_data() {
        let mut s = started();
        seg(&mut s, 1000, b"abc");
        assert_eq!(seg(&mut s, 1000, b"abc"), vec![]);
        assert_eq!(seg(&mut s, 1001, b"b"), vec![]);
        assert_eq!(s.delivered(), 3);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn retransmission_straddling_delivery_point() {
        let mut s = started();
        seg(&mut s, 1000, b"abc");
        assert_eq!(seg(&mut s, 1001, b"bcdef"), vec![d(b"def")]);
        assert_eq!(s.delivered(), 6);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn partial_overlap_front_of_buffered() {
        let mut s = started();
        seg(&mut s, 1003, b"defgh");
        assert_eq!(seg(&mut s, 1001, b"bcde"), vec![]);
        assert_eq!(s.buffered(), 7);
        // The piece before the run was prepended to it.
        assert_eq!(s.buffered_segments(), 1);
        assert_eq!(seg(&mut s, 1000, b"a"), vec![d(b"a"), d(b"bcdefgh")]);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn partial_overlap_back_of_buffered() {
        let mut s = started();
        seg(&mut s, 1002, b"cde");
        assert_eq!(seg(&mut s, 1004, b"efg"), vec![]);
        assert_eq!(s.buffered(), 5);
        assert_eq!(s.buffered_segments(), 1);
        assert_eq!(seg(&mut s, 1000, b"ab"), vec![d(b"ab"), d(b"cdefg")]);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn segment_fully_inside_buffered() {
        let mut s = started();
        seg(&mut s, 1002, b"cdefg");
        assert_eq!(seg(&mut s, 1003, b"def"), vec![]);
        assert_eq!(s.buffered(), 5);
        assert_eq!(s.buffered_segments(), 1);
        assert_eq!(seg(&mut s, 1000, b"ab"), vec![d(b"ab"), d(b"cdefg")]);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn buffered_fully_inside_new() {
        let mut s = started();
        seg(&mut s, 1003, b"de");
        assert_eq!(seg(&mut s, 1001, b"bcdefg"), vec![]);
        assert_eq!(s.buffered(), 6);
        assert_eq!(s.buffered_segments(), 1);
        assert_eq!(seg(&mut s, 1000, b"a"), vec![d(b"a"), d(b"bcdefg")]);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn adjacent_out_of_order_segments_share_a_run() {
        let mut s = started();
        seg(&mut s, 1002, b"c");
        seg(&mut s, 1003, b"d");
        seg(&mut s, 1004, b"e");
        assert_eq!(s.buffered_segments(), 1);
        assert_eq!(s.buffered(), 3);
        assert_eq!(seg(&mut s, 1000, b"ab"), vec![d(b"ab"), d(b"cde")]);
    }

    #[test]
    fn conflicting_overlap_against_buffered() {
        let mut s = started();
        seg(&mut s, 1003, b"def");
        assert_eq!(seg(&mut s, 1004, b"XY"), vec![]);
        assert!(s.notes().conflicting_overlap);
        // First data wins.
        assert_eq!(seg(&mut s, 1000, b"abc"), vec![d(b"abc"), d(b"def")]);
    }

    #[test]
    fn conflicting_in_order_segment_over_buffered_first_wins() {
        let mut s = started();
        seg(&mut s, 1003, b"def");
        assert_eq!(
            seg(&mut s, 1000, b"abcdXfgh"),
            vec![d(b"abc"), d(b"def"), d(b"gh")]
        );
        assert!(s.notes().conflicting_overlap);
        assert_eq!(s.delivered(), 8);
    }

    #[test]
    fn conflicting_retransmission_against_delivered_tail() {
        let mut s = started();
        seg(&mut s, 1000, b"abcdef");
        assert_eq!(seg(&mut s, 1002, b"cX"), vec![]);
        assert!(s.notes().conflicting_overlap);
        assert_eq!(s.delivered(), 6);
    }

    #[test]
    fn conflicting_straddling_retransmission_noted_and_suffix_delivered() {
        let mut s = started();
        seg(&mut s, 1000, b"abc");
        assert_eq!(seg(&mut s, 1001, b"Xcde"), vec![d(b"de")]);
        assert!(s.notes().conflicting_overlap);
    }

    #[test]
    fn tail_spans_several_deliveries() {
        let mut s = started();
        seg(&mut s, 1000, b"ab");
        seg(&mut s, 1002, b"cd");
        seg(&mut s, 1004, b"ef");
        assert_eq!(seg(&mut s, 1001, b"bcde"), vec![]);
        assert_eq!(s.notes(), no_notes());
        assert_eq!(seg(&mut s, 1001, b"bcXe"), vec![]);
        assert!(s.notes().conflicting_overlap);
    }

    #[test]
    fn conflict_within_history_is_noted_however_far_back() {
        let mut s = started();
        let data: Vec<u8> = (0..HISTORY as u32 + 100).map(|i| (i % 251) as u8).collect();
        for (i, piece) in data.chunks(1460).enumerate() {
            seg(&mut s, 1000 + (i * 1460) as u32, piece);
        }
        // A full-size segment retransmitted with its first byte changed, 4 KiB back.
        let from = data.len() - HISTORY;
        let mut bad = data[from..from + 1460].to_vec();
        assert_eq!(seg(&mut s, 1000 + from as u32, &bad), vec![]);
        assert_eq!(s.notes(), no_notes());
        bad[0] ^= 1;
        assert_eq!(seg(&mut s, 1000 + from as u32, &bad), vec![]);
        assert!(s.notes().conflicting_overlap);
    }

    #[test]
    fn conflict_older_than_history_is_not_detectable() {
        let mut s = started();
        let data: Vec<u8> = (0..HISTORY as u32 + 100).map(|i| i as u8).collect();
        seg(&mut s, 1000, &data);
        // Byte 0 is HISTORY + 100 bytes back: no longer kept.
        assert_eq!(seg(&mut s, 1000, &[0xFF]), vec![]);
        assert_eq!(s.notes(), no_notes());
        // A retransmission reaching into the history is checked there.
        let mut bad = data[90..110].to_vec();
        bad[19] ^= 1; // offset 109 is inside the history (100..)
        seg(&mut s, 1090, &bad);
        assert!(s.notes().conflicting_overlap);
    }

    #[test]
    fn history_ring_wraps_and_forgets_at_a_gap() {
        let mut s = started();
        // Deliveries of odd sizes wrap the ring several times.
        let data: Vec<u8> = (0..3 * HISTORY as u32 + 7).map(|i| (i * 7) as u8).collect();
        let mut at = 0;
        for n in [1usize, 700, 4095, 4096, 4097, 13].iter().cycle() {
            if at >= data.len() {
                break;
            }
            let end = (at + n).min(data.len());
            seg(&mut s, 1000 + at as u32, &data[at..end]);
            at = end;
        }
        // Every still-kept byte agrees; one changed byte anywhere in it is caught.
        let from = data.len() - HISTORY;
        seg(&mut s, 1000 + from as u32, &data[from..]);
        assert_eq!(s.notes(), no_notes());
        let mut bad = data[from..].to_vec();
        bad[HISTORY / 2] ^= 0x80;
        seg(&mut s, 1000 + from as u32, &bad);
        assert!(s.notes().conflicting_overlap);
        // After a gap nothing before it is compared.
        let mut t = started();
        seg(&mut t, 1000, b"abcdef");
        ack(&mut t, 1010);
        assert_eq!(seg(&mut t, 1000, b"XXXXXX"), vec![]);
        assert!(!t.notes().conflicting_overlap);
    }

    #[test]
    fn identical_overlap_not_noted() {
        let mut s = started();
        seg(&mut s, 1000, b"abcdef");
        seg(&mut s, 1002, b"cdef");
        seg(&mut s, 1010, b"klmn");
        seg(&mut s, 1011, b"lm");
        seg(&mut s, 1008, b"ijklmnop");
        assert_eq!(s.notes(), no_notes());
        assert_eq!(seg(&mut s, 1004, b"efgh"), vec![d(b"gh"), d(b"ijklmnop")]);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn sequence_wraparound() {
        let isn = 0xFFFF_FFF0u32;
        let data: Vec<u8> = (0..100u8).collect();
        let mut s = Stream::new(StreamLimits::default());
        s.on_syn(SeqNum(isn));
        let seq = |off: u32| isn.wrapping_add(1).wrapping_add(off);
        // Offset 25 is past the wrap (seq 0x0A); deliver out of order across it. 25.. is
        // prepended to the run at 50 and 75.. extends it: one run.
        assert_eq!(seg(&mut s, seq(50), &data[50..75]), vec![]);
        assert_eq!(seg(&mut s, seq(25), &data[25..50]), vec![]);
        assert_eq!(seg(&mut s, seq(75), &data[75..100]), vec![]);
        assert_eq!(
            seg(&mut s, seq(0), &data[0..25]),
            vec![d(&data[0..25]), d(&data[25..100])]
        );
        assert_eq!(s.delivered(), 100);
        assert_eq!(s.notes(), no_notes());
        s.on_fin(SeqNum(seq(100)));
        assert!(s.is_finished());
    }

    #[test]
    fn mid_stream_pickup() {
        let mut s = Stream::new(StreamLimits::default());
        assert_eq!(seg(&mut s, 5000, b"abc"), vec![d(b"abc")]);
        assert_eq!(seg(&mut s, 5003, b"de"), vec![d(b"de")]);
        // Data from before the pickup point looks like a retransmission and is trimmed.
        assert_eq!(seg(&mut s, 4998, b"xyabcdefg"), vec![d(b"fg")]);
        assert_eq!(s.delivered(), 7);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn syn_with_data_tfo() {
        let mut s = Stream::new(StreamLimits::default());
        s.on_syn(SeqNum(ISN));
        assert_eq!(seg(&mut s, ISN + 1, b"GET /"), vec![d(b"GET /")]);
        assert_eq!(seg(&mut s, ISN + 6, b" HTTP"), vec![d(b" HTTP")]);
        assert_eq!(s.delivered(), 10);
    }

    #[test]
    fn repeated_syn_does_not_move_origin() {
        let mut s = started();
        seg(&mut s, 1000, b"ab");
        s.on_syn(SeqNum(4999));
        assert_eq!(seg(&mut s, 1002, b"cd"), vec![d(b"cd")]);
        assert_eq!(seg(&mut s, 5000, b"zz"), vec![]);
        assert_eq!(s.delivered(), 4);
    }

    #[test]
    fn data_before_isn_is_trimmed() {
        let mut s = started();
        assert_eq!(seg(&mut s, 998, b"zab"), vec![d(b"b")]);
        assert_eq!(s.delivered(), 1);
    }

    #[test]
    fn gap_via_peer_ack() {
        let mut s = started();
        seg(&mut s, 1000, b"abc");
        assert_eq!(ack(&mut s, 1010), vec![g(7)]);
        assert_eq!(s.delivered(), 10);
        assert!(s.notes().gap);
        assert_eq!(seg(&mut s, 1010, b"k"), vec![d(b"k")]);
        // The missing bytes arriving late are now old data.
        assert_eq!(seg(&mut s, 1003, b"defg"), vec![]);
    }

    #[test]
    fn gap_then_buffered_data_drained() {
        let mut s = started();
        seg(&mut s, 1000, b"ab");
        seg(&mut s, 1005, b"fg");
        seg(&mut s, 1010, b"kl");
        assert_eq!(ack(&mut s, 1006), vec![g(3), d(b"fg")]);
        assert_eq!(s.delivered(), 7);
        assert_eq!(s.buffered(), 2);
        assert_eq!(ack(&mut s, 1013), vec![g(3), d(b"kl"), g(1)]);
        assert_eq!(s.delivered(), 13);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn ack_behind_or_at_delivery_ignored() {
        let mut s = started();
        seg(&mut s, 1000, b"abcdef");
        assert_eq!(ack(&mut s, 1003), vec![]);
        assert_eq!(ack(&mut s, 1006), vec![]);
        assert_eq!(ack(&mut s, 900), vec![]);
        assert_eq!(s.delivered(), 6);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn ack_before_stream_start_ignored() {
        let mut s = Stream::new(StreamLimits::default());
        assert_eq!(ack(&mut s, 1234), vec![]);
        assert_eq!(s.delivered(), 0);
        assert_eq!(seg(&mut s, 7000, b"x"), vec![d(b"x")]);
    }

    #[test]
    fn ack_absurdly_far_ahead_ignored() {
        let mut s = started();
        seg(&mut s, 1000, b"ab");
        assert_eq!(ack(&mut s, 1002 + (1 << 30) + 1), vec![]);
        assert_eq!(s.delivered(), 2);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn ack_of_fin_does_not_invent_a_byte() {
        let mut s = started();
        seg(&mut s, 1000, b"abc");
        s.on_fin(SeqNum(1005));
        assert!(!s.is_finished());
        assert_eq!(ack(&mut s, 1006), vec![g(2)]);
        assert_eq!(s.delivered(), 5);
        assert!(s.is_finished());
    }

    #[test]
    fn cap_hit_by_bytes() {
        let limits = StreamLimits {
            max_buffered: RUN_OVERHEAD + 10,
        };
        let mut s = started_with(limits);
        seg(&mut s, 1000, b"a");
        assert_eq!(seg(&mut s, 1005, b"fghij"), vec![]);
        assert_eq!(seg(&mut s, 1012, b"mnopqr"), vec![g(4), d(b"fghij")]);
        assert!(s.notes().buffer_cap_hit);
        assert!(s.notes().gap);
        assert_eq!(s.buffered(), 6);
        assert!(s.buffered() <= limits.max_buffered);
        assert_eq!(seg(&mut s, 1010, b"kl"), vec![d(b"kl"), d(b"mnopqr")]);
        assert_eq!(s.delivered(), 18);
    }

    #[test]
    fn each_run_costs_its_overhead() {
        let limits = StreamLimits {
            max_buffered: 2 * RUN_OVERHEAD + 2,
        };
        let mut s = started_with(limits);
        seg(&mut s, 1002, b"c");
        seg(&mut s, 1004, b"e");
        assert_eq!(s.buffered_segments(), 2);
        assert_eq!(seg(&mut s, 1006, b"g"), vec![g(2), d(b"c")]);
        assert!(s.notes().buffer_cap_hit);
        assert_eq!(s.buffered_segments(), 2);
        assert_eq!(s.delivered(), 3);
        assert_eq!(flush(&mut s), vec![g(1), d(b"e"), g(1), d(b"g")]);
    }

    /// Bytes the budget counts: held bytes plus the overhead of each run.
    fn budget_used(s: &Stream) -> usize {
        s.buffered() + s.buffered_segments() * RUN_OVERHEAD
    }

    #[test]
    fn one_byte_segments_in_reverse_order_make_one_run() {
        // 295 bytes sent backwards one byte at a time: more pieces than any run cap,
        // but one run throughout, so nothing is given up as a gap.
        let data: Vec<u8> = (0..295u32).map(|i| b'A' + (i % 26) as u8).collect();
        let mut s = started();
        for i in (1..data.len()).rev() {
            assert_eq!(seg(&mut s, 1000 + i as u32, &data[i..=i]), vec![]);
            assert_eq!(s.buffered_segments(), 1);
        }
        assert_eq!(
            seg(&mut s, 1000, &data[..1]),
            vec![d(&data[..1]), d(&data[1..])]
        );
        assert_eq!(s.notes(), no_notes());
        assert_eq!(s.heap_bytes(), s.history.buf.capacity());
    }

    #[test]
    fn reverse_order_fills_the_budget_in_linear_time() {
        // 200 KiB backwards in 1-byte segments: quadratic copying would take minutes.
        let n = 200 * 1024;
        let data: Vec<u8> = (0..n as u32).map(|i| (i % 253) as u8).collect();
        let mut s = started();
        for i in (1..n).rev() {
            s.on_segment(SeqNum(1000 + i as u32), &data[i..=i], &mut |_| {
                panic!("early")
            });
        }
        assert_eq!(s.buffered(), n - 1);
        assert_eq!(s.buffered_segments(), 1);
        // Room in front at most doubles what is held.
        assert!(s.heap_bytes() <= 4 * n, "{}", s.heap_bytes());
        let mut out = Vec::new();
        s.on_segment(SeqNum(1000), &data[..1], &mut |c| render(&mut out, c));
        assert_eq!(out.len(), n);
        assert!(out.iter().zip(&data).all(|(a, b)| *a == Some(*b)));
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn a_piece_between_two_runs_joins_them() {
        let mut s = started();
        seg(&mut s, 1002, b"cd");
        seg(&mut s, 1006, b"ghij");
        assert_eq!(s.buffered_segments(), 2);
        // The shorter run is copied into the longer, whichever side it is on.
        seg(&mut s, 1004, b"ef");
        assert_eq!(s.buffered_segments(), 1);
        seg(&mut s, 1013, b"n");
        seg(&mut s, 1015, b"pqrstu");
        seg(&mut s, 1014, b"o");
        assert_eq!(s.buffered_segments(), 2);
        // A piece straddling a run: its holes on both sides merge too.
        seg(&mut s, 1011, b"lmnop");
        assert_eq!(s.buffered_segments(), 2);
        seg(&mut s, 1010, b"k");
        assert_eq!(s.buffered_segments(), 1);
        assert_eq!(s.buffered(), 19);
        assert_eq!(
            seg(&mut s, 1000, b"ab"),
            vec![d(b"ab"), d(b"cdefghijklmnopqrstu")]
        );
        assert_eq!(s.notes(), no_notes());
        assert_eq!(budget_used(&s), 0);
    }

    #[test]
    fn alternating_holes_are_capped_by_the_budget() {
        let limits = StreamLimits::default();
        let mut s = started_with(limits);
        let mut peak = 0;
        // One byte, one hole, one byte... far past a hole at offset 0.
        for i in 0..20_000u32 {
            seg(&mut s, 1001 + 2 * i, b"x");
            assert!(budget_used(&s) <= limits.max_buffered);
            peak = peak.max(s.buffered_segments());
        }
        assert!(s.notes().buffer_cap_hit);
        assert_eq!(peak, limits.max_buffered / (RUN_OVERHEAD + 1));
    }

    #[test]
    fn cap_hit_by_segment_before_buffered_data() {
        let limits = StreamLimits {
            max_buffered: RUN_OVERHEAD + 4,
        };
        let mut s = started_with(limits);
        seg(&mut s, 1010, b"wxyz");
        // The new segment is the earliest held byte, so the gap stops at it.
        assert_eq!(seg(&mut s, 1005, b"fg"), vec![g(5), d(b"fg")]);
        assert!(s.notes().buffer_cap_hit);
        assert_eq!(s.buffered(), 4);
        assert_eq!(s.delivered(), 7);
    }

    #[test]
    fn cap_skip_over_part_of_new_segment() {
        let limits = StreamLimits {
            max_buffered: RUN_OVERHEAD + 4,
        };
        let mut s = started_with(limits);
        seg(&mut s, 1004, b"efgh");
        // Needs 3 more bytes at 1007.. overlapping "h": skip to "efgh", then the rest is in order.
        assert_eq!(seg(&mut s, 1007, b"hij"), vec![g(4), d(b"efgh"), d(b"ij")]);
        assert_eq!(s.buffered(), 0);
        assert!(!s.notes().conflicting_overlap);
    }

    #[test]
    fn oversized_segment_with_tiny_caps() {
        let limits = StreamLimits { max_buffered: 2 };
        let mut s = started_with(limits);
        assert_eq!(seg(&mut s, 1003, b"defg"), vec![g(3), d(b"defg")]);
        assert_eq!(s.buffered(), 0);
        assert!(s.notes().buffer_cap_hit);
    }

    #[test]
    fn memory_bounded_under_scattered_segments() {
        let limits = StreamLimits::default();
        let mut s = started_with(limits);
        let chunk = [7u8; 1000];
        // Every other 1000-byte block, far past a hole at 0: never adjacent, so each costs a run.
        for i in 0..2000u32 {
            seg(&mut s, 1000 + 1 + i * 2000, &chunk);
            assert!(budget_used(&s) <= limits.max_buffered);
        }
        assert!(s.notes().buffer_cap_hit);
        assert!(s.notes().gap);
    }

    #[test]
    fn flush_with_several_holes() {
        let mut s = started();
        seg(&mut s, 1003, b"d");
        seg(&mut s, 1006, b"gh");
        seg(&mut s, 1012, b"m");
        assert_eq!(s.delivered(), 0);
        assert_eq!(
            flush(&mut s),
            vec![g(3), d(b"d"), g(2), d(b"gh"), g(4), d(b"m")]
        );
        assert_eq!(s.delivered(), 13);
        assert_eq!(s.buffered(), 0);
        assert!(s.notes().gap);
        assert_eq!(flush(&mut s), vec![]);
    }

    #[test]
    fn flush_does_not_run_past_buffered_data_to_fin() {
        let mut s = started();
        seg(&mut s, 1000, b"ab");
        s.on_fin(SeqNum(1010));
        assert_eq!(flush(&mut s), vec![]);
        assert_eq!(s.delivered(), 2);
        assert!(!s.is_finished());
    }

    #[test]
    fn fin_bookkeeping() {
        let mut s = started();
        seg(&mut s, 1000, b"abc");
        // The FIN segment carries "de"; its FIN is recorded before the data is processed.
        s.on_fin(SeqNum(1005));
        assert!(!s.is_finished());
        // A contradictory later FIN does not move the recorded one.
        s.on_fin(SeqNum(1009));
        assert_eq!(seg(&mut s, 1003, b"de"), vec![d(b"de")]);
        assert!(s.is_finished());
    }

    #[test]
    fn fin_with_out_of_order_data() {
        let mut s = started();
        seg(&mut s, 1003, b"de");
        s.on_fin(SeqNum(1005));
        assert!(!s.is_finished());
        assert_eq!(seg(&mut s, 1000, b"abc"), vec![d(b"abc"), d(b"de")]);
        assert!(s.is_finished());
    }

    #[test]
    fn fin_on_empty_stream() {
        let mut s = started();
        assert!(!s.is_finished());
        s.on_fin(SeqNum(1000));
        assert!(s.is_finished());
        let mut t = Stream::new(StreamLimits::default());
        t.on_fin(SeqNum(42));
        assert!(t.is_finished());
    }

    #[test]
    fn out_of_window_ahead_ignored() {
        let mut s = started();
        seg(&mut s, 1000, b"ab");
        assert_eq!(seg(&mut s, 1002 + (1 << 30) + 1, b"x"), vec![]);
        assert!(s.notes().out_of_window);
        assert_eq!(s.buffered(), 0);
        // Exactly 1 GiB ahead is still plausible and gets buffered.
        let mut t = started();
        assert_eq!(seg(&mut t, 1000 + (1 << 30), b"y"), vec![]);
        assert_eq!(t.buffered(), 1);
        assert!(!t.notes().out_of_window);
    }

    #[test]
    fn out_of_window_behind_ignored() {
        let mut s = started();
        seg(&mut s, 1000, b"ab");
        let behind = 1002u32.wrapping_sub((1 << 30) + 1);
        assert_eq!(seg(&mut s, behind, b"x"), vec![]);
        assert!(s.notes().out_of_window);
        assert_eq!(s.delivered(), 2);
        assert!(!s.notes().conflicting_overlap);
    }

    #[test]
    fn out_of_window_fin_ignored() {
        let mut s = started();
        s.on_fin(SeqNum(1000 + (1 << 30) + 5));
        assert!(s.notes().out_of_window);
        s.on_fin(SeqNum(1000));
        assert!(s.is_finished());
    }

    #[test]
    fn empty_payload() {
        let mut s = Stream::new(StreamLimits::default());
        assert_eq!(seg(&mut s, 1000, b""), vec![]);
        // An empty segment does not start the stream.
        assert_eq!(seg(&mut s, 5000, b"a"), vec![d(b"a")]);
        assert_eq!(seg(&mut s, 5001, b""), vec![]);
        assert_eq!(seg(&mut s, 9000, b""), vec![]);
        assert_eq!(s.delivered(), 1);
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn bypass_drops_buffers_and_counts() {
        let mut s = started();
        seg(&mut s, 1000, b"ab");
        seg(&mut s, 1005, b"fgh");
        assert_eq!(s.buffered(), 3);
        s.bypass();
        assert_eq!(s.buffered(), 0);
        assert_eq!(s.buffered_segments(), 0);
        assert_eq!(seg(&mut s, 1002, b"cde"), vec![]);
        assert_eq!(seg(&mut s, 1008, b"ij"), vec![]);
        assert_eq!(s.bypassed_bytes(), 5);
        assert_eq!(ack(&mut s, 2000), vec![]);
        assert_eq!(flush(&mut s), vec![]);
        assert_eq!(s.delivered(), 2);
        assert!(!s.is_finished());
        s.on_fin(SeqNum(1010));
        assert!(s.is_finished());
    }

    #[test]
    fn more_than_4gib_of_stream() {
        let mut s = Stream::new(StreamLimits::default());
        let isn = 0xFFFF_0000u32;
        s.on_syn(SeqNum(isn));
        let block = vec![0u8; 64 * 1024];
        let total: u64 = 5 << 30;
        let mut seq = SeqNum(isn).wrapping_add(1);
        let mut seen: u64 = 0;
        let mut sink = |c: Chunk<'_>| match c {
            Chunk::Data(b) => seen += b.len() as u64,
            Chunk::Gap(_) => panic!("unexpected gap"),
        };
        for _ in 0..total / block.len() as u64 {
            s.on_segment(seq, &block, &mut sink);
            seq = seq.wrapping_add(block.len() as u32);
        }
        assert_eq!(seen, total);
        assert_eq!(s.delivered(), total);
        // Out-of-order handling still works past 4 GiB.
        let mut out = Vec::new();
        s.on_segment(seq.wrapping_add(2), b"cd", &mut |c| out.push(own(c)));
        s.on_segment(seq, b"ab", &mut |c| out.push(own(c)));
        assert_eq!(out, vec![d(b"ab"), d(b"cd")]);
        s.on_fin(seq.wrapping_add(4));
        assert!(s.is_finished());
        assert_eq!(s.notes(), no_notes());
    }

    /// splitmix64: tiny, seedable, good enough to shuffle test inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    struct Case {
        src: Vec<u8>,
        segs: Vec<(usize, usize)>,
        isn: u32,
    }

    fn random_case(rng: &mut Rng) -> Case {
        let len = 1 + rng.below(4000);
        let src: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut segs = Vec::new();
        let mut pos = 0;
        while pos < len {
            let n = (1 + rng.below(300)).min(len - pos);
            segs.push((pos, pos + n));
            pos += n;
        }
        for _ in 0..rng.below(12) {
            let a = rng.below(len);
            let b = (a + 1 + rng.below(500)).min(len);
            segs.push((a, b));
        }
        for _ in 0..rng.below(12) {
            let i = rng.below(segs.len());
            segs.push(segs[i]);
        }
        segs.retain(|_| rng.below(8) != 0);
        for i in (1..segs.len()).rev() {
            let j = rng.below(i + 1);
            segs.swap(i, j);
        }
        let isn = if rng.below(3) == 0 {
            u32::MAX - rng.below(3000) as u32
        } else {
            rng.next() as u32
        };
        Case { src, segs, isn }
    }

    fn render(out: &mut Vec<Option<u8>>, c: Chunk<'_>) {
        match c {
            Chunk::Data(b) => {
                assert!(!b.is_empty());
                out.extend(b.iter().map(|&x| Some(x)));
            }
            Chunk::Gap(n) => {
                assert!(n > 0);
                out.extend(std::iter::repeat_n(None, n as usize));
            }
        }
    }

    #[test]
    fn random_against_model() {
        for seed in 0..400u64 {
            let mut rng = Rng(seed);
            let Case { src, segs, isn } = random_case(&mut rng);
            let mut s = Stream::new(StreamLimits::default());
            s.on_syn(SeqNum(isn));
            let mut out = Vec::new();
            let mut sink = |c: Chunk<'_>| render(&mut out, c);
            for &(a, b) in &segs {
                let seq = SeqNum(isn).wrapping_add(1).wrapping_add(a as u32);
                s.on_segment(seq, &src[a..b], &mut sink);
            }
            s.flush(&mut sink);

            let max_end = segs.iter().map(|&(_, b)| b).max().unwrap_or(0);
            let mut model: Vec<Option<u8>> = vec![None; max_end];
            for &(a, b) in &segs {
                for i in a..b {
                    model[i] = Some(src[i]);
                }
            }
            assert_eq!(out, model, "seed {seed}");
            assert_eq!(s.delivered(), max_end as u64, "seed {seed}");
            assert_eq!(s.buffered(), 0, "seed {seed}");
            let notes = s.notes();
            assert!(!notes.conflicting_overlap, "seed {seed}");
            assert!(!notes.buffer_cap_hit, "seed {seed}");
            assert!(!notes.out_of_window, "seed {seed}");
            assert_eq!(notes.gap, model.contains(&None), "seed {seed}");
        }
    }

    #[test]
    fn random_small_caps_and_acks_stay_consistent() {
        for seed in 1000..1300u64 {
            let mut rng = Rng(seed);
            let Case { src, segs, isn } = random_case(&mut rng);
            let limits = StreamLimits {
                max_buffered: rng.below(700),
            };
            let mut s = Stream::new(limits);
            s.on_syn(SeqNum(isn));
            let origin = SeqNum(isn).wrapping_add(1);
            let mut out = Vec::new();
            let mut max_ack = 0;
            for &(a, b) in &segs {
                let mut sink = |c: Chunk<'_>| render(&mut out, c);
                s.on_segment(origin.wrapping_add(a as u32), &src[a..b], &mut sink);
                if rng.below(10) == 0 {
                    let at = rng.below(src.len() + 1);
                    max_ack = max_ack.max(at);
                    s.on_peer_ack(origin.wrapping_add(at as u32), &mut sink);
                }
                assert!(budget_used(&s) <= limits.max_buffered, "seed {seed}");
                assert_eq!(s.delivered(), out.len() as u64, "seed {seed}");
            }
            s.flush(&mut |c| render(&mut out, c));
            let max_end = segs.iter().map(|&(_, b)| b).max().unwrap_or(0);
            assert_eq!(out.len(), max_end.max(max_ack), "seed {seed}");
            assert_eq!(s.delivered(), out.len() as u64, "seed {seed}");
            for (i, b) in out.iter().enumerate() {
                if let Some(b) = b {
                    assert_eq!(*b, src[i], "seed {seed} offset {i}");
                }
            }
            assert!(!s.notes().conflicting_overlap, "seed {seed}");
        }
    }
}
