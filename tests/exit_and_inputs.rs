//! The exit status a CI gate relies on, rule by rule (README, "Exit status"),
//! including a real pipe closed early; what is said on standard error and at the
//! end of the summary; the options that act on files (`-c`, `-w`) and the ones
//! refused with them; and compressed captures, which must read exactly as the
//! plain ones.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod kit;

use kit::net::{ACK, PSH};
use kit::pcap::{Conn, Pcap};
use kit::report::{
    bin, parse_json, parse_ndjson, run, run_once, with_stdin, without_packet_numbers,
};
use kit::tls::{CCS, client_hello, server_hello, tls12_capture};
use kit::{arg, fixture, tmp};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `n` TLS connections that each end with FIN, one after the other; those whose
/// index `sslv3` accepts negotiate SSLv3 (a high finding), the others TLS 1.2
/// (medium findings at worst).
fn flows_capture(n: u16, sslv3: impl Fn(u16) -> bool) -> Pcap {
    let mut p = Pcap::new();
    let ch = client_hello();
    for i in 0..n {
        let version = if sslv3(i) { 0x0300 } else { 0x0303 };
        let c = (1 + (i % 50) as u8, 20000 + i);
        Conn::new(c, (200, 443), 1000 + u32::from(i), 9000)
            .open(&mut p)
            .client(&mut p, ACK | PSH, &ch)
            .server(&mut p, ACK | PSH, &server_hello(version, 0x002f))
            .client(&mut p, ACK | PSH, CCS)
            .server(&mut p, ACK | PSH, CCS)
            .close(&mut p);
    }
    p
}

// ---------------------------------------------------------------------------
// Status 0 and 1, and the line that says why.

