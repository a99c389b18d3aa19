//! The per-server inventory (`--servers`): finished flow records folded into one
//! record per server endpoint. Every count is a sum, a set or a min/max over the
//! flows, so the fold does not depend on the order records arrive in, and two
//! inventories built apart (one per worker thread) `merge` into the same result.
//! Output order is decided at the end: worst finding first, then most flows.
//!
//! Names (protocols, suites, codes, certificates) are stored once per inventory
//! and counted by number. The records [`Inventory::finish`] hands out read their
//! counts from the inventory's own table, sorted there once, so writing them out
//! copies no name and allocates nothing per server.

use super::jsonw;
use crate::record::negotiated_version;
use crate::record::{Endpoint, Finding, FlowRecord, Severity, Transport};
use crate::time::Timestamp;
use crate::version::Version;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::cmp::Reverse;
use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

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

/// A certificate a server presented, with the flows it was seen on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CertificateSeen<'a> {
    pub sha256: &'a str,
    pub subject_cn: Option<&'a str>,
    pub not_after: Option<&'a str>,
    /// Whole days from the server's last flow to `not_after` (negative once expired).
    pub days_left: Option<i64>,
    pub flows: u64,
}

/// Flows counted by name, in name order: a JSON object of counts. A view of
/// one field of a server's counts.
#[derive(Clone, Copy)]
pub struct Tally<'a> {
    names: &'a [Arc<str>],
    /// One field's `(field, name id, flows)`, sorted by name, one per name.
    counts: &'a [Count],
}

impl<'a> Tally<'a> {
    /// The flows counted under `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        let i = self
            .counts
            .binary_search_by(|(_, id, _)| name_of(self.names, *id).cmp(name))
            .ok()?;
        self.counts.get(i).map(|(_, _, n)| *n)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Names and counts, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a str, u64)> + Clone + use<'a> {
        let names = self.names;
        self.counts
            .iter()
            .map(move |(_, id, n)| (name_of(names, *id), *n))
    }

    pub fn keys(&self) -> impl ExactSizeIterator<Item = &'a str> + Clone + use<'a> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl ExactSizeIterator<Item = u64> + use<'a> {
        self.iter().map(|(_, n)| n)
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

impl Serialize for Tally<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl fmt::Debug for Tally<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The name `id` stands for ([`OTHER`] for the bucket past [`MAX_NAMES`]).
fn name_of(names: &[Arc<str>], id: u32) -> &str {
    match names.get(id as usize) {
        Some(name) if id != OTHER_ID => name,
        _ => OTHER,
    }
}

/// What the records of one inventory read: every server's accumulator, its
/// counts sorted by field and name, and the names they count.
#[derive(Debug)]
struct Table {
    servers: Vec<(Key, Acc)>,
    names: Vec<Arc<str>>,
    /// The names as JSON strings, made when the first record is written as JSON.
    quoted: OnceLock<Quoted>,
}

/// Every name of a table as a JSON string (quoted and escaped), so that writing
/// the records escapes each name once rather than on every use.
#[derive(Debug)]
struct Quoted {
    text: Vec<u8>,
    /// Where each name's JSON string ends in `text` (it starts where the one
    /// before ends).
    ends: Vec<usize>,
}

impl Quoted {
    fn new(names: &[Arc<str>]) -> Self {
        let mut text = Vec::new();
        let mut ends = Vec::with_capacity(names.len());
        for name in names {
            // Serializing a string cannot fail.
            let _ = jsonw::to_vec_into(&mut text, &**name);
            ends.push(text.len());
        }
        Quoted { text, ends }
    }

    /// The JSON string of name `id` ([`OTHER`]'s for the bucket past [`MAX_NAMES`]).
    fn get(&self, id: u32) -> &[u8] {
        let i = id as usize;
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).copied(),
            None => Some(0),
        };
        match (start, self.ends.get(i)) {
            (Some(start), Some(&end)) if id != OTHER_ID => self.text.get(start..end),
            _ => None,
        }
        .unwrap_or(b"\"(other)\"")
    }
}

/// One server endpoint's record: the JSON contract of `--servers`. Its counts
/// and certificates are read from the inventory it came from.
#[derive(Clone)]
pub struct ServerRecord {
    pub kind: &'static str,
    pub transport: Transport,
    pub server: Endpoint,
    pub flows: u64,
    /// Distinct client addresses.
    pub clients: u64,
    pub clients_capped: bool,
    pub worst_severity: Option<Severity>,
    pub first: Timestamp,
    pub last: Timestamp,
    /// The flow and packet to open first (see [`LookAt`]).
    pub look_at: Option<LookAt>,
    table: Arc<Table>,
    /// The server's place in the table.
    at: usize,
}

