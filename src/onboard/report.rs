//! What `onboard` tells: a few lines for a person, or one JSON object
//! for a pipeline (`--json`). Neither ever holds a secret: the report is
//! built from ids, names and states only.

use serde::Serialize;
use serde_json::Value;

use super::args::Inputs;
use super::plan::Plan;
use super::scim::App;
use super::Failure;

#[derive(Debug, Serialize)]
pub struct InstanceApp {
    pub id: String,
    pub display_name: String,
    pub audience: String,
    /// The id of its ServiceInvoker role.
    pub service_invoker_role: String,
}

/// What the token check saw (never the token).
#[derive(Debug, Serialize)]
pub struct Check {
    pub scope: Option<String>,
    pub aud: Option<Value>,
    pub sub: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PlannedCall {
    pub method: String,
    pub path: String,
    pub body: Value,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub dry_run: bool,
    /// `created` or `found` (a dry run: `would_create` or `found`).
    pub outcome: &'static str,
    pub app_id: Option<String>,
    pub client_id: Option<String>,
    pub display_name: String,
    pub instance_app: InstanceApp,
    pub scopes: Vec<String>,
    pub allowed_grants: Vec<String>,
    pub granted_roles: Vec<String>,
    pub active: bool,
    /// `written` (new application), `rotated` (--new-secret), `kept`; a
    /// dry run: `unchanged`.
    pub secret: &'static str,
    pub secret_file: String,
    pub config_out: String,
    pub check: Option<Check>,
    /// A dry run's changing calls, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned_calls: Vec<PlannedCall>,
}

fn instance(plan: &Plan) -> InstanceApp {
    InstanceApp {
        id: plan.instance.id.clone(),
        display_name: plan.instance.display_name.clone(),
        audience: plan.instance.audience.clone().unwrap_or_default(),
        service_invoker_role: plan.role.id.clone(),
    }
}

fn role_names(app: &App) -> Vec<String> {
    app.granted_app_roles
        .iter()
        .map(|r| r.display.clone().unwrap_or_else(|| r.value.clone()))
        .collect()
}

/// After a real run: the application as the domain now shows it.
pub fn done(
    inputs: &Inputs,
    plan: &Plan,
    app: &App,
    created: bool,
    secret: &'static str,
    check: Option<Check>,
) -> Report {
    Report {
        ok: true,
        dry_run: false,
        outcome: if created { "created" } else { "found" },
        app_id: Some(app.id.clone()),
        client_id: app.name.clone(),
        display_name: app.display_name.clone(),
        instance_app: instance(plan),
        scopes: app.allowed_scopes.iter().map(|s| s.fqs.clone()).collect(),
        allowed_grants: app.allowed_grants.clone(),
        granted_roles: role_names(app),
        active: app.active == Some(true),
        secret,
        secret_file: inputs.secret_file.display().to_string(),
        config_out: inputs.config_out.display().to_string(),
        check,
        planned_calls: Vec::new(),
    }
}

/// A dry run: what exists, and the calls a real run would make.
pub fn planned(inputs: &Inputs, plan: &Plan) -> Report {
    let existing = plan.existing.as_ref();
    let planned_calls = plan
        .actions
        .iter()
        .map(|a| {
            let (method, path, body) = a.call(existing.map(|e| e.id.as_str()));
            PlannedCall {
                method: method.to_string(),
                path,
                body,
            }
        })
        .collect();
    Report {
        ok: true,
        dry_run: true,
        outcome: if existing.is_some() {
            "found"
        } else {
            "would_create"
        },
        app_id: existing.map(|e| e.id.clone()),
        client_id: existing.and_then(|e| e.name.clone()),
        display_name: inputs.name.clone(),
        instance_app: instance(plan),
        scopes: plan.scopes.clone(),
        allowed_grants: plan.grants.clone(),
        granted_roles: existing.map(role_names).unwrap_or_default(),
        active: existing.is_some_and(|e| e.active == Some(true)),
        secret: "unchanged",
        secret_file: inputs.secret_file.display().to_string(),
        config_out: inputs.config_out.display().to_string(),
        check: None,
        planned_calls,
    }
}

pub fn print(report: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
        return;
    }
    let i = &report.instance_app;
    if report.dry_run {
        println!("dry run: nothing changed, no file written");
    }
    println!(
        "application    {:?}: {}",
        report.display_name,
        report.outcome.replace('_', " ")
    );
    if let (Some(id), Some(client)) = (&report.app_id, &report.client_id) {
        let state = if report.active { "active" } else { "inactive" };
        println!("  id           {id}, client id {client}, {state}");
    }
    println!(
        "  instance     {:?} (id {}), audience {}",
        i.display_name, i.id, i.audience
    );
    println!("  scopes       {}", report.scopes.join(", "));
    println!("  grant types  {}", report.allowed_grants.join(", "));
    println!("  roles        {}", report.granted_roles.join(", "));
    if report.dry_run {
        print_planned(report);
        return;
    }
    println!(
        "  secret       {} ({}, mode 0600; never printed)",
        report.secret, report.secret_file
    );
    println!("  client block {}", report.config_out);
    match &report.check {
        Some(c) => println!(
            "  check        token issued: scope {:?}, aud {}",
            c.scope.as_deref().unwrap_or_default(),
            c.aud.as_ref().map(Value::to_string).unwrap_or_default()
        ),
        None => println!("  check        skipped: the client acts as each caller (check one with doctor --caller USER)"),
    }
}

fn print_planned(report: &Report) {
    if report.planned_calls.is_empty() {
        println!("  would call   nothing: the application is as it should be");
    }
    for call in &report.planned_calls {
        println!("  would call   {} {} {}", call.method, call.path, call.body);
    }
    println!(
        "  would write  {} (only with a new secret) and {}",
        report.secret_file, report.config_out
    );
}

pub fn print_failure(failure: &Failure, json: bool) {
    eprintln!("error: {failure}");
    if json {
        let body = serde_json::json!({
            "ok": false,
            "failed_step": failure.step,
            "status": failure.status,
            "detail": failure.detail,
            "rollback": failure.rollback,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    }
}
