//! Test harness: the emulator and echo upstream run in the test process on
//! ephemeral ports; the proxy runs as the real binary, owned by the test
//! and killed when it is dropped.

#![allow(dead_code)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use bearer_proxy::config::raw::{
    Audience, BasicEncoding, CacheBackend, ClientAuthMethod, GrantKind, Issuer, LimitPer,
    RawAccess, RawCache, RawClient, RawConfig, RawLimit, RawRedis, RawRetry, RawRoute, RawServer,
    RawSigningKey, RawTelemetry, RawTlsListener,
};
use bearer_proxy::emulator::{self, EchoState, IdpState, ServerHandle};
use rustls::pki_types::pem::PemObject as _;
use tokio::net::TcpListener;

mod otlp;
pub use otlp::{attr, Collector};

pub const CLIENT_ID: &str = "test-client";
pub const CLIENT_SECRET: &str = "s3cr3t-Value-that-must-not-leak";
pub const SCOPE: &str = "https://oic.test:443urn:opc:resource:consumer::all";
/// The certificate alias of `tests/fixtures/client-cert.pem` on the test client.
pub const KEY_ALIAS: &str = "test-key";
pub const USER: &str = "alice";
pub const USER_PASSWORD: &str = "alice-Password-1";
pub const OAM_DOMAIN: &str = "OAMDomain";

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A port nobody listens on right now, for a child process to bind.
///
/// Chosen below the kernel's ephemeral range and never twice in this
/// process: a port the kernel picked for `bind(…:0)` could be handed to
/// another socket (a listener on port 0, an outgoing connection) before
/// the child binds it, and pingora then retries its bind while the test
/// talks to whoever holds the port. Kernel-chosen ports stay for the
/// listeners the test process binds and keeps (`listener()`).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static RANGE: OnceLock<(u16, u16)> = OnceLock::new();
    let (low, high) = *RANGE.get_or_init(below_ephemeral_range);
    let span = u32::from(high - low);
    // Another test process starts elsewhere in the span.
    let start = std::process::id().wrapping_mul(7919);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < span, "free_port: {span} ports used");
        let port = low + ((start.wrapping_add(n)) % span) as u16;
        if StdListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Whether something listens on each of `ports` (127.0.0.1 or any
/// address), read from the kernel's socket table: no connection is made,
/// so none takes a place under the proxy's connection ceiling or shows in
/// its metrics.
fn listening(ports: &[u16]) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    ports.iter().all(|p| listens_on(&table, *p))
}

/// Whether `/proc/net/tcp` (`table`) has a socket listening on
/// 127.0.0.1:`port` or 0.0.0.0:`port`.
fn listens_on(table: &str, port: u16) -> bool {
    const LISTEN: &str = "0A";
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
            return false;
        };
        let Some((address, hex_port)) = local.split_once(':') else {
            return false;
        };
        *state == LISTEN
            && u16::from_str_radix(hex_port, 16) == Ok(port)
            && (address == "0100007F" || address == "00000000")
    })
}

/// Ports from 10000 up to the kernel's ephemeral range (32768 by default).
fn below_ephemeral_range() -> (u16, u16) {
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    assert!(
        first_ephemeral > 12000,
        "the ephemeral port range starts at {first_ephemeral}: no room below it"
    );
    (10000, first_ephemeral)
}

