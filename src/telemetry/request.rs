//! A request's spans: the SERVER span from arrival to the last byte, and a
//! CLIENT span per upstream attempt whose `traceparent` names it as the
//! upstream's parent. Only a recorded request has spans: one that is not
//! holds an empty `RequestTrace`, and every call on it returns at once.

use std::net::IpAddr;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceContextExt, TraceId, Tracer as _};
use opentelemetry::{Context, KeyValue};
use pingora::http::RequestHeader;

use super::headers::{Incoming, Outgoing};
use super::{sampled_trace_id, tracer};
use crate::config::UpstreamTarget;

/// Empty when traces are off.
#[derive(Default)]
pub struct RequestTrace {
    server: Option<Context>,
    attempt: Option<Context>,
    attempts: u32,
}

/// What the SERVER span records when the request is done.
pub struct Finished<'a> {
    pub method: &'a http::Method,
    pub status: u16,
    /// The matched route: name, prefix, client.
    pub route: Option<(&'a str, &'a str, &'a str)>,
    pub caller: Option<&'a str>,
    pub client_address: Option<IpAddr>,
    /// The path only: query strings can carry credentials.
    pub path: &'a str,
    pub scheme: &'static str,
    /// The proxy's own error code, when it answered itself.
    pub error: Option<&'static str>,
}

impl RequestTrace {
    /// Continues the caller's trace (`traceparent`, `tracestate`) or
    /// starts one — when it is recorded. Whether it is comes first, from
    /// the caller's sampled flag or a draw at `sample_ratio`: a request
    /// that is not recorded builds no span at all and passes the caller's
    /// `traceparent` on unchanged (a header lookup and a random number are
    /// all it costs).
    pub fn start(headers: &http::HeaderMap, method: &http::Method) -> Self {
        let Some(t) = tracer() else {
            return RequestTrace::default();
        };
        let sampled = match headers
            .get(&TRACEPARENT)
            .and_then(|v| caller_sampled(v.as_bytes()))
        {
            Some(sampled) => sampled,
            None => t.draw(),
        };
        if !sampled {
            return RequestTrace::default();
        }
        let parent = t.propagator.extract(&Incoming(headers));
        let span = t
            .tracer
            .span_builder(method_name(method))
            .with_kind(SpanKind::Server)
            .start_with_context(&t.tracer, &parent);
        RequestTrace {
            server: Some(parent.with_span(span)),
            attempt: None,
            attempts: 0,
        }
    }

    /// Whether this request has spans (it is recorded).
    pub fn is_active(&self) -> bool {
        self.server.is_some()
    }

    fn recording(&self) -> Option<&Context> {
        self.server.as_ref().filter(|cx| cx.span().is_recording())
    }

    /// The trace id for log lines, when this request is recorded.
    pub fn trace_id(&self) -> Option<TraceId> {
        self.server.as_ref().and_then(sampled_trace_id)
    }

    /// [`Self::trace_id`] as a log field.
    pub fn log_id(&self) -> Option<tracing::field::DisplayValue<TraceId>> {
        self.trace_id().map(tracing::field::display)
    }

    /// Names the span after the route it matched: `{method} {route}`.
    pub fn matched(&self, method: &http::Method, route: &str) {
        if let Some(cx) = self.recording() {
            cx.span()
                .update_name(format!("{} {route}", method_name(method)));
        }
    }

    /// The request waited for the token fetch `fetch`.
    pub fn link(&self, fetch: SpanContext) {
        if let Some(cx) = self.recording() {
            cx.span().add_link(fetch, Vec::new());
        }
    }

    /// A new upstream attempt: ends the previous one, starts a CLIENT span
    /// and writes its `traceparent` on `head`.
    pub fn attempt(&mut self, head: &mut RequestHeader, target: &UpstreamTarget) {
        self.end_attempt();
        let (Some(t), Some(server)) = (tracer(), &self.server) else {
            return;
        };
        let cx = server.with_span(
            t.tracer
                .span_builder(method_name(&head.method))
                .with_kind(SpanKind::Client)
                .start_with_context(&t.tracer, server),
        );
        if cx.span().is_recording() {
            let span = cx.span();
            span.set_attributes([
                KeyValue::new("http.request.method", method_name(&head.method)),
                KeyValue::new("url.full", format!("{}{}", target.url(), head.uri.path())),
                KeyValue::new("server.address", target.host.clone()),
                KeyValue::new("server.port", i64::from(target.port)),
            ]);
            if self.attempts > 0 {
                span.set_attribute(KeyValue::new(
                    "http.request.resend_count",
                    i64::from(self.attempts),
                ));
            }
        }
        self.attempts += 1;
        t.propagator.inject_context(&cx, &mut Outgoing(head));
        self.attempt = Some(cx);
    }

