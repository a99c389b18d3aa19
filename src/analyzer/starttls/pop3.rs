//! POP3 (RFC 1939, 2449, 2595): the CAPA list, STLS and its answer matched
//! through the command pipeline, cleartext USER/PASS and AUTH PLAIN / LOGIN.

use super::lines::{
    LineFn, LineProtocol, LineRules, base64, capability, enqueue, first_line, kept_user,
    sasl_plain_user, starts_with_ci, trim, words,
};
use super::protocol::{Cx, Step, Verdict};
use std::collections::VecDeque;

/// A partial greeting longer than this without its line end is not POP3.
const MAX_PARTIAL: usize = 1024;

/// Does this flow speak POP3? The server greets with `+OK`.
pub fn detect(client: &[u8], server: &[u8], _port: u16) -> Verdict {
    match first_line(server) {
        Some(l) if starts_with_ci(l, b"+OK") => Verdict::Yes { swap: false },
        Some(_) => Verdict::No,
        None if server.is_empty() && client.is_empty() => Verdict::Maybe,
        None if !server.is_empty()
            && server.len() < MAX_PARTIAL
            && b"+OK".starts_with(server.get(..3.min(server.len())).unwrap_or_default()) =>
        {
            Verdict::Maybe
        }
        None => Verdict::No,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Capa,
    Stls,
    /// PASS, APOP or AUTH: a `+OK` ends the authorization state.
    Auth,
    /// A command whose `+OK` opens a multi-line answer (RETR, TOP, LIST and UIDL without argument).
    Multi,
    Other,
}

/// What the next client line is, when it is not a command.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Sasl {
    #[default]
    None,
    /// The next response is AUTH PLAIN's credentials.
    Plain,
    /// The next response is AUTH LOGIN's base64 user name.
    LoginUser,
    /// Further responses (passwords, other mechanisms) until the server's verdict.
    Skip,
}

#[derive(Debug, Default)]
pub struct State {
    greeted: bool,
    pending: VecDeque<Cmd>,
    /// Inside a multi-line answer; `capa` when it is the CAPA list.
    multi: Option<bool>,
    user: Option<Vec<u8>>,
    sasl: Sasl,
}

/// The POP3 state machine.
pub type Pop3 = LineProtocol<State>;

impl LineRules for State {
    const APP: Option<&'static str> = Some("pop3");
    const CLIENT: LineFn<Self> = client_line;
    const SERVER: LineFn<Self> = server_line;
}

fn client_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    match st.sasl {
        Sasl::None => {}
        Sasl::Plain => {
            st.sasl = Sasl::Skip;
            if trim(l) != b"*" {
                let user = base64(l).and_then(|d| sasl_plain_user(&d));
                cx.cleartext_auth("POP3 AUTH PLAIN", user.as_deref());
            }
            return Step::Continue;
        }
        Sasl::LoginUser => {
            st.sasl = Sasl::Skip;
            if trim(l) != b"*" {
                cx.cleartext_auth("POP3 AUTH LOGIN", base64(l).as_deref());
            }
            return Step::Continue;
        }
        Sasl::Skip => return Step::Continue,
    }
    let mut w = words(l);
    let verb = w.next().unwrap_or_default().to_ascii_uppercase();
    let arg = w.next();
    let cmd = match verb.as_slice() {
        b"CAPA" => Cmd::Capa,
        b"STLS" => Cmd::Stls,
        b"USER" => {
            st.user = arg.map(kept_user);
            Cmd::Other
        }
        b"PASS" => {
            cx.cleartext_auth("POP3 USER/PASS", st.user.as_deref());
            Cmd::Auth
        }
        b"APOP" => Cmd::Auth,
        b"AUTH" => match arg.map(<[u8]>::to_ascii_uppercase).as_deref() {
            // Bare AUTH lists the mechanisms (RFC 1734 clients).
            None => Cmd::Multi,
            Some(b"PLAIN") => {
                match w.next() {
                    Some(ir) if ir != b"=" => {
                        let user = base64(ir).and_then(|d| sasl_plain_user(&d));
                        cx.cleartext_auth("POP3 AUTH PLAIN", user.as_deref());
                        st.sasl = Sasl::Skip;
                    }
                    _ => st.sasl = Sasl::Plain,
                }
                Cmd::Auth
            }
            Some(b"LOGIN") => {
                match w.next() {
                    Some(ir) => {
                        cx.cleartext_auth("POP3 AUTH LOGIN", base64(ir).as_deref());
                        st.sasl = Sasl::Skip;
                    }
                    None => st.sasl = Sasl::LoginUser,
                }
                Cmd::Auth
            }
            Some(_) => {
                st.sasl = Sasl::Skip;
                Cmd::Auth
            }
        },
        b"RETR" | b"TOP" => Cmd::Multi,
        b"LIST" | b"UIDL" if arg.is_none() => Cmd::Multi,
        _ => Cmd::Other,
    };
    enqueue(&mut st.pending, cmd, Cmd::Stls, l, cx)
}

