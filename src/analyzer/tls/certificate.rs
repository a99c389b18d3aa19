//! X.509 certificates from Certificate messages: parsed with x509-parser into the
//! record's `Certificate`, once per distinct DER (a bounded cache keyed by the
//! SHA-256 of the DER, since real traffic repeats the same few chains).

use super::hello::bit_len;
use crate::record::{Certificate, FlowRecord, Note, PublicKey, hex};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::sync::Arc;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};
use x509_parser::public_key::PublicKey as X509Key;

/// Distinct certificates kept parsed (per thread).
pub const MAX_CACHED_CERTIFICATES: usize = 1024;
/// Approximate bytes of parsed certificates kept in the cache (per thread).
pub const MAX_CACHE_BYTES: usize = 4 * 1024 * 1024;
/// SAN entries kept per certificate; the rest are counted as truncated.
pub const MAX_SAN: usize = 100;
/// Bytes of one name value (attribute or SAN entry) kept before `...`.
pub const MAX_NAME_VALUE: usize = 256;
/// Characters of a whole subject or issuer string kept.
pub const MAX_DN_LEN: usize = 1024;

#[derive(Default)]
struct Cache {
    map: HashMap<[u8; 32], Arc<Certificate>>,
    order: VecDeque<[u8; 32]>,
    bytes: usize,
}

impl Cache {
    fn insert(&mut self, key: [u8; 32], cert: Arc<Certificate>) {
        let size = approx_size(&cert);
        while !self.order.is_empty()
            && (self.map.len() >= MAX_CACHED_CERTIFICATES || self.bytes + size > MAX_CACHE_BYTES)
        {
            if let Some(old) = self.order.pop_front()
                && let Some(c) = self.map.remove(&old)
            {
                self.bytes = self.bytes.saturating_sub(approx_size(&c));
            }
        }
        self.bytes += size;
        self.order.push_back(key);
        self.map.insert(key, cert);
    }
}

thread_local! {
    // One cache per analysis thread: no locking on the packet path.
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

fn approx_size(c: &Certificate) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    256 + c.der.len()
        + opt(&c.subject)
        + opt(&c.issuer)
        + opt(&c.subject_cn)
        + opt(&c.serial)
        + c.san.iter().map(|s| s.len() + 24).sum::<usize>()
}

/// Parses a chain as sent (leaf first), through the cache; a certificate that
/// does not parse keeps its hash and an error, and notes the flow.
pub fn chain(ders: &[&[u8]], rec: &mut FlowRecord) -> Vec<Arc<Certificate>> {
    let out: Vec<Arc<Certificate>> = ders.iter().map(|der| cached(der)).collect();
    if out.iter().any(|c| c.error.is_some()) {
        rec.note(Note::CertificateUnparsed);
    }
    out
}

/// The parsed certificate for one DER, from the cache when it was seen before.
pub fn cached(der: &[u8]) -> Arc<Certificate> {
    let key: [u8; 32] = Sha256::digest(der).into();
    if let Some(hit) = CACHE.with(|c| c.borrow().map.get(&key).cloned()) {
        return hit;
    }
    let cert = Arc::new(parse(der, &key));
    CACHE.with(|c| c.borrow_mut().insert(key, Arc::clone(&cert)));
    cert
}

