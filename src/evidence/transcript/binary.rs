//! Binary protocols in a transcript: each message by its name (LDAP
//! ExtendedRequest StartTLS, PostgreSQL SSLRequest, TDS PRELOGIN, SOCKS CONNECT,
//! ...), with the few fields that say what the upgrade did; credentials as the
//! flow records redact them (a user only with `--show-users`), message contents
//! otherwise never.

use super::out::{Fref, Out};
use crate::record::{Dir, PerDir, escape_wire};

/// Bytes of a message kept to name it; the rest of a longer one is passed over.
pub const MAX_HEAD: usize = 1024;

/// The binary protocols a transcript names messages of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Ldap,
    Postgres,
    Mysql,
    Rdp,
    Tds,
    Socks,
}

impl Proto {
    pub fn of(app: Option<&str>) -> Option<Proto> {
        Some(match app? {
            "ldap" => Proto::Ldap,
            "postgresql" => Proto::Postgres,
            "mysql" => Proto::Mysql,
            "rdp" => Proto::Rdp,
            "tds" => Proto::Tds,
            "socks" => Proto::Socks,
            _ => return None,
        })
    }
}

/// What the bytes at the start of a buffer are.
#[derive(Debug, PartialEq, Eq)]
enum Parse {
    /// Not enough bytes yet.
    Need,
    /// A message of `len` bytes, named.
    Msg { len: u64, name: String },
    /// Not this protocol (encrypted, or garbage): the direction is only counted.
    Bad,
}

/// One direction's message framing.
#[derive(Debug, Default)]
struct Framer {
    buf: Vec<u8>,
    /// Bytes left of a message whose name is known.
    skip: u64,
    pending: Option<String>,
    /// The direction stopped parsing: bytes counted since.
    broken: Option<u64>,
}

/// Where each side of the dialogue is, for the messages whose layout depends on it.
#[derive(Debug, Default)]
struct Dialogue {
    /// PostgreSQL: the client sent its StartupMessage (later messages are typed).
    pg_started: bool,
    /// PostgreSQL: the server answers an SSLRequest or GSSENCRequest with one byte.
    pg_answer: bool,
    /// MySQL: packets seen per direction.
    mysql_packets: PerDir<u32>,
    /// MySQL: the server accepted the login (later client packets are commands).
    mysql_authed: bool,
    /// MySQL: the client sent its login (its packets until the server's answer are credentials).
    mysql_login: bool,
    /// TDS: the client sent LOGIN7.
    tds_login: bool,
    /// SOCKS: messages seen per direction, and the method the server chose.
    socks: PerDir<u32>,
    socks_method: Option<u8>,
}

/// Names the messages of one flow.
#[derive(Debug)]
pub struct Binary {
    proto: Proto,
    show_users: bool,
    dirs: PerDir<Framer>,
    d: Dialogue,
}

impl Binary {
    pub fn new(proto: Proto, show_users: bool) -> Self {
        Binary {
            proto,
            show_users,
            dirs: PerDir::default(),
            d: Dialogue::default(),
        }
    }

    /// In-order cleartext of `dir`, brought by packet `at`.
    pub fn data(&mut self, dir: Dir, at: Fref, mut bytes: &[u8], out: &mut Out) {
        while !bytes.is_empty() {
            let f = self.dirs.get_mut(dir);
            if let Some(n) = f.broken.as_mut() {
                *n += bytes.len() as u64;
                return;
            }
            if f.skip > 0 {
                let n = f.skip.min(bytes.len() as u64);
                f.skip -= n;
                bytes = bytes.get(n as usize..).unwrap_or_default();
                if f.skip == 0
                    && let Some(name) = f.pending.take()
                {
                    out.line(at, dir, &name, 0);
                }
                continue;
            }
            let take = MAX_HEAD.saturating_sub(f.buf.len()).min(bytes.len());
            f.buf
                .extend_from_slice(bytes.get(..take).unwrap_or_default());
            bytes = bytes.get(take..).unwrap_or_default();
            self.drain(dir, at, out);
        }
    }

