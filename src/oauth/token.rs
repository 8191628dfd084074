//! An access token as the proxy holds it: the ready-made header value and
//! the instants that govern its use and renewal.

use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use serde::Deserialize;

use super::error::FetchError;
use crate::config::Secret;

/// The successful answer of a token endpoint, parsed and checked.
pub struct TokenResponse {
    /// Set when the identity service claimed a lifetime over a day and it
    /// was cut to one (a misconfigured or hostile answer).
    pub clamped_from: Option<f64>,
    pub access_token: Secret,
    /// The whole response body, for the `token` command's file.
    pub raw: Secret,
    pub expires_in: Duration,
    pub refresh_token: Option<Secret>,
    pub scope: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("expires_in", &self.expires_in)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .finish()
    }
}

#[derive(Deserialize)]
struct WireTokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
    scope: Option<String>,
}

impl TokenResponse {
    /// Parses a 200 body. `expires_in` may be a number or a numeric string
    /// (both occur in the wild).
    pub fn parse(body: &[u8]) -> Result<Self, FetchError> {
        let wire: WireTokenResponse = serde_json::from_slice(body).map_err(|e| {
            FetchError::InvalidResponse(format!(
                "body is not a JSON token response ({})",
                e.classify_name()
            ))
        })?;
        let access_token = wire
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| FetchError::InvalidResponse("no access_token".into()))?;
        if access_token.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(FetchError::InvalidResponse(
                "access_token contains characters not allowed in a header".into(),
            ));
        }
        if let Some(tt) = &wire.token_type {
            if !tt.eq_ignore_ascii_case("bearer") {
                return Err(FetchError::InvalidResponse(format!(
                    "token_type {tt:?} is not Bearer"
                )));
            }
        }
        let seconds = match &wire.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_f64(),
            Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| FetchError::InvalidResponse("expires_in missing or not a number".into()))?;
        if !(seconds.is_finite() && seconds >= 1.0) {
            return Err(FetchError::InvalidResponse(format!(
                "expires_in {seconds} is not a positive lifetime"
            )));
        }
        let clamped_from = (seconds > MAX_LIFETIME.as_secs_f64()).then_some(seconds);
        Ok(TokenResponse {
            clamped_from,
            raw: Secret::new(String::from_utf8_lossy(body).into_owned()),
            access_token: Secret::new(access_token),
            expires_in: Duration::from_secs_f64(seconds.min(MAX_LIFETIME.as_secs_f64())),
            refresh_token: wire
                .refresh_token
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            scope: wire.scope,
        })
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected field types",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// The longest lifetime believed; Oracle's tokens live an hour by default.
pub const MAX_LIFETIME: Duration = Duration::from_secs(86_400);

/// The longest safety margin kept before expiry: a token is never injected
/// within this margin of its expiry (clock skew, time in flight).
const MAX_SAFETY_MARGIN: Duration = Duration::from_secs(5);

/// The claims of a JWT, decoded but not verified: for telling an operator
/// what a token says (`aud`, `scope`, `exp`), never for trusting it.
/// `None` for anything but a JWT.
pub fn unverified_claims(jwt: &str) -> Option<serde_json::Value> {
    jsonwebtoken::dangerous::insecure_decode_claims::<serde_json::Value>(jwt).ok()
}

/// [`unverified_claims`] of the token in a `Bearer` header value.
pub fn bearer_claims(authorization: &HeaderValue) -> Option<serde_json::Value> {
    unverified_claims(authorization.to_str().ok()?.strip_prefix("Bearer ")?)
}

/// A token in the cache.
pub struct AccessToken {
    header: HeaderValue,
    /// Last instant at which the token may be put on a request.
    pub usable_until: Instant,
    /// When the background refresher renews it.
    pub renew_at: Instant,
    pub lifetime: Duration,
    pub expires_at_unix: f64,
    pub fetched_at_unix: f64,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("header", &"[redacted]")
            .field("lifetime", &self.lifetime)
            .field("expires_at_unix", &self.expires_at_unix)
            .finish()
    }
}

impl AccessToken {
    /// Schedules renewal `refresh_before` ahead of expiry (at 80 % of the
    /// lifetime for tokens that live less than 5 × `refresh_before`), minus
    /// up to 5 % jitter so that clients fetched together do not renew together.
    pub fn new(response: &TokenResponse, refresh_before: Duration, fetched: Instant) -> Self {
        let mut header =
            HeaderValue::try_from(format!("Bearer {}", response.access_token.expose()))
                .expect("token bytes were checked to be visible ASCII");
        header.set_sensitive(true);
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        Self::scheduled(
            header,
            response.expires_in,
            Duration::ZERO,
            refresh_before,
            fetched,
            now_unix,
        )
    }

