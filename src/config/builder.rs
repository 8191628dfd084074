//! Configurations built from typed values and written as YAML, so tests,
//! benches and fuzz corpora say *what* they configure (a route, a client
//! setting) instead of hand-indenting YAML that the compiler cannot check.
//! The raw types are the file format itself, so whatever is built here is
//! exactly what a user could write.

use serde_yaml::Value;

use super::raw::{OnBehalfOf, RawAccess, RawClient, RawConfig, RawMatch, RawRoute};

impl RawConfig {
    /// The configuration as YAML, leaving out every setting that is unset
    /// (so the defaults apply, as in a hand-written file).
    pub fn to_yaml(&self) -> String {
        let mut tree = serde_yaml::to_value(self).expect("the raw types always serialize");
        drop_nulls(&mut tree);
        serde_yaml::to_string(&tree).expect("a YAML tree always serializes")
    }

    /// Client `c` of an example identity domain (a secret, one scope) and
    /// no routes yet: the base of configurations that are about routes.
    pub fn example() -> Self {
        RawConfig::default().with_client(
            "c",
            RawClient::with_secret(
                "https://idcs.example.com/oauth2/v1/token",
                "x",
                "y",
                "https://oic.example.com:443urn:opc:resource:consumer::all",
            ),
        )
    }

    /// Adds (or replaces) client `name`.
    pub fn with_client(mut self, name: &str, client: RawClient) -> Self {
        self.clients.insert(name.to_string(), client);
        self
    }

    /// Appends a route.
    pub fn with_route(mut self, route: RawRoute) -> Self {
        self.routes.push(route);
        self
    }
}

impl RawClient {
    /// A `client_credentials` client authenticating with a client secret
    /// (`client_secret_basic`), asking for `scope`.
    pub fn with_secret(token_url: &str, client_id: &str, secret: &str, scope: &str) -> Self {
        RawClient {
            token_url: Some(token_url.to_string()),
            client_id: Some(client_id.to_string()),
            client_secret: Some(secret.to_string()),
            scopes: vec![scope.to_string()],
            ..RawClient::default()
        }
    }

    /// This client, getting tokens as each caller (`on_behalf_of: caller`).
    pub fn for_callers(mut self) -> Self {
        self.on_behalf_of = Some(OnBehalfOf::Caller);
        self
    }
}

impl RawRoute {
    /// A route for every host under `path_prefix` to `upstream` with
    /// `client`'s token, open to any caller.
    pub fn open(name: &str, path_prefix: &str, upstream: &str, client: &str) -> Self {
        RawRoute {
            name: Some(name.to_string()),
            matcher: RawMatch {
                host: None,
                path_prefix: Some(path_prefix.to_string()),
            },
            upstream: Some(upstream.to_string()),
            client: Some(client.to_string()),
            access: Some(RawAccess::allow_any()),
            ..RawRoute::default()
        }
    }

    /// This route, matching only requests for `host`.
    pub fn for_host(mut self, host: &str) -> Self {
        self.matcher.host = Some(host.to_string());
        self
    }

    /// This route, with `access` instead of its current rules.
    pub fn with_access(mut self, access: RawAccess) -> Self {
        self.access = Some(access);
        self
    }
}

impl RawAccess {
    /// Anyone who can reach the listener.
    pub fn allow_any() -> Self {
        RawAccess {
            allow_any: true,
            ..RawAccess::default()
        }
    }

    /// Callers' own Basic credentials, checked by the identity service.
    pub fn identity_service_basic() -> Self {
        RawAccess {
            identity_service_basic: true,
            ..RawAccess::default()
        }
    }

    /// Callers presenting a key from `file` (`name:sha256-hex` lines).
    pub fn api_keys(file: &str) -> Self {
        RawAccess {
            api_keys_file: Some(file.into()),
            ..RawAccess::default()
        }
    }
}

/// Unset options serialize as `null` and untouched sections as `{}`; a
/// file would leave both out.
fn drop_nulls(value: &mut Value) {
    match value {
        Value::Mapping(map) => {
            map.values_mut().for_each(drop_nulls);
            map.retain(|_, v| !v.is_null() && v.as_mapping().is_none_or(|m| !m.is_empty()));
        }
        Value::Sequence(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
