//! Each STARTTLS protocol state machine (the first byte picks the protocol by its
//! index in `starttls::ALL`, the second the user-name option) on a two-sided
//! transcript with gaps, through to the TLS analyzer behind the upgrade.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlswatch::analyzer::options::Options;
use tlswatch::analyzer::starttls::{ALL, Driver};
use tlswatch_fuzz::{Event, record, settle, transcript};

fuzz_target!(|data: &[u8]| {
    let [pick, opt, rest @ ..] = data else {
        return;
    };
    let Some(row) = ALL.get(usize::from(*pick) % ALL.len()) else {
        return;
    };
    let opts = Options {
        show_users: opt & 1 != 0,
    };
    let mut rec = record(25);
    let mut d = Driver::new(row.proto, opts);
    for ev in transcript(rest) {
        match ev {
            Event::Data(dir, b) => d.on_data(dir, b, &mut rec),
            Event::Gap(dir, n) => d.on_gap(dir, n, &mut rec),
        }
    }
    d.finish(&mut rec);
    settle(&mut rec);
});
