//! Telnet START_TLS (option 46, draft-altman-telnet-starttls): the server's
//! `IAC DO START_TLS` offers it, the client's `IAC WILL START_TLS` takes it up,
//! and TLS begins in each direction right after that side's
//! `IAC SB START_TLS FOLLOWS IAC SE`. Telnet is binary: commands are parsed
//! byte by byte, not as lines.

use super::protocol::{Cx, Protocol, Step, Verdict};
use crate::record::{Dir, PerDir};

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
/// The START_TLS option.
const START_TLS: u8 = 46;
/// START_TLS sub-negotiation: TLS follows.
const FOLLOWS: u8 = 1;
/// Plaintext bytes followed without an upgrade before giving up.
const MAX_PLAIN: u64 = 64 * 1024;

/// Does this flow speak Telnet with option negotiation? Either side opens with `IAC <command>`.
pub fn detect(client: &[u8], server: &[u8], _port: u16) -> Verdict {
    let opens = |b: &[u8]| match (b.first(), b.get(1)) {
        (Some(&IAC), Some(&c)) => (SE..=DONT).contains(&c),
        _ => false,
    };
    if opens(server) || opens(client) {
        return Verdict::Yes { swap: false };
    }
    let starting = |b: &[u8]| b == [IAC];
    if (starting(server) || server.is_empty()) && (starting(client) || client.is_empty()) {
        Verdict::Maybe
    } else {
        Verdict::No
    }
}

/// Where one direction's parser is in the command stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Parse {
    #[default]
    Data,
    Iac,
    /// After `IAC WILL/WONT/DO/DONT`: the option byte is next.
    Option(u8),
    /// Inside `IAC SB`: the option, then its data, up to `IAC SE`.
    Sb {
        opt: Option<u8>,
        first: Option<u8>,
    },
    SbIac {
        opt: Option<u8>,
        first: Option<u8>,
    },
}

#[derive(Debug, Default)]
struct State {
    /// The client agreed (`IAC WILL START_TLS`).
    will: bool,
    /// This side already sent FOLLOWS: it was reported as the request.
    follows: PerDir<bool>,
    /// The upgrade was declined: nothing more to follow.
    done: bool,
    seen: u64,
}

/// The Telnet state machine.
#[derive(Debug, Default)]
pub struct Telnet {
    parse: PerDir<Parse>,
    st: State,
}

impl Protocol for Telnet {
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        cx.app("telnet");
        if self.st.done {
            return Step::Stop;
        }
        let p = self.parse.get_mut(dir);
        for (i, &b) in data.iter().enumerate() {
            let (next, event) = match *p {
                Parse::Data => (if b == IAC { Parse::Iac } else { Parse::Data }, None),
                Parse::Iac => match b {
                    WILL..=DONT => (Parse::Option(b), None),
                    SB => (
                        Parse::Sb {
                            opt: None,
                            first: None,
                        },
                        None,
                    ),
                    // IAC IAC is a data byte; other commands are two bytes long.
                    _ => (Parse::Data, None),
                },
                Parse::Option(cmd) => (Parse::Data, (b == START_TLS).then_some(cmd)),
                Parse::Sb { opt, first } => match (b, opt, first) {
                    (IAC, _, _) => (Parse::SbIac { opt, first }, None),
                    (_, None, _) => (
                        Parse::Sb {
                            opt: Some(b),
                            first: None,
                        },
                        None,
                    ),
                    (_, Some(_), None) => (
                        Parse::Sb {
                            opt,
                            first: Some(b),
                        },
                        None,
                    ),
                    _ => (Parse::Sb { opt, first }, None),
                },
                Parse::SbIac { opt, first } => match b {
                    SE => (
                        Parse::Data,
                        (opt == Some(START_TLS) && first == Some(FOLLOWS)).then_some(SB),
                    ),
                    // IAC IAC inside a sub-negotiation is a data byte.
                    _ => (Parse::Sb { opt, first }, None),
                },
            };
            *p = next;
            let step = match event {
                Some(cmd) => negotiate(&mut self.st, dir, cmd, cx),
                None => Step::Continue,
            };
            match step {
                Step::Continue => {}
                Step::Stop => return Step::Stop,
                Step::Requested { .. } => return Step::Requested { at: i + 1 },
                Step::Accepted { .. } => return Step::Accepted { at: i + 1 },
                Step::Refused { .. } => return Step::Refused { at: i + 1 },
                Step::Upgrade { .. } => return Step::Upgrade { at: i + 1 },
                Step::Tunnel { .. } => return Step::Tunnel { at: i + 1 },
            }
        }
        self.st.seen += data.len() as u64;
        if self.st.seen > MAX_PLAIN {
            return Step::Stop;
        }
        Step::Continue
    }
}

