//! The hops a request went through, as proxies record them: the `for`
//! parameters of `Forwarded` (RFC 7239) or, without them, the addresses of
//! `X-Forwarded-For`. Parsing only: whether to believe them is
//! [`crate::client`]'s business.
//!
//! Each proxy appends the address it received the request from, so the
//! list reads from the original client (left) to the proxy nearest the hub
//! (right). Several header fields are one list, in order. An entry that is
//! not an address (`unknown`, an obfuscated `_name`, or anything
//! malformed) is kept as [`Hop::Unknown`] so that the reader stops there
//! rather than skip past it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};

/// `X-Forwarded-For`, the older header every proxy speaks.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// One entry of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// A node given by its address (any port dropped).
    Addr(IpAddr),
    /// `unknown`, an obfuscated identifier, an element without `for`, or
    /// something that does not parse.
    Unknown,
}

/// Whether the request carries `Forwarded` or `X-Forwarded-For` at all.
pub(crate) fn present(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED) || headers.contains_key(X_FORWARDED_FOR)
}

/// The hops, client first: from `Forwarded` when any of its elements has a
/// `for` parameter, else from `X-Forwarded-For`. Empty when neither says
/// anything.
pub(crate) fn hops(headers: &HeaderMap) -> Vec<Hop> {
    let forwarded = forwarded_hops(headers);
    if forwarded.iter().any(Option::is_some) {
        // An element without `for` is a proxy that did not say: unknown.
        return forwarded
            .into_iter()
            .map(|hop| hop.unwrap_or(Hop::Unknown))
            .collect();
    }
    headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(node)
                .collect(),
            Err(_) => vec![Hop::Unknown],
        })
        .collect()
}

/// The `for` value of each `Forwarded` element (`None`: the element has no
/// `for`), in order across every `Forwarded` field.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<Hop>> {
    let mut out = Vec::new();
    for value in &headers.get_all(FORWARDED) {
        let Ok(text) = value.to_str() else {
            out.push(Some(Hop::Unknown));
            continue;
        };
        for element in split_outside_quotes(text, ',') {
            if element.trim().is_empty() {
                continue;
            }
            out.push(element_for(element));
        }
    }
    out
}

/// The `for` of one element (`a=b;c="d"`): `None` when it has none;
/// [`Hop::Unknown`] when the element is malformed or names `for` twice.
fn element_for(element: &str) -> Option<Hop> {
    let mut found = None;
    for pair in split_outside_quotes(element, ';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((name, value)) = pair.split_once('=') else {
            return Some(Hop::Unknown);
        };
        if !name.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        if found.is_some() {
            return Some(Hop::Unknown);
        }
        found = Some(unquote(value.trim()).map_or(Hop::Unknown, |v| node(&v)));
    }
    found
}

/// Splits at `separator` where it is not inside a quoted string.
fn split_outside_quotes(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(text.get(start..i).unwrap_or_default());
            start = i + c.len_utf8();
        }
    }
    parts.push(text.get(start..).unwrap_or_default());
    parts
}

/// A token as it is, or a quoted string without its quotes and escapes;
/// `None` for an unterminated quote.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// A node: `192.0.2.1`, `192.0.2.1:8080`, `[2001:db8::1]`,
/// `[2001:db8::1]:8080`, and, leniently, a bare IPv6 address; `unknown`
/// and obfuscated identifiers (`_hidden`) are [`Hop::Unknown`], as is
/// anything else.
fn node(text: &str) -> Hop {
    if let Some(rest) = text.strip_prefix('[') {
        let Some((addr, after)) = rest.split_once(']') else {
            return Hop::Unknown;
        };
        let port_fits = after.is_empty() || after.strip_prefix(':').is_some_and(port_ok);
        return match addr.parse::<Ipv6Addr>() {
            Ok(ip) if port_fits => Hop::Addr(IpAddr::V6(ip)),
            _ => Hop::Unknown,
        };
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Hop::Addr(ip);
    }
    match text.split_once(':') {
        Some((addr, port)) => match addr.parse::<Ipv4Addr>() {
            Ok(ip) if port_ok(port) => Hop::Addr(IpAddr::V4(ip)),
            _ => Hop::Unknown,
        },
        None => Hop::Unknown,
    }
}

