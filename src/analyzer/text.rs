//! Judging bytes as text: shared by the sniffer and the TLS analyzer.

/// Mostly printable ASCII (text protocols), as opposed to binary or encrypted bytes.
pub fn looks_like_text(b: &[u8]) -> bool {
    let sample = b.get(..b.len().min(256)).unwrap_or_default();
    let printable = sample
        .iter()
        .filter(|&&c| (0x20..0x7f).contains(&c) || c == b'\r' || c == b'\n' || c == b'\t')
        .count();
    !sample.is_empty() && printable * 10 >= sample.len() * 9
}

/// Bytes judged by [`looks_encrypted`]: the first ones of a direction.
const ENTROPY_SAMPLE: usize = 256;
/// Fewest bytes [`looks_encrypted`] judges; below it, any bytes can look random.
const ENTROPY_MIN: usize = 32;

/// High-entropy bytes: encrypted (or compressed) by something that is not TLS.
/// Judged on the first 256 bytes, at least 32 of them, not text, whose byte
/// entropy comes within 15% of the most a sample of that length can have
/// (random samples stay above it; text and binary framing, with their repeated
/// bytes and zeros, stay well below).
pub fn looks_encrypted(b: &[u8]) -> bool {
    let sample = b.get(..b.len().min(ENTROPY_SAMPLE)).unwrap_or_default();
    if sample.len() < ENTROPY_MIN || looks_like_text(sample) {
        return false;
    }
    let mut counts = [0u32; 256];
    for &c in sample {
        if let Some(n) = counts.get_mut(usize::from(c)) {
            *n += 1;
        }
    }
    let n = sample.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy >= 0.85 * n.log2().min(8.0)
}

/// The protocol a server's plaintext banner names, where it is unambiguous.
pub fn banner_protocol(banner: &[u8]) -> Option<&'static str> {
    let line = banner
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let has = |w: &[u8]| line.windows(w.len()).any(|x| x == w);
    if line.starts_with(b"220") && has(b"SMTP") {
        Some("smtp")
    } else if line.starts_with(b"220") && has(b"FTP") {
        Some("ftp")
    } else if line.starts_with(b"* OK") || line.starts_with(b"* PREAUTH") {
        Some("imap")
    } else if line.starts_with(b"+OK") {
        Some("pop3")
    } else if line.starts_with(b"HTTP/1.") {
        Some("http")
    } else if line.starts_with(b"SSH-") {
        Some("ssh")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_name_their_protocol() {
        assert_eq!(
            banner_protocol(b"220 mx.example ESMTP Postfix\r\n"),
            Some("smtp")
        );
        assert_eq!(banner_protocol(b"220 mail ready\r\n"), None);
        assert_eq!(banner_protocol(b"220 ProFTPD FTP server\r\n"), Some("ftp"));
        assert_eq!(banner_protocol(b"* OK IMAP4rev1 ready\r\n"), Some("imap"));
        assert_eq!(banner_protocol(b"+OK POP3 ready\r\n"), Some("pop3"));
        assert_eq!(
            banner_protocol(b"HTTP/1.1 400 Bad Request\r\n"),
            Some("http")
        );
        assert_eq!(banner_protocol(b"\x16\x03\x03"), None);
    }

    /// A deterministic stand-in for ciphertext: xorshift output.
    fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn encrypted_bytes_are_told_from_text_and_binary_framing() {
        for (n, seed) in [(32, 1), (64, 2), (200, 3), (4096, 4)] {
            assert!(looks_encrypted(&random_bytes(n, seed)), "{n} random bytes");
        }
        // Too short to judge.
        assert!(!looks_encrypted(&random_bytes(31, 5)));
        assert!(!looks_encrypted(
            b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n\r\n"
        ));
        // Binary framing: a length, a type, zeros, small integers.
        let mut framed = vec![0x00, 0x00, 0x00, 0x54, 0x00, 0x03, 0x00, 0x00];
        framed.extend(b"user\0postgres\0database\0test\0application_name\0psql\0\0");
        framed.extend([0u8; 24]);
        assert!(!looks_encrypted(&framed));
    }

    #[test]
    fn text_is_judged_by_its_bytes() {
        assert!(looks_like_text(b"220 hello\r\n"));
        assert!(!looks_like_text(&[0x8f, 0x11, 0xe3, 0x02, 0x9a, 0x41]));
        assert!(!looks_like_text(b""));
    }
}
