//! How the emulator authenticates the client of a token request: Basic,
//! form fields, or a client assertion, each as Oracle accepts them.

use super::*;

/// The id and secret of `Authorization: Basic`, decoded the way the
/// client is registered for: plain `base64(id ":" secret)` (Oracle's) or
/// RFC 6749's form-urlencoded parts. One way only, so a proxy that encodes
/// differently is refused, as a real identity service would refuse it.
fn basic_credentials(state: &IdpState, header: &str) -> Result<(String, String), Refusal> {
    let invalid = || {
        refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        )
    };
    let b64 = header.strip_prefix("Basic ").ok_or_else(invalid)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (id, secret) = raw.split_once(':').ok_or_else(invalid)?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let clients = lock(&state.clients);
    let decoding_of = |id: &str| clients.get(id).map(|c| c.basic);
    match (decoding_of(id), decoding_of(&decode(id))) {
        (Some(BasicDecoding::Plain), _) => Ok((id.to_string(), secret.to_string())),
        (_, Some(BasicDecoding::FormUrlencoded)) => Ok((decode(id), decode(secret))),
        _ => Ok((id.to_string(), secret.to_string())),
    }
}

/// Exactly one client authentication: Basic, form secret (identity
/// domains only), or a client assertion.
pub(super) fn authenticate(state: &IdpState, record: &TokenRequest) -> Result<String, Refusal> {
    let invalid = |why: &str| {
        refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            format!("Client authentication failed: {why}."),
        )
    };
    if record.field("grant_type") == Some("tls_client_auth") {
        return certificate_client(state, record).map_err(&invalid);
    }
    let basic = record
        .authorization
        .as_deref()
        .map(|h| basic_credentials(state, h))
        .transpose()?;
    let post = record.field("client_secret");
    let assertion = record.field("client_assertion");
    let methods = [basic.is_some(), post.is_some(), assertion.is_some()];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Use exactly one client authentication method.",
        ));
    }
    if let Some((id, secret)) = basic {
        return check_secret(state, &id, &secret)
            .then_some(id)
            .ok_or_else(|| invalid("bad client id or secret"));
    }
    if let Some(secret) = post {
        if record.flavor == Flavor::Oam {
            return Err(invalid(
                "Oracle Access Manager takes the client secret only in the Authorization header",
            ));
        }
        let id = record.field("client_id").unwrap_or_default().to_string();
        return check_secret(state, &id, secret)
            .then_some(id)
            .ok_or_else(|| invalid("bad client id or secret"));
    }
    if let Some(jwt) = assertion {
        let expected_type = match record.flavor {
            Flavor::IdentityDomain => {
                &["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"][..]
            }
            Flavor::Oam => &[
                "JWT_BEARER",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ][..],
        };
        if !record
            .field("client_assertion_type")
            .is_some_and(|t| expected_type.contains(&t))
        {
            return Err(invalid("unsupported client_assertion_type"));
        }
        let id = record
            .field("client_id")
            .ok_or_else(|| invalid("client_id is required with a client assertion"))?
            .to_string();
        let claims = verify_assertion(state, &id, jwt).map_err(|why| invalid(&why))?;
        if claims["sub"].as_str() != Some(id.as_str()) {
            return Err(invalid("a client assertion's sub must be the client id"));
        }
        return Ok(id);
    }
    Err(invalid("no client credentials"))
}

/// TLS client authentication: the certificate presented on the connection
/// must be the one imported for the form's `client_id`.
fn certificate_client(state: &IdpState, record: &TokenRequest) -> Result<String, &'static str> {
    if record.flavor != Flavor::IdentityDomain {
        return Err("unsupported grant");
    }
    let id = record.field("client_id").ok_or("client_id is required")?;
    let presented = record
        .peer_certificate
        .as_deref()
        .ok_or("no client certificate presented (use the secure token endpoint)")?;
    let clients = lock(&state.clients);
    let registered = clients
        .get(id)
        .and_then(|c| c.tls_certificate.as_deref())
        .ok_or("the client has no certificate imported")?;
    if registered != presented {
        return Err("the presented certificate is not the one imported for the client");
    }
    Ok(id.to_string())
}

fn check_secret(state: &IdpState, id: &str, secret: &str) -> bool {
    if let Some(matches) = state.directory.secret_matches(id, secret) {
        return matches;
    }
    lock(&state.clients)
        .get(id)
        .and_then(|c| c.secret.as_deref())
        .is_some_and(|s| s == secret)
}

/// Checks an assertion signed by `client_id`'s registered certificate: RS256,
/// found by `kid` (the certificate alias) or `x5t`, accepted audience, not
/// expired, `iss` = the client, lifetime at most 3600 s, a `jti`.
pub(super) fn verify_assertion(
    state: &IdpState,
    client_id: &str,
    jwt: &str,
) -> Result<serde_json::Value, String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("malformed JWT ({e})"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("algorithm {:?} is not RS256", header.alg));
    }
    let clients = lock(&state.clients);
    let client = clients.get(client_id).ok_or("unknown client")?;
    let key = client
        .keys
        .iter()
        .find(|k| {
            header.kid.as_deref() == Some(k.alias.as_str())
                || header.x5t.as_deref() == Some(k.x5t.as_str())
        })
        .ok_or("no registered certificate matches the kid or x5t")?;
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    let audiences: Vec<String> = lock(&state.audiences).iter().cloned().collect();
    validation.set_audience(&audiences);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.leeway = 5;
    let claims = jsonwebtoken::decode::<serde_json::Value>(jwt, &key.key, &validation)
        .map_err(|e| format!("rejected ({e})"))?
        .claims;
    if claims["iss"].as_str() != Some(client_id) {
        return Err("iss must be the client id".into());
    }
    let (iat, exp) = (claims["iat"].as_u64(), claims["exp"].as_u64());
    match (iat, exp) {
        (Some(iat), Some(exp)) if exp > iat && exp - iat <= 3600 => {}
        _ => return Err("iat/exp missing or lifetime over 3600 seconds".into()),
    }
    if !claims["jti"].is_string() {
        return Err("jti is required".into());
    }
    if let Some(required) = lock(&state.required_audience).as_deref() {
        let named = match &claims["aud"] {
            serde_json::Value::String(a) => a == required,
            serde_json::Value::Array(list) => list.iter().any(|a| a.as_str() == Some(required)),
            _ => false,
        };
        if !named {
            return Err(format!(
                "aud must include the identity domain URL {required}"
            ));
        }
    }
    Ok(claims)
}
