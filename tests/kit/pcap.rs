//! Capture files byte by byte: classic pcap (written and read back), TCP
//! connections that keep their own sequence numbers, and pcapng blocks.

use super::net::{self, ACK, Ep, FIN, SYN, v4};
use std::path::{Path, PathBuf};

/// LINKTYPE_ETHERNET.
pub const ETHERNET: u32 = 1;
/// LINKTYPE_RAW: frames are bare IP packets.
pub const RAW: u32 = 101;

/// The first packet time of a byte-built capture (2023-11-14T22:13:20Z).
pub const EPOCH: u32 = 1_700_000_000;

/// A classic little-endian microsecond pcap header.
pub fn header(linktype: u32, snaplen: u32) -> Vec<u8> {
    let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    b.extend([0u8; 8]);
    b.extend(snaplen.to_le_bytes());
    b.extend(linktype.to_le_bytes());
    b
}

/// A classic pcap record header (captured and original length alike).
pub fn record_header((sec, usec): (u32, u32), len: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(16);
    b.extend(sec.to_le_bytes());
    b.extend(usec.to_le_bytes());
    b.extend(len.to_le_bytes());
    b.extend(len.to_le_bytes());
    b
}

/// A classic pcap being written, in memory.
pub struct Pcap {
    pub bytes: Vec<u8>,
    /// Milliseconds of packet time since [`EPOCH`] of the latest packet; each
    /// [`Pcap::packet`] adds one, a test may add more to let time pass.
    pub t: u32,
}

impl Default for Pcap {
    fn default() -> Self {
        Self::new()
    }
}

impl Pcap {
    /// Raw IP frames (LINKTYPE_RAW).
    pub fn new() -> Self {
        Self::with_linktype(RAW)
    }

    pub fn with_linktype(linktype: u32) -> Self {
        Pcap {
            bytes: header(linktype, 262_144),
            t: 0,
        }
    }

    /// One frame at the given time (seconds, microseconds).
    pub fn frame_at(&mut self, ts: (u32, u32), frame: &[u8]) -> &mut Self {
        self.bytes.extend(record_header(ts, frame.len() as u32));
        self.bytes.extend(frame);
        self
    }

    /// One frame, a millisecond after the one before.
    pub fn packet(&mut self, frame: &[u8]) -> &mut Self {
        self.t += 1;
        let ts = (EPOCH + self.t / 1000, self.t % 1000 * 1000);
        self.frame_at(ts, frame)
    }

    /// One TCP segment over IPv4 (DF set) from `src` to `dst`, a raw-IP frame.
    pub fn tcp(
        &mut self,
        src: Ep,
        dst: Ep,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> &mut Self {
        let seg = net::tcp(src.1, dst.1, seq, ack, flags, payload);
        self.packet(&net::ipv4(6, v4(src.0), v4(dst.0), 0, 0x4000, &seg))
    }

    /// One UDP datagram over IPv4 (DF set) from `src` to `dst`, a raw-IP frame.
    pub fn udp(&mut self, src: Ep, dst: Ep, payload: &[u8]) -> &mut Self {
        let dgram = net::udp(src.1, dst.1, payload);
        self.packet(&net::ipv4(17, v4(src.0), v4(dst.0), 0, 0x4000, &dgram))
    }

    /// Writes the capture to `name` in the test's temporary folder.
    pub fn write(&self, name: &str) -> PathBuf {
        let path = super::tmp(name);
        std::fs::write(&path, &self.bytes).unwrap_or_else(|e| panic!("{e}"));
        path
    }
}

/// One TCP connection of a byte-built capture: each side's next sequence number
/// is kept, and every segment acknowledges all the other side sent.
#[derive(Clone, Debug)]
pub struct Conn {
    pub c: Ep,
    pub s: Ep,
    /// The client's next sequence number.
    pub cseq: u32,
    /// The server's next sequence number.
    pub sseq: u32,
}

impl Conn {
    /// A connection whose client and server chose the ISNs `cisn` and `sisn`.
    pub fn new(c: Ep, s: Ep, cisn: u32, sisn: u32) -> Self {
        Conn {
            c,
            s,
            cseq: cisn,
            sseq: sisn,
        }
    }

    /// A segment from the client (acknowledging the server when `flags` has ACK).
    pub fn client(&mut self, p: &mut Pcap, flags: u8, payload: &[u8]) -> &mut Self {
        let ack = if flags & ACK != 0 { self.sseq } else { 0 };
        p.tcp(self.c, self.s, self.cseq, ack, flags, payload);
        self.cseq = advance(self.cseq, flags, payload);
        self
    }

    /// A segment from the server (acknowledging the client when `flags` has ACK).
    pub fn server(&mut self, p: &mut Pcap, flags: u8, payload: &[u8]) -> &mut Self {
        let ack = if flags & ACK != 0 { self.cseq } else { 0 };
        p.tcp(self.s, self.c, self.sseq, ack, flags, payload);
        self.sseq = advance(self.sseq, flags, payload);
        self
    }

    /// SYN and SYN-ACK.
    pub fn open(&mut self, p: &mut Pcap) -> &mut Self {
        self.client(p, SYN, b"").server(p, SYN | ACK, b"")
    }