/// One START_TLS negotiation from `dir`: `cmd` is WILL/WONT/DO/DONT, or SB for FOLLOWS.
fn negotiate(st: &mut State, dir: Dir, cmd: u8, cx: &mut Cx<'_>) -> Step {
    const FOLLOWS_TEXT: &[u8] = b"IAC SB START_TLS FOLLOWS IAC SE";
    match (dir, cmd) {
        (Dir::Server, DO) => {
            cx.offered();
            Step::Continue
        }
        (Dir::Client, WILL) => {
            st.will = true;
            cx.command(b"IAC WILL START_TLS");
            Step::Continue
        }
        (Dir::Client, WONT) => {
            st.done = true;
            Step::Continue
        }
        (Dir::Server, DONT | WONT) if st.will => {
            st.done = true;
            cx.reply(if cmd == DONT {
                b"IAC DONT START_TLS"
            } else {
                b"IAC WONT START_TLS"
            });
            Step::Refused { at: 0 }
        }
        (_, SB) => {
            match dir {
                Dir::Client => cx.command(FOLLOWS_TEXT),
                Dir::Server => cx.reply(FOLLOWS_TEXT),
            }
            *st.follows.get_mut(dir) = true;
            // The first side to send FOLLOWS waits for the other's; TLS starts
            // after each side's own FOLLOWS.
            if *st.follows.get(dir.other()) {
                Step::Accepted { at: 0 }
            } else {
                Step::Requested { at: 0 }
            }
        }
        _ => Step::Continue,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::{client_hello, run_split_invariant, server_hello};
    use crate::record::Encryption;

    const FOLLOWS_SB: [u8; 6] = [IAC, SB, START_TLS, FOLLOWS, IAC, SE];

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Server, vec![IAC, DO, START_TLS]),
            (Dir::Client, vec![IAC, WILL, START_TLS]),
            (Dir::Server, FOLLOWS_SB.to_vec()),
            (Dir::Client, FOLLOWS_SB.to_vec()),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_by_content_not_port() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(b"", &[IAC, DO, START_TLS], 2323), yes);
        assert_eq!(detect(&[IAC, WILL, 24], b"", 9), yes);
        assert_eq!(detect(b"", &[IAC], 23), Verdict::Maybe);
        assert_eq!(detect(b"", b"login: ", 23), Verdict::No);
        assert_eq!(detect(b"", &[IAC, 7], 23), Verdict::No);
    }

    #[test]
    fn accepted_after_both_follows() {
        let rec = run_split_invariant(Proto::Telnet, &accepted());
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && st.requested && st.accepted);
        assert_eq!(
            st.command.as_deref(),
            Some("IAC SB START_TLS FOLLOWS IAC SE")
        );
        assert_eq!(st.reply.as_deref(), Some("IAC SB START_TLS FOLLOWS IAC SE"));
        assert_eq!(st.client_offset, Some(9));
        assert_eq!(st.server_offset, Some(9));
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some("telnet"));
    }

    #[test]
    fn client_follows_first_and_tls_in_the_same_segment() {
        let mut client = vec![IAC, WILL, START_TLS, b'x', IAC, IAC];
        client.extend(FOLLOWS_SB);
        client.extend(client_hello());
        let t = vec![
            (Dir::Server, vec![b'h', b'i', IAC, DO, START_TLS]),
            (Dir::Client, client),
            (Dir::Server, FOLLOWS_SB.to_vec()),
            (Dir::Server, server_hello()),
        ];
        let rec = run_split_invariant(Proto::Telnet, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(st.client_offset, Some(12));
        assert_eq!(st.server_offset, Some(11));
        assert_eq!(st.injection, None);
        assert_eq!(rec.encryption, Encryption::Starttls);
    }

    #[test]
    fn refused_with_dont() {
        let t = vec![
            (Dir::Client, vec![IAC, WILL, START_TLS]),
            (Dir::Server, vec![IAC, DONT, START_TLS]),
            (Dir::Server, b"login: ".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Telnet, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(st.command.as_deref(), Some("IAC WILL START_TLS"));
        assert_eq!(st.reply.as_deref(), Some("IAC DONT START_TLS"));
    }

    #[test]
    fn offered_not_used() {
        let t = vec![
            (Dir::Server, vec![IAC, DO, START_TLS, IAC, DO, 24]),
            (Dir::Client, vec![IAC, WONT, START_TLS, IAC, WILL, 24]),
            (Dir::Server, b"login: ".to_vec()),
            (Dir::Client, b"root\r\n".to_vec()),
        ];
        let rec = run_split_invariant(Proto::Telnet, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
    }
}
