//! Everything below the flow: link layers, IPv4/IPv6 (with fragment reassembly),
//! tunnels, and TCP/UDP headers. Turns a captured frame into the innermost TCP
//! segment or UDP datagram with the tunnels it came through, or says why not.
//!
//! In: a [`Packet`] (link type and bytes). Out: a [`Decoded`] (see `path`), and the
//! decode counters (`crate::stats::DecodeStats`).
//!
//! - this module: the [`Decoder`] and the walker down IP, tunnels and transports;
//! - `link`: link layers down to IP; `tunnel`: tunnel headers; `frag`: IP fragment
//!   reassembly; `bytes`: safe field reads; `path`: what decoding produces.

pub mod bytes;
pub mod frag;
mod link;
pub mod path;
pub mod tunnel;

use crate::stats::DecodeStats;
use bytes::{addr16, be16, be32, first4};
use link::*;
use path::{Datagram, DecodeNotes, Decoded, Encap, Flags, Reason, Segment, TunnelKind, TunnelPath};

use crate::capture::Packet;
use etherparse::TcpSlice;
use frag::{DefragLimits, FragKey, Insert, Piece};
use std::net::{IpAddr, Ipv4Addr};
use tunnel::{ErspanInner, Gtp, port, proto};

/// Link-layer header types (LINKTYPE_* values from tcpdump.org).
pub mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    pub const PPP: i32 = 9;
    pub const RAW_OPENBSD: i32 = 12;
    pub const RAW_BSD: i32 = 14;
    pub const PPP_HDLC: i32 = 50;
    pub const PPP_ETHER: i32 = 51;
    pub const RAW: i32 = 101;
    pub const C_HDLC: i32 = 104;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const NFLOG: i32 = 239;
    pub const LINUX_SLL2: i32 = 276;

    /// The link types above by name, for messages about the others.
    pub const SUPPORTED: &str = "Ethernet, raw IP, Linux cooked (SLL, SLL2), BSD loopback, \
        PPP, PPPoE, Cisco HDLC, NFLOG";
}

/// Deepest nesting of tunnels followed (GRE in GRE in VXLAN ...); deeper is undecodable.
pub const MAX_TUNNEL_DEPTH: usize = 8;

/// Most IPv6 extension headers followed before the transport header.
const MAX_IPV6_EXTENSIONS: usize = 8;

/// Decodes frames, keeping the state fragment reassembly needs. One per packet
/// source (or reader thread); independent of the flow tables.
#[derive(Debug, Default)]
pub struct Decoder {
    defrag: frag::Defrag,
    /// The last reassembled datagram (decoded packets borrow from it).
    reassembled: Vec<u8>,
    stats: DecodeStats,
}

impl Decoder {
    pub fn new(limits: DefragLimits) -> Self {
        Decoder {
            defrag: frag::Defrag::new(limits),
            ..Decoder::default()
        }
    }

    /// Datagrams in reassembly and the bytes they hold (bounded by [`DefragLimits`]).
    pub fn fragments_held(&self) -> (usize, usize) {
        (self.defrag.pending(), self.defrag.held_bytes())
    }

    /// Counters so far.
    pub fn stats(&self) -> DecodeStats {
        let mut s = self.stats.clone();
        s.fragments = self.defrag.stats;
        s
    }

    /// The clock moved on to `now` without a packet (live capture): fragments
    /// held past their timeout are dropped now, not at the next packet.
    pub fn tick(&mut self, now: crate::time::Timestamp) {
        self.defrag.expire(now);
    }

    /// Decodes one packet. A fragment that completes a datagram yields the
    /// reassembled packet; other fragments are held and yield [`Decoded::Fragment`].
    pub fn decode<'a>(&'a mut self, pkt: &Packet<'a>) -> Decoded<'a> {
        self.defrag.expire(pkt.ts);
        let mut w = Walker::default();
        let piece = match w.link(pkt.linktype, pkt.data) {
            Out::Frag(p) => p,
            other => return finish(&mut self.stats, w, other, DecodeNotes::default()),
        };
        // The fragment path: insert, and on completion decode the datagram's
        // payload, which may hold more fragments (an inner packet fragmented
        // inside a tunnel). Each round goes one tunnel deeper, so this ends.
        let mut next = Some((piece.key, piece.offset, piece.more, piece.truncated));
        let mut data: Vec<u8> = piece.data.to_vec();
        let mut last = None;
        while let Some((key, offset, more, truncated)) = next.take() {
            let ins = self.defrag.insert(
                pkt.ts,
                Piece {
                    key,
                    offset,
                    more,
                    data: &data,
                    truncated,
                },
            );
            let done = match ins {
                Insert::Complete(c) => c,
                Insert::Held | Insert::Dropped => {
                    self.stats.count_path(&w.path);
                    return Decoded::Fragment;
                }
            };
            self.reassembled = done.payload;
            let mark = w.mark();
            let k = done.key;
            match w.l4(k.proto, k.src, k.dst, &self.reassembled, false) {
                Out::Frag(p) => {
                    next = Some((p.key, p.offset, p.more, p.truncated));
                    data = p.data.to_vec();
                }
                _ => last = Some((mark, k, done.notes)),
            }
        }
        let Some((mark, k, notes)) = last else {
            return Decoded::Malformed;
        };
        w.reset(mark);
        let out = w.l4(k.proto, k.src, k.dst, &self.reassembled, false);
        let notes = DecodeNotes {
            fragments: Some(notes),
        };
        finish(&mut self.stats, w, out, notes)
    }
}

