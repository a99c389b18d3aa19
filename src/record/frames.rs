//! Where to look in the capture: the packets behind each verdict, and the flow's
//! Community ID.
//!
//! While a flow is analysed every frame is a packet *ordinal*: its 1-based position
//! among all packets read, over every input in order (what the flow engine already
//! counts). The output stage turns ordinals into the contract's terms with a
//! [`FrameMap`]: the input (index in `inputs`) and the packet's 1-based number within
//! that file, as Wireshark's `frame.number` counts it.

use serde::Serialize;
use std::collections::BTreeMap;

/// The packets behind a record, by event. A value of 0 means the event was not seen
/// (and the key is left out of the JSON); `first` and `last` are always set on a
/// finished record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Frames {
    /// The flow's first packet.
    pub first: u64,
    /// The flow's last packet.
    pub last: u64,
    /// The server's capability list that offered the upgrade (or showed it masked).
    #[serde(skip_serializing_if = "unseen")]
    pub starttls_offer: u64,
    /// The client's upgrade request.
    #[serde(skip_serializing_if = "unseen")]
    pub starttls_command: u64,
    /// The server's answer to it.
    #[serde(skip_serializing_if = "unseen")]
    pub starttls_reply: u64,
    /// The ClientHello reported (after a HelloRetryRequest, the second one).
    #[serde(skip_serializing_if = "unseen")]
    pub client_hello: u64,
    /// The ServerHello.
    #[serde(skip_serializing_if = "unseen")]
    pub server_hello: u64,
    /// The server's Certificate message.
    #[serde(skip_serializing_if = "unseen")]
    pub certificate: u64,
    /// TLS: the first application-data record; QUIC: the first 1-RTT packet; DTLS:
    /// the first record of epoch 1 or later.
    #[serde(skip_serializing_if = "unseen")]
    pub first_encrypted: u64,
    /// The first credentials sent in the clear.
    #[serde(skip_serializing_if = "unseen")]
    pub cleartext_auth: u64,
    /// The client plaintext found where TLS should begin.
    #[serde(skip_serializing_if = "unseen")]
    pub injection: u64,
    /// The server plaintext found where TLS should begin.
    #[serde(skip_serializing_if = "unseen")]
    pub response_injection: u64,
    /// The first packet that carried payload from the client.
    #[serde(skip)]
    pub first_client_payload: u64,
    /// The first packet that carried payload from the server (a greeting, a banner).
    #[serde(skip)]
    pub first_server_payload: u64,
}

fn unseen(f: &u64) -> bool {
    *f == 0
}

/// Sets `slot` to `at` unless an earlier event already set it.
pub fn first_at(slot: &mut u64, at: u64) {
    if *slot == 0 {
        *slot = at;
    }
}

impl Frames {
    /// The first packet that carried payload either way (where a dialogue begins).
    pub fn first_payload(&self) -> u64 {
        match (self.first_client_payload, self.first_server_payload) {
            (0, s) => s,
            (c, 0) => c,
            (c, s) => c.min(s),
        }
    }

    /// Every frame field with its JSON name, to rewrite them together.
    pub fn fields_mut(&mut self) -> [(&'static str, &mut u64); 14] {
        [
            ("first", &mut self.first),
            ("last", &mut self.last),
            ("starttls_offer", &mut self.starttls_offer),
            ("starttls_command", &mut self.starttls_command),
            ("starttls_reply", &mut self.starttls_reply),
            ("client_hello", &mut self.client_hello),
            ("server_hello", &mut self.server_hello),
            ("certificate", &mut self.certificate),
            ("first_encrypted", &mut self.first_encrypted),
            ("cleartext_auth", &mut self.cleartext_auth),
            ("injection", &mut self.injection),
            ("response_injection", &mut self.response_injection),
            ("first_client_payload", &mut self.first_client_payload),
            ("first_server_payload", &mut self.first_server_payload),
        ]
    }
}

/// Turns packet ordinals into (input, packet number within that input).
///
/// Each input's start is recorded before its first packet is read; an ordinal then
/// belongs to the last input that began before it. With no start recorded (live
/// capture) every ordinal is a packet number of input 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FrameMap {
    /// Packets read before each input, in input order.
    starts: Vec<u64>,
}

impl FrameMap {
    /// Input `starts.len()` begins after `before` packets.
    pub fn begin(&mut self, before: u64) {
        self.starts.push(before);
    }

