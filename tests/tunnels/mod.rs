//! Tunnels and IP fragments: the shared tunnel captures against flows derived with
//! tshark, and recorded fixtures wrapped in every tunnel type and cut into
//! fragments, which must give the same flow records as the bare capture apart
//! from `tunnel`.

use crate::kit::net::{endpoints, ether, ether_vlan, ethertype, ipv4, ipv6, udp};
use crate::kit::pcap::{raw_capture, read_ip_packets};
use crate::kit::report::{codes, endpoint, flows, json_of, norm_ip, notes, without_packet_numbers};
use crate::kit::tls::{sslv2_capture, sslv2_server_hello};
use crate::kit::{Rng, TsvRow, fixture, tsv_rows};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Shared captures from Zeek's test suite.

/// (a, b, tunnel kinds, outer address pairs) as `derive_tunnel_flows.py` writes them.
type FlowId = (String, String, String, String);

fn flow_ids(doc: &Value) -> BTreeSet<FlowId> {
    let mut set = BTreeSet::new();
    for f in doc["flows"].as_array().into_iter().flatten() {
        if f["transport"].as_str().is_some_and(|t| t != "tcp") {
            continue;
        }
        let ep = |e: &Value| format!("{}:{}", e["ip"].as_str().unwrap_or(""), e["port"]);
        let mut ab = [ep(&f["client"]), ep(&f["server"])];
        ab.sort();
        let hops = f["tunnel"].as_array().cloned().unwrap_or_default();
        let kinds: Vec<String> = hops
            .iter()
            .map(|h| h["type"].as_str().unwrap_or("").to_string())
            .collect();
        let outer: Vec<String> = hops
            .iter()
            .map(|h| {
                let mut o = [
                    h["outer_src"].as_str().unwrap_or("").to_string(),
                    h["outer_dst"].as_str().unwrap_or("").to_string(),
                ];
                o.sort();
                o.join("-")
            })
            .collect();
        let join = |v: Vec<String>, sep: &str| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(sep)
            }
        };
        let [a, b] = ab;
        set.insert((a, b, join(kinds, ","), join(outer, ";")));
    }
    set
}

