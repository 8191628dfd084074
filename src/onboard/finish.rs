//! After the calls: the secret file (0600, replaced atomically), the
//! client block, and a check like doctor's — one token fetched with the
//! written block, retried while the domain propagates the application —
//! then the application read back for the report.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::admin::AdminApi;
use super::apply::Applied;
use super::args::{GrantArg, Inputs};
use super::plan::Plan;
use super::report::{self, Check, Report};
use super::scim::App;
use super::Failure;
use crate::config::ClientConfig;

/// How long the check waits for the domain to propagate a new or changed
/// application (real domains take a few seconds).
const PROPAGATION: Duration = Duration::from_secs(30);
/// The domain's answers that mean "not propagated yet".
const NOT_YET: [&str; 3] = ["invalid_client", "unauthorized_client", "invalid_scope"];

/// The client block, as the proxy's configuration reads it.
#[derive(Serialize)]
struct ClientBlock {
    issuer: &'static str,
    token_url: String,
    client_id: String,
    client_secret_file: String,
    client_auth: &'static str,
    grant: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_behalf_of: Option<&'static str>,
    scopes: Vec<String>,
}

/// A second run without --new-secret needs the secret file the first
/// wrote: the domain never shows a secret again.
pub fn require_secret_file(inputs: &Inputs) -> Result<(), Failure> {
    crate::config::read_text_limited(&inputs.secret_file).map(drop).map_err(|e| {
        Failure::said(
            "read the secret file",
            format!(
                "the application {:?} exists, and its secret cannot be read back from the identity domain; {} is not readable ({e}): run again with --new-secret to issue a new one",
                inputs.name,
                inputs.secret_file.display()
            ),
        )
    })
}