pub async fn listener() -> TcpListener {
    bearer_proxy::install_crypto_provider();
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

pub struct Idp {
    pub state: Arc<IdpState>,
    pub addr: SocketAddr,
    _server: ServerHandle,
}

impl Idp {
    /// An emulator with the test client registered.
    pub async fn start() -> Idp {
        let (state, server) = emulator::start_idp(listener().await);
        state.register_client(CLIENT_ID, CLIENT_SECRET);
        let cert = std::fs::read_to_string(fixture("client-cert.pem")).unwrap();
        state
            .register_client_certificate(CLIENT_ID, KEY_ALIAS, &cert)
            .unwrap();
        state.register_user(USER, USER_PASSWORD);
        state.set_oam_identity_domain(OAM_DOMAIN);
        Idp {
            state,
            addr: server.addr,
            _server: server,
        }
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/oauth2/v1/token", self.addr)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

pub struct Upstream {
    pub state: Arc<EchoState>,
    pub addr: SocketAddr,
    _server: ServerHandle,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let (state, server) = emulator::start_echo(listener().await, None);
        Upstream {
            state,
            addr: server.addr,
            _server: server,
        }
    }

    /// An HTTPS echo upstream whose certificate (for `localhost` and
    /// 127.0.0.1) is signed by a fresh test CA, written to `dir/ca.pem`.
    pub async fn start_tls(dir: &Path) -> (Upstream, PathBuf) {
        let ca = TestCa::new();
        let (cert, key) = ca.server();
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, &ca.pem).unwrap();
        let server_config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pem_cert(&cert)],
            rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let (state, server) = emulator::start_echo(listener().await, Some(acceptor));
        (
            Upstream {
                state,
                addr: server.addr,
                _server: server,
            },
            ca_path,
        )
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `Authorization` header of the last request the upstream got.
    pub fn last_authorization(&self) -> String {
        self.state
            .last()
            .expect("the upstream got a request")
            .header("authorization")
            .expect("it carried an Authorization header")
            .to_string()
    }
}

fn pem_cert(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// A throw-away certificate authority for one test.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bearer-proxy test CA");
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1: (cert, key) PEM.
    pub fn server(&self) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        self.sign(params)
    }

    /// A client certificate with this common name: (cert, key) PEM.
    pub fn client(&self, common_name: &str) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: rcgen::CertificateParams) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// An HTTPS client trusting this CA, presenting `identity` if given.
    pub fn https_client(&self, identity: Option<&(String, String)>) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_backend_preconfigured(self.client_config(identity))
            .build()
            .unwrap()
    }

    /// A TLS connection to `port` on loopback as `localhost`, trusting
    /// this CA.
    pub async fn connect(
        &self,
        port: u16,
    ) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        tcp.set_nodelay(true).unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(self.client_config(None)));
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    }

    /// A rustls client configuration trusting this CA, presenting
    /// `identity` if given.
    pub fn client_config(&self, identity: Option<&(String, String)>) -> rustls::ClientConfig {
        bearer_proxy::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pem_cert(&self.pem)).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        match identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![pem_cert(cert)],
                    rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        }
    }
}

/// The proxy binary, running.
pub struct Proxy {
    child: Option<Child>,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    output: Arc<Mutex<String>>,
}

/// The configuration a test runs the proxy with, as typed values: one
/// client `oic` (client_credentials, secret from `${TEST_CLIENT_SECRET}`)
/// and one route `main` on `/`, open to anyone. Tests change fields of
/// [`ProxyConfig::raw`]; the listen addresses are filled in at start.
pub struct ProxyConfig<'a> {
    pub raw: RawConfig,
    /// The value of `${TEST_CLIENT_SECRET}` in the proxy's environment.
    pub client_secret: &'a str,
    /// Files written next to the config (name, content), e.g. key files.
    pub files: Vec<(&'a str, String)>,
}

/// The test client's block: a client_credentials client of the emulator
/// whose secret comes from the environment.
pub fn oic_client(idp: &Idp) -> RawClient {
    RawClient::with_secret(&idp.token_url(), CLIENT_ID, "${TEST_CLIENT_SECRET}", SCOPE)
}

/// The test user's password-grant client, renewing with refresh tokens.
pub fn password_refresh_client(idp: &Idp) -> RawClient {
    RawClient {
        grant: GrantKind::Password,
        username: Some(USER.into()),
        password: Some(USER_PASSWORD.into()),
        refresh_token: true,
        ..oic_client(idp)
    }
}

