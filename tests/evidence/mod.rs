//! The evidence behind each verdict: packet numbers and Community IDs against
//! tshark, transcripts, and flows written back out to a capture.

use super::kit;
use super::{TupleKey, assert_references, reference_mismatches, reference_sets};
use kit::report::{parse_ndjson, run, without_packet_numbers};
use kit::{arg, fixture, tmp};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The frame fields of `fixtures/FRAMES*.tsv` (`fixtures/tools/frames_expect.py`).
const FRAME_FIELDS: &[&str] = &[
    "first",
    "last",
    "client_hello",
    "server_hello",
    "certificate",
    "first_encrypted",
    "starttls_command",
    "starttls_reply",
];

/// Compares tlswatch's frames and Community ID with the rows tshark gave.
fn frame_mismatches(tsv: &Path, base: &Path) -> (usize, Vec<String>) {
    let exceptions: Vec<(String, String, String)> =
        kit::tsv_lines(&fixture("FRAMES-exceptions.tsv"))
            .into_iter()
            .filter_map(|c| Some((c.first()?.clone(), c.get(1)?.clone(), c.get(2)?.clone())))
            .collect();
    reference_mismatches(tsv, base, &mut |row, key: &TupleKey, candidates, errors| {
        let candidates: Vec<&Value> = candidates
            .iter()
            .filter(|f| f["transport"].as_str() == Some(row["transport"].as_str()))
            .collect();
        let mut checked = 0;
        for field in FRAME_FIELDS.iter().copied().chain(["community_id"]) {
            let want = &row[field];
            let excepted = exceptions
                .iter()
                .any(|(f, p, x)| *f == row["file"] && *p == row["client_port"] && x == field);
            if want == "-" || excepted {
                continue;
            }
            checked += 1;
            let got: Vec<String> = candidates
                .iter()
                .map(|f| match field {
                    "community_id" => f[field].as_str().unwrap_or("-").to_string(),
                    _ => f["frames"][field]
                        .as_u64()
                        .map_or("-".to_string(), |n| n.to_string()),
                })
                .collect();
            if !got.iter().any(|g| g == want) {
                errors.push(format!(
                    "{} {key:?} {field}: tshark {want}, tlswatch {got:?}",
                    row["file"]
                ));
            }
        }
        checked
    })
}

/// Every flow's packet numbers (first and last packet, the hellos, the
/// certificate, the first encrypted record, the STARTTLS request and its answer)
/// are where tshark shows them, and its Community ID is tshark's, over the
/// fixtures and the shared captures, TCP and UDP.
#[test]
fn frames_and_community_id_match_tshark() {
    assert_references(
        reference_sets("FRAMES", 661, 822),
        "values",
        frame_mismatches,
    );
}

// ---------------------------------------------------------------------------
// --write-flows

/// The listed flows of a capture as sorted, comparable JSON, without what names
/// packets of the capture (and without `id`, which counts every flow).
fn comparable(args: &[&str]) -> Vec<String> {
    let out = run(args);
    let mut v: Vec<String> = parse_ndjson(&out)
        .into_iter()
        .filter(|r| r["type"] == "flow")
        .map(|mut r| {
            without_packet_numbers(&mut r);
            r.as_object_mut().map(|o| o.remove("id"));
            r.to_string()
        })
        .collect();
    v.sort();
    v
}

/// Writes the flows of `capture` that `select` chooses (all listed ones when
/// empty) and reads the file back: the same records, apart from `id`, `input`
/// and the frames. Returns how many flows went round.
fn round_trip(capture: &Path, select: &[&str]) -> usize {
    let written = tmp(&format!(
        "rt-{}-{}.pcapng",
        capture.file_stem().unwrap().to_string_lossy(),
        select.len()
    ));
    let w = arg(&written);
    let mut first = vec!["-r", arg(capture), "--ndjson", "--all", "--write-flows", w];
    first.extend_from_slice(select);
    let want = comparable(&first);
    let got = comparable(&["-r", w, "--ndjson", "--all"]);
    assert_eq!(
        got,
        want,
        "{}: the written flows ({select:?}) read back differently",
        capture.display()
    );
    let _ = std::fs::remove_file(&written);
    want.len()
}

