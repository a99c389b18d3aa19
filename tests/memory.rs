//! Hostile traffic at scale, under a counting allocator: what a flow without payload
//! costs, and that floods, out-of-order data, conflicting retransmissions, time going
//! backwards, huge handshake messages, giant STARTTLS lines and BER length bombs neither
//! panic nor hold more memory than the cap allows.
//!
//! The tests share one process-wide allocation counter, so they run one at a time.

// A panic in a test is a failed test, not a crash on input.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod kit;

use cap::Cap;
use kit::net;
use kit::pcap::{ETHERNET, Pcap};
use kit::tls::record;
use std::alloc::System;
use std::net::IpAddr;
use std::sync::Mutex;
use tlswatch::analyzer::options::Options;
use tlswatch::config::Limits;
use tlswatch::config::StreamLimits;
use tlswatch::decode::path::{Datagram, DecodeNotes, Flags, Segment, TunnelPath};
use tlswatch::flow::reassembly::RUN_OVERHEAD;
use tlswatch::flow::tcp::{Engine, Stamp};
use tlswatch::record::{EndReason, FlowRecord, Note};
use tlswatch::time::Timestamp;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const SYN: Flags = Flags {
    syn: true,
    ack: false,
    fin: false,
    rst: false,
};
const SYN_ACK: Flags = Flags {
    syn: true,
    ack: true,
    fin: false,
    rst: false,
};
const ACK: Flags = Flags {
    syn: false,
    ack: true,
    fin: false,
    rst: false,
};

const SERVER: [u8; 4] = [192, 0, 2, 1];

/// The n-th distinct client address.
fn client(n: u32) -> IpAddr {
    IpAddr::from((0x0a00_0000u32 | (n & 0x00ff_ffff)).to_be_bytes())
}

/// A segment from `src:sport` to `dst:dport`, outside tunnels.
fn segment<'p>(
    (src, sport): (IpAddr, u16),
    (dst, dport): (IpAddr, u16),
    seq: u32,
    ack: u32,
    flags: Flags,
    payload: &'p [u8],
) -> Segment<'p> {
    Segment {
        src,
        dst,
        sport,
        dport,
        seq,
        ack,
        flags,
        payload,
        truncated: false,
        tunnel: TunnelPath::default(),
        notes: DecodeNotes::default(),
    }
}

/// A segment from `client:sport` to the server's `dport`.
fn seg(src: IpAddr, sport: u16, dport: u16, seq: u32, flags: Flags, payload: &[u8]) -> Segment<'_> {
    let server = (IpAddr::from(SERVER), dport);
    segment((src, sport), server, seq, 0, flags, payload)
}

/// The server's reply to `client:sport`.
fn reply(
    dst: IpAddr,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: Flags,
    payload: &[u8],
) -> Segment<'_> {
    let server = (IpAddr::from(SERVER), dport);
    segment(server, (dst, sport), seq, ack, flags, payload)
}

fn at(secs: i64) -> Timestamp {
    Timestamp { secs, nanos: 0 }
}

/// Records and the highest live allocation seen, sampled as flows end and every
/// `every` packets.
struct Run {
    engine: Engine,
    recs: Vec<FlowRecord>,
    keep: bool,
    ended: u64,
    /// Records ended with both `reassembly_cap` and `gap` (kept or not).
    capped: u64,
    base: usize,
    peak: usize,
}

impl Run {
    fn new(limits: Limits, keep: bool) -> Self {
        let base = ALLOC.allocated();
        Run {
            engine: Engine::new(limits, Options { show_users: true }, Vec::new()),
            recs: Vec::new(),
            keep,
            ended: 0,
            capped: 0,
            base,
            peak: 0,
        }
    }

    fn sample(&mut self) {
        self.peak = self.peak.max(ALLOC.allocated().saturating_sub(self.base));
    }

    /// What the engine holds is under `cap`, and the allocator's peak near it.
    fn assert_within(&self, cap: usize) {
        assert!(self.engine.memory_used() <= cap);
        assert!(
            self.peak <= cap + cap / 4,
            "peak {} over cap {cap}",
            self.peak
        );
    }

    fn seg(&mut self, s: &Segment<'_>, ts: Timestamp) {
        let (recs, keep) = (&mut self.recs, self.keep);
        let (ended, capped) = (&mut self.ended, &mut self.capped);
        let mut take = |r| Self::take(r, recs, keep, ended, capped);
        self.engine.tick(ts, &mut take);
        self.engine.segment(s, Stamp { ts, ordinal: 0 }, &mut take);
    }

