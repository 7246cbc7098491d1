//! Following the JetStream log: an ephemeral push consumer (flow control,
//! idle heartbeats, no acknowledgements) that starts at the stream sequence
//! after the last entry read, created again from there after any error,
//! a gap in its delivery sequence, a missed heartbeat, or a reconnection.
//!
//! Why not the alternatives async-nats offers:
//! - its ordered consumer, after a server restart, spent seconds retrying
//!   the consumer the restart had deleted, and when it had delivered
//!   nothing yet it started over from the beginning of the stream;
//! - pull requests (`batch` with an expiry), against nats-server 2.9.10,
//!   now and then delivered nothing for a whole expiry period when one pull
//!   expired while messages were arriving (seen as 5 s stalls under load).
//!
//! A push consumer has neither: the server sends each message as it is
//! stored, and the position is this follower's own.

use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::push::{Config, Messages};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use tidings_core::{ClusterError, Entry};
use tokio::sync::watch;

use super::TIME_HEADER;
use crate::backoff::Backoff;
use crate::payload;

/// The server sends a heartbeat after this long without messages; two
/// missed ones make the follower start over.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long the server keeps a consumer nobody listens to.
const INACTIVE: Duration = Duration::from_secs(30);

/// Every entry after `after`, for ever; `connections` counts the client's
/// (re)connections.
pub(crate) fn stream(
    client: async_nats::Client,
    stream: jetstream::stream::Stream,
    base: u64,
    after: u64,
    connections: watch::Receiver<u64>,
) -> BoxStream<'static, Result<Entry, ClusterError>> {
    let follower = Follower {
        client,
        stream,
        base,
        last: after,
        messages: None,
        delivered: 0,
        connections,
        backoff: Backoff::default(),
        pause: None,
    };
    futures_util::stream::unfold(follower, |mut f| async move {
        let item = f.next().await;
        Some((item, f))
    })
    .boxed()
}

/// The state of one follower.
struct Follower {
    /// Makes delivery subjects.
    client: async_nats::Client,
    /// The stream's handle.
    stream: jetstream::stream::Stream,
    /// Place = `base` + stream sequence.
    base: u64,
    /// The place of the last entry read: where to resume.
    last: u64,
    /// The consumer's messages, while it works.
    messages: Option<Messages>,
    /// The consumer sequence of the last message received: the next must
    /// be one more, or a message was lost on the way.
    delivered: u64,
    /// Changes when the client reconnects: the server may have lost the
    /// consumer (it lives in memory).
    connections: watch::Receiver<u64>,
    /// Waits between failed attempts.
    backoff: Backoff,
    /// The wait before the next attempt, after a failure.
    pause: Option<Duration>,
}

impl Follower {
    async fn next(&mut self) -> Result<Entry, ClusterError> {
        loop {
            if let Some(pause) = self.pause.take() {
                tokio::time::sleep(pause).await;
            }
            let messages = match &mut self.messages {
                Some(messages) => messages,
                None => {
                    self.connections.mark_unchanged();
                    self.delivered = 0;
                    let inbox = self.client.new_inbox();
                    match open(&self.stream, inbox, self.base, self.last).await {
                        Ok(messages) => self.messages.insert(messages),
                        Err(err) => return Err(self.fail(err)),
                    }
                }
            };
            let message = tokio::select! {
                message = messages.next() => message,
                _ = self.connections.changed() => {
                    tracing::debug!(last = self.last, "reconnected: following the log again");
                    self.messages = None;
                    continue;
                }
            };
            let message = match message {
                Some(Ok(message)) => message,
                Some(Err(err)) => return Err(self.fail(format!("NATS: {err}"))),
                None => return Err(self.fail("NATS: the log consumer ended".to_owned())),
            };
            let info = match message.info() {
                Ok(info) => info,
                Err(err) => return Err(self.fail(format!("NATS: bad message metadata: {err}"))),
            };
            if info.consumer_sequence != self.delivered + 1 {
                // Lost on the way (a slow subscription drops messages):
                // start over from the last entry read.
                tracing::debug!(
                    expected = self.delivered + 1,
                    got = info.consumer_sequence,
                    "the log consumer skipped messages; following again"
                );
                self.messages = None;
                continue;
            }
            self.delivered = info.consumer_sequence;
            self.backoff.reset();
            let seq = self.base + info.stream_sequence;
            if seq <= self.last {
                continue;
            }
            self.last = seq;
            match decode(seq, &message) {
                Ok(entry) => return Ok(entry),
                Err(err) => tracing::error!(seq, error = %err, "skipping an unreadable log entry"),
            }
        }
    }

    /// Drops the consumer and schedules the next attempt; `err` for the
    /// caller.
    fn fail(&mut self, err: String) -> ClusterError {
        self.messages = None;
        self.pause = Some(self.backoff.fail());
        ClusterError(err)
    }
}

/// A consumer of the entries after place `last`, delivered to `inbox`.
/// (Not a method: the follower is not `Sync`, so a borrow of it cannot
/// cross threads.)
async fn open(
    stream: &jetstream::stream::Stream,
    inbox: String,
    base: u64,
    last: u64,
) -> Result<Messages, String> {
    let start_sequence = last.saturating_sub(base).saturating_add(1);
    let consumer = stream
        .create_consumer(Config {
            deliver_subject: inbox,
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence },
            ack_policy: AckPolicy::None,
            flow_control: true,
            idle_heartbeat: HEARTBEAT,
            inactive_threshold: INACTIVE,
            memory_storage: true,
            num_replicas: 1,
            ..Config::default()
        })
        .await
        .map_err(|e| format!("NATS: cannot create the log consumer: {e}"))?;
    consumer
        .messages()
        .await
        .map_err(|e| format!("NATS: cannot read the log: {e}"))
}

/// The entry at `seq` carried by `message`.
fn decode(seq: u64, message: &jetstream::Message) -> Result<Entry, String> {
    let time_ms = message
        .headers
        .as_ref()
        .and_then(|h| h.get(TIME_HEADER))
        .and_then(|v| v.as_str().parse().ok())
        .ok_or("no or bad time header")?;
    let update = payload::decode(&message.payload).map_err(|e| e.to_string())?;
    Ok(Entry {
        seq,
        update,
        time_ms,
    })
}
