//! Finding the stamp of each event in an event stream, incrementally, with
//! no buffer.
//!
//! The full decoder of `tidings-codec` builds each event's data as a
//! `String`; a load generator receiving hundreds of thousands of events per
//! second on a shared core cannot afford an allocation and a copy per event,
//! nor a line buffer per connection. This scanner keeps a few bytes of state
//! per connection: it matches the field name at the start of each line,
//! parses the three numbers at the start of the first `data` line of an
//! event byte by byte, and skips the rest of every line (the padding, `id`,
//! comments) with one `memchr` search. It follows the event-stream line
//! rules (LF, CR or CRLF line ends; one optional space after the colon; an
//! event is dispatched at a blank line only when it has data), and the tests
//! check it against the full decoder.

use memchr::memchr2;

use crate::payload::{self, FIELD_PREFIXES, Stamp};

/// What the scanner reports for each dispatched event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// An event whose data starts with a stamp.
    Stamp(Stamp),
    /// An event with data that does not start with a stamp.
    Unrecognized,
}

/// The name of the field we look for.
const DATA: &[u8] = b"data";

/// Where the scanner is in the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the first byte of a line.
    Start,
    /// The line so far is this many bytes of `data`.
    Name(u8),
    /// Right after `data:`; one space may follow.
    AfterColon,
    /// In the value of the first data line of the event, parsing the stamp.
    Value(Parse),
    /// The rest of the line does not matter.
    Skip,
}

/// Progress through `{"n":N,"t":T,"r":R,"a":A` at the start of a data
/// value, byte by byte: the slow path, for a data line split between reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parse {
    /// Which number (0 to 3) is being read.
    field: u8,
    /// Bytes of that number's prefix matched; the prefix's length once the
    /// digits have started.
    matched: u8,
    /// Digits of the number read so far.
    digits: u8,
    /// The number so far.
    value: u64,
    /// The numbers already read.
    values: [u64; 4],
}

impl Parse {
    const NEW: Self = Self {
        field: 0,
        matched: 0,
        digits: 0,
        value: 0,
        values: [0; 4],
    };
}

/// What one byte of a data value did to the parse.
enum Step {
    /// Keep going.
    More(Parse),
    /// The stamp is complete.
    Done(Stamp),
    /// The value is not a stamp.
    Fail,
}

impl Parse {
    fn step(mut self, byte: u8) -> Step {
        let Some(prefix) = FIELD_PREFIXES.get(usize::from(self.field)) else {
            return Step::Fail;
        };
        let in_prefix = usize::from(self.matched) < prefix.len();
        if in_prefix {
            if prefix.get(usize::from(self.matched)) != Some(&byte) {
                return Step::Fail;
            }
            self.matched += 1;
            return Step::More(self);
        }
        if byte.is_ascii_digit() {
            if self.digits >= 20 {
                return Step::Fail;
            }
            let Some(value) = self
                .value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            else {
                return Step::Fail;
            };
            self.value = value;
            self.digits += 1;
            return Step::More(self);
        }
        if self.digits == 0 {
            return Step::Fail;
        }
        if let Some(slot) = self.values.get_mut(usize::from(self.field)) {
            *slot = self.value;
        }
        self.field += 1;
        if usize::from(self.field) == FIELD_PREFIXES.len() {
            return match byte {
                b',' | b'}' => Step::Done(Stamp::from_values(self.values)),
                _ => Step::Fail,
            };
        }
        // This byte starts the next prefix.
        Parse {
            matched: 0,
            digits: 0,
            value: 0,
            ..self
        }
        .step(byte)
    }
}

/// `rest` with the byte just taken from its front (`byte`) put back: `rest`
/// is always a suffix of `input`, so that is one slice of `input`.
fn input_from<'a>(byte: u8, rest: &'a [u8], input: &'a [u8]) -> &'a [u8] {
    let at = input.len() - rest.len();
    match at.checked_sub(1).and_then(|start| input.get(start..)) {
        Some(slice) if slice.first() == Some(&byte) => slice,
        _ => rest,
    }
}

/// The incremental stamp scanner of one connection.
#[derive(Debug, Clone)]
pub struct Scanner {
    /// Where the current line is.
    line: Line,
    /// The last byte was a CR: an LF right after it belongs to the same line
    /// break.
    after_cr: bool,
    /// The current event has at least one data line.
    has_data: bool,
    /// The stamp found in the current event's first data line.
    stamp: Option<Stamp>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// A scanner at the start of a stream.
    pub fn new() -> Self {
        Self {
            line: Line::Start,
            after_cr: false,
            has_data: false,
            stamp: None,
        }
    }

