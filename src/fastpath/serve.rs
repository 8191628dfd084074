//! Where a request read by the keep-alive loop enters the fast path: a
//! plain head is served here ([`FastPath::try_serve`]); anything else
//! (HTTP/2's preface, an upgrade, `Expect: 100-continue`, a method that
//! is never forwarded, a head not all read) goes back to pingora's path
//! with its bytes untouched.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use http::Method;
use pingora::protocols::Stream;

use super::exchange::{self, After, Conn};
use super::head::Verdict;
use super::request::{self, FastRequest};
use crate::downstream_tls::CertSubject;
use crate::proxy::Snapshot;

/// The fast path of one proxy service (`server.fast_path: true`).
pub struct FastPath {
    pub current: Arc<ArcSwap<Snapshot>>,
}

/// What became of a request offered to the fast path.
#[derive(Debug)]
pub enum Tried {
    /// Not plain: pingora's path takes these bytes.
    NotMine(BytesMut),
    Served(After),
}

impl FastPath {
    /// Serves the request at the start of `bytes` if it is plain;
    /// `first` is the guard's verdict on its head (not parsed again).
    /// `closing`: the server is shutting down (the answer says `close`).
    pub async fn try_serve(
        &self,
        stream: &mut Stream,
        mut bytes: BytesMut,
        first: &Verdict,
        closing: bool,
    ) -> Tried {
        let (len, framing) = match *first {
            Verdict::Plain { len, framing } => (len, framing),
            _ => return Tried::NotMine(bytes),
        };
        let raw = bytes.split_to(len).freeze();
        let head = match request::build(&raw) {
            Some(head) if head.method != Method::TRACE && head.method != Method::CONNECT => head,
            // pingora's path takes it, bytes untouched: the split undone.
            _ => {
                let mut whole = BytesMut::from(raw);
                whole.unsplit(bytes);
                return Tried::NotMine(whole);
            }
        };
        let conn = facts(stream);
        let req = FastRequest {
            head,
            raw,
            framing,
            client_ip: stream
                .get_socket_digest()
                .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip())),
            stream,
            pending: bytes,
            keep_alive_ok: !closing,
        };
        Tried::Served(exchange::serve(self.current.load_full(), req, &conn).await)
    }
}

/// The connection's TLS facts (read per request: cheap, and the same).
fn facts(stream: &Stream) -> Conn {
    let tls = stream.get_ssl_digest();
    Conn {
        tls: tls.is_some(),
        cert_subject: tls.and_then(|d| d.extension.get::<CertSubject>().map(|s| s.0.clone())),
    }
}
