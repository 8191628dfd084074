//! Traffic limits in front of the upstream: concurrency ceilings with a
//! queue, rate limits and Oracle Integration message quotas, per caller
//! and shared by a fleet through a real Redis.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn concurrency(max: u32, queue_timeout: Duration) -> RawLimit {
    RawLimit {
        concurrency: Some(max),
        queue_timeout: Some(queue_timeout),
        ..RawLimit::default()
    }
}

/// The test configuration with limit `name` on its route.
fn limited<'a>(idp: &Idp, upstream: &Upstream, name: &str, limit: RawLimit) -> ProxyConfig<'a> {
    let mut config = ProxyConfig::new(idp, upstream);
    config.raw.limits.insert(name.into(), limit);
    config.route().limits = vec![name.into()];
    config
}

/// `count` GETs of `path` at once, spread over `proxies`: each status.
async fn burst(proxies: &[&Proxy], path: &str, count: usize) -> Vec<u16> {
    let client = client();
    let requests = (0..count).map(|i| {
        let request = client.get(proxies[i % proxies.len()].url(path));
        async move { request.send().await.map_or(0, |r| r.status().as_u16()) }
    });
    futures_util::future::join_all(requests).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_slow_requests_through_a_ceiling_of_three_all_succeed_and_never_exceed_three() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let config = limited(
        &idp,
        &upstream,
        "sync",
        concurrency(3, Duration::from_secs(20)),
    );
    let proxy = Proxy::start(&config).await;
    let statuses = burst(&[&proxy], "/__sleep/300", 12).await;
    assert_eq!(count(&statuses, 200), 12, "{statuses:?}");
    assert_eq!(
        upstream.state.max_in_flight(),
        3,
        "the upstream saw at most 3, and 3 were used"
    );
    let waited = proxy
        .metric("bearer_proxy_limit_queue_wait_seconds_count{limit=\"sync\"}")
        .await;
    assert_eq!(waited, 12.0);
    assert_eq!(
        proxy
            .metric("bearer_proxy_limit_in_flight{limit=\"sync\"}")
            .await,
        0.0
    );
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_queue_time_the_excess_gets_503_upstream_busy_at_once() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let config = limited(&idp, &upstream, "sync", concurrency(3, Duration::ZERO));
    let proxy = Proxy::start(&config).await;
    let started = std::time::Instant::now();
    let statuses = burst(&[&proxy], "/__sleep/1500", 12).await;
    assert_eq!(
        (count(&statuses, 200), count(&statuses, 503)),
        (3, 9),
        "{statuses:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let holders = tokio::spawn({
        let urls: Vec<String> = (0..3).map(|_| proxy.url("/__sleep/1500")).collect();
        async move {
            let client = client();
            futures_util::future::join_all(urls.into_iter().map(|u| client.get(u).send())).await
        }
    });
    assert!(
        eventually(Duration::from_secs(5), || async {
            upstream.state.in_flight() == 3
        })
        .await
    );
    let refused = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "upstream_busy");
    assert_eq!(body["limit"], "sync");
    let rejected = proxy
        .metric("bearer_proxy_limit_rejections_total{limit=\"sync\",reason=\"busy\"}")
        .await;
    assert_eq!(rejected, 10.0);
    assert_eq!(idp.state.request_count(), 1, "refusals cost no token fetch");
    for answer in holders.await.unwrap() {
        assert_eq!(answer.unwrap().status(), 200);
    }
}
}

fn rate(text: &str, burst: u32, per: LimitPer) -> RawLimit {
    RawLimit {
        rate: Some(text.into()),
        burst: Some(burst),
        per: Some(per),
        ..RawLimit::default()
    }
}

