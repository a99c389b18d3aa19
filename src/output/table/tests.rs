use super::*;
use crate::output::servers::Inventory;
use crate::output::style::{BOLD_RED, GREEN, RED, RESET};
use crate::record::{Certificate, CleartextAuth, ClientHelloInfo, Endpoint, Finding, TlsInfo};
use crate::time::Timestamp;
use crate::version::Version;
use std::net::IpAddr;
use std::sync::Arc;

fn ep(ip: &str, port: u16) -> Endpoint {
    Endpoint {
        ip: ip.parse::<IpAddr>().unwrap(),
        port,
    }
}

/// A TLS flow between two long IPv6 addresses, with findings `codes`.
fn flow(
    id: u64,
    client: Endpoint,
    server: Endpoint,
    version: Version,
    codes: &[Code],
) -> FlowRecord {
    let mut r = FlowRecord::new(id, Timestamp::default(), client, server);
    r.encryption = Encryption::Tls;
    r.app_protocol = Some("tls".into());
    r.bytes.client = 100;
    r.tls = Some(TlsInfo {
        version: Some(version),
        client_hello: Some(ClientHelloInfo {
            sni: Some("www.example.com".into()),
            ..ClientHelloInfo::default()
        }),
        ..TlsInfo::default()
    });
    r.findings = codes
        .iter()
        .map(|c| Finding::new(*c, String::new()))
        .collect();
    r
}

fn leaf(cn: &str, not_before: &str, not_after: &str) -> Arc<Certificate> {
    Arc::new(Certificate {
        sha256: format!("{cn}-sha"),
        subject_cn: Some(cn.into()),
        not_before: Some(not_before.into()),
        not_after: Some(not_after.into()),
        ..Certificate::default()
    })
}

const CLIENT6: &str = "2001:db8:1234:5678:9abc:def0:1234:5678";
const SERVER6: &str = "2001:db8:ffff:eeee:dddd:cccc:bbbb:aaaa";

/// The rows a table prints for `recs` at `width` (colour off, summary left out).
fn render(recs: &[FlowRecord], width: Option<usize>, users: bool) -> String {
    let mut buf = Vec::new();
    {
        let mut t = Table::new(&mut buf, false, width, false).with_users(users);
        for r in recs {
            t.flow(r).unwrap();
        }
    }
    String::from_utf8(buf).unwrap()
}

fn sample() -> Vec<FlowRecord> {
    let mut v = vec![
        flow(
            1,
            ep(CLIENT6, 51234),
            ep(SERVER6, 443),
            Version::SSLV3,
            &[
                Code::Sslv3,
                Code::CertNameMismatch,
                Code::CertSelfSigned,
                Code::NoForwardSecrecy,
            ],
        ),
        flow(
            2,
            ep("10.0.0.1", 40000),
            ep("192.0.2.7", 443),
            Version::TLS13,
            &[Code::Tls13],
        ),
        flow(
            3,
            ep("255.255.255.255", 65535),
            ep("255.255.255.254", 65535),
            Version::TLS12,
            &[Code::CertExpired],
        ),
    ];
    if let Some(t) = v[0].tls.as_mut() {
        t.certificates = vec![leaf(
            "mail.example.net",
            "2020-01-01T00:00:00Z",
            "2036-11-24T00:00:00Z",
        )];
    }
    if let Some(t) = v[2].tls.as_mut() {
        t.certificates = vec![leaf(
            "old.example",
            "2019-01-01T00:00:00Z",
            "2021-01-01T00:00:00Z",
        )];
    }
    v
}

#[test]
fn endpoints_are_whole_at_every_width_and_lines_fit() {
    let recs = sample();
    for width in [Some(80), Some(120), Some(160), Some(200), None] {
        let text = render(&recs, width, false);
        for r in &recs {
            let client = crate::output::endpoint(r.client.ip, r.client.port);
            let server = crate::output::endpoint(r.server.ip, r.server.port);
            assert!(text.contains(&client), "{width:?}: {client} cut:\n{text}");
            assert!(text.contains(&server), "{width:?}: {server} cut:\n{text}");
            // Every finding code the table shows is there whole too.
            for f in r.findings.iter().filter(|f| shown(f.code)) {
                assert!(
                    text.contains(f.code.as_str()),
                    "{width:?}: {} cut:\n{text}",
                    f.code
                );
            }
        }
        if let Some(w) = width {
            for line in text.lines() {
                assert!(line.chars().count() <= w, "{w}: too wide:\n{line}");
            }
        } else {
            // Piped: one line per flow and the header, nothing cut.
            assert_eq!(text.lines().count(), recs.len() + 1, "{text}");
            assert!(!text.contains('~'), "{text}");
        }
    }
}

