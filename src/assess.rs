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
];

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
