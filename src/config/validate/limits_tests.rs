//! `limits:` and the routes' `limits:` references: every load-time refusal,
//! with its YAML path, and what a valid section becomes.

use std::time::Duration;

use super::tests::{access, assert_errors, load, with};
use crate::config::raw::{LimitPer, RawAccess, RawConfig, RawLimit};
use crate::config::LimitKind;
use LimitPer as Per;

fn concurrency(n: u32) -> RawLimit {
    RawLimit {
        concurrency: Some(n),
        ..RawLimit::default()
    }
}

fn rate(text: &str) -> RawLimit {
    RawLimit {
        rate: Some(text.into()),
        ..RawLimit::default()
    }
}

fn messages(text: &str) -> RawLimit {
    RawLimit {
        messages: Some(text.into()),
        ..RawLimit::default()
    }
}

/// `good()` with one limit `l` and the route naming `names`.
fn limited(limit: RawLimit, names: &[&str]) -> RawConfig {
    with(|raw| {
        raw.limits.insert("l".into(), limit);
        raw.routes[0].limits = names.iter().map(|n| n.to_string()).collect();
    })
}

#[test]
fn a_valid_limits_section_is_typed_with_its_defaults() {
    let raw = with(|raw| {
        raw.limits.insert("sync".into(), concurrency(200));
        raw.limits.insert(
            "consumer".into(),
            RawLimit {
                burst: Some(40),
                per: Some(LimitPer::ClientIp),
                ..rate("20/s")
            },
        );
        raw.limits.insert("billing".into(), messages("5000/h"));
        raw.routes[0].limits = vec!["sync".into(), "consumer".into(), "billing".into()];
    });
    let config = load(&raw.to_yaml(), true).unwrap();
    let kinds: Vec<(String, LimitKind, Per)> = config.routes[0]
        .limits
        .iter()
        .map(|l| (l.name.clone(), l.kind, l.per))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                "sync".into(),
                LimitKind::Concurrency {
                    max: 200,
                    queue_timeout: Duration::from_secs(2)
                },
                Per::All
            ),
            (
                "consumer".into(),
                LimitKind::Rate {
                    count: 20,
                    window_secs: 1,
                    burst: 40
                },
                Per::ClientIp
            ),
            (
                "billing".into(),
                LimitKind::Messages {
                    count: 5000,
                    window_secs: 3600
                },
                Per::All
            ),
        ]
    );
    assert_eq!(config.limits.len(), 3);
    let default_burst = limited(rate("7/min"), &["l"]);
    let config = load(&default_burst.to_yaml(), true).unwrap();
    assert!(matches!(
        config.routes[0].limits[0].kind,
        LimitKind::Rate {
            burst: 7,
            window_secs: 60,
            ..
        }
    ));
}

#[test]
fn limit_errors() {
    let two_kinds = RawLimit {
        rate: Some("1/s".into()),
        ..concurrency(3)
    };
    let per_caller = RawLimit {
        per: Some(LimitPer::Caller),
        ..rate("1/s")
    };
    let mut open_caller = limited(per_caller.clone(), &["l"]);
    open_caller.routes[0].access = Some(RawAccess::allow_any());
    let cidrs_only = with(|raw| {
        raw.limits.insert("l".into(), per_caller.clone());
        raw.routes[0].limits = vec!["l".into()];
        raw.routes[0].access = Some(RawAccess {
            allow_cidrs: vec!["10.0.0.0/8".into()],
            ..RawAccess::default()
        });
    });
    assert_errors(vec![
        ("unknown name", limited(concurrency(1), &["nope"]), "routes[0].limits[0]: unknown limit (limits: l)"),
        ("named twice", limited(concurrency(1), &["l", "l"]), "routes[0].limits[1]: limit \"l\" is named twice"),
        ("two kinds", limited(two_kinds, &["l"]), "limits.l: has more than one of concurrency, rate and messages"),
        ("no kind", limited(RawLimit { per: Some(LimitPer::All), ..RawLimit::default() }, &["l"]), "limits.l: needs one of concurrency, rate or messages"),
        ("zero concurrency", limited(concurrency(0), &["l"]), "limits.l.concurrency: must be greater than zero"),
        ("zero rate", limited(rate("0/s"), &["l"]), "limits.l.rate: N must be greater than zero"),
        ("bad rate unit", limited(rate("5/sec"), &["l"]), "limits.l.rate: must be N/s, N/min or N/h"),
        ("no unit", limited(rate("5"), &["l"]), "limits.l.rate: must be N/s, N/min or N/h"),
        ("fraction", limited(rate("1.5/s"), &["l"]), "limits.l.rate: must be N/s"),
        ("rate per day", limited(rate("5/d"), &["l"]), "limits.l.rate: must be N/s"),
        ("messages per second", limited(messages("5/s"), &["l"]), "limits.l.messages: must be N/h or N/d"),
        ("zero messages", limited(messages("0/h"), &["l"]), "limits.l.messages: N must be greater than zero"),
        ("zero burst", limited(RawLimit { burst: Some(0), ..rate("1/s") }, &["l"]), "limits.l.burst: must be greater than zero"),
        ("burst on concurrency", limited(RawLimit { burst: Some(3), ..concurrency(1) }, &["l"]), "limits.l.burst: only applies to rate"),
        ("queue on rate", limited(RawLimit { queue_timeout: Some(Duration::from_secs(1)), ..rate("1/s") }, &["l"]), "limits.l.queue_timeout: only applies to concurrency"),
        ("queue too long", limited(RawLimit { queue_timeout: Some(Duration::from_secs(3600)), ..concurrency(1) }, &["l"]), "limits.l.queue_timeout: must be at most 5m"),
        ("per caller on an open route", open_caller, "routes[0].limits[0]: limit \"l\" counts per caller, but this route's access names no caller"),
        ("per caller on addresses alone", cidrs_only, "routes[0].limits[0]: limit \"l\" counts per caller"),
        ("bad name", with(|raw| { raw.limits.insert("a b".into(), concurrency(1)); }), "limits.a b: limit names may use only letters"),
    ]);
}

#[test]
fn unknown_keys_in_a_limit_are_refused_with_their_path() {
    let yaml = with(|raw| {
        raw.limits.insert("l".into(), concurrency(1));
    })
    .to_yaml()
    .replace("concurrency: 1", "concurrency: 1\n    queue_timout: 1s");
    let errors = load(&yaml, true).unwrap_err();
    assert!(errors.contains("limits.l"), "{errors}");
    assert!(errors.contains("unknown field `queue_timout`"), "{errors}");
}

#[test]
fn malformed_values_are_never_quoted_back() {
    let secret = "s3cr3t-9f8e7d6c5b4a";
    for limit in [rate(secret), messages(&format!("{secret}/h"))] {
        let errors = load(&limited(limit, &["l"]).to_yaml(), true).unwrap_err();
        assert!(!errors.contains(secret), "{errors}");
    }
}

#[test]
fn per_caller_limits_are_accepted_where_access_names_callers() {
    let mut raw = limited(
        RawLimit {
            per: Some(LimitPer::Caller),
            ..rate("1/s")
        },
        &["l"],
    );
    raw.routes[0].access = access(RawAccess::identity_service_basic()).routes[0]
        .access
        .clone();
    raw.clients.get_mut("oic-prod").unwrap().on_behalf_of = None;
    let errors = load(&raw.to_yaml(), true).err().unwrap_or_default();
    assert!(!errors.contains("limits[0]"), "{errors}");
}
