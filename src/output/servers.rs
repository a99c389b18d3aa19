//! The per-server inventory (`--servers`): finished flow records folded into one
//! record per server endpoint. Every count is a sum, a set or a min/max over the
//! flows, so the fold does not depend on the order records arrive in, and two
//! inventories built apart (one per worker thread) `merge` into the same result.
//! Output order is decided at the end: worst finding first, then most flows.

use crate::record::negotiated_version;
use crate::record::{Endpoint, Finding, FlowRecord, Severity, Transport};
use crate::time::Timestamp;
use crate::version::Version;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Servers inventoried by default (`--max-servers`). Flows to servers beyond it are
/// counted in `flows_beyond_cap`, not inventoried.
pub const MAX_SERVERS: usize = 100_000;

/// Distinct client addresses remembered over all servers (tens of MB at most).
/// Past it a server's `clients` is a lower bound and says so (`clients_capped`).
pub const MAX_CLIENT_ADDRS: usize = 1 << 20;

/// Distinct names kept per counted field of one server (app protocols, versions,
/// cipher suites, certificates); further names are counted under [`OTHER`].
pub const MAX_NAMES: usize = 32;

/// The bucket for names past [`MAX_NAMES`].
pub const OTHER: &str = "(other)";

/// A certificate a server presented, with the flows it was seen on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertificateSeen {
    pub sha256: String,
    pub subject_cn: Option<String>,
    pub not_after: Option<String>,
    /// Whole days from the server's last flow to `not_after` (negative once expired).
    pub days_left: Option<i64>,
    pub flows: u64,
}

/// What the summary says about the inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerCounts {
    /// Server records written.
    pub listed: u64,
    /// Listed flows to servers past `--max-servers`, in no server record.
    pub flows_beyond_cap: u64,
    /// Servers whose `clients` is a lower bound (the client address cap was hit).
    pub clients_capped: u64,
}

/// Where to start looking at a server's flows: the flow with its worst finding
/// (the earliest such flow), at the packet of that finding; without findings,
/// its earliest flow at its first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LookAt {
    pub id: u64,
    pub input: usize,
    pub frame: u64,
    #[serde(skip)]
    worst: Option<Severity>,
}

impl LookAt {
    fn of(rec: &FlowRecord) -> Self {
        // Findings are most severe first.
        match rec.findings.first() {
            Some(f) => LookAt {
                id: rec.id,
                input: f.input.unwrap_or(rec.input),
                frame: f.frame,
                worst: Some(f.severity()),
            },
            None => LookAt {
                id: rec.id,
                input: rec.input,
                frame: rec.frames.first,
                worst: None,
            },
        }
    }

    /// The one to look at first of two: the worse finding, then the earlier flow.
    fn first_of(self, other: LookAt) -> LookAt {
        let key = |l: &LookAt| (std::cmp::Reverse(l.worst), l.id);
        if key(&other) < key(&self) {
            other
        } else {
            self
        }
    }
}

/// One server endpoint's record: the JSON contract of `--servers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub transport: Transport,
    pub server: Endpoint,
    /// Application protocols seen, sorted.
    pub app_protocols: Vec<String>,
    pub flows: u64,
    /// Distinct client addresses.
    pub clients: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clients_capped: bool,
    pub by_encryption: BTreeMap<String, u64>,
    /// TLS-protected flows by negotiated version (`unknown` without a ServerHello).
    pub versions: BTreeMap<String, u64>,
    /// Flows by the cipher suite the server selected.
    pub cipher_suites: BTreeMap<String, u64>,
    /// Most flows first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateSeen>,
    /// Flows carrying each finding code.
    pub findings: BTreeMap<String, u64>,
    pub worst_severity: Option<Severity>,
    pub first: Timestamp,
    pub last: Timestamp,
    /// The flow and packet to open first (see [`LookAt`]).
    pub look_at: Option<LookAt>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    transport: Transport,
    ip: IpAddr,
    port: u16,
}

