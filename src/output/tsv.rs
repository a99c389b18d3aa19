//! `--format tsv`: tab-separated values with a header line, one line per flow
//! (with `--servers`, per server), for spreadsheets and `cut`/`awk` pipelines.
//! Each column is a named field or any dotted path into the JSON record
//! (`tls.client_hello.ja4`, `tls.certificates.0.issuer`), so a value is always
//! the JSON's: `-` for null or empty, lists joined with commas, objects of
//! counts as `key=n,key=n`. Values are escaped as in the table, so no value
//! holds a tab, a newline or another control character.

use super::servers::ServerRecord;
use super::{Sink, Summary, escape};
use crate::record::{FlowRecord, Severity};
use serde::Serialize;
use serde_json::Value;
use std::io::{self, Write};

/// How a named field is read from the JSON record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Get {
    /// The value at a dotted path.
    Path(&'static str),
    /// `ip:port` (`[ip]:port` for IPv6) of the endpoint object at a path.
    Endpoint(&'static str),
    /// One key of each element of the array at a path, joined with commas.
    Pluck(&'static str, &'static str),
    /// The worst `severity` among the elements of the array at a path.
    Worst(&'static str),
}

/// A named field: its name, where it comes from, and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Named {
    pub name: &'static str,
    get: Get,
    pub meaning: &'static str,
}

const fn named(name: &'static str, get: Get, meaning: &'static str) -> Named {
    Named { name, get, meaning }
}

/// The named fields of a flow line.
pub const FLOW_FIELDS: &[Named] = &[
    named("id", Get::Path("id"), "the flow's number"),
    named("transport", Get::Path("transport"), "tcp or udp"),
    named("start", Get::Path("start"), "first packet (RFC 3339)"),
    named("end", Get::Path("end"), "last packet (RFC 3339)"),
    named("client", Get::Endpoint("client"), "client address and port"),
    named("client_ip", Get::Path("client.ip"), "client address"),
    named("client_port", Get::Path("client.port"), "client port"),
    named("server", Get::Endpoint("server"), "server address and port"),
    named("server_ip", Get::Path("server.ip"), "server address"),
    named("server_port", Get::Path("server.port"), "server port"),
    named("app", Get::Path("app_protocol"), "application protocol"),
    named(
        "encryption",
        Get::Path("encryption"),
        "how the flow was protected",
    ),
    named(
        "version",
        Get::Path("tls.version"),
        "negotiated TLS version",
    ),
    named(
        "sni",
        Get::Path("tls.client_hello.sni"),
        "server name the client asked for",
    ),
    named(
        "alpn",
        Get::Path("tls.server_hello.alpn"),
        "application protocol the server chose",
    ),
    named(
        "cipher",
        Get::Path("tls.server_hello.cipher_suite"),
        "cipher suite the server chose",
    ),
    named(
        "certificate",
        Get::Path("tls.certificates.0.subject_cn"),
        "the server certificate's common name",
    ),
    named(
        "not_after",
        Get::Path("tls.certificates.0.not_after"),
        "when the server certificate expires",
    ),
    named(
        "cert_sha256",
        Get::Path("tls.certificates.0.sha256"),
        "SHA-256 of the server certificate",
    ),
    named(
        "ja3",
        Get::Path("tls.client_hello.ja3"),
        "JA3 of the ClientHello",
    ),
    named(
        "ja4",
        Get::Path("tls.client_hello.ja4"),
        "JA4 of the ClientHello",
    ),
    named(
        "ja3s",
        Get::Path("tls.server_hello.ja3s"),
        "JA3S of the ServerHello",
    ),
    named(
        "severity",
        Get::Worst("findings"),
        "the worst finding's severity",
    ),
    named(
        "findings",
        Get::Pluck("findings", "code"),
        "finding codes, most severe first",
    ),
    named("notes", Get::Path("notes"), "notes on the flow"),
    named(
        "auth",
        Get::Pluck("cleartext_auth", "mechanism"),
        "mechanisms of credentials sent in cleartext",
    ),
    named(
        "users",
        Get::Pluck("cleartext_auth", "user"),
        "their users (with --show-users)",
    ),
    named(
        "client_packets",
        Get::Path("packets.client"),
        "packets from the client",
    ),
    named(
        "server_packets",
        Get::Path("packets.server"),
        "packets from the server",
    ),
    named(
        "client_bytes",
        Get::Path("bytes.client"),
        "payload bytes from the client",
    ),
    named(
        "server_bytes",
        Get::Path("bytes.server"),
        "payload bytes from the server",
    ),
    named(
        "end_reason",
        Get::Path("end_reason"),
        "why the flow's record was closed",
    ),
    named(
        "community_id",
        Get::Path("community_id"),
        "the Community ID v1 flow hash",
    ),
    named(
        "input",
        Get::Path("input"),
        "index of the flow's input in inputs",
    ),
    named(
        "first_frame",
        Get::Path("frames.first"),
        "packet number of the flow's first packet in its input",
    ),
];

/// The named fields of a server line (`--servers`).
pub const SERVER_FIELDS: &[Named] = &[
    named("server", Get::Endpoint("server"), "server address and port"),
    named("server_ip", Get::Path("server.ip"), "server address"),
    named("server_port", Get::Path("server.port"), "server port"),
    named("transport", Get::Path("transport"), "tcp or udp"),
    named(
        "apps",
        Get::Path("app_protocols"),
        "application protocols seen",
    ),
    named("flows", Get::Path("flows"), "flows to the server"),
    named("clients", Get::Path("clients"), "distinct client addresses"),
    named(
        "encryption",
        Get::Path("by_encryption"),
        "flows by encryption",
    ),
    named("versions", Get::Path("versions"), "TLS flows by version"),
    named(
        "ciphers",
        Get::Path("cipher_suites"),
        "flows by cipher suite",
    ),
    named(
        "certificate",
        Get::Path("certificates.0.subject_cn"),
        "the certificate most flows saw",
    ),
    named(
        "not_after",
        Get::Path("certificates.0.not_after"),
        "when it expires",
    ),
    named(
        "severity",
        Get::Path("worst_severity"),
        "the worst finding's severity",
    ),
    named("findings", Get::Path("findings"), "flows by finding code"),
    named("first", Get::Path("first"), "start of the earliest flow"),
    named("last", Get::Path("last"), "end of the latest flow"),
];

/// Flow columns without `--fields`.
pub const FLOW_DEFAULT: &str =
    "id,start,client,server,app,encryption,version,sni,certificate,not_after,severity,findings";
/// Server columns without `--fields`.
pub const SERVER_DEFAULT: &str = "server,transport,apps,flows,clients,encryption,versions,certificate,not_after,severity,findings";

/// The top-level keys of a flow record and of a server record, where a dotted
/// path may start.
const FLOW_KEYS: &[&str] = &[
    "type",
    "id",
    "transport",
    "start",
    "end",
    "client",
    "server",
    "tunnel",
    "app_protocol",
    "encryption",
    "starttls",
    "proxy",
    "tls",
    "quic",
    "dtls",
    "cleartext_auth",
    "packets",
    "bytes",
    "end_reason",
    "incomplete",
    "findings",
    "community_id",
    "input",
    "frames",
    "frame_inputs",
    "notes",
];
const SERVER_KEYS: &[&str] = &[
    "type",
    "transport",
    "server",
    "app_protocols",
    "flows",
    "clients",
    "clients_capped",
    "by_encryption",
    "versions",
    "cipher_suites",
    "certificates",
    "findings",
    "worst_severity",
    "first",
    "last",
    "look_at",
];

/// One column: its header and how its value is read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Column {
    header: String,
    get: Get,
    /// A path given on the command line (for [`Get::Path`] of a named field it is `None`).
    path: Option<String>,
}

