//! Policy: from a finished flow record to the findings an auditor must see.
//! The only place that decides what is a problem and how bad it is.
//!
//! In: a finished [`FlowRecord`] and the run's [`Policy`]. Out: its findings, most
//! severe first. Called once per flow, by `flow::ending`.

mod evidence;

use crate::analyzer::tls::certificate;
use crate::analyzer::tls::cipher;
use crate::record::{
    Certificate, ClientHelloInfo, Code, Encryption, Finding, FlowRecord, Note, Severity, StartTls,
    TlsInfo,
};
use crate::version::Version;
use std::sync::Arc;

pub mod chain;
pub mod client;
pub mod trust;

/// Smallest RSA, DSA and finite-field DH size not reported as weak (NIST SP 800-57, 112-bit security).
pub const MIN_RSA_BITS: u32 = 2048;
/// Smallest elliptic-curve size not reported as weak.
pub const MIN_EC_BITS: u32 = 224;

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
    /// Trust anchors for chain validation (`--ca-file`, `--ca-path`, `--no-default-roots`).
    trust: Arc<trust::TrustStore>,
    /// `CERT_EXPIRING` within this many days of the flow (`--cert-expiry-days`).
    cert_expiry_days: u32,
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
        Policy {
            tls_ports,
            trust: Arc::new(trust::TrustStore::default()),
            cert_expiry_days: chain::CERT_EXPIRY_DAYS,
        }
    }

    /// The same policy with these trust anchors.
    pub fn with_trust(mut self, trust: Arc<trust::TrustStore>) -> Self {
        self.trust = trust;
        self
    }

    /// The same policy with `CERT_EXPIRING` at `days`.
    pub fn with_cert_expiry_days(mut self, days: u32) -> Self {
        self.cert_expiry_days = days;
        self
    }

    pub fn trust(&self) -> &trust::TrustStore {
        &self.trust
    }

    pub fn cert_expiry_days(&self) -> u32 {
        self.cert_expiry_days
    }

    pub fn tls_ports(&self) -> &[u16] {
        &self.tls_ports
    }

    /// `PLAINTEXT_ON_TLS_PORT`: the server port expects TLS from the first byte,
    /// but the flow began in plaintext (upgraded later or not at all). Encrypted
    /// protocols other than TLS (SSH multiplexed on 443) and flows too short to
    /// judge are not flagged.
    fn port_finding(&self, rec: &FlowRecord) -> Option<Finding> {
        let port = rec.server.port;
        if self.tls_ports.binary_search(&port).is_err() || roles_in_doubt(rec) {
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
        ) || plain_so_far(rec);
        if !began_plain && !rec.has_note(Note::ServerPlaintext) {
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
        let how = if rec.has_note(Note::ServerPlaintext) {
            format!("the server answered the ClientHello in plaintext ({spoken})")
        } else {
            format!(
                "the flow began in plaintext ({spoken}, encryption {})",
                rec.encryption.as_str()
            )
        };
        Some(Finding::new(
            Code::PlaintextOnTlsPort,
            format!("port {port} ({service}) expects TLS from the first byte; {how}"),
        ))
    }
}

/// Registered ports (1024 and up) of well-known services; with every port under
/// 1024 and the TLS ports, the ports a client's side of a flow is not expected on.
const SERVICE_PORTS: &[u16] = &[
    1080, 1194, 1433, 1521, 1723, 1883, 2049, 2525, 3128, 3268, 3269, 3306, 3389, 4190, 5060, 5222,
    5269, 5432, 5671, 5672, 5900, 6379, 6443, 6667, 8008, 8080, 8883, 8888, 9092, 9200, 11211,
    27017,
];

/// A port a server listens on: under 1024, a TLS port, or in [`SERVICE_PORTS`].
fn service_port(port: u16) -> bool {
    port < 1024 || TLS_PORTS.iter().any(|(p, _)| *p == port) || SERVICE_PORTS.contains(&port)
}

