//! Pure parsers of the plaintext handshake messages tlswatch reads: ClientHello,
//! ServerHello, Certificate and ServerKeyExchange. They take one handshake
//! message body (after the 4-byte handshake header, without any record layer),
//! so TLS over TCP, QUIC CRYPTO frames and DTLS all feed the same code.

use super::fingerprint::{self, Carrier, ClientHelloFields};
use crate::analyzer::tls::cipher::{self, KeyExchange, is_grease};
use crate::record::{ClientHelloInfo, ServerHelloInfo};
use crate::version::Version;
use nom::Parser;
use nom::bytes::complete::take;
use nom::multi::length_data;
use nom::number::complete::{be_u8, be_u16, be_u24};

type E<'a> = nom::error::Error<&'a [u8]>;

/// Certificates kept from one Certificate message; a longer chain is cut with a note.
pub const MAX_CHAIN: usize = 16;

/// The ServerHello random that marks a HelloRetryRequest (RFC 8446 §4.1.3).
pub const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Last 8 bytes of a ServerHello random from a TLS 1.3 server that negotiated
/// TLS 1.2 (`...01`) or TLS 1.1 and below (`...00`) (RFC 8446 §4.1.3).
const DOWNGRADE_PREFIX: &[u8; 7] = b"DOWNGRD";

pub const EXT_SERVER_NAME: u16 = 0;
pub const EXT_SUPPORTED_GROUPS: u16 = 10;
pub const EXT_EC_POINT_FORMATS: u16 = 11;
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
pub const EXT_ALPN: u16 = 16;
pub const EXT_SIGNED_CERTIFICATE_TIMESTAMP: u16 = 18;
pub const EXT_SESSION_TICKET: u16 = 35;
pub const EXT_PRE_SHARED_KEY: u16 = 41;
pub const EXT_EARLY_DATA: u16 = 42;
pub const EXT_SUPPORTED_VERSIONS: u16 = 43;
pub const EXT_KEY_SHARE: u16 = 51;
pub const EXT_ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
pub const EXT_RENEGOTIATION_INFO: u16 = 0xff01;

/// Iterates `(type, data)` over a raw extensions block; stops at the first malformed entry.
pub fn extensions(mut i: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let (rest, (t, d)) = (be_u16::<&[u8], E<'_>>, length_data(be_u16))
            .parse(i)
            .ok()?;
        i = rest;
        Some((t, d))
    })
}

fn printable(b: &[u8]) -> String {
    crate::record::escape_wire(b, 255)
}

fn u16_list(i: &[u8]) -> Vec<u16> {
    // Sized once: a filtering iterator gives no length, and the vector would grow by doubling.
    let mut list = Vec::with_capacity(i.len() / 2);
    list.extend(
        i.chunks_exact(2)
            .filter_map(|v| Some(u16::from_be_bytes(v.try_into().ok()?))),
    );
    list
}

/// A list of u16 values behind a 2-byte (or, `short`, 1-byte) length.
fn prefixed_u16_list(data: &[u8], short: bool) -> Vec<u16> {
    let list = if short {
        length_data::<&[u8], E<'_>, _>(be_u8).parse(data)
    } else {
        length_data::<&[u8], E<'_>, _>(be_u16).parse(data)
    };
    list.map(|(_, l)| u16_list(l)).unwrap_or_default()
}

/// The ALPN protocol names of an ALPN extension body, raw.
fn alpn_names(data: &[u8]) -> Vec<&[u8]> {
    let Ok((_, mut list)) = length_data::<&[u8], E<'_>, _>(be_u16).parse(data) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Ok((rest, name)) = length_data::<&[u8], E<'_>, _>(be_u8).parse(list) {
        out.push(name);
        list = rest;
    }
    out
}

/// Name of a compression method (RFC 3749, RFC 3943).
pub fn compression_name(m: u8) -> cipher::Name {
    match m {
        0 => "null".into(),
        1 => "deflate".into(),
        64 => "lzs".into(),
        n => n.to_string().into(),
    }
}

