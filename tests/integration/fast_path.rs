//! What only the fast path's own upstream pool does: a pooled connection
//! the upstream has closed is found before reuse (counted as discarded,
//! the request sent once on a new connection), and a reusable one is
//! reused on every request, with no discard and no ERROR line.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::support::*;

/// An upstream that answers one request per connection with a length
/// (and no `Connection: close`), then closes it: every pooled connection
/// it leaves behind is dead. Counts requests; says when it has closed.
async fn closing_upstream() -> (String, Arc<AtomicUsize>, Arc<Notify>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(Notify::new());
    let (count, signal) = (requests.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut read = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut read).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&read[..n]),
                }
            }
            count.fetch_add(1, Ordering::SeqCst);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
            drop(conn);
            signal.notify_one();
        }
    });
    (url, requests, closed)
}

fn connections(outcome: &str) -> String {
    format!("bearer_proxy_upstream_connections_total{{outcome=\"{outcome}\",route=\"main\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_upstream_closed_is_discarded_before_reuse_and_nothing_is_sent_twice(
) {
    let idp = Idp::start().await;
    let echo = Upstream::start().await;
    let (url, requests, closed) = closing_upstream().await;
    let mut config = ProxyConfig::new(&idp, &echo);
    config.raw.routes[0] = RawRoute::open("main", "/", &url, "oic");
    // One worker thread: both requests meet the same thread's pool.
    config.server().threads = Some(1);
    config.server().fast_path = Some(true);
    let proxy = Proxy::start(&config).await;
    for n in 1..=3 {
        assert_eq!(get_status(proxy.url("/ic/x")).await, 200);
        // The upstream has closed the connection it answered on.
        closed.notified().await;
        assert_eq!(requests.load(Ordering::SeqCst), n, "sent once each");
    }
    assert_eq!(proxy.metric(&connections("new")).await, 3.0);
    assert_eq!(proxy.metric(&connections("reused")).await, 0.0);
    // The second and third requests each found the last one's dead.
    assert_eq!(proxy.metric(&connections("discarded")).await, 2.0);
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_upstream_connection_without_discards() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().threads = Some(1);
    let proxy = Proxy::start(&config).await;
    let client = client();
    for _ in 0..50 {
        let r = client.get(proxy.url("/ic/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(proxy.metric(&connections("new")).await, 1.0);
    assert_eq!(proxy.metric(&connections("reused")).await, 49.0);
    assert_eq!(proxy.metric(&connections("discarded")).await, 0.0);
    assert!(!proxy.output().contains("reusable stream"));
}
}

/// pingora's global pool (its path: `fast_path: false`, two worker
/// threads) discards a reusable connection now and then by a race of its
/// own; pingora logs each as `ERROR failed to acquire reusable stream`.
/// Concurrent keep-alive clients provoke it until it has happened; each
/// must be counted as `discarded`, none may reach the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingora_pool_discards_sampled_under_load_are_counted_and_never_logged() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().threads = Some(2);
    config.server().fast_path = Some(false);
    let proxy = Proxy::start(&config).await;
    let mut rounds = 0;
    while proxy.metric(&connections("discarded")).await == 0.0
        && !proxy.output().contains("reusable stream")
    {
        rounds += 1;
        assert!(rounds <= 40, "no discard in 40 rounds of 800 requests");
        let clients = (0..8).map(|_| {
            let (client, url) = (client(), proxy.url("/ic/x"));
            tokio::spawn(async move {
                for _ in 0..100 {
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        });
        for c in clients.collect::<Vec<_>>() {
            c.await.unwrap();
        }
    }
    let output = proxy.output();
    assert!(
        !output.contains("reusable stream"),
        "pingora's line reached the log after {rounds} rounds:\n{output}"
    );
    assert!(proxy.metric(&connections("discarded")).await >= 1.0);
}
