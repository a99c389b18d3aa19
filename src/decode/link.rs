//! Link layers: Ethernet (with VLAN, MPLS, PPPoE), PPP, BSD loopback, NFLOG, and
//! PPP inside PPTP's GRE, each down to the IP packet it carries.

use super::bytes::{be16, first4};

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
const ETH_PPPOE: u16 = 0x8864;

/// Deepest stack of VLAN tags / MPLS labels followed within one link layer.
const MAX_ENCAP: usize = 16;

/// PPP inside GRE (PPTP): optional address/control bytes, a one- or two-byte protocol.
/// An empty payload (an acknowledgement only) carries nothing.
pub(super) fn gre_ppp(p: &[u8]) -> Option<Link<'_>> {
    if p.is_empty() {
        return Some(Link::NotIp);
    }
    let p = p.strip_prefix(&[0xff, 0x03]).unwrap_or(p);
    let first = *p.first()?;
    let (protocol, rest) = if first & 1 == 1 {
        (u16::from(first), p.get(1..)?)
    } else {
        (be16(p, 0)?, p.get(2..)?)
    };
    Some(match protocol {
        0x0021 | 0x0057 => Link::Ip(rest),
        _ => Link::NotIp,
    })
}

pub(super) enum Link<'a> {
    Ip(&'a [u8]),
    NotIp,
    Malformed,
}

pub(super) fn ethernet(frame: &[u8], depth: usize) -> Link<'_> {
    match be16(frame, 12) {
        Some(t) => by_ethertype(t, frame.get(14..).unwrap_or_default(), depth),
        None => Link::Malformed,
    }
}

pub(super) fn ethertype_at(
    frame: &[u8],
    type_at: usize,
    payload_at: usize,
    depth: usize,
) -> Link<'_> {
    match (be16(frame, type_at), frame.get(payload_at..)) {
        (Some(t), Some(rest)) => by_ethertype(t, rest, depth),
        _ => Link::Malformed,
    }
}

pub(super) fn by_ethertype(t: u16, rest: &[u8], depth: usize) -> Link<'_> {
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

pub(super) fn mpls(mut p: &[u8], depth: usize) -> Link<'_> {
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

pub(super) fn bsd_family(family: u32, rest: &[u8]) -> Link<'_> {
    match family {
        2 => Link::Ip(rest),
        // AF_INET6 differs per BSD: NetBSD/OpenBSD 24, FreeBSD 28, Darwin 30.
        24 | 28 | 30 => Link::Ip(rest),
        _ => Link::NotIp,
    }
}

pub(super) fn ppp(frame: &[u8]) -> Link<'_> {
    // Optional HDLC address/control bytes.
    let p = if frame.starts_with(&[0xff, 0x03]) {
        frame.get(2..).unwrap_or_default()
    } else {
        frame
    };
    ppp_protocol(p, 0)
}

pub(super) fn pppoe(frame: &[u8]) -> Link<'_> {
    ppp_protocol(frame.get(6..).unwrap_or_default(), 0)
}

pub(super) fn ppp_protocol(p: &[u8], _depth: usize) -> Link<'_> {
    match be16(p, 0) {
        Some(0x0021) | Some(0x0057) => Link::Ip(p.get(2..).unwrap_or_default()),
        Some(_) => Link::NotIp,
        None => Link::Malformed,
    }
}

/// NFLOG: a 4-byte header, then TLVs (host-order length and type, padded to 4);
/// type 9 carries the packet.
pub(super) fn nflog(frame: &[u8]) -> Link<'_> {
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
