//! The man page: clap's NAME, SYNOPSIS, DESCRIPTION and OPTIONS, then what an
//! option's one line cannot teach: the output formats and the TSV fields, the
//! words of --select, every finding code with its severity and meaning, the
//! encryption values, the exit statuses, the environment and worked examples.
//! Everything is written as roff with its text escaped; nothing refers the
//! reader elsewhere for an option's meaning.

use crate::output::select::ENCRYPTIONS;
use crate::output::tsv::{FLOW_DEFAULT, FLOW_FIELDS, Named, SERVER_DEFAULT, SERVER_FIELDS};
use crate::record::{Code, Encryption, Severity};
use std::io::{self, Write};

/// Worked examples shown by `--help` and in the man page.
pub const EXAMPLES: &str = "\
Examples:
  tlswatch -r capture.pcap
      one row per connection: encryption, TLS version, findings
  tlswatch -r mail.pcap --servers --fail-on high
      one row per server, worst first; exit status 1 if any flow has a high or critical finding
  tlswatch -r a.pcap -r b.pcapng --ndjson | jq 'select(.encryption == \"plaintext\")'
      both files in one flow table, one JSON line per flow
  tlswatch -r capture.pcap --tls-port 8993 --fail-on PLAINTEXT_ON_TLS_PORT,STARTTLS_STRIPPED
      also expect TLS on port 8993; fail on plaintext there or a stripped upgrade
  tlswatch -r capture.pcap --select high,encryption=plaintext --sort severity
      only the plaintext flows with a high or critical finding, worst first
  tlswatch -r capture.pcap --format tsv --fields client,server,encryption,version,findings
      tab-separated values with a header line, for a spreadsheet or awk
  tlswatch -r mail.pcap --transcript 7
      flow 7 (the ID column) line by line with frame numbers, then its handshake and findings
  tlswatch -r mail.pcap --select high --write-flows flagged.pcapng
      the flows with a high or critical finding, and their packets in a file for Wireshark";

/// What each exit status means.
pub const EXIT_STATUS: &[(u8, &str)] = &[
    (
        0,
        "every input was read and no listed flow matched --fail-on (a capture cut off mid-packet, or a compressed one cut off mid-stream, is a warning, not an error); the status is the same whatever became of standard output",
    ),
    (
        1,
        "a listed flow carries a finding named in --fail-on, or one of the severity given there or worse; standard error then ends with one line naming the codes, severities and flow counts that matched",
    ),
    (
        2,
        "an input could not be read (missing, a directory, empty, not a capture, cut short in its file header, corrupt in the middle, a file header without packets, or no packet of a link type tlswatch decodes), writing failed, or a usage error (an unknown option or --fail-on word, an empty --fail-on, a severity no finding has, -c 0, a live-capture option with -r, -w or --write-flows naming an input, a second file without its own -r, --transcript or --write-flows on standard input or a live capture); flows read so far are still reported, and 2 wins over 1",
    ),
];

/// The environment variables tlswatch reads.
pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "COLUMNS",
        "A number: the width the table fits, even when standard output is not a terminal. Otherwise a terminal's own width is used, and piped output is never cut.",
    ),
    (
        "NO_COLOR",
        "Set and not empty: no colour with --color auto (the default).",
    ),
    (
        "CI",
        "Set and not empty: no progress display on standard error, as with --quiet.",
    ),
    (
        "SUDO_USER",
        "Live capture started with sudo: the user tlswatch runs as once the interface is open (unless -Z names another, or --keep-root).",
    ),
];

