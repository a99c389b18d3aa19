//! The certificate inventory (`--certificates`): one record per distinct
//! certificate (by SHA-256 of its DER) over the listed flows, with the validation
//! results of the chains it came in, the servers it was exchanged with, and how
//! close it is to its end. Every field is a sum, a set, or a min/max over the
//! flows, and the caps keep the smallest keys, so the result does not depend on
//! the order flows arrive in (nor on `--threads`).

use crate::assess::chain::days_left;
use crate::record::{Certificate, Endpoint, FlowRecord, Transport, Validation};
use crate::time::Timestamp;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;

/// Distinct certificates inventoried by default (`--max-certificates`): those with
/// the smallest SHA-256; the flows of the others are counted in `flows_beyond_cap`.
pub const MAX_CERTIFICATES: usize = 100_000;

/// Servers (address, port and SNI) listed per certificate: the first in address
/// order; `servers_capped` says when there were more.
pub const MAX_CERT_SERVERS: usize = 32;

/// A server a certificate was exchanged with, and the name the client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertServer {
    pub transport: Transport,
    pub server: Endpoint,
    pub sni: Option<String>,
}

impl CertServer {
    fn sort_key(&self) -> (IpAddr, u16, bool, Option<&str>) {
        (
            self.server.ip,
            self.server.port,
            self.transport == Transport::Udp,
            self.sni.as_deref(),
        )
    }
}

impl Ord for CertServer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for CertServer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// One distinct certificate: the JSON contract of `--certificates`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertificateRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The certificate's fields, as in a flow's `tls.certificates`.
    #[serde(flatten)]
    pub certificate: Arc<Certificate>,
    /// Who sent it: `server`, `client`, or both.
    pub sent_by: Vec<&'static str>,
    /// Flows by the validation result of the chain it came in (`none` when no
    /// result was made).
    pub validation: BTreeMap<&'static str, u64>,
    /// The servers it was exchanged with (for a client certificate, the server it
    /// was sent to), in address order, at most [`MAX_CERT_SERVERS`].
    pub servers: Vec<CertServer>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub servers_capped: bool,
    pub flows: u64,
    pub first: Timestamp,
    pub last: Timestamp,
    /// Whole days from the last flow's end to `not_after` (negative once expired).
    pub days_to_expiry: Option<i64>,
}

/// What the summary says about the certificate inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CertificateCounts {
    /// Certificate records written.
    pub listed: u64,
    /// Flows counted under certificates past `--max-certificates` (once per certificate).
    pub flows_beyond_cap: u64,
}

const SERVER: u8 = 1;
const CLIENT: u8 = 2;

#[derive(Clone, Debug)]
struct Acc {
    cert: Arc<Certificate>,
    sent_by: u8,
    validation: BTreeMap<&'static str, u64>,
    servers: BTreeSet<CertServer>,
    servers_capped: bool,
    flows: u64,
    first: Timestamp,
    last: Timestamp,
}

impl Acc {
    fn server(&mut self, s: CertServer) {
        if self.servers.contains(&s) {
            return;
        }
        self.servers.insert(s);
        if self.servers.len() > MAX_CERT_SERVERS {
            self.servers.pop_last();
            self.servers_capped = true;
        }
    }
}

/// The certificate inventory of one run.
#[derive(Debug)]
pub struct CertInventory {
    max: usize,
    certs: BTreeMap<String, Acc>,
    flows_beyond_cap: u64,
}

/// One chain of a flow: who sent it and its validation result.
struct Sent<'a> {
    chain: &'a [Arc<Certificate>],
    by: u8,
    validation: Option<Validation>,
}

impl CertInventory {
    pub fn new(max: usize) -> Self {
        CertInventory {
            max: max.max(1),
            certs: BTreeMap::new(),
            flows_beyond_cap: 0,
        }
    }

