//! An admitted HTTP/1 connection's keep-alive loop, with the connection
//! parked small between requests.
//!
//! pingora's own loop (its `ServerApp` impl for every `HttpServerApp`)
//! calls `process_new_http` at once, and that future — the whole proxy
//! state machine (~11 KiB, boxed) with a 4 KiB head buffer — then waits
//! for the next request for as long as the client stays idle. Here the
//! connection waits in `park`, a future of a few hundred bytes that owns
//! no buffer: each poll reads into a buffer on the poll's own stack, so
//! nothing is allocated until the next request's first bytes have arrived.
//! Those bytes become the new session's pipelined prefix (pingora's public
//! way to hand a session bytes already read), so the head is not read
//! twice and no byte is lost. Before that, the bytes pass the smuggling
//! guard (`fastpath::guard`): a head or first chunks with ambiguous
//! framing is answered with our JSON 400 and the connection closed. A
//! plain head then goes to the fast path (`server.fast_path`), which
//! serves the request itself and hands back what it read of the next one;
//! any other goes to pingora, whose time-outs, keep-alive request limit,
//! `Connection: close` and HTTP/1.0 handling are carried from one of its
//! requests to the next by its `HttpPersistentSettings`.

use std::future::{poll_fn, Future};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, ReadBuf};

use crate::fastpath::exchange::After;
use crate::fastpath::serve::{FastPath, Tried};

/// pingora's first read of a request head (its `INIT_HEADER_BUF_SIZE`):
/// a head this size arrives in one read, as it would without parking.
const FIRST_READ: usize = 4096;

/// pingora's keep-alive time-out for a connection's first request, which
/// `early_request_filter` replaces with `server.client_idle_timeout`.
const FIRST_KEEPALIVE_SECS: u64 = 60;

/// The settings of one wait and one head.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a parked connection may stay idle.
    pub idle: Duration,
    /// How long each read of a head's rest may take.
    pub head_read: Duration,
    /// How much of a head is read for the guard; a longer one goes to
    /// pingora unjudged (and its hooks refuse it as too large).
    pub max_head: usize,
}

/// Serves HTTP/1 requests on `stream` until the client, a time-out, the
/// keep-alive limit or shutdown ends the connection.
pub(super) async fn serve_http1<A>(
    app: &Arc<A>,
    mut stream: Stream,
    timing: &(dyn Fn() -> Timing + Send + Sync),
    fast: Option<&FastPath>,
    shutdown: &ShutdownWatch,
) where
    A: HttpServerApp + Send + Sync + 'static,
{
    let limit = app.server_options().and_then(|o| o.keepalive_request_limit);
    let mut carried: Option<HttpPersistentSettings> = None;
    // Bytes of the next request the fast path read with the last one.
    let mut next: Option<BytesMut> = None;
    let mut served = 0u32;
    loop {
        let timing = timing();
        let mut head = match next.take().filter(|b| !b.is_empty()) {
            Some(bytes) => bytes,
            None => match park(&mut stream, timing.idle, shutdown).await {
                Some(bytes) => bytes,
                None => return,
            },
        };
        rest_of_head(&mut stream, &mut head, &timing).await;
        // Framing two readers could disagree on is never forwarded.
        let first = match crate::fastpath::guard::check(&head) {
            Ok(first) => first,
            Err(why) => {
                crate::fastpath::guard::refuse(&mut stream, why).await;
                return;
            }
        };
        if let Some(fast) = fast {
            served += 1;
            let closing = *shutdown.borrow() || limit.is_some_and(|l| served >= l);
            // Boxed: the exchange's state (several KiB) must not sit in
            // every parked connection's future, which is as large as its
            // largest await point.
            let served = Box::pin(fast.try_serve(&mut stream, head, &first, closing));
            match served.await {
                Tried::Served(After::KeepAlive(rest)) => {
                    next = Some(rest);
                    continue;
                }
                Tried::Served(After::Close) => return,
                Tried::NotMine(bytes) => head = bytes,
            }
        }
        let mut session = ServerSession::new_http1(stream);
        match carried.take() {
            Some(settings) => settings.apply_to_session(&mut session),
            None => {
                session.set_keepalive(Some(FIRST_KEEPALIVE_SECS));
                session.set_keepalive_reuses_remaining(limit);
            }
        }
        if *shutdown.borrow() {
            session.set_keepalive(None);
        }
        session.set_pipelined_prefix(head);
        let served = crate::upstream_pool::scope(app.process_new_http(session, shutdown));
        let Some(reused) = served.await else {
            return;
        };
        (stream, carried) = reused.consume();
    }
}