/// A parsed ClientHello: the record fields plus what the state machine needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedClientHello {
    pub info: ClientHelloInfo,
    /// A non-empty session ticket was presented (RFC 5077).
    pub ticket_offered: bool,
    /// A TLS 1.3 pre_shared_key was offered.
    pub psk_offered: bool,
    /// The highest version offered (supported_versions, else the legacy version).
    pub max_version: Version,
    /// The group of the first non-GREASE entry of the `key_share` extension.
    pub key_share_group: Option<u16>,
}

/// Parses a ClientHello body of TLS over TCP.
pub fn client_hello(body: &[u8]) -> Option<ClientHelloInfo> {
    client_hello_over(body, Carrier::Tcp).map(|c| c.info)
}

/// Parses a ClientHello body carried by `carrier` (JA4 names it). The body has
/// TLS's layout: a DTLS ClientHello comes with its cookie field taken out.
pub fn client_hello_over(body: &[u8], carrier: Carrier) -> Option<ParsedClientHello> {
    let raw = client_hello_layout(body)?;
    let mut f = ClientHelloFields {
        version: raw.version,
        ciphers: u16_list(raw.ciphers),
        ..ClientHelloFields::default()
    };
    let mut parsed = ParsedClientHello {
        info: client_hello_info(&f, raw.compression, raw.session_id),
        ..ParsedClientHello::default()
    };
    for (t, data) in extensions(raw.extensions) {
        f.extensions.push(t);
        client_extension(t, data, &mut f, &mut parsed);
    }
    let info = &mut parsed.info;
    let ja3 = fingerprint::ja3_string(&f);
    info.ja3 = Some(fingerprint::md5_hex(&ja3));
    info.ja3_full = Some(ja3);
    let (ja4, ja4_r) = fingerprint::ja4(&f, carrier);
    info.ja4 = Some(ja4);
    info.ja4_r = Some(ja4_r);
    parsed.max_version = info
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !v.is_grease())
        .max_by_key(|v| version_rank(*v))
        .unwrap_or(info.version);
    Some(parsed)
}

/// The fields of a ClientHello body, unparsed.
struct ClientHelloLayout<'a> {
    version: u16,
    session_id: &'a [u8],
    ciphers: &'a [u8],
    compression: &'a [u8],
    /// The extensions block (empty when the hello has none).
    extensions: &'a [u8],
}

