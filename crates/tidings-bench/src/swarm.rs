//! The subscribers of one process: opened at a steady rate, then read as
//! cheaply as we know how.
//!
//! Everything here runs on one thread (a current-thread runtime inside a
//! `LocalSet`): counters are `Cell`s and the histograms are shared through
//! `RefCell`s, with no atomics and no locks on the per-event path. A process
//! holds at most its open-file limit of subscribers; more processes (shards)
//! hold more.
//!
//! The read path of one subscriber: poll the socket with a 16 KiB buffer
//! that is a local of the poll (so it exists only while reading, not in the
//! task's state), unframe the body in
//! place ([`crate::body`]), scan it for stamps ([`crate::scan`]), and record
//! each: one clock read per read call, a histogram increment and a counter
//! per event, no allocation.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead as _, ReadBuf};
use tokio::net::TcpStream;

use crate::body::{Body, Progress};
use crate::head;
use crate::payload::Stamp;
use crate::scan::{Scanned, Scanner};
use crate::stats::{self, new_histogram};
use crate::sys;
use crate::target::{Target, TargetError};
use crate::track::{Arrival, Track};

/// The read buffer, on the stack while reading.
const READ_BUF: usize = 16 * 1024;
/// How often waiting loops look at the counters.
const POLL: Duration = Duration::from_millis(20);

/// What a set of subscribers is asked to do. Sent to shard processes as
/// JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwarmConfig {
    /// The full subscribe URL.
    pub sub_url: String,
    /// Extra request headers (`Name: value`), e.g. an `Authorization`.
    pub headers: Vec<String>,
    /// Subscribers in this process.
    pub count: usize,
    /// Connections opened per second by this process (0: all at once).
    pub connect_rate: f64,
    /// Source addresses, shared round-robin by all shards.
    pub sources: Vec<IpAddr>,
    /// The global number of this process's first subscriber.
    pub first_index: usize,
    /// The step between the global numbers of this process's subscribers
    /// (the number of shards), so that shards interleave over the sources.
    pub index_stride: usize,
    /// The run numbers its events `0..events`.
    pub events: u32,
    /// The run id that every stamp of this run carries.
    pub run: u64,
    /// How long one subscription may take to open (connect and response
    /// head).
    pub connect_timeout_ms: u64,
    /// Delay ACKs (`TCP_QUICKACK` off after every read): one ACK per two
    /// segments or per delayed-ACK tick instead of one per read. See
    /// `--delayed-ack`.
    pub delayed_ack: bool,
    /// In a run with churn alongside (`--churn-rate`): which events make
    /// the phase without churn and which the phase with it, each with a
    /// latency histogram of its own.
    #[serde(default)]
    pub phases: Option<PhaseSplit>,
}

/// The two phases of a run with churn alongside, by event number: the
/// events between them were published too close to the switch to belong
/// to either.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseSplit {
    /// Events numbered below this were published without churn.
    pub baseline_until: u64,
    /// Events numbered from this on were published with churn going on.
    pub churn_from: u64,
}

/// Counters shown while the run goes on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Subscriptions open (response head received) so far, ever.
    pub connected: u64,
    /// Subscriptions that failed to open.
    pub failed: u64,
    /// Open subscriptions that ended (closed by the server, or broken).
    pub dropped: u64,
    /// Distinct events of this run received, over all subscribers.
    pub delivered: u64,
}

impl Counts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: Self) {
        self.connected += other.connected;
        self.failed += other.failed;
        self.dropped += other.dropped;
        self.delivered += other.delivered;
    }
}

