//! Reading the snapshot of retained updates a new stream starts with: the
//! events up to the `id: HEAD` block (an `id` field and a blank line, no
//! data), found in the stream's raw bytes, since the decoder dispatches
//! nothing for it (as the WHATWG rules say) and only changes its last event
//! id.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use tidings_codec::{Item, MessageEvent};

use crate::support::{Stream, WAIT};

/// The retained updates a stream started with, and HEAD.
pub async fn snapshot(stream: &mut Stream) -> (Vec<MessageEvent>, String) {
    snapshot_within(stream, WAIT)
        .await
        .expect("no HEAD block: the hub held no event")
}

/// The same, or `None` when no HEAD block comes within `wait` (a stream
/// from a hub that holds no event has none; heartbeats may keep coming).
pub async fn snapshot_within(
    stream: &mut Stream,
    wait: Duration,
) -> Option<(Vec<MessageEvent>, String)> {
    tokio::time::timeout(wait, read_snapshot(stream)).await.ok()
}

async fn read_snapshot(stream: &mut Stream) -> (Vec<MessageEvent>, String) {
    let mut events = Vec::new();
    loop {
        if let Some((n, head)) = head_in(&stream.raw) {
            while events.len() < n {
                events.push(stream.next_event().await.expect("the stream ended"));
            }
            return (events, head);
        }
        match stream.next_item().await {
            Some(Item::Event(event)) => events.push(event),
            Some(_) => {}
            None => panic!("the stream ended before its HEAD block"),
        }
    }
}

/// How many events come before the first id-only block of `raw`, and its
/// id; `None` if there is none (yet).
pub fn head_in(raw: &[u8]) -> Option<(usize, String)> {
    let text = String::from_utf8_lossy(raw);
    let mut blocks: Vec<&str> = text.split("\n\n").collect();
    // The part after the last blank line is not a whole block yet.
    blocks.pop();
    let mut events = 0;
    for block in blocks {
        let lines: Vec<&str> = block.lines().filter(|l| !l.starts_with(':')).collect();
        let id = lines.iter().find_map(|l| l.strip_prefix("id: "));
        let data = lines.iter().any(|l| l.starts_with("data"));
        match (id, data) {
            (Some(id), false) => return Some((events, id.to_owned())),
            (_, true) => events += 1,
            _ => {}
        }
    }
    None
}
