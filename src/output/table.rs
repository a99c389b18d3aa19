//! The human table: one row per flow as it ends, then a summary. Terminal-aware
//! widths and colour; no byte from the wire reaches the terminal unescaped.

use super::servers::ServerRecord;
use super::{Sink, Summary};
use crate::record::{Code, Encryption, FlowRecord, Severity, Transport};
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
}

const RESET: &str = "\x1b[0m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BOLD: &str = "\x1b[1m";

/// Replaces anything that is not printable with `?`: a last line of defence,
/// since wire strings are already escaped when recorded.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || ('\u{80}'..='\u{9f}').contains(&c) {
                '?'
            } else {
                c
            }
        })
        .collect()
}

fn fit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        format!("{s:<w$}")
    } else if w == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('~');
        t
    }
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

impl<W: Write> Table<W> {
    pub fn new(out: W, color: bool, width: Option<usize>, flush_each: bool) -> Self {
        Table {
            out,
            color,
            width,
            header_done: false,
            flush_each,
            show_flows: true,
        }
    }

    /// No flow rows: the server table printed at the end replaces them.
    pub fn without_flows(mut self) -> Self {
        self.show_flows = false;
        self
    }

    /// Colour for the worst severity of a row.
    fn severity_color(worst: Option<Severity>) -> &'static str {
        match worst {
            Some(Severity::Critical | Severity::High) => RED,
            Some(Severity::Medium) => YELLOW,
            _ => "",
        }
    }

    /// Column widths: fixed ones first, the rest shared by endpoints, SNI,
    /// certificate and findings.
    fn widths(&self) -> [usize; 8] {
        let (id, proto, enc, ver) = (12, 12, 16, 16);
        match self.width {
            None => [id, 47, proto, enc, ver, 30, 40, 60],
            Some(total) => {
                let rest = total.saturating_sub(id + proto + enc + ver + 7).max(36);
                let ep = (rest * 36 / 100).max(12);
                let sni = (rest * 16 / 100).max(4);
                let cert = (rest * 22 / 100).max(6);
                let fnd = rest.saturating_sub(ep + sni + cert).max(4);
                [id, ep, proto, enc, ver, sni, cert, fnd]
            }
        }
    }

    fn paint(&self, s: String, color: &str) -> String {
        if self.color && !color.is_empty() {
            format!("{color}{s}{RESET}")
        } else {
            s
        }
    }

    fn row(&mut self, cells: [String; 8], colors: [&str; 8]) -> io::Result<()> {
        let w = self.widths();
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let width = w.get(i).copied().unwrap_or(10);
            let text = if i + 1 == cells.len() && self.width.is_none() {
                sanitize(cell)
            } else {
                fit(&sanitize(cell), width)
            };
            let painted = self.paint(text, colors.get(i).copied().unwrap_or(""));
            line.push_str(&painted);
            if i + 1 < cells.len() {
                line.push(' ');
            }
        }
        writeln!(self.out, "{}", line.trim_end())
    }

    /// Flows listed, not listed and evicted, and what the memory cap cost.
    fn flow_counts(&mut self, s: &Summary) -> io::Result<()> {
        writeln!(
            self.out,
            "flows: {} listed, {} without payload (not listed; --all shows them), {} evicted",
            s.flows.listed, s.flows.without_payload, s.flows.evicted
        )?;
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

/// Finding codes about the server's certificates, for the certificate column.
const CERT_CODES: &[Code] = &[
    Code::CertExpired,
    Code::CertNotYetValid,
    Code::CertNameMismatch,
    Code::CertSelfSigned,
    Code::WeakSignature,
];

/// The leaf certificate's name and expiry date, or the worst certificate
/// finding in front of the name.
fn certificate_cell(rec: &FlowRecord) -> (String, &'static str) {
    let Some(leaf) = rec.tls.as_ref().and_then(|t| t.certificates.first()) else {
        return ("-".to_string(), "");
    };
    let name = leaf
        .subject_cn
        .clone()
        .or_else(|| leaf.subject.clone())
        .unwrap_or_else(|| "(unparsed)".to_string());
    let worst = rec
        .findings
        .iter()
        .filter(|f| CERT_CODES.contains(&f.code))
        .max_by_key(|f| f.severity());
    match worst {
        Some(f) => (
            format!("{} {name}", f.code),
            if f.severity() >= Severity::High {
                RED
            } else {
                YELLOW
            },
        ),
        None => {
            let date = leaf
                .not_after
                .as_deref()
                .and_then(|d| d.get(..10))
                .unwrap_or("?");
            (format!("{name} (to {date})"), "")
        }
    }
}

fn ep(ip: std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
    }
}

