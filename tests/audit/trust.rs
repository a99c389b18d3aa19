//! Chain validation at capture time, certificates about to expire, weak client
//! offers and the certificate inventory, on the real-peer captures of
//! fixtures/trust/ (fixtures/record_trust.sh) and against `openssl verify`
//! (fixtures/TRUST*.tsv, fixtures/tools/trust_expect.py).

use crate::kit::report::{codes, flows, json_run, run};
use crate::kit::{fixture, root, tsv_rows};
use serde_json::Value;
use std::path::Path;

const BUNDLE: &str = "fixtures/trust/bundle.pem";

/// The one flow of a trust fixture, judged against the fixture bundle only.
fn judged(name: &str, extra: &[&str]) -> Value {
    let file = format!("fixtures/trust/{name}.pcap");
    let args = [
        &[
            "-r",
            file.as_str(),
            "--json",
            "--no-default-roots",
            "--ca-file",
            BUNDLE,
        ][..],
        extra,
    ]
    .concat();
    let list = flows(&json_run(&args));
    assert_eq!(list.len(), 1, "{name}");
    list.into_iter().next().unwrap_or_default()
}

fn finding<'a>(flow: &'a Value, code: &str) -> Option<&'a Value> {
    flow["findings"]
        .as_array()?
        .iter()
        .find(|f| f["code"] == code)
}

/// Each recorded case: the validation result, and the finding it must (and the
/// ones it must not) raise.
#[test]
fn each_recorded_chain_gets_its_reason_and_finding() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("trust_ok", "ok", &[]),
        ("trust_expiring", "ok", &["CERT_EXPIRING"]),
        (
            "trust_missing_inter",
            "incomplete_chain",
            &["CERT_CHAIN_INCOMPLETE"],
        ),
        (
            "trust_client_eku",
            "invalid_for_server_auth",
            &["CERT_UNTRUSTED"],
        ),
        ("trust_not_a_ca", "not_a_ca", &["CERT_UNTRUSTED"]),
        ("trust_expired_inter", "expired", &["CERT_EXPIRED"]),
        ("trust_selfsigned", "self_signed", &["CERT_SELF_SIGNED"]),
        (
            "trust_unknown_issuer",
            "unknown_issuer",
            &["CERT_UNTRUSTED"],
        ),
        (
            "trust_untrusted_root",
            "untrusted_root",
            &["CERT_UNTRUSTED"],
        ),
    ];
    let trust_codes = [
        "CERT_UNTRUSTED",
        "CERT_CHAIN_INCOMPLETE",
        "CERT_EXPIRING",
        "CERT_EXPIRED",
        "CERT_SELF_SIGNED",
    ];
    for (name, want, want_codes) in cases {
        let flow = judged(name, &[]);
        assert_eq!(flow["tls"]["validation"], *want, "{name}");
        let got = codes(&flow);
        for c in trust_codes {
            assert_eq!(got.contains(&c), want_codes.contains(&c), "{name}: {got:?}");
        }
    }
    let f = judged("trust_missing_inter", &[]);
    let msg = finding(&f, "CERT_CHAIN_INCOMPLETE").unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(msg.contains("trust.example"), "{msg}");
    assert_eq!(
        finding(&f, "CERT_CHAIN_INCOMPLETE").unwrap()["severity"],
        "medium"
    );
    let f = judged("trust_unknown_issuer", &[]);
    assert_eq!(finding(&f, "CERT_UNTRUSTED").unwrap()["severity"], "high");
}

