//! What reading files does with each packet before the flow stage: the filter
//! expression, `-c` (stop after N packets) and `-w` (write the packets read to a
//! pcap file), as tcpdump does them with `-r`.

use crate::capture::write::PcapWriter;
use crate::capture::{Next, Packet};
use crate::config::Config;
use crate::decode::path::Decoded;
use crate::pipeline::deliver::Notice;
use crate::pipeline::stage::Stage;
use std::io;

/// The packet filter applied to files: BPF in a `live` build, else none.
#[cfg(feature = "live")]
pub type Filter = crate::capture::live::FileFilter;
#[cfg(not(feature = "live"))]
pub type Filter = NoFilter;

/// The per-packet part of reading files.
pub struct Reading<'c> {
    filter: Option<Filter>,
    /// `--port`, checked here only when `-c` or `-w` need it (the flow stage
    /// applies it on its own).
    ports: &'c [u16],
    /// `-c`: packets still to read.
    left: Option<u64>,
    save: Option<Save>,
}

impl<'c> Reading<'c> {
    pub fn new(
        filter: Option<Filter>,
        ports: &'c [u16],
        count: Option<u64>,
        save: Option<Save>,
    ) -> Self {
        let needs_ports = count.is_some() || save.is_some();
        Reading {
            filter,
            ports: if needs_ports { ports } else { &[] },
            left: count,
            save,
        }
    }

    /// One packet read: filtered, written, counted, handed to `stage`; says
    /// whether to read on. `passed` counts the packets handed on.
    pub fn packet(&mut self, p: &Packet<'_>, stage: &mut dyn Stage, passed: &mut u64) -> Next {
        if !self.filter.as_mut().is_none_or(|f| f.matches(p)) {
            stage.skip();
            return Next::Continue(());
        }
        let kept = self.ports.is_empty() || on_ports(self.ports, p);
        if kept && let Some(save) = &mut self.save {
            save.write(p);
        }
        stage.packet(p);
        *passed += 1;
        if kept && let Some(left) = &mut self.left {
            *left = left.saturating_sub(1);
        }
        if self.done() || stage.stopped() {
            Next::Break(())
        } else {
            Next::Continue(())
        }
    }

    /// `-c` packets have been read.
    pub fn done(&self) -> bool {
        self.left == Some(0)
    }

    /// Closes the `-w` file: what to tell about it.
    pub fn finish(self) -> Vec<Notice> {
        self.save.map(Save::finish).unwrap_or_default()
    }
}

/// Whether `p` is a TCP segment or UDP datagram to or from one of `ports`; an IP
/// fragment is kept (its ports are in its first fragment).
fn on_ports(ports: &[u16], p: &Packet<'_>) -> bool {
    match crate::decode::decode(p.linktype, p.data) {
        Decoded::Tcp(s) => ports.iter().any(|&q| q == s.sport || q == s.dport),
        Decoded::Udp(d) => ports.iter().any(|&q| q == d.sport || q == d.dport),
        Decoded::Fragment => true,
        _ => false,
    }
}

/// The `-w` file of a run that reads files.
pub struct Save {
    path: String,
    /// None once writing failed.
    writer: Option<PcapWriter<io::BufWriter<std::fs::File>>>,
    error: Option<io::Error>,
}

impl Save {
    /// Creates the file at `path`.
    pub fn create(path: &str) -> Result<Self, String> {
        let writer = PcapWriter::create(path).map_err(|e| format!("-w {path}: {e}"))?;
        Ok(Save {
            path: path.to_string(),
            writer: Some(writer),
            error: None,
        })
    }

    fn write(&mut self, p: &Packet<'_>) {
        if let Some(w) = &mut self.writer
            && let Err(e) = w.write(p)
        {
            self.error = Some(e);
            self.writer = None;
        }
    }

    /// Flushes the file: an error if writing failed, a warning for packets of a
    /// link type the file could not hold.
    fn finish(mut self) -> Vec<Notice> {
        let path = &self.path;
        let mut out = Vec::new();
        if let Some(w) = self.writer.take() {
            for (lt, n) in &w.other_links {
                out.push(Notice::Warn(format!(
                    "-w {path}: {n} packets of link type {lt} not written: a pcap file holds \
                     the link type of its first packet only"
                )));
            }
            if let Err(e) = w.finish() {
                self.error = Some(e);
            }
        }
        if let Some(e) = self.error {
            out.push(Notice::Error(format!("-w {path}: {e}")));
        }
        out
    }
}

/// The filter files are read through: the filter expression (with `--port`),
/// compiled by libpcap; checked here so a typo fails before anything is read.
#[cfg(feature = "live")]
pub fn file_filter(cfg: &Config) -> Result<Option<crate::capture::live::FileFilter>, String> {
    if cfg.filter_expr.is_empty() {
        // `--port` alone is applied by the flow engine; no BPF needed for files.
        return Ok(None);
    }
    let f = crate::capture::live::FileFilter::new(cfg.bpf.clone());
    f.check()?;
    Ok(Some(f))
}

/// Stand-in for a BPF filter in builds without libpcap.
#[cfg(not(feature = "live"))]
pub struct NoFilter;

#[cfg(not(feature = "live"))]
impl NoFilter {
    pub fn matches(&mut self, _p: &Packet<'_>) -> bool {
        true
    }
}

/// No filter: a filter expression needs libpcap, so it is refused.
#[cfg(not(feature = "live"))]
pub fn file_filter(cfg: &Config) -> Result<Option<NoFilter>, String> {
    if !cfg.filter_expr.is_empty() {
        return Err(format!(
            "a filter expression needs a build with the `live` feature (libpcap compiles it): {}",
            cfg.filter_expr
        ));
    }
    Ok(None)
}
