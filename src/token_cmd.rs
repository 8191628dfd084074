//! `bearer-proxy token`: the command-line counterpart of the identity
//! console's "Generate access token". Fetches one token with a configured
//! client and writes the token response to the next free `tokens<n>.tok`
//! (mode 0600), or prints it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{Config, GrantKind};
use crate::oauth::grant::{self, Step};
use crate::oauth::transport::TokenEndpoint;
use crate::oauth::FetchError;

pub struct Request {
    pub client: String,
    pub scopes: Vec<String>,
    pub include_refresh_token: bool,
    pub out: Option<PathBuf>,
    pub print: bool,
}

/// Usage problems exit 2, like configuration errors; a failed fetch exits 1.
pub fn run(config: &Config, req: &Request) -> ExitCode {
    crate::tls::install_crypto_provider();
    let Some(client) = config.clients.iter().find(|c| c.name == req.client) else {
        let known: Vec<&str> = config.clients.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "error: --client: unknown client {:?} (known: {})",
            req.client,
            known.join(", ")
        );
        return ExitCode::from(2);
    };
    if client.callers.is_some() {
        eprintln!(
            "error: --client: client {:?} acts on behalf of each caller and has no token of its own (bearer-proxy doctor --client {} --caller USER fetches one caller's)",
            client.name, client.name
        );
        return ExitCode::from(2);
    }
    if req.include_refresh_token && client.grant.kind() == GrantKind::ClientCredentials {
        eprintln!(
            "error: --include-refresh-token: client {:?} uses the client_credentials grant, which never issues refresh tokens (a refresh token needs grant password or jwt_bearer, and the Refresh Token grant allowed on the application)",
            client.name
        );
        return ExitCode::from(2);
    }
    let base = if req.scopes.is_empty() {
        client.scopes.clone()
    } else {
        req.scopes.clone()
    };
    let scopes = client.requested_scopes(&base, req.include_refresh_token);
    if scopes.is_empty() {
        eprintln!("error: no scope: the client has none configured; pass --scope");
        return ExitCode::from(2);
    }
    if let Err(message) = crate::scope::check_single_resource_server(&scopes) {
        eprintln!("error: --scope: {message}");
        return ExitCode::from(2);
    }
    let endpoint = match TokenEndpoint::new(client.clone(), None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match crate::runtime::for_command() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let response = match runtime.block_on(endpoint.request(&Step::Primary, &scopes)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: no token for client {:?} ({} grant): {}",
                client.name,
                grant::label(client, &Step::Primary),
                describe_error(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let summary = summarize(&response);
    if req.print {
        println!("{}", response.raw.expose());
        eprintln!("{summary}");
        return ExitCode::SUCCESS;
    }
    let dir = req.out.clone().unwrap_or_else(|| PathBuf::from("."));
    match write_next_free(&dir, response.raw.expose().as_bytes()) {
        Ok(path) => {
            eprintln!("wrote {}\n{summary}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write to {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}

/// The identity service's own words: `error`/`errorCode`, description, ecid.
pub(crate) fn describe_error(e: &FetchError) -> String {
    match e.idp() {
        Some(idp) => {
            let mut s = format!("{e}");
            if let Some(d) = &idp.description {
                s.push_str(&format!(" — {d}"));
            }
            if let Some(ecid) = &idp.ecid {
                s.push_str(&format!(" (ecid {ecid})"));
            }
            s
        }
        None => e.to_string(),
    }
}

/// Expiry and scopes, decoded from the JWT without verifying it (the file
/// is for a person; the identity service already vouched for it).
fn summarize(r: &crate::oauth::token::TokenResponse) -> String {
    let claims = crate::oauth::token::unverified_claims(r.access_token.expose());
    let expires = claims
        .as_ref()
        .and_then(|c| c["exp"].as_f64())
        .unwrap_or_else(|| crate::clock::unix_now() + r.expires_in.as_secs_f64());
    let scope = claims
        .as_ref()
        .and_then(|c| c["scope"].as_str().map(str::to_owned))
        .or_else(|| r.scope.clone())
        .unwrap_or_else(|| "(not stated)".into());
    format!(
        "  expires: {} (in {}s)\n  scope: {}\n  refresh token: {}",
        crate::clock::rfc3339(expires),
        r.expires_in.as_secs(),
        scope,
        if r.refresh_token.is_some() {
            "included"
        } else {
            "none"
        }
    )
}

/// Creates `dir/tokens<n>.tok` with the lowest free `n`, mode 0600, never
/// overwriting a file (create-new, so two runs cannot take the same name).
pub fn write_next_free(dir: &Path, content: &[u8]) -> std::io::Result<PathBuf> {
    for n in 1..=100_000u32 {
        let path = dir.join(format!("tokens{n}.tok"));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(content)?;
                file.write_all(b"\n")?;
                return Ok(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free tokens<n>.tok name"))
}
