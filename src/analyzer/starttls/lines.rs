//! A bounded line splitter shared by the text protocols, and small helpers for them.

use super::protocol::{Cx, Protocol, Step};
use crate::record::{Dir, PerDir};
use std::collections::VecDeque;

/// Longest line kept; the rest of a longer line is dropped (the line still ends at its newline).
pub const MAX_LINE: usize = 4096;

/// Splits one direction's bytes into lines (LF or CRLF), across segments.
#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    /// `buf` holds a line already returned: clear it on the next call.
    returned: bool,
}

impl Lines {
    /// Returns the next complete line (without its CR LF) and how many bytes of
    /// `data` were used to end it; `None` when `data` ran out mid-line (it is kept).
    pub fn next<'a>(&'a mut self, data: &'a [u8]) -> Option<(&'a [u8], usize)> {
        if self.returned {
            self.buf.clear();
            self.returned = false;
        }
        let Some(nl) = data.iter().position(|&b| b == b'\n') else {
            let room = MAX_LINE.saturating_sub(self.buf.len());
            self.buf
                .extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
            return None;
        };
        let head = data.get(..nl).unwrap_or_default();
        let line: &[u8] = if self.buf.is_empty() {
            head
        } else {
            let room = MAX_LINE.saturating_sub(self.buf.len());
            self.buf
                .extend_from_slice(head.get(..room.min(head.len())).unwrap_or_default());
            self.returned = true;
            &self.buf
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Some((line, nl + 1))
    }
}

/// Longest user name kept from a cleartext login (the rest is cut off).
pub const MAX_USER: usize = 256;

/// A user name as kept for a finding: at most [`MAX_USER`] bytes of it.
pub fn kept_user(name: &[u8]) -> Vec<u8> {
    name.get(..MAX_USER).unwrap_or(name).to_vec()
}

/// What one line does to a line-based protocol's state.
pub type LineFn<S> = fn(&mut S, &[u8], &mut Cx<'_>) -> Step;

/// The rules of a line-based protocol (SMTP, IMAP, POP3, FTP, NNTP, Sieve, IRC):
/// its state, and what a client line and a server line do to it.
pub trait LineRules: std::fmt::Debug + Default + Send {
    /// The application every line shows, or `None` when the rules name it
    /// themselves (SMTP or LMTP, from the greeting).
    const APP: Option<&'static str>;
    const CLIENT: LineFn<Self>;
    const SERVER: LineFn<Self>;
}

/// A line-based protocol: each direction cut into lines (see [`Lines`]), every
/// line handed to the rules in order.
#[derive(Debug, Default)]
pub struct LineProtocol<R> {
    lines: PerDir<Lines>,
    rules: R,
}

impl<R: LineRules> Protocol for LineProtocol<R> {
    /// Hands every complete line to the rules, turning the first event into a
    /// [`Step`] whose `at` is the end of the line that caused it.
    fn on_data(&mut self, dir: Dir, data: &[u8], cx: &mut Cx<'_>) -> Step {
        let on_line = match dir {
            Dir::Client => R::CLIENT,
            Dir::Server => R::SERVER,
        };
        let mut used = 0;
        while let Some(rest) = data.get(used..).filter(|r| !r.is_empty()) {
            let Some((line, n)) = self.lines.get_mut(dir).next(rest) else {
                return Step::Continue;
            };
            used += n;
            if let Some(app) = R::APP {
                cx.app(app);
            }
            match on_line(&mut self.rules, line, cx) {
                Step::Continue => {}
                Step::Stop => return Step::Stop,
                Step::Requested { .. } => return Step::Requested { at: used },
                Step::Accepted { .. } => return Step::Accepted { at: used },
                Step::Refused { .. } => return Step::Refused { at: used },
                Step::Upgrade { .. } => return Step::Upgrade { at: used },
                Step::Tunnel { .. } => return Step::Tunnel { at: used },
            }
        }
        Step::Continue
    }
}

/// ASCII case-insensitive prefix test.
pub fn starts_with_ci(line: &[u8], prefix: &[u8]) -> bool {
    line.len() >= prefix.len()
        && line
            .iter()
            .zip(prefix)
            .all(|(a, b)| a.eq_ignore_ascii_case(b))
}

/// ASCII case-insensitive equality after trimming spaces.
pub fn eq_ci(line: &[u8], word: &[u8]) -> bool {
    trim(line).eq_ignore_ascii_case(word)
}

/// Trims ASCII whitespace at both ends.
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest
        } else {
            break;
        }
    }
    s
}

/// Case-insensitive search for `needle` in `hay`.
pub fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The first line of `b` if it is complete.
pub fn first_line(b: &[u8]) -> Option<&[u8]> {
    let nl = b.iter().position(|&c| c == b'\n')?;
    let l = b.get(..nl)?;
    Some(l.strip_suffix(b"\r").unwrap_or(l))
}

