//! `tidings sub` as a user runs it: the real binary against a scripted
//! loopback SSE server, checking what it sends, prints and exits with.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(15);

/// A request head: the request line and lowercased headers.
struct Head {
    line: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Accepts one connection within `wait` and reads its request head.
fn accept(listener: &TcpListener, wait: Duration) -> Option<(TcpStream, Head)> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + wait;
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return None;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (line, headers) = cli_support::read_head(&mut reader);
    let head = Head { line, headers };
    Some((stream, head))
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head =
        format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn sub(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("sub")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the process, killing it if it outlives `PATIENCE`.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "tidings sub did not exit; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn server() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events?topic=a", listener.local_addr().unwrap());
    (listener, url)
}

#[test]
fn json_lines_with_headers_and_count() {
    let (listener, url) = server();
    let child = sub(&[
        &url,
        "--json",
        "--last-event-id",
        "5",
        "--header",
        "Authorization: Bearer t0ken",
        "-H",
        "X-Two: 2",
        "--count",
        "3",
    ]);
    let (mut stream, head) = accept(&listener, PATIENCE).unwrap();
    assert_eq!(head.line, "GET /events?topic=a HTTP/1.1");
    assert_eq!(head.header("accept"), Some("text/event-stream"));
    assert_eq!(head.header("cache-control"), Some("no-cache"));
    assert_eq!(head.header("last-event-id"), Some("5"));
    assert_eq!(head.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(head.header("x-two"), Some("2"));
    respond(
        &mut stream,
        "200 OK",
        "text/event-stream",
        b": hello\n\ndata: plain\n\nid: 6\nevent: price\ndata: {\"p\": 1}\ndata: \"two\"\n\ndata: third\n\ndata: fourth\n\n",
    );
    let output = finish(child);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "{\"event\": \"message\", \"data\": \"plain\", \"id\": \"5\"}\n\
         {\"event\": \"price\", \"data\": \"{\\\"p\\\": 1}\\n\\\"two\\\"\", \"id\": \"6\"}\n\
         {\"event\": \"message\", \"data\": \"third\", \"id\": \"6\"}\n"
    );
}

#[test]
fn human_lines_and_reconnection_with_last_event_id() {
    let (listener, url) = server();
    let child = sub(&[&url, "--count", "3"]);
    let (mut stream, head) = accept(&listener, PATIENCE).unwrap();
    assert_eq!(head.header("last-event-id"), None);
    respond(
        &mut stream,
        "200 OK",
        "text/event-stream; charset=utf-8",
        b"retry: 50\n\ndata: first\ndata: second line\n\nid: a1\nevent: note\ndata: x\n\n",
    );
    drop(stream);
    // The stream ended: the client comes back after `retry`, with the id.
    let (mut stream, head) = accept(&listener, PATIENCE).unwrap();
    assert_eq!(head.header("last-event-id"), Some("a1"));
    respond(
        &mut stream,
        "200 OK",
        "text/event-stream",
        b"data: again\n\n",
    );
    let output = finish(child);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "message: first\n    second line\n[a1] note: x\n[a1] message: again\n"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("reconnecting"), "{stderr}");
}

#[test]
fn no_content_exits_zero() {
    let (listener, url) = server();
    let child = sub(&[&url, "--json"]);
    let (mut stream, _) = accept(&listener, PATIENCE).unwrap();
    stream
        .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        .unwrap();
    let output = finish(child);
    assert!(output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty());
    assert!(accept(&listener, Duration::from_millis(300)).is_none());
}

#[test]
fn another_status_or_content_type_exits_one_without_retry() {
    for (status, content_type, needle) in [
        ("500 Internal Server Error", "text/event-stream", "500"),
        ("404 Not Found", "application/json", "404"),
        ("200 OK", "text/html", "text/html"),
    ] {
        let (listener, url) = server();
        let child = sub(&[&url, "--json"]);
        let (mut stream, _) = accept(&listener, PATIENCE).unwrap();
        respond(&mut stream, status, content_type, b"data: no\n\n");
        drop(stream);
        let output = finish(child);
        assert_eq!(output.status.code(), Some(1), "{status}: {output:?}");
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.starts_with("tidings: "), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(
            accept(&listener, Duration::from_millis(300)).is_none(),
            "{status}: retried"
        );
    }
}

#[test]
fn a_closed_stdout_exits_zero() {
    let (listener, url) = server();
    let mut child = sub(&[&url, "--json"]);
    let server = thread::spawn(move || {
        let (mut stream, _) = accept(&listener, PATIENCE).unwrap();
        respond(&mut stream, "200 OK", "text/event-stream", b"");
        // Events until the client hangs up (or a generous bound).
        for i in 0..5000 {
            let event = format!("id: {i}\ndata: tick {i}\n\n");
            if stream.write_all(event.as_bytes()).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
    });
    // Like `| head -n 1`: read one line, then close the pipe.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"event\": \"message\""), "{line}");
    drop(stdout);
    let output = finish(child);
    assert!(output.status.success(), "{output:?}");
    server.join().unwrap();
}
