//! Where a resuming subscriber starts, and what it is told about it.

use bytes::Bytes;

use crate::event::EventId;
use crate::store::Bounds;

/// The type of the in-band event that tells a subscriber history was lost
/// between the id it asked for and what it gets: a plain browser
/// `EventSource` sees it with `addEventListener("tidings.gap", …)`.
pub const GAP_EVENT_TYPE: &str = "tidings.gap";

/// How a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// Replay the retained events after this sequence number first; `None`
    /// sends live events only.
    pub after: Option<u64>,
    /// The value of the response's `Last-Event-ID` header, as the Mercure
    /// protocol says: the id of the event just before the first one sent,
    /// or `earliest` when that is not known. `None`: no header (the client
    /// asked for no resumption).
    pub header: Option<String>,
    /// The gap notice to send before anything else, when the requested id
    /// is no longer, or never was, in the history.
    pub gap: Option<Bytes>,
}

/// What a requested id turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// `earliest`.
    Earliest,
    /// A hub-made id, with its sequence number.
    Hub(u64),
    /// A publisher's id, found in history at this sequence number.
    Found(u64),
    /// A publisher's id the history does not hold.
    NotFound,
}

impl Lookup {
    /// Classifies `id` without the history; `None` means "look it up".
    pub(crate) fn classify(id: &str) -> Option<Self> {
        if id == "earliest" {
            Some(Self::Earliest)
        } else {
            EventId::parse(id).map(Self::Hub)
        }
    }
}

/// Decides how a subscription that asked for `requested` starts, given the
/// retained `bounds`.
pub(crate) fn plan(requested: Option<&str>, lookup: Option<Lookup>, bounds: Bounds) -> Resume {
    let Some(requested) = requested else {
        return Resume {
            after: None,
            header: None,
            gap: None,
        };
    };
    let from_oldest = bounds.first.saturating_sub(1);
    let resume_after = |seq: u64| Resume {
        after: Some(seq),
        header: Some(requested.to_owned()),
        gap: None,
    };
    let lost = |reason: &str| Resume {
        after: Some(from_oldest),
        header: Some("earliest".to_owned()),
        gap: Some(gap_frame(requested, reason)),
    };
    match lookup.unwrap_or(Lookup::NotFound) {
        Lookup::Earliest => Resume {
            after: Some(from_oldest),
            header: Some("earliest".to_owned()),
            gap: None,
        },
        Lookup::Hub(seq) | Lookup::Found(seq) if bounds.resumable_after(seq) => resume_after(seq),
        Lookup::Hub(seq) if seq < from_oldest => lost("expired"),
        Lookup::Hub(_) | Lookup::Found(_) | Lookup::NotFound => lost("unknown"),
    }
}

/// The `tidings.gap` event: no `id` field, so the client's last event id
/// stays the one it asked for until a replayed event replaces it.
fn gap_frame(requested: &str, reason: &str) -> Bytes {
    let data = serde_json::json!({ "lastEventId": requested, "reason": reason }).to_string();
    let event = tidings_codec::Event::new(&data).event_type(GAP_EVENT_TYPE);
    // The type is a constant without line breaks and there is no id, so
    // encoding cannot fail; an empty frame would be harmless anyway.
    tidings_codec::encode(&event).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bounds = Bounds {
        first: 100,
        next: 200,
    };

    fn run(requested: &str, found: Option<u64>) -> Resume {
        let lookup = Lookup::classify(requested).or(found.map(Lookup::Found));
        plan(Some(requested), lookup, B)
    }

    #[test]
    fn no_request_no_replay() {
        assert_eq!(
            plan(None, None, B),
            Resume {
                after: None,
                header: None,
                gap: None
            }
        );
    }

    #[test]
    fn earliest() {
        let r = run("earliest", None);
        assert_eq!(r.after, Some(99));
        assert_eq!(r.header.as_deref(), Some("earliest"));
        assert!(r.gap.is_none());
    }

    #[test]
    fn known_ids_resume_exactly() {
        for (id, after) in [
            ("urn:tidings:99", 99),
            ("urn:tidings:150", 150),
            ("urn:tidings:199", 199),
        ] {
            let r = run(id, None);
            assert_eq!(r.after, Some(after), "{id}");
            assert_eq!(r.header.as_deref(), Some(id));
            assert!(r.gap.is_none());
        }
        let r = run("publisher-id", Some(120));
        assert_eq!(r.after, Some(120));
        assert_eq!(r.header.as_deref(), Some("publisher-id"));
    }

    #[test]
    fn lost_ids_replay_all_with_a_gap_notice() {
        for (id, reason) in [
            ("urn:tidings:50", "expired"),
            ("urn:tidings:200", "unknown"),
            ("urn:tidings:5000", "unknown"),
            ("nobody-knows", "unknown"),
        ] {
            let r = run(id, None);
            assert_eq!(r.after, Some(99), "{id}");
            assert_eq!(r.header.as_deref(), Some("earliest"));
            let gap = String::from_utf8(r.gap.unwrap().to_vec()).unwrap();
            assert!(gap.starts_with("event: tidings.gap\ndata: {"), "{gap}");
            assert!(gap.contains(reason), "{gap}");
            assert!(!gap.contains("\nid:"), "{gap}");
        }
    }
}
