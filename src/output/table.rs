//! The human table: one row per flow as it ends, then a summary. Sized to the
//! terminal: the client and server endpoints are never cut; the other columns
//! shrink, the findings wrap, and a narrow terminal gets two lines per flow.
//! Piped, every cell is whole. No byte from the wire reaches the terminal
//! unescaped.

use super::layout::{self, Cell, Col, Fit, Flex, id_frame};
use super::servers::ServerRecord;
use super::style::{BOLD, CERT_CODES, GREEN, paint, severity_color, shown};
use super::{Sink, Summary, escape};
use crate::record::{Code, Encryption, FlowRecord, Severity};
use std::io::{self, Write};

/// Table writer.
pub struct Table<W: Write> {
    out: W,
    color: bool,
    /// Total width to fit, or `None` for no limit (not a terminal).
    width: Option<usize>,
    header_done: bool,
    /// Flush after each row (live capture).
    flush_each: bool,
    /// Print a row per flow (not with `--servers`, whose table replaces them).
    show_flows: bool,
    /// A USER column (`--show-users`).
    users: bool,
    layout: FlowLayout,
}

/// `name count` pairs joined with commas, or `-` for none.
fn counts(m: Vec<(String, u64)>) -> String {
    if m.is_empty() {
        "-".to_string()
    } else {
        m.into_iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The width the table fits: `COLUMNS` when it holds a number (so a script or a
/// test can ask for a width), else the terminal's (120 when unknown) when
/// standard output is one, else none (piped: every cell whole).
pub fn width(tty: bool) -> Option<usize> {
    let columns = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0);
    columns.or_else(|| {
        tty.then(|| terminal_size::terminal_size().map_or(120, |(w, _)| usize::from(w.0)))
    })
}

/// ID/FRAME column width (`1234/567890`); the endpoints start one further.
const ID_W: usize = 10;
/// `CLIENT -> SERVER` column width: any IPv4 pair
/// (`255.255.255.255:65535 -> 255.255.255.255:65535`).
const EP_W: usize = 46;
/// Where the second line of a two-line row starts (the ID/FRAME is on the first).
const INDENT: usize = 6;
/// Where the body starts beside the endpoints.
const BESIDE: usize = ID_W + 1 + EP_W + 1;

/// The start of a row: its ID and its endpoints, which are never cut.
struct Head<'a> {
    id: &'a str,
    client: &'a str,
    /// Empty for the header, whose `client` holds the whole title.
    server: &'a str,
    color: &'static str,
}

/// Where the flow table's columns go at one width.
#[derive(Clone, Debug)]
struct FlowLayout {
    /// `None`: piped, the widths are minimums and nothing is cut.
    width: Option<usize>,
    /// One line per flow; else the endpoints on a line of their own.
    one_line: bool,
    /// PROTOCOL, ENCRYPTION, VERSION, SNI, CERTIFICATE, [USER,] FINDINGS.
    body: Vec<Col>,
}

/// Room the body needs to read well beside the endpoints (below it a terminal
/// gets two lines per flow): protocol, encryption, version, SNI, certificate and
/// findings at 12, 16, 8, 16, 20 and 24, a user at 12, and the spaces between.
fn comfortable(users: bool) -> usize {
    12 + 16 + 8 + 16 + 20 + 24 + 5 + if users { 13 } else { 0 }
}

/// The flexible columns: SNI, certificate, [user,] findings (which take the rest).
fn flexible(users: bool) -> Vec<Flex> {
    let flex = |min, max, weight| Flex { min, max, weight };
    let mut v = vec![flex(8, 40, 3), flex(10, 48, 4)];
    if users {
        v.push(flex(8, 32, 3));
    }
    // Room for the longer codes (`CERT_NAME_MISMATCH,`) on a line of their own.
    v.push(flex(20, usize::MAX, 5));
    v
}

impl FlowLayout {
    fn new(width: Option<usize>, users: bool) -> Self {
        let Some(total) = width else {
            let mut widths = vec![12, 16, 8, 30, 40];
            if users {
                widths.push(24);
            }
            let mut body: Vec<Col> = widths.into_iter().map(|w| Col::new(w, Fit::Cut)).collect();
            body.push(Col::new(0, Fit::Wrap));
            return FlowLayout {
                width,
                one_line: true,
                body,
            };
        };
        let one_line = BESIDE + comfortable(users) <= total;
        let room = total.saturating_sub(if one_line { BESIDE } else { INDENT });
        let flex = flexible(users);
        let seps = 2 + flex.len();
        let mins: usize = flex.iter().map(|f| f.min).sum();
        // Protocol and version give up a few characters before the flexible ones
        // go below their minimums.
        let (proto, ver) = if 12 + 16 + 8 + seps + mins <= room {
            (12, 8)
        } else {
            (8, 7)
        };
        let shares = layout::share(room.saturating_sub(proto + 16 + ver + seps), &flex);
        let mut body = vec![
            Col::new(proto, Fit::Cut),
            Col::new(16, Fit::Cut),
            Col::new(ver, Fit::Cut),
        ];
        let last = shares.len().saturating_sub(1);
        for (i, w) in shares.into_iter().enumerate() {
            body.push(Col::new(w, if i == last { Fit::Wrap } else { Fit::Cut }));
        }
        FlowLayout {
            width,
            one_line,
            body,
        }
    }

    /// Where the body starts.
    fn body_at(&self) -> usize {
        if self.one_line { BESIDE } else { INDENT }
    }

    /// The lines of one row. Beside the endpoints when they fit their column (or
    /// piped); else the endpoints on a line of their own (two if even that is too
    /// wide: the server on the second, after `->`) and the body below, at its
    /// usual columns.
    fn lines(
        &self,
        head: &Head,
        body: &[Cell],
        paint: &dyn Fn(&str, &'static str) -> String,
    ) -> Vec<String> {
        let at = self.body_at();
        let limited = self.width.is_some();
        let mut lines = layout::render(body, &self.body, limited, at, self.width, paint);
        let pair = if head.server.is_empty() {
            head.client.to_string()
        } else {
            format!("{} -> {}", head.client, head.server)
        };
        let id = format!(
            "{}{}",
            paint(head.id, head.color),
            " ".repeat(ID_W.saturating_sub(layout::width(head.id)))
        );
        let beside = self.one_line && (layout::width(&pair) <= EP_W || !limited);
        let mut out = Vec::with_capacity(lines.len() + 2);
        if beside {
            let gap = " ".repeat(EP_W.saturating_sub(layout::width(&pair)));
            let first = lines.first().map_or("", String::as_str);
            let line = format!("{id} {}{gap} {first}", paint(&pair, head.color));
            out.push(line.trim_end().to_string());
            out.extend(lines.into_iter().skip(1));
            return out;
        }
        let too_wide = self
            .width
            .is_some_and(|w| INDENT + layout::width(&pair) > w);
        if too_wide && !head.server.is_empty() {
            out.push(format!("{id} {}", paint(head.client, head.color)));
            let server = format!("-> {}", head.server);
            out.push(format!(
                "{}{}",
                " ".repeat(INDENT),
                paint(&server, head.color)
            ));
        } else {
            out.push(format!("{id} {}", paint(&pair, head.color)));
        }
        if let Some(first) = lines.first_mut() {
            *first = format!("{}{first}", " ".repeat(at));
        }
        out.extend(lines);
        out
    }
}

impl<W: Write> Table<W> {
    pub fn new(out: W, color: bool, width: Option<usize>, flush_each: bool) -> Self {
        Table {
            out,
            color,
            width,
            header_done: false,
            flush_each,
            show_flows: true,
            users: false,
            layout: FlowLayout::new(width, false),
        }
    }

    /// No flow rows: the server table printed at the end replaces them.
    pub fn without_flows(mut self) -> Self {
        self.show_flows = false;
        self
    }

    /// A USER column: the user and mechanism of credentials seen in cleartext
    /// (`--show-users`).
    pub fn with_users(mut self, on: bool) -> Self {
        self.users = on;
        self.layout = FlowLayout::new(self.width, on);
        self
    }

    fn write_row(&mut self, head: &Head, body: &[Cell]) -> io::Result<()> {
        let on = self.color;
        let paint = move |s: &str, c: &'static str| paint(on, s, c);
        for line in self.layout.lines(head, body, &paint) {
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    fn header(&mut self) -> io::Result<()> {
        let mut names = vec!["PROTOCOL", "ENCRYPTION", "VERSION", "SNI", "CERTIFICATE"];
        if self.users {
            names.push("USER");
        }
        names.push("FINDINGS");
        let body: Vec<Cell> = names.into_iter().map(|n| Cell::colored(n, BOLD)).collect();
        let head = Head {
            id: "ID/FRAME",
            client: "CLIENT -> SERVER",
            server: "",
            color: BOLD,
        };
        self.write_row(&head, &body)
    }

    /// Flows listed, not listed and evicted, and what the memory cap cost.
    fn flow_counts(&mut self, s: &Summary) -> io::Result<()> {
        writeln!(
            self.out,
            "flows: {} listed, {} without payload (not listed; --all shows them), {} evicted",
            s.flows.listed, s.flows.without_payload, s.flows.evicted
        )?;
        if let Some(n) = s.flows.selected {
            writeln!(self.out, "selected: {n} of the listed flows match --select")?;
        }
        let m = &s.memory;
        if m.buffering_stopped + m.tombstones_dropped + m.evicted > 0 {
            writeln!(
                self.out,
                "memcap {} MiB reached: out-of-order buffering stopped for {} flows, {} closed-connection records dropped, {} flows evicted",
                m.memcap >> 20,
                m.buffering_stopped,
                m.tombstones_dropped,
                m.evicted
            )?;
        }
        Ok(())
    }

    /// Flows by encryption and by version, and findings by code.
    fn breakdowns(&mut self, s: &Summary) -> io::Result<()> {
        writeln!(
            self.out,
            "encryption: {}",
            counts(
                s.by_encryption
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect()
            )
        )?;
        writeln!(
            self.out,
            "versions: {}",
            counts(s.by_version.iter().map(|(k, v)| (k.clone(), *v)).collect())
        )?;
        writeln!(
            self.out,
            "findings: {}",
            counts(
                s.by_finding
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect()
            )
        )
    }

    /// Packets by kind, and the UDP conversations not listed.
    fn packet_counts(&mut self, s: &Summary) -> io::Result<()> {
        let p = &s.packets;
        writeln!(
            self.out,
            "packets: {} ({} bytes): {} TCP, {} UDP, {} other, {} IP fragments, {} undecodable",
            p.total, p.bytes, p.tcp, p.udp, p.non_tcp, p.ip_fragments, p.undecodable
        )?;
        let u = &s.udp;
        if u.other > 0 {
            writeln!(
                self.out,
                "other UDP (not listed): {} conversations; by server port: {}",
                u.other,
                counts(
                    u.top_ports()
                        .iter()
                        .map(|c| (c.port.to_string(), c.flows))
                        .collect()
                )
            )?;
        }
        Ok(())
    }

    /// What the capture lost (live), and the link types that could not be read.
    fn capture_counts(&mut self, s: &Summary) -> io::Result<()> {
        if let Some(c) = &s.capture {
            writeln!(
                self.out,
                "capture: {} received, {} dropped by the kernel, {} dropped by the interface",
                c.received, c.dropped_by_kernel, c.dropped_by_interface
            )?;
        }
        let p = &s.packets;
        if !p.unsupported_link_types.is_empty() {
            writeln!(
                self.out,
                "unsupported link types: {}",
                counts(
                    p.unsupported_link_types
                        .iter()
                        .map(|(k, v)| (format!("LINKTYPE {k}"), *v))
                        .collect()
                )
            )?;
        }
        Ok(())
    }
}

/// Finding codes about the negotiated version, for the version column's colour.
const VERSION_CODES: &[Code] = &[Code::Sslv2, Code::Sslv3, Code::DeprecatedTls];

/// The worst severity among a flow's findings of `codes` (all shown codes when empty).
fn worst_of(rec: &FlowRecord, codes: &[Code]) -> Option<Severity> {
    rec.findings
        .iter()
        .filter(|f| shown(f.code) && (codes.is_empty() || codes.contains(&f.code)))
        .map(|f| f.severity())
        .max()
}

/// The day of an RFC 3339 time.
fn day(t: Option<&str>) -> &str {
    t.and_then(|d| d.get(..10)).unwrap_or("?")
}

/// The leaf certificate's name and the date that matters: when it expires, when
/// it expired, or when it becomes valid; coloured by the worst certificate
/// finding. Without a certificate: encrypted (TLS 1.3 sends it encrypted),
/// resumed (none was sent), or `-`.
fn certificate_cell(rec: &FlowRecord) -> Cell {
    let Some(tls) = rec.tls.as_ref() else {
        return Cell::plain("-");
    };
    let Some(leaf) = tls.certificates.first() else {
        let tls13 = tls
            .version
            .is_some_and(|v| v.is_tls13() || v == crate::version::Version::DTLS13)
            || rec.encryption == Encryption::Quic;
        let text = if tls.resumed {
            "(resumed)"
        } else if tls13 {
            "(encrypted)"
        } else {
            "-"
        };
        return Cell::plain(text);
    };
    let name = leaf
        .subject_cn
        .as_deref()
        .or(leaf.subject.as_deref())
        .unwrap_or("(unparsed)");
    let has = |c: Code| rec.findings.iter().any(|f| f.code == c);
    let when = if has(Code::CertExpired) {
        format!("expired {}", day(leaf.not_after.as_deref()))
    } else if has(Code::CertNotYetValid) {
        format!("from {}", day(leaf.not_before.as_deref()))
    } else {
        format!("to {}", day(leaf.not_after.as_deref()))
    };
    Cell::colored(
        format!("{name} ({when})"),
        severity_color(worst_of(rec, CERT_CODES)),
    )
}

/// Whether an encryption protects the flow's payload.
fn encrypted(e: Encryption) -> bool {
    matches!(
        e,
        Encryption::Tls
            | Encryption::Starttls
            | Encryption::Quic
            | Encryption::Dtls
            | Encryption::Ssh
            | Encryption::Gssapi
    )
}

/// The encryption cell, coloured by the flow's worst finding; green only for an
/// encrypted flow without one.
fn encryption_cell(rec: &FlowRecord) -> Cell {
    let color = match worst_of(rec, &[]) {
        None if encrypted(rec.encryption) => GREEN,
        worst => severity_color(worst),
    };
    Cell::colored(rec.encryption.as_str(), color)
}

/// `user (MECHANISM)` for each credential seen in cleartext, or `-`.
fn users_cell(rec: &FlowRecord) -> Cell {
    if rec.cleartext_auth.is_empty() {
        return Cell::plain("-");
    }
    let list: Vec<String> = rec
        .cleartext_auth
        .iter()
        .map(|a| match &a.user {
            Some(u) => format!("{u} ({})", a.mechanism),
            None => format!("({})", a.mechanism),
        })
        .collect();
    Cell::colored(
        list.join(", "),
        severity_color(Some(Code::CleartextAuth.severity())),
    )
}

/// The body cells of one flow's row, escaped.
fn flow_cells(rec: &FlowRecord, users: bool) -> Vec<Cell> {
    let tls = rec.tls.as_ref();
    let version = tls
        .and_then(|t| t.version)
        .map_or_else(|| "-".to_string(), |v| v.to_string());
    let sni = tls
        .and_then(|t| t.client_hello.as_ref())
        .and_then(|c| c.sni.as_deref())
        .unwrap_or("-");
    let findings: Vec<&str> = rec
        .findings
        .iter()
        .filter(|f| shown(f.code))
        .map(|f| f.code.as_str())
        .collect();
    let findings = if findings.is_empty() {
        "-".to_string()
    } else {
        findings.join(",")
    };
    let mut cells = vec![
        Cell::plain(rec.app_protocol.as_deref().unwrap_or("-")),
        encryption_cell(rec),
        Cell::colored(version, severity_color(worst_of(rec, VERSION_CODES))),
        Cell::plain(sni),
        certificate_cell(rec),
    ];
    if users {
        cells.push(users_cell(rec));
    }
    cells.push(Cell::colored(findings, severity_color(worst_of(rec, &[]))));
    for c in &mut cells {
        c.text = escape(&c.text).into_owned();
    }
    cells
}

impl<W: Write> Sink for Table<W> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        if !self.show_flows {
            return Ok(());
        }
        if !self.header_done {
            self.header_done = true;
            self.header()?;
        }
        let body = flow_cells(rec, self.users);
        let id = id_frame(rec.id, rec.input, rec.frames.first);
        let client = super::endpoint(rec.client.ip, rec.client.port);
        let server = super::endpoint(rec.server.ip, rec.server.port);
        let head = Head {
            id: &id,
            client: &client,
            server: &server,
            color: "",
        };
        self.write_row(&head, &body)?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    fn servers(&mut self, list: &[ServerRecord]) -> io::Result<()> {
        let lines = super::server_table::lines(list, self.width, self.color);
        for line in lines {
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    fn certificates(&mut self, list: &[super::certificates::CertificateRecord]) -> io::Result<()> {
        super::certificates::write_table(&mut self.out, list, self.width, &|s| {
            escape(s).into_owned()
        })
    }

    fn finish(&mut self, s: &Summary) -> io::Result<()> {
        writeln!(self.out)?;
        self.flow_counts(s)?;
        self.breakdowns(s)?;
        self.packet_counts(s)?;
        if let Some(v) = &s.servers {
            writeln!(
                self.out,
                "servers: {} listed, {} flows to servers past --max-servers, {} with more clients than remembered",
                v.listed, v.flows_beyond_cap, v.clients_capped
            )?;
        }
        if let Some(c) = &s.certificates {
            writeln!(
                self.out,
                "certificates: {} listed, {} flows under certificates past --max-certificates",
                c.listed, c.flows_beyond_cap
            )?;
        }
        self.capture_counts(s)?;
        for line in s.notice_lines() {
            writeln!(self.out, "{}", escape(&line))?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests;
