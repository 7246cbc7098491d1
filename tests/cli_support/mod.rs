//! What the CLI tests share: their stand-in servers read one request head.

use std::io::BufRead;

/// Reads a request head: the request line (without its line break) and the
/// headers as (lower-case name, trimmed value).
pub(crate) fn read_head(reader: &mut impl BufRead) -> (String, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    (line.trim_end().to_owned(), headers)
}
