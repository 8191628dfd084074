//! How the proxy proves the client's identity to the token endpoint.

use base64::Engine;
use http::HeaderValue;

use super::assertion;
use super::error::FetchError;
use crate::config::{BasicEncoding, ClientAuth, ClientConfig, Issuer};

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
        ClientAuth::SecretBasic { secret, encoding } => Ok(Some(basic_header(
            &client.client_id,
            secret.expose(),
            *encoding,
        ))),
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
        // The certificate on the connection authenticates; the form names
        // the client.
        ClientAuth::TlsClientAuth { .. } => {
            form.push(("client_id", client.client_id.clone()));
            Ok(None)
        }
    }
}

/// `Basic base64(id ":" secret)`. Oracle documents (and its identity
/// services decode) the plain form; RFC 6749 §2.3.1 form-urlencodes both
/// first, which changes every secret with `+ / = ! @ # $ %` and the like,
/// so that form is only used when configured.
pub fn basic_header(client_id: &str, secret: &str, encoding: BasicEncoding) -> HeaderValue {
    let joined = match encoding {
        BasicEncoding::Plain => format!("{client_id}:{secret}"),
        BasicEncoding::FormUrlencoded => {
            let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
            let secret: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
            format!("{id}:{secret}")
        }
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(joined);
    let mut value = HeaderValue::try_from(format!("Basic {encoded}"))
        .expect("base64 output is a valid header value");
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(v: &HeaderValue) -> String {
        let b64 = v.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        String::from_utf8(raw).unwrap()
    }

    #[test]
    fn basic_header_is_plain_unless_form_encoding_is_configured() {
        let plain = basic_header("my client", "p+ss/w=rd!%41:x", BasicEncoding::Plain);
        assert_eq!(decoded(&plain), "my client:p+ss/w=rd!%41:x");
        assert!(plain.is_sensitive());
        let form = basic_header("my client", "p:a%ss", BasicEncoding::FormUrlencoded);
        assert_eq!(decoded(&form), "my+client:p%3Aa%25ss");
        assert!(form.is_sensitive());
    }
}