fn server_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    if let Some(capa) = st.multi {
        if l == b"." {
            st.multi = None;
        } else if capa {
            let keyword = words(l).next().unwrap_or_default();
            capability(keyword, &[b"STLS"], l, cx);
        }
        return Step::Continue;
    }
    let ok = starts_with_ci(l, b"+OK");
    if !ok && !starts_with_ci(l, b"-ERR") {
        // A SASL challenge (`+ …`) or noise: not a verdict.
        return Step::Continue;
    }
    if !st.greeted {
        st.greeted = true;
        return Step::Continue;
    }
    match st.pending.pop_front() {
        Some(Cmd::Stls) => {
            cx.reply(trim(l));
            if ok {
                Step::Accepted { at: 0 }
            } else {
                Step::Refused { at: 0 }
            }
        }
        Some(Cmd::Auth) => {
            st.sasl = Sasl::None;
            if ok {
                // Transaction state: STLS is only allowed before (RFC 2595 4).
                Step::Stop
            } else {
                Step::Continue
            }
        }
        Some(Cmd::Capa) if ok => {
            st.multi = Some(true);
            Step::Continue
        }
        Some(Cmd::Multi) if ok => {
            st.multi = Some(false);
            Step::Continue
        }
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
            (Dir::Server, b"+OK Dovecot ready.\r\n".to_vec()),
            (Dir::Client, b"CAPA\r\n".to_vec()),
            (
                Dir::Server,
                b"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nSTLS\r\nSASL PLAIN\r\n.\r\n".to_vec(),
            ),
            (Dir::Client, b"STLS\r\n".to_vec()),
            (Dir::Server, b"+OK Begin TLS negotiation now.\r\n".to_vec()),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_by_content_not_port() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(b"", b"+OK Dovecot ready.\r\n", 10110), yes);
        assert_eq!(detect(b"", b"+O", 110), Verdict::Maybe);
        assert_eq!(detect(b"", b"* OK IMAP\r\n", 110), Verdict::No);
        assert_eq!(detect(b"", b"220 ftp\r\n", 110), Verdict::No);
    }

    #[test]
    fn accepted_upgrade_offsets() {
        assert_accepted(
            Proto::Pop3,
            &accepted(),
            "STLS",
            "+OK Begin TLS negotiation now.",
            "pop3",
        );
    }

    #[test]
    fn pipelined_refusal_matches_stls() {
        let t = vec![
            (Dir::Server, b"+OK ready\r\n".to_vec()),
            (Dir::Client, b"NOOP\r\nSTLS\r\n".to_vec()),
            (
                Dir::Server,
                b"+OK\r\n-ERR TLS support isn't enabled.\r\n".to_vec(),
            ),
            (Dir::Client, b"QUIT\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Pop3, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(st.reply.as_deref(), Some("-ERR TLS support isn't enabled."));
        assert!(!st.accepted);
    }

    #[test]
    fn offered_not_used_and_stripped() {
        let mut t = accepted();
        t.truncate(3);
        t.push((Dir::Client, b"QUIT\r\n".to_vec()));
        let rec = run_split_invariant(Proto::Pop3, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);

        t[2] = (Dir::Server, b"+OK\r\nUIDL\r\nXXXX\r\n.\r\n".to_vec());
        let rec = run_split_invariant(Proto::Pop3, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(!st.offered);
        assert_eq!(st.stripped.as_deref(), Some("XXXX"));
    }

    #[test]
    fn cleartext_auth_never_keeps_the_password() {
        let t = vec![
            (Dir::Server, b"+OK ready\r\n".to_vec()),
            (Dir::Client, b"USER alice\r\n".to_vec()),
            (Dir::Server, b"+OK\r\n".to_vec()),
            (Dir::Client, b"PASS S3cretPassw0rd!\r\n".to_vec()),
            (Dir::Server, b"-ERR bad\r\n".to_vec()),
            (Dir::Client, b"AUTH PLAIN\r\n".to_vec()),
            (Dir::Server, b"+ \r\n".to_vec()),
            (
                Dir::Client,
                b"AGFsaWNlAFMzY3JldFBhc3N3MHJkIQ==\r\n".to_vec(),
            ),
            (Dir::Server, b"+OK logged in\r\n".to_vec()),
            (Dir::Client, b"STLS\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Pop3, &t);
        let mechs: Vec<_> = rec
            .cleartext_auth
            .iter()
            .map(|a| a.mechanism.as_str())
            .collect();
        assert_eq!(mechs, ["POP3 USER/PASS", "POP3 AUTH PLAIN"]);
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
        assert!(!json.contains("AGFsaWNl"));
        // Stopped after the login: the late STLS is not followed.
        assert_eq!(rec.encryption, Encryption::Plaintext);
        assert!(!rec.starttls.clone().unwrap_or_default().requested);
    }
}
