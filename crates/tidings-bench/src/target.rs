//! The server under test: its subscribe URL, resolved once, and the exact
//! bytes of the subscription request.

use std::net::SocketAddr;

use http::Uri;

/// A URL the tool cannot use.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Not a URL.
    #[error("invalid URL {url:?}: {source}")]
    Invalid {
        /// The URL as given.
        url: String,
        /// Why it did not parse.
        source: http::uri::InvalidUri,
    },
    /// A scheme other than plain `http`.
    #[error("unsupported URL {0:?}: only http:// is supported (run TLS-free on loopback)")]
    Scheme(String),
    /// No host in the URL.
    #[error("URL {0:?} has no host")]
    NoHost(String),
    /// The host did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// `host:port` as looked up.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A `--header` value that is not `Name: value`.
    #[error("header {0:?} is not of the form 'Name: value'")]
    Header(String),
}

/// An `http://` URL, resolved.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given, for reports.
    pub url: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header value: the URL's authority.
    pub authority: String,
    /// The request target: path and query.
    pub path_and_query: String,
}

impl Target {
    /// Parses and resolves `url` (the first address the resolver returns is
    /// used for every connection).
    pub async fn resolve(url: &str) -> Result<Self, TargetError> {
        let uri: Uri = url.parse().map_err(|source| TargetError::Invalid {
            url: url.to_owned(),
            source,
        })?;
        if uri.scheme_str() != Some("http") {
            return Err(TargetError::Scheme(url.to_owned()));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| TargetError::NoHost(url.to_owned()))?;
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        // `[::1]` in a URL is `::1` to the resolver.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let lookup = format!("{bare}:{port}");
        let addr = tokio::net::lookup_host(lookup.as_str())
            .await
            .map_err(|source| TargetError::Resolve {
                host: lookup.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| TargetError::Resolve {
                host: lookup.clone(),
                source: std::io::Error::other("no address"),
            })?;
        Ok(Self {
            url: url.to_owned(),
            addr,
            authority: authority.as_str().to_owned(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }

    /// The bytes of the `GET` that opens a subscription, with the extra
    /// `headers` (each `Name: value`).
    pub fn subscribe_request(&self, headers: &[String]) -> Result<Vec<u8>, TargetError> {
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
            self.path_and_query, self.authority
        );
        for header in headers {
            check_header(header)?;
            request.push_str(header.trim());
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        Ok(request.into_bytes())
    }
}

/// Checks that `header` is `Name: value` with no line break.
pub fn check_header(header: &str) -> Result<(&str, &str), TargetError> {
    let bad = || TargetError::Header(header.to_owned());
    if header.contains(['\r', '\n']) {
        return Err(bad());
    }
    let (name, value) = header.split_once(':').ok_or_else(bad)?;
    let name = name.trim();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(bad());
    }
    Ok((name, value.trim()))
}

#[cfg(test)]
mod tests {
    use super::{Target, check_header};

    #[tokio::test]
    async fn parses_a_mercure_url() {
        let target = Target::resolve("http://127.0.0.1:8080/.well-known/mercure?topic=bench")
            .await
            .unwrap();
        assert_eq!(target.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(target.authority, "127.0.0.1:8080");
        assert_eq!(target.path_and_query, "/.well-known/mercure?topic=bench");
        let request = target
            .subscribe_request(&["Authorization: Bearer x".to_owned()])
            .unwrap();
        assert_eq!(
            String::from_utf8(request).unwrap(),
            "GET /.well-known/mercure?topic=bench HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
             Accept: text/event-stream\r\nCache-Control: no-cache\r\n\
             Authorization: Bearer x\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_use() {
        assert!(Target::resolve("https://127.0.0.1/").await.is_err());
        assert!(Target::resolve("127.0.0.1:80").await.is_err());
        assert!(check_header("X-A: b\r\nEvil: 1").is_err());
        assert!(check_header("no colon").is_err());
        assert_eq!(check_header(" X-A :  b ").unwrap(), ("X-A", "b"));
        let target = Target::resolve("http://[::1]:9/x").await.unwrap();
        assert_eq!(target.addr.to_string(), "[::1]:9");
    }
}
