//! Evasion: one forged or oddly cut packet must not blind the analyzer.
//!
//! No peer sends these on purpose, so each capture is byte-built in test code from a real
//! fixture: its packets, renumbered with new initial sequence numbers (so nothing here
//! depends on the recorded ISNs), and then one packet forged, cut or retransmitted. The
//! expectations follow RFC 5961 §3 (an RST resets a connection only when its sequence
//! number is the next one the receiver expects, or, for stacks that do not send a
//! challenge ACK, inside the receive window; RFC 793 for a receiver in SYN-SENT) and
//! RFC 9293 §3.10.7.4 (data is taken in sequence-number order, however it arrives).

use crate::kit::fixture;
use crate::kit::net::{ACK, FIN, RST};
use crate::kit::pcap::{raw_capture, read_ip_packets};
use crate::kit::report::{codes, flows, json_of, notes};
use serde_json::Value;

/// A packet of a capture: its time and its IPv4 packet.
#[derive(Clone)]
struct Pkt {
    ts: (u32, u32),
    ip: Vec<u8>,
}

fn tcp_at(ip: &[u8]) -> usize {
    assert_eq!(ip[0] >> 4, 4, "these fixtures are IPv4");
    usize::from(ip[0] & 0x0f) * 4
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

fn sport(ip: &[u8]) -> u16 {
    let t = tcp_at(ip);
    u16::from_be_bytes([ip[t], ip[t + 1]])
}

fn seq(ip: &[u8]) -> u32 {
    be32(&ip[tcp_at(ip) + 4..])
}

fn ack(ip: &[u8]) -> u32 {
    be32(&ip[tcp_at(ip) + 8..])
}

fn flags(ip: &[u8]) -> u8 {
    ip[tcp_at(ip) + 13]
}

fn payload(ip: &[u8]) -> &[u8] {
    let t = tcp_at(ip);
    let data = usize::from(ip[t + 12] >> 4) * 4;
    &ip[t + data..]
}

fn set_seq_ack(ip: &mut [u8], seq: u32, ack: u32) {
    let t = tcp_at(ip);
    ip[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
    ip[t + 8..t + 12].copy_from_slice(&ack.to_be_bytes());
}

/// A segment like `template` (same direction, addresses, ports and TCP options) with
/// other sequence numbers, flags and payload.
fn like(template: &[u8], seq: u32, ack: u32, flags: u8, data: &[u8]) -> Vec<u8> {
    let t = tcp_at(template);
    let hdr = usize::from(template[t + 12] >> 4) * 4;
    let mut ip = template[..t + hdr].to_vec();
    ip.extend_from_slice(data);
    let total = ip.len() as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[t + 13] = flags;
    set_seq_ack(&mut ip, seq, ack);
    ip
}

/// A fixture's packets with new initial sequence numbers: the client's moved by
/// `client`, the server's by `server` (acknowledgements follow).
fn renumbered(rel: &str, client: u32, server: u32) -> (Vec<Pkt>, u16) {
    let packets = read_ip_packets(&fixture(rel));
    let client_port = sport(&packets[0].ip);
    let out = packets
        .into_iter()
        .map(|p| {
            let mut ip = p.ip;
            let from_client = sport(&ip) == client_port;
            let (own, peer) = if from_client {
                (client, server)
            } else {
                (server, client)
            };
            let a = if flags(&ip) & ACK != 0 {
                ack(&ip).wrapping_add(peer)
            } else {
                0
            };
            let s = seq(&ip).wrapping_add(own);
            set_seq_ack(&mut ip, s, a);
            Pkt { ts: p.ts, ip }
        })
        .collect();
    (out, client_port)
}

const CLIENT_SHIFT: u32 = 0x1357_9bdf;
const SERVER_SHIFT: u32 = 0x8642_0eca;

fn report(name: &str, packets: &[Pkt]) -> Vec<Value> {
    let frames: Vec<_> = packets.iter().map(|p| (p.ts, p.ip.clone())).collect();
    flows(&json_of(&raw_capture(&frames).write(name)))
}

fn only(flows: Vec<Value>) -> Value {
    assert_eq!(flows.len(), 1, "{flows:#?}");
    flows.into_iter().next().unwrap()
}

/// The sequence number a side sends next after packet `i` (its SYN, bytes and FIN).
fn next_seq(p: &Pkt) -> u32 {
    let f = flags(&p.ip);
    let control = u32::from(f & 0x02 != 0) + u32::from(f & FIN != 0);
    seq(&p.ip).wrapping_add(payload(&p.ip).len() as u32 + control)
}

/// tls13.pcap: 1 SYN, 2 SYN-ACK, 3 ACK, 4 ClientHello (337 bytes), 5 ACK, 6 server
/// flight, ... 16/17 FINs, 18 last ACK.
fn tls13() -> (Vec<Pkt>, u16) {
    renumbered("tls/tls13.pcap", CLIENT_SHIFT, SERVER_SHIFT)
}

fn assert_tls13_intact(f: &Value) {
    assert_eq!(f["encryption"], "tls", "{f:#}");
    assert_eq!(f["tls"]["version"], "TLSv1.3", "{f:#}");
    assert_eq!(f["tls"]["client_hello"]["sni"], "tls13.example", "{f:#}");
    assert_eq!(f["tls"]["established"], true, "{f:#}");
    assert_eq!(f["end_reason"], "fin", "{f:#}");
    for n in ["gap", "reassembly_cap"] {
        assert!(!notes(f).contains(&n), "{n}: {:?}", notes(f));
    }
}

/// RFC 5961 §3.2: an RST whose sequence number is outside the receive window is dropped.
/// One forged 2^30 away from the server's next byte (ahead or behind), before the
/// ClientHello or inside the server's flight, must not hide the handshake that follows.
#[test]
fn an_rst_far_outside_the_window_is_ignored() {
    let (bare, client_port) = tls13();
    let want_packets = {
        let f = only(report("evasion-tls13-renumbered.pcap", &bare));
        assert_tls13_intact(&f);
        f["packets"].clone()
    };
    for (after, away) in [
        (3usize, 1u32 << 30),
        (3, 1u32.wrapping_sub(1 << 30)),
        (6, 1 << 30),
    ] {
        let mut p = bare.clone();
        // From the server, whose next byte the flow knows from its SYN-ACK on.
        let last_server = bare[..after]
            .iter()
            .rev()
            .find(|x| sport(&x.ip) != client_port)
            .unwrap();
        let forged = like(
            &last_server.ip,
            next_seq(last_server).wrapping_add(away),
            0,
            RST,
            &[],
        );
        p.insert(
            after,
            Pkt {
                ts: bare[after - 1].ts,
                ip: forged,
            },
        );
        let f = only(report("evasion-rst-outside.pcap", &p));
        assert_tls13_intact(&f);
        assert!(notes(&f).contains(&"rst_ignored"), "{:?}", notes(&f));
        // Not part of the connection: not counted either.
        assert_eq!(f["packets"], want_packets, "after {after}");
    }
}

/// The same forged RST in a plaintext SMTP session, just before AUTH PLAIN: the
/// credentials are still seen.
#[test]
fn an_rst_outside_the_window_does_not_hide_cleartext_auth() {
    // smtp-cleartext-auth.pcap: 9 is the client's AUTH PLAIN, 8 the server's EHLO reply.
    let (bare, client_port) = renumbered("starttls/smtp-cleartext-auth.pcap", 0x0bad_cafe, 7);
    let mut p = bare.clone();
    let reply = &bare[7];
    assert_ne!(sport(&reply.ip), client_port);
    let forged = like(
        &reply.ip,
        next_seq(reply).wrapping_sub(1 << 30),
        0,
        RST | ACK,
        &[],
    );
    p.insert(
        8,
        Pkt {
            ts: reply.ts,
            ip: forged,
        },
    );
    let f = only(report("evasion-rst-smtp.pcap", &p));
    assert_eq!(f["encryption"], "plaintext", "{f:#}");
    assert!(codes(&f).contains(&"CLEARTEXT_AUTH"), "{:?}", codes(&f));
    assert!(notes(&f).contains(&"rst_ignored"), "{:?}", notes(&f));
    assert_eq!(f["end_reason"], "fin");
}

/// RFC 5961 §3.2: an RST carrying exactly the next expected sequence number resets the
/// connection; one inside the window is taken too (the challenge ACK a RFC 5961 stack
/// sends is not something a monitor can wait for, and RFC 793 stacks reset). Whatever
/// follows is a straggler of a closed connection.
#[test]
fn an_acceptable_rst_ends_the_connection() {
    let (bare, _) = tls13();
    for away in [0u32, 1000] {
        let mut p = bare[..4].to_vec();
        let syn_ack = &bare[1];
        let forged = like(
            &syn_ack.ip,
            next_seq(syn_ack).wrapping_add(away),
            0,
            RST,
            &[],
        );
        p.push(Pkt {
            ts: bare[3].ts,
            ip: forged,
        });
        p.extend_from_slice(&bare[4..]);
        let f = only(report("evasion-rst-in-window.pcap", &p));
        assert_eq!(f["end_reason"], "rst", "{away}: {f:#}");
        assert!(!notes(&f).contains(&"rst_ignored"), "{:?}", notes(&f));
        // SYN, ACK and ClientHello from the client; SYN-ACK and RST from the server.
        assert_eq!(f["packets"]["client"], 3);
        assert_eq!(f["packets"]["server"], 2);
    }
}

/// RFC 793 (SYN-SENT): a client that has only sent its SYN takes an RST only when it
/// acknowledges that SYN (a refused connection); a forged one acknowledging anything else
/// is dropped, and the handshake goes on.
#[test]
fn a_refusal_must_acknowledge_the_syn() {
    let (bare, _) = tls13();
    let syn = &bare[0];
    let template = &bare[1];
    // The refusal a closed port sends: RST/ACK, seq 0, ack = ISN + 1.
    let refused = like(
        &template.ip,
        0,
        seq(&syn.ip).wrapping_add(1),
        RST | ACK,
        &[],
    );
    let p = vec![
        syn.clone(),
        Pkt {
            ts: syn.ts,
            ip: refused,
        },
    ];
    let f = only(report("evasion-refused.pcap", &p));
    assert_eq!(f["end_reason"], "rst", "{f:#}");
    // A forged refusal acknowledging another ISN, then the real handshake.
    let forged = like(
        &template.ip,
        0,
        seq(&syn.ip).wrapping_add(99),
        RST | ACK,
        &[],
    );
    let mut p = bare.clone();
    p.insert(
        1,
        Pkt {
            ts: syn.ts,
            ip: forged,
        },
    );
    let f = only(report("evasion-forged-refusal.pcap", &p));
    assert_tls13_intact(&f);
    assert!(notes(&f).contains(&"rst_ignored"), "{:?}", notes(&f));
}

/// Replaces packet `i` by one-byte segments of its payload, last byte first.
fn one_byte_segments_backwards(p: &mut Vec<Pkt>, i: usize) -> usize {
    let orig = p.remove(i);
    let data = payload(&orig.ip).to_vec();
    let (s, a, f) = (seq(&orig.ip), ack(&orig.ip), flags(&orig.ip));
    let pieces = data.iter().enumerate().rev().map(|(k, b)| Pkt {
        ts: orig.ts,
        ip: like(&orig.ip, s.wrapping_add(k as u32), a, f, &[*b]),
    });
    p.splice(i..i, pieces);
    data.len()
}

/// A ClientHello (337 bytes) sent as one-byte segments in reverse order: more pieces
/// than the out-of-order cap once counted, but one run of 336 bytes, so it is read whole
/// and its SNI is seen.
#[test]
fn a_client_hello_sent_backwards_one_byte_at_a_time_is_read() {
    let (mut p, _) = tls13();
    let n = one_byte_segments_backwards(&mut p, 3);
    assert_eq!(n, 337);
    // The first segment sent carries the last byte.
    assert_eq!(seq(&p[3].ip), seq(&p[3 + n - 1].ip).wrapping_add(336));
    let f = only(report("evasion-ch-backwards.pcap", &p));
    assert_tls13_intact(&f);
    assert_eq!(f["packets"]["client"], 9 + 336);
}

/// An IMAP LOGIN of 295 bytes (the fixture's own command with a longer password) sent as
/// one-byte segments in reverse order: the credentials are still seen.
#[test]
fn an_imap_login_sent_backwards_one_byte_at_a_time_is_seen() {
    // imap-cleartext-login.pcap: 9 is the client's `EOCH1 LOGIN bob "..."` (41 bytes).
    let (bare, client_port) = renumbered(
        "starttls/imap-cleartext-login.pcap",
        0x2222_0000,
        0x4444_0000,
    );
    let login = payload(&bare[8].ip).to_vec();
    assert!(
        login.starts_with(b"EOCH1 LOGIN bob \""),
        "{:?}",
        String::from_utf8_lossy(&login)
    );
    let mut longer = login[..login.len() - 3].to_vec();
    longer.resize(295 - 3, b'x');
    longer.extend_from_slice(b"\"\r\n");
    let extra = (longer.len() - login.len()) as u32;
    let mut p = Vec::new();
    for (i, pk) in bare.iter().enumerate() {
        let mut ip = pk.ip.clone();
        if i == 8 {
            ip = like(&ip, seq(&ip), ack(&ip), flags(&ip), &longer);
        } else if i > 8 {
            // Everything after the LOGIN moves by the bytes it grew.
            let client = sport(&ip) == client_port;
            let (s, a) = (seq(&ip), ack(&ip));
            if client {
                set_seq_ack(&mut ip, s.wrapping_add(extra), a);
            } else {
                set_seq_ack(&mut ip, s, a.wrapping_add(extra));
            }
        }
        p.push(Pkt { ts: pk.ts, ip });
    }
    let n = one_byte_segments_backwards(&mut p, 8);
    assert_eq!(n, 295);
    let f = only(report("evasion-imap-login-backwards.pcap", &p));
    assert_eq!(f["encryption"], "plaintext", "{f:#}");
    assert!(codes(&f).contains(&"CLEARTEXT_AUTH"), "{:?}", codes(&f));
    assert_eq!(f["cleartext_auth"][0]["mechanism"], "IMAP LOGIN");
    for n in ["gap", "reassembly_cap"] {
        assert!(!notes(&f).contains(&n), "{n}: {:?}", notes(&f));
    }
}

/// A retransmission of the whole ClientHello with another SNI, sent after the original
/// was delivered: the SNI lies 184 bytes behind the delivery point (beyond the 64 bytes
/// once compared). The first copy wins and the conflict is noted.
#[test]
fn a_conflicting_retransmission_far_behind_is_noted() {
    let (mut p, _) = tls13();
    let hello = p[3].clone();
    let data = payload(&hello.ip).to_vec();
    let at = data
        .windows(13)
        .position(|w| w == b"tls13.example")
        .unwrap();
    assert_eq!(data.len() - at, 184);
    let mut evil = data.clone();
    evil[at..at + 13].copy_from_slice(b"evil3.example");
    let resent = like(
        &hello.ip,
        seq(&hello.ip),
        ack(&hello.ip),
        flags(&hello.ip),
        &evil,
    );
    // After the server's ACK of the ClientHello.
    p.insert(
        5,
        Pkt {
            ts: p[4].ts,
            ip: resent,
        },
    );
    let f = only(report("evasion-conflict-far.pcap", &p));
    assert_tls13_intact(&f);
    assert!(
        notes(&f).contains(&"conflicting_overlap"),
        "{:?}",
        notes(&f)
    );
    // The same bytes retransmitted are no conflict.
    let (mut q, _) = tls13();
    q.insert(5, hello);
    let f = only(report("evasion-retransmitted.pcap", &q));
    assert!(
        !notes(&f).contains(&"conflicting_overlap"),
        "{:?}",
        notes(&f)
    );
}
