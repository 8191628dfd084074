//! Who may use a route. Checked before any token is touched: a route hands
//! out the roles of an Oracle application, so it is closed unless its
//! configuration says who may pass.
//!
//! Rules combine as: the source address must be in `allow_cidrs` when that
//! is set, and the caller must pass at least one configured credential
//! method (API key, Basic user, client certificate subject). `allow_any`
//! opens the route to anyone who can reach the listener.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use sha2::{Digest, Sha256};

mod api_keys;
mod subjects;
pub use api_keys::{api_key_line, ApiKeys};
pub use subjects::CallerSubjects;

/// How long a successful bcrypt check is remembered, so a Basic-auth client
/// does not cost a bcrypt (tens of milliseconds of CPU) per request.
const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);
const BASIC_CACHE_MAX: usize = 10_000;

/// The outcome of an access check. `who` names the caller for logs (a key
/// or user name, never a credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { who: Arc<str> },
    Deny(Denial),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// 401 (credentials missing or wrong) or 403 (address, certificate).
    pub status: u16,
    /// The `reason` label of `bearer_proxy_access_denied_total`.
    pub reason: &'static str,
    pub challenge: Option<HeaderValue>,
}

/// The `name:value` lines of a credentials file with their 1-based line
/// numbers, blank lines and `#` comments skipped; a line without a colon
/// is an error saying the `expected` form.
fn colon_lines<'a>(
    text: &'a str,
    expected: &'static str,
) -> impl Iterator<Item = Result<(usize, &'a str, &'a str), String>> + 'a {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(move |(n, line)| {
            line.split_once(':')
                .map(|(name, value)| (n, name, value))
                .ok_or_else(|| format!("line {n}: expected {expected}"))
        })
}

/// Users from a bcrypt htpasswd file (`user:$2y$…` per line).
pub struct BasicUsers {
    users: HashMap<String, String>,
    /// SHA-256 of "user\0password" → when the check succeeded.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

impl std::fmt::Debug for BasicUsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicUsers")
            .field("users", &self.users.len())
            .finish()
    }
}

impl BasicUsers {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for entry in colon_lines(text, "user:bcrypt-hash") {
            let (n, user, hash) = entry?;
            if !(hash.starts_with("$2a$") || hash.starts_with("$2b$") || hash.starts_with("$2y$")) {
                return Err(format!(
                    "line {n} (user {user:?}): only bcrypt hashes are accepted (htpasswd -B); MD5, SHA-1 and crypt hashes are too weak"
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err("no users in the file".into());
        }
        Ok(BasicUsers {
            users,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// Checks `user`/`password`; bcrypt runs on a blocking thread so it does
    /// not stall the proxy's workers.
    async fn verify(&self, user: &str, password: &str) -> bool {
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0u8])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        let now = Instant::now();
        {
            let cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache
                .get(&key)
                .is_some_and(|t| now.duration_since(*t) < BASIC_CACHE_TTL)
            {
                return true;
            }
        }
        let Some(hash) = self.users.get(user).cloned() else {
            return false;
        };
        let password = password.to_string();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= BASIC_CACHE_MAX {
                cache.retain(|_, t| now.duration_since(*t) < BASIC_CACHE_TTL);
                if cache.len() >= BASIC_CACHE_MAX {
                    cache.clear();
                }
            }
            cache.insert(key, now);
        }
        ok
    }
}

/// A route's access rules, validated at load.
#[derive(Debug, Default)]
pub struct AccessPolicy {
    pub allow_any: bool,
    pub allow_cidrs: Vec<IpNet>,
    pub api_keys: Option<ApiKeys>,
    pub basic_users: Option<BasicUsers>,
    /// The caller's Basic credentials go to the identity service (through
    /// an `on_behalf_of: caller` password client): only their presence is
    /// checked here.
    pub identity_service_basic: bool,
    pub client_cert_subjects: Vec<String>,
}

/// What the request offers to the check.
pub struct Caller<'a> {
    pub headers: &'a HeaderMap,
    pub address: Option<IpAddr>,
    /// Subject DN of a verified client certificate (mTLS listeners only).
    pub cert_subject: Option<&'a str>,
}

impl AccessPolicy {
    fn has_credential_methods(&self) -> bool {
        self.api_keys.is_some()
            || self.basic_users.is_some()
            || self.identity_service_basic
            || !self.client_cert_subjects.is_empty()
    }

    /// Whether every caller this policy admits has a name (not `any` or
    /// `address`): what an `on_behalf_of: caller` client needs.
    pub fn names_callers(&self) -> bool {
        !self.allow_any && self.has_credential_methods()
    }

