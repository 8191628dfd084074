//! TLS listeners: plain TLS, and mTLS with client-certificate subjects in
//! a route's access rules.

use crate::support::*;

/// Starts a proxy with a TLS listener on `tls_port` (requiring client
/// certificates from `ca` when `mtls`) and one route with `access`.
async fn start_tls_proxy(
    idp: &Idp,
    upstream: &Upstream,
    ca: &TestCa,
    tls_port: u16,
    mtls: bool,
    access: RawAccess,
) -> Proxy {
    let mut config = ProxyConfig::new(idp, upstream);
    let (cert, key) = ca.server();
    config.server().tls_listen = vec![RawTlsListener {
        address: Some(format!("127.0.0.1:{tls_port}")),
        cert_file: Some("server.pem".into()),
        key_file: Some("server.key".into()),
        client_ca_file: mtls.then(|| "client-ca.pem".into()),
    }];
    config.files = vec![
        ("server.pem", cert),
        ("server.key", key),
        ("client-ca.pem", ca.pem.clone()),
    ];
    config.route().access = Some(access);
    Proxy::start(&config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_serves_https_and_says_so_upstream() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let ca = TestCa::new();
    let tls_port = free_port();
    let proxy = start_tls_proxy(
        &idp,
        &upstream,
        &ca,
        tls_port,
        false,
        RawAccess::allow_any(),
    )
    .await;
    let r = ca
        .https_client(None)
        .get(format!("https://127.0.0.1:{tls_port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        upstream.state.last().unwrap().header("x-forwarded-proto"),
        Some("https")
    );
    assert_eq!(
        get_status(proxy.url("/x")).await,
        200,
        "the plain listener still works"
    );
    assert_eq!(
        upstream.state.last().unwrap().header("x-forwarded-proto"),
        Some("http")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_admits_listed_certificate_subjects_only() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let ca = TestCa::new();
    let tls_port = free_port();
    let proxy = start_tls_proxy(
        &idp,
        &upstream,
        &ca,
        tls_port,
        true,
        RawAccess {
            client_cert_subjects: vec!["CN=legacy-erp".into()],
            ..RawAccess::default()
        },
    )
    .await;
    let url = format!("https://127.0.0.1:{tls_port}/x");

    let erp = ca.client("legacy-erp");
    let r = ca.https_client(Some(&erp)).get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let intruder = ca.client("intruder");
    let r = ca
        .https_client(Some(&intruder))
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "certificate");

    let no_cert = ca.https_client(None).get(&url).send().await;
    assert!(
        no_cert.is_err() || no_cert.unwrap().status() != 200,
        "no certificate, no entry"
    );

    // The right name on a certificate from another CA.
    let forged = TestCa::new().client("legacy-erp");
    let r = ca.https_client(Some(&forged)).get(&url).send().await;
    assert!(
        r.is_err() || r.unwrap().status() != 200,
        "a certificate from another CA is refused"
    );

    // Over plain HTTP there is no certificate: refused.
    assert_eq!(get_status(proxy.url("/x")).await, 403);
    assert_eq!(
        upstream.state.request_count(),
        1,
        "only legacy-erp got through"
    );
}
