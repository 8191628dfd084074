//! The upstream's answer head as the fast path reads and writes it: built
//! into the `ResponseHeader` pingora's client builds (so both transports
//! judge and finish the same head), its body's framing, and the head on
//! the client's wire as pingora's server writes it.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{StatusCode, Version};
use pingora::http::{IntoCaseHeaderName, ResponseHeader};
use pingora::protocols::Stream;
use tokio::io::AsyncReadExt;

use super::body::{Framing, ReadFault};
use super::head::MAX_HEADERS;

/// The largest answer head read (pingora's client reads as much).
const MAX_HEAD: usize = 64 * 1024;

/// Why no answer head could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadFault {
    Read(ReadFault),
    /// Not an HTTP/1 answer head, or too large.
    Invalid,
}

/// Reads one answer head from the upstream into `buf` and builds it;
/// what follows it stays in `buf`. Both `Content-Length` and
/// `Transfer-Encoding`: the length is dropped (RFC 9112 §6.3, as
/// pingora's client does) and `ambiguous` says so.
pub async fn read_head(
    up: &mut Stream,
    buf: &mut BytesMut,
    timeout: Duration,
) -> Result<(ResponseHeader, bool), HeadFault> {
    loop {
        if let Some(done) = parse_head(buf)? {
            return Ok(done);
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadFault::Invalid);
        }
        buf.reserve(4096);
        match tokio::time::timeout(timeout, up.read_buf(buf)).await {
            Err(_) => return Err(HeadFault::Read(ReadFault::TimedOut)),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadFault::Read(ReadFault::Closed)),
            Ok(Ok(_)) => {}
        }
    }
}

/// The head at the front of `buf`, taken out of it, if it is all there.
pub fn parse_head(buf: &mut BytesMut) -> Result<Option<(ResponseHeader, bool)>, HeadFault> {
    let len = {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(HeadFault::Invalid),
        }
    };
    // Names and values become slices of the head's bytes, not copies.
    let raw = buf.split_to(len).freeze();
    build(&raw).map(Some)
}

/// The answer head `raw` (parsed whole before) as pingora's client builds it.
fn build(raw: &bytes::Bytes) -> Result<(ResponseHeader, bool), HeadFault> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    if !matches!(resp.parse(raw), Ok(httparse::Status::Complete(_))) {
        return Err(HeadFault::Invalid);
    }
    let code = resp.code.ok_or(HeadFault::Invalid)?;
    let mut head =
        ResponseHeader::build(code, Some(resp.headers.len())).map_err(|_| HeadFault::Invalid)?;
    head.set_version(match resp.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(HeadFault::Invalid),
    });
    head.set_reason_phrase(resp.reason)
        .map_err(|_| HeadFault::Invalid)?;
    for h in resp.headers.iter() {
        let name = raw.slice_ref(h.name.as_bytes()).into_case_header_name();
        let value = pingora::http::header_value_from_raw(raw.slice_ref(h.value));
        head.append_header(name, value)
            .map_err(|_| HeadFault::Invalid)?;
    }
    let ambiguous =
        head.headers.contains_key(CONTENT_LENGTH) && head.headers.contains_key(TRANSFER_ENCODING);
    if ambiguous {
        head.remove_header(&CONTENT_LENGTH);
    }
    Ok((head, ambiguous))
}

/// How the answer's body is delimited, by RFC 9112 §6.3: none after HEAD
/// and for 204 and 304; chunked; one decimal length; else until close. A
/// length that is not one decimal number is refused (`None`).
pub fn framing(head: &ResponseHeader, head_request: bool) -> Option<Framing> {
    if head_request
        || matches!(
            head.status,
            StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
        )
    {
        return Some(Framing::Empty);
    }
    if let Some(te) = head.headers.get(TRANSFER_ENCODING) {
        let chunked = te
            .as_bytes()
            .rsplit(|b| *b == b',')
            .next()
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return Some(if chunked {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    let mut lengths = head.headers.get_all(CONTENT_LENGTH).iter();
    match (lengths.next(), lengths.next()) {
        (None, _) => Some(Framing::Close),
        (Some(one), None) => {
            let s = one.to_str().ok()?.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok().map(Framing::Length)
        }
        (Some(_), Some(_)) => None,
    }
}

/// The head as pingora's server writes it: status line, the headers in
/// the upstream's spelling, blank line.
pub fn to_wire(head: &ResponseHeader, out: &mut BytesMut) {
    out.put_slice(match head.version {
        Version::HTTP_10 => b"HTTP/1.0 ",
        _ => b"HTTP/1.1 ",
    });
    out.put_slice(head.status.as_str().as_bytes());
    out.put_u8(b' ');
    if let Some(reason) = head.get_reason_phrase() {
        out.put_slice(reason.as_bytes());
    }
    out.put_slice(b"\r\n");
    head.header_to_h1_wire(out);
    out.put_slice(b"\r\n");
}
