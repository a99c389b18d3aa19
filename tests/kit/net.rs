//! Packet builders: Ethernet, IPv4, IPv6, TCP and UDP, byte by byte (checksums
//! left zero: tlswatch does not check them).

use std::net::IpAddr;

/// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// An endpoint of a byte-built capture: last octet of 10.0.0.x, and port.
pub type Ep = (u8, u16);

/// The address of an [`Ep`].
pub fn v4(last: u8) -> [u8; 4] {
    [10, 0, 0, last]
}

/// An IPv4 packet: no options, TTL 64; `frag` is the flags and fragment offset word.
pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend(((20 + payload.len()) as u16).to_be_bytes());
    p.extend(id.to_be_bytes());
    p.extend(frag.to_be_bytes());
    p.extend([64, proto, 0, 0]);
    p.extend(src);
    p.extend(dst);
    p.extend(payload);
    p
}

/// An IPv6 packet without extension headers, hop limit 64.
pub fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((payload.len() as u16).to_be_bytes());
    p.extend([next, 64]);
    p.extend(src);
    p.extend(dst);
    p.extend(payload);
    p
}

/// A TCP segment without options, window 65535.
pub fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend(sport.to_be_bytes());
    t.extend(dport.to_be_bytes());
    t.extend(seq.to_be_bytes());
    t.extend(ack.to_be_bytes());
    t.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend(payload);
    t
}

/// A UDP datagram.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

/// The EtherType of an IP packet, by its version.
pub fn ethertype(ip: &[u8]) -> [u8; 2] {
    if ip.first().is_some_and(|b| b >> 4 == 6) {
        [0x86, 0xdd]
    } else {
        [0x08, 0x00]
    }
}

/// An Ethernet frame carrying an IP packet.
pub fn ether(ip: &[u8]) -> Vec<u8> {
    let mut e = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    e.extend(ethertype(ip));
    e.extend(ip);
    e
}

/// An Ethernet frame with an 802.1Q tag (VLAN 100) carrying an IP packet.
pub fn ether_vlan(ip: &[u8]) -> Vec<u8> {
    let mut e = vec![
        0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x81, 0x00, 0x00, 0x64,
    ];
    e.extend(ethertype(ip));
    e.extend(ip);
    e
}

/// The endpoints of an IP packet (ports 0 when the transport header is cut).
pub fn endpoints(ip: &[u8]) -> ((IpAddr, u16), (IpAddr, u16)) {
    let (src, dst, l4): (IpAddr, IpAddr, &[u8]) = if ip[0] >> 4 == 6 {
        let s: [u8; 16] = ip[8..24].try_into().unwrap();
        let d: [u8; 16] = ip[24..40].try_into().unwrap();
        (s.into(), d.into(), &ip[40..])
    } else {
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let s: [u8; 4] = ip[12..16].try_into().unwrap();
        let d: [u8; 4] = ip[16..20].try_into().unwrap();
        (s.into(), d.into(), &ip[ihl..])
    };
    let port = |at: usize| {
        l4.get(at..at + 2)
            .map_or(0, |p| u16::from_be_bytes([p[0], p[1]]))
    };
    ((src, port(0)), (dst, port(2)))
}
