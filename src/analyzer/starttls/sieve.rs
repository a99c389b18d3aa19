//! ManageSieve (RFC 5804): the `"STARTTLS"` capability line, STARTTLS and its
//! `OK` / `NO` matched through the command pipeline, cleartext AUTHENTICATE PLAIN.

use super::lines::{
    LineFn, LineProtocol, LineRules, base64, enqueue, first_line, literal_len, sasl_plain_user,
    starts_with_ci, trim, words,
};
use super::protocol::{Cx, Step, Verdict};
use std::collections::VecDeque;

/// A partial first line longer than this is not a ManageSieve greeting.
const MAX_PARTIAL: usize = 1024;

/// Capability names a ManageSieve greeting opens with.
const GREETING_CAPS: [&[u8]; 8] = [
    b"\"IMPLEMENTATION\"",
    b"\"SIEVE\"",
    b"\"SASL\"",
    b"\"STARTTLS\"",
    b"\"VERSION\"",
    b"\"NOTIFY\"",
    b"\"MAXREDIRECTS\"",
    b"\"LANGUAGE\"",
];

/// Does this flow speak ManageSieve? The server greets with its quoted capabilities.
pub fn detect(client: &[u8], server: &[u8], _port: u16) -> Verdict {
    match first_line(server) {
        Some(l) if GREETING_CAPS.iter().any(|c| starts_with_ci(l, c)) => {
            Verdict::Yes { swap: false }
        }
        Some(_) => Verdict::No,
        None if server.len() >= MAX_PARTIAL || !client.is_empty() => Verdict::No,
        None if server.first().is_none_or(|&b| b == b'"') => Verdict::Maybe,
        None => Verdict::No,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Starttls,
    Auth,
    Other,
}

#[derive(Debug, Default)]
pub struct State {
    greeted: bool,
    pending: VecDeque<Cmd>,
    /// The next client line is AUTHENTICATE PLAIN's credentials (a string or literal).
    sasl_plain: bool,
    /// Client lines continue a command after a literal.
    client_literal: bool,
    /// Server lines continue a response after a literal.
    server_literal: bool,
}

/// The ManageSieve state machine.
pub type Sieve = LineProtocol<State>;

impl LineRules for State {
    const APP: Option<&'static str> = Some("sieve");
    const CLIENT: LineFn<Self> = client_line;
    const SERVER: LineFn<Self> = server_line;
}

/// The contents of a quoted string, or the word itself.
fn unquote(w: &[u8]) -> &[u8] {
    w.strip_prefix(b"\"")
        .and_then(|w| w.strip_suffix(b"\""))
        .unwrap_or(w)
}

fn client_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    if st.sasl_plain {
        st.sasl_plain = false;
        st.client_literal = literal_len(l).is_some();
        if !st.client_literal {
            let user = base64(unquote(trim(l))).and_then(|d| sasl_plain_user(&d));
            cx.cleartext_auth("SIEVE AUTHENTICATE PLAIN", user.as_deref());
        } else {
            // The credentials come as a literal on the next line.
            st.sasl_plain = true;
        }
        return Step::Continue;
    }
    if st.client_literal {
        st.client_literal = literal_len(l).is_some();
        return Step::Continue;
    }
    st.client_literal = literal_len(l).is_some();
    let mut w = words(l);
    let verb = w.next().unwrap_or_default().to_ascii_uppercase();
    let cmd = match verb.as_slice() {
        b"STARTTLS" => Cmd::Starttls,
        b"AUTHENTICATE" => {
            let mech = unquote(w.next().unwrap_or_default());
            if mech.eq_ignore_ascii_case(b"PLAIN") {
                match w.next() {
                    Some(ir) if literal_len(ir).is_none() => {
                        let user = base64(unquote(ir)).and_then(|d| sasl_plain_user(&d));
                        cx.cleartext_auth("SIEVE AUTHENTICATE PLAIN", user.as_deref());
                    }
                    Some(_) => {
                        st.client_literal = false;
                        st.sasl_plain = true;
                    }
                    None => st.sasl_plain = true,
                }
            }
            Cmd::Auth
        }
        _ => Cmd::Other,
    };
    enqueue(&mut st.pending, cmd, Cmd::Starttls, l, cx)
}

