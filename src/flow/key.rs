//! The one flow key of both tables, TCP and UDP, and the index that lets the two
//! directions of a tunnelled flow meet when their tunnel ids differ.

use rustc_hash::FxBuildHasher;
use std::collections::HashMap;
use std::net::IpAddr;

/// Canonical key: the two endpoints in sorted order, and the identity of the
/// tunnels the flow came through (0 for none). The transport is not part of it:
/// each table holds one transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub a: (IpAddr, u16),
    pub b: (IpAddr, u16),
    pub tunnel: u64,
}

impl FlowKey {
    pub fn new(x: (IpAddr, u16), y: (IpAddr, u16), tunnel: u64) -> Self {
        if x <= y {
            FlowKey { a: x, b: y, tunnel }
        } else {
            FlowKey { a: y, b: x, tunnel }
        }
    }

    /// The same endpoints with another tunnel identity.
    #[must_use]
    pub fn with_tunnel(self, tunnel: u64) -> Self {
        FlowKey { tunnel, ..self }
    }
}

/// One-sided tunnelled flows held per inner 4-tuple and tunnel kinds (tenants using the
/// same inner addresses and ports at the same time); past it a flow cannot be joined.
pub const CANDIDATES: usize = 4;

/// Bytes one entry of [`Joins`] is charged against the memory cap (key and value in a
/// hash table, with its slack).
pub const JOIN_BYTES: usize = 160;

/// Where tunnelled flows wait for their other direction, and the directions that joined.
///
/// A flow's key holds the identity of its tunnel path: hop kinds, outer addresses and
/// ids. When the two directions of one connection carry different ids (Open vSwitch
/// gives each direction its own VNI or GRE key, ERSPAN sessions differ per direction) or
/// outer addresses (a 6to4 reply comes from another relay), their keys differ. A flow
/// whose other direction has not been seen yet waits here under its *coarse* key (inner
/// endpoints and hop kinds only); a packet of the other direction whose own key is
/// unknown may join it (the table decides when: it checks sequence numbers where there
/// are any), and from then on its key resolves to the flow's. Equal inner 4-tuples in
/// different tenants stay apart: their keys differ, and a join needs the other
/// direction to be unseen.
#[derive(Debug, Default)]
pub struct Joins {
    /// Coarse key → tunnel identities of the flows waiting under it (0: free).
    waiting: HashMap<FlowKey, [u64; CANDIDATES], FxBuildHasher>,
    /// Key of a direction that joined a flow → that flow's tunnel identity.
    joined: HashMap<FlowKey, u64, FxBuildHasher>,
}

impl Joins {
    /// The key of the flow `key`'s packets belong to: the flow it joined, or itself.
    pub fn resolve(&self, key: FlowKey) -> FlowKey {
        if key.tunnel == 0 || self.joined.is_empty() {
            return key;
        }
        match self.joined.get(&key) {
            Some(&t) => key.with_tunnel(t),
            None => key,
        }
    }

    /// The flow keyed `coarse.with_tunnel(tunnel)` waits for its other direction (if
    /// there is room under `coarse`).
    pub fn wait(&mut self, coarse: FlowKey, tunnel: u64) {
        let slots = self.waiting.entry(coarse).or_default();
        if slots.contains(&tunnel) {
            return;
        }
        if let Some(free) = slots.iter_mut().find(|t| **t == 0) {
            *free = tunnel;
        }
    }

    /// The keys of the flows waiting under `coarse`, oldest first.
    pub fn waiting(&self, coarse: &FlowKey) -> impl Iterator<Item = FlowKey> + '_ {
        let c = *coarse;
        self.waiting
            .get(coarse)
            .into_iter()
            .flatten()
            .filter(|&&t| t != 0)
            .map(move |&t| c.with_tunnel(t))
    }

    /// The flow keyed `coarse.with_tunnel(tunnel)` heard from both sides: it waits no more.
    pub fn unwait(&mut self, coarse: &FlowKey, tunnel: u64) {
        let Some(slots) = self.waiting.get_mut(coarse) else {
            return;
        };
        // Keep the order: the oldest waiting flow is tried first.
        if let Some(i) = slots.iter().position(|&t| t == tunnel)
            && let Some(rest) = slots.get_mut(i..)
        {
            rest.rotate_left(1);
            if let Some(last) = rest.last_mut() {
                *last = 0;
            }
        }
        if slots.iter().all(|&t| t == 0) {
            self.waiting.remove(coarse);
        }
    }

    /// Packets keyed `other` belong to the flow keyed `coarse.with_tunnel(tunnel)` from now on.
    pub fn join(&mut self, coarse: &FlowKey, tunnel: u64, other: FlowKey) {
        self.unwait(coarse, tunnel);
        self.joined.insert(other, tunnel);
    }

    /// The flow keyed `coarse.with_tunnel(tunnel)` ended; `other` is the key of the
    /// direction that joined it, if one did.
    pub fn forget(&mut self, coarse: &FlowKey, tunnel: u64, other: Option<FlowKey>) {
        self.unwait(coarse, tunnel);
        if let Some(k) = other {
            self.joined.remove(&k);
        }
    }

    /// Bytes charged for what is held.
    pub fn bytes(&self) -> usize {
        (self.waiting.len() + self.joined.len()).saturating_mul(JOIN_BYTES)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_give_one_key_and_tunnels_keep_flows_apart() {
        let x = (IpAddr::from([10, 0, 0, 1]), 40000);
        let y = (IpAddr::from([10, 0, 0, 2]), 443);
        assert_eq!(FlowKey::new(x, y, 7), FlowKey::new(y, x, 7));
        assert_ne!(FlowKey::new(x, y, 7), FlowKey::new(x, y, 8));
    }

    #[test]
    fn waiting_joining_and_forgetting() {
        let x = (IpAddr::from([10, 0, 0, 1]), 40000);
        let y = (IpAddr::from([10, 0, 0, 2]), 443);
        let coarse = FlowKey::new(x, y, 5);
        let mut j = Joins::default();
        assert_eq!(j.bytes(), 0);
        // Two tenants' flows wait under one coarse key, oldest first; more than the
        // room allows are not held.
        for t in [11, 21, 31, 41, 51] {
            j.wait(coarse, t);
        }
        j.wait(coarse, 21);
        let keys: Vec<u64> = j.waiting(&coarse).map(|k| k.tunnel).collect();
        assert_eq!(keys, vec![11, 21, 31, 41]);
        // The reply of the first, keyed by its own tunnel id, joins it.
        let reply = FlowKey::new(y, x, 12);
        assert_eq!(j.resolve(reply), reply);
        j.join(&coarse, 11, reply);
        assert_eq!(j.resolve(reply), coarse.with_tunnel(11));
        let keys: Vec<u64> = j.waiting(&coarse).map(|k| k.tunnel).collect();
        assert_eq!(keys, vec![21, 31, 41]);
        assert_eq!(j.bytes(), 2 * JOIN_BYTES);
        // Untunnelled keys are never looked up.
        let bare = FlowKey::new(x, y, 0);
        assert_eq!(j.resolve(bare), bare);
        j.forget(&coarse, 11, Some(reply));
        assert_eq!(j.resolve(reply), reply);
        for t in [21, 31, 41] {
            j.unwait(&coarse, t);
        }
        assert_eq!(j.waiting(&coarse).count(), 0);
        assert_eq!(j.bytes(), 0);
    }
}
