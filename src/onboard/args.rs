//! `onboard`'s flags, checked into [`Inputs`] before any call: the
//! domain's URL, the admin credential (from a file or stdin, never an
//! argument), the grants.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::admin::{self, AdminApi};
use super::Failure;
use crate::config::Secret;

/// The grant types `--grant` may add to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "snake_case")]
pub enum GrantArg {
    ClientCredentials,
    /// Adds refresh_token too.
    Password,
    JwtBearer,
}

/// `bearer-proxy onboard`'s flags.
#[derive(Debug, clap::Args)]
pub struct OnboardArgs {
    /// The identity domain's URL, e.g. https://idcs-….identity.oraclecloud.com
    /// (plain http only for a loopback address: a local emulator).
    #[arg(long)]
    pub domain_url: String,
    /// The admin client's id: a confidential application holding the
    /// Identity Domain Administrator (or Application Administrator) role,
    /// allowed client_credentials and the scope urn:opc:idm:__myscopes__.
    #[arg(
        long,
        requires = "admin_client_secret_file",
        conflicts_with = "admin_token_file"
    )]
    pub admin_client_id: Option<String>,
    /// File holding the admin client's secret; `-` reads it from stdin.
    /// (Never given as an argument: arguments are visible to every local user.)
    #[arg(long, requires = "admin_client_id")]
    pub admin_client_secret_file: Option<PathBuf>,
    /// Instead of the admin client: a file holding an admin access token
    /// for urn:opc:idm:__myscopes__ (the token, or a token response such
    /// as `bearer-proxy token`'s tokens<n>.tok); `-` reads stdin.
    #[arg(long, required_unless_present = "admin_client_id")]
    pub admin_token_file: Option<PathBuf>,
    /// The Oracle Integration instance's application in the identity
    /// domain: its display name or id (the instance's idcsInfo gives both).
    /// Its audience is the prefix of the scopes.
    #[arg(long)]
    pub oic_app: String,
    /// Display name of the confidential application to create or converge;
    /// also the key of the written client block.
    #[arg(long)]
    pub name: String,
    /// A grant type for the application (repeatable): client_credentials
    /// (the default when none is given), password (adds refresh_token),
    /// jwt_bearer. The written client block uses client_credentials when
    /// allowed, else password as each caller.
    #[arg(long = "grant", value_enum)]
    pub grants: Vec<GrantArg>,
    /// Where the application's secret is written (mode 0600, replaced
    /// atomically). The secret is never printed. A second run reads it for
    /// the check and leaves it alone unless --new-secret is given.
    #[arg(long)]
    pub secret_file: PathBuf,
    /// Where the client block is written: a YAML document
    /// `clients: {NAME: {...}}` naming the secret file, to merge into the
    /// proxy's configuration.
    #[arg(long)]
    pub config_out: PathBuf,
    /// Issue a new secret for an existing application (the old one stops
    /// working at once) and write it to the secret file.
    #[arg(long)]
    pub new_secret: bool,
    /// Only read (the admin token and GETs): print the calls a real run
    /// would make; write no file.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON (ids, client id, scopes, roles, state,
    /// file paths; never a secret).
    #[arg(long)]
    pub json: bool,
}

pub enum AdminCredential {
    Client { id: String, secret: Secret },
    Token(Secret),
}

/// The flags, checked.
pub struct Inputs {
    /// Scheme, host and port; no trailing slash.
    pub domain: String,
    pub admin: AdminCredential,
    pub oic_app: String,
    pub name: String,
    pub grants: Vec<GrantArg>,
    pub secret_file: PathBuf,
    pub config_out: PathBuf,
    pub new_secret: bool,
    pub dry_run: bool,
    pub json: bool,
}

