//! Packets written to a classic pcap file (`-w` while reading files): nanosecond
//! timestamps, each packet's captured bytes and length on the wire as read.
//!
//! In: [`Packet`]s. Out: a pcap file of the first packet's link type; a classic
//! pcap file holds one link type, so packets of another are counted, not written.

use crate::capture::Packet;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// The snap length the file header states.
pub const SNAPLEN: u32 = 262_144;
/// The link type of a file no packet was written to.
const EMPTY_LINKTYPE: i32 = 1;
/// The nanosecond-resolution pcap magic number.
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

/// A pcap file being written.
pub struct PcapWriter<W: Write> {
    out: W,
    /// The file's link type, once its header is written.
    linktype: Option<i32>,
    /// Packets not written because their link type differs from the file's.
    pub other_links: BTreeMap<i32, u64>,
    /// Packets written.
    pub written: u64,
}

impl PcapWriter<io::BufWriter<std::fs::File>> {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &str) -> io::Result<Self> {
        let file = std::fs::File::create(path)?;
        Ok(PcapWriter::new(io::BufWriter::with_capacity(1 << 16, file)))
    }
}

impl<W: Write> PcapWriter<W> {
    pub fn new(out: W) -> Self {
        PcapWriter {
            out,
            linktype: None,
            other_links: BTreeMap::new(),
            written: 0,
        }
    }

    fn header(&mut self, linktype: i32) -> io::Result<()> {
        let mut h = Vec::with_capacity(24);
        h.extend(MAGIC_NANOS.to_le_bytes());
        h.extend(2u16.to_le_bytes());
        h.extend(4u16.to_le_bytes());
        h.extend(0i32.to_le_bytes());
        h.extend(0u32.to_le_bytes());
        h.extend(SNAPLEN.to_le_bytes());
        h.extend(linktype.to_le_bytes());
        self.linktype = Some(linktype);
        self.out.write_all(&h)
    }

    /// Writes `p`; a packet of another link type than the file's is only counted.
    pub fn write(&mut self, p: &Packet<'_>) -> io::Result<()> {
        match self.linktype {
            None => self.header(p.linktype)?,
            Some(lt) if lt != p.linktype => {
                *self.other_links.entry(p.linktype).or_default() += 1;
                return Ok(());
            }
            Some(_) => {}
        }
        let secs = u32::try_from(p.ts.secs.max(0)).unwrap_or(u32::MAX);
        let caplen = u32::try_from(p.data.len()).unwrap_or(u32::MAX);
        let mut rec = [0u8; 16];
        for (dst, v) in
            rec.chunks_exact_mut(4)
                .zip([secs, p.ts.nanos, caplen, p.orig_len.max(caplen)])
        {
            dst.copy_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&rec)?;
        self.out.write_all(p.data)?;
        self.written += 1;
        Ok(())
    }

    /// Writes the header if no packet did, flushes, and hands the output back.
    pub fn finish(mut self) -> io::Result<W> {
        if self.linktype.is_none() {
            self.header(EMPTY_LINKTYPE)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::read_capture;
    use crate::time::Timestamp;

    fn packet(linktype: i32, secs: i64, nanos: u32, data: &[u8]) -> Packet<'_> {
        Packet {
            number: 1,
            ts: Timestamp { secs, nanos },
            linktype,
            data,
            orig_len: data.len() as u32 + 10,
            chunk: None,
        }
    }

    #[test]
    fn written_packets_read_back_the_same() {
        let mut w = PcapWriter::new(Vec::new());
        w.write(&packet(101, 1_700_000_000, 123_456_789, &[0x45, 1, 2]))
            .unwrap();
        w.write(&packet(1, 1_700_000_001, 0, &[9; 20])).unwrap();
        w.write(&packet(101, 1_700_000_002, 5, &[0x60; 7])).unwrap();
        assert_eq!(w.written, 2);
        assert_eq!(w.other_links.get(&1), Some(&1));
        let bytes = w.finish().unwrap();
        let mut seen = Vec::new();
        let out = read_capture("w", &bytes[..], &mut |p| {
            seen.push((p.linktype, p.ts, p.data.to_vec(), p.orig_len));
        })
        .unwrap();
        assert_eq!(out.packets, 2);
        let ts = |secs, nanos| Timestamp { secs, nanos };
        assert_eq!(
            seen,
            [
                (101, ts(1_700_000_000, 123_456_789), vec![0x45, 1, 2], 13),
                (101, ts(1_700_000_002, 5), vec![0x60; 7], 17),
            ]
        );
    }

    #[test]
    fn nothing_written_is_still_a_capture() {
        let bytes = PcapWriter::new(Vec::new()).finish().unwrap();
        assert_eq!(bytes.len(), 24);
        let out = read_capture("w", &bytes[..], &mut |_| {}).unwrap();
        assert_eq!(out.packets, 0);
    }
}
