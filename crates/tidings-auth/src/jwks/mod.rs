//! [`KeySet`]: a JWK Set read from a URL, cached, and kept fresh by a
//! background refresher.
//!
//! - Verifying reads the cache only (an `Arc` clone under a read lock).
//! - The refresher fetches the set at start, then again when the response's
//!   `Cache-Control: max-age` runs out ([`KeySet::DEFAULT_MAX_AGE`] when it
//!   says nothing; clamped to [`KeySet::MIN_MAX_AGE`]..[`KeySet::MAX_MAX_AGE`]).
//!   A failed fetch keeps the cached keys and is retried with backoff
//!   (1 s doubling to 30 s).
//! - A token whose key is not cached (unknown `kid`, or no set yet) may ask
//!   for a fetch now: at most one per [`KeySet::MISS_INTERVAL`], and misses
//!   that come while a fetch runs wait for that fetch rather than start
//!   another.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

use crate::KeyError;

mod fetch;
mod keys;

use fetch::{Fetcher, Source};
pub use keys::{Jwks, JwksError};

/// A JWK Set: the keys that verify one role's tokens, from a URL.
///
/// Cloning shares the set. Nothing is fetched until the future of
/// [`refresher`](Self::refresher) runs (spawn it on the runtime).
#[derive(Clone)]
pub struct KeySet {
    /// The state, shared with clones and (weakly) with the refresher.
    shared: Arc<Shared>,
}

struct Shared {
    /// Where the set is read from; `None`: fixed keys, never fetched.
    source: Option<Source>,
    /// The keys in use; `None` until a fetch succeeds. Readers clone the
    /// `Arc` and let go of the lock at once.
    keys: RwLock<Option<Arc<Jwks>>>,
    /// Fetch bookkeeping, shared by the refresher and by misses.
    fetch: Mutex<FetchState>,
    /// Wakes the refresher when a miss wants a fetch now. Its own `Arc`:
    /// the refresher waits on it without keeping the set alive.
    wake: Arc<Notify>,
    /// How many fetch attempts have finished: misses and start-up wait for
    /// it to move.
    attempts: watch::Sender<u64>,
    /// The intervals (the constants of [`KeySet`], shorter in tests).
    timing: Timing,
}

/// What the refresher and misses agree on, under one lock.
#[derive(Debug, Default)]
struct FetchState {
    /// A refresher runs: misses only ask for fetches when one does.
    refresher: bool,
    /// A fetch runs or has been asked for: a miss waits for it.
    in_flight: bool,
    /// When the latest fetch started or was asked for: a miss asks for
    /// another only [`Timing::miss_interval`] later.
    last_started: Option<Instant>,
}

/// The intervals a key set keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// Least time between the starts of fetches that misses ask for.
    pub(crate) miss_interval: Duration,
    /// Freshness of a response that does not state its own.
    pub(crate) default_max_age: Duration,
    /// The shortest freshness honoured: a provider cannot make the hub
    /// fetch more often.
    pub(crate) min_max_age: Duration,
    /// The longest freshness honoured: removed keys leave within it.
    pub(crate) max_max_age: Duration,
    /// The first retry delay after a failure; doubles after each failure.
    pub(crate) first_backoff: Duration,
    /// The longest retry delay: a provider that comes back is found soon.
    pub(crate) max_backoff: Duration,
}

