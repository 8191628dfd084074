//! `doctor --caller USER`: the caller an `on_behalf_of: caller` client is
//! checked as. A password is read from the terminal without echo, or from
//! stdin when that is not a terminal (a pipe, a secret manager's output),
//! never from the command line, where other users and shell history see it.

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use crate::config::{ClientConfig, Grant, Secret};
use crate::oauth::callers::CallerCredential;

/// The credential of `--caller` for the one selected per-caller client;
/// `None` without `--caller`.
pub fn credential(
    clients: &[&Arc<ClientConfig>],
    caller: Option<&str>,
) -> Result<Option<CallerCredential>, String> {
    let Some(caller) = caller else {
        return Ok(None);
    };
    let [client] = clients else {
        return Err("--caller: select one client with --client or --route".into());
    };
    let Some(policy) = &client.callers else {
        return Err(format!(
            "--caller: client {:?} does not act on behalf of callers (no on_behalf_of: caller)",
            client.name
        ));
    };
    if caller.is_empty() {
        return Err("--caller: the user name is empty".into());
    }
    match &client.grant {
        Grant::CallerPassword => Ok(Some(CallerCredential::Password {
            username: caller.to_string(),
            password: read_password(caller)?,
        })),
        _ => match &policy.subjects {
            None => Ok(Some(CallerCredential::Subject(caller.to_string()))),
            Some(map) => map
                .subject(caller)
                .map(|s| Some(CallerCredential::Subject(s.to_string())))
                .ok_or_else(|| {
                    format!("--caller: {caller:?} has no line in the client's caller_subjects_file (the proxy answers it 403 no_subject)")
                }),
        },
    }
}

fn read_password(user: &str) -> Result<Secret, String> {
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("password for {user}: "))
            .map_err(|e| format!("cannot read the password from the terminal: {e}"))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        return Err(format!(
            "no password for {user} (type it, or pipe it to stdin)"
        ));
    }
    Ok(Secret::new(password))
}
