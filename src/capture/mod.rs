//! Packet sources: pcap and pcapng files (recognised by magic number, also inside
//! gzip, zstd, xz, bzip2 or lz4 compression), read as a stream, the pcap files `-w`
//! writes (`write`), and live interfaces (`live`, cargo feature `live`).
//!
//! In: file bytes or an interface. Out: [`Packet`]s (link type, timestamp, bytes), in order.

pub mod compressed;
#[cfg(feature = "live")]
pub mod live;
pub mod write;

use crate::capture::compressed::{Compression, SNIFF, decompress};
use crate::time::Timestamp;
use pcap_parser::nom::{self, Needed};
use pcap_parser::pcap::{
    LegacyPcapBlock, parse_pcap_frame, parse_pcap_frame_be, parse_pcap_frame_modified,
    parse_pcap_header,
};
use pcap_parser::pcapng::{Block, parse_block_be, parse_block_le, parse_sectionheaderblock};
use pcap_parser::{PcapBlockOwned, PcapError};
use std::io::Read;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Initial read buffer of the capture reader.
pub const READ_BUFFER: usize = 1 << 18;
/// Interfaces remembered per pcapng section; a file describing more is hostile.
pub const MAX_INTERFACES: usize = 4096;
/// Largest capture record accepted; a bigger length field means the file is corrupt
/// (the biggest snap length in use is 256 KiB; pcapng blocks may carry options too).
pub const MAX_RECORD: usize = 4 << 20;

/// The magic numbers a capture file begins with: pcap (microsecond and nanosecond,
/// either byte order, and the modified format of Alexey Kuznetzov's patches) and
/// pcapng (a Section Header Block).
const CAPTURE_MAGICS: [[u8; 4]; 7] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
    [0x34, 0xcd, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xcd, 0x34],
    [0x0a, 0x0d, 0x0d, 0x0a],
];

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
    /// The read buffer `data` lies in, when it can be shared: a stage that hands
    /// the packet to another thread keeps the buffer alive instead of copying.
    pub chunk: Option<&'a Buffer>,
}

/// A buffer of file bytes as read, shared by the packets in it. Never written
/// again while shared: the reader starts a new one instead.
pub type Buffer = Arc<Vec<u8>>;

