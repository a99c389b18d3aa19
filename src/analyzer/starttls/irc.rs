//! IRC (RFC 1459/2812 with the IRCv3 `tls` extension): the `CAP LS` list, client
//! STARTTLS answered by numeric 670 (go ahead) or 691 (failure), cleartext PASS
//! and SASL PLAIN. Registration (numeric 001) ends the chance to upgrade.

use super::lines::{
    LineFn, LineProtocol, LineRules, base64, first_line, sasl_plain_user, starts_with_ci, trim,
    words,
};
use super::protocol::{Cx, Step, Verdict};

/// A partial first line longer than this is not IRC.
const MAX_PARTIAL: usize = 1024;
/// Ports where a lone client STARTTLS is taken for IRC without the server's answer.
const IRC_PORTS: [u16; 5] = [194, 6667, 6668, 6669, 7000];

/// The command of an IRC line, after its optional `:prefix`, and the rest.
fn command(l: &[u8]) -> (&[u8], &[u8]) {
    let l = trim(l);
    let l = if l.first() == Some(&b':') {
        match l.iter().position(|&b| b == b' ') {
            Some(sp) => trim(l.get(sp..).unwrap_or_default()),
            None => &[],
        }
    } else {
        l
    };
    match l.iter().position(|&b| b == b' ') {
        Some(sp) => (
            l.get(..sp).unwrap_or_default(),
            l.get(sp + 1..).unwrap_or_default(),
        ),
        None => (l, &[]),
    }
}

/// Does this flow speak IRC? The client registers first (NICK, USER, CAP, PASS)
/// or asks for STARTTLS at once; some servers first send a NOTICE.
pub fn detect(client: &[u8], server: &[u8], port: u16) -> Verdict {
    let server_irc = server.is_empty()
        || server.first() == Some(&b':')
        || starts_with_ci(server, b"NOTICE ")
        || starts_with_ci(server, b"PING ");
    if !server_irc {
        return Verdict::No;
    }
    let Some(l) = first_line(client) else {
        if !client.is_empty() {
            return if client.len() < MAX_PARTIAL {
                Verdict::Maybe
            } else {
                Verdict::No
            };
        }
        // The server spoke first: an ircd's NOTICE while it looks up the client.
        return match first_line(server) {
            Some(s) => {
                let (cmd, _) = command(s);
                if cmd.eq_ignore_ascii_case(b"NOTICE") {
                    Verdict::Yes { swap: false }
                } else {
                    Verdict::No
                }
            }
            None if server.len() < MAX_PARTIAL => Verdict::Maybe,
            None => Verdict::No,
        };
    };
    let (cmd, params) = command(l);
    let cmd = cmd.to_ascii_uppercase();
    match cmd.as_slice() {
        // IRC's USER takes four parameters (RFC 2812 §3.1.3, RFC 1459 §4.1.3);
        // FTP's and POP3's take one.
        b"USER"
            if params
                .split(|&b| b == b' ')
                .filter(|w| !w.is_empty())
                .count()
                < 4 =>
        {
            Verdict::No
        }
        b"NICK" | b"USER" | b"CAP" | b"PASS" => Verdict::Yes { swap: false },
        b"STARTTLS" if !server.is_empty() || IRC_PORTS.contains(&port) => {
            Verdict::Yes { swap: false }
        }
        b"STARTTLS" => Verdict::Maybe,
        _ => Verdict::No,
    }
}

#[derive(Debug, Default)]
pub struct State {
    starttls_pending: bool,
    /// The next `AUTHENTICATE` line carries SASL PLAIN's credentials.
    sasl_plain: bool,
}

/// The IRC state machine.
pub type Irc = LineProtocol<State>;

impl LineRules for State {
    const APP: Option<&'static str> = Some("irc");
    const CLIENT: LineFn<Self> = client_line;
    const SERVER: LineFn<Self> = server_line;
}

fn client_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    let (cmd, rest) = command(l);
    let cmd = cmd.to_ascii_uppercase();
    match cmd.as_slice() {
        b"STARTTLS" => {
            st.starttls_pending = true;
            cx.command(trim(l));
            Step::Requested { at: 0 }
        }
        b"PASS" => {
            cx.cleartext_auth("IRC PASS", None);
            Step::Continue
        }
        b"AUTHENTICATE" => {
            let arg = trim(rest);
            if arg.eq_ignore_ascii_case(b"PLAIN") {
                st.sasl_plain = true;
            } else if st.sasl_plain && arg != b"*" {
                st.sasl_plain = false;
                let user = base64(arg).and_then(|d| sasl_plain_user(&d));
                cx.cleartext_auth("IRC SASL PLAIN", user.as_deref());
            } else {
                st.sasl_plain = false;
            }
            Step::Continue
        }
        _ => Step::Continue,
    }
}