    fn dgram(&mut self, d: &Datagram<'_>, ts: Timestamp) {
        let (recs, keep) = (&mut self.recs, self.keep);
        let (ended, capped) = (&mut self.ended, &mut self.capped);
        let mut take = |r| Self::take(r, recs, keep, ended, capped);
        self.engine.tick(ts, &mut take);
        self.engine.datagram(d, Stamp { ts, ordinal: 0 }, &mut take);
    }

    fn finish(&mut self) {
        self.sample();
        let (recs, keep) = (&mut self.recs, self.keep);
        let (ended, capped) = (&mut self.ended, &mut self.capped);
        self.engine.finish(EndReason::EndOfInput, &mut |r| {
            Self::take(r, recs, keep, ended, capped);
        });
    }

    fn take(
        r: FlowRecord,
        recs: &mut Vec<FlowRecord>,
        keep: bool,
        ended: &mut u64,
        capped: &mut u64,
    ) {
        *ended += 1;
        if r.has_note(Note::ReassemblyCap) && r.has_note(Note::Gap) {
            *capped += 1;
        }
        if keep {
            recs.push(r);
        }
    }
}

#[test]
fn payload_less_flows_stay_small() {
    let _g = serial();
    const N: u32 = 100_000;
    let mut run = Run::new(Limits::default(), false);
    let before = ALLOC.allocated();
    for i in 0..N {
        run.seg(&seg(client(i), 40_000, 443, i, SYN, b""), at(1));
    }
    let per_flow = (ALLOC.allocated() - before) / N as usize;
    assert_eq!(run.engine.open_flows(), N as usize);
    assert!(per_flow <= 200, "{per_flow} bytes per flow without payload");
    // The budget charges at least what the allocator saw (and not wildly more).
    let charged = run.engine.memory_used() / N as usize;
    assert!(
        charged + 16 >= per_flow && charged <= 2 * per_flow,
        "charged {charged}, allocated {per_flow} per flow"
    );
    run.finish();
    assert_eq!(run.ended, u64::from(N));
    assert_eq!(
        run.engine.memory_used(),
        0,
        "everything charged was released"
    );
}

#[test]
fn syn_flood_stays_under_the_memcap() {
    let _g = serial();
    const N: u32 = 300_000;
    const CAP: usize = 8 << 20;
    let limits = Limits {
        memcap: CAP,
        ..Limits::default()
    };
    let mut run = Run::new(limits, false);
    for i in 0..N {
        run.seg(
            &seg(client(i), 1024 + (i % 50_000) as u16, 443, i, SYN, b""),
            at(1 + i64::from(i / 100_000)),
        );
        if i % 4096 == 0 {
            run.sample();
        }
    }
    let mem = run.engine.memory();
    run.assert_within(CAP);
    assert!(mem.evicted > 0, "{mem:?}");
    assert_eq!(mem.evicted, run.engine.evicted);
    // Every SYN made a flow; the cap ended the oldest early.
    assert_eq!(run.ended + run.engine.open_flows() as u64, u64::from(N));
    assert_eq!(run.ended, mem.evicted);
    run.finish();
    assert_eq!(run.ended, u64::from(N));
}

#[test]
fn flows_holding_out_of_order_data_at_the_cap() {
    let _g = serial();
    const N: u32 = 100_000;
    const CAP: usize = 16 << 20;
    let limits = Limits {
        memcap: CAP,
        stream: StreamLimits {
            // Two 1 KiB pieces in one run (adjacent pieces merge), and its overhead.
            max_buffered: 2048 + RUN_OVERHEAD,
        },
        ..Limits::default()
    };
    let mut run = Run::new(limits, false);
    let data = [0x41u8; 1024];
    for i in 0..N {
        let c = client(i);
        run.seg(&seg(c, 40_000, 25, 1000, SYN, b""), at(1));
        // A hole at the start, then two runs up to the per-direction cap.
        run.seg(&seg(c, 40_000, 25, 1001 + 100, ACK, &data), at(1));
        run.seg(&seg(c, 40_000, 25, 1001 + 1124, ACK, &data), at(1));
        if i % 4096 == 0 {
            run.sample();
        }
    }
    let mem = run.engine.memory();
    assert!(mem.buffering_stopped > 0, "{mem:?}");
    run.assert_within(CAP);
    run.finish();
    assert_eq!(run.ended, u64::from(N));
    // Flows whose buffering stopped say so: their held bytes became gaps.
    assert!(
        run.capped >= mem.buffering_stopped,
        "{} < {mem:?}",
        run.capped
    );
}

