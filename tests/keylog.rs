//! TLS 1.3 and QUIC handshakes read with the keys the peers logged (`--keylog`,
//! pcapng Decryption Secrets Blocks): the fixtures of `fixtures/keylog/` and the
//! QUIC captures of `fixtures/udp/`, compared field by field with what tshark
//! shows given the same secrets (`fixtures/KEYLOG.tsv`, from
//! `fixtures/tools/keylog_expect.py`). And what must never happen: a secret in
//! any output, a panic on a wrong key, a cost without keys.

// A panic in a test is a failed test, not a crash on input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod kit;

use kit::report::{
    certificate_fields, codes, expect_text as text, flows, json_run, notes, parse_json, ports, run,
    run_once,
};
use kit::{TsvRow, fixture, tmp, tsv_rows};
use serde_json::Value;
use std::collections::BTreeMap;

/// The report of `file` read with the key log `keys` (`-`: none given).
fn report(file: &str, keys: &str) -> Value {
    let file = format!("fixtures/{file}");
    let keys = format!("fixtures/{keys}");
    let mut args = vec!["-r", file.as_str(), "--json"];
    if !keys.ends_with("/-") {
        args.extend(["--keylog", keys.as_str()]);
    }
    json_run(&args)
}

/// Connection fields of one row against a flow; the number of values compared.
fn connection_mismatches(row: &TsvRow, flow: &Value, errors: &mut Vec<String>) -> usize {
    let tls = &flow["tls"];
    let e = &tls["encrypted_handshake"];
    let fields = [
        ("alpn", &tls["server_hello"]["alpn"]),
        ("server_signature", &e["server_signature"]),
        ("client_signature", &e["client_signature"]),
        ("compression", &e["certificate_compression"]),
    ];
    if tls["decrypted"] != true {
        errors.push(format!("{}: not decrypted", row["file"]));
    }
    for (name, got) in fields {
        if text(got) != row[name] {
            errors.push(format!(
                "{} {name}: tshark {:?}, tlswatch {:?}",
                row["file"],
                row[name],
                text(got)
            ));
        }
    }
    fields.len() + 1
}

/// One certificate row against the flow's chain; the number of values compared.
fn certificate_mismatches(row: &TsvRow, flow: &Value, errors: &mut Vec<String>) -> usize {
    if row["from"] == "-" {
        return 0;
    }
    let list = if row["from"] == "client" {
        "client_certificates"
    } else {
        "certificates"
    };
    let index: usize = row["index"].parse().unwrap();
    let cert = &flow["tls"][list][index];
    let sha256 = [("sha256", &cert["sha256"])];
    let listed = certificate_fields(cert);
    let compared = sha256.len() + listed.len();
    let fields = sha256.into_iter().chain(listed);
    for (name, got) in fields {
        let want = &row[name];
        let skip = name == "key_bits" && want == "-";
        if !skip && text(got) != *want {
            errors.push(format!(
                "{} {list}[{index}] {name}: tshark+openssl {want:?}, tlswatch {:?}",
                row["file"],
                text(got)
            ));
        }
    }
    compared
}

