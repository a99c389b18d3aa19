//! Text protocols in a transcript: each direction's bytes cut into lines (XMPP
//! into tags, Telnet commands named), credentials redacted as the flow records
//! redact them: the mechanism is shown, the user only with `--show-users`, a
//! password or SASL response never.

use super::out::{Fref, MAX_SHOWN, Out, cut};
use crate::record::{Dir, PerDir, escape_wire};

/// Bytes of one line kept; the rest of a longer line is counted, not kept.
pub const MAX_LINE_KEPT: usize = 4096;

/// How a text flow is cut and redacted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Smtp,
    Imap,
    Pop3,
    Ftp,
    Nntp,
    Sieve,
    Irc,
    Http,
    Xmpp,
    Telnet,
    /// Anything else that is text: lines as they are.
    Plain,
}

impl Kind {
    /// The kind for a record's `app_protocol`, if it is a text protocol.
    pub fn of(app: Option<&str>) -> Option<Kind> {
        Some(match app {
            Some("smtp" | "lmtp") => Kind::Smtp,
            Some("imap") => Kind::Imap,
            Some("pop3") => Kind::Pop3,
            Some("ftp") => Kind::Ftp,
            Some("nntp") => Kind::Nntp,
            Some("sieve") => Kind::Sieve,
            Some("irc") => Kind::Irc,
            Some("http" | "http-connect" | "http-upgrade") => Kind::Http,
            Some("xmpp") => Kind::Xmpp,
            Some("telnet") => Kind::Telnet,
            Some(
                "ldap" | "postgresql" | "mysql" | "rdp" | "tds" | "socks" | "tls" | "quic"
                | "http3" | "dtls",
            ) => return None,
            _ => Kind::Plain,
        })
    }
}

/// The line under way in one direction.
#[derive(Debug, Default)]
struct Partial {
    kept: Vec<u8>,
    /// Its length on the wire so far (more than `kept` for a line past the cap).
    len: usize,
}

/// Telnet's command parser state, per direction.
#[derive(Debug, Default)]
enum Iac {
    #[default]
    Data,
    /// After IAC.
    Command,
    /// After IAC and DO, DONT, WILL or WONT.
    Option(u8),
    /// Inside a subnegotiation: its bytes (capped).
    Sub(Vec<u8>),
    /// IAC inside a subnegotiation.
    SubEscape(Vec<u8>),
}

/// An HTTP message body being passed over.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Body {
    #[default]
    None,
    /// Bytes left of a body of known length.
    Length(u64),
    /// Chunked: the next line is a chunk size.
    ChunkSize,
    /// Bytes left of a chunk (and its CRLF).
    Chunk(u64),
    /// To the end of the direction.
    Rest,
}

/// What the record says about the upgrade, to mark plaintext where TLS should begin.
#[derive(Debug, Default, Clone)]
pub struct Marks {
    pub command: Option<String>,
    pub reply: Option<String>,
    pub injection: bool,
    pub response_injection: bool,
}

/// Cuts and redacts one flow's text.
#[derive(Debug)]
pub struct Text {
    kind: Kind,
    show_users: bool,
    partial: PerDir<Partial>,
    /// A SASL (or similar) exchange is open: the client's lines are credentials.
    auth: bool,
    /// The server asked for a password: the client's next line is one.
    password_prompt: bool,
    /// XMPP: the last opening tag held credentials in its text.
    xmpp_secret: bool,
    iac: PerDir<Iac>,
    body: PerDir<Body>,
    /// HTTP: the headers of the message under way said how its body is framed.
    framing: PerDir<Body>,
    marks: Marks,
    /// The upgrade request (or its reply) was seen: plaintext after it is injected.
    after: PerDir<bool>,
    /// Bytes of the body passed over, reported when it ends.
    body_bytes: PerDir<u64>,
}

impl Text {
    pub fn new(kind: Kind, show_users: bool, marks: Marks) -> Self {
        Text {
            kind,
            show_users,
            partial: PerDir::default(),
            auth: false,
            password_prompt: false,
            xmpp_secret: false,
            iac: PerDir::default(),
            body: PerDir::default(),
            framing: PerDir::default(),
            marks,
            after: PerDir::default(),
            body_bytes: PerDir::default(),
        }
    }