/// Reads on until `head` holds a whole request head (or the guard can
/// already refuse it), so a head split over several packets is judged
/// like one that arrived at once. Past `max_head` bytes, at end of stream
/// or after a read time-out, the bytes go to pingora as they are, whose
/// own reading ends the request as before.
async fn rest_of_head(stream: &mut Stream, head: &mut BytesMut, timing: &Timing) {
    use tokio::io::AsyncReadExt;
    // `incomplete`, not `judge`: the guard parses the head once, after.
    while head.len() < timing.max_head && crate::fastpath::head::incomplete(head) {
        head.reserve(FIRST_READ);
        match tokio::time::timeout(timing.head_read, stream.read_buf(head)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

/// Waits for the next request's first bytes and returns them, or `None`
/// when the client closed, stayed idle past `idle`, or the server began
/// shutting down (an idle keep-alive connection is closed at once then;
/// one whose request bytes have already arrived is still served).
async fn park(stream: &mut Stream, idle: Duration, shutdown: &ShutdownWatch) -> Option<BytesMut> {
    if *shutdown.borrow() {
        return first_bytes_now(stream);
    }
    let mut shutdown = shutdown.clone();
    tokio::select! {
        biased;
        head = tokio::time::timeout(idle, first_bytes(stream)) => head.ok().flatten(),
        _ = shutdown.wait_for(|down| *down) => first_bytes_now(stream),
    }
}

/// The next bytes the client sends, read without a buffer held across the
/// wait; `None` at end of stream or on a read error.
async fn first_bytes(stream: &mut Stream) -> Option<BytesMut> {
    poll_fn(|cx| {
        // Uninitialised: zeroing 4 KiB on every poll cost more than the
        // rest of the wait (callgrind).
        let mut scratch = [MaybeUninit::<u8>::uninit(); FIRST_READ];
        let mut buf = ReadBuf::uninit(&mut scratch);
        match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "client connection read failed while idle");
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                let mut head = BytesMut::with_capacity(FIRST_READ);
                head.extend_from_slice(buf.filled());
                Poll::Ready(Some(head))
            }
        }
    })
    .await
}