/// A route under `/{name}/` to `upstream` with client `oic`'s token.
pub fn route_to(name: &str, upstream: &str) -> RawRoute {
    RawRoute::open(name, &format!("/{name}/"), upstream, "oic")
}

pub fn ms(millis: u64) -> Option<Duration> {
    Some(Duration::from_millis(millis))
}

impl<'a> ProxyConfig<'a> {
    pub fn new(idp: &Idp, upstream: &Upstream) -> Self {
        let raw = RawConfig {
            server: RawServer {
                threads: Some(2),
                shutdown_grace: Some(Duration::from_secs(5)),
                startup_token_wait: Some(Duration::from_secs(5)),
                // Tests rewrite the file and then reload by signal or
                // admin call; a watch reload racing those would make them
                // flaky. tests/integration/watch.rs turns it back on.
                watch_files: Some(false),
                fast_path: Transport::current(),
                ..RawServer::default()
            },
            ..RawConfig::default()
        }
        .with_client("oic", oic_client(idp))
        .with_route(RawRoute::open("main", "/", &upstream.url(), "oic"));
        ProxyConfig {
            raw,
            client_secret: CLIENT_SECRET,
            files: Vec::new(),
        }
    }

    /// A TLS listener on `port` presenting a certificate of `ca` for
    /// localhost (written as `server.pem` / `server.key`, replacing any
    /// other files); returns the certificate's PEM.
    pub fn tls_listener(&mut self, ca: &TestCa, port: u16) -> String {
        let (cert, key) = ca.server();
        self.server().tls_listen = vec![RawTlsListener {
            address: Some(format!("127.0.0.1:{port}")),
            cert_file: Some("server.pem".into()),
            key_file: Some("server.key".into()),
            client_ca_file: None,
        }];
        self.files = vec![("server.pem", cert.clone()), ("server.key", key)];
        cert
    }

    /// Adds client `name` and a route `/name/` to `upstream` with its token.
    pub fn add_client_route(&mut self, name: &str, client: RawClient, upstream: &str) {
        self.raw.clients.insert(name.into(), client);
        self.raw
            .routes
            .push(RawRoute::open(name, &format!("/{name}/"), upstream, name));
    }

    /// Client `oic`.
    pub fn client(&mut self) -> &mut RawClient {
        self.raw
            .clients
            .get_mut("oic")
            .expect("the test configuration has client oic")
    }

    /// The first route.
    pub fn route(&mut self) -> &mut RawRoute {
        &mut self.raw.routes[0]
    }

    pub fn server(&mut self) -> &mut RawServer {
        &mut self.raw.server
    }

    pub fn yaml(&self, port: u16, admin_port: u16) -> String {
        let mut raw = self.raw.clone();
        raw.server.listen = Some(vec![format!("127.0.0.1:{port}")]);
        raw.admin.listen = Some(format!("127.0.0.1:{admin_port}"));
        raw.to_yaml()
    }
}

impl Proxy {
    /// Starts the proxy and waits until its listener accepts connections
    /// (it opens after the start-up token fetch).
    pub async fn start(config: &ProxyConfig<'_>) -> Proxy {
        Self::start_with_args(config, &["--log-level", "debug"]).await
    }

