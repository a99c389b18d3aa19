//! TLS, SSLv2 and DTLS handshake messages byte by byte, and the byte-built TLS
//! connections several test files share.

use super::net::{ACK, Ep, PSH};
use super::pcap::{Conn, Pcap};

/// A ChangeCipherSpec record (TLS 1.2).
pub const CCS: &[u8] = &[0x14, 0x03, 0x03, 0x00, 0x01, 0x01];

/// The client and server of the byte-built TLS connections.
pub const C: Ep = (1, 40000);
pub const S: Ep = (2, 8443);

/// One TLS record of content type `ct`.
pub fn record(ct: u8, record_version: u16, body: &[u8]) -> Vec<u8> {
    let mut rec = vec![ct];
    rec.extend(record_version.to_be_bytes());
    rec.extend((body.len() as u16).to_be_bytes());
    rec.extend(body);
    rec
}

/// One handshake message of type `msg` in its own record.
pub fn handshake(record_version: u16, msg: u8, body: &[u8]) -> Vec<u8> {
    let mut hs = vec![msg, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend(body);
    record(0x16, record_version, &hs)
}

/// ClientHello offering TLS 1.2 with SNI `a.example` and a GREASE suite.
pub fn client_hello() -> Vec<u8> {
    let mut b = vec![0x03, 0x03];
    b.extend([7u8; 32]);
    b.push(0);
    b.extend([0x00, 0x06, 0x3a, 0x3a, 0xc0, 0x2f, 0x00, 0x2f]);
    b.extend([0x01, 0x00]);
    let sni = b"a.example";
    let mut ext = vec![0x00, 0x00];
    let list_len = sni.len() + 3;
    ext.extend(((list_len + 2) as u16).to_be_bytes());
    ext.extend((list_len as u16).to_be_bytes());
    ext.push(0);
    ext.extend((sni.len() as u16).to_be_bytes());
    ext.extend(sni);
    b.extend((ext.len() as u16).to_be_bytes());
    b.extend(ext);
    handshake(0x0301, 1, &b)
}

/// ServerHello choosing `version` and `cipher`, without extensions.
pub fn server_hello(version: u16, cipher: u16) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend([9u8; 32]);
    b.push(0);
    b.extend(cipher.to_be_bytes());
    b.push(0);
    handshake(version, 2, &b)
}

/// SSLv2 CLIENT-HELLO (2-byte header) offering SSLv2 ciphers.
pub fn sslv2_client_hello(version: u16) -> Vec<u8> {
    let mut body = vec![1];
    body.extend(version.to_be_bytes());
    body.extend([0x00, 0x06, 0x00, 0x00, 0x00, 0x10]);
    body.extend([0x01, 0x00, 0x80, 0x07, 0x00, 0xc0]);
    body.extend([0x42; 16]);
    let mut rec = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
    rec.extend(body);
    rec
}

/// SSLv2 SERVER-HELLO choosing SSL_CK_RC4_128_WITH_MD5.
pub fn sslv2_server_hello() -> Vec<u8> {
    let mut body = vec![4, 0, 1, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x10];
    body.extend([0x01, 0x00, 0x80]);
    body.extend([0x33; 16]);
    let mut sh = vec![0x80, body.len() as u8];
    sh.extend(body);
    sh
}

/// A DTLS record carrying one unfragmented handshake message.
pub fn dtls_handshake(msg: u8, version: u16, body: &[u8]) -> Vec<u8> {
    let mut f = vec![
        msg,
        0,
        (body.len() >> 8) as u8,
        body.len() as u8,
        0,
        0,
        0,
        0,
        0,
    ];
    f.extend([0, (body.len() >> 8) as u8, body.len() as u8]);
    f.extend(body);
    let mut r = vec![22];
    r.extend(version.to_be_bytes());
    r.extend([0u8; 8]);
    r.extend((f.len() as u16).to_be_bytes());
    r.extend(f);
    r
}

/// A DTLS record carrying one fragment of a `length`-byte handshake message:
/// `data` at `offset`.
pub fn dtls_fragment(msg: u8, version: u16, length: usize, offset: usize, data: &[u8]) -> Vec<u8> {
    let be24 = |n: usize| [(n >> 16) as u8, (n >> 8) as u8, n as u8];
    let mut f = vec![msg];
    f.extend(be24(length));
    f.extend([0, 0]);
    f.extend(be24(offset));
    f.extend(be24(data.len()));
    f.extend(data);
    let mut r = vec![22];
    r.extend(version.to_be_bytes());
    r.extend([0u8; 8]);
    r.extend((f.len() as u16).to_be_bytes());
    r.extend(f);
    r
}

/// A full TLS 1.2 connection from [`C`] to [`S`]; client ISN `ci`, server ISN `si`.
pub fn tls12_capture(ci: u32, si: u32) -> Pcap {
    let mut p = Pcap::new();
    Conn::new(C, S, ci, si)
        .open(&mut p)
        .client(&mut p, ACK | PSH, &client_hello())
        .server(&mut p, ACK | PSH, &server_hello(0x0303, 0xc02f))
        .client(&mut p, ACK | PSH, CCS)
        .server(&mut p, ACK | PSH, CCS);
    p
}

/// An SSLv2 handshake from [`C`] to [`S`]: CLIENT-HELLO of `version`, answered by
/// `answer`.
pub fn sslv2_capture(version: u16, answer: &[u8]) -> Pcap {
    let mut p = Pcap::new();
    Conn::new(C, S, 100, 500)
        .open(&mut p)
        .client(&mut p, ACK, &sslv2_client_hello(version))
        .server(&mut p, ACK, answer);
    p
}
