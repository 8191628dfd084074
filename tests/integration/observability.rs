use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_fetches_and_cache_hits() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    for _ in 0..3 {
        assert_eq!(get_status(proxy.url("/a")).await, 200);
    }
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "bearer_proxy_requests_total{route=\"main\",status=\"200\"}"
        ),
        3.0
    );
    assert_eq!(
        metric_value(&m, "bearer_proxy_token_fetch_total{client=\"oic\",grant=\"client_credentials\",outcome=\"success\"}"),
        1.0
    );
    assert_eq!(
        metric_value(
            &m,
            "bearer_proxy_token_cache_total{client=\"oic\",result=\"hit\"}"
        ),
        3.0
    );
    assert_eq!(
        metric_value(
            &m,
            "bearer_proxy_upstream_duration_seconds_count{route=\"main\"}"
        ),
        3.0
    );
    assert_eq!(
        metric_value(
            &m,
            "bearer_proxy_token_fetch_duration_seconds_count{client=\"oic\"}"
        ),
        1.0
    );
    let expiry = metric_value(
        &m,
        "bearer_proxy_token_expiry_timestamp_seconds{client=\"oic\"}",
    );
    let now = bearer_proxy::unix_now();
    assert!(
        expiry > now + 3000.0 && expiry < now + 3700.0,
        "expiry {expiry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_report_health_readiness_and_status_without_tokens() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let client = client();
    client.get(proxy.url("/a")).send().await.unwrap();
    let token = upstream.last_authorization();
    let token = token.trim_start_matches("Bearer ");

    assert_eq!(get_status(proxy.admin_url("/healthz")).await, 200);
    assert_eq!(get_status(proxy.admin_url("/readyz")).await, 200);
    let status_text = client
        .get(proxy.admin_url("/status"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&status_text).unwrap();
    let c = &status["clients"][0];
    assert_eq!(c["client"], "oic");
    assert_eq!(c["scopes"][0], SCOPE);
    assert_eq!(c["token_valid"], true);
    assert_eq!(c["last_outcome"], "success");
    assert_eq!(c["fetch_successes"], 1);
    assert!(c["token_expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        !status_text.contains(&token[..40]),
        "status must not show the token"
    );
    assert!(!status_text.contains(CLIENT_SECRET));
    assert_eq!(get_status(proxy.admin_url("/nope")).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_tokens_never_reach_the_logs() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start_with_args(
        &ProxyConfig::new(&idp, &upstream),
        &["--log-level", "trace", "--log-format", "json"],
    )
    .await;
    let client = client();
    let client_credential = "bGVnYWN5LXVzZXI6bGVnYWN5LXBhc3N3b3Jk";
    for path in ["/a?api_key=query-secret-123", "/__status/401", "/b"] {
        client
            .get(proxy.url(path))
            .header("authorization", format!("Basic {client_credential}"))
            .send()
            .await
            .unwrap();
    }
    let token = upstream.last_authorization();
    let token = token.trim_start_matches("Bearer ").to_string();
    let logs = proxy.output();
    assert!(
        logs.contains("\"request_id\""),
        "access log lines are JSON: {logs:.400}"
    );
    assert!(logs.contains("token obtained"));
    for secret in [
        CLIENT_SECRET,
        &token[..],
        &token[token.len() - 40..],
        client_credential,
        "query-secret-123",
    ] {
        assert!(
            !logs.contains(secret),
            "found a secret in the logs: {secret:.12}…"
        );
    }
}