/// The datagram an IP fragment belongs to (its outermost fragmented layer), or
/// `None` when the frame is no fragment: to gather the fragments of a datagram
/// again after [`Decoder::decode`] put them together.
pub fn fragment_key(linktype: i32, frame: &[u8]) -> Option<FragKey> {
    match Walker::default().link(linktype, frame) {
        Out::Frag(p) => Some(p.key),
        _ => None,
    }
}

/// Decodes one frame of the given link type without reassembly: fragments come
/// back as [`Decoded::Fragment`].
pub fn decode(linktype: i32, frame: &[u8]) -> Decoded<'_> {
    let mut w = Walker::default();
    let out = w.link(linktype, frame);
    finish(&mut DecodeStats::default(), w, out, DecodeNotes::default())
}

#[inline]
fn finish<'a>(stats: &mut DecodeStats, w: Walker, out: Out<'a>, notes: DecodeNotes) -> Decoded<'a> {
    if !w.path.is_empty() {
        stats.count_path(&w.path);
    }
    match out {
        Out::Tcp(p, t) => Decoded::Tcp(Segment {
            src: p.src,
            dst: p.dst,
            sport: p.sport,
            dport: p.dport,
            seq: t.seq,
            ack: t.ack,
            flags: t.flags,
            payload: p.payload,
            truncated: p.truncated,
            tunnel: w.path,
            notes,
        }),
        Out::Udp(p) => Decoded::Udp(Datagram {
            src: p.src,
            dst: p.dst,
            sport: p.sport,
            dport: p.dport,
            payload: p.payload,
            truncated: p.truncated,
            tunnel: w.path,
            notes,
        }),
        Out::Other => Decoded::NotTcp,
        Out::Frag(_) => Decoded::Fragment,
        Out::Unsupported => Decoded::UnsupportedLink,
        Out::Bad(r) => {
            stats.undecodable_by_reason.add(r);
            Decoded::Malformed
        }
    }
}

/// Addresses, ports and payload of a transport header: the walk returns this
/// rather than a whole segment, so each level of it moves less.
struct Ports<'a> {
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    payload: &'a [u8],
    truncated: bool,
}

/// The TCP fields beside [`Ports`].
struct TcpFields {
    seq: u32,
    ack: u32,
    flags: Flags,
}

