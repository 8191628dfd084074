//! Oracle Integration's own rules, checked against the configuration (and
//! the token lifetime the identity service granted): each breach would
//! otherwise show up at run time as a 401 or a renewal storm. A finding is
//! one sentence naming the setting and the fix, under a stable `check` id.

use serde::Serialize;

use crate::config::{ClientAuth, ClientConfig, Grant, RouteConfig};

/// Days before a client certificate's expiry that doctor starts warning.
const CERTIFICATE_WARNING_DAYS: i64 = 14;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    /// Stable id: `scope_audience`, `runtime_host`, `file_server_user`,
    /// `refresh_before_lifetime`, `tls_client_auth_endpoint`,
    /// `client_certificate_expiry`.
    pub check: &'static str,
    /// `error` fails doctor (exit 1); `warning` does not.
    pub severity: &'static str,
    pub message: String,
}

fn error(check: &'static str, message: String) -> Finding {
    Finding {
        check,
        severity: "error",
        message,
    }
}

fn warning(check: &'static str, message: String) -> Finding {
    Finding {
        check,
        severity: "warning",
        message,
    }
}

/// An Oracle Integration host (the rules below are Oracle's, not every
/// upstream's).
fn is_oic_host(host: &str) -> bool {
    host.ends_with(".oraclecloud.com") && host.contains(".integration.")
}

/// The route's scopes must name the upstream as their resource server,
/// with `:443` as Oracle writes the primary audience.
pub fn scope_audience(route: &RouteConfig) -> Vec<Finding> {
    let host = &route.upstream.host;
    if !route.upstream.tls || !is_oic_host(host) {
        return Vec::new();
    }
    let expected = format!("https://{host}:443");
    let fix = format!("use scope {expected}urn:opc:resource:consumer::all");
    route
        .scopes
        .iter()
        .filter_map(|scope| {
            if scope.starts_with(&expected) {
                return None;
            }
            let server = crate::scope::resource_server(scope)?;
            let message = if scope.starts_with(&format!("https://{host}")) {
                format!("routes.{}: scope {scope} names the upstream without :443, which Oracle's primary audience has (401 at run time); {fix}", route.name)
            } else {
                format!("routes.{}: scope {scope} is for {server}, not the upstream {host} (its tokens get 401 there); {fix}", route.name)
            };
            Some(error("scope_audience", message))
        })
        .collect()
}

/// Integration endpoints live on the runtime host; the design-time host
/// serves only the developer APIs.
pub fn runtime_host(route: &RouteConfig) -> Option<Finding> {
    let host = &route.upstream.host;
    let integration = ["/ic/api/integration/v1/flows", "/ic/ws/"]
        .iter()
        .any(|p| route.path_prefix.starts_with(p));
    (integration && host.starts_with("design.integration.") && is_oic_host(host)).then(|| {
        error(
            "runtime_host",
            format!("routes.{}: integration endpoints ({}) are served on the instance's runtime host, not the design-time host {host}; point upstream at the runtime host", route.name, route.path_prefix),
        )
    })
}

/// The File Server REST API refuses a token without a user subject.
pub fn file_server_user(route: &RouteConfig) -> Option<Finding> {
    let client = &route.client;
    let user = client.callers.is_some()
        || matches!(
            client.grant,
            Grant::Password { .. } | Grant::JwtBearer { .. }
        );
    (route.path_prefix.starts_with("/ic/api/fileserver") && !user).then(|| {
        error(
            "file_server_user",
            format!("routes.{}: the File Server REST API needs a token with a user subject, and client {} has none (client_credentials); use grant password or jwt_bearer, or on_behalf_of: caller", route.name, client.name),
        )
    })
}

/// `refresh_before` at or above the granted lifetime renews constantly.
pub fn refresh_before_lifetime(client: &ClientConfig, granted_s: u64) -> Option<Finding> {
    let before = client.refresh_before.as_secs();
    (before >= granted_s).then(|| {
        error(
            "refresh_before_lifetime",
            format!("clients.{}.refresh_before: {before} s is not below the {granted_s} s lifetime the identity service grants, so every token is due for renewal at once; set it below {} s", client.name, granted_s / 2),
        )
    })
}

/// `tls_client_auth` goes to the identity domain's secure token endpoint.
pub fn tls_client_auth_endpoint(client: &ClientConfig) -> Option<Finding> {
    let ClientAuth::TlsClientAuth { .. } = client.auth else {
        return None;
    };
    let host = client.token_url.host_str().unwrap_or_default();
    let oracle = host.ends_with(".identity.oraclecloud.com");
    (oracle && !host.split('.').any(|label| label == "secure")).then(|| {
        error(
            "tls_client_auth_endpoint",
            format!("clients.{}.token_url: tls_client_auth must go to the identity domain's secure token endpoint (secure_token_endpoint in https://{host}/.well-known/idcs-configuration, an idcs-….secure.identity.oraclecloud.com host), not {host}", client.name),
        )
    })
}

/// A client certificate that has expired, or soon will.
pub fn client_certificate_expiry(client: &ClientConfig, now_unix: i64) -> Option<Finding> {
    let ClientAuth::TlsClientAuth { identity } = &client.auth else {
        return None;
    };
    let days = (identity.not_after - now_unix).div_euclid(86_400);
    let file = format!("clients.{}.tls_client_cert_file", client.name);
    if identity.not_after <= now_unix {
        return Some(error(
            "client_certificate_expiry",
            format!("{file}: the certificate ({}) has expired; import a new one into the confidential application and replace the certificate and key files", identity.subject),
        ));
    }
    (days < CERTIFICATE_WARNING_DAYS).then(|| {
        warning(
            "client_certificate_expiry",
            format!("{file}: the certificate ({}) expires in {days} days; import its successor into the confidential application, then replace the files", identity.subject),
        )
    })
}

/// Every configuration-only rule for these clients and routes.
pub fn static_findings(
    clients: &[&std::sync::Arc<ClientConfig>],
    routes: &[&RouteConfig],
) -> Vec<Finding> {
    let now = crate::clock::unix_now() as i64;
    let mut findings = Vec::new();
    for client in clients {
        findings.extend(tls_client_auth_endpoint(client));
        findings.extend(client_certificate_expiry(client, now));
    }
    for route in routes {
        findings.extend(scope_audience(route));
        findings.extend(runtime_host(route));
        findings.extend(file_server_user(route));
    }
    findings
}
