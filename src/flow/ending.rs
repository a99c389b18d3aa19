//! The last step of every flow, TCP or UDP: its end reason, the notes that reason
//! implies, and its findings. Findings are made here, once, and nowhere else.

use crate::assess::{Policy, assess};
use crate::record::{EndReason, FlowRecord, Note};

/// Receives each flow record as its flow ends.
pub type Emit<'a> = dyn FnMut(FlowRecord) + 'a;

/// Settles a finished record: why it ended, and what an auditor must see.
pub fn settle(rec: &mut FlowRecord, reason: EndReason, policy: &Policy) {
    rec.end_reason = reason;
    match reason {
        EndReason::Evicted => rec.note(Note::Evicted),
        EndReason::CaptureStopped => rec.note(Note::CaptureStopped),
        _ => {}
    }
    crate::assess::chain::validate(rec, policy.trust());
    rec.findings = assess(rec, policy);
}
