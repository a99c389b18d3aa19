//! Tunnel headers: pure parsers for GRE (incl. PPTP's enhanced GRE), ERSPAN I/II/III,
//! VXLAN, Geneve, GTP-U v1, Teredo and AYIYA. Each takes the bytes after the outer
//! header and returns what it carries, or `None` when the header does not parse.

use super::bytes::{be16, be32};

/// GRE protocol types (ethertypes) this tool follows.
pub mod proto {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const TEB: u16 = 0x6558;
    pub const ERSPAN_2: u16 = 0x88be;
    pub const ERSPAN_3: u16 = 0x22eb;
    pub const PPP: u16 = 0x880b;
    pub const MPLS: u16 = 0x8847;
    pub const MPLS_MC: u16 = 0x8848;
}

/// UDP ports where tunnels are looked for (the header is verified before use).
pub mod port {
    pub const VXLAN: u16 = 4789;
    /// The Linux kernel's historical VXLAN port.
    pub const VXLAN_LINUX: u16 = 8472;
    pub const GENEVE: u16 = 6081;
    pub const GTP_U: u16 = 2152;
    pub const TEREDO: u16 = 3544;
    pub const GRE_UDP: u16 = 4754;
    pub const AYIYA: u16 = 5072;
}

/// A GRE header (RFC 2784/2890, or RFC 2637's enhanced GRE when `version` is 1).
#[derive(Debug, PartialEq, Eq)]
pub struct Gre<'a> {
    pub version: u8,
    pub protocol: u16,
    /// The key (version 0), or the call ID (version 1).
    pub key: Option<u32>,
    pub seq: Option<u32>,
    pub payload: &'a [u8],
}

const GRE_C: u16 = 0x8000;
const GRE_R: u16 = 0x4000;
const GRE_K: u16 = 0x2000;
const GRE_S: u16 = 0x1000;
const GRE_A: u16 = 0x0080;

pub fn gre(b: &[u8]) -> Option<Gre<'_>> {
    let flags = be16(b, 0)?;
    let protocol = be16(b, 2)?;
    let version = u8::try_from(flags & 7).ok()?;
    // Source routing (RFC 1701) is deprecated and never seen carrying traffic.
    if flags & GRE_R != 0 {
        return None;
    }
    let mut at = 4;
    let mut key = None;
    let mut seq = None;
    match version {
        0 => {
            if flags & GRE_C != 0 {
                at += 4;
            }
            if flags & GRE_K != 0 {
                key = Some(be32(b, at)?);
                at += 4;
            }
            if flags & GRE_S != 0 {
                seq = Some(be32(b, at)?);
                at += 4;
            }
        }
        1 => {
            // Enhanced GRE: no checksum, the key holds payload length and call ID.
            if flags & GRE_K == 0 || flags & GRE_C != 0 || protocol != proto::PPP {
                return None;
            }
            key = Some(u32::from(be16(b, at + 2)?));
            at += 4;
            if flags & GRE_S != 0 {
                seq = Some(be32(b, at)?);
                at += 4;
            }
            if flags & GRE_A != 0 {
                at += 4;
            }
        }
        _ => return None,
    }
    Some(Gre {
        version,
        protocol,
        key,
        seq,
        payload: b.get(at..)?,
    })
}

/// Aruba's GRE protocol types (access point to controller): an 802.11 frame follows.
pub fn is_aruba(protocol: u16) -> bool {
    (0x8200..=0x83ff).contains(&protocol)
}

/// What an 802.11 frame carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Wlan<'a> {
    /// An unprotected data frame's LLC/SNAP payload: (ethertype, bytes after it).
    Data(u16, &'a [u8]),
    /// Management, control or protected (encrypted) frames: nothing this tool reads.
    Other,
}

