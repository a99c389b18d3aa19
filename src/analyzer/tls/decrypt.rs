//! TLS 1.3 record protection (RFC 8446 §5.2, §7.3) for the handshake records
//! whose traffic secrets the key log holds: AES-128-GCM, AES-256-GCM,
//! ChaCha20-Poly1305, AES-128-CCM and AES-128-CCM-8, from RustCrypto. QUIC
//! derives its packet keys the same way with its own labels (RFC 9001 §5.1).
//!
//! Only keys derived from handshake secrets are ever made here, so only
//! handshake records can be opened: application data stays sealed.

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::{U8, U12, U16};
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit};
use ccm::Ccm;
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use sha2::{Sha256, Sha384};

/// Largest AEAD tag (every TLS 1.3 suite but CCM-8 uses 16 bytes).
pub const MAX_TAG_LEN: usize = 16;

/// A TLS 1.3 cipher suite's AEAD and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
    Aes128Ccm,
    Aes128Ccm8,
}

impl Cipher {
    /// The AEAD of a TLS 1.3 cipher suite number.
    pub fn of(suite: u16) -> Option<Cipher> {
        match suite {
            0x1301 => Some(Cipher::Aes128Gcm),
            0x1302 => Some(Cipher::Aes256Gcm),
            0x1303 => Some(Cipher::ChaCha20Poly1305),
            0x1304 => Some(Cipher::Aes128Ccm),
            0x1305 => Some(Cipher::Aes128Ccm8),
            _ => None,
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            Cipher::Aes256Gcm | Cipher::ChaCha20Poly1305 => 32,
            _ => 16,
        }
    }

    pub fn tag_len(self) -> usize {
        match self {
            Cipher::Aes128Ccm8 => 8,
            _ => 16,
        }
    }

    /// The suite's hash is SHA-384 (else SHA-256).
    fn sha384(self) -> bool {
        self == Cipher::Aes256Gcm
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context, over the suite's hash.
pub fn expand_label(cipher: Cipher, secret: &[u8], label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = u16::try_from(out.len()).ok()?;
    let full_len = u8::try_from(6 + label.len()).ok()?;
    let mut info = Vec::with_capacity(4 + usize::from(full_len));
    info.extend_from_slice(&len.to_be_bytes());
    info.push(full_len);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label);
    info.push(0);
    if cipher.sha384() {
        Hkdf::<Sha384>::from_prk(secret)
            .ok()?
            .expand(&info, out)
            .ok()
    } else {
        Hkdf::<Sha256>::from_prk(secret)
            .ok()?
            .expand(&info, out)
            .ok()
    }
}

#[derive(Clone)]
enum Aead {
    Aes128Gcm(Aes128Gcm),
    Aes256Gcm(Aes256Gcm),
    ChaCha(ChaCha20Poly1305),
    Ccm(Ccm<aes::Aes128, U16, U12>),
    Ccm8(Ccm<aes::Aes128, U8, U12>),
}

/// Keys of one direction: the AEAD and its static IV.
#[derive(Clone)]
pub struct RecordKeys {
    aead: Aead,
    iv: [u8; 12],
    tag_len: usize,
}

impl std::fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKeys")
    }
}

impl RecordKeys {
    /// The keys a traffic `secret` gives with the labels `key` and `iv`
    /// (`key`/`iv` for TLS, `quic key`/`quic iv` for QUIC v1).
    pub fn derive(cipher: Cipher, secret: &[u8], key: &[u8], iv: &[u8]) -> Option<RecordKeys> {
        let mut k = [0u8; 32];
        let k = k.get_mut(..cipher.key_len())?;
        expand_label(cipher, secret, key, k)?;
        let mut nonce = [0u8; 12];
        expand_label(cipher, secret, iv, &mut nonce)?;
        let aead = match cipher {
            Cipher::Aes128Gcm => Aead::Aes128Gcm(Aes128Gcm::new_from_slice(k).ok()?),
            Cipher::Aes256Gcm => Aead::Aes256Gcm(Aes256Gcm::new_from_slice(k).ok()?),
            Cipher::ChaCha20Poly1305 => Aead::ChaCha(ChaCha20Poly1305::new_from_slice(k).ok()?),
            Cipher::Aes128Ccm => Aead::Ccm(Ccm::new_from_slice(k).ok()?),
            Cipher::Aes128Ccm8 => Aead::Ccm8(Ccm::new_from_slice(k).ok()?),
        };
        Some(RecordKeys {
            aead,
            iv: nonce,
            tag_len: cipher.tag_len(),
        })
    }

    /// TLS record keys of a handshake traffic secret.
    pub fn tls(cipher: Cipher, secret: &[u8]) -> Option<RecordKeys> {
        Self::derive(cipher, secret, b"key", b"iv")
    }

