//! IMAP (RFC 3501, 9051, 2595): capabilities (also in the greeting's response
//! code), STARTTLS and the answer carrying *its* tag, the PREAUTH greeting, and
//! cleartext LOGIN / AUTHENTICATE PLAIN and LOGIN.

use super::lines::{
    LineFn, LineProtocol, LineRules, MAX_USER, base64, capability, first_line, literal_len,
    sasl_plain_user, starts_with_ci, trim, words,
};
use super::protocol::{Cx, Step, Verdict};

/// Longest tag remembered for matching a reply; longer tags are not tracked.
const MAX_TAG: usize = 64;
/// A partial greeting longer than this without its line end is not IMAP.
const MAX_PARTIAL: usize = 1024;

/// Does this flow speak IMAP? The server greets with `* OK`, `* PREAUTH` or `* BYE`.
pub fn detect(client: &[u8], server: &[u8], _port: u16) -> Verdict {
    let greeting = |l: &[u8]| {
        starts_with_ci(l, b"* OK") || starts_with_ci(l, b"* PREAUTH") || starts_with_ci(l, b"* BYE")
    };
    match first_line(server) {
        Some(l) if greeting(l) => Verdict::Yes { swap: false },
        Some(_) => Verdict::No,
        None if server.is_empty() => {
            if client.is_empty() {
                Verdict::Maybe
            } else {
                Verdict::No
            }
        }
        None if server.len() < MAX_PARTIAL
            && (b"* ".starts_with(server.get(..2.min(server.len())).unwrap_or_default())) =>
        {
            Verdict::Maybe
        }
        None => Verdict::No,
    }
}

/// What the next client line is, when it is not a new command.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Cont {
    #[default]
    Command,
    /// The rest of a command after a literal; `user` when the literal is LOGIN's user name.
    Literal { user: Option<usize> },
    /// SASL responses to AUTHENTICATE, until the tagged answer.
    Sasl(Mech),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Mech {
    /// The first response carries the credentials (`authzid NUL user NUL password`).
    #[default]
    Plain,
    /// First the base64 user name, then the password.
    Login,
    /// Responses already accounted for, or a mechanism that sends no secret.
    Other,
}

#[derive(Debug, Default)]
pub struct State {
    greeted: bool,
    /// Tag of the outstanding STARTTLS.
    starttls_tag: Option<Vec<u8>>,
    /// Tag of the outstanding LOGIN or AUTHENTICATE: its OK ends the chance to upgrade.
    auth_tag: Option<Vec<u8>>,
    cont: Cont,
    /// Server line continues after a literal.
    server_literal: bool,
}

/// The IMAP state machine.
pub type Imap = LineProtocol<State>;

impl LineRules for State {
    const APP: Option<&'static str> = Some("imap");
    const CLIENT: LineFn<Self> = client_line;
    const SERVER: LineFn<Self> = server_line;
}

/// Splits `tag SP rest`.
fn tag_and_rest(l: &[u8]) -> (&[u8], &[u8]) {
    let l = trim(l);
    match l.iter().position(|&b| b == b' ') {
        Some(sp) => (
            l.get(..sp).unwrap_or_default(),
            trim(l.get(sp + 1..).unwrap_or_default()),
        ),
        None => (l, &[]),
    }
}

fn keep_tag(tag: &[u8]) -> Option<Vec<u8>> {
    (tag.len() <= MAX_TAG).then(|| tag.to_vec())
}

/// The first astring of `s`: a quoted string (unescaped), an atom, or `None` for a literal.
fn astring(s: &[u8]) -> Option<Vec<u8>> {
    let s = trim(s);
    match s.first() {
        Some(b'"') => {
            let mut out = Vec::new();
            let mut esc = false;
            for &b in s.get(1..).unwrap_or_default() {
                match (esc, b) {
                    (false, b'\\') => esc = true,
                    (false, b'"') => return Some(out),
                    _ => {
                        esc = false;
                        out.push(b);
                    }
                }
            }
            None
        }
        Some(b'{') | None => None,
        Some(_) => Some(s.split(|&b| b == b' ').next().unwrap_or_default().to_vec()),
    }
}

/// A client line: a new command, or the continuation of one the state says is open.
fn client_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    match st.cont {
        Cont::Command => command(st, l, cx),
        Cont::Literal { user } => after_literal(st, l, user, cx),
        Cont::Sasl(mech) => sasl_response(st, l, mech, cx),
    }
}

