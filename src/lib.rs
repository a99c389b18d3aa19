//! tlswatch: for every TCP connection in a capture, was it encrypted, how, and
//! with which protocol version?

// Tests may index and unwrap: a panic there is a failed test, not a crash on input.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod analyzer;
pub mod assess;
pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
pub mod evidence;
pub mod flow;
pub mod keylog;
pub mod output;
pub mod pipeline;
pub mod record;
pub mod run;
pub mod stats;
pub mod time;
pub mod version;