/// What went wrong reading an input. Every message names the file, and says
/// what was inside the compression when the file was compressed.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: is a directory (each capture file needs its own -r)")]
    Directory { file: String },
    #[error("{file}: empty file{}", .compression.suffix())]
    Empty {
        file: String,
        compression: Compression,
    },
    #[error("{file}: not a pcap or pcapng file{}", .compression.suffix())]
    NotACapture {
        file: String,
        compression: Compression,
    },
    #[error("{file}: cut short in the capture file header ({bytes} bytes{})", .compression.listed())]
    HeaderCutShort {
        file: String,
        bytes: usize,
        compression: Compression,
    },
    #[error("{file}: corrupt capture at {}byte offset {offset} (after packet {packet}): {what}", .compression.offsets())]
    Corrupt {
        file: String,
        offset: u64,
        packet: u64,
        what: String,
        compression: Compression,
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
    /// How the input was compressed.
    pub compression: Option<Compression>,
    /// The compressed stream ended before its end mark: what the decoder said.
    pub stream_cut: Option<String>,
    /// The reader was told to stop before the end of the input.
    pub stopped: bool,
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
    fn block<'b>(
        &mut self,
        block: PcapBlockOwned<'b>,
        out: &mut ReadOutcome,
        secrets: Secrets<'_>,
    ) -> Option<Found<'b>> {
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
            PcapBlockOwned::NG(Block::DecryptionSecrets(dsb)) => {
                let len = (dsb.secrets_len as usize).min(dsb.data.len());
                secrets(dsb.secrets_type.0, dsb.data.get(..len).unwrap_or_default());
                None
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

/// What a reader's caller says after each packet: go on, or stop reading.
pub type Next = ControlFlow<()>;

/// Receives the Decryption Secrets Blocks of a pcapng (their `secrets_type` and
/// data), in file order, before the packets that follow them.
pub type Secrets<'s> = &'s mut dyn FnMut(u32, &[u8]);

/// Reads the capture file at `path` (`-` for standard input), handing each packet to `f`.
pub fn read_path(path: &str, f: &mut dyn FnMut(&Packet<'_>)) -> Result<ReadOutcome, CaptureError> {
    if path == "-" {
        return read_capture("-", std::io::stdin(), f);
    }
    read_capture(path, open_file(path)?, f)
}

/// Opens the capture file at `path`; a directory is refused by name.
pub fn open_file(path: &str) -> Result<std::fs::File, CaptureError> {
    let io = |source| CaptureError::Io {
        file: path.to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.is_dir() {
        return Err(CaptureError::Directory {
            file: path.to_string(),
        });
    }
    Ok(file)
}

/// Reads every packet of `input` (pcap or pcapng, either byte order, plain or
/// compressed) and hands it to `f`.
///
/// Streaming: memory is the read buffer (grown up to [`MAX_RECORD`] for a large record)
/// and the decompressor's window, whatever the file size. A file cut off mid-record
/// is not an error: the outcome says where it stopped.
pub fn read_capture<R: Read + Send>(
    file: &str,
    input: R,
    f: &mut dyn FnMut(&Packet<'_>),
) -> Result<ReadOutcome, CaptureError> {
    read_until(file, input, &mut |p| {
        f(p);
        Next::Continue(())
    })
}

/// [`read_capture`], stopping early when `f` says so.
pub fn read_until<R: Read + Send>(
    file: &str,
    input: R,
    f: &mut dyn FnMut(&Packet<'_>) -> Next,
) -> Result<ReadOutcome, CaptureError> {
    read_until_with_secrets(file, input, f, &mut |_, _| {})
}

/// [`read_until`], handing the pcapng Decryption Secrets Blocks to `secrets`.
pub fn read_until_with_secrets<R: Read + Send>(
    file: &str,
    mut input: R,
    f: &mut dyn FnMut(&Packet<'_>) -> Next,
    secrets: Secrets<'_>,
) -> Result<ReadOutcome, CaptureError> {
    let mut head = [0u8; SNIFF];
    let mut got = 0;
    while got < SNIFF {
        match input.read(head.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(CaptureError::Io {
                    file: file.to_string(),
                    source,
                });
            }
        }
    }
    let head = head.get(..got).unwrap_or_default();
    let kind = Compression::sniff(head);
    let input = std::io::Cursor::new(head).chain(input);
    if kind == Compression::None {
        return read_buffered(file, input, kind, READ_BUFFER, f, secrets);
    }
    std::thread::scope(|scope| {
        let ahead = compressed::read_ahead(scope, decompress(kind, input));
        read_buffered(file, ahead, kind, READ_BUFFER, f, secrets)
    })
}

/// Reads the packets of `input` (compressed as `kind` says) with a read buffer of
/// `capacity` bytes to begin with.
fn read_buffered<R: Read + Send>(
    file: &str,
    input: R,
    kind: Compression,
    mut capacity: usize,
    f: &mut dyn FnMut(&Packet<'_>) -> Next,
    secrets: Secrets<'_>,
) -> Result<ReadOutcome, CaptureError> {
    let mut reader = Reader::new(capacity, input).map_err(|e| e.error(file, kind))?;
    let mut out = ReadOutcome {
        compression: (kind != Compression::None).then_some(kind),
        ..ReadOutcome::default()
    };
    let mut format = Format::new();
    loop {
        let stop = match reader.next() {
            Ok((len, block, chunk)) => {
                let mut next = Next::Continue(());
                let found = format.block(block, &mut out, secrets);
                if let Some((ts, linktype, data, orig_len)) = found {
                    out.packets += 1;
                    format.last_ts = ts;
                    next = f(&Packet {
                        number: out.packets,
                        ts,
                        linktype,
                        data,
                        orig_len,
                        chunk: Some(chunk),
                    });
                }
                reader.consume(len);
                if next.is_break() {
                    out.stopped = true;
                    break;
                }
                continue;
            }
            Err(e) => Stop::of(&e),
        };
        let (offset, packets) = (reader.consumed(), out.packets);
        let at = |what| corrupt(file, offset, packets, what, kind);
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
            Stop::Corrupt(what) => {
                plausible.map_err(at)?;
                return Err(at(what.to_string()));
            }
        }
        if reader.refill().is_err() {
            match reader.take_error() {
                // The compressed stream ended early: what is buffered is all there is.
                Some(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    out.stream_cut = Some(e.to_string());
                    reader.exhausted = true;
                }
                e => return Err(read_failed(file, e)),
            }
        }
    }
    Ok(out)
}

/// Why no capture header could be read.
enum Opening {
    /// Reading failed.
    Io(Option<std::io::Error>),
    /// Nothing at all.
    Empty,
    /// The input ended inside a header that began like a capture's (bytes there were).
    CutShort(usize),
    /// Not a capture.
    NotACapture,
}

impl Opening {
    fn error(self, file: &str, compression: Compression) -> CaptureError {
        let file = file.to_string();
        match self {
            Opening::Io(e) => read_failed(&file, e),
            Opening::Empty => CaptureError::Empty { file, compression },
            Opening::CutShort(bytes) => CaptureError::HeaderCutShort {
                file,
                bytes,
                compression,
            },
            Opening::NotACapture => CaptureError::NotACapture { file, compression },
        }
    }
}

/// Whether `data` (the first bytes of an input) begins as a capture file does.
fn begins_like_a_capture(data: &[u8]) -> bool {
    let n = data.len().min(4);
    let head = data.get(..n).unwrap_or_default();
    CAPTURE_MAGICS
        .iter()
        .any(|m| m.get(..n).is_some_and(|m| m == head))
}

/// How the records of a legacy pcap file are laid out.
type FrameParser = fn(&[u8]) -> nom::IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>>;

#[derive(Clone, Copy)]
enum Layout {
    /// A legacy pcap file; its header not yet handed out.
    Legacy { header: bool, parse: FrameParser },
    /// A pcapng file, with the byte order of the current section.
    Ng { big_endian: bool },
}

/// Most retired buffers kept for reuse.
const SPARE_CHUNKS: usize = 64;

/// Reads a capture into [`Buffer`]s and parses its blocks in place (pcap-parser's
/// block parsers). Unread bytes at the end of a buffer move to the front when no
/// packet of it is still shared, else to a fresh (recycled) buffer.
struct Reader<R> {
    input: R,
    chunk: Buffer,
    /// Bytes of `chunk` read so far, and consumed of those.
    filled: usize,
    pos: usize,
    /// Bytes consumed before `pos` over the whole input.
    consumed: usize,
    exhausted: bool,
    layout: Layout,
    /// Buffers handed out before, in the order they were retired, reused once no
    /// packet holds them any more.
    spare: Vec<Buffer>,
    /// Why the last read failed.
    error: Option<std::io::Error>,
}

impl<R: Read> Reader<R> {
    fn new(capacity: usize, input: R) -> Result<Self, Opening> {
        let mut r = Reader {
            input,
            chunk: Arc::new(vec![0; capacity]),
            filled: 0,
            pos: 0,
            consumed: 0,
            exhausted: false,
            layout: Layout::Ng { big_endian: false },
            spare: Vec::new(),
            error: None,
        };
        // A compressed stream that ended early, before the header was whole.
        let mut cut = None;
        // A pipe may hand out the file header in pieces: read until it parses.
        loop {
            if r.filled == r.chunk.len() {
                if r.chunk.len() >= MAX_RECORD {
                    return Err(Opening::NotACapture);
                }
                r.make_room(r.chunk.len().saturating_mul(2));
            }
            if r.refill().is_err() {
                match r.take_error() {
                    Some(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        r.exhausted = true;
                        cut = Some(e);
                    }
                    e => return Err(Opening::Io(e)),
                }
            }
            let data = r.data();
            if data.is_empty() && r.exhausted {
                return Err(cut.map_or(Opening::Empty, |e| Opening::Io(Some(e))));
            }
            if !begins_like_a_capture(data) {
                return Err(Opening::NotACapture);
            }
            let ng = parse_sectionheaderblock(data);
            if ng.is_ok() {
                return Ok(r);
            }
            let legacy = parse_pcap_header(data);
            let more = matches!(ng, Err(nom::Err::Incomplete(_)))
                || matches!(legacy, Err(nom::Err::Incomplete(_)));
            match legacy {
                Ok((_, h)) => {
                    r.layout = Layout::Legacy {
                        header: true,
                        parse: if h.is_modified_format() {
                            parse_pcap_frame_modified
                        } else if h.is_bigendian() {
                            parse_pcap_frame_be
                        } else {
                            parse_pcap_frame
                        },
                    };
                    return Ok(r);
                }
                _ if more && !r.exhausted => {}
                _ if more => {
                    return Err(cut.map_or(Opening::CutShort(data.len()), |e| Opening::Io(Some(e))));
                }
                Err(_) => return Err(Opening::NotACapture),
            }
        }
    }

    /// Unread bytes.
    fn data(&self) -> &[u8] {
        self.chunk.get(self.pos..self.filled).unwrap_or_default()
    }

    /// The next block, its length, and the buffer it lies in.
    fn next(&mut self) -> Result<(usize, PcapBlockOwned<'_>, &Buffer), PcapError<&[u8]>> {
        let data = self.chunk.get(self.pos..self.filled).unwrap_or_default();
        if data.is_empty() && self.exhausted {
            return Err(PcapError::Eof);
        }
        let parsed = match &mut self.layout {
            Layout::Legacy { header, parse } => {
                if *header {
                    *header = false;
                    return match parse_pcap_header(data) {
                        Ok((_, h)) => Ok((h.size(), PcapBlockOwned::from(h), &self.chunk)),
                        Err(_) => Err(PcapError::HeaderNotRecognized),
                    };
                }
                parse(data).map(|(rem, b)| (data.len() - rem.len(), PcapBlockOwned::from(b)))
            }
            Layout::Ng { big_endian } => {
                // A block is at least 12 bytes (type, length twice). pcap-parser's block
                // parsers subtract 12 from a shorter length field before checking it.
                let len = data.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok());
                if let Some(b) = len {
                    let len = if *big_endian {
                        u32::from_be_bytes(b)
                    } else {
                        u32::from_le_bytes(b)
                    };
                    if len < 12 {
                        return Err(PcapError::HeaderNotRecognized);
                    }
                }
                let parse = if *big_endian {
                    parse_block_be
                } else {
                    parse_block_le
                };
                parse(data).map(|(rem, b)| {
                    if let Block::SectionHeader(shb) = &b {
                        *big_endian = shb.big_endian();
                    }
                    (data.len() - rem.len(), PcapBlockOwned::from(b))
                })
            }
        };
        match parsed {
            Ok((len, block)) => Ok((len, block, &self.chunk)),
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => Err(e),
            Err(nom::Err::Incomplete(_)) if self.exhausted => Err(PcapError::UnexpectedEof),
            Err(nom::Err::Incomplete(n)) => {
                let more = match n {
                    Needed::Size(n) => n.get(),
                    Needed::Unknown => 1,
                };
                if data.len().saturating_add(more) > self.chunk.len() {
                    Err(PcapError::BufferTooSmall)
                } else {
                    Err(PcapError::Incomplete(more))
                }
            }
        }
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.filled - self.pos);
        self.pos += n;
        self.consumed += n;
    }

    /// Bytes consumed over the whole input.
    fn consumed(&self) -> usize {
        self.consumed
    }

    fn reader_exhausted(&self) -> bool {
        self.exhausted
    }

    /// A buffer of at least `capacity` bytes no packet holds, with `keep` at its front:
    /// of the spare ones, the one retired last (the likeliest still in a cache:
    /// the kernel's copy into a buffer and the parsing after it then miss less).
    fn fresh(&mut self, capacity: usize, keep: std::ops::Range<usize>) -> Buffer {
        let reusable = self
            .spare
            .iter()
            .rposition(|c| Arc::strong_count(c) == 1 && c.len() >= capacity);
        let mut next = match reusable {
            Some(i) => self.spare.remove(i),
            None => Arc::new(vec![0; capacity]),
        };
        if let (Some(buf), Some(bytes)) = (Arc::get_mut(&mut next), self.chunk.get(keep))
            && let Some(dst) = buf.get_mut(..bytes.len())
        {
            dst.copy_from_slice(bytes);
        }
        next
    }

    /// Moves the unread bytes to the front of a buffer of `capacity` bytes, so
    /// the rest can be filled.
    fn make_room(&mut self, capacity: usize) {
        let left = self.filled - self.pos;
        let shared = Arc::strong_count(&self.chunk) > 1;
        if !shared && capacity <= self.chunk.len() {
            if let Some(buf) = Arc::get_mut(&mut self.chunk) {
                buf.copy_within(self.pos..self.filled, 0);
            }
        } else {
            let next = self.fresh(capacity.max(self.chunk.len()), self.pos..self.filled);
            let old = std::mem::replace(&mut self.chunk, next);
            if shared && self.spare.len() < SPARE_CHUNKS {
                self.spare.push(old);
            }
        }
        self.filled = left;
        self.pos = 0;
    }

    /// Reads more of the input (one read, as much as the buffer has room for).
    fn refill(&mut self) -> Result<(), PcapError<&'static [u8]>> {
        if self.filled == self.chunk.len() || Arc::strong_count(&self.chunk) > 1 {
            self.make_room(self.chunk.len());
        }
        let Some(buf) = Arc::get_mut(&mut self.chunk) else {
            return Err(PcapError::ReadError);
        };
        let Some(space) = buf.get_mut(self.filled..) else {
            return Err(PcapError::ReadError);
        };
        if space.is_empty() {
            return Ok(());
        }
        let n = loop {
            match self.input.read(space) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e);
                    return Err(PcapError::ReadError);
                }
            }
        };
        self.exhausted = n == 0;
        self.filled += n;
        Ok(())
    }

    /// Why the last read failed, once.
    fn take_error(&mut self) -> Option<std::io::Error> {
        self.error.take()
    }

    /// Lets a buffer hold records of up to `capacity` bytes.
    fn grow(&mut self, capacity: usize) -> bool {
        if capacity > self.chunk.len() {
            self.make_room(capacity);
        }
        true
    }
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

