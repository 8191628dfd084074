//! One client connection, kept alive, carries requests of every shape in
//! turn over plain HTTP and TLS: between requests the proxy parks the
//! connection and hands the next request's first bytes to pingora, so no
//! byte of a head or body may be lost or read twice.

use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Reads one response: (status, body), by `Content-Length`.
pub(crate) async fn response<S: AsyncRead + Unpin>(conn: &mut S) -> (u16, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("the connection stays open");
        assert!(
            n > 0,
            "closed before the answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("a content-length");
    while got.len() < head_end + length {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed inside the body");
        got.extend_from_slice(&buf[..n]);
    }
    (status, got[head_end..].to_vec())
}

/// What the echo upstream says it received: (body bytes, body SHA-256).
fn echoed(body: &[u8]) -> (u64, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    (
        v["body_bytes"].as_u64().unwrap(),
        v["body_sha256"].as_str().unwrap().to_string(),
    )
}

/// The paths the upstream received, in order.
fn paths(upstream: &Upstream) -> Vec<String> {
    upstream
        .state
        .requests()
        .into_iter()
        .map(|r| r.path)
        .collect()
}

/// What `every_shape_in_turn` sends, path by path.
const EVERY_SHAPE: [&str; 6] = ["/x", "/upload", "/chunked", "/x", "/big", "/x"];

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `data` in pieces of `piece` bytes, flushing each.
async fn write_in_pieces<S: AsyncWrite + Unpin>(conn: &mut S, data: &[u8], piece: usize) {
    for part in data.chunks(piece) {
        conn.write_all(part).await.unwrap();
        conn.flush().await.unwrap();
    }
}

/// The sequence: a GET, a 300 KiB body written in 7 KiB pieces, a chunked
/// upload in three flushed chunks, a head written a byte at a time, a
/// head larger than pingora's first read, and a last GET — all answered
/// on the one connection, every body arriving upstream whole.
async fn every_shape_in_turn<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut S) {
    let get = b"GET /x HTTP/1.1\r\nHost: proxy\r\n\r\n";
    conn.write_all(get).await.unwrap();
    assert_eq!(response(conn).await.0, 200);

    let body: Vec<u8> = (0..300 * 1024).map(|i| (i % 251) as u8).collect();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: proxy\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    write_in_pieces(conn, &[head.as_bytes(), &body].concat(), 7 * 1024).await;
    let (status, answer) = response(conn).await;
    assert_eq!(status, 200);
    assert_eq!(echoed(&answer), (body.len() as u64, sha(&body)));

    let chunks: [&[u8]; 3] = [b"first chunk;", &[b'z'; 5000], b"last"];
    conn.write_all(b"POST /chunked HTTP/1.1\r\nHost: proxy\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    for chunk in chunks {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        write_in_pieces(conn, &framed, 1000).await;
    }
    conn.write_all(b"0\r\n\r\n").await.unwrap();
    let (status, answer) = response(conn).await;
    assert_eq!(status, 200);
    let whole = chunks.concat();
    assert_eq!(echoed(&answer), (whole.len() as u64, sha(&whole)));

    write_in_pieces(conn, get, 1).await;
    assert_eq!(response(conn).await.0, 200);

    let big = format!(
        "GET /big HTTP/1.1\r\nHost: proxy\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(6000)
    );
    conn.write_all(big.as_bytes()).await.unwrap();
    assert_eq!(response(conn).await.0, 200);

    conn.write_all(get).await.unwrap();
    assert_eq!(response(conn).await.0, 200);
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plain_connection_carries_requests_of_every_shape_in_turn() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let mut conn = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    conn.set_nodelay(true).unwrap();
    every_shape_in_turn(&mut conn).await;
    assert_eq!(paths(&upstream), EVERY_SHAPE);
    // Each request's upstream connection is counted: new or reused (the
    // echo keeps its connections open, so most are reused).
    let count = |outcome: &'static str| {
        let proxy = &proxy;
        async move {
            proxy
                .metric(&format!(
                    "bearer_proxy_upstream_connections_total{{outcome=\"{outcome}\",route=\"main\"}}"
                ))
                .await
        }
    };
    let (new, reused) = (count("new").await, count("reused").await);
    assert_eq!(
        new + reused,
        EVERY_SHAPE.len() as f64,
        "one connection per request"
    );
    assert!(new >= 1.0 && reused >= 1.0, "new {new}, reused {reused}");
    let output = proxy.output();
    assert!(
        !output.contains("failed to acquire reusable stream"),
        "{output}"
    );
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tls_connection_carries_requests_of_every_shape_in_turn() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let ca = TestCa::new();
    let tls_port = free_port();
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.tls_listener(&ca, tls_port);
    let _proxy = Proxy::start(&config).await;
    let mut conn = ca.connect(tls_port).await;
    every_shape_in_turn(&mut conn).await;
    assert_eq!(paths(&upstream), EVERY_SHAPE);
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_1_0_and_pipelined_requests_are_answered_as_before() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;

    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut conn = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    conn.write_all(b"GET /x HTTP/1.0\r\n\r\n").await.unwrap();
    assert_eq!(response(&mut conn).await.0, 200);
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());

    // Two requests in one write: pingora (pipelining off) answers the
    // first and closes, so the client retries the second on a new
    // connection; nothing is forwarded twice or half.
    let mut conn = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    conn.write_all(b"GET /one HTTP/1.1\r\nHost: p\r\n\r\nGET /two HTTP/1.1\r\nHost: p\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(response(&mut conn).await.0, 200);
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert_eq!(paths(&upstream), ["/x", "/one"]);
}
}
