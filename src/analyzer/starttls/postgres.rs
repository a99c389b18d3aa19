//! PostgreSQL (frontend/backend protocol 3.0, PostgreSQL manual "Message Flow"
//! and "Message Formats"): the SSLRequest answered by a single `S` (TLS follows)
//! or `N` (the StartupMessage follows in plaintext), `E` from servers that do
//! not know it; the GSSENCRequest (answered `G`: GSSAPI encryption, not TLS);
//! the StartupMessage's `user`; cleartext and MD5 PasswordMessages.
//! PostgreSQL 17 direct TLS (a ClientHello first, ALPN `postgresql`) is direct
//! TLS and handled by the core.

use super::frame::{Framer, Next, Parse, be, cstr, with_at};
use super::lines::kept_user;
use super::protocol::{Cx, Protocol, Step, Verdict};
use crate::record::{Dir, Encryption, Note, PerDir};

/// SSLRequest code (1234 << 16 | 5679).
pub const SSL_REQUEST: u32 = 80_877_103;
/// GSSENCRequest code (1234 << 16 | 5680).
pub const GSSENC_REQUEST: u32 = 80_877_104;
/// CancelRequest code (1234 << 16 | 5678).
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// Protocol versions 3.0 and 2.0 in a StartupMessage.
const PROTOCOL_3: u32 = 0x0003_0000;
const PROTOCOL_2: u32 = 0x0002_0000;
/// Longest StartupMessage (the server's MAX_STARTUP_PACKET_LENGTH).
pub const MAX_STARTUP: usize = 10_000;
/// Longest typed message kept whole; longer ones (query results) are cut.
const MAX_MSG: usize = 8 * 1024;
/// AuthenticationRequest codes.
const AUTH_OK: u32 = 0;
const AUTH_CLEARTEXT: u32 = 3;
const AUTH_MD5: u32 = 5;

/// Framing of the untyped messages a client opens with: length (counting
/// itself), then a code; `Done(code, length)`.
pub fn startup_frame(b: &[u8]) -> Parse<u32> {
    let Some(len) = be(b, 0, 4) else {
        // Any real length is below 2^16: its first two bytes are zero.
        return if b.iter().take(2).any(|&x| x != 0) {
            Parse::Invalid
        } else {
            Parse::NeedMore
        };
    };
    if !(8..=MAX_STARTUP as u32).contains(&len) {
        return Parse::Invalid;
    }
    let Some(code) = be(b, 4, 4) else {
        return Parse::NeedMore;
    };
    let len = len as usize;
    let ok = match code {
        SSL_REQUEST | GSSENC_REQUEST => len == 8,
        CANCEL_REQUEST => len == 16,
        PROTOCOL_3 | PROTOCOL_2 => (9..=MAX_STARTUP).contains(&len),
        _ => false,
    };
    if ok {
        Parse::Done(code, len)
    } else {
        Parse::Invalid
    }
}

/// Framing of a typed message: type byte, then a length counting itself;
/// `Done(type, total length)`.
pub fn typed_frame(b: &[u8]) -> Parse<u8> {
    let Some(&t) = b.first() else {
        return Parse::NeedMore;
    };
    if !t.is_ascii_alphanumeric() {
        return Parse::Invalid;
    }
    match be(b, 1, 4) {
        None => Parse::NeedMore,
        Some(n) if !(4..=u32::MAX / 2).contains(&n) => Parse::Invalid,
        Some(n) => Parse::Done(t, n as usize + 1),
    }
}

