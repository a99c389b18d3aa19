//! Findings about what the client offered, whatever the server chose:
//! `CLIENT_DEPRECATED_TLS` and `CLIENT_WEAK_CIPHERS`.

use crate::analyzer::tls::cipher;
use crate::record::{ClientHelloInfo, Code, Finding, TlsInfo};
use crate::version::Version;
use rustc_hash::FxHashMap;
use std::sync::OnceLock;

/// Suites named in a finding's message before `...`.
const NAMED_SUITES: usize = 5;

pub fn findings(tls: &TlsInfo, out: &mut Vec<Finding>) {
    let Some(ch) = &tls.client_hello else {
        return;
    };
    out.extend(deprecated(ch));
    out.extend(weak_offer(ch));
}

/// The newest version the ClientHello offers: its `supported_versions`, else its
/// legacy version (DTLS numbers count down).
pub fn highest_offered(ch: &ClientHelloInfo) -> Version {
    let offered = ch
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !v.is_grease());
    if ch.version.is_dtls() {
        offered
            .chain([ch.version])
            .filter(|v| v.is_dtls())
            .min()
            .unwrap_or(ch.version)
    } else if ch.supported_versions.is_empty() {
        ch.version
    } else {
        offered.filter(|v| !v.is_dtls()).max().unwrap_or(ch.version)
    }
}

/// `CLIENT_DEPRECATED_TLS`: nothing newer than TLS 1.1 (SSL included) or DTLS 1.0 offered.
fn deprecated(ch: &ClientHelloInfo) -> Option<Finding> {
    let v = highest_offered(ch);
    let old = if v.is_dtls() {
        v == Version::DTLS10 || v.0 == 0x0100
    } else {
        v <= Version::TLS11
    };
    old.then(|| {
        Finding::new(
            Code::ClientDeprecatedTls,
            format!("the client offered nothing newer than {v} (RFC 8996)"),
        )
    })
}

/// Why an offered suite (by its IANA or SSLv2 name) is weak: NULL, export,
/// anonymous, RC4 or single DES.
pub fn weak_suite(name: &str) -> Option<&'static str> {
    if name.contains("EXPORT") {
        Some("export")
    } else if name.contains("_anon_") {
        Some("anonymous")
    } else if name.contains("RC4") {
        Some("RC4")
    } else if name.contains("_WITH_NULL_")
        || name.starts_with("TLS_NULL_WITH")
        || name.starts_with("TLS_SHA")
    {
        Some("NULL")
    } else if name.contains("_DES_CBC_") || name.contains("_DES40_") || name.contains("_DES_64_") {
        Some("single DES")
    } else {
        None
    }
}

/// SSLv2 cipher kinds, named as ClientHellos in the SSLv2 format list them.
const SSLV2_KINDS: &[u32] = &[
    0x01_0080, 0x02_0080, 0x03_0080, 0x04_0080, 0x05_0080, 0x06_0040, 0x07_00c0,
];

/// Weak suites the suite table does not name, so a ClientHello lists them by
/// number: Netscape's pre-standard `SSL_RSA_FIPS_WITH_DES_CBC_SHA` (single DES).
const UNNAMED_WEAK: &[(&str, &str)] = &[("0xfefe", "single DES"), ("0xffe1", "single DES")];

/// The first bytes of the suite numbers where weak suites are assigned (a test
/// checks no weak suite lies elsewhere).
const WEAK_RANGES: &[u8] = &[0x00, 0xc0, 0xc1];

/// Every weak suite name (TLS and SSLv2) with its reason, made once: a
/// ClientHello lists dozens of suites and every flow has one.
fn weak_names() -> &'static FxHashMap<&'static str, &'static str> {
    static WEAK: OnceLock<FxHashMap<&'static str, &'static str>> = OnceLock::new();
    WEAK.get_or_init(|| {
        let ids = WEAK_RANGES
            .iter()
            .flat_map(|&hi| (0..=u8::MAX).map(move |lo| u16::from_be_bytes([hi, lo])));
        let tls = ids.filter_map(|id| Some(tls_parser::TlsCipherSuite::from_id(id)?.name));
        let sslv2 = SSLV2_KINDS
            .iter()
            .filter_map(|&k| match cipher::sslv2_name(k) {
                std::borrow::Cow::Borrowed(n) => Some(n),
                std::borrow::Cow::Owned(_) => None,
            });
        tls.chain(sslv2)
            .filter_map(|n| Some((n, weak_suite(n)?)))
            .chain(UNNAMED_WEAK.iter().copied())
            .collect()
    })
}

