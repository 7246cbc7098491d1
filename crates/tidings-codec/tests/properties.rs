//! Properties over arbitrary input: chunking never changes what is decoded,
//! decoding what was encoded gives the event back, and nothing panics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use proptest::prelude::*;
use tidings_codec::{DecodeError, Decoder, Event, Item, Limits, MessageEvent, encode};

fn decode_chunks(chunks: &[&[u8]]) -> (Vec<Item>, String) {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.decode_to_vec(chunk, &mut out).unwrap();
    }
    decoder.finish();
    (out, decoder.last_event_id().to_owned())
}

/// Decodes with `limits` until the first error: the items reported before
/// it, and the error.
fn decode_limited(chunks: &[&[u8]], limits: Limits) -> (Vec<Item>, Option<DecodeError>) {
    let mut decoder = Decoder::with_limits(limits);
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(err) = decoder.decode(chunk, |item| out.push(item)) {
            return (out, Some(err));
        }
    }
    (out, None)
}

/// Splits `bytes` at the given cut points (taken modulo its length).
fn cut<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|c| {
            if bytes.is_empty() {
                0
            } else {
                c % (bytes.len() + 1)
            }
        })
        .collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in points {
        chunks.push(&bytes[start..p]);
        start = p;
    }
    chunks.push(&bytes[start..]);
    chunks
}

/// Event-stream-ish bytes: mostly field names, separators and line breaks,
/// with BOM pieces, NULs and invalid UTF-8 mixed in.
fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"data".to_vec()),
        Just(b"id".to_vec()),
        Just(b"event".to_vec()),
        Just(b"retry".to_vec()),
        Just(b":".to_vec()),
        Just(b": ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xEF\xBB".to_vec()),
        Just(b"\0".to_vec()),
        Just(b"\xE2\x82".to_vec()),
        Just(b"\xAC".to_vec()),
        Just(b"123".to_vec()),
        "[a-z ]{0,5}".prop_map(String::into_bytes),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat())
}

/// Whole lines, mostly `data` lines of every length, with any line break:
/// what streaming data lines and the limits are about.
fn line_stream() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        4 => "[a-z ]{0,24}".prop_map(|v| format!("data:{v}")),
        2 => "[a-z ]{0,24}".prop_map(|v| format!("data: {v}")),
        1 => Just(String::from("data")),
        1 => Just(String::new()),
        1 => "[a-z]{0,6}".prop_map(|v| format!("id: {v}")),
        1 => "[a-z ]{0,8}".prop_map(|v| format!(":{v}")),
    ];
    let end = prop_oneof![Just("\n"), Just("\r"), Just("\r\n")];
    prop::collection::vec((line, end), 0..16).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(l, e)| l + e)
            .collect::<String>()
            .into_bytes()
    })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ]{0,12}",
        "[a-z \\r\\n]{0,12}",
        any::<String>(),
        prop::collection::vec(
            prop_oneof![Just("\r"), Just("\n"), Just("\r\n"), Just("x"), Just(" ")],
            0..8
        )
        .prop_map(|v| v.concat()),
    ]
}

fn normalise_line_breaks(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn chunking_never_matters(bytes in stream_bytes(), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let whole = decode_chunks(&[&bytes]);
        let chunked = decode_chunks(&cut(&bytes, &cuts));
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&whole, &chunked);
        prop_assert_eq!(&whole, &decode_chunks(&single));
    }

    #[test]
    fn decode_inverts_encode(
        data in text(),
        id in proptest::option::of("[^\\r\\n\\x00]{0,10}"),
        ty in proptest::option::of("[^\\r\\n]{0,10}"),
        retry in proptest::option::of(any::<u64>()),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut event = Event::new(&data);
        event.id = id.as_deref();
        event.event_type = ty.as_deref();
        event.retry = retry;
        let bytes = encode(&event).unwrap();
        let (items, last_id) = decode_chunks(&cut(&bytes, &cuts));
        let mut expected = Vec::new();
        if let Some(ms) = retry {
            expected.push(Item::Retry(ms));
        }
        let event_type = match ty.as_deref() {
            None | Some("") => "message".to_owned(),
            Some(t) => t.to_owned(),
        };
        let id = id.unwrap_or_default();
        expected.push(Item::Event(MessageEvent {
            event_type,
            data: normalise_line_breaks(&data),
            last_event_id: id.clone(),
        }));
        prop_assert_eq!(items, expected);
        prop_assert_eq!(last_id, id);
    }

    /// Limits give the same items and the same error in any chunking: a
    /// long `data` line streamed into the data buffer (decode.rs) is held to
    /// them exactly as a buffered line is.
    #[test]
    fn chunking_never_matters_under_limits(
        bytes in prop_oneof![stream_bytes(), line_stream()],
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        max_line in 0usize..48,
        max_event in 0usize..48,
    ) {
        let limits = Limits { max_line, max_event };
        let whole = decode_limited(&[&bytes], limits);
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&whole, &decode_limited(&cut(&bytes, &cuts), limits));
        prop_assert_eq!(&whole, &decode_limited(&single, limits));
    }

    #[test]
    fn never_panics_and_stays_bounded(bytes in prop::collection::vec(any::<u8>(), 0..512), max_line in 0usize..64, max_event in 0usize..64) {
        let mut decoder = Decoder::with_limits(Limits { max_line, max_event });
        let mut n = 0usize;
        for chunk in bytes.chunks(7) {
            if decoder.decode(chunk, |_| n += 1).is_err() {
                break;
            }
        }
        decoder.finish();
    }
}
