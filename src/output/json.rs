//! JSON sinks: one document (`--json`) or one line per flow as it ends (`--ndjson`).

use super::certificates::CertificateRecord;
use super::jsonw;
use super::servers::ServerRecord;
use super::{Sink, Summary};
use crate::record::FlowRecord;
use std::io::{self, Write};

/// What every flow's JSON begins with, before its id.
const FLOW_HEAD: &[u8] = b"{\"type\":\"flow\",\"id\":";

/// Writes `rec` as the JSON sinks write a flow into `out` (cleared first), and
/// returns where what follows its id begins, so that the flow can be written
/// later with another id ([`Sink::flow_written`]). `None` (and `out` empty) if
/// the JSON does not begin as expected.
pub fn flow_ahead(rec: &FlowRecord, out: &mut Vec<u8>) -> Option<usize> {
    out.clear();
    let after_id = FLOW_HEAD.len() + decimal_digits(rec.id);
    let ok = jsonw::to_vec_into(out, rec).is_ok()
        && out.starts_with(FLOW_HEAD)
        && out
            .get(FLOW_HEAD.len()..after_id)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        && out.get(after_id).is_some_and(|c| !c.is_ascii_digit());
    if !ok {
        out.clear();
        return None;
    }
    Some(after_id)
}

fn decimal_digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// `rec` with the JSON written ahead (`out`, see [`flow_ahead`]) under its own id.
fn write_ahead(
    w: &mut impl Write,
    rec: &FlowRecord,
    out: &[u8],
    after_id: usize,
) -> io::Result<()> {
    match out.get(after_id..) {
        Some(rest) if !out.is_empty() => {
            w.write_all(FLOW_HEAD)?;
            write!(w, "{}", rec.id)?;
            w.write_all(rest)
        }
        _ => jsonw::to_writer(w, rec),
    }
}

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

impl<W: Write> Ndjson<W> {
    fn end_line(&mut self) -> io::Result<()> {
        self.out.write_all(b"\n")?;
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }
}

impl<W: Write> Sink for Ndjson<W> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        jsonw::to_writer(&mut self.out, rec)?;
        self.end_line()
    }

    fn takes_written(&self) -> bool {
        true
    }

    fn flow_written(&mut self, rec: &FlowRecord, out: &[u8], after_id: usize) -> io::Result<()> {
        write_ahead(&mut self.out, rec, out, after_id)?;
        self.end_line()
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
            jsonw::to_writer(&mut self.out, c)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        jsonw::to_writer(&mut self.out, summary)?;
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
        jsonw::to_writer(&mut self.out, &self.tool)?;
        write!(self.out, ",\n  \"inputs\": ")?;
        jsonw::to_writer(&mut self.out, &self.inputs)?;
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

impl<W: Write> Document<W> {
    /// What comes before the next flow in the array.
    fn next_flow(&mut self) -> io::Result<()> {
        if self.written == 0 {
            self.header()?;
        } else {
            self.out.write_all(b",")?;
        }
        self.written += 1;
        self.out.write_all(b"\n    ")
    }
}

impl<W: Write> Sink for Document<W> {
    fn flow(&mut self, rec: &FlowRecord) -> io::Result<()> {
        self.next_flow()?;
        jsonw::to_writer(&mut self.out, rec)
    }

    fn takes_written(&self) -> bool {
        true
    }

    fn flow_written(&mut self, rec: &FlowRecord, out: &[u8], after_id: usize) -> io::Result<()> {
        self.next_flow()?;
        write_ahead(&mut self.out, rec, out, after_id)
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
            jsonw::to_writer(&mut self.out, c)?;
        }
        write!(self.out, "\n  ]")
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        self.close_flows()?;
        write!(self.out, ",\n  \"summary\": ")?;
        jsonw::to_writer(&mut self.out, summary)?;
        self.out.write_all(b"\n}\n")?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Endpoint;
    use crate::time::Timestamp;

    /// A flow written ahead under its worker's id and given the run's id later
    /// is byte for byte what the sinks write of the record with the run's id,
    /// whatever the lengths of the two ids; in either sink.
    #[test]
    fn a_flow_written_ahead_takes_its_new_id() {
        let ep = |port| Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port,
        };
        for (worker_id, run_id) in [(7u64, 1u64), (9, 10), (123_456, 2), (0, u64::MAX)] {
            let mut rec = FlowRecord::new(worker_id, Timestamp::default(), ep(1), ep(2));
            rec.community_id = Some("a\"b\\c\u{1}".into());
            let mut ahead = Vec::new();
            let after_id = flow_ahead(&rec, &mut ahead).unwrap();
            rec.id = run_id;
            let (mut direct, mut later) = (Vec::new(), Vec::new());
            Ndjson::new(&mut direct, false).flow(&rec).unwrap();
            Ndjson::new(&mut later, false)
                .flow_written(&rec, &ahead, after_id)
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&later),
                String::from_utf8_lossy(&direct)
            );
            assert!(direct.starts_with(format!("{{\"type\":\"flow\",\"id\":{run_id},").as_bytes()));
            let (mut direct, mut later) = (Vec::new(), Vec::new());
            Document::new(&mut direct, vec![]).flow(&rec).unwrap();
            Document::new(&mut later, vec![])
                .flow_written(&rec, &ahead, after_id)
                .unwrap();
            assert_eq!(later, direct);
        }
        // What was written ahead is what goes out (the record is not written again).
        let rec = FlowRecord::new(3, Timestamp::default(), ep(1), ep(2));
        let mut ahead = Vec::new();
        let after_id = flow_ahead(&rec, &mut ahead).unwrap();
        ahead.extend_from_slice(b" ");
        let mut out = Vec::new();
        let mut sink = Ndjson::new(&mut out, false);
        assert!(sink.takes_written());
        sink.flow_written(&rec, &ahead, after_id).unwrap();
        assert!(out.ends_with(b"} \n"));
    }

    /// Without what was written ahead, the record is written as it stands.
    #[test]
    fn nothing_written_ahead_writes_the_record() {
        let ep = Endpoint {
            ip: std::net::IpAddr::from([10, 0, 0, 1]),
            port: 1,
        };
        let rec = FlowRecord::new(5, Timestamp::default(), ep, ep);
        let (mut direct, mut later) = (Vec::new(), Vec::new());
        Ndjson::new(&mut direct, false).flow(&rec).unwrap();
        Ndjson::new(&mut later, false)
            .flow_written(&rec, &[], 0)
            .unwrap();
        assert_eq!(later, direct);
    }

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
