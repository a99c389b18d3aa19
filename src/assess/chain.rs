//! Findings from chain validation: `CERT_UNTRUSTED`, `CERT_CHAIN_INCOMPLETE`, and
//! `CERT_EXPIRING` for a certificate close to its end. The validation itself
//! ([`validate`]) runs once per flow, when it ends, and is kept in the record.

use super::trust::{self, TrustStore, Usage};
use crate::record::{Certificate, Code, Finding, FlowRecord, TlsInfo, Validation};
use std::sync::Arc;

/// Default `--cert-expiry-days`.
pub const CERT_EXPIRY_DAYS: u32 = 30;

const DAY: i64 = 86_400;

/// Judges the flow's certificate chains at its first packet: `tls.validation`
/// (the server's, for server authentication) and `tls.client_validation`.
pub fn validate(rec: &mut FlowRecord, store: &TrustStore) {
    let time = rec.start.secs;
    let Some(tls) = rec.tls.as_mut() else {
        return;
    };
    tls.validation = trust::validate(&tls.certificates, time, Usage::Server, store);
    tls.sct = tls.certificates.first().is_some_and(|c| c.sct)
        || tls.server_hello.as_ref().is_some_and(|sh| sh.sct_extension);
    tls.client_validation = trust::validate(&tls.client_certificates, time, Usage::Client, store);
}

/// The findings of the validation results (`store`: the anchors they were made
/// with) and of certificates ending within `expiry_days`.
pub fn findings(
    rec: &FlowRecord,
    tls: &TlsInfo,
    store: &TrustStore,
    expiry_days: u32,
    out: &mut Vec<Finding>,
) {
    let origin = store.origin();
    if let Some(v) = tls.validation {
        out.extend(chain_finding("server", v, tls.certificates.first(), origin));
    }
    if let Some(v) = tls.client_validation {
        out.extend(chain_finding(
            "client",
            v,
            tls.client_certificates.first(),
            origin,
        ));
    }
    out.extend(expiring(rec, tls, expiry_days));
}

/// `CERT_UNTRUSTED` or `CERT_CHAIN_INCOMPLETE` for a chain that did not validate.
/// The server's dates are `CERT_EXPIRED` and `CERT_NOT_YET_VALID` already, and
/// its self-signed leaf `CERT_SELF_SIGNED`.
fn chain_finding(
    side: &str,
    v: Validation,
    leaf: Option<&Arc<Certificate>>,
    origin: &str,
) -> Option<Finding> {
    let label = leaf.map_or_else(|| "?".to_string(), |c| cert_label(c));
    let code = match v {
        Validation::Ok => return None,
        Validation::Expired | Validation::NotYetValid | Validation::SelfSigned
            if side == "server" =>
        {
            return None;
        }
        Validation::IncompleteChain => Code::CertChainIncomplete,
        _ => Code::CertUntrusted,
    };
    Some(Finding::new(
        code,
        format!(
            "{side} certificate {label}: {} (validation {}; trust anchors: {origin})",
            describe(v),
            v.as_str()
        ),
    ))
}

/// The certificate's name for messages: its subject CN, else its subject.
pub fn cert_label(c: &Certificate) -> String {
    c.subject_cn
        .clone()
        .or_else(|| c.subject.clone())
        .unwrap_or_else(|| format!("sha256 {}", c.sha256))
}

/// A validation result in words.
pub fn describe(v: Validation) -> &'static str {
    match v {
        Validation::Ok => "a valid path to a trust anchor",
        Validation::UnknownIssuer => {
            "the chain ends in a CA whose issuer is neither sent nor trusted"
        }
        Validation::IncompleteChain => {
            "sent without the intermediate CA certificate that issued it"
        }
        Validation::UntrustedRoot => "the chain ends in a self-signed root that is not trusted",
        Validation::SelfSigned => "self-signed and not trusted",
        Validation::Expired => "a certificate on the path had expired",
        Validation::NotYetValid => "a certificate on the path was not yet valid",
        Validation::BadSignature => "a signature on the path does not verify",
        Validation::NotACa => "a certificate used as an issuer is not a CA",
        Validation::CaUsedAsLeaf => "the leaf is a CA certificate",
        Validation::InvalidForServerAuth => "its extended key usage does not allow TLS servers",
        Validation::InvalidForClientAuth => "its extended key usage does not allow TLS clients",
        Validation::PathLenExceeded => "a CA's path length constraint is exceeded",
        Validation::NameConstraints => "a name is outside a CA's name constraints",
        Validation::UnsupportedSignature => {
            "a signature algorithm or key the validator does not accept (MD5, SHA-1, RSA under 2048 bits)"
        }
        Validation::UnsupportedCriticalExtension => "an unknown critical extension",
        Validation::Distrusted => "a distrusted key",
        Validation::Malformed => "a certificate the validator could not decode",
        Validation::TooComplex => "path building gave up",
        Validation::Other => "the validator refused it",
    }
}

/// `CERT_EXPIRING`: the certificate of the server's chain that is valid at the
/// flow's start and ends first, when it ends within `days` days (0: never).
fn expiring(rec: &FlowRecord, tls: &TlsInfo, days: u32) -> Option<Finding> {
    if days == 0 {
        return None;
    }
    let now = rec.start.secs;
    let (i, c, left) = tls
        .certificates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let (nb, na) = c.validity?;
            (nb <= now && now <= na).then_some((i, c, na - now))
        })
        .min_by_key(|(i, _, left)| (*left, *i))?;
    if left > i64::from(days) * DAY {
        return None;
    }
    let which = if i == 0 {
        "server certificate".to_string()
    } else {
        format!("chain certificate {i}")
    };
    Some(Finding::new(
        Code::CertExpiring,
        format!(
            "{which} {} expires in {} days ({}), within --cert-expiry-days {days}",
            cert_label(c),
            left / DAY,
            c.not_after.as_deref().unwrap_or("?")
        ),
    ))
}

/// Whole days from `now` to a certificate's end (negative once expired).
pub fn days_left(cert: &Certificate, now: i64) -> Option<i64> {
    let (_, na) = cert.validity?;
    Some((na - now).div_euclid(DAY))
}
