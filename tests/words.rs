//! Words that claim no more than the packets show, on real captures: a salted
//! password hash is not a cleartext password, an EHLO reply without extensions
//! is not a stripped one, a response or a reply never makes its sender the
//! client, a login without its greeting keeps its protocol, a packet stamped
//! years off changes nothing, a code appears once per flow, and after a
//! HelloRetryRequest the first ClientHello is the one fingerprinted.
//!
//! Where a case needs a capture cut or retimed, it is made here from a recorded
//! fixture (packets dropped, or one packet's time moved), never built from bytes.
//! (`tests/edges.rs` holds the other edges: capture ends and port policy.)

// A panic in a test is a failed test, not a crash on input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod kit;

use kit::pcap::{raw_capture, read_ip_packets};
use kit::report::{codes, flows, json_of, notes, only_flow, ports};
use kit::{fixture, shared_or_skip};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// The flow of `doc` whose client or server uses `port`.
fn flow_on(doc: &Value, port: u16) -> Value {
    flows(doc)
        .into_iter()
        .find(|f| {
            let (c, s) = ports(f);
            c == port || s == port
        })
        .unwrap_or_else(|| panic!("no flow on port {port}: {doc:#}"))
}

/// The finding of `flow` with `code`.
fn finding<'a>(flow: &'a Value, code: &str) -> &'a Value {
    flow["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["code"] == code)
        .unwrap_or_else(|| panic!("no {code}: {flow:#}"))
}

/// A recorded fixture's packets from the `from`-th on (1-based), at their own
/// times: the same connection as if the capture had begun there.
fn from_packet(rel: &str, from: usize, name: &str) -> std::path::PathBuf {
    let frames: Vec<_> = read_ip_packets(&fixture(rel))
        .into_iter()
        .skip(from - 1)
        .map(|f| (f.ts, f.ip))
        .collect();
    raw_capture(&frames).write(name)
}

#[test]
fn postgres_md5_password_is_a_weak_hash_not_cleartext() {
    // psql with pg_hba `md5`: AuthenticationMD5Password, then `md5…`.
    let f = only_flow(&json_of(&fixture("binary/pg_plaintext_md5_15433.pcap")));
    let c = codes(&f);
    assert!(c.contains(&"WEAK_AUTH_HASH"), "{f:#}");
    assert!(!c.contains(&"CLEARTEXT_AUTH"), "{f:#}");
    assert_eq!(finding(&f, "WEAK_AUTH_HASH")["severity"], "medium");
    assert_eq!(
        f["cleartext_auth"][0]["mechanism"],
        "PostgreSQL MD5 password"
    );
    assert_eq!(f["cleartext_auth"][0]["hashed"], true);
    // pg_hba `password`: AuthenticationCleartextPassword stays CLEARTEXT_AUTH.
    let f = only_flow(&json_of(&fixture(
        "binary/pg_refused_cleartext_password_15433.pcap",
    )));
    let c = codes(&f);
    assert!(c.contains(&"CLEARTEXT_AUTH"), "{f:#}");
    assert!(!c.contains(&"WEAK_AUTH_HASH"), "{f:#}");
    assert_eq!(finding(&f, "CLEARTEXT_AUTH")["severity"], "high");
    assert!(f["cleartext_auth"][0].get("hashed").is_none(), "{f:#}");
    // Suricata's capture: an SSLRequest refused, then MD5 authentication.
    let Some(p) = shared_or_skip(
        "captures/suricata-verify/pgsql__pgsql-ssl-rejected-md5-auth-simple-query__input.pcap",
    ) else {
        return;
    };
    let f = flow_on(&json_of(&p), 40816);
    let c = codes(&f);
    assert!(
        c.contains(&"WEAK_AUTH_HASH") && c.contains(&"STARTTLS_REFUSED"),
        "{f:#}"
    );
    assert!(!c.contains(&"CLEARTEXT_AUTH"), "{f:#}");
}

