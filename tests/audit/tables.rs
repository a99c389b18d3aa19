//! What the tables keep and what the TSV export says: endpoints whole at every
//! width and piped, the TSV read back equal to the JSON, and --select/--sort.

use crate::kit::net::{self, ACK, FIN, PSH, SYN};
use crate::kit::pcap::Pcap;
use crate::kit::report::{bin, json_run, parse_json, run, run_ok};
use crate::kit::tls::{client_hello, server_hello};
use crate::kit::{arg, fixture, recorded_captures};
use serde_json::Value;
use std::path::PathBuf;

/// An IPv6 address of 8 full groups: `2001:db8:N:...` made wide on purpose.
fn wide_v6(n: u8) -> [u8; 16] {
    let mut a = [0xabu8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    a[15] = n;
    a
}

/// One IPv6 TCP connection: handshake, a ClientHello, a ServerHello of `version`, FINs.
fn v6_tls(p: &mut Pcap, c: ([u8; 16], u16), s: ([u8; 16], u16), version: u16) {
    let (mut cs, mut ss) = (1000u32, 5000u32);
    let ch = client_hello();
    let sh = server_hello(version, 0xc02f);
    let mut seg = |from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]| {
        let (src, dst) = if from_client { (c, s) } else { (s, c) };
        let t = net::tcp(src.1, dst.1, seq, ack, flags, payload);
        p.packet(&net::ipv6(6, src.0, dst.0, &t));
    };
    seg(true, cs, 0, SYN, b"");
    cs += 1;
    seg(false, ss, cs, SYN | ACK, b"");
    ss += 1;
    seg(true, cs, ss, ACK | PSH, &ch);
    cs += ch.len() as u32;
    seg(false, ss, cs, ACK | PSH, &sh);
    ss += sh.len() as u32;
    seg(true, cs, ss, FIN | ACK, b"");
    cs += 1;
    seg(false, ss, cs, FIN | ACK, b"");
    seg(true, cs, ss + 1, ACK, b"");
}

/// Wide IPv6 flows (SSLv3, TLS 1.0, TLS 1.2) and the IPv4 fixtures' flows.
fn ipv6_capture() -> PathBuf {
    let mut p = Pcap::new();
    for (n, version) in [(1u8, 0x0300u16), (2, 0x0301), (3, 0x0303)] {
        v6_tls(
            &mut p,
            (wide_v6(n), 65000 + u16::from(n)),
            (wide_v6(100 + n), 443),
            version,
        );
    }
    p.write("wide-ipv6.pcap")
}