/// `name n, name n`, most first (ties by name), or `-`.
fn tally<K: AsRef<str>>(counts: impl IntoIterator<Item = (K, u64)>) -> String {
    let mut v: Vec<(K, u64)> = counts.into_iter().collect();
    if v.is_empty() {
        return "-".to_string();
    }
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_ref().cmp(b.0.as_ref())));
    v.iter()
        .map(|(k, n)| format!("{} {n}", k.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cells of one server row.
fn server_cells(s: &ServerRecord) -> [String; 8] {
    let udp = if s.transport == Transport::Udp {
        "/udp"
    } else {
        ""
    };
    [
        format!("{}{udp}", ep(s.server.ip, s.server.port)),
        if s.app_protocols.is_empty() {
            "-".to_string()
        } else {
            s.app_protocols.join(",")
        },
        s.flows.to_string(),
        format!("{}{}", s.clients, if s.clients_capped { "+" } else { "" }),
        tally(s.by_encryption.iter().map(|(k, n)| (k.as_str(), *n))),
        tally(s.versions.iter().map(|(k, n)| (k.as_str(), *n))),
        match (s.worst_severity, s.look_at) {
            (Some(w), Some(l)) => format!("{} {}", w.as_str(), id_frame(l.id, l.input, l.frame)),
            (None, Some(l)) => format!("- {}", id_frame(l.id, l.input, l.frame)),
            (w, None) => w.map_or("-", Severity::as_str).to_string(),
        },
        tally(s.findings.iter().map(|(k, n)| (k.as_str(), *n))),
    ]
}

/// Column widths for the server table: natural widths, the wide text columns
/// shortened in turn until the row fits `total`; findings take the rest.
fn server_widths(rows: &[[String; 8]], total: Option<usize>) -> [usize; 8] {
    let mut w = [0usize; 8];
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(cell.chars().count());
            }
        }
    }
    let Some(total) = total else {
        return w;
    };
    // Shrink encryption, versions, protocols and the server column, most room first.
    for (i, floor) in [(4, 16), (5, 16), (1, 10), (0, 22)] {
        let used: usize = w.iter().sum::<usize>() + 7;
        if used <= total {
            break;
        }
        if let Some(x) = w.get_mut(i) {
            *x = (*x).saturating_sub(used - total).max(floor.min(*x));
        }
    }
    let used: usize = w.iter().take(7).sum::<usize>() + 7;
    if let Some(x) = w.get_mut(7) {
        *x = total.saturating_sub(used).max(10);
    }
    w
}

/// `7/12`: flow 7, whose packet to look at is frame 12 of the first input
/// (`7/12@1` in input 1), as tshark numbers packets.
fn id_frame(id: u64, input: usize, frame: u64) -> String {
    if input == 0 {
        format!("{id}/{frame}")
    } else {
        format!("{id}/{frame}@{input}")
    }
}

fn endpoints(rec: &FlowRecord) -> String {
    format!(
        "{} -> {}",
        ep(rec.client.ip, rec.client.port),
        ep(rec.server.ip, rec.server.port)
    )
}

impl<W: Write> Sink for Table<W> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        if !self.show_flows {
            return Ok(());
        }
        if !self.header_done {
            self.header_done = true;
            let h = [
                "ID/FRAME",
                "CLIENT -> SERVER",
                "PROTOCOL",
                "ENCRYPTION",
                "VERSION",
                "SNI",
                "CERTIFICATE",
                "FINDINGS",
            ]
            .map(String::from);
            self.row(h, [BOLD; 8])?;
        }
        let version = rec
            .tls
            .as_ref()
            .and_then(|t| t.version)
            .map_or_else(|| "-".to_string(), |v| v.to_string());
        let sni = rec
            .tls
            .as_ref()
            .and_then(|t| t.client_hello.as_ref())
            .and_then(|c| c.sni.clone())
            .unwrap_or_else(|| "-".to_string());
        let findings = if rec.findings.is_empty() {
            "-".to_string()
        } else {
            rec.findings
                .iter()
                .map(|f| f.code.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let (cert, cert_color) = certificate_cell(rec);
        let enc_color = match rec.encryption {
            Encryption::Tls | Encryption::Starttls | Encryption::Quic | Encryption::Dtls => GREEN,
            Encryption::Unknown | Encryption::Ssh | Encryption::Gssapi => "",
            _ => RED,
        };
        let find_color = Self::severity_color(rec.findings.iter().map(|f| f.severity()).max());
        self.row(
            [
                id_frame(rec.id, rec.input, rec.frames.first),
                endpoints(rec),
                rec.app_protocol.clone().unwrap_or_else(|| "-".to_string()),
                rec.encryption.as_str().to_string(),
                version,
                sni,
                cert,
                findings,
            ],
            ["", "", "", enc_color, "", "", cert_color, find_color],
        )?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    fn servers(&mut self, list: &[ServerRecord]) -> io::Result<()> {
        let header = [
            "SERVER",
            "PROTOCOLS",
            "FLOWS",
            "CLIENTS",
            "ENCRYPTION",
            "VERSIONS",
            "WORST ID/FRAME",
            "FINDINGS",
        ]
        .map(String::from);
        let mut rows = vec![header];
        rows.extend(list.iter().map(server_cells));
        let widths = server_widths(&rows, self.width);
        for (n, cells) in rows.iter().enumerate() {
            let worst = n.checked_sub(1).and_then(|i| list.get(i)?.worst_severity);
            let color = if n == 0 {
                BOLD
            } else {
                Self::severity_color(worst)
            };
            let mut line = String::new();
            for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
                let cell = sanitize(cell);
                let text = if i == 7 && self.width.is_none() {
                    cell
                } else if (i == 2 || i == 3) && n > 0 {
                    format!("{cell:>width$}")
                } else {
                    fit(&cell, width)
                };
                let painted = if i >= 6 {
                    self.paint(text, color)
                } else if n == 0 {
                    self.paint(text, BOLD)
                } else {
                    text
                };
                line.push_str(&painted);
                if i < 7 {
                    line.push(' ');
                }
            }
            writeln!(self.out, "{}", line.trim_end())?;
        }
        Ok(())
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
        self.capture_counts(s)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_removes_terminal_controls() {
        assert_eq!(sanitize("a\x1b[2Jb\u{9b}c\n"), "a?[2Jb?c?");
        assert_eq!(sanitize("mail.example.com"), "mail.example.com");
    }

    #[test]
    fn fit_truncates_with_marker() {
        assert_eq!(fit("abcdef", 4), "abc~");
        assert_eq!(fit("ab", 4), "ab  ");
    }
}
