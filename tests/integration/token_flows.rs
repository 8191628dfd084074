//! Every grant × client authentication on both issuers, assertion
//! contents, refresh-token rotation and fallback.

use std::time::Duration;

use base64::Engine;
use bearer_proxy::emulator::idp::{Flavor, TokenRequest};
use serde_json::Value;
use sha1::Digest as _;

use crate::support::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Iss {
    Idd,
    Oam,
}
#[derive(Clone, Copy, Debug, PartialEq)]
enum G {
    ClientCredentials,
    Password,
    JwtBearer,
}
#[derive(Clone, Copy, Debug, PartialEq)]
enum A {
    Basic,
    Post,
    PrivateKeyJwt,
}

struct Combo(Iss, G, A);

impl Combo {
    fn name(&self) -> String {
        format!("{:?}-{:?}-{:?}", self.0, self.1, self.2).to_lowercase()
    }

    /// The client. Identity-domain clients name the key by `kid` and
    /// use the PKCS#8 key; OAM clients by `x5t` (cert_file only) and the
    /// PKCS#1 key, so both lookups and both key encodings are exercised.
    fn client(&self, idp: &Idp) -> RawClient {
        let Combo(iss, grant, auth) = self;
        let mut c = RawClient {
            client_id: Some(CLIENT_ID.into()),
            scopes: vec![SCOPE.into()],
            ..RawClient::default()
        };
        match iss {
            Iss::Idd => {
                c.issuer = Issuer::IdentityDomain;
                c.token_url = Some(idp.token_url());
            }
            // Only the host: the standard OAM path is added.
            Iss::Oam => {
                c.issuer = Issuer::Oam;
                c.identity_domain_name = Some(OAM_DOMAIN.into());
                c.token_url = Some(idp.base_url());
            }
        }
        c.client_auth = match auth {
            A::Basic => ClientAuthMethod::ClientSecretBasic,
            A::Post => ClientAuthMethod::ClientSecretPost,
            A::PrivateKeyJwt => ClientAuthMethod::PrivateKeyJwt,
        };
        if *auth != A::PrivateKeyJwt {
            c.client_secret = Some("${TEST_CLIENT_SECRET}".into());
        }
        match grant {
            G::ClientCredentials => c.grant = GrantKind::ClientCredentials,
            G::Password => {
                c.grant = GrantKind::Password;
                c.username = Some(USER.into());
                c.password = Some(USER_PASSWORD.into());
            }
            G::JwtBearer => {
                c.grant = GrantKind::JwtBearer;
                c.subject = Some(USER.into());
            }
        }
        if *auth == A::PrivateKeyJwt || *grant == G::JwtBearer {
            c.signing_key = Some(match iss {
                Iss::Idd => RawSigningKey {
                    key_file: Some(fixture("client-key.pem")),
                    kid: Some(KEY_ALIAS.into()),
                    ..RawSigningKey::default()
                },
                Iss::Oam => RawSigningKey {
                    key_file: Some(fixture("client-key-pkcs1.pem")),
                    cert_file: Some(fixture("client-cert.pem")),
                    ..RawSigningKey::default()
                },
            });
        }
        c
    }

    /// Did the emulator see this combination, spelled as the issuer wants?
    fn matches(&self, r: &TokenRequest) -> bool {
        let Combo(iss, grant, auth) = self;
        let flavor = if *iss == Iss::Oam {
            Flavor::Oam
        } else {
            Flavor::IdentityDomain
        };
        let grant_type = match (iss, grant) {
            (Iss::Idd, G::ClientCredentials) => "client_credentials",
            (Iss::Idd, G::Password) => "password",
            (Iss::Idd, G::JwtBearer) => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            (Iss::Oam, G::ClientCredentials) => "CLIENT_CREDENTIALS",
            (Iss::Oam, G::Password) => "PASSWORD",
            (Iss::Oam, G::JwtBearer) => "JWT_BEARER",
        };
        let auth_ok = match auth {
            A::Basic => {
                r.authorization
                    .as_deref()
                    .is_some_and(|a| a.starts_with("Basic "))
                    && r.field("client_secret").is_none()
            }
            A::Post => r.authorization.is_none() && r.field("client_secret") == Some(CLIENT_SECRET),
            A::PrivateKeyJwt => {
                r.authorization.is_none()
                    && r.field("client_assertion").is_some()
                    && r.field("client_assertion_type")
                        == Some(if *iss == Iss::Oam {
                            "JWT_BEARER"
                        } else {
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
                        })
            }
        };
        let oam_header = (r.identity_domain.as_deref() == Some(OAM_DOMAIN)) == (*iss == Iss::Oam);
        r.flavor == flavor && r.field("grant_type") == Some(grant_type) && auth_ok && oam_header
    }
}

