//! The encrypted messages of a TLS 1.3 handshake (RFC 8446 §4.3–§4.4), read once
//! decrypted: EncryptedExtensions, Certificate, CompressedCertificate (RFC 8879),
//! CertificateRequest, CertificateVerify and Finished. Shared by TLS over TCP and
//! QUIC's Handshake packet space; everything learned goes into the flow record
//! as the same fields a TLS 1.2 handshake fills.

use super::cipher::Name;
use super::hello::{EXT_ALPN, EXT_SIGNATURE_ALGORITHMS, extensions};
use crate::record::{CertificateRequest, Dir, EncryptedHandshake, FlowRecord, Note};
use std::io::Read;

pub const HS_END_OF_EARLY_DATA: u8 = 5;
pub const HS_ENCRYPTED_EXTENSIONS: u8 = 8;
pub const HS_CERTIFICATE: u8 = 11;
pub const HS_CERTIFICATE_REQUEST: u8 = 13;
pub const HS_CERTIFICATE_VERIFY: u8 = 15;
pub const HS_FINISHED: u8 = 20;
pub const HS_COMPRESSED_CERTIFICATE: u8 = 25;

/// Largest EncryptedExtensions or CertificateRequest collected.
pub const MAX_EXTENSIONS_LEN: usize = 16 * 1024;
/// Largest CertificateVerify or Finished collected.
pub const MAX_SMALL_LEN: usize = 2048;
/// Extensions of EncryptedExtensions listed at most.
pub const MAX_LISTED_EXTENSIONS: usize = 32;
/// Signature schemes of a CertificateRequest listed at most.
pub const MAX_LISTED_SCHEMES: usize = 64;
/// The certificates of one Certificate message at most (as TLS 1.2).
const MAX_CHAIN: usize = 16;

/// How many bytes of an encrypted handshake message of this type are collected;
/// `None` for types only counted.
pub fn collect_cap(msg_type: u8, certificate_cap: usize) -> Option<usize> {
    match msg_type {
        HS_ENCRYPTED_EXTENSIONS | HS_CERTIFICATE_REQUEST => Some(MAX_EXTENSIONS_LEN),
        HS_CERTIFICATE | HS_COMPRESSED_CERTIFICATE => Some(certificate_cap),
        HS_CERTIFICATE_VERIFY | HS_FINISHED => Some(MAX_SMALL_LEN),
        _ => None,
    }
}

/// Name of a TLS SignatureScheme (IANA registry); unknown ones as hex.
pub fn signature_scheme_name(s: u16) -> Name {
    let n = match s {
        0x0201 => "rsa_pkcs1_sha1",
        0x0202 => "dsa_sha1",
        0x0203 => "ecdsa_sha1",
        0x0301 => "rsa_sha224",
        0x0302 => "dsa_sha224",
        0x0303 => "ecdsa_sha224",
        0x0402 => "dsa_sha256",
        0x0401 => "rsa_pkcs1_sha256",
        0x0403 => "ecdsa_secp256r1_sha256",
        0x0501 => "rsa_pkcs1_sha384",
        0x0503 => "ecdsa_secp384r1_sha384",
        0x0601 => "rsa_pkcs1_sha512",
        0x0603 => "ecdsa_secp521r1_sha512",
        0x0804 => "rsa_pss_rsae_sha256",
        0x0805 => "rsa_pss_rsae_sha384",
        0x0806 => "rsa_pss_rsae_sha512",
        0x0807 => "ed25519",
        0x0808 => "ed448",
        0x0809 => "rsa_pss_pss_sha256",
        0x080a => "rsa_pss_pss_sha384",
        0x080b => "rsa_pss_pss_sha512",
        0x081a => "ecdsa_brainpoolP256r1tls13_sha256",
        0x081b => "ecdsa_brainpoolP384r1tls13_sha384",
        0x081c => "ecdsa_brainpoolP512r1tls13_sha512",
        0x0904 => "mldsa44",
        0x0905 => "mldsa65",
        0x0906 => "mldsa87",
        _ => return format!("0x{s:04x}").into(),
    };
    n.into()
}

