//! The server table (`--servers`): one row per server, worst first. The server
//! endpoint is never cut; the text columns shrink to fit a terminal, the findings
//! (worst first) wrap, and when even that is too wide each server's endpoint gets
//! a line of its own above the rest.

use super::escape;
use super::layout::{self, Cell, Col, Fit, id_frame};
use super::servers::{ServerRecord, Tally};
use super::style::{BOLD, CERT_CODES, GREEN, paint, severity_color, shown};
use crate::record::{Code, Severity, Transport};

/// Where a server's other cells start when its endpoint has a line of its own.
const INDENT: usize = 4;

const HEADER: [&str; 9] = [
    "SERVER",
    "PROTOCOLS",
    "FLOWS",
    "CLIENTS",
    "ENCRYPTION",
    "VERSIONS",
    "CERTIFICATE",
    "WORST ID/FRAME",
    "FINDINGS",
];

/// Narrowest each body column other than the findings is shrunk to (the numbers
/// and WORST never shrink).
const MIN: [usize; 7] = [8, 0, 0, 12, 12, 12, 0];

/// The findings column beside the other cells: at least this wide, and as wide
/// as this before the other columns take room from it.
const FIND_MIN: usize = 24;
const FIND_WANT: usize = 32;

/// A finding code's severity (the `(other)` bucket counts as least).
fn code_severity(code: &str) -> Option<Severity> {
    code.parse::<Code>().ok().map(Code::severity)
}

/// `name n, name n`, most first (ties by name), or `-`.
fn tally(counts: Tally<'_>) -> String {
    let mut v: Vec<(&str, u64)> = counts.iter().collect();
    if v.is_empty() {
        return "-".to_string();
    }
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    join(v.into_iter())
}

