//! The live demo: built-in producers for `tidings serve --demo`.
//!
//! Four feeds publish typed JSON events on their own topics, the way the
//! classic Server-Sent Events tutorials do with a script that pushes to
//! `/update` every second:
//!
//! | feed | topic | SSE `type` |
//! |---|---|---|
//! | stock ticker | `https://demo.tidings.dev/prices/{symbol}` | `price` |
//! | match scores | `https://demo.tidings.dev/scores/{match}` | `score` |
//! | notifications | `https://demo.tidings.dev/notifications` | `notification` |
//! | server clock | `https://demo.tidings.dev/clock` | `clock` |
//!
//! **Architecture Invariant**: the feeds publish through [`Hub::publish`],
//! the same core path every HTTP publish takes once its body is parsed
//! (sequencer, encode once, history, fan-out). There is no side door: a
//! subscriber cannot tell a demo event from one a publisher POSTed.
//!
//! **Architecture Invariant**: the rates are small and fixed: about four
//! events a second in all at the nominal [`TICK`], some 15,000 events and
//! 2.4 MB of frames an hour, so a hub left running with `--demo` adds
//! little to its history.
//!
//! [`Hub::publish`]: tidings_core::Hub::publish

mod clock;
mod feed;
mod notifications;
mod schedule;
mod scores;
mod ticker;
pub mod topics;

pub use schedule::{DemoConfig, TICK, run};