    /// Names every complete message at the start of `dir`'s buffer. A message
    /// is named once it is all there, or once [`MAX_HEAD`] bytes of it are.
    fn drain(&mut self, dir: Dir, at: Fref, out: &mut Out) {
        loop {
            let buf = std::mem::take(&mut self.dirs.get_mut(dir).buf);
            let mut parsed = self.parse(dir, &buf);
            if let Parse::Msg { len, .. } = parsed {
                let have = buf.len() as u64;
                if have < len && buf.len() < MAX_HEAD {
                    parsed = Parse::Need;
                } else {
                    self.accept(dir, &buf);
                }
            }
            let f = self.dirs.get_mut(dir);
            f.buf = buf;
            match parsed {
                Parse::Need if f.buf.len() >= MAX_HEAD => {
                    f.broken = Some(f.buf.len() as u64);
                    return;
                }
                Parse::Need => return,
                Parse::Bad => {
                    f.broken = Some(f.buf.len() as u64);
                    f.buf = Vec::new();
                    return;
                }
                Parse::Msg { len, name } if len <= f.buf.len() as u64 => {
                    f.buf.drain(..len as usize);
                    out.line(at, dir, &name, len as usize);
                    if f.buf.is_empty() {
                        return;
                    }
                }
                Parse::Msg { len, name } => {
                    f.skip = len - f.buf.len() as u64;
                    f.buf.clear();
                    f.pending = Some(name);
                    return;
                }
            }
        }
    }

    /// The end of the flow: what was left unparsed is said, except the start of
    /// a message that carried TLS (`tls`: the directions that reached their TLS;
    /// TDS wraps the handshake in PRELOGIN packets).
    pub fn finish(&mut self, at: Fref, out: &mut Out, tls: PerDir<bool>) {
        for dir in [Dir::Client, Dir::Server] {
            let f = self.dirs.get_mut(dir);
            if *tls.get(dir) && f.broken.is_none() {
                continue;
            }
            if let Some(n) = f.broken {
                let what = format!(
                    "[{n} bytes that are not {:?} messages (encrypted, or cut): not shown]",
                    self.proto
                );
                out.line(at, dir, &what, 0);
            } else if let Some(name) = f.pending.take() {
                out.line(
                    at,
                    dir,
                    &format!("{name} (cut short by the end of the capture)"),
                    0,
                );
            } else if !f.buf.is_empty() {
                let what = format!("[{} bytes of an unfinished message]", f.buf.len());
                out.line(at, dir, &what, 0);
            }
        }
    }

    /// What a message the framing accepted changes in the dialogue.
    fn accept(&mut self, dir: Dir, b: &[u8]) {
        let d = &mut self.d;
        match (self.proto, dir) {
            (Proto::Postgres, Dir::Client) if !d.pg_started => {
                let code = be32(b, 4).unwrap_or(0);
                d.pg_answer = code == 80_877_103 || code == 80_877_104;
                d.pg_started = code == 196_608;
            }
            (Proto::Postgres, Dir::Server) => d.pg_answer = false,
            (Proto::Mysql, _) => {
                let n = *d.mysql_packets.get(dir);
                *d.mysql_packets.get_mut(dir) += 1;
                let first = b.get(4).copied();
                match dir {
                    Dir::Client if !(n == 0 && b.first() == Some(&32)) => d.mysql_login = true,
                    Dir::Server if first == Some(0) && d.mysql_login => d.mysql_authed = true,
                    _ => {}
                }
            }
            (Proto::Tds, Dir::Client) if b.first() == Some(&0x10) => d.tds_login = true,
            (Proto::Socks, _) => {
                if dir == Dir::Server && *d.socks.get(dir) == 0 {
                    d.socks_method = b.get(1).copied();
                }
                *d.socks.get_mut(dir) += 1;
            }
            _ => {}
        }
    }

    /// The message at the start of `b` (the dialogue only read, see [`Binary::accept`]).
    fn parse(&self, dir: Dir, b: &[u8]) -> Parse {
        match self.proto {
            Proto::Ldap => ldap(b, self.show_users),
            Proto::Postgres => self.postgres(dir, b),
            Proto::Mysql => self.mysql(dir, b),
            Proto::Rdp => rdp(b),
            Proto::Tds => self.tds(dir, b),
            Proto::Socks => self.socks(dir, b),
        }
    }

    fn postgres(&self, dir: Dir, b: &[u8]) -> Parse {
        match dir {
            Dir::Client if !self.d.pg_started => {
                let (Some(len), Some(code)) = (be32(b, 0), be32(b, 4)) else {
                    return Parse::Need;
                };
                let name = match code {
                    80_877_103 => "SSLRequest",
                    80_877_104 => "GSSENCRequest",
                    80_877_102 => "CancelRequest",
                    196_608 => "StartupMessage (protocol 3.0)",
                    _ => return Parse::Bad,
                };
                msg(u64::from(len), name.to_string())
            }
            Dir::Server if self.d.pg_answer => {
                let Some(&c) = b.first() else {
                    return Parse::Need;
                };
                let name = match c {
                    b'S' => "S: the server accepts TLS",
                    b'N' => "N: the server refuses (no TLS)",
                    b'G' => "G: the server accepts GSSAPI encryption",
                    b'E' => return pg_typed(Dir::Server, b),
                    _ => return Parse::Bad,
                };
                msg(1, name.to_string())
            }
            _ => pg_typed(dir, b),
        }
    }

