//! Durability of the real hub on its default, durable store: SIGKILL at
//! random moments under concurrent publishing, clean restarts, ids and
//! idempotency across restarts, and the errors a hub gives at start-up
//! when it cannot have its history.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use support::{HUB, TempDir, TestHub, WAIT, encode, refused_to_serve};
use tidings_codec::MessageEvent;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A tiny deterministic generator: the seed is in every failure message.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Self(nanos | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A keep-alive HTTP/1.1 publisher that reports a dead hub as an error
/// instead of failing the test.
struct Publisher {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Publisher {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            conn: None,
            buf: Vec::new(),
        }
    }

    /// Posts a form; returns the status and body.
    async fn post(&mut self, form: &str) -> std::io::Result<(u16, String)> {
        if self.conn.is_none() {
            self.conn = Some(TcpStream::connect(self.addr).await?);
            self.buf.clear();
        }
        let conn = self.conn.as_mut().unwrap();
        let request = format!(
            "POST {HUB} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            self.addr,
            form.len()
        );
        conn.write_all(request.as_bytes()).await?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let parsed = response
                .parse(&self.buf)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            if let httparse::Status::Complete(head) = parsed {
                let length: usize = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                    .ok_or_else(|| std::io::Error::other("no content-length"))?;
                if self.buf.len() >= head + length {
                    let status = response.code.unwrap_or(0);
                    let body = String::from_utf8_lossy(&self.buf[head..head + length]).into_owned();
                    self.buf.drain(..head + length);
                    return Ok((status, body));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, conn.read(&mut chunk))
                .await
                .map_err(|_| std::io::Error::other("no response in time"))??;
            if n == 0 {
                self.conn = None;
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Publishers that give their own ids: every other one.
fn own_ids(publisher: usize) -> bool {
    publisher % 2 == 1
}

/// The data of publisher `p`'s `n`th update in round `r`: two lines (the
/// frame gets two `data:` fields), about 100 bytes.
fn data_of(r: usize, p: usize, n: u64) -> String {
    let head = format!("r{r} p{p} n{n}");
    let filler = "abcdefghijklmnopqrstuvwxyz".repeat(4);
    format!("{head}\n{}", &filler[..100 - head.len()])
}

fn parse_data(data: &str) -> Option<(usize, usize, u64)> {
    let head = data.split('\n').next()?;
    let mut parts = head.split(' ');
    let r = parts.next()?.strip_prefix('r')?.parse().ok()?;
    let p = parts.next()?.strip_prefix('p')?.parse().ok()?;
    let n = parts.next()?.strip_prefix('n')?.parse().ok()?;
    Some((r, p, n))
}

fn own_id_of(r: usize, p: usize, n: u64) -> String {
    format!("r{r}-p{p}-n{n}")
}

fn hub_seq(id: &str) -> Option<u64> {
    id.strip_prefix("urn:tidings:")?.parse().ok()
}

/// One acknowledged publish.
#[derive(Debug, Clone)]
struct Acked {
    round: usize,
    publisher: usize,
    n: u64,
    id: String,
    /// The global tick when it was sent, and when its 200 came back: an
    /// event acknowledged before another was sent must come first.
    sent_tick: u64,
    acked_tick: u64,
}

/// Publishes as publisher `p` until the hub dies or `stop` is set;
/// returns what was acknowledged, in order.
async fn publish_until_dead(
    addr: SocketAddr,
    round: usize,
    p: usize,
    stop: Arc<AtomicBool>,
    clock: Arc<AtomicU64>,
) -> Vec<Acked> {
    let mut publisher = Publisher::new(addr);
    let mut acked = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let data = data_of(round, p, n);
        let mut form = format!("topic={}&data={}", encode(&format!("t/{p}")), encode(&data));
        if own_ids(p) {
            form.push_str(&format!("&id={}", encode(&own_id_of(round, p, n))));
        }
        let sent_tick = clock.fetch_add(1, Ordering::SeqCst);
        match publisher.post(&form).await {
            Ok((200, id)) => {
                let acked_tick = clock.fetch_add(1, Ordering::SeqCst);
                acked.push(Acked {
                    round,
                    publisher: p,
                    n,
                    id,
                    sent_tick,
                    acked_tick,
                });
                n += 1;
            }
            Ok((status, body)) => panic!("publish refused: {status} {body}"),
            Err(_) => break,
        }
    }
    acked
}

/// The value of `field` in the hub's "history opened" log line.
fn opened_field(hub: &TestHub, field: &str) -> serde_json::Value {
    let log = hub.log.lock().unwrap();
    log.iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|v| v["fields"]["message"] == "history opened")
        .map(|v| v["fields"][field].clone())
        .unwrap_or_else(|| panic!("no \"history opened\" line in {log:?}"))
}

/// Every event of the history, read through a subscription resumed from
/// `earliest`, up to a sentinel published after subscribing.
async fn whole_history(hub: &TestHub) -> Vec<MessageEvent> {
    let target = format!("{HUB}?topic=*");
    let mut stream = hub
        .subscribe(&target, &[("Last-Event-ID", "earliest")])
        .await;
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("last-event-id"), Some("earliest"));
    hub.publish("sentinel", "end").await;
    let mut events = Vec::new();
    loop {
        let event = stream.next_event().await.expect("stream ended");
        if event.data == "end" {
            return events;
        }
        events.push(event);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill() {
    const ROUNDS: usize = 4;
    const PUBLISHERS: usize = 8;
    let mut rng = Rng::new();
    let seed = rng.0;
    let dir = TempDir::new();
    let clock = Arc::new(AtomicU64::new(0));
    let mut acked: Vec<Acked> = Vec::new();
    let mut last_hub_seq = 0u64;
    for round in 0..ROUNDS {
        let mut hub = TestHub::start_in(dir.path(), &[]).await;
        if round > 0 {
            assert_eq!(
                opened_field(&hub, "repaired"),
                true,
                "seed {seed}: a killed hub's file is repaired on opening, not refused"
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                tokio::spawn(publish_until_dead(
                    hub.addr,
                    round,
                    p,
                    Arc::clone(&stop),
                    Arc::clone(&clock),
                ))
            })
            .collect();
        let delay = 200 + rng.below(1000);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        hub.child.kill().await.unwrap();
        stop.store(true, Ordering::Relaxed);
        let mut this_round = Vec::new();
        for task in tasks {
            let got = tokio::time::timeout(WAIT, task)
                .await
                .expect("a publisher hung")
                .unwrap();
            this_round.extend(got);
        }
        assert!(
            !this_round.is_empty(),
            "seed {seed}: round {round} acknowledged nothing in {delay} ms"
        );
        // Hub-made ids keep increasing across restarts.
        let seqs: Vec<u64> = this_round.iter().filter_map(|a| hub_seq(&a.id)).collect();
        let (min, max) = (
            seqs.iter().copied().min().unwrap(),
            seqs.iter().copied().max().unwrap(),
        );
        assert!(
            min > last_hub_seq,
            "seed {seed}: round {round} reused ids: {min} after {last_hub_seq}"
        );
        last_hub_seq = max;
        acked.extend(this_round);
    }

    let hub = TestHub::start_in(dir.path(), &[]).await;
    assert_eq!(opened_field(&hub, "repaired"), true);
    let history = whole_history(&hub).await;

    // Every event in the history is whole: it decodes to exactly what its
    // publisher sent, with the id it was given.
    let mut position: HashMap<(usize, usize, u64), usize> = HashMap::new();
    let mut previous_seq = 0u64;
    for (at, event) in history.iter().enumerate() {
        let (r, p, n) = parse_data(&event.data)
            .unwrap_or_else(|| panic!("seed {seed}: a damaged event {event:?}"));
        assert_eq!(event.data, data_of(r, p, n), "seed {seed}: damaged data");
        assert_eq!(event.event_type, "message");
        if own_ids(p) {
            assert_eq!(event.last_event_id, own_id_of(r, p, n), "seed {seed}");
        } else {
            let seq = hub_seq(&event.last_event_id)
                .unwrap_or_else(|| panic!("seed {seed}: bad id {:?}", event.last_event_id));
            assert!(seq > previous_seq, "seed {seed}: hub ids out of order");
            previous_seq = seq;
        }
        assert!(
            position.insert((r, p, n), at).is_none(),
            "seed {seed}: {event:?} is in the history twice"
        );
    }

    // Every acknowledged event is there, with the id it was acknowledged
    // with; per publisher and round the stored events are exactly
    // 0..count, where count is the acknowledged ones plus at most the one
    // in flight when the hub died.
    let mut acked_count: HashMap<(usize, usize), u64> = HashMap::new();
    for a in &acked {
        let at = position
            .get(&(a.round, a.publisher, a.n))
            .unwrap_or_else(|| {
                panic!("seed {seed}: acknowledged {a:?} is missing after the restart")
            });
        assert_eq!(history[*at].last_event_id, a.id, "seed {seed}");
        *acked_count.entry((a.round, a.publisher)).or_default() += 1;
    }
    let mut stored_count: HashMap<(usize, usize), u64> = HashMap::new();
    for &(r, p, n) in position.keys() {
        let count = stored_count.entry((r, p)).or_default();
        *count = (*count).max(n + 1);
    }
    for (&key, &stored) in &stored_count {
        let acknowledged = acked_count.get(&key).copied().unwrap_or(0);
        assert!(
            stored == acknowledged || stored == acknowledged + 1,
            "seed {seed}: {key:?} stored {stored}, acknowledged {acknowledged}"
        );
        for n in 0..stored {
            assert!(position.contains_key(&(key.0, key.1, n)), "seed {seed}");
        }
    }

    // The order: each publisher's events in the order it sent them, rounds
    // one after the other, and an event acknowledged before another was
    // sent comes before it.
    for window in history.windows(2) {
        let a = parse_data(&window[0].data).unwrap();
        let b = parse_data(&window[1].data).unwrap();
        assert!(a.0 <= b.0, "seed {seed}: round {} after round {}", a.0, b.0);
        if (a.0, a.1) == (b.0, b.1) {
            assert_eq!(a.2 + 1, b.2, "seed {seed}: publisher order");
        }
    }
    let mut by_ack: Vec<&Acked> = acked.iter().collect();
    by_ack.sort_by_key(|a| a.acked_tick);
    let mut latest_position_acked = Vec::with_capacity(by_ack.len());
    let mut latest = 0usize;
    for a in &by_ack {
        latest = latest.max(position[&(a.round, a.publisher, a.n)]);
        latest_position_acked.push(latest);
    }
    for a in &acked {
        let acked_before = by_ack.partition_point(|b| b.acked_tick < a.sent_tick);
        if acked_before > 0 {
            assert!(
                latest_position_acked[acked_before - 1] < position[&(a.round, a.publisher, a.n)],
                "seed {seed}: {a:?} is ordered before an event acknowledged before it was sent"
            );
        }
    }
}

#[tokio::test]
async fn a_clean_restart_resumes_without_gap_or_duplicate() {
    let dir = TempDir::new();
    let mut first = TestHub::start_in(dir.path(), &[]).await;
    assert_eq!(opened_field(&first, "created"), true);
    let one = first.publish("t", "one").await;
    let two = first.publish("t", "two").await;
    let mine = first.publish_form("topic=t&data=mine&id=my-1").await;
    assert_eq!((mine.status, mine.text().as_str()), (200, "my-1"));
    assert!(first.terminate().await.success());

    let second = TestHub::start_in(dir.path(), &[]).await;
    assert_eq!(opened_field(&second, "created"), false);
    assert_eq!(
        opened_field(&second, "repaired"),
        false,
        "a SIGTERM must close the history cleanly"
    );
    assert_eq!(opened_field(&second, "events"), 3);
    let three = second.publish("t", "three").await;
    assert!(hub_seq(&three).unwrap() > hub_seq(&two).unwrap());

    // Resuming from the first run's ids: exactly what followed, once.
    let target = format!("{HUB}?topic=t");
    let mut stream = second.subscribe(&target, &[("Last-Event-ID", &one)]).await;
    assert_eq!(stream.header("last-event-id"), Some(one.as_str()));
    let events = stream.events(3).await;
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.last_event_id.as_str(), e.data.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (two.as_str(), "two"),
            ("my-1", "mine"),
            (three.as_str(), "three")
        ]
    );
    stream.no_event_within(Duration::from_millis(300)).await;
    let mut from_mine = second
        .subscribe(&format!("{target}&lastEventID=my-1"), &[])
        .await;
    assert_eq!(from_mine.header("last-event-id"), Some("my-1"));
    assert_eq!(from_mine.next_event().await.unwrap().data, "three");

    // Publisher ids stay idempotent across the restart: the same update
    // is acknowledged with its id and not delivered again; another one
    // with that id is a conflict.
    let again = second.publish_form("topic=t&data=mine&id=my-1").await;
    assert_eq!((again.status, again.text().as_str()), (200, "my-1"));
    let other = second.publish_form("topic=t&data=other&id=my-1").await;
    assert_eq!(other.status, 409, "{}", other.text());
    second.publish("t", "four").await;
    assert_eq!(stream.next_event().await.unwrap().data, "four");
    assert_eq!(from_mine.next_event().await.unwrap().data, "four");
}

#[tokio::test]
async fn memory_mode_is_volatile_and_durable_is_the_default() {
    let mut volatile = TestHub::start(&["--memory"]).await;
    let id = volatile.publish("t", "gone").await;
    assert!(volatile.terminate().await.success());
    let volatile = TestHub::start(&["--memory"]).await;
    let mut stream = volatile
        .subscribe(&format!("{HUB}?topic=t"), &[("Last-Event-ID", &id)])
        .await;
    assert_eq!(stream.header("last-event-id"), Some("earliest"));
    let gap = stream.next_event().await.unwrap();
    assert_eq!(gap.event_type, "tidings.gap");

    let durable = TestHub::start(&[]).await;
    assert_eq!(opened_field(&durable, "created"), true);
    let file = durable
        .data_dir
        .as_ref()
        .unwrap()
        .path()
        .join("history.redb");
    assert!(file.exists(), "the default store is durable, in --data-dir");
}

#[tokio::test]
async fn start_up_refuses_a_busy_or_damaged_history_with_a_clear_error() {
    let dir = TempDir::new();
    let path = dir.path().to_str().unwrap();
    let hub = TestHub::start_in(dir.path(), &[]).await;
    hub.publish("t", "kept").await;
    let busy = refused_to_serve(&["--data-dir", path], &[]).await;
    assert!(busy.contains("in use by another tidings process"), "{busy}");
    drop(hub);

    let conflict = refused_to_serve(&["--data-dir", path, "--memory"], &[]).await;
    assert!(conflict.contains("--memory"), "{conflict}");

    let damaged_dir = TempDir::new();
    let file = damaged_dir.path().join("history.redb");
    std::fs::write(&file, "not a history").unwrap();
    let damaged =
        refused_to_serve(&["--data-dir", damaged_dir.path().to_str().unwrap()], &[]).await;
    assert!(damaged.contains("is damaged"), "{damaged}");
    assert!(damaged.contains(&file.display().to_string()), "{damaged}");
    assert!(damaged.contains("move the file aside"), "{damaged}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"not a history",
        "left as found"
    );

    // The hub that was killed above left a sound history behind.
    let checked = TestHub::start_in(dir.path(), &["--check-history"]).await;
    assert_eq!(opened_field(&checked, "events"), 1);
}