    /// In-order cleartext of `dir`, brought by packet `at`.
    pub fn data(&mut self, dir: Dir, at: Fref, mut bytes: &[u8], out: &mut Out) {
        if dir == Dir::Client {
            self.prompted(at, out);
        }
        while !bytes.is_empty() {
            let used = match *self.body.get(dir) {
                Body::None | Body::ChunkSize => self.text(dir, at, bytes, out),
                _ => self.skip_body(dir, at, bytes, out),
            };
            bytes = bytes.get(used.max(1)..).unwrap_or_default();
        }
    }

    /// Bytes of a body: counted, never shown. Returns how many were used.
    fn skip_body(&mut self, dir: Dir, at: Fref, bytes: &[u8], out: &mut Out) -> usize {
        let len = bytes.len() as u64;
        let (used, next) = match *self.body.get(dir) {
            Body::Length(n) if n <= len => (n, Body::None),
            Body::Length(n) => (len, Body::Length(n - len)),
            Body::Chunk(n) if n <= len => (n, Body::ChunkSize),
            Body::Chunk(n) => (len, Body::Chunk(n - len)),
            _ => (len, Body::Rest),
        };
        *self.body_bytes.get_mut(dir) += used;
        *self.body.get_mut(dir) = next;
        if next == Body::None {
            self.end_body(dir, at, out);
        }
        used as usize
    }

    fn end_body(&mut self, dir: Dir, at: Fref, out: &mut Out) {
        let n = std::mem::take(self.body_bytes.get_mut(dir));
        if n > 0 && self.kind == Kind::Http {
            out.line(at, dir, &format!("[body: {n} bytes, not shown]"), 0);
        } else if n > 0 {
            out.line(
                at,
                dir,
                &format!("[{n} bytes of binary data, not shown]"),
                0,
            );
        }
    }

    /// Text up to and including the first line end (or Telnet command); returns
    /// how many bytes it used.
    fn text(&mut self, dir: Dir, at: Fref, bytes: &[u8], out: &mut Out) -> usize {
        for (i, &b) in bytes.iter().enumerate() {
            if self.kind == Kind::Telnet && self.telnet(dir, at, b, out) {
                continue;
            }
            let p = self.partial.get_mut(dir);
            p.len += 1;
            if p.kept.len() < MAX_LINE_KEPT {
                p.kept.push(b);
            }
            let end = b == b'\n' || (self.kind == Kind::Xmpp && b == b'>');
            if end {
                let p = std::mem::take(self.partial.get_mut(dir));
                self.line(dir, at, &p.kept, p.len, out);
                return i + 1;
            }
        }
        bytes.len()
    }

    /// Telnet: takes `b` when it belongs to a command (and names a finished
    /// command in `out`); false for data.
    fn telnet(&mut self, dir: Dir, at: Fref, b: u8, out: &mut Out) -> bool {
        const IAC: u8 = 255;
        let state = std::mem::take(self.iac.get_mut(dir));
        let (next, taken, said) = match (state, b) {
            (Iac::Data, IAC) => (Iac::Command, true, None),
            (Iac::Data, _) => (Iac::Data, false, None),
            (Iac::Command, IAC) => (Iac::Data, false, None),
            (Iac::Command, 250) => (Iac::Sub(Vec::new()), true, None),
            (Iac::Command, c @ 251..=254) => (Iac::Option(c), true, None),
            (Iac::Command, c) => (Iac::Data, true, Some(format!("IAC {}", telnet_command(c)))),
            (Iac::Option(c), o) => (
                Iac::Data,
                true,
                Some(format!("IAC {} {}", telnet_command(c), telnet_option(o))),
            ),
            (Iac::Sub(v), IAC) => (Iac::SubEscape(v), true, None),
            (Iac::Sub(mut v), x) => {
                if v.len() < 64 {
                    v.push(x);
                }
                (Iac::Sub(v), true, None)
            }
            (Iac::SubEscape(v), 240) => (Iac::Data, true, Some(subnegotiation(&v))),
            (Iac::SubEscape(mut v), x) => {
                if v.len() < 64 {
                    v.push(x);
                }
                (Iac::Sub(v), true, None)
            }
        };
        *self.iac.get_mut(dir) = next;
        if let Some(s) = said {
            out.line(at, dir, &s, 0);
        }
        taken
    }

