//! Who may publish and what a subscriber may see: tokens from requests,
//! checked with `tidings-auth`, and a brake on peers that keep failing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::header::{AUTHORIZATION, COOKIE};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use tidings_auth::{Claims, TokenError, Verifier};
use tidings_core::SubscriberAuth;

use crate::client::{Client, Source};
use crate::csrf::PublishOrigins;
use crate::error::AppError;
use crate::form;

/// How the hub authenticates.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Verifies publishers' tokens; `None`: dev mode, loopback clients may
    /// publish without one.
    pub publisher: Option<Verifier>,
    /// Verifies subscribers' tokens; `None`: tokens are ignored and nobody
    /// receives private updates.
    pub subscriber: Option<Verifier>,
    /// Whether subscribers without a token are served (public updates
    /// only).
    pub anonymous: bool,
    /// The origins whose pages may publish with the token cookie (which a
    /// browser sends on a form post from any site); empty: none may.
    pub publish_origins: PublishOrigins,
}

/// The name of the cookie that may carry a token.
const COOKIE_NAME: &str = "mercureAuthorization";

/// A token, and where the request carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// The JWT.
    pub(crate) value: String,
    /// Where it came from: a browser attaches only the cookie on its own.
    pub(crate) source: TokenSource,
}

/// Where a request carries its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenSource {
    /// `Authorization: Bearer`.
    Header,
    /// The `authorization` query parameter.
    Query,
    /// The `mercureAuthorization` cookie.
    Cookie,
}

/// The token of a request: from `Authorization: Bearer`, else the
/// `authorization` query parameter, else the `mercureAuthorization` cookie.
/// Only the first source present counts.
pub(crate) fn token(parts: &Parts) -> Result<Option<Token>, AppError> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default().trim();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(unauthorized(
                "the Authorization header must be `Bearer <token>`",
            ));
        }
        return Ok(Some(Token {
            value: token.trim().to_owned(),
            source: TokenSource::Header,
        }));
    }
    for pair in form::pairs(parts.uri.query().unwrap_or_default().as_bytes()) {
        let (name, value) = pair.map_err(AppError::bad_request)?;
        if name == "authorization" {
            return Ok(Some(Token {
                value,
                source: TokenSource::Query,
            }));
        }
    }
    Ok(cookie(&parts.headers, COOKIE_NAME).map(|value| Token {
        value,
        source: TokenSource::Cookie,
    }))
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then(|| v.trim_matches('"').to_owned())
        })
}

fn unauthorized(message: &str) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, message)
}

fn forbidden(message: &str) -> AppError {
    AppError::new(StatusCode::FORBIDDEN, message)
}

/// Verifies with the keys at hand; with a key set, a token whose key is not
/// cached may wait for one (rate-limited, shared) refetch.
async fn verify(verifier: &Verifier, token: &str) -> Result<Claims, AppError> {
    verifier
        .verify_or_refetch(token)
        .await
        .map_err(|e| match e {
            TokenError::KeySetUnavailable => unauthorized(&e.to_string()),
            e => unauthorized(&format!("invalid token: {e}")),
        })
}

impl AuthConfig {
    /// Who the publisher is: checked before its body is read. `client` is
    /// who sent the request (`None`: unknown).
    pub(crate) async fn publisher(
        &self,
        parts: &Parts,
        client: Option<Client>,
    ) -> Result<PublishGrant, AppError> {
        let Some(verifier) = &self.publisher else {
            return dev_mode(client);
        };
        let token = token(parts)?.ok_or_else(|| unauthorized("publishing needs a token"))?;
        if token.source == TokenSource::Cookie {
            // Before the token is looked at: a forged request learns
            // nothing about it.
            self.publish_origins.check(&parts.headers)?;
        }
        Ok(PublishGrant::Token(verify(verifier, &token.value).await?))
    }

