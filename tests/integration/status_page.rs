//! The admin status page in a real browser (Debian's chromium, driven by
//! playwright-core from tests/browser/status_page.mjs): a healthy client,
//! one whose identity service is down, "renew now", a refused reload, no
//! console error.

use std::path::Path;

use crate::support::*;

const TOKEN: &str = "status-page-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_client_states_and_renews_in_a_real_browser() {
    let (idp, upstream) = (Idp::start().await, Upstream::start().await);
    let mut config = ProxyConfig::new(&idp, &upstream);
    let down = RawClient {
        token_url: Some(format!("http://127.0.0.1:{}/oauth2/v1/token", free_port())),
        ..oic_client(&idp)
    };
    config.add_client_route("backoffice", down, &upstream.url());
    let as_user = RawClient {
        grant: GrantKind::Password,
        ..oic_client(&idp)
    }
    .for_callers();
    config.raw.clients.insert("as-user".into(), as_user);
    config.raw.routes.push(
        RawRoute::open("legacy", "/legacy/", &upstream.url(), "as-user")
            .with_access(RawAccess::identity_service_basic()),
    );
    // A client with no secret: it authenticates by certificate.
    let ca = TestCa::new();
    let secure = secure_token_endpoint(&idp, &ca).await;
    let (cert, key) = ca.client("status-page-client");
    idp.state
        .register_tls_client_certificate(CLIENT_ID, &cert)
        .unwrap();
    config.add_client_route("mtls", certificate_client(&secure), &upstream.url());
    config.files = vec![
        ("client.crt", cert),
        ("client.key", key),
        ("ca.pem", ca.pem.clone()),
    ];
    config.raw.admin.token = Some(TOKEN.into());
    config.raw.limits.insert(
        "per-ip".into(),
        RawLimit {
            rate: Some("1/min".into()),
            per: Some(LimitPer::ClientIp),
            ..RawLimit::default()
        },
    );
    config.raw.routes[0].limits = vec!["per-ip".into()];
    config.server().startup_token_wait = ms(300);
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/x")).await, 200);
    assert_eq!(
        get_status(proxy.url("/x")).await,
        429,
        "one a minute per address"
    );
    assert_eq!(get_status(proxy.url("/backoffice/x")).await, 503);
    for (password, status) in [(USER_PASSWORD, 200), ("wrong", 401)] {
        let r = client()
            .get(proxy.url("/legacy/x"))
            .basic_auth(USER, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status);
    }
    // A refused reload: the page shows it with its problem.
    let good = std::fs::read_to_string(proxy.config_path()).unwrap();
    std::fs::write(
        proxy.config_path(),
        good.replace("threads: 2", "threads: 0"),
    )
    .unwrap();
    let r = client()
        .post(proxy.admin_url("/reload"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing: .ci/install-deps installs it"
    );
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page.png");
    let mut cmd = std::process::Command::new("node");
    cmd.current_dir(&browser)
        .arg("status_page.mjs")
        .arg(proxy.admin_url("/"))
        .args([TOKEN, "oic", "backoffice"])
        .arg(&shot)
        .arg("as-user")
        .arg("server.threads")
        .arg("mtls=CN=status-page-client")
        .arg("per-ip=1/min=rate: 1")
        .arg("main");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("node runs"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shot.is_file(), "screenshot saved under target/");
    assert_eq!(
        idp.state.request_count(),
        5,
        "the start-up fetches (two clients), alice's two password grants and the renewal"
    );
}