    pub async fn start_with_args(config: &ProxyConfig<'_>, log_args: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let admin_port = free_port();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config.yaml(port, admin_port)).unwrap();
        for (name, content) in &config.files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
            .args(log_args)
            .arg("run")
            .arg("-c")
            .arg(&path)
            .env("TEST_CLIENT_SECRET", config.client_secret)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 8192];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    output
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut proxy = Proxy {
            child: Some(child),
            port,
            admin_port,
            dir,
            output,
        };
        let tls_ports = config.raw.server.tls_listen.iter().filter_map(|l| {
            let address = l.address.as_deref()?;
            address.rsplit_once(':')?.1.parse::<u16>().ok()
        });
        let ports: Vec<u16> = [port, admin_port].into_iter().chain(tls_ports).collect();
        proxy.wait_listening(&ports).await;
        proxy
    }

    /// Waits until every listener the configuration names listens: the
    /// plain one opens after the start-up token wait, the TLS ones may
    /// open after it. Not by connecting: a probe on a TLS listener keeps
    /// its connection place reserved for seconds without a handshake.
    async fn wait_listening(&mut self, ports: &[u16]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if listening(ports) {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "proxy exited with {status} before listening:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not listen within 30 s:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// Rewrites the config file in place (same ports), with its files.
    pub fn rewrite(&self, config: &ProxyConfig<'_>) {
        for (name, content) in &config.files {
            std::fs::write(self.dir.path().join(name), content).unwrap();
        }
        std::fs::write(self.config_path(), config.yaml(self.port, self.admin_port)).unwrap();
    }

    /// `POST /reload` on the admin listener: (status, body).
    pub async fn admin_reload(&self) -> (u16, serde_json::Value) {
        self.admin_post("/reload").await
    }

    /// A JSON `POST` to `path` on the admin listener: (status, body).
    pub async fn admin_post(&self, path: &str) -> (u16, serde_json::Value) {
        let r = client()
            .post(self.admin_url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Sends SIGHUP.
    pub fn hangup(&self) {
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGHUP);
        }
    }

    /// Sends SIGKILL: the process dies holding whatever it holds.
    pub fn kill(&self) {
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGKILL);
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        unsafe {
            libc::kill(self.pid() as i32, libc::SIGTERM);
        }
    }

    /// Waits for the process to exit, at most `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET /status` on the admin listener, as JSON.
    pub async fn status_json(&self) -> serde_json::Value {
        client()
            .get(self.admin_url("/status"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample line of `/metrics`, e.g.
    /// `bearer_proxy_token_cache_total{client="oic",result="miss"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics().await, sample)
    }

    /// Peak resident memory of the process (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            * 1024
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn metric_value(metrics: &str, sample: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// The status of a GET to `url`.
pub async fn get_status(url: String) -> u16 {
    client().get(url).send().await.unwrap().status().as_u16()
}

/// An `Authorization: Basic` value for `user` and `password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// `GET /x` through `proxy` with `user`'s Basic credentials.
pub async fn get_as(proxy: &Proxy, user: &str, password: &str) -> reqwest::Response {
    client()
        .get(proxy.url("/x"))
        .header("authorization", basic(user, password))
        .send()
        .await
        .unwrap()
}

pub fn client() -> reqwest::Client {
    bearer_proxy::install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// Decodes the claims of the bearer token in an `Authorization` value,
/// verifying the emulator's signature.
pub fn verified_claims(authorization: &str) -> serde_json::Value {
    let token = authorization
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a bearer token: {authorization:.20}"));
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.validate_aud = false;
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &bearer_proxy::emulator::idp::decoding_key(),
        &validation,
    )
    .unwrap()
    .claims
}

/// Polls `check` every 20 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A private `redis-server` (Debian's package, installed by
/// `.ci/install-deps`) on an ephemeral port: no persistence, its own temp
/// dir; stopped on drop. `stop` and `restart` (same port) simulate an
/// outage.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Extra `redis-server` arguments (a replica's `--replicaof`).
    extra: Vec<String>,
}

impl Redis {
    pub async fn start() -> Redis {
        Self::start_with(Vec::new()).await
    }

    /// A replica of `primary`.
    pub async fn start_replica_of(primary: &Redis) -> Redis {
        Self::start_with(vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ])
        .await
    }

    async fn start_with(extra: Vec<String>) -> Redis {
        let mut redis = Redis {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            extra,
        };
        redis.launch().await;
        redis
    }

    async fn launch(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            // DEBUG SLEEP makes it slow on purpose (a test of time-outs).
            .args(["--enable-debug-command", "local"])
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/install-deps)");
        self.child = Some(child);
        let url = self.url();
        let ready = eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection())
                    .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                    .is_ok()
            }
        })
        .await;
        assert!(ready, "redis-server did not answer PING");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (an outage).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The Redis key of the (first) token slot.
    pub fn slot_key(&self) -> String {
        self.dump()
            .into_iter()
            .map(|(k, _)| k)
            .find(|k| k.contains(":slot:"))
            .expect("a slot entry in Redis")
    }

    /// Every key and its raw value.
    /// Every key, whatever its type.
    pub fn keys(&self) -> Vec<String> {
        redis::cmd("KEYS")
            .arg("*")
            .query(&mut self.connection())
            .unwrap()
    }

    pub fn dump(&self) -> Vec<(String, Vec<u8>)> {
        let mut c = self.connection();
        let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
        keys.into_iter()
            .filter_map(|k| {
                let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(&mut c).ok()?;
                Some((k, v?))
            })
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Sentinel (`redis-server --sentinel`) watching `primary` as
/// `mymaster`, quorum 1; stopped on drop.
pub struct Sentinel {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    pub async fn start(primary: &Redis) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds mymaster 2000\n\
                 sentinel failover-timeout mymaster 10000\n",
                dir.path().display(),
                primary.port
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let sentinel = Sentinel {
            child,
            port,
            _dir: dir,
        };
        let url = format!("redis://127.0.0.1:{port}");
        let up = eventually(Duration::from_secs(10), || {
            let url = url.clone();
            async move {
                redis::Client::open(url.as_str())
                    .and_then(|c| c.get_connection())
                    .is_ok()
            }
        })
        .await;
        assert!(up, "the sentinel did not start");
        sentinel
    }

    pub fn command<T: redis::FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}", self.port).as_str())?
            .get_connection()?;
        let mut cmd = redis::cmd("SENTINEL");
        for a in args {
            cmd.arg(*a);
        }
        cmd.query(&mut c)
    }

    /// The port of the primary the sentinel names now.
    pub fn primary_port(&self) -> Option<u16> {
        let addr: Vec<String> = self
            .command(&["get-master-addr-by-name", "mymaster"])
            .ok()?;
        addr.get(1)?.parse().ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh cache key as `bearer-proxy keygen` writes it.
pub fn cache_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes) + "\n"
}