#[test]
fn conflicting_overlaps_on_every_retransmission() {
    let _g = serial();
    let mut run = Run::new(Limits::default(), true);
    let c = client(1);
    run.seg(&seg(c, 40_000, 80, 0, SYN, b""), at(1));
    let mut chunk = [0u8; 512];
    for i in 0..20_000u32 {
        let off = 1 + (i / 2) * 256;
        // Every segment overlaps the previous one by half, with different bytes; every
        // other one jumps ahead to be buffered out of order first.
        chunk.fill((i % 251) as u8);
        let seq = if i % 2 == 0 { off + 4096 } else { off };
        run.seg(&seg(c, 40_000, 80, seq, ACK, &chunk), at(1));
        if i % 512 == 0 {
            run.sample();
        }
    }
    run.finish();
    assert_eq!(run.recs.len(), 1);
    assert!(run.recs[0].has_note(Note::ConflictingOverlap));
    // Bounded by the per-direction cap, whatever the retransmissions did.
    assert!(run.peak < 4 << 20, "peak {}", run.peak);
}

#[test]
fn timestamps_going_backwards() {
    let _g = serial();
    let limits = Limits {
        idle_timeout_secs: 30,
        max_flows: 1000,
        ..Limits::default()
    };
    let mut run = Run::new(limits, true);
    let mut rng = kit::Rng(0x2545_f491_4f6c_dd1d);
    let mut rnd = move || rng.next_u64();
    const N: u32 = 50_000;
    for i in 0..N {
        // Time jumps back and forth by up to a day, and far into the past.
        let t = 1_700_000_000 + (rnd() % 86_400) as i64 - if i % 97 == 0 { 1 << 40 } else { 0 };
        let c = client(i % 3000);
        let hello = [0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0];
        match rnd() % 3 {
            0 => run.seg(&seg(c, 40_000, 443, 7, SYN, b""), at(t)),
            1 => run.seg(&seg(c, 40_000, 443, 8, ACK, &hello), at(t)),
            _ => run.seg(&reply(c, 40_000, 443, 9, 8, SYN_ACK, b""), at(t)),
        }
    }
    run.finish();
    // Every flow that began ended exactly once, with ids in order of their beginning.
    let mut ids: Vec<u64> = run.recs.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), run.recs.len());
    assert_eq!(run.engine.memory_used(), 0);
}

/// Sends `stream` from the client in 1400-byte segments after a handshake; returns the record.
fn one_flow(port: u16, greeting: &[u8], stream: &[u8], limits: Limits) -> (FlowRecord, usize) {
    let mut run = Run::new(limits, true);
    let c = client(7);
    run.seg(&seg(c, 40_000, port, 100, SYN, b""), at(1));
    run.seg(&reply(c, 40_000, port, 500, 101, SYN_ACK, b""), at(1));
    let mut sseq = 501;
    if !greeting.is_empty() {
        run.seg(&reply(c, 40_000, port, sseq, 101, ACK, greeting), at(1));
        sseq += greeting.len() as u32;
    }
    let mut seq = 101u32;
    for (i, chunk) in stream.chunks(1400).enumerate() {
        run.seg(&seg(c, 40_000, port, seq, ACK, chunk), at(1));
        seq = seq.wrapping_add(chunk.len() as u32);
        if i % 256 == 0 {
            run.sample();
        }
    }
    let _ = sseq;
    run.finish();
    assert_eq!(run.recs.len(), 1);
    (run.recs.remove(0), run.peak)
}

#[test]
fn sixteen_mib_handshake_message() {
    let _g = serial();
    // A ClientHello header announcing 16 MiB - 1, then 16 MiB of records carrying it.
    let mut stream = record(22, 0x0301, &[1, 0xff, 0xff, 0xff]);
    let body = vec![0x5a; 16_000];
    while stream.len() < 16 << 20 {
        stream.extend(record(22, 0x0301, &body));
    }
    let (rec, peak) = one_flow(443, b"", &stream, Limits::default());
    assert!(rec.has_note(Note::HandshakeTooLarge), "{:?}", rec.notes);
    assert!(peak < 2 << 20, "peak {peak}");
}

#[test]
fn giant_starttls_lines() {
    let _g = serial();
    // An SMTP client that never ends its line (8 MiB), after a normal greeting.
    let mut stream = b"EHLO ".to_vec();
    stream.resize(8 << 20, b'a');
    let (rec, peak) = one_flow(
        25,
        b"220 mail.example.com ESMTP\r\n",
        &stream,
        Limits::default(),
    );
    assert!(!rec.has_note(Note::Gap));
    assert!(peak < 2 << 20, "peak {peak}");
    // The same with a line that ends, 8 MiB later, then STARTTLS.
    stream.extend_from_slice(b"\r\nSTARTTLS\r\n");
    let (_, peak) = one_flow(
        25,
        b"220 mail.example.com ESMTP\r\n",
        &stream,
        Limits::default(),
    );
    assert!(peak < 2 << 20, "peak {peak}");
}