/// What each encryption value means.
pub fn encryption_meaning(e: Encryption) -> &'static str {
    match e {
        Encryption::Tls => "TLS from the first byte.",
        Encryption::Starttls => {
            "A plaintext protocol upgraded in place (STARTTLS, STLS, AUTH TLS, SSLRequest and the like), and a TLS handshake followed."
        }
        Encryption::StarttlsRefused => "The client asked for the upgrade and the server said no.",
        Encryption::StarttlsFailed => {
            "The server accepted the upgrade, but no TLS handshake (or only a failed one) followed."
        }
        Encryption::Plaintext => "Payload both ways and no TLS.",
        Encryption::RdpStandard => "RDP Standard Security: RC4 inside RDP itself, not TLS.",
        Encryption::LoginOnly => {
            "MSSQL with encryption off on both sides: TLS protected the login packet only."
        }
        Encryption::Ssh => "Encrypted by SSH, not TLS.",
        Encryption::Gssapi => "PostgreSQL GSSAPI encryption, not TLS.",
        Encryption::Quic => "QUIC over UDP: a TLS 1.3 handshake inside QUIC packets.",
        Encryption::Dtls => "DTLS over UDP: TLS with its own datagram record layer.",
        Encryption::Unknown => "Too little was seen to say.",
    }
}

/// Escapes text for roff: backslashes, hyphens (so they stay ASCII minus signs),
/// anything outside ASCII as a named Unicode escape, and a leading control
/// character.
pub fn roff_escape(s: &str) -> String {
    let mut body = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => body.push_str("\\e"),
            '-' => body.push_str("\\-"),
            c if c.is_ascii() => body.push(c),
            c => body.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    if body.starts_with(['.', '\'']) {
        format!("\\&{body}")
    } else {
        body
    }
}

/// The (command, meaning) pairs of the help text's examples.
pub fn examples() -> impl Iterator<Item = (&'static str, &'static str)> {
    let mut lines = EXAMPLES.lines().skip(1);
    std::iter::from_fn(move || Some((lines.next()?.trim(), lines.next()?.trim())))
}

/// A section of tagged paragraphs: `.TP`, the tag in bold, its text.
fn tagged(
    out: &mut dyn Write,
    title: &str,
    intro: &str,
    items: impl IntoIterator<Item = (String, String)>,
) -> io::Result<()> {
    writeln!(out, ".SH \"{title}\"")?;
    if !intro.is_empty() {
        writeln!(out, "{}", roff_escape(intro))?;
    }
    for (tag, text) in items {
        item(out, &tag, &text)?;
    }
    Ok(())
}

/// A tagged paragraph. The tag is set in bold with a font escape, not `.B`,
/// whose argument parsing would eat the quotes of a command line.
fn item(out: &mut dyn Write, tag: &str, text: &str) -> io::Result<()> {
    writeln!(
        out,
        ".TP\n\\fB{}\\fR\n{}",
        roff_escape(tag),
        roff_escape(text)
    )
}

/// The table, TSV and JSON, and the TSV fields.
fn output_section(out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, ".SH OUTPUT")?;
    for para in [
        "The table has one row per flow: ID, CLIENT \u{2192} SERVER, PROTOCOL, ENCRYPTION, VERSION, SNI, CERTIFICATE (the server certificate's name and expiry date; (encrypted) for TLS 1.3, which sends it encrypted; (resumed) when none was sent), USER with --show-users, and FINDINGS, then a summary. The endpoints are never cut. On a terminal the other columns shrink to fit (a cut value ends in ~) and the findings wrap; a terminal narrower than about 155 columns gets two lines per flow, the endpoints on the first. Piped, nothing is cut. Colours follow the worst finding: critical bold red, high red, medium yellow; green marks an encrypted flow without a finding. The tables leave out info-level findings (TLS_1_3, a fact the VERSION column shows); JSON, TSV and the summary's counts keep them.",
        "With --servers the table has one row per server instead: SERVER, PROTOCOLS, FLOWS, CLIENTS, ENCRYPTION, VERSIONS, CERTIFICATE, WORST and FINDINGS (worst first, with the number of flows carrying each).",
        "Every value that came from the network is escaped before it is shown: control characters as \\xNN, invisible characters that reorder or hide text as \\u{NNNN}. No byte from a capture reaches the terminal or a TSV cell raw.",
        "--json prints one document with the flows, the servers (with --servers) and the summary; --ndjson prints one JSON line per flow as it ends, then the summary line. Fields are added over time, never renamed.",
    ] {
        writeln!(out, ".PP\n{}", roff_escape(para))?;
    }
    Ok(())
}