impl<'a> ProxyConfig<'a> {
    /// This configuration with the Redis backend: `key` is written next to
    /// the config as `cache.key` (and `previous` as `previous.key`).
    pub fn shared(self, redis: &Redis, key: &str, previous: Option<&str>) -> Self {
        self.shared_at(&redis.url(), key, previous)
    }

    /// [`Self::shared`] with any Redis URL (e.g. `redis+sentinel://…`).
    pub fn shared_at(mut self, url: &str, key: &str, previous: Option<&str>) -> Self {
        self.raw.cache = RawCache {
            backend: Some(CacheBackend::Redis),
            redis: Some(RawRedis {
                url: Some(url.to_string()),
                encryption_key_file: Some("cache.key".into()),
                previous_encryption_key_files: previous
                    .map(|_| vec!["previous.key".into()])
                    .unwrap_or_default(),
                ..RawRedis::default()
            }),
        };
        self.files.push(("cache.key", key.to_string()));
        if let Some(p) = previous {
            self.files.push(("previous.key", p.to_string()));
        }
        self
    }
}

/// The identity domain's secure token endpoint for `idp`'s clients:
/// mutual TLS, presenting a certificate of `ca` for localhost, taking only
/// the certificate imported for a client (`tls_client_auth`).
pub async fn secure_token_endpoint(idp: &Idp, ca: &TestCa) -> ServerHandle {
    let (cert, key) = ca.server();
    let acceptor = emulator::mtls::acceptor(
        vec![pem_cert(&cert)],
        rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
    )
    .unwrap();
    emulator::start_secure_idp(listener().await, idp.state.clone(), acceptor)
}

