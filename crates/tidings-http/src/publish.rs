//! `POST /.well-known/mercure` (and `/publish`): form or JSON updates in,
//! their ids out.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Deserialize;
use serde_json::value::RawValue;
use tidings_core::Update;

use crate::auth;
use crate::error::AppError;
use crate::form;
use crate::state::AppState;

/// The publish endpoint.
pub(crate) async fn handler(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, AppError> {
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let client = state.client(peer, &parts.headers);
    // Who is asking, before reading what they send.
    let grant = match state.config().auth.publisher(&parts, client).await {
        Ok(grant) => grant,
        Err(err) => {
            if let Some(client) = client {
                tracing::debug!(%client, status = %err.status, "publish refused");
            }
            return Err(auth::brake(state.brake(), client, err).await);
        }
    };
    let kind = body_kind(&parts.headers)?;
    let bytes = read_body(body, &parts.headers, state.config().max_body).await?;
    let updates = match kind {
        BodyKind::Form => vec![parse_form(&bytes)?],
        BodyKind::Json => parse_json(&bytes)?,
    };
    if updates.is_empty() {
        return Err(AppError::bad_request("the batch holds no update"));
    }
    let topics: Vec<&str> = updates
        .iter()
        .flat_map(|u| u.topics.iter().map(String::as_str))
        .collect();
    grant.check(&topics)?;
    let published = state.hub().publish(updates).await?;
    let mut ids = String::new();
    for (i, p) in published.iter().enumerate() {
        if i > 0 {
            ids.push('\n');
        }
        ids.push_str(&p.id);
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        ids,
    )
        .into_response())
}

/// Parses a publish body as the endpoint does, form (`json == false`) or
/// JSON: the updates it holds, or the error (a 400) it is refused with.
/// For the fuzz target (`fuzz/fuzz_targets/publish.rs`) and the corpus
/// test (`tests/publish_corpus.rs`), which run the parsers on their own.
#[doc(hidden)]
pub fn parse_body(body: &[u8], json: bool) -> Result<Vec<Update>, AppError> {
    if json {
        parse_json(body)
    } else {
        parse_form(body).map(|update| vec![update])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    Form,
    Json,
}

fn body_kind(headers: &HeaderMap) -> Result<BodyKind, AppError> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let essence = raw
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        "application/json" => Ok(BodyKind::Json),
        _ => Err(AppError::unsupported_media_type(&raw)),
    }
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, AppError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(AppError::too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(AppError::too_large(limit))
        }
        Err(err) => Err(AppError::bad_request(format!(
            "could not read the request body: {err}"
        ))),
    }
}

/// One update from Mercure's form encoding: `topic` (repeated), `data`,
/// `type`, `id`, `retry`, `private` (present means private), and Tidings'
/// `retain` (present means retained, like `private`); other fields are
/// ignored.
///
/// As in the Mercure hub, which reads them with Go's `PostForm.Get`: the
/// single-valued fields (`data`, `type`, `id`, `retry`) count in their
/// first occurrence, later ones are ignored; an empty `type`, `id` or
/// `retry` counts as absent.
fn parse_form(body: &[u8]) -> Result<Update, AppError> {
    let mut update = Update::default();
    let mut data = None;
    let mut event_type = None;
    let mut id = None;
    let mut retry = None;
    for pair in form::pairs(body) {
        let (name, value) = pair.map_err(AppError::bad_request)?;
        let first = match name.as_str() {
            "topic" => {
                update.topics.push(value);
                continue;
            }
            "private" => {
                update.private = true;
                continue;
            }
            "retain" => {
                update.retain = true;
                continue;
            }
            "data" => &mut data,
            "type" => &mut event_type,
            "id" => &mut id,
            "retry" => &mut retry,
            _ => continue,
        };
        if first.is_none() {
            *first = Some(value);
        }
    }
    update.data = data.unwrap_or_default();
    update.event_type = event_type.filter(|v| !v.is_empty());
    update.id = id.filter(|v| !v.is_empty());
    update.retry = match retry.filter(|v| !v.is_empty()) {
        Some(value) => Some(parse_retry(&value)?),
        None => None,
    };
    require_topic(&update)?;
    Ok(update)
}

fn parse_retry(value: &str) -> Result<u64, AppError> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::bad_request(format!(
            "retry must be a whole number of milliseconds, got {value:?}"
        )));
    }
    value
        .parse()
        .map_err(|_| AppError::bad_request(format!("retry {value:?} is too large")))
}

fn require_topic(update: &Update) -> Result<(), AppError> {
    if update.topics.is_empty() {
        return Err(AppError::bad_request(
            "missing topic: an update needs at least one topic",
        ));
    }
    Ok(())
}

