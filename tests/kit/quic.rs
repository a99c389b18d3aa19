//! QUIC version 1 client Initial packets, protected as a client protects them
//! (RFC 9001 §5: keys from the Destination Connection ID, AES-128-GCM, header
//! protection), and the frames they carry.

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes128Gcm, Nonce};
use tlswatch::analyzer::quic::initial::{Suite, V1, material};

/// Smallest UDP payload a client sends an Initial in (RFC 9000 §14.1).
pub const CLIENT_DATAGRAM: usize = 1200;

/// A CRYPTO frame carrying `data` at stream offset `offset` (below 2^30).
pub fn crypto_frame(offset: u32, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0x06];
    f.extend((0x8000_0000 | offset).to_be_bytes());
    f.extend((0x4000 | data.len() as u16).to_be_bytes());
    f.extend(data);
    f
}

/// A client's Initial packet number `pn` to `dcid` carrying `frames`, padded
/// (PADDING frames) to fill a [`CLIENT_DATAGRAM`]-byte datagram on its own.
pub fn client_initial(dcid: &[u8], scid: &[u8], pn: u16, frames: &[u8]) -> Vec<u8> {
    let suite = Suite::of(V1).unwrap();
    let (client, _) = material(&suite, dcid).unwrap();
    let mut head = vec![0xc1];
    head.extend(V1.to_be_bytes());
    head.push(dcid.len() as u8);
    head.extend(dcid);
    head.push(scid.len() as u8);
    head.extend(scid);
    // No token; a two-byte Length; a two-byte packet number.
    head.push(0);
    let body_len = CLIENT_DATAGRAM - head.len() - 2 - 2;
    head.extend((0x4000 | (2 + body_len) as u16).to_be_bytes());
    head.extend(pn.to_be_bytes());
    let mut body = frames.to_vec();
    assert!(
        body.len() + 16 <= body_len,
        "frames too long for one Initial"
    );
    body.resize(body_len - 16, 0);
    let mut nonce = client.iv;
    for (n, p) in nonce
        .iter_mut()
        .rev()
        .zip(u64::from(pn).to_be_bytes().iter().rev())
    {
        *n ^= p;
    }
    let aead = Aes128Gcm::new_from_slice(&client.key).unwrap();
    let tag = aead
        .encrypt_inout_detached(&Nonce::from(nonce), &head, body.as_mut_slice().into())
        .unwrap();
    let pn_at = head.len() - 2;
    let mut pkt = head;
    pkt.extend(body);
    pkt.extend(tag.as_slice());
    let mut sample: [u8; 16] = pkt[pn_at + 4..pn_at + 20].try_into().unwrap();
    Aes128::new_from_slice(&client.hp)
        .unwrap()
        .encrypt_block((&mut sample).into());
    pkt[0] ^= sample[0] & 0x0f;
    pkt[pn_at] ^= sample[1];
    pkt[pn_at + 1] ^= sample[2];
    pkt
}
