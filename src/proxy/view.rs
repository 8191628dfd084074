//! What the admit pipeline reads of a request, whichever transport read
//! it: the head (pingora's `RequestHeader` as a plain data type — the
//! `http` crate's parts plus the raw target and the client's spelling of
//! names, no session), the head's bytes as they arrived, and the
//! connection's facts. pingora's path implements [`Downstream`] for its
//! `Session`; the fast path for its own request.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use pingora::http::RequestHeader;

/// A future that ends when the client has gone (closed its connection)
/// while its request waits in a queue; pending forever when that cannot be
/// watched.
pub type Gone<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One request as the checks see it.
pub struct RequestView<'a> {
    pub head: &'a RequestHeader,
    pub client_ip: Option<IpAddr>,
}

/// The transport's side of admission: the request to judge, and a way to
/// notice a client that leaves while its request is queued.
pub trait Downstream {
    fn view(&self) -> RequestView<'_>;
    /// The head's bytes as they arrived (for what a parser normalised
    /// away); `None` where they are not at hand (HTTP/2). Asked only when
    /// a check needs them.
    fn raw_head(&self) -> Option<bytes::Bytes>;
    /// Whether the request has no body still to read (only such a
    /// client's close can be watched while it waits).
    fn body_empty(&mut self) -> bool;
    /// Ends when the client closes; called once, only when
    /// [`Downstream::body_empty`].
    fn gone(&mut self) -> Gone<'_>;
}

impl Downstream for pingora::proxy::Session {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            head: self.req_header(),
            client_ip: client_ip(self),
        }
    }

    fn raw_head(&self) -> Option<bytes::Bytes> {
        Some(self.as_downstream().as_http1()?.get_headers_raw_bytes())
    }

    fn body_empty(&mut self) -> bool {
        self.as_downstream_mut().is_body_empty()
    }

    fn gone(&mut self) -> Gone<'_> {
        let downstream = self.as_downstream_mut();
        Box::pin(async move {
            let _ = downstream.read_body_or_idle(true).await;
        })
    }
}

/// The client's address on pingora's path.
pub fn client_ip(session: &pingora::proxy::Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}
