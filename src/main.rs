//! The `tlswatch` command: parse arguments, run, exit.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use tlswatch::cli::Args;
use tlswatch::run::collect::say;
use tlswatch::run::{Exit, run};

/// jemalloc: records and batches are allocated on one thread and freed on
/// another, and a flood makes millions of small allocations; on the benchmark
/// capture it takes 12% off one thread's CPU time, and on a threaded flood of
/// QUIC Initials 40% (README, "Threads and shards").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Error
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    if let Some(kind) = args.generate {
        let mut out = std::io::stdout().lock();
        return match tlswatch::cli::generate(kind, &mut out).and_then(|()| out.flush()) {
            // A reader that went away (`| head`) took what it wanted.
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                say(&format!("error: writing output: {e}"));
                ExitCode::from(Exit::Error as u8)
            }
        };
    }
    let cfg = match args.into_config() {
        Ok(c) => c,
        Err(msg) => {
            say(&format!("error: {msg}"));
            return ExitCode::from(Exit::Error as u8);
        }
    };
    ExitCode::from(run(&cfg) as u8)
}
