//! OpenTelemetry traces (`telemetry:`): spans of requests, upstream
//! attempts, token fetches and shared-cache operations, exported over
//! OTLP/HTTP in batches from a task of their own.
//!
//! Spans use the OpenTelemetry API directly rather than `tracing` spans
//! bridged by `tracing-opentelemetry`: a request's span lives across
//! pingora's hooks (there is no one future to instrument), and a request
//! that is not recorded must cost next to nothing: whether it is, is
//! decided before any span is built (`RequestTrace::start`). With no `telemetry` section,
//! nothing here runs: [`tracer`] is `None` and every span is empty.

mod export;
mod fetch;
pub(crate) mod headers;
mod request;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, SdkTracer, SdkTracerProvider};

use crate::config::TelemetrySettings;
pub use fetch::{cache_operation, current_trace_id, FetchTrace};
pub use request::{Finished, RequestTrace};

/// Spans waiting for export at most; beyond, new ones are dropped (and
/// counted). About 1 KiB each.
const QUEUE_CAPACITY: usize = 2048;
const BATCH_SIZE: usize = 512;
/// How long spans wait for a batch to fill.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// One export's limit, retries included; its spans are dropped after.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the process waits at exit for the last spans to go out.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// What the request path needs: the tracer and the W3C propagator.
pub struct Tracing {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    /// `sample_ratio` of the `u64` range: a request without a caller
    /// trace is recorded when a random `u64` falls below it.
    threshold: u64,
    always: bool,
}

impl Tracing {
    /// A request that starts its trace here is recorded at `sample_ratio`.
    fn draw(&self) -> bool {
        self.always || rand::random::<u64>() < self.threshold
    }
}

static TRACING: OnceLock<Tracing> = OnceLock::new();

/// The process's tracer; `None` when traces are off.
pub fn tracer() -> Option<&'static Tracing> {
    TRACING.get()
}

/// Keeps export running; dropping it flushes what is queued (within the
/// export time-out) and stops the exporter's runtime.
pub struct Exporting {
    provider: SdkTracerProvider,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Exporting {
    /// Flushes for at most [`FLUSH_AT_EXIT`]: a slow or absent collector
    /// must not hold up the process's exit (the SDK's own shutdown waits
    /// for the export, retries included).
    fn drop(&mut self) {
        let provider = self.provider.clone();
        let (done, flushed) = std::sync::mpsc::channel();
        let flusher = std::thread::Builder::new()
            .name("trace-flush".into())
            .spawn(move || {
                let _ = provider.shutdown();
                let _ = done.send(());
            });
        if flusher.is_ok() {
            let _ = flushed.recv_timeout(FLUSH_AT_EXIT);
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The exporter could not be built from valid settings.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("telemetry: cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("telemetry: traces are already set up in this process")]
    AlreadyStarted,
}

/// Starts export to `settings.otlp_endpoint`. The batch processor and the
/// HTTP client run on a one-thread runtime of their own, so a slow
/// collector never holds up the proxy's or the token runtime's threads.
pub fn start(settings: &TelemetrySettings) -> Result<Exporting, TelemetryError> {
    let runtime = crate::runtime::one_worker()?;
    let provider = {
        let _entered = runtime.enter();
        provider(settings)?
    };
    let tracing = Tracing {
        tracer: provider.tracer("bearer-proxy"),
        propagator: TraceContextPropagator::new(),
        threshold: (settings.sample_ratio * u64::MAX as f64) as u64,
        always: settings.sample_ratio >= 1.0,
    };
    let exporting = Exporting {
        provider,
        runtime: Some(runtime),
    };
    TRACING
        .set(tracing)
        .map_err(|_| TelemetryError::AlreadyStarted)?;
    Ok(exporting)
}

fn provider(settings: &TelemetrySettings) -> Result<SdkTracerProvider, TelemetryError> {
    let endpoint = format!(
        "{}/v1/traces",
        settings.otlp_endpoint.as_str().trim_end_matches('/')
    );
    let headers = settings
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.expose().to_string()))
        .collect();
    // The proxy's TLS stack and system roots, for an https collector.
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::client_config(&[]))
        .timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http)
        .with_endpoint(endpoint)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        .with_headers(headers)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let gate = export::Gate::new(QUEUE_CAPACITY);
    let exporter = export::CountedExporter {
        inner: exporter,
        gate: gate.clone(),
    };
    let batch = BatchConfigBuilder::default()
        // Room above the gate for the processor's flush messages.
        .with_max_queue_size(QUEUE_CAPACITY + 64)
        .with_max_export_batch_size(BATCH_SIZE)
        .with_scheduled_delay(BATCH_DELAY)
        .with_max_export_timeout(EXPORT_TIMEOUT)
        .build();
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .with_batch_config(batch)
        .build();
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(export::GatedProcessor {
            inner: processor,
            gate,
        })
        // Whether a request is recorded is decided before its span is
        // built (RequestTrace::start); what the SDK sees is recorded, and
        // children follow their parent.
        .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            opentelemetry_sdk::trace::Sampler::AlwaysOn,
        )))
        .with_resource(resource)
        .build())
}

/// The trace id of `cx`'s span, when that span is recorded.
fn sampled_trace_id(cx: &Context) -> Option<TraceId> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_sampled().then(|| sc.trace_id())
}