    /// Folds in one listed flow: every distinct certificate of its chains, once.
    pub fn add(&mut self, rec: &FlowRecord) {
        let Some(tls) = &rec.tls else {
            return;
        };
        let sni = tls.client_hello.as_ref().and_then(|c| c.sni.clone());
        let chains = [
            Sent {
                chain: &tls.certificates,
                by: SERVER,
                validation: tls.validation,
            },
            Sent {
                chain: &tls.client_certificates,
                by: CLIENT,
                validation: tls.client_validation,
            },
        ];
        let mut done: Vec<(&str, u8)> = Vec::new();
        for sent in &chains {
            for cert in sent.chain {
                if done
                    .iter()
                    .any(|(s, by)| *s == cert.sha256 && *by == sent.by)
                {
                    continue;
                }
                let first_time = !done.iter().any(|(s, _)| *s == cert.sha256);
                done.push((&cert.sha256, sent.by));
                self.one(rec, cert, sent, first_time, &sni);
            }
        }
    }

    fn one(
        &mut self,
        rec: &FlowRecord,
        cert: &Arc<Certificate>,
        sent: &Sent<'_>,
        new_flow: bool,
        sni: &Option<String>,
    ) {
        let Some(acc) = self.slot(cert, rec) else {
            if new_flow {
                self.flows_beyond_cap += 1;
            }
            return;
        };
        if new_flow {
            acc.flows += 1;
        }
        acc.sent_by |= sent.by;
        acc.first = acc.first.min(rec.start);
        acc.last = acc.last.max(rec.end);
        let v = sent.validation.map_or("none", Validation::as_str);
        *acc.validation.entry(v).or_default() += 1;
        acc.server(CertServer {
            transport: rec.transport,
            server: rec.server,
            sni: sni.clone(),
        });
    }

    /// The certificate's accumulator; `None` when it is past the cap. Full, a
    /// certificate with a smaller SHA-256 than the largest kept takes its place.
    fn slot(&mut self, cert: &Arc<Certificate>, rec: &FlowRecord) -> Option<&mut Acc> {
        if !self.certs.contains_key(&cert.sha256) {
            if self.certs.len() >= self.max {
                let largest = self.certs.last_key_value().map(|(k, _)| k.clone())?;
                if cert.sha256 > largest {
                    return None;
                }
                if let Some(out) = self.certs.remove(&largest) {
                    self.flows_beyond_cap += out.flows;
                }
            }
            self.certs.insert(
                cert.sha256.clone(),
                Acc {
                    cert: Arc::clone(cert),
                    sent_by: 0,
                    validation: BTreeMap::new(),
                    servers: BTreeSet::new(),
                    servers_capped: false,
                    flows: 0,
                    first: rec.start,
                    last: rec.end,
                },
            );
        }
        self.certs.get_mut(&cert.sha256)
    }

    /// The records, soonest expiry first (then by SHA-256), and the counters.
    pub fn finish(self) -> (Vec<CertificateRecord>, CertificateCounts) {
        let mut list: Vec<CertificateRecord> = self
            .certs
            .into_values()
            .map(|a| {
                let sent_by = [(SERVER, "server"), (CLIENT, "client")]
                    .into_iter()
                    .filter(|(bit, _)| a.sent_by & bit != 0)
                    .map(|(_, s)| s)
                    .collect();
                CertificateRecord {
                    kind: "certificate",
                    days_to_expiry: days_left(&a.cert, a.last.secs),
                    certificate: a.cert,
                    sent_by,
                    validation: a.validation,
                    servers: a.servers.into_iter().collect(),
                    servers_capped: a.servers_capped,
                    flows: a.flows,
                    first: a.first,
                    last: a.last,
                }
            })
            .collect();
        list.sort_by(|a, b| {
            let d = |r: &CertificateRecord| r.days_to_expiry.unwrap_or(i64::MAX);
            d(a).cmp(&d(b))
                .then_with(|| a.certificate.sha256.cmp(&b.certificate.sha256))
        });
        let counts = CertificateCounts {
            listed: list.len() as u64,
            flows_beyond_cap: self.flows_beyond_cap,
        };
        (list, counts)
    }
}

fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

