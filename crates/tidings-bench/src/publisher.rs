//! Publishing stamped events on schedule.
//!
//! The publisher runs on a thread of its own, so that its schedule and the
//! send time stamped into each event do not wait for the subscribers' work
//! on the main thread. It keeps several keep-alive HTTP/1.1 connections:
//! each event is sent at its time on an idle one, so a server that answers
//! a publish slower than the rate allows still gets the rate (with one
//! connection it would get one event per answer time). Each event's `a`
//! field records which events had been answered when it was sent, so that
//! order is still checked (see [`crate::payload`]). hyper does the HTTP:
//! publishing is a few hundred requests per second at most, far from the
//! hot path.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use hdrhistogram::Histogram;

use crate::payload::{self, Stamp};
use crate::stats::{self, new_histogram};
use crate::sys;
use crate::target::{Target, TargetError, check_header};

/// Publishing stops after this many failures in a row: the server is not
/// taking events, and waiting out every timeout would take forever.
const MAX_FAILURES_IN_A_ROW: u64 = 10;

/// How events are published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PubFormat {
    /// Mercure: `application/x-www-form-urlencoded` `topic=…&data=…`.
    Mercure,
    /// The request body is the event data (Nchan, most pub/sub servers).
    Raw,
}

/// A publish that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Connecting to the publish URL failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("request: {0}")]
    Request(#[from] http::Error),
    /// The server answered with a status outside 2xx.
    #[error("status {0}")]
    Status(u16),
    /// The server did not answer in time.
    #[error("timed out")]
    Timeout,
}

impl PublishError {
    /// A short, stable name for counting errors by kind.
    pub fn kind(&self) -> String {
        match self {
            Self::Connect(err) => format!("connect: {}", err.kind()),
            Self::Http(_) => "http".to_owned(),
            Self::Request(_) => "request".to_owned(),
            Self::Status(code) => format!("status {code}"),
            Self::Timeout => "timeout".to_owned(),
        }
    }
}

/// Publishes stamped events to one URL.
#[derive(Debug)]
pub struct Publisher {
    /// The publish URL, resolved.
    target: Target,
    /// How the body is made.
    format: PubFormat,
    /// The Mercure topic.
    topic: String,
    /// The size to pad each event's data to.
    payload: usize,
    /// Extra request headers, parsed.
    headers: Vec<(String, String)>,
    /// The open connection, if any; dropped after an error so that the next
    /// publish reconnects.
    sender: Option<SendRequest<Full<Bytes>>>,
    /// The data of the event being published, reused.
    data: Vec<u8>,
    /// How long a publish may take.
    timeout: Duration,
}

impl Publisher {
    /// A publisher for `url` (not connected yet).
    pub async fn new(
        url: &str,
        format: PubFormat,
        topic: String,
        payload: usize,
        headers: &[String],
        timeout: Duration,
    ) -> Result<Self, TargetError> {
        let target = Target::resolve(url).await?;
        let headers = headers
            .iter()
            .map(|h| check_header(h).map(|(n, v)| (n.to_owned(), v.to_owned())))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            target,
            format,
            topic,
            payload,
            headers,
            sender: None,
            data: Vec::new(),
            timeout,
        })
    }

    /// Opens the connection now, so that the first publish does not pay for
    /// it.
    pub async fn connect(&mut self) -> Result<(), PublishError> {
        if self.sender.is_none() {
            self.sender = Some(connect(&self.target).await?);
        }
        Ok(())
    }

    /// Publishes `stamp` and returns how long the server took to answer.
    pub async fn publish(&mut self, stamp: Stamp) -> Result<Duration, PublishError> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.exchange(stamp))
            .await
            .unwrap_or(Err(PublishError::Timeout));
        if result.is_err() {
            self.sender = None;
        }
        result.map(|()| started.elapsed())
    }

    async fn exchange(&mut self, stamp: Stamp) -> Result<(), PublishError> {
        payload::write(&mut self.data, stamp, self.payload);
        let (content_type, body) = match self.format {
            PubFormat::Raw => (
                "application/octet-stream",
                Bytes::copy_from_slice(&self.data),
            ),
            PubFormat::Mercure => {
                let data = String::from_utf8_lossy(&self.data);
                let form = form_urlencoded::Serializer::new(String::new())
                    .append_pair("topic", &self.topic)
                    .append_pair("data", &data)
                    .finish();
                ("application/x-www-form-urlencoded", Bytes::from(form))
            }
        };
        let mut request = Request::post(self.target.path_and_query.as_str())
            .header(header::HOST, self.target.authority.as_str())
            .header(header::CONTENT_TYPE, content_type);
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = request.body(Full::new(body))?;
        let sender = match &mut self.sender {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.sender.insert(connect(&self.target).await?),
        };
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        // Read the whole answer so that the connection can carry the next.
        response.into_body().collect().await?;
        if !status.is_success() {
            return Err(PublishError::Status(status.as_u16()));
        }
        Ok(())
    }
}

