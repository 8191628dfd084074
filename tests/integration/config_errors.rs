//! The configuration commands as a user runs them: exit codes and the
//! `path: reason` format on stderr, the bundled and example files. Every
//! individual error case is an in-process table test beside its section
//! (src/config/validate/tests.rs).

use std::process::Command;

use bearer_proxy::config::raw::{
    Audience, ClientAuthMethod, GrantKind, Issuer, RawAccess, RawClient, RawConfig, RawRetry,
    RawRoute, RawServer, RawSigningKey,
};

/// One client whose secret comes from `${BP_TEST_SECRET}`, one route.
fn good() -> RawConfig {
    RawConfig {
        server: RawServer {
            listen: Some(vec!["127.0.0.1:18080".into()]),
            ..RawServer::default()
        },
        ..RawConfig::default()
    }
    .with_client(
        "oic-prod",
        RawClient::with_secret(
            "https://idcs-1.identity.oraclecloud.com/oauth2/v1/token",
            "abc",
            "${BP_TEST_SECRET}",
            "https://oic.example.com:443urn:opc:resource:consumer::all",
        ),
    )
    .with_route(RawRoute::open(
        "api",
        "/ic/api/",
        "https://oic.example.com",
        "oic-prod",
    ))
}

fn with(change: impl FnOnce(&mut RawConfig)) -> String {
    let mut raw = good();
    change(&mut raw);
    raw.to_yaml()
}

fn check(yaml: &str, with_env: bool) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bearer-proxy"));
    cmd.args(["check", "-c"]).arg(&path);
    if with_env {
        cmd.env("BP_TEST_SECRET", "value-from-env");
    } else {
        cmd.env_remove("BP_TEST_SECRET");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn valid_config_checks_ok_and_lists_routes_and_clients() {
    let (code, stdout, stderr) = check(&good().to_yaml(), true);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("oic-prod"));
    assert!(stdout
        .contains("api: host=* path_prefix=/ic/api/ -> https://oic.example.com client=oic-prod"));
    assert!(
        !stdout.contains("value-from-env"),
        "check must not print secrets"
    );
}

#[test]
fn config_errors_name_the_yaml_path_and_exit_2() {
    let cases: &[(&str, String, bool, &str)] = &[
        (
            "missing env var",
            good().to_yaml(),
            false,
            "clients.oic-prod.client_secret: environment variable BP_TEST_SECRET is not set",
        ),
        // About YAML itself, so written as YAML.
        (
            "not yaml",
            "clients: [unclosed".into(),
            true,
            "<file>: not valid YAML",
        ),
        (
            "unknown client",
            with(|r| r.routes[0].client = Some("oic-prd".into())),
            true,
            "routes[0].client: unknown client (known: oic-prod)",
        ),
        (
            "bad listen address",
            with(|r| r.server.listen = Some(vec!["localhost".into()])),
            true,
            "server.listen[0]: is not an IP:port address",
        ),
    ];
    for (name, yaml, with_env, expected) in cases {
        let (code, _stdout, stderr) = check(yaml, *with_env);
        assert_eq!(code, 2, "{name}: exit code; stderr:\n{stderr}");
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn url_errors_never_show_credentials_written_into_the_url() {
    let yaml = with(|r| r.routes[0].upstream = Some("http://svc:hunter2-pw@10.0.0.1".into()));
    let (code, stdout, stderr) = check(&yaml, true);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("routes[0].upstream: must use https"),
        "the path and the reason, not the URL: {stderr}"
    );
    assert!(
        !stderr.contains("hunter2") && !stdout.contains("hunter2"),
        "{stderr}"
    );
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let yaml = with(|r| {
        r.routes[0].client = Some("nope".into());
        r.routes[0].upstream = Some("ftp://oic.example.com".into());
        r.server.listen = Some(vec!["bad".into()]);
    });
    let (code, _, stderr) = check(&yaml, true);
    assert_eq!(code, 2);
    for path in ["server.listen[0]", "routes[0].upstream", "routes[0].client"] {
        assert!(stderr.contains(path), "{path} missing from:\n{stderr}");
    }
    assert!(stderr.contains("(3 problems)"), "{stderr}");
}

#[test]
fn run_with_an_invalid_config_exits_2_without_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, with(|r| r.routes[0].client = Some("x".into()))).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
        .args(["run", "-c"])
        .arg(&path)
        .env("BP_TEST_SECRET", "v")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("routes[0].client: unknown client (known")
    );
}

