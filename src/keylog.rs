//! The TLS 1.3 handshake secrets a run holds: NSS key log files (`--keylog`,
//! the `SSLKEYLOGFILE` format browsers, curl, OpenSSL, Python, Go and aioquic
//! write) and the key logs a pcapng carries in Decryption Secrets Blocks.
//!
//! Only the two handshake traffic secrets of each connection are kept, keyed by
//! its ClientHello random: they open the encrypted handshake and nothing after
//! it. Secrets never leave this module except to derive record keys; nothing
//! here prints, logs or serialises them (`Debug` shows counts only).
//!
//! Shared by the reader (which adds the secrets of a Decryption Secrets Block
//! before handing on the packets after it) and the flow engines (which look a
//! connection up once, at its TLS 1.3 ServerHello).

use rustc_hash::FxHashMap;
use std::io::BufRead;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Most connections whose secrets are kept; lines for more are counted and dropped.
pub const MAX_KEYLOG_CONNECTIONS: usize = 1 << 21;
/// Longest secret accepted (SHA-384 suites: 48 bytes).
pub const MAX_SECRET_LEN: usize = 48;
/// Longest key log line read; a longer one is malformed.
pub const MAX_LINE_LEN: usize = 1024;
/// The `secrets_type` of a pcapng Decryption Secrets Block holding a TLS key log.
pub const DSB_TLS_KEY_LOG: u32 = 0x544c_534b;

/// One traffic secret. Its bytes are never shown.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    len: u8,
    bytes: [u8; MAX_SECRET_LEN],
}

impl Secret {
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    fn from_hex(hex: &[u8]) -> Option<Secret> {
        let len = hex.len() / 2;
        if !hex.len().is_multiple_of(2) || len == 0 || len > MAX_SECRET_LEN {
            return None;
        }
        let mut s = Secret {
            len: u8::try_from(len).ok()?,
            bytes: [0; MAX_SECRET_LEN],
        };
        decode_hex(hex, s.bytes.get_mut(..len)?)?;
        Some(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// The handshake traffic secrets of one connection, as far as logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandshakeSecrets {
    pub client: Option<Secret>,
    pub server: Option<Secret>,
}

/// What loading one key log did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Lines whose secrets were kept.
    pub used: u64,
    /// Lines that are not key log lines (wrong field count, bad hex, too long).
    pub malformed: u64,
    /// Good lines dropped because the table held [`MAX_KEYLOG_CONNECTIONS`].
    pub over_cap: u64,
}

impl LoadStats {
    pub fn add(&mut self, o: LoadStats) {
        self.used += o.used;
        self.malformed += o.malformed;
        self.over_cap += o.over_cap;
    }

    /// The one warning this load deserves, if any, naming `what` (a file).
    pub fn warning(&self, what: &str) -> Option<String> {
        let mut parts = Vec::new();
        if self.malformed > 0 {
            parts.push(format!("{} malformed lines ignored", self.malformed));
        }
        if self.over_cap > 0 {
            parts.push(format!(
                "{} lines past the cap of {MAX_KEYLOG_CONNECTIONS} connections dropped",
                self.over_cap
            ));
        }
        (!parts.is_empty()).then(|| format!("{what}: key log: {}", parts.join(", ")))
    }
}

/// The labels kept; every other label is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    ClientHandshake,
    ServerHandshake,
}

fn label(l: &[u8]) -> Option<Label> {
    match l {
        b"CLIENT_HANDSHAKE_TRAFFIC_SECRET" => Some(Label::ClientHandshake),
        b"SERVER_HANDSHAKE_TRAFFIC_SECRET" => Some(Label::ServerHandshake),
        _ => None,
    }
}

/// What one key log line says.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// Blank, a comment, or a label not needed.
    Skip,
    Malformed,
    Keep(Label, [u8; 32], Secret),
}

