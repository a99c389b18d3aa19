//! SOCKS tunnels: SOCKS4 and 4a (`04 01 port ip user\0 [host\0]`, reply
//! `00 5a …`) and SOCKS5 (RFC 1928: greeting, method selection, RFC 1929
//! username/password, `05 01 00 atyp addr port`, reply `05 00 …`). A success
//! reply opens the tunnel: if its first bytes are TLS the flow is followed into
//! TLS both ways (like MySQL, no answer is awaited); anything else is handed
//! over as a connection of its own ([`Step::Tunnel`]), not an injection. A
//! failure reply ends the dialogue: no TLS was ever asked for, so it is not an
//! upgrade refusal.

use super::frame::{Framer, Next, Parse, be, with_at};
use super::protocol::{Cx, Protocol, Step, Verdict};
use crate::record::{Dir, PerDir};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest SOCKS message (SOCKS4a: 8 bytes, a user id and a host name of up to 255 bytes each).
const MAX_MSG: usize = 1024;
/// Longest user id or host name in a SOCKS4/4a request.
const MAX_FIELD: usize = 255;
/// SOCKS commands.
const CONNECT: u8 = 1;
const BIND: u8 = 2;
/// SOCKS5 methods: no authentication, username/password (RFC 1929), none acceptable.
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const NO_METHOD: u8 = 0xff;
/// SOCKS5 address types.
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;
/// SOCKS4 reply: request granted.
const GRANTED: u8 = 90;
/// The usual SOCKS port: a bare SOCKS5 greeting is enough there.
const SOCKS_PORT: u16 = 1080;

/// Where a CONNECT goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub cmd: u8,
    pub host: String,
    pub port: u16,
}

