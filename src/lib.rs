//! tlswatch: for every TCP connection in a capture, was it encrypted, how, and
//! with which protocol version?

pub mod analyzer;
pub mod assess;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod flow;
pub mod output;
pub mod reassembly;
pub mod record;
pub mod run;
pub mod version;