fn fields_section(out: &mut dyn Write) -> io::Result<()> {
    let (flow, server) = (
        FLOW_DEFAULT.replace(',', ", "),
        SERVER_DEFAULT.replace(',', ", "),
    );
    let intro = format!(
        "--format tsv prints a header line, then one line per flow (per server with --servers), the values separated by tabs: the JSON's values, - for null or empty, lists joined with commas, counts as key=n. --fields names the columns: the fields below, or a dotted path into the JSON record (tls.client_hello.ja4_r, tls.certificates.0.issuer, quic.version). Without --fields the columns are {flow}; with --servers {server}. Flow fields:"
    );
    let field = |f: &Named| (f.name.to_string(), format!("{}.", f.meaning));
    tagged(out, "TSV FIELDS", &intro, FLOW_FIELDS.iter().map(field))?;
    writeln!(out, ".PP\n{}", roff_escape("Server fields (--servers):"))?;
    for f in SERVER_FIELDS {
        let (tag, text) = field(f);
        item(out, &tag, &text)?;
    }
    Ok(())
}

fn select_section(out: &mut dyn Write) -> io::Result<()> {
    let sevs: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    let items = [
        (
            "CODE".to_string(),
            "A flow carrying this finding (the codes are listed under FINDINGS; any case)."
                .to_string(),
        ),
        (
            "SEVERITY".to_string(),
            format!(
                "A flow with a finding of this severity or worse ({}).",
                sevs.join(", ")
            ),
        ),
        (
            "encryption=VALUE".to_string(),
            "A flow protected this way (values under ENCRYPTION).".to_string(),
        ),
        (
            "app=PROTOCOL".to_string(),
            "A flow speaking this application protocol (smtp, imap, http, quic and so on)."
                .to_string(),
        ),
        (
            "server=IP[:PORT]".to_string(),
            "A flow to this server; IPv6 as [2001:db8::1]:443, or a port alone as :443."
                .to_string(),
        ),
        (
            "client=IP[:PORT]".to_string(),
            "A flow from this client, written as server=.".to_string(),
        ),
        (
            "id=N[-M]".to_string(),
            "The flow numbered N (or N to M).".to_string(),
        ),
    ];
    tagged(
        out,
        "SELECTION",
        "--select takes comma-separated words. Codes and severities are one kind, as --fail-on takes them; the key=value words are one kind each. Words of one kind are alternatives; a flow is listed when it matches every kind given. The summary and --fail-on still count every flow.",
        items,
    )
}

fn findings_section(out: &mut dyn Write) -> io::Result<()> {
    tagged(
        out,
        "FINDINGS",
        "Each finding has a stable code, which --fail-on and --select take, and a fixed severity. Certificate dates are judged at the flow's first packet, not when tlswatch runs.",
        Code::ALL.iter().map(|c| {
            (
                c.as_str().to_string(),
                format!(
                    "{}: {} Reference: {}.",
                    c.severity().as_str(),
                    c.meaning(),
                    c.reference()
                ),
            )
        }),
    )
}

