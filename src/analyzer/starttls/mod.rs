//! STARTTLS: follows a plaintext protocol to its upgrade and hands the rest of each
//! direction to the TLS analyzer at exactly the right byte.

use super::Options;
use crate::record::{Dir, FlowRecord};

/// A protocol that can upgrade in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {}

/// Result of looking at the first bytes of a flow.
#[derive(Debug)]
pub enum Detect {
    Found { proto: Proto, swap: bool },
    NeedMore,
    No,
}

/// Picks the protocol from the first bytes of each direction; the port is only a hint.
pub fn detect(_client: &[u8], _server: &[u8], _server_port: u16, _at_end: bool) -> Detect {
    Detect::No
}

/// Drives one protocol state machine and the TLS analyzer behind it.
#[derive(Debug)]
pub struct Driver {}

impl Driver {
    pub fn new(proto: Proto, _opts: Options, _rec: &mut FlowRecord) -> Self {
        match proto {}
    }
    pub fn is_done(&self) -> bool {
        true
    }
    pub fn on_data(&mut self, _dir: Dir, _data: &[u8], _rec: &mut FlowRecord) {}
    pub fn on_gap(&mut self, _dir: Dir, _len: u64, _rec: &mut FlowRecord) {}
    pub fn finish(&mut self, _rec: &mut FlowRecord) {}
}
