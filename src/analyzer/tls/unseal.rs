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
