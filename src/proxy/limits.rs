//! Checks on what clients send, before anything is forwarded: header size
//! and count, unambiguous framing, declared body length; and hop-by-hop
//! headers kept off responses (and off the proxy's own replays).

use http::header::{
    CONNECTION, CONTENT_LENGTH, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName};
use pingora::http::{RequestHeader, ResponseHeader};

use super::refusal::Refusal;
use crate::config::Limits;

/// Refuses request heads over the configured limits (431) and framing that
/// two parsers could read differently (400) — the raw material of request
/// smuggling. `raw_head` is the head as received, for what pingora has
/// already normalised away.
pub fn check_request_head(
    req: &RequestHeader,
    raw_head: impl FnOnce() -> Option<bytes::Bytes>,
    limits: &Limits,
) -> Result<(), Refusal> {
    // pingora drops Content-Length only when Transfer-Encoding is there.
    if req.headers.contains_key(TRANSFER_ENCODING)
        && (req.headers.contains_key(CONTENT_LENGTH)
            || raw_head().is_some_and(|raw| raw_head_has_both_framings(&raw)))
    {
        return Err(Refusal::AmbiguousFraming);
    }
    if req.headers.len() > limits.max_request_headers {
        return Err(Refusal::HeadersTooLarge(format!(
            "more than {} request headers",
            limits.max_request_headers
        )));
    }
    let target = req.uri.path_and_query().map_or(1, |p| p.as_str().len())
        + req.uri.authority().map_or(0, |a| a.as_str().len());
    let size = target
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if size > limits.max_request_header_bytes {
        return Err(Refusal::HeadersTooLarge(format!(
            "request headers larger than {} bytes",
            limits.max_request_header_bytes
        )));
    }
    let mut lengths = req.headers.get_all(CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        if lengths.any(|other| other != first) {
            return Err(Refusal::ConflictingLength);
        }
    }
    Ok(())
}

/// Both `Content-Length` and `Transfer-Encoding` in the request head as
/// received. pingora drops the Content-Length of such a request before our
/// hooks run (RFC 9112 lets an intermediary do that), so the raw head is
/// where the attempt is still visible; we refuse it instead.
fn raw_head_has_both_framings(raw: &[u8]) -> bool {
    let mut cl = false;
    let mut te = false;
    for line in raw.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let name = match line.iter().position(|b| *b == b':') {
            Some(i) => &line[..i],
            None => continue,
        };
        cl |= name.eq_ignore_ascii_case(b"content-length");
        te |= name.eq_ignore_ascii_case(b"transfer-encoding");
    }
    cl && te
}

/// 413 when the declared `Content-Length` is over the route's limit.
pub fn check_declared_length(req: &RequestHeader, limit: Option<u64>) -> Result<(), Refusal> {
    match (declared_length(req), limit) {
        (Some(declared), Some(limit)) if declared > limit => Err(Refusal::BodyTooLarge),
        _ => Ok(()),
    }
}

/// The body length the request's `Content-Length` declares, if readable.
pub fn declared_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
}

/// The header names a `Connection` header nominates as hop-by-hop,
/// lower-cased.
fn connection_nominated(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// `Connection` tokens that are options, not header names.
fn is_connection_option(token: &str) -> bool {
    ["close", "keep-alive", "transfer-encoding"]
        .iter()
        .any(|o| token.eq_ignore_ascii_case(o))
}

/// Whether `Connection` names a header to drop. Nearly every upstream
/// answer says only `keep-alive` or `close`, so this looks without
/// allocating; [`connection_nominated`] lists them when there are some.
fn nominates_other_headers(headers: &HeaderMap) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        // The usual single option, without splitting and trimming.
        .filter(|v| !is_connection_option(v))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| !t.is_empty() && !is_connection_option(t))
}

/// Hop-by-hop response headers (RFC 9110 §7.6.1) and any header the
/// upstream nominated in `Connection` stay between the upstream and us.
/// Framing (`Transfer-Encoding`) is pingora's to manage.
pub fn strip_hop_by_hop(resp: &mut ResponseHeader) {
    // Every answer passes here, so names are pre-built: a `&str` name is
    // parsed again on each lookup.
    if nominates_other_headers(&resp.headers) {
        for name in connection_nominated(&resp.headers) {
            if !is_connection_option(&name) {
                resp.remove_header(&name);
            }
        }
    }
    // A protocol switch needs its Upgrade header; anything else does not.
    let drop_upgrade = resp.status != http::StatusCode::SWITCHING_PROTOCOLS;
    // Comparing the few names present is cheaper than seven removals.
    let present = resp
        .headers
        .keys()
        .any(|k| HOP_BY_HOP.contains(k) || (drop_upgrade && k == UPGRADE));
    if !present {
        return;
    }
    for name in &HOP_BY_HOP {
        resp.remove_header(name);
    }
    if drop_upgrade {
        resp.remove_header(&UPGRADE);
    }
}

/// A request head as the proxy's own replay sends it: without what pingora
/// strips before forwarding — the hop-by-hop headers, those named in
/// `Connection` — and without framing, which the replay's client sets.
pub fn strip_request_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_nominated(headers) {
        headers.remove(name.as_str());
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    for name in [CONNECTION, UPGRADE, TRANSFER_ENCODING, CONTENT_LENGTH] {
        headers.remove(name);
    }
    headers.remove("http2-settings");
}

static HOP_BY_HOP: [HeaderName; 6] = [
    HeaderName::from_static("keep-alive"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_framing_headers_are_not_replayed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("content-length", "5".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_request_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    fn answer(connection: &str) -> ResponseHeader {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Connection", connection).unwrap();
        resp.insert_header("X-Private", "1").unwrap();
        resp.insert_header("X-Kept", "1").unwrap();
        resp
    }

    #[test]
    fn answers_lose_the_headers_connection_names_and_no_others() {
        let mut named = answer("Keep-Alive, X-PRIVATE");
        strip_hop_by_hop(&mut named);
        assert!(!named.headers.contains_key("x-private"));
        assert!(named.headers.contains_key("x-kept"));
        for options_only in ["keep-alive", "Close", " close , keep-alive "] {
            let mut kept = answer(options_only);
            strip_hop_by_hop(&mut kept);
            assert!(kept.headers.contains_key("x-private"), "{options_only}");
            assert!(kept.headers.contains_key("x-kept"), "{options_only}");
        }
    }

    #[test]
    fn finds_both_framings_in_a_raw_head() {
        assert!(raw_head_has_both_framings(b"POST / HTTP/1.1\r\nHost: t\r\ncontent-length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"));
        assert!(!raw_head_has_both_framings(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n"
        ));
        assert!(!raw_head_has_both_framings(
            b"GET /content-length:transfer-encoding: HTTP/1.1\r\n\r\n"
        ));
    }
}