    /// Telnet and other interactive text: the server's unfinished line is a
    /// prompt (it has no line end) and is shown once the client answers; one
    /// that asks for a password makes the client's next line a secret.
    fn prompted(&mut self, at: Fref, out: &mut Out) {
        let p = &self.partial.server;
        if p.kept.is_empty() || !matches!(self.kind, Kind::Telnet | Kind::Plain) {
            return;
        }
        let p = std::mem::take(&mut self.partial.server);
        if lower(&p.kept).contains("password") {
            self.password_prompt = true;
        }
        out.line(at, Dir::Server, &escape(&p.kept), p.len);
    }

    /// One complete line (with its end) of `dir`, `len` bytes on the wire.
    fn line(&mut self, dir: Dir, at: Fref, kept: &[u8], len: usize, out: &mut Out) {
        let body = trim_end(kept);
        if self.kind == Kind::Plain && binary(body) {
            // Not text (an SSH key exchange, another encrypted protocol): the rest
            // of this direction is only counted.
            *self.body.get_mut(dir) = Body::Rest;
            *self.body_bytes.get_mut(dir) += len as u64;
            return;
        }
        let whole = match dir {
            Dir::Client => self.client_line(body),
            Dir::Server => self.server_line(body),
        };
        if self.kind == Kind::Http {
            self.http_framing(dir, body);
        }
        let mark = self.mark(dir, &whole);
        let mut shown = cut(&whole, MAX_SHOWN).into_owned();
        if len > kept.len() {
            shown.push_str(&format!(" [line of {len} bytes, cut]"));
        }
        shown.push_str(&mark);
        out.line(at, dir, &shown, len);
    }

    /// What to add to a line of `dir` sent after the upgrade request (client) or
    /// its go-ahead (server), where TLS should have begun.
    fn mark(&mut self, dir: Dir, shown: &str) -> String {
        let (anchor, injected) = match dir {
            Dir::Client => (&self.marks.command, self.marks.injection),
            Dir::Server => (&self.marks.reply, self.marks.response_injection),
        };
        if *self.after.get(dir) {
            return if injected {
                "   <- plaintext where TLS should begin".to_string()
            } else {
                String::new()
            };
        }
        if anchor.as_deref() == Some(shown) {
            *self.after.get_mut(dir) = true;
        }
        String::new()
    }

    fn server_line(&mut self, line: &[u8]) -> String {
        if self.auth && !self.continues(line) {
            self.auth = false;
        }
        if matches!(self.kind, Kind::Telnet | Kind::Plain) && lower(line).contains("password") {
            self.password_prompt = true;
        }
        match self.kind {
            Kind::Http => http_header(line, self.show_users).unwrap_or_else(|| escape(line)),
            _ => escape(line),
        }
    }

    /// A server line that goes on with an authentication exchange (a challenge).
    fn continues(&self, line: &[u8]) -> bool {
        match self.kind {
            Kind::Smtp => line.starts_with(b"334"),
            Kind::Imap | Kind::Pop3 => line == b"+" || line.starts_with(b"+ "),
            Kind::Nntp => line.starts_with(b"383"),
            Kind::Sieve => line.starts_with(b"\"") || line.starts_with(b"{"),
            Kind::Irc => upper(line).contains("AUTHENTICATE"),
            Kind::Xmpp => lower(line).starts_with("<challenge"),
            _ => false,
        }
    }

    fn client_line(&mut self, line: &[u8]) -> String {
        if self.password_prompt {
            self.password_prompt = false;
            return redacted("password", line.len());
        }
        if self.kind == Kind::Xmpp {
            return self.xmpp_item(line);
        }
        if self.auth {
            return redacted("credentials", line.len());
        }
        let words = Words::new(line);
        let shown = match self.kind {
            Kind::Smtp => self.sasl(&words, 0, "AUTH"),
            Kind::Pop3 => self.pop3(&words),
            Kind::Imap => self.imap(&words),
            Kind::Ftp => self.user_pass(&words, 0, &["PASS", "ACCT"]),
            Kind::Nntp => self.nntp(&words),
            Kind::Sieve => self.sasl(&words, 0, "AUTHENTICATE"),
            Kind::Irc => self.irc(&words),
            Kind::Http => http_header(line, self.show_users),
            Kind::Telnet | Kind::Plain | Kind::Xmpp => None,
        };
        shown.unwrap_or_else(|| escape(line))
    }

