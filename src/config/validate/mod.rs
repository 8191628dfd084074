//! Raw file structs → typed [`Config`]. Collects every error of a file, each
//! with its YAML path, instead of stopping at the first. One file per
//! section; this one holds the [`Validator`], the order the sections run in
//! and the helpers they share.

mod access;
mod cache;
#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod caller_tests;
mod callers;
mod client;
#[cfg(test)]
mod client_tests;
mod client_tls;
#[cfg(test)]
mod client_tls_tests;
mod files;
mod limits;
#[cfg(test)]
mod limits_tests;
mod route;
mod server;
mod signing_key;
mod telemetry;
#[cfg(test)]
mod telemetry_tests;
#[cfg(test)]
mod tests;
mod urls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use serde_yaml::Value;

use super::error::{ConfigError, ConfigErrors};
use super::raw::RawConfig;
use super::{defaults, env, AdminSettings, ClientConfig, Config, Secret};
pub(crate) use files::{read_limited, read_text_limited};

/// Reads and validates a configuration file. Relative paths inside it
/// (secret files, CA files) are resolved against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = read_text_limited(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            path.display().to_string(),
            format!("cannot read configuration file: {e}"),
        )])
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut config = load_str(&text, &base, &|name| std::env::var(name).ok())?;
    config.files.insert(0, path.to_path_buf());
    Ok(config)
}

/// Validates configuration text. `env` resolves `${NAME}` references.
pub fn load_str(
    text: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut tree: Value = serde_yaml::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError::new(
            "<file>",
            format!(
                "not valid YAML: {}",
                super::redact::serde_message(&e.to_string())
            ),
        )])
    })?;
    env::substitute(&mut tree, env, &mut errors);
    let raw: RawConfig = match serde_path_to_error::deserialize(tree) {
        Ok(raw) => raw,
        Err(e) => {
            let raw_message = e.inner().to_string();
            let path = super::redact::serde_path(&e.path().to_string(), &raw_message);
            let message = super::redact::serde_message(&raw_message);
            errors.push(ConfigError::new(path, message));
            return Err(ConfigErrors(errors));
        }
    };
    if !errors.is_empty() {
        // Values still hold unexpanded `${...}`: validating them would only
        // repeat the same problem in other words.
        return Err(ConfigErrors(errors));
    }
    let mut v = Validator {
        base_dir,
        has_mtls_listener: false,
        errors,
        warnings: Vec::new(),
        files: Default::default(),
    };
    match v.config(raw) {
        Some(config) if v.errors.is_empty() => Ok(config),
        _ => Err(ConfigErrors(v.errors)),
    }
}

/// A secret setting that may be given inline or as a file.
enum SecretInput {
    Value(Secret),
    Missing,
    /// Given, but wrong; the error is already recorded.
    Invalid,
}

struct Validator<'a> {
    base_dir: &'a Path,
    /// Some TLS listener verifies client certificates.
    has_mtls_listener: bool,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
    /// Every file a setting names, as resolved (see `Config::files`).
    files: std::cell::RefCell<std::collections::BTreeSet<PathBuf>>,
}

