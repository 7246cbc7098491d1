//! `tidings sub URL`: subscribe to any Server-Sent Events endpoint with the
//! reconnection semantics of a browser's EventSource, and print its events.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use tidings_client::{EventSource, MessageEvent, Sse};

/// The output formats and exit statuses, for `tidings sub --help`.
const AFTER_HELP: &str = "\
Output without --json: one line per event,

    [ID] TYPE: DATA

where \"[ID] \" is left out when the event's last event id is empty, and each
further line of multi-line data follows on its own line, indented by four
spaces. With --json: one object per line, flushed at once,

    {\"event\": TYPE, \"data\": DATA, \"id\": LAST_EVENT_ID}

Reconnection notices go to stderr. The subscription reconnects forever, like
a browser's EventSource (Last-Event-ID sent, the server's retry: honoured).

Exit status: 0 after --count events, on 204 No Content, or when stdout is
closed (e.g. `| head`); 1 when the server answers another status or a
content type other than text/event-stream (no retry).";

/// Flags of `tidings sub`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct SubArgs {
    /// The event stream: any SSE endpoint (for a hub,
    /// `http://HOST/.well-known/mercure?topic=SELECTOR`).
    url: String,
    /// Print each event as one JSON object per line:
    /// {"event": TYPE, "data": DATA, "id": LAST_EVENT_ID}.
    #[arg(long)]
    json: bool,
    /// Start after this event: sent as Last-Event-ID on the first request.
    #[arg(long, value_name = "ID")]
    last_event_id: Option<String>,
    /// Add a request header (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Exit 0 after N events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Reconnect when nothing (not even a heartbeat comment) arrives for
    /// this long. Off by default.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    read_timeout: Option<Duration>,
}

/// `Name: value` into its two halves.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not `Name: value`"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{text:?} has no header name"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// A positive number of seconds, fractions allowed.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.parse().map_err(|e| format!("{text:?}: {e}"))?;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds"))
}

pub(crate) fn run(args: SubArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(subscribe(args))
}

async fn subscribe(args: SubArgs) -> anyhow::Result<ExitCode> {
    let mut builder = EventSource::builder(&args.url);
    if let Some(id) = &args.last_event_id {
        builder = builder.last_event_id(id);
    }
    for (name, value) in &args.headers {
        builder = builder.header(name, value);
    }
    if let Some(timeout) = args.read_timeout {
        builder = builder.read_timeout(timeout);
    }
    let mut source = builder.build()?;
    let mut out = io::stdout().lock();
    let mut printed = 0u64;
    if args.count == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    while let Some(item) = source.next().await {
        match item {
            Ok(Sse::Event(event)) => {
                let written = if args.json {
                    write_json(&mut out, &event)
                } else {
                    write_human(&mut out, &event)
                };
                match written {
                    Ok(()) => {}
                    // The reader is gone (`| head`): that is its way of
                    // saying it has had enough.
                    Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                        return Ok(ExitCode::SUCCESS);
                    }
                    Err(err) => return Err(err).context("writing to stdout"),
                }
                printed += 1;
                if args.count == Some(printed) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Ok(Sse::Reconnecting(reconnect)) => {
                let why = reconnect
                    .error
                    .map_or_else(|| String::from("the stream ended"), |e| e.to_string());
                let delay = reconnect.delay.as_secs_f64();
                notice(&format!("{why}; reconnecting in {delay:.1} s"));
            }
            Ok(Sse::Open(_) | Sse::Comment(_)) => {}
            Err(err) if err.is_no_content() => return Ok(ExitCode::SUCCESS),
            Err(err) => return Err(err.into()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `{"event": TYPE, "data": DATA, "id": LAST_EVENT_ID}`, then a newline and
/// a flush: keys in the contract's order, spaced as the contract (and
/// Python's `json.dumps`) writes them; serde_json escapes the strings.
fn write_json(out: &mut impl Write, event: &MessageEvent) -> io::Result<()> {
    let line = format!(
        "{{\"event\": {}, \"data\": {}, \"id\": {}}}\n",
        serde_json::Value::from(event.event_type.as_str()),
        serde_json::Value::from(event.data.as_str()),
        serde_json::Value::from(event.last_event_id.as_str()),
    );
    out.write_all(line.as_bytes())?;
    out.flush()
}

/// `[ID] TYPE: DATA`, further data lines indented by four spaces.
fn write_human(out: &mut impl Write, event: &MessageEvent) -> io::Result<()> {
    if !event.last_event_id.is_empty() {
        write!(out, "[{}] ", event.last_event_id)?;
    }
    let mut lines = event.data.split('\n');
    writeln!(
        out,
        "{}: {}",
        event.event_type,
        lines.next().unwrap_or_default()
    )?;
    for line in lines {
        writeln!(out, "    {line}")?;
    }
    out.flush()
}

/// A line on stderr about the connection.
fn notice(text: &str) {
    #[allow(
        clippy::print_stderr,
        reason = "connection notices for the user, kept off stdout"
    )]
    {
        eprintln!("tidings: {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, data: &str, id: &str) -> MessageEvent {
        MessageEvent {
            event_type: event_type.into(),
            data: data.into(),
            last_event_id: id.into(),
        }
    }

    fn render(f: fn(&mut Vec<u8>, &MessageEvent) -> io::Result<()>, e: &MessageEvent) -> String {
        let mut out = Vec::new();
        f(&mut out, e).unwrap_or_else(|err| unreachable!("{err}"));
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn human_format() {
        assert_eq!(
            render(write_human, &event("message", "hi", "")),
            "message: hi\n"
        );
        assert_eq!(
            render(write_human, &event("price", "a\nb\n", "7")),
            "[7] price: a\n    b\n    \n"
        );
    }

    #[test]
    fn json_format_escapes() {
        assert_eq!(
            render(write_json, &event("message", "a\"\n\u{1}é", "")),
            "{\"event\": \"message\", \"data\": \"a\\\"\\n\\u0001é\", \"id\": \"\"}\n"
        );
    }

    #[test]
    fn headers_and_seconds_parse() {
        assert_eq!(
            parse_header("Authorization: Bearer x:y"),
            Ok(("Authorization".into(), "Bearer x:y".into()))
        );
        assert!(parse_header("novalue").is_err());
        assert!(parse_header(": v").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
    }
}