/// The cells of one certificate row.
fn cells(r: &CertificateRecord) -> [String; 9] {
    let c = &r.certificate;
    let key = c.key.as_ref().map_or_else(
        || "-".to_string(),
        |k| match (k.bits, &k.curve) {
            (_, Some(curve)) => format!("{} {curve}", k.kind),
            (Some(b), None) => format!("{} {b}", k.kind),
            (None, None) => k.kind.clone(),
        },
    );
    let mut servers: Vec<String> = r
        .servers
        .iter()
        .map(|s| match &s.sni {
            Some(n) => format!("{} {n}", endpoint(s.server.ip, s.server.port)),
            None => endpoint(s.server.ip, s.server.port),
        })
        .collect();
    if r.servers_capped {
        servers.push("...".into());
    }
    let mut validation: Vec<(&str, u64)> = r.validation.iter().map(|(k, v)| (*k, *v)).collect();
    validation.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    [
        c.not_after
            .as_deref()
            .and_then(|d| d.get(..10))
            .unwrap_or("-")
            .to_string(),
        r.days_to_expiry
            .map_or_else(|| "-".to_string(), |d| d.to_string()),
        c.subject_cn
            .clone()
            .or_else(|| c.subject.clone())
            .unwrap_or_else(|| "(unparsed)".into()),
        c.issuer.clone().unwrap_or_else(|| "-".into()),
        key,
        validation
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.flows.to_string(),
        c.sha256.get(..16).unwrap_or(&c.sha256).to_string(),
        servers.join(", "),
    ]
}

const HEADER: [&str; 9] = [
    "EXPIRES",
    "DAYS",
    "SUBJECT",
    "ISSUER",
    "KEY",
    "VALIDATION",
    "FLOWS",
    "SHA256",
    "SERVERS",
];

