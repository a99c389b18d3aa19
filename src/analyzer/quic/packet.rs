//! QUIC wire parsers (RFC 9000 §16–§19, RFC 8999): variable-length integers, long
//! headers, Version Negotiation and Retry packets, header-protection removal, and
//! the frames an Initial packet may carry. Pure functions over byte slices.

use super::initial::{Keys, SAMPLE_LEN, TAG_LEN};

/// Longest connection ID QUIC v1 and v2 allow; other versions may use up to 255.
pub const MAX_CID_LEN: usize = 20;

/// Why bytes did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// The datagram ends before the packet does (a length past its end, or a cut capture).
    Truncated,
    /// A field holds a value the format does not allow.
    Invalid,
}

/// Reads a QUIC variable-length integer.
pub fn varint(i: &[u8]) -> Result<(u64, &[u8]), Bad> {
    let first = *i.first().ok_or(Bad::Truncated)?;
    let len = 1usize << (first >> 6);
    let bytes = i.get(..len).ok_or(Bad::Truncated)?;
    let mut v = u64::from(first & 0x3f);
    for &b in bytes.iter().skip(1) {
        v = (v << 8) | u64::from(b);
    }
    Ok((v, i.get(len..).unwrap_or_default()))
}

fn take(i: &[u8], n: usize) -> Result<(&[u8], &[u8]), Bad> {
    if i.len() < n {
        return Err(Bad::Truncated);
    }
    Ok(i.split_at(n))
}

fn take_varint_len(i: &[u8]) -> Result<(&[u8], &[u8]), Bad> {
    let (n, i) = varint(i)?;
    take(i, usize::try_from(n).map_err(|_| Bad::Truncated)?)
}

/// A long-header packet (RFC 8999 §5.1), before header protection is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Long<'a> {
    /// The first byte as sent (its low bits still protected).
    pub first: u8,
    pub version: u32,
    pub dcid: &'a [u8],
    pub scid: &'a [u8],
    pub kind: Kind<'a>,
    /// Bytes of the datagram this packet takes (coalesced packets follow it).
    pub len: usize,
}

/// What follows the connection IDs of a long header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// Version 0: the versions the server supports, four bytes each.
    VersionNegotiation { versions: &'a [u8] },
    /// Retry: the token (the 16-byte integrity tag follows it).
    Retry { token: &'a [u8] },
    /// Initial, 0-RTT or Handshake: `pn_offset` is where the protected packet
    /// number starts (from the packet's first byte); [`Long::len`] is where it ends.
    Protected {
        type_bits: u8,
        token: &'a [u8],
        pn_offset: usize,
    },
    /// A version this tool cannot read past the connection IDs: the rest of the datagram.
    Opaque,
}

/// The packet type bits of a long header's first byte.
pub fn type_bits(first: u8) -> u8 {
    (first >> 4) & 0x03
}

/// Parses the long-header packet at the start of `d`. `initial_type` and
/// `retry_type` are the version's type codes (from its [`super::initial::Suite`]);
/// `None` for versions whose layout after the connection IDs is unknown.
/// `greased`: the fixed bit may be 0 (RFC 9287: the receiver advertised
/// `grease_quic_bit`); otherwise a cleared fixed bit is invalid in v1 and v2.
pub fn long_header(d: &[u8], types: Option<(u8, u8)>, greased: bool) -> Result<Long<'_>, Bad> {
    let (mut long, rest) = invariant_header(d)?;
    let known = types.is_some();
    if known && (long.dcid.len() > MAX_CID_LEN || long.scid.len() > MAX_CID_LEN) {
        return Err(Bad::Invalid);
    }
    if long.version == 0 {
        if rest.is_empty() || rest.len() % 4 != 0 {
            return Err(Bad::Invalid);
        }
        long.kind = Kind::VersionNegotiation { versions: rest };
        return Ok(long);
    }
    let Some((initial_type, retry_type)) = types else {
        return Ok(long);
    };
    if !greased && long.first & 0x40 == 0 {
        // The fixed bit must be set in v1 and v2 unless greasing was advertised.
        return Err(Bad::Invalid);
    }
    (long.kind, long.len) = versioned_kind(d, long.first, rest, initial_type, retry_type)?;
    Ok(long)
}