/// Parses one DER certificate (uncached).
pub fn parse(der: &[u8], sha256: &[u8; 32]) -> Certificate {
    let mut out = Certificate {
        sha256: hex(sha256),
        der: Arc::from(der),
        ..Certificate::default()
    };
    let cert = match X509Certificate::from_der(der) {
        Ok((_, c)) => c,
        Err(e) => {
            out.error = Some(crate::record::escape_wire(e.to_string().as_bytes(), 120));
            return out;
        }
    };
    out.subject = Some(rfc4514(cert.subject()));
    out.issuer = Some(rfc4514(cert.issuer()));
    out.subject_cn = cert
        .subject()
        .iter_common_name()
        .last()
        .map(|cn| attr_text(cn.as_slice(), cn.attr_value().tag()));
    out.serial = Some(serial_hex(cert.raw_serial()));
    let (nb, na) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    out.validity = Some((nb, na));
    out.not_before = Some(rfc3339(nb));
    out.not_after = Some(rfc3339(na));
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            let s = match name {
                GeneralName::DNSName(d) => crate::record::escape_wire(d.as_bytes(), MAX_NAME_VALUE),
                GeneralName::IPAddress(ip) => ip_text(ip),
                _ => continue,
            };
            if out.san.len() < MAX_SAN {
                out.san.push(s);
            } else {
                out.san_truncated = true;
            }
        }
    }
    out.key = Some(public_key(&cert));
    let sig_oid = cert.signature_algorithm.algorithm.to_id_string();
    out.signature_algorithm = Some(signature_name(&sig_oid));
    out.ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    out.self_signed = self_signed(&cert);
    out.sct = cert
        .extensions()
        .iter()
        .any(|e| e.oid.to_id_string() == SCT_OID);
    out
}

/// The X.509 extension of embedded signed certificate timestamps (RFC 6962 §3.3).
const SCT_OID: &str = "1.3.6.1.4.1.11129.2.4.2";

fn self_signed(cert: &X509Certificate<'_>) -> bool {
    if cert.subject().as_raw() != cert.issuer().as_raw() {
        return false;
    }
    let mut ski = None;
    let mut aki = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0),
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0);
            }
            _ => {}
        }
    }
    match (ski, aki) {
        (Some(s), Some(a)) => s == a,
        _ => true,
    }
}

fn rfc3339(secs: i64) -> String {
    let s = crate::time::rfc3339(crate::time::Timestamp { secs, nanos: 0 });
    s.replace(".000000Z", "Z")
}

/// Serial number in lowercase hex, without the sign byte DER may add.
fn serial_hex(raw: &[u8]) -> String {
    let trimmed: &[u8] = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => raw,
    };
    hex(trimmed)
}

fn ip_text(b: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        return std::net::Ipv4Addr::from(v4).to_string();
    }
    if let Ok(v6) = <[u8; 16]>::try_from(b) {
        return std::net::Ipv6Addr::from(v6).to_string();
    }
    format!("ip:{}", hex(b))
}

/// A BMPString (UTF-16, big-endian) as text; an odd last byte is dropped.
fn bmp_text(raw: &[u8]) -> String {
    let units: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| {
            u16::from_be_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .collect();
    String::from_utf16_lossy(&units)
}

/// Text of a name attribute: string types decoded (BMPString as UTF-16), wire
/// bytes outside printable ASCII escaped.
fn attr_text(raw: &[u8], tag: x509_parser::der_parser::asn1_rs::Tag) -> String {
    use x509_parser::der_parser::asn1_rs::Tag;
    if tag == Tag::BmpString {
        return crate::record::escape_wire(bmp_text(raw).as_bytes(), MAX_NAME_VALUE);
    }
    crate::record::escape_wire(raw, MAX_NAME_VALUE)
}

/// Short name of a name attribute type (RFC 4514 §3 plus the ones OpenSSL prints).
fn attr_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        _ => return None,
    })
}

/// RFC 4514 string of a distinguished name: most specific RDN first, `,`
/// between RDNs, `+` inside one, special characters backslash-escaped, bytes
/// outside printable ASCII as `\XX` (as `openssl -nameopt RFC2253` prints them).
pub fn rfc4514(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    let rdns: Vec<_> = name.iter_rdn().collect();
    for (i, rdn) in rdns.iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, atv) in rdn.iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            let oid = atv.attr_type().to_id_string();
            match attr_name(&oid) {
                Some(n) => out.push_str(n),
                None => out.push_str(&oid),
            }
            out.push('=');
            let value = atv.as_slice();
            if atv.attr_value().tag() == x509_parser::der_parser::asn1_rs::Tag::BmpString {
                escape_dn_value(bmp_text(value).as_bytes(), &mut out);
            } else {
                escape_dn_value(value, &mut out);
            }
            if out.len() > MAX_DN_LEN {
                out.truncate(MAX_DN_LEN);
                out.push_str("...");
                return out;
            }
        }
    }
    out
}

