//! The web dashboard: its pages, embedded in the binary, and the rules both of its servers
//! apply.
//!
//! The dashboard is a client of the dispatcher's `/v1` API, as the CLI is: its pages (one
//! HTML file, one script, one stylesheet, in `remote/ui/`) read the same JSON and follow the
//! same NDJSON event and output streams, so there is no second API to keep in step with the
//! first. Two servers hand the pages out:
//!
//! - the dispatcher, under `/ui/`, to a browser that presents an operator's certificate (the
//!   same role check as `/v1`; `pogo certs p12` makes a file a browser imports), and
//! - `pogo ui` ([`local`]), on the operator's own machine: a loopback-only server that
//!   forwards `/v1` to the dispatcher with the operator's certificate (as `kubectl proxy`
//!   does) and serves the runs of the local state dir under `/local/v1/runs` in the same
//!   shapes ([`runs`]).
//!
//! What both enforce, here: every page comes with a strict Content-Security-Policy (no inline
//! script, nothing from elsewhere), and a request that changes something and comes from a
//! browser must carry the CSRF token of its session ([`csrf_allows`]).

pub mod local;
pub mod runs;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The cookie that holds a browser session's CSRF token: readable by the page's script, which
/// sends it back in [`CSRF_HEADER`] (the double-submit pattern; another site can neither read
/// the cookie nor set the header without the server's consent).
pub const CSRF_COOKIE: &str = "pogo_csrf";
/// The header that carries the CSRF token on a request that changes something.
pub const CSRF_HEADER: &str = "x-pogo-csrf";

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const APP_CSS: &str = include_str!("../../ui/app.css");

/// The policy every page is served with: scripts, styles and connections from this origin
/// only, no inline script, and never inside another site's frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What a dashboard page learns from the server that serves it (`/ui/config.json`).
#[derive(Debug, Clone, Serialize)]
pub struct UiConfig {
    /// `dispatcher` (served by the dispatcher) or `local` (`pogo ui`).
    pub mode: &'static str,
    /// The dispatcher's jobs are there, under `/v1`.
    pub jobs: bool,
    /// The local state dir's runs are there, under `/local/v1/runs`.
    pub runs: bool,
    /// The dispatcher's URL, when `pogo ui` forwards to one.
    pub dispatcher: Option<String>,
    /// Halt, resume and retry are offered for jobs.
    pub actions: bool,
}

/// A file of the dashboard by its name under `/ui/` (`""` is the page itself): its content
/// type and text.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "" | "index.html" => Some(("text/html; charset=utf-8", INDEX_HTML)),
        "app.js" => Some(("text/javascript; charset=utf-8", APP_JS)),
        "app.css" => Some(("text/css; charset=utf-8", APP_CSS)),
        _ => None,
    }
}

/// Answers `GET /ui/NAME`: a file of the dashboard, or the page's config, with the security
/// headers; a 404 otherwise. The page itself also starts a CSRF token for a browser that has
/// none (`secure`: the cookie goes over HTTPS only).
pub fn page(name: &str, headers: &HeaderMap, config: &UiConfig, secure: bool) -> Response {
    let (content_type, body) = if name == "config.json" {
        (
            "application/json",
            serde_json::to_string(config).unwrap_or_default(),
        )
    } else {
        match asset(name) {
            Some((content_type, text)) => (content_type, text.to_string()),
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "no such page of the dashboard\n",
                )
                    .into_response()
            }
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure_headers(out);
    if matches!(name, "" | "index.html") && cookie(headers, CSRF_COOKIE).is_none() {
        let cookie = format!(
            "{CSRF_COOKIE}={}; Path=/; SameSite=Strict{}",
            random_token(),
            if secure { "; Secure" } else { "" }
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            out.append(header::SET_COOKIE, value);
        }
    }
    response
}

/// The headers every answer to a browser carries.
pub fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// Whether a request that changes something may go on. pogo's own client sends neither
/// cookies nor the headers browsers add (`Origin`, `Sec-Fetch-Site`); a request that has any
/// of them came from a browser, and must carry the CSRF token of its session in
/// [`CSRF_HEADER`], equal to its [`CSRF_COOKIE`]. Browsers send `Origin` with every POST, so
/// a form or script on another site cannot pass for pogo's client.
pub fn csrf_allows(headers: &HeaderMap) -> bool {
    let from_browser = headers.contains_key(header::ORIGIN)
        || headers.contains_key("sec-fetch-site")
        || headers.contains_key(header::COOKIE);
    if !from_browser {
        return true;
    }
    match (
        cookie(headers, CSRF_COOKIE),
        headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
    ) {
        (Some(expected), Some(given)) => !expected.is_empty() && same(expected, given),
        _ => false,
    }
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

/// 32 random bytes from the system's generator, as hex: a session's secrets.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
        .expect("the system's random generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (key, value) in pairs {
            map.append(*key, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn requests_from_browsers_need_the_csrf_token_of_their_session() {
        // pogo's own client: no cookie, no Origin.
        assert!(csrf_allows(&headers(&[(
            "content-type",
            "application/json"
        )])));
        // A browser without the token, or with a wrong one.
        assert!(!csrf_allows(&headers(&[(
            "origin",
            "https://evil.example"
        )])));
        assert!(!csrf_allows(&headers(&[
            ("cookie", "pogo_csrf=abc"),
            ("origin", "https://d:8443")
        ])));
        assert!(!csrf_allows(&headers(&[
            ("cookie", "pogo_csrf=abc"),
            ("x-pogo-csrf", "abd")
        ])));
        assert!(!csrf_allows(&headers(&[
            ("cookie", "pogo_csrf="),
            ("x-pogo-csrf", "")
        ])));
        // The header alone, without the cookie it must match.
        assert!(!csrf_allows(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("x-pogo-csrf", "abc")
        ])));
        assert!(csrf_allows(&headers(&[
            ("cookie", "other=1; pogo_csrf=abc"),
            ("origin", "https://d:8443"),
            ("x-pogo-csrf", "abc")
        ])));
    }

    #[test]
    fn tokens_are_long_and_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()) && !same(&a, &b) && !same(&a, "short"));
    }

    #[test]
    fn the_page_starts_a_csrf_token_once() {
        let config = UiConfig {
            mode: "dispatcher",
            jobs: true,
            runs: false,
            dispatcher: None,
            actions: true,
        };
        let first = page("", &HeaderMap::new(), &config, true);
        let set = first.headers().get(header::SET_COOKIE).unwrap();
        let set = set.to_str().unwrap();
        assert!(set.starts_with("pogo_csrf=") && set.contains("SameSite=Strict"));
        assert!(set.contains("Secure"), "{set}");
        assert!(first
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .is_some());
        let again = page("", &headers(&[("cookie", "pogo_csrf=abc")]), &config, true);
        assert!(again.headers().get(header::SET_COOKIE).is_none());
        assert_eq!(
            page("nothing.js", &HeaderMap::new(), &config, true).status(),
            StatusCode::NOT_FOUND
        );
    }
}
