//! MySQL and MariaDB (client/server protocol, "Connection Phase"): the server's
//! HandshakeV10 advertises `CLIENT_SSL`; a client that wants TLS answers with a
//! 32-byte SSLRequest packet (sequence 1) and TLS follows in both directions with
//! no server reply; a full HandshakeResponse instead means plaintext. The
//! `mysql_clear_password` and `dialog` authentication plugins send the password
//! in the clear.

use super::frame::{Framer, Next, Parse, cstr, le, with_at};
use super::protocol::{Cx, Protocol, Step, Verdict};
use crate::record::{Dir, Note, PerDir};

/// Capability flags (MySQL `include/mysql_com.h`).
pub const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
pub const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
pub const CLIENT_SSL: u32 = 0x0000_0800;
pub const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
pub const CLIENT_PLUGIN_AUTH: u32 = 0x0008_0000;
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;
/// Payload length of an SSLRequest: capabilities, max packet size, charset, 23 filler bytes.
pub const SSL_REQUEST_LEN: usize = 32;
/// HandshakeV10 protocol version byte.
const PROTOCOL_10: u8 = 0x0a;
/// Packet header: 3-byte little-endian payload length, sequence number.
const HEADER: usize = 4;
/// Longest packet kept whole; the connection phase's packets are far shorter.
const MAX_PACKET: usize = 16 * 1024;
/// Greeting payload length bounds used by `detect`.
const GREETING_LEN: std::ops::RangeInclusive<usize> = 30..=1024;
/// Longest server version string accepted by `detect`.
const MAX_VERSION: usize = 128;
/// Authentication plugins that send the password in the clear.
const CLEAR_PLUGINS: [(&[u8], &str); 2] = [
    (b"mysql_clear_password", "MySQL mysql_clear_password"),
    (b"dialog", "MySQL dialog"),
];

/// Packet framing: `Done(sequence number, header + payload length)`.
pub fn packet(b: &[u8]) -> Parse<u8> {
    match (le(b, 0, 3), b.get(3)) {
        (Some(len), Some(&seq)) => Parse::Done(seq, HEADER + len as usize),
        _ => Parse::NeedMore,
    }
}

/// The server greeting's capability flags (lower and upper halves), if `p` is a HandshakeV10 payload.
pub fn greeting_caps(p: &[u8]) -> Option<u32> {
    if p.first() != Some(&PROTOCOL_10) {
        return None;
    }
    let (_, at) = cstr(p, 1)?;
    // thread id (4), auth-plugin-data part 1 (8), filler (1), then the lower capabilities.
    let lo = le(p, at + 13, 2)?;
    let hi = le(p, at + 18, 2).unwrap_or(0);
    Some(hi << 16 | lo)
}

/// Does this flow speak MySQL? The server greets with a HandshakeV10 packet
/// (sequence 0, protocol 10, a printable NUL-terminated version string).
pub fn detect(client: &[u8], server: &[u8], _port: u16) -> Verdict {
    if server.is_empty() {
        return Verdict::No;
    }
    let len = le(server, 0, 3).map(|l| l as usize);
    if len.is_some_and(|l| !GREETING_LEN.contains(&l))
        || server.get(3).is_some_and(|&s| s != 0)
        || server.get(4).is_some_and(|&v| v != PROTOCOL_10)
    {
        return Verdict::No;
    }
    let version = server.get(5..).unwrap_or_default();
    let shown = version.iter().take(MAX_VERSION);
    for (i, &c) in shown.enumerate() {
        if c == 0 {
            return if i > 0 {
                Verdict::Yes { swap: false }
            } else {
                Verdict::No
            };
        }
        if !(0x20..0x7f).contains(&c) {
            return Verdict::No;
        }
    }
    if version.len() >= MAX_VERSION || !client.is_empty() {
        Verdict::No
    } else {
        Verdict::Maybe
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Awaiting the server greeting.
    #[default]
    Greeting,
    /// Awaiting the client's SSLRequest or HandshakeResponse.
    Response,
    /// Authentication exchange after a plaintext HandshakeResponse.
    Auth,
}

/// The MySQL state machine.
#[derive(Debug, Default)]
pub struct Mysql {
    framer: PerDir<Framer>,
    phase: Phase,
    user: Option<Vec<u8>>,
    /// The server switched to a plugin that sends the password in the clear: its name.
    clear_next: Option<&'static str>,
}

impl Protocol for Mysql {
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        let mut pos = 0;
        while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
            match self.framer.get_mut(dir).next(rest, MAX_PACKET, packet) {
                Next::More => return Step::Continue,
                Next::Invalid { .. } => return Step::Stop,
                Next::Msg {
                    hdr, bytes, used, ..
                } => {
                    pos += used;
                    let payload = bytes.get(HEADER..).unwrap_or_default();
                    let step = match dir {
                        Dir::Server => self.server(hdr, payload, cx),
                        Dir::Client => self.client(hdr, payload, cx),
                    };
                    if step != Step::Continue {
                        return with_at(step, pos);
                    }
                }
            }
        }
        Step::Continue
    }

    /// The HandshakeResponse went in plaintext: no SSLRequest can follow it.
    fn past_upgrade(&self) -> bool {
        self.phase == Phase::Auth
    }
}

