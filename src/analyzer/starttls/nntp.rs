//! NNTP (RFC 3977, 4642, 4643): the CAPABILITIES list, STARTTLS and its answer
//! matched through the command pipeline, cleartext AUTHINFO USER/PASS and SASL PLAIN.

use super::lines::{
    LineFn, LineProtocol, LineRules, base64, capability, contains_ci, enqueue, first_line,
    kept_user, sasl_plain_user, starts_with_ci, trim, words,
};
use super::protocol::{Cx, Step, Verdict};
use std::collections::VecDeque;

/// A partial first line longer than this is not an NNTP greeting.
const MAX_PARTIAL: usize = 1024;
/// Ports where a `200`/`201` greeting is taken for NNTP without more evidence.
const NNTP_PORTS: [u16; 2] = [119, 433];

/// Commands an NNTP client opens with.
fn client_command(l: &[u8]) -> bool {
    [
        &b"CAPABILITIES"[..],
        b"MODE READER",
        b"STARTTLS",
        b"AUTHINFO ",
        b"LIST",
        b"GROUP ",
        b"HELP",
    ]
    .iter()
    .any(|c| starts_with_ci(l, c))
}

/// Does this flow speak NNTP? The server greets with `200` or `201`.
pub fn detect(client: &[u8], server: &[u8], port: u16) -> Verdict {
    match first_line(server) {
        Some(l) if l.starts_with(b"200") || l.starts_with(b"201") => {
            if [&b"NNTP"[..], b"news", b"INN", b"Leafnode", b"posting"]
                .iter()
                .any(|w| contains_ci(l, w))
                || NNTP_PORTS.contains(&port)
            {
                return Verdict::Yes { swap: false };
            }
            match first_line(client) {
                Some(c) if client_command(c) => Verdict::Yes { swap: false },
                Some(_) => Verdict::No,
                None if client.len() < MAX_PARTIAL => Verdict::Maybe,
                None => Verdict::No,
            }
        }
        Some(_) => Verdict::No,
        None if server.len() >= MAX_PARTIAL || !client.is_empty() => Verdict::No,
        None if b"20".starts_with(server.get(..2.min(server.len())).unwrap_or_default()) => {
            Verdict::Maybe
        }
        None => Verdict::No,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Capabilities,
    Starttls,
    Auth,
    /// A command whose success opens a multi-line answer (LIST, HELP, NEWGROUPS, …).
    Multi,
    Other,
}

#[derive(Debug, Default)]
pub struct State {
    greeted: bool,
    pending: VecDeque<Cmd>,
    /// Inside a multi-line answer; `caps` when it is the CAPABILITIES list.
    multi: Option<bool>,
    user: Option<Vec<u8>>,
    /// The next client line is AUTHINFO SASL PLAIN's credentials.
    sasl_plain: bool,
}

/// The NNTP state machine.
pub type Nntp = LineProtocol<State>;

impl LineRules for State {
    const APP: Option<&'static str> = Some("nntp");
    const CLIENT: LineFn<Self> = client_line;
    const SERVER: LineFn<Self> = server_line;
}

fn client_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    if st.sasl_plain {
        st.sasl_plain = false;
        if trim(l) != b"*" {
            let user = base64(l).and_then(|d| sasl_plain_user(&d));
            cx.cleartext_auth("NNTP AUTHINFO SASL PLAIN", user.as_deref());
        }
        return Step::Continue;
    }
    let mut w = words(l);
    let verb = w.next().unwrap_or_default().to_ascii_uppercase();
    let cmd = match verb.as_slice() {
        b"CAPABILITIES" => Cmd::Capabilities,
        b"STARTTLS" => Cmd::Starttls,
        b"AUTHINFO" => {
            let sub = w.next().unwrap_or_default().to_ascii_uppercase();
            match sub.as_slice() {
                b"USER" => {
                    st.user = w.next().map(kept_user);
                    Cmd::Auth
                }
                b"PASS" => {
                    cx.cleartext_auth("NNTP AUTHINFO USER/PASS", st.user.as_deref());
                    Cmd::Auth
                }
                b"SASL" => {
                    let mech = w.next().unwrap_or_default();
                    if mech.eq_ignore_ascii_case(b"PLAIN") {
                        match w.next() {
                            Some(ir) if ir != b"=" => {
                                let user = base64(ir).and_then(|d| sasl_plain_user(&d));
                                cx.cleartext_auth("NNTP AUTHINFO SASL PLAIN", user.as_deref());
                            }
                            _ => st.sasl_plain = true,
                        }
                    }
                    Cmd::Auth
                }
                _ => Cmd::Other,
            }
        }
        // Reading or posting began in the clear: no upgrade will follow.
        b"ARTICLE" | b"BODY" | b"HEAD" | b"POST" | b"IHAVE" | b"TAKETHIS" | b"OVER" | b"XOVER"
        | b"GROUP" | b"LISTGROUP" => return Step::Stop,
        b"LIST" | b"HELP" | b"NEWGROUPS" | b"NEWNEWS" | b"HDR" | b"XHDR" => Cmd::Multi,
        _ => Cmd::Other,
    };
    enqueue(&mut st.pending, cmd, Cmd::Starttls, l, cx)
}

