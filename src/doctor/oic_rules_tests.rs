//! Each of Oracle Integration's rules, passing and failing.

use std::path::Path;

use super::oic_rules::*;
use crate::config::Config;

const RUNTIME: &str = "oic1-tenancy.integration.us-ashburn-1.ocp.oraclecloud.com";
const DESIGN: &str = "design.integration.us-ashburn-1.ocp.oraclecloud.com";

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// One client `c` (`client` YAML lines) and one route `r` to `upstream`
/// under `prefix`.
fn config(client: &str, upstream: &str, prefix: &str) -> Config {
    config_at("idcs-1.identity.oraclecloud.com", client, upstream, prefix)
}

fn config_at(idp: &str, client: &str, upstream: &str, prefix: &str) -> Config {
    let yaml = format!(
        "clients:\n  c:\n    token_url: https://{idp}\n    client_id: id\n{client}\nroutes:\n  - name: r\n    match: {{ path_prefix: \"{prefix}\" }}\n    upstream: https://{upstream}\n    client: c\n    access: {{ allow_any: true }}\n"
    );
    crate::config::load_str(&yaml, &fixtures(), &|_| None).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn secret_client(scope_host: &str) -> String {
    format!("    client_secret: s\n    scopes: [\"https://{scope_host}urn:opc:resource:consumer::all\"]")
}

#[test]
fn scope_audience_needs_the_upstream_with_443() {
    let good = config(&secret_client(&format!("{RUNTIME}:443")), RUNTIME, "/ic/");
    assert_eq!(scope_audience(&good.routes[0]), vec![]);
    let other = config(
        &secret_client("other.integration.x.ocp.oraclecloud.com:443"),
        RUNTIME,
        "/ic/",
    );
    let f = scope_audience(&other.routes[0]);
    assert_eq!(f[0].check, "scope_audience");
    assert!(
        f[0].message.contains("not the upstream"),
        "{}",
        f[0].message
    );
    let no_port = config(&secret_client(RUNTIME), RUNTIME, "/ic/");
    let f = scope_audience(&no_port.routes[0]);
    assert!(f[0].message.contains("without :443"), "{}", f[0].message);
    // Not an Oracle Integration host: not Oracle's rule to apply.
    let elsewhere = config(
        &secret_client("api.example.com:443"),
        "gateway.example.org",
        "/ic/",
    );
    assert_eq!(scope_audience(&elsewhere.routes[0]), vec![]);
}

#[test]
fn integration_endpoints_need_the_runtime_host() {
    let scope = secret_client(&format!("{DESIGN}:443"));
    let design = config(&scope, DESIGN, "/ic/api/integration/v1/flows/rest/");
    assert_eq!(
        runtime_host(&design.routes[0]).unwrap().check,
        "runtime_host"
    );
    let developer_api = config(&scope, DESIGN, "/ic/api/integration/v1/integrations");
    assert_eq!(runtime_host(&developer_api.routes[0]), None);
    let runtime = config(
        &secret_client(&format!("{RUNTIME}:443")),
        RUNTIME,
        "/ic/ws/",
    );
    assert_eq!(runtime_host(&runtime.routes[0]), None);
}

#[test]
fn the_file_server_needs_a_user_subject() {
    let scope = secret_client(&format!("{RUNTIME}:443"));
    let app_only = config(&scope, RUNTIME, "/ic/api/fileserver/v1/");
    let f = file_server_user(&app_only.routes[0]).unwrap();
    assert_eq!(f.check, "file_server_user");
    assert!(f.message.contains("grant password or jwt_bearer"));
    let user = format!("{scope}\n    grant: password\n    username: u\n    password: p");
    let as_user = config(&user, RUNTIME, "/ic/api/fileserver/v1/");
    assert_eq!(file_server_user(&as_user.routes[0]), None);
    assert_eq!(
        file_server_user(&config(&scope, RUNTIME, "/ic/api/").routes[0]),
        None
    );
}

#[test]
fn refresh_before_must_be_below_the_granted_lifetime() {
    let c = config(
        &format!(
            "{}\n    refresh_before: 10m",
            secret_client(&format!("{RUNTIME}:443"))
        ),
        RUNTIME,
        "/ic/",
    );
    let f = refresh_before_lifetime(&c.clients[0], 600).unwrap();
    assert_eq!(f.check, "refresh_before_lifetime");
    assert!(
        f.message.starts_with("clients.c.refresh_before: 600 s"),
        "{}",
        f.message
    );
    assert_eq!(refresh_before_lifetime(&c.clients[0], 3600), None);
}

fn certificate_client() -> String {
    format!(
        "    client_auth: tls_client_auth\n    tls_client_cert_file: client-cert.pem\n    tls_client_key_file: client-key.pem\n    scopes: [\"https://{RUNTIME}:443urn:opc:resource:consumer::all\"]"
    )
}

#[test]
fn tls_client_auth_needs_the_secure_endpoint() {
    let plain = config(&certificate_client(), RUNTIME, "/ic/");
    assert_eq!(
        tls_client_auth_endpoint(&plain.clients[0]).unwrap().check,
        "tls_client_auth_endpoint"
    );
    let secure = config_at(
        "idcs-1.secure.identity.oraclecloud.com",
        &certificate_client(),
        RUNTIME,
        "/ic/",
    );
    assert_eq!(tls_client_auth_endpoint(&secure.clients[0]), None);
}

#[test]
fn client_certificates_near_expiry_warn_and_expired_ones_fail() {
    let c = config(&certificate_client(), RUNTIME, "/ic/");
    let crate::config::ClientAuth::TlsClientAuth { identity } = &c.clients[0].auth else {
        panic!("a certificate client");
    };
    let end = identity.not_after;
    assert_eq!(
        client_certificate_expiry(&c.clients[0], end - 30 * 86_400),
        None
    );
    let soon = client_certificate_expiry(&c.clients[0], end - 5 * 86_400).unwrap();
    assert_eq!(
        (soon.check, soon.severity),
        ("client_certificate_expiry", "warning")
    );
    let gone = client_certificate_expiry(&c.clients[0], end + 1).unwrap();
    assert_eq!(gone.severity, "error");
}