impl Target {
    fn show(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A SOCKS4 or 4a request: `Done(target, length)`; a 4a host name shows as `host`.
pub fn socks4_request(b: &[u8]) -> Parse<(Target, bool)> {
    match (b.first(), b.get(1)) {
        (Some(&4), None) => return Parse::NeedMore,
        (Some(&4), Some(&(CONNECT | BIND))) => {}
        (None, _) => return Parse::NeedMore,
        _ => return Parse::Invalid,
    }
    let (Some(port), Some(ip)) = (be(b, 2, 2), b.get(4..8)) else {
        return Parse::NeedMore;
    };
    let (_user, end) = match field(b, 8) {
        Parse::Done(u, end) => (u, end),
        Parse::NeedMore => return Parse::NeedMore,
        Parse::Invalid => return Parse::Invalid,
    };
    let v4a = ip.get(..3) == Some(&[0, 0, 0][..]) && ip.get(3) != Some(&0);
    let (host, end) = if v4a {
        match field(b, end) {
            Parse::Done(h, end) => (String::from_utf8_lossy(h).into_owned(), end),
            Parse::NeedMore => return Parse::NeedMore,
            Parse::Invalid => return Parse::Invalid,
        }
    } else {
        let [a, b2, c, d] = [0, 1, 2, 3].map(|i| ip.get(i).copied().unwrap_or(0));
        (Ipv4Addr::new(a, b2, c, d).to_string(), end)
    };
    let cmd = b.get(1).copied().unwrap_or(CONNECT);
    Parse::Done(
        (
            Target {
                cmd,
                host,
                port: port as u16,
            },
            v4a,
        ),
        end,
    )
}

/// A printable NUL-terminated field of at most [`MAX_FIELD`] bytes at `at`.
fn field(b: &[u8], at: usize) -> Parse<&[u8]> {
    let rest = b.get(at..).unwrap_or_default();
    match rest.iter().take(MAX_FIELD + 1).position(|&c| c == 0) {
        Some(n) => {
            let f = rest.get(..n).unwrap_or_default();
            if f.iter().all(|c| (0x20..0x7f).contains(c)) {
                Parse::Done(f, at + n + 1)
            } else {
                Parse::Invalid
            }
        }
        None if rest.len() > MAX_FIELD => Parse::Invalid,
        None if rest.iter().all(|c| (0x20..0x7f).contains(c)) => Parse::NeedMore,
        None => Parse::Invalid,
    }
}

/// A SOCKS4 reply (`00 code port ip`): `Done(code, 8)`.
pub fn socks4_reply(b: &[u8]) -> Parse<u8> {
    match b.first() {
        Some(0) => match b.get(1) {
            Some(&code) if b.len() >= 8 => Parse::Done(code, 8),
            _ => Parse::NeedMore,
        },
        Some(_) => Parse::Invalid,
        None => Parse::NeedMore,
    }
}

/// A SOCKS5 greeting (`05 n methods…`): `Done(methods, length)`.
pub fn socks5_greeting(b: &[u8]) -> Parse<Vec<u8>> {
    match (b.first(), b.get(1)) {
        (Some(&5), Some(&n)) if n > 0 => match b.get(2..2 + usize::from(n)) {
            Some(m) if m.contains(&NO_METHOD) => Parse::Invalid,
            Some(m) => Parse::Done(m.to_vec(), 2 + usize::from(n)),
            None => Parse::NeedMore,
        },
        (Some(&5), None) | (None, _) => Parse::NeedMore,
        _ => Parse::Invalid,
    }
}

/// Two-byte messages: `05 method` (method selection), `01 status` (RFC 1929 reply).
fn pair(b: &[u8], version: u8) -> Parse<u8> {
    match (b.first(), b.get(1)) {
        (Some(&v), _) if v != version => Parse::Invalid,
        (Some(_), Some(&x)) => Parse::Done(x, 2),
        _ => Parse::NeedMore,
    }
}

/// An RFC 1929 username/password request: `Done(user, length)` (the password is skipped, never kept).
pub fn user_pass(b: &[u8]) -> Parse<Vec<u8>> {
    match b.first() {
        Some(1) => {}
        Some(_) => return Parse::Invalid,
        None => return Parse::NeedMore,
    }
    let Some(&ulen) = b.get(1) else {
        return Parse::NeedMore;
    };
    let uend = 2 + usize::from(ulen);
    let (Some(user), Some(&plen)) = (b.get(2..uend), b.get(uend)) else {
        return Parse::NeedMore;
    };
    Parse::Done(user.to_vec(), uend + 1 + usize::from(plen))
}

/// A SOCKS5 request or reply (`05 cmd|rep 00 atyp addr port`): `Done(target, length)`;
/// `cmd` holds the command or the reply code.
pub fn socks5_message(b: &[u8]) -> Parse<Target> {
    match (b.first(), b.get(2)) {
        (Some(&5), None | Some(0)) => {}
        (None, _) => return Parse::NeedMore,
        _ => return Parse::Invalid,
    }
    let (Some(&cmd), Some(&atyp)) = (b.get(1), b.get(3)) else {
        return Parse::NeedMore;
    };
    let (addr_len, addr_at) = match atyp {
        ATYP_IPV4 => (4, 4),
        ATYP_IPV6 => (16, 4),
        ATYP_DOMAIN => match b.get(4) {
            Some(&n) => (usize::from(n), 5),
            None => return Parse::NeedMore,
        },
        _ => return Parse::Invalid,
    };
    let end = addr_at + addr_len + 2;
    let (Some(addr), Some(port)) = (b.get(addr_at..addr_at + addr_len), be(b, end - 2, 2)) else {
        return Parse::NeedMore;
    };
    let host = match atyp {
        ATYP_IPV4 => {
            let o: [u8; 4] = addr.try_into().unwrap_or_default();
            Ipv4Addr::from(o).to_string()
        }
        ATYP_IPV6 => {
            let o: [u8; 16] = addr.try_into().unwrap_or_default();
            Ipv6Addr::from(o).to_string()
        }
        _ => String::from_utf8_lossy(addr).into_owned(),
    };
    Parse::Done(
        Target {
            cmd,
            host,
            port: port as u16,
        },
        end,
    )
}

pub fn socks5_reply_name(code: u8) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned",
    }
}