/// The counted fields, in the order their counts are sorted in.
const FIELDS: [Field; 5] = [
    Field::App,
    Field::Encryption,
    Field::Version,
    Field::Cipher,
    Field::Finding,
];

impl ServerRecord {
    fn new(table: &Arc<Table>, at: usize) -> Option<Self> {
        let (key, acc) = table.servers.get(at)?;
        Some(ServerRecord {
            kind: "server",
            transport: key.transport,
            server: Endpoint {
                ip: key.ip,
                port: key.port,
            },
            flows: acc.flows,
            clients: acc.clients.len() as u64,
            clients_capped: acc.clients_capped,
            worst_severity: acc.worst,
            first: acc.first,
            last: acc.last,
            look_at: acc.look_at,
            table: Arc::clone(table),
            at,
        })
    }

    fn acc(&self) -> Option<&Acc> {
        self.table.servers.get(self.at).map(|(_, acc)| acc)
    }

    fn field(&self, field: Field) -> Tally<'_> {
        let all = self.acc().map_or(&[][..], |a| a.counts.as_slice());
        let start = all.partition_point(|(f, _, _)| *f < field);
        let end = all.partition_point(|(f, _, _)| *f <= field);
        Tally {
            names: &self.table.names,
            counts: all.get(start..end).unwrap_or(&[]),
        }
    }

    /// Application protocols seen, sorted.
    pub fn app_protocols(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        self.field(Field::App).keys()
    }

    pub fn by_encryption(&self) -> Tally<'_> {
        self.field(Field::Encryption)
    }

    /// TLS-protected flows by negotiated version (`unknown` without a ServerHello).
    pub fn versions(&self) -> Tally<'_> {
        self.field(Field::Version)
    }

    /// Flows by the cipher suite the server selected.
    pub fn cipher_suites(&self) -> Tally<'_> {
        self.field(Field::Cipher)
    }

    /// Flows carrying each finding code.
    pub fn findings(&self) -> Tally<'_> {
        self.field(Field::Finding)
    }

    /// The certificates the server presented, most flows first.
    pub fn certificates(&self) -> impl ExactSizeIterator<Item = CertificateSeen<'_>> + Clone {
        let names = &self.table.names;
        let last = self.last;
        let certs = self.acc().map_or(&[][..], |a| a.certificates.as_slice());
        certs.iter().map(move |(sha256, c)| CertificateSeen {
            sha256: name_of(names, *sha256),
            subject_cn: c.subject_cn.map(|id| name_of(names, id)),
            not_after: c.not_after.map(|id| name_of(names, id)),
            days_left: days_left(c.expires, last),
            flows: c.flows,
        })
    }
}

/// Whole days from `last` to `expires` (Unix seconds), negative once expired.
fn days_left(expires: Option<i64>, last: Timestamp) -> Option<i64> {
    expires.map(|e| (e - last.secs).div_euclid(86_400))
}

/// One field's counts as a JSON object.
fn write_tally<W: Write>(w: &mut W, q: &Quoted, counts: &[Count]) -> io::Result<()> {
    let mut num = itoa::Buffer::new();
    w.write_all(b"{")?;
    for (i, (_, id, n)) in counts.iter().enumerate() {
        w.write_all(if i == 0 { b"" } else { b"," })?;
        w.write_all(q.get(*id))?;
        w.write_all(b":")?;
        w.write_all(num.format(*n).as_bytes())?;
    }
    w.write_all(b"}")
}

/// A list written as a JSON array.
struct Seq<I>(I);

impl<I: Iterator<Item = T> + Clone, T: Serialize> Serialize for Seq<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.clone())
    }
}

impl Serialize for ServerRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let certs = self.certificates();
        let has_certs = certs.len() > 0;
        let n = 14 + usize::from(self.clients_capped) + usize::from(has_certs);
        let mut st = s.serialize_struct("ServerRecord", n)?;
        st.serialize_field("type", self.kind)?;
        st.serialize_field("transport", &self.transport)?;
        st.serialize_field("server", &self.server)?;
        st.serialize_field("app_protocols", &Seq(self.app_protocols()))?;
        st.serialize_field("flows", &self.flows)?;
        st.serialize_field("clients", &self.clients)?;
        if self.clients_capped {
            st.serialize_field("clients_capped", &true)?;
        } else {
            st.skip_field("clients_capped")?;
        }
        st.serialize_field("by_encryption", &self.by_encryption())?;
        st.serialize_field("versions", &self.versions())?;
        st.serialize_field("cipher_suites", &self.cipher_suites())?;
        if has_certs {
            st.serialize_field("certificates", &Seq(certs))?;
        } else {
            st.skip_field("certificates")?;
        }
        st.serialize_field("findings", &self.findings())?;
        st.serialize_field("worst_severity", &self.worst_severity)?;
        st.serialize_field("first", &self.first)?;
        st.serialize_field("last", &self.last)?;
        st.serialize_field("look_at", &self.look_at)?;
        st.end()
    }
}

