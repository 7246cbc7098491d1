//! Encode and decode throughput: `cargo bench -p tidings-codec`.
#![allow(clippy::unwrap_used)]

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use tidings_codec::{Decoder, Event, encode};

fn main() {
    divan::main();
}

/// A typical small update: a JSON price tick.
const SMALL: &str = r#"{"symbol":"ACME","price":101.25,"change":-0.5}"#;

fn big() -> String {
    // 4 KiB of JSON-like text on one line.
    let mut s = String::with_capacity(4096);
    while s.len() < 4096 - 16 {
        s.push_str(r#"{"k":"value"},"#);
    }
    s
}

fn big_multiline() -> String {
    // 4 KiB in 64-byte lines.
    let line = "x".repeat(63);
    let mut s = String::new();
    while s.len() < 4096 {
        s.push_str(&line);
        s.push('\n');
    }
    s
}

#[divan::bench]
fn encode_small(bencher: Bencher<'_, '_>) {
    let event = Event::new(SMALL)
        .id("urn:uuid:0191e1b0-aaaa-7bbb-8ccc-123456789abc")
        .event_type("price");
    bencher
        .counter(ItemsCount::new(1usize))
        .bench(|| encode(black_box(&event)));
}

#[divan::bench]
fn encode_4k(bencher: Bencher<'_, '_>) {
    let data = big();
    let event = Event::new(&data).id("12345");
    bencher
        .counter(BytesCount::new(data.len()))
        .bench(|| encode(black_box(&event)));
}

#[divan::bench]
fn encode_4k_multiline(bencher: Bencher<'_, '_>) {
    let data = big_multiline();
    let event = Event::new(&data).id("12345");
    bencher
        .counter(BytesCount::new(data.len()))
        .bench(|| encode(black_box(&event)));
}

/// `n` copies of `data` encoded as one stream.
fn stream(data: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let id = i.to_string();
        out.extend_from_slice(&encode(&Event::new(data).id(&id)).unwrap());
    }
    out
}

fn decode_all(stream: &[u8], chunk: usize) -> usize {
    let mut decoder = Decoder::new();
    let mut n = 0;
    for c in stream.chunks(chunk) {
        decoder.decode(c, |_| n += 1).unwrap();
    }
    n
}

#[divan::bench]
fn decode_small(bencher: Bencher<'_, '_>) {
    let s = stream(SMALL, 1000);
    bencher
        .counter(ItemsCount::new(1000usize))
        .bench(|| decode_all(black_box(&s), 16 * 1024));
}

#[divan::bench]
fn decode_4k(bencher: Bencher<'_, '_>) {
    let s = stream(&big(), 256);
    bencher
        .counter(BytesCount::new(s.len()))
        .bench(|| decode_all(black_box(&s), 64 * 1024));
}

#[divan::bench]
fn decode_4k_multiline(bencher: Bencher<'_, '_>) {
    let s = stream(&big_multiline(), 256);
    bencher
        .counter(BytesCount::new(s.len()))
        .bench(|| decode_all(black_box(&s), 64 * 1024));
}

/// One 1 MiB data line: the bound is how fast the line end is found.
#[divan::bench]
fn decode_long_line(bencher: Bencher<'_, '_>) {
    let data = "y".repeat(1 << 20);
    let s = stream(&data, 4);
    bencher
        .counter(BytesCount::new(s.len()))
        .bench(|| decode_all(black_box(&s), 64 * 1024));
}

/// The peer of `decode_long_line`: one copy of the same bytes, i.e. what
/// memory bandwidth allows on this machine in the same run. The decoder
/// finds the line end, validates UTF-8 and copies the line into the event's
/// data, so its ratio to this copy is the number to read.
#[divan::bench]
fn copy_long_line(bencher: Bencher<'_, '_>) {
    let data = "y".repeat(1 << 20);
    let s = stream(&data, 4);
    bencher
        .counter(BytesCount::new(s.len()))
        .bench(|| black_box(&s).to_vec());
}
