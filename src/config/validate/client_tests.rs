//! Client and signing-key errors (the rest of the tables are in
//! `tests.rs`, whose helpers these use).

use std::time::Duration;

use super::tests::*;
use crate::config::raw::{Audience, BasicEncoding, ClientAuthMethod, GrantKind, Issuer};
use crate::config::Config;

#[test]
fn client_errors() {
    assert_errors(vec![
        ("plain http token_url", client(|c| c.token_url = Some("http://idcs-1.identity.oraclecloud.com/oauth2/v1/token".into())), "clients.oic-prod.token_url: must use https"),
        ("no token_url", client(|c| c.token_url = None), "clients.oic-prod.token_url: is required"),
        ("empty client_id", client(|c| c.client_id = Some(" ".into())), "clients.oic-prod.client_id: must not be empty"),
        ("bad client name", with(|r| { let c = r.clients.remove("oic-prod").unwrap(); r.clients.insert("oic prod".into(), c); r.routes[0].client = Some("oic prod".into()); }), "clients.oic prod: client names may use only"),
        ("secret twice", client(|c| c.client_secret_file = Some("secret".into())), "clients.oic-prod.client_secret: set either client_secret or client_secret_file, not both"),
        ("no secret", client(|c| c.client_secret = None), "clients.oic-prod.client_secret: is required (or client_secret_file)"),
        ("unreadable ca_file", client(|c| c.ca_file = Some("/nonexistent/ca.pem".into())), "clients.oic-prod.ca_file: cannot read the file it names"),
        ("endless secret file", client(|c| { c.client_secret = None; c.client_secret_file = Some("/dev/zero".into()); }), "clients.oic-prod.client_secret_file: cannot read the file it names: larger than 4 MiB"),
        ("scope with a space", client(|c| c.scopes = vec!["a b".into()]), "clients.oic-prod.scopes[0]: is not a scope"),
        ("mixed resource servers", client(|c| c.scopes.push("https://other.example.com:443/ic/api/".into())), "clients.oic-prod.scopes: scopes of different resource servers cannot be requested in one token (Oracle refuses it): \"https://oic.example.com:443urn:opc:resource:consumer::all\" belongs to https://oic.example.com:443, \"https://other.example.com:443/ic/api/\" belongs to https://other.example.com:443"),
        ("retry initial over max", client(|c| { c.retry.initial = Some(Duration::from_secs(9)); c.retry.max = Some(Duration::from_secs(1)); }), "clients.oic-prod.retry: initial must not be greater than max"),
        ("refresh_token with client_credentials", client(|c| c.refresh_token = true), "clients.oic-prod.refresh_token: the client_credentials grant never issues refresh tokens"),
        ("username with client_credentials", client(|c| c.username = Some("u".into())), "clients.oic-prod.username: only applies to grant password or jwt_bearer"),
        ("password without username", client(|c| { c.grant = GrantKind::Password; c.password = Some("p".into()); }), "clients.oic-prod.username: is required when grant is password"),
        ("password without password", client(|c| { c.grant = GrantKind::Password; c.username = Some("u".into()); }), "clients.oic-prod.password: is required (or password_file) when grant is password"),
        ("password with subject", client(|c| { c.grant = GrantKind::Password; c.username = Some("u".into()); c.password = Some("p".into()); c.subject = Some("s".into()); }), "clients.oic-prod.subject: only applies to grant jwt_bearer"),
        ("jwt_bearer without subject", client(|c| { c.grant = GrantKind::JwtBearer; c.signing_key = Some(key(|_| {})); }), "clients.oic-prod.subject: is required when grant is jwt_bearer"),
        ("jwt_bearer without signing_key", client(|c| { c.grant = GrantKind::JwtBearer; c.subject = Some("alice".into()); }), "clients.oic-prod.signing_key: grant jwt_bearer needs signing_key"),
        ("jwt_bearer with username", client(|c| { c.grant = GrantKind::JwtBearer; c.subject = Some("alice".into()); c.signing_key = Some(key(|_| {})); c.username = Some("u".into()); }), "clients.oic-prod.username: only applies to grant password"),
        ("private_key_jwt without signing_key", client(|c| c.client_auth = ClientAuthMethod::PrivateKeyJwt), "clients.oic-prod.signing_key: client_auth private_key_jwt needs signing_key"),
        ("basic encoding with client_secret_post", client(|c| { c.client_auth = ClientAuthMethod::ClientSecretPost; c.client_secret_basic_encoding = Some(BasicEncoding::FormUrlencoded); }), "clients.oic-prod.client_secret_basic_encoding: only applies to client_auth client_secret_basic"),
        ("oam refresh tokens with jwt_bearer", client(|c| { c.issuer = Issuer::Oam; c.identity_domain_name = Some("D".into()); c.grant = GrantKind::JwtBearer; c.subject = Some("alice".into()); c.signing_key = Some(key(|_| {})); c.refresh_token = true; }), "clients.oic-prod.refresh_token: Oracle Access Manager issues refresh tokens only for the password and authorization-code grants"),
        ("oam without identity_domain_name", client(|c| c.issuer = Issuer::Oam), "clients.oic-prod.identity_domain_name: is required for issuer oam"),
        ("identity_domain_name without oam", client(|c| c.identity_domain_name = Some("D".into())), "clients.oic-prod.identity_domain_name: only applies to issuer oam"),
        ("oam with client_secret_post", client(|c| { c.issuer = Issuer::Oam; c.identity_domain_name = Some("D".into()); c.client_auth = ClientAuthMethod::ClientSecretPost; }), "clients.oic-prod.client_auth: Oracle Access Manager authenticates clients with client_secret_basic or private_key_jwt"),
    ]);
}

