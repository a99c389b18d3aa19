//! One run: inputs through the flow engine into a sink; exit status.
//!
//! In: a [`Config`]. Out: flow records in a sink (`collect`), progress on standard
//! error (`progress`), and the [`Exit`] status.

pub mod collect;
pub mod evidence;
#[cfg(feature = "live")]
pub mod live;
pub mod progress;
pub mod read;

use crate::config::Config;
use crate::keylog::LoadStats;
use crate::output::Sink;
#[cfg(not(feature = "live"))]
use crate::output::Summary;
use crate::pipeline::deliver::Notice;
use crate::pipeline::drive;
use crate::pipeline::stage::Stage;
use crate::record::EndReason;
use crate::run::collect::{Collector, SharedFrameMap, input_notices, make_sink};
pub use crate::run::collect::{Exit, Report};
use crate::run::progress::Progress;
use crate::run::read::{Reading, Save, file_filter};

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
    live::list_interfaces()
}

#[cfg(not(feature = "live"))]
fn list_interfaces() -> Exit {
    collect::say(&format!("error: {NO_LIVE}"));
    Exit::Error
}

#[cfg(feature = "live")]
fn live_run(cfg: &Config, sink: &mut dyn Sink) -> Report {
    live::run(cfg, sink)
}

/// How to get live capture in a build without it.
#[cfg(not(feature = "live"))]
const NO_LIVE: &str = "live capture needs a build with the `live` feature: \
    apt-get install libpcap-dev, then cargo install --path . --features live";

#[cfg(not(feature = "live"))]
fn live_run(cfg: &Config, sink: &mut dyn Sink) -> Report {
    let _ = sink;
    let iface = cfg.interface.as_deref().unwrap_or_default();
    collect::say(&format!("error: {iface}: {NO_LIVE}"));
    Report {
        exit: Exit::Error,
        summary: Summary::new(Vec::new()),
    }
}

/// Reads every input into one flow table and writes results to `sink`.
pub fn process(cfg: &Config, sink: &mut dyn Sink, progress: &Progress) -> Report {
    let mut col = Collector::new(cfg, sink, cfg.inputs.clone());
    if let Err(msg) = file_filter(cfg) {
        col.error(msg);
        return col.abort();
    }
    if let Err(msg) = col.load_keys(cfg) {
        col.error(msg);
        return col.abort();
    }
    let capture = match evidence::open_capture(cfg) {
        Ok(c) => c,
        Err(msg) => {
            col.error(msg);
            return col.abort();
        }
    };
    let save = match cfg.live.write.as_deref().map(Save::create).transpose() {
        Ok(save) => save,
        Err(msg) => {
            col.error(msg);
            return col.abort();
        }
    };
    let frames = col.frame_map();
    let (failed, totals) = drive(
        cfg,
        &mut col,
        &cfg.ports,
        EndReason::EndOfInput,
        false,
        |stage| read_files(cfg, stage, progress, save, &frames),
    );
    progress.finish();
    col.summary.memory = totals.memory;
    let chosen = col.take_chosen();
    let mut report = col.finish(totals.stats, totals.evicted, failed);
    if cfg.write_flows.is_some() || !cfg.transcript.is_empty() {
        let mut filter = file_filter(cfg).ok().flatten();
        let mut keep =
            |p: &crate::capture::Packet<'_>| filter.as_mut().is_none_or(|f| f.matches(p));
        if let Err(msg) = evidence::second_reading(cfg, chosen, capture, &mut keep) {
            eprintln!("error: {msg}");
            report.exit = Exit::Error;
        }
    }
    report
}

/// Reads the inputs in order into `stage` (until `-c` packets were read, or
/// nothing more can change the outcome), recording where each begins in
/// `frames`; says whether something failed.
fn read_files(
    cfg: &Config,
    stage: &mut dyn Stage,
    progress: &Progress,
    save: Option<Save>,
    frames: &SharedFrameMap,
) -> bool {
    // Compiled here, in the thread that reads; checked once already.
    let filter = file_filter(cfg).ok().flatten();
    let mut reading = Reading::new(filter, &cfg.ports, cfg.live.count, save);
    let mut failed = false;
    for input in &cfg.inputs {
        if let Ok(mut map) = frames.lock() {
            map.begin(stage.ordinal());
        }
        let before = stage.decode_stats().clone();
        let mut passed = 0;
        let mut secrets = LoadStats::default();
        let result = progress.read_path(
            input,
            &mut |p| reading.packet(p, stage, &mut passed),
            // Added before the packets after the block are handed on.
            &mut |kind, data| secrets.add(cfg.keys.add_block(kind, data)),
        );
        if let Some(w) = secrets.warning(input) {
            progress.suspend(|| stage.notice(Notice::Warn(w)));
        }
        let after = stage.decode_stats();
        for notice in input_notices(input, &result, &before, after, passed) {
            failed |= notice.is_error();
            progress.suspend(|| stage.notice(notice));
        }
        if stage.stopped() || reading.done() {
            break;
        }
    }
    for notice in reading.finish() {
        failed |= notice.is_error();
        progress.suspend(|| stage.notice(notice));
    }
    failed
}