pub fn socks4_reply_name(code: u8) -> &'static str {
    match code {
        90 => "granted",
        91 => "rejected or failed",
        92 => "rejected: no identd",
        93 => "rejected: identd user mismatch",
        _ => "unknown",
    }
}

/// Does this flow speak SOCKS? A complete SOCKS4/4a request; or a SOCKS5
/// greeting answered by a method selection (or seen on port 1080).
pub fn detect(client: &[u8], server: &[u8], port: u16) -> Verdict {
    match client.first() {
        Some(4) => match socks4_request(client) {
            Parse::Done(..) => Verdict::Yes { swap: false },
            Parse::NeedMore => Verdict::Maybe,
            Parse::Invalid => Verdict::No,
        },
        Some(5) => match socks5_greeting(client) {
            Parse::Done(methods, _) => match pair(server, 5) {
                Parse::Done(m, _) if methods.contains(&m) || m == NO_METHOD => {
                    Verdict::Yes { swap: false }
                }
                Parse::NeedMore if port == SOCKS_PORT => Verdict::Yes { swap: false },
                Parse::NeedMore => Verdict::Maybe,
                _ => Verdict::No,
            },
            Parse::NeedMore => Verdict::Maybe,
            Parse::Invalid => Verdict::No,
        },
        _ => Verdict::No,
    }
}

/// What each side sends next.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Client {
    #[default]
    Greeting,
    /// After a SOCKS5 greeting: RFC 1929 credentials or the request.
    AuthOrRequest,
    /// Request sent, reply not seen: early bytes are tunnel bytes.
    Sent,
    Tunnel,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// SOCKS4 reply or SOCKS5 method selection.
    #[default]
    First,
    AuthReply,
    Reply,
    Tunnel,
}

/// One parsed SOCKS message.
#[derive(Debug)]
enum Msg {
    Request4(Target, bool),
    Greeting,
    UserPass(Vec<u8>),
    Request5(Target),
    Reply4(u8),
    Method(u8),
    AuthReply(u8),
    Reply5(u8),
}

fn map<T>(p: Parse<T>, f: impl FnOnce(T) -> Msg) -> Parse<Msg> {
    match p {
        Parse::Done(v, n) => Parse::Done(f(v), n),
        Parse::NeedMore => Parse::NeedMore,
        Parse::Invalid => Parse::Invalid,
    }
}

/// The first byte of a TLS handshake record or an SSLv2 record.
fn tls_first_byte(b: u8) -> bool {
    b == 0x16 || b & 0x80 != 0
}

/// The SOCKS state machine.
#[derive(Debug, Default)]
pub struct Socks {
    framer: PerDir<Framer>,
    client: Client,
    server: Server,
    v4: bool,
    /// The client's tunnel bytes came before the reply (the driver holds them).
    early: bool,
    /// Those early bytes were not TLS.
    early_plain: bool,
}

