//! Message framing shared by the binary protocols (PostgreSQL, MySQL, LDAP, RDP,
//! TDS, SOCKS): a per-direction buffer that hands over whole messages however the
//! bytes were cut into segments, keeps only the first bytes of messages too long
//! to hold, and says how many bytes of the current slice a message used, so an
//! event's `at` lands exactly at the end of its message.

use super::protocol::Step;
use std::borrow::Cow;

/// Result of an incremental parse of the start of a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse<T> {
    /// Could be valid; more bytes are needed to tell.
    NeedMore,
    /// Not this format.
    Invalid,
    /// Parsed: the value, and the length of the whole message it starts (for a
    /// framing header), or the bytes it covers (for a field).
    Done(T, usize),
}

/// What [`Framer::next`] found at the start of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a, T> {
    /// A whole message (or the first `max` bytes of a longer one, `cut`), and how
    /// many bytes of the given slice were used to complete it.
    Msg {
        hdr: T,
        bytes: Cow<'a, [u8]>,
        cut: bool,
        used: usize,
    },
    /// Every byte was used (kept, or skipped as the tail of a cut message); no message is complete.
    More,
    /// The bytes do not frame. `held` are the bytes kept from earlier calls that
    /// belong in front of the given slice (for a caller that hands them to
    /// another parser, such as TLS after TDS).
    Invalid { held: Vec<u8> },
}

/// One direction's framing state.
#[derive(Debug, Default)]
pub struct Framer {
    /// The start of a message split across calls (at most `max` bytes).
    held: Vec<u8>,
    /// Bytes of a cut message still to be skipped.
    skip: usize,
}

impl Framer {
    /// The next message at the start of `data` (after bytes held from earlier
    /// calls). `frame` parses a message header: `Done(hdr, total_len)`.
    /// Messages longer than `max` are handed over cut to their first `max` bytes
    /// and the rest is skipped. A header still incomplete after `max` bytes is invalid.
    pub fn next<'a, T>(
        &mut self,
        data: &'a [u8],
        max: usize,
        frame: impl Fn(&[u8]) -> Parse<T>,
    ) -> Next<'a, T> {
        let max = max.max(1);
        let skipped = self.skip.min(data.len());
        self.skip -= skipped;
        let Some(rest) = data.get(skipped..).filter(|r| !r.is_empty()) else {
            return Next::More;
        };
        if self.held.is_empty() {
            return match frame(rest) {
                Parse::Invalid => Next::Invalid { held: Vec::new() },
                Parse::NeedMore if rest.len() >= max => Next::Invalid { held: Vec::new() },
                Parse::NeedMore => {
                    self.held.extend_from_slice(rest);
                    Next::More
                }
                Parse::Done(hdr, len) => {
                    let want = len.min(max);
                    match rest.get(..want) {
                        Some(bytes) => {
                            self.skip = len - want;
                            Next::Msg {
                                hdr,
                                bytes: Cow::Borrowed(bytes),
                                cut: len > want,
                                used: skipped + want,
                            }
                        }
                        None => {
                            self.held.extend_from_slice(rest);
                            Next::More
                        }
                    }
                }
            };
        }
        let old = self.held.len();
        let take = rest.len().min(max.saturating_sub(old));
        self.held
            .extend_from_slice(rest.get(..take).unwrap_or_default());
        match frame(&self.held) {
            Parse::Invalid => self.invalid(old),
            Parse::NeedMore if self.held.len() >= max => self.invalid(old),
            Parse::NeedMore => Next::More,
            Parse::Done(hdr, len) => {
                let want = len.min(max);
                if self.held.len() < want {
                    return Next::More;
                }
                self.held.truncate(want);
                self.skip = len - want;
                Next::Msg {
                    hdr,
                    bytes: Cow::Owned(std::mem::take(&mut self.held)),
                    cut: len > want,
                    used: skipped + want.saturating_sub(old),
                }
            }
        }
    }

    fn invalid<T>(&mut self, old: usize) -> Next<'static, T> {
        let mut held = std::mem::take(&mut self.held);
        held.truncate(old);
        Next::Invalid { held }
    }
}