#[test]
fn signing_key_errors() {
    let cert = fixtures().join("client-cert.pem");
    assert_errors(vec![
        (
            "no key file",
            private_key_jwt(key(|k| k.key_file = None)),
            "clients.oic-prod.signing_key.key_file: is required",
        ),
        (
            "unreadable key file",
            private_key_jwt(key(|k| k.key_file = Some("/nonexistent/k.pem".into()))),
            "clients.oic-prod.signing_key.key_file: cannot read the file it names",
        ),
        (
            "key file that is not a key",
            private_key_jwt(key(|k| k.key_file = Some(cert.clone()))),
            "the file it names is not an RSA private key in PEM form",
        ),
        (
            "lifetime over 3600s",
            private_key_jwt(key(|k| k.lifetime = Some(Duration::from_secs(7200)))),
            "clients.oic-prod.signing_key.lifetime: 2h is out of range",
        ),
        (
            "lifetime under Oracle's 60s",
            private_key_jwt(key(|k| k.lifetime = Some(Duration::from_secs(30)))),
            "clients.oic-prod.signing_key.lifetime: 30s is out of range: assertions must live at least 60s",
        ),
        (
            "neither kid nor cert_file",
            private_key_jwt(key(|k| k.kid = None)),
            "clients.oic-prod.signing_key: set kid",
        ),
        (
            "empty audience",
            private_key_jwt(key(|k| k.audience = Some(Audience::Many(vec![])))),
            "clients.oic-prod.signing_key.audience: must be a non-empty string or list of strings",
        ),
    ]);
}

#[test]
fn assertion_audience_defaults_to_the_domain_url_then_oracles_sample() {
    let cert = fixtures().join("client-cert.pem");
    let with_cert = load(
        &private_key_jwt(key(|k| {
            k.kid = None;
            k.cert_file = Some(cert);
        }))
        .to_yaml(),
        true,
    )
    .unwrap();
    let audience = |config: &Config| match &config.clients[0].auth {
        crate::config::ClientAuth::PrivateKeyJwt { key } => {
            assert!(key.kid.is_some() || key.x5t.is_some());
            key.audience.clone()
        }
        _ => panic!("private_key_jwt"),
    };
    let crate::config::ClientAuth::PrivateKeyJwt { key: signing } = &with_cert.clients[0].auth
    else {
        panic!("private_key_jwt");
    };
    assert!(
        signing.x5t.is_some() && signing.x5t_s256.is_some(),
        "cert_file adds the thumbprints"
    );
    assert_eq!(
        audience(&with_cert),
        [
            "https://idcs-1.identity.oraclecloud.com/",
            crate::config::defaults::AUDIENCE
        ],
        "identity domains: the domain URL first, then Oracle's sample audience"
    );
    let mut oam = private_key_jwt(key(|_| {}));
    let c = oam.clients.get_mut("oic-prod").unwrap();
    c.issuer = Issuer::Oam;
    c.identity_domain_name = Some("D".into());
    let oam = load(&oam.to_yaml(), true).unwrap();
    assert_eq!(
        audience(&oam),
        [crate::config::defaults::AUDIENCE],
        "OAM: unchanged"
    );
}