    /// `AUTH MECH [initial response]` (the verb at word `at`): the mechanism is
    /// shown, the response redacted, and the exchange that follows is secret.
    fn sasl(&mut self, w: &Words<'_>, at: usize, verb: &str) -> Option<String> {
        if w.upper(at).is_none_or(|v| v != verb) {
            return None;
        }
        self.auth = true;
        let head = w.up_to(at + 2);
        Some(if w.len() > at + 2 {
            format!("{head} {}", redacted("credentials", w.rest_len(at + 2)))
        } else {
            head
        })
    }

    /// `USER name` (shown with `--show-users`), and verbs whose argument is a secret.
    fn user_pass(&mut self, w: &Words<'_>, at: usize, secret: &[&str]) -> Option<String> {
        let verb = w.upper(at)?;
        if verb == "USER" {
            return Some(self.user(w, at + 1));
        }
        if secret.contains(&verb.as_str()) {
            return Some(format!(
                "{} {}",
                w.up_to(at + 1),
                redacted("password", w.rest_len(at + 1))
            ));
        }
        None
    }

    /// The words up to `at`, then the user at `at` (shown only with
    /// `--show-users`), the rest redacted.
    fn user(&self, w: &Words<'_>, at: usize) -> String {
        let head = w.up_to(at);
        match (self.show_users, w.word(at)) {
            (true, Some(u)) if w.len() == at + 1 => format!("{head} {}", escape(u)),
            (true, Some(u)) => format!(
                "{head} {} {}",
                escape(u),
                redacted("password", w.rest_len(at + 1))
            ),
            _ => format!("{head} {}", redacted("user", w.rest_len(at))),
        }
    }

    fn pop3(&mut self, w: &Words<'_>) -> Option<String> {
        match w.upper(0)?.as_str() {
            "APOP" => Some(self.user(w, 1)),
            "AUTH" => self.sasl(w, 0, "AUTH"),
            _ => self.user_pass(w, 0, &["PASS"]),
        }
    }

    fn imap(&mut self, w: &Words<'_>) -> Option<String> {
        match w.upper(1)?.as_str() {
            "LOGIN" => Some(self.user(w, 2)),
            "AUTHENTICATE" => self.sasl(w, 1, "AUTHENTICATE"),
            _ => None,
        }
    }

    fn nntp(&mut self, w: &Words<'_>) -> Option<String> {
        if w.upper(0).is_none_or(|v| v != "AUTHINFO") {
            return None;
        }
        match w.upper(1)?.as_str() {
            "SASL" => self.sasl(w, 1, "SASL"),
            _ => self.user_pass(w, 1, &["PASS"]),
        }
    }

    fn irc(&mut self, w: &Words<'_>) -> Option<String> {
        let verb = w.upper(0)?;
        match verb.as_str() {
            "PASS" => Some(format!("PASS {}", redacted("password", w.rest_len(1)))),
            "OPER" => Some(self.user(w, 1)),
            "AUTHENTICATE" => {
                let mech = w.upper(1).unwrap_or_default();
                if mech == "PLAIN" || mech == "EXTERNAL" || mech.starts_with("SCRAM") {
                    Some(w.up_to(2))
                } else {
                    Some(format!(
                        "AUTHENTICATE {}",
                        redacted("credentials", w.rest_len(1))
                    ))
                }
            }
            "PRIVMSG" | "NOTICE" if upper(w.line).contains("IDENTIFY") => Some(format!(
                "{} {}",
                w.up_to(2),
                redacted("password", w.rest_len(2))
            )),
            "NICKSERV" | "NS" => Some(format!("{verb} {}", redacted("password", w.rest_len(1)))),
            _ => None,
        }
    }

    /// One XMPP tag, with the text before it: the text of an element that holds
    /// credentials (`auth`, `response`, `password`, `digest`, and `username`
    /// without `--show-users`) is redacted.
    fn xmpp_item(&mut self, item: &[u8]) -> String {
        let lt = item.iter().position(|&b| b == b'<').unwrap_or(item.len());
        let (text, tag) = item.split_at(lt);
        let text_shown = if self.xmpp_secret && !text.iter().all(u8::is_ascii_whitespace) {
            redacted("credentials", text.len())
        } else {
            escape(text)
        };
        let name = lower(tag);
        let name = name
            .trim_start_matches('<')
            .split([' ', '>', '/'])
            .next()
            .unwrap_or_default()
            .to_string();
        let opening = !tag.starts_with(b"</") && !tag.ends_with(b"/>");
        self.xmpp_secret = opening
            && matches!(name.as_str(), "auth" | "response" | "password" | "digest")
            || (opening && name == "username" && !self.show_users);
        format!("{text_shown}{}", escape(tag))
    }

