//! JSON sinks: one document (`--json`) or one line per flow as it ends (`--ndjson`).

use super::{Sink, Summary};
use crate::record::FlowRecord;
use serde::Serialize;
use std::io::{self, Write};

/// `--ndjson`: each flow on its own line when it ends, then the summary line.
pub struct Ndjson<W: Write> {
    out: W,
    /// Flush after each line (live capture, so a reader sees flows at once).
    flush_each: bool,
}

impl<W: Write> Ndjson<W> {
    pub fn new(out: W, flush_each: bool) -> Self {
        Ndjson { out, flush_each }
    }
}

impl<W: Write> Sink for Ndjson<W> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, rec)?;
        self.out.write_all(b"\n")?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, summary)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// `--json`: one document; flows are held (only the listed ones) and written in id order at the end.
pub struct Document<W: Write> {
    out: W,
    flows: Vec<FlowRecord>,
}

impl<W: Write> Document<W> {
    pub fn new(out: W) -> Self {
        Document {
            out,
            flows: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct Doc<'a> {
    tool: &'a str,
    inputs: &'a [String],
    flows: &'a [FlowRecord],
    summary: &'a Summary,
}

impl<W: Write> Sink for Document<W> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        self.flows.push(rec.clone());
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        self.flows.sort_by_key(|f| f.id);
        let doc = Doc {
            tool: &summary.tool,
            inputs: &summary.inputs,
            flows: &self.flows,
            summary,
        };
        serde_json::to_writer_pretty(&mut self.out, &doc)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}
