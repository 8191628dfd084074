//! `telemetry:` — the OTLP collector traces go to, how many are kept, and
//! the export's extra headers (often a collector's API key).

use super::Validator;
use crate::config::defaults as d;
use crate::config::raw::RawTelemetry;
use crate::config::{Secret, TelemetrySettings};

/// Headers the exporter writes itself: a configured one would be sent twice
/// or break the body's framing.
const EXPORTER_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
];

impl Validator<'_> {
    pub(super) fn telemetry(&mut self, raw: Option<RawTelemetry>) -> Option<TelemetrySettings> {
        let raw = raw?;
        let endpoint = match raw.otlp_endpoint.as_deref() {
            None | Some("") => {
                self.err(
                    "telemetry.otlp_endpoint",
                    "is required (e.g. \"http://otel-collector:4318\"); remove the telemetry section to turn traces off",
                );
                None
            }
            Some(text) => self.otlp_endpoint(text),
        };
        let sample_ratio = raw.sample_ratio.unwrap_or(d::TRACE_SAMPLE_RATIO);
        if !(0.0..=1.0).contains(&sample_ratio) {
            self.err(
                "telemetry.sample_ratio",
                "must be between 0 and 1 (0.01 records one trace in a hundred)",
            );
        }
        let service_name = raw
            .service_name
            .unwrap_or_else(|| d::TRACE_SERVICE_NAME.to_string());
        if service_name.trim().is_empty() || service_name.len() > 255 {
            self.err("telemetry.service_name", "must be 1 to 255 characters");
        }
        let headers = raw
            .headers
            .into_iter()
            .filter_map(|(name, value)| self.export_header(name, value))
            .collect();
        Some(TelemetrySettings {
            otlp_endpoint: endpoint?,
            sample_ratio,
            service_name,
            headers,
        })
    }

    fn otlp_endpoint(&mut self, text: &str) -> Option<url::Url> {
        let path = "telemetry.otlp_endpoint";
        let problem = match url::Url::parse(text) {
            Err(e) => format!("is not a URL: {e}"),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                "must be an http:// or https:// URL (OTLP over HTTP)".into()
            }
            Ok(u) if u.host_str().is_none_or(str::is_empty) => "has no host".into(),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                "must not contain credentials; put them in telemetry.headers".into()
            }
            Ok(u) if u.query().is_some() || u.fragment().is_some() => {
                "must not have a query or fragment; spans go to {otlp_endpoint}/v1/traces".into()
            }
            Ok(u) => return Some(u),
        };
        self.err(path, problem);
        None
    }

    fn export_header(&mut self, name: String, value: String) -> Option<(http::HeaderName, Secret)> {
        let path = format!("telemetry.headers.{name}");
        let Ok(header) = http::HeaderName::from_bytes(name.as_bytes()) else {
            self.err(path, "is not a valid HTTP header name");
            return None;
        };
        if EXPORTER_HEADERS.contains(&header.as_str()) {
            self.err(path, "is set by the exporter itself");
            return None;
        }
        if http::HeaderValue::from_str(&value).is_err() {
            // The value may be a credential: never quoted.
            self.err(path, "value must be visible ASCII (no line breaks)");
            return None;
        }
        Some((header, Secret::new(value)))
    }
}
