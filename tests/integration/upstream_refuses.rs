//! An upstream that refuses every token (a confidential application
//! without the ServiceInvoker role, a scope of the wrong audience): after
//! one renewal, 401s pass to the client for a cool-down instead of each
//! request costing a token request.

use std::time::{Duration, Instant};

use crate::support::*;

const EPISODE_LOG: &str = "the upstream refused a freshly fetched token too";

fn outcome(name: &str) -> String {
    format!("bearer_proxy_upstream_unauthorized_total{{outcome=\"{name}\",route=\"main\"}}")
}

/// Every answer is the upstream's own 401 (its challenge, its body).
async fn assert_upstream_401(r: reqwest::Response) {
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(r.text().await.unwrap(), "revoked token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_upstream_costs_at_most_two_token_requests_sampled_over_30_seconds() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    upstream.state.refuse_every_token(true);
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    let client = client();
    let started = Instant::now();
    let mut answers = 0;
    // Steady load, four requests at a time, for 30 seconds.
    while started.elapsed() < Duration::from_secs(30) {
        let batch = (0..4).map(|i| client.get(proxy.url(&format!("/ic/api/{i}"))).send());
        for r in futures_util::future::join_all(batch).await {
            assert_upstream_401(r.unwrap()).await;
            answers += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(answers > 400, "steady load: {answers} requests");
    assert!(
        idp.state.request_count() <= 2,
        "{} token requests for {answers} requests",
        idp.state.request_count()
    );
    assert_eq!(
        proxy.output().matches(EPISODE_LOG).count(),
        1,
        "one warning per episode"
    );
    assert!(proxy.metric(&outcome("cooldown")).await > 300.0);
    // Only the first batch (four at once, one shared renewal) replayed.
    let replayed = proxy.metric(&outcome("replayed")).await;
    assert!((1.0..=4.0).contains(&replayed), "{replayed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_too_large_to_replay_do_not_storm_either() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    upstream.state.refuse_every_token(true);
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().max_replay_body_bytes = Some(0);
    let proxy = Proxy::start(&config).await;
    let client = client();
    for i in 0..40 {
        let r = client
            .post(proxy.url(&format!("/ic/api/{i}")))
            .body(vec![1u8; 100])
            .send()
            .await
            .unwrap();
        assert_upstream_401(r).await;
    }
    assert_eq!(
        idp.state.request_count(),
        2,
        "the purged token's replacement, refused by the next request, starts the cool-down"
    );
    assert_eq!(proxy.metric(&outcome("replayed")).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_cool_down_one_renewal_tries_again_and_status_shows_the_episode() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    upstream.state.refuse_every_token(true);
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().upstream_401_cooldown = Some(Duration::from_secs(1));
    let proxy = Proxy::start(&config).await;
    assert_upstream_401(client().get(proxy.url("/a")).send().await.unwrap()).await;
    assert_eq!(idp.state.request_count(), 2);
    let status: serde_json::Value = proxy.status_json().await;
    let episode = &status["clients"][0]["upstream_refusal"];
    assert_eq!(episode["route"], "main", "{status}");
    assert_eq!(episode["active"], true);
    assert_eq!(episode["status"], 401);
    assert_eq!(
        episode["www_authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(episode["token_scope"], SCOPE, "the refused token's claims");
    assert_eq!(episode["upstream_host"], "127.0.0.1");
    assert!(!status.to_string().contains("eyJ"), "no token in /status");
    // Once the cool-down has passed, the next 401 gets one renewal.
    let cooled = || async {
        let s: serde_json::Value = proxy.status_json().await;
        s["clients"][0]["upstream_refusal"]["active"] == false
    };
    assert!(eventually(Duration::from_secs(5), cooled).await);
    assert_upstream_401(client().get(proxy.url("/b")).send().await.unwrap()).await;
    assert_eq!(idp.state.request_count(), 3, "exactly one more");
    // And once the upstream accepts tokens again, requests get through.
    upstream.state.refuse_every_token(false);
    assert_eq!(get_status(proxy.url("/c")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_revoked_token_is_still_renewed_after_an_accepted_replacement() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    for round in 0..3 {
        assert_eq!(get_status(proxy.url("/warm")).await, 200);
        upstream.state.revoke(&upstream.last_authorization());
        assert_eq!(get_status(proxy.url("/x")).await, 200, "round {round}");
    }
    assert_eq!(
        idp.state.request_count(),
        4,
        "start-up and one renewal per revocation"
    );
    assert_eq!(proxy.metric(&outcome("replayed")).await, 3.0);
    assert!(!proxy.output().contains(EPISODE_LOG));
}