    /// Reads an HTTP header block of `dir` for how its body is framed.
    fn http_framing(&mut self, dir: Dir, line: &[u8]) {
        if *self.body.get(dir) == Body::ChunkSize {
            let hex = String::from_utf8_lossy(line);
            let size = u64::from_str_radix(hex.trim().split(';').next().unwrap_or_default(), 16);
            *self.body.get_mut(dir) = match size {
                Ok(0) => Body::None,
                Ok(n) => Body::Chunk(n + 2),
                Err(_) => Body::Rest,
            };
            return;
        }
        let l = lower(line);
        if line.is_empty() {
            *self.body.get_mut(dir) = std::mem::take(self.framing.get_mut(dir));
        } else if let Some(v) = l.strip_prefix("content-length:") {
            if let Ok(n) = v.trim().parse::<u64>() {
                *self.framing.get_mut(dir) = if n == 0 { Body::None } else { Body::Length(n) };
            }
        } else if l.starts_with("transfer-encoding:") && l.contains("chunked") {
            *self.framing.get_mut(dir) = Body::ChunkSize;
        }
    }

    /// The end of the flow: unfinished lines are shown as they are.
    pub fn finish(&mut self, at: Fref, out: &mut Out) {
        for dir in [Dir::Client, Dir::Server] {
            if *self.body_bytes.get(dir) > 0 {
                self.end_body(dir, at, out);
            }
            let p = std::mem::take(self.partial.get_mut(dir));
            if !p.kept.is_empty() {
                self.line(dir, at, &p.kept, p.len, out);
            }
        }
    }
}

/// More than a quarter of the bytes are neither printable ASCII nor white space.
fn binary(line: &[u8]) -> bool {
    let odd = line
        .iter()
        .filter(|&&b| !(b.is_ascii_graphic() || b == b' ' || b == b'\t'))
        .count();
    odd * 4 > line.len()
}

/// `[what redacted, N bytes]`.
fn redacted(what: &str, len: usize) -> String {
    format!("[{what} redacted, {len} bytes]")
}

/// An HTTP header line whose value is a credential or a session secret
/// (`Authorization`, `Proxy-Authorization`: the scheme is shown; `Cookie`,
/// `Set-Cookie`): the value redacted.
fn http_header(line: &[u8], _show_users: bool) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = line.split_at(colon);
    let lname = lower(name);
    let value = value.get(1..).unwrap_or_default();
    match lname.trim() {
        "authorization" | "proxy-authorization" => {
            let v = Words::new(value);
            Some(format!(
                "{}: {} {}",
                escape(name),
                v.word(0).map(escape).unwrap_or_default(),
                redacted("credentials", v.rest_len(1))
            ))
        }
        "cookie" | "set-cookie" => Some(format!(
            "{}: {}",
            escape(name),
            redacted("cookie", value.len())
        )),
        _ => None,
    }
}

fn escape(b: &[u8]) -> String {
    escape_wire(b, b.len())
}

fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

fn upper(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_uppercase()
}

fn trim_end(b: &[u8]) -> &[u8] {
    let mut end = b.len();
    while end > 0 && matches!(b.get(end - 1), Some(b'\n' | b'\r')) {
        end -= 1;
    }
    b.get(..end).unwrap_or_default()
}

/// A line's words (split at spaces), to show some and redact the rest.
struct Words<'l> {
    line: &'l [u8],
    /// (start, end) of each word.
    spans: Vec<(usize, usize)>,
}

