//! What every protocol file is written against: the detector's [`Verdict`], the
//! [`Protocol`] trait and the [`Step`] events it reports, and the [`Cx`] through
//! which it records what it sees. The driver in `mod.rs` and the protocol files
//! both use these; nothing here knows any protocol.

use crate::analyzer::options::Options;
use crate::analyzer::tls::TlsAnalyzer;
use crate::record::frames::first_at;
use crate::record::{CleartextAuth, Dir, Encryption, FlowRecord, ProxyHop, escape_wire};

/// Cleartext credentials recorded per flow.
pub const MAX_AUTH: usize = 16;
/// Longest evidence string kept for a finding.
pub const EVIDENCE: usize = 80;

/// Answer of one protocol's `detect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// This protocol; `swap` when the bytes show the roles are reversed.
    Yes {
        swap: bool,
    },
    /// Could be, need more bytes.
    Maybe,
    No,
}

/// A protocol's detector: first bytes of the client and server sides, and the server port.
pub type DetectFn = fn(&[u8], &[u8], u16) -> Verdict;

/// Makes a protocol's state machine in its initial state.
pub type MakeFn = fn() -> Box<dyn Protocol>;

/// What a protocol state machine reports for the bytes it was given. `at` counts
/// bytes of the slice passed in, up to and including the event (for example the
/// end of the `STARTTLS\r\n` line); the driver passes the rest in a new call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// All bytes consumed; nothing happened yet.
    Continue,
    /// The client asked to upgrade; its bytes after `at` are TLS if the server agrees.
    Requested { at: usize },
    /// The server agreed; its bytes after `at` are TLS (and so are the client's after its request).
    Accepted { at: usize },
    /// The server said no; the dialogue goes on in plaintext.
    Refused { at: usize },
    /// TLS starts after `at` in this direction and at the current offset in the
    /// other, with no answer awaited (MySQL's SSLRequest).
    Upgrade { at: usize },
    /// A proxy tunnel opened and carries something other than TLS: after `at` in
    /// this direction, and from the current offset in the other (or from the end
    /// of the request, when the client's bytes are held), the bytes are those of
    /// a new connection.
    Tunnel { at: usize },
    /// Nothing more to learn from this dialogue (for example the mail transaction began without an upgrade).
    Stop,
}

/// Where a protocol writes what it sees.
pub struct Cx<'a> {
    pub rec: &'a mut FlowRecord,
    pub opts: Options,
    /// For protocols that carry TLS inside their own framing (TDS): feed unwrapped bytes here.
    pub tls: &'a mut TlsAnalyzer,
}

impl Cx<'_> {
    pub fn offered(&mut self) {
        self.rec.starttls_mut().offered = true;
        first_at(&mut self.rec.frames.starttls_offer, self.rec.at);
    }
    pub fn command(&mut self, line: &[u8]) {
        self.rec.starttls_mut().command = Some(escape_wire(line, EVIDENCE));
    }
    pub fn reply(&mut self, line: &[u8]) {
        self.rec.starttls_mut().reply = Some(escape_wire(line, EVIDENCE));
    }
    pub fn stripped(&mut self, evidence: &[u8]) {
        self.rec.starttls_mut().stripped = Some(escape_wire(evidence, EVIDENCE));
        first_at(&mut self.rec.frames.starttls_offer, self.rec.at);
    }
    /// Credentials in the clear: the mechanism, and the user only when asked for. Never the secret.
    pub fn cleartext_auth(&mut self, mechanism: &str, user: Option<&[u8]>) {
        self.credentials(mechanism, user, false);
    }
    /// A password sent as a salted hash before TLS (PostgreSQL MD5): recorded
    /// as `cleartext_auth` is, marked `hashed`.
    pub fn hashed_auth(&mut self, mechanism: &str, user: Option<&[u8]>) {
        self.credentials(mechanism, user, true);
    }
    fn credentials(&mut self, mechanism: &str, user: Option<&[u8]>, hashed: bool) {
        let user = if self.opts.show_users {
            user.map(|u| escape_wire(u, 64))
        } else {
            None
        };
        let entry = CleartextAuth {
            mechanism: mechanism.to_string(),
            user,
            hashed,
        };
        if !self.rec.cleartext_auth.contains(&entry) && self.rec.cleartext_auth.len() < MAX_AUTH {
            self.rec.cleartext_auth.push(entry);
        }
        first_at(&mut self.rec.frames.cleartext_auth, self.rec.at);
    }
    /// The client asked a proxy (`kind`) to open a tunnel to `target` (`host:port`).
    /// A request after a refusal replaces it; a hop that opened stays (a request
    /// inside its tunnel is the next proxy's).
    pub fn proxy(&mut self, kind: &'static str, target: &[u8]) {
        if self.rec.proxy.as_ref().is_some_and(|p| p.established) {
            return;
        }
        self.rec.proxy = Some(ProxyHop {
            kind,
            target: escape_wire(target, EVIDENCE),
            established: false,
        });
    }
    /// The proxy answered the request with success.
    pub fn proxy_established(&mut self) {
        if let Some(p) = &mut self.rec.proxy {
            p.established = true;
        }
    }
    pub fn app(&mut self, name: &str) {
        if self.rec.app_protocol.as_deref() != Some(name) {
            self.rec.app_protocol = Some(name.to_string());
        }
    }
}

/// One plaintext protocol's state machine.
pub trait Protocol: std::fmt::Debug + Send {
    /// In-order bytes of one direction. Returns at the first event.
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step;
    /// A hole in one direction. Most protocols cannot resynchronise.
    fn on_gap(&mut self, _dir: Dir, _cx: &mut Cx<'_>) -> Step {
        Step::Stop
    }
    /// A verdict of the protocol's own that replaces the STARTTLS one at the end
    /// of the flow: RDP Standard Security, PostgreSQL GSSAPI encryption, MSSQL
    /// login-only TLS.
    fn encryption(&self) -> Option<Encryption> {
        None
    }
    /// The dialogue went past the point where an upgrade could come (a
    /// PostgreSQL StartupMessage, a MySQL HandshakeResponse sent in plaintext):
    /// a record closed before the connection was is `plaintext` already.
    fn past_upgrade(&self) -> bool {
        false
    }
}

/// [`MakeFn`] for a machine type whose `Default` is its initial state.
pub fn make<P: Protocol + Default + 'static>() -> Box<dyn Protocol> {
    Box::new(P::default())
}
