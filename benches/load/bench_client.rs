//! What the load examples' clients share (included by `paced_load` and
//! `idle_clients`): their arguments, and a rustls connector trusting one
//! CA file.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The value after `name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A connection the examples read and write, plain or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A connector trusting only the certificates in `ca` (PEM).
pub fn connector(ca: &str) -> tokio_rustls::TlsConnector {
    let pem = std::fs::read(ca).expect("CA file: readable");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots
            .add(cert.expect("CA file: PEM"))
            .expect("CA file: a certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `tcp`, wrapped in TLS for `host` when there is a connector.
pub async fn wrap(
    tcp: TcpStream,
    tls: Option<&tokio_rustls::TlsConnector>,
    host: &str,
) -> std::io::Result<Box<dyn Stream>> {
    tcp.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(Box::new(tcp));
    };
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(std::io::Error::other)?;
    Ok(Box::new(tls.connect(name, tcp).await?))
}