/// Name of an extension as EncryptedExtensions may carry it; unknown ones as numbers.
pub fn extension_name(t: u16) -> Name {
    let n = match t {
        0 => "server_name",
        1 => "max_fragment_length",
        10 => "supported_groups",
        14 => "use_srtp",
        15 => "heartbeat",
        16 => "application_layer_protocol_negotiation",
        19 => "client_certificate_type",
        20 => "server_certificate_type",
        28 => "record_size_limit",
        42 => "early_data",
        57 => "quic_transport_parameters",
        0x4469 => "application_settings_old",
        0x44cd => "application_settings",
        0xfe0d => "encrypted_client_hello",
        0xffa5 => "quic_transport_parameters_draft",
        _ => return t.to_string().into(),
    };
    n.into()
}

/// Name of a certificate compression algorithm (RFC 8879 §7.3).
pub fn compression_algorithm_name(a: u16) -> Name {
    match a {
        1 => "zlib".into(),
        2 => "brotli".into(),
        3 => "zstd".into(),
        n => n.to_string().into(),
    }
}

/// A cursor over a message body.
struct Cur<'a>(&'a [u8]);

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(b.iter().fold(0usize, |acc, &x| acc << 8 | usize::from(x)))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }
}

/// The DER certificates of a TLS 1.3 Certificate body (request context, then
/// entries of certificate and extensions), leaf first; the flag says the list was
/// cut or malformed.
pub fn certificate_list(body: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut c = Cur(body);
    let Some(list) = c.vec8().and_then(|_| c.vec24()) else {
        return (Vec::new(), true);
    };
    let mut l = Cur(list);
    let mut out = Vec::new();
    while !l.0.is_empty() {
        match (l.vec24(), l.vec16()) {
            (Some(der), Some(_)) if out.len() < MAX_CHAIN => out.push(der),
            _ => return (out, true),
        }
    }
    (out, !c.0.is_empty())
}

/// Why a CompressedCertificate gave no Certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inflate {
    /// Malformed, an unknown algorithm, or not the promised length.
    Bad,
    /// The promised length is past the cap.
    TooLarge,
}

/// The algorithm of a CompressedCertificate body, and the Certificate body it
/// holds (at most `cap` bytes, exactly the length it promises).
pub fn decompress_certificate(body: &[u8], cap: usize) -> (u16, Result<Vec<u8>, Inflate>) {
    let mut c = Cur(body);
    let (Some(alg), Some(len), Some(data)) = (c.u16(), c.u24(), c.vec24()) else {
        return (0, Err(Inflate::Bad));
    };
    if len > cap {
        return (alg, Err(Inflate::TooLarge));
    }
    let limit = len as u64 + 1;
    let mut out = Vec::with_capacity(len);
    let read = match alg {
        1 => flate2::read::ZlibDecoder::new(data)
            .take(limit)
            .read_to_end(&mut out),
        2 => brotli_decompressor::Decompressor::new(data, 4096)
            .take(limit)
            .read_to_end(&mut out),
        3 => match ruzstd::decoding::StreamingDecoder::new(data) {
            Ok(d) => d.take(limit).read_to_end(&mut out),
            Err(_) => return (alg, Err(Inflate::Bad)),
        },
        _ => return (alg, Err(Inflate::Bad)),
    };
    match read {
        Ok(n) if n == len => (alg, Ok(out)),
        _ => (alg, Err(Inflate::Bad)),
    }
}

/// What one decrypted handshake message meant for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Read (or ignored); the handshake goes on.
    More,
    /// This side's Finished: its handshake keys are done with.
    Finished,
}

fn encrypted(rec: &mut FlowRecord) -> &mut EncryptedHandshake {
    rec.tls_mut()
        .encrypted_handshake
        .get_or_insert_with(EncryptedHandshake::default)
}

/// One complete decrypted handshake message of `dir`, written into the record.
/// `cap` is the largest Certificate accepted (after decompression too).
pub fn message(dir: Dir, msg_type: u8, body: &[u8], cap: usize, rec: &mut FlowRecord) -> Step {
    rec.tls_mut().decrypted = true;
    match (msg_type, dir) {
        (HS_ENCRYPTED_EXTENSIONS, Dir::Server) => encrypted_extensions(body, rec),
        (HS_CERTIFICATE, _) => certificate(dir, body, rec),
        (HS_COMPRESSED_CERTIFICATE, _) => {
            let (alg, out) = decompress_certificate(body, cap);
            encrypted(rec).certificate_compression = Some(compression_algorithm_name(alg));
            match out {
                Ok(plain) => certificate(dir, &plain, rec),
                Err(Inflate::TooLarge) => rec.note(Note::HandshakeTooLarge),
                Err(Inflate::Bad) => rec.note(Note::CertificateListMalformed),
            }
        }
        (HS_CERTIFICATE_REQUEST, Dir::Server) => certificate_request(body, rec),
        (HS_CERTIFICATE_VERIFY, _) => {
            let scheme = Cur(body).u16().map(signature_scheme_name);
            let e = encrypted(rec);
            match dir {
                Dir::Server => e.server_signature = scheme,
                Dir::Client => e.client_signature = scheme,
            }
        }
        (HS_FINISHED, _) => {
            let e = encrypted(rec);
            if !e.finished.contains(&dir) {
                e.finished.push(dir);
            }
            return Step::Finished;
        }
        _ => {}
    }
    Step::More
}