/// An 802.11 MAC header and LLC/SNAP, as Aruba forwards them in GRE.
pub fn wlan(b: &[u8]) -> Option<Wlan<'_>> {
    let fc0 = *b.first()?;
    let fc1 = *b.get(1)?;
    if (fc0 >> 2) & 3 != 2 || fc1 & 0x40 != 0 {
        return Some(Wlan::Other);
    }
    // Frame control, duration, three addresses, sequence control.
    let mut at = 24;
    if fc1 & 3 == 3 {
        at += 6;
    }
    let mut amsdu = false;
    if fc0 & 0x80 != 0 {
        amsdu = *b.get(at)? & 0x80 != 0;
        at += 2;
        if fc1 & 0x80 != 0 {
            at += 4;
        }
    }
    // An A-MSDU: only its first subframe (destination, source, length) is read.
    if amsdu {
        at += 14;
    }
    let llc = b.get(at..)?;
    if !llc.starts_with(&[0xaa, 0xaa, 0x03]) {
        return Some(Wlan::Other);
    }
    Some(Wlan::Data(be16(llc, 6)?, llc.get(8..)?))
}

/// What an ERSPAN header says follows it.
#[derive(Debug, PartialEq, Eq)]
pub enum ErspanInner<'a> {
    Ethernet(&'a [u8]),
    Ip(&'a [u8]),
}

/// ERSPAN type II (GRE 0x88be with a sequence number): 8 bytes, version 1.
pub fn erspan2(b: &[u8]) -> Option<(u32, &[u8])> {
    let w = be16(b, 0)?;
    if w >> 12 != 1 {
        return None;
    }
    let session = u32::from(be16(b, 2)? & 0x03ff);
    Some((session, b.get(8..)?))
}

/// ERSPAN type III (GRE 0x22eb): 12 bytes, version 2, then an 8-byte platform
/// subheader when the O bit is set; the frame type says Ethernet or IP.
pub fn erspan3(b: &[u8]) -> Option<(u32, ErspanInner<'_>)> {
    let w = be16(b, 0)?;
    if w >> 12 != 2 {
        return None;
    }
    let session = u32::from(be16(b, 2)? & 0x03ff);
    let last = be16(b, 10)?;
    let optional = last & 1 != 0;
    let frame_type = (last >> 10) & 0x1f;
    let rest = b.get(if optional { 20 } else { 12 }..)?;
    match frame_type {
        0 => Some((session, ErspanInner::Ethernet(rest))),
        2 => Some((session, ErspanInner::Ip(rest))),
        _ => None,
    }
}

/// VXLAN (RFC 7348): 8 bytes with the I flag set; an Ethernet frame follows. Bits 0x70
/// of the flags are reserved in every VXLAN variant (Group Based Policy uses 0x80, the
/// GPE extension 0x07, and version 0 leaves 0x30 clear): a datagram on the VXLAN port
/// that sets them is something else, such as a QUIC packet (whose fixed bit is 0x40)
/// sent to a client that happened to pick port 4789.
pub fn vxlan(b: &[u8]) -> Option<(u32, &[u8])> {
    let flags = *b.first()?;
    if flags & 0x08 == 0 || flags & 0x70 != 0 {
        return None;
    }
    let vni = be32(b, 4)? >> 8;
    let inner = b.get(8..)?;
    // The inner frame needs at least its Ethernet header.
    (inner.len() >= 14).then_some((vni, inner))
}

/// Geneve (RFC 8926): version 0, options skipped; returns the VNI, the protocol
/// type and the payload.
pub fn geneve(b: &[u8]) -> Option<(u32, u16, &[u8])> {
    let first = *b.first()?;
    if first >> 6 != 0 {
        return None;
    }
    let opts = usize::from(first & 0x3f) * 4;
    let protocol = be16(b, 2)?;
    let vni = be32(b, 4)? >> 8;
    Some((vni, protocol, b.get(8 + opts..)?))
}

/// What a GTP-U message carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Gtp<'a> {
    /// A G-PDU: a user packet (IPv4 or IPv6) in tunnel `teid`.
    Pdu { teid: u32, inner: &'a [u8] },
    /// Echo, error indication, end marker, ...: no user data.
    Signalling,
}

const GTP_GPDU: u8 = 0xff;
/// Most extension headers followed in one GTP-U header.
const MAX_GTP_EXTENSIONS: usize = 16;

/// GTP-U version 1 (3GPP TS 29.281). GTP' (PT=0) and other versions are `None`,
/// as is a G-PDU whose payload is not an IP packet: a false GTP header.
pub fn gtpu(b: &[u8]) -> Option<Gtp<'_>> {
    let flags = *b.first()?;
    if flags >> 5 != 1 || flags & 0x10 == 0 {
        return None;
    }
    let msg = *b.get(1)?;
    let len = usize::from(be16(b, 2)?);
    let teid = be32(b, 4)?;
    // Ignore bytes past the message (padding) but allow a snap-length cut.
    let end = (8 + len).min(b.len());
    let msg_bytes = b.get(..end)?;
    let mut p = msg_bytes.get(8..)?;
    if flags & 0x07 != 0 {
        let mut next = *p.get(3)?;
        p = p.get(4..)?;
        let mut n = 0;
        while next != 0 {
            n += 1;
            let units = usize::from(*p.first()?);
            if units == 0 || n > MAX_GTP_EXTENSIONS {
                return None;
            }
            let ext = p.get(..units * 4)?;
            next = *ext.last()?;
            p = p.get(units * 4..)?;
        }
    }
    if msg != GTP_GPDU {
        return Some(Gtp::Signalling);
    }
    // The payload must at least hold an IP header of its version.
    match p.first().map(|v| v >> 4) {
        Some(4) if p.len() >= 20 => Some(Gtp::Pdu { teid, inner: p }),
        Some(6) if p.len() >= 40 => Some(Gtp::Pdu { teid, inner: p }),
        _ => None,
    }
}