/// Does this flow speak PostgreSQL? The client opens with an SSLRequest,
/// GSSENCRequest, CancelRequest or StartupMessage.
pub fn detect(client: &[u8], _server: &[u8], _port: u16) -> Verdict {
    match startup_frame(client) {
        Parse::Done(..) => Verdict::Yes { swap: false },
        Parse::NeedMore if !client.is_empty() => Verdict::Maybe,
        _ => Verdict::No,
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Server {
    /// No answer awaited.
    #[default]
    Idle,
    /// A single byte answers the SSLRequest.
    SslAnswer,
    /// A single byte answers the GSSENCRequest.
    GssAnswer,
    /// An ErrorResponse answers the SSLRequest (servers that do not know it).
    SslError,
}

/// The PostgreSQL state machine.
#[derive(Debug, Default)]
pub struct Postgres {
    framer: PerDir<Framer>,
    /// The client sent its StartupMessage: typed messages follow.
    started: bool,
    server: Server,
    /// The authentication method the server asked for last.
    auth: Option<u32>,
    user: Option<Vec<u8>>,
    /// GSSENCRequest answered `G`.
    gssapi: bool,
}

impl Protocol for Postgres {
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        let mut pos = 0;
        while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
            if dir == Dir::Server && matches!(self.server, Server::SslAnswer | Server::GssAnswer) {
                pos += 1;
                let step = self.answer(rest.first().copied().unwrap_or_default(), cx);
                if step != Step::Continue {
                    return with_at(step, pos);
                }
                continue;
            }
            let typed = dir == Dir::Server || self.started;
            let next = if typed {
                self.framer.get_mut(dir).next(rest, MAX_MSG, typed_frame32)
            } else {
                self.framer
                    .get_mut(dir)
                    .next(rest, MAX_STARTUP, startup_frame)
            };
            match next {
                Next::More => return Step::Continue,
                Next::Invalid { .. } => return Step::Stop,
                Next::Msg {
                    hdr, bytes, used, ..
                } => {
                    pos += used;
                    let step = match (dir, typed) {
                        (Dir::Client, false) => self.startup(hdr, &bytes, cx),
                        (Dir::Client, true) => self.client_msg(hdr as u8, cx),
                        (Dir::Server, _) => self.server_msg(hdr as u8, &bytes, cx),
                    };
                    if step != Step::Continue {
                        return with_at(step, pos);
                    }
                }
            }
        }
        Step::Continue
    }

    fn encryption(&self) -> Option<Encryption> {
        self.gssapi.then_some(Encryption::Gssapi)
    }

    /// An SSLRequest may only open a connection: a StartupMessage ends the chance.
    fn past_upgrade(&self) -> bool {
        self.started
    }
}

/// [`typed_frame`] with the header widened, so both framings share one `match`.
fn typed_frame32(b: &[u8]) -> Parse<u32> {
    match typed_frame(b) {
        Parse::Done(t, n) => Parse::Done(u32::from(t), n),
        Parse::NeedMore => Parse::NeedMore,
        Parse::Invalid => Parse::Invalid,
    }
}

impl Postgres {
    /// The single byte answering an SSLRequest or GSSENCRequest.
    fn answer(&mut self, b: u8, cx: &mut Cx<'_>) -> Step {
        let ssl = self.server == Server::SslAnswer;
        self.server = Server::Idle;
        match (ssl, b) {
            (true, b'S') => {
                cx.reply(b"S");
                Step::Accepted { at: 0 }
            }
            (true, b'N') => {
                cx.reply(b"N");
                Step::Refused { at: 0 }
            }
            (false, b'G') => {
                self.gssapi = true;
                Step::Stop
            }
            (false, b'N') => Step::Continue,
            (true, b'E') => {
                // An ErrorResponse: read it whole (its type byte is taken here).
                self.server = Server::SslError;
                self.framer.server = Framer::default();
                let _ = self.framer.server.next(b"E", MAX_MSG, typed_frame);
                Step::Continue
            }
            (false, b'E') => Step::Stop,
            _ => Step::Stop,
        }
    }

    fn startup(&mut self, code: u32, msg: &[u8], cx: &mut Cx<'_>) -> Step {
        cx.app("postgresql");
        match code {
            SSL_REQUEST => {
                cx.command(b"SSLRequest");
                self.server = Server::SslAnswer;
                Step::Requested { at: 0 }
            }
            GSSENC_REQUEST => {
                cx.rec.note(Note::GssencRequest);
                self.server = Server::GssAnswer;
                Step::Continue
            }
            CANCEL_REQUEST => Step::Stop,
            _ => {
                self.started = true;
                self.user = startup_user(msg).map(kept_user);
                Step::Continue
            }
        }
    }

    fn client_msg(&mut self, t: u8, cx: &mut Cx<'_>) -> Step {
        if t == b'p' {
            match self.auth.take() {
                Some(AUTH_CLEARTEXT) => {
                    cx.cleartext_auth("PostgreSQL cleartext password", self.user.as_deref());
                }
                // md5(md5(password || user) || salt): a guess can be checked
                // offline, the password is not on the wire.
                Some(AUTH_MD5) => cx.hashed_auth("PostgreSQL MD5 password", self.user.as_deref()),
                _ => {}
            }
        }
        Step::Continue
    }

    fn server_msg(&mut self, t: u8, msg: &[u8], cx: &mut Cx<'_>) -> Step {
        match t {
            b'E' if self.server == Server::SslError => {
                self.server = Server::Idle;
                let text = error_text(msg).unwrap_or_default();
                let mut reply = b"E ".to_vec();
                reply.extend_from_slice(text);
                cx.reply(&reply);
                Step::Refused { at: 0 }
            }
            b'R' => match be(msg, 5, 4) {
                Some(AUTH_OK) => Step::Stop,
                code => {
                    self.auth = code;
                    Step::Continue
                }
            },
            _ => Step::Continue,
        }
    }
}

