//! Every configuration error, in process: one table per section, each case
//! a typed change to a valid configuration and the `path: reason` it must
//! produce. The binary-level tests (tests/integration/config_errors.rs)
//! keep only the exit code and output format.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::load_str;
use super::urls::redact_userinfo;
use crate::config::raw::{
    ClientAuthMethod, GrantKind, RawAccess, RawClient, RawConfig, RawRoute, RawServer,
    RawSigningKey, RawTlsListener,
};
use crate::config::Config;

pub(super) const SCOPE: &str = "https://oic.example.com:443urn:opc:resource:consumer::all";

pub(super) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The configuration every case starts from: one client, one route.
pub(super) fn good() -> RawConfig {
    let mut client = RawClient::with_secret(
        "https://idcs-1.identity.oraclecloud.com/oauth2/v1/token",
        "abc",
        "${BP_TEST_SECRET}",
        SCOPE,
    );
    client.scopes = vec![SCOPE.into()];
    RawConfig {
        server: RawServer {
            listen: Some(vec!["127.0.0.1:18080".into()]),
            ..RawServer::default()
        },
        ..RawConfig::default()
    }
    .with_client("oic-prod", client)
    .with_route(RawRoute::open(
        "api",
        "/ic/api/",
        "https://oic.example.com",
        "oic-prod",
    ))
}

pub(super) fn load(yaml: &str, with_env: bool) -> Result<Config, String> {
    let env = |name: &str| (with_env && name == "BP_TEST_SECRET").then(|| "v".to_string());
    load_str(yaml, &fixtures(), &env).map_err(|e| e.to_string())
}

/// `good()` changed by `change`.
pub(super) fn with(change: impl FnOnce(&mut RawConfig)) -> RawConfig {
    let mut raw = good();
    change(&mut raw);
    raw
}

pub(super) fn client(change: impl FnOnce(&mut RawClient)) -> RawConfig {
    with(|raw| change(raw.clients.get_mut("oic-prod").unwrap()))
}

pub(super) fn route(change: impl FnOnce(&mut RawRoute)) -> RawConfig {
    with(|raw| change(&mut raw.routes[0]))
}

pub(super) fn access(access: RawAccess) -> RawConfig {
    route(|r| r.access = Some(access))
}

