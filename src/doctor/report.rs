//! The human-readable form of a [`Report`].

use std::fmt::Write as _;

use super::{ClientReport, Report, RouteReport};

pub fn human(report: &Report) -> String {
    let mut out = String::new();
    for c in &report.clients {
        client_lines(&mut out, c);
    }
    for r in &report.routes {
        route_lines(&mut out, r);
    }
    for f in &report.findings {
        let mark = if f.severity == "error" {
            "FAIL"
        } else {
            "warn"
        };
        let _ = writeln!(out, "{mark} [{}] {}", f.check, f.message);
    }
    let verdict = if report.ok {
        "every check passed"
    } else {
        "some checks failed"
    };
    let _ = writeln!(out, "{verdict}");
    out
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "ok  "
    } else {
        "FAIL"
    }
}

fn client_lines(out: &mut String, c: &ClientReport) {
    let _ = writeln!(
        out,
        "{} client {} ({} grant, {})",
        mark(c.ok),
        c.client,
        c.grant,
        c.token_url
    );
    if let Some(e) = &c.error {
        let _ = writeln!(out, "       {e}");
    }
    if let Some(note) = &c.note {
        let _ = writeln!(out, "       {note}");
    }
    if c.sub.is_some() || c.scope.is_some() {
        let aud = c
            .aud
            .as_ref()
            .map_or("(none)".to_string(), |a| a.to_string());
        let _ = writeln!(
            out,
            "       token: sub {} · aud {aud} · scope {} · expires in {} s",
            c.sub.as_deref().unwrap_or("(none)"),
            c.scope.as_deref().unwrap_or("(none)"),
            c.expires_in_s.unwrap_or(0)
        );
    }
    if let Some(skew) = c.clock_skew_s {
        let _ = writeln!(
            out,
            "       clock skew against the identity service: {skew:+.1} s"
        );
    }
}

fn route_lines(out: &mut String, r: &RouteReport) {
    let _ = writeln!(
        out,
        "{} route {} → {} (client {})",
        mark(r.ok),
        r.route,
        r.url,
        r.client
    );
    if let Some(tls) = &r.tls {
        let verified = if tls.verified {
            "verified"
        } else {
            "NOT verified"
        };
        let subject = tls
            .subject
            .as_ref()
            .map_or(String::new(), |s| format!(" · subject {s}"));
        let expiry = tls.not_after.as_ref().map_or(String::new(), |n| {
            format!(" · expires {n} ({} days)", tls.days_left.unwrap_or(0))
        });
        let _ = writeln!(out, "       TLS: {verified}{subject}{expiry}");
    }
    if let Some(status) = r.status {
        let challenge = r
            .www_authenticate
            .as_ref()
            .map_or(String::new(), |w| format!(" · WWW-Authenticate: {w}"));
        let _ = writeln!(out, "       GET answered {status}{challenge}");
    }
    let _ = writeln!(out, "       {}", r.verdict);
}
