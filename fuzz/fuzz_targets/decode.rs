//! Link, IP and TCP decoding of one frame; the first byte picks the link type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlswatch::decode::{decode, linktype};
use tlswatch::decode::path::Decoded;

const LINKTYPES: [i32; 15] = [
    linktype::NULL,
    linktype::ETHERNET,
    linktype::PPP,
    linktype::RAW_OPENBSD,
    linktype::RAW_BSD,
    linktype::PPP_HDLC,
    linktype::PPP_ETHER,
    linktype::RAW,
    linktype::C_HDLC,
    linktype::LOOP,
    linktype::LINUX_SLL,
    linktype::IPV4,
    linktype::IPV6,
    linktype::NFLOG,
    linktype::LINUX_SLL2,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let lt = LINKTYPES[usize::from(pick) % LINKTYPES.len()];
    if let Decoded::Tcp(seg) = decode(lt, frame) {
        // The payload is a slice of the frame, never invented.
        let start = frame.as_ptr() as usize;
        let p = seg.payload.as_ptr() as usize;
        assert!(
            seg.payload.is_empty() || (p >= start && p + seg.payload.len() <= start + frame.len())
        );
    }
});