#[test]
fn narrow_terminals_get_two_lines_per_flow_and_wide_ones_one() {
    let recs = sample();
    let narrow = render(&recs, Some(80), false);
    let lines: Vec<&str> = narrow.lines().collect();
    assert_eq!(lines[0].trim_end(), "ID/FRAME   CLIENT -> SERVER");
    assert!(lines[1].starts_with("      PROTOCOL"), "{narrow}");
    // The IPv6 pair is too wide for 80 columns: the server goes below, after ->.
    assert_eq!(lines[2], format!("1/0        [{CLIENT6}]:51234"));
    assert_eq!(lines[3], format!("      -> [{SERVER6}]:443"));
    let wide = render(&recs, Some(200), false);
    let ipv4 = wide.lines().find(|l| l.starts_with("2/")).unwrap();
    assert!(
        ipv4.contains("10.0.0.1:40000 -> 192.0.2.7:443") && ipv4.contains("TLSv1.3"),
        "{wide}"
    );
    // The IPv6 row keeps its pair whole on its own line; the rest lines up below.
    let at = wide.lines().position(|l| l.starts_with("1/")).unwrap();
    let row = wide.lines().nth(at).unwrap();
    assert_eq!(
        row,
        format!("1/0        [{CLIENT6}]:51234 -> [{SERVER6}]:443")
    );
    let below = wide.lines().nth(at + 1).unwrap();
    let header = wide.lines().next().unwrap();
    assert_eq!(below.find("tls"), header.find("PROTOCOL"), "{wide}");
}

#[test]
fn certificate_cells_say_encrypted_and_keep_expiry_dates() {
    let recs = sample();
    let text = render(&recs, None, false);
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_string()
    };
    assert!(row("2/").contains("(encrypted)"), "{text}");
    assert!(
        row("3/").contains("old.example (expired 2021-01-01)"),
        "{text}"
    );
    assert!(
        row("1/").contains("mail.example.net (to 2036-11-24)"),
        "{text}"
    );
    let mut resumed = flow(
        4,
        ep("10.0.0.1", 1),
        ep("10.0.0.2", 443),
        Version::TLS12,
        &[],
    );
    if let Some(t) = resumed.tls.as_mut() {
        t.resumed = true;
    }
    assert!(render(&[resumed], None, false).contains("(resumed)"));
}

#[test]
fn info_findings_stay_out_of_the_findings_column() {
    let recs = sample();
    let text = render(&recs, None, false);
    let row = text.lines().find(|l| l.starts_with("2/")).unwrap();
    assert!(!row.contains("TLS_1_3"), "{row}");
    assert!(row.trim_end().ends_with(" -"), "{row}");
}

#[test]
fn colours_follow_the_worst_severity() {
    let recs = sample();
    let mut buf = Vec::new();
    {
        let mut t = Table::new(&mut buf, true, None, false);
        for r in &recs {
            t.flow(r).unwrap();
        }
    }
    let text = String::from_utf8(buf).unwrap();
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_string()
    };
    // SSLv3 (high): the encryption cell is red, not green; so is the version.
    assert!(row("1/").contains(&format!("{RED}tls{RESET}")), "{text:?}");
    assert!(
        row("1/").contains(&format!("{RED}SSLv3{RESET}")),
        "{text:?}"
    );
    assert!(!row("1/").contains(GREEN), "{text:?}");
    // TLS 1.3 without a finding: green.
    assert!(
        row("2/").contains(&format!("{GREEN}tls{RESET}")),
        "{text:?}"
    );
    // A critical finding: bold red.
    let stripped = flow(
        5,
        ep("10.0.0.1", 1),
        ep("10.0.0.2", 25),
        Version::TLS12,
        &[Code::StarttlsStripped],
    );
    let mut buf = Vec::new();
    Table::new(&mut buf, true, None, false)
        .flow(&stripped)
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(
        text.contains(&format!("{BOLD_RED}STARTTLS_STRIPPED{RESET}")),
        "{text:?}"
    );
}

