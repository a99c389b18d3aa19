//! The TLS record and handshake analyzer on a two-sided transcript (split wherever the
//! input splits it), with gaps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlswatch::analyzer::tls::TlsAnalyzer;
use tlswatch_fuzz::{Event, record, settle, transcript};

fuzz_target!(|data: &[u8]| {
    let mut rec = record(443);
    let mut tls = TlsAnalyzer::new();
    for ev in transcript(data) {
        match ev {
            Event::Data(dir, b) => tls.on_data(dir, b, &mut rec),
            Event::Gap(dir, n) => tls.on_gap(dir, n, &mut rec),
        }
    }
    settle(&mut rec);
});
