//! MSSQL TDS 7.x (MS-TDS 2.2.6.5 PRELOGIN, 3.3.5.1 TLS negotiation): each side's
//! PRELOGIN option table carries an ENCRYPTION value (OFF, ON, NOT_SUP, REQ).
//! When both support it, the TLS handshake travels *inside* TDS PRELOGIN
//! packets (8-byte TDS header, type 0x12): this machine unwraps them and feeds
//! the payload to the driver's TLS analyzer itself, then raw TLS records follow
//! (the Login7 onward). OFF on both sides encrypts the Login7 only
//! (`login-only`). TDS 8.0 (strict) is direct TLS, handled by the core.
//!
//! The driver never sees a handoff here: the TLS bytes stay inside this
//! protocol's framing, so this machine marks the upgrade requested and accepted
//! on the record and sets the offsets (of the first TLS byte, inside the first
//! wrapped packet) itself; `Driver::finish` then judges the TLS it was fed.

use super::frame::{Framer, Next, Parse, be, with_at};
use super::protocol::{Cx, Protocol, Step, Verdict};
use crate::record::{Dir, Encryption, PerDir};

/// TDS packet header length.
pub const HEADER: usize = 8;
/// Packet types (MS-TDS 2.2.3.1.1).
pub const PRELOGIN: u8 = 0x12;
pub const RESPONSE: u8 = 0x04;
pub const LOGIN7: u8 = 0x10;
const TYPES: [u8; 11] = [
    0x01, 0x02, 0x03, 0x04, 0x06, 0x07, 0x0e, 0x0f, 0x10, 0x11, 0x12,
];
/// Status bit: last packet of the message.
const EOM: u8 = 0x01;
/// Highest status value defined (EOM, ignore, reset connection, reset skip tran).
const MAX_STATUS: u8 = 0x1f;
/// Longest TDS packet (the length field is 16 bits).
const MAX_PACKET: usize = u16::MAX as usize;
/// Longest PRELOGIN message (option table) reassembled from its packets.
const MAX_PRELOGIN: usize = 4 * 1024;
/// PRELOGIN option tokens.
const OPT_ENCRYPTION: u8 = 0x01;
const OPT_TERMINATOR: u8 = 0xff;
/// Option table entries looked at before giving up.
const MAX_OPTIONS: usize = 32;
/// ENCRYPTION option values (the 0x80 client-certificate bit masked off).
pub const ENCRYPT_OFF: u8 = 0;
pub const ENCRYPT_ON: u8 = 1;
pub const ENCRYPT_NOT_SUP: u8 = 2;
pub const ENCRYPT_REQ: u8 = 3;
/// Fixed part of a Login7 before its offset/length table.
const LOGIN7_FIXED: usize = 36;
/// Longest user name read from a Login7, in UTF-16 units.
const MAX_USER: usize = 128;

/// A TDS packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub status: u8,
}

/// TDS packet framing: `Done(header, packet length)`.
pub fn packet(b: &[u8]) -> Parse<Header> {
    let (Some(&kind), status) = (b.first(), b.get(1)) else {
        return Parse::NeedMore;
    };
    if !TYPES.contains(&kind) || status.is_some_and(|&s| s > MAX_STATUS) {
        return Parse::Invalid;
    }
    match (status, be(b, 2, 2)) {
        (Some(&status), Some(len)) if len as usize >= HEADER => {
            Parse::Done(Header { kind, status }, len as usize)
        }
        (_, None) => Parse::NeedMore,
        _ => Parse::Invalid,
    }
}

/// The ENCRYPTION value of a PRELOGIN option table; `None` when the table is
/// malformed or has no ENCRYPTION option.
pub fn prelogin_encryption(payload: &[u8]) -> Option<u8> {
    let mut enc = None;
    for i in 0..MAX_OPTIONS {
        let at = i * 5;
        let &token = payload.get(at)?;
        if token == OPT_TERMINATOR {
            return enc;
        }
        let (off, len) = (
            be(payload, at + 1, 2)? as usize,
            be(payload, at + 3, 2)? as usize,
        );
        let value = payload.get(off..off + len)?;
        if token == OPT_ENCRYPTION {
            enc = Some(value.first()? & 0x7f);
        }
    }
    None
}

