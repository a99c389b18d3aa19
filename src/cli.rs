//! Command-line arguments, turned into a validated configuration.

use crate::analyzer::Options;
use crate::flow::Limits;
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// Was each TCP connection encrypted, how, and with which TLS version?
#[derive(Debug, Parser)]
#[command(name = "tlswatch", version, about, max_term_width = 100)]
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

    /// Exit with status 1 when any listed flow carries one of these finding codes (comma-separated).
    #[arg(long = "fail-on", value_name = "CODE[,CODE...]", value_delimiter = ',')]
    pub fail_on: Vec<String>,

    /// Only analyse TCP segments to or from this port (repeatable).
    #[arg(long = "port", value_name = "N")]
    pub port: Vec<u16>,

    /// End a flow after this many seconds of packet time without a packet.
    #[arg(long = "idle-timeout", value_name = "SECS", default_value_t = 300)]
    pub idle_timeout: u32,

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

    /// Colour in the table.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

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

/// Live-capture settings.
#[derive(Clone, Debug, Default)]
pub struct LiveOptions {
    pub count: Option<u64>,
    pub duration: Option<u64>,
    pub write: Option<String>,
    pub snaplen: u32,
    pub promisc: bool,
    pub buffer_mib: u32,
    pub user: Option<String>,
    pub keep_root: bool,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Ndjson,
}

/// A validated run configuration.
#[derive(Debug)]
pub struct Config {
    pub inputs: Vec<String>,
    pub interface: Option<String>,
    pub format: Format,
    pub all: bool,
    pub fail_on: Vec<String>,
    pub ports: Vec<u16>,
    pub limits: Limits,
    pub opts: Options,
    pub color: ColorChoice,
    /// The BPF expression: the trailing filter and `--port`s combined; empty for none.
    pub bpf: String,
    /// The trailing filter expression alone.
    pub filter_expr: String,
    pub list_interfaces: bool,
    pub live: LiveOptions,
}

/// Smallest `--memcap` accepted: room for a few busy flows.
pub const MIN_MEMCAP: usize = 1 << 20;

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
        if self.read.is_empty() && self.interface.is_none() && !self.list_interfaces {
            return Err("nothing to read: give -r FILE (or -i IFACE); see --help".to_string());
        }
        if !self.read.is_empty() && self.interface.is_some() {
            return Err("-r and -i cannot be combined".to_string());
        }
        let mut fail_on = Vec::new();
        for code in self.fail_on {
            let code = code.trim().to_ascii_uppercase();
            if code.is_empty() {
                continue;
            }
            if !crate::assess::CODES.contains(&code.as_str()) {
                return Err(format!(
                    "--fail-on: unknown finding code '{code}' (known: {})",
                    crate::assess::CODES.join(", ")
                ));
            }
            fail_on.push(code);
        }
        if self.max_flows == 0 {
            return Err("--max-flows must be at least 1".to_string());
        }
        let format = if self.json {
            Format::Json
        } else if self.ndjson {
            Format::Ndjson
        } else {
            Format::Table
        };
        let expr = self.filter.join(" ");
        let ports = self
            .port
            .iter()
            .map(|p| format!("tcp port {p}"))
            .collect::<Vec<_>>()
            .join(" or ");
        let expr = expr.trim().to_string();
        let bpf = match (expr.is_empty(), ports.is_empty()) {
            (true, true) => String::new(),
            (false, true) => expr.clone(),
            (true, false) => ports,
            (false, false) => format!("({expr}) and ({ports})"),
        };
        Ok(Config {
            bpf,
            filter_expr: expr,
            list_interfaces: self.list_interfaces,
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
            ports: self.port,
            limits: Limits {
                max_flows: self.max_flows,
                memcap: self.memcap,
                idle_timeout_secs: i64::from(self.idle_timeout.max(1)),
                ..Limits::default()
            },
            opts: Options {
                show_users: self.show_users,
            },
            color: self.color,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
