//! Every metric the proxy exports, as one struct whose families are each
//! built and registered in one place ([`Metrics::register`]). Label values
//! come from configuration (client and route names) or from small fixed
//! sets, never from requests, so cardinality stays bounded. Hot paths hold
//! handles resolved once per route or slot, not label lookups.

use std::sync::LazyLock;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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
    /// `{route,outcome}`: every upstream 401, `replayed|passed_through|cooldown`.
    pub upstream_unauthorized: IntCounterVec,
    /// `{route}`.
    pub upstream_duration: HistogramVec,
    /// `{client,result}`; result is `hit|miss|lock_acquired|lock_waited|published|fallback`.
    pub shared_cache: IntCounterVec,
    /// `{kind}`; kind is `unavailable|timeout|decrypt|malformed`.
    pub shared_cache_errors: IntCounterVec,
    pub in_flight: IntGauge,
    /// `{client}`: callers with a cached slot (`on_behalf_of: caller`).
    pub callers: IntGaugeVec,
    /// `{client,reason}`; reason is `lru|idle`.
    pub caller_evictions: IntCounterVec,
    /// `{client,reason}`; reason is `idp_refused|remembered|attempt_limit`.
    pub caller_refusals: IntCounterVec,
    /// `{listener}`: client connections open now.
    pub connections: IntGaugeVec,
    /// `{listener}`: connections closed at once, `max_connections` being reached.
    pub connections_refused: IntCounterVec,
    /// `{trigger,outcome}`; trigger is `watch|signal|admin`, outcome `ok|invalid`.
    pub config_reloads: IntCounterVec,
    /// Sampled spans not delivered: the export queue was full, or the
    /// collector refused, failed or did not answer in time.
    pub trace_spans_dropped: IntCounter,
    /// `{client}`: when a `tls_client_auth` client's certificate expires.
    pub client_certificate_expiry: GaugeVec,
    /// `{limit,reason}`; reason is `rate|messages|busy`.
    pub limit_rejections: IntCounterVec,
    /// `{limit}`: places of a concurrency limit held on this replica.
    pub limit_in_flight: IntGaugeVec,
    /// `{limit}`: requests waiting for a place.
    pub limit_queued: IntGaugeVec,
    /// `{limit}`: how long requests waited for a place (admitted or not).
    pub limit_queue_wait: HistogramVec,
    /// `{limit}`: Oracle Integration messages counted by a message quota.
    pub limit_messages: IntCounterVec,
    /// `{limit}`: partitions (callers, addresses) this replica keeps state for.
    pub limit_partitions: IntGaugeVec,
    /// `{route,status}`: upstream 429 and 503 answers, passed through.
    pub upstream_throttled: IntCounterVec,
    /// `{listener}`: TLS handshakes begun (a ClientHello answered).
    pub tls_handshakes: IntCounterVec,
    /// `{route,outcome}`: upstream connections new, reused, or discarded
    /// by pingora's pool.
    pub upstream_connections: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics::register(Registry::new()));

