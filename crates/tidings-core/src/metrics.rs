//! The hub's counters, through the `metrics` facade: whoever installs a
//! recorder (the HTTP server installs a Prometheus one) sees them. Handles
//! are looked up once, so the hot path only does atomic adds.

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

#[derive(Debug)]
pub(crate) struct Metrics {
    /// Events that got a place in the order.
    pub(crate) published: Counter,
    /// Publishes of an id already in history that changed nothing.
    pub(crate) duplicates: Counter,
    /// Live events handed to subscribers' transports.
    pub(crate) delivered: Counter,
    /// History events handed to subscribers' transports.
    pub(crate) replayed: Counter,
    /// Subscribers ended for falling a queue behind.
    pub(crate) lagged: Counter,
    /// Subscribers ended because nothing was taken for the write timeout.
    pub(crate) write_timeouts: Counter,
    /// Subscriptions open now.
    pub(crate) subscriptions: Gauge,
    /// Seconds from the hub receiving a publish to a subscriber's
    /// transport having written it.
    pub(crate) latency: Histogram,
    /// Publishes refused by the hub (not for what they held), one counter
    /// per cause, looked up once.
    refused: [(&'static str, Counter); REFUSAL_CAUSES.len()],
}

/// The causes `tidings_publishes_refused_total` counts, as
/// [`PublishError::cause`](crate::PublishError::cause) names them.
const REFUSAL_CAUSES: [&str; 5] = [
    "disk_full",
    "store_error",
    "engine_full",
    "engine_unavailable",
    "shutting_down",
];

impl Metrics {
    pub(crate) fn new() -> Self {
        describe_counter!(
            "tidings_events_published_total",
            "Events that got a place in the order."
        );
        describe_counter!(
            "tidings_publish_duplicates_total",
            "Publishes of an already-stored id with the same content (idempotent retries)."
        );
        describe_counter!(
            "tidings_events_delivered_total",
            "Live events written to subscribers."
        );
        describe_counter!(
            "tidings_events_replayed_total",
            "History events written to subscribers."
        );
        describe_counter!(
            "tidings_slow_consumer_drops_total",
            "Subscribers disconnected because their queue was full."
        );
        describe_counter!(
            "tidings_write_timeouts_total",
            "Subscribers disconnected because they stopped reading."
        );
        describe_gauge!("tidings_subscriptions", "Open subscriptions.");
        describe_counter!(
            "tidings_publishes_refused_total",
            "Publishes the hub could not take (not for what they held), by cause: disk_full, store_error, engine_full, engine_unavailable, shutting_down."
        );
        describe_histogram!(
            "tidings_publish_to_write_seconds",
            metrics::Unit::Seconds,
            "From the hub receiving a publish to a subscriber's socket write of it."
        );
        Self {
            published: counter!("tidings_events_published_total"),
            duplicates: counter!("tidings_publish_duplicates_total"),
            delivered: counter!("tidings_events_delivered_total"),
            replayed: counter!("tidings_events_replayed_total"),
            lagged: counter!("tidings_slow_consumer_drops_total"),
            write_timeouts: counter!("tidings_write_timeouts_total"),
            subscriptions: gauge!("tidings_subscriptions"),
            latency: histogram!("tidings_publish_to_write_seconds"),
            refused: REFUSAL_CAUSES.map(|cause| {
                (
                    cause,
                    counter!("tidings_publishes_refused_total", "cause" => cause),
                )
            }),
        }
    }

    /// Counts a publish the hub refused, by its cause.
    pub(crate) fn refused(&self, cause: &str) {
        if let Some((_, counter)) = self.refused.iter().find(|(c, _)| *c == cause) {
            counter.increment(1);
        }
    }
}