/// Decodes standard base64 (for pulling a user name out of a SASL PLAIN response);
/// `None` on anything malformed. Capped at 1 KiB of output.
pub fn base64(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in trim(s) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            if out.len() > 1024 {
                return None;
            }
        }
    }
    Some(out)
}

/// The space-separated words of a line.
pub fn words(l: &[u8]) -> impl Iterator<Item = &[u8]> {
    l.split(|&b| b == b' ' || b == b'\t')
        .filter(|w| !w.is_empty())
}

/// Commands remembered while their replies are awaited; a client pipelining
/// more is not tracked further.
pub const MAX_PENDING: usize = 64;

/// Queues a client command for the reply that will answer it; the upgrade
/// command (`upgrade`) is reported as requested, ending at this line.
pub fn enqueue<C: Copy + PartialEq>(
    pending: &mut VecDeque<C>,
    cmd: C,
    upgrade: C,
    line: &[u8],
    cx: &mut Cx<'_>,
) -> Step {
    if pending.len() < MAX_PENDING {
        pending.push_back(cmd);
    }
    if cmd == upgrade {
        cx.command(trim(line));
        return Step::Requested { at: 0 };
    }
    Step::Continue
}

/// A capability `keyword` of a server's list: the upgrade offered when it is one
/// of `upgrades` (all of one length), its stripping noted when it is that
/// length of `X`s. Returns whether it offered the upgrade.
pub fn capability(keyword: &[u8], upgrades: &[&[u8]], line: &[u8], cx: &mut Cx<'_>) -> bool {
    if upgrades.iter().any(|u| keyword.eq_ignore_ascii_case(u)) {
        cx.offered();
        return true;
    }
    if upgrades.first().is_some_and(|u| masked(keyword, u.len())) {
        cx.stripped(line);
    }
    false
}

/// A capability keyword of `len` bytes overwritten with `X` by a middlebox that
/// strips the upgrade (Cisco-style `XXXXXXXX`; the last byte may survive as `A`).
pub fn masked(word: &[u8], len: usize) -> bool {
    word.len() == len
        && len > 1
        && word.iter().take(len - 1).all(|&b| b == b'X' || b == b'x')
        && word
            .last()
            .is_some_and(|&b| matches!(b, b'X' | b'x' | b'A'))
}

/// The length of a `{n}` or `{n+}` literal announced at the end of a line (IMAP, ManageSieve).
pub fn literal_len(l: &[u8]) -> Option<u64> {
    let body = l.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = body.get(open + 1..)?;
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The authentication identity of a SASL PLAIN message (`authzid NUL authcid NUL passwd`).
/// Only the user name is returned; the password is never looked at.
pub fn sasl_plain_user(decoded: &[u8]) -> Option<Vec<u8>> {
    let mut parts = decoded.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let authcid = parts.next()?;
    Some(authcid.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_across_segments_and_line_endings() {
        let mut l = Lines::default();
        assert_eq!(l.next(b"220 mail ES"), None);
        assert_eq!(l.next(b"MTP\r\n250"), Some((&b"220 mail ESMTP"[..], 5)));
        assert_eq!(l.next(b"250 ok\nrest"), Some((&b"250 ok"[..], 7)));
        assert_eq!(l.next(b"rest"), None);
    }

    #[test]
    fn long_lines_are_capped() {
        let mut l = Lines::default();
        let big = vec![b'a'; MAX_LINE * 2];
        assert_eq!(l.next(&big), None);
        let got = l.next(b"\n").map(|(line, n)| (line.len(), n));
        assert_eq!(got, Some((MAX_LINE, 1)));
    }

    #[test]
    fn base64_and_sasl_plain() {
        // printf '\0alice\0S3cretPassw0rd!' | base64
        let d = base64(b"AGFsaWNlAFMzY3JldFBhc3N3MHJkIQ==").unwrap_or_default();
        assert_eq!(sasl_plain_user(&d), Some(b"alice".to_vec()));
        assert_eq!(base64(b"a*b"), None);
    }

    #[test]
    fn helpers() {
        assert!(starts_with_ci(b"ehlo x", b"EHLO"));
        assert!(eq_ci(b" starttls ", b"STARTTLS"));
        assert!(contains_ci(b"220 x ESMTP", b"esmtp"));
        assert_eq!(first_line(b"a\r\nb"), Some(&b"a"[..]));
        assert_eq!(first_line(b"a"), None);
        assert_eq!(words(b" a  b\tc ").collect::<Vec<_>>(), [b"a", b"b", b"c"]);
        assert!(masked(b"XXXXXXXA", 8) && masked(b"xxxx", 4));
        assert!(!masked(b"STARTTLS", 8) && !masked(b"XXXX", 8));
        assert_eq!(literal_len(b"a LOGIN {5}"), Some(5));
        assert_eq!(literal_len(b"a LOGIN {12+}"), Some(12));
        assert_eq!(literal_len(b"a LOGIN {}"), None);
        assert_eq!(literal_len(b"a LOGIN x}"), None);
    }
}
