//! FTP control connections (RFC 959, 2389, 4217): the FEAT list, AUTH TLS / SSL
//! and its answer matched through the command pipeline, cleartext USER/PASS.

use super::lines::{
    LineFn, LineProtocol, LineRules, contains_ci, enqueue, first_line, kept_user, starts_with_ci,
    trim, words,
};
use super::protocol::{Cx, Step, Verdict};
use std::collections::VecDeque;

/// A partial first line longer than this is not an FTP greeting or command.
const MAX_PARTIAL: usize = 1024;
/// Ports where a bare `220` greeting is taken for FTP.
const FTP_PORTS: [u16; 2] = [21, 990];

/// First commands of an FTP client.
fn client_command(l: &[u8]) -> bool {
    [
        &b"USER "[..],
        b"AUTH ",
        b"FEAT",
        b"SYST",
        b"OPTS ",
        b"PBSZ ",
        b"CLNT ",
    ]
    .iter()
    .any(|c| starts_with_ci(l, c))
}

/// A capture that began after the greeting: on an FTP port, the client's first
/// line is a login or opening command (`PASS` too: a capture may begin between
/// `USER` and `PASS`), and the server has said nothing or answered with a reply
/// code.
fn after_greeting(client: &[u8], server: &[u8], port: u16) -> bool {
    let reply = |l: &[u8]| l.get(..3).is_some_and(|c| c.iter().all(u8::is_ascii_digit));
    FTP_PORTS.contains(&port)
        && (server.is_empty() || first_line(server).is_some_and(reply))
        && first_line(client).is_some_and(|c| client_command(c) || starts_with_ci(c, b"PASS "))
}

