//! `application/x-www-form-urlencoded` and query strings, decoded strictly:
//! invalid UTF-8 after percent-decoding is an error, not a silent U+FFFD,
//! so that a publisher learns its data would have been changed.

/// The name-value pairs of `input`, in order (names may repeat).
pub(crate) fn pairs(input: &[u8]) -> impl Iterator<Item = Result<(String, String), String>> + '_ {
    input
        .split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut halves = part.splitn(2, |&b| b == b'=');
            let name = decode(halves.next().unwrap_or_default())?;
            let value = decode(halves.next().unwrap_or_default())?;
            Ok((name, value))
        })
}

/// Percent-decodes `raw`, with `+` as a space.
pub(crate) fn decode(raw: &[u8]) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = raw.iter().copied();
    while let Some(b) = i.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let mut rest = i.clone();
                match (rest.next().and_then(hex), rest.next().and_then(hex)) {
                    (Some(hi), Some(lo)) => {
                        bytes.push(hi << 4 | lo);
                        i = rest;
                    }
                    // A `%` that starts no escape stands for itself, as
                    // browsers' URL parsers have it.
                    _ => bytes.push(b'%'),
                }
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| {
        format!(
            "{:?} is not valid UTF-8 once percent-decoded",
            String::from_utf8_lossy(raw)
        )
    })
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding() {
        assert_eq!(decode(b"a+b%20c%2f%E2%80%A6").unwrap(), "a b c/\u{2026}");
        assert_eq!(decode(b"100%").unwrap(), "100%");
        assert_eq!(decode(b"%zz").unwrap(), "%zz");
        assert!(decode(b"%C3%28").is_err());
        let got: Vec<_> = pairs(b"a=1&&b&c=x=y").collect::<Result<_, _>>().unwrap();
        assert_eq!(
            got,
            [
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "x=y".into())
            ]
        );
    }
}
