//! Trust anchors shared by the identity-service client and upstream peers:
//! the system roots, loaded once, plus any CA files from configuration.

use std::sync::{Arc, LazyLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

/// The platform's roots (honours `SSL_CERT_FILE` / `SSL_CERT_DIR`). Loaded on
/// first use; a host without a CA bundle yields an empty list, which the
/// config's own CA files can still fill.
static SYSTEM_ROOTS: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(|| {
    let result = rustls_native_certs::load_native_certs();
    for e in &result.errors {
        tracing::warn!(error = %e, "could not load some system CA certificates");
    }
    result.certs
});

pub fn system_roots() -> &'static [CertificateDer<'static>] {
    &SYSTEM_ROOTS
}

/// System roots plus `extra`.
pub fn root_store(extra: &[CertificateDer<'static>]) -> RootCertStore {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(system_roots().iter().cloned());
    store.add_parsable_certificates(extra.iter().cloned());
    store
}

/// An upstream's trust: its `upstream_ca_file` when it has one — instead
/// of the system roots, as nginx's `proxy_ssl_trusted_certificate`,
/// HAProxy's `ca-file` and Caddy's `tls_trusted_ca_certs` do — else the
/// system roots. A narrower trust for a private upstream, and cheaper:
/// pingora builds a new root store from a route's CA list for every new
/// upstream connection, and a list holding the ~140 system roots also kept
/// 5.7 MiB resident (docs/benchmarks.md).
fn upstream_root_store(ca_file: &[CertificateDer<'static>]) -> RootCertStore {
    if ca_file.is_empty() {
        return root_store(&[]);
    }
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(ca_file.iter().cloned());
    store
}

/// A rustls client configuration on the ring provider (the one pingora uses),
/// trusting the system roots plus `extra`.
pub fn client_config(extra: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    client_config_with(root_store(extra))
}

/// A rustls client configuration for an upstream with the trust of
/// [`upstream_root_store`] (the proxy's own replay, `doctor`).
pub fn upstream_client_config(ca_file: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    client_config_with(upstream_root_store(ca_file))
}

/// [`client_config`] presenting `identity` when the server asks for a
/// client certificate (the identity service's secure token endpoint).
pub fn client_config_with_identity(
    extra: &[CertificateDer<'static>],
    identity: &crate::config::ClientIdentity,
) -> Result<rustls::ClientConfig, rustls::Error> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(root_store(extra))
        .with_client_auth_cert(identity.chain.clone(), identity.key())
}

/// A rustls client configuration on the ring provider trusting `roots`.
fn client_config_with(roots: RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Why a certificate chain and a key cannot be used together.
#[derive(Debug, thiserror::Error)]
pub enum KeyPairError {
    #[error("the private key is unusable: {0}")]
    UnusableKey(#[source] rustls::Error),
    #[error("the key does not belong to the certificate: {0}")]
    Mismatch(#[source] rustls::Error),
}

/// `chain` (leaf first) and `key` as rustls signs with them (ring), checked
/// to belong together: a TLS listener's pair and a `tls_client_auth`
/// client's.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, KeyPairError> {
    let signing = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(KeyPairError::UnusableKey)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(KeyPairError::Mismatch)?;
    Ok(certified)
}

/// Makes ring the process-wide rustls provider. Both pingora and reqwest
/// would otherwise have to guess; calling it twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
