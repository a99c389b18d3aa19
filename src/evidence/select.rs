//! `--select`: which flows are listed, written out (`--write-flows`) and
//! transcribed (`--transcript selected`).
//!
//! Words, comma-separated: finding codes and severities as `--fail-on` takes them
//! (a flow matches with such a finding, or one of that severity or worse),
//! `encryption=E`, `app=P`, `server=IP[:PORT]` (`[IPv6]:PORT` with a port) and
//! `id=N`. Words of one kind are alternatives; a flow must match every kind given:
//! `high,encryption=plaintext` is "a high or critical finding, and plaintext".

use crate::assess::FailOn;
use crate::record::{Encryption, FlowRecord};
use std::net::IpAddr;

/// `--transcript`: flows by id, and whether every flow `--select` chooses is
/// transcribed too (`--transcript selected`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcripts {
    pub ids: Vec<u64>,
    pub selected: bool,
}

impl Transcripts {
    /// `ID` or `selected`, repeated or comma-separated.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut out = Transcripts::default();
        for item in items {
            match item.as_ref().trim() {
                "" => {}
                "selected" => out.selected = true,
                w => out.ids.push(w.parse().map_err(|_| {
                    format!("--transcript: '{w}' is neither a flow id nor 'selected'")
                })?),
            }
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty() && !self.selected
    }

    /// Whether flow `rec`, selected or not (`selected`), is to be transcribed.
    pub fn wants(&self, rec: &FlowRecord, selected: bool) -> bool {
        self.ids.contains(&rec.id) || (self.selected && selected)
    }
}

/// A parsed `--select`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Select {
    findings: FailOn,
    encryption: Vec<String>,
    app: Vec<String>,
    server: Vec<(IpAddr, Option<u16>)>,
    ids: Vec<u64>,
}

/// Every `encryption` value, for the error message.
const ENCRYPTIONS: &[Encryption] = &[
    Encryption::Tls,
    Encryption::Starttls,
    Encryption::StarttlsRefused,
    Encryption::StarttlsFailed,
    Encryption::Plaintext,
    Encryption::RdpStandard,
    Encryption::LoginOnly,
    Encryption::Ssh,
    Encryption::Gssapi,
    Encryption::Quic,
    Encryption::Dtls,
    Encryption::Unknown,
];

impl Select {
    /// Parses the words of `--select`; an unknown word is an error that says what
    /// the valid ones are.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut out = Select::default();
        let mut codes = Vec::new();
        for item in items {
            let word = item.as_ref().trim();
            if word.is_empty() {
                continue;
            }
            match word.split_once('=') {
                Some(("encryption", v)) => {
                    if !ENCRYPTIONS.iter().any(|e| e.as_str() == v) {
                        let all: Vec<&str> = ENCRYPTIONS.iter().map(|e| e.as_str()).collect();
                        return Err(format!(
                            "--select: unknown encryption '{v}' (one of {})",
                            all.join(", ")
                        ));
                    }
                    out.encryption.push(v.to_string());
                }
                Some(("app", v)) => out.app.push(v.to_ascii_lowercase()),
                Some(("server", v)) => out.server.push(server(v)?),
                Some(("id", v)) => out.ids.push(
                    v.parse()
                        .map_err(|_| format!("--select: id={v} is not a flow id"))?,
                ),
                Some((k, _)) => {
                    return Err(format!(
                        "--select: unknown key '{k}' (encryption=, app=, server=, id=, or finding codes and severities)"
                    ));
                }
                None => codes.push(word.to_string()),
            }
        }
        out.findings = FailOn::parse(&codes).map_err(|e| e.replacen("--fail-on", "--select", 1))?;
        Ok(out)
    }

    /// Whether `rec` is one of the flows this selects.
    pub fn matches(&self, rec: &FlowRecord) -> bool {
        let any = |empty: bool, hit: bool| empty || hit;
        any(
            self.findings.is_empty(),
            rec.findings.iter().any(|f| self.findings.matches(f)),
        ) && any(
            self.encryption.is_empty(),
            self.encryption.iter().any(|e| e == rec.encryption.as_str()),
        ) && any(
            self.app.is_empty(),
            rec.app_protocol
                .as_deref()
                .is_some_and(|a| self.app.iter().any(|x| x == a)),
        ) && any(
            self.server.is_empty(),
            self.server.iter().any(|(ip, port)| {
                *ip == rec.server.ip && port.is_none_or(|p| p == rec.server.port)
            }),
        ) && any(self.ids.is_empty(), self.ids.contains(&rec.id))
    }
}

/// `IP`, `IPv4:PORT` or `[IPv6]:PORT`.
fn server(v: &str) -> Result<(IpAddr, Option<u16>), String> {
    let bad = || format!("--select: server={v} is not IP, IP:PORT or [IPv6]:PORT");
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = host.parse().map_err(|_| bad())?;
    let port = port.parse().map_err(|_| bad())?;
    Ok((ip, Some(port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Code, Endpoint, Finding};
    use crate::time::Timestamp;

    fn flow(enc: Encryption, app: &str, port: u16, codes: &[Code]) -> FlowRecord {
        let ep = |last: u8, port| Endpoint {
            ip: IpAddr::from([10, 0, 0, last]),
            port,
        };
        let mut r = FlowRecord::new(7, Timestamp::default(), ep(1, 40000), ep(2, port));
        r.encryption = enc;
        r.app_protocol = Some(app.to_string());
        r.findings = codes
            .iter()
            .map(|c| Finding::new(*c, String::new()))
            .collect();
        r
    }

    #[test]
    fn kinds_must_all_match_and_words_of_a_kind_are_alternatives() {
        let s = Select::parse(&[
            "high",
            "encryption=plaintext",
            "encryption=starttls-refused",
        ])
        .unwrap();
        assert!(s.matches(&flow(
            Encryption::Plaintext,
            "smtp",
            25,
            &[Code::CleartextAuth]
        )));
        assert!(s.matches(&flow(
            Encryption::StarttlsRefused,
            "smtp",
            25,
            &[Code::StarttlsRefused]
        )));
        assert!(!s.matches(&flow(Encryption::Plaintext, "http", 80, &[Code::Plaintext])));
        assert!(!s.matches(&flow(Encryption::Tls, "tls", 443, &[Code::Sslv3])));
        let s = Select::parse(&["server=10.0.0.2:25", "app=SMTP", "id=7"]).unwrap();
        assert!(s.matches(&flow(Encryption::Starttls, "smtp", 25, &[])));
        assert!(!s.matches(&flow(Encryption::Starttls, "smtp", 587, &[])));
        assert!(Select::parse(&["server=10.0.0.2"]).unwrap().matches(&flow(
            Encryption::Tls,
            "tls",
            443,
            &[]
        )));
        assert!(Select::parse::<&str>(&[]).unwrap().matches(&flow(
            Encryption::Tls,
            "tls",
            443,
            &[]
        )));
    }

    #[test]
    fn unknown_words_are_errors_that_say_what_is_valid() {
        let e = Select::parse(&["encryption=maybe"]).unwrap_err();
        assert!(e.contains("starttls-refused"), "{e}");
        assert!(Select::parse(&["colour=red"]).is_err());
        assert!(
            Select::parse(&["BOGUS"])
                .unwrap_err()
                .starts_with("--select")
        );
        assert!(Select::parse(&["server=nowhere"]).is_err());
        assert!(Select::parse(&["id=x"]).is_err());
        let s = Select::parse(&["server=[::1]:443"]).unwrap();
        assert_eq!(
            s.server,
            vec![(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), Some(443))]
        );
    }
}
