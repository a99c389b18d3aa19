//! Policy: from a finished flow record to the findings an auditor must see.
//! The only place that decides what is a problem and how bad it is.

use crate::record::{Encryption, Finding, FlowRecord, Severity};
use crate::version::Version;

/// Every finding code tlswatch can emit, for `--fail-on` validation and the README.
pub const CODES: &[&str] = &[
    "SSLV2",
    "SSLV3",
    "DEPRECATED_TLS",
    "TLS_1_3",
    "WEAK_CIPHER",
    "PLAINTEXT",
    "HANDSHAKE_FAILED",
    "STARTTLS_REFUSED",
    "STARTTLS_NOT_USED",
    "STARTTLS_STRIPPED",
    "STARTTLS_INJECTION",
    "STARTTLS_RESPONSE_INJECTION",
    "STARTTLS_FAILED",
    "IMAP_PREAUTH",
    "CLEARTEXT_AUTH",
    "RDP_STANDARD_SECURITY",
    "LOGIN_ONLY_ENCRYPTION",
    "PLAINTEXT_ON_TLS_PORT",
];

/// Severities as `--fail-on` and the JSON spell them, least severe first.
pub const SEVERITIES: &[(&str, Severity)] = &[
    ("info", Severity::Info),
    ("low", Severity::Low),
    ("medium", Severity::Medium),
    ("high", Severity::High),
    ("critical", Severity::Critical),
];

/// IANA ports where TLS is expected from the first byte, with their service names.
pub const TLS_PORTS: &[(u16, &str)] = &[
    (443, "https"),
    (465, "smtps"),
    (563, "nntps"),
    (636, "ldaps"),
    (853, "domain-s"),
    (989, "ftps-data"),
    (990, "ftps"),
    (992, "telnets"),
    (993, "imaps"),
    (994, "ircs"),
    (995, "pop3s"),
    (5061, "sips"),
    (5223, "xmpp-tls"),
    (5986, "wsmans"),
    (6697, "ircs-u"),
    (8443, "https-alt"),
];

/// The parts of the policy a run configures; `assess` alone applies the defaults
/// that need no configuration.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Ports where anything but TLS from the first byte is flagged, sorted.
    tls_ports: Vec<u16>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::with_tls_ports(&[])
    }
}

impl Policy {
    /// The IANA TLS ports plus `extra` (`--tls-port`).
    pub fn with_tls_ports(extra: &[u16]) -> Self {
        let mut tls_ports: Vec<u16> = TLS_PORTS.iter().map(|(p, _)| *p).collect();
        tls_ports.extend_from_slice(extra);
        tls_ports.sort_unstable();
        tls_ports.dedup();
        Policy { tls_ports }
    }

    pub fn tls_ports(&self) -> &[u16] {
        &self.tls_ports
    }

    /// Adds the findings that depend on the run's policy, keeping the list most
    /// severe first.
    pub fn apply(&self, rec: &mut FlowRecord) {
        if let Some(f) = self.port_finding(rec) {
            rec.findings.push(f);
            rec.findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        }
    }

    /// `PLAINTEXT_ON_TLS_PORT`: the server port expects TLS from the first byte,
    /// but the flow began in plaintext (upgraded later or not at all). Encrypted
    /// protocols other than TLS (SSH multiplexed on 443) and flows too short to
    /// judge are not flagged.
    fn port_finding(&self, rec: &FlowRecord) -> Option<Finding> {
        let port = rec.server.port;
        if self.tls_ports.binary_search(&port).is_err() {
            return None;
        }
        let began_plain = matches!(
            rec.encryption,
            Encryption::Plaintext
                | Encryption::Starttls
                | Encryption::StarttlsRefused
                | Encryption::StarttlsFailed
                | Encryption::RdpStandard
                | Encryption::LoginOnly
        );
        if !began_plain {
            return None;
        }
        let service = TLS_PORTS
            .iter()
            .find(|(p, _)| *p == port)
            .map_or("--tls-port", |(_, name)| name);
        let spoken = rec
            .app_protocol
            .as_deref()
            .unwrap_or("an unidentified protocol");
        Some(finding(
            "PLAINTEXT_ON_TLS_PORT",
            Severity::High,
            format!(
                "port {port} ({service}) expects TLS from the first byte; the flow began in plaintext ({spoken}, encryption {})",
                rec.encryption.as_str()
            ),
        ))
    }
}

