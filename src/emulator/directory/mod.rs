//! The identity domain's directory of applications, as far as onboarding
//! an Oracle Integration client needs it: applications, the instance
//! application's roles and grants of them, administrators. The admin REST
//! API (`emulator::admin_api`) serves it; the token endpoint asks it
//! whether an application made here may have a token.
//!
//! Oracle's pitfalls are kept on purpose: an active application cannot be
//! deleted, a grant without `app` is refused with 400, `audience` cannot
//! be filtered on, an application's scopes must be ones a resource
//! application defines, and a new application takes a moment to reach
//! the token endpoint (the propagation delay).

mod filter;
mod model;
mod writes;

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

pub use model::{list, APP_SCHEMA, ERROR_SCHEMA, OIC_ROLES, OIC_SCOPES};
use model::{App, AppRole, Grant};

/// An answer other than success, in SCIM's error shape.
#[derive(Debug, Clone)]
pub struct ScimError {
    pub status: u16,
    pub detail: String,
}

pub fn scim_error(status: u16, detail: impl Into<String>) -> ScimError {
    ScimError {
        status,
        detail: detail.into(),
    }
}

/// Why the token endpoint refuses an application made here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Inactive, or not yet propagated: the domain does not know it yet.
    UnknownClient,
    /// The grant is not among its `allowedGrants`.
    Grant,
    /// A scope is not among its `allowedScopes`.
    Scope,
}

/// A failure a test arranges for the next matching admin call.
struct Failure {
    method: String,
    path_prefix: String,
    error: ScimError,
}

#[derive(Default)]
struct Inner {
    apps: Vec<App>,
    roles: Vec<AppRole>,
    grants: Vec<Grant>,
    admins: HashSet<String>,
    propagation: Duration,
    failures: Vec<Failure>,
    calls: Vec<String>,
}

#[derive(Default)]
pub struct Directory {
    inner: Mutex<Inner>,
}

impl Directory {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an Oracle Integration instance's application with its
    /// roles; returns its id.
    pub fn add_instance_app(&self, display_name: &str, audience: &str) -> String {
        let mut d = self.lock();
        let id = model::new_id();
        for role in OIC_ROLES {
            d.roles.push(AppRole {
                id: model::new_id(),
                display_name: role.into(),
                app_id: id.clone(),
                app_name: display_name.into(),
            });
        }
        d.apps.push(App {
            id: id.clone(),
            name: model::new_id(),
            display_name: display_name.into(),
            audience: Some(audience.into()),
            is_oauth_client: false,
            client_type: None,
            template: None,
            active: true,
            allowed_grants: Vec::new(),
            allowed_scopes: Vec::new(),
            secret: None,
            usable_from: None,
        });
        id
    }

    /// Gives `client_id` the Identity Domain Administrator role: its
    /// `urn:opc:idm:__myscopes__` tokens open the admin API.
    pub fn add_admin(&self, client_id: &str) {
        self.lock().admins.insert(client_id.into());
    }

    pub fn is_admin(&self, client_id: &str) -> bool {
        self.lock().admins.contains(client_id)
    }

    /// How long a newly activated application stays unknown to the token
    /// endpoint (default: none).
    pub fn set_propagation_delay(&self, delay: Duration) {
        self.lock().propagation = delay;
    }

    /// The next admin call whose method is `method` and whose path starts
    /// with `path_prefix` fails with `status` and `detail`, once.
    pub fn fail_next(&self, method: &str, path_prefix: &str, status: u16, detail: &str) {
        self.lock().failures.push(Failure {
            method: method.into(),
            path_prefix: path_prefix.into(),
            error: scim_error(status, detail),
        });
    }

    /// Records an admin call (`"POST /admin/v1/Apps"`) and returns the
    /// failure a test arranged for it, if any.
    pub fn arrive(&self, method: &str, path: &str) -> Result<(), ScimError> {
        let mut d = self.lock();
        d.calls.push(format!("{method} {path}"));
        let hit = d
            .failures
            .iter()
            .position(|f| f.method == method && path.starts_with(&f.path_prefix));
        match hit {
            Some(i) => Err(d.failures.remove(i).error),
            None => Ok(()),
        }
    }

    /// Every admin call so far, as `"METHOD /path"`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The applications whose display name is `display_name`, as JSON.
    pub fn apps_named(&self, display_name: &str) -> Vec<Value> {
        let d = self.lock();
        d.apps
            .iter()
            .filter(|a| a.display_name == display_name)
            .map(|a| d.app_json(a))
            .collect()
    }

