//! The connection ceiling: beyond `server.max_connections` a new client
//! connection is closed at once; admitted ones keep working, and a freed
//! place admits the next.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const REQUEST: &[u8] = b"GET /x HTTP/1.1\r\nHost: proxy\r\n\r\n";

/// Sends one keep-alive request on `conn` and reads the whole answer
/// (head, then `Content-Length` bytes of body); true for a 200.
async fn served(conn: &mut TcpStream) -> bool {
    if conn.write_all(REQUEST).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < head_end + length {
        match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    head.starts_with("http/1.1 200")
}

/// Whether the proxy closes `conn` (EOF or reset) within `within`.
async fn closed(conn: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, conn.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_connections_are_served_the_rest_closed_at_once_and_a_freed_place_admits() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().max_connections = Some(50);
    let proxy = Proxy::start(&config).await;
    let listener = format!("127.0.0.1:{}", proxy.port);
    let open = format!("bearer_proxy_connections{{listener=\"{listener}\"}}");
    // The filter runs before pingora says which listener accepted.
    let refused = "bearer_proxy_connections_refused_total{listener=\"any\"}";
    // The harness's readiness probe opened and closed one connection.
    let drained = eventually(Duration::from_secs(5), || async {
        proxy.metric(&open).await == 0.0
    })
    .await;
    assert!(drained);
    let mut kept = Vec::new();
    for i in 0..50 {
        let mut conn = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        assert!(served(&mut conn).await, "connection {i} is served");
        kept.push(conn);
    }
    let started = Instant::now();
    let mut turned_away = Vec::new();
    for _ in 0..150 {
        turned_away.push(TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap());
    }
    for (i, conn) in turned_away.iter_mut().enumerate() {
        assert!(
            closed(conn, Duration::from_secs(2)).await,
            "connection {} beyond the ceiling is closed",
            50 + i
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5), "promptly");
    assert_eq!(proxy.metric(&open).await, 50.0);
    assert_eq!(proxy.metric(refused).await, 150.0);
    for (i, conn) in kept.iter_mut().enumerate() {
        assert!(served(conn).await, "admitted connection {i} still works");
    }
    let status = proxy.status_json().await;
    assert_eq!(status["connections"]["open"], 50);
    assert_eq!(status["connections"]["max"], 50);
    assert_eq!(status["connections"]["refused"], 150);
    // A freed place admits the next connection.
    drop(kept.pop());
    let freed = eventually(Duration::from_secs(5), || async {
        proxy.metric(&open).await == 49.0
    })
    .await;
    assert!(freed);
    let mut next = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    assert!(
        served(&mut next).await,
        "the freed place admits a new connection"
    );
    assert_eq!(proxy.metric(refused).await, 150.0);
}

/// One TLS handshake attempt on a fresh connection: whether it completed.
async fn tls_handshake(
    ca: &TestCa,
    port: u16,
) -> Option<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(ca.client_config(None)));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .ok()?
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_beyond_the_ceiling_are_dropped_before_their_handshake() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().max_connections = Some(20);
    let ca = TestCa::new();
    let tls_port = free_port();
    config.tls_listener(&ca, tls_port);
    let proxy = Proxy::start(&config).await;
    let listener = format!("127.0.0.1:{tls_port}");
    let handshakes = format!("bearer_proxy_tls_handshakes_total{{listener=\"{listener}\"}}");
    let open = format!("bearer_proxy_connections{{listener=\"{listener}\"}}");
    let before = proxy.metric(&handshakes).await;
    // 20 held places, then 180 more attempts all at once.
    let mut held = Vec::new();
    for i in 0..20 {
        held.push(
            tls_handshake(&ca, tls_port)
                .await
                .unwrap_or_else(|| panic!("place {i}")),
        );
    }
    let admitted = eventually(Duration::from_secs(5), || async {
        proxy.metric(&open).await == 20.0
    });
    assert!(admitted.await);
    let flood = (0..180).map(|_| tls_handshake(&ca, tls_port));
    let completed = futures_util::future::join_all(flood)
        .await
        .into_iter()
        .filter(Option::is_some)
        .count();
    assert_eq!(completed, 0, "no handshake beyond the ceiling");
    let began = proxy.metric(&handshakes).await - before;
    assert!(
        began <= 20.0,
        "{began} handshakes for 200 attempts with max_connections 20"
    );
    let refused = proxy
        .metric("bearer_proxy_connections_refused_total{listener=\"any\"}")
        .await;
    assert_eq!(refused, 180.0, "dropped by the filter, before any TLS work");
    // A freed place admits the next handshake.
    drop(held.pop());
    let next = eventually(Duration::from_secs(5), || async {
        tls_handshake(&ca, tls_port).await.is_some()
    });
    assert!(next.await, "a freed place admits a new TLS connection");
}
