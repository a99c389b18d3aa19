//! End-to-end tests: the `tlswatch` binary on recorded fixtures, on the shared real
//! captures (when present), on byte-built captures, and its command-line contract.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod audit;
mod evasion;
mod evidence;
mod kit;
mod tunnels;

use kit::net::{ACK, FIN, PSH, SYN};
use kit::pcap::{Conn, Pcap};
use kit::report::{
    bin, codes, endpoint, flows, json_of, norm_ip, notes, only_flow, parse_json, parse_ndjson,
    ports, run, run_once,
};
use kit::tls::{
    C, CCS, S, client_hello, dtls_handshake, handshake, server_hello, sslv2_capture,
    sslv2_server_hello, tls12_capture,
};
use kit::{TsvRow, arg, fixture, root, tmp, tsv_rows};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

/// One expectation row of an EXPECTED*.tsv (the format of ../shared/captures/EXPECTED.tsv).
struct Row {
    file: String,
    client: (String, u16),
    server: (String, u16),
    encryption: String,
    version: String,
    flags: Vec<String>,
    line: usize,
}

fn read_tsv(path: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for r in tsv_rows(path) {
        if !matches!(r["transport"].as_str(), "tcp" | "udp") {
            continue;
        }
        let (Ok(cport), Ok(sport)) = (r["client_port"].parse(), r["server_port"].parse()) else {
            continue;
        };
        rows.push(Row {
            file: r["file"].clone(),
            client: (r["client_ip"].clone(), cport),
            server: (r["server_ip"].clone(), sport),
            encryption: r["encryption"].clone(),
            version: r["version"].clone(),
            flags: match r["expected_flags"].as_str() {
                "-" | "" => Vec::new(),
                s => s.split(',').map(str::to_string).collect(),
            },
            line: r.line,
        });
    }
    rows
}

/// Compares every row of `tsv` with what tlswatch reports; returns the mismatches.
fn compare(tsv: &Path, base: &Path, skip: &[(String, u16)]) -> Vec<String> {
    let rows = read_tsv(tsv);
    assert!(!rows.is_empty(), "{}: no rows", tsv.display());
    let mut by_file: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in rows {
        by_file.entry(r.file.clone()).or_default().push(r);
    }
    let mut errors = Vec::new();
    for (file, rows) in by_file {
        let flows = flows(&json_of(&base.join(&file)));
        for r in rows {
            if skip.iter().any(|(f, p)| *f == r.file && *p == r.client.1) {
                continue;
            }
            let want_c = (norm_ip(&r.client.0), r.client.1);
            let want_s = (norm_ip(&r.server.0), r.server.1);
            let Some(flow) = flows
                .iter()
                .find(|f| endpoint(&f["client"]) == want_c && endpoint(&f["server"]) == want_s)
            else {
                errors.push(format!(
                    "{}:{} {file} {want_c:?}->{want_s:?}: not reported with these roles",
                    tsv.display(),
                    r.line
                ));
                continue;
            };
            let enc = flow["encryption"].as_str().unwrap_or_default();
            // `a|b`: the packets support either reading (as score.py accepts).
            if r.encryption != "-" && !r.encryption.split('|').any(|e| e == enc) {
                errors.push(format!(
                    "{}:{} {file} {want_c:?}: encryption {enc}, want {}",
                    tsv.display(),
                    r.line,
                    r.encryption
                ));
            }
            let ver = flow["tls"]["version"].as_str().unwrap_or("none");
            let ver_ok = r.version == "-"
                || ver == r.version
                || ver.starts_with(&format!("{}-draft", r.version));
            if !ver_ok {
                errors.push(format!(
                    "{}:{} {file} {want_c:?}: version {ver}, want {}",
                    tsv.display(),
                    r.line,
                    r.version
                ));
            }
            let codes = codes(flow);
            for want in &r.flags {
                if !codes.contains(&want.as_str()) {
                    errors.push(format!(
                        "{}:{} {file} {want_c:?}: missing finding {want} (have {codes:?})",
                        tsv.display(),
                        r.line
                    ));
                }
            }
        }
    }
    errors
}