async fn get_with_key(proxy: &Proxy, key: &str) -> reqwest::Response {
    client()
        .get(proxy.url("/x"))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_caller_rate_limits_one_api_key_and_not_the_other() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = limited(
        &idp,
        &upstream,
        "per-consumer",
        rate("3/min", 3, LimitPer::Caller),
    );
    config.route().access = Some(RawAccess::api_keys("keys"));
    let lines =
        [("erp", "k-erp-1"), ("crm", "k-crm-2")].map(|(n, k)| bearer_proxy::api_key_line(n, k));
    config.files = vec![("keys", lines.join("\n"))];
    let proxy = Proxy::start(&config).await;
    for remaining in [2, 1, 0] {
        let ok = get_with_key(&proxy, "k-erp-1").await;
        assert_eq!(ok.status(), 200);
        assert_eq!(header(&ok, "ratelimit-policy"), "\"per-consumer\";q=3;w=60");
        let state = header(&ok, "ratelimit");
        assert!(
            state.starts_with(&format!("\"per-consumer\";r={remaining};t=")),
            "{state}"
        );
    }
    let refused = get_with_key(&proxy, "k-erp-1").await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry), "one request every 20 s: {retry}");
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        "\"per-consumer\";q=3;w=60"
    );
    assert!(header(&refused, "ratelimit").starts_with("\"per-consumer\";r=0;t="));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["limit"].as_str()),
        (Some("rate_limited"), Some("per-consumer"))
    );
    assert_eq!(
        get_with_key(&proxy, "k-crm-2").await.status(),
        200,
        "the other caller's own rate"
    );
    assert_eq!(
        upstream.state.request_count(),
        4,
        "the refused request never reached the upstream"
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "bearer_proxy_limit_rejections_total{limit=\"per-consumer\",reason=\"rate\"}"
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &metrics,
            "bearer_proxy_limit_partitions{limit=\"per-consumer\"}"
        ),
        2.0
    );
    for name in ["erp", "crm", "k-erp-1"] {
        assert!(!metrics.contains(name), "no caller in the metrics: {name}");
        assert!(
            !proxy.status_json().await.to_string().contains(name),
            "no caller in /status: {name}"
        );
    }
}
}

async fn post(proxy: &Proxy, path: &str, body: reqwest::Body) -> reqwest::Response {
    client()
        .post(proxy.url(path))
        .body(body)
        .send()
        .await
        .unwrap()
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_counted_one_per_started_50_kb_and_the_quota_refuses_what_does_not_fit() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let quota = RawLimit {
        messages: Some("6/h".into()),
        ..RawLimit::default()
    };
    let mut config = limited(&idp, &upstream, "billing", quota);
    let chunked_quota = RawLimit {
        messages: Some("100/d".into()),
        ..RawLimit::default()
    };
    config.raw.limits.insert("chunked".into(), chunked_quota);
    let mut chunked_route = route_to("stream", &upstream.url());
    chunked_route.limits = vec!["chunked".into()];
    config.raw.routes.insert(0, chunked_route);
    let proxy = Proxy::start(&config).await;
    let counted = |limit: &'static str| {
        let proxy = &proxy;
        async move {
            proxy
                .metric(&format!(
                    "bearer_proxy_limit_messages_total{{limit=\"{limit}\"}}"
                ))
                .await
        }
    };
    for (bytes, total) in [(120_000usize, 3.0), (40_000, 4.0), (60_000, 6.0)] {
        let r = post(&proxy, "/x", vec![b'm'; bytes].into()).await;
        assert_eq!(r.status(), 200, "{bytes} bytes");
        assert_eq!(counted("billing").await, total, "after {bytes} bytes");
    }
    let refused = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=3600).contains(&retry), "to the next hour: {retry}");
    assert!(header(&refused, "ratelimit").starts_with("\"billing\";r=0;t="));
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "quota_exceeded");
    assert_eq!(counted("billing").await, 6.0, "a refusal counts nothing");
    // A chunked body: one message on admission, the rest when it ends.
    let chunks = futures_util::stream::iter(
        (0..12).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'c'; 10_000]))),
    );
    let r = post(&proxy, "/stream/x", reqwest::Body::wrap_stream(chunks)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.state.last().unwrap().body_len, 120_000);
    assert!(
        eventually(Duration::from_secs(5), || async {
            counted("chunked").await == 3.0
        })
        .await,
        "120,000 chunked bytes are 3 messages: {}",
        counted("chunked").await
    );
    let get = client().get(proxy.url("/stream/x")).send().await.unwrap();
    assert_eq!(
        header(&get, "ratelimit-policy"),
        "\"chunked\";q=100;w=86400"
    );
    assert_eq!(counted("chunked").await, 4.0, "a GET is one message");
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_while_queued_leaves_the_queue() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let config = limited(
        &idp,
        &upstream,
        "sync",
        concurrency(1, Duration::from_secs(30)),
    );
    let proxy = Proxy::start(&config).await;
    let holder = tokio::spawn(client().get(proxy.url("/__sleep/2000")).send());
    assert!(
        eventually(Duration::from_secs(5), || async {
            upstream.state.in_flight() == 1
        })
        .await
    );
    let queued = || proxy.metric("bearer_proxy_limit_queued{limit=\"sync\"}");
    let mut leaver = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .unwrap();
    leaver
        .write_all(b"GET /left-the-queue HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert!(eventually(Duration::from_secs(5), || async { queued().await == 1.0 }).await);
    drop(leaver);
    assert!(
        eventually(Duration::from_secs(1), || async { queued().await == 0.0 }).await,
        "the request left the queue when its client went"
    );
    assert_eq!(upstream.state.in_flight(), 1, "the holder is still there");
    let next = client().get(proxy.url("/next")).send().await.unwrap();
    assert_eq!(next.status(), 200);
    assert_eq!(holder.await.unwrap().unwrap().status(), 200);
    let paths: Vec<String> = upstream
        .state
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert!(!paths.contains(&"/left-the-queue".to_string()), "{paths:?}");
    let mut raw = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .unwrap();
    raw.write_all(b"GET /still-served HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_integrations_429_and_503_pass_through_unretried_and_are_counted() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&ProxyConfig::new(&idp, &upstream)).await;
    for status in [429u16, 503] {
        let r = client()
            .get(proxy.url(&format!("/__status/{status}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            body["upstream"], "bearer-proxy echo upstream",
            "the upstream's own answer"
        );
    }
    assert_eq!(upstream.state.request_count(), 2, "never retried");
    assert_eq!(idp.state.request_count(), 1, "the token is kept");
    for status in ["429", "503"] {
        let sample =
            format!("bearer_proxy_upstream_throttled_total{{route=\"main\",status=\"{status}\"}}");
        assert_eq!(proxy.metric(&sample).await, 1.0, "{sample}");
    }
}
}

fn fleet_config<'a>(
    idp: &Idp,
    upstream: &Upstream,
    redis: &Redis,
    key: &str,
    name: &str,
    limit: RawLimit,
) -> ProxyConfig<'a> {
    let mut config = limited(idp, upstream, name, limit).shared(redis, key, None);
    // A loaded CI machine must not turn a slow answer into the Redis-down
    // share these tests do not look at.
    if let Some(r) = config.raw.cache.redis.as_mut() {
        r.operation_timeout = Some(Duration::from_secs(3));
    }
    config
}

