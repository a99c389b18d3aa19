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

    #[test]
    fn text_is_judged_by_its_bytes() {
        assert!(looks_like_text(b"220 hello\r\n"));
        assert!(!looks_like_text(&[0x8f, 0x11, 0xe3, 0x02, 0x9a, 0x41]));
        assert!(!looks_like_text(b""));
    }
}