    /// The input and packet number of ordinal `ordinal` (1-based); 0 stays 0.
    pub fn locate(&self, ordinal: u64) -> (usize, u64) {
        if ordinal == 0 {
            return (0, 0);
        }
        let i = self
            .starts
            .partition_point(|&s| s < ordinal)
            .saturating_sub(1);
        let base = self.starts.get(i).copied().unwrap_or(0);
        (i, ordinal - base.min(ordinal))
    }
}

/// Frame fields that lie in another input than the record's own, by JSON name.
pub type FrameInputs = BTreeMap<&'static str, usize>;

/// Community ID v1 of a flow (<https://github.com/corelight/community-id-spec>):
/// `1:` and the base64 of the SHA-1 of the seed (2 bytes), the two addresses, the IP
/// protocol number, a zero byte and the two ports, all in network order, the
/// endpoint with the smaller address (then port) first. Both endpoints must be of
/// one family (a flow's always are).
pub fn community_id(
    seed: u16,
    proto: u8,
    a: (std::net::IpAddr, u16),
    b: (std::net::IpAddr, u16),
) -> String {
    use sha1::{Digest, Sha1};
    let (a_ip, b_ip) = (addr_bytes(a.0), addr_bytes(b.0));
    let ((sa, sp), (da, dp)) = if (&a_ip, a.1) <= (&b_ip, b.1) {
        ((a_ip, a.1), (b_ip, b.1))
    } else {
        ((b_ip, b.1), (a_ip, a.1))
    };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(sa.as_slice());
    h.update(da.as_slice());
    h.update([proto, 0]);
    h.update(sp.to_be_bytes());
    h.update(dp.to_be_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64(&mut out, &digest);
    out
}

/// An address as its network-order bytes (4 for IPv4, 16 for IPv6), without allocating.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum AddrBytes {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl AddrBytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            AddrBytes::V4(b) => b,
            AddrBytes::V6(b) => b,
        }
    }
}

fn addr_bytes(ip: std::net::IpAddr) -> AddrBytes {
    match ip {
        std::net::IpAddr::V4(v) => AddrBytes::V4(v.octets()),
        std::net::IpAddr::V6(v) => AddrBytes::V6(v.octets()),
    }
}

/// Appends standard base64 (with padding) of `data`.
fn base64(out: &mut String, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |v: u32| char::from(ALPHABET.get((v & 63) as usize).copied().unwrap_or(b'='));
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = b(0) << 16 | b(1) << 8 | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    /// The specification's own baseline (community-id-spec `baseline/baseline_default.json`).
    #[test]
    fn community_id_matches_the_specification_baseline() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            community_id(
                0,
                6,
                (ip("128.232.110.120"), 34855),
                (ip("66.35.250.204"), 80)
            ),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        // Either direction gives the same hash.
        assert_eq!(
            community_id(
                0,
                6,
                (ip("66.35.250.204"), 80),
                (ip("128.232.110.120"), 34855)
            ),
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
        );
        assert_eq!(
            community_id(
                1,
                6,
                (ip("128.232.110.120"), 34855),
                (ip("66.35.250.204"), 80)
            ),
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc="
        );
    }

    #[test]
    fn base64_pads_like_rfc_4648() {
        let enc = |d: &[u8]| {
            let mut s = String::new();
            base64(&mut s, d);
            s
        };
        assert_eq!(enc(b""), "");
        assert_eq!(enc(b"f"), "Zg==");
        assert_eq!(enc(b"fo"), "Zm8=");
        assert_eq!(enc(b"foo"), "Zm9v");
        assert_eq!(enc(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn ordinals_become_numbers_within_their_input() {
        let mut m = FrameMap::default();
        assert_eq!(
            m.locate(7),
            (0, 7),
            "live capture: one input, counted from the start"
        );
        m.begin(0);
        m.begin(10);
        m.begin(10); // an empty input
        m.begin(25);
        assert_eq!(m.locate(1), (0, 1));
        assert_eq!(m.locate(10), (0, 10));
        assert_eq!(m.locate(11), (2, 1));
        assert_eq!(m.locate(25), (2, 15));
        assert_eq!(m.locate(26), (3, 1));
        assert_eq!(m.locate(0), (0, 0));
    }
}
