//! The status page: one HTML page with its script and style, all served
//! from here (no external scripts, fonts or CDNs), under a Content Security
//! Policy that allows nothing else — no inline code, no other origin, no
//! framing. The page holds no data: it reads `/status` (with the admin
//! token when there is one) and renders with `textContent` only.

use http::{Response, StatusCode};

const HTML: &str = include_str!("page/index.html");
const JS: &str = include_str!("page/page.js");
const CSS: &str = include_str!("page/page.css");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `/`, `/page.js`, `/page.css` (and an empty `/favicon.ico`, which
/// browsers ask for by themselves); `None` for any other path.
pub fn asset(path: &str) -> Option<Response<Vec<u8>>> {
    if path == "/favicon.ico" {
        let empty = Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Vec::new());
        return Some(empty.expect("static response parts are valid"));
    }
    let (body, content_type) = match path {
        "/" => (HTML, "text/html; charset=utf-8"),
        "/page.js" => (JS, "text/javascript; charset=utf-8"),
        "/page.css" => (CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    Some(
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", content_type)
            .header("content-length", body.len())
            .header("content-security-policy", CSP)
            .header("x-content-type-options", "nosniff")
            .header("referrer-policy", "no-referrer")
            .header("cache-control", "no-store")
            .body(body.as_bytes().to_vec())
            .expect("static response parts are valid"),
    )
}