    fn mysql(&self, dir: Dir, b: &[u8]) -> Parse {
        let (Some(l0), Some(l1), Some(l2)) = (b.first(), b.get(1), b.get(2)) else {
            return Parse::Need;
        };
        let len = u64::from(*l0) | u64::from(*l1) << 8 | u64::from(*l2) << 16;
        let Some(&first) = b.get(4) else {
            return Parse::Need;
        };
        let n = *self.d.mysql_packets.get(dir);
        let name = match (dir, n) {
            (Dir::Server, 0) if first == 10 => {
                let version = b.get(5..).unwrap_or_default();
                let end = version.iter().position(|&x| x == 0).unwrap_or(0).min(40);
                let v = escape_wire(version.get(..end).unwrap_or_default(), 40);
                format!("Handshake v10 (server {v})")
            }
            (Dir::Client, 0) if len == 32 => "SSLRequest".to_string(),
            (Dir::Client, _) if !self.d.mysql_login => {
                "HandshakeResponse [credentials redacted]".to_string()
            }
            (Dir::Client, _) if !self.d.mysql_authed => {
                "auth data [credentials redacted]".to_string()
            }
            (Dir::Client, _) => mysql_command(first),
            (Dir::Server, _) => mysql_reply(first, len, b),
        };
        msg(len + 4, name)
    }

    fn tds(&self, dir: Dir, b: &[u8]) -> Parse {
        let (Some(&kind), Some(len)) = (b.first(), be16(b, 2)) else {
            return Parse::Need;
        };
        if len < 8 || !matches!(kind, 0x01..=0x07 | 0x0e | 0x0f | 0x10 | 0x11 | 0x12) {
            return Parse::Bad;
        }
        let payload = b.get(8..).unwrap_or_default();
        let name = match kind {
            0x12 | 0x04 if payload.first() == Some(&0x16) => {
                "PRELOGIN (TLS handshake inside)".to_string()
            }
            0x12 => format!("PRELOGIN{}", prelogin_encryption(payload)),
            0x04 if !self.d.tds_login && dir == Dir::Server => {
                format!("PRELOGIN response{}", prelogin_encryption(payload))
            }
            0x10 => "LOGIN7 [credentials redacted]".to_string(),
            0x01 => "SQL batch".to_string(),
            0x03 => "RPC request".to_string(),
            0x04 => "tabular result".to_string(),
            0x06 => "attention".to_string(),
            0x07 => "bulk load".to_string(),
            0x0e => "transaction manager request".to_string(),
            0x11 => "SSPI".to_string(),
            other => format!("TDS packet type 0x{other:02x}"),
        };
        msg(u64::from(len), name)
    }

    fn socks(&self, dir: Dir, b: &[u8]) -> Parse {
        let n = *self.d.socks.get(dir);
        match (dir, b.first()) {
            (_, None) => Parse::Need,
            (Dir::Client, Some(4)) if n == 0 => socks4_request(b),
            (Dir::Server, Some(0)) if n == 0 => socks4_reply(b),
            (Dir::Client, Some(5)) if n == 0 => socks5_greeting(b),
            (Dir::Server, Some(5)) if n == 0 => socks5_method(b),
            (Dir::Client, Some(1)) if n == 1 && self.d.socks_method == Some(2) => {
                socks5_userpass(b, self.show_users)
            }
            (Dir::Server, Some(1)) if n == 1 && self.d.socks_method == Some(2) => {
                let ok = b
                    .get(1)
                    .map(|&s| if s == 0 { "succeeded" } else { "failed" });
                match ok {
                    Some(ok) => msg(2, format!("SOCKS5 authentication {ok}")),
                    None => Parse::Need,
                }
            }
            (Dir::Client, Some(5)) => {
                socks5_request(b, "SOCKS5", &["CONNECT", "BIND", "UDP ASSOCIATE"])
            }
            (Dir::Server, Some(5)) => socks5_request(b, "SOCKS5 reply:", SOCKS5_REPLIES),
            _ => Parse::Bad,
        }
    }
}

fn msg(len: u64, name: String) -> Parse {
    if len == 0 {
        return Parse::Bad;
    }
    Parse::Msg { len, name }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    be32(b, at).map(u32::swap_bytes)
}

