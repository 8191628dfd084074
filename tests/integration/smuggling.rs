//! The request-smuggling corpus (`fastpath::corpus`) through the real
//! binary: each case the guard refuses is answered with our JSON `400
//! bad_request` and the connection closed, and the upstream never sees a
//! byte of it; each plain case is forwarded as before. Over a TLS
//! listener too.

use std::time::Duration;

use bearer_proxy::fastpath::corpus::{Expect, CASES};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::support::*;

/// The status, headers (lower-case names) and body of one answer.
async fn answer<S: AsyncRead + Unpin>(stream: &mut S) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("an answer within 10 s")
            .unwrap_or(0);
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = response.parse(&buf) {
            let headers: Vec<(String, String)> = response
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let length: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            if buf.len() >= len + length || n == 0 {
                let body = buf[len..].to_vec();
                return (response.code.unwrap(), headers, body);
            }
        }
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
    }
}

async fn send_case<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    name: &str,
    bytes: &[u8],
    expect: Expect,
) {
    stream.write_all(bytes).await.unwrap();
    let (status, headers, body) = answer(stream).await;
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    match expect {
        Expect::Forward => assert_eq!(status, 200, "{name}"),
        Expect::Refuse => {
            assert_eq!(status, 400, "{name}");
            assert_eq!(header("connection"), Some("close"), "{name}");
            assert_eq!(header("content-type"), Some("application/json"), "{name}");
            assert!(header("server").is_none(), "{name}: not pingora's own 400");
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"], "bad_request", "{name}");
            // The connection is closed after the answer.
            let mut rest = [0u8; 16];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut rest)).await;
            assert!(
                matches!(n, Ok(Ok(0)) | Ok(Err(_))),
                "{name}: closed after the 400"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_desync_case_is_refused_with_our_json_400_and_never_reaches_the_upstream() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let config = ProxyConfig::new(&idp, &upstream);
    let proxy = Proxy::start(&config).await;
    for (name, bytes, expect) in CASES {
        let before = upstream.state.request_count();
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
            .await
            .unwrap();
        send_case(&mut tcp, name, bytes, *expect).await;
        let forwarded = upstream.state.request_count() - before;
        let expected = u64::from(*expect == Expect::Forward);
        assert_eq!(forwarded, expected, "{name}: requests the upstream saw");
    }
    let refused = CASES.iter().filter(|c| c.2 == Expect::Refuse).count() as f64;
    let counted = proxy
        .metric("bearer_proxy_requests_total{route=\"(none)\",status=\"400\"}")
        .await;
    assert_eq!(counted, refused);
    // One access line per refusal, with its code and reason.
    let log = proxy.output();
    let lines = log
        .lines()
        .filter(|l| l.contains("error=\"bad_request\"") && l.contains("reason=BadHead("))
        .count();
    assert_eq!(lines as f64, refused, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desync_case_over_a_tls_listener_is_refused_too() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let ca = TestCa::new();
    let mut config = ProxyConfig::new(&idp, &upstream);
    let tls_port = free_port();
    config.tls_listener(&ca, tls_port);
    let _proxy = Proxy::start(&config).await;
    for (name, bytes, expect) in CASES
        .iter()
        .filter(|c| matches!(c.0, "CL.TE" | "plain GET" | "bare LF in the head"))
    {
        let mut tls = ca.connect(tls_port).await;
        send_case(&mut tls, name, bytes, *expect).await;
    }
    assert_eq!(upstream.state.request_count(), 1, "only the plain GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_split_over_packets_or_longer_than_one_read_is_judged_whole() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    // A case only the guard refuses: pingora's path would forward it.
    let split = CASES
        .iter()
        .find(|c| c.0 == "duplicate equal lengths")
        .unwrap()
        .1;
    // In pieces: each write reaches the proxy as its own read (there is no
    // signal for "the proxy has read it", so a short pause separates them).
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    for piece in [&split[..10], &split[10..40], &split[40..]] {
        tcp.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _, body) = answer(&mut tcp).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("bad_request"));
    // A head longer than the first read (8 KiB of one header).
    let mut long = b"POST /ic/a HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    long.extend(std::iter::repeat_n(b'a', 8 * 1024));
    long.extend_from_slice(b"\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .unwrap();
    tcp.write_all(&long).await.unwrap();
    let (status, _, _) = answer(&mut tcp).await;
    assert_eq!(status, 400);
    assert_eq!(upstream.state.request_count(), 0);
}
