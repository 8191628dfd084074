//! W3C trace context in and out of HTTP heads.

use opentelemetry::propagation::{Extractor, Injector};

/// Reads `traceparent`/`tracestate` from a client's request.
pub struct Incoming<'a>(pub &'a http::HeaderMap);

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes them on the request that goes upstream, replacing the client's.
pub struct Outgoing<'a>(pub &'a mut pingora::http::RequestHeader);

impl Injector for Outgoing<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::try_from(value),
        ) {
            // pingora's own setter keeps its header-case map consistent.
            let _ = self.0.insert_header(name, value);
        }
    }
}