impl ServerRecord {
    /// Writes the record as JSON: the bytes `serde_json::to_writer` writes for
    /// it, with the names taken ready-escaped from the inventory's table.
    pub fn write_json<W: Write>(&self, w: &mut W) -> io::Result<()> {
        let q = self
            .table
            .quoted
            .get_or_init(|| Quoted::new(&self.table.names));
        let [apps, encryption, versions, suites, findings] = self.fields();
        let mut num = itoa::Buffer::new();
        w.write_all(b"{\"type\":")?;
        jsonw::to_writer(&mut *w, self.kind)?;
        w.write_all(b",\"transport\":")?;
        jsonw::to_writer(&mut *w, &self.transport)?;
        w.write_all(b",\"server\":")?;
        jsonw::to_writer(&mut *w, &self.server)?;
        w.write_all(b",\"app_protocols\":[")?;
        for (i, (_, id, _)) in apps.iter().enumerate() {
            w.write_all(if i == 0 { b"" } else { b"," })?;
            w.write_all(q.get(*id))?;
        }
        w.write_all(b"],\"flows\":")?;
        w.write_all(num.format(self.flows).as_bytes())?;
        w.write_all(b",\"clients\":")?;
        w.write_all(num.format(self.clients).as_bytes())?;
        if self.clients_capped {
            w.write_all(b",\"clients_capped\":true")?;
        }
        w.write_all(b",\"by_encryption\":")?;
        write_tally(w, q, encryption)?;
        w.write_all(b",\"versions\":")?;
        write_tally(w, q, versions)?;
        w.write_all(b",\"cipher_suites\":")?;
        write_tally(w, q, suites)?;
        self.write_certificates(w, q)?;
        w.write_all(b",\"findings\":")?;
        write_tally(w, q, findings)?;
        w.write_all(b",\"worst_severity\":")?;
        jsonw::to_writer(&mut *w, &self.worst_severity)?;
        w.write_all(b",\"first\":")?;
        jsonw::to_writer(&mut *w, &self.first)?;
        w.write_all(b",\"last\":")?;
        jsonw::to_writer(&mut *w, &self.last)?;
        w.write_all(b",\"look_at\":")?;
        jsonw::to_writer(&mut *w, &self.look_at)?;
        w.write_all(b"}")
    }

    /// Each field's counts (in [`FIELDS`] order), split off the sorted list in
    /// one pass.
    fn fields(&self) -> [&[Count]; FIELDS.len()] {
        let mut rest = self.acc().map_or(&[][..], |a| a.counts.as_slice());
        FIELDS.map(|field| {
            let n = rest.iter().take_while(|(f, _, _)| *f == field).count();
            let (mine, more) = rest.split_at_checked(n).unwrap_or((rest, &[]));
            rest = more;
            mine
        })
    }

    /// The `certificates` member, when the server presented any.
    fn write_certificates<W: Write>(&self, w: &mut W, q: &Quoted) -> io::Result<()> {
        let certs = self.acc().map_or(&[][..], |a| a.certificates.as_slice());
        if certs.is_empty() {
            return Ok(());
        }
        let mut num = itoa::Buffer::new();
        w.write_all(b",\"certificates\":[")?;
        for (i, (sha256, c)) in certs.iter().enumerate() {
            w.write_all(if i == 0 {
                b"{\"sha256\":"
            } else {
                b",{\"sha256\":"
            })?;
            w.write_all(q.get(*sha256))?;
            w.write_all(b",\"subject_cn\":")?;
            w.write_all(c.subject_cn.map_or(&b"null"[..], |id| q.get(id)))?;
            w.write_all(b",\"not_after\":")?;
            w.write_all(c.not_after.map_or(&b"null"[..], |id| q.get(id)))?;
            w.write_all(b",\"days_left\":")?;
            match days_left(c.expires, self.last) {
                Some(d) => w.write_all(num.format(d).as_bytes())?,
                None => w.write_all(b"null")?,
            }
            w.write_all(b",\"flows\":")?;
            w.write_all(num.format(c.flows).as_bytes())?;
            w.write_all(b"}")?;
        }
        w.write_all(b"]")
    }
}

impl PartialEq for ServerRecord {
    /// The same record, whichever inventory it was read from.
    fn eq(&self, o: &Self) -> bool {
        let scalars = |s: &Self| {
            (
                (s.kind, s.transport, s.server, s.flows, s.clients),
                (
                    s.clients_capped,
                    s.worst_severity,
                    s.first,
                    s.last,
                    s.look_at,
                ),
            )
        };
        scalars(self) == scalars(o)
            && FIELDS
                .iter()
                .all(|f| self.field(*f).iter().eq(o.field(*f).iter()))
            && self.certificates().eq(o.certificates())
    }
}

