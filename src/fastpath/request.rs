//! A plain request head read by the fast path: built into the same
//! `RequestHeader` pingora's reader builds (the client's spelling of
//! names kept, so the upstream gets the same bytes), and offered to the
//! admit pipeline as a [`Downstream`].

use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use http::Version;
use pingora::http::{IntoCaseHeaderName, RequestHeader};
use pingora::protocols::Stream;
use tokio::io::AsyncReadExt;

use super::head::{Framing, MAX_HEADERS};
use crate::proxy::view::{Downstream, Gone, RequestView};

/// A request the fast path serves.
pub struct FastRequest<'s> {
    pub head: RequestHeader,
    /// The head's bytes as they came.
    pub raw: Bytes,
    pub framing: Framing,
    pub client_ip: Option<IpAddr>,
    /// The client's connection.
    pub stream: &'s mut Stream,
    /// Bytes read past the head: the body's start, or the next request.
    pub pending: BytesMut,
    /// The connection may carry another request (not while shutting down).
    pub keep_alive_ok: bool,
}

/// The head `raw` (already judged plain), as pingora's reader would
/// build it; `None` when it cannot be built (then pingora's path takes
/// the request as before). Names and values are slices of `raw`, not
/// copies.
pub fn build(raw: &Bytes) -> Option<RequestHeader> {
    let len = raw.len();
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(raw) {
        Ok(httparse::Status::Complete(n)) if n == len => {}
        _ => return None,
    }
    let mut head =
        RequestHeader::build(req.method?, req.path?.as_bytes(), Some(req.headers.len())).ok()?;
    head.set_version(match req.version? {
        1 => Version::HTTP_11,
        _ => Version::HTTP_10,
    });
    for h in req.headers.iter() {
        let name = raw.slice_ref(h.name.as_bytes()).into_case_header_name();
        let value = http::HeaderValue::from_maybe_shared(raw.slice_ref(h.value)).ok()?;
        head.append_header(name, value).ok()?;
    }
    Some(head)
}

impl Downstream for FastRequest<'_> {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            head: &self.head,
            client_ip: self.client_ip,
        }
    }

    fn raw_head(&self) -> Option<Bytes> {
        Some(self.raw.clone())
    }

    fn body_empty(&mut self) -> bool {
        self.framing == Framing::None
    }

    /// Reads what the client sends while the request waits: end of stream
    /// means it left; bytes (a pipelined request) are kept for later and
    /// the watch ends without a verdict.
    fn gone(&mut self) -> Gone<'_> {
        let stream = &mut *self.stream;
        let pending = &mut self.pending;
        Box::pin(async move {
            match stream.read_buf(pending).await {
                Ok(0) | Err(_) => {}
                Ok(_) => std::future::pending::<()>().await,
            }
        })
    }
}