/// What a set of subscribers saw: the parent adds these up over shards.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SwarmResult {
    /// Subscribers asked for.
    pub requested: u64,
    /// Subscriptions that opened.
    pub connected: u64,
    /// Subscriptions that failed to open.
    pub failed: u64,
    /// Why they failed, by kind.
    pub connect_errors: BTreeMap<String, u64>,
    /// Time from the first to the last connection attempt's end, seconds.
    pub connect_duration_s: f64,
    /// Time to open each subscription (connect and response head), µs.
    pub connect_us: Vec<(u64, u64)>,
    /// Subscriptions open when publishing started: each should receive
    /// every event.
    pub open_at_start: u64,
    /// Subscriptions that ended after publishing started.
    pub dropped_during_run: u64,
    /// Subscriptions still open at the end.
    pub open_at_end: u64,
    /// Why subscriptions ended, by kind.
    pub drop_reasons: BTreeMap<String, u64>,
    /// Distinct events of this run received.
    pub delivered: u64,
    /// Events received again.
    pub duplicates: u64,
    /// Events received after a later one.
    pub out_of_order: u64,
    /// Stamped events of another run.
    pub foreign: u64,
    /// Events whose data was not a stamp.
    pub unrecognized: u64,
    /// Stamped events of this run with a number never published.
    pub out_of_range: u64,
    /// Subscribers that received every published event.
    pub complete: u64,
    /// Publish-to-receive latency, µs.
    pub latency_us: Vec<(u64, u64)>,
    /// The same for the events of the phase without churn (with
    /// `phases`), µs.
    #[serde(default)]
    pub latency_baseline_us: Vec<(u64, u64)>,
    /// The same for the events of the phase with churn, µs.
    #[serde(default)]
    pub latency_churn_us: Vec<(u64, u64)>,
    /// First event of this run received, Unix ns (0: none).
    pub first_rx_ns: u64,
    /// Last event of this run received, Unix ns (0: none).
    pub last_rx_ns: u64,
    /// CPU time this process used from the start of publishing to the end,
    /// seconds.
    pub cpu_run_s: f64,
    /// CPU time this process used in all, seconds.
    pub cpu_total_s: f64,
    /// This process's open-file limit.
    pub fd_limit: u64,
    /// This process's resident memory at the end, bytes.
    pub rss_bytes: u64,
}

/// The subscribers could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The subscribe URL or a header is unusable.
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// The state of one subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Not opened yet.
    Pending,
    /// Open and reading.
    Open,
    /// Never opened.
    Failed,
    /// Opened, then ended.
    Dropped,
}

/// One subscriber's record.
#[derive(Debug, Clone)]
struct Sub {
    /// Where it is in its life.
    status: Status,
    /// What it received.
    track: Track,
}

/// What the subscriber tasks of a process share.
#[derive(Debug)]
struct Shared {
    /// What was asked.
    config: SwarmConfig,
    /// The resolved subscribe URL.
    target: Target,
    /// The subscription request, built once.
    request: Vec<u8>,
    /// Every subscriber, by local index.
    subs: RefCell<Vec<Sub>>,
    /// Publish-to-receive latency, µs.
    latency: RefCell<Histogram<u64>>,
    /// Latency of the phase without churn, µs (with `phases`).
    latency_baseline: RefCell<Histogram<u64>>,
    /// Latency of the phase with churn, µs (with `phases`).
    latency_churn: RefCell<Histogram<u64>>,
    /// Time to open, µs.
    connect: RefCell<Histogram<u64>>,
    /// Open failures by kind.
    connect_errors: RefCell<BTreeMap<String, u64>>,
    /// Why open subscriptions ended, by kind.
    drop_reasons: RefCell<BTreeMap<String, u64>>,
    /// Live counters.
    counts: Cell<Counts>,
    /// Events received again.
    duplicates: Cell<u64>,
    /// Events received after a later one.
    out_of_order: Cell<u64>,
    /// Stamped events of another run.
    foreign: Cell<u64>,
    /// Events whose data was not a stamp.
    unrecognized: Cell<u64>,
    /// Numbers out of this run's range.
    out_of_range: Cell<u64>,
    /// First receive time of an event of this run, Unix ns.
    first_rx_ns: Cell<u64>,
    /// Last receive time of an event of this run, Unix ns.
    last_rx_ns: Cell<u64>,
    /// When the first attempt started and the last one ended.
    connect_span: Cell<(Option<Instant>, Option<Instant>)>,
}

impl Shared {
    fn bump(&self, f: impl FnOnce(&mut Counts)) {
        let mut counts = self.counts.get();
        f(&mut counts);
        self.counts.set(counts);
    }

    fn set_status(&self, index: usize, status: Status) {
        if let Some(sub) = self.subs.borrow_mut().get_mut(index) {
            sub.status = status;
        }
    }