impl Key {
    fn sort_key(&self) -> (IpAddr, u16, u8) {
        let t = match self.transport {
            Transport::Tcp => 0,
            Transport::Udp => 1,
        };
        (self.ip, self.port, t)
    }
}

#[derive(Clone, Debug)]
struct CertAcc {
    subject_cn: Option<String>,
    not_after: Option<String>,
    /// `not_after` as Unix seconds.
    expires: Option<i64>,
    flows: u64,
}

/// A certificate key, or the bucket for certificates past [`MAX_NAMES`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Name<K> {
    Is(K),
    Other,
}

/// What a counted name counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    App,
    Encryption,
    /// Name ids are the version number; [`UNKNOWN_VERSION`] without a ServerHello.
    Version,
    Cipher,
    Finding,
}

/// The name id of the bucket for names past [`MAX_NAMES`].
const OTHER_ID: u32 = u32::MAX;

/// The `Field::Version` id of a TLS flow without a ServerHello.
const UNKNOWN_VERSION: u32 = 1 << 16;

/// Names (protocols, suites, codes) stored once per inventory and referred to by
/// number, so a server's counts hold no strings of their own.
#[derive(Debug, Default)]
struct Names {
    list: Vec<Box<str>>,
    ids: FxHashMap<Box<str>, u32>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.list.len()).unwrap_or(OTHER_ID);
        self.list.push(name.into());
        self.ids.insert(name.into(), id);
        id
    }

    fn name(&self, field: Field, id: u32) -> String {
        match (field, id) {
            (_, OTHER_ID) => OTHER.to_string(),
            (Field::Version, UNKNOWN_VERSION) => "unknown".to_string(),
            (Field::Version, v) => Version(u16::try_from(v).unwrap_or(u16::MAX)).to_string(),
            _ => self
                .list
                .get(id as usize)
                .map_or_else(|| OTHER.to_string(), |n| n.to_string()),
        }
    }
}

/// Distinct client addresses: a short vector for the usual few, a set past it.
#[derive(Clone, Debug)]
enum Clients {
    Few(Vec<IpAddr>),
    Many(FxHashSet<IpAddr>),
}

/// Client addresses kept in a vector before switching to a set.
const FEW_CLIENTS: usize = 16;

impl Clients {
    fn contains(&self, ip: &IpAddr) -> bool {
        match self {
            Clients::Few(v) => v.contains(ip),
            Clients::Many(s) => s.contains(ip),
        }
    }

    fn insert(&mut self, ip: IpAddr) {
        match self {
            Clients::Few(v) if v.len() < FEW_CLIENTS => v.push(ip),
            Clients::Few(v) => {
                let mut s: FxHashSet<IpAddr> = v.drain(..).collect();
                s.insert(ip);
                *self = Clients::Many(s);
            }
            Clients::Many(s) => {
                s.insert(ip);
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Clients::Few(v) => v.len(),
            Clients::Many(s) => s.len(),
        }
    }

    fn into_vec(self) -> Vec<IpAddr> {
        match self {
            Clients::Few(v) => v,
            Clients::Many(s) => s.into_iter().collect(),
        }
    }
}

/// Everything kept per server; bounded by the caps above.
#[derive(Clone, Debug)]
struct Acc {
    flows: u64,
    /// `(field, name id, flows)` for every counted field. A server has a handful of
    /// names, so one short vector searched in order beats a map per field: one
    /// allocation per server instead of a node per name, which also keeps the
    /// inventory from fragmenting the heap the flow engine allocates from.
    counts: Vec<(Field, u32, u64)>,
    clients: Clients,
    clients_capped: bool,
    certificates: Vec<(Name<String>, CertAcc)>,
    worst: Option<Severity>,
    first: Timestamp,
    last: Timestamp,
    look_at: Option<LookAt>,
}

impl Acc {
    fn new(first: Timestamp, last: Timestamp) -> Self {
        Acc {
            flows: 0,
            counts: Vec::new(),
            clients: Clients::Few(Vec::new()),
            clients_capped: false,
            certificates: Vec::new(),
            worst: None,
            first,
            last,
            look_at: None,
        }
    }

