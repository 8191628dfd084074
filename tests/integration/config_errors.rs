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
    access: { allow_any: true }
"#;

/// Each (name, yaml, expected) case fails `check` with exit 2 and prints
/// `expected` (a YAML path and reason).
fn assert_config_errors<Y: AsRef<str>, E: AsRef<str>>(cases: &[(&str, Y, E)]) {
    for (name, yaml, expected) in cases {
        let (code, _stdout, stderr) = check(yaml.as_ref(), true);
        assert_eq!(code, 2, "{name}: exit code; stderr:\n{stderr}");
        let expected = expected.as_ref();
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in:\n{stderr}"
        );
    }
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
        ("duplicate match", &format!("{GOOD}  - name: api2\n    match: {{ path_prefix: \"/ic/api/\" }}\n    upstream: \"https://oic.example.com\"\n    client: oic-prod\n    access: {{ allow_any: true }}\n"), true, "routes[1].match: same host and path_prefix as routes[0]"),
        ("unreadable ca_file", &GOOD.replace("    client_id: \"abc\"", "    client_id: \"abc\"\n    ca_file: /nonexistent/ca.pem"), true, "clients.oic-prod.ca_file: cannot read /nonexistent/ca.pem"),
        ("no scope", &GOOD.replace("    scopes: [\"https://oic.example.com:443urn:opc:resource:consumer::all\"]\n", ""), true, "routes[0].scopes: no scope to request"),
        ("not yaml", "clients: [unclosed", true, "<file>: not valid YAML"),
        ("work_stealing not a bool", &GOOD.replace("  listen: [\"127.0.0.1:18080\"]\n", "  listen: [\"127.0.0.1:18080\"]\n  work_stealing: sometimes\n"), true, "server.work_stealing"),
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
    for yaml in [
        GOOD.replace(
            "upstream: \"https://oic.example.com\"",
            "upstream: \"http://svc:hunter2-pw@10.0.0.1\"",
        ),
        GOOD.replace(
            "https://idcs-1.identity",
            "http://svc:hunter2-pw@idcs-1.identity",
        ),
        GOOD.replace(
            "upstream: \"https://oic.example.com\"",
            "upstream: \"ftp://svc:hunter2-pw@h\"",
        ),
    ] {
        let (code, stdout, stderr) = check(&yaml, true);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("***@"), "the URL is still quoted: {stderr}");
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{stderr}"
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

/// Every example in conf/examples/ checks clean, with its key and secret
/// files supplied from the test fixtures.
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
        std::fs::write(dir.path().join("secrets/oic-client-secret"), "s\n").unwrap();
        std::fs::write(
            dir.path().join("api-keys"),
            bearer_proxy::access::api_key_line("erp", "k") + "\n",
        )
        .unwrap();
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
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("warning"),
            "{}",
            src.display()
        );
        count += 1;
    }
    assert!(count >= 6, "one example per flow");
}

#[test]
fn bundled_configs_are_valid() {
    let keys = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keys.path(), bearer_proxy::access::api_key_line("erp", "k")).unwrap();
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

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `GOOD` with the client's settings after `client_id` replaced by `settings`.
fn client_with(settings: &str) -> String {
    GOOD.replace(
        "    client_secret: \"${BP_TEST_SECRET}\"\n",
        &format!("{settings}\n"),
    )
}

