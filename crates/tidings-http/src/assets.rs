//! Files embedded in the binary and served as they are (the demo page and
//! what it loads). Nothing is fetched from elsewhere.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

/// One embedded file.
#[derive(Debug)]
struct Asset {
    /// The request path that serves it.
    path: &'static str,
    /// Its `Content-Type`.
    content_type: &'static str,
    /// Its bytes.
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The demo page: one document for both variants; its script picks the
/// transport from the path (`/fetch.html`: fetch() and a streaming parser,
/// else the browser's `EventSource`).
const PAGE: &[u8] = include_bytes!("../assets/index.html");

/// The operator page's document.
const UI_PAGE: &[u8] = include_bytes!("../assets/ui/index.html");

/// The table entry serving `body` at `path` as `content_type`.
const fn asset(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
    Asset {
        path,
        content_type,
        body,
    }
}

/// Every embedded file.
static ASSETS: &[Asset] = &[
    asset("/", HTML, PAGE),
    asset("/index.html", HTML, PAGE),
    asset("/fetch.html", HTML, PAGE),
    asset(
        "/assets/demo.css",
        CSS,
        include_bytes!("../assets/demo.css"),
    ),
    asset("/assets/app.js", JS, include_bytes!("../assets/app.js")),
    asset("/assets/demo.js", JS, include_bytes!("../assets/demo.js")),
    asset("/assets/sse.mjs", JS, include_bytes!("../assets/sse.mjs")),
];

/// The operator page (`--ui`): the list of active subscriptions, a publish
/// form, a subscribe console. It loads `/assets/sse.mjs` too.
static UI_ASSETS: &[Asset] = &[
    asset("/ui/", HTML, UI_PAGE),
    asset("/ui/index.html", HTML, UI_PAGE),
    asset("/ui/ui.js", JS, include_bytes!("../assets/ui/ui.js")),
    asset("/ui/ui.css", CSS, include_bytes!("../assets/ui/ui.css")),
];

/// The embedded file at `path`, if there is one.
pub(crate) fn get(path: &str) -> Option<Response> {
    serve(ASSETS.iter().find(|a| a.path == path)?)
}

/// The operator page's file at `path`, if there is one.
pub(crate) fn get_ui(path: &str) -> Option<Response> {
    serve(UI_ASSETS.iter().find(|a| a.path == path)?)
}

fn serve(asset: &Asset) -> Option<Response> {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every quoted string in `text` that follows `marker`.
    fn references<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
        text.match_indices(marker)
            .filter_map(|(at, _)| {
                let rest = &text[at + marker.len()..];
                let quote = rest.chars().next()?;
                if !matches!(quote, '"' | '\'') {
                    return None;
                }
                let inner = &rest[1..];
                inner.find(quote).map(|end| &inner[..end])
            })
            .collect()
    }

    /// The page loads only what the binary serves: no CDN, no font or
    /// script from elsewhere, every reference resolves to a table entry or
    /// a route of the hub.
    #[test]
    fn every_reference_is_embedded() {
        const ROUTES: [&str; 3] = ["/metrics", "/healthz", "/publish"];
        let mut checked = 0;
        for asset in ASSETS.iter().chain(UI_ASSETS) {
            let text = std::str::from_utf8(asset.body).unwrap();
            let mut refs = Vec::new();
            for marker in ["src=", "href=", "from ", "import(", "fetch("] {
                refs.extend(references(text, marker));
            }
            assert!(
                !text.contains("url(http"),
                "{}: an external url()",
                asset.path
            );
            assert!(!text.contains("@import"), "{}: @import", asset.path);
            for reference in refs {
                checked += 1;
                if reference.starts_with("data:") {
                    continue;
                }
                let path = match reference.strip_prefix("./") {
                    Some(file) => format!("/assets/{file}"),
                    None => reference.to_owned(),
                };
                assert!(
                    ASSETS.iter().chain(UI_ASSETS).any(|a| a.path == path)
                        || ROUTES.contains(&path.as_str()),
                    "{} refers to {reference:?}, which the hub does not serve",
                    asset.path
                );
            }
        }
        assert!(checked >= 8, "only {checked} references found");
    }

    #[test]
    fn served_with_their_types() {
        for (path, content_type) in [
            ("/", HTML),
            ("/fetch.html", HTML),
            ("/assets/app.js", JS),
            ("/assets/demo.css", CSS),
        ] {
            let response = get(path).unwrap();
            assert_eq!(response.headers()[header::CONTENT_TYPE], content_type);
        }
        assert!(get("/nope").is_none());
        assert!(get("/assets/").is_none());
    }
}
