//! The symmetric flow hash: which worker thread a flow goes to, and which flows
//! `--shard K/N` keeps. The hash is part of the interface (processes on several
//! machines must agree on it), so it is spelled out here and in the README, and
//! never changes between versions.

use std::net::IpAddr;

/// One end of a flow, as the hash sees it: the address as 16 bytes (IPv4 as an
/// IPv4-mapped IPv6 address, `::ffff:a.b.c.d`), then the port, big-endian.
fn endpoint_bytes(ip: IpAddr, port: u16) -> [u8; 18] {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut b = [0u8; 18];
    let (addr, p) = b.split_at_mut(16);
    addr.copy_from_slice(&v6.octets());
    p.copy_from_slice(&port.to_be_bytes());
    b
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finalizer: spreads FNV's weak low bits over the word.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// The stable symmetric hash of a flow: both directions give the same value.
///
/// Input: the IP protocol number (6 for TCP, 17 for UDP) as one byte, then the
/// two endpoints, each as 16 address bytes (IPv4 as `::ffff:a.b.c.d`) and the
/// port big-endian, the bytewise smaller first.
/// Hash: FNV-1a 64 over those 37 bytes, then MurmurHash3's fmix64.
pub fn flow_hash(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> u64 {
    let x = endpoint_bytes(a.0, a.1);
    let y = endpoint_bytes(b.0, b.1);
    let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
    fmix64(fnv1a(fnv1a(fnv1a(FNV_OFFSET, &[proto]), &lo), &hi))
}

/// One endpoint folded into a word for [`route_hash`].
fn fold(ip: IpAddr, port: u16) -> u64 {
    match ip {
        IpAddr::V4(a) => (u64::from(u32::from(a)) << 16) | u64::from(port),
        IpAddr::V6(a) => {
            let x = u128::from(a);
            (x as u64) ^ ((x >> 64) as u64).rotate_left(17) ^ (u64::from(port) << 48)
        }
    }
}

/// A fast symmetric hash that picks a flow's worker thread inside one process.
/// Not stable and not the shard rule (a process keeping shard K of N must still
/// spread its flows evenly over its workers); [`flow_hash`] is the stable one.
pub fn route_hash(a: (IpAddr, u16), b: (IpAddr, u16)) -> u64 {
    fmix64(fold(a.0, a.1).wrapping_add(fold(b.0, b.1)))
}

/// The worker thread (of `n`) that owns a flow with this [`route_hash`]: the
/// hash scaled to `0..n` by a multiplication (a division per packet cost the
/// reader, the threaded pipeline's busiest thread, as much as its hashing).
pub fn worker_of(route: u64, n: usize) -> usize {
    ((u128::from(route) * n.max(1) as u128) >> 64) as usize
}

/// Most shards `--shard` accepts.
pub const MAX_SHARDS: u32 = 1 << 16;

/// `--shard K/N`: this process keeps the flows whose hash modulo N is K.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Parses `K/N` with `0 <= K < N <= MAX_SHARDS`.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("--shard {s}: expected K/N with 0 <= K < N (e.g. 0/4)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = k.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        if count > MAX_SHARDS {
            return Err(format!("--shard {s}: at most {MAX_SHARDS} shards"));
        }
        Ok(Shard { index, count })
    }

    /// This shard keeps the flow with this hash.
    pub fn holds(&self, hash: u64) -> bool {
        hash % u64::from(self.count) == u64::from(self.index)
    }

    /// Packets without a flow (not TCP, undecodable) are counted by shard 0 alone,
    /// so the shards' counters add up to one unsharded run's.
    pub fn counts_flowless(&self) -> bool {
        self.index == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Values from an independent Python implementation of the documented rule:
    /// ```python
    /// import ipaddress, struct
    /// def ep(ip, port):
    ///     a = ipaddress.ip_address(ip)
    ///     b = (ipaddress.IPv6Address('::ffff:' + ip) if a.version == 4 else a).packed
    ///     return b + struct.pack('>H', port)
    /// def fmix(h):
    ///     M = (1 << 64) - 1
    ///     h ^= h >> 33; h = (h * 0xff51afd7ed558ccd) & M
    ///     h ^= h >> 33; h = (h * 0xc4ceb9fe1a85ec53) & M
    ///     return h ^ (h >> 33)
    /// def flow_hash(proto, a, b):
    ///     x, y = sorted([ep(*a), ep(*b)])
    ///     h = 0xcbf29ce484222325
    ///     for c in bytes([proto]) + x + y:
    ///         h = ((h ^ c) * 0x100000001b3) & ((1 << 64) - 1)
    ///     return fmix(h)
    /// ```
    #[test]
    fn hash_matches_the_documented_rule() {
        type Case<'a> = (u8, (&'a str, u16), (&'a str, u16), u64);
        let cases: [Case<'_>; 3] = [
            (6, ("10.0.0.1", 51432), ("192.0.2.25", 25), PY_HASHES[0]),
            (
                6,
                ("2001:db8::1", 443),
                ("2001:db8::2", 40000),
                PY_HASHES[1],
            ),
            (17, ("10.0.0.1", 53), ("10.0.0.2", 53), PY_HASHES[2]),
        ];
        for (proto, a, b, want) in cases {
            let a = (ip(a.0), a.1);
            let b = (ip(b.0), b.1);
            assert_eq!(flow_hash(proto, a, b), want, "{a:?} {b:?}");
            assert_eq!(flow_hash(proto, b, a), want, "symmetric");
        }
    }

    const PY_HASHES: [u64; 3] = [
        0x4ff2_7502_a0c4_274c,
        0xf107_efa9_c1b9_eecc,
        0x97f5_bb9f_d8e9_ac61,
    ];

    #[test]
    fn shard_parse_and_bounds() {
        assert_eq!(Shard::parse("0/1"), Ok(Shard { index: 0, count: 1 }));
        assert_eq!(Shard::parse("2/3"), Ok(Shard { index: 2, count: 3 }));
        for bad in ["3/3", "1/0", "x/2", "1", "-1/2", "1/2/3", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert!(Shard::parse("0/65537").is_err());
    }

    #[test]
    fn every_flow_in_exactly_one_shard_and_workers_balanced() {
        let mut per_worker = [0u32; 4];
        for i in 0..4000u32 {
            let a = (IpAddr::from(i.to_be_bytes()), (i % 60000) as u16);
            let b = (ip("192.0.2.1"), 443);
            let h = flow_hash(6, a, b);
            let holders = (0..3)
                .filter(|&k| Shard { index: k, count: 3 }.holds(h))
                .count();
            assert_eq!(holders, 1);
            assert_eq!(route_hash(a, b), route_hash(b, a));
            per_worker[worker_of(route_hash(a, b), 4)] += 1;
        }
        for n in per_worker {
            assert!((850..1150).contains(&n), "{per_worker:?}");
        }
        // The whole hash range maps onto every worker and no further.
        for n in 1..=64 {
            assert_eq!(worker_of(0, n), 0);
            assert_eq!(worker_of(u64::MAX, n), n - 1);
        }
        assert_eq!(worker_of(u64::MAX, 0), 0);
    }
}
