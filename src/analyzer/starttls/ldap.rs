//! LDAP StartTLS (RFC 4511 §4.14, §5.1 BER): the client's ExtendedRequest
//! `[APPLICATION 23]` named `1.3.6.1.4.1.1466.20037`, answered by an
//! ExtendedResponse `[APPLICATION 24]` with the same messageID: resultCode 0 and
//! TLS follows, anything else is a refusal. Simple binds with a password (and
//! SASL PLAIN) before TLS are cleartext credentials. Lengths may use the long
//! form (Active Directory always sends `30 84 …`).

use super::frame::{Framer, Next, Parse, with_at};
use super::lines::sasl_plain_user;
use super::protocol::{Cx, Protocol, Step, Verdict};
use crate::record::{Dir, PerDir};

/// The StartTLS extended operation's name.
pub const START_TLS_OID: &[u8] = b"1.3.6.1.4.1.1466.20037";
/// BER tags (RFC 4511 §4.2 and appendix B).
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const ENUMERATED: u8 = 0x0a;
const BIND_REQUEST: u8 = 0x60;
const UNBIND_REQUEST: u8 = 0x42;
const DEL_REQUEST: u8 = 0x4a;
const ABANDON_REQUEST: u8 = 0x50;
const EXTENDED_REQUEST: u8 = 0x77;
const EXTENDED_RESPONSE: u8 = 0x78;
/// `[0]` requestName in an ExtendedRequest; `[0]` simple password in a BindRequest.
const CONTEXT_0: u8 = 0x80;
/// `[3]` SaslCredentials in a BindRequest.
const SASL: u8 = 0xa3;
/// Longest length field accepted (`0x84`: four length bytes).
const MAX_LEN_BYTES: usize = 4;
/// Longest message kept whole; longer ones (search results) are cut and skipped.
const MAX_MSG: usize = 16 * 1024;

/// A BER element's header: its tag, header size and content length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u8,
    pub header: usize,
    pub len: usize,
}

/// Parses a BER header (single-byte tag, definite length in short or long
/// form): `Done(tlv, header + content length)`.
pub fn tlv(b: &[u8]) -> Parse<Tlv> {
    let (Some(&tag), Some(&l0)) = (b.first(), b.get(1)) else {
        return Parse::NeedMore;
    };
    if tag & 0x1f == 0x1f || l0 == 0x80 || l0 == 0xff {
        // Multi-byte tags and the indefinite form are not used by LDAP.
        return Parse::Invalid;
    }
    let (header, len) = if l0 < 0x80 {
        (2, usize::from(l0))
    } else {
        let n = usize::from(l0 & 0x7f);
        if n > MAX_LEN_BYTES {
            return Parse::Invalid;
        }
        let Some(bytes) = b.get(2..2 + n) else {
            return Parse::NeedMore;
        };
        let len = bytes.iter().fold(0usize, |v, &x| v << 8 | usize::from(x));
        (2 + n, len)
    };
    match header.checked_add(len) {
        Some(total) => Parse::Done(Tlv { tag, header, len }, total),
        None => Parse::Invalid,
    }
}

/// The element at the start of `b`, whole: tag, content, and the bytes it covers.
fn element(b: &[u8]) -> Option<(u8, &[u8], usize)> {
    match tlv(b) {
        Parse::Done(t, total) => Some((t.tag, b.get(t.header..total)?, total)),
        _ => None,
    }
}

/// Elements of a constructed content, in order.
fn children(mut b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, content, total) = element(b)?;
        b = b.get(total..).unwrap_or_default();
        Some((tag, content))
    })
}

fn integer(content: &[u8]) -> Option<u32> {
    if content.is_empty() || content.len() > 4 {
        return None;
    }
    Some(content.iter().fold(0u32, |v, &x| v << 8 | u32::from(x)))
}

/// An LDAPMessage: its messageID, the protocolOp's tag and content.
#[derive(Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub id: u32,
    pub op: u8,
    pub body: &'a [u8],
}