/// Splits a ClientHello body into its fields; `None` when it is malformed.
#[inline]
fn client_hello_layout(body: &[u8]) -> Option<ClientHelloLayout<'_>> {
    let (i, (version, _random, session_id)) =
        (be_u16::<&[u8], E<'_>>, take(32usize), length_data(be_u8))
            .parse(body)
            .ok()?;
    if session_id.len() > 32 {
        return None;
    }
    let (i, (ciphers, compression)) = (length_data::<&[u8], E<'_>, _>(be_u16), length_data(be_u8))
        .parse(i)
        .ok()?;
    let extensions = if i.is_empty() {
        &[][..]
    } else {
        length_data::<&[u8], E<'_>, _>(be_u16).parse(i).ok()?.1
    };
    Some(ClientHelloLayout {
        version,
        session_id,
        ciphers,
        compression,
        extensions,
    })
}

/// The record's fields of a ClientHello that come before its extensions.
#[inline]
fn client_hello_info(
    f: &ClientHelloFields,
    compression: &[u8],
    session_id: &[u8],
) -> ClientHelloInfo {
    ClientHelloInfo {
        version: Version(f.version),
        cipher_suites: f
            .ciphers
            .iter()
            .filter(|&&c| !is_grease(c))
            .map(|&c| cipher::name(c))
            .collect(),
        compression_methods: compression.iter().map(|&m| compression_name(m)).collect(),
        fallback_scsv: f.ciphers.contains(&cipher::FALLBACK_SCSV),
        renegotiation_info: f.ciphers.contains(&cipher::EMPTY_RENEGOTIATION_INFO_SCSV),
        session_id: session_id.to_vec(),
        ..ClientHelloInfo::default()
    }
}

/// Reads one ClientHello extension into the fingerprint fields and the record.
#[inline]
fn client_extension(
    t: u16,
    data: &[u8],
    f: &mut ClientHelloFields,
    parsed: &mut ParsedClientHello,
) {
    let info = &mut parsed.info;
    match t {
        EXT_SERVER_NAME => {
            if let Ok((_, tls_parser::TlsExtension::SNI(names))) =
                tls_parser::parse_tls_extension_sni_content(data)
            {
                info.sni = names
                    .iter()
                    .find(|(t, _)| t.0 == 0)
                    .map(|(_, name)| printable(name));
            }
        }
        EXT_SUPPORTED_GROUPS => f.groups = prefixed_u16_list(data, false),
        EXT_EC_POINT_FORMATS => {
            if let Ok((_, l)) = length_data::<&[u8], E<'_>, _>(be_u8).parse(data) {
                f.point_formats = l.to_vec();
            }
        }
        EXT_SIGNATURE_ALGORITHMS => f.signature_algorithms = prefixed_u16_list(data, false),
        EXT_ALPN => {
            let names = alpn_names(data);
            f.first_alpn = names.first().map(|n| n.to_vec());
            info.alpn = names.iter().map(|p| printable(p)).collect();
        }
        EXT_SUPPORTED_VERSIONS => {
            f.supported_versions = prefixed_u16_list(data, true);
            info.supported_versions = f
                .supported_versions
                .iter()
                .filter(|&&v| !is_grease(v))
                .map(|&v| Version(v))
                .collect();
        }
        EXT_SESSION_TICKET => parsed.ticket_offered = !data.is_empty(),
        EXT_PRE_SHARED_KEY => parsed.psk_offered = true,
        EXT_KEY_SHARE => parsed.key_share_group = first_key_share_group(data),
        EXT_EARLY_DATA => info.early_data = true,
        EXT_ENCRYPTED_CLIENT_HELLO => info.ech = true,
        EXT_RENEGOTIATION_INFO => info.renegotiation_info = true,
        _ => {}
    }
}

/// The group of the first non-GREASE `KeyShareEntry` of a ClientHello's
/// `key_share` extension (RFC 8446 §4.2.8).
fn first_key_share_group(data: &[u8]) -> Option<u16> {
    let (_, mut shares) = length_data::<&[u8], E<'_>, _>(be_u16).parse(data).ok()?;
    while let Ok((rest, (group, _key))) =
        (be_u16::<&[u8], E<'_>>, length_data(be_u16)).parse(shares)
    {
        if !is_grease(group) {
            return Some(group);
        }
        shares = rest;
    }
    None
}

/// Orders versions by age, TLS 1.3 drafts just below TLS 1.3.
pub fn version_rank(v: Version) -> u32 {
    match v {
        Version::SSLV2 => 1,
        v if v.tls13_draft().is_some() => 0x0003_0380,
        v if v.0 <= 0x0304 => u32::from(v.0) << 8,
        _ => 0,
    }
}

type Fields<'a> = (u16, &'a [u8], &'a [u8], u16, u8, Option<&'a [u8]>);

