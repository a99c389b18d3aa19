//! The capture reader on arbitrary bytes (pcap and pcapng).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlswatch::capture::read_capture;

fuzz_target!(|data: &[u8]| {
    let mut seen = 0u64;
    let mut bytes = 0usize;
    let res = read_capture("fuzz", data, &mut |p| {
        seen += 1;
        bytes += p.data.len();
        assert!(p.data.len() <= tlswatch::capture::MAX_RECORD);
    });
    if let Ok(outcome) = res {
        // Every packet handed on was counted.
        assert!(seen <= outcome.packets, "{seen} > {}", outcome.packets);
    }
});
