//! The EventSource state machine of the WHATWG HTML standard, as a
//! [`Stream`].
//!
//! Hand-written as a `poll_next` state machine rather than an `async` block
//! behind a boxed stream so that the event source stays a plain struct: its
//! last event id, reconnection time and state can be read between items,
//! the read-timeout timer is one allocation reused for the whole life of the
//! source, and a burst of events decoded from one chunk is handed out from a
//! queue without a future per event.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use tidings_codec::{Decoder, Item, MessageEvent};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use crate::backoff::Backoff;
use crate::response::ResponseHead;
use crate::{Builder, Error};

/// The `Last-Event-ID` request header.
const LAST_EVENT_ID: &str = "last-event-id";

/// What an [`EventSource`] yields, in order.
#[derive(Debug)]
pub enum Sse {
    /// A connection was established: status 200 with `text/event-stream`.
    /// Comes once per connection, before its events.
    Open(Box<ResponseHead>),
    /// An event was dispatched.
    Event(MessageEvent),
    /// A comment line (`:` and what follows, without the colon and one
    /// leading space). Servers send them as heartbeats; most callers ignore
    /// them.
    Comment(String),
    /// The connection (or the attempt to make one) is over and another
    /// attempt starts after [`Reconnect::delay`].
    Reconnecting(Reconnect),
}

/// Why and when an [`EventSource`] reconnects.
#[derive(Debug)]
pub struct Reconnect {
    /// What went wrong, or `None` when the server ended the stream cleanly
    /// or a reconnect was asked for through [`Handle::reconnect`].
    pub error: Option<Error>,
    /// How long the event source waits before the next attempt (see
    /// [`crate::backoff`] for the rule).
    pub delay: Duration,
    /// Consecutive failed attempts so far: 0 after a connection that
    /// delivered data.
    pub failures: u32,
}

/// The `readyState` of a browser's `EventSource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyState {
    /// Waiting to connect, or connecting.
    Connecting,
    /// A stream is open.
    Open,
    /// Failed for good or closed: the stream has ended or is about to.
    Closed,
}

/// A request to the event source from a [`Handle`].
#[derive(Debug, Clone, Copy)]
enum Command {
    /// End the stream.
    Close,
    /// Drop the connection and connect again at once.
    Reconnect,
}

/// Controls an [`EventSource`] from another task.
///
/// Cheap to clone. Commands take effect the next time the event source is
/// polled; the task polling it is woken.
#[derive(Debug, Clone)]
pub struct Handle {
    /// Where commands go.
    commands: mpsc::UnboundedSender<Command>,
}

impl Handle {
    /// Closes the event source: its stream yields `None` next, dropping
    /// whatever was not yet taken from it.
    pub fn close(&self) {
        // Fails only when the event source is gone, which closes it anyway.
        let _ = self.commands.send(Command::Close);
    }

    /// Drops the current connection, if any, and connects again at once,
    /// sending the last event id. The stream yields
    /// [`Sse::Reconnecting`] with no error and no delay.
    pub fn reconnect(&self) {
        let _ = self.commands.send(Command::Reconnect);
    }
}

/// What one attempt sends. Built once; every attempt clones it (the body is
/// shared `Bytes`, the headers a small map).
#[derive(Debug)]
pub(crate) struct Request {
    /// The client that sends it (and follows redirects).
    pub(crate) client: reqwest::Client,
    /// The method: `GET` unless configured.
    pub(crate) method: Method,
    /// The URL the event source was made for.
    pub(crate) url: Url,
    /// `Accept`, `Cache-Control` and the caller's headers; `Last-Event-ID` is
    /// added per attempt.
    pub(crate) headers: HeaderMap,
    /// The body, sent again on every attempt.
    pub(crate) body: Option<Bytes>,
}

/// The body of an open connection.
type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A request in flight.
type Pending = Pin<Box<dyn Future<Output = reqwest::Result<reqwest::Response>> + Send>>;

