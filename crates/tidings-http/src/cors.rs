//! CORS for browsers on other origins: an allow-list of origins. A listed
//! origin gets its exact value echoed with credentials allowed (cookies
//! carry tokens); `*` allows every origin without credentials; any other
//! origin gets no CORS headers at all.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, HeaderName, HeaderValue, ORIGIN,
    VARY,
};
use http::{HeaderMap, Method, StatusCode};

use crate::error::AppError;
use crate::state::AppState;

/// Which origins may use the hub from a browser.
#[derive(Debug, Clone, Default)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), compared byte for byte.
    pub origins: Vec<String>,
    /// `*` was given: every origin, without credentials.
    pub any: bool,
}

/// Request headers a browser may send cross-origin.
const ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "cache-control",
    "content-type",
    "last-event-id",
];

impl CorsConfig {
    /// From the values of `--cors-origin` (`*` means any).
    pub fn from_list(values: &[String]) -> Self {
        Self {
            any: values.iter().any(|v| v == "*"),
            origins: values.iter().filter(|v| *v != "*").cloned().collect(),
        }
    }

    fn enabled(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The CORS headers of a response to a request with these headers.
    pub(crate) fn response_headers(&self, request: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        let Some(origin) = request.get(ORIGIN) else {
            return Vec::new();
        };
        let mut headers = Vec::new();
        if self
            .origins
            .iter()
            .any(|o| o.as_bytes() == origin.as_bytes())
        {
            headers.push((ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
            headers.push((
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
            headers.push((VARY, HeaderValue::from_static("Origin")));
        } else if self.any {
            headers.push((ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*")));
        } else {
            return headers;
        }
        headers.push((
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Last-Event-ID"),
        ));
        headers
    }

    /// The answer to a preflight request, when `request` is one.
    fn preflight(&self, method: &Method, request: &HeaderMap) -> Option<Response> {
        if method != Method::OPTIONS || !request.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let mut headers = self.response_headers(request);
        if headers.is_empty() {
            return Some(
                AppError::new(StatusCode::FORBIDDEN, "this origin may not use the hub")
                    .into_response(),
            );
        }
        let asked = request
            .get(ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let allowed: Vec<&str> = asked
            .split(',')
            .map(str::trim)
            .filter(|h| ALLOWED_HEADERS.iter().any(|a| a.eq_ignore_ascii_case(h)))
            .collect();
        headers.retain(|(name, _)| name != ACCESS_CONTROL_EXPOSE_HEADERS);
        headers.push((
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        ));
        if let Ok(value) = HeaderValue::from_str(&allowed.join(", "))
            && !allowed.is_empty()
        {
            headers.push((ACCESS_CONTROL_ALLOW_HEADERS, value));
        }
        headers.push((ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600")));
        let mut response = StatusCode::NO_CONTENT.into_response();
        response.headers_mut().extend(headers);
        Some(response)
    }
}

/// The middleware for every route hyper serves.
pub(crate) async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let cors = &state.config().cors;
    if !cors.enabled() {
        return next.run(request).await;
    }
    if let Some(response) = cors.preflight(request.method(), request.headers()) {
        return response;
    }
    let headers = cors.response_headers(request.headers());
    let mut response = next.run(request).await;
    response.headers_mut().extend(headers);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
        headers
    }

    #[test]
    fn listed_origins_get_credentials_and_others_nothing() {
        let cors = CorsConfig::from_list(&["https://app.example".into()]);
        let got = cors.response_headers(&request("https://app.example"));
        assert!(got.contains(&(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("https://app.example")
        )));
        assert!(got.contains(&(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true")
        )));
        assert!(
            cors.response_headers(&request("https://evil.example"))
                .is_empty()
        );
        assert!(cors.response_headers(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn star_never_comes_with_credentials() {
        let cors = CorsConfig::from_list(&["*".into()]);
        let got = cors.response_headers(&request("https://any.example"));
        assert!(got.contains(&(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"))));
        assert!(
            !got.iter()
                .any(|(n, _)| n == ACCESS_CONTROL_ALLOW_CREDENTIALS)
        );
    }

    #[test]
    fn preflight() {
        let cors = CorsConfig::from_list(&["https://app.example".into()]);
        let mut headers = request("https://app.example");
        headers.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        headers.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("last-event-id, authorization, x-custom"),
        );
        let response = cors.preflight(&Method::OPTIONS, &headers).unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            response.headers()[ACCESS_CONTROL_ALLOW_HEADERS],
            "last-event-id, authorization"
        );
        let mut evil = request("https://evil.example");
        evil.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        let response = cors.preflight(&Method::OPTIONS, &evil).unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(
            response
                .headers()
                .get(ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
    }
}
