//! Paths an upstream could read as another path, and methods that must
//! never carry the token, are refused before routing: the upstream sees
//! nothing. Sent over raw sockets, since HTTP client libraries normalise
//! paths themselves.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Status, lower-cased head and body of one raw request.
async fn exchange(port: u16, request: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn get(target: &[u8]) -> Vec<u8> {
    [
        b"GET ",
        target,
        b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ]
    .concat()
}

async fn api_proxy(idp: &Idp, upstream: &Upstream, methods: Option<Vec<String>>) -> Proxy {
    let mut config = ProxyConfig::new(idp, upstream);
    let mut route = RawRoute::open("api", "/ic/api/", &upstream.url(), "oic");
    route.methods = methods;
    config.raw.routes = vec![route];
    Proxy::start(&config).await
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_escape_the_route_prefix_get_400_bad_path_and_reach_nobody() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = api_proxy(&idp, &upstream, None).await;
    let targets: &[&[u8]] = &[
        b"/ic/api/../../admin/secret",
        b"/ic/api/./x",
        b"/ic/api/%2e%2e/%2e%2e/admin",
        b"/ic/api/%2E%2E/%2e%2E/admin",
        b"/ic/api/..;/..;/admin",
        b"/ic/api/%2e%2e;x=1/admin",
        b"/ic/api/a%2fb",
        b"/ic/api/a%2F..%2Fb",
        b"/ic/api/a%5cb",
        b"/ic/api/..\\admin",
        b"/ic/api/a%00b",
        b"/ic/api/a%0d%0ab",
        // Absolute-form (its authority matches Host, so pingora lets it in).
        b"http://t/ic/api/x",
    ];
    for target in targets {
        let shown = String::from_utf8_lossy(target);
        let (status, head, body) = exchange(proxy.port, &get(target)).await;
        assert_eq!(status, 400, "{shown}: {head}");
        let body: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{shown}: not JSON ({e}): {body}"));
        assert_eq!(body["error"], "bad_path", "{shown}");
        assert!(
            body["message"].as_str().unwrap().contains("path"),
            "{shown}"
        );
    }
    // A raw non-ASCII byte in the request line is refused by the smuggling
    // guard before pingora reads it (pingora's own answer was an empty 400):
    // our JSON 400, counted with the others.
    let (status, _, body) = exchange(proxy.port, &get(b"/ic/api/\xff/x")).await;
    assert_eq!(status, 400);
    assert!(body.contains("\"error\":\"bad_request\""), "{body}");
    assert_eq!(
        upstream.state.request_count(),
        0,
        "the upstream saw nothing"
    );
    assert_eq!(
        proxy
            .metric("bearer_proxy_requests_total{route=\"(none)\",status=\"400\"}")
            .await as usize,
        targets.len() + 1
    );
    let (status, _, _) = exchange(proxy.port, &get(b"/ic/api/integration/v1/flows?x=../y")).await;
    assert_eq!(status, 200, "an ordinary path still passes");
    assert_eq!(
        upstream.state.last().unwrap().path,
        "/ic/api/integration/v1/flows?x=../y",
        "forwarded exactly as received"
    );
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_and_connect_get_405_with_allow_and_reach_nobody() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = api_proxy(&idp, &upstream, None).await;
    for request in [
        &b"TRACE /ic/api/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"[..],
        b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n",
    ] {
        let (status, head, body) = exchange(proxy.port, request).await;
        assert_eq!(status, 405, "{head}");
        assert!(
            head.contains("\r\nallow: get, head, post, put, patch, delete, options"),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "method_not_allowed");
    }
    assert_eq!(upstream.state.request_count(), 0);
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_forwards_only_the_methods_it_names() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = api_proxy(&idp, &upstream, Some(vec!["GET".into()])).await;
    let post =
        b"POST /ic/api/x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (status, head, body) = exchange(proxy.port, post).await;
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("\r\nallow: get\r\n"), "{head}");
    assert!(body.contains("method_not_allowed"));
    assert_eq!(upstream.state.request_count(), 0);
    let (status, _, _) = exchange(proxy.port, &get(b"/ic/api/x")).await;
    assert_eq!(status, 200);
}
}