/// The roles were guessed from the port numbers alone (no SYN, no content said
/// which side is which), and the client's port is a service port too: which of
/// the two ports is the server's is a guess a port policy cannot rest on (an NFS
/// client on reserved port 993 talking to 2049 is not plaintext IMAPS).
fn roles_in_doubt(rec: &FlowRecord) -> bool {
    rec.has_note(Note::RolesFromPorts)
        && !rec.has_note(Note::RolesFromContent)
        && !rec.has_note(Note::ServerPlaintext)
        && service_port(rec.client.port)
}

/// A record closed before the connection was, whose plaintext dialogue could
/// still have upgraded (encryption `unknown`, an application protocol named,
/// bytes both ways): the flow began in plaintext whatever came next.
fn plain_so_far(rec: &FlowRecord) -> bool {
    rec.incomplete
        && rec.encryption == Encryption::Unknown
        && rec.bytes.client > 0
        && rec.bytes.server > 0
        && rec.app_protocol.as_deref().is_some_and(|a| a != "tls")
}

/// `--fail-on`: finding codes, and a severity at or above which any finding counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailOn {
    pub codes: Vec<Code>,
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
            if let Some(sev) = Severity::ALL.iter().find(|s| s.as_str() == lower) {
                out.severity = Some(out.severity.map_or(*sev, |s| s.min(*sev)));
                continue;
            }
            let upper = word.to_ascii_uppercase();
            match upper.parse::<Code>() {
                Ok(code) if !out.codes.contains(&code) => out.codes.push(code),
                Ok(_) => {}
                Err(_) => {
                    let sevs: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
                    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
                    return Err(format!(
                        "--fail-on: unknown finding code '{upper}' (severities: {}; codes: {})",
                        sevs.join(", "),
                        codes.join(", ")
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
        self.severity.is_some_and(|s| f.severity() >= s) || self.codes.contains(&f.code)
    }
}

/// Findings for one flow, most severe first.
pub fn assess(rec: &FlowRecord, policy: &Policy) -> Vec<Finding> {
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
        tls_findings(rec, tls, &mut out);
        chain::findings(
            rec,
            tls,
            policy.trust(),
            policy.cert_expiry_days(),
            &mut out,
        );
        client::findings(tls, &mut out);
    }
    if let Some(st) = &rec.starttls {
        starttls_findings(rec, st, &mut out);
    }
    cleartext_auth_findings(rec, &mut out);
    out.extend(encryption_finding(rec));
    out.extend(policy.port_finding(rec));
    let mut out = once_per_code(out);
    out.sort_by_key(|f| std::cmp::Reverse(f.severity()));
    for f in &mut out {
        f.frame = evidence::frame_of(f.code, rec);
    }
    out
}

/// Each code once per flow: a code found several times (one weak key per
/// certificate, a weak certificate key and a weak key exchange, two credential
/// exchanges) becomes one finding whose message names every occurrence, in
/// the order they were found.
fn once_per_code(findings: Vec<Finding>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::with_capacity(findings.len());
    for f in findings {
        match out.iter_mut().find(|g| g.code == f.code) {
            Some(g) if !g.message.split("; ").any(|m| m == f.message) => {
                g.message.push_str("; ");
                g.message.push_str(&f.message);
            }
            Some(_) => {}
            None => out.push(f),
        }
    }
    out
}

/// Findings of a flow that used TLS: the negotiated version and cipher, the
/// handshake, the certificates, and a handshake that did not complete.
fn tls_findings(rec: &FlowRecord, tls: &TlsInfo, out: &mut Vec<Finding>) {
    out.extend(version_finding(tls.version));
    out.extend(weak_cipher_finding(tls));
    handshake_findings(tls, out);
    certificate_findings(rec, tls, out);
    out.extend(handshake_failed(rec, tls));
}

/// The negotiated protocol version, when it is worth a finding.
fn version_finding(version: Option<Version>) -> Option<Finding> {
    match version {
        Some(Version::SSLV2) => Some(Finding::new(
            Code::Sslv2,
            "SSLv2 negotiated; prohibited by RFC 6176".into(),
        )),
        Some(Version::SSLV3) => Some(Finding::new(
            Code::Sslv3,
            "SSLv3 negotiated; prohibited by RFC 7568".into(),
        )),
        Some(v @ (Version::TLS10 | Version::TLS11 | Version::DTLS10)) => Some(Finding::new(
            Code::DeprecatedTls,
            format!("{v} negotiated; deprecated by RFC 8996"),
        )),
        Some(v) if v.is_tls13() || v == Version::DTLS13 => {
            Some(Finding::new(Code::Tls13, format!("{v} negotiated")))
        }
        _ => None,
    }
}

/// `WEAK_CIPHER`: the server selected a suite [`cipher::weak`] names a reason for.
fn weak_cipher_finding(tls: &TlsInfo) -> Option<Finding> {
    let sh = tls.server_hello.as_ref()?;
    let why = sh.cipher_id.and_then(cipher::weak)?;
    Some(Finding::new(
        Code::WeakCipher,
        format!(
            "server selected {} ({why})",
            sh.cipher_suite.as_deref().unwrap_or("?")
        ),
    ))
}

/// `HANDSHAKE_FAILED`: a fatal alert before the handshake completed, or a
/// ClientHello that got no ServerHello (a plaintext answer, or none).
fn handshake_failed(rec: &FlowRecord, tls: &TlsInfo) -> Option<Finding> {
    let fatal = tls.alerts.iter().find(|a| a.level == "fatal");
    let started = tls.client_hello.is_some() || tls.server_hello.is_some();
    let message = if let Some(a) = fatal.filter(|_| !tls.established) {
        format!("fatal alert {} from the {:?} side", a.description, a.from).to_lowercase()
    } else if started && tls.server_hello.is_none() && rec.has_note(Note::ServerPlaintext) {
        "the server answered the ClientHello in plaintext, not TLS".into()
    } else if started && tls.server_hello.is_none() && !rec.incomplete {
        // A record closed before the connection was says nothing of what came next.
        "ClientHello without a ServerHello before the flow ended".into()
    } else {
        return None;
    };
    Some(Finding::new(Code::HandshakeFailed, message))
}

/// Findings from a STARTTLS exchange: a stripped or refused upgrade, plaintext
/// injected around it, an upgrade not used or not completed, IMAP PREAUTH.
fn starttls_findings(rec: &FlowRecord, st: &StartTls, out: &mut Vec<Finding>) {
    if st.stripped.is_some() {
        out.push(Finding::new(
            Code::StarttlsStripped,
            format!(
                "STARTTLS capability masked or removed: {}",
                st.stripped.as_deref().unwrap_or_default()
            ),
        ));
    }
    if let Some(junk) = &st.injection {
        out.push(Finding::new(
            Code::StarttlsInjection,
            format!("client sent plaintext after its STARTTLS command: {junk}"),
        ));
    }
    if let Some(junk) = &st.response_injection {
        out.push(Finding::new(
            Code::StarttlsResponseInjection,
            format!("server sent plaintext after its go-ahead: {junk}"),
        ));
    }
    if st.requested && !st.accepted && rec.encryption == Encryption::StarttlsRefused {
        out.push(Finding::new(
            Code::StarttlsRefused,
            format!(
                "server refused the upgrade: {}",
                st.reply.as_deref().unwrap_or("(no reply line)")
            ),
        ));
    }
    if st.offered && !st.requested && rec.encryption == Encryption::Plaintext {
        out.push(Finding::new(
            Code::StarttlsNotUsed,
            "server offered STARTTLS; the client went on in plaintext".into(),
        ));
    }
    if rec.encryption == Encryption::StarttlsFailed {
        out.push(Finding::new(
            Code::StarttlsFailed,
            "server accepted the upgrade but no TLS handshake completed".into(),
        ));
    }
    if st.preauth {
        out.push(Finding::new(
            Code::ImapPreauth,
            "IMAP PREAUTH greeting: the session is authenticated before any chance to upgrade"
                .into(),
        ));
    }
}

/// `CLEARTEXT_AUTH` for each credential exchange seen before TLS (one finding
/// per flow names them all: [`once_per_code`]). A password sent as a salted
/// hash is `WEAK_AUTH_HASH`, medium: whoever sees it can test guesses offline
/// at hash speed, but cannot read the password.
fn cleartext_auth_findings(rec: &FlowRecord, out: &mut Vec<Finding>) {
    for a in &rec.cleartext_auth {
        let who = a
            .user
            .as_deref()
            .map(|u| format!(" for user {u}"))
            .unwrap_or_default();
        out.push(if a.hashed {
            Finding::new(
                Code::WeakAuthHash,
                format!(
                    "password hash sent before TLS ({}{who}): open to offline guessing",
                    a.mechanism
                ),
            )
        } else {
            Finding::new(
                Code::CleartextAuth,
                format!("credentials sent before TLS ({}{who})", a.mechanism),
            )
        });
    }
}

/// The flow's encryption outcome, when it is a problem in itself (no TLS, or
/// a protection weaker than TLS).
fn encryption_finding(rec: &FlowRecord) -> Option<Finding> {
    match rec.encryption {
        Encryption::Plaintext => Some(Finding::new(
            Code::Plaintext,
            format!(
                "no TLS: {} bytes client to server, {} bytes server to client in the clear",
                rec.bytes.client, rec.bytes.server
            ),
        )),
        Encryption::RdpStandard => Some(Finding::new(
            Code::RdpStandardSecurity,
            "RDP Standard Security (RC4, no server authentication) instead of TLS".into(),
        )),
        Encryption::LoginOnly => Some(Finding::new(
            Code::LoginOnlyEncryption,
            "TLS protected the login packet only; the session continued in plaintext".into(),
        )),
        _ => None,
    }
}

use chain::cert_label;

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
                out.push(Finding::new(
                    Code::CertExpired,
                    format!(
                        "{which} {} expired {} (before the capture)",
                        cert_label(c),
                        c.not_after.as_deref().unwrap_or("?")
                    ),
                ));
            } else if now < not_before {
                out.push(Finding::new(
                    Code::CertNotYetValid,
                    format!(
                        "{which} {} is valid only from {}",
                        cert_label(c),
                        c.not_before.as_deref().unwrap_or("?")
                    ),
                ));
            }
        }
        if let Some(why) = weak_key(c) {
            out.push(Finding::new(
                Code::WeakKey,
                format!("{which} {} has a {why}", cert_label(c)),
            ));
        }
        if let Some(sig) = c.signature_algorithm.as_deref()
            && !c.self_signed
            && certificate::weak_signature(sig)
        {
            out.push(Finding::new(
                Code::WeakSignature,
                format!("{which} {} is signed with {sig}", cert_label(c)),
            ));
        }
    }
    if let Some(leaf) = chain.first() {
        if leaf.self_signed {
            out.push(Finding::new(
                Code::CertSelfSigned,
                format!("server certificate {} is self-signed", cert_label(leaf)),
            ));
        }
        let sni = tls.client_hello.as_ref().and_then(|c| c.sni.as_deref());
        if let Some(host) = sni
            && leaf.error.is_none()
            && !certificate::covers(leaf, host)
        {
            out.push(Finding::new(
                Code::CertNameMismatch,
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
        out.extend(fallback_finding(tls));
        return;
    };
    out.extend(downgrade_finding(tls, ch));
    if let Some(m) = sh.compression_method.as_deref().filter(|m| *m != "null") {
        out.push(Finding::new(
            Code::TlsCompression,
            format!("server selected TLS compression ({m}): CRIME, RFC 7457 §2.6"),
        ));
    }
    let pre13 = tls
        .version
        .is_some_and(|v| v.is_record_version() && !v.is_tls13());
    if pre13 && !sh.renegotiation_info {
        out.push(insecure_renegotiation(ch));
    }
    key_exchange_findings(tls, pre13, out);
    out.extend(fallback_finding(tls));
}

/// `TLS_DOWNGRADE`: the server's random carries the downgrade sentinel of a
/// version the client offered, yet an older one was negotiated.
fn downgrade_finding(tls: &TlsInfo, ch: &ClientHelloInfo) -> Option<Finding> {
    let offered = ch
        .supported_versions
        .iter()
        .copied()
        .chain(std::iter::once(ch.version))
        .filter(|v| v.is_record_version())
        .max();
    let (Some(sentinel), Some(offered)) = (tls.downgrade_sentinel, offered) else {
        return None;
    };
    let negotiated = tls.version.filter(|&v| v < sentinel)?;
    if offered < sentinel {
        return None;
    }
    Some(Finding::new(
        Code::TlsDowngrade,
        format!(
            "the client offered {offered} and the server supports {sentinel} (downgrade sentinel in its random, RFC 8446 §4.1.3), yet {negotiated} was negotiated: the handshake was rewritten in the path"
        ),
    ))
}

/// `INSECURE_RENEGOTIATION`, for a server that did not signal RFC 5746.
fn insecure_renegotiation(ch: &ClientHelloInfo) -> Finding {
    let who = if ch.renegotiation_info {
        "the client signalled RFC 5746 secure renegotiation, the server did not"
    } else {
        "neither side signalled RFC 5746 secure renegotiation"
    };
    Finding::new(
        Code::InsecureRenegotiation,
        format!("{who} (renegotiation attack, CVE-2009-3555)"),
    )
}

/// Findings from the key exchange: no forward secrecy (before TLS 1.3), a small
/// Diffie-Hellman group, a small curve.
fn key_exchange_findings(tls: &TlsInfo, pre13: bool, out: &mut Vec<Finding>) {
    if let Some(kx) = tls.key_exchange.as_deref()
        && pre13
        && matches!(kx, "rsa" | "dh" | "ecdh" | "psk" | "rsa_psk" | "krb5")
    {
        out.push(Finding::new(
            Code::NoForwardSecrecy,
            format!(
                "{kx} key exchange: recorded traffic is readable with the server's long-term key"
            ),
        ));
    }
    if let Some(bits) = tls.dh_bits.filter(|&b| b < MIN_RSA_BITS) {
        out.push(Finding::new(
            Code::WeakKey,
            format!("{bits}-bit Diffie-Hellman group (Logjam, RFC 7919)"),
        ));
    }
    if let Some((group, bits)) = weak_curve(tls) {
        out.push(Finding::new(
            Code::WeakKey,
            format!(
                "key exchange over {group}, a {bits}-bit curve (under {MIN_EC_BITS} bits; RFC 8422 deprecates it)"
            ),
        ));
    }
}

/// `INAPPROPRIATE_FALLBACK`, when an alert of that name was seen.
fn fallback_finding(tls: &TlsInfo) -> Option<Finding> {
    tls.alerts
        .iter()
        .any(|a| a.description == "inappropriate_fallback")
        .then(inappropriate_fallback)
}

/// The key exchange's elliptic curve and its size, when under [`MIN_EC_BITS`].
fn weak_curve(tls: &TlsInfo) -> Option<(&str, u32)> {
    let group = tls.group.as_deref()?;
    // Finite-field groups are 2048 bits and more: never under the EC minimum.
    let bits = cipher::group_bits(cipher::group_id(group)?)?;
    (bits < MIN_EC_BITS).then_some((group, bits))
}

fn inappropriate_fallback() -> Finding {
    Finding::new(
        Code::InappropriateFallback,
        "inappropriate_fallback alert: the server refused a client's retry at a lower version (RFC 7507); something made the first attempt fail".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::record::Endpoint;
    use crate::time::Timestamp;

    fn flow_to(port: u16, enc: Encryption) -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([192, 0, 2, 1]),
            port,
        };
        let mut r = FlowRecord::new(1, Timestamp::default(), ep(40000), ep(port));
        r.encryption = enc;
        r.findings = assess(&r, &Default::default());
        r
    }

    fn policy_codes(p: &Policy, port: u16, enc: Encryption) -> Vec<Code> {
        let mut r = flow_to(port, enc);
        r.findings = assess(&r, p);
        r.findings.iter().map(|f| f.code).collect()
    }

    /// WEAK_KEY for a key exchange over a curve under 224 bits (RFC 8422's
    /// deprecated ones), not for the current curves, ffdhe or an unknown group.
    #[test]
    fn a_key_exchange_over_a_small_curve_is_a_weak_key() {
        let weak_key = |group: &str| {
            let mut r = flow_to(443, Encryption::Tls);
            let tls = r.tls_mut();
            tls.version = Some(Version::TLS12);
            tls.client_hello = Some(Default::default());
            tls.server_hello = Some(Default::default());
            tls.group = Some(group.to_string().into());
            assess(&r, &Default::default())
                .into_iter()
                .find(|f| f.code == Code::WeakKey)
                .map(|f| f.message)
        };
        for (group, bits) in [("secp192r1", 192), ("sect163k1", 163), ("secp160r1", 160)] {
            let msg = weak_key(group).unwrap_or_default();
            assert!(
                msg.contains(&format!("over {group}, a {bits}-bit curve")),
                "{group}: {msg}"
            );
        }
        for group in [
            "secp224r1",
            "secp256r1",
            "x25519",
            "x448",
            "ffdhe2048",
            "X25519MLKEM768",
            "0x1234",
        ] {
            assert_eq!(weak_key(group), None, "{group}");
        }
    }

    #[test]
    fn plaintext_on_a_tls_port_is_flagged_high_and_first() {
        let p = Policy::default();
        for port in [443, 465, 636, 993, 995, 8443] {
            let codes = policy_codes(&p, port, Encryption::Plaintext);
            assert_eq!(
                codes,
                [Code::PlaintextOnTlsPort, Code::Plaintext],
                "port {port}"
            );
        }
        let mut r = flow_to(993, Encryption::Plaintext);
        r.findings = assess(&r, &p);
        assert_eq!(r.findings[0].severity(), Severity::High);
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
                policy_codes(&p, 465, enc).contains(&Code::PlaintextOnTlsPort),
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
                !policy_codes(&p, 993, enc).contains(&Code::PlaintextOnTlsPort),
                "{enc:?}"
            );
        }
        for port in [25, 143, 587, 8080, 9443] {
            assert!(
                !policy_codes(&p, port, Encryption::Plaintext).contains(&Code::PlaintextOnTlsPort)
            );
        }
    }

    /// Without a SYN and with two service ports, which one is the server's is a
    /// guess: no port-policy finding (an NFS client on 993 talking to 2049).
    /// Roles told by content, or a client on an ephemeral port, keep it.
    #[test]
    fn roles_guessed_between_two_service_ports_raise_no_port_finding() {
        let p = Policy::default();
        let flagged = |client_port: u16, notes: &[Note]| {
            let mut r = flow_to(993, Encryption::Plaintext);
            r.client.port = client_port;
            for n in notes {
                r.note(*n);
            }
            assess(&r, &p)
                .iter()
                .any(|f| f.code == Code::PlaintextOnTlsPort)
        };
        for client in [2049, 111, 5432, 443] {
            assert!(!flagged(client, &[Note::RolesFromPorts]), "{client}");
            assert!(flagged(client, &[]), "{client}: roles from the SYN");
            let content = [Note::RolesFromPorts, Note::RolesFromContent];
            assert!(flagged(client, &content), "{client}: roles from content");
        }
        assert!(flagged(40000, &[Note::RolesFromPorts]));
        assert!(flagged(2050, &[Note::RolesFromPorts]));
    }

    /// A record closed before the connection was, its plaintext dialogue not yet
    /// settled (`unknown`), still began in plaintext on a TLS port.
    #[test]
    fn a_plaintext_dialogue_cut_short_on_a_tls_port_is_flagged() {
        let p = Policy::default();
        let codes = |incomplete: bool, app: Option<&str>, server_bytes: u64| {
            let mut r = flow_to(465, Encryption::Unknown);
            if incomplete {
                r.mark_incomplete();
            }
            r.app_protocol = app.map(str::to_string);
            r.bytes = crate::record::PerDir {
                client: 20,
                server: server_bytes,
            };
            assess(&r, &p).iter().map(|f| f.code).collect::<Vec<_>>()
        };
        assert_eq!(codes(true, Some("smtp"), 40), [Code::PlaintextOnTlsPort]);
        assert!(codes(false, Some("smtp"), 40).is_empty());
        assert!(codes(true, None, 40).is_empty());
        assert!(codes(true, Some("tls"), 40).is_empty());
        assert!(codes(true, Some("smtp"), 0).is_empty());
    }

    /// A ClientHello with no ServerHello is a failure when the connection ended
    /// there, not when the record was closed before it did; a fatal alert or a
    /// plaintext answer is a failure either way.
    #[test]
    fn a_missing_server_hello_fails_only_a_connection_that_ended() {
        let p = Policy::default();
        let failed = |incomplete: bool, edit: &dyn Fn(&mut FlowRecord)| {
            let mut r = flow_to(443, Encryption::Tls);
            r.tls_mut().client_hello = Some(Default::default());
            if incomplete {
                r.mark_incomplete();
            }
            edit(&mut r);
            assess(&r, &p)
                .iter()
                .any(|f| f.code == Code::HandshakeFailed)
        };
        assert!(failed(false, &|_| {}));
        assert!(!failed(true, &|_| {}));
        let alert = |r: &mut FlowRecord| {
            r.tls_mut().alerts.push(crate::record::Alert::new(
                crate::record::Dir::Server,
                2,
                "handshake_failure".into(),
                0,
            ))
        };
        assert!(failed(true, &alert));
        assert!(failed(true, &|r| r.note(Note::ServerPlaintext)));
        for enc in [Encryption::Starttls, Encryption::Quic, Encryption::Dtls] {
            let mut r = flow_to(443, enc);
            r.tls_mut().client_hello = Some(Default::default());
            r.mark_incomplete();
            let codes = assess(&r, &p);
            assert!(
                codes.iter().all(|f| f.code != Code::HandshakeFailed),
                "{enc:?}"
            );
        }
    }

    #[test]
    fn tls_port_adds_ports() {
        let p = Policy::with_tls_ports(&[9443, 443]);
        assert_eq!(p.tls_ports().iter().filter(|x| **x == 443).count(), 1);
        let codes = policy_codes(&p, 9443, Encryption::Plaintext);
        assert_eq!(codes, [Code::PlaintextOnTlsPort, Code::Plaintext]);
        let mut r = flow_to(9443, Encryption::Plaintext);
        r.findings = assess(&r, &p);
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
        assert_eq!(f.codes, [Code::CleartextAuth]);
        let mk = |code| Finding::new(code, String::new());
        assert!(f.matches(&mk(Code::Sslv2)));
        assert!(f.matches(&mk(Code::Sslv3)));
        assert!(!f.matches(&mk(Code::Plaintext)));
        let f = FailOn::parse(&["medium", "TLS_1_3"]).unwrap();
        assert!(f.matches(&mk(Code::Plaintext)));
        assert!(f.matches(&mk(Code::Tls13)));
        let f = FailOn::parse(&["tls_1_3", "TLS_1_3", "weak_key"]).unwrap();
        assert_eq!(f.codes, [Code::Tls13, Code::WeakKey]);
        assert!(!f.matches(&mk(Code::Sslv2)));
        assert!(FailOn::parse::<&str>(&[]).unwrap().is_empty());
    }

    #[test]
    fn fail_on_unknown_word_names_every_valid_one() {
        let e = FailOn::parse(&["high", "nope"]).unwrap_err();
        assert!(e.contains("unknown finding code 'NOPE'"), "{e}");
        for s in Severity::ALL {
            assert!(e.contains(s.as_str()), "{e}");
        }
        for code in Code::ALL {
            assert!(e.contains(code.as_str()), "{e}");
        }
    }
}