impl Eq for ServerRecord {}

impl fmt::Debug for ServerRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerRecord")
            .field("transport", &self.transport)
            .field("server", &self.server)
            .field("app_protocols", &self.app_protocols().collect::<Vec<_>>())
            .field("flows", &self.flows)
            .field("clients", &self.clients)
            .field("clients_capped", &self.clients_capped)
            .field("by_encryption", &self.by_encryption())
            .field("versions", &self.versions())
            .field("cipher_suites", &self.cipher_suites())
            .field("certificates", &self.certificates().collect::<Vec<_>>())
            .field("findings", &self.findings())
            .field("worst_severity", &self.worst_severity)
            .field("first", &self.first)
            .field("last", &self.last)
            .field("look_at", &self.look_at)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    transport: Transport,
    ip: IpAddr,
    port: u16,
}

impl Key {
    fn of(rec: &FlowRecord) -> Self {
        Key {
            transport: rec.transport,
            ip: rec.server.ip,
            port: rec.server.port,
        }
    }

    fn sort_key(&self) -> (IpAddr, u16, u8) {
        let t = match self.transport {
            Transport::Tcp => 0,
            Transport::Udp => 1,
        };
        (self.ip, self.port, t)
    }
}

/// A certificate counted under a server; its strings are name ids.
#[derive(Clone, Debug)]
struct CertAcc {
    subject_cn: Option<u32>,
    not_after: Option<u32>,
    /// `not_after` as Unix seconds.
    expires: Option<i64>,
    flows: u64,
}

/// What a counted name counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    App,
    Encryption,
    /// The negotiated version's name; `unknown` without a ServerHello.
    Version,
    Cipher,
    Finding,
}

/// The name id of the bucket for names past [`MAX_NAMES`].
const OTHER_ID: u32 = u32::MAX;

/// The version key of a TLS flow without a ServerHello.
const UNKNOWN_VERSION: u32 = 1 << 16;

/// Names (protocols, suites, codes, certificate hashes and names) stored once per
/// inventory and referred to by number, so a server's counts hold no strings of
/// their own.
#[derive(Debug, Default)]
struct Names {
    list: Vec<Arc<str>>,
    ids: FxHashMap<Arc<str>, u32>,
    /// The ids of the encryption names met, by variant.
    encryptions: Vec<Option<u32>>,
    /// The ids of the finding codes met, by variant.
    codes: Vec<Option<u32>>,
    /// The ids of the version names met, by version number
    /// ([`UNKNOWN_VERSION`] without a ServerHello).
    versions: FxHashMap<u32, u32>,
}

/// The fixed tables whose names [`Names`] remembers by variant.
#[derive(Clone, Copy)]
enum Fixed {
    Encryption,
    Code,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = u32::try_from(self.list.len()).unwrap_or(OTHER_ID);
        let label: Arc<str> = name.into();
        self.list.push(Arc::clone(&label));
        self.ids.insert(label, id);
        id
    }

    /// The id of the name of variant `slot` of a fixed table, looked up by
    /// variant after the first time instead of by name.
    fn fixed(&mut self, table: Fixed, slot: usize, name: &str) -> u32 {
        if let Some(Some(id)) = self.slots(table).get(slot) {
            return *id;
        }
        let id = self.id(name);
        let known = self.slots(table);
        if known.len() <= slot {
            known.resize(slot + 1, None);
        }
        if let Some(s) = known.get_mut(slot) {
            *s = Some(id);
        }
        id
    }

    fn slots(&mut self, table: Fixed) -> &mut Vec<Option<u32>> {
        match table {
            Fixed::Encryption => &mut self.encryptions,
            Fixed::Code => &mut self.codes,
        }
    }

    /// The id of a negotiated version's name (`None`: no ServerHello).
    fn version(&mut self, v: Option<Version>) -> u32 {
        let key = v.map_or(UNKNOWN_VERSION, |v| u32::from(v.0));
        if let Some(id) = self.versions.get(&key) {
            return *id;
        }
        let id = match v {
            Some(v) => self.id(&v.to_string()),
            None => self.id("unknown"),
        };
        self.versions.insert(key, id);
        id
    }

    /// Each name's place in name order, by id.
    fn ranks(&self) -> Vec<u32> {
        let list = &self.list;
        let mut order: Vec<u32> = (0..u32::try_from(list.len()).unwrap_or(u32::MAX)).collect();
        order.sort_unstable_by(|a, b| name_of(list, *a).cmp(name_of(list, *b)));
        let mut rank = vec![0; order.len()];
        for (place, id) in (0u32..).zip(&order) {
            if let Some(r) = rank.get_mut(*id as usize) {
                *r = place;
            }
        }
        rank
    }

    /// The id in this table of the name `id` has in `other`'s.
    fn adopt(&mut self, other: &Names, id: u32) -> u32 {
        match other.list.get(id as usize) {
            Some(name) if id != OTHER_ID => self.id(name),
            _ => OTHER_ID,
        }
    }
}

