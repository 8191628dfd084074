//! `telemetry:` errors and defaults.

use super::tests::*;
use crate::config::raw::{RawConfig, RawTelemetry};

fn telemetry(change: impl FnOnce(&mut RawTelemetry)) -> RawConfig {
    with(|r| {
        let mut t = RawTelemetry {
            otlp_endpoint: Some("http://otel-collector:4318".into()),
            ..RawTelemetry::default()
        };
        change(&mut t);
        r.telemetry = Some(t);
    })
}

#[test]
fn telemetry_errors() {
    assert_errors(vec![
        (
            "no endpoint",
            telemetry(|t| {
                t.otlp_endpoint = None;
                t.sample_ratio = Some(0.5);
            }),
            "telemetry.otlp_endpoint: is required",
        ),
        (
            "grpc scheme",
            telemetry(|t| t.otlp_endpoint = Some("grpc://c:4317".into())),
            "telemetry.otlp_endpoint: must be an http:// or https:// URL",
        ),
        (
            "credentials in URL",
            telemetry(|t| t.otlp_endpoint = Some("https://u:p@c:4318".into())),
            "telemetry.otlp_endpoint: must not contain credentials",
        ),
        (
            "query",
            telemetry(|t| t.otlp_endpoint = Some("http://c:4318/?x=1".into())),
            "telemetry.otlp_endpoint: must not have a query",
        ),
        (
            "ratio over 1",
            telemetry(|t| t.sample_ratio = Some(1.5)),
            "telemetry.sample_ratio: must be between 0 and 1",
        ),
        (
            "ratio negative",
            telemetry(|t| t.sample_ratio = Some(-0.1)),
            "telemetry.sample_ratio: must be between 0 and 1",
        ),
        (
            "empty service",
            telemetry(|t| t.service_name = Some(" ".into())),
            "telemetry.service_name: must be 1 to 255 characters",
        ),
        (
            "bad header name",
            telemetry(|t| {
                t.headers.insert("bad header".into(), "v".into());
            }),
            "telemetry.headers.bad header: is not a valid HTTP header name",
        ),
        (
            "exporter's header",
            telemetry(|t| {
                t.headers.insert("Content-Type".into(), "v".into());
            }),
            "telemetry.headers.Content-Type: is set by the exporter itself",
        ),
        (
            "line break in value",
            telemetry(|t| {
                t.headers.insert("x-key".into(), "secret\nvalue".into());
            }),
            "telemetry.headers.x-key: value must be visible ASCII",
        ),
    ]);
}

#[test]
fn a_header_value_is_never_quoted_in_an_error() {
    let raw = telemetry(|t| {
        t.headers
            .insert("x-key".into(), "hunter2-collector\r\n".into());
    });
    let errors = load(&raw.to_yaml(), true).unwrap_err();
    assert!(!errors.contains("hunter2"), "{errors}");
}

#[test]
fn telemetry_defaults_and_absence() {
    let config = load(&good().to_yaml(), true).unwrap();
    assert!(config.telemetry.is_none(), "no section: traces off");
    let raw = telemetry(|t| {
        t.headers.insert("x-honeycomb-team".into(), "k-123".into());
    });
    let t = load(&raw.to_yaml(), true).unwrap().telemetry.unwrap();
    assert_eq!(t.sample_ratio, 0.01);
    assert_eq!(t.service_name, "bearer-proxy");
    assert_eq!(t.otlp_endpoint.as_str(), "http://otel-collector:4318/");
    assert_eq!(t.headers[0].0.as_str(), "x-honeycomb-team");
    assert!(
        !format!("{t:?}").contains("k-123"),
        "header values are redacted"
    );
}