impl Protocol for Socks {
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        cx.app("socks");
        let mut pos = 0;
        while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
            let first = rest.first().copied().unwrap_or_default();
            let tunnel = match dir {
                Dir::Client => matches!(self.client, Client::Sent | Client::Tunnel),
                Dir::Server => self.server == Server::Tunnel,
            };
            if tunnel {
                let tls = tls_first_byte(first);
                if dir == Dir::Client && self.client == Client::Sent {
                    self.early = true;
                    self.early_plain = !tls;
                    return Step::Requested { at: pos };
                }
                return if tls {
                    Step::Upgrade { at: pos }
                } else {
                    Step::Tunnel { at: pos }
                };
            }
            let frame = |b: &[u8]| match (dir, self.client, self.server) {
                (Dir::Client, Client::Greeting, _) => match b.first() {
                    Some(4) => map(socks4_request(b), |(t, a)| Msg::Request4(t, a)),
                    _ => map(socks5_greeting(b), |_| Msg::Greeting),
                },
                (Dir::Client, _, _) => match b.first() {
                    Some(1) => map(user_pass(b), Msg::UserPass),
                    _ => map(socks5_message(b), Msg::Request5),
                },
                (Dir::Server, _, Server::First) if self.v4 => map(socks4_reply(b), Msg::Reply4),
                (Dir::Server, _, Server::First) => map(pair(b, 5), Msg::Method),
                (Dir::Server, _, Server::AuthReply) => map(pair(b, 1), Msg::AuthReply),
                (Dir::Server, _, _) => map(socks5_message(b), |t| Msg::Reply5(t.cmd)),
            };
            match self.framer.get_mut(dir).next(rest, MAX_MSG, frame) {
                Next::More => return Step::Continue,
                Next::Invalid { .. } => return Step::Stop,
                Next::Msg { hdr, used, .. } => {
                    pos += used;
                    let step = self.message(hdr, cx);
                    if step != Step::Continue {
                        return with_at(step, pos);
                    }
                }
            }
        }
        Step::Continue
    }
}

impl Socks {
    fn message(&mut self, m: Msg, cx: &mut Cx<'_>) -> Step {
        match m {
            Msg::Request4(t, v4a) => {
                self.v4 = true;
                let version = if v4a { "SOCKS4a" } else { "SOCKS4" };
                if t.cmd == CONNECT {
                    cx.proxy(if v4a { "socks4a" } else { "socks4" }, t.show().as_bytes());
                }
                self.request(&t, version, cx)
            }
            Msg::Greeting => {
                self.client = Client::AuthOrRequest;
                Step::Continue
            }
            Msg::UserPass(user) => {
                cx.cleartext_auth("SOCKS5 username/password", Some(&user));
                Step::Continue
            }
            Msg::Request5(t) => {
                if t.cmd == CONNECT {
                    cx.proxy("socks5", t.show().as_bytes());
                }
                self.request(&t, "SOCKS5", cx)
            }
            Msg::Method(m) => match m {
                NO_AUTH => {
                    self.server = Server::Reply;
                    Step::Continue
                }
                USER_PASS => {
                    self.server = Server::AuthReply;
                    Step::Continue
                }
                // No acceptable method, or GSSAPI (its messages are not followed).
                _ => Step::Stop,
            },
            Msg::AuthReply(0) => {
                self.server = Server::Reply;
                Step::Continue
            }
            Msg::AuthReply(_) => Step::Stop,
            Msg::Reply4(code) => {
                let reply = format!("SOCKS4 reply {code} ({})", socks4_reply_name(code));
                self.reply(code == GRANTED, &reply, cx)
            }
            Msg::Reply5(code) => {
                let reply = format!("SOCKS5 reply {code} ({})", socks5_reply_name(code));
                self.reply(code == 0, &reply, cx)
            }
        }
    }

    fn request(&mut self, t: &Target, version: &str, cx: &mut Cx<'_>) -> Step {
        let cmd = match t.cmd {
            CONNECT => "CONNECT",
            BIND => "BIND",
            _ => "UDP ASSOCIATE",
        };
        cx.command(format!("{version} {cmd} {}", t.show()).as_bytes());
        if t.cmd != CONNECT {
            // BIND and UDP ASSOCIATE tunnels are not followed.
            return Step::Stop;
        }
        self.client = Client::Sent;
        Step::Continue
    }