/// The process's metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// One family: name, help text, label names.
struct Def {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

const LIMIT_REJECTIONS: Def = Def {
    name: "bearer_proxy_limit_rejections_total",
    help: "Requests refused by a traffic limit, by reason",
    labels: &["limit", "reason"],
};
const LIMIT_IN_FLIGHT: Def = Def {
    name: "bearer_proxy_limit_in_flight",
    help: "Places of a concurrency limit held on this replica",
    labels: &["limit"],
};
const LIMIT_QUEUED: Def = Def {
    name: "bearer_proxy_limit_queued",
    help: "Requests waiting for a place of a concurrency limit",
    labels: &["limit"],
};
const LIMIT_QUEUE_WAIT: Def = Def {
    name: "bearer_proxy_limit_queue_wait_seconds",
    help: "Time requests waited for a place of a concurrency limit",
    labels: &["limit"],
};
/// From a free place (microseconds) to a full queue time-out.
const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.0005, 0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0,
];
const LIMIT_MESSAGES: Def = Def {
    name: "bearer_proxy_limit_messages_total",
    help: "Oracle Integration messages (one per started 50 KB of body) counted by a message quota",
    labels: &["limit"],
};
const LIMIT_PARTITIONS: Def = Def {
    name: "bearer_proxy_limit_partitions",
    help:
        "Partitions (callers or addresses, as keyed hashes) a limit keeps state for on this replica",
    labels: &["limit"],
};
const UPSTREAM_THROTTLED: Def = Def {
    name: "bearer_proxy_upstream_throttled_total",
    help: "Upstream 429 and 503 answers, passed through unchanged",
    labels: &["route", "status"],
};
const UPSTREAM_CONNECTIONS: Def = Def {
    name: "bearer_proxy_upstream_connections_total",
    help:
        "Upstream connections a request used, new or reused, and reusable ones the pool discarded",
    labels: &["route", "outcome"],
};
const TLS_HANDSHAKES: Def = Def {
    name: "bearer_proxy_tls_handshakes_total",
    help: "TLS handshakes begun on a TLS listener (connections beyond max_connections begin none)",
    labels: &["listener"],
};
const TOKEN_FETCH: Def = Def {
    name: "bearer_proxy_token_fetch_total",
    help: "Token requests sent to the identity service, by outcome",
    labels: &["client", "grant", "outcome"],
};
const TOKEN_REFRESH_FALLBACK: Def = Def {
    name: "bearer_proxy_token_refresh_fallback_total",
    help: "Refresh tokens refused by the identity service, followed by the configured grant",
    labels: &["client"],
};
const TOKEN_FETCH_DURATION: Def = Def {
    name: "bearer_proxy_token_fetch_duration_seconds",
    help: "Duration of token requests to the identity service",
    labels: &["client"],
};
const TOKEN_EXPIRY: Def = Def {
    name: "bearer_proxy_token_expiry_timestamp_seconds",
    help: "Unix time at which the cached token of a client expires",
    labels: &["client"],
};
const TOKEN_CACHE: Def = Def {
    name: "bearer_proxy_token_cache_total",
    help: "Token cache lookups on the request path",
    labels: &["client", "result"],
};
const REQUESTS: Def = Def {
    name: "bearer_proxy_requests_total",
    help: "Requests answered, by route and status",
    labels: &["route", "status"],
};
const ACCESS_DENIED: Def = Def {
    name: "bearer_proxy_access_denied_total",
    help: "Requests refused by a route's access rules",
    labels: &["route", "reason"],
};
const UPSTREAM_UNAUTHORIZED_RETRIES: Def = Def {
    name: "bearer_proxy_upstream_unauthorized_retries_total",
    help: "Upstream 401 answers after which the token was renewed and the request replayed",
    labels: &["route"],
};
const UPSTREAM_UNAUTHORIZED: Def = Def {
    name: "bearer_proxy_upstream_unauthorized_total",
    help: "Upstream 401 answers: replayed with a new token, passed through, or passed through during a cool-down",
    labels: &["route", "outcome"],
};
const UPSTREAM_DURATION: Def = Def {
    name: "bearer_proxy_upstream_duration_seconds",
    help: "Time from sending a request upstream to the end of its response",
    labels: &["route"],
};
const SHARED_CACHE: Def = Def {
    name: "bearer_proxy_shared_cache_total",
    help: "Shared token cache: entries adopted (hit) or not (miss), fleet locks taken or waited for, tokens published, fetches done locally because Redis could not help",
    labels: &["client", "result"],
};
const SHARED_CACHE_ERRORS: Def = Def {
    name: "bearer_proxy_shared_cache_errors_total",
    help: "Shared token cache failures: Redis unavailable or slow, entries that do not decrypt or parse",
    labels: &["kind"],
};
const IN_FLIGHT: Def = Def {
    name: "bearer_proxy_requests_in_flight",
    help: "Requests currently being handled",
    labels: &[],
};
const CALLERS: Def = Def {
    name: "bearer_proxy_callers",
    help: "Callers of an on_behalf_of: caller client with a cached token slot",
    labels: &["client"],
};
const CALLER_EVICTIONS: Def = Def {
    name: "bearer_proxy_caller_evictions_total",
    help: "Callers' slots dropped: least recently used beyond max_callers, or idle past caller_idle_timeout",
    labels: &["client", "reason"],
};
const CALLER_REFUSALS: Def = Def {
    name: "bearer_proxy_caller_refusals_total",
    help: "Callers refused: by the identity service, by the remembered refusal of their password, or by the per-user attempt ceiling",
    labels: &["client", "reason"],
};
const CONNECTIONS: Def = Def {
    name: "bearer_proxy_connections",
    help: "Client connections open now, by listener",
    labels: &["listener"],
};
const CONNECTIONS_REFUSED: Def = Def {
    name: "bearer_proxy_connections_refused_total",
    help: "Client connections closed at once because server.max_connections were open",
    labels: &["listener"],
};
const CONFIG_RELOADS: Def = Def {
    name: "bearer_proxy_config_reloads_total",
    help: "Configuration reloads by trigger (watch, signal, admin) and outcome (ok, invalid: the running configuration was kept)",
    labels: &["trigger", "outcome"],
};

