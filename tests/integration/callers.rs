//! Each caller as itself at Oracle: per-caller tokens from the caller's own
//! Basic credentials (password grant) or from its name (user assertion),
//! bounded, lockout-safe, and shared by the fleet.

use std::time::{Duration, Instant};

use crate::support::*;

const REFUSALS: &str = "bearer_proxy_caller_refusals_total";
const EVICTIONS: &str = "bearer_proxy_caller_evictions_total";
const WRONG: &str = "not-alices-password";

/// Users of the emulator's identity domain beside alice.
fn register_users(idp: &Idp) {
    idp.state.register_user("bob", "bob-Password-2");
    idp.state.register_user("carol", "carol-Password-3");
}

/// One route `/` whose client `as-user` takes each caller's own Basic
/// credentials to the identity service; `tune` adjusts the client.
fn basic_config<'a>(
    idp: &Idp,
    upstream: &Upstream,
    tune: impl FnOnce(&mut RawClient),
) -> ProxyConfig<'a> {
    let mut config = ProxyConfig::new(idp, upstream);
    let mut client = RawClient {
        grant: GrantKind::Password,
        ..oic_client(idp)
    }
    .for_callers();
    tune(&mut client);
    config.raw.clients.insert("as-user".into(), client);
    config.raw.routes = vec![RawRoute::open("legacy", "/", &upstream.url(), "as-user")
        .with_access(RawAccess::identity_service_basic())];
    config
}

