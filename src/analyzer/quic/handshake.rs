//! QUIC's Handshake packet number space (RFC 9001 §4, §5), opened with the
//! handshake traffic secrets of the connection's key log entry: the packet keys
//! and header protection they give (AES or ChaCha20 masks), the CRYPTO stream of
//! each direction reassembled, and the TLS 1.3 messages in it read as over TCP
//! (EncryptedExtensions, certificates, CertificateVerify, Finished).
//!
//! Only the Handshake space is ever opened: 0-RTT and 1-RTT packets stay sealed.

use super::crypto::{CryptoStream, Messages};
use super::initial::{SAMPLE_LEN, V2, decode_packet_number};
use super::packet::{Frame, frames};
use crate::analyzer::tls::decrypt::{Cipher, RecordKeys, expand_label};
use crate::analyzer::tls::handshake13::{self, Step};
use crate::analyzer::tls::unseal::Phase;
pub use crate::analyzer::tls::unseal::client_random;
use crate::keylog::HandshakeSecrets;
use crate::record::{Dir, FlowRecord, Note, PerDir};
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};

/// Handshake packets per direction that may fail to open, while none has, before
/// that direction is given up.
pub const MAX_FAILURES: u32 = 8;
/// Decryption buffer kept between packets; a larger one is released after use.
const MAX_SCRATCH_KEPT: usize = 2048;
/// Largest certificate accepted after decompression (as over TCP).
const CERTIFICATE_CAP: usize = crate::analyzer::tls::MAX_CERTIFICATE_LEN;

/// Header protection of one direction (RFC 9001 §5.4.3, §5.4.4).
#[derive(Clone)]
enum Mask {
    Aes128(aes::Aes128),
    Aes256(aes::Aes256),
    ChaCha([u8; 32]),
}

impl Mask {
    fn new(cipher: Cipher, key: &[u8]) -> Option<Mask> {
        Some(match cipher {
            Cipher::Aes256Gcm => Mask::Aes256(aes::Aes256::new_from_slice(key).ok()?),
            Cipher::ChaCha20Poly1305 => Mask::ChaCha(key.try_into().ok()?),
            _ => Mask::Aes128(aes::Aes128::new_from_slice(key).ok()?),
        })
    }

    /// The first five bytes of the mask for a ciphertext sample.
    fn mask(&self, sample: &[u8; SAMPLE_LEN]) -> [u8; 5] {
        let mut out = [0u8; 5];
        match self {
            Mask::Aes128(c) => {
                let mut block = (*sample).into();
                c.encrypt_block(&mut block);
                out.iter_mut().zip(block.iter()).for_each(|(o, b)| *o = *b);
            }
            Mask::Aes256(c) => {
                let mut block = (*sample).into();
                c.encrypt_block(&mut block);
                out.iter_mut().zip(block.iter()).for_each(|(o, b)| *o = *b);
            }
            Mask::ChaCha(key) => {
                let (counter, nonce) = sample.split_at(4);
                let counter = counter
                    .try_into()
                    .map(u32::from_le_bytes)
                    .unwrap_or_default();
                let Ok(nonce) = <[u8; 12]>::try_from(nonce) else {
                    return out;
                };
                let mut c = chacha20::ChaCha20::new(&(*key).into(), &nonce.into());
                c.seek(u64::from(counter) * 64);
                c.apply_keystream(&mut out);
            }
        }
        out
    }
}

/// Packet protection of one direction.
#[derive(Clone)]
struct Keys {
    aead: RecordKeys,
    mask: Mask,
}

impl Keys {
    fn new(cipher: Cipher, secret: &[u8], version: u32) -> Option<Keys> {
        let (key, iv, hp): (&[u8], &[u8], &[u8]) = if version == V2 {
            (b"quicv2 key", b"quicv2 iv", b"quicv2 hp")
        } else {
            (b"quic key", b"quic iv", b"quic hp")
        };
        let aead = RecordKeys::derive(cipher, secret, key, iv)?;
        let mut hp_key = [0u8; 32];
        let hp_key = hp_key.get_mut(..cipher.key_len())?;
        expand_label(cipher, secret, hp, hp_key)?;
        Some(Keys {
            aead,
            mask: Mask::new(cipher, hp_key)?,
        })
    }

    /// Removes header protection and opens the protected long-header packet
    /// `pkt` whose packet number starts at `pn_offset`; the packet number and the
    /// plaintext's range in `scratch`.
    fn open(
        &self,
        pkt: &[u8],
        pn_offset: usize,
        largest: Option<u64>,
        scratch: &mut Vec<u8>,
    ) -> Option<(u64, std::ops::Range<usize>)> {
        let sample: [u8; SAMPLE_LEN] = pkt
            .get(pn_offset + 4..pn_offset + 4 + SAMPLE_LEN)?
            .try_into()
            .ok()?;
        let mask = self.mask.mask(&sample);
        scratch.clear();
        scratch.extend_from_slice(pkt);
        let first = scratch.first_mut()?;
        *first ^= mask[0] & 0x0f;
        let pn_len = usize::from(*first & 0x03) + 1;
        let mut truncated = 0u64;
        for (i, m) in mask.iter().skip(1).take(pn_len).enumerate() {
            let b = scratch.get_mut(pn_offset + i)?;
            *b ^= m;
            truncated = (truncated << 8) | u64::from(*b);
        }
        let pn = decode_packet_number(largest, truncated, pn_len);
        let body_at = pn_offset + pn_len;
        if body_at > scratch.len() {
            return None;
        }
        let (header, payload) = scratch.split_at_mut(body_at);
        let n = self.aead.open(pn, header, payload)?;
        Some((pn, body_at..body_at + n))
    }
}

