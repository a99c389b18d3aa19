//! Client and server fingerprints of a handshake: JA3 and JA3S (Salesforce's
//! definitions, as tshark computes `tls.handshake.ja3`/`ja3s`) and JA4
//! (FoxIO's JA4 for TLS, BSD-3-Clause). Pure functions on the hello fields.

use crate::analyzer::tls::cipher::is_grease;
use crate::record::{hex, push_hex};
use md5::{Digest, Md5};
use sha2::Sha256;

const EXT_SNI: u16 = 0x0000;
const EXT_ALPN: u16 = 0x0010;

/// The parts of a ClientHello the fingerprints read, in wire order, GREASE still in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHelloFields {
    /// Legacy `client_version`.
    pub version: u16,
    pub ciphers: Vec<u16>,
    /// Extension types in wire order.
    pub extensions: Vec<u16>,
    /// `supported_groups` (formerly `elliptic_curves`).
    pub groups: Vec<u16>,
    pub point_formats: Vec<u8>,
    pub signature_algorithms: Vec<u16>,
    pub supported_versions: Vec<u16>,
    /// The first ALPN protocol name, raw.
    pub first_alpn: Option<Vec<u8>>,
}

/// What carried a handshake message: TLS records over TCP, QUIC CRYPTO frames, or
/// DTLS records. JA4's first letter names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    Tcp,
    Quic,
    Dtls,
}

impl Carrier {
    /// JA4's transport letter.
    pub fn ja4_prefix(self) -> char {
        match self {
            Carrier::Tcp => 't',
            Carrier::Quic => 'q',
            Carrier::Dtls => 'd',
        }
    }
}

/// Appends the decimal values of `items`, joined by `-`.
fn push_joined<T: Copy + Into<u32>>(s: &mut String, items: impl Iterator<Item = T>) {
    for (i, v) in items.enumerate() {
        if i > 0 {
            s.push('-');
        }
        // Not `write!`: this runs for every value of every hello.
        s.push_str(itoa::Buffer::new().format(v.into()));
    }
}

/// Lowercase hex MD5 of a string.
pub fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

/// JA3 string of a ClientHello: `version,ciphers,extensions,groups,point_formats`,
/// decimal values joined by `-`, GREASE left out of the first four lists.
pub fn ja3_string(f: &ClientHelloFields) -> String {
    let values = f.ciphers.len() + f.extensions.len() + f.groups.len() + f.point_formats.len();
    let mut s = String::with_capacity(16 + 6 * values);
    s.push_str(itoa::Buffer::new().format(f.version));
    s.push(',');
    push_joined(&mut s, f.ciphers.iter().copied().filter(|&c| !is_grease(c)));
    s.push(',');
    push_joined(
        &mut s,
        f.extensions.iter().copied().filter(|&e| !is_grease(e)),
    );
    s.push(',');
    push_joined(&mut s, f.groups.iter().copied().filter(|&g| !is_grease(g)));
    s.push(',');
    push_joined(&mut s, f.point_formats.iter().copied());
    s
}

/// JA3S string of a ServerHello: `version,cipher,extensions`.
pub fn ja3s_string(version: u16, cipher: u16, extensions: &[u16]) -> String {
    let mut s = String::with_capacity(16 + 6 * extensions.len());
    s.push_str(itoa::Buffer::new().format(version));
    s.push(',');
    s.push_str(itoa::Buffer::new().format(cipher));
    s.push(',');
    push_joined(
        &mut s,
        extensions.iter().copied().filter(|&e| !is_grease(e)),
    );
    s
}

fn ja4_version(f: &ClientHelloFields) -> &'static str {
    let v = f
        .supported_versions
        .iter()
        .copied()
        .filter(|&v| !is_grease(v))
        .max()
        .unwrap_or(f.version);
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// Appends the first and last character of the first ALPN value; the ends of
/// its hex form when either end byte is not alphanumeric.
fn push_ja4_alpn(s: &mut String, first: Option<&[u8]>) {
    let ends = first.and_then(|v| Some((*v.first()?, *v.last()?)));
    let Some((a, z)) = ends else {
        s.push_str("00");
        return;
    };
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        s.push(char::from(a));
        s.push(char::from(z));
        return;
    }
    // The first hex digit of the first byte and the last of the last: the
    // two digits of one byte made of those two nibbles.
    push_hex(s, &[(a & 0xf0) | (z & 0x0f)]);
}

/// Appends a count of at most 99 as two digits.
fn push_count(s: &mut String, n: usize) {
    let n = n.min(99) as u8;
    s.push(char::from(b'0' + n / 10));
    s.push(char::from(b'0' + n % 10));
}

fn hex_list(items: &[u16]) -> String {
    let mut s = String::with_capacity(items.len() * 5);
    for (i, &v) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        push_hex(&mut s, &v.to_be_bytes());
    }
    s
}

/// Appends the first 12 hex digits of the SHA-256 of `text`, or twelve
/// zeros when there was nothing to hash.
fn push_hash12(s: &mut String, text: &str, nothing: bool) {
    if nothing {
        s.push_str("000000000000");
    } else if let Some(head) = Sha256::digest(text.as_bytes()).get(..6) {
        push_hex(s, head);
    }
}

