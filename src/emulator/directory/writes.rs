//! The admin API's changing calls: create, patch, activate, delete an
//! application, regenerate its secret, grant it a role. Bodies are read
//! as the identity domain reads them: the schema must be named, and the
//! attributes it checks are checked.

use std::time::Instant;

use serde_json::{json, Value};

use super::model::{
    self, App, Grant, GRANT_SCHEMA, KNOWN_GRANTS, OIC_SCOPES, PATCH_SCHEMA, REGENERATOR_SCHEMA,
    STATUS_SCHEMA,
};
use super::{scim_error, Directory, Inner, ScimError, APP_SCHEMA};

fn require_schema(body: &Value, schema: &str) -> Result<(), ScimError> {
    let named = body["schemas"]
        .as_array()
        .is_some_and(|list| list.iter().any(|s| s.as_str() == Some(schema)));
    if named {
        Ok(())
    } else {
        Err(scim_error(
            400,
            format!("The schemas attribute must include {schema}."),
        ))
    }
}

fn grants_of(value: &Value) -> Result<Vec<String>, ScimError> {
    let list = value.as_array().map(Vec::as_slice).unwrap_or_default();
    list.iter()
        .map(|g| match g.as_str() {
            Some(g) if KNOWN_GRANTS.contains(&g) => Ok(g.to_string()),
            _ => Err(scim_error(
                400,
                format!("Invalid value {g} for allowedGrants."),
            )),
        })
        .collect()
}

impl Inner {
    /// `allowedScopes` entries: each must be a scope a resource
    /// application defines, behind that application's audience.
    fn scopes_of(&self, value: &Value) -> Result<Vec<String>, ScimError> {
        let list = value.as_array().map(Vec::as_slice).unwrap_or_default();
        let mut out = Vec::new();
        for entry in list {
            let fqs = entry["fqs"].as_str().unwrap_or_default();
            let defined = self.apps.iter().any(|a| {
                a.audience.as_deref().is_some_and(|aud| {
                    fqs.strip_prefix(aud)
                        .is_some_and(|scope| OIC_SCOPES.contains(&scope))
                })
            });
            if !defined {
                return Err(scim_error(
                    400,
                    format!("The scope {fqs:?} is not defined by any application."),
                ));
            }
            out.push(fqs.to_string());
        }
        Ok(out)
    }

    fn app_mut(&mut self, id: &str) -> Result<&mut App, ScimError> {
        self.apps
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| scim_error(404, format!("The App {id} was not found.")))
    }

    /// When an activation made now reaches the token endpoint.
    fn usable_from(&self) -> Option<Instant> {
        Some(Instant::now() + self.propagation)
    }
}

impl Directory {
    /// `POST /admin/v1/Apps`. Emulator decision: an application created
    /// without `active` is inactive, like one made in the console.
    pub fn create_app(&self, body: &Value) -> Result<Value, ScimError> {
        require_schema(body, APP_SCHEMA)?;
        let display_name = body["displayName"].as_str().unwrap_or_default();
        if display_name.trim().is_empty() {
            return Err(scim_error(400, "The attribute displayName is required."));
        }
        let mut d = self.lock();
        if d.apps.iter().any(|a| a.display_name == display_name) {
            return Err(scim_error(
                409,
                format!("An App with the displayName {display_name} already exists."),
            ));
        }
        let is_oauth_client = body["isOAuthClient"].as_bool().unwrap_or(false);
        let client_type = body["clientType"].as_str().map(str::to_owned);
        let confidential = is_oauth_client && client_type.as_deref() == Some("confidential");
        let active = body["active"].as_bool().unwrap_or(false);
        let app = App {
            id: model::new_id(),
            name: model::new_id(),
            display_name: display_name.into(),
            audience: None,
            is_oauth_client,
            client_type,
            template: body["basedOnTemplate"]["value"].as_str().map(str::to_owned),
            active,
            allowed_grants: grants_of(&body["allowedGrants"])?,
            allowed_scopes: d.scopes_of(&body["allowedScopes"])?,
            secret: confidential.then(model::new_secret),
            usable_from: if active { d.usable_from() } else { None },
        };
        let mut answer = d.app_json(&app);
        if let Some(secret) = &app.secret {
            answer["clientSecret"] = json!(secret);
        }
        d.apps.push(app);
        Ok(answer)
    }