    fn attempt_ended(&self) {
        let (first, _) = self.connect_span.get();
        self.connect_span.set((first, Some(Instant::now())));
    }

    fn opened(&self, index: usize, took: Duration) {
        self.set_status(index, Status::Open);
        self.bump(|c| c.connected += 1);
        stats::record(&mut self.connect.borrow_mut(), micros(took));
        self.attempt_ended();
    }

    fn failed(&self, index: usize, kind: String) {
        self.set_status(index, Status::Failed);
        self.bump(|c| c.failed += 1);
        *self.connect_errors.borrow_mut().entry(kind).or_default() += 1;
        self.attempt_ended();
    }

    fn dropped(&self, index: usize, reason: String) {
        self.set_status(index, Status::Dropped);
        self.bump(|c| c.dropped += 1);
        *self.drop_reasons.borrow_mut().entry(reason).or_default() += 1;
    }

    fn count(cell: &Cell<u64>) {
        cell.set(cell.get() + 1);
    }

    /// One scanned event of subscriber `index`, received at `now_ns`.
    fn event(&self, index: usize, scanned: Scanned, now_ns: u64) {
        let stamp: Stamp = match scanned {
            Scanned::Stamp(stamp) => stamp,
            Scanned::Unrecognized => return Self::count(&self.unrecognized),
        };
        if stamp.run != self.config.run {
            return Self::count(&self.foreign);
        }
        let arrival = match self.subs.borrow_mut().get_mut(index) {
            Some(sub) => sub.track.record(stamp.n, stamp.acked, self.config.events),
            None => return,
        };
        match arrival {
            Arrival::InOrder | Arrival::OutOfOrder => {
                if arrival == Arrival::OutOfOrder {
                    Self::count(&self.out_of_order);
                }
                self.bump(|c| c.delivered += 1);
                if self.first_rx_ns.get() == 0 {
                    self.first_rx_ns.set(now_ns);
                }
                self.last_rx_ns.set(now_ns);
                let latency_us = now_ns.saturating_sub(stamp.t) / 1000;
                stats::record(&mut self.latency.borrow_mut(), latency_us);
                if let Some(split) = self.config.phases {
                    if stamp.n < split.baseline_until {
                        stats::record(&mut self.latency_baseline.borrow_mut(), latency_us);
                    } else if stamp.n >= split.churn_from {
                        stats::record(&mut self.latency_churn.borrow_mut(), latency_us);
                    }
                }
            }
            Arrival::Duplicate => Self::count(&self.duplicates),
            Arrival::OutOfRange => Self::count(&self.out_of_range),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The subscribers of this process.
#[derive(Debug)]
pub struct Swarm {
    /// What the tasks share.
    shared: Rc<Shared>,
    /// CPU time used when publishing started.
    cpu_at_start: Cell<Duration>,
    /// Subscriptions open when publishing started.
    open_at_start: Cell<u64>,
    /// Dropped count when publishing started.
    dropped_at_start: Cell<u64>,
    /// This process's open-file limit.
    fd_limit: u64,
}

impl Swarm {
    /// Resolves the target and prepares `config.count` subscribers.
    pub async fn new(config: SwarmConfig, fd_limit: u64) -> Result<Self, SwarmError> {
        let target = Target::resolve(&config.sub_url).await?;
        let request = target.subscribe_request(&config.headers)?;
        let subs = vec![
            Sub {
                status: Status::Pending,
                track: Track::default(),
            };
            config.count
        ];
        Ok(Self {
            shared: Rc::new(Shared {
                config,
                target,
                request,
                subs: RefCell::new(subs),
                latency: RefCell::new(new_histogram()),
                latency_baseline: RefCell::new(new_histogram()),
                latency_churn: RefCell::new(new_histogram()),
                connect: RefCell::new(new_histogram()),
                connect_errors: RefCell::default(),
                drop_reasons: RefCell::default(),
                counts: Cell::default(),
                duplicates: Cell::default(),
                out_of_order: Cell::default(),
                foreign: Cell::default(),
                unrecognized: Cell::default(),
                out_of_range: Cell::default(),
                first_rx_ns: Cell::default(),
                last_rx_ns: Cell::default(),
                connect_span: Cell::new((None, None)),
            }),
            cpu_at_start: Cell::new(Duration::ZERO),
            open_at_start: Cell::new(0),
            dropped_at_start: Cell::new(0),
            fd_limit,
        })
    }

    /// The live counters.
    pub fn counts(&self) -> Counts {
        self.shared.counts.get()
    }

    /// Opens every subscription at the configured rate and returns when
    /// every attempt has ended (open or failed). Must run inside a
    /// `LocalSet`.
    pub async fn connect_all(&self) {
        let config = &self.shared.config;
        let count = config.count;
        let started = Instant::now();
        self.shared.connect_span.set((Some(started), None));
        let mut launched = 0;
        while launched < count {
            let due = if config.connect_rate > 0.0 {
                let due = started.elapsed().as_secs_f64() * config.connect_rate;
                (due as usize + 1).min(count)
            } else {
                count
            };
            while launched < due {
                let global = config.first_index + launched * config.index_stride.max(1);
                let source = crate::sources::pick(&config.sources, global);
                tokio::task::spawn_local(subscriber(Rc::clone(&self.shared), launched, source));
                launched += 1;
            }
            if launched < count {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        loop {
            let counts = self.counts();
            if counts.connected + counts.failed >= count as u64 {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Publishing starts now: every open subscriber should receive every
    /// event from here on.
    pub fn start(&self) {
        let open = self
            .shared
            .subs
            .borrow()
            .iter()
            .filter(|s| s.status == Status::Open)
            .count();
        self.open_at_start.set(open as u64);
        self.dropped_at_start.set(self.counts().dropped);
        self.cpu_at_start.set(sys::cpu_time());
    }

    /// Publishing ended after `published` events: waits until every
    /// subscriber open at the start has all of them, or until nothing
    /// arrived for `drain`, and reports.
    pub async fn finish(&self, published: u64, drain: Duration) -> SwarmResult {
        let want = self.open_at_start.get() * published;
        let mut last = self.counts().delivered;
        let mut last_change = Instant::now();
        while self.counts().delivered < want {
            tokio::time::sleep(POLL).await;
            let now = self.counts().delivered;
            if now != last {
                last = now;
                last_change = Instant::now();
            } else if last_change.elapsed() >= drain {
                break;
            }
        }
        self.result(published)
    }

    fn result(&self, published: u64) -> SwarmResult {
        let shared = &self.shared;
        let counts = self.counts();
        let subs = shared.subs.borrow();
        let complete = subs
            .iter()
            .filter(|s| u64::from(s.track.delivered()) == published && published > 0)
            .count() as u64;
        let open_at_end = subs.iter().filter(|s| s.status == Status::Open).count() as u64;
        let connect_duration_s = match shared.connect_span.get() {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let cpu_total = sys::cpu_time();
        SwarmResult {
            requested: shared.config.count as u64,
            connected: counts.connected,
            failed: counts.failed,
            connect_errors: shared.connect_errors.borrow().clone(),
            connect_duration_s,
            connect_us: stats::to_pairs(&shared.connect.borrow()),
            open_at_start: self.open_at_start.get(),
            dropped_during_run: counts.dropped - self.dropped_at_start.get(),
            open_at_end,
            drop_reasons: shared.drop_reasons.borrow().clone(),
            delivered: counts.delivered,
            duplicates: shared.duplicates.get(),
            out_of_order: shared.out_of_order.get(),
            foreign: shared.foreign.get(),
            unrecognized: shared.unrecognized.get(),
            out_of_range: shared.out_of_range.get(),
            complete,
            latency_us: stats::to_pairs(&shared.latency.borrow()),
            latency_baseline_us: stats::to_pairs(&shared.latency_baseline.borrow()),
            latency_churn_us: stats::to_pairs(&shared.latency_churn.borrow()),
            first_rx_ns: shared.first_rx_ns.get(),
            last_rx_ns: shared.last_rx_ns.get(),
            cpu_run_s: cpu_total
                .saturating_sub(self.cpu_at_start.get())
                .as_secs_f64(),
            cpu_total_s: cpu_total.as_secs_f64(),
            fd_limit: self.fd_limit,
            rss_bytes: sys::own_rss(),
        }
    }
}

/// The life of one subscriber: open, then read until the stream ends.
async fn subscriber(shared: Rc<Shared>, index: usize, source: Option<IpAddr>) {
    let started = Instant::now();
    let timeout = Duration::from_millis(shared.config.connect_timeout_ms);
    // Boxed: the opening's state (timer, connect, head buffer) lives on the
    // heap only while opening, and the task keeps only the reading state.
    let opened = Box::pin(tokio::time::timeout(timeout, async {
        let mut stream = head::connect(shared.target.addr, source).await?;
        let (body, leftover) = head::open(&mut stream, &shared.request).await?;
        Ok::<_, head::OpenError>((stream, body, leftover))
    }))
    .await
    .unwrap_or(Err(head::OpenError::Timeout));
    let (stream, body, leftover) = match opened {
        Ok(opened) => opened,
        Err(err) => return shared.failed(index, err.kind()),
    };
    shared.opened(index, started.elapsed());
    let mut reader = Reader {
        body,
        scanner: Scanner::new(),
    };
    if let Err(reason) = reader.process(&shared, index, &leftover, sys::now_ns()) {
        return shared.dropped(index, reason);
    }
    drop(leftover);
    let mut stream = stream;
    loop {
        let read =
            std::future::poll_fn(|cx| reader.poll_read(&shared, index, &mut stream, cx)).await;
        if let Err(reason) = read {
            return shared.dropped(index, reason);
        }
    }
}

/// The per-connection parsing state: a few dozen bytes.
#[derive(Debug)]
struct Reader {
    /// The body framing.
    body: Body,
    /// The event scanner.
    scanner: Scanner,
}

impl Reader {
    /// Reads once from the socket and records the events read; pending
    /// when there is nothing to read. An error is the reason the stream
    /// ended.
    ///
    /// The buffer is a local of this call, so it exists only while polling.
    /// tokio's `poll_read` clears the socket's readiness after a short read,
    /// so a wake-up costs one read call, not a second one that only says
    /// "empty".
    fn poll_read(
        &mut self,
        shared: &Shared,
        index: usize,
        stream: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), String>> {
        // Not zeroed: the socket writes it, and only what it wrote is read.
        let mut buf = [const { MaybeUninit::<u8>::uninit() }; READ_BUF];
        let mut read = ReadBuf::uninit(&mut buf);
        match Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Err(format!("i/o: {}", err.kind()))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                Poll::Ready(Err("closed by server".to_owned()))
            }
            Poll::Ready(Ok(())) => {
                if shared.config.delayed_ack {
                    // Re-armed after every read: the kernel leaves this mode
                    // whenever its delayed-ACK timer fires.
                    let _ = socket2::SockRef::from(&*stream).set_tcp_quickack(false);
                }
                Poll::Ready(self.process(shared, index, read.filled(), sys::now_ns()))
            }
        }
    }

    /// Unframes and scans `bytes`, received at `now_ns`.
    fn process(
        &mut self,
        shared: &Shared,
        index: usize,
        bytes: &[u8],
        now_ns: u64,
    ) -> Result<(), String> {
        let scanner = &mut self.scanner;
        let progress = self
            .body
            .feed(bytes, |data| {
                scanner.feed(data, |scanned| shared.event(index, scanned, now_ns));
            })
            .map_err(|err| err.to_string())?;
        match progress {
            Progress::More => Ok(()),
            Progress::Done => Err("body ended".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::{Swarm, SwarmConfig, subscriber};

    #[tokio::test]
    async fn a_waiting_subscriber_is_small() {
        let config = SwarmConfig {
            sub_url: "http://127.0.0.1:9/sub".to_owned(),
            headers: Vec::new(),
            count: 1,
            connect_rate: 0.0,
            sources: Vec::new(),
            first_index: 0,
            index_stride: 1,
            events: 10,
            run: 1,
            connect_timeout_ms: 1000,
            delayed_ack: false,
            phases: None,
        };
        let swarm = Swarm::new(config, 1000).await.unwrap();
        let task = subscriber(Rc::clone(&swarm.shared), 0, None);
        let size = std::mem::size_of_val(&task);
        println!("subscriber future: {size} bytes");
        assert!(size <= 400, "{size}");
    }
}