/// The man page.
pub fn page(cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.after_help(None::<&str>));
    man.render_title(out)?;
    // Codes, options and commands must not be hyphenated.
    writeln!(out, ".nh")?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    output_section(out)?;
    fields_section(out)?;
    select_section(out)?;
    findings_section(out)?;
    tagged(
        out,
        "ENCRYPTION",
        "The encryption value of a flow (the ENCRYPTION column, the JSON's encryption):",
        ENCRYPTIONS
            .iter()
            .map(|e| (e.as_str().to_string(), encryption_meaning(*e).to_string())),
    )?;
    tagged(
        out,
        "EXIT STATUS",
        "",
        EXIT_STATUS
            .iter()
            .map(|(n, m)| (n.to_string(), m.to_string())),
    )?;
    tagged(
        out,
        "ENVIRONMENT",
        "",
        ENVIRONMENT
            .iter()
            .map(|(n, m)| (n.to_string(), m.to_string())),
    )?;
    tagged(
        out,
        "EXAMPLES",
        "",
        examples().map(|(c, m)| (c.to_string(), m.to_string())),
    )?;
    writeln!(
        out,
        ".SH \"SEE ALSO\"\n.BR tcpdump (8),\n.BR pcap\\-filter (7),\n.BR tshark (1)"
    )?;
    man.render_version_section(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn page_text() -> String {
        let mut out = Vec::new();
        page(super::super::Args::command(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn man_page_lists_every_example_and_exit_status() {
        let man = page_text();
        assert_eq!(examples().count(), 8);
        for (command, meaning) in examples() {
            assert!(command.starts_with("tlswatch -r"), "{command}");
            assert!(man.contains(&roff_escape(command)), "{command}");
            assert!(man.contains(&roff_escape(meaning)), "{meaning}");
        }
        assert!(man.contains(".SH \"EXIT STATUS\""));
        for (n, _) in EXIT_STATUS {
            assert!(man.contains(&format!("\\fB{n}\\fR\n")), "{n}");
        }
        assert!(
            !man.contains("Examples:"),
            "help-text layout leaked into the man page"
        );
    }

    #[test]
    fn man_page_teaches_codes_encryptions_and_environment() {
        let man = page_text();
        for c in Code::ALL {
            let line = roff_escape(&format!("{}: {}", c.severity().as_str(), c.meaning()));
            let tag = format!("\\fB{}\\fR\n{line}", roff_escape(c.as_str()));
            assert!(man.contains(&tag), "{c}");
        }
        for e in ENCRYPTIONS {
            let tag = format!("\\fB{}\\fR\n", roff_escape(e.as_str()));
            assert!(man.contains(&tag), "{e:?}");
        }
        for (name, _) in ENVIRONMENT {
            assert!(man.contains(&format!("\\fB{name}\\fR\n")), "{name}");
        }
        for section in [
            "ENVIRONMENT",
            "EXAMPLES",
            "FINDINGS",
            "ENCRYPTION",
            "SELECTION",
        ] {
            assert!(man.contains(&format!(".SH \"{section}\"")), "{section}");
        }
        assert!(!man.contains('`'), "a literal backtick");
        assert!(!man.to_ascii_lowercase().contains("readme"));
        let name = man.split(".SH NAME").nth(1).unwrap_or("");
        let name = name.split(".SH").next().unwrap_or("");
        assert!(name.contains("TCP") && name.contains("UDP"), "{name}");
    }

    #[test]
    fn every_encryption_has_its_place() {
        // A new variant must be added to ENCRYPTIONS (and its meaning written).
        let index = |e: Encryption| match e {
            Encryption::Tls => 0,
            Encryption::Starttls => 1,
            Encryption::StarttlsRefused => 2,
            Encryption::StarttlsFailed => 3,
            Encryption::Plaintext => 4,
            Encryption::RdpStandard => 5,
            Encryption::LoginOnly => 6,
            Encryption::Ssh => 7,
            Encryption::Gssapi => 8,
            Encryption::Quic => 9,
            Encryption::Dtls => 10,
            Encryption::Unknown => 11,
        };
        for (i, e) in ENCRYPTIONS.iter().enumerate() {
            assert_eq!(index(*e), i, "{e:?}");
            assert!(encryption_meaning(*e).ends_with('.'));
        }
    }

    #[test]
    fn roff_escape_keeps_text_literal() {
        assert_eq!(roff_escape("--fail-on"), "\\-\\-fail\\-on");
        assert_eq!(roff_escape(".x"), "\\&.x");
        assert_eq!(roff_escape("a\\b"), "a\\eb");
        assert_eq!(roff_escape("RFC 3207 \u{a7}6"), "RFC 3207 \\[u00A7]6");
    }
}