fn escape_dn_value(v: &[u8], out: &mut String) {
    let v = v.get(..MAX_NAME_VALUE).unwrap_or(v);
    let last = v.len().saturating_sub(1);
    for (i, &b) in v.iter().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0x21..=0x7e | b' ' => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:02X}");
            }
        }
    }
}

fn curve(oid: &str) -> Option<(&'static str, u32)> {
    Some(match oid {
        "1.2.840.10045.3.1.7" => ("secp256r1", 256),
        "1.3.132.0.34" => ("secp384r1", 384),
        "1.3.132.0.35" => ("secp521r1", 521),
        "1.3.132.0.10" => ("secp256k1", 256),
        "1.3.132.0.33" => ("secp224r1", 224),
        "1.2.840.10045.3.1.1" => ("secp192r1", 192),
        "1.3.36.3.3.2.8.1.1.7" => ("brainpoolP256r1", 256),
        "1.3.36.3.3.2.8.1.1.11" => ("brainpoolP384r1", 384),
        "1.3.36.3.3.2.8.1.1.13" => ("brainpoolP512r1", 512),
        "1.2.156.10197.1.301" => ("SM2", 256),
        _ => return None,
    })
}

/// The first INTEGER of a DER SEQUENCE body (DSA parameters: p).
fn first_integer_bits(seq_body: &[u8]) -> Option<u32> {
    let (&tag, rest) = seq_body.split_first()?;
    if tag != 0x02 {
        return None;
    }
    let (&len0, rest) = rest.split_first()?;
    let (len, rest) = if len0 < 0x80 {
        (usize::from(len0), rest)
    } else {
        let n = usize::from(len0 & 0x7f);
        let bytes = rest.get(..n)?;
        (
            bytes.iter().fold(0usize, |a, &b| {
                a.saturating_mul(256).saturating_add(usize::from(b))
            }),
            rest.get(n..)?,
        )
    };
    Some(bit_len(rest.get(..len)?))
}

fn public_key(cert: &X509Certificate<'_>) -> PublicKey {
    let spki = cert.public_key();
    let alg = spki.algorithm.algorithm.to_id_string();
    let key = |kind: &str, bits: Option<u32>, curve: Option<&str>| PublicKey {
        kind: kind.into(),
        bits,
        curve: curve.map(String::from),
    };
    match alg.as_str() {
        "1.3.101.112" => return key("ed25519", Some(256), None),
        "1.3.101.113" => return key("ed448", Some(456), None),
        _ => {}
    }
    match spki.parsed() {
        Ok(X509Key::RSA(rsa)) => key("rsa", Some(bit_len(rsa.modulus)), None),
        Ok(X509Key::EC(point)) => {
            let named = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .and_then(|oid| curve(&oid.to_id_string()));
            match named {
                Some((name, bits)) => key("ec", Some(bits), Some(name)),
                None => key("ec", Some(point.key_size() as u32), None),
            }
        }
        Ok(X509Key::DSA(y)) => {
            let bits = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| first_integer_bits(p.data))
                .unwrap_or_else(|| bit_len(y));
            key("dsa", Some(bits), None)
        }
        _ => key("other", None, None),
    }
}