fn server_hello_fields(body: &[u8], draft_format: bool) -> Option<Fields<'_>> {
    let (i, (version, random)) = (be_u16::<&[u8], E<'_>>, take(32usize)).parse(body).ok()?;
    let early_draft = draft_format || (0x7f00..0x7f16).contains(&version);
    let (i, session_id, cipher, compression) = if early_draft {
        let (i, cipher) = be_u16::<&[u8], E<'_>>(i).ok()?;
        (i, &[][..], cipher, 0)
    } else {
        let (i, (session_id, cipher, compression)) =
            (length_data(be_u8), be_u16::<&[u8], E<'_>>, be_u8)
                .parse(i)
                .ok()?;
        if session_id.len() > 32 {
            return None;
        }
        (i, session_id, cipher, compression)
    };
    let ext = match i.len() {
        0 => None,
        _ => {
            let (rest, e) = length_data::<&[u8], E<'_>, _>(be_u16).parse(i).ok()?;
            if !rest.is_empty() {
                return None;
            }
            Some(e)
        }
    };
    Some((version, random, session_id, cipher, compression, ext))
}

/// A parsed ServerHello.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedServerHello {
    pub info: ServerHelloInfo,
    /// The random marks a HelloRetryRequest.
    pub hrr: bool,
    pub session_id: Vec<u8>,
    /// TLS 1.3: the server accepted a pre-shared key.
    pub psk_accepted: bool,
    /// TLS 1.3: the key_share group (the requested one in a HelloRetryRequest).
    pub key_share_group: Option<u16>,
    /// The random carries the RFC 8446 downgrade sentinel: the server supports
    /// at least this version.
    pub downgrade_sentinel: Option<Version>,
}

/// Parses a ServerHello body, for every version including TLS 1.3 drafts before
/// draft 22 (no session id or compression).
pub fn server_hello(body: &[u8]) -> Option<ParsedServerHello> {
    let (version, random, session_id, cipher, compression, ext) =
        match server_hello_fields(body, false) {
            Some(f) => f,
            // Early TLS 1.3 drafts (some with version 0x0304) have no session id or compression.
            None => server_hello_fields(body, true)?,
        };
    let mut info = ServerHelloInfo {
        version: Version(version),
        cipher_suite: Some(cipher::name(cipher)),
        cipher_id: Some(cipher),
        compression_method: Some(compression_name(compression)),
        ..ServerHelloInfo::default()
    };
    let mut parsed = ParsedServerHello {
        hrr: random == HRR_RANDOM,
        session_id: session_id.to_vec(),
        downgrade_sentinel: match random.get(24..) {
            Some([a, b, c, d, e, f, g, last])
                if [*a, *b, *c, *d, *e, *f, *g] == *DOWNGRADE_PREFIX =>
            {
                match last {
                    1 => Some(Version::TLS13),
                    0 => Some(Version::TLS12),
                    _ => None,
                }
            }
            _ => None,
        },
        ..ParsedServerHello::default()
    };
    let mut types = Vec::new();
    for (t, data) in extensions(ext.unwrap_or_default()) {
        types.push(t);
        match t {
            EXT_SUPPORTED_VERSIONS => {
                if let [a, b] = data {
                    info.selected_version = Some(Version(u16::from_be_bytes([*a, *b])));
                }
            }
            EXT_ALPN => info.alpn = alpn_names(data).first().map(|p| printable(p)),
            EXT_KEY_SHARE => {
                if let [a, b, ..] = data {
                    parsed.key_share_group = Some(u16::from_be_bytes([*a, *b]));
                }
            }
            EXT_PRE_SHARED_KEY => parsed.psk_accepted = true,
            EXT_RENEGOTIATION_INFO => info.renegotiation_info = true,
            EXT_SIGNED_CERTIFICATE_TIMESTAMP => info.sct_extension = !data.is_empty(),
            _ => {}
        }
    }
    let ja3s = fingerprint::ja3s_string(version, cipher, &types);
    info.ja3s = Some(fingerprint::md5_hex(&ja3s));
    info.ja3s_full = Some(ja3s);
    parsed.info = info;
    Some(parsed)
}

/// The DER certificates of a TLS 1.0–1.2 Certificate message body, leaf first,
/// at most [`MAX_CHAIN`]; the flag says the list was cut or malformed.
pub fn certificate_list(body: &[u8]) -> (Vec<&[u8]>, bool) {
    let Ok((_, mut list)) = length_data::<&[u8], E<'_>, _>(be_u24).parse(body) else {
        return (Vec::new(), true);
    };
    let mut out = Vec::new();
    while !list.is_empty() {
        match length_data::<&[u8], E<'_>, _>(be_u24).parse(list) {
            Ok((rest, der)) if out.len() < MAX_CHAIN => {
                out.push(der);
                list = rest;
            }
            _ => return (out, true),
        }
    }
    (out, false)
}

