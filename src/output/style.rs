//! How the tables look: colours by severity, and which findings they show.

use crate::record::{Code, Severity};

pub const RESET: &str = "\x1b[0m";
pub const RED: &str = "\x1b[31m";
pub const GREEN: &str = "\x1b[32m";
pub const YELLOW: &str = "\x1b[33m";
pub const CYAN: &str = "\x1b[36m";
pub const BOLD: &str = "\x1b[1m";
pub const BOLD_RED: &str = "\x1b[1m\x1b[31m";

/// The colour of a severity: critical bold red, high red, medium yellow, low cyan.
pub fn severity_color(s: Option<Severity>) -> &'static str {
    match s {
        Some(Severity::Critical) => BOLD_RED,
        Some(Severity::High) => RED,
        Some(Severity::Medium) => YELLOW,
        Some(Severity::Low) => CYAN,
        Some(Severity::Info) | None => "",
    }
}

/// Whether a table shows a finding: info-level codes (`TLS_1_3`) state a fact
/// the version column already shows, so the tables leave them to the JSON, the
/// TSV and the summary's counts.
pub fn shown(code: Code) -> bool {
    code.severity() > Severity::Info
}

/// Wraps `s` in `color` when colour is on (never an empty text).
pub fn paint(on: bool, s: &str, color: &'static str) -> String {
    if on && !color.is_empty() && !s.is_empty() {
        format!("{color}{s}{RESET}")
    } else {
        s.to_string()
    }
}

/// Finding codes about the server's certificates, for the certificate column.
pub const CERT_CODES: &[Code] = &[
    Code::CertExpired,
    Code::CertNotYetValid,
    Code::CertNameMismatch,
    Code::CertSelfSigned,
    Code::WeakSignature,
];
