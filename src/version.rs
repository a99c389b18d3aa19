//! Protocol version numbers and their OpenSSL-style spellings.

use std::fmt;

/// A TLS/SSL protocol version as it appears on the wire (`0x0303` = TLS 1.2).
///
/// Unknown and experimental values are kept as numbers, never dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u16);

impl Version {
    pub const SSLV2: Version = Version(0x0002);
    pub const SSLV3: Version = Version(0x0300);
    pub const TLS10: Version = Version(0x0301);
    pub const TLS11: Version = Version(0x0302);
    pub const TLS12: Version = Version(0x0303);
    pub const TLS13: Version = Version(0x0304);
    pub const DTLS10: Version = Version(0xfeff);
    pub const DTLS12: Version = Version(0xfefd);
    pub const DTLS13: Version = Version(0xfefc);

    /// GREASE values (RFC 8701): `0x?a?a` with both bytes equal.
    pub fn is_grease(self) -> bool {
        is_grease(self.0)
    }

    /// A TLS 1.3 draft number, for IETF drafts (`0x7fNN`) and Facebook's
    /// experimental `0xfb1a` (draft 26).
    pub fn tls13_draft(self) -> Option<u8> {
        match self.0 {
            0x7f00..=0x7fff => Some((self.0 & 0xff) as u8),
            0xfb1a => Some(26),
            _ => None,
        }
    }

    /// True for TLS 1.3 and its drafts.
    pub fn is_tls13(self) -> bool {
        self == Version::TLS13 || self.tls13_draft().is_some()
    }

    /// A DTLS version (`0xfeff` 1.0, `0xfefd` 1.2, `0xfefc` 1.3: ones' complement of 1.x).
    pub fn is_dtls(self) -> bool {
        matches!(self.0, 0xfeff | 0xfefd | 0xfefc)
    }

    /// Versions a record layer may carry (SSLv3 .. TLS 1.3 record versions).
    pub fn is_record_version(self) -> bool {
        (0x0300..=0x0304).contains(&self.0)
    }
}

/// GREASE (RFC 8701) values used for versions, cipher suites and extensions.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0x0002 => f.write_str("SSLv2"),
            0x0300 => f.write_str("SSLv3"),
            0x0301 => f.write_str("TLSv1.0"),
            0x0302 => f.write_str("TLSv1.1"),
            0x0303 => f.write_str("TLSv1.2"),
            0x0304 => f.write_str("TLSv1.3"),
            0xfeff => f.write_str("DTLSv1.0"),
            0xfefd => f.write_str("DTLSv1.2"),
            0xfefc => f.write_str("DTLSv1.3"),
            _ => match self.tls13_draft() {
                Some(n) => write!(f, "TLSv1.3-draft{n}"),
                None => write!(f, "0x{:04x}", self.0),
            },
        }
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_follow_openssl() {
        assert_eq!(Version(0x0002).to_string(), "SSLv2");
        assert_eq!(Version(0x0300).to_string(), "SSLv3");
        assert_eq!(Version(0x0301).to_string(), "TLSv1.0");
        assert_eq!(Version(0x0302).to_string(), "TLSv1.1");
        assert_eq!(Version(0x0303).to_string(), "TLSv1.2");
        assert_eq!(Version(0x0304).to_string(), "TLSv1.3");
        assert_eq!(Version(0xfeff).to_string(), "DTLSv1.0");
        assert_eq!(Version(0xfefd).to_string(), "DTLSv1.2");
        assert_eq!(Version(0xfefc).to_string(), "DTLSv1.3");
        // DTLS 1.1 never existed; OpenSSL's pre-RFC DTLS1_BAD_VER stays a number.
        assert_eq!(Version(0xfefe).to_string(), "0xfefe");
        assert_eq!(Version(0x0100).to_string(), "0x0100");
    }

    #[test]
    fn drafts_and_unknown_versions_are_kept() {
        assert_eq!(Version(0x7f1c).to_string(), "TLSv1.3-draft28");
        assert_eq!(Version(0x7f12).to_string(), "TLSv1.3-draft18");
        assert_eq!(Version(0xfb1a).to_string(), "TLSv1.3-draft26");
        assert_eq!(Version(0x7e01).to_string(), "0x7e01");
        assert_eq!(Version(0x0a0a).to_string(), "0x0a0a");
        assert!(Version(0x7f1c).is_tls13());
        assert!(!Version(0x0303).is_tls13());
    }

    #[test]
    fn grease_is_recognised() {
        for v in [0x0a0a, 0x1a1a, 0xfafa] {
            assert!(is_grease(v), "{v:04x}");
        }
        for v in [0x0a1a, 0x0303, 0x1301] {
            assert!(!is_grease(v), "{v:04x}");
        }
    }
}