fn server_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    if let Some(caps) = st.multi {
        if l == b"." {
            st.multi = None;
        } else if caps {
            let keyword = words(l).next().unwrap_or_default();
            capability(keyword, &[b"STARTTLS"], l, cx);
        }
        return Step::Continue;
    }
    let Some(code) = l.get(..3).filter(|c| c.iter().all(u8::is_ascii_digit)) else {
        return Step::Continue;
    };
    if !st.greeted {
        st.greeted = true;
        return Step::Continue;
    }
    let success = matches!(code.first(), Some(b'1' | b'2'));
    match st.pending.pop_front() {
        Some(Cmd::Starttls) => {
            cx.reply(trim(l));
            if code == b"382" {
                Step::Accepted { at: 0 }
            } else {
                Step::Refused { at: 0 }
            }
        }
        Some(Cmd::Capabilities) if code == b"101" => {
            st.multi = Some(true);
            Step::Continue
        }
        Some(Cmd::Multi) if success => {
            st.multi = Some(false);
            Step::Continue
        }
        // Authenticated: STARTTLS is not allowed after (RFC 4642 2.2.2).
        Some(Cmd::Auth) if code == b"281" => Step::Stop,
        _ => Step::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::{
        assert_accepted, client_hello, run_split_invariant, server_hello,
    };
    use crate::record::Dir;
    use crate::record::Encryption;

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (
                Dir::Server,
                b"200 news.example.com InterNetNews NNRP server INN 2.7 ready (posting ok)\r\n"
                    .to_vec(),
            ),
            (Dir::Client, b"CAPABILITIES\r\n".to_vec()),
            (
                Dir::Server,
                b"101 Capability list:\r\nVERSION 2\r\nREADER\r\nSTARTTLS\r\nLIST ACTIVE\r\n.\r\n"
                    .to_vec(),
            ),
            (Dir::Client, b"STARTTLS\r\n".to_vec()),
            (Dir::Server, b"382 Begin TLS negotiation now\r\n".to_vec()),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_by_content_not_port() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(b"", b"200 news.example.com ready\r\n", 10119), yes);
        assert_eq!(detect(b"", b"201 hello\r\n", 119), yes);
        assert_eq!(detect(b"", b"200 hello\r\n", 9999), Verdict::Maybe);
        assert_eq!(detect(b"CAPABILITIES\r\n", b"200 hello\r\n", 9999), yes);
        assert_eq!(detect(b"EHLO x\r\n", b"200 hello\r\n", 9999), Verdict::No);
        assert_eq!(detect(b"", b"220 hello\r\n", 119), Verdict::No);
    }

    #[test]
    fn accepted_upgrade_offsets() {
        assert_accepted(
            Proto::Nntp,
            &accepted(),
            "STARTTLS",
            "382 Begin TLS negotiation now",
            "nntp",
        );
    }

    /// RFC 4642: a middlebox that blanks the STARTTLS capability (`XXXXXXXA`)
    /// leaves a capability list with no upgrade in it.
    #[test]
    fn stripped_capability() {
        let mut t = accepted();
        t.truncate(3);
        t.push((Dir::Client, b"QUIT\r\n".to_vec()));
        t[2] = (
            Dir::Server,
            b"101 Capability list:\r\nVERSION 2\r\nXXXXXXXA\r\nXXXX\r\n.\r\n".to_vec(),
        );
        let rec = run_split_invariant(Proto::Nntp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(!st.offered);
        assert_eq!(st.stripped.as_deref(), Some("XXXXXXXA"));
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }

    #[test]
    fn pipelined_refusal_580() {
        let t = vec![
            (Dir::Server, b"200 news ready\r\n".to_vec()),
            (Dir::Client, b"MODE READER\r\nSTARTTLS\r\n".to_vec()),
            (
                Dir::Server,
                b"200 Posting allowed\r\n580 Can not initiate TLS negotiation\r\n".to_vec(),
            ),
            (Dir::Client, b"QUIT\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Nntp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            st.reply.as_deref(),
            Some("580 Can not initiate TLS negotiation")
        );
    }

    #[test]
    fn offered_not_used() {
        let mut t = accepted();
        t.truncate(3);
        t.push((Dir::Client, b"LIST\r\n".to_vec()));
        t.push((
            Dir::Server,
            b"215 list follows\r\nSTARTTLS 1 1 y\r\n.\r\n".to_vec(),
        ));
        t.push((Dir::Client, b"GROUP misc\r\n".to_vec()));
        let rec = run_split_invariant(Proto::Nntp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }

    #[test]
    fn cleartext_auth_never_keeps_the_password() {
        let t = vec![
            (Dir::Server, b"200 news ready\r\n".to_vec()),
            (Dir::Client, b"AUTHINFO USER alice\r\n".to_vec()),
            (Dir::Server, b"381 Password required\r\n".to_vec()),
            (Dir::Client, b"AUTHINFO PASS S3cretPassw0rd!\r\n".to_vec()),
            (Dir::Server, b"281 Authentication accepted\r\n".to_vec()),
            (Dir::Client, b"STARTTLS\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Nntp, &t);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].mechanism, "NNTP AUTHINFO USER/PASS");
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
        assert!(!rec.starttls.clone().unwrap_or_default().requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }
}
