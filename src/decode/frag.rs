//! IPv4 and IPv6 fragment reassembly: bounded state, packet-time timeout, first
//! data wins on overlap.
//!
//! Invariant: every datagram in `table` has exactly one live entry (same generation)
//! in `order`, oldest first; `held_bytes` is the sum of `Partial::cost` over `table`
//! and never exceeds `max_bytes` after an insert returns; `table.len() <= max_datagrams`.

use super::path::FragNotes;
use crate::stats::FragStats;
use crate::time::Timestamp;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::net::IpAddr;

/// Caps and timeout of fragment reassembly.
#[derive(Clone, Copy, Debug)]
pub struct DefragLimits {
    /// Most datagrams being reassembled at once; past it the oldest is dropped.
    pub max_datagrams: usize,
    /// Most fragments accepted for one datagram (duplicates included); past it the
    /// datagram is dropped.
    pub max_fragments: usize,
    /// Most bytes held by all partial datagrams together (data plus a fixed
    /// overhead per piece); past it the oldest datagrams are dropped.
    pub max_bytes: usize,
    /// A datagram not completed within this many seconds of packet time is dropped.
    pub timeout_secs: i64,
}

/// Datagrams being reassembled at once.
pub const MAX_DATAGRAMS: usize = 8192;
/// Fragments per datagram: a 64 KiB datagram over a 576-byte path needs 120.
pub const MAX_FRAGMENTS: usize = 256;
/// Bytes held by partial datagrams in total.
pub const MAX_BYTES: usize = 16 << 20;
/// Reassembly timeout, as Linux (`ipfrag_time`) and RFC 8200 use.
pub const TIMEOUT_SECS: i64 = 30;
/// Bookkeeping charged per stored piece, so floods of tiny fragments hit the byte cap.
const PIECE_OVERHEAD: usize = 64;
/// Largest reassembled payload: the IP length fields are 16 bits.
const MAX_DATAGRAM: u32 = 65_535;

impl Default for DefragLimits {
    fn default() -> Self {
        DefragLimits {
            max_datagrams: MAX_DATAGRAMS,
            max_fragments: MAX_FRAGMENTS,
            max_bytes: MAX_BYTES,
            timeout_secs: TIMEOUT_SECS,
        }
    }
}

/// Identifies one datagram: addresses, ID, protocol, and the tunnel it came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    pub proto: u8,
    pub tunnel: u64,
}

/// One fragment as decoded: its byte offset, whether more follow, its data.
#[derive(Clone, Copy, Debug)]
pub struct Piece<'a> {
    pub key: FragKey,
    pub offset: u32,
    pub more: bool,
    pub data: &'a [u8],
    /// The snap length cut this fragment short.
    pub truncated: bool,
}

/// A datagram put back together.
#[derive(Debug)]
pub struct Complete {
    pub key: FragKey,
    pub payload: Vec<u8>,
    pub notes: FragNotes,
}

/// What happened to a fragment.
#[derive(Debug)]
pub enum Insert {
    /// Kept; the datagram is not complete yet.
    Held,
    /// The datagram is complete.
    Complete(Complete),
    /// Not kept (invalid, or its datagram was dropped by a cap).
    Dropped,
}

#[derive(Debug)]
struct Partial {
    /// Non-overlapping pieces sorted by offset.
    pieces: Vec<(u32, Vec<u8>)>,
    /// Payload length, known once the last fragment came.
    total: Option<u32>,
    fragments: usize,
    generation: u64,
    notes: FragNotes,
    cost: usize,
}

/// Reassembles fragments into datagrams.
#[derive(Debug, Default)]
pub struct Defrag {
    limits: DefragLimits,
    table: FxHashMap<FragKey, Partial>,
    /// Datagrams by age: (first fragment time, key, generation).
    order: VecDeque<(Timestamp, FragKey, u64)>,
    held_bytes: usize,
    next_generation: u64,
    pub stats: FragStats,
}

/// Minimum transport header a first fragment should hold.
fn transport_header_len(proto: u8) -> u32 {
    match proto {
        6 => 20,
        17 => 8,
        _ => 0,
    }
}