/// The identity service, the upstream, a Redis and `n` replicas sharing
/// limit `name` through it.
struct Fleet {
    _idp: Idp,
    upstream: Upstream,
    redis: Redis,
    replicas: Vec<Proxy>,
}

async fn fleet(n: usize, name: &str, limit: RawLimit) -> Fleet {
    let (idp, upstream, redis) = (
        Idp::start().await,
        Upstream::start().await,
        Redis::start().await,
    );
    let key = cache_key();
    let config = fleet_config(&idp, &upstream, &redis, &key, name, limit);
    let replicas = futures_util::future::join_all((0..n).map(|_| Proxy::start(&config))).await;
    Fleet {
        _idp: idp,
        upstream,
        redis,
        replicas,
    }
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_concurrency_ceiling() {
    let Fleet {
        upstream,
        redis,
        replicas,
        ..
    } = fleet(2, "sync", concurrency(3, Duration::from_secs(20))).await;
    let statuses = burst(&[&replicas[0], &replicas[1]], "/__sleep/300", 12).await;
    assert_eq!(count(&statuses, 200), 12, "{statuses:?}");
    assert_eq!(
        upstream.state.max_in_flight(),
        3,
        "3 for the fleet, not 3 per replica"
    );
    let keys = redis.keys();
    assert!(
        keys.contains(&"bearer-proxy:limit:sync:replicas".to_string()),
        "the replicas announced themselves: {keys:?}"
    );
    let given_back = eventually(Duration::from_secs(5), || async {
        !redis.keys().iter().any(|k| k.contains(":places:"))
    });
    assert!(
        given_back.await,
        "every place was given back: {:?}",
        redis.keys()
    );
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_rate() {
    let f = fleet(3, "fleet-rate", rate("10/min", 10, LimitPer::All)).await;
    let replicas: Vec<&Proxy> = f.replicas.iter().collect();
    let statuses = burst(&replicas, "/x", 30).await;
    let admitted = count(&statuses, 200);
    // The limit plus max(1, 10 %) over any window; 10 requests a minute
    // regain one every 6 s, so a burst sees the bucket's 10 (11 at most).
    assert!((10..=11).contains(&admitted), "{statuses:?}");
    assert_eq!(count(&statuses, 429), 30 - admitted, "{statuses:?}");
}
}

/// `/status` shows `replicas` for `limit`.
async fn replicas_seen(proxy: &Proxy, limit: &str) -> u64 {
    let status = proxy.status_json().await;
    status["limits"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["name"] == limit))
        .and_then(|l| l["replicas"].as_u64())
        .unwrap_or(0)
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_requests_keep_succeeding_within_the_replicas_share() {
    let Fleet {
        upstream,
        mut redis,
        replicas,
        ..
    } = fleet(2, "sync", concurrency(4, Duration::from_secs(20))).await;
    let (a, b) = (&replicas[0], &replicas[1]);
    // Announcements every 5 s: both have seen each other within two.
    let both = eventually(Duration::from_secs(12), || async {
        replicas_seen(a, "sync").await == 2 && replicas_seen(b, "sync").await == 2
    });
    assert!(both.await, "{}", a.status_json().await["limits"]);
    redis.stop();
    let statuses = burst(&[a], "/__sleep/300", 8).await;
    assert_eq!(
        count(&statuses, 200),
        8,
        "no request fails because of Redis: {statuses:?}"
    );
    assert_eq!(
        upstream.state.max_in_flight(),
        2,
        "this replica's share: 4 / 2"
    );
    let status = a.status_json().await;
    assert_eq!(
        status["limits"][0]["scope"], "local share (1/2)",
        "{status}"
    );
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_holding_places_gives_them_back_within_the_lease() {
    let Fleet {
        upstream,
        redis: fleet_redis,
        replicas,
        ..
    } = fleet(2, "sync", concurrency(2, Duration::from_secs(30))).await;
    let (a, b) = (&replicas[0], &replicas[1]);
    let holders: Vec<_> = (0..2)
        .map(|_| tokio::spawn(client().get(a.url("/__sleep/120000")).send()))
        .collect();
    assert!(
        eventually(Duration::from_secs(5), || async {
            upstream.state.in_flight() == 2
        })
        .await
    );
    let places = format!("bearer-proxy:limit:sync:places:{}", "0".repeat(32));
    let held_in_redis = eventually(Duration::from_secs(5), || async {
        redis::cmd("ZCARD")
            .arg(&places)
            .query::<u64>(&mut fleet_redis.connection())
            .unwrap_or(0)
            == 2
    });
    assert!(
        held_in_redis.await,
        "a holds both places in Redis: {:?}",
        fleet_redis.keys()
    );
    a.kill();
    let killed = std::time::Instant::now();
    let r = client().get(b.url("/after")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let waited = killed.elapsed();
    // The lease is 15 s from the last renewal (every 5 s).
    assert!(waited <= Duration::from_secs(17), "{waited:?}");
    assert!(
        waited >= Duration::from_secs(9),
        "the places were held: {waited:?}"
    );
    for h in holders {
        h.abort();
    }
}
}

crate::both_transports! {
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_a_changed_limit_and_keeps_the_counts_of_unchanged_ones() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = limited(&idp, &upstream, "sync", concurrency(1, Duration::ZERO));
    config
        .raw
        .limits
        .insert("r".into(), rate("2/min", 2, LimitPer::All));
    let mut rated = route_to("rated", &upstream.url());
    rated.limits = vec!["r".into()];
    config.raw.routes.insert(0, rated);
    let proxy = Proxy::start(&config).await;
    let status = |path: &'static str| {
        let url = proxy.url(path);
        async move { client().get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        [
            status("/rated/a").await,
            status("/rated/b").await,
            status("/rated/c").await
        ],
        [200, 200, 429]
    );
    let holder = tokio::spawn(client().get(proxy.url("/__sleep/2000")).send());
    assert!(
        eventually(Duration::from_secs(5), || async {
            upstream.state.in_flight() == 1
        })
        .await
    );
    assert_eq!(status("/x").await, 503);
    config
        .raw
        .limits
        .insert("sync".into(), concurrency(2, Duration::ZERO));
    proxy.rewrite(&config);
    let (code, report) = proxy.admin_reload().await;
    assert_eq!(code, 200, "{report}");
    assert_eq!(
        status("/rated/d").await,
        429,
        "the unchanged rate kept its count"
    );
    assert_eq!(
        status("/x").await,
        200,
        "the changed ceiling applies to new requests"
    );
    let held = holder.await.unwrap().unwrap();
    assert_eq!(held.status(), 200, "the request in flight kept its place");
}
}
