//! Connect-and-disconnect cycles: each opens a subscription, reads the
//! response head (the first bytes), optionally stays a while, and closes.
//! Used by `churn` and by `fanout --churn-rate` (alongside the measured
//! subscribers).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::head::{self, OpenError};
use crate::sources;
use crate::stats::{self, new_histogram};

/// What the cycles share with the loop that launches them.
#[derive(Debug)]
struct State {
    /// Where to connect.
    addr: SocketAddr,
    /// The subscription request.
    request: Vec<u8>,
    /// How long one cycle's opening may take.
    timeout: Duration,
    /// How long to stay connected after the first bytes.
    hold: Duration,
    /// Cycles running.
    in_flight: Cell<u64>,
    /// Cycles that completed.
    completed: Cell<u64>,
    /// Cycles that failed.
    failed: Cell<u64>,
    /// Failures by kind.
    errors: RefCell<BTreeMap<String, u64>>,
    /// Connect to first bytes, µs.
    first_bytes: RefCell<Histogram<u64>>,
}

/// One subscriber's short life.
async fn cycle(state: Rc<State>, source: Option<IpAddr>) {
    let started = Instant::now();
    let opened = tokio::time::timeout(state.timeout, async {
        let mut stream = head::connect(state.addr, source).await?;
        head::open(&mut stream, &state.request).await?;
        Ok::<_, OpenError>(stream)
    })
    .await
    .unwrap_or(Err(OpenError::Timeout));
    match opened {
        Ok(stream) => {
            stats::record(
                &mut state.first_bytes.borrow_mut(),
                u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            );
            if !state.hold.is_zero() {
                tokio::time::sleep(state.hold).await;
            }
            drop(stream);
            state.completed.set(state.completed.get() + 1);
        }
        Err(err) => {
            state.failed.set(state.failed.get() + 1);
            *state.errors.borrow_mut().entry(err.kind()).or_default() += 1;
        }
    }
    state.in_flight.set(state.in_flight.get().saturating_sub(1));
}

/// Launches cycles on schedule, at most `max_in_flight` at once, and counts
/// what became of them.
#[derive(Debug)]
pub(crate) struct Cycles {
    /// What the cycle tasks share.
    state: Rc<State>,
    /// Source addresses, round-robin.
    sources: Vec<IpAddr>,
    /// Cycles allowed in flight at once.
    max_in_flight: u64,
    /// Cycles due so far: started or skipped.
    launched: u64,
    /// Cycles started.
    started: u64,
    /// Cycles not started because `max_in_flight` were running.
    skipped: u64,
}

impl Cycles {
    /// Cycles that send `request` to `addr` from `sources`.
    pub(crate) fn new(
        addr: SocketAddr,
        request: Vec<u8>,
        timeout: Duration,
        hold: Duration,
        sources: Vec<IpAddr>,
        max_in_flight: u64,
    ) -> Self {
        Self {
            state: Rc::new(State {
                addr,
                request,
                timeout,
                hold,
                in_flight: Cell::new(0),
                completed: Cell::new(0),
                failed: Cell::new(0),
                errors: RefCell::default(),
                first_bytes: RefCell::new(new_histogram()),
            }),
            sources,
            max_in_flight,
            launched: 0,
            started: 0,
            skipped: 0,
        }
    }

    /// Starts (or skips, when too many are in flight) cycles until `due`
    /// have been launched since the start. Must run inside a `LocalSet`.
    pub(crate) fn launch_until(&mut self, due: u64) {
        while self.launched < due {
            if self.state.in_flight.get() < self.max_in_flight {
                let source = sources::pick(&self.sources, self.started as usize);
                self.state.in_flight.set(self.state.in_flight.get() + 1);
                tokio::task::spawn_local(cycle(Rc::clone(&self.state), source));
                self.started += 1;
            } else {
                self.skipped += 1;
            }
            self.launched += 1;
        }
    }

    /// Waits until the cycles in flight have ended, at most as long as one
    /// cycle may take (and a second more).
    pub(crate) async fn wait_in_flight(&self) {
        let state = &self.state;
        let deadline = Instant::now() + state.timeout + state.hold + Duration::from_secs(1);
        while state.in_flight.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Cycles started.
    pub(crate) fn started(&self) -> u64 {
        self.started
    }

    /// Cycles skipped because too many were in flight.
    pub(crate) fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Cycles running now.
    pub(crate) fn in_flight(&self) -> u64 {
        self.state.in_flight.get()
    }

    /// Cycles that got their first bytes and closed.
    pub(crate) fn completed(&self) -> u64 {
        self.state.completed.get()
    }

    /// Cycles that failed.
    pub(crate) fn failed(&self) -> u64 {
        self.state.failed.get()
    }

    /// Failures by kind.
    pub(crate) fn errors(&self) -> BTreeMap<String, u64> {
        self.state.errors.borrow().clone()
    }

    /// Connect to first bytes, µs.
    pub(crate) fn first_bytes(&self) -> Histogram<u64> {
        self.state.first_bytes.borrow().clone()
    }

    /// The largest number of cycles allowed in flight.
    pub(crate) fn max_in_flight(&self) -> u64 {
        self.max_in_flight
    }
}
