//! Command-line arguments, turned into a validated configuration.

use crate::analyzer::options::Options;
use crate::assess::{FailOn, Policy};
use crate::config::{ColorChoice, Config, Format, Limits, LiveOptions, MAX_THREADS, MIN_MEMCAP};
use crate::evidence::select::{Select, Transcripts};
use crate::pipeline::shard::Shard;
use clap::{CommandFactory, Parser, ValueEnum};
use std::io::{self, Write};

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl From<Color> for ColorChoice {
    fn from(c: Color) -> Self {
        match c {
            Color::Auto => ColorChoice::Auto,
            Color::Always => ColorChoice::Always,
            Color::Never => ColorChoice::Never,
        }
    }
}

/// What `--generate` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Generate {
    /// The man page (roff): `man -l`, or into a man1 directory.
    Man,
    /// Bash completion: source it, or put it in the bash-completion directory.
    CompleteBash,
    /// Zsh completion: save as `_tlswatch` in a directory of `$fpath`.
    CompleteZsh,
    /// Fish completion: save as `~/.config/fish/completions/tlswatch.fish`.
    CompleteFish,
    /// PowerShell completion: dot-source it from `$PROFILE`.
    CompletePowershell,
}

/// Worked examples shown by `--help` and in the man page.
const EXAMPLES: &str = "\
Examples:
  tlswatch -r capture.pcap
      one row per connection: encryption, TLS version, findings
  tlswatch -r mail.pcap --servers --fail-on high
      one row per server, worst first; exit status 1 if any flow has a high or critical finding
  tlswatch -r a.pcap -r b.pcapng --ndjson | jq 'select(.encryption == \"plaintext\")'
      both files in one flow table, one JSON line per flow
  tlswatch -r capture.pcap --tls-port 8993 --fail-on PLAINTEXT_ON_TLS_PORT,STARTTLS_STRIPPED
      also expect TLS on port 8993; fail on plaintext there or a stripped upgrade
  tlswatch -r mail.pcap --transcript 7
      flow 7 (the ID column) line by line with frame numbers, then its handshake and findings
  tlswatch -r mail.pcap --select high --write-flows flagged.pcapng
      the flows with a high or critical finding, and their packets in a file for Wireshark";

/// Was each TCP connection encrypted, how, and with which TLS version?
#[derive(Debug, Parser)]
#[command(
    name = "tlswatch",
    version,
    about,
    max_term_width = 100,
    after_help = EXAMPLES
)]
pub struct Args {
    /// Read packets from a pcap or pcapng file ('-' for standard input). Repeat for several files, read in order into one flow table.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<String>,

    /// Capture live from an interface (needs the `live` build feature).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,

    /// Print one JSON document.
    #[arg(long, conflicts_with = "ndjson")]
    pub json: bool,

    /// Print one JSON line per flow as it ends, then a summary line.
    #[arg(long)]
    pub ndjson: bool,

    /// Also list flows that carried no payload (scans, bare handshakes).
    #[arg(long)]
    pub all: bool,

