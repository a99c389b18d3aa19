//! The TCP flow tracker through the whole pipeline: captures built byte by byte,
//! run with `--json --all`, the records checked. What starts a new flow on a
//! reused 5-tuple (a new ISN after a close, a fresh SYN while the old connection
//! is open), what the closed connections' tombstones absorb, and which side is
//! the client when the SYN was not seen.

// A panic in a test is a failed test, not a crash on input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod kit;

use kit::net::{ACK, Ep, FIN, PSH, RST, SYN};
use kit::pcap::{Conn, Pcap};
use kit::report::{flows, json_of, notes, only_flow, ports};
use kit::tls::{C, CCS, S, client_hello, server_hello};
use serde_json::Value;

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

/// A flow as these tests compare it: `id client>server encryption version end_reason`.
fn brief(f: &Value) -> String {
    let (c, s) = ports(f);
    format!(
        "{} {c}>{s} {} {} {}",
        f["id"],
        f["encryption"].as_str().unwrap_or("?"),
        f["tls"]["version"].as_str().unwrap_or("-"),
        f["end_reason"].as_str().unwrap_or("?"),
    )
}

fn briefs(doc: &Value) -> Vec<String> {
    flows(doc).iter().map(brief).collect()
}

/// A flow's packets from the client and from the server.
fn packets(f: &Value) -> (u64, u64) {
    let n = |side: &str| f["packets"][side].as_u64().unwrap();
    (n("client"), n("server"))
}

/// Packets the tracker counted for no flow (stragglers of closed connections,
/// bare segments of no known flow).
fn stray(doc: &Value) -> u64 {
    doc["summary"]["packets"]["stray"].as_u64().unwrap()
}

/// A connection from `c` to `s` with the ISNs `isns`: SYN, SYN-ACK, and a TLS 1.2
/// handshake (ClientHello, ServerHello, CCS both ways).
fn tls12(p: &mut Pcap, c: Ep, s: Ep, isns: (u32, u32)) -> Conn {
    let mut conn = Conn::new(c, s, isns.0, isns.1);
    conn.open(p)
        .client(p, ACK | PSH, &client_hello())
        .server(p, ACK | PSH, &server_hello(0x0303, 0xc02f))
        .client(p, ACK | PSH, CCS)
        .server(p, ACK | PSH, CCS);
    conn
}

/// A connection from `c` to `s` with the ISNs `isns`: SYN, SYN-ACK, and a
/// plaintext HTTP exchange.
fn http(p: &mut Pcap, c: Ep, s: Ep, isns: (u32, u32)) -> Conn {
    let mut conn = Conn::new(c, s, isns.0, isns.1);
    conn.open(p)
        .client(p, ACK | PSH, GET)
        .server(p, ACK | PSH, OK);
    conn
}

// ---------------------------------------------------------------------------
// A new connection on the same 5-tuple.

/// A TLS connection closed by FIN both ways, then a SYN with another ISN on the
/// same 5-tuple and plain HTTP: two flows, each with its own verdict. The
/// closed connection's tombstone gives way to the fresh SYN.
#[test]
fn new_isn_after_the_close_is_a_second_flow_with_its_own_verdict() {
    let mut p = Pcap::new();
    tls12(&mut p, C, S, (1000, 5000)).close(&mut p);
    http(&mut p, C, S, (900_000, 7000)).close(&mut p);
    let doc = json_of(&p.write("flow-isn-restart.pcap"));
    assert_eq!(
        briefs(&doc),
        [
            "1 40000>8443 tls TLSv1.2 fin",
            "2 40000>8443 plaintext - fin"
        ],
        "{doc:#}"
    );
    let f = flows(&doc);
    assert_eq!(f[1]["app_protocol"], "http");
    assert!(f[1]["tls"].is_null(), "{:#}", f[1]);
    // Each record counts its own connection only (the last ACK comes after both
    // FINs ended the flow).
    assert_eq!(packets(&f[0]), (4, 4));
    assert_eq!(packets(&f[1]), (3, 3));
    for flow in &f {
        assert!(notes(flow).is_empty(), "{flow:#}");
    }
    // The client's last ACK of each connection came after its flow had ended.
    assert_eq!(stray(&doc), 2);
}