/// The fragment's length and end offset; `None` for a fragment the datagram
/// cannot hold: cut by the snap length, past the largest datagram, or a
/// non-last fragment whose length is not a positive multiple of 8.
#[inline]
fn span(p: &Piece<'_>) -> Option<(u32, u32)> {
    let len = u32::try_from(p.data.len()).ok()?;
    let end = p.offset.saturating_add(len);
    // Only the last fragment may have a length that is not a multiple of 8.
    if p.truncated || end > MAX_DATAGRAM || (p.more && (len == 0 || len % 8 != 0)) {
        return None;
    }
    Some((len, end))
}

impl Partial {
    /// Counts a fragment ending at `end` (`more`: not the last); false when the
    /// datagram must be dropped: the fragment contradicts the length already
    /// known, or the datagram has more than `max_fragments`.
    #[inline]
    fn admit(&mut self, more: bool, end: u32, max_fragments: usize, stats: &mut FragStats) -> bool {
        self.fragments += 1;
        let held_end = self.pieces.last().map_or(0, |(s, b)| *s + b.len() as u32);
        let contradicts = if more {
            self.total.is_some_and(|t| end > t)
        } else {
            self.total.is_some_and(|t| t != end) || held_end > end
        };
        if contradicts {
            stats.invalid += 1;
            return false;
        }
        if self.fragments > max_fragments {
            stats.dropped_at_cap += 1;
            return false;
        }
        if !more {
            self.total = Some(end);
        }
        true
    }

    /// Stores an admitted fragment of `len` bytes, noting RFC 1858 header tricks
    /// and overlaps; returns the bytes it added to the datagram's cost.
    #[inline]
    fn store(&mut self, p: &Piece<'_>, len: u32, stats: &mut FragStats) -> usize {
        let start = p.offset;
        let hdr = transport_header_len(p.key.proto);
        if start == 0 && p.more && len < hdr {
            self.notes.tiny_first = true;
        }
        if start > 0 && start < hdr {
            self.notes.header_overlap = true;
        }
        let (overlap, conflict, added) = merge(&mut self.pieces, start, p.data);
        if overlap {
            stats.overlaps += 1;
        }
        if conflict {
            stats.conflicting_overlaps += 1;
            self.notes.conflicting_overlap = true;
        }
        self.cost += added;
        added
    }
}

impl Defrag {
    pub fn new(limits: DefragLimits) -> Self {
        Defrag {
            limits,
            ..Defrag::default()
        }
    }

    /// Datagrams being reassembled.
    pub fn pending(&self) -> usize {
        self.table.len()
    }

    /// Bytes held (with per-piece overhead).
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Drops datagrams older than the timeout at packet time `now`.
    pub fn expire(&mut self, now: Timestamp) {
        while let Some((first, key, generation)) = self.order.front().copied() {
            if first.secs.saturating_add(self.limits.timeout_secs) >= now.secs {
                break;
            }
            self.order.pop_front();
            if self.remove_if(&key, generation) {
                self.stats.timed_out += 1;
            }
        }
    }

    /// Adds one fragment.
    pub fn insert(&mut self, now: Timestamp, p: Piece<'_>) -> Insert {
        self.stats.fragments += 1;
        let Some((len, end)) = span(&p) else {
            self.stats.invalid += 1;
            return Insert::Dropped;
        };
        if !self.table.contains_key(&p.key) {
            self.open(now, p.key);
        }
        let Some(d) = self.table.get_mut(&p.key) else {
            return Insert::Dropped;
        };
        if !d.admit(p.more, end, self.limits.max_fragments, &mut self.stats) {
            let generation = d.generation;
            self.remove_if(&p.key, generation);
            return Insert::Dropped;
        }
        let added = d.store(&p, len, &mut self.stats);
        self.held_bytes += added;
        if d.total.is_some_and(|t| contiguous_to(&d.pieces) == t) {
            return self.complete(p.key);
        }
        let generation = d.generation;
        self.shed_bytes(&p.key, generation)
    }