    /// `GET /admin/v1/Apps?filter=…`.
    pub fn search_apps(&self, filter: Option<&str>) -> Result<Value, ScimError> {
        let terms = terms(filter)?;
        let d = self.lock();
        let mut found = Vec::new();
        for app in &d.apps {
            let matched = all_match(&terms, |attribute| match attribute {
                "displayname" => Ok(&app.display_name),
                "name" => Ok(&app.name),
                "id" => Ok(&app.id),
                "audience" => Err(scim_error(
                    400,
                    "The attribute audience cannot be used in a filter.",
                )),
                other => Err(invalid_attribute(other)),
            })?;
            if matched {
                found.push(d.app_json(app));
            }
        }
        Ok(list(found))
    }

    /// `GET /admin/v1/Apps/{id}`.
    pub fn get_app(&self, id: &str) -> Result<Value, ScimError> {
        let d = self.lock();
        d.app(id).map(|a| d.app_json(a))
    }

    /// `GET /admin/v1/AppRoles?filter=…`.
    pub fn search_roles(&self, filter: Option<&str>) -> Result<Value, ScimError> {
        let terms = terms(filter)?;
        let d = self.lock();
        let mut found = Vec::new();
        for role in &d.roles {
            let matched = all_match(&terms, |attribute| match attribute {
                "displayname" => Ok(&role.display_name),
                "app.value" => Ok(&role.app_id),
                "id" => Ok(&role.id),
                other => Err(invalid_attribute(other)),
            })?;
            if matched {
                found.push(role.to_json());
            }
        }
        Ok(list(found))
    }

    /// The display names of the roles granted to application `id`.
    pub fn granted_role_names(&self, id: &str) -> Vec<String> {
        let d = self.lock();
        d.granted(id)
            .iter()
            .filter_map(|g| g["display"].as_str().map(str::to_owned))
            .collect()
    }

    /// Whether a secret belongs to an application made here: `None` when
    /// `client_id` is not one.
    pub fn secret_matches(&self, client_id: &str, secret: &str) -> Option<bool> {
        let d = self.lock();
        let app = d.apps.iter().find(|a| a.name == client_id)?;
        Some(app.secret.as_deref() == Some(secret))
    }

    /// Whether application `client_id` may have a token for `grant_type`
    /// (wire name) and `scopes` now. `None` when it was not made here
    /// (clients registered directly take any grant and scope).
    pub fn admit(
        &self,
        client_id: &str,
        grant_type: &str,
        scopes: &[String],
    ) -> Option<Result<(), Refused>> {
        let d = self.lock();
        let app = d.apps.iter().find(|a| a.name == client_id)?;
        let propagated = app.usable_from.is_some_and(|t| Instant::now() >= t);
        if !app.active || !propagated {
            return Some(Err(Refused::UnknownClient));
        }
        let grant = if grant_type == "tls_client_auth" {
            "client_credentials"
        } else {
            grant_type
        };
        if !app.allowed_grants.iter().any(|g| g == grant) {
            return Some(Err(Refused::Grant));
        }
        let allowed = scopes
            .iter()
            .filter(|s| !crate::scope::is_modifier(s))
            .all(|s| app.allowed_scopes.contains(s));
        Some(if allowed { Ok(()) } else { Err(Refused::Scope) })
    }
}

/// Whether every term holds, `value_of` giving an attribute's value (or
/// refusing the attribute).
fn all_match<'a>(
    terms: &[filter::Term],
    value_of: impl Fn(&str) -> Result<&'a String, ScimError>,
) -> Result<bool, ScimError> {
    for t in terms {
        if *value_of(&t.attribute)? != t.value {
            return Ok(false);
        }
    }
    Ok(true)
}

fn invalid_attribute(attribute: &str) -> ScimError {
    scim_error(400, format!("Invalid filter attribute {attribute}."))
}

/// The terms of an optional filter.
fn terms(filter: Option<&str>) -> Result<Vec<filter::Term>, ScimError> {
    filter
        .map(|f| filter::parse(f).map_err(|e| scim_error(400, e)))
        .transpose()
        .map(Option::unwrap_or_default)
}

impl Inner {
    fn app(&self, id: &str) -> Result<&App, ScimError> {
        self.apps
            .iter()
            .find(|a| a.id == id)
            .ok_or_else(|| scim_error(404, format!("The App {id} was not found.")))
    }

    fn granted(&self, grantee: &str) -> Vec<Value> {
        self.grants
            .iter()
            .filter(|g| g.grantee == grantee)
            .filter_map(|g| self.roles.iter().find(|r| r.id == g.role_id))
            .map(AppRole::granted_json)
            .collect()
    }

    fn app_json(&self, app: &App) -> Value {
        app.to_json(self.granted(&app.id))
    }
}

#[cfg(test)]
mod tests;
