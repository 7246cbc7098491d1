//! Why a publish or a subscription failed: the errors every part of the
//! core may return, kept apart from the parts so that they import nothing
//! but the leaf types they name.

use std::sync::Arc;

use crate::event::UpdateError;
use crate::store::{StoreError, StoreErrorKind};

/// Why a publish failed. Nothing of a failed publish is delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// An update was refused; `index` is its place in the batch.
    #[error("update {index}: {error}")]
    Invalid {
        /// The update's place in the publish.
        index: usize,
        /// What was wrong with it.
        error: UpdateError,
    },
    /// An update reused the id of a stored event with different content.
    #[error("id {id:?} is already used by a different update")]
    Conflict {
        /// The id.
        id: String,
    },
    /// The history store failed: nothing was published.
    #[error(transparent)]
    Store(Arc<StoreError>),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
    /// The cluster engine cannot be reached: nothing was published.
    #[error("the cluster engine is unavailable: {0}")]
    Unavailable(String),
    /// A retained update would make more topics hold one than the hub
    /// keeps: nothing of the publish was published.
    #[error(
        "the hub keeps retained updates for at most {limit} topics; this publish would add more (clear some with an empty retained update, or raise --retained-topics)"
    )]
    RetainedFull {
        /// The limit.
        limit: usize,
    },
    /// The cluster engine refuses writes because it is full (Redis at
    /// `maxmemory` with `noeviction`, a JetStream stream at its limit with
    /// discard-new): nothing was published.
    #[error("the cluster engine is full: {0}")]
    EngineFull(String),
}

impl PublishError {
    /// A short, stable name for why the publish failed, for metrics and
    /// logs: `invalid`, `conflict`, `retained_full`, `disk_full`,
    /// `store_error`, `shutting_down`, `engine_unavailable` or
    /// `engine_full`.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid",
            Self::Conflict { .. } => "conflict",
            Self::RetainedFull { .. } => "retained_full",
            Self::Store(err) if err.kind == StoreErrorKind::Full => "disk_full",
            Self::Store(_) => "store_error",
            Self::ShuttingDown => "shutting_down",
            Self::Unavailable(_) => "engine_unavailable",
            Self::EngineFull(_) => "engine_full",
        }
    }

    /// Whether the hub, not what was published, is why it failed: the
    /// publish was fine and was refused (counted in
    /// `tidings_publishes_refused_total`). A publish over the retained
    /// topics limit is the publisher's to fix, like a conflict.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            Self::Invalid { .. } | Self::Conflict { .. } | Self::RetainedFull { .. }
        )
    }
}

/// Why a subscription could not start.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The history store failed while resolving the resume point.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
}