    /// The header the client's API key comes in, to strip before forwarding.
    pub fn api_key_header(&self) -> Option<&HeaderName> {
        self.api_keys.as_ref().map(|k| &k.header)
    }

    pub async fn check(&self, caller: &Caller<'_>) -> Decision {
        if self.allow_any {
            return Decision::Allow { who: "any".into() };
        }
        if !self.allow_cidrs.is_empty() {
            let inside = caller.address.is_some_and(|ip| {
                self.allow_cidrs
                    .iter()
                    .any(|net| net.contains(&canonical(ip)))
            });
            if !inside {
                return self.deny(403, "address");
            }
            if !self.has_credential_methods() {
                return Decision::Allow {
                    who: "address".into(),
                };
            }
        }
        if self.identity_service_basic {
            let who = with_basic_credentials(caller.headers, |user, _| {
                (!user.is_empty()).then(|| Arc::from(format!("user:{user}")))
            });
            return match who.flatten() {
                Some(who) => Decision::Allow { who },
                None => self.deny(401, "no_credentials"),
            };
        }
        let mut offered = false;
        if let Some(subject) = caller.cert_subject {
            if self
                .client_cert_subjects
                .iter()
                .any(|s| subject_matches(s, subject))
            {
                return Decision::Allow {
                    who: format!("cert:{subject}").into(),
                };
            }
        }
        if let Some(keys) = &self.api_keys {
            if let Some(value) = caller.headers.get(&keys.header) {
                offered = true;
                if let Some(who) = keys.find(value.as_bytes()) {
                    return Decision::Allow { who };
                }
            }
        }
        if let Some(users) = &self.basic_users {
            if let Some((user, password)) = basic_credentials(caller.headers) {
                offered = true;
                if users.verify(&user, &password).await {
                    return Decision::Allow {
                        who: format!("user:{user}").into(),
                    };
                }
            }
        }
        if self.api_keys.is_none() && self.basic_users.is_none() {
            // Only a certificate could have passed: missing or not allowed.
            return self.deny(403, "certificate");
        }
        self.deny(
            401,
            if offered {
                "bad_credentials"
            } else {
                "no_credentials"
            },
        )
    }

    fn deny(&self, status: u16, reason: &'static str) -> Decision {
        let challenge = (status == 401).then(|| {
            if self.basic_users.is_some() || self.identity_service_basic {
                HeaderValue::from_static("Basic realm=\"bearer-proxy\", charset=\"UTF-8\"")
            } else {
                let header = self.api_key_header().map_or("x-api-key", |h| h.as_str());
                HeaderValue::try_from(format!("ApiKey header=\"{header}\""))
                    .unwrap_or(HeaderValue::from_static("ApiKey"))
            }
        });
        Decision::Deny(Denial {
            status,
            reason,
            challenge,
        })
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack listeners) match IPv4 ranges.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `CN=legacy-erp` matches a certificate whose subject is exactly that, or
/// whose common name is `legacy-erp`.
fn subject_matches(configured: &str, subject: &str) -> bool {
    if configured.eq_ignore_ascii_case(subject) {
        return true;
    }
    match configured
        .strip_prefix("CN=")
        .or_else(|| configured.strip_prefix("cn="))
    {
        Some(cn) => subject
            .split(',')
            .map(str::trim)
            .filter_map(|rdn| rdn.strip_prefix("CN=").or_else(|| rdn.strip_prefix("cn=")))
            .any(|c| c == cn),
        None => false,
    }
}

/// The name a caller acts under at the identity service, from the `who` of
/// an [`Decision::Allow`]: an API key's name, a Basic user, or a client
/// certificate's CN (the whole subject when it has none). `None` for
/// callers admitted by `allow_any` or address alone.
pub fn caller_name(who: &str) -> Option<&str> {
    let (kind, name) = who.split_once(':')?;
    match kind {
        "api_key" | "user" => Some(name),
        "cert" => Some(
            name.split(',')
                .map(str::trim)
                .find_map(|rdn| rdn.strip_prefix("CN=").or_else(|| rdn.strip_prefix("cn=")))
                .unwrap_or(name),
        ),
        _ => None,
    }
}

/// The user and password of an `Authorization: Basic` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    with_basic_credentials(headers, |user, password| {
        (user.to_string(), password.to_string())
    })
}

