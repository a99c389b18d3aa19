//! The human table: one row per flow as it ends, then a summary. Terminal-aware
//! widths and colour; no byte from the wire reaches the terminal unescaped.

use super::{Sink, Summary};
use crate::record::{Encryption, FlowRecord, Severity};
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

impl<W: Write> Table<W> {
    pub fn new(out: W, color: bool, width: Option<usize>, flush_each: bool) -> Self {
        Table {
            out,
            color,
            width,
            header_done: false,
            flush_each,
        }
    }

    /// Column widths: fixed ones first, the rest shared by endpoints, SNI and findings.
    fn widths(&self) -> [usize; 7] {
        let (id, proto, enc, ver) = (5, 12, 16, 16);
        match self.width {
            None => [id, 47, proto, enc, ver, 30, 60],
            Some(total) => {
                let rest = total.saturating_sub(id + proto + enc + ver + 6).max(30);
                let ep = (rest * 45 / 100).max(12);
                let sni = (rest * 20 / 100).max(4);
                let fnd = rest.saturating_sub(ep + sni).max(4);
                [id, ep, proto, enc, ver, sni, fnd]
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

    fn row(&mut self, cells: [String; 7], colors: [&str; 7]) -> io::Result<()> {
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
}

fn endpoints(rec: &FlowRecord) -> String {
    let ep = |ip: std::net::IpAddr, port: u16| match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
    };
    format!(
        "{} -> {}",
        ep(rec.client.ip, rec.client.port),
        ep(rec.server.ip, rec.server.port)
    )
}

impl<W: Write> Sink for Table<W> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        if !self.header_done {
            self.header_done = true;
            let h = [
                "ID",
                "CLIENT -> SERVER",
                "PROTOCOL",
                "ENCRYPTION",
                "VERSION",
                "SNI",
                "FINDINGS",
            ]
            .map(String::from);
            self.row(h, [BOLD; 7])?;
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
                .map(|f| f.code)
                .collect::<Vec<_>>()
                .join(",")
        };
        let enc_color = match rec.encryption {
            Encryption::Tls | Encryption::Starttls => GREEN,
            Encryption::Unknown | Encryption::Ssh | Encryption::Gssapi => "",
            _ => RED,
        };
        let worst = rec.findings.iter().map(|f| f.severity).max();
        let find_color = match worst {
            Some(Severity::Critical | Severity::High) => RED,
            Some(Severity::Medium) => YELLOW,
            _ => "",
        };
        self.row(
            [
                rec.id.to_string(),
                endpoints(rec),
                rec.app_protocol.clone().unwrap_or_else(|| "-".to_string()),
                rec.encryption.as_str().to_string(),
                version,
                sni,
                findings,
            ],
            ["", "", "", enc_color, "", "", find_color],
        )?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self, s: &Summary) -> io::Result<()> {
        let join = |m: Vec<(String, u64)>| {
            if m.is_empty() {
                "-".to_string()
            } else {
                m.into_iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(self.out)?;
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
        writeln!(
            self.out,
            "encryption: {}",
            join(
                s.by_encryption
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect()
            )
        )?;
        writeln!(
            self.out,
            "versions: {}",
            join(s.by_version.iter().map(|(k, v)| (k.clone(), *v)).collect())
        )?;
        writeln!(
            self.out,
            "findings: {}",
            join(
                s.by_finding
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect()
            )
        )?;
        let p = &s.packets;
        writeln!(
            self.out,
            "packets: {} ({} bytes): {} TCP, {} non-TCP, {} IP fragments, {} undecodable",
            p.total, p.bytes, p.tcp, p.non_tcp, p.ip_fragments, p.undecodable
        )?;
        if let Some(c) = &s.capture {
            writeln!(
                self.out,
                "capture: {} received, {} dropped by the kernel, {} dropped by the interface",
                c.received, c.dropped_by_kernel, c.dropped_by_interface
            )?;
        }
        if !p.unsupported_link_types.is_empty() {
            writeln!(
                self.out,
                "unsupported link types: {}",
                join(
                    p.unsupported_link_types
                        .iter()
                        .map(|(k, v)| (format!("LINKTYPE {k}"), *v))
                        .collect()
                )
            )?;
        }
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