/// A port: a number or an obfuscated port (`_abc`).
fn port_ok(port: &str) -> bool {
    if let Some(obfuscated) = port.strip_prefix('_') {
        return !obfuscated.is_empty()
            && obfuscated
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    }
    port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> Hop {
        Hop::Addr(text.parse().unwrap())
    }

    #[test]
    fn forwarded_as_rfc_7239_writes_it() {
        let got = hops(&headers(&[(
            "forwarded",
            r#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https, For="192.0.2.60:8080";by=203.0.113.43"#,
        )]));
        assert_eq!(
            got,
            [ip("192.0.2.43"), ip("2001:db8:cafe::17"), ip("192.0.2.60")]
        );
        let unknown = hops(&headers(&[(
            "forwarded",
            r#"for=unknown, for=_hidden, for="_SEVKISEK:_port", for=198.51.100.17"#,
        )]));
        assert_eq!(
            unknown,
            [
                Hop::Unknown,
                Hop::Unknown,
                Hop::Unknown,
                ip("198.51.100.17")
            ]
        );
    }

    #[test]
    fn several_fields_are_one_list_in_order() {
        let got = hops(&headers(&[
            ("forwarded", "for=192.0.2.1;proto=http"),
            ("forwarded", "for=192.0.2.2, for=192.0.2.3"),
        ]));
        assert_eq!(got, [ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3")]);
    }

    #[test]
    fn quoting_separators_and_escapes() {
        // A comma or semicolon inside quotes separates nothing.
        let got = hops(&headers(&[(
            "forwarded",
            r#"by="a,b;c";for="192.0.2.9", for="\[2001:db8::2\]""#,
        )]));
        assert_eq!(got, [ip("192.0.2.9"), ip("2001:db8::2")]);
    }

    #[test]
    fn malformed_elements_are_unknown_not_skipped() {
        let cases = [
            "for=",
            "for=[2001:db8::1",
            "for=2001:db8::zz",
            "for=192.0.2.1:port",
            "for=192.0.2.1:123456",
            "for=a.example",
            "for=192.0.2.1;for=192.0.2.2",
            "garbage",
            "for=192.0.2.300",
        ];
        for case in cases {
            let got = hops(&headers(&[(
                "forwarded",
                &format!("{case}, for=192.0.2.7"),
            )]));
            assert_eq!(got, [Hop::Unknown, ip("192.0.2.7")], "{case}");
        }
        // An unterminated quote takes the rest of the field with it: one
        // unknown hop, never a skipped one.
        assert_eq!(
            hops(&headers(&[("forwarded", "for=\"192.0.2.1, for=192.0.2.7")])),
            [Hop::Unknown]
        );
        // Lenient where the meaning is plain: a bare IPv6 address.
        assert_eq!(
            hops(&headers(&[("forwarded", "for=2001:db8::5")])),
            [ip("2001:db8::5")]
        );
        // An element without `for` is an unknown hop once some element
        // has one.
        assert_eq!(
            hops(&headers(&[("forwarded", "proto=https, for=192.0.2.8")])),
            [Hop::Unknown, ip("192.0.2.8")]
        );
    }

    #[test]
    fn x_forwarded_for_when_forwarded_has_no_for() {
        let got = hops(&headers(&[
            ("forwarded", "proto=https;host=example.com"),
            ("x-forwarded-for", "203.0.113.5, 10.0.0.2"),
            (
                "x-forwarded-for",
                "[2001:db8::3]:443,unknown, 192.0.2.4:80 ,",
            ),
        ]));
        assert_eq!(
            got,
            [
                ip("203.0.113.5"),
                ip("10.0.0.2"),
                ip("2001:db8::3"),
                Hop::Unknown,
                ip("192.0.2.4")
            ]
        );
        // Forwarded with `for` wins over X-Forwarded-For.
        let both = hops(&headers(&[
            ("x-forwarded-for", "203.0.113.5"),
            ("forwarded", "for=198.51.100.1"),
        ]));
        assert_eq!(both, [ip("198.51.100.1")]);
        assert!(hops(&HeaderMap::new()).is_empty());
        assert!(present(&headers(&[("x-forwarded-for", "")])));
        assert!(present(&headers(&[("forwarded", "proto=https")])));
        assert!(!present(&headers(&[("x-real-ip", "192.0.2.1")])));
    }

    #[test]
    fn values_that_are_not_text_are_unknown() {
        let mut map = HeaderMap::new();
        map.append(
            X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"192.0.2.1\xff").unwrap(),
        );
        map.append(X_FORWARDED_FOR, "192.0.2.2".parse().unwrap());
        assert_eq!(hops(&map), [Hop::Unknown, ip("192.0.2.2")]);
    }
}
