//! QUIC Initial packet protection (RFC 9001 §5, RFC 9369 §3.3): keys derived from
//! the client's Destination Connection ID, header protection, AES-128-GCM.
//! Pure functions; the public salts make every Initial readable by an observer.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Nonce, Tag};
use hkdf::{Hkdf, HkdfExtract};
use sha2::Sha256;
use std::sync::OnceLock;

/// QUIC version 1 (RFC 9000).
pub const V1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const V2: u32 = 0x6b33_43cf;

/// Length of the AEAD tag that ends every protected payload.
pub const TAG_LEN: usize = 16;
/// Bytes of ciphertext sampled for the header protection mask.
pub const SAMPLE_LEN: usize = 16;

/// How one QUIC version protects its Initial packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    salt: [u8; 20],
    key_label: &'static [u8],
    iv_label: &'static [u8],
    hp_label: &'static [u8],
    /// Long-header packet type bits of an Initial and of a Retry.
    pub initial_type: u8,
    pub retry_type: u8,
    pub handshake_type: u8,
}

const V1_SALT: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const V2_SALT: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// draft-ietf-quic-tls-29 to -32.
const DRAFT29_SALT: [u8; 20] = [
    0xaf, 0xbf, 0xec, 0x28, 0x99, 0x93, 0xd2, 0x4c, 0x9e, 0x97, 0x86, 0xf1, 0x9c, 0x61, 0x11, 0xe0,
    0x43, 0x90, 0xa8, 0x99,
];
/// draft-ietf-quic-tls-23 to -28.
const DRAFT23_SALT: [u8; 20] = [
    0xc3, 0xee, 0xf7, 0x12, 0xc7, 0x2e, 0xbb, 0x5a, 0x11, 0xa7, 0xd2, 0x43, 0x2b, 0xb4, 0x63, 0x65,
    0xbe, 0xf9, 0xf5, 0x02,
];

const V1_LABELS: (&[u8], &[u8], &[u8]) = (b"quic key", b"quic iv", b"quic hp");

impl Suite {
    /// The Initial protection of `version`, if it is one this tool knows.
    pub fn of(version: u32) -> Option<Suite> {
        let v1 = |salt| Suite {
            salt,
            key_label: V1_LABELS.0,
            iv_label: V1_LABELS.1,
            hp_label: V1_LABELS.2,
            initial_type: 0,
            retry_type: 3,
            handshake_type: 2,
        };
        match version {
            V1 => Some(v1(V1_SALT)),
            V2 => Some(Suite {
                salt: V2_SALT,
                key_label: b"quicv2 key",
                iv_label: b"quicv2 iv",
                hp_label: b"quicv2 hp",
                initial_type: 1,
                retry_type: 0,
                handshake_type: 3,
            }),
            0xff00_001d..=0xff00_0020 => Some(v1(DRAFT29_SALT)),
            0xff00_0017..=0xff00_001c => Some(v1(DRAFT23_SALT)),
            _ => None,
        }
    }
}

/// The keys protecting one direction's Initial packets.
#[derive(Clone)]
pub struct Keys {
    aead: Aes128Gcm,
    iv: [u8; 12],
    hp: Aes128,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys")
    }
}

/// Client and server Initial keys for one connection ID (the analyzer derives
/// each side's when it needs them: [`Keys::initial`]).
#[cfg(test)]
#[derive(Clone, Debug)]
pub struct InitialKeys {
    pub client: Keys,
    pub server: Keys,
}

/// The raw secrets behind [`Keys`], for the test vectors.
#[derive(Debug, PartialEq, Eq)]
pub struct Material {
    pub secret: [u8; 32],
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &Hkdf<Sha256>, label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = u16::try_from(out.len()).ok()?;
    let full_len = u8::try_from(6 + label.len()).ok()?;
    // Length (2), label length (1), "tls13 " and the label, context length (1).
    let mut info = [0u8; 4 + 255];
    let n = 4 + usize::from(full_len);
    let parts = [&len.to_be_bytes()[..], &[full_len], b"tls13 ", label, &[0]];
    let mut at = 0;
    for part in parts {
        info.get_mut(at..at + part.len())?.copy_from_slice(part);
        at += part.len();
    }
    prk.expand(info.get(..n)?, out).ok()
}

