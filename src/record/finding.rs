//! Findings: what an auditor must see about a flow. Each is named by a [`Code`],
//! a stable SCREAMING_SNAKE string that also fixes its [`Severity`] and the
//! document the rule comes from.

use serde::ser::{Serialize, SerializeStruct, Serializer};
use std::fmt;
use std::str::FromStr;

/// Severity of a finding, least severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, least severe first.
    pub const ALL: &'static [Severity] = &[
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// The name `--fail-on`, the JSON and the tables use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Declares [`Code`] from one row per code: variant, stable string, severity,
/// reference, meaning (the variant's documentation).
macro_rules! codes {
    ($($variant:ident = $code:literal, $severity:ident, $reference:literal, $meaning:literal;)+) => {
        /// A finding's code. Its string is stable: scripts match on it and
        /// `--fail-on` takes it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $variant,)+
        }

        impl Code {
            /// Every code, in the order `--fail-on` lists them.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)+];

            /// The stable SCREAMING_SNAKE string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)+
                }
            }

            /// How bad a finding of this code is; the same for every flow.
            pub const fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)+
                }
            }

            /// Where the rule comes from: an RFC (with its section when one
            /// applies), a protocol specification, a CVE or a publication.
            pub const fn reference(self) -> &'static str {
                match self {
                    $(Code::$variant => $reference,)+
                }
            }

            /// What the finding means, in one line.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $meaning,)+
                }
            }
        }
    };
}

codes! {
    Sslv2 = "SSLV2", Critical, "RFC 6176",
        "SSLv2 negotiated.";
    Sslv3 = "SSLV3", High, "RFC 7568",
        "SSLv3 negotiated.";
    DeprecatedTls = "DEPRECATED_TLS", Medium, "RFC 8996",
        "TLS 1.0, TLS 1.1 or DTLS 1.0 negotiated.";
    Tls13 = "TLS_1_3", Info, "RFC 8446",
        "TLS 1.3 (or a draft) or DTLS 1.3 negotiated.";
    WeakCipher = "WEAK_CIPHER", High, "RFC 9325",
        "The server selected a NULL, export, RC4, DES, RC2 or anonymous suite.";
    Plaintext = "PLAINTEXT", Medium, "RFC 7258",
        "No TLS at all: the flow's payload crossed the network in the clear.";
    HandshakeFailed = "HANDSHAKE_FAILED", Medium, "RFC 8446 §6.2",
        "A fatal alert before the handshake finished, a plaintext answer to the ClientHello, or a ClientHello without a ServerHello when the connection ended (not the capture).";
    StarttlsRefused = "STARTTLS_REFUSED", High, "RFC 3207",
        "The client asked for the STARTTLS upgrade and the server refused it.";
    StarttlsNotUsed = "STARTTLS_NOT_USED", High, "RFC 8314",
        "The server offered STARTTLS; the client never asked for it and went on in plaintext.";
    StarttlsStripped = "STARTTLS_STRIPPED", Critical, "RFC 3207 §6",
        "The STARTTLS capability was masked or removed in the path.";
    StarttlsInjection = "STARTTLS_INJECTION", Critical, "CVE-2011-0411",
        "The client sent plaintext after its upgrade command, where TLS should begin.";
    StarttlsResponseInjection = "STARTTLS_RESPONSE_INJECTION", Critical,
        "Poddebniak et al., Why TLS is better without STARTTLS (USENIX Security 2021)",
        "The server sent plaintext after its go-ahead, where TLS should begin.";
    StarttlsFailed = "STARTTLS_FAILED", High, "RFC 3207 §4.1",
        "The server accepted the upgrade but no TLS handshake completed: the connection ended, or the packets show the failure.";
    ImapPreauth = "IMAP_PREAUTH", High, "RFC 3501 §7.1.4",
        "An IMAP PREAUTH greeting: the session is authenticated before any chance to upgrade.";
    CleartextAuth = "CLEARTEXT_AUTH", High, "RFC 8314",
        "Credentials sent before TLS (the mechanism of each exchange is reported, never the secret).";
    WeakAuthHash = "WEAK_AUTH_HASH", Medium, "PostgreSQL documentation §21.5",
        "A password sent before TLS as a salted hash (PostgreSQL MD5): open to offline guessing, not readable.";
    RdpStandardSecurity = "RDP_STANDARD_SECURITY", High, "MS-RDPBCGR §5.3",
        "RDP Standard Security (RC4, no server authentication) instead of TLS.";
    LoginOnlyEncryption = "LOGIN_ONLY_ENCRYPTION", High, "MS-TDS §2.2.6.5",
        "MSSQL: TLS protected the login packet only; the session continued in plaintext.";
    PlaintextOnTlsPort = "PLAINTEXT_ON_TLS_PORT", High, "RFC 8314 §3",
        "The server port expects TLS from the first byte, but the flow began in plaintext.";
    CertExpired = "CERT_EXPIRED", High, "RFC 5280 §4.1.2.5",
        "A certificate of the server's chain had expired at the flow's first packet.";
    CertNotYetValid = "CERT_NOT_YET_VALID", High, "RFC 5280 §4.1.2.5",
        "A certificate of the server's chain was not yet valid at the flow's first packet.";
    CertSelfSigned = "CERT_SELF_SIGNED", Medium, "RFC 5280 §6.1",
        "The server's certificate is self-signed.";
    CertNameMismatch = "CERT_NAME_MISMATCH", High, "RFC 6125 §6.4",
        "The server's certificate does not cover the name the client asked for (SNI).";
    WeakKey = "WEAK_KEY", High, "NIST SP 800-57",
        "A small certificate key, Diffie-Hellman group or key-exchange curve.";
    WeakSignature = "WEAK_SIGNATURE", Medium, "RFC 6151, RFC 9155",
        "A certificate other than a self-signed one is signed with MD5 or SHA-1.";
    NoForwardSecrecy = "NO_FORWARD_SECRECY", Medium, "RFC 9325",
        "TLS 1.2 or older with a key exchange without ephemeral keys.";
    TlsDowngrade = "TLS_DOWNGRADE", Critical, "RFC 8446 §4.1.3",
        "The server's random carries the downgrade sentinel, yet an older version was negotiated.";
    TlsCompression = "TLS_COMPRESSION", High, "RFC 7457 §2.6",
        "The server selected TLS compression (CRIME).";
    InsecureRenegotiation = "INSECURE_RENEGOTIATION", Medium, "RFC 5746",
        "TLS 1.2 or older and the server did not signal secure renegotiation (CVE-2009-3555).";
    InappropriateFallback = "INAPPROPRIATE_FALLBACK", High, "RFC 7507",
        "An inappropriate_fallback alert: the server refused a client's retry at a lower version.";
    CertUntrusted = "CERT_UNTRUSTED", High, "RFC 5280 §6.1",
        "A certificate chain (the server's, or a client's) does not lead to a trust anchor or is not valid for its purpose; tls.validation says why.";
    CertChainIncomplete = "CERT_CHAIN_INCOMPLETE", Medium, "RFC 8446 §4.4.2",
        "The server sent its certificate without the intermediate CA certificate that issued it.";
    CertExpiring = "CERT_EXPIRING", Low, "RFC 5280 §4.1.2.5",
        "A certificate of the server's chain expires within --cert-expiry-days (default 30) of the flow.";
    ClientDeprecatedTls = "CLIENT_DEPRECATED_TLS", Medium, "RFC 8996",
        "The client offered nothing newer than TLS 1.1 (or DTLS 1.0), whatever the server chose.";
    ClientWeakCiphers = "CLIENT_WEAK_CIPHERS", Low, "RFC 7465, RFC 9325 §4.1",
        "The client offered a NULL, export, anonymous, RC4 or single-DES cipher suite, whatever the server chose.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A word that is no finding code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCode;

impl fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown finding code")
    }
}

