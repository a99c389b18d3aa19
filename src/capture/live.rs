//! Live capture with libpcap (cargo feature `live`): opening an interface with its
//! filter, dropping root once the handle is open, waiting for packets with a tick
//! for idle timeouts, and the BPF filter applied to files. The run around it is
//! `run::live`.

use crate::capture::Packet;
use crate::config::LiveOptions;
use crate::time::Timestamp;
use std::time::{SystemTime, UNIX_EPOCH};

/// How long libpcap may buffer packets before handing them over.
const READ_TIMEOUT_MS: i32 = 200;
/// Longest wait for packets, so the clock ticks and signals are seen.
pub const TICK_MS: u16 = 200;

pub fn interface_names() -> String {
    pcap::Device::list()
        .map(|d| d.into_iter().map(|d| d.name).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

pub fn open(
    iface: &str,
    live: &LiveOptions,
    bpf: &str,
) -> Result<pcap::Capture<pcap::Active>, String> {
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
pub fn drop_root(live: &LiveOptions) -> Result<(), String> {
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
pub fn wait_readable(cap: &pcap::Capture<pcap::Active>) {
    use nix::poll::{PollFd, PollFlags, poll};
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
    let _ = poll(&mut fds, TICK_MS);
}

pub fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos(),
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
