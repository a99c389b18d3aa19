//! Live capture from an interface with libpcap (cargo feature `live`): the same
//! engine and sinks as files, flows leaving as they end, a clock tick for idle
//! timeouts, clean stop on SIGINT/SIGTERM, and root dropped once the handle is open.

use crate::capture::Packet;
use crate::config::{Config, LiveOptions};
use crate::output::{CaptureStats, Sink};
use crate::pipeline::{Stage, drive};
use crate::record::EndReason;
use crate::run::collect::{Collector, Exit, Notice, Report, input_names};
use crate::time::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long libpcap may buffer packets before handing them over.
const READ_TIMEOUT_MS: i32 = 200;
/// Longest wait for packets, so the clock ticks and signals are seen.
const TICK_MS: u16 = 200;

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
            eprintln!("error: cannot list interfaces: {e}");
            Exit::Error
        }
    }
}

fn interface_names() -> String {
    pcap::Device::list()
        .map(|d| d.into_iter().map(|d| d.name).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

fn open(iface: &str, live: &LiveOptions, bpf: &str) -> Result<pcap::Capture<pcap::Active>, String> {
    if iface != "any" && !pcap::Device::list().is_ok_and(|d| d.iter().any(|d| d.name == iface)) {
        return Err(format!(
            "{iface}: no such interface (available: {})",
            interface_names()
        ));
    }
    let buffer = i32::try_from(u64::from(live.buffer_mib) * 1024 * 1024).unwrap_or(i32::MAX);
    let mut cap = pcap::Capture::from_device(iface)
        .and_then(|c| {
            c.promisc(live.promisc)
                .snaplen(i32::try_from(live.snaplen).unwrap_or(i32::MAX))
                .immediate_mode(true)
                .buffer_size(buffer)
                .timeout(READ_TIMEOUT_MS)
                .open()
        })
        // Non-blocking reads with our own poll: libpcap's read timeout is not
        // honoured on every platform, and a tick must come even when nothing arrives.
        .and_then(|c| c.setnonblock())
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("ermission") || msg.contains("not permitted") {
                format!(
                    "{iface}: {msg}: run with sudo, or grant the binary the capability once: \
                     sudo setcap cap_net_raw,cap_net_admin=eip $(command -v tlswatch)"
                )
            } else {
                format!("{iface}: {msg}")
            }
        })?;
    if !bpf.is_empty() {
        cap.filter(bpf, true)
            .map_err(|e| format!("{iface}: filter '{bpf}': {e}"))?;
    }
    Ok(cap)
}

/// Gives up root once the capture handle is open.
fn drop_root(live: &LiveOptions) -> Result<(), String> {
    use nix::unistd::{Uid, User, geteuid, setgid, setgroups, setuid};
    if !geteuid().is_root() {
        return Ok(());
    }
    let name = live.user.clone().or_else(|| {
        std::env::var("SUDO_USER")
            .ok()
            .filter(|u| !u.is_empty() && u != "root")
    });
    let Some(name) = name else {
        if live.keep_root {
            return Ok(());
        }
        return Err(
            "refusing to keep running as root after opening the interface: \
                    give -Z USER (sudo sets one by itself), or --keep-root"
                .to_string(),
        );
    };
    let user = User::from_name(&name)
        .map_err(|e| format!("-Z {name}: {e}"))?
        .ok_or_else(|| format!("-Z {name}: no such user"))?;
    setgroups(&[user.gid]).map_err(|e| format!("-Z {name}: setgroups: {e}"))?;
    setgid(user.gid).map_err(|e| format!("-Z {name}: setgid: {e}"))?;
    setuid(user.uid).map_err(|e| format!("-Z {name}: setuid: {e}"))?;
    if user.uid != Uid::from_raw(0) && setuid(Uid::from_raw(0)).is_ok() {
        return Err(format!("-Z {name}: root could be regained; stopping"));
    }
    Ok(())
}

/// Waits until the capture has packets, a signal arrives, or the tick interval passes.
fn wait_readable(cap: &pcap::Capture<pcap::Active>) {
    use nix::poll::{PollFd, PollFlags, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, TICK_MS);
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos(),
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

/// A BPF filter applied to packets read from files (the same expression language as live capture).
pub struct FileFilter {
    expr: String,
    /// Compiled program per link type (files may mix them).
    programs: Vec<(i32, Option<pcap::BpfProgram>)>,
}

impl FileFilter {
    pub fn new(expr: String) -> Self {
        FileFilter {
            expr,
            programs: Vec::new(),
        }
    }

    /// Checks that the expression compiles (for Ethernet), to fail early on typos.
    pub fn check(&self) -> Result<(), String> {
        pcap::Capture::dead(pcap::Linktype(1))
            .and_then(|c| c.compile(&self.expr, true))
            .map(|_| ())
            .map_err(|e| format!("filter '{}': {e}", self.expr))
    }

    pub fn matches(&mut self, p: &Packet<'_>) -> bool {
        if !self.programs.iter().any(|(lt, _)| *lt == p.linktype) {
            let prog = pcap::Capture::dead(pcap::Linktype(p.linktype))
                .and_then(|c| c.compile(&self.expr, true))
                .ok();
            self.programs.push((p.linktype, prog));
        }
        match self.programs.iter().find(|(lt, _)| *lt == p.linktype) {
            Some((_, Some(prog))) => prog.filter(p.data),
            _ => false,
        }
    }
}
