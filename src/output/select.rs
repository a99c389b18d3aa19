//! Which flows a report lists (`--select`) and in which order (`--sort`). A
//! selection takes the words `--fail-on` takes (finding codes, and severities
//! meaning that one or worse) and `key=value` words: `encryption=`, `app=`,
//! `server=`, `client=` and `id=`. Words of one kind are alternatives; kinds
//! combine: `high,encryption=plaintext,encryption=starttls-refused` keeps the
//! plaintext or refused-upgrade flows with a high or critical finding.

use super::servers::ServerRecord;
use super::{Sink, Summary};
use crate::record::{Code, Encryption, FlowRecord, Severity};
use crate::time::Timestamp;
use std::cmp::Reverse;
use std::io;
use std::net::IpAddr;

/// Every encryption value, in the order the documentation lists them.
pub const ENCRYPTIONS: [Encryption; 12] = [
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

/// The `key=` words `--select` takes besides codes and severities.
pub const KEYS: [&str; 5] = ["encryption=", "app=", "server=", "client=", "id="];

/// An address and optionally a port (`server=`, `client=`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct EndpointMatch {
    ip: Option<IpAddr>,
    port: Option<u16>,
}

impl EndpointMatch {
    /// `IP`, `IP:PORT`, `[IPv6]:PORT`, `[IPv6]` or `:PORT`.
    fn parse(s: &str) -> Option<Self> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Some(EndpointMatch {
                ip: Some(ip),
                port: None,
            });
        }
        if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
            return Some(EndpointMatch {
                ip: Some(sa.ip()),
                port: Some(sa.port()),
            });
        }
        if let Some(port) = s.strip_prefix(':') {
            return Some(EndpointMatch {
                ip: None,
                port: Some(port.parse().ok()?),
            });
        }
        let ip = s.strip_prefix('[')?.strip_suffix(']')?.parse().ok()?;
        Some(EndpointMatch {
            ip: Some(ip),
            port: None,
        })
    }

    fn matches(&self, ep: &crate::record::Endpoint) -> bool {
        self.ip.is_none_or(|ip| ip == ep.ip) && self.port.is_none_or(|p| p == ep.port)
    }
}

/// `--select`: the flows a report lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Select {
    codes: Vec<Code>,
    /// A finding of this severity or worse.
    severity: Option<Severity>,
    encryption: Vec<Encryption>,
    /// Application protocols, lowercase.
    app: Vec<String>,
    server: Vec<EndpointMatch>,
    client: Vec<EndpointMatch>,
    /// Inclusive id ranges.
    ids: Vec<(u64, u64)>,
}

/// `N` or `N-M`.
fn id_range(s: &str) -> Option<(u64, u64)> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            (a <= b).then_some((a, b))
        }
        None => s.trim().parse().ok().map(|n| (n, n)),
    }
}

/// Why a word was not understood, with every word that would be.
fn unknown(word: &str) -> String {
    let sevs: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    let encs: Vec<&str> = ENCRYPTIONS.iter().map(|e| e.as_str()).collect();
    format!(
        "--select: '{word}' is not a finding code, a severity or a KEY=VALUE word \
         (severities: {}; codes: {}; encryption={}; app=PROTOCOL; server=IP[:PORT]; \
         client=IP[:PORT]; id=N[-M])",
        sevs.join(", "),
        codes.join(", "),
        encs.join("|")
    )
}

impl Select {
    /// Parses the words (any case for codes, severities and values); `None` when
    /// there is none.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Option<Self>, String> {
        let mut out = Select::default();
        let mut any = false;
        for item in items {
            let word = item.as_ref().trim();
            if word.is_empty() {
                return Err("--select: an empty word (give codes, severities or KEY=VALUE)".into());
            }
            any = true;
            out.add(word).ok_or_else(|| unknown(word))?;
        }
        Ok(any.then_some(out))
    }

    /// Adds one word; `None` when it is not understood.
    fn add(&mut self, word: &str) -> Option<()> {
        let Some((key, value)) = word.split_once('=') else {
            let lower = word.to_ascii_lowercase();
            if let Some(sev) = Severity::ALL.iter().find(|s| s.as_str() == lower) {
                self.severity = Some(self.severity.map_or(*sev, |s| s.min(*sev)));
            } else {
                self.codes
                    .push(word.to_ascii_uppercase().parse::<Code>().ok()?);
            }
            return Some(());
        };
        let value = value.trim();
        match key.trim().to_ascii_lowercase().as_str() {
            "encryption" => {
                let lower = value.to_ascii_lowercase();
                let e = ENCRYPTIONS.iter().find(|e| e.as_str() == lower)?;
                self.encryption.push(*e);
            }
            "app" if !value.is_empty() => self.app.push(value.to_ascii_lowercase()),
            "server" => self.server.push(EndpointMatch::parse(value)?),
            "client" => self.client.push(EndpointMatch::parse(value)?),
            "id" => self.ids.push(id_range(value)?),
            _ => return None,
        }
        Some(())
    }

    /// Whether the flow is listed.
    pub fn matches(&self, rec: &FlowRecord) -> bool {
        let findings = (self.codes.is_empty() && self.severity.is_none())
            || rec.findings.iter().any(|f| {
                self.codes.contains(&f.code) || self.severity.is_some_and(|s| f.severity() >= s)
            });
        let app = rec
            .app_protocol
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        findings
            && (self.encryption.is_empty() || self.encryption.contains(&rec.encryption))
            && (self.app.is_empty() || self.app.contains(&app))
            && (self.server.is_empty() || self.server.iter().any(|m| m.matches(&rec.server)))
            && (self.client.is_empty() || self.client.iter().any(|m| m.matches(&rec.client)))
            && (self.ids.is_empty() || self.ids.iter().any(|(a, b)| (*a..=*b).contains(&rec.id)))
    }
}