/// One update in JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonUpdate {
    /// One topic or a list, canonical first.
    #[serde(default, deserialize_with = "one_or_many")]
    topic: Vec<String>,
    /// A string is sent as is; any other JSON value as compact JSON.
    #[serde(default)]
    data: Option<Box<RawValue>>,
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    private: bool,
    /// Keep it as the retained update of its topics (empty data clears).
    #[serde(default)]
    retain: bool,
    #[serde(default)]
    retry: Option<u64>,
}

/// How deep arrays and objects may nest in a JSON body, wherever they are:
/// serde_json's own limit, which refuses the 128th level. `data` is kept
/// as a raw value, which serde_json skips without that limit, so the body
/// is measured before it is parsed.
const MAX_JSON_DEPTH: usize = 127;

/// A JSON object, or an array of them for a batch (all or nothing).
fn parse_json(body: &[u8]) -> Result<Vec<Update>, AppError> {
    check_depth(body, MAX_JSON_DEPTH)?;
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let parsed: Vec<JsonUpdate> = match first {
        Some(b'[') => serde_json::from_slice(body),
        Some(b'{') => serde_json::from_slice(body).map(|u| vec![u]),
        _ => {
            return Err(AppError::bad_request(
                "the JSON body must be an update object or an array of them",
            ));
        }
    }
    .map_err(|e| AppError::bad_request(format!("invalid JSON update: {e}")))?;
    parsed
        .into_iter()
        .enumerate()
        .map(|(i, json)| {
            let update = Update {
                topics: json.topic,
                data: json.data.map(|raw| json_data(&raw)).unwrap_or_default(),
                event_type: json.event_type.filter(|t| !t.is_empty()),
                id: json.id.filter(|id| !id.is_empty()),
                retry: json.retry,
                private: json.private,
                retain: json.retain,
            };
            require_topic(&update)
                .map_err(|e| AppError::bad_request(format!("update {i}: {}", e.message)))?;
            Ok(update)
        })
        .collect()
}