/// Does this flow speak FTP? The server greets with `220` (like SMTP): the port,
/// the banner or the client's first command decides.
pub fn detect(client: &[u8], server: &[u8], port: u16) -> Verdict {
    if after_greeting(client, server, port) {
        return Verdict::Yes { swap: false };
    }
    match first_line(server) {
        Some(l) if l.starts_with(b"220") || l.starts_with(b"120") => {
            if contains_ci(l, b"SMTP") || contains_ci(l, b"LMTP") {
                return Verdict::No;
            }
            if contains_ci(l, b"FTP") || FTP_PORTS.contains(&port) {
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
        None if server.len() >= MAX_PARTIAL => Verdict::No,
        None if client.is_empty()
            && (b"220".starts_with(server.get(..3.min(server.len())).unwrap_or_default())
                || b"120".starts_with(server.get(..3.min(server.len())).unwrap_or_default())) =>
        {
            Verdict::Maybe
        }
        None => Verdict::No,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Auth,
    Feat,
    Other,
}

#[derive(Debug, Default)]
pub struct State {
    greeted: bool,
    pending: VecDeque<Cmd>,
    /// Code of the multi-line reply being read.
    multi: Option<[u8; 3]>,
    user: Option<Vec<u8>>,
}

/// The FTP state machine.
pub type Ftp = LineProtocol<State>;

impl LineRules for State {
    const APP: Option<&'static str> = Some("ftp");
    const CLIENT: LineFn<Self> = client_line;
    const SERVER: LineFn<Self> = server_line;
}

fn client_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    let mut w = words(l);
    let verb = w.next().unwrap_or_default().to_ascii_uppercase();
    let arg = w.next();
    let cmd = match verb.as_slice() {
        b"AUTH" => match arg.map(<[u8]>::to_ascii_uppercase).as_deref() {
            Some(b"TLS" | b"SSL" | b"TLS-C" | b"TLS-P") => Cmd::Auth,
            _ => Cmd::Other,
        },
        b"FEAT" => Cmd::Feat,
        b"USER" => {
            st.user = arg.map(kept_user);
            Cmd::Other
        }
        b"PASS" => {
            let anonymous = st.user.as_deref().is_some_and(|u| {
                u.eq_ignore_ascii_case(b"anonymous") || u.eq_ignore_ascii_case(b"ftp")
            });
            // Anonymous FTP sends an e-mail address as its "password": no secret.
            if !anonymous {
                cx.cleartext_auth("FTP USER/PASS", st.user.as_deref());
            }
            Cmd::Other
        }
        // A transfer began in the clear: the session will not be upgraded now.
        b"RETR" | b"STOR" | b"STOU" | b"APPE" | b"LIST" | b"NLST" | b"MLSD" => {
            return Step::Stop;
        }
        _ => Cmd::Other,
    };
    enqueue(&mut st.pending, cmd, Cmd::Auth, l, cx)
}

fn server_line(st: &mut State, l: &[u8], cx: &mut Cx<'_>) -> Step {
    let code: Option<[u8; 3]> = l
        .get(..3)
        .filter(|c| c.iter().all(u8::is_ascii_digit))
        .and_then(|c| c.try_into().ok());
    let sep = l.get(3).copied();
    if let Some(open) = st.multi {
        if code == Some(open) && sep != Some(b'-') {
            st.multi = None;
        } else {
            if st.pending.front() == Some(&Cmd::Feat) {
                feature(l, cx);
            }
            return Step::Continue;
        }
    } else if sep == Some(b'-') {
        st.multi = code;
        return Step::Continue;
    }
    // The last line of a reply.
    let Some(code) = code else {
        return Step::Continue;
    };
    if code[0] == b'1' {
        // Preliminary: the final reply is still to come.
        return Step::Continue;
    }
    if !st.greeted {
        st.greeted = true;
        return Step::Continue;
    }
    match st.pending.pop_front() {
        Some(Cmd::Auth) => {
            cx.reply(trim(l));
            if &code == b"234" {
                Step::Accepted { at: 0 }
            } else {
                Step::Refused { at: 0 }
            }
        }
        _ => Step::Continue,
    }
}

/// A line of the FEAT list: ` AUTH TLS`, ` AUTH TLS;SSL`, ` AUTH SSL TLS-C`.
fn feature(l: &[u8], cx: &mut Cx<'_>) {
    let f = trim(l);
    if starts_with_ci(f, b"AUTH ") && (contains_ci(f, b"TLS") || contains_ci(f, b"SSL")) {
        cx.offered();
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
    fn a_login_without_its_greeting_is_ftp_on_ftp_ports() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(b"USER dave\r\n", b"", 21), yes);
        assert_eq!(detect(b"PASS x\r\n", b"230 Login ok.\r\n", 21), yes);
        assert_ne!(detect(b"USER dave\r\n", b"", 110), yes);
        assert_ne!(detect(b"PASS x\r\n", b"", 6667), yes);
    }

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (
                Dir::Server,
                b"220-Welcome\r\n220 (vsFTPd 3.0.5)\r\n".to_vec(),
            ),
            (Dir::Client, b"FEAT\r\n".to_vec()),
            (
                Dir::Server,
                b"211-Features:\r\n EPSV\r\n AUTH TLS\r\n PBSZ\r\n211 End\r\n".to_vec(),
            ),
            (Dir::Client, b"AUTH TLS\r\n".to_vec()),
            (Dir::Server, b"234 Proceed with negotiation.\r\n".to_vec()),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_ftp_not_smtp() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(b"", b"220 (vsFTPd 3.0.5)\r\n", 2121), yes);
        assert_eq!(detect(b"", b"220 Welcome\r\n", 21), yes);
        assert_eq!(detect(b"USER bob\r\n", b"220 Welcome\r\n", 10021), yes);
        assert_eq!(detect(b"", b"220 Welcome\r\n", 10021), Verdict::Maybe);
        assert_eq!(
            detect(b"EHLO x\r\n", b"220 Welcome\r\n", 10021),
            Verdict::No
        );
        assert_eq!(detect(b"", b"220 mx ESMTP Postfix\r\n", 21), Verdict::No);
        assert_eq!(detect(b"", b"+OK\r\n", 21), Verdict::No);
        // SMTP keeps a bare 220 open so that FTP can claim it.
        assert_eq!(
            crate::analyzer::starttls::smtp::detect(b"", b"220 Welcome\r\n", 10021),
            Verdict::Maybe
        );
        assert_eq!(
            crate::analyzer::starttls::smtp::detect(b"USER bob\r\n", b"220 Welcome\r\n", 10021),
            Verdict::No
        );
    }

    #[test]
    fn accepted_upgrade_offsets() {
        assert_accepted(
            Proto::Ftp,
            &accepted(),
            "AUTH TLS",
            "234 Proceed with negotiation.",
            "ftp",
        );
    }

    #[test]
    fn refused_with_530() {
        let t = vec![
            (Dir::Server, b"220 (vsFTPd 3.0.5)\r\n".to_vec()),
            (Dir::Client, b"AUTH SSL\r\n".to_vec()),
            (
                Dir::Server,
                b"530 Please login with USER and PASS.\r\n".to_vec(),
            ),
            (Dir::Client, b"QUIT\r\n".to_vec()),
            (Dir::Server, b"221 Goodbye.\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Ftp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(st.command.as_deref(), Some("AUTH SSL"));
        assert_eq!(
            st.reply.as_deref(),
            Some("530 Please login with USER and PASS.")
        );
    }

    #[test]
    fn offered_not_used() {
        let mut t = accepted();
        t.truncate(3);
        t.push((Dir::Client, b"SYST\r\n".to_vec()));
        t.push((Dir::Server, b"215 UNIX Type: L8\r\n".to_vec()));
        let rec = run_split_invariant(Proto::Ftp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }

    #[test]
    fn cleartext_auth_never_keeps_the_password() {
        let t = vec![
            (Dir::Server, b"220 FTP ready\r\n".to_vec()),
            (Dir::Client, b"USER anonymous\r\n".to_vec()),
            (
                Dir::Server,
                b"331 Please specify the password.\r\n".to_vec(),
            ),
            (Dir::Client, b"PASS me@example.com\r\n".to_vec()),
            (Dir::Server, b"530 Login incorrect.\r\n".to_vec()),
            (Dir::Client, b"USER alice\r\n".to_vec()),
            (
                Dir::Server,
                b"331 Please specify the password.\r\n".to_vec(),
            ),
            (Dir::Client, b"PASS S3cretPassw0rd!\r\n".to_vec()),
            (Dir::Server, b"230 Login successful.\r\n".to_vec()),
            (Dir::Client, b"RETR x\r\nAUTH TLS\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Ftp, &t);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].mechanism, "FTP USER/PASS");
        assert_eq!(rec.cleartext_auth[0].user, None);
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
        // Stopped at the transfer: the AUTH TLS after it is not followed.
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }
}