#[test]
fn status_0_when_everything_was_read_and_nothing_matched() {
    let f = fixture("tls/tls13.pcap");
    let out = run(&["-r", arg(&f), "--fail-on", "critical"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

#[test]
fn status_1_names_the_codes_severities_and_flows_on_one_line() {
    let p = flows_capture(5, |i| i % 2 == 0);
    let path = p.write("three-sslv3.pcap");
    let out = run(&[
        "-r",
        arg(&path),
        "--json",
        "--fail-on",
        "high,NO_FORWARD_SECRECY",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert_eq!(
        lines[0],
        "fail-on: 5 flows matched (exit status 1): SSLV3 (high) on 3 flows, \
         NO_FORWARD_SECRECY (medium) on 5 flows"
    );
}

#[test]
fn status_0_for_a_capture_cut_off_mid_packet_and_the_summary_ends_with_the_warning() {
    let mut p = tls12_capture(1, 2);
    let full = p.bytes.len();
    p.bytes.truncate(full - 3);
    let path = p.write("cut-summary.pcap");
    let out = run(&["-r", arg(&path), "--color", "never"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let last = text.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "1 warning: {}: capture cut off in the middle of packet 6; everything before it was read",
            path.display()
        )
    );
    let doc = parse_json(&run(&["-r", arg(&path), "--json"]));
    assert_eq!(doc["summary"]["warnings"].as_array().map(Vec::len), Some(1));
}

// ---------------------------------------------------------------------------
// Status 2: inputs that could not be read, each with its reason.

/// A capture of the link type `linktype` whose packets are `n` frames of zeros.
fn frames_of_linktype(linktype: u32, n: usize) -> Pcap {
    let mut p = Pcap::with_linktype(linktype);
    for _ in 0..n {
        p.packet(&[0u8; 40]);
    }
    p
}

#[test]
fn status_2_for_every_input_that_gives_no_packet_each_with_its_reason() {
    let header = kit::pcap::header(1, 65535);
    let dir = tmp("a-folder");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = tmp(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            dir.clone(),
            "is a directory (each capture file needs its own -r)",
        ),
        (write("empty.pcap", b""), "empty file"),
        (
            write("text.pcap", b"hello, not a capture at all\n"),
            "not a pcap or pcapng file",
        ),
        (
            write("cut-header.pcap", &header[..10]),
            "cut short in the capture file header (10 bytes)",
        ),
        (
            write("header-only.pcap", &header),
            "no packets: the capture has a file header and nothing after it",
        ),
        (
            frames_of_linktype(147, 3).write("user0.pcap"),
            "no packet could be decoded (3 packets of unsupported link type 147); \
             tlswatch decodes Ethernet,",
        ),
    ];
    for (path, why) in cases {
        let out = run(&["-r", arg(&path), "--json"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}: {}",
            path.display(),
            stderr(&out)
        );
        let want = format!("error: {}: {why}", path.display());
        assert!(
            stderr(&out).starts_with(&want),
            "{}\nwant: {want}",
            stderr(&out)
        );
        let doc = parse_json(&out);
        assert_eq!(doc["summary"]["errors"].as_array().map(Vec::len), Some(1));
    }
}

/// Malformed packets are of a link type tlswatch decodes: the capture was read
/// (a truncated packet may be all a test capture holds), with a warning.
#[test]
fn a_capture_of_malformed_packets_only_is_read_with_a_warning() {
    let path = frames_of_linktype(101, 2).write("all-malformed.pcap");
    let out = run(&["-r", arg(&path), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "warning: {}: every packet is malformed (2 packets): nothing in it was analysed",
            path.display()
        )
    );
}

#[test]
fn status_2_beats_1_and_the_flows_read_are_still_reported() {
    let good = fixture("tls/tls10.pcap");
    let bad = tmp("status-2-beats-1.txt");
    std::fs::write(&bad, "not a capture, and long enough to tell\n").unwrap();
    let out = run(&[
        "-r",
        arg(&good),
        "-r",
        arg(&bad),
        "--ndjson",
        "--fail-on",
        "medium",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("not a pcap or pcapng file"), "{err}");
    assert!(
        err.contains("fail-on: 1 flow matched (exit status 2)"),
        "{err}"
    );
    let lines = parse_ndjson(&out);
    assert_eq!(lines[0]["tls"]["version"], "TLSv1.0");
    assert_eq!(
        lines.last().unwrap()["errors"].as_array().map(Vec::len),
        Some(1)
    );
    // The table's summary ends with the errors: how many, and the first.
    let missing = tmp("no-such-file.pcap");
    let out = run(&["-r", arg(&good), "-r", arg(&bad), "-r", arg(&missing)]);
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert_eq!(
        text.lines().last().unwrap_or_default(),
        format!(
            "2 errors, the first: {}: not a pcap or pcapng file",
            bad.display()
        )
    );
}

// ---------------------------------------------------------------------------
// Usage errors (status 2, nothing read).

#[test]
fn usage_errors_are_status_2_with_the_reason() {
    let f = fixture("tls/tls10.pcap");
    let f = arg(&f);
    let other = fixture("tls/tls13.pcap");
    let other = arg(&other);
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["-r", f, "--fail-on", ""],
            "--fail-on: empty: name finding codes or severities".into(),
        ),
        (
            vec!["-r", f, other],
            format!(
                "'{other}' is a file, not a filter expression: each file needs its own -r \
                 (-r {f} -r {other})"
            ),
        ),
        (vec!["-r", f, "-c", "0"], "-c must be at least 1".into()),
        (vec!["-r", f, "-w", f], "is also read with -r".into()),
    ];
    let mut cases = cases;
    for opt in [
        &["--duration", "5"][..],
        &["--snaplen", "96"],
        &["--buffer-size", "64"],
        &["--no-promisc"],
        &["-Z", "nobody"],
        &["--keep-root"],
    ] {
        let mut args = vec!["-r", f];
        args.extend_from_slice(opt);
        let name = if opt[0] == "-Z" { "-Z/--user" } else { opt[0] };
        cases.push((
            args,
            format!("{name} applies to live capture (-i) only, not to files read with -r"),
        ));
    }
    for (args, want) in cases {
        let out = run_once(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.starts_with("error: ") && err.contains(&want),
            "{args:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // The input was not touched by the refused -w.
    assert!(std::fs::metadata(f).unwrap().len() > 24);
}

// ---------------------------------------------------------------------------
// A closed output pipe hides nothing.

/// Runs `args`, reads one line of standard output and closes the pipe; the exit
/// status and standard error.
fn closed_after_one_line(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = bin()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    {
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        reader.read_line(&mut first).unwrap();
    } // the reader, and with it the pipe, is dropped here
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), first, err)
}

#[test]
fn a_pipe_closed_early_does_not_change_the_status() {
    // Far more output than a pipe holds: the writes after the close fail.
    let early = flows_capture(2000, |i| i < 3).write("pipe-early-high.pcap");
    let late = flows_capture(2000, |i| i == 1999).write("pipe-late-high.pcap");
    let none = flows_capture(2000, |_| false).write("pipe-no-high.pcap");
    let bad = tmp("pipe-bad.txt");
    std::fs::write(&bad, "not a capture, and long enough to tell\n").unwrap();
    for threads in ["1", "4"] {
        let with = |path: &Path, extra: &[&str]| {
            let mut args = vec!["--threads", threads, "--ndjson", "--fail-on", "high"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["-r", arg(path)]);
            closed_after_one_line(&args)
        };
        // The line printed carries the finding.
        let (code, first, err) = with(&early, &[]);
        assert_eq!(code, Some(1), "threads {threads}: {err}");
        assert!(first.contains("\"SSLV3\""), "{first}");
        assert!(err.contains("SSLV3 (high) on 3 flows"), "{err}");
        // The only high flow comes long after the pipe closed: still status 1.
        let (code, first, err) = with(&late, &[]);
        assert_eq!(code, Some(1), "threads {threads}: {err}");
        assert!(!first.contains("\"SSLV3\""), "{first}");
        assert!(err.contains("SSLV3 (high) on 1 flow"), "{err}");
        // Nothing to fail on.
        let (code, _, err) = with(&none, &[]);
        assert_eq!(code, Some(0), "threads {threads}: {err}");
        // An input error before the pipe closed.
        let (code, _, err) = with(&early, &["-r", arg(&bad)]);
        assert_eq!(code, Some(2), "threads {threads}: {err}");
        assert!(err.contains("not a pcap or pcapng file"), "{err}");
    }
}

/// Runs `args` with standard error a pipe whose reading end is already closed:
/// every message fails to be written.
fn with_stderr_closed(args: &[&str]) -> Option<i32> {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    bin()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::from(writer))
        .status()
        .unwrap()
        .code()
}

#[test]
fn a_closed_standard_error_still_gives_the_status() {
    let bad = tmp("stderr-closed.txt");
    std::fs::write(&bad, "not a capture, and long enough to tell\n").unwrap();
    assert_eq!(with_stderr_closed(&["-r", arg(&bad), "--json"]), Some(2));
    assert_eq!(
        with_stderr_closed(&["-r", arg(&bad), "--fail-on", ""]),
        Some(2)
    );
    let f = fixture("tls/tls10.pcap");
    assert_eq!(
        with_stderr_closed(&["-r", arg(&f), "--fail-on", "medium"]),
        Some(1)
    );
}

// ---------------------------------------------------------------------------
// -c and -w with -r, as tcpdump does them.

#[test]
fn count_stops_after_n_packets_over_all_files() {
    let f = fixture("tls/multi.pcap");
    let total = parse_json(&run(&["-r", arg(&f), "--json"]))["summary"]["packets"]["total"]
        .as_u64()
        .unwrap();
    assert!(total > 7);
    let doc = parse_json(&run(&["-r", arg(&f), "-c", "7", "--json", "--all"]));
    assert_eq!(doc["summary"]["packets"]["total"], 7);
    // Across files: the first file's packets, then the rest of the count.
    let doc = parse_json(&run(&[
        "-r",
        arg(&f),
        "-r",
        arg(&f),
        "-c",
        &(total + 2).to_string(),
        "--json",
    ]));
    assert_eq!(doc["summary"]["packets"]["total"], total + 2);
}

/// The flows of a report without what names the input.
/// The flows of a report without their packet numbers: a file written with a
/// filter holds fewer packets, so the same flows have other frame numbers.
fn flows_of(doc: &Value) -> Value {
    let mut flows = doc["flows"].clone();
    if let Some(list) = flows.as_array_mut() {
        list.iter_mut().for_each(without_packet_numbers);
    }
    flows
}

#[test]
fn write_keeps_the_packets_read_that_pass_the_filter() {
    let f = fixture("tls/multi.pcap");
    let out = tmp("written.pcap");
    let doc = parse_json(&run_once(&[
        "-r",
        arg(&f),
        "-w",
        arg(&out),
        "--json",
        "--all",
    ]));
    let again = parse_json(&run_once(&["-r", arg(&out), "--json", "--all"]));
    assert_eq!(flows_of(&again), flows_of(&doc));
    assert_eq!(
        again["summary"]["packets"]["total"],
        doc["summary"]["packets"]["total"]
    );
    // --port and -c limit what is written.
    let mut p = flows_capture(3, |_| false);
    Conn::new((9, 41000), (9, 8443), 5, 6)
        .open(&mut p)
        .client(&mut p, ACK | PSH, &client_hello())
        .close(&mut p);
    let two_ports = p.write("two-ports.pcap");
    let port = tmp("written-port.pcap");
    let doc = parse_json(&run_once(&[
        "-r",
        arg(&two_ports),
        "-w",
        arg(&port),
        "--port",
        "8443",
        "--json",
        "--all",
    ]));
    assert_eq!(doc["flows"].as_array().map(Vec::len), Some(1));
    let again = parse_json(&run_once(&["-r", arg(&port), "--json", "--all"]));
    assert_eq!(flows_of(&again), flows_of(&doc));
    assert_eq!(again["summary"]["packets"]["filtered"], 0);
    assert!(doc["summary"]["packets"]["filtered"].as_u64() > Some(0));
    let few = tmp("written-few.pcap");
    run_once(&["-r", arg(&f), "-w", arg(&few), "-c", "4", "--json"]);
    let again = parse_json(&run_once(&["-r", arg(&few), "--json"]));
    assert_eq!(again["summary"]["packets"]["total"], 4);
}

// ---------------------------------------------------------------------------
// Sizes.

#[test]
fn sizes_take_decimals() {
    let f = fixture("tls/tls13.pcap");
    let doc = parse_json(&run(&["-r", arg(&f), "--json", "--memcap", "1.5G"]));
    assert_eq!(doc["summary"]["memory"]["memcap"], 3u64 << 29);
    let out = run_once(&["-r", arg(&f), "--memcap", "1.5.5G"]);
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------------------
// Compressed captures.

/// A report without what differs between the plain and the compressed input:
/// the input names, and memory (tested on its own).
fn comparable(mut doc: Value) -> Value {
    doc.as_object_mut().unwrap().remove("inputs");
    let summary = doc["summary"].as_object_mut().unwrap();
    summary.remove("inputs");
    summary.remove("memory");
    doc
}

fn compress_with_crate(kind: &str, data: &[u8]) -> Vec<u8> {
    match kind {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zst" => {
            ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
        }
        "xz" => {
            let opts = lzma_rust2::XzOptions::with_preset(6);
            let mut w = lzma_rust2::XzWriter::new(Vec::new(), opts).unwrap();
            w.write_all(data).unwrap();
            w.finish().unwrap()
        }
        "bz2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "lz4" => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        other => panic!("{other}"),
    }
}

/// The command-line tools that make each form, as people make them.
const TOOLS: [(&str, &str, &[&str]); 6] = [
    ("gz", "gzip", &["-c"]),
    ("zst", "zstd", &["-q", "-c"]),
    ("xz", "xz", &["-c"]),
    ("bz2", "bzip2", &["-c"]),
    ("lz4", "lz4", &["-q", "-c"]),
    ("lz4", "lz4", &["-q", "-l", "-c"]),
];

/// `path` compressed by the command-line tool, or None when it is not installed.
fn compress_with_tool(tool: &str, args: &[&str], path: &Path) -> Option<Vec<u8>> {
    let out = std::process::Command::new(tool)
        .args(args)
        .arg(path)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    assert!(out.status.success(), "{tool} {args:?} {}", path.display());
    Some(out.stdout)
}

/// The captures the round trips use: every recorded fixture of one kind, both
/// capture formats, TCP and UDP.
fn round_trip_captures() -> Vec<PathBuf> {
    let mut files = kit::capture_files(&fixture("tls"));
    files.extend(kit::capture_files(&fixture("udp")));
    files
}

#[test]
fn every_compressed_form_gives_the_json_of_the_plain_capture() {
    let mut missing = Vec::new();
    for path in round_trip_captures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let plain = comparable(parse_json(&run_once(&[
            "-r",
            arg(&path),
            "--json",
            "--all",
        ])));
        let bytes = std::fs::read(&path).unwrap();
        let mut forms: Vec<(String, Vec<u8>)> = ["gz", "zst", "xz", "bz2", "lz4"]
            .iter()
            .map(|k| (format!("{k} (crate)"), compress_with_crate(k, &bytes)))
            .collect();
        for (ext, tool, args) in TOOLS {
            match compress_with_tool(tool, args, &path) {
                Some(c) => forms.push((format!("{ext} ({tool} {})", args.join(" ")), c)),
                None => missing.push(tool),
            }
        }
        for (form, packed) in forms {
            let file = tmp(&format!("{name}.{}", form.replace([' ', '(', ')'], "_")));
            std::fs::write(&file, &packed).unwrap();
            let out = run_once(&["-r", arg(&file), "--json", "--all"]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name} {form}: {}",
                stderr(&out)
            );
            assert_eq!(comparable(parse_json(&out)), plain, "{name} {form}");
        }
    }
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        eprintln!("skipped: the forms made by {missing:?} (not installed)");
    }
}