/// The version-independent part of a long header (RFC 8999 §5.1): first byte,
/// version and connection IDs, as an [`Kind::Opaque`] packet taking the whole
/// datagram, and the bytes after the connection IDs. What a packet cut short
/// by the capture's snap length still shows.
#[inline]
pub fn invariant_header(d: &[u8]) -> Result<(Long<'_>, &[u8]), Bad> {
    let (&first, rest) = d.split_first().ok_or(Bad::Truncated)?;
    if first & 0x80 == 0 {
        return Err(Bad::Invalid);
    }
    let (v, rest) = take(rest, 4)?;
    let version = u32::from_be_bytes(v.try_into().map_err(|_| Bad::Truncated)?);
    let (&dl, rest) = rest.split_first().ok_or(Bad::Truncated)?;
    let (dcid, rest) = take(rest, usize::from(dl))?;
    let (&sl, rest) = rest.split_first().ok_or(Bad::Truncated)?;
    let (scid, rest) = take(rest, usize::from(sl))?;
    let long = Long {
        first,
        version,
        dcid,
        scid,
        kind: Kind::Opaque,
        len: d.len(),
    };
    Ok((long, rest))
}

/// What follows the connection IDs (`rest`) in a version whose type codes are
/// known, and the bytes of `d` the packet takes.
#[inline]
fn versioned_kind<'a>(
    d: &[u8],
    first: u8,
    rest: &'a [u8],
    initial_type: u8,
    retry_type: u8,
) -> Result<(Kind<'a>, usize), Bad> {
    let t = type_bits(first);
    if t == retry_type {
        let token_len = rest.len().checked_sub(TAG_LEN).ok_or(Bad::Truncated)?;
        let token = rest.get(..token_len).ok_or(Bad::Truncated)?;
        return Ok((Kind::Retry { token }, d.len()));
    }
    let (token, rest) = if t == initial_type {
        take_varint_len(rest)?
    } else {
        (&[][..], rest)
    };
    let (length, rest) = varint(rest)?;
    let pn_offset = d.len() - rest.len();
    let length = usize::try_from(length).map_err(|_| Bad::Truncated)?;
    if length < 1 + TAG_LEN {
        return Err(Bad::Invalid);
    }
    if rest.len() < length {
        return Err(Bad::Truncated);
    }
    let kind = Kind::Protected {
        type_bits: t,
        token,
        pn_offset,
    };
    Ok((kind, pn_offset + length))
}

/// Removes header protection and opens the payload of the protected long-header
/// packet `pkt` (exactly `len` bytes: header, packet number, ciphertext, tag),
/// whose packet number starts at `pn_offset`. `largest` is the largest packet
/// number seen so far in this direction and space. Returns the packet number and
/// the plaintext frames; `None` when the packet does not decrypt.
pub fn open(
    keys: &Keys,
    pkt: &[u8],
    pn_offset: usize,
    largest: Option<u64>,
    scratch: &mut Vec<u8>,
) -> Option<(u64, std::ops::Range<usize>)> {
    let sample: [u8; SAMPLE_LEN] = pkt
        .get(pn_offset + 4..pn_offset + 4 + SAMPLE_LEN)?
        .try_into()
        .ok()?;
    let mask = keys.mask(&sample);
    scratch.clear();
    scratch.extend_from_slice(pkt);
    let first = scratch.first_mut()?;
    *first ^= mask[0] & 0x0f;
    let pn_len = usize::from(*first & 0x03) + 1;
    let mut truncated = 0u64;
    for (i, m) in mask.iter().skip(1).take(pn_len).enumerate() {
        let b = scratch.get_mut(pn_offset + i)?;
        *b ^= m;
        truncated = (truncated << 8) | u64::from(*b);
    }
    let pn = super::initial::decode_packet_number(largest, truncated, pn_len);
    let body_at = pn_offset + pn_len;
    if body_at > scratch.len() {
        return None;
    }
    let (header, payload) = scratch.split_at_mut(body_at);
    let n = keys.open(pn, header, payload)?;
    Some((pn, body_at..body_at + n))
}