/// Every shared capture (and every recorded fixture), written out whole and
/// with a selection, reads back as the same flows.
#[test]
fn written_flows_read_back_as_the_same_records() {
    let mut captures = kit::recorded_captures();
    if let Some(expected) = kit::shared_or_skip("captures/EXPECTED.tsv") {
        captures.extend(kit::capture_files(expected.parent().unwrap()));
    }
    let (mut all, mut selected) = (0, 0);
    for c in &captures {
        all += round_trip(c, &[]);
        selected += round_trip(
            c,
            &["--select", "medium,encryption=tls,encryption=starttls"],
        );
    }
    assert!(all > 250, "only {all} flows went round");
    assert!(
        selected > 20 && selected < all,
        "{selected} of {all} flows selected"
    );
}

/// The selection decides what is written: a file of the STARTTLS flows holds
/// exactly those, and the other flows' packets are not in it.
#[test]
fn write_flows_writes_only_the_selected_flows() {
    let caps: Vec<PathBuf> = [
        "starttls/smtp-starttls-s_client.pcap",
        "tls/tls13.pcap",
        "binary/ldap_simple_bind_cleartext.pcap",
    ]
    .iter()
    .map(|p| fixture(p))
    .collect();
    let written = tmp("only-starttls.pcapng");
    let mut args: Vec<&str> = Vec::new();
    for c in &caps {
        args.extend(["-r", arg(c)]);
    }
    let all = parse_ndjson(&run(&[args.as_slice(), &["--ndjson"]].concat()));
    let starttls: Vec<&Value> = all
        .iter()
        .filter(|f| f["encryption"] == "starttls")
        .collect();
    assert_eq!(starttls.len(), 1);
    let sel = [
        args.as_slice(),
        &[
            "--ndjson",
            "--select",
            "encryption=starttls",
            "--write-flows",
            arg(&written),
        ],
    ]
    .concat();
    let listed = parse_ndjson(&run(&sel));
    let flows: Vec<&Value> = listed.iter().filter(|f| f["type"] == "flow").collect();
    assert_eq!(flows.len(), 1, "only the selected flow is listed");
    let summary = listed.last().unwrap();
    assert_eq!(
        summary["flows"]["total"], 3,
        "the summary still counts every flow"
    );
    let back = parse_ndjson(&run(&["-r", arg(&written), "--ndjson"]));
    let back_flows: Vec<&Value> = back.iter().filter(|f| f["type"] == "flow").collect();
    assert_eq!(back_flows.len(), 1);
    assert_eq!(back_flows[0]["community_id"], starttls[0]["community_id"]);
    let packets = |f: &Value| {
        f["packets"]["client"].as_u64().unwrap() + f["packets"]["server"].as_u64().unwrap()
    };
    assert_eq!(
        back.last().unwrap()["packets"]["total"].as_u64(),
        Some(packets(starttls[0]))
    );
}

