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
    // Who is asking, before reading what they send.
    let grant = match state.config().auth.publisher(&parts, peer) {
        Ok(grant) => grant,
        Err(err) => return Err(auth::brake(state.brake(), peer, err).await),
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
/// `retain` (present means retained, like `private`). Empty `type` and
/// `id` count as absent, as in the Mercure hub; other fields are ignored.
fn parse_form(body: &[u8]) -> Result<Update, AppError> {
    let mut update = Update::default();
    for pair in form::pairs(body) {
        let (name, value) = pair.map_err(AppError::bad_request)?;
        match name.as_str() {
            "topic" => update.topics.push(value),
            "data" => update.data = value,
            "type" => update.event_type = Some(value).filter(|v| !v.is_empty()),
            "id" => update.id = Some(value).filter(|v| !v.is_empty()),
            "retry" => update.retry = Some(parse_retry(&value)?),
            "private" => update.private = true,
            "retain" => update.retain = true,
            _ => {}
        }
    }
    require_topic(&update)?;
    Ok(update)
}

fn parse_retry(value: &str) -> Result<u64, AppError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
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

/// A JSON object, or an array of them for a batch (all or nothing).
fn parse_json(body: &[u8]) -> Result<Vec<Update>, AppError> {
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
