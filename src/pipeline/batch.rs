//! Batches: the segments and datagrams the reader hands a worker, with their
//! payloads held once per batch, so one cache line crosses cores per batch.

use crate::capture::Buffer;
use crate::decode::path::{DecodeNotes, Flags, TunnelPath};
use crate::flow::tcp::Stamp;
use crate::time::Timestamp;
use std::net::IpAddr;
use std::ops::Range;

/// A segment or datagram waiting in a batch: its header fields, with its
/// payload and tunnel path held by the batch. About half the size of a
/// [`Segment`]: the reader writes, and a worker on another core reads, one
/// per packet.
pub(super) struct Queued {
    pub(super) at: Stamp,
    pub(super) head: Head,
    /// Index in [`Batch::tunnels`], or [`NO_TUNNEL`].
    pub(super) tunnel: u32,
    pub(super) payload: Held,
}

/// The fields of a [`Segment`] or [`Datagram`] other than payload and tunnel path.
#[derive(Clone, Copy)]
pub(super) struct Head {
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    pub(super) sport: u16,
    pub(super) dport: u16,
    pub(super) seq: u32,
    pub(super) ack: u32,
    pub(super) flags: Flags,
    pub(super) udp: bool,
    pub(super) truncated: bool,
    pub(super) notes: DecodeNotes,
}

// One per packet crosses between cores: keep it within 96 bytes.
const _: () = assert!(std::mem::size_of::<Item>() <= 96);

pub(super) const NO_TUNNEL: u32 = u32::MAX;
/// [`Held::chunk`] of a payload copied into [`Batch::bytes`].
pub(super) const COPIED: u32 = u32::MAX;

/// Where the payload of a queued segment lies: bytes `start..end` of one of
/// the batch's shared read buffers (not copied), or of its byte buffer
/// (live capture, reassembled fragments) when `chunk` is [`COPIED`].
#[derive(Clone, Copy)]
pub(super) struct Held {
    pub(super) chunk: u32,
    pub(super) start: u32,
    pub(super) end: u32,
}

impl Held {
    const EMPTY: Held = Held {
        chunk: COPIED,
        start: 0,
        end: 0,
    };

    pub(super) fn new(chunk: usize, range: Range<usize>) -> Option<Held> {
        Some(Held {
            chunk: u32::try_from(chunk).ok()?,
            start: u32::try_from(range.start).ok()?,
            end: u32::try_from(range.end).ok()?,
        })
    }

    pub(super) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Where `part` lies in `chunk`, if it does.
pub(super) fn within(chunk: &Buffer, part: &[u8]) -> Option<Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(chunk.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= chunk.len()).then_some(start..end)
}

pub(super) enum Item {
    Unit(Queued),
    /// The clock calls for a sweep at this position.
    Sweep {
        now: Timestamp,
        pos: u64,
    },
}

/// Packets for one worker: the read buffers their payloads lie in, and one buffer
/// for payloads that had to be copied, reused from batch to batch.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) items: Vec<Item>,
    pub(super) chunks: Vec<Buffer>,
    pub(super) bytes: Vec<u8>,
    /// Tunnel paths of the items that came through one.
    pub(super) tunnels: Vec<TunnelPath>,
    /// Every item up to this position, for this worker, is in this batch or an earlier one.
    pub(super) upto: u64,
    /// Payload bytes held, copied or not: what the batch keeps alive.
    pub(super) held: usize,
}

impl Batch {
    /// Keeps `payload` for the worker: by reference to the read buffer it lies
    /// in when there is one, else as a copy.
    pub(super) fn hold(&mut self, payload: &[u8], chunk: Option<&Buffer>) -> Held {
        if payload.is_empty() {
            return Held::EMPTY;
        }
        self.held += payload.len();
        if let Some(chunk) = chunk
            && let Some(range) = within(chunk, payload)
        {
            let same = self.chunks.last().is_some_and(|c| Buffer::ptr_eq(c, chunk));
            if !same {
                self.chunks.push(Buffer::clone(chunk));
            }
            if let Some(held) = Held::new(self.chunks.len() - 1, range) {
                return held;
            }
        }
        let start = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        Held::new(COPIED as usize, start..self.bytes.len()).unwrap_or(Held::EMPTY)
    }

    pub(super) fn hold_tunnel(&mut self, tunnel: &TunnelPath) -> u32 {
        if tunnel.is_empty() {
            return NO_TUNNEL;
        }
        self.tunnels.push(tunnel.clone());
        u32::try_from(self.tunnels.len() - 1).unwrap_or(NO_TUNNEL)
    }

    pub(super) fn take_tunnel(&mut self, i: u32) -> TunnelPath {
        if i == NO_TUNNEL {
            return TunnelPath::default();
        }
        self.tunnels
            .get_mut(i as usize)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    pub(super) fn payload(&self, p: Held) -> &[u8] {
        if p.chunk == COPIED {
            return self.bytes.get(p.range()).unwrap_or_default();
        }
        self.chunks
            .get(p.chunk as usize)
            .and_then(|c| c.get(p.range()))
            .unwrap_or_default()
    }

    /// Empty, its buffers kept for the next batch.
    pub(super) fn clear(&mut self) {
        self.items.clear();
        self.chunks.clear();
        self.bytes.clear();
        self.tunnels.clear();
        self.held = 0;
    }
}
