//! The run's counters, as the summary prints them: packets and decoding (tunnels,
//! fragments, undecodable packets by reason), the memory cap, and the UDP table.
//! The stages count into these; output prints them as they are.

use crate::decode::path::{Reason, TunnelKind, TunnelPath};
use serde::Serialize;
use serde::ser::SerializeMap;
use std::collections::BTreeMap;

/// Server ports listed in the summary's `udp.other_by_server_port`.
pub const TOP_PORTS: usize = 10;

/// Packet-level counters for the summary.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PacketStats {
    pub total: u64,
    pub bytes: u64,
    pub tcp: u64,
    pub udp: u64,
    /// IP packets that are neither TCP nor UDP, and non-IP frames.
    pub non_tcp: u64,
    pub ip_fragments: u64,
    pub undecodable: u64,
    /// Packets of link types not decoded, by LINKTYPE number.
    pub unsupported_link_types: BTreeMap<i32, u64>,
    /// TCP segments without payload or SYN that belong to no known flow.
    pub stray: u64,
    /// Packets left out by `--port`.
    pub filtered: u64,
    /// Packets of flows that `--shard` leaves to other shards (shown with `--shard` only).
    #[serde(skip_serializing_if = "is_zero")]
    pub other_shard: u64,
    /// Packets of a link type tlswatch decodes, whichever shard they belong to
    /// (not shown: it tells whether an input could be read at all).
    #[serde(skip)]
    pub decoded: u64,
    /// The UDP conversations (shown as the summary's `udp`, not under `packets`).
    #[serde(skip)]
    pub udp_flows: UdpStats,
    /// Tunnels, fragments and undecodable packets by reason.
    #[serde(flatten)]
    pub decode: DecodeStats,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl PacketStats {
    /// Adds counters kept by another stage or shard.
    pub fn absorb(&mut self, o: &PacketStats) {
        // Destructured without `..`: a new counter must be added here too.
        let PacketStats {
            total,
            bytes,
            tcp,
            udp,
            non_tcp,
            ip_fragments,
            undecodable,
            unsupported_link_types,
            stray,
            filtered,
            other_shard,
            decoded,
            udp_flows,
            decode,
        } = o;
        self.total += total;
        self.bytes += bytes;
        self.tcp += tcp;
        self.udp += udp;
        self.non_tcp += non_tcp;
        self.ip_fragments += ip_fragments;
        self.undecodable += undecodable;
        for (lt, n) in unsupported_link_types {
            *self.unsupported_link_types.entry(*lt).or_default() += n;
        }
        self.stray += stray;
        self.filtered += filtered;
        self.other_shard += other_shard;
        self.decoded += decoded;
        self.udp_flows.absorb(udp_flows);
        self.decode.merge(decode);
    }
}

/// What the memory cap did, for the summary.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct MemoryStats {
    /// The cap, in bytes.
    pub memcap: u64,
    /// Most bytes held at once (as accounted: flow entries, records, reassembly buffers,
    /// analyzer buffers, tombstones). Not in the JSON summary: it depends on struct layouts
    /// and on how flows spread over threads, and the summary must not.
    #[serde(skip)]
    pub peak: u64,
    /// Flows whose out-of-order buffering was stopped (their held bytes became gaps).
    pub buffering_stopped: u64,
    /// Closed-connection tombstones dropped before their time.
    pub tombstones_dropped: u64,
    /// Flows ended early (`evicted`) to stay under the cap.
    pub evicted: u64,
}

impl MemoryStats {
    /// Adds another shard's: caps and peaks add up (each shard has its own cap).
    pub fn absorb(&mut self, o: &MemoryStats) {
        // Destructured without `..`: a new counter must be added here too.
        let MemoryStats {
            memcap,
            peak,
            buffering_stopped,
            tombstones_dropped,
            evicted,
        } = o;
        self.memcap += memcap;
        self.peak += peak;
        self.buffering_stopped += buffering_stopped;
        self.tombstones_dropped += tombstones_dropped;
        self.evicted += evicted;
    }
}

/// Counters of the UDP table, for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UdpStats {
    /// Conversations seen (QUIC, DTLS and other).
    pub flows: u64,
    pub quic: u64,
    pub dtls: u64,
    /// Conversations that were neither QUIC nor DTLS.
    pub other: u64,
    /// Other conversations by server port (bounded: 65,536 ports); the summary
    /// shows the top few, most first.
    #[serde(rename = "other_by_server_port", serialize_with = "top_ports")]
    pub other_by_port: BTreeMap<u16, u64>,
    /// Conversations ended early because the table was full.
    pub evicted: u64,
}

impl UdpStats {
    /// Adds counters kept by another shard.
    pub fn absorb(&mut self, o: &UdpStats) {
        // Destructured without `..`: a new counter must be added here too.
        let UdpStats {
            flows,
            quic,
            dtls,
            other,
            other_by_port,
            evicted,
        } = o;
        self.flows += flows;
        self.quic += quic;
        self.dtls += dtls;
        self.other += other;
        for (p, n) in other_by_port {
            *self.other_by_port.entry(*p).or_default() += n;
        }
        self.evicted += evicted;
    }

