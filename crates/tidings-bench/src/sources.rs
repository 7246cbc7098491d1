//! Source addresses: spreading connections over 127.0.0.x.
//!
//! A TCP connection is named by (source address, source port, destination
//! address, destination port). With one source address and one server
//! port, the ephemeral port range (32768-60999 by default: 28,232 ports)
//! caps the connections at about 28k. Every address of 127.0.0.0/8 is a
//! loopback address on Linux, so binding each connection to one of several
//! of them multiplies that cap.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};

/// A `--source-ips` value that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Neither a count, an address, nor a range.
    #[error(
        "invalid --source-ips {0:?}: expected a count (50), an address, a range \
         (127.0.0.1-127.0.0.50), a comma-separated list of those, or 'none'"
    )]
    Invalid(String),
    /// A range whose end is before its start, or an IPv6 range.
    #[error("invalid source address range {0:?}")]
    Range(String),
    /// More addresses than a /8 holds.
    #[error("too many source addresses: {0}")]
    TooMany(u64),
}

/// The ports the kernel hands out as ephemeral ports: how many connections
/// one source address can open to one server address.
pub fn ephemeral_ports() -> u64 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_ascii_whitespace().map(str::parse::<u64>);
            let low = parts.next()?.ok()?;
            let high = parts.next()?.ok()?;
            Some(high.saturating_sub(low) + 1)
        })
        .unwrap_or(28_232)
}

/// Parses `--source-ips`. An empty list means: do not bind.
pub fn parse(spec: &str) -> Result<Vec<IpAddr>, SourceError> {
    let spec = spec.trim();
    if spec.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for item in spec.split(',').map(str::trim) {
        if let Ok(count) = item.parse::<u64>() {
            out.extend(loopback_v4(count)?);
        } else if let Some((start, end)) = item.split_once('-') {
            let bad = || SourceError::Range(item.to_owned());
            let start: Ipv4Addr = start.trim().parse().map_err(|_| bad())?;
            let end: Ipv4Addr = end.trim().parse().map_err(|_| bad())?;
            let (start, end) = (u32::from(start), u32::from(end));
            if end < start {
                return Err(bad());
            }
            if u64::from(end - start) >= 1 << 24 {
                return Err(SourceError::TooMany(u64::from(end - start) + 1));
            }
            out.extend((start..=end).map(|a| IpAddr::V4(Ipv4Addr::from(a))));
        } else {
            let ip: IpAddr = item
                .parse()
                .map_err(|_| SourceError::Invalid(spec.to_owned()))?;
            out.push(ip);
        }
    }
    Ok(out)
}

/// `count` loopback addresses from 127.0.0.1 upwards.
pub fn loopback_v4(count: u64) -> Result<Vec<IpAddr>, SourceError> {
    if count >= (1 << 24) - 1 {
        return Err(SourceError::TooMany(count));
    }
    let first = u32::from(Ipv4Addr::new(127, 0, 0, 1));
    // `count` is below 2^24, so the sum stays in 127.0.0.0/8.
    let count = count as u32;
    Ok((first..first + count)
        .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
        .collect())
}

/// The default: enough 127.0.0.x addresses for `connections` when the
/// server is on IPv4 loopback (each address carrying at most 20,000, well
/// under the port range), else no binding at all.
pub fn default_for(server: IpAddr, connections: u64) -> Vec<IpAddr> {
    match server {
        IpAddr::V4(v4) if v4.is_loopback() => {
            loopback_v4(connections.div_ceil(20_000).clamp(1, 250)).unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// The default source addresses of connections that come and go at
/// `per_minute` a minute beside connections from `taken`: on IPv4 loopback,
/// the addresses right after the highest of `taken` (127.0.0.1 when none),
/// one per 10,000 connections a minute. A closed connection holds its port
/// in TIME_WAIT for a minute; on addresses of their own the churn's
/// connections neither crowd the ports of the long-lived ones nor slow the
/// kernel's search for a free port when those connect.
pub fn default_after(server: IpAddr, taken: &[IpAddr], per_minute: u64) -> Vec<IpAddr> {
    if !matches!(server, IpAddr::V4(v4) if v4.is_loopback()) {
        return Vec::new();
    }
    let highest = taken
        .iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) => Some(u32::from(*v4)),
            IpAddr::V6(_) => None,
        })
        .max()
        .unwrap_or(u32::from(Ipv4Addr::new(127, 0, 0, 1)));
    let last = u32::from(Ipv4Addr::new(127, 255, 255, 254));
    let count = per_minute.div_ceil(10_000).clamp(1, 250) as u32;
    (highest.saturating_add(1)..=highest.saturating_add(count).min(last))
        .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
        .collect()
}

/// The source address of connection number `index` (counted over all
/// shards): round-robin over `sources`.
pub fn pick(sources: &[IpAddr], index: usize) -> Option<IpAddr> {
    if sources.is_empty() {
        return None;
    }
    sources.get(index % sources.len()).copied()
}

/// A short description for reports: `127.0.0.1-127.0.0.5 (5)`.
pub fn describe(sources: &[IpAddr]) -> String {
    match sources {
        [] => "none (kernel's choice)".to_owned(),
        [one] => one.to_string(),
        [first, .., last] => format!("{first}-{last} ({})", sources.len()),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::{default_after, default_for, describe, parse, pick};

    fn ips(list: &[IpAddr]) -> Vec<String> {
        list.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn counts_ranges_and_lists() {
        assert_eq!(
            ips(&parse("3").unwrap()),
            ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        );
        assert_eq!(
            ips(&parse("127.0.0.254-127.0.1.1").unwrap()),
            ["127.0.0.254", "127.0.0.255", "127.0.1.0", "127.0.1.1"]
        );
        assert_eq!(ips(&parse("127.0.0.9, ::1").unwrap()), ["127.0.0.9", "::1"]);
        assert!(parse("none").unwrap().is_empty());
        assert!(parse("127.0.0.5-127.0.0.1").is_err());
        assert!(parse("banana").is_err());
        assert!(parse("::1-::2").is_err());
        assert!(parse("1-2,127.0.0.7").is_err());
        assert_eq!(describe(&[]), "none (kernel's choice)");
    }

    #[test]
    fn defaults_and_round_robin() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(default_for(lo, 10_000).len(), 1);
        assert_eq!(default_for(lo, 100_000).len(), 5);
        assert!(default_for("::1".parse().unwrap(), 100_000).is_empty());
        let list = parse("2").unwrap();
        assert_eq!(pick(&list, 0), pick(&list, 2));
        assert_ne!(pick(&list, 0), pick(&list, 1));
        assert_eq!(pick(&[], 3), None);
        assert_eq!(describe(&list), "127.0.0.1-127.0.0.2 (2)");
    }

    #[test]
    fn churn_addresses_come_after_the_subscribers() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let subs = parse("127.0.0.1-127.0.0.5").unwrap();
        assert_eq!(
            describe(&default_after(lo, &subs, 60_000)),
            "127.0.0.6-127.0.0.11 (6)"
        );
        assert_eq!(ips(&default_after(lo, &[], 10)), ["127.0.0.2"]);
        assert!(default_after("::1".parse().unwrap(), &subs, 60_000).is_empty());
    }
}