/// Bytes that are already readable, without waiting: at shutdown a
/// request that has arrived is served, an idle connection closed.
fn first_bytes_now(stream: &mut Stream) -> Option<BytesMut> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::pin!(first_bytes(stream)).poll(&mut cx) {
        Poll::Ready(head) => head,
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    //! Real sockets against a minimal `HttpServerApp`; where the
    //! behaviour is pingora's (the keep-alive request limit), the parked
    //! loop is compared with pingora's own loop on the same app.

    use super::*;
    use async_trait::async_trait;
    use pingora::apps::http_app::ServeHttp;
    use pingora::apps::{HttpServerOptions, ReusedHttpStream, ServerApp};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;
    use tokio::task::JoinHandle;
    use tokio::time::{timeout, Instant};

    /// Answers every request with 200 "ok" and pingora's settings.
    struct Ok200;

    #[async_trait]
    impl ServeHttp for Ok200 {
        async fn response(&self, _: &mut ServerSession) -> http::Response<Vec<u8>> {
            http::Response::builder()
                .header("content-length", "2")
                .body(b"ok".to_vec())
                .unwrap()
        }
    }

    /// `Ok200` with a keep-alive request limit.
    struct Limited {
        app: Arc<Ok200>,
        options: HttpServerOptions,
    }

    #[async_trait]
    impl HttpServerApp for Limited {
        async fn process_new_http(
            self: &Arc<Self>,
            session: ServerSession,
            shutdown: &ShutdownWatch,
        ) -> Option<ReusedHttpStream> {
            self.app.process_new_http(session, shutdown).await
        }

        fn server_options(&self) -> Option<&HttpServerOptions> {
            Some(&self.options)
        }
    }

    fn limited(limit: u32) -> Arc<Limited> {
        let mut options = HttpServerOptions::default();
        options.keepalive_request_limit = Some(limit);
        Arc::new(Limited {
            app: Arc::new(Ok200),
            options,
        })
    }

    /// One connection accepted and served by the parked loop (or, with
    /// `pingora_loop`, by pingora's own); the task ends with the loop.
    async fn one_connection(
        app: Arc<Limited>,
        idle: Duration,
        pingora_loop: bool,
    ) -> (SocketAddr, watch::Sender<bool>, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (down, shutdown) = watch::channel(false);
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(tcp));
            if pingora_loop {
                let mut next = Some(stream);
                while let Some(s) = next {
                    next = ServerApp::process_new(&app, s, &shutdown).await;
                }
            } else {
                let timing = move || Timing {
                    idle,
                    head_read: Duration::from_secs(5),
                    max_head: 64 * 1024,
                };
                serve_http1(&app, stream, &timing, None, &shutdown).await;
            }
        });
        (addr, down, task)
    }

    /// Sends `request` (in one write, or a byte at a time) and reads one
    /// answer; false when the connection closed instead.
    async fn answered(conn: &mut TcpStream, request: &[u8], bytewise: bool) -> bool {
        let sent = if bytewise {
            let mut r = Ok(());
            for b in request {
                r = r.and(conn.write_all(std::slice::from_ref(b)).await);
            }
            r
        } else {
            conn.write_all(request).await
        };
        if sent.is_err() {
            return false;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\nok") {
            match timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => return false,
            }
        }
        got.starts_with(b"HTTP/1.1 200")
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

    async fn requests_until_closed(app: Arc<Limited>, pingora_loop: bool) -> usize {
        let (addr, _down, task) = one_connection(app, Duration::from_secs(30), pingora_loop).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let mut n = 0;
        while n < 20 && answered(&mut conn, GET, false).await {
            n += 1;
        }
        timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        n
    }

    #[tokio::test]
    async fn the_keepalive_request_limit_ends_a_connection_as_pingoras_own_loop_does() {
        let ours = requests_until_closed(limited(3), false).await;
        let pingoras = requests_until_closed(limited(3), true).await;
        assert!(ours < 20, "the limit never closed the connection");
        assert_eq!(ours, pingoras);
    }

    #[tokio::test]
    async fn heads_split_into_single_bytes_or_larger_than_the_first_read_are_served() {
        let (addr, _down, task) =
            one_connection(limited(100), Duration::from_secs(30), false).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.set_nodelay(true).unwrap();
        assert!(answered(&mut conn, GET, true).await);
        let big = format!(
            "GET / HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(3 * FIRST_READ)
        );
        assert!(answered(&mut conn, big.as_bytes(), false).await);
        assert!(answered(&mut conn, GET, true).await);
        drop(conn);
        // The client's close ends the parked loop.
        timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_parked_connection_is_closed_after_the_idle_timeout() {
        let idle = Duration::from_millis(300);
        let (addr, _down, task) = one_connection(limited(100), idle, false).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert!(answered(&mut conn, GET, false).await);
        let parked = Instant::now();
        let mut buf = [0u8; 16];
        let read = timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0))), "not closed: {read:?}");
        assert!(parked.elapsed() >= idle - Duration::from_millis(50));
        timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn shutdown_closes_a_parked_connection_at_once() {
        let (addr, down, task) = one_connection(limited(100), Duration::from_secs(60), false).await;
        let mut conn = TcpStream::connect(addr).await.unwrap();
        assert!(answered(&mut conn, GET, false).await);
        down.send(true).unwrap();
        let mut buf = [0u8; 16];
        let read = timeout(Duration::from_secs(2), conn.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0))), "not closed: {read:?}");
        timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }
}