/// HKDF-Extract keyed with a version's salt, ready for a connection ID: the
/// salt's HMAC pads are hashed once per run, not once per Initial (a flood of
/// Initials is mostly key derivation).
fn extractor(salt: &[u8; 20]) -> HkdfExtract<Sha256> {
    static READY: OnceLock<[([u8; 20], HkdfExtract<Sha256>); 4]> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        [V1_SALT, V2_SALT, DRAFT29_SALT, DRAFT23_SALT].map(|s| (s, HkdfExtract::new(Some(&s))))
    });
    match ready.iter().find(|(s, _)| s == salt) {
        Some((_, e)) => e.clone(),
        None => HkdfExtract::new(Some(salt)),
    }
}

/// The Initial secret of the client's Destination Connection ID `dcid` (RFC 9001 §5.2).
fn initial_secret(suite: &Suite, dcid: &[u8]) -> Option<Hkdf<Sha256>> {
    let mut extract = extractor(&suite.salt);
    extract.input_ikm(dcid);
    Some(extract.finalize().1)
}

/// The secrets of one side (`client in` or `server in`) from the Initial secret.
fn side_material(suite: &Suite, initial: &Hkdf<Sha256>, label: &[u8]) -> Option<Material> {
    let mut m = Material {
        secret: [0; 32],
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(initial, label, &mut m.secret)?;
    let prk = Hkdf::<Sha256>::from_prk(&m.secret).ok()?;
    expand_label(&prk, suite.key_label, &mut m.key)?;
    expand_label(&prk, suite.iv_label, &mut m.iv)?;
    expand_label(&prk, suite.hp_label, &mut m.hp)?;
    Some(m)
}

/// Secrets of both directions for the client's Destination Connection ID `dcid`.
pub fn material(suite: &Suite, dcid: &[u8]) -> Option<(Material, Material)> {
    let initial = initial_secret(suite, dcid)?;
    Some((
        side_material(suite, &initial, b"client in")?,
        side_material(suite, &initial, b"server in")?,
    ))
}

/// Keys the last sniff derived on this thread, handed to the analyzer the flow
/// gets next, so that the first Initial's keys are derived once (a flood of
/// Initials from spoofed sources is mostly key derivation), with the packet the
/// sniff opened, so that it is not decrypted twice.
struct Sniffed {
    version: u32,
    cid: Vec<u8>,
    keys: Box<Keys>,
    opened: Opened,
}

/// A packet a sniff opened: the packet as it came, its packet number (read as
/// the first of its direction: no packet number seen before), and the opened
/// packet with where its frames lie in it.
#[derive(Debug, Default)]
pub struct Opened {
    pub packet: Vec<u8>,
    pub pn: u64,
    pub plain: Vec<u8>,
    pub frames: std::ops::Range<usize>,
}

thread_local! {
    static SNIFFED: std::cell::RefCell<Option<Sniffed>> = const { std::cell::RefCell::new(None) };
}

/// Keeps the client keys a sniff derived for (`version`, `cid`), and the packet they opened.
pub fn remember(version: u32, cid: &[u8], keys: Box<Keys>, opened: Opened) {
    SNIFFED.with(|s| {
        *s.borrow_mut() = Some(Sniffed {
            version,
            cid: cid.to_vec(),
            keys,
            opened,
        });
    });
}

/// The client keys the last sniff on this thread derived, and the packet they
/// opened, if for (`version`, `cid`).
pub fn recall(version: u32, cid: &[u8]) -> Option<(Box<Keys>, Opened)> {
    SNIFFED.with(|s| {
        let mut s = s.borrow_mut();
        match s.as_ref() {
            Some(k) if k.version == version && k.cid == cid => s.take().map(|k| (k.keys, k.opened)),
            _ => None,
        }
    })
}

impl Keys {
    /// The Initial keys of the client (`client`) or the server for the client's
    /// Destination Connection ID `dcid`: one side only, the other derived when needed.
    /// Boxed: the AES key schedules are most of a kilobyte, and the keys move
    /// from the sniff to the analyzer.
    pub fn initial(suite: &Suite, dcid: &[u8], client: bool) -> Option<Box<Keys>> {
        let initial = initial_secret(suite, dcid)?;
        let label: &[u8] = if client { b"client in" } else { b"server in" };
        Keys::new(&side_material(suite, &initial, label)?).map(Box::new)
    }

    fn new(m: &Material) -> Option<Keys> {
        Some(Keys {
            aead: Aes128Gcm::new_from_slice(&m.key).ok()?,
            iv: m.iv,
            hp: Aes128::new_from_slice(&m.hp).ok()?,
        })
    }

    /// The header protection mask for a 16-byte ciphertext sample.
    pub fn mask(&self, sample: &[u8; SAMPLE_LEN]) -> [u8; 16] {
        let mut block = (*sample).into();
        self.hp.encrypt_block(&mut block);
        block.into()
    }

    /// Opens a payload in place: `header` is the unprotected header (the AAD),
    /// `payload` the ciphertext followed by the tag. Returns the plaintext length.
    pub fn open(&self, pn: u64, header: &[u8], payload: &mut [u8]) -> Option<usize> {
        let body_len = payload.len().checked_sub(TAG_LEN)?;
        let (body, tag) = payload.split_at_mut(body_len);
        let tag = Tag::try_from(&*tag).ok()?;
        let mut nonce = self.iv;
        for (n, p) in nonce.iter_mut().rev().zip(pn.to_be_bytes().iter().rev()) {
            *n ^= p;
        }
        let nonce = Nonce::from(nonce);
        self.aead
            .decrypt_inout_detached(&nonce, header, body.into(), &tag)
            .ok()?;
        Some(body_len)
    }
}

#[cfg(test)]
impl Keys {
    /// Protects a packet as a peer would: seals `plain` after `header` (which
    /// ends with the `pn_len`-byte packet number), then masks the header.
    pub fn protect(&self, pn: u64, header: &[u8], pn_len: usize, plain: &[u8]) -> Vec<u8> {
        let mut nonce = self.iv;
        for (n, p) in nonce.iter_mut().rev().zip(pn.to_be_bytes().iter().rev()) {
            *n ^= p;
        }
        let mut body = plain.to_vec();
        let tag = self
            .aead
            .encrypt_inout_detached(&Nonce::from(nonce), header, body.as_mut_slice().into())
            .unwrap();
        let mut pkt = header.to_vec();
        pkt.extend(body);
        pkt.extend(tag.as_slice());
        let pn_offset = header.len() - pn_len;
        let sample: [u8; SAMPLE_LEN] = pkt[pn_offset + 4..pn_offset + 4 + SAMPLE_LEN]
            .try_into()
            .unwrap();
        let mask = self.mask(&sample);
        pkt[0] ^= mask[0] & 0x0f;
        for i in 0..pn_len {
            pkt[pn_offset + i] ^= mask[1 + i];
        }
        pkt
    }
}

#[cfg(test)]
impl InitialKeys {
    /// Initial keys of both directions for the connection ID the client first chose
    /// (or the one a Retry gave it).
    pub fn new(suite: &Suite, dcid: &[u8]) -> Option<InitialKeys> {
        let (c, s) = material(suite, dcid)?;
        Some(InitialKeys {
            client: Keys::new(&c)?,
            server: Keys::new(&s)?,
        })
    }
}

/// The fixed key and nonce of a version's Retry integrity tag (RFC 9001 §5.8,
/// RFC 9369 §3.3.3).
fn retry_secret(version: u32) -> Option<([u8; 16], [u8; 12])> {
    match version {
        V1 => Some((
            [
                0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68,
                0xc8, 0x4e,
            ],
            [
                0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb,
            ],
        )),
        V2 => Some((
            [
                0x8f, 0xb4, 0xb0, 0x1b, 0x56, 0xac, 0x48, 0xe2, 0x60, 0xfb, 0xcb, 0xce, 0xad, 0x7c,
                0xcc, 0x92,
            ],
            [
                0xd8, 0x69, 0x69, 0xbc, 0x2d, 0x7c, 0x6d, 0x99, 0x90, 0xef, 0xb0, 0x4a,
            ],
        )),
        _ => None,
    }
}

/// Whether a Retry packet's integrity tag is right for the client's original
/// Destination Connection ID `odcid`. `None` for versions without a known tag key
/// (drafts), which are taken on trust.
pub fn retry_tag_ok(version: u32, odcid: &[u8], retry: &[u8]) -> Option<bool> {
    let (key, nonce) = retry_secret(version)?;
    let Some(body_len) = retry.len().checked_sub(TAG_LEN) else {
        return Some(false);
    };
    let (body, tag) = retry.split_at(body_len);
    let mut aad = Vec::with_capacity(1 + odcid.len() + body.len());
    aad.push(u8::try_from(odcid.len()).ok()?);
    aad.extend_from_slice(odcid);
    aad.extend_from_slice(body);
    let aead = Aes128Gcm::new_from_slice(&key).ok()?;
    let tag = Tag::try_from(tag).ok()?;
    let mut empty = [0u8; 0];
    Some(
        aead.decrypt_inout_detached(&Nonce::from(nonce), &aad, empty.as_mut_slice().into(), &tag)
            .is_ok(),
    )
}

/// The integrity tag a server appends to the Retry `body` (for building test packets).
#[cfg(test)]
pub fn retry_tag(version: u32, odcid: &[u8], body: &[u8]) -> [u8; TAG_LEN] {
    let (key, nonce) = retry_secret(version).unwrap();
    let mut aad = vec![odcid.len() as u8];
    aad.extend_from_slice(odcid);
    aad.extend_from_slice(body);
    let aead = Aes128Gcm::new_from_slice(&key).unwrap();
    let mut empty = [0u8; 0];
    let tag = aead
        .encrypt_inout_detached(&Nonce::from(nonce), &aad, empty.as_mut_slice().into())
        .unwrap();
    tag.as_slice().try_into().unwrap()
}

/// Recovers a full packet number from its `pn_len`-byte truncation (RFC 9000 §A.3).
pub fn decode_packet_number(largest: Option<u64>, truncated: u64, pn_len: usize) -> u64 {
    let bits = 8 * pn_len as u32;
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let win = 1u64 << bits;
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | truncated;
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
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

    const DCID: &str = "8394c8f03e515708";

    #[test]
    fn sniffed_keys_go_once_to_the_same_version_and_connection_id() {
        let suite = Suite::of(V1).unwrap();
        let cid = hex(DCID);
        let keys = Keys::initial(&suite, &cid, true).unwrap();
        // Each side's keys alone are that side's of both (RFC 9001 §A.1).
        let both = InitialKeys::new(&suite, &cid).unwrap();
        let sample = [0x5a; SAMPLE_LEN];
        assert_eq!(keys.mask(&sample), both.client.mask(&sample));
        let server = Keys::initial(&suite, &cid, false).unwrap();
        assert_eq!(server.mask(&sample), both.server.mask(&sample));
        assert_ne!(server.mask(&sample), keys.mask(&sample));
        remember(V1, &cid, keys, Opened::default());
        assert!(recall(V2, &cid).is_none(), "another version");
        assert!(recall(V1, &cid[..4]).is_none(), "another connection ID");
        assert!(recall(V1, &cid).is_some());
        assert!(recall(V1, &cid).is_none(), "taken once");
    }

    #[test]
    fn rfc9001_appendix_a1_keys() {
        let (c, s) = material(&Suite::of(V1).unwrap(), &hex(DCID)).unwrap();
        assert_eq!(
            c.secret.to_vec(),
            hex("c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea")
        );
        assert_eq!(c.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(c.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(c.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
        assert_eq!(
            s.secret.to_vec(),
            hex("3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b")
        );
        assert_eq!(s.key.to_vec(), hex("cf3a5331653c364c88f0f379b6067e37"));
        assert_eq!(s.iv.to_vec(), hex("0ac1493ca1905853b0bba03e"));
        assert_eq!(s.hp.to_vec(), hex("c206b8d9b9f0f37644430b490eeaa314"));
    }

    #[test]
    fn rfc9369_appendix_a1_keys() {
        let (c, s) = material(&Suite::of(V2).unwrap(), &hex(DCID)).unwrap();
        assert_eq!(
            c.secret.to_vec(),
            hex("14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b")
        );
        assert_eq!(c.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(c.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(c.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
        assert_eq!(
            s.secret.to_vec(),
            hex("0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1")
        );
        assert_eq!(s.key.to_vec(), hex("82db637861d55e1d011f19ea71d5d2a7"));
        assert_eq!(s.iv.to_vec(), hex("dd13c276499c0249d3310652"));
        assert_eq!(s.hp.to_vec(), hex("edf6d05c83121201b436e16877593c3a"));
    }

    #[test]
    fn rfc9001_appendix_a2_header_protection_mask() {
        // A.2: sample d1b1c98dd7689fb8ec11d242b123dc9b -> mask 437b9aec36
        let keys = InitialKeys::new(&Suite::of(V1).unwrap(), &hex(DCID)).unwrap();
        let sample: [u8; 16] = hex("d1b1c98dd7689fb8ec11d242b123dc9b").try_into().unwrap();
        assert_eq!(keys.client.mask(&sample)[..5], hex("437b9aec36")[..]);
        // A.3: the server's sample 2cd0991cd25b0aac406a5816b6394100 -> mask 2ec0d8356a
        let sample: [u8; 16] = hex("2cd0991cd25b0aac406a5816b6394100").try_into().unwrap();
        assert_eq!(keys.server.mask(&sample)[..5], hex("2ec0d8356a")[..]);
    }

    #[test]
    fn rfc9369_appendix_a_header_protection_mask() {
        let keys = InitialKeys::new(&Suite::of(V2).unwrap(), &hex(DCID)).unwrap();
        let sample: [u8; 16] = hex("ffe67b6abcdb4298b485dd04de806071").try_into().unwrap();
        assert_eq!(keys.client.mask(&sample)[..5], hex("94a0c95e80")[..]);
        let sample: [u8; 16] = hex("6f05d8a4398c47089698baeea26b91eb").try_into().unwrap();
        assert_eq!(keys.server.mask(&sample)[..5], hex("4dd92e91ea")[..]);
    }

    #[test]
    fn retry_integrity_tags_rfc9001_a4_rfc9369_a4() {
        let odcid = hex(DCID);
        let v1 = hex("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba");
        assert_eq!(retry_tag_ok(V1, &odcid, &v1), Some(true));
        let v2 = hex("cf6b3343cf0008f067a5502a4262b5746f6b656ec8646ce8bfe33952d955543665dcc7b6");
        assert_eq!(retry_tag_ok(V2, &odcid, &v2), Some(true));
        let mut bad = v1.clone();
        bad[20] ^= 1;
        assert_eq!(retry_tag_ok(V1, &odcid, &bad), Some(false));
        assert_eq!(retry_tag_ok(V1, &hex("00"), &v1), Some(false));
        assert_eq!(retry_tag_ok(V1, &odcid, &v1[..10]), Some(false));
        assert_eq!(retry_tag_ok(0xff00_001d, &odcid, &v1), None);
    }

    #[test]
    fn unknown_versions_have_no_suite() {
        assert!(Suite::of(0).is_none());
        assert!(Suite::of(0x5130_3530).is_none()); // Google Q050
        assert!(Suite::of(0xff00_001d).is_some()); // draft-29
    }

    #[test]
    fn packet_numbers_unwrap_rfc9000_a3() {
        // RFC 9000 §A.3: largest 0xa82f30ea, truncated 0x9b32 (16 bits) -> 0xa82f9b32.
        assert_eq!(
            decode_packet_number(Some(0xa82f_30ea), 0x9b32, 2),
            0xa82f_9b32
        );
        assert_eq!(decode_packet_number(None, 0, 1), 0);
        assert_eq!(decode_packet_number(Some(0xff), 0x00, 1), 0x100);
        assert_eq!(decode_packet_number(Some(2), 1, 4), 1);
    }
}