/// Where the event source is in its life.
enum Phase {
    /// Waiting until this instant (or not at all) to start an attempt.
    Waiting(Option<Instant>),
    /// A request is in flight; the read timeout counts from `since`.
    Connecting {
        /// The request.
        pending: Pending,
        /// When it was sent.
        since: Instant,
    },
    /// A stream is open.
    Open {
        /// Its body.
        body: Body,
        /// When the last bytes arrived (or the stream opened): the read
        /// timeout counts from here.
        last_read: Instant,
        /// Whether any byte of body arrived; a connection that delivered
        /// nothing counts as a failed attempt.
        delivered: bool,
    },
    /// Done: yields what is queued, then `None`.
    Closed,
}

impl fmt::Debug for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Waiting(until) => f.debug_tuple("Waiting").field(until).finish(),
            Self::Connecting { since, .. } => {
                f.debug_struct("Connecting").field("since", since).finish()
            }
            Self::Open {
                last_read,
                delivered,
                ..
            } => f
                .debug_struct("Open")
                .field("last_read", last_read)
                .field("delivered", delivered)
                .finish(),
            Self::Closed => f.write_str("Closed"),
        }
    }
}

/// A client for one event stream, with the reconnection semantics of a
/// browser's `EventSource`, as a [`Stream`] of [`Sse`] items.
///
/// Build one with [`EventSource::new`] or [`EventSource::builder`]. It needs
/// a Tokio runtime (time and I/O enabled) when polled.
///
/// # What the stream yields
///
/// - `Ok(`[`Sse::Open`]`)` each time a connection is established,
///   then `Ok(`[`Sse::Event`]`)` and `Ok(`[`Sse::Comment`]`)` as they arrive.
/// - `Ok(`[`Sse::Reconnecting`]`)` when a connection ends or an attempt
///   fails for a transient reason (network error, read timeout, decoder
///   limit, or a clean end of stream): the event source waits the given
///   delay and tries again, sending `Last-Event-ID` when the last event id
///   is not empty. Events of a block the connection cut off are dropped.
/// - `Err(`[`Error`]`)` when the connection fails for good (a status other
///   than 200, including 204; a content type other than
///   `text/event-stream`; a redirect that cannot be followed). Nothing comes
///   after it: the next item is `None`.
/// - `None` after such an error, or once [`EventSource::close`] or
///   [`Handle::close`] was called. It never ends by itself otherwise.
pub struct EventSource {
    /// What each attempt sends.
    request: Request,
    /// The parser; replaced by a resumed one for each connection so that the
    /// last event id carries over, as in browsers.
    decoder: Decoder,
    /// The reconnection time: the configured default until the server sends
    /// `retry:`.
    reconnection_time: Duration,
    /// Delays after failed attempts.
    backoff: Backoff,
    /// Consecutive failed attempts.
    failures: u32,
    /// How long the response head or the next body bytes may take.
    read_timeout: Option<Duration>,
    /// Where the event source is.
    phase: Phase,
    /// The one timer, allocated on first use: the reconnect delay while
    /// waiting, the read timeout while connecting or open.
    timer: Option<Pin<Box<Sleep>>>,
    /// Items decoded or produced but not yet yielded.
    queue: VecDeque<Result<Sse, Error>>,
    /// Commands from handles.
    commands: mpsc::UnboundedReceiver<Command>,
    /// Kept so that [`EventSource::handle`] can make handles, and so that the
    /// command channel never reports itself closed.
    command_sender: mpsc::UnboundedSender<Command>,
}

