//! Live reload: valid configurations swap in, invalid ones are refused and
//! the old one keeps running; tokens of unchanged clients are kept;
//! in-flight requests and open connections survive.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn second_client_and_route(config: &mut ProxyConfig<'_>, idp: &Idp, upstream: &Upstream) {
    let second = RawClient {
        scopes: vec!["https://second.test:443urn:opc:resource:consumer::all".into()],
        ..oic_client(idp)
    };
    config.raw.clients.insert("oic2".into(), second);
    config.raw.routes.push(RawRoute::open(
        "second",
        "/second/",
        &upstream.url(),
        "oic2",
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_reload_adds_routes_and_keeps_unchanged_tokens() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    let proxy = Proxy::start(&config).await;
    assert_eq!(
        get_status(proxy.url("/second/x")).await,
        200,
        "served by main before the reload"
    );
    let first_token = upstream.last_authorization();

    second_client_and_route(&mut config, &idp, &upstream);
    proxy.rewrite(&config);
    let (status, body) = proxy.admin_reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["report"]["kept"], 1);
    assert_eq!(body["report"]["added"], 1);

    assert_eq!(get_status(proxy.url("/second/x")).await, 200);
    let claims = verified_claims(&upstream.last_authorization());
    assert_eq!(
        claims["scope"],
        "https://second.test:443urn:opc:resource:consumer::all"
    );
    assert_eq!(get_status(proxy.url("/x")).await, 200);
    assert_eq!(
        upstream.last_authorization(),
        first_token,
        "the unchanged client kept its token"
    );
    assert_eq!(idp.state.request_count(), 2, "only the new client fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_only_settings_are_reported_as_needing_a_restart() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    let proxy = Proxy::start(&config).await;
    config.server().work_stealing = Some(true);
    config.server().fast_path = Some(false);
    proxy.rewrite(&config);
    let (status, body) = proxy.admin_reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["report"]["needs_restart"],
        serde_json::json!(["server.work_stealing", "server.fast_path"]),
        "{body}"
    );
    assert_eq!(get_status(proxy.url("/x")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_reload_is_refused_with_paths_and_the_old_config_keeps_serving() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    let proxy = Proxy::start(&config).await;
    config.raw.routes = vec![RawRoute {
        matcher: Default::default(),
        ..RawRoute::open("broken", "/", "https://x.example", "nope")
    }];
    proxy.rewrite(&config);

    let (status, body) = proxy.admin_reload().await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_config");
    let problems = body["problems"].to_string();
    assert!(
        problems.contains("routes[0].client: unknown client (known: oic)"),
        "{problems}"
    );
    assert_eq!(
        get_status(proxy.url("/x")).await,
        200,
        "still serving the old configuration"
    );

    proxy.hangup();
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.output().contains("reload refused")
        })
        .await,
        "a rejected SIGHUP reload is logged"
    );
    assert_eq!(get_status(proxy.url("/x")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_new_access_rules() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/x")).await, 200);

    config.route().access = Some(RawAccess::api_keys("keys"));
    config.files = vec![("keys", bearer_proxy::api_key_line("erp", "the-key"))];
    proxy.rewrite(&config);
    proxy.hangup();
    assert!(
        eventually(Duration::from_secs(5), || async {
            get_status(proxy.url("/x")).await == 401
        })
        .await,
        "the route is closed after SIGHUP"
    );
    let r = client()
        .get(proxy.url("/x"))
        .header("x-api-key", "the-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(idp.state.request_count(), 1, "same client: token kept");
}

/// One raw HTTP/1.1 request on an open connection; returns the status.
async fn request_on(stream: &mut tokio::net::TcpStream, path: &str) -> u16 {
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length: usize = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            if buf.len() >= head_end + 4 + length {
                return text[9..12].parse().unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_and_open_connections_survive_a_reload() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    let proxy = Proxy::start(&config).await;
    let mut kept_alive = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .unwrap();
    assert_eq!(request_on(&mut kept_alive, "/before").await, 200);

    let slow = tokio::spawn(get_status(proxy.url("/__sleep/1500")));
    assert!(
        eventually(Duration::from_secs(5), || async {
            upstream.state.request_count() >= 2
        })
        .await
    );
    // The new configuration no longer has a route for "/".
    config.raw.routes = vec![route_to("other", &upstream.url())];
    proxy.rewrite(&config);
    let (status, body) = proxy.admin_reload().await;
    assert_eq!(status, 200, "{body}");

    assert_eq!(
        slow.await.unwrap(),
        200,
        "the in-flight request finished on the old configuration"
    );
    assert_eq!(
        request_on(&mut kept_alive, "/x").await,
        404,
        "same connection, new configuration"
    );
    assert_eq!(request_on(&mut kept_alive, "/other/x").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_command_checks_the_file_then_asks_the_proxy() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    let proxy = Proxy::start(&config).await;
    second_client_and_route(&mut config, &idp, &upstream);
    proxy.rewrite(&config);
    let path = proxy.config_path();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
            .args(["reload", "-c"])
            .arg(path)
            .env("TEST_CLIENT_SECRET", CLIENT_SECRET)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"reloaded\""));
    assert_eq!(get_status(proxy.url("/second/x")).await, 200);
    let r = client()
        .get(proxy.admin_url("/reload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405, "reload needs POST");
}