/// A typed PostgreSQL message: one type byte, a length that counts itself.
fn pg_typed(dir: Dir, b: &[u8]) -> Parse {
    let (Some(&t), Some(len)) = (b.first(), be32(b, 1)) else {
        return Parse::Need;
    };
    if len < 4 {
        return Parse::Bad;
    }
    let name = match (dir, t) {
        (Dir::Client, b'p') => "password message [credentials redacted]".to_string(),
        (Dir::Client, b'Q') => format!("Query [{} bytes, not shown]", len - 4),
        (Dir::Client, b'X') => "Terminate".to_string(),
        (Dir::Client, b'P') => "Parse".to_string(),
        (Dir::Client, b'B') => "Bind".to_string(),
        (Dir::Client, b'E') => "Execute".to_string(),
        (Dir::Client, b'S') => "Sync".to_string(),
        (Dir::Server, b'R') => pg_auth(be32(b, 5)),
        (Dir::Server, b'S') => "ParameterStatus".to_string(),
        (Dir::Server, b'K') => "BackendKeyData".to_string(),
        (Dir::Server, b'Z') => "ReadyForQuery".to_string(),
        (Dir::Server, b'E') => format!("ErrorResponse{}", pg_sqlstate(b)),
        (Dir::Server, b'N') => "NoticeResponse".to_string(),
        (Dir::Server, b'T') => "RowDescription".to_string(),
        (Dir::Server, b'D') => "DataRow".to_string(),
        (Dir::Server, b'C') => "CommandComplete".to_string(),
        (_, t) if t.is_ascii_alphabetic() => format!("message '{}'", char::from(t)),
        _ => return Parse::Bad,
    };
    msg(u64::from(len) + 1, name)
}

fn pg_auth(kind: Option<u32>) -> String {
    let what = match kind {
        Some(0) => "Ok",
        Some(3) => "CleartextPassword",
        Some(5) => "MD5Password",
        Some(7) => "GSS",
        Some(10) => "SASL",
        Some(11) => "SASLContinue",
        Some(12) => "SASLFinal",
        _ => "other",
    };
    format!("Authentication{what}")
}

/// ` (SQLSTATE xxxxx)` of an ErrorResponse, when its fields hold one.
fn pg_sqlstate(b: &[u8]) -> String {
    let fields = b.get(5..).unwrap_or_default();
    let mut parts = fields.split(|&x| x == 0);
    let code = parts.find(|f| f.first() == Some(&b'C'));
    code.and_then(|c| c.get(1..))
        .filter(|c| c.len() == 5 && c.iter().all(u8::is_ascii_alphanumeric))
        .map(|c| format!(" (SQLSTATE {})", String::from_utf8_lossy(c)))
        .unwrap_or_default()
}

fn mysql_command(first: u8) -> String {
    match first {
        0x01 => "COM_QUIT".into(),
        0x02 => "COM_INIT_DB".into(),
        0x03 => "COM_QUERY [not shown]".into(),
        0x0e => "COM_PING".into(),
        0x16 => "COM_STMT_PREPARE".into(),
        0x17 => "COM_STMT_EXECUTE".into(),
        n => format!("command 0x{n:02x}"),
    }
}

fn mysql_reply(first: u8, len: u64, b: &[u8]) -> String {
    match first {
        0x00 => "OK".into(),
        0xff => {
            let code = be16(b, 5).map_or(0, u16::swap_bytes);
            format!("ERR {code}")
        }
        0xfe if len < 9 => "EOF".into(),
        0xfe => {
            let plugin = b.get(5..).unwrap_or_default();
            let end = plugin.iter().position(|&x| x == 0).unwrap_or(0).min(40);
            let p = escape_wire(plugin.get(..end).unwrap_or_default(), 40);
            format!("AuthSwitchRequest ({p})")
        }
        0x01 => "AuthMoreData".into(),
        _ => "result data".into(),
    }
}

/// ` (encryption ON)` from a PRELOGIN payload's ENCRYPTION option.
fn prelogin_encryption(p: &[u8]) -> String {
    let mut at = 0;
    while let Some(&token) = p.get(at) {
        if token == 0xff {
            break;
        }
        if token == 0x01
            && let Some(off) = be16(p, at + 1)
            && let Some(&v) = p.get(usize::from(off))
        {
            let what = match v {
                0 => "OFF".to_string(),
                1 => "ON".to_string(),
                2 => "NOT_SUP".to_string(),
                3 => "REQ".to_string(),
                n => format!("0x{n:02x}"),
            };
            return format!(" (encryption {what})");
        }
        at += 5;
    }
    String::new()
}

