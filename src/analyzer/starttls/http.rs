//! HTTP tunnels and upgrades: `CONNECT host:port` (RFC 9110 9.3.6) answered
//! 2xx, after which the tunnel carries TLS (followed as an upgrade) or anything
//! else, say SMTP (handed over as a connection of its own: [`Step::Tunnel`]), and
//! RFC 2817's `Upgrade: TLS/1.0` answered `101`. Plain HTTP that never speaks of
//! an upgrade is not claimed here.

use super::lines::{Lines, MAX_PENDING, base64, contains_ci, starts_with_ci, trim, words};
use super::protocol::{Cx, EVIDENCE, Protocol, Step, Verdict};
use crate::record::{Dir, PerDir};
use std::collections::VecDeque;

/// A header block longer than this without its end is given up on.
const MAX_HEAD: usize = 8 * 1024;
/// Longest Upgrade header value kept for the evidence.
const MAX_UPGRADE: usize = 64;

/// Request methods that open an HTTP/1.x request.
pub const METHODS: [&[u8]; 10] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"TRACE ",
    b"PROPFIND ",
    b"CONNECT ",
];

/// The header block of a message, when it is complete: what comes before the
/// first empty line (`\r\n\r\n` or `\n\n`). One pass over the line feeds: it
/// runs on every packet of a request until the verdict.
fn head(b: &[u8]) -> Option<&[u8]> {
    let mut from = 0;
    loop {
        let at = from + b.get(from..)?.iter().position(|&c| c == b'\n')?;
        match b.get(at + 1) {
            Some(b'\n') => return b.get(..at),
            Some(b'\r')
                if b.get(at + 2) == Some(&b'\n') && at > 0 && b.get(at - 1) == Some(&b'\r') =>
            {
                return b.get(..at - 1);
            }
            _ => from = at + 1,
        }
    }
}

/// An `Upgrade:` header naming TLS in a header block.
fn upgrades_to_tls(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n')
        .any(|l| starts_with_ci(l, b"Upgrade:") && contains_ci(l, b"TLS/"))
}

/// Is this flow an HTTP CONNECT tunnel or a TLS upgrade? Content decides: a
/// CONNECT, or an `Upgrade: TLS/…` in the request or the server's answer.
pub fn detect(client: &[u8], server: &[u8], _port: u16) -> Verdict {
    if starts_with_ci(client, b"CONNECT ") {
        return Verdict::Yes { swap: false };
    }
    if !METHODS.iter().any(|m| client.starts_with(m)) {
        let prefix = !client.is_empty()
            && METHODS
                .iter()
                .any(|m| m.len() > client.len() && m.starts_with(client));
        return if prefix || client.is_empty() && server.is_empty() {
            Verdict::Maybe
        } else {
            Verdict::No
        };
    }
    let Some(req) = head(client) else {
        return if client.len() < MAX_HEAD {
            Verdict::Maybe
        } else {
            Verdict::No
        };
    };
    if upgrades_to_tls(req) {
        return Verdict::Yes { swap: false };
    }
    match head(server) {
        Some(resp) if upgrades_to_tls(resp) => Verdict::Yes { swap: false },
        Some(_) => Verdict::No,
        None if server.len() < MAX_HEAD => Verdict::Maybe,
        None => Verdict::No,
    }
}

/// A request awaiting its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Req {
    Connect,
    Upgrade,
    Plain { head: bool },
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Awaiting a request or status line.
    #[default]
    Start,
    Headers,
    /// Skipping a body of known length.
    Body(u64),
    /// CONNECT was answered 2xx: the tunnel's first byte tells TLS from plaintext.
    Tunnel,
}

/// The message being read in one direction.
#[derive(Debug, Default)]
struct Msg {
    phase: Phase,
    /// The request or status line, for the evidence.
    start: Vec<u8>,
    /// An `Upgrade:` value naming TLS.
    upgrade: Option<Vec<u8>>,
    connection_upgrade: bool,
    length: Option<u64>,
    chunked: bool,
}