    fn reply(&mut self, ok: bool, reply: &str, cx: &mut Cx<'_>) -> Step {
        cx.reply(reply.as_bytes());
        if ok {
            cx.proxy_established();
        }
        match (ok, self.early) {
            (true, true) if self.early_plain => Step::Tunnel { at: 0 },
            (true, true) => Step::Accepted { at: 0 },
            (true, false) => {
                self.server = Server::Tunnel;
                self.client = Client::Tunnel;
                Step::Continue
            }
            // The client's early bytes go back to plaintext.
            (false, true) => Step::Refused { at: 0 },
            (false, false) => Step::Stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::with_users;
    use crate::analyzer::starttls::tests::{client_hello, run_split_invariant, server_hello};
    use crate::record::Encryption;

    const V5_GREETING: &[u8] = &[5, 1, 0];
    const V5_NO_AUTH: &[u8] = &[5, 0];

    fn v5_connect_domain(host: &str, port: u16) -> Vec<u8> {
        let mut v = vec![5, 1, 0, ATYP_DOMAIN, host.len() as u8];
        v.extend(host.as_bytes());
        v.extend(port.to_be_bytes());
        v
    }

    fn v5_reply(code: u8) -> Vec<u8> {
        vec![5, code, 0, 1, 0, 0, 0, 0, 1, 0xbb]
    }

    fn v5_tls() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Client, V5_GREETING.to_vec()),
            (Dir::Server, V5_NO_AUTH.to_vec()),
            (Dir::Client, v5_connect_domain("www.google.com", 443)),
            (Dir::Server, v5_reply(0)),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn parsers_need_more_invalid_done() {
        let req = v5_connect_domain("example.com", 8443);
        assert_eq!(socks5_message(&req[..6]), Parse::NeedMore);
        assert_eq!(
            socks5_message(&req),
            Parse::Done(
                Target {
                    cmd: CONNECT,
                    host: "example.com".into(),
                    port: 8443
                },
                req.len()
            )
        );
        assert_eq!(socks5_message(&[5, 1, 9, 1]), Parse::Invalid);
        assert_eq!(socks5_message(&[5, 1, 0, 7]), Parse::Invalid);
        let v6 = {
            let mut v = vec![5, 1, 0, ATYP_IPV6];
            v.extend(Ipv6Addr::LOCALHOST.octets());
            v.extend(443u16.to_be_bytes());
            v
        };
        let Parse::Done(t, 22) = socks5_message(&v6) else {
            panic!("IPv6 CONNECT did not parse");
        };
        assert_eq!(t.show(), "[::1]:443");
        assert_eq!(socks4_request(&[4, 1, 0, 80, 1, 2, 3]), Parse::NeedMore);
        assert_eq!(
            socks4_request(&[4, 1, 0, 80, 1, 2, 3, 4, b'u']),
            Parse::NeedMore
        );
        assert_eq!(
            socks4_request(&[4, 9, 0, 80, 1, 2, 3, 4, 0]),
            Parse::Invalid
        );
        assert_eq!(
            socks4_request(&[4, 1, 0, 80, 1, 2, 3, 4, 0x1b, 0]),
            Parse::Invalid
        );
        let Parse::Done((t, true), 19) =
            socks4_request(b"\x04\x01\x6e\x9b\x00\x00\x00\x01\x00localhost\x00")
        else {
            panic!("SOCKS4a did not parse");
        };
        assert_eq!(t.show(), "localhost:28315");
        assert_eq!(socks5_greeting(&[5, 2, 0]), Parse::NeedMore);
        assert_eq!(socks5_greeting(&[5, 2, 0, 2]), Parse::Done(vec![0, 2], 4));
        assert_eq!(socks5_greeting(&[5, 1, 0xff]), Parse::Invalid);
        assert_eq!(
            user_pass(b"\x01\x04user\x03pw"),
            Parse::Done(b"user".to_vec(), 10)
        );
        assert_eq!(user_pass(b"\x01\x04us"), Parse::NeedMore);
        assert_eq!(socks4_reply(&[0, 90, 0]), Parse::NeedMore);
        assert_eq!(socks4_reply(&[1, 90, 0, 0, 0, 0, 0, 0]), Parse::Invalid);
    }

    #[test]
    fn detects_by_content_port_only_for_bare_greetings() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(V5_GREETING, V5_NO_AUTH, 9050), yes);
        assert_eq!(detect(V5_GREETING, b"", 1080), yes);
        assert_eq!(detect(V5_GREETING, b"", 9050), Verdict::Maybe);
        assert_eq!(detect(V5_GREETING, &[5, 2], 9050), Verdict::No);
        assert_eq!(detect(&[4, 1, 1, 0xbb, 10, 0, 0, 1, 0], b"", 11080), yes);
        assert_eq!(detect(&[4, 1, 1, 0xbb], b"", 11080), Verdict::Maybe);
        assert_eq!(detect(b"EHLO x\r\n", b"", 1080), Verdict::No);
        assert_eq!(detect(b"", b"", 1080), Verdict::No);
    }

    #[test]
    fn socks5_success_then_tls() {
        let t = v5_tls();
        let rec = run_split_invariant(Proto::Socks, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.requested && st.accepted);
        assert_eq!(
            st.command.as_deref(),
            Some("SOCKS5 CONNECT www.google.com:443")
        );
        assert_eq!(st.reply.as_deref(), Some("SOCKS5 reply 0 (succeeded)"));
        assert_eq!(st.client_offset, Some((t[0].1.len() + t[2].1.len()) as u64));
        assert_eq!(st.server_offset, Some(12));
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some("socks"));
    }

    #[test]
    fn socks4a_and_early_client_hello() {
        let req = b"\x04\x01\x6e\x9b\x00\x00\x00\x01\x00localhost\x00".to_vec();
        let mut early = req.clone();
        early.extend(client_hello());
        let t = vec![
            (Dir::Client, early),
            (Dir::Server, vec![0, 90, 0, 0, 0, 0, 0, 0]),
            (Dir::Server, server_hello()),
        ];
        let rec = run_split_invariant(Proto::Socks, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(
            st.command.as_deref(),
            Some("SOCKS4a CONNECT localhost:28315")
        );
        assert_eq!(st.reply.as_deref(), Some("SOCKS4 reply 90 (granted)"));
        assert_eq!(st.client_offset, Some(req.len() as u64));
        assert_eq!(st.server_offset, Some(8));
        assert!(st.injection.is_none());
        assert_eq!(rec.encryption, Encryption::Starttls);
    }

    #[test]
    fn failure_and_plaintext_tunnel_are_plaintext() {
        let t = vec![
            (Dir::Client, V5_GREETING.to_vec()),
            (Dir::Server, V5_NO_AUTH.to_vec()),
            (Dir::Client, v5_connect_domain("db", 5432)),
            (Dir::Server, v5_reply(5)),
        ];
        let rec = run_split_invariant(Proto::Socks, &t);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        assert_eq!(
            rec.starttls.as_ref().and_then(|s| s.reply.as_deref()),
            Some("SOCKS5 reply 5 (connection refused)")
        );
        let mut t = v5_tls();
        t.truncate(4);
        t.push((Dir::Client, b"GET / HTTP/1.1\r\n\r\n".to_vec()));
        t.push((Dir::Server, b"HTTP/1.1 200 OK\r\n\r\n".to_vec()));
        let rec = run_split_invariant(Proto::Socks, &t);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        let st = rec.starttls.unwrap_or_default();
        assert!(st.injection.is_none() && st.response_injection.is_none());
    }

    #[test]
    fn user_pass_is_cleartext_without_the_password() {
        let t = vec![
            (Dir::Client, vec![5, 2, 0, 2]),
            (Dir::Server, vec![5, 2]),
            (
                Dir::Client,
                b"\x01\x09proxyuser\x12FakeSocksPass-1172".to_vec(),
            ),
            (Dir::Server, vec![1, 0]),
            (Dir::Client, v5_connect_domain("localhost", 28443)),
            (Dir::Server, v5_reply(0)),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ];
        let rec = run_split_invariant(Proto::Socks, &t);
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].mechanism, "SOCKS5 username/password");
        assert!(
            !serde_json::to_string(&rec)
                .unwrap_or_default()
                .contains("FakeSocks")
        );
        let rec = with_users(Proto::Socks, &t);
        assert_eq!(rec.cleartext_auth[0].user.as_deref(), Some("proxyuser"));
    }
}
