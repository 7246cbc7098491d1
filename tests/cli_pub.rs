//! `tidings pub` as a user runs it: the real binary against a loopback HTTP
//! server that records the request and answers like a hub.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod cli_support;

use std::io::{BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::thread;

/// What the hub received.
#[derive(Debug)]
struct Received {
    line: String,
    headers: Vec<(String, String)>,
    form: Vec<(String, String)>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn fields(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A one-request hub answering `status` with `body`; runs `tidings pub`
/// with `args` (and `stdin`, `env`) against it.
fn publish(
    status: &'static str,
    content_type: &'static str,
    body: &'static str,
    args: &[&str],
    stdin: Option<&str>,
    token_env: Option<&str>,
) -> (Received, Output) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let hub = format!(
        "http://{}/.well-known/mercure",
        listener.local_addr().unwrap()
    );
    let server = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let (line, headers) = cli_support::read_head(&mut reader);
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .expect("no Content-Length");
        let mut raw = vec![0u8; length];
        reader.read_exact(&mut raw).unwrap();
        let form = form_urlencoded::parse(&raw).into_owned().collect();
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        Received {
            line,
            headers,
            form,
        }
    });
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
    command
        .arg("pub")
        .args(["--hub", &hub])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("TIDINGS_TOKEN");
    if let Some(token) = token_env {
        command.env("TIDINGS_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    (server.join().unwrap(), output)
}

#[test]
fn every_flag_goes_into_the_form() {
    let (got, output) = publish(
        "200 OK",
        "text/plain",
        "urn:tidings:42",
        &[
            "--topic",
            "https://example.com/books/1",
            "--topic",
            "books",
            "--type",
            "update",
            "--id",
            "my-id",
            "--private",
            "--token",
            "jwt.from.flag",
            "--data",
            "a b&c=\u{e9}\nline 2",
            "--retry",
            "1500",
            "--retain",
        ],
        None,
        Some("jwt.from.env"),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "urn:tidings:42\n"
    );
    assert_eq!(got.line, "POST /.well-known/mercure HTTP/1.1");
    assert_eq!(
        got.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(got.header("authorization"), Some("Bearer jwt.from.flag"));
    assert_eq!(
        got.fields("topic"),
        ["https://example.com/books/1", "books"]
    );
    assert_eq!(got.fields("data"), ["a b&c=\u{e9}\nline 2"]);
    assert_eq!(got.fields("type"), ["update"]);
    assert_eq!(got.fields("id"), ["my-id"]);
    assert_eq!(got.fields("private"), ["on"]);
    assert_eq!(got.fields("retry"), ["1500"]);
    assert_eq!(got.fields("retain"), ["on"]);
}

#[test]
fn data_from_stdin_and_token_from_the_environment() {
    let (got, output) = publish(
        "200 OK",
        "text/plain",
        "id-1",
        &["--topic", "t"],
        Some("line 1\nline 2\n"),
        Some("jwt.from.env"),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "id-1\n");
    assert_eq!(got.header("authorization"), Some("Bearer jwt.from.env"));
    // One trailing newline is dropped, inner ones kept.
    assert_eq!(got.fields("data"), ["line 1\nline 2"]);
    assert!(got.fields("private").is_empty());
    assert!(got.fields("type").is_empty());
    assert!(got.fields("id").is_empty());
    assert!(got.fields("retry").is_empty());
    assert!(got.fields("retain").is_empty());
}

#[test]
fn the_token_from_a_file() {
    let path = std::env::temp_dir().join(format!("tidings-pub-token-{}", std::process::id()));
    std::fs::write(&path, "jwt.from.file\n").unwrap();
    let (got, output) = publish(
        "200 OK",
        "text/plain",
        "id-3",
        &[
            "--topic",
            "t",
            "--data",
            "x",
            "--token-file",
            path.to_str().unwrap(),
        ],
        None,
        None,
    );
    std::fs::remove_file(&path).unwrap();
    assert!(output.status.success(), "{output:?}");
    // The file's trailing newline is not part of the token.
    assert_eq!(got.header("authorization"), Some("Bearer jwt.from.file"));
}

#[test]
fn without_a_token_no_authorization_is_sent() {
    let (got, output) = publish(
        "200 OK",
        "text/plain",
        "id-2",
        &["--topic", "t", "--data", ""],
        None,
        None,
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(got.header("authorization"), None);
    assert_eq!(got.fields("data"), [""]);
}

#[test]
fn a_refusal_prints_the_hub_error_and_exits_one() {
    let (_, output) = publish(
        "403 Forbidden",
        "application/json",
        r#"{"error":"the token does not cover topic t"}"#,
        &["--topic", "t", "--data", "x"],
        None,
        None,
    );
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("tidings: "), "{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    assert!(
        stderr.contains(r#"{"error":"the token does not cover topic t"}"#),
        "{stderr}"
    );
}