    /// Exit with status 1 when any listed flow carries one of these finding codes, or a finding of
    /// this severity or worse (info, low, medium, high, critical); comma-separated, mixed.
    #[arg(
        long = "fail-on",
        value_name = "CODE|SEVERITY,...",
        value_delimiter = ','
    )]
    pub fail_on: Vec<String>,

    /// One record per server (ip, port): the server table replaces the flow table; in JSON a
    /// `servers` array beside `flows`; in NDJSON server lines before the summary.
    #[arg(long)]
    pub servers: bool,

    /// Most servers inventoried by --servers; flows to further servers are only counted.
    #[arg(long = "max-servers", value_name = "N", default_value_t = crate::output::servers::MAX_SERVERS)]
    pub max_servers: usize,

    /// Also expect TLS from the first byte on this port (repeatable; adds to the IANA list).
    #[arg(long = "tls-port", value_name = "N")]
    pub tls_port: Vec<u16>,

    /// No progress display on standard error.
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Print a man page or a shell completion script, and exit.
    #[arg(long, value_enum, value_name = "KIND")]
    pub generate: Option<Generate>,

    /// Worker threads for the flow table (default: the number of cores, at most 64); 1 runs
    /// everything in one thread.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,

    /// Keep only the flows in shard K of N (stable symmetric flow hash, see the README), so
    /// N processes can split one capture or link between them.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,

    /// Only analyse TCP segments and UDP datagrams to or from this port (repeatable).
    #[arg(long = "port", value_name = "N")]
    pub port: Vec<u16>,

    /// End a flow after this many seconds of packet time without a packet.
    #[arg(long = "idle-timeout", value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u32,

    /// End a UDP conversation (QUIC, DTLS) after this many seconds of packet time without a datagram.
    #[arg(long = "udp-idle-timeout", value_name = "SECS", default_value_t = 120)]
    pub udp_idle_timeout: u32,

    /// Most flows held at once; past it the least recently active are ended early.
    #[arg(long = "max-flows", value_name = "N", default_value_t = 1_000_000)]
    pub max_flows: usize,

    /// Memory for flow state, reassembly and analyzer buffers and closed-connection records
    /// (K, M, G = KiB, MiB, GiB). Past it, out-of-order buffering stops for the oldest
    /// flows, then the least recently active flows are ended early.
    #[arg(long = "memcap", value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    pub memcap: usize,

    /// Show the user name of credentials seen in cleartext (never the password).
    #[arg(long = "show-users")]
    pub show_users: bool,

    /// Seed of the Community ID on every record (Zeek, Suricata and Wireshark take one too).
    #[arg(long = "community-id-seed", value_name = "N", default_value_t = 0)]
    pub community_id_seed: u16,

    /// List (and write out, and transcribe with --transcript selected) only the flows that
    /// match: finding codes and severities as --fail-on takes them, encryption=E, app=P,
    /// server=IP or server=IP:PORT, id=N; words of one kind are alternatives, every kind given
    /// must match.
    #[arg(long = "select", value_name = "WORD,...", value_delimiter = ',')]
    pub select: Vec<String>,

    /// Print the transcript of flow ID instead of the table: its cleartext phase line by line
    /// with frame numbers (credentials redacted), the handshake, the verdict and the findings
    /// (repeatable; 'selected': every flow --select chooses). Reads the files twice.
    #[arg(long = "transcript", value_name = "ID|selected", value_delimiter = ',')]
    pub transcript: Vec<String>,

    /// Write every packet of the listed flows (those --select chooses) to this pcapng file,
    /// which Wireshark and tlswatch read. Reads the files twice.
    #[arg(long = "write-flows", value_name = "FILE")]
    pub write_flows: Option<String>,

    /// Colour in the table.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,

    /// List the interfaces live capture can use, and exit.
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,

    /// Live: stop after this many packets.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,

    /// Live: stop after this many seconds.
    #[arg(long = "duration", value_name = "SECS")]
    pub duration: Option<u64>,

    /// Live: also write the captured packets to this pcap file.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<String>,

    /// Live: bytes captured per packet.
    #[arg(long = "snaplen", value_name = "BYTES", default_value_t = 262_144)]
    pub snaplen: u32,

    /// Live: do not put the interface in promiscuous mode.
    #[arg(long = "no-promisc")]
    pub no_promisc: bool,

    /// Live: kernel capture buffer size in MiB.
    #[arg(long = "buffer-size", value_name = "MIB", default_value_t = 128)]
    pub buffer_size: u32,

    /// Live: after opening the interface, run as this user (default: the user who ran sudo).
    #[arg(short = 'Z', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// Live: keep running as root after opening the interface.
    #[arg(long = "keep-root")]
    pub keep_root: bool,

    /// A capture filter as tcpdump takes it (live capture, and files in a `live` build).
    #[arg(value_name = "FILTER", trailing_var_arg = true)]
    pub filter: Vec<String>,
}

/// A byte size: a number with an optional K, M, G or T suffix (powers of 1024; `KiB`,
/// `MB` and the like are read the same way).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (a number with an optional K, M, G or T)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("'{s}': unknown unit (use K, M, G or T)")),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if bytes < MIN_MEMCAP {
        return Err(format!("'{s}' is below the minimum of 1M"));
    }
    Ok(bytes)
}