    fn look(&mut self, l: LookAt) {
        self.look_at = Some(self.look_at.map_or(l, |mine| mine.first_of(l)));
    }

    /// Adds `n` under (`field`, `id`), or under the field's [`OTHER_ID`] once it
    /// holds [`MAX_NAMES`] names.
    fn count(&mut self, field: Field, id: u32, n: u64) {
        if let Some(e) = self
            .counts
            .iter_mut()
            .find(|(f, i, _)| *f == field && *i == id)
        {
            e.2 += n;
            return;
        }
        let held = self
            .counts
            .iter()
            .filter(|(f, i, _)| *f == field && *i != OTHER_ID)
            .count();
        if id == OTHER_ID || held < MAX_NAMES {
            self.counts.push((field, id, n));
        } else {
            self.count(field, OTHER_ID, n);
        }
    }

    /// The counts of one field by name.
    fn map(&self, field: Field, names: &Names) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (_, id, n) in self.counts.iter().filter(|(f, _, _)| *f == field) {
            *out.entry(names.name(field, *id)).or_default() += n;
        }
        out
    }

    /// Counts `flows` under a certificate, or under [`OTHER`] past [`MAX_NAMES`].
    fn certificate(&mut self, sha256: Name<String>, cert: CertAcc) {
        if let Some(e) = self.certificates.iter_mut().find(|(k, _)| *k == sha256) {
            e.1.flows += cert.flows;
            e.1.expires = e.1.expires.or(cert.expires);
        } else if matches!(sha256, Name::Other) || self.certificates.len() < MAX_NAMES {
            self.certificates.push((sha256, cert));
        } else {
            self.certificate(
                Name::Other,
                CertAcc {
                    subject_cn: None,
                    not_after: None,
                    expires: None,
                    flows: cert.flows,
                },
            );
        }
    }
}

/// The server inventory of one run (or of one worker's share of it).
#[derive(Debug)]
pub struct Inventory {
    max_servers: usize,
    servers: FxHashMap<Key, Acc>,
    names: Names,
    /// Client addresses remembered over all servers.
    client_addrs: usize,
    flows_beyond_cap: u64,
}

impl Inventory {
    pub fn new(max_servers: usize) -> Self {
        Inventory {
            max_servers,
            servers: FxHashMap::default(),
            names: Names::default(),
            client_addrs: 0,
            flows_beyond_cap: 0,
        }
    }

