//! Tunnels and IP fragments: the shared tunnel captures against flows derived with
//! tshark, and recorded fixtures wrapped in every tunnel type and cut into
//! fragments, which must give the same flow records as the bare capture apart
//! from `tunnel`.

use super::{ACK, C, Pcap, S, SYN, json_of, root, sslv2_client_hello};
use serde_json::Value;
use std::collections::BTreeSet;
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
    let dir = root().join("../shared/captures/tunnels");
    if !dir.is_dir() {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    }
    let tsv = std::fs::read_to_string(root().join("fixtures/tunnels/EXPECTED-shared-tunnels.tsv"))
        .unwrap();
    let mut want: std::collections::BTreeMap<String, BTreeSet<FlowId>> = Default::default();
    for line in tsv.lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        want.entry(c[0].to_string()).or_default().insert((
            c[1].to_string(),
            c[2].to_string(),
            c[3].to_string(),
            c[4].to_string(),
        ));
    }
    let mut failures = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".pcap") || name.ends_with(".pcapng")) {
            continue;
        }
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
// Reading and writing classic pcap.

struct Frame {
    ts: (u32, u32),
    /// The IP packet (link layer removed, padding cut).
    ip: Vec<u8>,
}

fn le_or_be(b: &[u8], big: bool) -> u32 {
    let a: [u8; 4] = b.try_into().unwrap();
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// The IP packets of a classic pcap (Ethernet, SLL, SLL2 or raw), timestamps in
/// microseconds.
fn read_ip_packets(path: &Path) -> Vec<Frame> {
    let b = std::fs::read(path).unwrap();
    let magic = u32::from_le_bytes(b[..4].try_into().unwrap());
    let (big, nanos) = match magic {
        0xa1b2c3d4 => (false, false),
        0xa1b23c4d => (false, true),
        0xd4c3b2a1 => (true, false),
        0x4d3cb2a1 => (true, true),
        m => panic!("{}: not a classic pcap ({m:08x})", path.display()),
    };
    let linktype = le_or_be(&b[20..24], big);
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= b.len() {
        let sec = le_or_be(&b[at..at + 4], big);
        let sub = le_or_be(&b[at + 4..at + 8], big);
        let incl = le_or_be(&b[at + 8..at + 12], big) as usize;
        let data = &b[at + 16..at + 16 + incl];
        at += 16 + incl;
        let usec = if nanos { sub / 1000 } else { sub };
        let (ethertype, ip) = match linktype {
            1 => (u16::from_be_bytes([data[12], data[13]]), &data[14..]),
            113 => (u16::from_be_bytes([data[14], data[15]]), &data[16..]),
            276 => (u16::from_be_bytes([data[0], data[1]]), &data[20..]),
            101 => (if data[0] >> 4 == 6 { 0x86dd } else { 0x0800 }, data),
            l => panic!("{}: link type {l}", path.display()),
        };
        let len = match ethertype {
            0x0800 => usize::from(u16::from_be_bytes([ip[2], ip[3]])),
            0x86dd => 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]])),
            _ => continue,
        };
        out.push(Frame {
            ts: (sec, usec),
            ip: ip[..len.min(ip.len())].to_vec(),
        });
    }
    out
}

/// Writes raw IP frames (LINKTYPE_RAW) as a classic microsecond pcap.
fn write_raw_pcap(path: &Path, frames: &[((u32, u32), Vec<u8>)]) {
    let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    b.extend([0u8; 8]);
    b.extend(262_144u32.to_le_bytes());
    b.extend(101u32.to_le_bytes());
    for ((sec, usec), f) in frames {
        b.extend(sec.to_le_bytes());
        b.extend(usec.to_le_bytes());
        b.extend((f.len() as u32).to_le_bytes());
        b.extend((f.len() as u32).to_le_bytes());
        b.extend(f);
    }
    std::fs::write(path, b).unwrap();
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tlswatch-tunnels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

// ---------------------------------------------------------------------------
// Building outer headers.

const O1: [u8; 4] = [192, 0, 2, 1];
const O2: [u8; 4] = [198, 51, 100, 2];
const O1_6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const O2_6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend(((20 + payload.len()) as u16).to_be_bytes());
    p.extend(id.to_be_bytes());
    p.extend(frag.to_be_bytes());
    p.extend([64, proto, 0, 0]);
    p.extend(src);
    p.extend(dst);
    p.extend(payload);
    p
}

fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((payload.len() as u16).to_be_bytes());
    p.extend([next, 64]);
    p.extend(src);
    p.extend(dst);
    p.extend(payload);
    p
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend(sport.to_be_bytes());
    u.extend(dport.to_be_bytes());
    u.extend(((8 + payload.len()) as u16).to_be_bytes());
    u.extend([0, 0]);
    u.extend(payload);
    u
}

fn ethertype(ip: &[u8]) -> [u8; 2] {
    if ip[0] >> 4 == 6 {
        [0x86, 0xdd]
    } else {
        [0x08, 0x00]
    }
}

fn ether(ip: &[u8]) -> Vec<u8> {
    let mut e = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    e.extend(ethertype(ip));
    e.extend(ip);
    e
}

fn ether_vlan(ip: &[u8]) -> Vec<u8> {
    let mut e = vec![
        0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x81, 0x00, 0x00, 0x64,
    ];
    e.extend(ethertype(ip));
    e.extend(ip);
    e
}

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

/// The inner endpoints of an IP packet with TCP (ports 0 when not TCP).
fn endpoints(ip: &[u8]) -> ((IpAddr, u16), (IpAddr, u16)) {
    let (src, dst, l4): (IpAddr, IpAddr, &[u8]) = if ip[0] >> 4 == 6 {
        let s: [u8; 16] = ip[8..24].try_into().unwrap();
        let d: [u8; 16] = ip[24..40].try_into().unwrap();
        (s.into(), d.into(), &ip[40..])
    } else {
        let ihl = usize::from(ip[0] & 0xf) * 4;
        let s: [u8; 4] = ip[12..16].try_into().unwrap();
        let d: [u8; 4] = ip[16..20].try_into().unwrap();
        (s.into(), d.into(), &ip[ihl..])
    };
    let port = |at: usize| {
        l4.get(at..at + 2)
            .map_or(0, |p| u16::from_be_bytes([p[0], p[1]]))
    };
    ((src, port(0)), (dst, port(2)))
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

struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
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
                let j = r.next(i as u64 + 1) as usize;
                frags.swap(i, j);
            }
        }
    }
    frags
}

// ---------------------------------------------------------------------------
// Comparing records.

fn flows_without_tunnel(doc: &Value) -> Vec<Value> {
    doc["flows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut f| {
            if let Some(o) = f.as_object_mut() {
                o.remove("tunnel");
            }
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
    .map(|p| root().join("fixtures").join(p))
    .collect();
    // SSLv2: no peer speaks it, so it is byte-built (see the SSLv2 tests).
    let ch = sslv2_client_hello(0x0002);
    let mut body = vec![4, 0, 1, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x10];
    body.extend([0x01, 0x00, 0x80]);
    body.extend([0x33; 16]);
    let mut sh = vec![0x80, body.len() as u8];
    sh.extend(body);
    let mut p = Pcap::new();
    p.tcp(C, S, 100, 0, SYN, b"")
        .tcp(S, C, 500, 101, SYN | ACK, b"")
        .tcp(C, S, 101, 501, ACK, &ch)
        .tcp(S, C, 501, 101 + ch.len() as u32, ACK, &sh);
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
    let path = tmp(&name);
    write_raw_pcap(&path, frames);
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
        let path = tmp("tiny.pcap");
        write_raw_pcap(&path, &tiny);
        for f in json_of(&path)["flows"].as_array().unwrap() {
            let notes = super::notes(f);
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
        let bare = &fixtures[rng.next(fixtures.len() as u64) as usize];
        let want = flows_without_tunnel(&json_of(bare));
        let packets = read_ip_packets(bare);
        let v6 = packets.first().is_some_and(|p| p.ip[0] >> 4 == 6);
        let mut frames = Vec::new();
        let mut pending: Vec<((u32, u32), Vec<u8>)> = Vec::new();
        for (n, p) in packets.iter().enumerate() {
            // From 24 bytes up: smaller first fragments are noted as tiny.
            let size = 8 * (3 + rng.next(22) as usize);
            let order = match rng.next(4) {
                0 => Order::Straight,
                1 => Order::Reversed,
                2 => Order::Duplicated,
                _ => Order::Shuffled(rng.next(u64::MAX)),
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
        let kind = match rng.next(3) {
            0 => None,
            _ => {
                let (k, _) = WRAPS[rng.next(WRAPS.len() as u64) as usize];
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
    let bare = root().join("fixtures/tls/sslv3.pcap");
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
