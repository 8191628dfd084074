//! OpenTelemetry traces, as a real OTLP/HTTP receiver decodes them with the
//! official protobuf definitions: the caller's trace continued through the
//! proxy to the upstream, a span per upstream attempt and per token fetch,
//! shared-cache operations under their fetch, nothing secret in any byte
//! exported, and a dead collector costing no request.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;

use crate::support::*;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(15);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn telemetry(collector_endpoint: String, ratio: f64) -> RawTelemetry {
    RawTelemetry {
        otlp_endpoint: Some(collector_endpoint),
        sample_ratio: Some(ratio),
        service_name: Some("bp-under-test".into()),
        headers: [(
            "x-collector-key".to_string(),
            "collector-key-314159".to_string(),
        )]
        .into(),
    }
}

fn kind(span: &Span) -> SpanKind {
    SpanKind::try_from(span.kind).unwrap()
}

fn server_span<'a>(spans: &'a [Span], trace: &str) -> Option<&'a Span> {
    spans
        .iter()
        .find(|s| kind(s) == SpanKind::Server && hex(&s.trace_id) == trace)
}

fn children<'a>(spans: &'a [Span], parent: &Span) -> Vec<&'a Span> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
        .collect()
}

fn fetch_spans(spans: &[Span]) -> Vec<&Span> {
    spans.iter().filter(|s| s.name == "token fetch").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_trace_continues_through_the_proxy_to_the_upstream_without_secrets() {
    let collector = Collector::start().await;
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    // Ratio 0: only the caller's sampled traceparent is followed.
    config.raw.telemetry = Some(telemetry(collector.endpoint(), 0.0));
    config.raw.routes[0] = RawRoute::open("main", "/ic/api/", &upstream.url(), "oic")
        .with_access(RawAccess::api_keys("keys"));
    config.files = vec![(
        "keys",
        bearer_proxy::api_key_line("erp", "k-erp-secret-271828"),
    )];
    let proxy = Proxy::start(&config).await;

    let r = client()
        .get(proxy.url("/ic/api/integration/v1/flows?access_token=query-secret-987"))
        .header("x-api-key", "k-erp-secret-271828")
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent_upstream = upstream.state.last().unwrap();
    let token = upstream.last_authorization();

    let spans = collector
        .wait_for(WAIT, |s| {
            server_span(s, TRACE_ID).is_some_and(|server| !children(s, server).is_empty())
                && !fetch_spans(s).is_empty()
        })
        .await;
    let server = server_span(&spans, TRACE_ID).unwrap();
    assert_eq!(server.name, "GET main");
    assert_eq!(
        hex(&server.parent_span_id),
        PARENT_ID,
        "the caller's span is the parent"
    );
    for (key, value) in [
        ("http.request.method", "GET"),
        ("http.route", "/ic/api/"),
        ("http.response.status_code", "200"),
        ("client.address", "127.0.0.1"),
        ("bearer_proxy.route", "main"),
        ("bearer_proxy.client", "oic"),
        ("bearer_proxy.caller", "api_key:erp"),
        ("url.path", "/ic/api/integration/v1/flows"),
    ] {
        assert_eq!(attr(server, key).as_deref(), Some(value), "{key}");
    }
    let attempts = children(&spans, server);
    assert_eq!(attempts.len(), 1, "one upstream attempt");
    let attempt = attempts[0];
    assert_eq!(kind(attempt), SpanKind::Client);
    assert_eq!(
        attr(attempt, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(attempt, "http.request.resend_count"), None);
    // The upstream continues the same trace under the proxy's attempt.
    assert_eq!(
        sent_upstream.header("traceparent"),
        Some(format!("00-{TRACE_ID}-{}-01", hex(&attempt.span_id)).as_str())
    );
    assert_eq!(sent_upstream.header("tracestate"), Some("vendor=opaque"));

    let fetch = fetch_spans(&spans)[0];
    assert_eq!(kind(fetch), SpanKind::Client);
    assert!(
        fetch.parent_span_id.is_empty(),
        "a fetch is a trace of its own"
    );
    for (key, value) in [
        ("bearer_proxy.client", "oic"),
        ("bearer_proxy.grant", "client_credentials"),
        ("bearer_proxy.issuer", "identity_domain"),
        ("bearer_proxy.token.outcome", "success"),
    ] {
        assert_eq!(attr(fetch, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(collector.service_names()[0], "bp-under-test");

    let exported: Vec<u8> = collector.bodies().concat();
    let bearer = token.trim_start_matches("Bearer ");
    for secret in [
        CLIENT_SECRET,
        "query-secret-987",
        "k-erp-secret-271828",
        "collector-key-314159",
        bearer,
    ] {
        assert!(
            !exported
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "{secret:?} appears in an exported span"
        );
    }
    let logs = proxy.output();
    assert!(
        logs.lines()
            .any(|l| l.contains("path=\"/ic/api/integration/v1/flows\"")
                && l.contains(&format!("trace_id={TRACE_ID}"))),
        "the access log line carries the trace id:\n{logs}"
    );

    // Not recorded (ratio 0, no caller trace): no span, no traceparent
    // made up; a caller's unsampled traceparent passes on unchanged.
    let r = client()
        .get(proxy.url("/ic/api/unsampled"))
        .header("x-api-key", "k-erp-secret-271828")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.state.last().unwrap().header("traceparent"), None);
    let unsampled = format!("00-{TRACE_ID}-{PARENT_ID}-00");
    let r = client()
        .get(proxy.url("/ic/api/caller-unsampled"))
        .header("x-api-key", "k-erp-secret-271828")
        .header("traceparent", &unsampled)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        upstream.state.last().unwrap().header("traceparent"),
        Some(unsampled.as_str())
    );
    // The access log line is written after the answer has gone out.
    let line = || {
        proxy
            .output()
            .lines()
            .find(|l| l.contains("path=\"/ic/api/unsampled\""))
            .map(str::to_string)
    };
    assert!(eventually(WAIT, || async { line().is_some() }).await);
    assert!(
        !line().unwrap().contains("trace_id="),
        "an unsampled request's log line has no trace id"
    );
    // Neither became a span: a recorded request sent after them is
    // exported, and spans leave in the order they end.
    const LATER: &str = "0af7651916cd43dd8448eb211c80319c";
    let r = client()
        .get(proxy.url("/ic/api/later"))
        .header("x-api-key", "k-erp-secret-271828")
        .header("traceparent", format!("00-{LATER}-{PARENT_ID}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let spans = collector
        .wait_for(WAIT, |s| server_span(s, LATER).is_some())
        .await;
    assert!(
        !spans
            .iter()
            .any(|s| attr(s, "url.path").is_some_and(|p| p.contains("unsampled"))),
        "an unrecorded request has no span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_after_401_is_a_second_attempt_with_resend_count_linked_to_its_token_fetch() {
    let collector = Collector::start().await;
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.raw.telemetry = Some(telemetry(collector.endpoint(), 1.0));
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/warm")).await, 200);
    upstream.state.revoke(&upstream.last_authorization());

    let r = client()
        .post(proxy.url("/ic/api/replayed"))
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let replayed = upstream.state.last().unwrap();

    let is_replayed = |s: &Span| attr(s, "url.path").as_deref() == Some("/ic/api/replayed");
    let spans = collector
        .wait_for(WAIT, |s| {
            s.iter()
                .any(|x| is_replayed(x) && children(s, x).len() == 2)
                && fetch_spans(s).len() == 2
        })
        .await;
    let server = spans.iter().find(|s| is_replayed(s)).unwrap();
    let mut attempts = children(&spans, server);
    attempts.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(
        attr(attempts[0], "http.response.status_code").as_deref(),
        Some("401")
    );
    assert_eq!(attr(attempts[0], "http.request.resend_count"), None);
    assert_eq!(
        attr(attempts[1], "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(attempts[1], "http.request.resend_count").as_deref(),
        Some("1")
    );
    assert_eq!(
        replayed.header("traceparent"),
        Some(
            format!(
                "00-{}-{}-01",
                hex(&server.trace_id),
                hex(&attempts[1].span_id)
            )
            .as_str()
        ),
        "the replay names its own attempt as the upstream's parent"
    );
    // The request waited for the renewal: its span links to that fetch.
    let mut fetches = fetch_spans(&spans);
    fetches.sort_by_key(|s| s.start_time_unix_nano);
    let renewal = fetches[1];
    assert!(
        server
            .links
            .iter()
            .any(|l| l.span_id == renewal.span_id && l.trace_id == renewal.trace_id),
        "the replayed request links to the renewal's span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_fetch_span_carries_oracles_error_code_and_ecid() {
    let collector = Collector::start().await;
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.client_secret = "wrong-secret-value-161803";
    config.raw.telemetry = Some(telemetry(collector.endpoint(), 0.0));
    let _proxy = Proxy::start(&config).await;
    let spans = collector
        .wait_for(WAIT, |s| !fetch_spans(s).is_empty())
        .await;
    let fetch = fetch_spans(&spans)[0];
    assert_eq!(
        attr(fetch, "bearer_proxy.token.outcome").as_deref(),
        Some("idp_rejected")
    );
    assert_eq!(
        attr(fetch, "bearer_proxy.idp.error").as_deref(),
        Some("invalid_client")
    );
    let ecid = attr(fetch, "bearer_proxy.idp.ecid").expect("the ecid is recorded");
    assert_eq!(ecid.len(), 32);
    let exported: Vec<u8> = collector.bodies().concat();
    let secret = b"wrong-secret-value-161803";
    assert!(!exported.windows(secret.len()).any(|w| w == secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_cache_operations_are_child_spans_of_their_token_fetch() {
    let collector = Collector::start().await;
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let redis = Redis::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream).shared(&redis, &cache_key(), None);
    config.raw.telemetry = Some(telemetry(collector.endpoint(), 0.0));
    let _proxy = Proxy::start(&config).await;
    let spans = collector
        .wait_for(WAIT, |s| {
            fetch_spans(s)
                .iter()
                .any(|f| children(s, f).iter().any(|c| c.name == "redis SET"))
        })
        .await;
    let fetch = fetch_spans(&spans)
        .into_iter()
        .find(|f| children(&spans, f).iter().any(|c| c.name == "redis SET"))
        .unwrap();
    let names: Vec<&str> = children(&spans, fetch)
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    for op in ["redis GET", "redis SET NX", "redis SET"] {
        assert!(names.contains(&op), "{op} under the fetch: {names:?}");
    }
    for child in children(&spans, fetch) {
        assert_eq!(attr(child, "db.system.name").as_deref(), Some("redis"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_fails_no_request_and_its_spans_are_counted_as_dropped() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.raw.telemetry = Some(telemetry(dead, 1.0));
    let proxy = Proxy::start(&config).await;
    for i in 0..50 {
        assert_eq!(get_status(proxy.url(&format!("/r/{i}"))).await, 200);
    }
    const DROPPED: &str = "bearer_proxy_trace_spans_dropped_total";
    assert!(
        eventually(Duration::from_secs(30), || async {
            proxy.metric(DROPPED).await >= 100.0
        })
        .await,
        "every request's two spans are counted as dropped"
    );
    assert_eq!(get_status(proxy.url("/after")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_collector_holds_up_sigterm_by_at_most_the_flush_bound() {
    // Accepts connections and never answers: every export would wait out
    // its 10 s time-out.
    let silent = listener().await;
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.raw.telemetry = Some(telemetry(endpoint, 1.0));
    let mut proxy = Proxy::start(&config).await;
    for i in 0..5 {
        assert_eq!(get_status(proxy.url(&format!("/r/{i}"))).await, 200);
    }
    let started = std::time::Instant::now();
    proxy.terminate();
    let status = proxy
        .wait_exit(Duration::from_secs(8))
        .await
        .expect("exited");
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "exit waited {:?} for the collector",
        started.elapsed()
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_spans_are_flushed_when_sigterm_stops_the_proxy() {
    let collector = Collector::start().await;
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.raw.telemetry = Some(telemetry(collector.endpoint(), 1.0));
    let mut proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/ic/api/last-words")).await, 200);
    // At once: the batch would otherwise go out a second later.
    proxy.terminate();
    assert!(proxy.wait_exit(Duration::from_secs(8)).await.is_some());
    // The process has exited: what it sent has arrived.
    let spans = collector.spans();
    assert!(
        spans
            .iter()
            .any(|s| attr(s, "url.path").as_deref() == Some("/ic/api/last-words")),
        "the request's span was sent before exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_connect_is_an_attempt_span_with_its_error() {
    let collector = Collector::start().await;
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.raw.telemetry = Some(telemetry(collector.endpoint(), 1.0));
    let closed = format!("http://127.0.0.1:{}", free_port());
    config.raw.routes[0] = RawRoute::open("main", "/", &closed, "oic");
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/ic/api/unreachable")).await, 502);
    let is_request = |s: &Span| attr(s, "url.path").as_deref() == Some("/ic/api/unreachable");
    let spans = collector
        .wait_for(WAIT, |s| {
            s.iter()
                .any(|x| is_request(x) && children(s, x).iter().any(|c| c.name == "connect"))
        })
        .await;
    let server = spans.iter().find(|s| is_request(s)).unwrap();
    assert_eq!(
        attr(server, "http.response.status_code").as_deref(),
        Some("502")
    );
    let connect = children(&spans, server)
        .into_iter()
        .find(|c| c.name == "connect")
        .unwrap();
    assert_eq!(kind(connect), SpanKind::Client);
    assert!(attr(connect, "error.type").is_some_and(|e| !e.is_empty()));
    assert_eq!(
        attr(connect, "server.address").as_deref(),
        Some("127.0.0.1")
    );
}
