//! TLS listeners: rustls settings for pingora, the certificate each one
//! presents (swapped by a reload: `ServedCertificates`), optional
//! client-certificate verification (mTLS), and the verified client's
//! subject handed to the access check.

use std::any::Any;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

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

/// The certificate a TLS listener presents. rustls asks for it on every
/// handshake, so a reload that stores a new one is seen by the next
/// handshake while open connections carry on with theirs — how
/// cert-manager's renewals take effect without a restart.
/// Each resolve is one handshake begun: counted in
/// `bearer_proxy_tls_handshakes_total{listener}`, what a TLS flood costs.
#[derive(Debug)]
pub struct ServedCertificate(ArcSwap<CertifiedKey>, prometheus::IntCounter);

impl ServedCertificate {
    fn new(address: SocketAddr, key: Arc<CertifiedKey>) -> Self {
        let handshakes = crate::metrics::metrics()
            .tls_handshakes
            .with_label_values(&[&address.to_string()]);
        ServedCertificate(ArcSwap::new(key), handshakes)
    }
}

impl ResolvesServerCert for ServedCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.1.inc();
        Some(self.0.load_full())
    }
}

/// Every TLS listener's served certificate, by address.
#[derive(Debug, Default)]
pub struct ServedCertificates(Vec<(SocketAddr, Arc<ServedCertificate>)>);

/// New certificates read for a reload, not yet served.
pub struct PreparedCertificates(Vec<(SocketAddr, Arc<ServedCertificate>, Arc<CertifiedKey>)>);

impl ServedCertificates {
    pub fn load(listeners: &[TlsListener]) -> Result<Self, ListenerError> {
        listeners
            .iter()
            .map(|l| {
                Ok((
                    l.address,
                    Arc::new(ServedCertificate::new(l.address, certified_key(l)?)),
                ))
            })
            .collect::<Result<_, _>>()
            .map(ServedCertificates)
    }

    fn of(&self, address: SocketAddr) -> Option<&Arc<ServedCertificate>> {
        self.0.iter().find(|(a, _)| *a == address).map(|(_, c)| c)
    }

    /// Reads the certificates `listeners` name for the listeners that
    /// run (a new listen address needs a restart anyway); a certificate
    /// that does not match its key refuses the reload.
    pub fn prepare(
        &self,
        listeners: &[TlsListener],
    ) -> Result<PreparedCertificates, ListenerError> {
        let mut prepared = Vec::new();
        for l in listeners {
            if let Some(served) = self.of(l.address) {
                prepared.push((l.address, served.clone(), certified_key(l)?));
            }
        }
        Ok(PreparedCertificates(prepared))
    }

    /// Serves what `prepare` read; logs each listener whose certificate
    /// changed.
    pub fn apply(&self, prepared: PreparedCertificates) {
        for (address, served, key) in prepared.0 {
            if served.0.swap(key.clone()).cert != key.cert {
                tracing::info!(listener = %address, "TLS listener presents a new certificate");
            }
        }
    }
}

/// A listener's certificate chain and key, checked to belong together.
fn certified_key(listener: &TlsListener) -> Result<Arc<CertifiedKey>, ListenerError> {
    let fail = |what: &'static str, e: &dyn std::fmt::Display| ListenerError {
        address: listener.address,
        what,
        cause: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(&listener.cert_file)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail("certificate", &e))?;
    let key =
        PrivateKeyDer::from_pem_file(&listener.key_file).map_err(|e| fail("private key", &e))?;
    let certified = crate::tls::certified_key(chain, key).map_err(|e| match e {
        crate::tls::KeyPairError::UnusableKey(e) => fail("private key", &e),
        crate::tls::KeyPairError::Mismatch(e) => fail("certificate and key", &e),
    })?;
    Ok(Arc::new(certified))
}

/// pingora settings for one listener, presenting `served`. With
/// `client_cas`, clients must present a certificate issued by one of them.
pub fn settings(
    listener: &TlsListener,
    served: &ServedCertificates,
) -> Result<TlsSettings, ListenerError> {
    let fail = |what: &'static str, e: &dyn std::fmt::Display| ListenerError {
        address: listener.address,
        what,
        cause: e.to_string(),
    };
    let mut settings =
        TlsSettings::with_callbacks(Box::new(RecordSubject)).map_err(|e| fail("settings", &e))?;
    let certificate = served
        .of(listener.address)
        .ok_or_else(|| fail("certificate", &"not loaded"))?;
    settings.set_cert_resolver(certificate.clone());
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