/// Distinct client addresses: one in place, a short vector for the usual few, a
/// set past it.
#[derive(Clone, Debug)]
enum Clients {
    Few(Vec<IpAddr>),
    One(IpAddr),
    Many(FxHashSet<IpAddr>),
}

/// Client addresses kept in a vector before switching to a set.
const FEW_CLIENTS: usize = 16;

impl Clients {
    fn contains(&self, ip: &IpAddr) -> bool {
        match self {
            Clients::One(a) => a == ip,
            Clients::Few(v) => v.contains(ip),
            Clients::Many(s) => s.contains(ip),
        }
    }

    fn insert(&mut self, ip: IpAddr) {
        match self {
            Clients::Few(v) if v.is_empty() => *self = Clients::One(ip),
            Clients::One(a) => {
                let mut v = Vec::with_capacity(4);
                v.extend([*a, ip]);
                *self = Clients::Few(v);
            }
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
            Clients::One(_) => 1,
            Clients::Few(v) => v.len(),
            Clients::Many(s) => s.len(),
        }
    }

    fn into_vec(self) -> Vec<IpAddr> {
        match self {
            Clients::One(a) => vec![a],
            Clients::Few(v) => v,
            Clients::Many(s) => s.into_iter().collect(),
        }
    }
}

/// One count: `(field, name id, flows)`.
type Count = (Field, u32, u64);

/// Counts kept in place: room for a server's first flow (encryption, version,
/// suite, protocol and a few findings).
const INLINE_COUNTS: usize = 8;

/// A server's counts: in place while they are few (read with the rest of the
/// server, with no allocation of their own), on the heap past that.
#[derive(Clone, Debug)]
enum Counts {
    Inline(u8, [Count; INLINE_COUNTS]),
    Heap(Vec<Count>),
}

impl Counts {
    fn new() -> Self {
        Counts::Inline(0, [(Field::App, 0, 0); INLINE_COUNTS])
    }

