//! XMPP client-to-server and server-to-server streams (RFC 6120): the
//! `<starttls/>` stream feature, the client's `<starttls/>`, the server's
//! `<proceed/>` or `<failure/>`, and cleartext SASL PLAIN. XMPP is not line
//! based: a small bounded tag scanner finds each tag's closing `>`, which is where
//! TLS begins after `<proceed/>`.

use super::lines::{base64, contains_ci, sasl_plain_user, starts_with_ci, trim};
use super::protocol::{Cx, Protocol, Step, Verdict};
use crate::record::{Dir, PerDir};

/// Longest tag kept; the rest of a longer tag is dropped (it still ends at its `>`).
const MAX_TAG: usize = 2048;
/// Longest SASL text kept (base64 of `authzid NUL user NUL password`), only to
/// read the user name from it; it is dropped right after.
const MAX_SASL: usize = 1024;
/// An opening this long without a stream header is not XMPP.
const MAX_PARTIAL: usize = 1024;
/// The STARTTLS namespace (RFC 6120 5.4).
const NS_TLS: &[u8] = b"urn:ietf:params:xml:ns:xmpp-tls";

/// Does this flow speak XMPP? The initiating entity opens with `<?xml` or `<stream:stream`.
pub fn detect(client: &[u8], server: &[u8], _port: u16) -> Verdict {
    let opens = |b: &[u8]| {
        let b = trim(b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b));
        starts_with_ci(b, b"<?xml") || starts_with_ci(b, b"<stream:stream")
    };
    // A stream header cut short: more bytes decide.
    let could_open = |b: &[u8]| {
        let b = trim(b);
        [&b"<?xml"[..], b"<stream:stream"]
            .iter()
            .any(|o| o.len() > b.len() && o.starts_with(b))
    };
    if client.is_empty() {
        // The initiator speaks first: a server that does is someone else (or the
        // roles are reversed, which the caller checks the other way round).
        return if server.is_empty() {
            Verdict::Maybe
        } else {
            Verdict::No
        };
    }
    if opens(client) {
        if contains_ci(client, b"<stream:stream") || contains_ci(client, b"jabber") {
            return Verdict::Yes { swap: false };
        }
        return if client.len() < MAX_PARTIAL {
            Verdict::Maybe
        } else {
            Verdict::No
        };
    }
    if could_open(client) {
        return Verdict::Maybe;
    }
    Verdict::No
}

/// One direction's tag scanner.
#[derive(Debug, Default)]
struct Scan {
    /// The tag being read, from its `<`.
    tag: Vec<u8>,
    in_tag: bool,
    /// Inside a quoted attribute value (where `>` does not end the tag).
    quote: Option<u8>,
    /// Character data being kept (SASL PLAIN's initial response).
    text: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    starttls_requested: bool,
    /// The client's `<starttls>` was not self-closing: the request ends at `</starttls>`.
    starttls_open: bool,
    /// The server's `<proceed>` was not self-closing: TLS begins after `</proceed>`.
    proceed_open: bool,
    /// Character data of the current `<auth mechanism='PLAIN'>` or `<response>`.
    sasl_plain: bool,
}

/// The XMPP state machine.
#[derive(Debug, Default)]
pub struct Xmpp {
    scan: PerDir<Scan>,
    st: State,
}

/// A complete tag, as the scanner hands it over.
struct Tag<'a> {
    /// The raw bytes from `<` to `>`.
    raw: &'a [u8],
    /// The element name without its namespace prefix.
    name: &'a [u8],
    /// `</name>`.
    end: bool,
    /// `<name/>`.
    self_closing: bool,
}