impl std::error::Error for UnknownCode {}

impl FromStr for Code {
    type Err = UnknownCode;

    /// The code spelled exactly as [`Code::as_str`] spells it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or(UnknownCode)
    }
}

/// What an auditor must see about a flow: a code and a message about this flow,
/// and the packet where it was seen. The severity is the code's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub code: Code,
    pub message: String,
    /// The packet that shows it (see [`crate::record::Frames`]); 0 until `assess` sets it.
    pub frame: u64,
    /// The input of `frame`, when it is not the record's.
    pub input: Option<usize>,
}

impl Finding {
    pub fn new(code: Code, message: String) -> Self {
        Finding {
            code,
            message,
            frame: 0,
            input: None,
        }
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }
}

impl Serialize for Finding {
    /// `{"code": .., "severity": .., "message": .., "frame": ..}`, and `input` when
    /// the frame lies in another input than the record's.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Finding", 5)?;
        st.serialize_field("code", &self.code)?;
        st.serialize_field("severity", &self.severity())?;
        st.serialize_field("message", &self.message)?;
        st.serialize_field("frame", &self.frame)?;
        if let Some(i) = self.input {
            st.serialize_field("input", &i)?;
        }
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_screaming_snake_and_parse_back() {
        for (i, c) in Code::ALL.iter().enumerate() {
            let s = c.as_str();
            assert!(
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{s}"
            );
            assert_eq!(s.parse::<Code>(), Ok(*c));
            assert_eq!(c.to_string(), s);
            assert_eq!(format!("{c:>30}"), format!("{s:>30}"));
            assert!(!c.reference().is_empty() && !c.meaning().is_empty(), "{s}");
            assert!(
                Code::ALL.iter().skip(i + 1).all(|d| d.as_str() != s),
                "{s} twice"
            );
        }
        assert_eq!(Code::ALL.len(), 35);
        assert_eq!("sslv3".parse::<Code>(), Err(UnknownCode));
        assert_eq!("".parse::<Code>(), Err(UnknownCode));
    }

    #[test]
    fn a_finding_serializes_its_code_string_and_the_codes_severity() {
        let f = Finding::new(Code::Sslv3, "SSLv3 negotiated".into());
        assert_eq!(f.severity(), Severity::High);
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"code":"SSLV3","severity":"high","message":"SSLv3 negotiated","frame":0}"#
        );
        let f = Finding::new(Code::Tls13, String::new());
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"code":"TLS_1_3","severity":"info","message":"","frame":0}"#
        );
        assert_eq!(Code::Sslv3.reference(), "RFC 7568");
    }

    #[test]
    fn severity_names_match_their_serialization() {
        for s in Severity::ALL {
            assert_eq!(
                serde_json::to_string(s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!(Severity::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    /// The README's findings table lists every code once, with its severity.
    #[test]
    fn the_readme_documents_every_code_and_its_severity() {
        let readme = include_str!("../../README.md");
        let table = readme
            .split("### Findings")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").find(|p| p.starts_with("| code")))
            .unwrap();
        let rows: Vec<(String, String)> = table
            .lines()
            .skip(2)
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[1].trim_matches('`').to_string(), cells[2].to_string())
            })
            .collect();
        assert_eq!(rows.len(), Code::ALL.len());
        for c in Code::ALL {
            assert!(
                rows.contains(&(c.as_str().to_string(), c.severity().as_str().to_string())),
                "{c} ({}) missing from the README",
                c.severity().as_str()
            );
        }
    }
}
