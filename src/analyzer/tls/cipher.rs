//! The cipher-suite table: for every TLS suite (the IANA registry, as compiled
//! into tls-parser) and every SSLv2 cipher kind, its name, key exchange,
//! authentication and whether it is weak. The TLS analyzer, the SSLv2 parser,
//! the fingerprints and the policy all read suites from here and nowhere else.

pub use crate::version::is_grease;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::sync::OnceLock;
use tls_parser::{TlsCipherAu, TlsCipherEnc, TlsCipherKx, TlsCipherSuite};

/// A name from a table, borrowed; or made up (hex of an unknown value), owned.
pub type Name = Cow<'static, str>;

/// Signalling values that sit in the cipher-suite list but name no suite.
pub const EMPTY_RENEGOTIATION_INFO_SCSV: u16 = 0x00ff;
pub const FALLBACK_SCSV: u16 = 0x5600;

/// Key exchange of a suite, spelled as in the JSON (`tls.key_exchange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyExchange {
    /// RSA key transport: no forward secrecy.
    Rsa,
    /// Static (certificate) Diffie-Hellman: no forward secrecy.
    Dh,
    Dhe,
    /// Static (certificate) ECDH: no forward secrecy.
    Ecdh,
    Ecdhe,
    Psk,
    RsaPsk,
    DhePsk,
    EcdhePsk,
    Srp,
    Krb5,
    Eccpwd,
    /// TLS 1.3 suites: the key exchange is negotiated by extensions, not the suite.
    Tls13,
    /// `TLS_NULL_WITH_NULL_NULL` and the signalling values.
    Null,
}

impl KeyExchange {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyExchange::Rsa => "rsa",
            KeyExchange::Dh => "dh",
            KeyExchange::Dhe => "dhe",
            KeyExchange::Ecdh => "ecdh",
            KeyExchange::Ecdhe => "ecdhe",
            KeyExchange::Psk => "psk",
            KeyExchange::RsaPsk => "rsa_psk",
            KeyExchange::DhePsk => "dhe_psk",
            KeyExchange::EcdhePsk => "ecdhe_psk",
            KeyExchange::Srp => "srp",
            KeyExchange::Krb5 => "krb5",
            KeyExchange::Eccpwd => "eccpwd",
            KeyExchange::Tls13 => "tls13",
            KeyExchange::Null => "null",
        }
    }

    /// A fresh ephemeral secret per connection: a stolen server key does not
    /// decrypt recorded traffic.
    pub fn forward_secret(self) -> bool {
        matches!(
            self,
            KeyExchange::Dhe
                | KeyExchange::Ecdhe
                | KeyExchange::DhePsk
                | KeyExchange::EcdhePsk
                | KeyExchange::Eccpwd
                | KeyExchange::Tls13
        )
    }

    /// The server sends a ServerKeyExchange carrying finite-field DH parameters.
    pub fn finite_field_dh(self) -> bool {
        matches!(self, KeyExchange::Dhe | KeyExchange::DhePsk)
    }

    /// The server sends a ServerKeyExchange carrying an elliptic curve.
    pub fn elliptic_dh(self) -> bool {
        matches!(self, KeyExchange::Ecdhe | KeyExchange::EcdhePsk)
    }
}

/// Server authentication of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    Rsa,
    Dss,
    Ecdsa,
    Psk,
    Srp,
    Krb5,
    /// Negotiated by the certificate (TLS 1.3).
    Certificate,
    /// No authentication: anonymous suites.
    Anonymous,
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub name: &'static str,
    pub kx: KeyExchange,
    pub auth: Auth,
    /// Why the suite is weak, if it is.
    pub weak: Option<&'static str>,
}

/// tls-parser's suite of a number, from its table indexed once more: the
/// crate's own map hashes each number with SipHash, and every suite of every
/// ClientHello is looked up.
fn by_id(id: u16) -> Option<&'static TlsCipherSuite> {
    static TABLE: OnceLock<FxHashMap<u16, &'static TlsCipherSuite>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            tls_parser::CIPHERS
                .entries()
                .map(|(&k, v)| (k, v))
                .collect()
        })
        .get(&id)
        .copied()
}