/// Parses a whole LDAPMessage.
pub fn message(b: &[u8]) -> Option<Message<'_>> {
    let (SEQUENCE, content, _) = element(b)? else {
        return None;
    };
    let mut it = children(content);
    let (INTEGER, id) = it.next()? else {
        return None;
    };
    let (op, body) = it.next()?;
    Some(Message {
        id: integer(id)?,
        op,
        body,
    })
}

/// A protocolOp tag of a request (RFC 4511 §4.2 to §4.12): bind, search,
/// modify, add, modDN, compare, extended; unbind, del and abandon are primitive.
fn request_op(tag: u8) -> bool {
    matches!(
        tag,
        BIND_REQUEST
            | 0x63
            | 0x66
            | 0x68
            | 0x6c
            | 0x6e
            | EXTENDED_REQUEST
            | UNBIND_REQUEST
            | DEL_REQUEST
            | ABANDON_REQUEST
    )
}

/// A protocolOp tag of a response (RFC 4511 §4.2 to §4.13): bind, searchResEntry,
/// searchResDone, modify, add, del, modDN, compare, searchResRef, extended,
/// intermediate. Only a server sends one.
fn response_op(tag: u8) -> bool {
    matches!(
        tag,
        0x61 | 0x64 | 0x65 | 0x67 | 0x69 | 0x6b | 0x6d | 0x6f | 0x73 | EXTENDED_RESPONSE | 0x79
    )
}

/// Does this flow speak LDAP? The client opens with an LDAPMessage: a SEQUENCE,
/// an INTEGER messageID, then a request's application tag. The same message
/// with a response's tag (a capture begun after the request) comes from the
/// server: the roles are the other way round.
pub fn detect(client: &[u8], _server: &[u8], _port: u16) -> Verdict {
    if client.first() != Some(&SEQUENCE) {
        return Verdict::No;
    }
    let outer = match tlv(client) {
        Parse::Done(t, _) => t,
        Parse::NeedMore => return Verdict::Maybe,
        Parse::Invalid => return Verdict::No,
    };
    let inner = client.get(outer.header..).unwrap_or_default();
    let id_total = match tlv(inner) {
        Parse::Done(t, total) if t.tag == INTEGER && (1..=4).contains(&t.len) => total,
        Parse::NeedMore => return Verdict::Maybe,
        _ => return Verdict::No,
    };
    match inner.get(id_total) {
        None => Verdict::Maybe,
        Some(&op) if request_op(op) => Verdict::Yes { swap: false },
        Some(&op) if response_op(op) => Verdict::Yes { swap: true },
        Some(_) => Verdict::No,
    }
}

/// RFC 4511 §4.1.9 result codes, by name.
pub fn result_name(code: u32) -> &'static str {
    match code {
        0 => "success",
        1 => "operationsError",
        2 => "protocolError",
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        7 => "authMethodNotSupported",
        8 => "strongerAuthRequired",
        10 => "referral",
        11 => "adminLimitExceeded",
        12 => "unavailableCriticalExtension",
        13 => "confidentialityRequired",
        14 => "saslBindInProgress",
        32 => "noSuchObject",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        80 => "other",
        _ => "unknown",
    }
}

/// The LDAP state machine.
#[derive(Debug, Default)]
pub struct Ldap {
    framer: PerDir<Framer>,
    /// messageID of the StartTLS request awaiting its response.
    pending: Option<u32>,
}

