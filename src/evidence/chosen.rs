//! The flows a run chose for a second reading of its inputs: to write their
//! packets out (`--write-flows`), to transcribe them (`--transcript`), or both.
//!
//! A flow's packets are those of its key (transport, endpoints, tunnel path)
//! between its first and its last packet: a flow table holds one flow per key at
//! a time, so the span tells a flow from an earlier or later one on the same
//! endpoints. Each chosen flow costs its key and span; a transcribed one also
//! keeps its record until the second reading.

use super::transcript::Transcriber;
use crate::decode::path::Decoded;
use crate::flow::key::FlowKey;
use crate::record::{FlowRecord, Transport};
use std::collections::HashMap;

/// Where a chosen flow's packets lie and what to do with them.
#[derive(Debug)]
pub struct Span {
    /// Packet ordinals (counted over every input, as the flow engine counts them)
    /// of the flow's first and last packet.
    pub first: u64,
    pub last: u64,
    /// Write its packets to `--write-flows`.
    pub write: bool,
    /// Its transcript, while its packets come.
    pub transcript: Option<Box<Transcriber>>,
}

/// The chosen flows, by key.
#[derive(Debug, Default)]
pub struct Chosen {
    by_key: HashMap<(Transport, FlowKey), Vec<Span>>,
    /// (first, last) of every span, to skip quickly what no chosen flow covers.
    spans: Vec<(u64, u64)>,
    /// Flow ids asked for by `--transcript ID` and found.
    pub found: Vec<u64>,
}

/// The key a flow's packets carry.
pub fn key_of(rec: &FlowRecord) -> (Transport, FlowKey) {
    let c = (rec.client.ip, rec.client.port);
    let s = (rec.server.ip, rec.server.port);
    (rec.transport, FlowKey::new(c, s, rec.tunnel.identity()))
}

/// The key of a decoded TCP segment or UDP datagram, as the flow tables key it.
pub fn key_of_packet(d: &Decoded<'_>) -> Option<(Transport, FlowKey)> {
    match d {
        Decoded::Tcp(s) => Some((
            Transport::Tcp,
            FlowKey::new((s.src, s.sport), (s.dst, s.dport), s.tunnel.identity()),
        )),
        Decoded::Udp(u) => Some((
            Transport::Udp,
            FlowKey::new((u.src, u.sport), (u.dst, u.dport), u.tunnel.identity()),
        )),
        _ => None,
    }
}

impl Chosen {
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Chooses `rec`, whose first and last packets are the ordinals `first` and
    /// `last`: to write its packets out, to transcribe it, or both.
    pub fn add(
        &mut self,
        rec: &FlowRecord,
        (first, last): (u64, u64),
        write: bool,
        transcript: Option<Transcriber>,
    ) {
        if !write && transcript.is_none() {
            return;
        }
        let span = Span {
            first,
            last,
            write,
            transcript: transcript.map(Box::new),
        };
        self.by_key.entry(key_of(rec)).or_default().push(span);
        self.spans.push((first, last));
    }

    /// The chosen flow with key `key` that packet `ordinal` belongs to.
    pub fn find(&mut self, key: &(Transport, FlowKey), ordinal: u64) -> Option<&mut Span> {
        self.by_key
            .get_mut(key)?
            .iter_mut()
            .find(|s| s.first <= ordinal && ordinal <= s.last)
    }

    /// The transcripts not finished yet.
    pub fn take_transcripts(&mut self) -> Vec<Transcriber> {
        let mut out: Vec<(u64, Transcriber)> = Vec::new();
        for spans in self.by_key.values_mut() {
            for s in spans {
                if let Some(t) = s.transcript.take() {
                    out.push((s.first, *t));
                }
            }
        }
        out.sort_by_key(|(first, _)| *first);
        out.into_iter().map(|(_, t)| t).collect()
    }

    /// The spans, sorted by first packet (see [`Cover`]).
    pub fn cover(&self) -> Cover {
        let mut spans = self.spans.clone();
        spans.sort_unstable();
        Cover {
            spans,
            next: 0,
            reach: 0,
        }
    }
}

/// Answers, for increasing ordinals, whether any chosen flow's span covers it.
#[derive(Debug)]
pub struct Cover {
    spans: Vec<(u64, u64)>,
    next: usize,
    /// The latest last packet of the spans begun so far.
    reach: u64,
}

impl Cover {
    /// Whether packet `ordinal` (never smaller than the one asked before) may
    /// belong to a chosen flow.
    pub fn covers(&mut self, ordinal: u64) -> bool {
        while let Some(&(first, last)) = self.spans.get(self.next) {
            if first > ordinal {
                break;
            }
            self.reach = self.reach.max(last);
            self.next += 1;
        }
        self.reach >= ordinal
    }

    /// Nothing after `ordinal` is covered.
    pub fn past_all(&self, ordinal: u64) -> bool {
        self.next >= self.spans.len() && self.reach < ordinal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cover_says_which_ordinals_some_span_holds() {
        let mut c = Cover {
            spans: vec![(3, 5), (4, 9), (20, 20)],
            next: 0,
            reach: 0,
        };
        let covered: Vec<u64> = (1..=25).filter(|&o| c.covers(o)).collect();
        assert_eq!(covered, [3, 4, 5, 6, 7, 8, 9, 20]);
        assert!(c.past_all(21));
    }
}
