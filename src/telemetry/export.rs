//! The export queue's bound, and the count of what it loses.
//!
//! The SDK's batch processor drops spans when its queue is full but only
//! tells its own log, once. So spans pass a gate first: at most `capacity`
//! may be waiting (queued or batched) at any time, the rest are dropped
//! here and counted, and the SDK's channel (sized above the gate) never
//! fills. Spans of a batch the collector refused, failed or did not answer
//! in time are counted too: a timed-out export is dropped mid-flight, which
//! a guard notices.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;

use crate::metrics::metrics;

/// How many sampled spans may wait for export at once.
#[derive(Debug)]
pub struct Gate {
    waiting: AtomicUsize,
    capacity: usize,
}

impl Gate {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Gate {
            waiting: AtomicUsize::new(0),
            capacity,
        })
    }

    fn admit(&self) -> bool {
        if self.waiting.fetch_add(1, Relaxed) < self.capacity {
            return true;
        }
        self.waiting.fetch_sub(1, Relaxed);
        dropped(1);
        false
    }

    fn left(&self, spans: usize) {
        self.waiting.fetch_sub(spans, Relaxed);
    }
}

fn dropped(spans: usize) {
    metrics().trace_spans_dropped.inc_by(spans as u64);
}

/// The SDK's processor behind the [`Gate`].
#[derive(Debug)]
pub struct GatedProcessor<P> {
    pub inner: P,
    pub gate: Arc<Gate>,
}

impl<P: SpanProcessor> SpanProcessor for GatedProcessor<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // Unsampled spans are never exported (the SDK skips them too).
        if span.span_context.is_sampled() && self.gate.admit() {
            self.inner.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, telling the [`Gate`] when spans leave the queue and
/// counting those that never arrive.
#[derive(Debug)]
pub struct CountedExporter<E> {
    pub inner: E,
    pub gate: Arc<Gate>,
}

/// Counts a batch as dropped unless its export succeeded.
struct Undelivered(usize);

impl Drop for Undelivered {
    fn drop(&mut self) {
        if self.0 > 0 {
            dropped(self.0);
        }
    }
}

impl<E: SpanExporter> SpanExporter for CountedExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut undelivered = Undelivered(batch.len());
        self.gate.left(batch.len());
        let result = self.inner.export(batch).await;
        if result.is_ok() {
            undelivered.0 = 0;
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
