//! How an update is written into the engine: a small, versioned JSON
//! object with a fixed field order, so that equal updates are equal bytes
//! (the engines compare stored and retried updates byte for byte).
//!
//! This is not the fan-out hot path: each hub decodes an entry once and
//! encodes it into its event-stream frame once.
//!
//! `retain` came later than version 1: it is written only when set, so an
//! update without it has the same bytes as before (a retry of an update
//! published before retained updates existed is still recognised), and
//! older readers ignore it.

use serde::{Deserialize, Serialize};
use tidings_core::Update;

/// The version of the encoding written by this build.
const VERSION: u32 = 1;

/// An update as written (borrowed from the [`Update`]).
#[derive(Serialize)]
struct Out<'a> {
    /// The encoding's version: readers refuse versions they do not know.
    v: u32,
    /// The topics, canonical first.
    topics: &'a [String],
    /// The data.
    data: &'a str,
    /// The SSE event type.
    #[serde(rename = "type")]
    event_type: Option<&'a str>,
    /// The publisher's id.
    id: Option<&'a str>,
    /// The reconnection time, in milliseconds.
    retry: Option<u64>,
    /// Whether only authorized subscribers may receive it.
    private: bool,
    /// Whether it is (or, with empty data, clears) its topics' retained
    /// update; only written when set.
    #[serde(skip_serializing_if = "is_false")]
    retain: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// An update as read back.
#[derive(Deserialize)]
struct In {
    /// The encoding's version.
    v: u32,
    /// The topics, canonical first.
    topics: Vec<String>,
    /// The data.
    data: String,
    /// The SSE event type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// The publisher's id.
    id: Option<String>,
    /// The reconnection time, in milliseconds.
    retry: Option<u64>,
    /// Whether only authorized subscribers may receive it.
    private: bool,
    /// Whether it is (or clears) its topics' retained update.
    #[serde(default)]
    retain: bool,
}

/// An entry's payload could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PayloadError {
    /// Not the JSON this crate writes.
    #[error("unreadable update payload: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a newer build.
    #[error("update payload version {0} is not known to this build (it knows {VERSION})")]
    Version(u32),
}

/// The bytes stored for `update`; equal updates give equal bytes.
pub(crate) fn encode(update: &Update) -> Vec<u8> {
    let out = Out {
        v: VERSION,
        topics: &update.topics,
        data: &update.data,
        event_type: update.event_type.as_deref(),
        id: update.id.as_deref(),
        retry: update.retry,
        private: update.private,
        retain: update.retain,
    };
    // Serializing strings, numbers and booleans into a Vec cannot fail.
    serde_json::to_vec(&out).unwrap_or_default()
}

/// The update stored as `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Update, PayloadError> {
    let read: In = serde_json::from_slice(bytes)?;
    if read.v != VERSION {
        return Err(PayloadError::Version(read.v));
    }
    Ok(Update {
        topics: read.topics,
        data: read.data,
        event_type: read.event_type,
        id: read.id,
        retry: read.retry,
        private: read.private,
        retain: read.retain,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn update() -> Update {
        Update {
            topics: vec!["https://example.com/a".into(), "alt".into()],
            data: "line 1\nline 2 \u{e9}\r\"quoted\"".into(),
            event_type: Some("t".into()),
            id: Some("mine".into()),
            retry: Some(1500),
            private: true,
            retain: true,
        }
    }

    #[test]
    fn round_trips_and_is_canonical() {
        let u = update();
        let bytes = encode(&u);
        assert_eq!(decode(&bytes).unwrap(), u);
        assert_eq!(encode(&update()), bytes, "equal updates, equal bytes");
        let plain = Update {
            topics: vec!["t".into()],
            ..Update::default()
        };
        assert_eq!(
            String::from_utf8(encode(&plain)).unwrap(),
            r#"{"v":1,"topics":["t"],"data":"","type":null,"id":null,"retry":null,"private":false}"#
        );
        assert_eq!(decode(&encode(&plain)).unwrap(), plain);
        let kept = Update {
            retain: true,
            ..plain
        };
        assert!(
            String::from_utf8(encode(&kept))
                .unwrap()
                .ends_with(r#","private":false,"retain":true}"#)
        );
        assert_eq!(decode(&encode(&kept)).unwrap(), kept);
    }

    #[test]
    fn every_field_changes_the_bytes() {
        let base = encode(&update());
        let changes: [fn(&mut Update); 7] = [
            |u| u.topics.push("more".into()),
            |u| u.data.push('!'),
            |u| u.event_type = None,
            |u| u.id = Some("other".into()),
            |u| u.retry = Some(1),
            |u| u.private = false,
            |u| u.retain = false,
        ];
        for change in changes {
            let mut u = update();
            change(&mut u);
            assert_ne!(encode(&u), base, "{u:?}");
        }
    }

    #[test]
    fn refuses_unknown_versions_and_junk() {
        let bytes = encode(&update());
        let text = String::from_utf8(bytes)
            .unwrap()
            .replacen("\"v\":1", "\"v\":2", 1);
        assert!(matches!(
            decode(text.as_bytes()),
            Err(PayloadError::Version(2))
        ));
        assert!(matches!(decode(b"not json"), Err(PayloadError::Json(_))));
        assert!(matches!(decode(b"{\"v\":1}"), Err(PayloadError::Json(_))));
    }
}
