//! Packet sources: pcap and pcapng files (recognised by magic number), read as a stream.

use crate::record::Timestamp;
use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError, create_reader};
use std::io::Read;

/// Initial read buffer of the capture reader.
pub const READ_BUFFER: usize = 1 << 20;
/// Interfaces remembered per pcapng section; a file describing more is hostile.
pub const MAX_INTERFACES: usize = 4096;
/// Largest capture record accepted; a bigger length field means the file is corrupt
/// (the biggest snap length in use is 256 KiB; pcapng blocks may carry options too).
pub const MAX_RECORD: usize = 4 << 20;

/// One captured packet, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Packet<'a> {
    /// 1-based packet number within its input, as Wireshark counts.
    pub number: u64,
    pub ts: Timestamp,
    pub linktype: i32,
    pub data: &'a [u8],
    /// Length on the wire (may exceed `data.len()` when the snap length cut it).
    pub orig_len: u32,
}

/// What went wrong reading an input. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: not a pcap or pcapng file")]
    NotACapture { file: String },
    #[error("{file}: corrupt capture at byte offset {offset} (after packet {packet}): {what}")]
    Corrupt {
        file: String,
        offset: u64,
        packet: u64,
        what: String,
    },
}

/// What a successful read of one input observed.
#[derive(Debug, Default, Clone)]
pub struct ReadOutcome {
    pub packets: u64,
    /// Set when the file ended in the middle of a record.
    pub truncated_at_packet: Option<u64>,
    /// Packets referring to an interface the file never described.
    pub bad_interface: u64,
}

#[derive(Clone, Copy)]
struct Interface {
    linktype: i32,
    /// Timestamp units per second.
    resolution: u64,
    offset_secs: i64,
}

/// A packet found in a block: time, link type, captured bytes, length on the wire.
type Found<'b> = (Timestamp, i32, &'b [u8], u32);

/// What the blocks read so far say about the ones to come.
struct Format {
    legacy_linktype: i32,
    legacy_nanos: bool,
    legacy_big: bool,
    is_ng: bool,
    /// Interfaces of the current pcapng section.
    interfaces: Vec<Interface>,
    big_endian: bool,
    /// The last packet time (a pcapng Simple Packet Block has none of its own).
    last_ts: Timestamp,
}

impl Format {
    fn new() -> Self {
        Format {
            legacy_linktype: 1,
            legacy_nanos: false,
            legacy_big: false,
            is_ng: false,
            interfaces: Vec::new(),
            big_endian: false,
            last_ts: Timestamp::default(),
        }
    }

    /// Record lengths are big-endian.
    fn big(&self) -> bool {
        self.big_endian || (!self.is_ng && self.legacy_big)
    }

