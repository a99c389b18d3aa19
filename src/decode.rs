//! Link layers down to TCP: turns a captured frame into a TCP segment, or says why not.

use etherparse::{IpNumber, LaxIpSlice, TcpSlice, UdpSlice};
use std::net::IpAddr;

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
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE: u16 = 0x8864;

/// Deepest stack of VLAN tags / MPLS labels / encapsulations followed.
const MAX_ENCAP: usize = 16;

/// TCP flags this tool looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// A decoded TCP segment, borrowing its payload from the frame.
#[derive(Clone, Copy, Debug)]
pub struct Segment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub payload: &'a [u8],
    /// The capture's snap length cut this segment's payload short.
    pub truncated: bool,
}

/// A decoded UDP datagram, borrowing its payload from the frame.
#[derive(Clone, Debug)]
pub struct Datagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
    /// The capture's snap length cut this datagram's payload short.
    pub truncated: bool,
}

/// What a frame turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    Tcp(Segment<'a>),
    Udp(Datagram<'a>),
    /// A valid IP packet that is neither TCP nor UDP (ICMP, ...), or a non-IP frame.
    NotTcp,
    /// An IP fragment (counted; not reassembled).
    Fragment,
    /// A link type this tool does not decode.
    UnsupportedLink,
    /// Headers that do not parse.
    Malformed,
}

/// Decodes one frame of the given link type.
pub fn decode(linktype: i32, frame: &[u8]) -> Decoded<'_> {
    use linktype::*;
    let ip = match linktype {
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
        _ => return Decoded::UnsupportedLink,
    };
    match ip {
        Link::Ip(p) => ip_tcp(p),
        Link::NotIp => Decoded::NotTcp,
        Link::Malformed => Decoded::Malformed,
    }
}

enum Link<'a> {
    Ip(&'a [u8]),
    NotIp,
    Malformed,
}

fn first4(b: &[u8]) -> Option<[u8; 4]> {
    b.get(..4)?.try_into().ok()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

fn ethernet(frame: &[u8], depth: usize) -> Link<'_> {
    match be16(frame, 12) {
        Some(t) => by_ethertype(t, frame.get(14..).unwrap_or_default(), depth),
        None => Link::Malformed,
    }
}

fn ethertype_at(frame: &[u8], type_at: usize, payload_at: usize, depth: usize) -> Link<'_> {
    match (be16(frame, type_at), frame.get(payload_at..)) {
        (Some(t), Some(rest)) => by_ethertype(t, rest, depth),
        _ => Link::Malformed,
    }
}

fn by_ethertype(t: u16, rest: &[u8], depth: usize) -> Link<'_> {
    if depth > MAX_ENCAP {
        return Link::Malformed;
    }
    match t {
        ETH_IPV4 | ETH_IPV6 => Link::Ip(rest),
        ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD => ethertype_at(rest, 2, 4, depth + 1),
        ETH_MPLS | ETH_MPLS_MC => mpls(rest, depth + 1),
        ETH_PPPOE => ppp_protocol(rest.get(6..).unwrap_or_default(), depth + 1),
        _ => Link::NotIp,
    }
}

fn mpls(mut p: &[u8], depth: usize) -> Link<'_> {
    for _ in 0..MAX_ENCAP {
        let Some(label) = p.get(..4) else {
            return Link::Malformed;
        };
        let bottom = label.get(2).is_some_and(|b| b & 1 == 1);
        p = p.get(4..).unwrap_or_default();
        if bottom {
            return match p.first().map(|b| b >> 4) {
                Some(4) | Some(6) => Link::Ip(p),
                // A pseudowire control word, then an Ethernet frame.
                Some(0) => ethernet(p.get(4..).unwrap_or_default(), depth + 1),
                _ => Link::NotIp,
            };
        }
    }
    Link::Malformed
}

fn bsd_family(family: u32, rest: &[u8]) -> Link<'_> {
    match family {
        2 => Link::Ip(rest),
        // AF_INET6 differs per BSD: NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30.
        24 | 28 | 30 => Link::Ip(rest),
        _ => Link::NotIp,
    }
}

fn ppp(frame: &[u8]) -> Link<'_> {
    // Optional HDLC address/control bytes.
    let p = if frame.starts_with(&[0xff, 0x03]) {
        frame.get(2..).unwrap_or_default()
    } else {
        frame
    };
    ppp_protocol(p, 0)
}

fn pppoe(frame: &[u8]) -> Link<'_> {
    ppp_protocol(frame.get(6..).unwrap_or_default(), 0)
}

fn ppp_protocol(p: &[u8], _depth: usize) -> Link<'_> {
    match be16(p, 0) {
        Some(0x0021) | Some(0x0057) => Link::Ip(p.get(2..).unwrap_or_default()),
        Some(_) => Link::NotIp,
        None => Link::Malformed,
    }
}

/// NFLOG: a 4-byte header, then TLVs (host-order length and type, padded to 4);
/// type 9 carries the packet.
fn nflog(frame: &[u8]) -> Link<'_> {
    let mut p = frame.get(4..).unwrap_or_default();
    while let Some(h) = first4(p) {
        let len = usize::from(u16::from_le_bytes([h[0], h[1]]));
        let typ = u16::from_le_bytes([h[2], h[3]]);
        if len < 4 {
            return Link::Malformed;
        }
        let Some(value) = p.get(4..len) else {
            return Link::Malformed;
        };
        if typ == 9 {
            return Link::Ip(value);
        }
        let padded = (len + 3) & !3;
        p = p.get(padded..).unwrap_or_default();
    }
    Link::NotIp
}

fn ip_tcp(p: &[u8]) -> Decoded<'_> {
    let Ok((ip, _ext_err)) = LaxIpSlice::from_slice(p) else {
        return Decoded::Malformed;
    };
    let pl = ip.payload();
    if pl.fragmented {
        return Decoded::Fragment;
    }
    if pl.ip_number == IpNumber::UDP {
        let Ok(udp) = UdpSlice::from_slice_lax(pl.payload) else {
            return Decoded::Malformed;
        };
        let claimed = usize::from(udp.length()).saturating_sub(8);
        return Decoded::Udp(Datagram {
            src: ip.source_addr(),
            dst: ip.destination_addr(),
            sport: udp.source_port(),
            dport: udp.destination_port(),
            payload: udp.payload(),
            truncated: pl.incomplete || udp.payload().len() < claimed,
        });
    }
    if pl.ip_number != IpNumber::TCP {
        return Decoded::NotTcp;
    }
    let Ok(tcp) = TcpSlice::from_slice(pl.payload) else {
        return Decoded::Malformed;
    };
    Decoded::Tcp(Segment {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        sport: tcp.source_port(),
        dport: tcp.destination_port(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags: Flags {
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
        },
        payload: tcp.payload(),
        truncated: pl.incomplete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
