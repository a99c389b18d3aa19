//! Command-line arguments, turned into a validated configuration.

use crate::analyzer::options::Options;
use crate::assess::trust::TrustStore;
use crate::assess::{FailOn, Policy};
use crate::config::{ColorChoice, Config, Format, Limits, LiveOptions, MAX_THREADS, MIN_MEMCAP};
use crate::evidence::transcripts::Transcripts;
use crate::output::select::{Order, Select};
use crate::output::tsv::Columns;
use crate::pipeline::shard::Shard;
use crate::record::Severity;
use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::{CommandFactory, Parser, ValueEnum};
use std::io::{self, Write};

mod complete;
mod man;

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
    /// The man page (roff): read it with man -l, or install it in a man1 directory.
    Man,
    /// Bash completion: source it, or put it in the bash-completion directory.
    CompleteBash,
    /// Zsh completion: save it as _tlswatch in a directory of the fpath array.
    CompleteZsh,
    /// Fish completion: save it as ~/.config/fish/completions/tlswatch.fish.
    CompleteFish,
    /// PowerShell completion: dot-source it from your PowerShell profile.
    CompletePowershell,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// The table (the default).
    Table,
    /// One JSON document (as --json).
    Json,
    /// One JSON line per flow (as --ndjson).
    Ndjson,
    /// Tab-separated values with a header line (columns from --fields).
    Tsv,
}

/// `--sort`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SortArg {
    /// Worst finding first (servers: then most flows).
    Severity,
    /// By server address and port.
    Server,
    /// By first packet.
    Start,
}

impl From<SortArg> for Order {
    fn from(s: SortArg) -> Self {
        match s {
            SortArg::Severity => Order::Severity,
            SortArg::Server => Order::Server,
            SortArg::Start => Order::Start,
        }
    }
}

/// A list option's words as completions offer them; any word is accepted here
/// and checked when the configuration is built (with a message naming every
/// valid one).
#[derive(Clone, Copy, Debug)]
struct Words(fn() -> Vec<String>);

impl TypedValueParser for Words {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<String, clap::Error> {
        StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new((self.0)().into_iter().map(PossibleValue::new)))
    }
}

/// Was each TCP connection and UDP conversation encrypted, how, and with which TLS version?
///
/// tlswatch reads packet captures (or a live interface), reassembles every TCP
/// connection and follows UDP conversations, and reports per flow whether it was
/// protected and how: TLS from the first byte, the STARTTLS-style upgrade of a
/// plaintext protocol (SMTP, IMAP, POP3, FTP, XMPP, LDAP, PostgreSQL, MySQL, RDP and
/// more), QUIC or DTLS; the TLS version, the server name and certificate; and
/// findings (codes with a fixed severity, each explained in the man page) such as
/// SSLv3, plaintext, a refused or stripped upgrade, or credentials sent in the
/// clear. Output is a table sized to the terminal, JSON, NDJSON or tab-separated
/// values; the exit status can gate a CI job (--fail-on).
#[derive(Debug, Parser)]
#[command(
    name = "tlswatch",
    version,
    max_term_width = 100,
    after_help = man::EXAMPLES
)]
pub struct Args {
    /// Read packets from a pcap or pcapng file ('-' for standard input). Repeat for several files, read in order into one flow table.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<String>,

    /// Capture live from an interface (any for all; needs a build with the live feature).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,

    /// Print one JSON document.
    #[arg(long, conflicts_with = "ndjson")]
    pub json: bool,

    /// Print one JSON line per flow as it ends, then a summary line.
    #[arg(long)]
    pub ndjson: bool,

    /// Output format: table (the default; sized to the terminal, endpoints never cut), json,
    /// ndjson, or tsv (tab-separated values with a header line, for spreadsheets and cut or awk).
    #[arg(long, value_enum, value_name = "FORMAT", conflicts_with_all = ["json", "ndjson"])]
    pub format: Option<FormatArg>,