fn encrypted_extensions(body: &[u8], rec: &mut FlowRecord) {
    let Some(list) = Cur(body).vec16() else {
        rec.note(Note::TlsParseError);
        return;
    };
    let mut names = Vec::new();
    let mut alpn = None;
    for (t, data) in extensions(list) {
        if names.len() < MAX_LISTED_EXTENSIONS {
            names.push(extension_name(t));
        }
        if t == EXT_ALPN {
            let mut c = Cur(data);
            alpn = c
                .vec16()
                .and_then(|l| Cur(l).vec8())
                .map(|p| crate::record::escape_wire(p, 255));
        }
    }
    let tls = rec.tls_mut();
    if let Some(p) = alpn
        && let Some(sh) = tls.server_hello.as_mut()
    {
        sh.alpn = Some(p);
    }
    encrypted(rec).encrypted_extensions = names;
}

fn certificate(dir: Dir, body: &[u8], rec: &mut FlowRecord) {
    let (ders, cut) = certificate_list(body);
    if cut {
        rec.note(Note::CertificateListMalformed);
    }
    let chain = super::certificate::chain(&ders, rec);
    if dir == Dir::Server {
        rec.frames.certificate = rec.at;
    }
    let tls = rec.tls_mut();
    match dir {
        Dir::Server => tls.certificates = chain,
        Dir::Client => tls.client_certificates = chain,
    }
}

fn certificate_request(body: &[u8], rec: &mut FlowRecord) {
    let mut c = Cur(body);
    let Some(list) = c.vec8().and_then(|_| c.vec16()) else {
        rec.note(Note::TlsParseError);
        return;
    };
    let mut req = CertificateRequest::default();
    for (t, data) in extensions(list) {
        match t {
            EXT_SIGNATURE_ALGORITHMS => {
                let schemes = Cur(data).vec16().unwrap_or_default();
                req.signature_algorithms = schemes
                    .chunks_exact(2)
                    .take(MAX_LISTED_SCHEMES)
                    .filter_map(|p| {
                        Some(signature_scheme_name(u16::from_be_bytes(
                            p.try_into().ok()?,
                        )))
                    })
                    .collect();
            }
            EXT_CERTIFICATE_AUTHORITIES => {
                let mut names = Cur(Cur(data).vec16().unwrap_or_default());
                while names.vec16().is_some() {
                    req.certificate_authorities += 1;
                }
            }
            _ => {}
        }
    }
    encrypted(rec).certificate_request = Some(req);
}