fn read_failed(file: &str, error: Option<std::io::Error>) -> CaptureError {
    CaptureError::Io {
        file: file.to_string(),
        source: error.unwrap_or_else(|| std::io::Error::other("read failed")),
    }
}

fn corrupt(
    file: &str,
    offset: usize,
    packet: u64,
    what: String,
    compression: Compression,
) -> CaptureError {
    CaptureError::Corrupt {
        file: file.to_string(),
        offset: offset as u64,
        packet,
        what,
        compression,
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
    use std::ops::Range;

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
        assert!(matches!(r, Err(CaptureError::Empty { .. })));
        assert_eq!(
            r.err().map(|e| e.to_string()).as_deref(),
            Some("t.pcap: empty file")
        );
    }

    /// A header that begins like a capture's and ends early is cut short, not
    /// "not a pcap"; so is a pcapng section header block cut short.
    #[test]
    fn partial_header_is_cut_short() {
        let whole = legacy([0xd4, 0xc3, 0xb2, 0xa1], 0, false);
        for n in [1, 3, 4, 10, 23] {
            let (r, _) = read_all(&whole[..n]);
            let msg = r.err().map(|e| e.to_string());
            let want = format!("t.pcap: cut short in the capture file header ({n} bytes)");
            assert_eq!(msg.as_deref(), Some(want.as_str()), "{n}");
        }
        let (r, _) = read_all(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c]);
        assert!(
            matches!(r, Err(CaptureError::HeaderCutShort { bytes: 10, .. })),
            "{r:?}"
        );
        let (r, _) = read_all(b"GE");
        assert!(matches!(r, Err(CaptureError::NotACapture { .. })), "{r:?}");
    }

    #[test]
    fn a_directory_is_named_as_one() {
        let dir = std::env::temp_dir();
        let path = dir.to_str().unwrap();
        let r = read_path(path, &mut |_| {});
        let msg = r.err().map(|e| e.to_string());
        let want = format!("{path}: is a directory (each capture file needs its own -r)");
        assert_eq!(msg.as_deref(), Some(want.as_str()));
    }

    /// Two records; the reader stops after the first when told to.
    #[test]
    fn the_caller_can_stop_the_reader() {
        let mut f = legacy([0xd4, 0xc3, 0xb2, 0xa1], 0, false);
        let record = f[24..].to_vec();
        f.extend(record);
        let mut seen = 0;
        let r = read_until("t", &f[..], &mut |_| {
            seen += 1;
            Next::Break(())
        });
        let out = r.unwrap();
        assert_eq!((seen, out.packets, out.stopped), (1, 1, true));
    }

    /// The same packets from a capture and from its gzip and zstd forms; a
    /// compressed stream cut short keeps the packets before the cut and says so.
    #[test]
    fn compressed_captures_read_as_the_plain_one() {
        use std::io::Write;
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/multi.pcap");
        let one = std::fs::read(path).unwrap();
        // Its records twenty times over: big enough for several compressed blocks.
        let mut plain = one.clone();
        for _ in 1..20 {
            plain.extend_from_slice(&one[24..]);
        }
        let (r, want) = read_all(&plain);
        assert!(r.unwrap().compression.is_none());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = ruzstd::encoding::compress_to_vec(
            &plain[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        for (packed, kind) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
            let (r, seen) = read_all(&packed);
            let out = r.unwrap();
            assert_eq!(out.compression, Some(kind));
            assert_eq!(seen, want, "{kind:?}");
            let (r, seen) = read_all(&packed[..packed.len() - 40]);
            assert_eq!(seen[..], want[..seen.len()], "{kind:?}");
            if kind == Compression::Gzip {
                let cut = r.unwrap().stream_cut.unwrap_or_default();
                assert!(cut.contains("cut off"), "{kind:?}: {cut}");
                assert!(!seen.is_empty() && seen.len() < want.len(), "{kind:?}");
            } else {
                // ruzstd hands out what it decoded only a window behind (the whole of
                // this small frame): nothing came out before the cut.
                let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
                assert!(msg.contains("zstd stream cut off"), "{msg}");
            }
            // Cut before the capture header is whole: the cut is the error.
            let (r, _) = read_all(&packed[..12]);
            let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains("stream cut off"), "{kind:?}: {msg}");
        }
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

    /// Hands out at most `step` bytes per read, like a pipe.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Every committed capture, read in one go and read in dribbles into a small
    /// buffer while every packet's buffer is held (as the threaded stage holds
    /// them): the same packets, and no held byte overwritten by later reads.
    #[test]
    fn shared_buffers_are_never_overwritten() {
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures"
        ))];
        let mut files = Vec::new();
        while let Some(dir) = dirs.pop() {
            for p in std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()) {
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                    files.push(p);
                }
            }
        }
        files.sort();
        assert!(files.len() >= 10, "{files:?}");
        for path in files {
            let bytes = std::fs::read(&path).unwrap();
            let (whole, expect) = read_all(&bytes);
            let whole = whole.unwrap();
            for (step, capacity, hold) in [(1, 16, true), (7, 64, true), (4096, 256, false)] {
                let mut held: Vec<(Buffer, Range<usize>)> = Vec::new();
                let mut seen = Vec::new();
                let input = Trickle { data: &bytes, step };
                let packet = &mut |p: &Packet<'_>| {
                    seen.push((p.ts, p.linktype, p.data.to_vec()));
                    if hold && let Some(c) = p.chunk {
                        let start = p.data.as_ptr() as usize - c.as_ptr() as usize;
                        held.push((Buffer::clone(c), start..start + p.data.len()));
                    }
                    Next::Continue(())
                };
                let none = Compression::None;
                let r = read_buffered("t", input, none, capacity, packet, &mut |_, _| {});
                let what = format!("{} step {step} capacity {capacity}", path.display());
                assert_eq!(r.unwrap().packets, whole.packets, "{what}");
                assert_eq!(seen, expect, "{what}");
                if hold {
                    assert_eq!(held.len(), seen.len(), "{what}");
                    for ((c, range), (_, _, data)) in held.iter().zip(&seen) {
                        assert_eq!(&c[range.clone()], &data[..], "{what}");
                    }
                }
            }
        }
    }

    /// Found by the `capture` fuzz target: a pcapng block whose length field is
    /// under 12 made pcap-parser subtract past zero (a panic with overflow checks).
    /// It is a corrupt file, named with its offset; the packets before it are kept.
    #[test]
    fn pcapng_block_shorter_than_its_header_is_corrupt() {
        let mut f = Vec::new();
        // Section header block, little-endian, 28 bytes, no options.
        f.extend([0x0a, 0x0d, 0x0d, 0x0a]);
        f.extend(28u32.to_le_bytes());
        f.extend(0x1a2b_3c4du32.to_le_bytes());
        f.extend([1, 0, 0, 0]);
        f.extend([0xff; 8]);
        f.extend(28u32.to_le_bytes());
        // A process information block (type 0x80000001) claiming 10 bytes.
        f.extend(0x8000_0001u32.to_le_bytes());
        f.extend(10u32.to_le_bytes());
        f.extend([0u8; 40]);
        let (r, seen) = read_all(&f);
        assert!(seen.is_empty());
        match r {
            Err(CaptureError::Corrupt { offset, what, .. }) => {
                assert_eq!(offset, 28);
                assert!(what.contains("not plausible"), "{what}");
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