/// Opens the publishing connection; its driver runs as a local task.
async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, PublishError> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(PublishError::Connect)?;
    stream.set_nodelay(true).map_err(PublishError::Connect)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::task::spawn_local(async move {
        // The connection ends when the server closes it or the sender is
        // dropped; the next publish notices and reconnects.
        let _ = connection.await;
    });
    Ok(sender)
}

/// What to publish, and how fast.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The publish URL.
    pub url: String,
    /// How the body is made.
    pub format: PubFormat,
    /// The Mercure topic.
    pub topic: String,
    /// The size of each event's data.
    pub payload: usize,
    /// Extra request headers.
    pub headers: Vec<String>,
    /// How long one publish may take.
    pub timeout: Duration,
    /// Events to publish.
    pub events: u32,
    /// Events per second.
    pub rate: f64,
    /// Publishing connections (publishes in flight at most).
    pub connections: usize,
    /// The run id stamped into each event.
    pub run: u64,
}

/// How publishing went.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Publishes answered with a 2xx.
    pub ok: u64,
    /// Publishes that failed.
    pub failed: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// The first failure, for the operator.
    pub first_error: Option<String>,
    /// Publishing stopped after too many failures in a row.
    pub stopped_early: bool,
    /// Time from sending a publish to its answer, µs.
    pub response: Histogram<u64>,
    /// The furthest a publish started behind its schedule.
    pub max_lag: Duration,
    /// From the first publish to the last answer.
    pub duration: Duration,
    /// When the first publish was due, Unix ns.
    pub start_ns: u64,
}

impl Outcome {
    /// Nothing published (a run of zero events).
    pub fn nothing() -> Self {
        Self {
            ok: 0,
            failed: 0,
            errors: BTreeMap::new(),
            first_error: None,
            stopped_early: false,
            response: new_histogram(),
            max_lag: Duration::ZERO,
            duration: Duration::ZERO,
            start_ns: sys::now_ns(),
        }
    }
}

/// Publishing could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The URL or a header is unusable.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The first connection failed.
    #[error("cannot connect to the publish URL: {0}")]
    Connect(PublishError),
    /// The publishing thread could not run.
    #[error("publishing thread: {0}")]
    Thread(String),
}

/// Runs `plan` on a thread of its own; `published` counts the events sent
/// so far (for the progress display).
pub async fn publish_in_thread(
    plan: Plan,
    published: Arc<AtomicU64>,
) -> Result<Outcome, PlanError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("publisher".to_owned())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| PlanError::Thread(err.to_string()))
                .and_then(|runtime| {
                    tokio::task::LocalSet::new().block_on(&runtime, publish_all(plan, published))
                });
            let _ = tx.send(result);
        })
        .map_err(|err| PlanError::Thread(err.to_string()))?;
    rx.await
        .map_err(|_| PlanError::Thread("ended without a result".to_owned()))?
}