#[test]
fn inconsistent_token_flow_settings_are_config_errors_naming_the_path() {
    let key = fixture("client-key.pem");
    let cert = fixture("client-cert.pem");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "jwt_bearer without subject",
            client_with(&format!("    client_secret: x\n    grant: jwt_bearer\n    signing_key: {{ key_file: \"{key}\", kid: k }}")),
            "clients.oic-prod.subject: is required when grant is jwt_bearer",
        ),
        (
            "jwt_bearer without signing_key",
            client_with("    client_secret: x\n    grant: jwt_bearer\n    subject: alice"),
            "clients.oic-prod.signing_key: grant jwt_bearer needs signing_key",
        ),
        (
            "private_key_jwt without signing_key",
            client_with("    client_auth: private_key_jwt"),
            "clients.oic-prod.signing_key: client_auth private_key_jwt needs signing_key",
        ),
        (
            "unreadable key file",
            client_with("    client_auth: private_key_jwt\n    signing_key: { key_file: /nonexistent/k.pem, kid: k }"),
            "clients.oic-prod.signing_key.key_file: cannot read /nonexistent/k.pem",
        ),
        (
            "key file that is not a key",
            client_with(&format!("    client_auth: private_key_jwt\n    signing_key: {{ key_file: \"{cert}\", kid: k }}")),
            "client-cert.pem is not an RSA private key in PEM form",
        ),
        (
            "lifetime over 3600s",
            client_with(&format!("    client_auth: private_key_jwt\n    signing_key: {{ key_file: \"{key}\", kid: k, lifetime: 2h }}")),
            "clients.oic-prod.signing_key.lifetime: 2h is out of range",
        ),
        (
            "neither kid nor cert_file",
            client_with(&format!("    client_auth: private_key_jwt\n    signing_key: {{ key_file: \"{key}\" }}")),
            "clients.oic-prod.signing_key: set kid",
        ),
        (
            "refresh_token with client_credentials",
            client_with("    client_secret: x\n    refresh_token: true"),
            "clients.oic-prod.refresh_token: the client_credentials grant never issues refresh tokens",
        ),
        (
            "password without username",
            client_with("    client_secret: x\n    grant: password\n    password: p"),
            "clients.oic-prod.username: is required when grant is password",
        ),
        (
            "oam without identity_domain_name",
            client_with("    client_secret: x\n    issuer: oam"),
            "clients.oic-prod.identity_domain_name: is required for issuer oam",
        ),
        (
            "oam with client_secret_post",
            client_with("    client_secret: x\n    issuer: oam\n    identity_domain_name: D\n    client_auth: client_secret_post"),
            "clients.oic-prod.client_auth: Oracle Access Manager authenticates clients with client_secret_basic or private_key_jwt",
        ),
        (
            "unknown grant",
            client_with("    client_secret: x\n    grant: implicit"),
            "clients.oic-prod.grant: unknown variant `implicit`",
        ),
        (
            "mixed resource servers",
            GOOD.replace(
                "    scopes: [\"https://oic.example.com:443urn:opc:resource:consumer::all\"]",
                "    scopes: [\"https://oic.example.com:443urn:opc:resource:consumer::all\", \"https://other.example.com:443/ic/api/\"]",
            ),
            "clients.oic-prod.scopes: scopes of different resource servers cannot be requested in one token (Oracle refuses it): \"https://oic.example.com:443urn:opc:resource:consumer::all\" belongs to https://oic.example.com:443, \"https://other.example.com:443/ic/api/\" belongs to https://other.example.com:443",
        ),
        (
            "mixed resource servers in a route override",
            GOOD.replace(
                "    client: oic-prod\n",
                "    client: oic-prod\n    scopes: [\"urn:opc:idm:__myscopes__\", \"https://oic.example.com:443/ic/api/\"]\n",
            ),
            "routes[0].scopes: scopes of different resource servers",
        ),
    ];
    assert_config_errors(&cases);
}

#[test]
fn slash_before_urn_is_a_warning_with_the_fix() {
    let yaml = GOOD.replace(":443urn:opc", ":443/urn:opc");
    let (code, stdout, stderr) = check(&yaml, true);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("warning: clients.oic-prod.scopes: \"https://oic.example.com:443/urn:opc:resource:consumer::all\" has a '/' before \"urn:\"")
            && stdout.contains("did you mean \"https://oic.example.com:443urn:opc:resource:consumer::all\"?"),
        "{stdout}"
    );
}

#[test]
fn offline_access_and_expiry_scopes_mix_with_any_resource_server() {
    let yaml = client_with(
        "    client_secret: x\n    grant: password\n    username: u\n    password: p\n    refresh_token: true",
    )
    .replace(
        "    scopes: [\"https://oic.example.com:443urn:opc:resource:consumer::all\"]",
        "    scopes: [\"https://oic.example.com:443urn:opc:resource:consumer::all\", \"offline_access\", \"urn:opc:resource:expiry=600\"]",
    );
    let (code, stdout, stderr) = check(&yaml, true);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("grant=Password") && stdout.contains("refresh_token=true"),
        "{stdout}"
    );
}