#[test]
fn decrypted_handshakes_match_tshark() {
    let rows = tsv_rows(&fixture("KEYLOG.tsv"));
    let mut by_capture: BTreeMap<(String, String), Vec<&TsvRow>> = BTreeMap::new();
    for r in &rows {
        by_capture
            .entry((r["file"].clone(), r["keys"].clone()))
            .or_default()
            .push(r);
    }
    let (mut checked, mut errors) = (0, Vec::new());
    for ((file, keys), rows) in &by_capture {
        let doc = report(file, keys);
        for (i, row) in rows.iter().enumerate() {
            let want = (
                row["client_port"].parse::<u16>().unwrap(),
                row["server_port"].parse::<u16>().unwrap(),
            );
            let Some(flow) = flows(&doc).into_iter().find(|f| ports(f) == want) else {
                errors.push(format!("{file}: no flow {want:?}"));
                continue;
            };
            if i == 0 {
                checked += connection_mismatches(row, &flow, &mut errors);
            }
            checked += certificate_mismatches(row, &flow, &mut errors);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // 16 captures (one inside a SOCKS5 tunnel); 30 certificates of 14 fields.
    assert!(by_capture.len() >= 16, "{}", by_capture.len());
    assert!(checked >= 400, "only {checked} values checked");
}

/// Each suite, the client certificate, the STARTTLS upgrade, the secrets inside a
/// pcapng and QUIC: decrypted, both Finished read, and nothing of the sort
/// without the keys (where the flow stays as it always was).
#[test]
fn keys_open_the_handshake_and_without_them_nothing_changes() {
    let cases = [
        ("keylog/tls13_aes128gcm.pcap", "TLS_AES_128_GCM_SHA256"),
        ("keylog/tls13_aes256gcm.pcap", "TLS_AES_256_GCM_SHA384"),
        ("keylog/tls13_chacha20.pcap", "TLS_CHACHA20_POLY1305_SHA256"),
        ("keylog/tls13_aes128ccm.pcap", "TLS_AES_128_CCM_SHA256"),
        ("keylog/tls13_aes128ccm8.pcap", "TLS_AES_128_CCM_8_SHA256"),
        ("keylog/tls13_client_cert.pcap", "TLS_AES_256_GCM_SHA384"),
        ("keylog/smtp_starttls_tls13.pcap", "TLS_AES_256_GCM_SHA384"),
        ("udp/quic_v1.pcap", "TLS_AES_256_GCM_SHA384"),
        ("udp/quic_v2.pcap", "TLS_AES_256_GCM_SHA384"),
        ("udp/quic_retry.pcap", "TLS_AES_256_GCM_SHA384"),
    ];
    for (file, suite) in cases {
        let keys = file.replace(".pcap", ".keys").replacen('/', "/keys/", 1);
        let with = flows(&report(file, &keys)).remove(0);
        let tls = &with["tls"];
        assert_eq!(tls["server_hello"]["cipher_suite"], suite, "{file}");
        assert_eq!(tls["decrypted"], true, "{file}");
        assert_eq!(
            tls["encrypted_handshake"]["finished"],
            serde_json::json!(["server", "client"]),
            "{file}"
        );
        assert!(
            !tls["certificates"].as_array().unwrap().is_empty(),
            "{file}"
        );
        assert!(!notes(&with).contains(&"keys_mismatch"), "{file}");
        let without = flows(&report(file, "-")).remove(0);
        assert!(without["tls"].get("decrypted").is_none(), "{file}");
        assert!(
            without["tls"].get("encrypted_handshake").is_none(),
            "{file}"
        );
        assert_eq!(
            without["tls"]["certificates"],
            serde_json::json!([]),
            "{file}"
        );
    }
    let client = flows(&report(
        "keylog/tls13_client_cert.pcap",
        "keylog/keys/tls13_client_cert.keys",
    ))
    .remove(0);
    let certs = client["tls"]["client_certificates"].as_array().unwrap();
    assert_eq!(certs[0]["subject_cn"], "client.depth.example");
    let request = &client["tls"]["encrypted_handshake"]["certificate_request"];
    assert_eq!(request["certificate_authorities"], 1);
    let smtp = flows(&report(
        "keylog/smtp_starttls_tls13.pcap",
        "keylog/keys/smtp_starttls_tls13.keys",
    ))
    .remove(0);
    assert_eq!(smtp["encryption"], "starttls");
    assert_eq!(smtp["app_protocol"], "smtp");
}

/// The certificate findings, and the server inventory, work on a decrypted flow
/// as on a TLS 1.2 one: aioquic's self-signed certificate for another name.
#[test]
fn every_certificate_check_applies_to_a_decrypted_flow() {
    let with = flows(&report("udp/quic_v1.pcap", "udp/keys/quic_v1.keys")).remove(0);
    let c = codes(&with);
    assert!(c.contains(&"CERT_SELF_SIGNED"), "{c:?}");
    assert!(c.contains(&"CERT_NAME_MISMATCH"), "{c:?}");
    let without = flows(&report("udp/quic_v1.pcap", "-")).remove(0);
    assert!(!codes(&without).contains(&"CERT_SELF_SIGNED"));
    let servers = json_run(&[
        "-r",
        "fixtures/keylog/tls13_client_cert.pcap",
        "--keylog",
        "fixtures/keylog/keys/tls13_client_cert.keys",
        "--json",
        "--servers",
    ]);
    let text = servers["servers"].to_string();
    assert!(text.contains("depth.example"), "{text}");
}

/// The secrets a key log file holds (hex, as written there).
fn secrets_of(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(' ').nth(2).map(str::to_lowercase))
        .collect()
}

/// Every way tlswatch prints: JSON, NDJSON, the table, the server inventory.
fn every_output(args: &[&str]) -> String {
    let mut all = String::new();
    for extra in [
        &["--json"][..],
        &["--ndjson"],
        &[],
        &["--servers"],
        &["--json", "--all"],
    ] {
        let out = run(&[args, extra].concat());
        all.push_str(&String::from_utf8_lossy(&out.stdout));
        all.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    all.to_lowercase()
}

#[test]
fn key_material_is_never_printed() {
    for (file, keys) in [
        (
            "fixtures/keylog/tls13_client_cert.pcap",
            "fixtures/keylog/keys/tls13_client_cert.keys",
        ),
        (
            "fixtures/udp/quic_v1.pcap",
            "fixtures/udp/keys/quic_v1.keys",
        ),
    ] {
        let all = every_output(&["-r", file, "--keylog", keys]);
        let secrets = secrets_of(&kit::root().join(keys));
        assert!(secrets.len() >= 4);
        for s in &secrets {
            // Any 16 hex digits of a secret would be a leak.
            assert!(!all.contains(&s[..16]), "{file}: a secret was printed");
        }
    }
    // Secrets carried in the capture are not printed either.
    let out = every_output(&["-r", "fixtures/keylog/tls13_dsb.pcapng"]);
    let block = std::fs::read(fixture("keylog/tls13_dsb.pcapng")).unwrap();
    let text = String::from_utf8_lossy(&block);
    let line = text
        .lines()
        .find(|l| l.contains("SERVER_HANDSHAKE_TRAFFIC_SECRET"))
        .unwrap();
    let secret = line.split(' ').nth(2).unwrap().to_lowercase();
    assert!(!out.contains(&secret[..16]));
    // Nor written with the packets (`-w`): a pcap holds packets only.
    let written = tmp("dsb-written.pcap");
    let _ = std::fs::remove_file(&written);
    run_once(&[
        "-r",
        "fixtures/keylog/tls13_dsb.pcapng",
        "-w",
        written.to_str().unwrap(),
        "--json",
    ]);
    let bytes = std::fs::read(&written).unwrap();
    assert!(bytes.len() > 1000);
    let text = String::from_utf8_lossy(&bytes).to_lowercase();
    assert!(!text.contains("traffic_secret") && !text.contains(&secret[..16]));
    // The same keys read from a file give the same report as from the capture.
    let dsb = flows(&report("keylog/tls13_dsb.pcapng", "-")).remove(0);
    assert_eq!(dsb["tls"]["decrypted"], true);
}

/// A key log whose secrets are wrong for the connection (same client random):
/// the note, no certificates, no panic, nothing printed of the keys.
#[test]
fn wrong_keys_are_noted_not_fatal() {
    for (file, keys) in [
        (
            "keylog/tls13_aes256gcm.pcap",
            "keylog/keys/tls13_aes256gcm.keys",
        ),
        (
            "keylog/tls13_chacha20.pcap",
            "keylog/keys/tls13_chacha20.keys",
        ),
        ("udp/quic_v1.pcap", "udp/keys/quic_v1.keys"),
    ] {
        let good = std::fs::read_to_string(fixture(keys)).unwrap();
        let bad: String = good
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                // Every secret byte flipped; a short secret for one line too.
                let flipped: String = f[2]
                    .chars()
                    .map(|c| if c == 'f' { '0' } else { 'f' })
                    .collect();
                format!("{} {} {flipped}\n", f[0], f[1])
            })
            .collect();
        let path = tmp(&format!("wrong-{}.keys", file.replace('/', "-")));
        std::fs::write(&path, &bad).unwrap();
        let out = run(&[
            "-r",
            &format!("fixtures/{file}"),
            "--keylog",
            path.to_str().unwrap(),
            "--json",
        ]);
        assert!(out.status.success(), "{file}");
        let flow = flows(&parse_json(&out)).remove(0);
        assert!(notes(&flow).contains(&"keys_mismatch"), "{file}: {flow:#}");
        assert_eq!(flow["tls"]["certificates"], serde_json::json!([]), "{file}");
        let printed = String::from_utf8_lossy(&out.stdout).to_lowercase();
        for s in secrets_of(&path) {
            assert!(!printed.contains(&s[..16]), "{file}");
        }
    }
    // A secret too short for the suite's hash (SHA-384): noted too.
    let good = std::fs::read_to_string(fixture("keylog/keys/tls13_aes256gcm.keys")).unwrap();
    let short: String = good
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!("{} {} {}\n", f[0], f[1], &f[2][..64])
        })
        .collect();
    let path = tmp("short-secret.keys");
    std::fs::write(&path, short).unwrap();
    let doc = json_run(&[
        "-r",
        "fixtures/keylog/tls13_aes256gcm.pcap",
        "--keylog",
        path.to_str().unwrap(),
        "--json",
    ]);
    assert!(notes(&flows(&doc)[0]).contains(&"keys_mismatch"));
}