/// The table row for a suite number; `None` for unassigned numbers and GREASE.
pub fn suite(id: u16) -> Option<Suite> {
    let cs = by_id(id)?;
    let psk = cs.au == TlsCipherAu::Psk;
    let anon = cs.au == TlsCipherAu::Null;
    let kx = match cs.kx {
        TlsCipherKx::Rsa if psk => KeyExchange::RsaPsk,
        TlsCipherKx::Dhe | TlsCipherKx::Dh if psk => KeyExchange::DhePsk,
        TlsCipherKx::Ecdhe | TlsCipherKx::Ecdh if psk => KeyExchange::EcdhePsk,
        TlsCipherKx::Psk if cs.au == TlsCipherAu::Dhe => KeyExchange::DhePsk,
        TlsCipherKx::Rsa => KeyExchange::Rsa,
        // Anonymous (EC)DH sends fresh parameters in a ServerKeyExchange.
        TlsCipherKx::Dh if anon => KeyExchange::Dhe,
        TlsCipherKx::Ecdh if anon => KeyExchange::Ecdhe,
        TlsCipherKx::Dh => KeyExchange::Dh,
        TlsCipherKx::Dhe => KeyExchange::Dhe,
        TlsCipherKx::Ecdh => KeyExchange::Ecdh,
        TlsCipherKx::Ecdhe | TlsCipherKx::Aecdh => KeyExchange::Ecdhe,
        TlsCipherKx::Psk => KeyExchange::Psk,
        TlsCipherKx::Srp => KeyExchange::Srp,
        TlsCipherKx::Krb5 => KeyExchange::Krb5,
        TlsCipherKx::Eccpwd => KeyExchange::Eccpwd,
        TlsCipherKx::Tls13 => KeyExchange::Tls13,
        TlsCipherKx::Null => KeyExchange::Null,
    };
    let auth = match cs.au {
        TlsCipherAu::Rsa | TlsCipherAu::Srp_Rsa => Auth::Rsa,
        TlsCipherAu::Dss | TlsCipherAu::Srp_Dss => Auth::Dss,
        TlsCipherAu::Ecdsa => Auth::Ecdsa,
        TlsCipherAu::Psk | TlsCipherAu::Dhe | TlsCipherAu::Eccpwd => Auth::Psk,
        TlsCipherAu::Srp => Auth::Srp,
        TlsCipherAu::Krb5 => Auth::Krb5,
        TlsCipherAu::Tls13 => Auth::Certificate,
        TlsCipherAu::Null => Auth::Anonymous,
    };
    let weak = if cs.name.contains("EXPORT") {
        Some("export-grade")
    } else {
        match cs.enc {
            TlsCipherEnc::Null => Some("no encryption"),
            TlsCipherEnc::Rc4 => Some("RC4, RFC 7465"),
            TlsCipherEnc::Des => Some("single DES"),
            TlsCipherEnc::Rc2 => Some("RC2"),
            _ if auth == Auth::Anonymous && kx != KeyExchange::Null => {
                Some("anonymous key exchange")
            }
            _ => None,
        }
    };
    Some(Suite {
        id,
        name: cs.name,
        kx,
        auth,
        weak,
    })
}

/// Suite name (IANA), or hex for unknown values.
pub fn name(id: u16) -> Name {
    // The name alone: every suite of every ClientHello is named.
    match by_id(id) {
        Some(cs) => Cow::Borrowed(cs.name),
        None => Cow::Owned(format!("0x{id:04x}")),
    }
}

/// Why a suite is weak, if it is: NULL or export encryption, RC4, DES, RC2,
/// anonymous key exchange (RFC 7465, RFC 5246 appendix A.5).
pub fn weak(id: u16) -> Option<&'static str> {
    suite(id)?.weak.filter(|_| !is_signalling(id))
}

/// The SCSV values (RFC 5746, RFC 7507), listed as suites but meaning flags.
pub fn is_signalling(id: u16) -> bool {
    id == EMPTY_RENEGOTIATION_INFO_SCSV || id == FALLBACK_SCSV
}

/// Name of a 3-byte SSLv2 cipher kind; kinds `00 XX YY` are TLS suites `XXYY`.
pub fn sslv2_name(kind: u32) -> Name {
    let name = match kind {
        0x01_0080 => "SSL_CK_RC4_128_WITH_MD5",
        0x02_0080 => "SSL_CK_RC4_128_EXPORT40_WITH_MD5",
        0x03_0080 => "SSL_CK_RC2_128_CBC_WITH_MD5",
        0x04_0080 => "SSL_CK_RC2_128_CBC_EXPORT40_WITH_MD5",
        0x05_0080 => "SSL_CK_IDEA_128_CBC_WITH_MD5",
        0x06_0040 => "SSL_CK_DES_64_CBC_WITH_MD5",
        0x07_00c0 => "SSL_CK_DES_192_EDE3_CBC_WITH_MD5",
        k if k >> 16 == 0 => return name(k as u16),
        _ => return Cow::Owned(format!("0x{kind:06x}")),
    };
    Cow::Borrowed(name)
}

