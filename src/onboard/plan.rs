//! What `onboard` must change, worked out from reads only: the instance's
//! application and its ServiceInvoker role, the application of that name
//! if it exists, and the calls that bring it where it should be. A dry
//! run prints the plan; a real run applies it (`apply`).

use serde_json::json;

use super::admin::{AdminApi, CallError};
use super::scim::{
    App, AppRole, Fqs, ListResponse, NewApp, NewGrant, Operation, PatchOp, Reference,
    SecretRegenerator, StatusChange, APP_SCHEMA, CONFIDENTIAL_TEMPLATE, GRANT_SCHEMA, PATCH_SCHEMA,
    REGENERATOR_SCHEMA, STATUS_SCHEMA,
};
use super::{Failure, Inputs};

/// The instance application's role that lets a client call integrations.
pub const SERVICE_INVOKER: &str = "ServiceInvoker";
/// The scopes an Oracle Integration instance defines, behind its audience.
const SCOPE_SUFFIXES: [&str; 2] = ["urn:opc:resource:consumer::all", "ic/api/"];

/// One changing call.
#[derive(Debug)]
pub enum Action {
    Create(NewApp),
    /// Adds missing grant types and scopes to an existing application.
    Patch(PatchOp),
    /// ServiceInvoker to the application (made or found).
    Grant {
        role: String,
        instance: String,
    },
    Activate,
    NewSecret,
}

#[derive(Debug)]
pub struct Plan {
    pub instance: App,
    pub role: AppRole,
    /// The application of that name, when it exists.
    pub existing: Option<App>,
    pub scopes: Vec<String>,
    pub grants: Vec<String>,
    pub actions: Vec<Action>,
}

