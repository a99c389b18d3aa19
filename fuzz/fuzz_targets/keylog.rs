//! The TLS 1.3 handshake decryption path with a fixed key: a ClientHello whose
//! random the key log holds and a ServerHello choosing one of the five suites
//! (the first input byte), then a transcript whose chunks are sealed with the
//! handshake keys into protected records (so mutated plaintext reaches the
//! encrypted-handshake parsers: EncryptedExtensions, Certificate,
//! CompressedCertificate, CertificateRequest, CertificateVerify, Finished) or
//! sent raw (records that do not open), with gaps. The same chunks go straight
//! into the message parsers too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use tlswatch::analyzer::tls::TlsAnalyzer;
use tlswatch::analyzer::tls::decrypt::{Cipher, RecordKeys};
use tlswatch::analyzer::tls::handshake13;
use tlswatch::keylog::KeyLog;
use tlswatch::record::{Dir, PerDir};
use tlswatch_fuzz::{Event, record, settle, transcript};

const RANDOM: [u8; 32] = [0x5a; 32];

fn handshake(msg: u8, body: &[u8]) -> Vec<u8> {
    let mut hs = vec![msg];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut r = vec![22, 3, 3];
    r.extend((hs.len() as u16).to_be_bytes());
    r.extend(hs);
    r
}

fn client_hello(early: bool) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend(RANDOM);
    b.extend([0, 0, 10, 0x13, 1, 0x13, 2, 0x13, 3, 0x13, 4, 0x13, 5, 1, 0]);
    let mut ext = vec![0, 0x2b, 0, 3, 2, 3, 4];
    if early {
        ext.extend([0, 0x2a, 0, 0]);
    }
    b.extend((ext.len() as u16).to_be_bytes());
    b.extend(ext);
    handshake(1, &b)
}

fn server_hello(suite: u16) -> Vec<u8> {
    let mut b = vec![3, 3];
    b.extend([0x33; 32]);
    b.push(0);
    b.extend(suite.to_be_bytes());
    b.extend([0, 0, 6, 0, 0x2b, 0, 2, 3, 4]);
    handshake(2, &b)
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let suite = 0x1301 + u16::from(sel % 5);
    let Some(cipher) = Cipher::of(suite) else {
        return;
    };
    let len = if cipher == Cipher::Aes256Gcm { 48 } else { 32 };
    let secret = |b: u8| vec![b; len];
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let log = format!(
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET {r} {c}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {r} {s}\n",
        r = hex(&RANDOM),
        c = hex(&secret(1)),
        s = hex(&secret(2)),
    );
    let keys = KeyLog::new();
    if keys.load(log.as_bytes()).is_err() {
        return;
    }
    let (Some(client), Some(server)) = (
        RecordKeys::tls(cipher, &secret(1)),
        RecordKeys::tls(cipher, &secret(2)),
    ) else {
        return;
    };
    let prot = PerDir { client, server };
    let mut seq = PerDir { client: 0u64, server: 0u64 };
    let mut rec = record(443);
    let mut tls = TlsAnalyzer::new();
    tls.set_keys(Some(Arc::new(keys)));
    tls.on_data(Dir::Client, &client_hello(sel & 0x80 != 0), &mut rec);
    tls.on_data(Dir::Server, &server_hello(suite), &mut rec);
    for ev in transcript(rest) {
        match ev {
            Event::Data(dir, b) => {
                let Some((&how, body)) = b.split_first() else {
                    continue;
                };
                for msg in [8, 11, 13, 15, 20, 25] {
                    handshake13::message(dir, msg, body, 1 << 17, &mut record(443));
                }
                if how & 0x80 != 0 {
                    tls.on_data(dir, body, &mut rec);
                    continue;
                }
                let mut inner = body.to_vec();
                inner.push([22, 21, 23, 0][usize::from(how & 3)]);
                inner.extend(std::iter::repeat_n(0, usize::from((how >> 2) & 7)));
                let sealed_len = (inner.len() + cipher.tag_len()) as u16;
                let mut r = vec![23, 3, 3];
                r.extend(sealed_len.to_be_bytes());
                let Some(sealed) = prot.get(dir).seal(*seq.get(dir), &r, &inner) else {
                    continue;
                };
                *seq.get_mut(dir) += 1;
                r.extend(sealed);
                // Split where the input says, to cross record and message boundaries.
                let at = usize::from(how >> 5).min(r.len());
                let (x, y) = r.split_at(at);
                tls.on_data(dir, x, &mut rec);
                tls.on_data(dir, y, &mut rec);
            }
            Event::Gap(dir, n) => tls.on_gap(dir, n, &mut rec),
        }
    }
    settle(&mut rec);
});