#[test]
fn ldap_ber_length_bombs() {
    let _g = serial();
    let bombs: [&[u8]; 4] = [
        // SEQUENCE of 2 GiB holding an ExtendedRequest of 2 GiB.
        &[
            0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01, 0x77, 0x84, 0x7f, 0xff, 0xff,
            0xff,
        ],
        // Lengths of 8 and 126 length bytes.
        &[
            0x30, 0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01,
        ],
        &[0x30, 0xfe, 0xff, 0xff, 0xff],
        // Nested definite lengths that each claim more than their parent.
        &[
            0x30, 0x06, 0x02, 0x01, 0x01, 0x77, 0x84, 0x00, 0x10, 0x00, 0x00,
        ],
    ];
    for bomb in bombs {
        let mut stream = bomb.to_vec();
        stream.resize(4 << 20, 0x30);
        let (_, peak) = one_flow(389, b"", &stream, Limits::default());
        assert!(peak < 2 << 20, "peak {peak} for {bomb:02x?}");
    }
}

/// A classic pcap of `n` SYNs (or, with `udp`, DNS-style queries) from distinct
/// sources to one server (Ethernet, IPv4).
fn flood_pcap(n: u32, udp: bool) -> Vec<u8> {
    let mut p = Pcap::with_linktype(ETHERNET);
    for i in 0..n {
        let src = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let sport = 1024 + (i % 60_000) as u16;
        let ip = if udp {
            let mut query = (i as u16).to_be_bytes().to_vec();
            query.extend([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
            net::ipv4(17, src, SERVER, 0, 0x4000, &net::udp(sport, 53, &query))
        } else {
            let syn = net::tcp(sport, 443, i, 0, net::SYN, b"");
            net::ipv4(6, src, SERVER, 0, 0x4000, &syn)
        };
        p.frame_at((1 + i / 100_000, i % 1_000_000), &net::ether(&ip));
    }
    p.bytes
}

/// The whole threaded pipeline under a SYN flood: workers count flows without
/// payload instead of sending their records to the output stage, and the cap
/// (shared out among the workers, the output stage's numbering charged too) holds.
#[test]
fn threaded_syn_flood_stays_under_the_memcap() {
    pipeline_flood(false);
}

/// The same with UDP conversations: the UDP table is charged to the same cap and
/// evicts its least recently active, and the output stage forgets the numbers of
/// conversations that end without a record.
#[test]
fn threaded_udp_flood_stays_under_the_memcap() {
    pipeline_flood(true);
}

fn pipeline_flood(udp: bool) {
    use clap::Parser;
    let _g = serial();
    const N: u32 = 200_000;
    const CAP: usize = 8 << 20;
    let path = kit::tmp(&format!("flood-{udp}.pcap"));
    std::fs::write(&path, flood_pcap(N, udp)).unwrap();
    let file = path.to_string_lossy().into_owned();
    for threads in ["1", "2", "3"] {
        let args = ["tlswatch", "-r", &file, "--ndjson", "--threads", threads];
        let cfg = tlswatch::cli::Args::try_parse_from(args.iter().chain(&["--memcap", "8M"]))
            .unwrap()
            .into_config()
            .unwrap();
        let base = ALLOC.allocated();
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let now = ALLOC.allocated().saturating_sub(base);
                    peak.fetch_max(now, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            })
        };
        let mut sink = tlswatch::output::json::Ndjson::new(std::io::sink(), false);
        let report =
            tlswatch::run::process(&cfg, &mut sink, &tlswatch::run::progress::Progress::off());
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        sampler.join().unwrap();
        let s = &report.summary;
        if udp {
            assert_eq!(s.udp.flows, u64::from(N), "--threads {threads}");
            assert_eq!(s.udp.other, u64::from(N), "--threads {threads}");
            assert_eq!(s.flows.total, 0, "--threads {threads}");
        } else {
            assert_eq!(s.flows.total, u64::from(N), "--threads {threads}");
            assert_eq!(s.flows.without_payload, u64::from(N), "--threads {threads}");
        }
        assert_eq!(s.flows.listed, 0, "--threads {threads}");
        assert!(s.memory.evicted > 0, "--threads {threads}: {:?}", s.memory);
        let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
        // The cap, plus what does not grow with the flows: the read buffer, the
        // batches in the queues, the output stage's queues.
        assert!(
            peak <= CAP + CAP / 4 + (6 << 20),
            "--threads {threads}: peak {peak} over cap {CAP}"
        );
    }
    let _ = std::fs::remove_file(&path);
}