impl fmt::Debug for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSource")
            .field("url", &self.request.url)
            .field("method", &self.request.method)
            .field("last_event_id", &self.decoder.last_event_id())
            .field("reconnection_time", &self.reconnection_time)
            .field("failures", &self.failures)
            .field("phase", &self.phase)
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl EventSource {
    /// An event source for `url` with the defaults of [`Builder`]: `GET`,
    /// reconnection time 3 s, backoff up to 30 s with equal jitter, no read
    /// timeout.
    pub fn new(url: &str) -> Result<Self, crate::ConfigError> {
        Builder::new(url).build()
    }

    /// A builder for an event source for `url`.
    pub fn builder(url: &str) -> Builder {
        Builder::new(url)
    }

    pub(crate) fn from_parts(
        request: Request,
        decoder: Decoder,
        reconnection_time: Duration,
        backoff: Backoff,
        read_timeout: Option<Duration>,
    ) -> Self {
        let (command_sender, commands) = mpsc::unbounded_channel();
        Self {
            request,
            decoder,
            reconnection_time,
            backoff,
            failures: 0,
            read_timeout,
            phase: Phase::Waiting(None),
            timer: None,
            queue: VecDeque::new(),
            commands,
            command_sender,
        }
    }

    /// A handle that can close or restart this event source from elsewhere.
    pub fn handle(&self) -> Handle {
        Handle {
            commands: self.command_sender.clone(),
        }
    }

    /// Closes the event source: the stream yields `None` from now on.
    pub fn close(&mut self) {
        self.phase = Phase::Closed;
        self.queue.clear();
    }

    /// The last event id string: sent as `Last-Event-ID` on reconnection.
    pub fn last_event_id(&self) -> &str {
        self.decoder.last_event_id()
    }

    /// The current reconnection time: the configured one, or the last
    /// `retry:` the server sent.
    pub fn reconnection_time(&self) -> Duration {
        self.reconnection_time
    }

    /// Whether the event source is connecting, open or closed.
    pub fn ready_state(&self) -> ReadyState {
        match self.phase {
            Phase::Waiting(_) | Phase::Connecting { .. } => ReadyState::Connecting,
            Phase::Open { .. } => ReadyState::Open,
            Phase::Closed => ReadyState::Closed,
        }
    }

    /// The URL the event source was made for (before redirects).
    pub fn url(&self) -> &Url {
        &self.request.url
    }

    /// Sends a request, with `Last-Event-ID` when the last event id is not
    /// empty.
    fn start_attempt(&mut self) -> Phase {
        let request = &self.request;
        let mut headers = request.headers.clone();
        let id = self.decoder.last_event_id();
        if !id.is_empty() {
            // UTF-8 bytes, as browsers send them. An id with a control
            // character cannot be a header value: then none is sent.
            if let Ok(value) = HeaderValue::from_bytes(id.as_bytes()) {
                headers.insert(LAST_EVENT_ID, value);
            }
        }
        let mut builder = request
            .client
            .request(request.method.clone(), request.url.clone())
            .headers(headers);
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        Phase::Connecting {
            pending: Box::pin(builder.send()),
            since: Instant::now(),
        }
    }

    /// A response arrived: open the stream, or fail for good.
    fn on_response(&mut self, response: reqwest::Response) {
        let head = ResponseHead::of(&response);
        if !head.opens_stream() {
            let error = if head.status == reqwest::StatusCode::OK {
                Error::ContentType(Box::new(head))
            } else {
                Error::Status(Box::new(head))
            };
            self.fail(error);
            return;
        }
        self.decoder = Decoder::resume(self.decoder.limits(), self.decoder.last_event_id());
        self.phase = Phase::Open {
            body: Box::pin(response.bytes_stream()),
            last_read: Instant::now(),
            delivered: false,
        };
        self.queue.push_back(Ok(Sse::Open(Box::new(head))));
    }

    /// Fails the connection for good.
    fn fail(&mut self, error: Error) {
        self.phase = Phase::Closed;
        self.queue.push_back(Err(error));
    }

    /// The connection or attempt is over: schedule the next one and say so.
    /// `delivered` is whether the connection delivered any body byte.
    fn reestablish(&mut self, error: Option<Error>, delivered: bool) {
        self.decoder.finish();
        self.failures = if delivered {
            0
        } else {
            self.failures.saturating_add(1)
        };
        let delay = self.backoff.delay(self.reconnection_time, self.failures);
        self.phase = Phase::Waiting((!delay.is_zero()).then(|| Instant::now() + delay));
        self.queue.push_back(Ok(Sse::Reconnecting(Reconnect {
            error,
            delay,
            failures: self.failures,
        })));
    }

    /// An error reported by reqwest while connecting.
    fn on_request_error(&mut self, error: reqwest::Error) {
        if error.is_redirect() {
            self.fail(Error::Redirect(error));
        } else if error.is_builder() {
            self.fail(Error::Request(error));
        } else {
            self.reestablish(Some(Error::Transport(error)), false);
        }
    }

    /// Parses one chunk into the queue. `retry` fields take effect at once
    /// and are not queued.
    fn decode(&mut self, chunk: &[u8]) {
        let queue = &mut self.queue;
        let reconnection_time = &mut self.reconnection_time;
        let result = self.decoder.decode(chunk, |item| match item {
            Item::Event(event) => queue.push_back(Ok(Sse::Event(event))),
            Item::Comment(text) => queue.push_back(Ok(Sse::Comment(text))),
            Item::Retry(ms) => *reconnection_time = Duration::from_millis(ms),
        });
        if let Err(error) = result {
            // What was dispatched before the error stands; the connection
            // does not, and counts as a failed attempt so that a server that
            // keeps doing this meets backoff.
            self.reestablish(Some(Error::Decode(error)), false);
        }
    }

    /// Polls `timer` set to `deadline`, creating it on first use.
    fn poll_timer(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        timer.as_mut().poll(cx)
    }

    /// Applies commands from handles. Returns true when the stream must end.
    fn poll_commands(&mut self, cx: &mut Context<'_>) -> bool {
        while let Poll::Ready(Some(command)) = self.commands.poll_recv(cx) {
            match command {
                Command::Close => {
                    self.close();
                    return true;
                }
                Command::Reconnect => {
                    if matches!(self.phase, Phase::Closed) {
                        continue;
                    }
                    self.decoder.finish();
                    self.phase = Phase::Waiting(None);
                    self.queue.push_back(Ok(Sse::Reconnecting(Reconnect {
                        error: None,
                        delay: Duration::ZERO,
                        failures: self.failures,
                    })));
                }
            }
        }
        false
    }

    /// Advances the state machine until something is queued or it must
    /// wait.
    fn advance(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if !self.queue.is_empty() {
                return Poll::Ready(());
            }
            match &mut self.phase {
                Phase::Closed => return Poll::Ready(()),
                Phase::Waiting(until) => {
                    if let Some(deadline) = *until
                        && self.poll_timer(deadline, cx).is_pending()
                    {
                        return Poll::Pending;
                    }
                    self.phase = self.start_attempt();
                }
                Phase::Connecting { pending, since } => {
                    let since = *since;
                    match pending.as_mut().poll(cx) {
                        Poll::Ready(Ok(response)) => self.on_response(response),
                        Poll::Ready(Err(error)) => self.on_request_error(error),
                        Poll::Pending => {
                            let Some(timeout) = self.read_timeout else {
                                return Poll::Pending;
                            };
                            if self.poll_timer(since + timeout, cx).is_pending() {
                                return Poll::Pending;
                            }
                            self.reestablish(Some(Error::ReadTimeout(timeout)), false);
                        }
                    }
                }
                Phase::Open {
                    body,
                    last_read,
                    delivered,
                } => match body.as_mut().poll_next(cx) {
                    Poll::Ready(Some(Ok(chunk))) => {
                        *last_read = Instant::now();
                        *delivered |= !chunk.is_empty();
                        self.decode(&chunk);
                    }
                    Poll::Ready(Some(Err(error))) => {
                        let delivered = *delivered;
                        self.reestablish(Some(Error::Transport(error)), delivered);
                    }
                    Poll::Ready(None) => {
                        let delivered = *delivered;
                        self.reestablish(None, delivered);
                    }
                    Poll::Pending => {
                        let Some(timeout) = self.read_timeout else {
                            return Poll::Pending;
                        };
                        let (last_read, delivered) = (*last_read, *delivered);
                        // The timer is re-armed only when it fires, not on
                        // every chunk: it fires at the old deadline, finds
                        // that data came since, and moves on.
                        let armed = self.timer.as_ref().map(|t| t.deadline());
                        let deadline = last_read + timeout;
                        let target = match armed {
                            Some(at) if at > Instant::now() && at <= deadline => at,
                            _ => deadline,
                        };
                        if self.poll_timer(target, cx).is_pending() {
                            return Poll::Pending;
                        }
                        if Instant::now() >= deadline {
                            self.reestablish(Some(Error::ReadTimeout(timeout)), delivered);
                        }
                    }
                },
            }
        }
    }
}

impl Stream for EventSource {
    type Item = Result<Sse, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.poll_commands(cx) {
            return Poll::Ready(None);
        }
        if this.advance(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(this.queue.pop_front())
    }
}