/// What the publishing tasks share.
#[derive(Debug)]
struct Books {
    /// Idle connections.
    idle: RefCell<Vec<Publisher>>,
    /// Wakes the scheduler when a connection comes back.
    returned: tokio::sync::Notify,
    /// Events answered (or failed) out of order, above `acked`.
    answered: RefCell<BTreeSet<u64>>,
    /// Every event below this has been answered.
    acked: Cell<u64>,
    /// Successes.
    ok: Cell<u64>,
    /// Failures.
    failed: Cell<u64>,
    /// Failures in a row.
    in_a_row: Cell<u64>,
    /// Failures by kind.
    errors: RefCell<BTreeMap<String, u64>>,
    /// The first failure.
    first_error: RefCell<Option<String>>,
    /// Answer times, µs.
    response: RefCell<Histogram<u64>>,
}

impl Books {
    fn answered(&self, n: u64) {
        let mut answered = self.answered.borrow_mut();
        answered.insert(n);
        let mut acked = self.acked.get();
        while answered.remove(&acked) {
            acked += 1;
        }
        self.acked.set(acked);
    }
}

/// Publishes every event of `plan` on schedule. Must run inside a
/// `LocalSet`.
pub async fn publish_all(plan: Plan, published: Arc<AtomicU64>) -> Result<Outcome, PlanError> {
    let mut idle = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections.max(1) {
        let mut publisher = Publisher::new(
            &plan.url,
            plan.format,
            plan.topic.clone(),
            plan.payload,
            &plan.headers,
            plan.timeout,
        )
        .await?;
        publisher.connect().await.map_err(PlanError::Connect)?;
        idle.push(publisher);
    }
    let books = Rc::new(Books {
        idle: RefCell::new(idle),
        returned: tokio::sync::Notify::new(),
        answered: RefCell::default(),
        acked: Cell::new(0),
        ok: Cell::new(0),
        failed: Cell::new(0),
        in_a_row: Cell::new(0),
        errors: RefCell::default(),
        first_error: RefCell::default(),
        response: RefCell::new(new_histogram()),
    });
    let start = Instant::now();
    let start_ns = sys::now_ns();
    let mut max_lag = Duration::ZERO;
    let mut stopped_early = false;
    for i in 0..u64::from(plan.events) {
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
        }
        let mut publisher = loop {
            if let Some(publisher) = books.idle.borrow_mut().pop() {
                break publisher;
            }
            books.returned.notified().await;
        };
        max_lag = max_lag.max(Instant::now().saturating_duration_since(due));
        if books.in_a_row.get() >= MAX_FAILURES_IN_A_ROW {
            stopped_early = true;
            books.idle.borrow_mut().push(publisher);
            break;
        }
        let stamp = Stamp {
            n: i,
            t: sys::now_ns(),
            run: plan.run,
            acked: books.acked.get(),
        };
        published.store(i + 1, Ordering::Relaxed);
        let books = Rc::clone(&books);
        tokio::task::spawn_local(async move {
            match publisher.publish(stamp).await {
                Ok(took) => {
                    books.ok.set(books.ok.get() + 1);
                    books.in_a_row.set(0);
                    stats::record(
                        &mut books.response.borrow_mut(),
                        u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                    );
                }
                Err(err) => {
                    books.failed.set(books.failed.get() + 1);
                    books.in_a_row.set(books.in_a_row.get() + 1);
                    *books.errors.borrow_mut().entry(err.kind()).or_default() += 1;
                    books
                        .first_error
                        .borrow_mut()
                        .get_or_insert_with(|| format!("event {}: {err}", stamp.n));
                }
            }
            books.answered(stamp.n);
            books.idle.borrow_mut().push(publisher);
            books.returned.notify_one();
        });
    }
    // Wait for the publishes in flight.
    while books.idle.borrow().len() < plan.connections.max(1) {
        books.returned.notified().await;
    }
    let duration = start.elapsed();
    let errors = books.errors.borrow().clone();
    let first_error = books.first_error.borrow().clone();
    let response = books.response.borrow().clone();
    Ok(Outcome {
        ok: books.ok.get(),
        failed: books.failed.get(),
        errors,
        first_error,
        stopped_early,
        response,
        max_lag,
        duration,
        start_ns,
    })
}