    /// Scans `input`, calling `emit` for each event dispatched in it.
    pub fn feed(&mut self, input: &[u8], mut emit: impl FnMut(Scanned)) {
        let mut rest = input;
        loop {
            // A CR ended the last line; an LF right after it (perhaps at the
            // start of the next read) is part of the same line break.
            if self.after_cr && !rest.is_empty() {
                self.after_cr = false;
                if let Some(tail) = rest.strip_prefix(b"\n") {
                    rest = tail;
                }
            }
            if self.line == Line::Skip {
                let Some(at) = memchr2(b'\n', b'\r', rest) else {
                    return;
                };
                let end = rest.get(at).copied();
                rest = rest.get(at + 1..).unwrap_or_default();
                self.end_of_line(end == Some(b'\r'), &mut emit);
                continue;
            }
            let Some((&byte, tail)) = rest.split_first() else {
                return;
            };
            rest = tail;
            if byte == b'\n' || byte == b'\r' {
                self.end_of_line(byte == b'\r', &mut emit);
                continue;
            }
            self.line = match self.line {
                Line::Start | Line::Name(_) => {
                    let matched = match self.line {
                        Line::Name(matched) => matched,
                        _ => 0,
                    };
                    match DATA.get(usize::from(matched)) {
                        Some(&want) if want == byte => Line::Name(matched + 1),
                        None if byte == b':' => Line::AfterColon,
                        _ => Line::Skip,
                    }
                }
                Line::AfterColon => {
                    let value = if byte == b' ' {
                        rest
                    } else {
                        input_from(byte, rest, input)
                    };
                    match self.value_start() {
                        // The fast path: the whole line is here, parse it in
                        // one go.
                        Line::Value(_) if memchr2(b'\n', b'\r', value).is_some() => {
                            self.stamp = payload::parse(value);
                            Line::Skip
                        }
                        Line::Value(parse) if byte != b' ' => self.value_step(parse, byte),
                        other => other,
                    }
                }
                Line::Value(parse) => self.value_step(parse, byte),
                Line::Skip => Line::Skip,
            };
        }
    }

    /// The value of a data line starts: parse it when it is the event's
    /// first.
    fn value_start(&mut self) -> Line {
        let first = !self.has_data;
        self.has_data = true;
        if first {
            Line::Value(Parse::NEW)
        } else {
            Line::Skip
        }
    }

    fn value_step(&mut self, parse: Parse, byte: u8) -> Line {
        match parse.step(byte) {
            Step::More(parse) => Line::Value(parse),
            Step::Done(stamp) => {
                self.stamp = Some(stamp);
                Line::Skip
            }
            Step::Fail => Line::Skip,
        }
    }

    /// A line break: a blank line dispatches the event.
    fn end_of_line(&mut self, cr: bool, emit: &mut impl FnMut(Scanned)) {
        self.after_cr = cr;
        match self.line {
            Line::Start => {
                if self.has_data {
                    emit(match self.stamp.take() {
                        Some(stamp) => Scanned::Stamp(stamp),
                        None => Scanned::Unrecognized,
                    });
                }
                self.has_data = false;
                self.stamp = None;
            }
            // A line that is exactly `data`: a data field with an empty value.
            Line::Name(4) => {
                self.has_data = true;
            }
            // `data:` and nothing more: an empty value.
            Line::AfterColon => {
                self.value_start();
            }
            Line::Name(_) | Line::Value(_) | Line::Skip => {}
        }
        self.line = Line::Start;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tidings_codec::{Decoder, Item};

    use super::{Scanned, Scanner};
    use crate::payload::{self, Stamp};

    fn scan_split(input: &[u8], cuts: &[usize]) -> Vec<Scanned> {
        let mut scanner = Scanner::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let cut = cut.clamp(start, input.len());
            scanner.feed(&input[start..cut], |s| out.push(s));
            start = cut;
        }
        out
    }

    /// What the full WHATWG decoder says the same stream holds.
    fn reference(input: &[u8]) -> Vec<Scanned> {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        decoder
            .decode(input, |item| {
                if let Item::Event(event) = item {
                    // A stamp ends at `,` or `}`, so a parse of the whole
                    // data finds it only when it is the first data line.
                    out.push(match payload::parse(event.data.as_bytes()) {
                        Some(stamp) => Scanned::Stamp(stamp),
                        None => Scanned::Unrecognized,
                    });
                }
            })
            .unwrap();
        out
    }