/// The columns of a TSV report, for flow lines or server lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    cols: Vec<Column>,
    /// Server lines (`--servers`) instead of flow lines.
    pub servers: bool,
}

impl Columns {
    /// Parses `--fields` (the default columns when empty): named fields, or
    /// dotted paths into the JSON record.
    pub fn parse<S: AsRef<str>>(fields: &[S], servers: bool) -> Result<Self, String> {
        let (named, keys, default) = if servers {
            (SERVER_FIELDS, SERVER_KEYS, SERVER_DEFAULT)
        } else {
            (FLOW_FIELDS, FLOW_KEYS, FLOW_DEFAULT)
        };
        let words: Vec<String> = if fields.is_empty() {
            default.split(',').map(str::to_string).collect()
        } else {
            fields
                .iter()
                .map(|f| f.as_ref().trim().to_string())
                .collect()
        };
        let mut cols = Vec::with_capacity(words.len());
        for w in words {
            if let Some(n) = named.iter().find(|n| n.name == w) {
                cols.push(Column {
                    header: w,
                    get: n.get,
                    path: None,
                });
            } else if keys.contains(&w.split('.').next().unwrap_or("")) {
                cols.push(Column {
                    header: w.clone(),
                    get: Get::Path(""),
                    path: Some(w),
                });
            } else {
                let names: Vec<&str> = named.iter().map(|n| n.name).collect();
                return Err(format!(
                    "--fields: unknown field '{w}' (fields: {}; or a dotted path into the JSON {} record, starting with one of: {})",
                    names.join(", "),
                    if servers { "server" } else { "flow" },
                    keys.join(", ")
                ));
            }
        }
        Ok(Columns { cols, servers })
    }

