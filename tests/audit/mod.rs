//! The audit view: port policy, `--fail-on` severities, generated man page and
//! completions, `--help` examples.

mod servers;
mod tables;
mod trust;

use crate::kit::report::{codes, json_run, run, with_stdin};
use crate::kit::{arg, fixture, tmp};
use serde_json::Value;
use std::process::Command;
use tlswatch::record::finding::{Code, Severity};

/// The flows of a run with every flow listed.
fn flows(args: &[&str]) -> Vec<Value> {
    crate::kit::report::flows(&json_run(&[args, &["--json", "--all"]].concat()))
}

fn flagged(args: &[&str]) -> bool {
    let list = flows(args);
    assert!(!list.is_empty(), "{args:?}: no flows");
    list.iter()
        .any(|f| codes(f).contains(&"PLAINTEXT_ON_TLS_PORT"))
}

#[test]
fn plaintext_moved_onto_tls_ports_is_flagged_high() {
    // The rows of fixtures/EXPECTED-policy.tsv (derived by tshark) are checked by
    // recorded_fixtures_match_tshark_expectations; here the severity and the exit.
    for (file, port) in [
        ("policy/imap-cleartext-993.pcap", 993),
        ("policy/smtp-cleartext-465.pcap", 465),
        ("policy/ldap-cleartext-636.pcap", 636),
    ] {
        let f = format!("fixtures/{file}");
        let list = flows(&["-r", &f]);
        let hit: Vec<&Value> = list
            .iter()
            .flat_map(|fl| fl["findings"].as_array().into_iter().flatten())
            .filter(|x| x["code"] == "PLAINTEXT_ON_TLS_PORT")
            .collect();
        assert_eq!(hit.len(), 1, "{file}");
        assert_eq!(hit[0]["severity"], "high", "{file}");
        let msg = hit[0]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(&format!("port {port} (")), "{file}: {msg}");
        let out = run(&["-r", &f, "--fail-on", "PLAINTEXT_ON_TLS_PORT"]);
        assert_eq!(out.status.code(), Some(1), "{file}");
    }
}