    /// What a subscriber may see; `None` for an anonymous one.
    pub(crate) async fn authorize_subscribe(
        &self,
        parts: &Parts,
    ) -> Result<Option<SubscriberAuth>, AppError> {
        let Some(verifier) = &self.subscriber else {
            return Ok(None);
        };
        let Some(token) = token(parts)? else {
            if self.anonymous {
                return Ok(None);
            }
            return Err(unauthorized("subscribing needs a token"));
        };
        let claims = verify(verifier, &token.value).await?;
        Ok(Some(SubscriberAuth {
            private_selectors: claims.subscribe.unwrap_or_default(),
            expires_at: claims.expires_at,
            payload: claims.payload,
        }))
    }
}

/// Dev mode: only a client known to be on this machine may publish.
fn dev_mode(client: Option<Client>) -> Result<PublishGrant, AppError> {
    match client {
        Some(client) if client.is_loopback() => Ok(PublishGrant::Loopback),
        Some(Client {
            addr,
            source: Source::PeerIgnoringForwarding,
        }) if addr.is_loopback() => Err(forbidden(
            "this hub runs without a JWT key (dev mode): publishing is allowed from loopback \
             clients only, and this request carries Forwarded or X-Forwarded-For from a peer that \
             is not a trusted proxy, so the hub cannot tell a local proxy relaying other machines \
             from a local program. List the proxy with --trusted-proxy, or set a publisher JWT key",
        )),
        Some(Client {
            source: Source::Hidden,
            ..
        }) => Err(forbidden(
            "this hub runs without a JWT key (dev mode): publishing is allowed from loopback \
             clients only, and the trusted proxy did not give the client's address (unknown, \
             obfuscated or malformed Forwarded or X-Forwarded-For)",
        )),
        _ => Err(forbidden(
            "this hub runs without a JWT key (dev mode): publishing is allowed from loopback addresses only",
        )),
    }
}

/// What a publisher was allowed.
#[derive(Debug)]
pub(crate) enum PublishGrant {
    /// Dev mode and a loopback peer: anything.
    Loopback,
    /// A verified token: what its `mercure.publish` claim covers.
    Token(Claims),
}

impl PublishGrant {
    /// Checks that every one of `topics` is covered (no partial dispatch).
    pub(crate) fn check(&self, topics: &[&str]) -> Result<(), AppError> {
        match self {
            Self::Loopback => Ok(()),
            Self::Token(claims) if claims.may_publish(topics) => Ok(()),
            Self::Token(_) => Err(forbidden(
                "the token's mercure.publish claim does not cover every topic of the update",
            )),
        }
    }
}

/// Slows down peers whose authentication keeps failing: the first
/// [`FREE`] failures in a minute cost nothing, each one after that delays
/// the answer a little more, up to [`MAX_DELAY`].
#[derive(Debug, Default)]
pub(crate) struct FailureBrake {
    /// Recent failures per peer address.
    peers: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    /// When the current window started.
    since: Instant,
    /// Failures in it.
    count: u32,
}

/// Failures per window that cost nothing.
const FREE: u32 = 5;
/// The window.
const WINDOW: Duration = Duration::from_secs(60);
/// Added per failure past the free ones.
const STEP: Duration = Duration::from_millis(250);
/// The longest delay.
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Peers remembered at most; beyond, stale entries are dropped first and
/// then everything (memory stays bounded under a flood of addresses).
const MAX_PEERS: usize = 65_536;

impl FailureBrake {
    /// Records a failure from `peer`; returns how long to wait before
    /// answering.
    pub(crate) fn failed(&self, peer: IpAddr) -> Duration {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if peers.len() >= MAX_PEERS {
            peers.retain(|_, f| now.duration_since(f.since) < WINDOW);
            if peers.len() >= MAX_PEERS {
                peers.clear();
            }
        }
        let entry = peers.entry(peer).or_insert(Failures {
            since: now,
            count: 0,
        });
        if now.duration_since(entry.since) >= WINDOW {
            *entry = Failures {
                since: now,
                count: 0,
            };
        }
        entry.count = entry.count.saturating_add(1);
        STEP.saturating_mul(entry.count.saturating_sub(FREE))
            .min(MAX_DELAY)
    }
}