/// Key-exchange parameters a ServerKeyExchange reveals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyExchangeParams {
    /// Named group of an ECDHE exchange.
    pub group: Option<u16>,
    /// Size in bits of the DH prime of a finite-field exchange.
    pub dh_bits: Option<u32>,
}

/// Bits of a big-endian unsigned integer, leading zero bits not counted.
pub fn bit_len(n: &[u8]) -> u32 {
    let mut it = n.iter().skip_while(|&&b| b == 0);
    match it.next() {
        None => 0,
        Some(&top) => (8 - top.leading_zeros()) + 8 * it.count() as u32,
    }
}

/// Parses the parameters at the start of a ServerKeyExchange body for the
/// selected key exchange (RFC 5246 §7.4.3, RFC 8422 §5.4, RFC 4279 §3).
pub fn server_key_exchange(body: &[u8], kx: KeyExchange) -> Option<KeyExchangeParams> {
    let i = match kx {
        // PSK suites start with the identity hint.
        KeyExchange::DhePsk | KeyExchange::EcdhePsk => {
            length_data::<&[u8], E<'_>, _>(be_u16).parse(body).ok()?.0
        }
        _ => body,
    };
    if kx.finite_field_dh() {
        let (_, p) = length_data::<&[u8], E<'_>, _>(be_u16).parse(i).ok()?;
        return Some(KeyExchangeParams {
            group: None,
            dh_bits: Some(bit_len(p)),
        });
    }
    if kx.elliptic_dh() {
        let (i, curve_type) = be_u8::<&[u8], E<'_>>(i).ok()?;
        // 3 = named_curve; explicit curves (1, 2) are deprecated and not named.
        return match curve_type {
            3 => {
                let (_, group) = be_u16::<&[u8], E<'_>>(i).ok()?;
                Some(KeyExchangeParams {
                    group: Some(group),
                    dh_bits: None,
                })
            }
            _ => Some(KeyExchangeParams::default()),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[0, 0]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0, 0x80, 0]), 16);
        assert_eq!(bit_len(&[0xff; 128]), 1024);
    }

    #[test]
    fn certificate_list_done_cut_and_invalid() {
        let mut body = vec![0, 0, 10, 0, 0, 2, 0xaa, 0xbb, 0, 0, 2, 0xcc, 0xdd];
        assert_eq!(
            certificate_list(&body),
            (vec![&[0xaa, 0xbb][..], &[0xcc, 0xdd][..]], false)
        );
        body[2] = 11;
        assert!(certificate_list(&body).1);
        assert_eq!(certificate_list(&[0, 0]), (Vec::new(), true));
        let mut many = Vec::new();
        for _ in 0..100 {
            many.extend([0, 0, 1, 7]);
        }
        let mut long = (many.len() as u32).to_be_bytes()[1..].to_vec();
        long.extend(many);
        let (list, cut) = certificate_list(&long);
        assert_eq!((list.len(), cut), (MAX_CHAIN, true));
    }

    #[test]
    fn server_key_exchange_dhe_and_ecdhe() {
        let mut dhe = vec![0x00, 0x80];
        dhe.extend([0xff; 128]);
        dhe.extend([0x00, 0x01, 0x02]);
        assert_eq!(
            server_key_exchange(&dhe, KeyExchange::Dhe).and_then(|p| p.dh_bits),
            Some(1024)
        );
        let ecdhe = [0x03, 0x00, 0x1d, 0x20, 1, 2, 3];
        assert_eq!(
            server_key_exchange(&ecdhe, KeyExchange::Ecdhe).and_then(|p| p.group),
            Some(29)
        );
        assert_eq!(server_key_exchange(&[0x03], KeyExchange::Ecdhe), None);
        assert_eq!(server_key_exchange(&ecdhe, KeyExchange::Rsa), None);
    }
}
