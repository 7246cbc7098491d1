//! The framing of a response body: chunked transfer-coding, a
//! `Content-Length`, or bytes until the server closes.
//!
//! Hand-written rather than taken from hyper because this sits on the hot
//! path of every subscriber: it is a state machine of a few bytes that hands
//! out slices of the caller's read buffer, so a subscriber owns no body
//! buffer at all between reads, and a 100,000-connection run keeps only its
//! states in memory.

use memchr::memchr;

/// A body that broke the chunked framing rules (RFC 9112, section 7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A byte that has no place where it appeared.
    #[error("malformed chunked body: unexpected byte 0x{byte:02x} {context}")]
    Unexpected {
        /// The offending byte.
        byte: u8,
        /// Where in the framing it appeared.
        context: &'static str,
    },
    /// A chunk size with more hex digits than fit in 64 bits.
    #[error("malformed chunked body: chunk size too large")]
    SizeTooLarge,
}

/// Whether the body may carry more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More body may follow.
    More,
    /// The body is complete; anything after it is not body.
    Done,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size {
        /// The size read so far.
        size: u64,
        /// How many digits were read.
        digits: u8,
    },
    /// Skipping a chunk extension up to the end of the size line.
    Extension {
        /// The size the line announced.
        size: u64,
    },
    /// A CR ended the size line; its LF comes next.
    SizeLf {
        /// The size the line announced.
        size: u64,
    },
    /// Inside chunk data.
    Data {
        /// Bytes of this chunk still to come.
        remaining: u64,
    },
    /// After chunk data: the CR (or, leniently, a bare LF) comes next.
    DataCr,
    /// After chunk data and its CR: the LF comes next.
    DataLf,
    /// After the last chunk, at the start of a trailer line.
    TrailerStart,
    /// Inside a trailer field line, skipped.
    TrailerLine,
    /// A CR at the start of a trailer line: the LF that ends the body comes
    /// next.
    TrailerEndLf,
    /// The last chunk and the trailer section were read.
    Done,
}

/// An incremental decoder of the chunked transfer-coding.
#[derive(Debug, Clone)]
pub struct Chunked {
    /// Where the decoder is in the framing.
    state: State,
}

impl Default for Chunked {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunked {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        Self {
            state: State::Size { size: 0, digits: 0 },
        }
    }

    /// Decodes `input`, passing every piece of chunk data to `out` as a
    /// slice of `input`, in order.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<Progress, ChunkError> {
        let mut rest = input;
        while !rest.is_empty() {
            if let State::Data { remaining } = self.state {
                let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                let (data, tail) = rest.split_at(take);
                out(data);
                rest = tail;
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining: left }
                };
                continue;
            }
            if matches!(self.state, State::Extension { .. } | State::TrailerLine) {
                // Skip to the end of the line in one search.
                match memchr(b'\n', rest) {
                    Some(at) => {
                        self.state = match self.state {
                            State::Extension { size } => size_line_done(size),
                            _ => State::TrailerStart,
                        };
                        rest = rest.get(at + 1..).unwrap_or_default();
                    }
                    None => rest = &[],
                }
                continue;
            }
            let Some((&byte, tail)) = rest.split_first() else {
                break;
            };
            rest = tail;
            self.state = self.step(byte)?;
            if self.state == State::Done {
                return Ok(Progress::Done);
            }
        }
        Ok(if self.state == State::Done {
            Progress::Done
        } else {
            Progress::More
        })
    }

    /// One byte of framing (not data, not a skipped line).
    fn step(&self, byte: u8) -> Result<State, ChunkError> {
        let unexpected = |context| ChunkError::Unexpected { byte, context };
        Ok(match self.state {
            State::Size { size, digits } => match byte {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits >= 16 {
                        return Err(ChunkError::SizeTooLarge);
                    }
                    State::Size {
                        size: size << 4 | u64::from(hex_value(byte)),
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return Err(unexpected("where a chunk size was due")),
                b';' | b' ' | b'\t' => State::Extension { size },
                b'\r' => State::SizeLf { size },
                b'\n' => size_line_done(size),
                _ => return Err(unexpected("in a chunk size")),
            },
            State::SizeLf { size } => match byte {
                b'\n' => size_line_done(size),
                _ => return Err(unexpected("after the CR of a chunk size line")),
            },
            State::DataCr => match byte {
                b'\r' => State::DataLf,
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Err(unexpected("after chunk data")),
            },
            State::DataLf => match byte {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return Err(unexpected("after the CR that follows chunk data")),
            },
            State::TrailerStart => match byte {
                b'\r' => State::TrailerEndLf,
                b'\n' => State::Done,
                _ => State::TrailerLine,
            },
            State::TrailerEndLf => match byte {
                b'\n' => State::Done,
                _ => return Err(unexpected("at the end of the trailer section")),
            },
            // Handled by `feed` before a single byte is looked at.
            State::Data { .. } | State::Extension { .. } | State::TrailerLine | State::Done => {
                self.state
            }
        })
    }
}

