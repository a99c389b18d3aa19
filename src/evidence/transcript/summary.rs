//! The part of a transcript the flow record alone gives: its heading, the
//! handshake (hellos, certificate, alerts, where encryption begins), the verdict
//! and the findings, each with its packet. Every string in a record was escaped
//! when it came off the wire.

use super::out::{Fref, Out};
use crate::record::{Dir, FlowRecord, TlsInfo};
use std::fmt::Write;

/// A record's frame (its number within the record's input, or an input named in
/// `frame_inputs`) as the transcript writes it.
fn at(rec: &FlowRecord, out: &Out, name: &str, number: u64) -> String {
    let input = rec.frame_inputs.get(name).copied().unwrap_or(rec.input);
    out.frame(Fref { input, number })
}

/// `flow 7: tcp 10.0.0.5:51432 -> 192.0.2.25:25 smtp, frames 1 to 20 of input 0 (FILE)`.
pub fn heading(rec: &FlowRecord, input_name: &str, out: &Out) -> String {
    let transport = match rec.transport {
        crate::record::Transport::Tcp => "tcp",
        crate::record::Transport::Udp => "udp",
    };
    let ep = |e: &crate::record::Endpoint| match e.ip {
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", e.port),
        std::net::IpAddr::V4(ip) => format!("{ip}:{}", e.port),
    };
    let mut s = format!(
        "flow {}: {transport} {} -> {} {}\n",
        rec.id,
        ep(&rec.client),
        ep(&rec.server),
        rec.app_protocol.as_deref().unwrap_or("(protocol unknown)")
    );
    let _ = writeln!(
        s,
        "  input {} ({}), frames {} to {}, community_id {}",
        rec.input,
        crate::record::escape_wire(input_name.as_bytes(), 200),
        at(rec, out, "first", rec.frames.first),
        at(rec, out, "last", rec.frames.last),
        rec.community_id.as_deref().unwrap_or("-")
    );
    for t in rec.tunnel.iter() {
        let kind = serde_json::to_value(t.kind)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let _ = writeln!(s, "  through {kind} {} -> {}", t.outer_src, t.outer_dst);
    }
    s
}

/// The handshake as the record saw it, then the verdict and the findings.
pub fn handshake_and_verdict(rec: &FlowRecord, out: &Out) -> String {
    let mut s = String::new();
    if let Some(tls) = &rec.tls {
        s.push_str("handshake:\n");
        handshake(rec, tls, out, &mut s);
    }
    let version = rec
        .tls
        .as_ref()
        .and_then(|t| t.version)
        .map(|v| format!(", {v}"))
        .unwrap_or_default();
    let established = match &rec.tls {
        Some(t) if t.established => ", established",
        Some(_) => ", not established",
        None => "",
    };
    let incomplete = if rec.incomplete {
        " (incomplete: the record closed before the connection)"
    } else {
        ""
    };
    let _ = writeln!(
        s,
        "verdict: {}{version}{established}; ended by {}{incomplete}",
        rec.encryption.as_str(),
        end_reason(rec)
    );
    if rec.findings.is_empty() {
        s.push_str("findings: none\n");
    } else {
        s.push_str("findings:\n");
    }
    for f in &rec.findings {
        let frame = out.frame(Fref {
            input: f.input.unwrap_or(rec.input),
            number: f.frame,
        });
        let _ = writeln!(
            s,
            "{frame:>9}  {:<8} {} {}",
            f.severity().as_str(),
            f.code.as_str(),
            f.message
        );
    }
    if !rec.notes.is_empty() {
        let notes: Vec<String> = rec
            .notes
            .iter()
            .map(|n| {
                serde_json::to_value(n)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default()
            })
            .collect();
        let _ = writeln!(s, "notes: {}", notes.join(", "));
    }
    s
}

fn end_reason(rec: &FlowRecord) -> String {
    serde_json::to_value(rec.end_reason)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn handshake(rec: &FlowRecord, tls: &TlsInfo, out: &Out, s: &mut String) {
    let f = &rec.frames;
    if let Some(ch) = &tls.client_hello {
        let mut parts = vec![format!("SNI {}", ch.sni.as_deref().unwrap_or("(none)"))];
        let versions: Vec<String> = if ch.supported_versions.is_empty() {
            vec![ch.version.to_string()]
        } else {
            ch.supported_versions
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        parts.push(format!("versions {}", versions.join(" ")));
        if !ch.alpn.is_empty() {
            parts.push(format!("ALPN {}", ch.alpn.join(" ")));
        }
        line(
            s,
            &at(rec, out, "client_hello", f.client_hello),
            'C',
            &format!("ClientHello: {}", parts.join("; ")),
        );
    }
    if let Some(sh) = &tls.server_hello {
        let version = tls.version.map(|v| v.to_string()).unwrap_or_default();
        let suite = sh.cipher_suite.as_deref().unwrap_or("(no suite)");
        line(
            s,
            &at(rec, out, "server_hello", f.server_hello),
            'S',
            &format!("ServerHello: {version}, {suite}"),
        );
    }
    match tls.certificates.first() {
        Some(c) => {
            let subject = c.subject.as_deref().unwrap_or("(no subject)");
            let until = c.not_after.as_deref().unwrap_or("?");
            let more = if tls.certificates.len() > 1 {
                format!(" (+{} in the chain)", tls.certificates.len() - 1)
            } else {
                String::new()
            };
            line(
                s,
                &at(rec, out, "certificate", f.certificate),
                'S',
                &format!("Certificate: {subject}, valid until {until}{more}"),
            );
        }
        None if tls.version.is_some_and(|v| v.is_tls13()) => {
            let _ = writeln!(s, "{:>9}     (certificate encrypted: TLS 1.3)", "");
        }
        None => {}
    }
    for a in &tls.alerts {
        let who = if a.from == Dir::Client { 'C' } else { 'S' };
        let frame = out.frame(Fref {
            input: a.input.unwrap_or(rec.input),
            number: a.frame,
        });
        line(
            s,
            &frame,
            who,
            &format!("alert {} {}", a.level, a.description),
        );
    }
    match f.first_encrypted {
        0 => {
            let _ = writeln!(s, "{:>9}     no encrypted record seen", "");
        }
        n => {
            let frame = at(rec, out, "first_encrypted", n);
            let _ = writeln!(s, "{frame:>9}     encrypted from frame {frame}");
        }
    }
}

fn line(s: &mut String, frame: &str, who: char, text: &str) {
    let _ = writeln!(s, "{frame:>9}  {who}  {text}");
}