#[test]
fn shared_tunnel_captures_match_tshark() {
    let Some(dir) = crate::kit::shared_or_skip("captures/tunnels") else {
        return;
    };
    let mut want: BTreeMap<String, BTreeSet<FlowId>> = Default::default();
    for r in tsv_rows(&fixture("tunnels/EXPECTED-shared-tunnels.tsv")) {
        want.entry(r["file"].clone()).or_default().insert((
            r["a"].clone(),
            r["b"].clone(),
            r["tunnel"].clone(),
            r["outer"].clone(),
        ));
    }
    let mut failures = Vec::new();
    let mut files = 0;
    for path in crate::kit::capture_files(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        files += 1;
        let got = flow_ids(&json_of(&path));
        let exp = want.remove(&name).unwrap_or_default();
        if got != exp {
            failures.push(format!("{name}:\n  want {exp:?}\n  got  {got:?}"));
        }
    }
    assert!(files >= 50, "only {files} captures");
    assert!(want.is_empty(), "expected captures missing: {want:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Building outer headers.

const O1: [u8; 4] = [192, 0, 2, 1];
const O2: [u8; 4] = [198, 51, 100, 2];
const O1_6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const O2_6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Outer IPv4 between the two tunnel endpoints, oriented by direction.
fn outer4(proto: u8, fwd: bool, payload: &[u8]) -> Vec<u8> {
    let (s, d) = if fwd { (O1, O2) } else { (O2, O1) };
    ipv4(proto, s, d, 0, 0, payload)
}

fn gre(flags: u16, protocol: u16, extra: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut g = Vec::new();
    g.extend(flags.to_be_bytes());
    g.extend(protocol.to_be_bytes());
    g.extend(extra);
    g.extend(payload);
    g
}

fn ip_proto(ip: &[u8]) -> u8 {
    if ip[0] >> 4 == 6 { 41 } else { 4 }
}

/// Every tunnel type: (name, kinds the record must show).
const WRAPS: &[(&str, &[&str])] = &[
    ("gre", &["gre"]),
    ("gre-udp", &["gre-udp"]),
    ("pptp", &["pptp"]),
    ("mpls-gre", &["gre"]),
    ("erspan1", &["erspan"]),
    ("erspan2", &["erspan"]),
    ("erspan3", &["erspan"]),
    ("vxlan", &["vxlan"]),
    ("vxlan-8472", &["vxlan"]),
    ("geneve", &["geneve"]),
    ("gtpu", &["gtpu"]),
    ("ipip", &["ipip"]),
    ("ipip6", &["ipip"]),
    ("teredo", &["teredo"]),
    ("ayiya", &["ayiya"]),
    ("aruba", &["gre"]),
    ("vxlan-in-gre", &["gre", "vxlan"]),
    ("gtpu-in-geneve-in-ipip", &["ipip", "geneve", "gtpu"]),
];

/// Wraps one IP packet; `fwd` is the direction (lower inner endpoint sending).
fn wrap(kind: &str, ip: &[u8], fwd: bool) -> Vec<u8> {
    let v6 = ip[0] >> 4 == 6;
    match kind {
        "gre" => outer4(
            47,
            fwd,
            &gre(0x2000, u16::from_be_bytes(ethertype(ip)), &[0, 0, 0, 7], ip),
        ),
        "gre-udp" => outer4(
            17,
            fwd,
            &udp(
                40000,
                4754,
                &gre(0, u16::from_be_bytes(ethertype(ip)), &[], ip),
            ),
        ),
        "pptp" => {
            // Enhanced GRE: payload length, the peer's call ID, a sequence number; PPP.
            let mut ppp = vec![0xff, 0x03, 0x00, if v6 { 0x57 } else { 0x21 }];
            ppp.extend(ip);
            let call: u16 = if fwd { 0x1111 } else { 0x2222 };
            let mut extra = Vec::new();
            extra.extend((ppp.len() as u16).to_be_bytes());
            extra.extend(call.to_be_bytes());
            extra.extend(9u32.to_be_bytes());
            outer4(47, fwd, &gre(0x3001, 0x880b, &extra, &ppp))
        }
        "mpls-gre" => {
            let mut m = vec![0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
            m.extend(ip);
            outer4(47, fwd, &gre(0, 0x8847, &[], &m))
        }
        "erspan1" => outer4(47, fwd, &gre(0, 0x88be, &[], &ether(ip))),
        "erspan2" => {
            let mut e = vec![0x10, 0x64, 0x00, 0x2a, 0, 0, 0, 0];
            e.extend(ether(ip));
            outer4(47, fwd, &gre(0x1000, 0x88be, &[0, 0, 0, 1], &e))
        }
        "erspan3" => {
            // Version 2, session 42, O bit with an 8-byte platform subheader; 802.1Q inside.
            let mut e = vec![0x20, 0x64, 0x00, 0x2a, 0, 0, 0, 1, 0, 0, 0x00, 0x01];
            e.extend([0x08, 0, 0, 0, 0, 0, 0, 0]);
            e.extend(ether_vlan(ip));
            outer4(47, fwd, &gre(0x1000, 0x22eb, &[0, 0, 0, 1], &e))
        }
        "vxlan" | "vxlan-8472" => {
            let port = if kind == "vxlan" { 4789 } else { 8472 };
            let mut v = vec![0x08, 0, 0, 0, 0, 0, 42, 0];
            v.extend(ether(ip));
            outer4(17, fwd, &udp(if fwd { 50001 } else { 50002 }, port, &v))
        }
        "geneve" => {
            // One 8-byte option, Ethernet payload.
            let mut g = vec![0x02, 0, 0x65, 0x58, 0, 0, 42, 0];
            g.extend([0x01, 0x02, 0x03, 0x01, 0, 0, 0, 0]);
            g.extend(ether(ip));
            outer4(17, fwd, &udp(50003, 6081, &g))
        }
        "gtpu" => {
            // Sequence number and a PDU session container extension; TEID per direction.
            let teid: u32 = if fwd { 0x100 } else { 0x200 };
            let mut g = vec![0x34, 0xff];
            g.extend(((8 + ip.len()) as u16).to_be_bytes());
            g.extend(teid.to_be_bytes());
            g.extend([0, 1, 0, 0x85, 1, 0x10, 0x01, 0]);
            g.extend(ip);
            outer4(17, fwd, &udp(2152, 2152, &g))
        }
        "ipip" => outer4(ip_proto(ip), fwd, ip),
        "ipip6" => {
            let (s, d) = if fwd { (O1_6, O2_6) } else { (O2_6, O1_6) };
            ipv6(ip_proto(ip), s, d, ip)
        }
        "teredo" => {
            // The relay's side carries an origin indication.
            let mut t = Vec::new();
            if !fwd {
                t.extend([0, 0, 0xce, 0x0e, 0x3f, 0xff, 0xfd, 0xfe]);
            }
            t.extend(ip);
            let (sp, dp) = if fwd { (40000, 3544) } else { (3544, 40000) };
            outer4(17, fwd, &udp(sp, dp, &t))
        }
        "ayiya" => {
            // Identity 2^4 = 16 bytes, signature 5 words (SHA-1), forward.
            let mut a = vec![0x41, 0x52, 0x11, ip_proto(ip), 0, 0, 0, 1];
            a.extend([0xaa; 16]);
            a.extend([0xbb; 20]);
            a.extend(ip);
            outer4(17, fwd, &udp(5072, 5072, &a))
        }
        "aruba" => {
            // 802.11 QoS data, LLC/SNAP.
            let mut w = vec![0x88, 0x01, 0, 0];
            w.extend([0x02; 18]);
            w.extend([0, 0, 0, 0]);
            w.extend([0xaa, 0xaa, 0x03, 0, 0, 0]);
            w.extend(ethertype(ip));
            w.extend(ip);
            outer4(47, fwd, &gre(0, 0x8200, &[], &w))
        }
        "vxlan-in-gre" => {
            let inner = wrap("vxlan", ip, fwd);
            outer4(47, fwd, &gre(0x2000, 0x0800, &[0, 0, 0, 9], &inner))
        }
        "gtpu-in-geneve-in-ipip" => {
            let g = wrap("gtpu", ip, fwd);
            let mut geneve = vec![0, 0, 0x08, 0x00, 0, 0, 7, 0];
            geneve.extend(g);
            let mid = outer4(17, fwd, &udp(50004, 6081, &geneve));
            outer4(4, fwd, &mid)
        }
        other => panic!("unknown wrap {other}"),
    }
}

fn is_fwd(ip: &[u8]) -> bool {
    let (a, b) = endpoints(ip);
    a <= b
}

// ---------------------------------------------------------------------------
// Fragmenting.

#[derive(Clone, Copy, Debug)]
enum Order {
    Straight,
    Reversed,
    /// Every fragment twice, and one overlapping piece with the same bytes.
    Duplicated,
    Shuffled(u64),
}

/// Cuts an IP packet into fragments carrying `size` bytes (a multiple of 8) each.
fn fragment(ip: &[u8], size: usize, id: u32, order: Order) -> Vec<Vec<u8>> {
    let v6 = ip[0] >> 4 == 6;
    let (hdr, payload, proto) = if v6 {
        (&ip[..40], &ip[40..], ip[6])
    } else {
        let ihl = usize::from(ip[0] & 0xf) * 4;
        (&ip[..ihl], &ip[ihl..], ip[9])
    };
    let piece = |off: usize, end: usize| -> Vec<u8> {
        let more = end < payload.len();
        let data = &payload[off..end];
        if v6 {
            let mut fh = vec![proto, 0];
            fh.extend(((off as u16) | u16::from(more)).to_be_bytes());
            fh.extend(id.to_be_bytes());
            fh.extend(data);
            let mut h = hdr.to_vec();
            h[4..6].copy_from_slice(&(fh.len() as u16).to_be_bytes());
            h[6] = 44;
            h.extend(fh);
            h
        } else {
            let mut h = hdr.to_vec();
            h[2..4].copy_from_slice(&((hdr.len() + data.len()) as u16).to_be_bytes());
            h[4..6].copy_from_slice(&(id as u16).to_be_bytes());
            let word = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&word.to_be_bytes());
            h.extend(data);
            h
        }
    };
    let mut frags = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + size).min(payload.len());
        frags.push(piece(off, end));
        off = end;
    }
    match order {
        Order::Straight => {}
        Order::Reversed => frags.reverse(),
        // A packet that fits in one piece is not fragmented: sending it twice
        // would be a TCP retransmission, not a duplicate fragment.
        Order::Duplicated if frags.len() > 1 => {
            let mut d = Vec::new();
            for f in &frags {
                d.push(f.clone());
                d.push(f.clone());
            }
            // An overlapping piece spanning two fragments, same bytes: first data wins,
            // and it is the same data.
            if payload.len() > 2 * size + 8 {
                d.insert(1, piece(size, 2 * size + 8));
            }
            frags = d;
        }
        Order::Duplicated => {}
        Order::Shuffled(seed) => {
            let mut r = Rng(seed | 1);
            for i in (1..frags.len()).rev() {
                let j = r.below(i as u64 + 1) as usize;
                frags.swap(i, j);
            }
        }
    }
    frags
}

