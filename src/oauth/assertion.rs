//! Minting the RS256 JWT assertions Oracle accepts: client assertions
//! (`private_key_jwt`, iss = sub = client id) and user assertions (the
//! `jwt_bearer` grant, sub = the user). A fresh one for every token request.

use jsonwebtoken::{Algorithm, Header};
use serde_json::{json, Value};

use crate::config::SigningKey;

/// Signs an assertion from `issuer` about `subject`, valid for the key's
/// configured lifetime, with a unique `jti`.
pub fn mint(
    key: &SigningKey,
    issuer: &str,
    subject: &str,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::RS256);
    header.typ = Some("JWT".into());
    header.kid = key.kid.clone();
    header.x5t = key.x5t.clone();
    header.x5t_s256 = key.x5t_s256.clone();
    let now = crate::clock::unix_now() as u64;
    let audience = match key.audience.as_slice() {
        [one] => Value::String(one.clone()),
        many => json!(many),
    };
    let claims = json!({
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "exp": now + key.lifetime.as_secs(),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    jsonwebtoken::encode(&header, &claims, &key.key)
}