/// Refuses a body whose arrays and objects nest more than `max` levels,
/// in one pass without recursion (so no input can exhaust the stack),
/// skipping brackets inside strings. Text that is not JSON is left for
/// the parser to refuse.
fn check_depth(body: &[u8], max: usize) -> Result<(), AppError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (at, &b) in body.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(AppError::bad_request(format!(
                        "invalid JSON update: arrays and objects nest more than {max} levels \
                         deep (at byte {at}); the limit holds inside `data` too"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A JSON string's text, or any other value as compact JSON.
fn json_data(raw: &RawValue) -> String {
    if let Ok(text) = serde_json::from_str::<String>(raw.get()) {
        return text;
    }
    compact_json(raw.get())
}

/// Removes the insignificant whitespace of valid JSON, keeping everything
/// else byte for byte (so numbers keep their exact digits).
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a topic string or an array of topic strings")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(vec![v.to_owned()])
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut topics = Vec::new();
            while let Some(topic) = seq.next_element::<String>()? {
                topics.push(topic);
            }
            Ok(topics)
        }
    }
    deserializer.deserialize_any(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields() {
        let u = parse_form(b"topic=a&topic=https%3A%2F%2Fx%2Fb&data=hello+world%0Aline&type=t&id=&private=on&retry=5").unwrap();
        assert_eq!(u.topics, ["a", "https://x/b"]);
        assert_eq!(u.data, "hello world\nline");
        assert_eq!(u.event_type.as_deref(), Some("t"));
        assert_eq!(u.id, None);
        assert!(u.private);
        assert!(!u.retain);
        assert_eq!(u.retry, Some(5));
        assert!(parse_form(b"topic=a&retain").unwrap().retain);
        assert!(
            parse_form(b"topic=a&retain=0").unwrap().retain,
            "present means on"
        );
        assert!(parse_form(b"data=x").is_err());
        assert!(parse_form(b"topic=a&retry=-1").is_err());
        assert!(
            parse_form(b"topic=a&data=%FF").is_err(),
            "invalid UTF-8 is refused"
        );
    }

    /// As in the Mercure hub: the first `data`, `type`, `id` and `retry`
    /// count, and an empty `retry` is no retry.
    #[test]
    fn form_fields_as_mercure_reads_them() {
        let u = parse_form(b"topic=a&retry=").unwrap();
        assert_eq!(u.retry, None);
        let u = parse_form(b"topic=a&data=first&data=second&topic=b").unwrap();
        assert_eq!(u.data, "first");
        assert_eq!(u.topics, ["a", "b"]);
        let u = parse_form(b"topic=a&data=&data=second").unwrap();
        assert_eq!(u.data, "", "an empty first data is the data");
        let u = parse_form(b"topic=a&type=t1&type=t2&id=i1&id=i2&retry=5&retry=x").unwrap();
        assert_eq!(u.event_type.as_deref(), Some("t1"));
        assert_eq!(u.id.as_deref(), Some("i1"));
        assert_eq!(u.retry, Some(5), "a later retry is not even read");
        let u = parse_form(b"topic=a&id=&id=i2&retry=&retry=7").unwrap();
        assert_eq!(u.id, None, "an empty first id is no id");
        assert_eq!(u.retry, None, "an empty first retry is no retry");
        let err = parse_form(b"topic=a&retry=x&retry=5").unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("retry"), "{}", err.message);
    }

    /// `depth` levels of `open`…`close`, with a value inside objects.
    fn nested(open: &str, depth: usize, close: &str) -> String {
        let inner = if open.ends_with(':') { "1" } else { "" };
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn deeply_nested_data_is_refused_like_deep_bodies() {
        // 100,000 levels inside `data`: serde_json skips a raw value
        // without its depth limit, so this used to be accepted.
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let deep = format!(r#"{{"topic":"a","data":{}}}"#, nested(open, 100_000, close));
            // serde_json alone takes it: it skips a raw value without its
            // depth limit.
            assert!(serde_json::from_str::<JsonUpdate>(&deep).is_ok());
            let err = parse_json(deep.as_bytes()).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(
                err.message.contains("nest more than 127"),
                "{}",
                err.message
            );
        }
        // The same nesting around the update, and in a batch.
        let top = nested("[", 100_000, "]");
        let err = parse_json(top.as_bytes()).unwrap_err();
        assert!(
            err.message.contains("nest more than 127"),
            "{}",
            err.message
        );
        let batch = format!(
            r#"[{{"topic":"a"}},{{"topic":"b","data":{}}}]"#,
            nested("[", 200, "]")
        );
        assert!(parse_json(batch.as_bytes()).is_err());
        // An unclosed deep body is refused by the scan too, before parsing.
        assert!(parse_json("[".repeat(1_000_000).as_bytes()).is_err());
    }

    #[test]
    fn nesting_up_to_the_limit_is_kept() {
        // The limit is serde_json's own.
        let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).is_ok();
        assert!(parse(&nested("[", MAX_JSON_DEPTH, "]")));
        assert!(!parse(&nested("[", MAX_JSON_DEPTH + 1, "]")));
        // The update object is level 1: 126 more levels of data is 127.
        let ok = format!(r#"{{"topic":"a","data":{}}}"#, nested("[", 126, "]"));
        let updates = parse_json(ok.as_bytes()).unwrap();
        assert_eq!(updates[0].data, nested("[", 126, "]"));
        let over = format!(r#"{{"topic":"a","data":{}}}"#, nested("[", 127, "]"));
        assert!(parse_json(over.as_bytes()).is_err());
        // In a batch the array is level 1 and the update level 2.
        let batch = format!(
            r#"[{{"topic":"a","data":{}}}]"#,
            nested("{\"k\":", 125, "}")
        );
        assert_eq!(parse_json(batch.as_bytes()).unwrap().len(), 1);
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        let text = format!(r#"{{"topic":"a","data":"\"{}"}}"#, "[".repeat(10_000));
        let updates = parse_json(text.as_bytes()).unwrap();
        assert_eq!(updates[0].data, format!("\"{}", "[".repeat(10_000)));
        let keys = format!(r#"{{"topic":"a","data":{{"{}\\":[1]}}}}"#, "{".repeat(500));
        let updates = parse_json(keys.as_bytes()).unwrap();
        assert_eq!(
            updates[0].data,
            format!(r#"{{"{}\\":[1]}}"#, "{".repeat(500))
        );
        assert!(check_depth(br#""\"[[[""#, 1).is_ok());
        assert!(check_depth(b"[[", 1).is_err());
    }

    #[test]
    fn json_bodies() {
        let one =
            parse_json(br#"{"topic":"a","data":{"x": [1, 2.50, "s p"]},"private":true}"#).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].data, r#"{"x":[1,2.50,"s p"]}"#);
        assert!(one[0].private);
        let many = parse_json(
            br#"[{"topic":["a","b"],"data":"text"},{"topic":"c","type":"t","id":"i","retry":9}]"#,
        )
        .unwrap();
        assert_eq!(many[0].topics, ["a", "b"]);
        assert_eq!(many[0].data, "text");
        assert_eq!(many[1].event_type.as_deref(), Some("t"));
        assert_eq!(many[1].retry, Some(9));
        assert!(!many[1].retain);
        let kept = parse_json(br#"{"topic":"a","data":"x","retain":true}"#).unwrap();
        assert!(kept[0].retain);
        assert!(parse_json(br#"{"topic":"a","retain":"yes"}"#).is_err());
        assert!(parse_json(br#"{"data":"x"}"#).is_err());
        assert!(parse_json(br#"{"topic":"a","topics":"b"}"#).is_err());
        assert!(parse_json(b"42").is_err());
        assert!(parse_json(br#"{"topic":5}"#).is_err());
    }

    #[test]
    fn compaction_keeps_strings() {
        assert_eq!(
            compact_json("{ \"a b\" : [ 1 , \"\\\" x\" ] }"),
            "{\"a b\":[1,\"\\\" x\"]}"
        );
    }
}
