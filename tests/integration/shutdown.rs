use std::time::Duration;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let client = client();
    let url = proxy.url("/__sleep/1000");
    let in_flight =
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    // Readiness signal: the upstream has the request.
    let mut waited = 0;
    while upstream.state.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
        assert!(waited < 1000, "request never reached the upstream");
    }
    proxy.terminate();
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "in-flight request completed"
    );
    let status = proxy
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exited within the grace period");
    assert!(status.success(), "exit status {status}");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
            .await
            .is_err(),
        "listener closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_proxy_exits_promptly_on_sigterm() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let started = std::time::Instant::now();
    proxy.terminate();
    let status = proxy
        .wait_exit(Duration::from_secs(4))
        .await
        .expect("exited");
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "did not wait out the 5 s grace"
    );
}

/// A keep-alive connection waiting for its next request is closed as soon
/// as shutdown begins, while a request in flight on another one still
/// completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_keepalive_connections_at_once_while_draining() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .unwrap();
    idle.write_all(b"GET /x HTTP/1.1\r\nHost: p\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    assert!(idle.read(&mut buf).await.unwrap() > 0, "first answer");
    let client = client();
    let url = proxy.url("/__sleep/3000");
    let in_flight =
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) });
    assert!(
        eventually(Duration::from_secs(10), || async {
            upstream.state.request_count() == 2
        })
        .await,
        "the slow request never reached the upstream"
    );
    let terminated = std::time::Instant::now();
    proxy.terminate();
    let read = tokio::time::timeout(Duration::from_secs(2), idle.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the idle connection was not closed at shutdown: {read:?}"
    );
    assert!(terminated.elapsed() < Duration::from_secs(2));
    assert_eq!(
        in_flight.await.unwrap().unwrap(),
        200,
        "in flight completed"
    );
    assert!(proxy.wait_exit(Duration::from_secs(5)).await.is_some());
}
