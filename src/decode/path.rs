//! What decoding produces, shared by the flow tables and the records: TCP segments and
//! UDP datagrams with their tunnel path and notes, and why a packet could not be decoded.

use serde::Serialize;
use std::hash::Hasher;
use std::net::IpAddr;

/// TCP flags this tool looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
}

/// Kinds of encapsulation followed. Stable strings; see the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TunnelKind {
    /// GRE (RFC 2784/2890), incl. MPLS over GRE and Aruba's 802.11 over GRE; `id` is the key.
    Gre,
    /// GRE in UDP (RFC 8086, port 4754); `id` is the GRE key.
    GreUdp,
    /// PPTP's enhanced GRE (RFC 2637) carrying PPP; `id` is the call ID of the flow's first packet.
    Pptp,
    /// ERSPAN type I, II or III; `id` is the session.
    Erspan,
    /// VXLAN; `id` is the VNI.
    Vxlan,
    /// Geneve; `id` is the VNI.
    Geneve,
    /// GTP-U v1; `id` is the TEID of the flow's first packet.
    Gtpu,
    /// IP in IP: 4in4, 6in4, 4in6, 6in6 (IP protocols 4 and 41).
    Ipip,
    /// Teredo (IPv6 in UDP 3544).
    Teredo,
    /// AYIYA (IP in UDP 5072).
    Ayiya,
}

impl TunnelKind {
    pub const ALL: [TunnelKind; 10] = [
        TunnelKind::Gre,
        TunnelKind::GreUdp,
        TunnelKind::Pptp,
        TunnelKind::Erspan,
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::Gtpu,
        TunnelKind::Ipip,
        TunnelKind::Teredo,
        TunnelKind::Ayiya,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Gre => "gre",
            TunnelKind::GreUdp => "gre-udp",
            TunnelKind::Pptp => "pptp",
            TunnelKind::Erspan => "erspan",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Gtpu => "gtpu",
            TunnelKind::Ipip => "ipip",
            TunnelKind::Teredo => "teredo",
            TunnelKind::Ayiya => "ayiya",
        }
    }

    /// Whether `id` names the tunnel the same way in both directions. A GTP-U
    /// TEID and a PPTP call ID name the receiving end, so the two directions of
    /// one flow carry different values: they cannot tell flows apart.
    pub fn id_is_symmetric(self) -> bool {
        !matches!(self, TunnelKind::Gtpu | TunnelKind::Pptp)
    }
}

/// One encapsulation: its kind, the outer addresses, and the tunnel's identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Encap {
    #[serde(rename = "type")]
    pub kind: TunnelKind,
    pub outer_src: IpAddr,
    pub outer_dst: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
}

/// The tunnels a packet came through, outermost first. The first hop is held
/// inline, so untunnelled and singly tunnelled packets allocate nothing.
///
/// Invariant: `rest` is empty while `first` is `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TunnelPath {
    first: Option<Encap>,
    rest: Vec<Encap>,
}

impl Serialize for TunnelPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl TunnelPath {
    pub fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    pub fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    /// Bytes the path holds on the heap (its hops after the first).
    pub fn heap_bytes(&self) -> usize {
        self.rest.capacity() * std::mem::size_of::<Encap>()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Encap> + '_ {
        self.first.iter().chain(self.rest.iter())
    }

    pub fn push(&mut self, e: Encap) {
        if self.first.is_none() {
            self.first = Some(e);
        } else {
            self.rest.push(e);
        }
    }

    pub fn truncate(&mut self, n: usize) {
        if n == 0 {
            self.first = None;
            self.rest.clear();
        } else {
            self.rest.truncate(n - 1);
        }
    }

    /// The identity of the path for flow keys: 0 when empty, else a hash of each
    /// hop's kind, outer address pair (in either order) and symmetric identifier.
    /// Both directions of a flow give the same value.
    pub fn identity(&self) -> u64 {
        if self.is_empty() {
            return 0;
        }
        // FxHash over whole words: this runs for every tunnelled packet. Not
        // collision-resistant, and it need not be: merging two flows by a crafted
        // collision also needs the same inner 4-tuple, which an attacker able to
        // send it could as well send inside the victim's own tunnel.
        let mut h = rustc_hash::FxHasher::default();
        for e in self.iter() {
            let (a, b) = (addr_bits(e.outer_src), addr_bits(e.outer_dst));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let id = match e.id {
                Some(v) if e.kind.id_is_symmetric() => u64::from(v) | 1 << 32,
                _ => 0,
            };
            let family =
                u64::from(e.outer_src.is_ipv6()) << 8 | u64::from(e.outer_dst.is_ipv6()) << 9;
            h.write_u64(e.kind as u64 | family);
            h.write_u128(lo);
            h.write_u128(hi);
            h.write_u64(id);
        }
        h.finish() | 1
    }

