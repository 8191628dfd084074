//! A client's TLS identity (`client_auth: tls_client_auth`): the
//! certificate imported into the confidential application and its key.
//! The key never leaves this type but into the identity-service
//! connection's TLS configuration.

use std::fmt;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// The leaf certificate's subject, for `/status` and the status page.
    pub subject: String,
    /// When the leaf certificate expires (Unix seconds).
    pub not_after: i64,
}

impl ClientIdentity {
    /// Parses `cert_pem` (leaf first) and `key_pem`, checking that the key
    /// belongs to the leaf certificate.
    pub fn parse(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject as _;
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("certificate: invalid PEM: {e}"))?;
        let leaf = chain
            .first()
            .ok_or("certificate: no PEM certificate found")?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| format!("certificate: not an X.509 certificate: {e}"))?;
        let subject = parsed.subject().to_string();
        let not_after = parsed.validity().not_after.timestamp();
        // The key's PEM error text never quotes the key.
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|_| "key: no PEM private key found".to_string())?;
        crate::tls::certified_key(chain.clone(), key.clone_key()).map_err(|e| match e {
            crate::tls::KeyPairError::UnusableKey(e) => format!("key: unusable: {e}"),
            crate::tls::KeyPairError::Mismatch(_) => {
                "the key does not belong to the certificate".to_string()
            }
        })?;
        Ok(ClientIdentity {
            chain,
            key,
            subject,
            not_after,
        })
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// A digest of certificate and key: a changed file makes a new client.
    pub fn fingerprint(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for c in &self.chain {
            h.update(c.as_ref());
        }
        h.update(self.key.secret_der());
        h.finalize().into()
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("key", &"[redacted]")
            .finish()
    }
}
