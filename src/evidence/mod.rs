//! Evidence: what lets an auditor check a verdict in the capture itself.
//!
//! In: the records a run listed and, for the flows chosen, a second reading of
//! the inputs. Out: `--write-flows` (their packets as pcapng: `pcapng`, driven by
//! `replay`) and `--transcript` (their cleartext phase, handshake and verdict:
//! `transcript`; `transcripts` is which flows `--transcript` names). `--select`
//! (`output::select`) chooses the flows; `chosen` holds the choice between the
//! two readings. The packet numbers and Community ID on every record are made in
//! `record::frames`.

pub mod chosen;
pub mod pcapng;
pub mod replay;
pub mod transcript;
pub mod transcripts;