/// Teredo (RFC 4380): optional authentication and origin indications, then an
/// IPv6 packet whose length matches what remains (or exceeds it, when the snap
/// length cut the datagram: `truncated`).
pub fn teredo(mut b: &[u8], truncated: bool) -> Option<&[u8]> {
    if b.starts_with(&[0, 1]) {
        let id = usize::from(*b.get(2)?);
        let au = usize::from(*b.get(3)?);
        b = b.get(4 + id + au + 9..)?;
    }
    if b.starts_with(&[0, 0]) {
        b = b.get(8..)?;
    }
    ipv6_fits(b, truncated).then_some(b)
}

/// AYIYA (Anything In Anything): forward opcode, identity and signature skipped,
/// carrying IPv4 (4) or IPv6 (41). Returns the inner packet.
pub fn ayiya(b: &[u8], truncated: bool) -> Option<&[u8]> {
    let id_len = 1usize << (b.first()? >> 4);
    let sig_len = usize::from(b.get(1)? >> 4) * 4;
    let opcode = b.get(2)? & 0x0f;
    let next = *b.get(3)?;
    if opcode != 1 || id_len > 16 {
        return None;
    }
    let inner = b.get(8 + id_len + sig_len..)?;
    let version = inner.first()? >> 4;
    match (next, version) {
        (4, 4) => Some(inner),
        (41, 6) if ipv6_fits(inner, truncated) => Some(inner),
        _ => None,
    }
}

