//! Cross-site request forgery with the token cookie.
//!
//! A browser sends the `mercureAuthorization` cookie with every request to
//! the hub, a form that another site posts included, and CORS does not
//! stop such a simple POST. So a publish authenticated by the cookie must
//! say which page sent it, with `Origin` or, when a browser leaves that
//! out, `Referer`, and that origin must be allowed (`--publish-origin`,
//! else the `--cors-origin` list). A token in the `Authorization` header or
//! the `authorization` query parameter is never attached by a browser on
//! its own, so those publishes are not checked here.

use http::HeaderMap;
use http::StatusCode;
use http::header::{ORIGIN, REFERER};

use crate::error::AppError;

/// The origins whose pages may publish with the token cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOrigins {
    /// Exact origins (`https://app.example.com`), compared without regard
    /// to ASCII case.
    origins: Vec<String>,
    /// `*` was given: any origin, as long as the request names one.
    any: bool,
}

impl PublishOrigins {
    /// From a list of origins, `*` meaning any. Check `--publish-origin`
    /// values with [`check_origin`] first.
    pub fn from_list(values: &[String]) -> Self {
        Self {
            any: values.iter().any(|v| v == "*"),
            origins: values.iter().filter(|v| *v != "*").cloned().collect(),
        }
    }

    /// Whether no origin may publish with the cookie.
    pub fn is_empty(&self) -> bool {
        !self.any && self.origins.is_empty()
    }

    /// Whether a cookie-authenticated publish with these request headers
    /// may go on.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), AppError> {
        if self.is_empty() {
            return Err(forbidden(
                "publishing with the mercureAuthorization cookie is refused: no origin may do so \
                 on this hub (see --publish-origin and --cors-origin); send the token in the \
                 Authorization header instead"
                    .to_owned(),
            ));
        }
        let origin = match (headers.get(ORIGIN), headers.get(REFERER)) {
            (Some(origin), _) => origin
                .to_str()
                .map_err(|_| forbidden("the Origin header is not an origin".to_owned()))?,
            (None, Some(referer)) => {
                referer.to_str().ok().and_then(origin_of).ok_or_else(|| {
                    forbidden("the Referer header is not a URL with an origin".to_owned())
                })?
            }
            (None, None) => {
                return Err(forbidden(
                    "publishing with the mercureAuthorization cookie needs an Origin or Referer \
                     header naming an allowed origin (protection against cross-site request \
                     forgery); send the token in the Authorization header otherwise"
                        .to_owned(),
                ));
            }
        };
        let listed = self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin));
        if (self.any && !origin.is_empty()) || listed {
            return Ok(());
        }
        Err(forbidden(format!(
            "the origin {origin:?} may not publish with the mercureAuthorization cookie \
             (allowed: --publish-origin, else --cors-origin)"
        )))
    }
}

fn forbidden(message: String) -> AppError {
    AppError::new(StatusCode::FORBIDDEN, message)
}

/// The origin part of a URL: `scheme://authority`, without path, query or
/// fragment. `None` when `url` has no such form or carries user
/// information (browsers strip it from `Referer`).
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.');
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    if !scheme_ok || authority.is_empty() || authority.contains('@') {
        return None;
    }
    url.get(..scheme.len() + 3 + end)
}

