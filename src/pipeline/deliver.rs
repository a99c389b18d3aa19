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

/// What a record's output needs that does not depend on the run's order, done
/// by the worker that finished it (on its own core, while the record is in its
/// cache) instead of by the one output stage.
pub trait Prepare: Send + Sync {
    /// Completes `rec` as the receiving end would, and may write its output
    /// ahead: bytes that follow its `id`, which only the run's order gives.
    fn prepare(&self, rec: &mut FlowRecord) -> Prepared;
}

/// A record completed by [`Prepare`], with its output written ahead (or not).
#[derive(Debug, Default)]
pub struct Prepared {
    /// The record's output with the id it had on its worker; empty when not written ahead.
    pub out: Vec<u8>,
    /// Where in `out` what follows the id begins.
    pub after_id: usize,
}

/// The receiving end of the pipeline.
pub trait Deliver {
    /// A finished flow, in output order, lent: the caller frees it (the
    /// threaded pipeline on the worker thread that made it). `prepared`: what
    /// the [`Prepare`] this end gave did on the worker.
    fn emit_lent(&mut self, rec: &mut FlowRecord, prepared: Option<&Prepared>);
    /// A finished flow, in output order.
    fn emit(&mut self, mut rec: FlowRecord) {
        self.emit_lent(&mut rec, None);
    }
    /// What the workers may do to each record before it comes back in order.
    fn preparer(&self) -> Option<std::sync::Arc<dyn Prepare>> {
        None
    }
    /// `n` flows ended without payload and are not listed: only counted.
    fn count_silent(&mut self, n: u64);
    /// A warning or error about an input.
    fn notice(&mut self, n: Notice);
    /// Output can no longer be written: reading may stop.
    fn broken(&self) -> bool;
}