impl Inputs {
    pub fn read(args: &OnboardArgs) -> Result<Inputs, String> {
        let domain = domain_url(&args.domain_url)?;
        for (flag, value) in [("--name", &args.name), ("--oic-app", &args.oic_app)] {
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return Err(format!(
                    "{flag} must be a non-empty name without control characters"
                ));
            }
        }
        let mut grants = args.grants.clone();
        if grants.is_empty() {
            grants.push(GrantArg::ClientCredentials);
        }
        if !grants.iter().any(|g| *g != GrantArg::JwtBearer) {
            return Err("--grant jwt_bearer alone leaves the client block without a grant it can use (it needs a certificate uploaded to the application and a signing_key): add --grant client_credentials or --grant password".into());
        }
        Ok(Inputs {
            domain,
            admin: admin_credential(args)?,
            oic_app: args.oic_app.trim().to_string(),
            name: args.name.trim().to_string(),
            grants,
            secret_file: args.secret_file.clone(),
            config_out: args.config_out.clone(),
            new_secret: args.new_secret,
            dry_run: args.dry_run,
            json: args.json,
        })
    }

    /// `allowedGrants` by their wire names.
    pub fn wire_grants(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for g in &self.grants {
            let names: &[&str] = match g {
                GrantArg::ClientCredentials => &["client_credentials"],
                GrantArg::Password => &["password", "refresh_token"],
                GrantArg::JwtBearer => &["urn:ietf:params:oauth:grant-type:jwt-bearer"],
            };
            for n in names {
                if !out.iter().any(|o| o == n) {
                    out.push(n.to_string());
                }
            }
        }
        out
    }
}

/// `https://host[:port]` (an http one only for loopback), no path beyond
/// `/`, no credentials, no query.
fn domain_url(value: &str) -> Result<String, String> {
    let url =
        url::Url::parse(value.trim()).map_err(|e| format!("--domain-url is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(
                "--domain-url must be https (plain http only for a loopback address)".into(),
            )
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("--domain-url must not hold credentials".into());
    }
    if url.path() != "/" || url.query().is_some() {
        return Err("--domain-url is the identity domain's address only, without a path (https://idcs-….identity.oraclecloud.com)".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// A secret from a file, or stdin for `-`; the trailing newline dropped.
fn read_secret(flag: &str, path: &Path) -> Result<Secret, String> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map(|_| ())
    } else {
        crate::config::read_text_limited(path).map(|t| text = t)
    };
    read.map_err(|e| format!("{flag}: cannot read {}: {e}", path.display()))?;
    let value = text.trim_end_matches(['\r', '\n']).trim();
    if value.is_empty() {
        return Err(format!("{flag}: {} is empty", path.display()));
    }
    Ok(Secret::new(value))
}

fn admin_credential(args: &OnboardArgs) -> Result<AdminCredential, String> {
    match (
        &args.admin_client_id,
        &args.admin_client_secret_file,
        &args.admin_token_file,
    ) {
        (Some(id), Some(file), None) => Ok(AdminCredential::Client {
            id: id.clone(),
            secret: read_secret("--admin-client-secret-file", file)?,
        }),
        (None, None, Some(file)) => {
            let raw = read_secret("--admin-token-file", file)?;
            // A token response (tokens<n>.tok) or the token itself.
            let token = serde_json::from_str::<serde_json::Value>(raw.expose())
                .ok()
                .and_then(|v| v["access_token"].as_str().map(Secret::new))
                .unwrap_or(raw);
            Ok(AdminCredential::Token(token))
        }
        _ => Err(
            "give either --admin-client-id with --admin-client-secret-file, or --admin-token-file"
                .into(),
        ),
    }
}

/// The admin API with a token: the given one, or one fetched now.
pub async fn admin_api(inputs: &Inputs) -> Result<AdminApi, Failure> {
    const STEP: &str = "get an admin token";
    let http = admin::http_client().map_err(|e| Failure::said(STEP, e))?;
    let token = match &inputs.admin {
        AdminCredential::Token(t) => t.clone(),
        AdminCredential::Client { id, secret } => {
            admin::admin_token(&http, &inputs.domain, id, secret)
                .await
                .map_err(|e| Failure::call(STEP, e))?
        }
    };
    Ok(AdminApi::new(http, &inputs.domain, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_urls() {
        assert_eq!(
            domain_url("https://idcs-abc.identity.oraclecloud.com/").unwrap(),
            "https://idcs-abc.identity.oraclecloud.com"
        );
        assert_eq!(
            domain_url("http://127.0.0.1:9400").unwrap(),
            "http://127.0.0.1:9400"
        );
        for bad in [
            "http://idcs-abc.identity.oraclecloud.com",
            "https://user:pw@idcs-abc.identity.oraclecloud.com",
            "https://idcs-abc.identity.oraclecloud.com/oauth2/v1/token",
            "idcs-abc",
        ] {
            assert!(domain_url(bad).is_err(), "{bad}");
        }
    }
}