#[derive(Debug, Default)]
struct State {
    msg: PerDir<Msg>,
    pending: VecDeque<Req>,
    /// The client's upgrade request has a body: the request ends after it.
    upgrade_after_body: bool,
    /// The client sent TLS before the CONNECT was answered (the driver holds it).
    early_tls: bool,
    /// The client sent other tunnel bytes before the CONNECT was answered (the
    /// driver holds them).
    early_plain: bool,
    /// Nothing more to follow.
    done: bool,
}

/// The HTTP state machine.
#[derive(Debug, Default)]
pub struct Http {
    lines: PerDir<Lines>,
    st: State,
}

/// The first byte of a TLS record (handshake) or of an SSLv2 record.
fn tls_first_byte(b: u8) -> bool {
    b == 0x16 || b & 0x80 != 0
}

impl Protocol for Http {
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        let st = &mut self.st;
        let mut used = 0;
        while let Some(rest) = data.get(used..).filter(|r| !r.is_empty()) {
            if st.done {
                return Step::Stop;
            }
            let awaiting_connect = dir == Dir::Client && st.pending.front() == Some(&Req::Connect);
            let msg = st.msg.get_mut(dir);
            match msg.phase {
                Phase::Body(n) => {
                    let take = n.min(rest.len() as u64);
                    used += take as usize;
                    msg.phase = match n - take {
                        0 => Phase::Start,
                        left => Phase::Body(left),
                    };
                    if msg.phase == Phase::Start && dir == Dir::Client && st.upgrade_after_body {
                        st.upgrade_after_body = false;
                        return Step::Requested { at: used };
                    }
                }
                Phase::Tunnel => {
                    let step = tunnel(rest, used);
                    st.done = step != Step::Continue;
                    return step;
                }
                Phase::Start if awaiting_connect => {
                    // The client did not wait for the answer: its tunnel bytes came
                    // early, and are held until the proxy answers.
                    return match tunnel(rest, used) {
                        Step::Upgrade { at } => {
                            st.early_tls = true;
                            Step::Requested { at }
                        }
                        Step::Tunnel { at } => {
                            st.early_plain = true;
                            Step::Requested { at }
                        }
                        step => step,
                    };
                }
                Phase::Start | Phase::Headers => {
                    let Some((l, n)) = self.lines.get_mut(dir).next(rest) else {
                        return Step::Continue;
                    };
                    used += n;
                    match line(st, dir, l, cx) {
                        Step::Continue => {}
                        Step::Stop => {
                            st.done = true;
                            return Step::Stop;
                        }
                        Step::Requested { .. } => return Step::Requested { at: used },
                        Step::Accepted { .. } => return Step::Accepted { at: used },
                        Step::Refused { .. } => return Step::Refused { at: used },
                        Step::Upgrade { .. } => return Step::Upgrade { at: used },
                        Step::Tunnel { .. } => return Step::Tunnel { at: used },
                    }
                }
            }
        }
        Step::Continue
    }
}

/// The first bytes through an open tunnel (blank lines left over from the
/// headers skipped): TLS hands over here as an upgrade, anything else as a new
/// connection.
fn tunnel(rest: &[u8], used: usize) -> Step {
    let skip = rest
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    match rest.get(skip) {
        None => Step::Continue,
        Some(&b) if tls_first_byte(b) => Step::Upgrade { at: used + skip },
        Some(_) => Step::Tunnel { at: used + skip },
    }
}

fn line(st: &mut State, dir: Dir, l: &[u8], cx: &mut Cx<'_>) -> Step {
    let msg = st.msg.get_mut(dir);
    if msg.phase == Phase::Start {
        if l.is_empty() {
            return Step::Continue;
        }
        let ok = match dir {
            Dir::Client => {
                METHODS
                    .iter()
                    .any(|m| starts_with_ci(l, m.strip_suffix(b" ").unwrap_or(m)))
                    && contains_ci(l, b" HTTP/")
            }
            Dir::Server => starts_with_ci(l, b"HTTP/"),
        };
        if !ok {
            return Step::Stop;
        }
        *msg = Msg {
            phase: Phase::Headers,
            start: l.get(..l.len().min(EVIDENCE)).unwrap_or(l).to_vec(),
            ..Msg::default()
        };
        return Step::Continue;
    }
    if !l.is_empty() {
        header(msg, dir, l, cx);
        return Step::Continue;
    }
    match dir {
        Dir::Client => end_of_request(st, cx),
        Dir::Server => end_of_response(st, cx),
    }
}