fn all_combos() -> Vec<Combo> {
    let mut out = Vec::new();
    for iss in [Iss::Idd, Iss::Oam] {
        for grant in [G::ClientCredentials, G::Password, G::JwtBearer] {
            for auth in [A::Basic, A::Post, A::PrivateKeyJwt] {
                // OAM takes the secret only in the Authorization header;
                // the config check refuses this pair (tested in config_errors).
                if iss == Iss::Oam && auth == A::Post {
                    continue;
                }
                out.push(Combo(iss, grant, auth));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grant_and_client_auth_works_end_to_end_on_both_issuers() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let combos = all_combos();
    let mut config = ProxyConfig::new(&idp, &upstream);
    config.raw.clients = combos.iter().map(|c| (c.name(), c.client(&idp))).collect();
    config.raw.routes = combos
        .iter()
        .map(|c| {
            let n = c.name();
            RawRoute::open(&n, &format!("/{n}/"), &upstream.url(), &n)
        })
        .collect();
    let proxy = Proxy::start(&config).await;
    let client = client();
    let log = idp.state.requests();
    for combo in &combos {
        let r = client
            .get(proxy.url(&format!("/{}/x", combo.name())))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{}: {}",
            combo.name(),
            r.text().await.unwrap()
        );
        let auth = upstream.last_authorization();
        let claims = verified_claims(&auth);
        let expected_sub = if combo.1 == G::ClientCredentials {
            CLIENT_ID
        } else {
            USER
        };
        assert_eq!(claims["sub"], expected_sub, "{}", combo.name());
        assert_eq!(claims["client_id"], CLIENT_ID);
        let seen: Vec<&TokenRequest> = log.iter().filter(|r| combo.matches(r)).collect();
        assert_eq!(
            seen.len(),
            1,
            "{}: the emulator saw it exactly once, spelled right",
            combo.name()
        );
        assert_eq!(seen[0].status, 200);
    }
    assert_eq!(log.len(), combos.len(), "one token request per client");
}

fn decode_part(jwt: &str, part: usize) -> Value {
    let b64 = jwt.split('.').nth(part).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_carry_every_header_field_and_claim_and_are_fresh_each_time() {
    let idp = Idp::start().await;
    idp.state.accept_audience("https://idcs-test.example/");
    idp.state.set_token_lifetime(Duration::from_secs(2));
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    *config.client() = RawClient {
        token_url: Some(idp.token_url()),
        client_id: Some(CLIENT_ID.into()),
        client_auth: ClientAuthMethod::PrivateKeyJwt,
        grant: GrantKind::JwtBearer,
        subject: Some(USER.into()),
        scopes: vec![SCOPE.into()],
        signing_key: Some(RawSigningKey {
            key_file: Some(fixture("client-key.pem")),
            cert_file: Some(fixture("client-cert.pem")),
            kid: Some(KEY_ALIAS.into()),
            audience: Some(Audience::Many(vec![
                "https://identity.oraclecloud.com/".into(),
                "https://idcs-test.example/".into(),
            ])),
            lifetime: Some(Duration::from_secs(120)),
        }),
        ..RawClient::default()
    };
    let proxy = Proxy::start(&config).await;
    assert!(
        idp.state
            .wait_for_requests(2, Duration::from_secs(10))
            .await,
        "a renewal"
    );
    drop(proxy);

    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_file(fixture("client-cert.pem")).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let x5t = b64.encode(sha1::Sha1::digest(der.as_ref()));
    let x5t_s256 = b64.encode(<sha2::Sha256 as sha2::Digest>::digest(der.as_ref()));

    let mut jtis = Vec::new();
    for request in idp.state.requests().iter().take(2) {
        assert_eq!(request.status, 200);
        for (field, expected_sub) in [("client_assertion", CLIENT_ID), ("assertion", USER)] {
            let jwt = request
                .field(field)
                .unwrap_or_else(|| panic!("{field} sent"));
            let header = decode_part(jwt, 0);
            assert_eq!(header["alg"], "RS256", "{field}");
            assert_eq!(header["typ"], "JWT", "{field}");
            assert_eq!(header["kid"], KEY_ALIAS, "{field}");
            assert_eq!(header["x5t"], x5t, "{field}");
            assert_eq!(header["x5t#S256"], x5t_s256, "{field}");
            let claims = decode_part(jwt, 1);
            assert_eq!(claims["iss"], CLIENT_ID, "{field}");
            assert_eq!(claims["sub"], expected_sub, "{field}");
            assert_eq!(
                claims["aud"],
                serde_json::json!([
                    "https://identity.oraclecloud.com/",
                    "https://idcs-test.example/"
                ])
            );
            let (iat, exp) = (
                claims["iat"].as_u64().unwrap(),
                claims["exp"].as_u64().unwrap(),
            );
            assert_eq!(exp - iat, 120, "{field} lifetime");
            let now = bearer_proxy::unix_now() as u64;
            assert!(iat <= now && iat + 60 > now, "{field} iat is now");
            jtis.push(claims["jti"].as_str().unwrap().to_string());
        }
    }
    let unique: std::collections::HashSet<_> = jtis.iter().collect();
    assert_eq!(unique.len(), 4, "a fresh jti for every assertion: {jtis:?}");
}

fn refresh_client(idp: &Idp, iss: Iss) -> RawClient {
    let mut c = password_refresh_client(idp);
    if iss == Iss::Oam {
        c.issuer = Issuer::Oam;
        c.identity_domain_name = Some(OAM_DOMAIN.into());
        c.token_url = Some(idp.base_url());
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_rotate_over_several_renewals_on_both_issuers() {
    for iss in [Iss::Idd, Iss::Oam] {
        let idp = Idp::start().await;
        idp.state.set_token_lifetime(Duration::from_secs(2));
        let upstream = Upstream::start().await;
        let mut config = ProxyConfig::new(&idp, &upstream);
        *config.client() = refresh_client(&idp, iss);
        let proxy = Proxy::start(&config).await;
        assert!(
            idp.state
                .wait_for_requests(4, Duration::from_secs(15))
                .await,
            "{iss:?}: three renewals"
        );
        assert_eq!(get_status(proxy.url("/x")).await, 200);
        drop(proxy);

        let log = idp.state.requests();
        let (primary, refresh) = match iss {
            Iss::Idd => ("password", "refresh_token"),
            Iss::Oam => ("PASSWORD", "REFRESH_TOKEN"),
        };
        let first = &log[0];
        assert_eq!(first.field("grant_type"), Some(primary));
        // Identity domains issue refresh tokens for offline_access; OAM by
        // its identity domain's setting, and a scope it does not know
        // would be refused.
        assert_eq!(
            first
                .field("scope")
                .unwrap()
                .split(' ')
                .any(|s| s == "offline_access"),
            iss == Iss::Idd,
            "{iss:?}"
        );
        let mut presented = Vec::new();
        for r in &log[1..4] {
            assert_eq!(r.field("grant_type"), Some(refresh), "{iss:?}");
            // The emulator's refresh tokens are single use: a 200 proves the
            // proxy sent the newest one.
            assert_eq!(r.status, 200, "{iss:?}");
            presented.push(r.field("refresh_token").unwrap().to_string());
        }
        presented.dedup();
        assert_eq!(
            presented.len(),
            3,
            "{iss:?}: each renewal used a new refresh token"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_falls_back_to_the_primary_grant_once_and_is_counted() {
    let idp = Idp::start().await;
    idp.state.set_token_lifetime(Duration::from_secs(2));
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    *config.client() = refresh_client(&idp, Iss::Idd);
    let proxy = Proxy::start(&config).await;
    // Renewals may already have used a refresh token or two by now (a slow
    // start); whatever the proxy holds now is refused from here on.
    idp.state.revoke_refresh_tokens();
    let fallback = "bearer_proxy_token_refresh_fallback_total{client=\"oic\"}";
    assert!(
        eventually(Duration::from_secs(10), || async {
            proxy.metric(fallback).await == 1.0
        })
        .await
    );
    assert_eq!(get_status(proxy.url("/x")).await, 200);

    let refused = idp
        .state
        .requests()
        .iter()
        .position(|r| r.field("grant_type") == Some("refresh_token") && r.status == 400)
        .expect("a refused refresh");
    // The fallback request itself.
    assert!(
        idp.state
            .wait_for_requests(refused as u64 + 2, Duration::from_secs(5))
            .await
    );
    let log = idp.state.requests();
    assert_eq!(
        (log[0].field("grant_type"), log[0].status),
        (Some("password"), 200)
    );
    assert!(log[1..refused]
        .iter()
        .all(|r| r.field("grant_type") == Some("refresh_token") && r.status == 200));
    let next = &log[refused + 1];
    assert_eq!(
        (next.field("grant_type"), next.status),
        (Some("password"), 200),
        "fell back at once"
    );
    let m = proxy.metrics().await;
    assert_eq!(metric_value(&m, "bearer_proxy_token_fetch_total{client=\"oic\",grant=\"refresh_token\",outcome=\"idp_rejected\"}"), 1.0);
    assert!(
        metric_value(
            &m,
            "bearer_proxy_token_fetch_total{client=\"oic\",grant=\"password\",outcome=\"success\"}"
        ) >= 2.0
    );
}