#[test]
fn show_users_adds_the_user_and_mechanism() {
    let mut r = flow(
        1,
        ep("10.0.0.1", 1),
        ep("10.0.0.2", 25),
        Version::TLS12,
        &[Code::CleartextAuth],
    );
    r.cleartext_auth = vec![
        CleartextAuth {
            mechanism: "SMTP AUTH PLAIN".into(),
            user: Some("alice".into()),
            hashed: false,
        },
        CleartextAuth {
            mechanism: "LOGIN".into(),
            user: None,
            hashed: false,
        },
    ];
    let text = render(std::slice::from_ref(&r), None, true);
    assert!(text.lines().next().unwrap().contains(" USER "), "{text}");
    assert!(text.contains("alice (SMTP AUTH PLAIN), (LOGIN)"), "{text}");
    assert!(!render(&[r], None, false).contains("alice"));
}

#[test]
fn wire_values_are_escaped_in_every_cell() {
    let mut r = flow(
        1,
        ep("10.0.0.1", 1),
        ep("10.0.0.2", 443),
        Version::TLS12,
        &[],
    );
    if let Some(ch) = r.tls.as_mut().and_then(|t| t.client_hello.as_mut()) {
        ch.sni = Some("evil\x1b[2J\u{202e}moc.example".into());
    }
    r.app_protocol = Some("tls\n".into());
    r.tls.as_mut().unwrap().certificates = vec![leaf("a\tb", "x", "2030-01-01T00:00:00Z")];
    for width in [None, Some(200)] {
        let text = render(std::slice::from_ref(&r), width, false);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        let sni = "evil\\x1b[2J\\u{202e}moc.example";
        let want = if width.is_none() { sni } else { &sni[..12] };
        assert!(text.contains(want), "{text}");
        assert!(text.contains("a\\x09b (to 2030-01-01)"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}

fn servers(recs: &[FlowRecord]) -> Vec<ServerRecord> {
    let mut inv = Inventory::new(100);
    for r in recs {
        inv.add(r);
    }
    inv.finish().0
}

#[test]
fn server_rows_list_findings_worst_first_with_a_certificate() {
    let mut recs = sample();
    // A second flow to the first server: two flows carry NO_FORWARD_SECRECY, one SSLV3.
    let mut again = recs[0].clone();
    again.id = 9;
    again.findings = vec![Finding::new(Code::NoForwardSecrecy, String::new())];
    recs.push(again);
    let list = servers(&recs);
    for width in [Some(80), Some(120), Some(200), None] {
        let lines = crate::output::server_table::lines(&list, width, false);
        let text = lines.join("\n");
        assert!(lines[0].starts_with("SERVER"), "{text}");
        assert!(text.contains("CERTIFICATE"), "{text}");
        let server = format!("[{SERVER6}]:443");
        assert!(text.contains(&server), "{width:?}: {text}");
        // Joined up again, the findings read worst first, most flows first among equals.
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        // High before medium whatever the counts; among equals most flows, then by name.
        let want = "CERT_NAME_MISMATCH 1, SSLV3 1, NO_FORWARD_SECRECY 2, CERT_SELF_SIGNED 1";
        assert!(flat.contains(want), "{width:?}: {flat}");
        if let Some(w) = width {
            assert!(lines.iter().all(|l| l.chars().count() <= w), "{w}: {text}");
        }
    }
    let piped = crate::output::server_table::lines(&list, None, false).join("\n");
    assert!(
        piped.contains("mail.example.net (to 2036-11-24)"),
        "{piped}"
    );
    assert!(
        piped.contains("old.example (expired 2021-01-01)"),
        "{piped}"
    );
    assert!(piped.contains("(encrypted)"), "{piped}");
    assert!(!piped.contains("TLS_1_3"), "{piped}");
}
