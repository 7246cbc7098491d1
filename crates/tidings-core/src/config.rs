//! How a hub treats its subscribers: the one configuration the core takes.

use std::time::Duration;

/// How the hub treats subscribers.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events a subscriber may have waiting before it counts as too slow
    /// and is disconnected (it then resumes from history).
    pub queue_capacity: usize,
    /// Bytes (of the shared frames) a subscriber may have waiting before it
    /// counts as too slow, like `queue_capacity`; one event larger than
    /// this is still taken into an empty queue.
    pub queue_bytes: usize,
    /// A keep-alive comment goes to a stream idle this long; zero: never.
    pub heartbeat: Duration,
    /// A subscriber that leaves queued data untaken this long is
    /// disconnected.
    pub write_timeout: Duration,
    /// The reconnection time sent when a stream opens; `None`: none sent.
    pub retry: Option<Duration>,
    /// Events read from history per page when replaying.
    pub replay_page: usize,
    /// How often retention is enforced in the background.
    pub retention_interval: Duration,
    /// How many topics may hold a retained update: the retained updates
    /// are kept in memory (and in the store) whatever the history's
    /// retention, so they need a bound of their own.
    pub retained_topics: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 4096,
            queue_bytes: 4 << 20,
            heartbeat: Duration::from_secs(15),
            write_timeout: Duration::from_secs(30),
            retry: Some(Duration::from_secs(2)),
            replay_page: 1000,
            retention_interval: Duration::from_secs(5),
            retained_topics: 100_000,
        }
    }
}