/// The line that a literal's bytes start: LOGIN's user name when `user` gives its
/// length; a further literal continues the command.
fn after_literal(st: &mut State, l: &[u8], user: Option<usize>, cx: &mut Cx<'_>) -> Step {
    if let Some(n) = user {
        let name = l.get(..n.min(l.len()).min(MAX_USER)).unwrap_or_default();
        cx.cleartext_auth("IMAP LOGIN", Some(name));
    }
    st.cont = match literal_len(l) {
        Some(_) => Cont::Literal { user: None },
        None => Cont::Command,
    };
    Step::Continue
}

/// A SASL response to AUTHENTICATE: the credentials of PLAIN or LOGIN's user name
/// are in the first one; `*` cancels.
fn sasl_response(st: &mut State, l: &[u8], mech: Mech, cx: &mut Cx<'_>) -> Step {
    let resp = trim(l);
    if resp == b"*" {
        st.cont = Cont::Sasl(Mech::Other);
        return Step::Continue;
    }
    match mech {
        Mech::Plain => {
            let user = base64(resp).and_then(|d| sasl_plain_user(&d));
            cx.cleartext_auth("IMAP AUTHENTICATE PLAIN", user.as_deref());
        }
        Mech::Login => {
            cx.cleartext_auth("IMAP AUTHENTICATE LOGIN", base64(resp).as_deref());
        }
        Mech::Other => {}
    }
    st.cont = Cont::Sasl(Mech::Other);
    Step::Continue
}

/// A tagged command: STARTTLS, LOGIN and AUTHENTICATE matter; any command ending
/// in a literal continues on the next line.
fn command(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    let (tag, rest) = tag_and_rest(l);
    let mut w = words(rest);
    let cmd = w.next().unwrap_or_default().to_ascii_uppercase();
    match cmd.as_slice() {
        b"STARTTLS" => {
            st.starttls_tag = keep_tag(tag);
            cx.command(trim(l));
            return Step::Requested { at: 0 };
        }
        b"LOGIN" => {
            st.auth_tag = keep_tag(tag);
            if login(st, rest.get(5..).unwrap_or_default(), cx) {
                return Step::Continue;
            }
        }
        b"AUTHENTICATE" => {
            st.auth_tag = keep_tag(tag);
            let mech = w.next().unwrap_or_default().to_ascii_uppercase();
            return authenticate(st, &mech, w.next(), cx);
        }
        _ => {}
    }
    if literal_len(l).is_some() {
        st.cont = Cont::Literal { user: None };
    }
    Step::Continue
}

/// LOGIN's arguments: the user name now when it is an atom or a quoted string;
/// when it is a literal, `true` and the state waits for it on the next line.
fn login(st: &mut State, args: &[u8], cx: &mut Cx<'_>) -> bool {
    let user_literal = trim(args).first() == Some(&b'{');
    if user_literal {
        let n = literal_len(trim(args).split(|&b| b == b' ').next().unwrap_or_default());
        st.cont = Cont::Literal {
            user: n.and_then(|n| usize::try_from(n).ok()),
        };
        return true;
    }
    cx.cleartext_auth("IMAP LOGIN", astring(args).as_deref());
    false
}

/// AUTHENTICATE with mechanism `mech` (upper case): the responses that follow are
/// SASL, the first possibly on the command line itself (SASL-IR, RFC 4959).
fn authenticate(st: &mut State, mech: &[u8], initial: Option<&[u8]>, cx: &mut Cx<'_>) -> Step {
    let mech = match mech {
        b"PLAIN" => Mech::Plain,
        b"LOGIN" => Mech::Login,
        _ => Mech::Other,
    };
    st.cont = Cont::Sasl(mech);
    match initial {
        Some(ir) => sasl_response(st, ir, mech, cx),
        None => Step::Continue,
    }
}