    /// The upstream answered the current attempt.
    pub fn answered(&self, status: u16) {
        let Some(cx) = self.attempt.as_ref() else {
            return;
        };
        let span = cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 400 {
                span.set_attribute(KeyValue::new("error.type", status.to_string()));
                span.set_status(Status::error(""));
            }
        }
    }

    /// The current attempt failed without an answer (`error`: pingora's
    /// error type). A failed connect has no attempt yet: it gets a span of
    /// its own.
    pub fn failed(&mut self, error: &'static str, target: &UpstreamTarget) {
        if self.attempt.is_none() {
            self.attempt = self.connect_attempt(target);
        }
        if let Some(cx) = self.attempt.as_ref().filter(|cx| cx.span().is_recording()) {
            cx.span().set_attribute(KeyValue::new("error.type", error));
            cx.span().set_status(Status::error(""));
        }
        self.end_attempt();
    }

    /// The span of an attempt that never connected.
    fn connect_attempt(&mut self, target: &UpstreamTarget) -> Option<Context> {
        let t = tracer()?;
        let server = self.recording()?.clone();
        self.attempts += 1;
        let span = t
            .tracer
            .span_builder("connect")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("server.address", target.host.clone()),
                KeyValue::new("server.port", i64::from(target.port)),
            ])
            .start_with_context(&t.tracer, &server);
        Some(server.with_span(span))
    }

    fn end_attempt(&mut self) {
        if let Some(cx) = self.attempt.take() {
            cx.span().end();
        }
    }

    /// Ends the request's spans with what it came to.
    pub fn finish(&mut self, done: Finished<'_>) {
        self.end_attempt();
        let Some(server) = self.server.take() else {
            return;
        };
        let span = server.span();
        if span.is_recording() {
            record(&span, &done);
        }
        span.end();
    }
}

fn record(span: &opentelemetry::trace::SpanRef<'_>, done: &Finished<'_>) {
    span.set_attributes([
        KeyValue::new("http.request.method", method_name(done.method)),
        KeyValue::new("http.response.status_code", i64::from(done.status)),
        KeyValue::new("url.path", done.path.to_string()),
        KeyValue::new("url.scheme", done.scheme),
    ]);
    if let Some((name, prefix, client)) = done.route {
        span.set_attributes([
            KeyValue::new("http.route", prefix.to_string()),
            KeyValue::new("bearer_proxy.route", name.to_string()),
            KeyValue::new("bearer_proxy.client", client.to_string()),
        ]);
    }
    if let Some(caller) = done.caller {
        span.set_attribute(KeyValue::new("bearer_proxy.caller", caller.to_string()));
    }
    if let Some(ip) = done.client_address {
        span.set_attribute(KeyValue::new("client.address", ip.to_string()));
    }
    if let Some(code) = done.error {
        span.set_attribute(KeyValue::new("bearer_proxy.error", code));
    }
    // A server span is an error only when the server failed (5xx).
    if done.status >= 500 || done.status == 0 {
        let kind = done
            .error
            .map_or_else(|| done.status.to_string(), str::to_string);
        span.set_attribute(KeyValue::new("error.type", kind));
        span.set_status(Status::error(""));
    }
}

static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The sampled flag of a well-formed version-00 `traceparent`
/// (`00-<32 hex>-<16 hex>-<2 hex flags>`); `None` for anything else,
/// which the proxy treats as no caller trace.
fn caller_sampled(value: &[u8]) -> Option<bool> {
    if value.len() < 55 || &value[..3] != b"00-" || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let flags = std::str::from_utf8(&value[53..55]).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some(flags & 1 == 1)
}

/// The method as a span name: the known ones, else `_OTHER` (the semantic
/// conventions' value: a method is client-chosen text).
pub fn method_name(method: &http::Method) -> &'static str {
    use http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        M::TRACE => "TRACE",
        M::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}
