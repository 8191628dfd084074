use std::time::Duration;

use bearer_proxy::emulator::Mode;

use crate::support::*;

const CACHE: &str = "bearer_proxy_token_cache_total{client=\"oic\",result=";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_concurrent_cold_requests_cause_one_token_request() {
    let idp = Idp::start().await;
    // The start-up fetch is still running when the listener opens, so every
    // request below finds an empty cache.
    idp.state.set_mode(Mode::Slow(Duration::from_secs(3)));
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().startup_token_wait = ms(50);
    let proxy = Proxy::start(&config).await;
    assert!(!proxy.metrics().await.contains("result=\"hit\"} 1"));

    let client = client();
    let requests = (0..300).map(|i| {
        let client = client.clone();
        let url = proxy.url(&format!("/cold/{i}"));
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(idp.state.request_count(), 1, "exactly one token request");
    assert_eq!(upstream.state.request_count(), 300);
    let coalesced = proxy.metric(&format!("{CACHE}\"coalesced\"}}")).await;
    let hits = proxy.metric(&format!("{CACHE}\"hit\"}}")).await;
    assert!(coalesced >= 1.0, "some requests waited on the shared fetch");
    assert_eq!(coalesced + hits, 300.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_renewed_in_the_background_before_expiry_without_requests_waiting() {
    let idp = Idp::start().await;
    idp.state.set_token_lifetime(Duration::from_secs(3));
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.client().refresh_before = Some(Duration::from_secs(1));
    let proxy = Proxy::start(&config).await;
    assert_eq!(idp.state.request_count(), 1);

    let client = client();
    let first = client.get(proxy.url("/a")).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let first_token = upstream.last_authorization();

    // Renewal is due at 80 % of 3 s; allow generous slack for a slow CI.
    assert!(
        idp.state
            .wait_for_requests(2, Duration::from_secs(10))
            .await,
        "no renewal"
    );
    // Readiness signal: the proxy has stored the renewed token.
    let success = "bearer_proxy_token_fetch_total{client=\"oic\",grant=\"client_credentials\",outcome=\"success\"}";
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.metric(success).await == 2.0
        })
        .await
    );
    let second = client.get(proxy.url("/b")).send().await.unwrap();
    assert_eq!(second.status(), 200);
    let second_token = upstream.last_authorization();
    assert_ne!(first_token, second_token, "requests use the renewed token");
    verified_claims(&second_token);

    let misses = proxy.metric(&format!("{CACHE}\"miss\"}}")).await;
    let coalesced = proxy.metric(&format!("{CACHE}\"coalesced\"}}")).await;
    assert_eq!(
        (misses, coalesced),
        (0.0, 0.0),
        "no request waited for the identity service"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_service_outage_while_token_is_valid_fails_no_request() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.client().retry = RawRetry {
        initial: ms(50),
        max: ms(200),
    };
    let proxy = Proxy::start(&config).await;
    idp.state.set_mode(Mode::Down);
    let client = client();
    for i in 0..50 {
        let r = client
            .get(proxy.url(&format!("/during-outage/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(idp.state.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_expiry_an_outage_gives_503_json_then_recovers() {
    let idp = Idp::start().await;
    idp.state.set_token_lifetime(Duration::from_secs(2));
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.client().retry = RawRetry {
        initial: ms(100),
        max: ms(300),
    };
    let proxy = Proxy::start(&config).await;
    idp.state.set_mode(Mode::ServerError);
    let client = client();

    // Poll until the cached token has expired and the proxy refuses.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let unavailable = loop {
        let r = client.get(proxy.url("/x")).send().await.unwrap();
        if r.status() == 503 {
            let retry_after = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap();
            break Some((retry_after, r.json::<serde_json::Value>().await.unwrap()));
        }
        assert_eq!(r.status(), 200, "only 200 or 503 are expected");
        if std::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(unavailable.is_some(), "the expired token was never refused");
    let (retry_after, body) = unavailable.unwrap();
    assert!(retry_after >= 1);
    assert_eq!(body["error"], "token_unavailable");
    assert_eq!(body["client"], "oic");
    let readyz = client.get(proxy.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 503);

    idp.state.set_mode(Mode::Ok);
    assert!(
        eventually(Duration::from_secs(10), || {
            let r = client.get(proxy.url("/x")).send();
            async move { r.await.unwrap().status() == 200 }
        })
        .await,
        "never recovered"
    );
    assert_eq!(get_status(proxy.admin_url("/readyz")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_for_first_token_when_startup_bound_passed() {
    let idp = Idp::start().await;
    idp.state.set_mode(Mode::Down);
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().startup_token_wait = ms(300);
    config.client().retry = RawRetry {
        initial: ms(100),
        max: ms(200),
    };
    let proxy = Proxy::start(&config).await;
    let client = client();
    let r = client.get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(get_status(proxy.admin_url("/readyz")).await, 503);
    idp.state.set_mode(Mode::Ok);
    assert!(
        eventually(Duration::from_secs(10), || {
            let r = client.get(proxy.url("/x")).send();
            async move { r.await.unwrap().status() == 200 }
        })
        .await
    );
}
