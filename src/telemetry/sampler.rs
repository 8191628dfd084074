//! Which spans are recorded: a caller's sampled `traceparent` is always
//! followed and an unsampled one never is (parent-based); traces that
//! start here are kept at `sample_ratio`, except token fetches, which are
//! always kept: they are rare (one per token lifetime) and are what an
//! operator looks for when requests wait.

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

/// The name of a token fetch's span.
pub const FETCH_SPAN: &str = "token fetch";

#[derive(Debug, Clone)]
pub struct ProxySampler {
    ratio: Sampler,
}

pub fn sampler(ratio: f64) -> ProxySampler {
    ProxySampler {
        ratio: Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))),
    }
}

impl ShouldSample for ProxySampler {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let root = parent.is_none_or(|cx| !cx.has_active_span());
        if root && *kind == SpanKind::Client && name == FETCH_SPAN {
            return SamplingResult {
                decision: SamplingDecision::RecordAndSample,
                attributes: Vec::new(),
                trace_state: Default::default(),
            };
        }
        self.ratio
            .should_sample(parent, trace_id, name, kind, attributes, links)
    }
}
