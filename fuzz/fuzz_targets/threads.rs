//! Threads must not change the answer: a capture read with `--threads 1` and with
//! `--threads 3` (the reader, its batches and the output stage's merge) gives the
//! same flow records, apart from the order of flows that end at the same packet.
//! Each record's JSON from the sinks' writer must also be serde_json's, byte for byte.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use std::io;
use tlswatch::output::servers::ServerRecord;
use tlswatch::output::{Sink, Summary};
use tlswatch::record::FlowRecord;

/// Keeps each flow record as its JSON line.
struct Lines(Vec<String>);

impl Sink for Lines {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        let line = serde_json::to_string(rec).map_err(io::Error::other)?;
        let mut ours = Vec::new();
        tlswatch::output::jsonw::to_vec_into(&mut ours, rec)?;
        assert_eq!(String::from_utf8_lossy(&ours), line, "jsonw and serde_json differ");
        self.0.push(line);
        Ok(())
    }
    fn servers(&mut self, _: &[ServerRecord]) -> io::Result<()> {
        Ok(())
    }
    fn finish(&mut self, _: &Summary) -> io::Result<()> {
        Ok(())
    }
}

fn flows(file: &str, threads: &str) -> (Vec<String>, u64) {
    let args = ["tlswatch", "-r", file, "--ndjson", "--all", "--threads", threads];
    // Constant arguments: a failure here is this target's bug, not the input's.
    let cfg = tlswatch::cli::Args::try_parse_from(args)
        .expect("arguments")
        .into_config()
        .expect("configuration");
    let mut sink = Lines(Vec::new());
    let report = tlswatch::run::process(&cfg, &mut sink, &tlswatch::run::progress::Progress::off());
    let mut lines = sink.0;
    lines.sort();
    (lines, report.summary.flows.total)
}

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("tlswatch-fuzz-threads-{}.pcap", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let file = path.to_string_lossy().into_owned();
    let one = flows(&file, "1");
    let three = flows(&file, "3");
    assert_eq!(one, three, "--threads 1 and --threads 3 differ");
});
