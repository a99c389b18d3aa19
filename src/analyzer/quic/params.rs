//! QUIC transport parameters (RFC 9000 §18) as a ClientHello carries them, in
//! its `quic_transport_parameters` extension: only what the packet reader needs,
//! whether the client advertised `grease_quic_bit` (RFC 9287 §3), which lets the
//! server send packets with the fixed bit cleared.

use super::packet::varint;

/// The `quic_transport_parameters` extension (RFC 9001 §8.2).
const EXT_TRANSPORT_PARAMETERS: u16 = 0x39;
/// The same extension before RFC 9001 (draft codepoint, still sent with drafts).
const EXT_TRANSPORT_PARAMETERS_DRAFT: u16 = 0xffa5;
/// The `grease_quic_bit` transport parameter (RFC 9287 §3).
pub const GREASE_QUIC_BIT: u64 = 0x2ab2;

fn u8_len(b: &[u8], at: usize) -> Option<usize> {
    b.get(at).map(|&n| usize::from(n))
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    let hi = *b.get(at)?;
    let lo = *b.get(at + 1)?;
    Some(usize::from(u16::from_be_bytes([hi, lo])))
}

/// The extensions block of a ClientHello body (after the 4-byte handshake header).
fn extensions(body: &[u8]) -> Option<&[u8]> {
    // legacy_version (2), random (32), session id, cipher suites, compression methods.
    let mut at = 34;
    at += 1 + u8_len(body, at)?;
    at += 2 + u16_at(body, at)?;
    at += 1 + u8_len(body, at)?;
    let len = u16_at(body, at)?;
    body.get(at + 2..at + 2 + len)
}

/// Whether a ClientHello body advertises `grease_quic_bit`. A hello that does not
/// parse, or has no transport parameters, does not.
pub fn grease_quic_bit(client_hello: &[u8]) -> bool {
    let Some(mut ext) = extensions(client_hello) else {
        return false;
    };
    while let (Some(t), Some(n)) = (u16_at(ext, 0), u16_at(ext, 2)) {
        let Some(data) = ext.get(4..4 + n) else {
            return false;
        };
        let t = u16::try_from(t).unwrap_or_default();
        if t == EXT_TRANSPORT_PARAMETERS || t == EXT_TRANSPORT_PARAMETERS_DRAFT {
            return has_parameter(data, GREASE_QUIC_BIT);
        }
        ext = ext.get(4 + n..).unwrap_or_default();
    }
    false
}

/// Whether a transport parameter list holds parameter `id`.
fn has_parameter(mut p: &[u8], id: u64) -> bool {
    while !p.is_empty() {
        let Ok((pid, rest)) = varint(p) else {
            return false;
        };
        let Ok((len, rest)) = varint(rest) else {
            return false;
        };
        if pid == id {
            return true;
        }
        let Some(next) = usize::try_from(len).ok().and_then(|n| rest.get(n..)) else {
            return false;
        };
        p = next;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello body with the given extensions (type, data).
    fn hello(exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut b = vec![0x03, 0x03];
        b.extend([7u8; 32]);
        b.push(0);
        b.extend([0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
        let mut e = Vec::new();
        for (t, d) in exts {
            e.extend(t.to_be_bytes());
            e.extend((d.len() as u16).to_be_bytes());
            e.extend(d);
        }
        b.extend((e.len() as u16).to_be_bytes());
        b.extend(e);
        b
    }

    #[test]
    fn grease_quic_bit_is_found_among_transport_parameters() {
        // initial_max_data (0x04) = 0x4000_0000 as a 4-byte varint, then grease_quic_bit (empty).
        let params = vec![
            0x04, 0x04, 0x80, 0x00, 0x40, 0x00, 0x80, 0x00, 0x2a, 0xb2, 0x00,
        ];
        let with = hello(&[(0x00, vec![0, 0]), (0x39, params.clone())]);
        assert!(grease_quic_bit(&with));
        assert!(grease_quic_bit(&hello(&[(0xffa5, params)])));
        // The same parameters without it, and the parameter id in another extension.
        let without = hello(&[(0x39, vec![0x04, 0x01, 0x05])]);
        assert!(!grease_quic_bit(&without));
        assert!(!grease_quic_bit(&hello(&[(
            0x10,
            vec![0x80, 0x00, 0x2a, 0xb2, 0x00]
        )])));
        // Cut or malformed input says no.
        let mut cut = with.clone();
        cut.truncate(cut.len() - 3);
        assert!(!grease_quic_bit(&cut));
        assert!(!grease_quic_bit(&[0x03]));
        assert!(!grease_quic_bit(&hello(&[(0x39, vec![0x04, 0x09, 0x05])])));
    }
}
