//! Policy: from a finished flow record to the findings an auditor must see.
//! The only place that decides what is a problem and how bad it is.

use crate::analyzer::certificate;
use crate::record::{Certificate, Encryption, Finding, FlowRecord, Severity, TlsInfo};
use crate::version::Version;

/// Smallest RSA, DSA and finite-field DH size not reported as weak (NIST SP 800-57, 112-bit security).
pub const MIN_RSA_BITS: u32 = 2048;
/// Smallest elliptic-curve size not reported as weak.
pub const MIN_EC_BITS: u32 = 224;

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
    "CERT_EXPIRED",
    "CERT_NOT_YET_VALID",
    "CERT_SELF_SIGNED",
    "CERT_NAME_MISMATCH",
    "WEAK_KEY",
    "WEAK_SIGNATURE",
    "NO_FORWARD_SECRECY",
    "TLS_DOWNGRADE",
    "TLS_COMPRESSION",
    "INSECURE_RENEGOTIATION",
    "INAPPROPRIATE_FALLBACK",
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
        Encryption::Tls | Encryption::Starttls | Encryption::StarttlsFailed
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
            Some(v @ (Version::TLS10 | Version::TLS11)) => out.push(finding(
                "DEPRECATED_TLS",
                Severity::Medium,
                format!("{v} negotiated; deprecated by RFC 8996"),
            )),
            Some(v) if v.is_tls13() => out.push(finding(
                "TLS_1_3",
                Severity::Info,
                format!("{v} negotiated"),
            )),
            _ => {}
        }
        if let Some((sh, why)) = tls
            .server_hello
            .as_ref()
            .and_then(|sh| Some((sh, sh.cipher_id.and_then(crate::cipher::weak)?)))
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
        handshake_findings(tls, &mut out);
        certificate_findings(rec, tls, &mut out);
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

/// The certificate's name for messages: its subject CN, else its subject.
fn cert_label(c: &Certificate) -> String {
    c.subject_cn
        .clone()
        .or_else(|| c.subject.clone())
        .unwrap_or_else(|| format!("sha256 {}", c.sha256))
}

/// Why a key is weak, if it is.
fn weak_key(c: &Certificate) -> Option<String> {
    let k = c.key.as_ref()?;
    let bits = k.bits?;
    let min = match k.kind.as_str() {
        "rsa" | "dsa" => MIN_RSA_BITS,
        "ec" => MIN_EC_BITS,
        _ => return None,
    };
    (bits < min).then(|| format!("{}-bit {} key", bits, k.kind.to_uppercase()))
}

/// Findings from the certificates, evaluated at capture time (the flow's first packet).
fn certificate_findings(rec: &FlowRecord, tls: &TlsInfo, out: &mut Vec<Finding>) {
    let now = rec.start.secs;
    let chain = &tls.certificates;
    for (i, c) in chain.iter().enumerate() {
        let which = if i == 0 {
            "server certificate".to_string()
        } else {
            format!("chain certificate {i}")
        };
        if let Some((not_before, not_after)) = c.validity {
            if now > not_after {
                out.push(finding(
                    "CERT_EXPIRED",
                    Severity::High,
                    format!(
                        "{which} {} expired {} (before the capture)",
                        cert_label(c),
                        c.not_after.as_deref().unwrap_or("?")
                    ),
                ));
            } else if now < not_before {
                out.push(finding(
                    "CERT_NOT_YET_VALID",
                    Severity::High,
                    format!(
                        "{which} {} is valid only from {}",
                        cert_label(c),
                        c.not_before.as_deref().unwrap_or("?")
                    ),
                ));
            }
        }
        if let Some(why) = weak_key(c) {
            out.push(finding(
                "WEAK_KEY",
                Severity::High,
                format!("{which} {} has a {why}", cert_label(c)),
            ));
        }
        if let Some(sig) = c.signature_algorithm.as_deref()
            && !c.self_signed
            && certificate::weak_signature(sig)
        {
            out.push(finding(
                "WEAK_SIGNATURE",
                Severity::Medium,
                format!("{which} {} is signed with {sig}", cert_label(c)),
            ));
        }
    }
    if let Some(leaf) = chain.first() {
        if leaf.self_signed {
            out.push(finding(
                "CERT_SELF_SIGNED",
                Severity::Medium,
                format!("server certificate {} is self-signed", cert_label(leaf)),
            ));
        }
        let sni = tls.client_hello.as_ref().and_then(|c| c.sni.as_deref());
        if let Some(host) = sni
            && leaf.error.is_none()
            && !certificate::covers(leaf, host)
        {
            out.push(finding(
                "CERT_NAME_MISMATCH",
                Severity::High,
                format!(
                    "server certificate {} does not cover the requested name {host}",
                    cert_label(leaf)
                ),
            ));
        }
    }
}