/// The client closed its side (FIN) but the server had not when a SYN with
/// another ISN came: the old flow ends as `fin`, not `port_reuse`, and the new
/// connection is a flow of its own.
#[test]
fn new_isn_after_one_fin_ends_the_old_flow_as_fin() {
    let mut p = Pcap::new();
    tls12(&mut p, C, S, (1000, 5000)).client(&mut p, FIN | ACK, b"");
    http(&mut p, C, S, (900_000, 7000));
    let doc = json_of(&p.write("flow-half-closed.pcap"));
    assert_eq!(
        briefs(&doc),
        [
            "1 40000>8443 tls TLSv1.2 fin",
            "2 40000>8443 plaintext - end_of_input"
        ],
        "{doc:#}"
    );
}

/// The server answers the SYN twice with different ISNs (it restarted). Whichever
/// ISN the server's data then continues, the stream follows it and the
/// ServerHello is read; so does a SYN-ACK that comes after the client's data.
#[test]
fn syn_acks_with_two_isns_follow_the_one_the_data_continues() {
    for (late, real) in [(false, 6000), (false, 5000), (true, 6000), (true, 5000)] {
        let ch = client_hello();
        let mut p = Pcap::new();
        p.tcp(C, S, 1000, 0, SYN, b"")
            .tcp(S, C, 5000, 1001, SYN | ACK, b"");
        if late {
            p.tcp(C, S, 1001, 5001, ACK | PSH, &ch);
        }
        p.tcp(S, C, 6000, 1001, SYN | ACK, b"");
        let mut rest = Conn::new(C, S, 1001, real + 1);
        if late {
            rest.cseq += ch.len() as u32;
        } else {
            rest.client(&mut p, ACK | PSH, &ch);
        }
        rest.server(&mut p, ACK | PSH, &server_hello(0x0303, 0xc02f))
            .client(&mut p, ACK | PSH, CCS)
            .server(&mut p, ACK | PSH, CCS);
        let f = only_flow(&json_of(&p.write("flow-two-isns.pcap")));
        let label = format!("ISN {real}, second SYN-ACK after the ClientHello: {late}");
        assert_eq!(
            brief(&f),
            "1 40000>8443 tls TLSv1.2 end_of_input",
            "{label}"
        );
        assert_eq!(f["tls"]["established"], true, "{label}");
        assert_eq!(notes(&f), ["incomplete"], "{label}");
    }
}

/// A fresh SYN (another ISN) on the 5-tuple of a connection still open starts a
/// new flow, and the old one ends as `port_reuse`; a retransmitted SYN (the same
/// ISN), before or after the handshake's data, is the same connection.
#[test]
fn fresh_syn_on_an_open_flow_ends_it_as_port_reuse() {
    let mut p = Pcap::new();
    p.tcp(C, S, 1000, 0, SYN, b"").tcp(C, S, 1000, 0, SYN, b"");
    let mut first = Conn::new(C, S, 1001, 5000);
    first.server(&mut p, SYN | ACK, b"");
    first.client(&mut p, ACK | PSH, &client_hello());
    p.tcp(C, S, 1000, 0, SYN, b"");
    first
        .server(&mut p, ACK | PSH, &server_hello(0x0303, 0xc02f))
        .client(&mut p, ACK | PSH, CCS)
        .server(&mut p, ACK | PSH, CCS);
    // No FIN, no RST: the client reuses its port for a new connection.
    http(&mut p, C, S, (2_000_000, 7000));
    let doc = json_of(&p.write("flow-port-reuse.pcap"));
    assert_eq!(
        briefs(&doc),
        [
            "1 40000>8443 tls TLSv1.2 port_reuse",
            "2 40000>8443 plaintext - end_of_input"
        ],
        "{doc:#}"
    );
    let f = flows(&doc);
    // The three SYNs of the first connection are its packets.
    assert_eq!(packets(&f[0]), (5, 3));
    assert_eq!(f[0]["tls"]["established"], true);
    assert!(notes(&f[0]).is_empty(), "{:#}", f[0]);
    assert_eq!(stray(&doc), 0);
}

