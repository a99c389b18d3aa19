//! The protected TLS 1.3 handshake records of one connection over TCP, opened with
//! the handshake traffic secrets of its key log entry, one direction at a time,
//! until that direction's Finished. Records after it (application data, tickets)
//! are never collected nor opened.
//!
//! A client that offered early data may send 0-RTT records first, which the
//! handshake keys do not open: up to [`MAX_EARLY_RECORDS`] of them are skipped
//! unread. Any other record that does not open ends that direction: the keys
//! do not match when it was the first one.

use super::decrypt::{Cipher, RecordKeys};
use crate::keylog::HandshakeSecrets;
use crate::record::{Dir, PerDir};

/// The random of a ClientHello body (after its two version bytes).
pub fn client_random(body: &[u8]) -> Option<[u8; 32]> {
    body.get(2..34)?.try_into().ok()
}

/// Records of a client that offered early data skipped before its handshake records.
pub const MAX_EARLY_RECORDS: u32 = 64;

/// Where one direction stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// No secret for this direction.
    #[default]
    Absent,
    /// Protected handshake records are opened as they come.
    Reading,
    /// Its Finished was read: nothing more is opened.
    Finished,
    /// A record did not open (or a hole in the stream): nothing more is tried.
    Stopped,
}

#[derive(Debug, Default)]
struct Side {
    keys: Option<RecordKeys>,
    phase: Phase,
    seq: u64,
    /// The record being collected: its header (the AAD) and its body.
    aad: [u8; 5],
    record: Vec<u8>,
    /// The record being collected is wanted (a protected record while reading).
    collecting: bool,
    opened: u64,
    skipped: u32,
}

/// What closing a record gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Opened {
    /// Nothing was being collected for this direction.
    Nothing,
    /// The inner content type and plaintext.
    Plain(u8, Vec<u8>),
    /// Early data skipped unread.
    Skipped,
    /// The record did not open; `first` when nothing of this direction ever had:
    /// the keys do not match.
    Failed { first: bool },
}

/// Handshake decryption state of one connection.
#[derive(Debug)]
pub struct Unseal {
    side: PerDir<Side>,
    /// The client offered early data: its first records may be 0-RTT.
    early_data: bool,
    /// A secret gave no keys (the wrong length for the suite's hash).
    bad_secret: bool,
}

impl Unseal {
    /// Keys for the directions `secrets` covers, for the suite `suite`. `None`
    /// when the suite is not a TLS 1.3 AEAD known here; a secret that gives no
    /// keys (the wrong length for the suite's hash) leaves its side stopped.
    pub fn new(suite: u16, secrets: &HandshakeSecrets, early_data: bool) -> Option<Unseal> {
        let cipher = Cipher::of(suite)?;
        let mut bad_secret = false;
        let mut side = |s: Option<crate::keylog::Secret>| match s {
            None => Side::default(),
            Some(s) => match RecordKeys::tls(cipher, s.as_bytes()) {
                Some(k) => Side {
                    keys: Some(k),
                    phase: Phase::Reading,
                    ..Side::default()
                },
                None => {
                    bad_secret = true;
                    Side {
                        phase: Phase::Stopped,
                        ..Side::default()
                    }
                }
            },
        };
        let side = PerDir {
            client: side(secrets.client),
            server: side(secrets.server),
        };
        Some(Unseal {
            side,
            early_data,
            bad_secret,
        })
    }

    pub fn phase(&self, dir: Dir) -> Phase {
        self.side.get(dir).phase
    }

    /// A direction whose keys were given but could not be made (a secret of the
    /// wrong length): nothing of it will open.
    pub fn unusable(&self) -> bool {
        self.bad_secret
    }

    /// Some direction still reads its handshake.
    pub fn pending(&self) -> bool {
        self.side.client.phase == Phase::Reading || self.side.server.phase == Phase::Reading
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.side.client.record.capacity() + self.side.server.record.capacity()
    }

    /// A protected record of `len` bytes starts in `dir`; `aad` is its header.
    pub fn begin(&mut self, dir: Dir, aad: [u8; 5]) {
        let s = self.side.get_mut(dir);
        s.collecting = s.phase == Phase::Reading;
        s.aad = aad;
        s.record.clear();
    }

    /// Whether the current record of `dir` is being collected.
    pub fn collecting(&self, dir: Dir) -> bool {
        self.side.get(dir).collecting
    }

    /// Bytes of the current record's body.
    pub fn push(&mut self, dir: Dir, bytes: &[u8]) {
        let s = self.side.get_mut(dir);
        if s.collecting {
            s.record.extend_from_slice(bytes);
        }
    }

