//! The guard in front of pingora's reader: the connection's first bytes
//! judged by `head` and `chunk`, and a refusal answered with our own JSON
//! `400 bad_request` (never pingora's empty one), counted and logged like
//! every answer the proxy makes itself. The connection closes after it:
//! whatever the client sent next cannot be trusted to start a request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::chunk;
use super::head::{self, Framing, Verdict};
use crate::metrics::{self, metrics};
use crate::proxy::refusal::Refusal;
use crate::proxy::request_id;

/// How long a refused client gets to read the answer before the close.
const LINGER: Duration = Duration::from_millis(500);

/// Why the bytes are refused, or `None` to hand them to pingora.
pub fn judge(bytes: &[u8]) -> Option<&'static str> {
    match head::judge(bytes) {
        Verdict::Refuse(why) => Some(why.message()),
        Verdict::Plain {
            len,
            framing: Framing::Chunked,
        } => chunk::check(&bytes[len..]).err().map(chunk::Fault::message),
        Verdict::Plain { .. } | Verdict::Pass | Verdict::Incomplete => None,
    }
}

/// The whole answer to a refused head, as bytes on the wire.
pub fn answer(message: &'static str, request_id: &http::HeaderValue) -> Vec<u8> {
    let reply = Refusal::BadHead(message).reply();
    let body = reply.body(request_id);
    let mut out = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncache-control: no-store\r\n{}: {}\r\nconnection: close\r\n\r\n",
        body.len(),
        request_id::HEADER,
        request_id.to_str().unwrap_or_default(),
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Answers `message` on `stream`, counts and logs it, and closes.
pub async fn refuse<S>(stream: &mut S, message: &'static str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = std::time::Instant::now();
    let request_id = request_id::from_headers(&http::HeaderMap::new());
    let written = stream.write_all(&answer(message, &request_id)).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
    // Read what the client still sends, briefly: closing with unread
    // bytes would reset the connection and could destroy the answer.
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    metrics()
        .requests
        .with_label_values(&[metrics::NO_ROUTE, metrics::status_label(400)])
        .inc();
    tracing::info!(
        target: "bearer_proxy::access",
        request_id = request_id.to_str().unwrap_or_default(),
        route = metrics::NO_ROUTE,
        status = 400u16,
        total_ms = started.elapsed().as_secs_f64() * 1000.0,
        error = "bad_request",
        reason = message,
        answered = written.is_ok(),
        "request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastpath::corpus::{Expect, CASES};

    #[test]
    fn the_corpus_is_judged_as_expected() {
        for (name, bytes, expect) in CASES {
            let judged = judge(bytes);
            assert_eq!(
                judged.is_some(),
                *expect == Expect::Refuse,
                "{name}: {judged:?}"
            );
        }
    }

    #[test]
    fn the_answer_is_our_json_and_closes() {
        let id = http::HeaderValue::from_static("req-1");
        let bytes = answer("a NUL byte in the request head", &id);
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.contains("connection: close") && head.contains("x-request-id: req-1"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"], "bad_request");
        assert_eq!(json["request_id"], "req-1");
    }
}
