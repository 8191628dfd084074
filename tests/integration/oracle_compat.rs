//! What a real Oracle tenant expects and the RFCs do not say: Basic
//! credentials in Oracle's plain form, assertions addressed to the
//! identity domain's own URL, refresh tokens from OAM without
//! `offline_access`.

use base64::Engine;
use bearer_proxy::emulator::idp::BasicDecoding;

use crate::support::*;

/// A secret with every character that form-urlencoding changes.
const ODD_SECRET: &str = "p+ss/w=rd!%41:x";
const ODD_CLIENT: &str = "odd-secret-client";

async fn odd_secret_proxy(
    idp: &Idp,
    upstream: &Upstream,
    encoding: Option<BasicEncoding>,
) -> Proxy {
    idp.state.register_client(ODD_CLIENT, ODD_SECRET);
    let mut config = ProxyConfig::new(idp, upstream);
    config.client_secret = ODD_SECRET;
    config.client().client_id = Some(ODD_CLIENT.into());
    config.client().client_secret_basic_encoding = encoding;
    config.server().startup_token_wait = ms(500);
    Proxy::start(&config).await
}

fn basic_sent(idp: &Idp) -> String {
    let request = idp.state.requests().pop().expect("a token request");
    let header = request.authorization.expect("Basic credentials");
    let b64 = header.strip_prefix("Basic ").unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    String::from_utf8(raw).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_credentials_are_plain_base64_as_oracle_documents() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    let proxy = odd_secret_proxy(&idp, &upstream, None).await;
    assert_eq!(get_status(proxy.url("/x")).await, 200, "{}", proxy.output());
    assert_eq!(basic_sent(&idp), format!("{ODD_CLIENT}:{ODD_SECRET}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_urlencoded_basic_credentials_when_configured_and_refused_when_not_expected() {
    let idp = Idp::start().await;
    let upstream = Upstream::start().await;
    idp.state
        .set_basic_decoding(ODD_CLIENT, BasicDecoding::FormUrlencoded);
    let rfc = odd_secret_proxy(&idp, &upstream, Some(BasicEncoding::FormUrlencoded)).await;
    assert_eq!(get_status(rfc.url("/x")).await, 200, "{}", rfc.output());
    assert_eq!(
        basic_sent(&idp),
        format!("{ODD_CLIENT}:p%2Bss%2Fw%3Drd%21%2541%3Ax")
    );
    drop(rfc);
    // The identity service reads one form only: plain is refused here.
    let plain = odd_secret_proxy(&idp, &upstream, None).await;
    let r = client().get(plain.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "token_rejected");
    assert_eq!(body["idp_error"], "invalid_client");
}

fn assertion_client(idp: &Idp, audience: Option<Audience>) -> RawClient {
    RawClient {
        client_auth: ClientAuthMethod::PrivateKeyJwt,
        client_secret: None,
        signing_key: Some(RawSigningKey {
            key_file: Some(fixture("client-key.pem")),
            kid: Some(KEY_ALIAS.into()),
            audience,
            ..RawSigningKey::default()
        }),
        ..oic_client(idp)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_name_the_identity_domain_url_by_default() {
    let idp = Idp::start().await;
    // Strict, as identity domains are: the domain URL must be an audience.
    let domain_url = format!("{}/", idp.base_url());
    idp.state.require_audience(&domain_url);
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    *config.client() = assertion_client(&idp, None);
    let proxy = Proxy::start(&config).await;
    assert_eq!(get_status(proxy.url("/x")).await, 200, "{}", proxy.output());
    let request = idp.state.requests().pop().unwrap();
    let jwt = request.field("client_assertion").unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["aud"],
        serde_json::json!([domain_url, "https://identity.oraclecloud.com/"])
    );
    drop(proxy);

    // Only the old sample audience: a strict identity domain refuses it.
    *config.client() = assertion_client(
        &idp,
        Some(Audience::One("https://identity.oraclecloud.com/".into())),
    );
    config.server().startup_token_wait = ms(500);
    let proxy = Proxy::start(&config).await;
    let r = client().get(proxy.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oam_refresh_tokens_come_from_the_domain_setting_not_offline_access() {
    let idp = Idp::start().await;
    idp.state
        .set_token_lifetime(std::time::Duration::from_secs(2));
    let upstream = Upstream::start().await;
    let mut config = ProxyConfig::new(&idp, &upstream);
    *config.client() = RawClient {
        issuer: Issuer::Oam,
        identity_domain_name: Some(OAM_DOMAIN.into()),
        token_url: Some(idp.base_url()),
        grant: GrantKind::Password,
        username: Some(USER.into()),
        password: Some(USER_PASSWORD.into()),
        refresh_token: true,
        ..oic_client(&idp)
    };
    let proxy = Proxy::start(&config).await;
    assert!(
        idp.state
            .wait_for_requests(2, std::time::Duration::from_secs(10))
            .await,
        "a renewal"
    );
    assert_eq!(get_status(proxy.url("/x")).await, 200);
    let log = idp.state.requests();
    assert_eq!(log[0].field("grant_type"), Some("PASSWORD"));
    assert_eq!(
        log[0].field("scope"),
        Some(SCOPE),
        "no offline_access for OAM"
    );
    assert_eq!(
        log[1].field("grant_type"),
        Some("REFRESH_TOKEN"),
        "renewed with the refresh token the domain setting issued"
    );
}