fn server_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    let (cmd, rest) = command(l);
    match cmd {
        b"CAP" => {
            // `CAP <target> LS [*] :cap cap=value …`
            let mut w = words(rest);
            let _target = w.next();
            let sub = w.next().unwrap_or_default();
            if sub.eq_ignore_ascii_case(b"LS") {
                let caps = rest
                    .iter()
                    .position(|&b| b == b':')
                    .and_then(|c| rest.get(c + 1..))
                    .unwrap_or_default();
                if words(caps).any(|c| c.eq_ignore_ascii_case(b"tls") || starts_with_ci(c, b"tls="))
                {
                    cx.offered();
                }
            }
            Step::Continue
        }
        b"670" if st.starttls_pending => {
            st.starttls_pending = false;
            cx.reply(trim(l));
            Step::Accepted { at: 0 }
        }
        // 691: ERR_STARTTLS; 421: ERR_UNKNOWNCOMMAND for STARTTLS.
        b"691" | b"421" if st.starttls_pending => {
            st.starttls_pending = false;
            cx.reply(trim(l));
            Step::Refused { at: 0 }
        }
        // Registered: the tls extension allows STARTTLS only before.
        b"001" => Step::Stop,
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

    #[test]
    fn a_one_word_user_is_not_irc() {
        // FTP's and POP3's USER name one user; IRC's has four parameters.
        assert_eq!(detect(b"USER dave\r\n", b"", 21), Verdict::No);
        assert_eq!(
            detect(b"USER guest 0 * :Ronnie Reagan\r\n", b"", 6667),
            Verdict::Yes { swap: false }
        );
    }

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Client, b"CAP LS\r\n".to_vec()),
            (
                Dir::Server,
                b":irc.example.net NOTICE * :*** Looking up your hostname\r\n:irc.example.net CAP * LS :multi-prefix tls sasl\r\n"
                    .to_vec(),
            ),
            (Dir::Client, b"STARTTLS\r\n".to_vec()),
            (
                Dir::Server,
                b":irc.example.net 670 * :STARTTLS successful, proceed with TLS handshake\r\n"
                    .to_vec(),
            ),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_by_content_not_port() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(b"NICK bob\r\n", b"", 16667), yes);
        assert_eq!(detect(b"CAP LS 302\r\n", b"", 8000), yes);
        assert_eq!(detect(b"STARTTLS\r\n", b"", 6667), yes);
        assert_eq!(detect(b"STARTTLS\r\n", b"", 16667), Verdict::Maybe);
        assert_eq!(detect(b"STARTTLS\r\n", b":x 670 * :go\r\n", 16667), yes);
        assert_eq!(detect(b"", b":irc NOTICE * :hi\r\n", 16667), yes);
        assert_eq!(detect(b"USER bob\r\n", b"+OK\r\n", 6667), Verdict::No);
        assert_eq!(detect(b"EHLO x\r\n", b"", 6667), Verdict::No);
    }

    #[test]
    fn accepted_upgrade_offsets() {
        assert_accepted(
            Proto::Irc,
            &accepted(),
            "STARTTLS",
            ":irc.example.net 670 * :STARTTLS successful, proceed with TLS handshake",
            "irc",
        );
    }

    #[test]
    fn refused_691() {
        let t = vec![
            (Dir::Client, b"STARTTLS\r\n".to_vec()),
            (Dir::Server, b":irc 691 * :STARTTLS failure\r\n".to_vec()),
            (Dir::Client, b"NICK bob\r\nUSER bob 0 * :Bob\r\n".to_vec()),
            (Dir::Server, b":irc 001 bob :Welcome\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Irc, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(st.reply.as_deref(), Some(":irc 691 * :STARTTLS failure"));
    }

    #[test]
    fn offered_not_used_stops_at_welcome() {
        let mut t = accepted();
        t.truncate(2);
        t.push((
            Dir::Client,
            b"CAP END\r\nNICK bob\r\nUSER bob 0 * :Bob\r\n".to_vec(),
        ));
        t.push((Dir::Server, b":irc 001 bob :Welcome\r\n".to_vec()));
        t.push((Dir::Client, b"PASS S3cretPassw0rd!\r\n".to_vec()));
        let rec = run_split_invariant(Proto::Irc, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        // Past registration nothing is parsed any more.
        assert!(rec.cleartext_auth.is_empty());
    }

    #[test]
    fn cleartext_auth_never_keeps_the_password() {
        let t = vec![
            (
                Dir::Client,
                b"PASS S3cretPassw0rd!\r\nCAP REQ :sasl\r\n".to_vec(),
            ),
            (Dir::Server, b":irc CAP * ACK :sasl\r\n".to_vec()),
            (Dir::Client, b"AUTHENTICATE PLAIN\r\n".to_vec()),
            (Dir::Server, b"AUTHENTICATE +\r\n".to_vec()),
            (
                Dir::Client,
                b"AUTHENTICATE AGFsaWNlAFMzY3JldFBhc3N3MHJkIQ==\r\n".to_vec(),
            ),
        ];
        let rec = run_split_invariant(Proto::Irc, &t);
        let mechs: Vec<_> = rec
            .cleartext_auth
            .iter()
            .map(|a| a.mechanism.as_str())
            .collect();
        assert_eq!(mechs, ["IRC PASS", "IRC SASL PLAIN"]);
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
        assert!(!json.contains("AGFsaWNl"));
    }
}