impl<'a> Tag<'a> {
    fn parse(raw: &'a [u8]) -> Tag<'a> {
        let inner = raw.strip_prefix(b"<").unwrap_or(raw);
        let inner = inner.strip_suffix(b">").unwrap_or(inner);
        let self_closing = inner.ends_with(b"/");
        let end = inner.first() == Some(&b'/');
        let inner = inner.strip_prefix(b"/").unwrap_or(inner);
        let stop = inner
            .iter()
            .position(|&b| b.is_ascii_whitespace() || b == b'/')
            .unwrap_or(inner.len());
        let qname = inner.get(..stop).unwrap_or_default();
        let name = match qname.iter().position(|&b| b == b':') {
            Some(c) => qname.get(c + 1..).unwrap_or_default(),
            None => qname,
        };
        Tag {
            raw,
            name,
            end,
            self_closing,
        }
    }

    /// A start (or empty-element) tag of this name.
    fn is(&self, name: &[u8]) -> bool {
        !self.end && self.name.eq_ignore_ascii_case(name)
    }

    /// An end tag of this name.
    fn ends(&self, name: &[u8]) -> bool {
        self.end && self.name.eq_ignore_ascii_case(name)
    }

    fn attr_has(&self, needle: &[u8]) -> bool {
        contains_ci(self.raw, needle)
    }
}

impl Protocol for Xmpp {
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        cx.app("xmpp");
        let scan = self.scan.get_mut(dir);
        for (i, &b) in data.iter().enumerate() {
            if !scan.in_tag {
                if b == b'<' {
                    scan.in_tag = true;
                    scan.quote = None;
                    scan.tag.clear();
                    scan.tag.push(b);
                } else if let Some(text) = scan.text.as_mut().filter(|t| t.len() < MAX_SASL) {
                    text.push(b);
                }
                continue;
            }
            if scan.tag.len() < MAX_TAG {
                scan.tag.push(b);
            }
            match (scan.quote, b) {
                (Some(q), _) if b == q => scan.quote = None,
                (Some(_), _) => {}
                (None, b'\'' | b'"') => scan.quote = Some(b),
                (None, b'>') => {
                    scan.in_tag = false;
                    let tag = Tag::parse(&scan.tag);
                    let step = match dir {
                        Dir::Client => client_tag(&mut self.st, &tag, &mut scan.text, cx),
                        Dir::Server => server_tag(&mut self.st, &tag, cx),
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
                (None, _) => {}
            }
        }
        Step::Continue
    }
}

fn client_tag(st: &mut State, tag: &Tag<'_>, text: &mut Option<Vec<u8>>, cx: &mut Cx<'_>) -> Step {
    if tag.is(b"starttls") {
        cx.command(tag.raw);
        if tag.self_closing {
            st.starttls_requested = true;
            return Step::Requested { at: 0 };
        }
        st.starttls_open = true;
        return Step::Continue;
    }
    if tag.ends(b"starttls") && st.starttls_open {
        st.starttls_open = false;
        st.starttls_requested = true;
        return Step::Requested { at: 0 };
    }
    if tag.is(b"auth") || tag.is(b"response") {
        let plain = tag.is(b"response") && st.sasl_plain
            || tag.is(b"auth") && tag.attr_has(b"mechanism='PLAIN'")
            || tag.is(b"auth") && tag.attr_has(b"mechanism=\"PLAIN\"");
        st.sasl_plain = plain;
        if plain {
            if tag.self_closing {
                // No initial response: the credentials follow in <response>.
                return Step::Continue;
            }
            *text = Some(Vec::new());
        }
        return Step::Continue;
    }
    if (tag.ends(b"auth") || tag.ends(b"response")) && st.sasl_plain {
        let data = text.take().unwrap_or_default();
        let data = trim(&data);
        if data.is_empty() || data == b"=" {
            // Empty initial response: the credentials follow in <response>.
            return Step::Continue;
        }
        st.sasl_plain = false;
        let user = base64(data).and_then(|d| sasl_plain_user(&d));
        cx.cleartext_auth("XMPP SASL PLAIN", user.as_deref());
        return Step::Continue;
    }
    if tag.is(b"password") {
        // Legacy jabber:iq:auth (XEP-0078) with the password in the clear.
        cx.cleartext_auth("XMPP IQ-AUTH", None);
        return Step::Continue;
    }
    if tag.is(b"message") || tag.is(b"presence") {
        // Stanzas flow: the session was set up without TLS.
        return Step::Stop;
    }
    Step::Continue
}

fn server_tag(st: &mut State, tag: &Tag<'_>, cx: &mut Cx<'_>) -> Step {
    if tag.is(b"starttls") && tag.attr_has(NS_TLS) {
        cx.offered();
        return Step::Continue;
    }
    if tag.is(b"proceed") && (tag.attr_has(NS_TLS) || st.starttls_requested) {
        cx.reply(tag.raw);
        if tag.self_closing {
            return Step::Accepted { at: 0 };
        }
        st.proceed_open = true;
        return Step::Continue;
    }
    if tag.ends(b"proceed") && st.proceed_open {
        st.proceed_open = false;
        return Step::Accepted { at: 0 };
    }
    if tag.is(b"failure") && tag.attr_has(NS_TLS) {
        cx.reply(tag.raw);
        return Step::Refused { at: 0 };
    }
    if tag.is(b"success") || tag.is(b"message") || tag.is(b"presence") {
        // Authenticated, or stanzas flow: no upgrade will follow.
        return Step::Stop;
    }
    Step::Continue
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyzer::starttls::Proto;
    use crate::analyzer::starttls::tests::{client_hello, run_split_invariant, server_hello};
    use crate::record::Encryption;

    const CLIENT_OPEN: &[u8] = b"<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";
    const SERVER_OPEN: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='a>b' from='example.com' version='1.0'>";
    const FEATURES: &[u8] = b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>";

    fn accepted() -> Vec<(Dir, Vec<u8>)> {
        vec![
            (Dir::Client, CLIENT_OPEN.to_vec()),
            (Dir::Server, SERVER_OPEN.to_vec()),
            (Dir::Server, FEATURES.to_vec()),
            (
                Dir::Client,
                b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec(),
            ),
            (
                Dir::Server,
                b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec(),
            ),
            (Dir::Client, client_hello()),
            (Dir::Server, server_hello()),
        ]
    }

    #[test]
    fn detects_by_content_not_port() {
        let yes = Verdict::Yes { swap: false };
        assert_eq!(detect(CLIENT_OPEN, b"", 15222), yes);
        assert_eq!(detect(b"<stream:stream to='x'>", b"", 5269), yes);
        assert_eq!(detect(b"<?xml version='1.0'?>", b"", 5222), Verdict::Maybe);
        assert_eq!(detect(b"<?x", b"", 5222), Verdict::Maybe);
        assert_eq!(detect(b"", SERVER_OPEN, 5222), Verdict::No);
        assert_eq!(detect(b"GET / HTTP/1.1\r\n", b"", 5222), Verdict::No);
    }

    #[test]
    fn tags_parse() {
        let t = Tag::parse(b"<stream:features>");
        assert!(t.is(b"features") && !t.self_closing);
        let t = Tag::parse(b"</stream:features>");
        assert!(t.ends(b"features") && !t.is(b"features"));
        let t = Tag::parse(b"<required/>");
        assert!(t.is(b"required") && t.self_closing);
        let t = Tag::parse(b"</starttls>");
        assert!(t.ends(b"starttls"));
        let t = Tag::parse(b"<auth xmlns='x' mechanism='PLAIN'>");
        assert!(t.is(b"auth") && t.attr_has(b"mechanism='plain'"));
    }

    #[test]
    fn accepted_at_the_end_of_proceed() {
        let mut t = accepted();
        // TLS right behind <proceed/> in the same segment: the handoff is at its '>'.
        let mut proceed = t[4].1.clone();
        proceed.extend(server_hello());
        t[4] = (Dir::Server, proceed);
        t.pop();
        let rec = run_split_invariant(Proto::Xmpp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && st.requested && st.accepted);
        assert_eq!(
            st.command.as_deref(),
            Some("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        );
        assert_eq!(
            st.reply.as_deref(),
            Some("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        );
        assert_eq!(st.client_offset, Some((CLIENT_OPEN.len() + 51) as u64));
        assert_eq!(
            st.server_offset,
            Some((SERVER_OPEN.len() + FEATURES.len() + 50) as u64)
        );
        assert_eq!(st.response_injection, None);
        assert_eq!(rec.encryption, Encryption::Starttls);
        assert_eq!(rec.app_protocol.as_deref(), Some("xmpp"));
    }

    #[test]
    fn long_form_starttls_and_proceed() {
        let mut t = accepted();
        t[3] = (
            Dir::Client,
            b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls>".to_vec(),
        );
        t[4] = (
            Dir::Server,
            b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'></proceed>".to_vec(),
        );
        let rec = run_split_invariant(Proto::Xmpp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(st.client_offset, Some((CLIENT_OPEN.len() + 61) as u64));
        assert_eq!(
            st.server_offset,
            Some((SERVER_OPEN.len() + FEATURES.len() + 59) as u64)
        );
        assert_eq!(st.injection, None);
        assert_eq!(rec.encryption, Encryption::Starttls);
    }

    #[test]
    fn refused_with_failure() {
        let mut t = accepted();
        t[4] = (
            Dir::Server,
            b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>".to_vec(),
        );
        t.truncate(5);
        let rec = run_split_invariant(Proto::Xmpp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert_eq!(rec.encryption, Encryption::StarttlsRefused);
        assert_eq!(
            st.reply.as_deref(),
            Some("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        );
    }

    #[test]
    fn offered_not_used_and_cleartext_plain() {
        let mut t = accepted();
        t.truncate(3);
        t.push((
            Dir::Client,
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAFMzY3JldFBhc3N3MHJkIQ==</auth>".to_vec(),
        ));
        t.push((
            Dir::Server,
            b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>".to_vec(),
        ));
        t.push((
            Dir::Client,
            b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_vec(),
        ));
        let rec = run_split_invariant(Proto::Xmpp, &t);
        let st = rec.starttls.clone().unwrap_or_default();
        assert!(st.offered && !st.requested);
        assert_eq!(rec.encryption, Encryption::Plaintext);
        assert_eq!(rec.cleartext_auth.len(), 1);
        assert_eq!(rec.cleartext_auth[0].mechanism, "XMPP SASL PLAIN");
        let json = serde_json::to_string(&rec).unwrap_or_default();
        assert!(!json.contains("S3cret"));
        assert!(!json.contains("AGFsaWNl"));
    }
}
