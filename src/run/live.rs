//! A live run (cargo feature `live`): an interface through the pipeline into the
//! collector until a signal, `-c` or `--duration`, and `tlswatch -D`.

use crate::capture::Packet;
use crate::capture::live::{drop_root, now, open, wait_readable};
use crate::config::{Config, LiveOptions};
use crate::output::{CaptureStats, Sink};
use crate::pipeline::deliver::Notice;
use crate::pipeline::drive;
use crate::pipeline::stage::Stage;
use crate::record::EndReason;
use crate::run::collect::{Collector, Exit, Report, input_names, say};
use crate::time::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `tlswatch -D`: the interfaces libpcap can open.
pub fn list_interfaces() -> Exit {
    match pcap::Device::list() {
        Ok(devs) => {
            for (i, d) in devs.iter().enumerate() {
                match &d.desc {
                    Some(desc) => println!("{}. {} ({desc})", i + 1, d.name),
                    None => println!("{}. {}", i + 1, d.name),
                }
            }
            Exit::Ok
        }
        Err(e) => {
            say(&format!("error: cannot list interfaces: {e}"));
            Exit::Error
        }
    }
}

/// Captures from `cfg.interface` until a signal, `-c` or `--duration`.
pub fn run(cfg: &Config, sink: &mut dyn Sink) -> Report {
    let iface = cfg.interface.clone().unwrap_or_default();
    let mut col = Collector::new(cfg, sink, input_names(cfg));
    let cap = match open(&iface, &cfg.live, &cfg.bpf) {
        Ok(c) => c,
        Err(msg) => {
            col.error(msg);
            return col.abort();
        }
    };
    let save = match &cfg.live.write {
        Some(path) => match cap.savefile(path) {
            Ok(s) => Some(s),
            Err(e) => {
                col.error(format!("{path}: {e}"));
                return col.abort();
            }
        },
        None => None,
    };
    if let Err(msg) = drop_root(&cfg.live) {
        col.error(msg);
        return col.abort();
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            col.error(format!("cannot handle signal {sig}: {e}"));
            return col.abort();
        }
    }
    let source = Source {
        iface: &iface,
        cap,
        save,
        stop,
        opts: &cfg.live,
    };
    // --port is part of the BPF filter; the engine needs no second check.
    let ((failed, capture), totals) = drive(
        cfg,
        &mut col,
        &[],
        EndReason::CaptureStopped,
        true,
        |stage| source.capture(stage),
    );
    col.summary.capture = capture.map(|mut c| {
        c.dropped_by_tlswatch = totals.dropped_by_worker.iter().sum();
        c.dropped_by_worker = totals.dropped_by_worker.clone();
        c
    });
    col.summary.memory = totals.memory;
    col.finish(totals.stats, totals.evicted, failed)
}

/// An open interface and what ends its capture.
struct Source<'a> {
    iface: &'a str,
    cap: pcap::Capture<pcap::Active>,
    save: Option<pcap::Savefile>,
    /// Set by SIGINT/SIGTERM.
    stop: Arc<AtomicBool>,
    opts: &'a LiveOptions,
}

impl Source<'_> {
    /// Reads packets into `stage` until told to stop; says whether capture failed,
    /// and libpcap's counters.
    fn capture(mut self, stage: &mut dyn Stage) -> (bool, Option<CaptureStats>) {
        let linktype = self.cap.get_datalink().0;
        let started = Instant::now();
        let deadline = self.opts.duration.map(|s| started + Duration::from_secs(s));
        let mut seen = 0u64;
        let mut failed = false;
        while !self.stop.load(Ordering::SeqCst) && !stage.stopped() {
            if self.opts.count.is_some_and(|c| seen >= c)
                || deadline.is_some_and(|d| Instant::now() >= d)
            {
                break;
            }
            match self.cap.next_packet() {
                Ok(p) => {
                    seen += 1;
                    if let Some(s) = self.save.as_mut() {
                        s.write(&p);
                    }
                    let ts = Timestamp {
                        secs: p.header.ts.tv_sec,
                        nanos: u32::try_from(p.header.ts.tv_usec)
                            .unwrap_or(0)
                            .saturating_mul(1000),
                    };
                    stage.packet(&Packet {
                        number: seen,
                        ts,
                        linktype,
                        data: p.data,
                        orig_len: p.header.len,
                        chunk: None,
                    });
                }
                Err(pcap::Error::TimeoutExpired) => {
                    stage.tick(now());
                    wait_readable(&self.cap);
                }
                Err(e) => {
                    stage.notice(Notice::Error(format!("{}: {e}", self.iface)));
                    failed = true;
                    break;
                }
            }
        }
        if let Some(s) = self.save.as_mut() {
            let _ = s.flush();
        }
        let stats = self.cap.stats().ok().map(|st| CaptureStats {
            received: u64::from(st.received),
            dropped_by_kernel: u64::from(st.dropped),
            dropped_by_interface: u64::from(st.if_dropped),
            ..CaptureStats::default()
        });
        (failed, stats)
    }
}