    /// The [`TOP_PORTS`] server ports with the most other conversations.
    pub fn top_ports(&self) -> Vec<PortCount> {
        let mut ports: Vec<PortCount> = self
            .other_by_port
            .iter()
            .map(|(&port, &flows)| PortCount { port, flows })
            .collect();
        ports.sort_by(|a, b| b.flows.cmp(&a.flows).then(a.port.cmp(&b.port)));
        ports.truncate(TOP_PORTS);
        ports
    }
}

fn top_ports<S: serde::Serializer>(m: &BTreeMap<u16, u64>, s: S) -> Result<S::Ok, S::Error> {
    let stats = UdpStats {
        other_by_port: m.clone(),
        ..UdpStats::default()
    };
    s.collect_seq(stats.top_ports())
}

/// A server port and how many conversations it had.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PortCount {
    pub port: u16,
    pub flows: u64,
}

/// Fragment counters for the summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FragStats {
    /// Fragments seen.
    pub fragments: u64,
    /// Datagrams put back together.
    pub reassembled: u64,
    /// Datagrams dropped because their last fragment never came in time.
    pub timed_out: u64,
    /// Fragments that overlapped data already held (duplicates included).
    pub overlaps: u64,
    /// Overlaps that carried different bytes (the first data was kept).
    pub conflicting_overlaps: u64,
    /// Datagrams dropped by a cap (datagrams, fragments per datagram, bytes).
    pub dropped_at_cap: u64,
    /// Fragments that contradict the datagram (length, offsets) or were cut by the snap length.
    pub invalid: u64,
}

impl FragStats {
    pub fn is_empty(&self) -> bool {
        *self == FragStats::default()
    }

    pub fn merge(&mut self, o: &FragStats) {
        self.fragments += o.fragments;
        self.reassembled += o.reassembled;
        self.timed_out += o.timed_out;
        self.overlaps += o.overlaps;
        self.conflicting_overlaps += o.conflicting_overlaps;
        self.dropped_at_cap += o.dropped_at_cap;
        self.invalid += o.invalid;
    }
}

/// Enums counted in the summary.
pub trait Counted: Copy + PartialEq + 'static {
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
}

impl Counted for TunnelKind {
    const ALL: &'static [Self] = &TunnelKind::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl Counted for Reason {
    const ALL: &'static [Self] = &Reason::ALL;
    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// Counters indexed by an enum, serialized as a map of the non-zero ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts<K: Counted, const N: usize> {
    n: [u64; N],
    kind: std::marker::PhantomData<K>,
}

impl<K: Counted, const N: usize> Default for Counts<K, N> {
    fn default() -> Self {
        Counts {
            n: [0; N],
            kind: std::marker::PhantomData,
        }
    }
}

impl<K: Counted, const N: usize> Counts<K, N> {
    pub fn add(&mut self, k: K) {
        if let Some(i) = K::ALL.iter().position(|x| *x == k)
            && let Some(c) = self.n.get_mut(i)
        {
            *c += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.n.iter().all(|&c| c == 0)
    }

    /// The non-zero counters by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        K::ALL
            .iter()
            .zip(self.n.iter())
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| (k.name(), *c))
    }

    /// The counter called `name` (0 when none is).
    pub fn get(&self, name: &str) -> u64 {
        self.iter().find(|(k, _)| *k == name).map_or(0, |(_, c)| c)
    }

    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.n.iter_mut().zip(other.n.iter()) {
            *a += b;
        }
    }
}

impl<K: Counted, const N: usize> Serialize for Counts<K, N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

/// Decoder counters for the summary (flattened into `packets`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DecodeStats {
    /// Packets that came through each kind of tunnel (a packet in GRE in VXLAN counts for both).
    #[serde(skip_serializing_if = "Counts::is_empty")]
    pub tunnels: Counts<TunnelKind, { TunnelKind::ALL.len() }>,
    /// Undecodable packets by reason.
    #[serde(skip_serializing_if = "Counts::is_empty")]
    pub undecodable_by_reason: Counts<Reason, { Reason::ALL.len() }>,
    /// IP fragment reassembly.
    #[serde(skip_serializing_if = "FragStats::is_empty")]
    pub fragments: FragStats,
}

impl DecodeStats {
    pub fn count_path(&mut self, path: &TunnelPath) {
        for e in path.iter() {
            self.tunnels.add(e.kind);
        }
    }

    /// Adds another decoder's counters (one decoder per reader thread).
    pub fn merge(&mut self, o: &DecodeStats) {
        self.tunnels.merge(&o.tunnels);
        self.undecodable_by_reason.merge(&o.undecodable_by_reason);
        self.fragments.merge(&o.fragments);
    }
}