impl Validator<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }

    /// Runs the checks of one section and keeps its value only if they
    /// recorded no error: a half-checked section must never be used, and
    /// the checks still run to the end so every error is reported.
    fn section<T>(&mut self, check: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let before = self.errors.len();
        let value = check(self);
        value.filter(|_| self.errors.len() == before)
    }

    /// The sections in dependency order: listeners before access rules
    /// (client certificates need an mTLS listener), clients before routes.
    fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let server = self.server(raw.server);
        let admin = self.admin(raw.admin);
        let cache = self.cache(raw.cache);
        let clients = self.clients(raw.clients);
        let limits = self.traffic_limits(raw.limits);
        let (routes, route_table) = self.routes(raw.routes, &clients, &limits);
        let telemetry = self.telemetry(raw.telemetry);
        for name in clients.valid.keys() {
            if !routes.iter().any(|r| &r.client.name == name) {
                self.warn(format!("clients.{name}: not used by any route"));
            }
        }
        Some(Config {
            server: server?,
            admin: admin?,
            cache: cache?,
            clients: clients.valid.into_values().collect(),
            routes,
            route_table: route_table?,
            warnings: std::mem::take(&mut self.warnings),
            files: std::mem::take(&mut *self.files.borrow_mut())
                .into_iter()
                .collect(),
            telemetry,
            limits: limits.valid.into_values().collect(),
        })
    }

    /// `admin:` — the listener, and the token that protects it.
    fn admin(&mut self, raw: super::raw::RawAdmin) -> Option<AdminSettings> {
        let listen = raw
            .listen
            .unwrap_or_else(|| defaults::ADMIN_LISTEN.to_string());
        let listen = self.socket_addr("admin.listen", &listen);
        let token = match self.secret_pair("admin.token", "token", raw.token, raw.token_file) {
            SecretInput::Value(t) if t.expose().len() < 16 => {
                self.err(
                    "admin.token",
                    "must be at least 16 characters (e.g. openssl rand -hex 32)",
                );
                None
            }
            SecretInput::Value(t) => Some(t),
            SecretInput::Missing | SecretInput::Invalid => None,
        };
        if raw.metrics_public.is_some() && token.is_none() {
            self.warn("admin.metrics_public: only matters with admin.token".into());
        }
        Some(AdminSettings {
            listen: listen?,
            token,
            metrics_public: raw.metrics_public.unwrap_or(false),
        })
    }

    fn socket_addr(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match value.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.err(
                    path,
                    "is not an IP:port address (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")",
                );
                None
            }
        }
    }

    fn positive(&mut self, path: &str, value: Option<Duration>, default: Duration) -> Duration {
        let d = value.unwrap_or(default);
        if d.is_zero() {
            self.err(path, "must be greater than zero");
        }
        d
    }

    /// `<name>` or `<name>_file`, exactly one.
    fn secret_pair(
        &mut self,
        path: &str,
        name: &str,
        value: Option<String>,
        file: Option<PathBuf>,
    ) -> SecretInput {
        let secret = match (value, file) {
            (Some(_), Some(_)) => {
                self.err(path, format!("set either {name} or {name}_file, not both"));
                return SecretInput::Invalid;
            }
            (None, None) => return SecretInput::Missing,
            (Some(s), None) => self.non_empty_secret(path, s),
            (None, Some(file)) => {
                let file_path = format!("{path}_file");
                self.read_text(&file_path, &file).and_then(|s| {
                    self.non_empty_secret(&file_path, s.trim_end_matches(['\r', '\n']).to_string())
                })
            }
        };
        secret.map_or(SecretInput::Invalid, SecretInput::Value)
    }

    fn non_empty_secret(&mut self, path: &str, value: String) -> Option<Secret> {
        if value.is_empty() {
            self.err(path, "must not be empty");
            None
        } else {
            Some(Secret::new(value))
        }
    }

    /// Each scope a single word; then Oracle's rules for one token request.
    fn scopes(&mut self, path: &str, scopes: &[String]) {
        for (i, s) in scopes.iter().enumerate() {
            if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.err(
                    format!("{path}[{i}]"),
                    "is not a scope: scopes are single words without spaces; list each one separately",
                );
            }
        }
    }

    /// Oracle's rules for the scopes of one token request.
    fn scope_rules(&mut self, path: &str, scopes: &[String]) {
        if let Err(message) = crate::scope::check_single_resource_server(scopes) {
            self.err(path, message);
        }
        for s in scopes {
            if let Some(fixed) = crate::scope::slash_before_urn(s) {
                self.warn(format!(
                    "{path}: {s:?} has a '/' before \"urn:\", which the identity service rejects; did you mean {fixed:?}?"
                ));
            }
        }
    }

    /// [`Self::read_text`] for a file that need not be text (PEM keys and
    /// certificates).
    fn read_bytes(&mut self, path: &str, file: &Path) -> Option<Vec<u8>> {
        let full = self.resolve(file);
        match read_limited(&full) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.err(path, format!("cannot read the file it names: {e}"));
                None
            }
        }
    }

    fn read_text(&mut self, path: &str, file: &Path) -> Option<String> {
        let full = self.resolve(file);
        match read_text_limited(&full) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(path, format!("cannot read the file it names: {e}"));
                None
            }
        }
    }

    /// The file a setting names, relative to the configuration's
    /// directory; remembered as one of the configuration's files.
    fn resolve(&self, file: &Path) -> PathBuf {
        let full = if file.is_absolute() {
            file.to_path_buf()
        } else {
            self.base_dir.join(file)
        };
        self.files.borrow_mut().insert(full.clone());
        full
    }

    /// A PEM file of CA certificates, each usable as a trust anchor.
    fn certificates(&mut self, path: &str, file: &Path) -> Vec<CertificateDer<'static>> {
        let full = self.resolve(file);
        let bytes = match read_limited(&full) {
            Ok(b) => b,
            Err(e) => {
                self.err(path, format!("cannot read the file it names: {e}"));
                return Vec::new();
            }
        };
        let certs = match CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => {
                self.err(path, "the file it names holds no PEM certificate");
                return Vec::new();
            }
            Err(e) => {
                self.err(path, format!("the file it names is not valid PEM: {e}"));
                return Vec::new();
            }
        };
        let mut store = rustls::RootCertStore::empty();
        for c in &certs {
            if let Err(e) = store.add(c.clone()) {
                self.err(
                    path,
                    format!("the file it names is not a usable CA certificate: {e}"),
                );
                return Vec::new();
            }
        }
        certs
    }
}

/// Clients that validated, and the names of those that did not (a route
/// naming one of those is not reported again).
struct Clients {
    valid: BTreeMap<String, Arc<ClientConfig>>,
    invalid: Vec<String>,
}

impl Clients {
    /// "known: a, b" or "none defined", for messages about a route's client.
    fn known(&self) -> String {
        if self.valid.is_empty() {
            "none defined".to_string()
        } else {
            let names: Vec<&str> = self.valid.keys().map(String::as_str).collect();
            format!("known: {}", names.join(", "))
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
