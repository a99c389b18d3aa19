//! One direction's CRYPTO stream in the Initial packet number space: frames
//! reassembled by offset (across packets and coalesced datagrams, in any order),
//! then cut into handshake messages.
//!
//! Invariant: `next` is the first byte not yet delivered; every held run starts
//! after `next` and ends at most [`MAX_CRYPTO_OFFSET`]; the held runs, each with
//! [`RUN_OVERHEAD`], total at most [`MAX_CRYPTO_HELD`] bytes (so both the bytes
//! and the number of runs are bounded).

use std::collections::BTreeMap;

/// Out-of-order CRYPTO bytes held per direction, [`RUN_OVERHEAD`] included.
pub const MAX_CRYPTO_HELD: usize = 64 * 1024;
/// What one held run costs beside its bytes: its share of a B-tree node (key and
/// vector) and its own allocation. Counted against [`MAX_CRYPTO_HELD`] and in the
/// heap estimate, so that a stream of one-byte frames cannot hold many times what
/// it is charged.
pub const RUN_OVERHEAD: usize = 64;
/// CRYPTO data past this stream offset is dropped: the Initial hellos fit well
/// within it, and a peer cannot make us wait for bytes that far ahead.
pub const MAX_CRYPTO_OFFSET: u64 = 64 * 1024;
/// Largest handshake message collected for parsing.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// What an insertion did beyond delivering bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Bytes dropped by a cap (held bytes, or offsets too far ahead).
    pub capped: bool,
}

/// Reassembles a CRYPTO stream; in-order bytes go to the callback.
#[derive(Debug, Default)]
pub struct CryptoStream {
    next: u64,
    held: BTreeMap<u64, Vec<u8>>,
    held_bytes: usize,
}

impl CryptoStream {
    /// Bytes delivered in order so far.
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Out-of-order bytes held now.
    pub fn held(&self) -> usize {
        self.held_bytes
    }

    /// Bytes the held runs cost on the heap: their bytes and [`RUN_OVERHEAD`] each.
    pub fn heap_bytes(&self) -> usize {
        self.held_bytes + RUN_OVERHEAD * self.held.len()
    }

    /// One CRYPTO frame's data at `offset`.
    pub fn insert(&mut self, offset: u64, data: &[u8], out: &mut dyn FnMut(&[u8])) -> Dropped {
        let mut dropped = Dropped::default();
        let end = offset.saturating_add(data.len() as u64);
        if end <= self.next || data.is_empty() {
            return dropped;
        }
        let (offset, mut data) = if offset < self.next {
            let skip = usize::try_from(self.next - offset).unwrap_or(usize::MAX);
            (self.next, data.get(skip..).unwrap_or_default())
        } else {
            (offset, data)
        };
        if end > MAX_CRYPTO_OFFSET {
            let keep = usize::try_from(MAX_CRYPTO_OFFSET.saturating_sub(offset)).unwrap_or(0);
            data = data.get(..keep).unwrap_or_default();
            dropped.capped = true;
            if data.is_empty() {
                return dropped;
            }
        }
        if offset == self.next {
            out(data);
            self.next += data.len() as u64;
            self.drain(out);
        } else if self.heap_bytes() + data.len() + RUN_OVERHEAD > MAX_CRYPTO_HELD {
            dropped.capped = true;
        } else {
            let slot = self.held.entry(offset).or_default();
            if data.len() > slot.len() {
                self.held_bytes += data.len() - slot.len();
                *slot = data.to_vec();
            }
        }
        dropped
    }

    /// Delivers held runs that now touch `next`; first data wins on overlaps.
    fn drain(&mut self, out: &mut dyn FnMut(&[u8])) {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            let start = *entry.key();
            let run = entry.remove();
            self.held_bytes -= run.len();
            let skip = usize::try_from(self.next - start).unwrap_or(usize::MAX);
            if let Some(tail) = run.get(skip..)
                && !tail.is_empty()
            {
                out(tail);
                self.next += tail.len() as u64;
            }
        }
    }
}

/// One complete handshake message: its type and body (after the 4-byte header).
pub type Message<'a> = (u8, &'a [u8]);

/// Cuts an in-order handshake byte stream into messages (TLS framing:
/// type, 24-bit length, body). Bodies past [`MAX_MESSAGE_LEN`] are skipped.
#[derive(Debug, Default)]
pub struct Messages {
    hdr: [u8; 4],
    hdr_len: usize,
    remaining: usize,
    collect: bool,
    buf: Vec<u8>,
    /// A message was too large to collect.
    pub too_large: bool,
}

