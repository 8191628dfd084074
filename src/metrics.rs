//! Every metric the proxy exports, as one struct whose families are each
//! built and registered in one place ([`Metrics::register`]). Label values
//! come from configuration (client and route names) or from small fixed
//! sets, never from requests, so cardinality stays bounded. Hot paths hold
//! handles resolved once per route or slot, not label lookups.

use std::sync::LazyLock;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// `{client,grant,outcome}`; outcome is `success|idp_rejected|idp_unavailable|rate_limited|invalid_response`.
    pub token_fetch: IntCounterVec,
    /// `{client}`: refresh tokens refused, after which the configured grant was used.
    pub token_refresh_fallback: IntCounterVec,
    /// `{client}`.
    pub token_fetch_duration: HistogramVec,
    /// `{client}`.
    pub token_expiry: GaugeVec,
    /// `{client,result}`; result is `hit|miss|coalesced`.
    pub token_cache: IntCounterVec,
    /// `{route,status}`; status is the HTTP status sent to the client.
    pub requests: IntCounterVec,
    /// `{route,reason}`; reason is `address|no_credentials|bad_credentials|certificate`.
    pub access_denied: IntCounterVec,
    /// `{route}`: requests replayed with a new token after an upstream 401.
    pub upstream_unauthorized_retries: IntCounterVec,
    /// `{route}`.
    pub upstream_duration: HistogramVec,
    pub in_flight: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics::register(Registry::new()));

/// The process's metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn counter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    reg.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn histogram(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let h = HistogramVec::new(opts, labels).expect("valid metric definition");
    reg.register(Box::new(h.clone()))
        .expect("metric names are unique");
    h
}

impl Metrics {
    /// Builds and registers every family in `registry`.
    pub fn register(registry: Registry) -> Self {
        let reg = &registry;
        let token_expiry = GaugeVec::new(
            Opts::new(
                "bearer_proxy_token_expiry_timestamp_seconds",
                "Unix time at which the cached token of a client expires",
            ),
            &["client"],
        )
        .expect("valid metric definition");
        reg.register(Box::new(token_expiry.clone()))
            .expect("metric names are unique");
        let in_flight = IntGauge::new(
            "bearer_proxy_requests_in_flight",
            "Requests currently being handled",
        )
        .expect("valid metric definition");
        reg.register(Box::new(in_flight.clone()))
            .expect("metric names are unique");
        Metrics {
            token_fetch: counter(
                reg,
                "bearer_proxy_token_fetch_total",
                "Token requests sent to the identity service, by outcome",
                &["client", "grant", "outcome"],
            ),
            token_refresh_fallback: counter(
                reg,
                "bearer_proxy_token_refresh_fallback_total",
                "Refresh tokens refused by the identity service, followed by the configured grant",
                &["client"],
            ),
            token_fetch_duration: histogram(
                reg,
                "bearer_proxy_token_fetch_duration_seconds",
                "Duration of token requests to the identity service",
                &["client"],
                &[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ],
            ),
            token_expiry,
            token_cache: counter(
                reg,
                "bearer_proxy_token_cache_total",
                "Token cache lookups on the request path",
                &["client", "result"],
            ),
            requests: counter(
                reg,
                "bearer_proxy_requests_total",
                "Requests answered, by route and status",
                &["route", "status"],
            ),
            access_denied: counter(
                reg,
                "bearer_proxy_access_denied_total",
                "Requests refused by a route's access rules",
                &["route", "reason"],
            ),
            upstream_unauthorized_retries: counter(
                reg,
                "bearer_proxy_upstream_unauthorized_retries_total",
                "Upstream 401 answers after which the token was renewed and the request replayed",
                &["route"],
            ),
            upstream_duration: histogram(
                reg,
                "bearer_proxy_upstream_duration_seconds",
                "Time from sending a request upstream to the end of its response",
                &["route"],
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0,
                ],
            ),
            in_flight,
            registry,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8192);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec cannot fail");
        out
    }
}

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
