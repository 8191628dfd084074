//! The request head as pingora's path prepares it for the upstream before
//! and after our rewrite (pingora-proxy's default
//! `HttpUpstreamRequestPolicy`), so both transports send the same bytes:
//! HTTP/1.1; the fields the client's `Connection` nominates removed (a
//! malformed or protected nomination refused); the hop-by-hop fields
//! removed; and a body without a length sent chunked.

use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderName, Version};
use pingora::http::RequestHeader;

/// Nominations in `Connection` beyond this many refuse the request
/// (pingora's bound against a request-time denial of service).
const MAX_NOMINATIONS: usize = 10;

/// Fields never forwarded (RFC 9110 §7.6.1, and what pingora adds).
const HOP_BY_HOP: [&str; 10] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "connection",
    "upgrade",
    "http2-settings",
];

/// A `Connection` header pingora's path refuses: too many nominations, a
/// malformed one, or one naming a field the proxy sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadNomination;

/// Before the rewrite.
pub fn before_rewrite(req: &mut RequestHeader) -> Result<(), BadNomination> {
    req.set_version(Version::HTTP_11);
    // Most requests carry none of these: one pass over the names instead
    // of ten removals, each a lookup in two maps.
    let present = req.headers.keys().any(|k| HOP_BY_HOP.contains(&k.as_str()));
    if !present {
        return Ok(());
    }
    for name in nominated(req)? {
        req.remove_header(&name);
    }
    for name in HOP_BY_HOP {
        req.remove_header(name);
    }
    Ok(())
}

/// After the rewrite: a body without a length goes chunked.
pub fn after_rewrite(req: &mut RequestHeader, has_body: bool) {
    if has_body
        && !req.headers.contains_key(CONTENT_LENGTH)
        && !req.headers.contains_key(TRANSFER_ENCODING)
    {
        let _ = req.insert_header(TRANSFER_ENCODING, "chunked");
    }
}

/// The field names `Connection` nominates.
fn nominated(req: &RequestHeader) -> Result<Vec<HeaderName>, BadNomination> {
    let mut names = Vec::new();
    let tokens = req
        .headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty());
    for (count, token) in tokens.enumerate() {
        if count + 1 >= MAX_NOMINATIONS
            || token.starts_with(b":")
            || !token.iter().all(|b| tchar(*b))
        {
            return Err(BadNomination);
        }
        let name = HeaderName::from_bytes(token).map_err(|_| BadNomination)?;
        if matches!(
            name.as_str(),
            "host" | "x-forwarded-for" | "x-forwarded-host" | "x-forwarded-proto"
        ) {
            return Err(BadNomination);
        }
        names.push(name);
    }
    Ok(names)
}

/// An RFC 9110 `tchar`.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> RequestHeader {
        let mut h = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            h.append_header(n.to_string(), *v).unwrap();
        }
        h
    }

    #[test]
    fn nominated_and_hop_by_hop_fields_are_removed() {
        let mut h = head(&[
            ("connection", "x-drop, keep-alive"),
            ("x-drop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("x-keep", "1"),
        ]);
        before_rewrite(&mut h).unwrap();
        let names: Vec<_> = h.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-keep"]);
        after_rewrite(&mut h, true);
        assert_eq!(h.headers["transfer-encoding"], "chunked");
    }

    #[test]
    fn protected_malformed_or_too_many_nominations_are_refused() {
        for bad in [
            "host",
            "x-forwarded-for",
            ":authority",
            "\"x-a\"",
            "a,b,c,d,e,f,g,h,i,j",
        ] {
            assert!(
                before_rewrite(&mut head(&[("connection", bad)])).is_err(),
                "{bad}"
            );
        }
        assert!(before_rewrite(&mut head(&[("connection", "a,b,c,d,e,f,g,h,i")])).is_ok());
    }
}