impl Timing {
    const PRODUCTION: Self = Self {
        miss_interval: KeySet::MISS_INTERVAL,
        default_max_age: KeySet::DEFAULT_MAX_AGE,
        min_max_age: KeySet::MIN_MAX_AGE,
        max_max_age: KeySet::MAX_MAX_AGE,
        first_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(30),
    };
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("source", &self.shared.source.as_ref().map(Source::describe))
            .field("keys", &self.current().map(|k| k.len()))
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl KeySet {
    /// Least time between fetches asked for by tokens whose key is not in
    /// the cache.
    pub const MISS_INTERVAL: Duration = Duration::from_secs(10);
    /// How long a set stays fresh when its response does not say
    /// (`Cache-Control: max-age`), and for files.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
    /// The shortest freshness honoured (also for `no-cache`, `no-store`).
    pub const MIN_MAX_AGE: Duration = Duration::from_secs(30);
    /// The longest freshness honoured.
    pub const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

    /// A key set read from `url`: `https://…`, `http://…` or
    /// `file:///path`. Nothing is fetched yet.
    pub fn new(url: &str) -> Result<Self, KeyError> {
        Self::with_timing(url, Timing::PRODUCTION)
    }

    pub(crate) fn with_timing(url: &str, timing: Timing) -> Result<Self, KeyError> {
        let source = Source::parse(url).map_err(|reason| KeyError::KeySetUrl {
            url: url.to_owned(),
            reason,
        })?;
        Ok(Self::build(Some(source), None, timing))
    }

    /// A key set that holds `keys` for good (never fetched).
    pub fn fixed(keys: Jwks) -> Self {
        Self::build(None, Some(Arc::new(keys)), Timing::PRODUCTION)
    }

    fn build(source: Option<Source>, keys: Option<Arc<Jwks>>, timing: Timing) -> Self {
        Self {
            shared: Arc::new(Shared {
                source,
                keys: RwLock::new(keys),
                fetch: Mutex::new(FetchState::default()),
                wake: Arc::new(Notify::new()),
                attempts: watch::Sender::new(0),
                timing,
            }),
        }
    }

    /// Where the set comes from, fit for logs (no user, password or
    /// query); `None` for a fixed set.
    pub fn source(&self) -> Option<String> {
        self.shared.source.as_ref().map(Source::describe)
    }

    /// The keys in use; `None` until the set has been fetched once.
    pub fn current(&self) -> Option<Arc<Jwks>> {
        self.shared
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until the first fetch has finished (or `limit` passed);
    /// whether the set is usable.
    pub async fn wait_first_fetch(&self, limit: Duration) -> bool {
        if self.shared.source.is_some() {
            let mut attempts = self.shared.attempts.subscribe();
            let _ = tokio::time::timeout(limit, attempts.wait_for(|n| *n > 0)).await;
        }
        self.current().is_some()
    }

    /// The background work that keeps the set fresh: spawn it once on the
    /// runtime. It ends at its next wake-up after every clone of the set
    /// has been dropped (and at once for a fixed set).
    pub fn refresher(&self) -> impl Future<Output = ()> + Send + 'static {
        let weak = Arc::downgrade(&self.shared);
        let source = self.shared.source.clone();
        let timing = self.shared.timing;
        let wake = Arc::clone(&self.shared.wake);
        async move {
            let Some(source) = source else { return };
            let described = source.describe();
            if source.is_plain_remote() {
                tracing::warn!(
                    source = %described,
                    "the key set is fetched over plain http:// from another host: anyone on the path can replace it; use https://"
                );
            }
            let fetcher = Fetcher::new(source);
            if let Some(shared) = weak.upgrade() {
                lock(&shared.fetch).refresher = true;
            }
            let mut refresh = Refresh {
                described,
                timing,
                backoff: timing.first_backoff,
                last_body: None,
            };
            loop {
                let Some(shared) = weak.upgrade() else { return };
                {
                    let mut state = lock(&shared.fetch);
                    state.in_flight = true;
                    state.last_started = Some(Instant::now());
                }
                let fetched = match &fetcher {
                    Ok(fetcher) => fetcher.fetch().await,
                    Err(err) => Err(err.clone()),
                };
                let wait = refresh.take(&shared, fetched);
                {
                    let mut state = lock(&shared.fetch);
                    state.in_flight = false;
                    shared.attempts.send_modify(|n| *n += 1);
                }
                drop(shared);
                let _ = tokio::time::timeout(wait, wake.notified()).await;
            }
        }
    }

    /// Asks for a fetch because a token's key is not in the cache, and
    /// waits for it. `false` (at once) when a miss already asked within
    /// [`MISS_INTERVAL`](Self::MISS_INTERVAL) and no fetch runs, or when
    /// nothing refreshes this set; `true` once a fetch has finished.
    pub(crate) async fn refetch_after_miss(&self) -> bool {
        let shared = &self.shared;
        let mut finished = {
            let mut state = lock(&shared.fetch);
            if !state.refresher {
                return false;
            }
            if !state.in_flight {
                if state
                    .last_started
                    .is_some_and(|t| t.elapsed() < shared.timing.miss_interval)
                {
                    return false;
                }
                tracing::debug!("a token names a key that is not cached: fetching the key set");
                state.in_flight = true;
                state.last_started = Some(Instant::now());
                shared.wake.notify_one();
            }
            // Under the lock, so that the end of the fetch cannot slip in
            // between: the refresher counts it under the same lock.
            shared.attempts.subscribe()
        };
        let wait = fetch::TIMEOUT + Duration::from_secs(1);
        matches!(
            tokio::time::timeout(wait, finished.changed()).await,
            Ok(Ok(()))
        )
    }
}

/// The refresher's memory between fetches.
struct Refresh {
    /// The source, for logs.
    described: String,
    /// The intervals.
    timing: Timing,
    /// The next retry delay after a failure.
    backoff: Duration,
    /// The last document taken, to log changes only.
    last_body: Option<Vec<u8>>,
}

impl Refresh {
    /// Takes the outcome of a fetch: installs the keys or logs why not;
    /// returns how long to wait before the next fetch.
    fn take(&mut self, shared: &Shared, fetched: Result<fetch::Fetched, String>) -> Duration {
        let parsed = fetched.and_then(|fetched| {
            Jwks::parse(&fetched.body)
                .map(|keys| (keys, fetched))
                .map_err(|e| e.to_string())
        });
        match parsed {
            Ok((keys, fetched)) => {
                self.backoff = self.timing.first_backoff;
                let fresh_for = fetched
                    .max_age
                    .unwrap_or(self.timing.default_max_age)
                    .clamp(self.timing.min_max_age, self.timing.max_max_age);
                if self.last_body.as_deref() == Some(fetched.body.as_slice()) {
                    tracing::debug!(source = %self.described, ?fresh_for, "key set unchanged");
                } else {
                    let kids: Vec<&str> =
                        keys.kids().into_iter().map(|k| k.unwrap_or("-")).collect();
                    tracing::info!(
                        source = %self.described,
                        keys = ?kids,
                        ?fresh_for,
                        "key set fetched"
                    );
                    for skipped in keys.skipped() {
                        tracing::warn!(source = %self.described, "key set entry left out: {skipped}");
                    }
                    self.last_body = Some(fetched.body);
                }
                *shared.keys.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(keys));
                fresh_for
            }
            Err(error) => {
                let retry_in = self.backoff;
                self.backoff = (self.backoff * 2).min(self.timing.max_backoff);
                let has_keys = shared
                    .keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some();
                if has_keys {
                    tracing::warn!(
                        source = %self.described,
                        %error,
                        ?retry_in,
                        "cannot refresh the key set: the keys fetched before stay in use"
                    );
                } else {
                    tracing::error!(
                        source = %self.described,
                        %error,
                        ?retry_in,
                        "cannot fetch the key set: the tokens it should verify are refused (401) until it can be fetched"
                    );
                }
                retry_in
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    //! The refresh rules with short intervals, against a key set server on
    //! loopback. `tests/jwks.rs` at the workspace root runs the real ones
    //! against the real hub.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;
    use crate::{TokenError, Verifier};

    const FAST: Timing = Timing {
        miss_interval: Duration::from_millis(1000),
        default_max_age: Duration::from_secs(300),
        min_max_age: Duration::from_millis(100),
        max_max_age: Duration::from_secs(3600),
        first_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
    };

    fn signing(name: &str) -> EncodingKey {
        let pem =
            std::fs::read(format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        match name {
            "ed.key" => EncodingKey::from_ed_pem(&pem).unwrap(),
            _ => EncodingKey::from_ec_pem(&pem).unwrap(),
        }
    }

    /// A set of the Ed25519 test key under each of `kids`.
    fn set(kids: &[&str]) -> String {
        let keys: Vec<serde_json::Value> = kids
            .iter()
            .map(|kid| {
                let mut jwk = Jwk::from_encoding_key(&signing("ed.key"), Algorithm::EdDSA).unwrap();
                jwk.common.key_id = Some((*kid).to_owned());
                serde_json::to_value(jwk).unwrap()
            })
            .collect();
        serde_json::json!({ "keys": keys }).to_string()
    }

    fn token(kid: &str) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(
            &header,
            &serde_json::json!({ "mercure": { "publish": ["*"] } }),
            &signing("ed.key"),
        )
        .unwrap()
    }

    /// What the test server answers, and how often it was asked.
    struct Served {
        body: Mutex<String>,
        cache_control: &'static str,
        delay: Duration,
        hits: AtomicUsize,
    }

    /// Serves `served` on `listener`, one request per connection.
    async fn serve(listener: TcpListener, served: Arc<Served>) {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let served = Arc::clone(&served);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                served.hits.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(served.delay).await;
                let body = served.body.lock().unwrap().clone();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    served.cache_control,
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    }

    async fn server(
        kids: &[&str],
        cache_control: &'static str,
        delay: Duration,
    ) -> (String, Arc<Served>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let served = Arc::new(Served {
            body: Mutex::new(set(kids)),
            cache_control,
            delay,
            hits: AtomicUsize::new(0),
        });
        tokio::spawn(serve(listener, Arc::clone(&served)));
        (url, served)
    }

    async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn refreshes_when_max_age_runs_out() {
        let (url, served) = server(&["a"], "public, max-age=1", Duration::ZERO).await;
        let keys = KeySet::with_timing(&url, FAST).unwrap();
        let refresher = tokio::spawn(keys.refresher());
        assert!(keys.wait_first_fetch(Duration::from_secs(5)).await);
        let started = Instant::now();
        *served.body.lock().unwrap() = set(&["b"]);
        eventually("the set refreshed by itself", || {
            keys.current().unwrap().kids() == vec![Some("b")]
        })
        .await;
        // After one second (max-age=1), not before, and with no miss.
        assert!(
            started.elapsed() >= Duration::from_millis(800),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(served.hits.load(Ordering::SeqCst), 2);
        refresher.abort();
    }

    #[tokio::test]
    async fn misses_are_rate_limited_and_share_one_fetch() {
        let (url, served) = server(&["a"], "max-age=3600", Duration::from_millis(300)).await;
        let keys = KeySet::with_timing(&url, FAST).unwrap();
        let verifier = Verifier::with_key_set(keys.clone(), None, Duration::ZERO).unwrap();
        let refresher = tokio::spawn(keys.refresher());
        assert!(keys.wait_first_fetch(Duration::from_secs(5)).await);
        let r = verifier.verify(&token("a"));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(served.hits.load(Ordering::SeqCst), 1);
        *served.body.lock().unwrap() = set(&["a", "new"]);

        // Within the interval: refused at once, nothing fetched.
        let started = Instant::now();
        for i in 0..20 {
            assert_eq!(
                verifier.verify_or_refetch(&token(&format!("bad{i}"))).await,
                Err(TokenError::UnknownKey)
            );
        }
        assert!(started.elapsed() < Duration::from_millis(200));
        assert_eq!(served.hits.load(Ordering::SeqCst), 1);

        // After it: concurrent misses share one fetch, and the new key works.
        tokio::time::sleep(FAST.miss_interval).await;
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let verifier = verifier.clone();
                let kid = if i % 2 == 0 {
                    "new".to_owned()
                } else {
                    format!("bad{i}")
                };
                tokio::spawn(async move { (i, verifier.verify_or_refetch(&token(&kid)).await) })
            })
            .collect();
        for task in tasks {
            let (i, result) = task.await.unwrap();
            if i % 2 == 0 {
                assert!(result.is_ok(), "{result:?}");
            } else {
                assert_eq!(result, Err(TokenError::UnknownKey));
            }
        }
        assert_eq!(served.hits.load(Ordering::SeqCst), 2);
        for i in 0..10 {
            let _ = verifier
                .verify_or_refetch(&token(&format!("more{i}")))
                .await;
        }
        assert_eq!(served.hits.load(Ordering::SeqCst), 2);
        refresher.abort();
    }

    #[tokio::test]
    async fn fetch_errors_do_not_show_the_url() {
        let spare = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = spare.local_addr().unwrap();
        drop(spare);
        let source = Source::parse(&format!("http://user:pw@{addr}/certs?secret=s3")).unwrap();
        let error = Fetcher::new(source).unwrap().fetch().await.unwrap_err();
        assert!(!error.contains("s3") && !error.contains("pw"), "{error}");
        assert!(error.to_lowercase().contains("connect"), "{error}");
    }

    #[tokio::test]
    async fn an_unavailable_set_is_retried_until_it_comes() {
        let spare = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = spare.local_addr().unwrap();
        drop(spare);
        let url = format!("http://{addr}/jwks.json");
        let keys = KeySet::with_timing(&url, FAST).unwrap();
        let verifier = Verifier::with_key_set(keys.clone(), None, Duration::ZERO).unwrap();
        let refresher = tokio::spawn(keys.refresher());
        assert!(!keys.wait_first_fetch(Duration::from_secs(5)).await);
        assert_eq!(
            verifier.verify(&token("a")),
            Err(TokenError::KeySetUnavailable)
        );
        // Nothing listens: the fetch that the miss waits for fails too.
        assert_eq!(
            verifier.verify_or_refetch(&token("a")).await,
            Err(TokenError::KeySetUnavailable)
        );
        let listener = TcpListener::bind(addr).await.unwrap();
        let served = Arc::new(Served {
            body: Mutex::new(set(&["a"])),
            cache_control: "max-age=3600",
            delay: Duration::ZERO,
            hits: AtomicUsize::new(0),
        });
        tokio::spawn(serve(listener, Arc::clone(&served)));
        eventually("the set fetched after the server came", || {
            keys.current().is_some()
        })
        .await;
        let r = verifier.verify(&token("a"));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(served.hits.load(Ordering::SeqCst), 1);
        refresher.abort();
    }
}
