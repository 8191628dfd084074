//! `server.watch_files` (on by default): the proxy reloads by itself when
//! its configuration file or a file it names changes — a Kubernetes
//! `..data` swap, an editor's rename, an in-place write — and an invalid
//! edit keeps the running configuration, counted and shown in `/status`.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// The test configuration with watching at its default (on).
fn watched<'a>(idp: &Idp, upstream: &Upstream) -> ProxyConfig<'a> {
    let mut config = ProxyConfig::new(idp, upstream);
    config.server().watch_files = None;
    config
}

/// Replaces `path` by writing a sibling and renaming it over, as editors
/// and most tools do.
fn write_by_rename(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn reloads(proxy: &Proxy, outcome: &str) -> f64 {
    proxy
        .metric(&format!(
            "bearer_proxy_config_reloads_total{{outcome=\"{outcome}\",trigger=\"watch\"}}"
        ))
        .await
}

/// A Kubernetes Secret volume: `name` → `..data/name`, `..data` →
/// `..<version>`; a rotation writes a new version directory and renames a
/// new `..data` link over the old one.
fn secret_volume(dir: &Path, version: &str, name: &str, value: &str) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&versioned).unwrap();
    std::fs::write(versioned.join(name), value).unwrap();
    let tmp = dir.join("..data_tmp");
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    let link = dir.join(name);
    if std::fs::symlink_metadata(&link).is_err() {
        symlink(format!("..data/{name}"), &link).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_secret_rotated_by_a_data_swap_is_used_by_the_next_fetch_without_a_signal() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = watched(&idp, &upstream);
    // The mounted volume, elsewhere than the configuration.
    let volume = tempfile::tempdir().unwrap();
    secret_volume(volume.path(), "2026_a", "client_secret", CLIENT_SECRET);
    config.client().client_secret = None;
    config.client().client_secret_file = Some(volume.path().join("client_secret"));
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/x")).await, 200);

    // The identity service now knows only the new secret; the file follows.
    idp.state.register_client(CLIENT_ID, "rotated-secret-2");
    secret_volume(volume.path(), "2026_b", "client_secret", "rotated-secret-2");
    assert!(
        eventually(Duration::from_secs(10), || async {
            reloads(&proxy, "ok").await == 1.0
        })
        .await,
        "no reload after the ..data swap"
    );
    // The next fetch (forced now) authenticates with the rotated secret.
    let (status, body) = proxy.admin_post("/clients/oic/renew").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_status(proxy.url("/x")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_written_into_the_config_by_rename_answers_within_5_s() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = watched(&idp, &upstream);
    config.raw.routes = vec![route_to("old", &upstream.url())];
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/new/x")).await, 404);
    config.raw.routes.push(route_to("new", &upstream.url()));
    let started = std::time::Instant::now();
    write_by_rename(
        &proxy.config_path(),
        &config.yaml(proxy.port, proxy.admin_port),
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            get_status(proxy.url("/new/x")).await == 200
        })
        .await,
        "the new route did not answer within 5 s"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(reloads(&proxy, "ok").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_running_config_and_is_counted_and_shown() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let config = watched(&idp, &upstream);
    let proxy = Proxy::start(&config).await;
    // An in-place write this time.
    let good = std::fs::read_to_string(proxy.config_path()).unwrap();
    std::fs::write(
        proxy.config_path(),
        good.replace("threads: 2", "threads: 0"),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || async {
            reloads(&proxy, "invalid").await == 1.0
        })
        .await,
        "the invalid edit was not counted"
    );
    assert_eq!(
        get_status(proxy.url("/x")).await,
        200,
        "the old config serves"
    );
    let status = proxy.status_json().await;
    let problems = status["config_refused"]["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().contains("server.threads")),
        "{status}"
    );
    assert_eq!(status["config_refused"]["trigger"], "watch");
    assert!(
        eventually(Duration::from_secs(5), || async {
            proxy.output().contains("reload refused")
        })
        .await,
        "the refusal is not logged"
    );

    // Fixed: loaded, and the refusal is no longer shown.
    write_by_rename(&proxy.config_path(), &good);
    assert!(
        eventually(Duration::from_secs(10), || async {
            reloads(&proxy, "ok").await == 1.0
        })
        .await,
        "the fixed file was not loaded"
    );
    assert!(proxy.status_json().await["config_refused"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_watch_files_off_a_changed_file_is_not_loaded_until_asked() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.server().watch_files = Some(false);
    config.raw.routes = vec![route_to("old", &upstream.url())];
    let proxy = Proxy::start(&config).await;
    config.raw.routes.push(route_to("new", &upstream.url()));
    write_by_rename(
        &proxy.config_path(),
        &config.yaml(proxy.port, proxy.admin_port),
    );
    // A signal or admin call would load it; the file alone does not.
    let (status, _) = proxy.admin_reload().await;
    assert_eq!(status, 200);
    assert_eq!(get_status(proxy.url("/new/x")).await, 200);
    assert_eq!(reloads(&proxy, "ok").await, 0.0);
    assert_eq!(
        proxy
            .metric("bearer_proxy_config_reloads_total{outcome=\"ok\",trigger=\"admin\"}")
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_listener_certificate_is_presented_by_new_handshakes_while_open_connections_go_on(
) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use tokio::io::AsyncWriteExt;
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let ca = TestCa::new();
    let tls_port = free_port();
    let mut config = watched(&idp, &upstream);
    let first_cert = config.tls_listener(&ca, tls_port);
    let proxy = Proxy::start(&config).await;
    let connect = || ca.connect(tls_port);
    let presented = |conn: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        conn.get_ref().1.peer_certificates().unwrap()[0]
            .as_ref()
            .to_vec()
    };
    let der = |pem: &str| {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    };
    let get = b"GET /x HTTP/1.1\r\nHost: proxy\r\n\r\n";
    let mut open = connect().await;
    open.write_all(get).await.unwrap();
    assert_eq!(crate::keepalive::response(&mut open).await.0, 200);
    assert_eq!(presented(&open), der(&first_cert));

    // cert-manager renews: a new key and certificate, each by rename.
    let (second_cert, second_key) = ca.server();
    write_by_rename(&proxy.dir.path().join("server.key"), &second_key);
    write_by_rename(&proxy.dir.path().join("server.pem"), &second_cert);
    assert!(
        eventually(Duration::from_secs(10), || async {
            presented(&connect().await) == der(&second_cert)
        })
        .await,
        "new handshakes still get the old certificate"
    );
    // The connection opened before goes on, on its own handshake.
    open.write_all(get).await.unwrap();
    assert_eq!(crate::keepalive::response(&mut open).await.0, 200);
    assert_eq!(presented(&open), der(&first_cert));
    let status = proxy.status_json().await;
    assert!(status["config_refused"].is_null(), "{status}");
}
