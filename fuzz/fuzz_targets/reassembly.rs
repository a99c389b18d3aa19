//! One direction's reassembly driven by a sequence of arbitrary SYNs, segments (some sent
//! backwards one byte at a time), acks, FINs and flushes, with a small budget so that it
//! is hit; checks the stream's invariants.
//!
//! In consistent mode (the first input byte even) every payload byte is a function of its
//! sequence number, as a real sender's retransmissions are: then every byte handed on must
//! be that function of its place in the stream, whatever the merging of runs did, and no
//! conflicting overlap may be noted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlswatch::config::StreamLimits;
use tlswatch::flow::reassembly::{Chunk, HISTORY, RUN_OVERHEAD, SeqNum, Stream};

struct Ops<'a>(&'a [u8]);

impl Ops<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// The byte a consistent sender puts at sequence number `seq`.
fn content(seq: u32) -> u8 {
    (seq.wrapping_mul(2_654_435_761) >> 24) as u8
}

const LIMITS: StreamLimits = StreamLimits { max_buffered: 2048 };

/// What the harness knows of the stream: where offset 0 is, and how much was handed on.
struct Model {
    consistent: bool,
    base: Option<u32>,
    bypassed: bool,
    out: u64,
}

impl Model {
    fn sink(&mut self) -> impl FnMut(Chunk<'_>) + '_ {
        |c: Chunk<'_>| match c {
            Chunk::Data(b) => {
                assert!(!b.is_empty(), "empty data chunk");
                if self.consistent {
                    let base = self.base.expect("data before the stream started");
                    for (i, &x) in b.iter().enumerate() {
                        let seq = SeqNum(base).advance(self.out + i as u64);
                        assert_eq!(x, content(seq.0), "wrong byte at offset {}", self.out);
                    }
                }
                self.out += b.len() as u64;
            }
            Chunk::Gap(n) => {
                assert!(n > 0, "zero gap");
                self.out += n;
            }
        }
    }
}

fn segment(s: &mut Stream, m: &mut Model, seq: SeqNum, payload: &[u8]) {
    if !payload.is_empty() && !m.bypassed {
        m.base.get_or_insert(seq.0);
    }
    s.on_segment(seq, payload, &mut m.sink());
}

fn payload(ops: &mut Ops<'_>, m: &Model, seq: SeqNum, len: usize) -> Vec<u8> {
    if m.consistent {
        (0..len as u32)
            .map(|i| content(seq.0.wrapping_add(i)))
            .collect()
    } else {
        ops.bytes(len).to_vec()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops(data);
    let Some(mode) = ops.byte() else {
        return;
    };
    let mut s = Stream::new(LIMITS);
    let Some(isn) = ops.u32() else {
        return;
    };
    let mut m = Model {
        consistent: mode & 1 == 0,
        base: None,
        bypassed: false,
        out: 0,
    };
    while let Some(op) = ops.byte() {
        // Sequence numbers near the ISN most of the time, anywhere otherwise.
        let near = op & 0x80 == 0;
        let seq = if near {
            let Some(off) = ops.u16() else { break };
            SeqNum(isn).wrapping_add(u32::from(off))
        } else {
            let Some(v) = ops.u32() else { break };
            SeqNum(v)
        };
        let before = s.delivered();
        match op & 7 {
            0 => {
                m.base.get_or_insert(seq.0.wrapping_add(1));
                s.on_syn(seq);
            }
            1 | 2 => {
                let Some(len) = ops.byte() else { break };
                let p = payload(&mut ops, &m, seq, usize::from(len) * 4);
                segment(&mut s, &mut m, seq, &p);
            }
            3 => {
                // A block sent backwards, one byte per segment.
                let Some(len) = ops.byte() else { break };
                let p = payload(&mut ops, &m, seq, usize::from(len));
                for i in (0..p.len()).rev() {
                    segment(&mut s, &mut m, seq.wrapping_add(i as u32), &p[i..=i]);
                }
            }
            4 => s.on_peer_ack(seq, &mut m.sink()),
            5 => {
                if !m.bypassed {
                    m.base.get_or_insert(seq.0);
                }
                s.on_fin(seq);
            }
            6 => s.flush(&mut m.sink()),
            _ => {
                if op & 0x40 != 0 {
                    m.bypassed = true;
                    s.bypass();
                }
            }
        }
        assert!(s.delivered() >= before, "delivery point moved back");
        let used = s.buffered() + s.buffered_segments() * RUN_OVERHEAD;
        assert!(used <= LIMITS.max_buffered, "over budget: {used}");
        // Room in front of a run at most doubles it; the history is capped.
        assert!(s.heap_bytes() <= 4 * LIMITS.max_buffered + HISTORY);
        if m.consistent {
            assert!(
                !s.notes().conflicting_overlap,
                "a consistent sender conflicted"
            );
        }
    }
    s.flush(&mut m.sink());
    assert_eq!(s.buffered(), 0);
    assert_eq!(m.out, s.delivered(), "chunks and delivery point disagree");
});