impl Args {
    /// Checks the arguments and builds the configuration.
    pub fn into_config(self) -> Result<Config, String> {
        self.check_inputs()?;
        let fail_on = FailOn::parse(&self.fail_on)?;
        let threads = self.thread_count()?;
        let shard = self.shard.as_deref().map(Shard::parse).transpose()?;
        if self.max_flows == 0 {
            return Err("--max-flows must be at least 1".to_string());
        }
        if self.max_servers == 0 {
            return Err("--max-servers must be at least 1".to_string());
        }
        let format = self.format();
        let (bpf, filter_expr) = self.bpf();
        let limits = self.limits();
        let (select, transcript) = self.evidence()?;
        Ok(Config {
            bpf,
            filter_expr,
            list_interfaces: self.list_interfaces,
            threads,
            shard,
            live: LiveOptions {
                count: self.count,
                duration: self.duration,
                write: self.write,
                snaplen: self.snaplen,
                promisc: !self.no_promisc,
                buffer_mib: self.buffer_size,
                user: self.user,
                keep_root: self.keep_root,
            },
            inputs: self.read,
            interface: self.interface,
            format,
            all: self.all,
            fail_on,
            servers: self.servers.then_some(self.max_servers),
            policy: Policy::with_tls_ports(&self.tls_port),
            quiet: self.quiet,
            ports: self.port,
            limits,
            opts: Options {
                show_users: self.show_users,
            },
            color: self.color.into(),
            community_id_seed: self.community_id_seed,
            select,
            transcript,
            write_flows: self.write_flows,
        })
    }

    /// Exactly one source: files (`-r`) or an interface (`-i`), unless only
    /// the interfaces are listed.
    fn check_inputs(&self) -> Result<(), String> {
        if self.read.is_empty() && self.interface.is_none() && !self.list_interfaces {
            return Err("nothing to read: give -r FILE (or -i IFACE); see --help".to_string());
        }
        if !self.read.is_empty() && self.interface.is_some() {
            return Err("-r and -i cannot be combined".to_string());
        }
        Ok(())
    }

    /// `--select` and `--transcript`, checked; with `--write-flows`, they need files
    /// that can be read a second time.
    fn evidence(&self) -> Result<(Option<Select>, Transcripts), String> {
        let select = if self.select.is_empty() {
            None
        } else {
            Some(Select::parse(&self.select)?)
        };
        let transcript = Transcripts::parse(&self.transcript)?;
        let twice = self.write_flows.is_some() || !transcript.is_empty();
        if twice && self.interface.is_some() {
            return Err(
                "--transcript and --write-flows read the capture twice: save it with -w FILE, \
                        then run them on the file"
                    .to_string(),
            );
        }
        if twice && self.read.iter().any(|r| r == "-") {
            return Err(
                "--transcript and --write-flows read the capture twice: not from standard input"
                    .to_string(),
            );
        }
        if let Some(out) = &self.write_flows
            && self.read.iter().any(|r| same_file(r, out))
        {
            return Err(format!("--write-flows {out}: that is an input"));
        }
        Ok((select, transcript))
    }

    /// `--threads`, checked; by default one per available core, up to [`MAX_THREADS`].
    fn thread_count(&self) -> Result<usize, String> {
        match self.threads {
            Some(0) => Err("--threads must be at least 1".to_string()),
            Some(n) if n > MAX_THREADS => Err(format!("--threads: at most {MAX_THREADS}")),
            Some(n) => Ok(n),
            None => Ok(std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(MAX_THREADS)),
        }
    }

    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else if self.ndjson {
            Format::Ndjson
        } else {
            Format::Table
        }
    }

    /// The BPF expression (the trailing filter and the `--port`s combined; empty
    /// for none) and the trailing filter alone.
    fn bpf(&self) -> (String, String) {
        let expr = self.filter.join(" ");
        let ports = self
            .port
            .iter()
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let expr = expr.trim().to_string();
        let bpf = match (expr.is_empty(), ports.is_empty()) {
            (true, true) => String::new(),
            (false, true) => expr.clone(),
            (true, false) => ports,
            (false, false) => format!("({expr}) and ({ports})"),
        };
        (bpf, expr)
    }

    /// The flow table's limits (`--max-flows`, `--memcap`, the idle timeouts).
    fn limits(&self) -> Limits {
        Limits {
            max_flows: self.max_flows,
            memcap: self.memcap,
            idle_timeout_secs: i64::from(self.idle_timeout.max(1)),
            udp_idle_timeout_secs: i64::from(self.udp_idle_timeout.max(1)),
            ..Limits::default()
        }
    }
}