impl Protocol for Ldap {
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        cx.app("ldap");
        let mut pos = 0;
        while let Some(rest) = data.get(pos..).filter(|r| !r.is_empty()) {
            match self.framer.get_mut(dir).next(rest, MAX_MSG, tlv) {
                Next::More => return Step::Continue,
                // Not BER (a SASL security layer, say): nothing more to follow.
                Next::Invalid { .. } => return Step::Stop,
                Next::Msg {
                    hdr,
                    bytes,
                    cut,
                    used,
                } => {
                    pos += used;
                    if hdr.tag != SEQUENCE {
                        return Step::Stop;
                    }
                    // Long messages (search results) are never the ones looked at.
                    let msg = if cut { None } else { message(&bytes) };
                    let step = match (dir, msg) {
                        (Dir::Client, Some(m)) => self.client(&m, cx),
                        (Dir::Server, Some(m)) => self.server(&m, cx),
                        _ => Step::Continue,
                    };
                    if step != Step::Continue {
                        return with_at(step, pos);
                    }
                }
            }
        }
        Step::Continue
    }
}

impl Ldap {
    fn client(&mut self, m: &Message<'_>, cx: &mut Cx<'_>) -> Step {
        match m.op {
            EXTENDED_REQUEST => {
                let name = children(m.body).next();
                if name == Some((CONTEXT_0, START_TLS_OID)) {
                    let mut cmd = b"ExtendedRequest ".to_vec();
                    cmd.extend_from_slice(START_TLS_OID);
                    cx.command(&cmd);
                    self.pending = Some(m.id);
                    return Step::Requested { at: 0 };
                }
                Step::Continue
            }
            BIND_REQUEST => {
                let mut it = children(m.body);
                let (Some(_version), Some((OCTET_STRING, dn)), Some((kind, auth))) =
                    (it.next(), it.next(), it.next())
                else {
                    return Step::Continue;
                };
                match kind {
                    CONTEXT_0 if !auth.is_empty() => {
                        cx.cleartext_auth("LDAP simple bind", Some(dn))
                    }
                    SASL => {
                        let mut sasl = children(auth);
                        if let (Some((OCTET_STRING, b"PLAIN")), Some((OCTET_STRING, cred))) =
                            (sasl.next(), sasl.next())
                        {
                            cx.cleartext_auth("LDAP SASL PLAIN", sasl_plain_user(cred).as_deref());
                        }
                    }
                    _ => {}
                }
                Step::Continue
            }
            _ => Step::Continue,
        }
    }

