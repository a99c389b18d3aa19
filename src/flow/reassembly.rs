//! TCP stream reassembly: sequence-number arithmetic and turning one direction's segments into an
//! ordered byte stream with explicit gaps.

use crate::config::StreamLimits;
use std::collections::BTreeMap;

/// How far from the delivery point a sequence number may be before it is treated as garbage.
/// Kept well below the 2^31 serial-number horizon so that wrap-around can never alias into it.
const WINDOW: i64 = 1 << 30;

/// Recently delivered bytes kept to catch retransmissions that disagree with what was delivered.
const TAIL: usize = 64;

/// Heap bytes one buffered run costs beside its bytes: its share of a B-tree node.
const RUN_OVERHEAD: usize = 64;

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

/// One direction of a TCP connection.
///
/// Invariant, between calls:
/// - `next` is the stream offset of the first byte not yet handed on; it never decreases.
/// - every key of `ooo` is `> next`; entries are non-empty and never overlap or share a start;
///   `buffered` is the sum of their lengths and is `<= limits.max_buffered`, `heap` is the
///   sum of their capacities plus `RUN_OVERHEAD` each, and
///   `ooo.len() <= limits.max_segments` (so memory is bounded by construction — Vec capacity
///   may exceed length by the usual growth factor, no more).
/// - the last `tail_len` bytes of `tail` are the data at offsets `next - tail_len .. next`
///   (`tail_len` resets to 0 on a gap, as a gap has no bytes to compare against).
/// - `base` is `None` until the stream starts; afterwards stream offset `o` is sequence number
///   `base.advance(o)`. Offsets are u64 so streams longer than 4 GiB work; sequence numbers are
///   unwrapped relative to the delivery point, never to `base`.
#[derive(Debug, Clone)]
pub struct Stream {
    limits: StreamLimits,
    base: Option<SeqNum>,
    next: u64,
    ooo: BTreeMap<u64, Vec<u8>>,
    buffered: usize,
    /// Heap held by `ooo`: run capacities plus `RUN_OVERHEAD` per run.
    heap: usize,
    tail: [u8; TAIL],
    tail_len: usize,
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
            tail: [0; TAIL],
            tail_len: 0,
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
    /// `conflicting_overlap` if bytes differ, checking both buffered data and the last 64
    /// delivered bytes. Segments more than 1 GiB ahead or behind are ignored (`out_of_window`).
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
        self.tail_len = 0;
    }

    /// Memory pressure: hand on everything buffered now (holes as gaps, note
    /// `buffer_cap_hit`) and never buffer out-of-order data again; from now on a segment
    /// beyond a hole turns the hole into a gap at once, as the per-direction cap does.
    pub fn stop_buffering(&mut self, sink: &mut dyn FnMut(Chunk<'_>)) {
        self.limits.max_buffered = 0;
        self.limits.max_segments = 0;
        if !self.ooo.is_empty() {
            self.notes.buffer_cap_hit = true;
            self.flush(sink);
        }
        self.ooo = BTreeMap::new();
        self.heap = 0;
    }

    /// Heap bytes this stream holds (buffered runs with their capacity and overhead).
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

    /// Out-of-order runs currently held (bounded by `max_segments`).
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

    /// `data` starts `back` bytes before the delivery point. Compares the part still in the tail
    /// copy and returns what lies at or after the delivery point.
    fn trim_delivered<'p>(&mut self, back: u64, data: &'p [u8]) -> &'p [u8] {
        let (old, new) = data.split_at(idx(back).min(data.len()));
        let tail_len = len64(self.tail_len);
        // Bytes older than the tail copy cannot be checked; skip them.
        let skip = back.saturating_sub(tail_len);
        let from_end = back - skip;
        let cmp = old.get(idx(skip)..).unwrap_or_default();
        let start = TAIL.saturating_sub(idx(from_end));
        let theirs = self.tail.get(start..).unwrap_or_default();
        let n = cmp.len().min(theirs.len());
        if cmp.get(..n) != theirs.get(..n) {
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
            let fresh = run.get(idx(self.next - start)..).unwrap_or_default();
            let overlap = fresh.len().min(rest.len());
            if fresh.get(..overlap) != rest.get(..overlap) {
                self.notes.conflicting_overlap = true;
            }
            rest = rest.get(overlap..).unwrap_or_default();
            self.deliver_data(fresh, sink);
        }
        rest
    }

    /// Copies the parts of `data` (at `off > next`) not already buffered, unless that would
    /// break a cap, in which case nothing is stored and `false` is returned.
    fn try_buffer(&mut self, off: u64, data: &[u8]) -> bool {
        let end = off.saturating_add(len64(data.len()));
        let mut holes: Vec<(u64, u64)> = Vec::new();
        let mut conflict = false;
        let mut cursor = off;
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
                holes.push((cursor, start));
            }
            let lo = start.max(cursor);
            let hi = run_end.min(end);
            let theirs = run.get(idx(lo - start)..idx(hi - start));
            let ours = data.get(idx(lo - off)..idx(hi - off));
            conflict |= theirs != ours;
            cursor = run_end;
        }
        if cursor < end {
            holes.push((cursor, end));
        }
        if conflict {
            self.notes.conflicting_overlap = true;
        }

        let need: usize = holes.iter().map(|&(lo, hi)| idx(hi - lo)).sum();
        // A hole that starts where a run ends extends that run instead of costing a new one.
        let new_runs = holes
            .iter()
            .filter(|&&(lo, _)| !self.run_ends_at(lo))
            .count();
        if self.buffered.saturating_add(need) > self.limits.max_buffered
            || self.ooo.len().saturating_add(new_runs) > self.limits.max_segments
        {
            return false;
        }
        for (lo, hi) in holes {
            let Some(piece) = data.get(idx(lo - off)..idx(hi - off)) else {
                continue;
            };
            match self.ooo.range_mut(..lo).next_back() {
                Some((&start, run)) if start.saturating_add(len64(run.len())) == lo => {
                    let before = run.capacity();
                    run.extend_from_slice(piece);
                    self.heap = self
                        .heap
                        .saturating_add(run.capacity().saturating_sub(before));
                }
                _ => {
                    let run = piece.to_vec();
                    self.heap = self
                        .heap
                        .saturating_add(run.capacity().saturating_add(RUN_OVERHEAD));
                    self.ooo.insert(lo, run);
                }
            }
            self.buffered = self.buffered.saturating_add(piece.len());
        }
        true
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
        if let Some(last) = bytes.get(bytes.len().saturating_sub(TAIL)..) {
            let n = last.len();
            self.tail.copy_within(n.., 0);
            if let Some(dst) = self.tail.get_mut(TAIL - n..) {
                dst.copy_from_slice(last);
            }
            self.tail_len = (self.tail_len + n).min(TAIL);
        }
    }

    fn deliver_gap(&mut self, n: u64, sink: &mut dyn FnMut(Chunk<'_>)) {
        if n == 0 {
            return;
        }
        sink(Chunk::Gap(n));
        self.next = self.next.saturating_add(n);
        self.tail_len = 0;
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
        assert_eq!(l.max_segments, 256);
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
        assert_eq!(
            seg(&mut s, 1000, b"a"),
            vec![d(b"a"), d(b"bc"), d(b"defgh")]
        );
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
        assert_eq!(s.buffered_segments(), 2);
        assert_eq!(seg(&mut s, 1000, b"a"), vec![d(b"a"), d(b"bc"), d(b"defg")]);
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
    fn conflict_older_than_tail_is_not_detectable() {
        let mut s = started();
        let data: Vec<u8> = (0..100u8).collect();
        seg(&mut s, 1000, &data);
        // Byte 0 is 100 bytes back; only the last 64 are remembered.
        assert_eq!(seg(&mut s, 1000, &[0xFF]), vec![]);
        assert_eq!(s.notes(), no_notes());
        // A retransmission reaching into the remembered tail is checked there.
        let mut bad = data[30..40].to_vec();
        bad[9] ^= 1; // offset 39 is inside the tail (36..100)
        seg(&mut s, 1030, &bad);
        assert!(s.notes().conflicting_overlap);
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
        assert_eq!(
            seg(&mut s, 1004, b"efgh"),
            vec![d(b"gh"), d(b"ij"), d(b"klmnop")]
        );
        assert_eq!(s.notes(), no_notes());
    }

    #[test]
    fn sequence_wraparound() {
        let isn = 0xFFFF_FFF0u32;
        let data: Vec<u8> = (0..100u8).collect();
        let mut s = Stream::new(StreamLimits::default());
        s.on_syn(SeqNum(isn));
        let seq = |off: u32| isn.wrapping_add(1).wrapping_add(off);
        // Offset 25 is past the wrap (seq 0x0A); deliver out of order across it. 75.. extends
        // the run at 50; 25.. is a separate run because runs only grow at their end.
        assert_eq!(seg(&mut s, seq(50), &data[50..75]), vec![]);
        assert_eq!(seg(&mut s, seq(25), &data[25..50]), vec![]);
        assert_eq!(seg(&mut s, seq(75), &data[75..100]), vec![]);
        assert_eq!(
            seg(&mut s, seq(0), &data[0..25]),
            vec![d(&data[0..25]), d(&data[25..50]), d(&data[50..100])]
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
            max_buffered: 10,
            max_segments: 256,
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
    fn cap_hit_by_segment_count() {
        let limits = StreamLimits {
            max_buffered: 1 << 20,
            max_segments: 2,
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

    #[test]
    fn cap_hit_by_segment_before_buffered_data() {
        let limits = StreamLimits {
            max_buffered: 4,
            max_segments: 256,
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
            max_buffered: 4,
            max_segments: 256,
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
        let limits = StreamLimits {
            max_buffered: 2,
            max_segments: 0,
        };
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
            assert!(s.buffered() <= limits.max_buffered);
            assert!(s.buffered_segments() <= limits.max_segments);
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
                max_segments: rng.below(6),
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
                assert!(s.buffered() <= limits.max_buffered, "seed {seed}");
                assert!(s.buffered_segments() <= limits.max_segments, "seed {seed}");
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