#[test]
fn malformed_lines_are_counted_and_warned_once() {
    let good = std::fs::read_to_string(fixture("keylog/keys/tls13_aes128gcm.keys")).unwrap();
    let mut text = String::from("not a key log line\nCLIENT_HANDSHAKE_TRAFFIC_SECRET zz 00\n");
    text.push_str(&good);
    text.push_str("SERVER_HANDSHAKE_TRAFFIC_SECRET 00 11\n# a comment\n\n");
    let path = tmp("malformed.keys");
    std::fs::write(&path, text).unwrap();
    let out = run(&[
        "-r",
        "fixtures/keylog/tls13_aes128gcm.pcap",
        "--keylog",
        path.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("key log")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("3 malformed lines ignored"),
        "{stderr}"
    );
    assert_eq!(flows(&parse_json(&out))[0]["tls"]["decrypted"], true);
    // A key log that cannot be read is an error, before any capture is read.
    let out = run_once(&[
        "-r",
        "fixtures/keylog/tls13_aes128gcm.pcap",
        "--keylog",
        "fixtures/keylog/keys/absent.keys",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.keys"));
}

/// RFC 8879: the same chain sent compressed with zlib, brotli and zstd reads as
/// the same certificates (tshark decompresses brotli: that row is in KEYLOG.tsv).
#[test]
fn compressed_certificates_read_alike() {
    let chain = |alg: &str| {
        let doc = report(
            &format!("keylog/compressed_{alg}.pcap"),
            &format!("keylog/keys/compressed_{alg}.keys"),
        );
        let flow = flows(&doc).remove(0);
        assert_eq!(
            flow["tls"]["encrypted_handshake"]["certificate_compression"], alg,
            "{alg}"
        );
        flow["tls"]["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sha256"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let brotli = chain("brotli");
    assert_eq!(brotli.len(), 3);
    assert_eq!(chain("zlib"), brotli);
    assert_eq!(chain("zstd"), brotli);
}

/// `--keylog` is bounded and fast: a key log of a million lines (200,000
/// connections: both handshake secrets and three lines not needed each) loads
/// in seconds, here in the unoptimised test build.
#[test]
fn a_million_line_key_log_loads_in_seconds() {
    use std::fmt::Write;
    let mut text = String::with_capacity(200 << 20);
    let mut rng = kit::Rng(7);
    for _ in 0..200_000 {
        let random: String = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
        let secret: String = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
        for label in [
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
            "SERVER_HANDSHAKE_TRAFFIC_SECRET",
            "CLIENT_TRAFFIC_SECRET_0",
            "SERVER_TRAFFIC_SECRET_0",
            "EXPORTER_SECRET",
        ] {
            writeln!(text, "{label} {random} {secret}").unwrap();
        }
    }
    let path = tmp("million.keys");
    std::fs::write(&path, text).unwrap();
    let keys = tlswatch::keylog::KeyLog::new();
    let start = std::time::Instant::now();
    let stats = keys.load_file(path.to_str().unwrap()).unwrap();
    let took = start.elapsed();
    eprintln!("1,000,000 key log lines loaded in {took:?}");
    assert_eq!(stats.used, 400_000);
    assert_eq!(stats.malformed, 0);
    assert_eq!(keys.len(), 200_000);
    assert!(took.as_secs() < 60, "{took:?}");
    let _ = std::fs::remove_file(path);
}