    fn stamp(n: u64) -> Stamp {
        Stamp {
            n,
            t: 1_700_000_000_000_000_000 + n,
            run: 7,
            acked: n.saturating_sub(1),
        }
    }

    fn data(n: u64, size: usize) -> String {
        let mut out = Vec::new();
        payload::write(&mut out, stamp(n), size);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_mercure_like_stream_split_everywhere() {
        let stream = format!(
            ":ok\n\nretry: 2000\nid: urn:tidings:1\ndata: {}\n\n\
             : heartbeat\n\nid: urn:tidings:2\nevent: x\ndata:{}\n\n\
             id: 3\ndata: not a stamp\n\ndata\n\ndata: {}\r\n\r\ndata: {}\r\rdata: {}\n",
            data(0, 200),
            data(1, 0),
            data(2, 100),
            data(3, 70),
            data(4, 0),
        );
        let input = stream.as_bytes();
        let want = vec![
            Scanned::Stamp(stamp(0)),
            Scanned::Stamp(stamp(1)),
            Scanned::Unrecognized,
            Scanned::Unrecognized,
            Scanned::Stamp(stamp(2)),
            Scanned::Stamp(stamp(3)),
        ];
        assert_eq!(reference(input), want);
        for a in 0..=input.len() {
            assert_eq!(scan_split(input, &[a]), want, "cut at {a}");
        }
        let every: Vec<usize> = (0..input.len()).collect();
        assert_eq!(scan_split(input, &every), want);
    }

    #[test]
    fn a_crlf_split_between_reads_is_one_line_break() {
        let stream = format!(": c\r\ndata: {}\r\n\r\n", data(3, 0));
        let input = stream.as_bytes();
        for a in 0..=input.len() {
            assert_eq!(
                scan_split(input, &[a]),
                vec![Scanned::Stamp(stamp(3))],
                "cut at {a}"
            );
        }
    }

    #[test]
    fn only_the_first_data_line_counts() {
        let stream = format!(
            "data: {}\ndata: {}\n\ndata: x\ndata: {}\n\n",
            data(5, 0),
            data(6, 0),
            data(7, 0)
        );
        assert_eq!(
            scan_split(stream.as_bytes(), &[]),
            vec![Scanned::Stamp(stamp(5)), Scanned::Unrecognized]
        );
    }

    #[test]
    fn near_misses_are_not_stamps() {
        for bad in [
            "{\"n\":1,\"t\":2,\"r\":3}",
            "{\"n\":,\"t\":2,\"r\":3,\"a\":0}",
            "{\"n\":1,\"t\":2,\"r\":3,\"a\":0",
            "{\"n\":1,\"t\":2,\"r\":3,\"a\":0x",
            "{\"n\":99999999999999999999999,\"t\":2,\"r\":3,\"a\":0}",
            " {\"n\":1,\"t\":2,\"r\":3,\"a\":0}",
        ] {
            let stream = format!("data: {bad}\n\n");
            // Whole, and byte by byte (the slow path).
            let every: Vec<usize> = (0..stream.len()).collect();
            for cuts in [&[][..], &every] {
                assert_eq!(
                    scan_split(stream.as_bytes(), cuts),
                    vec![Scanned::Unrecognized],
                    "{bad}"
                );
            }
        }
        assert_eq!(
            scan_split(b"datum: {\"n\":1,\"t\":2,\"r\":3}\n\n", &[]),
            vec![]
        );
    }

    /// One piece of a generated stream.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..1000, 0usize..300).prop_map(|(n, size)| format!("data: {}", data(n, size))),
            (0u64..1000).prop_map(|n| format!("data:{}", data(n, 0))),
            Just("data: other".to_owned()),
            Just("data".to_owned()),
            Just("data:".to_owned()),
            Just(": comment".to_owned()),
            Just("id: urn:x:1".to_owned()),
            Just("event: e".to_owned()),
            Just("retry: 10".to_owned()),
            Just(String::new()),
        ]
    }

    fn line_end() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn agrees_with_the_full_decoder(
            lines in prop::collection::vec((piece(), line_end()), 0..40),
            cuts in prop::collection::vec(0usize..4000, 0..8),
        ) {
            let mut stream = String::new();
            for (line, end) in &lines {
                stream.push_str(line);
                stream.push_str(end);
            }
            let input = stream.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert_eq!(scan_split(input, &cuts), reference(input));
        }
    }
}