#[test]
fn compressed_standard_input_and_threads_read_the_same() {
    let path = fixture("tls/multi.pcap");
    let plain = comparable(parse_json(&run(&["-r", arg(&path), "--json"])));
    let packed = compress_with_crate("zst", &std::fs::read(&path).unwrap());
    for threads in ["1", "4"] {
        let mut cmd = bin();
        cmd.args(["-r", "-", "--json", "--threads", threads]);
        let out = with_stdin(cmd, &packed).unwrap();
        assert_eq!(comparable(parse_json(&out)), plain, "threads {threads}");
    }
}

#[test]
fn a_compressed_capture_cut_short_warns_and_keeps_what_came_before() {
    let mut p = Pcap::new();
    // Enough flows for the compressed stream to hand some out before the cut.
    for i in 0..300u16 {
        let c = (1 + (i % 50) as u8, 20000 + i);
        Conn::new(c, (200, 443), 1000 + u32::from(i), 9000)
            .open(&mut p)
            .client(&mut p, ACK | PSH, &client_hello())
            .close(&mut p);
    }
    let packed = compress_with_crate("gz", &p.bytes);
    let path = tmp("cut.pcap.gz");
    std::fs::write(&path, &packed[..packed.len() * 3 / 4]).unwrap();
    let out = run(&["-r", arg(&path), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "warning: {}: gzip stream cut off after",
            path.display()
        )),
        "{err}"
    );
    let doc = parse_json(&out);
    let n = doc["flows"].as_array().map_or(0, Vec::len);
    assert!(n > 100 && n < 300, "{n}");
    // Corrupt data is an error, not a cut.
    let mut bad = packed.clone();
    let mid = bad.len() / 2;
    bad[mid..mid + 32].fill(0);
    let bad_path = tmp("bad.pcap.gz");
    std::fs::write(&bad_path, &bad).unwrap();
    assert_eq!(
        run(&["-r", arg(&bad_path), "--json"]).status.code(),
        Some(2)
    );
}

#[test]
fn a_compressed_file_that_is_no_capture_says_so() {
    let packed = compress_with_crate("xz", b"just some text inside xz, not a capture\n");
    let path = tmp("text.xz");
    std::fs::write(&path, packed).unwrap();
    let out = run(&["-r", arg(&path)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        format!(
            "error: {}: not a pcap or pcapng file (xz-compressed)",
            path.display()
        )
    );
}
