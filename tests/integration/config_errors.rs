use std::process::Command;

const GOOD: &str = r#"
server:
  listen: ["127.0.0.1:18080"]
clients:
  oic-prod:
    token_url: "https://idcs-1.identity.oraclecloud.com/oauth2/v1/token"
    client_id: "abc"
    client_secret: "${BP_TEST_SECRET}"
    scopes: ["https://oic.example.com:443urn:opc:resource:consumer::all"]
routes:
  - name: api
    match: { path_prefix: "/ic/api/" }
    upstream: "https://oic.example.com"
    client: oic-prod
"#;

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
    let (code, stdout, stderr) = check(GOOD, true);
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
    let cases: &[(&str, &str, bool, &str)] = &[
        ("missing env var", GOOD, false, "clients.oic-prod.client_secret: environment variable BP_TEST_SECRET is not set"),
        ("unknown key", &GOOD.replace("    client_id: \"abc\"", "    client_id: \"abc\"\n    clientsecret: x"), true, "clients.oic-prod"),
        ("unknown top-level key", &format!("{GOOD}extra: 1\n"), true, "unknown field `extra`"),
        ("bad duration", &GOOD.replace("    client_id: \"abc\"", "    client_id: \"abc\"\n    refresh_before: 2 fortnights"), true, "clients.oic-prod.refresh_before"),
        ("unknown client", &GOOD.replace("    client: oic-prod", "    client: oic-prd"), true, "routes[0].client: unknown client \"oic-prd\" (known: oic-prod)"),
        ("bad upstream URL", &GOOD.replace("upstream: \"https://oic.example.com\"", "upstream: \"oic.example.com/ic\""), true, "routes[0].upstream:"),
        ("upstream with path", &GOOD.replace("upstream: \"https://oic.example.com\"", "upstream: \"https://oic.example.com/ic/api\""), true, "routes[0].upstream: \"https://oic.example.com/ic/api\" must not have a path"),
        ("plain http token_url", &GOOD.replace("https://idcs-1", "http://idcs-1"), true, "clients.oic-prod.token_url: \"http://idcs-1.identity.oraclecloud.com/oauth2/v1/token\" must use https"),
        ("bad listen address", &GOOD.replace("127.0.0.1:18080", "localhost"), true, "server.listen[0]: \"localhost\" is not an IP:port address"),
        ("duplicate match", &format!("{GOOD}  - name: api2\n    match: {{ path_prefix: \"/ic/api/\" }}\n    upstream: \"https://oic.example.com\"\n    client: oic-prod\n"), true, "routes[1].match: same host and path_prefix as routes[0]"),
        ("unreadable ca_file", &GOOD.replace("    client_id: \"abc\"", "    client_id: \"abc\"\n    ca_file: /nonexistent/ca.pem"), true, "clients.oic-prod.ca_file: cannot read /nonexistent/ca.pem"),
        ("no scope", &GOOD.replace("    scopes: [\"https://oic.example.com:443urn:opc:resource:consumer::all\"]\n", ""), true, "routes[0].scopes: no scope to request"),
        ("not yaml", "clients: [unclosed", true, "<file>: not valid YAML"),
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
fn every_error_of_a_file_is_reported_at_once() {
    let yaml = GOOD
        .replace("    client: oic-prod", "    client: nope")
        .replace("https://oic.example.com\"", "ftp://oic.example.com\"")
        .replace("127.0.0.1:18080", "bad");
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
    std::fs::write(&path, GOOD.replace("client: oic-prod", "client: x")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
        .args(["run", "-c"])
        .arg(&path)
        .env("BP_TEST_SECRET", "v")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("routes[0].client: unknown client \"x\""));
}

#[test]
fn bundled_configs_are_valid() {
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
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
