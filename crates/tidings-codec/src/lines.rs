//! Splitting text at the line breaks the event-stream format knows.

use memchr::memchr2;

/// The lines of a byte string, split at LF, CRLF or a lone CR, as the
/// event-stream grammar (`end-of-line`) defines them.
///
/// Unlike [`str::lines`], a trailing line break yields a final empty line and
/// an empty input yields one empty line: `"a\n"` is `["a", ""]` and `""` is
/// `[""]`. That is what the encoder needs, because every line becomes one
/// `data:` field and the decoder joins them back with LF.
#[derive(Debug, Clone)]
pub struct Lines<'a> {
    /// What is left to split; `None` once the last line has been returned.
    rest: Option<&'a [u8]>,
}

impl<'a> Lines<'a> {
    /// Splits `text`.
    pub fn new(text: &'a [u8]) -> Self {
        Self { rest: Some(text) }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        let Some(at) = memchr2(b'\n', b'\r', rest) else {
            self.rest = None;
            return Some(rest);
        };
        let (line, tail) = rest.split_at(at);
        // `tail` starts with the CR or LF found at `at`.
        let skip = match tail {
            [b'\r', b'\n', ..] => 2,
            _ => 1,
        };
        self.rest = Some(tail.get(skip..).unwrap_or_default());
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::Lines;

    fn split(text: &str) -> Vec<&str> {
        Lines::new(text.as_bytes())
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn every_kind_of_line_break() {
        assert_eq!(split(""), [""]);
        assert_eq!(split("a"), ["a"]);
        assert_eq!(split("a\nb"), ["a", "b"]);
        assert_eq!(split("a\r\nb"), ["a", "b"]);
        assert_eq!(split("a\rb"), ["a", "b"]);
        assert_eq!(split("a\n"), ["a", ""]);
        assert_eq!(split("\r\r\n\n"), ["", "", "", ""]);
        assert_eq!(split("a\n\rb"), ["a", "", "b"]);
    }
}