    /// FIN from the client, FIN from the server, the client's last ACK.
    pub fn close(&mut self, p: &mut Pcap) -> &mut Self {
        self.client(p, FIN | ACK, b"")
            .server(p, FIN | ACK, b"")
            .client(p, ACK, b"")
    }
}

/// The sequence number after a segment: its payload, and one for SYN or FIN.
fn advance(seq: u32, flags: u8, payload: &[u8]) -> u32 {
    let control = u32::from(flags & (SYN | FIN) != 0);
    seq.wrapping_add(payload.len() as u32).wrapping_add(control)
}

/// A packet read back from a classic pcap.
pub struct Frame {
    /// Seconds and microseconds.
    pub ts: (u32, u32),
    /// The IP packet (link layer removed, padding cut).
    pub ip: Vec<u8>,
}

fn le_or_be(b: &[u8], big: bool) -> u32 {
    let a: [u8; 4] = b.try_into().unwrap();
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// The IP packets of a classic pcap (Ethernet, SLL, SLL2 or raw IP).
pub fn read_frames(b: &[u8]) -> Vec<Frame> {
    let magic = u32::from_le_bytes(b[..4].try_into().unwrap());
    let (big, nanos) = match magic {
        0xa1b2c3d4 => (false, false),
        0xa1b23c4d => (false, true),
        0xd4c3b2a1 => (true, false),
        0x4d3cb2a1 => (true, true),
        m => panic!("not a classic pcap ({m:08x})"),
    };
    let linktype = le_or_be(&b[20..24], big);
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= b.len() {
        let sec = le_or_be(&b[at..at + 4], big);
        let sub = le_or_be(&b[at + 4..at + 8], big);
        let incl = le_or_be(&b[at + 8..at + 12], big) as usize;
        let data = &b[at + 16..at + 16 + incl];
        at += 16 + incl;
        let usec = if nanos { sub / 1000 } else { sub };
        let (ethertype, ip) = match linktype {
            1 => (u16::from_be_bytes([data[12], data[13]]), &data[14..]),
            113 => (u16::from_be_bytes([data[14], data[15]]), &data[16..]),
            276 => (u16::from_be_bytes([data[0], data[1]]), &data[20..]),
            101 => (if data[0] >> 4 == 6 { 0x86dd } else { 0x0800 }, data),
            l => panic!("link type {l}"),
        };
        let len = match ethertype {
            0x0800 => usize::from(u16::from_be_bytes([ip[2], ip[3]])),
            0x86dd => 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]])),
            _ => continue,
        };
        out.push(Frame {
            ts: (sec, usec),
            ip: ip[..len.min(ip.len())].to_vec(),
        });
    }
    out
}

/// The IP packets of a classic pcap file.
pub fn read_ip_packets(path: &Path) -> Vec<Frame> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    read_frames(&b)
}

/// A capture of raw IP frames at their own times.
pub fn raw_capture(frames: &[((u32, u32), Vec<u8>)]) -> Pcap {
    let mut p = Pcap::new();
    for (ts, f) in frames {
        p.frame_at(*ts, f);
    }
    p
}

/// pcapng, little-endian: one block, padded to four bytes.
pub fn ng_block(kind: u32, body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    while !body.len().is_multiple_of(4) {
        body.push(0);
    }
    let len = (body.len() + 12) as u32;
    let mut b = kind.to_le_bytes().to_vec();
    b.extend(len.to_le_bytes());
    b.extend(body);
    b.extend(len.to_le_bytes());
    b
}

/// Section header block (version 1.0, section length unknown).
pub fn ng_shb() -> Vec<u8> {
    let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    body.extend(1u16.to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body.extend((-1i64).to_le_bytes());
    ng_block(0x0a0d_0d0a, &body)
}

/// Interface description block.
pub fn ng_idb(linktype: u16) -> Vec<u8> {
    let mut body = linktype.to_le_bytes().to_vec();
    body.extend(0u16.to_le_bytes());
    body.extend(65535u32.to_le_bytes());
    ng_block(1, &body)
}

/// Enhanced packet block (microsecond timestamps).
pub fn ng_epb(if_id: u32, usecs: u64, data: &[u8]) -> Vec<u8> {
    let mut body = if_id.to_le_bytes().to_vec();
    body.extend(((usecs >> 32) as u32).to_le_bytes());
    body.extend((usecs as u32).to_le_bytes());
    body.extend((data.len() as u32).to_le_bytes());
    body.extend((data.len() as u32).to_le_bytes());
    body.extend(data);
    ng_block(6, &body)
}

/// Simple packet block.
pub fn ng_spb(data: &[u8]) -> Vec<u8> {
    let mut body = (data.len() as u32).to_le_bytes().to_vec();
    body.extend(data);
    ng_block(3, &body)
}

/// The obsolete packet block.
pub fn ng_obsolete_pb(if_id: u16, usecs: u64, data: &[u8]) -> Vec<u8> {
    let mut body = if_id.to_le_bytes().to_vec();
    body.extend(0u16.to_le_bytes());
    body.extend(((usecs >> 32) as u32).to_le_bytes());
    body.extend((usecs as u32).to_le_bytes());
    body.extend((data.len() as u32).to_le_bytes());
    body.extend((data.len() as u32).to_le_bytes());
    body.extend(data);
    ng_block(2, &body)
}