    /// A token another replica fetched at `entry.fetched_at`: its lifetime
    /// counts from then, its renewal is planned as if fetched here (with
    /// this replica's own jitter). `None` if the entry's token could not be
    /// a header value.
    /// Takes the entry's parts, not the shared cache's type: the cache
    /// stands above tokens.
    pub fn from_shared(
        access_token: &str,
        fetched_at: f64,
        expires_at: f64,
        refresh_before: Duration,
    ) -> Option<Self> {
        if !access_token.bytes().all(|b| b.is_ascii_graphic()) || access_token.is_empty() {
            return None;
        }
        let mut header = HeaderValue::try_from(format!("Bearer {access_token}")).ok()?;
        header.set_sensitive(true);
        let lifetime = Duration::try_from_secs_f64(expires_at - fetched_at).ok()?;
        let elapsed = Duration::try_from_secs_f64((crate::clock::unix_now() - fetched_at).max(0.0))
            .unwrap_or_default();
        Some(Self::scheduled(
            header,
            lifetime,
            elapsed,
            refresh_before,
            Instant::now(),
            fetched_at,
        ))
    }

    /// `elapsed`: how long ago, at `now`, the token was fetched.
    fn scheduled(
        header: HeaderValue,
        lifetime: Duration,
        elapsed: Duration,
        refresh_before: Duration,
        now: Instant,
        fetched_at_unix: f64,
    ) -> Self {
        // `refresh_before` ahead of expiry while that is past 80 % of the
        // lifetime; for tokens short next to `refresh_before`, at 80 %.
        // Both agree at refresh_before = 20 % of the lifetime.
        let planned = if refresh_before < lifetime.mul_f64(0.2) {
            lifetime - refresh_before
        } else {
            lifetime.mul_f64(0.8)
        };
        let jitter = lifetime.mul_f64(0.05 * rand::random::<f64>());
        let renew_in = planned.saturating_sub(jitter);
        let margin = MAX_SAFETY_MARGIN.min(lifetime / 10);
        AccessToken {
            header,
            usable_until: now + (lifetime - margin).saturating_sub(elapsed),
            renew_at: now + renew_in.saturating_sub(elapsed),
            lifetime,
            expires_at_unix: fetched_at_unix + lifetime.as_secs_f64(),
            fetched_at_unix,
        }
    }

    /// `Bearer <token>`, marked sensitive so `Debug` of a header map hides it.
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }

    pub fn is_usable(&self, now: Instant) -> bool {
        now < self.usable_until
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_and_numeric_strings() {
        let r = TokenResponse::parse(
            br#"{"access_token":"abc","token_type":"Bearer","expires_in":3600}"#,
        )
        .unwrap();
        assert_eq!(r.expires_in, Duration::from_secs(3600));
        let r = TokenResponse::parse(
            br#"{"access_token":"abc","token_type":"bearer","expires_in":"120"}"#,
        )
        .unwrap();
        assert_eq!(r.expires_in, Duration::from_secs(120));
    }

    #[test]
    fn absurd_lifetimes_are_clamped_to_a_day() {
        let r = TokenResponse::parse(
            br#"{"access_token":"a","token_type":"Bearer","expires_in":31536000}"#,
        )
        .unwrap();
        assert_eq!(r.expires_in, MAX_LIFETIME);
        assert_eq!(r.clamped_from, Some(31536000.0));
        for bad in [r#"-5"#, r#""abc""#, r#"null"#, r#"1e400"#] {
            let body =
                format!(r#"{{"access_token":"a","token_type":"Bearer","expires_in":{bad}}}"#);
            assert_eq!(
                TokenResponse::parse(body.as_bytes()).unwrap_err().outcome(),
                "invalid_response",
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_bad_responses_without_echoing_them() {
        for body in [
            &b"<html>oops</html>"[..],
            br#"{"token_type":"Bearer","expires_in":10}"#,
            br#"{"access_token":"a","token_type":"mac","expires_in":10}"#,
            br#"{"access_token":"a","token_type":"Bearer"}"#,
            br#"{"access_token":"a","token_type":"Bearer","expires_in":0}"#,
            br#"{"access_token":"a b","token_type":"Bearer","expires_in":10}"#,
        ] {
            let e = TokenResponse::parse(body).unwrap_err();
            assert_eq!(e.outcome(), "invalid_response");
            assert!(!e.to_string().contains("oops"));
        }
    }

    #[test]
    fn renewal_is_before_expiry_and_at_most_80_percent() {
        let r = TokenResponse::parse(
            br#"{"access_token":"t","token_type":"Bearer","expires_in":3600}"#,
        )
        .unwrap();
        let now = Instant::now();
        let t = AccessToken::new(&r, Duration::from_secs(120), now);
        assert!(t.renew_at <= now + Duration::from_secs(3480));
        assert!(t.renew_at >= now + Duration::from_secs(3480 - 180));
        assert_eq!(t.usable_until, now + Duration::from_secs(3595));
        let short =
            TokenResponse::parse(br#"{"access_token":"t","token_type":"Bearer","expires_in":10}"#)
                .unwrap();
        let t = AccessToken::new(&short, Duration::from_secs(120), now);
        assert!(t.renew_at <= now + Duration::from_secs(8));
        assert_eq!(t.usable_until, now + Duration::from_secs(9));
        assert!(format!("{t:?}").contains("redacted"));
        assert!(format!("{:?}", t.header()).contains("Sensitive"));
    }
}
