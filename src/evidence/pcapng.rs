//! A pcapng writer for `--write-flows`: one section, an interface per link type
//! (and per time offset, see [`Writer::packet`]), nanosecond timestamps, each
//! packet as captured (its original length kept).

use crate::time::Timestamp;
use std::io::{self, Write};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const EPB: u32 = 6;
/// `if_tsresol`: timestamps in units of 10^-9 s.
const OPT_TSRESOL: u16 = 9;
/// `if_tsoffset`: seconds added to every timestamp of the interface.
const OPT_TSOFFSET: u16 = 14;
const NANOS: u64 = 1_000_000_000;

/// Writes packets to a pcapng stream.
pub struct Writer<W: Write> {
    out: W,
    /// (link type, time offset in seconds) of each interface written, by id.
    interfaces: Vec<(i32, i64)>,
    pub packets: u64,
}

impl<W: Write> Writer<W> {
    /// Starts the file: its section header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut b = block(SHB);
        b.extend(0x1A2B_3C4Du32.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend(0u16.to_le_bytes());
        b.extend(u64::MAX.to_le_bytes()); // section length unknown
        out.write_all(&finish(b))?;
        Ok(Writer {
            out,
            interfaces: Vec::new(),
            packets: 0,
        })
    }

    /// One packet of link type `linktype` as captured at `ts`. pcapng timestamps
    /// are unsigned: a packet from before 1970 goes on an interface whose
    /// `if_tsoffset` moves its times back far enough.
    pub fn packet(
        &mut self,
        linktype: i32,
        ts: Timestamp,
        orig_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let offset = if ts.secs >= 0 {
            0
        } else {
            ts.secs.div_euclid(1 << 32) * (1 << 32)
        };
        let id = self.interface(linktype, offset)?;
        let since = (ts.secs - offset) as u64;
        let t = since
            .saturating_mul(NANOS)
            .saturating_add(u64::from(ts.nanos));
        let caplen = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let mut b = block(EPB);
        b.extend(id.to_le_bytes());
        b.extend(((t >> 32) as u32).to_le_bytes());
        b.extend((t as u32).to_le_bytes());
        b.extend(caplen.to_le_bytes());
        b.extend(orig_len.max(caplen).to_le_bytes());
        b.extend(data.get(..caplen as usize).unwrap_or(data));
        pad(&mut b);
        self.out.write_all(&finish(b))?;
        self.packets += 1;
        Ok(())
    }

    /// The id of the interface for (`linktype`, `offset`), described on first use.
    fn interface(&mut self, linktype: i32, offset: i64) -> io::Result<u32> {
        if let Some(i) = self
            .interfaces
            .iter()
            .position(|&x| x == (linktype, offset))
        {
            return Ok(i as u32);
        }
        let mut b = block(IDB);
        b.extend((linktype as u16).to_le_bytes());
        b.extend(0u16.to_le_bytes());
        b.extend(0u32.to_le_bytes()); // no snap length limit
        b.extend(OPT_TSRESOL.to_le_bytes());
        b.extend(1u16.to_le_bytes());
        b.extend([9, 0, 0, 0]);
        if offset != 0 {
            b.extend(OPT_TSOFFSET.to_le_bytes());
            b.extend(8u16.to_le_bytes());
            b.extend(offset.to_le_bytes());
        }
        b.extend([0, 0, 0, 0]); // opt_endofopt
        self.out.write_all(&finish(b))?;
        self.interfaces.push((linktype, offset));
        Ok(self.interfaces.len() as u32 - 1)
    }

    /// Flushes and hands back the stream.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A block's type and a placeholder for its length.
fn block(kind: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend(kind.to_le_bytes());
    b.extend(0u32.to_le_bytes());
    b
}

fn pad(b: &mut Vec<u8>) {
    while !b.len().is_multiple_of(4) {
        b.push(0);
    }
}

/// Writes the block's total length at both ends.
fn finish(mut b: Vec<u8>) -> Vec<u8> {
    let len = (b.len() + 4) as u32;
    if let Some(slot) = b.get_mut(4..8) {
        slot.copy_from_slice(&len.to_le_bytes());
    }
    b.extend(len.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::read_capture;

    /// What is written reads back the same: link types, times (also before 1970),
    /// lengths and bytes.
    #[test]
    fn written_packets_read_back_the_same() {
        let pkts: Vec<(i32, Timestamp, u32, Vec<u8>)> = vec![
            (
                1,
                Timestamp {
                    secs: 1_700_000_000,
                    nanos: 123_456_789,
                },
                60,
                vec![1, 2, 3],
            ),
            (101, Timestamp { secs: 5, nanos: 0 }, 4, vec![0x45, 0, 0, 4]),
            (
                1,
                Timestamp {
                    secs: -86_400,
                    nanos: 7,
                },
                1500,
                vec![9; 61],
            ),
        ];
        let mut w = Writer::new(Vec::new()).unwrap();
        for (lt, ts, orig, data) in &pkts {
            w.packet(*lt, *ts, *orig, data).unwrap();
        }
        assert_eq!(w.packets, 3);
        let bytes = w.finish().unwrap();
        let mut got = Vec::new();
        read_capture("written", &bytes[..], &mut |p| {
            got.push((p.linktype, p.ts, p.orig_len, p.data.to_vec()));
        })
        .unwrap();
        assert_eq!(got, pkts);
    }
}