    /// Learns from a header block, or finds the packet a block carries.
    fn block<'b>(&mut self, block: PcapBlockOwned<'b>, out: &mut ReadOutcome) -> Option<Found<'b>> {
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                self.legacy_linktype = h.network.0;
                self.legacy_nanos = h.is_nanosecond_precision();
                self.legacy_big = h.is_bigendian();
                None
            }
            PcapBlockOwned::Legacy(b) => {
                let nanos = if self.legacy_nanos {
                    b.ts_usec
                } else {
                    b.ts_usec.saturating_mul(1000)
                };
                let ts = Timestamp {
                    secs: i64::from(b.ts_sec),
                    nanos: nanos.min(999_999_999),
                };
                Some((ts, self.legacy_linktype, b.data, b.origlen))
            }
            PcapBlockOwned::NG(b) => self.ng_block(b, out),
        }
    }

    fn ng_block<'b>(&mut self, block: Block<'b>, out: &mut ReadOutcome) -> Option<Found<'b>> {
        let found = match block {
            Block::SectionHeader(shb) => {
                self.interfaces.clear();
                self.is_ng = true;
                self.big_endian = shb.big_endian();
                return None;
            }
            Block::InterfaceDescription(idb) => {
                if self.interfaces.len() < MAX_INTERFACES {
                    self.interfaces.push(Interface {
                        linktype: idb.linktype.0,
                        resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                        offset_secs: idb.ts_offset(),
                    });
                }
                return None;
            }
            Block::EnhancedPacket(epb) => self.interfaces.get(epb.if_id as usize).map(|ifc| {
                let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let caplen = (epb.caplen as usize).min(epb.data.len());
                let data = epb.data.get(..caplen).unwrap_or(epb.data);
                (ng_timestamp(raw, *ifc), ifc.linktype, data, epb.origlen)
            }),
            // No timestamp in an SPB: it inherits the last one seen.
            Block::SimplePacket(spb) => self
                .interfaces
                .first()
                .map(|ifc| (self.last_ts, ifc.linktype, spb.data, spb.origlen)),
            Block::Unknown(u) if u.block_type == 2 => {
                obsolete_packet_block(u.data, self.big_endian).and_then(
                    |(if_id, raw, data, origlen)| {
                        let ifc = self.interfaces.get(usize::from(if_id))?;
                        Some((ng_timestamp(raw, *ifc), ifc.linktype, data, origlen))
                    },
                )
            }
            _ => return None,
        };
        if found.is_none() {
            out.bad_interface += 1;
        }
        found
    }
}