pub fn encryption_name(v: u8) -> &'static str {
    match v {
        ENCRYPT_OFF => "ENCRYPT_OFF",
        ENCRYPT_ON => "ENCRYPT_ON",
        ENCRYPT_NOT_SUP => "ENCRYPT_NOT_SUP",
        ENCRYPT_REQ => "ENCRYPT_REQ",
        _ => "unknown",
    }
}

/// Does this flow speak TDS? The client opens with a PRELOGIN packet whose
/// option table is well formed.
pub fn detect(client: &[u8], _server: &[u8], _port: u16) -> Verdict {
    match packet(client) {
        Parse::Done(h, len) if h.kind == PRELOGIN => match client.get(HEADER..len) {
            Some(p) if prelogin_encryption(p).is_some() => Verdict::Yes { swap: false },
            Some(_) => Verdict::No,
            None => Verdict::Maybe,
        },
        Parse::NeedMore if client.first() == Some(&PRELOGIN) => Verdict::Maybe,
        _ => Verdict::No,
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Exchanging PRELOGIN option tables.
    #[default]
    Prelogin,
    /// TLS negotiated: its handshake is wrapped in PRELOGIN packets.
    Tls,
    /// No TLS: plaintext TDS (the Login7 is looked at).
    Plain,
}

/// The TDS state machine.
#[derive(Debug, Default)]
pub struct Tds {
    framer: PerDir<Framer>,
    phase: Phase,
    /// PRELOGIN message payload being reassembled, per direction.
    msg: PerDir<Vec<u8>>,
    client_enc: Option<u8>,
    /// OFF on both sides: TLS for the Login7 only.
    login_only: bool,
    /// Raw TLS records replaced the TDS framing in this direction.
    raw: PerDir<bool>,
    /// Stream offset of the first byte of each direction's current slice.
    seen: PerDir<u64>,
}

impl Protocol for Tds {
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        cx.app("tds");
        let step = self.packets(dir, data, cx);
        let used = match step {
            Step::Requested { at }
            | Step::Accepted { at }
            | Step::Refused { at }
            | Step::Upgrade { at }
            | Step::Tunnel { at } => at,
            Step::Continue | Step::Stop => data.len(),
        };
        *self.seen.get_mut(dir) += used as u64;
        step
    }

    fn encryption(&self) -> Option<Encryption> {
        self.login_only.then_some(Encryption::LoginOnly)
    }
}