/// Reads one line (without its end of line): `LABEL <client random hex> <secret hex>`.
fn parse_line(line: &[u8]) -> Line {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.first() == Some(&b'#') || line.iter().all(u8::is_ascii_whitespace) {
        return Line::Skip;
    }
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let (Some(l), Some(random), Some(secret), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Line::Malformed;
    };
    // Lines of other labels are not read further.
    let Some(l) = label(l) else {
        return Line::Skip;
    };
    let mut r = [0u8; 32];
    if random.len() != 64 || decode_hex(random, &mut r).is_none() {
        return Line::Malformed;
    }
    match Secret::from_hex(secret) {
        Some(secret) => Line::Keep(l, r, secret),
        None => Line::Malformed,
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `hex` (exactly twice `out`'s length) into `out`.
fn decode_hex(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *o = nibble(*hi)? << 4 | nibble(*lo)?;
    }
    Some(())
}

type Table = FxHashMap<[u8; 32], HandshakeSecrets>;

/// The run's key table.
#[derive(Default)]
pub struct KeyLog {
    table: RwLock<Table>,
    /// Set once any secret is held: until then flows carry no reference to the table.
    any: AtomicBool,
}

impl std::fmt::Debug for KeyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyLog({} connections)", self.len())
    }
}

impl KeyLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any secret is held (cheap: one atomic load).
    pub fn has_any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Connections held.
    pub fn len(&self) -> usize {
        self.table.read().map(|t| t.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The handshake secrets logged for the connection whose ClientHello carried `random`.
    pub fn lookup(&self, random: &[u8; 32]) -> Option<HandshakeSecrets> {
        if !self.has_any() {
            return None;
        }
        self.table.read().ok()?.get(random).copied()
    }

    /// Reads the key log file at `path`.
    pub fn load_file(&self, path: &str) -> Result<LoadStats, String> {
        let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
        self.load(std::io::BufReader::with_capacity(1 << 20, file))
            .map_err(|e| format!("{path}: {e}"))
    }

    /// Reads a key log from `input`, line by line.
    pub fn load(&self, mut input: impl BufRead) -> std::io::Result<LoadStats> {
        let mut table = self
            .table
            .write()
            .map_err(|_| std::io::Error::other("key table poisoned"))?;
        let mut stats = LoadStats::default();
        // The start of a line the buffer cut; `None` while skipping a line too long.
        let mut carry: Option<Vec<u8>> = Some(Vec::new());
        loop {
            let buf = input.fill_buf()?;
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            let mut rest = buf;
            while let Some(i) = rest.iter().position(|&b| b == b'\n') {
                let (line, after) = rest.split_at(i);
                rest = after.get(1..).unwrap_or_default();
                match carry.as_mut() {
                    None => carry = Some(Vec::new()),
                    Some(c) if c.is_empty() => stats.add(one_line(&mut table, line)),
                    Some(c) => {
                        c.extend_from_slice(line);
                        stats.add(one_line(&mut table, c));
                        c.clear();
                    }
                }
            }
            if let Some(c) = carry.as_mut() {
                c.extend_from_slice(rest);
                if c.len() > MAX_LINE_LEN {
                    stats.malformed += 1;
                    carry = None;
                }
            }
            input.consume(n);
        }
        if let Some(c) = carry.filter(|c| !c.is_empty()) {
            stats.add(one_line(&mut table, &c));
        }
        self.settle(&table);
        Ok(stats)
    }

    /// Adds the key log text of a Decryption Secrets Block.
    pub fn add_block(&self, secrets_type: u32, data: &[u8]) -> LoadStats {
        if secrets_type != DSB_TLS_KEY_LOG {
            return LoadStats::default();
        }
        let Ok(mut table) = self.table.write() else {
            return LoadStats::default();
        };
        let mut stats = LoadStats::default();
        for line in data.split(|&b| b == b'\n') {
            // A block is padded with zeros to a multiple of four bytes.
            let end = line.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
            stats.add(one_line(&mut table, line.get(..end).unwrap_or_default()));
        }
        self.settle(&table);
        stats
    }

    fn settle(&self, table: &Table) {
        if !table.is_empty() {
            self.any.store(true, Ordering::Release);
        }
    }
}

/// One line of a key log (without its end of line) into the table.
fn one_line(table: &mut Table, line: &[u8]) -> LoadStats {
    if line.len() > MAX_LINE_LEN {
        return LoadStats {
            malformed: 1,
            ..LoadStats::default()
        };
    }
    insert(table, parse_line(line))
}

fn insert(table: &mut Table, line: Line) -> LoadStats {
    let mut stats = LoadStats::default();
    match line {
        Line::Skip => {}
        Line::Malformed => stats.malformed = 1,
        Line::Keep(label, random, secret) => {
            let full = table.len() >= MAX_KEYLOG_CONNECTIONS;
            let entry = match table.get_mut(&random) {
                Some(e) => e,
                None if full => {
                    stats.over_cap = 1;
                    return stats;
                }
                None => table.entry(random).or_default(),
            };
            match label {
                Label::ClientHandshake => entry.client = Some(secret),
                Label::ServerHandshake => entry.server = Some(secret),
            }
            stats.used = 1;
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: &str = "8b0fae885b5d7e4de757c024efddc9b1dcaa8dff90ee3f7b7921fffc2ea0ea3b";

    fn random() -> [u8; 32] {
        let mut r = [0; 32];
        decode_hex(R.as_bytes(), &mut r).unwrap();
        r
    }

    #[test]
    fn lines_kept_skipped_and_malformed() {
        let text = format!(
            "# comment\n\
             \n\
             CLIENT_RANDOM {R} {s48}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {R} {s32}\r\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {R} {s48}\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET {R}\n\
             CLIENT_HANDSHAKE_TRAFFIC_SECRET abcd {s32}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {R} zz{s32}\n\
             SERVER_HANDSHAKE_TRAFFIC_SECRET {R} {s48}00\n\
             garbage",
            s32 = "11".repeat(32),
            s48 = "22".repeat(48),
        );
        let k = KeyLog::new();
        assert!(!k.has_any());
        let stats = k.load(text.as_bytes()).unwrap();
        assert_eq!(
            stats,
            LoadStats {
                used: 2,
                malformed: 5,
                over_cap: 0
            }
        );
        assert!(k.has_any());
        let s = k.lookup(&random()).unwrap();
        assert_eq!(s.server.unwrap().as_bytes(), &[0x11; 32][..]);
        assert_eq!(s.client.unwrap().as_bytes(), &[0x22; 48][..]);
        assert_eq!(k.lookup(&[0; 32]), None);
        assert_eq!(
            stats.warning("k.txt").as_deref(),
            Some("k.txt: key log: 5 malformed lines ignored")
        );
    }

    #[test]
    fn debug_never_shows_secret_bytes() {
        let k = KeyLog::new();
        let line = format!("SERVER_HANDSHAKE_TRAFFIC_SECRET {R} {}\n", "ab".repeat(32));
        k.load(line.as_bytes()).unwrap();
        let s = k.lookup(&random()).unwrap();
        let shown = format!("{k:?} {s:?}");
        assert!(!shown.contains("ab"), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn a_very_long_line_is_one_malformed_line() {
        let mut text = "X".repeat(MAX_LINE_LEN * 5);
        text.push('\n');
        text.push_str(&format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {R} {}\n",
            "01".repeat(32)
        ));
        let k = KeyLog::new();
        let stats = k.load(std::io::BufReader::with_capacity(64, text.as_bytes()));
        assert_eq!(stats.unwrap().malformed, 1);
        assert!(k.lookup(&random()).unwrap().client.is_some());
    }

    #[test]
    fn decryption_secrets_block_text_with_padding() {
        let k = KeyLog::new();
        let mut text = format!("SERVER_HANDSHAKE_TRAFFIC_SECRET {R} {}\n", "33".repeat(32));
        text.push_str("\0\0");
        assert_eq!(k.add_block(0x5747_4b4c, text.as_bytes()).used, 0);
        assert!(!k.has_any());
        assert_eq!(k.add_block(DSB_TLS_KEY_LOG, text.as_bytes()).used, 1);
        assert!(k.lookup(&random()).unwrap().server.is_some());
    }
}
