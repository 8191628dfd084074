use crate::support::*;

fn tls_route(upstream: &str, ca: Option<&std::path::Path>) -> Vec<RawRoute> {
    vec![RawRoute {
        upstream_ca_file: ca.map(std::path::Path::to_path_buf),
        ..RawRoute::open("secure", "/", upstream, "oic")
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_is_verified_against_the_configured_ca_and_gets_sni() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (upstream, ca) = Upstream::start_tls(dir.path()).await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    // By name, so the certificate must match "localhost" via SNI.
    let url = format!("https://localhost:{}", upstream.addr.port());
    config.raw.routes = tls_route(&url, Some(&ca));
    let proxy = Proxy::start(&config).await;

    let resp = client().get(proxy.url("/ic/api/x")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{}", proxy.output());
    let seen = upstream.state.last().unwrap();
    assert_eq!(
        seen.header("host"),
        Some(format!("localhost:{}", upstream.addr.port()).as_str())
    );
    verified_claims(seen.header("authorization").unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_with_untrusted_certificate_is_refused_with_502() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (upstream, _ca) = Upstream::start_tls(dir.path()).await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.raw.routes = tls_route(&format!("https://localhost:{}", upstream.addr.port()), None);
    let proxy = Proxy::start(&config).await;

    let resp = client().get(proxy.url("/ic/api/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "upstream_unavailable");
    assert_eq!(
        upstream.state.request_count(),
        0,
        "no request may reach an unverified upstream"
    );
}
