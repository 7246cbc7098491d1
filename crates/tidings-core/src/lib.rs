//! The hub core: one total order of events, their history, the
//! subscriptions and the fan-out between them.
//!
//! **Architecture Invariant**: this crate knows nothing about HTTP. It takes
//! validated [`Update`]s and [`SubscribeRequest`]s and hands out encoded
//! `text/event-stream` frames; transports (the HTTP server, tests) move the
//! bytes.
//!
//! **Architecture Invariant**: every event is encoded once per hub, by the
//! [`sequencer`](crate::sequencer) (or, in cluster mode, by the
//! [`follower`](crate::follower) of each hub), and the same
//! [`bytes::Bytes`] goes to every subscriber and into the history.
//!
//! **Architecture Invariant**: a subscriber never slows a publisher or
//! another subscriber. Fan-out only appends to a bounded per-subscriber
//! queue; a subscriber whose queue is full is ended and catches up from
//! history when it reconnects.
//!
//! **Architecture Invariant**: history sits behind the one small
//! [`Store`] trait; nothing above it knows which store it is, and every
//! call to it goes through [`history`](crate::history), which keeps a
//! blocking store off the async runtime.
//!
//! **Architecture Invariant**: imports inside this crate run one way, in
//! the order of the `mod` lines below: from the public [`Hub`] handle down
//! to the parts it starts, to what they share, to the leaves.
//!
//! The path of one event: [`Hub::publish`] sends the updates to the
//! sequencer thread, which gives each the next sequence number, encodes it,
//! appends the batch to the [`Store`] (durable once that returns), offers
//! each event to the [`registry`](crate::registry)'s matching subscribers
//! and then answers the publisher. Each subscriber's transport drains its
//! queue through [`Subscription::next`].
//!
//! Updates published with `retain` are also kept per topic
//! ([`retained`](crate::retained)): a subscription that does not resume
//! starts with the retained updates of its topics and an `id:` block
//! naming the newest event the hub held, then goes live.

// The public handle, then the parts it starts, then what they share, then
// the leaves: each module imports only modules further down this list.
mod hub;

mod follower;
mod recovery;
mod sequencer;
mod subscription;
mod sweeper;

mod fanout;

mod shared;

mod history;
mod presence;
mod registry;
mod retained;
mod subscriber;

mod clock;
mod cluster;
mod config;
mod engine;
mod error;
mod event;
mod metrics;
mod readiness;
mod replay;
mod roster;
mod store;

pub use cluster::{Cluster, ClusterError, Entry, RetainedEntries};
pub use config::HubConfig;
pub use error::{PublishError, SubscribeError};
pub use event::{Event, EventId, Published, Retain, Update, UpdateError};
pub use hub::Hub;
pub use presence::{
    ActiveSubscription, JSONLD_CONTEXT, ListError, PresenceConfig, SUBSCRIPTIONS_PATH,
    SubscriptionList, expand,
};
pub use readiness::Readiness;
pub use replay::{GAP_EVENT_TYPE, Resume};
pub use roster::{DeadHub, Lease, Roster, RosterChange};
pub use store::{
    Bounds, EventIdKind, MemoryStore, RetainedUpdates, Retention, Store, StoreError,
    StoreErrorKind, initial_seq,
};
pub use subscriber::{DirectWrite, End, SubscribeRequest, SubscriberAuth};
pub use subscription::{AbortWatch, MAX_BATCH, Subscription};
pub use tidings_selector::Selector;
