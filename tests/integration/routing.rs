use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_replaces_client_authorization_and_forwarding_headers_are_set() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;

    let resp = client()
        .get(proxy.url("/ic/api/integration/v1/flows?integrationInstance=x"))
        .header("authorization", "Basic bGVnYWN5OnBhc3N3b3Jk")
        .header("host", "legacy.example:8080")
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-42");

    let seen = upstream.state.last().expect("upstream got the request");
    assert_eq!(
        seen.path,
        "/ic/api/integration/v1/flows?integrationInstance=x"
    );
    let auth = seen.header("authorization").unwrap();
    let claims = verified_claims(auth);
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(claims["scope"], SCOPE);
    assert_eq!(seen.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(
        seen.header("host"),
        Some(upstream.addr.to_string().as_str())
    );
    assert_eq!(seen.header("x-forwarded-host"), Some("legacy.example:8080"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-request-id"), Some("req-42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_without_id_gets_a_fresh_one_both_ways() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let resp = client().get(proxy.url("/x")).send().await.unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(
        upstream.state.last().unwrap().header("x-request-id"),
        Some(id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_request_gets_404_no_route_json_and_is_not_forwarded() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.raw.routes =
        vec![RawRoute::open("api", "/ic/api/", &upstream.url(), "oic").for_host("oic.internal")];
    let proxy = Proxy::start(&config).await;

    for (host, path) in [("oic.internal", "/other"), ("elsewhere.test", "/ic/api/x")] {
        let resp = client()
            .get(proxy.url(path))
            .header("host", host)
            .header("x-request-id", "nr-1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "no_route");
        assert_eq!(body["request_id"], "nr-1");
        assert!(body["message"].is_string());
    }
    assert_eq!(upstream.state.request_count(), 0);
}

/// Each route asks for its own scope, so the token's `scope` claim tells
/// which route served the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_host_then_wildcard_then_longest_prefix_choose_the_route() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    let route = |name: &str, host: Option<&str>, prefix: &str| {
        let mut r = RawRoute::open(name, prefix, &upstream.url(), "oic");
        r.matcher.host = host.map(str::to_owned);
        r.scopes = vec![format!(
            "https://{name}.test:443urn:opc:resource:consumer::all"
        )];
        r
    };
    config.raw.routes = vec![
        route("anyroot", None, "/"),
        route("anyapi", None, "/ic/api/"),
        route("anyintegration", None, "/ic/api/integration/"),
        route("wild", Some("*.example.com"), "/"),
        route("exact", Some("oic.example.com"), "/ic/"),
    ];
    let proxy = Proxy::start(&config).await;
    let cases = [
        ("other.test", "/", "anyroot"),
        ("other.test", "/ic/api/x", "anyapi"),
        ("other.test", "/ic/api/integration/v1", "anyintegration"),
        ("a.example.com", "/ic/api/integration/v1", "wild"),
        ("OIC.EXAMPLE.COM:443", "/ic/api/x", "exact"),
        ("oic.example.com", "/not-ic", "wild"),
        ("example.com", "/ic/api/x", "anyapi"),
    ];
    for (host, path, expected) in cases {
        let resp = client()
            .get(proxy.url(path))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{host}{path}");
        let auth = upstream.last_authorization();
        let scope = verified_claims(&auth)["scope"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            scope.starts_with(&format!("https://{expected}.test")),
            "{host}{path} went to {scope}, expected route {expected}"
        );
    }
}