/// The `user` parameter of a StartupMessage.
pub fn startup_user(msg: &[u8]) -> Option<&[u8]> {
    let mut at = 8;
    loop {
        let (key, next) = cstr(msg, at)?;
        if key.is_empty() {
            return None;
        }
        let (value, next) = cstr(msg, next)?;
        if key == b"user" {
            return Some(value);
        }
        at = next;
    }
}

/// The human-readable message (field `M`) of an ErrorResponse.
fn error_text(msg: &[u8]) -> Option<&[u8]> {
    let mut at = 5;
    loop {
        let &field = msg.get(at)?;
        if field == 0 {
            return None;
        }
        let (value, next) = cstr(msg, at + 1)?;
        if field == b'M' {
            return Some(value);
        }
        at = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::with_users;
    use crate::analyzer::starttls::tests::{client_hello, run_split_invariant, server_hello};
    use crate::record::Code;

    fn ssl_request() -> Vec<u8> {
        vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]
    }

    fn startup(user: &str) -> Vec<u8> {
        let mut body = PROTOCOL_3.to_be_bytes().to_vec();
        for (k, v) in [("user", user), ("database", "app")] {
            body.extend(k.as_bytes());
            body.push(0);
            body.extend(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut m = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        m.extend(body);
        m
    }

    fn typed(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![t];
        m.extend(((body.len() + 4) as u32).to_be_bytes());
        m.extend(body);
        m
    }

    fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
        let mut b = code.to_be_bytes().to_vec();
        b.extend(extra);
        typed(b'R', &b)
    }

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Client, ssl_request()),
            (Dir::Server, b"S".to_vec()),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn framing_need_more_invalid_done() {
        assert_eq!(startup_frame(&[0, 0, 0]), Parse::NeedMore);
        assert_eq!(startup_frame(&[0, 0, 0, 8, 0x04]), Parse::NeedMore);
        assert_eq!(startup_frame(&ssl_request()), Parse::Done(SSL_REQUEST, 8));
        assert_eq!(
            startup_frame(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]),
            Parse::Done(GSSENC_REQUEST, 8)
        );
        // SSLRequest with a wrong length, an unknown code, a huge length.
        assert_eq!(
            startup_frame(&[0, 0, 0, 9, 0x04, 0xd2, 0x16, 0x2f]),
            Parse::Invalid
        );
        assert_eq!(startup_frame(&[0, 0, 0, 8, 1, 2, 3, 4]), Parse::Invalid);
        assert_eq!(startup_frame(b"GET / HTTP/1.1"), Parse::Invalid);
        assert_eq!(startup_frame(&[0, 1]), Parse::Invalid);
        assert_eq!(startup_frame(&[1]), Parse::Invalid);
        assert_eq!(startup_frame(&[0, 0, 0, 4]), Parse::Invalid);
        let s = startup("alice");
        assert_eq!(startup_frame(&s), Parse::Done(PROTOCOL_3, s.len()));
        assert_eq!(typed_frame(b"R\0\0"), Parse::NeedMore);
        assert_eq!(typed_frame(&auth(3, &[])), Parse::Done(b'R', 9));
        assert_eq!(typed_frame(b"R\0\0\0\x02"), Parse::Invalid);
        assert_eq!(typed_frame(&[0x16, 3, 1, 0, 5]), Parse::Invalid);
        assert_eq!(startup_user(&s), Some(&b"alice"[..]));
    }

    #[test]
    fn detects_by_content_not_port() {
        assert_eq!(
            detect(&ssl_request(), b"", 15432),
            Verdict::Yes { swap: false }
        );
        assert_eq!(
            detect(&startup("bob"), b"", 6000),
            Verdict::Yes { swap: false }
        );
        assert_eq!(detect(&[0, 0, 0], b"", 5432), Verdict::Maybe);
        assert_eq!(detect(b"EHLO x\r\n", b"", 5432), Verdict::No);
        assert_eq!(detect(b"", b"", 5432), Verdict::No);
    }

    #[test]
    fn accepted_upgrade_offsets() {
        let rec = run_split_invariant(Proto::Postgres, &accepted());
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.requested && st.accepted);
        assert_eq!(st.command.as_deref(), Some("SSLRequest"));
        assert_eq!(st.reply.as_deref(), Some("S"));
        assert_eq!(st.client_offset, Some(8));
        assert_eq!(st.server_offset, Some(1));
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some("postgresql"));
        assert!(st.response_injection.is_none());
    }

    #[test]
    fn bytes_after_s_are_response_injection() {
        // CVE-2021-23222: a man in the middle appends plaintext to the `S`.
        let mut t = accepted();
        let mut s = b"S".to_vec();
        s.extend(auth(0, &[]));
        t[1] = (Dir::Server, s);
        let rec = run_split_invariant(Proto::Postgres, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(
            st.response_injection.as_deref(),
            Some("R\\x00\\x00\\x00\\x08\\x00\\x00\\x00\\x00")
        );
        assert_eq!(st.server_offset, Some(10));
        assert_eq!(rec.encryption, Encryption::Starttls);
        let codes: Vec<_> = crate::assess::assess(&rec, &Default::default())
            .iter()
            .map(|f| f.code)
            .collect();
        assert!(codes.contains(&Code::StarttlsResponseInjection));
    }

    #[test]
    fn refused_then_cleartext_password_never_kept() {
        let t = vec![
            (Dir::Client, ssl_request()),
            (Dir::Server, b"N".to_vec()),
            (Dir::Client, startup("alice")),
            (Dir::Server, auth(AUTH_CLEARTEXT, &[])),
            (Dir::Client, typed(b'p', b"S3cretPw\0")),
            (Dir::Server, auth(AUTH_OK, &[])),
            (Dir::Client, typed(b'Q', b"select 1\0")),
        ];
        let rec = run_split_invariant(Proto::Postgres, &t);
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            rec.starttls.as_ref().and_then(|s| s.reply.as_deref()),
            Some("N")
        );
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(
            rec.cleartext_auth[0].mechanism,
            "PostgreSQL cleartext password"
        );
        assert_eq!(rec.cleartext_auth[0].user, None);
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
    }

    #[test]
    fn user_shown_only_on_request() {
        let t = vec![
            (Dir::Client, startup("alice")),
            (Dir::Server, auth(AUTH_MD5, &[1, 2, 3, 4])),
            (Dir::Client, typed(b'p', b"md5abcdef\0")),
        ];
        let rec = crate::analyzer::starttls::tests::run(Proto::Postgres, &t, None);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        assert_eq!(rec.cleartext_auth[0].mechanism, "PostgreSQL MD5 password");
        assert!(rec.cleartext_auth[0].hashed);
        assert_eq!(rec.cleartext_auth[0].user, None);
        let rec = with_users(Proto::Postgres, &t);
        assert_eq!(rec.cleartext_auth[0].user.as_deref(), Some("alice"));
    }

    #[test]
    fn plaintext_startup_and_scram_is_not_cleartext() {
        let t = vec![
            (Dir::Client, startup("bob")),
            (Dir::Server, auth(10, b"SCRAM-SHA-256\0\0")),
            (Dir::Client, typed(b'p', b"SCRAM-SHA-256\0\0\0\0\x05n,,n=")),
            (Dir::Server, auth(AUTH_OK, &[])),
        ];
        let rec = run_split_invariant(Proto::Postgres, &t);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        assert!(rec.cleartext_auth.is_empty());
        assert!(rec.starttls.is_none());
        assert_eq!(rec.app_protocol.as_deref(), Some("postgresql"));
    }

    #[test]
    fn old_server_error_is_refusal() {
        let mut err = b"SFATAL\0Munsupported frontend protocol 1234.5679\0".to_vec();
        err.push(0);
        let t = vec![
            (Dir::Client, ssl_request()),
            (Dir::Server, typed(b'E', &err)),
        ];
        let rec = run_split_invariant(Proto::Postgres, &t);
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            rec.starttls.and_then(|s| s.reply).as_deref(),
            Some("E unsupported frontend protocol 1234.5679")
        );
    }

    #[test]
    fn gssenc_accepted_or_refused() {
        let gss = vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
        let t = vec![
            (Dir::Client, gss.clone()),
            (Dir::Server, b"G".to_vec()),
            (Dir::Client, vec![0, 0, 0, 40, 0x60, 0x26]),
        ];
        let rec = run_split_invariant(Proto::Postgres, &t);
        assert_eq!(rec.encryption, Encryption::Gssapi);
        assert!(rec.has_note(Note::GssencRequest));
        let mut t = vec![(Dir::Client, gss), (Dir::Server, b"N".to_vec())];
        t.extend(accepted());
        let rec = run_split_invariant(Proto::Postgres, &t);
        assert_eq!(rec.encryption, Encryption::Starttls);
        let st = rec.starttls.unwrap_or_default();
        assert_eq!((st.client_offset, st.server_offset), (Some(16), Some(2)));
    }
}