/// Answers an authentication failure after the brake's delay. Failures
/// count per client address (behind trusted proxies, the forwarded one).
pub(crate) async fn brake(brake: &FailureBrake, client: Option<Client>, err: AppError) -> AppError {
    if err.status == StatusCode::UNAUTHORIZED
        && let Some(client) = client
    {
        let delay = brake.failed(client.addr);
        if !delay.is_zero() {
            tracing::debug!(%client, ?delay, "slowing down repeated authentication failures");
            tokio::time::sleep(delay).await;
        }
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().uri(uri);
        for (n, v) in headers {
            builder = builder.header(*n, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn token_sources_in_order() {
        let all = parts(
            "/x?authorization=from-query",
            &[
                ("authorization", "Bearer from-header"),
                ("cookie", "a=b; mercureAuthorization=from-cookie"),
            ],
        );
        let found = |parts: &Parts| token(parts).unwrap().map(|t| (t.value, t.source)).unwrap();
        assert_eq!(found(&all), ("from-header".into(), TokenSource::Header));
        let no_header = parts(
            "/x?authorization=from-query",
            &[("cookie", "mercureAuthorization=from-cookie")],
        );
        assert_eq!(found(&no_header), ("from-query".into(), TokenSource::Query));
        let cookie_only = parts(
            "/x",
            &[("cookie", "x=1; mercureAuthorization=\"from-cookie\"")],
        );
        assert_eq!(
            found(&cookie_only),
            ("from-cookie".into(), TokenSource::Cookie)
        );
        assert_eq!(token(&parts("/x", &[])).unwrap(), None);
        assert!(token(&parts("/x", &[("authorization", "Basic abc")])).is_err());
    }

    fn peer(ip: IpAddr) -> Option<Client> {
        Some(Client {
            addr: ip,
            source: Source::Peer,
        })
    }

    #[tokio::test]
    async fn dev_mode_publishes_from_loopback_only() {
        let auth = AuthConfig::default();
        let request = parts("/x", &[]);
        let loopback: [IpAddr; 2] = [[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
        for ip in loopback {
            assert!(matches!(
                auth.publisher(&request, peer(ip)).await,
                Ok(PublishGrant::Loopback)
            ));
        }
        let remote: IpAddr = [192, 0, 2, 7].into();
        let err = auth.publisher(&request, peer(remote)).await.unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(auth.publisher(&request, None).await.is_err());
    }

    #[tokio::test]
    async fn dev_mode_refuses_what_a_local_proxy_may_relay() {
        let auth = AuthConfig::default();
        let request = parts("/x", &[]);
        let relayed = Some(Client {
            addr: [127, 0, 0, 1].into(),
            source: Source::PeerIgnoringForwarding,
        });
        let err = auth.publisher(&request, relayed).await.unwrap_err();
        assert_eq!(err.status, StatusCode::FORBIDDEN);
        assert!(err.message.contains("--trusted-proxy"), "{}", err.message);
        let hidden = Some(Client {
            addr: [127, 0, 0, 1].into(),
            source: Source::Hidden,
        });
        let err = auth.publisher(&request, hidden).await.unwrap_err();
        assert!(
            err.message.contains("did not give the client's address"),
            "{}",
            err.message
        );
        let forwarded = Some(Client {
            addr: [127, 0, 0, 1].into(),
            source: Source::Forwarded,
        });
        assert!(auth.publisher(&request, forwarded).await.is_ok());
    }

    #[test]
    fn the_brake_grows_then_forgets() {
        let brake = FailureBrake::default();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let delays: Vec<Duration> = (0..8).map(|_| brake.failed(ip)).collect();
        assert!(delays[..5].iter().all(Duration::is_zero));
        assert_eq!(delays[5], STEP);
        assert_eq!(delays[7], STEP * 3);
        let other: IpAddr = [127, 0, 0, 2].into();
        assert!(brake.failed(other).is_zero());
    }
}
