//! One direction's reassembly driven by a sequence of arbitrary SYNs, segments, acks,
//! FINs and flushes, with small caps so that they are hit; checks the stream's invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlswatch::flow::reassembly::{Chunk, SeqNum, Stream};
use tlswatch::config::StreamLimits;

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

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops(data);
    let limits = StreamLimits {
        max_buffered: 2048,
        max_segments: 8,
    };
    let mut s = Stream::new(limits);
    let Some(isn) = ops.u32() else {
        return;
    };
    let mut out = 0u64;
    let mut sink = |c: Chunk<'_>| match c {
        Chunk::Data(b) => {
            assert!(!b.is_empty(), "empty data chunk");
            out += b.len() as u64;
        }
        Chunk::Gap(n) => {
            assert!(n > 0, "zero gap");
            out += n;
        }
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
            0 => s.on_syn(seq),
            1 | 2 | 3 => {
                let Some(len) = ops.byte() else { break };
                let payload = ops.bytes(usize::from(len) * 4);
                s.on_segment(seq, payload, &mut sink);
            }
            4 => s.on_peer_ack(seq, &mut sink),
            5 => s.on_fin(seq),
            6 => s.flush(&mut sink),
            _ => {
                if op & 0x40 != 0 {
                    s.bypass();
                }
            }
        }
        assert!(s.delivered() >= before, "delivery point moved back");
        assert!(s.buffered() <= limits.max_buffered);
        assert!(s.buffered_segments() <= limits.max_segments);
    }
    s.flush(&mut sink);
    assert_eq!(s.buffered(), 0);
    assert_eq!(out, s.delivered(), "chunks and delivery point disagree");
});
