//! An upstream 401 (revoked token, missing role, wrong audience): purge the
//! token only if still cached, renew once, replay once, never loop.

use crate::support::*;

const RETRIES: &str = "bearer_proxy_upstream_unauthorized_retries_total{route=\"main\"}";

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_renewed_and_the_request_replayed_once() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    assert_eq!(get_status(proxy.url("/warm")).await, 200);
    let old = upstream.last_authorization();
    upstream.state.revoke(&old);

    let body = vec![7u8; 10_000];
    let r = send_body(&proxy, http::Method::POST, "/ic/api/x", body.clone()).await;
    assert_eq!(r.status(), 200, "the client never sees the 401");
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        echo["body_sha256"],
        bearer_proxy::emulator::echo::sha256_hex(&body),
        "body replayed intact"
    );

    let seen = upstream.state.requests();
    assert_eq!(seen.len(), 3, "warm-up, refused, replayed");
    assert_eq!(seen[1].header("authorization"), Some(old.as_str()));
    assert_ne!(seen[2].header("authorization"), Some(old.as_str()));
    assert_eq!(idp.state.request_count(), 2, "one renewal");
    assert_eq!(proxy.metric(RETRIES).await, 1.0);
    // Later requests use the new token directly.
    assert_eq!(get_status(proxy.url("/y")).await, 200);
    assert_eq!(upstream.state.request_count(), 4);
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_401_goes_back_to_the_client_without_a_loop() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    // This path answers 401 to every token: a missing role looks like this.
    let r = client()
        .get(proxy.url("/__status/401"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        upstream.state.request_count(),
        2,
        "sent once, replayed once"
    );
    assert_eq!(idp.state.request_count(), 2);
    assert_eq!(proxy.metric(RETRIES).await, 1.0);
    assert_eq!(
        proxy
            .metric("bearer_proxy_requests_total{route=\"main\",status=\"401\"}")
            .await,
        1.0
    );
}
}

/// Sends `body` to the proxy with `method`.
async fn send_body(
    proxy: &Proxy,
    method: http::Method,
    path: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    client()
        .request(method, proxy.url(path))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Starts a proxy, warms its token up and revokes it at the upstream.
async fn revoked(config: ProxyConfig<'_>, upstream: &Upstream) -> Proxy {
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/warm")).await, 200);
    upstream.state.revoke(&upstream.last_authorization());
    proxy
}

/// A default proxy whose warmed-up token the upstream has revoked.
async fn revoked_default() -> (Idp, Upstream, Proxy) {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = revoked(ProxyConfig::new(&idp, &upstream), &upstream).await;
    (idp, upstream, proxy)
}

/// Asserts the echo's answer names `body`, and the upstream saw warm-up,
/// refused and replayed requests, the last with a new token.
async fn assert_replayed(r: reqwest::Response, body: &[u8], upstream: &Upstream) {
    assert_eq!(r.status(), 200, "the client never sees the 401");
    assert!(r.headers().contains_key("x-request-id"));
    let echo: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        echo["body_sha256"],
        bearer_proxy::emulator::echo::sha256_hex(body),
        "body replayed intact"
    );
    let seen = upstream.state.requests();
    assert_eq!(seen.len(), 3, "warm-up, refused, replayed");
    assert_ne!(
        seen[2].header("authorization"),
        seen[1].header("authorization")
    );
    assert_eq!(seen[2].body_len, body.len() as u64);
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_beyond_pingoras_retry_buffer_is_replayed_by_the_proxy() {
    let (idp, upstream, proxy) = revoked_default().await;
    let body: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let r = client()
        .post(proxy.url("/ic/api/big?x=1"))
        .header("x-end-to-end", "kept")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_replayed(r, &body, &upstream).await;
    let replayed = upstream.state.last().unwrap();
    assert_eq!(replayed.path, "/ic/api/big?x=1");
    assert_eq!(replayed.method, "POST");
    assert_eq!(replayed.header("x-end-to-end"), Some("kept"));
    assert_eq!(replayed.header("x-forwarded-for"), Some("127.0.0.1"));
    verified_claims(replayed.header("authorization").unwrap());
    assert_eq!(idp.state.request_count(), 2, "one renewal");
    assert_eq!(proxy.metric(RETRIES).await, 1.0);
    assert_eq!(
        proxy
            .metric("bearer_proxy_requests_total{route=\"main\",status=\"200\"}")
            .await,
        2.0
    );
    assert!(
        !proxy.output().contains("Fail to proxy"),
        "the replay is not a proxy failure: {}",
        proxy.output()
    );
}
}

