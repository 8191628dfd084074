//! `X-Request-Id`: kept when the client sent a sane one, created otherwise.

use http::{HeaderMap, HeaderName, HeaderValue};

pub const HEADER: &str = "x-request-id";
/// For lookups: a `&str` name is parsed again on every lookup.
pub(crate) static NAME: HeaderName = HeaderName::from_static(HEADER);

/// The client's id if it is 1–128 characters of `[A-Za-z0-9._:-]` (so it is
/// safe to log and echo), else a new UUID.
pub fn from_headers(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&NAME)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= 128
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
        })
        .cloned()
        .unwrap_or_else(new_id)
}

/// A random (version 4) UUID from the thread-local generator: no system
/// call per request, unlike `Uuid::new_v4`.
pub(crate) fn new_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buf = uuid::Uuid::encode_buffer();
    HeaderValue::from_str(id.hyphenated().encode_lower(&mut buf)).expect("uuid is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, "abc-123".parse().unwrap());
        assert_eq!(from_headers(&h), "abc-123");
        h.insert(HEADER, "bad id\twith spaces".parse().unwrap());
        assert_eq!(from_headers(&h).len(), 36);
        assert_eq!(from_headers(&HeaderMap::new()).len(), 36);
    }
}
