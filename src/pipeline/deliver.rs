//! Where the pipeline's results go: finished flow records, counts of flows not
//! listed, and notices about the inputs. The run's collector implements it; the
//! pipeline knows nothing of output.

use crate::record::FlowRecord;

/// Something to tell the user about one input, beside its flows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    Warn(String),
    Error(String),
}

impl Notice {
    pub fn is_error(&self) -> bool {
        matches!(self, Notice::Error(_))
    }
}

/// The receiving end of the pipeline.
pub trait Deliver {
    /// A finished flow, in output order, lent: the caller frees it (the
    /// threaded pipeline on the worker thread that made it).
    fn emit_lent(&mut self, rec: &mut FlowRecord);
    /// A finished flow, in output order.
    fn emit(&mut self, mut rec: FlowRecord) {
        self.emit_lent(&mut rec);
    }
    /// `n` flows ended without payload and are not listed: only counted.
    fn count_silent(&mut self, n: u64);
    /// A warning or error about an input.
    fn notice(&mut self, n: Notice);
    /// Output can no longer be written: reading may stop.
    fn broken(&self) -> bool;
}