fn server_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    if st.server_literal {
        st.server_literal = literal_len(l).is_some();
        return Step::Continue;
    }
    st.server_literal = literal_len(l).is_some();
    capabilities(l, cx);
    let (tag, rest) = tag_and_rest(l);
    let status = words(rest).next().unwrap_or_default().to_ascii_uppercase();
    if tag == b"*" {
        let first = !st.greeted;
        st.greeted = true;
        if first && status == b"PREAUTH" {
            // Authenticated before any chance to upgrade: nothing more to follow.
            cx.rec.starttls_mut().preauth = true;
            return Step::Stop;
        }
        return Step::Continue;
    }
    if tag == b"+" {
        return Step::Continue;
    }
    let ok = status == b"OK";
    if st.starttls_tag.as_deref() == Some(tag) {
        st.starttls_tag = None;
        cx.reply(trim(l));
        return if ok {
            Step::Accepted { at: 0 }
        } else {
            Step::Refused { at: 0 }
        };
    }
    if st.auth_tag.as_deref() == Some(tag) {
        st.auth_tag = None;
        if matches!(st.cont, Cont::Sasl(_)) {
            st.cont = Cont::Command;
        }
        if ok {
            // Authenticated: STARTTLS is only allowed before (RFC 3501 6.2.1).
            return Step::Stop;
        }
    }
    Step::Continue
}