// ---------------------------------------------------------------------------
// Comparing records.

fn flows_without_tunnel(doc: &Value) -> Vec<Value> {
    flows(doc)
        .into_iter()
        .map(|mut f| {
            if let Some(o) = f.as_object_mut() {
                o.remove("tunnel");
            }
            // Fragmenting a capture renumbers its packets.
            without_packet_numbers(&mut f);
            f
        })
        .collect()
}

fn bare_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = [
        "tls/tls12_ipv6.pcap",
        "tls/sslv3.pcap",
        "tls/multi.pcap",
        "tls/plaintext_443.pcap",
        "starttls/smtp-starttls-s_client.pcap",
        "starttls/smtp-2525-starttls-injection.pcap",
    ]
    .iter()
    .map(|p| fixture(p))
    .collect();
    // SSLv2: no peer speaks it, so it is byte-built (see the SSLv2 tests).
    let p = sslv2_capture(0x0002, &sslv2_server_hello());
    v.push(p.write("tunnel-sslv2.pcap"));
    v
}

/// Runs the wrapped capture and checks its records against the bare ones.
fn assert_same(
    bare: &Path,
    want: &[Value],
    frames: &[((u32, u32), Vec<u8>)],
    label: &str,
) -> Value {
    let name = format!(
        "{}-{}.pcap",
        bare.file_stem().unwrap().to_string_lossy(),
        label.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    let path = raw_capture(frames).write(&name);
    let doc = json_of(&path);
    let got = flows_without_tunnel(&doc);
    assert_eq!(
        got,
        want,
        "{}: {label}: records differ from the bare capture's",
        bare.display()
    );
    let _ = std::fs::remove_file(&path);
    doc
}

#[test]
fn fixtures_wrapped_in_every_tunnel_give_the_same_records() {
    for bare in bare_fixtures() {
        let want = flows_without_tunnel(&json_of(&bare));
        assert!(!want.is_empty(), "{}: no flows", bare.display());
        let packets = read_ip_packets(&bare);
        let v6 = packets.first().is_some_and(|p| p.ip[0] >> 4 == 6);
        for (kind, kinds) in WRAPS {
            if *kind == "teredo" && !v6 {
                continue;
            }
            let frames: Vec<_> = packets
                .iter()
                .map(|p| (p.ts, wrap(kind, &p.ip, is_fwd(&p.ip))))
                .collect();
            let doc = assert_same(&bare, &want, &frames, kind);
            for f in doc["flows"].as_array().unwrap() {
                let hops = f["tunnel"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{kind}: no tunnel"));
                let got: Vec<&str> = hops.iter().map(|h| h["type"].as_str().unwrap()).collect();
                assert_eq!(&got, kinds, "{}: {kind}", bare.display());
                // The outermost hop's source is the client's side.
                let client: IpAddr = f["client"]["ip"].as_str().unwrap().parse().unwrap();
                let server: IpAddr = f["server"]["ip"].as_str().unwrap().parse().unwrap();
                let cport = f["client"]["port"].as_u64().unwrap() as u16;
                let sport = f["server"]["port"].as_u64().unwrap() as u16;
                let client_fwd = (client, cport) <= (server, sport);
                let outer_src: IpAddr = hops[0]["outer_src"].as_str().unwrap().parse().unwrap();
                let (o1, o2): (IpAddr, IpAddr) = if *kind == "ipip6" {
                    (O1_6.into(), O2_6.into())
                } else {
                    (O1.into(), O2.into())
                };
                assert_eq!(outer_src, if client_fwd { o1 } else { o2 }, "{kind}");
            }
        }
    }
}

#[test]
fn fixtures_in_fragments_give_the_same_records() {
    for bare in bare_fixtures() {
        let want = flows_without_tunnel(&json_of(&bare));
        let packets = read_ip_packets(&bare);
        for (i, order) in [
            Order::Straight,
            Order::Reversed,
            Order::Duplicated,
            Order::Shuffled(7),
        ]
        .into_iter()
        .enumerate()
        {
            for size in [24, 64] {
                let mut frames = Vec::new();
                for (n, p) in packets.iter().enumerate() {
                    for f in fragment(&p.ip, size, n as u32 + 1, order) {
                        frames.push((p.ts, f));
                    }
                }
                assert_same(&bare, &want, &frames, &format!("frag-{i}-{size}"));
            }
        }
        // Fragments of 8 bytes: the first cannot hold the TCP header, and that is noted.
        let mut tiny = Vec::new();
        for (n, p) in packets.iter().enumerate() {
            for f in fragment(&p.ip, 8, n as u32 + 1, Order::Straight) {
                tiny.push((p.ts, f));
            }
        }
        let path = raw_capture(&tiny).write("tiny.pcap");
        for f in &flows(&json_of(&path)) {
            let notes = notes(f);
            assert!(
                notes.contains(&"tiny_ip_fragment"),
                "{}: {notes:?}",
                bare.display()
            );
        }
        // Tunnels inside fragments (the outer packet cut), and fragments inside a
        // tunnel (the inner packet cut, as GTP-U paths often do).
        let mut outer_cut = Vec::new();
        let mut inner_cut = Vec::new();
        for (n, p) in packets.iter().enumerate() {
            let fwd = is_fwd(&p.ip);
            for f in fragment(
                &wrap("vxlan", &p.ip, fwd),
                32,
                n as u32 + 1,
                Order::Reversed,
            ) {
                outer_cut.push((p.ts, f));
            }
            for f in fragment(&p.ip, 32, n as u32 + 1, Order::Shuffled(n as u64 + 3)) {
                inner_cut.push((p.ts, wrap("gtpu", &f, fwd)));
            }
        }
        assert_same(&bare, &want, &outer_cut, "vxlan-fragmented");
        assert_same(&bare, &want, &inner_cut, "fragments-in-gtpu");
    }
}

/// Random fragment sizes, orders, duplicates and tunnels, with a fixed seed: the
/// records never change.
#[test]
fn random_fragmenting_and_reordering_keeps_the_records() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let fixtures = bare_fixtures();
    for round in 0..12 {
        let bare = &fixtures[rng.below(fixtures.len() as u64) as usize];
        let want = flows_without_tunnel(&json_of(bare));
        let packets = read_ip_packets(bare);
        let v6 = packets.first().is_some_and(|p| p.ip[0] >> 4 == 6);
        let mut frames = Vec::new();
        let mut pending: Vec<((u32, u32), Vec<u8>)> = Vec::new();
        for (n, p) in packets.iter().enumerate() {
            // From 24 bytes up: smaller first fragments are noted as tiny.
            let size = 8 * (3 + rng.below(22) as usize);
            let order = match rng.below(4) {
                0 => Order::Straight,
                1 => Order::Reversed,
                2 => Order::Duplicated,
                _ => Order::Shuffled(rng.below(u64::MAX)),
            };
            let mut pieces = fragment(&p.ip, size, n as u32 + 1, order);
            // Fragments of this packet may arrive after the next packet's first
            // fragment has been held, never after its completion.
            if let Some(last) = pieces.pop() {
                frames.append(&mut pending);
                for f in pieces {
                    frames.push((p.ts, f));
                }
                pending.push((p.ts, last));
            }
        }
        frames.append(&mut pending);
        // One tunnel (or none) for the round, so the records stay one per flow.
        let kind = match rng.below(3) {
            0 => None,
            _ => {
                let (k, _) = WRAPS[rng.below(WRAPS.len() as u64) as usize];
                (k != "teredo" || v6).then_some(k)
            }
        };
        let frames: Vec<_> = frames
            .into_iter()
            .map(|(ts, f)| match kind {
                Some(k) => {
                    let fwd = is_fwd(&f);
                    (ts, wrap(k, &f, fwd))
                }
                None => (ts, f),
            })
            .collect();
        assert_same(bare, &want, &frames, &format!("random-{round}-{kind:?}"));
    }
}

/// A fragment that rewrites bytes already received (the evasion RFC 1858 and
/// Ptacek-Newsham describe): the first data is kept, so the records stay those of
/// the bare capture, and the flow says it happened.
#[test]
fn conflicting_fragment_overlap_keeps_first_data_and_is_noted() {
    let bare = fixture("tls/sslv3.pcap");
    let mut want = flows_without_tunnel(&json_of(&bare));
    let packets = read_ip_packets(&bare);
    let mut frames = Vec::new();
    for (n, p) in packets.iter().enumerate() {
        let mut pieces = fragment(&p.ip, 32, n as u32 + 1, Order::Straight);
        if pieces.len() > 2 {
            // A copy of the second fragment with its data inverted, after the first.
            let mut evil = pieces[1].clone();
            let ihl = usize::from(evil[0] & 0xf) * 4;
            for b in &mut evil[ihl..] {
                *b ^= 0xff;
            }
            pieces.insert(2, evil);
        }
        for f in pieces {
            frames.push((p.ts, f));
        }
    }
    for f in &mut want {
        f["notes"]
            .as_array_mut()
            .unwrap()
            .push("ip_fragment_overlap".into());
    }
    assert_same(&bare, &want, &frames, "evil-overlap");
}

// ---------------------------------------------------------------------------
// Directions through different tunnels (fixtures/tunnels/split, make_tunnels.sh).

/// A flow's outermost hop as `split_tunnel_expect.py` writes it: `id@outer_src>outer_dst`.
fn client_hop(f: &Value) -> String {
    let Some(h) = f["tunnel"].as_array().and_then(|t| t.first()) else {
        return "-".into();
    };
    let id = h["id"].as_u64().map_or("-".to_string(), |i| i.to_string());
    let (s, d) = (
        h["outer_src"].as_str().unwrap(),
        h["outer_dst"].as_str().unwrap(),
    );
    format!("{id}@{s}>{d}")
}

/// Open vSwitch gives each direction its own VNI (or GRE key, ERSPAN session), and 6to4
/// replies come from another relay: each connection must still be one flow with both
/// directions, the bare capture's verdict, the client's hop as its tunnel and the note
/// saying the directions differed. Two tenants using the same inner 4-tuple at the same
/// time stay two flows, each with its own replies. A QUIC client on source port 4789 is
/// QUIC, not VXLAN.
#[test]
fn directions_through_different_tunnels_make_one_flow() {
    let mut by_file: BTreeMap<String, Vec<TsvRow>> = BTreeMap::new();
    for r in tsv_rows(&fixture("tunnels/EXPECTED-split-tunnels.tsv")) {
        by_file.entry(r["file"].clone()).or_default().push(r);
    }
    assert!(by_file.len() >= 8, "{:?}", by_file.keys());
    for (file, rows) in by_file {
        let got = flows(&json_of(&fixture(&file)));
        assert_eq!(got.len(), rows.len(), "{file}: {got:#?}");
        for r in rows {
            let client = (
                norm_ip(&r["client_ip"]),
                r["client_port"].parse::<u16>().unwrap(),
            );
            let server = (
                norm_ip(&r["server_ip"]),
                r["server_port"].parse::<u16>().unwrap(),
            );
            let f = got
                .iter()
                .find(|f| {
                    endpoint(&f["client"]) == client
                        && endpoint(&f["server"]) == server
                        && client_hop(f) == r["client_hop"]
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{file}:{}: no flow {client:?} via {}",
                        r.line, r["client_hop"]
                    )
                });
            let at = format!("{file}:{}", r.line);
            assert_eq!(f["transport"], r["transport"].as_str(), "{at}");
            assert_eq!(f["encryption"], r["encryption"].as_str(), "{at}");
            if r["version"] != "-" {
                assert_eq!(f["tls"]["version"], r["version"].as_str(), "{at}");
            }
            for want in r["expected_flags"].split(',').filter(|c| *c != "-") {
                assert!(
                    codes(f).contains(&want),
                    "{at}: no {want} in {:?}",
                    codes(f)
                );
            }
            assert_eq!(
                f["packets"]["client"],
                r["packets_client"].parse::<u64>().unwrap(),
                "{at}"
            );
            assert_eq!(
                f["packets"]["server"],
                r["packets_server"].parse::<u64>().unwrap(),
                "{at}"
            );
            let kind = f["tunnel"][0]["type"].as_str().unwrap_or("-");
            assert_eq!(kind, r["tunnel"], "{at}");
            let n = notes(f);
            assert!(!n.contains(&"one_sided"), "{at}: {n:?}");
            assert_eq!(
                n.contains(&"tunnel_asymmetric"),
                r["tunnel"] != "-",
                "{at}: {n:?}"
            );
        }
    }
}