fn join<'a>(v: impl Iterator<Item = (&'a str, u64)>) -> String {
    v.map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The findings the table shows, worst first, then most flows, then by name.
fn findings(s: &ServerRecord) -> String {
    let mut v: Vec<(Option<Severity>, &str, u64)> = s
        .findings()
        .iter()
        .filter(|(k, _)| k.parse::<Code>().map_or(true, shown))
        .map(|(k, n)| (code_severity(k), k, n))
        .collect();
    if v.is_empty() {
        return "-".to_string();
    }
    v.sort_by(|a, b| b.0.cmp(&a.0).then(b.2.cmp(&a.2)).then(a.1.cmp(b.1)));
    join(v.into_iter().map(|(_, k, n)| (k, n)))
}

/// The worst finding the table shows.
fn worst(s: &ServerRecord) -> Option<Severity> {
    s.worst_severity.filter(|w| *w > Severity::Info)
}

/// The certificate most flows saw: its name and expiry (`+N` more), coloured by
/// the worst certificate finding; `(encrypted)` when every flow was TLS 1.3.
fn certificate(s: &ServerRecord) -> Cell {
    let mut certs = s.certificates();
    let more = certs.len().saturating_sub(1);
    let Some(top) = certs.next() else {
        let all13 = !s.versions().is_empty()
            && s.versions()
                .keys()
                .all(|v| v.starts_with("TLSv1.3") || v == "DTLSv1.3");
        return Cell::plain(if all13 { "(encrypted)" } else { "-" });
    };
    let name = top.subject_cn.unwrap_or("(no CN)");
    let date = top.not_after.and_then(|d| d.get(..10)).unwrap_or("?");
    let expired = more == 0 && s.findings().contains_key(Code::CertExpired.as_str());
    let mut text = match top.days_left {
        _ if expired => format!("{name} (expired {date})"),
        Some(d) if d >= 0 => format!("{name} (to {date}, {d} days left)"),
        _ => format!("{name} (to {date})"),
    };
    if more > 0 {
        text.push_str(&format!(" +{more}"));
    }
    let worst = CERT_CODES
        .iter()
        .filter(|c| s.findings().contains_key(c.as_str()))
        .map(|c| c.severity())
        .max();
    Cell::colored(text, severity_color(worst))
}

/// The worst severity and where to look for it: `high 7/12` (flow 7, frame 12).
fn worst_cell(worst: Option<Severity>, s: &ServerRecord) -> String {
    let w = worst.map_or("-", Severity::as_str);
    match s.look_at {
        Some(l) => format!("{w} {}", id_frame(l.id, l.input, l.frame)),
        None => w.to_string(),
    }
}

/// The cells of one server row, escaped.
fn cells(s: &ServerRecord) -> Vec<Cell> {
    let udp = if s.transport == Transport::Udp {
        "/udp"
    } else {
        ""
    };
    let worst = worst(s);
    let color = severity_color(worst);
    let enc_color = match worst {
        None if s
            .by_encryption()
            .keys()
            .all(|e| matches!(e, "tls" | "starttls" | "quic" | "dtls" | "ssh" | "gssapi")) =>
        {
            GREEN
        }
        _ => color,
    };
    let mut v = vec![
        Cell::plain(format!(
            "{}{udp}",
            super::endpoint(s.server.ip, s.server.port)
        )),
        Cell::plain(if s.app_protocols().len() == 0 {
            "-".to_string()
        } else {
            s.app_protocols().collect::<Vec<_>>().join(",")
        }),
        Cell::plain(s.flows.to_string()),
        Cell::plain(format!(
            "{}{}",
            s.clients,
            if s.clients_capped { "+" } else { "" }
        )),
        Cell::colored(tally(s.by_encryption()), enc_color),
        Cell::plain(tally(s.versions())),
        certificate(s),
        Cell::colored(worst_cell(worst, s), color),
        Cell::colored(findings(s), color),
    ];
    for c in &mut v {
        c.text = escape(&c.text).into_owned();
    }
    v
}

/// The body columns' widths beside the server for `room` characters: the text
/// columns narrowed widest first, the findings taking the rest.
fn fit(natural: &[usize], room: usize) -> Vec<usize> {
    let (others, find) = natural.split_at(natural.len().saturating_sub(1));
    let find = find.first().copied().unwrap_or(0);
    let mut w = others.to_vec();
    layout::shrink(&mut w, &MIN, room.saturating_sub(find.min(FIND_WANT) + 1));
    let used: usize = w.iter().sum::<usize>() + w.len();
    w.push(room.saturating_sub(used).max(FIND_MIN.min(find)));
    w
}

/// Whether a row fits beside its server: the narrowest body beside the widest server.
fn fits_beside(head: usize, natural: &[usize], width: usize) -> bool {
    let narrowest: usize = natural
        .iter()
        .zip(MIN.iter().chain(&[FIND_MIN]))
        .map(|(n, m)| if *m == 0 { *n } else { (*m).min(*n) })
        .sum::<usize>()
        + natural.len()
        - 1;
    head + 1 + narrowest <= width
}

/// The server table's lines (header first) for a terminal `width` wide, or piped.
/// A row is one line beside its server when it fits (findings wrapping in their
/// column); else the server, the middle cells and the findings each start a line.
pub fn lines(list: &[ServerRecord], width: Option<usize>, color: bool) -> Vec<String> {
    let header: Vec<Cell> = HEADER.iter().map(|h| Cell::colored(*h, BOLD)).collect();
    let mut rows = vec![header];
    rows.extend(list.iter().map(cells));
    let mut natural = [0usize; 9];
    for r in &rows {
        for (n, c) in natural.iter_mut().zip(r) {
            *n = (*n).max(layout::width(&c.text));
        }
    }
    let (head_w, body_natural) = natural.split_at(1);
    let head_w = head_w.first().copied().unwrap_or(0);
    let paint = |s: &str, c: &'static str| paint(color, s, c);
    let Some(total) = width.filter(|w| !fits_beside(head_w, body_natural, *w)) else {
        let widths = match width {
            None => body_natural.to_vec(),
            Some(w) => fit(body_natural, w.saturating_sub(head_w + 1)),
        };
        return beside(&rows, head_w, &widths, width, &paint);
    };
    let (middle, _) = body_natural.split_at(body_natural.len().saturating_sub(1));
    let mut widths = middle.to_vec();
    layout::shrink(&mut widths, &MIN, total.saturating_sub(INDENT));
    let cols = columns(&widths, false);
    let pad = " ".repeat(INDENT);
    let mut out = Vec::new();
    for row in &rows {
        let Some((head, body)) = row.split_first() else {
            continue;
        };
        out.push(paint(&head.text, head.color));
        let (mid, find) = body.split_at(body.len().saturating_sub(1));
        for line in layout::render(mid, &cols, true, INDENT, width, &paint) {
            out.push(format!("{pad}{line}"));
        }
        for f in find {
            for line in layout::wrap_list(&f.text, total.saturating_sub(INDENT)) {
                out.push(format!("{pad}{}", paint(&line, f.color)));
            }
        }
    }
    out
}

/// The columns for these widths (the last, the findings, wraps when `wrap`).
fn columns(widths: &[usize], wrap: bool) -> Vec<Col> {
    let last = widths.len().saturating_sub(1);
    widths
        .iter()
        .enumerate()
        .map(|(i, w)| match i {
            1 | 2 => Col::right(*w),
            _ if i == last && wrap => Col::new(*w, Fit::Wrap),
            _ => Col::new(*w, Fit::Cut),
        })
        .collect()
}

/// Every row on its server's line (findings wrapping below, in their column).
fn beside(
    rows: &[Vec<Cell>],
    head_w: usize,
    widths: &[usize],
    width: Option<usize>,
    paint: &dyn Fn(&str, &'static str) -> String,
) -> Vec<String> {
    let mut cols = columns(widths, true);
    if width.is_none()
        && let Some(last) = cols.last_mut()
    {
        last.width = 0;
    }
    let mut out = Vec::new();
    for row in rows {
        let Some((head, body)) = row.split_first() else {
            continue;
        };
        let lines = layout::render(body, &cols, width.is_some(), head_w + 1, width, paint);
        let gap = " ".repeat(head_w.saturating_sub(layout::width(&head.text)));
        let first = lines.first().map_or("", String::as_str);
        let server = paint(&head.text, head.color);
        out.push(format!("{server}{gap} {first}").trim_end().to_string());
        out.extend(lines.into_iter().skip(1));
    }
    out
}