fn assert_no_mismatches(errors: &[String]) {
    assert!(
        errors.is_empty(),
        "{} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// Rows of the shared captures where the oracle is wrong, with the evidence
/// (`tests/oracle-errors.tsv`); every other TCP row must match.
fn skipped_rows() -> Vec<(String, u16)> {
    kit::tsv_lines(&root().join("tests/oracle-errors.tsv"))
        .into_iter()
        .filter_map(|c| Some((c.first()?.clone(), c.get(1)?.parse().ok()?)))
        .collect()
}

#[test]
fn shared_real_captures_match_the_oracles() {
    let Some(tsv) = kit::shared_or_skip("captures/EXPECTED.tsv") else {
        return;
    };
    let dir = tsv.parent().unwrap_or(&tsv).to_path_buf();
    assert_no_mismatches(&compare(&tsv, &dir, &skipped_rows()));
}

#[test]
fn recorded_fixtures_match_tshark_expectations() {
    let fixtures = root().join("fixtures");
    let mut errors = Vec::new();
    let mut tables = 0;
    for entry in std::fs::read_dir(&fixtures).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("EXPECTED") && name.ends_with(".tsv") {
            tables += 1;
            errors.extend(compare(&entry.path(), &fixtures, &[]));
        }
    }
    assert!(tables >= 1, "no fixtures/EXPECTED*.tsv");
    assert_no_mismatches(&errors);
}

// ---------------------------------------------------------------------------
// Byte-built captures, for what no peer produces on request.

#[test]
fn byte_built_tls12_with_sequence_wraparound() {
    // Both directions' sequence numbers cross 2^32 inside the handshake.
    let path = tls12_capture(0xffff_ff00, 0xffff_ffd0).write("wrap.pcap");
    let f = only_flow(&json_of(&path));
    assert_eq!(f["encryption"], "tls");
    assert_eq!(f["tls"]["version"], "TLSv1.2");
    assert_eq!(f["tls"]["established"], true);
    assert_eq!(f["tls"]["client_hello"]["sni"], "a.example");
    // GREASE 0x3a3a is left out of the list.
    assert_eq!(
        f["tls"]["client_hello"]["cipher_suites"],
        serde_json::json!([
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            "TLS_RSA_WITH_AES_128_CBC_SHA"
        ])
    );
    assert_eq!(
        f["tls"]["server_hello"]["cipher_suite"],
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    );
}

#[test]
fn byte_built_out_of_order_and_retransmitted_client_hello() {
    let ch = client_hello();
    let sh = server_hello(0x0302, 0x002f);
    let (a, b) = ch.split_at(20);
    let mut p = Pcap::new();
    p.tcp(C, S, 100, 0, SYN, b"")
        .tcp(S, C, 500, 101, SYN | ACK, b"")
        .tcp(C, S, 121, 501, ACK, b)
        .tcp(C, S, 101, 501, ACK, a)
        .tcp(C, S, 101, 501, ACK, a)
        .tcp(S, C, 501, 101 + ch.len() as u32, ACK, &sh);
    let f = only_flow(&json_of(&p.write("ooo.pcap")));
    assert_eq!(f["tls"]["version"], "TLSv1.1");
    let codes = codes(&f);
    assert!(codes.contains(&"DEPRECATED_TLS"), "{codes:?}");
}

#[test]
fn byte_built_gap_is_reported_not_glued() {
    // The server acknowledges client bytes the capture never saw: a gap inside the ClientHello.
    let ch = client_hello();
    let mut p = Pcap::new();
    p.tcp(C, S, 100, 0, SYN, b"")
        .tcp(S, C, 500, 101, SYN | ACK, b"")
        .tcp(C, S, 101, 501, ACK, &ch[..10])
        .tcp(C, S, 131, 501, ACK, &ch[30..])
        .tcp(S, C, 501, 101 + ch.len() as u32, ACK, b"");
    let f = only_flow(&json_of(&p.write("gap.pcap")));
    let notes = notes(&f);
    assert!(notes.contains(&"gap"), "{notes:?}");
    assert!(notes.contains(&"handshake_gap"), "{notes:?}");
    assert_eq!(f["tls"]["client_hello"], Value::Null);
}

#[test]
fn byte_built_sslv2_negotiated() {
    let p = sslv2_capture(0x0002, &sslv2_server_hello());
    let f = only_flow(&json_of(&p.write("sslv2.pcap")));
    assert_eq!(f["tls"]["version"], "SSLv2");
    assert_eq!(f["tls"]["client_hello"]["record_version"], "SSLv2");
    assert_eq!(
        f["tls"]["server_hello"]["cipher_suite"],
        "SSL_CK_RC4_128_WITH_MD5"
    );
    let codes = codes(&f);
    assert_eq!(codes.first(), Some(&"SSLV2"), "{codes:?}");
}

#[test]
fn byte_built_sslv2_hello_answered_by_tls() {
    let p = sslv2_capture(0x0301, &server_hello(0x0301, 0x002f));
    let f = only_flow(&json_of(&p.write("sslv2-tls.pcap")));
    assert_eq!(f["tls"]["version"], "TLSv1.0");
    let notes = notes(&f);
    assert!(notes.contains(&"sslv2_client_hello"), "{notes:?}");
    let codes = codes(&f);
    assert!(
        !codes.contains(&"SSLV2") && codes.contains(&"DEPRECATED_TLS"),
        "{codes:?}"
    );
}

#[test]
fn no_server_hello_means_no_version() {
    let mut p = Pcap::new();
    Conn::new(C, S, 100, 500)
        .open(&mut p)
        .client(&mut p, ACK | FIN, &client_hello());
    let f = only_flow(&json_of(&p.write("noserverhello.pcap")));
    assert_eq!(f["tls"]["version"], Value::Null);
    assert_eq!(f["tls"]["client_hello"]["version"], "TLSv1.2");
    let codes = codes(&f);
    assert!(codes.contains(&"HANDSHAKE_FAILED"), "{codes:?}");
}

#[test]
fn control_characters_from_the_wire_never_reach_the_terminal() {
    // An SNI carrying an ANSI escape sequence.
    let mut ch = client_hello();
    let pos = ch.windows(9).position(|w| w == b"a.example").unwrap_or(0);
    ch[pos] = 0x1b;
    ch[pos + 1] = b'[';
    let mut p = Pcap::new();
    Conn::new(C, S, 100, 500)
        .open(&mut p)
        .client(&mut p, ACK, &ch);
    let path = p.write("escape.pcap");
    for args in [vec!["--color", "always"], vec!["--json"], vec!["--ndjson"]] {
        let mut a = vec!["-r", arg(&path)];
        a.extend(args.iter().copied());
        let out = run(&a);
        let text = String::from_utf8_lossy(&out.stdout);
        let stripped = text
            .replace("\x1b[0m", "")
            .replace("\x1b[1m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[33m", "");
        assert!(!stripped.contains('\x1b'), "{args:?}: {text}");
        assert!(
            text.contains("\\x1b[example") || text.contains("\\\\x1b[example"),
            "{args:?}: {text}"
        );
    }
}

// ---------------------------------------------------------------------------
// Command-line contract.

#[test]
fn not_a_capture_is_exit_2_with_the_file_named() {
    let path = tmp("notes.txt");
    std::fs::write(&path, "just some text, long enough to look at\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = run(&["-r", arg(&path)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!("error: {}: not a pcap or pcapng file", path.display())
    );
}

#[test]
fn truncated_capture_warns_with_packet_number_and_reports_flows() {
    let mut p = tls12_capture(1, 2);
    let full = p.bytes.len();
    p.bytes.truncate(full - 3);
    let path = p.write("cut.pcap");
    let out = run(&["-r", arg(&path), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut off in the middle of packet 6"), "{err}");
    let doc = parse_json(&out);
    assert_eq!(doc["flows"][0]["tls"]["version"], "TLSv1.2");
}

#[test]
fn garbage_in_the_middle_is_exit_2_with_offset_and_flows_kept() {
    let mut p = tls12_capture(1, 2);
    let keep = p.bytes.len();
    p.bytes.extend([0u8; 8]);
    p.bytes.extend(0x7fff_0000u32.to_le_bytes());
    p.bytes.extend(0x7fff_0000u32.to_le_bytes());
    p.bytes.extend([0xee; 100]);
    let path = p.write("garbage.pcap");
    let out = run(&["-r", arg(&path), "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("byte offset {keep}")), "{err}");
    let doc = parse_json(&out);
    assert_eq!(doc["flows"][0]["tls"]["version"], "TLSv1.2");
}

#[test]
fn fail_on_sets_exit_1_and_unknown_codes_are_refused() {
    let f = fixture("tls/tls10.pcap");
    let f = arg(&f);
    assert_eq!(run(&["-r", f, "--fail-on", "SSLV3"]).status.code(), Some(0));
    assert_eq!(
        run(&["-r", f, "--fail-on", "SSLV3,DEPRECATED_TLS"])
            .status
            .code(),
        Some(1)
    );
    let out = run(&["-r", f, "--fail-on", "NOPE"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown finding code 'NOPE'"));
}

#[test]
fn ndjson_lines_then_summary_and_multiple_inputs_share_one_table() {
    let out = run(&[
        "-r",
        "fixtures/tls/tls13.pcap",
        "-r",
        "fixtures/tls/tls12_ipv6.pcap",
        "--ndjson",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let lines = parse_ndjson(&out);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["type"], "flow");
    assert_eq!(lines[0]["tls"]["version"], "TLSv1.3");
    assert_eq!(lines[1]["tls"]["version"], "TLSv1.2");
    assert_eq!(lines[2]["type"], "summary");
    assert_eq!(lines[2]["flows"]["listed"], 2);
    assert_eq!(lines[2]["by_version"]["TLSv1.3"], 1);
}

#[test]
fn stdin_is_read_with_dash() {
    let f = std::fs::read(fixture("tls/sslv3.pcap")).unwrap_or_default();
    let from_stdin = |extra: &[&str]| {
        let mut cmd = bin();
        cmd.args(["-r", "-", "--json"]).args(extra);
        kit::report::with_stdin(cmd, &f).unwrap_or_else(|e| panic!("{e}"))
    };
    let out = from_stdin(&[]);
    let doc = parse_json(&out);
    assert_eq!(doc["flows"][0]["tls"]["version"], "SSLv3");
    // The reader thread takes standard input just as well.
    assert_eq!(out.stdout, from_stdin(&["--threads", "4"]).stdout);
}

/// Many flows of every kind the byte builder makes, interleaved, some idle past
/// the timeout, some closed and their ports reused.
fn many_flows_capture() -> Pcap {
    let ch = client_hello();
    let sh = server_hello(0x0303, 0xc02f);
    let mut p = Pcap::new();
    for round in 0..3u32 {
        for i in 0..40u16 {
            let c = (1 + (i % 7) as u8, 30000 + i + 100 * round as u16);
            let s = (100 + (i % 3) as u8, [443, 8443, 25][usize::from(i % 3)]);
            let isn = 1000 * u32::from(i) + round;
            p.tcp(c, s, isn, 0, SYN, b"");
            if i % 5 == 0 {
                continue; // a bare SYN: a flow without payload
            }
            p.tcp(s, c, 7000, isn + 1, SYN | ACK, b"");
            p.tcp(c, s, isn + 1, 7001, ACK | PSH, &ch);
            if i % 4 != 1 {
                p.tcp(s, c, 7001, isn + 1 + ch.len() as u32, ACK | PSH, &sh);
            }
            if i % 3 == 0 {
                p.tcp(c, s, isn + 1 + ch.len() as u32, 7001, FIN | ACK, b"");
            }
        }
        // Past the idle timeout: the open flows of this round end by the clock.
        p.t += 400_000;
    }
    p
}

fn flows_without_ids(out: &Output) -> (Vec<String>, Value) {
    let mut flows = Vec::new();
    let mut summary = Value::Null;
    for mut v in parse_ndjson(out) {
        if v["type"] == "summary" {
            summary = v;
            continue;
        }
        v.as_object_mut().unwrap().remove("id");
        flows.push(v.to_string());
    }
    flows.sort();
    (flows, summary)
}

/// `--shard 0/3`, `1/3` and `2/3` together report every flow of the unsharded run,
/// none twice, and their packet counters add up to its.
fn assert_shards_partition(inputs: &[String]) {
    let mut args: Vec<&str> = Vec::new();
    for f in inputs {
        args.extend(["-r", f.as_str()]);
    }
    args.extend(["--ndjson", "--all", "--threads", "2"]);
    let (whole, whole_summary) = flows_without_ids(&run_once(&args));
    assert!(!whole.is_empty());
    let mut union = Vec::new();
    let mut total = 0;
    let mut other = 0;
    for k in ["0/3", "1/3", "2/3"] {
        let (part, summary) = flows_without_ids(&run_once(&[&args[..], &["--shard", k]].concat()));
        assert!(part.len() < whole.len(), "{k}: one shard took every flow");
        union.extend(part);
        total += summary["packets"]["total"].as_u64().unwrap();
        other += summary["packets"]["other_shard"].as_u64().unwrap_or(0);
    }
    union.sort();
    assert_eq!(union.len(), whole.len(), "a flow in two shards, or in none");
    assert_eq!(union, whole);
    let whole_total = whole_summary["packets"]["total"].as_u64().unwrap();
    assert_eq!(total, whole_total);
    assert_eq!(other, 2 * whole_total);
}

#[test]
fn shards_together_are_the_whole_answer() {
    let path = many_flows_capture().write("many.pcap");
    assert_shards_partition(&[arg(&path).to_string()]);
    let Some(shared) = kit::shared_or_skip("captures") else {
        return;
    };
    let files: Vec<String> = kit::capture_files(&shared)
        .iter()
        .map(|p| arg(p).to_string())
        .collect();
    assert_shards_partition(&files);
}

#[test]
fn threads_agree_on_many_interleaved_flows() {
    let path = many_flows_capture().write("many-threads.pcap");
    let p = arg(&path);
    let one = run_once(&["-r", p, "--ndjson", "--all", "--threads", "1"]);
    let lines = String::from_utf8_lossy(&one.stdout).lines().count();
    assert!(lines > 100, "{lines}");
    for n in ["2", "3", "4", "7"] {
        let out = run_once(&["-r", p, "--ndjson", "--all", "--threads", n]);
        assert_eq!(
            String::from_utf8_lossy(&one.stdout),
            String::from_utf8_lossy(&out.stdout),
            "--threads {n}"
        );
    }
}

#[test]
fn threads_and_shard_arguments_are_checked() {
    for bad in [
        &["--threads", "0"][..],
        &["--threads", "65"],
        &["--shard", "3/3"],
        &["--shard", "1"],
    ] {
        let out = run_once(&[&["-r", "x.pcap"], bad].concat());
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn pcapng_sections_interfaces_and_every_packet_block() {
    use kit::net::ether as eth;
    use kit::pcap::{ng_epb, ng_idb, ng_obsolete_pb, ng_shb, ng_spb};
    let pkts: Vec<Vec<u8>> = kit::pcap::read_frames(&tls12_capture(1000, 2000).bytes)
        .into_iter()
        .map(|f| f.ip)
        .collect();
    let mut f = ng_shb();
    f.extend(ng_idb(1)); // interface 0: Ethernet
    f.extend(ng_idb(101)); // interface 1: raw IP
    f.extend(ng_epb(0, 1_700_000_000_000_000, &eth(&pkts[0])));
    f.extend(ng_epb(1, 1_700_000_000_000_100, &pkts[1]));
    f.extend(ng_spb(&eth(&pkts[2])));
    f.extend(ng_obsolete_pb(1, 1_700_000_000_000_300, &pkts[3]));
    // A second section with its own interface list: raw IP is now interface 0.
    f.extend(ng_shb());
    f.extend(ng_idb(101));
    f.extend(ng_epb(0, 1_700_000_000_000_400, &pkts[4]));
    f.extend(ng_epb(0, 1_700_000_000_000_500, &pkts[5]));
    // Named .pcap on purpose: the format comes from the magic number.
    let path = tmp("sections.pcap");
    std::fs::write(&path, f).unwrap();
    let doc = json_of(&path);
    let flow = only_flow(&doc);
    assert_eq!(flow["tls"]["version"], "TLSv1.2");
    assert_eq!(flow["tls"]["established"], true);
    assert_eq!(flow["start"], "2023-11-14T22:13:20.000000Z");
    assert_eq!(doc["summary"]["packets"]["total"], 6);
}

#[test]
fn idle_timeout_and_flow_cap_end_flows_visibly() {
    let ch = client_hello();
    let mut p = Pcap::new();
    p.tcp((1, 40001), S, 100, 0, SYN, b"")
        .tcp((1, 40001), S, 101, 0, ACK, &ch);
    p.t += 400_000; // 400 s later, another connection
    p.tcp((1, 40002), S, 100, 0, SYN, b"")
        .tcp((1, 40002), S, 101, 0, ACK, &ch);
    p.tcp((1, 40003), S, 100, 0, SYN, b"")
        .tcp((1, 40003), S, 101, 0, ACK, &ch);
    let path = p.write("idle.pcap");
    let doc = json_of(&path);
    let reasons: Vec<(u16, String)> = flows(&doc)
        .iter()
        .map(|f| (ports(f).0, f["end_reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            (40001, "idle_timeout".into()),
            (40002, "end_of_input".into()),
            (40003, "end_of_input".into())
        ]
    );
    // The cap is per worker thread: with one, the whole table holds one flow.
    let doc = parse_json(&run(&[
        "-r",
        arg(&path),
        "--json",
        "--max-flows",
        "1",
        "--threads",
        "1",
    ]));
    let evicted: Vec<String> = flows(&doc)
        .iter()
        .map(|f| f["end_reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(evicted, vec!["idle_timeout", "evicted", "end_of_input"]);
    assert_eq!(doc["summary"]["flows"]["evicted"], 1);
}

// ---------------------------------------------------------------------------
// Live capture (feature `live`): real peers over loopback. Needs root, as CI runs.

#[cfg(feature = "live")]
mod live {
    use super::*;
    use std::process::Command;
    use std::process::Stdio;
    use std::time::Duration;

    fn sh(cmd: &str) -> Option<String> {
        let out = Command::new("sh").arg("-c").arg(cmd).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits (up to 20 s: a loaded machine starts peers slowly) until a peer listens on `port`.
    fn wait_listening(port: u16) {
        for _ in 0..200 {
            if sh(&format!("ss -Hltn 'sport = :{port}' | grep -q LISTEN")).is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn flows_by_port(lines: &[Value], port: u16) -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["type"] == "flow" && l["server"]["port"] == port)
            .cloned()
            .collect()
    }

    #[test]
    fn live_loopback_direct_tls_and_starttls_then_sigint() {
        live_loopback("1", 0);
    }

    /// The same through the reader thread and two workers.
    #[test]
    fn live_loopback_with_two_worker_threads() {
        live_loopback("2", 2);
    }

    fn live_loopback(threads: &str, port_offset: u16) {
        if sh("id -u").as_deref() != Some("0") {
            eprintln!("skipped: live capture on lo needs root (CI runs as root)");
            return;
        }
        if sh("command -v openssl && command -v python3").is_none() {
            eprintln!("skipped: openssl and python3 are needed as peers");
            return;
        }
        let dir =
            std::env::temp_dir().join(format!("tlswatch-live-{}-{threads}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        sh(&format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=live.test -keyout {} -out {} 2>/dev/null",
            key.display(),
            cert.display()
        ))
        .expect("openssl req");
        let tls_port = 20000 + (std::process::id() % 20000) as u16 + port_offset;
        let smtp_port = tls_port + 1;
        let saved = dir.join("live.pcap");
        let watcher = bin()
            .args([
                "-i",
                "lo",
                "--port",
                &tls_port.to_string(),
                "--port",
                &smtp_port.to_string(),
                "--ndjson",
                "-Z",
                "nobody",
                "--threads",
                threads,
            ])
            .arg("-w")
            .arg(&saved)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));

        // Direct TLS 1.3 from openssl's client to its server.
        let mut server = Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-accept",
                &tls_port.to_string(),
                "-cert",
            ])
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_listening(tls_port);
        sh(&format!(
            "echo hello | timeout 10 openssl s_client -connect 127.0.0.1:{tls_port} -tls1_3 -servername direct.test -ign_eof >/dev/null 2>&1"
        ));

        // STARTTLS: a Python SMTP server and openssl's SMTP client.
        let mut smtp = Command::new("python3")
            .arg(root().join("tests/peers/smtp_starttls_server.py"))
            .arg(smtp_port.to_string())
            .arg(&cert)
            .arg(&key)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        wait_listening(smtp_port);
        sh(&format!(
            "timeout 10 openssl s_client -connect 127.0.0.1:{smtp_port} -starttls smtp -tls1_2 </dev/null >/dev/null 2>&1"
        ));
        std::thread::sleep(Duration::from_millis(1500));
        let _ = server.kill();
        let _ = smtp.kill();
        let _ = server.wait();
        let _ = smtp.wait();
        std::thread::sleep(Duration::from_millis(500));
        sh(&format!("kill -INT {}", watcher.id())).expect("kill -INT");
        let out = watcher.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = parse_ndjson(&out);
        let direct = flows_by_port(&lines, tls_port);
        assert_eq!(direct.len(), 1, "{lines:#?}");
        assert_eq!(direct[0]["encryption"], "tls");
        assert_eq!(direct[0]["tls"]["version"], "TLSv1.3");
        assert_eq!(direct[0]["tls"]["client_hello"]["sni"], "direct.test");
        let up = flows_by_port(&lines, smtp_port);
        assert_eq!(up.len(), 1, "{lines:#?}");
        assert_eq!(up[0]["encryption"], "starttls");
        assert_eq!(up[0]["tls"]["version"], "TLSv1.2");
        // Client: "EHLO ...\r\n" then "STARTTLS\r\n"; server: the greeting, the EHLO reply and "220 2.0.0 ...".
        let server_offset = "220 live.test ESMTP\r\n".len()
            + "250-live.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n".len()
            + "220 2.0.0 Ready to start TLS\r\n".len();
        assert_eq!(up[0]["starttls"]["server_offset"], server_offset);
        assert!(up[0]["starttls"]["client_offset"].as_u64().unwrap() > "STARTTLS\r\n".len() as u64);
        let summary = lines.last().unwrap();
        assert_eq!(summary["type"], "summary");
        let seen = summary["packets"]["total"].as_u64().unwrap();
        assert!(seen >= 10, "{summary}");
        assert!(
            summary["capture"]["received"].as_u64().unwrap() >= seen,
            "{summary}"
        );
        assert_eq!(summary["capture"]["dropped_by_tlswatch"], 0, "{summary}");

        // The -w file analyses to the same flows.
        let doc = json_of(&saved);
        let again: Vec<(u64, String, String)> = doc["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["server"]["port"].as_u64().unwrap(),
                    f["encryption"].as_str().unwrap().into(),
                    f["tls"]["version"].as_str().unwrap_or("-").into(),
                )
            })
            .collect();
        assert_eq!(
            again,
            vec![
                (u64::from(tls_port), "tls".into(), "TLSv1.3".into()),
                (u64::from(smtp_port), "starttls".into(), "TLSv1.2".into())
            ]
        );
    }

    #[test]
    fn bpf_filter_applies_to_files_too() {
        let doc = parse_json(&run(&[
            "-r",
            "fixtures/tls/multi.pcap",
            "--json",
            "tcp port 9443 and tcp port 58026",
        ]));
        let versions: Vec<&str> = doc["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["tls"]["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, vec!["TLSv1.2"]);
    }
}

/// Proxied connections (`fixtures/proxy/`, `record_proxy.sh`): beyond what every
/// expectations row checks, the inner protocol as `app_protocol`, the proxy hop,
/// and where TLS begins in the whole connection, against `EXPECTED-proxy.tsv`
/// (derived with tshark); and the shared capture of SMTP inside a CONNECT tunnel
/// against Zeek's logs (its http.log: CONNECT `mailin03.sul.t-online.de:25`
/// answered 200; its smtp.log: SMTP in the tunnel).
#[test]
fn proxied_connections_are_analysed_inside_the_tunnel() {
    let fixtures = root().join("fixtures");
    let rows = tsv_rows(&fixtures.join("EXPECTED-proxy.tsv"));
    assert!(!rows.is_empty(), "no proxy rows");
    for r in rows {
        let f = only_flow(&json_of(&fixtures.join(&r["file"])));
        let at = format!("EXPECTED-proxy.tsv:{}", r.line);
        assert_eq!(f["app_protocol"], r["app_protocol"].as_str(), "{at}");
        let notes: BTreeMap<&str, &str> = r["notes"]
            .split([';', ' '])
            .filter_map(|w| w.split_once('='))
            .collect();
        assert_eq!(f["proxy"]["kind"], notes["proxy"], "{at}");
        assert_eq!(f["proxy"]["target"], notes["target"], "{at}");
        assert_eq!(
            f["proxy"]["established"],
            notes["established"] == "T",
            "{at}"
        );
        for side in ["client_offset", "server_offset"] {
            let want = notes.get(side).map(|v| v.parse::<u64>().unwrap());
            assert_eq!(f["starttls"][side].as_u64(), want, "{at}: {side}");
        }
    }
    let Some(shared) = kit::shared_or_skip("captures/zeek/http__connect-with-smtp.pcap") else {
        return;
    };
    let f = only_flow(&json_of(&shared));
    assert_eq!(f["app_protocol"], "smtp");
    assert_eq!(f["encryption"], "plaintext");
    assert_eq!(f["proxy"]["kind"], "http-connect");
    assert_eq!(f["proxy"]["target"], "mailin03.sul.t-online.de:25");
    assert_eq!(f["proxy"]["established"], true);
}

/// Golden files: the whole JSON report of each recorded capture, kept beside it as
/// `NAME.golden.json`. The fields that matter are checked independently against
/// tshark by `recorded_fixtures_match_tshark_expectations`; the golden file pins the
/// rest (notes, offsets, cipher lists, summary) so any change is seen and reviewed.
/// `TLSWATCH_BLESS=1 cargo test golden` rewrites them.
#[test]
fn golden_reports_of_recorded_captures() {
    use kit::golden::{Golden, check, pretty_without_memory};
    let mut checked = 0;
    let mut diffs = Vec::new();
    for f in kit::recorded_captures() {
        let rel = arg(f.strip_prefix(root()).unwrap()).to_string();
        // `run` also checks that --threads 1 and 4 print the same.
        let got = pretty_without_memory(parse_json(&run(&["-r", &rel, "--json", "--all"])));
        match check(&f.with_extension("golden.json"), &got) {
            Golden::Same => checked += 1,
            Golden::Differs(d) => {
                checked += 1;
                diffs.push(format!("{rel}: {d}"));
            }
            Golden::Absent | Golden::Blessed => {}
        }
    }
    assert!(kit::golden::blessing() || checked > 0, "no golden files");
    assert!(
        diffs.is_empty(),
        "{}\n(rerun with TLSWATCH_BLESS=1 after checking the change)",
        diffs.join("\n")
    );
}

/// Hostile input: every recorded capture, mutated many times (bytes flipped,
/// truncated, spliced), goes through the whole pipeline in-process. A panic fails
/// the test; every outcome must be a report or a clean error.
#[test]
fn mutated_captures_never_panic() {
    use tlswatch::analyzer::options::Options;
    use tlswatch::capture::read_capture;
    use tlswatch::config::Limits;
    use tlswatch::flow::tcp::Engine;
    use tlswatch::pipeline::inline::Inline;
    use tlswatch::record::EndReason;
    let mut rng = kit::Rng(0x9e37_79b9_7f4a_7c15);
    let mut rnd = move || rng.next_u64();
    let inputs: Vec<Vec<u8>> = kit::recorded_captures()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(!inputs.is_empty());
    let mut runs = 0;
    for original in &inputs {
        for round in 0..16 {
            let mut b = original.clone();
            match round % 4 {
                0 => {
                    for _ in 0..1 + rnd() % 16 {
                        let i = 24 + (rnd() as usize) % (b.len() - 24);
                        b[i] = rnd() as u8;
                    }
                }
                1 => b.truncate(24 + (rnd() as usize) % (b.len() - 24)),
                2 => {
                    let i = 24 + (rnd() as usize) % (b.len() - 24);
                    let j = 24 + (rnd() as usize) % (b.len() - 24);
                    let chunk: Vec<u8> = b[i.min(j)..i.max(j)].to_vec();
                    b.splice(i..i, chunk);
                }
                _ => {
                    // Only payload-ish bytes: keep the capture framing, break the protocols.
                    let start = b.len() / 3;
                    for k in (start..b.len()).step_by(7) {
                        b[k] ^= rnd() as u8 | 1;
                    }
                }
            }
            let mut inline = Inline::new(
                Engine::new(
                    Limits {
                        max_flows: 4,
                        ..Limits::default()
                    },
                    Options { show_users: true },
                    Vec::new(),
                ),
                None,
            );
            let mut flows = 0;
            let _ = read_capture("mutated", &b[..], &mut |p| {
                inline.packet(p, &mut |_| flows += 1)
            });
            inline.finish(EndReason::EndOfInput, &mut |_| flows += 1);
            runs += 1;
        }
    }
    assert!(runs >= 40);
}

/// The fake credentials the fixture scripts sent in the clear (see fixtures/README.md).
const SECRETS: &[&str] = &[
    "S3cretPassw0rd!",
    "AGFsaWNlAFMzY3JldFBhc3N3MHJkIQ==",
    "Imap-Cl34rtext-Secret",
    "Pop3-Cl34rtext-Secret",
    "Ftp-Cl34rtext-Secret",
    "FakePgClear-4417",
    "FakeMyClear-8830",
    "FakeLdapBind-6604",
    "FakeSocksPass-1172",
    "Pr0xySmtp-Secret-5150",
    "AGFsaWNlAFByMHh5U210cC1TZWNyZXQtNTE1MA==",
];

#[test]
fn no_password_from_any_fixture_reaches_any_output() {
    let files = kit::recorded_captures();
    // The test means something only if the secrets are really in the captures.
    let mut in_captures = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        in_captures += SECRETS
            .iter()
            .filter(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
            .count();
    }
    assert!(
        in_captures >= 4,
        "only {in_captures} secrets found in the captures"
    );
    let mut args: Vec<String> = Vec::new();
    for f in &files {
        args.push("-r".into());
        args.push(arg(f).into());
    }
    for extra in [
        vec![],
        vec!["--json"],
        vec!["--ndjson"],
        vec!["--json", "--show-users", "--all"],
        vec!["--show-users", "--color", "always"],
    ] {
        let out = bin().args(&args).args(&extra).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.len() > 1000, "{extra:?}: little output");
        for s in SECRETS {
            assert!(!text.contains(s), "{extra:?}: secret {s} in the output");
        }
    }
}

// ---------------------------------------------------------------------------
// Fingerprints and certificates checked against tshark and openssl.

/// (client ip, client port, server ip, server port).
type TupleKey = (String, u16, String, u16);

/// Flows keyed by their [`TupleKey`].
type FlowsByTuple = BTreeMap<TupleKey, Vec<Value>>;

/// Flows of each capture named in `rows`, keyed by (client ip, client port, server ip, server port).
fn flows_by_tuple(base: &Path, rows: &[TsvRow]) -> BTreeMap<String, FlowsByTuple> {
    let mut out: BTreeMap<String, BTreeMap<_, Vec<Value>>> = BTreeMap::new();
    for row in rows {
        let file = &row["file"];
        if out.contains_key(file) {
            continue;
        }
        let mut m: BTreeMap<_, Vec<Value>> = BTreeMap::new();
        for f in flows(&json_of(&base.join(file))) {
            let (c, s) = (endpoint(&f["client"]), endpoint(&f["server"]));
            m.entry((c.0, c.1, s.0, s.1)).or_default().push(f);
        }
        out.insert(file.clone(), m);
    }
    out
}

/// The flows tlswatch reported for the connection of a reference row (several
/// when a 4-tuple was reused), with their key; `None`, said on standard error,
/// when it reported none.
fn connection<'f>(
    row: &TsvRow,
    flows: &'f BTreeMap<String, FlowsByTuple>,
) -> Option<(TupleKey, &'f [Value])> {
    let port = |k: &str| row[k].parse::<u16>().unwrap_or(0);
    let key = (
        norm_ip(&row["client_ip"]),
        port("client_port"),
        norm_ip(&row["server_ip"]),
        port("server_port"),
    );
    match flows[&row["file"]].get(&key) {
        Some(found) if !found.is_empty() => Some((key, found.as_slice())),
        _ => {
            eprintln!(
                "{} {key:?}: connection not reported by tlswatch, skipped",
                row["file"]
            );
            None
        }
    }
}

/// Compares one reference row with the flows tlswatch reported for its
/// connection: returns how many values it compared, adds a line per difference.
type RowCheck<'c> = dyn FnMut(&TsvRow, &TupleKey, &[Value], &mut Vec<String>) -> usize + 'c;

/// Runs `check` over every row of `tsv` whose connection tlswatch reported in
/// the capture under `base`: how many values were compared, and the differences.
fn reference_mismatches(tsv: &Path, base: &Path, check: &mut RowCheck<'_>) -> (usize, Vec<String>) {
    let rows = tsv_rows(tsv);
    let flows = flows_by_tuple(base, &rows);
    let mut checked = 0;
    let mut errors = Vec::new();
    for row in &rows {
        if let Some((key, candidates)) = connection(row, &flows) {
            checked += check(row, &key, candidates, &mut errors);
        }
    }
    (checked, errors)
}

/// `fixtures/NAME.tsv` over the fixtures, and `fixtures/NAME-shared.tsv` over
/// the shared captures when they are present, each with the fewest values it
/// must check.
fn reference_sets(
    name: &str,
    min_fixtures: usize,
    min_shared: usize,
) -> Vec<(PathBuf, PathBuf, usize)> {
    let mut sets = vec![(
        root().join(format!("fixtures/{name}.tsv")),
        root().join("fixtures"),
        min_fixtures,
    )];
    if let Some(expected) = kit::shared_or_skip("captures/EXPECTED.tsv") {
        sets.push((
            root().join(format!("fixtures/{name}-shared.tsv")),
            expected.parent().unwrap().to_path_buf(),
            min_shared,
        ));
    }
    sets
}

/// Fails unless every set's rows match (`mismatches` gives how many values it
/// checked and the differences) and each checked enough `what`.
fn assert_references(
    sets: Vec<(PathBuf, PathBuf, usize)>,
    what: &str,
    mismatches: fn(&Path, &Path) -> (usize, Vec<String>),
) {
    for (tsv, base, min) in sets {
        if !tsv.exists() {
            eprintln!("{} absent: not checked", tsv.display());
            continue;
        }
        let (checked, errors) = mismatches(&tsv, &base);
        assert!(checked >= min, "{}: only {checked} {what}", tsv.display());
        assert!(
            errors.is_empty(),
            "{}: {} of {checked} {what} differ:\n{}",
            tsv.display(),
            errors.len(),
            errors.join("\n")
        );
    }
}

/// Compares tlswatch's JA3/JA3S with the rows tshark gave (`fixtures/tools/ja3_expect.py`).
fn ja3_mismatches(tsv: &Path, base: &Path) -> (usize, Vec<String>) {
    let exceptions: Vec<(String, String, String)> = kit::tsv_lines(&fixture("JA3-exceptions.tsv"))
        .into_iter()
        .filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone(), c.get(2)?.clone())))
        .collect();
    reference_mismatches(tsv, base, &mut |row, key, candidates, errors| {
        let mut checked = 0;
        for (obj, field, full) in [
            ("client_hello", "ja3", "ja3_full"),
            ("server_hello", "ja3s", "ja3s_full"),
        ] {
            let want = (&row[field], &row[full]);
            let excepted = exceptions
                .iter()
                .any(|(f, p, x)| *f == row["file"] && *p == row["client_port"] && x == field);
            if want.0 == "-" || excepted {
                continue;
            }
            checked += 1;
            let got: Vec<(String, String)> = candidates
                .iter()
                .map(|f| {
                    let h = &f["tls"][obj];
                    (
                        h[field].as_str().unwrap_or("-").to_string(),
                        h[full].as_str().unwrap_or("-").to_string(),
                    )
                })
                .collect();
            if !got.iter().any(|(h, s)| h == want.0 && s == want.1) {
                errors.push(format!(
                    "{} {:?} {field}: tshark {} ({}), tlswatch {:?}",
                    row["file"], key, want.0, want.1, got
                ));
            }
        }
        checked
    })
}

#[test]
fn ja3_and_ja3s_match_tshark() {
    assert_references(reference_sets("JA3", 41, 41), "values", ja3_mismatches);
}

/// Compares tlswatch's certificates with the rows openssl gave (`fixtures/tools/cert_expect.py`).
fn cert_mismatches(tsv: &Path, base: &Path) -> (usize, Vec<String>) {
    reference_mismatches(tsv, base, &mut |row, key, candidates, errors| {
        let list = if row["from"] == "client" {
            "client_certificates"
        } else {
            "certificates"
        };
        let index: usize = row["index"].parse().unwrap_or(0);
        let Some(cert) = candidates
            .iter()
            .map(|f| f["tls"][list][index].clone())
            .find(|c| c["sha256"].as_str() == Some(row["sha256"].as_str()))
        else {
            errors.push(format!(
                "{} {key:?} {list}[{index}]: sha256 {} not reported",
                row["file"], row["sha256"]
            ));
            return 0;
        };
        let text = crate::kit::report::expect_text;
        let fields = crate::kit::report::certificate_fields(&cert);
        for (name, got) in fields {
            let want = &row[name];
            // openssl leaves Ed25519/Ed448 sizes unsaid; CNs with escapes are
            // compared through the subject string; `?`: openssl could not print
            // the SAN (hostile_certificate_is_escaped_and_capped checks it).
            let skip = (name == "key_bits" && want == "-")
                || (name == "subject_cn" && want.contains('\\'))
                || (name == "san" && want == "?");
            if !skip && text(got) != *want {
                errors.push(format!(
                    "{} {key:?} {list}[{index}] {name}: openssl {want:?}, tlswatch {:?}",
                    row["file"],
                    text(got)
                ));
            }
        }
        1
    })
}

#[test]
fn certificates_match_openssl() {
    assert_references(
        reference_sets("CERTS", 1, 20),
        "certificates",
        cert_mismatches,
    );
}

/// Compares tlswatch's JA4 and JA4_r with the rows the JA4+ reference gave
/// (`fixtures/tools/ja4_expect.py`).
fn ja4_mismatches(tsv: &Path, base: &Path) -> (usize, Vec<String>) {
    reference_mismatches(tsv, base, &mut |row, key, candidates, errors| {
        let got: Vec<(&str, &str)> = candidates
            .iter()
            .map(|f| {
                let ch = &f["tls"]["client_hello"];
                (
                    ch["ja4"].as_str().unwrap_or("-"),
                    ch["ja4_r"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        if !got.contains(&(row["ja4"].as_str(), row["ja4_r"].as_str())) {
            errors.push(format!(
                "{} {key:?}: reference {} ({}), tlswatch {got:?}",
                row["file"], row["ja4"], row["ja4_r"]
            ));
        }
        1
    })
}

#[test]
fn ja4_matches_the_reference() {
    assert_references(reference_sets("JA4", 20, 20), "values", ja4_mismatches);
}

/// A TLS 1.2 handshake no current peer produces: the client offers DEFLATE, the
/// server selects it (CRIME), and its Certificate message carries one DER that
/// does not parse. Byte-built: OpenSSL 3 and every browser removed compression.
#[test]
fn byte_built_compression_and_malformed_certificate() {
    let mut ch = client_hello();
    // compression methods (after record and handshake headers, version, random,
    // empty session id, 6 bytes of suites): [deflate, null] instead of [null]
    let cm = 5 + 4 + 2 + 32 + 1 + 2 + 6;
    assert_eq!(&ch[cm..cm + 2], &[0x01, 0x00]);
    ch.splice(cm..cm + 2, [0x02, 0x01, 0x00]);
    let hs_len = ch.len() - 9;
    ch[6..9].copy_from_slice(&(hs_len as u32).to_be_bytes()[1..]);
    let rec_len = (ch.len() - 5) as u16;
    ch[3..5].copy_from_slice(&rec_len.to_be_bytes());
    let mut sh_body = 0x0303u16.to_be_bytes().to_vec();
    sh_body.extend([9u8; 32]);
    sh_body.push(0);
    sh_body.extend(0xc02fu16.to_be_bytes());
    sh_body.push(1); // DEFLATE
    let garbage: &[u8] = b"\x30\x82\x01\x00not a certificate at all";
    let mut cert_body = ((garbage.len() + 3) as u32).to_be_bytes()[1..].to_vec();
    cert_body.extend(&(garbage.len() as u32).to_be_bytes()[1..]);
    cert_body.extend(garbage);
    let mut server = handshake(0x0303, 2, &sh_body);
    server.extend(handshake(0x0303, 11, &cert_body));
    server.extend(handshake(0x0303, 14, &[]));
    let mut p = Pcap::new();
    Conn::new(C, S, 100, 500)
        .open(&mut p)
        .client(&mut p, ACK | PSH, &ch)
        .server(&mut p, ACK | PSH, &server)
        .client(&mut p, ACK | PSH, CCS)
        .server(&mut p, ACK | PSH, CCS);
    let flow = only_flow(&json_of(&p.write("compression.pcap")));
    let tls = &flow["tls"];
    assert_eq!(
        tls["client_hello"]["compression_methods"],
        serde_json::json!(["deflate", "null"])
    );
    assert_eq!(tls["server_hello"]["compression_method"], "deflate");
    assert!(codes(&flow).contains(&"TLS_COMPRESSION"), "{flow:#}");
    let cert = &tls["certificates"][0];
    use sha2::Digest;
    let want: String = sha2::Sha256::digest(garbage)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(cert["sha256"], want.as_str());
    assert!(cert["error"].is_string(), "{cert:#}");
    assert!(cert["subject"].is_null());
    assert!(notes(&flow).contains(&"certificate_unparsed"));
    assert!(!codes(&flow).contains(&"CERT_NAME_MISMATCH"));
    assert_eq!(tls["established"], true);
}

/// A real server's certificate with ANSI escapes, CR/LF, BEL, DEL, a NUL in a SAN
/// and 301 SAN names (fixtures/depth/depth_hostile.pcap): every output escapes it.
#[test]
fn hostile_certificate_is_escaped_and_capped() {
    let path = fixture("depth/depth_hostile.pcap");
    let flow = only_flow(&json_of(&path));
    let cert = &flow["tls"]["certificates"][0];
    let subject = cert["subject"].as_str().unwrap_or_default();
    assert!(
        subject.starts_with("CN=\\1B[31mred\\0D\\0AFAKE ROW"),
        "{subject}"
    );
    assert!(
        subject.contains("O=evil\\\\\\, \\\"corp\\\"\\7F"),
        "{subject}"
    );
    assert_eq!(
        cert["subject_cn"],
        "\\x1b[31mred\\x0d\\x0aFAKE ROW\\x1b[0m\\x07"
    );
    assert_eq!(cert["san"].as_array().map(Vec::len), Some(100));
    assert_eq!(cert["san"][0], "nul\\x00.hostile.example");
    assert_eq!(cert["san_truncated"], true);
    for args in [vec!["--json"], vec!["--ndjson"], vec![]] {
        let mut a = vec!["-r", arg(&path)];
        a.extend(args.iter().copied());
        let out = run(&a);
        assert!(
            !out.stdout
                .iter()
                .any(|&b| b < 0x20 && b != b'\n' || b == 0x7f),
            "raw control byte in {args:?} output"
        );
    }
}

/// Each fixtures/depth capture shows what it was recorded for (fixtures/README.md).
#[test]
fn depth_fixtures_show_what_they_were_recorded_for() {
    let flows =
        |name: &str| -> Vec<Value> { flows(&json_of(&fixture(&format!("depth/{name}.pcap")))) };
    let one = |name: &str| {
        let f = flows(name);
        assert_eq!(f.len(), 1, "{name}");
        f.into_iter().next().unwrap_or_default()
    };
    let cert_codes = [
        "CERT_EXPIRED",
        "CERT_NOT_YET_VALID",
        "CERT_NAME_MISMATCH",
        "CERT_SELF_SIGNED",
        "WEAK_KEY",
        "WEAK_SIGNATURE",
    ];
    for (name, want) in [
        ("depth_chain", None),
        ("depth_expired", Some("CERT_EXPIRED")),
        ("depth_future", Some("CERT_NOT_YET_VALID")),
        ("depth_wrongname", Some("CERT_NAME_MISMATCH")),
        ("depth_selfsigned", Some("CERT_SELF_SIGNED")),
        ("depth_rsa1024", Some("WEAK_KEY")),
        ("depth_sha1", Some("WEAK_SIGNATURE")),
        ("depth_ecdsa", None),
        ("depth_ed25519", None),
    ] {
        let f = one(name);
        let got: Vec<&str> = codes(&f)
            .into_iter()
            .filter(|c| cert_codes.contains(c))
            .collect();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>(), "{name}: {f:#}");
        let n = f["tls"]["certificates"].as_array().map_or(0, Vec::len);
        assert!(n >= 1, "{name}: no certificates");
    }
    assert_eq!(
        one("depth_chain")["tls"]["certificates"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let ecdsa = one("depth_ecdsa");
    assert_eq!(
        ecdsa["tls"]["certificates"][0]["key"],
        serde_json::json!({"type": "ec", "bits": 256, "curve": "secp256r1"})
    );
    assert_eq!(
        one("depth_ed25519")["tls"]["certificates"][0]["key"]["type"],
        "ed25519"
    );
    let dhe = one("depth_dhe1024");
    assert_eq!(dhe["tls"]["key_exchange"], "dhe");
    assert_eq!(dhe["tls"]["dh_bits"], 1024);
    assert!(codes(&dhe).contains(&"WEAK_KEY"));
    // The curve as OpenSSL reported it ("Server Temp Key: ECDH, prime192v1, 192
    // bits") and tshark reads it (tls.handshake.server_named_curve 0x0013).
    let ec192 = one("depth_ecdhe192");
    assert_eq!(ec192["tls"]["key_exchange"], "ecdhe");
    assert_eq!(ec192["tls"]["group"], "secp192r1");
    let weak: Vec<&str> = ec192["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "WEAK_KEY")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(weak.len(), 1, "{weak:?}");
    assert!(weak[0].contains("secp192r1, a 192-bit curve"), "{weak:?}");
    assert!(!codes(&one("depth_chain")).contains(&"WEAK_KEY"));
    let rsa = one("depth_rsa_kx");
    assert_eq!(rsa["tls"]["key_exchange"], "rsa");
    assert!(codes(&rsa).contains(&"NO_FORWARD_SECRECY"));
    assert!(!codes(&one("depth_chain")).contains(&"NO_FORWARD_SECRECY"));
    let mtls = one("depth_client_cert");
    assert_eq!(
        mtls["tls"]["client_certificates"][0]["subject_cn"],
        "client.depth.example"
    );
    for (name, kx) in [
        ("depth_resume_id", "ecdhe"),
        ("depth_resume_ticket", "ecdhe"),
        ("depth_tls13_psk", "psk_ecdhe"),
    ] {
        let f = flows(name);
        assert_eq!(f.len(), 2, "{name}");
        assert_eq!(f[0]["tls"]["resumed"], false, "{name}");
        assert_eq!(f[1]["tls"]["resumed"], true, "{name}");
        assert_eq!(f[1]["tls"]["key_exchange"], kx, "{name}");
        assert_eq!(f[1]["tls"]["certificates"], serde_json::json!([]), "{name}");
    }
    let down = one("depth_downgrade");
    assert_eq!(down["tls"]["downgrade_sentinel"], "TLSv1.3");
    assert_eq!(codes(&down).first(), Some(&"TLS_DOWNGRADE"));
    let fallback = one("depth_fallback");
    assert_eq!(fallback["tls"]["client_hello"]["fallback_scsv"], true);
    assert!(codes(&fallback).contains(&"INAPPROPRIATE_FALLBACK"));
    // A TLS 1.3 server answering a client limited to TLS 1.2 sets the sentinel
    // too: that is no downgrade, since the client offered nothing higher.
    let chain = one("depth_chain");
    assert_eq!(chain["tls"]["downgrade_sentinel"], "TLSv1.3");
    assert!(!codes(&chain).contains(&"TLS_DOWNGRADE"));
}

#[test]
fn udp_other_than_quic_and_dtls_is_counted_by_port_not_listed() {
    let mut p = Pcap::new();
    for c in 0..3u16 {
        p.udp((2, 50000 + c), (1, 53), b"\x12\x34\x01\x00\x00\x01")
            .udp((1, 53), (2, 50000 + c), b"\x12\x34\x81\x80\x00\x01");
    }
    p.udp((3, 40123), (1, 123), &[0x23; 48]);
    // A DTLS 1.0 ClientHello (cookie field empty) answered by a ServerHello, then a
    // five-second pause and a new ClientHello: the 1 s UDP idle timeout splits it.
    let mut ch = vec![0xfe, 0xff];
    ch.extend([7u8; 32]);
    ch.extend([0, 0, 0, 2, 0xc0, 0x14, 1, 0]);
    let mut sh = vec![0xfe, 0xff];
    sh.extend([9u8; 32]);
    sh.extend([0, 0xc0, 0x14, 0]);
    p.udp((4, 41000), (1, 4433), &dtls_handshake(1, 0xfeff, &ch))
        .udp((1, 4433), (4, 41000), &dtls_handshake(2, 0xfeff, &sh));
    p.t += 5000;
    p.udp((4, 41000), (1, 4433), &dtls_handshake(1, 0xfeff, &ch));
    let path = p.write("udp-mix.pcap");
    let path = arg(&path);
    let doc = parse_json(&run(&["-r", path, "--json", "--udp-idle-timeout", "1"]));
    let flows = flows(&doc);
    assert_eq!(flows.len(), 2, "{flows:?}");
    for f in &flows {
        assert_eq!(f["transport"], "udp");
        assert_eq!(f["encryption"], "dtls");
        assert_eq!(f["server"]["port"], 4433);
    }
    assert_eq!(flows[0]["tls"]["version"], "DTLSv1.0");
    assert_eq!(flows[0]["end_reason"], "idle_timeout");
    assert!(codes(&flows[0]).contains(&"DEPRECATED_TLS"));
    let udp = &doc["summary"]["udp"];
    assert_eq!(udp["other"], 4);
    assert_eq!(
        udp["other_by_server_port"],
        serde_json::json!([{"port": 53, "flows": 3}, {"port": 123, "flows": 1}])
    );
    assert_eq!(doc["summary"]["packets"]["udp"], 10);
    // With the default timeout it is one conversation.
    let doc = parse_json(&run(&["-r", path, "--json"]));
    assert_eq!(doc["flows"].as_array().unwrap().len(), 1);
    // The table names the other UDP in its summary.
    let out = run(&["-r", path]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("other UDP (not listed): 4 conversations; by server port: 53 3, 123 1"),
        "{text}"
    );
}
