//! A token fetch's CLIENT span, a root of its own trace (many requests may
//! wait on one fetch: they link to it), and the shared-cache operations
//! made during it as its children.

use opentelemetry::trace::{
    SpanContext, SpanKind, SpanRef, Status, TraceContextExt, TraceId, Tracer as _,
};
use opentelemetry::{Context, KeyValue};

/// The name of a token fetch's span.
const FETCH_SPAN: &str = "token fetch";
use super::{sampled_trace_id, tracer};
use crate::config::{ClientConfig, Issuer};
use crate::oauth::FetchError;

/// Empty when traces are off.
pub struct FetchTrace(Option<Context>);

impl FetchTrace {
    pub fn start(client: &ClientConfig) -> Self {
        let Some(t) = tracer() else {
            return FetchTrace(None);
        };
        let span = t
            .tracer
            .span_builder(FETCH_SPAN)
            .with_kind(SpanKind::Client)
            .start_with_context(&t.tracer, &Context::new());
        let cx = Context::new().with_span(span);
        if cx.span().is_recording() {
            describe(&cx.span(), client);
        }
        FetchTrace(Some(cx))
    }

    /// What waiting requests link to.
    pub fn span_context(&self) -> Option<SpanContext> {
        self.0.as_ref().map(|cx| cx.span().span_context().clone())
    }

    /// The context the fetch runs in (empty when traces are off).
    pub fn context(&self) -> Context {
        self.0.clone().unwrap_or_default()
    }

    /// Ends the span with the fetch's outcome: `success`, `shared` (taken
    /// from the fleet's cache) or the failure's outcome label.
    pub fn finish(self, outcome: &'static str, error: Option<&FetchError>) {
        let Some(cx) = self.0 else {
            return;
        };
        let span = cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new("bearer_proxy.token.outcome", outcome));
            if let Some(error) = error {
                failed(&span, error);
            }
        }
        span.end();
    }
}

fn describe(span: &SpanRef<'_>, client: &ClientConfig) {
    let url = &client.token_url;
    span.set_attributes([
        KeyValue::new("http.request.method", "POST"),
        KeyValue::new(
            "server.address",
            url.host_str().unwrap_or_default().to_string(),
        ),
        KeyValue::new(
            "server.port",
            i64::from(url.port_or_known_default().unwrap_or(443)),
        ),
        KeyValue::new("url.path", url.path().to_string()),
        KeyValue::new("bearer_proxy.client", client.name.clone()),
        KeyValue::new(
            "bearer_proxy.grant",
            crate::oauth::grant::kind_label(client.grant.kind()),
        ),
        KeyValue::new(
            "bearer_proxy.issuer",
            match client.issuer {
                Issuer::IdentityDomain => "identity_domain",
                Issuer::Oam => "oam",
            },
        ),
    ]);
}

fn failed(span: &SpanRef<'_>, error: &FetchError) {
    span.set_attribute(KeyValue::new("error.type", error.outcome()));
    if let Some(idp) = error.idp() {
        span.set_attribute(KeyValue::new("bearer_proxy.idp.error", idp.code.clone()));
        if let Some(ecid) = &idp.ecid {
            span.set_attribute(KeyValue::new("bearer_proxy.idp.ecid", ecid.clone()));
        }
    }
    // The error's text names the failure class and status, never the form.
    span.set_status(Status::error(error.to_string()));
}

/// A shared-cache operation's span, a child of the fetch it runs in; none
/// outside a recorded fetch. Ends when dropped.
pub struct CacheSpan(Context);

/// Starts [`CacheSpan`] for Redis command `op` (`GET`, `SET`, …).
pub fn cache_operation(op: &'static str) -> Option<CacheSpan> {
    let t = tracer()?;
    let parent =
        Context::map_current(|cx| cx.span().span_context().is_sampled().then(|| cx.clone()))?;
    let span = t
        .tracer
        .span_builder(format!("redis {op}"))
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("db.system.name", "redis"),
            KeyValue::new("db.operation.name", op),
        ])
        .start_with_context(&t.tracer, &parent);
    Some(CacheSpan(parent.with_span(span)))
}

impl CacheSpan {
    /// The operation failed: `kind` is `unavailable` or `timeout`.
    pub fn failed(&self, kind: &'static str) {
        let span = self.0.span();
        span.set_attribute(KeyValue::new("error.type", kind));
        span.set_status(Status::error(""));
    }
}

impl Drop for CacheSpan {
    fn drop(&mut self) {
        self.0.span().end();
    }
}

/// The trace id of the recorded fetch this code runs in, for log lines.
pub fn current_trace_id() -> Option<tracing::field::DisplayValue<TraceId>> {
    Context::map_current(sampled_trace_id).map(tracing::field::display)
}
