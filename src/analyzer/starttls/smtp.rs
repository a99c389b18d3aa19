//! SMTP, submission and LMTP (RFC 5321, 3207, 2033): EHLO capabilities, STARTTLS
//! and its reply matched through the command pipeline, cleartext AUTH, stripping.

use super::lines::{
    LineFn, LineProtocol, LineRules, MAX_PENDING, base64, capability, contains_ci, eq_ci,
    first_line, sasl_plain_user, starts_with_ci, trim,
};
use super::protocol::{Cx, Step, Verdict};
use std::collections::VecDeque;

/// Does this flow speak SMTP? `client` and `server` are the first bytes of each side.
pub fn detect(client: &[u8], server: &[u8], port: u16) -> Verdict {
    // With or without a domain (some clients and test captures send a bare `EHLO`).
    let hello = |l: &[u8]| {
        [&b"EHLO"[..], b"HELO", b"LHLO"]
            .iter()
            .any(|h| eq_ci(l, h) || starts_with_ci(l, h) && l.get(h.len()) == Some(&b' '))
    };
    if first_line(client).is_some_and(hello) {
        return Verdict::Yes { swap: false };
    }
    match first_line(server) {
        Some(l) if l.starts_with(b"220") => {
            if contains_ci(l, b"SMTP")
                || contains_ci(l, b"LMTP")
                || matches!(port, 24 | 25 | 465 | 587 | 2525)
            {
                Verdict::Yes { swap: false }
            } else if contains_ci(l, b"FTP") || client.len() >= 4 {
                Verdict::No
            } else {
                Verdict::Maybe
            }
        }
        Some(_) => Verdict::No,
        None if server.is_empty() && client.is_empty() => Verdict::Maybe,
        None if b"220".starts_with(server.get(..3.min(server.len())).unwrap_or_default())
            && client.is_empty() =>
        {
            Verdict::Maybe
        }
        None => Verdict::No,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Starttls,
    Ehlo,
    Other,
}

#[derive(Debug, Default)]
pub struct State {
    pending: VecDeque<Cmd>,
    /// Expecting the client's base64 user name after `AUTH LOGIN`.
    login_user_next: bool,
    upgraded: bool,
    /// A 250 reply to EHLO/LHLO listed the server's extensions (had a line
    /// after the greeting line: RFC 5321 §4.1.1.1).
    extensions_seen: bool,
    /// Lines of the server's reply so far, before its last.
    reply_lines: u32,
    /// STARTTLS (or X-ANONYMOUSTLS) was among them.
    offered: bool,
}

/// The SMTP state machine.
pub type Smtp = LineProtocol<State>;

impl LineRules for State {
    const APP: Option<&'static str> = None;
    const CLIENT: LineFn<Self> = client_line;
    const SERVER: LineFn<Self> = server_line;
}

fn client_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    if st.login_user_next {
        st.login_user_next = false;
        let user = base64(l);
        cx.cleartext_auth("SMTP AUTH LOGIN", user.as_deref());
        return Step::Continue;
    }
    if starts_with_ci(l, b"LHLO") {
        cx.app("lmtp");
    } else if starts_with_ci(l, b"EHLO") || starts_with_ci(l, b"HELO") {
        cx.app("smtp");
    }
    if st.pending.len() < MAX_PENDING {
        st.pending.push_back(if eq_ci(l, b"STARTTLS") {
            Cmd::Starttls
        } else if starts_with_ci(l, b"EHLO") || starts_with_ci(l, b"LHLO") {
            Cmd::Ehlo
        } else {
            Cmd::Other
        });
    }
    if eq_ci(l, b"STARTTLS") {
        cx.command(trim(l));
        return Step::Requested { at: 0 };
    }
    if starts_with_ci(l, b"AUTH ") {
        let mut words = trim(l)
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .skip(1);
        let mech = words.next().unwrap_or_default().to_ascii_uppercase();
        match mech.as_slice() {
            b"PLAIN" => {
                let user = words
                    .next()
                    .and_then(base64)
                    .and_then(|d| sasl_plain_user(&d));
                cx.cleartext_auth("SMTP AUTH PLAIN", user.as_deref());
            }
            b"LOGIN" => match words.next() {
                Some(u) => cx.cleartext_auth("SMTP AUTH LOGIN", base64(u).as_deref()),
                None => st.login_user_next = true,
            },
            b"XOAUTH2" | b"OAUTHBEARER" => cx.cleartext_auth(
                &format!("SMTP AUTH {}", String::from_utf8_lossy(&mech)),
                None,
            ),
            _ => {}
        }
        return Step::Continue;
    }
    // The mail transaction's content follows: nothing more to learn in plaintext.
    if eq_ci(l, b"DATA") || starts_with_ci(l, b"BDAT ") {
        return Step::Stop;
    }
    Step::Continue
}