/// Calls `f` with the user and password of an `Authorization: Basic`
/// header, decoded on the stack: the request path reads them without
/// allocating (credentials longer than the buffer are decoded on the heap).
pub fn with_basic_credentials<R>(
    headers: &HeaderMap,
    f: impl FnOnce(&str, &str) -> R,
) -> Option<R> {
    let value = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let split = value.iter().position(|b| *b == b' ')?;
    let (scheme, b64) = (&value[..split], value[split + 1..].trim_ascii());
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let engine = base64::engine::general_purpose::STANDARD;
    let mut stack = [0u8; 512];
    let heap;
    let raw: &[u8] = match engine.decode_slice(b64, &mut stack) {
        Ok(n) => &stack[..n],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            heap = engine.decode(b64).ok()?;
            &heap
        }
        Err(_) => return None,
    };
    let raw = std::str::from_utf8(raw).ok()?;
    let (user, password) = raw.split_once(':')?;
    let out = f(user, password);
    stack.fill(0);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::try_from(*k).unwrap(),
                HeaderValue::try_from(*v).unwrap(),
            );
        }
        h
    }

    fn caller<'a>(h: &'a HeaderMap, ip: &str) -> Caller<'a> {
        Caller {
            headers: h,
            address: Some(ip.parse().unwrap()),
            cert_subject: None,
        }
    }

    #[tokio::test]
    async fn api_keys_match_by_hash_and_name_the_caller() {
        let keys = ApiKeys::parse(
            &format!(
                "# comment\n{}\n{}\n",
                api_key_line("erp", "k-1"),
                api_key_line("crm", "k-2")
            ),
            HeaderName::from_static("x-api-key"),
        )
        .unwrap();
        let p = AccessPolicy {
            api_keys: Some(keys),
            ..Default::default()
        };
        let ok = headers(&[("x-api-key", "k-2")]);
        assert_eq!(
            p.check(&caller(&ok, "10.0.0.1")).await,
            Decision::Allow {
                who: "api_key:crm".into()
            }
        );
        let bad = headers(&[("x-api-key", "nope")]);
        match p.check(&caller(&bad, "10.0.0.1")).await {
            Decision::Deny(d) => assert_eq!((d.status, d.reason), (401, "bad_credentials")),
            other => panic!("{other:?}"),
        }
        match p.check(&caller(&HeaderMap::new(), "10.0.0.1")).await {
            Decision::Deny(d) => {
                assert_eq!((d.status, d.reason), (401, "no_credentials"));
                assert_eq!(d.challenge.unwrap(), "ApiKey header=\"x-api-key\"");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn cidrs_gate_before_credentials_and_alone_suffice() {
        let only_net = AccessPolicy {
            allow_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        };
        let h = HeaderMap::new();
        assert_eq!(
            only_net.check(&caller(&h, "10.1.2.3")).await,
            Decision::Allow {
                who: "address".into()
            }
        );
        assert_eq!(
            only_net.check(&caller(&h, "::ffff:10.1.2.3")).await,
            Decision::Allow {
                who: "address".into()
            }
        );
        match only_net.check(&caller(&h, "192.168.1.1")).await {
            Decision::Deny(d) => assert_eq!((d.status, d.reason), (403, "address")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn basic_users_verify_bcrypt_and_challenge_with_a_realm() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let p = AccessPolicy {
            basic_users: Some(BasicUsers::parse(&format!("alice:{hash}\n")).unwrap()),
            ..Default::default()
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let good = headers(&[(
            "authorization",
            &format!("Basic {}", b64.encode("alice:pw")),
        )]);
        for _ in 0..2 {
            assert_eq!(
                p.check(&caller(&good, "1.2.3.4")).await,
                Decision::Allow {
                    who: "user:alice".into()
                }
            );
        }
        let bad = headers(&[(
            "authorization",
            &format!("Basic {}", b64.encode("alice:nope")),
        )]);
        match p.check(&caller(&bad, "1.2.3.4")).await {
            Decision::Deny(d) => {
                assert_eq!(d.reason, "bad_credentials");
                assert!(d
                    .challenge
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("Basic realm="));
            }
            other => panic!("{other:?}"),
        }
        assert!(BasicUsers::parse("bob:{SHA}abc")
            .unwrap_err()
            .contains("only bcrypt"));
    }

    #[test]
    fn certificate_subjects_match_full_dn_or_cn() {
        assert!(subject_matches("CN=legacy-erp", "CN=legacy-erp"));
        assert!(subject_matches("CN=legacy-erp", "CN=legacy-erp, O=Example"));
        assert!(!subject_matches("CN=legacy-erp", "CN=legacy-erp-2"));
        assert!(subject_matches("CN=a, O=b", "cn=a, o=b"));
    }
}
