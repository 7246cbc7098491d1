//! Every vector of `conformance/sse-vectors.json` (at the repository
//! root), fed to the decoder in its own chunks, one byte at a time, and
//! whole.
//!
//! Vectors that a client must fail on its status or content type are about
//! the EventSource state machine, not the parser; here they check that the
//! body of the ones that have one still parses, and the client crate's tests
//! check the failing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::Engine as _;
use serde::Deserialize;
use tidings_codec::{Decoder, Item};

#[derive(Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    chunks_b64: Vec<String>,
    expect_fail_connection: bool,
    events: Vec<Expected>,
    last_event_id_after_eof: String,
    retry_ms: Option<u64>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Expected {
    #[serde(rename = "type")]
    event_type: String,
    data: String,
    id: String,
}

fn vectors() -> Vec<Vector> {
    // The package's directory as `cargo test` gives it when the test runs,
    // not as it was when the binary was built: CI builds this test in a
    // clone of the repository too, sharing the target directory.
    let dir = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    let path = format!("{dir}/../../conformance/sse-vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let file: File = serde_json::from_str(&text).unwrap();
    file.vectors
}

struct Outcome {
    events: Vec<Expected>,
    retry: Option<u64>,
    last_event_id: String,
}

fn run(chunks: &[Vec<u8>]) -> Outcome {
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    let mut retry = None;
    for chunk in chunks {
        decoder
            .decode(chunk, |item| match item {
                Item::Event(e) => events.push(Expected {
                    event_type: e.event_type,
                    data: e.data,
                    id: e.last_event_id,
                }),
                Item::Retry(ms) => retry = Some(ms),
                Item::Comment(_) => {}
            })
            .unwrap();
    }
    decoder.finish();
    Outcome {
        events,
        retry,
        last_event_id: decoder.last_event_id().to_owned(),
    }
}

#[test]
fn all_vectors_in_every_chunking() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 53, "the suite has 53 vectors");
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut checked = 0;
    for v in &vectors {
        let chunks: Vec<Vec<u8>> = v
            .chunks_b64
            .iter()
            .map(|c| b64.decode(c).unwrap())
            .collect();
        let whole: Vec<u8> = chunks.concat();
        let bytewise: Vec<Vec<u8>> = whole.iter().map(|b| vec![*b]).collect();
        for (how, feed) in [
            ("as given", chunks.clone()),
            ("byte by byte", bytewise),
            ("whole", vec![whole.clone()]),
        ] {
            let got = run(&feed);
            if v.expect_fail_connection {
                // The client never reads these bodies; the parser must still
                // take them without error, which `run` asserted.
                continue;
            }
            assert_eq!(got.events, v.events, "{} ({how}): events", v.name);
            assert_eq!(got.retry, v.retry_ms, "{} ({how}): retry", v.name);
            assert_eq!(
                got.last_event_id, v.last_event_id_after_eof,
                "{} ({how}): last event id",
                v.name
            );
            checked += 1;
        }
    }
    assert!(checked >= 3 * 40, "only {checked} runs were checked");
}