/// Both directions through one VNI stay one flow without the note, and a reply that
/// acknowledges nothing the client sent does not join it: it is another connection.
#[test]
fn a_reply_through_another_tunnel_joins_only_what_it_acknowledges() {
    let bare = fixture("tls/tls13.pcap");
    let packets = read_ip_packets(&bare);
    let vxlan = |vni: u32, ip: &[u8], fwd: bool| {
        let mut v = vec![0x08, 0, 0, 0];
        v.extend((vni << 8).to_be_bytes());
        v.extend(ether(ip));
        outer4(17, fwd, &udp(if fwd { 50001 } else { 50002 }, 4789, &v))
    };
    let client = endpoints(&packets[0].ip).0;
    // One VNI both ways: the note is not made.
    let same: Vec<_> = packets
        .iter()
        .map(|p| (p.ts, vxlan(100, &p.ip, endpoints(&p.ip).0 == client)))
        .collect();
    let doc = json_of(&raw_capture(&same).write("split-same-vni.pcap"));
    let f = &flows(&doc)[0];
    assert_eq!(flows(&doc).len(), 1);
    assert!(!notes(f).contains(&"tunnel_asymmetric"), "{:?}", notes(f));
    // The server's packets through VNI 101, their acknowledgement numbers moved far from
    // what the client sent: another tenant's connection, never joined.
    let moved: Vec<_> = packets
        .iter()
        .map(|p| {
            let fwd = endpoints(&p.ip).0 == client;
            let mut ip = p.ip.clone();
            if !fwd {
                let ack = u32::from_be_bytes(ip[28..32].try_into().unwrap());
                ip[28..32].copy_from_slice(&ack.wrapping_add(1 << 30).to_be_bytes());
            }
            (p.ts, vxlan(if fwd { 100 } else { 101 }, &ip, fwd))
        })
        .collect();
    let doc = json_of(&raw_capture(&moved).write("split-unrelated-reply.pcap"));
    let got = flows(&doc);
    assert_eq!(got.len(), 2, "{got:#?}");
    for f in &got {
        assert!(notes(f).contains(&"one_sided"), "{:?}", notes(f));
        assert!(!notes(f).contains(&"tunnel_asymmetric"), "{:?}", notes(f));
    }
}