impl Tds {
    fn packets(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        let mut pos = 0;
        while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
            if *self.raw.get(dir) {
                cx.tls.on_data(dir, rest, cx.rec);
                return if cx.tls.is_done() {
                    Step::Stop
                } else {
                    Step::Continue
                };
            }
            match self.framer.get_mut(dir).next(rest, MAX_PACKET, packet) {
                Next::More => return Step::Continue,
                Next::Invalid { held } => {
                    let mut head = held.clone();
                    head.extend_from_slice(rest.get(..2.min(rest.len())).unwrap_or_default());
                    if self.phase != Phase::Tls || !raw_tls(&head) {
                        return Step::Stop;
                    }
                    // The TLS handshake is over: raw records from here on.
                    *self.raw.get_mut(dir) = true;
                    let offset = *self.seen.get(dir) + pos as u64 - held.len() as u64;
                    self.tls_begins(dir, offset, cx);
                    cx.tls.on_data(dir, &held, cx.rec);
                }
                Next::Msg {
                    hdr, bytes, used, ..
                } => {
                    pos += used;
                    let payload = bytes.get(HEADER..).unwrap_or_default();
                    let step = match self.phase {
                        Phase::Prelogin => self.prelogin(dir, hdr, payload, cx),
                        Phase::Tls if hdr.kind == PRELOGIN => {
                            let end = *self.seen.get(dir) + pos as u64;
                            self.tls_begins(dir, end - payload.len() as u64, cx);
                            cx.tls.on_data(dir, payload, cx.rec);
                            Step::Continue
                        }
                        // Plaintext TDS after the handshake: the login-only case, or a server error.
                        Phase::Tls => Step::Stop,
                        Phase::Plain => self.plain(dir, hdr, payload, cx),
                    };
                    if step != Step::Continue {
                        return with_at(step, pos);
                    }
                }
            }
        }
        Step::Continue
    }

    /// Records where TLS starts in this direction, once.
    fn tls_begins(&mut self, dir: Dir, offset: u64, cx: &mut Cx<'_>) {
        let st = cx.rec.starttls_mut();
        let slot = match dir {
            Dir::Client => &mut st.client_offset,
            Dir::Server => &mut st.server_offset,
        };
        slot.get_or_insert(offset);
    }

    fn prelogin(&mut self, dir: Dir, hdr: Header, payload: &[u8], cx: &mut Cx<'_>) -> Step {
        let want = match dir {
            Dir::Client => PRELOGIN,
            Dir::Server => RESPONSE,
        };
        if hdr.kind != want || (dir == Dir::Server && self.client_enc.is_none()) {
            return Step::Stop;
        }
        let msg = self.msg.get_mut(dir);
        let room = MAX_PRELOGIN.saturating_sub(msg.len());
        msg.extend_from_slice(payload.get(..room.min(payload.len())).unwrap_or_default());
        if hdr.status & EOM == 0 {
            return Step::Continue;
        }
        let msg = std::mem::take(msg);
        let Some(enc) = prelogin_encryption(&msg) else {
            return Step::Stop;
        };
        let text = format!("PRELOGIN ENCRYPTION={}", encryption_name(enc));
        if dir == Dir::Client {
            cx.command(text.as_bytes());
            self.client_enc = Some(enc);
            return Step::Continue;
        }
        cx.reply(text.as_bytes());
        let client = self.client_enc.unwrap_or(ENCRYPT_NOT_SUP);
        if enc != ENCRYPT_NOT_SUP {
            cx.offered();
        }
        let wants = matches!(client, ENCRYPT_ON | ENCRYPT_REQ);
        if client != ENCRYPT_NOT_SUP && enc != ENCRYPT_NOT_SUP {
            self.phase = Phase::Tls;
            self.login_only = client == ENCRYPT_OFF && enc == ENCRYPT_OFF;
            let st = cx.rec.starttls_mut();
            st.requested = true;
            st.accepted = true;
            Step::Continue
        } else if wants {
            self.phase = Phase::Plain;
            Step::Refused { at: 0 }
        } else {
            self.phase = Phase::Plain;
            Step::Continue
        }
    }

    fn plain(&mut self, dir: Dir, hdr: Header, payload: &[u8], cx: &mut Cx<'_>) -> Step {
        if dir != Dir::Client || hdr.kind != LOGIN7 {
            return Step::Continue;
        }
        if let Some(user) = login7_user_if_password(payload) {
            cx.cleartext_auth("TDS Login7 password (obfuscated only)", Some(&user));
        }
        // The session follows in the clear: nothing more to learn.
        Step::Stop
    }
}

/// A raw TLS record header (ChangeCipherSpec, alert, handshake, application
/// data; version 3.x) where a TDS packet header was expected. Its first byte is
/// no TDS packet type, so one byte tells; the second confirms when present.
fn raw_tls(head: &[u8]) -> bool {
    head.first().is_some_and(|b| (0x14..=0x17).contains(b)) && head.get(1).is_none_or(|&v| v == 3)
}

/// The user name of a Login7 that carries a password (SQL authentication).
pub fn login7_user_if_password(p: &[u8]) -> Option<Vec<u8>> {
    let field = |i: usize| {
        let at = LOGIN7_FIXED + i * 4;
        let off = le16(p, at)?;
        let cch = le16(p, at + 2)?;
        Some((off, cch))
    };
    let (user_off, user_cch) = field(1)?;
    let (_, pass_cch) = field(2)?;
    if pass_cch == 0 {
        return None;
    }
    let units = p.get(user_off..user_off + 2 * user_cch.min(MAX_USER))?;
    let utf16 = units.chunks_exact(2).map(|c| {
        u16::from_le_bytes([
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        ])
    });
    let user: String = char::decode_utf16(utf16)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    Some(user.into_bytes())
}

