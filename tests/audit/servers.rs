//! `--servers`: consistency with the flow records of the same run, the cap, and
//! golden output for a fixture set with several servers, in all three formats.

use crate::kit::golden::{assert_golden, ndjson_without_memory, pretty_without_memory};
use crate::kit::net::{ACK, Ep, PSH};
use crate::kit::pcap::{Conn, Pcap};
use crate::kit::report::{codes, endpoint, ndjson_lines, parse_json, parse_ndjson, run, run_ok};
use crate::kit::tls::{CCS, client_hello, server_hello};
use crate::kit::{arg, fixture, tsv_rows};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// One whole connection: handshake, one exchange, FIN both ways.
fn connection(p: &mut Pcap, c: Ep, s: Ep, req: &[u8], resp: &[u8]) {
    Conn::new(c, s, 1000, 5000)
        .open(p)
        .client(p, ACK | PSH, req)
        .server(p, ACK | PSH, resp)
        .close(p);
}

/// A capture with many servers and a mix of TLS versions, ciphers and plaintext:
/// `n` connections from three client addresses to 60 servers on three ports.
fn many_servers(n: u32) -> std::path::PathBuf {
    let mut p = Pcap::new();
    for i in 0..n {
        // Each server sees five connections (i, i + 180, ...) from three clients,
        // each of a different kind.
        let client = (100 + (i / 360 % 3) as u8, 20000 + i as u16);
        let server = (1 + (i / 3 % 60) as u8, [443, 25, 8443][(i % 3) as usize]);
        match (i + i / 180) % 5 {
            0 => connection(
                &mut p,
                client,
                server,
                b"GET / HTTP/1.0\r\n\r\n",
                b"HTTP/1.0 200 OK\r\n\r\n",
            ),
            1 => {
                let mut resp = server_hello(0x0301, 0x002f);
                resp.extend(CCS);
                connection(&mut p, client, server, &client_hello(), &resp);
            }
            2 => {
                let mut resp = server_hello(0x0303, 0x0005);
                resp.extend(CCS);
                connection(&mut p, client, server, &client_hello(), &resp);
            }
            _ => {
                let mut resp = server_hello(0x0303, 0xc02f);
                resp.extend(CCS);
                connection(&mut p, client, server, &client_hello(), &resp);
            }
        }
    }
    // Named by size: tests running at once must not write one file.
    p.write(&format!("many-servers-{n}.pcap"))
}

fn ndjson(args: &[&str]) -> (Vec<Value>, Vec<Value>, Value) {
    split_servers(parse_ndjson(&run_ok(args)))
}

/// Flow lines, server lines and the summary of `--servers --ndjson` output.
fn split_servers(lines: Vec<Value>) -> (Vec<Value>, Vec<Value>, Value) {
    // Flow lines, then server lines, then the summary: never interleaved.
    let kinds: Vec<&str> = lines
        .iter()
        .map(|l| l["type"].as_str().unwrap_or("?"))
        .collect();
    let first_server = kinds
        .iter()
        .position(|k| *k == "server")
        .unwrap_or(kinds.len() - 1);
    assert!(
        kinds[..first_server].iter().all(|k| *k == "flow"),
        "{kinds:?}"
    );
    assert!(
        kinds[first_server..kinds.len() - 1]
            .iter()
            .all(|k| *k == "server"),
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"summary"));
    let flows = lines
        .iter()
        .filter(|l| l["type"] == "flow")
        .cloned()
        .collect();
    let servers = lines
        .iter()
        .filter(|l| l["type"] == "server")
        .cloned()
        .collect();
    (flows, servers, lines.last().cloned().unwrap_or_default())
}