/// A chunked upload of `first` bytes, then (once the upstream has refused
/// it) `rest` more bytes: the upstream answers 401 mid-body.
async fn refused_mid_body(
    proxy: &Proxy,
    upstream: &Upstream,
    first: usize,
    rest: usize,
) -> reqwest::Response {
    upstream.state.refuse_after(first as u64);
    let refused = upstream.state.request_count() + 1;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let sending = tokio::spawn(
        client()
            .post(proxy.url("/chunked"))
            .body(reqwest::Body::wrap_stream(body))
            .send(),
    );
    tx.send(Ok(vec![5u8; first])).await.unwrap();
    assert!(
        eventually(std::time::Duration::from_secs(10), || async {
            upstream.state.request_count() >= refused
        })
        .await
    );
    tx.send(Ok(vec![5u8; rest])).await.unwrap();
    drop(tx);
    sending.await.unwrap().unwrap()
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_refused_mid_stream_is_read_to_the_end_and_replayed() {
    let (_idp, upstream, proxy) = revoked_default().await;
    // More than pingora's 64 KiB retry buffer before the 401 arrives.
    let r = refused_mid_body(&proxy, &upstream, 100_000, 200_000).await;
    assert_replayed(r, &vec![5u8; 300_000], &upstream).await;
    assert!(upstream.state.requests()[1].body_len >= 100_000);
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_that_outgrows_the_replay_limit_gets_the_upstreams_401() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().max_replay_body_bytes = Some(150_000);
    let proxy = revoked(config, &upstream).await;
    let r = refused_mid_body(&proxy, &upstream, 100_000, 200_000).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\"",
        "the upstream's own refusal"
    );
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(upstream.state.request_count(), 2, "not replayed");
    assert_eq!(get_status(proxy.url("/after")).await, 200, "token renewed");
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_refused_before_it_was_read_is_read_to_the_end_and_replayed() {
    let (_idp, upstream, proxy) = revoked_default().await;
    upstream.state.refuse_after(0);
    let body = vec![9u8; 900_000];
    let r = send_body(&proxy, http::Method::POST, "/early", body.clone()).await;
    assert_replayed(r, &body, &upstream).await;
    assert_eq!(upstream.state.requests()[1].body_len, 0, "refused unread");
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_streams_a_large_answer_back() {
    let (_idp, upstream, proxy) = revoked_default().await;
    let r = send_body(
        &proxy,
        http::Method::POST,
        "/__bytes/5000000",
        vec![1u8; 200_000],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "5000000");
    assert_eq!(r.bytes().await.unwrap().len(), 5_000_000);
    assert_eq!(upstream.state.request_count(), 3);
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_over_https_is_verified_like_the_first() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (upstream, ca) = Upstream::start_tls(dir.path()).await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    let route = config.route();
    route.upstream = Some(format!("https://localhost:{}", upstream.addr.port()));
    route.upstream_ca_file = Some(ca);
    let proxy = revoked(config, &upstream).await;
    let body = vec![3u8; 150_000];
    let r = send_body(&proxy, http::Method::PUT, "/secure", body.clone()).await;
    assert_replayed(r, &body, &upstream).await;
    assert_eq!(
        upstream.state.last().unwrap().header("host"),
        Some(format!("localhost:{}", upstream.addr.port()).as_str())
    );
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_401_to_a_large_replay_goes_back_to_the_client() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let r = send_body(
        &proxy,
        http::Method::POST,
        "/__status/401",
        vec![1u8; 200_000],
    )
    .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        upstream.state.request_count(),
        2,
        "sent once, replayed once"
    );
    assert_eq!(proxy.metric(RETRIES).await, 1.0);
    assert_eq!(
        proxy
            .metric("bearer_proxy_requests_total{route=\"main\",status=\"401\"}")
            .await,
        1.0
    );
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_replay_limit_gets_the_401_but_the_token_is_still_renewed() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().max_replay_body_bytes = Some(100_000);
    let proxy = revoked(config, &upstream).await;
    for size in [100_001usize, 30_000] {
        // Above the limit: not kept, whoever would replay it.
        let mut c = ProxyConfig::new(&idp, &upstream);
        c.server().max_replay_body_bytes = Some(size as u64 - 1);
        proxy.rewrite(&c);
        let (status, _) = proxy.admin_reload().await;
        assert_eq!(status, 200);
        upstream.state.revoke(&upstream.last_authorization());
        let before = upstream.state.request_count();
        let r = send_body(&proxy, http::Method::POST, "/big", vec![1u8; size]).await;
        assert_eq!(r.status(), 401, "{size}");
        assert_eq!(upstream.state.request_count(), before + 1, "not replayed");
        assert_eq!(
            get_status(proxy.url("/after")).await,
            200,
            "the next request has a new token"
        );
    }
    assert_eq!(proxy.metric(RETRIES).await, 0.0);
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_replay_without_a_token_answers_token_unavailable() {
    let (idp, upstream, proxy) = revoked_default().await;
    idp.state.set_mode(bearer_proxy::emulator::Mode::Down);
    let r = send_body(&proxy, http::Method::POST, "/x", vec![1u8; 200_000]).await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "token_unavailable");
    assert_eq!(upstream.state.request_count(), 2, "not replayed");
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_401s_for_the_same_token_cause_one_renewal() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    assert_eq!(get_status(proxy.url("/warm")).await, 200);
    upstream.state.revoke(&upstream.last_authorization());
    let requests = (0..20).map(|i| tokio::spawn(get_status(proxy.url(&format!("/c/{i}")))));
    for r in futures_util::future::join_all(requests).await {
        assert_eq!(r.unwrap(), 200);
    }
    assert_eq!(
        idp.state.request_count(),
        2,
        "no purge storm: one renewal for twenty 401s"
    );
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_while_the_identity_service_is_down_answers_token_unavailable() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    assert_eq!(get_status(proxy.url("/warm")).await, 200);
    upstream.state.revoke(&upstream.last_authorization());
    idp.state.set_mode(bearer_proxy::emulator::Mode::Down);
    let r = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 503, "{}", proxy.output());
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "token_unavailable");
    assert_eq!(
        upstream.state.request_count(),
        2,
        "not replayed without a token"
    );
}
}