/// What `--write-flows` writes opens in Wireshark's tools: tshark reads every
/// packet of it, of several link types, without complaint.
#[test]
fn written_flows_open_in_tshark() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        eprintln!("skipped: tshark is not installed");
        return;
    }
    let written = tmp("for-tshark.pcapng");
    // Linux SLL2 (tls/multi.pcap) and Ethernet (the others) in one file.
    let caps = [
        "tls/multi.pcap",
        "starttls/smtp-starttls-s_client.pcap",
        "udp/quic_v1.pcap",
    ];
    let mut args: Vec<String> = Vec::new();
    for c in caps {
        args.push("-r".into());
        args.push(arg(&fixture(c)).into());
    }
    args.extend([
        "--ndjson".into(),
        "--write-flows".into(),
        arg(&written).into(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let listed = parse_ndjson(&run(&args));
    let out = std::process::Command::new("tshark")
        .args(["-r", arg(&written), "-T", "fields", "-e", "frame.number"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = String::from_utf8_lossy(&out.stdout).lines().count() as u64;
    let listed_packets: u64 = listed
        .iter()
        .filter(|f| f["type"] == "flow")
        .map(|f| {
            f["packets"]["client"].as_u64().unwrap() + f["packets"]["server"].as_u64().unwrap()
        })
        .sum();
    assert!(n > 30, "tshark read {n} packets");
    assert_eq!(n, listed_packets, "every packet of every listed flow");
}

// ---------------------------------------------------------------------------
// --transcript

/// One capture per protocol family, with the flow to transcribe; the golden
/// transcripts are in fixtures/transcripts/.
const TRANSCRIBED: &[&str] = &[
    "starttls/smtp-2525-starttls-injection.pcap",
    "starttls/smtp-cleartext-auth.pcap",
    "starttls/imap-cleartext-login.pcap",
    "starttls/pop3-cleartext-userpass.pcap",
    "starttls/ftp-cleartext-userpass.pcap",
    "starttls/telnet-2323-start-tls.pcap",
    "starttls/xmpp-c2s-starttls.pcap",
    "starttls/http-connect-3128.pcap",
    "binary/ldap_simple_bind_cleartext.pcap",
    "binary/ldap_starttls_refused_continue_11389.pcap",
    "binary/pg_refused_cleartext_password_15433.pcap",
    "binary/mysql_clear_password_plaintext.pcap",
    "binary/socks5_userpass_tls13_11080.pcap",
    "binary/tds_encrypt_off_login_only.pcap",
    "binary/rdp_standard_security_selected.pcap",
    "tls/tls12_ipv6.pcap",
    "udp/quic_v1.pcap",
];

/// The transcript of every flow of `capture` (`extra` options added).
fn transcripts(capture: &Path, extra: &[&str]) -> String {
    let mut args = vec!["-r", arg(capture), "--transcript", "selected", "--all"];
    args.extend_from_slice(extra);
    String::from_utf8(run(&args).stdout).unwrap()
}

/// Transcripts as golden files: the cleartext line by line with its frame, the
/// handshake, the verdict and the findings (`TLSWATCH_BLESS=1` rewrites them).
#[test]
fn golden_transcripts_of_recorded_captures() {
    let dir = fixture("transcripts");
    std::fs::create_dir_all(&dir).unwrap();
    for rel in TRANSCRIBED {
        assert!(fixture(rel).exists(), "{rel} is missing");
        // Relative to the checkout (where the binary runs), so the heading's
        // input name is the same wherever the checkout is.
        let text = transcripts(Path::new(&format!("fixtures/{rel}")), &[]);
        assert!(text.starts_with("flow "), "{rel}: {text}");
        let name = rel.replace('/', "__").replace(".pcap", ".txt");
        kit::golden::assert_golden(&dir.join(name), &text);
    }
}

/// No password or secret of the fixtures' cleartext logins is in any
/// transcript, with or without `--show-users`.
#[test]
fn no_secret_of_any_fixture_is_in_a_transcript() {
    let mut shown = 0;
    for cap in kit::recorded_captures() {
        for extra in [&[][..], &["--show-users"][..]] {
            let text = transcripts(&cap, extra);
            shown += text.lines().count();
            for s in super::SECRETS {
                assert!(
                    !text.contains(s),
                    "{}: secret {s} in a transcript",
                    cap.display()
                );
            }
        }
    }
    assert!(shown > 1000, "only {shown} transcript lines");
}

/// A transcript names the flow's evidence where it lies: the STARTTLS command,
/// the injected plaintext after it, and "encrypted from frame N", matching the
/// record's frames.
#[test]
fn a_transcript_points_where_the_record_points() {
    let cap = fixture("starttls/smtp-2525-starttls-injection.pcap");
    let rec = parse_ndjson(&run(&["-r", arg(&cap), "--ndjson"])).remove(0);
    let text = transcripts(&cap, &[]);
    let frames = &rec["frames"];
    let line_with = |s: &str| {
        text.lines()
            .find(|l| l.contains(s))
            .unwrap_or_default()
            .to_string()
    };
    let frame_of = |l: &str| {
        l.split_whitespace()
            .next()
            .unwrap_or_default()
            .parse::<u64>()
            .ok()
    };
    assert_eq!(
        frame_of(&line_with("C  STARTTLS")),
        frames["starttls_command"].as_u64()
    );
    assert!(
        line_with("<- plaintext where TLS should begin").contains("NOOP"),
        "{text}"
    );
    assert_eq!(
        frame_of(&line_with("ClientHello")),
        frames["client_hello"].as_u64()
    );
    let enc = frames["first_encrypted"].as_u64().unwrap();
    assert!(
        text.contains(&format!("encrypted from frame {enc}")),
        "{text}"
    );
    assert!(text.contains("STARTTLS_INJECTION"), "{text}");
}

/// `--transcript` and `--write-flows` read the input twice: standard input, a
/// live interface and an output that is an input are refused.
#[test]
fn evidence_options_refuse_what_cannot_be_read_twice() {
    let cap = fixture("tls/tls13.pcap");
    for args in [
        vec!["-r", "-", "--transcript", "1"],
        vec!["-r", "-", "--write-flows", "x.pcapng"],
        vec!["-r", arg(&cap), "--write-flows", arg(&cap)],
        vec!["-r", arg(&cap), "--transcript", "one"],
        vec!["-r", arg(&cap), "--select", "encryption=maybe"],
    ] {
        let out = kit::report::run_once(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    assert!(
        cap.metadata().unwrap().len() > 1000,
        "the input was not overwritten"
    );
}

/// The first `n` packets of a little-endian legacy pcap file, and the rest, as two files.
fn split_pcap(bytes: &[u8], n: usize) -> (Vec<u8>, Vec<u8>) {
    let header = &bytes[..24];
    let (mut a, mut b) = (header.to_vec(), header.to_vec());
    let (mut at, mut i) = (24, 0);
    while at + 16 <= bytes.len() {
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        let rec = &bytes[at..at + 16 + caplen];
        if i < n {
            a.extend(rec)
        } else {
            b.extend(rec)
        }
        at += 16 + caplen;
        i += 1;
    }
    (a, b)
}

/// A flow read across two files (a rotated capture) keeps the input of its first
/// packet; the frames in the second file are numbered within it and named in
/// `frame_inputs`, and its findings say their input.
#[test]
fn a_flow_across_two_inputs_names_the_input_of_each_frame() {
    let bytes = std::fs::read(fixture("starttls/smtp-starttls-s_client.pcap")).unwrap();
    let whole = parse_ndjson(&run(&[
        "-r",
        "fixtures/starttls/smtp-starttls-s_client.pcap",
        "--ndjson",
    ]))
    .remove(0);
    let (a, b) = split_pcap(&bytes, 10);
    let (pa, pb) = (tmp("rotated-0.pcap"), tmp("rotated-1.pcap"));
    std::fs::write(&pa, a).unwrap();
    std::fs::write(&pb, b).unwrap();
    let rec = parse_ndjson(&run(&["-r", arg(&pa), "-r", arg(&pb), "--ndjson"])).remove(0);
    assert_eq!(rec["input"], 0);
    let f = &rec["frames"];
    let w = &whole["frames"];
    assert_eq!(
        f["starttls_reply"], w["starttls_reply"],
        "frame 10 is still in the first file"
    );
    for key in ["client_hello", "server_hello", "last"] {
        assert_eq!(
            f[key].as_u64().unwrap() + 10,
            w[key].as_u64().unwrap(),
            "{key}"
        );
        assert_eq!(rec["frame_inputs"][key], 1, "{key}");
    }
    assert!(rec["frame_inputs"].get("starttls_command").is_none());
    let tls13 = rec["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["code"] == "TLS_1_3")
        .unwrap();
    assert_eq!(tls13["input"], 1);
    assert_eq!(tls13["frame"], f["server_hello"]);
}
