//! Where each finding was seen: the packet an auditor should open to check it.

use crate::record::{Code, FlowRecord};

/// The packet (an ordinal while the flow is analysed; see [`crate::record::Frames`])
/// that shows a finding of `code` on `rec`: the message or event it rests on, or,
/// for what only the end of a flow shows (a handshake that never completed), its
/// last packet.
pub fn frame_of(code: Code, rec: &FlowRecord) -> u64 {
    let f = &rec.frames;
    let alert = |pick: &dyn Fn(&crate::record::Alert) -> bool| {
        rec.tls
            .as_ref()
            .and_then(|t| t.alerts.iter().find(|a| pick(a)))
            .map_or(0, |a| a.frame)
    };
    let fatal = || alert(&|a| a.level == "fatal");
    let found = match code {
        Code::Sslv2
        | Code::Sslv3
        | Code::DeprecatedTls
        | Code::Tls13
        | Code::WeakCipher
        | Code::TlsCompression
        | Code::NoForwardSecrecy
        | Code::InsecureRenegotiation
        | Code::TlsDowngrade => f.server_hello,
        Code::CertExpired
        | Code::CertNotYetValid
        | Code::CertSelfSigned
        | Code::CertNameMismatch
        | Code::WeakSignature
        | Code::WeakKey
        | Code::CertUntrusted
        | Code::CertChainIncomplete
        | Code::CertExpiring => or(f.certificate, f.server_hello),
        Code::ClientDeprecatedTls | Code::ClientWeakCiphers => f.client_hello,
        Code::HandshakeFailed | Code::StarttlsFailed => {
            let plaintext_answer = if rec.has_note(crate::record::Note::ServerPlaintext) {
                f.first_server_payload
            } else {
                0
            };
            or(fatal(), or(plaintext_answer, f.last))
        }
        Code::InappropriateFallback => alert(&|a| a.description == "inappropriate_fallback"),
        Code::Plaintext | Code::PlaintextOnTlsPort => f.first_payload(),
        Code::StarttlsRefused => f.starttls_reply,
        Code::StarttlsNotUsed | Code::StarttlsStripped => f.starttls_offer,
        Code::StarttlsInjection => f.injection,
        Code::StarttlsResponseInjection => f.response_injection,
        Code::ImapPreauth => f.first_server_payload,
        Code::CleartextAuth | Code::WeakAuthHash => f.cleartext_auth,
        Code::RdpStandardSecurity | Code::LoginOnlyEncryption => {
            or(f.starttls_reply, f.first_server_payload)
        }
    };
    or(found, or(f.last, f.first))
}

/// `a` unless it is unset (0), else `b`.
fn or(a: u64, b: u64) -> u64 {
    if a != 0 { a } else { b }
}