    /// Starts a datagram for `key`, dropping the oldest ones to make room.
    #[inline]
    fn open(&mut self, now: Timestamp, key: FragKey) {
        while self.table.len() >= self.limits.max_datagrams.max(1) {
            if !self.drop_oldest() {
                break;
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.table.insert(
            key,
            Partial {
                pieces: Vec::new(),
                total: None,
                fragments: 0,
                generation,
                notes: FragNotes::default(),
                cost: 0,
            },
        );
        self.order.push_back((now, key, generation));
        if self.order.len() > self.limits.max_datagrams.saturating_mul(4).max(64) {
            let table = &self.table;
            self.order
                .retain(|(_, k, g)| table.get(k).is_some_and(|d| d.generation == *g));
        }
    }

    /// Takes the complete datagram `key` out of the table and joins its pieces.
    #[inline]
    fn complete(&mut self, key: FragKey) -> Insert {
        let Some(d) = self.table.remove(&key) else {
            return Insert::Dropped;
        };
        self.held_bytes -= d.cost;
        self.stats.reassembled += 1;
        let mut payload = Vec::with_capacity(d.total.unwrap_or(0) as usize);
        for (_, b) in d.pieces {
            payload.extend_from_slice(&b);
        }
        Insert::Complete(Complete {
            key,
            payload,
            notes: d.notes,
        })
    }

    /// Drops the oldest datagrams while the byte cap is exceeded; whether the
    /// datagram `key` (of `generation`) is still held.
    #[inline]
    fn shed_bytes(&mut self, key: &FragKey, generation: u64) -> Insert {
        while self.held_bytes > self.limits.max_bytes {
            if !self.drop_oldest() {
                break;
            }
        }
        if self
            .table
            .get(key)
            .is_some_and(|d| d.generation == generation)
        {
            Insert::Held
        } else {
            Insert::Dropped
        }
    }

    /// Drops the oldest datagram; false when none is left.
    fn drop_oldest(&mut self) -> bool {
        while let Some((_, key, generation)) = self.order.pop_front() {
            if self.remove_if(&key, generation) {
                self.stats.dropped_at_cap += 1;
                return true;
            }
        }
        false
    }

    fn remove_if(&mut self, key: &FragKey, generation: u64) -> bool {
        if self
            .table
            .get(key)
            .is_some_and(|d| d.generation == generation)
            && let Some(d) = self.table.remove(key)
        {
            self.held_bytes -= d.cost;
            return true;
        }
        false
    }
}

/// Stores the parts of `data` (at `start`) not yet held, first data winning.
/// Returns (overlapped, conflicting bytes, cost added).
fn merge(pieces: &mut Vec<(u32, Vec<u8>)>, start: u32, data: &[u8]) -> (bool, bool, usize) {
    let end = start + data.len() as u32;
    let mut overlap = false;
    let mut conflict = false;
    let mut fresh: Vec<(u32, u32)> = Vec::new();
    let mut cursor = start;
    for (s, b) in pieces.iter() {
        let e = *s + b.len() as u32;
        if e <= start || *s >= end {
            continue;
        }
        overlap = true;
        let (os, oe) = ((*s).max(start), e.min(end));
        let old = b.get((os - s) as usize..(oe - s) as usize);
        let new = data.get((os - start) as usize..(oe - start) as usize);
        if old != new {
            conflict = true;
        }
        if *s > cursor {
            fresh.push((cursor, *s));
        }
        cursor = cursor.max(e);
    }
    if cursor < end {
        fresh.push((cursor, end));
    }
    let mut added = 0;
    for (s, e) in fresh {
        let Some(bytes) = data.get((s - start) as usize..(e - start) as usize) else {
            continue;
        };
        added += bytes.len() + PIECE_OVERHEAD;
        let at = pieces.partition_point(|(ps, _)| *ps < s);
        pieces.insert(at, (s, bytes.to_vec()));
    }
    (overlap, conflict, added)
}

/// Length of the contiguous data from offset 0.
fn contiguous_to(pieces: &[(u32, Vec<u8>)]) -> u32 {
    let mut at = 0;
    for (s, b) in pieces {
        if *s != at {
            break;
        }
        at += b.len() as u32;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            id,
            proto: 6,
            tunnel: 0,
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp { secs, nanos: 0 }
    }

    fn frag(d: &mut Defrag, id: u32, offset: u32, more: bool, data: &[u8]) -> Insert {
        d.insert(
            t(0),
            Piece {
                key: key(id),
                offset,
                more,
                data,
                truncated: false,
            },
        )
    }

    fn payload(i: Insert) -> Vec<u8> {
        match i {
            Insert::Complete(c) => c.payload,
            other => panic!("not complete: {other:?}"),
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn in_order_and_reversed() {
        let all = data(40);
        let mut d = Defrag::default();
        assert!(matches!(frag(&mut d, 1, 0, true, &all[..16]), Insert::Held));
        assert!(matches!(
            frag(&mut d, 1, 16, true, &all[16..32]),
            Insert::Held
        ));
        assert_eq!(payload(frag(&mut d, 1, 32, false, &all[32..])), all);
        assert!(matches!(
            frag(&mut d, 2, 32, false, &all[32..]),
            Insert::Held
        ));
        assert!(matches!(
            frag(&mut d, 2, 16, true, &all[16..32]),
            Insert::Held
        ));
        assert_eq!(payload(frag(&mut d, 2, 0, true, &all[..16])), all);
        assert_eq!(d.stats.reassembled, 2);
        assert_eq!((d.pending(), d.held_bytes()), (0, 0));
    }

    #[test]
    fn duplicates_count_as_overlaps_not_conflicts() {
        let all = data(24);
        let mut d = Defrag::default();
        frag(&mut d, 1, 0, true, &all[..16]);
        frag(&mut d, 1, 0, true, &all[..16]);
        let c = match frag(&mut d, 1, 16, false, &all[16..]) {
            Insert::Complete(c) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(c.payload, all);
        assert!(!c.notes.conflicting_overlap);
        assert_eq!((d.stats.overlaps, d.stats.conflicting_overlaps), (1, 0));
    }

    #[test]
    fn conflicting_overlap_keeps_first_data_and_notes_it() {
        let all = data(32);
        let mut d = Defrag::default();
        frag(&mut d, 1, 0, true, &all[..16]);
        let evil = vec![0xee; 16];
        // Overlaps bytes 8..16 with other bytes, adds 16..24.
        frag(&mut d, 1, 8, true, &evil);
        let c = match frag(&mut d, 1, 24, false, &all[24..]) {
            Insert::Complete(c) => c,
            other => panic!("{other:?}"),
        };
        let mut want = all[..16].to_vec();
        want.extend(&evil[8..]);
        want.extend(&all[24..]);
        assert_eq!(c.payload, want);
        assert!(c.notes.conflicting_overlap);
        assert!(c.notes.header_overlap, "offset 8 is inside the TCP header");
        assert_eq!(d.stats.conflicting_overlaps, 1);
    }

    #[test]
    fn tiny_first_fragment_is_noted() {
        let all = data(48);
        let mut d = Defrag::default();
        frag(&mut d, 1, 0, true, &all[..8]);
        let c = match frag(&mut d, 1, 8, false, &all[8..]) {
            Insert::Complete(c) => c,
            other => panic!("{other:?}"),
        };
        assert!(c.notes.tiny_first && c.notes.header_overlap);
    }

    #[test]
    fn contradictions_drop_the_datagram() {
        let all = data(48);
        let mut d = Defrag::default();
        frag(&mut d, 1, 0, true, &all[..16]);
        frag(&mut d, 1, 32, false, &all[32..]);
        // A second "last" fragment with another end.
        assert!(matches!(
            frag(&mut d, 1, 16, false, &all[16..24]),
            Insert::Dropped
        ));
        assert_eq!(d.pending(), 0);
        // A middle fragment not a multiple of 8, past the 64 KiB limit, cut short.
        assert!(matches!(
            frag(&mut d, 2, 0, true, &all[..10]),
            Insert::Dropped
        ));
        assert!(matches!(
            frag(&mut d, 2, 65_528, true, &all[..16]),
            Insert::Dropped
        ));
        let cut = d.insert(
            t(0),
            Piece {
                key: key(3),
                offset: 0,
                more: true,
                data: &all[..16],
                truncated: true,
            },
        );
        assert!(matches!(cut, Insert::Dropped));
        assert_eq!(d.stats.invalid, 4);
        assert_eq!(d.held_bytes(), 0);
    }

    #[test]
    fn timeout_in_packet_time() {
        let all = data(16);
        let mut d = Defrag::default();
        frag(&mut d, 1, 0, true, &all[..8]);
        d.expire(t(TIMEOUT_SECS));
        assert_eq!(d.pending(), 1);
        d.expire(t(TIMEOUT_SECS + 1));
        assert_eq!((d.pending(), d.stats.timed_out, d.held_bytes()), (0, 1, 0));
        // The late last fragment starts a new datagram, not a completion.
        assert!(matches!(frag(&mut d, 1, 8, false, &all[8..]), Insert::Held));
    }

    #[test]
    fn caps_on_datagrams_fragments_and_bytes() {
        let limits = DefragLimits {
            max_datagrams: 4,
            max_fragments: 3,
            max_bytes: 4 * (8 + PIECE_OVERHEAD),
            timeout_secs: 30,
        };
        let mut d = Defrag::new(limits);
        let eight = data(8);
        for id in 0..10 {
            frag(&mut d, id, 0, true, &eight);
            assert!(d.pending() <= 4 && d.held_bytes() <= limits.max_bytes);
        }
        assert_eq!(d.stats.dropped_at_cap, 6);
        // The newest survive.
        let all = data(16);
        assert_eq!(payload(frag(&mut d, 9, 8, false, &all[8..]))[8..], all[8..]);
        // Too many fragments for one datagram.
        frag(&mut d, 20, 0, true, &eight);
        frag(&mut d, 20, 0, true, &eight);
        frag(&mut d, 20, 0, true, &eight);
        assert!(matches!(frag(&mut d, 20, 8, true, &eight), Insert::Dropped));
        // One big datagram over the byte cap is dropped.
        let big = data(1024);
        assert!(matches!(frag(&mut d, 30, 0, true, &big), Insert::Dropped));
        assert!(d.held_bytes() <= limits.max_bytes);
    }

    #[test]
    fn flood_of_never_completed_datagrams_stays_bounded() {
        let mut d = Defrag::default();
        let eight = data(8);
        for id in 0..100_000u32 {
            d.insert(
                t(i64::from(id / 1000)),
                Piece {
                    key: key(id),
                    offset: 8,
                    more: true,
                    data: &eight,
                    truncated: false,
                },
            );
        }
        assert!(d.pending() <= MAX_DATAGRAMS);
        assert!(d.order.len() <= MAX_DATAGRAMS * 4 + 1);
        assert!(d.held_bytes() <= MAX_BYTES);
        assert_eq!(d.stats.fragments, 100_000);
    }

    /// A naive model: a byte array where the first write to each offset wins.
    #[test]
    fn random_fragments_match_a_naive_model() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..500u32 {
            let len = 8 * (1 + rnd(40) as usize) + rnd(8) as usize;
            let truth = data(len);
            let mut d = Defrag::default();
            let mut model: Vec<Option<u8>> = vec![None; len];
            let mut done = None;
            for _ in 0..200 {
                let start = 8 * rnd(len.div_ceil(8) as u64) as usize;
                let last = rnd(4) == 0;
                let end = if last {
                    len
                } else {
                    (start + 8 * (1 + rnd(6) as usize)).min(len / 8 * 8)
                };
                if end <= start {
                    continue;
                }
                // Sometimes other bytes than the truth: the first write must win.
                let mut bytes = truth[start..end].to_vec();
                if rnd(5) == 0 {
                    bytes.iter_mut().for_each(|b| *b ^= 0x5a);
                }
                for (i, b) in bytes.iter().enumerate() {
                    model[start + i].get_or_insert(*b);
                }
                match frag(&mut d, round, start as u32, !last || end != len, &bytes) {
                    Insert::Complete(c) => {
                        done = Some(c.payload);
                        break;
                    }
                    Insert::Held => {}
                    Insert::Dropped => panic!("dropped at {start}..{end} of {len}"),
                }
            }
            let complete = model.iter().all(Option::is_some);
            match done {
                Some(p) => {
                    let want: Vec<u8> = model.iter().map(|b| b.unwrap_or(0)).collect();
                    assert_eq!(p, want, "round {round}");
                }
                None => assert!(!complete || d.pending() == 1, "round {round}"),
            }
        }
    }
}