#[test]
fn tls_on_993_starttls_on_587_and_plaintext_elsewhere_are_not_flagged() {
    assert!(!flagged(&["-r", "fixtures/policy/tls13-993.pcap"]));
    assert!(!flagged(&[
        "-r",
        "fixtures/starttls/submission-587-starttls-auth.pcap"
    ]));
    let imap143 = "fixtures/starttls/imap-cleartext-login.pcap";
    assert!(!flagged(&["-r", imap143]));
    // --tls-port adds the port to the policy.
    assert!(flagged(&["-r", imap143, "--tls-port", "143"]));
    let out = run(&["-r", imap143, "--tls-port", "143", "--fail-on", "high"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn fail_on_takes_severities_mixed_with_codes() {
    // tls12_ipv6.pcap: one flow, CERT_SELF_SIGNED (medium) and nothing worse.
    let f = "fixtures/tls/tls12_ipv6.pcap";
    let status = |list: &str| run(&["-r", f, "--fail-on", list]).status.code();
    assert_eq!(status("high"), Some(0));
    assert_eq!(status("critical"), Some(0));
    assert_eq!(status("medium"), Some(1));
    assert_eq!(status("Info"), Some(1));
    assert_eq!(status("critical,CERT_SELF_SIGNED"), Some(1));
    assert_eq!(status("critical,SSLV3"), Some(0));
    let out = run(&["-r", f, "--fail-on", "high,severe"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown finding code 'SEVERE'"), "{err}");
    for valid in [
        "critical",
        "medium",
        "SSLV2",
        "PLAINTEXT_ON_TLS_PORT",
        "CLEARTEXT_AUTH",
    ] {
        assert!(err.contains(valid), "{valid} not named: {err}");
    }
}

#[test]
fn help_shows_worked_examples() {
    for flag in ["-h", "--help"] {
        let out = run(&[flag]);
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "{flag}: {text}");
        assert!(
            text.matches("\n  tlswatch -r ").count() >= 3,
            "{flag}: {text}"
        );
    }
}

fn generated(kind: &str) -> String {
    let out = run(&["--generate", kind]);
    assert_eq!(out.status.code(), Some(0), "{kind}");
    assert!(
        out.stderr.is_empty(),
        "{kind}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

/// Runs `program args` with `input` on standard input, or `None` when the program
/// is not installed.
fn pipe(program: &str, args: &[&str], input: &str) -> Option<std::process::Output> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    with_stdin(cmd, input.as_bytes()).ok()
}

#[test]
fn man_page_formats_without_warnings() {
    let man = generated("man");
    assert!(man.starts_with(".ie") || man.starts_with(".TH"), "{man}");
    let Some(out) = pipe("groff", &["-man", "-Tutf8", "-ww", "-z"], &man) else {
        eprintln!("skipped: groff is not installed (CI installs it)");
        return;
    };
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "groff warnings:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = pipe("groff", &["-man", "-Tascii", "-P-cbou"], &man)
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for section in ["SYNOPSIS", "OPTIONS", "EXAMPLES", "EXIT STATUS"] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
    assert!(text.contains("--fail-on"), "{text}");
    for section in [
        "FINDINGS",
        "ENCRYPTION",
        "ENVIRONMENT",
        "TSV FIELDS",
        "SELECTION",
    ] {
        assert!(text.contains(section), "{section} missing:\n{text}");
    }
    // Every word --fail-on accepts (its error names them all) is in the page.
    let err = run(&["-r", "x.pcap", "--fail-on", "bogus"]);
    let err = String::from_utf8_lossy(&err.stderr);
    let words: Vec<&str> = err
        .split(['(', ')', ';', ',', ':', ' '])
        .filter(|w| {
            w.len() > 2
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(words.len() >= 29, "{err}");
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for w in words.iter().filter(|w| **w != "BOGUS") {
        assert!(
            flat.contains(&format!("{w} ")),
            "{w} is not in the man page"
        );
    }
    for sev in ["info", "low", "medium", "high", "critical"] {
        assert!(
            flat.contains(&format!("{sev}:")) || flat.contains(sev),
            "{sev}"
        );
    }
    assert!(!man.contains('`'), "a literal backtick in the roff");
    assert!(
        !text.to_lowercase().contains("readme"),
        "the page sends the reader elsewhere"
    );
    let name = text
        .split("NAME")
        .nth(1)
        .and_then(|t| t.split("SYNOPSIS").next())
        .unwrap_or("");
    assert!(name.contains("TCP") && name.contains("UDP"), "{name}");
}

#[test]
fn bash_completion_loads() {
    let script = generated("complete-bash");
    let path = tmp("tlswatch.bash");
    std::fs::write(&path, &script).unwrap_or_else(|e| panic!("{e}"));
    let path = path.to_string_lossy().into_owned();
    let syntax = Command::new("bash").args(["-n", &path]).output();
    let Ok(syntax) = syntax else {
        eprintln!("skipped: bash is not installed");
        return;
    };
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let loaded = Command::new("bash")
        .args(["-c", &format!("source '{path}' && complete -p tlswatch")])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&loaded.stdout);
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert!(text.contains("-F _tlswatch_lists tlswatch"), "{text}");
    assert!(script.contains("--fail-on") && script.contains("--generate"));
}

/// What bash completes for `line` (the cursor at its end): the `COMP_*`
/// variables set as bash sets them, the function `complete -p` names called with
/// the word bash completes (the part after its last break character).
fn bash_completes(script: &std::path::Path, line: &str) -> Vec<String> {
    let driver = r#"
source "$1"
line="$2"
COMP_LINE="$line"; COMP_POINT=${#line}
wb="${COMP_WORDBREAKS//[[:space:]]/}"
last="${line##*[[:space:]]}"
cur="${last##*[$wb]}"
read -r -a COMP_WORDS <<< "$line"
[[ "$line" == *[[:space:]] ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
fn=$(complete -p tlswatch | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
COMPREPLY=()
"$fn" tlswatch "$cur" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;
    let out = Command::new("bash")
        .args(["-c", driver, "driver"])
        .arg(script)
        .arg(line)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_codes_severities_interfaces_and_kinds() {
    if Command::new("bash").arg("--version").output().is_err() {
        eprintln!("skipped: bash is not installed");
        return;
    }
    let path = tmp("tlswatch-compgen.bash");
    std::fs::write(&path, generated("complete-bash")).unwrap_or_else(|e| panic!("{e}"));
    let got = |line: &str| bash_completes(&path, line);
    // Every code and severity after --fail-on and --select, each word of a list.
    let codes = got("tlswatch --fail-on ");
    for w in [
        "info",
        "critical",
        "SSLV3",
        "STARTTLS_STRIPPED",
        "CERT_EXPIRED",
        "INAPPROPRIATE_FALLBACK",
    ] {
        assert!(codes.iter().any(|c| c == w), "{w}: {codes:?}");
    }
    // Every severity a finding has, and every code.
    let all = Code::ALL.len();
    let severities = Severity::ALL
        .iter()
        .filter(|s| Code::ALL.iter().any(|c| c.severity() == **s))
        .count();
    assert_eq!(codes.len(), severities + all, "{codes:?}");
    assert_eq!(got("tlswatch --fail-on CERT_EXPIRE"), ["CERT_EXPIRED"]);
    assert_eq!(
        got("tlswatch --fail-on high,STARTTLS_S"),
        ["high,STARTTLS_STRIPPED"]
    );
    assert_eq!(got("tlswatch -r x.pcap --fail-on=crit"), ["critical"]);
    let select = got("tlswatch --select ");
    assert!(
        select.iter().any(|c| c == "SSLV2") && select.iter().any(|c| c == "server="),
        "{select:?}"
    );
    // Bash breaks words at '=': only what follows it is offered.
    assert_eq!(got("tlswatch --select high,encryption=pl"), ["plaintext"]);
    assert_eq!(got("tlswatch --fields client,serv").len(), 5);
    // Interface names of this machine after -i.
    let ifaces = got("tlswatch -i ");
    assert!(ifaces.iter().any(|c| c == "any"), "{ifaces:?}");
    if std::path::Path::new("/sys/class/net/lo").exists() {
        assert!(ifaces.iter().any(|c| c == "lo"), "{ifaces:?}");
        assert_eq!(got("tlswatch --interface l"), ["lo"]);
    }
    // Kinds after --generate, values of the other enumerations, options.
    let kinds = got("tlswatch --generate ");
    assert_eq!(
        kinds,
        [
            "man",
            "complete-bash",
            "complete-zsh",
            "complete-fish",
            "complete-powershell"
        ]
    );
    assert_eq!(got("tlswatch --sort s"), ["severity", "server", "start"]);
    assert_eq!(got("tlswatch --format t"), ["table", "tsv"]);
    assert_eq!(got("tlswatch --fail-"), ["--fail-on"]);
}

#[test]
fn other_shells_get_their_scripts() {
    assert!(generated("complete-zsh").starts_with("#compdef tlswatch"));
    assert!(generated("complete-fish").contains("complete -c tlswatch"));
    assert!(generated("complete-powershell").contains("Register-ArgumentCompleter"));
    for (shell, kind) in [("zsh", "complete-zsh"), ("fish", "complete-fish")] {
        if let Some(out) = pipe(shell, &["-n"], &generated(kind)) {
            assert!(
                out.status.success(),
                "{shell}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A pcap just over the progress threshold that costs nothing to read: 1 MiB
/// records of zeros (undecodable), written sparse.
fn big_sparse_capture() -> std::path::PathBuf {
    use crate::kit::pcap::{ETHERNET, header, record_header};
    use std::io::{Seek, SeekFrom, Write};
    let path = tmp("big.pcap");
    let mut f = std::fs::File::create(&path).unwrap();
    let record = 1u32 << 20;
    f.write_all(&header(ETHERNET, record * 2)).unwrap();
    let count = (tlswatch::run::progress::MIN_BYTES >> 20) + 8;
    for i in 0..count {
        f.seek(SeekFrom::Start(24 + i * (16 + u64::from(record))))
            .unwrap();
        f.write_all(&record_header((0, 0), record)).unwrap();
    }
    f.set_len(24 + count * (16 + u64::from(record))).unwrap();
    path
}

/// Runs tlswatch under a pseudo-terminal (`script`), or `None` without `script`.
fn under_pty(args: &str, env: &[(&str, &str)]) -> Option<String> {
    let bin = env!("CARGO_BIN_EXE_tlswatch");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{bin} {args}"), "/dev/null"])
        .env_remove("CI")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn progress_shows_on_a_terminal_only() {
    let big = big_sparse_capture();
    let big = big.to_string_lossy().into_owned();
    let bar = |text: &str| text.contains("MiB/") && text.contains(" left)");
    let Some(tty) = under_pty(&format!("-r {big} --servers"), &[]) else {
        eprintln!("skipped: `script` (util-linux) is not installed");
        return;
    };
    assert!(bar(&tty), "no progress on a terminal:\n{tty}");
    // Cleared before the table: the last bar is erased and the header follows.
    let header = tty.find("SERVER").unwrap_or_else(|| panic!("{tty}"));
    assert!(
        tty[..header].ends_with("\r\x1b[2K"),
        "{:?}",
        &tty[header.saturating_sub(40)..header]
    );
    assert!(tty.contains("packets: "), "{tty}");
    let quiet = under_pty(&format!("-r {big} --servers --quiet"), &[]).unwrap();
    assert!(!bar(&quiet), "--quiet:\n{quiet}");
    let ci = under_pty(&format!("-r {big} --servers"), &[("CI", "true")]).unwrap();
    assert!(!bar(&ci), "CI set:\n{ci}");
    let small = fixture("tls/tls13.pcap");
    let small = under_pty(&format!("-r {}", arg(&small)), &[]).unwrap();
    assert!(!small.contains("left)"), "small input:\n{small}");
    // Standard error a pipe: nothing but the report.
    let out = Command::new(env!("CARGO_BIN_EXE_tlswatch"))
        .args(["-r", &big, "--servers"])
        .env_remove("CI")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(&big);
}

/// What a shell printed, once it exited successfully; `None` (the test skips)
/// when that shell is not installed (CI installs zsh and fish).
fn shell_output(mut cmd: Command) -> Option<String> {
    let shell = cmd.get_program().to_string_lossy().into_owned();
    let Ok(out) = cmd.output() else {
        eprintln!("skipped: {shell} is not installed");
        return None;
    };
    assert!(
        out.status.success(),
        "{shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// zsh's own completion system, driven through a pseudo-terminal (`complete.zsh`):
/// one Tab after each partial command line. Lists complete word by word after a
/// comma, options and field names complete, and `-i` offers the machine's interfaces.
#[test]
fn zsh_completes_list_words_options_and_interfaces_when_zsh_is_there() {
    let dir = tmp("zsh-functions");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("_tlswatch"), generated("complete-zsh"))
        .unwrap_or_else(|e| panic!("{e}"));
    let driver = tmp("complete.zsh");
    std::fs::write(&driver, include_str!("complete.zsh")).unwrap_or_else(|e| panic!("{e}"));
    // `lo` completes alone only where no other interface name starts with it.
    let lo_alone = std::fs::read_dir("/sys/class/net").is_ok_and(|d| {
        let names: Vec<String> = d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.iter().any(|n| n == "lo") && names.iter().filter(|n| n.starts_with("lo")).count() == 1
    });
    let lines = [
        "tlswatch --fail-on high,CERT_EXPIRE",
        "tlswatch --select encryption=plai",
        "tlswatch --select SSLV2,serv",
        "tlswatch --fail-on SSLV2,SSLV",
        "tlswatch --fail-",
        "tlswatch -r x.pcap --fields sn",
        "tlswatch -i l",
    ];
    let mut zsh = Command::new("zsh");
    zsh.arg("-f").arg(&driver).arg(&dir).args(lines);
    let Some(text) = shell_output(zsh) else {
        return;
    };
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), lines.len(), "{text}");
    // A list word completes, and the list stays open for the next one.
    assert_eq!(got[0], "tlswatch --fail-on high,CERT_EXPIRED,", "{text}");
    assert_eq!(got[1], "tlswatch --select encryption=plaintext,", "{text}");
    // A key that takes a value gets no separator after it: the value follows.
    assert_eq!(got[2], "tlswatch --select SSLV2,server=", "{text}");
    // A word already in the list is not offered again.
    assert_eq!(got[3], "tlswatch --fail-on SSLV2,SSLV3,", "{text}");
    assert_eq!(got[4], "tlswatch --fail-on=", "{text}");
    assert_eq!(got[5], "tlswatch -r x.pcap --fields sni,", "{text}");
    if lo_alone {
        assert_eq!(got[6], "tlswatch -i lo ", "{text}");
    }
}

#[test]
fn fish_completes_list_words_and_interfaces_when_fish_is_there() {
    let path = tmp("tlswatch.fish");
    std::fs::write(&path, generated("complete-fish")).unwrap_or_else(|e| panic!("{e}"));
    let script = format!(
        "source '{}'; complete -C 'tlswatch --fail-on high,CERT_E'; complete -C 'tlswatch -i '",
        path.display()
    );
    let mut fish = Command::new("fish");
    fish.args(["-c", &script]);
    let Some(text) = shell_output(fish) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"high,CERT_EXPIRED"), "{text}");
    assert!(lines.contains(&"any"), "{text}");
}
