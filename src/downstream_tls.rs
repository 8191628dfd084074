//! TLS listeners: rustls settings for pingora, optional client-certificate
//! verification (mTLS), and the verified client's subject handed to the
//! access check.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use rustls::server::WebPkiClientVerifier;

use crate::config::TlsListener;

/// The subject DN of a verified client certificate, e.g. `CN=legacy-erp, O=Example`.
pub struct CertSubject(pub String);

/// Records the client certificate's subject once per connection, right
/// after the handshake (rustls has already verified the chain).
struct RecordSubject;

#[async_trait]
impl TlsAccept for RecordSubject {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let der = tls.peer_certificate_der()?;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(Arc::new(CertSubject(cert.subject().to_string())))
    }
}

/// A TLS listener's certificate, key or client CAs were refused when the
/// listener was set up (they were read and checked at load already).
#[derive(Debug, thiserror::Error)]
#[error("TLS listener {address}: {what}: {cause}")]
pub struct ListenerError {
    pub address: std::net::SocketAddr,
    pub what: &'static str,
    pub cause: String,
}

/// pingora settings for one listener. With `client_cas`, clients must
/// present a certificate issued by one of them.
pub fn settings(listener: &TlsListener) -> Result<TlsSettings, ListenerError> {
    let fail = |what: &'static str, e: &dyn std::fmt::Display| ListenerError {
        address: listener.address,
        what,
        cause: e.to_string(),
    };
    let mut settings =
        TlsSettings::with_callbacks(Box::new(RecordSubject)).map_err(|e| fail("settings", &e))?;
    settings
        .set_certificate_chain_file(&listener.cert_file.to_string_lossy())
        .map_err(|e| fail("certificate", &e))?;
    settings
        .set_private_key_file(&listener.key_file.to_string_lossy())
        .map_err(|e| fail("private key", &e))?;
    if let Some(cas) = &listener.client_cas {
        let mut roots = rustls::RootCertStore::empty();
        for ca in cas {
            roots.add(ca.clone()).map_err(|e| fail("client CA", &e))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| fail("client verifier", &e))?;
        settings.set_client_cert_verifier(verifier);
    }
    Ok(settings)
}