    /// The server's accumulator, or `None` when the server cap is reached.
    fn slot(
        servers: &mut FxHashMap<Key, Acc>,
        max_servers: usize,
        key: Key,
        first: Timestamp,
        last: Timestamp,
    ) -> Option<&mut Acc> {
        let full = servers.len() >= max_servers;
        match servers.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(_) if full => None,
            std::collections::hash_map::Entry::Vacant(e) => Some(e.insert(Acc::new(first, last))),
        }
    }

    /// Folds in one listed flow.
    pub fn add(&mut self, rec: &FlowRecord) {
        let key = Key {
            transport: rec.transport,
            ip: rec.server.ip,
            port: rec.server.port,
        };
        let Inventory {
            servers,
            names,
            client_addrs,
            ..
        } = self;
        let Some(acc) = Self::slot(servers, self.max_servers, key, rec.start, rec.end) else {
            self.flows_beyond_cap += 1;
            return;
        };
        acc.flows += 1;
        acc.first = acc.first.min(rec.start);
        acc.last = acc.last.max(rec.end);
        if let Some(p) = &rec.app_protocol {
            acc.count(Field::App, names.id(p), 1);
        }
        if !acc.clients.contains(&rec.client.ip) {
            if *client_addrs < MAX_CLIENT_ADDRS {
                acc.clients.insert(rec.client.ip);
                *client_addrs += 1;
            } else {
                acc.clients_capped = true;
            }
        }
        acc.count(Field::Encryption, names.id(rec.encryption.as_str()), 1);
        if let Some(v) = negotiated_version(rec) {
            acc.count(
                Field::Version,
                v.map_or(UNKNOWN_VERSION, |v| u32::from(v.0)),
                1,
            );
        }
        if let Some(cs) = rec
            .tls
            .as_ref()
            .and_then(|t| t.server_hello.as_ref())
            .and_then(|sh| sh.cipher_suite.as_deref())
        {
            acc.count(Field::Cipher, names.id(cs), 1);
        }
        for (i, f) in rec.findings.iter().enumerate() {
            // Once per flow and code.
            if !rec.findings.iter().take(i).any(|g| g.code == f.code) {
                acc.count(Field::Finding, names.id(f.code.as_str()), 1);
            }
        }
        acc.worst = acc
            .worst
            .max(rec.findings.iter().map(Finding::severity).max());
        acc.look(LookAt::of(rec));
        // The server's own certificate: the leaf of the chain it sent.
        if let Some(leaf) = rec.tls.as_ref().and_then(|t| t.certificates.first()) {
            self.add_certificate(
                rec,
                &leaf.sha256,
                leaf.subject_cn.as_deref(),
                leaf.not_after.as_deref(),
            );
            self.certificate_expires(rec, &leaf.sha256, leaf.validity.map(|v| v.1));
        }
    }

    /// Counts one flow's certificate (by its SHA-256) under its server.
    pub fn add_certificate(
        &mut self,
        rec: &FlowRecord,
        sha256: &str,
        subject_cn: Option<&str>,
        not_after: Option<&str>,
    ) {
        let key = Key {
            transport: rec.transport,
            ip: rec.server.ip,
            port: rec.server.port,
        };
        let Some(acc) = self.servers.get_mut(&key) else {
            return;
        };
        acc.certificate(
            Name::Is(sha256.to_string()),
            CertAcc {
                subject_cn: subject_cn.map(str::to_string),
                not_after: not_after.map(str::to_string),
                expires: None,
                flows: 1,
            },
        );
    }

    /// Records when a certificate counted under the flow's server ends (Unix seconds).
    fn certificate_expires(&mut self, rec: &FlowRecord, sha256: &str, expires: Option<i64>) {
        let key = Key {
            transport: rec.transport,
            ip: rec.server.ip,
            port: rec.server.port,
        };
        if let Some(acc) = self.servers.get_mut(&key)
            && let Some((_, c)) = acc
                .certificates
                .iter_mut()
                .find(|(k, _)| matches!(k, Name::Is(s) if s == sha256))
        {
            c.expires = c.expires.or(expires);
        }
    }

    /// Joins an inventory built apart (another worker's); the result is the one a
    /// single inventory fed both streams would hold, caps aside.
    pub fn merge(&mut self, other: Inventory) {
        self.flows_beyond_cap += other.flows_beyond_cap;
        for (key, theirs) in other.servers {
            let Some(acc) = Self::slot(
                &mut self.servers,
                self.max_servers,
                key,
                theirs.first,
                theirs.last,
            ) else {
                self.flows_beyond_cap += theirs.flows;
                continue;
            };
            acc.flows += theirs.flows;
            acc.first = acc.first.min(theirs.first);
            acc.last = acc.last.max(theirs.last);
            for (field, id, n) in theirs.counts {
                let id = match field {
                    _ if id == OTHER_ID => OTHER_ID,
                    Field::Version => id,
                    _ => match other.names.list.get(id as usize) {
                        Some(name) => self.names.id(name),
                        None => OTHER_ID,
                    },
                };
                acc.count(field, id, n);
            }
            acc.clients_capped |= theirs.clients_capped;
            for ip in theirs.clients.into_vec() {
                if acc.clients.contains(&ip) {
                    continue;
                }
                if self.client_addrs < MAX_CLIENT_ADDRS {
                    acc.clients.insert(ip);
                    self.client_addrs += 1;
                } else {
                    acc.clients_capped = true;
                }
            }
            for (sha, c) in theirs.certificates {
                acc.certificate(sha, c);
            }
            acc.worst = acc.worst.max(theirs.worst);
            if let Some(l) = theirs.look_at {
                acc.look(l);
            }
        }
    }

    /// The server records, worst finding first, then most flows, then by address;
    /// and the counters for the summary.
    pub fn finish(self) -> (Vec<ServerRecord>, ServerCounts) {
        let names = self.names;
        let mut list: Vec<(Key, Acc)> = self.servers.into_iter().collect();
        list.sort_by(|(ka, a), (kb, b)| {
            b.worst
                .cmp(&a.worst)
                .then(b.flows.cmp(&a.flows))
                .then(ka.sort_key().cmp(&kb.sort_key()))
        });
        let counts = ServerCounts {
            listed: list.len() as u64,
            flows_beyond_cap: self.flows_beyond_cap,
            clients_capped: list.iter().filter(|(_, a)| a.clients_capped).count() as u64,
        };
        let records = list
            .into_iter()
            .map(|(key, mut acc)| {
                let mut certificates: Vec<CertificateSeen> = std::mem::take(&mut acc.certificates)
                    .into_iter()
                    .map(|(sha256, c)| CertificateSeen {
                        sha256: match sha256 {
                            Name::Is(s) => s,
                            Name::Other => OTHER.to_string(),
                        },
                        subject_cn: c.subject_cn,
                        not_after: c.not_after,
                        days_left: c.expires.map(|e| (e - acc.last.secs).div_euclid(86_400)),
                        flows: c.flows,
                    })
                    .collect();
                certificates.sort_by(|a, b| b.flows.cmp(&a.flows).then(a.sha256.cmp(&b.sha256)));
                ServerRecord {
                    kind: "server",
                    transport: key.transport,
                    server: Endpoint {
                        ip: key.ip,
                        port: key.port,
                    },
                    app_protocols: acc.map(Field::App, &names).into_keys().collect(),
                    flows: acc.flows,
                    clients: acc.clients.len() as u64,
                    clients_capped: acc.clients_capped,
                    by_encryption: acc.map(Field::Encryption, &names),
                    versions: acc.map(Field::Version, &names),
                    cipher_suites: acc.map(Field::Cipher, &names),
                    certificates,
                    findings: acc.map(Field::Finding, &names),
                    worst_severity: acc.worst,
                    first: acc.first,
                    last: acc.last,
                    look_at: acc.look_at,
                }
            })
            .collect();
        (records, counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Code, Encryption, ServerHelloInfo, TlsInfo};
    use std::collections::BTreeSet;

    fn ep(last: u8, port: u16) -> Endpoint {
        Endpoint {
            ip: IpAddr::from([10, 0, 0, last]),
            port,
        }
    }

    /// A varied flow, picked by `i`: servers 1..=7 on two ports, clients 1..=13.
    fn flow(i: u64) -> FlowRecord {
        let client = ep(100 + (i % 13) as u8, 40000 + i as u16);
        let server = ep(
            1 + (i % 7) as u8,
            if i.is_multiple_of(3) { 25 } else { 443 },
        );
        let ts = Timestamp {
            secs: 1_700_000_000 + (i as i64 * 7919) % 1000,
            nanos: 0,
        };
        let mut r = FlowRecord::new(i, ts, client, server);
        r.end = Timestamp {
            secs: ts.secs + (i % 5) as i64,
            nanos: 0,
        };
        r.bytes.client = 10;
        match i % 4 {
            0 => {
                r.encryption = Encryption::Plaintext;
                r.app_protocol = Some("smtp".into());
            }
            1 => {
                r.encryption = Encryption::Tls;
                r.app_protocol = Some("tls".into());
                r.tls = Some(TlsInfo {
                    version: Some(if i % 8 == 1 {
                        Version::TLS10
                    } else {
                        Version::TLS13
                    }),
                    server_hello: Some(ServerHelloInfo {
                        cipher_suite: Some(format!("SUITE_{}", i % 3).into()),
                        ..ServerHelloInfo::default()
                    }),
                    ..TlsInfo::default()
                });
            }
            2 => {
                r.encryption = Encryption::Tls;
                r.app_protocol = Some("tls".into());
                r.tls = Some(TlsInfo::default());
            }
            _ => r.encryption = Encryption::Unknown,
        }
        r.findings = crate::assess::assess(&r, &Default::default());
        if i.is_multiple_of(11) {
            r.findings
                .push(Finding::new(Code::CleartextAuth, String::new()));
            r.findings
                .push(Finding::new(Code::CleartextAuth, String::new()));
        }
        r
    }

    fn inventory(ids: impl Iterator<Item = u64>, max: usize) -> Inventory {
        let mut inv = Inventory::new(max);
        for i in ids {
            inv.add(&flow(i));
        }
        inv
    }

    #[test]
    fn counts_equal_the_flows_grouped_by_server() {
        let (list, counts) = inventory(1..=500, MAX_SERVERS).finish();
        assert_eq!(counts.listed as usize, list.len());
        assert_eq!(counts.flows_beyond_cap, 0);
        assert_eq!(list.iter().map(|s| s.flows).sum::<u64>(), 500);
        for s in &list {
            let mine: Vec<FlowRecord> = (1..=500)
                .map(flow)
                .filter(|f| f.server == s.server)
                .collect();
            assert_eq!(s.flows, mine.len() as u64);
            let clients: BTreeSet<IpAddr> = mine.iter().map(|f| f.client.ip).collect();
            assert_eq!(s.clients, clients.len() as u64);
            let tls = mine
                .iter()
                .filter(|f| f.encryption == Encryption::Tls)
                .count() as u64;
            assert_eq!(s.by_encryption.get("tls").copied().unwrap_or(0), tls);
            assert_eq!(s.versions.values().sum::<u64>(), tls);
            let auth = mine.iter().filter(|f| f.id % 11 == 0).count() as u64;
            assert_eq!(
                s.findings
                    .get(Code::CleartextAuth.as_str())
                    .copied()
                    .unwrap_or(0),
                auth
            );
            assert_eq!(s.first, mine.iter().map(|f| f.start).min().unwrap());
            assert_eq!(s.last, mine.iter().map(|f| f.end).max().unwrap());
            let worst = mine
                .iter()
                .flat_map(|f| &f.findings)
                .map(Finding::severity)
                .max();
            assert_eq!(s.worst_severity, worst);
        }
        // Worst first, then most flows.
        for w in list.windows(2) {
            assert!(
                (w[0].worst_severity, w[0].flows) >= (w[1].worst_severity, w[1].flows),
                "{:?} before {:?}",
                (w[0].worst_severity, w[0].flows),
                (w[1].worst_severity, w[1].flows)
            );
        }
    }

    #[test]
    fn any_order_and_any_split_give_the_same_inventory() {
        let (want, want_counts) = inventory(1..=500, MAX_SERVERS).finish();
        // A fixed pseudo-random permutation, split into uneven shares merged in turn.
        let mut ids: Vec<u64> = (1..=500).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in (1..ids.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ids.swap(i, (x % (i as u64 + 1)) as usize);
        }
        for shares in [1, 2, 3, 8] {
            let mut total = Inventory::new(MAX_SERVERS);
            for chunk in ids.chunks(ids.len().div_ceil(shares)) {
                total.merge(inventory(chunk.iter().copied(), MAX_SERVERS));
            }
            let (got, counts) = total.finish();
            assert_eq!(got, want, "{shares} shares");
            assert_eq!(counts, want_counts);
        }
    }

    #[test]
    fn server_cap_counts_the_flows_left_out() {
        let (list, counts) = inventory(1..=500, 3).finish();
        assert_eq!(list.len(), 3);
        assert_eq!(counts.listed, 3);
        let kept: u64 = list.iter().map(|s| s.flows).sum();
        assert_eq!(kept + counts.flows_beyond_cap, 500);
        assert!(counts.flows_beyond_cap > 0);
        let mut merged = inventory(1..=250, 3);
        merged.merge(inventory(251..=500, 3));
        let (list, counts) = merged.finish();
        assert_eq!(list.len(), 3);
        assert_eq!(
            list.iter().map(|s| s.flows).sum::<u64>() + counts.flows_beyond_cap,
            500
        );
    }

    /// A TLS flow to one server selecting cipher suite `cs`.
    fn with_suite(i: u64, cs: &str) -> FlowRecord {
        let mut r = flow(1);
        r.id = i;
        r.client.port = 1000 + i as u16;
        if let Some(sh) = r.tls.as_mut().and_then(|t| t.server_hello.as_mut()) {
            sh.cipher_suite = Some(cs.to_string().into());
        }
        r
    }

    #[test]
    fn names_past_the_cap_are_counted_as_other() {
        let mut inv = Inventory::new(MAX_SERVERS);
        for i in 0..MAX_NAMES as u64 + 5 {
            inv.add(&with_suite(2 * i, &format!("S{i}")));
            inv.add(&with_suite(2 * i + 1, &format!("S{i}")));
        }
        inv.add(&with_suite(1000, "S0"));
        let mut late = Inventory::new(MAX_SERVERS);
        late.add(&with_suite(2000, "S1"));
        late.add(&with_suite(2001, "LATE"));
        late.add(&with_suite(2002, "LATE"));
        inv.merge(late);
        let (list, _) = inv.finish();
        let m = &list[0].cipher_suites;
        assert_eq!(m.len(), MAX_NAMES + 1);
        assert_eq!(m.get(OTHER), Some(&12));
        assert_eq!(m.get("S0"), Some(&3));
        assert_eq!(m.get("S1"), Some(&3));
        assert_eq!(m.values().sum::<u64>(), list[0].flows);
        assert_eq!(list[0].versions.values().sum::<u64>(), list[0].flows);
    }

    #[test]
    fn many_clients_switch_to_a_set_and_stay_exact() {
        let mut c = Clients::Few(Vec::new());
        for round in 0..2 {
            for i in 0..100u8 {
                if !c.contains(&IpAddr::from([10, 1, 0, i])) {
                    c.insert(IpAddr::from([10, 1, 0, i]));
                }
                assert_eq!(c.len(), if round == 0 { usize::from(i) + 1 } else { 100 });
            }
        }
        assert!(matches!(c, Clients::Many(_)));
    }

    #[test]
    fn certificates_are_counted_per_server_most_flows_first() {
        let mut inv = Inventory::new(MAX_SERVERS);
        let r = flow(1);
        inv.add(&r);
        inv.add_certificate(&r, "aa", Some("a.example"), Some("2027-01-01T00:00:00Z"));
        inv.add_certificate(&r, "bb", Some("b.example"), None);
        inv.add_certificate(&r, "bb", Some("b.example"), None);
        // A server never added (past the cap, say) is ignored.
        inv.add_certificate(&flow(2), "cc", None, None);
        let (list, _) = inv.finish();
        let certs = &list[0].certificates;
        assert_eq!(certs.len(), 2);
        assert_eq!((certs[0].sha256.as_str(), certs[0].flows), ("bb", 2));
        assert_eq!(certs[1].subject_cn.as_deref(), Some("a.example"));
        assert_eq!(certs[1].not_after.as_deref(), Some("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn record_serializes_as_documented() {
        let (list, _) = inventory([1u64, 8, 11].into_iter(), MAX_SERVERS).finish();
        let v = serde_json::to_value(&list[0]).unwrap();
        assert_eq!(v["type"], "server");
        assert_eq!(v["transport"], "tcp");
        for field in [
            "server",
            "app_protocols",
            "flows",
            "clients",
            "by_encryption",
            "versions",
            "cipher_suites",
            "findings",
            "worst_severity",
            "first",
            "last",
        ] {
            assert!(v.get(field).is_some(), "{field} missing: {v}");
        }
        assert!(v.get("clients_capped").is_none());
        assert!(v["first"].as_str().unwrap().ends_with('Z'));
    }
}
