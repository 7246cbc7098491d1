//! Who the client is: the TCP peer, unless the peer is a trusted reverse
//! proxy; then the address it forwarded.
//!
//! Behind a proxy every request comes from the proxy's address, so the
//! hub would see one client. With `--trusted-proxy`, a request whose peer
//! is in the list is taken to come from the rightmost address of its
//! forwarding headers ([`crate::forwarded`]) that is not itself a trusted
//! proxy: the entries to the left of it were written by whoever sent the
//! request to the first trusted proxy, and may be forged. Forwarding
//! headers from any other peer are ignored (and, in dev mode, make a
//! publish refused: see `auth.rs`).
//!
//! This address is what dev mode's loopback rule, the brake on failed
//! authentications and the logs go by.

use std::fmt;
use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

use crate::forwarded::{self, Hop};

/// The reverse proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// Their networks; a bare address is a network of one.
    nets: Vec<IpNet>,
}

/// A `--trusted-proxy` value that is not a CIDR or an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad trusted proxy {value:?}: {reason}")]
pub struct TrustedProxyError {
    /// The value as given.
    value: String,
    /// What is wrong with it.
    reason: String,
}

impl TrustedProxies {
    /// From `--trusted-proxy` values: IPv4 or IPv6 networks in CIDR
    /// notation (`10.0.0.0/8`, `fd00::/8`) or bare addresses (`127.0.0.1`,
    /// `::1`). Surrounding spaces are ignored; a network with bits set
    /// past its prefix (`10.0.0.1/8`) is refused as a likely typo.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self, TrustedProxyError> {
        let nets = values
            .iter()
            .map(|value| parse_net(value.as_ref().trim()))
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request that arrived from `peer` with `headers`.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> Client {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            let source = if forwarded::present(headers) {
                Source::PeerIgnoringForwarding
            } else {
                Source::Peer
            };
            return Client { addr: peer, source };
        }
        if !forwarded::present(headers) {
            // The proxy's own request (a health check, a local script).
            return Client {
                addr: peer,
                source: Source::Peer,
            };
        }
        let hops = forwarded::hops(headers);
        let mut nearest = peer;
        for hop in hops.iter().rev() {
            let source = match *hop {
                Hop::Addr(ip) if self.contains(ip) => {
                    nearest = ip.to_canonical();
                    continue;
                }
                Hop::Addr(ip) => {
                    nearest = ip.to_canonical();
                    Source::Forwarded
                }
                Hop::Unknown => Source::Hidden,
            };
            return Client {
                addr: nearest,
                source,
            };
        }
        // Every hop is a trusted proxy, and the first of them sent the
        // request; or the headers name no hop at all.
        let source = if hops.is_empty() {
            Source::Hidden
        } else {
            Source::Forwarded
        };
        Client {
            addr: nearest,
            source,
        }
    }
}

