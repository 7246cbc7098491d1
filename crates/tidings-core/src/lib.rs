//! The hub core: one total order of events, their history, the
//! subscriptions and the fan-out between them.
//!
//! **Architecture Invariant**: this crate knows nothing about HTTP. It takes
//! validated [`Update`]s and [`SubscribeRequest`]s and hands out encoded
//! `text/event-stream` frames; transports (the HTTP server, tests) move the
//! bytes.
//!
//! **Architecture Invariant**: every event is encoded once, by the
//! [`sequencer`](crate::sequencer), and the same [`bytes::Bytes`] goes to
//! every subscriber and into the history.
//!
//! **Architecture Invariant**: a subscriber never slows a publisher or
//! another subscriber. Fan-out only appends to a bounded per-subscriber
//! queue; a subscriber whose queue is full is ended and catches up from
//! history when it reconnects.
//!
//! **Architecture Invariant**: history sits behind the one small
//! [`Store`] trait; nothing above it knows which store it is.
//!
//! The path of one event: [`Hub::publish`] sends the updates to the
//! sequencer thread, which gives each the next sequence number, encodes it,
//! appends the batch to the [`Store`] (durable once that returns), offers
//! each event to the [`registry`](crate::registry)'s matching subscribers
//! and then answers the publisher. Each subscriber's transport drains its
//! queue through [`Subscription::next`].

mod clock;
mod cluster;
mod event;
mod follower;
mod hub;
mod metrics;
mod registry;
mod replay;
mod sequencer;
mod store;
mod subscriber;
mod sweeper;

pub use cluster::{Cluster, ClusterError, Entry};
pub use event::{Event, EventId, Published, Update, UpdateError};
pub use hub::{Hub, HubConfig, PublishError, SubscribeError};
pub use replay::{GAP_EVENT_TYPE, Resume};
pub use store::{Bounds, EventIdKind, MemoryStore, Retention, Store, StoreError, initial_seq};
pub use subscriber::{AbortWatch, End, MAX_BATCH, SubscribeRequest, SubscriberAuth, Subscription};
pub use tidings_selector::Selector;