/// `* CAPABILITY …`, or a `[CAPABILITY …]` response code in any status line.
fn capabilities(l: &[u8], cx: &mut Cx<'_>) {
    let mut toks = l
        .split(|&b| b == b' ' || b == b'[' || b == b']')
        .filter(|w| !w.is_empty());
    if !toks.any(|w| w.eq_ignore_ascii_case(b"CAPABILITY")) {
        return;
    }
    for w in toks {
        capability(w, &[b"STARTTLS"], l, cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::{client_hello, run_split_invariant, server_hello};
    use crate::record::Dir;
    use crate::record::Encryption;

    const GREETING: &[u8] =
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS STARTTLS AUTH=PLAIN] ready\r\n";

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Server, b"* OK IMAP4rev1 server ready\r\n".to_vec()),
            (Dir::Client, b"a1 CAPABILITY\r\n".to_vec()),
            (
                Dir::Server,
                b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n".to_vec(),
            ),
            (Dir::Client, b"a2 NOOP\r\na3 STARTTLS\r\n".to_vec()),
            (
                Dir::Server,
                b"a2 OK NOOP done\r\na3 OK Begin TLS negotiation now\r\n".to_vec(),
            ),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_by_content_not_port() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(b"", b"* OK Dovecot ready.\r\n", 10143), yes);
        assert_eq!(detect(b"", b"* PREAUTH hi\r\n", 9), yes);
        assert_eq!(detect(b"", b"* OK [CAPAB", 143), Verdict::Maybe);
        assert_eq!(detect(b"", b"+OK POP3 ready\r\n", 143), Verdict::No);
        assert_eq!(detect(b"", b"220 mx ESMTP\r\n", 143), Verdict::No);
        assert_eq!(detect(b"NICK x\r\n", b"", 143), Verdict::No);
    }

    #[test]
    fn accepted_upgrade_matches_the_tag() {
        let t = accepted();
        let rec = run_split_invariant(Proto::Imap, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && st.requested && st.accepted);
        assert_eq!(st.command.as_deref(), Some("a3 STARTTLS"));
        assert_eq!(st.reply.as_deref(), Some("a3 OK Begin TLS negotiation now"));
        assert_eq!(st.client_offset, Some((t[1].1.len() + t[3].1.len()) as u64));
        assert_eq!(
            st.server_offset,
            Some((t[0].1.len() + t[2].1.len() + t[4].1.len()) as u64)
        );
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some("imap"));
    }

    #[test]
    fn refused_with_bad_then_cleartext_login() {
        let t = vec![
            (Dir::Server, b"* OK ready\r\n".to_vec()),
            (Dir::Client, b"a002 STARTTLS\r\n".to_vec()),
            (
                Dir::Server,
                b"a002 BAD TLS support isn't enabled.\r\n".to_vec(),
            ),
            (Dir::Client, b"a003 LOGIN alice S3cretPassw0rd\r\n".to_vec()),
            (Dir::Server, b"a003 OK Logged in\r\n".to_vec()),
            (Dir::Client, b"a004 STARTTLS\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Imap, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            st.reply.as_deref(),
            Some("a002 BAD TLS support isn't enabled.")
        );
        // The STARTTLS after login is past the Stop: still the first command.
        assert_eq!(st.command.as_deref(), Some("a002 STARTTLS"));
        assert!(!st.offered);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].mechanism, "IMAP LOGIN");
    }

    #[test]
    fn reply_with_another_tag_is_not_the_answer() {
        let t = vec![
            (Dir::Server, b"* OK ready\r\n".to_vec()),
            (Dir::Client, b"x STARTTLS\r\n".to_vec()),
            (Dir::Server, b"y OK not yours\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Imap, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.requested && !st.accepted);
        assert_eq!(st.reply, None);
        assert_eq!(rec.encryption, Encryption::Unknown);
    }

    #[test]
    fn offered_in_greeting_not_used() {
        let t = vec![
            (Dir::Server, GREETING.to_vec()),
            (Dir::Client, b"a1 NOOP\r\n".to_vec()),
            (Dir::Server, b"a1 OK\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Imap, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }

    #[test]
    fn masked_capability_is_stripped() {
        let t = vec![
            (
                Dir::Server,
                b"* OK [CAPABILITY IMAP4rev1 XXXXXXXX AUTH=PLAIN] ready\r\n".to_vec(),
            ),
            (Dir::Client, b"a1 NOOP\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Imap, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(!st.offered);
        assert_eq!(
            st.stripped.as_deref(),
            Some("* OK [CAPABILITY IMAP4rev1 XXXXXXXX AUTH=PLAIN] ready")
        );
    }

    #[test]
    fn preauth_greeting() {
        let t = vec![
            (
                Dir::Server,
                b"* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n".to_vec(),
            ),
            (Dir::Client, b"a1 SELECT INBOX\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Imap, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.preauth && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }

    #[test]
    fn cleartext_auth_never_keeps_the_password() {
        // printf '\0alice\0S3cretPassw0rd!' | base64
        let plain = b"AGFsaWNlAFMzY3JldFBhc3N3MHJkIQ==";
        let mut ir = b"a1 AUTHENTICATE PLAIN ".to_vec();
        ir.extend(plain);
        ir.extend(b"\r\n");
        let mut cont = plain.to_vec();
        cont.extend(b"\r\n");
        let t = vec![
            (Dir::Server, GREETING.to_vec()),
            (Dir::Client, b"a0 AUTHENTICATE PLAIN\r\n".to_vec()),
            (Dir::Server, b"+ \r\n".to_vec()),
            (Dir::Client, cont),
            (Dir::Server, b"a0 NO [AUTHENTICATIONFAILED] no\r\n".to_vec()),
            (Dir::Client, b"a2 LOGIN {5}\r\n".to_vec()),
            (Dir::Server, b"+ OK\r\n".to_vec()),
            (Dir::Client, b"alice \"S3cretPassw0rd!\"\r\n".to_vec()),
            (Dir::Server, b"a2 NO no\r\n".to_vec()),
            (Dir::Client, ir),
            (Dir::Server, b"a1 OK done\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Imap, &t);
        let mechs: Vec<_> = rec
            .cleartext_auth
            .iter()
            .map(|a| a.mechanism.as_str())
            .collect();
        assert_eq!(mechs, ["IMAP AUTHENTICATE PLAIN", "IMAP LOGIN"]);
        assert!(rec.cleartext_auth.iter().all(|a| a.user.is_none()));
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
        assert!(!json.contains("AGFsaWNl"));
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }

    #[test]
    fn user_names_only_when_asked() {
        use crate::analyzer::options::Options;
        use crate::analyzer::starttls::Driver;
        let mut rec = crate::record::FlowRecord::new(
            1,
            crate::time::Timestamp::default(),
            crate::record::Endpoint {
                ip: std::net::IpAddr::from([127, 0, 0, 1]),
                port: 40000,
            },
            crate::record::Endpoint {
                ip: std::net::IpAddr::from([127, 0, 0, 1]),
                port: 143,
            },
        );
        let mut d = Driver::new(Proto::Imap, Options { show_users: true });
        d.on_data(Dir::Server, b"* OK hi\r\n", &mut rec);
        d.on_data(
            Dir::Client,
            b"a LOGIN \"al ice\" pw\r\nb LOGIN {3}\r\n",
            &mut rec,
        );
        d.on_data(Dir::Client, b"bob pw\r\n", &mut rec);
        let users: Vec<_> = rec
            .cleartext_auth
            .iter()
            .map(|a| a.user.clone().unwrap_or_default())
            .collect();
        assert_eq!(users, ["al ice", "bob"]);
    }
}