    fn server(&mut self, m: &Message<'_>, cx: &mut Cx<'_>) -> Step {
        if m.op != EXTENDED_RESPONSE || self.pending != Some(m.id) {
            return Step::Continue;
        }
        self.pending = None;
        let mut it = children(m.body);
        let code = match it.next() {
            Some((ENUMERATED, c)) => integer(c),
            _ => None,
        };
        let Some(code) = code else {
            return Step::Refused { at: 0 };
        };
        let diagnostic = it.nth(1).map(|(_, d)| d).unwrap_or_default();
        let mut reply = format!("resultCode {code} ({})", result_name(code)).into_bytes();
        if !diagnostic.is_empty() {
            reply.extend_from_slice(b": ");
            reply.extend_from_slice(diagnostic);
        }
        cx.reply(&reply);
        if code == 0 {
            Step::Accepted { at: 0 }
        } else {
            Step::Refused { at: 0 }
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

    /// A BER element; `long` forces the 4-byte long form of the length.
    fn el(tag: u8, content: &[u8], long: bool) -> Vec<u8> {
        let mut v = vec![tag];
        let n = content.len();
        if long {
            v.push(0x84);
            v.extend((n as u32).to_be_bytes());
        } else if n < 0x80 {
            v.push(n as u8);
        } else {
            v.extend([0x82, (n >> 8) as u8, n as u8]);
        }
        v.extend(content);
        v
    }

    fn msg(id: u8, op: Vec<u8>, long: bool) -> Vec<u8> {
        let mut c = el(INTEGER, &[id], false);
        c.extend(op);
        el(SEQUENCE, &c, long)
    }

    #[test]
    fn a_response_is_the_servers_whatever_its_port() {
        // LDAPResult: resultCode, matchedDN, diagnosticMessage.
        let empty = el(OCTET_STRING, b"", false);
        let result = [el(ENUMERATED, &[0], false), empty.clone(), empty].concat();
        // bindResponse, searchResDone, delResponse, extendedResponse
        for op in [0x61, 0x65, 0x6b, EXTENDED_RESPONSE] {
            let m = msg(1, el(op, &result, false), false);
            assert_eq!(detect(&m, b"", 389), Verdict::Yes { swap: true }, "{op:#x}");
        }
        // bindRequest, searchRequest, delRequest (primitive)
        for op in [BIND_REQUEST, 0x63] {
            let m = msg(1, el(op, b"\x02\x01\x03", false), false);
            assert_eq!(
                detect(&m, b"", 389),
                Verdict::Yes { swap: false },
                "{op:#x}"
            );
        }
        let del = msg(2, el(DEL_REQUEST, b"cn=x", false), false);
        assert_eq!(detect(&del, b"", 389), Verdict::Yes { swap: false });
    }

    fn start_tls(id: u8, long: bool) -> Vec<u8> {
        msg(
            id,
            el(EXTENDED_REQUEST, &el(CONTEXT_0, START_TLS_OID, long), long),
            long,
        )
    }

    fn ext_response(id: u8, code: u8, diag: &str, long: bool) -> Vec<u8> {
        let mut c = el(ENUMERATED, &[code], long);
        c.extend(el(OCTET_STRING, b"", long));
        c.extend(el(OCTET_STRING, diag.as_bytes(), long));
        if code == 0 {
            c.extend(el(0x8a, START_TLS_OID, long));
        }
        msg(id, el(EXTENDED_RESPONSE, &c, long), long)
    }

    fn simple_bind(id: u8, dn: &str, pw: &str) -> Vec<u8> {
        let mut c = el(INTEGER, &[3], false);
        c.extend(el(OCTET_STRING, dn.as_bytes(), false));
        c.extend(el(CONTEXT_0, pw.as_bytes(), false));
        msg(id, el(BIND_REQUEST, &c, false), false)
    }

    fn transcript(long: bool, code: u8) -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Client, start_tls(1, long)),
            (Dir::Server, ext_response(1, code, "", long)),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn ber_need_more_invalid_done() {
        assert_eq!(tlv(&[0x30]), Parse::NeedMore);
        assert_eq!(tlv(&[0x30, 0x84, 0, 0]), Parse::NeedMore);
        assert_eq!(
            tlv(&[0x30, 0x84, 0, 0, 1, 0]),
            Parse::Done(
                Tlv {
                    tag: 0x30,
                    header: 6,
                    len: 256
                },
                262
            )
        );
        assert_eq!(
            tlv(&[0x30, 0x0c]),
            Parse::Done(
                Tlv {
                    tag: 0x30,
                    header: 2,
                    len: 12
                },
                14
            )
        );
        assert_eq!(tlv(&[0x30, 0x80]), Parse::Invalid);
        assert_eq!(tlv(&[0x30, 0x85, 0, 0, 0, 0, 1]), Parse::Invalid);
        assert_eq!(tlv(&[0x1f, 0x01]), Parse::Invalid);
        let m = start_tls(7, true);
        assert_eq!(
            message(&m),
            Some(Message {
                id: 7,
                op: EXTENDED_REQUEST,
                body: &el(CONTEXT_0, START_TLS_OID, true)
            })
        );
        assert_eq!(message(&m[..m.len() - 1]), None);
        assert_eq!(result_name(52), "unavailable");
    }

    #[test]
    fn detects_by_content_not_port() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(&start_tls(1, false), b"", 10389), yes);
        assert_eq!(detect(&start_tls(1, true), b"", 3268), yes);
        assert_eq!(detect(&start_tls(1, true)[..6], b"", 389), Verdict::Maybe);
        assert_eq!(detect(&start_tls(1, false)[..4], b"", 389), Verdict::Maybe);
        // A SEQUENCE that is no LDAPMessage (ASN.1 of something else).
        assert_eq!(
            detect(&[0x30, 0x05, 0x04, 0x01, 0x00, 0x02, 0], b"", 389),
            Verdict::No
        );
        assert_eq!(
            detect(&[0x30, 0x05, 0x02, 0x01, 0x01, 0x30, 0], b"", 389),
            Verdict::No
        );
        assert_eq!(detect(b"EHLO x\r\n", b"", 389), Verdict::No);
    }

    #[test]
    fn accepted_with_short_and_long_form_lengths() {
        for long in [false, true] {
            let t = transcript(long, 0);
            let rec = run_split_invariant(Proto::Ldap, &t);
            let st = rec.starttls.clone().unwrap_or_default();
            assert!(st.requested && st.accepted, "long={long}");
            assert_eq!(
                st.command.as_deref(),
                Some("ExtendedRequest 1.3.6.1.4.1.1466.20037")
            );
            assert_eq!(st.reply.as_deref(), Some("resultCode 0 (success)"));
            assert_eq!(st.client_offset, Some(t[0].1.len() as u64));
            assert_eq!(st.server_offset, Some(t[1].1.len() as u64));
            assert_eq!(rec.encryption, Encryption::Starttls);
            assert_eq!(rec.app_protocol.as_deref(), Some("ldap"));
        }
    }

    #[test]
    fn refused_names_the_code_and_continues_in_plaintext() {
        let t = vec![
            (Dir::Client, start_tls(1, true)),
            (
                Dir::Server,
                ext_response(1, 2, "unsupported extended operation", true),
            ),
            (
                Dir::Client,
                simple_bind(2, "cn=admin,dc=example,dc=test", "FakeLdapBind-6604"),
            ),
            (
                Dir::Server,
                msg(2, el(0x61, &el(ENUMERATED, &[0], false), false), false),
            ),
        ];
        let rec = run_split_invariant(Proto::Ldap, &t);
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            rec.starttls.as_ref().and_then(|s| s.reply.as_deref()),
            Some("resultCode 2 (protocolError): unsupported extended operation")
        );
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].mechanism, "LDAP simple bind");
        assert_eq!(rec.cleartext_auth[0].user, None);
        assert!(
            !serde_json::to_string(&rec)
                .unwrap_or_default()
                .contains("FakeLdap")
        );
        let rec = with_users(Proto::Ldap, &t);
        assert_eq!(
            rec.cleartext_auth[0].user.as_deref(),
            Some("cn=admin,dc=example,dc=test")
        );
    }

    #[test]
    fn response_matched_by_message_id() {
        // A response to another operation (id 5) is not the answer to StartTLS (id 6).
        let t = vec![
            (Dir::Client, start_tls(6, false)),
            (Dir::Server, ext_response(5, 0, "", false)),
            (Dir::Server, ext_response(6, 52, "", false)),
        ];
        let rec = run_split_invariant(Proto::Ldap, &t);
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            rec.starttls.and_then(|s| s.reply).as_deref(),
            Some("resultCode 52 (unavailable)")
        );
    }

    #[test]
    fn anonymous_bind_and_big_search_results_are_fine() {
        let mut entry = el(OCTET_STRING, b"dc=example", false);
        entry.extend(el(SEQUENCE, &[0x41; 40_000], false));
        let t = vec![
            (Dir::Client, simple_bind(1, "", "")),
            (
                Dir::Server,
                msg(1, el(0x61, &el(ENUMERATED, &[0], false), false), false),
            ),
            (Dir::Client, start_tls(2, false)),
            (Dir::Server, msg(9, el(0x64, &entry, true), true)),
            (Dir::Server, ext_response(2, 0, "", false)),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ];
        let rec = crate::analyzer::starttls::tests::run(Proto::Ldap, &t, Some(3));
        assert!(rec.cleartext_auth.is_empty());
        assert_eq!(rec.encryption, Encryption::Starttls);
        let st = rec.starttls.unwrap_or_default();
        assert_eq!(
            st.server_offset,
            Some((t[1].1.len() + t[3].1.len() + t[4].1.len()) as u64)
        );
    }
}