/// A frame of an Initial packet that matters here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Crypto {
        offset: u64,
        data: &'a [u8],
    },
    /// CONNECTION_CLOSE: `error` 0x0100-0x01ff carries a TLS alert.
    Close {
        error: u64,
        reason: &'a [u8],
    },
}

/// Walks the frames of an Initial (or Handshake) packet's plaintext, calling `f`
/// for CRYPTO and CONNECTION_CLOSE frames. Frames an Initial may not carry are
/// an error (RFC 9000 §12.4).
pub fn frames<'a>(mut p: &'a [u8], f: &mut dyn FnMut(Frame<'a>)) -> Result<(), Bad> {
    while let Some(&t) = p.first() {
        match t {
            0x00 => {
                let pad = p.iter().take_while(|&&b| b == 0).count();
                p = p.get(pad..).unwrap_or_default();
            }
            0x01 => p = p.get(1..).unwrap_or_default(),
            0x02 | 0x03 => {
                let (_, i) = varint(p)?;
                let (_largest, i) = varint(i)?;
                let (_delay, i) = varint(i)?;
                let (count, i) = varint(i)?;
                let (_first, mut i) = varint(i)?;
                for _ in 0..count {
                    let (_gap, j) = varint(i)?;
                    let (_len, j) = varint(j)?;
                    i = j;
                }
                if t == 0x03 {
                    for _ in 0..3 {
                        let (_, j) = varint(i)?;
                        i = j;
                    }
                }
                p = i;
            }
            0x06 => {
                let (_, i) = varint(p)?;
                let (offset, i) = varint(i)?;
                let (data, i) = take_varint_len(i)?;
                if offset.saturating_add(data.len() as u64) >= 1 << 62 {
                    return Err(Bad::Invalid);
                }
                f(Frame::Crypto { offset, data });
                p = i;
            }
            0x1c | 0x1d => {
                let (_, i) = varint(p)?;
                let (error, i) = varint(i)?;
                let i = if t == 0x1c { varint(i)?.1 } else { i };
                let (reason, i) = take_varint_len(i)?;
                f(Frame::Close { error, reason });
                p = i;
            }
            _ => return Err(Bad::Invalid),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::initial::{InitialKeys, Suite, V1};
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn varints_rfc9000_a1() {
        assert_eq!(
            varint(&hex("c2197c5eff14e88c")).map(|v| v.0),
            Ok(151_288_809_941_952_652)
        );
        assert_eq!(varint(&hex("9d7f3e7d")).map(|v| v.0), Ok(494_878_333));
        assert_eq!(varint(&hex("7bbd")).map(|v| v.0), Ok(15_293));
        assert_eq!(varint(&hex("25")).map(|v| v.0), Ok(37));
        assert_eq!(varint(&hex("4025")).map(|v| v.0), Ok(37));
        assert_eq!(varint(&hex("9d7f3e")), Err(Bad::Truncated));
        assert_eq!(varint(&[]), Err(Bad::Truncated));
    }

    /// RFC 9001 A.3: the server's Initial, protected.
    const SERVER_INITIAL: &str = "
        cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a
        5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3
        dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84
        022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4
        2158407dd074ee";

    #[test]
    fn rfc9001_a3_server_initial_decrypts() {
        let pkt = hex(SERVER_INITIAL);
        let suite = Suite::of(V1).unwrap();
        let l = long_header(&pkt, Some((suite.initial_type, suite.retry_type)), false).unwrap();
        assert_eq!(l.version, V1);
        assert!(l.dcid.is_empty());
        assert_eq!(l.scid, &hex("f067a5502a4262b5")[..]);
        assert_eq!(l.len, pkt.len());
        let Kind::Protected {
            type_bits,
            token,
            pn_offset,
        } = l.kind
        else {
            panic!("{:?}", l.kind)
        };
        assert_eq!((type_bits, token.len()), (0, 0));
        let keys = InitialKeys::new(&suite, &hex("8394c8f03e515708")).unwrap();
        let mut scratch = Vec::new();
        let (pn, range) = open(&keys.server, &pkt, pn_offset, None, &mut scratch).unwrap();
        assert_eq!(pn, 1);
        let plain = &scratch[range];
        assert_eq!(
            plain,
            &hex(
                "02000000000600405a020000560303eefce7f7b37ba1d1632e96677825ddf73988
                cfc79825df566dc5430b9a045a1200130100002e00330024001d00209d3c940d
                89690b84d08a60993c144eca684d1081287c834d5311bcf32bb9da1a002b0002
                0304"
            )[..]
        );
        let mut got = Vec::new();
        frames(plain, &mut |f| got.push(f)).unwrap();
        assert!(matches!(got[..], [Frame::Crypto { offset: 0, data }] if data.len() == 90));
        // The client's keys do not open the server's packet.
        assert!(open(&keys.client, &pkt, pn_offset, None, &mut scratch).is_none());
    }

    #[test]
    fn long_header_lengths_past_the_datagram_are_truncation() {
        let pkt = hex(SERVER_INITIAL);
        let types = Some((0, 3));
        for cut in 0..pkt.len() {
            assert_eq!(
                long_header(&pkt[..cut], types, false),
                Err(Bad::Truncated),
                "cut at {cut}"
            );
        }
        // A short header is not a long header.
        assert_eq!(long_header(&[0x40, 1, 2], types, false), Err(Bad::Invalid));
        // Connection IDs longer than 20 bytes are invalid in v1.
        let mut long_cid = vec![0xc0, 0, 0, 0, 1, 21];
        long_cid.extend([0; 40]);
        assert_eq!(long_header(&long_cid, types, false), Err(Bad::Invalid));
    }

    #[test]
    fn version_negotiation_and_retry() {
        let mut vn = vec![0x80, 0, 0, 0, 0, 1, 0xaa, 1, 0xbb];
        vn.extend([0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf]);
        let l = long_header(&vn, None, false).unwrap();
        assert_eq!(l.version, 0);
        assert_eq!(
            l.kind,
            Kind::VersionNegotiation {
                versions: &[0, 0, 0, 1, 0x6b, 0x33, 0x43, 0xcf]
            }
        );
        vn.push(0);
        assert_eq!(long_header(&vn, None, false), Err(Bad::Invalid));
        let mut retry = vec![0xf0, 0, 0, 0, 1, 0, 2, 0xcc, 0xdd];
        retry.extend(b"token");
        retry.extend([7; 16]);
        let l = long_header(&retry, Some((0, 3)), false).unwrap();
        assert_eq!(l.scid, &[0xcc, 0xdd][..]);
        assert_eq!(l.kind, Kind::Retry { token: b"token" });
        // An unknown version is kept, its body opaque.
        let odd = [0xc0, 0x51, 0x30, 0x35, 0x30, 0, 0, 9, 9];
        let l = long_header(&odd, None, false).unwrap();
        assert_eq!((l.version, l.kind), (0x5130_3530, Kind::Opaque));
    }

    #[test]
    fn frames_done_and_invalid() {
        // PADDING, PING, ACK (one range), CRYPTO, CONNECTION_CLOSE with a TLS alert.
        let mut p = vec![0, 0, 1, 0x02, 0x05, 0x00, 0x01, 0x02, 0x01, 0x03];
        p.extend([0x06, 0x40, 0x10, 0x03, b'a', b'b', b'c']);
        p.extend([0x1c, 0x41, 0x28, 0x06, 0x02, b'n', b'o']);
        let mut got = Vec::new();
        assert_eq!(frames(&p, &mut |f| got.push(f)), Ok(()));
        assert_eq!(
            got,
            vec![
                Frame::Crypto {
                    offset: 16,
                    data: b"abc"
                },
                Frame::Close {
                    error: 0x128,
                    reason: b"no"
                }
            ]
        );
        // A STREAM frame has no place in an Initial packet.
        assert_eq!(frames(&[0x08, 0, 0], &mut |_| ()), Err(Bad::Invalid));
        // A CRYPTO frame whose length runs past the packet.
        assert_eq!(
            frames(&[0x06, 0x00, 0x10, b'a'], &mut |_| ()),
            Err(Bad::Truncated)
        );
    }
}