    /// The current record of `dir` is complete: opens it.
    pub fn end(&mut self, dir: Dir) -> Opened {
        let early = self.early_data && dir == Dir::Client;
        let s = self.side.get_mut(dir);
        if !std::mem::take(&mut s.collecting) {
            return Opened::Nothing;
        }
        let Some(keys) = s.keys.as_ref() else {
            return Opened::Nothing;
        };
        let mut body = std::mem::take(&mut s.record);
        match keys.open(s.seq, &s.aad, &mut body) {
            Some(n) => {
                s.seq += 1;
                s.opened += 1;
                body.truncate(n);
                match super::decrypt::inner_content(&body) {
                    Some((ty, content)) => {
                        let content = content.to_vec();
                        s.record = body;
                        Opened::Plain(ty, content)
                    }
                    None => Opened::Plain(0, Vec::new()),
                }
            }
            None if early && s.opened == 0 && s.skipped < MAX_EARLY_RECORDS => {
                s.skipped += 1;
                s.record = body;
                Opened::Skipped
            }
            None => {
                s.phase = Phase::Stopped;
                s.keys = None;
                Opened::Failed {
                    first: s.opened == 0,
                }
            }
        }
    }

    /// This direction's Finished was read: its keys are dropped.
    pub fn finish(&mut self, dir: Dir) {
        let s = self.side.get_mut(dir);
        if s.phase == Phase::Reading {
            s.phase = Phase::Finished;
        }
        s.keys = None;
        s.record = Vec::new();
        s.collecting = false;
    }

    /// A hole in `dir`: nothing more can be opened there.
    pub fn stop(&mut self, dir: Dir) {
        let s = self.side.get_mut(dir);
        if s.phase == Phase::Reading {
            s.phase = Phase::Stopped;
        }
        s.keys = None;
        s.record = Vec::new();
        s.collecting = false;
    }
}

#[cfg(test)]
mod tests {
    use super::super::decrypt::RecordKeys;
    use super::super::{CT_APPLICATION_DATA, TlsAnalyzer};
    use super::*;
    use crate::keylog::KeyLog;
    use crate::record::{Endpoint, FlowRecord, Note};
    use crate::time::Timestamp;
    use std::sync::Arc;

    const RANDOM: [u8; 32] = [0x42; 32];

