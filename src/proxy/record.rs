//! The end of every request, whichever transport served it: the requests
//! counter, the upstream duration, one access-log line, the trace's spans.

use std::net::IpAddr;

use super::ctx::RequestCtx;
use crate::metrics::{self, metrics};

/// What the transport knows of a finished request.
pub struct Served<'a> {
    pub method: &'a http::Method,
    /// The path only: query strings can carry credentials.
    pub path: &'a str,
    /// The status written to the client (0: none).
    pub status: u16,
    pub client_ip: Option<IpAddr>,
    /// The transport failed without an error code of the proxy's own.
    pub failed: bool,
}

/// Counts, logs and ends the trace of one request.
pub fn finish(served: &Served<'_>, ctx: &mut RequestCtx) {
    let snapshot = ctx.snapshot.clone();
    let route = ctx.route.and_then(|i| snapshot.routes.get(i));
    let route_name = route.map_or(metrics::NO_ROUTE, |r| r.name.as_str());
    let status = served.status;
    metrics()
        .requests
        .with_label_values(&[route_name, metrics::status_label(status)])
        .inc();
    let upstream_ms = ctx.upstream_started.map(|t| {
        let d = t.elapsed();
        if let Some(r) = route {
            r.upstream_duration.observe(d.as_secs_f64());
        }
        d.as_secs_f64() * 1000.0
    });
    let error = ctx
        .error_code
        .or((served.failed && !ctx.replay_answered).then_some("proxy_error"));
    if tracing::enabled!(target: "bearer_proxy::access", tracing::Level::INFO) {
        tracing::info!(
            target: "bearer_proxy::access",
            request_id = ctx.request_id.to_str().unwrap_or_default(),
            method = served.method.as_str(),
            path = served.path,
            route = route_name,
            caller = ctx.caller.as_deref(),
            status,
            upstream_ms,
            total_ms = ctx.started.elapsed().as_secs_f64() * 1000.0,
            error,
            trace_id = ctx.trace.log_id(),
            "request"
        );
    }
    if ctx.trace.is_active() {
        ctx.trace.finish(crate::telemetry::Finished {
            method: served.method,
            status,
            route: route.map(|r| {
                (
                    r.name.as_str(),
                    r.prefix.as_str(),
                    r.tokens.client().name.as_str(),
                )
            }),
            caller: ctx.caller.as_deref(),
            client_address: served.client_ip,
            path: served.path,
            scheme: if ctx.downstream_tls { "https" } else { "http" },
            error,
        });
    }
}