/// The endpoint as the table writes it.
fn endpoint(v: &Value) -> String {
    let ip = v["ip"].as_str().unwrap_or_default();
    let port = &v["port"];
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Runs tlswatch with `COLUMNS` set to `width` (unset: piped).
fn table(args: &[&str], width: Option<usize>) -> String {
    let mut cmd = bin();
    cmd.args(args).env("NO_COLOR", "1").env_remove("COLUMNS");
    if let Some(w) = width {
        cmd.env("COLUMNS", w.to_string());
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn tables_keep_both_endpoints_whole_at_every_width_and_piped() {
    let wide = ipv6_capture();
    let inputs = [
        arg(&wide).to_string(),
        arg(&fixture("tls/tls12_ipv6.pcap")).to_string(),
        arg(&fixture("tls/multi.pcap")).to_string(),
        arg(&fixture("starttls/smtp-cleartext-auth.pcap")).to_string(),
    ];
    let mut args: Vec<&str> = Vec::new();
    for i in &inputs {
        args.extend(["-r", i]);
    }
    let doc = json_run(&[args.as_slice(), &["--json"]].concat());
    let flows = doc["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 8);
    for server_table in [false, true] {
        let mut a = args.clone();
        if server_table {
            a.push("--servers");
        }
        for width in [Some(80), Some(120), Some(160), Some(200), None] {
            let text = table(&a, width);
            for f in flows {
                let server = endpoint(&f["server"]);
                assert!(text.contains(&server), "{width:?}: {server} cut:\n{text}");
                if !server_table {
                    let client = endpoint(&f["client"]);
                    assert!(text.contains(&client), "{width:?}: {client} cut:\n{text}");
                    let id = match f["input"].as_u64() {
                        Some(0) | None => format!("{}/{}", f["id"], f["frames"]["first"]),
                        Some(n) => format!("{}/{}@{n}", f["id"], f["frames"]["first"]),
                    };
                    assert!(
                        text.lines()
                            .any(|l| l.split_whitespace().next() == Some(id.as_str())),
                        "{width:?}: no row {id}:\n{text}"
                    );
                }
            }
            if let Some(w) = width {
                for line in text.lines().take_while(|l| !l.is_empty()) {
                    assert!(
                        line.chars().count() <= w,
                        "{w} columns, {} wide:\n{line}",
                        line.chars().count()
                    );
                }
            } else if !server_table {
                // Piped: a line per flow, the header, nothing cut.
                let rows = text.lines().take_while(|l| !l.is_empty()).count();
                assert_eq!(rows, flows.len() + 1, "{text}");
                assert!(!text.contains('~'), "{text}");
            }
        }
    }
}

#[test]
fn an_sslv3_row_shows_its_finding_and_a_tls13_row_stays_clean() {
    let text = table(
        &[
            "-r",
            "fixtures/tls/sslv3.pcap",
            "-r",
            "fixtures/tls/tls13.pcap",
            "--color",
            "always",
        ],
        None,
    );
    let row = |v: &str| {
        text.lines()
            .find(|l| l.contains(v))
            .unwrap_or_else(|| panic!("{text}"))
            .to_string()
    };
    let sslv3 = row("SSLv3");
    assert!(sslv3.contains("\x1b[31mtls\x1b[0m"), "{sslv3:?}");
    assert!(
        !sslv3.contains("\x1b[32m"),
        "green on an SSLv3 row: {sslv3:?}"
    );
    let tls13 = row("TLSv1.3");
    assert!(tls13.contains("\x1b[32mtls\x1b[0m"), "{tls13:?}");
    assert!(
        tls13.contains("(encrypted)") && !tls13.contains("TLS_1_3"),
        "{tls13:?}"
    );
    // The summary still counts the info finding, as the JSON does.
    assert!(
        text.contains("findings: ") && text.contains("TLS_1_3 1"),
        "{text}"
    );
}

#[test]
fn show_users_puts_user_and_mechanism_in_the_table() {
    let f = "fixtures/starttls/smtp-cleartext-auth.pcap";
    let doc = json_run(&["-r", f, "--json", "--show-users"]);
    let auth = &doc["flows"][0]["cleartext_auth"][0];
    let (user, mech) = (
        auth["user"].as_str().unwrap(),
        auth["mechanism"].as_str().unwrap(),
    );
    let text = table(&["-r", f, "--show-users"], None);
    assert!(text.lines().next().unwrap().contains("USER"), "{text}");
    assert!(text.contains(&format!("{user} ({mech})")), "{text}");
    let plain = table(&["-r", f], None);
    assert!(
        !plain.contains("USER") && !plain.contains(&format!("{user} (")),
        "{plain}"
    );
}

/// Every named TSV field, from the message that rejects an unknown one.
fn named_fields() -> Vec<String> {
    let out = run(&["-r", "x.pcap", "--format", "tsv", "--fields", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let list = err
        .split("(fields: ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_else(|| panic!("{err}"));
    list.split(", ").map(str::to_string).collect()
}

/// The severities from least to worst.
const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// A JSON value as the TSV is documented to write it.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(m) if m.is_empty() => "-".into(),
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| format!("{k}={}", cell(x)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// `key` of each element of the array `v`, joined, or `-`.
fn pluck(v: &Value, key: &str) -> String {
    let items: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter(|x| !x[key].is_null())
        .map(|x| cell(&x[key]))
        .collect();
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// What a named flow field must hold, read from the flow's JSON by the README's definitions.
fn expected(f: &Value, field: &str) -> String {
    let tls = &f["tls"];
    match field {
        "client" | "server" => endpoint(&f[field]),
        "client_ip" | "client_port" => cell(&f["client"][field.trim_start_matches("client_")]),
        "server_ip" | "server_port" => cell(&f["server"][field.trim_start_matches("server_")]),
        "app" => cell(&f["app_protocol"]),
        "version" => cell(&tls["version"]),
        "sni" | "ja3" | "ja4" => cell(&tls["client_hello"][field]),
        "alpn" | "ja3s" => cell(&tls["server_hello"][field]),
        "cipher" => cell(&tls["server_hello"]["cipher_suite"]),
        "certificate" => cell(&tls["certificates"][0]["subject_cn"]),
        "not_after" => cell(&tls["certificates"][0]["not_after"]),
        "cert_sha256" => cell(&tls["certificates"][0]["sha256"]),
        "severity" => f["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| SEVERITIES.iter().position(|s| x["severity"] == *s))
            .max()
            .map_or("-".into(), |i| SEVERITIES[i].to_string()),
        "findings" => pluck(&f["findings"], "code"),
        "auth" => pluck(&f["cleartext_auth"], "mechanism"),
        "users" => pluck(&f["cleartext_auth"], "user"),
        "client_packets" | "server_packets" => {
            cell(&f["packets"][field.trim_end_matches("_packets")])
        }
        "client_bytes" | "server_bytes" => cell(&f["bytes"][field.trim_end_matches("_bytes")]),
        "first_frame" => cell(&f["frames"]["first"]),
        _ => cell(&f[field]),
    }
}

#[test]
fn tsv_read_back_equals_the_json() {
    let fields = named_fields();
    assert!(fields.len() >= 30, "{fields:?}");
    let paths = [
        "tls.client_hello.ja4_r",
        "starttls.command",
        "quic.version",
        "tls.certificates.0.issuer",
    ];
    let list = [fields.join(","), paths.join(",")].join(",");
    let mut checked = 0;
    for capture in recorded_captures() {
        let c = arg(&capture);
        let common = ["-r", c, "--all", "--show-users"];
        let doc = parse_json(&run_ok(&[common.as_slice(), &["--json"]].concat()));
        let flows = doc["flows"].as_array().unwrap();
        let out = run_ok(&[common.as_slice(), &["--format", "tsv", "--fields", &list]].concat());
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
        assert_eq!(header.len(), fields.len() + paths.len(), "{c}");
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
        assert_eq!(rows.len(), flows.len(), "{c}: {text}");
        for (row, f) in rows.iter().zip(flows) {
            assert_eq!(row.len(), header.len(), "{c}: {row:?}");
            for (name, got) in header.iter().zip(row) {
                let want = if paths.contains(name) {
                    let v = name
                        .split('.')
                        .fold(f, |v, seg| match seg.parse::<usize>() {
                            Ok(i) => &v[i],
                            Err(_) => &v[seg],
                        });
                    cell(v)
                } else {
                    expected(f, name)
                };
                assert_eq!(*got, want, "{c}: flow {} field {name}", f["id"]);
                checked += 1;
            }
        }
    }
    assert!(checked > 3000, "{checked} values checked");
}

#[test]
fn tsv_server_lines_read_back_equal_the_server_records() {
    let a = [
        "-r",
        "fixtures/tls/multi.pcap",
        "-r",
        "fixtures/tls/tls12_ipv6.pcap",
        "-r",
        "fixtures/starttls/smtp-cleartext-auth.pcap",
        "--servers",
    ];
    let doc = json_run(&[a.as_slice(), &["--json"]].concat());
    let servers = doc["servers"].as_array().unwrap();
    let text =
        String::from_utf8(run_ok(&[a.as_slice(), &["--format", "tsv"]].concat()).stdout).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), servers.len(), "{text}");
    for (row, s) in rows.iter().zip(servers) {
        for (name, got) in header.iter().zip(row) {
            let want = match *name {
                "server" => endpoint(&s["server"]),
                "apps" => cell(&s["app_protocols"]),
                "encryption" => cell(&s["by_encryption"]),
                "certificate" => cell(&s["certificates"][0]["subject_cn"]),
                "not_after" => cell(&s["certificates"][0]["not_after"]),
                "severity" => cell(&s["worst_severity"]),
                n => cell(&s[n]),
            };
            assert_eq!(*got, want, "{name}: {text}");
        }
    }
}

#[test]
fn select_lists_only_matching_flows_and_the_summary_counts_all() {
    let a = [
        "-r",
        "fixtures/tls/multi.pcap",
        "-r",
        "fixtures/tls/sslv3.pcap",
        "-r",
        "fixtures/tls/tls12_ipv6.pcap",
        "-r",
        "fixtures/starttls/smtp-cleartext-auth.pcap",
    ];
    let all = json_run(&[a.as_slice(), &["--json"]].concat());
    let all_flows = all["flows"].as_array().unwrap();
    let ids = |doc: &Value| -> Vec<u64> {
        doc["flows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_u64().unwrap())
            .collect()
    };
    let pick = |words: &str| json_run(&[a.as_slice(), &["--json", "--select", words]].concat());
    let high = pick("high");
    let want: Vec<u64> = all_flows
        .iter()
        .filter(|f| {
            f["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["severity"] == "high" || x["severity"] == "critical")
        })
        .map(|f| f["id"].as_u64().unwrap())
        .collect();
    assert!(!want.is_empty() && want.len() < all_flows.len());
    assert_eq!(ids(&high), want);
    assert_eq!(high["summary"]["flows"], {
        let mut f = all["summary"]["flows"].clone();
        f["selected"] = want.len().into();
        f
    });
    assert_eq!(
        high["summary"]["by_encryption"],
        all["summary"]["by_encryption"]
    );
    assert_eq!(ids(&pick("server=[::1]:8443")), [5]);
    assert_eq!(ids(&pick("encryption=plaintext,SSLV3")), Vec::<u64>::new());
    assert_eq!(ids(&pick("encryption=plaintext,CLEARTEXT_AUTH")), [6]);
    assert_eq!(ids(&pick("id=2-4,encryption=tls")), [2, 3, 4]);
    // --fail-on still sees the flows --select leaves out.
    let out = run(&[
        a.as_slice(),
        &[
            "--select",
            "encryption=tls,id=1",
            "--fail-on",
            "CLEARTEXT_AUTH",
        ],
    ]
    .concat());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("selected: 1 of the listed flows match --select"),
        "{text}"
    );
    // With --servers, the servers of the selected flows.
    let s = json_run(
        &[
            a.as_slice(),
            &["--json", "--servers", "--select", "app=smtp"],
        ]
        .concat(),
    );
    let servers = s["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0]["server"]["port"], 25);
    // A word that means nothing is a usage error.
    assert_eq!(
        run(&[a.as_slice(), &["--select", "encryption=bogus"]].concat())
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn sort_orders_flows_and_servers() {
    let a = [
        "-r",
        "fixtures/tls/multi.pcap",
        "-r",
        "fixtures/tls/sslv3.pcap",
        "-r",
        "fixtures/tls/tls12_ipv6.pcap",
        "-r",
        "fixtures/starttls/smtp-cleartext-auth.pcap",
    ];
    let sorted = |key: &str| -> Vec<Value> {
        json_run(&[a.as_slice(), &["--json", "--sort", key]].concat())["flows"]
            .as_array()
            .unwrap()
            .clone()
    };
    let rank = |f: &Value| {
        f["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| SEVERITIES.iter().position(|s| x["severity"] == *s))
            .max()
            .map_or(-1, |i| i as i64)
    };
    let by_sev = sorted("severity");
    assert_eq!(by_sev.len(), 6);
    assert!(
        by_sev.windows(2).all(|w| rank(&w[0]) >= rank(&w[1])),
        "{by_sev:?}"
    );
    let by_start = sorted("start");
    assert!(
        by_start
            .windows(2)
            .all(|w| w[0]["start"].as_str() <= w[1]["start"].as_str())
    );
    let by_server = sorted("server");
    let key = |f: &Value| {
        (
            f["server"]["ip"]
                .as_str()
                .unwrap()
                .parse::<std::net::IpAddr>()
                .unwrap(),
            f["server"]["port"].as_u64().unwrap(),
        )
    };
    assert!(by_server.windows(2).all(|w| key(&w[0]) <= key(&w[1])));
    let text = table(&[a.as_slice(), &["--sort", "severity"]].concat(), None);
    let first = text.lines().nth(1).unwrap();
    assert!(
        first.contains("SSLv3") || first.contains("CLEARTEXT_AUTH"),
        "{text}"
    );
}

#[test]
fn the_readme_shows_the_demo_capture_as_it_is() {
    let readme = std::fs::read_to_string(crate::kit::root().join("README.md")).unwrap();
    let block = readme
        .split("<!-- demo-table:")
        .nth(1)
        .and_then(|s| s.split("```\n").nth(1))
        .unwrap_or_else(|| panic!("no demo table in the README"));
    let text = table(&["-r", "fixtures/demo.pcap"], None);
    let got = text.split("\n\n").next().unwrap_or("");
    assert_eq!(
        block.trim_end(),
        got.trim_end(),
        "the README's demo table is not the output"
    );
    // Within the first screen, beside the two commands.
    let at = readme.find("<!-- demo-table:").unwrap();
    assert!(readme[..at].lines().count() < 30);
    assert!(readme[..at].contains("cargo run --release -- -r fixtures/demo.pcap"));
    assert!(got.lines().count() >= 5);
}
