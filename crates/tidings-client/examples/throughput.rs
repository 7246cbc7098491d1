//! How fast one [`EventSource`] consumes a stream, and what each event costs
//! it in CPU.
//!
//! A plain thread plays the server: it writes pre-encoded events to a
//! loopback socket as fast as the client takes them. The client runs on a
//! single-threaded Tokio runtime on the main thread (reqwest's connection
//! task included), so that thread's CPU time (`getrusage(RUSAGE_THREAD)`,
//! user + system) is the whole cost of receiving, parsing and handing out
//! the events.
//!
//! The peer, measured the same way in the same run: a plain reqwest GET
//! whose body goes through `eventsource-stream` (the parser under
//! `reqwest-eventsource`), with no reconnection logic around it.
//!
//! ```sh
//! cargo run --release -p tidings-client --example throughput [SMALL_EVENTS] [LARGE_EVENTS]
//! ```

#![allow(clippy::print_stdout, reason = "the report is the point")]

use std::error::Error;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use nix::sys::resource::{UsageWho, getrusage};
use tidings_client::{EventSource, Sse};
use tidings_codec::{Event, encode};

/// A typical small update: a JSON price tick.
const SMALL: &str = r#"{"symbol":"ACME","price":101.25,"change":-0.5}"#;

/// Mercure-style ids: every event carries one.
const ID: &str = "urn:uuid:0191e1b0-aaaa-7bbb-8ccc-123456789abc";

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let small: u64 = args.next().map_or(Ok(2_000_000), |a| a.parse())?;
    let large: u64 = args.next().map_or(Ok(200_000), |a| a.parse())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let big = "x".repeat(4096);
    for (name, data, count) in [("~50 B", SMALL, small), ("4 KiB", big.as_str(), large)] {
        let event = encode(&Event::new(data).id(ID))?;
        let ours = runtime.block_on(measure(&event, count, Client::Tidings))?;
        let peer = runtime.block_on(measure(&event, count, Client::EventsourceStream))?;
        for (client, report) in [("tidings-client", &ours), ("eventsource-stream", &peer)] {
            println!(
                "{name} events ({} B data, {} B on the wire), {client}: {} events in {:.2} s: \
                 {:.2} M events/s, {:.0} MB/s, {:.3} µs CPU per event (client thread)",
                data.len(),
                event.len(),
                report.events,
                report.wall.as_secs_f64(),
                report.events as f64 / report.wall.as_secs_f64() / 1e6,
                (report.events * event.len() as u64) as f64 / report.wall.as_secs_f64() / 1e6,
                report.cpu_per_event_us(),
            );
        }
        println!(
            "{name} events: tidings-client vs eventsource-stream: CPU per event x{:.2}",
            ours.cpu_per_event_us() / peer.cpu_per_event_us()
        );
    }
    Ok(())
}

/// Which client reads the stream.
#[derive(Clone, Copy)]
enum Client {
    /// `tidings_client::EventSource`.
    Tidings,
    /// reqwest's body stream through `eventsource_stream::Eventsource`.
    EventsourceStream,
}

/// What one run measured.
struct Report {
    /// Events the client received.
    events: u64,
    /// Wall time from the first request to the end of the stream.
    wall: Duration,
    /// The client thread's CPU time over the same span.
    cpu: Duration,
}

impl Report {
    fn cpu_per_event_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.events as f64
    }
}

/// Serves `count` copies of `event` to one client and times the client.
async fn measure(event: &[u8], count: u64, client: Client) -> Result<Report, Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/", listener.local_addr()?);
    let event = event.to_vec();
    let server = std::thread::spawn(move || serve(&listener, &event, count));

    let cpu_before = thread_cpu()?;
    let start = Instant::now();
    let events = match client {
        Client::Tidings => read_tidings(&url).await?,
        Client::EventsourceStream => read_peer(&url).await?,
    };
    let wall = start.elapsed();
    let cpu = thread_cpu()?.saturating_sub(cpu_before);
    server
        .join()
        .map_err(|_| "the server thread panicked")?
        .map_err(|e| format!("server: {e}"))?;
    if events != count {
        return Err(format!("received {events} events of {count}").into());
    }
    Ok(Report { events, wall, cpu })
}

/// Counts the events `tidings_client::EventSource` reads until the stream
/// ends.
async fn read_tidings(url: &str) -> Result<u64, Box<dyn Error>> {
    let mut source = EventSource::new(url)?;
    let mut events = 0u64;
    while let Some(item) = source.next().await {
        match item? {
            Sse::Event(event) => {
                events += 1;
                std::hint::black_box(event);
            }
            Sse::Reconnecting(_) => break,
            Sse::Open(_) | Sse::Comment(_) => {}
        }
    }
    source.close();
    Ok(events)
}

/// Counts the events `eventsource-stream` parses from a plain reqwest body.
async fn read_peer(url: &str) -> Result<u64, Box<dyn Error>> {
    use eventsource_stream::Eventsource as _;
    let response = reqwest::Client::new()
        .get(url)
        .header("Accept", "text/event-stream")
        .send()
        .await?;
    let mut stream = response.bytes_stream().eventsource();
    let mut events = 0u64;
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                events += 1;
                std::hint::black_box(event);
            }
            // The server closing its end is how every run ends.
            Err(eventsource_stream::EventStreamError::Transport(_)) => break,
            Err(e) => return Err(e.to_string().into()),
        }
    }
    Ok(events)
}

/// Accepts one connection and writes `count` events to it, about 1 MiB per
/// write, then closes it.
fn serve(listener: &TcpListener, event: &[u8], count: u64) -> std::io::Result<()> {
    let (mut stream, _) = listener.accept()?;
    read_head(&mut stream)?;
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
          Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
    )?;
    let per_batch = (1 << 20) / event.len() as u64;
    let batch = event.repeat(usize::try_from(per_batch).unwrap_or(1).max(1));
    let mut left = count;
    while left > 0 {
        let n = left.min(per_batch.max(1));
        let len = usize::try_from(n).unwrap_or(0) * event.len();
        stream.write_all(batch.get(..len).unwrap_or(&batch))?;
        left -= n;
    }
    Ok(())
}

/// Reads until the end of the request head.
fn read_head(stream: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    Ok(())
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Result<Duration, Box<dyn Error>> {
    let usage = getrusage(UsageWho::RUSAGE_THREAD)?;
    let to_duration = |tv: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(tv.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(tv.tv_usec()).unwrap_or(0))
    };
    Ok(to_duration(usage.user_time()) + to_duration(usage.system_time()))
}
