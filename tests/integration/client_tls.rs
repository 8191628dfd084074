//! Secretless clients (`client_auth: tls_client_auth`) against the
//! emulator's secure token endpoint, which takes only the certificate
//! imported for the client; and `token_request_params` on the wire.

use bearer_proxy::emulator::{self, ServerHandle};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::*;

/// An echo upstream over TLS that asks every client for a certificate
/// (and records any it gets).
async fn asking_upstream(ca: &TestCa) -> (std::sync::Arc<emulator::EchoState>, ServerHandle) {
    let (cert, key) = ca.server();
    let acceptor = emulator::mtls::acceptor(
        vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
    )
    .unwrap();
    emulator::start_echo(listener().await, Some(acceptor))
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

/// [`certificate_client`] with two extra form fields.
fn with_params(secure: &ServerHandle) -> RawClient {
    let mut params = serde_yaml::Mapping::new();
    params.insert("resource".into(), "https://oic.test".into());
    params.insert("audience".into(), "oic-runtime".into());
    RawClient {
        token_request_params: params,
        ..certificate_client(secure)
    }
}

struct Setup {
    idp: Idp,
    secure: ServerHandle,
    ca: TestCa,
    upstream: std::sync::Arc<emulator::EchoState>,
    _upstream_server: ServerHandle,
    upstream_url: String,
}

async fn setup() -> Setup {
    let idp = Idp::start().await;
    let ca = TestCa::new();
    let secure = secure_token_endpoint(&idp, &ca).await;
    let (upstream, server) = asking_upstream(&ca).await;
    Setup {
        upstream_url: format!("https://localhost:{}", server.addr.port()),
        idp,
        secure,
        ca,
        upstream,
        _upstream_server: server,
    }
}

fn config<'a>(s: &Setup, plain: &Upstream, files: Vec<(&'a str, String)>) -> ProxyConfig<'a> {
    let mut config = ProxyConfig::new(&s.idp, plain);
    config
        .raw
        .clients
        .insert("oic".into(), with_params(&s.secure));
    config.route().upstream = Some(s.upstream_url.clone());
    config.route().upstream_ca_file = Some("ca.pem".into());
    config.server().startup_token_wait = ms(3000);
    config.files = files;
    config.files.push(("ca.pem", s.ca.pem.clone()));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_by_certificate_with_extra_parameters_and_never_the_certificate_upstream() {
    let s = setup().await;
    let plain = Upstream::start().await;
    let (cert, key) = s.ca.client("oic-integration-client");
    s.idp
        .state
        .register_tls_client_certificate(CLIENT_ID, &cert)
        .unwrap();
    let proxy = Proxy::start(&config(
        &s,
        &plain,
        vec![("client.crt", cert.clone()), ("client.key", key)],
    ))
    .await;

    let r = client().get(proxy.url("/ic/api/x")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", proxy.output());
    let token_request = s.idp.state.requests().last().cloned().unwrap();
    assert_eq!(token_request.status, 200);
    let fields: Vec<(&str, &str)> = token_request
        .form
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("grant_type", "tls_client_auth"),
            ("scope", SCOPE),
            ("client_id", CLIENT_ID),
            ("resource", "https://oic.test"),
            ("audience", "oic-runtime"),
        ],
        "Oracle's form, then the extra parameters in the order given"
    );
    assert_eq!(token_request.authorization, None, "no secret anywhere");
    assert_eq!(
        token_request.peer_certificate.as_deref(),
        Some(der(&cert).as_slice())
    );
    let seen = s.upstream.last().unwrap();
    assert!(seen.header("authorization").unwrap().starts_with("Bearer "));
    assert_eq!(
        seen.peer_certificate, None,
        "the client certificate never goes upstream"
    );

    let status = proxy.status_json().await;
    let c = &status["clients"][0];
    assert_eq!(c["client_auth"], "tls_client_auth");
    assert_eq!(
        c["client_certificate"]["subject"],
        "CN=oic-integration-client"
    );
    assert!(c["client_certificate"]["expires_at"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    let expiry = proxy
        .metric("bearer_proxy_client_certificate_expiry_timestamp_seconds{client=\"oic\"}")
        .await;
    let leaf = der(&cert);
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    assert_eq!(expiry, parsed.validity().not_after.timestamp() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_certificate_is_refused_as_idp_rejected_with_oracles_error() {
    let s = setup().await;
    let plain = Upstream::start().await;
    let (imported, _) = s.ca.client("the-imported-one");
    s.idp
        .state
        .register_tls_client_certificate(CLIENT_ID, &imported)
        .unwrap();
    let (other, other_key) = s.ca.client("someone-else");
    let proxy = Proxy::start(&config(
        &s,
        &plain,
        vec![("client.crt", other), ("client.key", other_key)],
    ))
    .await;

    let r = client().get(proxy.url("/ic/api/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "token_rejected", "{body}");
    let refused = s.idp.state.requests().last().cloned().unwrap();
    assert_eq!(refused.status, 401);
    let status = proxy.status_json().await;
    assert_eq!(status["clients"][0]["last_outcome"], "idp_rejected");
    assert_eq!(status["clients"][0]["last_idp_error"], "invalid_client");
    assert!(
        status["clients"][0]["last_ecid"].is_string(),
        "Oracle's error shape carries an ecid"
    );
    assert!(s.upstream.requests().is_empty());
}

fn run_command(args: &[&str], config: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
        .args(args)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_doctor_work_by_certificate_and_a_renewed_pair_is_used_after_reload() {
    let s = setup().await;
    let plain = Upstream::start().await;
    let (first, first_key) = s.ca.client("oic-client-2026");
    s.idp
        .state
        .register_tls_client_certificate(CLIENT_ID, &first)
        .unwrap();
    let proxy = Proxy::start(&config(
        &s,
        &plain,
        vec![("client.crt", first.clone()), ("client.key", first_key)],
    ))
    .await;
    let path = proxy.config_path();

    let cfg = path.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_command(&["token", "--client", "oic", "--print"], &cfg)
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = s.idp.state.requests().last().cloned().unwrap();
    assert_eq!(
        (last.field("grant_type"), last.status),
        (Some("tls_client_auth"), 200)
    );
    assert_eq!(
        last.peer_certificate.as_deref(),
        Some(der(&first).as_slice())
    );

    let cfg = path.clone();
    let out = tokio::task::spawn_blocking(move || run_command(&["doctor", "--json"], &cfg))
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["clients"][0]["ok"], true);
    assert_eq!(report["routes"][0]["status"], 200);

    // cert-manager renews the pair; the new certificate is imported first.
    let (second, second_key) = s.ca.client("oic-client-2027");
    s.idp
        .state
        .register_tls_client_certificate(CLIENT_ID, &second)
        .unwrap();
    let dir = path.parent().unwrap();
    for (name, content) in [("client.crt", &second), ("client.key", &second_key)] {
        std::fs::write(dir.join("new"), content).unwrap();
        std::fs::rename(dir.join("new"), dir.join(name)).unwrap();
    }
    let (status, answer) = proxy.admin_reload().await;
    assert_eq!(status, 200, "{answer}");
    let r = client()
        .get(proxy.url("/ic/api/after"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let last = s.idp.state.requests().last().cloned().unwrap();
    assert_eq!(last.status, 200);
    assert_eq!(
        last.peer_certificate.as_deref(),
        Some(der(&second).as_slice()),
        "the renewed certificate is presented"
    );
    let status = proxy.status_json().await;
    assert_eq!(
        status["clients"][0]["client_certificate"]["subject"],
        "CN=oic-client-2027"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_clients_token_is_shared_through_the_fleet_cache() {
    let s = setup().await;
    let plain = Upstream::start().await;
    let redis = Redis::start().await;
    let (cert, key) = s.ca.client("oic-fleet-client");
    s.idp
        .state
        .register_tls_client_certificate(CLIENT_ID, &cert)
        .unwrap();
    let key_b64 = cache_key();
    let replica = || {
        config(
            &s,
            &plain,
            vec![("client.crt", cert.clone()), ("client.key", key.clone())],
        )
        .shared(&redis, &key_b64, None)
    };
    let a = Proxy::start(&replica()).await;
    let b = Proxy::start(&replica()).await;
    for proxy in [&a, &b] {
        let r = client().get(proxy.url("/ic/api/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(s.idp.state.request_count(), 1, "one token for the fleet");
    assert_eq!(
        b.metric("bearer_proxy_shared_cache_total{client=\"oic\",result=\"hit\"}")
            .await,
        1.0,
        "the second replica took it from Redis"
    );
}