/// A `tls_client_auth` client of `secure` ([`secure_token_endpoint`]),
/// presenting `client.crt` / `client.key` and trusting `ca.pem`.
pub fn certificate_client(secure: &ServerHandle) -> RawClient {
    RawClient {
        token_url: Some(format!(
            "https://localhost:{}/oauth2/v1/token",
            secure.addr.port()
        )),
        client_id: Some(CLIENT_ID.into()),
        client_auth: ClientAuthMethod::TlsClientAuth,
        tls_client_cert_file: Some("client.crt".into()),
        tls_client_key_file: Some("client.key".into()),
        ca_file: Some("ca.pem".into()),
        scopes: vec![SCOPE.into()],
        ..RawClient::default()
    }
}

/// Runs `cmd` off the runtime (the emulator in this process must keep
/// answering it) with `stdin` piped in; returns its output and its stdout
/// and stderr as one text.
pub async fn run_with_stdin(mut cmd: Command, stdin: &str) -> (std::process::Output, String) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let stdin = stdin.to_string();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stdin.take().unwrap();
        let _ = pipe.write_all(stdin.as_bytes());
        drop(pipe);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out, text)
}

/// A child process killed when the test ends.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on `port` (30 s at most).
pub async fn wait_listening(port: u16) {
    let up = eventually(Duration::from_secs(30), || async { listening(&[port]) }).await;
    assert!(up, "nothing listens on {port} within 30 s");
}

/// `bearer-proxy demo` with the bundled conf/demo.yaml moved to free
/// ports, its files in `dir`; running once its proxy listens, stopped
/// when dropped.
pub struct Demo {
    pub listen: u16,
    pub idp: u16,
    _child: Killed,
}

impl Demo {
    pub async fn start(dir: &Path) -> Demo {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let mut demo = std::fs::read_to_string(root.join("conf/demo.yaml")).unwrap();
        for (default, port) in ["8080", "9090", "9400", "9401"].iter().zip(ports) {
            demo = demo.replace(
                &format!("127.0.0.1:{default}"),
                &format!("127.0.0.1:{port}"),
            );
        }
        std::fs::write(dir.join("demo.yaml"), demo).unwrap();
        std::fs::copy(root.join("conf/demo-api-keys"), dir.join("demo-api-keys")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_bearer-proxy"))
            .args(["demo", "-c"])
            .arg(dir.join("demo.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let demo = Demo {
            listen: ports[0],
            idp: ports[2],
            _child: Killed(child),
        };
        wait_listening(demo.listen).await;
        demo
    }
}

/// Which transport a test's proxies serve plain HTTP/1 requests with
/// (`server.fast_path`), set for the test's task by [`both_transports!`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Fast,
    Pingora,
}

tokio::task_local! {
    static TRANSPORT: Transport;
}

impl Transport {
    /// Runs `test` with every `ProxyConfig::new` of its task on this
    /// transport.
    pub async fn scope<F: std::future::Future>(self, test: F) -> F::Output {
        TRANSPORT.scope(self, test).await
    }

    /// The transport of the running test (`server.fast_path`'s default
    /// outside [`both_transports!`]).
    pub fn current() -> Option<bool> {
        TRANSPORT.try_with(|t| *t == Transport::Fast).ok()
    }
}

/// Each test inside runs twice, as `<name>::fast_path` and
/// `<name>::pingora_path`: a parameter of the test, not a copy.
#[macro_export]
macro_rules! both_transports {
    ($($(#[$attr:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn run() $body

            $(#[$attr])*
            async fn fast_path() {
                $crate::support::Transport::Fast.scope(run()).await
            }

            $(#[$attr])*
            async fn pingora_path() {
                $crate::support::Transport::Pingora.scope(run()).await
            }
        }
    )*};
}