/// `--sort`: the order flows (and servers) are listed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Worst finding first (servers: then most flows), then by start.
    Severity,
    /// By server address and port, then by start.
    Server,
    /// By the first packet (servers: their earliest flow).
    Start,
}

/// A flow's place in `order`: worst first or by server when asked, then by start, then id.
type FlowKey = (
    Option<Reverse<Option<Severity>>>,
    Option<(IpAddr, u16)>,
    Timestamp,
    u64,
);

fn flow_key(order: Order, r: &FlowRecord) -> FlowKey {
    let worst = Reverse(r.findings.iter().map(|f| f.severity()).max());
    let server = (r.server.ip, r.server.port);
    match order {
        Order::Severity => (Some(worst), None, r.start, r.id),
        Order::Server => (None, Some(server), r.start, r.id),
        Order::Start => (None, None, r.start, r.id),
    }
}

/// A server's place in `order`: worst then most flows, or by address, then by
/// its earliest flow.
type ServerKey = (
    Option<Reverse<(Option<Severity>, u64)>>,
    Option<(IpAddr, u16)>,
    Timestamp,
    (IpAddr, u16),
);

fn server_key(order: Order, s: &ServerRecord) -> ServerKey {
    let worst = Reverse((s.worst_severity, s.flows));
    let server = (s.server.ip, s.server.port);
    match order {
        Order::Severity => (Some(worst), None, s.first, server),
        Order::Server => (None, Some(server), s.first, server),
        Order::Start => (None, None, s.first, server),
    }
}

/// Holds every flow until the end, then hands them to the inner sink in order
/// (memory grows with the flows listed).
pub struct Sorted<'a> {
    inner: Box<dyn Sink + 'a>,
    order: Order,
    flows: Vec<FlowRecord>,
}

impl<'a> Sorted<'a> {
    pub fn new(inner: Box<dyn Sink + 'a>, order: Order) -> Self {
        Sorted {
            inner,
            order,
            flows: Vec::new(),
        }
    }

    fn release(&mut self) -> io::Result<()> {
        let mut flows = std::mem::take(&mut self.flows);
        let o = self.order;
        flows.sort_by_cached_key(|r| flow_key(o, r));
        flows.iter().try_for_each(|r| self.inner.flow(r))
    }
}

