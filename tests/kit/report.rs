//! Running the binary, and reading its JSON and NDJSON reports: flows, their
//! endpoints, findings and notes.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// The binary, run from the checkout (so fixture paths may be relative).
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tlswatch"));
    cmd.current_dir(super::root());
    cmd
}

/// Runs the binary once, colours off, the table unsized (`COLUMNS` unset).
pub fn run_once(args: &[&str]) -> Output {
    bin()
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("COLUMNS")
        .output()
        .unwrap_or_else(|e| panic!("spawn: {e}"))
}

/// Runs the binary. A run that reads files and does not choose its threads runs
/// twice, with `--threads 1` and `--threads 4`: the two must print the same
/// (flows, ids, their order, the summary), exit the same and warn the same.
pub fn run(args: &[&str]) -> Output {
    if !args.contains(&"-r") || args.contains(&"--threads") {
        return run_once(args);
    }
    let one = run_once(&[&["--threads", "1"], args].concat());
    let four = run_once(&[&["--threads", "4"], args].concat());
    assert_eq!(
        String::from_utf8_lossy(&one.stdout),
        String::from_utf8_lossy(&four.stdout),
        "{args:?}: --threads 1 and --threads 4 print different results"
    );
    assert_eq!(
        one.status.code(),
        four.status.code(),
        "{args:?}: exit status"
    );
    assert_eq!(
        String::from_utf8_lossy(&one.stderr),
        String::from_utf8_lossy(&four.stderr),
        "{args:?}: messages"
    );
    one
}

/// The JSON document a run printed.
pub fn parse_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON ({e}); standard error: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The lines an `--ndjson` run printed.
pub fn parse_ndjson(out: &Output) -> Vec<Value> {
    ndjson_lines(&String::from_utf8_lossy(&out.stdout))
}

/// The lines of NDJSON text.
pub fn ndjson_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs `args` (see [`run`]), which must succeed: exit 0, or 1 for `--fail-on`.
pub fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{args:?}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `args` (which ask for JSON) to success and returns the document.
pub fn json_run(args: &[&str]) -> Value {
    parse_json(&run_ok(args))
}

/// The report of one capture with every flow listed (`--json --all`).
pub fn json_of(path: &Path) -> Value {
    json_run(&["-r", super::arg(path), "--json", "--all"])
}

/// The flows of a JSON report.
pub fn flows(doc: &Value) -> Vec<Value> {
    doc["flows"].as_array().cloned().unwrap_or_default()
}

/// The one flow of a report.
pub fn only_flow(doc: &Value) -> Value {
    let flows = flows(doc);
    assert_eq!(flows.len(), 1, "{doc:#}");
    flows.into_iter().next().unwrap_or_default()
}

/// The finding codes of a flow.
pub fn codes(flow: &Value) -> Vec<&str> {
    let list = flow["findings"].as_array().into_iter().flatten();
    list.filter_map(|x| x["code"].as_str()).collect()
}

/// The notes of a flow.
pub fn notes(flow: &Value) -> Vec<&str> {
    let list = flow["notes"].as_array().into_iter().flatten();
    list.filter_map(|x| x.as_str()).collect()
}

/// An address in its canonical text form (IPv6 compressed), or as given.
pub fn norm_ip(s: &str) -> String {
    s.parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// A flow's `client` or `server` object as (canonical address, port).
pub fn endpoint(ep: &Value) -> (String, u16) {
    (
        norm_ip(ep["ip"].as_str().unwrap_or_default()),
        ep["port"].as_u64().unwrap_or(0) as u16,
    )
}

/// A flow's client and server ports.
pub fn ports(flow: &Value) -> (u16, u16) {
    (endpoint(&flow["client"]).1, endpoint(&flow["server"]).1)
}

/// Runs `cmd` with `input` on its standard input, standard output and error
/// captured; an error when it cannot be started (not installed).
pub fn with_stdin(mut cmd: Command, input: &[u8]) -> std::io::Result<Output> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits without reading it all is not this helper's failure.
        let _ = stdin.write_all(input);
    }
    child.wait_with_output()
}

/// A flow record without what names packets of its capture (`input`, `frames`,
/// `frame_inputs`, and the `frame` and `input` of its findings and alerts): what
/// must stay the same when the same flow is read from another capture of it.
pub fn without_packet_numbers(flow: &mut Value) {
    let Some(o) = flow.as_object_mut() else {
        return;
    };
    for k in ["input", "frames", "frame_inputs"] {
        o.remove(k);
    }
    if let Some(findings) = o.get_mut("findings") {
        strip_frames(findings);
    }
    if let Some(alerts) = o.get_mut("tls").and_then(|t| t.get_mut("alerts")) {
        strip_frames(alerts);
    }
}

fn strip_frames(list: &mut Value) {
    for item in list.as_array_mut().into_iter().flatten() {
        if let Some(i) = item.as_object_mut() {
            i.remove("frame");
            i.remove("input");
        }
    }
}

/// A JSON value as the expectation files (TSV from tshark and openssl) spell it:
/// `-` for null or an empty list, `T`/`F`, list items joined with commas.
pub fn expect_text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::Bool(b) => if *b { "T" } else { "F" }.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let s: Vec<String> = a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect();
            if s.is_empty() {
                "-".into()
            } else {
                s.join(",")
            }
        }
        other => other.to_string(),
    }
}

/// The certificate fields the openssl-derived expectation files hold, by their
/// column names, read from one certificate object of a record.
pub fn certificate_fields(cert: &Value) -> [(&'static str, &Value); 13] {
    [
        ("subject", &cert["subject"]),
        ("issuer", &cert["issuer"]),
        ("subject_cn", &cert["subject_cn"]),
        ("serial", &cert["serial"]),
        ("not_before", &cert["not_before"]),
        ("not_after", &cert["not_after"]),
        ("san", &cert["san"]),
        ("key_type", &cert["key"]["type"]),
        ("key_bits", &cert["key"]["bits"]),
        ("curve", &cert["key"]["curve"]),
        ("signature_algorithm", &cert["signature_algorithm"]),
        ("self_signed", &cert["self_signed"]),
        ("ca", &cert["ca"]),
    ]
}
