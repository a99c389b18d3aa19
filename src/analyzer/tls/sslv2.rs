//! SSLv2 record headers and the three plaintext messages tlswatch needs
//! (CLIENT-HELLO, SERVER-HELLO, ERROR), which tls-parser does not parse.

use nom::IResult;
use nom::Parser;
use nom::bytes::complete::take;
use nom::number::complete::{be_u8, be_u16};

/// SSLv2 message types (draft-hickman-netscape-ssl-00 §2.6 and appendix).
pub const MSG_ERROR: u8 = 0;
pub const MSG_CLIENT_HELLO: u8 = 1;
pub const MSG_SERVER_HELLO: u8 = 4;

/// An SSLv2 record header: 2-byte form (top bit set, no padding) or 3-byte form (with padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Bytes of header (2 or 3).
    pub header_len: usize,
    /// Bytes of record body after the header (includes padding).
    pub body_len: usize,
    pub padding: u8,
}

/// Outcome of an incremental parse.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    NeedMore,
    Invalid,
    Done(T),
}

/// Parses an SSLv2 record header.
pub fn record_header(i: &[u8]) -> Outcome<RecordHeader> {
    let (Some(&b0), Some(&b1)) = (i.first(), i.get(1)) else {
        return Outcome::NeedMore;
    };
    if b0 & 0x80 != 0 {
        let body_len = (usize::from(b0 & 0x7f) << 8) | usize::from(b1);
        if body_len == 0 {
            return Outcome::Invalid;
        }
        Outcome::Done(RecordHeader {
            header_len: 2,
            body_len,
            padding: 0,
        })
    } else {
        if b0 & 0x40 != 0 {
            // The "security escape" bit: not used by any implementation.
            return Outcome::Invalid;
        }
        let Some(&padding) = i.get(2) else {
            return Outcome::NeedMore;
        };
        let body_len = (usize::from(b0 & 0x3f) << 8) | usize::from(b1);
        if body_len == 0 || usize::from(padding) > body_len {
            return Outcome::Invalid;
        }
        Outcome::Done(RecordHeader {
            header_len: 3,
            body_len,
            padding,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    pub version: u16,
    /// 3-byte cipher kinds.
    pub cipher_specs: Vec<u32>,
    pub session_id: &'a [u8],
    pub challenge: &'a [u8],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHello {
    pub session_id_hit: bool,
    pub certificate_type: u8,
    pub version: u16,
    pub cipher_specs: Vec<u32>,
}

fn cipher_specs(i: &[u8]) -> Vec<u32> {
    i.chunks_exact(3)
        .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
        .collect()
}

/// CLIENT-HELLO body, starting at the message type byte.
pub fn client_hello(i: &[u8]) -> IResult<&[u8], ClientHello<'_>> {
    let (i, _) = nom::bytes::complete::tag(&[MSG_CLIENT_HELLO][..])(i)?;
    let (i, (version, cs_len, sid_len, ch_len)) = (be_u16, be_u16, be_u16, be_u16).parse(i)?;
    if cs_len % 3 != 0 || !(16..=32).contains(&ch_len) || (sid_len != 0 && sid_len != 16) {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    let (i, cs) = take(cs_len)(i)?;
    let (i, session_id) = take(sid_len)(i)?;
    let (i, challenge) = take(ch_len)(i)?;
    Ok((
        i,
        ClientHello {
            version,
            cipher_specs: cipher_specs(cs),
            session_id,
            challenge,
        },
    ))
}

/// SERVER-HELLO body, starting at the message type byte.
pub fn server_hello(i: &[u8]) -> IResult<&[u8], ServerHello> {
    let (i, _) = nom::bytes::complete::tag(&[MSG_SERVER_HELLO][..])(i)?;
    let (i, (hit, cert_type, version, cert_len, cs_len, _cid_len)) =
        (be_u8, be_u8, be_u16, be_u16, be_u16, be_u16).parse(i)?;
    if cs_len % 3 != 0 {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Verify,
        )));
    }
    let (i, _cert) = take(cert_len)(i)?;
    let (i, cs) = take(cs_len)(i)?;
    Ok((
        i,
        ServerHello {
            session_id_hit: hit != 0,
            certificate_type: cert_type,
            version,
            cipher_specs: cipher_specs(cs),
        },
    ))
}

