//! Which subject an update is published on: the publisher's id is part of
//! it, so that JetStream's per-subject index finds the entry of an id
//! (`last_by_subj`) and refuses a second entry for it atomically
//! (`Nats-Expected-Last-Subject-Sequence: 0`).
//!
//! - `PREFIX.anon`: updates without a publisher id;
//! - `PREFIX.id.i<base64url of the id>`: ids up to [`MAX_INLINE`] bytes;
//! - `PREFIX.id.h<hex SHA-256 of the id>`: longer ids, so that subjects stay
//!   well below the server's control-line limit. The stored entry carries the
//!   whole id, and a retry is compared with it byte for byte.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// The longest id written into a subject as is (encoded).
const MAX_INLINE: usize = 512;

/// The subject of an update without a publisher id.
pub(crate) fn anonymous(prefix: &str) -> String {
    format!("{prefix}.anon")
}

/// The subject of the update with publisher id `id`.
pub(crate) fn of_id(prefix: &str, id: &str) -> String {
    if id.len() <= MAX_INLINE {
        format!("{prefix}.id.i{}", URL_SAFE_NO_PAD.encode(id))
    } else {
        let digest = Sha256::digest(id.as_bytes());
        let mut subject = format!("{prefix}.id.h");
        for byte in digest {
            subject.push_str(&format!("{byte:02x}"));
        }
        subject
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_single_valid_tokens() {
        for id in [
            "",
            "a",
            "https://example.com/books/1?x=y z",
            "é.*>",
            &"x".repeat(5000),
        ] {
            let subject = of_id("p", id);
            let token = subject.strip_prefix("p.id.").unwrap_or_default();
            assert!(!token.is_empty() && token.len() < 1024, "{subject}");
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{subject}"
            );
        }
        assert_ne!(of_id("p", "a"), of_id("p", "b"));
        assert_ne!(of_id("p", &"a".repeat(600)), of_id("p", &"a".repeat(601)));
        assert_eq!(anonymous("p"), "p.anon");
    }
}
