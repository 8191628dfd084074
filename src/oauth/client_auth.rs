//! How the proxy proves the client's identity to the token endpoint.

use base64::Engine;
use http::HeaderValue;

use super::assertion;
use super::error::FetchError;
use crate::config::{ClientAuth, ClientConfig, Issuer};

pub const ASSERTION_TYPE_URN: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Oracle Access Manager's own spelling (it also accepts the URN).
pub const ASSERTION_TYPE_OAM: &str = "JWT_BEARER";

/// Adds the client's credentials to a token request: an `Authorization`
/// value (client_secret_basic) or form fields (client_secret_post, and
/// private_key_jwt with a freshly minted client assertion).
pub fn apply(
    client: &ClientConfig,
    form: &mut Vec<(&'static str, String)>,
) -> Result<Option<HeaderValue>, FetchError> {
    match &client.auth {
        ClientAuth::SecretBasic { secret } => {
            Ok(Some(basic_header(&client.client_id, secret.expose())))
        }
        ClientAuth::SecretPost { secret } => {
            form.push(("client_id", client.client_id.clone()));
            form.push(("client_secret", secret.expose().to_string()));
            Ok(None)
        }
        ClientAuth::PrivateKeyJwt { key } => {
            let jwt = assertion::mint(key, &client.client_id, &client.client_id)
                .map_err(|e| FetchError::Local(format!("cannot sign the client assertion: {e}")))?;
            let assertion_type = match client.issuer {
                Issuer::IdentityDomain => ASSERTION_TYPE_URN,
                Issuer::Oam => ASSERTION_TYPE_OAM,
            };
            form.push(("client_id", client.client_id.clone()));
            form.push(("client_assertion_type", assertion_type.to_string()));
            form.push(("client_assertion", jwt));
            Ok(None)
        }
    }
}

/// RFC 6749 §2.3.1: id and secret are form-urlencoded before being joined
/// and base64-encoded, so a ':' or '%' in a secret survives the trip.
pub fn basic_header(client_id: &str, secret: &str) -> HeaderValue {
    let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .expect("base64 output is a valid header value");
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_urlencodes_before_base64() {
        let v = basic_header("my client", "p:a%ss");
        let b64 = v.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "my+client:p%3Aa%25ss");
        assert!(v.is_sensitive());
    }
}