/// An LDAPMessage: `SEQUENCE { messageID, protocolOp, ... }`.
fn ldap(b: &[u8], show_users: bool) -> Parse {
    if b.first().is_some_and(|&t| t != 0x30) {
        return Parse::Bad;
    }
    let Some((hdr, len)) = ber_len(b, 1) else {
        return Parse::Need;
    };
    let total = (hdr + len) as u64;
    let body = b.get(hdr..).unwrap_or_default();
    // messageID INTEGER
    let Some((id_hdr, id_len)) = body.get(1..).and_then(|_| ber_len(body, 1)) else {
        return Parse::Need;
    };
    let op_at = id_hdr + id_len;
    let Some(&tag) = body.get(op_at) else {
        return Parse::Need;
    };
    let op = body.get(op_at..).unwrap_or_default();
    let name = match tag & 0x1f {
        0 => ldap_bind(op, show_users),
        1 => format!("BindResponse {}", ldap_result(op)),
        2 => "UnbindRequest".to_string(),
        3 => "SearchRequest".to_string(),
        4 => "SearchResultEntry".to_string(),
        5 => format!("SearchResultDone {}", ldap_result(op)),
        6 => "ModifyRequest".to_string(),
        7 => "ModifyResponse".to_string(),
        8 => "AddRequest".to_string(),
        9 => "AddResponse".to_string(),
        10 => "DelRequest".to_string(),
        11 => "DelResponse".to_string(),
        16 => "AbandonRequest".to_string(),
        19 => "SearchResultReference".to_string(),
        23 => format!("ExtendedRequest {}", ldap_oid(op)),
        24 => format!("ExtendedResponse {}", ldap_result(op)),
        25 => "IntermediateResponse".to_string(),
        n => format!("LDAP operation {n}"),
    };
    if tag & 0xc0 != 0x40 {
        return Parse::Bad;
    }
    msg(total, name)
}