    /// The identity of the path's shape alone: the kinds of its hops, outermost first (0
    /// when empty). The two directions of a flow give the same value even when their
    /// tunnel ids or outer addresses differ (Open vSwitch gives each direction its own
    /// VNI or key; 6to4 replies come from another relay).
    pub fn kinds_identity(&self) -> u64 {
        if self.is_empty() {
            return 0;
        }
        let mut h = rustc_hash::FxHasher::default();
        for e in self.iter() {
            h.write_u64(e.kind as u64);
        }
        h.finish() | 1
    }

    /// The same path seen from the other direction (outer addresses swapped).
    pub fn reversed(&self) -> TunnelPath {
        let flip = |e: &Encap| Encap {
            outer_src: e.outer_dst,
            outer_dst: e.outer_src,
            ..*e
        };
        TunnelPath {
            first: self.first.as_ref().map(flip),
            rest: self.rest.iter().map(flip).collect(),
        }
    }
}

/// An address as 128 bits (the family is hashed beside it).
pub fn addr_bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// Anomalies of the IP layer to be noted on the flow a packet belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeNotes {
    /// The packet was reassembled from fragments; what they showed.
    pub fragments: Option<FragNotes>,
}

/// A decoded TCP segment, borrowing its payload from the frame (or the reassembled datagram).
#[derive(Clone, Debug)]
pub struct Segment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: Flags,
    pub payload: &'a [u8],
    /// The capture's snap length cut this segment's payload short.
    pub truncated: bool,
    /// The tunnels the segment came through, outermost first.
    pub tunnel: TunnelPath,
    pub notes: DecodeNotes,
}

/// A decoded UDP datagram, borrowing its payload from the frame (or the reassembled datagram).
#[derive(Clone, Debug)]
pub struct Datagram<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
    /// The capture's snap length cut this datagram's payload short.
    pub truncated: bool,
    /// The tunnels the datagram came through, outermost first.
    pub tunnel: TunnelPath,
    pub notes: DecodeNotes,
}

/// What a frame turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    Tcp(Segment<'a>),
    Udp(Datagram<'a>),
    /// A valid IP packet that is neither TCP nor UDP (ICMP, ...), a non-IP frame, or
    /// tunnel signalling (GTP echo, ...).
    NotTcp,
    /// An IP fragment, held for reassembly (or dropped; see the fragment counters).
    Fragment,
    /// A link type this tool does not decode.
    UnsupportedLink,
    /// Headers that do not parse (the reason is counted in [`DecodeStats`](crate::stats::DecodeStats)).
    Malformed,
}

/// Why a packet could not be decoded. Stable snake_case strings for the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The link-layer header (Ethernet, VLAN, MPLS, PPP, ...) is cut short or bad.
    Link,
    /// The IPv4/IPv6 header (or an extension header) is cut short or bad.
    Ip,
    /// The TCP header is cut short or bad.
    Tcp,
    /// The UDP header is cut short or bad.
    Udp,
    /// A GRE header that does not parse.
    Gre,
    /// GRE carrying a protocol this tool does not follow.
    GreProtocol,
    /// An ERSPAN header that does not parse.
    Erspan,
    /// PPP inside PPTP's GRE that does not parse.
    Ppp,
    /// An 802.11 frame inside Aruba's GRE that does not parse.
    Wlan,
    /// Tunnels nested deeper than [`MAX_TUNNEL_DEPTH`](super::MAX_TUNNEL_DEPTH).
    TunnelDepth,
    /// An IP-in-IP packet whose inner version contradicts the outer protocol number.
    InnerVersion,
}

impl Reason {
    pub const ALL: [Reason; 11] = [
        Reason::Link,
        Reason::Ip,
        Reason::Tcp,
        Reason::Udp,
        Reason::Gre,
        Reason::GreProtocol,
        Reason::Erspan,
        Reason::Ppp,
        Reason::Wlan,
        Reason::TunnelDepth,
        Reason::InnerVersion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Link => "link",
            Reason::Ip => "ip",
            Reason::Tcp => "tcp",
            Reason::Udp => "udp",
            Reason::Gre => "gre",
            Reason::GreProtocol => "gre_protocol",
            Reason::Erspan => "erspan",
            Reason::Ppp => "ppp",
            Reason::Wlan => "wlan",
            Reason::TunnelDepth => "tunnel_depth",
            Reason::InnerVersion => "inner_version",
        }
    }
}

/// What a reassembled datagram's fragments showed, for the flow's notes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragNotes {
    /// Two fragments carried different bytes for the same offsets.
    pub conflicting_overlap: bool,
    /// The first fragment was too short to hold the transport header (RFC 1858).
    pub tiny_first: bool,
    /// A later fragment overlapped the transport header (RFC 1858).
    pub header_overlap: bool,
}
