//! `client_auth: tls_client_auth` and `token_request_params` errors.

use super::client_tls::RESERVED_PARAMS;
use super::tests::*;
use crate::config::raw::{ClientAuthMethod, GrantKind, RawClient, RawConfig, RawSigningKey};
use crate::config::ClientAuth;

/// `good()`'s client authenticating by certificate (the fixture pair).
fn by_certificate(change: impl FnOnce(&mut RawClient)) -> RawConfig {
    client(|c| {
        c.client_secret = None;
        c.client_auth = ClientAuthMethod::TlsClientAuth;
        c.tls_client_cert_file = Some("client-cert.pem".into());
        c.tls_client_key_file = Some("client-key.pem".into());
        change(c);
    })
}

fn param(name: &str) -> RawConfig {
    client(|c| {
        c.token_request_params.insert(name.into(), "x".into());
    })
}

#[test]
fn tls_client_auth_errors() {
    assert_errors(vec![
        (
            "with a secret",
            by_certificate(|c| c.client_secret = Some("s".into())),
            "clients.oic-prod.client_secret: must not be set with client_auth tls_client_auth",
        ),
        (
            "with a secret file",
            by_certificate(|c| c.client_secret_file = Some("client-cert.pem".into())),
            "clients.oic-prod.client_secret: must not be set with client_auth tls_client_auth",
        ),
        (
            "with a signing key",
            by_certificate(|c| {
                c.signing_key = Some(RawSigningKey {
                    key_file: Some("client-key.pem".into()),
                    ..RawSigningKey::default()
                })
            }),
            "clients.oic-prod.signing_key: must not be set with client_auth tls_client_auth",
        ),
        (
            "without a certificate",
            by_certificate(|c| c.tls_client_cert_file = None),
            "clients.oic-prod.tls_client_cert_file: is required with client_auth tls_client_auth",
        ),
        (
            "without a key",
            by_certificate(|c| c.tls_client_key_file = None),
            "clients.oic-prod.tls_client_key_file: is required with client_auth tls_client_auth",
        ),
        (
            "another grant",
            by_certificate(|c| {
                c.grant = GrantKind::Password;
                c.username = Some("u".into());
                c.password = Some("p".into());
            }),
            "clients.oic-prod.grant: must be client_credentials with client_auth tls_client_auth",
        ),
        (
            "key of another certificate",
            by_certificate(|c| c.tls_client_key_file = Some("other-key.pem".into())),
            "clients.oic-prod.tls_client_cert_file: the key does not belong to the certificate",
        ),
        (
            "unreadable certificate",
            by_certificate(|c| c.tls_client_cert_file = Some("/nonexistent/c.pem".into())),
            "clients.oic-prod.tls_client_cert_file: cannot read the file it names",
        ),
        (
            "files without tls_client_auth",
            client(|c| c.tls_client_cert_file = Some("client-cert.pem".into())),
            "clients.oic-prod.tls_client_cert_file: only applies to client_auth tls_client_auth",
        ),
    ]);
}

#[test]
fn every_reserved_parameter_is_refused_with_its_path() {
    assert_eq!(RESERVED_PARAMS.len(), 10);
    let cases: Vec<(String, RawConfig, String)> = RESERVED_PARAMS
        .iter()
        .map(|name| {
            (
                format!("reserved {name}"),
                param(name),
                format!("clients.oic-prod.token_request_params.{name}: is a field the proxy writes itself"),
            )
        })
        .collect();
    assert_errors(
        cases
            .iter()
            .map(|(n, r, e)| (n.as_str(), r.clone(), e.as_str()))
            .collect(),
    );
    assert_errors(vec![(
        "a list value",
        client(|c| {
            c.token_request_params
                .insert("resource".into(), serde_yaml::Value::Sequence(vec![]));
        }),
        "clients.oic-prod.token_request_params.resource: must be a text value",
    )]);
}

#[test]
fn a_certificate_client_and_its_parameters_load_in_order() {
    let raw = by_certificate(|c| {
        c.token_request_params
            .insert("resource".into(), "https://oic.example.com".into());
        c.token_request_params.insert("audience".into(), "a".into());
        c.token_request_params.insert("attempt".into(), 3.into());
    });
    let config = load(&raw.to_yaml(), true).unwrap();
    let client = &config.clients[0];
    assert_eq!(
        client.token_request_params,
        [
            (
                "resource".to_string(),
                "https://oic.example.com".to_string()
            ),
            ("audience".to_string(), "a".to_string()),
            ("attempt".to_string(), "3".to_string()),
        ]
    );
    let ClientAuth::TlsClientAuth { identity } = &client.auth else {
        panic!("authenticates by certificate");
    };
    assert!(identity.not_after > 0);
    assert!(
        !format!("{identity:?}").contains("PRIVATE"),
        "the key is never printed"
    );
    assert!(
        config.files.iter().any(|f| f.ends_with("client-key.pem")),
        "the key file is watched"
    );
}