/// Mozilla's roots alone do not know the fixture root; `--ca-file` adds to them;
/// `--no-default-roots` without a file is refused.
#[test]
fn ca_file_adds_to_the_default_roots() {
    let file = "fixtures/trust/trust_ok.pcap";
    let only_mozilla = flows(&json_run(&["-r", file, "--json"]));
    assert_eq!(only_mozilla[0]["tls"]["validation"], "unknown_issuer");
    let both = flows(&json_run(&["-r", file, "--json", "--ca-file", BUNDLE]));
    assert_eq!(both[0]["tls"]["validation"], "ok");
    let dir = root().join("fixtures/trust");
    let by_dir = flows(&json_run(&[
        "-r",
        file,
        "--json",
        "--no-default-roots",
        "--ca-path",
        dir.to_str().unwrap(),
    ]));
    assert_eq!(by_dir[0]["tls"]["validation"], "ok");
    let refused = run(&["-r", file, "--no-default-roots"]);
    assert_eq!(refused.status.code(), Some(2));
    let missing = run(&["-r", file, "--ca-file", "fixtures/trust/no-such.pem"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--ca-file"));
}

/// A client certificate is judged for client authentication: `clientAuth` passes,
/// `serverAuth` alone does not.
#[test]
fn client_certificates_are_validated_for_client_auth() {
    let good = judged("trust_mutual", &[]);
    assert_eq!(good["tls"]["validation"], "ok");
    assert_eq!(good["tls"]["client_validation"], "ok");
    assert!(!codes(&good).contains(&"CERT_UNTRUSTED"));
    let bad = judged("trust_mutual_bad", &[]);
    assert_eq!(bad["tls"]["validation"], "ok");
    assert_eq!(bad["tls"]["client_validation"], "invalid_for_client_auth");
    let msg = finding(&bad, "CERT_UNTRUSTED").unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(
        msg.starts_with("client certificate client.trust.example"),
        "{msg}"
    );
    // Without a client certificate, no client_validation key at all.
    assert!(
        judged("trust_ok", &[])["tls"]
            .get("client_validation")
            .is_none()
    );
}

/// The fixture's leaf ends 10 days after it was made: CERT_EXPIRING at the
/// default 30 days, with the days left counted from the flow; not at 5 days.
#[test]
fn cert_expiring_counts_days_from_the_flow() {
    let f = judged("trust_expiring", &[]);
    let start = f["start"].as_str().unwrap().to_string();
    let leaf = &f["tls"]["certificates"][0];
    let days = days_between(&start, leaf["not_after"].as_str().unwrap());
    let msg = finding(&f, "CERT_EXPIRING").unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(
        msg.contains(&format!("expires in {days} days")),
        "{msg} ({days})"
    );
    assert!((8..=10).contains(&days), "{days}");
    assert_eq!(finding(&f, "CERT_EXPIRING").unwrap()["severity"], "low");
    let f = judged("trust_expiring", &["--cert-expiry-days", "5"]);
    assert!(finding(&f, "CERT_EXPIRING").is_none());
    let f = judged("trust_ok", &["--cert-expiry-days", "36500"]);
    assert!(finding(&f, "CERT_EXPIRING").is_some());
    let f = judged("trust_expiring", &["--cert-expiry-days", "0"]);
    assert!(finding(&f, "CERT_EXPIRING").is_none());
}

/// Whole days from one RFC 3339 time to another (both UTC, `...Z`).
fn days_between(from: &str, to: &str) -> i64 {
    let secs = |s: &str| -> i64 {
        let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
        let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
        // Days from civil (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)
    };
    (secs(to) - secs(from)).div_euclid(86_400)
}

/// The old OpenSSL client (TLS 1.0 at most, NULL and anonymous suites offered):
/// both client findings, judged on its ClientHello; a modern client gets neither.
#[test]
fn an_old_client_is_flagged_on_its_client_hello() {
    let f = judged("trust_old_client", &[]);
    let ch = &f["tls"]["client_hello"];
    assert_eq!(ch["version"], "TLSv1.0");
    let offered: Vec<&str> = ch["cipher_suites"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        offered.iter().any(|s| s.contains("WITH_NULL")),
        "{offered:?}"
    );
    assert!(offered.iter().any(|s| s.contains("_anon_")), "{offered:?}");
    let weak = finding(&f, "CLIENT_WEAK_CIPHERS").unwrap();
    assert_eq!(weak["severity"], "low");
    assert!(weak["message"].as_str().unwrap().contains("NULL"), "{weak}");
    let old = finding(&f, "CLIENT_DEPRECATED_TLS").unwrap();
    assert_eq!(old["severity"], "medium");
    let modern = judged("trust_ok", &[]);
    assert!(finding(&modern, "CLIENT_WEAK_CIPHERS").is_none());
    assert!(finding(&modern, "CLIENT_DEPRECATED_TLS").is_none());
}

/// tlswatch's `tls.validation` (and `client_validation`) against `openssl verify`
/// with the same bundle, for every chain of every capture (fixtures/TRUST.tsv,
/// and fixtures/TRUST-shared.tsv over the shared captures).
#[test]
fn chain_validation_matches_openssl_verify() {
    let mut sets = vec![(fixture("TRUST.tsv"), root().join("fixtures"), 40)];
    if let Some(expected) = crate::kit::shared_or_skip("captures/EXPECTED.tsv") {
        let base = expected.parent().unwrap().to_path_buf();
        sets.push((fixture("TRUST-shared.tsv"), base, 10));
    }
    let bundle = root().join(BUNDLE);
    for (tsv, base, min) in sets {
        let rows = tsv_rows(&tsv);
        let mut checked = 0;
        let mut errors = Vec::new();
        let mut files: Vec<&str> = rows.iter().map(|r| r["file"].as_str()).collect();
        files.dedup();
        for file in files {
            let got = validations(&base.join(file), &bundle);
            for row in rows.iter().filter(|r| r["file"] == file) {
                checked += 1;
                let key = (
                    row["client_port"].clone(),
                    row["server_port"].clone(),
                    row["from"].clone(),
                );
                let mine: Vec<&String> = got
                    .iter()
                    .filter(|(k, _)| *k == key)
                    .map(|(_, v)| v)
                    .collect();
                if !mine.contains(&&row["validation"]) {
                    errors.push(format!(
                        "{file} {key:?}: openssl {} ({}), tlswatch {mine:?}",
                        row["validation"], row["openssl"]
                    ));
                }
            }
        }
        assert!(checked >= min, "{}: only {checked} chains", tsv.display());
        assert!(
            errors.is_empty(),
            "{}: {} of {checked} chains differ:\n{}",
            tsv.display(),
            errors.len(),
            errors.join("\n")
        );
    }
}

/// ((client port, server port, side), validation) of every chain tlswatch judged.
fn validations(capture: &Path, bundle: &Path) -> Vec<((String, String, String), String)> {
    let doc = json_run(&[
        "-r",
        capture.to_str().unwrap(),
        "--json",
        "--all",
        "--no-default-roots",
        "--ca-file",
        bundle.to_str().unwrap(),
    ]);
    let mut out = Vec::new();
    for f in flows(&doc) {
        let ports = (
            f["client"]["port"].to_string(),
            f["server"]["port"].to_string(),
        );
        for (side, field) in [("server", "validation"), ("client", "client_validation")] {
            if let Some(v) = f["tls"][field].as_str() {
                out.push((
                    (ports.0.clone(), ports.1.clone(), side.to_string()),
                    v.to_string(),
                ));
            }
        }
    }
    out
}

/// The inventory's counts against the flow records grouped by certificate, in
/// JSON and NDJSON, and the table.
#[test]
fn certificate_inventory_counts_the_flows_of_each_certificate() {
    let dir = root().join("fixtures/trust");
    let mut pcaps: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    pcaps.sort();
    let mut a: Vec<&str> = pcaps.iter().flat_map(|p| ["-r", p.as_str()]).collect();
    a.extend(["--no-default-roots", "--ca-file", BUNDLE, "--certificates"]);
    let doc = json_run(&[&a[..], &["--json"]].concat());
    let all = flows(&doc);
    let certs = doc["certificates"].as_array().unwrap();
    assert!(certs.len() >= 10, "{}", certs.len());
    assert_eq!(doc["summary"]["certificates"]["listed"], certs.len());
    for c in certs {
        let sha = c["sha256"].as_str().unwrap();
        let mine: Vec<&Value> = all
            .iter()
            .filter(|f| {
                ["certificates", "client_certificates"].iter().any(|l| {
                    f["tls"][*l]
                        .as_array()
                        .is_some_and(|v| v.iter().any(|x| x["sha256"] == sha))
                })
            })
            .collect();
        assert_eq!(c["flows"], mine.len(), "{sha}");
        let counted: u64 = c["validation"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert!(counted >= mine.len() as u64, "{c}");
        assert_eq!(c["type"], "certificate");
        assert!(c["days_to_expiry"].is_i64(), "{c}");
        let first = mine
            .iter()
            .map(|f| f["start"].as_str().unwrap())
            .min()
            .unwrap();
        assert_eq!(c["first"], first);
    }
    // The root's intermediate is in every chain but the self-signed, the
    // untrusted and the not-a-CA ones.
    let inter = certs
        .iter()
        .find(|c| c["subject_cn"] == "tlswatch trust intermediate CA")
        .unwrap();
    assert_eq!(inter["sent_by"], serde_json::json!(["server", "client"]));
    assert!(inter["validation"]["ok"].as_u64().unwrap() >= 4, "{inter}");
    // Soonest expiry first: the expired intermediate, then the 10-day leaf.
    assert_eq!(certs[0]["subject_cn"], "tlswatch trust old intermediate CA");
    assert!(certs[0]["days_to_expiry"].as_i64().unwrap() < 0);
    let nd = String::from_utf8(run(&[&a[..], &["--ndjson"]].concat()).stdout).unwrap();
    let lines: Vec<Value> = nd
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["type"] == "certificate")
        .collect();
    assert_eq!(lines.len(), certs.len());
    assert_eq!(lines[0], certs[0]);
    let table = String::from_utf8(run(&a).stdout).unwrap();
    assert!(table.starts_with("EXPIRES"), "{table}");
    assert!(
        table.contains("tlswatch trust old intermediate CA"),
        "{table}"
    );
    assert!(table.contains("certificates: "), "{table}");
}

/// CLIENT_DEPRECATED_TLS and CLIENT_WEAK_CIPHERS against what tshark lists of
/// each ClientHello (fixtures/CLIENTS*.tsv, fixtures/tools/client_expect.py):
/// the highest version offered, and how many weak suites by tshark's names.
#[test]
fn client_findings_match_tshark() {
    let mut sets = vec![(fixture("CLIENTS.tsv"), root().join("fixtures"), 60)];
    if let Some(expected) = crate::kit::shared_or_skip("captures/EXPECTED.tsv") {
        let base = expected.parent().unwrap().to_path_buf();
        sets.push((fixture("CLIENTS-shared.tsv"), base, 60));
    }
    for (tsv, base, min) in sets {
        let rows = tsv_rows(&tsv);
        let (mut checked, mut missing) = (0, 0);
        let mut errors = Vec::new();
        let mut files: Vec<&str> = rows.iter().map(|r| r["file"].as_str()).collect();
        files.dedup();
        for file in files {
            let path = base.join(file);
            let all = flows(&json_run(&[
                "-r",
                path.to_str().unwrap(),
                "--json",
                "--all",
            ]));
            for row in rows.iter().filter(|r| r["file"] == file) {
                let mine: Vec<&Value> = all
                    .iter()
                    .filter(|f| {
                        let port = |k: &str| row[k].parse::<u64>().ok();
                        f["client"]["port"].as_u64() == port("client_port")
                            && f["server"]["port"].as_u64() == port("server_port")
                            && f["tls"]["client_hello"].is_object()
                    })
                    .collect();
                if mine.is_empty() {
                    missing += 1;
                    continue;
                }
                checked += 1;
                let weak_count = format!("offered {} weak suites", row["weak_suites"]);
                let agrees = |f: &&Value| {
                    let c = codes(f);
                    let weak = finding(f, "CLIENT_WEAK_CIPHERS");
                    c.contains(&"CLIENT_DEPRECATED_TLS") == (row["deprecated"] == "T")
                        && weak.is_some() == (row["weak"] == "T")
                        && weak.is_none_or(|w| {
                            w["message"].as_str().unwrap_or("").contains(&weak_count)
                        })
                };
                if !mine.iter().any(agrees) {
                    errors.push(format!(
                        "{file} {}->{}: tshark highest {} deprecated {} weak {}, tlswatch {:?}",
                        row["client_port"],
                        row["server_port"],
                        row["highest_offered"],
                        row["deprecated"],
                        row["weak_suites"],
                        mine.iter().map(|f| codes(f)).collect::<Vec<_>>()
                    ));
                }
            }
        }
        eprintln!("{}: {missing} connections not reported", tsv.display());
        assert!(
            checked >= min,
            "{}: only {checked} connections",
            tsv.display()
        );
        assert!(
            errors.is_empty(),
            "{}: {} of {checked} differ:\n{}",
            tsv.display(),
            errors.len(),
            errors.join("\n")
        );
    }
}

/// A stapled OCSP response (CertificateStatus) and SCTs in the ServerHello
/// extension are recorded as present; byte-built (the extension's list bytes
/// are not checked, only its presence), beside a real capture with SCTs
/// (zeek's tls__signed_certificate_timestamp_tls1_0.pcap) when the shared
/// captures are there.
#[test]
fn stapled_ocsp_and_scts_are_recorded_as_present() {
    use crate::kit::net::{ACK, PSH};
    use crate::kit::pcap::{Conn, Pcap};
    use crate::kit::report::{json_of, only_flow};
    use crate::kit::tls::{C, CCS, S, client_hello, handshake};
    let build = |ocsp: bool, sct: bool| {
        let mut sh = 0x0303u16.to_be_bytes().to_vec();
        sh.extend([7u8; 32]);
        sh.push(0);
        sh.extend(0xc02fu16.to_be_bytes());
        sh.push(0);
        if sct {
            // extensions: signed_certificate_timestamp (18) with a 4-byte list
            sh.extend([0, 8, 0, 18, 0, 4, 0, 2, 0xab, 0xcd]);
        }
        let mut server = handshake(0x0303, 2, &sh);
        if ocsp {
            // CertificateStatus: status_type ocsp (1), a 3-byte response
            server.extend(handshake(0x0303, 22, &[1, 0, 0, 3, 0x30, 0x01, 0x00]));
        }
        server.extend(handshake(0x0303, 14, &[]));
        let mut p = Pcap::new();
        Conn::new(C, S, 100, 500)
            .open(&mut p)
            .client(&mut p, ACK | PSH, &client_hello())
            .server(&mut p, ACK | PSH, &server)
            .client(&mut p, ACK | PSH, CCS)
            .server(&mut p, ACK | PSH, CCS);
        let flow = only_flow(&json_of(&p.write(&format!("ocsp{ocsp}-sct{sct}.pcap"))));
        (
            flow["tls"]["ocsp_stapled"].clone(),
            flow["tls"]["sct"].clone(),
        )
    };
    assert_eq!(
        build(false, false),
        (Value::Bool(false), Value::Bool(false))
    );
    assert_eq!(build(true, false), (Value::Bool(true), Value::Bool(false)));
    assert_eq!(build(false, true), (Value::Bool(false), Value::Bool(true)));
    if let Some(p) =
        crate::kit::shared_or_skip("captures/zeek/tls__signed_certificate_timestamp_tls1_0.pcap")
    {
        let all = flows(&json_run(&["-r", p.to_str().unwrap(), "--json"]));
        assert!(all.iter().any(|f| f["tls"]["sct"] == true), "{all:?}");
    }
}