impl<'l> Words<'l> {
    fn new(line: &'l [u8]) -> Self {
        let mut spans = Vec::new();
        let mut start = None;
        for (i, &b) in line.iter().enumerate() {
            match (b == b' ' || b == b'\t', start) {
                (true, Some(s)) => {
                    spans.push((s, i));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            spans.push((s, line.len()));
        }
        Words { line, spans }
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn word(&self, i: usize) -> Option<&'l [u8]> {
        let &(s, e) = self.spans.get(i)?;
        self.line.get(s..e)
    }

    fn upper(&self, i: usize) -> Option<String> {
        self.word(i).map(upper)
    }

    /// The line up to the end of word `n - 1` (escaped).
    fn up_to(&self, n: usize) -> String {
        let end = match n.checked_sub(1).and_then(|i| self.spans.get(i)) {
            Some(&(_, e)) => e,
            None => 0,
        };
        escape(self.line.get(..end).unwrap_or_default())
    }

    /// Bytes from word `i` to the end of the line.
    fn rest_len(&self, i: usize) -> usize {
        self.spans.get(i).map_or(0, |&(s, _)| self.line.len() - s)
    }
}

fn telnet_command(c: u8) -> String {
    match c {
        251 => "WILL".into(),
        252 => "WONT".into(),
        253 => "DO".into(),
        254 => "DONT".into(),
        241 => "NOP".into(),
        242 => "DM".into(),
        243 => "BRK".into(),
        244 => "IP".into(),
        245 => "AO".into(),
        246 => "AYT".into(),
        247 => "EC".into(),
        248 => "EL".into(),
        249 => "GA".into(),
        n => n.to_string(),
    }
}

fn telnet_option(o: u8) -> String {
    match o {
        0 => "BINARY".into(),
        1 => "ECHO".into(),
        3 => "SUPPRESS-GO-AHEAD".into(),
        5 => "STATUS".into(),
        24 => "TERMINAL-TYPE".into(),
        31 => "NAWS".into(),
        32 => "TERMINAL-SPEED".into(),
        33 => "TOGGLE-FLOW-CONTROL".into(),
        34 => "LINEMODE".into(),
        35 => "X-DISPLAY-LOCATION".into(),
        36 => "ENVIRON".into(),
        37 => "AUTHENTICATION".into(),
        38 => "ENCRYPT".into(),
        39 => "NEW-ENVIRON".into(),
        46 => "START_TLS".into(),
        n => n.to_string(),
    }
}

/// `IAC SB option ... IAC SE`: START_TLS FOLLOWS by name; other options by name,
/// their bytes left out (NEW-ENVIRON can carry a user name).
fn subnegotiation(v: &[u8]) -> String {
    match v {
        [46, 1, ..] => "IAC SB START_TLS FOLLOWS IAC SE".to_string(),
        [o, ..] => format!(
            "IAC SB {} ({} bytes) IAC SE",
            telnet_option(*o),
            v.len() - 1
        ),
        [] => "IAC SB IAC SE".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: Kind, show_users: bool, dialogue: &[(Dir, &[u8])]) -> String {
        let mut t = Text::new(kind, show_users, Marks::default());
        let mut out = Out::new(0);
        for (i, (dir, bytes)) in dialogue.iter().enumerate() {
            let at = Fref {
                input: 0,
                number: i as u64 + 1,
            };
            // Byte by byte: lines are cut where their end arrives, whatever the segments.
            for b in bytes.iter() {
                t.data(*dir, at, std::slice::from_ref(b), &mut out);
            }
        }
        t.finish(
            Fref {
                input: 0,
                number: 99,
            },
            &mut out,
        );
        out.text
    }

    #[test]
    fn sasl_exchanges_show_the_mechanism_and_never_the_secret() {
        let text = run(
            Kind::Smtp,
            false,
            &[
                (Dir::Server, b"220 mx ESMTP\r\n"),
                (Dir::Client, b"AUTH LOGIN\r\n"),
                (Dir::Server, b"334 VXNlcm5hbWU6\r\n"),
                (Dir::Client, b"YWxpY2U=\r\n"),
                (Dir::Server, b"334 UGFzc3dvcmQ6\r\n"),
                (Dir::Client, b"UzNjcmV0\r\n"),
                (Dir::Server, b"235 ok\r\n"),
                (Dir::Client, b"AUTH PLAIN AGFsaWNlAFMzY3JldA==\r\n"),
                (Dir::Server, b"235 ok\r\n"),
                (Dir::Client, b"MAIL FROM:<a@b>\r\n"),
            ],
        );
        assert!(text.contains("C  AUTH LOGIN\n"), "{text}");
        assert!(
            !text.contains("YWxpY2U") && !text.contains("UzNjcmV0"),
            "{text}"
        );
        assert!(!text.contains("AGFsaWNl"), "{text}");
        assert!(
            text.contains("AUTH PLAIN [credentials redacted, 20 bytes]"),
            "{text}"
        );
        assert!(text.contains("C  MAIL FROM:<a@b>"), "{text}");
    }

    #[test]
    fn users_only_with_show_users_passwords_never() {
        let dialogue: &[(Dir, &[u8])] = &[
            (Dir::Client, b"USER alice\r\n"),
            (Dir::Client, b"PASS S3cret\r\n"),
            (Dir::Client, b"a1 LOGIN bob Hunter2\r\n"),
        ];
        let hidden = run(Kind::Pop3, false, dialogue);
        assert!(
            !hidden.contains("alice") && !hidden.contains("S3cret"),
            "{hidden}"
        );
        let shown = run(Kind::Pop3, true, dialogue);
        assert!(
            shown.contains("USER alice") && !shown.contains("S3cret"),
            "{shown}"
        );
        let imap = run(Kind::Imap, true, &dialogue[2..]);
        assert!(imap.contains("a1 LOGIN bob [password redacted"), "{imap}");
        assert!(!imap.contains("Hunter2"), "{imap}");
    }

    #[test]
    fn http_credentials_and_bodies_are_not_shown() {
        let text = run(
            Kind::Http,
            false,
            &[
                (
                    Dir::Client,
                    b"POST /login HTTP/1.1\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\nContent-Length: 13\r\n\r\npassword=s3cr",
                ),
                (Dir::Client, b"\r\n"),
                (Dir::Server, b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            ],
        );
        assert!(
            text.contains("Authorization: Basic [credentials redacted"),
            "{text}"
        );
        assert!(
            !text.contains("YWxpY2U6") && !text.contains("s3cr") && !text.contains("sid=abc"),
            "{text}"
        );
        assert!(text.contains("[body: 13 bytes, not shown]"), "{text}");
        assert!(!text.contains("hello"), "{text}");
    }

    #[test]
    fn telnet_commands_are_named_and_a_prompted_password_hidden() {
        let text = run(
            Kind::Telnet,
            false,
            &[
                (Dir::Server, &[255, 253, 46]),
                (Dir::Client, &[255, 251, 46, 255, 250, 46, 1, 255, 240]),
                (Dir::Server, b"login: "),
                (Dir::Client, b"alice\r\n"),
                (Dir::Server, b"Password: "),
                (Dir::Client, b"Tr0ub4dor\r\n"),
            ],
        );
        assert!(text.contains("S  IAC DO START_TLS"), "{text}");
        assert!(
            text.contains("C  IAC SB START_TLS FOLLOWS IAC SE"),
            "{text}"
        );
        assert!(text.contains("S  Password: "), "{text}");
        assert!(!text.contains("Tr0ub4dor"), "{text}");
    }

    #[test]
    fn xmpp_sasl_text_is_redacted_tag_by_tag() {
        let text = run(
            Kind::Xmpp,
            false,
            &[(
                Dir::Client,
                b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHMzY3JldA==</auth>",
            )],
        );
        assert!(text.contains("mechanism='PLAIN'>"), "{text}");
        assert!(!text.contains("AGFsaWNl"), "{text}");
    }

    #[test]
    fn binary_data_is_counted_not_shown() {
        let text = run(
            Kind::Plain,
            false,
            &[
                (Dir::Server, b"SSH-2.0-OpenSSH_9.2\r\n"),
                (
                    Dir::Server,
                    &[0, 0, 4, 0x1c, 6, 20, 0xde, 0xad, 0xbe, 0xef, b'\n', 1, 2, 3],
                ),
            ],
        );
        assert!(text.contains("S  SSH-2.0-OpenSSH_9.2\n"), "{text}");
        assert!(
            text.contains("[14 bytes of binary data, not shown]"),
            "{text}"
        );
        assert!(!text.contains("\\xde"), "{text}");
    }

    #[test]
    fn control_bytes_are_escaped_and_long_lines_cut() {
        let mut long = b"A".repeat(10_000);
        long.extend(b"\x1b[31m\r\n");
        let text = run(Kind::Plain, false, &[(Dir::Client, &long)]);
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains("[line of 10007 bytes, cut]") || text.contains("..."),
            "{text}"
        );
        assert!(text.len() < 1000, "{}", text.len());
    }
}