#[test]
fn an_ehlo_reply_without_extensions_is_not_stripping() {
    // Suricata's capture: `EHLO` answered by a bare `250`, then STARTTLS accepted.
    if let Some(p) = shared_or_skip("captures/suricata-verify/smtp-rset-starttls__input.pcap") {
        let f = only_flow(&json_of(&p));
        assert_eq!(f["starttls"]["accepted"], true, "{f:#}");
        assert_eq!(f["starttls"]["offered"], false, "{f:#}");
        assert!(!codes(&f).contains(&"STARTTLS_STRIPPED"), "{f:#}");
        assert!(f["starttls"].get("stripped").is_none(), "{f:#}");
    }
    // A masked capability is still stripping.
    let f = only_flow(&json_of(&fixture(
        "starttls/smtp-2527-starttls-stripped.pcap",
    )));
    assert!(codes(&f).contains(&"STARTTLS_STRIPPED"), "{f:#}");
}

#[test]
fn an_ldap_response_never_makes_its_sender_the_client() {
    // The capture begins at the server's bindResponse (after the handshake and
    // the bindRequest): the server on 389 stays the server.
    let p = from_packet(
        "binary/ldap_simple_bind_cleartext.pcap",
        5,
        "ldap-from-bind-response.pcap",
    );
    let f = only_flow(&json_of(&p));
    assert_eq!(ports(&f), (35196, 389), "{f:#}");
    assert_eq!(f["app_protocol"], "ldap");
    assert!(!notes(&f).contains(&"roles_from_content"), "{f:#}");
}

#[test]
fn an_onc_rpc_call_makes_its_sender_the_client() {
    // NFSv3 NULL calls from reserved port 993 to 2049, no SYN seen
    // (fixtures/record_edges.sh): ports alone make 993 the server, the calls
    // (RPC msg_type 0, as tshark reads them) make it the client.
    let f = only_flow(&json_of(&fixture("edges/nfs-client-port-993.pcap")));
    assert_eq!(ports(&f), (993, 2049), "{f:#}");
    assert!(notes(&f).contains(&"roles_from_content"), "{f:#}");
    assert!(!codes(&f).contains(&"PLAINTEXT_ON_TLS_PORT"), "{f:#}");
}

#[test]
fn an_ftp_login_without_its_greeting_is_ftp() {
    // The capture begins after the server's 220 greeting: USER, then PASS.
    let p = from_packet(
        "starttls/ftp-cleartext-userpass.pcap",
        5,
        "ftp-after-greeting.pcap",
    );
    let f = only_flow(&json_of(&p));
    assert_eq!(f["app_protocol"], "ftp", "{f:#}");
    assert_eq!(
        f["cleartext_auth"][0]["mechanism"], "FTP USER/PASS",
        "{f:#}"
    );
    assert_eq!(ports(&f), (53620, 21));
}

/// The flows of a report as `client>server encryption start end findings`.
fn summary(doc: &Value) -> Vec<String> {
    flows(doc)
        .iter()
        .map(|f| {
            let (c, s) = ports(f);
            format!(
                "{c}>{s} {} {} {} {:?}",
                f["encryption"],
                f["start"],
                f["end"],
                codes(f)
            )
        })
        .collect()
}