/// Signature algorithm as OpenSSL names it; unknown ones as the dotted OID.
fn signature_name(oid: &str) -> String {
    let s = match oid {
        "1.2.840.113549.1.1.2" => "md2WithRSAEncryption",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.3.14.3.2.29" => "sha1WithRSA",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption",
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.10040.4.3" => "dsaWithSHA1",
        "2.16.840.1.101.3.4.3.1" => "dsa_with_SHA224",
        "2.16.840.1.101.3.4.3.2" => "dsa_with_SHA256",
        "1.3.101.112" => "ED25519",
        "1.3.101.113" => "ED448",
        "1.2.156.10197.1.501" => "SM2-with-SM3",
        other => return other.to_string(),
    };
    s.to_string()
}

/// The signature uses MD2, MD5 or SHA-1.
pub fn weak_signature(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("md2") || n.starts_with("md5") || n.contains("sha1") || n == "dsawithsha1"
}

/// Does `pattern` (a SAN dNSName or CN) match the host name `host`? Case-insensitive,
/// a trailing dot ignored; a wildcard only as the whole left-most label, matching
/// exactly one label, and not directly above a top-level domain (RFC 6125 §6.4.3).
pub fn name_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if p.is_empty() || h.is_empty() {
        return false;
    }
    match p.strip_prefix("*.") {
        Some(base) => {
            if base.contains('*') || !base.contains('.') {
                return false;
            }
            match h.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == base,
                None => false,
            }
        }
        None => p == h,
    }
}

/// Does the leaf certificate cover `host` (SAN DNS names and IPs, else the CN)?
pub fn covers(cert: &Certificate, host: &str) -> bool {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return cert
            .san
            .iter()
            .any(|s| s.parse::<std::net::IpAddr>() == Ok(ip));
    }
    let dns: Vec<&String> = cert
        .san
        .iter()
        .filter(|s| s.parse::<std::net::IpAddr>().is_err())
        .collect();
    if dns.is_empty() {
        return cert
            .subject_cn
            .as_deref()
            .is_some_and(|cn| name_matches(cn, host));
    }
    dns.iter().any(|p| name_matches(p, host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_rfc_6125() {
        assert!(name_matches("www.example.com", "WWW.Example.com."));
        assert!(name_matches("*.example.com", "www.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.com", "example.com"));
        assert!(!name_matches("w*.example.com", "www.example.com"));
        assert!(!name_matches("*.*.example.com", "a.b.example.com"));
        assert!(!name_matches("", "example.com"));
    }

    #[test]
    fn covers_prefers_san_over_cn() {
        let c = Certificate {
            subject_cn: Some("cn.example".into()),
            san: vec!["www.example.com".into(), "192.0.2.1".into()],
            ..Certificate::default()
        };
        assert!(covers(&c, "www.example.com"));
        assert!(covers(&c, "192.0.2.1"));
        assert!(!covers(&c, "cn.example"));
        let cn_only = Certificate {
            subject_cn: Some("*.example.org".into()),
            ..Certificate::default()
        };
        assert!(covers(&cn_only, "mail.example.org"));
    }

    #[test]
    fn malformed_der_keeps_its_hash() {
        let c = parse(b"\x30\x03\x02\x01", &[7; 32]);
        assert_eq!(c.sha256, "07".repeat(32));
        assert!(c.error.is_some());
        assert!(c.subject.is_none());
    }

    #[test]
    fn dn_values_are_escaped() {
        let mut s = String::new();
        escape_dn_value(b" a,b+c\x1b[31m\xc3\xa9 ", &mut s);
        assert_eq!(s, "\\ a\\,b\\+c\\1B[31m\\C3\\A9\\ ");
        assert_eq!(serial_hex(&[0, 0x80, 1]), "8001");
        assert_eq!(serial_hex(&[0]), "00");
        assert!(weak_signature("sha1WithRSAEncryption"));
        assert!(weak_signature("ecdsa-with-SHA1"));
        assert!(!weak_signature("sha256WithRSAEncryption"));
        assert_eq!(first_integer_bits(&[0x02, 0x02, 0x00, 0x80]), Some(8));
    }
}