fn server_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    if st.server_literal {
        st.server_literal = literal_len(l).is_some();
        return Step::Continue;
    }
    st.server_literal = literal_len(l).is_some();
    let first = words(l).next().unwrap_or_default();
    if first.starts_with(b"\"") {
        // A capability line (or a SASL challenge, which never reads "STARTTLS").
        if unquote(first).eq_ignore_ascii_case(b"STARTTLS") && !st.pending.contains(&Cmd::Auth) {
            cx.offered();
        }
        return Step::Continue;
    }
    let status = first.split(|&b| b == b'(').next().unwrap_or_default();
    let ok = status.eq_ignore_ascii_case(b"OK");
    if !ok && !status.eq_ignore_ascii_case(b"NO") && !status.eq_ignore_ascii_case(b"BYE") {
        return Step::Continue;
    }
    if !st.greeted {
        st.greeted = true;
        return Step::Continue;
    }
    match st.pending.pop_front() {
        Some(Cmd::Starttls) => {
            cx.reply(trim(l));
            if ok {
                Step::Accepted { at: 0 }
            } else {
                Step::Refused { at: 0 }
            }
        }
        // Authenticated: STARTTLS is only allowed before (RFC 5804 2.2).
        Some(Cmd::Auth) if ok => Step::Stop,
        _ => Step::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::{client_hello, run_split_invariant, server_hello};
    use crate::record::Dir;
    use crate::record::Encryption;

    const GREETING: &[u8] = b"\"IMPLEMENTATION\" \"Dovecot Pigeonhole\"\r\n\"SIEVE\" \"fileinto reject\"\r\n\"SASL\" \"PLAIN\"\r\n\"STARTTLS\"\r\n\"VERSION\" \"1.0\"\r\nOK \"Dovecot ready.\"\r\n";

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Server, GREETING.to_vec()),
            (Dir::Client, b"STARTTLS\r\n".to_vec()),
            (
                Dir::Server,
                b"OK \"Begin TLS negotiation now.\"\r\n".to_vec(),
            ),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_by_content_not_port() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(b"", GREETING, 14190), yes);
        assert_eq!(detect(b"", b"\"IMPLEM", 4190), Verdict::Maybe);
        assert_eq!(detect(b"", b"* OK IMAP\r\n", 4190), Verdict::No);
        assert_eq!(detect(b"", b"\"hello\"\r\n", 4190), Verdict::No);
    }

    #[test]
    fn accepted_upgrade_offsets() {
        let t = accepted();
        let rec = run_split_invariant(Proto::Sieve, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && st.requested && st.accepted);
        assert_eq!(st.command.as_deref(), Some("STARTTLS"));
        assert_eq!(
            st.reply.as_deref(),
            Some("OK \"Begin TLS negotiation now.\"")
        );
        assert_eq!(st.client_offset, Some(t[1].1.len() as u64));
        assert_eq!(st.server_offset, Some((t[0].1.len() + t[2].1.len()) as u64));
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some("sieve"));
    }

    #[test]
    fn refused_and_not_used() {
        let t = vec![
            (Dir::Server, GREETING.to_vec()),
            (Dir::Client, b"CAPABILITY\r\nSTARTTLS\r\n".to_vec()),
            (
                Dir::Server,
                b"\"IMPLEMENTATION\" \"x\"\r\nOK \"Capability completed.\"\r\nNO \"TLS unavailable\"\r\n"
                    .to_vec(),
            ),
            (Dir::Client, b"LOGOUT\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Sieve, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(st.reply.as_deref(), Some("NO \"TLS unavailable\""));

        let t = vec![
            (Dir::Server, GREETING.to_vec()),
            (Dir::Client, b"LOGOUT\r\n".to_vec()),
            (Dir::Server, b"OK \"Logout completed.\"\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Sieve, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }

    #[test]
    fn cleartext_auth_never_keeps_the_password() {
        let t = vec![
            (Dir::Server, GREETING.to_vec()),
            (
                Dir::Client,
                b"AUTHENTICATE \"PLAIN\" \"AGFsaWNlAFMzY3JldFBhc3N3MHJkIQ==\"\r\n".to_vec(),
            ),
            (Dir::Server, b"NO \"Authentication failed.\"\r\n".to_vec()),
            (Dir::Client, b"AUTHENTICATE \"PLAIN\" {32+}\r\n".to_vec()),
            (
                Dir::Client,
                b"AGFsaWNlAFMzY3JldFBhc3N3MHJkIQ==\r\n".to_vec(),
            ),
            (Dir::Server, b"OK \"Logged in.\"\r\n".to_vec()),
            (Dir::Client, b"STARTTLS\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Sieve, &t);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].mechanism, "SIEVE AUTHENTICATE PLAIN");
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
        assert!(!json.contains("AGFsaWNl"));
        assert!(!rec.starttls.clone().unwrap_or_default().requested);
    }
}