fn header(msg: &mut Msg, dir: Dir, l: &[u8], cx: &mut Cx<'_>) {
    let Some(colon) = l.iter().position(|&b| b == b':') else {
        return;
    };
    let name = trim(l.get(..colon).unwrap_or_default());
    let value = trim(l.get(colon + 1..).unwrap_or_default());
    if name.eq_ignore_ascii_case(b"Upgrade") && contains_ci(value, b"TLS/") {
        msg.upgrade = Some(
            value
                .get(..value.len().min(MAX_UPGRADE))
                .unwrap_or(value)
                .to_vec(),
        );
    } else if name.eq_ignore_ascii_case(b"Connection") && contains_ci(value, b"upgrade") {
        msg.connection_upgrade = true;
    } else if name.eq_ignore_ascii_case(b"Content-Length") {
        msg.length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
    } else if name.eq_ignore_ascii_case(b"Transfer-Encoding") && contains_ci(value, b"chunked") {
        msg.chunked = true;
    } else if dir == Dir::Client
        && (name.eq_ignore_ascii_case(b"Proxy-Authorization")
            || name.eq_ignore_ascii_case(b"Authorization"))
    {
        let mut w = words(value);
        if w.next().is_some_and(|s| s.eq_ignore_ascii_case(b"Basic")) {
            // `user:password` in base64: only the user is looked at.
            let user = w.next().and_then(base64).map(|d| {
                let end = d.iter().position(|&b| b == b':').unwrap_or(d.len());
                d.get(..end).unwrap_or_default().to_vec()
            });
            cx.cleartext_auth("HTTP Basic", user.as_deref());
        }
    }
}

/// The evidence for an upgrade: the start line and the Upgrade value.
fn with_upgrade(msg: &Msg) -> Vec<u8> {
    let mut e = msg.start.clone();
    if let Some(u) = &msg.upgrade {
        e.extend_from_slice(b" [Upgrade: ");
        e.extend_from_slice(u);
        e.push(b']');
    }
    e
}

/// The phase after a header block: its body, if the length is known.
fn body(msg: &Msg, none: bool) -> Option<Phase> {
    match (none, msg.chunked, msg.length) {
        (true, _, _) | (false, false, Some(0)) => Some(Phase::Start),
        (false, false, Some(n)) => Some(Phase::Body(n)),
        // Chunked, or a body that runs to the close: not followed.
        _ => None,
    }
}

fn end_of_request(st: &mut State, cx: &mut Cx<'_>) -> Step {
    let msg = &mut st.msg.client;
    let method = words(&msg.start)
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let push = |pending: &mut VecDeque<Req>, r| {
        if pending.len() < MAX_PENDING {
            pending.push_back(r);
        }
    };
    if method == b"CONNECT" {
        cx.app("http-connect");
        cx.command(&msg.start);
        cx.proxy("http-connect", words(&msg.start).nth(1).unwrap_or_default());
        push(&mut st.pending, Req::Connect);
        msg.phase = Phase::Start;
        return Step::Continue;
    }
    let phase = body(msg, msg.length.is_none() && !msg.chunked);
    if msg.upgrade.is_some() && msg.connection_upgrade {
        cx.app("http-upgrade");
        cx.command(&with_upgrade(msg));
        push(&mut st.pending, Req::Upgrade);
        return match phase {
            Some(Phase::Body(n)) => {
                msg.phase = Phase::Body(n);
                st.upgrade_after_body = true;
                Step::Continue
            }
            Some(p) => {
                msg.phase = p;
                Step::Requested { at: 0 }
            }
            None => Step::Stop,
        };
    }
    if cx.rec.app_protocol.is_none() {
        cx.app("http");
    }
    push(
        &mut st.pending,
        Req::Plain {
            head: method == b"HEAD",
        },
    );
    match phase {
        Some(p) => {
            msg.phase = p;
            Step::Continue
        }
        None => Step::Stop,
    }
}