/// A SYN from the server's side of an open connection (the two swapped roles
/// for a new connection) is port reuse too: the new flow's client is the old
/// one's server.
#[test]
fn syn_from_the_server_side_of_an_open_flow_is_port_reuse_with_roles_reversed() {
    let mut p = Pcap::new();
    tls12(&mut p, C, S, (1000, 5000));
    http(&mut p, S, C, (900_000, 7000));
    let doc = json_of(&p.write("flow-reversed-syn.pcap"));
    assert_eq!(
        briefs(&doc),
        [
            "1 40000>8443 tls TLSv1.2 port_reuse",
            "2 8443>40000 plaintext - end_of_input"
        ],
        "{doc:#}"
    );
}

// ---------------------------------------------------------------------------
// Tombstones.

/// A connection from `c` to [`S`] through the ClientHello and ServerHello, ended
/// by the client's RST. Returns it as it stood before the ServerHello, so that a
/// test can send that again late.
fn hello_then_rst(p: &mut Pcap, c: Ep) -> Conn {
    let mut conn = Conn::new(c, S, 1000, 5000);
    conn.open(p).client(p, ACK | PSH, &client_hello());
    let before = conn.clone();
    conn.server(p, ACK | PSH, &server_hello(0x0303, 0xc02f))
        .client(p, RST | ACK, b"");
    before
}

/// Two connections end, one by the FIN handshake, one by RST; then their
/// stragglers arrive: a retransmitted ServerHello, a retransmitted FIN-ACK, a
/// retransmitted SYN-ACK. Each straggler is counted as stray and makes no new
/// (midstream) flow, and the records count none of them.
#[test]
fn stragglers_after_fin_or_rst_make_no_ghost_flow() {
    let sh = server_hello(0x0303, 0xc02f);
    let mut p = Pcap::new();
    let fin_c: Ep = (1, 40001);
    let mut a = Conn::new(fin_c, S, 1000, 5000);
    a.open(&mut p).client(&mut p, ACK | PSH, &client_hello());
    let mut late = a.clone();
    a.server(&mut p, ACK | PSH, &sh).close(&mut p);
    // The client's last ACK above is the first straggler; then the ServerHello,
    // the server's FIN and its SYN-ACK again.
    late.server(&mut p, ACK | PSH, &sh);
    a.sseq -= 1;
    a.server(&mut p, FIN | ACK, b"");
    p.tcp(S, fin_c, 5000, 1001, SYN | ACK, b"");

    hello_then_rst(&mut p, (1, 40002))
        .server(&mut p, ACK | PSH, &sh)
        .server(&mut p, FIN | ACK, b"");

    let doc = json_of(&p.write("flow-stragglers.pcap"));
    assert_eq!(
        briefs(&doc),
        [
            "1 40001>8443 tls TLSv1.2 fin",
            "2 40002>8443 tls TLSv1.2 rst"
        ],
        "{doc:#}"
    );
    let f = flows(&doc);
    assert_eq!(packets(&f[0]), (3, 3));
    assert_eq!(packets(&f[1]), (3, 2));
    assert_eq!(stray(&doc), 6);
    assert_eq!(doc["summary"]["flows"]["total"], 2);
}