    /// With --format tsv: the columns, comma-separated. Named fields (id, start, client, server,
    /// app, encryption, version, sni, certificate, not_after, severity, findings and more; the man
    /// page lists them under TSV FIELDS) or a dotted path into the JSON record, such as
    /// tls.client_hello.ja4.
    #[arg(
        long,
        value_name = "FIELD,...",
        value_delimiter = ',',
        value_parser = Words(complete::field_words),
        hide_possible_values = true
    )]
    pub fields: Vec<String>,

    /// List only the flows that match (see SELECTION in the man page for the words).
    #[arg(
        long,
        help = "List only the flows that match (the summary and --fail-on still count every \
                flow): finding codes and severities as --fail-on takes them, encryption=VALUE, \
                app=PROTOCOL, server=IP[:PORT], client=IP[:PORT], id=N[-M]; comma-separated. \
                Words of one kind are alternatives, different kinds must all match. With \
                --servers, the servers of the flows that match",
        value_name = "WORD,...",
        value_delimiter = ',',
        value_parser = Words(complete::select_words),
        hide_possible_values = true
    )]
    pub select: Vec<String>,

    /// Print the transcript of flow ID instead of the report: its cleartext phase line by line
    /// with frame numbers (credentials redacted), the handshake, the verdict and the findings
    /// (repeatable; 'selected': every flow --select chooses). Reads the files twice.
    #[arg(long = "transcript", value_name = "ID|selected", value_delimiter = ',')]
    pub transcript: Vec<String>,

    /// Write every packet of the listed flows (those --select chooses) to this pcapng file,
    /// which Wireshark and tlswatch read. Reads the files twice.
    #[arg(long = "write-flows", value_name = "FILE")]
    pub write_flows: Option<String>,

    /// Seed of the Community ID on every record (Zeek, Suricata and Wireshark take one too).
    #[arg(long = "community-id-seed", value_name = "N", default_value_t = 0)]
    pub community_id_seed: u16,

    /// List flows (and servers) in this order instead of as they end: severity (worst first),
    /// server (address and port), or start (first packet). Holds every listed flow until the end.
    #[arg(long, value_enum, value_name = "KEY")]
    pub sort: Option<SortArg>,

    /// Also list flows that carried no payload (scans, bare handshakes).
    #[arg(long)]
    pub all: bool,

    /// Exit with status 1 when any listed flow carries one of these finding codes, or a finding of
    /// this severity or worse (info, medium, high, critical); comma-separated, mixed.
    #[arg(
        long = "fail-on",
        value_name = "CODE|SEVERITY,...",
        value_delimiter = ',',
        value_parser = Words(complete::fail_on_words),
        hide_possible_values = true
    )]
    pub fail_on: Vec<String>,

    /// One record per server (ip, port): the server table replaces the flow table; in JSON a
    /// servers array beside flows; in NDJSON server lines before the summary; in TSV server lines.
    #[arg(long)]
    pub servers: bool,

    /// Most servers inventoried by --servers; flows to further servers are only counted.
    #[arg(long = "max-servers", value_name = "N", default_value_t = crate::output::servers::MAX_SERVERS)]
    pub max_servers: usize,

    /// One record per distinct certificate (subject, issuer, validity, key, validation, the
    /// servers that presented it): the certificate table replaces the flow table; in JSON a
    /// certificates array; in NDJSON certificate lines before the summary.
    #[arg(long)]
    pub certificates: bool,

    /// Most distinct certificates inventoried by --certificates (those with the smallest
    /// SHA-256 are kept); further ones are only counted.
    #[arg(long = "max-certificates", value_name = "N", default_value_t = crate::output::certificates::MAX_CERTIFICATES)]
    pub max_certificates: usize,

    /// Trust the certificates of this PEM file when validating chains (repeatable; adds to
    /// Mozilla's roots unless --no-default-roots).
    #[arg(long = "ca-file", value_name = "FILE")]
    pub ca_file: Vec<String>,

    /// Trust the certificates of the PEM files in this directory, e.g. /etc/ssl/certs
    /// (repeatable).
    #[arg(long = "ca-path", value_name = "DIR")]
    pub ca_path: Vec<String>,

    /// Do not trust Mozilla's built-in roots: only --ca-file and --ca-path.
    #[arg(long = "no-default-roots")]
    pub no_default_roots: bool,

    /// CERT_EXPIRING when a certificate of the server's chain ends within this many days of
    /// the flow (0: never).
    #[arg(long = "cert-expiry-days", value_name = "N", default_value_t = crate::assess::chain::CERT_EXPIRY_DAYS)]
    pub cert_expiry_days: u32,

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

    /// Keep only the flows in shard K of N (0 <= K < N), so N processes can split one capture or
    /// link between them. A flow's shard is a hash modulo N: FNV-1a 64 over its IP protocol number
    /// and its two endpoints (16-byte address, then port; the smaller endpoint first), finished
    /// with MurmurHash3's fmix64. Both directions, every process and every version agree on it.
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

    /// Show the user name of credentials seen in cleartext (never the password): in JSON, in TSV
    /// (users), and in the table a USER column with the user and the mechanism.
    #[arg(long = "show-users")]
    pub show_users: bool,

    /// Decrypt TLS 1.3 and QUIC handshakes (never application data) with the secrets of
    /// this NSS key log file (SSLKEYLOGFILE format; repeatable). Secrets a pcapng carries
    /// (Decryption Secrets Blocks) are used without it.
    #[arg(long = "keylog", value_name = "FILE")]
    pub keylog: Vec<String>,

    /// Colour in the table, following severity (auto: on a terminal, unless NO_COLOR is set).
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,

    /// List the interfaces live capture can use, and exit.
    #[arg(short = 'D', long = "list-interfaces")]
    pub list_interfaces: bool,

    /// Stop after this many packets (with -r: packets read that pass the filter expression and
    /// --port, over all files).
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,

    /// Live: stop after this many seconds.
    #[arg(long = "duration", value_name = "SECS")]
    pub duration: Option<u64>,

    /// Also write the packets captured (or, with -r, read) that pass the filter expression and
    /// --port to this pcap file.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<String>,

    /// Live: bytes captured per packet (default 262144).
    #[arg(long = "snaplen", value_name = "BYTES")]
    pub snaplen: Option<u32>,

    /// Live: do not put the interface in promiscuous mode.
    #[arg(long = "no-promisc")]
    pub no_promisc: bool,

    /// Live: kernel capture buffer size in MiB (default 128).
    #[arg(long = "buffer-size", value_name = "MIB")]
    pub buffer_size: Option<u32>,

    /// Live: after opening the interface, run as this user (default: the user who ran sudo).
    #[arg(short = 'Z', long = "user", value_name = "USER")]
    pub user: Option<String>,

    /// Live: keep running as root after opening the interface.
    #[arg(long = "keep-root")]
    pub keep_root: bool,

    /// A capture filter as tcpdump takes it (live capture, and files in a build with the live
    /// feature).
    #[arg(value_name = "FILTER", trailing_var_arg = true)]
    pub filter: Vec<String>,
}