    fn as_slice(&self) -> &[Count] {
        match self {
            Counts::Inline(n, a) => a.get(..usize::from(*n)).unwrap_or(&[]),
            Counts::Heap(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Count] {
        match self {
            Counts::Inline(n, a) => a.get_mut(..usize::from(*n)).unwrap_or(&mut []),
            Counts::Heap(v) => v,
        }
    }

    fn push(&mut self, c: Count) {
        match self {
            Counts::Inline(n, a) => match a.get_mut(usize::from(*n)) {
                Some(slot) => {
                    *slot = c;
                    *n += 1;
                }
                None => {
                    let mut v = Vec::with_capacity(4 * INLINE_COUNTS);
                    v.extend_from_slice(a);
                    v.push(c);
                    *self = Counts::Heap(v);
                }
            },
            Counts::Heap(v) => v.push(c),
        }
    }

    /// Keeps the first `len`.
    fn truncate(&mut self, len: usize) {
        match self {
            Counts::Inline(n, _) => *n = (*n).min(u8::try_from(len).unwrap_or(u8::MAX)),
            Counts::Heap(v) => v.truncate(len),
        }
    }
}

/// Everything kept per server; bounded by the caps above.
#[derive(Clone, Debug)]
struct Acc {
    flows: u64,
    /// `(field, name id, flows)` for every counted field. A server has a handful of
    /// names, so one short list searched in order beats a map per field: no
    /// allocation for most servers instead of a node per name, which also keeps
    /// the inventory from fragmenting the heap the flow engine allocates from.
    counts: Counts,
    clients: Clients,
    clients_capped: bool,
    /// By the certificate's SHA-256 name id ([`OTHER_ID`] past [`MAX_NAMES`]).
    certificates: Vec<(u32, CertAcc)>,
    worst: Option<Severity>,
    first: Timestamp,
    last: Timestamp,
    look_at: Option<LookAt>,
}

impl Acc {
    fn new(first: Timestamp, last: Timestamp) -> Self {
        Acc {
            flows: 0,
            counts: Counts::new(),
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

    /// Counts what one flow says, under the inventory's name ids.
    fn count_flow(&mut self, names: &mut Names, rec: &FlowRecord) {
        if let Some(p) = &rec.app_protocol {
            self.count(Field::App, names.id(p), 1);
        }
        let enc = rec.encryption;
        let id = names.fixed(Fixed::Encryption, enc as usize, enc.as_str());
        self.count(Field::Encryption, id, 1);
        if let Some(v) = negotiated_version(rec) {
            self.count(Field::Version, names.version(v), 1);
        }
        if let Some(cs) = rec
            .tls
            .as_ref()
            .and_then(|t| t.server_hello.as_ref())
            .and_then(|sh| sh.cipher_suite.as_deref())
        {
            self.count(Field::Cipher, names.id(cs), 1);
        }
        for (i, f) in rec.findings.iter().enumerate() {
            // Once per flow and code.
            if !rec.findings.iter().take(i).any(|g| g.code == f.code) {
                let id = names.fixed(Fixed::Code, f.code as usize, f.code.as_str());
                self.count(Field::Finding, id, 1);
            }
        }
        self.worst = self
            .worst
            .max(rec.findings.iter().map(Finding::severity).max());
        self.look(LookAt::of(rec));
    }

    /// Counts one flow's certificate by its SHA-256, with its subject CN and
    /// `not_after` (kept from the first flow that presents it) and when it ends
    /// (Unix seconds).
    fn leaf(
        &mut self,
        names: &mut Names,
        sha256: &str,
        (subject_cn, not_after): (Option<&str>, Option<&str>),
        expires: Option<i64>,
    ) {
        let sha = names.id(sha256);
        let new = self.certificates.len() < MAX_NAMES
            && !self.certificates.iter().any(|(k, _)| *k == sha);
        let mut id = |s: Option<&str>| s.filter(|_| new).map(|s| names.id(s));
        let cert = CertAcc {
            subject_cn: id(subject_cn),
            not_after: id(not_after),
            expires,
            flows: 1,
        };
        self.certificate(sha, cert);
    }

    /// Adds `n` under (`field`, `id`), or under the field's [`OTHER_ID`] once it
    /// holds [`MAX_NAMES`] names.
    fn count(&mut self, field: Field, id: u32, n: u64) {
        if let Some(e) = self
            .counts
            .as_mut_slice()
            .iter_mut()
            .find(|(f, i, _)| *f == field && *i == id)
        {
            e.2 += n;
            return;
        }
        let held = self
            .counts
            .as_slice()
            .iter()
            .filter(|(f, i, _)| *f == field && *i != OTHER_ID)
            .count();
        if id == OTHER_ID || held < MAX_NAMES {
            self.counts.push((field, id, n));
        } else {
            self.count(field, OTHER_ID, n);
        }
    }

    /// Counts `cert`'s flows under the certificate `sha256` (a name id), or under
    /// [`OTHER_ID`] past [`MAX_NAMES`].
    fn certificate(&mut self, sha256: u32, cert: CertAcc) {
        if let Some(e) = self.certificates.iter_mut().find(|(k, _)| *k == sha256) {
            e.1.flows += cert.flows;
            e.1.expires = e.1.expires.or(cert.expires);
        } else if sha256 == OTHER_ID || self.certificates.len() < MAX_NAMES {
            self.certificates.push((sha256, cert));
        } else {
            self.certificate(
                OTHER_ID,
                CertAcc {
                    subject_cn: None,
                    not_after: None,
                    expires: None,
                    flows: cert.flows,
                },
            );
        }
    }

    /// Puts the counts in the order they are written: sorted by field and name
    /// (`rank`: each name id's place in name order; `other`: the id of the name
    /// [`OTHER`]), one entry per name; and the certificates most flows first,
    /// then by hash.
    fn settle(&mut self, rank: &[u32], other: u32) {
        let place = |id: u32| {
            let id = if id == OTHER_ID { other } else { id };
            rank.get(id as usize).copied().unwrap_or(u32::MAX)
        };
        let counts = self.counts.as_mut_slice();
        for e in counts.iter_mut().filter(|e| e.1 == OTHER_ID) {
            e.1 = other;
        }
        counts.sort_unstable_by_key(|c| (c.0, place(c.1)));
        let len = coalesce(counts);
        self.counts.truncate(len);
        self.certificates
            .sort_by_key(|(sha256, c)| (Reverse(c.flows), place(*sha256)));
    }
}

/// Adds up neighbours counting the same name, moving the rest forward; the
/// number of counts left.
fn coalesce(counts: &mut [Count]) -> usize {
    let mut kept = 0usize;
    for i in 0..counts.len() {
        let Some(&c) = counts.get(i) else {
            continue;
        };
        match kept.checked_sub(1).and_then(|k| counts.get_mut(k)) {
            Some(last) if (last.0, last.1) == (c.0, c.1) => last.2 += c.2,
            _ => {
                if let Some(k) = counts.get_mut(kept) {
                    *k = c;
                }
                kept += 1;
            }
        }
    }
    kept
}

/// The server inventory of one run (or of one worker's share of it).
#[derive(Debug)]
pub struct Inventory {
    max_servers: usize,
    /// Each server's place in `servers`. The accumulators themselves stay put
    /// in a vector as it grows, rather than being moved with every rehash.
    index: FxHashMap<Key, u32>,
    servers: Vec<(Key, Acc)>,
    names: Names,
    /// Client addresses remembered over all servers.
    client_addrs: usize,
    flows_beyond_cap: u64,
}

impl Inventory {
    pub fn new(max_servers: usize) -> Self {
        Inventory {
            max_servers,
            index: FxHashMap::default(),
            servers: Vec::new(),
            names: Names::default(),
            client_addrs: 0,
            flows_beyond_cap: 0,
        }
    }

    /// The server's accumulator (a new one for a new server), or `None` when the
    /// server cap is reached.
    fn slot<'s>(
        index: &mut FxHashMap<Key, u32>,
        servers: &'s mut Vec<(Key, Acc)>,
        max_servers: usize,
        key: Key,
        (first, last): (Timestamp, Timestamp),
    ) -> Option<&'s mut Acc> {
        let i = match index.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let i = u32::try_from(servers.len())
                    .ok()
                    .filter(|_| servers.len() < max_servers)?;
                servers.push((key, Acc::new(first, last)));
                *e.insert(i)
            }
        };
        servers.get_mut(i as usize).map(|(_, acc)| acc)
    }

