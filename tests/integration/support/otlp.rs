//! A real OTLP/HTTP receiver: takes `POST /v1/traces` with protobuf bodies,
//! decodes them with the official definitions (opentelemetry-proto) and
//! keeps every span and every raw body.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    service_names: Vec<String>,
    bodies: Vec<Vec<u8>>,
}

pub struct Collector {
    pub addr: std::net::SocketAddr,
    received: Arc<Mutex<Received>>,
    notify: Arc<tokio::sync::Notify>,
    _task: tokio::task::JoinHandle<()>,
}

type Shared = (Arc<Mutex<Received>>, Arc<tokio::sync::Notify>);

async fn traces(
    State((received, notify)): State<Shared>,
    body: Bytes,
) -> (http::StatusCode, Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return (http::StatusCode::BAD_REQUEST, Vec::new());
    };
    {
        let mut r = received.lock().unwrap();
        r.bodies.push(body.to_vec());
        for rs in request.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|res| &res.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.clone());
            if let Some(Value::StringValue(name)) = service {
                r.service_names.push(name);
            }
            for ss in rs.scope_spans {
                r.spans.extend(ss.spans);
            }
        }
    }
    notify.notify_waiters();
    (
        http::StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
}

impl Collector {
    pub async fn start() -> Collector {
        let listener = super::listener().await;
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let notify = Arc::new(tokio::sync::Notify::new());
        let app = axum::Router::new()
            .route("/v1/traces", post(traces))
            .with_state((received.clone(), notify.clone()));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Collector {
            addr,
            received,
            notify,
            _task: task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits (on each export's arrival) until `done` holds for the spans
    /// received; returns them.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.notify.notified();
            {
                let r = self.received.lock().unwrap();
                if done(&r.spans) {
                    return r.spans.clone();
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let r = self.received.lock().unwrap();
                let names: Vec<&str> = r.spans.iter().map(|s| s.name.as_str()).collect();
                panic!("the collector did not get the expected spans in time; got {names:?}");
            }
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap().spans.clone()
    }

    /// Every body received, as sent.
    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().bodies.clone()
    }

    pub fn service_names(&self) -> Vec<String> {
        self.received.lock().unwrap().service_names.clone()
    }
}

/// A span attribute's value as text (strings as they are, numbers in
/// decimal); `None` when absent.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?;
    Some(match value.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}
