//! Publishing an update to a Mercure hub (the 0.x protocol,
//! draft-dunglas-mercure-07): one `application/x-www-form-urlencoded` POST.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{StatusCode, Url};

use crate::{ConfigError, http};

/// One update, as the hub's publish endpoint takes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// The topics: the first is canonical, the others alternates. A
    /// subscriber matching any of them receives the update.
    pub topics: Vec<String>,
    /// The data; `None` sends no `data` field.
    pub data: Option<String>,
    /// The SSE event type (`type` field).
    pub event_type: Option<String>,
    /// The update's id; the hub makes one when absent.
    pub id: Option<String>,
    /// Private updates reach only subscribers authorised for one of the
    /// topics.
    pub private: bool,
    /// The reconnection time the hub sends with the event, in milliseconds.
    pub retry: Option<u64>,
    /// Ask the hub to keep it as the retained update of its topics, which
    /// new subscribers get first (a Tidings extension of the protocol;
    /// empty data clears it).
    pub retain: bool,
}

impl Update {
    /// An update on `topic` carrying `data`.
    pub fn new(topic: &str, data: &str) -> Self {
        Self {
            topics: vec![topic.to_owned()],
            data: Some(data.to_owned()),
            ..Self::default()
        }
    }

    /// The request body: `topic` once per topic, then `data`, `type`, `id`,
    /// `private=on`, `retry`, `retain=on`, each only when set.
    pub fn to_form(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        for topic in &self.topics {
            form.append_pair("topic", topic);
        }
        if let Some(data) = &self.data {
            form.append_pair("data", data);
        }
        if let Some(event_type) = &self.event_type {
            form.append_pair("type", event_type);
        }
        if let Some(id) = &self.id {
            form.append_pair("id", id);
        }
        if self.private {
            form.append_pair("private", "on");
        }
        if let Some(retry) = self.retry {
            form.append_pair("retry", &retry.to_string());
        }
        if self.retain {
            form.append_pair("retain", "on");
        }
        form.finish()
    }
}

/// Why a publication failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The hub answered with a status other than 2xx. Mercure hubs explain
    /// in the body (Tidings: `{"error": "…"}`).
    #[error("the hub answered {status}: {body}")]
    Rejected {
        /// The status.
        status: StatusCode,
        /// The response body, as text.
        body: String,
    },
    /// The request could not be sent or the answer not read.
    #[error("network error: {}", crate::error::chain(.0))]
    Transport(reqwest::Error),
}

/// Publishes updates to one hub.
#[derive(Debug, Clone)]
pub struct Publisher {
    /// The client that sends the requests.
    client: reqwest::Client,
    /// The hub URL (`…/.well-known/mercure`).
    hub: Url,
    /// `Authorization: Bearer …` value, when a JWT was given.
    authorization: Option<HeaderValue>,
    /// The longest a publication may take, answer included.
    timeout: Duration,
}

impl Publisher {
    /// A publisher for the hub at `hub`.
    pub fn new(hub: &str) -> Result<Self, ConfigError> {
        let url = Url::parse(hub).map_err(|error| ConfigError::Url {
            url: hub.to_owned(),
            error,
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Scheme(url.scheme().to_owned()));
        }
        Ok(Self {
            client: http::http_client()?,
            hub: url,
            authorization: None,
            timeout: http::DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// Sends `Authorization: Bearer <jwt>` with every publication.
    pub fn token(mut self, jwt: &str) -> Result<Self, ConfigError> {
        let value = HeaderValue::from_str(&format!("Bearer {jwt}"))
            .map_err(|_| ConfigError::HeaderValue(AUTHORIZATION.to_string()))?;
        self.authorization = Some(value);
        Ok(self)
    }

    /// The longest a publication may take (30 s by default).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Publishes `update` and returns its id, as the hub reports it in the
    /// response body.
    pub async fn publish(&self, update: &Update) -> Result<String, PublishError> {
        let mut request = self
            .client
            .post(self.hub.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(update.to_form());
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let response = request.send().await.map_err(PublishError::Transport)?;
        let status = response.status();
        let body = response.text().await.map_err(PublishError::Transport)?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(PublishError::Rejected { status, body })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_has_every_field_in_order_and_escapes() {
        let update = Update {
            topics: vec!["https://x/b/1".into(), "t&2".into()],
            data: Some("a b\nc=é".into()),
            event_type: Some("price".into()),
            id: Some("id-7".into()),
            private: true,
            retry: Some(1500),
            retain: true,
        };
        assert_eq!(
            update.to_form(),
            "topic=https%3A%2F%2Fx%2Fb%2F1&topic=t%262&data=a+b%0Ac%3D%C3%A9\
             &type=price&id=id-7&private=on&retry=1500&retain=on"
        );
        assert_eq!(Update::new("t", "").to_form(), "topic=t&data=");
        let bare = Update {
            topics: vec!["t".into()],
            ..Update::default()
        };
        assert_eq!(bare.to_form(), "topic=t");
    }
}