#[test]
fn access_settings_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let bad_keys = dir.path().join("bad-keys");
    std::fs::write(&bad_keys, "erp:not-a-hash\n").unwrap();
    let md5_users = dir.path().join("md5.htpasswd");
    std::fs::write(&md5_users, "erp:$apr1$abc$def\n").unwrap();
    let with = |access: &str| GOOD.replace("    access: { allow_any: true }\n", access);
    let cases: Vec<(&str, String, String)> = vec![
        ("no access block", with(""), "routes[0].access: is required: say who may use this route, e.g. \"access: { api_keys_file: conf/api-keys }\", or \"access: { allow_any: true }\"".into()),
        ("empty access", with("    access: {}\n"), "routes[0].access: lets no one through".into()),
        ("allow_any with more", with("    access: { allow_any: true, allow_cidrs: [\"10.0.0.0/8\"] }\n"), "routes[0].access.allow_any: allow_any: true lets everyone through".into()),
        ("bad cidr", with("    access: { allow_cidrs: [\"10.0.0.0/33\"] }\n"), "routes[0].access.allow_cidrs[0]: \"10.0.0.0/33\" is not an address or CIDR range".into()),
        ("bad key line", with(&format!("    access: {{ api_keys_file: \"{}\" }}\n", bad_keys.display())), "routes[0].access.api_keys_file: line 1: \"erp\" is not 64 hex digits".into()),
        ("weak htpasswd", with(&format!("    access: {{ basic_users_file: \"{}\" }}\n", md5_users.display())), "routes[0].access.basic_users_file: line 1 (user \"erp\"): only bcrypt hashes are accepted".into()),
        ("missing keys file", with("    access: { api_keys_file: /nonexistent/keys }\n"), "routes[0].access.api_keys_file: cannot read /nonexistent/keys".into()),
        ("cert subjects without mTLS", with("    access: { client_cert_subjects: [\"CN=erp\"] }\n"), "routes[0].access.client_cert_subjects: requires a TLS listener that verifies client certificates".into()),
    ];
    assert_config_errors(&cases);
}

#[test]
fn tls_listener_settings_are_checked_at_load() {
    let cert = fixture("client-cert.pem");
    let key = fixture("client-key.pem");
    let with = |tls: &str| GOOD.replace("server:\n", &format!("server:\n  tls_listen:\n{tls}"));
    let cases: Vec<(&str, String, String)> = vec![
        ("missing key", with(&format!("  - {{ address: \"127.0.0.1:8443\", cert_file: \"{cert}\" }}\n")), "server.tls_listen[0].key_file: is required".into()),
        ("unreadable cert", with(&format!("  - {{ address: \"127.0.0.1:8443\", cert_file: /nope.pem, key_file: \"{key}\" }}\n")), "server.tls_listen[0].cert_file: cannot read /nope.pem".into()),
        ("certificate as key", with(&format!("  - {{ address: \"127.0.0.1:8443\", cert_file: \"{cert}\", key_file: \"{cert}\" }}\n")), "server.tls_listen[0].key_file:".into()),
        ("bad address", with(&format!("  - {{ address: \"*:8443\", cert_file: \"{cert}\", key_file: \"{key}\" }}\n")), "server.tls_listen[0].address: \"*:8443\" is not an IP:port address".into()),
    ];
    assert_config_errors(&cases);
    let ok = with(&format!("  - {{ address: \"127.0.0.1:8443\", cert_file: \"{cert}\", key_file: \"{key}\", client_ca_file: \"{cert}\" }}\n"))
        .replace("    access: { allow_any: true }", "    access: { client_cert_subjects: [\"CN=erp\"] }");
    let (code, _stdout, stderr) = check(&ok, true);
    assert_eq!(
        code, 0,
        "an mTLS listener makes client_cert_subjects valid: {stderr}"
    );
}

#[test]
fn endless_or_huge_referenced_files_are_refused_not_read_forever() {
    let yaml = GOOD.replace(
        "    client_secret: \"${BP_TEST_SECRET}\"\n",
        "    client_secret_file: /dev/zero\n",
    );
    let started = std::time::Instant::now();
    let (code, _stdout, stderr) = check(&yaml, true);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "clients.oic-prod.client_secret_file: cannot read /dev/zero: larger than 4 MiB"
        ),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
