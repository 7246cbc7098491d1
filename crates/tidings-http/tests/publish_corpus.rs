//! The publish fuzz target's seed corpus (`fuzz/seeds/publish/`), run
//! through the body parsers in the ordinary test suite: every `accepted-*`
//! body is parsed into updates that each have a topic, every `refused-*`
//! body is refused with a 400 and a message. The first byte of a file
//! chooses the parser (`j`: JSON, else the form encoding), as in the fuzz
//! target.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use http::StatusCode;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/publish");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_none())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_gets_the_answer_its_name_says() {
    let files = corpus();
    let deep = files
        .iter()
        .filter(|(name, _)| name.ends_with("-100000"))
        .count();
    assert!(deep >= 3, "the deep-nesting seeds are missing: {files:?}");
    for (name, input) in &files {
        let (kind, body) = input.split_first().unwrap();
        let outcome = tidings_http::parse_publish_body(body, *kind == b'j');
        if name.starts_with("accepted-") {
            let updates = outcome.unwrap_or_else(|e| panic!("{name}: refused: {}", e.message));
            assert!(!updates.is_empty(), "{name}");
            assert!(updates.iter().all(|u| !u.topics.is_empty()), "{name}");
        } else if name.starts_with("refused-") {
            let error = outcome.err().unwrap_or_else(|| panic!("{name}: accepted"));
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{name}");
            assert!(!error.message.is_empty(), "{name}");
        } else {
            panic!("{name}: a seed's name starts with accepted- or refused-");
        }
    }
}

#[test]
fn deep_nesting_names_the_limit() {
    let files = corpus();
    let (_, input) = files
        .iter()
        .find(|(name, _)| name == "refused-json-nested-data-100000")
        .unwrap();
    let error = tidings_http::parse_publish_body(&input[1..], true).unwrap_err();
    assert!(
        error.message.contains("nest more than 127 levels"),
        "{}",
        error.message
    );
}