/// `--fail-on`: finding codes, and a severity at or above which any finding counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailOn {
    pub codes: Vec<&'static str>,
    pub severity: Option<Severity>,
}

impl FailOn {
    /// Parses codes and severity names (any case, mixed); an unknown word is an
    /// error naming every valid one.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut out = FailOn::default();
        for item in items {
            let word = item.as_ref().trim();
            if word.is_empty() {
                continue;
            }
            let lower = word.to_ascii_lowercase();
            if let Some((_, sev)) = SEVERITIES.iter().find(|(name, _)| *name == lower) {
                out.severity = Some(out.severity.map_or(*sev, |s| s.min(*sev)));
                continue;
            }
            let upper = word.to_ascii_uppercase();
            match CODES.iter().find(|c| **c == upper) {
                Some(code) if !out.codes.contains(code) => out.codes.push(code),
                Some(_) => {}
                None => {
                    let sevs: Vec<&str> = SEVERITIES.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "--fail-on: unknown finding code '{upper}' (severities: {}; codes: {})",
                        sevs.join(", "),
                        CODES.join(", ")
                    ));
                }
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty() && self.severity.is_none()
    }

    /// Whether this finding makes the exit status 1.
    pub fn matches(&self, f: &Finding) -> bool {
        self.severity.is_some_and(|s| f.severity >= s) || self.codes.contains(&f.code)
    }
}

fn finding(code: &'static str, severity: Severity, message: String) -> Finding {
    Finding {
        code,
        severity,
        message,
    }
}