#[test]
fn a_syn_ack_stamped_years_off_changes_nothing() {
    let years: i32 = 5 * 365 * 86_400;
    for rel in ["tls/tls13.pcap", "tls/multi.pcap"] {
        let want = summary(&json_of(&fixture(rel)));
        let frames = read_ip_packets(&fixture(rel));
        // Every SYN-ACK: TCP flags (byte 13 of the TCP header) SYN|ACK.
        let syn_acks = frames
            .iter()
            .enumerate()
            .filter(|(_, f)| f.ip[9] == 6 && f.ip[usize::from(f.ip[0] & 0xf) * 4 + 13] == 0x12)
            .map(|(i, _)| i);
        for (at, shift) in syn_acks.flat_map(|i| [(i, years), (i, -years)]) {
            let moved: Vec<_> = frames
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let mut ts = f.ts;
                    if i == at {
                        ts.0 = ts.0.checked_add_signed(shift).unwrap();
                    }
                    (ts, f.ip.clone())
                })
                .collect();
            let p = raw_capture(&moved).write("years-off.pcap");
            let doc = json_of(&p);
            let what = format!("{rel}, packet {} moved {shift} s", at + 1);
            assert_eq!(summary(&doc), want, "{what}");
            for f in flows(&doc) {
                assert!(f["start"].as_str() <= f["end"].as_str(), "{what}: {f:#}");
            }
        }
    }
    // A real jump: two captures joined, the second five years later. Each of
    // its connections begins with a SYN far ahead of the clock, which the
    // SYN-ACK confirms: every connection stays whole.
    let mut joined: Vec<_> = read_ip_packets(&fixture("tls/tls13.pcap"))
        .into_iter()
        .map(|f| (f.ts, f.ip))
        .collect();
    let later = read_ip_packets(&fixture("tls/multi.pcap"));
    let base = joined.last().unwrap().0.0;
    let first = later[0].ts.0;
    joined.extend(later.into_iter().map(|f| {
        let sec = base + years as u32 + (f.ts.0 - first);
        ((sec, f.ts.1), f.ip)
    }));
    let doc = json_of(&raw_capture(&joined).write("joined.pcap"));
    let all = flows(&doc);
    assert_eq!(all.len(), 4, "{doc:#}");
    for f in &all {
        assert_eq!(f["encryption"], "tls", "{f:#}");
        assert!(f["start"].as_str() <= f["end"].as_str(), "{f:#}");
    }
}

#[test]
fn a_finding_code_appears_once_per_flow() {
    let Some(dir) = shared_or_skip("captures") else {
        return;
    };
    let mut checked = 0;
    for p in kit::capture_files(&dir) {
        for f in flows(&json_of(&p)) {
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for c in codes(&f) {
                *seen.entry(c).or_default() += 1;
            }
            let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
            assert!(twice.is_empty(), "{}: {twice:?} in {f:#}", p.display());
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} flows");
    // A 1024-bit DH group and a 1024-bit RSA certificate key: one WEAK_KEY
    // naming both.
    let p = dir.join("suricata-verify/ssl_version_negated__input.pcap");
    let f = flow_on(&json_of(&p), 443);
    let msg = finding(&f, "WEAK_KEY")["message"].as_str().unwrap();
    assert!(
        msg.contains("1024-bit Diffie-Hellman group") && msg.contains("1024-bit RSA key"),
        "{msg}"
    );
}

/// The `ja3_full`, `ja4_r` and `retry_group` of the one flow of a capture.
fn hello_of(path: &Path) -> (String, String, Value) {
    let f = only_flow(&json_of(path));
    let ch = &f["tls"]["client_hello"];
    assert_eq!(f["tls"]["hello_retry_request"], true, "{f:#}");
    (
        ch["ja3_full"].as_str().unwrap().to_string(),
        ch["ja4_r"].as_str().unwrap().to_string(),
        ch["retry_group"].clone(),
    )
}

#[test]
fn after_a_hello_retry_request_the_first_client_hello_is_fingerprinted() {
    // openssl s_client offering X25519 to a server that wants P-256.
    let (ja3, _, group) = hello_of(&fixture("tls/tls13_hrr.pcapng"));
    assert_eq!(group, "secp256r1");
    // The first ClientHello's groups (29 = X25519 first), as tshark reads it.
    assert!(ja3.ends_with(",29-23,0-1-2"), "{ja3}");
    // psql's STARTTLS, the same retry inside PostgreSQL.
    let (_, _, group) = hello_of(&fixture("binary/pg_sslrequest_tls13.pcap"));
    assert_eq!(group, "secp256r1");
    // Suricata's capture of two different ClientHellos in a row: the first one
    // (supported_versions, 43, where the second has a cookie, 44) is kept.
    let Some(p) = shared_or_skip("captures/suricata-verify/tls-duplicate-hello__input.pcap") else {
        return;
    };
    let f = flow_on(&json_of(&p), 8443);
    let ja3 = f["tls"]["client_hello"]["ja3_full"].as_str().unwrap();
    assert!(ja3.contains("-51-43-65281-"), "{ja3}");
    assert!(!ja3.contains("-51-44-65281-"), "{ja3}");
}
