//! Route access control: each method accepting and refusing, credential
//! headers stripped, denials counted and logged without the credential.

use crate::support::*;

const KEY: &str = "erp-key-4f9a2c";

async fn proxy_with_access(
    idp: &Idp,
    upstream: &Upstream,
    access: RawAccess,
    files: &[(&str, String)],
) -> Proxy {
    let mut config = ProxyConfig::new(idp, upstream);
    config.raw.routes =
        vec![RawRoute::open("guarded", "/", &upstream.url(), "oic").with_access(access)];
    config.files = files.to_vec();
    Proxy::start(&config).await
}

fn cidrs(list: &[&str]) -> RawAccess {
    RawAccess {
        allow_cidrs: list.iter().map(|c| c.to_string()).collect(),
        ..RawAccess::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_opens_the_route_and_is_not_forwarded() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = proxy_with_access(
        &idp,
        &upstream,
        RawAccess::api_keys("api-keys"),
        &[("api-keys", bearer_proxy::api_key_line("erp", KEY))],
    )
    .await;
    let client = client();

    let ok = client
        .get(proxy.url("/x"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let seen = upstream.state.last().unwrap();
    assert!(
        seen.header("x-api-key").is_none(),
        "the client's key must not reach the upstream"
    );
    verified_claims(seen.header("authorization").unwrap());

    for (name, request) in [
        (
            "wrong key",
            client.get(proxy.url("/x")).header("x-api-key", "guess"),
        ),
        ("no key", client.get(proxy.url("/x"))),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "ApiKey header=\"x-api-key\""
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "access_denied", "{name}");
    }
    assert_eq!(upstream.state.request_count(), 1);
    assert_eq!(
        idp.state.request_count(),
        1,
        "denials never touch the token"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "bearer_proxy_access_denied_total{reason=\"bad_credentials\",route=\"guarded\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &m,
            "bearer_proxy_access_denied_total{reason=\"no_credentials\",route=\"guarded\"}"
        ),
        1.0
    );
    let logs = proxy.output();
    assert!(logs.contains("access denied"));
    assert!(
        !logs.contains("guess") && !logs.contains(KEY),
        "credentials never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_users_open_the_route_and_their_credentials_are_replaced() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let hash = bcrypt::hash("legacy-pw", 4).unwrap();
    let proxy = proxy_with_access(
        &idp,
        &upstream,
        RawAccess {
            basic_users_file: Some("users.htpasswd".into()),
            ..RawAccess::default()
        },
        &[("users.htpasswd", format!("erp:{hash}\n"))],
    )
    .await;
    let client = client();
    for _ in 0..3 {
        let r = client
            .get(proxy.url("/x"))
            .header("authorization", basic("erp", "legacy-pw"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let auth = upstream.last_authorization();
        assert!(
            auth.starts_with("Bearer "),
            "the Basic credential was replaced"
        );
    }
    let r = client
        .get(proxy.url("/x"))
        .header("authorization", basic("erp", "wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic realm=\"bearer-proxy\""));
    let r = client.get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(!proxy.output().contains("legacy-pw"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_address_ranges_gate_the_route() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let outside = proxy_with_access(&idp, &upstream, cidrs(&["10.0.0.0/8"]), &[]).await;
    let r = client().get(outside.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["reason"].as_str()),
        (Some("access_denied"), Some("address"))
    );

    let inside = proxy_with_access(&idp, &upstream, cidrs(&["127.0.0.0/8", "::1/128"]), &[]).await;
    assert_eq!(get_status(inside.url("/x")).await, 200);

    // Address and credential combine: both must pass.
    let both = proxy_with_access(
        &idp,
        &upstream,
        RawAccess {
            allow_cidrs: vec!["127.0.0.1".into()],
            ..RawAccess::api_keys("api-keys")
        },
        &[("api-keys", bearer_proxy::api_key_line("erp", KEY))],
    )
    .await;
    assert_eq!(get_status(both.url("/x")).await, 401);
    let r = client()
        .get(both.url("/x"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
