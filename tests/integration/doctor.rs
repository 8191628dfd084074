//! `bearer-proxy doctor` against the emulator and the echo upstream: what
//! it shows for a healthy set-up, and how it explains each failure.

use std::process::Output;

use crate::support::*;

/// Runs `doctor` on `config` (written to a temp dir) with `args`.
async fn doctor(config: &ProxyConfig<'_>, args: &[&str]) -> (Output, String) {
    doctor_with_stdin(config, args, "").await
}

/// [`doctor`] with `stdin` piped in (a caller's password).
async fn doctor_with_stdin(
    config: &ProxyConfig<'_>,
    args: &[&str],
    stdin: &str,
) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config.yaml(free_port(), free_port())).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bearer-proxy"));
    cmd.arg("doctor")
        .arg("-c")
        .arg(&path)
        .args(args)
        .env("TEST_CLIENT_SECRET", config.client_secret);
    let (out, text) = run_with_stdin(cmd, stdin).await;
    assert!(
        !text.contains("eyJ"),
        "no token in doctor's output:\n{text}"
    );
    (out, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_client_and_route_pass_with_claims_and_clock_skew() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let config = ProxyConfig::new(&idp, &upstream);
    let (out, text) = doctor(&config, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("ok   client oic"), "{text}");
    assert!(text.contains(&format!("token: sub {CLIENT_ID}")), "{text}");
    assert!(
        text.contains("clock skew against the identity service"),
        "{text}"
    );
    assert!(text.contains("ok   route main"), "{text}");
    assert!(text.contains("the upstream accepted the token"), "{text}");
    assert!(upstream.last_authorization().starts_with("Bearer "));

    let (out, _) = doctor(&config, &["--json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["clients"][0]["scope"], SCOPE);
    assert!(report["clients"][0]["clock_skew_s"].as_f64().unwrap().abs() < 5.0);
    assert_eq!(report["routes"][0]["status"], 200);
    assert!(
        report["routes"][0]["tls"].is_null(),
        "plain http loopback upstream"
    );
    assert_eq!(report["findings"], serde_json::json!([]), "no rule broken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_before_at_the_granted_lifetime_is_a_finding_that_fails() {
    let idp = Idp::start().await;
    idp.state
        .set_token_lifetime(std::time::Duration::from_secs(600));
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.client().refresh_before = Some(std::time::Duration::from_secs(600));
    let (out, text) = doctor(&config, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL [refresh_before_lifetime] clients.oic.refresh_before: 600 s is not below the 600 s lifetime"),
        "{text}"
    );
    let (out, _) = doctor(&config, &["--json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["findings"][0]["check"], "refresh_before_lifetime");
    assert_eq!(report["findings"][0]["severity"], "error");

    config.client().refresh_before = Some(std::time::Duration::from_secs(120));
    let (out, text) = doctor(&config, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_service_refusal_shows_its_error_description_and_ecid() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.client_secret = "wrong-secret";
    let (out, text) = doctor(&config, &["--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let client = &report["clients"][0];
    assert_eq!(client["ok"], false);
    assert_eq!(client["idp_error"], "invalid_client");
    assert!(client["idp_description"].is_string());
    assert!(client["ecid"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(report["routes"][0]["ok"], false, "no token, no probe");
    assert!(!text.contains("wrong-secret"), "no secret in the output");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_is_explained_with_the_role_and_audience_causes_and_the_claims() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    upstream.state.refuse_every_token(true);
    let config = ProxyConfig::new(&idp, &upstream);
    let (out, text) = doctor(&config, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("ok   client oic"),
        "the token itself was fine: {text}"
    );
    assert!(text.contains("FAIL route main"), "{text}");
    assert!(
        text.contains("GET answered 401 · WWW-Authenticate: Bearer error=\"invalid_token\""),
        "{text}"
    );
    for words in [
        "ServiceInvoker",
        "primary audience",
        SCOPE,
        "upstream host: 127.0.0.1",
    ] {
        assert!(text.contains(words), "{words:?} missing:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_fails_and_a_404_passes_for_the_probe_path() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.route().probe_path = Some("/__status/403".into());
    let (out, text) = doctor(&config, &["--route", "main"]).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("forbids this path (403)"), "{text}");
    config.route().probe_path = Some("/__status/404".into());
    let (out, text) = doctor(&config, &["--client", "oic"]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("404 for the probe path"), "{text}");
    let (out, text) = doctor(&config, &["--route", "nope"]).await;
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("unknown route \"nope\""), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verification_certificate_and_failure_are_reported() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (upstream, ca) = Upstream::start_tls(dir.path()).await;
    let url = format!("https://localhost:{}", upstream.addr.port());
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.route().upstream = Some(url);
    config.route().upstream_ca_file = Some(ca);
    let (out, text) = doctor(&config, &["--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tls = &report["routes"][0]["tls"];
    assert_eq!(tls["verified"], true, "{report}");
    assert!(
        tls["not_after"].is_string() && tls["days_left"].as_i64().unwrap() > 0,
        "{report}"
    );

    config.route().upstream_ca_file = None;
    let (out, text) = doctor(&config, &[]).await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("TLS: NOT verified"), "{text}");
    assert!(text.contains("TLS failed"), "{text}");
    assert_eq!(
        upstream.state.request_count(),
        1,
        "no request without verified TLS"
    );
}

/// A route `/` whose client `as-user` acts as each caller with the
/// caller's own Basic credentials.
fn caller_config<'a>(idp: &Idp, upstream: &Upstream) -> ProxyConfig<'a> {
    let mut config = ProxyConfig::new(idp, upstream);
    let client = RawClient {
        grant: GrantKind::Password,
        ..oic_client(idp)
    }
    .for_callers();
    config.raw.clients.insert("as-user".into(), client);
    config.raw.routes.push(
        RawRoute::open("legacy", "/legacy/", &upstream.url(), "as-user")
            .with_access(RawAccess::identity_service_basic()),
    );
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_one_caller_with_a_password_from_stdin_and_never_shows_it() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let config = caller_config(&idp, &upstream);
    let args = ["--client", "as-user", "--caller", USER];
    let (out, text) = doctor_with_stdin(&config, &args, &format!("{USER_PASSWORD}\n")).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ok   client as-user (password grant"),
        "{text}"
    );
    assert!(text.contains(&format!("token: sub {USER}")), "{text}");
    assert!(text.contains("ok   route legacy"), "{text}");
    assert_eq!(idp.state.requests()[0].field("username"), Some(USER));
    assert!(!text.contains(USER_PASSWORD), "{text}");

    let (out, text) = doctor_with_stdin(&config, &args, "wrong-password\n").await;
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(!text.contains("wrong-password"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_without_caller_lists_a_per_caller_client_as_not_probed_and_refuses_misuse() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let config = caller_config(&idp, &upstream);
    let (out, text) = doctor(&config, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(
            "acts on behalf of each caller: check one with doctor --client as-user --caller USER"
        ),
        "{text}"
    );
    assert!(
        text.contains("not probed: client as-user acts on behalf of each caller"),
        "{text}"
    );
    assert_eq!(idp.state.request_count(), 1, "only client oic's token");
    let (out, text) = doctor(&config, &["--client", "oic", "--caller", USER]).await;
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("does not act on behalf of callers"), "{text}");
    let (out, text) = doctor(&config, &["--caller", USER]).await;
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("select one client"), "{text}");
}