fn server_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    let code = l.get(..3).filter(|c| c.iter().all(u8::is_ascii_digit));
    let Some(code) = code else {
        return Step::Continue;
    };
    let last = l.get(3).is_none_or(|&b| b == b' ');
    let text = trim(l.get(4..).unwrap_or_default());
    if code == b"250" {
        let keyword = text.split(|&b| b == b' ').next().unwrap_or_default();
        if capability(keyword, &[b"STARTTLS", b"X-ANONYMOUSTLS"], l, cx) {
            st.offered = true;
        }
    }
    if !last {
        st.reply_lines = st.reply_lines.saturating_add(1);
        return Step::Continue;
    }
    let multiline = std::mem::take(&mut st.reply_lines) > 0;
    // Final line of a reply: it answers the oldest pending command (the greeting has none).
    match st.pending.pop_front() {
        Some(Cmd::Starttls) => {
            cx.reply(l);
            if code == b"220" {
                st.upgraded = true;
                if st.extensions_seen && !st.offered {
                    // The server can upgrade, yet its extension list said otherwise:
                    // the list was rewritten on the way.
                    cx.stripped(b"STARTTLS accepted, but absent from the EHLO reply");
                }
                Step::Accepted { at: 0 }
            } else {
                Step::Refused { at: 0 }
            }
        }
        // A one-line reply lists no extension at all: STARTTLS was not offered,
        // and nothing shows that a list was rewritten.
        Some(Cmd::Ehlo) if code == b"250" => {
            st.extensions_seen |= multiline;
            Step::Continue
        }
        _ => Step::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::tests::run_split_invariant;
    use crate::record::Dir;
    use crate::record::Encryption;

    use crate::analyzer::starttls::tests::{assert_accepted, client_hello, server_hello};

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Server, b"220 mx.example.com ESMTP\r\n".to_vec()),
            (Dir::Client, b"EHLO client\r\n".to_vec()),
            (
                Dir::Server,
                b"250-mx.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n".to_vec(),
            ),
            (Dir::Client, b"STARTTLS\r\n".to_vec()),
            (Dir::Server, b"220 2.0.0 Ready to start TLS\r\n".to_vec()),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_by_content_not_port() {
        assert_eq!(
            detect(b"", b"220 mx ESMTP Postfix\r\n", 2525),
            Verdict::Yes { swap: false }
        );
        assert_eq!(
            detect(b"EHLO x\r\n", b"", 8000),
            Verdict::Yes { swap: false }
        );
        assert_eq!(detect(b"EHLO\r\n", b"", 25), Verdict::Yes { swap: false });
        assert_eq!(detect(b"EHLOX\r\n", b"", 8000), Verdict::No);
        assert_eq!(detect(b"", b"220 ProFTPD Server\r\n", 21), Verdict::No);
        assert_eq!(detect(b"", b"220 hello\r\n", 9999), Verdict::Maybe);
        assert_eq!(detect(b"", b"SSH-2.0-x\r\n", 25), Verdict::No);
    }

    #[test]
    fn accepted_upgrade_offsets() {
        let rec = assert_accepted(
            super::super::Proto::Smtp,
            &accepted(),
            "STARTTLS",
            "220 2.0.0 Ready to start TLS",
            "smtp",
        );
        // Counted by hand: 26 + 50 + 30 bytes of server plaintext.
        assert_eq!(rec.starttls.and_then(|s| s.server_offset), Some(106));
    }

    #[test]
    fn refused_pipelined_injected_stripped() {
        let refused = vec![
            (Dir::Server, b"220 mx ESMTP\r\n".to_vec()),
            (Dir::Client, b"EHLO c\r\nSTARTTLS\r\n".to_vec()),
            (
                Dir::Server,
                b"250-mx\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n".to_vec(),
            ),
            (Dir::Client, b"MAIL FROM:<a@b>\r\n".to_vec()),
            (Dir::Server, b"250 ok\r\n".to_vec()),
        ];
        let rec = run_split_invariant(super::super::Proto::Smtp, &refused);
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            rec.starttls
                .as_ref()
                .and_then(|s| s.reply.clone())
                .as_deref(),
            Some("454 4.7.0 TLS not available")
        );

        let mut injected = accepted();
        injected[3] = (Dir::Client, b"STARTTLS\r\nNOOP\r\n".to_vec());
        let rec = run_split_invariant(super::super::Proto::Smtp, &injected);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(st.injection.as_deref(), Some("NOOP\\x0d\\x0a"));
        assert_eq!(st.client_offset, Some(13 + 10 + 6));
        assert_eq!(rec.encryption, Encryption::Starttls);

        let mut resp = accepted();
        resp[4] = (Dir::Server, b"220 go ahead\r\n250 injected\r\n".to_vec());
        let rec = run_split_invariant(super::super::Proto::Smtp, &resp);
        assert_eq!(
            rec.starttls.and_then(|s| s.response_injection).as_deref(),
            Some("250 injected\\x0d\\x0a")
        );

        let mut stripped = accepted();
        stripped[2] = (Dir::Server, b"250-mx\r\n250 XXXXXXXA\r\n".to_vec());
        stripped.truncate(3);
        stripped.push((Dir::Client, b"MAIL FROM:<a@b>\r\n".to_vec()));
        let rec = run_split_invariant(super::super::Proto::Smtp, &stripped);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(st.stripped.as_deref(), Some("250 XXXXXXXA"));
        assert!(!st.offered);
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }

    #[test]
    fn capability_hidden_but_upgrade_accepted_is_stripping() {
        let mut t = accepted();
        t[2] = (
            Dir::Server,
            b"250-mx.example.com\r\n250 PIPELINING\r\n".to_vec(),
        );
        let rec = run_split_invariant(super::super::Proto::Smtp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(!st.offered && st.accepted);
        assert_eq!(
            st.stripped.as_deref(),
            Some("STARTTLS accepted, but absent from the EHLO reply")
        );
        // Offered normally: no stripping.
        let rec = run_split_invariant(super::super::Proto::Smtp, &accepted());
        assert_eq!(rec.starttls.and_then(|s| s.stripped), None);
    }

    #[test]
    fn an_ehlo_reply_without_extensions_is_no_stripping() {
        let mut t = accepted();
        t[2] = (Dir::Server, b"250 mx.example.com\r\n".to_vec());
        let rec = run_split_invariant(super::super::Proto::Smtp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(!st.offered && st.accepted);
        assert_eq!(st.stripped, None);
    }

    #[test]
    fn cleartext_auth_never_keeps_the_password() {
        let t = vec![
            (Dir::Server, b"220 mx ESMTP\r\n".to_vec()),
            (Dir::Client, b"EHLO c\r\n".to_vec()),
            (Dir::Server, b"250-mx\r\n250 AUTH PLAIN LOGIN\r\n".to_vec()),
            (
                Dir::Client,
                b"AUTH PLAIN AGFsaWNlAFMzY3JldFBhc3N3MHJkIQ==\r\n".to_vec(),
            ),
            (Dir::Server, b"235 ok\r\n".to_vec()),
        ];
        let rec = run_split_invariant(super::super::Proto::Smtp, &t);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].mechanism, "SMTP AUTH PLAIN");
        assert_eq!(rec.cleartext_auth[0].user, None);
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
        assert!(!json.contains("AGFsaWNl"));
    }
}