/// Each case fails to load, and its errors contain `expected`.
pub(super) fn assert_errors(cases: Vec<(&str, RawConfig, &str)>) {
    let mut wrong = Vec::new();
    for (name, raw, expected) in cases {
        let errors = load(&raw.to_yaml(), true).expect_err(name);
        if !errors.contains(expected) {
            wrong.push(format!("{name}: expected {expected:?} in:\n{errors}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

pub(super) fn key_file() -> Option<PathBuf> {
    Some(fixtures().join("client-key.pem"))
}

pub(super) fn private_key_jwt(key: RawSigningKey) -> RawConfig {
    client(|c| {
        c.client_secret = None;
        c.client_auth = ClientAuthMethod::PrivateKeyJwt;
        c.signing_key = Some(key);
    })
}

pub(super) fn key(change: impl FnOnce(&mut RawSigningKey)) -> RawSigningKey {
    let mut k = RawSigningKey {
        key_file: key_file(),
        kid: Some("k".into()),
        ..RawSigningKey::default()
    };
    change(&mut k);
    k
}

#[test]
fn the_base_configuration_is_valid() {
    let config = load(&good().to_yaml(), true).unwrap();
    assert_eq!(config.routes[0].client.name, "oic-prod");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn file_level_errors() {
    let missing_env = load(&good().to_yaml(), false).unwrap_err();
    assert!(missing_env.contains(
        "clients.oic-prod.client_secret: environment variable BP_TEST_SECRET is not set"
    ));
    // About YAML itself, so written as YAML.
    for (yaml, expected) in [
        ("clients: [unclosed", "<file>: not valid YAML"),
        ("extra: 1\n", "unknown field `extra`"),
        ("clients:\n  a:\n    clientsecret: x\n", "clients.a"),
        (
            "clients:\n  a:\n    refresh_before: 2 fortnights\n",
            "clients.a.refresh_before",
        ),
        (
            "clients:\n  a:\n    grant: implicit\n",
            "clients.a.grant: unknown variant, expected one of `client_credentials`",
        ),
        (
            "server:\n  work_stealing: sometimes\n",
            "server.work_stealing",
        ),
    ] {
        let errors = load(yaml, true).unwrap_err();
        assert!(errors.contains(expected), "{expected:?} in:\n{errors}");
    }
    assert_errors(vec![(
        "no routes",
        with(|r| r.routes.clear()),
        "routes: at least one route is required",
    )]);
}

#[test]
fn server_errors() {
    let server = |change: fn(&mut RawServer)| with(|r| change(&mut r.server));
    assert_errors(vec![
        (
            "bad listen address",
            server(|s| s.listen = Some(vec!["localhost".into()])),
            "server.listen[0]: is not an IP:port address",
        ),
        (
            "no listen address",
            server(|s| s.listen = Some(vec![])),
            "server.listen: at least one address is required",
        ),
        (
            "zero threads",
            server(|s| s.threads = Some(0)),
            "server.threads: must be between 1 and 256",
        ),
        (
            "no connections",
            server(|s| s.max_connections = Some(0)),
            "server.max_connections: must be between 1 and 1000000",
        ),
        (
            "too many connections",
            server(|s| s.max_connections = Some(1_000_001)),
            "server.max_connections: must be between 1 and 1000000",
        ),
        (
            "zero time-out",
            server(|s| s.upstream_timeout = Some(Duration::ZERO)),
            "server.upstream_timeout: must be greater than zero",
        ),
        (
            "token rate",
            server(|s| s.token_requests_per_second = Some(0.0)),
            "server.token_requests_per_second: must be between 0.1 and 1000",
        ),
        (
            "header bytes",
            server(|s| s.max_request_header_bytes = Some(10)),
            "server.max_request_header_bytes: must be between 1024 and 1048576",
        ),
        (
            "header count",
            server(|s| s.max_request_headers = Some(1000)),
            "server.max_request_headers: must be between 8 and 256",
        ),
        (
            "replay body",
            server(|s| s.max_replay_body_bytes = Some(1 << 30)),
            "server.max_replay_body_bytes: must be at most 67108864",
        ),
        (
            "token rate per minute",
            server(|s| s.token_requests_per_minute = Some(0)),
            "server.token_requests_per_minute: must be between 1 and 60000",
        ),
        (
            "zero 401 cool-down",
            server(|s| s.upstream_401_cooldown = Some(Duration::ZERO)),
            "server.upstream_401_cooldown: must be greater than zero",
        ),
        (
            "idle time-out",
            server(|s| s.client_idle_timeout = Some(Duration::ZERO)),
            "server.client_idle_timeout: must be greater than zero",
        ),
        (
            "admin address",
            with(|r| r.admin.listen = Some("nowhere".into())),
            "admin.listen: is not an IP:port address",
        ),
    ]);
}

#[test]
fn tls_listener_errors() {
    let cert = Some(fixtures().join("client-cert.pem"));
    let tls = |t: RawTlsListener| with(move |r| r.server.tls_listen = vec![t]);
    let listener = |address: &str, cert_file, key_file| RawTlsListener {
        address: Some(address.into()),
        cert_file,
        key_file,
        client_ca_file: None,
    };
    assert_errors(vec![
        (
            "tls: missing key",
            tls(listener("127.0.0.1:8443", cert.clone(), None)),
            "server.tls_listen[0].key_file: is required",
        ),
        (
            "tls: unreadable cert",
            tls(listener(
                "127.0.0.1:8443",
                Some("/nope.pem".into()),
                key_file(),
            )),
            "server.tls_listen[0].cert_file: cannot read the file it names",
        ),
        (
            "tls: certificate as key",
            tls(listener("127.0.0.1:8443", cert.clone(), cert.clone())),
            "server.tls_listen[0].key_file:",
        ),
        (
            "tls: bad address",
            tls(listener("*:8443", cert.clone(), key_file())),
            "server.tls_listen[0].address: is not an IP:port address",
        ),
        (
            "tls: no address",
            tls(RawTlsListener {
                address: None,
                ..listener("", cert, key_file())
            }),
            "server.tls_listen[0].address: is required",
        ),
    ]);
}

#[test]
fn route_errors() {
    assert_errors(vec![
        (
            "unknown client",
            route(|r| r.client = Some("oic-prd".into())),
            "routes[0].client: unknown client (known: oic-prod)",
        ),
        (
            "no client",
            route(|r| r.client = None),
            "routes[0].client: is required (known: oic-prod)",
        ),
        (
            "no name",
            route(|r| r.name = None),
            "routes[0].name: is required",
        ),
        (
            "bad upstream URL",
            route(|r| r.upstream = Some("oic.example.com/ic".into())),
            "routes[0].upstream:",
        ),
        (
            "upstream with path",
            route(|r| r.upstream = Some("https://oic.example.com/ic/api".into())),
            "routes[0].upstream: must not have a path",
        ),
        (
            "plain http upstream",
            route(|r| r.upstream = Some("http://oic.example.com".into())),
            "routes[0].upstream: must use https",
        ),
        (
            "prefix without slash",
            route(|r| r.matcher.path_prefix = Some("ic".into())),
            "routes[0].match.path_prefix: must start with '/'",
        ),
        (
            "host with port",
            route(|r| r.matcher.host = Some("a.example.com:80".into())),
            "routes[0].match.host: must not include a port",
        ),
        (
            "bad wildcard",
            route(|r| r.matcher.host = Some("a.*.com".into())),
            "routes[0].match.host: '*' is only allowed as a leading",
        ),
        (
            "CA for plain upstream",
            route(|r| {
                r.upstream = Some("http://127.0.0.1:9".into());
                r.upstream_ca_file = Some("client-cert.pem".into());
            }),
            "routes[0].upstream_ca_file: only applies to https upstreams",
        ),
        (
            "zero body limit",
            route(|r| r.max_body_bytes = Some(0)),
            "routes[0].max_body_bytes: must be greater than zero",
        ),
    ]);
}

#[test]
fn route_method_and_probe_errors() {
    assert_errors(vec![
        (
            "TRACE allowed",
            route(|r| r.methods = Some(vec!["GET".into(), "TRACE".into()])),
            "routes[0].methods[1]: TRACE is never forwarded",
        ),
        (
            "CONNECT allowed",
            route(|r| r.methods = Some(vec!["CONNECT".into()])),
            "routes[0].methods[0]: CONNECT is never forwarded",
        ),
        (
            "lower-case method",
            route(|r| r.methods = Some(vec!["get".into()])),
            "routes[0].methods[0]: is not an HTTP method",
        ),
        (
            "no methods",
            route(|r| r.methods = Some(vec![])),
            "routes[0].methods: must name at least one method",
        ),
        (
            "relative probe path",
            route(|r| r.probe_path = Some("ic/api".into())),
            "routes[0].probe_path: must start with '/'",
        ),
    ]);
}

#[test]
fn route_scope_and_uniqueness_errors() {
    let second = |r: RawRoute| with(|raw| raw.routes.push(r));
    assert_errors(vec![
        (
            "no scope",
            with(|raw| raw.clients.get_mut("oic-prod").unwrap().scopes.clear()),
            "routes[0].scopes: no scope to request",
        ),
        (
            "mixed resource servers in a route override",
            route(|r| {
                r.scopes = vec![
                    "urn:opc:idm:__myscopes__".into(),
                    "https://oic.example.com:443/ic/api/".into(),
                ]
            }),
            "routes[0].scopes: scopes of different resource servers",
        ),
        (
            "duplicate match",
            second(RawRoute::open(
                "api2",
                "/ic/api/",
                "https://oic.example.com",
                "oic-prod",
            )),
            "routes[1].match: same host and path_prefix as routes[0]",
        ),
        (
            "duplicate name",
            second(RawRoute::open(
                "api",
                "/other/",
                "https://oic.example.com",
                "oic-prod",
            )),
            "routes[1].name: duplicate route name (also routes[0])",
        ),
    ]);
}

#[test]
fn access_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad_keys = dir.path().join("bad-keys");
    std::fs::write(&bad_keys, "erp:not-a-hash\n").unwrap();
    let md5_users = dir.path().join("md5.htpasswd");
    std::fs::write(&md5_users, "erp:$apr1$abc$def\n").unwrap();
    let rules = |change: fn(&mut RawAccess)| {
        let mut a = RawAccess::default();
        change(&mut a);
        access(a)
    };
    let keys = RawAccess::api_keys(bad_keys.to_str().unwrap());
    let users = RawAccess {
        basic_users_file: Some(md5_users),
        ..RawAccess::default()
    };
    assert_errors(vec![
        ("no access block", route(|r| r.access = None), "routes[0].access: is required: say who may use this route, e.g. \"access: { api_keys_file: conf/api-keys }\", or \"access: { allow_any: true }\""),
        ("empty access", rules(|_| {}), "routes[0].access: lets no one through"),
        ("allow_any with more", rules(|a| { a.allow_any = true; a.allow_cidrs = vec!["10.0.0.0/8".into()]; }), "routes[0].access.allow_any: allow_any: true lets everyone through"),
        ("bad cidr", rules(|a| a.allow_cidrs = vec!["10.0.0.0/33".into()]), "routes[0].access.allow_cidrs[0]: is not an address or CIDR range"),
        ("bad key line", access(keys), "routes[0].access.api_keys_file: line 1: the value after the name is not 64 hex digits"),
        ("weak htpasswd", access(users), "routes[0].access.basic_users_file: line 1 (user \"erp\"): only bcrypt hashes are accepted"),
        ("missing keys file", access(RawAccess::api_keys("/nonexistent/keys")), "routes[0].access.api_keys_file: cannot read the file it names"),
        ("key header without keys", rules(|a| { a.allow_cidrs = vec!["10.0.0.0/8".into()]; a.api_key_header = Some("x-key".into()); }), "routes[0].access.api_key_header: only applies with api_keys_file"),
        ("Authorization as key header", rules(|a| { a.api_keys_file = Some("k".into()); a.api_key_header = Some("authorization".into()); }), "routes[0].access.api_key_header: is not usable as the API key header"),
        ("bad subject", rules(|a| a.client_cert_subjects = vec!["erp".into()]), "routes[0].access.client_cert_subjects[0]: is not a subject like \"CN=legacy-erp\""),
        ("cert subjects without mTLS", rules(|a| a.client_cert_subjects = vec!["CN=erp".into()]), "routes[0].access.client_cert_subjects: requires a TLS listener that verifies client certificates"),
    ]);
    let cert = Some(fixtures().join("client-cert.pem"));
    let mtls = with(|raw| {
        raw.server.tls_listen = vec![RawTlsListener {
            address: Some("127.0.0.1:8443".into()),
            cert_file: cert.clone(),
            key_file: key_file(),
            client_ca_file: cert,
        }];
        raw.routes[0].access = Some(RawAccess {
            client_cert_subjects: vec!["CN=erp".into()],
            ..RawAccess::default()
        });
    });
    load(&mtls.to_yaml(), true).expect("an mTLS listener makes client_cert_subjects valid");
}

#[test]
fn url_errors_never_show_credentials_written_into_the_url() {
    for raw in [
        route(|r| r.upstream = Some("http://svc:hunter2-pw@10.0.0.1".into())),
        client(|c| {
            c.token_url = Some("http://svc:hunter2-pw@idcs-1.identity.oraclecloud.com".into())
        }),
        route(|r| r.upstream = Some("ftp://svc:hunter2-pw@h".into())),
        route(|r| r.upstream = Some("https://svc:hunter2-pw@h".into())),
    ] {
        let errors = load(&raw.to_yaml(), true).unwrap_err();
        assert!(!errors.contains("hunter2"), "{errors}");
        assert!(
            !errors.contains("svc"),
            "no part of the URL is quoted: {errors}"
        );
    }
    assert_eq!(
        redact_userinfo("http://u:p%40ss@10.0.0.1:8/x"),
        "http://***@10.0.0.1:8/x"
    );
    assert_eq!(redact_userinfo("https://host/a@b"), "https://host/a@b");
    assert_eq!(redact_userinfo("not a url"), "not a url");
}

#[test]
fn findings_that_are_warnings_not_errors() {
    let slash = client(|c| {
        c.scopes = vec!["https://oic.example.com:443/urn:opc:resource:consumer::all".into()]
    });
    let warnings = load(&slash.to_yaml(), true).unwrap().warnings.join("\n");
    assert!(warnings.contains("clients.oic-prod.scopes: \"https://oic.example.com:443/urn:opc:resource:consumer::all\" has a '/' before \"urn:\"") && warnings.contains(&format!("did you mean {SCOPE:?}?")), "{warnings}");
    let unused = with(|raw| {
        raw.clients.insert(
            "spare".into(),
            RawClient::with_secret("https://idcs.example.com", "i", "s", SCOPE),
        );
    });
    let config = load(&unused.to_yaml(), true).unwrap();
    assert_eq!(config.warnings, ["clients.spare: not used by any route"]);
    assert_eq!(
        config.clients[1].token_url.path(),
        "/oauth2/v1/token",
        "the issuer's default path"
    );
    let refresh = client(|c| {
        c.grant = GrantKind::Password;
        c.username = Some("u".into());
        c.password = Some("p".into());
        c.refresh_token = true;
        c.scopes.extend([
            "offline_access".into(),
            "urn:opc:resource:expiry=600".into(),
        ]);
    });
    let config = load(&refresh.to_yaml(), true)
        .expect("offline_access and expiry mix with any resource server");
    assert!(config.clients[0].refresh_token);
}
