use serde_json::json;

use super::model::{GRANT_SCHEMA, STATUS_SCHEMA};
use super::*;

const AUD: &str = "https://oic.example.com:443";

fn app_body(name: &str, scopes: &[&str]) -> Value {
    json!({
        "schemas": [APP_SCHEMA],
        "displayName": name,
        "isOAuthClient": true,
        "clientType": "confidential",
        "allowedGrants": ["client_credentials"],
        "allowedScopes": scopes.iter().map(|s| json!({"fqs": s})).collect::<Vec<_>>(),
    })
}

fn invoker(d: &Directory, instance: &str) -> String {
    let filter = format!(r#"app.value eq "{instance}" and displayName eq "ServiceInvoker""#);
    let roles = d.search_roles(Some(&filter)).unwrap();
    assert_eq!(roles["totalResults"], 1);
    roles["Resources"][0]["id"].as_str().unwrap().to_string()
}

#[test]
fn an_application_is_a_client_only_while_active_and_for_its_scopes() {
    let d = Directory::default();
    d.add_instance_app("OIC", AUD);
    let scope = format!("{AUD}urn:opc:resource:consumer::all");
    let app = d.create_app(&app_body("orders", &[&scope])).unwrap();
    let (id, client) = (app["id"].as_str().unwrap(), app["name"].as_str().unwrap());
    assert!(app["clientSecret"].as_str().unwrap().starts_with("idcscs-"));
    assert_eq!(d.get_app(id).unwrap().get("clientSecret"), None);
    let scopes = vec![scope.clone()];
    assert_eq!(
        d.admit(client, "client_credentials", &scopes),
        Some(Err(Refused::UnknownClient))
    );
    let on = json!({"schemas": [STATUS_SCHEMA], "active": true});
    d.set_status(id, &on).unwrap();
    assert_eq!(d.admit(client, "client_credentials", &scopes), Some(Ok(())));
    assert_eq!(
        d.admit(client, "password", &scopes),
        Some(Err(Refused::Grant))
    );
    let other = vec![format!("{AUD}/ic/api/")];
    assert_eq!(
        d.admit(client, "client_credentials", &other),
        Some(Err(Refused::Scope))
    );
    assert_eq!(d.admit("someone-else", "client_credentials", &scopes), None);
}

#[test]
fn oracle_pitfalls_are_kept() {
    let d = Directory::default();
    let instance = d.add_instance_app("OIC", AUD);
    let wrong = "https://other.example.com:443urn:opc:resource:consumer::all";
    assert_eq!(
        d.create_app(&app_body("x", &[wrong])).unwrap_err().status,
        400
    );
    let app = d.create_app(&app_body("orders", &[])).unwrap();
    let id = app["id"].as_str().unwrap();
    assert_eq!(
        d.create_app(&app_body("orders", &[])).unwrap_err().status,
        409
    );
    let role = invoker(&d, &instance);
    let mut grant = json!({
        "schemas": [GRANT_SCHEMA],
        "grantMechanism": "ADMINISTRATOR_TO_APP",
        "grantee": {"type": "App", "value": id},
        "entitlement": {"attributeName": "appRoles", "attributeValue": role},
    });
    let refused = d.create_grant(&grant).unwrap_err();
    assert_eq!(
        (refused.status, refused.detail.as_str()),
        (400, "The attribute app is required.")
    );
    grant["app"] = json!({ "value": instance });
    d.create_grant(&grant).unwrap();
    assert_eq!(d.granted_role_names(id), ["ServiceInvoker"]);
    assert_eq!(d.create_grant(&grant).unwrap_err().status, 409);
    d.set_status(id, &json!({"schemas": [STATUS_SCHEMA], "active": true}))
        .unwrap();
    assert_eq!(d.delete_app(id).unwrap_err().status, 400);
    d.set_status(id, &json!({"schemas": [STATUS_SCHEMA], "active": false}))
        .unwrap();
    d.delete_app(id).unwrap();
    assert_eq!(d.get_app(id).unwrap_err().status, 404);
    let refused = d.search_apps(Some(&format!(r#"audience eq "{AUD}""#)));
    assert_eq!(refused.unwrap_err().status, 400);
}

#[test]
fn a_new_activation_waits_for_propagation() {
    let d = Directory::default();
    d.add_instance_app("OIC", AUD);
    d.set_propagation_delay(std::time::Duration::from_secs(3600));
    let mut body = app_body("orders", &[]);
    body["active"] = json!(true);
    let app = d.create_app(&body).unwrap();
    let client = app["name"].as_str().unwrap();
    assert_eq!(
        d.admit(client, "client_credentials", &[]),
        Some(Err(Refused::UnknownClient))
    );
}
