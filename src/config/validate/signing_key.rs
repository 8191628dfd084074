//! `clients.<name>.signing_key:` — the RSA key the proxy signs client and
//! user assertions with, and how the identity service finds its certificate.

use std::path::Path;

use rustls::pki_types::pem::PemObject as _;
use sha2::Digest as _;

use super::{files::read_limited, Validator};
use crate::config::defaults as d;
use crate::config::raw::{Audience, RawSigningKey};
use crate::config::SigningKey;

impl Validator<'_> {
    /// `default_audience` applies when the file names none.
    pub(super) fn signing_key(
        &mut self,
        p: &str,
        raw: &RawSigningKey,
        default_audience: &[String],
    ) -> Option<SigningKey> {
        let signing = self.section(|v| {
            let key = match &raw.key_file {
                None => {
                    v.err(
                        format!("{p}.key_file"),
                        "is required (an RSA private key PEM, PKCS#8 or PKCS#1)",
                    );
                    None
                }
                Some(file) => v.rsa_key(&format!("{p}.key_file"), file),
            };
            let (x5t, x5t_s256) = match &raw.cert_file {
                None => (None, None),
                Some(file) => v.thumbprints(&format!("{p}.cert_file"), file),
            };
            let kid = raw.kid.clone().filter(|k| !k.trim().is_empty());
            if kid.is_none() && raw.cert_file.is_none() {
                v.err(
                    p,
                    "set kid (the certificate alias registered on the application) and/or cert_file (adds x5t): the identity service needs one to find the key",
                );
            }
            let audience = v.audience(p, raw.audience.as_ref(), default_audience);
            let lifetime = v.assertion_lifetime(p, raw);
            let (key, key_sha256) = key?;
            Some(SigningKey {
                key,
                key_sha256,
                kid,
                x5t,
                x5t_s256,
                audience,
                lifetime,
            })
        })?;
        // Sign once now: a key that cannot sign is a configuration error,
        // not a failure on the first token request.
        if let Err(e) = crate::oauth::assertion::mint(&signing, "config-check", "config-check") {
            self.err(
                format!("{p}.key_file"),
                format!("cannot sign with this key: {e}"),
            );
            return None;
        }
        Some(signing)
    }

    /// The key and the SHA-256 of its file (so a changed key counts as a
    /// changed client).
    fn rsa_key(
        &mut self,
        path: &str,
        file: &Path,
    ) -> Option<(jsonwebtoken::EncodingKey, [u8; 32])> {
        let full = self.resolve(file);
        let pem = match read_limited(&full) {
            Ok(pem) => pem,
            Err(e) => {
                self.err(path, format!("cannot read the file it names: {e}"));
                return None;
            }
        };
        let key = is_rsa_private_key(&pem)
            .then(|| jsonwebtoken::EncodingKey::from_rsa_pem(&pem).ok())
            .flatten();
        if key.is_none() {
            self.err(
                path,
                "the file it names is not an RSA private key in PEM form (PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\")".to_string(),
            );
        }
        Some((key?, sha2::Sha256::digest(&pem).into()))
    }

    /// base64url SHA-1 and SHA-256 of the certificate (`x5t`, `x5t#S256`).
    fn thumbprints(&mut self, path: &str, file: &Path) -> (Option<String>, Option<String>) {
        use base64::Engine;
        use sha1::Digest as _;
        let Some(der) = self.certificates(path, file).into_iter().next() else {
            return (None, None);
        };
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        (
            Some(b64.encode(sha1::Sha1::digest(der.as_ref()))),
            Some(b64.encode(sha2::Sha256::digest(der.as_ref()))),
        )
    }

    fn audience(&mut self, p: &str, raw: Option<&Audience>, default: &[String]) -> Vec<String> {
        let audience = match raw {
            None => default.to_vec(),
            Some(Audience::One(a)) => vec![a.clone()],
            Some(Audience::Many(list)) => list.clone(),
        };
        if audience.is_empty() || audience.iter().any(|a| a.trim().is_empty()) {
            self.err(
                format!("{p}.audience"),
                "must be a non-empty string or list of strings",
            );
        }
        audience
    }

    fn assertion_lifetime(&mut self, p: &str, raw: &RawSigningKey) -> std::time::Duration {
        let lifetime = raw.lifetime.unwrap_or(d::ASSERTION_LIFETIME);
        if !(d::ASSERTION_LIFETIME_MIN..=d::ASSERTION_LIFETIME_MAX).contains(&lifetime) {
            self.err(
                format!("{p}.lifetime"),
                format!(
                    "{} is out of range: assertions must live at least 60s (Oracle's minimum; a jwt_bearer token lives no longer than its assertion) and at most 3600s",
                    humantime::format_duration(lifetime)
                ),
            );
        }
        lifetime
    }
}

/// PKCS#8 or PKCS#1 private key PEM (a certificate or public key would
/// parse as a key too, and only fail when signing).
fn is_rsa_private_key(pem: &[u8]) -> bool {
    use rustls::pki_types::PrivateKeyDer;
    matches!(
        PrivateKeyDer::from_pem_slice(pem),
        Ok(PrivateKeyDer::Pkcs8(_) | PrivateKeyDer::Pkcs1(_))
    )
}
