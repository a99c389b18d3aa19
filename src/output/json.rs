//! JSON sinks: one document (`--json`) or one line per flow as it ends (`--ndjson`).

use super::certificates::CertificateRecord;
use super::servers::ServerRecord;
use super::{Sink, Summary};
use crate::record::FlowRecord;
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

    fn servers(&mut self, list: &[ServerRecord]) -> io::Result<()> {
        for s in list {
            s.write_json(&mut self.out)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn certificates(&mut self, list: &[CertificateRecord]) -> io::Result<()> {
        for c in list {
            serde_json::to_writer(&mut self.out, c)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, summary)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// `--json`: one document, streamed: the header, each flow as it ends, then the
/// summary, so memory does not grow with the number of flows.
pub struct Document<W: Write> {
    out: W,
    tool: String,
    inputs: Vec<String>,
    /// Flows written so far.
    written: u64,
    /// The flows array is closed (the servers array followed it).
    flows_closed: bool,
}

impl<W: Write> Document<W> {
    pub fn new(out: W, inputs: Vec<String>) -> Self {
        Document {
            out,
            tool: format!("tlswatch {}", env!("CARGO_PKG_VERSION")),
            inputs,
            written: 0,
            flows_closed: false,
        }
    }

    fn header(&mut self) -> io::Result<()> {
        write!(self.out, "{{\n  \"tool\": ")?;
        serde_json::to_writer(&mut self.out, &self.tool)?;
        write!(self.out, ",\n  \"inputs\": ")?;
        serde_json::to_writer(&mut self.out, &self.inputs)?;
        write!(self.out, ",\n  \"flows\": [")
    }
}

impl<W: Write> Document<W> {
    /// Ends the flows array (writing the header first if no flow came).
    fn close_flows(&mut self) -> io::Result<()> {
        if self.flows_closed {
            return Ok(());
        }
        if self.written == 0 {
            self.header()?;
        }
        self.flows_closed = true;
        write!(self.out, "\n  ]")
    }
}

impl<W: Write> Sink for Document<W> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        if self.written == 0 {
            self.header()?;
        } else {
            self.out.write_all(b",")?;
        }
        self.out.write_all(b"\n    ")?;
        serde_json::to_writer(&mut self.out, rec)?;
        self.written += 1;
        Ok(())
    }

    fn servers(&mut self, list: &[ServerRecord]) -> io::Result<()> {
        self.close_flows()?;
        write!(self.out, ",\n  \"servers\": [")?;
        for (i, s) in list.iter().enumerate() {
            self.out
                .write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
            s.write_json(&mut self.out)?;
        }
        write!(self.out, "\n  ]")
    }

    fn certificates(&mut self, list: &[CertificateRecord]) -> io::Result<()> {
        self.close_flows()?;
        write!(self.out, ",\n  \"certificates\": [")?;
        for (i, c) in list.iter().enumerate() {
            self.out
                .write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
            serde_json::to_writer(&mut self.out, c)?;
        }
        write!(self.out, "\n  ]")
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        self.close_flows()?;
        write!(self.out, ",\n  \"summary\": ")?;
        serde_json::to_writer(&mut self.out, summary)?;
        self.out.write_all(b"\n}\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Endpoint;
    use crate::time::Timestamp;

    #[test]
    fn streamed_document_is_one_valid_json_value() {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port,
        };
        for n in [0u64, 1, 3] {
            let mut buf = Vec::new();
            {
                let mut d = Document::new(&mut buf, vec!["a.pcap".into()]);
                for id in 1..=n {
                    d.flow(&FlowRecord::new(id, Timestamp::default(), ep(1), ep(2)))
                        .unwrap();
                }
                d.finish(&Summary::new(vec!["a.pcap".into()])).unwrap();
            }
            let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            assert_eq!(v["flows"].as_array().map(Vec::len), Some(n as usize));
            assert_eq!(v["inputs"][0], "a.pcap");
            assert_eq!(v["summary"]["type"], "summary");
            assert!(v["tool"].as_str().unwrap().starts_with("tlswatch "));
            assert!(v.get("servers").is_none());
        }
    }

    #[test]
    fn servers_array_follows_the_flows() {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port,
        };
        for n in [0u64, 2] {
            let mut inv = crate::output::servers::Inventory::new(10);
            let mut buf = Vec::new();
            {
                let mut d = Document::new(&mut buf, vec![]);
                for id in 1..=n {
                    let rec = FlowRecord::new(id, Timestamp::default(), ep(1), ep(2));
                    inv.add(&rec);
                    d.flow(&rec).unwrap();
                }
                d.servers(&inv.finish().0).unwrap();
                d.finish(&Summary::new(vec![])).unwrap();
            }
            let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            assert_eq!(v["flows"].as_array().map(Vec::len), Some(n as usize));
            let servers = v["servers"].as_array().unwrap();
            assert_eq!(servers.len(), n.min(1) as usize);
            if n > 0 {
                assert_eq!(servers[0]["flows"], n);
            }
        }
    }
}