/// `CLIENT_WEAK_CIPHERS`: the client offered at least one weak suite.
fn weak_offer(ch: &ClientHelloInfo) -> Option<Finding> {
    let table = weak_names();
    let weak: Vec<(&str, &str)> = ch
        .cipher_suites
        .iter()
        .filter_map(|n| table.get_key_value(n.as_ref()).map(|(k, v)| (*k, *v)))
        .collect();
    weak.first()?;
    let mut kinds: Vec<&str> = weak.iter().map(|(_, why)| *why).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut named = weak
        .iter()
        .take(NAMED_SUITES)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    if weak.len() > NAMED_SUITES {
        named.push_str(", ...");
    }
    Some(Finding::new(
        Code::ClientWeakCiphers,
        format!(
            "the client offered {} weak suites ({}): {named}",
            weak.len(),
            kinds.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::tls::cipher;

    /// The name rule agrees with the suite table's own reasons for every known suite
    /// (RC2 aside: every RC2 suite is also an export one).
    #[test]
    fn weak_suite_names_agree_with_the_suite_table() {
        let mut seen = 0;
        for id in 0..=u16::MAX {
            let Some(s) = cipher::suite(id) else { continue };
            if cipher::is_signalling(id) {
                continue;
            }
            seen += 1;
            let table = s.weak.filter(|w| !w.starts_with("RC2"));
            if table.is_some() {
                assert!(WEAK_RANGES.contains(&id.to_be_bytes()[0]), "{}", s.name);
                assert!(weak_names().contains_key(s.name), "{}", s.name);
            }
            assert_eq!(
                weak_suite(s.name).is_some(),
                table.is_some(),
                "{} ({id:#06x}): table {:?}",
                s.name,
                s.weak
            );
        }
        assert!(seen > 300, "{seen}");
        assert_eq!(weak_suite("SSL_CK_RC4_128_WITH_MD5"), Some("RC4"));
        assert_eq!(weak_suite("SSL_CK_DES_64_CBC_WITH_MD5"), Some("single DES"));
        assert_eq!(weak_suite("SSL_CK_DES_192_EDE3_CBC_WITH_MD5"), None);
        assert_eq!(weak_suite("TLS_RSA_WITH_3DES_EDE_CBC_SHA"), None);
    }

    fn hello(version: Version, supported: &[Version], suites: &[u16]) -> ClientHelloInfo {
        ClientHelloInfo {
            version,
            supported_versions: supported.to_vec(),
            cipher_suites: suites.iter().map(|&id| cipher::name(id)).collect(),
            ..ClientHelloInfo::default()
        }
    }

    fn codes(ch: ClientHelloInfo) -> Vec<Code> {
        let tls = TlsInfo {
            client_hello: Some(ch),
            ..TlsInfo::default()
        };
        let mut out = Vec::new();
        findings(&tls, &mut out);
        out.iter().map(|f| f.code).collect()
    }

    #[test]
    fn the_highest_offered_version_decides() {
        let modern = [0x1301, 0xc02f];
        assert_eq!(
            codes(hello(Version::TLS10, &[], &modern)),
            [Code::ClientDeprecatedTls]
        );
        assert_eq!(
            codes(hello(Version::TLS11, &[], &modern)),
            [Code::ClientDeprecatedTls]
        );
        assert_eq!(
            codes(hello(Version::SSLV3, &[], &modern)),
            [Code::ClientDeprecatedTls]
        );
        assert!(codes(hello(Version::TLS12, &[], &modern)).is_empty());
        // supported_versions beats the legacy field (which TLS 1.3 freezes at 1.2).
        let v = [Version(0x0a0a), Version::TLS13, Version::TLS12];
        assert!(codes(hello(Version::TLS12, &v, &modern)).is_empty());
        let v = [Version::TLS11, Version::TLS10];
        assert_eq!(
            codes(hello(Version::TLS12, &v, &modern)),
            [Code::ClientDeprecatedTls]
        );
        assert_eq!(
            codes(hello(Version::DTLS10, &[], &modern)),
            [Code::ClientDeprecatedTls]
        );
        assert!(codes(hello(Version::DTLS12, &[], &modern)).is_empty());
    }

    #[test]
    fn one_weak_suite_among_strong_ones_is_enough() {
        // TLS_RSA_WITH_RC4_128_SHA among modern suites.
        let got = codes(hello(Version::TLS12, &[], &[0xc02f, 0x0005, 0x009c]));
        assert_eq!(got, [Code::ClientWeakCiphers]);
        let tls = TlsInfo {
            client_hello: Some(hello(
                Version::TLS12,
                &[],
                &[0x0005, 0x0009, 0x0003, 0x0001],
            )),
            ..TlsInfo::default()
        };
        let mut out = Vec::new();
        findings(&tls, &mut out);
        let msg = &out[0].message;
        assert!(
            msg.contains("4 weak suites (NULL, RC4, export, single DES)"),
            "{msg}"
        );
        assert!(msg.contains("TLS_RSA_WITH_RC4_128_SHA"), "{msg}");
        // 3DES, AES and the SCSVs are not weak offers.
        assert!(
            codes(hello(
                Version::TLS12,
                &[],
                &[0x000a, 0x002f, 0x00ff, 0x5600]
            ))
            .is_empty()
        );
    }
}