    /// The default columns (those `--fields` gives without a list).
    pub fn defaults(servers: bool) -> Self {
        let (named, default) = if servers {
            (SERVER_FIELDS, SERVER_DEFAULT)
        } else {
            (FLOW_FIELDS, FLOW_DEFAULT)
        };
        let cols = default
            .split(',')
            .filter_map(|w| named.iter().find(|n| n.name == w))
            .map(|n| Column {
                header: n.name.to_string(),
                get: n.get,
                path: None,
            })
            .collect();
        Columns { cols, servers }
    }

    fn header(&self) -> String {
        let names: Vec<String> = self
            .cols
            .iter()
            .map(|c| escape(&c.header).into_owned())
            .collect();
        names.join("\t")
    }

    /// One line of values for a record's JSON.
    fn line(&self, v: &Value) -> String {
        let cells: Vec<String> = self
            .cols
            .iter()
            .map(|c| {
                let text = match (&c.path, c.get) {
                    (Some(p), _) => render(at(v, p)),
                    (None, g) => value(v, g),
                };
                escape(&text).into_owned()
            })
            .collect();
        cells.join("\t")
    }
}

/// The value at a dotted path (array elements by number), or null.
fn at<'v>(v: &'v Value, path: &str) -> &'v Value {
    let mut cur = v;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        cur = match cur {
            Value::Object(m) => m.get(seg).unwrap_or(&Value::Null),
            Value::Array(a) => seg
                .parse::<usize>()
                .ok()
                .and_then(|i| a.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    cur
}

/// A scalar as text (`-` for null).
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("-".to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON value as one TSV cell: `-` for null and empty, lists of scalars joined
/// with commas, objects of scalars as `key=value,...`, anything deeper as JSON.
fn render(v: &Value) -> String {
    if let Some(s) = scalar(v) {
        return s;
    }
    let parts: Option<Vec<String>> = match v {
        Value::Array(a) if a.is_empty() => return "-".to_string(),
        Value::Object(m) if m.is_empty() => return "-".to_string(),
        Value::Array(a) => a.iter().map(scalar).collect(),
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| scalar(x).map(|s| format!("{k}={s}")))
            .collect(),
        _ => None,
    };
    parts.map_or_else(|| v.to_string(), |p| p.join(","))
}

/// A named field's value.
fn value(v: &Value, get: Get) -> String {
    match get {
        Get::Path(p) => render(at(v, p)),
        Get::Endpoint(p) => {
            let ep = at(v, p);
            match (ep.get("ip").and_then(Value::as_str), ep.get("port")) {
                (Some(ip), Some(port)) if ip.contains(':') => format!("[{ip}]:{port}"),
                (Some(ip), Some(port)) => format!("{ip}:{port}"),
                _ => "-".to_string(),
            }
        }
        Get::Pluck(p, key) => {
            let items: Vec<String> = at(v, p)
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.get(key).and_then(scalar))
                        .collect()
                })
                .unwrap_or_default();
            if items.is_empty() {
                "-".to_string()
            } else {
                items.join(",")
            }
        }
        Get::Worst(p) => at(v, p)
            .as_array()
            .and_then(|a| {
                a.iter()
                    .filter_map(|x| x.get("severity").and_then(Value::as_str))
                    .filter_map(|s| Severity::ALL.iter().find(|k| k.as_str() == s))
                    .max()
            })
            .map_or("-", |s| s.as_str())
            .to_string(),
    }
}