fn parse_net(value: &str) -> Result<IpNet, TrustedProxyError> {
    let error = |reason: &str| TrustedProxyError {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    if value.is_empty() {
        return Err(error("empty"));
    }
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    let Some((addr, prefix)) = value.split_once('/') else {
        return Err(error(
            "expected an IP address or a network in CIDR notation, such as 10.0.0.0/8 or fd00::/8",
        ));
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| error(&format!("{addr:?} is not an IPv4 or IPv6 address")))?;
    let prefix: u8 = prefix
        .parse()
        .map_err(|_| error(&format!("prefix length {prefix:?} is not a number")))?;
    let net = IpNet::new(addr, prefix).map_err(|_| {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        error(&format!(
            "prefix length {prefix} is longer than the {max} bits of the address"
        ))
    })?;
    if net.trunc() != net {
        return Err(error(&format!(
            "bits are set past the prefix; did you mean {}?",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Who sent a request, as far as the hub can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Client {
    /// The client's address; when trusted proxies did not say who the
    /// client is ([`Source::Hidden`]), the nearest of them, so that the
    /// brake and the logs still have an address to go by.
    pub(crate) addr: IpAddr,
    /// How `addr` was learned.
    pub(crate) source: Source,
}

/// How the hub learned a client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The TCP peer, without forwarding headers (or a trusted proxy's own
    /// request).
    Peer,
    /// The TCP peer, which is not a trusted proxy but sent forwarding
    /// headers: they are ignored, and the peer may be relaying someone
    /// else.
    PeerIgnoringForwarding,
    /// From the forwarding headers of trusted proxies.
    Forwarded,
    /// Trusted proxies forwarded the request but gave no usable address
    /// (`unknown`, an obfuscated or malformed entry): `addr` is theirs.
    Hidden,
}

impl Client {
    /// Whether the client is known to be on this machine: a loopback
    /// address that is the client's own.
    pub(crate) fn is_loopback(&self) -> bool {
        matches!(self.source, Source::Peer | Source::Forwarded) && self.addr.is_loopback()
    }
}

impl fmt::Display for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            Source::Hidden => write!(f, "unknown (via {})", self.addr),
            _ => self.addr.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn xff(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    fn proxies(values: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(values).unwrap()
    }

    #[test]
    fn parsing_networks_and_addresses() {
        let trusted = proxies(&["10.0.0.0/8", " 192.0.2.1 ", "fd00::/8", "::1", "0.0.0.0/0"]);
        assert_eq!(trusted.nets.len(), 5);
        assert!(proxies(&["10.0.0.0/8"]).contains(ip("10.200.3.4")));
        assert!(!proxies(&["10.0.0.0/8"]).contains(ip("11.0.0.1")));
        assert!(proxies(&["fd00::/8"]).contains(ip("fd12::1")));
        assert!(proxies(&["192.0.2.1"]).contains(ip("192.0.2.1")));
        assert!(!proxies(&["192.0.2.1"]).contains(ip("192.0.2.2")));
        // IPv4 peers of a dual-stack socket arrive IPv4-mapped.
        assert!(proxies(&["127.0.0.1/32"]).contains(ip("::ffff:127.0.0.1")));
        assert!(proxies(&["::ffff:127.0.0.1"]).contains(ip("127.0.0.1")));
        assert!(proxies(&[] as &[&str]).is_empty());
    }

    #[test]
    fn bad_values_are_named_with_the_reason() {
        let cases = [
            ("", "empty"),
            ("10.0.0.0/33", "longer than the 32 bits"),
            ("fd00::/129", "longer than the 128 bits"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("10.0.0.0/x", "is not a number"),
            ("10.0.0/8", "is not an IPv4 or IPv6 address"),
            ("nginx.internal", "CIDR notation"),
            ("10.0.0.0/-1", "is not a number"),
        ];
        for (value, reason) in cases {
            let err = TrustedProxies::parse(&[value]).unwrap_err().to_string();
            assert!(err.contains(reason), "{value:?}: {err}");
            assert!(err.contains(&format!("{value:?}")), "{err}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        let plain = none.client(ip("192.0.2.1"), &HeaderMap::new());
        assert_eq!(
            plain,
            Client {
                addr: ip("192.0.2.1"),
                source: Source::Peer
            }
        );
        let relayed = none.client(ip("127.0.0.1"), &xff("203.0.113.9"));
        assert_eq!(relayed.addr, ip("127.0.0.1"));
        assert_eq!(relayed.source, Source::PeerIgnoringForwarding);
        assert!(
            !relayed.is_loopback(),
            "a local proxy may be relaying anyone"
        );
        assert!(
            none.client(ip("::ffff:127.0.0.1"), &HeaderMap::new())
                .is_loopback()
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        // The client forged the leftmost entry; the proxies added the rest.
        let client = trusted.client(ip("127.0.0.1"), &xff("127.0.0.1, 203.0.113.7, 10.1.1.1"));
        assert_eq!(
            client,
            Client {
                addr: ip("203.0.113.7"),
                source: Source::Forwarded
            }
        );
        assert!(!client.is_loopback());
        // Forwarded first, with RFC 7239 syntax.
        let mut headers = xff("198.51.100.1");
        headers.insert(
            "forwarded",
            r#"for="[2001:db8::9]:1234", for=10.0.0.3"#.parse().unwrap(),
        );
        assert_eq!(
            trusted.client(ip("10.9.9.9"), &headers).addr,
            ip("2001:db8::9")
        );
        // A loopback client through a local proxy.
        let local = trusted.client(ip("127.0.0.1"), &xff("127.0.0.1"));
        assert!(local.is_loopback());
        assert_eq!(local.source, Source::Forwarded);
        // The proxy's own request.
        let own = trusted.client(ip("127.0.0.1"), &HeaderMap::new());
        assert_eq!(
            own,
            Client {
                addr: ip("127.0.0.1"),
                source: Source::Peer
            }
        );
        // A peer that is not trusted: its headers are not believed.
        let stranger = trusted.client(ip("192.0.2.50"), &xff("127.0.0.1"));
        assert_eq!(stranger.addr, ip("192.0.2.50"));
        assert_eq!(stranger.source, Source::PeerIgnoringForwarding);
    }

    #[test]
    fn an_unknown_hop_hides_the_client() {
        let trusted = proxies(&["127.0.0.1", "10.0.0.0/8"]);
        for value in ["unknown", "203.0.113.7, unknown", "garbage, 10.0.0.2", ""] {
            let client = trusted.client(ip("127.0.0.1"), &xff(value));
            assert_eq!(client.source, Source::Hidden, "{value:?}");
            assert!(!client.is_loopback(), "{value:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert("forwarded", "for=_hidden, for=10.0.0.2".parse().unwrap());
        let hidden = trusted.client(ip("127.0.0.1"), &headers);
        assert_eq!(
            hidden,
            Client {
                addr: ip("10.0.0.2"),
                source: Source::Hidden
            }
        );
        assert_eq!(hidden.to_string(), "unknown (via 10.0.0.2)");
        // Past an untrusted hop, what is further left does not matter.
        let found = trusted.client(ip("127.0.0.1"), &xff("unknown, 192.0.2.4"));
        assert_eq!(found.addr, ip("192.0.2.4"));
    }
}
