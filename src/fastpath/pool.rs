//! The fast path's upstream connections: one idle list per worker thread
//! and peer, so taking and giving back a connection is a thread-local
//! push and pop — no lock, no task watching each idle connection, and no
//! way to lose a reusable one to another thread (pingora's global pool
//! discards one when its idle-watch task on another thread still holds
//! it). A connection the upstream closed, or that has unread bytes, is
//! found before reuse by one read that must answer "nothing yet"; idle
//! ones past the peer's idle time-out are dropped.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pingora::protocols::Stream;
use tokio::io::{AsyncRead, ReadBuf};

/// Idle connections kept per peer and worker thread; more are closed.
pub const MAX_IDLE_PER_PEER: usize = 64;

struct Idle {
    stream: Stream,
    since: Instant,
}

thread_local! {
    static IDLE: RefCell<HashMap<u64, VecDeque<Idle>>> = RefCell::new(HashMap::new());
}

/// What taking a connection found.
pub struct Taken {
    pub stream: Option<Stream>,
    /// Idle connections found closed (or talking) and dropped.
    pub discarded: u64,
}

/// The most recently used live idle connection to `peer` (its pingora
/// `reuse_hash`: address, TLS, SNI, CA list, verification), if any.
pub fn take(peer: u64, idle_timeout: Duration) -> Taken {
    let mut discarded = 0;
    let now = Instant::now();
    loop {
        let idle = IDLE.with(|pool| {
            pool.borrow_mut()
                .get_mut(&peer)
                .and_then(VecDeque::pop_back)
        });
        let Some(mut idle) = idle else {
            return Taken {
                stream: None,
                discarded,
            };
        };
        if now.duration_since(idle.since) >= idle_timeout {
            // The oldest are at the front; everything there is older.
            IDLE.with(|pool| pool.borrow_mut().remove(&peer));
            return Taken {
                stream: None,
                discarded,
            };
        }
        if quiet(&mut idle.stream) {
            return Taken {
                stream: Some(idle.stream),
                discarded,
            };
        }
        discarded += 1;
    }
}

/// Gives a connection back for reuse (the newest at the back).
pub fn put(peer: u64, stream: Stream) {
    IDLE.with(|pool| {
        let mut pool = pool.borrow_mut();
        let list = pool.entry(peer).or_default();
        if list.len() >= MAX_IDLE_PER_PEER {
            list.pop_front();
        }
        list.push_back(Idle {
            stream,
            since: Instant::now(),
        });
    });
}

/// Whether the connection has nothing to say: a read that would wait.
/// End of stream (the upstream closed it), bytes nobody asked for, or an
/// error all make it unusable.
fn quiet(stream: &mut Stream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(
            client.unwrap(),
        ));
        (stream, accepted.unwrap().0)
    }

    #[tokio::test]
    async fn a_live_connection_is_reused_and_a_closed_or_talking_one_discarded() {
        let (live, _keep) = pair().await;
        let (closed, server) = pair().await;
        let (talking, mut chatty) = pair().await;
        drop(server);
        chatty.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        let (mut closed, mut talking) = (closed, talking);
        for stream in [&mut closed, &mut talking] {
            // Until the close or the bytes have arrived.
            tokio::time::timeout(Duration::from_secs(5), async {
                while quiet(stream) {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap();
        }
        put(7, live);
        put(7, closed);
        put(7, talking);
        let taken = take(7, Duration::from_secs(60));
        assert!(taken.stream.is_some());
        assert_eq!(taken.discarded, 2);
        assert!(take(7, Duration::from_secs(60)).stream.is_none());
    }

    #[tokio::test]
    async fn idle_connections_past_the_timeout_are_dropped_and_the_list_is_bounded() {
        let mut keep = Vec::new();
        for _ in 0..MAX_IDLE_PER_PEER + 3 {
            let (s, server) = pair().await;
            keep.push(server);
            put(9, s);
        }
        let len = IDLE.with(|p| p.borrow().get(&9).map_or(0, VecDeque::len));
        assert_eq!(len, MAX_IDLE_PER_PEER);
        let taken = take(9, Duration::ZERO);
        assert!(taken.stream.is_none());
        assert_eq!(
            IDLE.with(|p| p.borrow().get(&9).map_or(0, VecDeque::len)),
            0
        );
    }
}
