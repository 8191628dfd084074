//! Admin endpoints that are safe to expose: an admin token for everything
//! but the probes, JSON-only POSTs, and renewing a client's token on demand.

use crate::support::*;

const TOKEN: &str = "admin-token-0123456789abcdef";

async fn call(
    proxy: &Proxy,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    json: bool,
) -> (u16, serde_json::Value) {
    let mut request = client().request(method, proxy.admin_url(path));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if json {
        request = request
            .header("content-type", "application/json")
            .body("{}");
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// `POST /clients/oic/renew` with the token.
async fn renew(proxy: &Proxy) -> (u16, serde_json::Value) {
    call(
        proxy,
        reqwest::Method::POST,
        "/clients/oic/renew",
        Some(TOKEN),
        true,
    )
    .await
}

async fn protected(idp: &Idp, upstream: &Upstream, metrics_public: bool) -> Proxy {
    let mut config = ProxyConfig::new(idp, upstream);
    config.raw.admin.token_file = Some("admin.token".into());
    config.raw.admin.metrics_public = Some(metrics_public);
    config.files.push(("admin.token", format!("{TOKEN}\n")));
    Proxy::start(&config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_admin_token_only_the_probes_are_open() {
    let (idp, upstream) = (Idp::start().await, Upstream::start().await);
    let proxy = protected(&idp, &upstream, false).await;
    use reqwest::Method;
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            call(&proxy, Method::GET, path, None, false).await.0,
            200,
            "{path}"
        );
    }
    for path in ["/status", "/metrics"] {
        let (status, body) = call(&proxy, Method::GET, path, None, false).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["error"], "unauthorized");
        assert_eq!(
            call(
                &proxy,
                Method::GET,
                path,
                Some("wrong-token-0123456789"),
                false
            )
            .await
            .0,
            401
        );
        assert_eq!(
            call(&proxy, Method::GET, path, Some(TOKEN), false).await.0,
            200
        );
    }
    assert_eq!(
        call(&proxy, Method::POST, "/reload", None, true).await.0,
        401
    );
    assert_eq!(
        call(&proxy, Method::POST, "/reload", Some(TOKEN), false)
            .await
            .0,
        415,
        "not JSON: a cross-site form"
    );
    let (status, body) = call(&proxy, Method::POST, "/reload", Some(TOKEN), true).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !proxy.output().contains(TOKEN),
        "the admin token is never logged"
    );

    let public = protected(&idp, &upstream, true).await;
    assert_eq!(
        call(&public, Method::GET, "/metrics", None, false).await.0,
        200,
        "metrics_public"
    );
    assert_eq!(
        call(&public, Method::GET, "/status", None, false).await.0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_fetches_a_fresh_token_now_and_says_how_it_went() {
    let (idp, upstream) = (Idp::start().await, Upstream::start().await);
    let proxy = protected(&idp, &upstream, false).await;
    use reqwest::Method;
    assert_eq!(idp.state.request_count(), 1);
    let (status, body) = renew(&proxy).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["renewed"][0]["outcome"], "success");
    assert!(body["renewed"][0]["expires_at"].is_string());
    assert_eq!(idp.state.request_count(), 2, "a fresh token was fetched");
    assert!(!body.to_string().contains("eyJ"), "no token in the answer");
    assert_eq!(
        call(
            &proxy,
            Method::GET,
            "/clients/oic/renew",
            Some(TOKEN),
            false
        )
        .await
        .0,
        405
    );
    assert_eq!(
        call(
            &proxy,
            Method::POST,
            "/clients/nope/renew",
            Some(TOKEN),
            true
        )
        .await
        .0,
        404
    );
    // The identity service failing: the old token stays, the answer says why.
    idp.state
        .set_mode(bearer_proxy::emulator::Mode::ServerError);
    let (status, body) = renew(&proxy).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["renewed"][0]["outcome"], "idp_unavailable");
    assert_eq!(
        get_status(proxy.url("/x")).await,
        200,
        "still serving the token in use"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_posts_need_json_and_reload_command_sends_it() {
    let (idp, upstream) = (Idp::start().await, Upstream::start().await);
    let proxy = protected(&idp, &upstream, false).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
        .args(["reload", "-c"])
        .arg(proxy.config_path())
        .env("TEST_CLIENT_SECRET", CLIENT_SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let open = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    use reqwest::Method;
    assert_eq!(
        call(&open, Method::POST, "/reload", None, false).await.0,
        415
    );
    assert_eq!(
        call(&open, Method::POST, "/reload", None, true).await.0,
        200
    );
    assert_eq!(
        call(&open, Method::GET, "/status", None, false).await.0,
        200
    );
}