    /// Folds in one listed flow.
    pub fn add(&mut self, rec: &FlowRecord) {
        let Inventory {
            index,
            servers,
            names,
            client_addrs,
            max_servers,
            ..
        } = self;
        let span = (rec.start, rec.end);
        let Some(acc) = Self::slot(index, servers, *max_servers, Key::of(rec), span) else {
            self.flows_beyond_cap += 1;
            return;
        };
        acc.flows += 1;
        acc.first = acc.first.min(rec.start);
        acc.last = acc.last.max(rec.end);
        if !acc.clients.contains(&rec.client.ip) {
            if *client_addrs < MAX_CLIENT_ADDRS {
                acc.clients.insert(rec.client.ip);
                *client_addrs += 1;
            } else {
                acc.clients_capped = true;
            }
        }
        acc.count_flow(names, rec);
        // The server's own certificate: the leaf of the chain it sent.
        if let Some(leaf) = rec.tls.as_ref().and_then(|t| t.certificates.first()) {
            let strings = (leaf.subject_cn.as_deref(), leaf.not_after.as_deref());
            acc.leaf(names, &leaf.sha256, strings, leaf.validity.map(|v| v.1));
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
        let Some(&i) = self.index.get(&Key::of(rec)) else {
            return;
        };
        if let Some((_, acc)) = self.servers.get_mut(i as usize) {
            acc.leaf(&mut self.names, sha256, (subject_cn, not_after), None);
        }
    }

    /// Joins an inventory built apart (another worker's); the result is the one a
    /// single inventory fed both streams would hold, caps aside.
    pub fn merge(&mut self, other: Inventory) {
        self.flows_beyond_cap += other.flows_beyond_cap;
        for (key, theirs) in other.servers {
            let Some(acc) = Self::slot(
                &mut self.index,
                &mut self.servers,
                self.max_servers,
                key,
                (theirs.first, theirs.last),
            ) else {
                self.flows_beyond_cap += theirs.flows;
                continue;
            };
            acc.flows += theirs.flows;
            acc.first = acc.first.min(theirs.first);
            acc.last = acc.last.max(theirs.last);
            for &(field, id, n) in theirs.counts.as_slice() {
                acc.count(field, self.names.adopt(&other.names, id), n);
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
                let adopt =
                    |id: Option<u32>, names: &mut Names| id.map(|id| names.adopt(&other.names, id));
                let c = CertAcc {
                    subject_cn: adopt(c.subject_cn, &mut self.names),
                    not_after: adopt(c.not_after, &mut self.names),
                    ..c
                };
                acc.certificate(self.names.adopt(&other.names, sha), c);
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
        let Inventory {
            mut servers,
            mut names,
            flows_beyond_cap,
            ..
        } = self;
        let mut order: Vec<_> = servers
            .iter()
            .enumerate()
            .map(|(at, (key, acc))| (Reverse(acc.worst), Reverse(acc.flows), key.sort_key(), at))
            .collect();
        order.sort_unstable();
        let other = names.id(OTHER);
        let rank = names.ranks();
        for (_, acc) in &mut servers {
            acc.settle(&rank, other);
        }
        let counts = ServerCounts {
            listed: servers.len() as u64,
            flows_beyond_cap,
            clients_capped: servers.iter().filter(|(_, a)| a.clients_capped).count() as u64,
        };
        let table = Arc::new(Table {
            servers,
            names: names.list,
            quoted: OnceLock::new(),
        });
        let records = order
            .iter()
            .filter_map(|(.., at)| ServerRecord::new(&table, *at))
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
            assert_eq!(s.by_encryption().get("tls").unwrap_or(0), tls);
            assert_eq!(s.versions().values().sum::<u64>(), tls);
            let auth = mine.iter().filter(|f| f.id % 11 == 0).count() as u64;
            assert_eq!(
                s.findings().get(Code::CleartextAuth.as_str()).unwrap_or(0),
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
    fn versions_spelled_alike_are_counted_as_one_in_name_order() {
        // Draft 26 has two code points; both are written `TLSv1.3-draft26`.
        let mut inv = Inventory::new(MAX_SERVERS);
        for (i, v) in [0x7f1a, 0x0303, 0xfb1a, 0x0301].into_iter().enumerate() {
            let mut r = with_suite(i as u64, "S");
            if let Some(t) = r.tls.as_mut() {
                t.version = Some(Version(v));
            }
            inv.add(&r);
        }
        let (list, _) = inv.finish();
        let versions: Vec<(&str, u64)> = list[0].versions().iter().collect();
        assert_eq!(
            versions,
            [("TLSv1.0", 1), ("TLSv1.2", 1), ("TLSv1.3-draft26", 2)]
        );
        assert_eq!(list[0].versions().get("TLSv1.3-draft26"), Some(2));
        let v = serde_json::to_value(&list[0]).unwrap();
        assert_eq!(
            v["versions"],
            serde_json::json!({"TLSv1.0": 1, "TLSv1.2": 1, "TLSv1.3-draft26": 2})
        );
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
        let m = list[0].cipher_suites();
        assert_eq!(m.len(), MAX_NAMES + 1);
        assert_eq!(m.get(OTHER), Some(12));
        assert_eq!(m.get("S0"), Some(3));
        assert_eq!(m.get("S1"), Some(3));
        assert_eq!(m.values().sum::<u64>(), list[0].flows);
        assert_eq!(list[0].versions().values().sum::<u64>(), list[0].flows);
    }

    #[test]
    fn counts_move_to_the_heap_past_the_room_in_place_and_keep_their_order() {
        let mut c = Counts::new();
        for i in 0..INLINE_COUNTS as u32 + 3 {
            c.push((Field::Cipher, i, u64::from(i) * 10));
            assert_eq!(c.as_slice().len(), i as usize + 1);
            assert_eq!(matches!(c, Counts::Heap(_)), i as usize >= INLINE_COUNTS);
        }
        let ids: Vec<u32> = c.as_slice().iter().map(|e| e.1).collect();
        assert_eq!(ids, (0..INLINE_COUNTS as u32 + 3).collect::<Vec<_>>());
        // Neighbours counting the same name are added up.
        let mut v = vec![
            (Field::App, 1, 1),
            (Field::App, 1, 2),
            (Field::Cipher, 1, 4),
            (Field::Cipher, 2, 8),
            (Field::Cipher, 2, 16),
        ];
        let n = coalesce(&mut v);
        v.truncate(n);
        assert_eq!(
            v,
            [
                (Field::App, 1, 3),
                (Field::Cipher, 1, 4),
                (Field::Cipher, 2, 24)
            ]
        );
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
        let certs: Vec<_> = list[0].certificates().collect();
        assert_eq!(certs.len(), 2);
        assert_eq!((certs[0].sha256, certs[0].flows), ("bb", 2));
        assert_eq!(certs[1].subject_cn, Some("a.example"));
        assert_eq!(certs[1].not_after, Some("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn written_json_is_what_serde_json_writes() {
        let mut inv = Inventory::new(MAX_SERVERS);
        for i in 1..=300 {
            let mut r = flow(i);
            if i % 5 == 0 {
                r.server.ip = "2001:db8::7".parse().unwrap();
                r.transport = Transport::Udp;
            }
            r.app_protocol = r.app_protocol.map(|p| format!("{p}\"\\\u{1}é"));
            inv.add(&r);
            let cn = ["a\"b\\c\n", "\u{7f}\u{202e}x", "plain"];
            let cn = cn.get(i as usize % 4).copied();
            let not_after = (i % 3 != 0).then_some("2027-01-01T00:00:00Z");
            if i % 7 != 0 {
                inv.add_certificate(&r, &format!("{:064x}", i % 9), cn, not_after);
            }
        }
        let (mut list, _) = inv.finish();
        // Every member the writer may leave out or spell as null.
        list[0].clients_capped = true;
        list[1].look_at = None;
        list[2].worst_severity = None;
        assert!(list.iter().any(|s| s.certificates().len() == 0));
        assert!(list.iter().any(|s| s.certificates().len() > 1));
        for s in &list {
            let mut got = Vec::new();
            s.write_json(&mut got).unwrap();
            let want = serde_json::to_vec(s).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(want).unwrap()
            );
        }
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
