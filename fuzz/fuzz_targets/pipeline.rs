//! The whole pipeline from capture bytes: reader, decode, flow table with small caps (so
//! eviction and the reassembly caps are exercised), analyzers, assessment, JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlswatch::analyzer::options::Options;
use tlswatch::capture::read_capture;
use tlswatch::flow::tcp::Engine;
use tlswatch::config::Limits;
use tlswatch::pipeline::inline::Inline;
use tlswatch::config::StreamLimits;
use tlswatch::record::EndReason;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_flows: 8,
        idle_timeout_secs: 30,
        memcap: 1 << 20,
        stream: StreamLimits { max_buffered: 4096 },
        ..Limits::default()
    };
    let opts = Options { show_users: true };
    let mut inline = Inline::new(Engine::new(limits, opts, Vec::new()), None);
    let mut emit = |mut rec: tlswatch::record::FlowRecord| tlswatch_fuzz::settle(&mut rec);
    let _ = read_capture("fuzz", data, &mut |p| inline.packet(p, &mut emit));
    inline.finish(EndReason::EndOfInput, &mut emit);
});
