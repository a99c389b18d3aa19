//! What reading a QUIC Initial costs at the least: the key derivation and the
//! decryption every client Initial needs before its ClientHello can be read, timed
//! alone over the Initials of a flood capture (`bench/gen_quic_flood.py`).
//!
//!     cargo bench --bench quic_floor -- /tmp/quic-flood-100k.pcap [PASSES]
//!
//! For each UDP payload of the capture (a classic pcap of Ethernet frames, as the
//! generator writes them) it times, in passes whose medians it prints:
//! - `derive`: the client's Initial keys from the Destination Connection ID
//!   (RFC 9001 §5.2: HKDF-Extract with the version's salt, then four HKDF-Expand-Label);
//! - `open`: header protection removed and the payload decrypted and authenticated
//!   (AES-128 for the mask, AES-128-GCM for the rest) with keys derived beforehand;
//! - `both`: the two together, as the sniff does them for a flow's first Initial;
//! - `sha256`: the 14 SHA-256 block compressions the derivation needs at the least
//!   (2 for the extract, the salt's HMAC pads computed once; 4 for `client in`;
//!   2 for the client secret's HMAC pads and 2 for each of `quic key`, `iv`, `hp`),
//!   one after another with nothing around them: the hashing part of `derive`, which
//!   another HKDF implementation would not avoid (one with the HMAC framing written
//!   out over these compressions measured within the noise of the `hkdf` crate's).
//!
//! The whole run of tlswatch over the same capture cannot take less CPU than
//! `both` times the number of Initials; `bench/figures.py` prints this floor
//! beside the flood's measured time.

use etherparse::{SlicedPacket, TransportSlice};
use std::time::Instant;
use tlswatch::analyzer::quic::initial::{Keys, Suite};
use tlswatch::analyzer::quic::packet::{Kind, long_header, open};

/// The UDP payloads of a classic pcap file of Ethernet frames (as the generator writes).
fn payloads(file: &[u8]) -> Result<Vec<&[u8]>, String> {
    let (_, capture) =
        pcap_parser::parse_pcap(file).map_err(|e| format!("not a pcap file: {e}"))?;
    Ok(capture
        .blocks
        .iter()
        .filter_map(
            |b| match SlicedPacket::from_ethernet(b.data).ok()?.transport? {
                TransportSlice::Udp(udp) => Some(udp.payload()),
                _ => None,
            },
        )
        .collect())
}

/// An Initial's Destination Connection ID and where its packet number lies.
fn initial(pkt: &[u8], suite: &Suite) -> Option<(Vec<u8>, usize)> {
    let long = long_header(pkt, Some((suite.initial_type, suite.retry_type)), false).ok()?;
    match long.kind {
        Kind::Protected { pn_offset, .. } => Some((long.dcid.to_vec(), pn_offset)),
        _ => None,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let path = args
        .first()
        .ok_or("usage: quic_floor FLOOD.pcap [PASSES]")?;
    let passes: usize = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(5);
    let file = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let suite = Suite::of(tlswatch::analyzer::quic::initial::V1).ok_or("no v1 suite")?;
    let pkts: Vec<(&[u8], Vec<u8>, usize)> = payloads(&file)?
        .into_iter()
        .filter_map(|p| initial(p, &suite).map(|(dcid, pn)| (p, dcid, pn)))
        .collect();
    if pkts.is_empty() {
        return Err(format!("{path}: no QUIC v1 Initial over Ethernet/IPv4/UDP"));
    }
    let n = pkts.len() as f64;
    let mut scratch = Vec::with_capacity(1500);
    let (mut derive, mut opening, mut both, mut sha) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut opened = 0usize;
    for _ in 0..passes {
        // Each Initial's keys dropped as soon as made, as a flood's are reused memory.
        let t = Instant::now();
        for (_, dcid, _) in &pkts {
            std::hint::black_box(Keys::initial(&suite, dcid, true));
        }
        derive.push(t.elapsed().as_secs_f64() / n);

        // Keys derived a chunk at a time outside the timing.
        opened = 0;
        let mut spent = 0.0;
        for chunk in pkts.chunks(1024) {
            let keys: Vec<Box<Keys>> = chunk
                .iter()
                .filter_map(|(_, dcid, _)| Keys::initial(&suite, dcid, true))
                .collect();
            let t = Instant::now();
            for ((pkt, _, pn_offset), k) in chunk.iter().zip(&keys) {
                opened += usize::from(open(k, pkt, *pn_offset, None, &mut scratch).is_some());
            }
            spent += t.elapsed().as_secs_f64();
        }
        opening.push(spent / n);

        let t = Instant::now();
        for (pkt, dcid, pn_offset) in &pkts {
            if let Some(k) = Keys::initial(&suite, dcid, true) {
                std::hint::black_box(open(&k, pkt, *pn_offset, None, &mut scratch));
            }
        }
        both.push(t.elapsed().as_secs_f64() / n);

        let t = Instant::now();
        let mut state = [0u32; 8];
        for (_, dcid, _) in &pkts {
            let mut block = [0u8; 64];
            for (b, d) in block.iter_mut().zip(dcid) {
                *b = *d;
            }
            for _ in 0..14 {
                sha2::block_api::compress256(&mut state, std::slice::from_ref(&block));
                // Each compression's input depends on the last one's output, as in HMAC.
                if let Some(b) = block.first_mut() {
                    *b ^= state.first().copied().unwrap_or_default() as u8;
                }
            }
        }
        std::hint::black_box(state);
        sha.push(t.elapsed().as_secs_f64() / n);
    }
    let ns = |v: Vec<f64>| median(v) * 1e9;
    let (d, o, b, c) = (ns(derive), ns(opening), ns(both), ns(sha));
    println!(
        "{} Initials ({opened} opened), medians of {passes} passes:",
        pkts.len()
    );
    println!("  derive  {d:7.0} ns per Initial");
    println!("  open    {o:7.0} ns per Initial");
    println!("  both    {b:7.0} ns per Initial");
    println!("  sha256  {c:7.0} ns per Initial");
    // ns per Initial times a million Initials, in seconds.
    println!("  floor for 1,000,000 Initials: {:.3} s of CPU", b * 1e-3);
    if opened != pkts.len() {
        return Err(format!(
            "{} of {} Initials did not open",
            pkts.len() - opened,
            pkts.len()
        ));
    }
    Ok(())
}
