//! The web UI: plain HTML, CSS and JavaScript modules (`ui/` in this
//! crate) embedded in the binary and served at `/` and `/ui/*`, so running
//! Ferry needs no Node toolchain and no files beside the binary.
//!
//! These routes need no token: the page asks the operator for the engine's
//! token, keeps it in the tab's `sessionStorage` and sends it to the REST
//! API like any other client. A strict Content-Security-Policy (scripts,
//! styles and requests to this origin only) keeps that token out of reach
//! of anything but the page's own code.

use std::sync::Arc;

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::engine::Engine;
use crate::error::Error;

/// Where the UI's files are served from (the page itself is at `/`).
pub(crate) const UI_PREFIX: &str = "/ui/";

/// What the page may load and talk to: only this origin; no inline
/// script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("../../ui/", $name)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of the UI. `index.html` is also the page at `/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("model.js", JS),
    asset!("move-dialog.js", JS),
    asset!("views/vms.js", JS),
    asset!("views/domains.js", JS),
    asset!("views/hosts.js", JS),
    asset!("views/jobs.js", JS),
    asset!("views/events.js", JS),
];

/// The UI's routes, merged into the API's router (before its state).
pub(crate) fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{*file}", get(file))
}

/// Whether a path is the UI's, answered without a token.
pub(crate) fn is_public(path: &str) -> bool {
    path == "/" || path.starts_with(UI_PREFIX)
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return Error::NotFound(format!(
            "the web UI has no file {name}; open the UI at / instead"
        ))
        .into_response();
    };
    let etag = etag(asset.body);
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    // The browser asks again every time (a 304 when nothing changed), so
    // a new engine's UI is never mixed with an old one's modules.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    response
}

/// A strong validator of a file's content (FNV-1a, 64 bits).
fn etag(body: &str) -> String {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_and_its_files_are_public_and_nothing_else_is() {
        assert!(is_public("/"));
        assert!(is_public("/ui/app.js"));
        assert!(is_public("/ui/views/jobs.js"));
        assert!(!is_public("/api/v1/hosts"));
        assert!(!is_public("/ui"));
        assert!(!is_public("/index.html"));
    }

    #[test]
    fn every_file_is_served_with_its_content_type_and_a_strict_policy() {
        for asset in ASSETS {
            let r = serve(asset.name, &HeaderMap::new());
            assert_eq!(r.status(), StatusCode::OK, "{}", asset.name);
            let h = r.headers();
            assert_eq!(h[CONTENT_TYPE], asset.content_type, "{}", asset.name);
            assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert!(h[CONTENT_SECURITY_POLICY]
                .to_str()
                .is_ok_and(|v| v.contains("script-src 'self'")));
        }
        let js = serve("app.js", &HeaderMap::new());
        assert_eq!(js.headers()[CONTENT_TYPE], "text/javascript; charset=utf-8");
    }

    #[test]
    fn an_unchanged_file_is_not_sent_again() {
        let first = serve("style.css", &HeaderMap::new());
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, first.headers()[ETAG].clone());
        assert_eq!(
            serve("style.css", &headers).status(),
            StatusCode::NOT_MODIFIED
        );
    }

    #[test]
    fn an_unknown_file_is_a_json_404() {
        let r = serve("../Cargo.toml", &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn the_page_loads_only_files_that_are_embedded() {
        let index = ASSETS
            .iter()
            .find(|a| a.name == "index.html")
            .map(|a| a.body)
            .unwrap_or_default();
        for needle in ["/ui/app.js", "/ui/style.css", "/ui/favicon.svg"] {
            assert!(index.contains(needle), "index.html does not load {needle}");
        }
        // Every relative import of every module names an embedded file.
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in asset.body.lines() {
                let Some(spec) = import_of(line) else {
                    continue;
                };
                let resolved = resolve(asset.name, spec);
                assert!(
                    ASSETS.iter().any(|a| a.name == resolved),
                    "{} imports {spec} ({resolved}), which is not embedded",
                    asset.name
                );
            }
        }
    }

    /// The module specifier of an `import ... from "x"` line.
    fn import_of(line: &str) -> Option<&str> {
        let line = line.trim();
        if !line.starts_with("import ") && !line.starts_with("} from ") {
            return None;
        }
        let from = line.rfind(" from ")?;
        let spec = line[from + 6..].trim().trim_end_matches(';');
        spec.strip_prefix('"')?.strip_suffix('"')
    }

    /// `spec` relative to the file `from` (both under `ui/`).
    fn resolve(from: &str, spec: &str) -> String {
        let mut parts: Vec<&str> = from.split('/').collect();
        parts.pop();
        for seg in spec.split('/') {
            match seg {
                "." => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        parts.join("/")
    }
}
