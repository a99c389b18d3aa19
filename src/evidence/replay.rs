//! The second reading of the inputs: every packet of the chosen flows goes to the
//! `--write-flows` capture and into the flows' transcripts.
//!
//! Packets are counted exactly as the first reading counted them (every packet
//! read, filtered or not), so a chosen flow's span of ordinals picks out its
//! packets again. Every packet is decoded (IP fragments are put together as the
//! first reading did); a fragment is kept until its datagram completes, then
//! written with it when that datagram belongs to a chosen flow, so Wireshark and
//! tlswatch can put it together again. Kept fragments are capped like the
//! decoder's own ([`MAX_HELD_BYTES`]), oldest dropped first.

use super::chosen::{Chosen, Cover, key_of_packet};
use super::pcapng::Writer;
use super::transcript::out::Fref;
use crate::capture::Packet;
use crate::decode::frag::FragKey;
use crate::decode::path::Decoded;
use crate::decode::{Decoder, fragment_key};
use crate::time::Timestamp;
use std::collections::{HashMap, VecDeque};
use std::io::Write;

/// Bytes of IP fragments kept while their datagrams are incomplete.
pub const MAX_HELD_BYTES: usize = 16 << 20;

/// A packet as read, kept.
#[derive(Debug)]
struct Owned {
    linktype: i32,
    ts: Timestamp,
    orig_len: u32,
    data: Vec<u8>,
}

/// Fragments waiting for the rest of their datagram.
#[derive(Debug, Default)]
struct Held {
    by_key: HashMap<FragKey, Vec<Owned>>,
    order: VecDeque<FragKey>,
    bytes: usize,
}

impl Held {
    fn keep(&mut self, key: FragKey, p: &Packet<'_>) {
        self.bytes += p.data.len();
        let list = self.by_key.entry(key).or_default();
        if list.is_empty() {
            self.order.push_back(key);
        }
        list.push(Owned {
            linktype: p.linktype,
            ts: p.ts,
            orig_len: p.orig_len,
            data: p.data.to_vec(),
        });
        while self.bytes > MAX_HELD_BYTES
            && let Some(old) = self.order.pop_front()
        {
            self.take(&old);
        }
    }

    fn take(&mut self, key: &FragKey) -> Vec<Owned> {
        let list = self.by_key.remove(key).unwrap_or_default();
        self.bytes -= list.iter().map(|o| o.data.len()).sum::<usize>();
        list
    }
}

/// What the second reading does, and what it wrote.
pub struct Replay<'a> {
    chosen: Chosen,
    cover: Cover,
    decoder: Decoder,
    held: Held,
    writer: Option<Writer<Box<dyn Write + 'a>>>,
    /// Where finished transcripts go.
    transcripts: &'a mut dyn Write,
    ordinal: u64,
    /// The first error writing either output.
    pub error: Option<std::io::Error>,
}

impl<'a> Replay<'a> {
    /// A second reading for `chosen`, writing packets to `capture` (when given)
    /// and transcripts to `transcripts`.
    pub fn new(
        chosen: Chosen,
        capture: Option<Box<dyn Write + 'a>>,
        transcripts: &'a mut dyn Write,
    ) -> std::io::Result<Self> {
        let writer = capture.map(Writer::new).transpose()?;
        Ok(Replay {
            cover: chosen.cover(),
            chosen,
            decoder: Decoder::default(),
            held: Held::default(),
            writer,
            transcripts,
            ordinal: 0,
            error: None,
        })
    }

    /// A packet the filter left out: it counts, as in the first reading.
    pub fn skip(&mut self) {
        self.ordinal += 1;
    }

    /// The next packet read, from input `input`.
    pub fn packet(&mut self, input: usize, pkt: &Packet<'_>) {
        self.ordinal += 1;
        let covered = self.cover.covers(self.ordinal);
        let decoded = self.decoder.decode(pkt);
        let key = match &decoded {
            Decoded::Fragment => {
                if self.writer.is_some()
                    && let Some(k) = fragment_key(pkt.linktype, pkt.data)
                {
                    self.held.keep(k, pkt);
                }
                return;
            }
            Decoded::Tcp(_) | Decoded::Udp(_) if covered => key_of_packet(&decoded),
            _ => None,
        };
        let reassembled = match &decoded {
            Decoded::Tcp(s) => s.notes.fragments.is_some(),
            Decoded::Udp(d) => d.notes.fragments.is_some(),
            _ => false,
        };
        let frag = if reassembled {
            fragment_key(pkt.linktype, pkt.data)
        } else {
            None
        };
        let span = key.and_then(|k| self.chosen.find(&k, self.ordinal));
        let Some(span) = span else {
            if let Some(k) = frag {
                self.held.take(&k);
            }
            return;
        };
        let at = Fref {
            input,
            number: pkt.number,
        };
        if span.write
            && let Some(w) = self.writer.as_mut()
        {
            let earlier = frag.map(|k| self.held.take(&k)).unwrap_or_default();
            let mut result = Ok(());
            for o in &earlier {
                result = result.and_then(|()| w.packet(o.linktype, o.ts, o.orig_len, &o.data));
            }
            result = result.and_then(|()| w.packet(pkt.linktype, pkt.ts, pkt.orig_len, pkt.data));
            if let Err(e) = result {
                self.error.get_or_insert(e);
            }
        }
        if let Some(t) = span.transcript.as_mut() {
            match &decoded {
                Decoded::Tcp(s) => t.segment(s, at),
                Decoded::Udp(d) => t.datagram((d.src, d.sport), at),
                _ => {}
            }
        }
        if self.ordinal == span.last
            && let Some(t) = span.transcript.take()
        {
            let text = t.finish();
            self.print(&text);
        }
    }

    fn print(&mut self, text: &str) {
        if let Err(e) = writeln!(self.transcripts, "{text}") {
            self.error.get_or_insert(e);
        }
    }

    /// Transcripts of flows whose last packet never came (a capture that changed
    /// between the readings) are printed as they are; the capture is flushed.
    /// Returns the number of packets written.
    pub fn finish(mut self) -> Result<u64, std::io::Error> {
        for t in self.chosen.take_transcripts() {
            let text = t.finish();
            self.print(&text);
        }
        let written = self.writer.as_ref().map_or(0, |w| w.packets);
        if let Some(w) = self.writer.take() {
            w.finish()?;
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(written),
        }
    }
}