/// The `sub` of the token the upstream saw last.
fn upstream_sub(upstream: &Upstream) -> String {
    verified_claims(&upstream.last_authorization())["sub"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn refusals(proxy: &Proxy, reason: &str) -> f64 {
    proxy
        .metric(&format!(
            "{REFUSALS}{{client=\"as-user\",reason=\"{reason}\"}}"
        ))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_reach_the_upstream_as_themselves_and_a_second_request_needs_no_token_request()
{
    let idp = Idp::start().await;
    register_users(&idp);
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&basic_config(&idp, &upstream, |_| {})).await;
    assert_eq!(idp.state.request_count(), 0, "no caller, no token yet");
    let users = [
        (USER, USER_PASSWORD),
        ("bob", "bob-Password-2"),
        ("carol", "carol-Password-3"),
    ];
    for (user, password) in users {
        let r = get_as(&proxy, user, password).await;
        assert_eq!(r.status(), 200, "{user}");
        assert_eq!(upstream_sub(&upstream), user);
        let seen = upstream.state.last().unwrap();
        assert!(
            seen.header("authorization").unwrap().starts_with("Bearer "),
            "the caller's Basic header never goes upstream"
        );
    }
    assert_eq!(idp.state.request_count(), 3, "one token request per user");
    for (user, password) in users {
        assert_eq!(get_as(&proxy, user, password).await.status(), 200);
        assert_eq!(upstream_sub(&upstream), user);
    }
    assert_eq!(idp.state.request_count(), 3, "cached per caller");
    let form = &idp.state.requests()[0];
    assert_eq!(form.field("grant_type"), Some("password"));
    assert_eq!(
        proxy
            .metric("bearer_proxy_callers{client=\"as-user\"}")
            .await,
        3.0
    );
    let status = proxy.status_json().await;
    let callers = &status["callers"][0];
    assert_eq!(callers["cached_callers"], 3);
    assert_eq!(callers["max_callers"], 10000);
    let status_text = status.to_string();
    let log = proxy.output();
    for (user, password) in users {
        assert!(!status_text.contains(user), "/status names no user");
        assert!(!log.contains(password), "no password in the log");
    }
    assert!(
        log.contains("caller=\"user:bob\"") || log.contains("caller=user:bob"),
        "the access log names the user:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_retried_20_times_costs_one_token_request_and_locks_nobody() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&basic_config(&idp, &upstream, |_| {})).await;
    for i in 0..21 {
        let r = get_as(&proxy, USER, WRONG).await;
        assert_eq!(r.status(), 401, "attempt {i}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Basic realm=\"bearer-proxy\""),
            "{challenge}"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "access_denied");
        let reason = if i == 0 { "idp_refused" } else { "remembered" };
        assert_eq!(body["reason"], reason, "attempt {i}");
    }
    assert_eq!(
        idp.state.request_count(),
        1,
        "the refused pair is not sent again"
    );
    assert_eq!(idp.state.failed_logins(USER), 1);
    assert!(!idp.state.is_locked(USER));
    assert_eq!(refusals(&proxy, "idp_refused").await, 1.0);
    assert_eq!(refusals(&proxy, "remembered").await, 20.0);
    let ok = get_as(&proxy, USER, USER_PASSWORD).await;
    assert_eq!(ok.status(), 200, "the right password still works");
    assert_eq!(upstream_sub(&upstream), USER);
    assert!(!proxy.output().contains(WRONG), "no password in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_password_cached_does_not_admit_a_wrong_one() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&basic_config(&idp, &upstream, |_| {})).await;
    assert_eq!(get_as(&proxy, USER, USER_PASSWORD).await.status(), 200);
    let before = upstream.state.requests().len();
    let r = get_as(&proxy, USER, WRONG).await;
    assert_eq!(r.status(), 401);
    assert_eq!(upstream.state.requests().len(), before, "nothing forwarded");
    assert_eq!(
        idp.state.request_count(),
        2,
        "the wrong password was asked about, not matched to the cached token"
    );
    assert_eq!(get_as(&proxy, USER, USER_PASSWORD).await.status(), 200);
    assert_eq!(
        idp.state.request_count(),
        2,
        "the right one is still cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_password_grants_per_user_stop_at_the_attempt_ceiling() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&basic_config(&idp, &upstream, |_| {})).await;
    for i in 0..3 {
        let r = get_as(&proxy, USER, &format!("guess-{i}")).await;
        assert_eq!(r.status(), 401);
    }
    assert_eq!(idp.state.request_count(), 3);
    let r = get_as(&proxy, USER, "guess-3").await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "attempt_limit");
    assert_eq!(
        idp.state.request_count(),
        3,
        "the fourth within a minute is not sent"
    );
    assert_eq!(refusals(&proxy, "attempt_limit").await, 1.0);
    assert!(
        !idp.state.is_locked(USER),
        "3 failures stay below the lock threshold of 5"
    );
}

/// A password grant for alice sent straight to the emulator.
async fn direct_password_grant(idp: &Idp, password: &str) -> u16 {
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "password"),
            ("username", USER),
            ("password", password),
            ("scope", SCOPE),
        ])
        .finish();
    client()
        .post(idp.token_url())
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_proxy_five_wrong_passwords_lock_the_emulators_user() {
    let idp = Idp::start().await;
    for _ in 0..4 {
        assert_eq!(direct_password_grant(&idp, WRONG).await, 400);
    }
    assert!(!idp.state.is_locked(USER));
    assert_eq!(direct_password_grant(&idp, WRONG).await, 400);
    assert!(idp.state.is_locked(USER));
    assert_eq!(
        direct_password_grant(&idp, USER_PASSWORD).await,
        400,
        "a locked user is refused even with the right password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_callers_act_as_their_mapped_user_and_an_unmapped_one_gets_403() {
    let idp = Idp::start().await;
    register_users(&idp);
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    let as_caller = RawClient {
        client_auth: ClientAuthMethod::PrivateKeyJwt,
        client_secret: None,
        grant: GrantKind::JwtBearer,
        caller_subjects_file: Some("subjects".into()),
        signing_key: Some(RawSigningKey {
            key_file: Some(fixture("client-key.pem")),
            kid: Some(KEY_ALIAS.into()),
            ..RawSigningKey::default()
        }),
        ..oic_client(&idp)
    }
    .for_callers();
    config.raw.clients.insert("as-caller".into(), as_caller);
    config.raw.routes = vec![RawRoute::open("erp", "/", &upstream.url(), "as-caller")
        .with_access(RawAccess::api_keys("keys"))];
    let keys = [
        ("erp", "k-erp-1"),
        ("crm", "k-crm-2"),
        ("rogue", "k-rogue-3"),
    ];
    let lines: Vec<String> = keys
        .iter()
        .map(|(n, k)| bearer_proxy::api_key_line(n, k))
        .collect();
    config.files = vec![
        ("keys", lines.join("\n")),
        ("subjects", format!("erp: {USER}\ncrm: bob\n")),
    ];
    let proxy = Proxy::start(&config).await;
    let http = client();
    for (key, user) in [("k-erp-1", USER), ("k-crm-2", "bob")] {
        let r = http
            .get(proxy.url("/x"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(upstream_sub(&upstream), user);
    }
    let assertion = idp.state.requests()[0]
        .field("grant_type")
        .map(str::to_owned);
    assert_eq!(
        assertion.as_deref(),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let r = http
        .get(proxy.url("/x"))
        .header("x-api-key", "k-rogue-3")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"].as_str(), body["reason"].as_str()),
        (Some("access_denied"), Some("no_subject"))
    );
    // The access log line is written after the answer has gone out.
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.output().contains("no_subject")
        })
        .await,
        "the refusal's reason is not in the log"
    );
    assert_eq!(
        idp.state.request_count(),
        2,
        "an unmapped caller costs no token request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_beyond_max_callers_evict_the_least_recent_and_idle_callers_expire() {
    let idp = Idp::start().await;
    register_users(&idp);
    let upstream = Upstream::start().await;
    let config = basic_config(&idp, &upstream, |c| {
        c.max_callers = Some(2);
        c.caller_idle_timeout = Some(Duration::from_secs(1));
    });
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_as(&proxy, USER, USER_PASSWORD).await.status(), 200);
    assert_eq!(get_as(&proxy, "bob", "bob-Password-2").await.status(), 200);
    assert_eq!(
        get_as(&proxy, "carol", "carol-Password-3").await.status(),
        200
    );
    let gauge = "bearer_proxy_callers{client=\"as-user\"}";
    assert_eq!(proxy.metric(gauge).await, 2.0);
    let lru = format!("{EVICTIONS}{{client=\"as-user\",reason=\"lru\"}}");
    assert_eq!(proxy.metric(&lru).await, 1.0);
    // alice was evicted: her next request is a token request again.
    assert_eq!(get_as(&proxy, USER, USER_PASSWORD).await.status(), 200);
    assert_eq!(idp.state.request_count(), 4);
    let idle = format!("{EVICTIONS}{{client=\"as-user\",reason=\"idle\"}}");
    let swept = eventually(Duration::from_secs(5), || async {
        proxy.metric(gauge).await == 0.0 && proxy.metric(&idle).await == 2.0
    })
    .await;
    assert!(swept, "idle callers expire: {}", proxy.metrics().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_first_token_wait_is_bounded_by_upstream_timeout() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = basic_config(&idp, &upstream, |_| {});
    config.server().upstream_timeout = ms(300);
    let proxy = Proxy::start(&config).await;
    idp.state.set_mode(bearer_proxy::emulator::idp::Mode::Slow(
        Duration::from_secs(2),
    ));
    let started = Instant::now();
    let r = get_as(&proxy, USER, USER_PASSWORD).await;
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "bounded wait"
    );
    assert!(r.headers().contains_key("retry-after"));
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "token_unavailable");
    // The fetch went on: once it is answered the caller is served from it.
    assert!(
        idp.state
            .wait_for_requests(1, Duration::from_secs(10))
            .await
    );
    idp.state.set_mode(bearer_proxy::emulator::idp::Mode::Ok);
    let served = eventually(Duration::from_secs(5), || async {
        get_as(&proxy, USER, USER_PASSWORD).await.status() == 200
    })
    .await;
    assert!(served);
    assert_eq!(idp.state.requests().len(), 1, "no second token request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_time_a_token_used_in_its_renewal_window_is_renewed_and_an_idle_callers_is_not() {
    let idp = Idp::start().await;
    register_users(&idp);
    idp.state.set_token_lifetime(Duration::from_secs(10));
    let upstream = Upstream::start().await;
    let proxy = Proxy::start(&basic_config(&idp, &upstream, |_| {})).await;
    assert_eq!(get_as(&proxy, USER, USER_PASSWORD).await.status(), 200);
    assert_eq!(get_as(&proxy, "bob", "bob-Password-2").await.status(), 200);
    // Bob's token was requested before this instant, so its times count
    // from at most here: renewal is planned at 75-80 % of the 10 s
    // lifetime (jitter included), and it is usable until 9 s. Measured
    // from here, not from before the requests: under a loaded CI machine
    // the first fetches can take long enough to push a fixed instant out
    // of that window.
    let t0 = Instant::now();
    let first = upstream.last_authorization();
    assert_eq!(idp.state.request_count(), 2);
    tokio::time::sleep_until((t0 + Duration::from_millis(8050)).into()).await;
    assert_eq!(get_as(&proxy, "bob", "bob-Password-2").await.status(), 200);
    assert_eq!(
        upstream.last_authorization(),
        first,
        "served from the cache"
    );
    assert!(
        idp.state.wait_for_requests(3, Duration::from_secs(3)).await,
        "bob's token renewed in the background"
    );
    let renewal = &idp.state.requests()[2];
    assert_eq!(renewal.field("username"), Some("bob"));
    tokio::time::sleep_until((t0 + Duration::from_millis(10_200)).into()).await;
    assert_eq!(
        idp.state.request_count(),
        3,
        "alice's idle token was left to expire"
    );
    assert_eq!(get_as(&proxy, "bob", "bob-Password-2").await.status(), 200);
    assert_eq!(idp.state.request_count(), 3, "bob uses his renewed token");
}

/// A child process killed when dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demos_per_caller_route_brings_two_users_upstream_with_their_own_sub() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path()).await;
    let listen = demo.listen;
    let url = format!(
        "http://127.0.0.1:{listen}/as-user/ic/api/integration/v1/flows/rest/HELLO/1.0/ping"
    );
    for (user, password) in bearer_proxy::emulator::DEMO_USERS {
        let answer: serde_json::Value = client()
            .get(&url)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(answer["token_claims"]["sub"], user, "{answer}");
    }
    let wrong = client()
        .get(&url)
        .basic_auth("demo-alice", Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_ceiling_a_new_caller_past_the_ceiling_within_its_wait_gets_503_at_once_and_books_nothing(
) {
    let idp = Idp::start().await;
    register_users(&idp);
    let upstream = Upstream::start().await;
    let mut config = basic_config(&idp, &upstream, |_| {});
    config.server().upstream_timeout = ms(300);
    config.server().token_requests_per_second = Some(1.0);
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_as(&proxy, USER, USER_PASSWORD).await.status(), 200);
    // The next send may leave a second after the first: past bob's wait.
    let started = Instant::now();
    let r = get_as(&proxy, "bob", "bob-Password-2").await;
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "refused at once, not after waiting"
    );
    assert!(r.headers().contains_key("retry-after"));
    let r = get_as(&proxy, "carol", "carol-Password-3").await;
    assert_eq!(r.status(), 503);
    assert_eq!(idp.state.request_count(), 1, "neither was sent");
    assert_eq!(
        proxy
            .metric("bearer_proxy_callers{client=\"as-user\"}")
            .await,
        1.0,
        "nor holds a place"
    );
    // Nothing was booked for them: a second after alice's, bob is served.
    tokio::time::sleep_until((started + Duration::from_millis(1100)).into()).await;
    assert_eq!(get_as(&proxy, "bob", "bob-Password-2").await.status(), 200);
    assert_eq!(upstream_sub(&upstream), "bob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_time_with_refresh_tokens_each_caller_renews_with_its_own() {
    let idp = Idp::start().await;
    register_users(&idp);
    idp.state.set_token_lifetime(Duration::from_secs(10));
    let upstream = Upstream::start().await;
    let config = basic_config(&idp, &upstream, |c| c.refresh_token = true);
    let proxy = Proxy::start(&config).await;
    let users = [(USER, USER_PASSWORD), ("bob", "bob-Password-2")];
    let mut first = Vec::new();
    for (user, password) in users {
        assert_eq!(get_as(&proxy, user, password).await.status(), 200);
        first.push(upstream.last_authorization());
    }
    // Both tokens were requested before this instant: from here, renewal
    // is due within 8 s (75-80 % of 10 s) and both stay usable past it
    // (until 9 s after their request), however slow the first fetches.
    let t0 = Instant::now();
    let scope = idp.state.requests()[0].field("scope").unwrap().to_string();
    assert!(scope.contains("offline_access"), "{scope}");
    tokio::time::sleep_until((t0 + Duration::from_millis(8050)).into()).await;
    for (user, password) in users {
        assert_eq!(get_as(&proxy, user, password).await.status(), 200);
    }
    assert!(idp.state.wait_for_requests(4, Duration::from_secs(3)).await);
    let renewals: Vec<_> = idp.state.requests()[2..4].to_vec();
    for r in &renewals {
        assert_eq!(r.field("grant_type"), Some("refresh_token"));
        assert!(r.field("password").is_none(), "no password resent");
    }
    assert_ne!(
        renewals[0].field("refresh_token"),
        renewals[1].field("refresh_token")
    );
    // The renewed tokens are in place: each caller still arrives as itself.
    for ((user, password), old) in users.iter().zip(&first) {
        let renewed = eventually(Duration::from_secs(3), || async {
            get_as(&proxy, user, password).await.status() == 200
                && upstream.last_authorization() != *old
        })
        .await;
        assert!(renewed, "{user} got a renewed token");
        assert_eq!(upstream_sub(&upstream), *user);
    }
}
