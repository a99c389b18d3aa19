//! The per-flow analyzer from the first byte: sniffing, protocol detection on the
//! first two bytes' server port, role swaps, then whichever analyzer it picks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlswatch::analyzer::options::Options;
use tlswatch::analyzer::tcp::{Analyzer, Signal};
use tlswatch_fuzz::{Event, record, settle, transcript};

fuzz_target!(|data: &[u8]| {
    let [p0, p1, flags, rest @ ..] = data else {
        return;
    };
    let port = u16::from_be_bytes([*p0, *p1]);
    let mut rec = record(port);
    let opts = Options {
        show_users: flags & 2 != 0,
    };
    let mut a = Analyzer::new(flags & 1 != 0, opts);
    let mut swapped = false;
    for ev in transcript(rest) {
        let dir = |d: tlswatch::record::Dir| if swapped { d.other() } else { d };
        let sig = match ev {
            Event::Data(d, b) => a.on_data(dir(d), b, &mut rec),
            Event::Gap(d, n) => a.on_gap(dir(d), n, &mut rec),
        };
        if sig == Signal::SwapRoles {
            swapped = !swapped;
            rec.swap_roles();
        }
    }
    a.finish(&mut rec);
    settle(&mut rec);
});