/// The TSV columns, the selection and the order of a report.
type View = (Option<Columns>, Option<Select>, Option<Order>);

/// Default `--snaplen`.
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// Default `--buffer-size`, in MiB.
pub const DEFAULT_BUFFER_MIB: u32 = 128;

/// A byte size: a number, whole or decimal (`1.5G`), with an optional K, M, G or T
/// suffix (powers of 1024; `KiB`, `MB` and the like are read the same way).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let not_a_size = || format!("'{s}' is not a size (a number with an optional K, M, G or T)");
    let (whole, fraction) = num.split_once('.').unwrap_or((num, ""));
    if whole.is_empty() || fraction.len() > 9 || fraction.contains('.') {
        return Err(not_a_size());
    }
    let whole: u128 = whole.parse().map_err(|_| not_a_size())?;
    let fraction_digits = u32::try_from(fraction.len()).unwrap_or(u32::MAX);
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| not_a_size())?
    };
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("'{s}': unknown unit (use K, M, G or T)")),
    };
    let scale = 10u128.pow(fraction_digits);
    let bytes = whole
        .checked_mul(scale)
        .and_then(|n| n.checked_add(fraction))
        .and_then(|n| n.checked_mul(1 << shift))
        .map(|n| n / scale)
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
        self.check_file_options()?;
        let fail_on = self.fail_on()?;
        let threads = self.thread_count()?;
        let shard = self.shard.as_deref().map(Shard::parse).transpose()?;
        if self.max_flows == 0 {
            return Err("--max-flows must be at least 1".to_string());
        }
        if self.max_servers == 0 {
            return Err("--max-servers must be at least 1".to_string());
        }
        if self.max_certificates == 0 {
            return Err("--max-certificates must be at least 1".to_string());
        }
        let policy = self.policy()?;
        let format = self.format();
        let (fields, select, sort) = self.view(format)?;
        let transcript = self.evidence()?;
        let (bpf, filter_expr) = self.bpf();
        let limits = self.limits();
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
                snaplen: self.snaplen.unwrap_or(DEFAULT_SNAPLEN),
                promisc: !self.no_promisc,
                buffer_mib: self.buffer_size.unwrap_or(DEFAULT_BUFFER_MIB),
                user: self.user,
                keep_root: self.keep_root,
            },
            inputs: self.read,
            interface: self.interface,
            format,
            fields,
            select,
            sort,
            all: self.all,
            fail_on,
            servers: self.servers.then_some(self.max_servers),
            certificates: self.certificates.then_some(self.max_certificates),
            policy,
            quiet: self.quiet,
            ports: self.port,
            limits,
            opts: Options {
                show_users: self.show_users,
            },
            keylog: self.keylog,
            community_id_seed: self.community_id_seed,
            transcript,
            write_flows: self.write_flows,
            keys: std::sync::Arc::default(),
            color: self.color.into(),
        })
    }

    /// The findings policy: `--tls-port`, the trust anchors, `--cert-expiry-days`.
    fn policy(&self) -> Result<Policy, String> {
        let mut policy =
            Policy::with_tls_ports(&self.tls_port).with_cert_expiry_days(self.cert_expiry_days);
        if !self.ca_file.is_empty() || !self.ca_path.is_empty() || self.no_default_roots {
            let store = TrustStore::load(&self.ca_file, &self.ca_path, self.no_default_roots)?;
            policy = policy.with_trust(std::sync::Arc::new(store));
        }
        Ok(policy)
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

    /// Options that act on a live capture only are refused with `-r` rather than
    /// ignored; `-c` and `-w` work with files too (as with tcpdump), checked here.
    /// A trailing word naming a file is a second capture missing its `-r`.
    fn check_file_options(&self) -> Result<(), String> {
        if self.count == Some(0) {
            return Err("-c must be at least 1".to_string());
        }
        if self.read.is_empty() {
            return Ok(());
        }
        let live_only = [
            ("--duration", self.duration.is_some()),
            ("--snaplen", self.snaplen.is_some()),
            ("--buffer-size", self.buffer_size.is_some()),
            ("--no-promisc", self.no_promisc),
            ("-Z/--user", self.user.is_some()),
            ("--keep-root", self.keep_root),
        ];
        if let Some((name, _)) = live_only.iter().find(|(_, given)| *given) {
            return Err(format!(
                "{name} applies to live capture (-i) only, not to files read with -r"
            ));
        }
        if let Some(word) = self.filter.iter().find(|w| names_a_capture(w)) {
            let first = self.read.first().map_or("FILE", String::as_str);
            return Err(format!(
                "'{word}' is a file, not a filter expression: each file needs its own -r \
                 (-r {first} -r {word})"
            ));
        }
        if let Some(out) = &self.write
            && let Ok(out) = std::fs::canonicalize(out)
            && self
                .read
                .iter()
                .any(|r| std::fs::canonicalize(r).is_ok_and(|r| r == out))
        {
            return Err(format!(
                "-w {}: is also read with -r; it would be overwritten while read",
                out.display()
            ));
        }
        Ok(())
    }

    /// `--fail-on`, parsed. An empty list (`--fail-on ''`, an unset variable) would
    /// gate nothing, and a severity no finding has would never match: both are
    /// refused.
    fn fail_on(&self) -> Result<FailOn, String> {
        let fail_on = FailOn::parse(&self.fail_on)?;
        if !self.fail_on.is_empty() && fail_on.is_empty() {
            return Err(
                "--fail-on: empty: name finding codes or severities (or leave --fail-on out)"
                    .to_string(),
            );
        }
        let in_use = complete::severities_in_use();
        for word in &self.fail_on {
            let word = word.trim().to_ascii_lowercase();
            if let Some(s) = Severity::ALL.iter().find(|s| s.as_str() == word)
                && !in_use.contains(s)
            {
                let names: Vec<&str> = in_use.iter().map(|s| s.as_str()).collect();
                return Err(format!(
                    "--fail-on: no finding has severity '{word}' (findings are {}; a severity \
                     means that one or worse)",
                    names.join(", ")
                ));
            }
        }
        Ok(fail_on)
    }

    /// `--threads`, checked; by default one per available core, up to [`MAX_THREADS`].
    /// `--transcript`, checked; it and `--write-flows` need files that can be read a
    /// second time.
    fn evidence(&self) -> Result<Transcripts, String> {
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
        Ok(transcript)
    }

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
        match self.format {
            Some(FormatArg::Table) => Format::Table,
            Some(FormatArg::Json) => Format::Json,
            Some(FormatArg::Ndjson) => Format::Ndjson,
            Some(FormatArg::Tsv) => Format::Tsv,
            None if self.json => Format::Json,
            None if self.ndjson => Format::Ndjson,
            None => Format::Table,
        }
    }

    /// What the report lists and how: the TSV columns (`--fields`, TSV only), the
    /// selection and the order.
    fn view(&self, format: Format) -> Result<View, String> {
        let fields = match format {
            Format::Tsv => Some(Columns::parse(&self.fields, self.servers)?),
            _ if !self.fields.is_empty() => {
                return Err("--fields chooses the columns of --format tsv".to_string());
            }
            _ => None,
        };
        let select = Select::parse(&self.select)?;
        Ok((fields, select, self.sort.map(Order::from)))
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

/// Whether a trailing word, taken for a filter expression, names a capture file
/// instead: an existing file or folder whose name has a dot or slash (no filter
/// word does), or a name ending as captures and compressed captures do.
fn names_a_capture(word: &str) -> bool {
    const ENDINGS: [&str; 9] = [
        ".pcap", ".pcapng", ".cap", ".gz", ".zst", ".xz", ".bz2", ".lz4", ".dmp",
    ];
    let lower = word.to_ascii_lowercase();
    let exists = std::path::Path::new(word).exists() && (word.contains('.') || word.contains('/'));
    exists || ENDINGS.iter().any(|e| lower.ends_with(e))
}

/// Writes the man page or a completion script for `kind`.
pub fn generate(kind: Generate, out: &mut dyn Write) -> io::Result<()> {
    use clap_complete::Shell;
    let shell = match kind {
        Generate::Man => return man::page(Args::command(), out),
        Generate::CompleteBash => Shell::Bash,
        Generate::CompleteZsh => Shell::Zsh,
        Generate::CompleteFish => Shell::Fish,
        Generate::CompletePowershell => Shell::PowerShell,
    };
    complete::script(shell, Args::command(), out)
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
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_size("2.25M"), Ok(9 << 18));
        assert_eq!(parse_size("1.0000001M"), Ok(1 << 20));
        assert!(parse_size("0.5M").is_err(), "below the minimum");
        assert!(parse_size("1.5.5G").is_err());
        assert!(parse_size(".5G").is_err());
        assert!(parse_size("1.G").is_ok_and(|b| b == 1 << 30));
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
    fn format_fields_select_and_sort_reach_the_config() {
        let c = config(&[
            "-r",
            "x",
            "--format",
            "tsv",
            "--fields",
            "client,server,tls.version",
        ])
        .unwrap();
        assert_eq!(c.format, Format::Tsv);
        assert_eq!(
            c.fields,
            Some(Columns::parse(&["client", "server", "tls.version"], false).unwrap())
        );
        let c = config(&["-r", "x", "--format", "tsv", "--servers"]).unwrap();
        assert_eq!(c.fields, Some(Columns::defaults(true)));
        assert_eq!(
            config(&["-r", "x", "--format", "json"]).unwrap().format,
            Format::Json
        );
        assert_eq!(
            config(&["-r", "x", "--ndjson"]).unwrap().format,
            Format::Ndjson
        );
        assert!(config(&["-r", "x", "--json", "--format", "tsv"]).is_err());
        let e = config(&["-r", "x", "--fields", "client"]).unwrap_err();
        assert!(e.contains("--format tsv"), "{e}");
        assert!(config(&["-r", "x", "--format", "tsv", "--fields", "nope"]).is_err());
        let c = config(&[
            "-r",
            "x",
            "--select",
            "high,encryption=plaintext",
            "--sort",
            "server",
        ])
        .unwrap();
        assert_eq!(
            c.select,
            Select::parse(&["high", "encryption=plaintext"]).unwrap()
        );
        assert!(c.select.is_some());
        assert_eq!(c.sort, Some(Order::Server));
        assert!(config(&["-r", "x", "--select", "nope"]).is_err());
        assert!(config(&["-r", "x", "--sort", "nope"]).is_err());
        let c = config(&["-r", "x"]).unwrap();
        assert_eq!((c.select, c.sort, c.fields), (None, None, None));
    }

    #[test]
    fn list_options_offer_their_words_to_completion() {
        let cmd = Args::command();
        let values = |id: &str| -> Vec<String> {
            cmd.get_arguments()
                .find(|a| a.get_id() == id)
                .map(|a| {
                    a.get_possible_values()
                        .iter()
                        .map(|v| v.get_name().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        let fail_on = values("fail_on");
        for c in Code::ALL {
            assert!(fail_on.iter().any(|v| v == c.as_str()), "{c}");
        }
        assert!(fail_on.iter().any(|v| v == "critical"));
        let select = values("select");
        assert!(fail_on.iter().all(|w| select.contains(w)));
        assert!(select.iter().any(|v| v == "encryption=starttls-refused"));
        assert!(select.iter().any(|v| v == "server="));
        assert!(values("fields").iter().any(|v| v == "findings"));
        // Any word still reaches the configuration's own check.
        assert!(config(&["-r", "x", "--fail-on", "high,cleartext_auth"]).is_ok());
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
