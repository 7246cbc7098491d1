//! What the operator sees while a fan-out run goes on, and the server's
//! timeline: one task that redraws the progress four times a second and
//! samples the server once a second.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::procfs;
use crate::progress::Display;
use crate::report::TimelineSample;
use crate::shard::CountsView;
use crate::stats;
use crate::swarm::Counts;

/// How often the progress display and the server sampling run.
const TICK: Duration = Duration::from_millis(250);

/// What the run is doing, for the display and the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Opening subscriptions.
    Connecting,
    /// Waiting before publishing.
    Warmup,
    /// Publishing.
    Publishing,
    /// Waiting for the last deliveries.
    Draining,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Self::Connecting => "connect",
            Self::Warmup => "warmup",
            Self::Publishing => "publish",
            Self::Draining => "drain",
        }
    }
}

/// What the monitor task shares with the run.
#[derive(Debug)]
pub(super) struct Monitor {
    /// The progress display.
    pub(super) display: Display,
    /// Every shard's counters.
    views: Vec<CountsView>,
    /// Subscribers asked for.
    subscribers: u64,
    /// Events to publish.
    events: u64,
    /// The current phase.
    phase: Cell<Phase>,
    /// Events published so far (written by the publishing thread).
    pub(super) published: Arc<AtomicU64>,
    /// Churn is going on alongside (written by the churn thread).
    pub(super) churning: Arc<AtomicBool>,
    /// Deliveries expected once draining (for the display).
    pub(super) expected: Cell<u64>,
    /// The server to sample.
    server_pid: Option<u32>,
    /// When the run started.
    t0: Instant,
    /// One sample per second.
    pub(super) timeline: RefCell<Vec<TimelineSample>>,
    /// Set to end the monitor task.
    pub(super) stop: Cell<bool>,
}

impl Monitor {
    /// A monitor of `views` (the shards' counters), at the connect phase,
    /// not running yet.
    pub(super) fn new(
        display: Display,
        views: Vec<CountsView>,
        subscribers: u64,
        events: u64,
        server_pid: Option<u32>,
        t0: Instant,
    ) -> Self {
        Self {
            display,
            views,
            subscribers,
            events,
            phase: Cell::new(Phase::Connecting),
            published: Arc::new(AtomicU64::new(0)),
            churning: Arc::new(AtomicBool::new(false)),
            expected: Cell::new(0),
            server_pid,
            t0,
            timeline: RefCell::default(),
            stop: Cell::new(false),
        }
    }

    /// Every shard's counters, added up.
    pub(super) fn counts(&self) -> Counts {
        let mut total = Counts::default();
        for view in &self.views {
            total.add(view.counts());
        }
        total
    }

    /// Redraws the progress display.
    pub(super) fn show(&self) {
        let c = self.counts();
        match self.phase.get() {
            Phase::Connecting => self.display.update(
                c.connected + c.failed,
                &format!("open {} failed {}", c.connected - c.dropped, c.failed),
            ),
            Phase::Warmup => self.display.update(
                0,
                &format!("open {} dropped {}", c.connected - c.dropped, c.dropped),
            ),
            Phase::Publishing => self.display.update(
                self.published.load(Ordering::Relaxed),
                &format!(
                    "delivered {} dropped {}{}",
                    c.delivered,
                    c.dropped,
                    if self.churning.load(Ordering::Relaxed) {
                        ", churning"
                    } else {
                        ""
                    }
                ),
            ),
            Phase::Draining => self.display.update(
                c.delivered.min(self.expected.get()),
                &format!("dropped {}", c.dropped),
            ),
        }
    }

    /// The phase's name in the timeline: `publish+churn` while churn goes
    /// on alongside the publishing.
    fn phase_name(&self) -> String {
        let phase = self.phase.get();
        if phase == Phase::Publishing && self.churning.load(Ordering::Relaxed) {
            "publish+churn".to_owned()
        } else {
            phase.name().to_owned()
        }
    }

    /// Moves to `phase`.
    pub(super) fn set_phase(&self, phase: Phase) {
        self.phase.set(phase);
        let len = match phase {
            Phase::Connecting => self.subscribers,
            Phase::Warmup => 0,
            Phase::Publishing => self.events,
            Phase::Draining => self.expected.get(),
        };
        self.display.phase(phase.name(), len);
        self.show();
    }

    /// Runs until `stop`: the display four times a second, the server once
    /// a second.
    pub(super) async fn run(self: Rc<Self>) {
        let mut last_cpu: Option<(Instant, f64)> = None;
        let mut tick = 0u64;
        while !self.stop.get() {
            self.show();
            if tick.is_multiple_of(4)
                && let Some(sample) = self.server_pid.and_then(|pid| procfs::sample(pid).ok())
            {
                let now = Instant::now();
                let cpu_cores = match last_cpu {
                    Some((at, cpu)) => (sample.cpu_s - cpu) / now.duration_since(at).as_secs_f64(),
                    None => 0.0,
                };
                last_cpu = Some((now, sample.cpu_s));
                let c = self.counts();
                self.timeline.borrow_mut().push(TimelineSample {
                    t_s: stats::round3(self.t0.elapsed().as_secs_f64()),
                    phase: self.phase_name(),
                    connected: c.connected - c.dropped,
                    delivered: c.delivered,
                    rss_bytes: sample.rss_bytes,
                    fds: sample.fds,
                    cpu_cores: stats::round3(cpu_cores),
                });
            }
            tick += 1;
            tokio::time::sleep(TICK).await;
        }
    }
}