/// Name of a named group (`supported_groups`, `key_share`, ECDHE ServerKeyExchange),
/// IANA spelling; unknown values as hex.
pub fn group_name(id: u16) -> Name {
    let s = match id {
        1..=22 => {
            const OLD: [&str; 22] = [
                "sect163k1",
                "sect163r1",
                "sect163r2",
                "sect193r1",
                "sect193r2",
                "sect233k1",
                "sect233r1",
                "sect239k1",
                "sect283k1",
                "sect283r1",
                "sect409k1",
                "sect409r1",
                "sect571k1",
                "sect571r1",
                "secp160k1",
                "secp160r1",
                "secp160r2",
                "secp192k1",
                "secp192r1",
                "secp224k1",
                "secp224r1",
                "secp256k1",
            ];
            return OLD
                .get(usize::from(id) - 1)
                .map_or_else(|| Cow::Owned(format!("0x{id:04x}")), |s| Cow::Borrowed(*s));
        }
        23 => "secp256r1",
        24 => "secp384r1",
        25 => "secp521r1",
        26 => "brainpoolP256r1",
        27 => "brainpoolP384r1",
        28 => "brainpoolP512r1",
        29 => "x25519",
        30 => "x448",
        31 => "brainpoolP256r1tls13",
        32 => "brainpoolP384r1tls13",
        33 => "brainpoolP512r1tls13",
        34 => "GC256A",
        41 => "curveSM2",
        256 => "ffdhe2048",
        257 => "ffdhe3072",
        258 => "ffdhe4096",
        259 => "ffdhe6144",
        260 => "ffdhe8192",
        0x0200 => "MLKEM512",
        0x0201 => "MLKEM768",
        0x0202 => "MLKEM1024",
        0x11eb => "SecP256r1MLKEM768",
        0x11ec => "X25519MLKEM768",
        0x11ed => "SecP384r1MLKEM1024",
        0x6399 => "X25519Kyber768Draft00",
        0x639a => "SecP256r1Kyber768Draft00",
        0xff01 => "arbitrary_explicit_prime_curves",
        0xff02 => "arbitrary_explicit_char2_curves",
        _ => return Cow::Owned(format!("0x{id:04x}")),
    };
    Cow::Borrowed(s)
}

/// Every group [`group_name`] has a name for.
const NAMED_GROUPS: [std::ops::RangeInclusive<u16>; 7] = [
    1..=34,
    41..=41,
    256..=260,
    0x0200..=0x0202,
    0x11eb..=0x11ed,
    0x6399..=0x639a,
    0xff01..=0xff02,
];

/// The code point of a group by its [`group_name`] (what a record holds).
pub fn group_id(name: &str) -> Option<u16> {
    NAMED_GROUPS
        .iter()
        .flat_map(|r| r.clone())
        .find(|&id| matches!(group_name(id), Cow::Borrowed(n) if n == name))
}

/// Key size in bits of a group (the field size of an elliptic curve, the
/// modulus of a finite-field group, the classical part of a hybrid), for the
/// weak-key policy.
pub fn group_bits(id: u16) -> Option<u32> {
    Some(match id {
        1..=3 => 163,
        4 | 5 => 193,
        6 | 7 => 233,
        8 => 239,
        9 | 10 => 283,
        11 | 12 => 409,
        13 | 14 => 571,
        15..=17 => 160,
        18 | 19 => 192,
        20 | 21 => 224,
        22 | 23 | 26 | 29 | 31 | 34 => 256,
        24 | 27 | 32 => 384,
        28 | 33 => 512,
        25 => 521,
        30 => 448,
        41 => 256,
        256 => 2048,
        257 => 3072,
        258 => 4096,
        259 => 6144,
        260 => 8192,
        0x11eb | 0x11ec | 0x6399 | 0x639a | 0x0201 => 256,
        0x11ed | 0x0202 => 384,
        0x0200 => 256,
        _ => return None,
    })
}