/// The result of walking a packet's headers.
enum Out<'a> {
    Tcp(Ports<'a>, TcpFields),
    Udp(Ports<'a>),
    Other,
    Frag(Piece<'a>),
    Unsupported,
    Bad(Reason),
}

/// Walks headers from the outside in, recording tunnels on the way.
#[derive(Default)]
struct Walker {
    path: TunnelPath,
}

impl Walker {
    fn mark(&self) -> usize {
        self.path.len()
    }

    fn reset(&mut self, mark: usize) {
        self.path.truncate(mark);
    }

    /// Records one more tunnel; false past the depth cap.
    fn enter(&mut self, kind: TunnelKind, src: IpAddr, dst: IpAddr, id: Option<u32>) -> bool {
        if self.path.len() >= MAX_TUNNEL_DEPTH {
            return false;
        }
        self.path.push(Encap {
            kind,
            outer_src: src,
            outer_dst: dst,
            id,
        });
        true
    }

    fn link<'a>(&mut self, lt: i32, frame: &'a [u8]) -> Out<'a> {
        use linktype::*;
        let l = match lt {
            ETHERNET => ethernet(frame, 0),
            RAW | RAW_OPENBSD | RAW_BSD | IPV4 | IPV6 => Link::Ip(frame),
            NULL => match first4(frame) {
                // Host byte order of the capturing machine: accept either.
                Some(h) => bsd_family(
                    u32::from_le_bytes(h).min(u32::from_be_bytes(h)),
                    frame.get(4..).unwrap_or_default(),
                ),
                None => Link::Malformed,
            },
            LOOP => match first4(frame) {
                Some(h) => bsd_family(u32::from_be_bytes(h), frame.get(4..).unwrap_or_default()),
                None => Link::Malformed,
            },
            LINUX_SLL => ethertype_at(frame, 14, 16, 0),
            LINUX_SLL2 => ethertype_at(frame, 0, 20, 0),
            PPP | PPP_HDLC => ppp(frame),
            PPP_ETHER => pppoe(frame),
            C_HDLC => ethertype_at(frame, 2, 4, 0),
            NFLOG => nflog(frame),
            _ => return Out::Unsupported,
        };
        self.after_link(l)
    }

    fn after_link<'a>(&mut self, l: Link<'a>) -> Out<'a> {
        match l {
            Link::Ip(p) => self.ip(p),
            Link::NotIp => Out::Other,
            Link::Malformed => Out::Bad(Reason::Link),
        }
    }

    fn ether<'a>(&mut self, frame: &'a [u8]) -> Out<'a> {
        let l = ethernet(frame, 0);
        self.after_link(l)
    }

    fn ip<'a>(&mut self, b: &'a [u8]) -> Out<'a> {
        match b.first().map(|v| v >> 4) {
            Some(4) => self.ipv4(b),
            Some(6) => self.ipv6(b),
            _ => Out::Bad(Reason::Ip),
        }
    }

    fn ipv4<'a>(&mut self, b: &'a [u8]) -> Out<'a> {
        let Some(h) = Ipv4Header::parse(b) else {
            return Out::Bad(Reason::Ip);
        };
        let total = usize::from(h.total_len);
        let ihl = h.ihl;
        // A zero total length is what segmentation offload leaves: the frame decides.
        let (end, truncated) = if total == 0 {
            (b.len(), false)
        } else if total < ihl {
            return Out::Bad(Reason::Ip);
        } else {
            (total.min(b.len()), total > b.len())
        };
        let payload = b.get(ihl..end).unwrap_or_default();
        let more = h.frag & 0x2000 != 0;
        let offset = u32::from(h.frag & 0x1fff) * 8;
        let (src, dst) = (IpAddr::V4(h.src), IpAddr::V4(h.dst));
        if more || offset != 0 {
            return Out::Frag(Piece {
                key: FragKey {
                    src,
                    dst,
                    id: u32::from(h.id),
                    proto: h.proto,
                    tunnel: self.path.identity(),
                },
                offset,
                more,
                data: payload,
                truncated,
            });
        }
        self.l4(h.proto, src, dst, payload, truncated)
    }

    fn ipv6<'a>(&mut self, b: &'a [u8]) -> Out<'a> {
        let (Some(plen), Some(&next), Some(src), Some(dst)) =
            (be16(b, 4), b.get(6), addr16(b, 8), addr16(b, 24))
        else {
            return Out::Bad(Reason::Ip);
        };
        let plen = usize::from(plen);
        // Zero: a jumbogram or segmentation offload; the frame decides.
        let (end, truncated) = if plen == 0 {
            (b.len(), false)
        } else {
            ((40 + plen).min(b.len()), 40 + plen > b.len())
        };
        let (src, dst) = (IpAddr::V6(src), IpAddr::V6(dst));
        let mut p = b.get(40..end).unwrap_or_default();
        let mut nh = next;
        for _ in 0..MAX_IPV6_EXTENSIONS {
            let skip = match nh {
                // Hop-by-hop, routing, destination options, mobility, HIP, shim6.
                0 | 43 | 60 | 135 | 139 | 140 => p.get(1).map(|l| (usize::from(*l) + 1) * 8),
                // Authentication header: length in 4-byte units, minus 2.
                51 => p.get(1).map(|l| (usize::from(*l) + 2) * 4),
                44 => {
                    let (Some(&inner), Some(word), Some(id), Some(data)) =
                        (p.first(), be16(p, 2), be32(p, 4), p.get(8..))
                    else {
                        return Out::Bad(Reason::Ip);
                    };
                    let offset = u32::from(word >> 3) * 8;
                    let more = word & 1 != 0;
                    if offset == 0 && !more {
                        // An atomic fragment (RFC 6946): the whole packet.
                        nh = inner;
                        p = data;
                        continue;
                    }
                    return Out::Frag(Piece {
                        key: FragKey {
                            src,
                            dst,
                            id,
                            proto: inner,
                            tunnel: self.path.identity(),
                        },
                        offset,
                        more,
                        data,
                        truncated,
                    });
                }
                59 => return Out::Other,
                _ => return self.l4(nh, src, dst, p, truncated),
            };
            let (Some(skip), Some(&after)) = (skip, p.first()) else {
                return Out::Bad(Reason::Ip);
            };
            let Some(rest) = p.get(skip..) else {
                return Out::Bad(Reason::Ip);
            };
            nh = after;
            p = rest;
        }
        Out::Bad(Reason::Ip)
    }

    fn l4<'a>(
        &mut self,
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
        p: &'a [u8],
        truncated: bool,
    ) -> Out<'a> {
        match proto {
            6 => tcp(src, dst, p, truncated),
            17 => self.udp(src, dst, p, truncated),
            4 => self.ipip(src, dst, p, 4),
            41 => self.ipip(src, dst, p, 6),
            47 => match tunnel::gre(p) {
                Some(g) => self.gre(src, dst, g, TunnelKind::Gre),
                None => Out::Bad(Reason::Gre),
            },
            _ => Out::Other,
        }
    }

    fn ipip<'a>(&mut self, src: IpAddr, dst: IpAddr, p: &'a [u8], version: u8) -> Out<'a> {
        if p.first().map(|v| v >> 4) != Some(version) {
            return Out::Bad(Reason::InnerVersion);
        }
        if !self.enter(TunnelKind::Ipip, src, dst, None) {
            return Out::Bad(Reason::TunnelDepth);
        }
        self.ip(p)
    }

    fn gre<'a>(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        g: tunnel::Gre<'a>,
        kind: TunnelKind,
    ) -> Out<'a> {
        let p = g.payload;
        let (kind, id) = match (g.version, g.protocol) {
            (_, proto::ERSPAN_2) if g.seq.is_some() => match tunnel::erspan2(p) {
                Some((session, inner)) => {
                    if !self.enter(TunnelKind::Erspan, src, dst, Some(session)) {
                        return Out::Bad(Reason::TunnelDepth);
                    }
                    return self.ether(inner);
                }
                None => return Out::Bad(Reason::Erspan),
            },
            // Type I: no sequence number, no ERSPAN header.
            (_, proto::ERSPAN_2) => (TunnelKind::Erspan, None),
            (_, proto::ERSPAN_3) => match tunnel::erspan3(p) {
                Some((session, inner)) => {
                    if !self.enter(TunnelKind::Erspan, src, dst, Some(session)) {
                        return Out::Bad(Reason::TunnelDepth);
                    }
                    return match inner {
                        ErspanInner::Ethernet(e) => self.ether(e),
                        ErspanInner::Ip(i) => self.ip(i),
                    };
                }
                None => return Out::Bad(Reason::Erspan),
            },
            (
                _,
                proto::TEB | proto::IPV4 | proto::IPV6 | proto::MPLS | proto::MPLS_MC | proto::PPP,
            ) => (kind, g.key),
            (0, p) if tunnel::is_aruba(p) => (kind, g.key),
            _ => return Out::Bad(Reason::GreProtocol),
        };
        let kind = if g.version == 1 {
            TunnelKind::Pptp
        } else {
            kind
        };
        if !self.enter(kind, src, dst, id) {
            return Out::Bad(Reason::TunnelDepth);
        }
        match g.protocol {
            proto::ERSPAN_2 | proto::TEB => self.ether(p),
            proto::IPV4 | proto::IPV6 => self.ip(p),
            proto::PPP => match gre_ppp(p) {
                Some(l) => self.after_link(l),
                None => Out::Bad(Reason::Ppp),
            },
            proto::MPLS | proto::MPLS_MC => {
                let l = mpls(p, 0);
                self.after_link(l)
            }
            _ => match tunnel::wlan(p) {
                Some(tunnel::Wlan::Data(t, rest)) => {
                    let l = by_ethertype(t, rest, 0);
                    self.after_link(l)
                }
                Some(tunnel::Wlan::Other) => Out::Other,
                None => Out::Bad(Reason::Wlan),
            },
        }
    }

    fn udp<'a>(&mut self, src: IpAddr, dst: IpAddr, p: &'a [u8], truncated: bool) -> Out<'a> {
        let (Some(sport), Some(dport), Some(len)) = (be16(p, 0), be16(p, 2), be16(p, 4)) else {
            return Out::Bad(Reason::Udp);
        };
        let len = usize::from(len);
        let (payload, truncated) = if len == 0 {
            // A jumbogram: the IP length decides.
            (p.get(8..).unwrap_or_default(), truncated)
        } else if len < 8 || (len > p.len() && !truncated) {
            return Out::Bad(Reason::Udp);
        } else {
            (
                p.get(8..len.min(p.len())).unwrap_or_default(),
                len > p.len(),
            )
        };
        let mut ports = [(dport, true), (sport, false)];
        if sport == dport {
            ports[1] = (0, false);
        }
        for (port, to_port) in ports {
            let mark = self.mark();
            if let Some(out) = self.udp_tunnel(port, to_port, src, dst, payload, truncated) {
                return out;
            }
            self.reset(mark);
        }
        Out::Udp(Ports {
            src,
            dst,
            sport,
            dport,
            payload,
            truncated,
        })
    }

    /// A tunnel on UDP port `port` (the destination port when `to_port`), if its header
    /// verifies; `None` means plain UDP. VXLAN (RFC 7348), Geneve (RFC 8926) and GRE in
    /// UDP (RFC 8086) name the port the receiving tunnel endpoint listens on, and their
    /// source port is a hash of the inner flow: they are recognised by the destination
    /// port alone (a QUIC client that happens to send from port 4789 is not VXLAN).
    /// GTP-U, Teredo and AYIYA are recognised by either port (a Teredo server answers
    /// from 3544).
    fn udp_tunnel<'a>(
        &mut self,
        port: u16,
        to_port: bool,
        src: IpAddr,
        dst: IpAddr,
        b: &'a [u8],
        truncated: bool,
    ) -> Option<Out<'a>> {
        if !to_port
            && matches!(
                port,
                port::VXLAN | port::VXLAN_LINUX | port::GENEVE | port::GRE_UDP
            )
        {
            return None;
        }
        let (kind, id, inner): (TunnelKind, Option<u32>, Link<'a>) = match port {
            port::VXLAN | port::VXLAN_LINUX => {
                let (vni, frame) = tunnel::vxlan(b)?;
                (TunnelKind::Vxlan, Some(vni), ethernet(frame, 0))
            }
            port::GENEVE => {
                let (vni, protocol, payload) = tunnel::geneve(b)?;
                let inner = match protocol {
                    proto::TEB => ethernet(payload, 0),
                    proto::IPV4 | proto::IPV6 => Link::Ip(payload),
                    _ => Link::NotIp,
                };
                (TunnelKind::Geneve, Some(vni), inner)
            }
            port::GTP_U => match tunnel::gtpu(b)? {
                Gtp::Pdu { teid, inner } => (TunnelKind::Gtpu, Some(teid), Link::Ip(inner)),
                Gtp::Signalling => return None,
            },
            port::TEREDO => (
                TunnelKind::Teredo,
                None,
                Link::Ip(tunnel::teredo(b, truncated)?),
            ),
            port::AYIYA => (
                TunnelKind::Ayiya,
                None,
                Link::Ip(tunnel::ayiya(b, truncated)?),
            ),
            port::GRE_UDP => {
                let g = tunnel::gre(b)?;
                if g.version != 0 {
                    return None;
                }
                return Some(self.gre(src, dst, g, TunnelKind::GreUdp));
            }
            _ => return None,
        };
        if !self.enter(kind, src, dst, id) {
            return Some(Out::Bad(Reason::TunnelDepth));
        }
        Some(self.after_link(inner))
    }
}