    fn rec() -> FlowRecord {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port,
        };
        let mut r = FlowRecord::new(1, Timestamp::default(), ep(40000), ep(443));
        // As the flow engine does: every byte comes in a packet (here, the first).
        r.at = 1;
        r
    }

    fn hs(msg: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![msg];
        m.extend(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend(body);
        m
    }

    fn plain_record(ct: u8, body: &[u8]) -> Vec<u8> {
        let mut r = vec![ct, 3, 3];
        r.extend((body.len() as u16).to_be_bytes());
        r.extend(body);
        r
    }

    fn client_hello(early: bool) -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend(RANDOM);
        b.extend([0, 0, 2, 0x13, 0x02, 1, 0]);
        let mut ext = vec![0, 0x2b, 0, 3, 2, 3, 4];
        if early {
            ext.extend([0, 0x2a, 0, 0]);
        }
        b.extend((ext.len() as u16).to_be_bytes());
        b.extend(ext);
        plain_record(22, &hs(1, &b))
    }

    fn server_hello() -> Vec<u8> {
        let mut b = vec![3, 3];
        b.extend([7; 32]);
        b.extend([0, 0x13, 0x02, 0, 0, 6, 0, 0x2b, 0, 2, 3, 4]);
        plain_record(22, &hs(2, &b))
    }

    /// A protected record of `inner` content type, sealed with `keys` at `seq`.
    fn sealed(keys: &RecordKeys, seq: u64, ct: u8, content: &[u8]) -> Vec<u8> {
        let mut inner = content.to_vec();
        inner.extend([ct, 0, 0]);
        let mut r = vec![CT_APPLICATION_DATA, 3, 3];
        r.extend(((inner.len() + 16) as u16).to_be_bytes());
        let body = keys.seal(seq, &r, &inner).unwrap();
        r.extend(body);
        r
    }

    fn secret(b: u8) -> Vec<u8> {
        vec![b; 48]
    }

    fn keylog() -> Arc<KeyLog> {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let text = format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {c}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {s}\n",
            r = hex(&RANDOM),
            c = hex(&secret(1)),
            s = hex(&secret(2))
        );
        let k = KeyLog::new();
        k.load(text.as_bytes()).unwrap();
        Arc::new(k)
    }

    fn keys(b: u8) -> RecordKeys {
        RecordKeys::tls(Cipher::Aes256Gcm, &secret(b)).unwrap()
    }

    /// A TLS 1.3 handshake (AES-256-GCM) whose client offered early data and
    /// sent two 0-RTT records, then everything after each Finished: a record the
    /// handshake keys would open (it must not be tried) and application data.
    fn transcript(client_last: Vec<u8>) -> Vec<(Dir, Vec<u8>)> {
        let (s, other) = (keys(2), keys(9));
        let ccs = vec![20, 3, 3, 0, 1, 1];
        let mut ee_ext = vec![0, 16, 0, 5, 0, 3, 2, b'h', b'2'];
        ee_ext.extend([0, 42, 0, 0]);
        let mut ee = (ee_ext.len() as u16).to_be_bytes().to_vec();
        ee.extend(ee_ext);
        let der = b"\x30\x03\x02\x01\x05";
        let cert = super::super::handshake13::tests::certificate_body(&[der]);
        let mut flight = server_hello();
        flight.extend(&ccs);
        let mut first = hs(8, &ee);
        first.extend(hs(11, &cert));
        flight.extend(sealed(&s, 0, 22, &first));
        let mut second = hs(15, &[0x08, 0x04, 0, 2, 1, 2]);
        second.extend(hs(20, &[0xf0; 48]));
        flight.extend(sealed(&s, 1, 22, &second));
        // After Finished: the handshake keys would open this (a chain of two), but
        // it is never tried.
        let two = super::super::handshake13::tests::certificate_body(&[der, der]);
        flight.extend(sealed(&s, 2, 22, &hs(11, &two)));
        flight.extend(sealed(&other, 0, 23, b"application data"));
        let mut client = ccs.clone();
        client.extend(sealed(&other, 0, 23, b"early data"));
        client.extend(sealed(&other, 1, 23, b"more early data"));
        client.extend(client_last);
        client.extend(sealed(&other, 2, 23, b"application data"));
        vec![
            (Dir::Client, client_hello(true)),
            (Dir::Server, flight),
            (Dir::Client, client),
        ]
    }

    fn run(t: &[(Dir, Vec<u8>)], split: Option<usize>) -> (FlowRecord, bool) {
        let mut r = rec();
        let mut a = TlsAnalyzer::new();
        a.set_keys(Some(keylog()));
        for (dir, bytes) in t {
            match split {
                Some(at) if at < bytes.len() => {
                    let (x, y) = bytes.split_at(at);
                    a.on_data(*dir, x, &mut r);
                    a.on_data(*dir, y, &mut r);
                }
                _ => a.on_data(*dir, bytes, &mut r),
            }
        }
        let done = a.is_done();
        (r, done)
    }

    #[test]
    fn handshake_read_to_both_finished_and_no_further_split_invariant() {
        let t = transcript(sealed(&keys(1), 0, 22, &hs(20, &[0x0f; 48])));
        let (whole, done) = run(&t, None);
        assert!(done);
        let tls = whole.tls.clone().unwrap();
        assert!(tls.decrypted && tls.established);
        assert_eq!(
            tls.server_hello.as_ref().unwrap().alpn.as_deref(),
            Some("h2")
        );
        let e = tls.encrypted_handshake.clone().unwrap();
        assert_eq!(e.finished, vec![Dir::Server, Dir::Client]);
        assert_eq!(e.server_signature.as_deref(), Some("rsa_pss_rsae_sha256"));
        assert_eq!(tls.certificates.len(), 1);
        assert!(!whole.has_note(Note::KeysMismatch), "{:?}", whole.notes);
        let want = serde_json::to_value(&whole).unwrap();
        let longest = t.iter().map(|(_, b)| b.len()).max().unwrap();
        for at in 1..longest {
            let (r, _) = run(&t, Some(at));
            assert_eq!(serde_json::to_value(&r).unwrap(), want, "split at {at}");
        }
    }

    #[test]
    fn an_encrypted_alert_is_read() {
        let t = transcript(sealed(&keys(1), 0, 21, &[2, 48]));
        let (r, done) = run(&t, None);
        assert!(done);
        let tls = r.tls.unwrap();
        assert_eq!(tls.alerts.len(), 1);
        assert_eq!(tls.alerts[0].description, "unknown_ca");
        assert_eq!(tls.alerts[0].from, Dir::Client);
    }

    #[test]
    fn wrong_keys_and_holes() {
        // The server's first protected record does not open: the note, and no more tries.
        let t = transcript(sealed(&keys(1), 0, 22, &hs(20, &[0x0f; 48])));
        let k = KeyLog::new();
        let text = format!(
            "SERVER_HANDSHAKE_TRAFFIC_SECRET {} {}\n",
            "42".repeat(32),
            "03".repeat(48)
        );
        k.load(text.as_bytes()).unwrap();
        let mut r = rec();
        let mut a = TlsAnalyzer::new();
        a.set_keys(Some(Arc::new(k)));
        for (dir, bytes) in &t {
            a.on_data(*dir, bytes, &mut r);
        }
        assert!(r.has_note(Note::KeysMismatch));
        assert!(r.tls.as_ref().unwrap().certificates.is_empty());
        assert!(a.is_done());
        // A hole in the server's protected handshake: noted, the rest not read.
        let mut r = rec();
        let mut a = TlsAnalyzer::new();
        a.set_keys(Some(keylog()));
        a.on_data(Dir::Client, &t[0].1, &mut r);
        // Into the first protected record of the server's flight.
        a.on_data(
            Dir::Server,
            &t[1].1[..server_hello().len() + 6 + 20],
            &mut r,
        );
        a.on_gap(Dir::Server, 10, &mut r);
        assert!(r.has_note(Note::HandshakeGap), "{:?}", r.notes);
        assert!(!r.has_note(Note::KeysMismatch));
    }

    /// The fuzz target's idea in-process: mutated handshake plaintext, sealed with
    /// the right keys, in records cut anywhere: never a panic, never an unbounded
    /// buffer.
    #[test]
    fn mutated_sealed_handshakes_never_panic() {
        let der = b"\x30\x03\x02\x01\x05";
        let cert = super::super::handshake13::tests::certificate_body(&[der, der]);
        let mut seeds = vec![hs(8, &[0, 9, 0, 16, 0, 5, 0, 3, 2, b'h', b'2'])];
        seeds.push(hs(11, &cert));
        seeds.push(hs(13, &[0, 0, 10, 0, 13, 0, 6, 0, 4, 8, 4, 4, 3]));
        seeds.push(hs(15, &[8, 4, 0, 2, 1, 2]));
        seeds.push(hs(25, &[0, 2, 0, 0, 20, 0, 0, 3, 0x0b, 0x09, 0x80]));
        seeds.push(hs(20, &[0; 48]));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..1500 {
            let mut r = rec();
            let mut a = TlsAnalyzer::new();
            a.set_keys(Some(keylog()));
            a.on_data(Dir::Client, &client_hello(next() & 1 == 0), &mut r);
            a.on_data(Dir::Server, &server_hello(), &mut r);
            let (s, c) = (keys(2), keys(1));
            let mut seq = (0, 0);
            for _ in 0..(next() % 6 + 1) {
                let mut m: Vec<u8> = seeds[(next() % 6) as usize].clone();
                for _ in 0..(next() % 4) {
                    let i = (next() as usize) % m.len();
                    match next() % 3 {
                        0 => m[i] = next() as u8,
                        1 => m.truncate(i.max(1)),
                        _ => m.extend((0..next() % 40).map(|_| next() as u8)),
                    }
                }
                let client = next() % 4 == 0;
                let (k, n, dir) = if client {
                    (&c, &mut seq.0, Dir::Client)
                } else {
                    (&s, &mut seq.1, Dir::Server)
                };
                let ct = [22, 22, 22, 21, 23][(next() % 5) as usize];
                let rec_bytes = sealed(k, *n, ct, &m);
                *n += 1;
                let at = (next() as usize) % rec_bytes.len();
                a.on_data(dir, &rec_bytes[..at], &mut r);
                a.on_data(dir, &rec_bytes[at..], &mut r);
            }
            assert!(a.heap_bytes() < 1 << 20);
            serde_json::to_string(&r).unwrap();
        }
    }

    #[test]
    fn no_keys_no_change() {
        let t = transcript(sealed(&keys(1), 0, 22, &hs(20, &[0x0f; 48])));
        let mut r = rec();
        let mut a = TlsAnalyzer::new();
        for (dir, bytes) in &t {
            a.on_data(*dir, bytes, &mut r);
        }
        let tls = r.tls.unwrap();
        assert!(!tls.decrypted && tls.encrypted_handshake.is_none());
        assert!(tls.certificates.is_empty() && tls.established);
        // Keys for another connection: looked up, not found, nothing changes.
        let other = KeyLog::new();
        let text = format!(
            "SERVER_HANDSHAKE_TRAFFIC_SECRET {} {}\n",
            "43".repeat(32),
            "02".repeat(48)
        );
        other.load(text.as_bytes()).unwrap();
        let mut r2 = rec();
        let mut a = TlsAnalyzer::new();
        a.set_keys(Some(Arc::new(other)));
        for (dir, bytes) in &t {
            a.on_data(*dir, bytes, &mut r2);
        }
        assert!(r2.notes.is_empty(), "{:?}", r2.notes);
        assert!(!r2.tls.unwrap().decrypted);
    }
}