/// Findings from the hellos and the key exchange.
fn handshake_findings(tls: &TlsInfo, out: &mut Vec<Finding>) {
    let (Some(ch), Some(sh)) = (&tls.client_hello, &tls.server_hello) else {
        if tls
            .alerts
            .iter()
            .any(|a| a.description == "inappropriate_fallback")
        {
            out.push(inappropriate_fallback());
        }
        return;
    };
    let offered = ch
        .supported_versions
        .iter()
        .copied()
        .chain(std::iter::once(ch.version))
        .filter(|v| v.is_record_version())
        .max();
    if let (Some(sentinel), Some(offered)) = (tls.downgrade_sentinel, offered)
        && offered >= sentinel
        && tls.version.is_some_and(|v| v < sentinel)
    {
        out.push(finding(
            "TLS_DOWNGRADE",
            Severity::Critical,
            format!(
                "the client offered {offered} and the server supports {sentinel} (downgrade sentinel in its random, RFC 8446 §4.1.3), yet {} was negotiated: the handshake was rewritten in the path",
                tls.version.map_or_else(|| "?".to_string(), |v| v.to_string())
            ),
        ));
    }
    if let Some(m) = sh.compression_method.as_deref().filter(|m| *m != "null") {
        out.push(finding(
            "TLS_COMPRESSION",
            Severity::High,
            format!("server selected TLS compression ({m}): CRIME, RFC 7457 §2.6"),
        ));
    }
    let pre13 = tls
        .version
        .is_some_and(|v| v.is_record_version() && !v.is_tls13());
    if pre13 && !sh.renegotiation_info {
        let who = if ch.renegotiation_info {
            "the client signalled RFC 5746 secure renegotiation, the server did not"
        } else {
            "neither side signalled RFC 5746 secure renegotiation"
        };
        out.push(finding(
            "INSECURE_RENEGOTIATION",
            Severity::Medium,
            format!("{who} (renegotiation attack, CVE-2009-3555)"),
        ));
    }
    if let Some(kx) = tls.key_exchange.as_deref()
        && pre13
        && matches!(kx, "rsa" | "dh" | "ecdh" | "psk" | "rsa_psk" | "krb5")
    {
        out.push(finding(
            "NO_FORWARD_SECRECY",
            Severity::Medium,
            format!(
                "{kx} key exchange: recorded traffic is readable with the server's long-term key"
            ),
        ));
    }
    if let Some(bits) = tls.dh_bits.filter(|&b| b < MIN_RSA_BITS) {
        out.push(finding(
            "WEAK_KEY",
            Severity::High,
            format!("{bits}-bit Diffie-Hellman group (Logjam, RFC 7919)"),
        ));
    }
    if tls
        .alerts
        .iter()
        .any(|a| a.description == "inappropriate_fallback")
    {
        out.push(inappropriate_fallback());
    }
}

fn inappropriate_fallback() -> Finding {
    finding(
        "INAPPROPRIATE_FALLBACK",
        Severity::High,
        "inappropriate_fallback alert: the server refused a client's retry at a lower version (RFC 7507); something made the first attempt fail".into(),
    )
}
