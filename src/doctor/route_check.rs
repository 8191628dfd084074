//! One route: the upstream's TLS certificate, then one `GET` of the probe
//! path with the route's token, and what the answer means.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use serde::Serialize;

use crate::config::RouteConfig;
use crate::oauth::token::bearer_claims;

#[derive(Debug, Default, Serialize)]
pub struct TlsReport {
    pub verified: bool,
    pub subject: Option<String>,
    pub not_after: Option<String>,
    pub days_left: Option<i64>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RouteReport {
    pub route: String,
    pub client: String,
    pub url: String,
    pub ok: bool,
    /// `None` for a plain-http (loopback) upstream.
    pub tls: Option<TlsReport>,
    pub status: Option<u16>,
    pub www_authenticate: Option<String>,
    /// What the answer means, in words an operator can act on.
    pub verdict: String,
    /// The token's `aud` and `scope`, beside the upstream host, for a 401.
    pub token_aud: Option<serde_json::Value>,
    pub token_scope: Option<String>,
}

/// A route of an `on_behalf_of: caller` client when no caller was named:
/// nothing to probe with, and nothing wrong.
pub fn not_probed_without_caller(route: &RouteConfig) -> RouteReport {
    let mut report = empty(route);
    report.ok = true;
    report.verdict = format!(
        "not probed: client {} acts on behalf of each caller (doctor --route {} --caller USER probes it as one)",
        route.client.name, route.name
    );
    report
}

fn empty(route: &RouteConfig) -> RouteReport {
    let target = &route.upstream;
    RouteReport {
        route: route.name.clone(),
        client: route.client.name.clone(),
        url: format!("{}{}", target.url(), route.probe_path),
        ok: false,
        tls: None,
        status: None,
        www_authenticate: None,
        verdict: String::new(),
        token_aud: None,
        token_scope: None,
    }
}

pub async fn check(route: &RouteConfig, token: Option<&HeaderValue>) -> RouteReport {
    let target = &route.upstream;
    let mut report = empty(route);
    let Some(token) = token else {
        report.verdict = format!("not probed: no token for client {}", route.client.name);
        return report;
    };
    let addr = match crate::upstream::lookup(&target.host, target.port).await {
        Ok(a) => a,
        Err(e) => {
            report.verdict = format!("cannot resolve {}: {e}", target.host);
            return report;
        }
    };
    if target.tls {
        let tls = tls_probe(route, addr).await;
        let failed = !tls.verified;
        if failed {
            report.verdict = format!(
                "TLS failed: {}",
                tls.error.as_deref().unwrap_or("unverified")
            );
        }
        report.tls = Some(tls);
        if failed {
            return report;
        }
    }
    probe(route, addr, token, &mut report).await;
    report
}

/// One `GET` of the probe path with the token; fills status and verdict.
async fn probe(
    route: &RouteConfig,
    addr: SocketAddr,
    token: &HeaderValue,
    report: &mut RouteReport,
) {
    let target = &route.upstream;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(crate::tls::upstream_client_config(&route.upstream_ca))
        .resolve(&target.host, addr)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(30))
        .build();
    let answer = match client {
        Ok(c) => {
            c.get(&report.url)
                .header(http::header::AUTHORIZATION, token.clone())
                .send()
                .await
        }
        Err(e) => {
            report.verdict = format!("cannot build an HTTP client: {e}");
            return;
        }
    };
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            report.verdict = format!("the upstream could not be reached: {e}");
            return;
        }
    };
    let status = answer.status().as_u16();
    report.status = Some(status);
    report.www_authenticate = answer
        .headers()
        .get(http::header::WWW_AUTHENTICATE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let claims = bearer_claims(token).unwrap_or_default();
    (report.ok, report.verdict) = interpret(status, &target.host, &claims);
    if status == 401 || status == 403 {
        report.token_aud = claims.get("aud").cloned();
        report.token_scope = claims["scope"].as_str().map(str::to_owned);
    }
}

/// Whether the answer is fine, and why.
fn interpret(status: u16, host: &str, claims: &serde_json::Value) -> (bool, String) {
    match status {
        200..=299 => (true, "the upstream accepted the token".into()),
        404 => (true, "the upstream accepted the token (404 for the probe path; set the route's probe_path to one that exists to test it)".into()),
        401 => (false, format!(
            "the upstream refused the token (401). A fresh token refused is not an expiry: check that the \
             confidential application has the ServiceInvoker role on the Oracle Integration instance, and \
             that the scope's audience is the instance's primary audience (its OAuth configuration), which \
             can differ from the host called. Token aud: {}; scope: {}; upstream host: {host}",
            claims.get("aud").map_or("(none)".to_string(), |a| a.to_string()),
            claims["scope"].as_str().unwrap_or("(none)"),
        )),
        403 => (false, "the upstream accepted the token but forbids this path (403): the application's roles do not cover it".into()),
        other => (false, format!("the upstream answered {other}")),
    }
}

/// A TLS handshake with the route's trust and SNI, reporting the
/// certificate the upstream presents.
async fn tls_probe(route: &RouteConfig, addr: SocketAddr) -> TlsReport {
    let mut report = TlsReport::default();
    let config = crate::tls::upstream_client_config(&route.upstream_ca);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = match rustls::pki_types::ServerName::try_from(route.upstream.host.clone()) {
        Ok(n) => n,
        Err(e) => {
            report.error = Some(format!(
                "{} is not a TLS server name: {e}",
                route.upstream.host
            ));
            return report;
        }
    };
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        connector.connect(name, tcp).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Err(_) => report.error = Some("timed out".into()),
        Ok(Err(e)) => report.error = Some(e.to_string()),
        Ok(Ok(stream)) => {
            report.verified = true;
            if let Some(cert) = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
            {
                describe_certificate(cert, &mut report);
            }
        }
    }
    report
}

fn describe_certificate(der: &rustls::pki_types::CertificateDer<'_>, report: &mut TlsReport) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return;
    };
    report.subject = Some(cert.subject().to_string());
    let not_after = cert.validity().not_after.timestamp();
    report.not_after = Some(crate::clock::rfc3339(not_after as f64));
    report.days_left = Some((not_after - crate::clock::unix_now() as i64) / 86_400);
}