/// A BER length at `at` (after the tag): (bytes up to the content, content length).
fn ber_len(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let first = *b.get(at)?;
    if first < 0x80 {
        return Some((at + 1, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return Some((at + 1, usize::MAX / 2));
    }
    let mut len = 0usize;
    for i in 0..n {
        len = len << 8 | usize::from(*b.get(at + 1 + i)?);
    }
    Some((at + 1 + n, len))
}

/// The contents of the TLV at the start of `b`.
fn ber_value(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (hdr, len) = ber_len(b, 1)?;
    let v = b.get(hdr..hdr.checked_add(len)?)?;
    Some((v, b.get(hdr + len..).unwrap_or_default()))
}

fn ldap_bind(op: &[u8], show_users: bool) -> String {
    let inner = ber_value(op).map(|(v, _)| v).unwrap_or_default();
    let after_version = ber_value(inner).map(|(_, rest)| rest).unwrap_or_default();
    let (dn, auth) = ber_value(after_version).unwrap_or_default();
    let who = if show_users {
        format!("name {}", escape_wire(dn, 80))
    } else {
        format!("[user redacted, {} bytes]", dn.len())
    };
    match auth.first() {
        Some(0x80) => format!("BindRequest simple, {who}, [password redacted]"),
        Some(0xa3) => {
            let mech = ber_value(auth)
                .and_then(|(v, _)| ber_value(v))
                .map(|(m, _)| escape_wire(m, 40))
                .unwrap_or_default();
            format!("BindRequest SASL {mech}, {who}, [credentials redacted]")
        }
        _ => format!("BindRequest, {who}"),
    }
}

/// `success`, `unwillingToPerform (53)`, ... from an LDAPResult.
fn ldap_result(op: &[u8]) -> String {
    let inner = ber_value(op).map(|(v, _)| v).unwrap_or_default();
    let code = match inner {
        [0x0a, 1, c, ..] => *c,
        _ => return String::new(),
    };
    let name = match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        52 => "unavailable",
        53 => "unwillingToPerform",
        _ => "",
    };
    if name.is_empty() {
        format!("(result {code})")
    } else {
        format!("{name} ({code})")
    }
}

/// The requestName of an ExtendedRequest: `StartTLS` for RFC 4511's OID.
fn ldap_oid(op: &[u8]) -> String {
    let inner = ber_value(op).map(|(v, _)| v).unwrap_or_default();
    match inner.first() {
        Some(0x80) => {
            let oid = ber_value(inner).map(|(v, _)| v).unwrap_or_default();
            if oid == b"1.3.6.1.4.1.1466.20037" {
                "StartTLS (1.3.6.1.4.1.1466.20037)".to_string()
            } else {
                escape_wire(oid, 80)
            }
        }
        _ => String::new(),
    }
}

/// A TPKT (X.224) packet, or a fast-path PDU.
fn rdp(b: &[u8]) -> Parse {
    let Some(&first) = b.first() else {
        return Parse::Need;
    };
    if first != 3 {
        if first & 0x03 != 0 {
            return Parse::Bad;
        }
        let Some(&l1) = b.get(1) else {
            return Parse::Need;
        };
        let len = if l1 & 0x80 != 0 {
            match b.get(2) {
                Some(&l2) => u64::from(l1 & 0x7f) << 8 | u64::from(l2),
                None => return Parse::Need,
            }
        } else {
            u64::from(l1)
        };
        return msg(len, "fast-path PDU".to_string());
    }
    let (Some(len), Some(&code)) = (be16(b, 2), b.get(5)) else {
        return Parse::Need;
    };
    let name = match code & 0xf0 {
        0xe0 => format!("X.224 Connection Request{}", rdp_request(b)),
        0xd0 => format!("X.224 Connection Confirm{}", rdp_confirm(b)),
        0xf0 => format!("X.224 Data{}", mcs(b.get(7..).unwrap_or_default())),
        0x80 => "X.224 Disconnect Request".to_string(),
        _ => "X.224 TPDU".to_string(),
    };
    msg(u64::from(len), name)
}

/// The protocols a Connection Request asks for (the cookie, a user name, redacted).
fn rdp_request(b: &[u8]) -> String {
    let Some(len) = be16(b, 2) else {
        return String::new();
    };
    let tpdu = b.get(11..usize::from(len)).unwrap_or_default();
    let cookie = tpdu.starts_with(b"Cookie:");
    let neg_at = tpdu
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(0, |p| p + 2);
    let neg = tpdu.get(neg_at..).unwrap_or_default();
    let mut parts = Vec::new();
    if cookie {
        parts.push("cookie [user redacted]".to_string());
    }
    if neg.first() == Some(&1) {
        parts.push(format!(
            "requested: {}",
            rdp_protocols(le32(neg, 4).unwrap_or(0))
        ));
    }
    bracket(&parts)
}

/// What a Connection Confirm selected, or why it failed.
fn rdp_confirm(b: &[u8]) -> String {
    let neg = b.get(11..).unwrap_or_default();
    match neg.first() {
        Some(2) => format!(" (selected: {})", rdp_protocols(le32(neg, 4).unwrap_or(0))),
        Some(3) => format!(" (negotiation failure {})", le32(neg, 4).unwrap_or(0)),
        _ => " (no negotiation: standard RDP security)".to_string(),
    }
}

fn rdp_protocols(p: u32) -> String {
    if p == 0 {
        return "standard RDP security".to_string();
    }
    let names = [
        (1, "TLS"),
        (2, "CredSSP"),
        (4, "RDSTLS"),
        (8, "CredSSP with early auth"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| p & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    v.join(", ")
}

/// The MCS PDU inside X.224 Data, by name.
fn mcs(p: &[u8]) -> String {
    let name = match p {
        [0x7f, 0x65, ..] => "MCS Connect Initial",
        [0x7f, 0x66, ..] => "MCS Connect Response",
        [b, ..] => match b >> 2 {
            1 => "MCS Erect Domain Request",
            8 => "MCS Disconnect Provider Ultimatum",
            10 => "MCS Attach User Request",
            11 => "MCS Attach User Confirm",
            14 => "MCS Channel Join Request",
            15 => "MCS Channel Join Confirm",
            25 => "MCS Send Data Request",
            26 => "MCS Send Data Indication",
            _ => "",
        },
        [] => "",
    };
    if name.is_empty() {
        String::new()
    } else {
        format!(" ({name})")
    }
}

fn bracket(parts: &[String]) -> String {
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

/// `VN CD DSTPORT DSTIP USERID\0 [DOMAIN\0]` (SOCKS4, SOCKS4a).
fn socks4_request(b: &[u8]) -> Parse {
    let Some(user_end) = b.get(8..).and_then(|r| r.iter().position(|&x| x == 0)) else {
        return if b.len() > 300 {
            Parse::Bad
        } else {
            Parse::Need
        };
    };
    let (Some(port), Some(ip)) = (be16(b, 2), b.get(4..8)) else {
        return Parse::Need;
    };
    let mut len = 8 + user_end + 1;
    let cmd = if b.get(1) == Some(&2) {
        "BIND"
    } else {
        "CONNECT"
    };
    let target = if matches!(ip, [0, 0, 0, x] if *x != 0) {
        let rest = b.get(len..).unwrap_or_default();
        let Some(end) = rest.iter().position(|&x| x == 0) else {
            return Parse::Need;
        };
        len += end + 1;
        format!(
            "{}:{port} (SOCKS4a)",
            escape_wire(rest.get(..end).unwrap_or_default(), 80)
        )
    } else {
        let ip: Vec<String> = ip.iter().map(u8::to_string).collect();
        format!("{}:{port}", ip.join("."))
    };
    let user = if user_end > 0 {
        format!(" [user id redacted, {user_end} bytes]")
    } else {
        String::new()
    };
    msg(len as u64, format!("SOCKS4 {cmd} {target}{user}"))
}

fn socks4_reply(b: &[u8]) -> Parse {
    let Some(&cd) = b.get(1) else {
        return Parse::Need;
    };
    let what = match cd {
        90 => "request granted",
        91 => "request rejected or failed",
        92 => "rejected: no identd",
        93 => "rejected: identd user mismatch",
        _ => "unknown reply",
    };
    msg(8, format!("SOCKS4 reply: {what}"))
}

fn socks5_greeting(b: &[u8]) -> Parse {
    let Some(&n) = b.get(1) else {
        return Parse::Need;
    };
    let Some(methods) = b.get(2..2 + usize::from(n)) else {
        return Parse::Need;
    };
    let names: Vec<String> = methods.iter().map(|&m| socks5_method_name(m)).collect();
    msg(
        2 + u64::from(n),
        format!("SOCKS5 greeting (methods: {})", names.join(", ")),
    )
}

fn socks5_method(b: &[u8]) -> Parse {
    match b.get(1) {
        Some(&m) => msg(2, format!("SOCKS5 method: {}", socks5_method_name(m))),
        None => Parse::Need,
    }
}

fn socks5_method_name(m: u8) -> String {
    match m {
        0 => "no authentication".into(),
        1 => "GSSAPI".into(),
        2 => "username/password".into(),
        0xff => "none acceptable".into(),
        n => format!("0x{n:02x}"),
    }
}

/// RFC 1929's `VER ULEN UNAME PLEN PASSWD`.
fn socks5_userpass(b: &[u8], show_users: bool) -> Parse {
    let Some(&ulen) = b.get(1) else {
        return Parse::Need;
    };
    let u = usize::from(ulen);
    let (Some(user), Some(&plen)) = (b.get(2..2 + u), b.get(2 + u)) else {
        return Parse::Need;
    };
    let who = if show_users {
        format!("user {}", escape_wire(user, 64))
    } else {
        format!("[user redacted, {u} bytes]")
    };
    let len = 3 + u + usize::from(plen);
    msg(
        len as u64,
        format!("SOCKS5 username/password: {who}, [password redacted]"),
    )
}

const SOCKS5_REPLIES: &[&str] = &[
    "succeeded",
    "general failure",
    "not allowed by ruleset",
    "network unreachable",
    "host unreachable",
    "connection refused",
    "TTL expired",
    "command not supported",
    "address type not supported",
];

/// `VER CMD|REP RSV ATYP ADDR PORT`: a request (`what` names commands) or a reply.
fn socks5_request(b: &[u8], prefix: &str, what: &[&str]) -> Parse {
    let (Some(&code), Some(&atyp)) = (b.get(1), b.get(3)) else {
        return Parse::Need;
    };
    let (addr, at) = match atyp {
        1 => match b.get(4..8) {
            Some(a) => (a.iter().map(u8::to_string).collect::<Vec<_>>().join("."), 8),
            None => return Parse::Need,
        },
        3 => {
            let Some(&n) = b.get(4) else {
                return Parse::Need;
            };
            let n = usize::from(n);
            match b.get(5..5 + n) {
                Some(h) => (escape_wire(h, 255), 5 + n),
                None => return Parse::Need,
            }
        }
        4 => match b.get(4..20) {
            Some(a) => {
                let mut o = [0u8; 16];
                o.copy_from_slice(a);
                (format!("[{}]", std::net::Ipv6Addr::from(o)), 20)
            }
            None => return Parse::Need,
        },
        _ => return Parse::Bad,
    };
    let Some(port) = be16(b, at) else {
        return Parse::Need;
    };
    let index = if prefix.ends_with(':') {
        code
    } else {
        code.wrapping_sub(1)
    };
    let name = what
        .get(usize::from(index))
        .map_or_else(|| format!("0x{code:02x}"), |s| s.to_string());
    msg(at as u64 + 2, format!("{prefix} {name} {addr}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(proto: Proto, show_users: bool, dialogue: &[(Dir, Vec<u8>)]) -> String {
        let mut b = Binary::new(proto, show_users);
        let mut out = Out::new(0);
        for (i, (dir, bytes)) in dialogue.iter().enumerate() {
            let at = Fref {
                input: 0,
                number: i as u64 + 1,
            };
            for chunk in bytes.chunks(3) {
                b.data(*dir, at, chunk, &mut out);
            }
        }
        b.finish(Fref::default(), &mut out, PerDir::default());
        out.text
    }

    #[test]
    fn ldap_starttls_and_a_simple_bind_by_name() {
        let oid = b"1.3.6.1.4.1.1466.20037";
        let mut ext = vec![
            0x30,
            (7 + oid.len()) as u8,
            0x02,
            0x01,
            0x01,
            0x77,
            (2 + oid.len()) as u8,
            0x80,
            oid.len() as u8,
        ];
        ext.extend(oid);
        let resp = vec![
            0x30, 0x0c, 0x02, 0x01, 0x01, 0x78, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00,
        ];
        let dn = b"cn=admin,dc=example";
        let pw = b"FakeLdapBind-6604";
        let mut bind = vec![
            0x60,
            (3 + 2 + dn.len() + 2 + pw.len()) as u8,
            0x02,
            0x01,
            0x03,
            0x04,
            dn.len() as u8,
        ];
        bind.extend(dn);
        bind.extend([0x80, pw.len() as u8]);
        bind.extend(pw);
        let mut msg = vec![0x30, (3 + bind.len()) as u8, 0x02, 0x01, 0x02];
        msg.extend(bind);
        let text = run(
            Proto::Ldap,
            false,
            &[
                (Dir::Client, ext),
                (Dir::Server, resp),
                (Dir::Client, msg.clone()),
            ],
        );
        assert!(text.contains("C  ExtendedRequest StartTLS"), "{text}");
        assert!(text.contains("S  ExtendedResponse success (0)"), "{text}");
        assert!(
            text.contains("BindRequest simple, [user redacted"),
            "{text}"
        );
        assert!(
            !text.contains("FakeLdapBind") && !text.contains("cn=admin"),
            "{text}"
        );
        let shown = run(Proto::Ldap, true, &[(Dir::Client, msg)]);
        assert!(
            shown.contains("name cn=admin,dc=example") && !shown.contains("FakeLdap"),
            "{shown}"
        );
    }

    #[test]
    fn postgres_sslrequest_answer_and_password() {
        let ssl = vec![0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        let mut startup = vec![0, 0, 0, 0x17, 0, 3, 0, 0];
        startup.extend(b"user\0bob\0\0\0\0\0\0\0");
        let mut pw = vec![b'p', 0, 0, 0, 0x15];
        pw.extend(b"FakePgClear-4417\0");
        let text = run(
            Proto::Postgres,
            false,
            &[
                (Dir::Client, ssl),
                (Dir::Server, b"N".to_vec()),
                (Dir::Client, startup),
                (Dir::Client, pw),
            ],
        );
        assert!(text.contains("C  SSLRequest"), "{text}");
        assert!(text.contains("S  N: the server refuses (no TLS)"), "{text}");
        assert!(text.contains("StartupMessage"), "{text}");
        assert!(
            text.contains("password message [credentials redacted]"),
            "{text}"
        );
        assert!(!text.contains("FakePg") && !text.contains("bob"), "{text}");
    }

    #[test]
    fn socks5_with_a_password_and_a_connect() {
        let text = run(
            Proto::Socks,
            false,
            &[
                (Dir::Client, vec![5, 2, 0, 2]),
                (Dir::Server, vec![5, 2]),
                (
                    Dir::Client,
                    [&[1u8, 3][..], b"bob", &[18], b"FakeSocksPass-1172"].concat(),
                ),
                (Dir::Server, vec![1, 0]),
                (
                    Dir::Client,
                    [&[5u8, 1, 0, 3, 11][..], b"example.com", &[1, 187]].concat(),
                ),
                (Dir::Server, vec![5, 0, 0, 1, 10, 0, 0, 1, 0, 80]),
            ],
        );
        assert!(
            text.contains("SOCKS5 greeting (methods: no authentication, username/password)"),
            "{text}"
        );
        assert!(
            text.contains("SOCKS5 username/password: [user redacted"),
            "{text}"
        );
        assert!(text.contains("C  SOCKS5 CONNECT example.com:443"), "{text}");
        assert!(
            text.contains("S  SOCKS5 reply: succeeded 10.0.0.1:80"),
            "{text}"
        );
        assert!(
            !text.contains("FakeSocks") && !text.contains("bob"),
            "{text}"
        );
    }

    #[test]
    fn tds_prelogin_and_rdp_negotiation() {
        let mut pre = vec![0x12, 1, 0, 0, 0, 0, 1, 0];
        let opts = [0u8, 0, 11, 0, 6, 1, 0, 17, 0, 1, 0xff, 9, 0, 0, 0, 0, 0, 1];
        pre.extend(opts);
        let len = pre.len() as u16;
        pre[2..4].copy_from_slice(&len.to_be_bytes());
        let text = run(Proto::Tds, false, &[(Dir::Client, pre)]);
        assert!(text.contains("PRELOGIN (encryption ON)"), "{text}");
        let cr = vec![3, 0, 0, 19, 14, 0xe0, 0, 0, 0, 0, 0, 1, 0, 8, 0, 3, 0, 0, 0];
        let cc = vec![
            3, 0, 0, 19, 14, 0xd0, 0, 0, 0x12, 0x34, 0, 2, 0, 8, 0, 1, 0, 0, 0,
        ];
        let text = run(Proto::Rdp, false, &[(Dir::Client, cr), (Dir::Server, cc)]);
        assert!(
            text.contains("Connection Request (requested: TLS, CredSSP)"),
            "{text}"
        );
        assert!(
            text.contains("Connection Confirm (selected: TLS)"),
            "{text}"
        );
    }
}
