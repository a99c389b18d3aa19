//! One run: inputs through the flow engine into a sink; exit status.

use crate::cli::Config;
use crate::collect::{Collector, input_notices, make_sink};
pub use crate::collect::{Exit, Report};
use crate::flow::Engine;
use crate::output::Sink;
#[cfg(not(feature = "live"))]
use crate::output::Summary;
use crate::pipeline::Inline;
use crate::progress::Progress;
use crate::record::EndReason;

/// Runs tlswatch as configured, writing to standard output.
pub fn run(cfg: &Config) -> Exit {
    if cfg.list_interfaces {
        return list_interfaces();
    }
    let live = cfg.interface.is_some();
    let progress = if live {
        Progress::off()
    } else {
        Progress::for_files(cfg)
    };
    let mut sink = make_sink(cfg, live, &progress);
    let report = if live {
        live_run(cfg, sink.as_mut())
    } else {
        process(cfg, sink.as_mut(), &progress)
    };
    report.exit
}

#[cfg(feature = "live")]
fn list_interfaces() -> Exit {
    crate::live::list_interfaces()
}

#[cfg(not(feature = "live"))]
fn list_interfaces() -> Exit {
    eprintln!("error: {NO_LIVE}");
    Exit::Error
}

#[cfg(feature = "live")]
fn live_run(cfg: &Config, sink: &mut dyn Sink) -> Report {
    crate::live::run(cfg, sink)
}

/// How to get live capture in a build without it.
#[cfg(not(feature = "live"))]
const NO_LIVE: &str = "live capture needs a build with the `live` feature: \
    apt-get install libpcap-dev, then cargo install --path . --features live";

#[cfg(not(feature = "live"))]
fn live_run(cfg: &Config, sink: &mut dyn Sink) -> Report {
    let _ = sink;
    let iface = cfg.interface.as_deref().unwrap_or_default();
    eprintln!("error: {iface}: {NO_LIVE}");
    Report {
        exit: Exit::Error,
        summary: Summary::new(Vec::new()),
    }
}

/// Reads every input into one flow table and writes results to `sink`.
pub fn process(cfg: &Config, sink: &mut dyn Sink, progress: &Progress) -> Report {
    let mut col = Collector::new(cfg, sink, cfg.inputs.clone());
    let mut filter = match file_filter(cfg) {
        Ok(f) => f,
        Err(msg) => {
            col.error(msg);
            return col.abort();
        }
    };
    let mut inline = Inline::new(Engine::new(cfg.limits, cfg.opts, cfg.ports.clone()));
    let mut failed = false;
    for input in &cfg.inputs {
        let before = inline.stats().unsupported_link_types;
        let result = progress.read_path(input, &mut |p| {
            if filter.as_mut().is_none_or(|f| f.matches(p)) {
                inline.packet(p, &mut |rec| col.emit(rec));
            } else {
                inline.skip();
            }
        });
        let after = inline.stats().unsupported_link_types;
        for notice in input_notices(input, &result, &before, &after) {
            failed |= notice.is_error();
            progress.suspend(|| col.notice(notice));
        }
        if col.broken() {
            break;
        }
    }
    col.summary.memory = inline.memory();
    let (stats, evicted) = inline.finish(EndReason::EndOfInput, &mut |rec| col.emit(rec));
    progress.finish();
    col.finish(stats, evicted, failed)
}

#[cfg(feature = "live")]
fn file_filter(cfg: &Config) -> Result<Option<crate::live::FileFilter>, String> {
    if cfg.filter_expr.is_empty() {
        // `--port` alone is applied by the flow engine; no BPF needed for files.
        return Ok(None);
    }
    let f = crate::live::FileFilter::new(cfg.bpf.clone());
    f.check()?;
    Ok(Some(f))
}

/// Stand-in for a BPF filter in builds without libpcap.
#[cfg(not(feature = "live"))]
pub struct NoFilter;

#[cfg(not(feature = "live"))]
impl NoFilter {
    fn matches(&mut self, _p: &crate::capture::Packet<'_>) -> bool {
        true
    }
}

#[cfg(not(feature = "live"))]
fn file_filter(cfg: &Config) -> Result<Option<NoFilter>, String> {
    if !cfg.filter_expr.is_empty() {
        return Err(format!(
            "a filter expression needs a build with the `live` feature (libpcap compiles it): {}",
            cfg.filter_expr
        ));
    }
    Ok(None)
}