impl Mysql {
    fn server(&mut self, seq: u8, p: &[u8], cx: &mut Cx<'_>) -> Step {
        match self.phase {
            Phase::Greeting => {
                let Some(caps) = greeting_caps(p).filter(|_| seq == 0) else {
                    // An error packet instead of a greeting (host not allowed, too many connections).
                    return Step::Stop;
                };
                cx.app("mysql");
                if caps & CLIENT_SSL != 0 {
                    cx.offered();
                } else {
                    cx.rec.note(Note::MysqlNoSslCapability);
                }
                self.phase = Phase::Response;
                Step::Continue
            }
            Phase::Response => Step::Continue,
            Phase::Auth => match p.first() {
                // OK or ERR: authentication is over.
                Some(0x00 | 0xff) => Step::Stop,
                // AuthSwitchRequest: the plugin the client must use now.
                Some(0xfe) => {
                    let plugin = cstr(p, 1).map(|(n, _)| n).unwrap_or_default();
                    self.clear_next = clear_plugin(plugin);
                    Step::Continue
                }
                _ => Step::Continue,
            },
        }
    }

    fn client(&mut self, seq: u8, p: &[u8], cx: &mut Cx<'_>) -> Step {
        match self.phase {
            Phase::Greeting => Step::Stop,
            Phase::Response => {
                let caps = le(p, 0, 4).unwrap_or(0);
                if seq == 1 && p.len() == SSL_REQUEST_LEN && caps & CLIENT_SSL != 0 {
                    cx.command(b"SSLRequest");
                    return Step::Upgrade { at: 0 };
                }
                self.phase = Phase::Auth;
                let Some(resp) = handshake_response(p) else {
                    return Step::Stop;
                };
                self.user = Some(resp.user.to_vec());
                if let Some(mech) = resp.plugin.and_then(clear_plugin) {
                    cx.cleartext_auth(mech, self.user.as_deref());
                }
                Step::Continue
            }
            Phase::Auth => {
                if let Some(mech) = self.clear_next.take() {
                    cx.cleartext_auth(mech, self.user.as_deref());
                }
                Step::Continue
            }
        }
    }
}

fn clear_plugin(name: &[u8]) -> Option<&'static str> {
    CLEAR_PLUGINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, mech)| mech)
}

/// What tlswatch reads from a HandshakeResponse41 (never the auth response).
#[derive(Debug, PartialEq, Eq)]
pub struct Response<'a> {
    pub user: &'a [u8],
    pub plugin: Option<&'a [u8]>,
}