/// Findings for one flow, most severe first.
pub fn assess(rec: &FlowRecord) -> Vec<Finding> {
    let mut out = Vec::new();
    let tls_used = matches!(
        rec.encryption,
        Encryption::Tls
            | Encryption::Starttls
            | Encryption::StarttlsFailed
            | Encryption::Quic
            | Encryption::Dtls
    );
    if let (true, Some(tls)) = (tls_used, &rec.tls) {
        match tls.version {
            Some(Version::SSLV2) => out.push(finding(
                "SSLV2",
                Severity::Critical,
                "SSLv2 negotiated; prohibited by RFC 6176".into(),
            )),
            Some(Version::SSLV3) => out.push(finding(
                "SSLV3",
                Severity::High,
                "SSLv3 negotiated; prohibited by RFC 7568".into(),
            )),
            Some(v @ (Version::TLS10 | Version::TLS11 | Version::DTLS10)) => out.push(finding(
                "DEPRECATED_TLS",
                Severity::Medium,
                format!("{v} negotiated; deprecated by RFC 8996"),
            )),
            Some(v) if v.is_tls13() || v == Version::DTLS13 => out.push(finding(
                "TLS_1_3",
                Severity::Info,
                format!("{v} negotiated"),
            )),
            _ => {}
        }
        if let Some((sh, why)) = tls
            .server_hello
            .as_ref()
            .and_then(|sh| Some((sh, sh.cipher_id.and_then(weak_cipher)?)))
        {
            {
                out.push(finding(
                    "WEAK_CIPHER",
                    Severity::High,
                    format!(
                        "server selected {} ({why})",
                        sh.cipher_suite.as_deref().unwrap_or("?")
                    ),
                ));
            }
        }
        let fatal = tls.alerts.iter().find(|a| a.level == "fatal");
        let started = tls.client_hello.is_some() || tls.server_hello.is_some();
        if let Some(a) = fatal.filter(|_| !tls.established) {
            out.push(finding(
                "HANDSHAKE_FAILED",
                Severity::Medium,
                format!("fatal alert {} from the {:?} side", a.description, a.from).to_lowercase(),
            ));
        } else if started && tls.server_hello.is_none() {
            out.push(finding(
                "HANDSHAKE_FAILED",
                Severity::Medium,
                "ClientHello without a ServerHello before the flow ended".into(),
            ));
        }
    }
    if let Some(st) = &rec.starttls {
        if st.stripped.is_some() {
            out.push(finding(
                "STARTTLS_STRIPPED",
                Severity::Critical,
                format!(
                    "STARTTLS capability masked or removed: {}",
                    st.stripped.as_deref().unwrap_or_default()
                ),
            ));
        }
        if let Some(junk) = &st.injection {
            out.push(finding(
                "STARTTLS_INJECTION",
                Severity::Critical,
                format!("client sent plaintext after its STARTTLS command: {junk}"),
            ));
        }
        if let Some(junk) = &st.response_injection {
            out.push(finding(
                "STARTTLS_RESPONSE_INJECTION",
                Severity::Critical,
                format!("server sent plaintext after its go-ahead: {junk}"),
            ));
        }
        if st.requested && !st.accepted && rec.encryption == Encryption::StarttlsRefused {
            out.push(finding(
                "STARTTLS_REFUSED",
                Severity::High,
                format!(
                    "server refused the upgrade: {}",
                    st.reply.as_deref().unwrap_or("(no reply line)")
                ),
            ));
        }
        if st.offered && !st.requested && rec.encryption == Encryption::Plaintext {
            out.push(finding(
                "STARTTLS_NOT_USED",
                Severity::High,
                "server offered STARTTLS; the client went on in plaintext".into(),
            ));
        }
        if rec.encryption == Encryption::StarttlsFailed {
            out.push(finding(
                "STARTTLS_FAILED",
                Severity::High,
                "server accepted the upgrade but no TLS handshake completed".into(),
            ));
        }
        if st.preauth {
            out.push(finding(
                "IMAP_PREAUTH",
                Severity::High,
                "IMAP PREAUTH greeting: the session is authenticated before any chance to upgrade"
                    .into(),
            ));
        }
    }
    for a in &rec.cleartext_auth {
        let who = a
            .user
            .as_deref()
            .map(|u| format!(" for user {u}"))
            .unwrap_or_default();
        out.push(finding(
            "CLEARTEXT_AUTH",
            Severity::High,
            format!("credentials sent before TLS ({}{who})", a.mechanism),
        ));
    }
    match rec.encryption {
        Encryption::Plaintext => out.push(finding(
            "PLAINTEXT",
            Severity::Medium,
            format!(
                "no TLS: {} bytes client to server, {} bytes server to client in the clear",
                rec.bytes.client, rec.bytes.server
            ),
        )),
        Encryption::RdpStandard => out.push(finding(
            "RDP_STANDARD_SECURITY",
            Severity::High,
            "RDP Standard Security (RC4, no server authentication) instead of TLS".into(),
        )),
        Encryption::LoginOnly => out.push(finding(
            "LOGIN_ONLY_ENCRYPTION",
            Severity::High,
            "TLS protected the login packet only; the session continued in plaintext".into(),
        )),
        _ => {}
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// Why a cipher suite is weak, if it is: NULL or export encryption, RC4, DES, RC2,
/// anonymous key exchange (RFC 7465, RFC 5246 appendix, RFC 8996 context).
pub fn weak_cipher(id: u16) -> Option<&'static str> {
    use tls_parser::{TlsCipherAu, TlsCipherEnc, TlsCipherKx};
    let cs = tls_parser::TlsCipherSuite::from_id(id)?;
    if cs.name.contains("EXPORT") {
        return Some("export-grade");
    }
    match cs.enc {
        TlsCipherEnc::Null => return Some("no encryption"),
        TlsCipherEnc::Rc4 => return Some("RC4, RFC 7465"),
        TlsCipherEnc::Des => return Some("single DES"),
        TlsCipherEnc::Rc2 => return Some("RC2"),
        _ => {}
    }
    if cs.au == TlsCipherAu::Null && cs.kx != TlsCipherKx::Tls13 && cs.kx != TlsCipherKx::Psk {
        return Some("anonymous key exchange");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::record::{Endpoint, Timestamp};

    fn flow_to(port: u16, enc: Encryption) -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([192, 0, 2, 1]),
            port,
        };
        let mut r = FlowRecord::new(1, Timestamp::default(), ep(40000), ep(port));
        r.encryption = enc;
        r.findings = assess(&r);
        r
    }

    fn policy_codes(p: &Policy, port: u16, enc: Encryption) -> Vec<&'static str> {
        let mut r = flow_to(port, enc);
        p.apply(&mut r);
        r.findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn plaintext_on_a_tls_port_is_flagged_high_and_first() {
        let p = Policy::default();
        for port in [443, 465, 636, 993, 995, 8443] {
            let codes = policy_codes(&p, port, Encryption::Plaintext);
            assert_eq!(codes, ["PLAINTEXT_ON_TLS_PORT", "PLAINTEXT"], "port {port}");
        }
        let mut r = flow_to(993, Encryption::Plaintext);
        p.apply(&mut r);
        assert_eq!(r.findings[0].severity, Severity::High);
        assert!(
            r.findings[0].message.contains("993 (imaps)"),
            "{}",
            r.findings[0].message
        );
        for enc in [
            Encryption::Starttls,
            Encryption::StarttlsRefused,
            Encryption::StarttlsFailed,
            Encryption::RdpStandard,
            Encryption::LoginOnly,
        ] {
            assert!(
                policy_codes(&p, 465, enc).contains(&"PLAINTEXT_ON_TLS_PORT"),
                "{enc:?}"
            );
        }
    }

    #[test]
    fn tls_other_encryption_and_other_ports_are_not_flagged() {
        let p = Policy::default();
        for enc in [
            Encryption::Tls,
            Encryption::Ssh,
            Encryption::Gssapi,
            Encryption::Unknown,
        ] {
            assert!(
                !policy_codes(&p, 993, enc).contains(&"PLAINTEXT_ON_TLS_PORT"),
                "{enc:?}"
            );
        }
        for port in [25, 143, 587, 8080, 9443] {
            assert!(
                !policy_codes(&p, port, Encryption::Plaintext).contains(&"PLAINTEXT_ON_TLS_PORT")
            );
        }
    }

    #[test]
    fn tls_port_adds_ports() {
        let p = Policy::with_tls_ports(&[9443, 443]);
        assert_eq!(p.tls_ports().iter().filter(|x| **x == 443).count(), 1);
        let codes = policy_codes(&p, 9443, Encryption::Plaintext);
        assert_eq!(codes, ["PLAINTEXT_ON_TLS_PORT", "PLAINTEXT"]);
        let mut r = flow_to(9443, Encryption::Plaintext);
        p.apply(&mut r);
        assert!(r.findings[0].message.contains("9443 (--tls-port)"));
    }

    #[test]
    fn every_iana_tls_port_is_in_the_default_policy() {
        let want = [
            443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 5223, 5986, 6697, 8443,
        ];
        assert_eq!(Policy::default().tls_ports(), want);
    }

    #[test]
    fn fail_on_mixes_severities_and_codes() {
        let f = FailOn::parse(&["critical", "cleartext_auth", " HIGH ", ""]).unwrap();
        assert_eq!(f.severity, Some(Severity::High));
        assert_eq!(f.codes, ["CLEARTEXT_AUTH"]);
        let mk = |code, severity| finding(code, severity, String::new());
        assert!(f.matches(&mk("SSLV2", Severity::Critical)));
        assert!(f.matches(&mk("SSLV3", Severity::High)));
        assert!(!f.matches(&mk("PLAINTEXT", Severity::Medium)));
        let f = FailOn::parse(&["medium", "TLS_1_3"]).unwrap();
        assert!(f.matches(&mk("PLAINTEXT", Severity::Medium)));
        assert!(f.matches(&mk("TLS_1_3", Severity::Info)));
        assert!(!f.matches(&mk("X", Severity::Low)));
        assert!(FailOn::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn fail_on_unknown_word_names_every_valid_one() {
        let e = FailOn::parse(&["high", "nope"]).unwrap_err();
        assert!(e.contains("unknown finding code 'NOPE'"), "{e}");
        for (name, _) in SEVERITIES {
            assert!(e.contains(name), "{e}");
        }
        for code in CODES {
            assert!(e.contains(code), "{e}");
        }
    }

    #[test]
    fn weak_ciphers_are_named() {
        assert_eq!(weak_cipher(0x0005), Some("RC4, RFC 7465")); // TLS_RSA_WITH_RC4_128_SHA
        assert_eq!(weak_cipher(0x0001), Some("no encryption")); // TLS_RSA_WITH_NULL_MD5
        assert_eq!(weak_cipher(0x0003), Some("export-grade")); // TLS_RSA_EXPORT_WITH_RC4_40_MD5
        assert_eq!(weak_cipher(0x0009), Some("single DES")); // TLS_RSA_WITH_DES_CBC_SHA
        assert_eq!(weak_cipher(0x0034), Some("anonymous key exchange")); // TLS_DH_anon_WITH_AES_128_CBC_SHA
        assert_eq!(weak_cipher(0x1301), None);
        assert_eq!(weak_cipher(0xc02f), None);
        assert_eq!(weak_cipher(0x002f), None);
    }
}