impl Messages {
    /// Bytes held on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes of the stream, in order; `f` gets each complete message.
    pub fn feed(&mut self, mut data: &[u8], f: &mut dyn FnMut(Message<'_>)) {
        while !data.is_empty() {
            if self.hdr_len < 4 {
                let n = (4 - self.hdr_len).min(data.len());
                for (slot, &b) in self.hdr.iter_mut().skip(self.hdr_len).zip(data) {
                    *slot = b;
                }
                self.hdr_len += n;
                data = data.get(n..).unwrap_or_default();
                if self.hdr_len < 4 {
                    return;
                }
                let [_, a, b, c] = self.hdr;
                self.remaining = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                self.collect = self.remaining <= MAX_MESSAGE_LEN;
                self.too_large |= !self.collect;
                self.buf.clear();
            }
            let n = self.remaining.min(data.len());
            if self.collect {
                self.buf
                    .extend_from_slice(data.get(..n).unwrap_or_default());
            }
            self.remaining -= n;
            data = data.get(n..).unwrap_or_default();
            if self.remaining == 0 {
                self.hdr_len = 0;
                if self.collect {
                    f((self.hdr[0], &self.buf));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds (offset, len) pieces of `stream` and returns what came out in order.
    fn run(stream: &[u8], pieces: &[(usize, usize)]) -> (Vec<u8>, CryptoStream) {
        let mut s = CryptoStream::default();
        let mut out = Vec::new();
        for &(o, l) in pieces {
            s.insert(o as u64, &stream[o..o + l], &mut |b| {
                out.extend_from_slice(b)
            });
        }
        (out, s)
    }

    fn stream(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn in_order_out_of_order_duplicate_overlap() {
        let s = stream(100);
        assert_eq!(run(&s, &[(0, 100)]).0, s);
        assert_eq!(run(&s, &[(50, 50), (0, 50)]).0, s);
        assert_eq!(run(&s, &[(0, 30), (0, 30), (20, 40), (60, 40)]).0, s);
        assert_eq!(run(&s, &[(70, 30), (10, 80), (0, 20)]).0, s);
        let (out, st) = run(&s, &[(10, 10), (40, 10)]);
        assert!(out.is_empty());
        assert_eq!(st.held(), 20);
        assert_eq!(st.delivered(), 0);
    }

    #[test]
    fn a_hole_holds_back_what_follows() {
        let s = stream(100);
        let (out, st) = run(&s, &[(0, 40), (60, 40)]);
        assert_eq!(out, &s[..40]);
        assert_eq!((st.delivered(), st.held()), (40, 40));
    }

    #[test]
    fn far_offsets_and_the_held_cap_are_dropped() {
        let mut s = CryptoStream::default();
        let mut out = 0usize;
        let d = s.insert(u64::MAX - 4, &[1, 2, 3], &mut |b| out += b.len());
        assert!(d.capped);
        let d = s.insert(MAX_CRYPTO_OFFSET, &[1], &mut |b| out += b.len());
        assert!(d.capped);
        assert_eq!(s.held(), 0);
        // Fill the held budget with runs after a hole at 0.
        let chunk = vec![9u8; 1000];
        let mut capped = false;
        for i in 1..80u64 {
            capped |= s.insert(i * 1000, &chunk, &mut |b| out += b.len()).capped;
        }
        assert!(capped);
        assert!(s.heap_bytes() <= MAX_CRYPTO_HELD);
        assert_eq!(out, 0);
    }

    /// One-byte runs count their overhead: far fewer of them are held than the
    /// byte cap alone would allow, and the estimate stays under the cap.
    #[test]
    fn tiny_runs_are_bounded_by_their_overhead() {
        let mut s = CryptoStream::default();
        let mut out = 0usize;
        let mut capped = false;
        for i in 1..MAX_CRYPTO_HELD as u64 / 2 {
            capped |= s.insert(2 * i, &[7], &mut |b| out += b.len()).capped;
        }
        assert!(capped);
        assert_eq!(s.held(), MAX_CRYPTO_HELD / (RUN_OVERHEAD + 1));
        assert!(s.heap_bytes() <= MAX_CRYPTO_HELD);
        assert_eq!(out, 0);
    }

    /// Split invariance, and a seeded random order against a naive model.
    #[test]
    fn any_split_any_order_gives_the_same_stream() {
        let s = stream(3000);
        for at in 1..s.len() {
            assert_eq!(run(&s, &[(at, s.len() - at), (0, at)]).0, s, "split {at}");
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..200 {
            let mut pieces = Vec::new();
            for _ in 0..rnd(30) + 1 {
                let o = rnd(s.len());
                pieces.push((o, rnd(s.len() - o) + 1));
            }
            let mut model = vec![false; s.len()];
            for &(o, l) in &pieces {
                model[o..o + l].iter_mut().for_each(|m| *m = true);
            }
            let want = model.iter().take_while(|&&m| m).count();
            let (out, _) = run(&s, &pieces);
            assert_eq!(out, &s[..want], "{pieces:?}");
        }
    }

    #[test]
    fn messages_split_invariant() {
        let mut t = vec![1, 0, 0, 3, b'a', b'b', b'c', 2, 0, 0, 1, b'z'];
        t.extend([8, 0, 0, 0]);
        let collect = |cuts: &[usize]| {
            let mut m = Messages::default();
            let mut got = Vec::new();
            let mut at = 0;
            for &c in cuts.iter().chain([t.len()].iter()) {
                m.feed(&t[at..c], &mut |(ty, b)| got.push((ty, b.to_vec())));
                at = c;
            }
            got
        };
        let whole = collect(&[]);
        assert_eq!(
            whole,
            vec![(1, b"abc".to_vec()), (2, b"z".to_vec()), (8, vec![])]
        );
        for i in 0..=t.len() {
            for j in i..=t.len() {
                assert_eq!(collect(&[i, j]), whole, "cuts {i} {j}");
            }
        }
    }

    #[test]
    fn oversized_messages_are_skipped() {
        let mut m = Messages::default();
        let mut n = 0;
        m.feed(&[1, 0xff, 0xff, 0xff, 0, 0, 0], &mut |_| n += 1);
        assert!(m.too_large);
        assert_eq!(n, 0);
    }
}