const EXT_CERTIFICATE_AUTHORITIES: u16 = 47;

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::record::Endpoint;
    use crate::time::Timestamp;
    use std::io::Write;

    fn rec() -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port,
        };
        FlowRecord::new(1, Timestamp::default(), ep(40000), ep(443))
    }

    /// A TLS 1.3 Certificate body carrying `ders`.
    pub fn certificate_body(ders: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for d in ders {
            list.extend(&(d.len() as u32).to_be_bytes()[1..]);
            list.extend(*d);
            list.extend([0, 0]);
        }
        let mut b = vec![0];
        b.extend(&(list.len() as u32).to_be_bytes()[1..]);
        b.extend(list);
        b
    }

    /// A CompressedCertificate body: algorithm, length, data.
    pub fn compressed(alg: u16, plain: &[u8], data: &[u8]) -> Vec<u8> {
        let mut b = alg.to_be_bytes().to_vec();
        b.extend(&(plain.len() as u32).to_be_bytes()[1..]);
        b.extend(&(data.len() as u32).to_be_bytes()[1..]);
        b.extend(data);
        b
    }

    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn certificate_list_entries_and_malformed() {
        let body = certificate_body(&[b"abc", b"de"]);
        assert_eq!(
            certificate_list(&body),
            (vec![&b"abc"[..], &b"de"[..]], false)
        );
        assert!(certificate_list(&body[..body.len() - 1]).1);
        assert!(certificate_list(&[]).1);
    }

    #[test]
    fn compressed_certificates_zlib_and_bad() {
        let plain = certificate_body(&[b"certificate bytes"]);
        let (alg, out) = decompress_certificate(&compressed(1, &plain, &zlib(&plain)), 1 << 16);
        assert_eq!((alg, out), (1, Ok(plain.clone())));
        // A promised length that does not match is refused.
        let mut lie = compressed(1, &plain, &zlib(&plain));
        lie[4] ^= 1;
        assert_eq!(decompress_certificate(&lie, 1 << 16).1, Err(Inflate::Bad));
        // Past the cap: refused before any work.
        let big = compressed(2, &vec![0; 70_000], b"x");
        assert_eq!(
            decompress_certificate(&big, 1 << 16).1,
            Err(Inflate::TooLarge)
        );
        // Garbage for every algorithm, and an unknown algorithm.
        for alg in 1..=4 {
            let g = compressed(alg, &plain, &[0x55; 40]);
            assert_eq!(decompress_certificate(&g, 1 << 16).1, Err(Inflate::Bad));
        }
    }

    #[test]
    fn messages_fill_the_record() {
        let mut r = rec();
        r.tls_mut().server_hello = Some(Default::default());
        // EncryptedExtensions: supported_groups, ALPN h2, an unknown one.
        let mut ext = vec![0, 10, 0, 4, 0, 2, 0, 29];
        ext.extend([0, 16, 0, 5, 0, 3, 2, b'h', b'2']);
        ext.extend([0x12, 0x34, 0, 0]);
        let mut ee = (ext.len() as u16).to_be_bytes().to_vec();
        ee.extend(ext);
        assert_eq!(message(Dir::Server, 8, &ee, 1 << 16, &mut r), Step::More);
        // CertificateRequest: signature_algorithms and two CA names.
        let mut cr = vec![0, 0, 22, 0, 13, 0, 6, 0, 4, 0x08, 0x04, 0x04, 0x03];
        cr.extend([0, 47, 0, 8, 0, 6, 0, 1, b'a', 0, 1, b'b']);
        message(Dir::Server, 13, &cr, 1 << 16, &mut r);
        message(Dir::Server, 15, &[0x08, 0x04, 0, 0], 1 << 16, &mut r);
        message(Dir::Client, 15, &[0x04, 0x03, 0, 0], 1 << 16, &mut r);
        assert_eq!(
            message(Dir::Server, 20, &[0; 32], 1 << 16, &mut r),
            Step::Finished
        );
        let tls = r.tls.clone().unwrap();
        assert!(tls.decrypted);
        assert_eq!(tls.server_hello.unwrap().alpn.as_deref(), Some("h2"));
        let e = tls.encrypted_handshake.unwrap();
        assert_eq!(
            e.encrypted_extensions,
            vec![
                Name::from("supported_groups"),
                "application_layer_protocol_negotiation".into(),
                "4660".into()
            ]
        );
        let req = e.certificate_request.unwrap();
        assert_eq!(
            req.signature_algorithms,
            vec![
                Name::from("rsa_pss_rsae_sha256"),
                "ecdsa_secp256r1_sha256".into()
            ]
        );
        assert_eq!(req.certificate_authorities, 2);
        assert_eq!(e.server_signature.as_deref(), Some("rsa_pss_rsae_sha256"));
        assert_eq!(
            e.client_signature.as_deref(),
            Some("ecdsa_secp256r1_sha256")
        );
        assert_eq!(e.finished, vec![Dir::Server]);
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        // Truncated bodies are noted, not a panic.
        message(Dir::Server, 8, &[0, 9, 0], 1 << 16, &mut r);
        message(Dir::Server, 13, &[5], 1 << 16, &mut r);
        message(Dir::Server, 11, &[0, 0, 0, 9], 1 << 16, &mut r);
        message(Dir::Server, 25, &[0, 1], 1 << 16, &mut r);
        assert!(r.has_note(Note::TlsParseError));
        assert!(r.has_note(Note::CertificateListMalformed));
    }
}
