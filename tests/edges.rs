//! Honest verdicts at the edges. The end of a capture is not a failure: every
//! recorded fixture, cut after each of its packets, run in-process through the
//! whole engine and the run's port policy. And a port policy judges only what it
//! can: not roles guessed from two service ports, not another encrypted protocol.

// A panic in a test is a failed test, not a crash on input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use tlswatch::analyzer::options::Options;
use tlswatch::capture::read_capture;
use tlswatch::config::Limits;
use tlswatch::flow::tcp::Engine;
use tlswatch::pipeline::inline::Inline;
use tlswatch::record::{Code, Encryption, EndReason, FlowRecord, Note, Severity};

/// Folders of captures recorded from real peers, each of whole connections
/// (handshake to close; UDP conversations to their last datagram; in `edges/`
/// one connection from its first data to its close).
const WHOLE: &[&str] = &[
    "tls", "starttls", "binary", "udp", "depth", "policy", "edges",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn captures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in WHOLE {
        for e in std::fs::read_dir(root().join("fixtures").join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The records of the first `keep` packets of a capture (all of them with
/// `None`), as `tlswatch -r` gives them: engine (with the default port policy),
/// end of input.
fn run(bytes: &[u8], keep: Option<usize>) -> (Vec<FlowRecord>, usize) {
    run_some(bytes, &|n| keep.is_none_or(|k| n <= k))
}

/// The records of the packets (numbered from 1) that `keep` picks.
fn run_some(bytes: &[u8], keep: &dyn Fn(usize) -> bool) -> (Vec<FlowRecord>, usize) {
    let mut inline = Inline::new(
        Engine::new(Limits::default(), Options::default(), Vec::new()),
        None,
    );
    let mut out = Vec::new();
    let mut seen = 0;
    read_capture("cut", bytes, &mut |p| {
        seen += 1;
        if keep(seen) {
            inline.packet(p, &mut |r| out.push(r));
        }
    })
    .unwrap();
    inline.finish(EndReason::EndOfInput, &mut |r| out.push(r));
    out.sort_by_key(|r| r.id);
    (out, seen)
}

/// A flow's connection, whichever side the record calls the client.
fn tuple(r: &FlowRecord) -> String {
    let mut ends = [
        format!("{}:{}", r.client.ip, r.client.port),
        format!("{}:{}", r.server.ip, r.server.port),
    ];
    ends.sort();
    format!("{:?} {} {}", r.transport, ends[0], ends[1])
}

/// Finding codes of severity medium or above, per connection, in the order the
/// connections began (a 4-tuple reused later is a later entry).
fn serious(flows: &[FlowRecord]) -> BTreeMap<String, Vec<BTreeSet<&'static str>>> {
    let mut out: BTreeMap<String, Vec<BTreeSet<&'static str>>> = BTreeMap::new();
    for r in flows {
        let codes = r
            .findings
            .iter()
            .filter(|f| f.severity() >= Severity::Medium)
            .map(|f| f.code.as_str())
            .collect();
        out.entry(tuple(r)).or_default().push(codes);
    }
    out
}

/// Cut after any packet k, the findings of severity medium or above on each flow
/// are a subset of that flow's findings on the whole capture: where the capture
/// stops never adds a finding.
#[test]
fn cutting_a_capture_short_never_adds_a_finding() {
    let files = captures();
    assert!(files.len() >= 100, "only {} fixture captures", files.len());
    let mut violations = Vec::new();
    let mut cuts = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let (whole, n) = run(&bytes, None);
        let want = serious(&whole);
        for k in 1..n {
            let (cut, _) = run(&bytes, Some(k));
            cuts += 1;
            for (t, flows) in serious(&cut) {
                for (i, got) in flows.iter().enumerate() {
                    let allowed = want.get(&t).and_then(|w| w.get(i));
                    let extra: Vec<_> = got
                        .iter()
                        .filter(|c| allowed.is_none_or(|a| !a.contains(*c)))
                        .collect();
                    if !extra.is_empty() {
                        let name = f.strip_prefix(root()).unwrap_or(f).display();
                        violations.push(format!("{name} cut after packet {k}: {t}: {extra:?}"));
                    }
                }
            }
        }
    }
    assert!(cuts > 1000, "only {cuts} cuts");
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(root().join("fixtures").join(rel)).unwrap()
}

fn only(flows: Vec<FlowRecord>) -> FlowRecord {
    assert_eq!(flows.len(), 1, "{flows:?}");
    flows.into_iter().next().unwrap()
}

fn codes(r: &FlowRecord) -> Vec<Code> {
    r.findings.iter().map(|f| f.code).collect()
}

/// The number of the packet (from 1) that carries the flow's ClientHello: the
/// shortest cut whose record has one.
fn client_hello_packet(bytes: &[u8]) -> usize {
    let (_, n) = run(bytes, None);
    (1..=n)
        .find(|&k| {
            let (flows, _) = run(bytes, Some(k));
            flows
                .iter()
                .any(|r| r.tls.as_ref().is_some_and(|t| t.client_hello.is_some()))
        })
        .unwrap()
}

/// swaks upgrading an SMTP session: cut right after the ClientHello (packet 12 of
/// 23; tshark shows the ServerHello in packet 13), the upgrade was accepted and the
/// handshake began: `starttls`, not established, incomplete, no failure.
#[test]
fn smtp_starttls_cut_after_the_client_hello_is_starttls_not_failed() {
    let bytes = fixture("starttls/smtp-starttls-swaks.pcap");
    let k = client_hello_packet(&bytes);
    assert_eq!(k, 12);
    let r = only(run(&bytes, Some(k)).0);
    assert_eq!(r.encryption, Encryption::Starttls);
    assert_eq!(r.end_reason, EndReason::EndOfInput);
    assert!(r.incomplete);
    assert!(r.has_note(Note::Incomplete));
    let tls = r.tls.as_ref().unwrap();
    assert!(!tls.established);
    assert!(tls.client_hello.is_some() && tls.server_hello.is_none());
    let c = codes(&r);
    assert!(!c.contains(&Code::StarttlsFailed), "{c:?}");
    assert!(!c.contains(&Code::HandshakeFailed), "{c:?}");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["encryption"], "starttls");
    assert_eq!(json["incomplete"], true);
    assert!(
        json["notes"]
            .as_array()
            .unwrap()
            .contains(&"incomplete".into())
    );

    // One packet earlier, between the go-ahead and the ClientHello: still `starttls`.
    let r = only(run(&bytes, Some(k - 1)).0);
    assert_eq!(r.encryption, Encryption::Starttls);
    assert!(r.incomplete);
    assert!(!codes(&r).contains(&Code::StarttlsFailed));

    // Before the client asked (right after the EHLO reply that offered it): the
    // client could still upgrade, so neither plaintext nor STARTTLS_NOT_USED.
    let r = only(run(&bytes, Some(k - 4)).0);
    assert!(
        r.starttls
            .as_ref()
            .is_some_and(|s| s.offered && !s.requested)
    );
    assert_eq!(r.encryption, Encryption::Unknown);
    let c = codes(&r);
    assert!(
        !c.contains(&Code::StarttlsNotUsed) && !c.contains(&Code::Plaintext),
        "{c:?}"
    );

    // The whole capture closes the connection: a complete record, no marker.
    let r = only(run(&bytes, None).0);
    assert_eq!(r.encryption, Encryption::Starttls);
    assert!(!r.incomplete);
    assert!(
        serde_json::to_value(&r)
            .unwrap()
            .get("incomplete")
            .is_none()
    );
}

/// The server's fatal alert answering the ClientHello (smtp-2528: packet 12) is a
/// failure the packets show: cut right after it, the flow is `starttls-failed`
/// with STARTTLS_FAILED and HANDSHAKE_FAILED though the capture ends there.
#[test]
fn a_fatal_alert_fails_the_upgrade_even_when_the_capture_ends_there() {
    let bytes = fixture("starttls/smtp-2528-starttls-failed.pcap");
    let k = client_hello_packet(&bytes);
    assert_eq!(k, 11);
    let r = only(run(&bytes, Some(k)).0);
    assert_eq!(r.encryption, Encryption::Starttls);
    assert!(!codes(&r).contains(&Code::StarttlsFailed));
    let r = only(run(&bytes, Some(k + 1)).0);
    assert!(r.incomplete);
    assert_eq!(r.encryption, Encryption::StarttlsFailed);
    let c = codes(&r);
    assert!(
        c.contains(&Code::StarttlsFailed) && c.contains(&Code::HandshakeFailed),
        "{c:?}"
    );
    // The client's FIN (packet 13) closes the dialogue: no longer incomplete.
    let r = only(run(&bytes, Some(k + 2)).0);
    assert!(!r.incomplete);
    assert_eq!(r.encryption, Encryption::StarttlsFailed);
}

/// Direct TLS cut after the ClientHello (tls13: packet 4): `tls`, not
/// established, incomplete, no HANDSHAKE_FAILED. The same ClientHello followed by
/// both FINs (packets 16 and 17) and no ServerHello is a failure.
#[test]
fn direct_tls_cut_after_the_client_hello_is_no_failure_but_a_close_is() {
    let bytes = fixture("tls/tls13.pcap");
    let k = client_hello_packet(&bytes);
    assert_eq!(k, 4);
    for cut in [k, k + 1] {
        let r = only(run(&bytes, Some(cut)).0);
        assert_eq!(r.encryption, Encryption::Tls);
        assert!(r.incomplete);
        assert!(!r.tls.as_ref().unwrap().established);
        assert!(
            !codes(&r).contains(&Code::HandshakeFailed),
            "{:?}",
            codes(&r)
        );
    }
    let r = only(run_some(&bytes, &|n| n <= k + 1 || n == 16 || n == 17).0);
    assert_eq!(r.end_reason, EndReason::Fin);
    assert!(!r.incomplete);
    assert!(
        codes(&r).contains(&Code::HandshakeFailed),
        "{:?}",
        codes(&r)
    );
    // The server's FIN alone, then the end of the capture: the server closed.
    let r = only(run_some(&bytes, &|n| n <= k + 1 || n == 16).0);
    assert_eq!(r.end_reason, EndReason::EndOfInput);
    assert!(!r.incomplete);
    assert!(
        codes(&r).contains(&Code::HandshakeFailed),
        "{:?}",
        codes(&r)
    );
}

/// NFSv3 NULL calls from reserved port 993 to 2049 (fixtures/record_edges.sh),
/// picked up after the handshake: tshark's RPC dissector shows the calls come
/// from 993, but without a SYN tlswatch's roles come from the ports, and both are
/// service ports. Plaintext it is; plaintext IMAPS it is not.
#[test]
fn roles_guessed_between_two_service_ports_raise_no_port_policy_finding() {
    let r = only(run(&fixture("edges/nfs-client-port-993.pcap"), None).0);
    let ports = [r.client.port, r.server.port];
    assert!(ports.contains(&993) && ports.contains(&2049), "{ports:?}");
    assert_eq!(r.encryption, Encryption::Plaintext);
    let c = codes(&r);
    assert!(!c.contains(&Code::PlaintextOnTlsPort), "{c:?}");
    assert!(c.contains(&Code::Plaintext), "{c:?}");
}

/// An encrypted protocol that is not TLS on port 443 (fixtures/record_edges.sh:
/// X25519 keys, then ChaCha20-Poly1305 records; tshark, told port 443 is TLS,
/// finds no TLS record in any of the 8 payload segments): high-entropy bytes from
/// the first one are not plaintext, so not plaintext on a TLS port either.
#[test]
fn an_encrypted_protocol_on_443_is_not_plaintext_on_a_tls_port() {
    let r = only(run(&fixture("edges/sealed-443.pcap"), None).0);
    assert_eq!(r.server.port, 443);
    assert_eq!(r.encryption, Encryption::Unknown);
    assert!(r.has_note(Note::HighEntropy));
    assert!(codes(&r).is_empty(), "{:?}", codes(&r));
    let json = serde_json::to_value(&r).unwrap();
    assert!(
        json["notes"]
            .as_array()
            .unwrap()
            .contains(&"high_entropy".into())
    );
}