    /// `PATCH /admin/v1/Apps/{id}`: SCIM operations on `allowedGrants`
    /// and `allowedScopes`.
    pub fn patch_app(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        require_schema(body, PATCH_SCHEMA)?;
        let operations = body["Operations"]
            .as_array()
            .ok_or_else(|| scim_error(400, "The attribute Operations is required."))?;
        let mut d = self.lock();
        for op in operations {
            let kind = op["op"].as_str().unwrap_or_default().to_ascii_lowercase();
            let path = op["path"].as_str().unwrap_or_default();
            let values = match path {
                "allowedGrants" => grants_of(&op["value"])?,
                "allowedScopes" => d.scopes_of(&op["value"])?,
                other => return Err(scim_error(400, format!("Invalid patch path {other:?}."))),
            };
            let app = d.app_mut(id)?;
            let target = if path == "allowedGrants" {
                &mut app.allowed_grants
            } else {
                &mut app.allowed_scopes
            };
            match kind.as_str() {
                "add" => target.extend(
                    values
                        .into_iter()
                        .filter(|v| !target.contains(v))
                        .collect::<Vec<_>>(),
                ),
                "replace" => *target = values,
                "remove" => target.retain(|v| !values.contains(v)),
                other => return Err(scim_error(400, format!("Invalid patch op {other:?}."))),
            }
        }
        let app = d.app(id)?;
        Ok(d.app_json(app))
    }

    /// `PUT /admin/v1/AppStatusChanger/{id}`.
    pub fn set_status(&self, id: &str, body: &Value) -> Result<Value, ScimError> {
        require_schema(body, STATUS_SCHEMA)?;
        let active = body["active"]
            .as_bool()
            .ok_or_else(|| scim_error(400, "The attribute active is required."))?;
        let mut d = self.lock();
        let usable_from = d.usable_from();
        let app = d.app_mut(id)?;
        if active && !app.active {
            app.usable_from = usable_from;
        }
        app.active = active;
        Ok(json!({"schemas": [STATUS_SCHEMA], "id": id, "active": active}))
    }

    /// `POST /admin/v1/AppClientSecretRegenerator`: the old secret stops
    /// working at once.
    pub fn regenerate_secret(&self, body: &Value) -> Result<Value, ScimError> {
        require_schema(body, REGENERATOR_SCHEMA)?;
        let id = body["appId"]
            .as_str()
            .ok_or_else(|| scim_error(400, "The attribute appId is required."))?;
        let mut d = self.lock();
        let app = d.app_mut(id)?;
        if !app.is_confidential_client() {
            return Err(scim_error(
                400,
                "Only a confidential application has a client secret.",
            ));
        }
        let secret = model::new_secret();
        app.secret = Some(secret.clone());
        Ok(json!({"schemas": [REGENERATOR_SCHEMA], "appId": id, "clientSecret": secret}))
    }

    /// `DELETE /admin/v1/Apps/{id}`: refused while the application is
    /// active; its grants go with it.
    pub fn delete_app(&self, id: &str) -> Result<(), ScimError> {
        let mut d = self.lock();
        let app = d.app(id)?;
        if app.active {
            return Err(scim_error(
                400,
                format!(
                    "The App {} is active. Deactivate it before you delete it.",
                    app.display_name
                ),
            ));
        }
        d.apps.retain(|a| a.id != id);
        d.grants.retain(|g| g.grantee != id && g.app_id != id);
        Ok(())
    }

    /// `POST /admin/v1/Grants` of an application role to an application.
    pub fn create_grant(&self, body: &Value) -> Result<Value, ScimError> {
        require_schema(body, GRANT_SCHEMA)?;
        if body["grantMechanism"].as_str() != Some("ADMINISTRATOR_TO_APP") {
            return Err(scim_error(400, "Invalid value for grantMechanism."));
        }
        if body["grantee"]["type"].as_str() != Some("App") {
            return Err(scim_error(400, "The grantee must be of type App."));
        }
        let Some(app_id) = body["app"]["value"].as_str() else {
            return Err(scim_error(400, "The attribute app is required."));
        };
        if body["entitlement"]["attributeName"].as_str() != Some("appRoles") {
            return Err(scim_error(
                400,
                "Invalid value for entitlement.attributeName.",
            ));
        }
        let grantee = body["grantee"]["value"].as_str().unwrap_or_default();
        let role_id = body["entitlement"]["attributeValue"]
            .as_str()
            .unwrap_or_default();
        let mut d = self.lock();
        d.app(grantee)?;
        if !d
            .roles
            .iter()
            .any(|r| r.id == role_id && r.app_id == app_id)
        {
            return Err(scim_error(
                400,
                format!("The AppRole {role_id} is not a role of App {app_id}."),
            ));
        }
        if d.grants
            .iter()
            .any(|g| g.grantee == grantee && g.role_id == role_id)
        {
            return Err(scim_error(409, "The grant already exists."));
        }
        let grant = Grant {
            id: model::new_id(),
            grantee: grantee.into(),
            app_id: app_id.into(),
            role_id: role_id.into(),
        };
        let answer = grant.to_json();
        d.grants.push(grant);
        Ok(answer)
    }
}