#[test]
fn every_example_config_is_valid() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&examples).unwrap() {
        let src = entry.unwrap().path();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        std::fs::copy(fixture("client-key.pem"), dir.path().join("keys/proxy.key")).unwrap();
        std::fs::copy(
            fixture("client-cert.pem"),
            dir.path().join("keys/proxy.crt"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        std::fs::copy(
            fixture("client-key.pem"),
            dir.path().join("certs/oic-client.key"),
        )
        .unwrap();
        std::fs::copy(
            fixture("client-cert.pem"),
            dir.path().join("certs/oic-client.crt"),
        )
        .unwrap();
        std::fs::write(dir.path().join("secrets/oic-client-secret"), "s\n").unwrap();
        std::fs::write(
            dir.path().join("api-keys"),
            bearer_proxy::api_key_line("erp", "k") + "\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("caller-subjects"), "erp: erp.user\n").unwrap();
        std::fs::write(
            dir.path().join("users.htpasswd"),
            format!("erp:{}\n", bcrypt::hash("pw", 4).unwrap()),
        )
        .unwrap();
        let path = dir.path().join(src.file_name().unwrap());
        std::fs::copy(&src, &path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bearer-proxy"));
        cmd.args(["check", "-c"]).arg(&path);
        for var in [
            "OIC_CLIENT_ID",
            "OIC_CLIENT_SECRET",
            "OIC_USER_PASSWORD",
            "OAM_CLIENT_ID",
            "OAM_CLIENT_SECRET",
            "OAM_USER_PASSWORD",
        ] {
            cmd.env(var, "value");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("warning"), "{}", src.display());
        if src.ends_with("limits.yaml") {
            // check prints each route's limits, in the order it names them.
            let limits = "    limit per-consumer: rate 20/s burst 40 per caller\n    limit billing: messages 9000/h per all\n    limit oic-prod-sync: concurrency 180 (queue_timeout 2s) per all\n";
            assert!(stdout.contains(limits), "{stdout}");
        }
        count += 1;
    }
    assert!(count >= 8, "one example per flow");
}

#[test]
fn bundled_configs_are_valid() {
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keys.path(), bearer_proxy::api_key_line("erp", "k")).unwrap();
    for file in [
        "conf/demo.yaml",
        "conf/bearer-proxy.yaml",
        "conf/container.yaml",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
            .args(["check", "-c", file])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("OIC_CLIENT_ID", "id")
            .env("OIC_CLIENT_SECRET", "secret")
            .env(
                "OIC_TOKEN_URL",
                "https://idcs-1.identity.oraclecloud.com/oauth2/v1/token",
            )
            .env(
                "OIC_SCOPE",
                "https://oic.example.com:443urn:opc:resource:consumer::all",
            )
            .env("OIC_UPSTREAM", "https://oic.example.com")
            .env("API_KEYS_FILE", keys.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn slash_before_urn_is_a_warning_with_the_fix() {
    let yaml = with(|r| {
        r.clients.get_mut("oic-prod").unwrap().scopes =
            vec!["https://oic.example.com:443/urn:opc:resource:consumer::all".into()]
    });
    let (code, stdout, stderr) = check(&yaml, true);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("warning: clients.oic-prod.scopes: \"https://oic.example.com:443/urn:opc:resource:consumer::all\" has a '/' before \"urn:\"")
            && stdout.contains("did you mean \"https://oic.example.com:443urn:opc:resource:consumer::all\"?"),
        "{stdout}"
    );
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Fuzz seeds that set every key of the file format, so the fuzzer starts
/// from configurations that reach each section's checks.
fn fuzz_seeds() -> Vec<(&'static str, RawConfig)> {
    use std::time::Duration;
    let s = |n| Some(Duration::from_secs(n));
    let mut full = good();
    full.server = RawServer {
        listen: Some(vec!["127.0.0.1:18080".into(), "[::1]:18080".into()]),
        threads: Some(4),
        work_stealing: Some(true),
        upstream_timeout: s(30),
        upstream_connect_timeout: s(5),
        shutdown_grace: s(20),
        startup_token_wait: s(10),
        token_requests_per_second: Some(2.5),
        max_request_header_bytes: Some(16384),
        max_request_headers: Some(64),
        max_replay_body_bytes: Some(65536),
        client_idle_timeout: s(30),
        client_read_timeout: s(10),
        ..RawServer::default()
    };
    full.admin.listen = Some("127.0.0.1:19090".into());
    let client = full.clients.get_mut("oic-prod").unwrap();
    client.refresh_before = s(300);
    client.connect_timeout = s(3);
    client.request_timeout = s(9);
    client.retry = RawRetry {
        initial: s(2),
        max: s(120),
    };
    let mut route = RawRoute::open("erp", "/erp/", "https://oic.example.com:8443", "oic-prod")
        .for_host("*.example.com");
    route.scopes = vec!["urn:opc:idm:__myscopes__".into()];
    route.max_body_bytes = Some(1 << 20);
    route.access = Some(RawAccess {
        allow_cidrs: vec!["10.0.0.0/8".into(), "::1".into()],
        api_keys_file: Some("api-keys".into()),
        api_key_header: Some("x-erp-key".into()),
        ..RawAccess::default()
    });
    full.routes.push(route);
    let mut assertion = good();
    *assertion.clients.get_mut("oic-prod").unwrap() = RawClient {
        issuer: Issuer::Oam,
        identity_domain_name: Some("OAMDomain".into()),
        client_auth: ClientAuthMethod::PrivateKeyJwt,
        grant: GrantKind::JwtBearer,
        subject: Some("alice".into()),
        client_secret: None,
        signing_key: Some(RawSigningKey {
            key_file: Some("keys/proxy.key".into()),
            cert_file: Some("keys/proxy.crt".into()),
            kid: Some("proxy".into()),
            audience: Some(Audience::Many(vec![
                "https://identity.oraclecloud.com/".into()
            ])),
            lifetime: s(120),
        }),
        ..RawClient::with_secret(
            "https://oam.example.com",
            "abc",
            "-",
            "https://oic.example.com:443urn:opc:resource:consumer::all",
        )
    };
    vec![
        ("builder-minimal.yaml", good()),
        ("builder-every-setting.yaml", full),
        ("builder-assertions.yaml", assertion),
    ]
}

/// The corpus files are the builder's output; after changing the file
/// format, rewrite them with `BEARER_PROXY_WRITE_FUZZ_SEEDS=1 cargo test fuzz_seeds`.
#[test]
fn fuzz_seeds_are_the_builders_configurations() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config_load");
    for (name, raw) in fuzz_seeds() {
        let path = corpus.join(name);
        let yaml = raw.to_yaml();
        if std::env::var_os("BEARER_PROXY_WRITE_FUZZ_SEEDS").is_some() {
            std::fs::write(&path, &yaml).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            on_disk, yaml,
            "{name} is stale: rewrite it (see this test's doc)"
        );
    }
}

#[test]
fn the_readmes_minimal_production_configuration_checks_clean() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## A minimal production configuration")
        .nth(1)
        .expect("the README has the section");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a yaml block");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(
        dir.path().join("secrets/admin-token"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("secrets/oic-client-secret"), "s\n").unwrap();
    std::fs::write(
        dir.path().join("api-keys"),
        bearer_proxy::api_key_line("erp", "k") + "\n",
    )
    .unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
        .args(["check", "-c"])
        .arg(&path)
        .env("OIC_CLIENT_ID", "id")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("warning"), "{stdout}");
    assert!(
        stdout.contains("limit oic-sync: concurrency 90"),
        "{stdout}"
    );
}