/// Writes the certificate table: natural column widths, the subject and issuer
/// shortened (with `~`) to fit `width`; the servers take the rest of the line.
/// `clean` makes a cell safe for a terminal.
pub fn write_table(
    out: &mut dyn Write,
    list: &[CertificateRecord],
    width: Option<usize>,
    clean: &dyn Fn(&str) -> String,
) -> io::Result<()> {
    let mut rows: Vec<[String; 9]> = vec![HEADER.map(String::from)];
    rows.extend(list.iter().map(cells));
    let mut w = [0usize; 9];
    for r in &rows {
        for (x, cell) in w.iter_mut().zip(r) {
            *x = (*x).max(cell.chars().count());
        }
    }
    if let Some(total) = width {
        for (i, floor) in [(3, 16), (2, 16)] {
            let used: usize = w.iter().take(8).sum::<usize>() + 8 + 10;
            if let Some(x) = w.get_mut(i)
                && used > total
            {
                *x = (*x).saturating_sub(used - total).max(floor.min(*x));
            }
        }
    }
    for (n, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (i, (cell, width)) in r.iter().zip(w).enumerate() {
            let cell = clean(cell);
            if i == 8 {
                line.push_str(&cell);
            } else if (i == 1 || i == 6) && n > 0 {
                line.push_str(&format!("{cell:>width$} "));
            } else {
                line.push_str(&fit(&cell, width));
                line.push(' ');
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

fn fit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        format!("{s:<w$}")
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::TlsInfo;

    fn cert(sha: &str, not_after: i64) -> Arc<Certificate> {
        Arc::new(Certificate {
            sha256: sha.to_string(),
            subject_cn: Some(format!("{sha}.example")),
            validity: Some((0, not_after)),
            ..Certificate::default()
        })
    }

    fn flow(id: u64, server: u8, chain: Vec<Arc<Certificate>>, v: Validation) -> FlowRecord {
        let ep = |last: u8, port| Endpoint {
            ip: IpAddr::from([10, 0, 0, last]),
            port,
        };
        let t = Timestamp {
            secs: 1_000_000 + id as i64,
            nanos: 0,
        };
        let mut r = FlowRecord::new(id, t, ep(100, 40000 + id as u16), ep(server, 443));
        r.end = Timestamp {
            secs: t.secs + 5,
            nanos: 0,
        };
        r.tls = Some(TlsInfo {
            certificates: chain,
            validation: Some(v),
            ..TlsInfo::default()
        });
        r
    }

    fn flows() -> Vec<FlowRecord> {
        let (a, b, c) = (
            cert("aa", 2_000_000),
            cert("bb", 9_000_000),
            cert("cc", 1_500_000),
        );
        (0..120u64)
            .map(|i| match i % 3 {
                0 => flow(i, 1, vec![a.clone(), b.clone()], Validation::Ok),
                1 => flow(
                    i,
                    2 + (i % 97) as u8,
                    vec![c.clone(), b.clone(), b.clone()],
                    Validation::UnknownIssuer,
                ),
                _ => flow(i, 1, vec![a.clone()], Validation::IncompleteChain),
            })
            .collect()
    }

    fn build(list: &[FlowRecord], max: usize) -> (Vec<CertificateRecord>, CertificateCounts) {
        let mut inv = CertInventory::new(max);
        for r in list {
            inv.add(r);
        }
        inv.finish()
    }

    #[test]
    fn counts_are_the_flows_grouped_by_certificate() {
        let list = flows();
        let (got, counts) = build(&list, MAX_CERTIFICATES);
        assert_eq!(counts.listed, 3);
        for r in &got {
            let mine: Vec<&FlowRecord> = list
                .iter()
                .filter(|f| {
                    f.tls
                        .as_ref()
                        .unwrap()
                        .certificates
                        .iter()
                        .any(|c| c.sha256 == r.certificate.sha256)
                })
                .collect();
            assert_eq!(r.flows, mine.len() as u64, "{}", r.certificate.sha256);
            assert_eq!(r.validation.values().sum::<u64>(), r.flows);
            assert_eq!(r.first, mine.iter().map(|f| f.start).min().unwrap());
            assert_eq!(r.last, mine.iter().map(|f| f.end).max().unwrap());
            assert_eq!(r.sent_by, ["server"]);
        }
        // Soonest expiry first.
        let order: Vec<&str> = got.iter().map(|r| r.certificate.sha256.as_str()).collect();
        assert_eq!(order, ["cc", "aa", "bb"]);
        let aa = &got[1];
        assert_eq!(aa.validation.get("ok"), Some(&40));
        assert_eq!(aa.validation.get("incomplete_chain"), Some(&40));
        assert_eq!(aa.servers.len(), 1);
        // Last seen: flow 119 at 1_000_119 + 5 s; expiry 2_000_000.
        assert_eq!(aa.days_to_expiry, Some((2_000_000 - 1_000_124) / 86_400));
        let cc = &got[0];
        assert_eq!(cc.servers.len(), MAX_CERT_SERVERS);
        assert!(cc.servers_capped);
        assert_eq!(cc.servers[0].server.ip, IpAddr::from([10, 0, 0, 2]));
    }

    #[test]
    fn any_order_gives_the_same_inventory_and_the_cap_keeps_the_smallest() {
        let mut list = flows();
        let want = build(&list, MAX_CERTIFICATES);
        let capped = build(&list, 2);
        list.reverse();
        assert_eq!(build(&list, MAX_CERTIFICATES), want);
        assert_eq!(build(&list, 2), capped);
        let kept: Vec<&str> = capped
            .0
            .iter()
            .map(|r| r.certificate.sha256.as_str())
            .collect();
        assert_eq!(kept, ["aa", "bb"]);
        // cc is in 40 flows.
        assert_eq!(capped.1.flows_beyond_cap, 40);
    }

    #[test]
    fn record_serializes_the_certificate_fields_flat() {
        let (got, _) = build(&flows(), MAX_CERTIFICATES);
        let v = serde_json::to_value(&got[0]).unwrap();
        assert_eq!(v["type"], "certificate");
        assert_eq!(v["sha256"], "cc");
        assert_eq!(v["subject_cn"], "cc.example");
        assert_eq!(v["validation"]["unknown_issuer"], 40);
        assert_eq!(v["servers"][0]["server"]["port"], 443);
        assert!(v["first"].as_str().unwrap().ends_with('Z'));
        let mut buf = Vec::new();
        write_table(&mut buf, &got, None, &|s| s.to_string()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("EXPIRES"), "{text}");
        assert_eq!(text.lines().count(), 4);
        assert!(text.contains("unknown_issuer 40"), "{text}");
    }
}
