//! Every metric the proxy exports, registered once in a private registry.
//! Label values come from configuration (client and route names) or from
//! small fixed sets, never from requests, so cardinality stays bounded.

use std::sync::LazyLock;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("metric names are unique and registered once");
    c
}

/// `{client,grant,outcome}`; outcome is `success|idp_rejected|idp_unavailable|rate_limited|invalid_response`.
pub static TOKEN_FETCH_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "bearer_proxy_token_fetch_total",
                "Token requests sent to the identity service, by outcome",
            ),
            &["client", "grant", "outcome"],
        )
        .unwrap(),
    )
});

/// `{client}`: refresh tokens refused by the identity service, after which
/// the configured grant was used instead.
pub static TOKEN_REFRESH_FALLBACK: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "bearer_proxy_token_refresh_fallback_total",
                "Refresh tokens refused by the identity service, followed by the configured grant",
            ),
            &["client"],
        )
        .unwrap(),
    )
});

pub static TOKEN_FETCH_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "bearer_proxy_token_fetch_duration_seconds",
                "Duration of token requests to the identity service",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["client"],
        )
        .unwrap(),
    )
});

pub static TOKEN_EXPIRY: LazyLock<GaugeVec> = LazyLock::new(|| {
    register(
        GaugeVec::new(
            Opts::new(
                "bearer_proxy_token_expiry_timestamp_seconds",
                "Unix time at which the cached token of a client expires",
            ),
            &["client"],
        )
        .unwrap(),
    )
});

/// `{client,result}`; result is `hit|miss|coalesced`.
pub static TOKEN_CACHE_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "bearer_proxy_token_cache_total",
                "Token cache lookups on the request path",
            ),
            &["client", "result"],
        )
        .unwrap(),
    )
});

/// `{route,status}`; status is the HTTP status sent to the client.
pub static REQUESTS_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "bearer_proxy_requests_total",
                "Requests answered, by route and status",
            ),
            &["route", "status"],
        )
        .unwrap(),
    )
});

/// `{route,reason}`; reason is `address|no_credentials|bad_credentials|certificate`.
pub static ACCESS_DENIED_TOTAL: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "bearer_proxy_access_denied_total",
                "Requests refused by a route's access rules",
            ),
            &["route", "reason"],
        )
        .unwrap(),
    )
});

/// `{route}`: requests replayed with a new token after an upstream 401.
pub static UPSTREAM_UNAUTHORIZED_RETRIES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register(
        IntCounterVec::new(
            Opts::new(
                "bearer_proxy_upstream_unauthorized_retries_total",
                "Upstream 401 answers after which the token was renewed and the request replayed",
            ),
            &["route"],
        )
        .unwrap(),
    )
});

pub static UPSTREAM_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register(
        HistogramVec::new(
            HistogramOpts::new(
                "bearer_proxy_upstream_duration_seconds",
                "Time from sending a request upstream to the end of its response",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ]),
            &["route"],
        )
        .unwrap(),
    )
});

pub static IN_FLIGHT: LazyLock<IntGauge> = LazyLock::new(|| {
    register(
        IntGauge::new(
            "bearer_proxy_requests_in_flight",
            "Requests currently being handled",
        )
        .unwrap(),
    )
});

/// "100".."599" once, so the status label costs no allocation per request.
static STATUS_LABELS: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..600u16).map(|s| s.to_string()).collect());

/// The `status` label for an HTTP status (out-of-range values read "0").
pub fn status_label(status: u16) -> &'static str {
    STATUS_LABELS
        .get(usize::from(status))
        .filter(|_| status >= 100)
        .map_or("0", String::as_str)
}

/// Label used on `bearer_proxy_requests_total` for requests that matched no route.
pub const NO_ROUTE: &str = "(none)";

/// Forces registration so `/metrics` lists every family from the start.
pub fn init() {
    LazyLock::force(&TOKEN_FETCH_TOTAL);
    LazyLock::force(&TOKEN_FETCH_DURATION);
    LazyLock::force(&TOKEN_REFRESH_FALLBACK);
    LazyLock::force(&TOKEN_EXPIRY);
    LazyLock::force(&TOKEN_CACHE_TOTAL);
    LazyLock::force(&REQUESTS_TOTAL);
    LazyLock::force(&UPSTREAM_DURATION);
    LazyLock::force(&ACCESS_DENIED_TOTAL);
    LazyLock::force(&UPSTREAM_UNAUTHORIZED_RETRIES);
    LazyLock::force(&IN_FLIGHT);
}

/// The Prometheus text exposition of every metric.
pub fn render() -> Vec<u8> {
    let mut out = Vec::with_capacity(8192);
    TextEncoder::new()
        .encode(&REGISTRY.gather(), &mut out)
        .expect("text encoding into a Vec cannot fail");
    out
}