    /// Opens `payload` (ciphertext then tag) in place for record or packet number
    /// `seq` with `aad`; returns the plaintext length, `None` when it does not
    /// authenticate.
    pub fn open(&self, seq: u64, aad: &[u8], payload: &mut [u8]) -> Option<usize> {
        let body_len = payload.len().checked_sub(self.tag_len)?;
        let (body, tag) = payload.split_at_mut(body_len);
        let mut nonce = self.iv;
        for (n, p) in nonce.iter_mut().rev().zip(seq.to_be_bytes().iter().rev()) {
            *n ^= p;
        }
        let nonce = Array::from(nonce);
        let ok = match &self.aead {
            Aead::Aes128Gcm(a) => {
                let tag = Array::try_from(&*tag).ok()?;
                a.decrypt_inout_detached(&nonce, aad, body.into(), &tag)
            }
            Aead::Aes256Gcm(a) => {
                let tag = Array::try_from(&*tag).ok()?;
                a.decrypt_inout_detached(&nonce, aad, body.into(), &tag)
            }
            Aead::ChaCha(a) => {
                let tag = Array::try_from(&*tag).ok()?;
                a.decrypt_inout_detached(&nonce, aad, body.into(), &tag)
            }
            Aead::Ccm(a) => {
                let tag = Array::try_from(&*tag).ok()?;
                a.decrypt_inout_detached(&nonce, aad, body.into(), &tag)
            }
            Aead::Ccm8(a) => {
                let tag = Array::try_from(&*tag).ok()?;
                a.decrypt_inout_detached(&nonce, aad, body.into(), &tag)
            }
        };
        ok.ok().map(|()| body_len)
    }
}

impl RecordKeys {
    /// Seals `plain` as a peer would (ciphertext then tag): the inverse of
    /// [`RecordKeys::open`], for building test and fuzz input. The tool itself
    /// never encrypts anything.
    pub fn seal(&self, seq: u64, aad: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = self.iv;
        for (n, p) in nonce.iter_mut().rev().zip(seq.to_be_bytes().iter().rev()) {
            *n ^= p;
        }
        let nonce = Array::from(nonce);
        let mut body = plain.to_vec();
        let buf = body.as_mut_slice();
        let tag: Vec<u8> = match &self.aead {
            Aead::Aes128Gcm(a) => a
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .ok()?
                .to_vec(),
            Aead::Aes256Gcm(a) => a
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .ok()?
                .to_vec(),
            Aead::ChaCha(a) => a
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .ok()?
                .to_vec(),
            Aead::Ccm(a) => a
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .ok()?
                .to_vec(),
            Aead::Ccm8(a) => a
                .encrypt_inout_detached(&nonce, aad, buf.into())
                .ok()?
                .to_vec(),
        };
        body.extend(tag);
        Some(body)
    }
}

/// Where the content of a TLS 1.3 inner plaintext ends and its real content type
/// (RFC 8446 §5.4): the last non-zero byte; `None` for all zeros.
pub fn inner_content(plain: &[u8]) -> Option<(u8, &[u8])> {
    let at = plain.iter().rposition(|&b| b != 0)?;
    let (content, ty) = plain.split_at(at);
    Some((*ty.first()?, content))
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

    /// RFC 8448 §3 (simple 1-RTT handshake): the server handshake traffic secret
    /// gives the documented key and IV.
    #[test]
    fn rfc8448_server_handshake_key_and_iv() {
        let secret = hex("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4
                          e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38");
        let mut key = [0u8; 16];
        expand_label(Cipher::Aes128Gcm, &secret, b"key", &mut key).unwrap();
        assert_eq!(
            key.to_vec(),
            hex("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc")
        );
        let mut iv = [0u8; 12];
        expand_label(Cipher::Aes128Gcm, &secret, b"iv", &mut iv).unwrap();
        assert_eq!(iv.to_vec(), hex("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
    }

    #[test]
    fn every_cipher_round_trips_and_rejects_a_wrong_key() {
        for suite in 0x1301..=0x1305u16 {
            let c = Cipher::of(suite).unwrap();
            let secret = vec![7u8; if c.sha384() { 48 } else { 32 }];
            let k = RecordKeys::tls(c, &secret).unwrap();
            let aad = [23, 3, 3, 0, 40];
            let mut sealed = k.seal(3, &aad, b"handshake bytes\x16").unwrap();
            assert_eq!(sealed.len(), 16 + c.tag_len());
            let mut copy = sealed.clone();
            let n = k.open(3, &aad, &mut sealed).unwrap();
            assert_eq!(&sealed[..n], b"handshake bytes\x16");
            // Another sequence number or another secret does not open it.
            assert_eq!(k.open(4, &aad, &mut copy.clone()), None);
            let other = RecordKeys::tls(c, &vec![8u8; secret.len()]).unwrap();
            assert_eq!(other.open(3, &aad, &mut copy), None);
        }
        assert_eq!(Cipher::of(0x1306), None);
        // A secret shorter than the hash is refused, not a panic.
        assert!(RecordKeys::tls(Cipher::Aes256Gcm, &[1; 32]).is_none());
    }

    #[test]
    fn inner_plaintext_type_and_padding() {
        assert_eq!(inner_content(b"ab\x16\0\0"), Some((22, &b"ab"[..])));
        assert_eq!(inner_content(b"\x15"), Some((21, &b""[..])));
        assert_eq!(inner_content(&[0, 0]), None);
    }
}
