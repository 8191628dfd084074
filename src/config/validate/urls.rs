//! URLs in the file: token endpoints and upstreams. No message quotes the
//! URL: messages reach logs and `/status`, and a secret pasted into the
//! wrong key must not.

use std::net::IpAddr;

use super::Validator;
use crate::config::UpstreamTarget;

impl Validator<'_> {
    /// A token endpoint: https, or plain http only on loopback (a local emulator).
    pub(super) fn https_url(&mut self, path: &str, raw: &str) -> Option<url::Url> {
        let raw = &*redact_userinfo(raw);
        let url = match url::Url::parse(raw) {
            Ok(u) => u,
            Err(e) => {
                self.err(path, format!("is not a valid URL: {e}"));
                return None;
            }
        };
        let problem = match url.scheme() {
            "https" => None,
            "http" if is_loopback_host(&url) => None,
            "http" => Some("must use https: credentials are sent to it (plain http is allowed only for loopback addresses)".to_string()),
            _ => Some("unsupported scheme (use https)".to_string()),
        }
        .or_else(|| {
            url.host_str()
                .is_none_or(str::is_empty)
                .then(|| "has no host".to_string())
        })
        .or_else(|| {
            has_credentials(&url).then(|| {
                "must not contain credentials; use client_id and client_secret".to_string()
            })
        });
        match problem {
            Some(message) => {
                self.err(path, message);
                None
            }
            None => Some(url),
        }
    }

    /// `scheme://host[:port]` of a route: where its traffic (and its token) goes.
    pub(super) fn upstream(&mut self, path: &str, raw: &str) -> Option<UpstreamTarget> {
        let raw = &*redact_userinfo(raw);
        match parse_upstream(raw) {
            Ok(target) => Some(target),
            Err(message) => {
                self.err(path, message);
                None
            }
        }
    }
}

fn parse_upstream(raw: &str) -> Result<UpstreamTarget, String> {
    let form = "must be scheme://host[:port], e.g. \"https://oic.example.com\"";
    let url = url::Url::parse(raw).map_err(|e| format!("is not a valid URL ({e}); {form}"))?;
    let tls = match url.scheme() {
        "https" => true,
        "http" if is_loopback_host(&url) => false,
        "http" => return Err("must use https: the proxy sends access tokens to it (plain http is allowed only for loopback addresses)".to_string()),
        _ => return Err(format!("unsupported scheme; {form}")),
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("has no host; {form}"));
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("must not have a path, query or fragment; {form} (request paths are forwarded unchanged)"));
    }
    if has_credentials(&url) {
        return Err(format!("must not contain credentials; {form}"));
    }
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let authority = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    // `host_str` keeps IPv6 brackets; the TLS name and resolver want them off.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(UpstreamTarget {
        tls,
        host,
        port,
        authority,
    })
}

fn has_credentials(url: &url::Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

/// `scheme://user:password@host` → `scheme://***@host`, so a URL can be
/// quoted in an error message (and so in a log) without its credentials.
pub(super) fn redact_userinfo(raw: &str) -> std::borrow::Cow<'_, str> {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.into();
    };
    let authority_end = raw[start..]
        .find(['/', '?', '#'])
        .map_or(raw.len(), |i| start + i);
    match raw[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]).into(),
        None => raw.into(),
    }
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}
