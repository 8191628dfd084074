//! Trust anchors shared by the identity-service client and upstream peers:
//! the system roots, loaded once, plus any CA files from configuration.

use std::sync::{Arc, LazyLock};

use rustls::pki_types::CertificateDer;
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

/// A rustls client configuration on the ring provider (the one pingora uses),
/// trusting the system roots plus `extra`.
pub fn client_config(extra: &[CertificateDer<'static>]) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(root_store(extra))
        .with_no_client_auth()
}

/// Makes ring the process-wide rustls provider. Both pingora and reqwest
/// would otherwise have to guess; calling it twice is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