/// The server records a reader would compute from the flow records with jq.
fn grouped(flows: &[Value]) -> BTreeMap<(String, u16), Value> {
    let mut acc: BTreeMap<(String, u16), Value> = BTreeMap::new();
    let mut clients: BTreeMap<(String, u16), BTreeSet<String>> = BTreeMap::new();
    for f in flows {
        let key = endpoint(&f["server"]);
        clients
            .entry(key.clone())
            .or_default()
            .insert(f["client"]["ip"].as_str().unwrap().into());
        let s = acc.entry(key).or_insert_with(|| {
            json!({"flows": 0, "by_encryption": {}, "versions": {}, "cipher_suites": {}, "findings": {}, "app_protocols": []})
        });
        let inc = |v: &mut Value| *v = json!(v.as_u64().unwrap_or(0) + 1);
        inc(&mut s["flows"]);
        let enc = f["encryption"].as_str().unwrap();
        inc(&mut s["by_encryption"][enc]);
        if ["tls", "starttls", "starttls-failed"].contains(&enc) {
            inc(&mut s["versions"][f["tls"]["version"].as_str().unwrap_or("unknown")]);
        }
        if let Some(cs) = f["tls"]["server_hello"]["cipher_suite"].as_str() {
            inc(&mut s["cipher_suites"][cs]);
        }
        let codes: BTreeSet<&str> = codes(f).into_iter().collect();
        for c in codes {
            inc(&mut s["findings"][c]);
        }
        if let Some(p) = f["app_protocol"].as_str() {
            let list = s["app_protocols"].as_array_mut().unwrap();
            if !list.contains(&json!(p)) {
                list.push(json!(p));
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    for (k, set) in clients {
        acc.get_mut(&k).unwrap()["clients"] = json!(set.len());
    }
    acc
}

fn assert_consistent(flows: &[Value], servers: &[Value]) {
    let want = grouped(flows);
    assert_eq!(servers.len(), want.len());
    for s in servers {
        let key = endpoint(&s["server"]);
        let w = &want[&key];
        for field in [
            "flows",
            "clients",
            "by_encryption",
            "versions",
            "cipher_suites",
            "findings",
            "app_protocols",
        ] {
            assert_eq!(s[field], w[field], "{key:?} {field}");
        }
    }
}

#[test]
fn server_records_agree_with_the_flow_records_of_the_same_run() {
    let f = many_servers(900);
    let f = arg(&f);
    let (flows, servers, summary) = ndjson(&["-r", f, "--ndjson", "--servers"]);
    assert_eq!(flows.len(), 900);
    assert_eq!(servers.len(), 180, "60 addresses x 3 ports");
    assert_consistent(&flows, &servers);
    assert_eq!(summary["servers"]["listed"], 180);
    assert_eq!(summary["servers"]["flows_beyond_cap"], 0);
    let total: u64 = servers.iter().map(|s| s["flows"].as_u64().unwrap()).sum();
    assert_eq!(json!(total), summary["flows"]["listed"]);
    // Worst first, then most flows.
    let rank = |s: &Value| {
        let sev = ["info", "low", "medium", "high", "critical"];
        let w = s["worst_severity"]
            .as_str()
            .and_then(|w| sev.iter().position(|x| *x == w));
        (w.map_or(0, |i| i + 1), s["flows"].as_u64().unwrap())
    };
    assert!(servers.windows(2).all(|w| rank(&w[0]) >= rank(&w[1])));
    // The JSON document carries the same servers beside the same flows.
    let doc = parse_json(&run(&["-r", f, "--json", "--servers"]));
    assert_eq!(doc["servers"].as_array().unwrap(), &servers);
    assert_eq!(doc["flows"].as_array().unwrap().len(), 900);
    // Records from several workers, in whatever order they end: the same inventory.
    for threads in ["1", "3"] {
        let (_, got, _) = ndjson(&["-r", f, "--ndjson", "--servers", "--threads", threads]);
        assert_eq!(got, servers, "--threads {threads}");
    }
}

#[test]
fn server_cap_is_counted() {
    let f = many_servers(300);
    let (flows, servers, summary) =
        ndjson(&["-r", arg(&f), "--ndjson", "--servers", "--max-servers", "7"]);
    assert_eq!(servers.len(), 7);
    let kept: u64 = servers.iter().map(|s| s["flows"].as_u64().unwrap()).sum();
    let beyond = summary["servers"]["flows_beyond_cap"].as_u64().unwrap();
    assert!(beyond > 0);
    assert_eq!(kept + beyond, flows.len() as u64);
    // The servers kept are still exact.
    let want = grouped(&flows);
    for s in &servers {
        let key = endpoint(&s["server"]);
        assert_eq!(s["flows"], want[&key]["flows"]);
    }
}

/// The fixture set of the golden files: several servers, IPv4 and IPv6, TLS 1.0 to
/// 1.3, STARTTLS used, refused and not used, plaintext on 443.
const GOLDEN_INPUTS: &[&str] = &[
    "fixtures/tls/multi.pcap",
    "fixtures/tls/tls10.pcap",
    "fixtures/tls/tls12_ipv6.pcap",
    "fixtures/tls/plaintext_443.pcap",
    "fixtures/starttls/smtp-cleartext-auth.pcap",
    "fixtures/starttls/smtp-starttls-s_client.pcap",
    "fixtures/starttls/smtp-2526-starttls-refused.pcap",
];

fn golden_run(format: &[&str]) -> String {
    let mut args = vec!["--servers"];
    for f in GOLDEN_INPUTS {
        args.extend(["-r", f]);
    }
    args.extend(format);
    String::from_utf8(run_ok(&args).stdout).unwrap()
}

#[test]
fn golden_server_inventory_in_every_format() {
    let dir = fixture("servers");
    let doc: Value = serde_json::from_str(&golden_run(&["--json"])).unwrap();
    let ndjson = golden_run(&["--ndjson"]);
    for (name, got) in [
        ("inventory.golden.txt", golden_run(&[])),
        ("inventory.golden.json", pretty_without_memory(doc.clone())),
        ("inventory.golden.ndjson", ndjson_without_memory(&ndjson)),
    ] {
        assert_golden(&dir.join(name), &got);
    }
    // The three formats say the same.
    let flows = doc["flows"].as_array().unwrap();
    let servers = doc["servers"].as_array().unwrap();
    assert_consistent(flows, servers);
    let (_, nd_servers, _) = split_servers(ndjson_lines(&ndjson));
    assert_eq!(&nd_servers, servers);
    let table = golden_run(&[]);
    for s in servers {
        let port = s["server"]["port"].as_u64().unwrap();
        let row = table
            .lines()
            .find(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|c| c.ends_with(&format!(":{port}")))
            })
            .unwrap_or_else(|| panic!("no table row for port {port}:\n{table}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[2], s["flows"].to_string(), "{row}");
    }
    // Counts derived by tshark from the captures (fixtures/tools/servers_expect.py).
    let mut rows = 0;
    for r in tsv_rows(&dir.join("EXPECTED-servers.tsv")) {
        let (ip, port) = (&r["server_ip"], r["server_port"].parse::<u64>().unwrap());
        let s = servers
            .iter()
            .find(|s| s["server"]["ip"] == ip.as_str() && s["server"]["port"] == port)
            .unwrap_or_else(|| panic!("tshark saw server {ip}:{port}; tlswatch did not"));
        assert_eq!(s["flows"].to_string(), r["flows"], "{ip}:{port} flows");
        assert_eq!(
            s["clients"].to_string(),
            r["clients"],
            "{ip}:{port} clients"
        );
        let versions: BTreeMap<String, u64> = if r["versions"] == "-" {
            BTreeMap::new()
        } else {
            r["versions"]
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.parse().unwrap())
                })
                .collect()
        };
        assert_eq!(s["versions"], json!(versions), "{ip}:{port} versions");
        rows += 1;
    }
    assert_eq!(rows, servers.len(), "one tshark row per server");
}
