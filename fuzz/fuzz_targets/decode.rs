//! The decoder on arbitrary bytes in arbitrary chunks, with small limits:
//! no panic, and what it buffers never exceeds its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidings_codec::{Decoder, Item, Limits};

fuzz_target!(|input: &[u8]| {
    // The first bytes choose the limits and the chunk size; the rest is the
    // stream.
    let [a, b, c, stream @ ..] = input else {
        return;
    };
    let limits = Limits {
        max_line: usize::from(*a) * 4,
        max_event: usize::from(*b) * 8,
    };
    let chunk = usize::from(*c).max(1);
    let mut decoder = Decoder::with_limits(limits);
    let whole = {
        let mut d = Decoder::with_limits(limits);
        let mut out = Vec::new();
        let ok = d.decode_to_vec(stream, &mut out).is_ok();
        (ok, out)
    };
    let mut out = Vec::new();
    let mut ok = true;
    for piece in stream.chunks(chunk) {
        if decoder.decode_to_vec(piece, &mut out).is_err() {
            ok = false;
            break;
        }
    }
    for item in &out {
        if let Item::Event(e) = item {
            // Data is bounded by the event limit (it held data plus one LF
            // per line).
            assert!(e.data.len() <= limits.max_event * 3);
        }
    }
    // Chunking never changes the outcome when no limit is hit.
    if ok && whole.0 {
        assert_eq!(out, whole.1);
    }
    decoder.finish();
});