/// Writes `bytes` to `path` through a new file beside it (created with
/// `mode`) renamed over it: readers never see a partial file, and the
/// secret never sits in a file of wider mode.
fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Removes the files a failed run wrote (they name an application that
/// no longer exists); a file it had not reached yet stays as it was.
pub fn remove_files(written: &[PathBuf]) {
    for path in written {
        let _ = std::fs::remove_file(path);
    }
}

fn directory_of(path: &Path) -> PathBuf {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    let parent = parent.unwrap_or(Path::new("."));
    std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// The secret file as the client block names it: relative to the block's
/// file when both share a directory, else absolute.
fn secret_file_in_block(inputs: &Inputs) -> String {
    let name = inputs.secret_file.file_name().unwrap_or_default();
    let dir = directory_of(&inputs.secret_file);
    if dir == directory_of(&inputs.config_out) {
        name.to_string_lossy().into_owned()
    } else {
        dir.join(name).display().to_string()
    }
}

fn client_block(inputs: &Inputs, client_id: &str, plan: &Plan) -> ClientBlock {
    let secretless_caller = !inputs.grants.contains(&GrantArg::ClientCredentials);
    ClientBlock {
        issuer: "identity_domain",
        token_url: inputs.domain.clone(),
        client_id: client_id.to_string(),
        client_secret_file: secret_file_in_block(inputs),
        client_auth: "client_secret_basic",
        grant: if secretless_caller {
            "password"
        } else {
            "client_credentials"
        },
        on_behalf_of: secretless_caller.then_some("caller"),
        scopes: vec![plan.scopes[0].clone()],
    }
}

/// `clients: {name: block}`, and `routes` when given.
fn yaml_document(
    name: &str,
    block: &ClientBlock,
    routes: Option<serde_yaml::Value>,
) -> Result<String, String> {
    let mut clients = serde_yaml::Mapping::new();
    let value = serde_yaml::to_value(block).map_err(|e| e.to_string())?;
    clients.insert(name.into(), value);
    let mut doc = serde_yaml::Mapping::new();
    doc.insert("clients".into(), clients.into());
    if let Some(routes) = routes {
        doc.insert("routes".into(), routes);
    }
    serde_yaml::to_string(&doc).map_err(|e| e.to_string())
}

/// The block's YAML document, with a header saying where it came from.
fn block_document(inputs: &Inputs, block: &ClientBlock) -> Result<String, String> {
    let yaml = yaml_document(&inputs.name, block, None)?;
    Ok(format!(
        "# Written by `bearer-proxy onboard` for the confidential application\n# {:?} of {}. Merge it into the proxy's configuration.\n{yaml}",
        inputs.name, inputs.domain
    ))
}

pub async fn finish(
    api: &AdminApi,
    inputs: &Inputs,
    plan: &Plan,
    applied: &Applied,
    written: &mut Vec<PathBuf>,
) -> Result<Report, Failure> {
    if let Some(secret) = &applied.secret {
        write_atomically(
            &inputs.secret_file,
            format!("{}\n", secret.expose()).as_bytes(),
            0o600,
        )
        .map_err(|e| {
            Failure::said(
                "write the secret file",
                format!("{}: {e}", inputs.secret_file.display()),
            )
        })?;
        written.push(inputs.secret_file.clone());
    }
    let block = client_block(inputs, &applied.client_id, plan);
    let document =
        block_document(inputs, &block).map_err(|e| Failure::said("write the client block", e))?;
    write_atomically(&inputs.config_out, document.as_bytes(), 0o644).map_err(|e| {
        Failure::said(
            "write the client block",
            format!("{}: {e}", inputs.config_out.display()),
        )
    })?;
    written.push(inputs.config_out.clone());
    // Only a changed application needs time to propagate.
    let patient = !plan.actions.is_empty();
    let check = match block.on_behalf_of {
        None => Some(check(inputs, &block, patient).await?),
        Some(_) => None,
    };
    let app: App = api
        .get(&format!("/admin/v1/Apps/{}", applied.app_id), None)
        .await
        .map_err(|e| Failure::call("read the application back", e))?;
    let secret = match (&applied.secret, applied.created) {
        (Some(_), true) => "written",
        (Some(_), false) => "rotated",
        (None, _) => "kept",
    };
    Ok(report::done(
        inputs,
        plan,
        &app,
        applied.created,
        secret,
        check,
    ))
}

/// The client of the written block, loaded as the proxy loads it (with
/// a route, which a configuration needs).
fn checked_client(inputs: &Inputs, block: &ClientBlock) -> Result<Arc<ClientConfig>, String> {
    let route = serde_yaml::to_value(serde_json::json!([{
        "name": "onboard-check",
        "match": {"path_prefix": "/"},
        "upstream": crate::scope::resource_server(&block.scopes[0]).unwrap_or("https://oic.invalid"),
        "client": inputs.name,
        "access": {"allow_any": true},
    }]))
    .map_err(|e| e.to_string())?;
    let text = yaml_document(&inputs.name, block, Some(route))?;
    let config = crate::config::load_str(&text, &directory_of(&inputs.config_out), &|_| None)
        .map_err(|e| format!("the written client block does not load: {e}"))?;
    config
        .clients
        .iter()
        .find(|c| c.name == inputs.name)
        .cloned()
        .ok_or_else(|| "the written client block holds no client".to_string())
}

/// One token with the written block, retried (when `patient`) while the
/// domain has not propagated the application yet.
async fn check(inputs: &Inputs, block: &ClientBlock, patient: bool) -> Result<Check, Failure> {
    const STEP: &str = "check a token";
    let client = checked_client(inputs, block).map_err(|e| Failure::said(STEP, e))?;
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let (report, _) = crate::doctor::client_check::check(&client, &client.scopes, None).await;
        if report.ok {
            return Ok(Check {
                scope: report.scope,
                aud: report.aud,
                sub: report.sub,
            });
        }
        let not_yet = report
            .idp_error
            .as_deref()
            .is_some_and(|e| NOT_YET.contains(&e));
        if !patient || !not_yet || Instant::now() >= deadline {
            let mut detail = match (&report.idp_error, &report.idp_description) {
                (Some(e), Some(d)) => format!("{e}: {d}"),
                _ => report.error.unwrap_or_else(|| "no token".into()),
            };
            if report.idp_error.as_deref() == Some("invalid_client") && !inputs.new_secret {
                detail.push_str(&format!(
                    " (if the secret in {} is stale, run again with --new-secret)",
                    inputs.secret_file.display()
                ));
            }
            return Err(Failure::said(STEP, detail));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