impl Sink for Sorted<'_> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        self.flows.push(rec.clone());
        Ok(())
    }

    fn servers(&mut self, list: &[ServerRecord]) -> io::Result<()> {
        self.release()?;
        let mut list = list.to_vec();
        let o = self.order;
        list.sort_by_cached_key(|s| server_key(o, s));
        self.inner.servers(&list)
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        self.release()?;
        self.inner.finish(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Endpoint, Finding};

    fn rec(id: u64, server: &str, port: u16, enc: Encryption, codes: &[Code]) -> FlowRecord {
        let ep = |ip: &str, port| Endpoint {
            ip: ip.parse().unwrap(),
            port,
        };
        let start = Timestamp {
            secs: 1000 - id as i64,
            nanos: 0,
        };
        let mut r = FlowRecord::new(
            id,
            start,
            ep("10.0.0.1", 40000 + id as u16),
            ep(server, port),
        );
        r.encryption = enc;
        r.app_protocol = Some(if port == 25 { "SMTP" } else { "tls" }.into());
        r.findings = codes
            .iter()
            .map(|c| Finding::new(*c, String::new()))
            .collect();
        r
    }

    fn sel(words: &[&str]) -> Select {
        Select::parse(words).unwrap().unwrap()
    }

    #[test]
    fn words_of_one_kind_are_alternatives_and_kinds_combine() {
        let a = rec(
            1,
            "192.0.2.1",
            25,
            Encryption::Plaintext,
            &[Code::Plaintext, Code::CleartextAuth],
        );
        let b = rec(2, "2001:db8::1", 443, Encryption::Tls, &[Code::Sslv3]);
        let c = rec(3, "192.0.2.1", 443, Encryption::Tls, &[Code::Tls13]);
        let pick = |words: &[&str]| -> Vec<u64> {
            let s = sel(words);
            [&a, &b, &c]
                .iter()
                .filter(|r| s.matches(r))
                .map(|r| r.id)
                .collect()
        };
        assert_eq!(pick(&["high"]), [1, 2]);
        assert_eq!(pick(&["critical"]), Vec::<u64>::new());
        assert_eq!(pick(&["info"]), [1, 2, 3]);
        assert_eq!(pick(&["tls_1_3", "SSLV3"]), [2, 3]);
        assert_eq!(pick(&["encryption=TLS"]), [2, 3]);
        assert_eq!(pick(&["high", "encryption=tls"]), [2]);
        assert_eq!(pick(&["app=smtp"]), [1]);
        assert_eq!(pick(&["server=192.0.2.1"]), [1, 3]);
        assert_eq!(pick(&["server=192.0.2.1:443"]), [3]);
        assert_eq!(pick(&["server=[2001:db8::1]:443"]), [2]);
        assert_eq!(pick(&["server=2001:db8::1"]), [2]);
        assert_eq!(pick(&["server=[2001:db8::1]"]), [2]);
        assert_eq!(pick(&["server=:25", "server=[2001:db8::1]"]), [1, 2]);
        assert_eq!(pick(&["client=10.0.0.1:40002"]), [2]);
        assert_eq!(pick(&["id=2-3"]), [2, 3]);
        assert_eq!(pick(&["id=3", "id=1"]), [1, 3]);
        assert_eq!(
            pick(&["id=1-3", "encryption=plaintext", "CLEARTEXT_AUTH"]),
            [1]
        );
    }

    #[test]
    fn unknown_and_empty_words_are_usage_errors_naming_the_valid_ones() {
        assert_eq!(Select::parse::<&str>(&[]), Ok(None));
        let e = Select::parse(&["high", "bogus"]).unwrap_err();
        assert!(e.contains("'bogus'"), "{e}");
        for c in Code::ALL {
            assert!(e.contains(c.as_str()), "{e}");
        }
        for en in ENCRYPTIONS {
            assert!(e.contains(en.as_str()), "{e}");
        }
        for bad in [
            "",
            "encryption=bogus",
            "server=host.example",
            "server=1.2.3.4:99999",
            "id=3-1",
            "id=x",
            "app=",
            "colour=red",
        ] {
            assert!(Select::parse(&[bad]).is_err(), "{bad}");
        }
    }

    /// Records what reaches it.
    #[derive(Default)]
    struct Seen {
        flows: Vec<u64>,
        servers: Vec<u16>,
        finished: bool,
    }

    impl Sink for &mut Seen {
        fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
            assert!(!self.finished);
            self.flows.push(rec.id);
            Ok(())
        }
        fn servers(&mut self, list: &[ServerRecord]) -> io::Result<()> {
            self.servers = list.iter().map(|s| s.server.port).collect();
            Ok(())
        }
        fn finish(&mut self, _: &Summary) -> io::Result<()> {
            self.finished = true;
            Ok(())
        }
    }

    #[test]
    fn sorted_sinks_hold_flows_until_the_end_then_list_them_in_order() {
        let recs = [
            rec(1, "192.0.2.9", 443, Encryption::Tls, &[Code::Tls13]),
            rec(
                2,
                "192.0.2.1",
                25,
                Encryption::Plaintext,
                &[Code::Plaintext],
            ),
            rec(3, "192.0.2.1", 443, Encryption::Tls, &[Code::Sslv2]),
            rec(4, "192.0.2.5", 443, Encryption::Tls, &[]),
        ];
        // Start times run backwards with the id (rec's start is 1000 - id).
        for (order, want) in [
            (Order::Severity, [3, 2, 1, 4]),
            (Order::Server, [2, 3, 4, 1]),
            (Order::Start, [4, 3, 2, 1]),
        ] {
            let mut seen = Seen::default();
            let mut inv = crate::output::servers::Inventory::new(10);
            {
                let inner: Box<dyn Sink + '_> = Box::new(&mut seen);
                let mut s = Sorted::new(inner, order);
                for r in &recs {
                    inv.add(r);
                    s.flow(r).unwrap();
                }
                s.servers(&inv.finish().0).unwrap();
                s.finish(&Summary::new(vec![])).unwrap();
            }
            assert_eq!(seen.flows, want, "{order:?}");
            assert!(seen.finished);
            let servers = match order {
                Order::Severity => [443, 25, 443, 443],
                Order::Server => [25, 443, 443, 443],
                Order::Start => [443, 443, 25, 443],
            };
            assert_eq!(seen.servers.len(), 4);
            assert_eq!(seen.servers, servers, "{order:?}");
        }
    }
}