/// Whether two paths name one file (as given, or once resolved).
fn same_file(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Writes the man page or a completion script for `kind`.
pub fn generate(kind: Generate, out: &mut dyn Write) -> io::Result<()> {
    use clap_complete::Shell;
    let mut cmd = Args::command();
    let shell = match kind {
        Generate::Man => return man_page(cmd, out),
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::CompletePowershell => Shell::PowerShell,
    };
    clap_complete::generate(shell, &mut cmd, "tlswatch", out);
    Ok(())
}

/// The man page: clap's sections, then the examples and exit statuses as roff
/// lists (the help text's layout would be refilled by the formatter).
fn man_page(cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.after_help(None::<&str>));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    writeln!(out, ".SH EXAMPLES")?;
    for (command, meaning) in examples() {
        writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{}",
            roff_escape(command),
            roff_escape(meaning)
        )?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (status, meaning) in EXIT_STATUS {
        writeln!(out, ".TP\n.B {status}\n{}", roff_escape(meaning))?;
    }
    man.render_version_section(out)
}

/// What each exit status means (the README's table).
const EXIT_STATUS: &[(u8, &str)] = &[
    (
        0,
        "all inputs read (a capture cut off mid-packet is a warning, not an error)",
    ),
    (
        1,
        "a listed flow carries a finding named in --fail-on, or one of the severity given there or worse",
    ),
    (
        2,
        "an input could not be read, or a usage error; flows read so far are still reported",
    ),
];

/// The (command, meaning) pairs of the help text's examples.
fn examples() -> impl Iterator<Item = (&'static str, &'static str)> {
    let mut lines = EXAMPLES.lines().skip(1);
    std::iter::from_fn(move || Some((lines.next()?.trim(), lines.next()?.trim())))
}

/// Escapes text for a roff line: backslashes, hyphens (so they stay ASCII in the
/// output), and a leading control character.
fn roff_escape(s: &str) -> String {
    let body = s.replace('\\', "\\e").replace('-', "\\-");
    if body.starts_with(['.', '\'']) {
        format!("\\&{body}")
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Code;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1gib"), Ok(1 << 30));
        assert_eq!(parse_size("2048K"), Ok(2 << 20));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert!(parse_size("1048575").is_err());
        assert!(parse_size("64X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    fn config(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["tlswatch"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv)
            .map_err(|e| e.to_string())?
            .into_config()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn fail_on_severity_and_tls_ports_reach_the_config() {
        let c = config(&[
            "-r",
            "x.pcap",
            "--fail-on",
            "critical,CLEARTEXT_AUTH",
            "--tls-port",
            "8993",
        ])
        .unwrap();
        assert_eq!(c.fail_on.severity, Some(crate::record::Severity::Critical));
        assert_eq!(c.fail_on.codes, [Code::CleartextAuth]);
        assert!(c.policy.tls_ports().contains(&8993));
        assert!(c.policy.tls_ports().contains(&993));
        assert!(config(&["-r", "x", "--fail-on", "bogus"]).is_err());
        assert!(config(&["-r", "x", "--servers", "--max-servers", "0"]).is_err());
        assert_eq!(config(&["-r", "x"]).unwrap().servers, None);
        let c = config(&["-r", "x", "--servers", "--max-servers", "7"]).unwrap();
        assert_eq!(c.servers, Some(7));
    }

    #[test]
    fn man_page_lists_every_example_and_exit_status() {
        let mut out = Vec::new();
        generate(Generate::Man, &mut out).unwrap();
        let man = String::from_utf8(out).unwrap();
        assert_eq!(examples().count(), 6);
        for (command, meaning) in examples() {
            assert!(command.starts_with("tlswatch -r"), "{command}");
            assert!(man.contains(&roff_escape(command)), "{command}");
            assert!(man.contains(&roff_escape(meaning)), "{meaning}");
        }
        assert!(man.contains(".SH \"EXIT STATUS\""));
        assert!(
            !man.contains("Examples:"),
            "help-text layout leaked into the man page"
        );
    }

    #[test]
    fn every_generated_kind_is_written() {
        for kind in Generate::value_variants() {
            let mut out = Vec::new();
            generate(*kind, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("tlswatch"), "{kind:?}");
            assert!(text.contains("fail"), "{kind:?}");
        }
    }
}