/// A tombstone lasts one idle timeout: a straggler with data later than that is
/// taken for a connection seen midstream.
#[test]
fn tombstone_lasts_one_idle_timeout() {
    let sh = server_hello(0x0303, 0xc02f);
    let mut p = Pcap::new();
    let mut late = hello_then_rst(&mut p, C);
    late.clone().server(&mut p, ACK | PSH, &sh);
    p.t += 11_000; // past `--idle-timeout 10`
    late.server(&mut p, ACK | PSH, &sh);
    let path = p.write("flow-tombstone-expires.pcap");
    let doc = kit::report::json_run(&[
        "-r",
        kit::arg(&path),
        "--json",
        "--all",
        "--idle-timeout",
        "10",
    ]);
    assert_eq!(
        briefs(&doc),
        [
            "1 40000>8443 tls TLSv1.2 rst",
            "2 40000>8443 tls TLSv1.2 end_of_input"
        ],
        "{doc:#}"
    );
    let ghost = &flows(&doc)[1];
    assert_eq!(
        notes(ghost),
        ["midstream", "roles_from_ports", "one_sided", "incomplete"],
        "{ghost:#}"
    );
    assert_eq!(stray(&doc), 1);
}

// ---------------------------------------------------------------------------
// Client and server.

/// An SMTP dialogue seen from its middle, the server's 220 banner first, with
/// STARTTLS and a TLS 1.2 handshake after it.
fn smtp_from_the_banner(p: &mut Pcap, c: Ep, s: Ep) {
    Conn::new(c, s, 1000, 5000)
        .server(p, ACK | PSH, b"220 mail.example ESMTP\r\n")
        .client(p, ACK | PSH, b"EHLO a.example\r\n")
        .server(p, ACK | PSH, b"250-mail.example\r\n250 STARTTLS\r\n")
        .client(p, ACK | PSH, b"STARTTLS\r\n")
        .server(p, ACK | PSH, b"220 2.0.0 go ahead\r\n")
        .client(p, ACK | PSH, &client_hello())
        .server(p, ACK | PSH, &server_hello(0x0303, 0xc02f));
}

/// No SYN, and the first packet goes from the server to the client: the client is
/// the side that received it. On a service port (443, 25) the port says so; on two
/// unlisted ports the lower would be taken for the server, and the SMTP banner
/// (content) corrects it.
#[test]
fn midstream_flow_seen_from_the_server_first_gets_the_roles_right() {
    let mut p = Pcap::new();
    Conn::new((1, 40000), (2, 443), 1000, 5000)
        .server(&mut p, ACK | PSH, &server_hello(0x0303, 0xc02f))
        .server(&mut p, ACK | PSH, CCS)
        .client(&mut p, ACK | PSH, CCS);
    let f = only_flow(&json_of(&p.write("flow-server-hello-first.pcap")));
    assert_eq!(brief(&f), "1 40000>443 tls TLSv1.2 end_of_input", "{f:#}");
    assert_eq!(notes(&f), ["midstream", "roles_from_ports", "incomplete"]);
    assert_eq!(packets(&f), (1, 2));
    assert_eq!(
        f["tls"]["server_hello"]["cipher_suite"],
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    );

    let mut p = Pcap::new();
    smtp_from_the_banner(&mut p, (1, 40000), (2, 25));
    let f = only_flow(&json_of(&p.write("flow-banner-first-25.pcap")));
    assert_eq!(
        brief(&f),
        "1 40000>25 starttls TLSv1.2 end_of_input",
        "{f:#}"
    );
    assert_eq!(notes(&f), ["midstream", "roles_from_ports", "incomplete"]);
    assert_eq!(packets(&f), (3, 4));

    // 52525 is no service port and the higher one: the ports point the wrong way.
    let mut p = Pcap::new();
    smtp_from_the_banner(&mut p, (1, 40000), (2, 52525));
    let f = only_flow(&json_of(&p.write("flow-banner-first-high.pcap")));
    assert_eq!(
        brief(&f),
        "1 40000>52525 starttls TLSv1.2 end_of_input",
        "{f:#}"
    );
    assert_eq!(
        notes(&f),
        [
            "midstream",
            "roles_from_ports",
            "roles_from_content",
            "incomplete"
        ]
    );
    // The counters follow the swap.
    assert_eq!(packets(&f), (3, 4));
    assert_eq!(f["starttls"]["command"], "STARTTLS");
}