#[derive(Default)]
struct Side {
    keys: Option<Keys>,
    phase: Phase,
    largest_pn: Option<u64>,
    crypto: CryptoStream,
    messages: Messages,
    opened: u32,
    failed: u32,
}

/// The Handshake space of one QUIC connection.
pub struct HandshakeSpace {
    side: PerDir<Side>,
    scratch: Vec<u8>,
    /// A secret gave no keys (the wrong length for the suite's hash).
    bad_secret: bool,
}

impl std::fmt::Debug for HandshakeSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandshakeSpace")
    }
}

impl HandshakeSpace {
    /// Keys for the directions `secrets` covers, for TLS suite `suite` and QUIC
    /// `version`; `None` for a suite without a known AEAD.
    pub fn new(suite: u16, secrets: &HandshakeSecrets, version: u32) -> Option<HandshakeSpace> {
        let cipher = Cipher::of(suite)?;
        let mut bad_secret = false;
        let mut side = |s: Option<crate::keylog::Secret>| {
            let Some(s) = s else {
                return Side::default();
            };
            let keys = Keys::new(cipher, s.as_bytes(), version);
            bad_secret |= keys.is_none();
            Side {
                phase: if keys.is_some() {
                    Phase::Reading
                } else {
                    Phase::Stopped
                },
                keys,
                ..Side::default()
            }
        };
        let side = PerDir {
            client: side(secrets.client),
            server: side(secrets.server),
        };
        Some(HandshakeSpace {
            side,
            scratch: Vec::new(),
            bad_secret,
        })
    }

    /// Some direction still reads its handshake.
    pub fn pending(&self) -> bool {
        self.side.client.phase == Phase::Reading || self.side.server.phase == Phase::Reading
    }

    /// The keys given do not open this connection's Handshake packets.
    pub fn mismatch(&self) -> bool {
        let failed = |s: &Side| s.failed > 0 && s.opened == 0;
        self.bad_secret || failed(&self.side.client) || failed(&self.side.server)
    }

    pub fn heap_bytes(&self) -> usize {
        let side = |s: &Side| s.crypto.heap_bytes() + s.messages.heap_bytes();
        self.scratch.capacity() + side(&self.side.client) + side(&self.side.server)
    }

    /// One Handshake packet of `dir` (exactly its bytes), its packet number at `pn_offset`.
    pub fn packet(&mut self, dir: Dir, pkt: &[u8], pn_offset: usize, rec: &mut FlowRecord) {
        let HandshakeSpace { side, scratch, .. } = self;
        let side = side.get_mut(dir);
        if side.phase != Phase::Reading {
            return;
        }
        let Some(keys) = side.keys.as_ref() else {
            return;
        };
        let Some((pn, range)) = keys.open(pkt, pn_offset, side.largest_pn, scratch) else {
            side.failed += 1;
            if side.opened == 0 && side.failed >= MAX_FAILURES {
                side.phase = Phase::Stopped;
                side.keys = None;
            }
            return;
        };
        side.opened += 1;
        side.largest_pn = Some(side.largest_pn.map_or(pn, |p| p.max(pn)));
        let plain = scratch.get(range).unwrap_or_default();
        let mut finished = false;
        let mut capped = false;
        let Side {
            crypto, messages, ..
        } = side;
        let parsed = frames(plain, &mut |f| {
            if let Frame::Crypto { offset, data } = f {
                capped |= crypto
                    .insert(offset, data, &mut |b| {
                        messages.feed(b, &mut |(t, body)| {
                            let step = handshake13::message(dir, t, body, CERTIFICATE_CAP, rec);
                            finished |= step == Step::Finished;
                        })
                    })
                    .capped;
            }
        });
        if parsed.is_err() {
            rec.note(Note::QuicMalformed);
        }
        if capped {
            rec.note(Note::QuicCryptoCap);
        }
        if side.messages.too_large {
            rec.note(Note::HandshakeTooLarge);
        }
        if finished {
            side.phase = Phase::Finished;
            side.keys = None;
            side.crypto = CryptoStream::default();
            side.messages = Messages::default();
        }
        if self.scratch.capacity() > MAX_SCRATCH_KEPT {
            self.scratch = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 9001 §A.5: ChaCha20-Poly1305 short-header packet. Its secret, the
    /// derived header protection key and the mask for its sample.
    #[test]
    fn rfc9001_chacha20_header_protection() {
        let secret = hex("9ac312a7f877468ebe69422748ad00a1
                          5443f18203a07d6060f688f30f21632b");
        let mut hp = [0u8; 32];
        expand_label(Cipher::ChaCha20Poly1305, &secret, b"quic hp", &mut hp).unwrap();
        assert_eq!(
            hp.to_vec(),
            hex("25a282b9e82f06f21f488917a4fc8f1b 73573685608597d0efcb076b0ab7a7a4")
        );
        let m = Mask::new(Cipher::ChaCha20Poly1305, &hp).unwrap();
        let sample: [u8; 16] = hex("5e5cd55c41f69080575d7999c25a5bfb").try_into().unwrap();
        assert_eq!(m.mask(&sample).to_vec(), hex("aefefe7d03"));
    }
}
