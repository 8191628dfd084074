//! A fleet of replicas sharing one sealed token cache in a real Redis: one
//! identity-service request per token lifetime for the whole fleet,
//! refresh tokens that never race, and no failed request when Redis fails.

use std::time::Duration;

use crate::support::*;

const SHARED: &str = "bearer_proxy_shared_cache_total";

/// The identity service, the upstream and a Redis for one fleet.
async fn services() -> (Idp, Upstream, Redis) {
    (
        Idp::start().await,
        Upstream::start().await,
        Redis::start().await,
    )
}

async fn replica(idp: &Idp, upstream: &Upstream, redis: &Redis, key: &str) -> Proxy {
    Proxy::start(&ProxyConfig::new(idp, upstream).shared(redis, key, None)).await
}

/// Three replicas starting together.
async fn three_replicas(
    idp: &Idp,
    upstream: &Upstream,
    redis: &Redis,
    key: &str,
) -> (Proxy, Proxy, Proxy) {
    tokio::join!(
        replica(idp, upstream, redis, key),
        replica(idp, upstream, redis, key),
        replica(idp, upstream, redis, key),
    )
}

/// `count` GETs spread over `proxies`, all at once; panics on any failure.
async fn all_ok(proxies: &[&Proxy], count: usize) {
    let client = client();
    let requests = (0..count).map(|i| {
        let url = proxies[i % proxies.len()].url(&format!("/r/{i}"));
        let client = client.clone();
        async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    for (i, result) in futures_util::future::join_all(requests)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(result.ok(), Some(200), "request {i}");
    }
}

async fn shared_metric(proxy: &Proxy, result: &str) -> f64 {
    proxy
        .metric(&format!("{SHARED}{{client=\"oic\",result=\"{result}\"}}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_starting_together_make_one_token_request_for_300_requests() {
    let (idp, upstream, redis) = services().await;
    let key = cache_key();
    let (a, b, c) = three_replicas(&idp, &upstream, &redis, &key).await;
    all_ok(&[&a, &b, &c], 300).await;
    assert_eq!(idp.state.request_count(), 1, "one token for the fleet");
    let mut published = 0.0;
    let mut adopted = 0.0;
    for p in [&a, &b, &c] {
        published += shared_metric(p, "published").await;
        adopted += shared_metric(p, "hit").await;
    }
    assert_eq!(published, 1.0);
    assert_eq!(adopted, 2.0, "the other two took it from Redis");
    let tokens: std::collections::HashSet<String> = upstream
        .state
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(tokens.len(), 1, "every replica sent the same token");
}

/// Steady requests over all three replicas until `stop`; returns how many
/// answered and the first failure, if any.
async fn load_until(proxies: &[&Proxy], stop: std::time::Instant) -> (usize, Option<String>) {
    let client = client();
    let mut answered = 0;
    while std::time::Instant::now() < stop {
        for p in proxies {
            match client.get(p.url("/load")).send().await {
                Ok(r) if r.status() == 200 => answered += 1,
                Ok(r) => return (answered, Some(format!("{} from {}", r.status(), p.port))),
                Err(e) => return (answered, Some(e.to_string())),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (answered, None)
}

/// Samples 40 s: a 10 s token is renewed about five times; the whole fleet
/// makes at most one token request per renewal (consecutive requests are
/// never closer than a renewal apart) and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewals_cost_one_request_each_for_the_fleet_sampled_over_40_seconds() {
    let (idp, upstream, redis) = services().await;
    idp.state.set_token_lifetime(Duration::from_secs(10));
    let key = cache_key();
    let (a, b, c) = three_replicas(&idp, &upstream, &redis, &key).await;
    let stop = std::time::Instant::now() + Duration::from_secs(40);
    let (answered, failure) = load_until(&[&a, &b, &c], stop).await;
    assert_eq!(failure, None, "after {answered} answers");
    let arrivals = idp.state.arrivals();
    // 40 s of 10 s tokens renewed at 80 %: the start plus about five.
    assert!(
        (4..=7).contains(&arrivals.len()),
        "{} token requests",
        arrivals.len()
    );
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] > Duration::from_secs(5),
            "two token requests {:?} apart: the fleet renewed twice",
            pair[1] - pair[0]
        );
    }
}

/// Samples 20 s of password-grant tokens living 4 s, renewed with
/// single-use refresh tokens by three replicas: no refresh is ever refused
/// (only the lock holder uses the refresh token, and writes the rotated
/// one back before releasing the lock) and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_refresh_tokens_never_race_across_replicas_sampled_over_20_seconds() {
    let (idp, upstream, redis) = services().await;
    idp.state.set_token_lifetime(Duration::from_secs(4));
    let key = cache_key();
    let config = || {
        let mut config = ProxyConfig::new(&idp, &upstream).shared(&redis, &key, None);
        *config.client() = password_refresh_client(&idp);
        config
    };
    let (ca, cb, cc) = (config(), config(), config());
    let (a, b, c) = tokio::join!(Proxy::start(&ca), Proxy::start(&cb), Proxy::start(&cc));
    let stop = std::time::Instant::now() + Duration::from_secs(20);
    let (answered, failure) = load_until(&[&a, &b, &c], stop).await;
    assert_eq!(failure, None, "after {answered} answers");
    let log = idp.state.requests();
    let refreshes = log
        .iter()
        .filter(|r| r.field("grant_type") == Some("refresh_token"))
        .count();
    assert!(
        refreshes >= 4,
        "renewed with refresh tokens: {refreshes} of {}",
        log.len()
    );
    for p in [&a, &b, &c] {
        assert_eq!(
            p.metric("bearer_proxy_token_refresh_fallback_total{client=\"oic\"}")
                .await,
            0.0,
            "no refresh token was refused (invalid_grant)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_under_load_fails_no_request_and_sharing_resumes_after_restart() {
    let (idp, upstream, mut redis) = services().await;
    idp.state.set_token_lifetime(Duration::from_secs(4));
    let key = cache_key();
    let (a, b, c) = three_replicas(&idp, &upstream, &redis, &key).await;
    redis.stop();
    // Tokens renew every ~3 s: each replica now renews on its own.
    let (answered, failure) = load_until(
        &[&a, &b, &c],
        std::time::Instant::now() + Duration::from_secs(8),
    )
    .await;
    assert_eq!(failure, None, "after {answered} answers with Redis down");
    let mut fallbacks = 0.0;
    for p in [&a, &b, &c] {
        fallbacks += shared_metric(p, "fallback").await;
        assert!(
            p.metric("bearer_proxy_shared_cache_errors_total{kind=\"unavailable\"}")
                .await
                + p.metric("bearer_proxy_shared_cache_errors_total{kind=\"timeout\"}")
                    .await
                > 0.0
        );
        assert_eq!(
            p.output().matches("shared token cache unavailable").count(),
            1,
            "one warning per episode"
        );
    }
    assert!(
        fallbacks >= 3.0,
        "every replica fetched on its own: {fallbacks}"
    );

    redis.restart().await;
    let before: f64 = published_total(&[&a, &b, &c]).await;
    let (answered, failure) = load_until(
        &[&a, &b, &c],
        std::time::Instant::now() + Duration::from_secs(8),
    )
    .await;
    assert_eq!(failure, None, "after {answered} answers once Redis is back");
    assert!(
        published_total(&[&a, &b, &c]).await > before,
        "sharing resumed"
    );
    for p in [&a, &b, &c] {
        assert!(p.output().contains("shared token cache answering again"));
    }
}

async fn published_total(proxies: &[&Proxy]) -> f64 {
    let mut total = 0.0;
    for p in proxies {
        total += shared_metric(p, "published").await;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_with_a_warm_cache_is_ready_without_a_token_request() {
    let (idp, upstream, redis) = services().await;
    let key = cache_key();
    let a = replica(&idp, &upstream, &redis, &key).await;
    assert_eq!(idp.state.request_count(), 1);
    let d = replica(&idp, &upstream, &redis, &key).await;
    assert_eq!(get_status(d.admin_url("/readyz")).await, 200);
    assert_eq!(
        idp.state.request_count(),
        1,
        "ready with zero token requests"
    );
    all_ok(&[&d], 10).await;
    let status: serde_json::Value = d.status_json().await;
    assert_eq!(status["clients"][0]["token_source"], "shared", "{status}");
    assert_eq!(status["shared_cache"]["healthy"], true);
    assert_eq!(status["shared_cache"]["backend"], "redis");
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_reads_old_entries_and_a_foreign_key_refetches() {
    let (idp, upstream, redis) = services().await;
    let (old, new) = (cache_key(), cache_key());
    let a = replica(&idp, &upstream, &redis, &old).await;
    // Rotation step: the new key seals, the old one still opens.
    let b = Proxy::start(&ProxyConfig::new(&idp, &upstream).shared(&redis, &new, Some(&old))).await;
    assert_eq!(idp.state.request_count(), 1, "the old key's entry was read");
    all_ok(&[&b], 5).await;
    // A replica that never had the old key cannot open it: it counts the
    // failure and fetches (and overwrites the entry with the new key).
    let c = replica(&idp, &upstream, &redis, &new).await;
    assert_eq!(idp.state.request_count(), 2);
    // Counted at each read (before taking the lock and under it).
    assert!(
        c.metric("bearer_proxy_shared_cache_errors_total{kind=\"decrypt\"}")
            .await
            >= 1.0
    );
    all_ok(&[&c], 5).await;
    let d = replica(&idp, &upstream, &redis, &new).await;
    assert_eq!(
        idp.state.request_count(),
        2,
        "the rewritten entry opens with the new key"
    );
    all_ok(&[&d], 5).await;
    // The same rotation on a running replica, by reload: no restart needed.
    a.rewrite(&ProxyConfig::new(&idp, &upstream).shared(&redis, &new, Some(&old)));
    let (status, body) = a.admin_reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["report"]["needs_restart"],
        serde_json::json!([]),
        "{body}"
    );
    all_ok(&[&a], 5).await;
    assert_eq!(idp.state.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_entry_is_counted_refetched_and_replaced() {
    let (idp, upstream, redis) = services().await;
    let key = cache_key();
    let _a = replica(&idp, &upstream, &redis, &key).await;
    let slot_key = redis.slot_key();
    let _: () = redis::cmd("SET")
        .arg(&slot_key)
        .arg("garbage")
        .query(&mut redis.connection())
        .unwrap();
    let b = replica(&idp, &upstream, &redis, &key).await;
    // Counted at each read (before taking the lock and under it).
    assert!(
        b.metric("bearer_proxy_shared_cache_errors_total{kind=\"malformed\"}")
            .await
            >= 1.0
    );
    assert_eq!(idp.state.request_count(), 2);
    all_ok(&[&b], 5).await;
    let c = replica(&idp, &upstream, &redis, &key).await;
    assert_eq!(idp.state.request_count(), 2, "the entry was replaced");
    all_ok(&[&c], 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_in_redis_is_readable_without_the_key() {
    let (idp, upstream, redis) = services().await;
    let key = cache_key();
    let mut config = ProxyConfig::new(&idp, &upstream).shared(&redis, &key, None);
    *config.client() = password_refresh_client(&idp);
    let proxy = Proxy::start(&config).await;
    all_ok(&[&proxy], 3).await;
    let token = upstream
        .last_authorization()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_string();
    let signature = token.rsplit('.').next().unwrap().to_string();
    let refresh = idp
        .state
        .requests()
        .iter()
        .find_map(|r| r.field("refresh_token").map(str::to_owned));
    let dump = redis.dump();
    assert!(!dump.is_empty(), "the entry is there");
    for (k, v) in &dump {
        let value = String::from_utf8_lossy(v);
        for secret in [
            token.as_str(),
            signature.as_str(),
            CLIENT_SECRET,
            CLIENT_ID,
            USER_PASSWORD,
        ] {
            assert!(
                !k.contains(secret) && !value.contains(secret),
                "{k} holds a secret"
            );
        }
        if let Some(r) = &refresh {
            assert!(!value.contains(r.as_str()));
        }
    }
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&dump[0].0)
        .query(&mut redis.connection())
        .unwrap();
    assert!(
        ttl > 3_500_000 && ttl <= 3_600_000,
        "TTL = the token's remaining life: {ttl} ms"
    );
}

/// A real Sentinel topology: a primary, its replica, one sentinel. The
/// fleet finds the primary through the sentinel; after a failover a new
/// replica finds the new primary, with the token replicated there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_find_the_primary_through_sentinel_before_and_after_a_failover() {
    let (idp, upstream) = (Idp::start().await, Upstream::start().await);
    let primary = Redis::start().await;
    let replica_redis = Redis::start_replica_of(&primary).await;
    let sentinel = Sentinel::start(&primary).await;
    let url = format!("redis+sentinel://127.0.0.1:{}/mymaster", sentinel.port);
    let key = cache_key();
    let config = || ProxyConfig::new(&idp, &upstream).shared_at(&url, &key, None);
    let (ca, cb) = (config(), config());
    let (a, b) = tokio::join!(Proxy::start(&ca), Proxy::start(&cb));
    all_ok(&[&a, &b], 20).await;
    assert_eq!(
        idp.state.request_count(),
        1,
        "one token through the sentinel's primary"
    );
    assert!(primary.dump().iter().any(|(k, _)| k.contains(":slot:")));

    // The sentinel learns of the replica from the primary's INFO.
    let knows_replica = || async {
        sentinel
            .command::<Vec<redis::Value>>(&["replicas", "mymaster"])
            .is_ok_and(|r| !r.is_empty())
    };
    assert!(
        eventually(Duration::from_secs(30), knows_replica).await,
        "sentinel found the replica"
    );
    let replicated = || async {
        replica_redis
            .dump()
            .iter()
            .any(|(k, _)| k.contains(":slot:"))
    };
    assert!(eventually(Duration::from_secs(10), replicated).await);
    let promote = || async {
        let _ = sentinel.command::<String>(&["failover", "mymaster"]);
        tokio::time::sleep(Duration::from_millis(500)).await;
        sentinel.primary_port() == Some(replica_redis.port)
    };
    assert!(
        eventually(Duration::from_secs(30), promote).await,
        "failover to the replica"
    );
    let c = Proxy::start(&config()).await;
    all_ok(&[&c], 5).await;
    assert_eq!(
        idp.state.request_count(),
        1,
        "the new primary had the token"
    );
}

/// A replica that died holding a slot's lock: the lock expires on its own
/// and the next replica fetches then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_dead_replica_expires_and_the_next_one_fetches() {
    let (idp, upstream, redis) = services().await;
    let key = cache_key();
    let a = replica(&idp, &upstream, &redis, &key).await;
    let slot_key = redis.slot_key();
    drop(a);
    // The entry is gone and a "dead" owner holds the lock for 1.5 s.
    let lock_key = slot_key.replace(":slot:", ":lock:");
    let mut c = redis.connection();
    let _: () = redis::cmd("DEL").arg(&slot_key).query(&mut c).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&lock_key)
        .arg("dead-replica")
        .arg("PX")
        .arg(1500)
        .query(&mut c)
        .unwrap();
    let started = std::time::Instant::now();
    let b = replica(&idp, &upstream, &redis, &key).await;
    assert_eq!(idp.state.request_count(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "waited for the lock to expire"
    );
    assert!(shared_metric(&b, "lock_waited").await >= 1.0);
    assert_eq!(
        shared_metric(&b, "fallback").await,
        0.0,
        "no fallback: the lock expired in time"
    );
    all_ok(&[&b], 5).await;
}

/// A Redis that answers too slowly (blocked by DEBUG SLEEP) is treated as
/// unavailable: the replica fetches on its own and counts a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_times_out_and_the_replica_fetches_on_its_own() {
    let (idp, upstream, redis) = services().await;
    let key = cache_key();
    // A connection opened before Redis blocks: its PING times out once
    // DEBUG SLEEP has taken hold (opening one now would block too).
    let probe = std::sync::Mutex::new(redis.connection());
    probe
        .lock()
        .unwrap()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let url = redis.url();
    let sleeper = std::thread::spawn(move || {
        let mut c = redis::Client::open(url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let slept: redis::RedisResult<String> =
            redis::cmd("DEBUG").arg("SLEEP").arg(3).query(&mut c);
        slept.expect("DEBUG SLEEP is enabled on the test server");
    });
    let blocked = || async {
        let mut c = probe.lock().unwrap();
        redis::cmd("PING").query::<String>(&mut *c).is_err()
    };
    assert!(
        eventually(Duration::from_secs(2), blocked).await,
        "DEBUG SLEEP took hold"
    );
    let a = replica(&idp, &upstream, &redis, &key).await;
    all_ok(&[&a], 5).await;
    assert_eq!(idp.state.request_count(), 1);
    assert!(
        a.metric("bearer_proxy_shared_cache_errors_total{kind=\"timeout\"}")
            .await
            >= 1.0
    );
    assert!(shared_metric(&a, "fallback").await >= 1.0);
    sleeper.join().unwrap();
}

/// Two replicas whose route passes each caller's Basic credentials to the
/// identity service (client `as-user`, `on_behalf_of: caller`).
async fn caller_replica(idp: &Idp, upstream: &Upstream, redis: &Redis, key: &str) -> Proxy {
    let mut config = ProxyConfig::new(idp, upstream).shared(redis, key, None);
    let client = RawClient {
        grant: GrantKind::Password,
        ..oic_client(idp)
    }
    .for_callers();
    config.raw.clients.insert("as-user".into(), client);
    config.raw.routes = vec![RawRoute::open("legacy", "/", &upstream.url(), "as-user")
        .with_access(RawAccess::identity_service_basic())];
    Proxy::start(&config).await
}

async fn status_as(proxy: &Proxy, user: &str, password: &str) -> u16 {
    get_as(proxy, user, password).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_need_one_token_request_per_user_and_redis_holds_nothing_in_clear() {
    let (idp, upstream, redis) = services().await;
    idp.state.register_user("bob", "bob-Password-2");
    let key = cache_key();
    let (a, b) = tokio::join!(
        caller_replica(&idp, &upstream, &redis, &key),
        caller_replica(&idp, &upstream, &redis, &key),
    );
    let users = [(USER, USER_PASSWORD), ("bob", "bob-Password-2")];
    for (user, password) in users {
        assert_eq!(status_as(&a, user, password).await, 200);
        assert_eq!(status_as(&b, user, password).await, 200);
        assert_eq!(status_as(&b, user, password).await, 200);
    }
    assert_eq!(
        idp.state.request_count(),
        2,
        "one token request per user for the fleet"
    );
    let hit = "bearer_proxy_shared_cache_total{client=\"as-user\",result=\"hit\"}";
    assert_eq!(
        b.metric(hit).await,
        2.0,
        "replica b adopted both users' tokens"
    );
    // One replica's refusal protects the user on the other.
    assert_eq!(status_as(&a, USER, "stale-password").await, 401);
    assert_eq!(status_as(&b, USER, "stale-password").await, 401);
    assert_eq!(
        idp.state.request_count(),
        3,
        "b did not send the refused pair again"
    );
    assert_eq!(idp.state.failed_logins(USER), 1);
    let remembered = "bearer_proxy_caller_refusals_total{client=\"as-user\",reason=\"remembered\"}";
    assert_eq!(b.metric(remembered).await, 1.0);
    let tokens: Vec<String> = upstream
        .state
        .requests()
        .iter()
        .filter_map(|r| {
            r.header("authorization")
                .map(|h| h.trim_start_matches("Bearer ").to_owned())
        })
        .collect();
    let dump = redis.dump();
    assert!(
        dump.iter().any(|(k, _)| k.contains(":refused:")),
        "the refusal is shared"
    );
    assert_eq!(dump.iter().filter(|(k, _)| k.contains(":slot:")).count(), 2);
    for (k, v) in &dump {
        let text = format!("{k} {}", String::from_utf8_lossy(v));
        for secret in [
            "alice",
            "bob",
            USER_PASSWORD,
            "bob-Password-2",
            "stale-password",
            "eyJ",
        ] {
            assert!(
                !text.contains(secret),
                "Redis holds {secret:?} in clear: {k}"
            );
        }
        for token in &tokens {
            assert!(!text.contains(token.as_str()));
        }
    }
}

/// Three replicas of `caller_replica` sharing one cache key.
async fn three_caller_replicas(idp: &Idp, upstream: &Upstream, redis: &Redis) -> [Proxy; 3] {
    let key = cache_key();
    let (a, b, c) = tokio::join!(
        caller_replica(idp, upstream, redis, &key),
        caller_replica(idp, upstream, redis, &key),
        caller_replica(idp, upstream, redis, &key),
    );
    [a, b, c]
}

/// The user's password grants the identity service saw (right or wrong).
fn password_grants(idp: &Idp) -> usize {
    idp.state
        .requests()
        .iter()
        .filter(|r| r.field("grant_type") == Some("password"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_count_one_password_ceiling_so_twelve_guesses_cannot_lock_the_user() {
    let (idp, upstream, redis) = services().await;
    let [a, b, c] = three_caller_replicas(&idp, &upstream, &redis).await;
    let replicas = [&a, &b, &c];
    for i in 0..12 {
        let status = status_as(replicas[i % 3], USER, &format!("guess-{i}")).await;
        assert_eq!(status, 401, "guess {i}");
    }
    assert_eq!(
        password_grants(&idp),
        3,
        "password_attempts_per_minute (3) for the fleet, not per replica"
    );
    assert!(!idp.state.is_locked(USER), "the emulator locks at 5");
    let mut refusals = std::collections::BTreeMap::new();
    for p in replicas {
        let metrics = p.metrics().await;
        for reason in ["attempt_limit", "idp_refused", "remembered"] {
            let sample = format!(
                "bearer_proxy_caller_refusals_total{{client=\"as-user\",reason=\"{reason}\"}}"
            );
            *refusals.entry(reason).or_insert(0.0) += metric_value(&metrics, &sample);
        }
    }
    assert_eq!(refusals["attempt_limit"], 9.0, "{refusals:?}");
    assert_eq!(refusals["idp_refused"], 3.0, "{refusals:?}");
    let keys = redis.keys();
    assert!(keys.iter().any(|k| k.contains("attempts:")), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k.contains(USER)),
        "no user name in Redis: {keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_password_is_answered_between_guesses_and_after_a_revocation() {
    let (idp, upstream, redis) = services().await;
    let [a, b, c] = three_caller_replicas(&idp, &upstream, &redis).await;
    let replicas = [&a, &b, &c];
    for p in replicas {
        assert_eq!(status_as(p, USER, USER_PASSWORD).await, 200);
    }
    for i in 0..6 {
        assert_eq!(
            status_as(replicas[i % 3], USER, &format!("stale-{i}")).await,
            401
        );
        assert_eq!(
            status_as(replicas[(i + 1) % 3], USER, USER_PASSWORD).await,
            200,
            "the right password after guess {i}"
        );
    }
    // The upstream revokes the right password's token: every replica
    // renews it while the stale passwords fill the ceiling.
    upstream.state.revoke(&upstream.last_authorization());
    for i in 6..9 {
        assert_eq!(
            status_as(replicas[i % 3], USER, &format!("stale-{i}")).await,
            401
        );
    }
    for p in replicas {
        assert_eq!(
            status_as(p, USER, USER_PASSWORD).await,
            200,
            "after the revocation"
        );
    }
    assert!(!idp.state.is_locked(USER));
}