/// No SYN; the ClientHello comes from the service port (443) to the high one: the
/// ports would name 443 the server, content names it the client.
#[test]
fn midstream_client_hello_names_the_client_against_the_ports() {
    let mut p = Pcap::new();
    Conn::new((2, 443), (1, 50000), 1000, 7000)
        .client(&mut p, ACK, &client_hello())
        .server(&mut p, ACK, &server_hello(0x0303, 0xc02f));
    let f = only_flow(&json_of(&p.write("flow-client-hello-from-443.pcap")));
    assert_eq!(brief(&f), "1 443>50000 tls TLSv1.2 end_of_input", "{f:#}");
    assert_eq!(
        notes(&f),
        [
            "midstream",
            "roles_from_ports",
            "roles_from_content",
            "incomplete"
        ]
    );
    assert_eq!(packets(&f), (1, 1));
    assert_eq!(f["tls"]["client_hello"]["sni"], "a.example");
}

/// A flow whose SYN (or SYN-ACK) was seen keeps the roles of the handshake, whatever
/// the content says: a "client" that sends the 220 banner, a "server" that sends
/// the ClientHello.
#[test]
fn seen_handshake_fixes_the_roles_against_content() {
    let c: Ep = (1, 40000);
    let s: Ep = (2, 52525);
    let mut p = Pcap::new();
    Conn::new(c, s, 1000, 5000)
        .open(&mut p)
        .client(&mut p, ACK | PSH, b"220 mail.example ESMTP\r\n")
        .server(&mut p, ACK | PSH, b"EHLO a.example\r\n")
        .client(&mut p, ACK | PSH, b"250 mail.example\r\n");
    let f = only_flow(&json_of(&p.write("flow-syn-banner.pcap")));
    // The input ends mid-dialogue, where an upgrade could still come: `unknown`.
    assert_eq!(brief(&f), "1 40000>52525 unknown - end_of_input", "{f:#}");
    assert_eq!(notes(&f), ["incomplete"], "{f:#}");

    let mut p = Pcap::new();
    Conn::new(c, s, 1000, 5000)
        .open(&mut p)
        .server(&mut p, ACK | PSH, &client_hello())
        .client(&mut p, ACK | PSH, &server_hello(0x0303, 0xc02f));
    let f = only_flow(&json_of(&p.write("flow-syn-reversed-hello.pcap")));
    assert_eq!(brief(&f), "1 40000>52525 tls - end_of_input", "{f:#}");
    assert_eq!(notes(&f), ["incomplete", "tls_midstream"]);

    // Only the SYN-ACK seen: it names the server just as well.
    let mut p = Pcap::new();
    Conn::new(c, s, 1001, 5000)
        .server(&mut p, SYN | ACK, b"")
        .server(&mut p, ACK | PSH, &client_hello())
        .client(&mut p, ACK | PSH, &server_hello(0x0303, 0xc02f));
    let f = only_flow(&json_of(&p.write("flow-syn-ack-reversed-hello.pcap")));
    assert_eq!(brief(&f), "1 40000>52525 tls - end_of_input", "{f:#}");
    assert_eq!(notes(&f), ["incomplete", "tls_midstream"]);
}

/// A ServerHello seen first between two unlisted ports, the server on the higher:
/// the ports point the wrong way, and the ServerHello's sender is the server, so
/// content corrects the roles and the ServerHello is read.
#[test]
fn midstream_server_hello_first_between_unlisted_ports() {
    let mut p = Pcap::new();
    Conn::new((1, 40000), (2, 50000), 1000, 5000)
        .server(&mut p, ACK | PSH, &server_hello(0x0303, 0xc02f))
        .server(&mut p, ACK | PSH, CCS)
        .client(&mut p, ACK | PSH, CCS);
    let f = only_flow(&json_of(&p.write("flow-server-hello-first-high.pcap")));
    assert_eq!(brief(&f), "1 40000>50000 tls TLSv1.2 end_of_input", "{f:#}");
    assert_eq!(
        notes(&f),
        [
            "midstream",
            "roles_from_ports",
            "roles_from_content",
            "incomplete"
        ]
    );
}