/// The same event, covering the first `at` bytes of the slice.
pub fn with_at(step: Step, at: usize) -> Step {
    match step {
        Step::Requested { .. } => Step::Requested { at },
        Step::Accepted { .. } => Step::Accepted { at },
        Step::Refused { .. } => Step::Refused { at },
        Step::Upgrade { .. } => Step::Upgrade { at },
        Step::Tunnel { .. } => Step::Tunnel { at },
        Step::Continue | Step::Stop => step,
    }
}

/// Big-endian integer of the `n` bytes at `at` (n <= 4).
pub fn be(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(n)?)?;
    Some(s.iter().fold(0u32, |v, &x| v << 8 | u32::from(x)))
}

/// Little-endian integer of the `n` bytes at `at` (n <= 4).
pub fn le(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(n)?)?;
    Some(s.iter().rev().fold(0u32, |v, &x| v << 8 | u32::from(x)))
}

/// The NUL-terminated string at `at`, without its NUL, and the offset after the NUL.
pub fn cstr(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = b.get(at..)?;
    let nul = rest.iter().position(|&c| c == 0)?;
    Some((rest.get(..nul)?, at + nul + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-byte big-endian length (counting itself) then the body.
    fn two_byte(b: &[u8]) -> Parse<()> {
        match be(b, 0, 2) {
            None => Parse::NeedMore,
            Some(n) if n < 2 => Parse::Invalid,
            Some(n) => Parse::Done((), n as usize),
        }
    }

    fn collect(chunks: &[&[u8]], max: usize) -> (Vec<(Vec<u8>, bool)>, bool) {
        let mut f = Framer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut pos = 0;
            while let Some(rest) = chunk.get(pos..).filter(|r| !r.is_empty()) {
                match f.next(rest, max, two_byte) {
                    Next::Msg {
                        bytes, cut, used, ..
                    } => {
                        assert!(used > 0 && used <= rest.len());
                        pos += used;
                        out.push((bytes.to_vec(), cut));
                    }
                    Next::More => break,
                    Next::Invalid { .. } => return (out, true),
                }
            }
        }
        (out, false)
    }

    #[test]
    fn whole_messages_however_split() {
        let stream = [0, 3, b'a', 0, 4, b'b', b'c', 0, 2];
        let want = vec![
            (vec![0, 3, b'a'], false),
            (vec![0, 4, b'b', b'c'], false),
            (vec![0, 2], false),
        ];
        assert_eq!(collect(&[&stream], 64), (want.clone(), false));
        for at in 1..stream.len() {
            let (a, b) = stream.split_at(at);
            assert_eq!(collect(&[a, b], 64), (want.clone(), false), "split at {at}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(collect(&bytes, 64), (want, false));
    }

    #[test]
    fn long_messages_are_cut_and_skipped() {
        let mut stream = vec![0, 10, 1, 2, 3, 4, 5, 6, 7, 8];
        stream.extend([0, 3, 9]);
        let want = vec![(vec![0, 10, 1, 2], true), (vec![0, 3, 9], false)];
        for at in 1..stream.len() {
            let (a, b) = stream.split_at(at);
            assert_eq!(collect(&[a, b], 4), (want.clone(), false), "split at {at}");
        }
    }

    #[test]
    fn invalid_header_reports_the_held_bytes() {
        let mut f = Framer::default();
        assert_eq!(f.next(&[0], 64, two_byte), Next::More);
        assert_eq!(
            f.next(&[1, 7], 64, two_byte),
            Next::Invalid { held: vec![0] }
        );
        let mut f = Framer::default();
        assert_eq!(
            f.next(&[0, 1], 64, two_byte),
            Next::Invalid { held: vec![] }
        );
    }

    #[test]
    fn byte_helpers() {
        assert_eq!(be(&[1, 2, 3], 1, 2), Some(0x0203));
        assert_eq!(le(&[1, 2, 3], 0, 3), Some(0x030201));
        assert_eq!(be(&[1], 0, 2), None);
        assert_eq!(cstr(b"ab\0cd\0", 3), Some((&b"cd"[..], 6)));
        assert_eq!(cstr(b"ab", 0), None);
    }

    #[test]
    fn events_take_the_offset() {
        assert_eq!(
            with_at(Step::Accepted { at: 0 }, 7),
            Step::Accepted { at: 7 }
        );
        assert_eq!(with_at(Step::Stop, 7), Step::Stop);
    }
}
