//! One SSE client instance: a `tidings_client::EventSource` made from the
//! harness's parameters, whose every item becomes a callback.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tidings_client::header::CONTENT_TYPE;
use tidings_client::reqwest::{Client, Method};
use tidings_client::{ConfigError, EventSource, Handle, Sse};

/// How long one callback may take before it is given up.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The body of "create stream" (the harness's `CreateStreamParams`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateStream {
    /// The SSE endpoint.
    stream_url: String,
    /// Where callbacks go, followed by `/1`, `/2`, …
    callback_url: String,
    /// The test's name, for logs.
    #[serde(default)]
    #[allow(dead_code, reason = "part of the protocol, not needed here")]
    tag: Option<String>,
    /// The reconnection time, in milliseconds.
    initial_delay_ms: Option<u64>,
    /// The read timeout, in milliseconds.
    read_timeout_ms: Option<u64>,
    /// Sent as `Last-Event-ID` on the first request when not empty.
    last_event_id: Option<String>,
    /// Extra request headers.
    headers: Option<HashMap<String, String>>,
    /// A method other than GET.
    method: Option<String>,
    /// A request body.
    body: Option<String>,
}

/// Why an instance could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// The method is not an HTTP token.
    #[error("invalid method {0:?}")]
    Method(String),
    /// The client refused the configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A running SSE client.
#[derive(Debug)]
pub(crate) struct Instance {
    /// Controls its event source.
    handle: Handle,
}

impl Instance {
    /// Builds the event source and spawns the task that consumes it.
    pub(crate) fn start(params: CreateStream) -> Result<Self, StartError> {
        let mut builder = EventSource::builder(&params.stream_url);
        if let Some(ms) = params.initial_delay_ms {
            builder = builder.reconnection_time(Duration::from_millis(ms));
        }
        if let Some(ms) = params.read_timeout_ms {
            builder = builder.read_timeout(Duration::from_millis(ms));
        }
        if let Some(id) = params.last_event_id.as_deref().filter(|id| !id.is_empty()) {
            builder = builder.last_event_id(id);
        }
        for (name, value) in params.headers.iter().flatten() {
            builder = builder.header(name, value);
        }
        if let Some(method) = &params.method {
            let method = Method::from_bytes(method.as_bytes())
                .map_err(|_| StartError::Method(method.clone()))?;
            builder = builder.method(method);
        }
        if let Some(body) = params.body {
            builder = builder.body(body);
        }
        let source = builder.build()?;
        let client = tidings_client::http_client()?;
        let handle = source.handle();
        tokio::spawn(report(source, client, params.callback_url));
        Ok(Self { handle })
    }

    /// Drops the connection and connects again at once.
    pub(crate) fn restart(&self) {
        self.handle.reconnect();
    }

    /// Stops the client; its task ends.
    pub(crate) fn close(&self) {
        self.handle.close();
    }
}

/// Turns every item of `source` into a callback, numbered from 1, in order.
async fn report(mut source: EventSource, client: Client, callback_url: String) {
    let base = callback_url.trim_end_matches('/');
    let mut counter = 0u64;
    while let Some(item) = source.next().await {
        let Some(message) = message(item) else {
            continue;
        };
        counter += 1;
        // A harness that stopped listening is not this service's problem;
        // the instance keeps going until it is closed.
        let _ = client
            .post(format!("{base}/{counter}"))
            .timeout(CALLBACK_TIMEOUT)
            .header(CONTENT_TYPE, "application/json")
            .body(message.to_string())
            .send()
            .await;
    }
}

/// The callback for one item, if it has one.
fn message(item: Result<Sse, tidings_client::Error>) -> Option<Value> {
    match item {
        Ok(Sse::Event(event)) => Some(json!({
            "kind": "event",
            "event": {
                "type": event.event_type,
                "data": event.data,
                "id": event.last_event_id,
            },
        })),
        Ok(Sse::Comment(comment)) => Some(json!({"kind": "comment", "comment": comment})),
        Ok(Sse::Reconnecting(reconnect)) => reconnect.error.map(|e| error(&e)),
        Ok(Sse::Open(_)) => None,
        Err(e) => Some(error(&e)),
    }
}

/// An error callback. The harness reads `error`; its spec text names the
/// field `comment`, so both carry the message.
fn error(error: &tidings_client::Error) -> Value {
    let text = error.to_string();
    json!({"kind": "error", "error": text, "comment": text})
}