/// A finite-field group (`ffdhe*`, RFC 7919) rather than an elliptic curve.
pub fn is_ffdhe(id: u16) -> bool {
    (256..=511).contains(&id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index holds exactly tls-parser's table: the same suite for every number.
    #[test]
    fn the_index_is_the_crates_table() {
        let mut named = 0;
        for id in 0..=u16::MAX {
            let want = TlsCipherSuite::from_id(id);
            assert_eq!(by_id(id).map(|c| c.name), want.map(|c| c.name), "{id:#06x}");
            named += usize::from(want.is_some());
        }
        assert!(named > 300, "{named}");
    }

    #[test]
    fn weak_suites_are_named() {
        assert_eq!(weak(0x0005), Some("RC4, RFC 7465")); // TLS_RSA_WITH_RC4_128_SHA
        assert_eq!(weak(0x0001), Some("no encryption")); // TLS_RSA_WITH_NULL_MD5
        assert_eq!(weak(0x0003), Some("export-grade")); // TLS_RSA_EXPORT_WITH_RC4_40_MD5
        assert_eq!(weak(0x0009), Some("single DES")); // TLS_RSA_WITH_DES_CBC_SHA
        assert_eq!(weak(0x0034), Some("anonymous key exchange")); // TLS_DH_anon_WITH_AES_128_CBC_SHA
        assert_eq!(weak(0xc018), Some("anonymous key exchange")); // TLS_ECDH_anon_WITH_AES_128_CBC_SHA
        assert_eq!(weak(0x1301), None);
        assert_eq!(weak(0xc02f), None);
        assert_eq!(weak(0x002f), None);
        assert_eq!(weak(0x008c), None); // TLS_PSK_WITH_AES_128_CBC_SHA
        assert_eq!(weak(EMPTY_RENEGOTIATION_INFO_SCSV), None);
        assert_eq!(weak(FALLBACK_SCSV), None);
    }

    #[test]
    fn key_exchange_and_forward_secrecy() {
        let kx = |id| suite(id).map(|s| s.kx);
        assert_eq!(kx(0x002f), Some(KeyExchange::Rsa));
        assert_eq!(kx(0x0033), Some(KeyExchange::Dhe)); // TLS_DHE_RSA_WITH_AES_128_CBC_SHA
        assert_eq!(kx(0xc02f), Some(KeyExchange::Ecdhe));
        assert_eq!(kx(0xc02b), Some(KeyExchange::Ecdhe)); // ECDSA
        assert_eq!(kx(0xc004), Some(KeyExchange::Ecdh)); // TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA
        assert_eq!(kx(0x0030), Some(KeyExchange::Dh)); // TLS_DH_DSS_WITH_AES_128_CBC_SHA
        assert_eq!(kx(0x008c), Some(KeyExchange::Psk));
        assert_eq!(kx(0x0090), Some(KeyExchange::DhePsk));
        assert_eq!(kx(0xc035), Some(KeyExchange::EcdhePsk));
        assert_eq!(kx(0x0094), Some(KeyExchange::RsaPsk));
        assert_eq!(kx(0x1302), Some(KeyExchange::Tls13));
        assert!(!KeyExchange::Rsa.forward_secret());
        assert!(KeyExchange::Ecdhe.forward_secret());
        assert_eq!(suite(0xc02b).map(|s| s.auth), Some(Auth::Ecdsa));
        assert_eq!(suite(0x0034).map(|s| s.auth), Some(Auth::Anonymous));
        assert_eq!(suite(0x0a0a), None);
    }

    #[test]
    fn names_tls_and_sslv2() {
        assert_eq!(name(0x1301), "TLS_AES_128_GCM_SHA256");
        assert_eq!(name(0xfefe), "0xfefe");
        assert_eq!(sslv2_name(0x07_00c0), "SSL_CK_DES_192_EDE3_CBC_WITH_MD5");
        assert_eq!(sslv2_name(0x00_002f), "TLS_RSA_WITH_AES_128_CBC_SHA");
        assert_eq!(sslv2_name(0x09_0000), "0x090000");
        assert_eq!(group_name(29), "x25519");
        assert_eq!(group_name(0x11ec), "X25519MLKEM768");
        assert_eq!(group_name(21), "secp224r1");
        assert_eq!(group_name(0x0a0a), "0x0a0a");
        for range in NAMED_GROUPS {
            for id in range {
                let name = group_name(id);
                assert!(!name.starts_with("0x"), "{id:#06x} has no name");
                assert_eq!(group_id(&name), Some(id), "{name}");
            }
        }
        assert_eq!(group_id("0x0a0a"), None);
        assert_eq!(group_bits(group_id("secp160k1").unwrap_or(0)), Some(160));
        assert_eq!(group_bits(group_id("sect571r1").unwrap_or(0)), Some(571));
        assert!(is_grease(0x0a0a));
    }
}