fn tcp<'a>(src: IpAddr, dst: IpAddr, p: &'a [u8], truncated: bool) -> Out<'a> {
    let Ok(tcp) = TcpSlice::from_slice(p) else {
        return Out::Bad(Reason::Tcp);
    };
    Out::Tcp(
        Ports {
            src,
            dst,
            sport: tcp.source_port(),
            dport: tcp.destination_port(),
            payload: tcp.payload(),
            truncated,
        },
        TcpFields {
            seq: tcp.sequence_number(),
            ack: tcp.acknowledgment_number(),
            flags: Flags {
                syn: tcp.syn(),
                ack: tcp.ack(),
                fin: tcp.fin(),
                rst: tcp.rst(),
            },
        },
    )
}

/// The fields of an IPv4 header this tool uses.
struct Ipv4Header {
    ihl: usize,
    total_len: u16,
    id: u16,
    /// Flags and fragment offset.
    frag: u16,
    proto: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
}

impl Ipv4Header {
    fn parse(b: &[u8]) -> Option<Self> {
        let ihl = usize::from(b.first()? & 0x0f) * 4;
        if ihl < 20 || b.len() < ihl {
            return None;
        }
        Some(Ipv4Header {
            ihl,
            total_len: be16(b, 2)?,
            id: be16(b, 4)?,
            frag: be16(b, 6)?,
            proto: *b.get(9)?,
            src: Ipv4Addr::from(be32(b, 12)?),
            dst: Ipv4Addr::from(be32(b, 16)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    /// IPv4 + TCP 10.0.0.1:1234 -> 10.0.0.2:443, seq 7, flags PSH|ACK, payload "hi".
    fn ipv4_tcp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 42, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend([
            0x04, 0xd2, 0x01, 0xbb, 0, 0, 0, 7, 0, 0, 0, 9, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        p.extend(b"hi");
        p
    }

    fn ipv6_tcp() -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 22, 6, 64];
        p.extend([0u8; 15]);
        p.push(1);
        p.extend([0u8; 15]);
        p.push(2);
        p.extend([
            0x04, 0xd2, 0x01, 0xbb, 0, 0, 0, 7, 0, 0, 0, 9, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ]);
        p.extend(b"hi");
        p
    }

    fn assert_tcp(d: Decoded<'_>) {
        match d {
            Decoded::Tcp(s) => {
                assert_eq!((s.sport, s.dport, s.seq, s.ack), (1234, 443, 7, 9));
                assert!(s.flags.ack && !s.flags.syn);
                assert_eq!(s.payload, b"hi");
            }
            other => panic!("not tcp: {other:?}"),
        }
    }

    fn eth(ethertype: &[u8], inner: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend(ethertype);
        f.extend(inner);
        f
    }

    #[test]
    fn ethernet_vlan_qinq_mpls_pppoe() {
        assert_tcp(decode(linktype::ETHERNET, &eth(&[0x08, 0], &ipv4_tcp())));
        assert_tcp(decode(linktype::ETHERNET, &eth(&[0x86, 0xdd], &ipv6_tcp())));
        let mut vlan = vec![0x00, 0x05, 0x08, 0x00];
        vlan.extend(ipv4_tcp());
        assert_tcp(decode(linktype::ETHERNET, &eth(&[0x81, 0x00], &vlan)));
        let mut qinq = vec![0x00, 0x05, 0x81, 0x00, 0x00, 0x06, 0x08, 0x00];
        qinq.extend(ipv4_tcp());
        assert_tcp(decode(linktype::ETHERNET, &eth(&[0x88, 0xa8], &qinq)));
        let mut mpls = vec![0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
        mpls.extend(ipv4_tcp());
        assert_tcp(decode(linktype::ETHERNET, &eth(&[0x88, 0x47], &mpls)));
        let mut pppoe = vec![0x11, 0, 0, 1, 0, 44, 0x00, 0x21];
        pppoe.extend(ipv4_tcp());
        assert_tcp(decode(linktype::ETHERNET, &eth(&[0x88, 0x64], &pppoe)));
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut f = eth(&[0x08, 0], &ipv4_tcp());
        f.extend([0u8; 6]);
        assert_tcp(decode(linktype::ETHERNET, &f));
    }

    #[test]
    fn sll_sll2_raw_null_loop_ppp() {
        let mut sll = vec![0u8; 14];
        sll.extend([0x08, 0x00]);
        sll.extend(ipv4_tcp());
        assert_tcp(decode(linktype::LINUX_SLL, &sll));
        let mut sll2 = vec![0x86, 0xdd];
        sll2.extend([0u8; 18]);
        sll2.extend(ipv6_tcp());
        assert_tcp(decode(linktype::LINUX_SLL2, &sll2));
        for lt in [
            linktype::RAW,
            linktype::RAW_OPENBSD,
            linktype::RAW_BSD,
            linktype::IPV4,
        ] {
            assert_tcp(decode(lt, &ipv4_tcp()));
        }
        assert_tcp(decode(linktype::IPV6, &ipv6_tcp()));
        let mut null = vec![2, 0, 0, 0];
        null.extend(ipv4_tcp());
        assert_tcp(decode(linktype::NULL, &null));
        let mut null6 = vec![0, 0, 0, 30];
        null6.extend(ipv6_tcp());
        assert_tcp(decode(linktype::NULL, &null6));
        let mut lo = vec![0, 0, 0, 2];
        lo.extend(ipv4_tcp());
        assert_tcp(decode(linktype::LOOP, &lo));
        let mut ppp = vec![0xff, 0x03, 0x00, 0x21];
        ppp.extend(ipv4_tcp());
        assert_tcp(decode(linktype::PPP, &ppp));
    }

    #[test]
    fn nflog_payload_tlv() {
        let mut f = vec![2, 0, 0, 0];
        f.extend([8, 0, 1, 0, 0, 0, 0, 0]); // some TLV
        let ip = ipv4_tcp();
        let len = (ip.len() + 4) as u16;
        f.extend(len.to_le_bytes());
        f.extend(9u16.to_le_bytes());
        f.extend(&ip);
        assert_tcp(decode(linktype::NFLOG, &f));
    }

    #[test]
    fn non_tcp_fragments_and_garbage() {
        let mut icmp = ipv4_tcp();
        icmp[9] = 1;
        assert!(matches!(decode(linktype::RAW, &icmp), Decoded::NotTcp));
        let mut frag = ipv4_tcp();
        frag[6] = 0x20; // more fragments
        assert!(matches!(decode(linktype::RAW, &frag), Decoded::Fragment));
        assert!(matches!(
            decode(linktype::RAW, &[0x45, 0]),
            Decoded::Malformed
        ));
        assert!(matches!(
            decode(linktype::ETHERNET, &[0u8; 5]),
            Decoded::Malformed
        ));
        assert!(matches!(
            decode(linktype::ETHERNET, &eth(&[0x08, 0x06], &[0u8; 28])),
            Decoded::NotTcp
        ));
        assert!(matches!(decode(147, &ipv4_tcp()), Decoded::UnsupportedLink));
        // TCP header cut short
        let ip = ipv4_tcp();
        assert!(matches!(
            decode(linktype::RAW, &ip[..30]),
            Decoded::Malformed
        ));
    }

    #[test]
    fn snaplen_truncation_is_flagged() {
        let ip = ipv4_tcp();
        match decode(linktype::RAW, &ip[..41]) {
            Decoded::Tcp(s) => {
                assert!(s.truncated);
                assert_eq!(s.payload, b"h");
            }
            other => panic!("{other:?}"),
        }
    }

    /// An IPv4 header (no options) around `payload`.
    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut p = vec![0x45, 0];
        p.extend(total.to_be_bytes());
        p.extend(id.to_be_bytes());
        p.extend(frag.to_be_bytes());
        p.extend([64, proto, 0, 0]);
        p.extend(src);
        p.extend(dst);
        p.extend(payload);
        p
    }

    fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = Vec::new();
        u.extend(sport.to_be_bytes());
        u.extend(dport.to_be_bytes());
        u.extend(((8 + payload.len()) as u16).to_be_bytes());
        u.extend([0, 0]);
        u.extend(payload);
        u
    }

    fn vxlan(vni: u32, outer_src: [u8; 4], inner_ip: &[u8]) -> Vec<u8> {
        let mut v = vec![0x08, 0, 0, 0];
        v.extend((vni << 8).to_be_bytes());
        v.extend(eth(&[0x08, 0], inner_ip));
        ipv4(17, outer_src, [192, 0, 2, 2], 0, 0, &udp(50000, 4789, &v))
    }

    fn tcp_of(d: Decoded<'_>) -> Segment<'_> {
        match d {
            Decoded::Tcp(s) => s,
            other => panic!("not tcp: {other:?}"),
        }
    }

    #[test]
    fn udp_is_decoded() {
        let p = ipv4(
            17,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            0,
            0,
            &udp(5353, 53, b"query"),
        );
        match decode(linktype::RAW, &p) {
            Decoded::Udp(u) => {
                assert_eq!((u.sport, u.dport, u.payload), (5353, 53, &b"query"[..]));
                assert!(!u.truncated && u.tunnel.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // Length field past the packet, not cut by the snap length: malformed.
        let mut bad = p.clone();
        bad[25] = 200;
        assert!(matches!(decode(linktype::RAW, &bad), Decoded::Malformed));
        // Cut by the snap length: truncated payload.
        let cut = &p[..30];
        match decode(linktype::RAW, cut) {
            Decoded::Udp(u) => assert!(u.truncated && u.payload == b"qu"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vxlan_tunnel_path_and_identity() {
        let f = vxlan(42, [192, 0, 2, 1], &ipv4_tcp());
        let s = tcp_of(decode(linktype::RAW, &f));
        assert_tcp(Decoded::Tcp(s.clone()));
        let hops: Vec<_> = s.tunnel.iter().copied().collect();
        assert_eq!(hops.len(), 1);
        assert_eq!((hops[0].kind, hops[0].id), (TunnelKind::Vxlan, Some(42)));
        assert_eq!(hops[0].outer_src, IpAddr::from([192, 0, 2, 1]));
        // Both directions share an identity; another VNI does not.
        assert_eq!(s.tunnel.identity(), s.tunnel.reversed().identity());
        let other = vxlan(43, [192, 0, 2, 1], &ipv4_tcp());
        let o = tcp_of(decode(linktype::RAW, &other));
        assert_ne!(s.tunnel.identity(), o.tunnel.identity());
        assert_ne!(s.tunnel.identity(), 0);
        // Not VXLAN after all (I flag clear): plain UDP.
        let mut plain = f.clone();
        plain[28] = 0;
        assert!(matches!(decode(linktype::RAW, &plain), Decoded::Udp(_)));
    }

    #[test]
    fn udp_tunnels_named_by_their_receiver_port_need_it_as_destination() {
        // A valid VXLAN header (I flag) from source port 4789 to 443: a QUIC client that
        // happened to pick 4789 is not a VTEP.
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        v.extend(eth(&[0x08, 0], &ipv4_tcp()));
        let mut g = vec![0x00, 0, 0x65, 0x58, 0, 0, 42, 0];
        g.extend(eth(&[0x08, 0], &ipv4_tcp()));
        let mut gre = vec![0, 0, 0x08, 0x00];
        gre.extend(ipv4_tcp());
        for (port, payload) in [(4789, &v), (8472, &v), (6081, &g), (4754, &gre)] {
            let from = ipv4(
                17,
                [10, 0, 0, 1],
                [10, 0, 0, 2],
                0,
                0,
                &udp(port, 443, payload),
            );
            match decode(linktype::RAW, &from) {
                Decoded::Udp(u) => assert!(u.tunnel.is_empty() && u.sport == port),
                other => panic!("{port}: {other:?}"),
            }
            // The same bytes to the port are the tunnel.
            let to = ipv4(
                17,
                [10, 0, 0, 1],
                [10, 0, 0, 2],
                0,
                0,
                &udp(50000, port, payload),
            );
            assert_tcp(decode(linktype::RAW, &to));
        }
    }

    #[test]
    fn kinds_identity_ignores_ids_and_outer_addresses() {
        let (fa, fb) = (
            vxlan(100, [192, 0, 2, 1], &ipv4_tcp()),
            vxlan(200, [192, 0, 2, 9], &ipv4_tcp()),
        );
        let a = tcp_of(decode(linktype::RAW, &fa));
        let b = tcp_of(decode(linktype::RAW, &fb));
        assert_ne!(a.tunnel.identity(), b.tunnel.identity());
        assert_eq!(a.tunnel.kinds_identity(), b.tunnel.kinds_identity());
        assert_ne!(a.tunnel.kinds_identity(), 0);
        assert_eq!(TunnelPath::default().kinds_identity(), 0);
    }

    #[test]
    fn gtp_teid_is_not_part_of_the_identity() {
        let gtp = |teid: u32| {
            let inner = ipv4_tcp();
            let mut g = vec![0x30, 0xff];
            g.extend((inner.len() as u16).to_be_bytes());
            g.extend(teid.to_be_bytes());
            g.extend(&inner);
            ipv4(
                17,
                [192, 0, 2, 1],
                [192, 0, 2, 2],
                0,
                0,
                &udp(2152, 2152, &g),
            )
        };
        let (a, b) = (gtp(1), gtp(2));
        let sa = tcp_of(decode(linktype::RAW, &a));
        let sb = tcp_of(decode(linktype::RAW, &b));
        assert_eq!(sa.tunnel.iter().next().and_then(|e| e.id), Some(1));
        assert_eq!(sa.tunnel.identity(), sb.tunnel.identity());
    }

    #[test]
    fn gre_ipip_and_the_depth_cap() {
        let mut gre = vec![0x20, 0, 0x08, 0, 0, 0, 0, 7];
        gre.extend(ipv4_tcp());
        let f = ipv4(47, [192, 0, 2, 1], [192, 0, 2, 2], 0, 0, &gre);
        let s = tcp_of(decode(linktype::RAW, &f));
        assert_eq!(s.tunnel.iter().next().and_then(|e| e.id), Some(7));
        let mut p = ipv4_tcp();
        for _ in 0..MAX_TUNNEL_DEPTH {
            p = ipv4(4, [192, 0, 2, 1], [192, 0, 2, 2], 0, 0, &p);
        }
        assert_eq!(
            tcp_of(decode(linktype::RAW, &p)).tunnel.len(),
            MAX_TUNNEL_DEPTH
        );
        p = ipv4(4, [192, 0, 2, 1], [192, 0, 2, 2], 0, 0, &p);
        let mut d = Decoder::default();
        let pkt = Packet {
            number: 1,
            ts: Timestamp::default(),
            linktype: linktype::RAW,
            data: &p,
            orig_len: p.len() as u32,
            chunk: None,
        };
        assert!(matches!(d.decode(&pkt), Decoded::Malformed));
        assert_eq!(d.stats().undecodable_by_reason.get("tunnel_depth"), 1);
        // Unknown GRE protocol, IP-in-IP with the wrong inner version.
        let f = ipv4(
            47,
            [192, 0, 2, 1],
            [192, 0, 2, 2],
            0,
            0,
            &[0, 0, 0x12, 0x34, 1],
        );
        assert!(matches!(decode(linktype::RAW, &f), Decoded::Malformed));
        let f = ipv4(41, [192, 0, 2, 1], [192, 0, 2, 2], 0, 0, &ipv4_tcp());
        assert!(matches!(decode(linktype::RAW, &f), Decoded::Malformed));
    }

    #[test]
    fn decoder_reassembles_fragments_inside_a_tunnel() {
        let tcp = &ipv4_tcp()[20..];
        let mut frames = Vec::new();
        for (off, chunk) in [(0usize, &tcp[..16]), (16, &tcp[16..])] {
            let more = if off == 0 { 0x2000 } else { 0 };
            let inner = ipv4(
                6,
                [10, 0, 0, 1],
                [10, 0, 0, 2],
                77,
                more | (off / 8) as u16,
                chunk,
            );
            frames.push(vxlan(5, [192, 0, 2, 1], &inner));
        }
        frames.reverse();
        let mut d = Decoder::default();
        let mut got = None;
        for (i, f) in frames.iter().enumerate() {
            let pkt = Packet {
                number: i as u64 + 1,
                ts: Timestamp::default(),
                linktype: linktype::RAW,
                data: f,
                orig_len: f.len() as u32,
                chunk: None,
            };
            match d.decode(&pkt) {
                Decoded::Fragment => assert_eq!(i, 0),
                Decoded::Tcp(s) => {
                    assert_eq!(s.tunnel.len(), 1);
                    assert!(s.notes.fragments.is_some_and(|n| n.tiny_first));
                    got = Some((s.sport, s.dport, s.payload.to_vec()));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, Some((1234, 443, b"hi".to_vec())));
        let st = d.stats();
        assert_eq!((st.fragments.fragments, st.fragments.reassembled), (2, 1));
        assert_eq!(st.tunnels.get("vxlan"), 2);
    }
}
