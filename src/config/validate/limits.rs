//! `limits:` — named concurrency ceilings, rate limits and message quotas,
//! and the routes' references to them.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{valid_name, Validator};
use crate::access::AccessPolicy;
use crate::config::defaults as d;
use crate::config::raw::RawLimit;
use crate::config::{LimitConfig, LimitKind, LimitPer};

/// The limits that validated, and the names of those that did not (whose
/// errors are already reported under `limits.<name>`).
#[derive(Default)]
pub(super) struct Limits {
    pub valid: BTreeMap<String, Arc<LimitConfig>>,
    invalid: Vec<String>,
}

const RATE_UNITS: &[(&str, u64)] = &[("s", 1), ("min", 60), ("h", 3600)];
const MESSAGE_UNITS: &[(&str, u64)] = &[("h", 3600), ("d", 86_400)];

impl Validator<'_> {
    pub(super) fn traffic_limits(&mut self, raw: BTreeMap<String, RawLimit>) -> Limits {
        let mut out = Limits::default();
        for (name, raw) in raw {
            match self.section(|v| v.limit(&name, raw)) {
                Some(limit) => {
                    out.valid.insert(name, Arc::new(limit));
                }
                None => out.invalid.push(name),
            }
        }
        out
    }

    fn limit(&mut self, name: &str, raw: RawLimit) -> Option<LimitConfig> {
        let p = format!("limits.{name}");
        if !valid_name(name) {
            self.err(
                &p,
                "limit names may use only letters, digits, '-', '_' and '.'",
            );
        }
        let kinds = [
            raw.concurrency.is_some(),
            raw.rate.is_some(),
            raw.messages.is_some(),
        ];
        let kind = match kinds.iter().filter(|k| **k).count() {
            1 => self.limit_kind(&p, &raw),
            0 => {
                self.err(&p, "needs one of concurrency, rate or messages");
                None
            }
            _ => {
                self.err(
                    &p,
                    "has more than one of concurrency, rate and messages: define one limit for each",
                );
                None
            }
        };
        Some(LimitConfig {
            name: name.to_string(),
            kind: kind?,
            per: raw.per.unwrap_or_default(),
        })
    }

    /// The kind's own settings; those of the other kinds are refused.
    fn limit_kind(&mut self, p: &str, raw: &RawLimit) -> Option<LimitKind> {
        if raw.concurrency.is_none() && raw.queue_timeout.is_some() {
            self.err(format!("{p}.queue_timeout"), "only applies to concurrency");
        }
        if raw.rate.is_none() && raw.burst.is_some() {
            self.err(format!("{p}.burst"), "only applies to rate");
        }
        if let Some(max) = raw.concurrency {
            return self.concurrency(p, max, raw);
        }
        if let Some(rate) = &raw.rate {
            let (count, window_secs) =
                self.per_unit(&format!("{p}.rate"), rate, RATE_UNITS, "N/s, N/min or N/h")?;
            let count = u32::try_from(count).ok().or_else(|| {
                self.err(format!("{p}.rate"), "N must be at most 4294967295");
                None
            })?;
            let burst = raw.burst.unwrap_or(count);
            if burst == 0 {
                self.err(format!("{p}.burst"), "must be greater than zero");
                return None;
            }
            return Some(LimitKind::Rate {
                count,
                window_secs,
                burst,
            });
        }
        let messages = raw.messages.as_deref()?;
        let (count, window_secs) = self.per_unit(
            &format!("{p}.messages"),
            messages,
            MESSAGE_UNITS,
            "N/h or N/d",
        )?;
        Some(LimitKind::Messages { count, window_secs })
    }

    fn concurrency(&mut self, p: &str, max: u32, raw: &RawLimit) -> Option<LimitKind> {
        if max == 0 {
            self.err(format!("{p}.concurrency"), "must be greater than zero");
        }
        let queue_timeout = raw.queue_timeout.unwrap_or(d::LIMIT_QUEUE_TIMEOUT);
        if queue_timeout > d::LIMIT_QUEUE_TIMEOUT_MAX {
            self.err(
                format!("{p}.queue_timeout"),
                format!(
                    "must be at most {}",
                    humantime::format_duration(d::LIMIT_QUEUE_TIMEOUT_MAX)
                ),
            );
        }
        (max > 0 && queue_timeout <= d::LIMIT_QUEUE_TIMEOUT_MAX)
            .then_some(LimitKind::Concurrency { max, queue_timeout })
    }

    /// `N/unit` with N > 0: (N, the unit in seconds). The value itself is
    /// never quoted back: a secret pasted into the wrong key must not be
    /// printed.
    fn per_unit(
        &mut self,
        path: &str,
        text: &str,
        units: &[(&str, u64)],
        form: &str,
    ) -> Option<(u64, u64)> {
        match parse_per_unit(text, units) {
            Some((0, _)) => {
                self.err(path, "N must be greater than zero");
                None
            }
            Some(parsed) => Some(parsed),
            None => {
                self.err(path, format!("must be {form}, with N a whole number"));
                None
            }
        }
    }

    /// A route's `limits:` names, each of a known limit; `per: caller`
    /// only where the route's access rules name every caller.
    pub(super) fn route_limits(
        &mut self,
        p: &str,
        names: &[String],
        limits: &Limits,
        access: Option<&AccessPolicy>,
    ) -> Vec<Arc<LimitConfig>> {
        let mut out: Vec<Arc<LimitConfig>> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let path = format!("{p}.limits[{i}]");
            let Some(limit) = limits.valid.get(name) else {
                if !limits.invalid.contains(name) {
                    let known: Vec<&str> = limits.valid.keys().map(String::as_str).collect();
                    self.err(
                        path,
                        format!("unknown limit (limits: {})", known.join(", ")),
                    );
                }
                continue;
            };
            if out.iter().any(|l| &l.name == name) {
                self.err(path, format!("limit {name:?} is named twice"));
                continue;
            }
            if limit.per == LimitPer::Caller && access.is_some_and(|a| !a.names_callers()) {
                self.err(
                    path,
                    format!("limit {name:?} counts per caller, but this route's access names no caller (allow_any or allow_cidrs alone): use per: client_ip or all"),
                );
            }
            out.push(limit.clone());
        }
        out
    }
}

/// `N/unit` → (N, seconds of the unit).
fn parse_per_unit(text: &str, units: &[(&str, u64)]) -> Option<(u64, u64)> {
    let (n, unit) = text.trim().split_once('/')?;
    let n = n.trim();
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds = units
        .iter()
        .find(|(u, _)| *u == unit.trim())
        .map(|(_, s)| *s)?;
    Some((n.parse().ok()?, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_unit_reads_each_unit_and_refuses_the_rest() {
        assert_eq!(parse_per_unit("20/s", RATE_UNITS), Some((20, 1)));
        assert_eq!(parse_per_unit("600/min", RATE_UNITS), Some((600, 60)));
        assert_eq!(parse_per_unit(" 5 / h ", RATE_UNITS), Some((5, 3600)));
        assert_eq!(
            parse_per_unit("5000/d", MESSAGE_UNITS),
            Some((5000, 86_400))
        );
        for bad in [
            "20", "/s", "x/s", "-1/s", "1.5/s", "20/sec", "20/d", "20/s/s",
        ] {
            assert_eq!(parse_per_unit(bad, RATE_UNITS), None, "{bad}");
        }
        assert_eq!(parse_per_unit("5/s", MESSAGE_UNITS), None);
        assert_eq!(
            parse_per_unit("99999999999999999999999/h", MESSAGE_UNITS),
            None
        );
    }
}