/// A SCIM filter's string literal.
fn literal(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

fn failed(step: &'static str) -> impl Fn(CallError) -> Failure {
    move |error| Failure::call(step, error)
}

/// The instance's application by display name, else by id; exactly one,
/// with an audience.
async fn instance_app(api: &AdminApi, wanted: &str) -> Result<App, Failure> {
    const STEP: &str = "find the instance application";
    let filter = format!("displayName eq {}", literal(wanted));
    let mut found: ListResponse<App> = api
        .get("/admin/v1/Apps", Some(&filter))
        .await
        .map_err(failed(STEP))?;
    if found.resources.is_empty() {
        match api
            .get::<App>(&format!("/admin/v1/Apps/{}", urlencode(wanted)), None)
            .await
        {
            Ok(app) => found.resources.push(app),
            Err(e) if e.status == Some(404) || e.status == Some(400) => {}
            Err(e) => return Err(Failure::call(STEP, e)),
        }
    }
    let app = match found.resources.len() {
        0 => return Err(Failure::said(STEP, format!(
            "no application has the display name or id {wanted:?} (searched /admin/v1/Apps with filter {filter} and /admin/v1/Apps/{wanted})"
        ))),
        1 => found.resources.remove(0),
        n => return Err(Failure::said(STEP, format!(
            "{n} applications have the display name {wanted:?} (ids {}): pass the instance application's id",
            found.resources.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    };
    if app.audience.as_deref().is_none_or(str::is_empty) {
        return Err(Failure::said(STEP, format!(
            "the application {:?} (id {}) has no audience: it is not an Oracle Integration instance's application",
            app.display_name, app.id
        )));
    }
    Ok(app)
}

fn urlencode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// The instance application's ServiceInvoker role.
async fn invoker_role(api: &AdminApi, instance: &App) -> Result<AppRole, Failure> {
    const STEP: &str = "find the ServiceInvoker role";
    let filter = format!(
        "app.value eq {} and displayName eq {}",
        literal(&instance.id),
        literal(SERVICE_INVOKER)
    );
    let mut found: ListResponse<AppRole> = api
        .get("/admin/v1/AppRoles", Some(&filter))
        .await
        .map_err(failed(STEP))?;
    match found.resources.len() {
        1 => Ok(found.resources.remove(0)),
        n => Err(Failure::said(STEP, format!(
            "expected one role named {SERVICE_INVOKER} of application {} (searched /admin/v1/AppRoles with filter {filter}), found {n}",
            instance.id
        ))),
    }
}

/// The confidential application named `name`, if there is one (read in
/// full by id: a list may leave attributes out).
async fn existing_app(api: &AdminApi, name: &str) -> Result<Option<App>, Failure> {
    const STEP: &str = "find the application";
    let filter = format!("displayName eq {}", literal(name));
    let found: ListResponse<App> = api
        .get("/admin/v1/Apps", Some(&filter))
        .await
        .map_err(failed(STEP))?;
    let id = match found.resources.as_slice() {
        [] => return Ok(None),
        [one] => one.id.clone(),
        many => return Err(Failure::said(STEP, format!(
            "{} applications have the display name {name:?}: rename all but one, or choose another --name",
            many.len()
        ))),
    };
    let app: App = api
        .get(&format!("/admin/v1/Apps/{id}"), None)
        .await
        .map_err(failed(STEP))?;
    if !app.is_confidential_client() {
        return Err(Failure::said(STEP, format!(
            "an application named {name:?} (id {id}) exists but is not a confidential OAuth client: choose another --name"
        )));
    }
    Ok(Some(app))
}

/// Reads what exists and works out the calls.
pub async fn make(api: &AdminApi, inputs: &Inputs) -> Result<Plan, Failure> {
    let instance = instance_app(api, &inputs.oic_app).await?;
    let role = invoker_role(api, &instance).await?;
    let existing = existing_app(api, &inputs.name).await?;
    let audience = instance.audience.clone().unwrap_or_default();
    let scopes: Vec<String> = SCOPE_SUFFIXES
        .iter()
        .map(|s| format!("{audience}{s}"))
        .collect();
    let grants = inputs.wire_grants();
    let actions = actions(
        inputs,
        &instance,
        &role,
        existing.as_ref(),
        &scopes,
        &grants,
    );
    Ok(Plan {
        instance,
        role,
        existing,
        scopes,
        grants,
        actions,
    })
}

/// The calls from what exists to what should: an application is created
/// inactive, granted, then activated, so it never serves tokens without
/// its role.
fn actions(
    inputs: &Inputs,
    instance: &App,
    role: &AppRole,
    existing: Option<&App>,
    scopes: &[String],
    grants: &[String],
) -> Vec<Action> {
    let grant = Action::Grant {
        role: role.id.clone(),
        instance: instance.id.clone(),
    };
    let Some(app) = existing else {
        return vec![
            Action::Create(new_app(inputs, scopes, grants)),
            grant,
            Action::Activate,
        ];
    };
    let mut out = Vec::new();
    let missing_grants: Vec<&String> = grants
        .iter()
        .filter(|g| !app.allowed_grants.contains(g))
        .collect();
    let missing_scopes: Vec<Fqs> = scopes
        .iter()
        .map(|s| Fqs { fqs: s.clone() })
        .filter(|s| !app.allowed_scopes.contains(s))
        .collect();
    let mut operations = Vec::new();
    if !missing_grants.is_empty() {
        operations.push(Operation {
            op: "add",
            path: "allowedGrants",
            value: json!(missing_grants),
        });
    }
    if !missing_scopes.is_empty() {
        operations.push(Operation {
            op: "add",
            path: "allowedScopes",
            value: json!(missing_scopes),
        });
    }
    if !operations.is_empty() {
        out.push(Action::Patch(PatchOp {
            schemas: [PATCH_SCHEMA],
            operations,
        }));
    }
    if !app.granted_app_roles.iter().any(|r| r.value == role.id) {
        out.push(grant);
    }
    if app.active != Some(true) {
        out.push(Action::Activate);
    }
    if inputs.new_secret {
        out.push(Action::NewSecret);
    }
    out
}

fn new_app(inputs: &Inputs, scopes: &[String], grants: &[String]) -> NewApp {
    NewApp {
        schemas: [APP_SCHEMA],
        display_name: inputs.name.clone(),
        description: "Oracle Integration client of bearer-proxy (made by bearer-proxy onboard)"
            .into(),
        is_oauth_client: true,
        client_type: "confidential",
        based_on_template: Reference {
            value: CONFIDENTIAL_TEMPLATE.into(),
        },
        allowed_grants: grants.to_vec(),
        allowed_scopes: scopes.iter().map(|s| Fqs { fqs: s.clone() }).collect(),
        active: false,
    }
}

impl Action {
    /// The step's name in messages.
    pub fn step(&self) -> &'static str {
        match self {
            Action::Create(_) => "create the application",
            Action::Patch(_) => "add grant types and scopes",
            Action::Grant { .. } => "grant ServiceInvoker",
            Action::Activate => "activate the application",
            Action::NewSecret => "regenerate the secret",
        }
    }

    /// The call: method, path and body, for the application `app_id`
    /// (`None`: the one this run creates).
    pub fn call(&self, app_id: Option<&str>) -> (http::Method, String, serde_json::Value) {
        let id = app_id.unwrap_or("<id of the new application>").to_string();
        match self {
            Action::Create(app) => (http::Method::POST, "/admin/v1/Apps".into(), body(app)),
            Action::Patch(patch) => (
                http::Method::PATCH,
                format!("/admin/v1/Apps/{id}"),
                body(patch),
            ),
            Action::Grant { role, instance } => {
                let grant = NewGrant {
                    schemas: [GRANT_SCHEMA],
                    grant_mechanism: "ADMINISTRATOR_TO_APP",
                    grantee: super::scim::Grantee {
                        kind: "App",
                        value: id,
                    },
                    app: Reference {
                        value: instance.clone(),
                    },
                    entitlement: super::scim::Entitlement {
                        attribute_name: "appRoles",
                        attribute_value: role.clone(),
                    },
                };
                (http::Method::POST, "/admin/v1/Grants".into(), body(&grant))
            }
            Action::Activate => {
                let change = StatusChange {
                    active: true,
                    schemas: [STATUS_SCHEMA],
                };
                (
                    http::Method::PUT,
                    format!("/admin/v1/AppStatusChanger/{id}"),
                    body(&change),
                )
            }
            Action::NewSecret => {
                let regenerate = SecretRegenerator {
                    app_id: id,
                    schemas: [REGENERATOR_SCHEMA],
                };
                (
                    http::Method::POST,
                    "/admin/v1/AppClientSecretRegenerator".into(),
                    body(&regenerate),
                )
            }
        }
    }
}

/// A body as JSON (the typed structs always encode).
fn body(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}