/// ERROR body, starting at the message type byte: the error code.
pub fn error(i: &[u8]) -> IResult<&[u8], u16> {
    let (i, _) = nom::bytes::complete::tag(&[MSG_ERROR][..])(i)?;
    be_u16(i)
}

/// Name of an SSLv2 error code.
pub fn error_name(code: u16) -> String {
    match code {
        1 => "no_cipher".into(),
        2 => "no_certificate".into(),
        4 => "bad_certificate".into(),
        6 => "unsupported_certificate_type".into(),
        _ => format!("sslv2_error_{code}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A CLIENT-HELLO as OpenSSL 0.9.8 sent it: 2-byte header, version 2, three ciphers, 16-byte challenge.
    pub fn client_hello_bytes() -> Vec<u8> {
        let mut body = vec![
            MSG_CLIENT_HELLO,
            0x00,
            0x02,
            0x00,
            0x09,
            0x00,
            0x00,
            0x00,
            0x10,
        ];
        body.extend([0x07, 0x00, 0xc0, 0x01, 0x00, 0x80, 0x00, 0x00, 0x2f]);
        body.extend([0xaa; 16]);
        let mut rec = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
        rec.extend(body);
        rec
    }

    #[test]
    fn header_forms() {
        assert_eq!(record_header(&[]), Outcome::NeedMore);
        assert_eq!(record_header(&[0x80]), Outcome::NeedMore);
        assert_eq!(
            record_header(&[0x80, 0x2e]),
            Outcome::Done(RecordHeader {
                header_len: 2,
                body_len: 0x2e,
                padding: 0
            })
        );
        assert_eq!(record_header(&[0x01, 0x00]), Outcome::NeedMore);
        assert_eq!(
            record_header(&[0x01, 0x00, 0x07]),
            Outcome::Done(RecordHeader {
                header_len: 3,
                body_len: 0x100,
                padding: 7
            })
        );
        assert_eq!(record_header(&[0x40, 0x10, 0x00]), Outcome::Invalid);
        assert_eq!(record_header(&[0x80, 0x00]), Outcome::Invalid);
        assert_eq!(record_header(&[0x00, 0x02, 0x05]), Outcome::Invalid);
    }

    #[test]
    fn client_hello_parses() {
        let rec = client_hello_bytes();
        let (rest, ch) = client_hello(&rec[2..])
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(rest.is_empty());
        assert_eq!(ch.version, 2);
        assert_eq!(ch.cipher_specs, vec![0x07_00c0, 0x01_0080, 0x00_002f]);
        assert_eq!(ch.challenge.len(), 16);
    }

    #[test]
    fn client_hello_need_more_and_invalid() {
        let rec = client_hello_bytes();
        assert!(matches!(client_hello(&rec[2..20]), Err(nom::Err::Error(_))));
        let mut bad = rec[2..].to_vec();
        bad[4] = 0x08; // cipher specs length not a multiple of 3
        assert!(client_hello(&bad).is_err());
        assert!(client_hello(&[MSG_SERVER_HELLO, 0, 2]).is_err());
    }

    #[test]
    fn server_hello_and_error() {
        let mut b = vec![
            MSG_SERVER_HELLO,
            0,
            1,
            0x00,
            0x02,
            0x00,
            0x02,
            0x00,
            0x03,
            0x00,
            0x10,
            0xde,
            0xad,
        ];
        b.extend([0x01, 0x00, 0x80]);
        b.extend([0x55; 16]);
        let (_, sh) = server_hello(&b)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sh.version, 2);
        assert_eq!(sh.cipher_specs, vec![0x01_0080]);
        assert!(!sh.session_id_hit);
        assert_eq!(error(&[MSG_ERROR, 0, 1]).ok().map(|(_, c)| c), Some(1));
        assert_eq!(error_name(1), "no_cipher");
    }
}