/// A datagram from `src:sport` to the server's `dport`, outside tunnels.
fn datagram(src: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Datagram<'_> {
    Datagram {
        src,
        dst: IpAddr::from(SERVER),
        sport,
        dport,
        payload,
        truncated: false,
        tunnel: TunnelPath::default(),
        notes: DecodeNotes::default(),
    }
}

/// The datagrams of the `i`-th conversation of a QUIC and DTLS handshake flood, each
/// holding as much partial handshake state as it can. Three conversations in four
/// are QUIC: a client Initial with the start of a ClientHello too large for it (the
/// rest never comes), then Initials full of one-byte CRYPTO frames after a hole. The
/// fourth is DTLS: the first fragment of a 16 KiB ClientHello, then fragments
/// scattered through it.
fn handshake_flood(i: u32) -> (u16, Vec<Vec<u8>>) {
    if i % 4 == 3 {
        let len = 16 * 1024;
        let frags = (0..64)
            .map(|k| kit::tls::dtls_fragment(1, 0xfefd, len, 200 * k, &[0x5a; 100]))
            .collect();
        return (4433, frags);
    }
    let dcid = u64::from(i)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .to_be_bytes();
    let mut hello = vec![1, 0, 0x07, 0x08];
    hello.resize(1100, 0x5a);
    let mut pkts = vec![kit::quic::client_initial(
        &dcid,
        &[1; 8],
        0,
        &kit::quic::crypto_frame(0, &hello),
    )];
    for pn in 1..4u16 {
        let mut frames = Vec::new();
        for k in 0..130 {
            let offset = 2000 + 1000 * u32::from(pn) + 2 * k;
            frames.extend(kit::quic::crypto_frame(offset, &[0x5a]));
        }
        pkts.push(kit::quic::client_initial(&dcid, &[1; 8], pn, &frames));
    }
    (443, pkts)
}

/// QUIC and DTLS handshake state counts against the cap: a flood of conversations
/// each holding a partial ClientHello and many out-of-order CRYPTO frames (or DTLS
/// fragments) stays within it, the least recently active conversations ending
/// early with their records, noted as evicted.
#[test]
fn quic_and_dtls_handshake_flood_stays_under_the_memcap() {
    let _g = serial();
    const N: u32 = 1000;
    const CAP: usize = 8 << 20;
    let limits = Limits {
        memcap: CAP,
        ..Limits::default()
    };
    let mut run = Run::new(limits, true);
    // The records kept for the checks below are not the engine's memory.
    run.recs.reserve(N as usize);
    run.base = ALLOC.allocated();
    for i in 0..N {
        let (port, pkts) = handshake_flood(i);
        for p in &pkts {
            run.dgram(&datagram(client(i), 40_000, port, p), at(1));
        }
        run.sample();
        assert!(run.engine.memory_used() <= CAP);
    }
    let mem = run.engine.memory();
    run.assert_within(CAP);
    let udp = run.engine.stats.udp_flows.clone();
    assert!(mem.evicted > 0, "{mem:?}");
    assert_eq!(udp.evicted, mem.evicted);
    run.finish();
    assert_eq!(
        run.engine.memory_used(),
        0,
        "everything charged was released"
    );
    assert_eq!(run.recs.len(), N as usize);
    // Conversations are counted as they end: so far, the evicted ones.
    assert_eq!(udp.quic + udp.dtls, mem.evicted, "{udp:?}");
    let quic = |r: &FlowRecord| r.quic.is_some() && r.server.port == 443;
    let dtls = |r: &FlowRecord| r.dtls.is_some() && r.server.port == 4433;
    assert!(run.recs.iter().all(|r| quic(r) || dtls(r)));
    // The oldest conversations were the ones evicted, each with its record.
    let evicted: Vec<u64> = run
        .recs
        .iter()
        .filter(|r| r.end_reason == EndReason::Evicted)
        .map(|r| r.id)
        .collect();
    assert_eq!(evicted, (1..=mem.evicted).collect::<Vec<_>>());
    for r in &run.recs {
        let was_evicted = r.end_reason == EndReason::Evicted;
        assert_eq!(r.has_note(Note::Evicted), was_evicted, "{:?}", r.notes);
        assert!(r.incomplete, "{:?}", r.id);
    }
}