/// Parses a HandshakeResponse41 payload.
pub fn handshake_response(p: &[u8]) -> Option<Response<'_>> {
    let caps = le(p, 0, 4)?;
    if caps & CLIENT_PROTOCOL_41 == 0 {
        return None;
    }
    // capabilities (4), max packet size (4), charset (1), filler (23)
    let (user, mut at) = cstr(p, 32)?;
    let auth_len = if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        let (n, used) = lenenc(p, at)?;
        at += used;
        n
    } else if caps & CLIENT_SECURE_CONNECTION != 0 {
        let n = u64::from(*p.get(at)?);
        at += 1;
        n
    } else {
        let (a, _) = cstr(p, at)?;
        at += 1;
        a.len() as u64
    };
    at = at.checked_add(usize::try_from(auth_len).ok()?)?;
    let mut plugin = None;
    if caps & CLIENT_CONNECT_WITH_DB != 0 {
        match cstr(p, at) {
            Some((_, next)) => at = next,
            None => return Some(Response { user, plugin }),
        }
    }
    if caps & CLIENT_PLUGIN_AUTH != 0 {
        plugin = cstr(p, at).map(|(n, _)| n);
    }
    Some(Response { user, plugin })
}

/// A length-encoded integer: its value and its size.
fn lenenc(p: &[u8], at: usize) -> Option<(u64, usize)> {
    let &b = p.get(at)?;
    let n = match b {
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        0xfb | 0xff => return None,
        _ => return Some((u64::from(b), 1)),
    };
    let bytes = p.get(at + 1..at + 1 + n)?;
    let v = bytes.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x));
    Some((v, 1 + n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::with_users;
    use crate::analyzer::starttls::tests::{client_hello, run_split_invariant, server_hello};
    use crate::record::Code;
    use crate::record::Encryption;

    fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut v = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
        v.extend(payload);
        v
    }

    fn greeting(caps: u32) -> Vec<u8> {
        let mut p = vec![PROTOCOL_10];
        p.extend(b"10.11.19-MariaDB\0");
        p.extend([1, 0, 0, 0]);
        p.extend([b'a'; 8]);
        p.push(0);
        p.extend((caps as u16).to_le_bytes());
        p.push(8);
        p.extend([2, 0]);
        p.extend(((caps >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend([0; 10]);
        p.extend([b'b'; 12]);
        p.push(0);
        p.extend(b"mysql_native_password\0");
        pkt(0, &p)
    }

    const CAPS: u32 = CLIENT_PROTOCOL_41
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH
        | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;

    fn ssl_request() -> Vec<u8> {
        let mut p = (CAPS | CLIENT_SSL).to_le_bytes().to_vec();
        p.extend(16_777_216u32.to_le_bytes());
        p.push(33);
        p.extend([0; 23]);
        pkt(1, &p)
    }

    fn response(user: &str, secret: &[u8], plugin: &str) -> Vec<u8> {
        let mut p = CAPS.to_le_bytes().to_vec();
        p.extend(16_777_216u32.to_le_bytes());
        p.push(33);
        p.extend([0; 23]);
        p.extend(user.as_bytes());
        p.push(0);
        p.push(secret.len() as u8);
        p.extend(secret);
        p.extend(plugin.as_bytes());
        p.push(0);
        pkt(1, &p)
    }

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Server, greeting(CAPS | CLIENT_SSL)),
            (Dir::Client, ssl_request()),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn framing_and_parsers() {
        assert_eq!(packet(&[5, 0]), Parse::NeedMore);
        assert_eq!(packet(&[5, 0, 0, 1]), Parse::Done(1, 9));
        let g = greeting(CLIENT_SSL | CLIENT_PROTOCOL_41 | CLIENT_PLUGIN_AUTH);
        assert_eq!(
            greeting_caps(&g[4..]),
            Some(CLIENT_SSL | CLIENT_PROTOCOL_41 | CLIENT_PLUGIN_AUTH)
        );
        assert_eq!(greeting_caps(b"\x09abc\0"), None);
        assert_eq!(greeting_caps(b"\x0aabc"), None);
        let r = response("app", b"0123456789", "mysql_clear_password");
        assert_eq!(
            handshake_response(&r[4..]),
            Some(Response {
                user: b"app",
                plugin: Some(b"mysql_clear_password")
            })
        );
        assert_eq!(handshake_response(&[0, 0, 0, 0]), None);
        assert_eq!(lenenc(&[0xfc, 1, 2], 0), Some((0x0201, 3)));
        assert_eq!(lenenc(&[0xfb], 0), None);
    }

    #[test]
    fn detects_the_greeting_on_any_port() {
        let g = greeting(CAPS);
        assert_eq!(detect(b"", &g, 13306), Verdict::Yes { swap: false });
        assert_eq!(detect(b"", &g[..8], 13306), Verdict::Maybe);
        assert_eq!(detect(b"", &g[..3], 13306), Verdict::Maybe);
        assert_eq!(detect(b"", b"220 mx ESMTP\r\n", 3306), Verdict::No);
        assert_eq!(detect(b"", &[0x40, 0, 0, 0, 0x0a, 0], 3306), Verdict::No);
        assert_eq!(detect(b"EHLO x\r\n", b"", 3306), Verdict::No);
    }

    #[test]
    fn ssl_request_upgrades_both_ways() {
        let rec = run_split_invariant(Proto::Mysql, &accepted());
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && st.requested && st.accepted);
        assert_eq!(st.command.as_deref(), Some("SSLRequest"));
        assert_eq!(st.client_offset, Some(36));
        assert_eq!(st.server_offset, Some(accepted()[0].1.len() as u64));
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some("mysql"));
    }

    #[test]
    fn plaintext_response_and_no_ssl_note() {
        let t = vec![
            (Dir::Server, greeting(CAPS | CLIENT_SSL)),
            (
                Dir::Client,
                response("app", &[7; 20], "mysql_native_password"),
            ),
            (Dir::Server, pkt(2, &[0, 0, 0, 2, 0, 0, 0])),
        ];
        let rec = run_split_invariant(Proto::Mysql, &t);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        assert!(rec.cleartext_auth.is_empty());
        assert!(!rec.has_note(Note::MysqlNoSslCapability));
        let codes: Vec<_> = crate::assess::assess(&rec, &Default::default())
            .iter()
            .map(|f| f.code)
            .collect();
        assert!(codes.contains(&Code::StarttlsNotUsed));

        let mut t = t;
        t[0] = (Dir::Server, greeting(CAPS));
        let rec = run_split_invariant(Proto::Mysql, &t);
        assert!(rec.has_note(Note::MysqlNoSslCapability));
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }

    #[test]
    fn clear_password_plugin_never_keeps_the_password() {
        let t = vec![
            (Dir::Server, greeting(CAPS | CLIENT_SSL)),
            (
                Dir::Client,
                response("app", b"FakeMyClear-8830\0", "mysql_clear_password"),
            ),
            (Dir::Server, pkt(2, b"\xff\x15\x04#28000Access denied")),
        ];
        let rec = run_split_invariant(Proto::Mysql, &t);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(
            rec.cleartext_auth[0].mechanism,
            "MySQL mysql_clear_password"
        );
        assert_eq!(rec.cleartext_auth[0].user, None);
        assert!(
            !serde_json::to_string(&rec)
                .unwrap_or_default()
                .contains("FakeMy")
        );
        let rec = with_users(Proto::Mysql, &t);
        assert_eq!(rec.cleartext_auth[0].user.as_deref(), Some("app"));

        // Switched to the plugin by the server: the next client packet is the password.
        let t = vec![
            (Dir::Server, greeting(CAPS)),
            (
                Dir::Client,
                response("app", &[7; 20], "mysql_native_password"),
            ),
            (Dir::Server, pkt(2, b"\xfemysql_clear_password\0")),
            (Dir::Client, pkt(3, b"S3cret\0")),
            (Dir::Server, pkt(4, &[0, 0, 0, 2, 0, 0, 0])),
        ];
        let rec = run_split_invariant(Proto::Mysql, &t);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert!(
            !serde_json::to_string(&rec)
                .unwrap_or_default()
                .contains("S3cret")
        );
    }
}