fn end_of_response(st: &mut State, cx: &mut Cx<'_>) -> Step {
    let msg = &mut st.msg.server;
    let code: u16 = words(&msg.start)
        .nth(1)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if (100..200).contains(&code) && code != 101 {
        // Interim (100 Continue): the final response is still to come.
        msg.phase = Phase::Start;
        return Step::Continue;
    }
    let success = (200..300).contains(&code);
    match st.pending.pop_front() {
        Some(Req::Connect) => {
            cx.reply(&msg.start);
            if success {
                cx.proxy_established();
                msg.phase = Phase::Tunnel;
                if st.early_tls {
                    return Step::Accepted { at: 0 };
                }
                if st.early_plain {
                    st.done = true;
                    return Step::Tunnel { at: 0 };
                }
                st.msg.client.phase = Phase::Tunnel;
                return Step::Continue;
            }
            // Refused (407 and a retry may follow on the same connection).
            match body(msg, false) {
                Some(p) if !st.early_tls && !st.early_plain => msg.phase = p,
                _ => st.done = true,
            }
            Step::Refused { at: 0 }
        }
        Some(Req::Upgrade) if code == 101 => {
            cx.reply(&with_upgrade(msg));
            Step::Accepted { at: 0 }
        }
        Some(Req::Upgrade) => {
            cx.reply(&msg.start);
            match body(msg, code == 204 || code == 304) {
                Some(p) => msg.phase = p,
                None => st.done = true,
            }
            Step::Refused { at: 0 }
        }
        req => {
            if msg.upgrade.is_some() {
                // 426 Upgrade Required (or an advertisement): TLS is offered.
                cx.offered();
            }
            let none = matches!(req, Some(Req::Plain { head: true })) || code == 204 || code == 304;
            match body(msg, none) {
                Some(p) => {
                    msg.phase = p;
                    Step::Continue
                }
                None => Step::Stop,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header block ends at the first empty line of either kind, as a
    /// search for each of the two endings would put it.
    #[test]
    fn head_ends_at_the_first_empty_line() {
        fn by_search(b: &[u8]) -> Option<&[u8]> {
            let crlf = b.windows(4).position(|w| w == b"\r\n\r\n");
            let lf = b.windows(2).position(|w| w == b"\n\n");
            let end = match (crlf, lf) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b)?,
            };
            b.get(..end)
        }
        let pieces: [&[u8]; 5] = [b"\r", b"\n", b"a", b"\r\n", b"\n\r"];
        // Every sequence of up to six pieces.
        let mut n = 0;
        for len in 0..=6u32 {
            for mut code in 0..5usize.pow(len) {
                let mut b = Vec::new();
                for _ in 0..len {
                    b.extend_from_slice(pieces[code % 5]);
                    code /= 5;
                }
                assert_eq!(head(&b), by_search(&b), "{b:?}");
                n += usize::from(head(&b).is_some());
            }
        }
        assert!(n > 1000, "{n}");
        assert_eq!(
            head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"),
            Some(&b"GET / HTTP/1.1\r\nHost: a"[..])
        );
        assert_eq!(head(b"GET / HTTP/1.0\n\n"), Some(&b"GET / HTTP/1.0"[..]));
        assert_eq!(head(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    }
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::{client_hello, run_split_invariant, server_hello};
    use crate::record::Encryption;

    const CONNECT: &[u8] =
        b"CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\n\r\n";
    const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";

    fn connect() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Client, CONNECT.to_vec()),
            (Dir::Server, ESTABLISHED.to_vec()),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_tunnels_and_upgrades_only() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(CONNECT, b"", 3128), yes);
        assert_eq!(detect(b"CONN", b"", 3128), Verdict::Maybe);
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(detect(get, b"", 80), Verdict::Maybe);
        assert_eq!(
            detect(get, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 80),
            Verdict::No
        );
        assert_eq!(
            detect(get, b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n", 18080),
            yes
        );
        assert_eq!(
            detect(
                b"OPTIONS * HTTP/1.1\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n",
                b"",
                80
            ),
            yes
        );
        assert_eq!(
            detect(
                b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                b"HTTP/1.1 101 x\r\n\r\n",
                80
            ),
            Verdict::No
        );
        assert_eq!(detect(b"EHLO x\r\n", b"", 80), Verdict::No);
    }

    #[test]
    fn connect_then_tls() {
        let t = connect();
        let rec = run_split_invariant(Proto::Http, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.requested && st.accepted && !st.offered);
        assert_eq!(
            st.command.as_deref(),
            Some("CONNECT www.example.com:443 HTTP/1.1")
        );
        assert_eq!(
            st.reply.as_deref(),
            Some("HTTP/1.1 200 Connection established")
        );
        assert_eq!(st.client_offset, Some(CONNECT.len() as u64));
        assert_eq!(st.server_offset, Some(ESTABLISHED.len() as u64));
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some("http-connect"));
    }

    #[test]
    fn connect_with_tls_sent_before_the_answer() {
        let mut early = CONNECT.to_vec();
        early.extend(client_hello());
        let t = vec![
            (Dir::Client, early),
            (Dir::Server, ESTABLISHED.to_vec()),
            (Dir::Server, server_hello()),
        ];
        let rec = run_split_invariant(Proto::Http, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(st.client_offset, Some(CONNECT.len() as u64));
        assert_eq!(st.server_offset, Some(ESTABLISHED.len() as u64));
        assert_eq!(st.injection, None);
        assert_eq!(rec.encryption, Encryption::Starttls);
    }

    #[test]
    fn connect_carrying_plaintext_is_plaintext() {
        let t = vec![
            (Dir::Client, CONNECT.to_vec()),
            (Dir::Server, ESTABLISHED.to_vec()),
            (Dir::Server, b"220 mx ESMTP\r\n".to_vec()),
            (Dir::Client, b"HELO x\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Http, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(!st.requested && !st.accepted);
        assert_eq!(st.response_injection, None);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        assert_eq!(rec.app_protocol.as_deref(), Some("http-connect"));
    }

    #[test]
    fn connect_refused_then_retried() {
        let t = vec![
            (Dir::Client, CONNECT.to_vec()),
            (
                Dir::Server,
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!".to_vec(),
            ),
        ];
        let rec = run_split_invariant(Proto::Http, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(st.reply.as_deref(), Some("HTTP/1.1 403 Forbidden"));

        let mut t = t;
        t.push((
            Dir::Client,
            b"CONNECT www.example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic YWxpY2U6UzNjcmV0UGFzc3cwcmQh\r\n\r\n".to_vec(),
        ));
        t.push((Dir::Server, ESTABLISHED.to_vec()));
        t.push((Dir::Client, client_hello()));
        t.push((Dir::Server, server_hello()));
        let rec = run_split_invariant(Proto::Http, &t);
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].mechanism, "HTTP Basic");
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
        assert!(!json.contains("YWxpY2U6"));
    }

    #[test]
    fn upgrade_offered_then_accepted() {
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        let required = b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\nContent-Length: 4\r\n\r\nTLS!".to_vec();
        let options =
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n"
                .to_vec();
        let switching =
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n"
                .to_vec();
        let t = vec![
            (Dir::Client, get.clone()),
            (Dir::Server, required.clone()),
            (Dir::Client, options.clone()),
            (Dir::Server, switching.clone()),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ];
        let rec = run_split_invariant(Proto::Http, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && st.requested && st.accepted);
        assert_eq!(
            st.command.as_deref(),
            Some("OPTIONS * HTTP/1.1 [Upgrade: TLS/1.0]")
        );
        assert_eq!(
            st.reply.as_deref(),
            Some("HTTP/1.1 101 Switching Protocols [Upgrade: TLS/1.0, HTTP/1.1]")
        );
        assert_eq!(st.client_offset, Some((get.len() + options.len()) as u64));
        assert_eq!(
            st.server_offset,
            Some((required.len() + switching.len()) as u64)
        );
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some("http-upgrade"));

        // Offered and never used.
        let rec = run_split_invariant(Proto::Http, &t[..2]);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        assert_eq!(rec.app_protocol.as_deref(), Some("http"));
    }

    #[test]
    fn upgrade_ignored_is_refused() {
        let t = vec![
            (
                Dir::Client,
                b"GET / HTTP/1.1\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n".to_vec(),
            ),
            (
                Dir::Server,
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec(),
            ),
        ];
        let rec = run_split_invariant(Proto::Http, &t);
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            rec.starttls.and_then(|s| s.reply).as_deref(),
            Some("HTTP/1.1 200 OK")
        );
    }
}