fn le16(p: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_le_bytes([
        *p.get(at)?,
        *p.get(at + 1)?,
    ])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::with_users;
    use crate::analyzer::starttls::tests::{client_hello, run, run_split_invariant, server_hello};
    use crate::record::Code;

    fn tds(kind: u8, status: u8, payload: &[u8]) -> Vec<u8> {
        let len = HEADER + payload.len();
        let mut v = vec![kind, status, (len >> 8) as u8, len as u8, 0, 0, 1, 0];
        v.extend(payload);
        v
    }

    /// A PRELOGIN option table: VERSION, ENCRYPTION, terminator.
    fn options(enc: u8) -> Vec<u8> {
        let mut v = vec![
            0x00,
            0,
            11,
            0,
            6,
            OPT_ENCRYPTION,
            0,
            17,
            0,
            1,
            OPT_TERMINATOR,
        ];
        v.extend([0x0f, 0, 0x07, 0xd0, 0, 0]);
        v.push(enc);
        v
    }

    /// The TLS handshake records wrapped in PRELOGIN packets, then raw records.
    fn negotiated(client: u8, server: u8) -> Vec<(Dir, Vec<u8>)> {
        // Change cipher spec then an encrypted record, both ways, to complete the handshake.
        let ccs = [0x14, 3, 3, 0, 1, 1, 0x16, 3, 3, 0, 4, 1, 2, 3, 4];
        vec![
            (Dir::Client, tds(PRELOGIN, EOM, &options(client))),
            (Dir::Server, tds(RESPONSE, EOM, &options(server))),
            (Dir::Client, tds(PRELOGIN, EOM, &client_hello())),
            (Dir::Server, tds(PRELOGIN, EOM, &server_hello())),
            (Dir::Client, tds(PRELOGIN, EOM, &ccs)),
            (Dir::Server, tds(PRELOGIN, EOM, &ccs)),
            // Login7 as a raw TLS application-data record.
            (Dir::Client, vec![0x17, 3, 3, 0, 3, 9, 9, 9]),
        ]
    }

    fn login7(user: &str, password: &str) -> Vec<u8> {
        let mut p = vec![0u8; LOGIN7_FIXED + 4 * 3];
        let u: Vec<u8> = user.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let w: Vec<u8> = password
            .encode_utf16()
            .flat_map(|c| (c ^ 0xa5a5).to_le_bytes())
            .collect();
        let base = p.len();
        p.splice(
            LOGIN7_FIXED + 4..LOGIN7_FIXED + 8,
            [base as u8, 0, user.len() as u8, 0],
        );
        let pw_at = base + u.len();
        p.splice(
            LOGIN7_FIXED + 8..LOGIN7_FIXED + 12,
            [pw_at as u8, 0, password.len() as u8, 0],
        );
        p.extend(u);
        p.extend(w);
        tds(LOGIN7, EOM, &p)
    }

    #[test]
    fn framing_need_more_invalid_done() {
        assert_eq!(packet(&[PRELOGIN]), Parse::NeedMore);
        assert_eq!(packet(&[PRELOGIN, 1, 0]), Parse::NeedMore);
        assert_eq!(
            packet(&[PRELOGIN, 1, 0, 0x2f]),
            Parse::Done(
                Header {
                    kind: PRELOGIN,
                    status: 1
                },
                0x2f
            )
        );
        // A raw TLS record is not a TDS packet.
        assert_eq!(packet(&[0x17, 3, 3, 0]), Parse::Invalid);
        assert_eq!(packet(&[PRELOGIN, 0x40, 0, 0x2f]), Parse::Invalid);
        assert_eq!(packet(&[PRELOGIN, 1, 0, 4]), Parse::Invalid);
        assert_eq!(
            prelogin_encryption(&options(ENCRYPT_REQ)),
            Some(ENCRYPT_REQ)
        );
        assert_eq!(prelogin_encryption(&options(0x81)), Some(ENCRYPT_ON));
        assert_eq!(prelogin_encryption(&[0x01, 0, 200, 0, 1, 0xff]), None);
        assert_eq!(prelogin_encryption(&[0x00, 0, 6, 0, 0, 0xff]), None);
        assert_eq!(
            login7_user_if_password(&login7("sa", "FakeTdsPass")[HEADER..]),
            Some(b"sa".to_vec())
        );
        assert_eq!(login7_user_if_password(&login7("sa", "")[HEADER..]), None);
    }

    #[test]
    fn detects_by_content_not_port() {
        let p = tds(PRELOGIN, EOM, &options(ENCRYPT_ON));
        assert_eq!(detect(&p, b"", 11433), Verdict::Yes { swap: false });
        assert_eq!(detect(&p[..10], b"", 1433), Verdict::Maybe);
        assert_eq!(detect(&p[..1], b"", 1433), Verdict::Maybe);
        assert_eq!(
            detect(&tds(PRELOGIN, EOM, &[0x01, 0, 99, 0, 1]), b"", 1433),
            Verdict::No
        );
        assert_eq!(detect(&tds(LOGIN7, EOM, &[0; 40]), b"", 1433), Verdict::No);
        assert_eq!(detect(b"EHLO x\r\n", b"", 1433), Verdict::No);
    }

    #[test]
    fn wrapped_handshake_then_raw_records() {
        let t = negotiated(ENCRYPT_ON, ENCRYPT_ON);
        let rec = run_split_invariant(Proto::Tds, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && st.requested && st.accepted);
        assert_eq!(
            st.command.as_deref(),
            Some("PRELOGIN ENCRYPTION=ENCRYPT_ON")
        );
        assert_eq!(st.reply.as_deref(), Some("PRELOGIN ENCRYPTION=ENCRYPT_ON"));
        // TLS starts inside the first wrapped packet, after its 8-byte header.
        assert_eq!(st.client_offset, Some(t[0].1.len() as u64 + 8));
        assert_eq!(st.server_offset, Some(t[1].1.len() as u64 + 8));
        assert_eq!(rec.encryption, Encryption::Starttls);
        let tls = rec.tls.clone().unwrap_or_default();
        assert!(tls.client_hello.is_some() && tls.server_hello.is_some());
        assert!(tls.established);
        assert_eq!(rec.app_protocol.as_deref(), Some("tds"));
        assert!(rec.notes.is_empty(), "{:?}", rec.notes);
    }

    #[test]
    fn packets_split_across_segments_and_tls_records_across_packets() {
        // One TLS record cut over two PRELOGIN packets, each packet cut over segments.
        let hello = client_hello();
        let (a, b) = hello.split_at(7);
        let mut t = negotiated(ENCRYPT_REQ, ENCRYPT_ON);
        t[2] = (Dir::Client, tds(PRELOGIN, 0, a));
        t.insert(3, (Dir::Client, tds(PRELOGIN, EOM, b)));
        let whole = run(Proto::Tds, &t, None);
        for split in 1..40 {
            let got = run(Proto::Tds, &t, Some(split));
            assert_eq!(
                serde_json::to_value(&got).ok(),
                serde_json::to_value(&whole).ok(),
                "split at {split}"
            );
        }
        // Byte by byte.
        let mut bytes: Vec<(Dir, Vec<u8>)> = Vec::new();
        for (dir, b) in &t {
            bytes.extend(b.iter().map(|&x| (*dir, vec![x])));
        }
        let one = run(Proto::Tds, &bytes, None);
        assert_eq!(one.encryption, Encryption::Starttls);
        assert_eq!(
            one.starttls.as_ref().and_then(|s| s.client_offset),
            whole.starttls.as_ref().and_then(|s| s.client_offset)
        );
        assert_eq!(whole.encryption, Encryption::Starttls);
        assert!(whole.tls.is_some_and(|t| t.established));
    }

    #[test]
    fn off_off_is_login_only() {
        let mut t = negotiated(ENCRYPT_OFF, ENCRYPT_OFF);
        // The server answers the Login7 in plaintext TDS.
        t.push((Dir::Server, tds(RESPONSE, EOM, &[0xad, 0, 0])));
        let rec = run_split_invariant(Proto::Tds, &t);
        assert_eq!(rec.encryption, Encryption::LoginOnly);
        assert!(rec.tls.as_ref().is_some_and(|t| t.server_hello.is_some()));
        let codes: Vec<_> = crate::assess::assess(&rec, &Default::default())
            .iter()
            .map(|f| f.code)
            .collect();
        assert!(codes.contains(&Code::LoginOnlyEncryption));
    }

    #[test]
    fn not_supported_is_plaintext_or_refused() {
        let t = vec![
            (Dir::Client, tds(PRELOGIN, EOM, &options(ENCRYPT_NOT_SUP))),
            (Dir::Server, tds(RESPONSE, EOM, &options(ENCRYPT_NOT_SUP))),
            (Dir::Client, login7("sa", "FakeTdsPass-9027")),
        ];
        let rec = run_split_invariant(Proto::Tds, &t);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        assert!(!rec.starttls.as_ref().is_some_and(|s| s.offered));
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].user, None);
        assert_eq!(
            with_users(Proto::Tds, &t).cleartext_auth[0].user.as_deref(),
            Some("sa")
        );

        let t = vec![
            (Dir::Client, tds(PRELOGIN, EOM, &options(ENCRYPT_ON))),
            (Dir::Server, tds(RESPONSE, EOM, &options(ENCRYPT_NOT_SUP))),
        ];
        let rec = run_split_invariant(Proto::Tds, &t);
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            rec.starttls.and_then(|s| s.reply).as_deref(),
            Some("PRELOGIN ENCRYPTION=ENCRYPT_NOT_SUP")
        );
    }
}
