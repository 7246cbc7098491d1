//! Whether the hub can do everything it is for right now, and if not, why:
//! what a readiness check reports (the HTTP side answers `GET /readyz`
//! with it). Liveness is another question: a hub that is not ready still
//! serves its subscribers and its history.

use std::fmt;

/// Whether the hub can take publishes and serve everything now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Readiness {
    /// It can.
    Ready,
    /// History is still loading: the durable store opening (and repairing
    /// after a crash), or, in cluster mode, the first read of the engine's
    /// log up to its head.
    Loading,
    /// The history store's disk is full: publishes are refused until space
    /// is freed (the hub notices by itself).
    DiskFull,
    /// The history store cannot write (an I/O error); the hub keeps trying
    /// to bring it back.
    StoreFailing,
    /// The cluster engine cannot be reached; the hub keeps trying.
    EngineUnreachable,
    /// The hub is shutting down.
    ShuttingDown,
}

impl Readiness {
    /// Whether the hub is ready.
    pub fn is_ready(self) -> bool {
        self == Self::Ready
    }

    /// A short, stable name: `ready`, `loading`, `disk_full`,
    /// `store_failing`, `engine_unreachable` or `shutting_down`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Loading => "loading",
            Self::DiskFull => "disk_full",
            Self::StoreFailing => "store_failing",
            Self::EngineUnreachable => "engine_unreachable",
            Self::ShuttingDown => "shutting_down",
        }
    }
}

impl fmt::Display for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ready => "the hub is ready",
            Self::Loading => "the hub is loading its history",
            Self::DiskFull => {
                "the history store's disk is full: publishes are refused until space is freed"
            }
            Self::StoreFailing => "the history store cannot write; the hub keeps retrying",
            Self::EngineUnreachable => {
                "the cluster engine cannot be reached; the hub keeps retrying"
            }
            Self::ShuttingDown => "the hub is shutting down",
        })
    }
}
