//! Limits and hostile input: oversized or ambiguous requests get a 4xx and
//! are never forwarded; slow and idle clients are cut off; hop-by-hop
//! headers stay on their hop; a slow upstream gives 504.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Sends raw bytes on a fresh connection; returns the response's status
/// (0 when the proxy closed without answering).
async fn raw(port: u16, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("the proxy answered or closed")
        .unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ambiguous_and_oversized_requests_get_4xx_and_are_not_forwarded() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().max_request_headers = Some(20);
    config.server().max_request_header_bytes = Some(2048);
    let proxy = Proxy::start(&config).await;
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big = "a".repeat(4000);
    let huge: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("Content-Length and Transfer-Encoding", b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec()),
        ("conflicting Content-Length", b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec()),
        ("invalid header bytes", b"GET /x HTTP/1.1\r\nHost: t\r\nX-Bad: a\x01b\r\n\r\n".to_vec()),
        ("garbage request line", b"NOT A REQUEST\r\n\r\n".to_vec()),
        ("header without colon", b"GET /x HTTP/1.1\r\nHost: t\r\nbroken header\r\n\r\n".to_vec()),
        ("too many headers", format!("GET /x HTTP/1.1\r\nHost: t\r\n{many}\r\n").into_bytes()),
        ("headers too large", format!("GET /x HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n").into_bytes()),
        ("more headers than pingora parses", format!("GET /x HTTP/1.1\r\nHost: t\r\n{huge}\r\n").into_bytes()),
    ];
    for (name, request) in &cases {
        let status = raw(proxy.port, request).await;
        assert!(
            (400..500).contains(&status) || status == 0,
            "{name}: got {status}"
        );
        assert!(
            status != 0
                || *name == "garbage request line"
                || *name == "more headers than pingora parses",
            "{name}: closed without an answer"
        );
    }
    assert_eq!(
        raw(proxy.port, b"GET /x HTTP/1.1\r\nHost: t\r\nX-H: 1\r\n\r\n").await,
        200
    );
    assert_eq!(
        upstream.state.request_count(),
        1,
        "only the well-formed request was forwarded"
    );
    assert_eq!(
        raw(
            proxy.port,
            format!("GET /x HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes()
        )
        .await,
        431
    );
    assert_eq!(
        get_status(proxy.admin_url("/healthz")).await,
        200,
        "still alive"
    );
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_route_limit_get_413_declared_or_streamed() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.route().max_body_bytes = Some(1000);
    let proxy = Proxy::start(&config).await;
    let client = client();
    let r = client
        .post(proxy.url("/x"))
        .body(vec![1u8; 500])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(proxy.url("/x"))
        .body(vec![1u8; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "body_too_large");
    assert_eq!(
        upstream.state.request_count(),
        1,
        "a declared oversize body is refused before forwarding"
    );
    // Chunked: no length up front, so it is counted as it streams.
    let chunks =
        futures_util::stream::iter((0..4).map(|_| Ok::<_, std::io::Error>(vec![2u8; 600])));
    let r = client
        .post(proxy.url("/y"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), 413),
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_gives_504_upstream_timeout() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().upstream_timeout = ms(300);
    let proxy = Proxy::start(&config).await;
    let started = Instant::now();
    let r = client()
        .get(proxy.url("/__sleep/3000"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "upstream_timeout");
    assert!(started.elapsed() < Duration::from_secs(2));
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_cannot_pin_connections() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().client_idle_timeout = Some(Duration::from_secs(1));
    config.server().client_read_timeout = Some(Duration::from_secs(1));
    let proxy = Proxy::start(&config).await;

    // Idle keep-alive connection: closed by the proxy after ~1 s. The
    // clock starts before the request: the proxy's idle time starts when
    // it has answered, and this task may read the answer late under load.
    let mut idle = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    let started = Instant::now();
    idle.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let _ = idle.read(&mut buf).await.unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle connection still open after 5 s"
    );
    assert!(started.elapsed() >= Duration::from_millis(950));

    // A body that never finishes: the connection is given up within seconds.
    let mut slow = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    slow.write_all(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "a stalled upload pinned the connection"
    );
}
}

/// Reads (and drops) whatever arrives until the proxy closes the socket;
/// false if it is still open after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = vec![0u8; 8192];
    tokio::time::timeout(limit, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                return;
            }
        }
    })
    .await
    .is_ok()
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped_in_both_directions() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let r = client()
        .get(proxy.url("/__hop"))
        .header("connection", "x-drop-me")
        .header("x-drop-me", "1")
        .header("keep-alive", "timeout=9")
        .header("te", "trailers")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for gone in [
        "x-secret-hop",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
    ] {
        assert!(r.headers().get(gone).is_none(), "response kept {gone}");
    }
    assert_eq!(r.headers()["x-end-to-end"], "kept");
    let seen = upstream.state.last().unwrap();
    for gone in ["x-drop-me", "keep-alive", "te", "proxy-authorization"] {
        assert!(seen.header(gone).is_none(), "request kept {gone}");
    }
    assert_eq!(seen.header("x-end-to-end"), Some("kept"));
}
}
