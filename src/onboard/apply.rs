//! The plan's changing calls in order, and their undoing: when a step
//! after the application's creation fails, the application this run
//! created is deactivated (an active one cannot be deleted) and deleted.

use http::Method;
use serde_json::Value;

use super::admin::{AdminApi, CallError};
use super::plan::{Action, Plan};
use super::scim::{App, RegeneratedSecret, StatusChange, STATUS_SCHEMA};
use super::Failure;
use crate::config::Secret;

/// Where the application stands after the calls.
pub struct Applied {
    pub app_id: String,
    pub client_id: String,
    /// A secret issued by this run (creation or regeneration).
    pub secret: Option<Secret>,
    /// Whether this run created the application.
    pub created: bool,
}

pub async fn apply(api: &AdminApi, plan: &Plan) -> Result<Applied, Failure> {
    let mut applied = Applied {
        app_id: plan
            .existing
            .as_ref()
            .map(|a| a.id.clone())
            .unwrap_or_default(),
        client_id: plan
            .existing
            .as_ref()
            .and_then(|a| a.name.clone())
            .unwrap_or_default(),
        secret: None,
        created: false,
    };
    for action in &plan.actions {
        if let Err(error) = step(api, action, &mut applied).await {
            let mut failure = Failure::call(action.step(), error);
            if applied.created {
                failure.rollback = Some(undo(api, &applied.app_id).await);
            }
            return Err(failure);
        }
    }
    Ok(applied)
}

/// One call; what it returns is kept in `applied`.
async fn step(api: &AdminApi, action: &Action, applied: &mut Applied) -> Result<(), CallError> {
    let id = (!applied.app_id.is_empty()).then_some(applied.app_id.as_str());
    let (method, path, body) = action.call(id);
    match action {
        Action::Create(_) => {
            let app: App = api.send(method, &path, Some(&body)).await?;
            applied.app_id = app.id.clone();
            applied.created = true;
            applied.client_id = app.name.clone().unwrap_or_default();
            applied.secret = app.client_secret;
            if applied.client_id.is_empty() || applied.secret.is_none() {
                return Err(CallError {
                    status: None,
                    detail: "the created application has no client id or secret: is it a confidential OAuth client?".into(),
                });
            }
        }
        Action::NewSecret => {
            let answer: RegeneratedSecret = api.send(method, &path, Some(&body)).await?;
            applied.secret = Some(answer.client_secret.ok_or(CallError {
                status: None,
                detail: "the regenerator's answer holds no clientSecret".into(),
            })?);
        }
        _ => {
            let _: Value = api.send(method, &path, Some(&body)).await?;
        }
    }
    Ok(())
}

/// Deactivates and deletes application `id`; says what happened.
pub async fn undo(api: &AdminApi, id: &str) -> String {
    let off = StatusChange {
        active: false,
        schemas: [STATUS_SCHEMA],
    };
    let result = async {
        let _: Value = api
            .send(
                Method::PUT,
                &format!("/admin/v1/AppStatusChanger/{id}"),
                Some(&off),
            )
            .await?;
        api.send::<Value>(Method::DELETE, &format!("/admin/v1/Apps/{id}"), None::<&()>)
            .await
    }
    .await;
    match result {
        Ok(_) => format!("rolled back: deactivated and deleted the application it created (id {id})"),
        Err(e) => format!(
            "rollback failed ({e}): the application it created (id {id}) is left behind; deactivate and delete it in the console"
        ),
    }
}
