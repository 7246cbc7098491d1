//! The `--cluster` URL: which engine, where, and the names the cluster
//! uses in it.
//!
//! - `redis://HOST:PORT[/DB][?prefix=NAME]` (also `rediss://`, and a user
//!   and password in the URL as redis-rs reads them): keys
//!   `{NAME}:log`, `{NAME}:ids` and `{NAME}:seq` (default `tidings`).
//! - `nats://HOST:PORT[?stream=NAME&subject=PREFIX]` (also `tls://`): the
//!   JetStream stream `NAME` (default `TIDINGS`) over the subjects
//!   `PREFIX.>` (default `tidings`).

use url::Url;

/// A parsed `--cluster` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineUrl {
    /// A Redis server.
    Redis {
        /// The URL for redis-rs, without this crate's query parameters.
        url: String,
        /// What every key starts with.
        prefix: String,
    },
    /// A NATS server with JetStream.
    Nats {
        /// The server URL for async-nats, without this crate's parameters.
        url: String,
        /// The stream's name.
        stream: String,
        /// The subjects' prefix.
        subject: String,
    },
}

/// The `--cluster` URL is not one this crate can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL.
    #[error("not a URL: {0}")]
    Syntax(String),
    /// Neither Redis nor NATS.
    #[error("unknown cluster engine {0:?}: use redis://HOST:PORT or nats://HOST:PORT")]
    Scheme(String),
    /// A query parameter this crate does not know.
    #[error("unknown parameter {0:?} in the cluster URL")]
    Parameter(String),
    /// An engine whose client this build leaves out.
    #[error(
        "this build of tidings has no {engine} engine: it was built without the `{feature}` \
         cargo feature (on by default; build with `--features {feature}`)"
    )]
    NotBuilt {
        /// Which engine.
        engine: &'static str,
        /// The cargo feature that brings it.
        feature: &'static str,
    },
    /// A name that the engine would not accept.
    #[error("{name} {value:?} must be 1 to 64 of A-Z, a-z, 0-9, '-' and '_'")]
    Name {
        /// Which name.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

impl EngineUrl {
    /// Parses a `--cluster` URL.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let mut url = Url::parse(text).map_err(|e| UrlError::Syntax(format!("{text:?}: {e}")))?;
        let redis = match url.scheme() {
            "redis" | "rediss" => true,
            "nats" | "tls" => false,
            other => return Err(UrlError::Scheme(other.to_owned())),
        };
        let mut prefix = None;
        let mut stream = None;
        let mut subject = None;
        let mut kept = Vec::new();
        for (key, value) in url.query_pairs() {
            let slot = match (redis, &*key) {
                (true, "prefix") => &mut prefix,
                (false, "stream") => &mut stream,
                (false, "subject") => &mut subject,
                // redis-rs reads `protocol` (RESP2/RESP3) from the query.
                (true, "protocol") => {
                    kept.push((key.into_owned(), value.into_owned()));
                    continue;
                }
                _ => return Err(UrlError::Parameter(key.into_owned())),
            };
            *slot = Some(value.into_owned());
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        let parsed = if redis {
            Self::Redis {
                url: url.into(),
                prefix: checked("prefix", prefix, "tidings")?,
            }
        } else {
            Self::Nats {
                url: url.into(),
                stream: checked("stream", stream, "TIDINGS")?,
                subject: checked("subject", subject, "tidings")?,
            }
        };
        if parsed.is_built() {
            Ok(parsed)
        } else {
            Err(parsed.not_built())
        }
    }

    /// Whether this build has the engine's client (its cargo feature).
    pub fn is_built(&self) -> bool {
        match self {
            Self::Redis { .. } => cfg!(feature = "redis"),
            Self::Nats { .. } => cfg!(feature = "nats"),
        }
    }

    /// The error for this engine in a build without its feature.
    pub(crate) fn not_built(&self) -> UrlError {
        let (engine, feature) = match self {
            Self::Redis { .. } => ("Redis", "redis"),
            Self::Nats { .. } => ("NATS", "nats"),
        };
        UrlError::NotBuilt { engine, feature }
    }
}

/// `url` with its password, if any, replaced by `***`: for logs.
pub fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only URLs that cannot have a password refuse one.
            let _ = parsed.set_password(Some("***"));
            parsed.into()
        }
        _ => url.to_owned(),
    }
}

/// `value` or `default`, if it is a name every engine takes as is (a Redis
/// hash tag, a JetStream stream name, a NATS subject token).
fn checked(name: &'static str, value: Option<String>, default: &str) -> Result<String, UrlError> {
    let value = value.unwrap_or_else(|| default.to_owned());
    let good = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if good {
        Ok(value)
    } else {
        Err(UrlError::Name { name, value })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[cfg(feature = "redis")]
    #[test]
    fn redis_urls() {
        assert_eq!(
            EngineUrl::parse("redis://127.0.0.1:6379").unwrap(),
            EngineUrl::Redis {
                url: "redis://127.0.0.1:6379".into(),
                prefix: "tidings".into()
            }
        );
        assert_eq!(
            EngineUrl::parse("redis://:pw@h:1/2?prefix=app-1&protocol=resp3").unwrap(),
            EngineUrl::Redis {
                url: "redis://:pw@h:1/2?protocol=resp3".into(),
                prefix: "app-1".into()
            }
        );
    }

    #[cfg(feature = "nats")]
    #[test]
    fn nats_urls() {
        assert_eq!(
            EngineUrl::parse("nats://127.0.0.1:4222/?stream=EV&subject=ev").unwrap(),
            EngineUrl::Nats {
                url: "nats://127.0.0.1:4222/".into(),
                stream: "EV".into(),
                subject: "ev".into()
            }
        );
        assert!(matches!(
            EngineUrl::parse("nats://h:1").unwrap(),
            EngineUrl::Nats { stream, subject, .. } if stream == "TIDINGS" && subject == "tidings"
        ));
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(redacted("redis://:secret@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redacted("nats://u:p@h:1"), "nats://u:***@h:1");
        assert_eq!(redacted("nats://h:1"), "nats://h:1");
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            EngineUrl::parse("127.0.0.1:6379"),
            Err(UrlError::Syntax(_) | UrlError::Scheme(_))
        ));
        assert_eq!(
            EngineUrl::parse("kafka://h:1"),
            Err(UrlError::Scheme("kafka".into()))
        );
        assert_eq!(
            EngineUrl::parse("redis://h:1?stream=x"),
            Err(UrlError::Parameter("stream".into()))
        );
        assert!(matches!(
            EngineUrl::parse("nats://h:1?subject=a.b"),
            Err(UrlError::Name {
                name: "subject",
                ..
            })
        ));
        assert!(matches!(
            EngineUrl::parse("redis://h:1?prefix="),
            Err(UrlError::Name { name: "prefix", .. })
        ));
    }

    /// A build without an engine refuses its URLs by naming the feature.
    #[test]
    fn engines_left_out_name_their_feature() {
        for (url, built, feature) in [
            ("redis://127.0.0.1:1", cfg!(feature = "redis"), "redis"),
            ("nats://127.0.0.1:1", cfg!(feature = "nats"), "nats"),
        ] {
            match EngineUrl::parse(url) {
                Ok(engine) => assert!(built && engine.is_built(), "{url}"),
                Err(err) => {
                    assert!(!built, "{url}: {err}");
                    assert!(matches!(err, UrlError::NotBuilt { feature: f, .. } if f == feature));
                    assert!(
                        err.to_string()
                            .contains(&format!("`{feature}` cargo feature"))
                    );
                }
            }
        }
    }
}
