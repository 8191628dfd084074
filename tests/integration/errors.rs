use std::time::Duration;

use bearer_proxy::emulator::Mode;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_give_502_token_rejected_without_secrets() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.client_secret = "wrong-secret-value-123";
    let proxy = Proxy::start(&config).await;
    let r = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers().contains_key("x-request-id"));
    let text = r.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], "token_rejected");
    assert_eq!(body["client"], "oic");
    assert_eq!(body["idp_error"], "invalid_client");
    assert!(!text.contains("wrong-secret-value-123"));
    assert!(
        !text.contains("ecid"),
        "the identity service's body is not echoed: {text}"
    );
    assert_eq!(upstream.state.request_count(), 0);
    let metric = "bearer_proxy_token_fetch_total{client=\"oic\",grant=\"client_credentials\",outcome=\"idp_rejected\"}";
    assert!(proxy.metric(metric).await >= 1.0);
}

/// Each failure class of the identity service, with no token cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_service_failures_without_a_token_give_503_with_outcome_metrics() {
    let cases = [
        (Mode::Down, "idp_unavailable"),
        (Mode::ServerError, "idp_unavailable"),
        (Mode::RateLimited, "rate_limited"),
        (Mode::InvalidJson, "invalid_response"),
    ];
    for (mode, outcome) in cases {
        let idp = Idp::start().await;
        idp.state.set_mode(mode);
        let upstream = Upstream::start().await;
        let mut config = ProxyConfig::new(&idp, &upstream);
        config.server().startup_token_wait = ms(200);
        let proxy = Proxy::start(&config).await;
        let r = client().get(proxy.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), 503, "{mode:?}");
        assert!(r.headers().contains_key("retry-after"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "token_unavailable", "{mode:?}");
        if mode != Mode::Down {
            let metric = format!(
                "bearer_proxy_token_fetch_total{{client=\"oic\",grant=\"client_credentials\",outcome=\"{outcome}\"}}"
            );
            assert!(proxy.metric(&metric).await >= 1.0, "{mode:?}: {metric}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_identity_service_is_cut_off_by_the_request_timeout() {
    let idp = Idp::start().await;
    idp.state.set_mode(Mode::Slow(Duration::from_secs(5)));
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().startup_token_wait = ms(100);
    config.client().request_timeout = ms(300);
    let proxy = Proxy::start(&config).await;
    let started = std::time::Instant::now();
    let r = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_upstream_gives_502_upstream_unavailable() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.route().upstream = Some(format!("http://127.0.0.1:{}", free_port()));
    let proxy = Proxy::start(&config).await;
    let r = client()
        .get(proxy.url("/x"))
        .header("x-request-id", "dead-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "upstream_unavailable");
    assert_eq!(body["request_id"], "dead-1");
    assert!(
        eventually(std::time::Duration::from_secs(5), || async {
            proxy.output().contains("dead-1")
        })
        .await,
        "the failure is logged with the request id"
    );
}