/// An IPv6 header whose payload length agrees with the bytes that follow.
fn ipv6_fits(b: &[u8], truncated: bool) -> bool {
    let Some(plen) = be16(b, 4) else {
        return false;
    };
    let want = 40 + usize::from(plen);
    b.len() >= 40
        && b.first().is_some_and(|v| v >> 4 == 6)
        && (want == b.len() || (truncated && want > b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_flags_key_sequence_checksum() {
        assert_eq!(
            gre(&[0, 0, 0x08, 0, 0xaa]),
            Some(Gre {
                version: 0,
                protocol: 0x0800,
                key: None,
                seq: None,
                payload: &[0xaa]
            })
        );
        let all = [
            0xb0, 0, 0x86, 0xdd, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 9, 0xbb,
        ];
        let g = gre(&all).unwrap();
        assert_eq!((g.key, g.seq, g.payload), (Some(7), Some(9), &[0xbb][..]));
        // Key bit set but the key cut off.
        assert_eq!(gre(&[0x20, 0, 0x08, 0, 0, 0]), None);
        // Routing present, unknown version.
        assert_eq!(gre(&[0x40, 0, 0x08, 0]), None);
        assert_eq!(gre(&[0, 2, 0x08, 0]), None);
    }

    #[test]
    fn enhanced_gre_call_id_and_ack() {
        let b = [
            0x30, 0x81, 0x88, 0x0b, 0, 4, 0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 2, 0xff,
        ];
        let g = gre(&b).unwrap();
        assert_eq!((g.version, g.key, g.seq), (1, Some(0x1234), Some(1)));
        assert_eq!(g.payload, &[0xff]);
        // Version 1 without the key is not PPTP.
        assert_eq!(gre(&[0x00, 0x01, 0x88, 0x0b]), None);
    }

    #[test]
    fn aruba_wlan_frames() {
        // QoS data, no protection, LLC/SNAP IPv4.
        let mut f = vec![0x88, 0x01];
        f.extend([0u8; 22]);
        f.extend([0, 0]);
        f.extend([0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00, 0x45]);
        assert_eq!(wlan(&f), Some(Wlan::Data(0x0800, &[0x45][..])));
        let mut protected = f.clone();
        protected[1] |= 0x40;
        assert_eq!(wlan(&protected), Some(Wlan::Other));
        let mut amsdu = f[..26].to_vec();
        amsdu[24] = 0x80;
        amsdu.extend([0u8; 14]);
        amsdu.extend(&f[26..]);
        assert_eq!(wlan(&amsdu), Some(Wlan::Data(0x0800, &[0x45][..])));
        assert_eq!(wlan(&f[..20]), None);
        assert!(is_aruba(0x8200) && is_aruba(0x8300) && !is_aruba(0x0800));
    }

    #[test]
    fn erspan_versions() {
        let ii = [0x10, 0x05, 0x03, 0xff, 0, 0, 0, 0, 0xee];
        assert_eq!(erspan2(&ii), Some((0x3ff, &[0xee][..])));
        assert_eq!(erspan2(&[0x20, 0, 0, 1, 0, 0, 0, 0]), None);
        let mut iii = vec![0x20, 0, 0, 0x2a, 0, 0, 0, 0, 0, 0, 0, 0];
        iii.push(0xee);
        assert_eq!(
            erspan3(&iii),
            Some((0x2a, ErspanInner::Ethernet(&[0xee][..])))
        );
        // O bit: an 8-byte subheader; frame type 2: IP.
        let mut opt = vec![0x20, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x08, 0x01];
        opt.extend([0u8; 8]);
        opt.push(0x45);
        assert_eq!(erspan3(&opt), Some((1, ErspanInner::Ip(&[0x45][..]))));
        assert_eq!(erspan3(&opt[..15]), None);
    }

    #[test]
    fn vxlan_and_geneve() {
        let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
        v.extend([0u8; 14]);
        assert_eq!(vxlan(&v).map(|(n, _)| n), Some(42));
        // Group Based Policy's G bit and the GPE bits (Zeek's vxlan-triple-v2 sets 0x0c).
        for first in [0x88, 0x0c, 0x0f] {
            v[0] = first;
            assert_eq!(vxlan(&v).map(|(n, _)| n), Some(42), "{first:#x}");
        }
        v[0] = 0;
        assert_eq!(vxlan(&v), None);
        // Reserved flag bits set: QUIC short headers (0x48, 0x68), a long header (0xc8).
        for first in [0x48, 0x68, 0xc8, 0x18] {
            v[0] = first;
            assert_eq!(vxlan(&v), None, "{first:#x}");
        }
        assert_eq!(vxlan(&[0x08, 0, 0, 0, 0, 0, 42, 0, 1]), None);
        let g = [0x01, 0, 0x65, 0x58, 0, 1, 0, 0, 1, 2, 3, 4, 0xee];
        assert_eq!(geneve(&g), Some((256, 0x6558, &[0xee][..])));
        assert_eq!(geneve(&g[..11]), None);
        assert_eq!(geneve(&[0x40, 0, 0x65, 0x58, 0, 0, 0, 0]), None);
    }

    #[test]
    fn gtpu_headers() {
        let mut pdu = vec![0x30, 0xff, 0, 20, 0, 0, 0, 9, 0x45];
        pdu.extend([0u8; 19]);
        assert_eq!(
            gtpu(&pdu),
            Some(Gtp::Pdu {
                teid: 9,
                inner: &pdu[8..]
            })
        );
        // Sequence number and one extension header (PDU session container).
        let mut ext = vec![
            0x34, 0xff, 0, 48, 0, 0, 0, 1, 0, 5, 0, 0x85, 1, 0x10, 0x01, 0, 0x60,
        ];
        ext.extend([0u8; 39]);
        assert_eq!(
            gtpu(&ext),
            Some(Gtp::Pdu {
                teid: 1,
                inner: &ext[16..]
            })
        );
        // Cut inside the inner IPv6 header: not a user packet.
        assert_eq!(gtpu(&ext[..40]), None);
        // Echo request: signalling.
        assert_eq!(
            gtpu(&[0x32, 1, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0]),
            Some(Gtp::Signalling)
        );
        // A G-PDU that is not IP, GTP' and version 2: not GTP-U.
        pdu[8] = 0x12;
        assert_eq!(gtpu(&pdu), None);
        assert_eq!(gtpu(&[0x20, 0xff, 0, 1, 0, 0, 0, 9, 0x45]), None);
        assert_eq!(gtpu(&[0x48, 0xff, 0, 1, 0, 0, 0, 9, 0x45]), None);
        // A zero-length extension header would loop.
        assert_eq!(
            gtpu(&[0x34, 0xff, 0, 8, 0, 0, 0, 1, 0, 5, 0, 0x85, 0, 0, 0, 0]),
            None
        );
    }

    fn ipv6_hdr(plen: u16) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend(plen.to_be_bytes());
        h.extend([59, 64]);
        h.extend([0u8; 32]);
        h.extend(vec![0u8; usize::from(plen)]);
        h
    }

    #[test]
    fn teredo_indications() {
        let ip = ipv6_hdr(0);
        assert_eq!(teredo(&ip, false), Some(&ip[..]));
        let mut origin = vec![0, 0, 0x12, 0x34, 1, 2, 3, 4];
        origin.extend(&ip);
        assert_eq!(teredo(&origin, false), Some(&ip[..]));
        let mut auth = vec![0, 1, 2, 1, 0xaa, 0xbb, 0xcc];
        auth.extend([0u8; 9]);
        auth.extend(&origin);
        assert_eq!(teredo(&auth, false), Some(&ip[..]));
        // Length disagreeing with the bytes: not Teredo.
        let mut long = ip.clone();
        long.push(0);
        assert_eq!(teredo(&long, false), None);
        assert_eq!(
            teredo(b"hello world, not ipv6 at all......................", false),
            None
        );
        // Cut by the snap length.
        assert_eq!(teredo(&origin[..30], true), None);
        let mut big = ipv6_hdr(100);
        big.truncate(60);
        assert_eq!(teredo(&big, true), Some(&big[..]));
        assert_eq!(teredo(&big, false), None);
    }

    #[test]
    fn ayiya_forward() {
        let ip = ipv6_hdr(0);
        // id 2^1 = 2 bytes, signature 1 word, opcode forward, IPv6.
        let mut b = vec![0x11, 0x12, 0x01, 41, 0, 0, 0, 0, 0xa, 0xb, 1, 2, 3, 4];
        b.extend(&ip);
        assert_eq!(ayiya(&b, false), Some(&ip[..]));
        b[2] = 0x02;
        assert_eq!(ayiya(&b, false), None);
    }
}
