//! Flows: decoded packets in, finished flow records out.
//!
//! In: a decoded TCP [`Segment`](crate::decode::path::Segment) or UDP
//! [`Datagram`](crate::decode::path::Datagram) with its time. Out: one
//! [`FlowRecord`](crate::record::FlowRecord) per flow when it ends (FIN/RST, idle
//! timeout, eviction, end of input), judged by `assess`.
//!
//! - `tcp`: the TCP flow table, the engine that owns both tables, and the clock;
//! - `udp`: the UDP conversation table;
//! - `key`: the flow key both tables use;
//! - `ending`: the last step of every flow, where its findings are made;
//! - `store`: the keyed, recency-ordered storage both tables use, and its memory budget;
//! - `reassembly`: one TCP direction's segments turned into an ordered byte stream.

pub mod ending;
pub mod key;
pub mod reassembly;
pub mod store;
pub mod tcp;
pub mod udp;
