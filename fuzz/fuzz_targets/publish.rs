//! The publish endpoint's body parsers (form and JSON) on arbitrary bytes:
//! no panic and no stack overflow, however deep the nesting, and a body
//! they accept holds at least one update, each with a topic.
//!
//! The first byte chooses the parser (`j`: JSON, anything else: form), as
//! in the seed corpus (`fuzz/seeds/publish/`, which
//! `crates/tidings-http/tests/publish_corpus.rs` also runs in the test
//! suite).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let [kind, body @ ..] = input else {
        return;
    };
    if let Ok(updates) = tidings_http::parse_publish_body(body, *kind == b'j') {
        assert!(!updates.is_empty());
        assert!(updates.iter().all(|u| !u.topics.is_empty()));
    }
});