/// JA4 and its raw form JA4_r of a ClientHello.
pub fn ja4(f: &ClientHelloFields, carrier: Carrier) -> (String, String) {
    let mut ciphers: Vec<u16> = f
        .ciphers
        .iter()
        .copied()
        .filter(|&c| !is_grease(c))
        .collect();
    let exts: Vec<u16> = f
        .extensions
        .iter()
        .copied()
        .filter(|&e| !is_grease(e))
        .collect();
    let mut a = String::with_capacity(10);
    a.push(carrier.ja4_prefix());
    a.push_str(ja4_version(f));
    a.push(if exts.contains(&EXT_SNI) { 'd' } else { 'i' });
    push_count(&mut a, ciphers.len());
    push_count(&mut a, exts.len());
    push_ja4_alpn(&mut a, f.first_alpn.as_deref());
    ciphers.sort_unstable();
    let mut sorted_exts: Vec<u16> = exts
        .into_iter()
        .filter(|&e| e != EXT_SNI && e != EXT_ALPN)
        .collect();
    sorted_exts.sort_unstable();
    let sigs: Vec<u16> = f
        .signature_algorithms
        .iter()
        .copied()
        .filter(|&s| !is_grease(s))
        .collect();
    let b_raw = hex_list(&ciphers);
    let mut c_raw = hex_list(&sorted_exts);
    if !sigs.is_empty() {
        c_raw.push('_');
        c_raw.push_str(&hex_list(&sigs));
    }
    let mut hashed = String::with_capacity(a.len() + 26);
    hashed.push_str(&a);
    hashed.push('_');
    push_hash12(&mut hashed, &b_raw, ciphers.is_empty());
    hashed.push('_');
    push_hash12(&mut hashed, &c_raw, sorted_exts.is_empty());
    let mut raw = a;
    raw.reserve(b_raw.len() + c_raw.len() + 2);
    raw.push('_');
    raw.push_str(&b_raw);
    raw.push('_');
    raw.push_str(&c_raw);
    (hashed, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of FoxIO's JA4 specification (technical_details/JA4.md).
    fn spec_example() -> ClientHelloFields {
        ClientHelloFields {
            version: 0x0303,
            ciphers: vec![
                0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
                0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            extensions: vec![
                0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023,
                0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
            ],
            signature_algorithms: vec![
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
            supported_versions: vec![0x0304, 0x0303],
            first_alpn: Some(b"h2".to_vec()),
            ..ClientHelloFields::default()
        }
    }

    #[test]
    fn ja4_matches_the_published_example() {
        let (ja4, raw) = ja4(&spec_example(), Carrier::Tcp);
        assert_eq!(ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert_eq!(
            raw,
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
        );
        let mut no_sigs = spec_example();
        no_sigs.signature_algorithms.clear();
        assert!(ja4_of(&no_sigs).ends_with("_6d807ffa2a79"));
    }

    fn ja4_of(f: &ClientHelloFields) -> String {
        ja4(f, Carrier::Tcp).0
    }

    #[test]
    fn ja4_grease_transport_and_empty_lists() {
        let mut f = spec_example();
        f.ciphers.insert(0, 0x4a4a);
        f.extensions.insert(0, 0x5a5a);
        f.supported_versions.insert(0, 0x7a7a);
        f.signature_algorithms.insert(0, 0x0a0a);
        assert_eq!(ja4_of(&f), "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert!(ja4(&f, Carrier::Quic).0.starts_with("q13d"));
        assert!(ja4(&f, Carrier::Dtls).0.starts_with("d13d"));
        let empty = ClientHelloFields {
            version: 0x0301,
            ..ClientHelloFields::default()
        };
        assert_eq!(ja4_of(&empty), "t10i000000_000000000000_000000000000");
        assert_eq!(ja4(&empty, Carrier::Tcp).1, "t10i000000__");
    }

    fn ja4_alpn(first: Option<&[u8]>) -> String {
        let mut s = String::new();
        push_ja4_alpn(&mut s, first);
        s
    }

    #[test]
    fn ja4_alpn_rules_of_the_spec() {
        assert_eq!(ja4_alpn(None), "00");
        assert_eq!(ja4_alpn(Some(b"")), "00");
        assert_eq!(ja4_alpn(Some(b"h2")), "h2");
        assert_eq!(ja4_alpn(Some(b"http/1.1")), "h1");
        assert_eq!(ja4_alpn(Some(b"h")), "hh");
        assert_eq!(ja4_alpn(Some(&[0xab])), "ab");
        assert_eq!(ja4_alpn(Some(&[0xab, 0xcd])), "ad");
        assert_eq!(ja4_alpn(Some(&[0x30, 0xab])), "3b");
        assert_eq!(ja4_alpn(Some(&[0x30, 0x31, 0xab, 0xcd])), "3d");
        assert_eq!(ja4_alpn(Some(&[0x30, 0xab, 0xcd, 0x31])), "01");
    }

    #[test]
    fn ja3_strings_drop_grease() {
        let f = ClientHelloFields {
            version: 771,
            ciphers: vec![0x2a2a, 0x1301, 0xc02f],
            extensions: vec![0x0a0a, 0, 10, 11],
            groups: vec![0x3a3a, 29, 23],
            point_formats: vec![0],
            ..ClientHelloFields::default()
        };
        assert_eq!(ja3_string(&f), "771,4865-49199,0-10-11,29-23,0");
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(ja3s_string(771, 4865, &[43, 51]), "771,4865,43-51");
        let bare = ClientHelloFields {
            version: 769,
            ciphers: vec![47],
            ..ClientHelloFields::default()
        };
        assert_eq!(ja3_string(&bare), "769,47,,,");
    }
}