const TRACE_SPANS_DROPPED: Def = Def {
    name: "bearer_proxy_trace_spans_dropped_total",
    help: "Sampled spans not delivered to the OTLP collector (export queue full, collector down, slow or refusing)",
    labels: &[],
};

const CLIENT_CERTIFICATE_EXPIRY: Def = Def {
    name: "bearer_proxy_client_certificate_expiry_timestamp_seconds",
    help: "When the certificate of a tls_client_auth client expires (Unix time)",
    labels: &["client"],
};

const FETCH_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const UPSTREAM_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Builds families and registers each as it is built.
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        self.0
            .register(Box::new(c.clone()))
            .expect("metric names are unique");
        c
    }

    fn counter(&self, d: Def) -> IntCounterVec {
        let c = IntCounterVec::new(Opts::new(d.name, d.help), d.labels);
        self.add(c.expect("valid metric definition"))
    }

    fn gauge(&self, d: Def) -> GaugeVec {
        let g = GaugeVec::new(Opts::new(d.name, d.help), d.labels);
        self.add(g.expect("valid metric definition"))
    }

    fn histogram(&self, d: Def, buckets: &[f64]) -> HistogramVec {
        let opts = HistogramOpts::new(d.name, d.help).buckets(buckets.to_vec());
        self.add(HistogramVec::new(opts, d.labels).expect("valid metric definition"))
    }

    fn int_gauge_vec(&self, d: Def) -> IntGaugeVec {
        let g = IntGaugeVec::new(Opts::new(d.name, d.help), d.labels);
        self.add(g.expect("valid metric definition"))
    }

    fn int_counter(&self, d: Def) -> IntCounter {
        self.add(IntCounter::new(d.name, d.help).expect("valid metric definition"))
    }

    fn int_gauge(&self, d: Def) -> IntGauge {
        self.add(IntGauge::new(d.name, d.help).expect("valid metric definition"))
    }
}

impl Metrics {
    /// Builds and registers every family in `registry`.
    pub fn register(registry: Registry) -> Self {
        let r = Registrar(&registry);
        Metrics {
            token_fetch: r.counter(TOKEN_FETCH),
            token_refresh_fallback: r.counter(TOKEN_REFRESH_FALLBACK),
            token_fetch_duration: r.histogram(TOKEN_FETCH_DURATION, FETCH_BUCKETS),
            token_expiry: r.gauge(TOKEN_EXPIRY),
            token_cache: r.counter(TOKEN_CACHE),
            requests: r.counter(REQUESTS),
            access_denied: r.counter(ACCESS_DENIED),
            upstream_unauthorized_retries: r.counter(UPSTREAM_UNAUTHORIZED_RETRIES),
            upstream_unauthorized: r.counter(UPSTREAM_UNAUTHORIZED),
            upstream_duration: r.histogram(UPSTREAM_DURATION, UPSTREAM_BUCKETS),
            shared_cache: r.counter(SHARED_CACHE),
            shared_cache_errors: r.counter(SHARED_CACHE_ERRORS),
            in_flight: r.int_gauge(IN_FLIGHT),
            callers: r.int_gauge_vec(CALLERS),
            caller_evictions: r.counter(CALLER_EVICTIONS),
            caller_refusals: r.counter(CALLER_REFUSALS),
            connections: r.int_gauge_vec(CONNECTIONS),
            connections_refused: r.counter(CONNECTIONS_REFUSED),
            config_reloads: r.counter(CONFIG_RELOADS),
            trace_spans_dropped: r.int_counter(TRACE_SPANS_DROPPED),
            client_certificate_expiry: r.gauge(CLIENT_CERTIFICATE_EXPIRY),
            limit_rejections: r.counter(LIMIT_REJECTIONS),
            limit_in_flight: r.int_gauge_vec(LIMIT_IN_FLIGHT),
            limit_queued: r.int_gauge_vec(LIMIT_QUEUED),
            limit_queue_wait: r.histogram(LIMIT_QUEUE_WAIT, QUEUE_WAIT_BUCKETS),
            limit_messages: r.counter(LIMIT_MESSAGES),
            limit_partitions: r.int_gauge_vec(LIMIT_PARTITIONS),
            upstream_throttled: r.counter(UPSTREAM_THROTTLED),
            tls_handshakes: r.counter(TLS_HANDSHAKES),
            upstream_connections: r.counter(UPSTREAM_CONNECTIONS),
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
