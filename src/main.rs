//! The `tlswatch` command: parse arguments, run, exit.

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use tlswatch::cli::Args;
use tlswatch::run::collect::say;
use tlswatch::run::{Exit, run};

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