/// The TSV writer.
pub struct Tsv<W: Write> {
    out: W,
    columns: Columns,
    header_done: bool,
    /// Flush after each line (live capture).
    flush_each: bool,
}

impl<W: Write> Tsv<W> {
    pub fn new(out: W, columns: Columns, flush_each: bool) -> Self {
        Tsv {
            out,
            columns,
            header_done: false,
            flush_each,
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_done {
            self.header_done = true;
            writeln!(self.out, "{}", self.columns.header())?;
        }
        Ok(())
    }

    fn record<T: Serialize>(&mut self, rec: &T) -> io::Result<()> {
        self.header()?;
        let v = serde_json::to_value(rec)?;
        writeln!(self.out, "{}", self.columns.line(&v))?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }
}

impl<W: Write> Sink for Tsv<W> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        if self.columns.servers {
            return Ok(());
        }
        self.record(rec)
    }

    fn servers(&mut self, list: &[ServerRecord]) -> io::Result<()> {
        list.iter().try_for_each(|s| self.record(s))
    }

    /// The header even without a record; the summary is not part of the TSV
    /// (the exit status and standard error still tell).
    fn finish(&mut self, _summary: &Summary) -> io::Result<()> {
        self.header()?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Code, Endpoint, Finding};
    use crate::time::Timestamp;

    fn rec() -> FlowRecord {
        let ep = |ip: &str, port| Endpoint {
            ip: ip.parse().unwrap(),
            port,
        };
        let mut r = FlowRecord::new(
            7,
            Timestamp::default(),
            ep("2001:db8::1", 5000),
            ep("192.0.2.1", 25),
        );
        r.app_protocol = Some("smtp\twith\ntabs".into());
        r.findings = vec![
            Finding::new(Code::CleartextAuth, String::new()),
            Finding::new(Code::Plaintext, String::new()),
        ];
        r
    }

    fn tsv(fields: &[&str], recs: &[FlowRecord]) -> String {
        let mut buf = Vec::new();
        {
            let cols = Columns::parse(fields, false).unwrap();
            let mut t = Tsv::new(&mut buf, cols, false);
            for r in recs {
                t.flow(r).unwrap();
            }
            t.finish(&Summary::new(vec![])).unwrap();
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn named_fields_and_paths_read_the_json() {
        let out = tsv(
            &[
                "id",
                "client",
                "server",
                "app",
                "version",
                "severity",
                "findings",
                "notes",
                "packets",
                "tls.client_hello.sni",
            ],
            &[rec()],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "id\tclient\tserver\tapp\tversion\tseverity\tfindings\tnotes\tpackets\ttls.client_hello.sni",
                "7\t[2001:db8::1]:5000\t192.0.2.1:25\tsmtp\\x09with\\x0atabs\t-\thigh\tCLEARTEXT_AUTH,PLAINTEXT\t-\tclient=0,server=0\t-",
            ]
        );
    }

    #[test]
    fn the_header_comes_alone_without_records_and_defaults_are_named_fields() {
        assert_eq!(
            tsv(&[], &[]),
            format!("{}\n", FLOW_DEFAULT.replace(',', "\t"))
        );
        assert_eq!(
            Columns::defaults(false),
            Columns::parse::<&str>(&[], false).unwrap()
        );
        assert_eq!(
            Columns::defaults(true),
            Columns::parse::<&str>(&[], true).unwrap()
        );
        assert_eq!(
            Columns::defaults(true).cols.len(),
            SERVER_DEFAULT.split(',').count()
        );
    }

    #[test]
    fn unknown_fields_are_errors_naming_the_valid_ones() {
        let e = Columns::parse(&["client", "colour"], false).unwrap_err();
        assert!(
            e.contains("'colour'") && e.contains("findings") && e.contains("tls"),
            "{e}"
        );
        assert!(Columns::parse(&["flows"], false).is_err());
        assert!(Columns::parse(&["flows", "cipher_suites.X"], true).is_ok());
        assert!(Columns::parse(&["quic.version", "tls.certificates.0.issuer"], false).is_ok());
    }

    /// The README's TSV tables list every named field.
    #[test]
    fn the_readme_documents_every_field() {
        let readme = include_str!("../../README.md");
        let section = readme.split("\n## TSV\n").nth(1).unwrap_or("");
        let section = section.split("\n## ").next().unwrap_or("");
        let (flows, servers) = section
            .split_once("| server field")
            .unwrap_or((section, ""));
        for f in FLOW_FIELDS {
            assert!(flows.contains(&format!("| `{}` |", f.name)), "{}", f.name);
        }
        for f in SERVER_FIELDS {
            assert!(servers.contains(&format!("| `{}` |", f.name)), "{}", f.name);
        }
        assert!(section.contains(FLOW_DEFAULT) && section.contains(SERVER_DEFAULT));
    }

    /// The names in the first column of the first table after `heading`.
    fn table_names(readme: &str, heading: &str) -> Vec<String> {
        let section = readme.split(heading).nth(1).unwrap_or("");
        let table = section
            .split("\n\n")
            .map(str::trim_start)
            .find(|p| p.starts_with("| "))
            .unwrap_or("");
        table
            .lines()
            .skip(2)
            .flat_map(|l| l.split('|').nth(1).unwrap_or("").split(','))
            .map(|n| n.trim().trim_matches('`').to_string())
            .collect()
    }

    /// A dotted path may start at any field the README's JSON contract lists.
    #[test]
    fn every_documented_record_field_starts_a_path() {
        let readme = include_str!("../../README.md");
        let flow = table_names(readme, "\n### Flow\n");
        assert!(flow.len() >= 20, "{flow:?}");
        for f in &flow {
            assert!(FLOW_KEYS.contains(&f.as_str()), "flow field {f}");
        }
        let server = table_names(readme, "\n### Servers\n");
        assert!(server.len() >= 14, "{server:?}");
        for f in &server {
            assert!(SERVER_KEYS.contains(&f.as_str()), "server field {f}");
        }
    }

    #[test]
    fn values_render_as_documented() {
        use serde_json::json;
        assert_eq!(render(&json!(null)), "-");
        assert_eq!(render(&json!([])), "-");
        assert_eq!(render(&json!({})), "-");
        assert_eq!(render(&json!("")), "");
        assert_eq!(render(&json!(["a", 1, true])), "a,1,true");
        assert_eq!(
            render(&json!({"tls": 3, "plaintext": 1})),
            "plaintext=1,tls=3"
        );
        assert_eq!(render(&json!([{"a": 1}])), "[{\"a\":1}]");
        assert_eq!(at(&json!({"a": [{"b": 2}]}), "a.0.b"), &json!(2));
        assert_eq!(at(&json!({"a": 1}), "a.b.c"), &json!(null));
    }
}
