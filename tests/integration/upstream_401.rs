//! An upstream 401 (revoked token, missing role, wrong audience): purge the
//! token only if still cached, renew once, replay once, never loop.

use crate::support::*;

const RETRIES: &str = "bearer_proxy_upstream_unauthorized_retries_total{route=\"main\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_is_renewed_and_the_request_replayed_once() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    assert_eq!(get_status(proxy.url("/warm")).await, 200);
    let old = upstream.last_authorization();
    upstream.state.revoke(&old);

    let body = vec![7u8; 10_000];
    let r = client()
        .post(proxy.url("/ic/api/x"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_too_large_to_replay_gets_the_401_but_the_token_is_still_renewed() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    assert_eq!(get_status(proxy.url("/warm")).await, 200);
    upstream.state.revoke(&upstream.last_authorization());
    let r = client()
        .post(proxy.url("/big"))
        .body(vec![1u8; 200_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(upstream.state.request_count(), 2, "not replayed");
    assert_eq!(
        get_status(proxy.url("/after")).await,
        200,
        "the next request has a new token"
    );
    assert_eq!(idp.state.request_count(), 2);
}

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