/// What follows a complete chunk size line.
fn size_line_done(size: u64) -> State {
    if size == 0 {
        State::TrailerStart
    } else {
        State::Data { remaining: size }
    }
}

/// The value of an ASCII hex digit (the caller checked that it is one).
fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => byte.wrapping_sub(b'A').wrapping_add(10),
    }
}

/// How the body of a response is delimited.
#[derive(Debug, Clone)]
pub enum Body {
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// `Content-Length`: this many bytes are still to come.
    Length(u64),
    /// Neither: the body runs until the server closes the connection.
    UntilClose,
}

impl Body {
    /// Passes the body bytes of `input` to `out`, unframed.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<Progress, ChunkError> {
        match self {
            Self::Chunked(chunked) => chunked.feed(input, out),
            Self::Length(remaining) => {
                let take = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                if let Some(data) = input.get(..take) {
                    out(data);
                }
                *remaining -= take as u64;
                Ok(if *remaining == 0 {
                    Progress::Done
                } else {
                    Progress::More
                })
            }
            Self::UntilClose => {
                out(input);
                Ok(Progress::More)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Body, ChunkError, Chunked, Progress};

    /// Decodes `input` fed in pieces cut at `cuts`, returning the data and
    /// the final progress.
    fn decode_split(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, Progress), ChunkError> {
        let mut decoder = Chunked::new();
        let mut data = Vec::new();
        let mut start = 0;
        let mut progress = Progress::More;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            let cut = cut.clamp(start, input.len());
            progress = decoder.feed(&input[start..cut], |d| data.extend_from_slice(d))?;
            start = cut;
            if progress == Progress::Done {
                break;
            }
        }
        Ok((data, progress))
    }

    const BODY: &[u8] = b"5\r\nhello\r\n1A;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n\
        3\r\n\n\n\n\r\n0\r\nTrailer: yes\r\n\r\n";
    const DATA: &[u8] = b"helloabcdefghijklmnopqrstuvwxyz\n\n\n";

    #[test]
    fn whole_body() {
        assert_eq!(
            decode_split(BODY, &[]).unwrap(),
            (DATA.to_vec(), Progress::Done)
        );
    }

    #[test]
    fn every_single_split_and_byte_by_byte() {
        for cut in 0..=BODY.len() {
            assert_eq!(
                decode_split(BODY, &[cut]).unwrap(),
                (DATA.to_vec(), Progress::Done),
                "cut at {cut}"
            );
        }
        let every: Vec<usize> = (0..BODY.len()).collect();
        assert_eq!(
            decode_split(BODY, &every).unwrap(),
            (DATA.to_vec(), Progress::Done)
        );
    }

    #[test]
    fn every_pair_of_splits() {
        for a in 0..=BODY.len() {
            for b in a..=BODY.len() {
                assert_eq!(decode_split(BODY, &[a, b]).unwrap().0, DATA, "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        let body = b"3\nabc\n0\n\n";
        assert_eq!(
            decode_split(body, &[]).unwrap(),
            (b"abc".to_vec(), Progress::Done)
        );
    }

    #[test]
    fn an_open_stream_is_not_done() {
        let body = b"4\r\nab";
        assert_eq!(
            decode_split(body, &[]).unwrap(),
            (b"ab".to_vec(), Progress::More)
        );
    }

    #[test]
    fn bytes_after_the_end_are_not_data() {
        let body = b"1\r\nx\r\n0\r\n\r\nGARBAGE";
        assert_eq!(
            decode_split(body, &[]).unwrap(),
            (b"x".to_vec(), Progress::Done)
        );
    }

    #[test]
    fn malformed_framing_is_an_error() {
        assert!(matches!(
            decode_split(b"zz\r\n", &[]),
            Err(ChunkError::Unexpected { byte: b'z', .. })
        ));
        assert!(matches!(
            decode_split(b"2\r\nabX", &[]),
            Err(ChunkError::Unexpected { byte: b'X', .. })
        ));
        assert_eq!(
            decode_split(b"11111111111111111\r\n", &[]),
            Err(ChunkError::SizeTooLarge)
        );
        assert!(decode_split(b"\r\n", &[]).is_err());
    }

    #[test]
    fn length_and_close_delimited_bodies() {
        let mut body = Body::Length(5);
        let mut data = Vec::new();
        assert_eq!(
            body.feed(b"abc", |d| data.extend_from_slice(d)),
            Ok(Progress::More)
        );
        assert_eq!(
            body.feed(b"defg", |d| data.extend_from_slice(d)),
            Ok(Progress::Done)
        );
        assert_eq!(data, b"abcde");

        let mut body = Body::UntilClose;
        let mut data = Vec::new();
        assert_eq!(
            body.feed(b"abc", |d| data.extend_from_slice(d)),
            Ok(Progress::More)
        );
        assert_eq!(data, b"abc");
    }
}