/// Reads the capture file at `path` (`-` for standard input), handing each packet to `f`.
pub fn read_path(path: &str, f: &mut dyn FnMut(&Packet<'_>)) -> Result<ReadOutcome, CaptureError> {
    if path == "-" {
        return read_capture("-", std::io::stdin(), f);
    }
    match std::fs::File::open(path) {
        Ok(file) => read_capture(path, file, f),
        Err(e) => Err(CaptureError::Io {
            file: path.to_string(),
            source: e,
        }),
    }
}

/// Reads every packet of `input` (pcap or pcapng, either byte order) and hands it to `f`.
///
/// Streaming: memory is the read buffer (grown up to [`MAX_RECORD`] for a large record),
/// whatever the file size. A file cut off mid-record is not an error: the outcome says
/// where it stopped.
pub fn read_capture<R: Read + Send>(
    file: &str,
    input: R,
    f: &mut dyn FnMut(&Packet<'_>),
) -> Result<ReadOutcome, CaptureError> {
    let mut reader = match create_reader(READ_BUFFER, input) {
        Ok(r) => r,
        Err(PcapError::ReadError) => return Err(read_failed(file)),
        Err(_) => {
            return Err(CaptureError::NotACapture {
                file: file.to_string(),
            });
        }
    };
    let mut out = ReadOutcome::default();
    let mut format = Format::new();
    let mut capacity = READ_BUFFER;
    loop {
        let stop = match reader.next() {
            Ok((len, block)) => {
                if let Some((ts, linktype, data, orig_len)) = format.block(block, &mut out) {
                    out.packets += 1;
                    format.last_ts = ts;
                    f(&Packet {
                        number: out.packets,
                        ts,
                        linktype,
                        data,
                        orig_len,
                    });
                }
                // Without the shift `consume` does past half the buffer, which would
                // move half a buffer of unread bytes each time; `refill` shifts what is left.
                reader.consume_noshift(len);
                continue;
            }
            Err(e) => Stop::of(&e),
        };
        let (offset, packets) = (reader.consumed(), out.packets);
        let at = |what| corrupt(file, offset, packets, what);
        let plausible = pending_record_len(reader.data(), format.is_ng, format.big());
        match stop {
            Stop::Eof => break,
            Stop::Incomplete if !reader.reader_exhausted() => {}
            Stop::Incomplete | Stop::CutShort => {
                plausible.map_err(at)?;
                out.truncated_at_packet = Some(out.packets + 1);
                break;
            }
            Stop::TooSmall => {
                plausible.map_err(at)?;
                if capacity >= MAX_RECORD || !reader.grow(capacity * 2) {
                    return Err(at(format!("record longer than {MAX_RECORD} bytes")));
                }
                capacity *= 2;
            }
            Stop::Corrupt(what) => return Err(at(what.to_string())),
        }
        if reader.refill().is_err() {
            return Err(read_failed(file));
        }
    }
    Ok(out)
}

/// Why the reader gave no block.
enum Stop {
    Eof,
    /// The file ended inside a record.
    CutShort,
    /// More bytes must be read.
    Incomplete,
    /// The record is bigger than the buffer.
    TooSmall,
    Corrupt(&'static str),
}

impl Stop {
    fn of<I>(e: &PcapError<I>) -> Stop {
        match e {
            PcapError::Eof => Stop::Eof,
            PcapError::UnexpectedEof => Stop::CutShort,
            PcapError::Incomplete(_) => Stop::Incomplete,
            PcapError::BufferTooSmall => Stop::TooSmall,
            PcapError::ReadError => Stop::Corrupt("read error"),
            PcapError::HeaderNotRecognized => Stop::Corrupt("block not recognised"),
            _ => Stop::Corrupt("invalid block"),
        }
    }
}

fn read_failed(file: &str) -> CaptureError {
    CaptureError::Io {
        file: file.to_string(),
        source: std::io::Error::other("read failed"),
    }
}

fn corrupt(file: &str, offset: usize, packet: u64, what: String) -> CaptureError {
    CaptureError::Corrupt {
        file: file.to_string(),
        offset: offset as u64,
        packet,
        what,
    }
}

/// Checks the length field of the record that could not be read: a length no
/// capture writer produces means garbage, not a file cut short.
fn pending_record_len(data: &[u8], is_ng: bool, big_endian: bool) -> Result<(), String> {
    let at = if is_ng { 4 } else { 8 };
    let Some(b) = data
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
    else {
        return Ok(());
    };
    let len = if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    } as usize;
    if len > MAX_RECORD || (is_ng && (len < 12 || !len.is_multiple_of(4))) {
        return Err(format!("record length field {len} is not plausible"));
    }
    Ok(())
}

fn ng_timestamp(raw: u64, ifc: Interface) -> Timestamp {
    let res = u128::from(ifc.resolution);
    let raw = u128::from(raw);
    let secs = (raw / res) as i64;
    let nanos = ((raw % res) * 1_000_000_000 / res) as u32;
    Timestamp {
        secs: secs.saturating_add(ifc.offset_secs),
        nanos,
    }
}

/// Body of an obsolete pcapng Packet Block (type 2): interface id, drops count,
/// timestamp, captured and original lengths, then the data.
fn obsolete_packet_block(body: &[u8], big_endian: bool) -> Option<(u16, u64, &[u8], u32)> {
    let u16_at = |o: usize| -> Option<u16> {
        let b: [u8; 2] = body.get(o..o + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let u32_at = |o: usize| -> Option<u32> {
        let b: [u8; 4] = body.get(o..o + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let if_id = u16_at(0)?;
    let raw = (u64::from(u32_at(4)?) << 32) | u64::from(u32_at(8)?);
    let caplen = u32_at(12)? as usize;
    let origlen = u32_at(16)?;
    let data = body.get(20..20 + caplen)?;
    Some((if_id, raw, data, origlen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(magic: [u8; 4], nanos_field: u32, big: bool) -> Vec<u8> {
        let w32 = |v: u32| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut f = magic.to_vec();
        f.extend(w16(2));
        f.extend(w16(4));
        f.extend(w32(0));
        f.extend(w32(0));
        f.extend(w32(65535));
        f.extend(w32(101));
        f.extend(w32(1_700_000_000));
        f.extend(w32(nanos_field));
        f.extend(w32(3));
        f.extend(w32(3));
        f.extend([0x45, 0, 0]);
        f
    }

    type Seen = Vec<(Timestamp, i32, Vec<u8>)>;

    fn read_all(bytes: &[u8]) -> (Result<ReadOutcome, CaptureError>, Seen) {
        let mut seen = Vec::new();
        let r = read_capture("t.pcap", bytes, &mut |p| {
            seen.push((p.ts, p.linktype, p.data.to_vec()))
        });
        (r, seen)
    }

    #[test]
    fn pcap_both_byte_orders_and_precisions() {
        let cases = [
            ([0xd4, 0xc3, 0xb2, 0xa1], false, 5, 5000),
            ([0xa1, 0xb2, 0xc3, 0xd4], true, 5, 5000),
            ([0x4d, 0x3c, 0xb2, 0xa1], false, 5, 5),
            ([0xa1, 0xb2, 0x3c, 0x4d], true, 5, 5),
        ];
        for (magic, big, field, want_nanos) in cases {
            let (r, seen) = read_all(&legacy(magic, field, big));
            assert_eq!(r.ok().map(|o| o.packets), Some(1), "{magic:?}");
            assert_eq!(seen.len(), 1);
            assert_eq!(seen[0].0.secs, 1_700_000_000);
            assert_eq!(seen[0].0.nanos, want_nanos, "{magic:?}");
            assert_eq!(seen[0].1, 101);
            assert_eq!(seen[0].2, vec![0x45, 0, 0]);
        }
    }

    #[test]
    fn not_a_capture_is_named() {
        let (r, _) = read_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nmore bytes here");
        let msg = r.err().map(|e| e.to_string());
        assert_eq!(msg.as_deref(), Some("t.pcap: not a pcap or pcapng file"));
        let (r, _) = read_all(b"");
        assert!(matches!(r, Err(CaptureError::NotACapture { .. })));
    }

    #[test]
    fn truncated_record_reports_packet_number() {
        let mut f = legacy([0xd4, 0xc3, 0xb2, 0xa1], 0, false);
        let first = f.clone();
        f.extend_from_slice(&first[24..]);
        f.truncate(f.len() - 2);
        let (r, seen) = read_all(&f);
        let out = r.ok();
        assert_eq!(seen.len(), 1);
        assert_eq!(out.and_then(|o| o.truncated_at_packet), Some(2));
    }

    #[test]
    fn garbage_length_is_corrupt_with_offset() {
        let mut f = legacy([0xd4, 0xc3, 0xb2, 0xa1], 0, false);
        // second record header claims 0x7fffffff bytes
        f.extend([0u8; 8]);
        f.extend(0x7fff_ffffu32.to_le_bytes());
        f.extend(0x7fff_ffffu32.to_le_bytes());
        f.extend(vec![0u8; 64]);
        let (r, seen) = read_all(&f);
        assert_eq!(seen.len(), 1);
        match r {
            Err(CaptureError::Corrupt { offset, packet, .. }) => {
                assert_eq!(offset, 24 + 16 + 3);
                assert_eq!(packet, 1);
            }
            other => panic!("expected corrupt, got {other:?}"),
        }
    }

    #[test]
    fn obsolete_packet_block_body() {
        let mut body = Vec::new();
        body.extend(1u16.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend(0u32.to_le_bytes());
        body.extend(2_000_000u32.to_le_bytes());
        body.extend(2u32.to_le_bytes());
        body.extend(60u32.to_le_bytes());
        body.extend([9, 9, 0, 0]);
        let got = obsolete_packet_block(&body, false);
        assert_eq!(got, Some((1, 2_000_000, &[9u8, 9][..], 60)));
        assert_eq!(obsolete_packet_block(&body[..10], false), None);
    }

    #[test]
    fn pcapng_timestamp_resolution() {
        let ifc = Interface {
            linktype: 1,
            resolution: 1_000_000_000,
            offset_secs: 10,
        };
        let ts = ng_timestamp(1_500_000_000_123, ifc);
        assert_eq!(ts.secs, 1510);
        assert_eq!(ts.nanos, 123);
    }
}