/// Checks one `--publish-origin` value: `*`, or an origin as browsers send
/// it (`https://app.example.com`, `http://localhost:3000`), without a path
/// or a trailing slash. `null` is refused: it is what sandboxed documents of
/// any site send.
pub fn check_origin(value: &str) -> Result<(), String> {
    if value == "*" {
        return Ok(());
    }
    if value.eq_ignore_ascii_case("null") {
        return Err(
            "\"null\" is the origin of sandboxed documents and redirected requests from any site, \
             so it cannot be allowed"
                .to_owned(),
        );
    }
    match origin_of(value) {
        Some(origin) if origin == value => Ok(()),
        Some(origin) => Err(format!(
            "{value:?} is not an origin: no path, query or trailing slash (did you mean {origin:?}?)"
        )),
        None => Err(format!(
            "{value:?} is not an origin such as https://app.example.com or `*`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn allowed(list: &[&str], pairs: &[(&str, &str)]) -> Result<(), String> {
        let values: Vec<String> = list.iter().map(|v| (*v).to_owned()).collect();
        PublishOrigins::from_list(&values)
            .check(&headers(pairs))
            .map_err(|e| {
                assert_eq!(e.status, StatusCode::FORBIDDEN);
                e.message
            })
    }

    #[test]
    fn origins_of_urls() {
        assert_eq!(
            origin_of("https://app.example/page?x=1#y"),
            Some("https://app.example")
        );
        assert_eq!(
            origin_of("http://localhost:3000"),
            Some("http://localhost:3000")
        );
        assert_eq!(origin_of("http://[::1]:8080/x"), Some("http://[::1]:8080"));
        assert_eq!(origin_of("https://a.example?q"), Some("https://a.example"));
        assert_eq!(origin_of("https://user:pw@a.example/"), None);
        assert_eq!(origin_of("/relative/path"), None);
        assert_eq!(origin_of("https:///path"), None);
        assert_eq!(origin_of("1http://a.example"), None);
    }

    #[test]
    fn the_origin_header_first_then_the_referer() {
        let list = ["https://app.example"];
        assert_eq!(allowed(&list, &[("origin", "https://app.example")]), Ok(()));
        assert_eq!(allowed(&list, &[("origin", "HTTPS://APP.example")]), Ok(()));
        assert_eq!(
            allowed(&list, &[("referer", "https://app.example/admin/post?x")]),
            Ok(())
        );
        let evil = allowed(&list, &[("origin", "https://evil.example")]).unwrap_err();
        assert!(evil.contains("\"https://evil.example\""), "{evil}");
        // Origin wins: a listed Referer does not rescue an unlisted Origin.
        assert!(
            allowed(
                &list,
                &[
                    ("origin", "https://evil.example"),
                    ("referer", "https://app.example/")
                ]
            )
            .is_err()
        );
        assert!(allowed(&list, &[("origin", "null")]).is_err());
        assert!(allowed(&list, &[("origin", "https://app.example.evil")]).is_err());
        assert!(allowed(&list, &[("referer", "https://evil.example/x")]).is_err());
        let garbled = allowed(&list, &[("referer", "not a url")]).unwrap_err();
        assert!(garbled.contains("Referer"), "{garbled}");
        let neither = allowed(&list, &[]).unwrap_err();
        assert!(neither.contains("needs an Origin or Referer"), "{neither}");
    }

    #[test]
    fn a_star_takes_any_origin_but_still_needs_one() {
        assert_eq!(
            allowed(&["*"], &[("origin", "https://any.example")]),
            Ok(())
        );
        assert_eq!(allowed(&["*"], &[("referer", "http://x.example/")]), Ok(()));
        assert!(allowed(&["*"], &[]).is_err());
        assert!(allowed(&["*"], &[("origin", "")]).is_err());
    }

    #[test]
    fn no_list_means_no_cookie_publishing() {
        let none = allowed(&[], &[("origin", "https://app.example")]).unwrap_err();
        assert!(none.contains("no origin may do so"), "{none}");
        assert!(PublishOrigins::default().is_empty());
    }

    #[test]
    fn checking_configured_origins() {
        for good in [
            "*",
            "https://app.example",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert_eq!(check_origin(good), Ok(()), "{good}");
        }
        let slash = check_origin("https://app.example/").unwrap_err();
        assert!(
            slash.contains("did you mean \"https://app.example\"?"),
            "{slash}"
        );
        assert!(
            check_origin("app.example")
                .unwrap_err()
                .contains("not an origin")
        );
        assert!(check_origin("null").unwrap_err().contains("sandboxed"));
        assert!(check_origin("").is_err());
        assert!(check_origin("https://u@app.example").is_err());
    }
}
