//! The guard in front of pingora's reader: the connection's first bytes
//! judged by `head` and `chunk`, and a refusal answered with our own JSON
//! `400 bad_request` (never pingora's empty one), counted and logged like
//! every answer the proxy makes itself. The connection closes after it:
//! whatever the client sent next cannot be trusted to start a request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::chunk;
use super::head::{self, Framing, Refused, Verdict};
use crate::metrics::{self, metrics};
use crate::proxy::refusal::{ErrorReply, Refusal};
use crate::proxy::request_id;

/// How long a refused client gets to read the answer before the close.
const LINGER: Duration = Duration::from_millis(500);

/// Why the bytes are refused, or `None` to hand them on. Every request
/// the bytes hold whole is judged, so a request pipelined behind a plain
/// one cannot slip past inside the same read.
pub fn judge(bytes: &[u8]) -> Option<Refusal> {
    check(bytes).err()
}

/// [`judge`], with the first head's verdict when nothing is refused (the
/// fast path takes it from here rather than parsing the head again).
pub fn check(bytes: &[u8]) -> Result<Verdict, Refusal> {
    let first = head::judge(bytes);
    let mut at = 0;
    let mut verdict = first.clone();
    while at < bytes.len() {
        match one(&bytes[at..], verdict)? {
            Some(len) => at += len,
            None => break,
        }
        verdict = head::judge(&bytes[at..]);
    }
    Ok(first)
}

/// The request at the start of `bytes` (`verdict`: its head's): refused,
/// or its whole length (head and body) when the bytes hold all of it.
fn one(bytes: &[u8], verdict: Verdict) -> Result<Option<usize>, Refusal> {
    let (len, framing) = match verdict {
        Verdict::Refuse(Refused::TooManyHeaders) => {
            return Err(Refusal::HeadersTooLarge(
                Refused::TooManyHeaders.message().into(),
            ))
        }
        Verdict::Refuse(why) => return Err(Refusal::BadHead(why.message())),
        Verdict::Plain { len, framing } => (len, framing),
        Verdict::Pass | Verdict::Incomplete => return Ok(None),
    };
    let body = match framing {
        Framing::None => Some(0),
        Framing::Length(n) => usize::try_from(n).ok(),
        Framing::Chunked => match chunk::check(&bytes[len..]) {
            Ok(chunk::Progress::Complete(n)) => Some(n),
            Ok(chunk::Progress::Partial) => None,
            Err(fault) => return Err(Refusal::BadHead(fault.message())),
        },
    };
    Ok(body
        .and_then(|b| len.checked_add(b))
        .filter(|end| *end <= bytes.len()))
}

/// The whole answer to a refused head, as bytes on the wire.
pub fn answer(reply: &ErrorReply, request_id: &http::HeaderValue) -> Vec<u8> {
    let body = reply.body(request_id);
    let reason = http::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Bad Request");
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncache-control: no-store\r\n{}: {}\r\nconnection: close\r\n\r\n",
        reply.status,
        body.len(),
        request_id::HEADER,
        request_id.to_str().unwrap_or_default(),
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Answers `refusal` on `stream`, counts and logs it, and closes.
pub async fn refuse<S>(stream: &mut S, refusal: Refusal)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = std::time::Instant::now();
    let request_id = request_id::new_id();
    let reply = refusal.reply();
    let written = stream.write_all(&answer(&reply, &request_id)).await;
    let _ = stream.flush().await;
    let _ = stream.shutdown().await;
    // Read what the client still sends, briefly: closing with unread
    // bytes would reset the connection and could destroy the answer.
    // On the heap: an array here would sit in every connection's parked
    // future (an async fn is as large as its largest await point).
    let mut sink = vec![0u8; 4096];
    let _ = tokio::time::timeout(LINGER, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    metrics()
        .requests
        .with_label_values(&[metrics::NO_ROUTE, metrics::status_label(reply.status)])
        .inc();
    tracing::info!(
        target: "bearer_proxy::access",
        request_id = request_id.to_str().unwrap_or_default(),
        route = metrics::NO_ROUTE,
        status = reply.status,
        total_ms = started.elapsed().as_secs_f64() * 1000.0,
        error = reply.code,
        reason = ?refusal,
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
    fn a_request_pipelined_behind_a_plain_one_is_judged_too() {
        let cl_te = CASES.iter().find(|c| c.0 == "CL.TE").unwrap().1;
        for first in [
            &b"GET /ic/a HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
            b"POST /ic/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        ] {
            let mut bytes = first.to_vec();
            assert!(judge(&bytes).is_none());
            bytes.extend_from_slice(cl_te);
            assert!(judge(&bytes).is_some(), "{:?}", String::from_utf8_lossy(first));
        }
        // A body that has not all arrived ends the judging: what follows
        // it is body, not a head.
        let partial = b"POST /ic/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nGET / HTTP/1.1\nX: y\r\n\r\n";
        assert!(judge(partial).is_none());
    }

    #[test]
    fn the_answer_is_our_json_and_closes() {
        let id = http::HeaderValue::from_static("req-1");
        let bytes = answer(
            &Refusal::BadHead("a NUL byte in the request head").reply(),
            &id,
        );
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
