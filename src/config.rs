//! The run's configuration, as the command line (or a test) builds it and the
//! engine reads it: inputs, output format, caps and timeouts, the policy, threads.
//! Depends on no stage that reads it.

use crate::analyzer::options::Options;
use crate::assess::{FailOn, Policy};
use crate::evidence::transcripts::Transcripts;
use crate::pipeline::shard::Shard;

/// Most worker threads `--threads` accepts; also caps the default (the core count).
pub const MAX_THREADS: usize = 64;
/// When output is coloured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
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
    /// Tab-separated values (`--format tsv`).
    Tsv,
}

/// A validated run configuration.
#[derive(Debug)]
pub struct Config {
    pub inputs: Vec<String>,
    pub interface: Option<String>,
    pub format: Format,
    /// The TSV columns (`--fields`), with [`Format::Tsv`].
    pub fields: Option<crate::output::tsv::Columns>,
    /// `--select`: the flows listed, written out and transcribed (the summary and
    /// `--fail-on` still see every flow).
    pub select: Option<crate::output::select::Select>,
    /// `--sort`: the order flows and servers are listed in (else as they end).
    pub sort: Option<crate::output::select::Order>,
    pub all: bool,
    pub fail_on: FailOn,
    /// `--servers`: the most servers inventoried.
    pub servers: Option<usize>,
    /// `--certificates`: the most certificates inventoried.
    pub certificates: Option<usize>,
    /// Run-time policy (`--tls-port`, trust anchors, `--cert-expiry-days`).
    pub policy: Policy,
    /// `--quiet`: no progress display.
    pub quiet: bool,
    pub ports: Vec<u16>,
    pub limits: Limits,
    pub opts: Options,
    /// `--keylog` files, loaded into `keys` when the run starts.
    pub keylog: Vec<String>,
    /// The run's key table: the `--keylog` files, then the secrets the inputs carry.
    pub keys: std::sync::Arc<crate::keylog::KeyLog>,
    pub color: ColorChoice,
    /// The BPF expression: the trailing filter and `--port`s combined; empty for none.
    pub bpf: String,
    /// The trailing filter expression alone.
    pub filter_expr: String,
    pub list_interfaces: bool,
    pub live: LiveOptions,
    /// Worker threads (1: no threads besides the one running).
    pub threads: usize,
    /// `--shard K/N`.
    pub shard: Option<Shard>,
    /// `--community-id-seed`: the seed of every record's Community ID (0 by default).
    pub community_id_seed: u16,
    /// `--transcript`: the flows whose transcripts replace the usual output.
    pub transcript: Transcripts,
    /// `--write-flows`: the capture the chosen flows' packets are written to.
    pub write_flows: Option<String>,
}

/// Smallest `--memcap` accepted: room for a few busy flows.
pub const MIN_MEMCAP: usize = 1 << 20;

/// Default `--memcap`: 1 GiB.
pub const DEFAULT_MEMCAP: usize = 1 << 30;

/// Caps and timeouts, in one place.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most flows held at once; past it the least recently active are evicted.
    pub max_flows: usize,
    /// A flow with no packet for this long (packet time) is ended.
    pub idle_timeout_secs: i64,
    /// Bytes of flow state, reassembly buffers, analyzer state and closed-connection
    /// tombstones held at once. Past it, out-of-order buffering stops for the flows that
    /// started buffering first, then tombstones are dropped, then the least recently
    /// active flows are evicted.
    pub memcap: usize,
    /// Per-direction reassembly caps.
    pub stream: StreamLimits,
    /// A UDP conversation with no datagram for this long (packet time) is ended.
    pub udp_idle_timeout_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_flows: 1_000_000,
            idle_timeout_secs: 300,
            memcap: DEFAULT_MEMCAP,
            stream: StreamLimits::default(),
            udp_idle_timeout_secs: UdpLimits::default().idle_timeout_secs,
        }
    }
}

/// Caps and timeouts of the UDP table.
#[derive(Clone, Copy, Debug)]
pub struct UdpLimits {
    /// Most conversations held at once; past it the least recently active are evicted.
    pub max_flows: usize,
    /// A conversation with no datagram for this long (packet time) is ended.
    pub idle_timeout_secs: i64,
}

impl Default for UdpLimits {
    fn default() -> Self {
        UdpLimits {
            max_flows: 1_000_000,
            idle_timeout_secs: 120,
        }
    }
}

/// Per-direction cap on out-of-order buffering, so a hostile or lossy capture cannot make one
/// flow hold unbounded memory.
#[derive(Clone, Copy, Debug)]
pub struct StreamLimits {
    /// Out-of-order budget per direction in bytes (default 256 KiB): the bytes held plus
    /// 64 per run of contiguous bytes (adjacent pieces are merged into one run, in whatever
    /// order they arrive). Exceeding it turns the oldest hole into a gap instead of growing;
    /// scattered pieces with holes between them therefore reach it after at most
    /// 256 KiB / 65 ≈ 4,000 runs.
    pub max_buffered: usize,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_buffered: 256 * 1024,
        }
    }
}
