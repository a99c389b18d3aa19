//! The one flow key of both tables, TCP and UDP.

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_give_one_key_and_tunnels_keep_flows_apart() {
        let x = (IpAddr::from([10, 0, 0, 1]), 40000);
        let y = (IpAddr::from([10, 0, 0, 2]), 443);
        assert_eq!(FlowKey::new(x, y, 7), FlowKey::new(y, x, 7));
        assert_ne!(FlowKey::new(x, y, 7), FlowKey::new(x, y, 8));
    }
}
